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

from .cam import (
    SCORE_CAM_SCORES,
    grad_cam,
    grad_cam_plus_plus,
    guided_grad_cam,
    layer_cam,
    resize_linear,
    score_cam,
)
from .gradients import gradient_x_input, integrated_gradients, vanilla_gradient
from .noise import DEFAULT_NOISE
from .occlusion import occlusion
from .paths import blur_integrated_gradients, expected_gradients, guided_integrated_gradients
from .rise import rise
from .smoothing import (
    AGGREGATES,
    FEATURE_SPREADS,
    NOISE_SCHEMES,
    feature_sigma,
    noise_sigma,
    smoothgrad,
)
from .tokens import (
    EMBEDDING_SPREADS,
    TOKEN_REDUCTIONS,
    embedding_sigma,
    padding_ids,
    token_attributions,
)
from .types import AttributionFn, GradientFn, LayerFn, PredictFn
from .weight_noise import fusion_grad, noise_grad
from .xrai import black_white_integrated_gradients, xrai

__all__ = [
    "AGGREGATES",
    "DEFAULT_NOISE",
    "EMBEDDING_SPREADS",
    "FEATURE_SPREADS",
    "NOISE_SCHEMES",
    "SCORE_CAM_SCORES",
    "TOKEN_REDUCTIONS",
    "AttributionFn",
    "GradientFn",
    "LayerFn",
    "PredictFn",
    "black_white_integrated_gradients",
    "blur_integrated_gradients",
    "embedding_sigma",
    "expected_gradients",
    "feature_sigma",
    "fusion_grad",
    "grad_cam",
    "grad_cam_plus_plus",
    "gradient_x_input",
    "guided_grad_cam",
    "guided_integrated_gradients",
    "integrated_gradients",
    "layer_cam",
    "noise_grad",
    "noise_sigma",
    "occlusion",
    "padding_ids",
    "resize_linear",
    "rise",
    "score_cam",
    "smoothgrad",
    "token_attributions",
    "vanilla_gradient",
    "xrai",
]

__version__ = "0.1.0"
