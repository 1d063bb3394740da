"""Every notebook runs top to bottom on the CPU, and is stored without outputs."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.conftest import require

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))
FRAMEWORKS = {
    "quickstart_pytorch": ("torch",),
    "quickstart_tensorflow": ("tensorflow", "torch"),
    "quickstart_jax": ("jax", "flax"),
    "paper_figures": ("torch", "skimage", "scipy"),
    "evaluation": ("torch",),
    "tabular": ("torch", "sklearn"),
    "time_series": ("torch", "statsmodels"),
    "text": ("torch",),
}


def test_the_eight_notebooks_are_there():
    assert {p.stem for p in NOTEBOOKS} == set(FRAMEWORKS)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_stored_without_outputs(path):
    import nbformat

    book = nbformat.read(path, as_version=4)
    for cell in book.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, path.name


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path):
    nbformat = require("nbformat")
    nbclient = require("nbclient")
    for module in FRAMEWORKS[path.stem]:
        require(module)
    book = nbformat.read(path, as_version=4)
    started = time.perf_counter()
    client = nbclient.NotebookClient(book, timeout=300, kernel_name="python3",
                                     resources={"metadata": {"path": str(path.parents[1])}})
    client.execute()
    elapsed = time.perf_counter() - started
    images = sum("image/png" in output.get("data", {})
                 for cell in book.cells for output in cell.get("outputs", []))
    assert images >= 1, "the notebook shows no figure"
    errors = [output for cell in book.cells for output in cell.get("outputs", [])
              if output.get("output_type") == "error"]
    assert not errors
    print(f"{path.name}: {elapsed:.1f} s, {images} figures")
