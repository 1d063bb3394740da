"""Rendering with Pillow: arrays to images, labelled figure grids, PNG files.

Images may be uint8 (shown as they are) or any other real dtype in any range (scaled
per image from its minimum to its maximum, so ImageNet-normalised inputs display
correctly), grey or RGB (uint8 RGBA too), channels last ``(H, W, C)`` or first
``(C, H, W)``.
"""

from __future__ import annotations

import contextlib
import math
import numbers
import os
import secrets
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from PIL import Image, ImageDraw, ImageFont

from visualize._checks import (
    as_real_array,
    channel_axis_index,
    check_ndim,
    divide_by_peak,
)

__all__ = ["grid", "save", "to_image", "to_uint8"]

_CHANNEL_COUNTS = (1, 3, 4)
_BACKGROUND = (255, 255, 255)
_TEXT_COLOUR = (0, 0, 0)
_RESAMPLING = getattr(Image, "Resampling", Image)  # Pillow < 9.1 has no Image.Resampling


def to_uint8(
    image: ArrayLike | Image.Image, *, channel_axis: int | str | None = "auto"
) -> np.ndarray:
    """Convert an image to a uint8 array ``(H, W)`` (grey) or ``(H, W, 3 or 4)``.

    uint8 values are kept as they are. Any other real dtype (float, int, bool) is
    scaled per image from its minimum (0) to its maximum (255) over all channels at once,
    never clipped after multiplying by 255, so inputs in any range (ImageNet-normalised,
    [0, 1], [0, 255], [-1, 1]) display correctly; a constant image gives zeros.

    Args:
        image: a 2-D grey image, a 3-D image with 1, 3 or 4 (RGBA, uint8 only) channels,
            or a PIL image.
        channel_axis: ``"auto"``: a 3-D image is channels-first ``(C, H, W)`` when its
            first axis is 1 or 3 and its last is not 1, 3 or 4, else channels-last; an
            int: the channel axis of a 3-D image; None: the image is 2-D, with no
            channel axis.

    Returns:
        uint8 ``(H, W)`` for one channel, else ``(H, W, C)`` with channels last.

    Raises:
        ValueError: not 2-D or 3-D, a channel count other than 1, 3 or 4, a float RGBA
            image, ``channel_axis`` out of range, NaN or infinity.
        TypeError: the image does not hold real numbers, or ``channel_axis`` is not
            ``"auto"``, None or an int.

    Examples:
        >>> import numpy as np
        >>> to_uint8(np.array([[-2.0, 0.0], [1.0, 2.0]])).tolist()
        [[0, 128], [191, 255]]
        >>> to_uint8(np.zeros((3, 4, 5))).shape  # channels first, detected
        (4, 5, 3)
    """
    if isinstance(image, Image.Image):
        image = _picture_to_array(image)
    values = as_real_array(image, name="image")
    check_ndim(values, allowed=(2, 3), name="image", layout="(H, W), (H, W, C) or (C, H, W)")
    values = _channels_last(values, channel_axis)
    if values.dtype == np.uint8:
        return values.copy()
    if values.ndim == 3 and values.shape[-1] == 4:
        raise ValueError(
            f"expected uint8 values for an image with an alpha channel (RGBA), "
            f"got dtype {values.dtype}"
        )
    return _min_max_to_uint8(values)


def _picture_to_array(picture: Image.Image) -> np.ndarray:
    if picture.mode in ("L", "RGB", "RGBA", "I", "I;16", "F"):
        return np.asarray(picture)
    has_alpha = "A" in picture.getbands() or "transparency" in picture.info
    return np.asarray(picture.convert("RGBA" if has_alpha else "RGB"))


def _channels_last(values: np.ndarray, channel_axis: object) -> np.ndarray:
    """Return ``values`` as ``(H, W)`` or ``(H, W, C)`` with C in 3, 4."""
    if channel_axis is None or (values.ndim == 2 and channel_axis == "auto"):
        if values.ndim != 2:
            raise ValueError(
                f"expected a 2-D image (H, W) with channel_axis=None, got shape {values.shape}"
            )
        return values
    if isinstance(channel_axis, str):
        if channel_axis != "auto":
            raise ValueError(
                f"expected channel_axis to be 'auto', None or an int, got {channel_axis!r}"
            )
        axis = _detect_channel_axis(values.shape)
    elif values.ndim == 2:
        raise ValueError(
            f"expected a 3-D image with channel_axis={channel_axis}, got shape {values.shape}"
        )
    else:
        axis = channel_axis_index(channel_axis, values.ndim)
    moved = np.moveaxis(values, axis, -1)
    if moved.shape[-1] not in _CHANNEL_COUNTS:
        raise ValueError(
            f"expected 1, 3 or 4 channels on axis {axis}, got {moved.shape[-1]} "
            f"(image shape {values.shape})"
        )
    return moved[..., 0] if moved.shape[-1] == 1 else moved


def _detect_channel_axis(shape: tuple[int, ...]) -> int:
    if shape[0] in (1, 3) and shape[-1] not in _CHANNEL_COUNTS:
        return 0
    if shape[-1] in _CHANNEL_COUNTS:
        return 2
    raise ValueError(
        f"expected 1 or 3 channels on the first axis or 1, 3 or 4 on the last, got shape {shape} "
        "(pass channel_axis to say where the channels are)"
    )


def _min_max_to_uint8(values: np.ndarray) -> np.ndarray:
    all_axes = tuple(range(values.ndim))
    scaled = divide_by_peak(values, axis=all_axes)
    low, high = float(np.min(scaled)), float(np.max(scaled))
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.rint((scaled - low) / (high - low) * 255).astype(np.uint8)


def to_image(
    image: ArrayLike | Image.Image, *, channel_axis: int | str | None = "auto"
) -> Image.Image:
    """Convert an image array (or a PIL image) to a PIL image ("L", "RGB" or "RGBA").

    Args:
        image: as in :func:`to_uint8`.
        channel_axis: as in :func:`to_uint8`.

    Returns:
        A PIL image: mode "L" for grey, "RGB" for 3 channels, "RGBA" for 4.

    Raises:
        ValueError: as in :func:`to_uint8`.
        TypeError: as in :func:`to_uint8`.

    Examples:
        >>> import numpy as np
        >>> picture = to_image(np.random.default_rng(0).normal(size=(3, 8, 6)))
        >>> picture.mode, picture.size  # size is (width, height)
        ('RGB', (6, 8))
    """
    pixels = to_uint8(image, channel_axis=channel_axis)
    return Image.fromarray(np.ascontiguousarray(pixels))


def grid(
    images: Sequence[ArrayLike | Image.Image | None]
    | Sequence[Sequence[ArrayLike | Image.Image | None]],
    *,
    titles: Sequence[str] | None = None,
    row_labels: Sequence[str] | None = None,
    ncols: int | None = None,
    cell_size: int | tuple[int, int] | None = None,
    padding: int = 4,
) -> Image.Image:
    """Lay images out in a labelled grid, like the paper's figures 3 and 4.

    Each cell is converted with :func:`to_image` (so arrays in any range or layout
    work), scaled to fit the cell keeping its aspect ratio (nearest neighbour when
    enlarging, so map pixels stay sharp; box averaging when shrinking) and centred.
    RGBA cells are shown over the white background. Titles and labels are drawn with
    Pillow's default font.

    Args:
        images: a flat list of images (numpy arrays or PIL images), laid out ``ncols``
            to a row, or a list of rows (lists of images, e.g. one row per input and one
            column per noise level). ``None`` leaves a cell empty.
        titles: one title per column, drawn above the first row.
        row_labels: one label per row, drawn left of it.
        ncols: images per row for a flat list; None puts them all in one row. Not
            allowed with a list of rows.
        cell_size: the size of every cell, an int (square) or ``(width, height)``; None
            uses the largest image's width and height.
        padding: pixels between cells and around the grid.

    Returns:
        A PIL RGB image.

    Raises:
        ValueError: no images, an empty row, a number of titles or labels that does not
            match the columns or rows, ``ncols`` with a list of rows, sizes below 1
            (padding below 0), or any error of :func:`to_image`.
        TypeError: ``images`` is not a list, or titles, labels or sizes of the wrong type.

    Examples:
        >>> import numpy as np
        >>> maps = [np.zeros((8, 8)), np.ones((8, 8)), np.eye(8)]
        >>> grid(maps, titles=["a", "b", "c"]).mode
        'RGB'
        >>> grid([maps, maps], padding=0).size  # 2 rows of 3 cells of 8 x 8 pixels
        (24, 16)
    """
    rows = _as_rows(images, ncols)
    pictures = [[_as_rgb_picture(cell) for cell in row] for row in rows]
    n_rows, n_columns = len(pictures), max(len(row) for row in pictures)
    titles = _check_labels(titles, n_columns, name="titles", per="column")
    row_labels = _check_labels(row_labels, n_rows, name="row_labels", per="row")
    cell_width, cell_height = _cell_size(cell_size, pictures)
    padding = _check_count(padding, name="padding", minimum=0)

    font = ImageFont.load_default()
    title_height = padding + _text_size(titles, font)[1] if titles else 0
    label_width = padding + _text_size(row_labels, font)[0] if row_labels else 0
    column_width = max(cell_width, _text_size(titles, font)[0]) if titles else cell_width

    canvas = Image.new(
        "RGB",
        (
            label_width + n_columns * column_width + (n_columns + 1) * padding,
            title_height + n_rows * cell_height + (n_rows + 1) * padding,
        ),
        _BACKGROUND,
    )
    draw = ImageDraw.Draw(canvas)

    def column_left(column: int) -> int:
        return label_width + padding + column * (column_width + padding)

    def row_top(row: int) -> int:
        return title_height + padding + row * (cell_height + padding)

    for column, title in enumerate(titles or ()):
        width = _text_size([title], font)[0]
        left = column_left(column) + (column_width - width) // 2
        draw.text((left, padding), title, fill=_TEXT_COLOUR, font=font, align="center")
    for row, label in enumerate(row_labels or ()):
        height = _text_size([label], font)[1]
        draw.text(
            (padding, row_top(row) + (cell_height - height) // 2),
            label,
            fill=_TEXT_COLOUR,
            font=font,
        )
    for row, row_pictures in enumerate(pictures):
        for column, picture in enumerate(row_pictures):
            if picture is None:
                continue
            fitted = _fit(picture, cell_width, cell_height)
            canvas.paste(
                fitted,
                (
                    column_left(column) + (column_width - fitted.width) // 2,
                    row_top(row) + (cell_height - fitted.height) // 2,
                ),
            )
    return canvas


def _as_rows(images: object, ncols: object) -> list[list[Any]]:
    """Split ``images`` (a flat list or a list of rows) into rows."""
    if isinstance(images, (np.ndarray, Image.Image, str)) or not isinstance(images, Sequence):
        raise TypeError(
            "expected a list of images or a list of rows of images, got "
            f"{type(images).__name__} (use list(batch) for a batch array)"
        )
    if len(images) == 0:
        raise ValueError("expected at least one image, got an empty list")
    is_row = [isinstance(item, (list, tuple)) for item in images]
    if all(is_row):
        if ncols is not None:
            raise ValueError(f"expected ncols=None with a list of rows, got ncols={ncols!r}")
        rows = [list(row) for row in images]
        if any(len(row) == 0 for row in rows):
            raise ValueError("expected every row to hold at least one image, got an empty row")
        return rows
    if any(is_row):
        raise ValueError(
            "expected either a flat list of images or a list of rows (lists), got a mix"
        )
    columns = len(images) if ncols is None else _check_count(ncols, name="ncols", minimum=1)
    return [list(images[start : start + columns]) for start in range(0, len(images), columns)]


def _as_rgb_picture(cell: Any) -> Image.Image | None:
    if cell is None:
        return None
    picture = to_image(cell)
    if picture.mode == "RGBA":
        flattened = Image.new("RGB", picture.size, _BACKGROUND)
        flattened.paste(picture, mask=picture.getchannel("A"))
        return flattened
    return picture.convert("RGB")


def _check_labels(labels: object, expected: int, *, name: str, per: str) -> list[str] | None:
    if labels is None:
        return None
    if isinstance(labels, str) or not isinstance(labels, Sequence):
        raise TypeError(f"expected {name} to be a list of strings, got {type(labels).__name__}")
    if not all(isinstance(label, str) for label in labels):
        kinds = sorted({type(label).__name__ for label in labels if not isinstance(label, str)})
        raise TypeError(f"expected {name} to be a list of strings, got items of type {kinds}")
    if len(labels) != expected:
        raise ValueError(
            f"expected {name} to hold one string per {per} ({expected}), got {len(labels)}"
        )
    return list(labels)


def _check_count(value: object, *, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"expected {name} to be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"expected {name} >= {minimum}, got {value}")
    return int(value)


def _cell_size(cell_size: object, pictures: list[list[Image.Image | None]]) -> tuple[int, int]:
    if cell_size is None:
        present = [picture for row in pictures for picture in row if picture is not None]
        if not present:
            raise ValueError("expected at least one image that is not None, got only None")
        return max(p.width for p in present), max(p.height for p in present)
    if isinstance(cell_size, (tuple, list)) and len(cell_size) == 2:
        width, height = cell_size
    elif isinstance(cell_size, numbers.Integral) and not isinstance(cell_size, bool):
        width = height = cell_size
    else:
        raise TypeError(
            f"expected cell_size to be an int or a (width, height) pair, got {cell_size!r}"
        )
    return (
        _check_count(width, name="cell_size width", minimum=1),
        _check_count(height, name="cell_size height", minimum=1),
    )


def _text_size(
    texts: Sequence[str], font: ImageFont.ImageFont | ImageFont.FreeTypeFont
) -> tuple[int, int]:
    """The width and height of the largest of ``texts`` drawn in ``font``."""
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    boxes = [draw.textbbox((0, 0), text, font=font) for text in texts]
    return math.ceil(max(box[2] for box in boxes)), math.ceil(max(box[3] for box in boxes))


def _fit(picture: Image.Image, width: int, height: int) -> Image.Image:
    """Resize ``picture`` to fit ``width`` x ``height``, keeping its aspect ratio."""
    scale = min(width / picture.width, height / picture.height)
    size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    if size == picture.size:
        return picture
    resample = _RESAMPLING.NEAREST if scale >= 1 else _RESAMPLING.BOX
    return picture.resize(size, resample)


def save(image: ArrayLike | Image.Image, path: str | os.PathLike[str]) -> Path:
    """Write an image (a PIL image or an array :func:`to_image` accepts) as a PNG file.

    Parent folders are created. The file is written under a temporary name in the same
    folder and then renamed, so a failure leaves no half-written file behind and an
    existing file is replaced in one step (keeping its permission bits). A symbolic link
    is followed: the file it points to is written, and the link stays a link.

    Args:
        image: a PIL image or an array as in :func:`to_image`.
        path: where to write; must end in ``.png``.

    Returns:
        The path written, as a :class:`pathlib.Path` (as given, not resolved).

    Raises:
        ValueError: ``path`` does not end in ``.png`` or names a folder, or any error of
            :func:`to_image`.
        TypeError: ``path`` is not a string or path.

    Examples:
        >>> import tempfile, numpy as np
        >>> from PIL import Image
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     written = save(np.eye(4), f"{folder}/figures/eye.png")
        ...     with Image.open(written) as loaded:
        ...         print(loaded.format, loaded.size)
        PNG (4, 4)
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"expected path to be a string or a path, got {type(path).__name__}")
    given = Path(path)
    if given.suffix.lower() != ".png":
        raise ValueError(f"expected a path ending in .png, got {str(given)!r}")
    picture = image if isinstance(image, Image.Image) else to_image(image)
    # Follow symbolic links (of the file and its folders) to the file they name, so that
    # the rename below replaces that file, not the link.
    try:
        target = given.resolve()
    except (OSError, RuntimeError) as error:  # a loop of links (RuntimeError before 3.13)
        raise ValueError(f"expected a path that leads to a file, got {str(given)!r} ({error})") \
            from None
    if target.is_dir():
        raise ValueError(f"expected a path to a file, got the folder {str(given)!r}")
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{secrets.token_hex(8)}.tmp")
    try:
        with open(temporary, "xb") as file:
            picture.save(file, format="PNG")
        with contextlib.suppress(FileNotFoundError):
            os.chmod(temporary, stat.S_IMODE(os.stat(target).st_mode))
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return given
