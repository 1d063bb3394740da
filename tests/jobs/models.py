"""A tiny PyTorch classifier for the job tests, made by a factory (as workers load models).

``tiny_model()`` builds the same weights every time (seeded). Its forward pass can be told
to fail, for the tests of interruptions and retries, in two ways:

- in this process: :data:`FAULTS` ``["raise_after"] = k`` makes the (k+1)-th forward call
  from now raise ``RuntimeError`` (a kill half-way through a job, simulated);
- across processes (Ray workers): a file ``raise`` or ``exit`` in the folder named by the
  environment variable :data:`TRIGGER_ENV` makes the next forward call, in whichever
  process claims the file first (``os.rename``, atomic), raise or ``os._exit(1)``: once.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import torch

#: The environment variable naming the folder of the cross-process triggers.
TRIGGER_ENV = "SALIENCY_JOBS_TEST_TRIGGERS"

#: The environment variable giving seconds to sleep in every forward call (a slow model,
#: for the test that kills a job's process while it runs).
SLEEP_ENV = "SALIENCY_JOBS_TEST_SLEEP"

#: In-process faults: ``raise_after`` (None, or forward calls to allow before raising).
FAULTS: dict[str, int | None] = {"raise_after": None}

#: Classes of the tiny model.
CLASSES = 3


def _claim(folder: str, name: str) -> bool:
    """Whether this process claimed the trigger file ``name`` (only one process can)."""
    source = Path(folder) / name
    try:
        os.rename(source, Path(folder) / f"{name}.claimed-{os.getpid()}")
    except FileNotFoundError:
        return False
    return True


class TinyNet(torch.nn.Module):
    """conv 3x3 (3 -> 4) - ReLU - mean over pixels - linear (4 -> 3): NCHW images."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.head = torch.nn.Linear(4, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        budget = FAULTS["raise_after"]
        if budget is not None:
            if budget <= 0:
                raise RuntimeError("simulated kill")
            FAULTS["raise_after"] = budget - 1
        if os.environ.get(SLEEP_ENV):
            time.sleep(float(os.environ[SLEEP_ENV]))
        folder = os.environ.get(TRIGGER_ENV)
        if folder:
            if _claim(folder, "raise"):
                raise RuntimeError("worker failure, once")
            if _claim(folder, "exit"):
                os._exit(1)
        features = torch.relu(self.conv(x)).mean(dim=(2, 3))
        return self.head(features)


def tiny_model() -> TinyNet:
    """The tiny classifier, with the same weights every time, in eval mode."""
    generator = torch.Generator().manual_seed(0)
    net = TinyNet()
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator))
    return net.eval()
