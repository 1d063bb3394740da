"""RISE: the paper's estimator on the paper's masks, closed forms, streams and checks."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.transform import resize

from saliency_core.rise import rise


class Counting:
    """A predict_fn that records the rows of every call."""

    def __init__(self, fn):
        self.fn = fn
        self.calls: list[int] = []

    def __call__(self, x):
        self.calls.append(x.shape[0])
        return self.fn(x)


def paper_masks(seed, n_masks, image, grid, p_keep):
    """The masks of the paper's code (scikit-image's resize), from rise's documented stream.

    Mask ``j`` is made from the floats ``j * (cells + 2) ...`` of the PCG64 stream that
    ``seed`` gives: the cells (kept below ``p_keep``), then the row and column shifts.
    """
    generator = np.random.default_rng(seed)
    entropy = generator.integers(0, 2**63, size=4, dtype=np.int64)
    bits = np.random.PCG64(np.random.SeedSequence([int(e) for e in entropy]))
    cells = grid[0] * grid[1]
    uniform = np.random.Generator(bits).random((n_masks, cells + 2))
    cell = (math.ceil(image[0] / grid[0]), math.ceil(image[1] / grid[1]))
    up = ((grid[0] + 1) * cell[0], (grid[1] + 1) * cell[1])
    masks = np.empty((n_masks, *image))
    for j in range(n_masks):
        binary = (uniform[j, :cells] < p_keep).astype(float).reshape(grid)
        dy, dx = int(uniform[j, -2] * cell[0]), int(uniform[j, -1] * cell[1])
        upsampled = resize(binary, up, order=1, mode="reflect", anti_aliasing=False)
        masks[j] = upsampled[dy:dy + image[0], dx:dx + image[1]]
    return masks


def linear_model(weights):
    """``f(x) = sum(weights * x)`` over each (H, W, C) row, and its per-pixel weights a."""
    return lambda x: np.einsum("khwc,hwc->k", x, weights)


@pytest.mark.parametrize(("image", "grid"), [((8, 8), (3, 3)), ((7, 10), (2, 4)),
                                             ((6, 6), (1, 1)), ((5, 5), (5, 5))])
def test_the_map_is_the_papers_estimator_on_the_papers_masks(image, grid):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(2, *image, 3))
    weights = rng.standard_normal((*image, 3))
    n_masks, p_keep = 50, 0.4
    masks = paper_masks(7, n_masks, image, grid, p_keep)
    result = rise(linear_model(weights), x, n_masks=n_masks, grid_size=grid, p_keep=p_keep,
                  seed=7, batch_size=16)
    for i in range(2):
        scores = np.einsum("jhw,hwc,hwc->j", masks, x[i], weights)
        expected = np.tensordot(scores, masks, axes=1) / (n_masks * p_keep)
        np.testing.assert_allclose(result[i], expected, rtol=1e-12, atol=1e-12)


def test_cell_size_gives_the_grid_of_ceil_h_over_cell():
    x = np.random.default_rng(1).uniform(size=(1, 9, 12, 2))
    score = lambda batch: batch.sum(axis=(1, 2, 3))  # noqa: E731
    by_cell = rise(score, x, n_masks=30, cell_size=(3, 4), seed=2)
    masks = paper_masks(2, 30, (9, 12), (3, 3), 0.5)
    expected = np.tensordot(np.einsum("jhw,hwc->j", masks, x[0]), masks, axes=1) / 15
    np.testing.assert_allclose(by_cell[0], expected, rtol=1e-12)


def _mask_correlation(image, grid, p_keep):
    """``E[M(p) M(q)]`` of the paper's masks, over every shift, from scikit-image weights."""
    cell = (math.ceil(image[0] / grid[0]), math.ceil(image[1] / grid[1]))
    up = ((grid[0] + 1) * cell[0], (grid[1] + 1) * cell[1])
    basis = np.eye(grid[0] * grid[1]).reshape(-1, *grid)
    weights = np.stack([resize(b, up, order=1, mode="reflect", anti_aliasing=False)
                        for b in basis])  # (cells, *up): c_k at each upsampled pixel
    second = np.zeros((image[0] * image[1],) * 2)
    for dy in range(cell[0]):
        for dx in range(cell[1]):
            c = weights[:, dy:dy + image[0], dx:dx + image[1]].reshape(len(basis), -1)
            # E[M_p M_q | shift] = p^2 (sum_k c_k(p)) (sum_l c_l(q)) + p(1-p) sum_k c_k(p) c_k(q)
            total = c.sum(axis=0)
            second += p_keep**2 * np.outer(total, total) + p_keep * (1 - p_keep) * c.T @ c
    return second / (cell[0] * cell[1])


def test_a_linear_predictor_has_the_known_expectation():
    # f(x * M) = sum_p a_p M_p, so E[map_q] = sum_p a_p E[M_p M_q] / p_keep
    image, grid, p_keep, n_masks = (6, 6), (3, 3), 0.5, 20000
    rng = np.random.default_rng(3)
    x = rng.uniform(0.5, 1.0, size=(1, *image, 1))
    weights = rng.uniform(0.0, 1.0, size=(*image, 1))
    a = (x[0] * weights)[..., 0].reshape(-1)
    expected = (a @ _mask_correlation(image, grid, p_keep) / p_keep).reshape(image)
    result = rise(linear_model(weights), x, n_masks=n_masks, grid_size=grid, p_keep=p_keep,
                  seed=4, batch_size=2048)[0]
    # the Monte Carlo error: the spread of one mask's term, over sqrt(n_masks)
    masks = paper_masks(4, 2000, image, grid, p_keep)
    terms = (masks.reshape(2000, -1) @ a)[:, None, None] * masks / p_keep
    standard_error = terms.std(axis=0) / np.sqrt(n_masks)
    assert np.all(np.abs(result - expected) < 5 * standard_error)
    # and the error is small next to the structure of the map
    assert np.abs(result - expected).max() < 0.1 * (expected.max() - expected.min())


@pytest.mark.parametrize("pixel", [(0, 0), (4, 7), (9, 9), (2, 5)])
@pytest.mark.parametrize("layout", ["nhwc", "nchw", "hw"])
def test_a_model_that_reads_one_pixel_peaks_there(pixel, layout):
    r, c = pixel
    x = np.full((1, 10, 10, 3), 0.8)
    if layout == "nhwc":
        batch, axis, read = x, -1, lambda b: b[:, r, c, 1]
    elif layout == "nchw":
        batch, axis, read = x.transpose(0, 3, 1, 2), 1, lambda b: b[:, 1, r, c]
    else:
        batch, axis, read = x[..., 0], None, lambda b: b[:, r, c]
    heat = rise(read, batch, n_masks=1500, grid_size=5, seed=0, channel_axis=axis)[0]
    assert heat.shape == (10, 10)
    assert np.unravel_index(heat.argmax(), heat.shape) == pixel


def test_layouts_give_the_same_map():
    x = np.random.default_rng(5).uniform(size=(2, 6, 7, 3))
    weights = np.random.default_rng(6).standard_normal((6, 7, 3))
    nhwc = rise(linear_model(weights), x, n_masks=40, grid_size=3, seed=1)
    nchw = rise(lambda b: linear_model(weights)(b.transpose(0, 2, 3, 1)),
                x.transpose(0, 3, 1, 2), n_masks=40, grid_size=3, seed=1, channel_axis=1)
    np.testing.assert_allclose(nchw, nhwc, rtol=1e-12)


def test_targets_choose_the_output():
    x = np.random.default_rng(7).uniform(size=(3, 5, 5, 1))
    outputs = lambda b: np.stack([b[:, 0, 0, 0], b[:, 4, 4, 0]], axis=1)  # noqa: E731
    heat = rise(outputs, x, np.array([0, 1, 0]), n_masks=1000, grid_size=5, seed=3)
    peaks = [np.unravel_index(h.argmax(), h.shape) for h in heat]
    assert peaks == [(0, 0), (4, 4), (0, 0)]


def test_a_constant_score_gives_about_that_constant():
    # sum_j c * M_j / (n p): the masks' mean is p at every pixel
    x = np.ones((1, 8, 8))
    heat = rise(lambda b: np.full(len(b), 2.0), x, n_masks=4000, grid_size=4, seed=0,
                channel_axis=None)
    assert abs(heat.mean() - 2.0) < 0.05
    heat = rise(lambda b: np.full(len(b), 2.0), x, n_masks=3, p_keep=1.0, seed=0,
                channel_axis=None)
    np.testing.assert_allclose(heat, 2.0, rtol=1e-12)


# --------------------------------------------------------------------------- streams


def test_the_result_does_not_depend_on_batch_size_and_calls_stay_within_it():
    x = np.random.default_rng(8).uniform(size=(3, 6, 6, 2))
    weights = np.random.default_rng(9).standard_normal((6, 6, 2))
    results = []
    for batch_size in (1, 7, 64, 1000):
        counting = Counting(linear_model(weights))
        results.append(rise(counting, x, n_masks=50, grid_size=3, seed=11,
                            batch_size=batch_size))
        assert max(counting.calls) <= batch_size and sum(counting.calls) == 150
    for other in results[1:]:
        np.testing.assert_allclose(other, results[0], rtol=1e-12, atol=1e-14)


def test_every_input_sees_the_same_masks_and_the_seed_decides_them():
    x = np.tile(np.random.default_rng(10).uniform(size=(1, 6, 6, 1)), (3, 1, 1, 1))
    score = lambda b: b.sum(axis=(1, 2, 3)) ** 2  # noqa: E731
    heat = rise(score, x, n_masks=20, grid_size=2, seed=5, batch_size=7)
    np.testing.assert_allclose(heat[1], heat[0], rtol=1e-12)  # chunks split inputs apart
    np.testing.assert_allclose(heat[2], heat[0], rtol=1e-12)
    again = rise(score, x, n_masks=20, grid_size=2, seed=5)
    np.testing.assert_allclose(again, heat, rtol=1e-12)
    other = rise(score, x, n_masks=20, grid_size=2, seed=6)
    assert np.abs(other - heat).max() > 1e-3
    # the first masks do not depend on how many are drawn
    first = rise(score, x[:1], n_masks=10, grid_size=2, seed=5)
    masks = paper_masks(5, 20, (6, 6), (2, 2), 0.5)
    scores = np.einsum("jhw,hw->j", masks[:10], x[0, ..., 0]) ** 2
    np.testing.assert_allclose(first[0], np.tensordot(scores, masks[:10], axes=1) / 5,
                               rtol=1e-12)


def test_a_generator_seed_is_used_and_advanced():
    x = np.ones((1, 4, 4))
    generator = np.random.default_rng(0)
    first = rise(lambda b: b[:, 0, 0], x, n_masks=10, grid_size=2, seed=generator,
                 channel_axis=None)
    second = rise(lambda b: b[:, 0, 0], x, n_masks=10, grid_size=2, seed=generator,
                  channel_axis=None)
    assert np.abs(first - second).max() > 0
    np.testing.assert_array_equal(
        first, rise(lambda b: b[:, 0, 0], x, n_masks=10, grid_size=2,
                    seed=np.random.default_rng(0), channel_axis=None))


def test_float32_stays_float32_and_x_is_untouched():
    x = np.random.default_rng(12).uniform(size=(2, 5, 5, 3)).astype(np.float32)
    before = x.copy()
    x.flags.writeable = False
    heat = rise(lambda b: b.sum(axis=(1, 2, 3)), x, n_masks=10, grid_size=2, seed=0)
    assert heat.dtype == np.float32 and heat.shape == (2, 5, 5)
    np.testing.assert_array_equal(x, before)


# --------------------------------------------------------------------------- checks

X = np.ones((2, 6, 6, 3))

BAD = [
    ({"n_masks": 0}, ValueError, r"n_masks: expected a positive integer, got 0"),
    ({"n_masks": 10.0}, TypeError, r"n_masks: expected a positive integer"),
    ({"p_keep": 0.0}, ValueError, r"p_keep: expected a probability in \(0, 1\], got 0.0"),
    ({"p_keep": 1.5}, ValueError, r"p_keep: expected a probability"),
    ({"p_keep": True}, TypeError, r"p_keep: expected a probability"),
    ({"p_keep": "half"}, TypeError, r"p_keep: expected a probability"),
    ({"grid_size": 0}, ValueError, r"grid_size: expected a positive integer, got 0"),
    ({"grid_size": (2,)}, ValueError, r"grid_size: expected an int or a pair"),
    ({"grid_size": 2.5}, TypeError, r"grid_size: expected a positive integer"),
    ({"grid_size": 2, "cell_size": 3}, ValueError, r"grid_size and cell_size: expected one"),
    ({"cell_size": 7}, ValueError, r"cell_size: expected at most the image size \(6, 6\)"),
    ({"channel_axis": 0}, ValueError, r"channel_axis: expected a non-batch axis"),
    ({"channel_axis": 4}, ValueError, r"channel_axis: expected a non-batch axis"),
    ({"channel_axis": "last"}, TypeError, r"channel_axis: expected an int axis or None"),
    ({"channel_axis": None}, ValueError, r"x: expected a batch of images \(N, H, W\)"),
    ({"seed": -1}, ValueError, r"seed: expected a non-negative int"),
    ({"seed": "a"}, TypeError, r"seed: expected None"),
    ({"batch_size": 0}, ValueError, r"batch_size: expected a positive integer"),
]


@pytest.mark.parametrize(("options", "error", "message"), BAD,
                         ids=[str(case[0]) for case in BAD])
def test_bad_options_are_refused_before_any_call(options, error, message):
    counting = Counting(lambda b: b.sum(axis=(1, 2, 3)))
    with pytest.raises(error, match=message):
        rise(counting, X, **{"n_masks": 5, **options})
    assert counting.calls == []


@pytest.mark.parametrize(("x", "target", "error", "message"), [
    (np.ones((2, 6, 6)), None, ValueError, r"x: expected a batch of images with channels"),
    (np.ones((2, 6, 6, 3, 1)), None, ValueError, r"x: expected a batch of images"),
    (np.full((2, 6, 6, 3), np.nan), None, ValueError, r"x: expected finite values"),
    (X, np.array([0, 1, 2]), ValueError, r"target: expected one index per input"),
    (X, -1, ValueError, r"target: expected a non-negative index"),
])
def test_bad_x_and_targets_are_refused_before_any_call(x, target, error, message):
    counting = Counting(lambda b: b.sum(axis=(1, 2, 3)))
    with pytest.raises(error, match=message):
        rise(counting, x, target, n_masks=5)
    assert counting.calls == []


def test_bad_predictions_are_refused_with_the_rows():
    with pytest.raises(ValueError, match=r"predict_fn call for rows 0..3: expected finite"):
        rise(lambda b: np.full(len(b), np.nan), X, n_masks=5, batch_size=4)
    with pytest.raises(ValueError, match=r"expected 4 rows"):
        rise(lambda b: np.ones(len(b) + 1), X, n_masks=5, batch_size=4)
    with pytest.raises(ValueError, match=r"pass target to choose one"):
        rise(lambda b: np.ones((len(b), 3)), X, n_masks=5)
    with pytest.raises(ValueError, match=r"target: expected indices in \[0, 2\], got 5"):
        rise(lambda b: np.ones((len(b), 3)), X, 5, n_masks=5)
    with pytest.raises(TypeError, match=r"predict_fn: expected a callable"):
        rise("model", X)
