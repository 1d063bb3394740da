"""saliency_core: saliency methods in pure numpy, over a model callback.

The core never imports a deep-learning framework. A model enters only through a callback
(see :mod:`saliency_core.types`), which the adapters in :mod:`adapters` build for
PyTorch, TensorFlow/Keras and JAX. Every method has the form
``method(fn, x, target=None, *, options)`` and returns maps for the batch ``x``; binding
the options with :func:`functools.partial` gives a callback again, so methods compose::

    from functools import partial
    from saliency_core import integrated_gradients, smoothgrad

    maps = smoothgrad(partial(integrated_gradients, grad_fn, steps=20), x, target, seed=0)
"""

from .cam import grad_cam, grad_cam_plus_plus, guided_grad_cam, resize_linear
from .gradients import gradient_x_input, integrated_gradients, vanilla_gradient
from .noise import DEFAULT_NOISE
from .occlusion import occlusion
from .paths import blur_integrated_gradients, expected_gradients, guided_integrated_gradients
from .smoothing import AGGREGATES, NOISE_SCHEMES, noise_sigma, smoothgrad
from .types import AttributionFn, GradientFn, LayerFn, PredictFn

__all__ = [
    "AGGREGATES",
    "DEFAULT_NOISE",
    "NOISE_SCHEMES",
    "AttributionFn",
    "GradientFn",
    "LayerFn",
    "PredictFn",
    "blur_integrated_gradients",
    "expected_gradients",
    "grad_cam",
    "grad_cam_plus_plus",
    "gradient_x_input",
    "guided_grad_cam",
    "guided_integrated_gradients",
    "integrated_gradients",
    "noise_sigma",
    "occlusion",
    "resize_linear",
    "smoothgrad",
    "vanilla_gradient",
]

__version__ = "0.1.0"
