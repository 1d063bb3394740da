"""``visualize.sheet``: cells fitted by whole factors, pages of even length, the layout."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
from PIL import Image, ImageDraw

from visualize import sheet as sheet_module
from visualize.sheet import fit_to_cell, pages, summary_sheet

RED, BLUE = (255, 0, 0), (0, 0, 255)


def solid(colour, size=(4, 3)):
    return np.tile(np.array(colour, np.uint8), (*size, 1))


def test_docstring_examples_run():
    result = doctest.testmod(sheet_module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize(("size", "cell", "fitted"), [
    ((28, 28), 224, (224, 224)),
    ((28, 20), 224, (224, 160)),
    ((64, 64), 224, (192, 192)),  # 3 x: 4 x would not fit
    ((224, 100), 224, (224, 100)),  # fits exactly: kept
    ((600, 300), 224, (224, 112)),
    ((1, 1), 5, (5, 5)),
])
def test_fit_to_cell_sizes(size, cell, fitted):
    assert fit_to_cell(Image.new("RGB", size), cell).size == fitted


def test_enlarging_is_by_nearest_neighbour_exactly():
    values = np.random.default_rng(0).integers(0, 256, size=(7, 5, 3), dtype=np.uint8)
    fitted = np.asarray(fit_to_cell(Image.fromarray(values), 40))  # long side 7: 5 x
    np.testing.assert_array_equal(fitted, np.kron(values, np.ones((5, 5, 1), np.uint8)))


@pytest.mark.parametrize(("count", "per_page", "lengths"), [
    (0, 5, []),
    (1, 5, [1]),
    (5, 5, [5]),
    (6, 5, [3, 3]),
    (48, 20, [16, 16, 16]),
    (41, 20, [14, 13, 14]),
    (7, 1, [1] * 7),
])
def test_pages_are_even_and_cover_every_row_once(count, per_page, lengths):
    split = pages(count, per_page)
    assert [len(page) for page in split] == lengths
    assert [i for page in split for i in page] == list(range(count))
    assert all(len(page) <= per_page for page in split)


def test_layout_puts_each_picture_in_its_cell():
    rows = [[solid(RED), solid(BLUE)], [solid(BLUE), solid(RED)], [solid(RED), solid(RED)]]
    picture = summary_sheet(rows, labels=["one", "two", "three"], titles=["a", "b"],
                            heading="heading", cell_size=40, label_width=60, padding=5)
    pixels = np.asarray(picture)
    assert picture.width == 60 + 2 * 40 + 4 * 5
    # the centre of every cell holds its picture's colour (4 high, 3 wide, enlarged 10 x)
    height = picture.height
    row_height = 40 + 5
    top = height - 3 * row_height
    for r, row in enumerate(rows):
        for c, cell in enumerate(row):
            y = top + r * row_height + 20
            x = 2 * 5 + 60 + c * (40 + 5) + 20
            assert tuple(pixels[y, x]) == tuple(cell[0, 0]), (r, c)
    # 30 pixels wide in a 40-pixel cell, centred: 5 of white left and right
    left = 2 * 5 + 60
    first = pixels[top + 20, left:left + 40]
    assert (first[:5] == 255).all() and (first[5:35] == RED).all() and (first[35:] == 255).all()
    assert (pixels[top:top + 40, left + 20] == RED).all()  # 40 high: the whole cell


def test_rows_add_height_and_columns_add_width():
    def size(n_rows, n_columns):
        rows = [[np.zeros((8, 8))] * n_columns for _ in range(n_rows)]
        return summary_sheet(rows, labels=["x"] * n_rows, cell_size=32, padding=4).size

    (w1, h1), (w2, h2), (w3, _) = size(1, 1), size(3, 1), size(1, 3)
    assert h2 - h1 == 2 * (32 + 4) and w3 - w1 == 2 * (32 + 4) and w1 == w2


def test_long_labels_are_shortened_in_the_middle_and_stay_in_their_column():
    name = "a/very/long/folder/name/that/goes/on/and/on/photo_0001.png"
    picture = summary_sheet([[solid(BLUE)]], labels=[f"{name}\nclass 3"], label_width=120,
                            cell_size=40, padding=6)
    pixels = np.asarray(picture)
    # between the label column and the cell there is only white
    gap = pixels[:, 6 + 120 + 1:2 * 6 + 120]
    assert (gap == 255).all()
    assert (pixels[:, :6 + 120] != 255).any()  # the text is drawn
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    shortened = sheet_module._shorten(draw, name, sheet_module._font(16), 120)
    assert draw.textlength(shortened, font=sheet_module._font(16)) <= 120
    assert shortened.startswith("a/") and shortened.endswith("png") and "..." in shortened


def test_many_label_lines_make_the_row_taller_than_the_cell():
    short = summary_sheet([[solid(RED)]], labels=["x"], cell_size=20)
    tall = summary_sheet([[solid(RED)]], labels=["\n".join(["line"] * 6)], cell_size=20)
    assert tall.height > short.height


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"rows": []}, ValueError, "at least one row"),
    ({"rows": [[solid(RED)], []]}, ValueError, "same non-zero length"),
    ({"rows": [[solid(RED)], [solid(RED), solid(RED)]]}, ValueError, "same non-zero length"),
    ({"rows": [solid(RED)]}, TypeError, "every row to be a list"),
    ({"rows": "abc"}, TypeError, "list of lists"),
    ({"labels": ["a", "b"]}, ValueError, "one string per row"),
    ({"labels": [3]}, TypeError, "list of strings"),
    ({"titles": ["a", "b"]}, ValueError, "one string per column"),
    ({"cell_size": 0}, ValueError, "cell_size >= 1"),
    ({"cell_size": 2.5}, TypeError, "cell_size to be an int"),
    ({"padding": -1}, ValueError, "padding >= 0"),
    ({"heading": 3}, TypeError, "heading"),
    ({"rows": [[np.full((2, 2), np.nan)]]}, ValueError, "NaN"),
])
def test_bad_input_is_refused(kwargs, error, message):
    arguments = {"rows": [[solid(RED)]], "labels": ["a"], **kwargs}
    rows = arguments.pop("rows")
    with pytest.raises(error, match=message):
        summary_sheet(rows, **arguments)


def test_bad_pages_and_cells_are_refused():
    with pytest.raises(ValueError, match="per_page >= 1"):
        pages(3, 0)
    with pytest.raises(TypeError, match="count to be an int"):
        pages(2.0, 3)
    with pytest.raises(TypeError, match="PIL image"):
        fit_to_cell(np.zeros((2, 2)), 4)
