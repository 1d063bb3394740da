"""PyTorch adapter: turn an ``nn.Module`` (or any callable on tensors) into core callbacks.

Importing this module imports :mod:`torch`; ``import adapters`` does not.

* :func:`gradient_fn` builds a :class:`saliency_core.types.GradientFn`: the gradient of
  one score per row with respect to the input, computed with :func:`torch.autograd.grad`
  on the input tensor only, so the parameters' ``.grad`` and ``requires_grad`` are never
  touched. With ``relu_rule="guided"`` or ``"deconvnet"`` it gives guided
  backpropagation or the deconvnet instead of the plain gradient.
* :func:`layer_fn` builds a :class:`saliency_core.types.LayerFn` for Grad-CAM and
  Grad-CAM++: one layer's activations and the gradients of the target score with respect
  to them, NCHW, so the core is called with ``channel_axis=1``.
* :func:`predict_fn` builds a :class:`saliency_core.types.PredictFn`: the model's outputs
  as numpy, computed under :func:`torch.no_grad`.

Inputs are numpy arrays; they are wrapped with :func:`torch.from_numpy` (no copy when
the array already has the model's dtype and lives on the CPU), cast to the model's
floating dtype and moved to its device. Results come back as numpy arrays on the CPU,
float32 for float16/bfloat16 models (numpy has no bfloat16) and otherwise in the model's
dtype: a float64 batch sent to a float32 model gives a float32 map.

The model is never modified, not even for a moment: a ReLU rule is a
:class:`torch.overrides.TorchFunctionMode` active (in the calling thread only) during the
callback's forward pass, which sends the ReLU calls it sees to a
:class:`torch.autograd.Function` with the rule's backward pass; :func:`layer_fn` adds a
forward hook to the layer for one forward pass and removes it in a ``finally`` clause.

PyTorch runs eagerly, so nothing is traced or compiled per call: one callback call is one
forward and one backward pass over the whole chunk. A model compiled with
:func:`torch.compile` sees inputs of the same dtype, device and ``requires_grad`` on every
call, so it does not recompile per chunk either; it follows a ReLU rule too, at the cost
of one more compilation per rule.

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
import difflib
import warnings
from collections.abc import Callable, Iterator
from typing import Any

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

from ._relu_rules import RELU_RULES, check_relu_rule, no_relu_message
from ._targets import as_target_rows, check_target_range, target_needed

__all__ = ["RELU_RULES", "Objective", "gradient_fn", "layer_fn", "predict_fn"]

#: ``objective(output, target) -> scores``: the model's output (as the model returned it)
#: and the targets (an int64 tensor ``(k,)`` on the model's device, or None) give one
#: differentiable score per row, a tensor ``(k,)``.
Objective = Callable[[Any, "torch.Tensor | None"], "torch.Tensor"]

#: The values of ``relu_rule``: None (the plain gradient), ``"guided"`` (guided
#: backpropagation) and ``"deconvnet"``.

_HALF_DTYPES = (torch.float16, torch.bfloat16)


def gradient_fn(
    model: Callable[[torch.Tensor], Any],
    *,
    objective: Objective | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    relu_rule: str | None = None,
) -> GradientFn:
    """Make the callback ``fn(x, target) -> d score / d x`` for a PyTorch model.

    The score of row ``i`` is ``output[i, target[i]]`` for a ``(k, C)`` output, the
    output itself for a model giving one score per row (``(k,)`` or ``(k, 1)``, with
    ``target=None``), or ``objective(output, target)[i]`` when an objective is given.

    The model is left exactly as it was: the mode is not switched (a model in training
    mode gets a one-time ``UserWarning``, since dropout and batch-norm make the map
    random), parameters get no ``.grad`` and keep their ``requires_grad``, and buffers
    that a training-mode forward pass updates (batch-norm running statistics) are put
    back after every call.

    ``relu_rule`` changes the backward pass of every ReLU the model's forward pass calls,
    and nothing else (the outputs are bitwise those of the plain model). With ``g`` the
    gradient arriving at a ReLU's output and ``z`` its input, the ReLU passes back

    * None: ``g * (z > 0)``, the plain gradient;
    * ``"guided"``: ``g * (z > 0) * (g > 0)``, guided backpropagation;
    * ``"deconvnet"``: ``max(g, 0)``, whatever ``z`` was.

    The ReLUs caught are ``nn.ReLU`` modules (``inplace`` or not), ``torch.relu``,
    ``torch.relu_``, ``torch.nn.functional.relu`` (``inplace`` or not),
    ``torch.nn.functional.relu_``, ``Tensor.relu`` and ``Tensor.relu_``, wherever they
    are called in the model's forward pass; in-place calls stay in-place. They are caught
    by a :class:`torch.overrides.TorchFunctionMode` that is active only in the calling
    thread and only during the callback's forward pass (not in the objective), so the
    model, the ``torch`` functions and other callbacks of the same model, plain ones in
    other threads included, are untouched, also when the forward pass raises. Not caught
    (they give their plain gradient): other activations (``relu6``, ``leaky_relu``,
    ``clamp(min=0)``, ...), ``torch.ops.aten.relu``, and code that Python does not run:
    TorchScript models are refused, and a callback whose first forward pass meets no ReLU raises
    once.

    Args:
        model: an ``nn.Module`` or any callable taking a tensor ``(k, *input_shape)``.
            Its output must be a tensor unless an ``objective`` is given, which then
            receives the output as returned (a tuple, a dict, ...).
        objective: ``objective(output, target) -> (k,)`` scores, for regression,
            segmentation (a sum over a mask) or anything custom. ``target`` is passed
            as an int64 tensor on the model's device, or None, without range checks.
        device: where the forward pass runs. Default: the device of the model's first
            parameter (or buffer); the CPU for a callable without any.
        dtype: the floating dtype the input is cast to. Default: the dtype of the
            model's first floating parameter (or buffer); float32 for a callable
            without any.
        relu_rule: one of :data:`RELU_RULES`: None (the plain gradient), ``"guided"``
            or ``"deconvnet"``.

    Returns:
        A :class:`saliency_core.types.GradientFn`. It takes a numpy array ``x`` of shape
        ``(k, *input_shape)`` and ``target`` (an int array ``(k,)``, an int for every
        row, or None) and returns a numpy array shaped like ``x`` on the CPU: float32
        for float16/bfloat16 models, otherwise in ``dtype``.

    Raises:
        TypeError: ``model`` or ``objective`` is not callable, ``dtype`` is not a
            floating dtype, ``relu_rule`` is not None or a str, or a ``relu_rule`` is
            given for a TorchScript model. The callback raises TypeError for a
            non-array or non-numeric ``x``, a non-integer ``target``, a model output
            that is not a tensor (without an objective), non-tensor or non-floating
            scores.
        ValueError: ``device`` is not a device, ``relu_rule`` is not one of
            :data:`RELU_RULES`. The callback raises ValueError for a ``target`` that
            is not ``(k,)``, a ``(k, C)`` output without a target, a target out of
            ``[0, C)``, scores not shaped ``(k,)``, or scores that do not depend on the
            input through autograd.

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
        arXiv 1706.03825 (the gradient ``d S_c / d x`` of section 2; guided
        backpropagation is one of the maps it smooths, section 4).
        Springenberg et al. 2014, "Striving for simplicity: the all convolutional net",
        arXiv 1412.6806 (guided backpropagation). Zeiler and Fergus 2014, "Visualizing
        and understanding convolutional networks", ECCV (the deconvnet).
    """
    _check_callable(model, "model")
    if objective is not None:
        _check_callable(objective, "objective")
    device = _as_device(device)
    dtype = _as_dtype(dtype)
    relu_rule = _check_relu_rule(relu_rule, model)
    guard = _CallGuard(model)
    rule_seen = _ReLURuleSeen(relu_rule)

    def gradients(x: np.ndarray, target: np.ndarray | None, /) -> np.ndarray:
        run_device, run_dtype = _placement(model, device, dtype)
        guard.warn_if_training()
        target_rows = as_target_rows(target, _rows(x))
        with guard.grad_enabled():
            inputs = _to_tensor(x, run_device, run_dtype).requires_grad_(True)
            with _relu_rule_mode(relu_rule) as mode:
                output = model(inputs)
            rule_seen.check(mode)
            scores = _scores(output, objective, target_rows, run_device, inputs.shape[0])
            _check_graph(scores, "the input")
            (grad,) = torch.autograd.grad(
                scores, inputs, grad_outputs=torch.ones_like(scores), allow_unused=True
            )
        if grad is None:  # the scores depend on parameters only: the gradient is zero
            grad = torch.zeros_like(inputs)
        return _to_numpy(grad)

    return gradients


def layer_fn(
    model: torch.nn.Module,
    layer: str | torch.nn.Module,
    *,
    objective: Objective | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> LayerFn:
    """Make the Grad-CAM callback ``fn(x, target) -> (activations, gradients)`` of a layer.

    ``activations`` is the layer's output and ``gradients`` is ``d score / d activations``,
    both numpy ``(k, C, *spatial)`` (NCHW for images): pass ``channel_axis=1`` to
    :func:`saliency_core.grad_cam` and :func:`saliency_core.grad_cam_plus_plus` (and
    ``input_channel_axis=1`` for NCHW inputs). Scores, targets and objectives are those of
    :func:`gradient_fn`, as are device, dtype, the warning for a model in training mode and
    the buffers put back.

    Each call adds a forward hook to the layer, runs one forward pass, and removes the
    hook in a ``finally`` clause, so no hook is left behind, also when the forward pass or
    the objective raises. The hook hands the rest of the network a copy of the layer's
    output whose gradient graph starts at the layer: the activations returned are those
    the layer computed even when a later in-place operation (``nn.ReLU(inplace=True)``,
    ``out += identity``) overwrites its output, the backward pass stops at the layer,
    and neither the input nor the layers before it need ``requires_grad``.

    Args:
        model: the ``nn.Module`` holding the layer.
        layer: the layer: a module inside ``model``, or its dotted name in
            ``model.named_modules()`` such as ``"layer4.1.conv2"``. Its output must be a
            floating tensor with spatial axes, and it must run exactly once per forward
            pass (a module reused at several places, such as the one ``nn.ReLU`` of a
            torchvision ``BasicBlock``, has no single output: pick its neighbour).
        objective: as in :func:`gradient_fn`.
        device: as in :func:`gradient_fn`.
        dtype: as in :func:`gradient_fn`.

    Returns:
        A :class:`saliency_core.types.LayerFn` returning two numpy arrays of the layer's
        output shape ``(k, C, *spatial)`` on the CPU, float32 for float16/bfloat16
        models.

    Raises:
        TypeError: ``model`` is not an ``nn.Module``, ``layer`` is neither a module nor
            a str, ``objective`` is not callable, ``dtype`` is not a floating dtype. The
            callback raises TypeError as :func:`gradient_fn` does, and for a layer
            output that is not a floating tensor.
        ValueError: no layer of that name (the message lists close matches), a module
            that is not inside ``model``, ``device`` is not a device. The callback raises
            ValueError as :func:`gradient_fn` does, and for a layer output without
            spatial axes (a dense layer's ``(k, C)``: Grad-CAM needs a convolutional
            layer), a layer that did not run or ran more than once in the forward pass.

    Examples:
        A convolution followed by global average pooling and a dense layer: the gradient
        at every position of channel ``c`` is ``dense.weight[target, c] / (H * W)``.

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
    if not isinstance(model, torch.nn.Module):
        raise TypeError(
            "expected model to be a torch.nn.Module (layer_fn hooks one of its "
            f"submodules), got {type(model).__name__}"
        )
    name, module = _find_layer(model, layer)
    if objective is not None:
        _check_callable(objective, "objective")
    device = _as_device(device)
    dtype = _as_dtype(dtype)
    guard = _CallGuard(model)

    def layer_gradients(
        x: np.ndarray, target: np.ndarray | None, /
    ) -> tuple[np.ndarray, np.ndarray]:
        run_device, run_dtype = _placement(model, device, dtype)
        guard.warn_if_training()
        target_rows = as_target_rows(target, _rows(x))
        capture = _LayerCapture(name)
        with guard.grad_enabled():
            inputs = _to_tensor(x, run_device, run_dtype)
            hook = module.register_forward_hook(capture.hook)
            try:
                output = model(inputs)
            finally:
                hook.remove()
            activations = capture.activations()
            scores = _scores(output, objective, target_rows, run_device, inputs.shape[0])
            _check_graph(scores, f"the output of layer {name!r}")
            (grad,) = torch.autograd.grad(
                scores, activations, grad_outputs=torch.ones_like(scores), allow_unused=True
            )
        if grad is None:  # the scores depend on parameters only: the gradient is zero
            grad = torch.zeros_like(activations)
        return _to_numpy(activations), _to_numpy(grad)

    return layer_gradients


def predict_fn(
    model: Callable[[torch.Tensor], Any],
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> PredictFn:
    """Make the callback ``fn(x) -> outputs`` for a PyTorch model, without autograd.

    The forward pass runs under :func:`torch.no_grad` (not ``inference_mode``, whose
    tensors could end up in a model's caches and break later gradient calls).

    Args:
        model: an ``nn.Module`` or any callable taking a tensor ``(k, *input_shape)``
            and returning a tensor.
        device: where the forward pass runs; default as in :func:`gradient_fn`.
        dtype: the floating dtype the input is cast to; default as in :func:`gradient_fn`.

    Returns:
        A :class:`saliency_core.types.PredictFn` returning the outputs as a numpy array
        on the CPU (float32 for float16/bfloat16 outputs).

    Raises:
        TypeError: ``model`` is not callable or ``dtype`` is not a floating dtype; the
            callback raises TypeError for a bad ``x`` or a non-tensor output.
        ValueError: ``device`` is not a device.

    Examples:
        >>> import numpy as np
        >>> import torch
        >>> from adapters import torch as torch_adapter
        >>> predict = torch_adapter.predict_fn(torch.nn.Flatten())
        >>> predict(np.zeros((2, 1, 3), np.float64)).shape
        (2, 3)
    """
    _check_callable(model, "model")
    device = _as_device(device)
    dtype = _as_dtype(dtype)

    def outputs(x: np.ndarray, /) -> np.ndarray:
        _rows(x)
        run_device, run_dtype = _placement(model, device, dtype)
        inputs = _to_tensor(x, run_device, run_dtype)
        with torch.no_grad():
            output = model(inputs)
        if not isinstance(output, torch.Tensor):
            raise TypeError(
                f"expected the model to return a torch.Tensor, got {type(output).__name__}; "
                "wrap the model in a function that returns one tensor"
            )
        return _to_numpy(output)

    return outputs


# --------------------------------------------------------------------------- checks


def _check_callable(value: object, name: str) -> None:
    if not callable(value):
        raise TypeError(f"expected {name} to be callable, got {type(value).__name__}")


def _as_device(device: str | torch.device | None) -> torch.device | None:
    if device is None or isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise TypeError(f"expected device to be a str or torch.device, got {type(device).__name__}")
    try:
        return torch.device(device)
    except RuntimeError as error:
        raise ValueError(
            f"expected a torch device such as 'cpu' or 'cuda:0', got {device!r}"
        ) from error


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


def _select_scores(output: object, target: np.ndarray | None) -> torch.Tensor:
    """``output[i, target[i]]``, or the output itself for one score per row."""
    if not isinstance(output, torch.Tensor):
        raise TypeError(
            f"expected the model to return a torch.Tensor, got {type(output).__name__}; "
            "pass objective= to turn the output into one score per row"
        )
    rows = output.shape[0] if output.ndim else 0
    if target is None:
        if output.ndim == 1 or (output.ndim == 2 and output.shape[1] == 1):
            return output.reshape(rows)
        if output.ndim == 2:
            raise target_needed(output.shape[1])
        raise ValueError(
            "expected a model output of shape (k,) or (k, 1) with target None, got shape "
            f"{tuple(output.shape)}; pass objective= to reduce it to one score per row"
        )
    if output.ndim != 2 or rows != target.shape[0]:
        raise ValueError(
            f"expected a model output of shape ({target.shape[0]}, C) for integer targets, "
            f"got shape {tuple(output.shape)}; pass objective= for other outputs"
        )
    check_target_range(target, output.shape[1])
    index = torch.from_numpy(target).to(output.device)
    return output.gather(1, index[:, None]).reshape(rows)


def _check_scores(scores: object, rows: int) -> torch.Tensor:
    if not isinstance(scores, torch.Tensor):
        raise TypeError(
            f"expected the objective to return a torch.Tensor, got {type(scores).__name__}"
        )
    if not scores.is_floating_point():
        raise TypeError(f"expected floating-point scores from the objective, got {scores.dtype}")
    if tuple(scores.shape) not in ((rows,), (rows, 1)):
        raise ValueError(
            f"expected the objective to return one score per row, shape ({rows},), "
            f"got shape {tuple(scores.shape)}"
        )
    return scores.reshape(rows)


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
    modules = dict(model.named_modules())
    if layer in modules:
        return layer, modules[layer]
    names = [name for name in modules if name]
    close = difflib.get_close_matches(layer, names, n=5)
    if close:
        hint = "close matches: " + ", ".join(repr(name) for name in close)
    else:
        shown = ", ".join(repr(name) for name in names[:10])
        more = f", ... ({len(names)} in all)" if len(names) > 10 else ""
        hint = f"no close match; the layers are {shown}{more}" if names else "it has no layers"
    raise ValueError(f"no layer named {layer!r}; {hint}")


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

    def _training(self) -> bool:
        return isinstance(self._model, torch.nn.Module) and _in_training_mode(self._model)

    def warn_if_training(self) -> None:
        if self._warned or not self._training():
            return
        self._warned = True
        warnings.warn(
            "the model is in training mode, so dropout and batch-norm make the "
            "saliency map random; call model.eval() first (the adapter does not "
            "change the mode for you)",
            UserWarning,
            stacklevel=3,
        )

    @contextlib.contextmanager
    def grad_enabled(self) -> Iterator[None]:
        """Gradients on (also inside ``no_grad``/``inference_mode``); buffers put back."""
        saved = _save_buffers(self._model) if self._training() else None
        try:
            with torch.inference_mode(False), torch.enable_grad():
                yield
        finally:
            if saved is not None:
                _restore_buffers(saved)


def _scores(
    output: object,
    objective: Objective | None,
    target: np.ndarray | None,
    device: torch.device,
    rows: int,
) -> torch.Tensor:
    """One score per row: the target's output, or the objective's."""
    if objective is None:
        return _select_scores(output, target)
    target_tensor = None if target is None else torch.from_numpy(target).to(device)
    return _check_scores(objective(output, target_tensor), rows)


def _check_graph(scores: torch.Tensor, source: str) -> None:
    if not scores.requires_grad:
        raise ValueError(
            f"expected scores that depend on {source} through autograd, got a "
            "tensor without a gradient graph; does the model detach, leave "
            "torch, or run under torch.no_grad()?"
        )


# --------------------------------------------------------------------------- placement


def _placement(
    model: object, device: torch.device | None, dtype: torch.dtype | None
) -> tuple[torch.device, torch.dtype]:
    """The device and dtype of the forward pass: given, else the model's, else CPU/float32.

    Read at every call (a few microseconds), so a model moved after the callback was
    made is followed.
    """
    if device is not None and dtype is not None:
        return device, dtype
    first = None
    floating = None
    if isinstance(model, torch.nn.Module):
        for tensor in _tensors(model):
            if first is None:
                first = tensor
            if tensor.is_floating_point():
                floating = tensor
                break
    if device is None:
        device = first.device if first is not None else torch.device("cpu")
    if dtype is None:
        dtype = floating.dtype if floating is not None else torch.float32
    return device, dtype


def _tensors(model: torch.nn.Module):
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
        for buffer, copy in saved:
            buffer.copy_(copy)


# --------------------------------------------------------------------------- conversion


def _rows(x: object) -> int:
    """The batch size of ``x``, after checking it is a numeric numpy batch."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"expected x to be a numpy array, got {type(x).__name__}")
    if x.dtype.kind not in "biuf":
        raise TypeError(f"expected a real numeric x, got dtype {x.dtype}")
    if x.ndim == 0:
        raise ValueError("expected x to be a batch (k, *input_shape), got a 0-d array")
    return x.shape[0]


def _to_tensor(x: np.ndarray, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``x`` (checked by :func:`_rows`) on ``device`` in ``dtype``, without a copy if possible."""
    if not x.flags.writeable or not x.dtype.isnative or any(step < 0 for step in x.strides):
        # torch.from_numpy refuses these (or warns): copy into a plain array first.
        x = np.array(x, dtype=x.dtype.newbyteorder("="))
    return torch.from_numpy(x).to(device=device, dtype=dtype)


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    tensor = tensor.detach()
    if tensor.dtype in _HALF_DTYPES:
        tensor = tensor.to(dtype=torch.float32)
    return tensor.cpu().numpy()
