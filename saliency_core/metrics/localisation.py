"""Localisation metrics: does a saliency map put its relevance on the ground-truth object?

The mask metrics compare each map with a boolean mask of exactly the map's shape (``True``
on the object), over all the map's elements; the map's values are used as given (signed),
as Quantus 0.6 does by default, so pass ``np.abs(maps)`` or ``np.maximum(maps, 0)`` to score
magnitudes or positive relevance only. Each returns one float64 value per map, never NaN:
an empty mask scores 0 (Quantus gives NaN there).

- :func:`pointing_game`: 1 if the map's maximum lies in the mask (Zhang et al. 2018).
- :func:`relevance_mass_accuracy`: the share of the map's relevance inside the mask
  (Arras et al. 2022).
- :func:`relevance_rank_accuracy`: the share of the ``K = |mask|`` highest-ranked elements
  inside the mask (Arras et al. 2022).
- :func:`top_k_intersection`: the share of the ``k`` highest-ranked elements inside the mask
  (Theiner et al. 2021).

Ranks order elements by decreasing value; equal values are ranked by their position in
the flattened map, first first (a stable order). Quantus ranks with numpy's default,
unstable ``argsort``, so on tied values the two may pick different elements; without ties
the numbers are the same.

Without a mask, :func:`bounding_box` localises the object as the CAM paper does (Zhou et al.
2016): the bounding box of the largest 8-connected region of pixels at or above a fraction
of the map's maximum; :func:`box_iou` compares such boxes with ground-truth boxes.
"""

from __future__ import annotations

import numbers

import numpy as np

from .._checks import _describe_shape, check_bool, check_positive_int
from ._maps import as_maps, as_masks

__all__ = [
    "bounding_box",
    "box_iou",
    "pointing_game",
    "relevance_mass_accuracy",
    "relevance_rank_accuracy",
    "top_k_intersection",
]


def _flat_pair(maps: object, masks: object) -> tuple[np.ndarray, np.ndarray]:
    array = as_maps(maps)
    masks = as_masks(masks, array.shape)
    n = array.shape[0]
    return array.reshape(n, -1), masks.reshape(n, -1)


def _share(counts: np.ndarray, totals: np.ndarray) -> np.ndarray:
    counts = counts.astype(np.float64)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals != 0)


def _top_ranked(flat: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Boolean (N, F): the ``counts[i]`` highest-ranked elements of each row ``flat[i]``.

    Ranks are by decreasing value, equal values by position (first first): the elements
    strictly above the row's ``counts[i]``-th largest value, then as many of the elements
    equal to it as are still needed, in order. O(F log F) per row for one sort of values.
    """
    n, n_features = flat.shape
    chosen = counts > 0
    kth = np.sort(flat, axis=1)[np.arange(n), n_features - np.maximum(counts, 1)]
    greater = flat > kth[:, None]
    equal = flat == kth[:, None]
    still_needed = counts - greater.sum(axis=1)
    ties_taken = equal & (np.cumsum(equal, axis=1, dtype=np.int64) <= still_needed[:, None])
    return (greater | ties_taken) & chosen[:, None]


def pointing_game(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """1.0 where the map's maximum lies inside the mask, else 0.0.

    Every position holding the maximum value counts: a map hits when any of its maxima lies
    in the mask. This is Quantus 0.6's rule (``quantus.PointingGame``), and unlike picking
    the first ``argmax`` it does not depend on the order of the elements. So a constant map
    (all-zero included) points everywhere and hits any non-empty mask; an empty mask is
    never hit (Quantus gives NaN).

    Args:
        maps: a numpy array ``(N, ...)``, one map per input.
        masks: a boolean array shaped like ``maps``, ``True`` on the object.

    Returns:
        A float64 array ``(N,)`` of 0.0 and 1.0.

    Raises:
        TypeError: ``maps`` is not a real numeric numpy array, ``masks`` not a boolean one.
        ValueError: bad map shapes or NaN/inf, or masks of another shape than the maps.

    Examples:
        >>> maps = np.array([[[0.1, 0.9], [0.3, 0.2]], [[0.1, 0.9], [0.3, 0.2]]])
        >>> masks = np.array([[[False, True], [False, False]], [[True, False], [True, True]]])
        >>> pointing_game(maps, masks)
        array([1., 0.])

    References:
        Zhang, Bargal, Lin, Brandt, Shen and Sclaroff, "Top-down neural attention by
        excitation backprop", IJCV 126 (2018): 1084-1102.
    """
    flat, inside = _flat_pair(maps, masks)
    maxima = flat == flat.max(axis=1, keepdims=True)
    return (maxima & inside).any(axis=1).astype(np.float64)


def relevance_mass_accuracy(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """The share of each map's relevance that lies inside the mask.

    ``sum(map[mask]) / sum(map)``, with the map's values as given, as in Quantus 0.6
    (``quantus.RelevanceMassAccuracy``, whose default ``normalise`` divides by a positive
    constant and cancels). For a non-negative map it lies in ``[0, 1]``, 1 when all
    relevance is inside; a signed map can leave that range, so pass ``np.maximum(maps, 0)``
    for the positive relevance Arras et al. score. A map whose values sum to 0 (an all-zero
    map) has no relevance to place and scores 0, as does an empty mask (Quantus gives NaN
    in both cases).

    Args:
        maps: a numpy array ``(N, ...)``, one map per input.
        masks: a boolean array shaped like ``maps``, ``True`` on the object.

    Returns:
        A float64 array ``(N,)``.

    Raises:
        TypeError: ``maps`` is not a real numeric numpy array, ``masks`` not a boolean one.
        ValueError: bad map shapes or NaN/inf, or masks of another shape than the maps.

    Examples:
        >>> maps = np.array([[3.0, 1.0, 0.0, 0.0]])
        >>> relevance_mass_accuracy(maps, np.array([[True, False, False, True]]))
        array([0.75])

    References:
        Arras, Osman and Samek, "CLEVR-XAI: a benchmark dataset for the ground truth
        evaluation of neural network explanations", Information Fusion 81 (2022): 14-40.
    """
    flat, inside = _flat_pair(maps, masks)
    within = np.where(inside, flat, 0.0).sum(axis=1)
    total = flat.sum(axis=1)
    return np.divide(within, total, out=np.zeros_like(within), where=total != 0)


def relevance_rank_accuracy(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """The share of each map's ``K`` highest-ranked elements inside the mask, ``K = |mask|``.

    ``|top_K(map) & mask| / K``: 1 when the ``K`` largest values fill the mask exactly.
    Ranks are by decreasing value, ties by position in the flattened map (first first).
    Equals Quantus 0.6's ``quantus.RelevanceRankAccuracy`` on maps without ties (Quantus
    breaks ties by numpy's unstable sort). An empty mask scores 0 (Quantus gives NaN).

    Args:
        maps: a numpy array ``(N, ...)``, one map per input.
        masks: a boolean array shaped like ``maps``, ``True`` on the object.

    Returns:
        A float64 array ``(N,)`` of values in ``[0, 1]``.

    Raises:
        TypeError: ``maps`` is not a real numeric numpy array, ``masks`` not a boolean one.
        ValueError: bad map shapes or NaN/inf, or masks of another shape than the maps.

    Examples:
        >>> maps = np.array([[0.9, 0.1, 0.8, 0.7]])
        >>> relevance_rank_accuracy(maps, np.array([[True, False, False, True]]))
        array([0.5])

    References:
        Arras, Osman and Samek, "CLEVR-XAI: a benchmark dataset for the ground truth
        evaluation of neural network explanations", Information Fusion 81 (2022): 14-40.
    """
    flat, inside = _flat_pair(maps, masks)
    sizes = inside.sum(axis=1)
    hits = (_top_ranked(flat, sizes) & inside).sum(axis=1)
    return _share(hits, sizes)


def top_k_intersection(
    maps: np.ndarray, masks: np.ndarray, *, k: int, concept_influence: bool = False
) -> np.ndarray:
    """The share of each map's ``k`` highest-ranked elements that lie inside the mask.

    ``|top_k(map) & mask| / k``, the intersection of the mask with the explanation binarised
    at its ``k`` largest values, as Quantus 0.6's ``quantus.TopKIntersection`` computes it.
    Ranks are by decreasing value, ties by position in the flattened map (first first);
    without ties the numbers equal Quantus's. ``k`` counts elements of the whole map (every
    trailing axis). Quantus requires ``k`` below the number of elements; ``k = F`` is allowed
    here and gives the mask's share of the map. An empty mask scores 0 (Quantus: NaN).

    Args:
        maps: a numpy array ``(N, ...)``, one map per input.
        masks: a boolean array shaped like ``maps``, ``True`` on the object.
        k: how many top-ranked elements to intersect with the mask, ``1 <= k <= F``.
        concept_influence: multiply by ``F / |mask|``, the score relative to the mask's size
            (Theiner et al.'s concept influence; Quantus's ``concept_influence=True``).

    Returns:
        A float64 array ``(N,)``, in ``[0, 1]`` unless ``concept_influence``.

    Raises:
        TypeError: ``maps`` is not a real numeric numpy array, ``masks`` not a boolean one,
            ``k`` not an integer, ``concept_influence`` not a bool.
        ValueError: bad map shapes or NaN/inf, masks of another shape than the maps, or
            ``k`` outside ``[1, F]``.

    Examples:
        >>> maps = np.array([[0.9, 0.1, 0.8, 0.7]])
        >>> top_k_intersection(maps, np.array([[True, False, False, True]]), k=3)
        array([0.66666667])

    References:
        Theiner, Müller-Budack and Ewerth, "Interpretable semantic photo geolocalization",
        arXiv 2104.14995 (2021), WACV 2022.
    """
    flat, inside = _flat_pair(maps, masks)
    n, n_features = flat.shape
    k = check_positive_int(k, "k")
    concept_influence = check_bool(concept_influence, "concept_influence")
    if k > n_features:
        raise ValueError(
            f"k: expected at most the number of elements per map ({n_features}), got {k}"
        )
    hits = (_top_ranked(flat, np.full(n, k)) & inside).sum(axis=1)
    score = hits / k
    if concept_influence:
        score = _share(score * n_features, inside.sum(axis=1))
    return score


def _check_threshold(threshold: object) -> float:
    if isinstance(threshold, bool | np.bool_) or not isinstance(threshold, numbers.Real):
        raise TypeError(f"threshold: expected a number in (0, 1], got {threshold!r}")
    value = float(threshold)
    if not 0.0 < value <= 1.0:
        raise ValueError(f"threshold: expected a number in (0, 1], got {threshold}")
    return value


def _group_starts(values: np.ndarray) -> np.ndarray:
    """Indices where a new value begins in ``values`` (equal values adjacent)."""
    if values.size == 0:
        return np.zeros(0, dtype=np.intp)
    return np.flatnonzero(np.concatenate(([True], values[1:] != values[:-1])))


def _largest_component_boxes(foreground: np.ndarray) -> np.ndarray:
    """Half-open boxes (N, 4) of each image's largest 8-connected region of ``True``.

    Works on runs (maximal horizontal segments of ``True`` in a row), for the whole batch at
    once, in O(pixels) numpy passes: runs touching across adjacent rows (8-connectivity:
    directly or diagonally) give the edges of a union-find over runs. Each round hooks, for
    every edge between different trees, the larger root under the smaller one, compresses
    the forest to depth 1 by pointer jumping, and drops the edges already inside one tree.
    A root is always the smallest run index of its tree, so a region is labelled by its
    first pixel in row-major order (the order of scipy's labels).
    """
    n, height, width = foreground.shape
    boxes = np.zeros((n, 4), dtype=np.int64)
    # A False column on each side and a False row below every image: in the flat array the
    # neighbours below are then fixed offsets that never wrap to another row or image.
    stride = width + 2
    plane = (height + 1) * stride
    padded = np.zeros((n, height + 1, stride), dtype=bool)
    padded[:, :height, 1:width + 1] = foreground
    flat = padded.reshape(-1)
    begins = flat.copy()
    begins[1:] &= ~flat[:-1]
    first = np.flatnonzero(begins)  # flat index of each run's first pixel, row-major
    if first.size == 0:
        return boxes
    finishes = flat.copy()
    finishes[:-1] &= ~flat[1:]
    last = np.flatnonzero(finishes)
    run_of = np.cumsum(begins, dtype=np.int64) - 1  # flat index -> its run, on foreground
    del begins, finishes
    # Edges between runs of adjacent rows, one per place they touch: where a pixel and the
    # one below are both set, the first pixel of each such stretch; and a diagonal step only
    # where neither pixel beside it is set (otherwise a vertical edge already links them).
    below = flat[stride:]
    top_row = flat[:-stride]
    vertical = top_row & below
    vertical[1:] &= ~vertical[:-1]
    down_right = top_row[:-1] & below[1:] & ~top_row[1:] & ~below[:-1]
    down_left = top_row[1:] & below[:-1] & ~top_row[:-1] & ~below[1:]
    verticals = np.flatnonzero(vertical)  # pixel p to p + stride
    rights = np.flatnonzero(down_right)  # p to p + stride + 1
    lefts = np.flatnonzero(down_left) + 1  # p to p + stride - 1
    del vertical, down_right, down_left
    upper = np.concatenate((verticals, rights, lefts))
    lower = np.concatenate((verticals + stride, rights + (stride + 1), lefts + (stride - 1)))
    u, v = run_of[upper], run_of[lower]
    del run_of
    parent = np.arange(first.size, dtype=np.int64)
    while u.size:
        root_u, root_v = parent[u], parent[v]
        live = root_u != root_v
        u, v, root_u, root_v = u[live], v[live], root_u[live], root_v[live]
        if not u.size:
            break
        np.minimum.at(parent, np.maximum(root_u, root_v), np.minimum(root_u, root_v))
        while True:
            grandparent = parent[parent]
            if np.array_equal(grandparent, parent):
                break
            parent = grandparent

    image = first // plane
    within = first - image * plane
    row, col_begin, col_end = within // stride, within % stride - 1, last - image * plane
    col_end = col_end % stride  # one past the run's last column
    sizes = np.bincount(parent, weights=last - first + 1, minlength=first.size)
    roots = np.flatnonzero(parent == np.arange(first.size))
    # Per image: the largest region; of equally large ones, the first in row-major order.
    order = np.lexsort((roots, -sizes[roots], image[roots]))
    first_of_image = _group_starts(image[roots[order]])
    best = roots[order[first_of_image]]
    chosen_root = np.full(n, -1, dtype=np.int64)
    chosen_root[image[best]] = best
    member = parent == chosen_root[image]
    member_image = image[member]
    group = _group_starts(member_image)
    final = np.append(group[1:], member_image.size) - 1
    present = member_image[group]
    rows = row[member]
    boxes[present, 0] = rows[group]  # member runs are in row-major order
    boxes[present, 2] = rows[final] + 1
    boxes[present, 1] = np.minimum.reduceat(col_begin[member], group)
    boxes[present, 3] = np.maximum.reduceat(col_end[member], group)
    return boxes


def bounding_box(maps: np.ndarray, *, threshold: float = 0.2) -> np.ndarray:
    """The box of the largest connected region where each map is at least ``threshold`` of
    its maximum: the CAM paper's weakly supervised localisation.

    Pixels ``>= threshold * max(map)`` form the foreground; its 8-connected regions are
    labelled and the bounding box of the one with the most pixels is returned, half-open:
    rows ``row0 <= r < row1`` and columns ``col0 <= c < col1``. Of equally large regions the
    one whose first pixel in row-major order comes first wins (the lowest label
    ``scipy.ndimage.label`` would give it). A map without a positive value (all zero, or all
    negative) has no region: its box is ``(0, 0, 0, 0)``, empty, with an IoU of 0 against any
    box. Apply ReLU or ``np.abs`` first if negative values should count as evidence.

    Args:
        maps: a numpy array ``(N, H, W)``, one 2-D map per input (reduce channels first).
        threshold: the fraction of the map's maximum a pixel must reach, in ``(0, 1]``;
            0.2 is the CAM paper's value.

    Returns:
        An int64 array ``(N, 4)`` of ``(row0, col0, row1, col1)``.

    Raises:
        TypeError: ``maps`` is not a real numeric numpy array, ``threshold`` not a number.
        ValueError: maps not of shape ``(N, H, W)``, NaN/inf, or ``threshold`` outside
            ``(0, 1]``.

    Examples:
        The larger of two blobs (5 pixels against 1) gives the box:

        >>> cam = np.zeros((1, 5, 6))
        >>> cam[0, 1:3, 1:3] = 1.0
        >>> cam[0, 3, 3] = 0.5          # touches the square diagonally: same region
        >>> cam[0, 0, 5] = 0.9          # a separate single pixel
        >>> bounding_box(cam, threshold=0.2)
        array([[1, 1, 4, 4]])

    References:
        Zhou, Khosla, Lapedriza, Oliva and Torralba, "Learning deep features for
        discriminative localization", CVPR 2016 (section 3: boxes of the largest connected
        component above 20% of the CAM's maximum).
    """
    array = as_maps(maps)
    if array.ndim != 3:
        raise ValueError(
            f"maps: expected 2-D maps, a batch of shape (N, H, W), got shape "
            f"{_describe_shape(array.shape)}; reduce the channel axis first"
        )
    fraction = _check_threshold(threshold)
    peak = array.max(axis=(1, 2), keepdims=True)
    foreground = (array >= fraction * peak) & (peak > 0)
    return _largest_component_boxes(foreground)


def _as_boxes(boxes: object, name: str) -> np.ndarray:
    if not isinstance(boxes, np.ndarray):
        raise TypeError(f"{name}: expected a numpy array of boxes, got {type(boxes).__name__}")
    if boxes.dtype.kind not in "iuf":
        raise TypeError(f"{name}: expected integer or float boxes, got dtype {boxes.dtype}")
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(
            f"{name}: expected boxes of shape (N, 4) as (row0, col0, row1, col1), got shape "
            f"{_describe_shape(boxes.shape)}"
        )
    boxes = boxes.astype(np.float64)
    if not np.isfinite(boxes).all():
        raise ValueError(f"{name}: expected finite coordinates, got NaN or inf")
    reversed_rows = np.flatnonzero((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1]))
    if reversed_rows.size:
        raise ValueError(
            f"{name}: expected row0 <= row1 and col0 <= col1, got "
            f"{boxes[reversed_rows[0]].tolist()} in row {int(reversed_rows[0])}"
        )
    return boxes


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """Intersection over union of two lists of half-open boxes, row by row.

    Boxes are ``(row0, col0, row1, col1)`` with ``row1`` and ``col1`` excluded, as
    :func:`bounding_box` returns them; coordinates may be integers or floats. An empty box
    (``row1 == row0`` or ``col1 == col0``) has area 0 and an IoU of 0 with anything, itself
    included.

    Args:
        boxes_a: a numpy array ``(N, 4)``.
        boxes_b: a numpy array ``(N, 4)``, compared with ``boxes_a`` row by row.

    Returns:
        A float64 array ``(N,)`` of values in ``[0, 1]``.

    Raises:
        TypeError: a non-array or a non-real dtype.
        ValueError: shapes other than ``(N, 4)`` or different ``N``, NaN/inf, or a box with
            ``row1 < row0`` or ``col1 < col0``.

    Examples:
        >>> box_iou(np.array([[0, 0, 2, 2], [0, 0, 1, 1]]), np.array([[1, 1, 3, 3], [0, 0, 1, 1]]))
        array([0.14285714, 1.        ])
    """
    a = _as_boxes(boxes_a, "boxes_a")
    b = _as_boxes(boxes_b, "boxes_b")
    if a.shape != b.shape:
        raise ValueError(
            f"boxes_b: expected one box per row of boxes_a, shape {_describe_shape(a.shape)}, "
            f"got shape {_describe_shape(b.shape)}"
        )
    heights = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    widths = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    intersection = heights * widths
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a + area_b - intersection
    return np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)
