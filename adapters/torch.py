"""The PyTorch backend: an ``nn.Module`` (or any callable on tensors) as core callbacks.

Importing this module imports :mod:`torch`; ``import adapters`` does not. The contract
every backend shares (names, keywords, inputs, targets, scores, devices, errors) is in
:mod:`adapters` and :mod:`adapters._backend`; this module holds what PyTorch does
differently:

* Gradients come from :func:`torch.autograd.grad` on the input tensor only, so the
  parameters' ``.grad`` and ``requires_grad`` are never touched. PyTorch runs eagerly:
  one callback call is one forward and one backward pass over the chunk, nothing is
  traced (``trace_count`` stays 0), and a :func:`torch.compile`\\ d model sees inputs of
  the same dtype, device and ``requires_grad`` on every call, so it does not recompile.
* Inputs are copied into a fresh tensor on the model's device (default: the device of
  its first parameter or buffer) in its floating dtype (default: that of its first
  floating parameter or buffer, float32 for a callable without any), so a model that
  normalises its input in place never writes into the caller's array.
* The model is never modified, not even for a moment: the mode is not switched (a model
  in training mode gets a one-time warning, since dropout and batch-norm make the map
  random), batch-norm buffers a training-mode pass updates are put back, a ReLU rule is a
  :class:`torch.overrides.TorchFunctionMode` active in the calling thread during the
  forward pass only, and :func:`layer_fn`'s forward hook is removed in a ``finally``.
* Image models take NCHW batches (``CHANNEL_AXIS = 1``).

Example:
    >>> import numpy as np
    >>> import torch
    >>> from adapters import torch as torch_adapter
    >>> model = torch.nn.Linear(3, 2, bias=False).eval()
    >>> with torch.no_grad():
    ...     _ = model.weight.copy_(torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]))
    >>> fn = torch_adapter.gradient_fn(model)
    >>> fn(np.ones((2, 3), np.float32), np.array([0, 1]))
    array([[1., 2., 3.],
           [4., 5., 6.]], dtype=float32)
"""

from __future__ import annotations

import contextlib
import copy
import functools
import warnings
from collections.abc import Callable, Iterator
from typing import Any, cast

import numpy as np

try:
    import torch
    import torch.nn.functional as F
    from torch.overrides import TorchFunctionMode
except ImportError as error:  # pragma: no cover - exercised in a test with torch hidden
    raise ImportError(
        "adapters.torch needs PyTorch, which is not installed; install it with "
        '`pip install "saliency-toolkit[torch]"` (or `pip install torch`)'
    ) from error

from saliency_core.types import GradientFn, LayerFn, PredictFn

from ._backend import (
    RELU_RULES,
    Callback,
    ScorePlan,
    WeightTransform,
    apply_transform,
    as_batch,
    as_targets,
    carrier_dtype,
    check_callable,
    check_output_rows,
    check_relu_rule,
    check_scores_shape,
    check_target_range,
    device_unavailable,
    find_named,
    layer_generator,
    no_relu_message,
    parse_device,
    plan_scores,
    select_layers,
)
from ._tokens import EmbeddingCallbacks, as_token_ids, check_embedded

__all__ = [
    "CHANNEL_AXIS",
    "NAME",
    "RELU_RULES",
    "Objective",
    "copy_with_weights",
    "embedding_fn",
    "gradient_fn",
    "input_spec",
    "layer_fn",
    "owns",
    "predict_fn",
    "weight_layers",
]

NAME = "torch"
CHANNEL_AXIS = 1

#: ``objective(output, target) -> scores``: the model's output (as the model returned it)
#: and the targets (an int64 tensor ``(k,)`` on the model's device, or None) give one
#: differentiable score per row, a tensor ``(k,)``.
Objective = Callable[[Any, "torch.Tensor | None"], "torch.Tensor"]


def owns(model: object) -> bool:
    """Whether ``model`` is a PyTorch module (TorchScript and exported modules included)."""
    return isinstance(model, torch.nn.Module)


def gradient_fn(
    model: Callable[[torch.Tensor], Any],
    *,
    objective: Objective | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    relu_rule: str | None = None,
) -> GradientFn:
    """The callback ``fn(x, target) -> d score / d x`` of a PyTorch model.

    The score of row ``i`` is ``output[i, target[i]]`` for a ``(k, C)`` output, the output
    itself for one score per row (``(k,)`` or ``(k, 1)``, ``target=None``), or
    ``objective(output, target)[i]``.

    ``relu_rule="guided"`` or ``"deconvnet"`` changes the backward pass of every ReLU the
    forward pass calls, and nothing else: ``nn.ReLU`` (in place or not), ``torch.relu``,
    ``torch.relu_``, ``F.relu``, ``F.relu_``, ``Tensor.relu`` and ``Tensor.relu_``, caught
    by a :class:`torch.overrides.TorchFunctionMode` during the forward pass only (not in
    the objective). Other activations (``relu6``, ``leaky_relu``, ``clamp``),
    ``torch.ops.aten.relu`` and TorchScript models (refused) are out of its reach.

    Args:
        model: an ``nn.Module`` or any callable taking a tensor ``(k, *input_shape)``; its
            output must be a tensor unless an ``objective`` is given.
        objective: ``objective(output, target) -> (k,)`` scores.
        device: where the forward pass runs (``"cpu"``, ``"cuda:1"``, ``"mps"`` or a
            ``torch.device``); default: the device of the model's first parameter.
        dtype: the floating dtype the input is cast to; default: the model's.
        relu_rule: None, ``"guided"`` or ``"deconvnet"``.

    Returns:
        A :class:`adapters._backend.Callback`; maps are numpy on the CPU, float64 for
        float64 models and float32 otherwise.

    Raises:
        TypeError, ValueError: as described in :mod:`adapters`; also a ``relu_rule`` for a
            TorchScript model, and (when called) scores that do not depend on the input
            through autograd.

    Examples:
        ``h = relu(x @ w1)``, score ``h @ w2``: the ReLU's upstream gradient is ``w2``
        (one negative entry) and its input ``x @ w1 = [1, -1, 2]`` (one negative entry).

        >>> import numpy as np
        >>> import torch
        >>> from adapters import torch as torch_adapter
        >>> w1 = torch.tensor([[1.0, -1.0, 2.0]])
        >>> w2 = torch.tensor([1.0, 1.0, -1.0])
        >>> model = lambda x: torch.relu(x @ w1) @ w2
        >>> x = np.ones((1, 1), np.float32)
        >>> for rule in (None, *torch_adapter.RELU_RULES):
        ...     print(rule, torch_adapter.gradient_fn(model, relu_rule=rule)(x, None))
        None [[-1.]]
        guided [[1.]]
        deconvnet [[0.]]

    References:
        Smilkov et al. 2017, "SmoothGrad: removing noise by adding noise",
        arXiv 1706.03825. Springenberg et al. 2014, "Striving for simplicity: the all
        convolutional net", arXiv 1412.6806 (guided backpropagation). Zeiler and Fergus
        2014, "Visualizing and understanding convolutional networks", ECCV (deconvnet).
    """
    check_callable(model, "model")
    if objective is not None:
        check_callable(objective, "objective")
    device = _as_device(device)
    dtype = _as_dtype(dtype)
    relu_rule = _check_relu_rule(relu_rule, model)
    guard = _CallGuard(model)
    placement = _Placement(model, device, dtype)
    rule_seen = _ReLURuleSeen(relu_rule)

    def gradients(x: np.ndarray, target: np.ndarray | None, /) -> np.ndarray:
        batch = as_batch(x, native=_native)
        target_rows = as_targets(target, batch.shape[0])
        run_device, run_dtype = placement()
        with guard.grad_enabled():
            inputs = _to_tensor(batch, run_device, run_dtype).requires_grad_(True)
            with _relu_rule_mode(relu_rule) as mode:
                output = model(inputs)
            rule_seen.check(mode)
            scores = _scores(output, objective, target_rows, run_device, batch.shape[0])
            _check_graph(scores, "the input")
            # rows do not interact, so the gradient of the sum is each row's own gradient
            (grad,) = torch.autograd.grad(scores.sum(), inputs, allow_unused=True)
        if grad is None:  # the scores depend on parameters only: the gradient is zero
            grad = torch.zeros_like(inputs)
        return _to_numpy(grad, run_dtype)

    return Callback(gradients, _describe("gradient_fn", model, relu_rule=relu_rule))


def layer_fn(
    model: torch.nn.Module,
    layer: str | torch.nn.Module,
    *,
    objective: Objective | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> LayerFn:
    """The Grad-CAM callback ``fn(x, target) -> (activations, gradients)`` of one layer.

    Both are numpy ``(k, C, *spatial)`` (NCHW for images): pass ``channel_axis=1`` to
    :func:`saliency_core.grad_cam` (and ``input_channel_axis=1`` for NCHW inputs). Scores,
    targets, objective, device and dtype are those of :func:`gradient_fn`.

    Each call adds a forward hook to the layer for one forward pass. The hook hands the
    rest of the network a copy of the layer's output whose graph starts at the layer, so
    the activations are those the layer computed even when a later in-place operation
    overwrites its output, and the layers before it need no gradient.

    Args:
        model: the ``nn.Module`` holding the layer.
        layer: a module inside ``model``, or its dotted name in ``model.named_modules()``
            (``"layer4.1.conv2"``). It must run exactly once per forward pass and output a
            floating tensor with spatial axes.
        objective: as in :func:`gradient_fn`.
        device: as in :func:`gradient_fn`.
        dtype: as in :func:`gradient_fn`.

    Returns:
        A :class:`adapters._backend.Callback` returning two numpy arrays.

    Raises:
        TypeError, ValueError: as :func:`gradient_fn`; also a layer that is not in the
            model (the message lists close matches), did not run or ran twice, or has no
            spatial axes.

    Examples:
        A convolution, global average pooling and a dense layer: the gradient at every
        position of channel ``c`` is ``dense.weight[target, c] / (H * W)``.

        >>> import numpy as np
        >>> import torch
        >>> from adapters import torch as torch_adapter
        >>> from saliency_core import grad_cam
        >>> _ = torch.manual_seed(0)
        >>> model = torch.nn.Sequential(
        ...     torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
        ...     torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2),
        ... ).eval()
        >>> fn = torch_adapter.layer_fn(model, "1")
        >>> x = np.random.default_rng(0).random((2, 3, 8, 8), dtype=np.float32)
        >>> activations, gradients = fn(x, np.array([0, 1]))
        >>> activations.shape, gradients.shape
        ((2, 4, 8, 8), (2, 4, 8, 8))
        >>> expected = model[4].weight.detach().numpy() / 64
        >>> bool(np.allclose(gradients[1, :, 5, 2], expected[1]))
        True
        >>> grad_cam(fn, x, 0, channel_axis=1, input_channel_axis=1).shape
        (2, 8, 8)

    References:
        Selvaraju et al. 2017, "Grad-CAM: visual explanations from deep networks via
        gradient-based localization", ICCV.
    """
    _check_module(model, "layer_fn hooks one of its submodules")
    if isinstance(model, torch.jit.ScriptModule):
        raise TypeError(
            "layer_fn cannot hook a layer of a TorchScript model, which runs outside Python; "
            "pass the original nn.Module instead"
        )
    name, module = _find_layer(model, layer)
    if objective is not None:
        check_callable(objective, "objective")
    guard = _CallGuard(model)
    placement = _Placement(model, _as_device(device), _as_dtype(dtype))

    def layer_gradients(
        x: np.ndarray, target: np.ndarray | None, /
    ) -> tuple[np.ndarray, np.ndarray]:
        batch = as_batch(x, native=_native)
        target_rows = as_targets(target, batch.shape[0])
        run_device, run_dtype = placement()
        capture = _LayerCapture(name)
        with guard.grad_enabled():
            inputs = _to_tensor(batch, run_device, run_dtype)
            hook = module.register_forward_hook(capture.hook)
            try:
                output = model(inputs)
            finally:
                hook.remove()
            activations = capture.activations()
            scores = _scores(output, objective, target_rows, run_device, batch.shape[0])
            _check_graph(scores, f"the output of layer {name!r}")
            (grad,) = torch.autograd.grad(scores.sum(), activations, allow_unused=True)
        if grad is None:  # the scores depend on parameters only: the gradient is zero
            grad = torch.zeros_like(activations)
        return _to_numpy(activations, run_dtype), _to_numpy(grad, run_dtype)

    return Callback(layer_gradients, _describe("layer_fn", model, layer=name))


def predict_fn(
    model: Callable[[torch.Tensor], Any],
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> PredictFn:
    """The callback ``fn(x) -> outputs`` of a PyTorch model, under :func:`torch.no_grad`.

    (Not ``inference_mode``, whose tensors could end up in a model's caches and break
    later gradient calls.) Floating outputs come back float64 for float64 models and
    float32 otherwise.

    Examples:
        >>> import numpy as np
        >>> import torch
        >>> from adapters import torch as torch_adapter
        >>> predict = torch_adapter.predict_fn(torch.nn.Flatten())
        >>> predict(np.zeros((2, 1, 3), np.float64)).shape
        (2, 3)
    """
    check_callable(model, "model")
    placement = _Placement(model, _as_device(device), _as_dtype(dtype))

    def outputs(x: np.ndarray, /) -> np.ndarray:
        batch = as_batch(x, native=_native)
        run_device, run_dtype = placement()
        inputs = _to_tensor(batch, run_device, run_dtype)
        with torch.no_grad():
            output = model(inputs)
        check_output_rows(output.shape if isinstance(output, torch.Tensor) else None,
                          batch.shape[0], output_type=type(output).__name__)
        return _to_numpy(output, run_dtype)

    return Callback(outputs, _describe("predict_fn", model))


# --------------------------------------------------------------------------- embeddings


def embedding_fn(
    model: torch.nn.Module,
    embedding: str | torch.nn.Module,
    *,
    objective: Objective | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    inputs_embeds: bool = False,
) -> EmbeddingCallbacks:
    """The callbacks of a text model explained through its embeddings: embed, gradient, predict.

    ``embed(ids)`` runs the embedding layer alone on integer ids ``(N, T)`` and gives
    ``(N, T, D)`` numpy. ``gradient(embeddings, target)`` and ``predict(embeddings)`` run
    the rest of the model from given embeddings: the model is called on placeholder ids
    (zeros of shape ``(k, T)``) with a forward hook on the embedding layer that replaces
    its output by the embeddings, or, with ``inputs_embeds=True``, as
    ``model(inputs_embeds=embeddings)`` (Hugging Face models). They are
    :func:`gradient_fn` and :func:`predict_fn` of that model of the embeddings, with the
    same scores, targets, objective, device, dtype and training-mode rules, so any method
    of the core runs in embedding space (SmoothGrad's noise added to the embeddings,
    integrated gradients from the padding or zero embedding), and
    :func:`saliency_core.tokens.token_attributions` gives one value per token.

    The model must read the ids through the embedding layer only: a model that also
    computes something from the ids themselves (a padding mask ``ids != 0``) sees the
    placeholders; give such a model its mask another way, or zero the padding positions'
    attributions with ``token_attributions(..., ids=ids, pad_id=...)``.

    Args:
        model: the ``nn.Module`` taking ids ``(k, T)``.
        embedding: the embedding layer, a module inside ``model`` (an ``nn.Embedding``,
            or any module mapping ids to ``(k, T, D)``, such as a block that adds position
            embeddings) or its dotted name in ``model.named_modules()``. It must run
            once per forward pass.
        objective: as in :func:`gradient_fn`; and so are ``device`` and ``dtype``.
        inputs_embeds: call ``model(inputs_embeds=embeddings)`` instead of hooking the
            layer (the layer then serves ``embed`` only).

    Returns:
        :class:`adapters._tokens.EmbeddingCallbacks` ``(embed, gradient, predict)``.

    Raises:
        TypeError, ValueError: a model that is not an ``nn.Module``, a layer that is not
            in it (close matches named); when called, ids that are not non-negative
            integers ``(N, T)`` below an ``nn.Embedding``'s ``num_embeddings``,
            embeddings that are not ``(k, T, D)``, a layer that did not run, ran twice or
            gave another shape than the embeddings.

    Examples:
        A bag of embeddings: the gradient at every token is the linear layer's weight row
        of the target, so gradient x embedding is each token's term of the score.

        >>> import numpy as np
        >>> import torch
        >>> from adapters import torch as torch_adapter
        >>> from saliency_core.tokens import token_attributions
        >>> class Bag(torch.nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.embed = torch.nn.Embedding(5, 2, padding_idx=0)
        ...         self.out = torch.nn.Linear(2, 2, bias=False)
        ...     def forward(self, ids):
        ...         return self.out(self.embed(ids).sum(dim=1))
        >>> _ = torch.manual_seed(0)
        >>> model = Bag().eval()
        >>> embed, gradient, predict = torch_adapter.embedding_fn(model, "embed")
        >>> ids = np.array([[1, 4, 0]])
        >>> embeddings = embed(ids)
        >>> embeddings.shape
        (1, 3, 2)
        >>> tokens = token_attributions(gradient(embeddings, np.array([1])), embeddings)
        >>> terms = embeddings[0] @ model.out.weight.detach().numpy()[1]
        >>> bool(np.allclose(tokens[0], terms)), float(tokens[0, 2])
        (True, 0.0)
        >>> bool(np.allclose(predict(embeddings), model(torch.tensor(ids)).detach().numpy()))
        True
    """
    _check_module(model, "its embedding layer is hooked")
    if isinstance(model, torch.jit.ScriptModule):
        raise TypeError(
            "embedding_fn cannot hook the embedding layer of a TorchScript model, which runs "
            "outside Python; pass the original nn.Module instead"
        )
    name, module = _find_layer(model, embedding)
    if not isinstance(inputs_embeds, bool):
        raise TypeError(f"expected inputs_embeds to be True or False, got {inputs_embeds!r}")
    if objective is not None:
        check_callable(objective, "objective")
    device, dtype = _as_device(device), _as_dtype(dtype)
    from_embeddings = _FromEmbeddings(model, name, module, inputs_embeds)
    placement = _Placement(model, device, dtype)
    vocabulary = module.num_embeddings if isinstance(module, torch.nn.Embedding) else None

    def embed(ids: object, /) -> np.ndarray:
        tokens = as_token_ids(ids, vocabulary_size=vocabulary, native=_native)
        run_device, run_dtype = placement()
        with torch.no_grad():
            output = module(torch.from_numpy(tokens).to(run_device))
        floating = isinstance(output, torch.Tensor) and output.is_floating_point()
        check_embedded(tuple(output.shape) if isinstance(output, torch.Tensor) else None,
                       tokens.shape, f"layer {name!r}", floating=floating)
        return _to_numpy(output, run_dtype)

    return EmbeddingCallbacks(
        Callback(embed, _describe("embedding_fn.embed", model, layer=name)),
        gradient_fn(from_embeddings, objective=objective, device=device, dtype=dtype),
        predict_fn(from_embeddings, device=device, dtype=dtype),
    )


class _FromEmbeddings(torch.nn.Module):
    """``model`` run from embeddings ``(k, T, D)``: its embedding layer's output replaced.

    The model is a submodule (so its parameters give the device and dtype, and its mode
    the training-mode warning); this wrapper is never in training mode itself, and
    nothing of the model is changed: the hook lives for one forward pass.
    """

    def __init__(self, model: torch.nn.Module, name: str, module: torch.nn.Module,
                 inputs_embeds: bool) -> None:
        super().__init__()
        self.model = model
        self.training = False  # the wrapper's own flag only; the model's modes are its own
        self._layer = (name, module)  # a tuple: not registered a second time
        self._inputs_embeds = inputs_embeds

    def forward(self, embeddings: torch.Tensor) -> Any:
        if embeddings.ndim != 3:
            raise ValueError(
                "expected embeddings (k, T, D), one vector per token, got shape "
                f"{tuple(embeddings.shape)}"
            )
        if self._inputs_embeds:
            return self.model(inputs_embeds=embeddings)
        name, module = self._layer
        swap = _EmbeddingSwap(name, embeddings)
        placeholder = torch.zeros(embeddings.shape[:2], dtype=torch.long,
                                  device=embeddings.device)
        hook = module.register_forward_hook(swap.hook)
        try:
            output = self.model(placeholder)
        finally:
            hook.remove()
        swap.check_ran()
        return output

    def __repr__(self) -> str:
        return f"{type(self.model).__name__} from embeddings at {self._layer[0]!r}"


class _EmbeddingSwap:
    """A forward hook giving the rest of the network the embeddings instead of the layer's
    output (a copy, so in-place operations after the layer leave the input alone)."""

    def __init__(self, name: str, embeddings: torch.Tensor) -> None:
        self._name, self._embeddings, self._calls = name, embeddings, 0

    def hook(self, module: torch.nn.Module, inputs: Any, output: Any) -> torch.Tensor:
        self._calls += 1
        if self._calls > 1:
            raise ValueError(
                f"embedding layer {self._name!r} ran more than once in one forward pass, so "
                "its output cannot be replaced by one set of embeddings: pick a layer that "
                "runs once"
            )
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else None
        if shape != tuple(self._embeddings.shape):
            raise ValueError(
                f"expected embedding layer {self._name!r} to output the embeddings' shape "
                f"{tuple(self._embeddings.shape)}, got "
                f"{shape if shape is not None else type(output).__name__}: pass the layer "
                "whose output embed(ids) gives"
            )
        return self._embeddings.to(output.dtype).clone()

    def check_ran(self) -> None:
        if self._calls == 0:
            raise ValueError(
                f"embedding layer {self._name!r} did not run in the model's forward pass; "
                "pick the module the forward pass calls on the ids"
            )


# --------------------------------------------------------------------------- declared inputs


def input_spec(model: object) -> tuple[int | None, tuple[int, int] | None]:
    """The channels and ``(H, W)`` size of the images a PyTorch model declares it takes.

    A PyTorch module does not declare its input shape, except where it was traced with an
    example: a module of a :func:`torch.export` program (``ExportedProgram.module()``) keeps
    its example input's shape ``(N, C, H, W)`` in its graph, and gives ``C`` and ``(H, W)``
    where they are fixed (a dimension exported as dynamic gives None). Otherwise the
    channels are the input channels of the first :class:`torch.nn.Conv2d` registered in
    the model (TorchScript's form of one included), which is the first applied in the
    models of the common kinds, and the size is unknown (None): a model that flattens into
    a ``Linear`` needs one fixed size, which only its trainer knows.

    Args:
        model: a ``torch.nn.Module`` (anything else declares nothing).

    Returns:
        ``(channels, size)``, each None where the model does not tell.

    Examples:
        >>> import torch
        >>> from adapters import torch as torch_adapter
        >>> net = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.Flatten())
        >>> torch_adapter.input_spec(net)
        (1, None)

        (``torch.export.export(net, (torch.zeros(2, 1, 28, 28),)).module()`` gives
        ``(1, (28, 28))``.)
    """
    if not isinstance(model, torch.nn.Module):
        return None, None
    example = _example_shape(model)
    if example is not None:
        channels, height, width = (value if isinstance(value, int) else None
                                   for value in example[1:])
        size = (height, width) if height is not None and width is not None else None
        return channels, size
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            return (module.in_channels if module.in_channels > 0 else None), None
        if getattr(module, "original_name", None) == "Conv2d":  # TorchScript
            weight = getattr(module, "weight", None)
            if isinstance(weight, torch.Tensor) and weight.ndim == 4:
                return int(weight.shape[1]) * int(getattr(module, "groups", 1)), None
    return None, None


def _example_shape(model: torch.nn.Module) -> tuple[object, ...] | None:
    """The shape of the first input a traced graph module was exported with, if 4-D."""
    graph = getattr(model, "graph", None)
    nodes = getattr(graph, "nodes", None) if isinstance(model, torch.fx.GraphModule) else None
    for node in nodes or ():
        if node.op == "placeholder":
            value = node.meta.get("val")
            shape = getattr(value, "shape", None)
            return tuple(shape) if shape is not None and len(shape) == 4 else None
    return None


# --------------------------------------------------------------------------- weight copies


def weight_layers(model: torch.nn.Module) -> list[str]:
    """The names of the modules that hold parameters of their own, in registration order.

    The model itself, when it holds parameters directly (an ``nn.Linear``), is ``""``.

    Examples:
        >>> import torch
        >>> from adapters import torch as torch_adapter
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
        >>> torch_adapter.weight_layers(net)
        ['0', '2']
    """
    _check_module(model, "its weights are copied")
    return [name for name, module in model.named_modules()
            if next(module.parameters(recurse=False), None) is not None]


def copy_with_weights(
    model: torch.nn.Module,
    transform: WeightTransform,
    *,
    layers: str | list[str] | None = None,
    seed: int | None = None,
) -> torch.nn.Module:
    """A deep copy of ``model`` whose chosen layers' parameters are ``transform(weight, rng)``.

    Args:
        model: an ``nn.Module``; it is left exactly as it was.
        transform: ``transform(weight, rng) -> new weight`` on numpy arrays, such as
            :func:`adapters._backend.reinitialise` or
            :func:`adapters._backend.multiplicative_noise`.
        layers: the names of :func:`weight_layers` to transform (None: all).
        seed: each layer's generator is :func:`adapters._backend.layer_generator` of
            ``seed`` and the layer's name; its parameters are drawn in name order.

    ``transform`` sees each weight in the layout Keras and JAX keep it in: a linear layer's
    ``(out, in)`` weight as ``(in, out)``, a convolution's ``(out, in, *kernel)`` (or a
    transposed one's ``(in, out, *kernel)``) as ``(*kernel, in, out)`` (``(*kernel, out,
    in)``), turned back afterwards. So a seeded random transform gives every element the
    same draw in the three frameworks, and NoiseGrad or a randomisation test of the same
    network is the same in each.

    Examples:
        >>> import numpy as np
        >>> import torch
        >>> from adapters import torch as torch_adapter
        >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
        >>> zero = lambda weight, rng: np.zeros_like(weight)
        >>> copy = torch_adapter.copy_with_weights(net, zero, layers=["1"])
        >>> float(copy[1].weight.detach().abs().sum()), bool(net[1].weight.detach().abs().sum() > 0)
        (0.0, True)
    """
    check_callable(transform, "transform")
    names = select_layers(layers, weight_layers(model))
    duplicate = copy.deepcopy(model)
    modules = dict(duplicate.named_modules())
    with torch.no_grad():
        for name in names:
            rng = layer_generator(seed, name)
            for weight_name, parameter in sorted(modules[name].named_parameters(recurse=False)):
                where = f"layer {name!r} weight {weight_name!r}"
                current = parameter.detach().to("cpu", torch.float64 if parameter.dtype ==
                                                torch.float64 else torch.float32).numpy()
                order = _portable_order(modules[name], weight_name, current.ndim)
                new = apply_transform(transform, current.transpose(order), rng, where)
                new = new.transpose(np.argsort(order))
                parameter.copy_(torch.from_numpy(np.ascontiguousarray(new)).to(parameter.dtype))
    return duplicate


def _portable_order(module: torch.nn.Module, weight_name: str, ndim: int) -> tuple[int, ...]:
    """The axes that put a weight in Keras's and JAX's layout (kernel axes first)."""
    if weight_name != "weight" or ndim < 2:
        return tuple(range(ndim))
    if isinstance(module, torch.nn.Linear) and ndim == 2:
        return (1, 0)
    if isinstance(module, torch.nn.modules.conv._ConvNd):
        return (*range(2, ndim), 1, 0)
    return tuple(range(ndim))


# --------------------------------------------------------------------------- scores


def _scores(
    output: object,
    objective: Objective | None,
    target: np.ndarray | None,
    device: torch.device,
    rows: int,
) -> torch.Tensor:
    """One score per row, ``(rows,)`` or ``(rows, 1)``: the target's output, or the objective's."""
    if objective is not None:
        target_tensor = None if target is None else torch.from_numpy(target).to(device)
        scores = objective(output, target_tensor)
        is_tensor = isinstance(scores, torch.Tensor)
        check_scores_shape(tuple(scores.shape) if is_tensor else None, rows,
                           floating=is_tensor and scores.is_floating_point(),
                           dtype=getattr(scores, "dtype", None),
                           output_type=type(scores).__name__)
        return scores.reshape(rows)
    plan = _plan(tuple(output.shape) if isinstance(output, torch.Tensor) else None, rows,
                 target is not None, type(output).__name__)
    output = cast(torch.Tensor, output)  # plan_scores refuses anything else
    if not plan.column:
        return output.reshape(rows)
    # a column plan: targets were given, and eager shapes are known
    target, n_outputs = cast(np.ndarray, target), cast(int, plan.n_outputs)
    check_target_range(target, n_outputs)
    index = torch.from_numpy(target)
    if output.device.type != "cpu":
        index = index.to(output.device)
    return output.gather(1, index[:, None])  # (rows, 1): the callers sum the scores


@functools.lru_cache(maxsize=64)
def _plan(
    shape: tuple[int, ...] | None, rows: int, has_target: bool, output_type: str
) -> ScorePlan:
    """:func:`adapters._backend.plan_scores`, remembered for the shapes callbacks see."""
    return plan_scores(shape, rows, has_target=has_target, output_type=output_type)


def _check_graph(scores: torch.Tensor, source: str) -> None:
    if not scores.requires_grad:
        raise ValueError(
            f"expected scores that depend on {source} through autograd, got a "
            "tensor without a gradient graph; does the model detach, leave "
            "torch, or run under torch.no_grad()?"
        )


def _describe(kind: str, model: object, **options: object) -> str:
    settings = "".join(f", {key}={value!r}" for key, value in options.items())
    return f"torch {kind} of {type(model).__name__}{settings}"


# --------------------------------------------------------------------------- ReLU rules


def _check_relu_rule(rule: object, model: object) -> str | None:
    rule = check_relu_rule(rule)
    if rule is not None and isinstance(model, torch.jit.ScriptModule | torch.jit.ScriptFunction):
        raise TypeError(
            f"relu_rule={rule!r} cannot reach the ReLUs of a TorchScript model, which runs "
            "outside Python; pass the original nn.Module instead"
        )
    return rule


class _RuleReLU(torch.autograd.Function):
    """``relu(z)`` forward (in place when asked); the backward pass of a ReLU rule."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, rule: str, inplace: bool) -> torch.Tensor:
        ctx.rule = rule
        if rule == "guided":
            ctx.save_for_backward(z > 0)
        if not inplace:
            return torch.relu(z)
        ctx.mark_dirty(z)
        return torch.relu_(z)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        upstream = grad.clamp(min=0)  # the deconvnet's max(g, 0)
        if ctx.rule == "guided":
            (positive_input,) = ctx.saved_tensors
            upstream = upstream.masked_fill(~positive_input, 0)
        return upstream, None, None


#: The ReLU callables a rule catches, and whether each works in place by default.
#: ``torch.nn.functional.relu_`` is ``torch.relu_``; ``nn.ReLU`` calls
#: ``torch.nn.functional.relu``.
_RELU_CALLS = {
    torch.relu: False,
    torch.relu_: True,
    torch.Tensor.relu: False,
    torch.Tensor.relu_: True,
    F.relu: False,
}


def _relu_call(func: Any, args: tuple, kwargs: dict) -> tuple[torch.Tensor, bool] | None:
    """``(input, inplace)`` of a call to one of :data:`_RELU_CALLS`, or None for others."""
    try:
        inplace = _RELU_CALLS.get(func)
    except TypeError:  # an unhashable callable is no ReLU
        return None
    if inplace is None:
        return None
    rest = dict(kwargs)
    values = list(args)
    z = values.pop(0) if values else rest.pop("input", None)
    if func is F.relu:
        inplace = bool(values.pop(0) if values else rest.pop("inplace", False))
    if values or rest or not isinstance(z, torch.Tensor):
        return None  # not a call of the form above: run it as it is
    return z, inplace


class _ReLURuleMode(TorchFunctionMode):
    """Sends the ReLU calls of the code run inside it to :class:`_RuleReLU`.

    Torch function modes live on a thread-local stack, so other threads never see it.
    """

    def __init__(self, rule: str) -> None:
        super().__init__()
        self.rule = rule
        self.relus = 0

    def __torch_function__(
        self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        kwargs = kwargs or {}
        call = _relu_call(func, args, kwargs)
        if call is None:
            return func(*args, **kwargs)
        self.relus += 1
        z, inplace = call
        return _RuleReLU.apply(z, self.rule, inplace)


def _relu_rule_mode(rule: str | None) -> contextlib.AbstractContextManager[Any]:
    return contextlib.nullcontext() if rule is None else _ReLURuleMode(rule)


class _ReLURuleSeen:
    """Checks, on a callback's first call, that the rule's forward pass met a ReLU."""

    def __init__(self, rule: str | None) -> None:
        self._rule = rule
        self._checked = False

    def check(self, mode: _ReLURuleMode | None) -> None:
        if mode is None or self._checked:
            return
        self._checked = True
        if not mode.relus:
            raise ValueError(no_relu_message(
                str(self._rule),
                "nn.ReLU, torch.relu(_), torch.nn.functional.relu(_) and Tensor.relu(_) run by "
                "Python (not relu6, leaky_relu, clamp, torch.ops.aten.relu or code compiled "
                "outside Python)",
            ))


# --------------------------------------------------------------------------- layers


def _check_module(model: object, why: str) -> None:
    if not isinstance(model, torch.nn.Module):
        raise TypeError(
            f"expected model to be a torch.nn.Module ({why}), got {type(model).__name__}"
        )


def _find_layer(model: torch.nn.Module, layer: object) -> tuple[str, torch.nn.Module]:
    """``(dotted name, module)`` of ``layer``, a module inside ``model`` or its name."""
    if isinstance(layer, torch.nn.Module):
        for name, module in model.named_modules():
            if module is layer:
                return name, module
        raise ValueError(
            f"expected layer to be a module inside the model, got a {type(layer).__name__} "
            "that is not among model.named_modules()"
        )
    if not isinstance(layer, str):
        raise TypeError(
            "expected layer to be an nn.Module or its dotted name in model.named_modules() "
            f"(such as 'layer4.1.conv2'), got {type(layer).__name__}"
        )
    return layer, find_named(layer, dict(model.named_modules()))


class _LayerCapture:
    """A forward hook keeping one layer's output as the leaf of the graph above it."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._leaf: torch.Tensor | None = None

    def hook(self, module: torch.nn.Module, inputs: Any, output: Any) -> torch.Tensor:
        if self._leaf is not None:
            raise ValueError(
                f"layer {self._name!r} ran more than once in one forward pass (a module "
                "used at several places), so it has no single output: pick a module that "
                "runs once, such as its neighbour or the block around it"
            )
        if not isinstance(output, torch.Tensor) or not output.is_floating_point():
            got = output.dtype if isinstance(output, torch.Tensor) else type(output).__name__
            raise TypeError(
                f"expected layer {self._name!r} to output a floating torch.Tensor, got {got}"
            )
        if output.ndim < 3:
            raise ValueError(
                "Grad-CAM needs a layer with spatial axes, an output (k, C, *spatial); "
                f"layer {self._name!r} outputs shape {tuple(output.shape)}: pick a "
                "convolutional layer"
            )
        self._leaf = output.detach().requires_grad_(True)
        # A copy for the rest of the network, so that in-place operations there leave the
        # activations alone; the gradient flows back to the leaf through it.
        return self._leaf.clone()

    def activations(self) -> torch.Tensor:
        if self._leaf is None:
            raise ValueError(
                f"layer {self._name!r} did not run in the model's forward pass; pick a "
                "module the forward pass calls"
            )
        return self._leaf


# --------------------------------------------------------------------------- calls


class _CallGuard:
    """Per callback: the training-mode warning (once), and each call's grad mode and buffers."""

    def __init__(self, model: object) -> None:
        self._model = model
        self._warned = False

    @contextlib.contextmanager
    def grad_enabled(self) -> Iterator[None]:
        """Gradients on (also inside ``no_grad``/``inference_mode``); buffers put back.

        A model in training mode gets the warning once per callback, and its buffers (which
        a training-mode pass updates, such as batch-norm statistics) are put back.
        """
        training = isinstance(self._model, torch.nn.Module) and _in_training_mode(self._model)
        if training and not self._warned:
            self._warned = True
            warnings.warn(
                "the model is in training mode, so dropout and batch-norm make the "
                "saliency map random; call model.eval() first (the adapter does not "
                "change the mode for you)",
                UserWarning,
                stacklevel=4,
            )
        saved = _save_buffers(self._model) if training else None
        try:
            if torch.is_grad_enabled() and not torch.is_inference_mode_enabled():
                yield  # the common case: nothing to switch
            else:
                with torch.inference_mode(False), torch.enable_grad():
                    yield
        finally:
            if saved is not None:
                _restore_buffers(saved)


# --------------------------------------------------------------------------- placement


def _as_device(device: str | torch.device | None) -> torch.device | None:
    """The device asked for, checked against this machine's devices now."""
    if device is None:
        return None
    if isinstance(device, torch.device):
        resolved = device
    else:
        kind, index = parse_device(device)
        if kind == "tpu":
            raise device_unavailable(device, _available_devices())
        name = "cuda" if kind == "gpu" else kind
        resolved = torch.device(name if index is None else f"{name}:{index}")
    if resolved.type == "cpu":
        return resolved
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count and (resolved.index or 0) < count:
            return resolved
    elif resolved.type == "mps" and torch.backends.mps.is_available():
        return resolved
    raise device_unavailable(device, _available_devices())


def _available_devices() -> list[str]:
    names = ["cpu"]
    if torch.cuda.is_available():
        names += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        names.append("mps")
    return names


def _as_dtype(dtype: str | torch.dtype | None) -> torch.dtype | None:
    if dtype is None:
        return None
    resolved = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
    if not isinstance(resolved, torch.dtype) or not resolved.is_floating_point:
        raise TypeError(
            "expected dtype to be a floating torch dtype (or its name, such as "
            f"'float32' or 'bfloat16'), got {dtype!r}"
        )
    return resolved


class _Placement:
    """The device and dtype of the forward pass: given, else the model's, else CPU/float32.

    Read at every call, so a model moved after the callback was made (``model.to(...)``
    keeps its parameter objects and changes their data) is followed; the parameter the
    model's device and dtype are read from is found once, so a model whose parameters are
    replaced by new objects afterwards (``load_state_dict(..., assign=True)``, a swapped
    submodule) needs a new callback, or ``device=`` and ``dtype=``.
    """

    def __init__(
        self, model: object, device: torch.device | None, dtype: torch.dtype | None
    ) -> None:
        self._device, self._dtype = device, dtype
        self._first = self._floating = None
        if isinstance(model, torch.nn.Module) and (device is None or dtype is None):
            for tensor in _tensors(model):
                if self._first is None:
                    self._first = tensor
                if tensor.is_floating_point():
                    self._floating = tensor
                    break

    def __call__(self) -> tuple[torch.device, torch.dtype]:
        device = self._device
        if device is None:
            device = self._first.device if self._first is not None else _CPU
        dtype = self._dtype
        if dtype is None:
            dtype = self._floating.dtype if self._floating is not None else torch.float32
        return device, dtype


_CPU = torch.device("cpu")


def _tensors(model: torch.nn.Module) -> Iterator[torch.Tensor]:
    yield from model.parameters()
    yield from model.buffers()


def _in_training_mode(model: torch.nn.Module) -> bool:
    return any(module.training for module in model.modules())


def _save_buffers(model: object) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Copies of the buffers a training-mode forward pass may update in place."""
    if not isinstance(model, torch.nn.Module):
        return []
    return [(buffer, buffer.detach().clone()) for buffer in model.buffers()]


def _restore_buffers(saved: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    with torch.no_grad():
        for buffer, saved_copy in saved:
            buffer.copy_(saved_copy)


# --------------------------------------------------------------------------- conversion


def _native(x: object) -> np.ndarray | None:
    """A tensor as numpy (detached, on the CPU; bfloat16 widened), anything else None."""
    if not isinstance(x, torch.Tensor):
        return None
    tensor = x.detach()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.to(torch.float32)
    return tensor.cpu().numpy()


def _to_tensor(batch: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """A fresh tensor on ``device`` in ``dtype``: the model may write into it freely."""
    if not batch.flags.writeable:  # torch.from_numpy warns on read-only memory
        return torch.from_numpy(batch.copy()).to(device=device, dtype=dtype)
    return torch.from_numpy(batch).to(device=device, dtype=dtype, copy=True)


def _to_numpy(tensor: torch.Tensor, model_dtype: torch.dtype) -> np.ndarray:
    """numpy on the CPU; floating results in the carrier dtype of the model's dtype."""
    tensor = tensor.detach()
    if tensor.is_floating_point():
        wanted = _carrier(model_dtype)
        if tensor.dtype != wanted:
            tensor = tensor.to(dtype=wanted)
    return tensor.cpu().numpy()


@functools.cache
def _carrier(model_dtype: torch.dtype) -> torch.dtype:
    carrier = carrier_dtype(str(model_dtype).removeprefix("torch."))
    return torch.float64 if carrier == np.float64 else torch.float32
