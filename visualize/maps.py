"""Post-processing of attribution maps: sign selection, channel reduction and scaling.

Every function here takes and returns numpy arrays (anything ``np.asarray`` accepts, so a
CPU tensor from any framework works too) and never returns NaN.

Shapes: a map with channels is ``(H, W, C)`` or a batch ``(N, H, W, C)``; ``channel_axis``
says where the channels are (``-1`` for HWC/NHWC, ``0`` for CHW, ``1`` or ``-3`` for
NCHW). ``channel_axis=None`` means the map has no channel axis: ``(H, W)`` or
``(N, H, W)``. Scaling is done per map (per image of a batch), over its two spatial
axes, never over the whole batch.

References:
    Smilkov et al. 2017, "SmoothGrad: removing noise by adding noise", section 3.1
    (absolute value of gradients, capping outlying values at the 99th percentile,
    multiplying maps with the input) and section 3.3 (discriminativity).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from visualize._checks import (
    as_real_array,
    channel_axis_index,
    check_choice,
    check_ndim,
    check_percentile,
    divide_by_peak,
    float_dtype,
)
from visualize.colormaps import _colour_any_shape

__all__ = [
    "REDUCTIONS",
    "SIGNS",
    "difference_map",
    "discriminativity",
    "diverging",
    "grayscale",
    "select_sign",
    "times_input",
]

SIGNS = ("absolute", "positive", "negative", "all")
"""Choices of ``sign``: ``|a|``, ``max(a, 0)``, ``max(-a, 0)``, or ``a`` unchanged."""

REDUCTIONS = ("sum", "mean", "max")
"""Choices of ``reduce``, the reduction over the channel axis."""

_SPATIAL_AXES = (-2, -1)


def select_sign(attr: ArrayLike, *, sign: str) -> np.ndarray:
    """Keep the part of an attribution with the chosen sign, elementwise.

    ``"negative"`` gives the magnitude of the negative part, ``max(-attr, 0)``, so that
    evidence against a class can be scaled and shown like evidence for it.

    Args:
        attr: attribution of any shape.
        sign: one of ``"absolute"`` (``|attr|``, the paper's choice for ImageNet),
            ``"positive"`` (``max(attr, 0)``), ``"negative"`` (``max(-attr, 0)``) or
            ``"all"`` (``attr`` unchanged).

    Returns:
        A float array shaped like ``attr`` (float input keeps its dtype, others become
        float64); every sign but ``"all"`` gives non-negative values.

    Raises:
        ValueError: an unknown ``sign``, or NaN or infinity in ``attr``.
        TypeError: ``attr`` does not hold real numbers, or ``sign`` is not a string.

    Examples:
        >>> import numpy as np
        >>> attr = np.array([-2.0, 0.0, 3.0])
        >>> select_sign(attr, sign="positive").tolist()
        [0.0, 0.0, 3.0]
        >>> select_sign(attr, sign="negative").tolist()
        [2.0, 0.0, 0.0]
        >>> select_sign(attr, sign="absolute").tolist()
        [2.0, 0.0, 3.0]
    """
    values = as_real_array(attr, name="attr")
    sign = check_choice(sign, SIGNS, name="sign")
    return _select_sign(values.astype(float_dtype(values)), sign)


def _select_sign(values: np.ndarray, sign: str) -> np.ndarray:
    if sign == "absolute":
        return np.abs(values)
    if sign == "positive":
        return np.maximum(values, 0)
    if sign == "negative":
        return np.maximum(-values, 0)
    return values


def grayscale(
    attr: ArrayLike,
    *,
    channel_axis: int | None = -1,
    reduce: str = "sum",
    sign: str = "absolute",
    clip_percentile: float = 99.0,
) -> np.ndarray:
    """Turn an attribution into a map in ``[0, 1]``, the paper's grey-scale pictures.

    Steps: keep the chosen sign elementwise (by default the absolute value, paper section
    3.1), reduce over the channel axis, then per map scale ``(m - min) / (cap - min)``
    and clip to ``[0, 1]``, where ``cap`` is the ``clip_percentile`` percentile of the
    map: values above it ("outliers") all become 1. This is PAIR's
    ``VisualizeImageGrayscale``, except that a constant or all-zero map gives zeros, not
    NaN. When the cap equals the minimum (a constant map, or one where fewer than 1% of
    the pixels are above the minimum) pixels above the minimum become 1 and the others 0,
    the limit of the formula.

    ``reduce="sum"`` and ``"mean"`` give the same picture (the scaling removes the factor
    ``C``); ``"max"`` keeps the strongest channel.

    Args:
        attr: attribution ``(H, W, C)`` or ``(N, H, W, C)`` (channels where
            ``channel_axis`` says), or ``(H, W)`` / ``(N, H, W)`` with
            ``channel_axis=None``.
        channel_axis: the axis holding channels, or None for a map without channels.
        reduce: how channels are combined: ``"sum"``, ``"mean"`` or ``"max"``.
        sign: ``"absolute"``, ``"positive"`` or ``"negative"`` (see :func:`select_sign`);
            use :func:`diverging` to keep both signs.
        clip_percentile: the percentile in ``(0, 100]`` at which values are capped;
            100 caps nothing.

    Returns:
        Maps in ``[0, 1]`` without the channel axis: ``(H, W)`` or ``(N, H, W)``, in the
        input's float dtype (float64 for integer input).

    Raises:
        ValueError: wrong number of dimensions, ``channel_axis`` out of range,
            ``clip_percentile`` outside ``(0, 100]``, an unknown ``reduce`` or ``sign``,
            NaN or infinity in ``attr``.
        TypeError: ``attr`` does not hold real numbers, or an option has the wrong type.

    Examples:
        >>> import numpy as np
        >>> attr = np.array([[[1.0, -1.0], [0.0, 0.0]],
        ...                  [[-3.0, 0.0], [4.0, 0.0]]])  # (H, W, C) = (2, 2, 2)
        >>> grayscale(attr, clip_percentile=100).tolist()  # |attr| summed: [[2, 0], [3, 4]]
        [[0.5, 0.0], [0.75, 1.0]]
        >>> grayscale(np.zeros((2, 2)), channel_axis=None).tolist()
        [[0.0, 0.0], [0.0, 0.0]]

    References:
        Smilkov et al. 2017, section 3.1: "Absolute value of gradients" and "Capping
        outlying values".
    """
    sign = check_choice(sign, SIGNS[:3], name="sign", hint=" (use diverging() to keep both signs)")
    reduce = check_choice(reduce, REDUCTIONS, name="reduce")
    percentile = check_percentile(clip_percentile)
    values, axis, dtype = _as_maps(attr, channel_axis)
    maps = _reduce_channels(_select_sign(values, sign), axis=axis, reduce=reduce)
    return _scale_to_unit(maps, percentile).astype(dtype)


def diverging(
    attr: ArrayLike, *, channel_axis: int | None = -1, clip_percentile: float = 99.0
) -> np.ndarray:
    """Turn a signed attribution into a map in ``[-1, 1]`` with zero kept at zero.

    Channels are summed (signed), then each map is divided by the ``clip_percentile``
    percentile of its absolute values and clipped to ``[-1, 1]``. The scaling is
    symmetric: ``diverging(-a) == -diverging(a)``, and 0 stays 0 (unlike PAIR's
    ``VisualizeImageDiverging``). When that percentile is 0 (fewer than 1% non-zero
    pixels), non-zero pixels become +1 or -1; an all-zero map gives zeros.

    Args:
        attr: attribution ``(H, W, C)`` or ``(N, H, W, C)``, or ``(H, W)`` /
            ``(N, H, W)`` with ``channel_axis=None``.
        channel_axis: the axis holding channels, or None for a map without channels.
        clip_percentile: the percentile of ``|map|`` in ``(0, 100]`` that is mapped to 1.

    Returns:
        Maps in ``[-1, 1]``, ``(H, W)`` or ``(N, H, W)``, in the input's float dtype
        (float64 for integer input). Show them with ``apply_colormap(...,
        cmap="blue_grey_red")``.

    Raises:
        ValueError: wrong number of dimensions, ``channel_axis`` out of range,
            ``clip_percentile`` outside ``(0, 100]``, NaN or infinity in ``attr``.
        TypeError: ``attr`` does not hold real numbers, or an option has the wrong type.

    Examples:
        >>> import numpy as np
        >>> attr = np.array([[2.0, -1.0], [0.0, -4.0]])
        >>> diverging(attr, channel_axis=None, clip_percentile=100).tolist()
        [[0.5, -0.25], [0.0, -1.0]]
    """
    percentile = check_percentile(clip_percentile)
    values, axis, dtype = _as_maps(attr, channel_axis)
    maps = _reduce_channels(values, axis=axis, reduce="sum")
    return _scale_symmetric(maps, percentile).astype(dtype)


def times_input(attr: ArrayLike, image: ArrayLike, *, channel_axis: int = -1) -> np.ndarray:
    """Multiply an attribution by the input, elementwise (paper section 3.1).

    Shapes must agree in one of two ways, never by numpy's silent trailing-axis
    alignment:

    * the same number of dimensions, each pair of sizes equal or one of them 1 (an
      ``(H, W, 1)`` map times an ``(H, W, 3)`` image; a batch times ``image[None]``);
    * ``attr`` has one dimension fewer than ``image``: it is a map without channels and
      is repeated along ``image``'s ``channel_axis`` (an ``(H, W)`` map times an
      ``(H, W, 3)`` image).

    The product is signed; pass it to :func:`grayscale` or :func:`diverging` to show it.
    Use the image the model saw (e.g. ImageNet-normalised) or the raw one, as you mean.

    Args:
        attr: attribution.
        image: the input it explains.
        channel_axis: ``image``'s channel axis, used only when ``attr`` has no channel
            axis.

    Returns:
        ``attr * image``, float32 when both are float32 or narrower, else float64,
        shaped like the broadcast of the two.

    Raises:
        ValueError: shapes that do not agree as above, ``channel_axis`` out of range,
            NaN or infinity in either array, or a product too large for the dtype.
        TypeError: an array does not hold real numbers, or ``channel_axis`` is not an int.

    Examples:
        >>> import numpy as np
        >>> attr = np.array([[1.0, -2.0]])                       # (H, W) = (1, 2)
        >>> image = np.array([[[1.0, 2.0, 3.0], [0.5, 0.0, 1.0]]])  # (1, 2, 3)
        >>> times_input(attr, image).tolist()
        [[[1.0, 2.0, 3.0], [-1.0, -0.0, -2.0]]]

    References:
        Smilkov et al. 2017, section 3.1: "Multiplying maps with the input images".
    """
    attr_values = as_real_array(attr, name="attr")
    image_values = as_real_array(image, name="image")
    given_attr_shape = attr_values.shape
    if attr_values.ndim == image_values.ndim - 1:
        axis = channel_axis_index(channel_axis, image_values.ndim)
        attr_values = np.expand_dims(attr_values, axis)
    _check_broadcastable(attr_values.shape, image_values.shape, given_attr_shape)
    dtype = np.result_type(float_dtype(attr_values), float_dtype(image_values), np.float32)
    with np.errstate(over="ignore"):
        product = attr_values.astype(dtype) * image_values.astype(dtype)
    if not np.isfinite(product).all():
        raise ValueError(
            f"expected attr * image within the range of {dtype}, got infinity "
            "(rescale attr or image, or pass float64 arrays)"
        )
    return product


def _check_broadcastable(
    attr_shape: tuple[int, ...], image_shape: tuple[int, ...], given_attr_shape: tuple[int, ...]
) -> None:
    agree = len(attr_shape) == len(image_shape) and all(
        a == b or a == 1 or b == 1 for a, b in zip(attr_shape, image_shape, strict=True)
    )
    if not agree:
        raise ValueError(
            "expected attr and image shapes that are equal or differ only by sizes of 1 "
            "(or attr without image's channel axis), got "
            f"{given_attr_shape} and {image_shape}"
        )


def difference_map(
    map_a: ArrayLike,
    map_b: ArrayLike,
    *,
    channel_axis: int | None = -1,
    reduce: str = "sum",
    clip_percentile: float = 99.0,
) -> np.ndarray:
    """The signed difference of two maps each scaled to ``[0, 1]`` (paper section 3.3).

    Both maps go through :func:`grayscale` (absolute value, channel reduction, capping
    at ``clip_percentile``) and the result is ``scaled_a - scaled_b``: near +1 where only
    ``map_a`` is strong, near -1 where only ``map_b`` is, 0 where they agree.

    Args:
        map_a: attribution for the first class, shaped as :func:`grayscale` accepts.
        map_b: attribution for the second class, the same shape as ``map_a``.
        channel_axis: as in :func:`grayscale`.
        reduce: as in :func:`grayscale`.
        clip_percentile: as in :func:`grayscale`.

    Returns:
        Maps in ``[-1, 1]``, ``(H, W)`` or ``(N, H, W)``.

    Raises:
        ValueError: the two maps differ in shape, or any error of :func:`grayscale`.
        TypeError: as in :func:`grayscale`.

    Examples:
        >>> import numpy as np
        >>> map_a = np.array([[0.0, 2.0], [4.0, 0.0]])
        >>> map_b = np.array([[0.0, 0.0], [1.0, 2.0]])
        >>> difference_map(map_a, map_b, channel_axis=None, clip_percentile=100).tolist()
        [[0.0, 0.5], [0.5, -1.0]]
    """
    shape_a = as_real_array(map_a, name="map_a").shape
    shape_b = as_real_array(map_b, name="map_b").shape
    if shape_a != shape_b:
        raise ValueError(f"expected map_a and map_b of the same shape, got {shape_a} and {shape_b}")
    scaled_a = grayscale(
        map_a, channel_axis=channel_axis, reduce=reduce, clip_percentile=clip_percentile
    )
    scaled_b = grayscale(
        map_b, channel_axis=channel_axis, reduce=reduce, clip_percentile=clip_percentile
    )
    return scaled_a - scaled_b


def discriminativity(
    map_a: ArrayLike,
    map_b: ArrayLike,
    *,
    channel_axis: int | None = -1,
    reduce: str = "sum",
    clip_percentile: float = 99.0,
) -> np.ndarray:
    """The paper's discriminativity picture: :func:`difference_map` in blue-grey-red.

    Red where only ``map_a`` (the first class) is strong, blue where only ``map_b`` is,
    grey where they agree.

    Args:
        map_a: attribution for the first class.
        map_b: attribution for the second class, the same shape.
        channel_axis: as in :func:`grayscale`.
        reduce: as in :func:`grayscale`.
        clip_percentile: as in :func:`grayscale`.

    Returns:
        uint8 RGB, ``(H, W, 3)`` or ``(N, H, W, 3)``.

    Raises:
        ValueError: as in :func:`difference_map`.
        TypeError: as in :func:`difference_map`.

    Examples:
        >>> import numpy as np
        >>> map_a = np.array([[1.0, 0.0]])
        >>> map_b = np.array([[0.0, 1.0]])
        >>> discriminativity(map_a, map_b, channel_axis=None).tolist()
        [[[255, 0, 0], [0, 0, 255]]]

    References:
        Smilkov et al. 2017, section 3.3 ("discriminativity"): scale both maps to
        [0, 1], take the difference, show it on a blue-grey-red map.
    """
    difference = difference_map(
        map_a, map_b, channel_axis=channel_axis, reduce=reduce, clip_percentile=clip_percentile
    )
    return _colour_any_shape(difference, cmap="blue_grey_red")


def _as_maps(attr: ArrayLike, channel_axis: int | None) -> tuple[np.ndarray, int | None, np.dtype]:
    """Validate a (batch of) map(s).

    Returns it as float64 divided by each map's largest magnitude (which no result
    depends on, and which keeps channel sums of huge values finite), its channel axis
    index (None without one) and the dtype results are returned in.
    """
    values = as_real_array(attr, name="attr")
    if channel_axis is None:
        check_ndim(
            values, allowed=(2, 3), name="attr", layout="(H, W) or (N, H, W) with channel_axis=None"
        )
        axis, batched = None, values.ndim == 3
    else:
        check_ndim(
            values,
            allowed=(3, 4),
            name="attr",
            layout=f"with channels at channel_axis={channel_axis!r} (pass "
            "channel_axis=None for a map without channels)",
        )
        axis, batched = channel_axis_index(channel_axis, values.ndim), values.ndim == 4
    per_map_axes = tuple(range(1 if batched else 0, values.ndim))
    return divide_by_peak(values, axis=per_map_axes), axis, float_dtype(values)


def _reduce_channels(values: np.ndarray, *, axis: int | None, reduce: str) -> np.ndarray:
    if axis is None:
        return values
    if reduce == "mean":
        return np.mean(values, axis=axis)
    if reduce == "max":
        return np.max(values, axis=axis)
    return np.sum(values, axis=axis)


def _scale_to_unit(maps: np.ndarray, percentile: float) -> np.ndarray:
    """Per map: ``clip((m - min) / (cap - min), 0, 1)`` with ``cap`` the percentile."""
    maps = divide_by_peak(maps, axis=_SPATIAL_AXES)
    low = np.min(maps, axis=_SPATIAL_AXES, keepdims=True)
    cap = np.percentile(maps, percentile, axis=_SPATIAL_AXES, keepdims=True)
    span = cap - low
    flat = span <= 0
    with np.errstate(over="ignore"):  # a tiny span sends outliers to inf, clipped to 1
        scaled = (maps - low) / np.where(flat, 1.0, span)
    scaled = np.where(flat, (maps > low).astype(np.float64), scaled)
    return np.clip(scaled, 0.0, 1.0)


def _scale_symmetric(maps: np.ndarray, percentile: float) -> np.ndarray:
    """Per map: ``clip(m / cap, -1, 1)`` with ``cap`` the percentile of ``|m|``."""
    maps = divide_by_peak(maps, axis=_SPATIAL_AXES)
    cap = np.percentile(np.abs(maps), percentile, axis=_SPATIAL_AXES, keepdims=True)
    flat = cap <= 0
    with np.errstate(over="ignore"):  # a tiny cap sends outliers to +-inf, clipped to +-1
        scaled = np.where(flat, np.sign(maps), maps / np.where(flat, 1.0, cap))
    return np.clip(scaled, -1.0, 1.0)
