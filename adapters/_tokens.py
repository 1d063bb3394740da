"""The rules every backend's ``embedding_fn`` shares, written once in numpy.

A text model is explained through its embeddings: ``embedding_fn(model, embedding, ...)``
in each backend returns :class:`EmbeddingCallbacks`, three numpy callbacks:

- ``embed(ids) -> embeddings``: token ids ``(N, T)`` through the embedding layer alone,
  ``(N, T, D)`` floats;
- ``gradient(embeddings, target) -> d score / d embeddings``: a
  :class:`saliency_core.types.GradientFn` over ``(k, T, D)`` embeddings, the rest of the
  model run from them, for every method of the core (SmoothGrad's noise and integrated
  gradients' path are then in embedding space);
- ``predict(embeddings) -> outputs``: a :class:`saliency_core.types.PredictFn` over
  embeddings, for choosing targets and for the metrics (deletion over tokens sets a
  deleted token's embedding to the padding or zero embedding).

:func:`as_token_ids` decides what ids may be, so the three backends answer alike.
This module imports numpy only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

__all__ = ["EmbeddingCallbacks", "as_token_ids", "check_embedded"]


class EmbeddingCallbacks(NamedTuple):
    """What ``embedding_fn`` returns: ``embed, gradient, predict = embedding_fn(...)``."""

    #: ``embed(ids) -> (N, T, D)``: the embedding layer's output for integer ids ``(N, T)``.
    embed: Callable[[Any], np.ndarray]
    #: ``gradient(embeddings, target) -> (k, T, D)``: d score / d embeddings.
    gradient: Callable[[np.ndarray, np.ndarray | None], np.ndarray]
    #: ``predict(embeddings) -> outputs``: the model's outputs from the embeddings.
    predict: Callable[[np.ndarray], np.ndarray]


def _shape(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(int(s)) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def as_token_ids(ids: object, *, vocabulary_size: int | None = None,
                 native: Callable[[object], np.ndarray | None] | None = None) -> np.ndarray:
    """Token ids as a C-ordered int64 array ``(N, T)``, refused unless they can be looked up.

    Args:
        ids: integer ids ``(N, T)``: a numpy array, a nested list, or a framework's array.
        vocabulary_size: the number of rows of the embedding table, when the framework
            knows it (ids must be below it); None to check only that ids are non-negative.
        native: the backend's converter for its own tensors (see
            :func:`adapters._backend.as_batch`).

    Raises:
        TypeError: ids that are not integers (floats, bools, strings).
        ValueError: a ragged list, another number of dimensions, an empty axis, negative
            ids or ids past the vocabulary.

    Examples:
        >>> as_token_ids([[3, 1, 0]], vocabulary_size=4)
        array([[3, 1, 0]])
        >>> as_token_ids([[3, 1, 4]], vocabulary_size=4)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: expected token ids below the vocabulary size 4 (rows of ...), got 4
    """
    array = native(ids) if native is not None else None
    if array is None:
        try:
            array = np.asarray(ids)
        except (ValueError, TypeError):
            raise ValueError(
                f"expected ids to be a rectangular (N, T) array of token ids, got a ragged "
                f"{type(ids).__name__}; pad the sequences to one length"
            ) from None
    if array.dtype.kind not in "iu":
        hint = "; convert whole-valued floats with .astype(int)" if array.dtype.kind == "f" else ""
        raise TypeError(f"expected ids to be integer token ids, got dtype {array.dtype}{hint}")
    if array.ndim != 2 or 0 in array.shape:
        raise ValueError(
            "expected ids to be a non-empty batch of token ids (N, T), one row per sequence, "
            f"got shape {_shape(array.shape)}"
            + ("; add a batch axis with ids[None]" if array.ndim == 1 else "")
        )
    if (array < 0).any():
        raise ValueError(f"expected non-negative token ids, got {array[array < 0][:5].tolist()}")
    if vocabulary_size is not None and (array >= vocabulary_size).any():
        beyond = np.unique(array[array >= vocabulary_size])
        shown = str(int(beyond[0])) if beyond.size == 1 else str(beyond[:5].tolist())
        raise ValueError(
            f"expected token ids below the vocabulary size {vocabulary_size} (rows of the "
            f"embedding table), got {shown}"
        )
    return np.ascontiguousarray(array, dtype=np.int64)


def check_embedded(shape: tuple[int | None, ...] | None, ids_shape: tuple[int, ...], where: str,
                   *, floating: bool = True) -> None:
    """The embedding layer's output must be ``(N, T, D)`` floats for ids ``(N, T)``."""
    if not floating:
        raise TypeError(f"expected {where} to output floating embeddings, got another dtype")
    if shape is None or len(shape) != 3 or tuple(shape[:2]) != tuple(ids_shape):
        got = "something that is not an array" if shape is None else (
            "shape (" + ", ".join(str(s) for s in shape) + ")")
        raise ValueError(
            f"expected {where} to map ids {_shape(ids_shape)} to embeddings "
            f"({ids_shape[0]}, {ids_shape[1]}, D), one vector per token, got {got}"
        )
