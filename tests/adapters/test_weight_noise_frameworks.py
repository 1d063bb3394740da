"""NoiseGrad, FusionGrad, Score-CAM and Layer-CAM through PyTorch, TensorFlow and JAX.

The reference network (``tests/adapters/reference.py``) is loaded with the same weights in
each framework and seen channels-last through :class:`adapters.models.Model`. Score-CAM and
Layer-CAM are checked against numpy: the block's activations from the numpy forward pass,
and, since the block is followed by a global average pool and the dense layer, the
gradient of logit ``t`` with respect to block position ``(h, w, c)`` is ``fc_w[c, t] / 16``.

Weights noise: each layer's stream comes from the seed and the layer's name, and within a
layer the weights are drawn in name order (bias, then kernel, in every framework). Keras
and JAX hold kernels in the same layouts (HWIO, and (in, out) for the dense layer);
PyTorch's are OIHW and (out, in), and its ``copy_with_weights`` hands the transform each
weight in the Keras/JAX layout, so ``noisy_copies`` gives all three the same noise element
for element, and the same maps.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pytest

from adapters._backend import layer_generator, multiplicative_noise
from adapters.models import Model, noisy_copies
from saliency_core.cam import layer_cam, resize_linear, score_cam
from saliency_core.weight_noise import copy_seeds, fusion_grad, noise_grad
from tests.adapters import reference
from tests.adapters.harness import load_harness
from tests.conftest import FRAMEWORKS

WEIGHTS = reference.make_weights(0)
X = reference.make_inputs(2)
TARGET = np.array([3, 7])
SIGMA = 0.1


def model_of(h, weights=WEIGHTS):
    return Model(h.reference_model(weights), layers=lambda name: h.LAYERS[name])


def block_activations(weights, x):
    """The residual block's output after its ReLU, NHWC (N, 4, 4, 16), in numpy."""
    p = {k: v.astype(np.float64) for k, v in weights.items()}
    h = reference.max_pool_2x2(np.maximum(reference.conv2d(x, p["c1_w"], p["c1_b"], 1, 1), 0))
    r = np.maximum(reference.conv2d(h, p["c2_w"], p["c2_b"], 2, 1), 0)
    r = reference.conv2d(r, p["c3_w"], p["c3_b"], 1, 1)
    return np.maximum(r + reference.conv2d(h, p["sc_w"], p["sc_b"], 2, 0), 0)


def noisy_numpy_weights(seed, sigma=SIGMA):
    """The weights of one noisy copy, drawn here as every backend draws them (HWIO)."""
    noisy = {}
    for layer in ("c1", "c2", "c3", "sc", "fc"):
        rng = layer_generator(seed, layer)
        for kind in ("b", "w"):  # name order: bias before kernel in every framework
            weight = WEIGHTS[f"{layer}_{kind}"]
            noisy[f"{layer}_{kind}"] = multiplicative_noise(sigma)(weight, rng)
    return noisy


# --------------------------------------------------------------------------- NoiseGrad


@pytest.mark.slow
def test_noise_grad_and_fusion_grad_are_the_same_in_every_framework():
    # the reference: each copy built from noisy numpy weights, its gradient through JAX
    # (any framework would do: the plain gradient is checked against all three elsewhere)
    seeds = [int(s.generate_state(1, np.uint64)[0]) for s in copy_seeds(0, 3)]
    results = {}
    for framework in FRAMEWORKS:
        h = load_harness(framework)
        model = model_of(h)
        make_fn = noisy_copies(model, sigma=SIGMA)
        results[framework] = (
            noise_grad(make_fn, X, TARGET, n_models=3, seed=0),
            fusion_grad(make_fn, X, TARGET, n_models=2, n_samples=2, sigma=0.05, seed=0),
        )
    h = load_harness(FRAMEWORKS[-1])
    expected = np.mean([model_of(h, noisy_numpy_weights(seed)).gradient_fn()(X, TARGET)
                        for seed in seeds], axis=0)
    for framework, (noise, fusion) in results.items():
        scale = np.abs(expected).max()
        np.testing.assert_allclose(noise, expected, rtol=1e-3, atol=2e-4 * scale,
                                   err_msg=framework)
        np.testing.assert_allclose(fusion, results[FRAMEWORKS[0]][1], rtol=1e-3,
                                   atol=2e-4 * np.abs(fusion).max(), err_msg=framework)
    plain = model_of(h).gradient_fn()(X, TARGET)
    assert np.abs(expected - plain).max() > 0.01 * np.abs(plain).max()  # the noise shows


def test_noisy_copies_are_seeded_leave_the_model_and_reduce_to_the_plain_map(h):
    handle = h.reference_model(WEIGHTS)
    before = h.snapshot(handle)
    model = Model(handle)
    make_fn = noisy_copies(model, sigma=SIGMA)
    first = noise_grad(make_fn, X, TARGET, n_models=1, seed=4)
    np.testing.assert_array_equal(noise_grad(make_fn, X, TARGET, n_models=1, seed=4), first)
    np.testing.assert_array_equal(make_fn(copy_seeds(4, 1)[0])(X, TARGET), first)
    other = noise_grad(make_fn, X, TARGET, n_models=1, seed=5)
    assert not np.allclose(other, first, rtol=1e-3)
    plain = model.gradient_fn()(X, TARGET)
    flat = noise_grad(noisy_copies(model, sigma=0.0), X, TARGET, n_models=1, seed=4)
    np.testing.assert_allclose(flat, plain, rtol=1e-6, atol=1e-7 * np.abs(plain).max())
    after = h.snapshot(handle)
    for key in before:
        np.testing.assert_array_equal(np.asarray(after[key]), np.asarray(before[key]),
                                      err_msg=key)
    np.testing.assert_array_equal(model.gradient_fn()(X, TARGET), plain)


def test_noisy_copies_of_a_framework_model_give_its_own_layout(h):
    handle = h.reference_model(WEIGHTS)
    native = h.from_native(noise_grad(noisy_copies(handle, sigma=SIGMA), h.to_native(X),
                                      TARGET, n_models=2, seed=1))
    seen = noise_grad(noisy_copies(Model(handle), sigma=SIGMA), X, TARGET, n_models=2, seed=1)
    np.testing.assert_allclose(native, seen, rtol=1e-6, atol=1e-7 * np.abs(seen).max())


def test_noisy_copies_of_one_layer_and_other_callbacks(h):
    model = model_of(h)
    # only the last layer noisy, Grad-CAM-like callbacks on each copy: Layer-CAM of the block
    def layer_cam_of(copy):
        layer_fn, channel_axis = copy.layer_fn("block")
        return partial(layer_cam, layer_fn, channel_axis=channel_axis, input_channel_axis=-1)

    make_fn = noisy_copies(model, layer_cam_of, sigma=SIGMA, layers="fc")
    result = noise_grad(make_fn, X, TARGET, n_models=2, seed=2)
    # the block is untouched; the gradient to it is fc_w * eta / 16 per copy
    a = block_activations(WEIGHTS, X)
    maps = []
    for seed in copy_seeds(2, 2):
        noisy = multiplicative_noise(SIGMA)
        rng = layer_generator(int(seed.generate_state(1, np.uint64)[0]), "fc")
        noisy(WEIGHTS["fc_b"], rng)  # the bias is drawn first
        # (in, out) in every framework: PyTorch's (out, in) weight is drawn in that layout
        fc_w = noisy(WEIGHTS["fc_w"], rng).astype(np.float64)
        gradient = fc_w[:, TARGET].T[:, None, None, :] / 16
        maps.append(resize_linear(np.maximum((np.maximum(gradient, 0) * a).sum(-1), 0), (16, 16)))
    expected = np.mean(maps, axis=0)
    np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-5 * expected.max())


def test_noisy_copies_refuse_bad_options_before_any_copy(h):
    model = Model(h.reference_model(WEIGHTS))
    with pytest.raises(ValueError, match="expected sigma to be finite and non-negative"):
        noisy_copies(model, sigma=-0.1)
    with pytest.raises(TypeError, match="expected sigma to be a number"):
        noisy_copies(model, sigma="0.1")
    with pytest.raises(ValueError, match="no layer with weights named 'nowhere'"):
        noisy_copies(model, layers=["nowhere"])
    with pytest.raises(TypeError, match="callback: expected None or a callable"):
        noisy_copies(model, "gradient")
    with pytest.raises(TypeError, match="expected a numpy.random.SeedSequence, got int"):
        noisy_copies(model)(3)
    with pytest.raises(TypeError, match="expected a torch.nn.Module, a Keras model"):
        noisy_copies(object())


# --------------------------------------------------------------------------- CAMs


def test_score_cam_and_layer_cam_equal_numpy(h):
    model = model_of(h)
    layer_fn, channel_axis = model.layer_fn("block")
    a = block_activations(WEIGHTS, X)
    # Score-CAM: numpy activations, numpy model
    expected = score_cam(lambda x, t: (a, a), X, TARGET,
                         predict_fn=lambda z: reference.forward(WEIGHTS, z),
                         channel_axis=-1, input_channel_axis=-1)
    result = score_cam(layer_fn, X, TARGET, predict_fn=model.predict_fn(),
                       channel_axis=channel_axis, input_channel_axis=-1, batch_size=12)
    assert result.shape == (2, 16, 16) and result.dtype == np.float32
    np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-5 * expected.max())
    # Layer-CAM: the gradient to the block is fc_w[:, t] / 16 at every position
    gradient = WEIGHTS["fc_w"][:, TARGET].T.astype(np.float64)[:, None, None, :] / 16
    expected = resize_linear(np.maximum((np.maximum(gradient, 0) * a).sum(-1), 0), (16, 16))
    result = layer_cam(layer_fn, X, TARGET, channel_axis=channel_axis, input_channel_axis=-1)
    np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-5 * expected.max())
