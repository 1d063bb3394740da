"""One view of a model from any framework, seen from numpy in NHWC (channels-last).

The command line, the demo and the cross-framework tests work with channels-last numpy
images whatever the framework, so that the noise SmoothGrad draws for a pixel is the same
in PyTorch, TensorFlow and JAX. :class:`Model` wraps a framework's model (a
``torch.nn.Module``, a Keras model, or a JAX ``(apply_fn, params)`` pair) and gives the
core's callbacks in that layout, transposing to and from the backend's own layout (its
``CHANNEL_AXIS``). Importing this module imports no framework; a backend is imported when
a model of its framework is first wrapped.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from saliency_core.types import GradientFn, LayerFn, PredictFn

from ._backend import WeightTransform, multiplicative_noise, select_layers

__all__ = ["FRAMEWORKS", "Model", "backend", "detect_framework", "noisy_copies"]

#: The backends, each with the module that must be imported for a model of it to exist.
_FRAMEWORK_MODULES = {"torch": "torch", "tensorflow": "tensorflow", "jax": "jax"}
FRAMEWORKS = tuple(_FRAMEWORK_MODULES)


def backend(framework: str) -> ModuleType:
    """The backend module of a framework (``adapters.torch``, ...), imported now."""
    if framework not in _FRAMEWORK_MODULES:
        raise ValueError(f"framework: expected one of {', '.join(FRAMEWORKS)}, got {framework!r}")
    return importlib.import_module(f"adapters.{framework}")


def detect_framework(model: object) -> str:
    """The framework of a model object: ``"torch"``, ``"tensorflow"`` or ``"jax"``.

    Only the backends of frameworks already imported are asked (a model of a framework
    cannot exist before its framework is imported), so nothing new is imported.
    """
    for framework, module in _FRAMEWORK_MODULES.items():
        if module in sys.modules and backend(framework).owns(model):
            return framework
    raise TypeError(
        "expected a torch.nn.Module, a Keras model, or a JAX (apply_fn, params) pair, "
        f"got {type(model).__name__}"
    )


def _moved(x: np.ndarray, source: int, destination: int) -> np.ndarray:
    """``np.moveaxis`` into a fresh C-ordered array (canonical strides, even for size-1 axes)."""
    return np.array(np.moveaxis(x, source, destination), order="C")


@dataclass
class Model:
    """A model of any framework whose callbacks take and return channels-last numpy arrays.

    Args:
        handle: the framework's model: a ``torch.nn.Module`` (NCHW input), a Keras model
            (NHWC) or a JAX ``(apply_fn, params)`` pair (NHWC).
        framework: one of :data:`FRAMEWORKS`; detected from ``handle`` when None.
        layers: for JAX, which has no named layers, a function
            ``split(layer) -> (features_fn, head_fn)`` giving Grad-CAM's two halves.
        device: the device every callback runs on where the call names none (``"cuda"``,
            ``"cpu"``, ...; the backends' ``device=``); None: the framework's choice.
    """

    handle: Any
    framework: str | None = None
    layers: Callable[[str], tuple[Callable, Callable]] | None = None
    device: Any = None
    _backend: ModuleType = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.framework is None:
            self.framework = detect_framework(self.handle)
        self._backend = backend(self.framework)

    def _device(self, device: Any) -> Any:
        return self.device if device is None else device

    @property
    def channels_first(self) -> bool:
        """Whether the framework's image models take channels before the spatial axes."""
        return self._backend.CHANNEL_AXIS == 1

    def _native(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        if not self.channels_first:
            return fn

        def transposed(x: np.ndarray, *rest: Any) -> np.ndarray:
            x = np.asarray(x)
            out = fn(_moved(x, -1, 1) if x.ndim >= 3 else x, *rest)
            return _moved(out, 1, -1) if x.ndim >= 3 and out.ndim == x.ndim else out

        return transposed

    def gradient_fn(
        self, *, relu_rule: str | None = None, objective: Any = None, device: Any = None,
        dtype: Any = None,
    ) -> GradientFn:
        """The gradient callback (``relu_rule="guided"`` for guided backpropagation)."""
        fn = self._backend.gradient_fn(self.handle, objective=objective,
                                       device=self._device(device), dtype=dtype,
                                       relu_rule=relu_rule)
        return self._native(fn)

    def predict_fn(self, *, device: Any = None, dtype: Any = None) -> PredictFn:
        """The outputs of a channels-last batch, as numpy."""
        return self._native(self._backend.predict_fn(self.handle, device=self._device(device),
                                                     dtype=dtype))

    def layer_fn(
        self, layer: str, *, objective: Any = None, device: Any = None, dtype: Any = None
    ) -> tuple[LayerFn, int]:
        """Grad-CAM's layer callback and the channel axis of the activations it returns.

        The callback takes channels-last inputs; its activations keep the backend's layout
        (channels at ``CHANNEL_AXIS``), which is the axis returned beside it.
        """
        chosen = self.layers(layer) if self.layers is not None else layer
        fn = self._backend.layer_fn(self.handle, chosen, objective=objective,
                                    device=self._device(device), dtype=dtype)
        if not self.channels_first:
            return fn, self._backend.CHANNEL_AXIS

        def transposed(x: np.ndarray, target: Any) -> tuple[np.ndarray, np.ndarray]:
            x = np.asarray(x)
            return fn(_moved(x, -1, 1) if x.ndim >= 3 else x, target)

        return transposed, self._backend.CHANNEL_AXIS

    def weight_layers(self) -> list[str]:
        """The names of the model's layers that hold weights, input to output."""
        return self._backend.weight_layers(self.handle)

    def copy_with_weights(
        self, transform: WeightTransform, *, layers: str | list[str] | None = None,
        seed: int | None = None,
    ) -> Model:
        """A :class:`Model` of a copy whose chosen layers' weights are transformed
        (the backend's ``copy_with_weights``); this model is left untouched."""
        copied = self._backend.copy_with_weights(self.handle, transform, layers=layers,
                                                 seed=seed)
        return Model(copied, self.framework, layers=self.layers, device=self.device)


# --------------------------------------------------------------------------- noisy copies
# NoiseGrad and FusionGrad (saliency_core.weight_noise) take a factory of noisy copies of
# the model; this makes one from any model, through the weight-copy hook.


def noisy_copies(
    model: Any,
    callback: Callable[[Any], Callable[..., np.ndarray]] | None = None,
    *,
    sigma: float = 0.2,
    layers: str | list[str] | None = None,
) -> Callable[[np.random.SeedSequence], Callable[..., np.ndarray]]:
    """The factory :func:`saliency_core.weight_noise.noise_grad` and ``fusion_grad`` take.

    ``make_fn(seed_sequence)`` copies ``model`` with every weight of the chosen layers
    multiplied by its own draw of ``N(1, sigma^2)`` (:func:`adapters._backend.
    multiplicative_noise`, through the backend's ``copy_with_weights`` with an int seed
    drawn from ``seed_sequence``), and returns ``callback(copy)``. Each layer's noise
    depends only on that seed and the layer's name, so backends whose weights have the
    same names and layouts get the same noise. ``model`` itself is never changed.

    Args:
        model: a :class:`Model` (the copies are Models, channels-last), or a framework's
            model (a ``torch.nn.Module``, a Keras model, a JAX ``(apply_fn, params)`` pair;
            the copies are of the same kind, in the framework's own layout).
        callback: ``callback(copy) -> fn``, the attribution callback of a copy; None for
            the copy's gradient (``copy.gradient_fn()`` for a Model, the backend's
            ``gradient_fn(copy)`` otherwise). Grad-CAM over copies, for instance:
            ``lambda m: partial(grad_cam, m.layer_fn("block")[0], channel_axis=-1)``.
        sigma: the standard deviation of the multiplicative noise (0.2, as in the authors'
            code; the paper tunes it so that accuracy drops by a few percent).
        layers: the names of the layers to perturb (of ``weight_layers``); None for all.

    Returns:
        ``make_fn(seed_sequence) -> fn``.

    Raises:
        TypeError, ValueError: a bad ``sigma``, ``callback`` or layer name, or a model of
            no framework, now, before any copy is made; a ``make_fn`` argument that is
            not a ``numpy.random.SeedSequence``.
    """
    transform = multiplicative_noise(sigma)
    if callback is not None and not callable(callback):
        raise TypeError(
            f"callback: expected None or a callable callback(copy) -> fn, got "
            f"{type(callback).__name__}"
        )
    if isinstance(model, Model):
        select_layers(layers, model.weight_layers())

        def copy(seed: int) -> Any:
            return model.copy_with_weights(transform, layers=layers, seed=seed)

        make_callback = callback or (lambda copied: copied.gradient_fn())
    else:
        module = backend(detect_framework(model))
        select_layers(layers, module.weight_layers(model))

        def copy(seed: int) -> Any:
            return module.copy_with_weights(model, transform, layers=layers, seed=seed)

        make_callback = callback or module.gradient_fn

    def make_fn(seed_sequence: np.random.SeedSequence) -> Callable[..., np.ndarray]:
        if not isinstance(seed_sequence, np.random.SeedSequence):
            raise TypeError(
                f"expected a numpy.random.SeedSequence, got {type(seed_sequence).__name__}"
            )
        return make_callback(copy(int(seed_sequence.generate_state(1, np.uint64)[0])))

    return make_fn
