"""The complexity and localisation metrics give Quantus 0.6's numbers on the same maps.

Quantus's metric classes are called with ``model=None`` and precomputed ``a_batch`` (and
``s_batch``), channel-first, so they never touch a model: ``Metric.__call__`` only wraps a
model that is given, and explains nothing when ``a_batch`` is there. Its default
preprocessing divides the whole batch by its largest magnitude (``normalise_by_max``), then
takes ``abs`` where the metric asks for it. Maps are random and continuous, so without ties.
Importing Quantus imports every framework it supports, which takes a while.
"""

from __future__ import annotations

import numpy as np
import pytest

from saliency_core.metrics.complexity import complexity, sparseness
from saliency_core.metrics.localisation import (
    pointing_game,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
    top_k_intersection,
)
from tests.conftest import require

quantus = require("quantus")

pytestmark = pytest.mark.slow


def quantus_scores(metric, maps, masks=None):
    """Quantus's scores for channel-first ``maps`` (N, C, ...), with inputs shaped alike."""
    rng = np.random.default_rng(0)
    scores = metric(
        model=None,
        x_batch=rng.uniform(size=maps.shape),
        y_batch=np.zeros(maps.shape[0], dtype=np.int64),
        a_batch=maps.copy(),
        s_batch=None if masks is None else masks.copy(),
        channel_first=True,
    )
    return np.asarray(scores, dtype=np.float64)


def random_maps(seed, shape):
    return np.random.default_rng(seed).standard_normal(shape)


def random_masks(seed, shape, fraction=0.3):
    masks = np.random.default_rng(seed).uniform(size=shape) < fraction
    masks.reshape(shape[0], -1)[:, 0] = True  # Quantus gives NaN for an empty mask
    return masks


COMPLEXITY_SHAPES = [(6, 1, 12, 10), (4, 3, 9, 11), (5, 2, 30)]
MASK_SHAPES = [(6, 1, 12, 10), (3, 1, 28, 28)]


@pytest.mark.parametrize("shape", COMPLEXITY_SHAPES)
def test_sparseness_equals_quantus_given_its_epsilon(shape):
    maps = random_maps(1, shape)
    theirs = quantus_scores(quantus.Sparseness(disable_warnings=True), maps)
    normalised = np.abs(maps) / np.abs(maps).max()
    np.testing.assert_allclose(sparseness(normalised + 1e-7), theirs, rtol=1e-12)
    theirs_raw = quantus_scores(quantus.Sparseness(normalise=False, disable_warnings=True), maps)
    np.testing.assert_allclose(sparseness(np.abs(maps) + 1e-7), theirs_raw, rtol=1e-12)


@pytest.mark.parametrize("shape", COMPLEXITY_SHAPES)
def test_sparseness_differs_from_quantus_only_by_its_epsilon_factor(shape):
    maps = random_maps(2, shape)
    theirs = quantus_scores(quantus.Sparseness(disable_warnings=True), maps)
    # adding e to all F magnitudes (sum S) scales the Gini index by S / (S + F e)
    normalised = np.abs(maps).reshape(shape[0], -1) / np.abs(maps).max()
    total, n_features = normalised.sum(axis=1), normalised.shape[1]
    factor = total / (total + n_features * 1e-7)
    np.testing.assert_allclose(sparseness(maps) * factor, theirs, rtol=1e-12)


@pytest.mark.parametrize("shape", COMPLEXITY_SHAPES)
def test_complexity_equals_quantus(shape):
    maps = random_maps(3, shape)
    theirs = quantus_scores(quantus.Complexity(disable_warnings=True), maps)
    n_features = int(np.prod(shape[1:]))
    # Quantus takes -p log(p + 1e-12) = -p log(p) - 1e-12 + O(1e-12 ** 2 / p) per element
    np.testing.assert_allclose(complexity(maps) - n_features * 1e-12, theirs, rtol=0, atol=1e-13)
    assert not np.allclose(complexity(maps), theirs, rtol=0, atol=1e-13)


MASK_CASES = [
    (pointing_game, "PointingGame"),
    (relevance_mass_accuracy, "RelevanceMassAccuracy"),
    (relevance_rank_accuracy, "RelevanceRankAccuracy"),
]


@pytest.mark.parametrize("shape", MASK_SHAPES)
@pytest.mark.parametrize(("ours", "theirs"), MASK_CASES,
                         ids=["pointing_game", "relevance_mass", "relevance_rank"])
def test_mask_metrics_equal_quantus(ours, theirs, shape):
    for seed, fraction in ((4, 0.1), (5, 0.3), (6, 0.7)):
        maps, masks = random_maps(seed, shape), random_masks(seed + 10, shape, fraction)
        expected = quantus_scores(getattr(quantus, theirs)(disable_warnings=True), maps, masks)
        np.testing.assert_allclose(ours(maps, masks), expected, rtol=1e-12, atol=1e-15)
        # the same maps without the channel axis Quantus needs
        np.testing.assert_allclose(ours(maps[:, 0], masks[:, 0]), expected, rtol=1e-12,
                                   atol=1e-15)


@pytest.mark.parametrize(("ours", "theirs"), MASK_CASES,
                         ids=["pointing_game", "relevance_mass", "relevance_rank"])
def test_mask_metrics_on_magnitudes_equal_quantus_with_abs(ours, theirs):
    shape = MASK_SHAPES[0]
    maps, masks = random_maps(7, shape), random_masks(17, shape)
    metric = getattr(quantus, theirs)(abs=True, disable_warnings=True)
    np.testing.assert_allclose(ours(np.abs(maps), masks), quantus_scores(metric, maps, masks),
                               rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("shape", MASK_SHAPES)
@pytest.mark.parametrize("k", [1, 5, 40, 119])
@pytest.mark.parametrize("concept_influence", [False, True])
def test_top_k_intersection_equals_quantus(shape, k, concept_influence):
    maps, masks = random_maps(8, shape), random_masks(18, shape)
    metric = quantus.TopKIntersection(k=k, concept_influence=concept_influence,
                                      disable_warnings=True)
    np.testing.assert_allclose(
        top_k_intersection(maps, masks, k=k, concept_influence=concept_influence),
        quantus_scores(metric, maps, masks), rtol=1e-12, atol=1e-15,
    )
