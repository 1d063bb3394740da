"""numpy models with exact gradients, used as callbacks by the core tests."""

from __future__ import annotations

import numpy as np


class Counting:
    """Wraps a callback and records the row count of every call."""

    def __init__(self, fn):
        self.fn = fn
        self.calls: list[int] = []

    def __call__(self, x, target):
        self.calls.append(x.shape[0])
        return self.fn(x, target)


def linear(w: np.ndarray):
    """Gradient of ``S(x) = sum(w * x)``: ``w`` for every row."""

    def fn(x, target):
        return np.broadcast_to(w, x.shape).astype(x.dtype)

    return fn


def quadratic(a: np.ndarray):
    """Gradient of ``S(x) = x^T A x`` for symmetric ``A`` on flat inputs: ``2 A x``."""

    def fn(x, target):
        return 2.0 * x @ a

    return fn


def relu_1d(x, target):
    """Gradient of ``relu(x)`` in one dimension: 1 where x > 0."""
    return (x > 0).astype(x.dtype)


def mixed_3d(x, target):
    """Gradient of ``S(x, y, z) = 5x + y^2 + sin z``: ``(5, 2y, cos z)``."""
    columns = [np.full(x.shape[0], 5.0), 2 * x[:, 1], np.cos(x[:, 2])]
    return np.stack(columns, axis=1).astype(x.dtype)


def mixed_3d_score(x):
    return 5 * x[:, 0] + x[:, 1] ** 2 + np.sin(x[:, 2])


def per_class_linear(w: np.ndarray):
    """Gradient of ``S_c(x) = x . w[:, c]``: column ``target[i]`` of ``w`` for row i."""

    def fn(x, target):
        return w[:, target].T.astype(x.dtype)

    return fn
