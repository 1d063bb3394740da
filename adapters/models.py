"""One view of a model from any framework, seen from numpy in NHWC (channels-last).

The command line and the demo work with channels-last numpy images whatever the
framework, so that the noise SmoothGrad draws for a pixel is the same in PyTorch,
TensorFlow and JAX. :class:`Model` wraps a framework's model (a ``torch.nn.Module``, a
Keras model, or a JAX ``(apply_fn, params)`` pair) and gives the core's callbacks in that
layout, transposing to and from NCHW for PyTorch. Importing this module imports no
framework; the adapter of the model's framework is imported when it is first needed.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from saliency_core.types import GradientFn, LayerFn, PredictFn

__all__ = ["FRAMEWORKS", "Model", "detect_framework"]

FRAMEWORKS = ("torch", "tensorflow", "jax")


def detect_framework(model: object) -> str:
    """The framework of a model object: ``"torch"``, ``"tensorflow"`` or ``"jax"``.

    A framework is only looked at if it is already imported (a model of it exists then).
    A ``(apply_fn, params)`` pair is a JAX model.
    """
    if isinstance(model, tuple) and len(model) == 2 and callable(model[0]):
        return "jax"
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module | torch.jit.ScriptModule):
        return "torch"
    keras = sys.modules.get("keras")
    if keras is not None and isinstance(model, keras.Model | keras.layers.Layer):
        return "tensorflow"
    tf = sys.modules.get("tensorflow")
    if tf is not None and isinstance(model, tf.Module):
        return "tensorflow"
    raise TypeError(
        "expected a torch.nn.Module, a Keras model, or a JAX (apply_fn, params) pair, "
        f"got {type(model).__name__}"
    )


def _to_nchw(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(x, -1, 1))


def _to_nhwc(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(x, 1, -1))


@dataclass
class Model:
    """A model of any framework whose callbacks take and return channels-last numpy arrays.

    Args:
        handle: the framework's model: a ``torch.nn.Module`` (NCHW input), a Keras model
            (NHWC) or a JAX ``(apply_fn, params)`` pair (NHWC).
        framework: one of :data:`FRAMEWORKS`; detected from ``handle`` when None.
        layers: for JAX, which has no named layers, a function
            ``split(layer) -> (features_fn, head_fn)`` giving Grad-CAM's two halves.
    """

    handle: Any
    framework: str | None = None
    layers: Callable[[str], tuple[Callable, Callable]] | None = None
    _adapter: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.framework is None:
            self.framework = detect_framework(self.handle)
        if self.framework not in FRAMEWORKS:
            raise ValueError(
                f"framework: expected one of {', '.join(FRAMEWORKS)}, got {self.framework!r}"
            )
        self._adapter = importlib.import_module(f"adapters.{self.framework}")

    @property
    def channels_first(self) -> bool:
        return self.framework == "torch"

    def _native(self, fn: Callable[..., np.ndarray]) -> Callable[..., np.ndarray]:
        if not self.channels_first:
            return fn

        def transposed(x: np.ndarray, *rest: Any) -> np.ndarray:
            out = fn(_to_nchw(x), *rest)
            return _to_nhwc(out) if out.ndim == x.ndim else out

        return transposed

    def _call_adapter(self, name: str, **options: Any) -> Any:
        factory = getattr(self._adapter, name)
        if self.framework == "jax":
            apply_fn, params = self.handle
            return factory(apply_fn, params=params, **options)
        return factory(self.handle, **options)

    def gradient_fn(self, *, relu_rule: str | None = None) -> GradientFn:
        """The gradient callback (``relu_rule="guided"`` for guided backpropagation)."""
        options = {} if relu_rule is None else {"relu_rule": relu_rule}
        return self._native(self._call_adapter("gradient_fn", **options))

    def predict_fn(self) -> PredictFn:
        """The outputs of a channels-last batch, as numpy."""
        return self._native(self._call_adapter("predict_fn"))

    def layer_fn(self, layer: str) -> tuple[LayerFn, int]:
        """Grad-CAM's layer callback and the channel axis of the activations it returns."""
        if self.framework == "jax":
            if self.layers is None:
                raise ValueError(
                    "a JAX model has no named layers: Grad-CAM needs the model split into "
                    "features and head (Model(..., layers=split))"
                )
            features_fn, head_fn = self.layers(layer)
            fn = self._adapter.layer_fn(features_fn, head_fn, params=self.handle[1])
            return fn, -1
        fn = self._adapter.layer_fn(self.handle, layer)
        if self.channels_first:
            return lambda x, target: fn(_to_nchw(x), target), 1
        return fn, -1
