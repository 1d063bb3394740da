"""Sparseness (Gini index) and complexity (entropy) against closed forms and invariances."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import entropy

from saliency_core.metrics._maps import as_maps, as_masks
from saliency_core.metrics.complexity import complexity, sparseness

SHAPES = [(3, 5), (2, 4, 4), (2, 3, 4, 5), (1, 1)]


def one_hot(shape, rng):
    maps = np.zeros(shape)
    n = shape[0]
    flat = maps.reshape(n, -1)
    hot = rng.integers(flat.shape[1], size=n)
    flat[np.arange(n), hot] = rng.uniform(0.5, 3.0, size=n) * rng.choice([-1, 1], size=n)
    return maps


@pytest.mark.parametrize("shape", SHAPES)
def test_one_hot_maps(shape):
    maps = one_hot(shape, np.random.default_rng(0))
    n_features = int(np.prod(shape[1:]))
    np.testing.assert_allclose(sparseness(maps), 1 - 1 / n_features, rtol=0, atol=1e-15)
    np.testing.assert_array_equal(complexity(maps), 0.0)


@pytest.mark.parametrize("shape", SHAPES)
def test_uniform_maps(shape):
    values = np.array([2.5, -0.1, 7.0])[: shape[0]]
    maps = np.broadcast_to(values.reshape(-1, *[1] * (len(shape) - 1)), shape).copy()
    n_features = int(np.prod(shape[1:]))
    np.testing.assert_allclose(sparseness(maps), 0.0, atol=1e-15)
    np.testing.assert_allclose(complexity(maps), np.log(n_features), rtol=1e-14)


def test_all_zero_maps_are_scored_as_uniform_never_nan():
    maps = np.zeros((2, 3, 4))
    np.testing.assert_array_equal(sparseness(maps), [0.0, 0.0])
    np.testing.assert_allclose(complexity(maps), [np.log(12)] * 2, rtol=1e-15)


@pytest.mark.parametrize("m", [1, 2, 5, 11, 12])
def test_m_equal_elements_of_f(m):
    # m elements of equal magnitude, the rest zero: Gini 1 - m/F, entropy log m
    rng = np.random.default_rng(m)
    maps = np.zeros((1, 12))
    maps[0, rng.permutation(12)[:m]] = 4.0 * rng.choice([-1, 1], size=m)
    np.testing.assert_allclose(sparseness(maps), [1 - m / 12], atol=1e-15)
    np.testing.assert_allclose(complexity(maps), [np.log(m)], atol=1e-15)


def test_sparseness_equals_the_mean_difference_form_of_the_gini_index():
    rng = np.random.default_rng(1)
    maps = rng.standard_normal((4, 6, 7)) ** 3
    a = np.abs(maps.reshape(4, -1))
    pairwise = np.abs(a[:, :, None] - a[:, None, :]).sum(axis=(1, 2))
    expected = pairwise / (2 * a.shape[1] * a.sum(axis=1))
    np.testing.assert_allclose(sparseness(maps), expected, rtol=1e-12)


def test_complexity_equals_scipy_entropy_of_the_magnitudes():
    rng = np.random.default_rng(2)
    maps = rng.standard_normal((5, 3, 8, 8))
    maps[0, 0] = 0.0  # zeros inside a map contribute 0 log 0 = 0
    expected = [entropy(np.abs(m).ravel()) for m in maps]
    np.testing.assert_allclose(complexity(maps), expected, rtol=1e-12)


@pytest.mark.parametrize("metric", [sparseness, complexity])
def test_invariant_to_scale_sign_and_permutation(metric):
    rng = np.random.default_rng(3)
    maps = rng.standard_normal((4, 5, 6))
    reference = metric(maps)
    for factor in (1e-6, 3.0, -2.0, 1e8):
        np.testing.assert_allclose(metric(factor * maps), reference, rtol=1e-12)
    flat = maps.reshape(4, -1)
    shuffled = np.stack([row[rng.permutation(flat.shape[1])] for row in flat])
    np.testing.assert_allclose(metric(shuffled.reshape(4, 2, 15)), reference, rtol=1e-12)
    np.testing.assert_allclose(metric(np.abs(maps)), reference, rtol=1e-15)


@pytest.mark.parametrize("metric", [sparseness, complexity])
def test_one_value_per_map_independent_of_the_batch(metric):
    rng = np.random.default_rng(4)
    maps = rng.uniform(size=(6, 4, 4)).astype(np.float32)
    batch = metric(maps)
    assert batch.shape == (6,) and batch.dtype == np.float64
    np.testing.assert_array_equal(batch, np.concatenate([metric(m[None]) for m in maps]))


@pytest.mark.parametrize("metric", [sparseness, complexity])
def test_integer_maps_are_read_as_numbers(metric):
    maps = np.array([[0, 0, 5, 0], [1, 2, 3, 4]])
    np.testing.assert_allclose(metric(maps), metric(maps.astype(float)), rtol=1e-15)


def test_a_more_concentrated_map_is_sparser_and_simpler():
    spread = np.array([[1.0, 1.0, 1.0, 1.0]])
    peaked = np.array([[4.0, 1.0, 1.0, 1.0]])
    assert sparseness(peaked)[0] > sparseness(spread)[0]
    assert complexity(peaked)[0] < complexity(spread)[0]


BAD_MAPS = [
    ([[1.0, 2.0]], TypeError, "maps: expected a numpy array, got list"),
    (np.ones((2, 3), dtype=bool), TypeError, "expected a real numeric array.*bool"),
    (np.ones((2, 3), dtype=complex), TypeError, "expected a real numeric array.*complex"),
    (np.array([[1, "a"]], dtype=object), TypeError, "expected a real numeric array.*object"),
    (np.ones(4), ValueError, r"at least 2 dimensions, got shape \(4,\)"),
    (np.float64(1.0), TypeError, "expected a numpy array"),
    (np.ones(()), ValueError, r"at least 2 dimensions, got shape \(\)"),
    (np.ones((0, 3)), ValueError, r"at least one map and one element per map, got shape \(0, 3\)"),
    (np.ones((2, 0, 3)), ValueError, r"got shape \(2, 0, 3\)"),
    (np.array([[1.0, np.nan], [1.0, 2.0]]), ValueError, r"finite values.*map\(s\) \[0\]"),
    (np.array([[1.0, 2.0], [np.inf, 2.0]]), ValueError, r"finite values.*map\(s\) \[1\]"),
]


@pytest.mark.parametrize("metric", [sparseness, complexity])
@pytest.mark.parametrize(("maps", "error", "message"), BAD_MAPS)
def test_bad_maps_are_refused(metric, maps, error, message):
    with pytest.raises(error, match=message):
        metric(maps)


def test_as_maps_keeps_float64_without_copy_and_names_the_argument():
    maps = np.ones((2, 3))
    assert as_maps(maps) is maps
    assert as_maps(np.ones((2, 3), dtype=np.float16)).dtype == np.float64
    with pytest.raises(ValueError, match="saliency: expected finite"):
        as_maps(np.full((1, 2), np.nan), name="saliency")


def test_as_masks_requires_booleans_of_the_maps_shape():
    masks = np.zeros((2, 3), dtype=bool)
    assert as_masks(masks, (2, 3)) is masks
    with pytest.raises(TypeError, match=r"masks: expected a boolean array, got dtype int64"):
        as_masks(np.zeros((2, 3), dtype=np.int64), (2, 3))
    with pytest.raises(TypeError, match="masks: expected a boolean numpy array, got list"):
        as_masks([[True]], (1, 1))
    with pytest.raises(ValueError, match=r"expected 2 masks \(one per map\), got 3"):
        as_masks(np.zeros((3, 3), dtype=bool), (2, 3))
    with pytest.raises(ValueError, match=r"the maps' shape \(2, 3\), got shape \(2, 1, 3\)"):
        as_masks(np.zeros((2, 1, 3), dtype=bool), (2, 3))
    with pytest.raises(ValueError, match="no batch axis"):
        as_masks(np.array(True), (2, 3))
