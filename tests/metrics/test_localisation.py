"""Localisation metrics against hand-built maps, masks and boxes, and scipy's labelling."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from saliency_core.metrics.localisation import (
    bounding_box,
    box_iou,
    pointing_game,
    relevance_mass_accuracy,
    relevance_rank_accuracy,
    top_k_intersection,
)


def top_k_1(maps, masks):
    return top_k_intersection(maps, masks, k=1)


MASK_METRICS = [pointing_game, relevance_mass_accuracy, relevance_rank_accuracy, top_k_1]


def random_case(seed, shape=(4, 6, 7)):
    rng = np.random.default_rng(seed)
    maps = rng.uniform(0.01, 1.0, size=shape)  # positive and (almost surely) without ties
    masks = rng.uniform(size=shape) < 0.3
    masks.reshape(shape[0], -1)[:, 0] = True  # never empty
    return maps, masks


# ----------------------------------------------------------------------------- pointing game


def test_pointing_game_by_hand():
    maps = np.zeros((3, 4, 4))
    maps[:, 1, 2] = 5.0
    maps[2, 3, 3] = 5.0  # a second maximum
    masks = np.zeros((3, 4, 4), dtype=bool)
    masks[0, 1, 2] = True  # the maximum is inside
    masks[1, 0:2, 0:2] = True  # the maximum is outside
    masks[2, 3, 3] = True  # one of two maxima inside: a hit
    np.testing.assert_array_equal(pointing_game(maps, masks), [1.0, 0.0, 1.0])


def test_pointing_game_signed_maps_use_the_largest_value_not_the_largest_magnitude():
    maps = np.array([[-9.0, 1.0, 0.5]])
    np.testing.assert_array_equal(pointing_game(maps, np.array([[False, True, False]])), [1.0])
    np.testing.assert_array_equal(pointing_game(maps, np.array([[True, False, True]])), [0.0])


def test_pointing_game_constant_map_hits_any_non_empty_mask():
    maps = np.zeros((2, 3, 3))
    masks = np.zeros((2, 3, 3), dtype=bool)
    masks[0, 2, 2] = True
    np.testing.assert_array_equal(pointing_game(maps, masks), [1.0, 0.0])


# ---------------------------------------------------------------------- relevance mass accuracy


def test_relevance_mass_accuracy_by_hand():
    maps = np.array([[[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [0.0, 5.0]]])
    masks = np.array([[[True, False], [False, True]], [[False, False], [False, True]]])
    np.testing.assert_allclose(relevance_mass_accuracy(maps, masks), [0.5, 1.0], rtol=1e-15)


def test_relevance_mass_of_a_mask_and_its_complement_add_up_to_one():
    maps, masks = random_case(0)
    inside = relevance_mass_accuracy(maps, masks)
    outside = relevance_mass_accuracy(maps, ~masks)
    np.testing.assert_allclose(inside + outside, 1.0, rtol=1e-14)
    assert ((inside > 0) & (inside < 1)).all()


def test_relevance_mass_of_the_full_and_the_empty_mask():
    maps, _ = random_case(1)
    np.testing.assert_allclose(relevance_mass_accuracy(maps, np.ones(maps.shape, bool)), 1.0,
                               rtol=1e-15)
    np.testing.assert_array_equal(relevance_mass_accuracy(maps, np.zeros(maps.shape, bool)), 0.0)


def test_relevance_mass_of_maps_summing_to_zero_is_zero_never_nan():
    maps = np.array([[0.0, 0.0, 0.0], [1.0, -1.0, 0.0]])
    result = relevance_mass_accuracy(maps, np.array([[True, False, False], [True, False, True]]))
    np.testing.assert_array_equal(result, [0.0, 0.0])


def test_relevance_mass_uses_signed_values():
    maps = np.array([[2.0, -1.0, 1.0]])
    # inside: 2, total: 2 - 1 + 1 = 2
    np.testing.assert_allclose(relevance_mass_accuracy(maps, np.array([[True, False, False]])),
                               [1.0])


# ---------------------------------------------------------------------- relevance rank accuracy


def test_relevance_rank_accuracy_by_hand():
    maps = np.array([[0.9, 0.1, 0.8, 0.7, 0.0, 0.6]])
    # |mask| = 3, the top 3 are positions 0, 2, 3; two of them are in the mask
    masks = np.array([[True, True, False, True, False, False]])
    np.testing.assert_allclose(relevance_rank_accuracy(maps, masks), [2 / 3], rtol=1e-15)


def test_relevance_rank_accuracy_is_one_when_the_top_values_fill_the_mask():
    _, masks = random_case(2)
    rng = np.random.default_rng(2)
    maps = masks + 0.5 * rng.uniform(size=masks.shape)  # everything inside ranks above outside
    np.testing.assert_array_equal(relevance_rank_accuracy(maps, masks), 1.0)
    np.testing.assert_array_equal(relevance_rank_accuracy(-maps, masks), 0.0)


def test_relevance_rank_accuracy_of_the_full_and_the_empty_mask():
    maps, _ = random_case(3)
    np.testing.assert_array_equal(relevance_rank_accuracy(maps, np.ones(maps.shape, bool)), 1.0)
    np.testing.assert_array_equal(relevance_rank_accuracy(maps, np.zeros(maps.shape, bool)), 0.0)


def test_ties_are_ranked_by_position_first_first():
    maps = np.zeros((2, 6))
    masks = np.zeros((2, 6), dtype=bool)
    masks[0, :2] = True  # the first two positions: the top 2 of an all-tied map
    masks[1, -2:] = True  # the last two
    np.testing.assert_array_equal(relevance_rank_accuracy(maps, masks), [1.0, 0.0])
    np.testing.assert_array_equal(top_k_intersection(maps, masks, k=2), [1.0, 0.0])
    # ties at the cut: values 3, 1, 1, 1, 0, 0; k = 2 takes 3 and the first 1
    tied = np.array([[3.0, 1.0, 1.0, 1.0, 0.0, 0.0]] * 3)
    picks = np.eye(6, dtype=bool)[[1, 2, 3]]
    np.testing.assert_array_equal(top_k_intersection(tied, picks, k=2), [0.5, 0.0, 0.0])


# ---------------------------------------------------------------------------- top-k intersection


def test_top_k_intersection_by_hand():
    maps = np.array([[0.9, 0.1, 0.8, 0.7, 0.0, 0.6]])
    masks = np.array([[True, True, False, True, False, False]])
    expected = {1: 1.0, 2: 0.5, 3: 2 / 3, 4: 0.5, 5: 0.6, 6: 0.5}
    for k, value in expected.items():
        np.testing.assert_allclose(top_k_intersection(maps, masks, k=k), [value], rtol=1e-15)


def test_top_k_intersection_of_all_elements_is_the_masks_share():
    maps, masks = random_case(4)
    n_features = masks[0].size
    share = masks.reshape(4, -1).mean(axis=1)
    np.testing.assert_allclose(top_k_intersection(maps, masks, k=n_features), share, rtol=1e-15)
    np.testing.assert_allclose(
        top_k_intersection(maps, masks, k=n_features, concept_influence=True), 1.0, rtol=1e-14
    )


def test_top_k_intersection_relations_with_the_other_metrics():
    maps, masks = random_case(5)
    # k = 1 on maps with one maximum is the pointing game
    np.testing.assert_array_equal(top_k_intersection(maps, masks, k=1), pointing_game(maps, masks))
    # k = |mask| is the relevance rank accuracy
    same_size = np.zeros(maps.shape, dtype=bool)
    rng = np.random.default_rng(5)
    for mask in same_size.reshape(4, -1):
        mask[rng.permutation(mask.size)[:9]] = True
    np.testing.assert_array_equal(top_k_intersection(maps, same_size, k=9),
                                  relevance_rank_accuracy(maps, same_size))


def test_concept_influence_divides_by_the_masks_share():
    maps, masks = random_case(6)
    plain = top_k_intersection(maps, masks, k=7)
    share = masks.reshape(4, -1).mean(axis=1)
    np.testing.assert_allclose(top_k_intersection(maps, masks, k=7, concept_influence=True),
                               plain / share, rtol=1e-14)
    empty = np.zeros(maps.shape, dtype=bool)
    np.testing.assert_array_equal(
        top_k_intersection(maps, empty, k=7, concept_influence=True), 0.0
    )


# ------------------------------------------------------------------- shared properties and errors


@pytest.mark.parametrize("metric", MASK_METRICS)
def test_mask_metrics_are_invariant_to_positive_scale_and_joint_permutation(metric):
    maps, masks = random_case(7)
    reference = metric(maps, masks)
    assert reference.shape == (4,) and reference.dtype == np.float64
    for factor in (1e-5, 3.0, 1e6):
        np.testing.assert_allclose(metric(factor * maps, masks), reference, rtol=1e-12)
    order = np.random.default_rng(7).permutation(maps[0].size)
    permuted_maps = maps.reshape(4, -1)[:, order].reshape(4, 7, 6)
    permuted_masks = masks.reshape(4, -1)[:, order].reshape(4, 7, 6)
    np.testing.assert_allclose(metric(permuted_maps, permuted_masks), reference, rtol=1e-12)


@pytest.mark.parametrize("metric", MASK_METRICS)
def test_mask_metrics_give_one_value_per_map_whatever_the_batch(metric):
    maps, masks = random_case(8, shape=(5, 2, 3, 4))
    batch = metric(maps, masks)
    single = np.concatenate([metric(m[None], s[None]) for m, s in zip(maps, masks, strict=True)])
    np.testing.assert_array_equal(batch, single)


@pytest.mark.parametrize("metric", MASK_METRICS)
def test_empty_masks_score_zero(metric):
    maps, _ = random_case(9)
    np.testing.assert_array_equal(metric(maps, np.zeros(maps.shape, dtype=bool)), 0.0)


@pytest.mark.parametrize("metric", MASK_METRICS)
def test_bad_masks_are_refused(metric):
    maps, masks = random_case(10)
    with pytest.raises(ValueError, match=r"masks: expected the maps' shape \(4, 6, 7\), got"):
        metric(maps, masks[:, None])
    with pytest.raises(ValueError, match=r"masks: expected the maps' shape .* \(4, 6, 6\)"):
        metric(maps, masks[:, :, :6])
    with pytest.raises(ValueError, match=r"masks: expected 4 masks \(one per map\), got 3"):
        metric(maps, masks[:3])
    with pytest.raises(ValueError, match=r"masks: expected 3 masks \(one per map\), got 4"):
        metric(maps[:3], masks)
    with pytest.raises(TypeError, match="masks: expected a boolean array, got dtype int64"):
        metric(maps, masks.astype(np.int64))
    with pytest.raises(TypeError, match="masks: expected a boolean array, got dtype float64"):
        metric(maps, masks.astype(float))
    with pytest.raises(TypeError, match="masks: expected a boolean numpy array, got list"):
        metric(maps, masks.tolist())


@pytest.mark.parametrize("metric", MASK_METRICS)
def test_bad_maps_are_refused(metric):
    maps, masks = random_case(11)
    maps[2, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"maps: expected finite values, got NaN or inf in map"):
        metric(maps, masks)
    with pytest.raises(TypeError, match="maps: expected a real numeric array"):
        metric(masks, masks)
    with pytest.raises(ValueError, match="maps: expected a batch of maps"):
        metric(np.ones(3), np.ones(3, dtype=bool))


@pytest.mark.parametrize(("k", "error", "message"), [
    (0, ValueError, "k: expected a positive integer, got 0"),
    (-3, ValueError, "k: expected a positive integer, got -3"),
    (43, ValueError, r"k: expected at most the number of elements per map \(42\), got 43"),
    (2.0, TypeError, "k: expected a positive integer, got 2.0"),
    (True, TypeError, "k: expected a positive integer, got True"),
    (None, TypeError, "k: expected a positive integer, got None"),
])
def test_bad_k_is_refused(k, error, message):
    maps, masks = random_case(12)
    with pytest.raises(error, match=message):
        top_k_intersection(maps, masks, k=k)


def test_concept_influence_must_be_a_bool():
    maps, masks = random_case(12)
    with pytest.raises(TypeError, match="concept_influence: expected True or False, got 'yes'"):
        top_k_intersection(maps, masks, k=2, concept_influence="yes")


# ----------------------------------------------------------------------------------- boxes


def scipy_boxes(maps, threshold):
    """The reference: scipy's 8-connected labels, the largest region, lowest label on ties."""
    boxes = []
    for cam in maps:
        if cam.max() <= 0:
            boxes.append([0, 0, 0, 0])
            continue
        labels, _ = ndimage.label(cam >= threshold * cam.max(), structure=np.ones((3, 3)))
        best = np.argmax(np.bincount(labels.ravel())[1:]) + 1
        rows, cols = np.nonzero(labels == best)
        boxes.append([rows.min(), cols.min(), rows.max() + 1, cols.max() + 1])
    return np.array(boxes, dtype=np.int64)


def test_bounding_box_of_one_rectangle():
    cam = np.zeros((2, 8, 9))
    cam[0, 2:5, 3:8] = 1.0
    cam[1] = 0.3  # everything passes: the whole image
    boxes = bounding_box(cam)
    assert boxes.dtype == np.int64 and boxes.shape == (2, 4)
    np.testing.assert_array_equal(boxes, [[2, 3, 5, 8], [0, 0, 8, 9]])


def test_bounding_box_keeps_the_largest_region():
    cam = np.zeros((1, 10, 10))
    cam[0, 0:2, 0:2] = 1.0  # 4 pixels holding the maximum
    cam[0, 5:8, 4:9] = 0.5  # 15 pixels: the largest region
    np.testing.assert_array_equal(bounding_box(cam), [[5, 4, 8, 9]])


def test_bounding_box_regions_are_8_connected():
    cam = np.zeros((1, 6, 6))
    cam[0, [0, 1, 2, 3], [0, 1, 2, 3]] = 1.0  # a diagonal line: one region, 4 pixels
    cam[0, 5, 3:6] = 1.0  # 3 pixels in a row
    np.testing.assert_array_equal(bounding_box(cam), [[0, 0, 4, 4]])
    cam[0, 5, 0:6] = 1.0  # now 6 pixels in a row win
    np.testing.assert_array_equal(bounding_box(cam), [[5, 0, 6, 6]])


def test_bounding_box_ties_go_to_the_region_seen_first_in_row_major_order():
    cam = np.zeros((3, 7, 7))
    cam[0, 4:6, 0:2] = 1.0  # starts at row 4
    cam[0, 0:2, 5:7] = 1.0  # starts at row 0: first
    cam[1, 2:4, 4:6] = 1.0  # starts at row 2: first, though further right
    cam[1, 3:5, 0:2] = 1.0
    cam[2, 1:3, 4:6] = 1.0  # both start in row 1: the one further left is first
    cam[2, 1:3, 0:2] = 1.0
    np.testing.assert_array_equal(bounding_box(cam), [[0, 5, 2, 7], [2, 4, 4, 6], [1, 0, 3, 2]])


def test_bounding_box_threshold_is_relative_to_the_maximum():
    cam = np.zeros((1, 5, 5))
    cam[0, 2, 2] = 10.0
    cam[0, 2, 3:5] = 1.25  # 12.5% of the maximum (exact in binary)
    np.testing.assert_array_equal(bounding_box(cam, threshold=0.2), [[2, 2, 3, 3]])
    np.testing.assert_array_equal(bounding_box(cam, threshold=0.125), [[2, 2, 3, 5]])
    np.testing.assert_array_equal(bounding_box(cam, threshold=0.1), [[2, 2, 3, 5]])
    np.testing.assert_array_equal(bounding_box(cam, threshold=1.0), [[2, 2, 3, 3]])
    np.testing.assert_array_equal(bounding_box(64 * cam, threshold=0.125), [[2, 2, 3, 5]])


def test_bounding_box_of_maps_without_a_positive_value_is_empty():
    cam = np.zeros((3, 4, 4))
    cam[1] = -1.0
    cam[1, 0, 0] = -0.5
    cam[2, 1, 1] = 2.0
    np.testing.assert_array_equal(bounding_box(cam), [[0, 0, 0, 0], [0, 0, 0, 0], [1, 1, 2, 2]])


def test_bounding_box_ignores_negative_values_below_the_threshold():
    cam = -np.ones((1, 4, 6))
    cam[0, 1, 1:4] = 1.0
    np.testing.assert_array_equal(bounding_box(cam), [[1, 1, 2, 4]])


@pytest.mark.parametrize("seed", range(3))
def test_bounding_box_equals_scipy_labelling(seed):
    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((6, 40, 33))
    maps = np.concatenate([noise[:2], ndimage.uniform_filter(noise[2:], size=(1, 5, 5))])
    for threshold in (0.1, 0.2, 0.5, 0.9):
        np.testing.assert_array_equal(bounding_box(maps, threshold=threshold),
                                      scipy_boxes(maps, threshold))


def test_bounding_box_equals_scipy_on_224_by_224_maps():
    rng = np.random.default_rng(3)
    maps = ndimage.uniform_filter(rng.standard_normal((4, 224, 224)), size=(1, 15, 15))
    maps[3] = rng.uniform(size=(224, 224))  # 80% foreground, one large ragged region
    np.testing.assert_array_equal(bounding_box(maps), scipy_boxes(maps, 0.2))


def test_bounding_box_of_a_snake_shaped_region():
    # one region whose pixels are joined only through a long zig-zag path
    cam = np.zeros((1, 21, 20))
    cam[0, ::2, :] = 1.0
    cam[0, 1::4, -1] = 1.0
    cam[0, 3::4, 0] = 1.0
    cam[0, 20, 5] = 0.0  # the last row is cut in two; the snake still spans everything
    np.testing.assert_array_equal(bounding_box(cam), scipy_boxes(cam, 0.2))
    np.testing.assert_array_equal(bounding_box(cam), [[0, 0, 21, 20]])


@pytest.mark.parametrize(("maps", "threshold", "error", "message"), [
    (np.ones((4, 4)), 0.2, ValueError, r"expected 2-D maps, a batch of shape \(N, H, W\)"),
    (np.ones((1, 3, 4, 4)), 0.2, ValueError, r"got shape \(1, 3, 4, 4\); reduce the channel"),
    (np.ones((1, 4, 4)), 0.0, ValueError, r"threshold: expected a number in \(0, 1\], got 0.0"),
    (np.ones((1, 4, 4)), 1.5, ValueError, r"threshold: expected a number in \(0, 1\], got 1.5"),
    (np.ones((1, 4, 4)), -0.2, ValueError, r"got -0.2"),
    (np.ones((1, 4, 4)), float("nan"), ValueError, r"got nan"),
    (np.ones((1, 4, 4)), "0.2", TypeError, r"threshold: expected a number in \(0, 1\], got '0.2'"),
    (np.ones((1, 4, 4)), True, TypeError, r"got True"),
    (np.full((1, 4, 4), np.inf), 0.2, ValueError, "maps: expected finite values"),
])
def test_bad_bounding_box_input_is_refused(maps, threshold, error, message):
    with pytest.raises(error, match=message):
        bounding_box(maps, threshold=threshold)


def test_box_iou_by_hand():
    a = np.array([[0, 0, 2, 2], [0, 0, 4, 4], [0, 0, 2, 2], [1, 1, 3, 5], [0, 0, 2, 2]])
    b = np.array([[1, 1, 3, 3], [0, 0, 4, 4], [2, 0, 4, 2], [1, 1, 2, 3], [5, 5, 6, 6]])
    # 1/7 overlap; identical; touching edges only (half-open); nested 2 in 8; disjoint
    expected = [1 / 7, 1.0, 0.0, 2 / 8, 0.0]
    np.testing.assert_allclose(box_iou(a, b), expected, rtol=1e-15)
    np.testing.assert_allclose(box_iou(b, a), expected, rtol=1e-15)
    np.testing.assert_allclose(box_iou(a.astype(float) / 2, b / 2), expected, rtol=1e-15)


def test_box_iou_of_empty_boxes_is_zero():
    a = np.array([[0, 0, 0, 0], [1, 1, 1, 5], [0, 0, 0, 0]])
    b = np.array([[0, 0, 0, 0], [0, 0, 4, 4], [0, 0, 3, 3]])
    np.testing.assert_array_equal(box_iou(a, b), [0.0, 0.0, 0.0])


def test_box_iou_of_bounding_boxes_found_and_known():
    cam = np.zeros((2, 10, 10))
    cam[0, 2:6, 2:6] = 1.0
    cam[1, 0:5, 0:10] = 1.0
    truth = np.array([[2, 2, 6, 6], [0, 0, 10, 10]])
    np.testing.assert_allclose(box_iou(bounding_box(cam), truth), [1.0, 0.5], rtol=1e-15)


@pytest.mark.parametrize(("a", "b", "error", "message"), [
    (np.zeros((2, 3)), np.zeros((2, 3)), ValueError, r"boxes_a: expected boxes of shape \(N, 4\)"),
    (np.zeros(4), np.zeros(4), ValueError, r"got shape \(4,\)"),
    (np.zeros((2, 4)), np.zeros((3, 4)), ValueError,
     r"boxes_b: expected one box per row of boxes_a, shape \(2, 4\), got shape \(3, 4\)"),
    (np.array([[0, 0, 2, 2], [3, 0, 1, 2]]), np.zeros((2, 4)), ValueError,
     r"boxes_a: expected row0 <= row1 and col0 <= col1, got \[3.0, 0.0, 1.0, 2.0\] in row 1"),
    (np.zeros((1, 4)), np.array([[0.0, np.nan, 1.0, 1.0]]), ValueError, "boxes_b: expected finite"),
    ([[0, 0, 1, 1]], np.zeros((1, 4)), TypeError, "boxes_a: expected a numpy array of boxes"),
    (np.zeros((1, 4), dtype=bool), np.zeros((1, 4)), TypeError, "integer or float boxes"),
])
def test_bad_boxes_are_refused(a, b, error, message):
    with pytest.raises(error, match=message):
        box_iou(a, b)
