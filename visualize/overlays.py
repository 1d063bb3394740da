"""Maps drawn over their image: Captum's "blended_heat_map", "masked_image" and
"alpha_scaling" modes, as three functions returning uint8 arrays.

``image`` is anything :func:`~visualize.to_uint8` accepts (any range, grey or RGB,
``(H, W, C)`` or ``(C, H, W)``); ``heat`` is one 2-D map ``(H, W)`` of the image's
spatial size, e.g. from :func:`~visualize.grayscale` (values in ``[0, 1]``) or
:func:`~visualize.diverging` (``[-1, 1]``, for :func:`overlay` with a diverging colour
map).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from PIL import Image

from visualize._checks import as_real_array, check_fraction, check_ndim, check_value_range
from visualize.colormaps import apply_colormap
from visualize.render import to_uint8

__all__ = ["alpha_scaling", "masked_image", "overlay"]


def overlay(
    image: ArrayLike | Image.Image,
    heat: ArrayLike,
    *,
    alpha: float = 0.5,
    cmap: str = "viridis",
    channel_axis: int | str | None = "auto",
) -> np.ndarray:
    """Blend a coloured heat map over an image: ``(1 - alpha) * image + alpha * colour``.

    Args:
        image: the input image (grey or RGB, any range, channels first or last).
        heat: a map ``(H, W)`` in the colour map's range (``[0, 1]``, or ``[-1, 1]`` for a
            diverging colour map such as ``"blue_grey_red"``).
        alpha: the weight of the heat map, in ``[0, 1]``.
        cmap: a colour map name, as in :func:`~visualize.apply_colormap`.
        channel_axis: the image's channel axis, as in :func:`~visualize.to_uint8`.

    Returns:
        uint8 RGB ``(H, W, 3)``.

    Raises:
        ValueError: ``heat`` not 2-D or not of the image's spatial size, values outside
            the colour map's range, ``alpha`` outside ``[0, 1]``, an unknown ``cmap``,
            an RGBA image, or any error of :func:`~visualize.to_uint8`.
        TypeError: arrays that do not hold real numbers, or options of the wrong type.

    Examples:
        >>> import numpy as np
        >>> image = np.zeros((1, 2), dtype=np.uint8)  # a black 1 x 2 grey image
        >>> overlay(image, np.array([[0.0, 1.0]]), alpha=0.5, cmap="grey").tolist()
        [[[0, 0, 0], [128, 128, 128]]]
    """
    weight = check_fraction(alpha, name="alpha")
    pixels = _rgb_pixels(image, channel_axis)
    colours = apply_colormap(_heat_like(heat, pixels), cmap=cmap)
    blended = (1.0 - weight) * pixels + weight * colours
    return np.rint(blended).astype(np.uint8)


def masked_image(
    image: ArrayLike | Image.Image, heat: ArrayLike, *, channel_axis: int | str | None = "auto"
) -> np.ndarray:
    """The image multiplied by a map in ``[0, 1]``: only the salient pixels stay visible.

    Args:
        image: the input image (grey or RGB, any range, channels first or last).
        heat: a map ``(H, W)`` in ``[0, 1]``, e.g. from :func:`~visualize.grayscale`.
        channel_axis: the image's channel axis, as in :func:`~visualize.to_uint8`.

    Returns:
        uint8 RGB ``(H, W, 3)``.

    Raises:
        ValueError: ``heat`` not 2-D, not of the image's spatial size, or outside
            ``[0, 1]``, an RGBA image, or any error of :func:`~visualize.to_uint8`.
        TypeError: arrays that do not hold real numbers.

    Examples:
        >>> import numpy as np
        >>> image = np.full((1, 2, 3), 200, dtype=np.uint8)
        >>> masked_image(image, np.array([[0.5, 1.0]])).tolist()
        [[[100, 100, 100], [200, 200, 200]]]
    """
    pixels = _rgb_pixels(image, channel_axis)
    weights = _unit_heat_like(heat, pixels)
    return np.rint(pixels * weights[..., np.newaxis]).astype(np.uint8)


def alpha_scaling(
    image: ArrayLike | Image.Image, heat: ArrayLike, *, channel_axis: int | str | None = "auto"
) -> np.ndarray:
    """The image with the map as its alpha channel: salient pixels opaque, others clear.

    Args:
        image: the input image (grey or RGB, any range, channels first or last).
        heat: a map ``(H, W)`` in ``[0, 1]``, e.g. from :func:`~visualize.grayscale`.
        channel_axis: the image's channel axis, as in :func:`~visualize.to_uint8`.

    Returns:
        uint8 RGBA ``(H, W, 4)``; alpha is ``round(255 * heat)``.

    Raises:
        ValueError: as in :func:`masked_image`.
        TypeError: as in :func:`masked_image`.

    Examples:
        >>> import numpy as np
        >>> image = np.full((1, 2, 3), 200, dtype=np.uint8)
        >>> alpha_scaling(image, np.array([[0.0, 1.0]])).tolist()
        [[[200, 200, 200, 0], [200, 200, 200, 255]]]
    """
    pixels = _rgb_pixels(image, channel_axis)
    weights = _unit_heat_like(heat, pixels)
    opacity = np.rint(weights * 255).astype(np.uint8)
    return np.concatenate([pixels.astype(np.uint8), opacity[..., np.newaxis]], axis=-1)


def _rgb_pixels(image: ArrayLike | Image.Image, channel_axis: int | str | None) -> np.ndarray:
    """The image as float64 RGB ``(H, W, 3)`` with values 0..255."""
    pixels = to_uint8(image, channel_axis=channel_axis)
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., np.newaxis], 3, axis=-1)
    if pixels.shape[-1] != 3:
        raise ValueError(
            f"expected a grey or RGB image, got {pixels.shape[-1]} channels (RGBA); "
            "drop the alpha channel first"
        )
    return pixels.astype(np.float64)


def _heat_like(heat: ArrayLike, pixels: np.ndarray) -> np.ndarray:
    """``heat`` as a 2-D array of the image's spatial size."""
    values = as_real_array(heat, name="heat")
    check_ndim(
        values,
        allowed=(2,),
        name="heat",
        layout="(H, W) (reduce channels first with grayscale() or diverging())",
    )
    if values.shape != pixels.shape[:2]:
        raise ValueError(
            f"expected heat of the image's spatial shape {pixels.shape[:2]}, got {values.shape}"
        )
    return values


def _unit_heat_like(heat: ArrayLike, pixels: np.ndarray) -> np.ndarray:
    values = _heat_like(heat, pixels)
    check_value_range(values, 0.0, 1.0, name="heat", hint=" (scale it with grayscale())")
    return values.astype(np.float64)
