"""Faithfulness metrics against Quantus 0.6 and against the model passes alone.

Run with ``.venv/bin/python -m tests.benchmarks.bench_metrics_faithfulness`` (Quantus and
PyTorch must be installed; about a minute on one core). A small CNN (two 3x3 convolutions
with max pooling, 10 classes) and 16 inputs of 1x28x28 go to

* ``deletion`` (``steps`` steps, softmax scores) and Quantus's ``PixelFlipping`` with
  ``features_in_step = 784 / steps``, the same curve;
* ``faithfulness_correlation`` and Quantus's ``FaithfulnessCorrelation`` (same number of
  subsets and subset size; the subsets themselves differ, as Quantus draws from numpy's
  global state);
* "model only": the same number of rows, already built, through the same
  ``adapters.torch.predict_fn`` in the same chunks as ours, which is the floor for any
  implementation that batches like ours.

Each is timed ``repeats`` times in interleaved rounds (round r runs every contender once,
in an order rotated by r); the report gives medians and the ratios ours / Quantus and
ours / model only. PyTorch runs one thread, so the figures do not depend on what else the
machine runs as much.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def _cnn(torch, seed: int):
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(16 * 7 * 7, 10),
    )
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            fan_in = int(np.prod(parameter.shape[1:])) if parameter.ndim > 1 else 16
            parameter.copy_(torch.from_numpy(rng.normal(
                scale=fan_in ** -0.5, size=tuple(parameter.shape)).astype(np.float32)))
    return model.eval()


def _model_only(predict, rows_per_input: int, n_inputs: int, batch_size: int,
                x: np.ndarray) -> Callable[[], None]:
    """The same rows (copies of x, already built) through predict_fn in the same chunks."""
    total = n_inputs * rows_per_input
    chunks = [np.repeat(x[:1], min(batch_size, total - start), axis=0)
              for start in range(0, total, batch_size)]

    def run() -> None:
        for chunk in chunks:
            predict(chunk)

    return run


def _time(contenders: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    names = list(contenders)
    for name in names:  # warm-up
        contenders[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            contenders[name]()
            times[name].append(time.perf_counter() - start)
    return {name: float(np.median(values)) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--n-inputs", type=int, default=16)
    parser.add_argument("--steps", type=int, default=49, help="deletion steps (divides 784)")
    parser.add_argument("--n-samples", type=int, default=100)
    parser.add_argument("--subset-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    if 784 % args.steps:
        parser.error("--steps must divide 784 (Quantus's features_in_step is 784 / steps)")

    import quantus
    import torch

    from adapters import torch as torch_adapter
    from saliency_core.metrics.faithfulness import deletion, faithfulness_correlation

    torch.set_num_threads(1)
    model = _cnn(torch, seed=0)
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 1, size=(args.n_inputs, 1, 28, 28)).astype(np.float32)
    maps = rng.normal(size=x.shape).astype(np.float32)
    predict = torch_adapter.predict_fn(model)
    y = predict(x).argmax(axis=1)
    n, batch_size = args.n_inputs, args.batch_size

    pixel_flipping = quantus.PixelFlipping(features_in_step=784 // args.steps,
                                           perturb_baseline=0.0, disable_warnings=True)
    correlation = quantus.FaithfulnessCorrelation(
        nr_runs=args.n_samples, subset_size=args.subset_size, perturb_baseline=0.0,
        return_aggregate=False, disable_warnings=True)

    def quantus_run(metric) -> Callable[[], object]:
        return lambda: metric(model=model, x_batch=x, y_batch=y, a_batch=maps,
                              channel_first=True, softmax=True, device="cpu",
                              batch_size=n)

    # the curves agree before anything is timed
    ours_curve = deletion(predict, x, maps, y, steps=args.steps, score="softmax",
                          batch_size=batch_size)
    theirs_curve = np.asarray(quantus_run(pixel_flipping)())
    agreement = float(np.abs(ours_curve.scores[:, 1:] - theirs_curve).max())

    rows = {
        "deletion": n * (args.steps + 1),
        "faithfulness_correlation": n * (args.n_samples + 1),
    }
    groups = {
        "deletion": {
            "ours": lambda: deletion(predict, x, maps, y, steps=args.steps, score="softmax",
                                     batch_size=batch_size),
            "quantus": quantus_run(pixel_flipping),
            "model only": _model_only(predict, args.steps + 1, n, batch_size, x),
        },
        "faithfulness_correlation": {
            "ours": lambda: faithfulness_correlation(
                predict, x, maps, y, n_samples=args.n_samples, subset_size=args.subset_size,
                score="softmax", seed=0, batch_size=batch_size),
            "quantus": quantus_run(correlation),
            "model only": _model_only(predict, args.n_samples + 1, n, batch_size, x),
        },
    }

    print(f"# faithfulness metrics vs Quantus {quantus.__version__} "
          f"(torch {torch.__version__}, numpy {np.__version__}, 1 thread, "
          f"{platform.processor() or platform.machine()})")
    print(f"# {n} inputs 1x28x28, small CNN, batch_size {batch_size}, median of "
          f"{args.repeats} interleaved runs; deletion curve vs PixelFlipping: max |diff| "
          f"{agreement:.2e}")
    print(f"{'metric':<26}{'rows':>6}{'ours ms':>10}{'quantus ms':>12}{'model ms':>10}"
          f"{'ours/quantus':>14}{'ours/model':>12}")
    for name, contenders in groups.items():
        medians = _time(contenders, args.repeats)
        ours, theirs, floor = medians["ours"], medians["quantus"], medians["model only"]
        print(f"{name:<26}{rows[name]:>6}{ours * 1e3:>10.1f}{theirs * 1e3:>12.1f}"
              f"{floor * 1e3:>10.1f}{ours / theirs:>14.3f}{ours / floor:>12.3f}")


if __name__ == "__main__":
    main()
