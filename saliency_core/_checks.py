"""Input checks shared by every method: refuse bad input before any callback runs.

Each check raises ``ValueError`` (values, shapes) or ``TypeError`` (types, dtypes) with
what was expected and what came. None of them copies data it does not have to.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence

import numpy as np

__all__ = [
    "as_generator",
    "as_input_batch",
    "as_targets",
    "check_bool",
    "check_callable",
    "check_choice",
    "check_non_negative",
    "check_positive_int",
    "check_callback_output",
]

_INT64_MAX = int(np.iinfo(np.int64).max)


def _describe_shape(shape: Sequence[int]) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def as_input_batch(x: object, *, name: str = "x") -> np.ndarray:
    """Return ``x`` as a float array with a batch axis, refusing what cannot be explained.

    Integer (and float16) inputs become float32; float32 and float64 stay as they are;
    wider floats (``longdouble``) become float64. Byte-swapped (big-endian) arrays are
    converted to native byte order, so they give the same results as native ones.
    Refused: non-arrays, masked arrays, ragged lists, non-numeric and boolean dtypes, fewer
    than 2 dimensions, an empty axis, NaN and infinity.
    """
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(
            f"{name}: expected a plain numpy array, got a masked array; fill the masked "
            f"values first ({name}.filled(value))"
        )
    if hasattr(x, "__array__") or isinstance(x, np.ndarray | list | tuple):
        try:
            array = np.asarray(x)
        except (ValueError, TypeError):
            raise ValueError(
                f"{name}: expected a rectangular array of numbers, got a ragged "
                f"{type(x).__name__} (rows of different lengths)"
            ) from None
    else:
        raise TypeError(f"{name}: expected a numpy array, got {type(x).__name__}")
    kind = array.dtype.kind
    if kind == "b" or kind not in "iuf":
        raise TypeError(
            f"{name}: expected a real numeric array (float or integer), got dtype {array.dtype}"
        )
    if kind in "iu" or array.dtype.itemsize < 4:
        array = array.astype(np.float32)
    elif array.dtype.itemsize > 8:
        array = array.astype(np.float64)
    elif not array.dtype.isnative:
        array = array.astype(array.dtype.newbyteorder("="))
    if array.ndim < 2:
        raise ValueError(
            f"{name}: expected a batch of shape (N, *input_shape) with at least 2 dimensions, "
            f"got shape {_describe_shape(array.shape)}; add a batch axis with {name}[None]"
        )
    if array.shape[0] == 0:
        raise ValueError(f"{name}: expected at least one input in the batch, got shape "
                         f"{_describe_shape(array.shape)}")
    if array.size == 0:
        raise ValueError(
            f"{name}: expected inputs with at least one element (no axis of size 0), got shape "
            f"{_describe_shape(array.shape)}"
        )
    if not np.isfinite(array).all():
        bad = np.flatnonzero(~np.isfinite(array).reshape(array.shape[0], -1).all(axis=1))
        raise ValueError(
            f"{name}: expected finite values, got NaN or inf in input(s) {bad[:10].tolist()}"
        )
    return array


def _check_index(value: int) -> int:
    if value < 0:
        raise ValueError(f"target: expected a non-negative index, got {value}")
    if value > _INT64_MAX:
        raise ValueError(f"target: expected an index that fits in int64 (at most 2**63 - 1), "
                         f"got {value}")
    return value


def as_targets(target: object, n: int) -> np.ndarray | None:
    """Return ``None`` or an int64 array ``(n,)`` of non-negative output indices.

    ``target`` is None, one integer for every input, or an integer array of length ``n``.
    Booleans, floats (also whole-valued ones), strings and object arrays are refused with a
    ``TypeError``; negative indices, indices beyond int64 and wrong shapes with a
    ``ValueError``.
    """
    if target is None:
        return None
    if isinstance(target, bool | np.bool_):
        raise TypeError(f"target: expected an integer index, got the boolean {target}")
    if isinstance(target, numbers.Integral):
        return np.full(n, _check_index(int(target)), dtype=np.int64)
    try:
        array = np.asarray(target)
    except (ValueError, TypeError, OverflowError):
        raise ValueError(
            f"target: expected an int or an int array of length {n}, got a ragged "
            f"{type(target).__name__}"
        ) from None
    if array.dtype.kind == "f" and array.size and np.isfinite(array).all() \
            and (array == np.round(array)).all():
        raise TypeError(
            f"target: expected integer output indices (an int or an int array of length {n}), "
            f"got whole numbers of dtype {array.dtype}; convert them with np.asarray(target)"
            ".astype(int)"
        )
    if array.dtype.kind not in "iu":
        raise TypeError(
            f"target: expected integer output indices (an int or an int array of length {n}), "
            f"got dtype {array.dtype}"
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
    if array.dtype.kind == "u" and array.max() > _INT64_MAX:
        raise ValueError(
            "target: expected indices that fit in int64 (at most 2**63 - 1), got "
            f"{int(array.max())} (dtype {array.dtype})"
        )
    return array.astype(np.int64, copy=False)


def check_positive_int(value: object, name: str) -> int:
    """Return ``value`` as an int in ``[1, 2**63 - 1]``; bools and floats are refused."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected a positive integer, got {value!r}")
    number = int(value)
    if number < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value}")
    if number > _INT64_MAX:
        raise ValueError(f"{name}: expected a positive integer below 2**63, got {value}")
    return number


def check_non_negative(value: object, name: str) -> float:
    """Return ``value`` as a finite float ``>= 0``; bools, NaN and infinity are refused."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a non-negative number, got {value!r}")
    number = float(value)
    if not np.isfinite(number) or number < 0:
        raise ValueError(f"{name}: expected a finite non-negative number, got {value}")
    return number


def check_bool(value: object, name: str) -> bool:
    """Return ``value`` if it is a bool (numpy's too); anything else is a TypeError."""
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


def check_choice(value: object, name: str, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of the strings ``choices``; the message lists them."""
    listed = ", ".join(repr(c) for c in choices)
    if not isinstance(value, str):
        raise TypeError(f"{name}: expected one of {listed}, got {type(value).__name__} {value!r}")
    if value not in choices:
        raise ValueError(f"{name}: expected one of {listed}, got {value!r}")
    return str(value)


def as_generator(seed: object, name: str = "seed") -> np.random.Generator:
    """A numpy Generator from None, a non-negative int, a SeedSequence or a Generator.

    A Generator is returned as it is (and so is advanced by its user); numpy's global
    random state is never used.
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, np.random.SeedSequence | np.random.BitGenerator):
        return np.random.default_rng(seed)
    if isinstance(seed, bool | np.bool_) or not isinstance(seed, numbers.Integral):
        raise TypeError(
            f"{name}: expected None, a non-negative int, a numpy SeedSequence or a numpy "
            f"Generator, got {type(seed).__name__} {seed!r}"
        )
    if int(seed) < 0:
        raise ValueError(f"{name}: expected a non-negative int, got {seed}")
    return np.random.default_rng(int(seed))


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
