"""visualize.tabular.feature_bar_chart: bars where their values say, and bad input refused."""

from __future__ import annotations

import numpy as np
import pytest

from visualize.tabular import NEGATIVE_COLOUR, POSITIVE_COLOUR, feature_bar_chart


def _bars(picture):
    """Each bar, top to bottom: (sign, first column, last column), from its pixels."""
    array = np.asarray(picture).astype(int)
    positive = (array == POSITIVE_COLOUR).all(axis=-1)
    negative = (array == NEGATIVE_COLOUR).all(axis=-1)
    found, previous = [], None
    for row in range(array.shape[0]):
        for sign, mask in ((1, positive), (-1, negative)):
            columns = np.flatnonzero(mask[row])
            if columns.size > 3:
                span = (sign, int(columns.min()), int(columns.max()))
                if previous != row - 1 or not found or found[-1][0] != sign:
                    found.append(span)
                previous = row
    return found


def _zero_column(picture):
    """The zero line: the column of the plot that is black from top to bottom."""
    array = np.asarray(picture).astype(int)
    black = (array == 0).all(axis=-1)
    return int(np.argmax(black.sum(axis=0)))


def test_bars_go_right_for_positive_left_for_negative_with_lengths_in_proportion():
    values = np.array([1.0, -2.0, 0.5, -0.25])
    picture = feature_bar_chart(values, ["a", "b", "c", "d"], show_values=False,
                                value_range=(-2.5, 2.5))
    bars = _bars(picture)
    assert [sign for sign, _, _ in bars] == [-1, 1, 1, -1]       # by magnitude: b, a, c, d
    zero = _zero_column(picture)
    for sign, first, last in bars:
        assert (first >= zero - 1) if sign > 0 else (last <= zero + 1)
    lengths = np.array([last - first + 1 for _, first, last in bars], dtype=float)
    np.testing.assert_allclose(lengths / lengths[0], [1.0, 0.5, 0.25, 0.125], atol=0.02)


def test_orders_and_top_k():
    values = np.array([0.3, -1.0, 0.9, 0.0, 0.5])
    signs = lambda **options: [s for s, _, _ in _bars(  # noqa: E731
        feature_bar_chart(values, show_values=False, **options))]
    assert signs() == [-1, 1, 1, 1]                    # |v|: -1, .9, .5, .3 (0 has no bar)
    assert signs(order="value") == [1, 1, 1, -1]       # .9, .5, .3, (0), -1
    assert signs(order="given") == [1, -1, 1, 1]
    assert signs(order=[4, 1]) == [1, -1]
    assert signs(top_k=2) == [-1, 1]
    one = feature_bar_chart(values, top_k=1)
    five = feature_bar_chart(values)
    assert one.width == five.width and five.height - one.height == 4 * (14 + 4)


def test_ties_keep_feature_order():
    values = np.array([1.0, -1.0, 1.0])
    assert [s for s, _, _ in _bars(feature_bar_chart(values, show_values=False))] == [1, -1, 1]


def test_one_value_range_draws_one_value_at_one_length():
    shared = (-1.0, 3.0)
    first = _bars(feature_bar_chart([1.0, 3.0], order="given", value_range=shared,
                                    show_values=False))
    second = _bars(feature_bar_chart([1.0, 0.1], order="given", value_range=shared,
                                     show_values=False))
    assert first[0] == second[0]
    # beyond the range a bar stops at its edge
    clipped = _bars(feature_bar_chart([10.0, 3.0], order="given", value_range=shared,
                                      show_values=False))
    assert clipped[0] == clipped[1]


def test_values_are_written_and_all_zero_values_draw_no_bar():
    quiet = np.asarray(feature_bar_chart([0.5, -0.5], show_values=False))
    loud = np.asarray(feature_bar_chart([0.5, -0.5], show_values=True))
    assert (loud != quiet).any()
    zeros = feature_bar_chart(np.zeros(3))
    assert _bars(zeros) == []
    assert np.isfinite(np.asarray(zeros, dtype=float)).all()


def test_long_names_are_shortened_and_the_picture_is_rgb():
    picture = feature_bar_chart([1.0, -1.0], ["x" * 300, "short"], width=480)
    assert picture.mode == "RGB" and picture.size[0] == 480


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda: feature_bar_chart([]), ValueError, r"values: expected a non-empty 1-D"),
    (lambda: feature_bar_chart(np.ones((2, 3))), ValueError, r"pick one input's row"),
    (lambda: feature_bar_chart([1.0, np.nan]), ValueError, r"finite values"),
    (lambda: feature_bar_chart(["a"]), TypeError, r"real numbers"),
    (lambda: feature_bar_chart([1.0, 2.0], ["a"]), ValueError, r"expected 2 names"),
    (lambda: feature_bar_chart([1.0], "a"), TypeError, r"names: expected a sequence"),
    (lambda: feature_bar_chart([1.0], [3]), TypeError, r"names: expected strings"),
    (lambda: feature_bar_chart([1.0], order="size"), ValueError, r"order: expected one of"),
    (lambda: feature_bar_chart([1.0], order=[0.5]), TypeError, r"integer feature indices"),
    (lambda: feature_bar_chart([1.0], order=[1]), ValueError, r"indices from 0 to 0"),
    (lambda: feature_bar_chart([1.0, 2.0], order=[1, 1]), ValueError, r"at most once"),
    (lambda: feature_bar_chart([1.0], top_k=0), ValueError, r"top_k: expected an integer"),
    (lambda: feature_bar_chart([1.0], top_k=2), ValueError, r"top_k: expected at most 1"),
    (lambda: feature_bar_chart([1.0], value_range=(0.5, 1.0)), ValueError,
     r"low <= 0 <= high"),
    (lambda: feature_bar_chart([1.0], value_range=(0.0, "1")), TypeError, r"two real"),
    (lambda: feature_bar_chart([1.0], width=100), ValueError, r"width: expected an integer"),
    (lambda: feature_bar_chart([1.0], ["n" * 60], width=240), ValueError,
     r"room for the bars"),
    (lambda: feature_bar_chart([1.0], show_values="yes"), TypeError, r"True or False"),
    (lambda: feature_bar_chart([1.0], title=3), TypeError, r"title: expected a string"),
])
def test_bad_input_is_refused(call, error, message):
    with pytest.raises(error, match=message):
        call()
