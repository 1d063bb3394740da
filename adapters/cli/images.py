"""Reading ``saliency explain``'s images into one channels-last batch."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import CommandError

__all__ = ["read_images"]


def read_images(
    paths: Sequence[str],
    *,
    channels: int,
    size: tuple[int, int] | None,
    mean: Sequence[float] | None,
    std: Sequence[float] | None,
) -> np.ndarray:
    """Image files as one float32 batch ``(N, H, W, channels)``, scaled to [0, 1].

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
        CommandError: if a file is missing or is not an image, the sizes differ without
            ``size``, or ``mean``/``std`` have the wrong number of values (or ``std`` a
            value that is not positive).

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

    image: Image.Image  # Image.open gives an ImageFile, convert and resize an Image
    arrays = []
    for name in paths:
        if not Path(name).is_file():
            raise CommandError(f"--input: no such file: {name}")
        try:
            with Image.open(name) as image:
                image = image.convert("RGB" if channels == 3 else "L")
                if size is not None:
                    # Pillow sets its resampling constants at import; its annotations miss them
                    image = image.resize(
                        (size[1], size[0]), Image.BILINEAR)  # type: ignore[attr-defined]
                array = np.asarray(image, dtype=np.float32) / 255.0
        except (UnidentifiedImageError, OSError) as error:
            raise CommandError(f"--input: cannot read {name} as an image: {error}") from None
        arrays.append(array.reshape(*array.shape[:2], channels))
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise CommandError(f"--input: images of different sizes {sorted(shapes)}; pass --size H W")
    x = np.stack(arrays)
    for name, values in (("mean", mean), ("std", std)):
        if values is not None and len(values) not in (1, channels):
            raise CommandError(f"--{name}: expected 1 or {channels} values, got {len(values)}")
    if mean is not None:
        x = x - np.asarray(mean, dtype=np.float32)
    if std is not None:
        if any(s <= 0 for s in std):
            raise CommandError(f"--std: expected positive values, got {list(std)}")
        x = x / np.asarray(std, dtype=np.float32)
    return x
