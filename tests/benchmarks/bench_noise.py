"""SmoothGrad's noise schemes: the Monte Carlo error of the map at 10, 20 and 50 samples.

Run with ``python -m tests.benchmarks.bench_noise`` (``make bench-noise``; PyTorch and
scikit-learn must be installed, as ``.venv`` has them). It writes
``tests/benchmarks/RESULTS-noise.md`` and prints it; ``--quick`` is a smoke run of a few
seconds, written to ``out/bench/RESULTS-noise-quick.md``.

Three real models of different kinds, each with the gradient callback of
``adapters.torch.gradient_fn`` and the map of the predicted class:

* ``demo CNN``: the shipped digits CNN (``adapters.demo.model("torch")``, 28x28x1, three
  3x3 convolutions with ReLU and average pooling, global average pool), on its held-out
  sample digits;
* ``breast-cancer MLP``: a 30-32-32-2 ReLU network trained here (seeded, about a second)
  on scikit-learn's breast-cancer table (569 tumours, 30 features, standardised on the
  training split), on held-out rows;
* ``8x8 digits CNN``: another architecture trained here (seeded, a few seconds) on
  scikit-learn's 8x8 digits: conv 3x3 (16) - ReLU - max pool 2 - conv 3x3 (32) - ReLU -
  flatten - dense 10, on held-out digits.

For every scheme of ``saliency_core.NOISE_SCHEMES``, every aggregate and n = 10, 20, 50
(``noise_level=0.15``), the relative squared error of the map of each input,
``||map - ref||^2 / ||ref||^2``, against a reference of 2,000 iid samples drawn from
another seed, is averaged over the inputs and over repeated runs with different seeds. The
error of iid sampling falls as 1/n, so a scheme's error at n samples is worth
``n * err_iid(n) / err_scheme(n)`` iid samples: the main table. The reference has an error
of its own, about ``err_iid(n) * n / 2000``, which is part of every measured error and so
caps what the main table can show; the second table takes it out (the error that remains
is each scheme's own), and says ``>`` where the measured error is within a tenth of the
reference's share. All aggregates of one (scheme, n, seed) see the same noise, so the
gradients are computed once and replayed for the other three (the rows are checked to be
the same).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from saliency_core import AGGREGATES, NOISE_SCHEMES, smoothgrad
from tests.benchmarks._harness import machine_description, package_versions

HERE = Path(__file__).resolve().parent
N_VALUES = (10, 20, 50)
NOISE_LEVEL = 0.15


@dataclass
class Case:
    name: str
    description: str
    fn: Any
    x: np.ndarray
    target: np.ndarray


class Replay:
    """A callback that computes each chunk once and replays it for the same rows."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn
        self.store: list[tuple[np.ndarray, np.ndarray]] = []
        self.position = 0
        self.rows = 0

    def start(self, record: bool) -> None:
        if record:
            self.store = []
        self.recording, self.position = record, 0

    def __call__(self, x: np.ndarray, target: np.ndarray | None) -> np.ndarray:
        if self.recording:
            result = self.fn(x, target)
            self.store.append((x.copy(), result))
            self.rows += len(x)
            return result
        rows, result = self.store[self.position]
        self.position += 1
        if not np.array_equal(rows, x):
            raise SystemExit("replayed rows differ: the aggregates did not see the same noise")
        return result


# --- the three models -------------------------------------------------------------------------


def demo_cnn(torch: Any, n_inputs: int) -> Case:
    from adapters import demo

    model = demo.model("torch")
    images, _ = demo.load_samples()
    x = images[:n_inputs]
    target = model.predict_fn()(x).argmax(axis=1)
    accuracy = demo.load_metadata().get("test_accuracy")
    note = f", held-out accuracy {accuracy:.3f}" if isinstance(accuracy, float) else ""
    return Case("demo CNN", f"shipped digits CNN, 28x28x1 (NHWC){note}", model.gradient_fn(),
                x, target)


def _split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(n)
    cut = int(0.8 * n)
    return order[:cut], order[cut:]


def _train(torch: Any, model: Any, x: np.ndarray, y: np.ndarray, *, epochs: int,
           batch: int, lr: float, seed: int) -> None:
    torch.manual_seed(seed)
    inputs, labels = torch.from_numpy(x), torch.from_numpy(y)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for chunk in torch.randperm(len(x), generator=generator).split(batch):
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(inputs[chunk]), labels[chunk])
            loss.backward()
            optimiser.step()
    model.eval()


def _accuracy(torch: Any, model: Any, x: np.ndarray, y: np.ndarray) -> float:
    with torch.no_grad():
        return float((model(torch.from_numpy(x)).argmax(dim=1).numpy() == y).mean())


def breast_cancer_mlp(torch: Any, n_inputs: int) -> Case:
    from sklearn.datasets import load_breast_cancer

    from adapters import torch as torch_adapter

    data = load_breast_cancer()
    train, held_out = _split(len(data.target), seed=0)
    mean, std = data.data[train].mean(axis=0), data.data[train].std(axis=0)
    x = ((data.data - mean) / std).astype(np.float32)
    y = data.target.astype(np.int64)
    torch.manual_seed(0)
    nn = torch.nn
    model = nn.Sequential(nn.Linear(30, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(),
                          nn.Linear(32, 2))
    _train(torch, model, x[train], y[train], epochs=60, batch=64, lr=3e-3, seed=0)
    accuracy = _accuracy(torch, model, x[held_out], y[held_out])
    inputs = x[held_out[:n_inputs]]
    target = torch_adapter.predict_fn(model)(inputs).argmax(axis=1)
    return Case("breast-cancer MLP", f"30-32-32-2 ReLU MLP, held-out accuracy {accuracy:.3f}",
                torch_adapter.gradient_fn(model), inputs, target)


def digits_cnn(torch: Any, n_inputs: int) -> Case:
    from sklearn.datasets import load_digits

    from adapters import torch as torch_adapter

    data = load_digits()
    train, held_out = _split(len(data.target), seed=1)
    x = (data.images / 16.0).astype(np.float32)[:, None]  # (n, 1, 8, 8), NCHW
    y = data.target.astype(np.int64)
    torch.manual_seed(1)
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(32 * 4 * 4, 10))
    _train(torch, model, x[train], y[train], epochs=8, batch=64, lr=3e-3, seed=1)
    accuracy = _accuracy(torch, model, x[held_out], y[held_out])
    inputs = x[held_out[:n_inputs]]
    target = torch_adapter.predict_fn(model)(inputs).argmax(axis=1)
    return Case("8x8 digits CNN",
                f"conv-ReLU-maxpool-conv-ReLU-dense, 1x8x8 (NCHW), held-out accuracy "
                f"{accuracy:.3f}", torch_adapter.gradient_fn(model), inputs, target)


# --- the errors -------------------------------------------------------------------------------


def relative_errors(maps: np.ndarray, reference: np.ndarray) -> np.ndarray:
    axes = tuple(range(1, maps.ndim))
    return (np.square(maps - reference).sum(axis=axes)
            / np.square(reference).sum(axis=axes))


def measure(case: Case, *, repeats: int, reference_samples: int, batch_size: int,
            ) -> tuple[dict[tuple[str, str, int], float], int]:
    """Mean relative squared errors by (aggregate, scheme, n), and the model rows used."""
    replay = Replay(case.fn)
    options = dict(noise_level=NOISE_LEVEL, batch_size=batch_size)
    references = {}
    for aggregate in AGGREGATES:
        replay.start(record=aggregate == AGGREGATES[0])
        references[aggregate] = smoothgrad(replay, case.x, case.target, aggregate=aggregate,
                                           n_samples=reference_samples, seed=10**6,
                                           **options)
    replay.store = []
    sums: dict[tuple[str, str, int], float] = {}
    for scheme in NOISE_SCHEMES:
        for n in N_VALUES:
            for repeat in range(repeats):
                for aggregate in AGGREGATES:
                    replay.start(record=aggregate == AGGREGATES[0])
                    maps = smoothgrad(replay, case.x, case.target, aggregate=aggregate,
                                      n_samples=n, noise=scheme, seed=repeat, **options)
                    key = (aggregate, scheme, n)
                    error = relative_errors(maps, references[aggregate]).mean()
                    sums[key] = sums.get(key, 0.0) + error / repeats
    return sums, replay.rows


# --- the report -------------------------------------------------------------------------------


def equivalents(errors: dict, aggregate: str, scheme: str, reference_samples: int,
                corrected: bool) -> str:
    cells = []
    for n in N_VALUES:
        iid, own = errors[(aggregate, "iid", n)], errors[(aggregate, scheme, n)]
        if not corrected:
            cells.append(f"{n * iid / own:.0f}")
            continue
        # measured = c / n + c / R for iid (c / R: the reference's own error), so
        # c = n * iid / (1 + n / R); the scheme's own error is measured - c / R
        c = n * iid / (1 + n / reference_samples)
        remaining = own - c / reference_samples
        if remaining <= 0.1 * own:
            cells.append(f">{c / (0.1 * own):.0f}")
        else:
            cells.append(f"{c / remaining:.0f}")
    return " / ".join(cells)


def render(results: list[tuple[Case, dict, int, float]], args: argparse.Namespace,
           machine: dict[str, str], started: str, seconds: float, threads: int) -> str:
    schemes = [s for s in NOISE_SCHEMES if s != "iid"]
    n_text = " / ".join(str(n) for n in N_VALUES)
    lines = [
        "# SmoothGrad noise schemes: equivalent iid samples",
        "",
        f"Written by `python -m tests.benchmarks.bench_noise{' --quick' if args.quick else ''}`"
        f" on {started}, in {seconds:.0f} s. Machine: {machine['cpu']}, {machine['cpus']} CPUs, "
        f"{machine['memory']}, {machine['os']}, Python {machine['python']}, load "
        f"{machine['load']}; PyTorch with {threads} thread(s).",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in
                                 package_versions(["numpy", "torch", "scikit-learn"]).items())
        + ".",
        "",
        f"Settings: `noise_level={NOISE_LEVEL}`, the map of the predicted class, "
        f"{args.inputs} inputs per model, {args.repeats} runs (seeds 0..{args.repeats - 1}) per "
        f"scheme and n, a reference of {args.reference} iid samples (seed 1000000), "
        f"`batch_size={args.batch_size}`. Error: `||map - ref||^2 / ||ref||^2` per input, "
        "averaged over inputs and runs.",
        "",
        "Models:",
        "",
    ]
    lines += [f"- **{case.name}**: {case.description}; input {case.x.shape[1:]}; "
              f"{rows} model rows, {sec:.0f} s." for case, _, rows, sec in results]
    header = "| model | aggregate | " + " | ".join(f"`{s}`" for s in schemes) + " |"
    rule = "|---|---|" + "---:|" * len(schemes)
    for corrected in (False, True):
        lines += [""]
        if not corrected:
            lines += [f"**iid samples needed for the error of n = {n_text} samples of each "
                      f"scheme** (`n * err_iid(n) / err_scheme(n)`; iid itself is n by "
                      "definition):", ""]
        else:
            lines += ["**The same, with the reference's own error taken out** (see the "
                      "docstring of `bench_noise.py`; `>` where what remains is within the "
                      "uncertainty of that correction):", ""]
        lines += [header, rule]
        for case, errors, _, _ in results:
            for aggregate in AGGREGATES:
                cells = [equivalents(errors, aggregate, s, args.reference, corrected)
                         for s in schemes]
                lines.append(f"| {case.name} | {aggregate} | " + " | ".join(cells) + " |")
    lines += ["", f"**Measured relative squared errors** (n = {n_text}):", "",
              "| model | aggregate | " + " | ".join(f"`{s}`" for s in NOISE_SCHEMES) + " |",
              "|---|---|" + "---:|" * len(NOISE_SCHEMES)]
    for case, errors, _, _ in results:
        for aggregate in AGGREGATES:
            cells = [" / ".join(f"{errors[(aggregate, s, n)]:.2g}" for n in N_VALUES)
                     for s in NOISE_SCHEMES]
            lines.append(f"| {case.name} | {aggregate} | " + " | ".join(cells) + " |")
    lines += ["", "iid's `n * err(n)` should be about constant (the 1/n law, plus the "
              "reference's share): "
              + "; ".join(f"{case.name} {aggregate}: " + " / ".join(
                  f"{n * errors[(aggregate, 'iid', n)]:.3g}" for n in N_VALUES)
                  for case, errors, _, _ in results for aggregate in ("mean",)) + "."]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 3 inputs, 2 runs, a 200-sample reference")
    parser.add_argument("--inputs", type=int, default=None, help="inputs per model (16)")
    parser.add_argument("--repeats", type=int, default=None, help="runs per scheme and n (40)")
    parser.add_argument("--reference", type=int, default=None,
                        help="iid samples of the reference (2000)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", type=Path, default=None,
                        help="the report (default tests/benchmarks/RESULTS-noise.md; with "
                        "--quick out/bench/RESULTS-noise-quick.md, which git ignores)")
    args = parser.parse_args(argv)
    defaults = (3, 2, 200) if args.quick else (16, 40, 2000)
    for name, default in zip(("inputs", "repeats", "reference"), defaults, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, default)
        if getattr(args, name) < 1:
            parser.error(f"--{name}: expected a positive number, got {getattr(args, name)}")
    if args.out is None:
        args.out = (HERE.parents[1] / "out" / "bench" / "RESULTS-noise-quick.md" if args.quick
                    else HERE / "RESULTS-noise.md")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    clock = time.perf_counter()
    import torch

    torch.set_num_threads(1)
    results = []
    for build in (demo_cnn, breast_cancer_mlp, digits_cnn):
        case_clock = time.perf_counter()
        case = build(torch, args.inputs)
        errors, rows = measure(case, repeats=args.repeats, reference_samples=args.reference,
                               batch_size=args.batch_size)
        seconds = time.perf_counter() - case_clock
        results.append((case, errors, rows, seconds))
        print(f"{case.name}: {rows} rows, {seconds:.0f} s", file=sys.stderr, flush=True)
    report = render(results, args, machine_description(), started,
                    time.perf_counter() - clock, torch.get_num_threads())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report + "\n")
    print(report)
    print(f"(written to {args.out})", file=sys.stderr)


if __name__ == "__main__":
    main()
