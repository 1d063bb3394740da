"""Blur IG, Guided IG and expected gradients against closed forms.

The truths: completeness (the attributions of an input sum to ``S(x) - S(baseline)``,
exactly for a linear score, and up to a quadrature error that falls with the steps for a
smooth one), integrated gradients' own formula where a path reduces to the straight line,
and the expectations of expected gradients on linear and quadratic scores. The blur is
checked against a blur written here from its definition.
"""

from __future__ import annotations

import numpy as np
import pytest

from saliency_core.paths import (
    blur_integrated_gradients,
    expected_gradients,
    guided_integrated_gradients,
)
from tests.core import callbacks

# --------------------------------------------------------------------------- models


class TanhNet:
    """``S_c(x) = sum_j V_cj tanh(U_j . x)``: a smooth score with an exact gradient."""

    def __init__(self, shape: tuple[int, ...], hidden: int = 6, classes: int = 4,
                 seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        size = int(np.prod(shape))
        self.u = rng.standard_normal((hidden, size)) * 3 / np.sqrt(size)
        self.v = rng.standard_normal((classes, hidden))

    def score(self, x: np.ndarray, target: np.ndarray) -> np.ndarray:
        hidden = np.tanh(x.reshape(len(x), -1) @ self.u.T)
        return (hidden * self.v[target]).sum(axis=1)

    def __call__(self, x: np.ndarray, target: np.ndarray) -> np.ndarray:
        z = x.reshape(len(x), -1) @ self.u.T
        return (((1 - np.tanh(z) ** 2) * self.v[target]) @ self.u).reshape(x.shape).astype(
            x.dtype)


def linear(w: np.ndarray):
    """Gradient ``w`` of ``S(x) = sum(w * x)``, for every row."""
    return callbacks.linear(w)


def definition_blur(image: np.ndarray, sigma: float, axes: tuple[int, ...]) -> np.ndarray:
    """A Gaussian blur from its definition: ``sum_t k(t) image[i + t]`` along each axis,
    zero outside, ``k`` the normalised Gaussian on ``t = -r..r``, ``r = int(4 sigma + .5)``."""
    out = image.astype(np.float64)
    if sigma == 0:
        return out
    radius = int(4 * sigma + 0.5)
    taps = np.exp(-np.arange(-radius, radius + 1) ** 2 / (2 * sigma**2))
    taps /= taps.sum()
    for axis in axes:
        moved = np.moveaxis(out, axis, 0)
        blurred = np.zeros_like(moved)
        for i in range(moved.shape[0]):
            for t in range(-radius, radius + 1):
                if 0 <= i + t < moved.shape[0]:
                    blurred[i] += taps[t + radius] * moved[i + t]
        out = np.moveaxis(blurred, 0, axis)
    return out


def images(n: int = 3, shape: tuple[int, ...] = (8, 8, 3), seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(0, 1, size=(n, *shape))


class Counted:
    def __init__(self, fn):
        self.fn, self.calls, self.rows = fn, 0, []

    def __call__(self, x, target):
        self.calls += 1
        self.rows.append(x.copy())
        return self.fn(x, target)


# --------------------------------------------------------------------------- Blur IG


@pytest.mark.parametrize(("max_sigma", "steps"), [(3.0, 12), (50.0, 25), (0.6, 8)])
def test_blur_ig_of_a_linear_score_is_w_times_x_minus_the_blurred_image(max_sigma, steps):
    # with grad_step = max_sigma / steps the forward differences telescope: the map is
    # w * (x - blur(x, max_sigma)) element by element, the kernel's truncation included
    x = images()
    w = np.random.default_rng(2).standard_normal(x.shape[1:])
    maps = blur_integrated_gradients(linear(w), x, max_sigma=max_sigma, steps=steps,
                                     grad_step=max_sigma / steps)
    blurred = np.stack([definition_blur(image, max_sigma, (0, 1)) for image in x])
    np.testing.assert_allclose(maps, w * (x - blurred), rtol=1e-10, atol=1e-12)


def test_blur_ig_completeness_on_a_smooth_score_falls_with_the_steps():
    x, target = images(), np.array([0, 2, 3])
    model = TanhNet(x.shape[1:])
    blurred = np.stack([definition_blur(image, 3.0, (0, 1)) for image in x])
    truth = model.score(x, target) - model.score(blurred, target)
    errors = []
    for steps in (100, 400):
        maps = blur_integrated_gradients(model, x, target, max_sigma=3.0, steps=steps,
                                         grad_step=3.0 / steps)
        errors.append(np.abs(maps.reshape(3, -1).sum(axis=1) - truth).max())
    assert errors[1] < 0.01 * np.abs(truth).max()
    assert errors[1] < errors[0] / 3  # a first-order rule: 4x the steps, about 1/4 the error


@pytest.mark.parametrize("sqrt", [False, True])
def test_blur_ig_is_the_left_riemann_sum_of_the_blur_path(sqrt):
    # the formula, term by term, with the blur written from its definition; with sqrt the
    # sigmas are sqrt(k * max_sigma / steps), so the path ends at sqrt(max_sigma)
    x, target = images(2, (6, 5, 2)), np.array([1, 3])
    model = TanhNet(x.shape[1:])
    max_sigma, steps, grad_step = 2.0, 7, 0.05
    sigmas = np.arange(steps + 1) * max_sigma / steps
    sigmas = np.sqrt(sigmas) if sqrt else sigmas
    expected = np.zeros_like(x)
    for k in range(steps):
        here = np.stack([definition_blur(image, sigmas[k], (0, 1)) for image in x])
        ahead = np.stack([definition_blur(image, sigmas[k] + grad_step, (0, 1))
                          for image in x])
        expected -= (sigmas[k + 1] - sigmas[k]) * model(here, target) * (ahead - here) \
            / grad_step
    maps = blur_integrated_gradients(model, x, target, max_sigma=max_sigma, steps=steps,
                                     grad_step=grad_step, sqrt=sqrt)
    np.testing.assert_allclose(maps, expected, rtol=1e-10, atol=1e-13)


def test_blur_ig_sends_the_blurred_images_to_fn():
    x = images(1)
    counted = Counted(linear(np.ones(x.shape[1:])))
    blur_integrated_gradients(counted, x, max_sigma=4.0, steps=4, sqrt=True)
    rows = counted.rows[0]
    assert len(rows) == 4
    np.testing.assert_array_equal(rows[0], x[0])  # sigma 0: the input itself
    for k in range(1, 4):
        np.testing.assert_allclose(rows[k], definition_blur(x[0], np.sqrt(k), (0, 1)),
                                   rtol=1e-12)


def test_blur_ig_leaves_channels_apart_and_follows_channel_axis():
    x = images(2, (7, 6, 3))
    w = np.random.default_rng(4).standard_normal(x.shape[1:])
    options = dict(max_sigma=2.0, steps=10, grad_step=0.2)
    last = blur_integrated_gradients(linear(w), x, **options)
    # channels first: the same maps, transposed
    first = blur_integrated_gradients(linear(np.moveaxis(w, -1, 0)), np.moveaxis(x, -1, 1),
                                      channel_axis=1, **options)
    np.testing.assert_allclose(np.moveaxis(first, 1, -1), last, rtol=1e-12, atol=1e-14)
    # one channel's map depends on that channel only
    changed = x.copy()
    changed[..., 1] += 1.0
    moved = blur_integrated_gradients(linear(w), changed, **options)
    np.testing.assert_allclose(moved[..., [0, 2]], last[..., [0, 2]], rtol=1e-12, atol=1e-14)
    assert np.abs(moved[..., 1] - last[..., 1]).max() > 1e-3


def test_blur_ig_channel_axis_none_blurs_every_axis():
    x = images(2, (9, 4))
    w = np.random.default_rng(5).standard_normal(x.shape[1:])
    maps = blur_integrated_gradients(linear(w), x, max_sigma=1.5, steps=6, grad_step=0.25,
                                     channel_axis=None)
    blurred = np.stack([definition_blur(image, 1.5, (0, 1)) for image in x])
    np.testing.assert_allclose(maps, w * (x - blurred), rtol=1e-10, atol=1e-12)
    # a 1-d signal (N, D): the only axis is blurred
    signal = np.random.default_rng(6).uniform(size=(2, 11))
    v = np.random.default_rng(7).standard_normal(11)
    maps = blur_integrated_gradients(linear(v), signal, max_sigma=2.0, steps=4,
                                     grad_step=0.5, channel_axis=None)
    blurred = np.stack([definition_blur(row, 2.0, (0,)) for row in signal])
    np.testing.assert_allclose(maps, v * (signal - blurred), rtol=1e-10, atol=1e-12)


def test_blur_ig_long_axes_are_blurred_tap_by_tap_alike():
    # axes longer than 1,024 take the tap-by-tap path: the same truth holds
    signal = np.random.default_rng(8).uniform(size=(1, 1500))
    v = np.random.default_rng(9).standard_normal(1500)
    maps = blur_integrated_gradients(linear(v), signal, max_sigma=3.0, steps=3,
                                     grad_step=1.0, channel_axis=None)
    blurred = definition_blur(signal[0], 3.0, (0,))
    np.testing.assert_allclose(maps[0], v * (signal[0] - blurred), rtol=1e-10, atol=1e-12)


def test_blur_ig_call_counts_dtype_and_batch_size():
    x, target = images(3).astype(np.float32), np.array([0, 1, 2])
    model = TanhNet(x.shape[1:])
    counting = callbacks.Counting(model)
    maps = blur_integrated_gradients(counting, x, target, max_sigma=2.0, steps=5,
                                     batch_size=4)
    assert counting.calls == [4, 4, 4, 3]  # 15 rows: 3 inputs x 5 steps
    assert maps.dtype == np.float32 and maps.shape == x.shape
    for batch_size in (1, 7, 64):
        other = blur_integrated_gradients(model, x, target, max_sigma=2.0, steps=5,
                                          batch_size=batch_size)
        np.testing.assert_allclose(other, maps, rtol=1e-6, atol=1e-7)


def test_blur_ig_gives_fn_rows_in_x_dtype():
    x = images(1).astype(np.float32)
    counted = Counted(linear(np.ones(x.shape[1:])))
    blur_integrated_gradients(counted, x, max_sigma=2.0, steps=4, batch_size=4)
    assert counted.rows[0].dtype == np.float32
    np.testing.assert_array_equal(counted.rows[0][0], x[0])
    np.testing.assert_allclose(counted.rows[0][1], definition_blur(x[0], 0.5, (0, 1)),
                               rtol=1e-6)


# --------------------------------------------------------------------------- Guided IG


@pytest.mark.parametrize("options", [
    dict(steps=10), dict(steps=7, fraction=0.1, max_dist=0.3),
    dict(steps=5, fraction=1.0, max_dist=1.0), dict(steps=6, fraction=0.0, max_dist=0.0),
])
def test_guided_ig_of_a_linear_score_is_w_times_x_minus_baseline(options):
    # a constant gradient: the moves telescope to x - baseline, element by element
    x = images()
    w = np.random.default_rng(10).standard_normal(x.shape[1:])
    baseline = np.random.default_rng(11).uniform(size=x.shape[1:])
    maps = guided_integrated_gradients(linear(w), x, baseline=baseline, **options)
    np.testing.assert_allclose(maps, w * (x - baseline), rtol=1e-10, atol=1e-12)


def test_guided_ig_with_max_dist_0_is_integrated_gradients_on_the_straight_line():
    # the band is the straight line itself: the left Riemann sum of integrated gradients
    x, target = images(2), np.array([1, 2])
    model = TanhNet(x.shape[1:])
    steps, baseline = 9, 0.3
    alphas = np.arange(steps) / steps
    gradient_sum = sum(model(baseline + a * (x - baseline), target) for a in alphas)
    expected = (x - baseline) * gradient_sum / steps
    maps = guided_integrated_gradients(model, x, target, baseline=baseline, steps=steps,
                                       max_dist=0.0)
    np.testing.assert_allclose(maps, expected, rtol=1e-9, atol=1e-12)


def test_guided_ig_completeness_on_a_smooth_score_falls_with_the_steps():
    x, target = images(), np.array([0, 2, 3])
    model = TanhNet(x.shape[1:])
    truth = model.score(x, target) - model.score(np.zeros_like(x), target)
    errors = []
    for steps in (200, 800):
        maps = guided_integrated_gradients(model, x, target, steps=steps)
        errors.append(np.abs(maps.reshape(3, -1).sum(axis=1) - truth).max())
    assert errors[1] < 0.002 * np.abs(truth).max()
    assert errors[1] < errors[0] / 2.5


def test_guided_ig_path_keeps_its_schedule_and_its_band():
    # before step k the path is at L1 distance (1 - k/steps) of the total from the input,
    # and every element within max_dist of the straight line at alpha = k / steps
    x, target = images(2, (5, 5, 2)), np.array([0, 1])
    model = TanhNet(x.shape[1:])
    steps, max_dist, baseline = 20, 0.1, 0.25
    counted = Counted(model)
    guided_integrated_gradients(counted, x, target, baseline=baseline, steps=steps,
                                max_dist=max_dist)
    assert counted.calls == steps
    total = np.abs(x - baseline).reshape(2, -1).sum(axis=1)
    for k, points in enumerate(counted.rows):
        distance = np.abs(points - x).reshape(2, -1).sum(axis=1)
        np.testing.assert_allclose(distance, total * (1 - k / steps), rtol=1e-8)
        position = (points - baseline) / (x - baseline)
        assert (position >= k / steps - max_dist - 1e-9).all()
        assert (position <= min(k / steps + max_dist, 1.0) + 1e-9).all()
    # the path does not follow the straight line: it goes where the gradient is small
    straight = baseline + (steps // 2) / steps * (x - baseline)
    assert np.abs(counted.rows[steps // 2] - straight).max() > 0.01


def test_guided_ig_calls_once_per_step_for_all_inputs():
    x, target = images(5), np.array([0, 1, 2, 3, 0])
    model = TanhNet(x.shape[1:])
    counting = callbacks.Counting(model)
    maps = guided_integrated_gradients(counting, x, target, steps=4)
    assert counting.calls == [5] * 4
    counting = callbacks.Counting(model)
    chunked = guided_integrated_gradients(counting, x, target, steps=4, batch_size=2)
    assert counting.calls == [2, 2, 1] * 4
    # each input's path is its own (up to the callback's own rounding in other chunks)
    np.testing.assert_allclose(chunked, maps, rtol=1e-12, atol=1e-15)


def test_guided_ig_input_equal_to_baseline_gets_zeros_and_no_rows():
    x = images(3)
    x[1] = 0.5
    model = TanhNet(x.shape[1:])
    counting = callbacks.Counting(model)
    maps = guided_integrated_gradients(counting, x, 1, baseline=0.5, steps=3)
    assert counting.calls == [2, 2, 2]  # input 1 is not sent
    np.testing.assert_array_equal(maps[1], 0.0)
    alone = guided_integrated_gradients(model, x[[0, 2]], 1, baseline=0.5, steps=3)
    np.testing.assert_array_equal(maps[[0, 2]], alone)
    counting = callbacks.Counting(model)
    np.testing.assert_array_equal(
        guided_integrated_gradients(counting, np.full((2, 3), 0.5), baseline=0.5), 0.0)
    assert counting.calls == []


def test_guided_ig_dtype_and_what_fn_gets():
    x = images(2).astype(np.float32)
    model = TanhNet(x.shape[1:])
    counted = Counted(model)
    maps = guided_integrated_gradients(counted, x, 0, steps=3)
    assert maps.dtype == np.float32 and maps.shape == x.shape
    assert all(rows.dtype == np.float32 for rows in counted.rows)
    np.testing.assert_array_equal(counted.rows[0], 0.0)  # the path starts at the baseline


# --------------------------------------------------------------------------- expected gradients


def reference_set(n: int = 6, shape: tuple[int, ...] = (4, 3), seed: int = 12) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, size=(n, *shape))


def test_expected_gradients_one_baseline_linear_is_exact():
    x = images(3, (4, 3))
    w = np.random.default_rng(13).standard_normal((4, 3))
    b = reference_set(1)
    maps = expected_gradients(linear(w), x, baselines=b, n_samples=7, seed=0)
    np.testing.assert_allclose(maps, w * (x - b[0]), rtol=1e-12, atol=1e-14)


def test_expected_gradients_linear_is_w_times_x_minus_the_drawn_baselines():
    # documented draws: first every baseline index (N, n_samples), then the alphas
    x = images(3, (4, 3))
    w = np.random.default_rng(14).standard_normal((4, 3))
    b = reference_set()
    maps = expected_gradients(linear(w), x, baselines=b, n_samples=9, seed=5)
    drawn = np.random.default_rng(5).integers(0, len(b), size=(3, 9))
    np.testing.assert_allclose(maps, w * (x - b[drawn].mean(axis=1)), rtol=1e-12,
                               atol=1e-14)


@pytest.mark.parametrize("stdev", [0.0, 0.3])
def test_expected_gradients_linear_expectation_is_w_times_x_minus_mean_baseline(stdev):
    x = images(2, (4, 3))
    w = np.random.default_rng(15).standard_normal((4, 3))
    b = reference_set()
    n = 4000
    maps = expected_gradients(linear(w), x, baselines=b, n_samples=n, stdev=stdev, seed=1)
    # the Monte Carlo error of a mean of n draws of w * (x + noise - b)
    spread = np.abs(w) * np.sqrt(b.var(axis=0) + stdev**2)
    tolerance = np.broadcast_to(5 * spread / np.sqrt(n) + 1e-12, x.shape)
    np.testing.assert_array_less(np.abs(maps - w * (x - b.mean(axis=0))), tolerance)


def test_expected_gradients_quadratic_expectation_and_completeness():
    # S = x^T A x, gradient 2 A p: E_alpha[2 A (b + alpha d)] * d = A (x + b) * d, d = x - b
    rng = np.random.default_rng(16)
    a = rng.standard_normal((5, 5))
    a = (a + a.T) / 2
    x, b = rng.uniform(-1, 1, (2, 5)), rng.uniform(-1, 1, (1, 5))
    n = 20000
    maps = expected_gradients(callbacks.quadratic(a), x, baselines=b, n_samples=n, seed=2)
    d = x - b
    expected = (x + b) @ a * d
    # alpha is uniform: the variance of 2 (A d)_j d_j alpha is (2 (A d)_j d_j)^2 / 12
    tolerance = 5 * np.abs(2 * (d @ a) * d) / np.sqrt(12 * n)
    np.testing.assert_array_less(np.abs(maps - expected), tolerance)
    score = lambda p: np.einsum("ni,ij,nj->n", p, a, p)  # noqa: E731
    np.testing.assert_allclose(maps.sum(axis=1), score(x) - score(b), atol=5 * np.abs(
        tolerance).sum(axis=1).max())


def test_expected_gradients_is_seeded_and_independent_of_batch_size():
    x, target = images(3, (4, 3)), np.array([0, 1, 2])
    model = TanhNet((4, 3))
    b = reference_set()
    options = dict(baselines=b, n_samples=11, stdev=0.2)
    state = np.random.get_state()[1].copy()  # noqa: NPY002 - the global state stays
    first = expected_gradients(model, x, target, **options, seed=3, batch_size=64)
    for batch_size in (1, 4, 33):
        np.testing.assert_allclose(
            expected_gradients(model, x, target, **options, seed=3, batch_size=batch_size),
            first, rtol=1e-12, atol=1e-14)
    assert not np.allclose(expected_gradients(model, x, target, **options, seed=4), first)
    generator = np.random.default_rng(3)
    np.testing.assert_array_equal(
        expected_gradients(model, x, target, **options, seed=generator), first)
    assert not np.allclose(expected_gradients(model, x, target, **options, seed=generator),
                           first)  # the Generator was advanced
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # noqa: NPY002


def test_expected_gradients_rows_lie_on_the_paths_and_counts():
    x, target = images(2, (4, 3)).astype(np.float32), np.array([0, 1])
    b = reference_set(1)
    counted = Counted(TanhNet((4, 3)))
    maps = expected_gradients(counted, x, target, baselines=b, n_samples=5, batch_size=4,
                              seed=0)
    assert maps.dtype == np.float32 and maps.shape == x.shape
    assert [len(rows) for rows in counted.rows] == [4, 4, 2]
    rows = np.concatenate(counted.rows)
    assert rows.dtype == np.float32
    generator = np.random.default_rng(0)
    generator.integers(0, 1, size=(2, 5))  # the baseline indices come first (all 0 here)
    alphas = generator.random((2, 5))
    expected = b[0] + alphas.reshape(10, 1, 1) * (np.repeat(x, 5, axis=0) - b[0])
    np.testing.assert_allclose(rows, expected, rtol=1e-6, atol=1e-7)


# --------------------------------------------------------------------------- bad input


def _bad_cases():
    x = images(2, (4, 4, 3))
    refs = reference_set(3, (4, 4, 3))
    blur, guided = blur_integrated_gradients, guided_integrated_gradients
    eg = expected_gradients
    return [
        (blur, x, dict(max_sigma=0), ValueError, r"max_sigma: expected a finite positive"),
        (blur, x, dict(max_sigma=-1.0), ValueError, r"max_sigma: .* got -1.0"),
        (blur, x, dict(max_sigma=float("nan")), ValueError, r"max_sigma"),
        (blur, x, dict(max_sigma=True), TypeError, r"max_sigma: expected a positive number"),
        (blur, x, dict(max_sigma="5"), TypeError, r"max_sigma: expected a positive number"),
        (blur, x, dict(steps=0), ValueError, r"steps: expected a positive integer, got 0"),
        (blur, x, dict(steps=2.0), TypeError, r"steps: expected a positive integer"),
        (blur, x, dict(grad_step=0.0), ValueError, r"grad_step: expected a finite positive"),
        (blur, x, dict(grad_step=float("inf")), ValueError, r"grad_step"),
        (blur, x, dict(sqrt=1), TypeError, r"sqrt: expected True or False, got 1"),
        (blur, x, dict(channel_axis=0), ValueError, r"channel_axis: expected a non-batch axis"),
        (blur, x, dict(channel_axis=4), ValueError, r"channel_axis: .*\[-4, 3\], got 4"),
        (blur, x, dict(channel_axis=-5), ValueError, r"channel_axis: .*\[-4, 3\], got -5"),
        (blur, x, dict(channel_axis=1.0), TypeError, r"channel_axis: expected None or an int"),
        (blur, x, dict(channel_axis=True), TypeError, r"channel_axis: expected None or an int"),
        (blur, np.zeros((2, 5)), dict(), ValueError,
         r"channel_axis: x of shape \(N, 5\) has no axis left to blur"),
        (blur, x, dict(batch_size=0), ValueError, r"batch_size: expected a positive integer"),
        (guided, x, dict(steps=0), ValueError, r"steps: expected a positive integer, got 0"),
        (guided, x, dict(fraction=1.5), ValueError, r"fraction: expected a number in \[0, 1\]"),
        (guided, x, dict(fraction=-0.1), ValueError, r"fraction: expected a number in \[0, 1\]"),
        (guided, x, dict(fraction=float("nan")), ValueError, r"fraction"),
        (guided, x, dict(fraction="a"), TypeError, r"fraction: expected a number in \[0, 1\]"),
        (guided, x, dict(max_dist=2.0), ValueError, r"max_dist: expected a number in \[0, 1\]"),
        (guided, x, dict(max_dist=False), TypeError, r"max_dist: expected a number"),
        (guided, x, dict(baseline=np.zeros((3, 4))), ValueError, r"baseline: expected"),
        (guided, x, dict(baseline=np.full((4, 4, 3), np.nan)), ValueError,
         r"baseline: expected finite values"),
        (guided, x, dict(baseline="a"), TypeError, r"baseline: expected a number"),
        (guided, x, dict(batch_size=-1), ValueError, r"batch_size: expected a positive"),
        (eg, x, dict(baselines=None), TypeError, r"baselines: expected a reference set"),
        (eg, x, dict(baselines=np.zeros((3, 4, 4))), ValueError,
         r"baselines: expected a reference set of shape \(B, 4, 4, 3\)"),
        (eg, x, dict(baselines=np.zeros((4, 4, 3))), ValueError,
         r"baselines: expected a reference set of shape \(B, 4, 4, 3\)"),
        (eg, x, dict(baselines=np.zeros((0, 4, 4, 3))), ValueError,
         r"baselines: expected at least one input"),
        (eg, x, dict(baselines=refs * np.nan), ValueError, r"baselines: expected finite"),
        (eg, x, dict(baselines=refs.astype(bool)), TypeError, r"baselines: expected a real"),
        (eg, x, dict(baselines=refs, n_samples=0), ValueError, r"n_samples: expected a posit"),
        (eg, x, dict(baselines=refs, stdev=-0.1), ValueError, r"stdev: expected a finite"),
        (eg, x, dict(baselines=refs, stdev=float("nan")), ValueError, r"stdev"),
        (eg, x, dict(baselines=refs, seed=-1), ValueError, r"seed: expected a non-negative"),
        (eg, x, dict(baselines=refs, seed=1.5), TypeError, r"seed: expected None"),
        (eg, x, dict(baselines=refs, batch_size=0), ValueError, r"batch_size: expected a"),
    ]


@pytest.mark.parametrize("case", range(len(_bad_cases())))
def test_bad_options_are_refused_before_any_callback_call(case):
    method, x, options, error, message = _bad_cases()[case]
    counting = callbacks.Counting(callbacks.linear(np.ones(x.shape[1:])))
    with pytest.raises(error, match=message):
        method(counting, x, None, **options)
    assert counting.calls == []


@pytest.mark.parametrize("method", [blur_integrated_gradients, guided_integrated_gradients,
                                    expected_gradients])
def test_a_non_callable_fn_and_a_bad_callback_result_are_refused(method):
    x = images(2, (4, 4, 3))
    extra = {"baselines": reference_set(2, (4, 4, 3))} if method is expected_gradients else {}
    with pytest.raises(TypeError, match=r"fn: expected a callable"):
        method("model", x, **extra)
    with pytest.raises(ValueError, match=r"fn call for rows 0\.\.1: expected an array of "
                                         r"shape \(2, 4, 4, 3\)"):
        method(lambda rows, target: np.zeros((len(rows), 3)), x, batch_size=2, **extra)
    with pytest.raises(ValueError, match=r"expected finite values, got NaN"):
        method(lambda rows, target: np.full(rows.shape, np.nan), x, **extra)
