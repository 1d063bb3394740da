"""``saliency_core.metrics`` against Quantus 0.6 and against the model passes alone.

Run with ``python -m tests.benchmarks.bench_metrics`` (``make bench-metrics``; Quantus and
PyTorch must be installed, as the ``reference`` and ``torch`` extras do). It writes
``tests/benchmarks/RESULTS-metrics.md`` and prints it; ``--quick`` is a smoke run of well
under a minute, written to ``out/bench/RESULTS-metrics-quick.md``.

A small CNN (two 3x3 convolutions with max pooling, 10 classes, weights from a fixed seed)
and 16 inputs of 1x28x28, and of 3x64x64 (the same network with 3 input channels), go to
every metric and to its Quantus counterpart with matched settings:

* model-based metrics, through ``adapters.torch.predict_fn`` (faithfulness) or
  ``adapters.torch.gradient_fn`` (robustness: the explanation is the plain gradient, and
  Quantus's ``explain_func`` calls the same callback): ``deletion`` / ``PixelFlipping``,
  ``faithfulness_correlation`` / ``FaithfulnessCorrelation``, ``avg_sensitivity`` /
  ``AvgSensitivity``, ``max_sensitivity`` / ``MaxSensitivity``, ``local_lipschitz`` /
  ``LocalLipschitzEstimate``;
* array metrics, on precomputed maps and masks (Quantus with ``model=None``):
  ``sparseness``, ``complexity``, ``pointing_game``, ``relevance_rank_accuracy``.

"Model only" replays the calls our metric made (recorded in its agreement run: the same
rows, already built, through the same callback in the same chunks): the floor for any
implementation that batches like ours, so ours / model only is what the metric's own work
(building rows, ranking, sums, checks) adds to the model passes. The rows must be ours, not
copies of the inputs: on this CNN a chunk of partly deleted images takes measurably longer
than a chunk of the images themselves. Quantus's rows are counted by a forward hook on the
model during its agreement run.

Each comparison is timed in interleaved rounds after a warm-up: round r runs every
contender once, in an order rotated by r, so outside load falls on all alike. Times are
medians over rounds; ratios are medians of the per-round ratios, with their range. The
fast array metrics repeat the call within a round until it takes about 20 ms and report
the time per call. PyTorch runs one thread.

Agreement is checked before timing, on identical perturbations: Quantus's deletion curve
is deterministic; for the random metrics Quantus is handed our random draws (the subsets
of ``faithfulness_correlation`` through ``np.random.choice``, which it calls; the noise of
the robustness metrics through its ``perturb_func`` argument), since it draws them from
numpy's global state. The timed Quantus runs use its own random draws.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from tests.benchmarks._harness import machine_description, package_versions  # noqa: E402

HERE = Path(__file__).resolve().parent
N_CLASSES = 10
VERSIONS = ["numpy", "torch", "quantus"]
#: each timed sample of an array metric repeats the call for about this long
ARRAY_TARGET_S = 0.02


# ---------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Shape:
    """One input shape and the settings that depend on its cost."""

    channels: int
    side: int
    rounds: int
    deletion_steps: int  # divides channels * side * side
    robustness_samples: int  # the sensitivities' and the local Lipschitz estimate's

    @property
    def label(self) -> str:
        return f"{self.channels}x{self.side}x{self.side}"


@dataclass(frozen=True)
class Settings:
    n_inputs: int
    batch_size: int
    shapes: tuple[Shape, ...]
    correlation_samples: int
    subset_size: int
    radius: float
    sigma: float
    mask_fraction: float = 0.3


def settings_for(args: argparse.Namespace) -> Settings:
    if args.quick:
        return Settings(
            n_inputs=8, batch_size=64, shapes=(Shape(1, 28, args.rounds or 3, 16, 10),),
            correlation_samples=20, subset_size=224, radius=0.2, sigma=0.1,
        )
    return Settings(
        n_inputs=16, batch_size=64,
        shapes=(Shape(1, 28, args.rounds or 9, 49, 50), Shape(3, 64, args.rounds or 7, 48, 20)),
        correlation_samples=100, subset_size=224, radius=0.2, sigma=0.1,
    )


# ---------------------------------------------------------------------------- model, data


def cnn(torch: Any, channels: int, side: int, seed: int) -> Any:
    """conv 3x3 -> 8, ReLU, max pool 2, conv 3x3 -> 16, ReLU, max pool 2, dense -> 10."""
    model = torch.nn.Sequential(
        torch.nn.Conv2d(channels, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(8, 16, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(16 * (side // 4) ** 2, N_CLASSES),
    )
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            fan_in = int(np.prod(parameter.shape[1:])) if parameter.ndim > 1 else 16
            parameter.copy_(torch.from_numpy(rng.normal(
                scale=fan_in ** -0.5, size=tuple(parameter.shape)).astype(np.float32)))
    return model.eval()


# ---------------------------------------------------------------------------- timing


@dataclass
class Comparison:
    """One metric on one input shape: its contenders and what is known about them."""

    metric: str
    quantus_name: str
    shape: str
    rows: str  # model rows of one run, ours / Quantus
    per_call: str  # rows per model call, ours / Quantus
    contenders: dict[str, Callable[[], object]]
    agreement: str
    repeat: dict[str, int] = field(default_factory=dict)  # calls per timed sample
    times: dict[str, list[float]] = field(default_factory=dict)  # seconds per call


def calls_for(run: Callable[[], object]) -> int:
    """How many calls of a fast ``run`` take about ``ARRAY_TARGET_S`` (after a warm-up)."""
    once = math.inf
    for _ in range(2):
        start = time.perf_counter()
        run()
        once = min(once, time.perf_counter() - start)
    return max(1, math.ceil(ARRAY_TARGET_S / max(once, 1e-7)))


def time_rounds(comparison: Comparison, rounds: int, array_metric: bool) -> None:
    """Fill ``comparison.times``. Ours and Quantus are warm from the agreement check; the
    model-only run gets a warm-up call, the array metrics their calls per sample."""
    names = list(comparison.contenders)
    if array_metric:
        comparison.repeat = {name: calls_for(comparison.contenders[name]) for name in names}
    else:
        comparison.contenders["model only"]()
        comparison.repeat = dict.fromkeys(names, 1)
    comparison.times = {name: [] for name in names}
    for round_index in range(rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            run, count = comparison.contenders[name], comparison.repeat[name]
            start = time.perf_counter()
            for _ in range(count):
                run()
            comparison.times[name].append((time.perf_counter() - start) / count)


def median(values: list[float]) -> float:
    return float(np.median(values))


def ratio_text(numerator: list[float], denominator: list[float]) -> str:
    rounds = np.asarray(numerator) / np.asarray(denominator)
    low, high = rounds.min(), rounds.max()
    spec = ".3f" if high < 10 else ".1f" if high < 100 else ".0f"
    return f"{np.median(rounds):{spec}} ({low:{spec}}-{high:{spec}})"


def ms_text(seconds: float) -> str:
    ms = seconds * 1e3
    return f"{ms:.1f}" if ms >= 10 else f"{ms:.2f}" if ms >= 0.1 else f"{ms:.4f}"


# ---------------------------------------------------------------------------- contenders


class Recorder:
    """A callback that forwards to ``callback`` and keeps a copy of every call's arguments,
    so that the model passes of a metric run can be replayed alone."""

    def __init__(self, callback: Callable[..., Any]) -> None:
        self.callback = callback
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, *args: Any) -> Any:
        self.calls.append(tuple(None if arg is None else np.array(arg) for arg in args))
        return self.callback(*args)

    def rows(self) -> int:
        return sum(len(args[0]) for args in self.calls)

    def replay(self) -> Callable[[], None]:
        """The recorded calls, rows already built, through the callback alone."""
        callback, calls = self.callback, list(self.calls)

        def run() -> None:
            for args in calls:
                callback(*args)

        return run


class ForwardRows:
    """``with ForwardRows(model) as counted:`` counts the rows of every forward pass of a
    torch module in the block (``counted.rows``), whoever calls it."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.rows = 0

    def _count(self, module: Any, inputs: tuple[Any, ...]) -> None:
        self.rows += int(inputs[0].shape[0])

    def __enter__(self) -> ForwardRows:
        self.handle = self.model.register_forward_pre_hook(self._count)
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.remove()


def noise_feeder(noise: np.ndarray, scale: float) -> Callable[..., np.ndarray]:
    """A Quantus ``perturb_func`` that adds ``scale * noise[:, step]`` at its ``step``-th
    call: our draws, in the layout ours consumes them (input by input, sample by sample),
    handed to Quantus's loop over samples."""
    calls = [0]

    def perturb(arr: np.ndarray, indices: object = None, **options: object) -> np.ndarray:
        step = calls[0]
        calls[0] += 1
        moved = arr + scale * noise[:, step].reshape(arr.shape)
        return moved.astype(arr.dtype)  # our rows are rounded to x's dtype too

    return perturb


def faithfulness_comparisons(quantus: Any, torch_adapter: Any, metrics: Any, model: Any,
                             x: np.ndarray, y: np.ndarray, s: Settings,
                             shape: Shape) -> list[Comparison]:
    n, batch_size, label = len(x), s.batch_size, shape.label
    n_features = int(np.prod(x.shape[1:]))
    steps = shape.deletion_steps
    rng = np.random.default_rng(1)
    maps = rng.normal(size=x.shape).astype(np.float32)  # continuous: no ties in the ranking
    predict = torch_adapter.predict_fn(model)

    def quantus_run(metric: Any) -> Callable[[], object]:
        return lambda: metric(model=model, x_batch=x, y_batch=y, a_batch=maps,
                              channel_first=True, softmax=True, device="cpu", batch_size=n)

    pixel_flipping = quantus.PixelFlipping(features_in_step=n_features // steps,
                                           perturb_baseline=0.0, disable_warnings=True)

    def ours_deletion(callback: Callable[..., Any] = predict) -> Any:
        return metrics.deletion(callback, x, maps, y, steps=steps, score="softmax",
                                batch_size=batch_size)

    deletion_rows = Recorder(predict)
    curve = ours_deletion(deletion_rows).scores[:, 1:]
    with ForwardRows(model) as deletion_quantus_rows:
        theirs = np.asarray(quantus_run(pixel_flipping)())
    deletion_agreement = (f"curve: max diff {np.abs(curve - theirs).max():.1e} "
                          f"(scores up to {np.abs(theirs).max():.2f})")

    n_samples, subset_size, seed = s.correlation_samples, s.subset_size, 0
    correlation = quantus.FaithfulnessCorrelation(
        nr_runs=n_samples, subset_size=subset_size, perturb_baseline=0.0,
        return_aggregate=False, disable_warnings=True)

    def ours_correlation(callback: Callable[..., Any] = predict) -> Any:
        return metrics.faithfulness_correlation(
            callback, x, maps, y, n_samples=n_samples, subset_size=subset_size,
            score="softmax", seed=seed, batch_size=batch_size)

    correlation_rows = Recorder(predict)
    correlation_values = np.asarray(ours_correlation(correlation_rows))
    with ForwardRows(model) as correlation_quantus_rows:
        correlation_agreement = correlation_on_our_subsets(
            quantus_run(correlation), correlation_values, n, n_samples, subset_size,
            n_features, seed)

    return [
        Comparison(
            "deletion", "PixelFlipping", label,
            rows=f"{deletion_rows.rows()} / {deletion_quantus_rows.rows}",
            per_call=f"{batch_size} / {n}",
            contenders={"ours": ours_deletion, "quantus": quantus_run(pixel_flipping),
                        "model only": deletion_rows.replay()},
            agreement=deletion_agreement,
        ),
        Comparison(
            "faithfulness_correlation", "FaithfulnessCorrelation", label,
            rows=f"{correlation_rows.rows()} / {correlation_quantus_rows.rows}",
            per_call=f"{batch_size} / {n}",
            contenders={"ours": ours_correlation, "quantus": quantus_run(correlation),
                        "model only": correlation_rows.replay()},
            agreement=correlation_agreement,
        ),
    ]


def correlation_on_our_subsets(quantus_run: Callable[[], object], ours: np.ndarray, n: int,
                               n_samples: int, subset_size: int, n_features: int,
                               seed: int) -> str:
    """Quantus's faithfulness correlation on the subsets our ``seed`` draws.

    Ours: for each input and sample, the ``subset_size`` positions of the smallest of one
    uniform key per position, drawn input by input, sample by sample. Quantus calls
    ``np.random.choice(n_features, subset_size, replace=False)`` run by run, input by input.
    """
    rng = np.random.default_rng(seed)
    subsets = np.stack([np.argsort(rng.random((n_samples, n_features)), axis=1)[:, :subset_size]
                        for _ in range(n)])
    calls = [0]
    original = np.random.choice

    def choice(population: object, size: object = None, replace: bool = True,
               p: object = None) -> np.ndarray:
        if (population, size, replace) != (n_features, subset_size, False):
            raise RuntimeError(f"unexpected np.random.choice{(population, size, replace)}")
        run, row = divmod(calls[0], n)
        calls[0] += 1
        return subsets[row, run]

    np.random.choice = choice  # type: ignore[assignment]
    try:
        theirs = np.asarray(quantus_run())
    finally:
        np.random.choice = original  # type: ignore[assignment]
    if calls[0] != n * n_samples:
        return f"Quantus drew {calls[0]} subsets, expected {n * n_samples}: not compared"
    return (f"same subsets: max diff {np.abs(ours - theirs).max():.1e} "
            f"(values up to {np.abs(theirs).max():.2f})")


def robustness_comparisons(quantus: Any, torch_adapter: Any, metrics: Any, model: Any,
                           x: np.ndarray, y: np.ndarray, s: Settings,
                           shape: Shape) -> list[Comparison]:
    n, batch_size, label = len(x), s.batch_size, shape.label
    grad_fn = torch_adapter.gradient_fn(model)

    def explain(model: Any, inputs: Any, targets: Any, **options: object) -> np.ndarray:
        return grad_fn(np.asarray(inputs), np.asarray(targets))

    def quantus_run(metric: Any) -> Callable[[], object]:
        return lambda: metric(model=model, x_batch=x, y_batch=y, a_batch=None,
                              explain_func=explain, channel_first=True, device="cpu",
                              batch_size=n)

    comparisons = []
    seed = 0
    cases = [
        ("avg_sensitivity", "AvgSensitivity", shape.robustness_samples),
        ("max_sensitivity", "MaxSensitivity", shape.robustness_samples),
        ("local_lipschitz", "LocalLipschitzEstimate", shape.robustness_samples),
    ]
    for name, quantus_name, n_samples in cases:
        ours_metric = getattr(metrics, name)
        if name == "local_lipschitz":
            options: dict[str, Any] = {"sigma": s.sigma}
            quantus_options: dict[str, Any] = {"perturb_std": s.sigma}
            noise = np.random.default_rng(seed).standard_normal((n, n_samples, *x.shape[1:]))
            scale = s.sigma
        else:
            options = {"radius": s.radius}
            quantus_options = {"lower_bound": s.radius}
            noise = np.random.default_rng(seed).uniform(
                -s.radius, s.radius, size=(n, n_samples, *x.shape[1:]))
            scale = 1.0

        def ours(metric: Any = ours_metric, count: int = n_samples,
                 settings: dict[str, Any] = options,
                 callback: Callable[..., Any] = grad_fn) -> Any:
            return metric(callback, x, y, n_samples=count, seed=seed, batch_size=batch_size,
                          **settings)

        def quantus_metric(perturb: Callable[..., np.ndarray] | None = None,
                           quantus_name: str = quantus_name, count: int = n_samples,
                           settings: dict[str, Any] = quantus_options) -> Any:
            extra = {} if perturb is None else {"perturb_func": perturb}
            return getattr(quantus, quantus_name)(nr_samples=count, normalise=False,
                                                  disable_warnings=True, **settings, **extra)

        recorded = Recorder(grad_fn)
        values = np.asarray(ours(callback=recorded))
        with ForwardRows(model) as quantus_rows:
            theirs = np.asarray(quantus_run(quantus_metric(noise_feeder(noise, scale)))())
        agreement = (f"same noise: max diff {np.abs(values - theirs).max():.1e} "
                     f"(values up to {np.abs(theirs).max():.3g})")
        comparisons.append(Comparison(
            name, quantus_name, label,
            rows=f"{recorded.rows()} / {quantus_rows.rows}",
            per_call=f"{batch_size} / {n}",
            contenders={"ours": ours, "quantus": quantus_run(quantus_metric()),
                        "model only": recorded.replay()},
            agreement=agreement,
        ))
    return comparisons


def array_comparisons(quantus: Any, metrics: Any, x: np.ndarray, s: Settings,
                      shape: Shape) -> list[Comparison]:
    n, label = len(x), shape.label
    rng = np.random.default_rng(2)
    maps = rng.normal(size=(n, 1, *x.shape[2:]))  # one channel, as a map usually has
    masks = rng.uniform(size=maps.shape) < s.mask_fraction
    masks.reshape(n, -1)[:, 0] = True  # Quantus gives NaN for an empty mask
    y = np.zeros(n, dtype=np.int64)
    comparisons = []
    for name, quantus_name, uses_masks, note in [
        ("sparseness", "Sparseness", False, " (Quantus adds 1e-7 to every magnitude)"),
        ("complexity", "Complexity", False, " (Quantus adds 1e-12 inside the log)"),
        ("pointing_game", "PointingGame", True, ""),
        ("relevance_rank_accuracy", "RelevanceRankAccuracy", True, ""),
    ]:
        ours_metric = getattr(metrics, name)
        quantus_metric = getattr(quantus, quantus_name)(normalise=False, disable_warnings=True)

        def ours(metric: Any = ours_metric, uses_masks: bool = uses_masks) -> object:
            return metric(maps, masks) if uses_masks else metric(maps)

        def theirs(metric: Any = quantus_metric, uses_masks: bool = uses_masks) -> object:
            return metric(model=None, x_batch=x, y_batch=y, a_batch=maps,
                          s_batch=masks if uses_masks else None, channel_first=True,
                          batch_size=n)

        difference = np.abs(np.asarray(ours()) - np.asarray(theirs(), dtype=np.float64)).max()
        comparisons.append(Comparison(
            name, quantus_name, label, rows="-", per_call="-",
            contenders={"ours": ours, "quantus": theirs},
            agreement=f"same maps: max diff {difference:.1e}{note}",
        ))
    return comparisons


# ---------------------------------------------------------------------------- report


def render(comparisons: list[Comparison], s: Settings, args: argparse.Namespace,
           start: dict[str, str], end: dict[str, str], started: str, elapsed: float,
           torch_threads: int) -> str:
    lines: list[str] = []
    add = lines.append
    versions = package_versions(VERSIONS)
    command = "python -m tests.benchmarks.bench_metrics" + "".join(
        f" {part}" for part in sys.argv[1:])
    add("# Metrics: saliency_core.metrics against Quantus and against the model passes alone")
    add("")
    add(f"Written by `tests/benchmarks/bench_metrics.py` (`make bench-metrics`, part of "
        f"`make bench`), run started {started}, took {elapsed / 60:.1f} minutes; command "
        f"`{command}`. Do not edit by hand.")
    add("")
    add("## Machine and versions")
    add("")
    add(f"- CPU: {start['cpu']}, {start['cpus']} CPUs visible, {start['memory']} memory, "
        f"{start['os']}, Python {start['python']}; CPU only. PyTorch runs {torch_threads} "
        "thread.")
    add(f"- Load average (1, 5, 15 min) at the start: {start['load']}; at the end: "
        f"{end['load']}. The machine is shared with other jobs, so absolute times are noisy; "
        "the contenders of a comparison run in interleaved rounds (rotated order), so outside "
        "load falls on all of them alike: compare the ratios, and read their range.")
    add("- " + ", ".join(f"{name} {version}" for name, version in versions.items()))
    add("")
    add("## Settings")
    add("")
    shapes = " and ".join(shape.label for shape in s.shapes)
    add(f"- Model: a CNN of two 3x3 convolutions (8 and 16 channels), each followed by ReLU "
        f"and 2x2 max pooling, and a dense layer to {N_CLASSES} classes; weights from a fixed "
        f"seed. {s.n_inputs} inputs, uniform in [0, 1], of {shapes} (channels first); targets "
        "the predicted classes. Ours through `adapters.torch.predict_fn` / `gradient_fn`, "
        "Quantus with the torch model itself and `explain_func` calling that same "
        "`gradient_fn`.")
    steps = ", ".join(f"{shape.deletion_steps} steps at {shape.label} ("
                      f"{shape.channels * shape.side ** 2 // shape.deletion_steps} elements a "
                      "step)" for shape in s.shapes)
    samples = ", ".join(f"{shape.robustness_samples} at {shape.label}" for shape in s.shapes)
    rounds = ", ".join(f"{shape.rounds} at {shape.label}" for shape in s.shapes)
    add(f"- `deletion` / `PixelFlipping`: maps normal random (one value per input element), "
        f"softmax scores, baseline 0, {steps}; Quantus's `features_in_step` gives the same "
        "curve without its unperturbed first point.")
    add(f"- `faithfulness_correlation` / `FaithfulnessCorrelation`: the same maps, "
        f"{s.correlation_samples} subsets of {s.subset_size} elements, baseline 0, softmax "
        "scores.")
    add(f"- `avg_sensitivity`, `max_sensitivity` / `AvgSensitivity`, `MaxSensitivity`: the "
        f"plain gradient, uniform noise in [-{s.radius}, {s.radius}] (`radius` / "
        f"`lower_bound`); `local_lipschitz` / `LocalLipschitzEstimate`: Gaussian neighbours, "
        f"sigma {s.sigma} (`perturb_std`); samples per input ({samples}) for all three "
        "(`n_samples` / `nr_samples`), fewer at the larger shape to keep the run short. "
        "Quantus with `normalise=False` (ours does not normalise maps); everything else at "
        "its defaults.")
    add(f"- Array metrics: {s.n_inputs} maps of one channel (normal random) and masks "
        f"(each element in with probability {s.mask_fraction}); Quantus with `model=None`, "
        "`normalise=False`. These take well under a millisecond, so a timed sample repeats "
        f"the call for about {ARRAY_TARGET_S * 1e3:.0f} ms; times are per call.")
    add("- Rows: the rows through the model in one run (a gradient row is a forward and a "
        "backward pass), ours as recorded, Quantus's counted by a forward hook on the model. "
        "Ours scores the unperturbed input as the first point of the deletion curve, which "
        "`PixelFlipping` does not compute.")
    add(f"- Rows per model call: ours {s.batch_size} (`batch_size`, across inputs and steps); "
        f"Quantus one row per input, {s.n_inputs}, at every step or sample (its loop runs "
        "over steps with the whole batch, `batch_size` = number of inputs). 'model only' "
        "replays the calls ours made (recorded in its agreement run): the same rows, already "
        "built, through the same callback in the same chunks. The rows must be ours: on this "
        "CNN a chunk of partly deleted images takes measurably longer than one of the images "
        "themselves, so copies of the inputs would understate the floor.")
    add(f"- Timing: a warm-up call (for ours and Quantus: the agreement run), then "
        f"interleaved rounds per comparison ({rounds}); "
        "'ms' columns are medians over rounds, ratios the median of the per-round ratios "
        "with their range in brackets (below 1: ours is faster).")
    add("- Agreement, checked before timing: Quantus's deletion curve and the array metrics "
        "are deterministic; for the random metrics Quantus is handed our draws (the subsets "
        "through `np.random.choice`, which it calls; the noise through `perturb_func`). The "
        "timed Quantus runs draw their own.")
    add("")
    add("## Results")
    add("")
    add("| inputs | ours | Quantus 0.6 | rows (ours / Quantus) | rows per call | ours ms | "
        "Quantus ms | model only ms | ours / Quantus | ours / model only | agreement |")
    add("|---|---|---|---|---|---:|---:|---:|---:|---:|---|")
    for c in comparisons:
        times = c.times
        has_model = "model only" in times
        add(f"| {c.shape} | `{c.metric}` | `{c.quantus_name}` | {c.rows} | {c.per_call} | "
            f"{ms_text(median(times['ours']))} | {ms_text(median(times['quantus']))} | "
            f"{ms_text(median(times['model only'])) if has_model else '-'} | "
            f"{ratio_text(times['ours'], times['quantus'])} | "
            f"{ratio_text(times['ours'], times['model only']) if has_model else '-'} | "
            f"{c.agreement} |")
    add("")
    add("## Notes")
    add("")
    add("- ours / model only above 1 is the metric's own numpy work on top of the model "
        "passes: building the perturbed rows (for the robustness metrics, drawing the noise, "
        "which Quantus does too), ranking, and the float64 norms, sums and checks on every "
        "result. Its range over rounds shows how much of it is the machine's noise.")
    add("- Quantus 0.6 (read from its source, and cProfile runs of it): its model-based "
        "metrics loop over steps or samples and call the model once per step with the "
        "whole data batch, so its rows per call are the inputs of one data batch (its "
        "`batch_size`, here all of them). Every batch of maps it is given (`a_batch`) or "
        "computes inside a metric (`explain_batch`) goes through "
        "`asserts.assert_attributions`, which builds a Python `set` of every value of the "
        "batch (`len(set(a_batch.flatten().tolist())) > 1`). That set is most of Quantus's "
        "time for the array metrics (their `evaluate_batch` is vectorised numpy, as ours "
        "is) and, at 3x64x64, most of a robustness metric's run (one per sample), which is "
        "why ours / Quantus falls there. Each step also checks every perturbed input with "
        "`np.allclose` (`warn_perturbation_caused_no_change`). Its random draws come from "
        "numpy's global state (`np.random.choice`, `np.random.uniform`, "
        "`np.random.normal`).")
    add("")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 8 inputs of 1x28x28, few samples, 3 rounds")
    parser.add_argument("--rounds", type=int, default=None, metavar="N",
                        help="interleaved timed rounds per comparison (default 9 at 1x28x28 "
                        "and 7 at 3x64x64; 3 with --quick)")
    parser.add_argument("--out", type=Path, default=None,
                        help="the report (default tests/benchmarks/RESULTS-metrics.md; with "
                        "--quick out/bench/RESULTS-metrics-quick.md, which git ignores)")
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        parser.error(f"--rounds: expected a positive number, got {args.rounds}")
    if args.out is None:
        args.out = (HERE.parents[1] / "out" / "bench" / "RESULTS-metrics-quick.md" if args.quick
                    else HERE / "RESULTS-metrics.md")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    s = settings_for(args)
    started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine_start = machine_description()
    clock = time.perf_counter()

    import quantus
    import torch

    from adapters import torch as torch_adapter
    from saliency_core import metrics

    torch.set_num_threads(1)
    comparisons: list[Comparison] = []
    for shape in s.shapes:
        model = cnn(torch, shape.channels, shape.side, seed=0)
        x = np.random.default_rng(0).uniform(
            0, 1, size=(s.n_inputs, shape.channels, shape.side, shape.side)).astype(np.float32)
        y = torch_adapter.predict_fn(model)(x).argmax(axis=1)
        built = (faithfulness_comparisons(quantus, torch_adapter, metrics, model, x, y, s, shape)
                 + robustness_comparisons(quantus, torch_adapter, metrics, model, x, y, s, shape)
                 + array_comparisons(quantus, metrics, x, s, shape))
        for comparison in built:
            time_rounds(comparison, shape.rounds, array_metric=comparison.rows == "-")
            times = comparison.times
            print(f"{shape.label} {comparison.metric}: ours {ms_text(median(times['ours']))} ms, "
                  f"Quantus {ms_text(median(times['quantus']))} ms "
                  f"({time.perf_counter() - clock:.0f} s)", file=sys.stderr, flush=True)
        comparisons += built
    report = render(comparisons, s, args, machine_start, machine_description(), started,
                    time.perf_counter() - clock, torch.get_num_threads())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report + "\n")
    print(report)
    print(f"(written to {args.out})", file=sys.stderr)


if __name__ == "__main__":
    main()
