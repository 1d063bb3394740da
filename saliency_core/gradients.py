"""Gradient maps: vanilla gradient, gradient x input, integrated gradients.

Each method has the shape ``method(fn, x, target=None, *, options) -> maps`` of every
method in the core, so ``functools.partial(method, fn, **options)`` is itself an
attribution callback (SmoothGrad over integrated gradients is
``smoothgrad(partial(integrated_gradients, fn, steps=20), x, target)``).
"""

from __future__ import annotations

import numpy as np

from ._checks import (
    as_input_batch,
    as_targets,
    check_callable,
    check_positive_int,
)
from ._streaming import RunningStatistic, call_chunk, cast_result, chunk_bounds, stream_rows
from .types import GradientFn

__all__ = ["gradient_x_input", "integrated_gradients", "vanilla_gradient"]


def vanilla_gradient(
    fn: GradientFn,
    x: np.ndarray,
    target: int | np.ndarray | None = None,
    *,
    batch_size: int = 64,
) -> np.ndarray:
    """The gradient of the target score with respect to the input: ``dS_c/dx`` (eq. 1).

    Args:
        fn: a gradient callback ``fn(x, target)`` returning arrays shaped like ``x``.
        x: a batch ``(N, *input_shape)``.
        target: None, one output index for all inputs, or one per input ``(N,)``.
        batch_size: the most inputs sent to ``fn`` in one call.

    Returns:
        An array shaped like ``x``, in ``x``'s float dtype.

    Examples:
        >>> square = lambda x, target: 2 * x  # the gradient of sum(x**2)
        >>> vanilla_gradient(square, np.array([[1.0, -3.0]]))
        array([[ 2., -6.]])
    """
    check_callable(fn)
    x = as_input_batch(x)
    targets = as_targets(target, x.shape[0])
    batch_size = check_positive_int(batch_size, "batch_size")
    result = np.empty_like(x)
    for start, stop in chunk_bounds(x.shape[0], batch_size):
        chunk_targets = None if targets is None else targets[start:stop]
        result[start:stop] = call_chunk(fn, x[start:stop], chunk_targets, start=start,
                                        stop=stop, expected_trailing=x.shape[1:])
    return result


def gradient_x_input(
    fn: GradientFn,
    x: np.ndarray,
    target: int | np.ndarray | None = None,
    *,
    batch_size: int = 64,
) -> np.ndarray:
    """The gradient multiplied element-wise by the input (paper, section 3.1).

    Sharper maps, but pixels whose value is 0 always get 0, whatever their influence.

    Examples:
        >>> square = lambda x, target: 2 * x
        >>> gradient_x_input(square, np.array([[1.0, -3.0]]))
        array([[ 2., 18.]])
    """
    x = as_input_batch(x)
    return vanilla_gradient(fn, x, target, batch_size=batch_size) * x


def _as_baseline(baseline: object, x: np.ndarray) -> np.ndarray:
    if baseline is None:
        return np.zeros((1,) * x.ndim, dtype=x.dtype)
    try:
        array = np.asarray(baseline)
    except (ValueError, TypeError):
        raise ValueError(
            f"baseline: expected a number or a rectangular numeric array, got a ragged "
            f"{type(baseline).__name__}"
        ) from None
    if array.dtype.kind not in "iuf":
        raise TypeError(f"baseline: expected a number or a numeric array, got dtype {array.dtype}")
    if array.ndim == x.ndim - 1:  # one input's shape: the same baseline for every input
        array = array[None]
    try:
        np.broadcast_shapes(array.shape, x.shape)
        broadcast = np.broadcast_to(array, x.shape)
    except ValueError:
        raise ValueError(
            f"baseline: expected a number or an array broadcastable to x's shape {x.shape} "
            f"(or to one input's shape {x.shape[1:]}), got shape {array.shape}"
        ) from None
    if broadcast.shape != x.shape:
        raise ValueError(f"baseline: shape {array.shape} would change x's shape {x.shape}")
    if not np.isfinite(array).all():
        raise ValueError("baseline: expected finite values, got NaN or inf")
    with np.errstate(over="ignore"):
        typed = array.astype(x.dtype, copy=False)
    if not np.isfinite(typed).all():
        raise ValueError(
            f"baseline: expected values within the range of x's dtype {x.dtype}, got values up "
            f"to {np.abs(array).max():g}; pass float64 inputs"
        )
    return typed


def integrated_gradients(
    fn: GradientFn,
    x: np.ndarray,
    target: int | np.ndarray | None = None,
    *,
    baseline: float | np.ndarray | None = None,
    steps: int = 50,
    batch_size: int = 64,
) -> np.ndarray:
    """Integrated gradients (Sundararajan et al. 2017) by the midpoint Riemann rule.

    ``(x - x') * 1/m * sum_{k=1..m} grad S(x' + (k - 1/2)/m * (x - x'))`` with ``x'`` the
    baseline. The attributions of an input sum to ``S(x) - S(x')`` up to a quadrature
    error that falls as ``1/steps**2`` for smooth scores (completeness).

    Args:
        fn: a gradient callback.
        x: a batch ``(N, *input_shape)``.
        target: None, one output index for all inputs, or one per input ``(N,)``.
        baseline: None (zeros), a number, or an array broadcastable to ``x`` (one input's
            shape is applied to every input).
        steps: points on the straight path from the baseline to each input.
        batch_size: the most path points sent to ``fn`` in one call; the points of several
            inputs share a call, and the next call's points are made in a background
            thread while ``fn`` runs (for chunks of at least 131,072 elements).

    Returns:
        An array shaped like ``x``, in ``x``'s float dtype.

    Examples:
        For ``S(x) = sum(x**2)`` and a zero baseline the attributions are ``x**2`` exactly:

        >>> square = lambda x, target: 2 * x
        >>> integrated_gradients(square, np.array([[1.0, -3.0]]), steps=4)
        array([[1., 9.]])
    """
    check_callable(fn)
    x = as_input_batch(x)
    targets = as_targets(target, x.shape[0])
    steps = check_positive_int(steps, "steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    base = np.broadcast_to(_as_baseline(baseline, x), x.shape)
    with np.errstate(over="ignore"):
        difference = x - base
    if not np.isfinite(difference).all():
        raise ValueError(
            f"baseline: expected x - baseline within the range of x's dtype {x.dtype}, got an "
            "overflow; pass float64 inputs"
        )
    alphas = ((np.arange(steps) + 0.5) / steps).astype(x.dtype)
    spread = (-1,) + (1,) * (x.ndim - 1)

    def make_rows(inputs: np.ndarray, samples: np.ndarray, runs: list) -> np.ndarray:
        return base[inputs] + alphas[samples].reshape(spread) * difference[inputs]

    statistic = RunningStatistic("mean", x.shape[0])
    stream_rows(
        fn,
        make_rows,
        targets,
        n_inputs=x.shape[0],
        per_input=steps,
        batch_size=batch_size,
        statistic=statistic,
        expected_trailing=x.shape[1:],
        threads=1,  # the next chunk's path points are made while fn runs on this one
    )
    with np.errstate(over="ignore"):
        attributions = difference * statistic.result()
    return cast_result(attributions, x.dtype)
