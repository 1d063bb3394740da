"""The ``--method`` table: every entry run on a linear model whose maps are known exactly."""

from __future__ import annotations

import numpy as np
import pytest

from adapters.cli.methods import CALLBACKS, METHODS, Method, Options, compute
from saliency_core import (
    black_white_integrated_gradients,
    blur_integrated_gradients,
    guided_integrated_gradients,
    rise,
    score_cam,
    smoothgrad,
    xrai,
)

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

    def predict_fn(self):
        self.asked.append(("predict", None))
        return lambda x: np.einsum("nhwc,khwc->nk", x, WEIGHTS)


#: The methods over noisy copies of a real model (tested on a PyTorch one below).
COPIES = ("noise-grad", "fusion-grad")


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


@pytest.mark.parametrize("noise", ["iid", "antithetic", "lhs"])
def test_the_noise_scheme_of_the_options_is_smoothgrads(noise):
    maps, _ = run("smoothgrad-ig", steps=3, noise=noise)
    mean_noisy_input = smoothgrad(lambda x, target: x, X, TARGET, n_samples=8, seed=1,
                                  noise=noise)
    np.testing.assert_allclose(maps, mean_noisy_input * WEIGHTS[TARGET], rtol=1e-10)
    other = "iid" if noise != "iid" else "lhs"
    assert not np.allclose(maps, run("smoothgrad-ig", steps=3, noise=other)[0])


def test_the_command_takes_the_noise_scheme_and_defaults_to_smoothgrads():
    from adapters.cli import build_parser
    from adapters.cli.errors import CommandError
    from adapters.cli.explain import options_of
    from saliency_core import DEFAULT_NOISE

    base = ["explain", "--model", "m:f", "--input", "x.png"]
    assert options_of(build_parser().parse_args(base)).noise == DEFAULT_NOISE == "lhs"
    assert options_of(build_parser().parse_args([*base, "--noise", "iid"])).noise == "iid"
    with pytest.raises(CommandError, match="--noise: invalid choice: 'sobol'"):
        build_parser().parse_args([*base, "--noise", "sobol"])


def test_grad_cam_weights_channels_by_their_mean_gradient():
    maps, model = run("grad-cam", layer="input")
    assert model.asked == [("layer", "input")]
    np.testing.assert_allclose(maps, cam(WEIGHTS[TARGET].mean(axis=(1, 2))), rtol=1e-12)


@pytest.mark.parametrize("name", ["grad-cam++", "smooth-grad-cam++"])
def test_grad_cam_plus_plus_maps_are_rectified_and_shaped_like_the_image(name):
    maps, _ = run(name, layer="input")
    assert maps.shape == X.shape[:3]
    assert (maps >= 0).all() and maps.max() > 0


@pytest.mark.parametrize("name", [name for name in METHODS if name not in COPIES])
def test_each_method_asks_for_the_callback_its_entry_names(name):
    method = METHODS[name]
    _, model = run(name, layer="input", steps=2, n_masks=8)
    if method.callback == "predict":
        expected = [("predict", None)]
    elif method.needs_layer:
        expected = [("layer", "input")] + ([("predict", None)] if name == "score-cam" else [])
    else:
        expected = [("gradient", CALLBACKS[method.callback])]
    assert model.asked == expected


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def test_the_newer_methods_run_the_core_with_the_options():
    gradient = LinearModel().gradient_fn()
    predict = LinearModel().predict_fn()
    options = dict(steps=4, batch_size=5)
    np.testing.assert_array_equal(
        run("blur-ig", **options)[0],
        blur_integrated_gradients(gradient, X, TARGET, steps=4, batch_size=5))
    np.testing.assert_array_equal(
        run("guided-ig", **options)[0],
        guided_integrated_gradients(gradient, X, TARGET, steps=4, batch_size=5))
    np.testing.assert_array_equal(
        run("xrai", **options)[0],
        xrai(lambda x, t: black_white_integrated_gradients(gradient, x, t, steps=4,
                                                             batch_size=5), X, TARGET))
    layer_fn, _ = LinearModel().layer_fn("input")
    np.testing.assert_array_equal(
        run("score-cam", layer="input", **options)[0],
        score_cam(layer_fn, X, TARGET, predict_fn=predict, batch_size=5))
    # RISE weighs its masks by the class probability
    np.testing.assert_allclose(
        run("rise", n_masks=40, **options)[0],
        rise(lambda x: softmax(predict(x)), X, TARGET, n_masks=40, batch_size=5, seed=1),
        rtol=1e-12)


def test_noise_grad_without_weight_noise_is_the_gradient_and_fusion_grad_smoothgrad():
    import torch

    from adapters.models import Model

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4 * 5 * 2, 3)).eval()
    model = Model(net)
    x = X.astype(np.float32)
    gradient = model.gradient_fn()(x, TARGET)
    options = Options(n_samples=4, seed=1, n_models=3, weight_noise=0.0)
    np.testing.assert_allclose(compute(METHODS["noise-grad"], model, x, TARGET, options),
                               gradient, rtol=1e-6)
    fused = compute(METHODS["fusion-grad"], model, x, TARGET, options)
    np.testing.assert_allclose(fused, gradient, rtol=1e-5)  # linear: every sample the same
    noisy = compute(METHODS["noise-grad"], model, x, TARGET,
                    Options(seed=1, n_models=3, weight_noise=0.3))
    assert noisy.shape == x.shape and not np.allclose(noisy, gradient, rtol=1e-3)


def test_the_table_describes_every_method_under_its_own_name():
    assert list(METHODS)[:2] == ["gradient", "smoothgrad"]
    for name, method in METHODS.items():
        assert method.name == name and method.description
        assert method.needs_layer == (method.callback == "layer")
    assert {m.name for m in METHODS.values() if m.needs_layer} == {
        "grad-cam", "grad-cam++", "smooth-grad-cam++", "layer-cam", "score-cam"}


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
