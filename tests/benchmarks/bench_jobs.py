"""Data-set jobs: throughput in process and on Ray with 1 and 2 workers, and Ray's overhead.

Run with ``python -m tests.benchmarks.bench_jobs`` (``make bench-jobs``; needs the ``ray``
extra). It writes ``tests/benchmarks/RESULTS-jobs.md`` and prints it; ``--quick`` is a
smoke run on fewer inputs, written to ``out/bench/RESULTS-jobs-quick.md``.

The same job runs four times, each into a fresh folder: SmoothGrad (``n_samples`` noisy
copies, ``batch_size`` rows per call) of the benchmark's ``small`` PyTorch CNN
(:mod:`tests.benchmarks.models`, 64 x 64 x 3 inputs, 10 classes) over ``inputs`` arrays,
``shard_size`` inputs a shard, with the deletion AUC:

* ``local``: the in-process engine, PyTorch with its default threads;
* ``local, 1 thread``: the same with ``torch.set_num_threads(1)``, as each Ray actor runs
  (Ray gives an actor of 1 CPU one thread);
* ``ray, 1 worker`` and ``ray, 2 workers``: the Ray engine on a local Ray of 2 CPUs,
  started once before (its start is timed on its own); each run includes starting its
  actors (a Python process each, importing PyTorch and loading the model).

For each: the wall time of ``adapters.jobs.run``, the inputs per second, and the time the
shards themselves took (the sum of their markers' ``seconds``: reading, the model, the
metric, not the writing). Ray's overhead per input is the Ray run's wall time less the
1-thread local run's, over the inputs. Every run's maps are checked to be identical to the
local run's. An untimed local run on 2 inputs warms PyTorch up first.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from tests.benchmarks.models import SPECS, make_inputs, make_weights, torch_model

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def small_cnn():  # noqa: ANN201 - a torch module; torch is imported by the worker
    """The benchmark's ``small`` CNN in PyTorch, the same weights every time."""
    spec = SPECS["small"]
    return torch_model(spec, make_weights(spec))


def _machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    return (f"{model}, {os.cpu_count()} CPUs (shared with other work while it ran), "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}, "
            f"load {load}")


def _shard_seconds(out: Path) -> float:
    return sum(json.loads(p.read_text())["seconds"] for p in out.glob("shard-*.json"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=64)
    parser.add_argument("--n-samples", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--shard-size", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="16 inputs, n_samples 8")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.quick:
        args.inputs, args.n_samples = 16, 8
    target = args.out or (ROOT / "out" / "bench" / "RESULTS-jobs-quick.md" if args.quick
                          else HERE / "RESULTS-jobs.md")

    import ray
    import torch

    from adapters import jobs

    spec = SPECS["small"]
    x = make_inputs(spec, args.inputs)
    job = {"method": "smoothgrad", "n_samples": args.n_samples, "batch_size": args.batch_size,
           "seed": 0, "metrics": ("deletion_auc",), "deletion_steps": 10,
           "shard_size": args.shard_size, "parquet": False}
    started = time.perf_counter()
    rows = []
    reference = None
    default_threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as scratch:
        def timed(name: str, **engine: object) -> None:
            nonlocal reference
            out = Path(scratch) / name.replace(" ", "-").replace(",", "")
            begin = time.perf_counter()
            result = jobs.run(x, small_cnn, out=out, **job, **engine)  # type: ignore[arg-type]
            wall = time.perf_counter() - begin
            maps = jobs.read_results(out).maps
            if reference is None:
                reference = maps
            rows.append({"run": name, "wall": wall, "shards": _shard_seconds(out),
                         "written": result.written,
                         "identical": bool(np.array_equal(maps, reference))})
            print(f"{name}: {wall:.2f} s", flush=True)

        # warm-up, untimed: PyTorch's first calls (kernel choice, allocations)
        jobs.run(x[:2], small_cnn, out=Path(scratch) / "warm-up", **job)  # type: ignore[arg-type]
        timed("local")
        torch.set_num_threads(1)
        timed("local, 1 thread")
        torch.set_num_threads(default_threads)
        begin = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - begin
        try:
            timed("ray, 1 worker", engine="ray", workers=1)
            timed("ray, 2 workers", engine="ray", workers=2)
        finally:
            ray.shutdown()
    total = time.perf_counter() - started
    one_thread = next(r for r in rows if r["run"] == "local, 1 thread")["wall"]
    lines = [
        "# Data-set jobs: in process and on Ray",
        "",
        f"Written by `python -m tests.benchmarks.bench_jobs{' --quick' if args.quick else ''}`"
        f" on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, in {total:.0f} s. Machine: "
        f"{_machine()}; numpy {np.__version__}, torch {torch.__version__}, ray "
        f"{ray.__version__}. One run each.",
        "",
        f"Settings: `adapters.jobs.run` over {args.inputs} inputs 64x64x3 float32 (arrays), "
        f"the benchmark's `small` PyTorch CNN (74k parameters), `method=\"smoothgrad\"`, "
        f"`n_samples={args.n_samples}`, `batch_size={args.batch_size}`, metric "
        f"`deletion_auc` (`deletion_steps=10`), `shard_size={args.shard_size}` "
        f"({-(-args.inputs // args.shard_size)} shards), tables as CSV only. PyTorch's "
        f"default threads here: {default_threads}. The local Ray (2 CPUs, 1 CPU per worker) "
        f"was started once before the Ray runs, in {ray_start:.1f} s (not in their times); "
        "each Ray run's time includes starting its actors.",
        "",
        "| run | wall (s) | inputs/s | shards' own time (s) | Ray overhead per input (ms) "
        "| maps identical to local |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        overhead = ("" if not row["run"].startswith("ray") else
                    f"{(row['wall'] - one_thread) / args.inputs * 1000:.1f}")
        lines.append(f"| {row['run']} | {row['wall']:.2f} | {args.inputs / row['wall']:.1f} | "
                     f"{row['shards']:.2f} | {overhead} | "
                     f"{'yes' if row['identical'] else 'NO'} |")
    lines += [
        "",
        "Shards' own time: the sum over shards of the time from reading a shard to its maps "
        "and metrics (its marker's `seconds`), across workers; with 2 workers it runs in "
        "parallel. Ray overhead per input: (the Ray run's wall time - the 1-thread local "
        "run's) / inputs, which counts the actors' start (process, PyTorch import, model), "
        "Ray Data's scheduling and the transfer of records, spread over the inputs: it "
        "shrinks as a job grows, since the actors start once per job.",
        "",
    ]
    text = "\n".join(lines)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
