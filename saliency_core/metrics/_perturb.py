"""What the perturbation metrics share: reading maps against ``x``, ranking their elements,
resolving baselines, and streaming perturbed rows through ``predict_fn`` with checks.

Every perturbation metric evaluates ``predict_fn`` on ``n_inputs x per_input`` rows: row
``r`` belongs to input ``r // per_input`` and is that input's ``r % per_input``-th step or
sample. Rows are built chunk by chunk, at most ``batch_size`` at a time and across inputs,
and only one score per row is kept, so memory holds one chunk of inputs whatever the
number of steps or samples.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .._checks import as_input_batch, check_callback_output
from ..types import PredictFn

__all__ = [
    "BASELINE_NAMES",
    "SCORES",
    "MapLayout",
    "Scorer",
    "baseline_rows",
    "read_baseline",
    "read_maps",
    "rank_positions",
    "stream_scores",
]

#: The named baselines: per-input statistics of ``x``.
BASELINE_NAMES = ("mean", "min", "max")

#: What a row's score is: the model's output for the target, or its softmax probability.
SCORES = ("output", "softmax")


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ("," if len(shape) == 1 else "") + ")"


# ----------------------------------------------------------------------------- maps


@dataclass(frozen=True)
class MapLayout:
    """How the maps sit on ``x``.

    Attributes:
        flat: the maps as float64 ``(N, P)``, ``P`` the number of map elements per input
            (the positions a metric ranks, samples or perturbs).
        map_shape: one map's shape (``x.shape[1:]``, less the channel axis if there is one).
        channel_axis: the axis of ``x`` the maps do not have (``1 <= axis < x.ndim``), or
            None when maps are shaped like ``x``.
    """

    flat: np.ndarray
    map_shape: tuple[int, ...]
    channel_axis: int | None

    @property
    def n_positions(self) -> int:
        return self.flat.shape[1]

    def on_input(self, values: np.ndarray) -> np.ndarray:
        """``values`` ``(k, P)`` shaped to broadcast against ``(k, *input_shape)``: a map
        element covers every channel at its position."""
        shaped = values.reshape(values.shape[0], *self.map_shape)
        if self.channel_axis is not None:
            shaped = np.expand_dims(shaped, self.channel_axis)
        return shaped

    def per_position(self, values: np.ndarray) -> np.ndarray:
        """``values`` ``(k, *input_shape)`` summed over channels: ``(k, P)``."""
        if self.channel_axis is not None:
            values = values.sum(axis=self.channel_axis)
        return values.reshape(values.shape[0], -1)


def read_maps(maps: object, x: np.ndarray, channel_axis: object) -> MapLayout:
    """Check ``maps`` against ``x`` and return them flat, one row per input.

    Maps are shaped like ``x`` (``channel_axis=None``), or like ``x`` without the axis
    ``channel_axis`` names, or with that axis of size 1.
    """
    maps = as_input_batch(maps, name="maps")
    if channel_axis is None:
        if maps.shape != x.shape:
            hint = ""
            if maps.ndim == x.ndim - 1 and maps.shape[0] == x.shape[0]:
                hint = "; for maps without a channel axis pass channel_axis= (the axis of x)"
            raise ValueError(
                f"maps: expected one map per input shaped like x, {_shape(x.shape)}, "
                f"got shape {_shape(maps.shape)}{hint}"
            )
        return MapLayout(maps.reshape(x.shape[0], -1).astype(np.float64), x.shape[1:], None)
    if isinstance(channel_axis, bool | np.bool_) or not isinstance(channel_axis, numbers.Integral):
        raise TypeError(f"channel_axis: expected None or an int, got {channel_axis!r}")
    axis = int(channel_axis) + (x.ndim if channel_axis < 0 else 0)
    if not 1 <= axis < x.ndim:
        raise ValueError(
            f"channel_axis: expected an axis of x other than the batch axis (1..{x.ndim - 1} "
            f"or -{x.ndim - 1}..-1 for x of shape {_shape(x.shape)}), got {channel_axis}"
        )
    without = x.shape[:axis] + x.shape[axis + 1:]
    kept = x.shape[:axis] + (1,) + x.shape[axis + 1:]
    if maps.shape == kept:
        maps = maps.reshape(without)
    elif maps.shape != without:
        raise ValueError(
            f"maps: expected x's shape without its channel axis {axis}, {_shape(without)} "
            f"(or {_shape(kept)}), got shape {_shape(maps.shape)}"
            + ("; maps shaped like x need channel_axis=None" if maps.shape == x.shape else "")
        )
    return MapLayout(maps.reshape(x.shape[0], -1).astype(np.float64), without[1:], axis)


def rank_positions(flat: np.ndarray) -> np.ndarray:
    """The rank of every map element, 0 for the most important: ``(N, P)`` int64.

    Elements are ordered by their signed value, largest first; equal values keep their
    row-major (C) order, so the element that comes first in the map comes first.
    """
    order = np.argsort(-flat, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(flat.shape[1])[None, :], axis=1)
    return ranks


# ------------------------------------------------------------------------- baselines


def read_baseline(baseline: object, x: np.ndarray) -> np.ndarray:
    """The baseline as an array that broadcasts against rows of ``x``: its first axis has
    length ``N`` (per input) or 1 (the same for every input), in ``x``'s dtype."""
    ones = (1,) * (x.ndim - 1)
    if isinstance(baseline, str):
        if baseline not in BASELINE_NAMES:
            listed = ", ".join(repr(name) for name in BASELINE_NAMES)
            raise ValueError(f"baseline: expected a number, an array or one of {listed}, "
                             f"got {baseline!r}")
        flat = x.reshape(x.shape[0], -1)
        value = {"mean": flat.mean(axis=1, dtype=np.float64), "min": flat.min(axis=1),
                 "max": flat.max(axis=1)}[baseline]
        return value.astype(x.dtype).reshape(x.shape[0], *ones)
    if isinstance(baseline, bool | np.bool_):
        raise TypeError(f"baseline: expected a number or an array, got {baseline!r}")
    if isinstance(baseline, numbers.Real):
        array = np.asarray(float(baseline))
    elif hasattr(baseline, "__array__") or isinstance(baseline, list | tuple):
        array = np.asarray(baseline)
    else:
        raise TypeError(f"baseline: expected a number, an array or one of {BASELINE_NAMES}, "
                        f"got {type(baseline).__name__}")
    if array.dtype.kind not in "iuf":
        raise TypeError(f"baseline: expected a real numeric array, got dtype {array.dtype}")
    if not np.isfinite(array).all():
        raise ValueError("baseline: expected finite values, got NaN or inf")
    if array.ndim == 0:
        return array.astype(x.dtype).reshape(1, *ones)
    if array.shape == x.shape[1:]:
        return array.astype(x.dtype)[None]
    if array.shape == x.shape:
        return array.astype(x.dtype)
    raise ValueError(
        f"baseline: expected a number, an array shaped like one input {_shape(x.shape[1:])} "
        f"or like x {_shape(x.shape)}, got shape {_shape(array.shape)}"
    )


def baseline_rows(baseline: np.ndarray, inputs: np.ndarray) -> np.ndarray:
    """The baseline of each row of a chunk (broadcastable against the chunk)."""
    return baseline[inputs] if baseline.shape[0] > 1 else baseline


# ---------------------------------------------------------------------------- scores


class Scorer:
    """Reads one float64 score per row from ``predict_fn``'s outputs, checking every call.

    Outputs are ``(k,)`` scores (``target`` None) or ``(k, C)`` outputs, of which the
    target's column is the score (a ``(k, 1)`` output needs no target). With
    ``score="softmax"`` the score is the target's softmax probability over the ``C``
    outputs. The first call fixes the per-row output shape; a later call that differs is
    an error naming both.
    """

    def __init__(self, predict_fn: PredictFn, targets: np.ndarray | None, score: str) -> None:
        self.predict_fn = predict_fn
        self.targets = targets
        self.score = score
        self.trailing: tuple[int, ...] | None = None
        self.calls = 0

    def __call__(self, batch: np.ndarray, inputs: np.ndarray, first_row: int) -> np.ndarray:
        k = batch.shape[0]
        where = f"predict_fn call for rows {first_row}..{first_row + k - 1}"
        output = check_callback_output(
            self.predict_fn(batch), rows=(first_row, first_row + k - 1), expected_shape=None,
            n_rows=k, name="predict_fn",
        )
        self.calls += 1
        trailing = output.shape[1:]
        if self.trailing is None:
            if output.ndim > 2:
                raise ValueError(
                    f"{where}: expected ({k},) scores or ({k}, C) outputs, got shape "
                    f"{_shape(output.shape)}; reduce the model's output to one row per input"
                )
            self.trailing = trailing
        elif trailing != self.trailing:
            raise ValueError(
                f"{where}: the model's output shape changed between calls: earlier calls gave "
                f"{_shape((k, *self.trailing))} for {k} rows, this one gives "
                f"{_shape(output.shape)}"
            )
        values = output.astype(np.float64, copy=False)
        if self.score == "softmax":
            if values.ndim != 2:
                raise ValueError(
                    f"{where}: score='softmax' needs outputs ({k}, C), got shape "
                    f"{_shape(output.shape)}"
                )
            shifted = values - values.max(axis=1, keepdims=True)
            exp = np.exp(shifted)
            values = exp / exp.sum(axis=1, keepdims=True)
        targets = self.targets
        if targets is None:
            if values.ndim == 1 or values.shape[1] == 1:
                return values.reshape(k)
            raise ValueError(
                f"{where}: the model gives {values.shape[1]} outputs per row; pass target "
                "to choose one (an int, or one index per input)"
            )
        if values.ndim != 2:
            raise ValueError(
                f"{where}: target was given, so expected outputs ({k}, C) to index, got shape "
                f"{_shape(output.shape)}; pass target=None for a model with one score per row"
            )
        row_targets = targets[inputs]
        if row_targets.max() >= values.shape[1]:
            raise ValueError(
                f"target: expected indices in [0, {values.shape[1] - 1}] (the model gives "
                f"{values.shape[1]} outputs), got {int(row_targets.max())}"
            )
        return values[np.arange(k), row_targets]


def stream_scores(
    scorer: Scorer,
    make_rows: Callable[[np.ndarray, np.ndarray], np.ndarray],
    *,
    n_inputs: int,
    per_input: int,
    batch_size: int,
) -> np.ndarray:
    """Score every row, ``batch_size`` rows per ``predict_fn`` call, across inputs.

    ``make_rows(inputs, steps) -> batch`` builds one chunk: ``inputs`` and ``steps`` are
    the chunk's input and step (or sample) indices. Chunks are made in row order, which
    keeps random streams independent of ``batch_size``.

    Returns:
        The scores, float64 ``(n_inputs, per_input)``.
    """
    scores = np.empty(n_inputs * per_input)
    for start in range(0, n_inputs * per_input, batch_size):
        stop = min(start + batch_size, n_inputs * per_input)
        inputs, steps = np.divmod(np.arange(start, stop), per_input)
        scores[start:stop] = scorer(make_rows(inputs, steps), inputs, start)
    return scores.reshape(n_inputs, per_input)
