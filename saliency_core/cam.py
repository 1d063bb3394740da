"""Class activation maps from a layer callback, upsampled to the input's size.

A :class:`~saliency_core.types.LayerFn` gives, for a batch, one layer's activations ``A``
and the gradients ``G = dS_c/dA`` of the target score. With ``k`` the channel and ``ij``
the spatial positions:

- Grad-CAM (Selvaraju et al. 2017): ``w_k = mean_ij G_kij``, ``map = ReLU(sum_k w_k A_k)``.
- Grad-CAM++ (Chattopadhay et al. 2018): ``w_k = sum_ij a_kij ReLU(G_kij)`` with
  ``a_kij = G_kij^2 / (2 G_kij^2 + sum_ab A_kab G_kij^3)`` (0 where the denominator is 0),
  the closed form for an exponential of the score.
- Layer-CAM (Jiang et al. 2021): a weight per position, ``map = ReLU(sum_k ReLU(G_k) A_k)``.
- Score-CAM (Wang et al. 2020): no gradients; ``w_k`` is the model's score for the target
  on the input masked by ``A_k`` (upsampled to the input, min-max normalised),
  ``map = ReLU(sum_k w_k A_k)`` (:func:`score_cam`).

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
    check_bool,
    check_callable,
    check_choice,
    check_positive_int,
)
from ._streaming import _progress_bar, call_chunk, call_layer_chunk, cast_result, chunk_bounds
from .gradients import vanilla_gradient
from .types import GradientFn, LayerFn, PredictFn

__all__ = [
    "SCORE_CAM_SCORES",
    "grad_cam",
    "grad_cam_plus_plus",
    "guided_grad_cam",
    "layer_cam",
    "resize_linear",
    "score_cam",
]

#: What ``score_cam(..., score=...)`` weighs each activation map by.
SCORE_CAM_SCORES = ("probability", "output", "channel-softmax")

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


def _positive_gradients(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Layer-CAM: a weight per channel and position, ``ReLU(G_kij)``."""
    return np.maximum(g, 0)


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


def layer_cam(
    layer_fn: LayerFn,
    x: np.ndarray,
    target: int | np.ndarray | None = None,
    *,
    channel_axis: int = _CHANNELS_LAST,
    input_channel_axis: int | None = _CHANNELS_LAST,
    size: tuple[int, ...] | None = None,
    batch_size: int = 64,
) -> np.ndarray:
    """Layer-CAM maps, resized to the input's spatial shape (options as :func:`grad_cam`).

    Each position of each channel is weighted by its own positive gradient,
    ``map = ReLU(sum_k ReLU(G_k) * A_k)``, instead of Grad-CAM's one weight per channel, so
    maps from shallow layers keep their fine detail. (The paper's fusion of several layers,
    which rescales shallow maps by ``tanh``, is left to the caller.)

    Examples:
        Only positive gradients count, position by position:

        >>> a = np.array([[[[1.0], [3.0]], [[2.0], [2.0]]]])  # (1, 2, 2, 1), NHWC
        >>> g = np.array([[[[2.0], [-1.0]], [[0.5], [0.0]]]])
        >>> layer_cam(lambda x, t: (a, g), np.zeros((1, 2, 2, 3)))
        array([[[2., 0.],
                [1., 0.]]])

    References:
        Jiang, Zhang, Hou, Cheng, Wei (2021). LayerCAM: exploring hierarchical class
        activation maps for localization. IEEE Transactions on Image Processing 30,
        equations 4 and 5.
    """
    x, targets, output_size, batch_size = _prepare(
        layer_fn, x, target, channel_axis=channel_axis, input_channel_axis=input_channel_axis,
        size=size, batch_size=batch_size,
    )
    return _cam(_positive_gradients, layer_fn, x, targets, channel_axis=channel_axis,
                size=output_size, batch_size=batch_size, size_given=size is not None)


def _layer_activations(
    layer_fn: LayerFn,
    x: np.ndarray,
    targets: np.ndarray | None,
    *,
    channel_axis: int,
    size: tuple[int, ...],
    batch_size: int,
) -> np.ndarray:
    """The layer's activations of every input, float64 ``(N, C, *spatial)``."""
    activations: np.ndarray | None = None
    trailing: tuple[int, ...] | None = None
    axis = 0
    for start, stop in chunk_bounds(x.shape[0], batch_size):
        chunk_targets = None if targets is None else targets[start:stop]
        chunk, _ = call_layer_chunk(layer_fn, x[start:stop], chunk_targets, start=start,
                                    stop=stop, expected_trailing=trailing)
        if trailing is None:
            axis = _layer_channel_axis(chunk.shape, channel_axis, size, (start, stop - 1),
                                       guess=True)
            trailing = chunk.shape[1:]
        moved = np.moveaxis(chunk.astype(np.float64), axis, 1)
        if activations is None:
            activations = np.empty((x.shape[0], *moved.shape[1:]), dtype=np.float64)
        activations[start:stop] = moved
    return activations  # type: ignore[return-value]


def _softmax(values: np.ndarray, axis: int) -> np.ndarray:
    shifted = values - values.max(axis=axis, keepdims=True)
    np.exp(shifted, out=shifted)
    return shifted / shifted.sum(axis=axis, keepdims=True)


def _target_scores(
    outputs: np.ndarray, targets: np.ndarray | None, score: str, rows: tuple[int, int]
) -> np.ndarray:
    """One float64 score per row from a checked ``predict_fn`` result."""
    where = f"predict_fn call for rows {rows[0]}..{rows[1]}"
    values = outputs.astype(np.float64)
    if targets is None:
        if values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1):
            return values.reshape(-1)
        raise ValueError(
            f"{where}: expected one score per row, shape (k,) or (k, 1), with target=None, "
            f"got shape {outputs.shape}; pass target= to pick an output"
        )
    if values.ndim != 2:
        raise ValueError(
            f"{where}: expected outputs of shape (k, n_outputs) for integer targets, got "
            f"shape {outputs.shape}"
        )
    if targets.max() >= values.shape[1]:
        raise ValueError(
            f"{where}: expected targets below {values.shape[1]} (the model's outputs per "
            f"row), got {int(targets.max())}"
        )
    if score == "probability":
        with np.errstate(over="ignore", under="ignore"):
            values = _softmax(values, axis=1)
    return values[np.arange(len(values)), targets]


def score_cam(
    layer_fn: LayerFn,
    x: np.ndarray,
    target: int | np.ndarray | None = None,
    *,
    predict_fn: PredictFn,
    score: str = "probability",
    channel_axis: int = _CHANNELS_LAST,
    input_channel_axis: int | None = _CHANNELS_LAST,
    batch_size: int = 64,
    progress: bool = False,
) -> np.ndarray:
    """Score-CAM maps: activation maps weighted by the model's score on masked inputs.

    For input ``x`` and each channel ``k`` of the layer, the activation map ``A_k`` is
    resized to ``x``'s spatial shape (:func:`resize_linear`), min-max normalised to
    ``[0, 1]`` to give a mask ``H_k``, and the model is run on ``x * H_k`` (the mask
    broadcast over ``x``'s channels). The channel's weight ``w_k`` is that run's score for
    the target, and ``map = ReLU(sum_k w_k A_k)`` at the layer's resolution, resized to the
    input's, as :func:`grad_cam` does. A channel whose resized map is constant has no mask:
    its weight is 0 and the model is not run for it (as in the authors' code). The masked
    inputs of all inputs and channels, ``N x C`` rows, go to ``predict_fn`` in chunks of at
    most ``batch_size``, made chunk by chunk, so memory is ``O(batch_size x input)``
    beyond the layer's activations.

    Args:
        layer_fn: ``layer_fn(x, target) -> (activations, gradients)`` for one layer (an
            adapter's ``layer_fn``); only the activations are used, once per input.
        x: a batch ``(N, *input_shape)``.
        target: None, one output index for all inputs, or one per input ``(N,)``.
        predict_fn: the model's outputs ``predict_fn(x) -> (k, n_outputs)``, or one score
            per row ``(k,)`` for ``target=None``.
        score: the weight of a channel, one of :data:`SCORE_CAM_SCORES`:
            ``"probability"`` (the default): the softmax over the model's outputs of the
            masked input, at the target, as in Wang et al.'s code and tf-keras-vis's
            ``Scorecam`` (pass ``"output"`` for a model that ends in a softmax already);
            ``"output"``: the model's output at the target, as it is;
            ``"channel-softmax"``: those outputs, softmaxed over the channels of each input,
            as pytorch-grad-cam's ``ScoreCAM`` does. The paper's increase of confidence over
            a baseline, ``f(x * H_k) - f(x_b)``, is not subtracted (nor is it in any of
            these implementations).
        channel_axis: the channel axis of the layer's activations (-1 for NHWC, 1 for NCHW).
        input_channel_axis: the channel axis of ``x``, over which the mask is broadcast;
            None when ``x`` has no channel axis.
        batch_size: the most rows sent to each callback in one call.
        progress: True to show a tqdm progress bar over the masked inputs.

    Returns:
        ``(N, *spatial)`` non-negative maps (``x``'s shape without its channel axis) in
        ``x``'s float dtype.

    Raises:
        ValueError, TypeError: bad input, before any callback is called (``target=None``
            with ``score="probability"`` too: a softmax over one score is always 1); a
            callback result of the wrong shape, or targets beyond the model's outputs,
            naming the rows of the call.

    Examples:
        A model that reads the total of the input: the brighter mask gets the larger
        weight.

        >>> a = np.array([[[[0.0, 1.0], [1.0, 0.0]], [[2.0, 0.0], [0.0, 0.0]]]])  # NCHW
        >>> layer = lambda x, t: (a, np.zeros_like(a))
        >>> total = lambda x: x.reshape(len(x), -1).sum(axis=1)
        >>> score_cam(layer, np.ones((1, 1, 2, 2)), score="output", predict_fn=total,
        ...           channel_axis=1, input_channel_axis=1)
        array([[[2., 2.],
                [2., 0.]]])

    References:
        Wang, Wang, Du, Yang, Zhang, Ding, Mardziel, Hu (2020). Score-CAM: score-weighted
        visual explanations for convolutional neural networks. CVPR Workshops;
        arXiv:1910.01279, section 3 and algorithm 1.
    """
    check_callable(predict_fn, "predict_fn")
    x, targets, size, batch_size = _prepare(
        layer_fn, x, target, channel_axis=channel_axis, input_channel_axis=input_channel_axis,
        size=None, batch_size=batch_size,
    )
    score = check_choice(score, "score", SCORE_CAM_SCORES)
    progress = check_bool(progress, "progress")
    if score == "probability" and targets is None:
        raise ValueError(
            "score='probability' takes the softmax of the model's outputs at the target, so "
            "it needs a target, got target=None; pass target=, or score='output' for a model "
            "that gives one score per row"
        )
    mask_axis = (None if input_channel_axis is None
                 else _axis(input_channel_axis, x.ndim, "input_channel_axis"))
    activations = _layer_activations(layer_fn, x, targets, channel_axis=channel_axis,
                                     size=size, batch_size=batch_size)
    n_inputs, n_channels = activations.shape[:2]
    flat = activations.reshape(n_inputs * n_channels, *activations.shape[2:])
    # the resized maps' ranges, chunk by chunk: constant maps give no mask
    low = np.empty(len(flat))
    high = np.empty(len(flat))
    for start, stop in chunk_bounds(len(flat), batch_size):
        resized = _resize(flat[start:stop], size).reshape(stop - start, -1)
        low[start:stop], high[start:stop] = resized.min(axis=1), resized.max(axis=1)
    rows = np.flatnonzero(high > low)  # (input, channel) pairs, input-major
    scores = np.zeros(len(flat))
    bar = _progress_bar(len(rows), "Score-CAM") if progress and len(rows) else None
    trailing: tuple[int, ...] | None = None
    try:
        for start, stop in chunk_bounds(len(rows), batch_size):
            chunk = rows[start:stop]
            owners = chunk // n_channels
            masks = _resize(flat[chunk], size)
            spread = (high[chunk] - low[chunk]).reshape((-1,) + (1,) * len(size))
            masks = (masks - low[chunk].reshape(spread.shape)) / spread
            if mask_axis is not None:
                masks = np.expand_dims(masks, mask_axis)
            masked = (x[owners] * masks).astype(x.dtype, copy=False)
            del masks
            outputs = call_chunk(predict_fn, masked, start=start, stop=stop,
                                 expected_trailing=trailing, name="predict_fn")
            del masked
            trailing = outputs.shape[1:]
            scores[chunk] = _target_scores(outputs, None if targets is None else
                                           targets[owners], score, (start, stop - 1))
            if bar is not None:
                bar.update(stop - start)
    finally:
        if bar is not None:
            bar.close()
    weights = scores.reshape(n_inputs, n_channels)
    if score == "channel-softmax":
        masked_out = (high > low).reshape(n_inputs, n_channels)
        shifted = np.where(masked_out, weights, -np.inf)
        top = shifted.max(axis=1, keepdims=True)
        exponent = np.where(masked_out, np.exp(shifted - np.where(np.isfinite(top), top, 0)), 0)
        total = exponent.sum(axis=1, keepdims=True)
        weights = np.divide(exponent, total, out=np.zeros_like(exponent), where=total > 0)
    weights = weights.reshape(weights.shape + (1,) * len(size))
    with np.errstate(over="ignore", invalid="ignore"):
        maps = _weighted_map(activations, weights, size)
    return cast_result(maps, x.dtype, name="predict_fn")
