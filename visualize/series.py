"""A time series drawn with its attribution over time, with Pillow.

A map of a 1-D model has one value per time step (per channel), and it reads best on the
series itself: :func:`series_chart` draws the series as a line over axes and the
attribution either as a band of colour behind it (``mode="band"``: white where the map is
0, deeper colour where it is large) or as the colour of the line itself (``mode="line"``),
with a colour bar that gives the scale. Signed maps take a diverging colour map (the
paper's ``"blue_grey_red"`` by default, blue negative, red positive); a sequential colour
map shows the magnitude ``|map|``.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from PIL import Image, ImageDraw, ImageFont

from visualize._checks import as_real_array, channel_axis_index, check_choice, check_percentile
from visualize.charts import SERIES_COLOURS, _axis_labels, _label, _nice_ticks
from visualize.colormaps import apply_colormap, colormap_range

__all__ = ["SERIES_MODES", "scale_attribution", "series_chart"]

#: How :func:`series_chart` shows the attribution: a band behind the line, or the line's colour.
SERIES_MODES = ("band", "line")

_BAND_OPACITY = 0.9


def scale_attribution(
    attribution: ArrayLike, *, cmap: str = "blue_grey_red", clip_percentile: float = 100.0
) -> tuple[np.ndarray, float]:
    """Scale a map to a colour map's range with one cap for all of it.

    For a diverging colour map the result is ``clip(map / cap, -1, 1)``, for a sequential
    one ``clip(|map| / cap, 0, 1)``, with ``cap`` the ``clip_percentile`` percentile of
    ``|map|`` over every element. An all-zero map gives zeros (cap 0), never NaN.

    Args:
        attribution: a map of any shape, finite real numbers.
        cmap: the colour map the values are meant for (only its range matters here).
        clip_percentile: the percentile of ``|map|`` in ``(0, 100]`` mapped to the end of
            the colour map; 100 (the default) keeps every value unclipped.

    Returns:
        ``(scaled, cap)``: float64 values in the colour map's range, shaped like the map,
        and the cap in the map's units (what the end of the colour bar stands for).

    Examples:
        >>> scale_attribution([2.0, -1.0, 0.0, -4.0])
        (array([ 0.5 , -0.25,  0.  , -1.  ]), 4.0)
        >>> scale_attribution([2.0, -1.0], cmap="viridis")[0]
        array([1. , 0.5])
    """
    values = as_real_array(attribution, name="attribution").astype(np.float64)
    if values.size == 0:
        raise ValueError(f"expected attribution with at least one value, got shape "
                         f"{values.shape}")
    percentile = check_percentile(clip_percentile)
    low, _ = colormap_range(cmap)
    peak = float(np.max(np.abs(values)))
    if peak == 0:
        return np.zeros_like(values), 0.0
    cap = float(np.percentile(np.abs(values / peak), percentile)) * peak
    if cap == 0:  # fewer non-zero values than the percentile leaves: they go to the ends
        scaled = np.sign(values)
    else:
        scaled = values / cap
    if low >= 0:
        scaled = np.abs(scaled)
    return np.clip(scaled, low, 1.0), cap


def _tick_text(value: float) -> str:
    """Whole numbers as they are (years, steps), others with 3 significant digits."""
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return _label(value)


def _channels_first(array: np.ndarray, channel_axis: int | None, *, name: str) -> np.ndarray:
    """``(T,)`` or a 2-D array with channels on ``channel_axis`` -> ``(C, T)``."""
    if channel_axis is None:
        if array.ndim != 1:
            raise ValueError(
                f"{name}: expected a 1-D series (T,) with channel_axis=None, got shape "
                f"{array.shape}; name the channel axis of a series with channels"
            )
        return array[None]
    if array.ndim != 2:
        raise ValueError(
            f"{name}: expected a 2-D series (C, T) or (T, C) with channel_axis, got shape "
            f"{array.shape}"
        )
    axis = channel_axis_index(channel_axis, 2)
    return array if axis == 0 else array.T


def series_chart(
    series: ArrayLike,
    attribution: ArrayLike,
    *,
    mode: str = "band",
    channel_axis: int | None = None,
    time: ArrayLike | None = None,
    cmap: str = "blue_grey_red",
    clip_percentile: float = 100.0,
    names: Sequence[str] | None = None,
    title: str = "",
    xlabel: str = "time step",
    ylabel: str = "",
    size: tuple[int, int] = (640, 240),
) -> Image.Image:
    """Draw a series with its attribution as a colour band behind it or as its colour.

    Args:
        series: ``(T,)``, or ``(C, T)`` / ``(T, C)`` with ``channel_axis`` naming the
            channels (each channel one line), ``T >= 2`` finite values.
        attribution: the map of the series: ``(T,)`` (one value per time step), or shaped
            like ``series`` (one per channel and step; ``mode="band"`` sums the channels,
            signed).
        mode: ``"band"``: the plot's background at step ``t`` takes the colour of the
            map's value there, blended with white by its size; ``"line"``: each segment
            of the line takes the colour of the mean of the map at its two ends.
        channel_axis: the axis of ``series`` (and of a per-channel ``attribution``) that
            holds channels, or None for a 1-D series.
        time: ``(T,)`` strictly increasing x values (years, seconds); default
            ``0 .. T - 1``.
        cmap: a diverging colour map for signed maps (default ``"blue_grey_red"``), or a
            sequential one to show ``|map|``; any name :func:`~visualize.apply_colormap`
            takes.
        clip_percentile: the percentile of ``|map|`` that reaches the end of the colour
            map (see :func:`scale_attribution`).
        names: one legend name per channel (drawn when given).
        title: drawn above the plot.
        xlabel: the time axis's label.
        ylabel: the value axis's label.
        size: ``(width, height)`` in pixels, at least ``(240, 160)``.

    Returns:
        An RGB ``PIL.Image.Image`` with axes, ticks and a colour bar on the right labelled
        with the map's values at its ends and 0.

    Raises:
        TypeError, ValueError: a series that is not 1-D (or 2-D with ``channel_axis``),
            fewer than 2 steps, an attribution of another shape, a ``time`` that is not
            strictly increasing, an unknown ``mode`` or ``cmap``, NaN or infinity, sizes
            too small.

    Examples:
        >>> import numpy as np
        >>> steps = np.linspace(0, 6.28, 50)
        >>> chart = series_chart(np.sin(steps), np.cos(steps), title="gradient over time")
        >>> chart.mode, chart.size
        ('RGB', (640, 240))
    """
    values = as_real_array(series, name="series").astype(np.float64)
    lines = _channels_first(values, channel_axis, name="series")
    n_channels, n_steps = lines.shape
    if n_steps < 2:
        raise ValueError(f"series: expected at least 2 time steps, got {n_steps}")
    heat = as_real_array(attribution, name="attribution").astype(np.float64)
    if heat.shape == (n_steps,):
        heat_lines = np.broadcast_to(heat, lines.shape)
        band = heat
    elif heat.shape == values.shape:
        heat_lines = _channels_first(heat, channel_axis, name="attribution")
        band = heat_lines.sum(axis=0)
    else:
        raise ValueError(
            f"attribution: expected shape ({n_steps},) (one value per time step) or the "
            f"series' shape {values.shape}, got shape {heat.shape}"
        )
    mode = check_choice(mode, SERIES_MODES, name="mode")
    if not isinstance(cmap, str):
        raise TypeError(f"cmap: expected a colour map name, got {type(cmap).__name__}")
    if time is None:
        steps = np.arange(n_steps, dtype=np.float64)
    else:
        steps = as_real_array(time, name="time").astype(np.float64)
        if steps.shape != (n_steps,):
            raise ValueError(f"time: expected shape ({n_steps},) (one per step), got shape "
                             f"{steps.shape}")
        if not (np.diff(steps) > 0).all():
            raise ValueError("time: expected strictly increasing values")
    if names is not None:
        if isinstance(names, str) or not isinstance(names, Sequence):
            raise TypeError(f"names: expected a sequence of {n_channels} strings, got "
                            f"{type(names).__name__}")
        if len(names) != n_channels or not all(isinstance(n, str) for n in names):
            raise ValueError(f"names: expected {n_channels} strings (one per channel), got "
                             f"{list(names)!r}")
    if (not isinstance(size, tuple | list) or len(size) != 2
            or not all(isinstance(s, numbers.Integral) and not isinstance(s, bool)
                       for s in size) or size[0] < 240 or size[1] < 160):
        raise ValueError(f"size: expected (width, height) of at least (240, 160), got "
                         f"{size!r}")
    for text, label_name in ((title, "title"), (xlabel, "xlabel"), (ylabel, "ylabel")):
        if not isinstance(text, str):
            raise TypeError(f"{label_name}: expected a string, got {type(text).__name__}")
    source = band if mode == "band" else heat_lines
    scaled, cap = scale_attribution(source, cmap=cmap, clip_percentile=clip_percentile)
    colours = apply_colormap(scaled.ravel(), cmap=cmap).reshape(*scaled.shape, 3)
    low_colour, _ = colormap_range(cmap)

    width, height = int(size[0]), int(size[1])
    font = ImageFont.load_default()
    picture = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(picture)
    left, right, top, bottom = 56, width - 64, 24 if title else 10, height - 40
    y_low, y_high = float(lines.min()), float(lines.max())
    pad = 0.05 * (y_high - y_low) if y_high > y_low else max(abs(y_high) * 0.05, 0.5)
    y_low, y_high = y_low - pad, y_high + pad
    t_low, t_high = float(steps[0]), float(steps[-1])

    def px(value: float) -> float:
        return left + (value - t_low) / (t_high - t_low) * (right - left)

    def py(value: float) -> float:
        return bottom - (value - y_low) / (y_high - y_low) * (bottom - top)

    if mode == "band":
        edges = np.concatenate([[t_low], (steps[1:] + steps[:-1]) / 2, [t_high]])
        strength = np.abs(scaled) * _BAND_OPACITY
        fills = 255 - strength[:, None] * (255 - colours.astype(np.float64))
        for index in range(n_steps):
            if strength[index] > 0:
                draw.rectangle([px(edges[index]), top, px(edges[index + 1]), bottom],
                               fill=tuple(int(round(c)) for c in fills[index]))
    for tick in _nice_ticks(y_low, y_high):
        y = py(tick)
        draw.line([left - 4, y, left, y], fill=(90, 90, 90))
        if mode == "line":
            draw.line([left + 1, y, right - 1, y], fill=(232, 232, 232))
        text = _label(tick)
        draw.text((left - 6 - draw.textlength(text, font=font), y - 5), text, fill="black",
                  font=font)
    for tick in _nice_ticks(t_low, t_high, count=7):
        x = px(tick)
        if left - 1 <= x <= right + 1:
            draw.line([x, bottom, x, bottom + 4], fill=(90, 90, 90))
            text = _tick_text(tick)
            draw.text((x - draw.textlength(text, font=font) / 2, bottom + 6), text,
                      fill="black", font=font)
    draw.rectangle([left, top, right, bottom], outline=(90, 90, 90))
    for channel in range(n_channels):
        points = [(px(t), py(v)) for t, v in zip(steps, lines[channel], strict=True)]
        if mode == "band":
            draw.line(points, fill=SERIES_COLOURS[6 if n_channels == 1 else
                                                  channel % len(SERIES_COLOURS)], width=2)
        else:
            ends = scaled[channel]
            middle = apply_colormap((ends[1:] + ends[:-1]) / 2, cmap=cmap)
            for index in range(n_steps - 1):
                draw.line([points[index], points[index + 1]],
                          fill=tuple(int(c) for c in middle[index]), width=3)

    # the colour bar: the colour map's range, labelled in the map's units
    bar_left, bar_right = right + 10, right + 22
    positions = np.linspace(1.0, low_colour, max(bottom - top, 2))
    strip = apply_colormap(positions, cmap=cmap)
    if mode == "band":
        weights = np.abs(positions)[:, None] * _BAND_OPACITY
        strip = (255 - weights * (255 - strip.astype(np.float64))).round().astype(np.uint8)
    for offset, colour in enumerate(strip):
        draw.line([bar_left, top + offset, bar_right, top + offset],
                  fill=tuple(int(c) for c in colour))
    draw.rectangle([bar_left, top, bar_right, bottom], outline=(90, 90, 90))
    marks: list[tuple[float, str]] = [
        (top, _label(cap)), (bottom - 10, _label(0.0 if low_colour >= 0 else -cap))]
    if low_colour < 0:
        marks.append(((top + bottom) / 2 - 5, "0"))
    for y, text in marks:
        draw.text((bar_right + 3, y), text, fill="black", font=font)

    _axis_labels(picture, draw, font, (left, top, right, bottom), title=title, xlabel=xlabel,
                 ylabel=ylabel)
    if names is not None:
        for channel, name in enumerate(names):
            colour = (SERIES_COLOURS[6 if n_channels == 1 else channel % len(SERIES_COLOURS)]
                      if mode == "band" else (90, 90, 90))
            y = top + 4 + 12 * channel
            draw.line([left + 6, y + 5, left + 18, y + 5], fill=colour, width=2)
            draw.text((left + 22, y), name, fill="black", font=font)
    return picture
