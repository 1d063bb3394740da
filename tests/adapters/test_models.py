"""adapters.models.Model: one channels-last view of a model of any framework."""

from __future__ import annotations

import numpy as np
import pytest

from adapters.models import Model, detect_framework
from tests.adapters import reference
from tests.adapters.harness import load_harness
from tests.conftest import FRAMEWORKS


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_model_gives_the_native_callbacks_in_channels_last(framework):
    h = load_harness(framework)
    weights = reference.make_weights(0)
    x = reference.make_inputs(2, seed=3)
    target = np.array([1, 8])
    handle = h.reference_model(weights)
    model = Model(handle)
    assert model.framework == framework == detect_framework(handle)
    expected = h.from_native(h.gradient_fn(handle)(h.to_native(x), target))
    np.testing.assert_allclose(model.gradient_fn()(x, target), expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(model.predict_fn()(x), reference.forward(weights, x), rtol=1e-4,
                               atol=1e-5)


def test_bad_models_and_frameworks_are_refused():
    with pytest.raises(TypeError, match="expected a torch.nn.Module, a Keras model, or a JAX "
                                        r"\(apply_fn, params\) pair, got str"):
        Model("resnet50")
    with pytest.raises(ValueError, match="framework: expected one of torch, tensorflow, jax, "
                                         "got 'mxnet'"):
        Model((lambda p, x: x, {}), framework="mxnet")


def test_a_jax_model_needs_a_split_for_grad_cam():
    load_harness("jax")
    model = Model((lambda params, x: x.sum(axis=(1, 2, 3)), None))
    with pytest.raises(ValueError, match="no named layers"):
        model.layer_fn("conv3")


def test_grey_channels_last_batches_reach_pytorch_as_plain_nchw_tensors():
    # np.moveaxis of an (N, H, W, 1) batch is "C-contiguous" to numpy but not to PyTorch,
    # whose .view would fail; the model must see a tensor with ordinary strides
    torch = load_harness("torch").torch
    seen = []

    class Flat(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(28 * 28, 3)

        def forward(self, x):
            seen.append(x.is_contiguous())
            return self.fc(x.view(x.shape[0], -1))

    model = Model(Flat().eval())
    x = np.random.default_rng(0).random((2, 28, 28, 1), dtype=np.float32)
    grads = model.gradient_fn()(x, np.array([0, 2]))
    weight = model.handle.fc.weight.detach().numpy()
    np.testing.assert_allclose(grads, weight[[0, 2]].reshape(2, 28, 28, 1), rtol=1e-6)
    assert model.predict_fn()(x).shape == (2, 3) and seen == [True, True]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_model_weight_copies_are_models_of_the_same_framework(framework):
    h = load_harness(framework)
    weights = reference.make_weights(0)
    model = Model(h.reference_model(weights))
    x = reference.make_inputs(2, seed=3)
    layers = model.weight_layers()
    copy = model.copy_with_weights(lambda weight, rng: np.zeros_like(weight), layers=layers[-1:])
    assert copy.framework == framework and copy.weight_layers() == layers
    np.testing.assert_array_equal(copy.predict_fn()(x), np.zeros((2, reference.N_CLASSES)))
    np.testing.assert_allclose(model.predict_fn()(x), reference.forward(weights, x), rtol=1e-4,
                               atol=1e-5)


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_a_models_device_is_every_callbacks_default_and_its_copies(framework):
    h = load_harness(framework)
    weights = reference.make_weights(0)
    x = reference.make_inputs(2, seed=3)
    on_cpu = Model(h.reference_model(weights), device="cpu")
    np.testing.assert_allclose(on_cpu.predict_fn()(x), reference.forward(weights, x),
                               rtol=1e-4, atol=1e-5)
    assert on_cpu.copy_with_weights(lambda weight, rng: weight).device == "cpu"
    nowhere = Model(h.reference_model(weights), device="nowhere")
    for make in (nowhere.gradient_fn, nowhere.predict_fn):
        with pytest.raises(ValueError, match="expected a device such as 'cpu'.*got 'nowhere'"):
            make()
    # a device named in the call wins over the model's
    np.testing.assert_allclose(nowhere.predict_fn(device="cpu")(x), on_cpu.predict_fn()(x),
                               rtol=1e-6)
