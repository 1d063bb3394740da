"""visualize.series: a series with its attribution as a colour band or as its colour."""

from __future__ import annotations

import numpy as np
import pytest

from visualize.colormaps import apply_colormap
from visualize.series import scale_attribution, series_chart

SIZE = (400, 200)
LEFT, RIGHT, TOP, BOTTOM = 56, 400 - 64, 10, 200 - 40      # the plot box without a title


def _column(step, n_steps):
    """The pixel column at the centre of time step ``step`` (time 0 .. n_steps - 1)."""
    return int(round(LEFT + step / (n_steps - 1) * (RIGHT - LEFT)))


def test_scale_attribution_closed_forms():
    scaled, cap = scale_attribution([2.0, -1.0, 0.0, -4.0])
    np.testing.assert_array_equal(scaled, [0.5, -0.25, 0.0, -1.0])
    assert cap == 4.0
    scaled, cap = scale_attribution([1.0, 2.0, 3.0, 100.0], clip_percentile=50)
    assert cap == 2.5
    np.testing.assert_allclose(scaled, [0.4, 0.8, 1.0, 1.0])
    magnitude, _ = scale_attribution([-2.0, 1.0], cmap="viridis")
    np.testing.assert_array_equal(magnitude, [1.0, 0.5])
    zeros, cap = scale_attribution(np.zeros(5))
    np.testing.assert_array_equal(zeros, np.zeros(5))
    assert cap == 0.0
    huge, _ = scale_attribution([1e308, -1e308])
    np.testing.assert_array_equal(huge, [1.0, -1.0])


def test_the_band_takes_the_colour_of_the_map_blended_with_white():
    n = 9
    series = np.zeros(n)                                     # a flat line in the middle
    attribution = np.array([1.0, 0, 0, -0.5, 0, 0, 0, 0, 0.25])
    array = np.asarray(series_chart(series, attribution, size=SIZE)).astype(int)
    row = TOP + 5                                            # above the line, inside the band
    colours = apply_colormap(np.array([1.0, -0.5, 0.25]), cmap="blue_grey_red").astype(float)
    for step, colour, weight in zip((0, 3, 8), colours, (1.0, 0.5, 0.25), strict=True):
        expected = np.round(255 - 0.9 * weight * (255 - colour))
        column = _column(step, n) + (1 if step == 0 else -1 if step == n - 1 else 0)
        np.testing.assert_array_equal(array[row, column], expected)
    assert (array[row, _column(5, n)] == 255).all()          # map 0: white
    assert array[row, _column(0, n) + 1, 0] > array[row, _column(0, n) + 1, 2]  # +: red
    assert array[row, _column(3, n), 2] > array[row, _column(3, n), 0]   # negative: blue


def test_the_line_is_where_the_series_says_and_coloured_by_the_map_in_line_mode():
    series = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    attribution = np.array([-1.0, -1.0, 0.0, 1.0, 1.0])
    array = np.asarray(series_chart(series, attribution, mode="line", size=SIZE)).astype(int)
    red, blue = apply_colormap(np.array([1.0, -1.0]), cmap="blue_grey_red").astype(int)
    red_pixels = np.argwhere((array == red).all(axis=-1))
    blue_pixels = np.argwhere((array == blue).all(axis=-1))
    red_line = red_pixels[red_pixels[:, 1] < RIGHT]          # the colour bar is right of it
    blue_line = blue_pixels[blue_pixels[:, 1] < RIGHT]
    assert len(red_line) > 20 and len(blue_line) > 20
    # blue early and low, red late and high (image rows grow downwards)
    assert blue_line[:, 1].max() < red_line[:, 1].min()
    assert blue_line[:, 0].min() > red_line[:, 0].max()


def test_a_time_axis_moves_the_labels_only():
    series = np.sin(np.linspace(0, 3, 30))
    attribution = np.cos(np.linspace(0, 3, 30))
    plain = np.asarray(series_chart(series, attribution, size=SIZE))
    years = np.asarray(series_chart(series, attribution, size=SIZE,
                                    time=1900 + np.arange(30)))
    np.testing.assert_array_equal(plain[TOP:BOTTOM + 1], years[TOP:BOTTOM + 1])
    assert (plain[BOTTOM + 2:] != years[BOTTOM + 2:]).any()


def test_channels_either_side_and_per_channel_maps_summed_in_the_band():
    rng = np.random.default_rng(0)
    series, attribution = rng.normal(size=(2, 20)), rng.normal(size=(2, 20))
    first = np.asarray(series_chart(series, attribution, channel_axis=0, size=SIZE))
    last = np.asarray(series_chart(series.T, attribution.T, channel_axis=-1, size=SIZE))
    np.testing.assert_array_equal(first, last)
    summed = np.asarray(series_chart(series, attribution.sum(axis=0), channel_axis=0,
                                     size=SIZE))
    np.testing.assert_array_equal(first, summed)


def test_an_all_zero_map_gives_a_white_band_and_a_sequential_map_shows_magnitude():
    array = np.asarray(series_chart(np.zeros(10), np.zeros(10), size=SIZE)).astype(int)
    assert (array[TOP + 5, LEFT + 2:RIGHT - 2] == 255).all()
    signed = np.asarray(series_chart(np.zeros(4), [1.0, 0, 0, -1.0], cmap="viridis",
                                     size=SIZE)).astype(int)
    np.testing.assert_array_equal(signed[TOP + 5, LEFT + 1], signed[TOP + 5, RIGHT - 1])


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda: series_chart(np.ones((2, 5)), np.ones(5)), ValueError,
     r"expected a 1-D series \(T,\) with channel_axis=None"),
    (lambda: series_chart(np.ones((2, 2, 5)), np.ones(5), channel_axis=0), ValueError,
     r"expected a 2-D series"),
    (lambda: series_chart(np.ones(1), np.ones(1)), ValueError, r"at least 2 time steps"),
    (lambda: series_chart(np.ones(5), np.ones(4)), ValueError,
     r"attribution: expected shape \(5,\)"),
    (lambda: series_chart(np.ones(5), [1, 1, np.inf, 1, 1]), ValueError, r"finite"),
    (lambda: series_chart(np.ones(5), np.ones(5), mode="dots"), ValueError,
     r"mode to be one of 'band', 'line'"),
    (lambda: series_chart(np.ones(5), np.ones(5), cmap="nope"), ValueError, r"nope"),
    (lambda: series_chart(np.ones(5), np.ones(5), cmap=3), TypeError, r"cmap"),
    (lambda: series_chart(np.ones(3), np.ones(3), time=[0, 2, 1]), ValueError,
     r"strictly increasing"),
    (lambda: series_chart(np.ones(3), np.ones(3), time=[0, 1]), ValueError,
     r"time: expected shape \(3,\)"),
    (lambda: series_chart(np.ones(3), np.ones(3), size=(100, 100)), ValueError,
     r"at least \(240, 160\)"),
    (lambda: series_chart(np.ones(3), np.ones(3), names=["a", "b"]), ValueError,
     r"names: expected 1 strings"),
    (lambda: series_chart(np.ones(3), np.ones(3), clip_percentile=0), ValueError,
     r"clip_percentile in \(0, 100\]"),
    (lambda: series_chart(np.ones((2, 3)), np.ones((2, 3)), channel_axis=2), ValueError,
     r"channel_axis in \[-2, 1\]"),
    (lambda: series_chart(np.ones(3), np.ones(3), ylabel=None), TypeError,
     r"ylabel: expected a string"),
])
def test_bad_input_is_refused(call, error, message):
    with pytest.raises(error, match=message):
        call()
