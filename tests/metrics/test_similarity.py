"""Row-wise similarities against scipy, numpy and scikit-image, and from their formulas."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from saliency_core.metrics.similarity import _average_ranks, pearson, spearman, ssim


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _ssim_from_formula(a: np.ndarray, b: np.ndarray, win: int = 7) -> float:
    """Wang et al.'s SSIM of two 2-D maps, window by window (slow, obviously right)."""
    r = max(a.max(), b.max()) - min(a.min(), b.min())
    c1, c2 = (0.01 * r) ** 2, (0.03 * r) ** 2
    values = []
    for i in range(a.shape[0] - win + 1):
        for j in range(a.shape[1] - win + 1):
            u, v = a[i : i + win, j : j + win].ravel(), b[i : i + win, j : j + win].ravel()
            cov = np.cov(u, v)  # sample (co)variances
            values.append(
                (2 * u.mean() * v.mean() + c1) * (2 * cov[0, 1] + c2)
                / ((u.mean() ** 2 + v.mean() ** 2 + c1) * (cov[0, 0] + cov[1, 1] + c2))
            )
    return float(np.mean(values))


def test_ranks_average_ties_like_scipy():
    values = _rng().integers(0, 4, size=(5, 40)).astype(float)
    np.testing.assert_array_equal(_average_ranks(values), stats.rankdata(values, axis=1))


def test_spearman_matches_scipy_with_ties_and_map_axes():
    rng = _rng(1)
    a = rng.integers(0, 5, size=(6, 3, 10)).astype(float)
    b = rng.integers(0, 5, size=(6, 3, 10)).astype(np.float32)
    expected = [stats.spearmanr(u.ravel(), v.ravel())[0] for u, v in zip(a, b, strict=True)]
    np.testing.assert_allclose(spearman(a, b), expected, rtol=0, atol=1e-12)


def test_spearman_of_monotone_transforms_is_exactly_one_or_minus_one():
    a = _rng(2).normal(size=(3, 50))
    np.testing.assert_array_equal(spearman(a, np.exp(a)), np.ones(3))
    np.testing.assert_array_equal(spearman(a, -(a**3)), -np.ones(3))


def test_pearson_matches_numpy_corrcoef():
    rng = _rng(3)
    a = rng.normal(size=(4, 2, 25)) + 100.0  # a large mean: the centred formula keeps digits
    b = 0.5 * a + rng.normal(size=a.shape)
    expected = [np.corrcoef(u.ravel(), v.ravel())[0, 1] for u, v in zip(a, b, strict=True)]
    np.testing.assert_allclose(pearson(a, b), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(pearson(a, 3 * a - 7), np.ones(4), rtol=0, atol=1e-14)


@pytest.mark.parametrize("similarity", [spearman, pearson])
def test_correlation_with_a_constant_map_is_nan_and_warns(similarity):
    a = np.array([[1.0, 2.0, 3.0], [2.0, 2.0, 2.0]])
    with pytest.warns(RuntimeWarning, match=r"row\(s\) \[1\] hold a constant map"):
        r = similarity(a, a[:, ::-1].copy())
    assert r[0] == pytest.approx(-1.0) and np.isnan(r[1])


def test_ssim_matches_its_formula_window_by_window():
    rng = _rng(4)
    a = rng.normal(size=(3, 12, 9))
    b = a + 0.7 * rng.normal(size=a.shape)
    expected = [_ssim_from_formula(u, v) for u, v in zip(a, b, strict=True)]
    np.testing.assert_allclose(ssim(a, b), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("shape", "dtype", "options"),
    [
        ((4, 16, 20), np.float64, {}),
        ((3, 11, 7), np.float32, {}),
        ((2, 40), np.float64, {}),  # 1-D rows: Quantus's flattened maps
        ((2, 9, 8, 7), np.float64, {}),  # a volume, 7x7x7 windows
        ((3, 12, 12), np.float64, {"win_size": 5, "data_range": 10.0}),
        ((2, 12, 12), np.float64, {"k1": 0.05, "k2": 0.1}),
    ],
)
def test_ssim_equals_scikit_image(shape, dtype, options):
    metrics = pytest.importorskip("skimage.metrics")
    rng = _rng(5)
    a = rng.normal(size=shape).astype(dtype)
    b = (0.6 * a + 0.8 * rng.normal(size=shape)).astype(dtype)
    win = options.get("win_size", 7)
    expected = []
    for u, v in zip(a, b, strict=True):
        data_range = options.get("data_range", max(u.max(), v.max()) - min(u.min(), v.min()))
        expected.append(metrics.structural_similarity(
            u, v, win_size=win, data_range=float(data_range),
            K1=options.get("k1", 0.01), K2=options.get("k2", 0.03),
        ))
    atol = 1e-5 if dtype == np.float32 else 1e-10  # scikit-image keeps float32 in float32
    np.testing.assert_allclose(ssim(a, b, **options), expected, rtol=0, atol=atol)


def test_ssim_of_identical_maps_is_one_even_when_constant():
    a = np.stack([np.arange(81.0).reshape(9, 9), np.full((9, 9), 4.0)])
    np.testing.assert_allclose(ssim(a, a), [1.0, 1.0], rtol=0, atol=1e-15)


def test_ssim_is_invariant_to_a_common_scale_with_the_joint_range():
    rng = _rng(6)
    a, b = rng.normal(size=(2, 2, 10, 10))
    np.testing.assert_allclose(ssim(a, b), ssim(1e3 * a, 1e3 * b), rtol=1e-10)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: spearman(np.ones((2, 3)), np.ones((2, 4))), ValueError,
         r"b: expected the shape of a, \(2, 3\), got shape \(2, 4\)"),
        (lambda: pearson(np.ones((2, 1)), np.ones((2, 1))), ValueError,
         "at least 2 values per row"),
        (lambda: spearman(np.array([[1.0, np.nan]]), np.ones((1, 2))), ValueError,
         r"a: expected finite values, got NaN or inf in input\(s\) \[0\]"),
        (lambda: spearman(np.ones(3), np.ones(3)), ValueError, "add a batch axis"),
        (lambda: pearson(np.array([["a", "b"]]), np.ones((1, 2))), TypeError,
         "a: expected a real numeric array"),
        (lambda: ssim(np.ones((1, 6, 9)), np.ones((1, 6, 9))), ValueError,
         r"at least win_size=7 long .* got maps of shape \(6, 9\)"),
        (lambda: ssim(np.ones((1, 9, 9)), np.ones((1, 9, 9)), win_size=4), ValueError,
         "win_size: expected an odd integer >= 3, got 4"),
        (lambda: ssim(np.ones((1, 9, 9)), np.ones((1, 9, 9)), win_size=7.0), TypeError,
         "win_size: expected an odd integer"),
        (lambda: ssim(np.ones((1, 9, 9)), np.ones((1, 9, 9)), data_range=0), ValueError,
         "data_range: expected a finite positive number, got 0"),
        (lambda: ssim(np.ones((1, 9, 9)), np.ones((1, 9, 9)), k1="0.01"), TypeError,
         "k1: expected a positive number"),
    ],
)
def test_bad_input_is_refused(call, error, match):
    with pytest.raises(error, match=match):
        call()
