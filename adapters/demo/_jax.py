"""The demo network in JAX (NHWC): pure functions of ``(params, x)``; imports JAX.

Used by :func:`adapters.demo.build` (``build("jax")`` returns ``(apply, params)``).
:func:`apply` is module-level, so every handle shares one compiled program per input
shape in :mod:`adapters.jax`. :func:`apply_until` and :func:`apply_from` split the network
at a named layer (for methods that need an inner layer, such as Grad-CAM)::

    features = apply_until(params, x, "relu3")     # (n, 7, 7, 32)
    logits = apply_from(params, features, "relu3")  # (n, 10), same as apply(params, x)

:func:`split_at` gives the two halves as functions of ``(params, x)``, which is what
:class:`adapters.models.Model` takes as ``layers=`` (``LAYER_SPLIT``, used by
:func:`adapters.demo.model`).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

try:
    import jax
    import jax.numpy as jnp
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "adapters.demo.build('jax') needs JAX, which is not installed; install it with "
        '`pip install "saliency-toolkit[jax]"` (or `pip install jax`)'
    ) from error

from adapters.demo import ARCHITECTURE, Layer

__all__ = ["LAYER_SPLIT", "apply", "apply_from", "apply_until", "build_model", "split_at"]

#: Full float32 precision on every backend (GPUs would otherwise use TF32 for float32).
_PRECISION = jax.lax.Precision.HIGHEST

_NAMES = tuple(layer.name for layer in ARCHITECTURE)

#: The network's parameters: one dict ``{"w": kernel, "b": bias}`` per layer with weights.
Params = dict[str, dict[str, jax.Array]]


def build_model(weights: dict[str, np.ndarray]) -> tuple[Any, Params]:
    """``(apply, params)``: the network and ``weights`` as float32 JAX arrays, one dict per
    layer (``params["conv1"]["w"]``), so that the layers are named as in every framework."""
    params: Params = {}
    for layer in ARCHITECTURE:
        if f"{layer.name}_w" in weights:
            params[layer.name] = {
                part: jnp.asarray(np.asarray(weights[f"{layer.name}_{part}"], dtype=np.float32))
                for part in ("w", "b")
            }
    return apply, params


def apply(params: Params, x: jax.Array) -> jax.Array:
    """Logits ``(n, 10)`` for an NHWC batch ``(n, 28, 28, 1)``."""
    return _run(params, x, ARCHITECTURE)


def apply_until(params: Params, x: jax.Array, layer: str) -> jax.Array:
    """The output of ``layer`` (a name in :data:`adapters.demo.ARCHITECTURE`) for ``x``.

    Raises:
        ValueError: if ``layer`` is not a layer name.
    """
    stop = _index(layer)
    return _run(params, x, ARCHITECTURE[: stop + 1])


def apply_from(params: Params, h: jax.Array, layer: str) -> jax.Array:
    """Logits from ``h``, the output of ``layer``: the rest of the network after it.

    Raises:
        ValueError: if ``layer`` is not a layer name.
    """
    start = _index(layer)
    return _run(params, h, ARCHITECTURE[start + 1 :])


def split_at(layer: str) -> tuple[Callable[..., jax.Array], Callable[..., jax.Array]]:
    """``(features_fn, head_fn)``: the network cut after ``layer``, both ``fn(params, x)``.

    ``head_fn(params, features_fn(params, x))`` equals ``apply(params, x)``.

    Raises:
        ValueError: if ``layer`` is not a layer name.
    """
    _index(layer)
    return partial(apply_until, layer=layer), partial(apply_from, layer=layer)


#: How :class:`adapters.models.Model` reaches a named layer of this network.
LAYER_SPLIT = split_at


def _index(layer: str) -> int:
    if layer not in _NAMES:
        raise ValueError(f"expected a layer name in {_NAMES}, got {layer!r}")
    return _NAMES.index(layer)


def _run(params: Params, h: jax.Array, layers: tuple[Layer, ...]) -> jax.Array:
    for layer in layers:
        if layer.kind == "conv":
            h = jax.lax.conv_general_dilated(
                h,
                params[layer.name]["w"],
                window_strides=(1, 1),
                padding=((1, 1), (1, 1)),
                dimension_numbers=("NHWC", "HWIO", "NHWC"),
                precision=_PRECISION,
            )
            h = h + params[layer.name]["b"]
        elif layer.kind == "relu":
            h = jax.nn.relu(h)
        elif layer.kind == "average_pool":
            n, height, width, channels = h.shape
            h = jnp.mean(h.reshape(n, height // 2, 2, width // 2, 2, channels), axis=(2, 4))
        elif layer.kind == "global_average_pool":
            h = jnp.mean(h, axis=(1, 2))
        else:  # "dense"
            h = jnp.dot(h, params[layer.name]["w"], precision=_PRECISION)
            h = h + params[layer.name]["b"]
    return h
