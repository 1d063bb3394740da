"""Grad-CAM and Grad-CAM++ from a layer callback, upsampled to the input's size.

A :class:`~saliency_core.types.LayerFn` gives, for a batch, one layer's activations ``A``
and the gradients ``G = dS_c/dA`` of the target score. With ``k`` the channel and ``ij``
the spatial positions:

- Grad-CAM (Selvaraju et al. 2017): ``w_k = mean_ij G_kij``, ``map = ReLU(sum_k w_k A_k)``.
- Grad-CAM++ (Chattopadhay et al. 2018): ``w_k = sum_ij a_kij ReLU(G_kij)`` with
  ``a_kij = G_kij^2 / (2 G_kij^2 + sum_ab A_kab G_kij^3)`` (0 where the denominator is 0),
  the closed form for an exponential of the score.

The map has the layer's spatial shape and is resized to the input's spatial shape by
(separable) linear interpolation with half-pixel centres, as image resizers do. SmoothGrad
over Grad-CAM++ (Smooth Grad-CAM++) is ``smoothgrad(partial(grad_cam_plus_plus, layer_fn),
x, target)``.
"""

from __future__ import annotations

import numpy as np

from ._checks import (
    as_input_batch,
    as_targets,
    check_callable,
    check_callback_output,
    check_positive_int,
)
from .gradients import vanilla_gradient
from .types import GradientFn, LayerFn

__all__ = ["grad_cam", "grad_cam_plus_plus", "guided_grad_cam", "resize_linear"]


def _axis(axis: int, ndim: int, name: str) -> int:
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}: expected an axis in [{-ndim}, {ndim - 1}], got {axis}")
    return axis % ndim


def resize_linear(maps: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """Resize ``(N, *spatial)`` maps to ``(N, *size)`` by linear interpolation per axis.

    Half-pixel centres (``align_corners=False``): a constant map stays constant and a map
    of the target size is returned unchanged.

    Examples:
        >>> resize_linear(np.array([[0.0, 1.0]]), (4,))
        array([[0.  , 0.25, 0.75, 1.  ]])
    """
    if maps.ndim - 1 != len(size):
        raise ValueError(
            f"size: expected {maps.ndim - 1} spatial sizes for maps of shape {maps.shape}, "
            f"got {size}"
        )
    out = maps.astype(np.float64, copy=False)
    for axis, new in enumerate(size, start=1):
        old = out.shape[axis]
        if old == new:
            continue
        centres = (np.arange(new) + 0.5) * (old / new) - 0.5
        centres = np.clip(centres, 0, old - 1)
        low = np.floor(centres).astype(int)
        high = np.minimum(low + 1, old - 1)
        frac = (centres - low).reshape((-1,) + (1,) * (out.ndim - axis - 1))
        out = np.take(out, low, axis=axis) * (1 - frac) + np.take(out, high, axis=axis) * frac
    return out


def _cam(
    kind: str,
    layer_fn: LayerFn,
    x: np.ndarray,
    target: object,
    *,
    channel_axis: int,
    input_channel_axis: int | None,
    size: tuple[int, ...] | None,
    batch_size: int,
) -> np.ndarray:
    check_callable(layer_fn, "layer_fn")
    x = as_input_batch(x)
    targets = as_targets(target, x.shape[0])
    batch_size = check_positive_int(batch_size, "batch_size")
    if size is None:
        if input_channel_axis is None:
            size = x.shape[1:]
        else:
            skip = _axis(input_channel_axis, x.ndim, "input_channel_axis")
            if skip == 0:
                raise ValueError("input_channel_axis: expected a non-batch axis, got axis 0")
            size = tuple(s for a, s in enumerate(x.shape) if a not in (0, skip))
    size = tuple(int(s) for s in size)

    maps = []
    for start in range(0, x.shape[0], batch_size):
        stop = min(start + batch_size, x.shape[0])
        result = layer_fn(x[start:stop], None if targets is None else targets[start:stop])
        if not isinstance(result, tuple) or len(result) != 2:
            raise TypeError(
                f"layer_fn call for rows {start}..{stop - 1}: expected a pair "
                f"(activations, gradients), got {type(result).__name__}"
            )
        rows = (start, stop - 1)
        activations = check_callback_output(
            result[0], rows=rows, expected_shape=None, n_rows=stop - start, name="layer_fn"
        )
        gradients = check_callback_output(
            result[1], rows=rows, expected_shape=activations.shape, n_rows=stop - start,
            name="layer_fn (gradients)",
        )
        if activations.ndim < 3:
            raise ValueError(
                f"layer_fn call for rows {rows[0]}..{rows[1]}: expected activations with a "
                f"channel axis and at least one spatial axis, (k, C, *spatial) or "
                f"(k, *spatial, C), got shape {activations.shape}; the layer has no spatial "
                "axes: pick a convolutional layer"
            )
        axis = _axis(channel_axis, activations.ndim, "channel_axis")
        if axis == 0:
            raise ValueError("channel_axis: expected a non-batch axis, got axis 0")
        a = np.moveaxis(activations.astype(np.float64), axis, 1)
        g = np.moveaxis(gradients.astype(np.float64), axis, 1)
        spatial = tuple(range(2, a.ndim))
        if kind == "grad_cam":
            weights = g.mean(axis=spatial, keepdims=True)
        else:
            g2 = g * g
            denominator = 2 * g2 + a.sum(axis=spatial, keepdims=True) * g2 * g
            alpha = np.divide(g2, denominator, out=np.zeros_like(g2), where=denominator != 0)
            weights = (alpha * np.maximum(g, 0)).sum(axis=spatial, keepdims=True)
        cam = np.maximum((weights * a).sum(axis=1), 0)
        if cam.ndim - 1 != len(size):
            raise ValueError(
                f"the layer's maps have {cam.ndim - 1} spatial axes ({cam.shape[1:]}) but the "
                f"output size has {len(size)} ({size}); set input_channel_axis to the input's "
                "channel axis, or pass size"
            )
        maps.append(resize_linear(cam, size))
    return np.concatenate(maps).astype(x.dtype, copy=False)


def grad_cam(
    layer_fn: LayerFn,
    x: np.ndarray,
    target: int | np.ndarray | None = None,
    *,
    channel_axis: int = -1,
    input_channel_axis: int | None = -1,
    size: tuple[int, ...] | None = None,
    batch_size: int = 64,
) -> np.ndarray:
    """Grad-CAM maps, resized to the input's spatial shape.

    Args:
        layer_fn: ``layer_fn(x, target) -> (activations, gradients)`` for one layer.
        x: a batch ``(N, *input_shape)``.
        target: None, one output index for all inputs, or one per input ``(N,)``.
        channel_axis: the channel axis of the layer's activations (-1 for NHWC, 1 for
            NCHW).
        input_channel_axis: the channel axis of ``x``, dropped to get the output size;
            None when ``x`` has no channel axis.
        size: the output spatial shape, instead of the one taken from ``x``.
        batch_size: the most inputs sent to ``layer_fn`` in one call.

    Returns:
        ``(N, *size)`` non-negative maps in ``x``'s float dtype.

    Examples:
        One channel whose gradient is positive everywhere: the map is its activation.

        >>> a = np.array([[[[1.0], [3.0]], [[0.0], [2.0]]]])  # (1, 2, 2, 1), NHWC
        >>> layer = lambda x, t: (a, np.ones_like(a))
        >>> grad_cam(layer, np.zeros((1, 2, 2, 3)))
        array([[[1., 3.],
                [0., 2.]]])
    """
    return _cam("grad_cam", layer_fn, x, target, channel_axis=channel_axis,
                input_channel_axis=input_channel_axis, size=size, batch_size=batch_size)


def grad_cam_plus_plus(
    layer_fn: LayerFn,
    x: np.ndarray,
    target: int | np.ndarray | None = None,
    *,
    channel_axis: int = -1,
    input_channel_axis: int | None = -1,
    size: tuple[int, ...] | None = None,
    batch_size: int = 64,
) -> np.ndarray:
    """Grad-CAM++ maps, resized to the input's spatial shape (options as :func:`grad_cam`).

    Examples:
        >>> a = np.array([[[[1.0], [3.0]], [[0.0], [2.0]]]])
        >>> layer = lambda x, t: (a, np.ones_like(a))
        >>> grad_cam_plus_plus(layer, np.zeros((1, 2, 2, 3)))  # alpha = 1 / (2 + 6)
        array([[[0.5, 1.5],
                [0. , 1. ]]])
    """
    return _cam("grad_cam_plus_plus", layer_fn, x, target, channel_axis=channel_axis,
                input_channel_axis=input_channel_axis, size=size, batch_size=batch_size)


def guided_grad_cam(
    guided_fn: GradientFn,
    x: np.ndarray,
    target: int | np.ndarray | None = None,
    *,
    layer_fn: LayerFn,
    channel_axis: int = -1,
    input_channel_axis: int | None = -1,
    batch_size: int = 64,
) -> np.ndarray:
    """Guided Grad-CAM: guided backpropagation times the Grad-CAM map, shaped like ``x``.

    Selvaraju et al. 2017 multiply the fine-grained guided-backpropagation gradient by the
    class-discriminative Grad-CAM map, upsampled to the input and broadcast over its
    channels.

    Args:
        guided_fn: a gradient callback with the guided ReLU rule (an adapter's
            ``gradient_fn(model, relu_rule="guided")``).
        x: a batch ``(N, *input_shape)``.
        target: None, one output index for all inputs, or one per input ``(N,)``.
        layer_fn: the layer callback for Grad-CAM (an adapter's ``layer_fn``).
        channel_axis: the channel axis of the layer's activations.
        input_channel_axis: the channel axis of ``x`` (None when it has none).
        batch_size: the most inputs sent to each callback in one call.

    Returns:
        An array shaped like ``x``.

    Examples:
        >>> a = np.ones((1, 2, 2, 1))
        >>> layer = lambda x, t: (a * [[[[1.0], [0.0]], [[2.0], [0.0]]]], np.ones_like(a))
        >>> guided = lambda x, t: np.ones_like(x)
        >>> guided_grad_cam(guided, np.zeros((1, 2, 2, 3)), layer_fn=layer)[0, :, :, 0]
        array([[1., 0.],
               [2., 0.]])
    """
    guided = vanilla_gradient(guided_fn, x, target, batch_size=batch_size)
    cam = grad_cam(layer_fn, x, target, channel_axis=channel_axis,
                   input_channel_axis=input_channel_axis, batch_size=batch_size)
    if input_channel_axis is None:
        return guided * cam
    axis = _axis(input_channel_axis, guided.ndim, "input_channel_axis")
    return guided * np.expand_dims(cam, axis)
