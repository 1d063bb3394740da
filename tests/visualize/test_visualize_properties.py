"""Properties over random inputs: ranges, shapes, no NaN, symmetry, scale invariance.

Example counts and deadlines come from the hypothesis profiles in tests/conftest.py.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from visualize import apply_colormap, diverging, grayscale, to_uint8

# Every finite float64, from subnormals to 1e308: no input may turn into NaN.
any_finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
shapes_with_channels = hnp.array_shapes(min_dims=3, max_dims=4, min_side=1, max_side=6)
shapes_without_channels = hnp.array_shapes(min_dims=2, max_dims=3, min_side=1, max_side=6)
percentiles = st.floats(min_value=1.0, max_value=100.0)


def maps(shapes):
    return hnp.arrays(np.float64, shapes, elements=any_finite)


@given(
    attr=maps(shapes_with_channels),
    percentile=percentiles,
    reduce=st.sampled_from(["sum", "mean", "max"]),
    sign=st.sampled_from(["absolute", "positive", "negative"]),
)
def test_grayscale_is_in_unit_range_without_nan_and_drops_the_channel_axis(
    attr, percentile, reduce, sign
):
    result = grayscale(attr, clip_percentile=percentile, reduce=reduce, sign=sign)
    assert result.shape == attr.shape[:-1]
    assert not np.isnan(result).any()
    assert result.min() >= 0.0 and result.max() <= 1.0


@given(attr=maps(shapes_without_channels), percentile=percentiles)
def test_diverging_is_in_range_antisymmetric_and_keeps_signs(attr, percentile):
    result = diverging(attr, channel_axis=None, clip_percentile=percentile)
    assert result.shape == attr.shape
    assert not np.isnan(result).any()
    assert result.min() >= -1.0 and result.max() <= 1.0
    np.testing.assert_array_equal(
        diverging(-attr, channel_axis=None, clip_percentile=percentile), -result
    )
    assert np.all(result[attr == 0] == 0)
    assert np.all(result * attr >= 0)  # never flips a sign


# Zero or a normal float whose products with the factors below stay normal: no underflow to
# subnormals or 0 (5e-324 * 0.5 == 0 would turn a pixel off) and no overflow to inf.
scalable = st.just(0.0) | st.floats(1e-280, 1e280) | st.floats(-1e280, -1e-280)


@given(attr=hnp.arrays(np.float64, shapes_with_channels, elements=scalable),
       exponent=st.integers(min_value=-30, max_value=30))
def test_scaling_by_a_power_of_two_changes_no_picture_at_all(attr, exponent):
    # multiplying by 2**k is exact for these values, and every picture is a ratio of them
    factor = 2.0**exponent
    np.testing.assert_array_equal(grayscale(attr * factor), grayscale(attr))
    np.testing.assert_array_equal(diverging(attr * factor), diverging(attr))


@given(
    attr=hnp.arrays(np.float64, shapes_with_channels, elements=st.integers(-1000, 1000)),
    factor=st.floats(min_value=1e-3, max_value=1e3),
)
def test_scaling_the_attribution_changes_no_picture(attr, factor):
    # Any factor rounds, so the picture is the same up to rounding for values that rounding
    # cannot merge or send to zero: whole numbers (distinct ones stay distinct when scaled).
    # Values one ulp apart may merge, and the smallest subnormals vanish (5e-324 * 0.5 == 0),
    # which changes the picture by design: the power-of-two test above covers those.
    np.testing.assert_allclose(grayscale(attr * factor), grayscale(attr), atol=1e-9)
    np.testing.assert_allclose(diverging(attr * factor), diverging(attr), atol=1e-9)


@given(attr=hnp.arrays(np.float64, (4, 5, 3), elements=st.floats(-10, 10)))
def test_channels_first_equals_channels_last(attr):
    chw = np.moveaxis(attr, -1, 0)
    np.testing.assert_array_equal(grayscale(chw, channel_axis=0), grayscale(attr))
    np.testing.assert_array_equal(diverging(chw, channel_axis=0), diverging(attr))


@given(image=maps(hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=6)))
def test_to_uint8_spans_the_range_of_any_non_constant_image(image):
    result = to_uint8(image)
    assert result.dtype == np.uint8 and result.shape == image.shape
    if image.min() < image.max():
        assert result.min() == 0 and result.max() == 255
    else:
        assert result.max() == 0


# (H, W) maps, and (N, H, W) batches not ending in 1, 3 or 4 (which look like channels)
heat_shapes = shapes_without_channels.filter(lambda s: len(s) == 2 or s[-1] not in (1, 3, 4))


@given(
    heat=hnp.arrays(np.float64, heat_shapes, elements=st.floats(0, 1)),
    cmap=st.sampled_from(["grey", "viridis", "jet", "blue_grey_red"]),
)
def test_colour_maps_give_uint8_rgb_of_the_same_shape(heat, cmap):
    result = apply_colormap(heat, cmap=cmap)
    assert result.dtype == np.uint8 and result.shape == heat.shape + (3,)
