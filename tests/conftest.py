"""Test-wide settings: hypothesis profiles and the rule that CI never skips a framework.

Hypothesis profiles: "default" (``make test``, CI) is deterministic, a fixed number of
examples from a fixed seed and no example database; "search" (``make test-hypothesis``, or
``HYPOTHESIS_PROFILE=search``) runs many more random examples.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest

try:
    from hypothesis import settings

    # `make test` (and CI): the same examples on every clone and every run. derandomize
    # draws them from a fixed seed per test, and with no example database nothing learnt
    # on one machine changes what another runs.
    settings.register_profile(
        "default", max_examples=30, deadline=None, derandomize=True, database=None
    )
    settings.register_profile("ci", parent=settings.get_profile("default"))
    # `make test-hypothesis` (HYPOTHESIS_PROFILE=search): many more random examples, to look
    # for new failures; a failure prints the blob that replays it, and is kept in the local
    # example database (.hypothesis/) for the next search.
    settings.register_profile(
        "search", max_examples=1000, deadline=None, derandomize=False, print_blob=True
    )
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
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
