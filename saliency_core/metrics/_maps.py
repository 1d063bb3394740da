"""Input checks shared by the metrics that read saliency maps and ground-truth masks.

Maps are a batch ``(N, ...)`` of real numbers, any trailing shape; masks are boolean and
shaped exactly like the maps. Each check raises ``TypeError`` (types, dtypes) or
``ValueError`` (values, shapes) with what was expected and what came.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._checks import _describe_shape

__all__ = ["as_maps", "as_masks"]


def as_maps(maps: object, *, name: str = "maps") -> np.ndarray:
    """Return ``maps`` as a float64 array ``(N, ...)``, refusing what no metric can read.

    Integer and float maps of any precision are accepted and become float64 (the metrics sum
    over many elements, so they compute in double precision). A float64 array is returned
    as it is, without a copy.

    Args:
        maps: a numpy array ``(N, ...)``: one map per input, at least one element each.
        name: the argument's name in error messages.

    Returns:
        A float64 array of the same shape.

    Raises:
        TypeError: ``maps`` is not a numpy array, or its dtype is boolean, complex, object or
            any other non-real type.
        ValueError: fewer than 2 dimensions, an axis of length 0, or NaN or inf values.

    Examples:
        >>> as_maps(np.array([[1, 2], [3, 4]])).dtype
        dtype('float64')
    """
    if not isinstance(maps, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array, got {type(maps).__name__}")
    if maps.dtype.kind not in "iuf":
        raise TypeError(
            f"{name}: expected a real numeric array (float or integer), got dtype {maps.dtype}"
        )
    if maps.ndim < 2:
        raise ValueError(
            f"{name}: expected a batch of maps of shape (N, ...) with at least 2 dimensions, "
            f"got shape {_describe_shape(maps.shape)}; add a batch axis with {name}[None]"
        )
    if 0 in maps.shape:
        raise ValueError(
            f"{name}: expected at least one map and one element per map, got shape "
            f"{_describe_shape(maps.shape)}"
        )
    maps = maps.astype(np.float64, copy=False)
    finite = np.isfinite(maps)
    if not finite.all():
        bad = np.flatnonzero(~finite.reshape(maps.shape[0], -1).all(axis=1))
        raise ValueError(
            f"{name}: expected finite values, got NaN or inf in map(s) {bad[:10].tolist()}"
        )
    return maps


def as_masks(
    masks: object, maps_shape: Sequence[int], *, name: str = "masks"
) -> np.ndarray:
    """Return ``masks`` after checking it is a boolean array shaped exactly like the maps.

    Args:
        masks: a boolean numpy array, one mask per map, ``True`` inside the ground truth.
        maps_shape: the shape of the (checked) maps.
        name: the argument's name in error messages.

    Returns:
        ``masks`` itself.

    Raises:
        TypeError: ``masks`` is not a numpy array, or not of boolean dtype.
        ValueError: another number of masks than of maps, or another shape per mask.

    Examples:
        >>> as_masks(np.array([[True, False]]), (1, 2))
        array([[ True, False]])
    """
    maps_shape = tuple(int(s) for s in maps_shape)
    if not isinstance(masks, np.ndarray):
        raise TypeError(f"{name}: expected a boolean numpy array, got {type(masks).__name__}")
    if masks.dtype != np.bool_:
        raise TypeError(
            f"{name}: expected a boolean array, got dtype {masks.dtype}; "
            f"convert 0/1 masks with {name}.astype(bool)"
        )
    if masks.ndim == 0 or masks.shape[0] != maps_shape[0]:
        count = "no batch axis" if masks.ndim == 0 else f"{masks.shape[0]}"
        raise ValueError(
            f"{name}: expected {maps_shape[0]} masks (one per map), got {count} "
            f"(shape {_describe_shape(masks.shape)})"
        )
    if masks.shape != maps_shape:
        raise ValueError(
            f"{name}: expected the maps' shape {_describe_shape(maps_shape)}, "
            f"got shape {_describe_shape(masks.shape)}"
        )
    return masks
