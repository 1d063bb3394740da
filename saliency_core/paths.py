"""Path methods: integrated gradients along other paths than the straight line.

Integrated gradients credits ``S(x) - S(x')`` to the input's elements by integrating the
gradient along a path from a baseline ``x'`` to ``x``. The methods here change the path or
the baseline:

- :func:`blur_integrated_gradients` (Xu et al. 2020) walks from a heavily blurred copy of
  the input to the input itself, through Gaussian blurs of falling width, so no baseline
  has to be chosen and no information is added on the way (a blur only removes detail);
- :func:`guided_integrated_gradients` (Kapishnikov et al. 2021) adapts the path to the
  model: at each step it moves the elements whose gradient is smallest, so the path
  avoids regions where the gradient is large for reasons unrelated to the input;
- :func:`expected_gradients` (Erion et al. 2021; Lundberg and Lee's GradientSHAP) averages
  integrated gradients over baselines drawn from a reference set, estimated by Monte Carlo
  with one random point on each straight path.

Each has the form ``method(fn, x, target=None, *, options) -> maps`` of every method in the
core: ``fn`` is a gradient callback, the maps are shaped like ``x`` and in its float dtype,
every argument is checked before ``fn`` is called, rows go to ``fn`` in chunks of at most
``batch_size``, and the maps do not depend on ``batch_size`` (beyond float rounding).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import numpy as np

from ._checks import (
    as_generator,
    as_input_batch,
    as_targets,
    check_bool,
    check_callable,
    check_non_negative,
    check_positive_int,
)
from ._streaming import call_chunk, cast_result, chunk_bounds, segments
from .gradients import _as_baseline
from .types import GradientFn, SeedLike

__all__ = ["blur_integrated_gradients", "expected_gradients", "guided_integrated_gradients"]

#: Gaussian kernels are cut at this many standard deviations (scipy's default ``truncate``,
#: which PAIR's reference implementation of Blur IG uses).
TRUNCATE = 4.0

#: Axes up to this length are blurred by one matrix product (a banded Toeplitz matrix,
#: zero padding being the rows cut at the borders); longer ones tap by tap, in
#: ``O(length x kernel)`` memory instead of ``O(length**2)``.
_MATRIX_BLUR_MAX = 1024

#: Guided IG's tolerance on the L1 distance reached by a step (PAIR's ``EPSILON``).
_L1_TOLERANCE = 1e-9


# --------------------------------------------------------------------------- checks


def _check_positive_real(value: object, name: str) -> float:
    """``value`` as a finite float ``> 0``; bools, NaN and infinity are refused."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a positive number, got {value!r}")
    number = float(value)
    if not np.isfinite(number) or number <= 0:
        raise ValueError(f"{name}: expected a finite positive number, got {value}")
    return number


def _check_fraction(value: object, name: str) -> float:
    """``value`` as a float in ``[0, 1]``."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number in [0, 1], got {value!r}")
    number = float(value)
    if not 0.0 <= number <= 1.0:  # NaN fails this too
        raise ValueError(f"{name}: expected a number in [0, 1], got {value}")
    return number


def _blurred_axes(channel_axis: object, shape: tuple[int, ...]) -> tuple[int, ...]:
    """The axes of one input (batch axis dropped) that the blur runs over."""
    ndim = len(shape) + 1
    if channel_axis is None:
        return tuple(range(len(shape)))
    if isinstance(channel_axis, bool | np.bool_) or not isinstance(channel_axis, numbers.Integral):
        raise TypeError(
            f"channel_axis: expected None or an int axis of x, got "
            f"{type(channel_axis).__name__} {channel_axis!r}"
        )
    if not -ndim <= int(channel_axis) < ndim:
        raise ValueError(
            f"channel_axis: expected None or an axis of x in [{-ndim}, {ndim - 1}], got "
            f"{channel_axis}"
        )
    channel = int(channel_axis) % ndim
    if channel == 0:
        raise ValueError("channel_axis: expected a non-batch axis (or None), got axis 0")
    axes = tuple(a for a in range(len(shape)) if a != channel - 1)
    if not axes:
        raise ValueError(
            f"channel_axis: x of shape (N, {shape[0]}) has no axis left to blur once the "
            f"channel axis {channel_axis} is set aside; pass channel_axis=None to blur it"
        )
    return axes


# --------------------------------------------------------------------------- Gaussian blur


def _gaussian_kernel(sigma: float) -> np.ndarray:
    """The normalised Gaussian ``exp(-t**2 / (2 sigma**2))`` on ``t = -r..r``,
    ``r = int(4 sigma + 0.5)`` (scipy.ndimage's kernel and radius)."""
    radius = int(TRUNCATE * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1, dtype=np.float64)
    kernel = np.exp(-0.5 / (sigma * sigma) * offsets**2)
    return kernel / kernel.sum()


def _blur_axis(image: np.ndarray, kernel: np.ndarray, axis: int) -> np.ndarray:
    """``image`` convolved with the symmetric ``kernel`` along ``axis``, zeros outside."""
    n = image.shape[axis]
    radius = len(kernel) // 2
    if n <= _MATRIX_BLUR_MAX:
        offsets = np.arange(n)[None, :] - np.arange(n)[:, None]
        inside = np.abs(offsets) <= radius
        matrix = np.where(inside, kernel[np.clip(offsets + radius, 0, 2 * radius)], 0.0)
        return np.moveaxis(np.tensordot(matrix, image, axes=([1], [axis])), 0, axis)
    reach = min(radius, n - 1)  # taps further out only ever see the zero padding
    moved = np.moveaxis(image, axis, 0)
    padded = np.zeros((n + 2 * reach, *moved.shape[1:]), dtype=np.float64)
    padded[reach:reach + n] = moved
    out = np.zeros_like(moved, dtype=np.float64)
    for shift in range(-reach, reach + 1):
        out += kernel[radius + shift] * padded[reach + shift:reach + shift + n]
    return np.moveaxis(out, 0, axis)


def _gaussian_blur(image: np.ndarray, sigma: float, axes: tuple[int, ...]) -> np.ndarray:
    """One input blurred by a Gaussian of standard deviation ``sigma`` over ``axes``, with
    zero padding (``scipy.ndimage.gaussian_filter(image, mode="constant")``), in float64."""
    blurred = image.astype(np.float64, copy=True)
    if sigma == 0:
        return blurred
    kernel = _gaussian_kernel(sigma)
    if len(kernel) == 1:  # radius 0: the kernel is [1.0]
        return blurred
    for axis in axes:
        blurred = _blur_axis(blurred, kernel, axis)
    return blurred


# --------------------------------------------------------------------------- streaming


MakeWeightedRows = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def _weighted_gradient_sums(
    fn: GradientFn,
    make_rows: MakeWeightedRows,
    targets: np.ndarray | None,
    *,
    n_inputs: int,
    per_input: int,
    batch_size: int,
    shape: tuple[int, ...],
) -> np.ndarray:
    """``sum_j weights_ij * fn(rows_ij)`` per input ``i``, in float64.

    Row ``r`` belongs to input ``r // per_input``; ``make_rows(inputs, samples)`` returns
    the rows of one chunk (in x's dtype) and their float64 weights, both shaped
    ``(k, *shape)``. Chunks of at most ``batch_size`` rows are made one at a time, so memory
    is ``O(batch_size x input)``.
    """
    sums = np.zeros((n_inputs, *shape), dtype=np.float64)
    for start, stop in chunk_bounds(n_inputs * per_input, batch_size):
        inputs, samples = np.divmod(np.arange(start, stop), per_input)
        rows, weights = make_rows(inputs, samples)
        chunk_targets = None if targets is None else targets[inputs]
        gradients = call_chunk(fn, rows, chunk_targets, start=start, stop=stop,
                               expected_trailing=shape)
        del rows
        products = weights * gradients
        for owner, first, end in segments(start, stop, per_input):
            sums[owner] += products[first:end].sum(axis=0)
    return sums


# --------------------------------------------------------------------------- Blur IG


def blur_integrated_gradients(
    fn: GradientFn,
    x: np.ndarray,
    target: int | np.ndarray | None = None,
    *,
    max_sigma: float = 50,
    steps: int = 100,
    grad_step: float = 0.01,
    sqrt: bool = False,
    channel_axis: int | None = -1,
    batch_size: int = 64,
) -> np.ndarray:
    """Blur integrated gradients (Xu et al. 2020): integrated gradients along a blur path.

    The path is ``gamma(sigma) = G_sigma * x``, the input blurred by a Gaussian of standard
    deviation ``sigma`` over its spatial axes, from ``sigma_max`` (almost nothing left of
    the image) down to 0 (the input). With ``sigma_k = k * max_sigma / steps`` (or
    ``sqrt(k * max_sigma / steps)`` when ``sqrt``), ``k = 0..steps``, the integral is the
    left Riemann sum

        ``-sum_{k<steps} (sigma_{k+1} - sigma_k) * grad S(gamma(sigma_k)) *
        (gamma(sigma_k + grad_step) - gamma(sigma_k)) / grad_step``

    (the derivative of the path by a forward difference), as in PAIR's reference
    implementation. The attributions of an input sum to about
    ``S(x) - S(gamma(sigma_steps))`` (completeness, with the fully blurred image as the
    baseline); for a model linear in its input and ``grad_step = max_sigma / steps`` the
    sum is exact.

    The blur is separable, with zero padding (the image is dark outside its borders) and
    the kernel cut at ``4 sigma`` (radius ``int(4 sigma + 0.5)``), the blur of
    ``scipy.ndimage.gaussian_filter(..., mode="constant")`` that the reference uses, written
    here in numpy. A kernel of radius 0 (``sigma < 0.125``) leaves the image as it is.
    The cut makes the path jump a little wherever the radius grows; a ``grad_step``
    smaller than the sigma spacing misses most of those jumps, so the sum is then only
    near ``S(x) - S(gamma(sigma_steps))`` (1% to 2.5% off for three random 8x8x3 images
    and a linear score with ``max_sigma=4, steps=400, grad_step=1e-4, sqrt=True``), while
    ``grad_step = max_sigma / steps`` counts each jump once.

    The maps equal those of PAIR's ``BlurIG``; with ``sqrt=True``, those of its
    ``batch_size=1`` (its default): with larger batches it weighs every point of a batch
    by the sigma spacing of the batch's last point.

    Args:
        fn: a gradient callback ``fn(x, target)`` returning arrays shaped like ``x``.
        x: a batch ``(N, *input_shape)``.
        target: None, one output index for all inputs, or one per input ``(N,)``.
        max_sigma: the standard deviation of the blur at the far end of the path, in
            elements (pixels).
        steps: the points on the path per input, one callback row each.
        grad_step: the step in ``sigma`` of the forward difference that gives the path's
            derivative.
        sqrt: True to space the sigmas as ``sqrt(k * max_sigma / steps)``, as PAIR does;
            the path then ends at ``sigma = sqrt(max_sigma)``.
        channel_axis: the axis of ``x`` that holds channels, which is not blurred (the
            default -1 is channels last, as PAIR's ``(H, W, C)`` images; 1 for NCHW);
            None blurs every axis but the batch axis.
        batch_size: the most path points sent to ``fn`` in one call; the points of several
            inputs share a call.

    Returns:
        An array shaped like ``x``, in ``x``'s float dtype. The blurs and sums are in
        float64; ``fn`` gets the blurred images in ``x``'s dtype.

    Raises:
        ValueError, TypeError: bad input, before ``fn`` is called; or a callback result of
            the wrong shape, type, or with NaN/inf, naming the rows of the call.

    Examples:
        The score ``S(x) = sum(x)`` of a bright point: the blur spreads it without losing
        any (the kernel stays inside the signal), so the attributions sum to 0, positive
        at the point and negative around it:

        >>> total = lambda x, target: np.ones_like(x)
        >>> point = np.array([[0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]])
        >>> maps = blur_integrated_gradients(total, point, max_sigma=0.75, steps=50,
        ...                                  channel_axis=None)
        >>> np.round(maps[:, 1:-1], 3)  # the two ends get less than 0.0005
        array([[-0.015, -0.218,  0.466, -0.218, -0.015]])
        >>> abs(float(maps.sum())) < 1e-12
        True

    References:
        Xu, Venugopalan, Sundararajan (2020). Attribution in scale and space. CVPR 2020,
        arXiv:2004.03383. Reference implementation: PAIR's ``saliency`` package,
        ``saliency.core.BlurIG``.
    """
    check_callable(fn)
    x = as_input_batch(x)
    targets = as_targets(target, x.shape[0])
    max_sigma = _check_positive_real(max_sigma, "max_sigma")
    steps = check_positive_int(steps, "steps")
    grad_step = _check_positive_real(grad_step, "grad_step")
    sqrt = check_bool(sqrt, "sqrt")
    axes = _blurred_axes(channel_axis, x.shape[1:])
    batch_size = check_positive_int(batch_size, "batch_size")

    # the sigmas as PAIR computes them, in Python floats: float(k) * max_sigma / steps
    linear = [float(k) * max_sigma / float(steps) for k in range(steps + 1)]
    sigmas = [math.sqrt(s) for s in linear] if sqrt else linear
    widths = [sigmas[k + 1] - sigmas[k] for k in range(steps)]

    def make_rows(inputs: np.ndarray, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows = np.empty((len(inputs), *x.shape[1:]), dtype=x.dtype)
        weights = np.empty((len(inputs), *x.shape[1:]), dtype=np.float64)
        for row, (owner, step) in enumerate(zip(inputs.tolist(), samples.tolist(),
                                                strict=True)):
            here = _gaussian_blur(x[owner], sigmas[step], axes)
            ahead = _gaussian_blur(x[owner], sigmas[step] + grad_step, axes)
            rows[row] = here
            # minus: the path runs from the blurred image (large sigma) to x (sigma 0)
            weights[row] = (ahead - here) * (-widths[step] / grad_step)
        return rows, weights

    sums = _weighted_gradient_sums(fn, make_rows, targets, n_inputs=x.shape[0],
                                   per_input=steps, batch_size=batch_size,
                                   shape=x.shape[1:])
    return cast_result(sums, x.dtype)


# --------------------------------------------------------------------------- Guided IG


class _GuidedPath:
    """The state of one input's Guided IG path, in float64 and flattened.

    The path starts at the baseline; :meth:`advance` takes one step with the gradient at
    the current point and adds its contribution ``(x_new - x_old) * gradient`` to the
    attributions, so they telescope to ``S(x) - S(baseline)`` as the steps shrink.
    """

    def __init__(self, x: np.ndarray, baseline: np.ndarray, steps: int, fraction: float,
                 max_dist: float) -> None:
        self.end = x.reshape(-1).astype(np.float64)
        self.start = baseline.reshape(-1).astype(np.float64)
        self.point = self.start.copy()
        self.span = self.end - self.start
        self.moving = self.span != 0
        self.l1_total = float(np.abs(self.span).sum())
        self.attributions = np.zeros_like(self.end)
        self.steps, self.fraction, self.max_dist = steps, fraction, max_dist

    @property
    def done(self) -> bool:
        """True when the input equals its baseline: every attribution is 0."""
        return self.l1_total == 0

    def _on_line(self, alpha: float) -> np.ndarray:
        return self.start + self.span * alpha

    def advance(self, step: int, gradient: np.ndarray) -> None:
        """Step ``step`` (0-based) of the path, with the gradient at the current point."""
        x = self.point
        order = np.abs(gradient).astype(np.float64)  # what selects the elements to move
        alpha = (step + 1.0) / self.steps
        alpha_low = max(alpha - self.max_dist, 0.0)
        alpha_high = min(alpha + self.max_dist, 1.0)
        low, high = self._on_line(alpha_low), self._on_line(alpha_high)
        # after this step the path must be this far (in L1) from the input
        l1_goal = self.l1_total * (1 - (step + 1) / self.steps)
        rank = int(np.floor((order.size - 1) * self.fraction))  # np.quantile "lower"
        while True:
            before = x.copy()
            # where each element is along its own line, as a fraction of the way; elements
            # that do not move count as far ahead, so they are never pulled forward
            with np.errstate(divide="ignore", invalid="ignore"):
                position = np.where(self.moving, (x - self.start) / self.span, alpha_high)
            behind = position < alpha_low
            x[behind] = low[behind]  # no element falls behind the band around the line
            l1_now = float(np.abs(x - self.end).sum())
            if math.isclose(l1_goal, l1_now, rel_tol=_L1_TOLERANCE, abs_tol=_L1_TOLERANCE):
                self.attributions += (x - before) * gradient
                return
            # elements at the front of the band may not move further in this step
            order[x == high] = np.inf
            threshold = np.partition(order, rank)[rank]
            chosen = (order <= threshold) & (order != np.inf)
            reducible = float((np.abs(x - high) * chosen).sum())
            share = (l1_now - l1_goal) / reducible if reducible > 0 else np.inf
            if share > 1.0:
                # moving the chosen elements to the front is not enough: move them all
                # the way and choose again
                x[chosen] = high[chosen]
            else:
                x[chosen] = (x + (high - x) * share)[chosen]
            self.attributions += (x - before) * gradient
            if share <= 1.0 or not chosen.any():
                # the goal is reached, or nothing is left to move (where the reference
                # would loop for ever)
                return


def guided_integrated_gradients(
    fn: GradientFn,
    x: np.ndarray,
    target: int | np.ndarray | None = None,
    *,
    baseline: float | np.ndarray | None = None,
    steps: int = 200,
    fraction: float = 0.25,
    max_dist: float = 0.02,
    batch_size: int = 64,
) -> np.ndarray:
    """Guided integrated gradients (Kapishnikov et al. 2021): an adaptive path.

    The path starts at the baseline and, at step ``k`` of ``steps``, brings the L1 distance
    to the input down to ``(1 - k / steps)`` of its start by moving only the ``fraction``
    of elements whose gradient is smallest in absolute value (moved first to the front of
    the allowed band, then the next smallest, until the distance is reached). Every element
    stays within ``max_dist`` (as a fraction of the way) of the straight line at
    ``alpha = k / steps``: 0 is integrated gradients on the straight line, 1 leaves the path
    free inside the box between the baseline and the input. The attributions are
    ``sum (x_new - x_old) * grad S(x_old)`` over the path's moves, so they sum to about
    ``S(x) - S(baseline)``, exactly for a model linear in its input.

    The arithmetic is PAIR's reference implementation's, in float64, with one callback call
    per step for all inputs (in chunks of ``batch_size`` rows), where PAIR calls the model
    once per step for each input. Where nothing is left to move and the reference would
    loop for ever, the step ends.

    Args:
        fn: a gradient callback ``fn(x, target)`` returning arrays shaped like ``x``.
        x: a batch ``(N, *input_shape)``.
        target: None, one output index for all inputs, or one per input ``(N,)``.
        baseline: None (zeros), a number, or an array broadcastable to ``x`` (one input's
            shape is applied to every input).
        steps: the steps of the path, one callback row per input each.
        fraction: the fraction (in [0, 1]) of elements, those of smallest absolute
            gradient, chosen to move at a time (``np.quantile(..., method="lower")``).
        max_dist: how far (in [0, 1], as a fraction of the way) an element may run ahead
            of or fall behind the straight line.
        batch_size: the most inputs sent to ``fn`` in one call.

    Returns:
        An array shaped like ``x``, in ``x``'s float dtype. ``fn`` gets the path points in
        ``x``'s dtype; the path and the sums are in float64.

    Raises:
        ValueError, TypeError: bad input, before ``fn`` is called; or a callback result of
            the wrong shape, type, or with NaN/inf, naming the rows of the call.

    Examples:
        For a linear score the attributions sum to ``S(x) - S(baseline)`` exactly:

        >>> w = np.array([1.0, -2.0, 3.0])
        >>> linear = lambda x, target: np.broadcast_to(w, x.shape).copy()
        >>> x = np.array([[1.0, 1.0, 1.0]])
        >>> maps = guided_integrated_gradients(linear, x, steps=10)
        >>> maps
        array([[ 1., -2.,  3.]])
        >>> bool(np.isclose(maps.sum(), w @ x[0]))
        True

    References:
        Kapishnikov, Venugopalan, Avci, Wedin, Terry, Bolukbasi (2021). Guided integrated
        gradients: an adaptive path method for removing noise. CVPR 2021,
        arXiv:2106.09788. Reference implementation: PAIR's ``saliency`` package,
        ``saliency.core.GuidedIG``.
    """
    check_callable(fn)
    x = as_input_batch(x)
    targets = as_targets(target, x.shape[0])
    base = np.broadcast_to(_as_baseline(baseline, x), x.shape)
    steps = check_positive_int(steps, "steps")
    fraction = _check_fraction(fraction, "fraction")
    max_dist = _check_fraction(max_dist, "max_dist")
    batch_size = check_positive_int(batch_size, "batch_size")

    paths = [_GuidedPath(x[i], base[i], steps, fraction, max_dist) for i in range(len(x))]
    live = [i for i, path in enumerate(paths) if not path.done]  # the others stay 0
    rows = np.empty((len(live), *x.shape[1:]), dtype=x.dtype)
    live_targets = None if targets is None else targets[live]
    for step in range(steps):
        for row, i in enumerate(live):
            rows[row] = paths[i].point.reshape(x.shape[1:])
        for start, stop in chunk_bounds(len(live), batch_size):
            chunk_targets = None if live_targets is None else live_targets[start:stop]
            gradients = call_chunk(fn, rows[start:stop], chunk_targets, start=start,
                                   stop=stop, expected_trailing=x.shape[1:])
            for row in range(start, stop):
                paths[live[row]].advance(step, gradients[row - start].reshape(-1))
    maps = np.stack([path.attributions for path in paths]).reshape(x.shape)
    return cast_result(maps, x.dtype)


# --------------------------------------------------------------------------- expected gradients


def _as_reference_set(baselines: object, x: np.ndarray) -> np.ndarray:
    """The reference set ``(B, *input_shape)`` in float64."""
    if baselines is None:
        raise TypeError(
            f"baselines: expected a reference set, an array (B, *input_shape) with "
            f"input_shape {x.shape[1:]}, got None"
        )
    references = as_input_batch(baselines, name="baselines")
    if references.shape[1:] != x.shape[1:]:
        raise ValueError(
            f"baselines: expected a reference set of shape (B, {', '.join(map(str, x.shape[1:]))})"
            f", one input's shape {x.shape[1:]} per baseline, got shape {references.shape}"
        )
    return references.astype(np.float64)


def expected_gradients(
    fn: GradientFn,
    x: np.ndarray,
    target: int | np.ndarray | None = None,
    *,
    baselines: np.ndarray,
    n_samples: int = 50,
    stdev: float = 0.0,
    batch_size: int = 64,
    seed: SeedLike = None,
) -> np.ndarray:
    """Expected gradients / GradientSHAP: integrated gradients averaged over baselines.

    Sample ``j`` of input ``i`` draws a baseline ``b`` uniformly from ``baselines``, a
    point ``alpha`` uniformly in ``[0, 1)`` and, if ``stdev > 0``, Gaussian noise
    ``x~ = x_i + N(0, stdev**2)``; it contributes ``grad S(b + alpha (x~ - b)) * (x~ - b)``,
    and the map is the mean of the ``n_samples`` contributions. Its expectation is
    integrated gradients averaged over the reference set (and the noise), so the
    attributions sum to about ``S(x) - E[S(b)]``; for a linear model with weights ``w``
    the expectation is ``w * (x - mean(baselines))``. This is Captum's ``GradientShap``
    (noise on the input, then a random point on the path to a random baseline).

    Draws are made from ``seed``: first every baseline index ``(N, n_samples)``, then
    every ``alpha``, then the noise chunk by chunk in row order, so the result depends on
    the seed but not on ``batch_size``.

    Args:
        fn: a gradient callback ``fn(x, target)`` returning arrays shaped like ``x``.
        x: a batch ``(N, *input_shape)``.
        target: None, one output index for all inputs, or one per input ``(N,)``.
        baselines: the reference set, ``(B, *input_shape)``: for example a sample of
            training images (Erion et al. draw them from the training set).
        n_samples: samples per input, one callback row each.
        stdev: the standard deviation of the Gaussian noise added to the input (absolute,
            Captum's ``stdevs``); 0 for none.
        batch_size: the most rows sent to ``fn`` in one call.
        seed: None (fresh entropy), a non-negative int, a ``SeedSequence`` or a
            ``Generator`` (which is advanced). numpy's global random state is never used.

    Returns:
        An array shaped like ``x``, in ``x``'s float dtype (the sums are in float64).

    Raises:
        ValueError, TypeError: bad input, before ``fn`` is called; or a callback result of
            the wrong shape, type, or with NaN/inf, naming the rows of the call.

    Examples:
        With one baseline and a linear score the map is ``w * (x - b)`` exactly:

        >>> w = np.array([1.0, -2.0, 3.0])
        >>> linear = lambda x, target: np.broadcast_to(w, x.shape).copy()
        >>> expected_gradients(linear, np.array([[1.0, 1.0, 1.0]]),
        ...                    baselines=np.array([[0.0, 0.5, 1.0]]), n_samples=8, seed=0)
        array([[ 1., -1.,  0.]])

    References:
        Erion, Janizek, Sturmfels, Lundberg, Lee (2021). Improving performance of deep
        learning models with axiomatic attribution priors and expected gradients. Nature
        Machine Intelligence 3, 620-631, arXiv:1906.10670. Lundberg, Lee (2017). A unified
        approach to interpreting model predictions (GradientExplainer). Captum's
        ``GradientShap``.
    """
    check_callable(fn)
    x = as_input_batch(x)
    targets = as_targets(target, x.shape[0])
    references = _as_reference_set(baselines, x)
    n_samples = check_positive_int(n_samples, "n_samples")
    stdev = check_non_negative(stdev, "stdev")
    batch_size = check_positive_int(batch_size, "batch_size")
    rng = as_generator(seed)

    n = x.shape[0]
    chosen = rng.integers(0, len(references), size=(n, n_samples))
    alphas = rng.random((n, n_samples))
    inputs64 = x.astype(np.float64)
    spread = (-1,) + (1,) * (x.ndim - 1)

    def make_rows(inputs: np.ndarray, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ends = inputs64[inputs]
        if stdev > 0:
            ends = ends + stdev * rng.standard_normal(ends.shape)
        starts = references[chosen[inputs, samples]]
        span = ends - starts
        points = starts + alphas[inputs, samples].reshape(spread) * span
        with np.errstate(over="ignore"):
            rows = points.astype(x.dtype)
        if not np.isfinite(rows).all():
            raise ValueError(
                f"baselines: expected path points within the range of x's dtype {x.dtype}, "
                "got an overflow; pass float64 inputs"
            )
        return rows, span / n_samples

    sums = _weighted_gradient_sums(fn, make_rows, targets, n_inputs=n, per_input=n_samples,
                                   batch_size=batch_size, shape=x.shape[1:])
    return cast_result(sums, x.dtype)
