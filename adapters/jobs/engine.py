"""The work of one shard, and the in-process engine that runs the shards one after another.

:class:`ShardWorker` loads the model once, from the job's model factory, and then turns
shards into files (:meth:`ShardWorker.process`): it reads the shard's inputs, predicts the
classes to explain (unless the job names them), computes the maps, measures the metrics on
the maps' magnitude (as ``saliency evaluate`` does), and writes the shard's files
(:mod:`adapters.jobs.shards`), the marker last. A shard already complete is left as it is.
The Ray engine (:mod:`adapters.jobs.ray_engine`) runs the same worker in each actor.

Seeds are per input, never per worker or per shard: the noise of SmoothGrad (and of its
variants) for input ``name`` comes from ``SeedSequence(entropy=seed, spawn_key=(h, 0))``,
with ``h`` the first 8 bytes of the SHA-256 of the name, and the noise of the stability
metric from ``spawn_key=(h, 1)`` (:func:`input_seed`). Methods with noise therefore run
one input at a time, each on its own stream, so an input's map does not depend on which
shard, which worker or which other inputs it came with. The gradient, integrated
gradients, guided backpropagation and Grad-CAM(++) without SmoothGrad, which draw no
noise, and the faithfulness metrics run a shard at a time, in model calls of at most
``batch_size`` rows: the same arithmetic, which may round differently when the rows of a
call differ (another shard size). Any other method of the table (:data:`BUILT_ONCE` says
which are built here) runs through :func:`adapters.cli.methods.compute`, one input at a
time with that input's seed as ``options.seed``.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import importlib.metadata
import io
import json
import os
import platform
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import IO, Any

import numpy as np

from adapters.cli.errors import CommandError
from adapters.cli.explain import predict_in_batches
from adapters.cli.images import read_images
from adapters.cli.methods import CALLBACKS, METHODS, Method, Options, compute
from adapters.models import Model
from saliency_core import (
    grad_cam,
    grad_cam_plus_plus,
    integrated_gradients,
    smoothgrad,
    vanilla_gradient,
)
from saliency_core.types import AttributionFn

from . import shards

__all__ = [
    "METRICS",
    "JobSpec",
    "MetricOptions",
    "Shard",
    "ShardWorker",
    "build_model",
    "input_seed",
    "run_local",
]

#: The metrics a job can measure, in the order of the table's columns. ``deletion_auc``
#: and ``insertion_auc``: the area under the deletion and insertion curves (Petsiuk et
#: al. 2018); ``sparseness`` (Gini index) and ``complexity`` (entropy) of the map;
#: ``stability``: the rank correlation with the maps of noisy copies (Smilkov et al.
#: 2017, sections 2-3). See :mod:`saliency_core.metrics`.
METRICS = ("deletion_auc", "insertion_auc", "sparseness", "complexity", "stability")

#: The ``spawn_key`` tags of the per-input seeds: the method's noise and stability's.
METHOD_NOISE, STABILITY_NOISE = 0, 1

_LAYER_METHODS = {"grad-cam": grad_cam, "grad-cam++": grad_cam_plus_plus}


@dataclass(frozen=True)
class MetricOptions:
    """The numbers the metrics run with (``saliency evaluate``'s defaults).

    Attributes:
        deletion_steps: steps of the deletion and insertion curves.
        baseline: the value deleted pixels take (after ``mean``/``std``).
        score: what the curves measure: ``"softmax"`` (the target's probability) or
            ``"output"`` (its raw output).
        stability_samples: noisy copies per input for ``stability``.
    """

    deletion_steps: int = 20
    baseline: float = 0.0
    score: str = "softmax"
    stability_samples: int = 10


@dataclass(frozen=True)
class JobSpec:
    """Everything a worker needs to process shards (picklable; no model, no inputs).

    Attributes:
        out: the output folder.
        method: a key of :data:`adapters.cli.methods.METHODS`.
        options: the method's numbers; ``options.seed`` is the job's seed (an int).
        metrics: names from :data:`METRICS`.
        metric_options: the metrics' numbers.
        target: the class explained for every input, or None for per-shard targets
            (the predicted class, or the shard's own list).
        framework: the model's framework, or None to detect it.
        channels, size, mean, std: how image files are read
            (:func:`adapters.cli.images.read_images`).
        model_factory: a callable of no arguments returning a model, or a
            ``module:function`` / model file spec (:func:`adapters.cli.loading.load_model`).
        parquet: also write the metrics as Parquet.
        settings_digest: the digest of the settings that name the shards.
        seed: the job's seed (``options.seed``), from which every input's seed comes.
    """

    out: str
    method: str
    options: Options
    metrics: tuple[str, ...]
    metric_options: MetricOptions
    target: int | None
    framework: str | None
    channels: int
    size: tuple[int, int] | None
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    model_factory: Any
    parquet: bool
    settings_digest: str
    seed: int = 0


@dataclass(frozen=True)
class Shard:
    """One shard: consecutive inputs ``first .. first + count - 1`` of the job.

    Attributes:
        number: its place among the job's shards.
        first: the index of its first input.
        names: its inputs' names.
        key: its name on disk (:func:`adapters.jobs.shards.shard_key`).
        targets: one class per input, or None (the job's ``target`` or the prediction).
    """

    number: int
    first: int
    names: tuple[str, ...]
    key: str
    targets: tuple[int, ...] | None = None

    @property
    def count(self) -> int:
        """How many inputs the shard holds."""
        return len(self.names)

    def describe(self) -> str:
        """``"shard 3 (inputs 192-255)"``, for messages."""
        return f"shard {self.number} (inputs {self.first}-{self.first + self.count - 1})"

    def to_json(self) -> str:
        """The shard as JSON text (how it travels to Ray workers)."""
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Shard:
        """The shard :meth:`to_json` wrote."""
        value = json.loads(text)
        targets = value["targets"]
        return cls(number=value["number"], first=value["first"], names=tuple(value["names"]),
                   key=value["key"], targets=None if targets is None else tuple(targets))


def input_seed(seed: int, name: str, purpose: int = METHOD_NOISE) -> np.random.SeedSequence:
    """The seed of one input's noise: from the job's seed and the input's name only.

    Args:
        seed: the job's seed, a non-negative int.
        name: the input's name (its path as given, or ``array[i]``).
        purpose: :data:`METHOD_NOISE` (the method's) or :data:`STABILITY_NOISE`.

    Returns:
        ``SeedSequence(entropy=seed, spawn_key=(h, purpose))``, ``h`` the first 8 bytes of
        the SHA-256 of the name (UTF-8) as a little-endian integer.

    Example:
        >>> a = input_seed(0, "cat.png").generate_state(2)
        >>> b = input_seed(0, "dog.png").generate_state(2)
        >>> bool((a == input_seed(0, "cat.png").generate_state(2)).all()), bool((a == b).all())
        (True, False)
    """
    words = hashlib.sha256(name.encode("utf-8")).digest()[:8]
    return np.random.SeedSequence(entropy=seed,
                                  spawn_key=(int.from_bytes(words, "little"), purpose))


def build_model(factory: Any, framework: str | None, *, gpu: bool = False) -> Model:
    """The model a job's factory makes, seen channels-last.

    Args:
        factory: a callable of no arguments returning a framework's model (or an
            :class:`adapters.models.Model`), or a spec string as ``saliency explain
            --model`` takes (``module:function`` or a model file).
        framework: the framework, or None to detect it.
        gpu: a GPU was given to this worker: the model's callbacks run on ``cuda`` (the
            backends place the model and the batches there).

    Raises:
        ValueError, TypeError: a spec that does not load, a factory that fails or returns
            something that is not a model.
    """
    if isinstance(factory, str):
        try:
            loaded = load_spec(factory, framework)
        except CommandError as error:
            raise ValueError("model_factory: " + str(error).removeprefix("--model: ")) from None
    else:
        try:
            handle = factory()
        except (ValueError, TypeError) as error:
            raise ValueError(f"model_factory() failed: {type(error).__name__}: {error}") from None
        if isinstance(getattr(handle, "model", None), Model):  # a LoadedModel
            handle = handle.model
        try:
            loaded = handle if isinstance(handle, Model) else Model(handle, framework)
        except (TypeError, ValueError) as error:
            raise TypeError(f"model_factory() returned an unusable model: {error}") from None
    if gpu and loaded.device is None:
        loaded = dataclasses.replace(loaded, device="cuda")
    return loaded


def load_spec(spec: str, framework: str | None) -> Model:
    """:func:`adapters.cli.loading.load_model`'s model (raises ``CommandError``)."""
    from adapters.cli.loading import load_model

    loaded = load_model(spec, framework)
    return loaded if isinstance(loaded, Model) else loaded.model


def _framework_version(framework: str | None) -> str | None:
    distribution = {"torch": "torch", "tensorflow": "tensorflow", "jax": "jax"}.get(
        framework or "")
    if distribution is None:
        return None
    for name in (distribution, f"{distribution}-cpu"):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return None


#: The (callback, attribution) pairs whose callback a worker builds once
#: (:func:`attribution_fn`); every other method of the table runs through
#: :func:`adapters.cli.methods.compute`, one input at a time with that input's seed.
BUILT_ONCE = {("gradient", "gradient"), ("gradient", "integrated-gradients"),
              ("guided-gradient", "gradient"), ("layer", "grad-cam"),
              ("layer", "grad-cam++")}


def attribution_fn(method: Method, model: Model, options: Options) -> AttributionFn | None:
    """The callback a method runs on, built once (SmoothGrad is taken over it per input).

    This is :func:`adapters.cli.methods.compute` without its last step: the same core
    method on the same model callback, with the same options, for the methods of
    :data:`BUILT_ONCE`; None for the others.
    """
    if (method.callback, method.attribution) not in BUILT_ONCE:
        return None
    if method.needs_layer:
        layer_fn, channel_axis = model.layer_fn(str(options.layer))
        return partial(_LAYER_METHODS[method.attribution], layer_fn, channel_axis=channel_axis,
                       input_channel_axis=-1, batch_size=options.batch_size)
    gradient = model.gradient_fn(relu_rule=CALLBACKS[method.callback])
    if method.attribution == "integrated-gradients":
        return partial(integrated_gradients, gradient, steps=options.steps,
                       batch_size=options.batch_size)
    return partial(vanilla_gradient, gradient, batch_size=options.batch_size)


class ShardWorker:
    """Loads the model once and processes shards into files.

    Args:
        job: the job.
        array: the job's inputs when they are an array (None for image files).
        gpu: whether this worker was given a GPU (see :func:`build_model`).
    """

    def __init__(self, job: JobSpec, array: np.ndarray | None = None, *,
                 gpu: bool = False) -> None:
        self.job = job
        self.array = array
        self.out = Path(job.out)
        self.method = METHODS[job.method]
        self.model = build_model(job.model_factory, job.framework, gpu=gpu)
        self.predict = self.model.predict_fn()
        self.fn = attribution_fn(self.method, self.model, job.options)

    # ------------------------------------------------------------------ one shard

    def process(self, shard: Shard) -> dict[str, Any]:
        """Compute and write one shard, unless it is complete already.

        Returns:
            A record: ``key``, ``number``, ``status`` (``"written"``, or ``"found"``
            when it was complete), the files this call created, seconds, and the model's
            framework and its version.

        Raises:
            ValueError, TypeError: inputs that do not read, a model whose outputs are not
                class scores, a target out of range, a method or metric that refuses the
                input; before anything of the shard is written.
        """
        record: dict[str, Any] = {"key": shard.key, "number": shard.number,
                                  "framework": self.model.framework,
                                  "framework_version": _framework_version(self.model.framework)}
        marker = shards.complete(self.out, shard.key)
        if marker is not None:
            return {**record, "status": "found", "created": [], "seconds": 0.0,
                    "map_shape": marker.get("map_shape"), "map_dtype": marker.get("map_dtype")}
        start = time.perf_counter()
        try:
            x = self._read(shard)
            outputs = predict_in_batches(self.model, x, self.job.options.batch_size)
            targets = self._targets(shard, outputs)
            maps = self._maps(x, targets, shard.names)
            values = self._metrics(x, maps, targets, shard.names)
        except (ValueError, TypeError) as error:
            kind = TypeError if isinstance(error, TypeError) else ValueError
            raise kind(f"{shard.describe()}: {error}") from error
        scores = outputs[np.arange(len(x)), targets].astype(np.float64)
        created = self._write(shard, maps, targets, scores, values,
                              seconds=time.perf_counter() - start)
        written = shards.files_of(shard.key, parquet=False)["marker"] in created
        return {**record, "status": "written" if written else "found",
                "created": created, "seconds": time.perf_counter() - start,
                "map_shape": list(maps.shape[1:]), "map_dtype": str(maps.dtype)}

    def _read(self, shard: Shard) -> np.ndarray:
        if self.array is not None:
            return self.array[shard.first:shard.first + shard.count]
        job = self.job
        try:
            return read_images(list(shard.names), channels=job.channels, size=job.size,
                               mean=job.mean, std=job.std)
        except CommandError as error:
            raise ValueError("inputs: " + str(error).removeprefix("--input: ")) from None

    def _targets(self, shard: Shard, outputs: np.ndarray) -> np.ndarray:
        if outputs.ndim != 2:
            raise ValueError(f"the model gives outputs of shape {outputs.shape[1:]} per input; "
                             "a job needs class scores (N, C)")
        classes = outputs.shape[1]
        if shard.targets is not None:
            targets = np.asarray(shard.targets, dtype=np.int64)
        elif self.job.target is not None:
            targets = np.full(len(outputs), self.job.target, dtype=np.int64)
        else:
            return outputs.argmax(axis=1)
        if targets.min() < 0 or targets.max() >= classes:
            bad = int(targets[(targets < 0) | (targets >= classes)][0])
            raise ValueError(f"target: expected classes in [0, {classes - 1}], got {bad}")
        return targets

    def _maps(self, x: np.ndarray, targets: np.ndarray, names: Sequence[str]) -> np.ndarray:
        method, options = self.method, self.job.options
        if self.fn is None:  # any other method: compute, one input at a time, its seed
            return np.concatenate([
                compute(method, self.model, x[i:i + 1], targets[i:i + 1],
                        dataclasses.replace(options, seed=input_seed(self.job.seed, name)))
                for i, name in enumerate(names)
            ])
        if method.aggregate is None:
            return np.asarray(self.fn(x, targets))
        parts = [
            smoothgrad(self.fn, x[i:i + 1], targets[i:i + 1], n_samples=options.n_samples,
                       noise_level=options.noise_level, noise=options.noise,
                       aggregate=method.aggregate,
                       batch_size=options.batch_size,
                       seed=input_seed(self.job.seed, name, METHOD_NOISE))
            for i, name in enumerate(names)
        ]
        return np.concatenate(parts)

    def _explain_one(self, name: str) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        """The map of noisy copies of one input, as the job makes that input's map."""
        method, options = self.method, self.job.options
        if self.fn is None:
            seeded = dataclasses.replace(options, seed=input_seed(self.job.seed, name))
            return partial(compute, method, self.model, options=seeded)
        if method.aggregate is None:
            return self.fn
        return partial(smoothgrad, self.fn, n_samples=options.n_samples,
                       noise_level=options.noise_level, noise=options.noise,
                       aggregate=method.aggregate,
                       batch_size=options.batch_size,
                       seed=input_seed(self.job.seed, name, METHOD_NOISE))

    def _metrics(self, x: np.ndarray, maps: np.ndarray, targets: np.ndarray,
                 names: Sequence[str]) -> dict[str, np.ndarray]:
        wanted = self.job.metrics
        if not wanted:
            return {}
        from adapters.demo.evaluation import magnitude
        from saliency_core import metrics

        shown = magnitude(maps)
        settings = self.job.metric_options
        batch_size = self.job.options.batch_size
        curve: dict[str, Any] = {"steps": settings.deletion_steps, "baseline": settings.baseline,
                 "score": settings.score, "batch_size": batch_size, "channel_axis": -1}
        values: dict[str, np.ndarray] = {}
        if "deletion_auc" in wanted:
            values["deletion_auc"] = metrics.deletion(self.predict, x, shown, targets,
                                                      **curve).auc
        if "insertion_auc" in wanted:
            values["insertion_auc"] = metrics.insertion(self.predict, x, shown, targets,
                                                        **curve).auc
        if "sparseness" in wanted:
            values["sparseness"] = metrics.sparseness(shown)
        if "complexity" in wanted:
            values["complexity"] = metrics.complexity(shown)
        if "stability" in wanted:
            seed = self.job.seed
            values["stability"] = np.concatenate([
                metrics.stability(
                    _magnitude_of(self._explain_one(name)), x[i:i + 1], targets[i:i + 1],
                    n_samples=settings.stability_samples,
                    seed=input_seed(seed, name, STABILITY_NOISE), batch_size=batch_size)
                for i, name in enumerate(names)
            ])
        return {name: np.asarray(values[name], dtype=np.float64) for name in METRICS
                if name in values}

    # ------------------------------------------------------------------ files

    def _write(self, shard: Shard, maps: np.ndarray, targets: np.ndarray, scores: np.ndarray,
               values: dict[str, np.ndarray], *, seconds: float) -> list[str]:
        """Write the shard's files, the marker last; returns the names this call created."""
        self.out.mkdir(parents=True, exist_ok=True)
        names = shards.files_of(shard.key, parquet=self.job.parquet)
        table = metrics_table(shard, targets, scores, values)
        created = []

        def save_maps(stream: IO[bytes]) -> None:
            np.save(stream, maps, allow_pickle=False)

        def save_csv(stream: IO[bytes]) -> None:
            stream.write(table_csv(table).encode("utf-8"))

        writers: dict[str, Callable[[IO[bytes]], None]] = {"maps": save_maps,
                                                           "metrics": save_csv}
        if self.job.parquet:
            writers["metrics_parquet"] = partial(write_parquet, table)
        for role, write in writers.items():
            if shards.write_new(self.out / names[role], write):
                created.append(names[role])
        marker = {
            "key": shard.key, "number": shard.number, "first": shard.first,
            "count": shard.count, "inputs": list(shard.names),
            "files": {role: names[role] for role in writers},
            "map_shape": list(maps.shape[1:]), "map_dtype": str(maps.dtype),
            "seconds": round(seconds, 6), "host": socket.gethostname(), "pid": os.getpid(),
            "framework": self.model.framework,
            "framework_version": _framework_version(self.model.framework),
        }
        text = (json.dumps(marker, indent=1) + "\n").encode("utf-8")

        def save_marker(stream: IO[bytes]) -> None:
            stream.write(text)

        if shards.write_new(self.out / names["marker"], save_marker):
            created.append(names["marker"])
        return created


def _magnitude_of(explain: Callable[..., np.ndarray]) -> AttributionFn:
    """``explain``'s maps as the metrics measure them (|map| summed over channels)."""
    from adapters.demo.evaluation import magnitude

    def shown(rows: np.ndarray, target: np.ndarray | None) -> np.ndarray:
        return magnitude(explain(rows, target))

    return shown


# --------------------------------------------------------------------------- tables


def metrics_table(shard: Shard, targets: np.ndarray, scores: np.ndarray,
                  values: dict[str, np.ndarray]) -> dict[str, list[Any]]:
    """The shard's table, column by column: index, input, target, score, then the metrics."""
    table: dict[str, list[Any]] = {
        "index": list(range(shard.first, shard.first + shard.count)),
        "input": list(shard.names),
        "target": [int(t) for t in targets],
        "score": [float(s) for s in scores],
    }
    for name, column in values.items():
        table[name] = [float(v) for v in column]
    return table


def table_csv(table: dict[str, list[Any]]) -> str:
    """The table as CSV text; floats in their shortest exact form (``repr``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = list(table)
    writer.writerow(columns)
    for row in zip(*(table[c] for c in columns), strict=True):
        writer.writerow([repr(v) if isinstance(v, float) else v for v in row])
    return buffer.getvalue()


def write_parquet(table: dict[str, list[Any]], stream: IO[bytes]) -> None:
    """The table as Parquet (pyarrow), into a binary stream."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table(table), stream)


def versions() -> dict[str, str]:
    """The versions a manifest records: Python, numpy, the toolkit (and Ray, pyarrow if there)."""
    import saliency_core

    found = {"python": platform.python_version(), "numpy": np.__version__,
             "saliency-toolkit": saliency_core.__version__}
    for name in ("ray", "pyarrow"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


# --------------------------------------------------------------------------- engine


def run_local(job: JobSpec, pending: Sequence[Shard], *, array: np.ndarray | None = None,
              progress: bool = False) -> list[dict[str, Any]]:
    """The in-process engine: one :class:`ShardWorker`, the shards in order.

    Args:
        job: the job.
        pending: the shards to process.
        array: the job's inputs when they are an array.
        progress: show a progress bar over the inputs (on a terminal).

    Returns:
        One record per shard (:meth:`ShardWorker.process`).
    """
    from tqdm.auto import tqdm

    if not pending:
        return []
    worker = ShardWorker(job, array)
    bar = tqdm(total=sum(s.count for s in pending), desc=job.method, unit="input",
               leave=False, disable=None if progress else True)
    records = []
    try:
        for shard in pending:
            records.append(worker.process(shard))
            bar.update(shard.count)
    finally:
        bar.close()
    return records
