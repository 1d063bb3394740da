"""Per-feature attributions as a signed bar chart, drawn with Pillow.

A tabular model's map has one value per feature, and a signed value reads best as a bar
to the right (the feature pushes the target score up) or to the left (it pulls it down) of
a zero line, longest first. :func:`feature_bar_chart` draws that with Pillow alone, with
the axes helpers of :mod:`visualize.charts`; the colours are Okabe and Ito's vermillion for
positive and blue for negative values (colour-blind safe, and the sides of the paper's
blue-grey-red map).
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike
from PIL import Image, ImageDraw, ImageFont

from visualize._checks import as_real_array
from visualize.charts import _axis_labels, _label, _nice_ticks, _shorten

__all__ = ["BAR_ORDERS", "NEGATIVE_COLOUR", "POSITIVE_COLOUR", "feature_bar_chart"]

#: The bar colour of positive values (Okabe and Ito's vermillion).
POSITIVE_COLOUR = (213, 94, 0)
#: The bar colour of negative values (Okabe and Ito's blue).
NEGATIVE_COLOUR = (0, 114, 178)
#: The orders :func:`feature_bar_chart` can sort the bars in, besides explicit indices.
BAR_ORDERS = ("magnitude", "value", "given")

_ROW_GAP = 4
_MAX_NAME_PIXELS = 200


def _check_order(order: object, n_features: int) -> np.ndarray | str:
    if isinstance(order, str):
        if order not in BAR_ORDERS:
            raise ValueError(
                f"order: expected one of {', '.join(map(repr, BAR_ORDERS))} or an array of "
                f"feature indices, got {order!r}"
            )
        return order
    indices = np.asarray(order)
    if indices.ndim != 1 or indices.size == 0 or indices.dtype.kind not in "iu":
        raise TypeError(
            f"order: expected one of {', '.join(map(repr, BAR_ORDERS))} or a non-empty 1-D "
            f"array of integer feature indices, got {type(order).__name__} of dtype "
            f"{indices.dtype} and shape {indices.shape}"
        )
    if (indices < 0).any() or (indices >= n_features).any():
        raise ValueError(
            f"order: expected feature indices from 0 to {n_features - 1}, got "
            f"{indices[(indices < 0) | (indices >= n_features)][:5].tolist()}"
        )
    if np.unique(indices).size != indices.size:
        raise ValueError("order: expected each feature index at most once, got repeats")
    return indices.astype(np.int64)


def _check_names(names: object, n_features: int) -> list[str]:
    if names is None:
        return [f"feature {index}" for index in range(n_features)]
    if isinstance(names, str) or not isinstance(names, Sequence | np.ndarray):
        raise TypeError(f"names: expected a sequence of {n_features} strings, got "
                        f"{type(names).__name__}")
    listed = list(names)
    if len(listed) != n_features:
        raise ValueError(f"names: expected {n_features} names (one per value), got "
                         f"{len(listed)}")
    if not all(isinstance(name, str) for name in listed):
        raise TypeError("names: expected strings, got "
                        f"{sorted({type(n).__name__ for n in listed if not isinstance(n, str)})}")
    return listed


def _check_range(value_range: object, shown: np.ndarray) -> tuple[float, float]:
    if value_range is None:
        low, high = min(0.0, float(shown.min())), max(0.0, float(shown.max()))
        if high == low:
            return -1.0, 1.0
        pad = 0.05 * (high - low)
        return (low - pad if low < 0 else 0.0), (high + pad if high > 0 else 0.0)
    if not isinstance(value_range, tuple | list) or len(value_range) != 2:
        raise TypeError(f"value_range: expected (low, high), got {value_range!r}")
    low, high = value_range
    if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in (low, high)):
        raise TypeError(f"value_range: expected two real numbers, got {value_range!r}")
    low, high = float(low), float(high)
    if not (np.isfinite(low) and np.isfinite(high) and low <= 0.0 <= high and low < high):
        raise ValueError(
            f"value_range: expected finite (low, high) with low <= 0 <= high and low < high, "
            f"got {value_range!r}"
        )
    return low, high


def _check_int(value: object, *, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name}: expected an integer of at least {minimum}, got {value!r}")
    return int(value)


def feature_bar_chart(
    values: ArrayLike,
    names: Sequence[str] | None = None,
    *,
    order: str | Sequence[int] | np.ndarray = "magnitude",
    top_k: int | None = None,
    value_range: tuple[float, float] | None = None,
    title: str = "",
    xlabel: str = "attribution",
    width: int = 480,
    bar_height: int = 14,
    show_values: bool = True,
) -> Image.Image:
    """Draw one signed attribution per feature as horizontal bars around a zero line.

    Args:
        values: the attributions of one input, ``(F,)`` (a row of a map ``(N, F)``, or a
            mean over rows).
        names: one name per feature, drawn left of its bar (shortened with ``...`` past
            200 pixels); default ``"feature 0"``, ``"feature 1"``, ...
        order: ``"magnitude"`` (largest ``|value|`` on top, the default), ``"value"``
            (largest signed value on top), ``"given"`` (feature order), or an array of
            feature indices, top first (to show several maps in one order, or a subset).
            Ties keep feature order.
        top_k: show only the first ``top_k`` bars of that order (default: all).
        value_range: ``(low, high)`` of the value axis, ``low <= 0 <= high``, to draw
            several charts on one scale; bars beyond it stop at its edge. Default: the
            shown values and 0, padded by 5%.
        title: drawn above the chart.
        xlabel: the value axis's label.
        width: the picture's width in pixels, at least 240 (its height follows from the
            number of bars).
        bar_height: each bar's height in pixels, at least 4.
        show_values: write each value (3 significant digits) at the end of its bar.

    Returns:
        An RGB ``PIL.Image.Image``: positive bars in :data:`POSITIVE_COLOUR`, negative
        ones in :data:`NEGATIVE_COLOUR`, a zero line, ticks on the value axis.

    Raises:
        TypeError, ValueError: ``values`` that are not a non-empty 1-D array of finite
            numbers, names of the wrong number or type, a bad ``order`` (an unknown
            name, indices out of range or repeated), ``top_k`` below 1 or above the
            number of bars, a ``value_range`` that does not hold 0, sizes too small.

    Examples:
        >>> chart = feature_bar_chart([0.5, -1.25, 0.1], ["age", "dose", "weight"],
        ...                           title="gradient x input")
        >>> chart.mode, chart.size
        ('RGB', (480, 118))
    """
    array = as_real_array(values, name="values").astype(np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(
            f"values: expected a non-empty 1-D array of one value per feature, got shape "
            f"{array.shape}; pick one input's row (maps[i]) or reduce the rows first"
        )
    n_features = array.size
    labels = _check_names(names, n_features)
    checked = _check_order(order, n_features)
    if isinstance(checked, np.ndarray):
        ranked = checked
    elif checked == "magnitude":
        ranked = np.argsort(-np.abs(array), kind="stable")
    elif checked == "value":
        ranked = np.argsort(-array, kind="stable")
    else:
        ranked = np.arange(n_features)
    if top_k is not None:
        top_k = _check_int(top_k, name="top_k", minimum=1)
        if top_k > ranked.size:
            raise ValueError(f"top_k: expected at most {ranked.size} (the bars there are), "
                             f"got {top_k}")
        ranked = ranked[:top_k]
    width = _check_int(width, name="width", minimum=240)
    bar_height = _check_int(bar_height, name="bar_height", minimum=4)
    if not isinstance(show_values, bool | np.bool_):
        raise TypeError(f"show_values: expected True or False, got {show_values!r}")
    for text, name in ((title, "title"), (xlabel, "xlabel")):
        if not isinstance(text, str):
            raise TypeError(f"{name}: expected a string, got {type(text).__name__}")
    shown = array[ranked]
    low, high = _check_range(value_range, shown)

    font = ImageFont.load_default()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    texts = [_shorten(measure, labels[index], font, _MAX_NAME_PIXELS) for index in ranked]
    name_width = max(measure.textlength(text, font=font) for text in texts)
    left = int(min(name_width, _MAX_NAME_PIXELS)) + 12
    right = width - 12
    if right - left < 120:
        raise ValueError(
            f"width: expected room for the bars beside names {int(name_width)} pixels wide, "
            f"got width={width}; pass a larger width or shorter names"
        )
    row = bar_height + _ROW_GAP
    top = 24 if title else 8
    bottom = top + row * ranked.size + _ROW_GAP
    height = bottom + (36 if xlabel else 22)
    picture = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(picture)

    def px(value: float) -> float:
        return left + (min(max(value, low), high) - low) / (high - low) * (right - left)

    for tick in _nice_ticks(low, high, count=7):
        x = px(tick)
        if low <= tick <= high:
            draw.line([x, top, x, bottom], fill=(232, 232, 232))
            draw.line([x, bottom, x, bottom + 4], fill=(90, 90, 90))
            text = _label(tick)
            draw.text((x - draw.textlength(text, font=font) / 2, bottom + 6), text,
                      fill="black", font=font)
    draw.rectangle([left, top, right, bottom], outline=(90, 90, 90))
    zero = px(0.0)
    for position, (value, text) in enumerate(zip(shown, texts, strict=True)):
        y0 = top + _ROW_GAP + position * row
        y1 = y0 + bar_height
        colour = POSITIVE_COLOUR if value > 0 else NEGATIVE_COLOUR
        end = px(float(value))
        if value != 0:
            draw.rectangle([min(zero, end), y0, max(zero, end), y1], fill=colour)
        draw.text((left - 6 - draw.textlength(text, font=font), y0 + (bar_height - 10) / 2),
                  text, fill="black", font=font)
        if show_values:
            label = _label(float(value))
            size = draw.textlength(label, font=font)
            outside = end + 3 if value >= 0 else end - 3 - size
            if left + 1 <= outside and outside + size <= right - 1:
                spot, ink = outside, "black"
            else:  # no room past the bar's end: inside it, in white
                spot = end - 3 - size if value >= 0 else end + 3
                ink = "white"
            draw.text((spot, y0 + (bar_height - 10) / 2), label, fill=ink, font=font)
    draw.line([zero, top, zero, bottom], fill="black", width=1)
    _axis_labels(picture, draw, font, (left, top, right, bottom), title=title, xlabel=xlabel)
    return picture
