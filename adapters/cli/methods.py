"""The methods ``saliency explain --method`` offers, as a table of data, and how to run one.

Every entry of :data:`METHODS` is a :class:`Method`: which callback of the model it needs
(the gradient, the guided-backpropagation gradient, or Grad-CAM's layer callback), which
core method runs on that callback, and whether SmoothGrad is taken over the result and
with which aggregate. :func:`compute` runs any entry on an :class:`adapters.models.Model`.

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
    arXiv:1908.01224.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import numpy as np

from saliency_core import (
    AGGREGATES,
    grad_cam,
    grad_cam_plus_plus,
    integrated_gradients,
    smoothgrad,
    vanilla_gradient,
)
from saliency_core.types import AttributionFn

if TYPE_CHECKING:
    from adapters.models import Model

__all__ = ["CALLBACKS", "METHODS", "Method", "Options", "compute", "smooth"]

#: The callbacks a method can need, with the ReLU rule of the gradient ones.
CALLBACKS = {"gradient": None, "guided-gradient": "guided", "layer": None}

_GRADIENT_METHODS = ("gradient", "integrated-gradients")
_LAYER_METHODS = {"grad-cam": grad_cam, "grad-cam++": grad_cam_plus_plus}


@dataclass(frozen=True)
class Options:
    """The numbers a method runs with (the command's defaults).

    Attributes:
        n_samples: SmoothGrad's noisy samples per input.
        noise_level: SmoothGrad's noise, a fraction of each input's value range.
        steps: integrated-gradients steps.
        batch_size: rows per model call.
        seed: SmoothGrad's noise seed.
        layer: the layer of Grad-CAM methods, or None.
    """

    n_samples: int = 50
    noise_level: float = 0.15
    steps: int = 50
    batch_size: int = 64
    seed: int | None = 0
    layer: str | None = None


@dataclass(frozen=True)
class Method:
    """One entry of the ``--method`` table.

    Attributes:
        name: the ``--method`` value.
        description: what the method is, for the report line (``"SmoothGrad"``).
        callback: the model callback it needs, a key of :data:`CALLBACKS`:
            ``"gradient"``, ``"guided-gradient"`` (guided backpropagation's ReLU rule) or
            ``"layer"`` (Grad-CAM's layer callback, which needs ``--layer``).
        attribution: the core method run on that callback: ``"gradient"`` (the vanilla
            gradient) or ``"integrated-gradients"`` on a gradient callback, ``"grad-cam"``
            or ``"grad-cam++"`` on the layer callback.
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
        runs_on = _LAYER_METHODS if self.needs_layer else _GRADIENT_METHODS
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
        Method("guided", "guided backpropagation", "guided-gradient", "gradient"),
        Method("smoothgrad-guided", "SmoothGrad over guided backpropagation",
               "guided-gradient", "gradient", "mean"),
        Method("grad-cam", "Grad-CAM", "layer", "grad-cam"),
        Method("grad-cam++", "Grad-CAM++", "layer", "grad-cam++"),
        Method("smooth-grad-cam++", "Smooth Grad-CAM++", "layer", "grad-cam++", "mean"),
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
    """SmoothGrad over ``fn`` with the numbers of ``options``, showing progress.

    Args:
        fn: any attribution callback ``fn(x, target) -> maps``.
        x: the inputs, ``(N, ...)``.
        target: one class per input, ``(N,)``.
        options: ``n_samples``, ``noise_level``, ``batch_size`` and ``seed``.
        aggregate: SmoothGrad's aggregate.

    Returns:
        The smoothed maps, shaped as ``fn``'s.
    """
    return smoothgrad(fn, x, target, n_samples=options.n_samples,
                      noise_level=options.noise_level, aggregate=aggregate,
                      batch_size=options.batch_size, seed=options.seed, progress=True)


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
        Maps shaped like ``x`` for gradient methods, ``(N, H, W)`` for Grad-CAM methods.

    Raises:
        ValueError: if the method needs a layer and ``options.layer`` is None, or the
            model or core refuses the input.
    """
    if method.needs_layer:
        if options.layer is None:
            raise ValueError(f"{method.name}: expected a layer (options.layer), got None")
        layer_fn, channel_axis = model.layer_fn(options.layer)
        fn: AttributionFn = partial(_LAYER_METHODS[method.attribution], layer_fn,
                                    channel_axis=channel_axis, input_channel_axis=-1,
                                    batch_size=options.batch_size)
    else:
        gradient = model.gradient_fn(relu_rule=CALLBACKS[method.callback])
        if method.attribution == "integrated-gradients":
            fn = partial(integrated_gradients, gradient, steps=options.steps,
                         batch_size=options.batch_size)
        else:
            fn = partial(vanilla_gradient, gradient, batch_size=options.batch_size)
    if method.aggregate is None:
        return fn(x, target)
    return smooth(fn, x, target, options, aggregate=method.aggregate)
