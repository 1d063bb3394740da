"""Where ``saliency explain`` writes: unique names, refused folders, staging inside --out."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adapters.cli import main
from adapters.cli.errors import CommandError
from adapters.cli.output import staged_output, unique_stems
from tests.conftest import require

MODEL = "tests.cli.cli_models:tiny_torch"


def write_png(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, size=(6, 5, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def explain(*images: Path, out: Path, extra=()) -> int:
    return main(["explain", "--model", MODEL, "--input", *map(str, images), "--method",
                 "gradient", "--target", "1", "--out", str(out), *extra])


@pytest.mark.parametrize(("paths", "stems"), [
    (["a/three.png", "b/three.png"], ["three", "three-2"]),
    (["a/three.png", "b/three.jpg", "c/three.png"], ["three", "three-2", "three-3"]),
    # another input already has the stem three-2: the next free number is taken
    (["a/three.png", "b/three.png", "three-2.png"], ["three", "three-3", "three-2"]),
    (["Three.png", "three.png"], ["Three", "three-2"]),  # file systems that ignore case
    (["one.png", "two.png"], ["one", "two"]),
])
def test_unique_stems(paths, stems):
    assert unique_stems(paths) == stems


def test_inputs_with_the_same_name_do_not_overwrite_each_other(tmp_path, capsys):
    require("torch")
    first = write_png(tmp_path / "a" / "three.png", seed=1)
    second = write_png(tmp_path / "b" / "three.png", seed=2)
    assert explain(first, second, out=tmp_path / "both") == 0
    printed = capsys.readouterr().out
    assert f"{second}: written as three-2_*" in printed
    for stem, image in (("three", first), ("three-2", second)):
        assert explain(image, out=tmp_path / stem) == 0
        alone = np.load(tmp_path / stem / "three_gradient.npy")
        np.testing.assert_allclose(np.load(tmp_path / "both" / f"{stem}_gradient.npy"), alone,
                                   rtol=1e-4, atol=1e-4 * np.abs(alone).max())
    assert sorted(p.name for p in (tmp_path / "both").iterdir()) == sorted(
        [f"{stem}_gradient{end}" for stem in ("three", "three-2")
         for end in ("_heatmap.png", "_overlay.png", ".npy")] + ["summary.png"])


def one_line_error(capsys, message: str) -> None:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("saliency: error: ") and message in err
    assert "Traceback" not in err


def test_out_naming_a_file_is_refused(tmp_path, capsys):
    image = write_png(tmp_path / "im.png")
    out = tmp_path / "notes.txt"
    out.write_text("keep me")
    assert explain(image, out=out) == 2
    one_line_error(capsys, "--out: expected a folder, got the file")
    assert out.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["im.png", "notes.txt"]


def test_out_below_a_file_is_refused(tmp_path, capsys):
    image = write_png(tmp_path / "im.png")
    (tmp_path / "notes.txt").write_text("")
    assert explain(image, out=tmp_path / "notes.txt" / "maps") == 2
    one_line_error(capsys, "--out: cannot create the folder")


def test_unwritable_out_is_refused(tmp_path, capsys, monkeypatch):
    # root writes anywhere, so the folder's lack of write permission is what os.access
    # reports for everyone else; the command must ask it and refuse before any work
    image = write_png(tmp_path / "im.png")
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == locked
                        else real_access(path, mode))
    assert explain(image, out=locked / "maps") == 2
    one_line_error(capsys, "is not writable")
    assert not list(locked.iterdir())


def test_a_folder_in_the_way_fails_before_anything_moves(tmp_path, capsys):
    require("torch")
    image = write_png(tmp_path / "im.png")
    out = tmp_path / "out"
    (out / "im_gradient.npy").mkdir(parents=True)
    (out / "im_gradient_heatmap.png").write_bytes(b"old")
    assert explain(image, out=out) == 2
    one_line_error(capsys, "a folder of that name is in the way")
    assert sorted(p.name for p in out.iterdir()) == ["im_gradient.npy",
                                                     "im_gradient_heatmap.png"]
    assert (out / "im_gradient_heatmap.png").read_bytes() == b"old"  # not replaced
    assert not any((out / "im_gradient.npy").iterdir())


def test_out_dot_stages_inside_the_current_folder(tmp_path, monkeypatch):
    require("torch")
    work = tmp_path / "work"
    image = write_png(work / "im.png")
    monkeypatch.chdir(work)
    staged_in = []
    make = tempfile.mkdtemp

    def recording(*args, **kwargs):
        staged_in.append(Path(kwargs["dir"]).resolve())
        return make(*args, **kwargs)

    monkeypatch.setattr(tempfile, "mkdtemp", recording)
    assert explain(Path("im.png"), out=Path(".")) == 0
    assert staged_in == [work.resolve()]
    assert sorted(p.name for p in work.iterdir()) == [
        "im.png", "im_gradient.npy", "im_gradient_heatmap.png", "im_gradient_overlay.png",
        "summary.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]
    del image


def test_a_failed_run_removes_the_folders_it_created(tmp_path):
    with pytest.raises(RuntimeError, match="model failed"):
        with staged_output(tmp_path / "new" / "maps") as staging:
            staging.npy("zeros.npy", np.zeros(2))
            raise RuntimeError("model failed")
    assert not (tmp_path / "new").exists()


def test_a_failed_run_keeps_an_existing_folder_as_it_was(tmp_path):
    out = tmp_path / "maps"
    out.mkdir()
    (out / "old.npy").write_bytes(b"old")
    with pytest.raises(CommandError, match="in the way"):
        with staged_output(out) as staging:
            staging.npy("a.npy", np.zeros(2))
            staging.npy("b.npy", np.zeros(2))
            (out / "b.npy").mkdir()
    assert sorted(p.name for p in out.iterdir()) == ["b.npy", "old.npy"]


@pytest.mark.parametrize("command", ["demo", "explain"])
def test_negative_seed_is_one_line_and_exit_2(tmp_path, capsys, command):
    image = write_png(tmp_path / "im.png")
    argv = ["demo"] if command == "demo" else ["explain", "--model", MODEL, "--input", str(image)]
    out = tmp_path / "out"
    assert main([*argv, "--seed", "-1", "--out", str(out)]) == 2
    one_line_error(capsys, "--seed: expected a non-negative integer, got -1")
    assert not out.exists()
