"""SmoothGrad's noise made while the model runs: the total against max(model, noise).

Run with ``python -m tests.benchmarks.bench_overlap`` (``make bench-overlap``). It writes
``tests/benchmarks/RESULTS-overlap.md`` and prints it; ``--quick`` is a smoke run of a few
seconds on smaller inputs, written to ``out/bench/RESULTS-overlap-quick.md``.

The callback stands in for a model on an accelerator: it sleeps ``model_ms`` per call
(releasing the GIL, as a thread waiting for a GPU does) and returns one value per row, so
that the figures isolate the overlap of the noise with the model (the running sums of
full-size maps are work of their own). Inputs ``64 x 224 x 224 x 3`` float32, ``n = 64``
samples, ``batch_size = 64`` (the default ``"iid"`` noise, ``noise_level=0.15``):

* noise alone: ``smoothgrad`` with a callback that returns at once and
  ``noise_threads=0``: making the rows, chunk after chunk; measured again next to each
  total, as its time drifts on shared cores;
* model alone: the sleeping callback's calls one after the other on a made chunk, no
  noise: 8 calls timed and scaled to the number of chunks;
* total: ``smoothgrad`` with the sleeping callback and ``noise_threads=1`` (the default);
  the time spent making rows within it is timed too (``_streaming._make_chunk`` wrapped),
  as the same noise runs 10-25% slower or faster from one run to the next on shared cores.

The model time per call is set to 0.5, 1 and 1.5 times the noise time per chunk just
measured (model below, near and above the noise). The first chunk cannot overlap
anything, so a pipeline of ``c`` chunks has a floor of about ``1 + 1 / c`` times the max
where model and noise are equal (``1 + 1 / 64`` here). Without overlap the total is the sum of both;
the target is ``total <= 1.05 x max(model, noise)``. The noise rows per second with 1, 2
and 4 threads (``noise_threads``, the callback returning at once) are measured on an
eighth of the inputs. The noise alone and the totals are the best of two runs each (the
full run takes under three minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from saliency_core import NOISE_SCHEMES, _streaming, smoothgrad
from tests.benchmarks._harness import machine_description, package_versions

HERE = Path(__file__).resolve().parent
FACTORS = (0.5, 1.0, 1.5)  # model time per chunk over noise time per chunk
THREADS = (1, 2, 4)
MODEL_CALLS = 8  # calls timed for the model alone (a sleep: the same every call)


def instant(x: np.ndarray, target: np.ndarray | None) -> np.ndarray:
    """A model that costs nothing: one value per row."""
    return np.zeros((x.shape[0], 1), dtype=x.dtype)


def sleeping(model_ms: float):
    """A model on an accelerator: ``model_ms`` per call with the GIL released."""

    def fn(x: np.ndarray, target: np.ndarray | None) -> np.ndarray:
        time.sleep(model_ms / 1000)
        return np.zeros((x.shape[0], 1), dtype=x.dtype)

    return fn


class MakeTimer:
    """Times the making of every chunk during a run (``_streaming._make_chunk``, wrapped)."""

    def __init__(self):
        self.seconds = 0.0
        self.original = _streaming._make_chunk

    def __enter__(self):
        def timed(*args):
            start = time.perf_counter()
            try:
                return self.original(*args)
            finally:
                self.seconds += time.perf_counter() - start

        _streaming._make_chunk = timed
        return self

    def __exit__(self, *exc):
        _streaming._make_chunk = self.original


def seconds(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 8 inputs of 64x64x3, n = 16, batch_size 16")
    parser.add_argument("--out", type=Path, default=None,
                        help="the report (default tests/benchmarks/RESULTS-overlap.md; with "
                        "--quick out/bench/RESULTS-overlap-quick.md, which git ignores)")
    parser.add_argument("--noise", choices=NOISE_SCHEMES, default="iid",
                        help="SmoothGrad's noise scheme (iid)")
    parser.add_argument("--repeats", type=int, default=2,
                        help="runs of the noise alone and of each total; the best counts (2)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats: expected a positive number, got {args.repeats}")
    if args.quick:
        args.inputs, args.side, args.n_samples, args.batch_size = 8, 64, 16, 16
    else:
        args.inputs, args.side, args.n_samples, args.batch_size = 64, 224, 64, 64
    if args.out is None:
        args.out = (HERE.parents[1] / "out" / "bench" / "RESULTS-overlap-quick.md"
                    if args.quick else HERE / "RESULTS-overlap.md")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    clock = time.perf_counter()
    x = np.random.default_rng(0).uniform(size=(args.inputs, args.side, args.side, 3))
    x = x.astype(np.float32)
    options = dict(n_samples=args.n_samples, batch_size=args.batch_size, noise=args.noise, seed=0)
    rows = args.inputs * args.n_samples
    chunks = -(-rows // args.batch_size)

    batch = np.zeros((args.batch_size, *x.shape[1:]), dtype=np.float32)
    timed_calls = min(chunks, MODEL_CALLS)
    table = []
    for factor in FACTORS:
        # the noise alone next to each total, the best of `repeats` runs of each: on shared
        # cores the time of the same work drifts by 10-20% from run to run
        noise = seconds(lambda: smoothgrad(instant, x, noise_threads=0, **options))
        model_ms = factor * 1000 * noise / chunks
        fn = sleeping(model_ms)
        model = seconds(lambda: [fn(batch, None) for _ in range(timed_calls)])  # noqa: B023
        model *= chunks / timed_calls
        runs = []
        for repeat in range(args.repeats):
            if repeat:
                noise = min(noise, seconds(lambda: smoothgrad(instant, x, noise_threads=0,
                                                              **options)))
            with MakeTimer() as made:
                took = seconds(lambda: smoothgrad(fn, x, noise_threads=1, **options))  # noqa: B023
            runs.append((took, made.seconds))
        total, during = min(runs)
        table.append((factor, model_ms, model, noise, total, during))

    part = x[: max(1, args.inputs // 8)]
    part_rows = part.shape[0] * args.n_samples
    rates = {}
    for threads in (0, *THREADS):
        took = seconds(lambda: smoothgrad(instant, part, noise_threads=threads,  # noqa: B023
                                          **options))
        rates[threads] = part_rows / took
    report = render(args, started, time.perf_counter() - clock, chunks, table, rates,
                    part.shape[0])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report + "\n")
    print(report)
    print(f"\nwritten to {args.out}")


def render(args, started, took, chunks, table, rates, part_inputs) -> str:  # noqa: ANN001, PLR0913
    machine = machine_description()
    lines = [
        "# SmoothGrad: noise made while the model runs",
        "",
        f"Written by `python -m tests.benchmarks.bench_overlap{' --quick' if args.quick else ''}`"
        f" on {started}, in {took:.0f} s. Machine: {machine['cpu']}, {os.cpu_count()} CPUs "
        f"(shared with other work while it ran), {machine['memory']}, {machine['os']}, "
        f"Python {machine['python']}, load {machine['load']}; numpy "
        f"{package_versions(['numpy'])['numpy']}. Noise alone and totals: the best of "
        f"{args.repeats} run(s) each; rows/s: one run.",
        "",
        f"Settings: {args.inputs} inputs {args.side}x{args.side}x3 float32, "
        f"`n_samples={args.n_samples}`, `batch_size={args.batch_size}` ({chunks} chunks), "
        f'`noise="{args.noise}"`, the callback sleeping a fixed time per call and returning one '
        "value per row. Noise alone: the rows made with no model (`noise_threads=0`), measured "
        "next to each total; model alone: the sleeps one after the other "
        f"({min(chunks, MODEL_CALLS)} calls timed, scaled to {chunks}). The first chunk "
        f"overlaps nothing: the floor is about {1 + 1 / chunks:.3f} where both are equal.",
        "",
        "**Total with `noise_threads=1` (the default) against the model and the noise alone** "
        "(target: total <= 1.05 x max):",
        "",
        "| model / noise | model per call (ms) | model alone (s) | noise alone (s) "
        "| sum (s) | total (s) | total / max | noise during the run (s) "
        "| total / max, that noise |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for factor, model_ms, model, noise, total, during in table:
        lines.append(
            f"| {factor:g} | {model_ms:.1f} | {model:.2f} | {noise:.2f} | {model + noise:.2f} "
            f"| {total:.2f} | {total / max(model, noise):.3f} | {during:.2f} "
            f"| {total / max(model, during):.3f} |"
        )
    lines += [
        "",
        f"**Noise rows per second** (the callback returning at once, {part_inputs} inputs, "
        f"{part_inputs * args.n_samples} rows; 0 = no background thread):",
        "",
        "| noise_threads | rows/s |",
        "|---:|---:|",
    ]
    lines += [f"| {threads} | {rate:.0f} |" for threads, rate in rates.items()]
    lines += [
        "",
        "Noise during the run: the time spent making rows inside the total run (the "
        "background thread's chunks, timed); the last column compares the total with it, "
        "which takes out the drift of the noise's own speed between runs on shared cores.",
        "",
        "With more threads only the scale and shift is shared (the draws stay in one thread, "
        "in row order, so every result is the same for any number of threads); the draws are "
        "most of the noise time, so more threads gain little, and on 2 shared cores the "
        "figures move by several percent from run to run.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
