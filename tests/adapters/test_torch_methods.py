"""Guided backpropagation, the deconvnet and Grad-CAM layer callbacks of ``adapters.torch``.

Every expected value is computed independently: by hand in numpy for a one-hidden-layer
network, with tensor hooks for the reference network, and from the numpy forward pass of
``tests/adapters/reference.py`` for layer activations and gradients.
"""

from __future__ import annotations

import threading
import warnings

import numpy as np
import pytest

from saliency_core import grad_cam, grad_cam_plus_plus, resize_linear
from tests.adapters import reference
from tests.conftest import frameworks_required

try:
    import torch
except ImportError:  # skipped locally, a failure in CI (tests/conftest.py)
    if frameworks_required():
        raise
    pytest.skip("torch is not installed", allow_module_level=True)

import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from tests.adapters import harness_torch as h  # noqa: E402  (needs torch, checked above)

adapter = h.adapter

# --------------------------------------------------------------------------- a tiny network

# x (k, 4) -> W1 (4, 5) -> ReLU -> W2 (5, 3) -> three scores. W2 has negative entries in
# every column (negative upstream gradients at the ReLU) and x @ W1 has negative entries in
# every row (inactive ReLUs), so the plain gradient, guided backpropagation and the
# deconvnet all differ.
W1 = np.array(
    [
        [0.9, -0.6, 0.4, -1.1, 0.7],
        [-0.3, 0.8, -0.9, 0.5, 0.6],
        [0.5, 0.2, 0.7, -0.4, -1.2],
        [-0.8, 0.6, 0.3, 0.9, -0.5],
    ],
    dtype=np.float32,
)
W2 = np.array(
    [
        [1.0, -0.7, 0.3],
        [-0.9, 0.4, 0.8],
        [0.6, 0.5, -1.1],
        [0.4, -1.2, 0.9],
        [-0.5, 0.8, -0.6],
    ],
    dtype=np.float32,
)
X_TINY = np.array(
    [[1.0, 0.5, -0.3, 0.8], [-0.6, 1.2, 0.9, -0.2], [0.3, -0.8, 1.1, 0.6]], dtype=np.float32
)
T_TINY = np.array([0, 1, 2])


def tiny_expected(rule: str | None, x: np.ndarray = X_TINY, target=T_TINY) -> np.ndarray:
    """The backward pass of ``relu(x @ W1) @ W2[:, target]`` by hand, in float64."""
    z = x.astype(np.float64) @ W1
    g = W2[:, target].T.astype(np.float64)  # the gradient arriving at the ReLU's output
    if rule is None:
        back = g * (z > 0)
    elif rule == "guided":
        back = g * (z > 0) * (g > 0)
    else:
        back = np.maximum(g, 0)
    return back @ W1.T


def _then_read_input(relu_in_place):
    """An in-place ReLU whose result the network reads from the input tensor itself."""

    def relu(z):
        relu_in_place(z)
        return z

    return relu


#: Every ReLU a rule must catch, each a factory of ``z -> relu(z)``.
RELU_KINDS = {
    "nn.ReLU": nn.ReLU,
    "nn.ReLU(inplace=True)": lambda: _then_read_input(nn.ReLU(inplace=True)),
    "torch.relu": lambda: torch.relu,
    "torch.relu_": lambda: _then_read_input(torch.relu_),
    "F.relu": lambda: F.relu,
    "F.relu(inplace=True)": lambda: _then_read_input(lambda z: F.relu(z, inplace=True)),
    "F.relu(z, True)": lambda: _then_read_input(lambda z: F.relu(z, True)),
    "F.relu_": lambda: _then_read_input(F.relu_),
    "Tensor.relu": lambda: torch.Tensor.relu,
    "Tensor.relu()": lambda: lambda z: z.relu(),
    "Tensor.relu_()": lambda: _then_read_input(lambda z: z.relu_()),
}


class TinyNet(nn.Module):
    """``relu(x @ W1) @ W2`` with a chosen ReLU, in eval mode; keeps its outputs if asked."""

    def __init__(self, relu=None, *, record: bool = True) -> None:
        super().__init__()
        self.w1 = nn.Parameter(torch.tensor(W1))
        self.w2 = nn.Parameter(torch.tensor(W2))
        self.relu = nn.ReLU() if relu is None else relu
        self.outputs: list[torch.Tensor] | None = [] if record else None
        self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(x @ self.w1) @ self.w2
        if self.outputs is not None:
            self.outputs.append(out.detach().clone())
        return out


def assert_same_state(before, after):
    assert before.keys() == after.keys()
    for key, value in before.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(after[key], value, err_msg=key)
        else:
            assert after[key] == value, key


def relative_error(actual, expected):
    expected = np.asarray(expected, np.float64)
    return np.abs(np.asarray(actual, np.float64) - expected).max() / np.abs(expected).max()


def relu_functions():
    """The torch callables a rule must leave exactly as they were."""
    return (torch.relu, torch.relu_, F.relu, F.relu_, torch.Tensor.relu, torch.Tensor.relu_)


def assert_torch_untouched(functions):
    assert relu_functions() == functions
    assert torch._C._len_torch_function_stack() == 0  # no mode left behind


# --------------------------------------------------------------------------- ReLU rules


def test_the_tiny_case_tells_the_rules_apart():
    plain, guided, deconv = (tiny_expected(rule) for rule in (None, *adapter.RELU_RULES))
    for a, b in ((plain, guided), (plain, deconv), (guided, deconv)):
        assert np.abs(a - b).max() > 0.3
    z = X_TINY @ W1
    assert (z < 0).any(axis=1).all() and (z > 0).any(axis=1).all()
    assert (W2 < 0).any(axis=0).all()


@pytest.mark.parametrize("rule", (None, *adapter.RELU_RULES))
def test_rules_match_the_hand_computed_backward_pass(rule):
    grads = adapter.gradient_fn(TinyNet(), relu_rule=rule)(X_TINY, T_TINY)
    assert grads.shape == X_TINY.shape and grads.dtype == np.float32
    np.testing.assert_allclose(grads, tiny_expected(rule), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("kind", RELU_KINDS)
def test_every_kind_of_relu_is_caught_and_computes_the_same_forward(kind):
    model = TinyNet(RELU_KINDS[kind]())
    functions = relu_functions()
    forward = np.maximum(X_TINY.astype(np.float64) @ W1, 0) @ W2
    for rule in (None, *adapter.RELU_RULES):
        grads = adapter.gradient_fn(model, relu_rule=rule)(X_TINY, T_TINY)
        np.testing.assert_allclose(grads, tiny_expected(rule), rtol=1e-6, atol=1e-6,
                                   err_msg=f"{kind}, {rule}")
    plain, guided, deconv = model.outputs
    np.testing.assert_array_equal(guided.numpy(), plain.numpy())
    np.testing.assert_array_equal(deconv.numpy(), plain.numpy())
    np.testing.assert_allclose(plain.numpy(), forward, rtol=1e-5, atol=1e-6)
    assert_torch_untouched(functions)


def test_relus_on_parameters_and_in_several_places_are_caught():
    """Two ReLUs in a row, a ReLU of a parameter (a tensor subclass), a batch of one."""

    class Deeper(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w1 = nn.Parameter(torch.tensor(W1))
            self.w2 = nn.Parameter(torch.tensor(W2))
            self.gate = nn.Parameter(torch.tensor([1.0, -2.0, 0.5]))

        def forward(self, x):
            return F.relu(torch.relu(x @ self.w1) @ self.w2) * torch.relu(self.gate)

    x = X_TINY[2:]
    model = Deeper().eval()
    grads = {rule: adapter.gradient_fn(model, relu_rule=rule)(x, np.array([0]))
             for rule in (None, *adapter.RELU_RULES)}
    # score = relu(u_0) * relu(gate_0) with u = relu(z) @ W2; u_0 > 0 here, gate_0 = 1
    z = x.astype(np.float64) @ W1
    assert (np.maximum(z, 0) @ W2)[0, 0] > 0
    g = W2[:, 0]
    np.testing.assert_allclose(grads[None], (g * (z > 0)) @ W1.T, rtol=1e-6)
    np.testing.assert_allclose(grads["guided"], (g * (z > 0) * (g > 0)) @ W1.T, rtol=1e-6)
    np.testing.assert_allclose(grads["deconvnet"], [np.maximum(g, 0) @ W1.T], rtol=1e-6)


def test_bad_rules_are_refused_with_the_choices():
    for bad in ("backprop", "Guided", ""):
        with pytest.raises(ValueError, match=r"None, 'guided', 'deconvnet', got '"):
            adapter.gradient_fn(TinyNet(), relu_rule=bad)
    with pytest.raises(TypeError, match="expected relu_rule to be None, 'guided'"):
        adapter.gradient_fn(TinyNet(), relu_rule=1)


def test_torchscript_models_are_refused_and_forward_passes_without_relu_warn_once():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit is deprecated
        scripted = torch.jit.script(nn.Sequential(nn.Linear(4, 3), nn.ReLU()).eval())
    with pytest.raises(TypeError, match="TorchScript"):
        adapter.gradient_fn(scripted, relu_rule="guided")
    adapter.gradient_fn(scripted)  # the plain gradient needs no Python
    fn = adapter.gradient_fn(lambda x: x @ torch.tensor(W1), relu_rule="deconvnet")
    with pytest.raises(ValueError, match="met no ReLU"):
        fn(X_TINY, T_TINY)


def reference_forward_with_hooks(model, x, target, rule):
    """Guided backpropagation / deconvnet on :class:`ReferenceNet` with tensor hooks.

    A ReLU's output gets a hook clamping its gradient at 0. For guided backpropagation the
    ReLU's own backward then masks by ``z > 0``; for the deconvnet the ReLU is written as
    ``z + (relu(z) - z).detach()``, whose backward passes the gradient through unmasked.
    """

    def relu(z):
        a = torch.relu(z) if rule == "guided" else z + (torch.relu(z) - z).detach()
        a.register_hook(lambda grad: grad.clamp(min=0))
        return a

    inputs = torch.from_numpy(x).requires_grad_(True)
    m = model
    pooled = m.pool(relu(m.c1(inputs)))
    block = relu(m.c3(relu(m.c2(pooled))) + m.sc(pooled))
    logits = m.fc(torch.flatten(m.gap(block), 1))
    logits.gather(1, torch.from_numpy(target)[:, None]).sum().backward()
    return inputs.grad.numpy()


@pytest.mark.parametrize("rule", ["guided", "deconvnet"])
def test_reference_network_rules_match_tensor_hooks(rule):
    weights = reference.make_weights(0)
    model = h.reference_model(weights)
    x = h.to_native(reference.make_inputs(2, seed=2))
    target = np.array([2, 6])
    grads = h.gradient_fn(model, relu_rule=rule)(x, target)
    expected = reference_forward_with_hooks(model, x, target, rule)
    assert relative_error(grads, expected) < 1e-6
    plain = h.gradient_fn(model)(x, target)
    assert relative_error(grads, plain) > 0.1


def test_forward_outputs_are_unchanged_with_a_rule():
    weights = reference.make_weights(0)
    model = h.reference_model(weights)
    x = h.to_native(reference.make_inputs(3))
    seen = []

    def first_logit(output, target):
        seen.append(output.detach().clone())
        return output[:, 0]

    for rule in (None, *adapter.RELU_RULES):
        h.gradient_fn(model, objective=first_logit, relu_rule=rule)(x, None)
    plain, guided, deconv = (tensor.numpy() for tensor in seen)
    np.testing.assert_array_equal(guided, plain)
    np.testing.assert_array_equal(deconv, plain)
    np.testing.assert_array_equal(plain, h.predict_fn(model)(x))


class Failing(nn.Module):
    """The reference network, raising after its first ReLU while ``fail`` is set."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.fail = False
        self.train(inner.training)

    def forward(self, x):
        if self.fail:
            F.relu(self.inner.c1(x))
            raise RuntimeError("the model failed midway")
        return self.inner(x)


def test_model_and_torch_unchanged_after_rules_and_after_errors():
    weights = reference.make_weights(0)
    model = Failing(h.reference_model(weights))
    x = h.to_native(reference.make_inputs(2))
    target = np.array([1, 8])
    before = h.snapshot(model)
    functions = relu_functions()
    plain_fn = adapter.gradient_fn(model)  # made before the rules
    plain = plain_fn(x, target)
    guided = adapter.gradient_fn(model, relu_rule="guided")(x, target)

    def failing(output, target):
        raise RuntimeError("objective failed")

    with pytest.raises(RuntimeError, match="objective failed"):
        adapter.gradient_fn(model, objective=failing, relu_rule="guided")(x, None)
    assert_torch_untouched(functions)
    model.fail = True
    with pytest.raises(RuntimeError, match="failed midway"):
        adapter.gradient_fn(model, relu_rule="deconvnet")(x, target)
    assert_torch_untouched(functions)
    model.fail = False
    assert_same_state(before, h.snapshot(model))
    np.testing.assert_array_equal(plain_fn(x, target), plain)
    np.testing.assert_array_equal(adapter.gradient_fn(model)(x, target), plain)
    assert relative_error(guided, plain) > 0.1
    # and a ReLU outside the callbacks has its plain backward
    z = torch.tensor([-1.0, 2.0], requires_grad=True)
    (torch.relu(z) * torch.tensor([3.0, -4.0])).sum().backward()
    np.testing.assert_array_equal(z.grad.numpy(), [0.0, -4.0])


class Rendezvous(TinyNet):
    """A tiny net whose forward passes wait for each other before their ReLU."""

    def __init__(self, parties: int) -> None:
        super().__init__()
        self.barrier = threading.Barrier(parties)

    def forward(self, x):
        self.barrier.wait(timeout=20)
        return super().forward(x)


def test_plain_callbacks_in_other_threads_stay_plain_during_a_rule():
    model = Rendezvous(parties=3)
    rules = (None, *adapter.RELU_RULES)
    fns = {rule: adapter.gradient_fn(model, relu_rule=rule) for rule in rules}
    results: dict = {}

    def work(rule):
        try:
            results[rule] = [fns[rule](X_TINY, T_TINY) for _ in range(3)]
        except BaseException as error:  # reported below, in the main thread
            results[rule] = error

    threads = [threading.Thread(target=work, args=(rule,)) for rule in rules]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for rule in (None, *adapter.RELU_RULES):
        assert not isinstance(results[rule], BaseException), results[rule]
        for grads in results[rule]:
            np.testing.assert_allclose(grads, tiny_expected(rule), rtol=1e-6, atol=1e-6)


def test_compiled_model_takes_the_rule_and_is_not_recompiled_per_chunk():
    dynamo_testing = pytest.importorskip("torch._dynamo.testing")
    counter = dynamo_testing.CompileCounter()
    compiled = torch.compile(TinyNet(record=False), backend=counter)
    guided = adapter.gradient_fn(compiled, relu_rule="guided")
    for _ in range(3):
        np.testing.assert_allclose(guided(X_TINY, T_TINY), tiny_expected("guided"), rtol=1e-6)
    assert counter.frame_count == 1
    plain = adapter.gradient_fn(compiled)(X_TINY, T_TINY)
    np.testing.assert_allclose(plain, tiny_expected(None), rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------- layer_fn


def numpy_layers(weights, x):
    """``{"c1": pre-ReLU first conv, "block": residual block output}``, NHWC float64."""
    p = {k: v.astype(np.float64) for k, v in weights.items()}
    c1 = reference.conv2d(x.astype(np.float64), p["c1_w"], p["c1_b"], 1, 1)
    return {"c1": c1, "block": block_from_c1(p, c1)}


def block_from_c1(p, c1):
    pooled = reference.max_pool_2x2(np.maximum(c1, 0))
    r = reference.conv2d(np.maximum(reference.conv2d(pooled, p["c2_w"], p["c2_b"], 2, 1), 0),
                         p["c3_w"], p["c3_b"], 1, 1)
    return np.maximum(r + reference.conv2d(pooled, p["sc_w"], p["sc_b"], 2, 0), 0)


def logits_from_c1(p, c1):
    return block_from_c1(p, c1).mean(axis=(1, 2)) @ p["fc_w"] + p["fc_b"]


@pytest.fixture(scope="module")
def weights():
    return reference.make_weights(0)


@pytest.fixture(scope="module")
def images():
    return reference.make_inputs(3, seed=4)


@pytest.fixture()
def model(weights):
    return h.reference_model(weights)


@pytest.mark.parametrize(("layer", "shape"), [("c1", (8, 16, 16)), ("block", (16, 4, 4))])
def test_activations_are_the_layers_output(weights, images, model, layer, shape):
    activations, gradients = h.layer_fn(model, layer)(h.to_native(images), np.array([0, 5, 9]))
    assert activations.shape == gradients.shape == (3, *shape)
    assert activations.dtype == gradients.dtype == np.float32
    expected = h.to_native(numpy_layers(weights, images)[layer])
    assert relative_error(activations, expected) < 1e-5
    assert (expected < 0).any() == (layer == "c1")  # c1 is taken before its ReLU


def test_block_gradients_are_the_dense_weights_over_the_positions(weights, images, model):
    target = np.array([0, 5, 9])
    _, gradients = h.layer_fn(model, "block")(h.to_native(images), target)
    # global average pooling then a dense layer: d logit_t / d block[c, i, j] = w[c, t] / 16
    expected = np.broadcast_to((weights["fc_w"][:, target].T / 16)[:, :, None, None],
                               gradients.shape)
    np.testing.assert_allclose(gradients, expected, rtol=1e-6, atol=1e-9)


def test_c1_gradients_match_finite_differences_of_the_head(weights, images, model):
    x = images[:1]
    target = 7
    _, gradients = h.layer_fn(model, "c1")(h.to_native(x), np.array([target]))
    p = {k: v.astype(np.float64) for k, v in weights.items()}
    c1 = numpy_layers(weights, x)["c1"][0]
    eps = 1e-4
    steps = np.eye(c1.size).reshape(c1.size, *c1.shape) * eps
    up = logits_from_c1(p, c1 + steps)[:, target]
    down = logits_from_c1(p, c1 - steps)[:, target]
    expected = ((up - down) / (2 * eps)).reshape(c1.shape)
    assert relative_error(h.from_native(gradients)[0], expected) < 1e-4


def test_objective_gives_the_closed_form_gradient(weights, images, model):
    def square_sum(output, target):
        return (output**2).sum(dim=1)

    _, gradients = h.layer_fn(model, "block", objective=square_sum)(h.to_native(images), None)
    logits = reference.forward(weights, images)
    per_channel = 2 * logits @ weights["fc_w"].T / 16  # sum_c 2 out_c w[:, c] / (H W)
    np.testing.assert_allclose(gradients, np.broadcast_to(per_channel[:, :, None, None],
                                                          gradients.shape),
                               rtol=1e-5, atol=1e-6)


def test_grad_cam_on_the_reference_network(weights, images, model):
    fn = h.layer_fn(model, "block")
    x = h.to_native(images)
    target = np.array([1, 4, 4])
    maps = grad_cam(fn, x, target, channel_axis=h.LAYER_CHANNEL_AXIS, input_channel_axis=1)
    assert maps.shape == (3, 16, 16) and maps.dtype == np.float32
    assert (maps >= 0).all() and maps.max() > 0
    block = numpy_layers(weights, images)["block"]  # (3, 4, 4, 16)
    channel_weights = weights["fc_w"][:, target].T / 16  # mean gradient per channel
    cam = np.maximum(np.einsum("nhwc,nc->nhw", block, channel_weights), 0)
    np.testing.assert_allclose(maps, resize_linear(cam, (16, 16)), rtol=1e-5, atol=1e-7)
    plus = grad_cam_plus_plus(fn, x, target, channel_axis=1, input_channel_axis=1)
    assert plus.shape == (3, 16, 16) and (plus >= 0).all()


def test_a_wrong_layer_name_lists_close_matches(model):
    with pytest.raises(ValueError, match=r"^no layer named 'relu_ot'; close matches: 'relu_out'"):
        adapter.layer_fn(model, "relu_ot")
    with pytest.raises(ValueError, match=r"close matches: 'c3', 'c1', 'c2'|close matches: 'c3'"):
        adapter.layer_fn(model, "c_3")
    with pytest.raises(ValueError, match=r"no close match; the layers are 'c1', 'relu1'"):
        adapter.layer_fn(model, "xyzzy")


def test_a_layer_without_spatial_axes_is_refused(images, model):
    fn = adapter.layer_fn(model, "fc")
    with pytest.raises(ValueError, match=r"Grad-CAM needs a layer with spatial axes.*\(3, 10\)"):
        fn(h.to_native(images), np.array([0, 1, 2]))
    assert not model.fc._forward_hooks


def test_layers_given_as_modules_and_bad_layers(images, model):
    x = h.to_native(images)
    by_module = adapter.layer_fn(model, model.relu_out)(x, 3)
    by_name = adapter.layer_fn(model, "relu_out")(x, 3)
    for a, b in zip(by_module, by_name, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="not among model.named_modules"):
        adapter.layer_fn(model, nn.Conv2d(3, 8, 3))
    with pytest.raises(TypeError, match="got int"):
        adapter.layer_fn(model, 3)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        adapter.layer_fn(lambda x: x, "c1")


def test_a_layer_must_run_exactly_once(images):
    relu = nn.ReLU()
    conv = nn.Conv2d(3, 4, 3, padding=1)
    twice = nn.Sequential(conv, relu, nn.Conv2d(4, 4, 3, padding=1), relu, nn.Flatten()).eval()
    with pytest.raises(ValueError, match="ran more than once"):
        adapter.layer_fn(twice, relu)(h.to_native(images), None)
    unused = nn.ModuleDict({"used": conv, "unused": nn.Conv2d(3, 4, 3)})
    unused.forward = lambda x: unused["used"](x).mean(dim=(1, 2, 3))
    unused.eval()
    with pytest.raises(ValueError, match="did not run"):
        adapter.layer_fn(unused, "unused")(h.to_native(images), None)
    assert not relu._forward_hooks and not unused["unused"]._forward_hooks


def test_in_place_operations_after_the_layer_leave_its_activations_alone(images):
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    model = nn.Sequential(conv, nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 2)).eval()
    x = h.to_native(images)
    activations, gradients = adapter.layer_fn(model, "0")(x, 1)
    with torch.no_grad():
        expected = conv(torch.from_numpy(x)).numpy()
    assert (expected < 0).any()
    np.testing.assert_array_equal(activations, expected)
    # the gradient passes the ReLU: w[1, c] / 256 where the convolution is positive
    dense = model[4].weight.detach().numpy()[1][None, :, None, None] / 256
    np.testing.assert_allclose(gradients, np.where(expected > 0, dense, 0), rtol=1e-6)


def test_frozen_model_inside_no_grad_gives_layer_gradients(weights, images, model):
    expected = h.layer_fn(model, "block")(h.to_native(images), 2)
    model.requires_grad_(False)
    with torch.no_grad():
        frozen = h.layer_fn(model, "block")(h.to_native(images), 2)
    for a, b in zip(frozen, expected, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not any(p.requires_grad for p in model.parameters())


def test_model_unchanged_and_no_hooks_left_after_calls_and_errors(images):
    model = Failing(h.reference_model(reference.make_weights(0)))
    before = h.snapshot(model)
    x = h.to_native(images)
    adapter.layer_fn(model, "inner.relu_out")(x, 1)

    def failing(output, target):
        raise RuntimeError("objective failed")

    with pytest.raises(RuntimeError, match="objective failed"):
        adapter.layer_fn(model, "inner.c1", objective=failing)(x, None)
    model.fail = True  # raises after the hooked layer ran
    with pytest.raises(RuntimeError, match="failed midway"):
        adapter.layer_fn(model, "inner.c1")(x, 1)
    model.fail = False
    assert_same_state(before, h.snapshot(model))
    for module in model.modules():
        assert not module._forward_hooks and not module._forward_pre_hooks
        assert not module._backward_hooks


def test_one_forward_pass_per_chunk(weights, images):
    class Counting(nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            self.calls = 0
            self.train(inner.training)

        def forward(self, x):
            self.calls += 1
            return self.inner(x)

    model = Counting(h.reference_model(weights))
    fn = adapter.layer_fn(model, "inner.relu_out")
    x = h.to_native(reference.make_inputs(5, seed=3))
    grad_cam(fn, x, 0, channel_axis=1, input_channel_axis=1, batch_size=2)
    assert model.calls == 3
    grad_cam(fn, x, 0, channel_axis=1, input_channel_axis=1, batch_size=2)
    assert model.calls == 6


def test_layer_callbacks_of_half_models_give_float32(weights, images):
    full = h.layer_fn(h.reference_model(weights), "block")(h.to_native(images), 4)
    half = h.layer_fn(h.reference_model(weights, dtype="bfloat16"), "block")(
        h.to_native(images), 4)
    assert all(a.dtype == np.float32 for a in half)
    assert relative_error(half[0], full[0]) < 0.1
    np.testing.assert_allclose(half[1], full[1], rtol=2e-2)  # w / 16, rounded to bfloat16
