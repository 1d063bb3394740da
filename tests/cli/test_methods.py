"""The ``--method`` table: every entry run on a linear model whose maps are known exactly."""

from __future__ import annotations

import numpy as np
import pytest

from adapters.cli.methods import CALLBACKS, METHODS, Method, Options, compute
from saliency_core import smoothgrad

RNG = np.random.default_rng(0)
X = RNG.uniform(-1.0, 1.0, size=(3, 4, 5, 2))
WEIGHTS = RNG.standard_normal((3, 4, 5, 2))  # one weight map per class
TARGET = np.array([2, 0, 1])


class LinearModel:
    """Score ``t`` is ``sum(WEIGHTS[t] * x)``; its layer is the input itself.

    Stands in for :class:`adapters.models.Model` (``gradient_fn`` and ``layer_fn`` are all
    :func:`compute` uses) and records which callbacks were asked for.
    """

    def __init__(self) -> None:
        self.asked: list[tuple[str, object]] = []

    def gradient_fn(self, *, relu_rule=None):
        self.asked.append(("gradient", relu_rule))
        return lambda x, target: np.broadcast_to(WEIGHTS[target], x.shape).copy()

    def layer_fn(self, layer):
        self.asked.append(("layer", layer))
        return (lambda x, target: (x.copy(), WEIGHTS[target].copy())), -1


def cam(weights_of_channels: np.ndarray) -> np.ndarray:
    """``ReLU(sum_c w_c A_c)`` with the layer's activations ``A = X``."""
    return np.maximum((weights_of_channels[:, None, None, :] * X).sum(axis=-1), 0.0)


def run(name: str, **options) -> tuple[np.ndarray, LinearModel]:
    model = LinearModel()
    maps = compute(METHODS[name], model, X, TARGET, Options(n_samples=8, seed=1, **options))
    return maps, model


@pytest.mark.parametrize("name", ["gradient", "smoothgrad", "guided", "smoothgrad-guided"])
def test_gradient_methods_of_a_linear_model_are_its_weights(name):
    maps, _ = run(name)
    np.testing.assert_allclose(maps, WEIGHTS[TARGET], rtol=1e-12)


def test_smoothgrad_squared_is_the_squared_weights_and_vargrad_is_zero():
    np.testing.assert_allclose(run("smoothgrad-squared")[0], WEIGHTS[TARGET] ** 2, rtol=1e-12)
    np.testing.assert_allclose(run("vargrad")[0], 0.0, atol=1e-12)


def test_integrated_gradients_of_a_linear_model_are_input_times_weights():
    maps, _ = run("integrated-gradients", steps=3)
    np.testing.assert_allclose(maps, X * WEIGHTS[TARGET], rtol=1e-12)


def test_smoothgrad_over_integrated_gradients_is_the_mean_noisy_input_times_weights():
    """IG of a linear score from zero is ``x * w``; SmoothGrad averages it over ``x + noise``."""
    maps, _ = run("smoothgrad-ig", steps=3)
    mean_noisy_input = smoothgrad(lambda x, target: x, X, TARGET, n_samples=8, seed=1)
    assert not np.allclose(mean_noisy_input, X)
    np.testing.assert_allclose(maps, mean_noisy_input * WEIGHTS[TARGET], rtol=1e-10)


def test_grad_cam_weights_channels_by_their_mean_gradient():
    maps, model = run("grad-cam", layer="input")
    assert model.asked == [("layer", "input")]
    np.testing.assert_allclose(maps, cam(WEIGHTS[TARGET].mean(axis=(1, 2))), rtol=1e-12)


@pytest.mark.parametrize("name", ["grad-cam++", "smooth-grad-cam++"])
def test_grad_cam_plus_plus_maps_are_rectified_and_shaped_like_the_image(name):
    maps, _ = run(name, layer="input")
    assert maps.shape == X.shape[:3]
    assert (maps >= 0).all() and maps.max() > 0


@pytest.mark.parametrize("name", list(METHODS))
def test_each_method_asks_for_the_callback_its_entry_names(name):
    method = METHODS[name]
    _, model = run(name, layer="input", steps=2)
    kind = "layer" if method.needs_layer else "gradient"
    detail = "input" if method.needs_layer else CALLBACKS[method.callback]
    assert model.asked == [(kind, detail)]


def test_the_table_describes_every_method_under_its_own_name():
    assert list(METHODS)[:2] == ["gradient", "smoothgrad"]
    for name, method in METHODS.items():
        assert method.name == name and method.description
        assert method.needs_layer == (method.callback == "layer")
    assert {m.name for m in METHODS.values() if m.needs_layer} == {
        "grad-cam", "grad-cam++", "smooth-grad-cam++"}


def test_a_layer_method_without_a_layer_is_refused_before_any_callback():
    model = LinearModel()
    with pytest.raises(ValueError, match="grad-cam: expected a layer"):
        compute(METHODS["grad-cam"], model, X, TARGET, Options())
    assert model.asked == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (("saliency", "gradient"), "callback: expected one of gradient"),
        (("gradient", "grad-cam"), "attribution: expected one of gradient, integrated"),
        (("layer", "integrated-gradients"), "attribution: expected one of grad-cam"),
        (("gradient", "gradient", "median"), "aggregate: expected None or one of mean"),
    ],
)
def test_an_inconsistent_entry_is_refused(fields, message):
    callback, attribution, *aggregate = fields
    with pytest.raises(ValueError, match=message):
        Method("x", "x", callback, attribution, *aggregate)
