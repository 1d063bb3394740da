"""NoiseGrad and FusionGrad (Bykov et al. 2022): noise on the model's weights, then average.

SmoothGrad averages the maps of noisy copies of the input; NoiseGrad carries the idea to
the model: it averages the maps of ``M`` copies of the model whose every weight is
multiplied by its own draw of ``N(1, sigma^2)``,

    M_hat_c(x) = 1/M * sum_{j=1..M} M_c(x; theta * eta_j),   eta_j ~ N(1, sigma^2)

and FusionGrad averages SmoothGrad over each copy, ``M x N`` maps in all. The core never
sees a framework, so it takes a *factory*: ``make_fn(seed_sequence) -> fn`` makes the
attribution callback of one noisy copy, drawing that copy's noise from the
``numpy.random.SeedSequence`` it is given; the adapters build one from any model with
:func:`adapters.models.noisy_copies` (the backends' weight-copy hook with
:func:`adapters._backend.multiplicative_noise`). A numpy model can be its own factory.

Seeds: copy ``j`` (``0 <= j < n_models``) is made from :func:`copy_seeds`\\ ``(seed,
n_models)[j]``, ``SeedSequence(entropy, spawn_key=(*spawn_key, 0, j))`` of the root
sequence of ``seed``; FusionGrad's input noise on copy ``j`` is SmoothGrad seeded with
``spawn_key=(*spawn_key, 1, j)``. So the same seed gives the same copies and the same map,
whatever ``batch_size``, and the copies do not change with ``n_models`` (the first ``M``
copies of a run with more are the same). Only one copy's callback is held at a time: the
core drops it before the next copy is made.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import cast

import numpy as np

from ._checks import (
    as_input_batch,
    as_targets,
    check_bool,
    check_callable,
    check_choice,
    check_positive_int,
)
from ._streaming import _progress_bar, call_chunk, cast_result, chunk_bounds
from .noise import DEFAULT_NOISE, NOISE_SCHEMES
from .smoothing import _DEFAULT_NOISE_LEVEL, _resolve_sigma, smoothgrad
from .types import AttributionFn, SeedLike

__all__ = ["CopyFactory", "copy_seeds", "fusion_grad", "noise_grad"]

#: ``make_fn(seed_sequence) -> fn``: the attribution callback of one noisy copy of the model.
CopyFactory = Callable[[np.random.SeedSequence], AttributionFn]

_MODEL_STREAM, _INPUT_STREAM = 0, 1


def _root(seed: object) -> np.random.SeedSequence:
    """The root sequence of ``seed``: None, a non-negative int, a SeedSequence (used as it
    is, never advanced) or a Generator (advanced by one draw of its entropy)."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, np.random.Generator):
        return np.random.SeedSequence(seed.integers(0, 2**63, size=4).tolist())
    if seed is None:
        return np.random.SeedSequence()
    if isinstance(seed, bool | np.bool_) or not isinstance(seed, numbers.Integral):
        raise TypeError(
            f"seed: expected None, a non-negative int, a numpy SeedSequence or a numpy "
            f"Generator, got {type(seed).__name__} {seed!r}"
        )
    if int(seed) < 0:
        raise ValueError(f"seed: expected a non-negative int, got {seed}")
    return np.random.SeedSequence(int(seed))


def _child(root: np.random.SeedSequence, stream: int, index: int) -> np.random.SeedSequence:
    return np.random.SeedSequence(root.entropy, spawn_key=(*root.spawn_key, stream, index),
                                  pool_size=root.pool_size)


def copy_seeds(seed: SeedLike, n_models: int) -> list[np.random.SeedSequence]:
    """The seed sequences :func:`noise_grad` and :func:`fusion_grad` give ``make_fn``.

    Args:
        seed: None, a non-negative int, a ``SeedSequence`` (not advanced) or a
            ``Generator`` (advanced by one draw).
        n_models: how many copies.

    Returns:
        ``n_models`` sequences, ``SeedSequence(entropy, spawn_key=(*spawn_key, 0, j))``.

    Examples:
        >>> [s.spawn_key for s in copy_seeds(7, 2)]
        [(0, 0), (0, 1)]
    """
    n_models = check_positive_int(n_models, "n_models")
    root = _root(seed)
    return [_child(root, _MODEL_STREAM, j) for j in range(n_models)]


def _checked_copy(make_fn: CopyFactory, seed: np.random.SeedSequence, index: int) -> AttributionFn:
    fn = make_fn(seed)
    if not callable(fn):
        raise TypeError(
            f"make_fn: expected make_fn(seed_sequence) to return an attribution callback "
            f"fn(x, target), got {type(fn).__name__} for copy {index}"
        )
    return fn


def noise_grad(
    make_fn: CopyFactory,
    x: np.ndarray,
    target: int | np.ndarray | None = None,
    *,
    n_models: int = 10,
    batch_size: int = 64,
    seed: SeedLike = None,
    progress: bool = False,
) -> np.ndarray:
    """NoiseGrad: the mean of the maps of ``n_models`` noisy copies of the model.

    Copy ``j``'s callback ``make_fn(copy_seeds(seed, n_models)[j])`` runs on ``x`` in
    chunks of at most ``batch_size`` rows; the maps are summed in float64, and the copy is
    let go before the next is made.

    Args:
        make_fn: ``make_fn(seed_sequence) -> fn``, the attribution callback of one copy of
            the model with noise on its weights drawn from ``seed_sequence``
            (:func:`adapters.models.noisy_copies` makes one for a PyTorch, Keras or JAX
            model: multiplicative ``N(1, sigma^2)`` noise, ``sigma=0.2`` by default as in
            the authors' code). ``fn`` may be any attribution callback (a gradient,
            integrated gradients or Grad-CAM bound with ``functools.partial``); it may
            return any fixed trailing shape.
        x: a batch ``(N, *input_shape)``.
        target: None, one output index for all inputs, or one per input ``(N,)``.
        n_models: the noisy copies (the paper uses 10).
        batch_size: the most rows sent to a copy's callback in one call.
        seed: None (fresh entropy), a non-negative int, a ``SeedSequence`` or a
            ``Generator``; see :func:`copy_seeds`. numpy's global random state is never used.
        progress: True to show a tqdm progress bar.

    Returns:
        ``(N, *map_shape)`` in ``x``'s float dtype.

    Raises:
        ValueError, TypeError: bad input, before ``make_fn`` is called at all; a factory
            that does not return a callable; a callback result of the wrong shape, type or
            with NaN/inf, naming the rows of the call.

    Examples:
        For a linear model ``w . x`` the map of a copy is its noisy weights ``w * eta``, and
        the mean over copies tends to ``w``:

        >>> w = np.array([1.0, -2.0, 3.0])
        >>> def make_fn(seed_sequence):
        ...     eta = np.random.default_rng(seed_sequence).normal(1.0, 0.2, size=w.shape)
        ...     return lambda x, target: np.broadcast_to(w * eta, x.shape).copy()
        >>> noise_grad(make_fn, np.zeros((1, 3)), n_models=4000, seed=0).round(1)
        array([[ 1., -2.,  3.]])

    References:
        Bykov, Hedström, Nakajima, Höhne (2022). NoiseGrad: enhancing explanations by
        introducing stochasticity to model weights. AAAI 2022; arXiv:2106.10185
        (NoiseGrad).
    """
    check_callable(make_fn, "make_fn")
    x = as_input_batch(x)
    targets = as_targets(target, x.shape[0])
    n_models = check_positive_int(n_models, "n_models")
    batch_size = check_positive_int(batch_size, "batch_size")
    progress = check_bool(progress, "progress")
    seeds = copy_seeds(seed, n_models)

    total: np.ndarray | None = None
    trailing: tuple[int, ...] | None = None
    bar = _progress_bar(n_models * x.shape[0], "NoiseGrad") if progress else None
    try:
        for index, copy_seed in enumerate(seeds):
            fn = _checked_copy(make_fn, copy_seed, index)
            for start, stop in chunk_bounds(x.shape[0], batch_size):
                chunk_targets = None if targets is None else targets[start:stop]
                maps = call_chunk(fn, x[start:stop], chunk_targets, start=start, stop=stop,
                                  expected_trailing=trailing,
                                  name=f"fn of copy {index}")
                trailing = maps.shape[1:]
                if total is None:
                    total = np.zeros((x.shape[0], *trailing), dtype=np.float64)
                total[start:stop] += maps
                del maps
                if bar is not None:
                    bar.update(stop - start)
            del fn  # one copy alive at a time: let it go before the next is made
    finally:
        if bar is not None:
            bar.close()
    return cast_result(cast(np.ndarray, total) / n_models, x.dtype, name="fn")


def fusion_grad(
    make_fn: CopyFactory,
    x: np.ndarray,
    target: int | np.ndarray | None = None,
    *,
    n_models: int = 10,
    n_samples: int = 10,
    noise_level: float = _DEFAULT_NOISE_LEVEL,
    sigma: float | np.ndarray | None = None,
    noise: str = DEFAULT_NOISE,
    batch_size: int = 64,
    seed: SeedLike = None,
    progress: bool = False,
) -> np.ndarray:
    """FusionGrad: SmoothGrad on each of ``n_models`` noisy copies, averaged.

    Copy ``j`` (made as in :func:`noise_grad`) gives
    ``smoothgrad(fn_j, x, target, n_samples=n_samples, sigma=sigmas, noise=noise)``, with
    the input noise seeded from ``seed`` and ``j`` (see the module docstring), and the
    result is the mean over copies: the mean of all ``n_models x n_samples`` maps, noise on
    the weights and on the input together.

    Args:
        make_fn: ``make_fn(seed_sequence) -> fn`` for one noisy copy, as in
            :func:`noise_grad`.
        x: a batch ``(N, *input_shape)``.
        target: None, one output index for all inputs, or one per input ``(N,)``.
        n_models: the noisy copies of the model (the paper uses 10).
        n_samples: SmoothGrad's noisy inputs per copy (the paper uses 10).
        noise_level: the input noise's sigma relative to each input's range (SmoothGrad's
            default 0.15).
        sigma: an absolute standard deviation of the input noise (a number, or one per
            input) instead of ``noise_level``; giving both is an error.
        noise: SmoothGrad's noise scheme, one of :data:`saliency_core.NOISE_SCHEMES`
            (SmoothGrad's default, :data:`saliency_core.noise.DEFAULT_NOISE`).
        batch_size: the most rows sent to a copy's callback in one call.
        seed: None, a non-negative int, a ``SeedSequence`` or a ``Generator``.
        progress: True to show a tqdm progress bar.

    Returns:
        ``(N, *map_shape)`` in ``x``'s float dtype.

    Raises:
        ValueError, TypeError: bad input, before ``make_fn`` is called at all; the errors
            of :func:`noise_grad` and :func:`saliency_core.smoothgrad`.

    Examples:
        The gradient ``2 x`` of ``x . x`` on a copy with weights noise ``eta``: ``2 eta x``;
        the input noise averages out, the weights noise tends to 1:

        >>> def make_fn(seed_sequence):
        ...     eta = np.random.default_rng(seed_sequence).normal(1.0, 0.1)
        ...     return lambda x, target: 2 * eta * x
        >>> fusion_grad(make_fn, np.array([[1.0, -1.0]]), n_models=400, n_samples=4,
        ...             sigma=0.1, noise="antithetic", seed=0).round(1)
        array([[ 2., -2.]])

    References:
        Bykov, Hedström, Nakajima, Höhne (2022). NoiseGrad: enhancing explanations by
        introducing stochasticity to model weights. AAAI 2022; arXiv:2106.10185
        (FusionGrad). Smilkov et al. (2017), arXiv:1706.03825, for the input noise.
    """
    check_callable(make_fn, "make_fn")
    x = as_input_batch(x)
    targets = as_targets(target, x.shape[0])
    n_models = check_positive_int(n_models, "n_models")
    n_samples = check_positive_int(n_samples, "n_samples")
    batch_size = check_positive_int(batch_size, "batch_size")
    noise = check_choice(noise, "noise", NOISE_SCHEMES)
    progress = check_bool(progress, "progress")
    sigmas = _resolve_sigma(x, noise_level, sigma)  # warns once, not once per copy
    root = _root(seed)

    total: np.ndarray | None = None
    bar = _progress_bar(n_models * x.shape[0] * n_samples, "FusionGrad") if progress else None
    try:
        for index in range(n_models):
            fn = _checked_copy(make_fn, _child(root, _MODEL_STREAM, index), index)
            maps = smoothgrad(fn, x, targets, n_samples=n_samples, sigma=sigmas, noise=noise,
                              batch_size=batch_size, seed=_child(root, _INPUT_STREAM, index),
                              noise_threads=0)
            del fn  # one copy alive at a time
            if total is None:
                total = np.zeros(maps.shape, dtype=np.float64)
            elif maps.shape != total.shape:
                raise ValueError(
                    f"fn of copy {index}: expected maps of shape {total.shape} as the first "
                    f"copy gave, got shape {maps.shape}"
                )
            total += maps
            del maps
            if bar is not None:
                bar.update(x.shape[0] * n_samples)
    finally:
        if bar is not None:
            bar.close()
    return cast_result(cast(np.ndarray, total) / n_models, x.dtype, name="fn")
