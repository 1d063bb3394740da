"""Faithfulness metrics against closed forms: linear and additive numpy models whose curves,
correlations and infidelities are known exactly."""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import numpy as np
import pytest

from saliency_core.metrics.faithfulness import (
    Curve,
    deletion,
    faithfulness_correlation,
    infidelity,
    insertion,
)

RNG = np.random.default_rng(20240601)


def _trapezoid(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    return ((y[:, 1:] + y[:, :-1]) * np.diff(x) / 2).sum(axis=1)


def _count(j: int, n: int, steps: int) -> int:
    """round(j * n / steps), half up, exactly."""
    return math.floor(Fraction(j * n, steps) + Fraction(1, 2))


class Linear:
    """S(x) = w . x per row, counting calls and rows."""

    def __init__(self, w: np.ndarray) -> None:
        self.w = w
        self.calls: list[np.ndarray] = []

    def __call__(self, x: np.ndarray) -> np.ndarray:
        self.calls.append(x.copy())
        return (x * self.w).reshape(len(x), -1).sum(axis=1)


def _linear_case(n: int = 3, shape: tuple[int, ...] = (4, 5)):
    w = RNG.normal(size=shape)
    x = RNG.normal(size=(n, *shape))
    return Linear(w), x, w * x


# ------------------------------------------------------------------- deletion / insertion


@pytest.mark.parametrize("steps", [7, 20, 45])
def test_deletion_of_a_linear_model_removes_the_largest_contributions(steps):
    model, x, contributions = _linear_case()
    curve = deletion(model, x, contributions, steps=steps)
    flat = contributions.reshape(len(x), -1)
    n = flat.shape[1]
    ordered = -np.sort(-flat, axis=1)
    counts = [_count(j, n, steps) for j in range(steps + 1)]
    expected = np.stack([flat.sum(axis=1) - ordered[:, :c].sum(axis=1) for c in counts], 1)
    np.testing.assert_allclose(curve.scores, expected, rtol=0, atol=1e-10)
    np.testing.assert_allclose(curve.fractions, np.array(counts) / n, rtol=0, atol=0)
    np.testing.assert_allclose(curve.auc, _trapezoid(expected, np.array(counts) / n),
                               rtol=0, atol=1e-10)
    assert curve.fractions[0] == 0 and curve.fractions[-1] == 1


def test_insertion_of_a_linear_model_adds_the_largest_contributions():
    model, x, contributions = _linear_case()
    steps = 8
    curve = insertion(model, x, contributions, steps=steps)
    flat = contributions.reshape(len(x), -1)
    ordered = -np.sort(-flat, axis=1)
    counts = [_count(j, flat.shape[1], steps) for j in range(steps + 1)]
    expected = np.stack([ordered[:, :c].sum(axis=1) for c in counts], 1)
    np.testing.assert_allclose(curve.scores, expected, rtol=0, atol=1e-10)
    np.testing.assert_allclose(curve.scores[:, -1], flat.sum(axis=1), rtol=0, atol=1e-10)


def test_ties_are_removed_in_row_major_order():
    w = RNG.normal(size=(8, 8))
    x = np.ones((1, 8, 8))
    tied = (np.arange(64) % 3 == 0).astype(float).reshape(1, 8, 8)  # 22 ones, 42 zeros
    curve = deletion(Linear(w), x, tied, steps=64)
    order = np.concatenate([np.flatnonzero(tied == 1), np.flatnonzero(tied == 0)])
    expected = w.sum() - np.concatenate([[0], np.cumsum(w.reshape(-1)[order])])
    np.testing.assert_allclose(curve.scores[0], expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("layout", ["channels_first", "channels_last"])
def test_channel_axis_removes_every_channel_of_a_position(layout):
    w = RNG.normal(size=(3, 4, 4))
    x = RNG.normal(size=(2, 3, 4, 4))
    axis = 1
    if layout == "channels_last":
        w, x, axis = np.moveaxis(w, 0, -1), np.moveaxis(x, 1, -1), -1
    per_position = (w * x).sum(axis=axis)  # (2, 4, 4): each position's contribution
    steps = 16
    curve = deletion(Linear(w), x, per_position, steps=steps, channel_axis=axis)
    flat = per_position.reshape(2, -1)
    ordered = -np.sort(-flat, axis=1)
    expected = np.stack([flat.sum(1) - ordered[:, :j].sum(1) for j in range(steps + 1)], 1)
    np.testing.assert_allclose(curve.scores, expected, rtol=0, atol=1e-10)
    kept = np.expand_dims(per_position, axis)  # a size-1 channel axis reads the same
    same = deletion(Linear(w), x, kept, steps=steps, channel_axis=axis)
    np.testing.assert_array_equal(same.scores, curve.scores)


def test_array_and_named_baselines():
    model, x, contributions = _linear_case(n=2, shape=(6,))
    baseline = RNG.normal(size=x.shape)
    steps = 6
    curve = deletion(model, x, contributions, steps=steps, baseline=baseline)
    order = np.argsort(-contributions, axis=1, kind="stable")
    for i in range(2):
        for j in range(steps + 1):
            row = x[i].copy()
            row[order[i, :j]] = baseline[i, order[i, :j]]
            assert curve.scores[i, j] == pytest.approx(model.w @ row, abs=1e-12)
    one = deletion(model, x, contributions, steps=steps, baseline=baseline[0])
    tiled = deletion(model, x, contributions, steps=steps, baseline=np.stack([baseline[0]] * 2))
    np.testing.assert_array_equal(one.scores, tiled.scores)
    for name, statistic in [("mean", np.mean), ("min", np.min), ("max", np.max)]:
        named = deletion(model, x, contributions, steps=steps, baseline=name)
        values = statistic(x, axis=1)
        np.testing.assert_allclose(named.scores[:, -1], values * model.w.sum(), atol=1e-12)


def _additive_model(w: np.ndarray):
    """h(sum_e g_e(x_e)) for two outputs, g_e(0) = 0: removing an element (baseline 0)
    takes away exactly its contribution g_e(x_e), and h is increasing but not linear."""

    def contributions(x: np.ndarray) -> np.ndarray:
        return w * np.sin(x)

    def predict(x: np.ndarray) -> np.ndarray:
        total = contributions(x).reshape(len(x), -1).sum(axis=1)
        return np.stack([np.tanh(0.3 * total), -total], axis=1)

    return predict, contributions


def test_the_true_map_beats_random_maps_on_a_nonlinear_model():
    w = RNG.normal(size=(6, 6))
    x = RNG.uniform(-1.5, 1.5, size=(4, 6, 6))
    predict, contributions = _additive_model(w)
    true_map = contributions(x)
    true_deletion = deletion(predict, x, true_map, target=0, steps=12)
    true_insertion = insertion(predict, x, true_map, target=0, steps=12)
    for seed in range(5):
        random_map = np.random.default_rng(seed).normal(size=x.shape)
        assert (deletion(predict, x, random_map, target=0, steps=12).auc
                > true_deletion.auc).all()
        assert (insertion(predict, x, random_map, target=0, steps=12).auc
                < true_insertion.auc).all()


def test_rows_of_several_inputs_share_calls():
    model, x, contributions = _linear_case(n=3)
    steps, batch_size = 9, 8
    deletion(model, x, contributions, steps=steps, batch_size=batch_size)
    sizes = [len(call) for call in model.calls]
    assert len(sizes) == math.ceil(3 * (steps + 1) / batch_size) == 4
    assert sum(sizes) == 3 * (steps + 1) and max(sizes) == batch_size
    # the second call holds input 0's last steps and input 1's first ones
    np.testing.assert_array_equal(model.calls[1][2], x[1])


@pytest.mark.parametrize("metric", ["deletion", "insertion", "correlation", "infidelity"])
def test_results_do_not_depend_on_batch_size(metric):
    w = RNG.normal(size=(5, 5))
    x = RNG.uniform(-1, 1, size=(3, 5, 5))
    predict, contributions = _additive_model(w)
    maps = contributions(x) + 0.1 * RNG.normal(size=x.shape)

    def run(batch_size: int):
        if metric == "deletion":
            return deletion(predict, x, maps, 1, steps=10, batch_size=batch_size).scores
        if metric == "insertion":
            return insertion(predict, x, maps, 1, steps=10, batch_size=batch_size).scores
        if metric == "correlation":
            return faithfulness_correlation(predict, x, maps, 0, n_samples=15, subset_size=5,
                                            seed=3, batch_size=batch_size)
        return infidelity(predict, x, maps, 0, n_samples=15, seed=3, batch_size=batch_size)

    reference = run(1000)
    for batch_size in (1, 4, 7):
        np.testing.assert_allclose(run(batch_size), reference, rtol=1e-13, atol=1e-15)


def test_softmax_score_is_the_targets_probability():
    w = RNG.normal(size=(4, 4))
    x = RNG.uniform(-1, 1, size=(2, 4, 4))
    predict, contributions = _additive_model(w)

    def probabilities(rows):
        out = predict(rows)
        e = np.exp(out - out.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    target = np.array([0, 1])
    ours = deletion(predict, x, contributions(x), target, steps=8, score="softmax")
    manual = deletion(probabilities, x, contributions(x), target, steps=8)
    np.testing.assert_allclose(ours.scores, manual.scores, rtol=1e-14)


def test_float32_inputs_reach_the_model_as_float32():
    model, x, contributions = _linear_case(n=2)
    curve = deletion(model, x.astype(np.float32), contributions, steps=4)
    assert {call.dtype for call in model.calls} == {np.dtype(np.float32)}
    assert curve.scores.dtype == np.float64


def test_curve_is_frozen_and_read_only():
    model, x, contributions = _linear_case(n=1)
    curve = deletion(model, x, contributions, steps=4)
    assert isinstance(curve, Curve)
    with pytest.raises(dataclasses.FrozenInstanceError):
        curve.auc = np.zeros(1)  # type: ignore[misc]
    with pytest.raises(ValueError, match="read-only"):
        curve.scores[0, 0] = 1.0


# --------------------------------------------------------------- faithfulness correlation


def test_faithfulness_correlation_of_a_linear_model_is_one():
    model, x, contributions = _linear_case(n=3, shape=(6, 6))
    result = faithfulness_correlation(model, x, contributions, n_samples=30, subset_size=9,
                                      seed=0)
    np.testing.assert_allclose(result, 1.0, rtol=0, atol=1e-10)
    flipped = faithfulness_correlation(model, x, -contributions, n_samples=30, subset_size=9,
                                       seed=0)
    np.testing.assert_allclose(flipped, -1.0, rtol=0, atol=1e-10)


def test_faithfulness_correlation_with_channel_axis_and_a_baseline():
    w = RNG.normal(size=(4, 4, 2))
    x = RNG.normal(size=(2, 4, 4, 2))
    baseline = RNG.normal(size=(4, 4, 2))
    per_position = (w * (x - baseline)).sum(axis=-1)  # what setting a position takes away
    result = faithfulness_correlation(Linear(w), x, per_position, n_samples=25, subset_size=3,
                                      baseline=baseline, seed=1, channel_axis=-1)
    np.testing.assert_allclose(result, 1.0, rtol=0, atol=1e-10)


def test_faithfulness_correlation_seeds_and_calls():
    w = RNG.normal(size=(5, 5))
    x = RNG.uniform(-1, 1, size=(3, 5, 5))
    predict, contributions = _additive_model(w)
    noisy = contributions(x) + RNG.normal(size=x.shape)
    calls = []

    def counted(rows):
        calls.append(len(rows))
        return predict(rows)

    first = faithfulness_correlation(counted, x, noisy, 0, n_samples=20, subset_size=5,
                                     seed=7, batch_size=16)
    assert len(calls) == math.ceil(3 * 21 / 16) and max(calls) == 16
    again = faithfulness_correlation(predict, x, noisy, 0, n_samples=20, subset_size=5, seed=7)
    other = faithfulness_correlation(predict, x, noisy, 0, n_samples=20, subset_size=5, seed=8)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    assert (np.abs(first) < 1).all()
    generator = np.random.default_rng(7)
    from_generator = faithfulness_correlation(predict, x, noisy, 0, n_samples=20,
                                              subset_size=5, seed=generator)
    np.testing.assert_array_equal(from_generator, first)
    assert generator.random() != np.random.default_rng(7).random()  # it was advanced
    from_sequence = faithfulness_correlation(predict, x, noisy, 0, n_samples=20,
                                             subset_size=5, seed=np.random.SeedSequence(7))
    np.testing.assert_array_equal(from_sequence, first)


def test_faithfulness_correlation_of_a_constant_map_is_nan():
    model, x, _ = _linear_case(n=2)
    result = faithfulness_correlation(model, x, np.ones_like(x), n_samples=5, subset_size=3,
                                      seed=0)
    assert np.isnan(result).all()


# ------------------------------------------------------------------------------ infidelity


def test_infidelity_of_the_gradient_of_a_linear_model_is_zero():
    model, x, _ = _linear_case(n=3)
    gradient = np.broadcast_to(model.w, x.shape)
    result = infidelity(model, x, gradient, n_samples=20, noise=0.5, seed=0)
    np.testing.assert_allclose(result, 0.0, rtol=0, atol=1e-24)
    scaled = infidelity(model, x, 3 * gradient, n_samples=20, noise=0.5, seed=0, normalise=True)
    np.testing.assert_allclose(scaled, 0.0, rtol=0, atol=1e-24)


def test_infidelity_with_channel_axis_sums_the_perturbation_over_channels():
    v = RNG.normal(size=(4, 4))
    w = np.stack([v, v, v])  # the same weight on every channel of a position
    x = RNG.normal(size=(2, 3, 4, 4))
    result = infidelity(Linear(w), x, np.broadcast_to(v, (2, 4, 4)), n_samples=10, seed=0,
                        channel_axis=1)
    np.testing.assert_allclose(result, 0.0, rtol=0, atol=1e-24)


def test_infidelity_of_a_wrong_map_of_a_linear_model():
    """map = w + d gives (d . I)^2 per draw: E = noise^2 |d|^2, and +d and -d agree draw by
    draw, as do 2w and 0 (both (w . I)^2)."""
    w = np.array([1.0, -2.0, 0.5])
    d = np.array([0.3, 0.4, -1.2])
    x = RNG.normal(size=(2, 3))
    noise, n = 0.2, 20000
    plus = infidelity(Linear(w), x, np.broadcast_to(w + d, x.shape), n_samples=n, noise=noise,
                      seed=5, batch_size=4096)
    minus = infidelity(Linear(w), x, np.broadcast_to(w - d, x.shape), n_samples=n,
                       noise=noise, seed=5, batch_size=4096)
    np.testing.assert_allclose(plus, minus, rtol=1e-12)
    # the relative standard error of a mean of n chi-square(1) terms is sqrt(2 / n) = 1%
    np.testing.assert_allclose(plus, noise**2 * d @ d, rtol=0.05)
    double = infidelity(Linear(w), x, np.broadcast_to(2 * w, x.shape), n_samples=50, seed=1)
    zero = infidelity(Linear(w), x, np.zeros_like(x), n_samples=50, seed=1)
    np.testing.assert_allclose(double, zero, rtol=1e-12)
    normalised = infidelity(Linear(w), x, np.zeros_like(x), n_samples=50, seed=1,
                            normalise=True)
    np.testing.assert_allclose(normalised, zero, rtol=1e-12)  # beta = 0 for an all-zero map


def test_random_metrics_leave_inputs_and_the_global_random_state_alone():
    model, x, contributions = _linear_case(n=2)
    before = x.copy()
    state = np.random.get_state()[1].copy()  # noqa: NPY002 - the global state is what is checked
    faithfulness_correlation(model, x, contributions, n_samples=5, subset_size=3)
    infidelity(model, x, contributions, n_samples=5)
    np.testing.assert_array_equal(x, before)
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # noqa: NPY002


# ------------------------------------------------------------------------------ bad input


def _never_called(rows):
    raise AssertionError("predict_fn must not be called for bad input")


X = np.zeros((2, 3, 4))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"maps": np.zeros((2, 3, 5))}, ValueError, r"maps: expected one map per input"),
        ({"maps": np.zeros((2, 4))}, ValueError, r"pass channel_axis="),
        ({"maps": np.zeros((2, 4)), "channel_axis": 0}, ValueError, r"channel_axis: expected"),
        ({"maps": np.zeros((2, 4)), "channel_axis": 3}, ValueError, r"channel_axis: expected"),
        ({"maps": np.zeros((2, 4)), "channel_axis": True}, TypeError, r"channel_axis"),
        ({"channel_axis": 1}, ValueError, r"need channel_axis=None"),
        ({"maps": np.full((2, 3, 4), np.nan)}, ValueError, r"maps: expected finite"),
        ({"steps": 0}, ValueError, r"steps: expected a positive integer"),
        ({"steps": 2.5}, TypeError, r"steps: expected a positive integer"),
        ({"baseline": "blur"}, ValueError, r"baseline: expected .*'mean'"),
        ({"baseline": np.zeros(4)}, ValueError, r"baseline: expected .*got shape \(4,\)"),
        ({"baseline": np.nan}, ValueError, r"baseline: expected finite"),
        ({"baseline": True}, TypeError, r"baseline"),
        ({"score": "logit"}, ValueError, r"score: expected one of"),
        ({"batch_size": 0}, ValueError, r"batch_size"),
        ({"target": -1}, ValueError, r"target"),
        ({"predict_fn": "model"}, TypeError, r"predict_fn"),
    ],
)
def test_bad_input_is_refused_before_the_model_runs(kwargs, error, match):
    arguments = {"predict_fn": _never_called, "maps": np.zeros_like(X), "steps": 3, **kwargs}
    predict_fn, maps = arguments.pop("predict_fn"), arguments.pop("maps")
    with pytest.raises(error, match=match):
        deletion(predict_fn, X, maps, **arguments)


@pytest.mark.parametrize(
    ("metric", "kwargs", "error", "match"),
    [
        (faithfulness_correlation, {"subset_size": 12}, ValueError, r"fewer than the 12"),
        (faithfulness_correlation, {"subset_size": 3, "n_samples": 1}, ValueError,
         r"n_samples: expected at least 2"),
        (faithfulness_correlation, {"subset_size": 3, "seed": "zero"}, TypeError, r"seed"),
        (infidelity, {"noise": 0.0}, ValueError, r"noise: expected a positive"),
        (infidelity, {"noise": -1.0}, ValueError, r"noise"),
        (infidelity, {"normalise": "yes"}, TypeError, r"normalise: expected a bool"),
        (infidelity, {"seed": 1.5}, TypeError, r"seed"),
        (infidelity, {"seed": -1}, ValueError, r"seed: expected a non-negative int"),
    ],
)
def test_bad_options_of_the_random_metrics(metric, kwargs, error, match):
    with pytest.raises(error, match=match):
        metric(_never_called, X, np.zeros_like(X), **kwargs)


def _model(outputs):
    """A model returning the given outputs, one call after another."""
    replies = iter(outputs)
    return lambda rows: next(replies)(rows)


def test_bad_model_outputs_name_the_rows():
    x = np.ones((3, 4))
    maps = RNG.normal(size=(3, 4))
    kwargs = {"steps": 3, "batch_size": 5}  # 12 rows: calls of rows 0..4, 5..9, 10..11
    good = lambda rows: rows.sum(axis=1)  # noqa: E731
    with pytest.raises(ValueError, match=r"rows 5\.\.9: expected finite"):
        deletion(_model([good, lambda r: np.full(len(r), np.nan)]), x, maps, **kwargs)
    with pytest.raises(ValueError, match=r"rows 0\.\.4: expected 5 rows"):
        deletion(lambda rows: rows.sum(axis=1)[:-1], x, maps, **kwargs)
    with pytest.raises(TypeError, match=r"rows 0\.\.4: expected a numpy array"):
        deletion(lambda rows: list(rows.sum(axis=1)), x, maps, **kwargs)
    with pytest.raises(ValueError, match=r"expected \(5,\) scores or \(5, C\) outputs"):
        deletion(lambda rows: np.zeros((len(rows), 2, 2)), x, maps, **kwargs)
    with pytest.raises(ValueError, match=r"rows 5\.\.9: the model's output shape changed "
                                         r"between calls: earlier calls gave \(5, 3\) .* "
                                         r"gives \(5, 4\)"):
        deletion(_model([lambda r: np.zeros((len(r), 3)), lambda r: np.zeros((len(r), 4))]),
                 x, maps, 0, **kwargs)


def test_targets_against_the_model_outputs():
    x = np.ones((2, 4))
    maps = RNG.normal(size=(2, 4))
    two = lambda rows: np.stack([rows.sum(1), -rows.sum(1)], 1)  # noqa: E731
    with pytest.raises(ValueError, match=r"gives 2 outputs per row; pass target"):
        deletion(two, x, maps, steps=2)
    with pytest.raises(ValueError, match=r"target: expected indices in \[0, 1\]"):
        deletion(two, x, maps, np.array([0, 2]), steps=2)
    with pytest.raises(ValueError, match=r"pass target=None"):
        deletion(lambda rows: rows.sum(1), x, maps, 0, steps=2)
    with pytest.raises(ValueError, match=r"score='softmax' needs outputs"):
        deletion(lambda rows: rows.sum(1), x, maps, steps=2, score="softmax")
    one_column = deletion(lambda rows: rows.sum(1, keepdims=True), x, maps, steps=2)
    flat = deletion(lambda rows: rows.sum(1), x, maps, steps=2)
    np.testing.assert_array_equal(one_column.scores, flat.scores)
