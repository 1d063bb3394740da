"""The ``saliency`` command through ``main(argv)``, the console script and ``python -m``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adapters import demo
from adapters.cli import main
from adapters.cli.demo import FIGURES, make_scene, sample_sizes, vanilla_vs_smoothgrad
from tests.conftest import require

REPOSITORY = Path(__file__).resolve().parents[2]

DEMO_FIGURES = {
    "vanilla_vs_smoothgrad.png", "noise_levels.png", "sample_sizes.png",
    "visualization_techniques.png", "combined_methods.png", "discriminativity.png",
    "cam_methods.png", "training_noise.png", "more_methods.png",
}
FRAMEWORK_MODULES = ("torch", "tensorflow", "keras", "jax", "flax")


def not_blank(path: Path) -> bool:
    pixels = np.asarray(Image.open(path).convert("L"), dtype=np.float64)
    return pixels.std() > 10


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    require("torch")
    out = tmp_path_factory.mktemp("demo") / "figures"
    assert main(["demo", "--framework", "torch", "--out", str(out), "--seed", "1"]) == 0
    return out


@pytest.mark.slow
def test_demo_writes_every_figure(demo_run, capsys):
    assert {p.name for p in demo_run.iterdir()} == DEMO_FIGURES == {f[0] for f in FIGURES}
    for name in DEMO_FIGURES:
        assert not_blank(demo_run / name), name
    # a grid of 4 digits x (input + 6 noise levels), 96-pixel cells plus labels
    width, height = Image.open(demo_run / "noise_levels.png").size
    assert width > 7 * 96 and height > 4 * 96
    assert not list(demo_run.glob(".saliency-partial-*"))
    assert not list(demo_run.parent.glob(".*partial*"))


@pytest.mark.slow
def test_demo_is_seeded_and_writes_what_each_figure_function_draws(demo_run):
    """A fresh scene with the run's seed draws the saved figures pixel for pixel."""
    scene = make_scene(demo.model("torch"), seed=1)
    for name, figure in (("vanilla_vs_smoothgrad.png", vanilla_vs_smoothgrad),
                         ("sample_sizes.png", sample_sizes)):
        saved = np.asarray(Image.open(demo_run / name).convert("RGB"))
        np.testing.assert_array_equal(np.asarray(figure(scene).convert("RGB")), saved)
    other = make_scene(scene.model, seed=2)
    np.testing.assert_array_equal(other.vanilla, scene.vanilla)
    assert not np.allclose(other.smooth, scene.smooth)


def write_png(path: Path, size=(12, 10), seed=0) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, size=(*size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


@pytest.mark.parametrize("method", ["smoothgrad", "gradient", "integrated-gradients", "vargrad"])
def test_explain_torch_module_spec(tmp_path, capsys, method):
    require("torch")
    images = [write_png(tmp_path / f"im{i}.png", seed=i) for i in range(2)]
    out = tmp_path / "out"
    status = main(["explain", "--model", "tests.cli.cli_models:tiny_torch", "--input",
                   *map(str, images), "--method", method, "--n-samples", "4", "--steps", "4",
                   "--target", "3", "--out", str(out)])
    assert status == 0
    for i in range(2):
        raw = np.load(out / f"im{i}_{method}.npy")
        assert raw.shape == (12, 10, 3) and np.isfinite(raw).all()
        heat = Image.open(out / f"im{i}_{method}_heatmap.png")
        assert heat.size == (190, 228)  # 19 x: the smallest whole factor reaching 224
        assert Image.open(out / f"im{i}_{method}_overlay.png").size == (190, 228)
    assert "class 3" in capsys.readouterr().out


def test_explain_grad_cam_at_a_named_layer(tmp_path, capsys):
    require("torch")
    image = write_png(tmp_path / "im.png")
    out = tmp_path / "out"
    assert main(["explain", "--model", "tests.cli.cli_models:tiny_torch", "--input", str(image),
                 "--method", "grad-cam++", "--layer", "1", "--out", str(out)]) == 0
    raw = np.load(out / "im_grad-cam++.npy")
    assert raw.shape == (12, 10) and (raw >= 0).all()
    assert "im.png: Grad-CAM++ of class" in capsys.readouterr().out


@pytest.mark.slow
def test_explain_keras_torchscript_and_exported_files_give_the_same_map(tmp_path):
    keras = require("keras")
    torch = require("torch")
    from adapters import demo

    image = (demo.load_samples()[0][3, :, :, 0] * 255).astype(np.uint8)
    path = tmp_path / "digit.png"
    Image.fromarray(image).save(path)
    keras_file = tmp_path / "digits.keras"
    demo.build("tensorflow").save(keras_file)
    script_file = tmp_path / "digits.pt"
    torch.jit.trace(demo.build("torch"), torch.zeros(1, 1, 28, 28)).save(str(script_file))
    exported_file = tmp_path / "digits.pt2"
    batch = torch.export.Dim("batch", min=1, max=1024)
    program = torch.export.export(demo.build("torch"), (torch.zeros(2, 1, 28, 28),),
                                  dynamic_shapes=({0: batch},))
    torch.export.save(program, str(exported_file))
    maps = {}
    for name, spec in (("keras", keras_file), ("script", script_file),
                       ("exported", exported_file)):
        out = tmp_path / name
        assert main(["explain", "--model", str(spec), "--input", str(path), "--channels", "1",
                     "--n-samples", "8", "--out", str(out)]) == 0
        maps[name] = np.load(out / "digit_smoothgrad.npy")
    assert maps["keras"].shape == (28, 28, 1)
    for name in ("keras", "exported"):
        np.testing.assert_allclose(maps[name], maps["script"], rtol=1e-4,
                                   atol=1e-4 * np.abs(maps["script"]).max())
    del keras


def test_explain_jax_pair_with_predicted_class(tmp_path, capsys):
    require("jax")
    path = tmp_path / "digit.png"
    from adapters import demo

    Image.fromarray((demo.load_samples()[0][0, :, :, 0] * 255).astype(np.uint8)).save(path)
    out = tmp_path / "out"
    assert main(["explain", "--model", "tests.cli.cli_models:digits_jax", "--input", str(path),
                 "--channels", "1", "--n-samples", "4", "--out", str(out)]) == 0
    label = demo.load_samples()[1][0]
    assert f"class {label}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["explain", "--model", "tests.cli.cli_models:tiny_torch", "--input", "missing.png"],
         "--input: no such file: missing.png"),
        (["explain", "--model", "tests.cli.cli_models:tiny_torch", "--input", "{garbage}"],
         "cannot read"),
        (["explain", "--model", "tests.cli.cli_models:tiny_torch", "--input", "{image}",
          "--framework", "mxnet"], "--framework: expected one of torch, tensorflow, jax"),
        (["explain", "--model", "tests.cli.cli_models:tiny_torch", "--input", "{image}",
          "--method", "lrp"], "--method: expected one of gradient, smoothgrad"),
        (["explain", "--model", "tests.cli.cli_models:tiny_torch", "--input", "{image}",
          "--target", "5"], r"--target: expected a class in [0, 4], got 5"),
        (["explain", "--model", "no_such_module:make", "--input", "{image}"],
         "could not import 'no_such_module'"),
        (["explain", "--model", "tests.cli.cli_models:broken", "--input", "{image}"],
         "RuntimeError: weights not found"),
        (["explain", "--model", "tests.cli.cli_models:not_a_model", "--input", "{image}"],
         "unusable model"),
        (["explain", "--model", "model.caffemodel", "--input", "{image}"],
         "expected module:function"),
        (["explain", "--model", "missing.keras", "--input", "{image}"], "no such file"),
        (["explain", "--model", "tests.cli.cli_models:tiny_torch", "--input", "{image}",
          "--method", "grad-cam"], "Grad-CAM needs --layer"),
        # refused before the model is built (this one raises when called)
        (["explain", "--model", "tests.cli.cli_models:broken", "--input", "{image}",
          "--method", "smooth-grad-cam++"], "Smooth Grad-CAM++ needs --layer NAME"),
        (["explain", "--model", "tests.cli.cli_models:tiny_torch", "--input", "{image}",
          "--n-samples", "0"], "--n-samples: expected a positive integer, got 0"),
        (["demo", "--framework", "caffe"], "--framework: expected one of"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, argv, message):
    require("torch")
    image = write_png(tmp_path / "image.png")
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"not a png at all")
    argv = [a.format(image=image, garbage=garbage) for a in argv]
    out = tmp_path / "out"
    assert main([*argv, "--out", str(out)] if argv[0] != "frobnicate" else argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("saliency: error: ")
    assert message in err
    assert "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())  # the staging folder included
    assert not list(tmp_path.glob(".*partial*"))


def test_importing_the_command_imports_no_framework():
    code = (
        "import json, sys\n"
        "import adapters.cli, adapters.cli.demo, adapters.cli.explain\n"
        "adapters.cli.build_parser()\n"
        f"print(json.dumps([m for m in {FRAMEWORK_MODULES!r} if m in sys.modules]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=REPOSITORY)
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_python_dash_m_runs_the_command():
    result = subprocess.run(
        [sys.executable, "-m", "adapters.cli", "demo", "--framework", "caffe"],
        capture_output=True, text=True, cwd=REPOSITORY,
    )
    assert result.returncode == 2
    assert result.stderr == (
        "saliency: error: --framework: expected one of torch, tensorflow, jax, got 'caffe'\n"
    )


@pytest.mark.slow
def test_console_script(tmp_path):
    require("torch")
    script = shutil.which("saliency", path=os.path.dirname(sys.executable))
    assert script is not None, "the saliency console script is not installed (pip install -e .)"
    result = subprocess.run([script, "explain", "--model", "missing.keras", "--input", "x.png"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "saliency: error: --input: no such file: x.png"
    image = write_png(tmp_path / "im.png")
    result = subprocess.run(
        [script, "explain", "--model", "tests.cli.cli_models:tiny_torch", "--input", str(image),
         "--n-samples", "2", "--out", str(tmp_path / "out")],
        capture_output=True, text=True, cwd=REPOSITORY,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out" / "im_smoothgrad.npy").is_file()


def test_a_framework_that_is_not_installed_is_one_line_and_exit_2(tmp_path, monkeypatch,
                                                                   capsys):
    from adapters.cli import demo as demo_command

    def missing(framework, **_):
        raise ImportError('adapters.torch needs PyTorch, which is not installed; install it '
                          'with `pip install "saliency-toolkit[torch]"`')

    monkeypatch.setattr(demo_command.digits, "model", missing)
    assert main(["demo", "--out", str(tmp_path / "figures")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "saliency-toolkit[torch]" in err
    assert not (tmp_path / "figures").exists()
