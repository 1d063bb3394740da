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

import math
import numbers
from collections.abc import Callable

import numpy as np

from ._checks import (
    as_input_batch,
    as_targets,
    check_callable,
    check_positive_int,
)
from ._streaming import call_layer_chunk, cast_result, chunk_bounds
from .gradients import vanilla_gradient
from .types import GradientFn, LayerFn

__all__ = ["grad_cam", "grad_cam_plus_plus", "guided_grad_cam", "resize_linear"]

_Weighting = Callable[[np.ndarray, np.ndarray], np.ndarray]


class _DefaultAxis(int):
    """-1 (channels last), marked as 'not given': only the defaults are second-guessed.

    With the default axes, an input or a layer that looks channels-first (NCHW) is refused
    with a message naming ``input_channel_axis=1`` / ``channel_axis=1``; an axis given
    explicitly, -1 included, is taken as it is.
    """

    def __repr__(self) -> str:
        return "-1"


_CHANNELS_LAST = _DefaultAxis(-1)

#: First-axis sizes that mark an input as channels-first (grey, RGB), as in visualize.
_CHANNELS_FIRST_COUNTS = (1, 3)
#: Last-axis sizes that a channels-last input may have (grey, RGB, RGBA).
_CHANNELS_LAST_COUNTS = (1, 3, 4)
#: How much more evenly a channels-first reading must scale a layer to the output (as a
#: ratio of the largest to the smallest per-axis upsampling factor) before it is preferred.
_ASPECT_MARGIN = math.log(1.25)


def _axis(axis: object, ndim: int, name: str) -> int:
    if isinstance(axis, bool | np.bool_) or not isinstance(axis, numbers.Integral):
        raise TypeError(f"{name}: expected an int axis, got {type(axis).__name__} {axis!r}")
    if not -ndim <= int(axis) < ndim:
        raise ValueError(f"{name}: expected an axis in [{-ndim}, {ndim - 1}], got {axis}")
    return int(axis) % ndim


def _check_size(size: object) -> tuple[int, ...]:
    if isinstance(size, np.ndarray) and size.ndim == 1:
        size = tuple(size.tolist())
    if not isinstance(size, tuple | list):
        raise TypeError(
            f"size: expected a tuple of positive ints, one per spatial axis, got "
            f"{type(size).__name__} {size!r}"
        )
    if not size:
        raise ValueError("size: expected at least one spatial size, got ()")
    for value in size:
        if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
            raise TypeError(f"size: expected a tuple of positive ints, got {tuple(size)!r}")
    if min(size) < 1:
        raise ValueError(f"size: expected positive sizes, got {tuple(size)!r}")
    return tuple(int(value) for value in size)


def resize_linear(maps: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """Resize ``(N, *spatial)`` maps to ``(N, *size)`` by linear interpolation per axis.

    Half-pixel centres (``align_corners=False``): a constant map stays constant and a map
    of the target size is returned unchanged (as a float64 copy).

    Args:
        maps: a finite real array ``(N, *spatial)`` with no empty axis.
        size: one positive int per spatial axis.

    Returns:
        float64 ``(N, *size)``.

    Raises:
        ValueError, TypeError: bad ``maps``, or a ``size`` that is not one positive int
            per spatial axis.

    Examples:
        >>> resize_linear(np.array([[0.0, 1.0]]), (4,))
        array([[0.  , 0.25, 0.75, 1.  ]])
    """
    maps = as_input_batch(maps, name="maps")
    size = _check_size(size)
    if maps.ndim - 1 != len(size):
        raise ValueError(
            f"size: expected {maps.ndim - 1} spatial sizes for maps of shape {maps.shape}, "
            f"got {size}"
        )
    resized = _resize(maps, size)
    return resized.copy() if resized is maps else resized


def _resize(maps: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
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


# --- the two weightings: channel weights (k, C, 1, ..., 1) from A and G (k, C, *spatial) --


def _gradient_mean_weights(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Grad-CAM: ``w_k = mean_ij G_kij``."""
    return g.mean(axis=tuple(range(2, g.ndim)), keepdims=True)


def _alpha_weights(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Grad-CAM++: ``w_k = sum_ij a_kij ReLU(G_kij)``, ``a`` the closed-form alphas."""
    spatial = tuple(range(2, g.ndim))
    g2 = g * g
    denominator = 2 * g2 + a.sum(axis=spatial, keepdims=True) * g2 * g
    alpha = np.divide(g2, denominator, out=np.zeros_like(g2), where=denominator != 0)
    return (alpha * np.maximum(g, 0)).sum(axis=spatial, keepdims=True)


def _weighted_map(a: np.ndarray, weights: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """The map step both share: ``ReLU(sum_k w_k A_k)``, resized to ``size``."""
    return _resize(np.maximum((weights * a).sum(axis=1), 0), size)


# --- checks of the axes, before any call and on the first layer result ---------------------


def _input_looks_channels_first(shape: tuple[int, ...]) -> bool:
    return (len(shape) >= 3 and shape[1] in _CHANNELS_FIRST_COUNTS
            and shape[-1] not in _CHANNELS_LAST_COUNTS)


def _output_size(x: np.ndarray, input_channel_axis: object, size: object) -> tuple[int, ...]:
    """The output spatial shape: ``size``, or ``x``'s shape without batch and channel axes."""
    if input_channel_axis is not None:
        skip = _axis(input_channel_axis, x.ndim, "input_channel_axis")
        if skip == 0:
            raise ValueError("input_channel_axis: expected a non-batch axis, got axis 0")
    if size is not None:
        return _check_size(size)
    if input_channel_axis is None:
        return x.shape[1:]
    if isinstance(input_channel_axis, _DefaultAxis) and _input_looks_channels_first(x.shape):
        raise ValueError(
            f"x: shape {x.shape} looks channels-first (NCHW, {x.shape[1]} channel(s) of "
            f"{x.shape[2:]}) but input_channel_axis is -1 (channels last), which reads it as "
            f"{x.shape[-1]} channels of {x.shape[1:-1]}; pass input_channel_axis=1 (and "
            "channel_axis=1 for channels-first activations, as PyTorch layers give), or "
            "input_channel_axis=-1 explicitly if the channels are last"
        )
    return tuple(s for a, s in enumerate(x.shape) if a not in (0, skip))


def _aspect_distortion(spatial: tuple[int, ...], size: tuple[int, ...]) -> float:
    """log of the largest over the smallest per-axis upsampling factor ``size / spatial``."""
    factors = [math.log(out / layer) for layer, out in zip(spatial, size, strict=True)]
    return max(factors) - min(factors)


def _fits(spatial: tuple[int, ...], size: tuple[int, ...]) -> bool:
    return all(extent <= out for extent, out in zip(spatial, size, strict=True))


def _layer_looks_channels_first(shape: tuple[int, ...], size: tuple[int, ...]) -> bool:
    """Whether ``(k, C, *spatial)`` explains the activations' shape much better than
    ``(k, *spatial, C)``: the layer then fits under the output size (layers do not grow the
    input) and scales to it more evenly."""
    last, first = shape[1:-1], shape[2:]
    if len(first) != len(size) or not _fits(first, size):
        return False
    if not _fits(last, size):
        return True
    return _aspect_distortion(last, size) > _aspect_distortion(first, size) + _ASPECT_MARGIN


def _layer_channel_axis(
    shape: tuple[int, ...],
    channel_axis: object,
    size: tuple[int, ...],
    rows: tuple[int, int],
    *,
    guess: bool,
) -> int:
    """Check the first activations' shape against the axes and the output size.

    ``guess``: whether a default ``channel_axis`` may be second-guessed against ``size``
    (only when ``size`` comes from the input: a size given explicitly may have any aspect).
    """
    where = f"layer_fn call for rows {rows[0]}..{rows[1]}"
    if len(shape) < 3:
        raise ValueError(
            f"{where}: expected activations with a channel axis and at least one spatial "
            f"axis, (k, C, *spatial) or (k, *spatial, C), got shape {shape}; the layer has no "
            "spatial axes: pick a convolutional layer"
        )
    if 0 in shape:
        raise ValueError(f"{where}: expected activations with no empty axis, got shape {shape}")
    axis = _axis(channel_axis, len(shape), "channel_axis")
    if axis == 0:
        raise ValueError("channel_axis: expected a non-batch axis, got axis 0")
    spatial = tuple(s for a, s in enumerate(shape) if a not in (0, axis))
    guessed = guess and isinstance(channel_axis, _DefaultAxis)
    if guessed and _layer_looks_channels_first(shape, size):
        raise ValueError(
            f"{where}: activations of shape {shape} look channels-first ({shape[1]} channels "
            f"of {shape[2:]}) but channel_axis is -1 (channels last), which reads them as "
            f"{shape[-1]} channels of {spatial} for maps of size {size}; pass channel_axis=1 "
            "(PyTorch layers are NCHW), or channel_axis=-1 explicitly if the channels are last"
        )
    if len(spatial) != len(size):
        raise ValueError(
            f"{where}: the layer's maps have {len(spatial)} spatial axes ({spatial}, from "
            f"activations {shape} with channel_axis={channel_axis!r}) but the output size has "
            f"{len(size)} ({size}); for channels-first (NCHW) tensors pass channel_axis=1 and "
            "input_channel_axis=1, else set input_channel_axis to the input's channel axis "
            "(None if it has none), or pass size"
        )
    return axis


def _prepare(
    layer_fn: object,
    x: object,
    target: object,
    *,
    channel_axis: object,
    input_channel_axis: object,
    size: object,
    batch_size: object,
) -> tuple[np.ndarray, np.ndarray | None, tuple[int, ...], int]:
    """Every check that needs no call: the batch, targets, output size and batch size."""
    check_callable(layer_fn, "layer_fn")
    x = as_input_batch(x)
    targets = as_targets(target, x.shape[0])
    batch_size = check_positive_int(batch_size, "batch_size")
    if isinstance(channel_axis, bool | np.bool_) or not isinstance(channel_axis, numbers.Integral):
        raise TypeError(
            f"channel_axis: expected an int axis, got {type(channel_axis).__name__} "
            f"{channel_axis!r}"
        )
    return x, targets, _output_size(x, input_channel_axis, size), batch_size


def _cam(
    weighting: _Weighting,
    layer_fn: LayerFn,
    x: np.ndarray,
    targets: np.ndarray | None,
    *,
    channel_axis: int,
    size: tuple[int, ...],
    batch_size: int,
    size_given: bool,
) -> np.ndarray:
    """The class activation maps of checked inputs, chunk by chunk."""
    maps = np.empty((x.shape[0], *size), dtype=x.dtype)
    trailing: tuple[int, ...] | None = None
    axis = 0
    for start, stop in chunk_bounds(x.shape[0], batch_size):
        chunk_targets = None if targets is None else targets[start:stop]
        activations, gradients = call_layer_chunk(
            layer_fn, x[start:stop], chunk_targets, start=start, stop=stop,
            expected_trailing=trailing,
        )
        if trailing is None:  # every later call is held to the first call's shape
            axis = _layer_channel_axis(activations.shape, channel_axis, size, (start, stop - 1),
                                       guess=not size_given)
            trailing = activations.shape[1:]
        a = np.moveaxis(activations.astype(np.float64), axis, 1)
        g = np.moveaxis(gradients.astype(np.float64), axis, 1)
        with np.errstate(over="ignore", invalid="ignore"):
            chunk_maps = _weighted_map(a, weighting(a, g), size)
        maps[start:stop] = cast_result(chunk_maps, x.dtype, name="layer_fn")
    return maps


def grad_cam(
    layer_fn: LayerFn,
    x: np.ndarray,
    target: int | np.ndarray | None = None,
    *,
    channel_axis: int = _CHANNELS_LAST,
    input_channel_axis: int | None = _CHANNELS_LAST,
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
        size: the output spatial shape (positive ints, one per spatial axis of the layer),
            instead of the one taken from ``x``.
        batch_size: the most inputs sent to ``layer_fn`` in one call.

    Returns:
        ``(N, *size)`` non-negative maps in ``x``'s float dtype.

    Raises:
        ValueError, TypeError: bad input, before ``layer_fn`` is called; a result that is
            not a pair of finite arrays of one shape, naming the rows of the call; a layer
            without spatial axes, or whose spatial axes do not match ``size``. While both
            channel axes are left at their default (-1, channels last), an ``x`` such as
            ``(N, 1, 28, 28)`` or (without ``size``) activations such as ``(k, 16, 7, 7)``
            that look channels-first (NCHW) are refused with a message naming
            ``input_channel_axis=1`` and ``channel_axis=1``; passing an axis, -1 too, turns
            that guess off.

    Examples:
        One channel whose gradient is positive everywhere: the map is its activation.

        >>> a = np.array([[[[1.0], [3.0]], [[0.0], [2.0]]]])  # (1, 2, 2, 1), NHWC
        >>> layer = lambda x, t: (a, np.ones_like(a))
        >>> grad_cam(layer, np.zeros((1, 2, 2, 3)))
        array([[[1., 3.],
                [0., 2.]]])
    """
    x, targets, output_size, batch_size = _prepare(
        layer_fn, x, target, channel_axis=channel_axis, input_channel_axis=input_channel_axis,
        size=size, batch_size=batch_size,
    )
    return _cam(_gradient_mean_weights, layer_fn, x, targets, channel_axis=channel_axis,
                size=output_size, batch_size=batch_size, size_given=size is not None)


def grad_cam_plus_plus(
    layer_fn: LayerFn,
    x: np.ndarray,
    target: int | np.ndarray | None = None,
    *,
    channel_axis: int = _CHANNELS_LAST,
    input_channel_axis: int | None = _CHANNELS_LAST,
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
    x, targets, output_size, batch_size = _prepare(
        layer_fn, x, target, channel_axis=channel_axis, input_channel_axis=input_channel_axis,
        size=size, batch_size=batch_size,
    )
    return _cam(_alpha_weights, layer_fn, x, targets, channel_axis=channel_axis,
                size=output_size, batch_size=batch_size, size_given=size is not None)


def guided_grad_cam(
    guided_fn: GradientFn,
    x: np.ndarray,
    target: int | np.ndarray | None = None,
    *,
    layer_fn: LayerFn,
    channel_axis: int = _CHANNELS_LAST,
    input_channel_axis: int | None = _CHANNELS_LAST,
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
    check_callable(guided_fn, "guided_fn")
    x, targets, size, batch_size = _prepare(
        layer_fn, x, target, channel_axis=channel_axis, input_channel_axis=input_channel_axis,
        size=None, batch_size=batch_size,
    )
    guided = vanilla_gradient(guided_fn, x, targets, batch_size=batch_size)
    cam = _cam(_gradient_mean_weights, layer_fn, x, targets, channel_axis=channel_axis,
               size=size, batch_size=batch_size, size_given=False)
    if input_channel_axis is None:
        return guided * cam
    return guided * np.expand_dims(cam, _axis(input_channel_axis, x.ndim, "input_channel_axis"))
