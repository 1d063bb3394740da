"""Map post-processing: hand-computed expected arrays for every function of visualize.maps."""

from __future__ import annotations

import numpy as np
import pytest

from visualize import (
    difference_map,
    discriminativity,
    diverging,
    grayscale,
    select_sign,
    times_input,
)


def pair_grayscale(image_3d: np.ndarray) -> np.ndarray:
    """PAIR-code/saliency's VisualizeImageGrayscale, the three lines, as the reference."""
    image_2d = np.sum(np.abs(image_3d), axis=2)
    vmax = np.percentile(image_2d, 99)
    vmin = np.min(image_2d)
    return np.clip((image_2d - vmin) / (vmax - vmin), 0, 1)


# ---------------------------------------------------------------- select_sign


@pytest.mark.parametrize(
    ("sign", "expected"),
    [
        ("absolute", [[2.0, 0.0], [0.5, 3.0]]),
        ("positive", [[0.0, 0.0], [0.5, 3.0]]),
        ("negative", [[2.0, 0.0], [0.0, 0.0]]),
        ("all", [[-2.0, 0.0], [0.5, 3.0]]),
    ],
)
def test_select_sign_hand_computed(sign, expected):
    attr = np.array([[-2.0, 0.0], [0.5, 3.0]])
    np.testing.assert_array_equal(select_sign(attr, sign=sign), np.array(expected))


def test_select_sign_keeps_float32_and_turns_integers_into_float64():
    assert select_sign(np.ones(3, dtype=np.float32), sign="positive").dtype == np.float32
    result = select_sign(np.array([-1, 2]), sign="negative")
    assert result.dtype == np.float64
    np.testing.assert_array_equal(result, [1.0, 0.0])


def test_select_sign_does_not_change_its_input():
    attr = np.array([-1.0, 1.0])
    select_sign(attr, sign="positive")
    np.testing.assert_array_equal(attr, [-1.0, 1.0])


# ---------------------------------------------------------------- grayscale


def test_grayscale_absolute_sum_over_channels_hand_computed():
    attr = np.array([[[1.0, -1.0], [0.0, 0.0]], [[-3.0, 0.0], [4.0, 0.0]]])  # (2, 2, 2)
    # |attr| summed over channels: [[2, 0], [3, 4]]; min 0, cap (p100) 4.
    expected = np.array([[0.5, 0.0], [0.75, 1.0]])
    np.testing.assert_allclose(grayscale(attr, clip_percentile=100), expected)


@pytest.mark.parametrize(
    ("percentile", "expected"),
    [
        (100.0, [[0.0, 0.25, 0.5, 0.75, 1.0]]),
        (75.0, [[0.0, 1 / 3, 2 / 3, 1.0, 1.0]]),  # cap = 3, the value at rank 0.75 * 4
        (50.0, [[0.0, 0.5, 1.0, 1.0, 1.0]]),  # cap = 2: values above it are capped at 1
        (62.5, [[0.0, 0.4, 0.8, 1.0, 1.0]]),  # cap = 2.5, interpolated between 2 and 3
    ],
)
def test_grayscale_caps_at_the_percentile(percentile, expected):
    attr = np.array([[0.0, 1.0, 2.0, 3.0, 4.0]])
    result = grayscale(attr, channel_axis=None, clip_percentile=percentile)
    np.testing.assert_allclose(result, np.array(expected))


def test_grayscale_subtracts_the_minimum_like_pair():
    attr = np.array([[1.0, 2.0], [3.0, 5.0]])  # min 1, max 5
    expected = np.array([[0.0, 0.25], [0.5, 1.0]])
    np.testing.assert_allclose(grayscale(attr, channel_axis=None, clip_percentile=100), expected)


def test_grayscale_reductions_hand_computed():
    attr = np.array([[[1.0, -3.0], [2.0, 2.0]], [[0.0, 0.0], [-1.0, 0.0]]])  # (2, 2, 2)
    # |attr|: sum [[4, 4], [0, 1]], max [[3, 2], [0, 1]]
    np.testing.assert_allclose(
        grayscale(attr, reduce="sum", clip_percentile=100), [[1.0, 1.0], [0.0, 0.25]]
    )
    np.testing.assert_allclose(
        grayscale(attr, reduce="mean", clip_percentile=100), [[1.0, 1.0], [0.0, 0.25]]
    )
    np.testing.assert_allclose(
        grayscale(attr, reduce="max", clip_percentile=100), [[1.0, 2 / 3], [0.0, 1 / 3]]
    )


def test_grayscale_sign_positive_and_negative_hand_computed():
    attr = np.array([[-4.0, -2.0], [1.0, 3.0]])
    np.testing.assert_allclose(
        grayscale(attr, channel_axis=None, sign="positive", clip_percentile=100),
        [[0.0, 0.0], [1 / 3, 1.0]],
    )
    np.testing.assert_allclose(
        grayscale(attr, channel_axis=None, sign="negative", clip_percentile=100),
        [[1.0, 0.5], [0.0, 0.0]],
    )


def test_grayscale_applies_the_sign_per_channel_before_reducing():
    attr = np.array([[[2.0, -2.0], [1.0, 0.0], [0.0, 0.0]]])  # (1, 3, 2)
    # |attr| summed: [4, 1, 0]; the signed sum first would give [0, 1, 0] instead.
    np.testing.assert_allclose(grayscale(attr, clip_percentile=100), [[1.0, 0.25, 0.0]])
    np.testing.assert_allclose(
        grayscale(attr, sign="positive", clip_percentile=100), [[1.0, 0.5, 0.0]]
    )


def test_grayscale_scales_each_map_of_a_batch_on_its_own():
    batch = np.array([[[0.0, 1.0], [2.0, 4.0]], [[8.0, 0.0], [0.0, 0.0]]])  # (N, H, W)
    expected = np.array([[[0.0, 0.25], [0.5, 1.0]], [[1.0, 0.0], [0.0, 0.0]]])
    result = grayscale(batch, channel_axis=None, clip_percentile=100)
    np.testing.assert_allclose(result, expected)


def test_grayscale_batch_equals_map_by_map():
    batch = (
        np.random.default_rng(1).normal(size=(3, 6, 5, 3))
        * np.array([1, 10, 100])[:, None, None, None]
    )
    result = grayscale(batch)
    for index in range(3):
        np.testing.assert_allclose(result[index], grayscale(batch[index]))


def test_grayscale_channels_first_and_last_agree():
    hwc = np.random.default_rng(2).normal(size=(7, 5, 3))
    chw = np.moveaxis(hwc, -1, 0)
    np.testing.assert_allclose(grayscale(chw, channel_axis=0), grayscale(hwc))
    nhwc = np.stack([hwc, 2 * hwc - 1])
    nchw = np.moveaxis(nhwc, -1, 1)
    np.testing.assert_allclose(grayscale(nchw, channel_axis=1), grayscale(nhwc))
    np.testing.assert_allclose(grayscale(nchw, channel_axis=-3), grayscale(nhwc))


@pytest.mark.parametrize("seed", range(5))
def test_grayscale_matches_pair_on_non_constant_maps(seed):
    attr = np.random.default_rng(seed).standard_t(df=2, size=(16, 12, 3))
    np.testing.assert_allclose(grayscale(attr), pair_grayscale(attr), atol=1e-12)


def test_grayscale_matches_pair_per_image_of_a_batch():
    batch = np.random.default_rng(7).normal(size=(4, 10, 9, 3)) ** 3
    result = grayscale(batch)
    for index in range(4):
        np.testing.assert_allclose(result[index], pair_grayscale(batch[index]), atol=1e-12)


@pytest.mark.parametrize("value", [0.0, 3.5, -2.0])
def test_grayscale_constant_maps_give_zeros_not_nan(value):
    result = grayscale(np.full((4, 4, 3), value))
    np.testing.assert_array_equal(result, np.zeros((4, 4)))


def test_grayscale_sparse_map_whose_cap_equals_the_minimum_keeps_its_pixel():
    # One non-zero pixel among 200: the 99th percentile is 0, the minimum too. PAIR
    # gives NaN here; the limit of the formula is 1 above the minimum, 0 elsewhere.
    attr = np.zeros((10, 20))
    attr[3, 4] = -5.0
    expected = np.zeros((10, 20))
    expected[3, 4] = 1.0
    np.testing.assert_array_equal(grayscale(attr, channel_axis=None), expected)


def test_grayscale_dtypes():
    assert grayscale(np.ones((2, 2, 3), dtype=np.float32)).dtype == np.float32
    assert grayscale(np.ones((2, 2, 3), dtype=np.int64)).dtype == np.float64
    assert grayscale(np.ones((2, 2, 3), dtype=bool)).dtype == np.float64


def test_grayscale_accepts_nested_lists():
    np.testing.assert_allclose(
        grayscale([[0, 2], [1, 4]], channel_axis=None, clip_percentile=100),
        [[0.0, 0.5], [0.25, 1.0]],
    )


def test_grayscale_survives_huge_values():
    attr = np.array([[1e308, -1e308], [0.0, 5.0]])
    np.testing.assert_allclose(
        grayscale(attr, channel_axis=None, clip_percentile=100), [[1.0, 1.0], [0.0, 5e-308]]
    )


# ---------------------------------------------------------------- diverging


def test_diverging_hand_computed():
    attr = np.array([[2.0, -1.0], [0.0, -4.0]])
    np.testing.assert_allclose(
        diverging(attr, channel_axis=None, clip_percentile=100), [[0.5, -0.25], [0.0, -1.0]]
    )


def test_diverging_sums_channels_with_their_sign():
    attr = np.array([[[1.0, 1.0], [-3.0, 1.0], [2.0, -2.0]]])  # sums [[2, -2, 0]]
    np.testing.assert_allclose(diverging(attr, clip_percentile=100), [[1.0, -1.0, 0.0]])


@pytest.mark.parametrize(
    ("percentile", "expected"),
    [
        (75.0, [[-1.0, -0.5, 0.0, 0.5, 1.0]]),  # |m| sorted [0, 1, 1, 2, 4]: cap 2
        (50.0, [[-1.0, -1.0, 0.0, 1.0, 1.0]]),  # cap 1
    ],
)
def test_diverging_caps_symmetrically_at_the_percentile_of_magnitudes(percentile, expected):
    attr = np.array([[-4.0, -1.0, 0.0, 1.0, 2.0]])
    np.testing.assert_allclose(
        diverging(attr, channel_axis=None, clip_percentile=percentile), np.array(expected)
    )


def test_diverging_keeps_zero_at_zero_and_is_antisymmetric():
    attr = np.random.default_rng(3).normal(size=(2, 9, 8, 3))
    attr[0, 2, 3, :] = 0.0
    result = diverging(attr)
    assert result[0, 2, 3] == 0.0
    np.testing.assert_array_equal(diverging(-attr), -result)
    assert result.min() >= -1.0 and result.max() <= 1.0


def test_diverging_scales_each_map_of_a_batch_on_its_own():
    batch = np.array([[[1.0, -2.0]], [[0.0, 10.0]]])  # (N, H, W) = (2, 1, 2)
    np.testing.assert_allclose(
        diverging(batch, channel_axis=None, clip_percentile=100), [[[0.5, -1.0]], [[0.0, 1.0]]]
    )


def test_diverging_channels_first_and_last_agree():
    hwc = np.random.default_rng(4).normal(size=(6, 7, 3))
    np.testing.assert_allclose(diverging(np.moveaxis(hwc, -1, 0), channel_axis=0), diverging(hwc))


def test_diverging_zero_and_sparse_maps():
    np.testing.assert_array_equal(diverging(np.zeros((3, 3, 3))), np.zeros((3, 3)))
    sparse = np.zeros((10, 20))
    sparse[1, 1], sparse[5, 5] = 3.0, -0.5  # 99th percentile of |m| is 0
    expected = np.zeros((10, 20))
    expected[1, 1], expected[5, 5] = 1.0, -1.0
    np.testing.assert_array_equal(diverging(sparse, channel_axis=None), expected)


# ---------------------------------------------------------------- times_input


def test_times_input_same_shapes():
    attr = np.array([[[1.0, -1.0]], [[2.0, 0.5]]])
    image = np.array([[[3.0, 4.0]], [[-1.0, 2.0]]])
    np.testing.assert_array_equal(times_input(attr, image), [[[3.0, -4.0]], [[-2.0, 1.0]]])


def test_times_input_map_without_channels_times_rgb_image():
    attr = np.array([[1.0, 2.0], [0.0, -1.0]])  # (H, W) = (2, 2)
    image = np.arange(12.0).reshape(2, 2, 3)
    expected = attr[:, :, None] * image
    np.testing.assert_array_equal(times_input(attr, image), expected)


def test_times_input_map_without_channels_on_a_square_image_is_not_misaligned():
    attr = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])  # only pixel (0, 0)
    image = np.ones((3, 3, 3))
    result = times_input(attr, image)
    expected = np.zeros((3, 3, 3))
    expected[0, 0, :] = 1.0
    np.testing.assert_array_equal(result, expected)
    assert not np.array_equal(attr * image, expected)  # numpy's alignment is wrong here


def test_times_input_channels_first_image():
    attr = np.array([[2.0, -1.0]])  # (H, W) = (1, 2)
    image = np.array([[[1.0, 1.0]], [[2.0, 3.0]], [[0.0, 4.0]]])  # (C, H, W) = (3, 1, 2)
    expected = np.array([[[2.0, -1.0]], [[4.0, -3.0]], [[0.0, -4.0]]])
    np.testing.assert_array_equal(times_input(attr, image, channel_axis=0), expected)


def test_times_input_sizes_of_one_broadcast():
    attr = np.array([[[2.0], [3.0]]])  # (1, 2, 1)
    image = np.array([[[1.0, 2.0, 3.0], [1.0, 0.0, -1.0]]])  # (1, 2, 3)
    np.testing.assert_array_equal(times_input(attr, image), [[[2.0, 4.0, 6.0], [3.0, 0.0, -3.0]]])
    batch = np.ones((4, 1, 2, 3))
    assert times_input(batch, image[None]).shape == (4, 1, 2, 3)


def test_times_input_dtype():
    single = np.ones((2, 2, 3), dtype=np.float32)
    assert times_input(single, single).dtype == np.float32
    assert times_input(single, np.ones((2, 2, 3), dtype=np.uint8)).dtype == np.float64
    half = np.full((1, 1, 3), 300.0, dtype=np.float16)  # 300 * 255 overflows float16
    result = times_input(half, np.full((1, 1, 3), 255.0, dtype=np.float16))
    assert result.dtype == np.float32
    np.testing.assert_array_equal(result, 76500.0)


# ---------------------------------------------------------------- discriminativity


def test_difference_map_hand_computed():
    map_a = np.array([[0.0, 2.0], [4.0, 0.0]])  # scaled [[0, .5], [1, 0]]
    map_b = np.array([[0.0, 0.0], [1.0, 2.0]])  # scaled [[0, 0], [.5, 1]]
    np.testing.assert_allclose(
        difference_map(map_a, map_b, channel_axis=None, clip_percentile=100),
        [[0.0, 0.5], [0.5, -1.0]],
    )


def test_difference_map_of_a_map_with_itself_is_zero():
    attr = np.random.default_rng(5).normal(size=(5, 5, 3))
    np.testing.assert_array_equal(difference_map(attr, attr), np.zeros((5, 5)))


def test_discriminativity_is_blue_grey_red():
    map_a = np.array([[[2.0], [0.0], [2.0], [1.0]]])  # (1, 4, 1), scaled [1, 0, 1, .5]
    map_b = np.array([[[0.0], [1.0], [2.0], [0.0]]])  # scaled [0, .5, 1, 0]
    # differences [1, -.5, 0, .5] -> red, halfway to blue, grey, halfway to red
    result = discriminativity(map_a, map_b, clip_percentile=100)
    expected = [[[255, 0, 0], [64, 64, 191], [128, 128, 128], [191, 64, 64]]]
    assert result.dtype == np.uint8
    np.testing.assert_array_equal(result, expected)


def test_big_endian_maps_give_the_same_native_results():
    attr = np.random.default_rng(6).normal(size=(2, 5, 5, 3))
    swapped = attr.astype(">f8")
    for function in (grayscale, diverging):
        result = function(swapped)
        assert result.dtype == np.float64 and result.dtype.isnative
        np.testing.assert_array_equal(result, function(attr))
    assert select_sign(attr.astype(">f4"), sign="all").dtype == np.dtype("float32")
