"""Per-token attributions for models that start with an embedding layer.

A text model maps token ids ``(N, T)`` to embeddings ``(N, T, D)`` and the rest of the
network maps the embeddings to the output. Gradients exist with respect to the embeddings
only (ids are integers), so every gradient method of the core runs there unchanged: the
adapters' ``embedding_fn`` gives a gradient callback over ``(N, T, D)`` embeddings, and
``vanilla_gradient``, ``smoothgrad`` (noise in embedding space) and
``integrated_gradients`` (from the padding token's or the zero embedding) give maps
``(N, T, D)``. This module turns such maps into one value per token and supplies the
settings those methods need for embeddings:

* :func:`token_attributions`: the reduction over the embedding axis: gradient x embedding
  summed (``"grad_x_input"``, Li et al. 2016's "first-derivative saliency" signed, and
  Denil et al. 2014's), the sum of a map that is already an attribution (``"sum"``:
  integrated gradients, gradient x input), or the L2 norm of the gradient (``"l2"``,
  unsigned); ids equal to a padding id get 0.
* :func:`embedding_sigma`: SmoothGrad's standard deviation from the embedding table (its
  range or its standard deviation, over the whole table or per embedding dimension), the
  same for every input, instead of the range of one input's embeddings.
* :func:`padding_ids`: the ids of the padding baseline of integrated gradients (every
  token replaced by the padding id, special tokens kept if asked); its embeddings are the
  baseline.

For a linear model on the sum of its token embeddings, ``score = sum_t e_t . w + b``,
gradient x embedding of token ``t`` is ``e_t . w``, exactly its contribution to the score,
and integrated gradients from the zero embedding gives the same (tests/core/test_tokens.py).

References:
    Denil, Demiraj, de Freitas (2014). Extraction of salient sentences from labelled
    documents. arXiv:1412.6815. Li, Chen, Hovy, Jurafsky (2016). Visualizing and
    understanding neural models in NLP. NAACL. Sundararajan, Taly, Yan (2017). Axiomatic
    attribution for deep networks. ICML (integrated gradients; section 6.3 explains a text
    model from the zero embedding). Smilkov et al. (2017). SmoothGrad. arXiv:1706.03825.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable

import numpy as np

from ._checks import as_input_batch, check_bool, check_choice, check_non_negative

__all__ = [
    "EMBEDDING_SPREADS",
    "TOKEN_REDUCTIONS",
    "embedding_sigma",
    "padding_ids",
    "token_attributions",
]

#: The reductions :func:`token_attributions` takes over the embedding axis.
TOKEN_REDUCTIONS = ("grad_x_input", "sum", "l2")

#: The spreads of the embedding table :func:`embedding_sigma` can scale.
EMBEDDING_SPREADS = ("range", "std")


def _describe(shape: tuple[int, ...]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _as_ids(ids: object, name: str = "ids") -> np.ndarray:
    """Token ids as an int64 array ``(N, T)``; floats, bools and other shapes refused."""
    try:
        array = np.asarray(ids)
    except (ValueError, TypeError):
        raise ValueError(
            f"{name}: expected a rectangular (N, T) array of integer token ids, got a ragged "
            f"{type(ids).__name__}; pad the sequences to one length"
        ) from None
    if array.dtype.kind not in "iu":
        raise TypeError(
            f"{name}: expected integer token ids, got dtype {array.dtype}"
            + ("; convert whole-valued floats with .astype(int)" if array.dtype.kind == "f"
               else "")
        )
    if array.ndim != 2 or 0 in array.shape:
        raise ValueError(
            f"{name}: expected a non-empty batch of token ids (N, T), got shape "
            f"{_describe(array.shape)}"
        )
    if (array < 0).any():
        raise ValueError(f"{name}: expected non-negative token ids, got "
                         f"{array[array < 0][:5].tolist()}")
    return array.astype(np.int64, copy=False)


def _as_token_id(value: object, name: str) -> int:
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer token id, got {value!r}")
    if int(value) < 0:
        raise ValueError(f"{name}: expected a non-negative token id, got {value}")
    return int(value)


def token_attributions(
    maps: np.ndarray,
    embeddings: np.ndarray | None = None,
    *,
    reduce: str = "grad_x_input",
    ids: np.ndarray | None = None,
    pad_id: int | None = None,
) -> np.ndarray:
    """One attribution per token from a map over embeddings ``(N, T, D)``.

    Args:
        maps: ``(N, T, D)``: gradients (for ``"grad_x_input"`` and ``"l2"``) or
            attributions (for ``"sum"``) with respect to the embeddings, from any method
            of the core run on an adapter's ``embedding_fn`` callback.
        embeddings: ``(N, T, D)``, the embeddings the gradient was taken at (needed by
            ``"grad_x_input"`` only, and refused by the others, which do not use them).
        reduce: ``"grad_x_input"``: ``sum_d maps[n, t, d] * embeddings[n, t, d]``, signed
            (the token's first-order contribution to the score; with SmoothGrad's mean
            gradient, the smoothed gradient times the clean embedding); ``"sum"``:
            ``sum_d maps[n, t, d]``, for maps that are attributions already (integrated
            gradients, whose token sums add up to ``S(x) - S(baseline)``); ``"l2"``: the
            Euclidean norm of the gradient over ``d``, never negative (Li et al. 2016's
            saliency, blind to the sign).
        ids: ``(N, T)`` integer token ids, with ``pad_id``: positions holding ``pad_id``
            get 0.
        pad_id: the padding token's id (give both or neither).

    Returns:
        ``(N, T)`` in the maps' float dtype (float32 or float64).

    Raises:
        TypeError, ValueError: maps that are not a finite ``(N, T, D)`` array, embeddings
            of another shape (or given for a reduction that does not use them, or missing
            for ``"grad_x_input"``), an unknown ``reduce``, ids that are not integers of
            shape ``(N, T)``, only one of ``ids`` and ``pad_id``.

    Examples:
        A linear model on summed embeddings: the gradient is the weight ``w`` at every
        token, and gradient x embedding is each token's share of the score ``4 + 3 = 7``:

        >>> w = np.array([1.0, 2.0])
        >>> embeddings = np.array([[[2.0, 1.0], [1.0, 1.0], [0.0, 0.0]]])
        >>> gradients = np.broadcast_to(w, embeddings.shape)
        >>> token_attributions(gradients, embeddings)
        array([[4., 3., 0.]])
        >>> token_attributions(gradients, reduce="l2").round(4)
        array([[2.2361, 2.2361, 2.2361]])
        >>> token_attributions(gradients, embeddings, ids=np.array([[5, 7, 0]]), pad_id=0)
        array([[4., 3., 0.]])
    """
    reduce = check_choice(reduce, "reduce", TOKEN_REDUCTIONS)
    values = as_input_batch(maps, name="maps")
    if values.ndim != 3:
        raise ValueError(
            f"maps: expected maps over embeddings (N, T, D), got shape "
            f"{_describe(values.shape)}"
        )
    if reduce == "grad_x_input":
        if embeddings is None:
            raise ValueError(
                "embeddings: reduce='grad_x_input' multiplies the gradient by the embeddings; "
                "pass the embeddings the gradient was taken at (embed(ids)), or use "
                "reduce='sum' for maps that are attributions already"
            )
        vectors = as_input_batch(embeddings, name="embeddings")
        if vectors.shape != values.shape:
            raise ValueError(
                f"embeddings: expected the maps' shape {_describe(values.shape)}, got shape "
                f"{_describe(vectors.shape)}"
            )
    elif embeddings is not None:
        raise ValueError(
            f"embeddings: reduce={reduce!r} does not use the embeddings; leave them out, or "
            "use reduce='grad_x_input' to multiply the gradient by them"
        )
    if (ids is None) != (pad_id is None):
        raise ValueError(
            "ids and pad_id: expected both (positions whose id is pad_id get 0) or neither, "
            f"got {'ids' if ids is not None else 'pad_id'} alone"
        )
    keep = None
    if ids is not None:
        token_ids = _as_ids(ids)
        pad = _as_token_id(pad_id, "pad_id")
        if token_ids.shape != values.shape[:2]:
            raise ValueError(
                f"ids: expected one id per token, shape {_describe(values.shape[:2])}, got "
                f"shape {_describe(token_ids.shape)}"
            )
        keep = token_ids != pad
    wide = values.astype(np.float64, copy=False)
    if reduce == "grad_x_input":
        result = np.einsum("ntd,ntd->nt", wide, vectors.astype(np.float64, copy=False))
    elif reduce == "sum":
        result = wide.sum(axis=2)
    else:
        peak = np.abs(wide).max(axis=2, keepdims=True)
        scale = np.where(peak > 0, peak, 1.0)  # no overflow in the squares
        result = np.sqrt(((wide / scale) ** 2).sum(axis=2)) * scale[..., 0]
    if keep is not None:
        result = np.where(keep, result, 0.0)
    with np.errstate(over="ignore"):
        typed = result.astype(values.dtype)
    if not np.isfinite(typed).all():
        raise ValueError(
            f"maps: the token attributions overflow {values.dtype}; pass float64 maps"
        )
    return typed


def embedding_sigma(
    table: np.ndarray,
    noise_level: float = 0.15,
    *,
    spread: str = "range",
    per_dimension: bool = False,
) -> float | np.ndarray:
    """SmoothGrad's standard deviation for noise in embedding space, from the table.

    The paper scales the noise by the range of each input; for a text model the natural
    scale is that of the embedding table every token is drawn from, so the noise is the
    same for every sentence: ``noise_level * (max(table) - min(table))`` (``spread="range"``,
    the paper's convention, the default) or ``noise_level * std(table)`` (``"std"``, the
    population standard deviation: less sensitive to a few extreme entries), over the
    whole table, or per embedding dimension (``per_dimension=True``: column ``d``'s spread
    over the vocabulary). Pass the result as ``smoothgrad(..., sigma=...)``.

    Args:
        table: the embedding table ``(V, D)``, one row per token id (``nn.Embedding.weight``,
            a Keras ``Embedding``'s ``embeddings``, a Flax ``Embed``'s ``embedding``), as
            numpy.
        noise_level: a finite number ``>= 0``.
        spread: ``"range"`` or ``"std"``.
        per_dimension: one sigma per embedding dimension instead of one for the table.

    Returns:
        A float (the whole table), or float64 of shape ``(1, D)`` (per dimension), which
        SmoothGrad broadcasts to each input's ``(T, D)``.

    Raises:
        TypeError, ValueError: a table that is not a finite 2-D numeric array with at
            least one row, a bad ``noise_level``, ``spread`` or ``per_dimension``.

    Examples:
        >>> table = np.array([[0.0, -1.0], [2.0, 1.0], [1.0, 0.0]])
        >>> embedding_sigma(table, 0.1)
        0.30000000000000004
        >>> embedding_sigma(table, 0.5, spread="std", per_dimension=True).round(4)
        array([[0.4082, 0.4082]])
    """
    values = as_input_batch(table, name="table")
    if values.ndim != 2:
        raise ValueError(
            f"table: expected an embedding table (V, D), one row per token id, got shape "
            f"{_describe(values.shape)}"
        )
    level = check_non_negative(noise_level, "noise_level")
    spread = check_choice(spread, "spread", EMBEDDING_SPREADS)
    per_dimension = check_bool(per_dimension, "per_dimension")
    wide = values.astype(np.float64, copy=False)
    axis = 0 if per_dimension else None
    with np.errstate(over="ignore", invalid="ignore"):
        if spread == "range":
            sigmas = level * (wide.max(axis=axis) - wide.min(axis=axis))
        else:
            sigmas = level * wide.std(axis=axis)
    if not np.isfinite(sigmas).all():
        raise ValueError(
            f"table: expected noise_level * {spread} within float64, got an overflow; "
            "rescale the table or pass an absolute sigma"
        )
    if per_dimension:
        return np.asarray(sigmas, dtype=np.float64).reshape(1, -1)
    return float(sigmas)


def padding_ids(ids: np.ndarray, pad_id: int, *, keep: Iterable[int] = ()) -> np.ndarray:
    """The ids of the padding baseline: every token replaced by ``pad_id``.

    Integrated gradients explains a sentence against a reference with no words in it; the
    embeddings of these ids (``embed(padding_ids(ids, pad_id))``) are that reference, the
    "padding-token baseline". Ids listed in ``keep`` (a classifier's special tokens such
    as ``[CLS]`` and ``[SEP]``) stay where they are, so the baseline differs from the
    sentence in its words only. With a zero padding embedding (``padding_idx`` in PyTorch)
    this is the zero-embedding baseline.

    Args:
        ids: ``(N, T)`` integer token ids.
        pad_id: the padding token's id.
        keep: ids left in place.

    Returns:
        int64 ``(N, T)``, a new array.

    Examples:
        >>> padding_ids(np.array([[101, 7, 9, 102, 0]]), 0, keep=(101, 102))
        array([[101,   0,   0, 102,   0]])
    """
    token_ids = _as_ids(ids)
    pad = _as_token_id(pad_id, "pad_id")
    if isinstance(keep, str | bytes) or not isinstance(keep, Iterable):
        raise TypeError(f"keep: expected a collection of integer token ids, got "
                        f"{type(keep).__name__}")
    kept = [_as_token_id(value, "keep") for value in keep]
    result = np.full_like(token_ids, pad)
    if kept:
        stay = np.isin(token_ids, np.asarray(kept, dtype=np.int64))
        result[stay] = token_ids[stay]
    return result
