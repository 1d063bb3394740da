"""Fixtures the shared adapter suites use: each framework's harness, and a small linear problem."""

from __future__ import annotations

import numpy as np
import pytest

from tests.adapters.harness import load_harness
from tests.conftest import FRAMEWORKS


@pytest.fixture(params=FRAMEWORKS, scope="module")
def h(request):
    """The harness of one framework (``tests/adapters/harness.py``), every framework in turn."""
    return load_harness(request.param)


@pytest.fixture(scope="module")
def w():
    """The weights ``(6, 3)`` of the linear model ``x @ w``."""
    return np.random.default_rng(0).standard_normal((6, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def x():
    """Five inputs ``(5, 6)`` for the linear model."""
    return np.random.default_rng(1).uniform(-1, 1, size=(5, 6)).astype(np.float32)
