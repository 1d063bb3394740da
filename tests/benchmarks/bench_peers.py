"""SmoothGrad through the toolkit against native loops and the peer libraries (issue 6).

Run with ``make bench``, which creates ``.venv-bench`` (``tests/benchmarks/setup_bench.sh``)
and then runs ``.venv-bench/bin/python -m tests.benchmarks.bench_peers``; the report goes
to ``tests/benchmarks/RESULTS.md``. ``--quick`` is a smoke run of a few minutes.

For every framework and model, one fresh worker process builds the same network from the
same numpy weights (:mod:`tests.benchmarks.models`), builds every contender
(:mod:`tests.benchmarks.contenders`), warms each up, checks that the toolkit and a native
loop fed the toolkit's own noise give the same map, then times all contenders in
interleaved rounds and reports the median. Peak memory is the peak resident set size of
one run minus the resident set size before it. Agreement is the Pearson correlation of
each map with the toolkit's (smallest over images) at ``--corr-samples`` noisy samples.

PyTorch: toolkit, native loop, Captum ``NoiseTunnel(Saliency)``, PAIR ``GetSmoothedMask``.
TensorFlow: toolkit, native loop, xplique ``SmoothGrad``, tf-keras-vis ``Saliency``, PAIR.
JAX: toolkit and a native ``jit(vmap(grad))`` loop (no SmoothGrad library for JAX exists).

Targets: the toolkit at most 5% slower than the native loop, faster than every peer at
equal settings, peak memory flat in ``n_samples``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from tests.benchmarks import _harness

HERE = Path(__file__).resolve().parent
#: Where a run keeps its raw measurements (git ignores /out/), for --from-json.
RAW_DIRECTORY = HERE.parents[1] / "out" / "bench"


def raw_path(out: Path) -> Path:
    """The raw measurements behind the report ``out``: out/bench/<report name>-raw.json."""
    return RAW_DIRECTORY / f"{out.stem}-raw.json"


FRAMEWORKS = ("torch", "tensorflow", "jax")
PEERS = {"torch": ["captum", "pair"], "tensorflow": ["xplique", "tf-keras-vis", "pair"], "jax": []}
#: Peers that choose their own rows per model call (1, or the number of images).
UNBATCHED = ("pair", "tf-keras-vis")
VERSIONS = [
    "numpy",
    "torch",
    "tensorflow-cpu",
    "keras",
    "jax",
    "jaxlib",
    "captum",
    "saliency",
    "tf-keras-vis",
    "xplique",
    "tf_keras",
    "tensorflow-probability",
]
TARGET_OVERHEAD = 1.05
TARGET_CORRELATION = 0.99


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: small model only, 2 rounds, n_samples=100 agreement, short scaling sweep",
    )
    parser.add_argument("--frameworks", nargs="+", default=list(FRAMEWORKS), choices=FRAMEWORKS)
    parser.add_argument(
        "--models", nargs="+", default=["small", "resnet18"], choices=["small", "resnet18"]
    )
    parser.add_argument("--n-samples", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument(
        "--n-images",
        type=int,
        default=2,
        help="images of the small model (ResNet-18: --n-images-large)",
    )
    parser.add_argument("--n-images-large", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=11, help="timed rounds, small model")
    parser.add_argument("--repeats-large", type=int, default=5, help="timed rounds, ResNet-18")
    parser.add_argument(
        "--corr-samples",
        type=int,
        default=500,
        help="n_samples of the agreement runs (small model)",
    )
    parser.add_argument(
        "--large-peers",
        choices=["batched", "all", "none"],
        default="all",
        help="peers run on ResNet-18: 'batched' leaves out PAIR and "
        "tf-keras-vis, which choose their own rows per model call",
    )
    parser.add_argument("--scaling-n", type=int, nargs="*", default=[10, 50, 100, 200, 500])
    parser.add_argument("--scaling-batch", type=int, nargs="*", default=[10, 25, 50, 100, 200])
    parser.add_argument("--scaling-repeats", type=int, default=3)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads per framework (0: the framework's default); one thread "
        "keeps timings stable on a machine shared with other jobs",
    )
    parser.add_argument(
        "--malloc",
        choices=["torch", "all", "default"],
        default="torch",
        help="which workers run with glibc keeping freed memory (MALLOC_MMAP_THRESHOLD_, "
        "MALLOC_TRIM_THRESHOLD_): 'torch' removes PyTorch's page faults on every call and "
        "most of its timing noise; 'default' leaves glibc as configured everywhere",
    )
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per worker")
    parser.add_argument(
        "--from-json",
        type=Path,
        default=None,
        help="only write the report from a run's raw results (out/bench/RESULTS-raw.json), "
        "given the same options as that run",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="the report (default tests/benchmarks/RESULTS.md; with --quick "
        "out/bench/RESULTS-quick.md, which git ignores)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.models = ["small"]
        args.repeats = 2
        args.corr_samples = 100
        args.scaling_n = [10, 50, 200]
        args.scaling_batch = [25, 50]
        args.scaling_repeats = 1
    if args.out is None:
        args.out = (
            HERE.parents[1] / "out" / "bench" / "RESULTS-quick.md"
            if args.quick
            else (HERE / "RESULTS.md")
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.from_json is not None:
        raw = json.loads(args.from_json.read_text())
        text = render(
            args,
            raw["results"],
            raw["scaling"],
            raw["machine_start"],
            raw["machine_end"],
            raw["elapsed_s"],
        )
        args.out.write_text(text)
        print(text)
        return
    started = time.perf_counter()
    machine_start = _harness.machine_description()
    machine_start["when"] = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    machine_start["command"] = "python -m tests.benchmarks.bench_peers " + " ".join(
        sys.argv[1:] if argv is None else argv
    )
    scratch = Path(tempfile.mkdtemp(prefix="saliency-bench-"))

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f}s] {message}", flush=True)

    results: dict[str, dict[str, Any]] = {}
    for model in args.models:
        large = model == "resnet18"
        for framework in args.frameworks:
            keys = ["toolkit", "native"] + ([] if large else ["native-numpy"])
            peers = PEERS[framework]
            if large and args.large_peers == "batched":
                peers = [p for p in peers if p not in UNBATCHED]
            elif large and args.large_peers == "none":
                peers = []
            if "pair" in peers:
                keys.append("toolkit-b1")  # PAIR's one row per call, for equal settings
            options = [
                "--framework",
                framework,
                "--model",
                model,
                "--n-images",
                str(args.n_images_large if large else args.n_images),
                "--batch-size",
                str(args.batch_size),
                "--n-samples",
                str(args.n_samples),
                "--repeats",
                str(args.repeats_large if large else args.repeats),
                "--corr-samples",
                str(0 if large else args.corr_samples),
                "--threads",
                str(args.threads),
                *([] if large else ["--profile"]),
                "--keys",
                *keys,
                *peers,
            ]
            log(f"{model} / {framework}: {', '.join(keys + peers)}")
            report = _harness.run_worker(
                sys.executable,
                "compare",
                options,
                scratch / f"{model}-{framework}.json",
                log=log,
                timeout=args.timeout,
                env=_harness.worker_environment(args.malloc, framework),
            )
            results[f"{model}/{framework}"] = report
            log(
                f"{model} / {framework} done in {report.get('elapsed_s', 0):.0f}s: "
                + _one_line(report)
            )

    scaling: dict[str, dict[str, Any]] = {}
    if args.scaling_n or args.scaling_batch:
        for framework in args.frameworks:
            options = [
                "--framework",
                framework,
                "--model",
                "small",
                "--n-images",
                "1",
                "--threads",
                str(args.threads),
                "--batch-size",
                str(args.batch_size),
                "--repeats",
                str(args.scaling_repeats),
                "--n-list",
                *map(str, args.scaling_n),
                "--batch-list",
                *map(str, args.scaling_batch),
                "--batch-n-samples",
                "100",
            ]
            log(f"scaling / {framework}")
            scaling[framework] = _harness.run_worker(
                sys.executable,
                "scaling",
                options,
                scratch / f"scaling-{framework}.json",
                log=log,
                timeout=args.timeout,
                env=_harness.worker_environment(args.malloc, framework),
                retries=0,
            )

    raw = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "results": results,
        "scaling": scaling,
        "machine_start": machine_start,
        "machine_end": _harness.machine_description(),
        "elapsed_s": time.perf_counter() - started,
    }
    raw_file = raw_path(args.out)
    raw_file.parent.mkdir(parents=True, exist_ok=True)
    raw_file.write_text(json.dumps(raw, indent=1, default=float))
    log(f"raw results in {raw_file} (re-render with --from-json)")
    text = render(args, results, scaling, machine_start, raw["machine_end"], raw["elapsed_s"])
    args.out.write_text(text)
    log(f"wrote {args.out}")
    print(text)


def _one_line(report: dict[str, Any]) -> str:
    parts = []
    for key, entry in report.get("contenders", {}).items():
        if entry.get("times"):
            parts.append(f"{key} {np.median(entry['times']):.2f}s")
        elif entry.get("error"):
            parts.append(f"{key} ERROR")
    for key, why in report.get("crashed", {}).items():
        parts.append(f"{key} CRASHED ({why})")
    if report.get("failed"):
        parts.append(f"FAILED: {report['failed'][:200]}")
    return ", ".join(parts)


# ---------------------------------------------------------------------------- report


def _median(entry: dict[str, Any]) -> float | None:
    return float(np.median(entry["times"])) if entry.get("times") else None


def _rounds(numerator: dict[str, Any], denominator: dict[str, Any]) -> list[float]:
    """Per-round time ratios of two contenders timed in the same rounds."""
    top, bottom = numerator.get("times") or [], denominator.get("times") or []
    if not top or len(top) != len(bottom):
        return []
    return [t / b for t, b in zip(top, bottom, strict=True)]


def _ratio_text(rounds: list[float]) -> str:
    """The median per-round ratio and, for several rounds, their range."""
    if not rounds:
        return "-"
    median = float(np.median(rounds))
    if len(rounds) < 3:
        return f"{median:.3f}"
    return f"{median:.3f} ({min(rounds):.2f}-{max(rounds):.2f})"


def _verdict_faster(rounds: list[float]) -> str:
    """'faster than' with a tolerance: medians within 5% of parity are not a result."""
    median = float(np.median(rounds))
    if median <= 0.95:
        return "yes"
    if median < 1.05:
        return "parity (within 5%)"
    return "**no**"


def _fmt(value: float | None, spec: str, missing: str = "-") -> str:
    return missing if value is None else format(value, spec)


def render(
    args: argparse.Namespace,
    results: dict[str, dict[str, Any]],
    scaling: dict[str, dict[str, Any]],
    machine_start: dict[str, str],
    machine_end: dict[str, str],
    elapsed: float,
) -> str:
    lines: list[str] = []
    add = lines.append
    versions = _harness.package_versions(VERSIONS)
    now = machine_start.get("when", "?")
    command = machine_start.get("command", "?")
    add("# SmoothGrad: the toolkit against native loops and peer libraries")
    add("")
    add(
        f"Written by `tests/benchmarks/bench_peers.py` (`make bench`), run started {now}, "
        f"took "
        f"{elapsed / 60:.1f} minutes; command `{command.strip()}`. Do not edit by hand."
    )
    add("")
    add("## Machine and versions")
    add("")
    add(
        f"- CPU: {machine_start['cpu']}, {machine_start['cpus']} CPUs visible, "
        f"{machine_start['memory']} memory, {machine_start['os']}, Python "
        f"{machine_start['python']}; CPU only (no GPU)."
    )
    add(
        f"- Load average (1, 5, 15 min) at the start: {machine_start['load']}; at the end: "
        f"{machine_end['load']}. The machine is shared: every timing is a median of rounds "
        "in which all contenders of a framework run once, in rotated order, so outside load "
        "falls on all of them alike; compare ratios, not absolute times."
    )
    add("- " + ", ".join(f"{name} {version}" for name, version in versions.items()))
    add("")
    add("## Settings")
    add("")
    add(
        "- Models (`tests/benchmarks/models.py`), the same numpy weights loaded into every "
        "framework: **small**, a ResNet-style CNN, 64x64x3 input, 9 convolutions (two strided "
        "1x1 shortcut convolutions), 10 classes, 78k parameters; **resnet18**, ResNet-18's "
        "shape (biases instead of batch norm), 224x224x3, 1000 classes, 11.7M parameters. "
        "PyTorch runs NCHW, TensorFlow and JAX NHWC; maps are compared in NHWC."
    )
    add(
        f"- Inputs: {args.n_images} images (small) and {args.n_images_large} image "
        "(resnet18), each spanning exactly [0, 1]; target class i for image i. "
        f"n_samples={args.n_samples}, signed SmoothGrad (the mean of the gradients)."
    )
    add(
        "- Noise: sigma = 0.15 for every contender. The images span [0, 1], so the relative "
        "conventions (toolkit `noise_level`, PAIR `stdev_spread`, tf-keras-vis `smooth_noise`: "
        "sigma = level x (max - min) per image) and the absolute ones (Captum `stdevs`, "
        "xplique `noise`) give the same sigma."
    )
    add(
        f"- Rows per model call: {args.batch_size} for the toolkit (`batch_size`), the "
        f"native loops, Captum (`nt_samples_batch_size` = {args.batch_size} / images) and "
        f"xplique (`batch_size`). PAIR calls the model once per noisy sample (1 row) and "
        "tf-keras-vis once per sample for all images at once (rows = images); neither lets "
        "the caller choose, so they run at their own fixed batch size, and 'toolkit "
        "(batch_size=1)' runs the toolkit at PAIR's setting for a comparison at equal "
        "settings (its map equals the toolkit's: the result does not depend on batch_size)."
    )
    threads = (
        "the frameworks' default thread counts"
        if args.threads <= 0
        else f"{args.threads} thread per framework (`--threads {args.threads}`)"
    )
    add(
        f"- Timing: one warm-up run, then {args.repeats} interleaved rounds (small) and "
        f"{args.repeats_large} (resnet18, 1 image: one run is 5-15 s on one core); 'median "
        "time' is the median over rounds and 'toolkit / contender' the median of the "
        "per-round ratios (below 1: the toolkit is faster), with their range in brackets. "
        "Threads: "
        f"{threads}. On this 2-core machine shared with other jobs, two threads on two "
        "busy cores wait for each other at every parallel region (PyTorch ran 4-20x "
        "slower whenever another job took a core), so single-threaded runs are the only "
        "stable comparison; 'CPU use' (CPU seconds per wall second) shows the threads a run "
        "really kept busy (XLA ignores part of its thread limit: JAX shows about 1.4). "
        "With more threads the model passes get faster but the toolkit's own numpy work "
        "(noise, sums) does not, so its share grows; see the profile in "
        "`python -m tests.benchmarks.bench_adapters --profile`."
        + (
            " ResNet-18 peers: only the batched ones (Captum, xplique); PAIR and tf-keras-vis "
            "were left out (`--large-peers all` adds them)."
            if args.large_peers == "batched"
            else ""
        )
    )
    if args.malloc in ("torch", "all"):
        which = "PyTorch workers run" if args.malloc == "torch" else "All workers run"
        add(
            f"- Allocator (`--malloc {args.malloc}`): {which} with `MALLOC_MMAP_THRESHOLD_` "
            "and `MALLOC_TRIM_THRESHOLD_` set to 4 GiB, so glibc keeps freed memory for the "
            "next call. With glibc's defaults PyTorch unmaps its activation buffers after "
            "every call and touches fresh pages on the next: about 700,000 page faults "
            "(2.7 GB) per ResNet-18 run and 50,000 per small-model run, a quarter of the run "
            "time and most of PyTorch's round-to-round noise here. Every contender of a "
            "framework runs in the same process, so all get it alike (toolkit and native loop "
            "sped up equally: ResNet-18 6.3-6.6 s -> 4.8-4.9 s, small 0.61 -> 0.46 s); PyTorch "
            "users on CPU get the same from these variables or from jemalloc/tcmalloc. "
            + (
                "TensorFlow and JAX keep glibc's defaults (TensorFlow gained 18% from the "
                "setting too, JAX lost about 9%). "
                if args.malloc == "torch"
                else ""
            )
            + "`--malloc default` measures glibc as configured everywhere."
        )
    else:
        add("- Allocator: glibc as configured (`--malloc default`).")
    add(
        "- Memory: peak RSS of one run minus RSS just before it (after `gc.collect()` and "
        "`malloc_trim(0)`; the high-water mark is reset through `/proc/self/clear_refs`), in "
        "the same process as the timing. It is what a call needs beyond the model, the "
        "framework and the framework's own buffer pools: TensorFlow and XLA keep activation "
        "buffers pooled after the warm-up, PyTorch returns them to the allocator, so compare "
        "within a framework. The n_samples=500 column is measured after every contender's "
        "timed rounds; a rise shared by all contenders of a framework is the allocator's "
        "(heap fragmentation), not the method's: the scaling table below measures the "
        "toolkit alone."
    )
    add(
        f"- Agreement: Pearson correlation of each contender's map with the toolkit's "
        f"(smallest over images), at n_samples={args.corr_samples} on the small model "
        f"(independent noise; target > {TARGET_CORRELATION}), and at n_samples="
        f"{args.n_samples} on ResNet-18. 'toolkit (other seed)' is the toolkit against itself "
        "with other noise: the most any independent run can reach. The 'native loop (numpy "
        "noise)' draws the toolkit's own noise stream, so its map must equal the toolkit's "
        "(fairness check: max |difference| / max |map| shown)."
    )
    add("")
    for model in args.models:
        _render_model(add, args, model, results)
    if scaling:
        _render_scaling(add, args, scaling)
    _render_profile(add, args, results)
    _render_targets(add, args, results, scaling)
    _render_problems(add, results, scaling)
    _render_peer_notes(add)
    return "\n".join(lines) + "\n"


def _render_model(
    add: Any, args: argparse.Namespace, model: str, results: dict[str, dict[str, Any]]
) -> None:
    large = model == "resnet18"
    title = "resnet18: 224x224x3, ResNet-18-sized" if large else "small: 64x64x3 ResNet-style CNN"
    add(f"## {title}")
    add("")
    corr_header = (
        f"corr. with toolkit, n={args.n_samples}"
        if large
        else f"corr. with toolkit, n={args.corr_samples}"
    )
    header = [
        "framework",
        "contender",
        "rows per model call",
        "median time (s)",
        "toolkit / contender",
        "CPU use",
        f"extra peak RSS n={args.n_samples} (MiB)",
    ]
    if not large:
        header.append(f"extra peak RSS n={args.corr_samples} (MiB)")
    header.append(corr_header)
    add("| " + " | ".join(header) + " |")
    add("|" + "|".join(["---"] * 2 + ["---:"] * (len(header) - 2)) + "|")
    for framework in args.frameworks:
        report = results.get(f"{model}/{framework}", {})
        entries = report.get("contenders", {})
        toolkit_entry = entries.get("toolkit", {})
        for key, entry in entries.items():
            time_s = _median(entry)
            cpu_use = float(np.median(entry["cpu_use"])) if entry.get("cpu_use") else None
            if key == "toolkit":
                correlation = report.get(
                    "toolkit_self_correlation" if large else "toolkit_self_corr_correlation"
                )
                corr_text = f"{_fmt(correlation, '.4f')} (other seed)"
            elif entry.get("exact_difference") is not None:
                corr_text = (
                    f"same noise as the toolkit: max difference "
                    f"{entry['exact_difference']:.1e} of max"
                    + (" (other kernels at batch 1)" if key == "toolkit-b1" else "")
                )
            else:
                corr_text = _fmt(entry.get("correlation" if large else "corr_correlation"), ".4f")
            row = [
                framework,
                entry["name"],
                entry["rows_per_call"],
                _fmt(time_s, ".3f", "not measurable"),
                "1" if key == "toolkit" else _ratio_text(_rounds(toolkit_entry, entry)),
                _fmt(cpu_use, ".2f"),
                _fmt(entry.get("memory_mib"), ".1f"),
            ]
            if not large:
                twin = entry.get("exact_difference") is not None
                row.append("(not rerun)" if twin else _fmt(entry.get("corr_memory_mib"), ".1f"))
            row.append(corr_text)
            if entry.get("error"):
                row[3] = "error (see below)"
            add("| " + " | ".join(row) + " |")
        for key in report.get("crashed", {}):
            add(
                "| "
                + " | ".join(
                    [framework, key, "-", "crashed (see below)"] + ["-"] * (len(header) - 4)
                )
                + " |"
            )
        if report.get("failed"):
            add(
                "| "
                + " | ".join([framework, "(worker failed, see below)"] + [""] * (len(header) - 2))
                + " |"
            )
    add("")
    if "jax" in args.frameworks:
        add(
            "JAX has no SmoothGrad library to compare with (Captum is PyTorch-only, xplique "
            "and tf-keras-vis are TensorFlow-only, PAIR's callback works with anything but is "
            "measured with the PyTorch and TensorFlow callbacks), so JAX is measured against "
            "the native `jit(vmap(grad))` loop only."
        )
        add("")


def _render_scaling(add: Any, args: argparse.Namespace, scaling: dict[str, dict[str, Any]]) -> None:
    add("## Scaling of the toolkit (small model, 1 image)")
    add("")
    add(
        f"Time should grow linearly in n_samples (constant time per noisy row) and peak "
        f"memory should not grow at all: the toolkit streams chunks of batch_size rows and "
        f"keeps only running sums. Median of {args.scaling_repeats} runs after a warm-up; "
        f"memory from one more run. First table: batch_size {args.batch_size}; second: "
        f"n_samples 100. Below batch_size the only chunk is smaller (less memory), and with "
        f"a single chunk (n_samples = batch_size) nothing of an earlier chunk is alive "
        f"during the model pass, so flatness is judged from n_samples = 2 x batch_size on."
    )
    add("")
    add(
        "| framework | n_samples | batch_size | median time (s) | ms per noisy row | "
        "extra peak RSS (MiB) |"
    )
    add("|---|---:|---:|---:|---:|---:|")
    for framework, report in scaling.items():
        for row in report.get("scaling", []):
            if row["batch_size"] != args.batch_size:
                continue
            add(
                f"| {framework} | {row['n_samples']} | {row['batch_size']} | "
                f"{row['median_s']:.3f} | {1000 * row['median_s'] / row['n_samples']:.2f} | "
                f"{_fmt(row['memory_mib'], '.1f')} |"
            )
    add("")
    add(
        "| framework | n_samples | batch_size | median time (s) | ms per noisy row | "
        "extra peak RSS (MiB) |"
    )
    add("|---|---:|---:|---:|---:|---:|")
    for framework, report in scaling.items():
        rows = [
            r
            for r in report.get("scaling", [])
            if r["n_samples"] == 100 or r["batch_size"] != args.batch_size
        ]
        for row in sorted(rows, key=lambda r: r["batch_size"]):
            if row["n_samples"] != 100:
                continue
            add(
                f"| {framework} | {row['n_samples']} | {row['batch_size']} | "
                f"{row['median_s']:.3f} | {1000 * row['median_s'] / row['n_samples']:.2f} | "
                f"{_fmt(row['memory_mib'], '.1f')} |"
            )
    add("")


def _render_profile(add: Any, args: argparse.Namespace, results: dict[str, dict[str, Any]]) -> None:
    profiles = {
        framework: results.get(f"small/{framework}", {}).get("profile")
        for framework in args.frameworks
    }
    profiles = {framework: p for framework, p in profiles.items() if p}
    if not profiles:
        return
    add("## Where a toolkit run goes (small model, cProfile)")
    add("")
    add(
        "One toolkit run per framework under cProfile (cumulative seconds of each function "
        "as a share of the run). Everything outside the adapter call is the toolkit's own "
        "work; the native loops pay for their noise too, inside the framework. This "
        "accounting does not depend on outside load, unlike the timing ratios."
    )
    add("")
    add("| framework | part of the run | seconds | share |")
    add("|---|---|---:|---:|")
    for framework, profile in profiles.items():
        total = profile["toolkit_s"]
        for label, seconds in profile["toolkit_rows"]:
            label = label.replace("  ", "&nbsp;&nbsp;")
            add(f"| {framework} | {label} | {seconds:.4f} | {100 * seconds / total:.1f}% |")
    add("")
    add(
        f"Noise for one chunk of {args.batch_size} rows (median of 21, milliseconds): numpy "
        "as the toolkit makes it, and the framework's generator as the native loops do."
    )
    add("")
    add("| framework | numpy (toolkit) | framework generator (native loop) |")
    add("|---|---:|---:|")
    for framework, profile in profiles.items():
        noise = profile.get("noise_ms", {})
        add(
            f"| {framework} | {_fmt(noise.get('numpy'), '.2f')} | "
            f"{_fmt(noise.get('native'), '.2f')} |"
        )
    add("")


def _render_targets(
    add: Any,
    args: argparse.Namespace,
    results: dict[str, dict[str, Any]],
    scaling: dict[str, dict[str, Any]],
) -> None:
    add("## Targets")
    add("")
    add(
        "Ratios are medians of per-round ratios (range in brackets). 'Faster than a peer' "
        "counts as met below 0.95 and as parity between 0.95 and 1.05, which is within the "
        "round-to-round noise of this shared machine. PAIR and tf-keras-vis choose their own "
        "rows per model call (1, and one per image), so they are also compared with the "
        "toolkit at batch_size=1: equal settings. At batch_size=1 a small model's row costs "
        "a few milliseconds, so fixed costs per model call show: the core's per-chunk "
        "bookkeeping and the adapter's checks take 0.1-0.3 ms more per call than a minimal "
        "callback (`make bench-adapters` measures them on a tiny model); with chunks of 50 "
        "rows they vanish."
    )
    add("")
    add("| target | model | framework | value | met |")
    add("|---|---|---|---:|---|")
    for model in args.models:
        for framework in args.frameworks:
            entries = results.get(f"{model}/{framework}", {}).get("contenders", {})
            toolkit = entries.get("toolkit", {})
            rounds = _rounds(toolkit, entries.get("native", {}))
            if rounds:
                ratio = float(np.median(rounds))
                met = "yes" if ratio <= TARGET_OVERHEAD else "**no**"
                if ratio > TARGET_OVERHEAD and np.percentile(rounds, 25) <= 1.0:
                    met = "**no**, not resolved: a quarter of the rounds were at or below 1"
                add(
                    f"| toolkit / native loop <= {TARGET_OVERHEAD} | {model} | {framework} | "
                    f"{_ratio_text(rounds)} | {met} |"
                )
            for key, entry in entries.items():
                if key in ("toolkit", "toolkit-b1", "native", "native-numpy"):
                    continue
                rounds = _rounds(toolkit, entry)
                if rounds:
                    add(
                        f"| toolkit / {entry['name']} < 1 | {model} | {framework} | "
                        f"{_ratio_text(rounds)} | {_verdict_faster(rounds)} |"
                    )
                equal = _rounds(entries.get("toolkit-b1", {}), entry)
                if key in UNBATCHED and equal:
                    add(
                        f"| toolkit (batch_size=1) / {entry['name']} < 1, equal rows per call "
                        f"| {model} | {framework} | {_ratio_text(equal)} | "
                        f"{_verdict_faster(equal)} |"
                    )
                correlation = entry.get("corr_correlation")
                if correlation is not None:
                    met = "yes" if correlation > TARGET_CORRELATION else "**no**"
                    add(
                        f"| corr. {entry['name']} vs toolkit > {TARGET_CORRELATION} "
                        f"(n={args.corr_samples}) | {model} | {framework} | {correlation:.4f} "
                        f"| {met} |"
                    )
    for framework, report in scaling.items():
        rows = [
            r
            for r in report.get("scaling", [])
            if r["batch_size"] == args.batch_size and r["n_samples"] >= 2 * args.batch_size
        ]
        if len(rows) >= 2 and all(r["memory_mib"] is not None for r in rows):
            low, high = rows[0], rows[-1]
            growth = high["memory_mib"] - low["memory_mib"]
            allowed = max(16.0, 0.1 * low["memory_mib"])
            add(
                f"| toolkit memory flat in n_samples: growth from {low['n_samples']} to "
                f"{high['n_samples']} < max(16 MiB, 10%) | small | {framework} | "
                f"{growth:+.1f} MiB | {'yes' if growth < allowed else '**no**'} |"
            )
        linear = [
            r
            for r in report.get("scaling", [])
            if r["batch_size"] == args.batch_size and r["n_samples"] >= args.batch_size
        ]
        if len(linear) >= 3:
            per_row = np.array([r["median_s"] / r["n_samples"] for r in linear])
            middle = float(np.median(per_row))
            deviation = float(np.max(np.abs(per_row - middle)) / middle)
            add(
                f"| toolkit time linear in n_samples: time per noisy row within 15% of its "
                f"median (n >= {args.batch_size}) | small | {framework} | "
                f"{100 * deviation:.1f}% (median {1000 * middle:.2f} ms per row) | "
                f"{'yes' if deviation < 0.15 else '**no**'} |"
            )
    add("")


def _render_problems(
    add: Any, results: dict[str, dict[str, Any]], scaling: dict[str, dict[str, Any]]
) -> None:
    problems = []
    for name, report in [*results.items(), *((f"scaling/{k}", v) for k, v in scaling.items())]:
        for entry in report.get("contenders", {}).values():
            if entry.get("error"):
                problems.append(f"- {name}, {entry['name']}: `{entry['error'][:600]}`")
        for key, why in report.get("crashed", {}).items():
            problems.append(f"- {name}, {key}: {why}")
        if report.get("failed"):
            problems.append(f"- {name}: worker failed: `{report['failed'][:600]}`")
        if report.get("unfair"):
            problems.append(f"- {name}: fairness check failed: {report['unfair']}")
    add("## Contenders that could not run")
    add("")
    add("\n".join(problems) if problems else "None: every contender ran.")
    add("")


PEER_NOTES = """\
## Notes on the peers (read from their source, installed versions)

- **Captum 0.9.0** `NoiseTunnel(Saliency(model)).attribute(x, nt_type="smoothgrad",
  nt_samples=n, nt_samples_batch_size=k, stdevs=sigma, target=t, abs=False)`: `stdevs` is an
  absolute standard deviation; the noise is `torch.normal` from torch's global generator (no
  seed argument); `nt_samples_batch_size` counts noisy samples *per input*, so a call has
  k x (number of inputs) rows; `Saliency` returns |gradient| unless `abs=False`; every chunk
  also updates a sum of squares (kept for SmoothGrad-squared and VarGrad).
- **PAIR saliency 0.2.1** `GradientSaliency().GetSmoothedMask(x, call_model_function,
  call_model_args, stdev_spread=0.15, nsamples=n, magnitude=False)`: sigma is
  `stdev_spread x (max - min)` of the input (relative, like the toolkit's `noise_level`); one
  model call per noisy sample with a batch of one, noise from numpy's global
  `np.random.normal` in float64, float32 sums; `magnitude=True` (the default) averages squared
  gradients. `import saliency` also imports `saliency.tf1` (TensorFlow), and
  `saliency.core` imports scikit-image.
- **xplique 2.0.2** `attributions.SmoothGrad(model, batch_size=b, nb_samples=n, noise=sigma,
  reducer=None).explain(x, one_hot_targets)`: `noise` is an absolute standard deviation
  (`tf.random.normal(shape, 0, noise)` inside a `tf.function`); a model call has `batch_size`
  rows (the noisy copies of one input when `nb_samples >= batch_size`), fed through
  `tf.data`; the default `reducer="mean"` averages the map over channels. It requires
  `tensorflow[and-cuda]<=2.20` on Linux, so it is installed with `--no-deps`; `import xplique`
  then needs cv2 (opencv-python-headless), einops, scikit-learn, scikit-image, matplotlib,
  deprecated and tensorflow-probability, which refuses to import without `tf_keras`
  (installed with `--no-deps` too: it requires `tensorflow`, not `tensorflow-cpu`).
- **tf-keras-vis 0.8.7** `Saliency(model, clone=False)(CategoricalScore(t), x,
  smooth_samples=n, smooth_noise=0.15, keepdims=True, gradient_modifier=None,
  normalize_map=False)`: sigma is `smooth_noise x (max - min)` per input (relative); it draws
  all n x N noisy copies at once with numpy's global `np.random.normal` (float64), so its
  memory grows with n_samples, then calls the model once per sample with all N images (rows
  per call = N), under an eager `tf.GradientTape` (no `tf.function`). Its defaults give
  |gradient|, the maximum over channels and a map normalised to [0, 1]. It works with Keras 3
  (3.15, TensorFlow 2.21) as installed, with only a Keras warning about the input structure.
  Its eager tape goes through the strided 1x1 shortcut convolutions of both models and did
  not crash in these runs. Its wheel also installs a top-level `tests` package into
  site-packages.
- **JAX**: no SmoothGrad library exists for JAX, so the toolkit is compared with the native
  loop only.
"""


def _render_peer_notes(add: Any) -> None:
    add(PEER_NOTES.rstrip("\n"))


if __name__ == "__main__":
    main()
