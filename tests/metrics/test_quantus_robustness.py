"""Our robustness and randomisation numbers are Quantus 0.6's where the definitions agree.

Quantus draws its noise from numpy's global random state and we from ``seed``, so the
metrics are compared on PyTorch models whose answer does not depend on the noise drawn:

* ``w . x + c ||x - round(x)||`` at integer inputs: every neighbour's gradient map is the
  original map plus a vector of length ``c``, so both sensitivities are ``c / ||w||``;
* ``k ||x||^2 / 2 + linear``: the gradient moves by ``k`` times the input's move, so the
  local Lipschitz estimate is ``k``;
* two classes: the random logit's "other class" is forced.

The similarity functions are compared with Quantus's directly. Quantus normalises maps by
default (``normalise=True`` divides a batch of maps by its largest ``|value|``); the
comparisons turn that off, as our metrics do not normalise.
"""

from __future__ import annotations

import numpy as np
import pytest

from saliency_core.metrics.randomisation import random_logit
from saliency_core.metrics.robustness import avg_sensitivity, local_lipschitz, max_sensitivity
from saliency_core.metrics.similarity import pearson, spearman, ssim
from tests.conftest import require

torch = require("torch")
quantus = require("quantus")

pytestmark = pytest.mark.slow  # importing Quantus imports every framework
similarity_func = quantus.functions.similarity_func

from adapters.torch import gradient_fn  # noqa: E402  (after torch is known to be there)


def _explain_func(grad_fn):
    """Quantus's explain_func over our gradient callback."""

    def explain(model, inputs, targets, **kwargs):
        return grad_fn(np.asarray(inputs), np.asarray(targets))

    return explain


class UnitStep(torch.nn.Module):
    """``w . x + c ||x - round(x)||`` for both of two outputs."""

    def __init__(self, w: torch.Tensor, c: float):
        super().__init__()
        self.w = torch.nn.Parameter(w)
        self.c = c

    def forward(self, x):
        flat = x.flatten(1)
        score = flat @ self.w + self.c * torch.linalg.vector_norm(flat - torch.round(flat), dim=1)
        return torch.stack([score, -score], dim=1)


class Quadratic(torch.nn.Module):
    """``k ||x||^2 / 2 + linear(x)``: the gradient is ``k x + W[target]``."""

    def __init__(self, k: float, size: int):
        super().__init__()
        self.k = k
        self.linear = torch.nn.Linear(size, 2)

    def forward(self, x):
        flat = x.flatten(1)
        return self.linear(flat) + 0.5 * self.k * (flat * flat).sum(dim=1, keepdim=True)


def _quantus_scores(metric, model, grad_fn, x, y):
    return np.asarray(
        metric(model=model, x_batch=x, y_batch=y, explain_func=_explain_func(grad_fn),
               device="cpu")
    )


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.integers(-3, 4, size=(3, 1, 4, 4)).astype(np.float64), np.array([0, 1, 0])


@pytest.mark.parametrize(
    ("ours", "theirs"),
    [(avg_sensitivity, "AvgSensitivity"), (max_sensitivity, "MaxSensitivity")],
)
def test_sensitivities_equal_quantus(images, ours, theirs):
    x, y = images
    torch.manual_seed(0)
    model = UnitStep(torch.randn(16, dtype=torch.float64), 0.3).eval()
    grad_fn = gradient_fn(model)
    metric = getattr(quantus, theirs)(
        nr_samples=6, lower_bound=0.2, normalise=False, disable_warnings=True
    )
    expected = _quantus_scores(metric, model, grad_fn, x, y)
    value = ours(grad_fn, x, y, radius=0.2, n_samples=6, seed=0)
    np.testing.assert_allclose(value, expected, rtol=1e-12)
    np.testing.assert_allclose(value, 0.3 / model.w.norm().item(), rtol=1e-12)


def test_a_linear_model_has_zero_sensitivity_in_both(images):
    x, y = images
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2)).double().eval()
    grad_fn = gradient_fn(model)
    metric = quantus.MaxSensitivity(nr_samples=4, lower_bound=0.5, normalise=False,
                                    disable_warnings=True)
    expected = _quantus_scores(metric, model, grad_fn, x, y)
    np.testing.assert_array_equal(expected, np.zeros(3))
    np.testing.assert_array_equal(max_sensitivity(grad_fn, x, y, radius=0.5, n_samples=4,
                                                  seed=0), expected)


def test_local_lipschitz_equals_quantus(images):
    x, y = images
    torch.manual_seed(1)
    model = Quadratic(1.7, 16).double().eval()
    grad_fn = gradient_fn(model)
    metric = quantus.LocalLipschitzEstimate(nr_samples=5, perturb_std=0.1, normalise=False,
                                            disable_warnings=True)
    expected = _quantus_scores(metric, model, grad_fn, x, y)
    value = local_lipschitz(grad_fn, x, y, n_samples=5, sigma=0.1, seed=0)
    np.testing.assert_allclose(value, expected, rtol=1e-8)  # Quantus adds 1e-10 below
    np.testing.assert_allclose(value, 1.7, rtol=1e-12)


@pytest.mark.parametrize(
    ("similarity", "function"),
    [("spearman", "correlation_spearman"), ("pearson", "correlation_pearson")],
)
def test_random_logit_equals_quantus(similarity, function):
    torch.manual_seed(2)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 3, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(3 * 64, 2),
    ).double().eval()
    grad_fn = gradient_fn(model)
    x = np.random.default_rng(1).normal(size=(4, 1, 8, 8))
    y = np.array([0, 1, 1, 0])
    metric = quantus.RandomLogit(num_classes=2, similarity_func=getattr(similarity_func, function),
                                 normalise=False, disable_warnings=True)
    expected = _quantus_scores(metric, model, grad_fn, x, y)
    value = random_logit(grad_fn, x, y, n_classes=2, similarity=similarity, seed=0)
    np.testing.assert_allclose(value, expected, rtol=1e-10, atol=1e-12)
    assert np.ptp(value) > 0.05  # maps that depend on the input: a real comparison


def test_random_logit_ssim_equals_quantus_on_one_dimensional_maps():
    torch.manual_seed(3)
    model = torch.nn.Sequential(
        torch.nn.Linear(12, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2)
    ).double().eval()
    grad_fn = gradient_fn(model)
    x = np.random.default_rng(2).normal(size=(4, 12))
    y = np.array([0, 1, 1, 0])
    metric = quantus.RandomLogit(num_classes=2, normalise=False, disable_warnings=True)
    expected = _quantus_scores(metric, model, grad_fn, x, y)  # SSIM is Quantus's default
    value = random_logit(grad_fn, x, y, n_classes=2, seed=0)
    np.testing.assert_allclose(value, expected, rtol=1e-10, atol=1e-12)


def test_similarity_functions_equal_quantus():
    rng = np.random.default_rng(4)
    a = rng.integers(0, 6, size=(5, 10, 10)).astype(np.float64)  # ties for the ranks
    b = 0.5 * a + rng.normal(size=a.shape)
    flat_a, flat_b = a.reshape(5, -1), b.reshape(5, -1)
    np.testing.assert_allclose(
        spearman(a, b), similarity_func.correlation_spearman(flat_a, flat_b, batched=True),
        rtol=0, atol=1e-12,
    )
    np.testing.assert_allclose(
        pearson(a, b), similarity_func.correlation_pearson(flat_a, flat_b, batched=True),
        rtol=0, atol=1e-12,
    )
    # 2-D maps, and the flattened rows Quantus's metrics pass it
    np.testing.assert_allclose(ssim(a, b), similarity_func.ssim(a, b, batched=True),
                               rtol=0, atol=1e-12)
    np.testing.assert_allclose(ssim(flat_a, flat_b),
                               similarity_func.ssim(flat_a, flat_b, batched=True),
                               rtol=0, atol=1e-12)
