"""Target checks every adapter shares (numpy only), so that they answer bad targets alike."""

from __future__ import annotations

import numpy as np

__all__ = ["as_target_rows", "check_target_range", "target_needed"]


def as_target_rows(target: object, rows: int) -> np.ndarray | None:
    """None, or the targets as int64 ``(rows,)``; an int applies to every row."""
    if target is None:
        return None
    array = np.asarray(target)
    if array.dtype.kind not in "iu":
        raise TypeError(f"expected integer targets (output indices), got dtype {array.dtype}")
    if array.ndim == 0:
        array = np.full(rows, array, dtype=np.int64)
    if array.shape != (rows,):
        raise ValueError(
            f"expected target of shape ({rows},), one output index per row, "
            f"got shape {array.shape}"
        )
    return array.astype(np.int64, copy=False)


def check_target_range(target: np.ndarray, n_outputs: int) -> None:
    """ValueError naming the valid range when a target is negative or too large."""
    bad = target[(target < 0) | (target >= n_outputs)]
    if bad.size:
        raise ValueError(
            f"expected targets in [0, {n_outputs - 1}] (the model gives {n_outputs} outputs "
            f"per row), got {np.unique(bad)[:10].tolist()}"
        )


def target_needed(n_outputs: int) -> ValueError:
    """The error for ``target=None`` on a model with several outputs per row."""
    return ValueError(
        f"the model gives {n_outputs} outputs per row, so a target is needed: pass target= "
        "(an int, or an int array with one output index per row) or objective="
    )
