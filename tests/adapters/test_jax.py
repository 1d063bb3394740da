"""What is JAX's own in ``adapters.jax``: model forms, compiled programs and padding,
dtypes from params, targets as JAX integers, devices, params pytrees, Flax models.

The shared contract is tested over every backend in ``test_contract.py``,
``test_agreement*.py`` and ``test_backends.py``. Traces are also counted independently,
with a counter inside ``apply_fn``: its Python body runs only when JAX traces it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from adapters._backend import multiplicative_noise, reinitialise
from tests.adapters.harness import load_harness
from tests.conftest import require

REPO_ROOT = Path(__file__).resolve().parents[2]


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


# --- model forms ---------------------------------------------------------------------


def test_a_pair_apply_fn_with_params_and_a_closure_are_the_same_model(h):
    w, x, target = linear_setup()
    apply_fn, params = handle = h.linear_model(w)
    expected = w[:, target].T
    np.testing.assert_allclose(h.adapter.gradient_fn(handle)(x, target), expected, atol=1e-6)
    np.testing.assert_allclose(h.adapter.gradient_fn(apply_fn, params=params)(x, target),
                               expected, atol=1e-6)
    closure = h.adapter.gradient_fn(lambda x: x @ w)  # params=None: apply_fn(x)
    np.testing.assert_allclose(closure(x, target), expected, atol=1e-6)
    np.testing.assert_allclose(h.adapter.predict_fn(lambda x: x @ w)(x), x @ w, atol=1e-5)
    assert h.adapter.owns(handle) and not h.adapter.owns(apply_fn) and not h.adapter.owns(params)
    with pytest.raises(TypeError, match="params=None when model is an"):
        h.adapter.gradient_fn(handle, params=params)
    with pytest.raises(TypeError, match=r"apply_fn \(a callable\) .* got a tuple of length 3"):
        h.adapter.predict_fn((apply_fn, params, None))
    with pytest.raises(TypeError, match="expected model to be apply_fn .* got str"):
        h.adapter.gradient_fn("not a function", params=params)


# --- dtypes --------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_the_compute_dtype_comes_from_params_or_dtype(h, jnp, dtype):
    """d (x w)[t] / dx is w[:, t]: exactly the weights rounded to ``dtype``, as float32,
    whether the params are in ``dtype`` or ``dtype=`` casts a float32 model's input."""
    w, x, target = linear_setup()
    apply_fn, params = h.linear_model(w)
    rounded = np.asarray(params["w"].astype(dtype).astype(jnp.float32))
    assert not np.array_equal(rounded, w)  # the rounding is real, so the check has teeth
    low = (apply_fn, {"w": params["w"].astype(dtype)})
    for fn in (h.adapter.gradient_fn(low), h.adapter.gradient_fn((apply_fn, params), dtype=dtype)):
        gradients = fn(x, target)
        assert gradients.dtype == np.float32
        np.testing.assert_array_equal(gradients, rounded[:, target].T)
    outputs = h.adapter.predict_fn(low)(x)
    assert outputs.dtype == np.float32
    np.testing.assert_allclose(outputs, x @ rounded, rtol=2e-2, atol=2e-2 * np.abs(x @ w).max())


# --- targets as JAX integers ---------------------------------------------------------


def test_targets_are_checked_in_numpy_before_the_first_and_later_calls(h):
    """The number of outputs comes from the cached trace: no extra trace, no bad run."""
    w, x, target = linear_setup(outputs=4)
    base_apply, params = h.linear_model(w)
    apply_fn, count = counting(base_apply)
    fn = h.adapter.gradient_fn(apply_fn, params=params)
    bad = target.copy()
    bad[1] = 2**32 + 1  # would wrap around to a valid int32 index
    with pytest.raises(ValueError, match=r"expected targets in \[0, 3\]"):
        fn(x, bad)
    np.testing.assert_allclose(fn(x, target), w[:, target].T, atol=1e-6)
    bad[1] = 4
    with pytest.raises(ValueError, match=r"expected targets in \[0, 3\]"):
        fn(x, bad)
    assert count["traces"] == fn.trace_count == 1


def test_an_objective_sees_exactly_the_batch_and_int32_targets(h, jax, jnp):
    """No padding rows reach an objective, so each chunk size is traced once."""
    w, _, _ = linear_setup()
    seen = []

    def objective(output, target):
        seen.append((output.shape[0], target.shape, target.dtype))
        return 3 * jnp.take_along_axis(output, target[:, None], axis=1)[:, 0]

    fn = h.gradient_fn(h.linear_model(w), objective=objective)
    rng = np.random.default_rng(5)
    for rows in (8, 8, 3, 3):
        x = rng.standard_normal((rows, 6)).astype(np.float32)
        target = rng.integers(0, 4, size=rows)
        np.testing.assert_allclose(fn(x, target), 3 * w[:, target].T, atol=1e-5)
    assert seen == [(8, (8,), jnp.int32), (3, (3,), jnp.int32)]
    assert fn.trace_count == 2
    with pytest.raises(ValueError, match="fit in int32 .*jax_enable_x64"):
        fn(x, np.full(3, 2**31))
    enable_x64 = jax.enable_x64 if hasattr(jax, "enable_x64") else jax.experimental.enable_x64
    with enable_x64(True):
        x64 = h.gradient_fn(h.linear_model(w), objective=objective)
        np.testing.assert_allclose(x64(x, np.full(3, 2)), 3 * np.tile(w[:, 2], (3, 1)), atol=1e-5)
    assert seen[-1] == (3, (3,), jnp.int64)


# --- compiled programs and padding ---------------------------------------------------


def test_one_trace_for_many_chunks_and_a_smaller_last_one(h):
    w, _, _ = linear_setup()
    base_apply, params = h.linear_model(w)
    apply_fn, count = counting(base_apply)
    fn = h.adapter.gradient_fn(apply_fn, params=params)
    predict = h.adapter.predict_fn(apply_fn, params=params)
    rng = np.random.default_rng(5)
    for rows in (8, 8, 8, 3, 1):  # 3 and 1 are padded to 8 rows and sliced back
        x = rng.standard_normal((rows, 6)).astype(np.float32)
        target = rng.integers(0, 4, size=rows)
        gradients = fn(x, target)
        assert gradients.shape == x.shape
        np.testing.assert_allclose(gradients, w[:, target].T, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(predict(x), x @ w, rtol=1e-5, atol=1e-5)
    assert count["traces"] == 2  # one program for gradients, one for outputs
    assert fn.trace_count == predict.trace_count == 1
    assert repr(fn) == "<adapters.jax.gradient_fn(" + apply_fn.__qualname__ + \
        ", dtype=float32), traces=1>"


def test_params_are_arguments_so_callbacks_share_programs(h):
    """New params of the same shapes: new gradients, and the compiled program is reused.

    Were the weights baked into the program as constants, either the old gradients would
    come back or the function would be traced again.
    """
    w1, x, target = linear_setup(seed=0)
    w2, _, _ = linear_setup(seed=1)
    base_apply, params1 = h.linear_model(w1)
    apply_fn, count = counting(base_apply)
    first = h.adapter.gradient_fn(apply_fn, params=params1)
    second = h.adapter.gradient_fn((apply_fn, h.linear_model(w2)[1]))
    np.testing.assert_allclose(first(x, target), w1[:, target].T, atol=1e-6)
    np.testing.assert_allclose(second(x, target), w2[:, target].T, atol=1e-6)
    assert count["traces"] == 1
    assert (first.trace_count, second.trace_count) == (1, 0)


# --- devices -------------------------------------------------------------------------


def test_devices_are_jax_devices(h, jax):
    w, x, target = linear_setup()
    cpu = jax.devices("cpu")[0]
    for device in ("cpu", "cpu:0", cpu):
        fn = h.gradient_fn(h.linear_model(w), device=device)
        np.testing.assert_allclose(fn(x, target), w[:, target].T, atol=1e-6)
        assert f"device={cpu}" in repr(fn)
    count = len(jax.devices("cpu"))
    with pytest.raises(ValueError, match=rf"got 'cpu:{count}'; available: cpu:0"):
        h.gradient_fn(h.linear_model(w), device=f"cpu:{count}")


# --- params pytrees and weight copies ------------------------------------------------


def test_weight_copies_of_params_pytrees(h, jax, jnp):
    dense = {"kernel": jnp.arange(6.0).reshape(3, 2), "bias": jnp.ones(2, jnp.bfloat16)}
    params = {"params": {"dense": dense, "out": {"kernel": jnp.ones((2, 1), jnp.float16)}},
              "step": jnp.asarray(7), "rng": jax.random.key(0)}
    arrays = {key: value for key, value in params.items() if key != "rng"}
    before = jax.tree.map(np.array, arrays)
    assert h.adapter.weight_layers(params) == ["params/dense", "params/out"]
    assert h.adapter.weight_layers({"w": jnp.ones(2), "b": jnp.ones(1)}) == [""]  # a flat dict
    # dicts in insertion order (input to output as Flax and Haiku write them), not sorted
    ordered = {"z_in": {"w": jnp.ones(1)}, "a_out": [jnp.ones(1)]}
    assert h.adapter.weight_layers(ordered) == ["z_in", "a_out"]
    copied = h.adapter.copy_with_weights(ordered, lambda weight, rng: weight)
    assert list(copied) == ["z_in", "a_out"] and isinstance(copied["a_out"], list)
    seen = []

    def doubled(weight, rng):
        seen.append((weight.dtype, weight.shape))
        return 2 * weight

    copy = h.adapter.copy_with_weights(params, doubled, layers="params/dense")
    # sorted by name: bias (bfloat16, seen as float32), then kernel
    assert seen == [(np.float32, (2,)), (np.float32, (3, 2))]
    assert jax.tree.structure(copy) == jax.tree.structure(params)
    assert copy["params"]["dense"]["bias"].dtype == jnp.bfloat16
    np.testing.assert_array_equal(copy["params"]["dense"]["kernel"],
                                  2 * before["params"]["dense"]["kernel"])
    assert copy["params"]["out"]["kernel"] is params["params"]["out"]["kernel"]  # not chosen
    assert copy["step"] is params["step"] and copy["rng"] is params["rng"]  # not weights
    jax.tree.map(np.testing.assert_array_equal, arrays, before)  # the original is untouched
    apply_fn, handle_params = handle = h.linear_model(np.ones((6, 4), np.float32))
    noisy = h.adapter.copy_with_weights(handle, multiplicative_noise(0.1), seed=0)
    assert noisy[0] is apply_fn and noisy[1]["w"].dtype == jnp.float32
    assert not np.array_equal(noisy[1]["w"], handle_params["w"])
    again = h.adapter.copy_with_weights(handle, multiplicative_noise(0.1), seed=0)
    np.testing.assert_array_equal(again[1]["w"], noisy[1]["w"])


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


def test_flax_linen_model_plugs_in(h, jax):
    nn = require("flax.linen")

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
    gradients = h.adapter.gradient_fn((model.apply, variables))(x, target)
    expected = mlp_gradients(hidden["kernel"], hidden["bias"], out["kernel"], x, target)
    np.testing.assert_allclose(gradients, expected, atol=1e-5)
    outputs = h.adapter.predict_fn(model.apply, params=variables)(x)
    expected = mlp_outputs(hidden["kernel"], hidden["bias"], out["kernel"], out["bias"], x)
    np.testing.assert_allclose(outputs, expected, atol=1e-5)
    assert h.adapter.weight_layers((model.apply, variables)) == ["params/hidden", "params/out"]


def test_flax_nnx_model_plugs_in(h, jax):
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
    # nnx Variables count as their arrays; a copy of the state merges back into a model
    assert h.adapter.weight_layers(state) == ["hidden", "out"]
    copy = nnx.merge(graphdef, h.adapter.copy_with_weights(state, reinitialise, layers="out",
                                                           seed=0))
    np.testing.assert_array_equal(np.asarray(copy.hidden.kernel[...]), w1)
    assert not np.array_equal(np.asarray(copy.out.kernel[...]), w2)
    # the nnx model itself is untouched
    np.testing.assert_array_equal(np.asarray(model.hidden.kernel[...]), w1)
    np.testing.assert_array_equal(np.asarray(model.out.kernel[...]), w2)


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
