"""SmoothGrad's noise schemes: the promises of every scheme, and each scheme's own structure.

Monte Carlo bounds are 5 standard errors of the estimator under each scheme, derived in the
test; the seeds are fixed, so a pass is deterministic.
"""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pytest

from saliency_core import AGGREGATES, DEFAULT_NOISE, NOISE_SCHEMES, smoothgrad
from saliency_core.noise import LHS_BLOCK, NoiseStream, block_size, block_sizes, normal_quantile
from tests.core import callbacks
from tests.core.test_registry import REGISTRY

Z = 5.0  # standard errors allowed


class Recording:
    """An identity callback (the map of a row is the row) that keeps every row it gets."""

    def __init__(self):
        self.rows: list[np.ndarray] = []

    def __call__(self, x, target):
        self.rows.append(x.copy())
        return x.copy()

    def all_rows(self) -> np.ndarray:
        return np.concatenate(self.rows)


def draws(noise: str, *, n_inputs: int, n_samples: int, shape=(7,), batch_size=64, seed=0,
          dtype=np.float64) -> np.ndarray:
    """The noise ``z`` of a run, ``(n_inputs, n_samples, *shape)``: the rows at x = 0, sigma 1."""
    recording = Recording()
    x = np.zeros((n_inputs, *shape), dtype=dtype)
    smoothgrad(recording, x, n_samples=n_samples, sigma=1.0, noise=noise, batch_size=batch_size,
               seed=seed)
    return recording.all_rows().reshape(n_inputs, n_samples, *shape)


def normal_cdf(z: np.ndarray) -> np.ndarray:
    return 0.5 * np.vectorize(math.erfc)(-np.asarray(z, dtype=np.float64) / math.sqrt(2))


def symmetric(n: int, seed: int = 0) -> np.ndarray:
    a = np.random.default_rng(seed).standard_normal((n, n))
    return (a + a.T) / 2


# --- the choice --------------------------------------------------------------------------


def test_schemes_are_exported_and_every_one_is_in_the_registry():
    assert NOISE_SCHEMES[0] == "iid"
    assert {"iid", "antithetic", "lhs"} <= set(NOISE_SCHEMES)
    covered = {method.kwargs.get("noise", DEFAULT_NOISE) for method in REGISTRY
               if method.function is smoothgrad}
    assert covered == set(NOISE_SCHEMES)


@pytest.mark.parametrize(("noise", "error", "message"), [
    ("sobol", ValueError,
     r"noise: expected one of 'iid', 'antithetic', 'lhs', got 'sobol'"),
    ("IID", ValueError, r"noise: expected one of 'iid', .*got 'IID'"),
    (None, TypeError, r"noise: expected one of 'iid', .*got NoneType None"),
])
def test_an_unknown_scheme_is_refused_before_any_call(noise, error, message):
    counting = callbacks.Counting(callbacks.linear(np.ones(3)))
    with pytest.raises(error, match=message):
        smoothgrad(counting, np.zeros((1, 3)), noise=noise, seed=0)
    assert counting.calls == []


# --- iid is the noise of before, bit for bit ------------------------------------------------


def test_the_default_is_the_latin_hypercube():
    x = np.random.default_rng(1).uniform(size=(2, 5))
    assert DEFAULT_NOISE == "lhs"
    np.testing.assert_array_equal(
        smoothgrad(Recording(), x, n_samples=6, seed=3),
        smoothgrad(Recording(), x, n_samples=6, seed=3, noise="lhs"))
    assert not np.array_equal(smoothgrad(Recording(), x, n_samples=6, seed=3),
                              smoothgrad(Recording(), x, n_samples=6, seed=3, noise="iid"))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_iid_rows_are_numpys_standard_normal_in_row_order(dtype):
    x = np.random.default_rng(1).uniform(size=(3, 4, 2)).astype(dtype)
    sigma = np.array([0.5, 0.25, 2.0])
    recording = Recording()
    result = smoothgrad(recording, x, n_samples=7, sigma=sigma, batch_size=5, seed=11,
                        noise="iid")
    z = np.random.default_rng(11).standard_normal((3 * 7, 4, 2), dtype=dtype)
    owner = np.repeat(np.arange(3), 7)
    expected = z * sigma.astype(dtype)[owner, None, None] + x[owner]
    np.testing.assert_array_equal(recording.all_rows(), expected)
    mean = expected.reshape(3, 7, 4, 2).astype(np.float64).mean(axis=1)
    np.testing.assert_allclose(result, mean, rtol=1e-6 if dtype == np.float32 else 1e-14)


# --- every scheme: seeds, batch sizes, marginals, exact cases ---------------------------------


@pytest.mark.parametrize("noise", NOISE_SCHEMES)
def test_same_seed_same_map_other_seed_other_map(noise):
    fn = lambda b, t: np.sin(3 * b)  # noqa: E731 - nonlinear: antithetic pairs leave an error
    x = np.random.default_rng(0).uniform(size=(3, 4))
    first = smoothgrad(fn, x, n_samples=10, noise=noise, seed=42)
    np.testing.assert_array_equal(first, smoothgrad(fn, x, n_samples=10, noise=noise, seed=42))
    np.testing.assert_array_equal(
        first, smoothgrad(fn, x, n_samples=10, noise=noise, seed=np.random.default_rng(42)))
    assert not np.allclose(first, smoothgrad(fn, x, n_samples=10, noise=noise, seed=43))


@pytest.mark.parametrize("noise", NOISE_SCHEMES)
@pytest.mark.parametrize("n_samples", [7, 2 * LHS_BLOCK + 3])
def test_noise_and_maps_do_not_depend_on_batch_size(noise, n_samples):
    # 2 * LHS_BLOCK + 3 samples: three blocks, chunks that straddle blocks and inputs
    reference = draws(noise, n_inputs=2, n_samples=n_samples, shape=(3,), batch_size=64)
    for batch_size in (1, 3, n_samples + 5):
        np.testing.assert_array_equal(
            draws(noise, n_inputs=2, n_samples=n_samples, shape=(3,), batch_size=batch_size),
            reference)
    fn = callbacks.quadratic(symmetric(3))
    x = np.random.default_rng(0).uniform(size=(2, 3))
    for aggregate in AGGREGATES:
        maps = [smoothgrad(fn, x, n_samples=n_samples, aggregate=aggregate, noise=noise,
                           batch_size=b, seed=5) for b in (1, 3, 64)]
        for other in maps[1:]:
            np.testing.assert_allclose(other, maps[0], rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("noise", NOISE_SCHEMES)
def test_inputs_get_different_noise(noise):
    z = draws(noise, n_inputs=2, n_samples=6)
    assert not np.allclose(z[0], z[1])


@pytest.mark.parametrize("noise", NOISE_SCHEMES)
def test_the_marginal_of_every_element_is_standard_normal(noise):
    # Kolmogorov-Smirnov distance of 2 x 300 x 40 draws from N(0, 1). Antithetic draws come in
    # dependent pairs, so the bound counts half the draws as independent: sqrt(-ln(a/2)/2) =
    # 2.0 / sqrt(m) is the one-sample critical value at a = 6e-4 for m independent draws.
    z = draws(noise, n_inputs=2, n_samples=300, shape=(40,), seed=3).ravel()
    m = z.size // 2
    ordered = np.sort(z)
    cdf = normal_cdf(ordered)
    k = np.arange(1, z.size + 1)
    distance = max(np.max(k / z.size - cdf), np.max(cdf - (k - 1) / z.size))
    assert distance < 2.0 / math.sqrt(m)
    # and the scale is the standard one (a 10% wrong sigma gives a distance of about 0.04)
    assert abs(z.std() - 1.0) < Z * math.sqrt(0.5 / m)


@pytest.mark.parametrize("n_samples", [1, 2, 5, 50, LHS_BLOCK, 2 * LHS_BLOCK + 3])
def test_each_lhs_block_holds_one_draw_per_stratum_per_element(n_samples):
    z = draws("lhs", n_inputs=2, n_samples=n_samples, shape=(3, 5), seed=1)
    start = 0
    for size in block_sizes("lhs", n_samples):
        strata = np.floor(normal_cdf(z[:, start:start + size]) * size)
        expected = np.broadcast_to(np.arange(size).reshape(1, size, 1, 1), strata.shape)
        np.testing.assert_array_equal(np.sort(strata, axis=1), expected)
        start += size
    assert start == n_samples
    if n_samples == 50:  # one block: the whole design is stratified, in a random order
        assert not np.array_equal(np.argsort(z[0, :, 0, 0]), np.argsort(z[0, :, 0, 1]))


def test_block_sizes_do_not_exceed_the_block_and_add_up():
    for n in (1, 2, 3, 127, 128, 129, 256, 257, 1000):
        for noise in NOISE_SCHEMES:
            sizes = block_sizes(noise, n)
            assert sum(sizes) == n and min(sizes) >= 1
            assert max(sizes) <= LHS_BLOCK
            assert max(sizes) - min(sizes) <= 1
    assert block_sizes("lhs", LHS_BLOCK) == [LHS_BLOCK]
    assert block_sizes("lhs", 2 * LHS_BLOCK + 3) == [87, 86, 86]
    assert block_sizes("antithetic", 7) == [2, 2, 2, 1]


@pytest.mark.parametrize("n_samples", [2, 9, 2 * LHS_BLOCK + 3])
def test_antithetic_pairs_sum_to_zero(n_samples):
    z = draws("antithetic", n_inputs=2, n_samples=n_samples, batch_size=3)
    pairs = n_samples // 2
    np.testing.assert_array_equal(z[:, 0:2 * pairs:2], -z[:, 1:2 * pairs:2])
    assert np.all(z != 0)


def test_lhs_noise_of_float32_inputs_is_the_float64_noise_rounded():
    # made in float64 whatever x's dtype, so float32 and float64 inputs see the same draws
    z32 = draws("lhs", n_inputs=2, n_samples=20, dtype=np.float32, seed=4)
    z64 = draws("lhs", n_inputs=2, n_samples=20, dtype=np.float64, seed=4)
    assert z32.dtype == np.float32
    np.testing.assert_array_equal(z32, z64.astype(np.float32))


def test_lhs_is_not_antithetic():
    z = draws("lhs", n_inputs=1, n_samples=10)
    assert np.abs(z[:, 0::2] + z[:, 1::2]).max() > 0.1


def test_normal_quantile_inverts_the_normal_cdf():
    p = np.concatenate([np.linspace(0.0005, 0.9995, 2001), [1e-300, 1e-20, 1e-8, 1 - 1e-12]])
    z = normal_quantile(p)
    np.testing.assert_allclose(normal_cdf(z), p, rtol=1e-13)
    np.testing.assert_allclose(normal_quantile(1 - p[:2001]), -z[:2001], atol=1e-12)


# --- closed forms ---------------------------------------------------------------------------


@pytest.mark.parametrize("noise", NOISE_SCHEMES)
@pytest.mark.parametrize("batch_size", [1, 64])
def test_linear_is_exact(noise, batch_size):
    w = np.array([1.0, -2.0, 0.5, 3.0])
    x = np.random.default_rng(0).uniform(size=(3, 4))
    fn = callbacks.linear(w)
    for aggregate, expected in (("mean", w), ("abs", np.abs(w)), ("square", w**2)):
        result = smoothgrad(fn, x, n_samples=9, aggregate=aggregate, noise=noise,
                            batch_size=batch_size, seed=0)
        np.testing.assert_allclose(result, np.broadcast_to(expected, x.shape), rtol=1e-14)
    assert smoothgrad(fn, x, n_samples=9, aggregate="variance", noise=noise,
                      seed=0).max() < 1e-24


@pytest.fixture
def quadratic_case():
    a = symmetric(5)
    x = np.random.default_rng(3).uniform(-1, 1, size=(2, 5))
    sigma = 0.3
    v = 4 * sigma**2 * (a**2).sum(axis=1)  # variance of each gradient component under noise
    return a, x, sigma, v


N_QUADRATIC = 4000  # 32 blocks of 125 for "lhs"


def owen_factor(noise: str) -> float:
    """Owen (1997): a Latin hypercube of m points has at most m / (m - 1) times the variance
    of m iid points, whatever the function (here: per block, and so for their mean)."""
    if noise != "lhs":
        return 1.0
    m = min(block_sizes(noise, N_QUADRATIC))
    return m / (m - 1)


@pytest.mark.parametrize("noise", NOISE_SCHEMES)
def test_quadratic_mean_is_2ax(quadratic_case, noise):
    a, x, sigma, v = quadratic_case
    result = smoothgrad(callbacks.quadratic(a), x, n_samples=N_QUADRATIC, sigma=sigma,
                        noise=noise, seed=0)
    error = np.abs(result - 2 * x @ a)
    # iid: the mean of n draws of N(2Ax, v) has standard error sqrt(v / n)
    iid_bound = Z * np.sqrt(v / N_QUADRATIC)
    assert np.all(error < iid_bound * math.sqrt(owen_factor(noise)))
    if noise == "antithetic":
        # the gradient 2A(x + sigma z) is linear in z: each pair averages to 2Ax exactly
        assert error.max() < 1e-12
    elif noise == "lhs":
        # linear in z, so additive: stratification leaves a small part of the iid error
        assert error.max() < iid_bound.min() / 5


@pytest.mark.parametrize("noise", NOISE_SCHEMES)
def test_quadratic_square(quadratic_case, noise):
    a, x, sigma, v = quadratic_case
    n = N_QUADRATIC
    result = smoothgrad(callbacks.quadratic(a), x, n_samples=n, sigma=sigma, aggregate="square",
                        noise=noise, seed=1)
    mu = 2 * x @ a
    expected = mu**2 + v
    if noise == "antithetic":
        # g = mu + e, e ~ N(0, v): a pair gives ((mu + e)^2 + (mu - e)^2) / 2 = mu^2 + e^2, so
        # n / 2 independent e^2 of variance 2 v^2: Var = 4 v^2 / n (more than iid's where
        # v > 2 mu^2: pairs do not help an even function)
        variance = 4 * v**2 / n
    else:
        variance = (2 * v**2 + 4 * mu**2 * v) / n  # Var[g^2] = 2 v^2 + 4 mu^2 v
    bound = Z * np.sqrt(variance * owen_factor(noise))
    assert np.all(np.abs(result - expected) < bound)
    # and not the squared mean (the difference is v, far beyond the bound)
    assert np.all(np.abs(result - mu**2) > bound)


@pytest.mark.parametrize("noise", NOISE_SCHEMES)
def test_relu_gives_the_normal_cdf(noise):
    # 1-D ReLU: SmoothGrad is Phi(x / sigma); the map is a Bernoulli mean, standard error
    # at most sqrt(p (1 - p) / n) for iid and (antithetic pairs are negatively correlated) less
    x = np.array([[-0.5], [-0.1], [0.0], [0.2], [0.6]])
    sigma, n = 0.25, 2000
    result = smoothgrad(callbacks.relu_1d, x, n_samples=n, sigma=sigma, noise=noise, seed=0)
    p = normal_cdf(x / sigma)
    assert np.all(np.abs(result - p) <= Z * np.sqrt(p * (1 - p) / n) + 1e-12)
    if noise == "lhs":
        # one dimension: in a block of m strata, all but the one holding -x / sigma count
        # exactly, so the error is below 1 / m per block
        assert np.abs(result - p).max() <= 1 / min(block_sizes(noise, n)) + 1e-12


# --- memory --------------------------------------------------------------------------------


def _peak_bytes(noise: str, n_samples: int) -> int:
    x = np.random.default_rng(0).uniform(size=(2, 32, 32, 3)).astype(np.float32)
    fn = lambda b, t: b * 2  # noqa: E731
    tracemalloc.start()
    try:
        smoothgrad(fn, x, n_samples=n_samples, batch_size=16, aggregate="variance", noise=noise,
                   seed=0)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("noise", NOISE_SCHEMES)
def test_memory_does_not_grow_with_n_samples(noise):
    # from one full block to eight: 8 * LHS_BLOCK samples held at once would need 2 * 1024
    # rows of 12 KiB (24 MiB); the stream keeps a chunk and one block
    small, large = _peak_bytes(noise, LHS_BLOCK), _peak_bytes(noise, 8 * LHS_BLOCK)
    assert large < small * 1.25 + 64 * 1024
    all_rows = 2 * 8 * LHS_BLOCK * 32 * 32 * 3 * 4
    assert large < all_rows / 3


@pytest.mark.parametrize("noise", NOISE_SCHEMES)
def test_a_huge_n_samples_needs_no_table_of_blocks(noise):
    # block sizes are arithmetic, so 2**62 samples cost no more to set up than 10
    stream = NoiseStream(noise, np.random.default_rng(0), 2**62, (3,), np.float64)
    out = np.empty((5, 3))
    stream.fill(out, 0)
    assert np.isfinite(out).all() and np.unique(out).size >= 8
    assert block_size(noise, 2**62, 0) <= LHS_BLOCK
