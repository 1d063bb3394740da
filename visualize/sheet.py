"""Summary sheets: one labelled row of pictures per input, for many inputs at a glance.

A sheet is a table: a text column on the left (the input's name, the class explained and
its score, say) and one cell per picture (the input, its saliency map, the overlay), with a
title above each column. Small pictures are enlarged by a whole factor with nearest
neighbour, so that each pixel of a 28 x 28 map stays a sharp square; large ones are shrunk
to the cell, keeping their aspect ratio. :func:`pages` splits many rows into sheets of a
readable height.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

from numpy.typing import ArrayLike
from PIL import Image, ImageDraw, ImageFont

from visualize.render import to_image

__all__ = ["fit_to_cell", "pages", "summary_sheet"]

_BACKGROUND = (255, 255, 255)
_TEXT_COLOUR = (0, 0, 0)
_TITLE_COLOUR = (60, 60, 60)
_RULE_COLOUR = (215, 215, 215)
_RESAMPLING = getattr(Image, "Resampling", Image)  # Pillow < 9.1 has no Image.Resampling
_ELLIPSIS = "..."


def _check_int(value: object, *, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"expected {name} to be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"expected {name} >= {minimum}, got {value}")
    return int(value)


def _check_texts(texts: object, *, name: str, expected: int, per: str) -> list[str]:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise TypeError(f"expected {name} to be a list of strings, got {type(texts).__name__}")
    if not all(isinstance(text, str) for text in texts):
        kinds = sorted({type(text).__name__ for text in texts if not isinstance(text, str)})
        raise TypeError(f"expected {name} to be a list of strings, got items of type {kinds}")
    if len(texts) != expected:
        raise ValueError(f"expected {name} to hold one string per {per} ({expected}), "
                         f"got {len(texts)}")
    return list(texts)


def fit_to_cell(picture: Image.Image, cell_size: int) -> Image.Image:
    """``picture`` resized to fit a ``cell_size`` square, keeping its aspect ratio.

    A picture that fits already is enlarged by the largest whole factor that still fits,
    with nearest neighbour (every pixel becomes a sharp ``k`` x ``k`` square); a larger one
    is shrunk with Lanczos filtering.

    Args:
        picture: a PIL image.
        cell_size: the side of the square, in pixels (at least 1).

    Returns:
        A PIL image no larger than ``cell_size`` on either side.

    Raises:
        TypeError: ``picture`` is not a PIL image, or ``cell_size`` is not an int.
        ValueError: ``cell_size`` below 1.

    Examples:
        >>> fit_to_cell(Image.new("L", (28, 20)), 224).size  # 8 x: 224 x 160
        (224, 160)
        >>> fit_to_cell(Image.new("L", (64, 64)), 224).size  # 3 x; 4 x would not fit
        (192, 192)
        >>> fit_to_cell(Image.new("L", (600, 300)), 224).size
        (224, 112)
    """
    if not isinstance(picture, Image.Image):
        raise TypeError(f"expected a PIL image, got {type(picture).__name__}")
    cell_size = _check_int(cell_size, name="cell_size", minimum=1)
    long_side = max(picture.size)
    if long_side <= cell_size:
        factor = cell_size // long_side
        if factor == 1:
            return picture
        return picture.resize((picture.width * factor, picture.height * factor),
                              _RESAMPLING.NEAREST)
    scale = cell_size / long_side
    size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    return picture.resize(size, _RESAMPLING.LANCZOS)


def pages(count: int, per_page: int) -> list[range]:
    """Split ``count`` rows into pages of at most ``per_page``, as evenly as possible.

    The pages differ in length by at most one row (48 rows at 20 a page are 16 + 16 + 16,
    not 20 + 20 + 8), so no sheet is left with a lone row.

    Args:
        count: the number of rows (0 gives no pages).
        per_page: the most rows a page holds (at least 1).

    Returns:
        The rows of each page, as ranges of row indices, in order.

    Raises:
        TypeError: ``count`` or ``per_page`` is not an int.
        ValueError: ``count`` below 0 or ``per_page`` below 1.

    Examples:
        >>> [len(page) for page in pages(48, 20)]
        [16, 16, 16]
        >>> pages(3, 20)
        [range(0, 3)]
    """
    count = _check_int(count, name="count", minimum=0)
    per_page = _check_int(per_page, name="per_page", minimum=1)
    if count == 0:
        return []
    n_pages = math.ceil(count / per_page)
    bounds = [round(page * count / n_pages) for page in range(n_pages + 1)]
    return [range(start, stop) for start, stop in zip(bounds[:-1], bounds[1:], strict=True)]


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1: a scalable font
    except TypeError:  # pragma: no cover - older Pillow: the fixed bitmap font
        return ImageFont.load_default()


def _text_width(draw: ImageDraw.ImageDraw, text: str,
                font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> int:
    return math.ceil(draw.textlength(text, font=font)) if text else 0


def _shorten(draw: ImageDraw.ImageDraw, text: str,
             font: ImageFont.ImageFont | ImageFont.FreeTypeFont, width: int) -> str:
    """``text``, its middle replaced by "..." until it fits ``width`` pixels."""
    if _text_width(draw, text, font) <= width:
        return text
    keep = len(text)
    while keep > 0:
        keep -= 1
        head = text[: (keep + 1) // 2]
        tail = text[len(text) - keep // 2:] if keep // 2 else ""
        candidate = head + _ELLIPSIS + tail
        if _text_width(draw, candidate, font) <= width:
            return candidate
    return _ELLIPSIS


def summary_sheet(
    rows: Sequence[Sequence[ArrayLike | Image.Image]],
    *,
    labels: Sequence[str],
    titles: Sequence[str] | None = None,
    heading: str | None = None,
    cell_size: int = 224,
    label_width: int = 240,
    font_size: int = 16,
    padding: int = 8,
) -> Image.Image:
    """A table of pictures: one row per input, a text label left of each row.

    Each picture is converted with :func:`~visualize.to_image` (arrays in any range or
    layout work) and fitted into a ``cell_size`` square with :func:`fit_to_cell`. Each
    label may hold several lines (``"\\n"``); a line too long for ``label_width`` keeps its
    beginning and end, with "..." in the middle (file names stay recognisable). Thin rules
    separate the rows.

    Args:
        rows: one list of pictures per row, every row as long.
        labels: one text per row.
        titles: one title per picture column, drawn above the first row; or None.
        heading: a line drawn above everything (the method, the page); or None.
        cell_size: the side of each picture's square cell, in pixels.
        label_width: the width of the label column, in pixels.
        font_size: the size of the text, in pixels (Pillow >= 10.1; older Pillow draws its
            fixed bitmap font).
        padding: pixels between cells and around the sheet.

    Returns:
        A PIL RGB image of width ``label_width + columns * cell_size + (columns + 2) *
        padding``.

    Raises:
        ValueError: no rows, an empty row or rows of different lengths, a number of
            labels or titles that does not match, sizes below 1 (padding below 0), or any
            error of :func:`~visualize.to_image`.
        TypeError: rows that are not lists, labels or titles that are not lists of
            strings, sizes that are not ints.

    Examples:
        >>> import numpy as np
        >>> digit = np.eye(28)
        >>> sheet = summary_sheet([[digit, digit], [digit, digit]], labels=["a", "b"],
        ...                       titles=["input", "map"], cell_size=112, padding=4)
        >>> sheet.width == 240 + 2 * 112 + 4 * 4, sheet.mode
        (True, 'RGB')
    """
    if isinstance(rows, (str, Image.Image)) or not isinstance(rows, Sequence):
        raise TypeError(f"expected rows to be a list of lists of pictures, got "
                        f"{type(rows).__name__}")
    if len(rows) == 0:
        raise ValueError("expected at least one row, got none")
    if not all(isinstance(row, (list, tuple)) for row in rows):
        raise TypeError("expected every row to be a list of pictures, got "
                        + ", ".join(sorted({type(row).__name__ for row in rows})))
    lengths = sorted({len(row) for row in rows})
    if lengths[0] == 0 or len(lengths) > 1:
        raise ValueError(f"expected rows of one and the same non-zero length, got lengths "
                         f"{lengths}")
    n_columns = lengths[0]
    labels = _check_texts(labels, name="labels", expected=len(rows), per="row")
    if titles is not None:
        titles = _check_texts(titles, name="titles", expected=n_columns, per="column")
    if heading is not None and not isinstance(heading, str):
        raise TypeError(f"expected heading to be a string or None, got {type(heading).__name__}")
    cell_size = _check_int(cell_size, name="cell_size", minimum=1)
    label_width = _check_int(label_width, name="label_width", minimum=1)
    font_size = _check_int(font_size, name="font_size", minimum=1)
    padding = _check_int(padding, name="padding", minimum=0)
    cells = [[fit_to_cell(to_image(picture).convert("RGB"), cell_size) for picture in row]
             for row in rows]

    font = _font(font_size)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    ascent_box = probe.textbbox((0, 0), "Ag", font=font)
    line_height = math.ceil(ascent_box[3]) + max(2, font_size // 4)
    heading_height = line_height + padding if heading else 0
    titles_height = line_height + padding if titles else 0
    row_height = max(cell_size, line_height * max(label.count("\n") + 1 for label in labels))
    top = padding + heading_height + titles_height
    width = label_width + n_columns * cell_size + (n_columns + 2) * padding
    height = top + len(rows) * (row_height + padding)
    sheet = Image.new("RGB", (width, height), _BACKGROUND)
    draw = ImageDraw.Draw(sheet)

    def column_left(column: int) -> int:
        return 2 * padding + label_width + column * (cell_size + padding)

    if heading:
        draw.text((padding, padding), _shorten(draw, heading, font, width - 2 * padding),
                  fill=_TEXT_COLOUR, font=font)
    for column, title in enumerate(titles or ()):
        text = _shorten(draw, title, font, cell_size)
        left = column_left(column) + (cell_size - _text_width(draw, text, font)) // 2
        draw.text((left, padding + heading_height), text, fill=_TITLE_COLOUR, font=font)
    for index, (label, row_cells) in enumerate(zip(labels, cells, strict=True)):
        row_top = top + index * (row_height + padding)
        if index:
            rule = row_top - (padding + 1) // 2
            draw.line([(padding, rule), (width - padding, rule)], fill=_RULE_COLOUR)
        lines = label.split("\n")
        text_top = row_top + (row_height - line_height * len(lines)) // 2
        for number, line in enumerate(lines):
            draw.text((padding, text_top + number * line_height),
                      _shorten(draw, line, font, label_width), fill=_TEXT_COLOUR, font=font)
        for column, cell in enumerate(row_cells):
            sheet.paste(cell, (column_left(column) + (cell_size - cell.width) // 2,
                               row_top + (row_height - cell.height) // 2))
    return sheet
