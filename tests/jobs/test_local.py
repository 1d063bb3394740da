"""The in-process job engine: shards, resuming after a kill, per-input seeds, bad input.

Nothing here needs Ray (one test blocks its import to prove it).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from PIL import Image  # noqa: E402

from adapters import jobs  # noqa: E402
from adapters.cli.methods import METHODS, Options, compute  # noqa: E402
from adapters.demo.evaluation import magnitude  # noqa: E402
from adapters.jobs import shards  # noqa: E402
from adapters.models import Model  # noqa: E402
from saliency_core import metrics  # noqa: E402

from .models import FAULTS, SLEEP_ENV, tiny_model  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

#: A small SmoothGrad job: one model call per input (8 rows <= batch_size).
SMOOTH = {"method": "smoothgrad", "n_samples": 8, "seed": 3}


@pytest.fixture(autouse=True)
def _no_faults():
    FAULTS["raise_after"] = None
    yield
    FAULTS["raise_after"] = None


def write_images(folder: Path, count: int, *, size: tuple[int, int] = (8, 8),
                 seed: int = 0) -> list[str]:
    """``count`` random RGB PNG files ``000.png``, ... in ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(count):
        pixels = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        path = folder / f"{i:03d}.png"
        Image.fromarray(pixels).save(path)
        paths.append(str(path))
    return paths


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file in ``folder`` with its inode and modification time (to see rewrites)."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.iterdir()}


def assert_same_results(a: jobs.Results, b: jobs.Results) -> None:
    assert a.names == b.names
    np.testing.assert_array_equal(a.maps, b.maps)
    assert a.table.keys() == b.table.keys()
    for column in a.table:
        np.testing.assert_array_equal(a.table[column], b.table[column], err_msg=column)


# --------------------------------------------------------------------------- the files


def test_shards_manifest_and_tables(tmp_path):
    paths = write_images(tmp_path / "images", 7)
    result = jobs.run(str(tmp_path / "images"), tiny_model, out=tmp_path / "out",
                      metrics=("sparseness", "complexity"), shard_size=3, **SMOOTH)
    assert (result.inputs, result.shards, result.written, result.found) == (7, 3, 3, 0)
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["format"] == shards.MANIFEST_FORMAT and manifest["complete"]
    assert manifest["inputs"]["names"] == [os.path.normpath(p) for p in paths]
    assert [(s["first"], s["count"]) for s in manifest["shards"]] == [(0, 3), (3, 3), (6, 1)]
    assert manifest["columns"] == ["index", "input", "target", "score", "sparseness",
                                   "complexity"]
    assert manifest["settings"]["method"] == "smoothgrad"
    assert manifest["versions"]["torch"] and manifest["versions"]["numpy"] == np.__version__
    for entry in manifest["shards"]:
        for role in ("maps", "metrics", "marker"):
            assert (tmp_path / "out" / entry[role]).is_file()
        assert entry["key"] in entry["maps"]
    results = jobs.read_results(tmp_path / "out")
    assert results.maps.shape == (7, 8, 8, 3) and results.maps.dtype == np.float32
    np.testing.assert_array_equal(results.table["index"], np.arange(7))
    # the table's metrics are the metrics of the maps, as saliency evaluate measures them
    shown = magnitude(results.maps)
    np.testing.assert_array_equal(results.table["sparseness"], metrics.sparseness(shown))
    np.testing.assert_array_equal(results.table["complexity"], metrics.complexity(shown))
    # the score is the model's output for the class explained, the predicted class
    x = np.stack([np.asarray(Image.open(p), dtype=np.float32) / 255 for p in paths])
    outputs = Model(tiny_model()).predict_fn()(x)
    np.testing.assert_array_equal(results.table["target"], outputs.argmax(axis=1))
    np.testing.assert_allclose(results.table["score"], outputs.max(axis=1), rtol=1e-6)
    assert not [p for p in (tmp_path / "out").iterdir()
                if p.name.startswith(shards.TEMPORARY_PREFIX)]


def test_parquet_tables_equal_the_csv(tmp_path):
    pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    x = np.random.default_rng(1).random((5, 8, 8, 3), dtype=np.float32)
    jobs.run(x, tiny_model, out=tmp_path, metrics=("deletion_auc",), deletion_steps=4,
             shard_size=2, parquet=True, **SMOOTH)
    for entry, table, _ in jobs.iter_shards(tmp_path):
        parquet = pq.read_table(tmp_path / entry["metrics_parquet"]).to_pydict()
        assert list(parquet) == list(table)
        for column, values in table.items():
            assert parquet[column] == values.tolist(), column


# --------------------------------------------------------------------------- seeds


def test_smoothgrad_maps_are_per_input_whatever_the_shard_size(tmp_path):
    """Each map is SmoothGrad of that input alone with the seed of its name: the same for
    any shard size and any order of the inputs, and what ``compute`` gives with that seed."""
    paths = write_images(tmp_path / "images", 6)
    runs = {}
    for shard_size in (1, 4, 6):
        jobs.run(paths, tiny_model, out=tmp_path / f"out-{shard_size}", shard_size=shard_size,
                 **SMOOTH)
        runs[shard_size] = jobs.read_results(tmp_path / f"out-{shard_size}")
    for shard_size in (4, 6):
        np.testing.assert_array_equal(runs[shard_size].maps, runs[1].maps)
        np.testing.assert_array_equal(runs[shard_size].table["target"], runs[1].table["target"])
    jobs.run(paths[::-1], tiny_model, out=tmp_path / "reversed", shard_size=4, **SMOOTH)
    reversed_run = jobs.read_results(tmp_path / "reversed")
    assert reversed_run.names == runs[1].names[::-1]
    np.testing.assert_array_equal(reversed_run.maps, runs[1].maps[::-1])
    # the reference: the command's own compute, one input, seeded from its name
    model = Model(tiny_model())
    x = np.stack([np.asarray(Image.open(p), dtype=np.float32) / 255 for p in paths])
    for i, name in enumerate(runs[1].names):
        seed = jobs.input_seed(SMOOTH["seed"], name)
        options = Options(n_samples=SMOOTH["n_samples"], seed=seed)  # type: ignore[arg-type]
        expected = compute(METHODS["smoothgrad"], model, x[i:i + 1],
                           runs[1].table["target"][i:i + 1], options)
        np.testing.assert_array_equal(runs[1].maps[i], expected[0])
    # different inputs get different noise: their maps are not each other's
    assert not np.allclose(runs[1].maps[0], runs[1].maps[1])


def test_seeds_differ_by_job_seed_and_name():
    a = jobs.input_seed(0, "a.png").generate_state(4)
    assert (a == jobs.input_seed(0, "a.png").generate_state(4)).all()
    assert not (a == jobs.input_seed(1, "a.png").generate_state(4)).all()
    assert not (a == jobs.input_seed(0, "b.png").generate_state(4)).all()
    assert not (a == jobs.input_seed(0, "a.png", 1).generate_state(4)).all()


def test_noiseless_methods_equal_one_batch_to_rounding(tmp_path):
    x = np.random.default_rng(2).random((7, 8, 8, 3), dtype=np.float32)
    model = Model(tiny_model())
    target = model.predict_fn()(x).argmax(axis=1)
    for method in ("gradient", "integrated-gradients"):
        expected = compute(METHODS[method], model, x, target, Options(steps=6))
        for shard_size in (2, 7):
            out = tmp_path / f"{method}-{shard_size}"
            jobs.run(x, tiny_model, out=out, method=method, steps=6, shard_size=shard_size)
            np.testing.assert_allclose(jobs.read_results(out).maps, expected, rtol=1e-5,
                                       atol=1e-7)


def test_per_input_targets_and_one_target(tmp_path):
    x = np.random.default_rng(3).random((4, 8, 8, 3), dtype=np.float32)
    jobs.run(x, tiny_model, out=tmp_path / "each", method="gradient", target=[2, 0, 1, 2],
             shard_size=3)
    jobs.run(x, tiny_model, out=tmp_path / "one", method="gradient", target=1, shard_size=3)
    each, one = jobs.read_results(tmp_path / "each"), jobs.read_results(tmp_path / "one")
    np.testing.assert_array_equal(each.table["target"], [2, 0, 1, 2])
    np.testing.assert_array_equal(one.table["target"], [1, 1, 1, 1])
    outputs = Model(tiny_model()).predict_fn()(x)
    np.testing.assert_allclose(each.table["score"], outputs[np.arange(4), [2, 0, 1, 2]],
                               rtol=1e-6)
    np.testing.assert_allclose(each.maps[2], one.maps[2], rtol=1e-6, atol=1e-7)


# --------------------------------------------------------------------------- resuming


def test_resume_after_a_simulated_kill_writes_only_the_missing_shards(tmp_path):
    paths = write_images(tmp_path / "images", 10)
    job = {"metrics": ("sparseness",), "shard_size": 3, **SMOOTH}
    jobs.run(paths, tiny_model, out=tmp_path / "whole", **job)
    whole = jobs.read_results(tmp_path / "whole")

    # SmoothGrad at n_samples <= batch_size makes 1 + 3 model calls per shard of 3 inputs
    # (the prediction, then one call per input); 10 calls reach the middle of shard 2
    FAULTS["raise_after"] = 10
    with pytest.raises(RuntimeError, match="simulated kill"):
        jobs.run(paths, tiny_model, out=tmp_path / "killed", **job)
    FAULTS["raise_after"] = None
    out = tmp_path / "killed"
    assert len(list(out.glob("shard-*.json"))) == 2 and not (out / "manifest.json").exists()
    before = snapshot(out)

    resumed = jobs.run(paths, tiny_model, out=out, **job)
    assert (resumed.shards, resumed.written, resumed.found) == (4, 2, 2)
    after = snapshot(out)
    assert all(after[name] == stamp for name, stamp in before.items())  # none rewritten
    assert len(after) == len(before) + 2 * 4 + 1  # two shards of 4 files, the manifest
    assert_same_results(jobs.read_results(out), whole)
    assert sorted(after) == sorted(snapshot(tmp_path / "whole"))  # the same names

    again = jobs.run(paths, tiny_model, out=out, **job)
    assert (again.written, again.found) == (0, 4)
    assert {k: v for k, v in snapshot(out).items() if k != "manifest.json"} == {
        k: v for k, v in after.items() if k != "manifest.json"}


def test_a_shard_without_its_marker_is_completed_reusing_its_whole_files(tmp_path):
    x = np.random.default_rng(4).random((6, 8, 8, 3), dtype=np.float32)
    job = {"metrics": ("complexity",), "shard_size": 2, "parquet": False, **SMOOTH}
    jobs.run(x, tiny_model, out=tmp_path, **job)
    whole = jobs.read_results(tmp_path)
    entry = json.loads((tmp_path / "manifest.json").read_text())["shards"][1]
    # a kill after the maps were written, before the table and the marker
    (tmp_path / entry["marker"]).unlink()
    (tmp_path / entry["metrics"]).unlink()
    stray = tmp_path / f"{shards.TEMPORARY_PREFIX}left-by-a-kill.tmp"
    stray.write_bytes(b"half a file")
    maps_stamp = snapshot(tmp_path)[entry["maps"]]

    resumed = jobs.run(x, tiny_model, out=tmp_path, **job)
    assert (resumed.written, resumed.found) == (1, 2)
    assert snapshot(tmp_path)[entry["maps"]] == maps_stamp  # reused, not rewritten
    assert not stray.exists()
    assert_same_results(jobs.read_results(tmp_path), whole)


@pytest.mark.slow
def test_resume_after_a_real_kill(tmp_path):
    """SIGKILL the job's process once a shard is complete; the second run completes it."""
    paths = write_images(tmp_path / "images", 6)
    job = {"shard_size": 2, **SMOOTH}
    jobs.run(paths, tiny_model, out=tmp_path / "whole", **job)
    script = (
        "import sys\n"
        "from adapters import jobs\n"
        "from tests.jobs.models import tiny_model\n"
        f"jobs.run({paths!r}, tiny_model, out={str(tmp_path / 'killed')!r}, **{job!r})\n"
    )
    env = {**os.environ, SLEEP_ENV: "0.3", "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    out = tmp_path / "killed"
    deadline = time.monotonic() + 120
    try:
        while not list(out.glob("shard-*.json")):
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "no shard was written in 120 s"
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    done = len(list(out.glob("shard-*.json")))
    assert 1 <= done < 3 and not (out / "manifest.json").exists()
    resumed = jobs.run(paths, tiny_model, out=out, **job)
    assert (resumed.written, resumed.found) == (3 - done, done)
    assert_same_results(jobs.read_results(out), jobs.read_results(tmp_path / "whole"))


def test_another_jobs_folder_is_refused(tmp_path):
    x = np.random.default_rng(5).random((2, 8, 8, 3), dtype=np.float32)
    jobs.run(x, tiny_model, out=tmp_path, method="gradient")
    before = snapshot(tmp_path)
    with pytest.raises(ValueError, match="holds the results of a job with other settings"):
        jobs.run(x, tiny_model, out=tmp_path, method="gradient", batch_size=8)
    assert snapshot(tmp_path) == before


# --------------------------------------------------------------------------- bad input


BAD = [
    ({"method": "lrp"}, ValueError, "method: expected one of gradient, smoothgrad"),
    ({"method": "grad-cam"}, ValueError, "needs layer="),
    ({"metrics": ("accuracy",)}, ValueError, "metrics: expected names from deletion_auc"),
    ({"metrics": ("sparseness", "sparseness")}, ValueError, "each metric once"),
    ({"seed": None}, TypeError, "must be reproducible to be resumable"),
    ({"seed": -1}, ValueError, "seed: expected an integer >= 0"),
    ({"shard_size": 0}, ValueError, "shard_size: expected a positive integer"),
    ({"n_samples": 2.5}, TypeError, "n_samples: expected a positive integer"),
    ({"engine": "spark"}, ValueError, "engine: expected one of local, ray"),
    ({"workers": 2}, ValueError, "workers: only for engine='ray'"),
    ({"score": "logit"}, ValueError, "score: expected 'softmax' or 'output'"),
    ({"baseline": float("nan")}, ValueError, "baseline: expected a finite number"),
    ({"channels": 2}, ValueError, "channels: expected 1 or 3"),
    ({"std": [0.5, 0.0, 1.0]}, ValueError, "std: expected positive numbers"),
    ({"mean": [0.1, 0.2]}, ValueError, "mean: expected 1 or 3 finite numbers"),
    ({"target": [0, 1]}, ValueError, r"target: expected one class per input \(3\), got 2"),
    ({"target": -1}, ValueError, "target: expected an integer >= 0"),
    ({"framework": "caffe"}, ValueError, "framework: expected None or one of"),
    ({"model_factory": "no_colon"}, ValueError, "model_factory: expected a callable"),
    ({"model_factory": "missing.pt"}, ValueError, "model_factory: no such file: missing.pt"),
    ({"model_factory": 3}, TypeError, "model_factory: expected a callable"),
]


@pytest.mark.parametrize(("change", "error", "message"), BAD,
                         ids=[next(iter(c)) + "-" + str(i) for i, (c, _, _) in enumerate(BAD)])
def test_bad_settings_one_error_nothing_written(tmp_path, change, error, message):
    paths = write_images(tmp_path / "images", 3)
    settings = {"model_factory": tiny_model, **SMOOTH, **change}
    factory = settings.pop("model_factory")
    with pytest.raises(error, match=message):
        jobs.run(paths, factory, out=tmp_path / "out", **settings)
    assert not (tmp_path / "out").exists()


def test_the_model_itself_is_refused(tmp_path):
    with pytest.raises(TypeError, match="got the model itself"):
        jobs.run(np.zeros((1, 8, 8, 3)), tiny_model(), out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_bad_inputs_one_error_nothing_written(tmp_path):
    paths = write_images(tmp_path / "images", 3)
    (tmp_path / "notes.txt").write_text("not an image")
    other = write_images(tmp_path / "large", 1, size=(9, 8))
    cases = [
        (paths + [str(tmp_path / "notes.txt")], ValueError, "cannot read .*notes.txt as an image"),
        (paths + [str(tmp_path / "gone.png")], ValueError, "inputs: no such file: .*gone.png"),
        (str(tmp_path / "empty-*.png"), ValueError, "inputs: no image files match"),
        (paths + other, ValueError, "expected images of one size without size=.*8 x 8.*9 x 8"),
        ([], ValueError, "expected at least one input"),
        (42, TypeError, "inputs: expected a folder, a glob pattern"),
        (np.zeros((2, 8, 8)), ValueError, r"expected an array \(N, H, W, C\)"),
        (np.full((2, 8, 8, 3), np.nan), ValueError, "finite values, got NaN or infinity in row 0"),
    ]
    for inputs, error, message in cases:
        with pytest.raises(error, match=message):
            jobs.run(inputs, tiny_model, out=tmp_path / "out", **SMOOTH)
        assert not (tmp_path / "out").exists(), message
    with pytest.raises(ValueError, match="size, mean and std: expected None for an array"):
        jobs.run(np.zeros((1, 8, 8, 3)), tiny_model, out=tmp_path / "out", size=(4, 4))
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="out: expected a folder, got the file"):
        jobs.run(paths, tiny_model, out=tmp_path / "file", **SMOOTH)


def test_what_only_the_model_can_refuse_stops_before_any_file(tmp_path):
    x = np.random.default_rng(6).random((4, 8, 8, 3), dtype=np.float32)
    with pytest.raises(ValueError, match=r"shard 0 \(inputs 0-1\): target: expected classes "
                                         r"in \[0, 2\], got 7"):
        jobs.run(x, tiny_model, out=tmp_path / "out", target=7, shard_size=2, **SMOOTH)
    with pytest.raises(ValueError, match="model_factory: could not import 'no_such_module'"):
        jobs.run(x, "no_such_module:build", out=tmp_path / "out", **SMOOTH)
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- no Ray


def test_local_engine_without_ray(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "ray" or m.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails
    x = np.random.default_rng(7).random((3, 8, 8, 3), dtype=np.float32)
    result = jobs.run(x, tiny_model, out=tmp_path / "out", shard_size=2, **SMOOTH)
    assert result.written == 2
    with pytest.raises(ImportError, match=r'pip install "saliency-toolkit\[ray\]"'):
        jobs.run(x, tiny_model, out=tmp_path / "other", engine="ray", **SMOOTH)
    assert not (tmp_path / "other").exists()


def test_importing_the_package_imports_no_framework_and_not_ray():
    code = ("import sys, adapters.jobs; "
            "print([m for m in ('torch', 'tensorflow', 'jax', 'ray') if m in sys.modules])")
    found = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                           text=True, check=True)
    assert found.stdout.strip() == "[]"


# --------------------------------------------------------------------------- the command


def test_the_command_line_runs_a_job_from_a_model_spec(tmp_path):
    import argparse

    from adapters.cli import explain
    from adapters.cli.errors import CommandError
    from adapters.jobs import command

    paths = write_images(tmp_path / "images", 3)
    parser = argparse.ArgumentParser()
    explain.add_arguments(parser)  # with the job's options
    argv = ["--model", "tests.jobs.models:tiny_model", "--input", str(tmp_path / "images"),
            "--n-samples", "8", "--seed", "3", "--engine", "local", "--shard-size", "2",
            "--quiet"]
    args = parser.parse_args(argv)
    result = command.run_from_args(args, method=args.method, out=str(tmp_path / "job"),
                                   metrics=("sparseness",))
    assert (result.shards, result.written) == (2, 2)
    jobs.run(paths, tiny_model, out=tmp_path / "python", metrics=("sparseness",),
             shard_size=2, **SMOOTH)
    by_command, by_python = jobs.read_results(tmp_path / "job"), jobs.read_results(
        tmp_path / "python")
    np.testing.assert_array_equal(by_command.maps, by_python.maps)
    np.testing.assert_array_equal(by_command.table["sparseness"],
                                  by_python.table["sparseness"])
    again = command.run_from_args(args, method=args.method, out=str(tmp_path / "job"),
                                  metrics=("sparseness",))
    assert (again.written, again.found) == (0, 2)  # the same command resumes, done already
    with pytest.raises(CommandError, match="--out: .* holds the results of a job with other"):
        command.run_from_args(args, method=args.method, out=str(tmp_path / "job"))
    with pytest.raises(CommandError, match="--workers: only with --engine ray"):
        command.run_from_args(parser.parse_args([*argv, "--workers", "2"]),
                              method="smoothgrad", out=str(tmp_path / "x"))
    with pytest.raises(CommandError, match="--shard-size: expected a positive integer"):
        command.run_from_args(parser.parse_args([*argv[:-3], "--shard-size", "0"]),
                              method="smoothgrad", out=str(tmp_path / "x"))
    assert not (tmp_path / "x").exists()


def test_saliency_explain_and_evaluate_with_an_engine_write_jobs(tmp_path, capsys):
    from adapters.cli import main

    paths = write_images(tmp_path / "images", 3)
    common = ["--model", "tests.jobs.models:tiny_model", "--input", str(tmp_path / "images"),
              "--n-samples", "8", "--seed", "3", "--engine", "local", "--shard-size", "2",
              "--quiet"]
    assert main(["explain", *common, "--out", str(tmp_path / "explained")]) == 0
    assert "3 input(s) in 2 shard(s): wrote 2, 0 already complete" in capsys.readouterr().out
    jobs.run(paths, tiny_model, out=tmp_path / "python", shard_size=2, **SMOOTH)
    np.testing.assert_array_equal(jobs.read_results(tmp_path / "explained").maps,
                                  jobs.read_results(tmp_path / "python").maps)
    assert main(["evaluate", *common, "--method", "gradient", "smoothgrad",
                 "--out", str(tmp_path / "evaluated")]) == 0
    for name in ("gradient", "smoothgrad"):
        table = jobs.read_results(tmp_path / "evaluated" / name, maps=False).table
        assert len(table["deletion_auc"]) == 3
        assert all(0 <= value <= 1 for value in table["deletion_auc"])
    # masks have no job metric: refused in one line, nothing written
    assert main(["evaluate", *common, "--masks", *map(str, paths), "--out",
                 str(tmp_path / "masked")]) == 2
    assert not (tmp_path / "masked").exists()
    assert "--masks: not with --engine" in capsys.readouterr().err


@pytest.mark.parametrize(("method", "extra"), [("rise", {"n_masks": 16}),
                                               ("noise-grad", {"n_models": 2})])
def test_other_methods_run_per_input_with_their_seed(tmp_path, method, extra):
    """Methods the worker does not build itself go through ``compute``, one input at a time
    with its own seed: the same maps for any shard size, and ``compute``'s."""
    if method not in METHODS:
        pytest.skip(f"{method} is not in this version's table")
    x = np.random.default_rng(8).random((3, 8, 8, 3), dtype=np.float32)
    for shard_size in (1, 3):
        jobs.run(x, tiny_model, out=tmp_path / str(shard_size), method=method, seed=4,
                 method_options=extra, shard_size=shard_size)
    one, three = jobs.read_results(tmp_path / "1"), jobs.read_results(tmp_path / "3")
    np.testing.assert_array_equal(one.maps, three.maps)
    model = Model(tiny_model())
    for i, name in enumerate(one.names):
        options = Options(seed=jobs.input_seed(4, name), **extra)  # type: ignore[arg-type]
        expected = compute(METHODS[method], model, x[i:i + 1], one.table["target"][i:i + 1],
                           options)
        np.testing.assert_array_equal(one.maps[i], expected[0])
    with pytest.raises(ValueError, match="method_options: expected fields"):
        jobs.run(x, tiny_model, out=tmp_path / "bad", method=method,
                 method_options={"n_sample": 3})
