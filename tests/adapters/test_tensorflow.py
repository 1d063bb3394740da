"""Tests of the TensorFlow/Keras adapter against numpy references and closed forms.

Gradients are only ever taken through the adapter (inside ``tf.function``), never with an
eager ``tf.GradientTape``: an eager tape through the reference network's strided 1x1
convolution has crashed the process on these machines.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.adapters import reference
from tests.adapters.harness import load_harness
from tests.conftest import require

ADAPTER_FILE = Path(__file__).resolve().parents[2] / "adapters" / "tensorflow.py"


@pytest.fixture(scope="module")
def h():
    return load_harness("tensorflow")


@pytest.fixture(scope="module")
def tf(h):
    return require("tensorflow")


@pytest.fixture(scope="module")
def keras(h):
    return require("keras")


@pytest.fixture(scope="module")
def weights():
    return reference.make_weights(seed=0)


@pytest.fixture(scope="module")
def images():
    return reference.make_inputs(n=4, seed=1)


@pytest.fixture(scope="module")
def ref_model(h, weights):
    return h.reference_model(weights)


@pytest.fixture(scope="module")
def ref_grad(h, ref_model):
    return h.gradient_fn(ref_model)


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


def linear_problem(d: int = 6, c: int = 4, k: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((d, c)).astype(np.float32)
    x = rng.standard_normal((k, d)).astype(np.float32)
    target = rng.integers(0, c, size=k)
    return w, x, target


# --- the reference network ------------------------------------------------------------


def test_reference_model_forward_matches_numpy(ref_model, weights, images):
    logits = np.asarray(ref_model(images, training=False))  # eager forward only, no tape
    expected = reference.forward(weights, images)
    assert logits.shape == (4, reference.N_CLASSES)
    assert relative_error(logits, expected) < 1e-5


def test_predict_fn_matches_numpy(h, ref_model, weights, images):
    predicted = h.predict_fn(ref_model)(images)
    assert isinstance(predicted, np.ndarray) and predicted.dtype == np.float32
    assert relative_error(predicted, reference.forward(weights, images)) < 1e-5


def test_gradient_matches_finite_differences(ref_grad, weights, images):
    x = images[:2]
    target = np.array([3, 7])
    gradient = ref_grad(x, target)
    expected = reference.finite_difference_gradient(weights, x, target)
    assert gradient.shape == x.shape and gradient.dtype == np.float32
    assert relative_error(gradient, expected) < 1e-4


def test_rows_are_independent(ref_grad, images):
    target = np.array([0, 5, 9, 2])
    together = ref_grad(images, target)
    alone = np.concatenate([ref_grad(images[i : i + 1], target[i : i + 1]) for i in range(4)])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-7)


# --- targets --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["keras", "callable", "module"])
def test_linear_gradient_is_the_target_column(h, tf, kind):
    w, x, target = linear_problem()
    if kind == "keras":
        model = h.linear_model(w)
    elif kind == "callable":
        w_tensor = tf.constant(w)
        model = lambda batch: tf.matmul(batch, w_tensor)  # noqa: E731
    else:
        model = _linear_module(tf, w)
    gradient = h.gradient_fn(model)(x, target)
    np.testing.assert_allclose(gradient, w[:, target].T, rtol=1e-6, atol=1e-6)


def test_scalar_target_is_used_for_every_row(h):
    w, x, _ = linear_problem()
    gradient = h.gradient_fn(h.linear_model(w))(x, np.int64(2))
    np.testing.assert_allclose(gradient, np.tile(w[:, 2], (len(x), 1)), rtol=1e-6)


@pytest.mark.parametrize("shape", ["(k,)", "(k, 1)"])
def test_scalar_output_with_target_none(h, tf, shape):
    v = np.arange(1.0, 7.0, dtype=np.float32)
    x = np.random.default_rng(0).standard_normal((3, 6)).astype(np.float32)
    if shape == "(k,)":
        model = h.scalar_model(v)
    else:
        column = tf.constant(v[:, None])
        model = lambda batch: tf.matmul(batch, column)  # noqa: E731
    gradient = h.gradient_fn(model)(x, None)
    np.testing.assert_allclose(gradient, np.tile(v, (3, 1)), rtol=1e-6)


def test_target_none_on_class_scores_is_refused(h):
    w, x, target = linear_problem(c=4)
    fn = h.gradient_fn(h.linear_model(w))
    with pytest.raises(ValueError, match="target") as raised:
        fn(x, None)
    assert "4 outputs per row" in str(raised.value)
    np.testing.assert_allclose(fn(x, target), w[:, target].T, rtol=1e-6)  # still usable


@pytest.mark.parametrize("bad", [4, 17, -1, -4])
def test_out_of_range_target_names_the_range(h, bad):
    w, x, target = linear_problem(c=4)
    target = target.copy()
    target[1] = bad
    fn = h.gradient_fn(h.linear_model(w))
    with pytest.raises(ValueError, match=r"\[0, 3\]") as raised:
        fn(x, target)
    assert str(bad) in str(raised.value)


def test_target_shape_and_dtype_are_checked(h):
    w, x, target = linear_problem()
    fn = h.gradient_fn(h.linear_model(w))
    with pytest.raises(ValueError, match=r"shape \(5,\)"):
        fn(x, target[:3])
    with pytest.raises(TypeError, match="integer"):
        fn(x, target.astype(np.float64))
    with pytest.raises(TypeError, match="integer"):
        fn(x, target > 1)


def test_batch_must_be_real_valued_and_batched(h):
    w, x, target = linear_problem()
    fn = h.gradient_fn(h.linear_model(w))
    with pytest.raises(TypeError, match="real-valued"):
        fn(x.astype(np.complex64), target)
    with pytest.raises(ValueError, match="batch"):
        fn(np.float32(1.0), target)


def test_other_output_ranks_need_an_objective(h, tf):
    kernel = tf.constant(np.ones((3, 2), np.float32))
    model = lambda x: tf.einsum("khwi,ic->khwc", x, kernel)  # noqa: E731
    x = np.ones((2, 4, 4, 3), np.float32)
    with pytest.raises(ValueError, match="objective="):
        h.gradient_fn(model)(x, np.array([0, 1]))


def test_empty_batch(h):
    w, _, _ = linear_problem()
    gradient = h.gradient_fn(h.linear_model(w))(np.zeros((0, 6), np.float32), np.zeros(0, int))
    assert gradient.shape == (0, 6)


def test_non_differentiable_score_is_refused(h, tf):
    model = lambda x: tf.cast(tf.one_hot(tf.argmax(x, axis=1), 3), tf.float32)  # noqa: E731
    with pytest.raises(ValueError, match="differentiabl"):
        h.gradient_fn(model)(np.eye(3, dtype=np.float32), np.array([0, 1, 2]))


# --- objectives -----------------------------------------------------------------------


def test_square_sum_objective_closed_form(h):
    w, x, _ = linear_problem()
    fn = h.gradient_fn(h.linear_model(w), objective=h.square_sum_objective())
    expected = 2.0 * (x @ w) @ w.T
    np.testing.assert_allclose(fn(x, None), expected, rtol=1e-5, atol=1e-5)


def test_objective_gets_target_as_is(h, tf):
    w, x, _ = linear_problem()
    seen = []

    def weighted(output, target):
        seen.append(None if target is None else (target.dtype, tuple(target.shape)))
        return tf.reduce_sum(output * target, axis=1)

    mask = np.random.default_rng(3).uniform(size=(5, 4)).astype(np.float32)
    gradient = h.gradient_fn(h.linear_model(w), objective=weighted)(x, mask)
    np.testing.assert_allclose(gradient, mask @ w.T, rtol=1e-5, atol=1e-6)
    assert seen == [(tf.float32, (None, 4))]  # traced once, batch dimension relaxed

    received = []

    def first_score(output, target):
        received.append(target)
        return output[:, 0]

    h.gradient_fn(h.linear_model(w), objective=first_score)(x, None)
    assert received == [None]


def test_segmentation_objective_sums_over_a_mask(h, tf):
    rng = np.random.default_rng(4)
    kernel = rng.standard_normal((3, 5)).astype(np.float32)
    mask = (rng.uniform(size=(6, 6)) > 0.5).astype(np.float32)
    kernel_tensor, mask_tensor = tf.constant(kernel), tf.constant(mask)
    model = lambda x: tf.einsum("khwi,ic->khwc", x, kernel_tensor)  # noqa: E731 - 1x1 "conv"

    def masked_class_score(output, target):
        per_pixel = tf.gather(output, target, axis=-1, batch_dims=1)  # (k, H, W)
        return tf.reduce_sum(per_pixel * mask_tensor, axis=(1, 2))

    x = rng.standard_normal((2, 6, 6, 3)).astype(np.float32)
    target = np.array([1, 4])
    gradient = h.gradient_fn(model, objective=masked_class_score)(x, target)
    expected = mask[None, :, :, None] * kernel[:, target].T[:, None, None, :]
    np.testing.assert_allclose(gradient, expected, rtol=1e-6, atol=1e-6)


def test_objective_must_give_one_score_per_row(h, tf):
    w, x, _ = linear_problem()
    fn = h.gradient_fn(h.linear_model(w), objective=lambda out, t: tf.reduce_sum(out))
    with pytest.raises(ValueError, match=r"one score per row"):
        fn(x, None)


# --- the model is left as it was -------------------------------------------------------


def test_reference_model_unchanged(h, ref_model, ref_grad, images):
    before = h.snapshot(ref_model)
    ref_grad(images, np.array([1, 2, 3, 4]))
    h.predict_fn(ref_model)(images)
    np.testing.assert_equal(h.snapshot(ref_model), before)


def test_model_unchanged_after_objective_raises(h, tf, ref_model, images):
    before = h.snapshot(ref_model)
    calls = []

    def broken(output, target):
        calls.append(1)
        raise RuntimeError("objective failed on purpose")

    fn = h.gradient_fn(ref_model, objective=broken)
    with pytest.raises(RuntimeError, match="on purpose"):
        fn(images, None)
    np.testing.assert_equal(h.snapshot(ref_model), before)
    assert calls == [1]


def test_inference_mode_batchnorm_and_dropout(h, keras):
    """Called with training=False: moving statistics used, dropout off, nothing updated."""
    rng = np.random.default_rng(5)
    w1 = rng.standard_normal((6, 8)).astype(np.float32)
    w2 = rng.standard_normal((8, 3)).astype(np.float32)
    gamma, beta = rng.uniform(0.5, 2.0, 8), rng.standard_normal(8)
    mean, var = rng.standard_normal(8), rng.uniform(0.5, 2.0, 8)
    inputs = keras.Input(shape=(6,))
    hidden = keras.layers.Dense(8, use_bias=False, name="d1")(inputs)
    hidden = keras.layers.BatchNormalization(epsilon=1e-3, name="bn")(hidden)
    hidden = keras.layers.Dropout(0.5, name="drop")(hidden)
    outputs = keras.layers.Dense(3, use_bias=False, name="d2")(hidden)
    inner = keras.Model(inputs, outputs)
    inner.get_layer("d1").set_weights([w1])
    inner.get_layer("bn").set_weights([gamma, beta, mean, var])
    inner.get_layer("d2").set_weights([w2])

    class TrainingByDefault(keras.Model):  # training=True unless told otherwise
        def __init__(self):
            super().__init__()
            self.inner = inner

        def call(self, x, training=True):
            return self.inner(x, training=training)

    model = TrainingByDefault()
    x = rng.standard_normal((7, 6)).astype(np.float32)
    model(x[:1], training=False)  # build it (an eager forward pass, no tape)
    before = h.snapshot(model)

    target = rng.integers(0, 3, size=7)
    fn = h.gradient_fn(model)
    first, second = fn(x, target), fn(x, target)
    scale = gamma / np.sqrt(var + 1e-3)
    expected = ((w1 * scale) @ w2)[:, target].T
    np.testing.assert_allclose(first, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_equal(h.snapshot(model), before)


def test_training_argument_passed_to_modules(h, tf):
    w, x, target = linear_problem()
    module = _linear_module(tf, w, noisy_when_training=True)
    gradient = h.gradient_fn(module)(x, target)
    np.testing.assert_allclose(gradient, w[:, target].T, rtol=1e-6)
    assert module.training_seen == [False]


# --- compile once ----------------------------------------------------------------------


def test_one_trace_for_all_chunks(h, tf, ref_model, images):
    counter = _CountingModel(ref_model)
    fn = h.gradient_fn(counter)
    rng = np.random.default_rng(6)
    for _ in range(5):
        chunk = rng.uniform(size=(4, *reference.INPUT_SHAPE)).astype(np.float32)
        assert fn(chunk, rng.integers(0, 10, size=4)).shape == chunk.shape
    fn(images[:3].astype(np.float64), np.array([0, 1, 2]))  # smaller last chunk, float64
    assert counter.traces == 1 and fn.trace_count == 1


def test_new_trailing_shape_traces_once_more(h, tf):
    traces = []

    def squared_norm(x):
        traces.append(tuple(x.shape))
        return tf.reduce_sum(tf.square(x), axis=list(range(1, x.shape.rank)))

    fn = h.gradient_fn(squared_norm)
    rng = np.random.default_rng(7)
    for shape in [(5, 3), (5, 3), (2, 3), (4, 2, 2), (1, 2, 2), (3, 3)]:
        x = rng.standard_normal(shape)
        np.testing.assert_allclose(fn(x, None), 2 * x, rtol=1e-6)
    assert traces == [(None, 3), (None, 2, 2)] and fn.trace_count == 2


def test_predict_fn_traces_once(h, ref_model, weights, images):
    counter = _CountingModel(ref_model)
    predict = h.predict_fn(counter)
    for size in (4, 4, 2, 1):
        np.testing.assert_allclose(
            predict(images[:size]), reference.forward(weights, images[:size]), rtol=1e-4, atol=1e-5
        )
    assert counter.traces == 1 and predict.trace_count == 1


def test_predict_fn_uses_no_tape(h, tf):
    """A model that cannot be differentiated still predicts: no gradient is built."""
    model = lambda x: tf.cast(tf.argmax(x, axis=1), tf.float32)  # noqa: E731
    np.testing.assert_array_equal(h.predict_fn(model)(np.eye(3, dtype=np.float32)), [0, 1, 2])


# --- dtypes ----------------------------------------------------------------------------


# Map-level (norm) error: half precision flips a few max-pool winners and ReLU gates of
# the reference net, which moves single pixels a lot. bfloat16's 8-bit mantissa does so
# often enough that rounding the weights and inputs alone moves the float32 map by ~4%.
@pytest.mark.parametrize(("dtype", "tolerance"), [("float16", 5e-2), ("bfloat16", 1e-1)])
def test_half_precision_models_give_float32_maps(h, ref_grad, weights, images, dtype, tolerance):
    model = h.reference_model(weights, dtype=dtype)
    target = np.array([3, 7, 0, 9])
    gradient = h.gradient_fn(model)(images, target)
    assert gradient.dtype == np.float32 and gradient.shape == images.shape
    expected = ref_grad(images, target)
    assert np.linalg.norm(gradient - expected) / np.linalg.norm(expected) < tolerance
    logits = h.predict_fn(model)(images)
    assert logits.dtype == np.float32
    assert relative_error(logits, reference.forward(weights, images)) < 5e-2


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_linear_model_is_exact(h, keras, dtype):
    w, x, target = linear_problem()
    inputs = keras.Input(shape=(6,), dtype=dtype)
    dense = keras.layers.Dense(4, use_bias=False, dtype=dtype)
    model = keras.Model(inputs, dense(inputs))
    dense.set_weights([w])
    rounded = np.asarray(dense.kernel.numpy()).astype(np.float32)
    assert not np.array_equal(rounded, w)  # the weights really are in half precision
    gradient = h.gradient_fn(model)(x, target)
    assert gradient.dtype == np.float32
    np.testing.assert_array_equal(gradient, rounded[:, target].T)


def test_float64_batch_to_float32_model_gives_float32(h):
    w, x, target = linear_problem()
    gradient = h.gradient_fn(h.linear_model(w))(x.astype(np.float64), target)
    assert gradient.dtype == np.float32


def test_float64_model_gives_float64(h, tf):
    w, x, target = linear_problem()
    w64 = w.astype(np.float64) + 1e-12  # not representable in float32
    module = _linear_module(tf, w64)
    gradient = h.gradient_fn(module)(x.astype(np.float64), target)
    assert gradient.dtype == np.float64
    np.testing.assert_array_equal(gradient, w64[:, target].T)


# --- import ----------------------------------------------------------------------------


def test_missing_tensorflow_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # makes `import tensorflow` fail
    spec = importlib.util.spec_from_file_location("_adapter_without_tf", ADAPTER_FILE)
    module = importlib.util.module_from_spec(spec)
    with pytest.raises(ImportError, match=r"pip install .saliency-toolkit\[tensorflow\]"):
        spec.loader.exec_module(module)


# --- helpers ---------------------------------------------------------------------------


def _linear_module(tf, w, *, noisy_when_training=False):
    """A ``tf.Module`` computing ``x @ w``; optionally noisy when ``training`` is true."""

    class LinearModule(tf.Module):
        def __init__(self):
            super().__init__(name="linear_module")
            self.w = tf.Variable(w, trainable=True)
            self.training_seen = []

        def __call__(self, x, training=True):
            self.training_seen.append(training)  # runs only while tracing
            out = tf.matmul(x, self.w)
            if training and noisy_when_training:
                out = out * tf.random.uniform(tf.shape(out), 0.0, 2.0)
            return out

    return LinearModule()


class _CountingModel:
    """Wraps a Keras model; counts how often its Python body runs (once per trace)."""

    def __init__(self, model):
        self.model = model
        self.inputs = model.inputs
        self.traces = 0

    def __call__(self, x, training=True):
        self.traces += 1
        return self.model(x, training=training)
