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
    check_callback_output,
    check_positive_int,
)
from .types import PredictFn

__all__ = ["occlusion"]


def _per_axis(value: object, shape: tuple[int, ...], name: str) -> tuple[int, ...]:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (int(value),) * len(shape)
    if not isinstance(value, tuple | list) or len(value) != len(shape):
        raise ValueError(
            f"{name}: expected an int or one int per input axis ({len(shape)} for inputs of "
            f"shape {shape}), got {value!r}"
        )
    sizes = tuple(check_positive_int(v, name) for v in value)
    too_big = [(s, d) for s, d in zip(sizes, shape, strict=True) if s > d]
    if name == "window" and too_big:
        raise ValueError(f"window: expected sizes within the input's shape {shape}, got {sizes}")
    return sizes


def _scores(output: np.ndarray, targets: np.ndarray | None, rows: tuple[int, int]) -> np.ndarray:
    if targets is None:
        if output.ndim == 1 or (output.ndim == 2 and output.shape[1] == 1):
            return output.reshape(-1).astype(np.float64)
        raise ValueError(
            f"predict_fn call for rows {rows[0]}..{rows[1]}: the model gives outputs of shape "
            f"{output.shape[1:]} per row; pass target to choose one"
        )
    if output.ndim != 2:
        raise ValueError(
            f"predict_fn call for rows {rows[0]}..{rows[1]}: expected outputs (k, C) to index "
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
        baseline: the value an occluded element takes.
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
    if not np.isfinite(baseline):
        raise ValueError(f"baseline: expected a finite number, got {baseline}")

    starts = list(itertools.product(
        *(range(0, d - w + 1, s) for d, w, s in zip(shape, window, stride, strict=True))
    ))
    boxes = [tuple(slice(b, b + w) for b, w in zip(start, window, strict=True))
             for start in starts]
    coverage = np.zeros(shape)
    for box in boxes:
        coverage[box] += 1

    base_scores = np.empty(x.shape[0])
    for start in range(0, x.shape[0], batch_size):
        stop = min(start + batch_size, x.shape[0])
        output = check_callback_output(predict_fn(x[start:stop]), rows=(start, stop - 1),
                                       expected_shape=None, n_rows=stop - start,
                                       name="predict_fn")
        chunk_targets = None if targets is None else targets[start:stop]
        base_scores[start:stop] = _scores(output, chunk_targets, (start, stop - 1))

    total = np.zeros(x.shape)
    rows = [(i, b) for i in range(x.shape[0]) for b in range(len(boxes))]
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        batch = np.stack([x[i] for i, _ in chunk])
        for row, (_, b) in enumerate(chunk):
            batch[row][boxes[b]] = baseline
        rows_named = (start, start + len(chunk) - 1)
        output = check_callback_output(predict_fn(batch), rows=rows_named, expected_shape=None,
                                       n_rows=len(chunk), name="predict_fn")
        inputs = np.array([i for i, _ in chunk])
        scores = _scores(output, None if targets is None else targets[inputs], rows_named)
        for (i, b), score in zip(chunk, scores, strict=True):
            total[i][boxes[b]] += base_scores[i] - score
    result = np.divide(total, coverage, out=np.zeros_like(total), where=coverage > 0)
    return result.astype(x.dtype, copy=False)
