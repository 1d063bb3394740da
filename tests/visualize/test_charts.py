"""visualize.line_chart: curves drawn where their values say, and bad series refused."""

from __future__ import annotations

import numpy as np
import pytest

from visualize.charts import SERIES_COLOURS, line_chart


def _pixels_of(picture, colour):
    array = np.asarray(picture)
    return np.argwhere((array == np.array(colour, np.uint8)).all(axis=-1))


def test_a_rising_line_rises_and_series_take_their_colours():
    picture = line_chart([0, 1, 2, 3], {"up": [0, 1, 2, 3], "flat": [1.5, 1.5, 1.5, 1.5]},
                         size=(400, 300))
    assert picture.size == (400, 300) and picture.mode == "RGB"
    up = _pixels_of(picture, SERIES_COLOURS[0])
    flat = _pixels_of(picture, SERIES_COLOURS[1])
    assert len(up) > 100 and len(flat) > 100
    plot = up[(up[:, 1] > 60) & (up[:, 1] < 380)]  # leave the legend's sample line out
    left, right = plot[plot[:, 1] < 120], plot[plot[:, 1] > 300]
    assert left[:, 0].mean() > right[:, 0].mean()  # image rows grow downwards
    rows = flat[(flat[:, 1] > 60) & (flat[:, 1] < 300), 0]
    assert rows.max() - rows.min() <= 6  # one horizontal line (with its 5-pixel markers)


def test_nan_leaves_a_gap_and_pairs_bring_their_own_x():
    gap = line_chart(None, {"a": ([1, 2, 3, 4], [0.0, np.nan, 1.0, 2.0])}, log_x=True)
    assert gap.size == (480, 320)


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda: line_chart([0, 1], {}), TypeError, "non-empty mapping"),
    (lambda: line_chart([0, 1], {"a": [1, 2, 3]}), ValueError, "expected 2 values"),
    (lambda: line_chart(None, {"a": [1, 2]}), ValueError, r"expected \(x, y\) pairs"),
    (lambda: line_chart([0, 1], {"a": [1, 2]}, size=(100, 300)), ValueError, "at least 160"),
    (lambda: line_chart([0, 1], {"a": [1, 2]}, log_x=True), ValueError, "positive values"),
    (lambda: line_chart([0, 1], {"a": [1, 2]}, y_range=(1, 1)), ValueError, "low < high"),
    (lambda: line_chart([0, np.nan], {"a": [1, 2]}), ValueError, "finite"),
])
def test_bad_series_are_refused(call, error, message):
    with pytest.raises(error, match=message):
        call()
