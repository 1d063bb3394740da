"""The demo models in PyTorch, TensorFlow and JAX: the numpy reference, and each other.

Both shipped variants (trained without and with input noise) are checked: the same logits
and the same gradients in every framework, equal to the numpy reference.

TensorFlow gradients go through ``adapters.tensorflow.gradient_fn`` only (compiled): an
eager ``tf.GradientTape`` through convolutions has crashed the process on these machines.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest

from adapters import demo
from tests.conftest import FRAMEWORKS, require


@functools.cache
def _samples() -> tuple[np.ndarray, np.ndarray]:
    return demo.load_samples()


@functools.cache
def _reference_logits(variant: str) -> np.ndarray:
    return demo.forward_numpy(demo.load_weights(variant), _samples()[0])


@functools.cache
def _model(framework: str):
    require(framework)
    return demo.build(framework)


@functools.cache
def _demo_model(framework: str, variant: str = "plain"):
    """The network as :func:`adapters.demo.model` gives it: NHWC numpy in and out."""
    require(framework)
    return demo.model(framework, variant=variant)


@functools.cache
def _callbacks(framework: str, variant: str = "plain"):
    """``(predict, gradient)`` taking and returning NHWC numpy arrays, through the backends."""
    model = _demo_model(framework, variant)
    return model.predict_fn(), model.gradient_fn()


@functools.cache
def _gradients(framework: str, variant: str = "plain") -> np.ndarray:
    images, labels = _samples()
    return np.asarray(_callbacks(framework, variant)[1](images, labels), dtype=np.float64)


def _relative_error(actual: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Per row: max |actual - expected| over max |expected|."""
    axes = tuple(range(1, expected.ndim))
    return np.abs(actual - expected).max(axis=axes) / np.abs(expected).max(axis=axes)


@pytest.mark.parametrize("variant", demo.VARIANTS)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_logits_equal_the_numpy_reference(framework, variant):
    predict, _ = _callbacks(framework, variant)
    logits = np.asarray(predict(_samples()[0]), dtype=np.float64)
    expected = _reference_logits(variant)
    assert logits.shape == (20, 10)
    assert _relative_error(logits, expected).max() < 1e-5
    np.testing.assert_array_equal(logits.argmax(axis=1), expected.argmax(axis=1))


@pytest.mark.parametrize("variant", demo.VARIANTS)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_build_with_a_variant_is_build_with_its_weights(framework, variant):
    """``model(f, variant=v)`` and ``model(f, weights=load_weights(v))`` are one network."""
    require(framework)
    by_weights = demo.model(framework, weights=demo.load_weights(variant))
    images = _samples()[0][:4]
    np.testing.assert_array_equal(np.asarray(by_weights.predict_fn()(images)),
                                  np.asarray(_callbacks(framework, variant)[0](images)))


@pytest.mark.slow
@pytest.mark.parametrize("variant", demo.VARIANTS)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_held_out_accuracy_is_the_same_in_every_framework(framework, variant):
    """Each framework classifies the 500 shipped held-out digits as the numpy reference."""
    images, labels = demo.load_held_out()
    predict, _ = _callbacks(framework, variant)
    predicted = np.concatenate([np.asarray(predict(images[i : i + 100])).argmax(axis=1)
                                for i in range(0, len(images), 100)])
    expected = demo.forward_numpy(demo.load_weights(variant), images).argmax(axis=1)
    np.testing.assert_array_equal(predicted, expected)
    assert float(np.mean(predicted == labels)) == demo.load_metadata(variant)["test_accuracy"]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_two_digits_side_by_side_give_the_numpy_logits(framework):
    """The net is fully convolutional: a 28x56 input works the same everywhere."""
    images = _samples()[0]
    pair = np.concatenate([images[6], images[12]], axis=1)[None]  # a 3 and a 6, (1, 28, 56, 1)
    expected = demo.forward_numpy(demo.load_weights(), pair)
    logits = np.asarray(_callbacks(framework)[0](pair), dtype=np.float64)
    assert _relative_error(logits, expected).max() < 1e-5


@functools.cache
def _directional_derivatives(variant: str) -> tuple[np.ndarray, np.ndarray]:
    """Random unit directions ``v`` and numpy central differences of the label's logit."""
    images, labels = _samples()
    weights = demo.load_weights(variant)
    rows = np.arange(len(labels))
    direction = np.random.default_rng(0).standard_normal(images.shape)
    direction /= np.sqrt((direction**2).sum(axis=(1, 2, 3), keepdims=True))
    step = 1e-4
    up = demo.forward_numpy(weights, images + step * direction)[rows, labels]
    down = demo.forward_numpy(weights, images - step * direction)[rows, labels]
    return direction, (up - down) / (2 * step)


@pytest.mark.parametrize("variant", demo.VARIANTS)
@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_gradients_are_directional_derivatives_of_the_numpy_reference(framework, variant):
    """g . v equals the numpy central difference along v (the net is piecewise linear)."""
    gradients = _gradients(framework, variant)
    direction, finite_difference = _directional_derivatives(variant)
    analytic = (gradients * direction).sum(axis=(1, 2, 3))
    scale = np.sqrt((gradients**2).sum(axis=(1, 2, 3)))
    assert (scale > 0).all()
    assert (np.abs(analytic - finite_difference) <= 1e-4 * scale).all()


_PAIRS = list(itertools.combinations(FRAMEWORKS, 2))


@pytest.mark.parametrize("variant", demo.VARIANTS)
@pytest.mark.parametrize(("first", "second"), _PAIRS, ids=["-".join(pair) for pair in _PAIRS])
def test_gradients_agree_across_frameworks(first, second, variant):
    a, b = _gradients(first, variant), _gradients(second, variant)
    assert a.shape == b.shape == (20, 28, 28, 1)
    assert _relative_error(a, b).max() < 1e-4


@pytest.mark.parametrize("variant", demo.VARIANTS)
@pytest.mark.parametrize(("first", "second"), _PAIRS, ids=["-".join(pair) for pair in _PAIRS])
def test_smoothgrad_maps_agree_across_frameworks(first, second, variant):
    """The same seed gives the same SmoothGrad map of the same weights in every framework."""
    from saliency_core import smoothgrad

    images, labels = _samples()
    maps = [smoothgrad(_callbacks(framework, variant)[1], images[:4], labels[:4],
                       n_samples=8, seed=3) for framework in (first, second)]
    assert _relative_error(np.asarray(maps[0], dtype=np.float64),
                           np.asarray(maps[1], dtype=np.float64)).max() < 1e-4


def test_torch_model_is_nchw_in_eval_mode_with_named_layers():
    torch = require("torch")
    model = _model("torch")
    assert not model.training
    modules = dict(model.named_modules())
    for layer in demo.ARCHITECTURE:
        assert layer.name in modules, layer.name
    assert isinstance(modules["conv3"], torch.nn.Conv2d)
    assert isinstance(modules["relu3"], torch.nn.ReLU)
    assert all(parameter.dtype == torch.float32 for parameter in model.parameters())
    with torch.no_grad():
        out = model(torch.zeros(2, 1, 28, 28))
    assert tuple(out.shape) == (2, 10)


def test_torch_export_is_the_inverse_of_loading():
    require("torch")
    from adapters.demo import _torch

    weights = demo.load_weights()
    exported = _torch.export_weights(_model("torch"))
    assert list(exported) == list(weights)
    for name in weights:
        np.testing.assert_array_equal(exported[name], weights[name], err_msg=name)


def test_keras_layers_are_named_like_the_architecture():
    require("tensorflow")
    model = _model("tensorflow")
    assert tuple(model.input_shape) == (None, None, None, 1)
    names = {layer.name for layer in model.layers}
    for layer in demo.ARCHITECTURE:
        assert layer.name in names, layer.name
        channels = model.get_layer(layer.name).output.shape[-1]
        assert channels == layer.output_shape[-1], layer.name


def test_jax_split_at_a_named_layer_reproduces_the_reference():
    require("jax")
    from adapters.demo import _jax

    _, params = _model("jax")
    images = _samples()[0][:4]
    expected = demo.activations_numpy(demo.load_weights(), images)
    features = np.asarray(_jax.apply_until(params, images, "relu3"))
    assert _relative_error(features, expected["relu3"]).max() < 1e-5
    logits = np.asarray(_jax.apply_from(params, features, "relu3"))
    assert _relative_error(logits, expected["fc"]).max() < 1e-5
    with pytest.raises(ValueError, match="expected a layer name"):
        _jax.apply_until(params, images, "conv4")


@pytest.mark.parametrize("framework", FRAMEWORKS)
@pytest.mark.parametrize("layer", ["relu3", "pool2"])
def test_model_reaches_a_named_layer_in_every_framework(framework, layer):
    """The layer's activations are numpy's, and past relu3 come only the global average
    pool and the dense layer, so there the gradient of logit t is ``fc_w[:, t] / 49``."""
    images, labels = _samples()
    images, labels = images[:3], labels[:3]
    layer_fn, channel_axis = _demo_model(framework).layer_fn(layer)
    activations, gradients = (np.moveaxis(np.asarray(a, dtype=np.float64), channel_axis, -1)
                              for a in layer_fn(images, labels))
    expected = demo.activations_numpy(demo.load_weights(), images)[layer]
    assert activations.shape == gradients.shape == expected.shape
    assert _relative_error(activations, expected).max() < 1e-5
    if layer == "relu3":
        fc_w = demo.load_weights()["fc_w"].astype(np.float64)
        per_position = np.broadcast_to(fc_w[:, labels].T[:, None, None, :] / 49, expected.shape)
        assert _relative_error(gradients, per_position).max() < 1e-5


def test_jax_split_refuses_an_unknown_layer_at_once():
    require("jax")
    from adapters.demo import _jax

    assert _jax.LAYER_SPLIT is _jax.split_at
    with pytest.raises(ValueError, match="expected a layer name in .*got 'conv4'"):
        _jax.split_at("conv4")
