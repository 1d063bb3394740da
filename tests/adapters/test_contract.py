"""The callback contract, one suite over every framework (through tests/adapters/harness_*)."""

from __future__ import annotations

import numpy as np
import pytest

from saliency_core import smoothgrad, vanilla_gradient
from tests.adapters import reference


def test_adapter_offers_the_two_callbacks(h):
    assert callable(h.adapter.gradient_fn) and callable(h.adapter.predict_fn)
    assert {"gradient_fn", "predict_fn"} <= set(h.adapter.__all__)


def test_linear_gradients_are_the_target_columns(h, w, x):
    target = np.array([0, 2, 1, 1, 0])
    grads = h.gradient_fn(h.linear_model(w))(x, target)
    assert isinstance(grads, np.ndarray) and grads.shape == x.shape
    assert grads.dtype == np.float32
    np.testing.assert_allclose(grads, w[:, target].T, rtol=1e-6, atol=1e-6)


def test_predict_fn_gives_outputs_without_gradients(h, w, x):
    outputs = h.predict_fn(h.linear_model(w))(x)
    assert isinstance(outputs, np.ndarray)
    np.testing.assert_allclose(outputs, x @ w, rtol=1e-5, atol=1e-6)


def test_scalar_model_needs_no_target(h, x):
    v = np.linspace(-1, 1, 6).astype(np.float32)
    grads = h.gradient_fn(h.scalar_model(v))(x, None)
    np.testing.assert_allclose(grads, np.broadcast_to(v, x.shape), rtol=1e-6, atol=1e-7)


def test_several_outputs_without_target_is_refused(h, w, x):
    with pytest.raises(ValueError, match="gives 3 outputs per row, so a target is needed"):
        h.gradient_fn(h.linear_model(w))(x, None)


@pytest.mark.parametrize("bad", [3, 7, -1])
def test_target_out_of_range_names_the_range(h, w, x, bad):
    target = np.array([0, 1, bad, 0, 1])
    with pytest.raises(ValueError, match=rf"expected targets in \[0, 2\] \(the model gives 3 "
                                         rf"outputs per row\), got \[{bad}\]"):
        h.gradient_fn(h.linear_model(w))(x, target)


def test_objective_square_sum(h, w, x):
    # S = sum_c (x w)_c^2, so dS/dx = 2 (x w) w^T
    grads = h.gradient_fn(h.linear_model(w), objective=h.square_sum_objective())(x, None)
    np.testing.assert_allclose(grads, 2 * (x @ w) @ w.T, rtol=1e-5, atol=1e-5)


def test_model_is_unchanged_by_calls_and_by_a_failing_objective(h):
    weights = reference.make_weights(0)
    model = h.reference_model(weights)
    before = h.snapshot(model)
    x = h.to_native(reference.make_inputs(3))
    h.gradient_fn(model)(x, np.array([1, 2, 3]))
    h.predict_fn(model)(x)

    def failing(output, target):
        raise RuntimeError("objective failed")

    with pytest.raises(RuntimeError, match="objective failed"):
        h.gradient_fn(model, objective=failing)(x, None)
    after = h.snapshot(model)
    assert before.keys() == after.keys()
    for key in before:
        np.testing.assert_array_equal(np.asarray(after[key]), np.asarray(before[key]), err_msg=key)


def test_reference_network_outputs_and_gradients(h):
    weights = reference.make_weights(0)
    x = reference.make_inputs(4)
    model = h.reference_model(weights)
    logits = h.predict_fn(model)(h.to_native(x))
    expected = reference.forward(weights, x)
    assert np.abs(logits - expected).max() <= 1e-5 * np.abs(expected).max()
    target = np.array([0, 3, 5, 9])
    grads = h.from_native(h.gradient_fn(model)(h.to_native(x[:1]), target[:1]))
    fd = reference.finite_difference_gradient(weights, x[:1], target[:1])
    assert np.abs(grads - fd).max() <= 1e-4 * np.abs(fd).max()


def test_the_core_drives_every_adapter(h, w, x):
    fn = h.gradient_fn(h.linear_model(w))
    np.testing.assert_allclose(vanilla_gradient(fn, x, 1, batch_size=2), np.tile(w[:, 1], (5, 1)),
                               rtol=1e-6)
    np.testing.assert_allclose(smoothgrad(fn, x, 2, n_samples=7, batch_size=4, seed=0),
                               np.tile(w[:, 2], (5, 1)), rtol=1e-5)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_models_give_float32_maps(h, dtype):
    weights = reference.make_weights(0)
    x = h.to_native(reference.make_inputs(2))
    target = np.array([4, 4])
    full = h.gradient_fn(h.reference_model(weights))(x, target)
    half = h.gradient_fn(h.reference_model(weights, dtype=dtype))(x, target)
    assert half.dtype == np.float32 and half.shape == full.shape
    # half precision flips some ReLU and max-pool decisions (a float16 max-pool tie moves
    # one window by 6% here; bfloat16 has an 8-bit mantissa): compare whole maps by norm
    tolerance = 0.1 if dtype == "float16" else 0.15
    assert np.linalg.norm(half - full) <= tolerance * np.linalg.norm(full)


def test_relu_rules_are_checked_alike(h, w, x):
    assert h.adapter.RELU_RULES == ("guided", "deconvnet")
    with pytest.raises(ValueError, match=r"expected relu_rule to be one of None, 'guided', "
                                         r"'deconvnet', got 'guided_backprop'"):
        h.gradient_fn(h.linear_model(w), relu_rule="guided_backprop")
    with pytest.raises(TypeError, match="expected relu_rule to be None, 'guided' or 'deconvnet'"):
        h.gradient_fn(h.linear_model(w), relu_rule=1)


@pytest.mark.parametrize("rule", ["guided", "deconvnet"])
def test_a_rule_on_a_model_without_relu_is_refused(h, w, x, rule):
    # the map would silently be the plain gradient: every adapter says so instead
    with pytest.raises(ValueError, match=f"relu_rule='{rule}' met no ReLU"):
        h.gradient_fn(h.linear_model(w), relu_rule=rule)(x, np.zeros(len(x), dtype=int))
