"""Many images at once: folders and globs, --batch-size, the progress bar, display sizes,
the summary sheet, and nothing written when a run fails."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from adapters.cli import build_parser, explain, main
from adapters.cli.errors import CommandError
from adapters.cli.explain import SHEET_CELL_SIZE, compute_maps, rows_per_image
from adapters.cli.images import expand_inputs
from adapters.cli.methods import METHODS, Options, compute
from adapters.cli.output import heat, ranked
from tests.conftest import require
from visualize import apply_colormap

MODEL = "tests.cli.test_batch:counting_torch"

#: The number of rows of every call of the counting model, in order.
CALLS: list[int] = []
#: Calls after which the counting model refuses its input (None: never).
FAIL_AFTER: list[int | None] = [None]


def counting_torch():
    """A small RGB classifier (5 classes) that records the rows of every call."""
    import torch

    class Counting(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
            self.head = torch.nn.Sequential(torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                            torch.nn.Flatten(), torch.nn.Linear(4, 5))

        def forward(self, x):
            CALLS.append(int(x.shape[0]))
            if FAIL_AFTER[0] is not None and len(CALLS) > FAIL_AFTER[0]:
                raise ValueError("the model refused its input")
            return self.head(self.conv(x))

    return Counting().eval()


@pytest.fixture(autouse=True)
def fresh_counts():
    CALLS.clear()
    FAIL_AFTER[0] = None
    yield
    CALLS.clear()
    FAIL_AFTER[0] = None


def write_png(path: Path, size=(6, 5), seed=0, mode="RGB") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (*size, 3) if mode == "RGB" else size
    pixels = np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def run(*argv: str) -> int:
    return main(["explain", "--model", MODEL, *argv])


def one_line_error(capsys, message: str) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("saliency: error: "), err
    assert message in err and "Traceback" not in err, err
    return err


# --- --input: files, folders, globs ------------------------------------------------------

def test_a_folder_gives_its_images_in_natural_order_and_counts_the_rest(tmp_path):
    for name in ("10.png", "2.png", "1.JPG", "b.tif", ".hidden.png"):
        write_png(tmp_path / name, mode="RGB" if name.endswith("png") else "L")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "model.h5").write_bytes(b"\x89HDF")
    (tmp_path / "sub").mkdir()
    write_png(tmp_path / "sub" / "0.png")  # not inside: folders are not searched deeper
    found = expand_inputs([str(tmp_path)])
    assert [Path(p).name for p in found.paths] == ["1.JPG", "2.png", "10.png", "b.tif"]
    assert found.skipped == 3 and found.repeated == 0  # .hidden.png, notes.txt, model.h5


def test_globs_are_expanded_at_any_depth_and_folders_they_match_too(tmp_path):
    for relative in ("a/x1.png", "a/x2.jpg", "a/deep/x3.png", "b/y.png", "b/notes.txt"):
        target = tmp_path / relative
        if relative.endswith(".txt"):
            target.write_text("x")
        else:
            write_png(target)

    def names(found):
        return [Path(p).relative_to(tmp_path).as_posix() for p in found.paths]

    assert names(expand_inputs([str(tmp_path / "a" / "*.png")])) == ["a/x1.png"]
    # sorted by path: a/deep/ before a/x1.png
    assert names(expand_inputs([str(tmp_path / "**" / "x*.png")])) == ["a/deep/x3.png",
                                                                       "a/x1.png"]
    # a pattern matching folders stands for their images; b's text file is counted
    found = expand_inputs([str(tmp_path / "?")])
    assert names(found) == ["a/x1.png", "a/x2.jpg", "b/y.png"] and found.skipped == 1
    # a file named twice (on its own and by a pattern) is read once
    found = expand_inputs([str(tmp_path / "b" / "y.png"), str(tmp_path / "b" / "*")])
    assert names(found) == ["b/y.png"] and found.repeated == 1 and found.skipped == 1


def test_an_existing_name_with_glob_characters_is_a_file_and_a_named_file_is_kept(tmp_path):
    odd = write_png(tmp_path / "scan[1].png")
    write_png(tmp_path / "scan1.png")
    assert expand_inputs([str(odd)]).paths == [str(odd)]
    misnamed = tmp_path / "photo.data"
    misnamed.write_bytes(b"x")
    assert expand_inputs([str(misnamed)]).paths == [str(misnamed)]  # read, then refused


@pytest.mark.parametrize(("item", "message"), [
    ("nothing/*.png", "--input: no image files match"),
    ("empty", "--input: no image files in the folder"),
    ("texts", "(2 other files skipped)"),
    ("missing.png", "--input: no such file: "),
])
def test_inputs_that_name_no_image_are_one_line_and_exit_2(tmp_path, capsys, item, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "texts").mkdir()
    for name in ("a.txt", "b.csv"):
        (tmp_path / "texts" / name).write_text("x")
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("*", r"\*").replace("[", r"\[")):
        expand_inputs([str(tmp_path / item)])
    out = tmp_path / "out"
    assert run("--input", str(tmp_path / item), "--out", str(out)) == 2
    one_line_error(capsys, message)
    assert not out.exists() and CALLS == []  # refused before the model ran


def test_a_folder_runs_end_to_end_and_says_what_it_skipped(tmp_path, capsys):
    require("torch")
    for i in range(3):
        write_png(tmp_path / "images" / f"im{i}.png", seed=i)
    (tmp_path / "images" / "readme.md").write_text("x")
    out = tmp_path / "out"
    assert run("--input", str(tmp_path / "images"), "--method", "gradient", "--out",
               str(out)) == 0
    printed = capsys.readouterr().out
    assert "--input: 3 images (1 file that is not an image skipped)" in printed
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"im{i}_gradient{end}" for i in range(3)
         for end in ("_heatmap.png", "_overlay.png", ".npy")] + ["summary.png"])


# --- --batch-size ------------------------------------------------------------------------

METHOD_ARGS = {
    "gradient": [],
    "smoothgrad": ["--n-samples", "4"],
    "integrated-gradients": ["--steps", "5"],
    "smoothgrad-ig": ["--n-samples", "2", "--steps", "3"],
    "grad-cam": ["--layer", "conv"],
    "smooth-grad-cam++": ["--layer", "conv", "--n-samples", "3"],
}


@pytest.mark.parametrize("method", list(METHOD_ARGS))
@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_no_model_call_exceeds_the_batch_size(tmp_path, method, batch_size):
    require("torch")
    n_images = 7
    images = [write_png(tmp_path / f"im{i}.png", seed=i) for i in range(n_images)]
    assert run("--input", *map(str, images), "--method", method, *METHOD_ARGS[method],
               "--batch-size", str(batch_size), "--quiet", "--out", str(tmp_path / "out")) == 0
    assert CALLS and max(CALLS) <= batch_size
    options = explain.options_of(build_parser().parse_args(
        ["explain", "--model", MODEL, "--input", "x", *METHOD_ARGS[method]]))
    # the prediction (every image once), then each image's rows, closed form:
    # n_samples noisy copies for SmoothGrad, steps path points for integrated gradients
    rows = {"gradient": 1, "smoothgrad": 4, "integrated-gradients": 5, "smoothgrad-ig": 6,
            "grad-cam": 1, "smooth-grad-cam++": 3}[method]
    assert rows_per_image(METHODS[method], options) == rows
    assert sum(CALLS) == n_images + n_images * rows


def test_many_images_with_a_small_batch_calls_the_model_in_full_batches(tmp_path):
    require("torch")
    images = [write_png(tmp_path / f"im{i}.png", seed=i) for i in range(20)]
    assert run("--input", *map(str, images), "--method", "gradient", "--batch-size", "8",
               "--quiet", "--out", str(tmp_path / "out")) == 0
    # 20 predictions and 20 gradients, 8 a call: 8, 8, 4 twice
    assert CALLS == [8, 8, 4, 8, 8, 4]


def test_grouped_maps_equal_one_call_on_all_images(tmp_path):
    """SmoothGrad's noise is one stream over the groups, so the maps do not change."""
    require("torch")
    from adapters.models import Model

    model = Model(counting_torch())
    x = np.random.default_rng(0).random((9, 6, 5, 3), dtype=np.float32)
    target = np.arange(9) % 5
    for name in ("smoothgrad", "vargrad", "integrated-gradients"):
        method = METHODS[name]
        whole = compute(method, model, x, target, Options(n_samples=5, steps=4, seed=3))
        CALLS.clear()
        grouped = compute_maps(method, model, x, target,
                               Options(n_samples=5, steps=4, seed=3, batch_size=7))
        assert max(CALLS) <= 7 and len(CALLS) > 1
        np.testing.assert_allclose(grouped, whole, rtol=1e-5, atol=1e-6 * np.abs(whole).max())
    other = compute_maps(METHODS["smoothgrad"], model, x, target, Options(n_samples=5, seed=4))
    assert not np.allclose(other, whole)  # the seed is what decides


def test_a_failure_in_a_later_batch_writes_nothing(tmp_path, capsys):
    require("torch")
    images = [write_png(tmp_path / f"im{i}.png", seed=i) for i in range(6)]
    FAIL_AFTER[0] = 3  # the prediction (2 calls) and the first gradient call succeed
    out = tmp_path / "new" / "out"
    assert run("--input", *map(str, images), "--method", "gradient", "--batch-size", "3",
               "--out", str(out)) == 2
    one_line_error(capsys, "the model refused its input")
    assert len(CALLS) == 4
    assert not (tmp_path / "new").exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    FAIL_AFTER[0], CALLS[:] = 3, []
    assert run("--input", *map(str, images), "--method", "gradient", "--batch-size", "3",
               "--out", str(existing)) == 2
    assert list(existing.iterdir()) == []  # no staging folder left either


def test_evaluate_takes_a_folder_and_keeps_to_the_batch_size(tmp_path, capsys):
    require("torch")
    for i in range(5):
        write_png(tmp_path / "images" / f"im{i}.png", seed=i)
    out = tmp_path / "metrics.csv"
    assert main(["evaluate", "--model", MODEL, "--input", str(tmp_path / "images"),
                 "--method", "gradient", "smoothgrad", "--n-samples", "3", "--deletion-steps",
                 "4", "--stability", "2", "--batch-size", "4", "--quiet", "--out",
                 str(out)]) == 0
    assert CALLS and max(CALLS) <= 4
    rows = out.read_text().splitlines()[1:]
    assert [row.split(",")[:2] for row in rows] == [
        [str(tmp_path / "images" / f"im{i}.png"), method]
        for method in ("gradient", "smoothgrad") for i in range(5)]
    assert capsys.readouterr().err == ""  # no bar of SmoothGrad's own either


# --- the progress bar --------------------------------------------------------------------

class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("quiet", [False, True])
def test_progress_bar_on_a_terminal_unless_quiet(tmp_path, monkeypatch, capsys, quiet):
    require("torch")
    images = [write_png(tmp_path / f"im{i}.png", seed=i) for i in range(5)]
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert run("--input", *map(str, images), "--method", "gradient", "--batch-size", "2",
               "--out", str(tmp_path / "out"), *(["--quiet"] if quiet else [])) == 0
    bar = terminal.getvalue()
    if quiet:
        assert bar == ""
    else:
        assert "gradient:" in bar and "0/5" in bar and "image" in bar
    printed = capsys.readouterr().out
    assert "\r" not in printed and "image/s" not in printed and "5/5" not in printed
    lines = printed.strip().splitlines()
    if quiet:  # one line: where everything went
        assert lines == [f"wrote 15 files for 5 images and summary.png in {tmp_path / 'out'}"]
    else:
        assert len(lines) == 5 * 4 + 1


@pytest.mark.parametrize("quiet", [False, True])
def test_evaluate_bar_over_the_methods_on_a_terminal_unless_quiet(tmp_path, monkeypatch,
                                                                  quiet):
    require("torch")
    image = write_png(tmp_path / "im.png")
    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["evaluate", "--model", MODEL, "--input", str(image), "--method", "gradient",
                 "guided", "--deletion-steps", "2", "--out", str(tmp_path / "m.csv"),
                 *(["--quiet"] if quiet else [])]) == 0
    assert ("evaluate:" in terminal.getvalue()) is not quiet


def test_no_progress_bar_when_stderr_is_not_a_terminal(tmp_path, capsys):
    require("torch")
    images = [write_png(tmp_path / f"im{i}.png", seed=i) for i in range(3)]
    assert run("--input", *map(str, images), "--method", "gradient", "--out",
               str(tmp_path / "out")) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert "\r" not in captured.out


# --- display sizes -----------------------------------------------------------------------

@pytest.mark.parametrize(("size", "extra", "shown"), [
    ((28, 28), [], (224, 224)),  # 8 x
    ((48, 64), [], (256, 192)),  # 4 x: the smallest whole factor reaching 224
    ((300, 200), [], (200, 300)),  # large enough already: the model's resolution
    ((28, 28), ["--display-size", "56"], (56, 56)),
    ((28, 20), ["--display-size", "1"], (20, 28)),
])
def test_heat_maps_and_overlays_are_enlarged_and_the_npy_is_not(tmp_path, size, extra, shown):
    require("torch")
    image = write_png(tmp_path / "im.png", size=size, mode="L")
    out = tmp_path / "out"
    assert run("--input", str(image), "--method", "gradient", "--out", str(out), *extra) == 0
    raw = np.load(out / "im_gradient.npy")
    assert raw.shape == (*size, 3)
    factor = shown[0] // size[1]
    expected = np.rint(heat(raw[None])[0] * 255).astype(np.uint8)
    heat_png = np.asarray(Image.open(out / "im_gradient_heatmap.png"))
    assert Image.open(out / "im_gradient_heatmap.png").size == shown
    # nearest neighbour by a whole factor: every model pixel is a factor x factor square
    np.testing.assert_array_equal(heat_png, np.kron(expected, np.ones((factor, factor),
                                                                       np.uint8)))
    overlay = Image.open(out / "im_gradient_overlay.png")
    assert overlay.size == shown and overlay.mode == "RGB"
    blocks = np.asarray(overlay).reshape(size[0], factor, size[1], factor, 3)
    assert (blocks == blocks[:, :1, :, :1]).all()


def test_xrai_heat_maps_show_the_ranking_not_magnitudes(tmp_path):
    require("torch")
    image = write_png(tmp_path / "im.png", size=(24, 24), seed=3)
    out = tmp_path / "out"
    assert run("--input", str(image), "--method", "xrai", "--steps", "4", "--display-size",
               "24", "--out", str(out)) == 0
    raw = np.load(out / "im_xrai.npy")  # (H, W): each pixel its region's density
    heat_png = np.asarray(Image.open(out / "im_xrai_heatmap.png"), dtype=np.float64)
    assert raw.shape == heat_png.shape
    # the lowest-ranked region is black and the highest white, whatever their signs, and
    # the grey levels in between are linear in the value (ranked), not in its magnitude
    assert raw.min() < 0 < raw.max()
    assert heat_png[raw == raw.min()].max() == 0
    assert heat_png[raw == raw.max()].min() == 255
    np.testing.assert_array_equal(heat_png, np.rint(ranked(raw[None])[0] * 255))
    assert not np.array_equal(heat_png, np.rint(heat(raw[None])[0] * 255))


def test_overlay_shows_the_image_as_read_not_as_normalised(tmp_path):
    require("torch")
    image = tmp_path / "grey.png"
    Image.new("RGB", (4, 4), (100, 100, 100)).save(image)
    out = tmp_path / "out"
    assert run("--input", str(image), "--method", "gradient", "--mean", "0.5", "--std",
               "0.25", "--out", str(out)) == 0
    shown = heat(np.load(out / "grey_gradient.npy")[None])[0]
    # 4 x 4 pixels enlarged 56 x: one sample per model pixel
    overlay = np.asarray(Image.open(out / "grey_gradient_overlay.png"))[::56, ::56]
    colours = apply_colormap(shown, cmap="viridis")
    np.testing.assert_allclose(overlay, np.rint(0.5 * 100 + 0.5 * colours), atol=1)


@pytest.mark.parametrize("value", ["0", "-5"])
def test_bad_display_size_is_one_line_and_exit_2(tmp_path, capsys, value):
    image = write_png(tmp_path / "im.png")
    out = tmp_path / "out"
    assert run("--input", str(image), "--display-size", value, "--out", str(out)) == 2
    one_line_error(capsys, f"--display-size: expected a positive integer, got {value}")
    assert not out.exists() and CALLS == []


# --- the summary sheet -------------------------------------------------------------------

def test_summary_sheet_has_a_row_per_image_on_pages(tmp_path, monkeypatch, capsys):
    require("torch")
    monkeypatch.setattr(explain, "SHEET_ROWS", 2)
    images = [write_png(tmp_path / f"im{i}.png", size=(28, 28), seed=i) for i in range(5)]
    out = tmp_path / "out"
    assert run("--input", *map(str, images), "--method", "gradient", "--out", str(out)) == 0
    assert "summary.png, summary-2.png, summary-3.png" in capsys.readouterr().out
    sheets = [Image.open(out / name) for name in ("summary.png", "summary-2.png",
                                                  "summary-3.png")]
    assert not (out / "summary-4.png").exists()
    # 5 images in pages of 2 or fewer, as even as possible: 2, 1, 2
    heights = [sheet.height for sheet in sheets]
    assert heights[0] == heights[2] and heights[0] - heights[1] == SHEET_CELL_SIZE + 8
    assert {sheet.width for sheet in sheets} == {240 + 3 * SHEET_CELL_SIZE + 5 * 8}
    # the input cell of the first row is the first image, 8 x by nearest neighbour
    pixels = np.asarray(sheets[0])
    enlarged = np.kron(np.asarray(Image.open(images[0])), np.ones((8, 8, 1), np.uint8))
    left = 240 + 2 * 8  # after the label column and its padding
    tops = [top for top in range(heights[1] - 224)
            if np.array_equal(pixels[top:top + 224, left:left + 224], enlarged)]
    assert len(tops) == 1 and tops[0] < 100  # once, in the first row


def test_the_summary_labels_the_class_and_score_of_each_image(tmp_path, monkeypatch):
    require("torch")
    drawn = []
    real = explain.summary_sheet

    def recording(rows, **kwargs):
        drawn.append((len(rows), kwargs["labels"]))
        return real(rows, **kwargs)

    monkeypatch.setattr(explain, "summary_sheet", recording)
    images = [write_png(tmp_path / f"im{i}.png", seed=i) for i in range(3)]
    out = tmp_path / "out"
    assert run("--input", *map(str, images), "--method", "gradient", "--target", "2",
               "--out", str(out)) == 0
    assert [count for count, _ in drawn] == [3]
    from adapters.models import Model

    x = np.stack([np.asarray(Image.open(p), np.float32) / 255 for p in images])
    scores = Model(counting_torch()).predict_fn()(x)[:, 2]
    assert drawn[0][1] == [f"{p}\nclass 2\nscore {s:.3f}" for p, s in zip(images, scores,
                                                                          strict=True)]


# --- --help ------------------------------------------------------------------------------

@pytest.mark.parametrize("command", ["demo", "explain", "evaluate"])
def test_help_shows_every_options_default(command):
    parser = build_parser()
    subparser = parser._subparsers._group_actions[0].choices[command]
    text = subparser.format_help()
    blocks, current = [], None
    for line in text.splitlines():
        if line.startswith("  -"):
            current = [line]
            blocks.append(current)
        elif current is not None and line.startswith("    "):
            current.append(line)
        else:
            current = None
    options = [a for a in subparser._actions if a.option_strings and a.dest != "help"]
    assert len(blocks) == len(options) + 1  # and -h
    for block in blocks:
        joined = " ".join(part.strip() for part in block)
        if joined.startswith("-h"):
            continue
        assert "(default" in joined or "(required)" in joined, joined


def test_help_keeps_hyphenated_defaults_whole(capsys):
    with pytest.raises(SystemExit):
        main(["explain", "--help"])
    printed = capsys.readouterr().out
    assert "(default: saliency-out)" in " ".join(printed.split())
    assert "saliency-\n" not in printed
