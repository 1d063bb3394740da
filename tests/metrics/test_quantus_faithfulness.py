"""The faithfulness metrics give Quantus 0.6's numbers where the definitions coincide.

Both sides see the same small PyTorch CNN (ours through ``adapters.torch.predict_fn``), the
same float32 inputs and the same maps. Quantus draws its random subsets with numpy's
global ``np.random.choice``; the correlation test hands it, through that function, the
subsets our seed gives, so both compute on identical perturbations. Quantus's
``Infidelity`` perturbs by patches rather than Gaussian noise, so it is compared where the
answer does not depend on the perturbation: a linear model and its gradient.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.conftest import require

torch = require("torch")
quantus = require("quantus")

pytestmark = pytest.mark.slow  # importing Quantus imports every framework

from adapters import torch as torch_adapter  # noqa: E402
from saliency_core.metrics.faithfulness import (  # noqa: E402
    deletion,
    faithfulness_correlation,
    infidelity,
)

N, SIDE, CLASSES = 4, 8, 3
TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}  # float32 model, softmax in float32 on one side


def _cnn(channels: int, side: int = SIDE, seed: int = 0) -> torch.nn.Module:
    model = torch.nn.Sequential(
        torch.nn.Conv2d(channels, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(4, 4, 3, stride=2, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * ((side + 1) // 2) ** 2, CLASSES),
    )
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.from_numpy(
                rng.normal(scale=0.5, size=tuple(parameter.shape)).astype(np.float32)))
    return model.eval()


def _data(channels: int, map_channels: int, side: int = SIDE, seed: int = 1):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.1, 1.0, size=(N, channels, side, side)).astype(np.float32)
    maps = rng.normal(size=(N, map_channels, side, side)).astype(np.float32)  # no ties
    y = rng.integers(0, CLASSES, size=N)
    return x, maps, y


def _quantus(metric, model, x, y, maps, softmax: bool) -> np.ndarray:
    return np.asarray(metric(model=model, x_batch=x, y_batch=y, a_batch=maps,
                             channel_first=True, softmax=softmax, device="cpu"))


@pytest.mark.parametrize(("features_in_step", "softmax"), [(1, True), (4, False)])
def test_deletion_equals_pixel_flipping(softmax, features_in_step):
    model = _cnn(1)
    x, maps, y = _data(1, 1)
    theirs = _quantus(quantus.PixelFlipping(features_in_step=features_in_step,
                                            perturb_baseline=0.0, disable_warnings=True),
                      model, x, y, maps, softmax)
    ours = deletion(torch_adapter.predict_fn(model), x, maps, y,
                    steps=SIDE * SIDE // features_in_step,
                    score="softmax" if softmax else "output")
    assert theirs.shape == (N, SIDE * SIDE // features_in_step)
    np.testing.assert_allclose(ours.scores[:, 1:], theirs, **TOLERANCE)


@pytest.mark.parametrize("map_channels", [1, 3])
def test_deletion_equals_pixel_flipping_with_channels(map_channels):
    """Quantus ranks the map broadcast to x's shape: a map without channels removes the
    three channels of a position one after another, so three features a step is one
    position a step, which is ours with channel_axis. (Quantus wants features_in_step to
    divide the number of positions, hence 6x6 inputs.)"""
    side = 6
    model = _cnn(3, side)
    x, maps, y = _data(3, map_channels, side)
    theirs = _quantus(quantus.PixelFlipping(features_in_step=3, perturb_baseline=0.0,
                                            disable_warnings=True),
                      model, x, y, maps, softmax=True)
    predict = torch_adapter.predict_fn(model)
    if map_channels == 1:
        ours = deletion(predict, x, maps[:, 0], y, steps=side * side, score="softmax",
                        channel_axis=1)
    else:
        ours = deletion(predict, x, maps, y, steps=side * side, score="softmax")
    assert theirs.shape == (N, side * side)
    np.testing.assert_allclose(ours.scores[:, 1:], theirs, **TOLERANCE)


def test_deletion_of_patch_sums_equals_region_perturbation():
    model = _cnn(1)
    x, maps, y = _data(1, 1)
    patch = 2
    n_patches = (SIDE // patch) ** 2
    theirs = _quantus(quantus.RegionPerturbation(patch_size=patch, order="morf",
                                                 regions_evaluation=n_patches,
                                                 perturb_baseline=0.0, disable_warnings=True),
                      model, x, y, maps, softmax=True)
    sums = maps.reshape(N, 1, SIDE // patch, patch, SIDE // patch, patch).sum(axis=(3, 5))
    patch_maps = np.repeat(np.repeat(sums, patch, axis=2), patch, axis=3)
    ours = deletion(torch_adapter.predict_fn(model), x, patch_maps, y, steps=n_patches,
                    score="softmax")
    np.testing.assert_allclose(ours.scores[:, :1] - ours.scores[:, 1:], theirs, **TOLERANCE)


@pytest.mark.parametrize("softmax", [True, False])
def test_faithfulness_correlation_equals_quantus_on_the_same_subsets(softmax, monkeypatch):
    model = _cnn(1)
    x, maps, y = _data(1, 1)
    n_samples, subset_size, seed = 12, 10, 4
    n_features = SIDE * SIDE
    # the subsets our seed gives: the smallest of one uniform key per position, drawn
    # input by input, sample by sample
    keys = np.random.default_rng(seed).random((N, n_samples, n_features))
    subsets = np.argsort(keys, axis=2)[:, :, :subset_size]
    calls = []

    def choice(population, size, replace=True):
        assert (population, size, replace) == (n_features, subset_size, False)
        run, row = divmod(len(calls), N)  # Quantus draws run by run, input by input
        calls.append((run, row))
        return subsets[row][run]

    monkeypatch.setattr(np.random, "choice", choice)
    theirs = _quantus(quantus.FaithfulnessCorrelation(nr_runs=n_samples,
                                                      subset_size=subset_size,
                                                      perturb_baseline=0.0,
                                                      return_aggregate=False,
                                                      disable_warnings=True),
                      model, x, y, maps, softmax)
    monkeypatch.undo()
    assert len(calls) == N * n_samples
    ours = faithfulness_correlation(torch_adapter.predict_fn(model), x, maps, y,
                                    n_samples=n_samples, subset_size=subset_size, seed=seed,
                                    score="softmax" if softmax else "output")
    assert np.isfinite(ours).all() and (np.abs(ours) < 1).all()
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def test_infidelity_of_a_linear_models_gradient_is_zero_in_both():
    linear = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(SIDE * SIDE, CLASSES))
    rng = np.random.default_rng(2)
    with torch.no_grad():
        for parameter in linear.parameters():
            parameter.copy_(torch.from_numpy(
                rng.normal(size=tuple(parameter.shape)).astype(np.float32)))
    linear.eval()
    x, _, y = _data(1, 1)
    weights = linear[1].weight.detach().numpy()
    gradient = weights[y].reshape(N, 1, SIDE, SIDE)
    predict = torch_adapter.predict_fn(linear)
    metric = quantus.Infidelity(perturb_patch_sizes=[4], n_perturb_samples=2,
                                perturb_baseline=0.0, disable_warnings=True)
    theirs = _quantus(metric, linear, x, y, gradient, softmax=False)
    ours = infidelity(predict, x, gradient, y, n_samples=20, noise=0.2, seed=0)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-8)
    assert (np.abs(theirs) < 1e-8).all()
    # a wrong map is unfaithful in both (so the agreement above is not vacuous)
    assert (_quantus(metric, linear, x, y, 2 * gradient, softmax=False) > 1e-2).all()
    assert (infidelity(predict, x, 2 * gradient, y, n_samples=20, noise=0.2, seed=0)
            > 1e-2).all()
