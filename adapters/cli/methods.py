"""The methods ``saliency explain --method`` offers, as a table of data, and how to run one.

Every entry of :data:`METHODS` is a :class:`Method`: which callback of the model it needs
(the gradient, the guided-backpropagation gradient, Grad-CAM's layer callback, or the
predictions), which core method runs on that callback (:data:`ATTRIBUTIONS`), and whether
SmoothGrad is taken over the result and with which aggregate. :func:`compute` runs any
entry on an :class:`adapters.models.Model`.

References:
    Smilkov, Thorat, Kim, Viegas, Wattenberg (2017). SmoothGrad: removing noise by adding
    noise. arXiv:1706.03825 (section 3.4: SmoothGrad over other methods).
    Adebayo, Gilmer, Goodfellow, Kim (2018). Local explanation methods for deep neural
    networks lack sensitivity to parameter values. arXiv:1810.03307 (VarGrad).
    Sundararajan, Taly, Yan (2017). Axiomatic attribution for deep networks.
    arXiv:1703.01365 (integrated gradients).
    Springenberg, Dosovitskiy, Brox, Riedmiller (2015). Striving for simplicity: the all
    convolutional net. arXiv:1412.6806 (guided backpropagation).
    Selvaraju et al. (2017). Grad-CAM. arXiv:1610.02391; Chattopadhyay et al. (2018).
    Grad-CAM++. arXiv:1710.11063; Omeiza et al. (2019). Smooth Grad-CAM++.
    arXiv:1908.01224. Jiang et al. (2021). LayerCAM. IEEE TIP 30; Wang et al. (2020).
    Score-CAM. CVPR workshops.
    Xu, Venugopalan, Sundararajan (2020). Attribution in scale and space (Blur IG).
    Kapishnikov et al. (2021). Guided integrated gradients; Kapishnikov et al. (2019).
    XRAI: better attributions through regions. Petsiuk, Das, Saenko (2018). RISE.
    Bykov et al. (2022). NoiseGrad and FusionGrad.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from saliency_core import (
    AGGREGATES,
    DEFAULT_NOISE,
    black_white_integrated_gradients,
    blur_integrated_gradients,
    fusion_grad,
    grad_cam,
    grad_cam_plus_plus,
    guided_integrated_gradients,
    integrated_gradients,
    layer_cam,
    noise_grad,
    rise,
    score_cam,
    smoothgrad,
    vanilla_gradient,
    xrai,
)
from saliency_core.types import AttributionFn, SeedLike

if TYPE_CHECKING:
    from adapters.models import Model

__all__ = ["ATTRIBUTIONS", "CALLBACKS", "METHODS", "Method", "Options", "compute", "smooth"]

#: The callbacks a method can need, with the ReLU rule of the gradient ones.
CALLBACKS = {"gradient": None, "guided-gradient": "guided", "layer": None, "predict": None}

#: Every core method the table runs, with the callbacks it runs on.
ATTRIBUTIONS: dict[str, tuple[str, ...]] = {
    **{name: ("gradient", "guided-gradient") for name in (
        "gradient", "integrated-gradients", "blur-ig", "guided-ig", "xrai", "noise-grad",
        "fusion-grad")},
    **{name: ("layer",) for name in ("grad-cam", "grad-cam++", "layer-cam", "score-cam")},
    "rise": ("predict",),
}

_LAYER_METHODS: dict[str, Callable[..., np.ndarray]] = {
    "grad-cam": grad_cam, "grad-cam++": grad_cam_plus_plus, "layer-cam": layer_cam,
    "score-cam": score_cam,
}
_PATH_METHODS: dict[str, Callable[..., np.ndarray]] = {
    "integrated-gradients": integrated_gradients, "blur-ig": blur_integrated_gradients,
    "guided-ig": guided_integrated_gradients,
}


@dataclass(frozen=True)
class Options:
    """The numbers a method runs with (the command's defaults).

    Attributes:
        n_samples: SmoothGrad's noisy samples per input (FusionGrad's per model copy).
        noise_level: SmoothGrad's noise, a fraction of each input's value range.
        noise: SmoothGrad's noise scheme, one of ``saliency_core.NOISE_SCHEMES``.
        steps: the steps of the path methods (integrated gradients, Blur IG, Guided IG,
            and XRAI's two integrated gradients).
        batch_size: rows per model call.
        seed: the seed of every random draw: SmoothGrad's noise, RISE's masks, the noisy
            copies of NoiseGrad and FusionGrad (an int, or a ``numpy.random.Generator``
            to continue one stream of noise over several calls).
        layer: the layer of Grad-CAM methods, or None.
        n_models: NoiseGrad's and FusionGrad's noisy copies of the model.
        weight_noise: the sigma of their multiplicative ``N(1, sigma^2)`` weight noise.
        n_masks: RISE's random masks.
        progress: show SmoothGrad's own progress bar over its rows.
    """

    n_samples: int = 50
    noise_level: float = 0.15
    noise: str = DEFAULT_NOISE
    steps: int = 50
    batch_size: int = 64
    seed: SeedLike = 0
    layer: str | None = None
    n_models: int = 10
    weight_noise: float = 0.2
    n_masks: int = 2000
    progress: bool = True


@dataclass(frozen=True)
class Method:
    """One entry of the ``--method`` table.

    Attributes:
        name: the ``--method`` value.
        description: what the method is, for the report line (``"SmoothGrad"``).
        callback: the model callback it needs, a key of :data:`CALLBACKS`:
            ``"gradient"``, ``"guided-gradient"`` (guided backpropagation's ReLU rule),
            ``"layer"`` (Grad-CAM's layer callback, which needs ``--layer``) or
            ``"predict"`` (the outputs alone).
        attribution: the core method run on that callback, a key of
            :data:`ATTRIBUTIONS` that runs on it.
        aggregate: None for the method as it is; otherwise SmoothGrad over it, with this
            ``aggregate`` (``"mean"``, ``"abs"``, ``"square"`` or ``"variance"``).

    Raises:
        ValueError: if the callback, attribution or aggregate is unknown, or the
            attribution does not run on that callback.

    Example:
        >>> method = METHODS["smooth-grad-cam++"]
        >>> method.callback, method.attribution, method.aggregate, method.needs_layer
        ('layer', 'grad-cam++', 'mean', True)
    """

    name: str
    description: str
    callback: str
    attribution: str
    aggregate: str | None = None

    def __post_init__(self) -> None:
        if self.callback not in CALLBACKS:
            raise ValueError(
                f"callback: expected one of {', '.join(CALLBACKS)}, got {self.callback!r}"
            )
        runs_on = [name for name, callbacks in ATTRIBUTIONS.items()
                   if self.callback in callbacks]
        if self.attribution not in runs_on:
            raise ValueError(
                f"attribution: expected one of {', '.join(runs_on)} on the {self.callback} "
                f"callback, got {self.attribution!r}"
            )
        if self.aggregate is not None and self.aggregate not in AGGREGATES:
            raise ValueError(
                f"aggregate: expected None or one of {', '.join(AGGREGATES)}, "
                f"got {self.aggregate!r}"
            )

    @property
    def needs_layer(self) -> bool:
        """Whether the method needs a layer (``--layer``)."""
        return self.callback == "layer"

    def rows_per_input(self, options: Options) -> int:
        """About how many rows of model input the method makes per input.

        Noisy copies times path points (XRAI: two paths), model copies, masks; Score-CAM
        counts one row per input (its rows per channel depend on the layer).

        Example:
            >>> METHODS["smoothgrad-ig"].rows_per_input(Options(n_samples=10, steps=20))
            200
        """
        rows = {
            "integrated-gradients": options.steps, "blur-ig": options.steps,
            "guided-ig": options.steps, "xrai": 2 * options.steps,
            "noise-grad": options.n_models,
            "fusion-grad": options.n_models * options.n_samples, "rise": options.n_masks,
        }.get(self.attribution, 1)
        return rows * (options.n_samples if self.aggregate is not None else 1)


#: Every ``--method``, by name, in the order ``--help`` lists them.
METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        Method("gradient", "the vanilla gradient", "gradient", "gradient"),
        Method("smoothgrad", "SmoothGrad", "gradient", "gradient", "mean"),
        Method("smoothgrad-squared", "SmoothGrad-squared", "gradient", "gradient", "square"),
        Method("vargrad", "VarGrad", "gradient", "gradient", "variance"),
        Method("integrated-gradients", "integrated gradients", "gradient",
               "integrated-gradients"),
        Method("smoothgrad-ig", "SmoothGrad over integrated gradients", "gradient",
               "integrated-gradients", "mean"),
        Method("blur-ig", "Blur IG", "gradient", "blur-ig"),
        Method("guided-ig", "Guided IG", "gradient", "guided-ig"),
        Method("xrai", "XRAI", "gradient", "xrai"),
        Method("guided", "guided backpropagation", "guided-gradient", "gradient"),
        Method("smoothgrad-guided", "SmoothGrad over guided backpropagation",
               "guided-gradient", "gradient", "mean"),
        Method("noise-grad", "NoiseGrad", "gradient", "noise-grad"),
        Method("fusion-grad", "FusionGrad", "gradient", "fusion-grad"),
        Method("grad-cam", "Grad-CAM", "layer", "grad-cam"),
        Method("grad-cam++", "Grad-CAM++", "layer", "grad-cam++"),
        Method("smooth-grad-cam++", "Smooth Grad-CAM++", "layer", "grad-cam++", "mean"),
        Method("layer-cam", "Layer-CAM", "layer", "layer-cam"),
        Method("score-cam", "Score-CAM", "layer", "score-cam"),
        Method("rise", "RISE", "predict", "rise"),
    )
}


def smooth(
    fn: AttributionFn,
    x: np.ndarray,
    target: np.ndarray,
    options: Options,
    *,
    aggregate: str = "mean",
) -> np.ndarray:
    """SmoothGrad over ``fn`` with the numbers of ``options``.

    Args:
        fn: any attribution callback ``fn(x, target) -> maps``.
        x: the inputs, ``(N, ...)``.
        target: one class per input, ``(N,)``.
        options: ``n_samples``, ``noise_level``, ``noise``, ``batch_size``, ``seed`` and
            ``progress``.
        aggregate: SmoothGrad's aggregate.

    Returns:
        The smoothed maps, shaped as ``fn``'s.
    """
    return smoothgrad(fn, x, target, n_samples=options.n_samples,
                      noise_level=options.noise_level, noise=options.noise,
                      aggregate=aggregate,
                      batch_size=options.batch_size, seed=options.seed,
                      progress=options.progress)


def _probabilities(predict: Callable[[np.ndarray], np.ndarray]) -> Callable[..., np.ndarray]:
    """``predict`` followed by a softmax over classes: RISE weighs masks by probability."""

    def probabilities(x: np.ndarray) -> np.ndarray:
        logits = np.asarray(predict(x), dtype=np.float64)
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return shifted / shifted.sum(axis=-1, keepdims=True)

    return probabilities


def compute(
    method: Method, model: Model, x: np.ndarray, target: np.ndarray, options: Options
) -> np.ndarray:
    """Run one method of the table on a model.

    Args:
        method: an entry of :data:`METHODS` (or any :class:`Method`).
        model: the model, seen channels-last.
        x: channels-last inputs ``(N, H, W, C)``.
        target: one class per input, ``(N,)``.
        options: the numbers to run with; ``options.layer`` for Grad-CAM methods.

    Returns:
        Maps shaped like ``x`` for gradient methods, ``(N, H, W)`` for the Grad-CAM
        methods, XRAI and RISE.

    Raises:
        ValueError: if the method needs a layer and ``options.layer`` is None, or the
            model or core refuses the input.
        ImportError: XRAI without scikit-image (the ``xrai`` extra).
    """
    attribution, batch = method.attribution, options.batch_size
    fn: AttributionFn
    if method.needs_layer:
        if options.layer is None:
            raise ValueError(f"{method.name}: expected a layer (options.layer), got None")
        layer_fn, channel_axis = model.layer_fn(options.layer)
        extra = {"predict_fn": model.predict_fn()} if attribution == "score-cam" else {}
        fn = partial(_LAYER_METHODS[attribution], layer_fn, channel_axis=channel_axis,
                     input_channel_axis=-1, batch_size=batch, **extra)
    elif attribution == "rise":
        fn = partial(rise, _probabilities(model.predict_fn()), n_masks=options.n_masks,
                     batch_size=batch, seed=options.seed)
    elif attribution in ("noise-grad", "fusion-grad"):
        from adapters.models import noisy_copies

        rule = CALLBACKS[method.callback]
        make_fn = noisy_copies(model, lambda copy: copy.gradient_fn(relu_rule=rule),
                               sigma=options.weight_noise)
        if attribution == "noise-grad":
            fn = partial(noise_grad, make_fn, n_models=options.n_models, batch_size=batch,
                         seed=options.seed)
        else:
            fn = partial(fusion_grad, make_fn, n_models=options.n_models,
                         n_samples=options.n_samples, noise_level=options.noise_level,
                         noise=options.noise,
                         batch_size=batch, seed=options.seed)
    else:
        gradient = model.gradient_fn(relu_rule=CALLBACKS[method.callback])
        if attribution in _PATH_METHODS:
            fn = partial(_PATH_METHODS[attribution], gradient, steps=options.steps,
                         batch_size=batch)
        elif attribution == "xrai":
            base = partial(black_white_integrated_gradients, gradient, steps=options.steps,
                           batch_size=batch)
            fn = partial(xrai, base, channel_axis=-1, batch_size=batch)
        else:
            fn = partial(vanilla_gradient, gradient, batch_size=batch)
    if method.aggregate is None:
        return fn(x, target)
    return smooth(fn, x, target, options, aggregate=method.aggregate)
