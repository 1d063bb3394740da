"""Curves as curves: a line chart drawn with Pillow, for metric sweeps and deletion curves.

Evaluation results are curves (a metric against the noise level, the sample size, the
fraction of pixels deleted, the layers randomised), and curves are read best as lines on
axes. :func:`line_chart` draws them with Pillow alone, so the command line and the demo need
no plotting library; ``matplotlib`` users can plot the same arrays their own way.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["SERIES_COLOURS", "line_chart"]

#: The colours series take in turn (colour-blind-safe, after Okabe and Ito 2008).
SERIES_COLOURS = (
    (0, 114, 178), (213, 94, 0), (0, 158, 115), (204, 121, 167), (230, 159, 0),
    (86, 180, 233), (0, 0, 0), (240, 228, 66),
)


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (1, 2 or 5 times a power of ten apart)."""
    if high <= low:
        high = low + 1.0
    raw = (high - low) / max(count - 1, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        if value >= low - step * 1e-9:
            ticks.append(round(value, 12))
        value += step
    return ticks


def _label(value: float) -> str:
    return f"{value:.3g}"


def _check_series(
    series: object, n: int | None
) -> dict[str, tuple[np.ndarray | None, np.ndarray]]:
    if not isinstance(series, Mapping) or not series:
        raise TypeError(
            "series: expected a non-empty mapping name -> y values (or name -> (x, y)), got "
            f"{type(series).__name__}"
        )
    checked = {}
    for name, values in series.items():
        if not isinstance(name, str):
            raise TypeError(f"series: expected str names, got {type(name).__name__}")
        if isinstance(values, tuple) and len(values) == 2:
            xs, ys = (np.asarray(v, dtype=np.float64) for v in values)
        else:
            ys = np.asarray(values, dtype=np.float64)
            if n is None:
                raise ValueError(
                    f"series {name!r}: expected (x, y) pairs when no x is given, got y values"
                )
            xs = None
        if ys.ndim != 1 or ys.size == 0:
            raise ValueError(f"series {name!r}: expected a 1-D array of y values, got shape "
                             f"{ys.shape}")
        if xs is None:
            if ys.size != n:
                raise ValueError(
                    f"series {name!r}: expected {n} values (one per x), got {ys.size}"
                )
        elif xs.shape != ys.shape:
            raise ValueError(
                f"series {name!r}: expected x and y of the same length, got {xs.size} and "
                f"{ys.size}"
            )
        checked[name] = (xs, ys)
    return checked


def _legend_corner(
    lines: dict[str, tuple[np.ndarray, np.ndarray]],
    px: object, py: object, box: tuple[float, float, float, float], size: tuple[float, float],
) -> tuple[float, float]:
    """The plot corner whose legend box would cover the fewest drawn points."""
    left, top, right, bottom = box
    width, height = size
    corners = [(right - width - 4, top + 4), (right - width - 4, bottom - height - 4),
               (left + 4, top + 4), (left + 4, bottom - height - 4)]
    points = [(px(a), py(b)) for xs, ys in lines.values()  # type: ignore[operator]
              for a, b in zip(xs, ys, strict=True) if np.isfinite(b)]

    def covered(corner: tuple[float, float]) -> int:
        x0, y0 = corner
        return sum(x0 - 6 <= x <= x0 + width + 6 and y0 - 6 <= y <= y0 + height + 6
                   for x, y in points)

    return min(corners, key=covered)


def _shorten(draw: ImageDraw.ImageDraw, text: str, font: object, limit: float) -> str:
    """``text``, its end replaced by "..." until it fits ``limit`` pixels."""
    if draw.textlength(text, font=font) <= limit:  # type: ignore[arg-type]
        return text
    while text and draw.textlength(text + "...", font=font) > limit:  # type: ignore[arg-type]
        text = text[:-1]
    return text + "..."


def _axis_labels(
    picture: Image.Image,
    draw: ImageDraw.ImageDraw,
    font: ImageFont.ImageFont | ImageFont.FreeTypeFont,
    box: tuple[float, float, float, float],
    *,
    title: str | None = None,
    xlabel: str | None = None,
    ylabel: str | None = None,
) -> None:
    """The title (centred on top), the x label (under the plot box ``(left, top, right,
    bottom)``) and the y label (turned a quarter, left of the box) of a chart."""
    left, top, right, bottom = box
    if title:
        draw.text(((picture.width - draw.textlength(title, font=font)) / 2, 6), title,
                  fill="black", font=font)
    if xlabel:
        draw.text(((left + right - draw.textlength(xlabel, font=font)) / 2, bottom + 20),
                  xlabel, fill="black", font=font)
    if ylabel:
        label = Image.new("RGB", (int(draw.textlength(ylabel, font=font)) + 4, 12), "white")
        ImageDraw.Draw(label).text((2, 0), ylabel, fill="black", font=font)
        rotated = label.rotate(90, expand=True)
        picture.paste(rotated, (2, int((top + bottom - rotated.height) / 2)))


def line_chart(
    x: Sequence[float] | np.ndarray | None,
    series: Mapping[str, object],
    *,
    title: str = "",
    xlabel: str = "",
    ylabel: str = "",
    size: tuple[int, int] = (480, 320),
    y_range: tuple[float, float] | None = None,
    log_x: bool = False,
) -> Image.Image:
    """Draw ``series`` as lines with markers over ``x``, with axes, ticks and a legend.

    Args:
        x: the x values shared by every series, or None when each series brings its own
            ``(x, y)`` pair.
        series: name -> y values (one per ``x``), or name -> ``(x, y)``. NaN values leave
            a gap.
        title: drawn above the plot.
        xlabel: the x axis's label.
        ylabel: the y axis's label.
        size: ``(width, height)`` of the picture in pixels, each at least 160.
        y_range: ``(low, high)`` of the y axis; default: the data's range, padded.
        log_x: a logarithmic x axis (for sample sizes); every x must then be positive.

    Returns:
        An RGB ``PIL.Image.Image``.

    Raises:
        TypeError, ValueError: series that are not a mapping of 1-D arrays, lengths that
            disagree, a size below 160 pixels, non-positive x on a log axis, an empty or
            reversed ``y_range``.

    Examples:
        >>> import numpy as np
        >>> from visualize import line_chart
        >>> picture = line_chart([0, 0.1, 0.2], {"deletion AUC": [0.5, 0.4, 0.42]},
        ...                      xlabel="noise level", ylabel="AUC")
        >>> picture.size, picture.mode
        ((480, 320), 'RGB')
    """
    xs_shared = None if x is None else np.asarray(x, dtype=np.float64)
    if xs_shared is not None and (xs_shared.ndim != 1 or xs_shared.size == 0):
        raise ValueError(f"x: expected a 1-D array of x values, got shape {xs_shared.shape}")
    checked = _check_series(series, None if xs_shared is None else xs_shared.size)
    if (not isinstance(size, tuple | list) or len(size) != 2
            or not all(isinstance(s, numbers.Integral) and s >= 160 for s in size)):
        raise ValueError(
            f"size: expected (width, height) of at least 160 pixels each, got {size!r}"
        )
    width, height = int(size[0]), int(size[1])
    lines: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name, (xs, ys) in checked.items():
        lines[name] = (xs_shared if xs is None else xs, ys)  # type: ignore[assignment]
    all_x = np.concatenate([xs for xs, _ in lines.values()])
    all_y = np.concatenate([ys for _, ys in lines.values()])
    if not np.isfinite(all_x).all():
        raise ValueError("x: expected finite values, got NaN or inf")
    if log_x and (all_x <= 0).any():
        raise ValueError("x: expected positive values on a logarithmic axis (log_x=True)")
    finite_y = all_y[np.isfinite(all_y)]
    if y_range is not None:
        low, high = (float(v) for v in y_range)
        if not (np.isfinite(low) and np.isfinite(high) and low < high):
            raise ValueError(f"y_range: expected (low, high) with low < high, got {y_range!r}")
    elif finite_y.size:
        low, high = float(finite_y.min()), float(finite_y.max())
        pad = 0.05 * (high - low) if high > low else max(abs(high) * 0.05, 0.5)
        low, high = low - pad, high + pad
    else:
        low, high = 0.0, 1.0
    to_x = np.log10 if log_x else (lambda v: v)
    x_low, x_high = float(to_x(all_x.min())), float(to_x(all_x.max()))
    if x_high <= x_low:
        x_low, x_high = x_low - 0.5, x_high + 0.5

    font = ImageFont.load_default()
    picture = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(picture)
    left, right, top, bottom = 56, width - 12, 24 if title else 10, height - 40
    legend_height = 12 * len(lines) + 6

    def px(value: float) -> float:
        return left + (float(to_x(value)) - x_low) / (x_high - x_low) * (right - left)

    def py(value: float) -> float:
        return bottom - (value - low) / (high - low) * (bottom - top)

    draw.rectangle([left, top, right, bottom], outline=(90, 90, 90))
    for tick in _nice_ticks(low, high):
        y = py(tick)
        draw.line([left - 4, y, left, y], fill=(90, 90, 90))
        draw.line([left + 1, y, right - 1, y], fill=(232, 232, 232))
        text = _label(tick)
        draw.text((left - 6 - draw.textlength(text, font=font), y - 5), text, fill="black",
                  font=font)
    x_ticks = sorted(set(all_x.tolist())) if len(set(all_x.tolist())) <= 8 else (
        [10 ** t for t in _nice_ticks(x_low, x_high)] if log_x else _nice_ticks(x_low, x_high))
    for tick in x_ticks:
        x_pixel = px(tick)
        if left - 1 <= x_pixel <= right + 1:
            draw.line([x_pixel, bottom, x_pixel, bottom + 4], fill=(90, 90, 90))
            text = _label(tick)
            draw.text((x_pixel - draw.textlength(text, font=font) / 2, bottom + 6), text,
                      fill="black", font=font)
    _axis_labels(picture, draw, font, (left, top, right, bottom), title=title, xlabel=xlabel,
                 ylabel=ylabel)
    legend_width = max(draw.textlength(n, font=font) for n in lines) + 30
    corner = _legend_corner(lines, px, py, (left, top, right, bottom),
                            (legend_width, legend_height))
    for index, (xs, ys) in enumerate(lines.values()):
        colour = SERIES_COLOURS[index % len(SERIES_COLOURS)]
        order = np.argsort(xs, kind="stable")
        points = [(px(a), py(b)) if np.isfinite(b) else None
                  for a, b in zip(xs[order], ys[order], strict=True)]
        run: list[tuple[float, float]] = []
        for point in [*points, None]:
            if point is None:
                if len(run) > 1:
                    draw.line(run, fill=colour, width=2)
                run = []
                continue
            run.append(point)
            draw.ellipse([point[0] - 2.5, point[1] - 2.5, point[0] + 2.5, point[1] + 2.5],
                         fill=colour)
    x_box, y_box = corner
    draw.rectangle([x_box, y_box, x_box + legend_width, y_box + legend_height], fill="white",
                   outline=(200, 200, 200))
    for index, name in enumerate(lines):
        colour = SERIES_COLOURS[index % len(SERIES_COLOURS)]
        y_legend = y_box + 2 + 12 * index
        draw.line([x_box + 4, y_legend + 5, x_box + 16, y_legend + 5], fill=colour, width=2)
        draw.text((x_box + 20, y_legend), name, fill="black", font=font)
    return picture
