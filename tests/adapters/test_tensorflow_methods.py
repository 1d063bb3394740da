"""Guided backpropagation, deconvnet and Grad-CAM layer callbacks of the TensorFlow adapter.

Every expected value is computed by hand in numpy: the ReLU rules on a tiny network
``x -> W1 -> ReLU -> W2 -> score`` written in every kind of ReLU Keras and TensorFlow
offer, and the layer callbacks on the reference network (whose head after the residual
block is linear, so ``d score / d block`` is known in closed form).

As everywhere in these tests, gradients are only taken through the adapter (inside
``tf.function``), never with an eager tape.
"""

from __future__ import annotations

import numpy as np
import pytest

from saliency_core import grad_cam, resize_linear
from tests.adapters import reference
from tests.adapters.harness import load_harness
from tests.conftest import require

# Fixed weights: some upstream gradients W2[:, t] are negative and so are some
# pre-activations x @ W1, so plain, guided and deconvnet gradients all differ.
W1 = np.array([[1.0, -0.5, 0.3, 2.0], [-1.0, 0.8, 0.5, -0.2], [0.4, 0.1, -0.9, 0.6]], np.float32)
W2 = np.array([[0.7, -1.2], [-0.6, 0.9], [1.1, 0.4], [-0.3, -0.8]], np.float32)
X = np.array(
    [[1.0, 0.5, -0.2], [-0.7, 1.2, 0.3], [0.2, -0.4, 1.5], [-1.1, -0.3, 0.8], [0.6, 0.9, -1.0]],
    np.float32,
)
TARGET = np.array([0, 1, 0, 1, 1])


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
    return reference.make_inputs(n=5, seed=2)


@pytest.fixture(scope="module")
def ref_model(h, weights):
    return h.reference_model(weights)


def hand_backward(x, upstream, rule, *, scale=1.0):
    """d score / d x of ``relu(x @ W1) @ W2`` for ``d score / d hidden-output = upstream``.

    ``x`` is ``(..., 3)`` and ``upstream`` broadcasts against ``(..., 4)``; ``scale``
    multiplies the result (1 / number of pixels after a global average pool).
    """
    pre = x.astype(np.float64) @ W1
    if rule is None:
        passed = upstream * (pre > 0)
    elif rule == "guided":
        passed = upstream * (pre > 0) * (upstream > 0)
    else:
        passed = np.broadcast_to(np.maximum(upstream, 0), pre.shape)
    return scale * passed @ W1.T


def expected_maps(rule):
    return hand_backward(X, W2[:, TARGET].T, rule)


def test_the_tiny_case_separates_the_rules():
    pre, upstream = X @ W1, W2[:, TARGET].T
    assert (pre > 0).any() and (pre < 0).any()
    assert (upstream > 0).any() and (upstream < 0).any()
    plain, guided, deconv = (expected_maps(rule) for rule in (None, "guided", "deconvnet"))
    for a, b in ((plain, guided), (plain, deconv), (guided, deconv)):
        assert np.abs(a - b).max() > 0.1


# --- every kind of ReLU --------------------------------------------------------------


def _dense_pair(keras, first):
    """A Keras functional model ``first(x) -> Dense(W2)``, the first Dense set to W1."""
    inputs = keras.Input((3,))
    hidden = inputs
    for layer in first:
        hidden = layer(hidden)
    dense2 = keras.layers.Dense(2, use_bias=False)
    model = keras.Model(inputs, dense2(hidden))
    first[0].set_weights([W1])
    dense2.set_weights([W2])
    return model


def _relu_models(tf, keras):
    """Builders of the tiny network, one per kind of ReLU."""
    w1, w2 = tf.constant(W1), tf.constant(W2)

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.first = keras.layers.Dense(4, use_bias=False)
            self.second = keras.layers.Dense(2, use_bias=False)

        def call(self, x):
            return self.second(tf.nn.relu(self.first(x)))

    def subclassed():
        model = Subclassed()
        model(X[:1])  # builds it: an eager forward pass, no tape
        model.first.set_weights([W1])
        model.second.set_weights([W2])
        return model

    class Module(tf.Module):
        def __init__(self):
            super().__init__()
            self.w1, self.w2 = tf.Variable(W1), tf.Variable(W2)

        def __call__(self, x):
            return tf.matmul(tf.nn.relu(tf.matmul(x, self.w1)), self.w2)

    def dense(activation, *extra):
        return lambda: _dense_pair(
            keras, [keras.layers.Dense(4, activation=activation, use_bias=False), *extra]
        )

    return {
        "Dense(activation='relu')": dense("relu"),
        "Dense(activation=tf.nn.relu)": dense(tf.nn.relu),
        "keras.layers.ReLU": dense(None, keras.layers.ReLU()),
        "keras.layers.Activation('relu')": dense(None, keras.layers.Activation("relu")),
        "keras.layers.Lambda(tf.nn.relu)": dense(None, keras.layers.Lambda(tf.nn.relu)),
        "tf.nn.relu in a callable": lambda: lambda x: tf.matmul(tf.nn.relu(x @ w1), w2),
        "keras.ops.relu in a callable": lambda: lambda x: keras.ops.relu(x @ w1) @ w2,
        "keras.activations.relu in a callable": (
            lambda: lambda x: keras.activations.relu(x @ w1) @ w2
        ),
        "tf.nn.relu in a subclassed model": subclassed,
        "tf.nn.relu in a tf.Module": Module,
    }


RELU_KINDS = [
    "Dense(activation='relu')",
    "Dense(activation=tf.nn.relu)",
    "keras.layers.ReLU",
    "keras.layers.Activation('relu')",
    "keras.layers.Lambda(tf.nn.relu)",
    "tf.nn.relu in a callable",
    "keras.ops.relu in a callable",
    "keras.activations.relu in a callable",
    "tf.nn.relu in a subclassed model",
    "tf.nn.relu in a tf.Module",
]


@pytest.mark.parametrize("kind", RELU_KINDS)
def test_every_kind_of_relu_gets_the_rule(h, tf, keras, kind):
    model = _relu_models(tf, keras)[kind]()
    for rule in ("guided", "deconvnet"):  # the plain gradient is the contract suites' job
        maps = h.gradient_fn(model, relu_rule=rule)(X, TARGET)
        np.testing.assert_allclose(
            maps, expected_maps(rule), rtol=1e-5, atol=1e-6, err_msg=f"{kind}, relu_rule={rule}"
        )


def test_relus_out_of_reach_are_refused(h, tf):
    """ReLUs in a nested tf.function or tf.cond would keep their plain backward pass."""
    w1, w2 = tf.constant(W1), tf.constant(W2)
    nested = tf.function(lambda x: tf.nn.relu(x @ w1))

    def in_cond(x):
        hidden = x @ w1
        hidden = tf.cond(tf.reduce_sum(x) > 0, lambda: tf.nn.relu(hidden), lambda: hidden)
        return hidden @ w2

    for model in (lambda x: nested(x) @ w2, in_cond):
        with pytest.raises(ValueError, match="cannot reach the 1 ReLU"):
            h.gradient_fn(model, relu_rule="guided")(X, TARGET)


# --- only the backward pass changes ----------------------------------------------------


def test_forward_outputs_are_unchanged(h, tf, keras):
    """The score ``sum(out ** 2)`` sends ``2 out`` back: the real forward output."""
    model = _dense_pair(keras, [keras.layers.Dense(4, activation="relu", use_bias=False)])
    out = np.maximum(X @ W1, 0) @ W2
    objective = h.square_sum_objective()
    for rule in ("guided", "deconvnet"):
        maps = h.gradient_fn(model, objective=objective, relu_rule=rule)(X, None)
        np.testing.assert_allclose(
            maps, hand_backward(X, 2 * out @ W2.T, rule), rtol=1e-5, atol=1e-5, err_msg=rule
        )
    np.testing.assert_allclose(h.predict_fn(model)(X), out, rtol=1e-6, atol=1e-6)


def test_relus_of_the_objective_stay_plain(h, tf, keras):
    model = _dense_pair(keras, [keras.layers.Dense(4, activation="relu", use_bias=False)])
    first = (np.maximum(X @ W1, 0) @ W2)[:, 0]
    assert (first < 0).any() and (first > 0).any()
    fn = h.gradient_fn(model, objective=lambda out, t: tf.nn.relu(out[:, 0]), relu_rule="deconvnet")
    expected = hand_backward(X, W2[:, 0], "deconvnet") * (first > 0)[:, None]
    np.testing.assert_allclose(fn(X, None), expected, rtol=1e-5, atol=1e-6)


# --- the model is left as it was --------------------------------------------------------


def test_model_and_plain_callbacks_unchanged_after_rules_and_errors(h, tf, ref_model, images):
    target = np.array([2, 2, 7, 7, 0])
    made_before = h.gradient_fn(ref_model)
    plain = made_before(images, target)
    made_before_unused = h.gradient_fn(ref_model)  # traced only after the rules ran
    before = h.snapshot(ref_model)

    guided_fn = h.gradient_fn(ref_model, relu_rule="guided")
    guided = guided_fn(images, target)
    chunks = np.concatenate([guided_fn(images[:2], target[:2]), guided_fn(images[2:], target[2:])])
    np.testing.assert_allclose(chunks, guided, rtol=1e-5, atol=1e-7)
    assert guided_fn.trace_count == 1  # the rule is set once, on the one trace

    def failing(output, target):  # raises after the rule is set on the model's ReLUs
        raise RuntimeError("objective failed on purpose")

    with pytest.raises(RuntimeError, match="on purpose"):
        h.gradient_fn(ref_model, objective=failing, relu_rule="deconvnet")(images, None)

    class Broken:  # an error inside the model, after its ReLUs ran
        inputs = ref_model.inputs

        def __call__(self, x, training=False):
            ref_model(x, training=training)
            raise RuntimeError("model failed on purpose")

    with pytest.raises(RuntimeError, match="model failed"):
        h.gradient_fn(Broken(), relu_rule="guided")(images, target)

    np.testing.assert_equal(h.snapshot(ref_model), before)
    for fn in (made_before, made_before_unused, h.gradient_fn(ref_model)):
        np.testing.assert_array_equal(fn(images, target), plain)
    assert np.abs(guided - plain).max() > 0.1 * np.abs(plain).max()
    # interleaved: a guided callback and a plain one of the same model, call after call
    for _ in range(2):
        np.testing.assert_array_equal(guided_fn(images, target), guided)
        np.testing.assert_array_equal(made_before(images, target), plain)


# --- layer callbacks ---------------------------------------------------------------------


def numpy_layers(weights, x):
    """The reference network's ``c1`` (before its ReLU) and ``block`` outputs, float64."""
    p = {k: v.astype(np.float64) for k, v in weights.items()}
    c1 = reference.conv2d(x.astype(np.float64), p["c1_w"], p["c1_b"], 1, 1)
    return c1, _block_from_c1(p, c1)


def _block_from_c1(p, c1):
    pooled = reference.max_pool_2x2(np.maximum(c1, 0))
    r = np.maximum(reference.conv2d(pooled, p["c2_w"], p["c2_b"], 2, 1), 0)
    r = reference.conv2d(r, p["c3_w"], p["c3_b"], 1, 1)
    return np.maximum(r + reference.conv2d(pooled, p["sc_w"], p["sc_b"], 2, 0), 0)


def test_block_activations_and_closed_form_gradients(h, ref_model, weights, images):
    """After the block: global average pool then dense, so d score / d A = w[:, t] / 16."""
    target = np.array([0, 4, 9, 9, 2])
    layer = h.layer_fn(ref_model, "block")
    activations, gradients = layer(images, target)
    assert activations.dtype == gradients.dtype == np.float32
    _, block = numpy_layers(weights, images)
    np.testing.assert_allclose(activations, block, rtol=1e-5, atol=1e-5)
    expected = np.broadcast_to(weights["fc_w"][:, target].T[:, None, None, :] / 16, block.shape)
    np.testing.assert_allclose(gradients, expected, rtol=1e-6, atol=1e-8)
    # Grad-CAM in chunks of 2, 2, 1, and a float64 batch: the same one trace
    maps = grad_cam(layer, images.astype(np.float64), target, channel_axis=-1, batch_size=2)
    channel_weights = weights["fc_w"][:, target].T[:, None, None, :] / 16
    cams = resize_linear(np.maximum((block * channel_weights).sum(axis=-1), 0), (16, 16))
    np.testing.assert_allclose(maps, cams, rtol=1e-4, atol=1e-5 * cams.max())
    assert layer.trace_count == 1


def test_c1_gradients_match_finite_differences_of_the_head(h, ref_model, weights, images):
    x, target = images[:1], np.array([6])
    activations, gradients = h.layer_fn(ref_model, "c1")(x, target)
    c1, _ = numpy_layers(weights, x)
    np.testing.assert_allclose(activations, c1, rtol=1e-5, atol=1e-5)
    p = {k: v.astype(np.float64) for k, v in weights.items()}

    def head(a):
        return (_block_from_c1(p, a).mean(axis=(1, 2)) @ p["fc_w"] + p["fc_b"])[0, target[0]]

    rng = np.random.default_rng(8)
    nonzero = np.argwhere(gradients != 0)  # max pool and ReLU pass back to about 1 in 8
    coordinates = [tuple(i) for i in nonzero[rng.choice(len(nonzero), 40, replace=False)]]
    coordinates += [tuple(rng.integers(0, n) for n in c1.shape) for _ in range(20)]
    eps = 1e-4
    for index in coordinates:
        step = np.zeros_like(c1)
        step[index] = eps
        fd = (head(c1 + step) - head(c1 - step)) / (2 * eps)
        assert abs(gradients[index] - fd) <= 1e-4 * np.abs(gradients).max() + 1e-6, index
    assert np.count_nonzero(gradients) > 0.1 * gradients.size


def test_bad_layer_names_list_close_matches(h, ref_model):
    with pytest.raises(ValueError, match=r"no layer named 'c_3'; close matches: .*'c3'"):
        h.adapter.layer_fn(ref_model, "c_3")
    with pytest.raises(ValueError, match=r"no layer named 'zzz'; no close match; the layers are "
                                         r"'image', 'c1_pad'"):
        h.adapter.layer_fn(ref_model, "zzz")
    with pytest.raises(TypeError, match="layer name"):
        h.adapter.layer_fn(ref_model, 3)


def test_layers_without_spatial_axes_are_refused(h, ref_model):
    for name, shape in (("fc", r"\(None, 10\)"), ("gap", r"\(None, 16\)")):
        with pytest.raises(ValueError, match=f"spatial axes.*{name!r} gives shape {shape}"):
            h.adapter.layer_fn(ref_model, name)


def test_layer_objects_sequential_and_objectives(h, tf, keras):
    """A 1x1 conv then pool and dense: A = x W1 per pixel, d score / d A = W2[:, t] / 4."""
    x = np.random.default_rng(9).standard_normal((3, 2, 2, 3)).astype(np.float32)
    target = np.array([1, 0, 1])
    conv = keras.layers.Conv2D(4, 1, use_bias=False, name="conv")
    dense = keras.layers.Dense(2, use_bias=False, name="dense")
    model = keras.Sequential([conv, keras.layers.GlobalAveragePooling2D(), dense])
    model.build((None, 2, 2, 3))
    conv.set_weights([W1[None, None]])
    dense.set_weights([W2])
    activations = x @ W1
    for layer in ("conv", conv):
        a, g = h.adapter.layer_fn(model, layer)(x, target)
        np.testing.assert_allclose(a, activations, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(
            g, np.broadcast_to(W2[:, target].T[:, None, None] / 4, a.shape), rtol=1e-6
        )
    with pytest.raises(ValueError, match="target"):
        h.adapter.layer_fn(model, "conv")(x, None)
    squared = h.adapter.layer_fn(model, "conv", objective=h.square_sum_objective())
    out = activations.mean(axis=(1, 2)) @ W2
    _, g = squared(x, None)
    np.testing.assert_allclose(
        g, np.broadcast_to((2 * out @ W2.T / 4)[:, None, None], g.shape), rtol=1e-5, atol=1e-6
    )
    other = keras.layers.Conv2D(4, 1)
    with pytest.raises(ValueError, match="not among them"):
        h.adapter.layer_fn(model, other)


def test_models_without_layer_outputs_are_refused(h, tf, keras):
    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(2, 1)

        def call(self, x):
            return keras.ops.mean(self.conv(x), axis=(1, 2))

    model = Subclassed()
    model(np.ones((1, 2, 2, 3), np.float32))
    for handle in (model, lambda x: x, keras.Sequential([keras.layers.Conv2D(2, 1)])):
        with pytest.raises(TypeError, match="functional or Sequential Keras model"):
            h.adapter.layer_fn(handle, "conv")


def test_shared_and_nested_layers_are_explained(h, keras):
    image = keras.Input((4, 4, 3))
    shared = keras.layers.Conv2D(3, 1, name="shared")
    inner = keras.Sequential([keras.layers.Conv2D(2, 1, name="inner_conv")], name="backbone")
    features = inner(shared(shared(image)))
    model = keras.Model(image, keras.layers.GlobalAveragePooling2D()(features))
    with pytest.raises(ValueError, match="called 2 times"):
        h.adapter.layer_fn(model, "shared")
    with pytest.raises(ValueError, match="inside the nested model 'backbone'"):
        h.adapter.layer_fn(model, "inner_conv")
    a, g = h.adapter.layer_fn(model, "backbone")(np.ones((1, 4, 4, 3), np.float32), 0)
    assert a.shape == g.shape == (1, 4, 4, 2)


def test_layer_fn_leaves_the_model_unchanged(h, ref_model, images):
    before = h.snapshot(ref_model)
    h.layer_fn(ref_model, "block")(images, 3)
    h.layer_fn(ref_model, "c1")(images, 3)

    def failing(output, target):
        raise RuntimeError("objective failed on purpose")

    with pytest.raises(RuntimeError, match="on purpose"):
        h.layer_fn(ref_model, "block", objective=failing)(images, None)
    with pytest.raises(ValueError):
        h.layer_fn(ref_model, "fc")
    np.testing.assert_equal(h.snapshot(ref_model), before)


def test_half_precision_layer_fn_gives_float32(h, weights, images):
    model = h.reference_model(weights, dtype="float16")
    activations, gradients = h.layer_fn(model, "block")(images, 4)
    assert activations.dtype == gradients.dtype == np.float32
    _, block = numpy_layers(weights, images)
    assert np.linalg.norm(activations - block) <= 1e-2 * np.linalg.norm(block)
