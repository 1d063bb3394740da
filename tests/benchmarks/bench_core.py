"""The core's overhead over a hand-written numpy SmoothGrad loop with the same callback.

Run with ``make bench-core`` (or ``.venv/bin/python -m tests.benchmarks.bench_core``).
The callback costs ``cost_ms`` milliseconds per row (it sleeps, so the figure measures the
core's own work: noise, chunking, checks, running sums). Both sides draw the same noise
from the same seed, call the callback on the same chunks and average the results; the
report gives the median of ``repeats`` runs of each and their ratio.

Target: under 2% overhead (ratio < 1.02) for a 1 ms/row callback.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from saliency_core import noise_sigma, smoothgrad


def sleeping_callback(cost_ms: float):
    def fn(x: np.ndarray, target: np.ndarray | None) -> np.ndarray:
        time.sleep(cost_ms * 1e-3 * x.shape[0])
        return x  # a gradient shaped like x; its values do not matter here

    return fn


def hand_written(fn, x: np.ndarray, *, n_samples: int, noise_level: float, batch_size: int,
                 seed: int) -> np.ndarray:
    """The tight loop a user would write: per input, noise in chunks, a float64 sum."""
    rng = np.random.default_rng(seed)
    sigmas = noise_sigma(x, noise_level).astype(np.float32)
    result = np.zeros(x.shape, dtype=np.float64)
    for i in range(x.shape[0]):
        for start in range(0, n_samples, batch_size):
            k = min(batch_size, n_samples - start)
            noise = rng.standard_normal((k, *x.shape[1:]), dtype=np.float32)
            result[i] += fn(x[i] + sigmas[i] * noise, None).sum(axis=0)
    return (result / n_samples).astype(x.dtype)


def median_seconds(run, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cost-ms", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--n-samples", type=int, nargs="+", default=[10, 100, 1000])
    args = parser.parse_args()

    # one input, so that the hand-written loop's chunks are the core's chunks
    x = np.random.default_rng(0).uniform(size=(1, 64, 64, 3)).astype(np.float32)
    fn = sleeping_callback(args.cost_ms)
    print(f"input {x.shape[1:]} float32, callback {args.cost_ms} ms/row, "
          f"batch_size {args.batch_size}, median of {args.repeats} runs")
    print("| n_samples | hand-written loop (s) | smoothgrad (s) | ratio |")
    print("|---:|---:|---:|---:|")
    for n in args.n_samples:
        # iid noise: the hand-written loop draws numpy's standard normal in row order
        options = dict(n_samples=n, noise_level=0.15, noise="iid", batch_size=args.batch_size,
                       seed=0)
        check = np.abs(smoothgrad(fn, x, **options) - hand_written(fn, x, **options)).max()
        if check > 1e-5:
            raise SystemExit(f"the two loops disagree by {check}: the benchmark is not fair")
        loop = median_seconds(lambda: hand_written(fn, x, **options), args.repeats)  # noqa: B023
        core = median_seconds(lambda: smoothgrad(fn, x, **options), args.repeats)  # noqa: B023
        print(f"| {n} | {loop:.4f} | {core:.4f} | {core / loop:.4f} |")


if __name__ == "__main__":
    main()
