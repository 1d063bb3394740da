"""Layer-CAM and Score-CAM on hand-built activations and models whose answers are known.

The definitions checked are the papers' and their peers': Layer-CAM is
``ReLU(sum_k ReLU(G_k) * A_k)`` (Jiang et al. 2021; pytorch-grad-cam's ``LayerCAM`` and
tf-keras-vis's ``Layercam`` compute the same before their final min-max scaling); Score-CAM
weighs each activation map by the target's softmax probability on the input masked by the
min-max normalised, upsampled map (Wang et al.'s code and tf-keras-vis's ``Scorecam``),
by the raw output, or by that output softmaxed over channels (pytorch-grad-cam).
"""

from __future__ import annotations

import numpy as np
import pytest

from saliency_core.cam import (
    SCORE_CAM_SCORES,
    grad_cam,
    layer_cam,
    resize_linear,
    score_cam,
)


class Counted:
    def __init__(self, fn):
        self.fn = fn
        self.rows: list[int] = []

    def __call__(self, *args):
        self.rows.append(len(args[0]))
        return self.fn(*args)


def layer_returning(a, g=None):
    g = np.zeros_like(a) if g is None else g
    return lambda x, target: (a[: len(x)] if len(x) == len(a) else a, g)


def rowwise_layer(a, g=None):
    """A layer callback that returns the rows of ``a`` (and ``g``) of the inputs it gets:
    inputs carry their own index in element [0, 0, 0, 0]."""
    g = np.zeros_like(a) if g is None else g

    def fn(x, target):
        index = x[:, 0, 0, 0].astype(int)
        return a[index], g[index]

    return fn


def indexed_inputs(n, shape, seed=0):
    x = np.random.default_rng(seed).uniform(0.5, 1.5, size=(n, *shape))
    x[:, 0, 0, 0] = np.arange(n)
    return x


# --------------------------------------------------------------------------- Layer-CAM


def test_layer_cam_by_hand():
    # NCHW, two channels on a 2x2 grid; each position weighted by its own ReLU(gradient)
    a = np.array([[[[1.0, 2.0], [0.0, 4.0]], [[2.0, 1.0], [3.0, 2.0]]]])
    g = np.array([[[[1.0, -1.0], [2.0, 0.5]], [[-2.0, 3.0], [0.5, -1.0]]]])
    result = layer_cam(layer_returning(a, g), np.zeros((1, 3, 2, 2)), channel_axis=1,
                       input_channel_axis=1)
    # channel 0: [[1, 0], [0, 2]]; channel 1: [[0, 3], [1.5, 0]]
    np.testing.assert_allclose(result, [[[1.0, 3.0], [1.5, 2.0]]], rtol=1e-15)


def test_layer_cam_clips_the_sum_too():
    a = np.array([[[[-3.0]], [[1.0]]]])  # NCHW 1x1, negative activations can pull below 0
    g = np.array([[[[1.0]], [[1.0]]]])
    result = layer_cam(layer_returning(a, g), np.zeros((1, 1, 1, 1)), channel_axis=1,
                       input_channel_axis=1)
    np.testing.assert_array_equal(result, [[[0.0]]])


def test_layer_cam_is_grad_cam_when_each_channels_gradient_is_one_positive_value():
    rng = np.random.default_rng(0)
    a = rng.uniform(-1, 1, size=(3, 4, 5, 6))  # NHWC
    g = np.broadcast_to(rng.uniform(0.1, 2.0, size=(3, 1, 1, 6)), a.shape).copy()
    x = np.zeros((3, 8, 10, 3))
    np.testing.assert_allclose(layer_cam(layer_returning(a, g), x),
                               grad_cam(layer_returning(a, g), x), rtol=1e-12, atol=1e-15)


def test_layer_cam_equals_its_definition_resized_in_both_layouts():
    rng = np.random.default_rng(1)
    a = rng.uniform(size=(2, 3, 4, 5))  # NHWC, C = 5
    g = rng.standard_normal((2, 3, 4, 5))
    expected = resize_linear(np.maximum((np.maximum(g, 0) * a).sum(axis=-1), 0), (6, 8))
    nhwc = layer_cam(layer_returning(a, g), np.zeros((2, 6, 8, 3)))
    nchw = layer_cam(layer_returning(a.transpose(0, 3, 1, 2), g.transpose(0, 3, 1, 2)),
                     np.zeros((2, 3, 6, 8)), channel_axis=1, input_channel_axis=1)
    np.testing.assert_allclose(nhwc, expected, rtol=1e-12)
    np.testing.assert_allclose(nchw, expected, rtol=1e-12)


def test_layer_cam_keeps_float32_and_does_not_depend_on_batch_size():
    rng = np.random.default_rng(2)
    a = rng.uniform(size=(5, 2, 2, 4)).astype(np.float32)
    g = rng.standard_normal((5, 2, 2, 4)).astype(np.float32)
    x = indexed_inputs(5, (4, 4, 3)).astype(np.float32)
    maps = [layer_cam(rowwise_layer(a, g), x, batch_size=b) for b in (1, 2, 64)]
    assert maps[0].dtype == np.float32 and maps[0].shape == (5, 4, 4)
    for other in maps[1:]:
        np.testing.assert_array_equal(other, maps[0])


# --------------------------------------------------------------------------- Score-CAM

#: class weights (H, W, C, classes) of the linear model predict(x) = sum_hwc x V
CLASS_WEIGHTS = np.random.default_rng(3).standard_normal((4, 4, 3, 5))


def linear_predict(x):
    return np.einsum("khwc,hwcj->kj", x, CLASS_WEIGHTS)


def score_cam_by_definition(a, x, target, score):
    """Score-CAM written out input by input, channel by channel (NHWC ``a`` and ``x``)."""
    maps = []
    for i in range(len(x)):
        weights = np.zeros(a.shape[-1])
        has_mask = np.zeros(a.shape[-1], dtype=bool)
        for k in range(a.shape[-1]):
            up = resize_linear(a[i : i + 1, :, :, k], x.shape[1:3])[0]
            if up.max() == up.min():
                continue
            mask = (up - up.min()) / (up.max() - up.min())
            logits = linear_predict((x[i] * mask[:, :, None])[None])[0]
            if score == "probability":
                weights[k] = np.exp(logits[target[i]]) / np.exp(logits).sum()
            else:
                weights[k] = logits[target[i]]
            has_mask[k] = True
        if score == "channel-softmax":
            e = np.where(has_mask, np.exp(weights - weights[has_mask].max()), 0.0)
            weights = e / e.sum()
        cam = np.maximum((a[i] * weights).sum(axis=-1), 0)
        maps.append(resize_linear(cam[None], x.shape[1:3])[0])
    return np.stack(maps)


@pytest.mark.parametrize("score", SCORE_CAM_SCORES)
def test_score_cam_equals_its_definition_on_a_linear_model(score):
    rng = np.random.default_rng(4)
    a = rng.uniform(0, 2, size=(3, 2, 2, 6))  # NHWC, 6 channels on 2x2
    a[1, :, :, 2] = 0.7  # a constant map: no mask, weight 0
    x = rng.uniform(0, 1, size=(3, 4, 4, 3))
    target = np.array([0, 3, 4])
    predict = Counted(linear_predict)
    result = score_cam(layer_returning(a), x, target, predict_fn=predict, score=score)
    np.testing.assert_allclose(result, score_cam_by_definition(a, x, target, score),
                               rtol=1e-12, atol=1e-14)
    assert sum(predict.rows) == 3 * 6 - 1  # the constant map is never sent to the model


def test_score_cam_of_a_model_that_reads_one_pixel():
    # predict(x) = x[2, 1, 0] * 3 (one score): channel k's weight is 3 * x[2, 1, 0] * H_k[2, 1]
    a = np.zeros((1, 4, 4, 2))
    a[0, 2, 1, 0] = 5.0  # channel 0 peaks at the pixel read: H = 1 there
    a[0, 0, 3, 1] = 2.0  # channel 1 elsewhere: H = 0 at the pixel
    x = np.full((1, 4, 4, 1), 2.0)
    result = score_cam(layer_returning(a), x, predict_fn=lambda x: 3 * x[:, 2, 1, 0],
                       score="output")
    np.testing.assert_allclose(result[0], 3 * 2.0 * a[0, :, :, 0], rtol=1e-15)
    assert result[0].argmax() == np.ravel_multi_index((2, 1), (4, 4))


def test_score_cam_masks_are_upsampled_and_broadcast_over_input_channels():
    # a 1x2 layer on a 1x4 input: masks are resize_linear of the maps, min-max normalised
    a = np.array([[[[0.0], [1.0]]]])  # NHWC (1, 1, 2, 1)
    seen = []

    def predict(x):
        seen.append(x.copy())
        return x.reshape(len(x), -1).sum(axis=1)

    x = np.ones((1, 1, 4, 2))
    score_cam(layer_returning(a), x, predict_fn=predict, score="output", channel_axis=-1,
              input_channel_axis=-1)
    mask = resize_linear(np.array([[[0.0, 1.0]]]), (1, 4))[0]  # [0, .25, .75, 1]
    np.testing.assert_allclose(seen[0][0], np.stack([mask, mask], axis=-1))


def test_score_cam_channels_first():
    rng = np.random.default_rng(5)
    a = rng.uniform(size=(2, 2, 2, 3))
    x = rng.uniform(size=(2, 4, 4, 3))
    target = np.array([1, 2])
    nhwc = score_cam(layer_returning(a), x, target, predict_fn=linear_predict)
    nchw = score_cam(layer_returning(a.transpose(0, 3, 1, 2)), x.transpose(0, 3, 1, 2),
                     target, predict_fn=lambda z: linear_predict(z.transpose(0, 2, 3, 1)),
                     channel_axis=1, input_channel_axis=1)
    np.testing.assert_allclose(nchw, nhwc, rtol=1e-12)


def test_score_cam_probability_sums_to_one_over_classes():
    # with every class's map summed, the weights are probabilities summing to 1 per channel
    rng = np.random.default_rng(6)
    a = rng.uniform(size=(1, 2, 2, 3))
    x = rng.uniform(size=(1, 4, 4, 3))
    total = sum(score_cam(layer_returning(a), x, c, predict_fn=linear_predict) for c in range(5))
    expected = resize_linear(np.maximum(a.sum(axis=-1), 0), (4, 4))
    np.testing.assert_allclose(total, expected, rtol=1e-12)


def test_score_cam_does_not_depend_on_batch_size_and_keeps_the_dtype():
    rng = np.random.default_rng(7)
    a = rng.uniform(size=(5, 2, 2, 4))
    x = indexed_inputs(5, (4, 4, 3))
    target = np.array([0, 1, 2, 3, 4])
    for dtype in (np.float32, np.float64):
        maps = []
        for batch_size in (1, 3, 7, 64):
            predict = Counted(linear_predict)
            maps.append(score_cam(rowwise_layer(a.astype(dtype)), x.astype(dtype), target,
                                  predict_fn=predict, batch_size=batch_size))
            assert max(predict.rows) <= batch_size and sum(predict.rows) == 5 * 4
        assert maps[0].dtype == dtype and maps[0].shape == (5, 4, 4)
        for other in maps[1:]:
            np.testing.assert_allclose(other, maps[0], rtol=1e-12 if dtype == np.float64
                                       else 1e-6)


def test_score_cam_without_masks_gives_zeros_and_calls_no_model():
    predict = Counted(linear_predict)
    result = score_cam(layer_returning(np.ones((1, 2, 2, 3))), np.ones((1, 4, 4, 3)), 0,
                       predict_fn=predict)
    np.testing.assert_array_equal(result, np.zeros((1, 4, 4)))
    assert predict.rows == []


GOOD_X = np.ones((2, 4, 4, 3))
BAD = [
    (dict(x=np.full((2, 4, 4, 3), np.nan)), ValueError, "x: expected finite values"),
    (dict(target=[0]), ValueError, r"target: expected one index per input, shape \(2,\)"),
    (dict(target=None), ValueError, "score='probability' .* needs a target"),
    (dict(batch_size=0), ValueError, "batch_size: expected a positive integer"),
    (dict(score="logit"), ValueError, "score: expected one of 'probability', 'output'"),
    (dict(progress="yes"), TypeError, "progress: expected True or False"),
    (dict(input_channel_axis=4), ValueError, r"input_channel_axis: expected an axis in"),
    (dict(channel_axis=1.0), TypeError, "channel_axis: expected an int axis"),
    (dict(predict_fn="model"), TypeError, "predict_fn: expected a callable"),
]


@pytest.mark.parametrize(("options", "error", "message"), BAD,
                         ids=[next(iter(o)) + str(i) for i, (o, _, _) in enumerate(BAD)])
def test_score_cam_refuses_bad_input_before_any_callback_call(options, error, message):
    layer = Counted(layer_returning(np.ones((2, 2, 2, 3))))
    predict = Counted(linear_predict)
    arguments = dict(x=GOOD_X, target=0, predict_fn=predict) | options
    x, target = arguments.pop("x"), arguments.pop("target")
    with pytest.raises(error, match=message):
        score_cam(layer, x, target, **arguments)
    assert layer.rows == [] and predict.rows == []


@pytest.mark.parametrize(("options", "error", "message"), BAD[:2] + BAD[3:4] + BAD[7:8])
def test_layer_cam_refuses_bad_input_before_any_callback_call(options, error, message):
    layer = Counted(layer_returning(np.ones((2, 2, 2, 3))))
    arguments = dict(x=GOOD_X, target=0) | options
    x, target = arguments.pop("x"), arguments.pop("target")
    with pytest.raises(error, match=message):
        layer_cam(layer, x, target, **arguments)
    assert layer.rows == []


def test_score_cam_checks_what_the_model_returns():
    a = np.random.default_rng(8).uniform(size=(1, 2, 2, 3))
    x = np.ones((1, 4, 4, 3))
    with pytest.raises(ValueError, match=r"predict_fn call for rows 0..2: expected targets "
                                         r"below 5 .* got 7"):
        score_cam(layer_returning(a), x, 7, predict_fn=linear_predict)
    with pytest.raises(ValueError, match=r"expected one score per row, shape \(k,\) or "
                                         r"\(k, 1\), with target=None"):
        score_cam(layer_returning(a), x, predict_fn=linear_predict, score="output")
    with pytest.raises(ValueError, match=r"predict_fn call for rows 0..2: expected 3 rows"):
        score_cam(layer_returning(a), x, 0, predict_fn=lambda z: linear_predict(z)[:1])
    with pytest.raises(ValueError, match="predict_fn call for rows 0..2: expected finite"):
        score_cam(layer_returning(a), x, 0, predict_fn=lambda z: linear_predict(z) * np.nan)
    calls = iter([(3, 5), (3, 4)])
    with pytest.raises(ValueError, match=r"predict_fn call for rows 1..1: expected an array "
                                         r"of shape \(1, 5\)"):
        score_cam(layer_returning(a), x, 0, batch_size=1,
                  predict_fn=lambda z: np.ones((1, next(calls, (3, 4))[1])))


def test_score_cam_refuses_layers_without_spatial_axes():
    with pytest.raises(ValueError, match="the layer has no spatial axes"):
        score_cam(lambda x, t: (np.ones((1, 3)), np.ones((1, 3))), np.ones((1, 4, 4, 3)), 0,
                  predict_fn=linear_predict)
