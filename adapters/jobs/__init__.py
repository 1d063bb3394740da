"""Data-set scale: a method, and metrics, over a whole data set, in this process or on Ray.

``adapters.jobs.run(inputs, model_factory, out=..., method=..., metrics=...)`` runs one
method of ``saliency explain --method`` (and metrics of ``saliency evaluate``) over a
folder, a glob pattern, a list of image files or an array, and writes the results as
shards in ``out``:

- ``maps-KEY.npy``: the maps of a shard's inputs, in order;
- ``metrics-KEY.csv`` (and ``.parquet`` with pyarrow): per input its index, name, class
  explained, score and metrics;
- ``shard-KEY.json``: the marker, written last, that says the shard is complete;
- ``manifest.json``: the inputs, settings, versions and shard files, written at the end.

:func:`read_results` (or :func:`iter_shards`, a shard at a time) reads them back in input
order.

Two engines run the same work (:class:`adapters.jobs.engine.ShardWorker`): ``"local"``,
the default, in this process with nothing to install or start; and ``"ray"``, Ray Data's
``map_batches`` over a pool of actors that each load the model once from the factory
(the ``ray`` extra: ``pip install "saliency-toolkit[ray]"``). A local Ray is started for
the job when no cluster ``address`` is given, and shut down after it.

Reliability:

- shards are named by a digest of the settings and their inputs, and each file is written
  atomically and never replaced (:mod:`adapters.jobs.shards`): a job killed half-way and
  started again computes only the shards that are missing and ends with the same files
  as one never interrupted;
- on Ray, a worker that raises (other than ``ValueError``/``TypeError``, bad input) or
  dies is retried by Ray (``retries``): its shard is written once, whole;
- seeds are per input (:func:`adapters.jobs.engine.input_seed`), so each input's map is
  the same for any shard size, engine and number of workers.

Importing this package imports no framework and not Ray; a worker imports the model's
framework when it builds the model, and ``engine="ray"`` imports Ray.
"""

from __future__ import annotations

from .engine import METRICS, MetricOptions, input_seed
from .job import ENGINES, JobResult, Results, iter_shards, model_identity, read_results, run

__all__ = [
    "ENGINES",
    "METRICS",
    "JobResult",
    "MetricOptions",
    "Results",
    "input_seed",
    "iter_shards",
    "model_identity",
    "read_results",
    "run",
]
