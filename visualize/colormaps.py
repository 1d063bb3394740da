"""Colour maps: turn maps in ``[0, 1]`` (sequential) or ``[-1, 1]`` (diverging) into RGB.

Built in, always available: ``"grey"`` (alias ``"gray"``), ``"viridis"``, ``"jet"`` and
the paper's ``"blue_grey_red"`` (-1 blue, 0 grey, +1 red). When matplotlib is installed,
``"viridis"``, ``"jet"`` and every other matplotlib colour map name come from matplotlib
itself; without it, ``"viridis"`` is interpolated between 17 of its colours (within 6 of
256 levels of matplotlib's) and ``"jet"`` is rebuilt from its piecewise-linear
definition. matplotlib is imported only inside :func:`apply_colormap`, never at import.

References:
    Smilkov et al. 2017, section 3.3: differences of maps are shown on a diverging
    colour map ``[-1, 0, 1] -> [blue, grey, red]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from visualize._checks import as_real_array, check_ndim, check_value_range

__all__ = ["BUILTIN_COLORMAPS", "DIVERGING_COLORMAPS", "apply_colormap", "colormap_range"]

# Per colour map, per channel (red, green, blue): anchor positions in [0, 1] and the
# channel's value in [0, 1] there; colours in between are linearly interpolated.
_Anchors = tuple[tuple[tuple[float, ...], tuple[float, ...]], ...]

_GREY: _Anchors = (((0.0, 1.0), (0.0, 1.0)),) * 3

# Blue at -1, grey at 0, red at +1 (positions are of (value + 1) / 2).
_BLUE_GREY_RED: _Anchors = (
    ((0.0, 0.5, 1.0), (0.0, 0.5, 1.0)),
    ((0.0, 0.5, 1.0), (0.0, 0.5, 0.0)),
    ((0.0, 0.5, 1.0), (1.0, 0.5, 0.0)),
)

# matplotlib's own piecewise-linear definition of jet (its "_jet_data").
_JET: _Anchors = (
    ((0.0, 0.35, 0.66, 0.89, 1.0), (0.0, 0.0, 1.0, 1.0, 0.5)),
    ((0.0, 0.125, 0.375, 0.64, 0.91, 1.0), (0.0, 0.0, 1.0, 1.0, 0.0, 0.0)),
    ((0.0, 0.11, 0.34, 0.65, 1.0), (0.5, 1.0, 1.0, 0.0, 0.0)),
)

# 17 evenly spaced colours of matplotlib's viridis (red, green, blue).
_VIRIDIS_COLOURS = (
    (0.2670, 0.0049, 0.3294),
    (0.2823, 0.0950, 0.4173),
    (0.2788, 0.1755, 0.4834),
    (0.2590, 0.2515, 0.5247),
    (0.2297, 0.3224, 0.5457),
    (0.1994, 0.3876, 0.5546),
    (0.1727, 0.4488, 0.5579),
    (0.1490, 0.5081, 0.5573),
    (0.1276, 0.5669, 0.5506),
    (0.1206, 0.6258, 0.5335),
    (0.1579, 0.6838, 0.5017),
    (0.2461, 0.7389, 0.4520),
    (0.3692, 0.7889, 0.3829),
    (0.5160, 0.8312, 0.2943),
    (0.6785, 0.8637, 0.1895),
    (0.8456, 0.8873, 0.0997),
    (0.9932, 0.9062, 0.1439),
)
_VIRIDIS_POSITIONS = tuple(index / 16 for index in range(17))
_VIRIDIS: _Anchors = tuple(
    (_VIRIDIS_POSITIONS, tuple(colour[channel] for colour in _VIRIDIS_COLOURS))
    for channel in range(3)
)

_BUILTIN_ANCHORS: dict[str, _Anchors] = {
    "grey": _GREY,
    "gray": _GREY,
    "viridis": _VIRIDIS,
    "jet": _JET,
    "blue_grey_red": _BLUE_GREY_RED,
}

BUILTIN_COLORMAPS = tuple(_BUILTIN_ANCHORS)
"""Colour map names that work with or without matplotlib."""

# Always drawn from the tables above, even when matplotlib is installed (matplotlib has
# no blue-grey-red map, and its grey is the same straight line).
_ALWAYS_BUILTIN = frozenset({"grey", "gray", "blue_grey_red"})

DIVERGING_COLORMAPS = frozenset(
    {
        "blue_grey_red",
        "BrBG",
        "PiYG",
        "PRGn",
        "PuOr",
        "RdBu",
        "RdGy",
        "RdYlBu",
        "RdYlGn",
        "Spectral",
        "berlin",
        "bwr",
        "coolwarm",
        "managua",
        "seismic",
        "vanimo",
    }
)
"""Colour maps that take values in ``[-1, 1]`` (also with a ``_r`` suffix); all others
take ``[0, 1]``."""


def colormap_range(cmap: str) -> tuple[float, float]:
    """The values a colour map takes: ``(-1.0, 1.0)`` if diverging, else ``(0.0, 1.0)``.

    Examples:
        >>> colormap_range("blue_grey_red")
        (-1.0, 1.0)
        >>> colormap_range("viridis")
        (0.0, 1.0)
    """
    if not isinstance(cmap, str):
        raise TypeError(f"expected cmap to be a colour map name, got {type(cmap).__name__}")
    return (-1.0, 1.0) if cmap.removesuffix("_r") in DIVERGING_COLORMAPS else (0.0, 1.0)


def apply_colormap(heat: ArrayLike, *, cmap: str = "viridis") -> np.ndarray:
    """Colour a map: ``[0, 1]`` for sequential colour maps, ``[-1, 1]`` for diverging ones.

    Use it on the output of :func:`~visualize.grayscale` (``[0, 1]``) or
    :func:`~visualize.diverging` (``[-1, 1]``, with ``cmap="blue_grey_red"``). Values
    outside the colour map's range are refused rather than silently clipped.

    Args:
        heat: a map ``(H, W)``, a batch of maps ``(N, H, W)``, or a 1-D strip of values
            (a colour bar). A heat map has no channel axis: a 3-D array whose last axis
            holds 1, 3 or 4 values looks like an image or a map with channels ``(H, W, C)``
            and is refused; reduce the channels first with :func:`~visualize.grayscale` or
            :func:`~visualize.diverging` (or colour a batch of such narrow maps one by one).
        cmap: a name from :data:`BUILTIN_COLORMAPS` or, when matplotlib is installed, any
            matplotlib colour map name.

    Returns:
        uint8 RGB of shape ``heat.shape + (3,)``.

    Raises:
        ValueError: an unknown ``cmap`` (the message lists the choices), an empty map, a
            map with channels or of more than 3 dimensions, values outside
            :func:`colormap_range`, NaN or infinity.
        TypeError: ``heat`` does not hold real numbers, or ``cmap`` is not a string.

    Examples:
        >>> import numpy as np
        >>> apply_colormap(np.array([-1.0, 0.0, 1.0]), cmap="blue_grey_red").tolist()
        [[0, 0, 255], [128, 128, 128], [255, 0, 0]]
        >>> apply_colormap(np.array([[0.0, 1.0]]), cmap="grey").tolist()
        [[[0, 0, 0], [255, 255, 255]]]
    """
    table = _find_colormap(cmap)
    values = as_real_array(heat, name="heat")
    check_ndim(
        values,
        allowed=(1, 2, 3),
        name="heat",
        layout="(H, W), (N, H, W) or a 1-D strip (reduce channels first with grayscale() or "
        "diverging())",
    )
    if values.ndim == 3 and values.shape[-1] in (1, 3, 4):
        raise ValueError(
            f"expected heat (H, W) or (N, H, W) without a channel axis, got shape "
            f"{values.shape}, which looks like an image or a map with {values.shape[-1]} "
            "channel(s) last; reduce the channels first with grayscale() or diverging() "
            "(for a batch of maps that narrow, colour them one at a time)"
        )
    return _colour(values, table, cmap)


def _colour(values: np.ndarray, table: _Anchors | Any, cmap: str) -> np.ndarray:
    """Colour checked values of any shape with the colour map ``table`` called ``cmap``."""
    low, high = colormap_range(cmap)
    kind = "diverging" if low < 0 else "sequential"
    check_value_range(
        values,
        low,
        high,
        name="heat",
        hint=f" for the {kind} colour map {cmap!r} (scale it with grayscale() or diverging())",
    )
    positions = (values.astype(np.float64) - low) / (high - low)
    if isinstance(table, tuple):
        return _interpolate(table, positions)
    return np.asarray(table(positions, bytes=True))[..., :3].astype(np.uint8)


def _colour_any_shape(heat: np.ndarray, *, cmap: str) -> np.ndarray:
    """:func:`apply_colormap` without the shape rules, for maps this package made itself
    (a batch ``(N, H, W)`` of maps 3 pixels wide is not an image here)."""
    return _colour(heat, _find_colormap(cmap), cmap)


def _find_colormap(cmap: object) -> _Anchors | Any:
    """Anchors of a built-in colour map, or a matplotlib colour map object."""
    if not isinstance(cmap, str):
        raise TypeError(f"expected cmap to be a colour map name, got {type(cmap).__name__}")
    if cmap in _ALWAYS_BUILTIN:
        return _BUILTIN_ANCHORS[cmap]
    matplotlib_colormap = _matplotlib_colormap(cmap)
    if matplotlib_colormap is not None:
        return matplotlib_colormap
    if cmap in _BUILTIN_ANCHORS:
        return _BUILTIN_ANCHORS[cmap]
    listed = ", ".join(repr(name) for name in BUILTIN_COLORMAPS)
    if _matplotlib_available():
        more = "a matplotlib colour map name"
    else:
        more = "more once matplotlib is installed"
    raise ValueError(f"expected cmap to be one of {listed} or {more}, got {cmap!r}")


def _matplotlib_colormap(name: str) -> Any | None:
    """matplotlib's colour map called ``name``; None without matplotlib or such a map."""
    try:
        import matplotlib
    except ImportError:
        return None
    try:
        return matplotlib.colormaps[name]
    except (KeyError, AttributeError):
        return None


def _matplotlib_available() -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    return True


def _interpolate(anchors: _Anchors, positions: np.ndarray) -> np.ndarray:
    channels = [np.interp(positions, where, value) for where, value in anchors]
    return np.rint(np.stack(channels, axis=-1) * 255).astype(np.uint8)
