"""Robustness of explanations: how much a map changes when its input changes a little.

* :func:`avg_sensitivity` and :func:`max_sensitivity` (Yeh et al. 2019): the relative change
  ``||e(x + d) - e(x)||_2 / ||e(x)||_2`` of the map under uniform noise ``d`` in
  ``[-radius, radius]``, averaged or maximised over the samples.
* :func:`local_lipschitz` (Alvarez-Melis and Jaakkola 2018): the largest quotient
  ``||e(x) - e(x')||_2 / ||x - x'||_2`` over Gaussian neighbours ``x'``.
* :func:`stability`: the mean Spearman rank correlation between the map of ``x`` and the
  maps of noisy copies, the "visual coherence" of SmoothGrad (Smilkov et al. 2017, section 3)
  as a number: 1 when noise leaves the ranking of the features unchanged.

Each metric evaluates ``explain_fn`` on ``n_samples + 1`` rows per input: the input itself
(the reference map) and ``n_samples`` perturbed copies, drawn from ``seed`` in row order.
The rows of all inputs are sent in chunks of at most ``batch_size``, and only per-input
running sums and maxima are kept, so memory does not grow with ``n_samples`` and the
result does not depend on ``batch_size``. Every result of ``explain_fn`` is checked: a
numpy array of real finite numbers, one map per row, of the same shape at every call.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from .._checks import (
    as_generator,
    as_input_batch,
    as_targets,
    check_callable,
    check_callback_output,
    check_positive_int,
)
from ..smoothing import _range_sigmas
from ..types import AttributionFn, SeedLike
from .similarity import _average_ranks, _constant_rows

__all__ = ["avg_sensitivity", "local_lipschitz", "max_sensitivity", "stability"]



def _check_number(value: object, name: str, *, positive: bool) -> float:
    wanted = "a positive" if positive else "a non-negative"
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected {wanted} number, got {value!r}")
    number = float(value)
    if not np.isfinite(number) or number < 0 or (positive and number == 0):
        raise ValueError(f"{name}: expected {wanted} finite number, got {value}")
    return number


def _stream_against_reference(
    explain_fn: AttributionFn,
    x: np.ndarray,
    *,
    n_samples: int,
    batch_size: int,
    perturb: Callable[[int, int], np.ndarray],
    targets_for: Callable[[np.ndarray, np.ndarray], np.ndarray | None],
    prepare: Callable[[int, np.ndarray], Any],
    consume: Callable[[int, Any, np.ndarray, np.ndarray], None],
    name: str = "explain_fn",
) -> tuple[int, ...]:
    """Evaluate ``explain_fn`` on each input and its samples, in chunks across inputs.

    Row ``r`` is sample ``j = r % (n_samples + 1)`` of input ``i = r // (n_samples + 1)``:
    ``j = 0`` is ``x[i]`` itself, the reference, and the rows ``j >= 1`` of one input come
    from ``perturb(i, count)`` in row order (so random draws do not depend on
    ``batch_size``). ``targets_for(inputs, samples)`` gives each row's target (or None).
    The reference map goes through ``prepare(i, map)`` once; every run of an input's
    sample rows then goes to ``consume(i, prepared, maps, rows)``, the maps as float64
    ``(k, *map_shape)`` and the rows ``(k, *input_shape)`` exactly as ``explain_fn`` saw
    them. At most two references are held at a time. Returns the map shape.
    """
    per_input = n_samples + 1
    total = x.shape[0] * per_input
    references: dict[int, Any] = {}
    map_shape: tuple[int, ...] | None = None
    for start in range(0, total, batch_size):
        stop = min(start + batch_size, total)
        inputs, samples = np.divmod(np.arange(start, stop), per_input)
        runs = []
        batch = np.empty((stop - start, *x.shape[1:]), dtype=x.dtype)
        row = start
        while row < stop:  # runs of rows that belong to one input each
            owner = row // per_input
            end = min(stop, (owner + 1) * per_input)
            first, last = row - start, end - start
            if row % per_input == 0:  # the reference row, x itself
                batch[first] = x[owner]
                noisy_first = first + 1
            else:
                noisy_first = first
            if last > noisy_first:
                batch[noisy_first:last] = perturb(owner, last - noisy_first)
            runs.append((owner, first, noisy_first, last))
            row = end
        output = explain_fn(batch, targets_for(inputs, samples))
        expected = None if map_shape is None else (stop - start, *map_shape)
        output = check_callback_output(
            output,
            rows=(start, stop - 1),
            expected_shape=expected,
            n_rows=stop - start,
            name=f"{name} (inputs {inputs[0]}..{inputs[-1]})",
        )
        map_shape = output.shape[1:]
        maps = output.astype(np.float64, copy=False)
        for owner, first, noisy_first, last in runs:
            if noisy_first > first:
                references[owner] = prepare(owner, maps[first])
            if last > noisy_first:
                consume(owner, references[owner], maps[noisy_first:last],
                        batch[noisy_first:last])
            if (start + last) % per_input == 0:  # the input's last row: drop its reference
                del references[owner]
    return map_shape  # type: ignore[return-value]  # N >= 1, so a chunk ran


def _common_checks(
    explain_fn: object, x: object, target: object, n_samples: object, batch_size: object
) -> tuple[np.ndarray, np.ndarray | None, int, int]:
    check_callable(explain_fn, "explain_fn")
    x = as_input_batch(x)
    targets = as_targets(target, x.shape[0])
    n_samples = check_positive_int(n_samples, "n_samples")
    batch_size = check_positive_int(batch_size, "batch_size")
    return x, targets, n_samples, batch_size


def _row_targets(targets: np.ndarray | None):
    def targets_for(inputs: np.ndarray, samples: np.ndarray) -> np.ndarray | None:
        return None if targets is None else targets[inputs]

    return targets_for


def _sensitivity(
    kind: str,
    explain_fn: AttributionFn,
    x: np.ndarray,
    target: int | np.ndarray | None,
    *,
    radius: float,
    n_samples: int,
    seed: SeedLike,
    batch_size: int,
    relative: bool,
) -> np.ndarray:
    x, targets, n_samples, batch_size = _common_checks(
        explain_fn, x, target, n_samples, batch_size
    )
    radius = _check_number(radius, "radius", positive=False)
    if not isinstance(relative, bool | np.bool_):
        raise TypeError(f"relative: expected True or False, got {relative!r}")
    rng = as_generator(seed)
    n = x.shape[0]
    reference_norm = np.zeros(n)
    change_sum = np.zeros(n)
    change_max = np.zeros(n)

    def perturb(owner: int, count: int) -> np.ndarray:
        noise = rng.uniform(-radius, radius, size=(count, *x.shape[1:]))
        return (x[owner] + noise).astype(x.dtype, copy=False)

    def prepare(owner: int, reference: np.ndarray) -> np.ndarray:
        reference_norm[owner] = np.linalg.norm(reference.ravel())
        return reference

    def consume(owner: int, reference: np.ndarray, maps: np.ndarray, rows: np.ndarray) -> None:
        change = np.linalg.norm((maps - reference).reshape(len(maps), -1), axis=1)
        change_sum[owner] += change.sum()
        change_max[owner] = max(change_max[owner], change.max())

    _stream_against_reference(
        explain_fn, x, n_samples=n_samples, batch_size=batch_size, perturb=perturb,
        targets_for=_row_targets(targets), prepare=prepare, consume=consume,
    )
    change = change_sum / n_samples if kind == "avg" else change_max
    if not relative:
        return change
    zero = reference_norm == 0
    if zero.any():
        warnings.warn(
            f"{kind}_sensitivity: the map of input(s) {np.flatnonzero(zero)[:10].tolist()} is "
            "zero everywhere, so its relative change is inf where a perturbed map differs "
            "from it and 0 where none does; pass relative=False for the absolute change",
            RuntimeWarning,
            stacklevel=3,
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        result = change / reference_norm
    result[zero] = np.where(change[zero] > 0, np.inf, 0.0)
    return result




def avg_sensitivity(
    explain_fn: AttributionFn,
    x: np.ndarray,
    target: int | np.ndarray | None = None,
    *,
    radius: float,
    n_samples: int,
    seed: SeedLike = None,
    batch_size: int = 64,
    relative: bool = True,
) -> np.ndarray:
    """Average sensitivity: the mean relative change of the map under uniform noise.

        AvgSens(x) = 1/n sum_j ||e(x + d_j) - e(x)||_2 / ||e(x)||_2,
        d_j uniform in [-radius, radius] per element.

    Lower is more robust. Maps are compared over all their elements (flattened).

    Args:
        explain_fn: an attribution callback ``explain_fn(x, target) -> maps`` (a gradient
            function from an adapter, or a method bound with ``functools.partial``, such as
            ``partial(smoothgrad, grad_fn, n_samples=10, seed=0)``). Its maps may have
            any trailing shape, the same at every call.
        x: a batch ``(N, *input_shape)``; integer inputs are converted to float32.
        target: None, one output index for every input, or one per input ``(N,)``; every
            perturbed copy of an input is explained for that input's target.
        radius: the half-width of the uniform noise, added independently to every element
            (absolute, in the units of ``x``); 0 gives 0.
        n_samples: perturbed copies per input.
        seed: None (fresh entropy), an int, a ``SeedSequence`` or a ``Generator`` (which
            is advanced). numpy's global random state is never used.
        batch_size: the most rows sent to ``explain_fn`` in one call; ``N * (n_samples +
            1)`` rows in all, the inputs themselves included.
        relative: divide by ``||e(x)||_2`` (default, as Quantus); False gives the
            absolute change ``||e(x + d) - e(x)||_2`` of Yeh et al.'s definition.

    Returns:
        ``(N,)`` float64 values. A map ``e(x)`` that is zero everywhere has no relative
        change: its value is ``inf`` if some perturbed map is not zero and 0 if none is,
        with a ``RuntimeWarning`` naming those inputs.

    Raises:
        ValueError, TypeError: bad input, before ``explain_fn`` is called; or a result of
            ``explain_fn`` of the wrong type or shape, or with NaN/inf, naming the call's
            inputs and rows.

    Examples:
        A linear model's gradient does not depend on the input, so it is not sensitive:

        >>> w = np.array([1.0, -2.0, 3.0])
        >>> gradient = lambda x, target: np.broadcast_to(w, x.shape).copy()
        >>> avg_sensitivity(gradient, np.zeros((2, 3)), radius=0.1, n_samples=5, seed=0)
        array([0., 0.])

    Notes:
        Equals Quantus's ``AvgSensitivity(lower_bound=radius, nr_samples=n_samples)``
        (its defaults ``normalise=False``, ``return_nan_when_prediction_changes=False``),
        whose noise is the same uniform noise, drawn from numpy's global random state
        there. Quantus's zero map gives NaN for ``0 / 0`` where ours gives 0.

    References:
        Yeh, Hsieh, Suggala, Inouye, Ravikumar (2019). On the (in)fidelity and
        sensitivity of explanations. NeurIPS 2019, arXiv:1901.09392.
        Bhatt, Weller, Moura (2020). Evaluating and aggregating feature-based model
        explanations. IJCAI 2020 (the average sensitivity).
    """
    return _sensitivity(
        "avg", explain_fn, x, target, radius=radius, n_samples=n_samples, seed=seed,
        batch_size=batch_size, relative=relative,
    )


def max_sensitivity(
    explain_fn: AttributionFn,
    x: np.ndarray,
    target: int | np.ndarray | None = None,
    *,
    radius: float,
    n_samples: int,
    seed: SeedLike = None,
    batch_size: int = 64,
    relative: bool = True,
) -> np.ndarray:
    """Max-sensitivity: the largest relative change of the map under uniform noise.

        MaxSens(x) = max_j ||e(x + d_j) - e(x)||_2 / ||e(x)||_2,
        d_j uniform in [-radius, radius] per element,

    a Monte Carlo estimate of the supremum over the ball of Yeh et al. Lower is more
    robust. Maps are compared over all their elements (flattened).

    Args:
        explain_fn: an attribution callback ``explain_fn(x, target) -> maps`` (a gradient
            function from an adapter, or a method bound with ``functools.partial``, such as
            ``partial(smoothgrad, grad_fn, n_samples=10, seed=0)``). Its maps may have
            any trailing shape, the same at every call.
        x: a batch ``(N, *input_shape)``; integer inputs are converted to float32.
        target: None, one output index for every input, or one per input ``(N,)``; every
            perturbed copy of an input is explained for that input's target.
        radius: the half-width of the uniform noise, added independently to every element
            (absolute, in the units of ``x``); 0 gives 0.
        n_samples: perturbed copies per input.
        seed: None (fresh entropy), an int, a ``SeedSequence`` or a ``Generator`` (which
            is advanced). numpy's global random state is never used.
        batch_size: the most rows sent to ``explain_fn`` in one call; ``N * (n_samples +
            1)`` rows in all, the inputs themselves included.
        relative: divide by ``||e(x)||_2`` (default, as Quantus); False gives the
            absolute change ``||e(x + d) - e(x)||_2`` of Yeh et al.'s definition.

    Returns:
        ``(N,)`` float64 values; a zero map ``e(x)`` gives ``inf`` or 0 as in
        :func:`avg_sensitivity`, with a ``RuntimeWarning``.

    Raises:
        ValueError, TypeError: bad input, before ``explain_fn`` is called; or a result of
            ``explain_fn`` of the wrong type or shape, or with NaN/inf, naming the call's
            inputs and rows.

    Examples:
        The map ``e(x) = x`` changes by exactly the noise, ``||d|| / ||x||``, at most
        ``radius * sqrt(size) / ||x||``:

        >>> identity = lambda x, target: x.copy()
        >>> x = np.full((1, 4), 2.0)
        >>> value = max_sensitivity(identity, x, radius=0.5, n_samples=20, seed=0)
        >>> bool(0 < value[0] <= 0.5 * 2 / 4)
        True

    Notes:
        Equals Quantus's ``MaxSensitivity(lower_bound=radius, nr_samples=n_samples)``
        (same noise distribution, drawn from numpy's global random state there);
        Quantus's zero map gives NaN for ``0 / 0`` where ours gives 0.

    References:
        Yeh, Hsieh, Suggala, Inouye, Ravikumar (2019). On the (in)fidelity and
        sensitivity of explanations. NeurIPS 2019, arXiv:1901.09392, definition 3.1.
    """
    return _sensitivity(
        "max", explain_fn, x, target, radius=radius, n_samples=n_samples, seed=seed,
        batch_size=batch_size, relative=relative,
    )


def local_lipschitz(
    explain_fn: AttributionFn,
    x: np.ndarray,
    target: int | np.ndarray | None = None,
    *,
    n_samples: int,
    sigma: float = 0.1,
    seed: SeedLike = None,
    batch_size: int = 64,
) -> np.ndarray:
    """Local Lipschitz estimate: the largest change of the map per unit change of the input.

        L(x) = max_j ||e(x) - e(x_j)||_2 / ||x - x_j||_2,   x_j = x + N(0, sigma^2) per element.

    A Monte Carlo lower bound on the local Lipschitz constant of the explanation around
    ``x``; lower is more robust. Maps and inputs are compared over all their elements.

    Args:
        explain_fn: an attribution callback ``explain_fn(x, target) -> maps``; its maps
            may have any trailing shape, the same at every call.
        x: a batch ``(N, *input_shape)``; integer inputs are converted to float32.
        target: None, one output index for every input, or one per input ``(N,)``.
        n_samples: neighbours per input.
        sigma: the standard deviation of the Gaussian noise, absolute (in the units of
            ``x``; default 0.1, Quantus's ``perturb_std``); must be positive.
        seed: None, an int, a ``SeedSequence`` or a ``Generator``.
        batch_size: the most rows sent to ``explain_fn`` in one call.

    Returns:
        ``(N,)`` float64 values. ``||x - x_j||`` is measured on the rows ``explain_fn``
        received (after rounding to ``x``'s dtype); a neighbour equal to ``x`` there is left
        out, and an input all of whose neighbours are is NaN, with a ``RuntimeWarning``.

    Raises:
        ValueError, TypeError: bad input, before ``explain_fn`` is called; or a result of
            ``explain_fn`` of the wrong type or shape, or with NaN/inf, naming the call's
            inputs and rows.

    Examples:
        The map ``e(x) = 3 x`` changes three times as much as its input:

        >>> triple = lambda x, target: 3.0 * x
        >>> local_lipschitz(triple, np.ones((2, 5)), n_samples=4, seed=0).round(12)
        array([3., 3.])

    Notes:
        Equals Quantus's ``LocalLipschitzEstimate(perturb_std=sigma, nr_samples=n_samples,
        normalise=False)`` up to the ``1e-10`` Quantus adds to the denominator (its
        default ``normalise=True`` divides all maps of a batch by the batch's largest
        ``|value|`` first, which makes the value depend on the other inputs).

    References:
        Alvarez-Melis, Jaakkola (2018). On the robustness of interpretability methods.
        ICML Workshop on Human Interpretability, arXiv:1806.08049, equation 5.
    """
    x, targets, n_samples, batch_size = _common_checks(
        explain_fn, x, target, n_samples, batch_size
    )
    sigma = _check_number(sigma, "sigma", positive=True)
    rng = as_generator(seed)
    best = np.full(x.shape[0], -np.inf)

    def perturb(owner: int, count: int) -> np.ndarray:
        noise = rng.standard_normal(size=(count, *x.shape[1:]))
        return (x[owner] + sigma * noise).astype(x.dtype, copy=False)

    def consume(owner: int, reference: np.ndarray, maps: np.ndarray, rows: np.ndarray) -> None:
        count = len(maps)
        moves = rows.astype(np.float64) - x[owner].astype(np.float64)
        step = np.linalg.norm(moves.reshape(count, -1), axis=1)
        change = np.linalg.norm((maps - reference).reshape(count, -1), axis=1)
        moved = step > 0
        if moved.any():
            best[owner] = max(best[owner], (change[moved] / step[moved]).max())

    _stream_against_reference(
        explain_fn, x, n_samples=n_samples, batch_size=batch_size, perturb=perturb,
        targets_for=_row_targets(targets), prepare=lambda owner, reference: reference,
        consume=consume,
    )
    unmoved = best == -np.inf
    if unmoved.any():
        warnings.warn(
            f"local_lipschitz: no neighbour of input(s) {np.flatnonzero(unmoved)[:10].tolist()} "
            f"differs from it in {x.dtype} (sigma={sigma} is below its rounding), so they are "
            "NaN; pass a larger sigma",
            RuntimeWarning,
            stacklevel=2,
        )
        best[unmoved] = np.nan
    return best


def _resolve_sigma(x: np.ndarray, noise_level: float | None, sigma: float | None) -> np.ndarray:
    if sigma is not None:
        if noise_level is not None:
            raise ValueError(
                "expected either noise_level (relative to each input's range) or sigma "
                f"(absolute), got both: noise_level={noise_level!r}, sigma={sigma!r}"
            )
        return np.full(x.shape[0], _check_number(sigma, "sigma", positive=False))
    level = _check_number(0.1 if noise_level is None else noise_level, "noise_level",
                          positive=False)
    sigmas = _range_sigmas(x, level)  # SmoothGrad's noise_sigma, overflow checked
    constant = np.flatnonzero(sigmas == 0)
    if level > 0 and constant.size:
        warnings.warn(
            f"stability: input(s) {constant[:10].tolist()} are constant, so noise_level={level} "
            "gives sigma = 0 and their maps are compared with themselves; pass sigma= for an "
            "absolute noise level",
            RuntimeWarning,
            stacklevel=3,
        )
    return sigmas


def stability(
    explain_fn: AttributionFn,
    x: np.ndarray,
    target: int | np.ndarray | None = None,
    *,
    n_samples: int,
    noise_level: float | None = None,
    sigma: float | None = None,
    absolute: bool = False,
    seed: SeedLike = None,
    batch_size: int = 64,
) -> np.ndarray:
    """Stability: the mean Spearman rank correlation between the map of ``x`` and the maps
    of noisy copies of ``x``.

        Stab(x) = 1/n sum_j spearman(e(x), e(x + N(0, sigma^2))),
        sigma = noise_level * (max(x) - min(x)) per input.

    SmoothGrad's paper judges maps by their "visual coherence": a map that highlights the
    same features when imperceptible noise is added is more trustworthy (Smilkov et al.
    2017, sections 2 and 3). This measures it: 1 means the noise does not change the
    ranking of the map's elements at all, 0 that the rankings are unrelated. Higher is
    more robust.

    Args:
        explain_fn: an attribution callback ``explain_fn(x, target) -> maps``.
        x: a batch ``(N, *input_shape)``; integer inputs are converted to float32.
        target: None, one output index for every input, or one per input ``(N,)``.
        n_samples: noisy copies per input.
        noise_level: the noise's standard deviation relative to each input's range
            ``max - min``, the convention of :func:`saliency_core.noise_sigma`
            (default 0.1 unless ``sigma`` is given).
        sigma: an absolute standard deviation instead; giving both is an error.
        absolute: rank ``|maps|`` instead of the signed maps (the paper visualises absolute
            values, section 3.1).
        seed: None, an int, a ``SeedSequence`` or a ``Generator``.
        batch_size: the most rows sent to ``explain_fn`` in one call.

    Returns:
        ``(N,)`` float64 values in ``[-1, 1]``. The correlation with a constant map is
        undefined: an input whose map, or one of whose noisy maps, is constant is NaN,
        with a ``RuntimeWarning``.

    Raises:
        ValueError, TypeError: bad input, before ``explain_fn`` is called; or a result of
            ``explain_fn`` of the wrong type or shape, or with NaN/inf, naming the call's
            inputs and rows.

    Examples:
        A linear model's gradient is the same for every input, so it is perfectly stable:

        >>> w = np.array([1.0, -2.0, 3.0, 0.5])
        >>> gradient = lambda x, target: np.broadcast_to(w, x.shape).copy()
        >>> stability(gradient, np.array([[0.0, 1.0, 2.0, 3.0]]), n_samples=8, seed=0)
        array([1.])

    References:
        Smilkov, Thorat, Kim, Viegas, Wattenberg (2017). SmoothGrad: removing noise by
        adding noise. arXiv:1706.03825, sections 2 and 3.
    """
    x, targets, n_samples, batch_size = _common_checks(
        explain_fn, x, target, n_samples, batch_size
    )
    if not isinstance(absolute, bool | np.bool_):
        raise TypeError(f"absolute: expected True or False, got {absolute!r}")
    sigmas = _resolve_sigma(x, noise_level, sigma)
    rng = as_generator(seed)
    n = x.shape[0]
    total = np.zeros(n)
    undefined = np.zeros(n, dtype=bool)

    def perturb(owner: int, count: int) -> np.ndarray:
        noise = rng.standard_normal(size=(count, *x.shape[1:]))
        return (x[owner] + sigmas[owner] * noise).astype(x.dtype, copy=False)

    def ranked(maps: np.ndarray) -> np.ndarray:
        flat = maps.reshape(len(maps), -1)
        return _average_ranks(np.abs(flat) if absolute else flat)

    def prepare(owner: int, reference: np.ndarray) -> tuple[np.ndarray, float, bool]:
        ranks = ranked(reference[None])[0]
        centred = ranks - ranks.mean()
        return centred, float(np.sqrt(centred @ centred)), bool(np.ptp(ranks) == 0)

    def consume(owner: int, prepared: tuple, maps: np.ndarray, rows: np.ndarray) -> None:
        centred, norm, constant = prepared
        ranks = ranked(maps)
        if constant or _constant_rows(ranks).any():
            undefined[owner] = True
            return
        ranks -= ranks.mean(axis=1, keepdims=True)
        r = (ranks @ centred) / (np.sqrt(np.einsum("ij,ij->i", ranks, ranks)) * norm)
        total[owner] += np.clip(r, -1.0, 1.0).sum()

    _stream_against_reference(
        explain_fn, x, n_samples=n_samples, batch_size=batch_size, perturb=perturb,
        targets_for=_row_targets(targets), prepare=prepare, consume=consume,
    )
    result = total / n_samples
    if undefined.any():
        warnings.warn(
            f"stability: input(s) {np.flatnonzero(undefined)[:10].tolist()} have a constant "
            "map (or noisy map), whose rank correlation is undefined; they are NaN",
            RuntimeWarning,
            stacklevel=2,
        )
        result[undefined] = np.nan
    return result
