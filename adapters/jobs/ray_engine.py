"""The Ray engine: the job's shards through Ray Data, on a pool of actors.

The pending shards become a Ray Dataset of one row (one block) each; ``map_batches`` runs
them through a fixed pool of ``workers`` actors (``ActorPoolStrategy``), each of which
builds one :class:`adapters.jobs.engine.ShardWorker` (the model loaded once, from the
factory, never a pickled model) and writes the shards it is given, exactly as the
in-process engine does. Each actor asks for ``cpus_per_worker`` CPUs and, where the
cluster has GPUs, one GPU (``gpus_per_worker``); a PyTorch model on the CPU is moved to
the actor's GPU.

Failures are Ray's to retry: an actor that raises anything but a ``ValueError`` or
``TypeError`` has its shard tried again (``DataContext.actor_task_retry_on_errors``, at
most ``retries`` times), and an actor that dies (its process exits) is restarted
(``max_restarts``) and its shard resubmitted (``max_task_retries``). Since a shard's
files are never replaced and its marker is written last (:mod:`adapters.jobs.shards`), a
retried shard is written once, whole. ``ValueError`` and ``TypeError`` (bad input, which
would fail again) come back as the job's error, without retries.

Without ``address`` and outside a Ray session, a local Ray is started for the job
(``ray.init(num_cpus=..., include_dashboard=False)``) and shut down after it.
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from .engine import JobSpec, Shard, ShardWorker

__all__ = ["RayShardWorker", "run_ray"]


class RayShardWorker:
    """The callable class ``map_batches`` runs in each actor: one shard per row.

    Args:
        job: the job.
        array: a one-item list holding the object reference of the job's array inputs,
            or None for image files.
        gpu: whether the actor was given a GPU.
    """

    def __init__(self, job: JobSpec, array: list[Any] | None, gpu: bool) -> None:
        import ray

        inputs = None if array is None else ray.get(array[0])
        self.worker = ShardWorker(job, inputs, gpu=gpu)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        records = []
        for text in batch["shard"]:
            shard = Shard.from_json(str(text))
            try:
                record = self.worker.process(shard)
            except (ValueError, TypeError) as error:  # bad input: no retry
                record = {"key": shard.key, "number": shard.number, "status": "error",
                          "error": str(error),
                          "kind": "TypeError" if isinstance(error, TypeError) else "ValueError"}
            records.append(json.dumps(record))
        return {"record": np.array(records)}


def _input_error(error: BaseException) -> BaseException | None:
    """The ValueError or TypeError a worker raised, under Ray's wrappers, if that is it."""
    seen = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        cause = getattr(current, "cause", None)
        if isinstance(cause, (ValueError, TypeError)):
            return cause
        if type(current) in (ValueError, TypeError):
            return current
        current = current.__cause__ or (cause if isinstance(cause, BaseException) else None)
    return None


def run_ray(
    job: JobSpec,
    pending: Sequence[Shard],
    *,
    array: np.ndarray | None = None,
    address: str | None = None,
    workers: int | None = None,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float | None = None,
    retries: int = 3,
    progress: bool = False,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Process the shards on Ray Data; returns their records and what ran them.

    Args:
        job: the job.
        pending: the shards to process.
        array: the job's inputs when they are an array (put in Ray's object store once).
        address: the cluster; None: this process's Ray session, or a new local one.
        workers: the actors; None: as many as the cluster's CPUs (or GPUs) allow.
        cpus_per_worker, gpus_per_worker: each actor's resources (None GPUs: one each
            where the cluster has GPUs).
        retries: retries of a shard whose actor raised or died, and restarts of an actor.
        progress: Ray Data's progress bars.

    Returns:
        ``(records, engine)``: one record per shard, and the engine's description for
        the manifest (address, workers, resources).

    Raises:
        ValueError, TypeError: what a worker raised for bad input (the first such shard).
        ImportError: Ray is not installed.
    """
    try:
        import ray
        import ray.data
    except ImportError:
        raise ImportError('engine="ray" needs Ray Data, which is not installed: '
                          'pip install "saliency-toolkit[ray]"') from None
    started = False
    if not ray.is_initialized():
        if address is None:
            cpus = os.cpu_count() or 1
            if workers is not None:
                cpus = max(1, int(np.ceil(workers * cpus_per_worker)))
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False,
                     logging_level=logging.WARNING)
        else:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        started = True
    try:
        resources = ray.cluster_resources()
        gpus = gpus_per_worker
        if gpus is None:
            gpus = 1.0 if resources.get("GPU", 0) >= 1 else 0.0
        if workers is None:
            if gpus > 0:
                workers = max(1, int(resources.get("GPU", 0) // gpus))
            elif cpus_per_worker > 0:
                workers = max(1, int(resources.get("CPU", 1) // cpus_per_worker))
            else:
                workers = 1
        engine = {"name": "ray", "address": address, "started_local_ray": started,
                  "workers": workers, "cpus_per_worker": cpus_per_worker,
                  "gpus_per_worker": gpus, "retries": retries,
                  "cluster": {key: resources.get(key, 0) for key in ("CPU", "GPU")}}
        if not pending:
            return [], engine
        with warnings.catch_warnings():
            # Ray 2.60 takes max_restarts and max_task_retries only as ray_remote_args,
            # which it says will go in Ray 2.64; and Ray Data warns of its own settings
            warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"ray\.")
            records = _execute(ray, job, pending, array, workers, cpus_per_worker, gpus,
                               retries, progress)
    finally:
        if started:
            ray.shutdown()
    failed = [r for r in records if r["status"] == "error"]
    if failed:
        first = min(failed, key=lambda r: r["number"])
        kind = TypeError if first.get("kind") == "TypeError" else ValueError
        raise kind(first["error"])
    return records, engine


def _execute(ray: Any, job: JobSpec, pending: Sequence[Shard], array: np.ndarray | None,
             workers: int, cpus_per_worker: float, gpus: float, retries: int,
             progress: bool) -> list[dict[str, Any]]:
    context = ray.data.DataContext.get_current()
    saved = (context.actor_task_retry_on_errors, context.enable_progress_bars)
    data_logger = logging.getLogger("ray.data")
    saved_level = data_logger.level
    context.actor_task_retry_on_errors = True  # our ValueError/TypeError never escape
    context.enable_progress_bars = progress
    if not progress:
        data_logger.setLevel(logging.ERROR)
    try:
        dataset = ray.data.from_items([{"shard": shard.to_json()} for shard in pending],
                                      override_num_blocks=len(pending))
        array_ref = None if array is None else [ray.put(array)]
        results = dataset.map_batches(
            RayShardWorker,
            fn_constructor_kwargs={"job": job, "array": array_ref, "gpu": gpus > 0},
            batch_size=1,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=min(workers, len(pending))),
            num_cpus=cpus_per_worker,
            num_gpus=gpus,
            max_restarts=retries,
            max_task_retries=retries,
        )
        try:
            rows = results.take_all()
        except Exception as error:
            cause = _input_error(error)
            if cause is not None:
                raise cause from None
            raise
    finally:
        context.actor_task_retry_on_errors, context.enable_progress_bars = saved
        data_logger.setLevel(saved_level)
    return [json.loads(str(row["record"])) for row in rows]
