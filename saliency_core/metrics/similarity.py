"""Similarity of two batches of saliency maps, row by row: Spearman, Pearson and SSIM.

Each function takes two batches ``a`` and ``b`` of the same shape ``(N, *map_shape)`` and
returns one value per row, ``(N,)`` in float64. They are what the randomisation and
robustness metrics compare maps with, and they give the numbers of the functions Quantus
uses for the same purpose (``quantus.functions.similarity_func.correlation_spearman``,
``correlation_pearson`` and ``ssim``, the latter with scikit-image's
``structural_similarity`` at its defaults).

A correlation is undefined when one of its two maps is constant (zero variance): those
rows are NaN, as in scipy, and a ``RuntimeWarning`` names them.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np

from .._checks import as_input_batch

__all__ = ["SIMILARITIES", "pearson", "spearman", "ssim"]

#: The names the metrics accept for ``similarity=``.
SIMILARITIES = ("spearman", "pearson", "ssim")


def _pair(a: object, b: object) -> tuple[np.ndarray, np.ndarray]:
    a = as_input_batch(a, name="a")
    b = as_input_batch(b, name="b")
    if a.shape != b.shape:
        raise ValueError(f"b: expected the shape of a, {a.shape}, got shape {b.shape}")
    return a, b


def _flat(a: np.ndarray) -> np.ndarray:
    flat = a.reshape(a.shape[0], -1).astype(np.float64, copy=False)
    if flat.shape[1] < 2:
        raise ValueError(
            "a: expected at least 2 values per row to correlate, "
            f"got shape {a.shape}"
        )
    return flat


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks ``1..M`` of each row of a 2-D array, ties given the mean of their ranks.

    The same ranks as ``scipy.stats.rankdata(values, axis=1)`` (its default ``"average"``
    method), computed for all rows at once.

    Examples:
        >>> _average_ranks(np.array([[10.0, 30.0, 20.0, 30.0]]))
        array([[1. , 3.5, 2. , 3.5]])
    """
    n, m = values.shape
    order = np.argsort(values, axis=1, kind="stable")
    ordered = np.take_along_axis(values, order, axis=1)
    # a new group of equal values starts at column 0 and wherever the value changes
    starts = np.ones((n, m), dtype=bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    columns = np.broadcast_to(np.arange(m), (n, m))
    first = np.maximum.accumulate(np.where(starts, columns, 0), axis=1)
    ends = np.ones((n, m), dtype=bool)
    ends[:, :-1] = starts[:, 1:]
    last = np.minimum.accumulate(np.where(ends, columns, m - 1)[:, ::-1], axis=1)[:, ::-1]
    ranks = np.empty((n, m), dtype=np.float64)
    np.put_along_axis(ranks, order, (first + last) / 2.0 + 1.0, axis=1)
    return ranks


def _constant_rows(a: np.ndarray) -> np.ndarray:
    return a.max(axis=1) == a.min(axis=1)


def _correlate_rows(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson correlation of each row pair, float64; NaN where a row is constant.

    Returns the correlations and the boolean mask of undefined rows.
    """
    undefined = _constant_rows(a) | _constant_rows(b)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    numerator = np.einsum("ij,ij->i", a, b)
    denominator = np.sqrt(np.einsum("ij,ij->i", a, a) * np.einsum("ij,ij->i", b, b))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.clip(numerator / denominator, -1.0, 1.0)
    r[undefined] = np.nan
    return r, undefined


def _warn_undefined(undefined: np.ndarray, what: str, stacklevel: int = 3) -> None:
    if undefined.any():
        rows = np.flatnonzero(undefined)
        warnings.warn(
            f"{what}: row(s) {rows[:10].tolist()} hold a constant map, whose correlation is "
            "undefined; they are NaN",
            RuntimeWarning,
            stacklevel=stacklevel,
        )


def _spearman_rows(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spearman correlation of flat float rows, without checks or warnings (for metrics)."""
    return _correlate_rows(_average_ranks(a), _average_ranks(b))


def _pearson_rows(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson correlation of flat float rows, without checks or warnings (for metrics)."""
    return _correlate_rows(a, b)


def spearman(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation of each pair of rows ``a[i]``, ``b[i]``.

    The Pearson correlation of the rows' ranks over all their elements (maps are
    flattened), ties given the average of their ranks, as in ``scipy.stats.spearmanr``.

    Args:
        a: a batch of maps ``(N, *map_shape)``, at least 2 values per row.
        b: a batch of the same shape.

    Returns:
        ``(N,)`` float64 correlations in ``[-1, 1]``; NaN (with a ``RuntimeWarning``) for
        rows where ``a[i]`` or ``b[i]`` is constant.

    Raises:
        ValueError: shapes differ, fewer than 2 values per row, or NaN/inf values.
        TypeError: not a real numeric array.

    Examples:
        >>> spearman(np.array([[1.0, 2.0, 3.0, 4.0]]), np.array([[1.0, 4.0, 9.0, 16.0]]))
        array([1.])
        >>> spearman(np.array([[1.0, 2.0, 3.0]]), np.array([[3.0, 1.0, 1.0]]))
        array([-0.8660254])

    References:
        Spearman (1904). The proof and measurement of association between two things.
        The American Journal of Psychology 15(1).
    """
    a, b = _pair(a, b)
    r, undefined = _spearman_rows(_flat(a), _flat(b))
    _warn_undefined(undefined, "spearman")
    return r


def pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of each pair of rows ``a[i]``, ``b[i]`` (maps flattened).

    Args:
        a: a batch of maps ``(N, *map_shape)``, at least 2 values per row.
        b: a batch of the same shape.

    Returns:
        ``(N,)`` float64 correlations in ``[-1, 1]``, computed in float64 from centred
        values; NaN (with a ``RuntimeWarning``) for rows where ``a[i]`` or ``b[i]`` is
        constant.

    Raises:
        ValueError: shapes differ, fewer than 2 values per row, or NaN/inf values.
        TypeError: not a real numeric array.

    Examples:
        >>> pearson(np.array([[1.0, 2.0, 3.0]]), np.array([[2.0, 4.0, 7.0]]))
        array([0.99339927])
    """
    a, b = _pair(a, b)
    r, undefined = _pearson_rows(_flat(a), _flat(b))
    _warn_undefined(undefined, "pearson")
    return r


def _window_sums(values: np.ndarray, win_size: int) -> np.ndarray:
    """Sums over every ``win_size``-wide window lying inside the map, along each map axis."""
    for axis in range(1, values.ndim):
        length = values.shape[axis] - win_size + 1
        index = [slice(None)] * values.ndim
        index[axis] = slice(0, length)
        total = values[tuple(index)].copy()
        for offset in range(1, win_size):
            index[axis] = slice(offset, offset + length)
            total += values[tuple(index)]
        values = total
    return values


def _ssim_rows(
    a: np.ndarray,
    b: np.ndarray,
    *,
    data_range: float | None = None,
    win_size: int = 7,
    k1: float = 0.01,
    k2: float = 0.03,
) -> np.ndarray:
    """SSIM of each row pair of float arrays ``(N, *spatial)``, without input checks."""
    a = a.astype(np.float64, copy=False)
    b = b.astype(np.float64, copy=False)
    map_axes = tuple(range(1, a.ndim))
    if data_range is None:
        ranges = np.maximum(a.max(axis=map_axes), b.max(axis=map_axes)) - np.minimum(
            a.min(axis=map_axes), b.min(axis=map_axes)
        )
    else:
        ranges = np.full(a.shape[0], float(data_range))
    n_points = win_size ** (a.ndim - 1)
    covariance_norm = n_points / (n_points - 1.0)  # sample covariance, as scikit-image
    # local means from the maps; local (co)variances from maps centred on their own mean,
    # which leaves them unchanged and keeps E[a^2] - E[a]^2 from cancelling digits
    shape = (-1,) + (1,) * (a.ndim - 1)
    centre_a = a.mean(axis=map_axes).reshape(shape)
    centre_b = b.mean(axis=map_axes).reshape(shape)
    a0, b0 = a - centre_a, b - centre_b
    mean_a0 = _window_sums(a0, win_size) / n_points
    mean_b0 = _window_sums(b0, win_size) / n_points
    var_a = covariance_norm * (_window_sums(a0 * a0, win_size) / n_points - mean_a0**2)
    var_b = covariance_norm * (_window_sums(b0 * b0, win_size) / n_points - mean_b0**2)
    cov = covariance_norm * (_window_sums(a0 * b0, win_size) / n_points - mean_a0 * mean_b0)
    mean_a, mean_b = mean_a0 + centre_a, mean_b0 + centre_b
    c1 = ((k1 * ranges) ** 2).reshape(shape)
    c2 = ((k2 * ranges) ** 2).reshape(shape)
    with np.errstate(divide="ignore", invalid="ignore"):
        index = ((2 * mean_a * mean_b + c1) * (2 * cov + c2)) / (
            (mean_a**2 + mean_b**2 + c1) * (var_a + var_b + c2)
        )
    result = index.reshape(a.shape[0], -1).mean(axis=1)
    # a zero range means both maps are the same constant: identical maps, SSIM 1
    result[ranges == 0] = 1.0
    return result


def _check_ssim_options(
    shape: tuple[int, ...], data_range: object, win_size: object, k1: object, k2: object
) -> None:
    if isinstance(win_size, bool) or not isinstance(win_size, numbers.Integral):
        raise TypeError(f"win_size: expected an odd integer >= 3, got {win_size!r}")
    win_size = int(win_size)
    if win_size < 3 or win_size % 2 == 0:
        raise ValueError(f"win_size: expected an odd integer >= 3, got {win_size}")
    if min(shape[1:]) < win_size:
        raise ValueError(
            f"ssim: expected maps at least win_size={win_size} long along every map axis, "
            f"got maps of shape {shape[1:]}; pass a smaller odd win_size"
        )
    for name, value in (("k1", k1), ("k2", k2)) + (
        () if data_range is None else (("data_range", data_range),)
    ):
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise TypeError(f"{name}: expected a positive number, got {value!r}")
        if not np.isfinite(float(value)) or float(value) <= 0:
            raise ValueError(f"{name}: expected a finite positive number, got {value}")


def ssim(
    a: np.ndarray,
    b: np.ndarray,
    *,
    data_range: float | None = None,
    win_size: int = 7,
    k1: float = 0.01,
    k2: float = 0.03,
) -> np.ndarray:
    """Structural similarity (SSIM) of each pair of maps ``a[i]``, ``b[i]``.

    The mean over every ``win_size``-wide window lying inside the map of

        (2 mu_a mu_b + C1) (2 sigma_ab + C2) / ((mu_a^2 + mu_b^2 + C1)(sigma_a^2 + sigma_b^2 + C2))

    with local means, sample variances and covariance over the window (uniform weights),
    ``C1 = (k1 * data_range)^2`` and ``C2 = (k2 * data_range)^2``. This is scikit-image's
    ``structural_similarity(a[i], b[i], data_range=...)`` at its defaults (7-wide uniform
    window, K1 = 0.01, K2 = 0.03, sample covariance), in float64 for every input dtype.
    Maps are usually 2-D, ``(N, H, W)``; 1-D rows ``(N, L)`` and 3-D volumes use the same
    formula with 1-D and 3-D windows (as scikit-image does). Reduce the channels of a
    colour map first (e.g. ``maps.mean(axis=-1)``).

    Args:
        a: a batch of maps ``(N, *map_shape)``, every map axis at least ``win_size`` long.
        b: a batch of the same shape.
        data_range: the range of values the constants are scaled by. Default: per row,
            the range of both maps together, ``max(a[i], b[i]) - min(a[i], b[i])``, the
            rule of Quantus's ``ssim`` similarity function.
        win_size: the odd window width (default 7).
        k1: the luminance constant (default 0.01).
        k2: the contrast constant (default 0.03).

    Returns:
        ``(N,)`` float64 values in ``[-1, 1]``; 1 for identical maps. Two maps that are
        the same constant (a zero data range) get 1.

    Raises:
        ValueError: shapes differ, a map axis is shorter than ``win_size``, NaN/inf
            values, or bad options.
        TypeError: not a real numeric array, or options of the wrong type.

    Examples:
        >>> grid = np.arange(64.0).reshape(1, 8, 8)
        >>> ssim(grid, grid)
        array([1.])
        >>> float(ssim(grid, grid[:, ::-1]).round(4)[0])
        -0.9257

    References:
        Wang, Bovik, Sheikh, Simoncelli (2004). Image quality assessment: from error
        visibility to structural similarity. IEEE Transactions on Image Processing 13(4).
    """
    a, b = _pair(a, b)
    _check_ssim_options(a.shape, data_range, win_size, k1, k2)
    return _ssim_rows(a, b, data_range=data_range, win_size=int(win_size), k1=k1, k2=k2)
