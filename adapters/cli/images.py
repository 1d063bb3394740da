"""Reading ``saliency explain``'s images into one channels-last batch.

How pixel values become numbers in [0, 1], by Pillow mode:

- 8-bit images (``L``, ``RGB``, ``P``, ``CMYK``, ...): divided by 255.
- 16-bit grey (``I;16`` and its byte orders): divided by 65535. ``I`` (32-bit integers,
  which is how some formats and Pillow versions hold 16-bit images) is divided by 65535 when
  its values lie in [0, 65535], and min-max scaled otherwise.
- Floating point (``F``): values already in [0, 1] are kept as they are; other values are
  min-max scaled to [0, 1] (a constant image becomes 0). Values that are not finite are
  refused.
- Images with transparency (``RGBA``, ``LA``, ``PA``, or a palette or colour key with
  transparency) are composited onto black using their alpha channel, so a transparent
  background reads as 0, not as whatever colour the invisible pixels happen to hold.
- The EXIF orientation tag is applied first, so images are read the way viewers show them.

Grey images read with ``channels=3`` repeat their one channel; colour images read with
``channels=1`` are converted by Pillow's luma (ITU-R 601-2) weights.

What ``--input`` names (:func:`expand_inputs`): files, folders and glob patterns. A folder
stands for the image files directly inside it (by suffix, :data:`IMAGE_SUFFIXES`, in natural
order: ``2.png`` before ``10.png``); a pattern (``*``, ``?``, ``[...]``, ``**`` for any depth)
is expanded here too, for shells that leave it as it is (and on Windows), and stands for the
image files it matches (and the image files inside the folders it matches). Other files in
a folder or matched by a pattern are skipped and counted; a file named on its own is always
read, so that a misnamed image is reported rather than skipped.
"""

from __future__ import annotations

import glob
import os
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import CommandError

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["IMAGE_SUFFIXES", "Inputs", "check_size", "expand_inputs", "read_images"]

#: The file suffixes (compared without regard to case) that count as images in a folder or
#: among a pattern's matches: the raster formats Pillow reads without extra software.
IMAGE_SUFFIXES = (
    ".png", ".apng", ".jpg", ".jpeg", ".jpe", ".jfif", ".bmp", ".dib", ".gif", ".tif",
    ".tiff", ".webp", ".avif", ".ppm", ".pgm", ".pbm", ".pnm", ".pfm", ".tga", ".qoi",
    ".jp2", ".j2k", ".jpx", ".jpc", ".j2c", ".jpf", ".sgi", ".rgb", ".rgba", ".bw", ".pcx",
    ".ico", ".psd", ".dds", ".ras", ".im", ".msp", ".xbm",
)

_GLOB_CHARACTERS = re.compile(r"[*?\[]")

#: The modes holding one channel of more than 8 bits, read without going through 8 bits.
_WIDE_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")


@dataclass(frozen=True)
class Inputs:
    """What ``--input`` named, expanded.

    Attributes:
        paths: the image files, in order: the arguments' order, and within a folder or a
            pattern natural order; each file once (the first time it is named).
        skipped: how many files in the folders and among the patterns' matches were not
            images (by suffix, or hidden), and were left out.
        repeated: how many files were named again (by another argument) and left out.
    """

    paths: list[str]
    skipped: int = 0
    repeated: int = 0


def expand_inputs(items: Sequence[str]) -> Inputs:
    """The image files that ``--input``'s files, folders and glob patterns name.

    An existing path is taken as it is, even if its name holds glob characters; a folder
    stands for the image files directly inside it; anything else holding ``*``, ``?`` or
    ``[`` is a pattern (``**`` matches folders at any depth). A leading ``~`` is the home
    folder. The module docstring says which files count as images.

    Args:
        items: the ``--input`` arguments.

    Returns:
        The files, with the numbers of files skipped and named twice.

    Raises:
        CommandError: if an item is neither a file, a folder nor a pattern matching
            something; a folder holds no image files; or a pattern matches no image file.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> root = Path(tempfile.mkdtemp())
        >>> for name in ("10.png", "2.png"):
        ...     Image.new("L", (2, 2)).save(root / name)
        >>> (root / "notes.txt").write_text("x")
        1
        >>> found = expand_inputs([str(root)])
        >>> [Path(p).name for p in found.paths], found.skipped
        (['2.png', '10.png'], 1)
    """
    paths: list[str] = []
    seen: set[str] = set()
    skipped = repeated = 0
    for item in items:
        given = os.path.expanduser(item)
        if os.path.isfile(given):
            found, left_out = [given], 0
        elif os.path.isdir(given):
            found, left_out = _images_in(given)
            if not found:
                raise CommandError(f"--input: no image files in the folder {item}"
                                   + _skipped_note(left_out))
        elif _GLOB_CHARACTERS.search(given):
            found, left_out = _images_matching(given)
            if not found:
                raise CommandError(f"--input: no image files match {item!r}"
                                   + _skipped_note(left_out))
        else:
            raise CommandError(f"--input: no such file: {item}")
        skipped += left_out
        for path in found:
            key = os.path.normcase(os.path.abspath(path))
            if key in seen:
                repeated += 1
                continue
            seen.add(key)
            paths.append(path)
    return Inputs(paths, skipped, repeated)


def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES


def _natural_key(path: str) -> list[tuple[int, int | str]]:
    """Sort key: runs of digits by value, the rest by its case-folded text."""
    return [(0, int(part)) if part.isdigit() else (1, part.casefold())
            for part in re.split(r"(\d+)", path) if part]


def _images_in(folder: str) -> tuple[list[str], int]:
    """The image files directly in ``folder`` (natural order), and how many other files."""
    try:
        entries = [entry for entry in os.scandir(folder) if entry.is_file()]
    except OSError as error:
        raise CommandError(f"--input: cannot list the folder {folder}: {error}") from None
    images = sorted((entry.path for entry in entries if _is_image_name(entry.name)),
                    key=_natural_key)
    return images, len(entries) - len(images)


def _images_matching(pattern: str) -> tuple[list[str], int]:
    """The image files ``pattern`` matches (or holds in a matched folder), and the rest."""
    images: list[str] = []
    skipped = 0
    for match in sorted(glob.glob(pattern, recursive=True), key=_natural_key):
        if os.path.isdir(match):
            inside, left_out = _images_in(match)
            images += inside
            skipped += left_out
        elif _is_image_name(os.path.basename(match)):
            images.append(match)
        else:
            skipped += 1
    return images, skipped


def _skipped_note(count: int) -> str:
    if not count:
        return ""
    return f" ({count} other file{'s' if count != 1 else ''} skipped)"


def check_size(size: Sequence[int] | None) -> None:
    """Refuse a ``--size`` that is not two positive integers within Pillow's pixel limit.

    Raises:
        CommandError: if ``size`` has a value below 1, or more pixels than
            ``PIL.Image.MAX_IMAGE_PIXELS`` (Pillow's decompression bomb limit).

    Example:
        >>> check_size((28, 28))
        >>> try:
        ...     check_size((0, 28))
        ... except CommandError as error:
        ...     print(error)
        --size: expected two positive integers H W, got 0 28
    """
    if size is None:
        return
    from PIL import Image

    if len(size) != 2 or any(value < 1 for value in size):
        raise CommandError("--size: expected two positive integers H W, got "
                           + " ".join(str(value) for value in size))
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and size[0] * size[1] > limit:
        raise CommandError(f"--size: expected at most {limit} pixels, got {size[0]} x "
                           f"{size[1]} = {size[0] * size[1]}")


def read_images(
    paths: Sequence[str],
    *,
    channels: int,
    size: tuple[int, int] | None,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
) -> np.ndarray:
    """Image files as one float32 batch ``(N, H, W, channels)``, scaled to [0, 1].

    The module docstring says how each Pillow mode is scaled.

    Args:
        paths: the image files (any format Pillow reads).
        channels: 1 to read them grey, 3 for RGB.
        size: ``(H, W)`` to resize every image to (bilinear), or None to keep the sizes,
            which must then agree.
        mean: subtracted after scaling, one value or one per channel; or None.
        std: divides after ``mean``, one positive value or one per channel; or None.

    Returns:
        float32 ``(len(paths), H, W, channels)``.

    Raises:
        CommandError: if a file is missing or is not an image (or is larger than Pillow's
            decompression bomb limit, or holds values that are not finite), ``size`` is
            not two positive integers, the sizes differ without ``size``, or
            ``mean``/``std`` have the wrong number of values (or ``std`` a value that is
            not positive).

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> path = Path(tempfile.mkdtemp()) / "white.png"
        >>> Image.new("L", (5, 4), color=255).save(path)
        >>> x = read_images([str(path)], channels=3, size=None, mean=[0.5], std=[0.5])
        >>> x.shape, float(x.min()), float(x.max())
        ((1, 4, 5, 3), 1.0, 1.0)
    """
    from PIL import Image, UnidentifiedImageError

    check_size(size)
    for name, values in (("mean", mean), ("std", std)):
        if values is not None and len(values) not in (1, channels):
            raise CommandError(f"--{name}: expected 1 or {channels} values, got {len(values)}")
    if std is not None and any(s <= 0 for s in std):
        raise CommandError(f"--std: expected positive values, got {list(std)}")
    arrays = []
    for name in paths:
        if not Path(name).is_file():
            raise CommandError(f"--input: no such file: {name}")
        try:
            with warnings.catch_warnings():
                # an image over MAX_IMAGE_PIXELS (but under twice that) only warns
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(name) as image:
                    array = _pixels(image, channels=channels, size=size)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise CommandError(f"--input: {name} is too large to read safely: {error}") from None
        except (UnidentifiedImageError, OSError, ValueError) as error:
            raise CommandError(f"--input: cannot read {name} as an image: {error}") from None
        if not np.isfinite(array).all():
            raise CommandError(f"--input: expected finite pixel values, got NaN or infinity "
                               f"in {name}")
        arrays.append(array)
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise CommandError(f"--input: images of different sizes {sorted(shapes)}; pass --size H W")
    x = np.stack(arrays)
    if mean is not None:
        x = x - np.asarray(mean, dtype=np.float32)
    if std is not None:
        x = x / np.asarray(std, dtype=np.float32)
    return x


def _pixels(image: Image.Image, *, channels: int, size: tuple[int, int] | None) -> np.ndarray:
    """One opened image as float32 ``(H, W, channels)`` in [0, 1]; see the module docstring."""
    from PIL import Image, ImageOps

    # Pillow sets its resampling constants at import; its annotations miss them
    bilinear = Image.BILINEAR  # type: ignore[attr-defined]
    image = ImageOps.exif_transpose(image)
    if image.mode in _WIDE_MODES:
        grey = _unit_range(np.asarray(image, dtype=np.float64), image.mode)
        if size is not None:
            resized = Image.fromarray(grey.astype(np.float32), mode="F").resize(
                (size[1], size[0]), bilinear)
            grey = np.asarray(resized, dtype=np.float64)
        array = np.repeat(grey[..., None], channels, axis=-1)
        return array.astype(np.float32)
    if image.has_transparency_data:
        rgba = image.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(black, rgba)
    image = image.convert("RGB" if channels == 3 else "L")
    if size is not None:
        image = image.resize((size[1], size[0]), bilinear)
    array = np.asarray(image, dtype=np.float32) / 255.0
    return array.reshape(*array.shape[:2], channels)


def _unit_range(values: np.ndarray, mode: str) -> np.ndarray:
    """The pixels of a one-channel wide ``mode`` scaled to [0, 1]."""
    if not np.isfinite(values).all():
        return values  # refused by the caller, with the file's name
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if mode.startswith("I;16") or (mode == "I" and low >= 0 and high <= 65535):
        return values / 65535.0
    if mode == "F" and low >= 0 and high <= 1:
        return values
    if high == low:
        return np.zeros_like(values)
    return (values - low) / (high - low)
