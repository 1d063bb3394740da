"""Blur IG, Guided IG and expected gradients give the same maps in every framework.

The reference network (``tests/adapters/reference.py``) with the same weights in PyTorch,
TensorFlow and JAX: the maps of each framework's gradient callback agree with each other,
are shaped and typed like the input, and Blur IG keeps completeness against the numpy
forward pass.
"""

from __future__ import annotations

import numpy as np
import pytest

from saliency_core.paths import (
    _gaussian_blur,
    blur_integrated_gradients,
    expected_gradients,
    guided_integrated_gradients,
)
from tests.adapters import reference
from tests.adapters.harness import load_harness
from tests.conftest import FRAMEWORKS

TARGET = np.array([2, 5, 9])


@pytest.fixture(scope="module")
def setup():
    weights = reference.make_weights(0)
    x = reference.make_inputs(3, seed=31)
    harnesses = {name: load_harness(name) for name in FRAMEWORKS}
    models = {name: h.reference_model(weights) for name, h in harnesses.items()}
    return weights, harnesses, models, x


def nhwc(h, fn):
    """A gradient callback in the harness's layout, seen from NHWC."""
    return lambda batch, target: h.from_native(fn(h.to_native(batch), target))


def relative_difference(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def maps_of(setup, method, **options):
    _, harnesses, models, x = setup
    return {name: method(nhwc(h, h.gradient_fn(models[name])), x, TARGET, **options)
            for name, h in harnesses.items()}


def agree(maps, tolerance):
    first = maps[FRAMEWORKS[0]]
    assert first.shape == (3, *reference.INPUT_SHAPE) and first.dtype == np.float32
    assert np.abs(first).max() > 0
    for name in FRAMEWORKS[1:]:
        assert maps[name].shape == first.shape and maps[name].dtype == np.float32, name
        assert relative_difference(maps[name], first) < tolerance, name


def score(weights, x):
    return reference.forward(weights, x)[np.arange(len(x)), TARGET]


@pytest.mark.slow
def test_blur_ig_agrees_and_keeps_completeness(setup):
    weights, _, _, x = setup
    max_sigma, steps = 4.0, 40
    maps = maps_of(setup, blur_integrated_gradients, max_sigma=max_sigma, steps=steps,
                   grad_step=max_sigma / steps)
    agree(maps, 1e-4)
    blurred = np.stack([_gaussian_blur(image, max_sigma, (0, 1)) for image in x])
    truth = score(weights, x) - score(weights, blurred)
    sums = maps[FRAMEWORKS[0]].reshape(3, -1).sum(axis=1)
    np.testing.assert_allclose(sums, truth, atol=0.05 * np.abs(truth).max())


@pytest.mark.slow
def test_blur_ig_in_each_frameworks_own_layout(setup):
    # channel_axis names the layout: PyTorch's NCHW batch with channel_axis=1 gives the
    # NHWC maps, transposed
    _, harnesses, models, x = setup
    options = dict(max_sigma=3.0, steps=10)
    for name, h in harnesses.items():
        native = blur_integrated_gradients(h.gradient_fn(models[name]), h.to_native(x), TARGET,
                                           channel_axis=h.adapter.CHANNEL_AXIS, **options)
        seen = blur_integrated_gradients(nhwc(h, h.gradient_fn(models[name])), x, TARGET,
                                         **options)
        assert relative_difference(h.from_native(native), seen) < 1e-5, name


@pytest.mark.slow
def test_guided_ig_agrees(setup):
    # completeness is checked in tests/core/test_paths.py on a smooth score; on this ReLU
    # network with few steps the path sum is only rough
    maps = maps_of(setup, guided_integrated_gradients, steps=30)
    # float32 gradients differ in their last bits between frameworks, which can swap which
    # of two nearly equal gradients is moved first: agreement to 1e-3, not 1e-4
    agree(maps, 1e-3)


@pytest.mark.slow
def test_expected_gradients_agree_and_are_seeded(setup):
    weights, _, _, x = setup
    baselines = reference.make_inputs(4, seed=32) * 0.5
    options = dict(baselines=baselines, n_samples=16, stdev=0.05, seed=0)
    maps = maps_of(setup, expected_gradients, **options)
    agree(maps, 1e-4)
    again = maps_of(setup, expected_gradients, **options, batch_size=5)
    for name in FRAMEWORKS:
        assert relative_difference(again[name], maps[name]) < 1e-5, name
