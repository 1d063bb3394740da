"""The demo network in PyTorch (NCHW); imports torch.

Used by :func:`adapters.demo.build` (``build("torch")``) and by the training script.
"""

from __future__ import annotations

import numpy as np

try:
    import torch
    from torch import nn
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "adapters.demo.build('torch') needs PyTorch, which is not installed; install it "
        'with `pip install "saliency-toolkit[torch]"` (or `pip install torch`)'
    ) from error

from adapters.demo import ARCHITECTURE

__all__ = ["LAYER_SPLIT", "DigitsCNN", "build_model", "export_weights"]


class DigitsCNN(nn.Module):
    """The demo network (see :mod:`adapters.demo`), taking NCHW batches ``(n, 1, 28, 28)``.

    Every layer is a module named as in :data:`adapters.demo.ARCHITECTURE`
    (``conv1`` ... ``relu3``, ``gap``, ``fc``), so hooks can address ``model.conv3`` or
    ``model.relu3``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, kernel_size=3, stride=1, padding=1)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.AvgPool2d(2)
        self.conv2 = nn.Conv2d(16, 32, kernel_size=3, stride=1, padding=1)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.AvgPool2d(2)
        self.conv3 = nn.Conv2d(32, 32, kernel_size=3, stride=1, padding=1)
        self.relu3 = nn.ReLU()
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.pool1(self.relu1(self.conv1(x)))
        h = self.pool2(self.relu2(self.conv2(h)))
        h = self.relu3(self.conv3(h))
        return self.fc(torch.flatten(self.gap(h), 1))


#: How :class:`adapters.models.Model` reaches a named layer: ``None``, since the layers
#: are named modules (``model.conv3``) and the adapter finds them by name.
LAYER_SPLIT = None


def build_model(weights: dict[str, np.ndarray]) -> DigitsCNN:
    """A float32 :class:`DigitsCNN` in eval mode with ``weights`` (HWIO kernels) loaded."""
    state = {}
    for layer in ARCHITECTURE:
        if layer.kind == "conv":
            kernel = np.asarray(weights[f"{layer.name}_w"], dtype=np.float32)
            state[f"{layer.name}.weight"] = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())
        elif layer.kind == "dense":
            kernel = np.asarray(weights[f"{layer.name}_w"], dtype=np.float32)
            state[f"{layer.name}.weight"] = torch.from_numpy(kernel.T.copy())
        else:
            continue
        bias = np.asarray(weights[f"{layer.name}_b"], dtype=np.float32)
        state[f"{layer.name}.bias"] = torch.from_numpy(bias.copy())
    model = DigitsCNN()
    model.load_state_dict(state, strict=True)
    return model.float().eval()


def export_weights(model: DigitsCNN) -> dict[str, np.ndarray]:
    """The weights of ``model`` as float32 numpy arrays: HWIO kernels, ``fc_w`` (in, out)."""
    weights: dict[str, np.ndarray] = {}
    for layer in ARCHITECTURE:
        if layer.kind not in ("conv", "dense"):
            continue
        module = getattr(model, layer.name)
        kernel = module.weight.detach().cpu().numpy().astype(np.float32)
        kernel = kernel.transpose(2, 3, 1, 0) if layer.kind == "conv" else kernel.T
        weights[f"{layer.name}_w"] = np.ascontiguousarray(kernel)
        weights[f"{layer.name}_b"] = module.bias.detach().cpu().numpy().astype(np.float32)
    return weights
