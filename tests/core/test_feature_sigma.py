"""SmoothGrad with one standard deviation per element (per feature) of an input.

``sigma`` may have one input's shape (the same for every input: each feature's spread
across a data set, from :func:`saliency_core.smoothing.feature_sigma`) or broadcast to
``x``'s shape, besides a number and one value per input. Closed forms: the noise of
element ``j`` is exactly ``sigma_j`` times the standard noise the same seed gives with
``sigma=1``; a linear model's SmoothGrad is ``w``; VarGrad of ``x^T A x`` is
``4 sum_j A_ij^2 sigma_j^2``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from saliency_core import NOISE_SCHEMES, gradient_x_input, smoothgrad
from saliency_core.smoothing import feature_sigma
from saliency_core.weight_noise import fusion_grad
from tests.core import callbacks


def never_called(*args):  # pragma: no cover - the point is that it is not called
    raise AssertionError("a callback ran before the input was checked")


class Recording:
    """An identity callback (the map is the noisy input itself) that keeps every row."""

    def __init__(self):
        self.rows: list[np.ndarray] = []

    def __call__(self, x, target):
        self.rows.append(x.copy())
        return x.copy()

    def noise(self, x: np.ndarray, n_samples: int) -> np.ndarray:
        """The recorded noise, ``(N, n_samples, *input_shape)``."""
        rows = np.concatenate(self.rows).reshape(x.shape[0], n_samples, *x.shape[1:])
        return rows - x[:, None]


RNG = np.random.default_rng(0)
X = RNG.normal(size=(4, 5))                                # 4 inputs, 5 features
SIGMA = np.array([0.0, 0.1, 1.0, 3.0, 0.5])                # one per feature


# --- the noise itself -------------------------------------------------------------------------


@pytest.mark.parametrize("noise", NOISE_SCHEMES)
def test_feature_j_gets_sigma_j_times_the_standard_noise(noise):
    n = 16
    per_feature, unit = Recording(), Recording()
    smoothgrad(per_feature, X, n_samples=n, sigma=SIGMA, noise=noise, batch_size=7, seed=3)
    smoothgrad(unit, X, n_samples=n, sigma=1.0, noise=noise, batch_size=7, seed=3)
    np.testing.assert_allclose(per_feature.noise(X, n), unit.noise(X, n) * SIGMA,
                               rtol=1e-12, atol=1e-15)


def test_the_noise_of_feature_j_has_standard_deviation_sigma_j():
    n = 4000
    recording = Recording()
    smoothgrad(recording, X, n_samples=n, sigma=SIGMA, noise="iid", seed=1)
    noise = recording.noise(X, n)
    measured = noise.std(axis=1)                                   # (N, F)
    # the sample std of n normal draws has a relative standard error ~ 1 / sqrt(2 n)
    bound = 4 * SIGMA / math.sqrt(2 * n)
    assert np.all(np.abs(measured - SIGMA) <= bound), (measured, SIGMA)
    assert np.all(noise[..., 0] == 0)                              # sigma 0: no noise at all
    assert np.all(np.abs(noise.mean(axis=1)) <= 4 * SIGMA / math.sqrt(n))


def test_every_spelling_of_one_sigma_per_feature_gives_the_same_noise():
    n, results = 6, []
    for sigma in (SIGMA, SIGMA[None], np.tile(SIGMA, (len(X), 1)), list(SIGMA)):
        results.append(smoothgrad(lambda b, t: b ** 3, X, n_samples=n, sigma=sigma, seed=5))
    for result in results[1:]:
        np.testing.assert_array_equal(result, results[0])


def test_one_sigma_per_channel_of_an_image():
    x = RNG.uniform(size=(2, 3, 3, 2))
    per_channel = np.array([0.2, 2.0])
    n = 8
    recording, unit = Recording(), Recording()
    smoothgrad(recording, x, n_samples=n, sigma=per_channel.reshape(1, 1, 1, 2), seed=0)
    smoothgrad(unit, x, n_samples=n, sigma=1.0, seed=0)
    np.testing.assert_allclose(recording.noise(x, n), unit.noise(x, n) * per_channel,
                               rtol=1e-12)
    # the same sigma given with one input's rank, (1, 1, 2)
    again = Recording()
    smoothgrad(again, x, n_samples=n, sigma=per_channel.reshape(1, 1, 2), seed=0)
    np.testing.assert_array_equal(np.concatenate(again.rows), np.concatenate(recording.rows))


def test_one_sigma_per_element_of_each_input():
    sigma = RNG.uniform(0.1, 2.0, size=X.shape)
    n = 8
    recording, unit = Recording(), Recording()
    smoothgrad(recording, X, n_samples=n, sigma=sigma, seed=2)
    smoothgrad(unit, X, n_samples=n, sigma=1.0, seed=2)
    np.testing.assert_allclose(recording.noise(X, n), unit.noise(X, n) * sigma[:, None],
                               rtol=1e-12)


def test_per_input_sigma_keeps_its_meaning():
    per_input = np.array([0.5, 1.0, 0.0, 2.0])
    n = 8
    recording, unit = Recording(), Recording()
    smoothgrad(recording, X, n_samples=n, sigma=per_input, seed=4)
    smoothgrad(unit, X, n_samples=n, sigma=1.0, seed=4)
    np.testing.assert_allclose(recording.noise(X, n),
                               unit.noise(X, n) * per_input[:, None, None], rtol=1e-12)


def test_the_result_does_not_depend_on_batch_size_and_keeps_float32():
    x = X.astype(np.float32)
    fn = lambda b, t: np.tanh(b)  # noqa: E731
    results = [smoothgrad(fn, x, n_samples=9, sigma=SIGMA, seed=0, batch_size=size)
               for size in (1, 5, 64)]
    assert all(result.dtype == np.float32 for result in results)
    for result in results[1:]:
        np.testing.assert_array_equal(result, results[0])


# --- closed forms -----------------------------------------------------------------------------


def test_a_linear_model_gives_w_exactly():
    w = np.array([1.0, -2.0, 3.0, 0.5, -0.25])
    result = smoothgrad(callbacks.linear(w), X, n_samples=7, sigma=SIGMA, seed=0)
    np.testing.assert_array_equal(result, np.broadcast_to(w, X.shape))


def test_gradient_x_input_of_a_linear_model_is_w_times_x_with_antithetic_noise():
    # each pair z, -z averages to x exactly, so the mean of w * (x + sigma z) is w * x
    w = np.array([1.0, -2.0, 3.0, 0.5, -0.25])

    def grad_x_input(b, t):
        return gradient_x_input(callbacks.linear(w), b)

    result = smoothgrad(grad_x_input, X, n_samples=10, sigma=SIGMA, noise="antithetic",
                        seed=0)
    np.testing.assert_allclose(result, w * X, rtol=1e-12, atol=1e-14)


def test_vargrad_of_a_quadratic_is_four_sum_a_squared_sigma_squared():
    # the gradient 2 A (x + e) varies by 2 A e: variance 4 sum_j A_ij^2 sigma_j^2
    a = RNG.normal(size=(5, 5))
    a = (a + a.T) / 2
    n = 4000
    result = smoothgrad(callbacks.quadratic(a), X, n_samples=n, sigma=SIGMA,
                        aggregate="variance", seed=0)
    expected = 4 * (a**2 * SIGMA**2).sum(axis=1)
    # the sample variance's relative standard error is about sqrt(2 / n)
    np.testing.assert_allclose(result, np.broadcast_to(expected, X.shape),
                               rtol=5 * math.sqrt(2 / n))


def test_fusion_grad_passes_a_resolved_sigma_on_even_when_n_equals_the_features():
    # x of shape (3, 3): SmoothGrad's per-input sigmas must stay unambiguous when passed on
    x = RNG.uniform(size=(3, 3))
    w = np.array([1.0, 2.0, -1.0])

    def make_fn(seed_sequence):
        return callbacks.linear(w)

    for options in ({}, {"sigma": np.array([0.1, 0.2, 0.3])[None]}):
        result = fusion_grad(make_fn, x, n_models=2, n_samples=3, seed=0, **options)
        np.testing.assert_allclose(result, np.broadcast_to(w, x.shape))


# --- feature_sigma --------------------------------------------------------------------------


def test_feature_sigma_is_the_level_times_each_features_spread():
    data = RNG.normal(size=(50, 3)) * np.array([1.0, 10.0, 0.1]) + 5.0
    np.testing.assert_allclose(feature_sigma(data, 0.2),
                               0.2 * (data.max(axis=0) - data.min(axis=0)), rtol=1e-15)
    np.testing.assert_allclose(feature_sigma(data, 0.5, spread="std"),
                               0.5 * data.std(axis=0), rtol=1e-15)
    images = RNG.uniform(size=(6, 2, 2, 3))
    assert feature_sigma(images, 0.1).shape == (2, 2, 3)
    constant = np.ones((4, 2))
    np.testing.assert_array_equal(feature_sigma(constant, 0.3), [0.0, 0.0])


def test_feature_sigma_feeds_smoothgrad():
    data = RNG.normal(size=(30, 5)) * np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    sigma = feature_sigma(data, 0.15)
    n = 8
    recording, unit = Recording(), Recording()
    smoothgrad(recording, X, n_samples=n, sigma=sigma, seed=0)
    smoothgrad(unit, X, n_samples=n, sigma=1.0, seed=0)
    np.testing.assert_allclose(recording.noise(X, n), unit.noise(X, n) * sigma, rtol=1e-12)


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ((np.ones(3), 0.1), ValueError, r"data: expected a batch of shape \(N, \*input_shape\)"),
        ((np.ones((2, 3)), -0.1), ValueError, r"noise_level: expected"),
        ((np.ones((2, 3)), 0.1, "iqr"), ValueError, r"spread: expected one of"),
        ((np.array([[-1e308], [1e308]]), 1.0), ValueError,
         r"data: expected noise_level \* range of each feature within float64"),
        ((np.array([["a"]]), 0.1), TypeError, r"data: expected a real numeric array"),
    ],
)
def test_feature_sigma_refuses_bad_input(arguments, error, message):
    data, level, *spread = arguments
    with pytest.raises(error, match=message):
        feature_sigma(data, level, **({"spread": spread[0]} if spread else {}))


# --- shapes refused, before any callback call -------------------------------------------------


ACCEPTED = (r"sigma: expected a number, one value per input \(shape \(4,\)\), one per element "
            r"of an input \(a shape that broadcasts to the input shape \(5,\).*or a shape of "
            r"x's 2 dimensions that broadcasts to x's shape \(4, 5\); got shape ")


@pytest.mark.parametrize(
    "sigma",
    [np.ones(3), np.ones(6), np.ones((4, 4)), np.ones((2, 5)), np.ones((1, 1, 5)),
     np.ones((4, 5, 1))],
    ids=["3", "6", "4x4", "2x5", "1x1x5", "4x5x1"],
)
def test_a_sigma_of_no_accepted_shape_is_refused(sigma):
    with pytest.raises(ValueError, match=ACCEPTED + r"\(" + ", ".join(map(str, sigma.shape))):
        smoothgrad(never_called, X, sigma=sigma, seed=0)


def test_an_ambiguous_sigma_is_refused_with_both_ways_out():
    x = np.zeros((3, 3))
    message = (r"sigma: shape \(3,\) is both one value per input and one per element of "
               r"inputs of shape \(3,\); pass sigma\[:, None\] \(shape \(3, 1\)\) for one per "
               r"input or sigma\[None\] \(shape \(1, 3\)\) for one per element")
    with pytest.raises(ValueError, match=message):
        smoothgrad(never_called, x, sigma=np.ones(3), seed=0)
    # both ways out are accepted and mean what they say
    n = 6
    by_input, by_feature, unit = Recording(), Recording(), Recording()
    values = np.array([0.0, 1.0, 2.0])
    smoothgrad(by_input, x, n_samples=n, sigma=values[:, None], seed=0)
    smoothgrad(by_feature, x, n_samples=n, sigma=values[None], seed=0)
    smoothgrad(unit, x, n_samples=n, sigma=1.0, seed=0)
    np.testing.assert_allclose(by_input.noise(x, n), unit.noise(x, n) * values[:, None, None])
    np.testing.assert_allclose(by_feature.noise(x, n), unit.noise(x, n) * values)


@pytest.mark.parametrize(
    ("sigma", "message"),
    [
        (np.array([0.1, -1.0, 0.1, 0.1, 0.1]), r"sigma: expected finite non-negative values, "
                                               r"got \[0.1, -1.0, 0.1, 0.1, 0.1\]"),
        (np.array([0.1, np.nan, 0.1, 0.1, 0.1]), r"sigma: expected finite non-negative"),
        (np.full((4, 5), np.inf), r"sigma: expected finite non-negative values, got 20 bad "
                                  r"value\(s\) of 20, the first \[inf, inf, inf, inf, inf\]"),
    ],
)
def test_bad_per_feature_values_are_refused(sigma, message):
    with pytest.raises(ValueError, match=message):
        smoothgrad(never_called, X, sigma=sigma, seed=0)


def test_bad_per_feature_types_are_refused():
    with pytest.raises(TypeError, match=r"sigma: expected a number or an array of numbers, "
                                        r"got dtype bool"):
        smoothgrad(never_called, X, sigma=np.ones(5, dtype=bool), seed=0)
    with pytest.raises(ValueError, match=r"expected either noise_level .* or sigma"):
        smoothgrad(never_called, X, sigma=SIGMA, noise_level=0.1, seed=0)
    with pytest.raises(ValueError, match=r"sigma: expected standard deviations within the "
                                         r"range of x's dtype float32"):
        smoothgrad(never_called, X.astype(np.float32), sigma=np.full(5, 1e39), seed=0)
