"""Tests of ``adapters.torch`` against the numpy reference and closed forms."""

from __future__ import annotations

import importlib
import sys
import warnings

import numpy as np
import pytest

from tests.adapters import reference
from tests.conftest import frameworks_required

try:
    import torch
except ImportError:  # skipped locally, a failure in CI (tests/conftest.py)
    if frameworks_required():
        raise
    pytest.skip("torch is not installed", allow_module_level=True)

nn = torch.nn

from tests.adapters import harness_torch as h  # noqa: E402  (needs torch, checked above)

adapter = h.adapter

D, C = 5, 4


@pytest.fixture(scope="module")
def weights():
    return reference.make_weights(0)


@pytest.fixture(scope="module")
def images():
    """Two NHWC inputs of the reference network."""
    return reference.make_inputs(2, seed=1)


@pytest.fixture()
def model(weights):
    return h.reference_model(weights)


@pytest.fixture(scope="module")
def w():
    return np.random.default_rng(3).standard_normal((D, C)).astype(np.float32)


@pytest.fixture(scope="module")
def x_flat():
    return np.random.default_rng(4).standard_normal((3, D)).astype(np.float32)


def assert_same_state(before, after):
    assert before.keys() == after.keys()
    for key, value in before.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(after[key], value, err_msg=key)
        else:
            assert after[key] == value, key


def relative_error(actual, expected):
    return np.abs(np.asarray(actual, np.float64) - expected).max() / np.abs(expected).max()


class _Counting(nn.Module):
    """Counts forward calls of the wrapped module."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.calls = 0
        self.grad_enabled = []

    def forward(self, x):
        self.calls += 1
        self.grad_enabled.append(torch.is_grad_enabled())
        return self.inner(x)


# --------------------------------------------------------------------------- reference


def test_reference_model_matches_numpy_forward(weights, images, model):
    with torch.no_grad():
        logits = model(torch.from_numpy(h.to_native(images))).numpy()
    expected = reference.forward(weights, images)
    assert relative_error(logits, expected) < 1e-5


def test_predict_fn_matches_numpy_forward(weights, images, model):
    outputs = adapter.predict_fn(model)(h.to_native(images))
    assert isinstance(outputs, np.ndarray) and outputs.shape == (2, reference.N_CLASSES)
    assert relative_error(outputs, reference.forward(weights, images)) < 1e-5


def test_gradients_match_finite_differences(weights, images, model):
    target = np.array([3, 7])
    grads = h.from_native(adapter.gradient_fn(model)(h.to_native(images), target))
    expected = reference.finite_difference_gradient(weights, images, target)
    assert grads.shape == images.shape and grads.dtype == np.float32
    assert relative_error(grads, expected) < 1e-4


def test_rows_are_independent(images, model):
    """A row's gradient does not depend on the other rows of the chunk."""
    fn = adapter.gradient_fn(model)
    x = h.to_native(images)
    both = fn(x, np.array([3, 7]))
    np.testing.assert_allclose(both[1:], fn(x[1:], np.array([7])), rtol=1e-6, atol=1e-7)


# --------------------------------------------------------------------------- targets


@pytest.mark.parametrize("column", [False, True], ids=["(k,)", "(k,1)"])
def test_scalar_model_with_target_none(x_flat, column):
    v = np.arange(1.0, D + 1, dtype=np.float32)
    model = h.scalar_model(v[:, None] if column else v)
    grads = adapter.gradient_fn(model)(x_flat, None)
    np.testing.assert_allclose(grads, np.tile(v, (3, 1)), rtol=1e-6)


# target None on (k, C) and out-of-range targets: tests/adapters/test_contract.py


def test_non_tensor_output_needs_an_objective(w, x_flat):
    class Pair(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = h.linear_model(w)

        def forward(self, x):
            return self.linear(x), x.sum()

    pair = Pair().eval()
    with pytest.raises(TypeError, match=r"one array \(a tensor\), got tuple"):
        adapter.gradient_fn(pair)(x_flat, np.array([0, 1, 2]))
    with pytest.raises(TypeError, match=r"one array \(a tensor\), got tuple"):
        adapter.predict_fn(pair)(x_flat)
    pick = adapter.gradient_fn(pair, objective=lambda out, t: out[0][torch.arange(3), t])
    np.testing.assert_allclose(pick(x_flat, np.array([0, 1, 2])), w[:, [0, 1, 2]].T, rtol=1e-6)


# --------------------------------------------------------------------------- objective


def test_objective_receives_target_as_native_tensor(w, x_flat):
    seen = []

    def objective(output, target):
        seen.append(target)
        return output.sum(dim=1)

    fn = adapter.gradient_fn(h.linear_model(w), objective=objective)
    fn(x_flat, None)
    fn(x_flat, np.array([1, 50, -2], dtype=np.int32))  # no range check for objectives
    assert seen[0] is None
    assert isinstance(seen[1], torch.Tensor) and seen[1].dtype == torch.int64
    assert seen[1].tolist() == [1, 50, -2]


def test_segmentation_objective_sums_over_a_mask():
    """A per-pixel model, score = sum of class-1 logits inside a mask."""
    conv = nn.Conv2d(1, 2, kernel_size=1, bias=False).eval()
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[[0.5]]], [[[-2.0]]]]))
    mask = torch.zeros(3, 3, dtype=torch.bool)
    mask[1:, :2] = True

    def objective(output, target):
        return (output[torch.arange(len(target)), target] * mask).sum(dim=(1, 2))

    grads = adapter.gradient_fn(conv, objective=objective)(
        np.ones((2, 1, 3, 3), np.float32), np.array([1, 0])
    )
    expected = np.stack([-2.0 * mask.numpy(), 0.5 * mask.numpy()])[:, None]
    np.testing.assert_allclose(grads, expected)


def test_scores_without_graph_are_refused(w, x_flat):
    def detached(x):
        with torch.no_grad():
            return x @ torch.from_numpy(w)

    with pytest.raises(ValueError, match="depend on the input"):
        adapter.gradient_fn(detached)(x_flat, np.array([0, 1, 2]))


# --------------------------------------------------------------------------- model state


def test_model_unchanged_after_objective_error(images, model):
    model.c1.weight.grad = torch.ones_like(model.c1.weight)  # pre-existing grads are kept
    before = h.snapshot(model)

    def failing(output, target):
        raise RuntimeError("objective failed")

    with pytest.raises(RuntimeError, match="objective failed"):
        adapter.gradient_fn(model, objective=failing)(h.to_native(images), None)
    assert_same_state(before, h.snapshot(model))


def test_snapshot_detects_changes(model):
    """The snapshot is sensitive to every kind of change the adapter must avoid."""
    before = h.snapshot(model)
    with torch.no_grad():
        model.fc.bias[0] += 1
    with pytest.raises(AssertionError):
        assert_same_state(before, h.snapshot(model))
    for change in (model.train, lambda: model.c2.weight.requires_grad_(False)):
        before = h.snapshot(model)
        change()
        with pytest.raises(AssertionError):
            assert_same_state(before, h.snapshot(model))


def test_requires_grad_unchanged_and_no_parameter_grads(w, x_flat):
    model = h.linear_model(w)
    fn = adapter.gradient_fn(model)
    fn(x_flat, np.array([0, 1, 2]))
    assert model.w.requires_grad and model.w.grad is None
    model.w.requires_grad_(False)
    grads = fn(x_flat, np.array([0, 1, 2]))
    assert not model.w.requires_grad and model.w.grad is None
    np.testing.assert_allclose(grads, w[:, [0, 1, 2]].T, rtol=1e-6)


def test_partly_frozen_model_still_gives_input_gradients(weights, images):
    model = h.reference_model(weights)
    expected = adapter.gradient_fn(model)(h.to_native(images), np.array([3, 7]))
    model.c1.requires_grad_(False)
    frozen = adapter.gradient_fn(model)(h.to_native(images), np.array([3, 7]))
    np.testing.assert_array_equal(frozen, expected)
    assert [p.requires_grad for p in model.c1.parameters()] == [False, False]
    assert all(p.grad is None for p in model.parameters())


def test_training_mode_warns_once_and_keeps_mode(w, x_flat):
    model = nn.Sequential(h.linear_model(w), nn.Dropout(0.5)).train()
    fn = adapter.gradient_fn(model)
    with pytest.warns(UserWarning, match="training mode") as record:
        for _ in range(3):
            fn(x_flat, np.array([0, 1, 2]))
    assert len([r for r in record if "training mode" in str(r.message)]) == 1
    assert all(m.training for m in model.modules())


def test_eval_mode_does_not_warn(w, x_flat):
    fn = adapter.gradient_fn(nn.Sequential(h.linear_model(w), nn.Dropout(0.5)).eval())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fn(x_flat, np.array([0, 1, 2]))


def test_training_mode_batch_norm_statistics_are_restored(x_flat):
    model = nn.Sequential(nn.Linear(D, C), nn.BatchNorm1d(C)).train()
    before = h.snapshot(model)
    with pytest.warns(UserWarning, match="training mode"):
        adapter.gradient_fn(model)(x_flat, np.array([0, 1, 2]))
    assert_same_state(before, h.snapshot(model))
    model(torch.from_numpy(x_flat))  # control: a plain forward does change them
    assert model[1].num_batches_tracked.item() == 1


# --------------------------------------------------------------------------- callables


def test_plain_function_without_parameters(x_flat):
    grads = adapter.gradient_fn(lambda x: torch.sin(x).sum(dim=1))(x_flat, None)
    np.testing.assert_allclose(grads, np.cos(x_flat), rtol=1e-6)
    outputs = adapter.predict_fn(lambda x: torch.sin(x).sum(dim=1))(x_flat)
    np.testing.assert_allclose(outputs, np.sin(x_flat).sum(axis=1), rtol=1e-6)


def test_plain_function_device_and_dtype_options(x_flat):
    seen = []

    def model(x):
        seen.append((x.device.type, x.dtype))
        return (x**2).sum(dim=1)

    grads = adapter.gradient_fn(model, device="cpu", dtype="float64")(x_flat, None)
    assert seen == [("cpu", torch.float64)] and grads.dtype == np.float64
    np.testing.assert_allclose(grads, 2 * x_flat.astype(np.float64), rtol=1e-12)


def test_works_inside_no_grad_and_inference_mode(w, x_flat):
    fn = adapter.gradient_fn(h.linear_model(w))
    expected = w[:, [0, 1, 2]].T
    with torch.no_grad():
        np.testing.assert_allclose(fn(x_flat, np.array([0, 1, 2])), expected, rtol=1e-6)
    with torch.inference_mode():
        np.testing.assert_allclose(fn(x_flat, np.array([0, 1, 2])), expected, rtol=1e-6)


# --------------------------------------------------------------------------- cost


def test_one_forward_per_chunk_and_predict_builds_no_graph(w, x_flat):
    model = _Counting(h.linear_model(w)).eval()
    fn = adapter.gradient_fn(model)
    for _ in range(4):
        fn(x_flat, np.array([0, 1, 2]))
    adapter.predict_fn(model)(x_flat)
    assert model.calls == 5
    assert model.grad_enabled == [True] * 4 + [False]


def test_compiled_model_is_not_recompiled_per_chunk(weights):
    dynamo_testing = pytest.importorskip("torch._dynamo.testing")  # part of torch >= 2.0
    counter = dynamo_testing.CompileCounter()
    compiled = torch.compile(h.reference_model(weights), backend=counter)
    fn = adapter.gradient_fn(compiled)
    rng = np.random.default_rng(0)
    for _ in range(5):
        fn(rng.random((4, 3, 16, 16), dtype=np.float32), rng.integers(0, 10, 4))
    assert counter.frame_count == 1
    for rows in (3, 2):  # smaller last chunks: at most one more (dynamic-batch) graph
        fn(rng.random((rows, 3, 16, 16), dtype=np.float32), rng.integers(0, 10, rows))
    assert counter.frame_count <= 2
    # control: the counter does see a recompilation (grad mode off is another guard)
    traced = counter.frame_count
    adapter.predict_fn(compiled)(rng.random((4, 3, 16, 16), dtype=np.float32))
    assert counter.frame_count == traced + 1


def test_input_arrays_are_not_modified_or_required_writable(w):
    model = h.linear_model(w)
    x = np.random.default_rng(5).standard_normal((3, D)).astype(np.float32)
    original = x.copy()
    x.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch.from_numpy would warn on read-only arrays
        grads = adapter.gradient_fn(model)(x, np.array([0, 1, 2]))
        reversed_rows = adapter.gradient_fn(model)(x[::-1], np.array([2, 1, 0]))
    np.testing.assert_array_equal(x, original)
    np.testing.assert_allclose(reversed_rows, grads[::-1], rtol=1e-6)


# --------------------------------------------------------------------------- dtypes


def test_float64_input_gives_map_in_model_dtype(w, x_flat):
    target = np.array([0, 1, 2])
    grads = adapter.gradient_fn(h.linear_model(w))(x_flat.astype(np.float64), target)
    assert grads.dtype == np.float32
    double = adapter.gradient_fn(h.linear_model(w).double())(x_flat, target)
    assert double.dtype == np.float64


# bfloat16 keeps 8 significant bits: rounding flips a few max-pool winners and ReLUs of the
# reference net, which moves single pixels of the map by up to ~20% of its maximum (float32
# on bfloat16-rounded weights and inputs does the same), so it is compared by norm.
@pytest.mark.parametrize(("dtype", "tolerance"), [("float16", 5e-3), ("bfloat16", 1.5e-1)])
def test_half_models_give_float32_maps(weights, images, dtype, tolerance):
    x = h.to_native(images)
    target = np.array([3, 7])
    full = adapter.gradient_fn(h.reference_model(weights))(x, target)
    half_model = h.reference_model(weights, dtype=dtype)
    before = h.snapshot(half_model)
    half = adapter.gradient_fn(half_model)(x, target)
    assert half.dtype == np.float32 and half.shape == x.shape
    assert np.linalg.norm(half - full) / np.linalg.norm(full) < tolerance
    assert np.corrcoef(half.ravel(), full.ravel())[0, 1] > 0.99
    outputs = adapter.predict_fn(half_model)(x)
    assert outputs.dtype == np.float32
    assert relative_error(outputs, reference.forward(weights, images)) < 5e-2
    assert_same_state(before, h.snapshot(half_model))


# --------------------------------------------------------------------------- packaging


def test_missing_torch_names_the_pip_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    monkeypatch.delitem(sys.modules, "adapters.torch")
    with pytest.raises(ImportError, match=r'pip install "saliency-toolkit\[torch\]"'):
        importlib.import_module("adapters.torch")


# --------------------------------------------------------------------------- devices


@pytest.mark.skipif(not torch.cuda.is_available(), reason="hardware: no CUDA device")
def test_cuda_maps_equal_cpu_maps(weights, images):
    x = h.to_native(images)
    target = np.array([3, 7])
    cpu = adapter.gradient_fn(h.reference_model(weights))(x, target)
    model = h.reference_model(weights).cuda()
    before = h.snapshot(model)
    cuda = adapter.gradient_fn(model)(x, target)
    assert isinstance(cuda, np.ndarray) and cuda.dtype == np.float32
    assert relative_error(cuda, cpu) < 1e-4
    outputs = adapter.predict_fn(model)(x)
    assert relative_error(outputs, reference.forward(weights, images)) < 1e-4
    assert_same_state(before, h.snapshot(model))


def test_models_that_normalise_in_place_never_write_into_the_callers_x(w):
    class InPlace(nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = h.linear_model(w)

        def forward(self, x):
            x -= 0.5  # a normalisation written in place
            return self.linear(x)

    model = InPlace().eval()
    x = np.random.default_rng(6).standard_normal((3, D)).astype(np.float32)
    before = x.copy()
    adapter.predict_fn(model)(x)
    adapter.predict_fn(model, dtype="float32", device="cpu")(x)
    np.testing.assert_array_equal(x, before)


def test_tensors_that_require_grad_are_taken(w, x_flat):
    fn = adapter.gradient_fn(h.linear_model(w))
    tensor = torch.tensor(x_flat, requires_grad=True)
    np.testing.assert_allclose(fn(tensor, np.array([0, 1, 2])), w[:, [0, 1, 2]].T, rtol=1e-6)
    assert tensor.grad is None
