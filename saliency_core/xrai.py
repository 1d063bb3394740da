"""XRAI (Kapishnikov et al. 2019): attributions of regions, not pixels.

The image is over-segmented; XRAI then grows a saliency region greedily, at each step
adding the segment whose not-yet-covered pixels have the highest attribution density (the
mean base attribution over them). Every pixel gets the density with which its segment was
added, so the map's values rank the regions: the higher the value, the earlier the region.
Pixels no segment covers get the density of all of them together.

The base attribution is any callback ``fn(x, target) -> maps``; the paper's is integrated
gradients from a black and a white baseline, averaged:
:func:`black_white_integrated_gradients` bound with :func:`functools.partial`::

    from functools import partial
    maps = xrai(partial(black_white_integrated_gradients, grad_fn), x, target)

The default segmentation is PAIR's (the authors' library, ``saliency.core.XRAI``):
Felzenszwalb and Huttenlocher's graph segmentation of the image rescaled to [-1, 1] and
resized to 224 x 224, at scales 50, 100, 150, 250, 500 and 1200 (sigma 0.8, segments of at
least 150 pixels), each segment resized back and dilated by a disk of radius 5. It runs
through scikit-image, an optional dependency imported only then. The greedy ranking is
PAIR's too, "full" (densities of what each segment would add, recomputed as the region
grows) and "fast" (segments sorted once by their own density), with the same tie-breaking
(the first segment in the list wins), so on the same base attribution and segments the map
equals PAIR's.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np

from ._checks import (
    as_input_batch,
    as_targets,
    check_callable,
    check_choice,
    check_non_negative,
    check_positive_int,
)
from ._streaming import call_chunk, cast_result, chunk_bounds
from .gradients import _as_baseline, integrated_gradients
from .rise import _image_layout
from .types import AttributionFn, GradientFn

__all__ = ["ALGORITHMS", "FELZENSZWALB_SCALES", "black_white_integrated_gradients", "xrai"]

#: The greedy rankings: "full" recomputes the density of what each segment adds as the
#: region grows (the paper's algorithm); "fast" sorts the segments once by their own density.
ALGORITHMS = ("full", "fast")

#: The Felzenszwalb scales of the default segmentation (PAIR's).
FELZENSZWALB_SCALES = (50, 100, 150, 250, 500, 1200)

_SKIMAGE_MISSING = (
    "xrai: the default segmentation (segments=None) needs scikit-image; install it with "
    "pip install 'saliency-toolkit[xrai]', or pass segments="
)


def _skimage():  # noqa: ANN202 - scikit-image is optional and untyped
    """scikit-image's ``felzenszwalb`` and ``resize``, or one ImportError naming the extra."""
    try:
        from skimage.segmentation import felzenszwalb
        from skimage.transform import resize
    except ImportError:
        raise ImportError(_SKIMAGE_MISSING) from None
    return felzenszwalb, resize


# --------------------------------------------------------------------------- checks


def _check_int(value: object, name: str, *, minimum: int) -> int:
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int >= {minimum}, got {value!r}")
    if int(value) < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return int(value)


def _check_fraction(value: object, name: str) -> float:
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a number in [0, 1], got {value!r}")
    number = float(value)
    if not 0 <= number <= 1:
        raise ValueError(f"{name}: expected a number in [0, 1], got {value}")
    return number


def _check_scales(scales: object) -> tuple[float, ...]:
    if isinstance(scales, numbers.Real) and not isinstance(scales, bool | np.bool_):
        scales = (scales,)
    if not isinstance(scales, Sequence | np.ndarray) or isinstance(scales, str):
        raise TypeError(f"scales: expected a sequence of positive numbers, got {scales!r}")
    values = tuple(check_non_negative(s, "scales") for s in scales)
    if not values or min(values) <= 0:
        raise ValueError(f"scales: expected one or more positive numbers, got {scales!r}")
    return values


def _check_size(size: object) -> tuple[int, int] | None:
    if size is None:
        return None
    if not isinstance(size, tuple | list) or len(size) != 2:
        raise TypeError(
            f"segmentation_size: expected None or a pair (rows, columns), got {size!r}"
        )
    return (check_positive_int(size[0], "segmentation_size"),
            check_positive_int(size[1], "segmentation_size"))


def _as_masks(segments: object, n_inputs: int, image: tuple[int, int]) -> list[np.ndarray]:
    """Per input, the ``(K, H * W)`` boolean masks of ``segments`` (checked)."""
    expected = (f"one list of boolean (H, W) = {image} masks per input ({n_inputs} "
                "lists), or a boolean (K, H, W) array per input")
    if isinstance(segments, np.ndarray) and segments.ndim == 4:
        segments = list(segments)
    if not isinstance(segments, Sequence) or isinstance(segments, str):
        raise TypeError(f"segments: expected {expected}, got {type(segments).__name__}")
    if len(segments) != n_inputs:
        raise ValueError(f"segments: expected {expected}, got {len(segments)} lists")
    result = []
    for i, per_input in enumerate(segments):
        where = f"segments[{i}]"
        if isinstance(per_input, np.ndarray):
            if per_input.ndim == 2:
                raise ValueError(
                    f"{where}: expected a list of (H, W) masks or a (K, H, W) array, got one "
                    f"mask of shape {per_input.shape}; wrap it in a list"
                )
            masks = list(per_input)
        elif isinstance(per_input, Sequence) and not isinstance(per_input, str):
            masks = list(per_input)
        else:
            raise TypeError(f"{where}: expected {expected}, got {type(per_input).__name__}")
        if not masks:
            raise ValueError(f"{where}: expected at least one mask, got none")
        for k, mask in enumerate(masks):
            if not isinstance(mask, np.ndarray):
                raise TypeError(
                    f"{where}[{k}]: expected a boolean numpy array, got {type(mask).__name__}"
                )
            if mask.dtype != np.bool_:
                raise TypeError(
                    f"{where}[{k}]: expected a boolean mask, got dtype {mask.dtype}; compare "
                    "a label image with each label (labels == k) to make masks"
                )
            if mask.shape != image:
                raise ValueError(
                    f"{where}[{k}]: expected a mask of the image's shape {image}, got shape "
                    f"{mask.shape}"
                )
        result.append(np.stack(masks).reshape(len(masks), -1))
    return result


# --------------------------------------------------------------------------- segmentation


def _disk_offsets(radius: int) -> list[tuple[int, int]]:
    """The offsets of a disk footprint: ``dy**2 + dx**2 <= radius**2``."""
    span = np.arange(-radius, radius + 1)
    return [(int(dy), int(dx)) for dy in span for dx in span if dy * dy + dx * dx <= radius**2]


def _label_masks(labels: np.ndarray, radius: int) -> np.ndarray:
    """``(K, H * W)`` masks of the labels present, in label order, each dilated by a disk.

    A pixel is in the dilated mask of label ``l`` when a pixel of label ``l`` lies within the
    disk around it (pixels outside the image count for nothing): what a grey dilation of
    each boolean mask with that footprint gives.
    """
    present, index = np.unique(labels, return_inverse=True)
    index = index.reshape(labels.shape)
    height, width = labels.shape
    masks = np.zeros((len(present), height, width), dtype=bool)
    rows, columns = np.indices((height, width))
    for dy, dx in _disk_offsets(radius) if radius > 0 else [(0, 0)]:
        # destination pixel (r, c) sees source pixel (r + dy, c + dx)
        r0, r1 = max(0, -dy), min(height, height - dy)
        c0, c1 = max(0, -dx), min(width, width - dx)
        if r0 >= r1 or c0 >= c1:
            continue
        source = index[r0 + dy:r1 + dy, c0 + dx:c1 + dx]
        masks[source, rows[r0:r1, c0:c1], columns[r0:r1, c0:c1]] = True
    return masks.reshape(len(present), -1)


def _felzenszwalb_masks(
    image: np.ndarray,
    *,
    scales: tuple[float, ...],
    sigma: float,
    min_size: int,
    dilation_radius: int,
    segmentation_size: tuple[int, int] | None,
) -> np.ndarray:
    """The default over-segmentation of one ``(H, W[, C])`` image: ``(K, H * W)`` masks."""
    felzenszwalb, resize = _skimage()
    image = image.astype(np.float64)
    low, high = image.min(), image.max()
    # the image rescaled to [-1, 1] (a constant image: all -1)
    image = (image - low) / (high - low) * 2 - 1 if high > low else np.full_like(image, -1.0)
    shape = image.shape[:2]
    if segmentation_size is not None:
        image = resize(image, segmentation_size, order=3, mode="constant",
                       preserve_range=True, anti_aliasing=True)
    channel_axis = -1 if image.ndim == 3 else None
    masks = []
    for scale in scales:
        labels = felzenszwalb(image, scale=scale, sigma=sigma, min_size=min_size,
                              channel_axis=channel_axis)
        if segmentation_size is not None:
            labels = resize(labels, shape, order=0, preserve_range=True, mode="constant",
                            anti_aliasing=False).astype(int)
        masks.append(_label_masks(labels, dilation_radius))
    return np.concatenate(masks)


# --------------------------------------------------------------------------- ranking


def _density(attribution: np.ndarray, mask: np.ndarray) -> float:
    """Mean attribution over ``mask``: what PAIR's gain computes, the same way."""
    return float(attribution[mask].mean()) if mask.any() else -np.inf


def _rank_full(attribution: np.ndarray, masks: np.ndarray, *, area_threshold: float,
               min_pixel_diff: int) -> np.ndarray:
    """XRAI's greedy region growing; the densities of untouched segments are kept."""
    counts = masks.sum(axis=1)
    gains = np.array([_density(attribution, mask) for mask in masks])
    alive = np.ones(len(masks), dtype=bool)
    covered = np.zeros(attribution.shape, dtype=bool)
    result = np.full(attribution.shape, -np.inf)
    area = 0.0
    while area <= area_threshold:
        alive &= counts >= min_pixel_diff  # segments that add too little are dropped for good
        candidates = np.flatnonzero(alive)
        if not len(candidates):
            break
        best = candidates[np.argmax(gains[candidates])]  # the first of equal densities
        added = masks[best] & ~covered
        result[added] = gains[best]
        covered |= masks[best]
        area = float(covered.mean())
        alive[best] = False
        # only segments that overlap what was just added change
        for k in np.flatnonzero(alive & masks[:, added].any(axis=1)):
            remaining = masks[k] & ~covered
            counts[k] = remaining.sum()
            gains[k] = _density(attribution, remaining)
    return result


def _rank_fast(attribution: np.ndarray, masks: np.ndarray, *, min_pixel_diff: int
               ) -> np.ndarray:
    """The segments in order of their own density, each adding what is not yet covered."""
    gains = np.array([_density(attribution, mask) for mask in masks])
    covered = np.zeros(attribution.shape, dtype=bool)
    result = np.full(attribution.shape, -np.inf)
    for k in np.argsort(-gains, kind="stable"):
        added = masks[k] & ~covered
        if added.sum() < min_pixel_diff:
            continue
        result[added] = _density(attribution, added)
        covered |= masks[k]
    return result


# --------------------------------------------------------------------------- methods


def xrai(
    fn: AttributionFn,
    x: np.ndarray,
    target: int | np.ndarray | None = None,
    *,
    segments: Sequence[Sequence[np.ndarray]] | None = None,
    channel_axis: int | None = -1,
    algorithm: str = "full",
    area_threshold: float = 1.0,
    min_pixel_diff: int = 50,
    scales: Sequence[float] = FELZENSZWALB_SCALES,
    sigma: float = 0.8,
    min_size: int = 150,
    dilation_radius: int = 5,
    segmentation_size: tuple[int, int] | None = (224, 224),
    batch_size: int = 64,
) -> np.ndarray:
    """XRAI maps (Kapishnikov et al. 2019): segments ranked by their attribution density.

    The base attribution ``fn(x, target)`` (maps shaped like ``x``, reduced over channels
    by their maximum as in PAIR, or already ``(k, H, W)``) is turned into regions: starting
    from nothing, the segment whose not-yet-covered pixels have the highest mean
    attribution is added, until the covered area exceeds ``area_threshold``; those pixels
    get that mean. Pixels left uncovered get the mean attribution over all of them.

    Args:
        fn: the base attribution, an attribution callback; the paper's is
            ``partial(black_white_integrated_gradients, grad_fn)``.
        x: a batch of images, ``(N, H, W, C)`` (``channel_axis=-1``), ``(N, C, H, W)``
            (``channel_axis=1``) or ``(N, H, W)`` (``channel_axis=None``).
        target: None, one output index for all inputs, or one per input ``(N,)``.
        segments: per input, a list of boolean ``(H, W)`` masks (or a boolean
            ``(K, H, W)`` array), in the order that breaks ties (the first wins); None for
            the default Felzenszwalb segmentation (needs scikit-image).
        channel_axis: where ``x`` has its channels; None for ``(N, H, W)``.
        algorithm: ``"full"`` (the paper's: densities of what each segment adds, updated
            as the region grows) or ``"fast"`` (segments sorted once by their own density).
        area_threshold: ``"full"`` stops once the region covers more than this fraction of
            the image (the rest is one last region); 1.0 ranks everything. ``"fast"`` always
            ranks everything.
        min_pixel_diff: a segment adding fewer new pixels than this is dropped.
        scales: Felzenszwalb's scale parameters of the default segmentation, one
            segmentation each.
        sigma: the Gaussian smoothing of the default segmentation.
        min_size: the smallest segment of the default segmentation, in pixels of the
            segmented (resized) image.
        dilation_radius: each default segment is dilated by a disk of this radius (0: not).
        segmentation_size: the size the image is resized to for segmenting (the segments
            are resized back), or None to segment at the image's own size.
        batch_size: the most inputs sent to ``fn`` in one call.

    Returns:
        ``(N, H, W)`` maps in ``x``'s float dtype; higher values are regions ranked
        earlier.

    Raises:
        ValueError, TypeError: bad input, raised before ``fn`` is called; maps of ``fn``
            of the wrong shape or not finite.
        ImportError: ``segments=None`` without scikit-image (before ``fn`` is called).

    Examples:
        Two segments of a 2 x 4 image: the right half has the denser attribution.

        >>> attribution = lambda x, target: np.array([[[1.0, 0.0, 2.0, 2.0],
        ...                                            [0.0, 1.0, 2.0, 2.0]]])
        >>> left = np.array([[True, True, False, False]] * 2)
        >>> xrai(attribution, np.zeros((1, 2, 4)), segments=[[left, ~left]],
        ...      channel_axis=None, min_pixel_diff=1)
        array([[[0.5, 0.5, 2. , 2. ],
                [0.5, 0.5, 2. , 2. ]]])

    References:
        Kapishnikov, Bolukbasi, Viegas and Terry, "XRAI: Better Attributions Through
        Regions", ICCV 2019 (arXiv 1906.02825); the segmentation: Felzenszwalb and
        Huttenlocher, "Efficient Graph-Based Image Segmentation", IJCV 2004.
    """
    check_callable(fn)
    x = as_input_batch(x)
    targets = as_targets(target, x.shape[0])
    axis, image = _image_layout(x, channel_axis)
    algorithm = check_choice(algorithm, "algorithm", ALGORITHMS)
    area_threshold = _check_fraction(area_threshold, "area_threshold")
    if algorithm == "fast" and area_threshold != 1.0:
        raise ValueError(
            f"area_threshold: the fast algorithm always ranks the whole image, so it takes "
            f"only 1.0, got {area_threshold}; use algorithm='full'"
        )
    min_pixel_diff = check_positive_int(min_pixel_diff, "min_pixel_diff")
    batch_size = check_positive_int(batch_size, "batch_size")
    if segments is None:
        checked_scales = _check_scales(scales)
        checked_sigma = check_non_negative(sigma, "sigma")
        checked_min_size = _check_int(min_size, "min_size", minimum=0)
        radius = _check_int(dilation_radius, "dilation_radius", minimum=0)
        size = _check_size(segmentation_size)
        _skimage()  # a missing scikit-image is reported before any callback call
        images = x if axis is None else np.moveaxis(x, axis, -1)
        masks = [
            _felzenszwalb_masks(picture, scales=checked_scales, sigma=checked_sigma,
                                min_size=checked_min_size, dilation_radius=radius,
                                segmentation_size=size)
            for picture in images
        ]
    else:
        masks = _as_masks(segments, x.shape[0], image)

    expected = (x.shape[1:], image)
    trailing: tuple[int, ...] | None = None
    result = np.empty((x.shape[0], *image))
    for start, stop in chunk_bounds(x.shape[0], batch_size):
        chunk_targets = None if targets is None else targets[start:stop]
        maps = call_chunk(fn, x[start:stop], chunk_targets, start=start, stop=stop,
                          expected_trailing=trailing)
        if trailing is None and maps.shape[1:] not in expected:
            raise ValueError(
                f"fn call for rows {start}..{stop - 1}: expected maps shaped like the inputs "
                f"{x.shape[1:]} or like the image {image}, got shape {maps.shape[1:]}"
            )
        trailing = maps.shape[1:]
        maps = maps.astype(np.float64)
        if maps.shape[1:] != image:  # PAIR's aggregation: the largest over the channels
            maps = maps.max(axis=axis)
        for row, attribution in enumerate(maps.reshape(len(maps), -1)):
            i = start + row
            if algorithm == "full":
                ranked = _rank_full(attribution, masks[i], area_threshold=area_threshold,
                                    min_pixel_diff=min_pixel_diff)
            else:
                ranked = _rank_fast(attribution, masks[i], min_pixel_diff=min_pixel_diff)
            uncovered = ranked == -np.inf
            if uncovered.any():
                ranked[uncovered] = attribution[uncovered].mean()
            result[i] = ranked.reshape(image)
    return cast_result(result, x.dtype)


def black_white_integrated_gradients(
    fn: GradientFn,
    x: np.ndarray,
    target: int | np.ndarray | None = None,
    *,
    baselines: Sequence[float | np.ndarray] | None = None,
    steps: int = 100,
    batch_size: int = 64,
) -> np.ndarray:
    """Integrated gradients averaged over a black and a white baseline: XRAI's base.

    The paper's base attribution for XRAI. ``baselines=None`` takes, for each input, the
    constant images of its own minimum and its maximum (PAIR's choice); any list of
    baselines (numbers, or arrays as :func:`integrated_gradients` takes them) may be given
    instead. Integrated gradients here use the midpoint rule with ``steps`` points; PAIR's
    uses ``steps`` points from the baseline to the input, both ends included, so the two
    differ by the quadrature error.

    Args:
        fn: a gradient callback.
        x: a batch ``(N, *input_shape)``.
        target: None, one output index for all inputs, or one per input ``(N,)``.
        baselines: None (each input's minimum and maximum), or a non-empty list.
        steps: path points per baseline (PAIR's XRAI uses 100).
        batch_size: the most path points sent to ``fn`` in one call.

    Returns:
        An array shaped like ``x``, in ``x``'s float dtype.

    Examples:
        For ``S(x) = sum(x**2)`` the attributions from baseline ``b`` are ``x**2 - b**2``:

        >>> square = lambda x, target: 2 * x
        >>> black_white_integrated_gradients(square, np.array([[0.0, 1.0, 3.0]]), steps=4)
        array([[-4.5, -3.5,  4.5]])
    """
    check_callable(fn)
    x = as_input_batch(x)
    as_targets(target, x.shape[0])
    steps = check_positive_int(steps, "steps")
    check_positive_int(batch_size, "batch_size")
    if baselines is None:
        flat = x.reshape(x.shape[0], -1)
        spread = (-1,) + (1,) * (x.ndim - 1)
        bases = [flat.min(axis=1).reshape(spread), flat.max(axis=1).reshape(spread)]
    else:
        if not isinstance(baselines, Sequence) or isinstance(baselines, str):
            raise TypeError(
                f"baselines: expected None or a list of baselines (numbers or arrays), got "
                f"{type(baselines).__name__}"
            )
        if not baselines:
            raise ValueError("baselines: expected at least one baseline, got an empty list")
        bases = [_as_baseline(baseline, x) for baseline in baselines]
        for base in bases:
            with np.errstate(over="ignore"):
                if not np.isfinite(x - base).all():
                    raise ValueError(
                        f"baselines: expected x - baseline within the range of x's dtype "
                        f"{x.dtype}, got an overflow; pass float64 inputs"
                    )
    total = np.zeros(x.shape)
    for base in bases:
        total += integrated_gradients(fn, x, target, baseline=base, steps=steps,
                                      batch_size=batch_size)
    return cast_result(total / len(bases), x.dtype)
