"""Robustness metrics on numpy callbacks with closed-form answers."""

from __future__ import annotations

import math
from functools import partial

import numpy as np
import pytest

from saliency_core import smoothgrad
from saliency_core.metrics.robustness import (
    avg_sensitivity,
    local_lipschitz,
    max_sensitivity,
    stability,
)
from tests.core.callbacks import Counting, linear

W = np.array([0.5, -1.0, 2.0, 3.0, -0.25, 1.5])
X = np.array([[0.0, 1.0, 2.0, -1.0, 0.5, 3.0], [2.0, 2.5, -3.0, 1.0, 0.0, 1.0]])


def identity(x, target):
    return x.copy()


def sphere(w: np.ndarray, c: float):
    """The gradient of ``w . x + c ||x - round(x)||``: ``w + c (x - round x) / ||x - round x||``.

    At an integer input the map is ``w``; at any neighbour closer than 0.5 in every element
    it is ``w`` plus a vector of length ``c``, so the relative change is exactly
    ``c / ||w||`` whatever the noise.
    """

    def fn(x, target):
        flat = x.reshape(len(x), -1).astype(np.float64)
        offset = flat - np.round(flat)
        norm = np.linalg.norm(offset, axis=1, keepdims=True)
        unit = np.divide(offset, norm, out=np.zeros_like(offset), where=norm > 0)
        return (w + c * unit).reshape(x.shape)

    return fn


def nonlinear(x, target):
    return np.tanh(x) * x + 0.1 * x**3


METRICS = [
    partial(avg_sensitivity, radius=0.3, n_samples=7),
    partial(max_sensitivity, radius=0.3, n_samples=7),
    partial(local_lipschitz, n_samples=7, sigma=0.2),
    partial(stability, n_samples=7, noise_level=0.1),
]
IDS = ["avg_sensitivity", "max_sensitivity", "local_lipschitz", "stability"]


@pytest.mark.parametrize("metric", METRICS, ids=IDS)
def test_a_linear_models_gradient_is_perfectly_robust(metric):
    value = metric(linear(W), X, seed=0)
    expected = 1.0 if metric.func is stability else 0.0
    np.testing.assert_array_equal(value, np.full(2, expected))


def test_sensitivity_of_a_unit_change_is_exactly_c_over_the_map_norm():
    x = np.array([[1.0, -2.0, 0.0, 3.0, 1.0, 0.0], [0.0, 0.0, 4.0, -1.0, 2.0, 5.0]])
    expected = 0.3 / np.linalg.norm(W)
    for metric in (avg_sensitivity, max_sensitivity):
        value = metric(sphere(W, 0.3), x, radius=0.4, n_samples=9, seed=1)
        np.testing.assert_allclose(value, [expected, expected], rtol=1e-12)


def test_sensitivity_of_the_identity_map_is_the_relative_noise():
    # e(x) = x changes by the noise d: ||d|| / ||x||, with ||d|| <= radius sqrt(D) and,
    # for D = 10^4 uniform elements, ||d|| = radius sqrt(D / 3) within 0.5% (one std)
    x = np.full((2, 10_000), 2.0)
    x[1] *= -3.0
    radius = 0.5
    norm = np.linalg.norm(x, axis=1)
    average = avg_sensitivity(identity, x, radius=radius, n_samples=4, seed=0)
    largest = max_sensitivity(identity, x, radius=radius, n_samples=4, seed=0)
    np.testing.assert_allclose(average, radius * math.sqrt(10_000 / 3) / norm, rtol=0.02)
    assert np.all(average <= largest) and np.all(largest <= radius * 100 / norm)


def test_sensitivity_relative_false_is_the_absolute_change():
    x = np.full((1, 10_000), 5.0)
    absolute = max_sensitivity(identity, x, radius=0.3, n_samples=3, seed=2, relative=False)
    relative = max_sensitivity(identity, x, radius=0.3, n_samples=3, seed=2)
    np.testing.assert_allclose(absolute, relative * np.linalg.norm(x), rtol=1e-12)
    np.testing.assert_allclose(absolute, 0.3 * math.sqrt(10_000 / 3), rtol=0.02)


def test_sensitivity_of_a_zero_map_is_inf_or_zero_and_warns():
    def zero_at_integers(x, target):
        return x - np.round(x)  # zero at the (integer) inputs, not at their neighbours

    x = np.array([[1.0, 2.0, 3.0], [1.5, 2.0, 3.0]])  # input 1's map is not zero
    with pytest.warns(RuntimeWarning, match=r"input\(s\) \[0\] is zero everywhere"):
        value = avg_sensitivity(zero_at_integers, x, radius=0.2, n_samples=3, seed=0)
    assert value[0] == np.inf and 0 < value[1] < np.inf
    with pytest.warns(RuntimeWarning, match=r"input\(s\) \[0, 1\] is zero everywhere"):
        value = max_sensitivity(lambda x, t: np.zeros_like(x), x, radius=0.2, n_samples=3)
    np.testing.assert_array_equal(value, [0.0, 0.0])


def test_local_lipschitz_of_a_scaled_rotation_is_exactly_its_scale():
    rotation, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(6, 6)))
    value = local_lipschitz(lambda x, t: 2.5 * x @ rotation.T, X, n_samples=5, seed=3)
    np.testing.assert_allclose(value, [2.5, 2.5], rtol=1e-12)
    np.testing.assert_allclose(local_lipschitz(identity, X.astype(np.float32), n_samples=5,
                                               seed=3), [1.0, 1.0], rtol=1e-12)


def test_local_lipschitz_is_bounded_by_the_largest_singular_value():
    matrix = np.diag([3.0, 1.0, 0.5, 0.5, 0.2, 0.1])
    value = local_lipschitz(lambda x, t: x @ matrix, X, n_samples=50, seed=4)
    assert np.all(value <= 3.0 + 1e-12) and np.all(value > 1.0)


def test_local_lipschitz_without_any_move_is_nan_and_warns():
    x = np.full((1, 4), 1e8, dtype=np.float32)  # float32 spacing 8 at 1e8: sigma 1e-3 vanishes
    with pytest.warns(RuntimeWarning, match=r"no neighbour of input\(s\) \[0\]"):
        value = local_lipschitz(identity, x, n_samples=3, sigma=1e-3, seed=0)
    assert np.isnan(value).all()


def test_stability_of_the_identity_map_follows_the_gaussian_rank_correlation():
    # x ~ N(0, 1) per element, map x vs x + N(0, s^2): Pearson rho = 1 / sqrt(1 + s^2) and
    # Spearman 6 / pi * asin(rho / 2) (Pearson 1907), within 0.01 for 20000 elements
    x = np.random.default_rng(5).standard_normal((1, 20_000))
    for s in (0.3, 1.0):
        rho = 1 / math.sqrt(1 + s**2)
        value = stability(identity, x, n_samples=3, sigma=s, seed=6)
        assert value[0] == pytest.approx(6 / math.pi * math.asin(rho / 2), abs=0.01)


def test_stability_noise_is_relative_to_the_input_range():
    # sigma = 0.2 * range per input: the same rank correlation for x and 100 x
    x = np.random.default_rng(7).standard_normal((1, 20_000))
    x = np.concatenate([x, 100.0 * x])
    value = stability(identity, x, n_samples=3, noise_level=0.2, seed=8)
    sigma = 0.2 * np.ptp(x[0])
    rho = 1 / math.sqrt(1 + sigma**2 / x[0].var())
    np.testing.assert_allclose(value, 6 / math.pi * math.asin(rho / 2), atol=0.01)


def test_stability_absolute_ranks_magnitudes():
    # the map is w or -w, by the sign of the first element's noise: the signed rankings
    # reverse for about half the samples, the rankings of |map| never change
    def flipping(x, target):
        first = x[:, :1] - np.round(x[:, :1])
        return np.where(first < 0, -1.0, 1.0) * W

    x = np.array([[1.0, 2.0, 0.0, -1.0, 3.0, 1.0]])
    signed = stability(flipping, x, n_samples=16, sigma=0.1, seed=0)
    assert stability(flipping, x, n_samples=16, sigma=0.1, absolute=True, seed=0)[0] == 1.0
    assert -1.0 < signed[0] < 1.0
    assert (signed[0] * 16) % 2 == 0  # a mean of 16 values, each +1 or -1


def test_stability_of_a_constant_map_is_nan_and_warns():
    with pytest.warns(RuntimeWarning, match=r"input\(s\) \[0, 1\] have a constant map"):
        value = stability(lambda x, t: np.ones_like(x), X, n_samples=2, seed=0)
    assert np.isnan(value).all()


@pytest.mark.parametrize("metric", METRICS, ids=IDS)
def test_batch_size_changes_nothing_and_calls_are_chunked(metric):
    values = []
    for batch_size in (1, 3, 8, 100):
        counting = Counting(nonlinear)
        values.append(metric(counting, X, seed=11, batch_size=batch_size))
        rows = 2 * (7 + 1)
        assert sum(counting.calls) == rows
        assert len(counting.calls) == math.ceil(rows / batch_size)
        assert max(counting.calls) <= batch_size
    for value in values[1:]:
        np.testing.assert_allclose(value, values[0], rtol=1e-12)


@pytest.mark.parametrize("metric", METRICS, ids=IDS)
def test_randomness_comes_from_the_seed_only(metric):
    state = np.random.get_state()[1].copy()  # noqa: NPY002 - proving it is left alone
    first = metric(nonlinear, X, seed=21)
    np.testing.assert_array_equal(metric(nonlinear, X, seed=np.random.SeedSequence(21)), first)
    generator = np.random.default_rng(21)
    np.testing.assert_array_equal(metric(nonlinear, X, seed=generator), first)
    assert not np.array_equal(metric(nonlinear, X, seed=generator), first)  # it advanced
    assert not np.array_equal(metric(nonlinear, X, seed=22), first)
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # noqa: NPY002


def test_every_row_gets_its_inputs_target():
    seen = []

    def record(x, target):
        seen.extend(target.tolist())
        return nonlinear(x, target)

    avg_sensitivity(record, X, np.array([3, 5]), radius=0.1, n_samples=2, seed=0, batch_size=4)
    assert seen == [3, 3, 3, 5, 5, 5]


def test_methods_compose_as_callbacks():
    grad = Counting(linear(W))
    smooth = partial(smoothgrad, grad, n_samples=4, seed=0)
    assert avg_sensitivity(smooth, X, radius=0.1, n_samples=3, seed=0, batch_size=8)[0] == 0.0
    assert max(grad.calls) <= 64


@pytest.mark.parametrize("metric", METRICS, ids=IDS)
@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        ({"n_samples": 0}, ValueError, "n_samples: expected a positive integer, got 0"),
        ({"n_samples": 2.0}, TypeError, "n_samples: expected a positive integer, got 2.0"),
        ({"batch_size": 0}, ValueError, "batch_size: expected a positive integer, got 0"),
        ({"seed": "0"}, TypeError, "seed: expected None, a non-negative int"),
        ({"x": X[0]}, ValueError, "x: expected a batch"),
        ({"x": np.full((1, 3), np.nan)}, ValueError, "x: expected finite values"),
        ({"target": -1}, ValueError, "target: expected a non-negative index"),
        ({"explain_fn": "grad"}, TypeError, "explain_fn: expected a callable"),
    ],
)
def test_bad_input_is_refused_before_any_call(metric, change, error, match):
    counting = Counting(nonlinear)
    arguments = {"explain_fn": counting, "x": X, "target": None, **change}
    with pytest.raises(error, match=match):
        metric(arguments.pop("explain_fn"), arguments.pop("x"), arguments.pop("target"),
               **arguments)
    assert counting.calls == []


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda f: avg_sensitivity(f, X, radius=-0.1, n_samples=2), ValueError,
         "radius: expected a non-negative finite number, got -0.1"),
        (lambda f: max_sensitivity(f, X, radius=np.inf, n_samples=2), ValueError,
         "radius: expected a non-negative finite number"),
        (lambda f: max_sensitivity(f, X, radius=0.1, n_samples=2, relative=1), TypeError,
         "relative: expected True or False"),
        (lambda f: local_lipschitz(f, X, n_samples=2, sigma=0.0), ValueError,
         "sigma: expected a positive finite number, got 0.0"),
        (lambda f: stability(f, X, n_samples=2, sigma=0.1, noise_level=0.1), ValueError,
         "expected either noise_level .* or sigma .*, got both"),
        (lambda f: stability(f, X, n_samples=2, noise_level=-1), ValueError,
         "noise_level: expected a non-negative finite number, got -1"),
    ],
)
def test_bad_options_are_refused_before_any_call(call, error, match):
    counting = Counting(nonlinear)
    with pytest.raises(error, match=match):
        call(counting)
    assert counting.calls == []


@pytest.mark.parametrize("metric", METRICS, ids=IDS)
@pytest.mark.parametrize(
    ("callback", "error", "match"),
    [
        (lambda x, t: np.full_like(x, np.nan), ValueError,
         r"explain_fn \(inputs 0\.\.0\) call for rows 0\.\.4: expected finite values"),
        (lambda x, t: x[:, :3], None, None),  # another trailing shape is fine if it stays
        (lambda x, t: x[:-1], ValueError, r"expected 5 rows \(one per input row\)"),
        (lambda x, t: x.tolist(), TypeError, "expected a numpy array, got list"),
        (lambda x, t: x[:, : len(x)], ValueError,  # (5, 5) twice, then (1, 1)
         r"explain_fn \(inputs 1\.\.1\) call for rows 15\.\.15: expected an array of shape "
         r"\(1, 5\), got shape \(1, 1\)"),
    ],
)
def test_bad_maps_are_refused_naming_the_call(metric, callback, error, match):
    if error is None:
        assert metric(callback, X, seed=0, batch_size=5).shape == (2,)
        return
    with pytest.raises(error, match=match):
        metric(callback, X, seed=0, batch_size=5)


@pytest.mark.parametrize("metric", METRICS, ids=IDS)
def test_a_map_that_changes_shape_between_calls_is_refused(metric):
    calls = []

    def shifting(x, target):
        calls.append(len(x))
        return x if len(calls) == 1 else x[:, :-1]

    with pytest.raises(ValueError, match=r"call for rows 5\.\.9: expected an array of shape "
                                         r"\(5, 6\), got shape \(5, 5\)"):
        metric(shifting, X, seed=0, batch_size=5)
