"""The jaxpr rewrite behind JAX's ReLU rules, and Grad-CAM layers as split models.

ReLU rules are checked against backward passes written out by hand in numpy on a tiny
network ``x -> W1 -> ReLU -> W2 -> scores``, for every way a JAX model may call
:func:`jax.nn.relu`; layer callbacks ``(features_fn, head_fn)`` against the numpy reference
network (``tests/adapters/reference.py``) and closed forms. How the rules and Grad-CAM agree
with the other frameworks is tested in ``test_agreement_methods.py``; the shared checks of
``relu_rule`` in ``test_contract.py``.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest

from saliency_core import grad_cam
from tests.adapters import reference
from tests.adapters.harness import load_harness
from tests.conftest import require

RULES = (None, "guided", "deconvnet")


@pytest.fixture(scope="module")
def h():
    return load_harness("jax")


@pytest.fixture(scope="module")
def jax(h):
    import jax

    return jax


@pytest.fixture(scope="module")
def jnp(h):
    import jax.numpy

    return jax.numpy


@pytest.fixture(scope="module")
def weights():
    return reference.make_weights()


# --- the tiny network and its backward pass by hand ------------------------------------

W1 = np.array(
    [[0.5, -1.0, 0.8, 0.3, -0.6],
     [-0.7, 0.4, 0.2, -0.9, 1.0],
     [0.6, 0.9, -0.5, 0.4, 0.2],
     [-0.2, 0.3, 0.7, -0.8, -0.4]],
    dtype=np.float32,
)  # (4, 5): input -> hidden
W2 = np.array(
    [[1.0, -0.5, 0.3],
     [-0.8, 0.6, 0.9],
     [0.4, -1.0, -0.2],
     [-0.6, 0.7, 0.5],
     [0.9, 0.2, -0.7]],
    dtype=np.float32,
)  # (5, 3): hidden -> scores
X = np.array(
    [[1.0, -0.5, 0.3, 0.8],
     [-0.4, 0.9, -1.0, 0.2],
     [0.6, 0.1, 0.7, -0.9]],
    dtype=np.float32,
)
TARGET = np.array([0, 1, 2])


def hand_gradients(rule, x=X, target=TARGET, *, scale=1.0):
    """The backward pass of ``scale * relu(x W1) W2`` at ``target``, ReLU rule by hand.

    ``scale`` (one per row) multiplies the gradient arriving at the output.
    """
    x = x.astype(np.float64)
    pre = x @ W1  # the ReLU's input
    scale = np.broadcast_to(np.asarray(scale, np.float64), (x.shape[0],))[:, None]
    upstream = scale * W2[:, target].T  # d score / d relu output, per row
    if rule is None:
        through = upstream * (pre > 0)
    elif rule == "guided":
        through = upstream * (pre > 0) * (upstream > 0)
    else:  # deconvnet: max(g, 0), whatever the input
        through = np.maximum(upstream, 0)
    return through @ W1.T


def test_the_case_separates_the_rules():
    """Negative pre-activations and negative upstream gradients, so every rule differs."""
    pre = X @ W1
    upstream = W2[:, TARGET].T
    assert (pre < 0).any() and (pre > 0).any()
    assert (upstream < 0).any() and (upstream > 0).any()
    # a negative input with a positive gradient: deconvnet passes it, guided does not
    assert ((pre < 0) & (upstream > 0)).any()
    maps = [hand_gradients(rule) for rule in RULES]
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.abs(maps[i] - maps[j]).max() > 0.1, (RULES[i], RULES[j])


# --- every kind of ReLU a JAX model may use ---------------------------------------------


def _params(jnp):
    return {"w1": jnp.asarray(W1), "w2": jnp.asarray(W2)}


def _plain(jax, jnp):
    return lambda p, x: jax.nn.relu(x @ p["w1"]) @ p["w2"], _params(jnp)


def _in_jit(jax, jnp):
    relu = jax.jit(lambda z: jax.nn.relu(z))
    return lambda p, x: relu(x @ p["w1"]) @ p["w2"], _params(jnp)


def _whole_model_jitted(jax, jnp):
    return jax.jit(lambda p, x: jax.nn.relu(x @ p["w1"]) @ p["w2"]), _params(jnp)


def _in_vmap(jax, jnp):
    return (lambda p, x: jax.vmap(lambda row: jax.nn.relu(row @ p["w1"]) @ p["w2"])(x),
            _params(jnp))


def _in_scan(jax, jnp):
    def apply(p, x):
        def layer(hidden, w):  # two scanned steps: identity-weighted, then ReLU
            return jax.nn.relu(hidden @ w), None

        eye = jnp.eye(W1.shape[1])[None]
        hidden, _ = jax.lax.scan(layer, x @ p["w1"], eye)
        return hidden @ p["w2"]

    return apply, _params(jnp)


def _in_cond(jax, jnp):
    def apply(p, x):
        pre = x @ p["w1"]
        hidden = jax.lax.cond(p["switch"] > 0, jax.nn.relu, jnp.tanh, pre)
        return hidden @ p["w2"]

    return apply, {**_params(jnp), "switch": jnp.asarray(1.0)}


def _in_checkpoint(jax, jnp):
    relu = jax.checkpoint(lambda z: jax.nn.relu(z))
    return lambda p, x: relu(x @ p["w1"]) @ p["w2"], _params(jnp)


def _flax_linen(jax, jnp):
    nn = require("flax.linen")

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            hidden = nn.relu(nn.Dense(W1.shape[1], use_bias=False, name="hidden")(x))
            return nn.Dense(W2.shape[1], use_bias=False, name="out")(hidden)

    variables = {"params": {"hidden": {"kernel": jnp.asarray(W1)},
                            "out": {"kernel": jnp.asarray(W2)}}}
    return MLP().apply, variables


def _flax_nnx(jax, jnp):
    nnx = require("flax.nnx")

    class MLP(nnx.Module):
        def __init__(self, rngs):
            self.hidden = nnx.Linear(W1.shape[0], W1.shape[1], use_bias=False, rngs=rngs)
            self.out = nnx.Linear(W2.shape[0], W2.shape[1], use_bias=False, rngs=rngs)

        def __call__(self, x):
            return self.out(nnx.relu(self.hidden(x)))

    graphdef, abstract = nnx.split(nnx.eval_shape(lambda: MLP(nnx.Rngs(0))))
    state = jax.tree.map(lambda leaf: jnp.zeros(leaf.shape, leaf.dtype), abstract)
    model = nnx.merge(graphdef, state)
    model.hidden.kernel[...] = jnp.asarray(W1)
    model.out.kernel[...] = jnp.asarray(W2)
    graphdef, state = nnx.split(model)

    def apply(state, x):
        return nnx.merge(graphdef, state)(x)

    return apply, state


RELU_KINDS = {
    "jax.nn.relu": _plain,
    "relu inside jax.jit": _in_jit,
    "jitted apply_fn": _whole_model_jitted,
    "inside jax.vmap": _in_vmap,
    "inside lax.scan": _in_scan,
    "inside lax.cond": _in_cond,
    "inside jax.checkpoint": _in_checkpoint,
    "flax.linen nn.relu": _flax_linen,
    "flax.nnx nnx.relu": _flax_nnx,
}


@pytest.mark.parametrize("kind", list(RELU_KINDS))
def test_every_kind_of_relu_follows_the_rule(h, jax, jnp, kind):
    """Guided and deconvnet on each kind (the plain gradient never meets the rewriter)."""
    apply_fn, params = RELU_KINDS[kind](jax, jnp)
    for rule in ("guided", "deconvnet"):
        gradients = h.adapter.gradient_fn(apply_fn, params=params, relu_rule=rule)(X, TARGET)
        assert gradients.dtype == np.float32 and gradients.shape == X.shape
        np.testing.assert_allclose(gradients, hand_gradients(rule), rtol=1e-5, atol=1e-6,
                                   err_msg=f"{kind}, relu_rule={rule}")


def test_several_relus_in_a_row(h, jax, jnp):
    """Two ReLU layers: the rule applies at each, the second one's output feeding the first."""
    w_mid = np.array([[0.9, -0.4, 0.2, 0.5, -0.3], [-0.6, 0.8, -0.1, 0.4, 0.7],
                      [0.3, 0.5, -0.9, -0.2, 0.1], [0.7, -0.3, 0.6, -0.5, 0.2],
                      [-0.4, 0.1, 0.3, 0.8, -0.6]], dtype=np.float32)

    def apply(p, x):
        return jax.nn.relu(jax.nn.relu(x @ p["w1"]) @ p["mid"]) @ p["w2"]

    params = {**_params(jnp), "mid": jnp.asarray(w_mid)}
    pre1 = X @ W1
    pre2 = np.maximum(pre1, 0) @ w_mid
    for rule in RULES:
        g = W2[:, TARGET].T.astype(np.float64)
        for pre, weight in ((pre2, w_mid), (pre1, W1)):
            if rule is None:
                g = g * (pre > 0)
            elif rule == "guided":
                g = g * (pre > 0) * (g > 0)
            else:
                g = np.maximum(g, 0)
            g = g @ weight.T
        gradients = h.adapter.gradient_fn(apply, params=params, relu_rule=rule)(X, TARGET)
        np.testing.assert_allclose(gradients, g, rtol=1e-5, atol=1e-6, err_msg=str(rule))


def test_other_relu_forms_are_refused_not_ignored(h, jax, jnp):
    """``jnp.maximum`` and ``relu6`` are not jax.nn.relu: no silent plain gradient."""
    for apply in (lambda p, x: jnp.maximum(x @ p["w1"], 0) @ p["w2"],
                  lambda p, x: jax.nn.relu6(x @ p["w1"]) @ p["w2"]):
        fn = h.adapter.gradient_fn(apply, params=_params(jnp), relu_rule="deconvnet")
        with pytest.raises(ValueError, match="jax.nn.relu"):
            fn(X, TARGET)


# --- forward values and the model are left alone -----------------------------------------


def test_forward_values_are_unchanged_by_a_rule(h, weights):
    """The rewritten reference network (what the adapter differentiates) computes exactly
    the same logits: the same program, compiled the same way."""
    import jax

    apply_fn, params = h.reference_model(weights)
    x = reference.make_inputs(2)
    plain = np.asarray(jax.jit(apply_fn)(params, x))
    for rule in ("guided", "deconvnet"):
        rewritten = jax.jit(h.adapter._with_relu_rule(apply_fn, rule))
        np.testing.assert_array_equal(np.asarray(rewritten(params, x)), plain)


def test_forward_values_reach_the_objective_unchanged(h, jax, jnp):
    """Score y_t^2: the gradient arriving at the output is 2 y_t, from the plain forward.

    One row has y_t < 0, which flips the sign of every upstream gradient, so guided
    backpropagation keeps other units there: the forward value decides what passes.
    """
    apply_fn, params = _plain(jax, jnp)
    y = np.maximum(X.astype(np.float64) @ W1, 0) @ W2
    y_t = y[np.arange(3), TARGET]
    assert (y_t < 0).any() and (y_t > 0).any()

    def squared(output, target):
        return jnp.take_along_axis(output, target[:, None], axis=1)[:, 0] ** 2

    for rule in RULES:
        fn = h.adapter.gradient_fn(apply_fn, params=params, objective=squared, relu_rule=rule)
        np.testing.assert_allclose(fn(X, TARGET), hand_gradients(rule, scale=2 * y_t),
                                   rtol=1e-5, atol=1e-6)


def test_model_unchanged_after_rules_and_failures(h, jax, jnp):
    """Nothing is patched: the params, jax.nn.relu and plain callbacks stay as they were."""
    handle = _plain(jax, jnp)
    before = h.snapshot(handle)
    plain = h.gradient_fn(handle)  # made before any rule is used
    relu_before = jax.nn.relu
    guided = h.gradient_fn(handle, relu_rule="guided")(X, TARGET)
    h.gradient_fn(handle, relu_rule="deconvnet")(X, TARGET)

    def failing_objective(output, target):
        raise RuntimeError("objective failed")

    calls = {"n": 0}

    def failing_model(params, x):  # fails midway, after a ReLU was traced
        hidden = jax.nn.relu(x)
        calls["n"] += 1
        raise RuntimeError("model failed")
        return hidden  # pragma: no cover

    with pytest.raises(RuntimeError, match="objective failed"):
        h.gradient_fn(handle, objective=failing_objective, relu_rule="guided")(X, None)
    with pytest.raises(RuntimeError, match="model failed"):
        h.adapter.gradient_fn(failing_model, params=handle[1], relu_rule="guided")(X, None)
    assert calls["n"] == 1

    np.testing.assert_equal(h.snapshot(handle), before)
    assert jax.nn.relu is relu_before
    # jax.nn.relu still has its plain derivative: a negative gradient passes where x > 0
    assert float(jax.grad(lambda z: -jax.nn.relu(z))(1.0)) == -1.0
    # the callback made before, and a new plain one, still give the plain gradient
    for fn in (plain, h.gradient_fn(handle)):
        np.testing.assert_allclose(fn(X, TARGET), hand_gradients(None), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(guided, hand_gradients("guided"), rtol=1e-5, atol=1e-6)


def test_plain_and_guided_callbacks_of_one_model_run_concurrently(h, jax, jnp):
    apply_fn, params = _plain(jax, jnp)
    fns = {rule: h.adapter.gradient_fn(apply_fn, params=params, relu_rule=rule)
           for rule in RULES}
    results: dict[tuple[str | None, int], np.ndarray] = {}
    errors: list[BaseException] = []

    def work(rule):
        try:
            for i in range(5):
                results[rule, i] = fns[rule](X, TARGET)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(rule,)) for rule in RULES]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for (rule, _), gradients in results.items():
        np.testing.assert_allclose(gradients, hand_gradients(rule), rtol=1e-5, atol=1e-6)
    assert len(results) == 15


def test_a_rule_traces_once_for_many_chunks(h, jax, jnp):
    """The rewrite runs when the program is traced, once, and costs nothing per call."""
    count = {"traces": 0}

    def apply_fn(p, x):
        count["traces"] += 1
        return jax.nn.relu(x @ p["w1"]) @ p["w2"]

    fn = h.adapter.gradient_fn(apply_fn, params=_params(jnp), relu_rule="guided")
    rng = np.random.default_rng(2)
    for rows in (6, 6, 6, 2):
        x = rng.standard_normal((rows, 4)).astype(np.float32)
        target = rng.integers(0, 3, size=rows)
        np.testing.assert_allclose(fn(x, target), hand_gradients("guided", x, target),
                                   rtol=1e-5, atol=1e-6)
    assert count["traces"] == fn.trace_count == 1


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_rules_run_in_low_precision(h, jax, jnp, dtype):
    """The rewriter finds the ReLUs of a half-precision model; maps come back float32."""
    apply_fn, params = _plain(jax, jnp)
    low = (apply_fn, jax.tree.map(lambda w: w.astype(dtype), params))
    for rule in ("guided", "deconvnet"):
        gradients = h.gradient_fn(low, relu_rule=rule)(X, TARGET)
        assert gradients.dtype == np.float32
        expected = hand_gradients(rule)
        np.testing.assert_allclose(gradients, expected, atol=2e-2 * np.abs(expected).max())


# --- layer callbacks for Grad-CAM --------------------------------------------------------


def numpy_layers(weights, x):
    """The reference network's ``"c1"`` (before ReLU) and ``"block"`` outputs, float64."""
    p = {k: v.astype(np.float64) for k, v in weights.items()}
    c1 = reference.conv2d(x.astype(np.float64), p["c1_w"], p["c1_b"], 1, 1)
    pooled = reference.max_pool_2x2(np.maximum(c1, 0))
    r = np.maximum(reference.conv2d(pooled, p["c2_w"], p["c2_b"], 2, 1), 0)
    r = reference.conv2d(r, p["c3_w"], p["c3_b"], 1, 1)
    s = reference.conv2d(pooled, p["sc_w"], p["sc_b"], 2, 0)
    return c1, np.maximum(r + s, 0)


def numpy_head_from_c1(weights, c1, target):
    p = {k: v.astype(np.float64) for k, v in weights.items()}
    pooled = reference.max_pool_2x2(np.maximum(c1, 0))
    r = np.maximum(reference.conv2d(pooled, p["c2_w"], p["c2_b"], 2, 1), 0)
    r = reference.conv2d(r, p["c3_w"], p["c3_b"], 1, 1)
    s = reference.conv2d(pooled, p["sc_w"], p["sc_b"], 2, 0)
    logits = np.maximum(r + s, 0).mean(axis=(1, 2)) @ p["fc_w"] + p["fc_b"]
    return logits[np.arange(c1.shape[0]), target]


def test_block_layer_activations_and_closed_form_gradients(h, weights):
    """The head is a mean pool and a dense layer: d logit_t / d A_hwc = fc_w[c, t] / 16."""
    x = reference.make_inputs(3)
    target = np.array([0, 4, 9])
    activations, gradients = h.layer_fn(h.reference_model(weights), "block")(x, target)
    _, block = numpy_layers(weights, x)
    assert activations.shape == gradients.shape == (3, 4, 4, 16)
    assert activations.dtype == gradients.dtype == np.float32
    np.testing.assert_allclose(activations, block, rtol=1e-5, atol=1e-5 * np.abs(block).max())
    expected = np.broadcast_to(weights["fc_w"][:, target].T[:, None, None, :] / 16,
                               gradients.shape)
    np.testing.assert_allclose(gradients, expected, rtol=1e-6, atol=1e-8)


def test_c1_layer_gradients_match_finite_differences(h, weights):
    x = reference.make_inputs(1)
    target = np.array([3])
    activations, gradients = h.layer_fn(h.reference_model(weights), "c1")(x, target)
    c1, _ = numpy_layers(weights, x)
    assert activations.shape == (1, 16, 16, 8)
    np.testing.assert_allclose(activations, c1, rtol=1e-5, atol=1e-5 * np.abs(c1).max())
    rng = np.random.default_rng(0)
    flat = gradients.reshape(-1)
    picks = np.concatenate([rng.choice(flat.size, 12, replace=False),
                            np.flatnonzero(np.abs(flat) > 1e-3)[:12]])
    eps = 1e-4
    for index in picks:
        step = np.zeros(c1.size)
        step[index] = eps
        step = step.reshape(c1.shape)
        fd = (numpy_head_from_c1(weights, c1 + step, target)
              - numpy_head_from_c1(weights, c1 - step, target)) / (2 * eps)
        assert abs(flat[index] - fd[0]) <= 1e-4 * np.abs(flat).max(), index


def test_layer_fn_traces_once_over_chunks(h, weights):
    count = {"traces": 0}

    def features(params, x):
        count["traces"] += 1
        return h.block_features(params, x)

    handle = h.reference_model(weights)
    fn = h.adapter.layer_fn(handle, (features, h.block_head))
    x = reference.make_inputs(11)
    maps = grad_cam(fn, x, 7, batch_size=4)  # chunks of 4, 4, 3 (padded to 4)
    assert maps.shape == (11, 16, 16)
    assert count["traces"] == 1
    first = fn(x[:4], np.full(4, 7))[0]
    last = fn(x[:1], np.array([7]))[0]
    np.testing.assert_allclose(last, first[:1], rtol=1e-6, atol=1e-7)
    assert count["traces"] == fn.trace_count == 1


def test_dense_layer_is_refused(h, weights):
    def pooled(params, x):
        return h.block_features(params, x).mean(axis=(1, 2))

    def dense(params, features):
        return features @ params["fc"]["w"] + params["fc"]["b"]

    fn = h.adapter.layer_fn(h.reference_model(weights), (pooled, dense))
    with pytest.raises(ValueError, match=r"spatial axes.*\(2, 16\)"):
        fn(reference.make_inputs(2), np.array([0, 1]))


def test_layer_fn_targets_and_objectives(h, jnp, weights):
    """Scores are taken from ``head_fn``'s output: by target, or by an objective."""
    handle = h.reference_model(weights)
    x = reference.make_inputs(2)
    _, by_int = h.layer_fn(handle, "block")(x, 5)
    np.testing.assert_allclose(by_int[:, 0, 0, :], np.tile(weights["fc_w"][:, 5] / 16, (2, 1)),
                               rtol=1e-6)

    def two_logits(output, target):
        return output[:, 1] + 2 * output[:, 3]

    _, gradients = h.layer_fn(handle, "block", objective=two_logits)(x, None)
    expected = (weights["fc_w"][:, 1] + 2 * weights["fc_w"][:, 3]) / 16
    np.testing.assert_allclose(gradients[:, 2, 3, :], np.tile(expected, (2, 1)), rtol=1e-5)


def test_layer_fn_leaves_the_model_alone_and_refuses_bad_layers(h, weights):
    handle = h.reference_model(weights)
    before = h.snapshot(handle)
    with pytest.raises(ValueError, match="no empty axis"):  # zero rows: refused, not run
        h.layer_fn(handle, "block")(reference.make_inputs(2)[:0], np.zeros(0, int))

    def failing(output, target):
        raise RuntimeError("objective failed")

    with pytest.raises(RuntimeError, match="objective failed"):
        h.layer_fn(handle, "block", objective=failing)(reference.make_inputs(2), None)
    np.testing.assert_equal(h.snapshot(handle), before)
    with pytest.raises(ValueError, match="close matches: 'block'"):  # the harness's names
        h.layer_fn(handle, "blok")
    with pytest.raises(TypeError, match="expected head_fn to be callable, got str"):
        h.adapter.layer_fn(handle, (h.block_features, "head"))
    with pytest.raises(ValueError, match="pair, got the str 'block': a JAX model has no named"):
        h.adapter.layer_fn(handle, "block")
    with pytest.raises(TypeError, match=r"\(features_fn, head_fn\) pair, got function"):
        h.adapter.layer_fn(handle, h.block_features)


def test_low_precision_layer_fn_gives_float32(h, weights):
    x = reference.make_inputs(2)
    full = h.layer_fn(h.reference_model(weights), "block")(x, np.array([0, 9]))
    low = h.layer_fn(h.reference_model(weights, dtype="bfloat16"), "block")(x, np.array([0, 9]))
    for a, b in zip(low, full, strict=True):
        assert a.dtype == np.float32 and a.shape == b.shape
        assert np.linalg.norm(a - b) <= 0.05 * np.linalg.norm(b)
