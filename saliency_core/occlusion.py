"""Occlusion (Zeiler and Fergus 2014): how much the target score drops when a window of
the input is replaced by a baseline value.

Each window position gives one occluded copy of the input; the score drop
``S(x) - S(x occluded)`` is credited to every element under the window, and each element's
attribution is the mean over the windows that cover it (elements no window covers get 0).
Windows and strides are given over the input's non-batch axes, so any layout works: for a
``(H, W, C)`` image a ``(8, 8, 3)`` window occludes all channels of an 8x8 patch.
"""

from __future__ import annotations

import itertools
import numbers

import numpy as np

from ._checks import (
    as_input_batch,
    as_targets,
    check_callable,
    check_positive_int,
)
from ._streaming import call_chunk, cast_result, chunk_bounds
from .types import PredictFn

__all__ = ["occlusion"]


def _per_axis(value: object, shape: tuple[int, ...], name: str) -> tuple[int, ...]:
    expected = f"an int or one int per input axis ({len(shape)} for inputs of shape {shape})"
    if isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_):
        value = (int(value),) * len(shape)
    elif isinstance(value, np.ndarray) and value.ndim == 1:
        value = tuple(value.tolist())
    if not isinstance(value, tuple | list):
        raise TypeError(f"{name}: expected {expected}, got {type(value).__name__} {value!r}")
    if len(value) != len(shape):
        raise ValueError(f"{name}: expected {expected}, got {value!r}")
    sizes = tuple(check_positive_int(v, name) for v in value)
    too_big = [(s, d) for s, d in zip(sizes, shape, strict=True) if s > d]
    if name == "window" and too_big:
        raise ValueError(f"window: expected sizes within the input's shape {shape}, got {sizes}")
    return sizes


def _check_baseline(baseline: object, dtype: np.dtype) -> float:
    if isinstance(baseline, np.ndarray) and baseline.ndim == 0:
        baseline = baseline[()]
    if isinstance(baseline, bool | np.bool_) or not isinstance(baseline, numbers.Real):
        raise TypeError(
            f"baseline: expected a number (the value occluded elements take), got "
            f"{type(baseline).__name__} {baseline!r}"
        )
    value = float(baseline)
    if not np.isfinite(value):
        raise ValueError(f"baseline: expected a finite number, got {baseline}")
    with np.errstate(over="ignore"):
        typed = dtype.type(value)
    if not np.isfinite(typed):
        raise ValueError(
            f"baseline: expected a number within the range of x's dtype {dtype}, got {value:g}"
        )
    return value


def _scores(
    output: np.ndarray, targets: np.ndarray | None, rows: tuple[int, int], name: str
) -> np.ndarray:
    if targets is None:
        if output.ndim == 1 or (output.ndim == 2 and output.shape[1] == 1):
            return output.reshape(-1).astype(np.float64)
        raise ValueError(
            f"{name} call for rows {rows[0]}..{rows[1]}: the model gives outputs of shape "
            f"{output.shape[1:]} per row; pass target to choose one"
        )
    if output.ndim != 2:
        raise ValueError(
            f"{name} call for rows {rows[0]}..{rows[1]}: expected outputs (k, C) to index "
            f"with target, got shape {output.shape}"
        )
    if targets.max() >= output.shape[1]:
        raise ValueError(
            f"target: expected indices in [0, {output.shape[1] - 1}], got {int(targets.max())}"
        )
    return output[np.arange(len(targets)), targets].astype(np.float64)


def occlusion(
    predict_fn: PredictFn,
    x: np.ndarray,
    target: int | np.ndarray | None = None,
    *,
    window: int | tuple[int, ...],
    stride: int | tuple[int, ...] | None = None,
    baseline: float = 0.0,
    batch_size: int = 64,
) -> np.ndarray:
    """Occlusion maps shaped like ``x``.

    Args:
        predict_fn: ``predict_fn(x) -> outputs``, ``(k,)`` scores or ``(k, C)`` outputs.
        x: a batch ``(N, *input_shape)``.
        target: None for one score per row, else the output index per input.
        window: the occluding window over the non-batch axes (an int for every axis).
        stride: the step between windows (default: the window, no overlap).
        baseline: the value an occluded element takes (a finite number).
        batch_size: the most occluded copies sent to ``predict_fn`` in one call.

    Returns:
        An array shaped like ``x``: the mean score drop of the windows covering each element.

    Examples:
        For ``S(x) = 3 * sum(x)`` a 1x1 window gives ``3 * x`` exactly:

        >>> score = lambda x: 3 * x.sum(axis=(1, 2))
        >>> occlusion(score, np.array([[[1.0, 2.0], [0.5, -1.0]]]), window=1)
        array([[[ 3. ,  6. ],
                [ 1.5, -3. ]]])
    """
    check_callable(predict_fn, "predict_fn")
    x = as_input_batch(x)
    targets = as_targets(target, x.shape[0])
    shape = x.shape[1:]
    window = _per_axis(window, shape, "window")
    stride = window if stride is None else _per_axis(stride, shape, "stride")
    batch_size = check_positive_int(batch_size, "batch_size")
    baseline = _check_baseline(baseline, x.dtype)

    starts = list(itertools.product(
        *(range(0, d - w + 1, s) for d, w, s in zip(shape, window, stride, strict=True))
    ))
    boxes = [tuple(slice(b, b + w) for b, w in zip(start, window, strict=True))
             for start in starts]
    coverage = np.zeros(shape)
    for box in boxes:
        coverage[box] += 1

    trailing: tuple[int, ...] | None = None  # every call's outputs are held to the first's

    def scores(batch: np.ndarray, chunk_targets: np.ndarray | None, start: int, stop: int,
               name: str) -> np.ndarray:
        nonlocal trailing
        output = call_chunk(predict_fn, batch, start=start, stop=stop,
                            expected_trailing=trailing, name=name)
        trailing = output.shape[1:]
        return _scores(output, chunk_targets, (start, stop - 1), name)

    base_scores = np.empty(x.shape[0])
    for start, stop in chunk_bounds(x.shape[0], batch_size):
        chunk_targets = None if targets is None else targets[start:stop]
        base_scores[start:stop] = scores(x[start:stop], chunk_targets, start, stop, "predict_fn")

    # occluded row r is window r % len(boxes) of input r // len(boxes)
    total = np.zeros(x.shape)
    for start, stop in chunk_bounds(x.shape[0] * len(boxes), batch_size):
        inputs, windows = np.divmod(np.arange(start, stop), len(boxes))
        batch = x[inputs]  # a copy: x itself is never written
        for row, window_index in enumerate(windows):
            batch[row][boxes[window_index]] = baseline
        chunk_targets = None if targets is None else targets[inputs]
        drops = base_scores[inputs] - scores(batch, chunk_targets, start, stop,
                                             "predict_fn (occluded copies)")
        for i, window_index, drop in zip(inputs, windows, drops, strict=True):
            total[i][boxes[window_index]] += drop
    result = np.divide(total, coverage, out=np.zeros_like(total), where=coverage > 0)
    return cast_result(result, x.dtype, name="predict_fn")
