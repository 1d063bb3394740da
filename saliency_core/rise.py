"""RISE (Petsiuk et al. 2018): the target score of randomly masked copies, credited to the
pixels each mask kept.

Each mask starts as a small random binary grid, each cell kept with probability ``p_keep``;
it is upsampled bilinearly to a little more than the image and cropped at a random shift,
so that its soft edges fall anywhere. The map of an input ``x`` is the Monte Carlo estimate
of the paper's equation (6),

    ``S_x(pixel) = 1 / (n_masks * p_keep) * sum_j f(x * M_j) * M_j(pixel)``,

with ``f`` the target score of ``predict_fn``. Its expectation is
``E[f(x * M) * M(pixel)] / E[M(pixel)]``, the expected score given that the pixel was kept.

Masks come from one random stream per mask (mask ``j`` is drawn from position
``j * (grid cells + 2)`` of a PCG64 stream derived from ``seed``), so they are made chunk by
chunk, never all at once: memory is ``O(batch_size x input)``, the result does not depend
on ``batch_size``, and every input of the batch sees the same masks (as in the paper's
code, which draws one set of masks for all images).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ._checks import (
    as_generator,
    as_input_batch,
    as_targets,
    check_callable,
    check_positive_int,
)
from ._streaming import call_chunk, cast_result, chunk_bounds, segments
from .occlusion import _scores
from .types import PredictFn, SeedLike

__all__ = ["rise"]

#: The grid of the paper's ImageNet experiments (7 x 7 cells), also xplique's default.
DEFAULT_GRID = 7


def _image_layout(x: np.ndarray, channel_axis: object) -> tuple[int | None, tuple[int, int]]:
    """The channel axis of ``x`` (an index of ``x``, or None) and its ``(H, W)``.

    ``x`` must be a batch of 2-D images: ``(N, H, W)`` without a channel axis, or 4-D with
    one (``channel_axis`` names it: -1 for NHWC, 1 for NCHW).
    """
    if channel_axis is None:
        if x.ndim != 3:
            raise ValueError(
                f"x: expected a batch of images (N, H, W) for channel_axis=None, got shape "
                f"{x.shape}"
            )
        return None, (x.shape[1], x.shape[2])
    if isinstance(channel_axis, bool | np.bool_) or not isinstance(channel_axis, numbers.Integral):
        raise TypeError(
            f"channel_axis: expected an int axis or None, got {type(channel_axis).__name__} "
            f"{channel_axis!r}"
        )
    if x.ndim != 4:
        raise ValueError(
            f"x: expected a batch of images with channels, 4 dimensions (N, H, W, C) or "
            f"(N, C, H, W), got shape {x.shape}; pass channel_axis=None for (N, H, W)"
        )
    if not -4 <= int(channel_axis) < 4 or int(channel_axis) % 4 == 0:
        raise ValueError(
            f"channel_axis: expected a non-batch axis of x (1, 2, 3 or -1, -2, -3), got "
            f"{channel_axis}"
        )
    axis = int(channel_axis) % 4
    height, width = (x.shape[a] for a in range(1, 4) if a != axis)
    return axis, (height, width)


def _expand(masks: np.ndarray, axis: int | None) -> np.ndarray:
    """``(k, H, W)`` masks with a length-1 channel axis where ``x`` has its channels."""
    return masks if axis is None else np.expand_dims(masks, axis)


def _per_axis_size(value: object, name: str, image: tuple[int, int]) -> tuple[int, int]:
    if isinstance(value, np.ndarray) and value.ndim == 1:
        value = tuple(value.tolist())
    if isinstance(value, tuple | list):
        if len(value) != 2:
            raise ValueError(f"{name}: expected an int or a pair (rows, columns), got {value!r}")
        sizes = tuple(check_positive_int(v, name) for v in value)
    else:
        size = check_positive_int(value, name)
        sizes = (size, size)
    if name == "cell_size" and (sizes[0] > image[0] or sizes[1] > image[1]):
        raise ValueError(f"cell_size: expected at most the image size {image}, got {sizes}")
    return sizes  # type: ignore[return-value]


def _check_probability(value: object) -> float:
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(f"p_keep: expected a probability in (0, 1], got {value!r}")
    number = float(value)
    if not 0 < number <= 1:
        raise ValueError(f"p_keep: expected a probability in (0, 1], got {value}")
    return number


def _interpolation(grid: int, cell: int) -> np.ndarray:
    """``((grid + 1) * cell, grid)`` weights of the bilinear upsampling of ``grid`` cells.

    Half-pixel centres with the boundary mirrored, as scikit-image's
    ``resize(order=1, mode="reflect", anti_aliasing=False)`` that the paper's code uses.
    """
    size = (grid + 1) * cell
    weights = np.zeros((size, grid))
    if grid == 1:
        weights[:] = 1.0
        return weights
    centres = np.abs((np.arange(size) + 0.5) * (grid / size) - 0.5)
    period = 2 * (grid - 1)
    centres = np.mod(centres, period)
    centres = np.where(centres > grid - 1, period - centres, centres)
    low = np.minimum(np.floor(centres).astype(int), grid - 2)
    frac = centres - low
    rows = np.arange(size)
    weights[rows, low] += 1 - frac
    weights[rows, low + 1] += frac
    return weights


class _MaskStream:
    """The RISE masks of one call, mask ``j`` made from its own place in one random stream."""

    def __init__(self, seed_sequence: np.random.SeedSequence, grid: tuple[int, int],
                 cell: tuple[int, int], image: tuple[int, int], p_keep: float) -> None:
        self.seed_sequence = seed_sequence
        self.grid = grid
        self.cell = cell
        self.image = image
        self.p_keep = p_keep
        self.per_mask = grid[0] * grid[1] + 2  # the cells, then the two shifts
        self.rows = _interpolation(grid[0], cell[0])
        self.columns = _interpolation(grid[1], cell[1])

    def masks(self, first: int, stop: int) -> np.ndarray:
        """Masks ``first..stop-1``, float64 ``(stop - first, H, W)`` with values in [0, 1]."""
        bits = np.random.PCG64(self.seed_sequence)
        bits.advance(first * self.per_mask)  # one 64-bit draw per float64
        uniform = np.random.Generator(bits).random((stop - first, self.per_mask))
        cells = (uniform[:, :-2] < self.p_keep).astype(np.float64)
        cells = cells.reshape(-1, *self.grid)
        shift_rows = np.floor(uniform[:, -2] * self.cell[0]).astype(int)
        shift_columns = np.floor(uniform[:, -1] * self.cell[1]).astype(int)
        height, width = self.image
        rows = self.rows[shift_rows[:, None] + np.arange(height)]  # (k, H, grid rows)
        columns = self.columns[shift_columns[:, None] + np.arange(width)]  # (k, W, grid cols)
        return rows @ cells @ columns.transpose(0, 2, 1)


def _mask_stream(
    *,
    grid_size: object,
    cell_size: object,
    p_keep: object,
    seed: object,
    image: tuple[int, int],
) -> _MaskStream:
    if grid_size is not None and cell_size is not None:
        raise ValueError(
            f"grid_size and cell_size: expected one of them (the cells follow from the "
            f"other), got both: grid_size={grid_size!r}, cell_size={cell_size!r}"
        )
    if cell_size is not None:
        cell = _per_axis_size(cell_size, "cell_size", image)
        grid = (math.ceil(image[0] / cell[0]), math.ceil(image[1] / cell[1]))
    else:
        grid = _per_axis_size(DEFAULT_GRID if grid_size is None else grid_size, "grid_size",
                              image)
        cell = (math.ceil(image[0] / grid[0]), math.ceil(image[1] / grid[1]))
    probability = _check_probability(p_keep)
    generator = as_generator(seed)
    entropy = generator.integers(0, 2**63, size=4, dtype=np.int64)
    return _MaskStream(np.random.SeedSequence([int(e) for e in entropy]), grid, cell, image,
                       probability)


def rise(
    predict_fn: PredictFn,
    x: np.ndarray,
    target: int | np.ndarray | None = None,
    *,
    n_masks: int = 4000,
    grid_size: int | tuple[int, int] | None = None,
    cell_size: int | tuple[int, int] | None = None,
    p_keep: float = 0.5,
    batch_size: int = 64,
    seed: SeedLike = None,
    channel_axis: int | None = -1,
) -> np.ndarray:
    """RISE maps (Petsiuk et al. 2018): the score of masked copies, weighted by the masks.

    ``map(pixel) = 1 / (n_masks * p_keep) * sum_j f(x * M_j) * M_j(pixel)`` (paper,
    equation 6), ``f`` the target score of ``predict_fn``. Mask ``M_j`` is a binary
    ``grid_size`` grid (each cell 1 with probability ``p_keep``), upsampled bilinearly to
    ``(grid + 1) * cell`` pixels per axis (``cell = ceil(H / grid)``) and cropped to the
    image at a random shift in ``[0, cell)``, as in the paper's code (scikit-image's
    half-pixel bilinear resize with mirrored edges).

    Conventions: the normalisation is the paper's ``n_masks * p_keep``, the expected mask
    mass of a pixel. xplique's ``Rise`` divides by the masks' actual sum at each pixel
    instead (a ratio estimator; equal in expectation, different for a finite
    ``n_masks``); its masks are otherwise made the same way (a grid upsampled to
    ``H * (1 + 1 / grid)`` and randomly cropped), with TensorFlow's clamped edges. Masked
    copies are ``x * M_j`` (pixels dimmed to zero, all channels alike); the score is
    whatever ``predict_fn`` returns (the paper uses class probabilities: give a softmax
    output for that).

    Args:
        predict_fn: ``predict_fn(x) -> outputs``, ``(k,)`` scores or ``(k, C)`` outputs.
        x: a batch of images, ``(N, H, W, C)`` (``channel_axis=-1``), ``(N, C, H, W)``
            (``channel_axis=1``) or ``(N, H, W)`` (``channel_axis=None``).
        target: None for one score per row, else the output index per input.
        n_masks: masks per input (the paper uses 4000 for ImageNet).
        grid_size: cells of the random grid, an int or ``(rows, columns)``; default 7 (the
            paper's ImageNet setting) unless ``cell_size`` is given.
        cell_size: the upsampled cell size in pixels instead of ``grid_size`` (then
            ``grid = ceil(H / cell_size)``); at most the image size.
        p_keep: the probability that a grid cell is kept, in ``(0, 1]``.
        batch_size: the most masked copies sent to ``predict_fn`` in one call; the masks
            of several inputs share a call.
        seed: None, an int, a ``SeedSequence`` or a ``Generator`` (advanced by one draw).
            The same seed gives the same masks for every input, every ``batch_size`` and
            every framework behind ``predict_fn``.
        channel_axis: where ``x`` has its channels; None for ``(N, H, W)``.

    Returns:
        ``(N, H, W)`` maps in ``x``'s float dtype.

    Raises:
        ValueError, TypeError: bad input, raised before ``predict_fn`` is called; outputs
            of ``predict_fn`` of the wrong shape or not finite.

    Examples:
        A model that reads one pixel gets a map that peaks there:

        >>> x = np.ones((1, 6, 6))
        >>> reads_one_pixel = lambda batch: batch[:, 2, 3]
        >>> heat = rise(reads_one_pixel, x, n_masks=500, grid_size=3, seed=0,
        ...             channel_axis=None)
        >>> np.unravel_index(heat[0].argmax(), heat[0].shape)
        (np.int64(2), np.int64(3))

    References:
        Petsiuk, Das and Saenko, "RISE: Randomized Input Sampling for Explanation of
        Black-box Models", BMVC 2018 (arXiv 1806.07421).
    """
    check_callable(predict_fn, "predict_fn")
    x = as_input_batch(x)
    targets = as_targets(target, x.shape[0])
    axis, image = _image_layout(x, channel_axis)
    n_masks = check_positive_int(n_masks, "n_masks")
    batch_size = check_positive_int(batch_size, "batch_size")
    stream = _mask_stream(grid_size=grid_size, cell_size=cell_size, p_keep=p_keep,
                          seed=seed, image=image)

    total = np.zeros((x.shape[0], *image))
    trailing: tuple[int, ...] | None = None  # every call's outputs are held to the first's
    for start, stop in chunk_bounds(x.shape[0] * n_masks, batch_size):
        runs = segments(start, stop, n_masks)  # (input, first row, end row) in the chunk
        batch = np.empty((stop - start, *x.shape[1:]), dtype=x.dtype)
        masks = np.empty((stop - start, *image))
        for owner, first, end in runs:
            mask_index = start + first - owner * n_masks
            masks[first:end] = stream.masks(mask_index, mask_index + end - first)
            np.multiply(x[owner], _expand(masks[first:end], axis), out=batch[first:end],
                        casting="unsafe")
        inputs = np.arange(start, stop) // n_masks
        chunk_targets = None if targets is None else targets[inputs]
        output = call_chunk(predict_fn, batch, start=start, stop=stop,
                            expected_trailing=trailing, name="predict_fn")
        trailing = output.shape[1:]
        del batch
        scores = _scores(output, chunk_targets, (start, stop - 1), "predict_fn")
        for owner, first, end in runs:
            total[owner] += np.tensordot(scores[first:end], masks[first:end], axes=1)
    return cast_result(total / (n_masks * stream.p_keep), x.dtype, name="predict_fn")
