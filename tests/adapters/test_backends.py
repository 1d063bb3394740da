"""The rules every backend shares, one suite over every framework.

Each backend module offers the same names with the same meanings (``adapters/__init__.py``),
and answers bad input with the same words (``adapters/_backend.py``). Plain Python callables
on arrays are models in all three frameworks (``lambda x: x[:1, 0]`` indexes a torch tensor,
a TensorFlow tensor and a JAX array alike), so most tests here need no harness model.
"""

from __future__ import annotations

import numpy as np
import pytest

from adapters._backend import Callback, multiplicative_noise, reinitialise
from tests.adapters import reference
from tests.conftest import FRAMEWORKS, require

PUBLIC = {
    "CHANNEL_AXIS", "NAME", "RELU_RULES", "Objective", "copy_with_weights", "embedding_fn",
    "gradient_fn", "input_spec", "layer_fn", "owns", "predict_fn", "weight_layers",
}


def _linear(h, w):
    return h.linear_model(w)


# --------------------------------------------------------------------------- names


def test_every_backend_exports_the_same_names(h):
    assert set(h.adapter.__all__) == PUBLIC
    assert h.adapter.NAME in FRAMEWORKS and h.adapter.CHANNEL_AXIS in (1, -1)
    assert h.adapter.RELU_RULES == ("guided", "deconvnet")


def test_owns_recognises_its_models_only(h):
    assert h.adapter.owns(h.reference_model(reference.make_weights(0)))
    assert not h.adapter.owns(object()) and not h.adapter.owns("model")


def test_callbacks_are_callbacks_with_a_trace_count(h, w, x):
    model = _linear(h, w)
    for fn in (h.gradient_fn(model), h.predict_fn(model)):
        assert isinstance(fn, Callback)
        assert h.adapter.NAME in repr(fn) and "traces=" in repr(fn)
    fn = h.gradient_fn(model)
    fn(x, np.zeros(5, int))
    after_first = fn.trace_count
    assert after_first in (0, 1)  # 0: PyTorch runs eagerly
    fn(x, np.zeros(5, int))
    fn(x[:3], np.zeros(3, int))  # a smaller chunk reuses the trace
    assert fn.trace_count == after_first


# --------------------------------------------------------------------------- inputs


@pytest.mark.parametrize("convert", [
    lambda a: a.tolist(),
    lambda a: a.astype(">f4"),
    lambda a: a.astype(">f8"),
    lambda a: a.astype(np.float16),
    lambda a: np.asfortranarray(a),
    lambda a: a[::-1][::-1],
], ids=["list", "big-endian-f4", "big-endian-f8", "float16", "fortran", "negative-strides"])
def test_inputs_of_every_numeric_form_give_the_same_outputs(h, w, x, convert):
    model = _linear(h, w)
    target = np.array([0, 1, 2, 1, 0])
    source = np.asarray(convert(x), dtype=np.float32)  # float16 rounds the inputs
    outputs = h.predict_fn(model)(convert(x))
    assert outputs.dtype == np.float32
    np.testing.assert_allclose(outputs, source @ w, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(h.gradient_fn(model)(convert(x), target), w[:, target].T,
                               rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.bool_, np.uint8, np.int32, np.int64])
def test_bool_and_integer_inputs_are_taken_as_float32(h, w, dtype):
    values = np.random.default_rng(2).integers(0, 2, size=(4, 6)).astype(dtype)
    out = h.predict_fn(_linear(h, w))(values)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, values.astype(np.float32) @ w, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("bad", "error", "message"), [
    (np.zeros(6, np.float32), ValueError, r"at least 2 dimensions, got shape \(6,\)"),
    (np.float32(1.0), ValueError, r"at least 2 dimensions, got shape \(\)"),
    (np.zeros((0, 6), np.float32), ValueError, r"no empty axis .* got shape \(0, 6\)"),
    (np.zeros((2, 0), np.float32), ValueError, r"no empty axis .* got shape \(2, 0\)"),
    (np.zeros((2, 6), np.complex64), TypeError, "real numeric batch .* got dtype complex64"),
    (np.array([["a"] * 6]), TypeError, "real numeric batch"),
    ([[1.0, 2.0], [3.0]], ValueError, "rectangular batch"),
    (object(), TypeError, "real numeric batch .* got dtype object"),
], ids=["1-d", "0-d", "zero-rows", "zero-width", "complex", "str", "ragged", "object"])
def test_bad_x_is_refused_alike(h, w, bad, error, message):
    model = _linear(h, w)
    with pytest.raises(error, match=message):
        h.gradient_fn(model)(bad, None)
    with pytest.raises(error, match=message):
        h.predict_fn(model)(bad)


def test_every_frameworks_arrays_are_taken_or_refused_clearly(h, w, x):
    torch = require("torch")
    tf = require("tensorflow")
    jnp = require("jax.numpy")
    predict = h.predict_fn(_linear(h, w))
    for array in (tf.constant(x), jnp.asarray(x), torch.tensor(x)):
        np.testing.assert_allclose(predict(array), x @ w, rtol=1e-5, atol=1e-6)
    needs_grad = torch.tensor(x, requires_grad=True)
    if h.adapter.NAME == "torch":  # its own tensors are taken even when they need grad
        np.testing.assert_allclose(predict(needs_grad), x @ w, rtol=1e-5, atol=1e-6)
    else:
        with pytest.raises(TypeError, match="expected x to be a numpy array or an array-like"):
            predict(needs_grad)


def test_the_callers_x_is_never_modified(h, w, x):
    model = _linear(h, w)
    before = x.copy()
    h.gradient_fn(model)(x, np.zeros(5, int))
    h.predict_fn(model)(x)
    np.testing.assert_array_equal(x, before)


# --------------------------------------------------------------------------- targets


@pytest.mark.parametrize(("target", "error", "message"), [
    (2**70, ValueError, "fit in int64, got 1180591620717411303424"),
    (np.array([2**63] * 5, np.uint64), ValueError, "fit in int64, got 9223372036854775808"),
    (np.zeros(5), TypeError, "integer targets .* got dtype float64"),
    (True, TypeError, "got the bool True"),
    (np.zeros(4, int), ValueError,
     r"target of shape \(5,\), one output index per row, got shape \(4,\)"),
    (np.array([0, 1, 3, 0, 1]), ValueError, r"targets in \[0, 2\] .* got \[3\]"),
    (np.array([0, 1, -1, 0, 1]), ValueError, r"targets in \[0, 2\] .* got \[-1\]"),
], ids=["2**70", "uint64-wrap", "float", "bool", "shape", "too-large", "negative"])
def test_bad_targets_are_refused_alike(h, w, x, target, error, message):
    with pytest.raises(error, match=message):
        h.gradient_fn(_linear(h, w))(x, target)


def test_int_target_applies_to_every_row(h, w, x):
    np.testing.assert_allclose(h.gradient_fn(_linear(h, w))(x, 2), np.tile(w[:, 2], (5, 1)),
                               rtol=1e-6)


# --------------------------------------------------------------------------- scores


@pytest.mark.parametrize(("model", "target", "message"), [
    (lambda t: t[:1, 0], None,
     r"one row per input row, 5 rows for this batch, got shape \(1,\)"),
    (lambda t: t[:2], np.zeros(5, int), r"one row per input row, 5 rows .* got shape \(2, 6\)"),
    (lambda t: t, None, "the model gives 6 outputs per row, so a target is needed"),
    (lambda t: t[:, 0], np.zeros(5, int), r"shape \(k, C\) for integer targets, got shape \(5,\)"),
], ids=["one-score-for-the-batch", "too-few-rows", "target-needed", "target-for-scalar"])
def test_outputs_that_are_not_one_score_per_row_are_refused(h, x, model, target, message):
    with pytest.raises(ValueError, match=message):
        h.adapter.gradient_fn(model)(x, target)


def test_predict_needs_one_row_per_input_row(h, x):
    with pytest.raises(ValueError, match=r"one row per input row, 5 rows .* got shape \(1, 6\)"):
        h.adapter.predict_fn(lambda t: t[:1])(x)


def test_objective_scores_are_checked_alike(h, w, x):
    model = _linear(h, w)
    with pytest.raises(ValueError, match=r"objective\(output, target\) to return one score per "
                                         r"row, shape \(5,\), got shape \(5, 3\)"):
        h.gradient_fn(model, objective=lambda output, target: output)(x, None)
    with pytest.raises(TypeError, match="expected objective to be callable, got str"):
        h.gradient_fn(model, objective="sum")


def test_objectives_see_int64_targets_of_the_batchs_rows(h, w, x):
    seen = []

    def objective(output, target):
        seen.append((str(getattr(target.dtype, "name", target.dtype)), tuple(target.shape)))
        return output[:, 0]

    fn = h.gradient_fn(_linear(h, w), objective=objective)
    fn(x, np.arange(5))
    fn(x[:3], np.arange(3))
    x64 = h.adapter.NAME != "jax" or require("jax").config.read("jax_enable_x64")
    for dtype, shape in seen:
        assert dtype.removeprefix("torch.") == ("int64" if x64 else "int32")
        assert shape[0] in (None, 3, 5)  # None: a TensorFlow trace with a free batch size
    assert {shape[0] for _, shape in seen} - {None} <= {3, 5}


# --------------------------------------------------------------------------- options


def test_unavailable_and_malformed_devices_fail_when_the_callback_is_made(h, w):
    model = _linear(h, w)
    h.gradient_fn(model, device="cpu")  # every machine has one
    with pytest.raises(ValueError, match="expected a device this machine has, got 'tpu:7'; "
                                         "available: cpu"):
        h.gradient_fn(model, device="tpu:7")
    with pytest.raises(ValueError, match="expected a device such as 'cpu', 'cuda'"):
        h.predict_fn(model, device="not-a-device")
    with pytest.raises(TypeError, match="expected device to be a str"):
        h.predict_fn(model, device=3)


def test_cuda_fails_clearly_where_there_is_none(h, w):
    model = _linear(h, w)
    try:
        h.predict_fn(model, device="cuda")
    except ValueError as error:
        assert "expected a device this machine has, got 'cuda'" in str(error)
    else:  # a machine with a GPU: the callback runs there and answers like the CPU
        x = np.ones((2, 6), np.float32)
        np.testing.assert_allclose(h.predict_fn(model, device="cuda")(x), x @ w, rtol=1e-4)


def test_dtype_must_be_floating(h, w):
    with pytest.raises(TypeError, match="floating"):
        h.gradient_fn(_linear(h, w), dtype="int32")


def test_plain_callables_are_models(h, x):
    grads = h.adapter.gradient_fn(lambda t: (t * t)[:, 0])(x, None)
    expected = np.zeros_like(x)
    expected[:, 0] = 2 * x[:, 0]
    np.testing.assert_allclose(grads, expected, rtol=1e-6)


# --------------------------------------------------------------------------- weight copies


def test_weight_copies_transform_the_chosen_layers_and_leave_the_original(h):
    weights = reference.make_weights(0)
    model = h.reference_model(weights)
    x = h.to_native(reference.make_inputs(3))
    before = h.snapshot(model)
    outputs = h.predict_fn(model)(x)
    layers = h.adapter.weight_layers(model)
    assert len(layers) >= 4 and len(set(layers)) == len(layers)
    zero = h.adapter.copy_with_weights(model, lambda weight, rng: np.zeros_like(weight))
    np.testing.assert_array_equal(h.predict_fn(zero)(x), np.zeros_like(outputs))
    doubled_last = h.adapter.copy_with_weights(model, lambda weight, rng: 2 * weight,
                                               layers=layers[-1:])
    changed = h.predict_fn(doubled_last)(x)
    # the last layer is affine: doubling its weight and bias doubles the logits
    np.testing.assert_allclose(changed, 2 * outputs, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(h.predict_fn(model)(x), outputs)
    after = h.snapshot(model)
    for key in before:
        np.testing.assert_array_equal(np.asarray(after[key]), np.asarray(before[key]), err_msg=key)


def test_weight_copies_are_seeded(h):
    model = h.reference_model(reference.make_weights(0))
    x = h.to_native(reference.make_inputs(2))
    predict = [h.predict_fn(h.adapter.copy_with_weights(model, reinitialise, seed=seed))(x)
               for seed in (0, 0, 1)]
    np.testing.assert_array_equal(predict[0], predict[1])
    assert not np.allclose(predict[0], predict[2])
    noisy = h.adapter.copy_with_weights(model, multiplicative_noise(0.0), seed=3)
    np.testing.assert_allclose(h.predict_fn(noisy)(x), h.predict_fn(model)(x), rtol=1e-6,
                               atol=1e-6)


def test_bad_weight_copies_are_refused_before_anything_is_copied(h):
    model = h.reference_model(reference.make_weights(0))
    with pytest.raises(ValueError, match="no layer with weights named 'nowhere'"):
        h.adapter.copy_with_weights(model, reinitialise, layers=["nowhere"])
    with pytest.raises(TypeError, match="expected transform to be callable"):
        h.adapter.copy_with_weights(model, "reinitialise")
    with pytest.raises(ValueError, match="expected transform to keep the shape"):
        h.adapter.copy_with_weights(model, lambda weight, rng: weight.ravel()[:1])
    with pytest.raises(TypeError, match="expected seed to be None or an int"):
        h.adapter.copy_with_weights(model, reinitialise, seed=1.5)
