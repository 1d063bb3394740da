"""The adapters' overhead: toolkit SmoothGrad against a hand-written loop in each framework.

Run with ``.venv/bin/python -m tests.benchmarks.bench_adapters`` (issue 3; no peer library
needed). For PyTorch, TensorFlow and JAX, on the ResNet-style CNN of
:mod:`tests.benchmarks.models` (the same numpy weights in every framework), it times

* ``toolkit``: ``saliency_core.smoothgrad(adapter.gradient_fn(model), x, target,
  n_samples=50, batch_size=B, seed=0)``;
* ``native loop``: what a user writes in the framework alone: noise from the framework's
  generator, a forward and a backward pass per chunk of B rows, sums kept in the framework
  (TensorFlow: noise, tape and sum inside one ``tf.function``; JAX: ``jit(vmap(grad))``
  with ``jax.random`` noise inside the jitted function);
* ``native loop (numpy noise)``: the same loop fed the toolkit's numpy noise stream, whose
  map must equal the toolkit's (checked before timing: the benchmark is fair).

Each framework runs in a fresh worker process, one thread per framework by default (the
machine is shared; see ``_harness.limit_threads``), with a warm-up and then interleaved
rounds; the table gives medians and the median of the per-round ratios. ``--profile``
adds a cProfile breakdown of one toolkit run: noise generation, the adapter's conversions,
the compiled model call, the output check and the float64 sums.

Target: the toolkit costs at most 5% more than the native loop (ratio <= 1.05).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tests.benchmarks import _harness

FRAMEWORKS = ("torch", "tensorflow", "jax")


def _ratio(rounds: list[float]) -> str:
    """Median of per-round ratios, with their interquartile range."""
    low, median, high = np.percentile(rounds, [25, 50, 75])
    return f"{median:.3f} ({low:.2f}-{high:.2f})"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frameworks", nargs="+", default=list(FRAMEWORKS), choices=FRAMEWORKS)
    parser.add_argument("--model", default="small", choices=["small", "resnet18"])
    parser.add_argument("--n-images", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--n-samples", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads per framework; 0 keeps the framework's default",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="add a cProfile breakdown of one toolkit run per framework",
    )
    parser.add_argument(
        "--malloc",
        choices=["torch", "all", "default"],
        default="torch",
        help="which workers run with glibc keeping freed memory (MALLOC_MMAP_THRESHOLD_, "
        "MALLOC_TRIM_THRESHOLD_): 'torch' removes PyTorch's page faults on every call and "
        "most of its timing noise; 'default' leaves glibc as configured everywhere",
    )
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--out", type=Path, help="also write the tables to this file")
    args = parser.parse_args(argv)

    scratch = Path(tempfile.mkdtemp(prefix="saliency-bench-adapters-"))
    started = time.perf_counter()
    machine = _harness.machine_description()
    reports = {}
    for framework in args.frameworks:
        options = [
            "--framework",
            framework,
            "--model",
            args.model,
            "--n-images",
            str(args.n_images),
            "--batch-size",
            str(args.batch_size),
            "--n-samples",
            str(args.n_samples),
            "--repeats",
            str(args.repeats),
            "--threads",
            str(args.threads),
            "--keys",
            "toolkit",
            "native",
            "native-numpy",
            *(["--profile"] if args.profile else []),
        ]
        print(
            f"[{time.perf_counter() - started:6.1f}s] {framework} ...", file=sys.stderr, flush=True
        )
        reports[framework] = _harness.run_worker(
            sys.executable,
            "compare",
            options,
            scratch / f"{framework}.json",
            log=lambda message: print(message, file=sys.stderr),
            timeout=args.timeout,
            env=_harness.worker_environment(args.malloc, framework),
            retries=0,
        )

    lines: list[str] = []

    def emit(*parts: object) -> None:
        lines.append(" ".join(str(part) for part in parts))
        print(*parts)

    threads = "framework default" if args.threads <= 0 else f"{args.threads} per framework"
    emit(
        f"{args.model} model, {args.n_images} images, n_samples {args.n_samples}, "
        f"batch_size {args.batch_size}, threads: {threads}; median of {args.repeats} "
        f"interleaved rounds after a warm-up. {machine['cpu']}, {machine['cpus']} CPUs, "
        f"load average {machine['load']} -> {_harness.machine_description()['load']}."
    )
    emit()
    emit(
        "| framework | native loop (s) | native loop, numpy noise (s) | toolkit (s) | "
        "toolkit / native (IQR) | toolkit / native, numpy noise (IQR) | "
        "same-noise map difference | CPU use |"
    )
    emit("|---|---:|---:|---:|---:|---:|---:|---:|")
    for framework, report in reports.items():
        entries = report.get("contenders", {})
        if report.get("failed") or "toolkit" not in entries:
            emit(f"| {framework} | failed: {report.get('failed', '?')[:200]} | | | | | | |")
            continue
        if report.get("unfair"):
            emit(f"| {framework} | UNFAIR: {report['unfair']} | | | | | | |")
            continue
        native, numpy_noise, toolkit = (entries[k] for k in ("native", "native-numpy", "toolkit"))
        emit(
            f"| {framework} | {np.median(native['times']):.3f} | "
            f"{np.median(numpy_noise['times']):.3f} | {np.median(toolkit['times']):.3f} | "
            f"{_ratio(native['paired_ratios'])} | {_ratio(numpy_noise['paired_ratios'])} | "
            f"{numpy_noise.get('exact_difference', float('nan')):.1e} | "
            f"{np.median(toolkit['cpu_use']):.2f} |"
        )
    if args.profile:
        for framework, report in reports.items():
            profile = report.get("profile")
            if not profile:
                continue
            total = profile["toolkit_s"]
            emit()
            emit(
                f"**{framework}**: one toolkit run under cProfile {total:.3f} s, native loop "
                f"{profile['native_s']:.3f} s."
            )
            emit()
            emit("| part of the toolkit run | cumulative s | share |")
            emit("|---|---:|---:|")
            for label, seconds in profile["toolkit_rows"]:
                emit(f"| {label} | {seconds:.4f} | {100 * seconds / total:.1f}% |")
            per_call = profile.get("per_call_us", {})
            if per_call:
                emit()
                emit(
                    "Fixed cost per model call (tiny linear model, batch_size=1): toolkit "
                    f"{per_call['toolkit']:.0f} us, the adapter's callback alone "
                    f"{per_call['adapter']:.0f} us, a minimal hand-written callback "
                    f"{per_call['minimal']:.0f} us."
                )
            noise = profile.get("noise_ms", {})
            emit()
            emit(
                f"Noise for one chunk of {args.batch_size} rows: numpy (toolkit) "
                f"{noise.get('numpy', float('nan')):.2f} ms, {framework}'s generator (native "
                f"loop) {noise.get('native', float('nan')):.2f} ms."
            )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
