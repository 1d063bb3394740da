"""Input checks and small numeric helpers shared by every module of :mod:`visualize`.

Every check raises ``TypeError`` (a wrong type or dtype) or ``ValueError`` (a wrong value
or shape) with a message of the form "expected X, got Y". Nothing here uses ``assert``.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np

__all__ = [
    "as_real_array",
    "channel_axis_index",
    "check_choice",
    "check_fraction",
    "check_ndim",
    "check_percentile",
    "check_value_range",
    "divide_by_peak",
    "float_dtype",
]


def as_real_array(value: object, *, name: str) -> np.ndarray:
    """Return ``value`` as a numpy array of finite real numbers (bool, int or float).

    Raises:
        TypeError: if the values are not real numbers (strings, objects, complex), or are a
            masked array (whose masked values would be used as they are).
        ValueError: if the array is ragged or holds NaN or infinity.
    """
    if isinstance(value, np.ma.MaskedArray):
        raise TypeError(
            f"expected {name} to be a plain array, got a masked array; fill the masked values "
            f"first ({name}.filled(value))"
        )
    try:
        array = np.asarray(value)
    except ValueError as error:
        raise ValueError(
            f"expected {name} to be a rectangular array of real numbers, got a ragged "
            f"{type(value).__name__}"
        ) from error
    if not _is_real_dtype(array.dtype):
        raise TypeError(
            f"expected {name} to hold real numbers (bool, int or float), got dtype {array.dtype}"
        )
    if np.issubdtype(array.dtype, np.floating):
        _check_finite(array, name=name)
    return array


def _is_real_dtype(dtype: np.dtype) -> bool:
    return any(np.issubdtype(dtype, kind) for kind in (np.bool_, np.integer, np.floating))


def _check_finite(array: np.ndarray, *, name: str) -> None:
    n_nan = int(np.count_nonzero(np.isnan(array)))
    n_infinite = int(np.count_nonzero(np.isinf(array)))
    if n_nan or n_infinite:
        raise ValueError(
            f"expected {name} to hold finite values, got {n_nan} NaN and "
            f"{n_infinite} infinite values"
        )


def check_ndim(array: np.ndarray, *, allowed: tuple[int, ...], name: str, layout: str) -> None:
    """Refuse arrays whose number of dimensions is not in ``allowed``, and empty arrays.

    ``layout`` names the accepted shapes for the message, e.g. ``"(H, W) or (N, H, W)"``.
    """
    if array.ndim not in allowed:
        counts = " or ".join(str(count) for count in allowed)
        raise ValueError(
            f"expected {name} with {counts} dimensions {layout}, got shape {array.shape}"
        )
    if array.size == 0:
        raise ValueError(f"expected a non-empty {name}, got shape {array.shape}")


def channel_axis_index(channel_axis: object, ndim: int, *, name: str = "channel_axis") -> int:
    """Return ``channel_axis`` as a non-negative axis index for an array of ``ndim`` dims.

    Raises:
        TypeError: if ``channel_axis`` is not an int.
        ValueError: if it is out of range for ``ndim`` dimensions.
    """
    if isinstance(channel_axis, bool) or not isinstance(channel_axis, numbers.Integral):
        raise TypeError(f"expected {name} to be an int, got {type(channel_axis).__name__}")
    if not -ndim <= int(channel_axis) < ndim:
        raise ValueError(
            f"expected {name} in [{-ndim}, {ndim - 1}] for an array of {ndim} dimensions, "
            f"got {channel_axis}"
        )
    return int(channel_axis) % ndim


def check_choice(value: object, choices: Sequence[str], *, name: str, hint: str = "") -> str:
    """Return ``value`` if it is one of ``choices``; the message lists the choices."""
    listed = ", ".join(repr(choice) for choice in choices)
    if not isinstance(value, str):
        raise TypeError(f"expected {name} to be one of {listed}, got {type(value).__name__}")
    if value not in choices:
        raise ValueError(f"expected {name} to be one of {listed}{hint}, got {value!r}")
    return value


def _as_real_number(value: object, *, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"expected {name} to be a real number, got {type(value).__name__}")
    return float(value)


def check_percentile(value: object, *, name: str = "clip_percentile") -> float:
    """Return ``value`` as a float in ``(0, 100]``."""
    percentile = _as_real_number(value, name=name)
    if not 0.0 < percentile <= 100.0:
        raise ValueError(f"expected {name} in (0, 100], got {value}")
    return percentile


def check_fraction(value: object, *, name: str) -> float:
    """Return ``value`` as a float in ``[0, 1]``."""
    fraction = _as_real_number(value, name=name)
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"expected {name} in [0, 1], got {value}")
    return fraction


def check_value_range(
    array: np.ndarray, low: float, high: float, *, name: str, hint: str = ""
) -> None:
    """Refuse arrays with values outside ``[low, high]``; ``hint`` says how to fix it."""
    smallest, largest = float(np.min(array)), float(np.max(array))
    if smallest < low or largest > high:
        raise ValueError(
            f"expected {name} with values in [{low:g}, {high:g}]{hint}, "
            f"got values in [{smallest:.4g}, {largest:.4g}]"
        )


def float_dtype(array: np.ndarray) -> np.dtype:
    """The dtype results are returned in: the input's if it is a float (in native byte
    order, so a big-endian input gives ordinary arrays), else float64."""
    if np.issubdtype(array.dtype, np.floating):
        return array.dtype.newbyteorder("=")
    return np.dtype(np.float64)


def divide_by_peak(values: np.ndarray, *, axis: tuple[int, ...]) -> np.ndarray:
    """Divide by the largest magnitude along ``axis`` (float64), so values lie in [-1, 1].

    Every scaling in this package is unchanged by a positive factor, so this changes no
    result; it only keeps huge (1e308) or tiny (1e-310) inputs from overflowing into
    infinity or NaN. All-zero slices are left as zeros.
    """
    values = np.asarray(values, dtype=np.float64)
    peak = np.max(np.abs(values), axis=axis, keepdims=True)
    return values / np.where(peak > 0, peak, 1.0)
