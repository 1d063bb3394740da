"""What one adapter call costs beyond the model: PyTorch's gradient_fn at one row per call.

Run: ``python -m tests.benchmarks.bench_call_overhead``. One PyTorch thread; for a tiny
linear model (where the fixed cost shows) and a small CNN, the median over rounds of the
time per call of ``adapters.torch.gradient_fn(model)`` and of the shortest hand-written
callback that computes the same gradient (``from_numpy``, forward, ``gather``, backward,
``numpy``), and their ratio. The machines these run on are shared, so read the figures as
medians of a noisy measurement.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from adapters import torch as torch_adapter


def _models() -> dict[str, tuple[torch.nn.Module, np.ndarray]]:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    small = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(8, 10),
    ).eval()
    return {
        "tiny linear (12 -> 10)": (torch.nn.Linear(12, 10).eval(),
                                   rng.random((1, 12), dtype=np.float32)),
        "small CNN (3x32x32)": (small, rng.random((1, 3, 32, 32), dtype=np.float32)),
    }


def _minimal(model: torch.nn.Module):
    def gradients(x: np.ndarray, target: np.ndarray) -> np.ndarray:
        inputs = torch.from_numpy(x).requires_grad_(True)
        output = model(inputs)
        (grad,) = torch.autograd.grad(output.gather(1, torch.from_numpy(target)[:, None]).sum(),
                                      inputs)
        return grad.numpy()

    return gradients


def _per_call_us(fn, x: np.ndarray, target: np.ndarray, calls: int, rounds: int) -> float:
    for _ in range(50):
        fn(x, target)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn(x, target)
        times.append((time.perf_counter() - start) / calls * 1e6)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=9)
    args = parser.parse_args()
    torch.set_num_threads(1)
    target = np.array([3])
    print("| model | hand-written (us/call) | adapter (us/call) | ratio |")
    print("|---|---:|---:|---:|")
    for name, (model, x) in _models().items():
        minimal = _per_call_us(_minimal(model), x, target, args.calls, args.rounds)
        adapter = _per_call_us(torch_adapter.gradient_fn(model), x, target, args.calls,
                               args.rounds)
        print(f"| {name} | {minimal:.1f} | {adapter:.1f} | {adapter / minimal:.2f} |")


if __name__ == "__main__":
    main()
