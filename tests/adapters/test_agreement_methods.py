"""Guided backpropagation, deconvnet, Grad-CAM(++) and Guided Grad-CAM agree across frameworks."""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from saliency_core import grad_cam, grad_cam_plus_plus, guided_grad_cam, smoothgrad
from tests.adapters import reference
from tests.adapters.harness import load_harness
from tests.conftest import FRAMEWORKS


@pytest.fixture(scope="module")
def setup():
    weights = reference.make_weights(0)
    x = reference.make_inputs(3, seed=11)
    harnesses = {name: load_harness(name) for name in FRAMEWORKS}
    models = {name: h.reference_model(weights) for name, h in harnesses.items()}
    return harnesses, models, x


def nhwc(h, fn):
    """A gradient callback in the harness's layout, seen from NHWC."""
    return lambda batch, target: h.from_native(fn(h.to_native(batch), target))


def relative_difference(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def agree(maps, tolerance=1e-4):
    first = maps[FRAMEWORKS[0]]
    for name in FRAMEWORKS[1:]:
        assert maps[name].shape == first.shape, name
        assert relative_difference(maps[name], first) < tolerance, name


@pytest.mark.parametrize("rule", ["guided", "deconvnet"])
def test_relu_rules_agree_and_differ_from_the_gradient(setup, rule):
    harnesses, models, x = setup
    target = np.array([2, 5, 9])
    maps = {name: nhwc(h, h.gradient_fn(models[name], relu_rule=rule))(x, target)
            for name, h in harnesses.items()}
    agree(maps)
    h = harnesses[FRAMEWORKS[0]]
    plain = nhwc(h, h.gradient_fn(models[FRAMEWORKS[0]]))(x, target)
    assert relative_difference(maps[FRAMEWORKS[0]], plain) > 1e-2


def test_relu_rules_leave_the_forward_pass_alone(setup):
    harnesses, models, x = setup
    expected = reference.forward(reference.make_weights(0), x)
    for name, h in harnesses.items():
        # a rule only changes the backward pass: predictions and plain gradients stay
        h.gradient_fn(models[name], relu_rule="guided")(h.to_native(x), np.array([0, 0, 0]))
        logits = h.predict_fn(models[name])(h.to_native(x))
        assert np.abs(logits - expected).max() <= 1e-5 * np.abs(expected).max(), name


@pytest.mark.parametrize("method", [grad_cam, grad_cam_plus_plus])
def test_grad_cam_maps_agree(setup, method):
    harnesses, models, x = setup
    target = np.array([1, 3, 3])
    maps = {}
    for name, h in harnesses.items():
        axis = h.LAYER_CHANNEL_AXIS
        maps[name] = method(h.layer_fn(models[name], "block"), h.to_native(x), target,
                            channel_axis=axis, input_channel_axis=1 if axis == 1 else -1)
    assert maps[FRAMEWORKS[0]].shape == (3, 16, 16)
    assert (maps[FRAMEWORKS[0]] >= 0).all() and maps[FRAMEWORKS[0]].max() > 0
    agree(maps)


def test_guided_grad_cam_and_smooth_grad_cam_plus_plus_agree(setup):
    harnesses, models, x = setup
    target = np.array([0, 6, 8])
    guided, smooth = {}, {}
    for name, h in harnesses.items():
        axis = h.LAYER_CHANNEL_AXIS
        input_axis = 1 if axis == 1 else -1
        layer = h.layer_fn(models[name], "block")
        guided[name] = h.from_native(guided_grad_cam(
            h.gradient_fn(models[name], relu_rule="guided"), h.to_native(x), target,
            layer_fn=layer, channel_axis=axis, input_channel_axis=input_axis))
        # Smooth Grad-CAM++: the noise is drawn in each framework's own layout, so the
        # maps are compared with the NHWC noise by going through an NHWC callback
        cam = partial(grad_cam_plus_plus, lambda b, t, layer=layer, h=h: layer(h.to_native(b), t),
                      channel_axis=axis, input_channel_axis=None, size=(16, 16))
        smooth[name] = smoothgrad(cam, x, target, n_samples=8, batch_size=6, seed=0)
    agree(guided)
    agree(smooth)
    assert smooth[FRAMEWORKS[0]].shape == (3, 16, 16)
