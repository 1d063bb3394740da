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
