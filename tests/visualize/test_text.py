"""Tokens coloured by attribution (visualize.text): colours, wrapping, the colour bar, HTML.

Pixel checks read the picture itself: a token at the cap has the colour map's own colour,
a token of value 0 stays white, equal tokens wrap into as many lines as fit, and the colour
bar runs from blue through white to red. The HTML is checked for its colours and for
escaping (a ``<script>`` token is shown, not run).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import ImageDraw, ImageFont

from visualize import apply_colormap
from visualize.text import TokenHTML, text_html, text_image, token_colours

RED, BLUE, WHITE = (255, 0, 0), (0, 0, 255), (255, 255, 255)


def pixels(picture):
    return np.asarray(picture)


def runs(mask):
    """How many separate runs of True a 1-D mask has."""
    mask = np.asarray(mask, dtype=int)
    return int(((np.diff(np.concatenate([[0], mask])) == 1)).sum())


def colour_mask(array, colour):
    return (array == np.array(colour, dtype=np.uint8)).all(axis=-1)


def test_token_colours_blend_the_colour_map_with_white():
    values = np.array([-2.0, -1.0, 0.0, 0.5, 2.0])
    colours, cap = token_colours(values)
    assert cap == 2.0
    scaled = values / 2.0
    base = apply_colormap(scaled, cmap="blue_grey_red").astype(float)
    expected = np.round(255 - np.abs(scaled)[:, None] * (255 - base))
    np.testing.assert_array_equal(colours, expected.astype(np.uint8))
    assert tuple(colours[0]) == BLUE and tuple(colours[2]) == WHITE and tuple(colours[4]) == RED
    # a sequential map shows |map|: the sign does not matter
    sequential, _ = token_colours(values, cmap="viridis")
    np.testing.assert_array_equal(sequential[0], sequential[4])
    assert (token_colours(np.zeros(3))[0] == 255).all()  # an all-zero map: white, no NaN


def test_the_largest_values_take_the_colour_maps_ends_and_zero_stays_white():
    picture = text_image(["up", "zero", "down"], [3.0, 0.0, -3.0], colorbar=False)
    array = pixels(picture)
    red, blue = colour_mask(array, RED), colour_mask(array, BLUE)
    assert red.sum() > 50 and blue.sum() > 50
    # the red box is left of the blue one, on the same line
    red_columns, blue_columns = np.flatnonzero(red.any(axis=0)), np.flatnonzero(blue.any(axis=0))
    assert red_columns.max() < blue_columns.min()
    np.testing.assert_array_equal(np.flatnonzero(red.any(axis=1)),
                                  np.flatnonzero(blue.any(axis=1)))
    # between them the zero token: its box is white, its letters black
    middle = array[:, red_columns.max() + 6:blue_columns.min() - 6]
    assert not colour_mask(middle, RED).any() and not colour_mask(middle, BLUE).any()
    assert (middle.sum(axis=-1) == 0).any()


def test_ink_is_white_on_dark_boxes_and_black_on_light_ones():
    picture = text_image(["dark", "light"], [1.0, 0.05], colorbar=False, font_size=20)
    array = pixels(picture)
    red_columns = np.flatnonzero(colour_mask(array, RED).any(axis=0))
    box = array[:, red_columns.min():red_columns.max() + 1]
    assert colour_mask(box, WHITE).sum() > 10  # white letters inside the red box
    light = array[:, red_columns.max() + 8:]
    assert (light.sum(axis=-1) == 0).sum() > 10  # black letters on the light box


@pytest.mark.parametrize("width", [200, 320, 640])
def test_equal_tokens_wrap_into_as_many_lines_as_fit(width):
    n_tokens, font_size = 30, 14
    picture = text_image(["word"] * n_tokens, np.ones(n_tokens), width=width,
                         font_size=font_size, colorbar=False)
    font = ImageFont.load_default(size=font_size)
    box = ImageDraw.Draw(picture).textlength("word", font=font) + 6
    per_line = int((width - 16 + 4) // (box + 4))
    lines = -(-n_tokens // per_line)
    red = colour_mask(pixels(picture), RED)
    assert runs(red[:, 9]) == lines  # the first column of boxes: one box per line
    first_row = red[np.flatnonzero(red[:, 9])[0] + 2]
    assert runs(first_row) == per_line
    last_row = red[np.flatnonzero(red[:, 9])[-1] - 2]
    assert runs(last_row) == n_tokens - per_line * (lines - 1)


def test_a_token_wider_than_the_line_is_shortened():
    picture = text_image(["x" * 400], [1.0], width=160, colorbar=False)
    red = colour_mask(pixels(picture), RED)
    assert picture.width == 160 and red.any()
    assert np.flatnonzero(red.any(axis=0)).max() <= 160 - 8


def test_the_colour_bar_runs_from_blue_through_white_to_red():
    picture = text_image(["a"], [1.0], width=400)
    array = pixels(picture)
    bottom = array[-40:]
    red_cols = np.flatnonzero(colour_mask(bottom, RED).any(axis=0))
    blue_cols = np.flatnonzero(colour_mask(bottom, BLUE).any(axis=0))
    assert blue_cols.size and red_cols.size and blue_cols.max() < red_cols.min()
    row = bottom[np.flatnonzero(colour_mask(bottom, RED).any(axis=1))[0]]
    middle = row[(blue_cols.max() + red_cols.min()) // 2]
    assert middle.min() >= 245  # white (0) half way
    without = text_image(["a"], [1.0], width=400, colorbar=False)
    assert without.height < picture.height


def test_several_texts_share_one_scale_and_labels_add_lines():
    one = text_image(["small"], [1.0], colorbar=False)
    both = text_image([["small"], ["large"]], [[1.0], [4.0]], colorbar=False)
    array = pixels(both)
    assert not colour_mask(array, RED)[: array.shape[0] // 2].any()  # 1 of 4 is not the cap
    assert colour_mask(array, RED)[array.shape[0] // 2:].any()
    labelled = text_image([["small"], ["large"]], [[1.0], [4.0]], labels=["a", "b"],
                          colorbar=False)
    assert labelled.height > both.height > one.height
    padded = text_image([["a", "b"], ["c"]], np.array([[1.0, -1.0], [2.0, 99.0]]),
                        colorbar=False)  # row 1's padding (99) is left out of the scale
    assert colour_mask(pixels(padded), RED).any()


def test_html_escapes_tokens_labels_and_title():
    page = text_html(["<script>alert(1)</script>", "&", '"q"'], [1.0, -1.0, 0.0],
                     labels=["<img src=x onerror=alert(2)>"], title="<b>t</b>")
    assert isinstance(page, TokenHTML) and page._repr_html_() == str(page)
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<img" not in page and "&lt;img src=x onerror=alert(2)&gt;" in page
    assert "<b>" not in page and "&amp;</span>" in page and "&quot;q&quot;" in page


def test_html_colours_and_tooltips_match_the_token_colours():
    values = np.array([0.25, -2.0, 1.0])
    page = text_html(["a", "b", "c"], values, digits=2)
    found = re.findall(r'title="([^"]+)" style="background-color:rgb\((\d+),(\d+),(\d+)\);'
                       r'color:(#\w+)', page)
    colours, _ = token_colours(values)
    assert [tuple(int(c) for c in item[1:4]) for item in found] == [tuple(c) for c in
                                                                     colours.tolist()]
    assert [item[0] for item in found] == ["0.25", "-2", "1"]
    assert [item[4] for item in found] == ["#000", "#fff", "#000"]
    assert "linear-gradient" in page and "linear-gradient" not in text_html(
        ["a"], [1.0], colorbar=False)


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda: text_image("a film", [1.0]), TypeError, "split the text into tokens"),
    (lambda: text_image([], []), TypeError, "non-empty sequence"),
    (lambda: text_image(["a", 2], [1.0, 2.0]), TypeError, "strings"),
    (lambda: text_image(["a", "b"], [1.0]), ValueError, r"shape \(2,\), got shape \(1,\)"),
    (lambda: text_image(["a"], [np.nan]), ValueError, "finite"),
    (lambda: text_image(["a"], ["x"]), TypeError, "real numbers"),
    (lambda: text_image([["a"], ["b", "c"]], [[1.0]]), ValueError, "2 rows"),
    (lambda: text_image([["a"], ["b", "c"]], [[1.0], [1.0]]), ValueError, "text 1"),
    (lambda: text_image([["a"], ["b", "c"]], np.ones((2, 1))), ValueError, "at least 2"),
    (lambda: text_image(["a"], [1.0], cmap="nope"), ValueError, "nope"),
    (lambda: text_image(["a"], [1.0], cmap=3), TypeError, "colour map name"),
    (lambda: text_image(["a"], [1.0], width=100), ValueError, "at least 160"),
    (lambda: text_image(["a"], [1.0], font_size=2), ValueError, "at least 6"),
    (lambda: text_image(["a"], [1.0], labels=["x", "y"]), ValueError, "1 strings"),
    (lambda: text_image(["a"], [1.0], colorbar="yes"), TypeError, "True or False"),
    (lambda: text_image(["a"], [1.0], clip_percentile=0), ValueError, r"\(0, 100\]"),
    (lambda: text_html(["a"], [1.0], digits=0), ValueError, "at least 1"),
    (lambda: text_html(["a"], [1.0], title=1), TypeError, "title"),
], ids=lambda value: None)
def test_bad_input_is_refused(call, error, message):
    with pytest.raises(error, match=message):
        call()
