"""Complexity metrics: how concentrated a saliency map is, from the map alone.

Both read the magnitude ``|map|`` of each map over all its elements (every trailing axis,
channels included), so they are invariant to the map's sign, to scaling it by a positive
(or negative) factor and to permuting its elements. Neither needs a model.

- :func:`sparseness`: the Gini index of ``|map|`` (Chalasani et al. 2020), 0 for a uniform
  map, ``1 - 1/F`` for a one-hot map of ``F`` elements. Higher is sparser.
- :func:`complexity`: the entropy of ``|map| / sum |map|`` (Bhatt et al. 2020), 0 for a
  one-hot map, ``log F`` for a uniform map. Lower is simpler.

An all-zero map is the constant map it is: sparseness 0 and complexity ``log F``, the
values of a uniform map, never NaN.
"""

from __future__ import annotations

import numpy as np

from ._maps import as_maps

__all__ = ["complexity", "sparseness"]


def _magnitudes(maps: object) -> np.ndarray:
    array = as_maps(maps)
    return np.abs(array.reshape(array.shape[0], -1))


def sparseness(maps: np.ndarray) -> np.ndarray:
    """The Gini index of each map's magnitudes.

    With ``a_(1) <= ... <= a_(F)`` the sorted values of ``|map|`` over its ``F`` elements,
    ``G = sum_i (2 i - F - 1) a_(i) / (F sum_i a_(i))``: 0 when every element carries the
    same magnitude, ``1 - 1/F`` (its largest value) when one element carries everything.
    An all-zero map gives 0 (it is uniform).

    Quantus 0.6 (``quantus.Sparseness``) computes the same formula after adding ``1e-7`` to
    every magnitude (by default after dividing the whole batch by its largest magnitude),
    which multiplies the index by ``S / (S + 1e-7 F)``, ``S`` the sum of those magnitudes;
    here no epsilon is added, so a one-hot map gives exactly ``1 - 1/F``. Given
    ``np.abs(maps) + 1e-7`` this function returns Quantus's numbers for
    ``Sparseness(normalise=False)``.

    Args:
        maps: a numpy array ``(N, ...)``, one map per input; signs are ignored.

    Returns:
        A float64 array ``(N,)`` of values in ``[0, 1 - 1/F]``.

    Raises:
        TypeError: ``maps`` is not a real numeric numpy array.
        ValueError: fewer than 2 dimensions, an empty axis, or NaN/inf values.

    Examples:
        >>> sparseness(np.array([[0.0, 0.0, 0.0, -2.0], [1.0, 1.0, 1.0, 1.0]]))
        array([0.75, 0.  ])

    References:
        Chalasani, Chen, Chowdhury, Wu and Jha, "Concise explanations of neural networks using
        adversarial training", ICML 2020 (the Gini index of ``|attribution|``).
    """
    magnitudes = np.sort(_magnitudes(maps), axis=1)
    n_features = magnitudes.shape[1]
    weights = 2.0 * np.arange(1, n_features + 1) - n_features - 1
    numerator = magnitudes @ weights
    denominator = n_features * magnitudes.sum(axis=1)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator),
                     where=denominator > 0)


def complexity(maps: np.ndarray) -> np.ndarray:
    """The entropy (natural log) of each map's fractional magnitudes.

    With ``p_i = |m_i| / sum_j |m_j|`` over the map's ``F`` elements,
    ``H = -sum_i p_i log p_i`` (``0 log 0 = 0``): 0 when one element carries everything,
    ``log F`` (its largest value) when all carry the same. An all-zero map gives ``log F``:
    it is constant, so it is scored as the uniform map it is (consistent with its
    sparseness of 0) rather than as undefined.

    Quantus 0.6 (``quantus.Complexity``) computes ``-sum p log(p + 1e-12)``, lower than
    this by about ``1e-12`` per non-zero element, and NaN for an all-zero map.

    Args:
        maps: a numpy array ``(N, ...)``, one map per input; signs are ignored.

    Returns:
        A float64 array ``(N,)`` of values in ``[0, log F]``.

    Raises:
        TypeError: ``maps`` is not a real numeric numpy array.
        ValueError: fewer than 2 dimensions, an empty axis, or NaN/inf values.

    Examples:
        >>> complexity(np.array([[0.0, 3.0, 0.0, 0.0], [1.0, -1.0, 1.0, -1.0]]))
        array([0.        , 1.38629436])

    References:
        Bhatt, Weller and Moura, "Evaluating and aggregating feature-based model
        explanations", IJCAI 2020 (the complexity criterion).
    """
    magnitudes = _magnitudes(maps)
    n_features = magnitudes.shape[1]
    totals = magnitudes.sum(axis=1, keepdims=True)
    zero = totals[:, 0] == 0
    p = np.divide(magnitudes, totals, out=np.zeros_like(magnitudes), where=totals > 0)
    log_p = np.log(p, out=np.zeros_like(p), where=p > 0)
    entropy = -(p * log_p).sum(axis=1)
    entropy[zero] = np.log(n_features)
    return np.maximum(entropy, 0.0)
