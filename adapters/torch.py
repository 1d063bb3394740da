"""PyTorch adapter: turn an ``nn.Module`` (or any callable on tensors) into core callbacks.

Importing this module imports :mod:`torch`; ``import adapters`` does not.

* :func:`gradient_fn` builds a :class:`saliency_core.types.GradientFn`: the gradient of
  one score per row with respect to the input, computed with :func:`torch.autograd.grad`
  on the input tensor only, so the parameters' ``.grad`` and ``requires_grad`` are never
  touched.
* :func:`predict_fn` builds a :class:`saliency_core.types.PredictFn`: the model's outputs
  as numpy, computed under :func:`torch.no_grad`.

Inputs are numpy arrays; they are wrapped with :func:`torch.from_numpy` (no copy when
the array already has the model's dtype and lives on the CPU), cast to the model's
floating dtype and moved to its device. Results come back as numpy arrays on the CPU,
float32 for float16/bfloat16 models (numpy has no bfloat16) and otherwise in the model's
dtype: a float64 batch sent to a float32 model gives a float32 map.

PyTorch runs eagerly, so nothing is traced or compiled per call: one callback call is one
forward and one backward pass over the whole chunk. A model compiled with
:func:`torch.compile` sees inputs of the same dtype, device and ``requires_grad`` on every
call, so it does not recompile per chunk either.

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

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

try:
    import torch
except ImportError as error:  # pragma: no cover - exercised in a test with torch hidden
    raise ImportError(
        "adapters.torch needs PyTorch, which is not installed; install it with "
        '`pip install "saliency-toolkit[torch]"` (or `pip install torch`)'
    ) from error

from saliency_core.types import GradientFn, PredictFn

__all__ = ["Objective", "gradient_fn", "predict_fn"]

#: ``objective(output, target) -> scores``: the model's output (as the model returned it)
#: and the targets (an int64 tensor ``(k,)`` on the model's device, or None) give one
#: differentiable score per row, a tensor ``(k,)``.
Objective = Callable[[Any, "torch.Tensor | None"], "torch.Tensor"]

_HALF_DTYPES = (torch.float16, torch.bfloat16)


def gradient_fn(
    model: Callable[[torch.Tensor], Any],
    *,
    objective: Objective | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
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

    Returns:
        A :class:`saliency_core.types.GradientFn`. It takes a numpy array ``x`` of shape
        ``(k, *input_shape)`` and ``target`` (an int array ``(k,)``, an int for every
        row, or None) and returns a numpy array shaped like ``x`` on the CPU: float32
        for float16/bfloat16 models, otherwise in ``dtype``.

    Raises:
        TypeError: ``model`` or ``objective`` is not callable, ``dtype`` is not a
            floating dtype. The callback raises TypeError for a non-array or
            non-numeric ``x``, a non-integer ``target``, a model output that is not a
            tensor (without an objective), non-tensor or non-floating scores.
        ValueError: ``device`` is not a device. The callback raises ValueError for a
            ``target`` that is not ``(k,)``, a ``(k, C)`` output without a target, a
            target out of ``[0, C)``, scores not shaped ``(k,)``, or scores that do
            not depend on the input through autograd.

    References:
        Smilkov et al. 2017, "SmoothGrad: removing noise by adding noise",
        arXiv 1706.03825 (the gradient ``d S_c / d x`` of section 2).
    """
    _check_callable(model, "model")
    if objective is not None:
        _check_callable(objective, "objective")
    device = _as_device(device)
    dtype = _as_dtype(dtype)
    warned = False

    def gradients(x: np.ndarray, target: np.ndarray | None, /) -> np.ndarray:
        nonlocal warned
        run_device, run_dtype = _placement(model, device, dtype)
        training = isinstance(model, torch.nn.Module) and _in_training_mode(model)
        if training and not warned:
            warned = True
            warnings.warn(
                "the model is in training mode, so dropout and batch-norm make the "
                "saliency map random; call model.eval() first (the adapter does not "
                "change the mode for you)",
                UserWarning,
                stacklevel=2,
            )
        target_rows = _check_target(target, _rows(x))
        saved_buffers = _save_buffers(model) if training else None
        try:
            # Callers inside torch.no_grad() or torch.inference_mode() still get gradients.
            with torch.inference_mode(False), torch.enable_grad():
                inputs = _to_tensor(x, run_device, run_dtype).requires_grad_(True)
                output = model(inputs)
                if objective is None:
                    scores = _select_scores(output, target_rows)
                else:
                    target_tensor = None
                    if target_rows is not None:
                        target_tensor = torch.from_numpy(target_rows).to(run_device)
                    scores = _check_scores(objective(output, target_tensor), inputs.shape[0])
                if not scores.requires_grad:
                    raise ValueError(
                        "expected scores that depend on the input through autograd, got a "
                        "tensor without a gradient graph; does the model detach, leave "
                        "torch, or run under torch.no_grad()?"
                    )
                (grad,) = torch.autograd.grad(
                    scores,
                    inputs,
                    grad_outputs=torch.ones_like(scores),
                    allow_unused=True,
                )
        finally:
            if saved_buffers is not None:
                _restore_buffers(saved_buffers)
        if grad is None:  # the scores depend on parameters only: the gradient is zero
            grad = torch.zeros_like(inputs)
        return _to_numpy(grad)

    return gradients


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


def _check_target(target: object, rows: int) -> np.ndarray | None:
    """The targets as an int64 array ``(rows,)``, or None."""
    if target is None:
        return None
    array = np.asarray(target)
    if array.dtype.kind not in "iu":
        raise TypeError(f"expected integer targets, got dtype {array.dtype}")
    if array.ndim == 0:
        array = np.full(rows, array, dtype=np.int64)
    if array.shape != (rows,):
        raise ValueError(
            f"expected target of shape ({rows},), one index per row of x, got shape {array.shape}"
        )
    return array.astype(np.int64, copy=False)


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
            raise ValueError(
                f"the model gives {output.shape[1]} outputs per row (output shape "
                f"{tuple(output.shape)}): expected target, an int array ({rows},) of "
                "output indices, got None"
            )
        raise ValueError(
            "expected a model output of shape (k,) or (k, 1) with target None, got shape "
            f"{tuple(output.shape)}; pass objective= to reduce it to one score per row"
        )
    if output.ndim != 2 or rows != target.shape[0]:
        raise ValueError(
            f"expected a model output of shape ({target.shape[0]}, C) for integer targets, "
            f"got shape {tuple(output.shape)}; pass objective= for other outputs"
        )
    classes = output.shape[1]
    bad = target[(target < 0) | (target >= classes)]
    if bad.size:
        raise ValueError(
            f"expected targets in the range [0, {classes}) of the model's {classes} outputs "
            f"(negative indices are not accepted), got {np.unique(bad).tolist()}"
        )
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
