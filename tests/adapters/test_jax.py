"""Tests of ``adapters.jax`` against numpy references and closed forms (JAX on CPU).

Trace counts are measured with a counter inside ``apply_fn``: its Python body runs only
when JAX traces it, so the counter is the number of traces (hence compilations).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.adapters import reference
from tests.adapters.harness import load_harness
from tests.conftest import require

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def h():
    return load_harness("jax")


@pytest.fixture(scope="module")
def jnp(h):
    import jax.numpy

    return jax.numpy


@pytest.fixture(scope="module")
def weights():
    return reference.make_weights()


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


def counting(apply):
    """``apply`` wrapped with a trace counter; a new function object every time."""
    count = {"traces": 0}

    def apply_fn(params, x):
        count["traces"] += 1
        return apply(params, x)

    return apply_fn, count


def linear_setup(rows=5, inputs=6, outputs=4, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((inputs, outputs)).astype(np.float32)
    x = rng.standard_normal((rows, inputs)).astype(np.float32)
    target = rng.integers(0, outputs, size=rows)
    return w, x, target


# --- the reference network -----------------------------------------------------------


def test_reference_outputs_match_numpy_forward(h, weights):
    x = reference.make_inputs(4)
    expected = reference.forward(weights, x)
    apply_fn, params = handle = h.reference_model(weights)
    direct = np.asarray(apply_fn(params, h.to_native(x)))
    predicted = h.predict_fn(handle)(h.to_native(x))
    assert predicted.shape == (4, reference.N_CLASSES)
    assert predicted.dtype == np.float32
    assert relative_error(direct, expected) < 1e-5
    assert relative_error(predicted, expected) < 1e-5


def test_reference_gradients_match_finite_differences(h, weights):
    x = reference.make_inputs(2)
    target = np.array([3, 7])
    fn = h.gradient_fn(h.reference_model(weights))
    gradients = h.from_native(fn(h.to_native(x), target))
    expected = reference.finite_difference_gradient(weights, x, target)
    assert gradients.shape == x.shape
    assert gradients.dtype == np.float32
    assert relative_error(gradients, expected) < 1e-4
    # Each row is the gradient of its own target: swapping targets changes the map.
    swapped = h.from_native(fn(h.to_native(x), target[::-1]))
    assert relative_error(swapped, expected) > 1e-2


def relative_l2(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.linalg.norm(actual - expected) / np.linalg.norm(expected))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_models_give_float32_maps(h, weights, dtype):
    """float16/bfloat16 reference network: float32 maps close to the float32 map.

    float16 (11-bit mantissa) stays within 5e-2 of the largest value everywhere (measured
    ~1e-3). bfloat16 (8-bit mantissa) flips a few ReLU and max-pool decisions, which moves
    a handful of pixels by ~10% of the largest value, so it is compared on the whole map
    (relative L2, measured ~3%).
    """
    x = reference.make_inputs(2)  # the shape of the finite-difference test: no new compile
    target = np.array([0, 9])
    full = h.gradient_fn(h.reference_model(weights))(x, target)
    low = h.gradient_fn(h.reference_model(weights, dtype=dtype))(x, target)
    assert low.dtype == np.float32
    assert low.shape == full.shape
    assert not np.array_equal(low, full)  # it did run in low precision
    if dtype == "float16":
        assert relative_error(low, full) < 5e-2
    else:
        assert relative_l2(low, full) < 1e-1


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_linear_model_is_exact(h, jnp, dtype):
    """d (x w)[t] / dx is w[:, t]: exactly the rounded low-precision weights, as float32."""
    w, x, target = linear_setup()
    apply_fn, params = h.linear_model(w)
    low_params = {"w": params["w"].astype(dtype)}
    gradients = h.adapter.gradient_fn(apply_fn, params=low_params)(x, target)
    assert gradients.dtype == np.float32
    rounded = np.asarray(low_params["w"].astype(jnp.float32))
    assert not np.array_equal(rounded, w)  # the rounding is real, so the check has teeth
    np.testing.assert_array_equal(gradients, rounded[:, target].T)
    outputs = h.adapter.predict_fn(apply_fn, params=low_params)(x)
    assert outputs.dtype == np.float32
    np.testing.assert_allclose(outputs, x @ rounded, rtol=2e-2, atol=2e-2 * np.abs(x @ w).max())


def test_dtype_option_casts_the_input(h, jnp):
    """float32 weights, bfloat16 input: d (x w)[t] / dx is w[:, t] rounded to bfloat16."""
    w, x, target = linear_setup()
    apply_fn, params = h.linear_model(w)
    fn = h.adapter.gradient_fn(apply_fn, params=params, dtype="bfloat16")
    gradients = fn(x, target)
    assert gradients.dtype == np.float32
    rounded = np.asarray(jnp.asarray(w, dtype=jnp.bfloat16).astype(jnp.float32))
    np.testing.assert_array_equal(gradients, rounded[:, target].T)


def test_float64_inputs_come_back_float32(h):
    w, x, target = linear_setup()
    fn = h.gradient_fn(h.linear_model(w))
    from64 = fn(x.astype(np.float64), target)
    assert from64.dtype == np.float32
    np.testing.assert_array_equal(from64, fn(x, target))


# --- targets -------------------------------------------------------------------------


def test_linear_gradients_are_weight_columns(h):
    w, x, target = linear_setup()
    gradients = h.gradient_fn(h.linear_model(w))(x, target)
    np.testing.assert_allclose(gradients, w[:, target].T, rtol=0, atol=1e-6)


def test_int_target_applies_to_every_row(h):
    w, x, _ = linear_setup()
    gradients = h.gradient_fn(h.linear_model(w))(x, 2)
    np.testing.assert_allclose(gradients, np.broadcast_to(w[:, 2], x.shape), rtol=0, atol=1e-6)


@pytest.mark.parametrize("column", [False, True], ids=["(k,)", "(k,1)"])
def test_scalar_models_need_no_target(h, jnp, column):
    rng = np.random.default_rng(3)
    v = rng.standard_normal(6).astype(np.float32)
    x = rng.standard_normal((4, 6)).astype(np.float32)
    apply_fn, params = h.scalar_model(v)
    if column:
        fn = h.adapter.gradient_fn(lambda p, x: apply_fn(p, x)[:, None], params=params)
    else:
        fn = h.gradient_fn((apply_fn, params))
    gradients = fn(x, None)
    np.testing.assert_allclose(gradients, np.broadcast_to(v, x.shape), rtol=0, atol=1e-6)


def test_target_none_on_several_outputs_raises(h):
    w, x, _ = linear_setup()
    fn = h.gradient_fn(h.linear_model(w))
    with pytest.raises(ValueError, match="target"):
        fn(x, None)


def test_target_on_scalar_model_raises(h):
    rng = np.random.default_rng(4)
    fn = h.gradient_fn(h.scalar_model(rng.standard_normal(6).astype(np.float32)))
    with pytest.raises(ValueError, match="target=None"):
        fn(np.ones((2, 6), np.float32), np.array([0, 0]))


@pytest.mark.parametrize("bad", [-1, 4, 100])
@pytest.mark.parametrize("warm", [False, True], ids=["first-call", "after-a-call"])
def test_out_of_range_targets_raise_naming_the_range(h, bad, warm):
    w, x, target = linear_setup(outputs=4)
    fn = h.gradient_fn(h.linear_model(w))
    if warm:
        fn(x, target)
    target = target.copy()
    target[1] = bad
    with pytest.raises(ValueError, match=r"\[0, 3\]"):
        fn(x, target)


def test_targets_are_checked(h):
    w, x, target = linear_setup()
    fn = h.gradient_fn(h.linear_model(w))
    with pytest.raises(TypeError, match="integer"):
        fn(x, target.astype(np.float32))
    with pytest.raises(ValueError, match=r"\(5,\)"):
        fn(x, target[:3])
    with pytest.raises(TypeError, match="floating"):
        fn(x.astype(np.int32), target)
    with pytest.raises(ValueError, match="int32"):  # would wrap around to a valid index
        fn(x, target + 2**32)


def test_tuple_outputs_need_an_objective(h):
    w, x, target = linear_setup()
    apply_fn, params = h.linear_model(w)

    def apply_with_aux(params, x):
        return apply_fn(params, x), x.sum()

    with pytest.raises(TypeError, match="objective"):
        h.adapter.gradient_fn(apply_with_aux, params=params)(x, target)
    fn = h.adapter.gradient_fn(
        apply_with_aux, params=params, objective=lambda output, target: output[0][:, 1]
    )
    np.testing.assert_allclose(fn(x, None), np.broadcast_to(w[:, 1], x.shape), atol=1e-6)


def test_empty_batch(h):
    w, x, _ = linear_setup()
    handle = h.linear_model(w)
    assert h.gradient_fn(handle)(x[:0], np.zeros(0, int)).shape == (0, 6)
    assert h.predict_fn(handle)(x[:0]).shape == (0, 4)


def test_bad_arguments_are_refused(h):
    w, _, _ = linear_setup()
    apply_fn, params = h.linear_model(w)
    with pytest.raises(TypeError, match="apply_fn"):
        h.adapter.gradient_fn("not a function", params=params)
    with pytest.raises(TypeError, match="objective"):
        h.adapter.gradient_fn(apply_fn, params=params, objective=3)
    with pytest.raises(TypeError, match="floating dtype"):
        h.adapter.gradient_fn(apply_fn, params=params, dtype="int32")


# --- objectives ----------------------------------------------------------------------


def test_square_sum_objective_closed_form(h):
    w, x, target = linear_setup()
    fn = h.gradient_fn(h.linear_model(w), objective=h.square_sum_objective())
    expected = 2 * (x @ w) @ w.T  # d/dx sum_c (x w)_c^2
    np.testing.assert_allclose(fn(x, None), expected, rtol=1e-5, atol=1e-5)
    # The target is handed to the objective, which ignores it here.
    np.testing.assert_allclose(fn(x, target), expected, rtol=1e-5, atol=1e-5)


def test_objective_receives_target_as_is(h, jnp):
    def objective(output, target):
        if target is None:
            return output.sum(axis=1)
        return 3 * jnp.take_along_axis(output, target[:, None], axis=1)[:, 0]

    w, x, target = linear_setup()
    fn = h.gradient_fn(h.linear_model(w), objective=objective)
    np.testing.assert_allclose(fn(x, None), np.broadcast_to(w.sum(1), x.shape), atol=1e-5)
    np.testing.assert_allclose(fn(x, target), 3 * w[:, target].T, atol=1e-5)


def test_objective_must_give_one_score_per_row(h):
    w, x, _ = linear_setup()
    fn = h.gradient_fn(h.linear_model(w), objective=lambda output, target: output)
    with pytest.raises(ValueError, match="one score per row"):
        fn(x, None)


# --- the model is left alone ---------------------------------------------------------


def test_model_unchanged_after_calls_and_errors(h, weights):
    handle = h.reference_model(weights)
    before = h.snapshot(handle)
    x = reference.make_inputs(2)
    h.gradient_fn(handle)(x, np.array([1, 2]))
    h.gradient_fn(handle, objective=h.square_sum_objective())(x, None)
    h.predict_fn(handle)(x)

    def failing(output, target):
        raise RuntimeError("objective failed")

    with pytest.raises(RuntimeError, match="objective failed"):
        h.gradient_fn(handle, objective=failing)(x, None)
    with pytest.raises(ValueError):
        h.gradient_fn(handle)(x, np.array([1, 10]))
    np.testing.assert_equal(h.snapshot(handle), before)
    # The model still works after the failures.
    outputs = h.predict_fn(handle)(x)
    assert relative_error(outputs, reference.forward(weights, x)) < 1e-5


# --- compilation ---------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["target", "objective"])
def test_one_trace_for_many_chunks_and_a_smaller_last_one(h, mode):
    w, _, _ = linear_setup()
    base_apply, params = h.linear_model(w)
    apply_fn, count = counting(base_apply)
    objective = h.square_sum_objective() if mode == "objective" else None
    fn = h.adapter.gradient_fn(apply_fn, params=params, objective=objective)
    rng = np.random.default_rng(5)
    for rows in (8, 8, 8, 8, 8, 3):
        x = rng.standard_normal((rows, 6)).astype(np.float32)
        target = rng.integers(0, 4, size=rows)
        gradients = fn(x, target)
        expected = 2 * (x @ w) @ w.T if objective else w[:, target].T
        assert gradients.shape == x.shape
        np.testing.assert_allclose(gradients, expected, rtol=1e-5, atol=1e-5)
    assert count["traces"] == 1


def test_predict_traces_once_for_many_chunks(h):
    w, _, _ = linear_setup()
    base_apply, params = h.linear_model(w)
    apply_fn, count = counting(base_apply)
    fn = h.adapter.predict_fn(apply_fn, params=params)
    rng = np.random.default_rng(6)
    for rows in (8, 8, 8, 8, 8, 3):
        x = rng.standard_normal((rows, 6)).astype(np.float32)
        np.testing.assert_allclose(fn(x), x @ w, rtol=1e-5, atol=1e-5)
    assert count["traces"] == 1


def test_reference_network_traces_once(h, weights):
    base_apply, params = h.reference_model(weights)
    apply_fn, count = counting(base_apply)
    fn = h.adapter.gradient_fn(apply_fn, params=params)
    x = reference.make_inputs(5)
    first = fn(x[:4], np.array([0, 1, 2, 3]))
    fn(x[1:5], np.array([4, 5, 6, 7]))
    last = fn(x[:1], np.array([0]))  # padded to 4 rows, sliced back
    np.testing.assert_allclose(last, first[:1], rtol=1e-6, atol=1e-7)
    assert count["traces"] == 1


def test_params_are_arguments_not_constants(h):
    """New params of the same shapes: new gradients, and the compiled program is reused.

    Were the weights baked into the program as constants, either the old gradients would
    come back or the function would be traced again.
    """
    w1, x, target = linear_setup(seed=0)
    w2, _, _ = linear_setup(seed=1)
    base_apply, params1 = h.linear_model(w1)
    apply_fn, count = counting(base_apply)
    g1 = h.adapter.gradient_fn(apply_fn, params=params1)(x, target)
    g2 = h.adapter.gradient_fn(apply_fn, params=h.linear_model(w2)[1])(x, target)
    np.testing.assert_allclose(g1, w1[:, target].T, atol=1e-6)
    np.testing.assert_allclose(g2, w2[:, target].T, atol=1e-6)
    assert count["traces"] == 1


def test_params_none_with_closure(h):
    w, x, target = linear_setup()
    fn = h.adapter.gradient_fn(lambda x: x @ w)
    np.testing.assert_allclose(fn(x, target), w[:, target].T, atol=1e-6)
    np.testing.assert_allclose(h.adapter.predict_fn(lambda x: x @ w)(x), x @ w, atol=1e-5)


# --- Flax models plug in -------------------------------------------------------------
# Weights are drawn in numpy for the shapes Flax reports (eval_shape traces, compiles
# nothing), which keeps these tests fast; Flax's own initialisers run op by op.


def random_like(abstract, seed):
    """Arrays of the shapes and dtypes of a pytree of ``jax.ShapeDtypeStruct``."""
    import jax
    import jax.numpy as jnp

    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda leaf: jnp.asarray(rng.standard_normal(leaf.shape), dtype=leaf.dtype), abstract
    )


def mlp_outputs(w1, b1, w2, b2, x):
    return np.maximum(x @ w1 + b1, 0) @ w2 + b2


def mlp_gradients(w1, b1, w2, x, target):
    """Closed form of d (relu(x w1 + b1) w2)[target] / dx, per row."""
    mask = (x @ w1 + b1) > 0
    return (mask * w2[:, target].T) @ w1.T


def test_flax_linen_model_plugs_in(h):
    nn = require("flax.linen")
    import jax

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            hidden = nn.relu(nn.Dense(8, name="hidden")(x))
            return nn.Dense(3, name="out")(hidden)

    model = MLP()
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 5)).astype(np.float32)
    target = np.array([0, 2, 1, 2])
    variables = random_like(jax.eval_shape(model.init, jax.random.key(0), x), seed=7)
    layers = {
        name: {k: np.asarray(v) for k, v in layer.items()}
        for name, layer in variables["params"].items()
    }
    hidden, out = layers["hidden"], layers["out"]
    gradients = h.adapter.gradient_fn(model.apply, params=variables)(x, target)
    expected = mlp_gradients(hidden["kernel"], hidden["bias"], out["kernel"], x, target)
    np.testing.assert_allclose(gradients, expected, atol=1e-5)
    outputs = h.adapter.predict_fn(model.apply, params=variables)(x)
    expected = mlp_outputs(hidden["kernel"], hidden["bias"], out["kernel"], out["bias"], x)
    np.testing.assert_allclose(outputs, expected, atol=1e-5)


def test_flax_nnx_model_plugs_in(h):
    nnx = require("flax.nnx")

    class MLP(nnx.Module):
        def __init__(self, rngs):
            self.hidden = nnx.Linear(5, 8, rngs=rngs)
            self.out = nnx.Linear(8, 3, rngs=rngs)

        def __call__(self, x):
            return self.out(nnx.relu(self.hidden(x)))

    graphdef, abstract_state = nnx.split(nnx.eval_shape(lambda: MLP(nnx.Rngs(0))))
    model = nnx.merge(graphdef, random_like(abstract_state, seed=8))
    graphdef, state = nnx.split(model)

    def apply_fn(state, x):
        return nnx.merge(graphdef, state)(x)

    w1, b1, w2, b2 = (
        np.array(layer[...])
        for layer in (model.hidden.kernel, model.hidden.bias, model.out.kernel, model.out.bias)
    )
    rng = np.random.default_rng(8)
    x = rng.standard_normal((4, 5)).astype(np.float32)
    target = np.array([1, 0, 2, 2])
    gradients = h.adapter.gradient_fn(apply_fn, params=state)(x, target)
    np.testing.assert_allclose(gradients, mlp_gradients(w1, b1, w2, x, target), atol=1e-5)
    outputs = h.adapter.predict_fn(apply_fn, params=state)(x)
    np.testing.assert_allclose(outputs, mlp_outputs(w1, b1, w2, b2, x), atol=1e-5)
    # The nnx model itself is untouched.
    np.testing.assert_array_equal(np.asarray(model.hidden.kernel[...]), w1)
    np.testing.assert_array_equal(np.asarray(model.out.bias[...]), b2)


# --- packaging -----------------------------------------------------------------------


def test_missing_jax_names_the_pip_command():
    code = (
        "import sys\n"
        "sys.modules['jax'] = None\n"
        "try:\n"
        "    import adapters.jax\n"
        "except ImportError as error:\n"
        "    print(error)\n"
        "else:\n"
        "    print('imported')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert 'pip install "saliency-toolkit[jax]"' in result.stdout
