"""Every kind of bad input is refused with ValueError/TypeError saying what was expected."""

# The calls below pass wrong types on purpose, to check the errors they raise.
# mypy: disable-error-code="arg-type,list-item"

from __future__ import annotations

import re

import numpy as np
import pytest

import visualize as vis

RGB = np.zeros((4, 5, 3))
MAP = np.zeros((4, 5))
NAN_MAP = np.array([[0.0, np.nan], [1.0, 2.0]])
INF_MAP = np.array([[0.0, np.inf], [1.0, 2.0]])
STRINGS = np.array([["a", "b"], ["c", "d"]])

# (id, call, error type, a regular expression the message must contain)
CASES = [
    # wrong number of dimensions
    (
        "grayscale 2-D with channels",
        lambda: vis.grayscale(MAP),
        ValueError,
        r"expected attr with 3 or 4 dimensions .*channel_axis=None.*got shape \(4, 5\)",
    ),
    (
        "grayscale 5-D",
        lambda: vis.grayscale(np.zeros((1, 2, 3, 4, 5))),
        ValueError,
        r"3 or 4 dimensions.*got shape \(1, 2, 3, 4, 5\)",
    ),
    (
        "grayscale 4-D without channels",
        lambda: vis.grayscale(np.zeros((1, 2, 3, 4)), channel_axis=None),
        ValueError,
        r"2 or 3 dimensions.*got shape \(1, 2, 3, 4\)",
    ),
    (
        "diverging 1-D",
        lambda: vis.diverging(np.zeros(5), channel_axis=None),
        ValueError,
        r"2 or 3 dimensions.*got shape \(5,\)",
    ),
    (
        "grayscale empty",
        lambda: vis.grayscale(np.zeros((0, 5)), channel_axis=None),
        ValueError,
        r"expected a non-empty attr, got shape \(0, 5\)",
    ),
    (
        "to_image 4-D",
        lambda: vis.to_image(np.zeros((1, 4, 5, 3))),
        ValueError,
        r"expected image with 2 or 3 dimensions.*got shape \(1, 4, 5, 3\)",
    ),
    (
        "to_image 3-D with channel_axis None",
        lambda: vis.to_image(RGB, channel_axis=None),
        ValueError,
        r"expected a 2-D image .* got shape \(4, 5, 3\)",
    ),
    (
        "to_image 2-D with an int channel_axis",
        lambda: vis.to_image(MAP, channel_axis=0),
        ValueError,
        r"expected a 3-D image .* got shape \(4, 5\)",
    ),
    (
        "to_image no channel axis found",
        lambda: vis.to_image(np.zeros((5, 6, 7))),
        ValueError,
        r"channels on the first axis.*got shape \(5, 6, 7\)",
    ),
    (
        "to_image 5 channels",
        lambda: vis.to_image(np.zeros((4, 5, 5)), channel_axis=2),
        ValueError,
        r"expected 1, 3 or 4 channels.*got 5",
    ),
    (
        "to_image float RGBA",
        lambda: vis.to_image(np.zeros((4, 5, 4))),
        ValueError,
        r"expected uint8 values .*RGBA.*got dtype float64",
    ),
    # channel axis out of range or of the wrong type
    (
        "grayscale channel_axis 3",
        lambda: vis.grayscale(RGB, channel_axis=3),
        ValueError,
        r"expected channel_axis in \[-3, 2\] .*got 3",
    ),
    (
        "grayscale channel_axis -4",
        lambda: vis.grayscale(RGB, channel_axis=-4),
        ValueError,
        r"expected channel_axis in \[-3, 2\].*got -4",
    ),
    (
        "diverging channel_axis 5",
        lambda: vis.diverging(RGB, channel_axis=5),
        ValueError,
        r"expected channel_axis in \[-3, 2\]",
    ),
    (
        "to_image channel_axis 3",
        lambda: vis.to_image(RGB, channel_axis=3),
        ValueError,
        r"expected channel_axis in \[-3, 2\]",
    ),
    (
        "times_input channel_axis 3",
        lambda: vis.times_input(MAP, RGB, channel_axis=3),
        ValueError,
        r"expected channel_axis in \[-3, 2\]",
    ),
    (
        "grayscale channel_axis float",
        lambda: vis.grayscale(RGB, channel_axis=1.0),
        TypeError,
        "expected channel_axis to be an int, got float",
    ),
    (
        "grayscale channel_axis bool",
        lambda: vis.grayscale(RGB, channel_axis=True),
        TypeError,
        "expected channel_axis to be an int, got bool",
    ),
    (
        "to_image channel_axis word",
        lambda: vis.to_image(RGB, channel_axis="last"),
        ValueError,
        r"expected channel_axis to be 'auto', None or an int, got 'last'",
    ),
    # percentile outside (0, 100]
    (
        "percentile 0",
        lambda: vis.grayscale(RGB, clip_percentile=0),
        ValueError,
        r"expected clip_percentile in \(0, 100\], got 0",
    ),
    (
        "percentile negative",
        lambda: vis.grayscale(RGB, clip_percentile=-5),
        ValueError,
        r"expected clip_percentile in \(0, 100\], got -5",
    ),
    (
        "percentile above 100",
        lambda: vis.diverging(RGB, clip_percentile=100.5),
        ValueError,
        r"expected clip_percentile in \(0, 100\], got 100.5",
    ),
    (
        "percentile NaN",
        lambda: vis.diverging(RGB, clip_percentile=float("nan")),
        ValueError,
        r"expected clip_percentile in \(0, 100\], got nan",
    ),
    (
        "percentile string",
        lambda: vis.grayscale(RGB, clip_percentile="99"),
        TypeError,
        "expected clip_percentile to be a real number, got str",
    ),
    (
        "difference_map percentile",
        lambda: vis.difference_map(RGB, RGB, clip_percentile=0),
        ValueError,
        r"expected clip_percentile in \(0, 100\]",
    ),
    # NaN and infinity
    (
        "grayscale NaN",
        lambda: vis.grayscale(NAN_MAP, channel_axis=None),
        ValueError,
        "expected attr to hold finite values, got 1 NaN and 0 infinite values",
    ),
    (
        "diverging inf",
        lambda: vis.diverging(INF_MAP, channel_axis=None),
        ValueError,
        "expected attr to hold finite values, got 0 NaN and 1 infinite values",
    ),
    (
        "select_sign NaN",
        lambda: vis.select_sign(NAN_MAP, sign="all"),
        ValueError,
        "finite values, got 1 NaN",
    ),
    (
        "times_input NaN image",
        lambda: vis.times_input(MAP[:2, :2], NAN_MAP),
        ValueError,
        "expected image to hold finite values, got 1 NaN",
    ),
    (
        "apply_colormap NaN",
        lambda: vis.apply_colormap(NAN_MAP),
        ValueError,
        "expected heat to hold finite values",
    ),
    (
        "to_image NaN",
        lambda: vis.to_image(NAN_MAP),
        ValueError,
        "expected image to hold finite values",
    ),
    (
        "overlay NaN heat",
        lambda: vis.overlay(np.zeros((2, 2)), NAN_MAP),
        ValueError,
        "expected heat to hold finite values",
    ),
    (
        "difference_map NaN",
        lambda: vis.difference_map(NAN_MAP, MAP[:2, :2], channel_axis=None),
        ValueError,
        "expected map_a to hold finite values",
    ),
    # image and map of different spatial sizes
    (
        "overlay sizes",
        lambda: vis.overlay(RGB, np.zeros((5, 4))),
        ValueError,
        r"expected heat of the image's spatial shape \(4, 5\), got \(5, 4\)",
    ),
    (
        "masked_image sizes",
        lambda: vis.masked_image(RGB, np.zeros((4, 6))),
        ValueError,
        r"expected heat of the image's spatial shape \(4, 5\), got \(4, 6\)",
    ),
    (
        "alpha_scaling sizes",
        lambda: vis.alpha_scaling(RGB, np.zeros((3, 5))),
        ValueError,
        r"spatial shape \(4, 5\), got \(3, 5\)",
    ),
    (
        "times_input sizes",
        lambda: vis.times_input(np.zeros((4, 6)), RGB),
        ValueError,
        r"expected attr and image shapes .* got \(4, 6\) and \(4, 5, 3\)",
    ),
    (
        "times_input channels",
        lambda: vis.times_input(np.zeros((4, 5, 2)), RGB),
        ValueError,
        r"got \(4, 5, 2\) and \(4, 5, 3\)",
    ),
    (
        "times_input two dims fewer",
        lambda: vis.times_input(np.zeros(5), RGB),
        ValueError,
        r"got \(5,\) and \(4, 5, 3\)",
    ),
    (
        "difference_map shapes",
        lambda: vis.difference_map(RGB, np.zeros((4, 6, 3))),
        ValueError,
        r"expected map_a and map_b of the same shape, got \(4, 5, 3\) and \(4, 6, 3\)",
    ),
    # unknown names, with the choices listed
    (
        "reduce name",
        lambda: vis.grayscale(RGB, reduce="median"),
        ValueError,
        r"expected reduce to be one of 'sum', 'mean', 'max', got 'median'",
    ),
    (
        "sign name",
        lambda: vis.select_sign(MAP, sign="pos"),
        ValueError,
        r"expected sign to be one of 'absolute', 'positive', 'negative', 'all', got 'pos'",
    ),
    (
        "grayscale sign all",
        lambda: vis.grayscale(RGB, sign="all"),
        ValueError,
        r"expected sign to be one of 'absolute', 'positive', 'negative' \(use diverging\(\)",
    ),
    (
        "cmap name",
        lambda: vis.apply_colormap(MAP, cmap="viridiss"),
        ValueError,
        r"expected cmap to be one of 'grey', 'gray', 'viridis', 'jet', 'blue_grey_red'",
    ),
    (
        "overlay cmap name",
        lambda: vis.overlay(RGB, MAP, cmap="nope"),
        ValueError,
        r"expected cmap to be one of .*got 'nope'",
    ),
    (
        "reduce type",
        lambda: vis.grayscale(RGB, reduce=2),
        TypeError,
        r"expected reduce to be one of 'sum', 'mean', 'max', got int",
    ),
    (
        "cmap type",
        lambda: vis.apply_colormap(MAP, cmap=None),
        TypeError,
        "expected cmap to be a colour map name, got NoneType",
    ),
    # values outside the range a function takes
    (
        "colour map range",
        lambda: vis.apply_colormap(np.array([[2.0]])),
        ValueError,
        r"expected heat with values in \[0, 1\] .*got values in \[2, 2\]",
    ),
    (
        "masked_image range",
        lambda: vis.masked_image(RGB, MAP - 1),
        ValueError,
        r"expected heat with values in \[0, 1\]",
    ),
    (
        "alpha",
        lambda: vis.overlay(RGB, MAP, alpha=2),
        ValueError,
        r"expected alpha in \[0, 1\], got 2",
    ),
    (
        "alpha type",
        lambda: vis.overlay(RGB, MAP, alpha="half"),
        TypeError,
        "expected alpha to be a real number, got str",
    ),
    # wrong types of data
    (
        "strings",
        lambda: vis.grayscale(STRINGS, channel_axis=None),
        TypeError,
        re.escape("expected attr to hold real numbers (bool, int or float), got dtype <U1"),
    ),
    (
        "complex",
        lambda: vis.diverging(MAP + 1j, channel_axis=None),
        TypeError,
        "got dtype complex128",
    ),
    (
        "objects",
        lambda: vis.to_image(np.array([[None, 1]])),
        TypeError,
        "expected image to hold real numbers",
    ),
    (
        "ragged",
        lambda: vis.grayscale([[1.0, 2.0], [3.0]], channel_axis=None),
        ValueError,
        "expected attr to be a rectangular array of real numbers, got a ragged list",
    ),
    (
        "times_input overflow",
        lambda: vis.times_input(np.full((2, 2), 1e300), np.full((2, 2, 3), 1e300)),
        ValueError,
        r"expected attr \* image within the range of float64, got infinity",
    ),
    (
        "times_input strings",
        lambda: vis.times_input(STRINGS, STRINGS),
        TypeError,
        "expected attr to hold real numbers",
    ),
    # grids and files
    (
        "grid empty",
        lambda: vis.grid([]),
        ValueError,
        "expected at least one image, got an empty list",
    ),
    (
        "grid array",
        lambda: vis.grid(np.zeros((2, 4, 4))),
        TypeError,
        r"expected a list of images .*got ndarray \(use list\(batch\)",
    ),
    ("grid mixed", lambda: vis.grid([MAP, [MAP]]), ValueError, "got a mix"),
    ("grid empty row", lambda: vis.grid([[MAP], []]), ValueError, "got an empty row"),
    (
        "grid titles count",
        lambda: vis.grid([MAP, MAP], titles=["a"]),
        ValueError,
        r"expected titles to hold one string per column \(2\), got 1",
    ),
    (
        "grid labels count",
        lambda: vis.grid([[MAP], [MAP]], row_labels=["a"]),
        ValueError,
        r"expected row_labels to hold one string per row \(2\), got 1",
    ),
    (
        "grid titles type",
        lambda: vis.grid([MAP], titles="a"),
        TypeError,
        "expected titles to be a list of strings, got str",
    ),
    (
        "grid title items",
        lambda: vis.grid([MAP], titles=[1]),
        TypeError,
        r"expected titles to be a list of strings, got items of type \['int'\]",
    ),
    (
        "grid ncols with rows",
        lambda: vis.grid([[MAP]], ncols=2),
        ValueError,
        "expected ncols=None with a list of rows, got ncols=2",
    ),
    ("grid ncols 0", lambda: vis.grid([MAP], ncols=0), ValueError, "expected ncols >= 1, got 0"),
    (
        "grid ncols float",
        lambda: vis.grid([MAP], ncols=2.0),
        TypeError,
        "expected ncols to be an int, got float",
    ),
    (
        "grid cell_size",
        lambda: vis.grid([MAP], cell_size=(0, 4)),
        ValueError,
        "expected cell_size width >= 1, got 0",
    ),
    (
        "grid cell_size type",
        lambda: vis.grid([MAP], cell_size="big"),
        TypeError,
        re.escape("expected cell_size to be an int or a (width, height) pair, got 'big'"),
    ),
    (
        "grid padding",
        lambda: vis.grid([MAP], padding=-1),
        ValueError,
        "expected padding >= 0, got -1",
    ),
    (
        "grid only None",
        lambda: vis.grid([None]),
        ValueError,
        "expected at least one image that is not None",
    ),
    # a heat map has no channel axis
    (
        "apply_colormap (H, W, 3)",
        lambda: vis.apply_colormap(RGB),
        ValueError,
        r"expected heat \(H, W\) or \(N, H, W\) without a channel axis, got shape "
        r"\(4, 5, 3\), which looks like an image.*grayscale\(\) or diverging\(\)",
    ),
    (
        "apply_colormap (H, W, 1)",
        lambda: vis.apply_colormap(np.zeros((4, 5, 1))),
        ValueError,
        r"without a channel axis, got shape \(4, 5, 1\)",
    ),
    (
        "apply_colormap 4-D",
        lambda: vis.apply_colormap(np.zeros((2, 4, 5, 3))),
        ValueError,
        r"expected heat with 1 or 2 or 3 dimensions \(H, W\), \(N, H, W\).*got shape "
        r"\(2, 4, 5, 3\)",
    ),
    (
        "apply_colormap 0-d",
        lambda: vis.apply_colormap(np.float64(0.5)),
        ValueError,
        r"expected heat with 1 or 2 or 3 dimensions.*got shape \(\)",
    ),
    (
        "apply_colormap empty",
        lambda: vis.apply_colormap(np.zeros((0, 4))),
        ValueError,
        r"expected a non-empty heat, got shape \(0, 4\)",
    ),
    # NaN options
    (
        "percentile NaN grayscale",
        lambda: vis.grayscale(RGB, clip_percentile=float("nan")),
        ValueError,
        r"expected clip_percentile in \(0, 100\], got nan",
    ),
    (
        "alpha NaN",
        lambda: vis.overlay(RGB, MAP, alpha=float("nan")),
        ValueError,
        r"expected alpha in \[0, 1\], got nan",
    ),
    (
        "alpha infinite",
        lambda: vis.overlay(RGB, MAP, alpha=np.inf),
        ValueError,
        r"expected alpha in \[0, 1\], got inf",
    ),
    (
        "alpha bool",
        lambda: vis.overlay(RGB, MAP, alpha=True),
        TypeError,
        r"expected alpha to be a real number, got bool",
    ),
    (
        "grayscale masked array",
        lambda: vis.grayscale(np.ma.masked_array(RGB, mask=RGB > 0)),
        TypeError,
        r"expected attr to be a plain array, got a masked array",
    ),
    (
        "to_image masked array",
        lambda: vis.to_image(np.ma.masked_array(MAP, mask=MAP > 0)),
        TypeError,
        r"expected image to be a plain array, got a masked array",
    ),
    (
        "overlay heat with channels",
        lambda: vis.overlay(RGB, RGB),
        ValueError,
        r"expected heat with 2 dimensions \(H, W\)",
    ),
]


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_input_is_refused_with_what_was_expected_and_what_came(call, error, message):
    with pytest.raises(error, match=message) as raised:
        call()
    text = str(raised.value)
    assert text.startswith("expected "), text
    assert " got " in text, text
