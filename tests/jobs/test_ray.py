"""The Ray engine on a local Ray with 2 CPUs: the in-process results, input by input, and
workers that raise or exit once, retried, with every shard written once.

Ray takes seconds to start (tens on a loaded 2-core machine), so these are few and slow.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

pytest.importorskip("torch")
ray = pytest.importorskip("ray", reason="the ray extra is not installed")
pytest.importorskip("ray.data")

from adapters import jobs  # noqa: E402
from adapters.jobs import shards  # noqa: E402

from .models import TRIGGER_ENV, tiny_model  # noqa: E402
from .test_local import write_images  # noqa: E402

pytestmark = pytest.mark.slow

#: SmoothGrad and a metric that re-explains noisy copies (per-input seeds twice).
JOB = {"method": "smoothgrad", "n_samples": 8, "seed": 5, "metrics": ("stability",),
       "stability_samples": 2, "shard_size": 2}


def assert_same_results(a: jobs.Results, b: jobs.Results) -> None:
    assert a.names == b.names
    np.testing.assert_array_equal(a.maps, b.maps)
    for column in a.table:
        np.testing.assert_array_equal(a.table[column], b.table[column], err_msg=column)


def assert_written_once(out, result: jobs.JobResult) -> None:
    """Every shard written by this run, once: its four files, nothing else, no leftovers."""
    manifest = json.loads((out / "manifest.json").read_text())
    assert result.written == result.shards == len(manifest["shards"])
    expected = {"manifest.json"}
    for entry in manifest["shards"]:
        expected |= {entry["maps"], entry["metrics"], entry["marker"],
                     entry.get("metrics_parquet", entry["maps"])}
    assert {p.name for p in out.iterdir()} == expected
    assert len({entry["key"] for entry in manifest["shards"]}) == result.shards


def test_ray_started_for_the_job_gives_the_local_results(tmp_path):
    """Without an address the job starts a local Ray and shuts it down; with 2 workers and
    another shard size than the local run, every input's map and metrics are the same."""
    assert not ray.is_initialized()
    x = np.random.default_rng(0).random((5, 8, 8, 3), dtype=np.float32)
    jobs.run(x, tiny_model, out=tmp_path / "local", **{**JOB, "shard_size": 5})
    result = jobs.run(x, tiny_model, out=tmp_path / "ray", engine="ray", workers=2,
                      **JOB)
    assert not ray.is_initialized()
    assert (result.engine, result.shards, result.written) == ("ray", 3, 3)
    manifest = json.loads((tmp_path / "ray" / "manifest.json").read_text())
    assert manifest["engine"]["started_local_ray"] and manifest["engine"]["workers"] == 2
    local, remote = jobs.read_results(tmp_path / "local"), jobs.read_results(tmp_path / "ray")
    assert local.names == remote.names
    np.testing.assert_array_equal(remote.maps, local.maps)
    np.testing.assert_array_equal(remote.table["stability"], local.table["stability"])
    np.testing.assert_array_equal(remote.table["target"], local.table["target"])
    np.testing.assert_allclose(remote.table["score"], local.table["score"], rtol=1e-6)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One local Ray (2 CPUs) for the retry tests; its workers see the trigger folder."""
    triggers = tmp_path_factory.mktemp("triggers")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {TRIGGER_ENV: str(triggers)}})
    yield triggers
    ray.shutdown()


@pytest.mark.parametrize("failure", ["raise", "exit"])
def test_a_worker_that_fails_once_is_retried(tmp_path, cluster, failure):
    """A forward pass raises RuntimeError, or the worker's process exits (os._exit), once,
    in the middle of a shard: Ray retries it; every shard is written once, and the results
    are the in-process run's."""
    paths = write_images(tmp_path / "images", 6)
    jobs.run(paths, tiny_model, out=tmp_path / "local", **JOB)
    (cluster / failure).write_text("armed")
    out = tmp_path / "ray"
    result = jobs.run(paths, tiny_model, out=out, engine="ray", workers=2, retries=2, **JOB)
    claimed = [p for p in cluster.iterdir() if p.name.startswith(f"{failure}.claimed-")]
    assert len(claimed) == 1 and not (cluster / failure).exists()  # it did fail, once
    failed_pid = int(claimed[0].name.rsplit("-", 1)[1])
    claimed[0].unlink()
    assert ray.is_initialized()  # the job's own Ray session is left running
    assert_written_once(out, result)
    assert not [p for p in out.iterdir() if p.name.startswith(shards.TEMPORARY_PREFIX)]
    assert_same_results(jobs.read_results(out), jobs.read_results(tmp_path / "local"))
    if failure == "exit":
        pids = {json.loads(p.read_text())["pid"] for p in out.glob("shard-*.json")}
        assert failed_pid not in pids  # it died before writing
        assert os.getpid() not in pids


def test_bad_input_in_a_worker_is_one_error_without_retries(tmp_path, cluster):
    x = np.random.default_rng(1).random((4, 8, 8, 3), dtype=np.float32)
    with pytest.raises(ValueError, match=r"target: expected classes in \[0, 2\], got 9"):
        jobs.run(x, tiny_model, out=tmp_path / "out", engine="ray", workers=2, target=9,
                 **JOB)
    assert not (tmp_path / "out").exists()
