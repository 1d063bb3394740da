"""The callback types of the toolkit, declared once and named everywhere else.

Every method in :mod:`saliency_core` talks to a model only through one of these
callables, so the core never imports a deep-learning framework. The adapters in
:mod:`adapters` build them from PyTorch, TensorFlow/Keras and JAX models; any
numpy function with the same signature works too.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

__all__ = ["AttributionFn", "GradientFn", "LayerFn", "PredictFn", "SeedLike"]

#: What ``seed=`` takes everywhere: None (fresh entropy), an int, a ``SeedSequence`` or a
#: ``Generator`` (used, and advanced, as it is).
SeedLike = int | np.random.Generator | np.random.SeedSequence | None


class GradientFn(Protocol):
    """Gradients of one score per row with respect to the input.

    ``fn(x, target) -> gradients``

    Args:
        x: float array ``(k, *input_shape)``, a batch of ``k`` inputs; ``k`` is chosen
            by the core and is at most the ``batch_size`` the caller asked for.
        target: int array ``(k,)`` of output indices, one per row, or ``None`` for
            models that give one score per row.

    Returns:
        An array shaped like ``x``: ``d score_target / d x``, row by row.
    """

    def __call__(self, x: np.ndarray, target: np.ndarray | None, /) -> np.ndarray: ...


class AttributionFn(Protocol):
    """Any attribution method seen as a callback: ``fn(x, target) -> maps``.

    A :class:`GradientFn` is one; so is every method of the core once its options are
    bound with :func:`functools.partial`, which is how methods compose
    (SmoothGrad over integrated gradients, paper section 3.4). The returned maps have
    ``k`` rows and a fixed trailing shape, which need not be ``x``'s (a Grad-CAM map
    has the input's spatial shape only).
    """

    def __call__(self, x: np.ndarray, target: np.ndarray | None, /) -> np.ndarray: ...


class PredictFn(Protocol):
    """Model outputs for a batch: ``fn(x) -> outputs`` with ``outputs.shape[0] == k``."""

    def __call__(self, x: np.ndarray, /) -> np.ndarray: ...


class LayerFn(Protocol):
    """Activations of one layer and the gradients of the target score with respect to them.

    ``fn(x, target) -> (activations, gradients)``, both shaped ``(k, *layer_shape)``.
    Grad-CAM and Grad-CAM++ are computed from this in the core.
    """

    def __call__(
        self, x: np.ndarray, target: np.ndarray | None, /
    ) -> tuple[np.ndarray, np.ndarray]: ...
