"""The PyTorch harness: the reference network and helpers behind ``tests/adapters/harness.py``.

Model handles are ``torch.nn.Module`` objects in eval mode; image batches are NCHW, so
:func:`to_native` / :func:`from_native` transpose NHWC <-> NCHW. Layer activations are
NCHW too (:data:`LAYER_CHANNEL_AXIS`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import adapters.torch as adapter
from tests.adapters import reference

__all__ = [
    "LAYER_CHANNEL_AXIS",
    "LAYERS",
    "ReferenceNet",
    "adapter",
    "from_native",
    "gradient_fn",
    "layer_fn",
    "linear_model",
    "predict_fn",
    "reference_model",
    "scalar_model",
    "snapshot",
    "square_sum_objective",
    "to_native",
]

#: The channel axis of the activations a ``layer_fn`` returns (NCHW).
LAYER_CHANNEL_AXIS = 1

#: Framework-neutral layer names of the reference network -> module names in
#: :class:`ReferenceNet`: ``"block"`` is the residual block's output after its final ReLU
#: (16x4x4), ``"c1"`` the first convolution's output before its ReLU (8x16x16).
LAYERS = {"block": "relu_out", "c1": "c1"}

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class ReferenceNet(nn.Module):
    """The network of ``tests/adapters/reference.py`` in NCHW.

    Both ``nn.ReLU`` modules and ``F.relu`` calls appear on purpose: methods that hook
    ReLU modules must cope with functional ReLUs too.
    """

    def __init__(self) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, kernel_size=3, stride=1, padding=1)
        self.relu1 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.c2 = nn.Conv2d(8, 16, kernel_size=3, stride=2, padding=1)
        self.c3 = nn.Conv2d(16, 16, kernel_size=3, stride=1, padding=1)
        self.sc = nn.Conv2d(8, 16, kernel_size=1, stride=2, padding=0)
        self.relu_out = nn.ReLU()
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, reference.N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool(self.relu1(self.c1(x)))
        r = self.c3(F.relu(self.c2(h)))
        h = self.relu_out(r + self.sc(h))
        return self.fc(torch.flatten(self.gap(h), 1))


class _Linear(nn.Module):
    """``x @ w`` with ``w`` a parameter of shape (D, C) or (D,)."""

    def __init__(self, w: np.ndarray) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(np.asarray(w, dtype=np.float32)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x @ self.w


def reference_model(weights: dict[str, np.ndarray], *, dtype: str = "float32") -> nn.Module:
    """The reference network with ``weights`` loaded exactly, in eval mode."""
    model = ReferenceNet()
    state = {}
    for name, *_ in reference.CONVS:
        state[f"{name}.weight"] = torch.tensor(weights[f"{name}_w"].transpose(3, 2, 0, 1).copy())
        state[f"{name}.bias"] = torch.tensor(weights[f"{name}_b"])
    state["fc.weight"] = torch.tensor(weights["fc_w"].T.copy())
    state["fc.bias"] = torch.tensor(weights["fc_b"])
    model.load_state_dict(state, strict=True)
    return model.to(_DTYPES[dtype]).eval()


def linear_model(w: np.ndarray) -> nn.Module:
    """``x @ w`` for ``x`` (k, D) and ``w`` (D, C), float32."""
    return _Linear(w).eval()


def scalar_model(v: np.ndarray) -> nn.Module:
    """``x @ v`` for ``v`` (D,): one score per row, shape (k,)."""
    return _Linear(v).eval()


def gradient_fn(handle: nn.Module, **options: Any) -> Callable:
    return adapter.gradient_fn(handle, **options)


def layer_fn(handle: nn.Module, layer: str, **options: Any) -> Callable:
    """The adapter's ``layer_fn`` for a neutral layer name of :data:`LAYERS` (or a module name)."""
    return adapter.layer_fn(handle, LAYERS.get(layer, layer), **options)


def predict_fn(handle: nn.Module, **options: Any) -> Callable:
    return adapter.predict_fn(handle, **options)


def square_sum_objective() -> Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]:
    """``sum(output ** 2, axis=1)``, target ignored."""

    def objective(output: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        return (output**2).sum(dim=1)

    return objective


def to_native(x_nhwc: np.ndarray) -> np.ndarray:
    """NHWC -> NCHW for 4-d image batches; other arrays unchanged."""
    x = np.asarray(x_nhwc)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if x.ndim == 4 else x


def from_native(array: np.ndarray) -> np.ndarray:
    """NCHW -> NHWC for 4-d image batches; other arrays unchanged."""
    x = np.asarray(array)
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if x.ndim == 4 else x


def snapshot(handle: Any) -> dict[str, Any]:
    """Weights, buffers, modes, ``.grad`` and ``requires_grad`` of a module (empty otherwise)."""
    if not isinstance(handle, nn.Module):
        return {}
    state: dict[str, Any] = {}
    for name, tensor in handle.state_dict(keep_vars=True).items():
        state[f"state/{name}"] = _numpy_copy(tensor)
        state[f"dtype/{name}"] = str(tensor.dtype)
        state[f"device/{name}"] = str(tensor.device)
    for name, parameter in handle.named_parameters():
        state[f"requires_grad/{name}"] = parameter.requires_grad
        state[f"has_grad/{name}"] = parameter.grad is not None
        if parameter.grad is not None:
            state[f"grad/{name}"] = _numpy_copy(parameter.grad)
    for name, module in handle.named_modules():
        state[f"training/{name or '<root>'}"] = module.training
    return state


def _numpy_copy(tensor: torch.Tensor) -> np.ndarray:
    tensor = tensor.detach()
    if tensor.dtype in (torch.float16, torch.bfloat16):
        tensor = tensor.float()  # exact: both widen to float32 without rounding
    return tensor.cpu().numpy().copy()
