"""SmoothGrad against closed forms, with Monte Carlo bounds derived per test.

Each bound is 5 standard errors of the estimator: the seeds are fixed, so a pass is
deterministic, and a wrong aggregation misses by far more than the bound.
"""

from __future__ import annotations

import math
import tracemalloc
from functools import partial

import numpy as np
import pytest

from saliency_core import integrated_gradients, noise_sigma, smoothgrad, vanilla_gradient
from saliency_core.noise import LHS_BLOCK
from tests.core import callbacks

Z = 5.0  # standard errors allowed


def symmetric(n: int, seed: int = 0) -> np.ndarray:
    a = np.random.default_rng(seed).standard_normal((n, n))
    return (a + a.T) / 2


# --- linear: exact whatever the noise -------------------------------------------------


@pytest.mark.parametrize("batch_size", [1, 7, 64])
def test_linear_mean_is_w_exactly(batch_size):
    w = np.array([1.0, -2.0, 0.5, 3.0])
    x = np.random.default_rng(0).uniform(size=(3, 4))
    result = smoothgrad(callbacks.linear(w), x, n_samples=20, batch_size=batch_size, seed=0)
    np.testing.assert_allclose(result, np.broadcast_to(w, x.shape), rtol=1e-14)


def test_linear_square_is_w_squared_and_variance_is_zero():
    w = np.array([[1.0, -2.0], [0.5, 3.0]])
    x = np.random.default_rng(0).uniform(size=(2, 2, 2))
    fn = callbacks.linear(w)
    square = smoothgrad(fn, x, n_samples=30, aggregate="square", seed=1)
    variance = smoothgrad(fn, x, n_samples=30, aggregate="variance", batch_size=7, seed=1)
    absolute = smoothgrad(fn, x, n_samples=30, aggregate="abs", seed=1)
    np.testing.assert_allclose(square, np.broadcast_to(w**2, x.shape), rtol=1e-14)
    np.testing.assert_allclose(absolute, np.broadcast_to(np.abs(w), x.shape), rtol=1e-14)
    assert (variance >= 0).all()
    assert variance.max() < 1e-24


# --- quadratic x^T A x: mean 2Ax, square (2Ax)^2 + v, variance v -------------------------


@pytest.fixture
def quadratic_case():
    a = symmetric(5)
    x = np.random.default_rng(3).uniform(-1, 1, size=(2, 5))
    sigma = 0.3
    v = 4 * sigma**2 * (a**2).sum(axis=1)  # variance of each gradient component under noise
    return a, x, sigma, v


def test_quadratic_mean_is_2ax(quadratic_case):
    a, x, sigma, v = quadratic_case
    n = 4000
    result = smoothgrad(callbacks.quadratic(a), x, n_samples=n, sigma=sigma, seed=0)
    # the mean of n draws of N(2Ax, v) has standard error sqrt(v / n)
    assert np.all(np.abs(result - 2 * x @ a) < Z * np.sqrt(v / n))


def test_quadratic_square(quadratic_case):
    a, x, sigma, v = quadratic_case
    n = 4000
    result = smoothgrad(callbacks.quadratic(a), x, n_samples=n, sigma=sigma, aggregate="square",
                        seed=1)
    mu = 2 * x @ a
    expected = mu**2 + v
    # g ~ N(mu, v): Var[g^2] = 2 v^2 + 4 mu^2 v
    bound = Z * np.sqrt((2 * v**2 + 4 * mu**2 * v) / n)
    assert np.all(np.abs(result - expected) < bound)
    # and it is not the squared mean (the difference is v, far beyond the bound)
    assert np.all(np.abs(result - mu**2) > bound)


def test_quadratic_variance(quadratic_case):
    a, x, sigma, v = quadratic_case
    n = 4000
    result = smoothgrad(callbacks.quadratic(a), x, n_samples=n, sigma=sigma,
                        aggregate="variance", batch_size=33, seed=2)
    # population variance of n normal draws: mean (n-1)/n v, variance about 2 v^2 / n
    bound = Z * np.sqrt(2 * v**2 / n) + v / n
    assert np.all(np.abs(result - np.broadcast_to(v, x.shape)) < bound)


def test_variance_is_stable_for_a_large_mean():
    # gradients 1e8 + small noise: the naive E[g^2] - E[g]^2 cancels catastrophically
    def fn(x, target):
        return 1e8 + x

    x = np.zeros((1, 3))
    result = smoothgrad(fn, x, n_samples=2000, sigma=1.0, aggregate="variance", batch_size=37,
                        seed=0)
    assert np.all(np.abs(result - 1.0) < Z * math.sqrt(2 / 2000) + 1e-3)


# --- 1-D ReLU: SmoothGrad = Phi(x / sigma) -----------------------------------------------


def normal_cdf(z):
    return 0.5 * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))


def test_relu_gives_normal_cdf():
    x = np.array([[-0.5], [-0.1], [0.0], [0.2], [0.6]])
    sigma = 0.25
    n = 5000
    result = smoothgrad(callbacks.relu_1d, x, n_samples=n, sigma=sigma, seed=0)
    p = normal_cdf(x / sigma)
    bound = Z * np.sqrt(p * (1 - p) / n) + 1e-12
    assert np.all(np.abs(result - p) <= bound)


# --- (5x, y^2, sin z): vanilla (5, 2y, cos z); SmoothGrad (5, 2y, cos z * exp(-s^2/2)) ----


def test_mixed_function_vanilla_and_smoothgrad():
    x = np.array([[0.3, -1.2, 0.7], [2.0, 0.4, -2.5]])
    np.testing.assert_allclose(
        vanilla_gradient(callbacks.mixed_3d, x),
        np.stack([np.full(2, 5.0), 2 * x[:, 1], np.cos(x[:, 2])], axis=1),
        rtol=1e-15,
    )
    sigma, n = 0.5, 4000
    result = smoothgrad(callbacks.mixed_3d, x, n_samples=n, sigma=sigma, seed=0)
    z = x[:, 2]
    mean_cos = np.cos(z) * np.exp(-(sigma**2) / 2)
    var_cos = (1 + np.cos(2 * z) * np.exp(-2 * sigma**2)) / 2 - mean_cos**2
    assert np.all(result[:, 0] == 5.0)
    assert np.all(np.abs(result[:, 1] - 2 * x[:, 1]) < Z * 2 * sigma / math.sqrt(n))
    assert np.all(np.abs(result[:, 2] - mean_cos) < Z * np.sqrt(var_cos / n))
    # the damping exp(-sigma^2/2) = 0.88 is resolved: the plain cos z is outside the bound
    assert np.all(np.abs(result[:, 2] - np.cos(z)) > Z * np.sqrt(var_cos / n))


# --- noise conventions ---------------------------------------------------------------------


def test_noise_level_is_relative_to_each_inputs_range():
    x = np.array([[0.0, 10.0], [0.0, 1.0]])
    np.testing.assert_allclose(noise_sigma(x, 0.2), [2.0, 0.2])
    # the variance of an identity callback's map is sigma_i^2
    result = smoothgrad(lambda b, t: b.copy(), x, n_samples=4000, noise_level=0.2,
                        aggregate="variance", seed=0)
    np.testing.assert_allclose(result.mean(axis=1), [4.0, 0.04], rtol=0.1)


def test_sigma_zero_gives_the_plain_gradient():
    a = symmetric(3)
    x = np.random.default_rng(1).uniform(size=(2, 3))
    fn = callbacks.quadratic(a)
    np.testing.assert_allclose(smoothgrad(fn, x, n_samples=5, sigma=0.0, seed=0),
                               vanilla_gradient(fn, x), rtol=1e-14)
    np.testing.assert_allclose(smoothgrad(fn, x, n_samples=5, noise_level=0.0, seed=0),
                               vanilla_gradient(fn, x), rtol=1e-14)


def test_sigma_per_input():
    x = np.zeros((2, 3))
    result = smoothgrad(lambda b, t: b.copy(), x, n_samples=3000, sigma=np.array([1.0, 0.1]),
                        aggregate="variance", seed=0)
    np.testing.assert_allclose(result.mean(axis=1), [1.0, 0.01], rtol=0.1)


# --- reproducibility -----------------------------------------------------------------------


def test_same_seed_same_result_other_seed_other_result():
    a = symmetric(4)
    x = np.random.default_rng(0).uniform(size=(3, 4))
    fn = callbacks.quadratic(a)
    first = smoothgrad(fn, x, n_samples=10, seed=42)
    np.testing.assert_array_equal(first, smoothgrad(fn, x, n_samples=10, seed=42))
    assert not np.allclose(first, smoothgrad(fn, x, n_samples=10, seed=43))
    np.testing.assert_array_equal(
        first, smoothgrad(fn, x, n_samples=10, seed=np.random.default_rng(42))
    )


@pytest.mark.parametrize("aggregate", ["mean", "abs", "square", "variance"])
def test_result_does_not_depend_on_batch_size(aggregate):
    a = symmetric(4)
    x = np.random.default_rng(0).uniform(size=(3, 4))
    fn = callbacks.quadratic(a)
    results = [
        smoothgrad(fn, x, n_samples=25, aggregate=aggregate, batch_size=b, seed=7)
        for b in (1, 4, 25, 26, 1000)
    ]
    for other in results[1:]:
        np.testing.assert_allclose(other, results[0], rtol=1e-12, atol=1e-14)


def test_float32_batch_size_invariance_within_rounding():
    x = np.random.default_rng(0).uniform(size=(2, 8, 8, 3)).astype(np.float32)
    fn = lambda b, t: np.sin(b)  # noqa: E731
    small = smoothgrad(fn, x, n_samples=30, batch_size=7, seed=0)
    large = smoothgrad(fn, x, n_samples=30, batch_size=64, seed=0)
    assert small.dtype == np.float32
    np.testing.assert_allclose(small, large, rtol=1e-6, atol=1e-7)


def test_global_random_state_is_neither_read_nor_changed():
    x = np.random.default_rng(0).uniform(size=(2, 3))
    fn = lambda b, t: b ** 2  # noqa: E731
    np.random.seed(123)  # noqa: NPY002 - the legacy global state is what is checked
    state = np.random.get_state()  # noqa: NPY002
    first = smoothgrad(fn, x, n_samples=10, seed=5)
    after = np.random.get_state()  # noqa: NPY002
    assert state[0] == after[0] and np.array_equal(state[1], after[1]) and state[2:] == after[2:]
    np.random.seed(999)  # noqa: NPY002
    np.testing.assert_array_equal(first, smoothgrad(fn, x, n_samples=10, seed=5))


# --- cost: calls and memory ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_inputs", "n_samples", "batch_size", "expected"),
    [(3, 10, 4, [4] * 7 + [2]), (1, 5, 64, [5]), (2, 6, 6, [6, 6]), (4, 1, 3, [3, 1])],
)
def test_callback_call_counts(n_inputs, n_samples, batch_size, expected):
    counting = callbacks.Counting(callbacks.linear(np.ones(3)))
    x = np.random.default_rng(0).uniform(size=(n_inputs, 3))
    smoothgrad(counting, x, n_samples=n_samples, batch_size=batch_size, seed=0)
    assert counting.calls == expected


def test_rows_of_a_call_carry_their_inputs_targets():
    seen = []

    def fn(x, target):
        seen.append(target.copy())
        return np.zeros_like(x)

    x = np.random.default_rng(0).uniform(size=(3, 2))
    smoothgrad(fn, x, np.array([4, 0, 9]), n_samples=3, batch_size=4, seed=0)
    np.testing.assert_array_equal(np.concatenate(seen), [4, 4, 4, 0, 0, 0, 9, 9, 9])


def _peak_bytes(n_samples: int, noise: str = "iid") -> int:
    x = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype(np.float32)
    fn = lambda b, t: b * 2  # noqa: E731
    tracemalloc.start()
    try:
        smoothgrad(fn, x, n_samples=n_samples, batch_size=16, aggregate="variance",
                   noise=noise, seed=0)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_n_samples():
    small, large = _peak_bytes(16), _peak_bytes(1024)
    row_bytes = 32 * 32 * 3 * 4
    # 1024 samples held at once would need 2 * 1024 rows; the stream keeps a few chunks
    assert large < small * 1.25 + 64 * 1024
    assert large < 2 * 1024 * row_bytes / 8


def test_memory_of_the_default_noise_is_bounded_by_one_block():
    # the Latin hypercube keeps one block of at most LHS_BLOCK rows, whatever n_samples is
    full_block, eight_blocks = _peak_bytes(LHS_BLOCK, "lhs"), _peak_bytes(8 * LHS_BLOCK, "lhs")
    row_bytes = 32 * 32 * 3 * 4
    assert eight_blocks < full_block * 1.25 + 64 * 1024
    # holding the 2 x 1024 rows would take 2 * 8 * LHS_BLOCK rows
    assert eight_blocks < 2 * 8 * LHS_BLOCK * row_bytes / 4


# --- composition ------------------------------------------------------------------------------


def test_partial_vanilla_gradient_composes_identically():
    a = symmetric(3)
    x = np.random.default_rng(0).uniform(size=(2, 3))
    fn = callbacks.quadratic(a)
    np.testing.assert_array_equal(
        smoothgrad(partial(vanilla_gradient, fn), x, n_samples=8, seed=3),
        smoothgrad(fn, x, n_samples=8, seed=3),
    )


def test_smoothgrad_over_integrated_gradients():
    # IG of w.x from a zero baseline is x * w; averaged over noise it is x * w + w * mean(e)
    w = np.array([2.0, -1.0, 0.5])
    x = np.array([[1.0, 2.0, -1.0]])
    sigma, n = 0.2, 3000
    fn = partial(integrated_gradients, callbacks.linear(w), steps=4)
    result = smoothgrad(fn, x, n_samples=n, sigma=sigma, seed=0)
    assert np.all(np.abs(result - x * w) < Z * np.abs(w) * sigma / math.sqrt(n))


def test_callbacks_may_return_another_trailing_shape():
    # a Grad-CAM-like callback: one value per spatial position, no channel axis
    def fn(x, target):
        return x.sum(axis=-1)

    x = np.random.default_rng(0).uniform(size=(2, 4, 4, 3))
    result = smoothgrad(fn, x, n_samples=6, sigma=0.0, seed=0)
    assert result.shape == (2, 4, 4)
    np.testing.assert_allclose(result, x.sum(axis=-1), rtol=1e-6)


def test_progress_bar_runs(capsys):
    x = np.zeros((1, 2)) + [[0.0, 1.0]]
    result = smoothgrad(callbacks.linear(np.ones(2)), x, n_samples=4, batch_size=2, seed=0,
                        progress=True)
    np.testing.assert_array_equal(result, [[1.0, 1.0]])
    assert "SmoothGrad" in capsys.readouterr().err
