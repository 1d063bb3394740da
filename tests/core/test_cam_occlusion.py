"""Grad-CAM, Grad-CAM++ and occlusion on hand-built activations and scores."""

from __future__ import annotations

import itertools
from functools import partial

import numpy as np
import pytest

from saliency_core import (
    grad_cam,
    grad_cam_plus_plus,
    guided_grad_cam,
    occlusion,
    resize_linear,
    smoothgrad,
)


def layer_returning(a, g):
    return lambda x, target: (a, g)


def test_grad_cam_by_hand():
    # two channels on a 2x2 grid (NCHW); channel weights are the mean gradients: 1 and -0.5
    a = np.array([[[[1.0, 2.0], [0.0, 4.0]], [[2.0, 2.0], [2.0, 2.0]]]])
    g = np.array([[[[1.0, 1.0], [1.0, 1.0]], [[-1.0, 0.0], [0.0, -1.0]]]])
    result = grad_cam(layer_returning(a, g), np.zeros((1, 3, 2, 2)), channel_axis=1,
                      input_channel_axis=1)
    # 1*A0 - 0.5*A1 = [[0, 1], [-1, 3]] -> ReLU
    np.testing.assert_allclose(result, [[[0.0, 1.0], [0.0, 3.0]]])


def test_grad_cam_plus_plus_by_hand():
    a = np.array([[[[1.0, 2.0], [0.0, 4.0]], [[2.0, 2.0], [2.0, 2.0]]]])  # NCHW, 2 channels
    g = np.array([[[[1.0, 2.0], [1.0, 0.0]], [[-1.0, 0.0], [0.0, 3.0]]]])
    result = grad_cam_plus_plus(layer_returning(a, g), np.zeros((1, 3, 2, 2)), channel_axis=1,
                                input_channel_axis=1)
    # channel 0: sum A = 7; alpha = g^2 / (2 g^2 + 7 g^3): g=1 -> 1/9, g=2 -> 4/64, g=0 -> 0
    w0 = 1 / 9 * 1 + 4 / 64 * 2 + 1 / 9 * 1
    # channel 1: sum A = 8; g=-1 -> ReLU(g) = 0; g=3 -> 9 / (18 + 8 * 27) * 3
    w1 = 9 / (18 + 8 * 27) * 3
    expected = np.maximum(w0 * a[0, 0] + w1 * a[0, 1], 0)
    np.testing.assert_allclose(result[0], expected, rtol=1e-12)


def test_cam_layouts_agree():
    rng = np.random.default_rng(0)
    a = rng.uniform(size=(2, 3, 4, 5))  # NHWC, C = 5
    g = rng.standard_normal((2, 3, 4, 5))
    x_nhwc = np.zeros((2, 6, 8, 3))
    for method in (grad_cam, grad_cam_plus_plus):
        nhwc = method(layer_returning(a, g), x_nhwc)
        nchw = method(layer_returning(a.transpose(0, 3, 1, 2), g.transpose(0, 3, 1, 2)),
                      x_nhwc.transpose(0, 3, 1, 2), channel_axis=1, input_channel_axis=1)
        assert nhwc.shape == (2, 6, 8)
        np.testing.assert_allclose(nhwc, nchw, rtol=1e-12)
        assert (nhwc >= 0).all()


def test_resize_linear():
    maps = np.array([[[1.0, 2.0], [3.0, 4.0]]])
    np.testing.assert_allclose(resize_linear(maps, (2, 2)), maps)
    big = resize_linear(maps, (4, 4))
    np.testing.assert_allclose(big[0, 0], [1.0, 1.25, 1.75, 2.0])
    np.testing.assert_allclose(big[0, :, 0], [1.0, 1.5, 2.5, 3.0])
    np.testing.assert_allclose(resize_linear(np.full((1, 3, 3), 7.0), (8, 5)), 7.0)


def test_layer_without_spatial_axes_is_refused():
    a = np.ones((1, 10))
    with pytest.raises(ValueError, match=r"shape \(1, 10\).*no spatial axes"):
        grad_cam(layer_returning(a, a), np.zeros((1, 4, 4, 3)))


def test_layer_fn_must_return_a_pair():
    with pytest.raises(TypeError, match=r"expected a pair \(activations, gradients\), got ndarray"):
        grad_cam(lambda x, t: np.ones((1, 2, 2, 3)), np.zeros((1, 4, 4, 3)))


def test_cam_gradients_shape_must_match():
    with pytest.raises(ValueError, match=r"gradients.*expected an array of shape \(1, 2, 2, 3\)"):
        grad_cam(layer_returning(np.ones((1, 2, 2, 3)), np.ones((1, 2, 2, 2))),
                 np.zeros((1, 4, 4, 3)))


def test_smooth_grad_cam_plus_plus_composes():
    # activations that follow the input: the smoothed map of a linear layer is the plain map
    def layer_fn(x, target):
        return x.copy(), np.ones_like(x)

    x = np.random.default_rng(0).uniform(1, 2, size=(2, 4, 4, 3))
    plain = grad_cam(layer_fn, x)
    smooth = smoothgrad(partial(grad_cam, layer_fn), x, n_samples=500, sigma=0.01, seed=0)
    assert smooth.shape == (2, 4, 4)
    np.testing.assert_allclose(smooth, plain, atol=5 * 0.01 * 3 / np.sqrt(500) + 1e-9)


# --- occlusion ------------------------------------------------------------------------------


def brute_force_occlusion(score, x, window, stride, baseline):
    """Loops over every window position of every input, the definition written out."""
    n, *shape = x.shape
    total = np.zeros_like(x, dtype=np.float64)
    count = np.zeros(shape)
    for start in itertools.product(*(range(0, d - w + 1, s)
                                     for d, w, s in zip(shape, window, stride, strict=True))):
        box = tuple(slice(b, b + w) for b, w in zip(start, window, strict=True))
        count[box] += 1
        for i in range(n):
            occluded = x[i].copy()
            occluded[box] = baseline
            total[i][box] += score(x[i:i + 1])[0] - score(occluded[None])[0]
    return np.divide(total, count, out=np.zeros_like(total), where=count > 0)


@pytest.mark.parametrize(("window", "stride"),
                         [((2, 2), (2, 2)), ((2, 3), (1, 2)), ((3, 3), (1, 1))])
def test_occlusion_of_three_times_sum(window, stride):
    x = np.random.default_rng(0).uniform(-1, 1, size=(2, 5, 6))
    score = lambda b: 3 * b.sum(axis=(1, 2))  # noqa: E731
    result = occlusion(score, x, window=window, stride=stride, baseline=0.25, batch_size=5)
    expected = brute_force_occlusion(score, x, window, stride, 0.25)
    np.testing.assert_allclose(result, expected, rtol=1e-12)


def test_occlusion_with_targets_and_channels():
    w = np.random.default_rng(1).standard_normal((4 * 4 * 2, 3))
    predict = lambda b: b.reshape(len(b), -1) @ w  # noqa: E731
    x = np.random.default_rng(2).uniform(size=(3, 4, 4, 2))
    target = np.array([0, 2, 1])
    result = occlusion(predict, x, target, window=(2, 2, 2), batch_size=4)
    # a linear score and non-overlapping windows: the drop of a window is sum(w_c * x) there
    contribution = (x.reshape(3, -1) * w[:, target].T).reshape(x.shape)
    for i in range(3):
        for r, c in itertools.product((0, 2), (0, 2)):
            box = (slice(r, r + 2), slice(c, c + 2), slice(None))
            np.testing.assert_allclose(result[i][box], contribution[i][box].sum(), rtol=1e-10)


def test_occlusion_call_count_and_bad_input():
    calls = []

    def predict(b):
        calls.append(len(b))
        return b.sum(axis=(1, 2))

    occlusion(predict, np.ones((2, 4, 4)), window=2, batch_size=3)
    assert calls == [2, 3, 3, 2]  # 2 unoccluded rows, then 2 x 4 windows in chunks of 3
    with pytest.raises(ValueError, match=r"window: expected sizes within the input's shape"):
        occlusion(predict, np.ones((1, 4, 4)), window=5)
    with pytest.raises(ValueError, match=r"one int per input axis \(2 for inputs of shape"):
        occlusion(predict, np.ones((1, 4, 4)), window=(2, 2, 2))
    with pytest.raises(ValueError, match=r"pass target"):
        occlusion(lambda b: np.ones((len(b), 3)), np.ones((1, 4, 4)), window=2)
    with pytest.raises(ValueError, match=r"target: expected indices in \[0, 2\], got 5"):
        occlusion(lambda b: np.ones((len(b), 3)), np.ones((1, 4, 4)), 5, window=2)


def test_guided_grad_cam_multiplies_and_broadcasts_over_channels():
    rng = np.random.default_rng(0)
    a = rng.uniform(size=(2, 2, 2, 4))
    g = rng.standard_normal((2, 2, 2, 4))
    guided = rng.standard_normal((2, 4, 4, 3))
    x = np.zeros((2, 4, 4, 3))
    cam = grad_cam(layer_returning(a, g), x)
    result = guided_grad_cam(lambda b, t: guided[: len(b)], x, layer_fn=layer_returning(a, g))
    np.testing.assert_allclose(result, guided * cam[..., None])
    # NCHW: the map is broadcast over axis 1
    result_nchw = guided_grad_cam(
        lambda b, t: guided.transpose(0, 3, 1, 2)[: len(b)], x.transpose(0, 3, 1, 2),
        layer_fn=layer_returning(a.transpose(0, 3, 1, 2), g.transpose(0, 3, 1, 2)),
        channel_axis=1, input_channel_axis=1,
    )
    np.testing.assert_allclose(result_nchw, result.transpose(0, 3, 1, 2))
