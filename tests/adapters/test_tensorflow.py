"""What the TensorFlow backend does differently: tracing, Keras call conventions, dtypes,
devices, ``tf.Module`` models and Keras weight copies.

The rules every backend shares are tested once in ``test_backends.py``, ``test_contract.py``
and ``test_agreement*.py``. Gradients are only ever taken through the adapter (inside
``tf.function``), never with an eager ``tf.GradientTape``: an eager tape through the
reference network's strided 1x1 convolution has crashed the process on these machines.
"""

from __future__ import annotations

import importlib.util
import sys
import traceback
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


def linear_problem(d: int = 6, c: int = 4, k: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((d, c)).astype(np.float32)
    x = rng.standard_normal((k, d)).astype(np.float32)
    target = rng.integers(0, c, size=k)
    return w, x, target


# --- tracing ---------------------------------------------------------------------------


def test_one_trace_serves_every_chunk_and_rows_stay_independent(h, weights, images):
    counter = _CountingModel(h.reference_model(weights))
    fn, predict = h.gradient_fn(counter), h.predict_fn(counter)
    target = np.array([0, 5, 9, 2])
    together = fn(images, target)
    alone = np.concatenate([fn(images[i : i + 1], target[i : i + 1]) for i in range(4)])
    np.testing.assert_allclose(alone, together, rtol=1e-5, atol=1e-7)
    smaller = fn(images[:3].astype(np.float64), target[:3])  # float64: fed as float32
    assert smaller.dtype == np.float32
    np.testing.assert_allclose(smaller, together[:3], rtol=1e-5, atol=1e-7)
    for size in (4, 1):
        np.testing.assert_allclose(predict(images[:size]),
                                   reference.forward(weights, images[:size]), rtol=1e-4,
                                   atol=1e-5)
    assert fn.trace_count == predict.trace_count == 1 and counter.traces == 2


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


def test_errors_found_while_tracing_carry_no_graph_frames(h):
    """A failed trace is raised as the check's own error, and the callback stays usable."""
    w, x, target = linear_problem(c=4)
    fn = h.gradient_fn(h.linear_model(w))
    with pytest.raises(ValueError, match="gives 4 outputs per row, so a target is") as raised:
        fn(x, None)
    frames = traceback.extract_tb(raised.value.__traceback__)
    assert [frame for frame in frames if "/tensorflow/" in frame.filename] == []
    assert raised.value.__context__ is None and raised.value.__cause__ is None
    np.testing.assert_allclose(fn(x, target), w[:, target].T, rtol=1e-6)
    assert fn.trace_count == 2  # the failed trace is not kept


def test_non_differentiable_score_is_refused(h, tf):
    model = lambda x: tf.cast(tf.one_hot(tf.argmax(x, axis=1), 3), tf.float32)  # noqa: E731
    with pytest.raises(ValueError, match="no gradient path"):
        h.gradient_fn(model)(np.eye(3, dtype=np.float32), np.array([0, 1, 2]))


def test_predict_fn_builds_no_gradient(h, tf):
    """A model that cannot be differentiated still predicts."""
    model = lambda x: tf.cast(tf.argmax(x, axis=1), tf.float32)  # noqa: E731
    np.testing.assert_array_equal(h.predict_fn(model)(np.eye(3, dtype=np.float32)), [0, 1, 2])


# --- how the model is called -----------------------------------------------------------


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


def test_tf_modules_are_models_called_with_training_false(h, tf):
    w, x, target = linear_problem()
    module = _linear_module(tf, w, noisy_when_training=True)
    assert h.adapter.owns(module)
    np.testing.assert_allclose(h.gradient_fn(module)(x, target), w[:, target].T, rtol=1e-6)
    np.testing.assert_allclose(h.predict_fn(module)(x), x @ w, rtol=1e-5, atol=1e-6)
    assert module.training_seen == [False, False]  # one trace per callback


def test_owns_keras_layers_and_modules_only(h, tf, keras):
    assert h.adapter.owns(keras.layers.Dense(2)) and h.adapter.owns(keras.Sequential())
    assert not h.adapter.owns(lambda x: x) and not h.adapter.owns(tf.constant(1.0))


# --- dtypes ----------------------------------------------------------------------------


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
    assert h.predict_fn(model)(x).dtype == np.float32


def test_float64_models_give_float64(h, tf):
    w, x, target = linear_problem()
    w64 = w.astype(np.float64) + 1e-12  # not representable in float32
    module = _linear_module(tf, w64)  # float64 read from its variables
    gradient = h.gradient_fn(module)(x, target)
    assert gradient.dtype == np.float64
    np.testing.assert_array_equal(gradient, w64[:, target].T)
    doubled = h.predict_fn(lambda t: 2 * t, dtype=tf.float64)(x)
    assert doubled.dtype == np.float64


# --- devices ---------------------------------------------------------------------------


def test_devices_may_be_named_or_tensorflow_objects(h, tf):
    w, x, target = linear_problem()
    model = h.linear_model(w)
    cpu = tf.config.list_logical_devices("CPU")[0]
    for device in ("cpu", "/CPU:0", "cpu:0", cpu, tf.DeviceSpec(device_type="CPU", device_index=0)):
        np.testing.assert_allclose(h.gradient_fn(model, device=device)(x, target),
                                   w[:, target].T, rtol=1e-6)
    with pytest.raises(ValueError, match="expected a device this machine has, got 'cpu:3'"):
        h.predict_fn(model, device="cpu:3")
    gpus = tf.config.list_logical_devices("GPU")
    if gpus:  # "cuda" and "gpu" mean the first GPU
        np.testing.assert_allclose(h.predict_fn(model, device="cuda")(x), x @ w, rtol=1e-4)
    else:
        with pytest.raises(ValueError, match=r"got 'gpu'; available: cpu"):
            h.gradient_fn(model, device="gpu")


# --- weight copies ---------------------------------------------------------------------


def test_weight_copies_transform_parameters_not_statistics(h, keras):
    """Moving statistics are kept; frozen and nested layers are copied and stay frozen."""
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(3, name="d1")(inputs)
    hidden = keras.layers.BatchNormalization(name="bn")(hidden)
    backbone = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="inner")],
                                name="backbone")
    frozen = keras.layers.Dense(2, name="frozen")
    model = keras.Model(inputs, frozen(backbone(hidden)))
    frozen.trainable = False
    rng = np.random.default_rng(0)
    bn = model.get_layer("bn")
    bn.set_weights([w + rng.uniform(0.5, 1.0, w.shape) for w in bn.get_weights()])
    before = h.snapshot(model)
    assert h.adapter.weight_layers(model) == ["d1", "bn", "backbone", "frozen"]
    zero = h.adapter.copy_with_weights(model, lambda weight, rng: np.zeros_like(weight),
                                       layers=["bn", "backbone", "frozen"])
    gamma, beta, mean, variance = zero.get_layer("bn").get_weights()
    assert not gamma.any() and not beta.any()
    np.testing.assert_array_equal(mean, bn.get_weights()[2])
    np.testing.assert_array_equal(variance, bn.get_weights()[3])
    assert not any(w.any() for w in zero.get_layer("backbone").get_weights())
    assert not zero.get_layer("frozen").trainable and not zero.get_layer("frozen").trainable_weights
    assert not any(w.any() for w in zero.get_layer("frozen").get_weights())
    for mine, theirs in zip(zero.get_layer("d1").get_weights(), model.get_layer("d1").get_weights(),
                            strict=True):
        np.testing.assert_array_equal(mine, theirs)
    np.testing.assert_equal(h.snapshot(model), before)


def test_subclassed_models_are_rebuilt_from_their_config(h, keras):
    class Configured(keras.Model):
        def __init__(self, units=2, **options):
            super().__init__(**options)
            self.units = units
            self.dense = keras.layers.Dense(units, name="dense")

        def call(self, x):
            return self.dense(x)

    class Unconfigured(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2, name="dense")

        def call(self, x):
            return self.dense(x)

    x = np.ones((2, 3), np.float32)
    model = Configured(units=2)
    expected = h.predict_fn(model)(x)  # builds it, in a trace
    before = h.snapshot(model)
    same = h.adapter.copy_with_weights(model, lambda weight, rng: weight)
    assert type(same) is Configured and same.dense is not model.dense
    np.testing.assert_array_equal(h.predict_fn(same)(x), expected)
    doubled = h.adapter.copy_with_weights(model, lambda weight, rng: 2 * weight)
    np.testing.assert_allclose(h.predict_fn(doubled)(x), 2 * expected, rtol=1e-6)
    np.testing.assert_equal(h.snapshot(model), before)
    stuck = Unconfigured()
    h.predict_fn(stuck)(x)
    with pytest.raises(TypeError, match=r"got Unconfigured '.*', which it cannot \(TypeError: "
                                        r"Unable to revive model from config\); give its "):
        h.adapter.copy_with_weights(stuck, lambda weight, rng: weight)


def test_weight_copies_need_a_keras_model(h, tf):
    module = _linear_module(tf, np.ones((2, 2), np.float32))
    with pytest.raises(TypeError, match=r"expected a Keras model \(weights live in its "
                                        r"layers\), got a LinearModule"):
        h.adapter.weight_layers(module)


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
