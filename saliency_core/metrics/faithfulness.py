"""Faithfulness: does the model's output move the way the map says it should?

* :func:`deletion` and :func:`insertion` (Bach et al. 2015's pixel flipping; Samek et al.
  2017; Petsiuk et al. 2018): remove (or reveal) the map's most important elements first
  and follow the target score; a faithful map makes it fall fast (or rise fast).
* :func:`faithfulness_correlation` (Bhatt et al. 2020): over random subsets, the Pearson
  correlation between the map's sum on the subset and the score's drop when the subset
  is set to a baseline.
* :func:`infidelity` (Yeh et al. 2019): the mean squared difference between ``I . map`` and
  ``f(x) - f(x - I)`` over Gaussian perturbations ``I``.

Every metric takes ``predict_fn(x) -> outputs`` (``(k,)`` scores, or ``(k, C)`` outputs of
which ``target`` picks a column), the batch ``x`` ``(N, *input_shape)`` and the maps, and
returns one value or one curve per input. Maps are shaped like ``x``, or like ``x`` without
its channel axis (then ``channel_axis=`` names the axis of ``x`` the map does not have, and
each map element stands for all channels at its position; a size-1 channel axis is also
accepted). ``score="softmax"`` scores the target's softmax probability instead of the raw
output.

The model sees rows ``(input i, step or sample j)``, row ``i * per_input + j``, in chunks of
at most ``batch_size`` rows across inputs and steps; each chunk is built when it is sent,
so memory holds one chunk of inputs whatever the number of steps or samples. Every
``predict_fn`` result is checked (``(k,)`` or ``(k, C)``, finite, the same per-row shape on
every call), and errors name the rows of the failing call.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .._checks import (
    as_generator,
    as_input_batch,
    as_targets,
    check_callable,
    check_choice,
    check_non_negative,
    check_positive_int,
)
from ..types import PredictFn
from ._perturb import (
    SCORES,
    MapLayout,
    Scorer,
    baseline_rows,
    rank_positions,
    read_baseline,
    read_maps,
    stream_scores,
)

__all__ = ["Curve", "deletion", "faithfulness_correlation", "infidelity", "insertion"]


@dataclasses.dataclass(frozen=True, eq=False)
class Curve:
    """A deletion or insertion curve per input (read-only arrays).

    Attributes:
        fractions: ``(steps + 1,)`` the fraction of map elements removed (deletion) or
            revealed (insertion) at each step, ``round(j * P / steps) / P``: from 0 to 1.
        scores: ``(N, steps + 1)`` the target score at each step; ``scores[:, 0]`` is the
            untouched input's (deletion) or the all-baseline input's (insertion).
        auc: ``(N,)`` the area under each curve, the trapezoid rule over ``fractions``.
    """

    fractions: np.ndarray
    scores: np.ndarray
    auc: np.ndarray


def _check_inputs(
    predict_fn: object, x: object, maps: object, target: object, channel_axis: object,
    batch_size: object, score: object,
) -> tuple[np.ndarray, MapLayout, np.ndarray | None, int, str]:
    check_callable(predict_fn, "predict_fn")
    x = as_input_batch(x)
    layout = read_maps(maps, x, channel_axis)
    targets = as_targets(target, x.shape[0])
    batch_size = check_positive_int(batch_size, "batch_size")
    score = check_choice(score, "score", SCORES)
    return x, layout, targets, batch_size, score


def _curve(
    kind: str, predict_fn: PredictFn, x: object, maps: object, target: object, *,
    steps: object, baseline: object, score: object, batch_size: object, channel_axis: object,
) -> Curve:
    x, layout, targets, batch_size, score = _check_inputs(
        predict_fn, x, maps, target, channel_axis, batch_size, score)
    steps = check_positive_int(steps, "steps")
    base = read_baseline(baseline, x)
    n_positions = layout.n_positions
    ranks = rank_positions(layout.flat)
    # round(j * P / steps), half up, in exact integer arithmetic
    counts = (2 * np.arange(steps + 1, dtype=np.int64) * n_positions + steps) // (2 * steps)

    def make_rows(inputs: np.ndarray, rows_steps: np.ndarray) -> np.ndarray:
        chosen = layout.on_input(ranks[inputs] < counts[rows_steps][:, None])
        originals, baselines = x[inputs], baseline_rows(base, inputs)
        if kind == "deletion":
            rows = np.where(chosen, baselines, originals)
        else:
            rows = np.where(chosen, originals, baselines)
        return rows.astype(x.dtype, copy=False)

    scores = stream_scores(Scorer(predict_fn, targets, score), make_rows,
                           n_inputs=x.shape[0], per_input=steps + 1, batch_size=batch_size)
    fractions = counts / n_positions
    auc = 0.5 * ((scores[:, 1:] + scores[:, :-1]) * np.diff(fractions)).sum(axis=1)
    for array in (fractions, scores, auc):
        array.setflags(write=False)
    return Curve(fractions=fractions, scores=scores, auc=auc)


def deletion(
    predict_fn: PredictFn,
    x: np.ndarray,
    maps: np.ndarray,
    target: int | np.ndarray | None = None,
    *,
    steps: int,
    baseline: float | str | np.ndarray = 0.0,
    score: str = "output",
    batch_size: int = 64,
    channel_axis: int | None = None,
) -> Curve:
    """The deletion curve: the target score as the most important elements are removed.

    Elements are ranked by their signed map value, largest first; equal values keep their
    row-major (C) order in the map, the first coming first. At step ``j`` (0..``steps``) the
    ``round(j * P / steps)`` most important of the ``P`` map elements (rounded half up) are
    set to the baseline, the rest keep their value; with ``channel_axis`` an element is a
    position and all its channels are set. A faithful map gives a low area under the curve.

    Args:
        predict_fn: ``predict_fn(x) -> outputs``, ``(k,)`` scores or ``(k, C)`` outputs.
        x: a batch ``(N, *input_shape)``; integer inputs are converted to float32.
        maps: ``(N, *input_shape)``, or without the axis ``channel_axis`` names.
        target: None for ``(k,)`` or ``(k, 1)`` outputs, else one output index for every
            input or one per input ``(N,)``.
        steps: the number of deletion steps; ``steps = P`` removes one element per step
            (Bach et al.'s pixel flipping).
        baseline: what a removed element becomes: a number, an array shaped like one input
            or like ``x``, or ``"mean"``, ``"min"`` or ``"max"`` of each input over all its
            elements. (For a blurred baseline, pass the blurred inputs, shaped like ``x``.)
        score: ``"output"`` (the target's raw output) or ``"softmax"`` (its softmax
            probability over the ``C`` outputs).
        batch_size: the most rows sent to ``predict_fn`` in one call. Rows of several inputs
            share a call: there are ``ceil(N * (steps + 1) / batch_size)`` calls.
        channel_axis: the axis of ``x`` the maps do not have, or None for maps shaped like
            ``x``.

    Returns:
        A :class:`Curve`: ``fractions`` ``(steps + 1,)``, ``scores`` ``(N, steps + 1)`` with
        ``scores[:, 0]`` the untouched input's score, and ``auc`` ``(N,)``.

    Raises:
        ValueError, TypeError: bad input, before ``predict_fn`` is called; a ``predict_fn``
            result of the wrong shape or type, with NaN/inf, or whose per-row shape changed
            since the first call (naming the rows of the call); a target out of range.

    Examples:
        For ``S(x) = w . x``, baseline 0 and the map ``w * x``, each step subtracts the next
        largest contribution:

        >>> w = np.array([3.0, 1.0, 2.0])
        >>> curve = deletion(lambda x: x @ w, np.ones((1, 3)), w[None], steps=3)
        >>> curve.scores
        array([[6., 3., 1., 0.]])
        >>> curve.auc.round(4)
        array([2.3333])

    Agreement with Quantus 0.6: ``PixelFlipping(features_in_step=P // steps,
    perturb_baseline=<a number>)`` gives ``scores[:, 1:]`` (its curve leaves out the
    untouched input) with ``score="softmax"`` for its default ``softmax=True`` and
    ``"output"`` for ``softmax=False``. Quantus ranks the map broadcast to ``x``'s shape,
    channels included, so with ``channel_axis`` and ``C`` channels its
    ``features_in_step = C * P // steps`` is the same. On purpose we differ in that ties
    keep a stable order (Quantus's ``argsort`` leaves them in arbitrary order), ``"min"``
    is Quantus's ``"black"`` but our ``"mean"`` is the untouched input's mean (Quantus
    recomputes it from the partly perturbed input at every step), and ``auc`` is the
    trapezoid over fractions 0..1 from step 0 (Quantus's is ``np.trapz`` with ``dx=1``
    over its curve). ``RegionPerturbation(patch_size=p, order="morf")`` is the deletion of
    the map whose elements are their patch's sum, with one patch per step: its values are
    ``scores[:, :1] - scores[:, 1:]``.

    References:
        Bach, Binder, Montavon, Klauschen, Mueller, Samek (2015). On pixel-wise explanations
        for non-linear classifier decisions by layer-wise relevance propagation. PLoS ONE
        10(7): e0130140.
        Samek, Binder, Montavon, Lapuschkin, Mueller (2017). Evaluating the visualization
        of what a deep neural network has learned. IEEE TNNLS 28(11).
        Petsiuk, Das, Saenko (2018). RISE: randomized input sampling for explanation of
        black-box models. BMVC (deletion and insertion).
    """
    return _curve("deletion", predict_fn, x, maps, target, steps=steps, baseline=baseline,
                  score=score, batch_size=batch_size, channel_axis=channel_axis)


def insertion(
    predict_fn: PredictFn,
    x: np.ndarray,
    maps: np.ndarray,
    target: int | np.ndarray | None = None,
    *,
    steps: int,
    baseline: float | str | np.ndarray = 0.0,
    score: str = "output",
    batch_size: int = 64,
    channel_axis: int | None = None,
) -> Curve:
    """The insertion curve: the target score as the most important elements are revealed.

    The ranking and step sizes are :func:`deletion`'s; at step ``j`` the
    ``round(j * P / steps)`` most important elements have their value and the rest are at
    the baseline, so ``scores[:, 0]`` is the all-baseline input's score and
    ``scores[:, steps]`` the untouched input's. A faithful map gives a high area under
    the curve.

    Args:
        predict_fn: ``predict_fn(x) -> outputs``, ``(k,)`` scores or ``(k, C)`` outputs.
        x: a batch ``(N, *input_shape)``; integer inputs are converted to float32.
        maps: ``(N, *input_shape)``, or without the axis ``channel_axis`` names.
        target: None for ``(k,)`` or ``(k, 1)`` outputs, else one output index for every
            input or one per input ``(N,)``.
        steps: the number of insertion steps.
        baseline: what a hidden element is: a number, an array shaped like one input or
            like ``x``, or ``"mean"``, ``"min"`` or ``"max"`` of each input.
        score: ``"output"`` or ``"softmax"``, as in :func:`deletion`.
        batch_size: the most rows sent to ``predict_fn`` in one call
            (``ceil(N * (steps + 1) / batch_size)`` calls).
        channel_axis: the axis of ``x`` the maps do not have, or None.

    Returns:
        A :class:`Curve` (see :func:`deletion`).

    Raises:
        ValueError, TypeError: as for :func:`deletion`.

    Examples:
        >>> w = np.array([3.0, 1.0, 2.0])
        >>> curve = insertion(lambda x: x @ w, np.ones((1, 3)), w[None], steps=3)
        >>> curve.scores
        array([[0., 3., 5., 6.]])
        >>> curve.auc.round(4)
        array([3.6667])

    References:
        Petsiuk, Das, Saenko (2018). RISE: randomized input sampling for explanation of
        black-box models. BMVC.
    """
    return _curve("insertion", predict_fn, x, maps, target, steps=steps, baseline=baseline,
                  score=score, batch_size=batch_size, channel_axis=channel_axis)


def _pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Pearson correlation of ``(N, n)`` arrays; NaN where a row is constant."""
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    denominator = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    numerator = (a * b).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        result = np.where(denominator > 0, numerator / denominator, np.nan)
    return np.clip(result, -1.0, 1.0)


def faithfulness_correlation(
    predict_fn: PredictFn,
    x: np.ndarray,
    maps: np.ndarray,
    target: int | np.ndarray | None = None,
    *,
    n_samples: int = 100,
    subset_size: int = 224,
    baseline: float | str | np.ndarray = 0.0,
    score: str = "output",
    seed: int | np.random.SeedSequence | np.random.Generator | None = None,
    batch_size: int = 64,
    channel_axis: int | None = None,
) -> np.ndarray:
    """Faithfulness correlation: does the map's sum over a subset predict the score drop?

    For each input, ``n_samples`` random subsets ``S`` of ``subset_size`` of its ``P`` map
    elements are drawn; the result is the Pearson correlation, over the subsets, between
    ``sum(map[S])`` and ``S(x) - S(x with S at the baseline)`` (with ``channel_axis``, an
    element is a position, with all its channels set).

    Subset ``(i, j)`` holds the ``subset_size`` positions with the smallest of ``P``
    uniform keys drawn for it (``Generator.random``), row after row in the order of inputs
    then samples: every subset of that size is equally likely, and the result does not
    depend on ``batch_size``. Each input takes ``n_samples + 1`` rows (the untouched input
    first); there are ``ceil(N * (n_samples + 1) / batch_size)`` calls.

    Args:
        predict_fn: ``predict_fn(x) -> outputs``, ``(k,)`` scores or ``(k, C)`` outputs.
        x: a batch ``(N, *input_shape)``; integer inputs are converted to float32.
        maps: ``(N, *input_shape)``, or without the axis ``channel_axis`` names.
        target: None for ``(k,)`` or ``(k, 1)`` outputs, else one index for every input or
            one per input ``(N,)``.
        n_samples: the number of random subsets per input (at least 2).
        subset_size: the number of map elements in a subset, ``1 <= subset_size < P``
            (224 is Quantus's default, made for 224x224 images).
        baseline: what a subset's elements become: a number, an array shaped like one
            input or like ``x``, or ``"mean"``, ``"min"`` or ``"max"`` of each input.
        score: ``"output"`` or ``"softmax"``, as in :func:`deletion`.
        seed: None (fresh entropy), an int, a ``SeedSequence`` or a ``Generator`` (which
            is advanced). numpy's global random state is never used.
        batch_size: the most rows sent to ``predict_fn`` in one call.
        channel_axis: the axis of ``x`` the maps do not have, or None.

    Returns:
        ``(N,)`` float64 correlations in [-1, 1]; NaN for an input whose subset sums or
        score drops are all equal (the correlation is undefined there).

    Raises:
        ValueError, TypeError: bad input, before ``predict_fn`` is called; a bad
            ``predict_fn`` result, naming the rows of the call.

    Examples:
        For a linear model and the map ``w * x`` the drop is exactly the subset's sum:

        >>> w = np.arange(1.0, 17.0)
        >>> x = np.ones((2, 16))
        >>> faithfulness_correlation(lambda x: x @ w, x, w * x, subset_size=4,
        ...                          n_samples=20, seed=0)
        array([1., 1.])

    Agreement with Quantus 0.6: ``FaithfulnessCorrelation(nr_runs=n_samples,
    subset_size=..., perturb_baseline=<a number>)`` computes the same correlation on the
    same subsets (with ``score="softmax"`` for its default ``softmax=True``), but draws them
    with ``np.random.choice`` from numpy's global state, and over all elements of ``x``
    (the map broadcast over channels); with ``channel_axis`` ours draws positions. Its
    normalisation of the map by its maximum does not change a correlation.

    References:
        Bhatt, Weller, Moura (2020). Evaluating and aggregating feature-based model
        explanations. IJCAI, section 3.1 (faithfulness, mu_F).
    """
    x, layout, targets, batch_size, score = _check_inputs(
        predict_fn, x, maps, target, channel_axis, batch_size, score)
    n_samples = check_positive_int(n_samples, "n_samples")
    if n_samples < 2:
        raise ValueError(f"n_samples: expected at least 2 subsets for a correlation, "
                         f"got {n_samples}")
    subset_size = check_positive_int(subset_size, "subset_size")
    n_positions = layout.n_positions
    if subset_size >= n_positions:
        raise ValueError(
            f"subset_size: expected fewer than the {n_positions} map elements per input "
            f"(subsets of all of them are all alike), got {subset_size}"
        )
    base = read_baseline(baseline, x)
    rng = as_generator(seed)
    subset_sums = np.empty((x.shape[0], n_samples))

    def make_rows(inputs: np.ndarray, samples: np.ndarray) -> np.ndarray:
        chosen = np.zeros((len(inputs), n_positions), dtype=bool)
        drawn = np.flatnonzero(samples > 0)
        if len(drawn):
            # one uniform key per position and row, in row order (inputs, then samples);
            # a subset is the positions with the smallest keys
            keys = rng.random((len(drawn), n_positions))
            subsets = np.argpartition(keys, subset_size - 1, axis=1)[:, :subset_size]
            chosen[drawn[:, None], subsets] = True
            owners = inputs[drawn]
            subset_sums[owners, samples[drawn] - 1] = layout.flat[owners[:, None],
                                                                  subsets].sum(axis=1)
        rows = np.where(layout.on_input(chosen), baseline_rows(base, inputs), x[inputs])
        return rows.astype(x.dtype, copy=False)

    scores = stream_scores(Scorer(predict_fn, targets, score), make_rows,
                           n_inputs=x.shape[0], per_input=n_samples + 1, batch_size=batch_size)
    drops = scores[:, :1] - scores[:, 1:]
    return _pearson(subset_sums, drops)


def infidelity(
    predict_fn: PredictFn,
    x: np.ndarray,
    maps: np.ndarray,
    target: int | np.ndarray | None = None,
    *,
    n_samples: int = 50,
    noise: float = 0.1,
    normalise: bool = False,
    score: str = "output",
    seed: int | np.random.SeedSequence | np.random.Generator | None = None,
    batch_size: int = 64,
    channel_axis: int | None = None,
) -> np.ndarray:
    """Infidelity: ``E[(I . map - (f(x) - f(x - I)))^2]`` over Gaussian perturbations ``I``.

    ``I`` has independent ``N(0, noise^2)`` elements over the whole input (every channel);
    with ``channel_axis`` a map element multiplies the sum of ``I`` over the channels at its
    position. The expectation is the mean over ``n_samples`` draws per input, drawn from
    ``seed`` in the order of inputs then samples (independent of ``batch_size``). ``I . map``
    uses the perturbation the model actually saw (``x - (x - I)`` in ``x``'s dtype). Each
    input takes ``n_samples + 1`` rows (the untouched input first). Lower is better; a map
    equal to the gradient of a linear model gives 0.

    Args:
        predict_fn: ``predict_fn(x) -> outputs``, ``(k,)`` scores or ``(k, C)`` outputs.
        x: a batch ``(N, *input_shape)``; integer inputs are converted to float32.
        maps: ``(N, *input_shape)``, or without the axis ``channel_axis`` names.
        target: None for ``(k,)`` or ``(k, 1)`` outputs, else one index for every input or
            one per input ``(N,)``.
        n_samples: perturbations per input.
        noise: the standard deviation of ``I``'s elements, in the units of ``x`` (> 0).
        normalise: scale each map by Yeh et al.'s optimal factor
            ``beta = mean(a * d) / mean(a^2)`` first (``a = I . map``, ``d`` the score drop,
            estimated on the same draws), which makes the metric blind to the map's scale:
            the result is then ``mean((beta * a - d)^2)`` (``beta = 0`` for an all-zero map).
        score: ``"output"`` or ``"softmax"``, as in :func:`deletion`.
        seed: None (fresh entropy), an int, a ``SeedSequence`` or a ``Generator`` (which
            is advanced). numpy's global random state is never used.
        batch_size: the most rows sent to ``predict_fn`` in one call.
        channel_axis: the axis of ``x`` the maps do not have, or None.

    Returns:
        ``(N,)`` float64 infidelities, never negative.

    Raises:
        ValueError, TypeError: bad input, before ``predict_fn`` is called; a bad
            ``predict_fn`` result, naming the rows of the call.

    Examples:
        The gradient of a linear model is perfectly faithful:

        >>> w = np.array([1.0, -2.0, 3.0])
        >>> x = np.ones((2, 3))
        >>> values = infidelity(lambda x: x @ w, x, np.broadcast_to(w, x.shape), seed=0)
        >>> bool(np.all(values < 1e-20))
        True

    Agreement with Quantus 0.6: Quantus's ``Infidelity`` does not draw Gaussian ``I``; it
    sets square patches (``perturb_patch_sizes``) to a baseline one after another, so its
    ``I`` are ``x`` minus the cumulatively perturbed inputs. The two agree where the answer
    does not depend on ``I`` (0 for a linear model and its gradient).

    References:
        Yeh, Hsieh, Suggala, Inouye, Ravikumar (2019). On the (in)fidelity and sensitivity
        of explanations. NeurIPS, definition 2.1 and section 3 (optimal scaling).
    """
    x, layout, targets, batch_size, score = _check_inputs(
        predict_fn, x, maps, target, channel_axis, batch_size, score)
    n_samples = check_positive_int(n_samples, "n_samples")
    noise = check_non_negative(noise, "noise")
    if noise == 0:
        raise ValueError("noise: expected a positive standard deviation, got 0")
    if not isinstance(normalise, bool | np.bool_):
        raise TypeError(f"normalise: expected a bool, got {normalise!r}")
    rng = as_generator(seed)
    projections = np.empty((x.shape[0], n_samples))

    def make_rows(inputs: np.ndarray, samples: np.ndarray) -> np.ndarray:
        rows = x[inputs]
        noisy = np.flatnonzero(samples > 0)  # row order: inputs, then samples
        if len(noisy):
            originals = rows[noisy]
            draws = rng.standard_normal(originals.shape)
            perturbed = (originals - noise * draws).astype(x.dtype, copy=False)
            actual = originals.astype(np.float64) - perturbed
            owners = inputs[noisy]
            projections[owners, samples[noisy] - 1] = (
                layout.per_position(actual) * layout.flat[owners]).sum(axis=1)
            rows[noisy] = perturbed
        return rows

    scores = stream_scores(Scorer(predict_fn, targets, score), make_rows,
                           n_inputs=x.shape[0], per_input=n_samples + 1, batch_size=batch_size)
    drops = scores[:, :1] - scores[:, 1:]
    if normalise:
        denominator = (projections * projections).mean(axis=1, keepdims=True)
        numerator = (projections * drops).mean(axis=1, keepdims=True)
        beta = np.divide(numerator, denominator, out=np.zeros_like(numerator),
                         where=denominator > 0)
        projections = beta * projections
    return np.square(projections - drops).mean(axis=1)
