"""Overlays: blended heat map, masked image and alpha scaling, hand-computed."""

from __future__ import annotations

import numpy as np
import pytest

from visualize import alpha_scaling, masked_image, overlay

IMAGE = np.array([[[0, 100, 200], [50, 50, 50]]], dtype=np.uint8)  # (H, W, C) = (1, 2, 3)
HEAT = np.array([[1.0, 0.5]])


@pytest.mark.parametrize(
    ("alpha", "expected"),
    [
        (0.0, [[[0, 100, 200], [50, 50, 50]]]),  # the image alone
        (1.0, [[[255, 255, 255], [128, 128, 128]]]),  # the grey heat map alone
        (0.5, [[[128, 178, 228], [89, 89, 89]]]),  # (image + colour) / 2, rounded
    ],
)
def test_overlay_blends_hand_computed(alpha, expected):
    result = overlay(IMAGE, HEAT, alpha=alpha, cmap="grey")
    assert result.dtype == np.uint8
    np.testing.assert_array_equal(result, expected)


def test_overlay_with_a_diverging_map():
    image = np.zeros((1, 3), dtype=np.uint8)
    heat = np.array([[-1.0, 0.0, 1.0]])
    expected = [[[0, 0, 255], [128, 128, 128], [255, 0, 0]]]
    np.testing.assert_array_equal(overlay(image, heat, alpha=1.0, cmap="blue_grey_red"), expected)


def test_overlay_scales_float_images_and_accepts_channels_first():
    hwc = np.array([[[-2.0, 0.0, 2.0], [2.0, 2.0, 2.0]]])  # min-max: 0, 128, 255
    chw = np.moveaxis(hwc, -1, 0)
    expected = [[[0, 128, 255], [255, 255, 255]]]
    np.testing.assert_array_equal(overlay(hwc, HEAT, alpha=0.0), expected)
    np.testing.assert_array_equal(overlay(chw, HEAT, alpha=0.0), expected)
    np.testing.assert_array_equal(overlay(chw, HEAT, alpha=0.0, channel_axis=0), expected)


def test_overlay_of_a_grey_image_is_rgb():
    grey = np.array([[10, 20]], dtype=np.uint8)
    np.testing.assert_array_equal(overlay(grey, HEAT, alpha=0.0), [[[10, 10, 10], [20, 20, 20]]])


def test_masked_image_hand_computed():
    expected = [[[0, 100, 200], [25, 25, 25]]]
    np.testing.assert_array_equal(masked_image(IMAGE, HEAT), expected)


def test_alpha_scaling_hand_computed():
    expected = [[[0, 100, 200, 255], [50, 50, 50, 128]]]
    result = alpha_scaling(IMAGE, HEAT)
    assert result.dtype == np.uint8
    np.testing.assert_array_equal(result, expected)


@pytest.mark.parametrize("function", [masked_image, alpha_scaling])
def test_masked_and_alpha_refuse_signed_maps(function):
    with pytest.raises(ValueError, match=r"expected heat with values in \[0, 1\]"):
        function(IMAGE, np.array([[-1.0, 1.0]]))


@pytest.mark.parametrize("function", [overlay, masked_image, alpha_scaling])
def test_spatial_sizes_must_match(function):
    with pytest.raises(ValueError, match=r"expected heat of the image's spatial shape \(1, 2\)"):
        function(IMAGE, np.zeros((2, 1)))


@pytest.mark.parametrize("function", [overlay, masked_image, alpha_scaling])
def test_heat_must_be_two_dimensional(function):
    with pytest.raises(ValueError, match="grayscale"):
        function(IMAGE, np.zeros((1, 2, 3)))


def test_rgba_images_are_refused():
    with pytest.raises(ValueError, match="grey or RGB"):
        overlay(np.zeros((1, 2, 4), dtype=np.uint8), HEAT)


@pytest.mark.parametrize("alpha", [-0.1, 1.5, float("nan")])
def test_alpha_outside_zero_one(alpha):
    with pytest.raises(ValueError, match=r"expected alpha in \[0, 1\]"):
        overlay(IMAGE, HEAT, alpha=alpha)
