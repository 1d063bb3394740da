"""XRAI and RISE give the same maps through the PyTorch, TensorFlow and JAX callbacks.

Each framework runs the shared reference network (``tests/adapters/reference.py``) in its
own layout (NCHW for PyTorch, NHWC otherwise), so the methods also see ``channel_axis`` 1
and -1; the maps are compared with each other and, for RISE, with the numpy forward pass.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from saliency_core.rise import rise
from saliency_core.xrai import black_white_integrated_gradients, xrai
from tests.adapters import reference
from tests.adapters.harness import load_harness
from tests.conftest import FRAMEWORKS


@pytest.fixture(scope="module")
def setup():
    weights = reference.make_weights(0)
    x = reference.make_inputs(2, seed=21)
    harnesses = {name: load_harness(name) for name in FRAMEWORKS}
    models = {name: h.reference_model(weights) for name, h in harnesses.items()}
    return weights, harnesses, models, x


def relative_difference(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.slow
def test_rise_maps_agree_with_numpy_in_every_framework(setup):
    weights, harnesses, models, x = setup
    target = np.array([3, 7])
    options = dict(n_masks=96, grid_size=4, seed=5, batch_size=40)
    expected = rise(lambda b: reference.forward(weights, b), x, target, **options)
    assert expected.shape == (2, 16, 16)
    for name, h in harnesses.items():
        maps = rise(h.predict_fn(models[name]), h.to_native(x), target,
                    channel_axis=h.adapter.CHANNEL_AXIS, **options)
        assert maps.shape == (2, 16, 16) and maps.dtype == np.float32, name
        assert relative_difference(maps, expected) < 1e-5, name


@pytest.mark.slow
def test_xrai_maps_agree_across_frameworks(setup):
    _, harnesses, models, x = setup
    target = np.array([1, 4])
    # three bands of rows and two halves of columns, overlapping: a ranking with choices
    rows, columns = np.mgrid[:16, :16]
    segments = [rows // 6 == k for k in range(3)] + [columns < 8, columns >= 8]
    maps, defaults = {}, {}
    for name, h in harnesses.items():
        base = partial(black_white_integrated_gradients, h.gradient_fn(models[name]), steps=16)
        axis = h.adapter.CHANNEL_AXIS
        maps[name] = xrai(base, h.to_native(x), target, segments=[segments] * 2,
                          channel_axis=axis, min_pixel_diff=1)
        # the default segmentation, of the image in the framework's layout
        defaults[name] = xrai(base, h.to_native(x), target, channel_axis=axis,
                              algorithm="fast", segmentation_size=(64, 64), min_pixel_diff=8)
    first = FRAMEWORKS[0]
    assert maps[first].shape == (2, 16, 16)
    assert len(np.unique(maps[first][0])) > 2  # several regions, ranked
    assert len(np.unique(defaults[first][0])) > 2
    for name in FRAMEWORKS[1:]:
        assert relative_difference(maps[name], maps[first]) < 1e-4, name
        assert relative_difference(defaults[name], defaults[first]) < 1e-4, name
