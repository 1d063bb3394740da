"""Model factories for ``saliency explain --model tests.cli.cli_models:NAME``."""

from __future__ import annotations


def tiny_torch():
    """A small RGB classifier, NCHW, with fixed seeded weights."""
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(4, 5),
    ).eval()


def digits_jax():
    """The shipped digits model as a JAX (apply_fn, params) pair."""
    from adapters import demo

    return demo.build("jax")


def broken():
    raise RuntimeError("weights not found")


def not_a_model():
    return "a string"


def digits_torch():
    """The shipped digits model as a PyTorch module."""
    from adapters import demo

    return demo.build("torch")


def lenet_torch():
    """LeNet-5 for 28 x 28 grey digits, seeded: a fixed-size ``Linear`` after ``.view``."""
    import torch

    class LeNet(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = torch.nn.Conv2d(1, 6, 5, padding=2)
            self.conv2 = torch.nn.Conv2d(6, 16, 5)
            self.fc1 = torch.nn.Linear(16 * 5 * 5, 120)
            self.fc2 = torch.nn.Linear(120, 84)
            self.fc3 = torch.nn.Linear(84, 10)

        def forward(self, x):
            x = torch.nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
            x = torch.nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
            x = x.view(x.size(0), -1)
            return self.fc3(torch.relu(self.fc2(torch.relu(self.fc1(x)))))

    torch.manual_seed(0)
    return LeNet().eval()
