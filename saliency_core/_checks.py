"""Input checks shared by every method: refuse bad input before any callback runs.

Each check raises ``ValueError`` (values, shapes) or ``TypeError`` (types, dtypes) with
what was expected and what came. None of them copies data it does not have to.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence

import numpy as np

__all__ = [
    "as_input_batch",
    "as_targets",
    "check_callable",
    "check_choice",
    "check_non_negative",
    "check_positive_int",
    "check_callback_output",
]


def _describe_shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def as_input_batch(x: object, *, name: str = "x") -> np.ndarray:
    """Return ``x`` as a float array with a batch axis, refusing what cannot be explained.

    Integer (and float16) inputs become float32; float32 and float64 stay as they are.
    """
    if hasattr(x, "__array__") or isinstance(x, np.ndarray | list | tuple):
        array = np.asarray(x)
    else:
        raise TypeError(f"{name}: expected a numpy array, got {type(x).__name__}")
    kind = array.dtype.kind
    if kind == "b" or kind not in "iuf":
        raise TypeError(
            f"{name}: expected a real numeric array (float or integer), got dtype {array.dtype}"
        )
    if kind in "iu" or array.dtype == np.float16:
        array = array.astype(np.float32)
    if array.ndim < 2:
        raise ValueError(
            f"{name}: expected a batch of shape (N, *input_shape) with at least 2 dimensions, "
            f"got shape {_describe_shape(array.shape)}; add a batch axis with {name}[None]"
        )
    if array.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one input in the batch, got shape "
                         f"{_describe_shape(array.shape)}")
    if not np.isfinite(array).all():
        bad = np.flatnonzero(~np.isfinite(array).reshape(array.shape[0], -1).all(axis=1))
        raise ValueError(
            f"{name}: expected finite values, got NaN or inf in input(s) {bad[:10].tolist()}"
        )
    return array


def as_targets(target: object, n: int) -> np.ndarray | None:
    """Return ``None`` or an int64 array ``(n,)`` of non-negative output indices."""
    if target is None:
        return None
    if isinstance(target, bool | np.bool_):
        raise ValueError(f"target: expected an integer index, got the boolean {target}")
    if isinstance(target, numbers.Integral):
        if target < 0:
            raise ValueError(f"target: expected a non-negative index, got {target}")
        return np.full(n, int(target), dtype=np.int64)
    array = np.asarray(target)
    if array.dtype.kind not in "iu":
        raise ValueError(
            f"target: expected integer output indices (an int or an int array of length {n}), "
            f"got dtype {array.dtype}; convert with .astype(int) if the values are whole"
        )
    if array.ndim == 0:
        return as_targets(int(array), n)
    if array.shape != (n,):
        raise ValueError(
            f"target: expected one index per input, shape ({n},), "
            f"got shape {_describe_shape(array.shape)}"
        )
    if (array < 0).any():
        raise ValueError(
            f"target: expected non-negative indices, got {array[array < 0][:10].tolist()}"
        )
    return array.astype(np.int64, copy=False)


def check_positive_int(value: object, name: str) -> int:
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected a positive integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value}")
    return int(value)


def check_non_negative(value: object, name: str) -> float:
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a non-negative number, got {value!r}")
    number = float(value)
    if not np.isfinite(number) or number < 0:
        raise ValueError(f"{name}: expected a finite non-negative number, got {value}")
    return number


def check_choice(value: object, name: str, choices: Sequence[str]) -> str:
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name}: expected one of {listed}, got {value!r}")
    return str(value)


def check_callable(fn: object, name: str = "fn") -> Callable:
    if not callable(fn):
        raise TypeError(f"{name}: expected a callable fn(x, target), got {type(fn).__name__}")
    return fn


def check_callback_output(
    output: object,
    *,
    rows: tuple[int, int],
    expected_shape: tuple[int, ...] | None,
    n_rows: int,
    name: str = "fn",
) -> np.ndarray:
    """Check one callback result: a finite numpy array with ``n_rows`` rows.

    ``expected_shape`` is the full shape required, or ``None`` when only the row count is
    fixed (the first call of a method whose callbacks may return any trailing shape).
    ``rows`` names the rows of the call, ``(first, last)`` inclusive, for the message.
    """
    where = f"{name} call for rows {rows[0]}..{rows[1]}"
    if not isinstance(output, np.ndarray):
        raise TypeError(
            f"{where}: expected a numpy array, got {type(output).__name__} "
            "(convert framework tensors to numpy, or use an adapter from `adapters`)"
        )
    if expected_shape is not None and output.shape != expected_shape:
        raise ValueError(
            f"{where}: expected an array of shape {_describe_shape(expected_shape)}, "
            f"got shape {_describe_shape(output.shape)}"
        )
    if output.ndim == 0 or output.shape[0] != n_rows:
        raise ValueError(
            f"{where}: expected {n_rows} rows (one per input row), "
            f"got shape {_describe_shape(output.shape)}"
        )
    if output.dtype.kind not in "iuf":
        raise TypeError(f"{where}: expected a real numeric array, got dtype {output.dtype}")
    if not np.isfinite(output).all():
        raise ValueError(f"{where}: expected finite values, got NaN or inf")
    return output
