"""Test-wide settings: hypothesis profiles and the rule that CI never skips a framework."""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

try:
    from hypothesis import settings

    settings.register_profile("default", max_examples=40, deadline=None)
    settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True)
    settings.load_profile("ci" if os.environ.get("CI") == "true" else "default")
except ImportError:  # pragma: no cover - hypothesis is a dev dependency
    pass

#: The frameworks every adapter test is parametrised over.
FRAMEWORKS = ("torch", "tensorflow", "jax")


def frameworks_required() -> bool:
    """True when a missing framework must fail the run instead of skipping.

    CI sets ``CI=true``; ``SALIENCY_REQUIRE_FRAMEWORKS=1`` asks for the same anywhere,
    ``SALIENCY_REQUIRE_FRAMEWORKS=0`` lets a local run skip what is not installed.
    """
    explicit = os.environ.get("SALIENCY_REQUIRE_FRAMEWORKS")
    if explicit is not None:
        return explicit not in ("", "0", "false", "no")
    return os.environ.get("CI") == "true"


def require(module_name: str) -> ModuleType:
    """Import a framework, skipping the test when it is missing (failing in CI)."""
    try:
        return importlib.import_module(module_name)
    except ImportError as error:
        message = f"{module_name} is not installed ({error})"
        if frameworks_required():
            pytest.fail(f"{message}; CI requires every framework", pytrace=False)
        pytest.skip(message, allow_module_level=True)
