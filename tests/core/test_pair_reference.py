"""Blur IG and Guided IG equal PAIR's reference implementations (``saliency`` 0.2.1).

PAIR's ``saliency.core`` (the authors' own library, in the ``reference`` extra) is called
with the same numpy callback and settings, one input at a time, as its API takes them;
our methods take the whole batch. Two things of PAIR's are worked around here, not in
our code:

- its Guided IG calls ``np.quantile(..., interpolation=...)``, which numpy 2.4 removed: a
  shim maps the keyword to ``method=`` for PAIR's module only;
- its Blur IG multiplies every point of a batch by the sigma spacing of the batch's last
  point, which is only right when the spacing is uniform: with ``sqrt=True`` its maps
  depend on its ``batch_size``, and ``batch_size=1`` (its default) gives the path sum.
"""

from __future__ import annotations

import numpy as np
import pytest
import saliency.core as pair
from saliency.core import blur_ig as pair_blur_ig
from saliency.core import guided_ig as pair_guided_ig
from scipy import ndimage

from saliency_core.paths import (
    _gaussian_blur,
    blur_integrated_gradients,
    guided_integrated_gradients,
)
from tests.core.test_paths import TanhNet

SHAPE = (9, 8, 3)


class _NumpyWithQuantileShim:
    """numpy as PAIR's Guided IG module sees it: ``quantile(interpolation=)`` is mapped to
    ``quantile(method=)``, everything else is numpy's own."""

    def __getattr__(self, name: str):
        return getattr(np, name)

    @staticmethod
    def quantile(a, q, *args, interpolation=None, **kwargs):
        if interpolation is not None:
            kwargs["method"] = interpolation
        return np.quantile(a, q, *args, **kwargs)


@pytest.fixture
def pair_guided(monkeypatch):
    monkeypatch.setattr(pair_guided_ig, "np", _NumpyWithQuantileShim())
    return pair.GuidedIG()


@pytest.fixture(scope="module")
def problem():
    x = np.random.default_rng(20).uniform(0, 1, size=(3, *SHAPE))
    return TanhNet(SHAPE, seed=21), x, np.array([0, 3, 2])


def pair_callback(model, target):
    """PAIR's ``call_model_function`` for one input's target, over the same model."""

    def call_model_function(batch, call_model_args=None, expected_keys=None):
        gradients = model(batch, np.full(len(batch), target))
        return {pair.INPUT_OUTPUT_GRADIENTS: gradients}

    return call_model_function


@pytest.mark.parametrize("sigma", [0.05, 0.3, 1.0, 2.6, 7.0, 50.0])
@pytest.mark.parametrize("length", [9, 1100])
def test_the_blur_is_scipys_gaussian_filter_with_zero_padding(sigma, length):
    # both of our blurs (a matrix for short axes, tap by tap for long ones) against scipy
    image = np.random.default_rng(22).uniform(size=(length, 7, 3))
    ours = _gaussian_blur(image, sigma, (0, 1))
    theirs = ndimage.gaussian_filter(image, sigma=[sigma, sigma, 0], mode="constant")
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ours, pair_blur_ig.gaussian_blur(image, sigma), rtol=1e-12,
                               atol=1e-15)


@pytest.mark.parametrize("options", [
    {},  # PAIR's defaults: max_sigma=50, steps=100, grad_step=0.01
    dict(max_sigma=4.0, steps=30, grad_step=0.1),
    dict(max_sigma=10.0, steps=20, grad_step=0.5),
], ids=["defaults", "small-sigma", "large-grad-step"])
def test_blur_ig_equals_pairs(problem, options):
    model, x, target = problem
    ours = blur_integrated_gradients(model, x, target, batch_size=7, **options)
    theirs = np.stack([
        pair.BlurIG().GetMask(x[i], pair_callback(model, target[i]), batch_size=16, **options)
        for i in range(len(x))
    ])
    assert np.abs(theirs).max() > 0.1
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)


def test_blur_ig_sqrt_equals_pairs_path_sum(problem):
    model, x, target = problem
    options = dict(max_sigma=9.0, steps=25, sqrt=True)
    ours = blur_integrated_gradients(model, x, target, batch_size=10, **options)
    theirs = np.stack([
        pair.BlurIG().GetMask(x[i], pair_callback(model, target[i]), batch_size=1, **options)
        for i in range(len(x))
    ])
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)
    # PAIR's batches of several points weigh them all by the last point's spacing
    batched = pair.BlurIG().GetMask(x[0], pair_callback(model, target[0]), batch_size=10,
                                    **options)
    assert np.abs(batched - theirs[0]).max() > 1e-3


@pytest.mark.parametrize("options", [
    {},  # PAIR's defaults: steps=200, fraction=0.25, max_dist=0.02
    dict(steps=60, fraction=0.1, max_dist=0.1),
    dict(steps=40, fraction=0.5, max_dist=1.0),
    dict(steps=30, fraction=0.25, max_dist=0.0),
], ids=["defaults", "narrow", "unbounded", "straight-line"])
@pytest.mark.parametrize("baseline", [None, 0.3])
def test_guided_ig_equals_pairs(problem, pair_guided, options, baseline):
    model, x, target = problem
    ours = guided_integrated_gradients(model, x, target, baseline=baseline, batch_size=2,
                                       **options)
    pair_options = {("x_steps" if key == "steps" else key): value
                    for key, value in options.items()}
    theirs = np.stack([
        pair_guided.GetMask(
            x[i], pair_callback(model, target[i]),
            x_baseline=None if baseline is None else np.full(SHAPE, baseline),
            **pair_options)
        for i in range(len(x))
    ])
    assert np.abs(theirs).max() > 0.1
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)
