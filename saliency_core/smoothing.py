"""SmoothGrad (Smilkov et al. 2017) and its aggregations, over any attribution callback.

    M_hat_c(x) = 1/n * sum_{j=1..n} M_c(x + N(0, sigma^2))            (paper, eq. 3)

with ``sigma = noise_level * (max(x) - min(x))`` per input (the paper's noise level, 10-20%
works best; section 3.2) or an absolute ``sigma``. ``aggregate`` picks the statistic of the
noisy maps: their mean (SmoothGrad), the mean of their absolute values or squares
(SmoothGrad-squared), or their variance (VarGrad). ``noise`` picks how the draws of one
input depend on each other (:mod:`saliency_core.noise`): Latin hypercube strata (the
default), independent draws or antithetic pairs; all give the same expectation, the strata
with the smallest Monte Carlo error.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np

from ._checks import (
    as_generator,
    as_input_batch,
    as_targets,
    check_bool,
    check_callable,
    check_choice,
    check_non_negative,
    check_positive_int,
)
from ._streaming import RunningStatistic, cast_result, stream_rows
from .noise import DEFAULT_NOISE, NOISE_SCHEMES, NoiseStream
from .types import AttributionFn, SeedLike

__all__ = ["AGGREGATES", "FEATURE_SPREADS", "NOISE_SCHEMES", "feature_sigma", "noise_sigma",
           "smoothgrad"]

#: The statistics ``smoothgrad`` can take over the noisy maps.
AGGREGATES = ("mean", "abs", "square", "variance")

#: The spreads :func:`feature_sigma` can scale: ``max - min`` or the standard deviation.
FEATURE_SPREADS = ("range", "std")

#: The most threads ``smoothgrad(..., noise_threads=...)`` takes.
MAX_NOISE_THREADS = 64


class _DefaultNoiseLevel(float):
    """0.15, marked as 'not given', so that giving both noise_level and sigma is an error."""

    def __repr__(self) -> str:
        return "0.15"


_DEFAULT_NOISE_LEVEL = _DefaultNoiseLevel(0.15)



def noise_sigma(x: np.ndarray, noise_level: float) -> np.ndarray:
    """Per-input standard deviations ``noise_level * (max(x_i) - min(x_i))``, shape ``(N,)``.

    The paper's convention (and PAIR's ``stdev_spread``): the noise scales with each
    input's own range, so 0.15 means 15% of the span of pixel values of that image.

    Args:
        x: a batch ``(N, *input_shape)``, checked as every method checks it.
        noise_level: a finite number ``>= 0``.

    Returns:
        float64 ``(N,)``, never negative.

    Raises:
        ValueError, TypeError: a bad ``x`` or ``noise_level``, or sigmas too large for
            float64 (an input whose range overflows).

    Examples:
        >>> noise_sigma(np.array([[0.0, 2.0], [1.0, 1.5]]), 0.1)
        array([0.2 , 0.05])
    """
    return _range_sigmas(as_input_batch(x), check_non_negative(noise_level, "noise_level"))


def _range_sigmas(x: np.ndarray, level: float) -> np.ndarray:
    """:func:`noise_sigma` of a batch and a noise level already checked."""
    flat = x.reshape(x.shape[0], -1)
    with np.errstate(over="ignore"):
        sigmas = level * (flat.max(axis=1).astype(np.float64) - flat.min(axis=1))
    if not np.isfinite(sigmas).all():
        bad = np.flatnonzero(~np.isfinite(sigmas))
        raise ValueError(
            f"noise_level: expected noise_level * (max - min) within float64, got an overflow "
            f"for input(s) {bad[:10].tolist()}; pass an absolute sigma= instead"
        )
    return sigmas


def feature_sigma(data: np.ndarray, noise_level: float, *, spread: str = "range") -> np.ndarray:
    """Per-feature standard deviations from a data set: ``noise_level`` times each spread.

    For tabular data (and any input whose elements are on different scales) the noise of
    element ``j`` is set by how much element ``j`` varies across the data set, not by the
    range of one input: ``noise_level * (max_m data[m, j] - min_m data[m, j])`` for
    ``spread="range"`` (the paper's convention, taken per feature), or
    ``noise_level * std_m data[m, j]`` (the population standard deviation) for
    ``spread="std"``. Pass the result as ``smoothgrad(..., sigma=...)``: it has one input's
    shape, so it is the same for every input.

    Args:
        data: the data set ``(M, *input_shape)`` (the training set, say), checked as every
            method checks ``x``.
        noise_level: a finite number ``>= 0``.
        spread: ``"range"`` (``max - min``, the default) or ``"std"``.

    Returns:
        float64 of shape ``input_shape``, never negative; 0 where a feature is constant
        across ``data`` (that feature gets no noise).

    Raises:
        ValueError, TypeError: a bad ``data``, ``noise_level`` or ``spread``, or spreads too
            large for float64.

    Examples:
        >>> data = np.array([[0.0, 10.0], [1.0, 30.0], [2.0, 20.0]])
        >>> feature_sigma(data, 0.1)
        array([0.2, 2. ])
        >>> feature_sigma(data, 0.5, spread="std").round(4)
        array([0.4082, 4.0825])
    """
    data = as_input_batch(data, name="data")
    level = check_non_negative(noise_level, "noise_level")
    spread = check_choice(spread, "spread", FEATURE_SPREADS)
    wide = data.astype(np.float64, copy=False)
    with np.errstate(over="ignore", invalid="ignore"):
        if spread == "range":
            sigmas = level * (wide.max(axis=0) - wide.min(axis=0))
        else:
            sigmas = level * wide.std(axis=0)
    if not np.isfinite(sigmas).all():
        raise ValueError(
            f"data: expected noise_level * {spread} of each feature within float64, got an "
            f"overflow for {int((~np.isfinite(sigmas)).sum())} feature(s); rescale the data"
        )
    return sigmas


def _describe(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _resolve_sigma(
    x: np.ndarray, noise_level: float, sigma: float | np.ndarray | None
) -> np.ndarray:
    """The standard deviations of the noise, shaped to broadcast against ``x``.

    Returns float64 of shape ``(N, 1, ..., 1)`` (one per input: from ``noise_level``, a
    number, or one value per input) or ``(N, *input_shape)`` (one per element, possibly a
    read-only broadcast view), so ``sigmas[i]`` scales the noise of input ``i`` either way.
    """
    n, input_shape = x.shape[0], x.shape[1:]
    per_input_shape = (n,) + (1,) * len(input_shape)
    if sigma is not None:
        if noise_level is not _DEFAULT_NOISE_LEVEL:
            raise ValueError(
                "expected either noise_level (relative to each input's range) or sigma "
                f"(absolute), got both: noise_level={noise_level!r}, sigma={sigma!r}"
            )
        try:
            array = np.asarray(sigma)
        except (ValueError, TypeError):
            raise ValueError(
                f"sigma: expected a number or an array of one value per input or per "
                f"element, got a ragged {type(sigma).__name__}"
            ) from None
        if array.ndim == 0:
            value = check_non_negative(sigma[()] if isinstance(sigma, np.ndarray) else sigma,
                                       "sigma")
            return np.full(per_input_shape, value)
        if array.dtype.kind not in "iuf":
            raise TypeError(
                f"sigma: expected a number or an array of numbers, got dtype {array.dtype}"
            )
        array = array.astype(np.float64)
        accepted = (
            f"a number, one value per input (shape ({n},)), one per element of an input "
            f"(a shape that broadcasts to the input shape {_describe(input_shape)}, the same "
            f"for every input: each feature's spread across a data set, say), or a shape of "
            f"x's {x.ndim} dimensions that broadcasts to x's shape {_describe(x.shape)}"
        )
        per_input = array.shape == (n,)
        per_element = array.ndim == len(input_shape) and _broadcasts(array.shape, input_shape)
        if per_input and per_element and n > 1:
            raise ValueError(
                f"sigma: shape ({n},) is both one value per input and one per element of "
                f"inputs of shape {_describe(input_shape)}; pass sigma[:, None] (shape "
                f"({n}, 1)) for one per input or sigma[None] (shape (1, {n})) for one per "
                "element"
            )
        if per_input:
            shaped = array.reshape(per_input_shape)
        elif per_element:
            shaped = array[None]
        elif array.ndim == x.ndim and _broadcasts(array.shape, x.shape):
            shaped = array
        else:
            raise ValueError(f"sigma: expected {accepted}; got shape {_describe(array.shape)}")
        bad = ~np.isfinite(shaped) | (shaped < 0)
        if bad.any():
            shown = (f"{array.ravel().tolist()}" if array.size <= 10 else
                     f"{int(bad.sum())} bad value(s) of {array.size}, the first "
                     f"{array.ravel()[np.flatnonzero(bad.ravel())[:5]].tolist()}")
            raise ValueError(f"sigma: expected finite non-negative values, got {shown}")
        if shaped.shape == per_input_shape:
            return shaped
        return np.broadcast_to(shaped, x.shape)
    level = check_non_negative(noise_level, "noise_level")
    sigmas = _range_sigmas(x, level)
    constant = np.flatnonzero(sigmas == 0)
    if level > 0 and constant.size:
        warnings.warn(
            f"input(s) {constant[:10].tolist()} are constant, so noise_level={level} gives "
            "sigma = 0 and SmoothGrad reduces to the plain gradient there; pass sigma= for an "
            "absolute noise level",
            RuntimeWarning,
            stacklevel=3,
        )
    return sigmas.reshape(per_input_shape)


def _broadcasts(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """Whether an array of ``shape`` (of ``target``'s rank) broadcasts to ``target``."""
    return len(shape) == len(target) and all(s in (1, t) for s, t in zip(shape, target,
                                                                           strict=True))


def _check_threads(value: object) -> int:
    """``noise_threads`` as an int ``>= 0``; bools and floats are refused."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        raise TypeError(f"noise_threads: expected a non-negative integer, got {value!r}")
    if not 0 <= int(value) <= MAX_NOISE_THREADS:
        raise ValueError(
            f"noise_threads: expected an integer from 0 to {MAX_NOISE_THREADS}, got {value}"
        )
    return int(value)


def smoothgrad(
    fn: AttributionFn,
    x: np.ndarray,
    target: int | np.ndarray | None = None,
    *,
    n_samples: int = 50,
    noise_level: float = _DEFAULT_NOISE_LEVEL,
    sigma: float | np.ndarray | None = None,
    aggregate: str = "mean",
    noise: str = DEFAULT_NOISE,
    batch_size: int = 64,
    seed: SeedLike = None,
    progress: bool = False,
    noise_threads: int = 1,
) -> np.ndarray:
    """SmoothGrad: the average of attribution maps of noisy copies of each input.

    Row ``(i, j)`` is ``x[i] + sigma_i * z_ij`` with ``z_ij`` standard normal noise drawn
    from ``seed`` in row order by the scheme ``noise``, so the result depends on the seed
    but not on ``batch_size``, and the noise depends only on the seed, ``n_samples`` and
    the shape (and float dtype) of ``x``, whatever framework is behind ``fn``. Rows go to
    ``fn`` in chunks of at most ``batch_size``; only float64 running sums (and, for the
    Latin hypercube schemes, one block of at most ``LHS_BLOCK`` noise rows) are kept, so
    memory does not grow with ``n_samples``.

    Args:
        fn: an attribution callback ``fn(x, target) -> maps`` (a gradient function from
            an adapter, or another method bound with ``functools.partial``). It may return
            any fixed trailing shape; the result has that shape.
        x: a batch ``(N, *input_shape)``; integer and float16 inputs are converted to
            float32, byte-swapped ones to native byte order.
        target: None, one output index for every input, or one per input ``(N,)``.
        n_samples: noisy copies per input (the paper finds little change past 50).
        noise_level: sigma relative to each input's range ``max - min`` (default 0.15).
        sigma: an absolute standard deviation instead of ``noise_level`` (giving both is
            an error): a number (every element of every input); one per input, shape
            ``(N,)``; one per element of an input, a shape that broadcasts to
            ``input_shape`` and is the same for every input (for tabular data, each
            feature's spread across the data set: :func:`feature_sigma`); or a shape of
            ``x``'s rank that broadcasts to ``x.shape`` (``(1, 1, 1, C)``: one per channel;
            ``(N, *input_shape)``: one per element of each input). When ``input_shape`` is
            ``(N,)`` too, an ``(N,)`` sigma is refused as ambiguous: pass ``(N, 1)`` or
            ``(1, N)``. ``sigma=0`` gives the plain map. Per-element sigmas are expanded to
            ``x``'s shape in the noise's dtype (memory of one more ``x``).
        aggregate: ``"mean"`` (SmoothGrad), ``"abs"`` (mean of ``|map|``), ``"square"``
            (mean of ``map**2``, SmoothGrad-squared) or ``"variance"`` (VarGrad, the
            population variance).
        noise: how the ``n_samples`` draws of an input are made, one of
            :data:`NOISE_SCHEMES` (see :mod:`saliency_core.noise`): ``"lhs"`` (the
            default; Latin hypercube: each element's draws one in each of ``n``
            equal-probability strata of the normal distribution, in blocks of at most
            ``LHS_BLOCK = 128`` samples), ``"iid"`` (independent, the noise of
            releases before schemes, and about three times faster to make),
            ``"antithetic"`` (pairs ``z, -z``). Every scheme has standard normal
            marginals, so the expected map is the same. On three small ReLU networks,
            ``"lhs"`` with n samples had the error of 2.4n to 4.6n iid samples for
            ``"mean"``, 2n to 2.8n for ``"abs"`` and ``"square"``, n to 1.4n for
            ``"variance"``, never more than iid's; ``"antithetic"`` gained less
            (2.0n to 4.5n for the mean) and made VarGrad worse on two of them
            (``tests/benchmarks/RESULTS-noise.md``).
        batch_size: the most rows sent to ``fn`` in one call.
        seed: None (fresh entropy), a non-negative int, a ``SeedSequence`` or a
            ``Generator`` (which is advanced). numpy's global random state is never used.
        progress: True to show a tqdm progress bar (a widget in notebooks).
        noise_threads: threads that make the noisy rows. 1 (the default): the next chunk's
            rows are made in a background thread while ``fn`` runs on the current one, so
            a model on an accelerator does not wait for its noise (``fn`` itself always
            runs in the caller's thread; chunks under 131,072 elements, too small to be
            worth a hand-over, are made there too); 0: no thread, each chunk made just
            before its call; ``k > 1``: also the scale and shift of each chunk split over
            ``k`` threads (the draws stay in one thread, in row order, for every scheme).
            The result is bit-identical for every value, at most two chunks of rows are
            alive, and no thread outlives the call, even when ``fn`` raises (see
            :mod:`saliency_core._streaming`). When ``fn`` raises, a ``Generator`` given as
            ``seed`` may have been advanced by one chunk more than ``fn`` got.

    Returns:
        An array ``(N, *map_shape)`` in ``x``'s float dtype (float32 or float64). The
        statistics are kept in float64 (squares too), whatever dtype ``fn`` returns.

    Raises:
        ValueError, TypeError: bad input, before ``fn`` is called at all; or a callback
            result of the wrong shape, type, or with NaN/inf, naming the rows of the call.

    Examples:
        The gradient of ``w . x`` is ``w`` everywhere, so SmoothGrad gives ``w`` exactly:

        >>> w = np.array([1.0, -2.0, 3.0])
        >>> linear = lambda x, target: np.broadcast_to(w, x.shape).copy()
        >>> smoothgrad(linear, np.array([[0.0, 1.0, 2.0]]), seed=0)
        array([[ 1., -2.,  3.]])

        Antithetic pairs average the gradient ``2 A x`` of ``x^T A x`` exactly:

        >>> a = np.array([[1.0, 0.5], [0.5, -2.0]])
        >>> quadratic = lambda x, target: 2 * x @ a
        >>> smoothgrad(quadratic, np.array([[1.0, 1.0]]), n_samples=4, sigma=0.5,
        ...            noise="antithetic", seed=0)
        array([[ 3., -3.]])

    References:
        Smilkov, Thorat, Kim, Viegas, Wattenberg (2017). SmoothGrad: removing noise by
        adding noise. arXiv:1706.03825, equation 3 and section 3.2. For the noise
        schemes, see the references of :mod:`saliency_core.noise`.
    """
    check_callable(fn)
    x = as_input_batch(x)
    targets = as_targets(target, x.shape[0])
    n_samples = check_positive_int(n_samples, "n_samples")
    batch_size = check_positive_int(batch_size, "batch_size")
    aggregate = check_choice(aggregate, "aggregate", AGGREGATES)
    noise = check_choice(noise, "noise", NOISE_SCHEMES)
    progress = check_bool(progress, "progress")
    noise_threads = _check_threads(noise_threads)
    sigmas = _resolve_sigma(x, noise_level, sigma)
    rng = as_generator(seed)

    noise_dtype = np.float64 if x.dtype == np.float64 else np.float32
    with np.errstate(over="ignore"):
        sigmas_typed = sigmas.astype(noise_dtype)
    if not np.isfinite(sigmas_typed).all():
        raise ValueError(
            f"sigma: expected standard deviations within the range of x's dtype {x.dtype}, "
            f"got {sigmas.max():g}; pass float64 inputs or a smaller noise level"
        )

    stream = NoiseStream(noise, rng, n_samples, x.shape[1:], noise_dtype)

    def make_rows(inputs: np.ndarray, samples: np.ndarray, runs: list) -> np.ndarray:
        # the standard noise of the chunk, in row order: the only part that draws
        if noise == "iid":  # one draw for the whole chunk, in row order, as always
            return rng.standard_normal((len(inputs), *x.shape[1:]), dtype=noise_dtype)
        rows = np.empty((len(inputs), *x.shape[1:]), dtype=noise_dtype)
        for _, start, stop in runs:
            stream.fill(rows[start:stop], int(samples[start]))
        return rows

    def finish_rows(rows: np.ndarray, runs: list) -> None:
        # rows of one input are contiguous: scale and shift each run in place, no gather
        # (the noise is in x's dtype already: float32 or float64, as as_input_batch gives)
        for owner, start, stop in runs:
            rows[start:stop] *= sigmas_typed[owner]
            rows[start:stop] += x[owner]

    statistic = RunningStatistic(aggregate, x.shape[0])
    stream_rows(
        fn,
        make_rows,
        targets,
        n_inputs=x.shape[0],
        per_input=n_samples,
        batch_size=batch_size,
        statistic=statistic,
        expected_trailing=None,
        progress=progress,
        description="SmoothGrad",
        threads=noise_threads,
        finish_rows=finish_rows,
    )
    return cast_result(statistic.result(), x.dtype)
