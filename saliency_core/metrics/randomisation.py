"""Randomisation tests: does the map change when what it should depend on is randomised?

* :func:`random_logit` (Sixt et al. 2020): the similarity between the map for the target
  class and the map for a uniformly drawn other class. A map that explains the class
  should differ; lower is better.
* :func:`model_randomisation` (Adebayo et al. 2018): the similarity between the map of
  the trained model and the maps of copies whose layers are re-initialised, from the
  output down. A map that explains the model should lose its similarity; lower is better.

Both compare maps with :mod:`saliency_core.metrics.similarity`: ``"spearman"`` and
``"pearson"`` over all elements of the maps, ``"ssim"`` on maps with one or two axes
besides the batch (``channel_axis=`` averages a channel axis out first).
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .._checks import (
    as_generator,
    as_input_batch,
    as_targets,
    check_callable,
    check_callback_output,
    check_positive_int,
)
from ..types import AttributionFn, SeedLike
from .robustness import _stream_against_reference
from .similarity import SIMILARITIES, _pearson_rows, _spearman_rows, _ssim_rows

__all__ = [
    "ExplainFactory",
    "ModelRandomisationResult",
    "model_randomisation",
    "random_logit",
]


class ExplainFactory(Protocol):
    """The attribution callback of a copy of the model with some layers re-initialised.

    ``explain_for(randomised, seeds) -> explain_fn``

    Args:
        randomised: the names of the layers whose weights are re-initialised in the copy;
            the empty tuple asks for the original model.
        seeds: one int in ``[0, 2**32)`` per name in ``randomised``, the seed to
            re-initialise that layer with (so the same seed gives the same weights).

    Returns:
        An :class:`saliency_core.types.AttributionFn` of that copy. The original model
        must be left unchanged (the adapters copy weights through their hook).
    """

    def __call__(
        self, randomised: tuple[str, ...], seeds: tuple[int, ...], /
    ) -> AttributionFn: ...


def _check_similarity(value: object) -> str:
    if not isinstance(value, str) or value not in SIMILARITIES:
        listed = ", ".join(repr(s) for s in SIMILARITIES)
        raise ValueError(f"similarity: expected one of {listed}, got {value!r}")
    return value


def _check_channel_axis(channel_axis: object) -> int | None:
    if channel_axis is None:
        return None
    if isinstance(channel_axis, bool | np.bool_) or not isinstance(channel_axis, numbers.Integral):
        raise TypeError(f"channel_axis: expected None or an int axis of the maps, got "
                        f"{channel_axis!r}")
    if channel_axis == 0:
        raise ValueError("channel_axis: expected a non-batch axis of the maps, got axis 0")
    return int(channel_axis)


def _check_flag(value: object, name: str) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"{name}: expected True or False, got {value!r}")
    return bool(value)


def _prepared_maps(
    maps: np.ndarray, similarity: str, absolute: bool, channel_axis: int | None
) -> np.ndarray:
    """The maps as the similarity sees them: ``|maps|`` if asked, 2-D for SSIM."""
    if absolute:
        maps = np.abs(maps)
    if similarity != "ssim":
        return maps.reshape(len(maps), -1)
    if channel_axis is not None:
        if not -maps.ndim <= channel_axis < maps.ndim or channel_axis % maps.ndim == 0:
            raise ValueError(
                f"channel_axis: expected a non-batch axis of the maps, which have shape "
                f"{maps.shape[1:]} per input, got {channel_axis}"
            )
        maps = maps.mean(axis=channel_axis)
    if maps.ndim not in (2, 3) or min(maps.shape[1:]) < 7:
        hint = "" if channel_axis is not None else "; pass channel_axis= to average channels out"
        raise ValueError(
            "similarity='ssim': expected maps with one or two axes of at least 7 elements "
            f"besides the batch (after averaging channel_axis out), got maps of shape "
            f"{maps.shape[1:]} per input{hint}"
        )
    return maps


def _similarities(similarity: str, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row similarities of prepared maps and the mask of undefined (NaN) rows."""
    if similarity == "ssim":
        values = _ssim_rows(a, b)
        return values, np.zeros(len(values), dtype=bool)
    if similarity == "spearman":
        return _spearman_rows(a, b)
    return _pearson_rows(a, b)


def random_logit(
    explain_fn: AttributionFn,
    x: np.ndarray,
    target: int | np.ndarray,
    *,
    n_classes: int,
    similarity: str = "ssim",
    absolute: bool = False,
    channel_axis: int | None = None,
    seed: SeedLike = None,
    batch_size: int = 64,
) -> np.ndarray:
    """Random logit test: how similar the map for the target is to the map for another class.

        RandomLogit(x) = similarity(e(x, y), e(x, y')),   y' uniform over the other classes.

    An explanation of *the class* should change when another class is explained; lower is
    better (Sixt, Granz, Landgraf 2020 show that several LRP variants fail this).

    Args:
        explain_fn: an attribution callback ``explain_fn(x, target) -> maps``. Each input
            is explained twice, for its target and for the drawn class, in the same
            chunks of at most ``batch_size`` rows.
        x: a batch ``(N, *input_shape)``; integer inputs are converted to float32.
        target: the explained class of every input (an int, or one per input ``(N,)``).
        n_classes: the number of classes, at least 2; ``y'`` is uniform over the
            ``n_classes - 1`` classes other than the target.
        similarity: ``"ssim"`` (default, as Quantus), ``"spearman"`` or ``"pearson"``.
        absolute: compare ``|maps|`` (default False, as Quantus's ``abs=False``).
        channel_axis: for ``"ssim"``, an axis of the maps (0 is the batch) that is
            averaged out so that maps of colour images become 2-D.
        seed: None, an int, a ``SeedSequence`` or a ``Generator``; it draws ``y'``.
        batch_size: the most rows sent to ``explain_fn`` in one call.

    Returns:
        ``(N,)`` float64 similarities. A correlation with a constant map is undefined:
        NaN, with a ``RuntimeWarning``.

    Raises:
        ValueError, TypeError: bad input (a target of None or outside ``[0, n_classes)``,
            an unknown similarity), before ``explain_fn`` is called; or a result of
            ``explain_fn`` of the wrong type or shape, or with NaN/inf.

    Examples:
        A map that ignores the class is perfectly similar to itself:

        >>> w = np.array([1.0, -2.0, 3.0, 0.5])
        >>> gradient = lambda x, target: np.broadcast_to(w, x.shape).copy()
        >>> random_logit(gradient, np.ones((2, 4)), 0, n_classes=10,
        ...              similarity="spearman", seed=0)
        array([1., 1.])

    Notes:
        With ``similarity="spearman"`` or ``"pearson"`` this is Quantus's
        ``RandomLogit(similarity_func=..., num_classes=n_classes, normalise=False)``.
        Quantus's SSIM treats every map as one flat row (a 1-D SSIM over ``H * W``
        elements, whose windows run across image rows); ours is the 2-D SSIM of the map,
        so the two agree for 1-D maps only. Quantus's default ``normalise=True`` divides
        each batch of maps by its largest ``|value|``, which changes SSIM but no
        correlation. Quantus draws ``y'`` from numpy's global random state seeded with 42.

    References:
        Sixt, Granz, Landgraf (2020). When explanations lie: why many modified BP
        attributions fail. ICML 2020, arXiv:1912.09818.
    """
    check_callable(explain_fn, "explain_fn")
    x = as_input_batch(x)
    checked = None if target is None else as_targets(target, x.shape[0])
    if checked is None:
        raise ValueError("target: expected the explained class of every input, got None")
    targets = checked
    n_classes = check_positive_int(n_classes, "n_classes")
    if n_classes < 2:
        raise ValueError(f"n_classes: expected at least 2 classes, got {n_classes}")
    if targets.max() >= n_classes:
        raise ValueError(
            f"target: expected classes in [0, {n_classes - 1}], got {int(targets.max())}"
        )
    similarity = _check_similarity(similarity)
    absolute = _check_flag(absolute, "absolute")
    channel_axis = _check_channel_axis(channel_axis)
    batch_size = check_positive_int(batch_size, "batch_size")
    rng = as_generator(seed)
    other = rng.integers(0, n_classes - 1, size=x.shape[0])
    other += other >= targets  # uniform over the classes other than the target

    result = np.empty(x.shape[0])
    undefined = np.zeros(x.shape[0], dtype=bool)

    def targets_for(inputs: np.ndarray, samples: np.ndarray) -> np.ndarray:
        return np.where(samples == 0, targets[inputs], other[inputs])

    def prepare(owner: int, reference: np.ndarray) -> np.ndarray:
        return _prepared_maps(reference[None], similarity, absolute, channel_axis)

    def consume(owner: int, reference: np.ndarray, maps: np.ndarray, rows: np.ndarray) -> None:
        values, bad = _similarities(
            similarity, reference, _prepared_maps(maps, similarity, absolute, channel_axis)
        )
        result[owner], undefined[owner] = values[0], bad[0]

    _stream_against_reference(
        explain_fn, x, n_samples=1, batch_size=batch_size,
        perturb=lambda owner, count: x[owner][None], targets_for=targets_for,
        prepare=prepare, consume=consume,
    )
    if undefined.any():
        warnings.warn(
            f"random_logit: input(s) {np.flatnonzero(undefined)[:10].tolist()} have a constant "
            f"map, whose {similarity} correlation is undefined; they are NaN",
            RuntimeWarning,
            stacklevel=2,
        )
    return result


@dataclass(frozen=True)
class ModelRandomisationResult:
    """The similarities of :func:`model_randomisation`, one ``(N, L)`` array per similarity.

    Column ``i`` compares each input's map under the original model with its map once
    step ``i`` has re-initialised ``randomised[i]``. The arrays are read-only; a
    similarity that was not asked for is None.

    Attributes:
        layers: the layer names, from the output down, as given.
        randomised: the layers re-initialised at each step: ``layers[:i + 1]`` when
            cascading, ``(layers[i],)`` otherwise.
        cascading: whether the steps were cascading.
        spearman: Spearman rank correlations, or None.
        pearson: Pearson correlations, or None.
        ssim: structural similarities, or None.
    """

    layers: tuple[str, ...]
    randomised: tuple[tuple[str, ...], ...]
    cascading: bool
    spearman: np.ndarray | None = None
    pearson: np.ndarray | None = None
    ssim: np.ndarray | None = None

    def __getitem__(self, similarity: str) -> np.ndarray:
        """The ``(N, L)`` array of one similarity, by name."""
        _check_similarity(similarity)
        values = getattr(self, similarity)
        if values is None:
            raise KeyError(f"{similarity!r} was not computed; pass similarity= to ask for it")
        return values


def _check_layers(layers: object) -> tuple[str, ...]:
    if isinstance(layers, str) or not isinstance(layers, Sequence):
        raise TypeError(
            f"layers: expected a list of layer names from the output down, got {layers!r}"
            + ("; wrap a single name in a list" if isinstance(layers, str) else "")
        )
    names = tuple(layers)
    if not names:
        raise ValueError("layers: expected at least one layer name, got an empty list")
    wrong = [name for name in names if not isinstance(name, str)]
    if wrong:
        raise TypeError(f"layers: expected layer names (str), got {wrong[0]!r}")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"layers: expected each layer once, got {duplicates} more than once")
    return names


def _check_similarities(similarity: object) -> tuple[str, ...]:
    names = (similarity,) if isinstance(similarity, str) else similarity
    if not isinstance(names, Sequence) or not names:
        raise ValueError(
            f"similarity: expected a name or a non-empty list of names from {SIMILARITIES}, "
            f"got {similarity!r}"
        )
    names = tuple(_check_similarity(name) for name in names)
    if len(set(names)) != len(names):
        raise ValueError(f"similarity: expected each similarity once, got {list(names)}")
    return names


def _layer_seeds(seed: SeedLike, count: int) -> tuple[int, ...]:
    words: np.ndarray
    if isinstance(seed, np.random.Generator):
        words = seed.integers(0, 2**32, size=count, dtype=np.uint64)
    else:
        as_generator(seed)  # the same type check as everywhere
        words = np.random.SeedSequence(
            seed.entropy if isinstance(seed, np.random.SeedSequence) else seed
        ).generate_state(count)
    return tuple(int(word) for word in words)


def model_randomisation(
    explain_for: ExplainFactory,
    x: np.ndarray,
    target: int | np.ndarray | None = None,
    *,
    layers: Sequence[str],
    similarity: str | Sequence[str] = ("spearman", "ssim"),
    cascading: bool = True,
    absolute: bool = True,
    channel_axis: int | None = None,
    seed: SeedLike = None,
    batch_size: int = 64,
) -> ModelRandomisationResult:
    """Model parameter randomisation test: how similar the maps stay as layers are re-initialised.

    Step ``i`` re-initialises ``layers[:i + 1]`` (cascading, from the output down) or only
    ``layers[i]`` (independent), and compares each input's map with its map under the
    original model. A method that explains the model should give maps that lose their
    similarity as more of the model is randomised (Adebayo et al. 2018, section 3.1);
    one that keeps it (a plain edge detector would) fails the test.

    The model is reached only through ``explain_for``, a factory the adapters build
    through their weight-copy hook (the original model is never changed), or any user
    function::

        explain_for(randomised: tuple[str, ...], seeds: tuple[int, ...]) -> explain_fn

    ``randomised`` names the layers whose weights are re-initialised (the empty tuple: the
    original model) and ``seeds[k]`` is the seed for re-initialising ``randomised[k]``,
    an int in ``[0, 2**32)``. A layer's seed is the same at every step it takes part in,
    in both modes, so a factory that seeds each layer with it makes cascading step
    ``i + 1`` exactly step ``i`` with one more layer re-initialised, and the whole test
    reproducible from ``seed``. The factory is called once for the original and once
    per step, ``len(layers) + 1`` times; each callback sees every input once, in chunks.
    The original maps are kept for the comparisons (``N`` maps, as each similarity sees
    them); every randomised map is compared chunk by chunk and dropped.

    Args:
        explain_for: the factory above; each callback it returns is an attribution
            callback ``explain_fn(x, target) -> maps``, called on chunks of at most
            ``batch_size`` inputs.
        x: a batch ``(N, *input_shape)``; integer inputs are converted to float32.
        target: None, one output index for every input, or one per input ``(N,)``.
        layers: the layer names from the output (top) down to the input; at least one,
            each once.
        similarity: a name or a list of names from ``("spearman", "pearson", "ssim")``.
        cascading: re-initialise ``layers[:i + 1]`` at step ``i`` (default) instead of
            ``layers[i]`` alone.
        absolute: compare ``|maps|`` (default True, Adebayo et al.'s absolute-value rank
            correlation and Quantus's ``abs=True``), for every similarity.
        channel_axis: for ``"ssim"``, an axis of the maps (0 is the batch) averaged out
            to make them 2-D (after taking ``|maps|``); the correlations use every element.
        seed: None, an int, a ``SeedSequence`` or a ``Generator``; only the layer seeds
            passed to ``explain_for`` come from it.
        batch_size: the most inputs sent to an ``explain_fn`` in one call.

    Returns:
        A :class:`ModelRandomisationResult` with one ``(N, len(layers))`` float64 array per
        similarity. A correlation with a constant map (a randomised model may give zero
        gradients) is NaN, with a ``RuntimeWarning``.

    Raises:
        ValueError, TypeError: bad input (``layers`` empty, with duplicates or not
            names; an unknown similarity), before ``explain_for`` is called; a factory
            result that is not callable; a map of the wrong type or shape or with
            NaN/inf, naming the step.

    Examples:
        A factory whose maps ignore the randomisation keeps a similarity of exactly 1:

        >>> w = np.arange(64.0).reshape(8, 8)
        >>> explain_for = lambda randomised, seeds: (
        ...     lambda x, target: np.broadcast_to(w, x.shape).copy())
        >>> result = model_randomisation(explain_for, np.zeros((2, 8, 8)),
        ...                              layers=["fc", "conv"], seed=0)
        >>> result.spearman
        array([[1., 1.],
               [1., 1.]])
        >>> result.randomised
        (('fc',), ('fc', 'conv'))

    Notes:
        Quantus's ``MPRT`` compares flattened maps (so its SSIM is 1-D) and by default
        divides each batch of maps by its largest ``|value|``; with Spearman and
        ``normalise=False`` it computes the same numbers from the same model copies.

    References:
        Adebayo, Gilmer, Muelly, Goodfellow, Hardt, Kim (2018). Sanity checks for
        saliency maps. NeurIPS 2018, arXiv:1810.03292, section 3.1.
    """
    check_callable(explain_for, "explain_for")
    x = as_input_batch(x)
    targets = as_targets(target, x.shape[0])
    names = _check_layers(layers)
    similarities = _check_similarities(similarity)
    cascading = _check_flag(cascading, "cascading")
    absolute = _check_flag(absolute, "absolute")
    channel_axis = _check_channel_axis(channel_axis)
    batch_size = check_positive_int(batch_size, "batch_size")
    seeds = _layer_seeds(seed, len(names))
    steps = tuple(names[: i + 1] if cascading else (names[i],) for i in range(len(names)))
    step_seeds = tuple(
        seeds[: i + 1] if cascading else (seeds[i],) for i in range(len(names))
    )
    n = x.shape[0]

    def explain_chunks(
        explain_fn: object,
        label: str,
        map_shape: tuple[int, ...] | None,
        visit: Callable[[int, int, np.ndarray], None],
    ) -> tuple[int, ...]:
        if not callable(explain_fn):
            raise TypeError(
                f"explain_for{label}: expected an attribution callback explain_fn(x, target), "
                f"got {type(explain_fn).__name__}"
            )
        for start in range(0, n, batch_size):
            stop = min(start + batch_size, n)
            output = explain_fn(x[start:stop], None if targets is None else targets[start:stop])
            output = check_callback_output(
                output,
                rows=(start, stop - 1),
                expected_shape=None if map_shape is None else (stop - start, *map_shape),
                n_rows=stop - start,
                name=f"explain_fn of explain_for{label}",
            )
            map_shape = output.shape[1:]
            visit(start, stop, output.astype(np.float64, copy=False))
        return map_shape  # type: ignore[return-value]  # N >= 1, so a chunk ran

    # the original maps, as each similarity sees them: the only maps kept whole
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in similarities}

    def keep(start: int, stop: int, maps: np.ndarray) -> None:
        for name in similarities:
            chunks[name].append(_prepared_maps(maps, name, absolute, channel_axis))

    map_shape = explain_chunks(explain_for((), ()), "((), ())", None, keep)
    reference = {name: np.concatenate(parts) for name, parts in chunks.items()}
    chunks.clear()
    values = {name: np.empty((n, len(names))) for name in similarities}
    undefined = np.zeros(len(names), dtype=bool)
    for step, (randomised, layer_seeds) in enumerate(zip(steps, step_seeds, strict=True)):

        def compare(start: int, stop: int, maps: np.ndarray, step: int = step) -> None:
            for name in similarities:
                column, bad = _similarities(
                    name,
                    reference[name][start:stop],
                    _prepared_maps(maps, name, absolute, channel_axis),
                )
                values[name][start:stop, step] = column
                undefined[step] |= bool(bad.any())

        explain_fn = explain_for(randomised, layer_seeds)
        explain_chunks(explain_fn, f"({randomised!r}, seeds)", map_shape, compare)
    if undefined.any():
        warnings.warn(
            "model_randomisation: some maps are constant after randomising "
            f"{[steps[i][-1] for i in np.flatnonzero(undefined)]}, so their correlation "
            "with the original is undefined; those entries are NaN",
            RuntimeWarning,
            stacklevel=2,
        )
    for array in values.values():
        array.flags.writeable = False
    return ModelRandomisationResult(
        layers=names, randomised=steps, cascading=cascading, **values
    )
