"""The package as a whole: its public names, its doctests, what importing it pulls in."""

from __future__ import annotations

import doctest
import importlib
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import visualize

REPOSITORY = Path(__file__).resolve().parents[2]
MODULES = [
    "visualize",
    "visualize.charts",
    "visualize.maps",
    "visualize.colormaps",
    "visualize.overlays",
    "visualize.render",
    "visualize.sheet",
    "visualize.tabular",
    "visualize.series",
    "visualize.text",
]
FRAMEWORKS = ["torch", "tensorflow", "jax", "keras", "flax"]


def test_all_lists_exactly_the_public_names():
    public = {name for name in dir(visualize) if not name.startswith("_")}
    modules = {"maps", "colormaps", "overlays", "render", "charts", "sheet", "tabular", "series",
               "text"}
    assert set(visualize.__all__) == public - modules
    for name in visualize.__all__:
        assert getattr(visualize, name) is not None


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples_run(module_name):
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0


def test_every_public_function_has_a_runnable_example():
    for name in visualize.__all__:
        item = getattr(visualize, name)
        if callable(item):
            assert ">>> " in (item.__doc__ or ""), f"{name} has no example"


def test_importing_visualize_pulls_in_no_framework_and_not_matplotlib():
    code = (
        "import sys, numpy as np, visualize\n"
        "visualize.grid([visualize.overlay(np.zeros((4, 4, 3)), np.zeros((4, 4)),"
        " cmap='grey')])\n"
        f"print(sorted(m for m in {FRAMEWORKS + ['matplotlib']!r} if m in sys.modules))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert completed.stdout.strip() == "[]", completed.stdout + completed.stderr


def test_the_example_figure_script_makes_a_png(tmp_path):
    script = REPOSITORY / "docs" / "figures" / "make_visualize_example.py"
    namespace = runpy.run_path(str(script))
    written = namespace["main"](tmp_path / "example.png")
    with Image.open(written) as figure:
        assert figure.mode == "RGB"
        assert figure.width > 400 and figure.height > 150
        assert len(np.unique(np.asarray(figure))) > 50
