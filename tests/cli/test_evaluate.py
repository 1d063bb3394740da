"""``saliency evaluate``: the table and the file hold the metrics' own numbers."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adapters import demo
from adapters.cli import main
from saliency_core import metrics, vanilla_gradient
from tests.conftest import require


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """Three shipped digits as PNG files, and masks of their strokes as .npy and PNG."""
    folder = tmp_path_factory.mktemp("digits")
    images, _ = demo.load_samples()
    paths = {"images": [], "npy": [], "png": []}
    for i in range(3):
        grey = (images[i, :, :, 0] * 255).round().astype(np.uint8)
        Image.fromarray(grey).save(folder / f"d{i}.png")
        np.save(folder / f"m{i}.npy", grey > 80)
        Image.fromarray(((grey > 80) * 255).astype(np.uint8)).save(folder / f"m{i}.png")
        paths["images"].append(str(folder / f"d{i}.png"))
        paths["npy"].append(str(folder / f"m{i}.npy"))
        paths["png"].append(str(folder / f"m{i}.png"))
    return paths


def test_evaluate_reports_the_metrics_of_the_maps(digits, tmp_path, capsys):
    require("torch")
    out = tmp_path / "result.csv"
    status = main(["evaluate", "--model", "tests.cli.cli_models:digits_torch", "--input",
                   *digits["images"], "--channels", "1", "--method", "gradient", "guided",
                   "--masks", *digits["npy"], "--deletion-steps", "8", "--out", str(out)])
    assert status == 0
    printed = capsys.readouterr().out
    assert "deletion AUC" in printed and "pointing game" in printed and f"wrote {out}" in printed
    with out.open() as stream:
        rows = list(csv.DictReader(stream))
    assert [(r["image"], r["method"]) for r in rows] == [
        (image, method) for method in ("gradient", "guided") for image in digits["images"]]
    # the same numbers, computed directly from the toolkit
    model = demo.model("torch")
    x = np.stack([np.asarray(Image.open(p), np.float32)[..., None] / 255 for p in digits["images"]])
    target = model.predict_fn()(x).argmax(axis=1)
    shown = np.abs(vanilla_gradient(model.gradient_fn(), x, target)).sum(axis=-1)
    masks = np.stack([np.load(p) for p in digits["npy"]])
    expected = {
        "deletion AUC": metrics.deletion(model.predict_fn(), x, shown, target, steps=8,
                                         score="softmax", channel_axis=-1).auc,
        "sparseness": metrics.sparseness(shown),
        "relevance mass": metrics.relevance_mass_accuracy(shown, masks),
    }
    for name, values in expected.items():
        got = [float(r[name]) for r in rows if r["method"] == "gradient"]
        np.testing.assert_allclose(got, values, rtol=1e-9, err_msg=name)
    assert [int(r["target"]) for r in rows[:3]] == target.tolist()


def test_png_masks_equal_npy_masks_and_json_output(digits, tmp_path):
    require("torch")
    results = []
    for kind, name in (("npy", "a.json"), ("png", "b.json")):
        out = tmp_path / name
        assert main(["evaluate", "--model", "tests.cli.cli_models:digits_torch", "--input",
                     *digits["images"], "--channels", "1", "--method", "gradient",
                     "--masks", *digits[kind], "--deletion-steps", "4", "--out", str(out)]) == 0
        results.append(json.loads(out.read_text()))
    assert results[0] == results[1] and len(results[0]) == 3
    assert set(results[0][0]) >= {"image", "method", "target", "relevance rank"}


@pytest.mark.parametrize(("extra", "message"), [
    (["--method", "lrp"], "--method: expected one of"),
    (["--method", "grad-cam"], "Grad-CAM needs --layer"),
    (["--deletion-steps", "0"], "--deletion-steps: expected a positive integer, got 0"),
    (["--stability", "-1"], "--stability: expected a non-negative integer"),
    (["--masks", "only-one.npy"], r"--masks: expected one mask per image \(3\), got 1"),
    (["--baseline", "nan"], "--baseline: expected a finite number"),
])
def test_bad_input_is_one_line_and_exit_2(digits, tmp_path, capsys, extra, message):
    status = main(["evaluate", "--model", "tests.cli.cli_models:digits_torch", "--input",
                   *digits["images"], "--channels", "1", "--out", str(tmp_path / "r.csv"),
                   *extra])
    err = capsys.readouterr().err
    assert status == 2 and err.count("\n") == 1
    assert re.search(message, err), err
    assert not (tmp_path / "r.csv").exists()


def test_masks_of_another_size_are_refused(digits, tmp_path, capsys):
    require("torch")
    bad = tmp_path / "small.npy"
    np.save(bad, np.ones((5, 5), bool))
    status = main(["evaluate", "--model", "tests.cli.cli_models:digits_torch", "--input",
                   digits["images"][0], "--channels", "1", "--masks", str(bad),
                   "--out", str(tmp_path / "r.csv")])
    assert status == 2
    assert r"expected a mask of shape (28, 28)" in capsys.readouterr().err
    assert not Path(tmp_path / "r.csv").exists()
