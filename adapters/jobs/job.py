"""``adapters.jobs.run``: a method (and metrics) over a whole data set, written as shards.

See :mod:`adapters.jobs` for what a job writes and why it can be killed and started again.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import math
import numbers
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from adapters.cli.errors import CommandError
from adapters.cli.loading import MODEL_FILES
from adapters.cli.methods import METHODS, Options
from adapters.cli.output import check_out
from adapters.models import FRAMEWORKS, Model, detect_framework
from saliency_core._checks import check_non_negative, check_positive_int
from saliency_core.noise import DEFAULT_NOISE

from . import shards
from .engine import METRICS, JobSpec, MetricOptions, Shard, run_local, versions
from .inputs import InputSet, describe, resolve_inputs

__all__ = ["ENGINES", "JobResult", "Results", "iter_shards", "read_results", "run"]

#: The fields of :class:`adapters.cli.methods.Options` that :func:`run` takes by name.
_OWN_OPTIONS = {"n_samples", "noise_level", "steps", "batch_size", "seed", "layer",
                "progress"}

#: The engines: ``"local"`` (in this process, nothing to install) and ``"ray"`` (Ray Data,
#: the ``ray`` extra).
ENGINES = ("local", "ray")


@dataclass(frozen=True)
class JobResult:
    """What :func:`run` did.

    Attributes:
        out: the output folder.
        manifest: the manifest's path.
        inputs: how many inputs the job has.
        shards: how many shards the job has.
        written: how many shards this run wrote.
        found: how many were complete already (from an earlier, interrupted run).
        seconds: the run's wall-clock time.
        engine: the engine that ran it.
    """

    out: Path
    manifest: Path
    inputs: int
    shards: int
    written: int
    found: int
    seconds: float
    engine: str


@dataclass(frozen=True)
class Results:
    """A job's results, in input order (:func:`read_results`).

    Attributes:
        names: the inputs' names.
        table: the columns ``index``, ``input``, ``target``, ``score`` and the metrics,
            as numpy arrays.
        maps: the maps ``(N, *map_shape)``, or None when not read.
        manifest: the manifest.
    """

    names: list[str]
    table: dict[str, np.ndarray]
    maps: np.ndarray | None
    manifest: dict[str, Any]


# --------------------------------------------------------------------------- checks


def _check_int(value: object, name: str, *, minimum: int) -> int:
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    if int(value) < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value}")
    return int(value)


def _check_numbers(values: Any, name: str, channels: int) -> tuple[float, ...] | None:
    if values is None:
        return None
    if isinstance(values, numbers.Real) and not isinstance(values, bool):
        values = [values]
    try:
        numbers_given = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected None, a number or a sequence of numbers, got "
                        f"{values!r}") from None
    if len(numbers_given) not in (1, channels) or not all(map(math.isfinite, numbers_given)):
        raise ValueError(f"{name}: expected 1 or {channels} finite numbers, got "
                         f"{list(numbers_given)}")
    return numbers_given


def _check_factory(factory: Any) -> None:
    """Refuse what cannot make a model in a worker: a model itself, a bad spec string."""
    if isinstance(factory, Model) or _is_model(factory):
        raise TypeError("model_factory: expected a function that returns a model (or a "
                        "'module:function' or model file spec), got the model itself; a "
                        "worker loads its own copy from the factory")
    if isinstance(factory, str):
        if Path(factory).suffix.lower() in MODEL_FILES:
            if not Path(factory).is_file():
                raise ValueError(f"model_factory: no such file: {factory}")
            return
        module, _, function = factory.partition(":")
        if not module or not function:
            raise ValueError("model_factory: expected a callable, 'module:function' or a "
                             f"{'/'.join(MODEL_FILES)} file, got {factory!r}")
        return
    if not callable(factory):
        raise TypeError("model_factory: expected a callable, 'module:function' or a model "
                        f"file, got {type(factory).__name__}")


def _is_model(value: Any) -> bool:
    try:
        detect_framework(value)
    except TypeError:
        return False
    return True


def model_identity(factory: Any) -> str:
    """How the shard names tell models apart: the spec, or the factory's qualified name.

    A spec string is itself (a model file also by its size and modification time); a
    function is ``module.qualname``; a ``functools.partial`` adds its arguments' ``repr``;
    another callable object its type, and its ``repr`` where that holds no address.

    Example:
        >>> model_identity(partial(max, 1, key=abs))
        'builtins.max(1, key=<built-in function abs>)'
    """
    if isinstance(factory, str):
        path = Path(factory)
        if path.suffix.lower() in MODEL_FILES and path.is_file():
            status = path.stat()
            return f"{factory} {status.st_size} {status.st_mtime_ns}"
        return factory
    if isinstance(factory, partial):
        arguments = [repr(a) for a in factory.args]
        arguments += [f"{k}={v!r}" for k, v in sorted(factory.keywords.items())]
        return f"{model_identity(factory.func)}({', '.join(arguments)})"
    name = getattr(factory, "__qualname__", None)
    if name is not None:
        return f"{getattr(factory, '__module__', None)}.{name}"
    kind = type(factory)
    text = repr(factory)
    shown = "" if " at 0x" in text else f" {text}"
    return f"{kind.__module__}.{kind.__qualname__}{shown}"


def _targets(target: Any, count: int) -> tuple[int | None, list[int] | None]:
    """The job's one target (or None) and its per-input targets (or None)."""
    if target is None:
        return None, None
    if isinstance(target, numbers.Integral) and not isinstance(target, bool):
        return _check_int(target, "target", minimum=0), None
    values = np.asarray(target)
    if values.ndim != 1 or values.dtype.kind not in "iu":
        raise TypeError(f"target: expected None, an int or one int per input, got {target!r}")
    if len(values) != count:
        raise ValueError(f"target: expected one class per input ({count}), got {len(values)}")
    if (values < 0).any():
        raise ValueError(f"target: expected classes >= 0, got {int(values.min())}")
    return None, [int(v) for v in values]


# --------------------------------------------------------------------------- run


def run(
    inputs: Any,
    model_factory: Any,
    *,
    out: str | os.PathLike[str],
    method: str = "smoothgrad",
    metrics: Sequence[str] | str = (),
    target: Any = None,
    n_samples: int = 50,
    noise_level: float = 0.15,
    steps: int = 50,
    batch_size: int = 64,
    seed: int = 0,
    layer: str | None = None,
    method_options: dict[str, Any] | None = None,
    deletion_steps: int = 20,
    baseline: float = 0.0,
    score: str = "softmax",
    stability_samples: int = 10,
    framework: str | None = None,
    channels: int | None = None,
    size: Sequence[int] | None = None,
    mean: Any = None,
    std: Any = None,
    shard_size: int = 64,
    engine: str = "local",
    address: str | None = None,
    workers: int | None = None,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float | None = None,
    retries: int = 3,
    parquet: bool | None = None,
    model_id: str | None = None,
    hash_contents: bool = False,
    progress: bool = False,
) -> JobResult:
    """Run a method, and optionally metrics, over a data set; write the results as shards.

    The inputs are cut into shards of ``shard_size`` consecutive inputs; each shard's maps,
    table and marker are written atomically under names that are digests of the settings
    and the shard's inputs (:mod:`adapters.jobs.shards`). Shards complete in ``out`` from
    an earlier run of the same job are kept as they are: a job killed half-way and started
    again computes only the missing shards, and ends with the same files as a run that was
    never interrupted. The noise of every input comes from the job's ``seed`` and the
    input's name alone (:func:`adapters.jobs.engine.input_seed`), so its map does not
    depend on the shard size, the engine or the number of workers. At the end
    ``manifest.json`` names the inputs, the settings, the versions and the shard files.

    Args:
        inputs: image files, as a folder, a glob pattern (``"data/**/*.png"``), a file, or
            a list of those; or a numpy array ``(N, H, W, C)`` of channels-last inputs.
        model_factory: how a worker gets the model, loaded once per worker: a callable of
            no arguments returning a model of any framework (picklable, for Ray: a
            module-level function or a ``functools.partial`` of one), or a spec string
            as ``saliency explain --model`` takes (``"module:function"`` or a
            ``.pt``/``.keras``/... file). Never the model itself.
        out: the output folder (created if missing). Only one job may write into a
            folder at a time; with Ray on several machines it must be a folder every
            machine sees at the same path.
        method: a method of ``saliency explain --method`` (:data:`adapters.cli.methods.
            METHODS`).
        metrics: names from :data:`adapters.jobs.engine.METRICS`, measured on each map's
            magnitude summed over channels, as ``saliency evaluate`` does.
        target: None (each input's predicted class), one class for every input, or one
            per input.
        n_samples, noise_level, steps, batch_size, seed, layer: the method's numbers, as
            ``saliency explain`` takes them; ``seed`` must be an int (a job is only
            resumable when it is reproducible).
        method_options: other fields of :class:`adapters.cli.methods.Options` for the
            methods that have them (``n_masks`` of RISE, ``n_models`` of NoiseGrad, ...).
        deletion_steps, baseline, score, stability_samples: the metrics' numbers
            (:class:`adapters.jobs.engine.MetricOptions`).
        framework: the model's framework; None to detect it.
        channels, size, mean, std: how image files are read (1 or 3 channels, default 3;
            ``(H, W)`` to resize to; normalisation after scaling to [0, 1]), as for
            ``saliency explain``; not for an array.
        shard_size: inputs per shard.
        engine: ``"local"`` (this process) or ``"ray"`` (Ray Data, the ``ray`` extra).
        address: for Ray, the cluster to join (``"auto"``, ``"ray://host:10001"``); None
            starts a local Ray for the job, or uses the one this process already joined.
        workers: for Ray, the actors (each loads the model once); None: as many as the
            cluster's CPUs (or GPUs) allow.
        cpus_per_worker, gpus_per_worker: each actor's share; ``gpus_per_worker=None``
            gives each actor one GPU when the cluster has GPUs, else none.
        retries: for Ray, how often a shard whose worker raised or died is tried again
            (and how often a dead actor is restarted).
        parquet: also write the tables as Parquet; None: when pyarrow is installed.
        model_id: the model's part of the shard names, when :func:`model_identity` of
            the factory does not tell models apart (weights read from a file that changes).
        hash_contents: identify image files by their bytes' SHA-256 rather than by size and
            modification time.
        progress: show progress (a bar over inputs; Ray Data's bars with Ray).

    Returns:
        A :class:`JobResult`.

    Raises:
        TypeError, ValueError: bad input, before any model is loaded and before anything
            is written; an ``out`` that holds another job's manifest (other settings);
            or, from the first shard, a model or input the method refuses (then that
            shard, and any not yet started, are not written).
        ImportError: ``engine="ray"`` without Ray, or ``parquet=True`` without pyarrow,
            with the ``pip install`` that fixes it.

    Example:
        >>> import tempfile
        >>> from tests.jobs.models import tiny_model  # doctest: +SKIP
        >>> result = run("photos/", tiny_model, out=tempfile.mkdtemp(),
        ...              method="smoothgrad", metrics=("deletion_auc",))  # doctest: +SKIP
    """
    started = time.perf_counter()
    if engine not in ENGINES:
        raise ValueError(f"engine: expected one of {', '.join(ENGINES)}, got {engine!r}")
    if method not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
    chosen = METHODS[method]
    if chosen.needs_layer and layer is None:
        raise ValueError(f"method: {chosen.description} needs layer= (the last convolutional "
                         "layer, say), got None")
    if layer is not None and not isinstance(layer, str):
        raise TypeError(f"layer: expected None or a layer name, got {layer!r}")
    n_samples = check_positive_int(n_samples, "n_samples")
    steps = check_positive_int(steps, "steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    shard_size = check_positive_int(shard_size, "shard_size")
    noise_level = check_non_negative(noise_level, "noise_level")
    if seed is None:
        raise TypeError("seed: expected a non-negative int (a job must be reproducible to be "
                        "resumable), got None")
    seed = _check_int(seed, "seed", minimum=0)
    metric_names = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    for name in metric_names:
        if name not in METRICS:
            raise ValueError(f"metrics: expected names from {', '.join(METRICS)}, got {name!r}")
    if len(set(metric_names)) != len(metric_names):
        raise ValueError(f"metrics: expected each metric once, got {list(metric_names)}")
    metric_options = MetricOptions(
        deletion_steps=check_positive_int(deletion_steps, "deletion_steps"),
        baseline=float(baseline) if isinstance(baseline, numbers.Real) else baseline,
        score=score, stability_samples=check_positive_int(stability_samples,
                                                          "stability_samples"))
    if not isinstance(metric_options.baseline, float) or not math.isfinite(
            metric_options.baseline):
        raise ValueError(f"baseline: expected a finite number, got {baseline!r}")
    if score not in ("softmax", "output"):
        raise ValueError(f"score: expected 'softmax' or 'output', got {score!r}")
    if framework is not None and framework not in FRAMEWORKS:
        raise ValueError(f"framework: expected None or one of {', '.join(FRAMEWORKS)}, got "
                         f"{framework!r}")
    is_array = isinstance(inputs, np.ndarray)
    if is_array and any(v is not None for v in (channels, size, mean, std)):
        raise ValueError("channels, size, mean and std: expected None for an array (they say "
                         "how image files are read), got a value")
    channels = 3 if channels is None else channels
    if channels not in (1, 3) or isinstance(channels, bool):
        raise ValueError(f"channels: expected 1 or 3, got {channels!r}")
    if size is not None:
        size = tuple(size)
        if len(size) != 2:
            raise ValueError(f"size: expected (H, W), got {size}")
        size = (_check_int(size[0], "size", minimum=1), _check_int(size[1], "size", minimum=1))
    mean = _check_numbers(mean, "mean", channels)
    std = _check_numbers(std, "std", channels)
    if std is not None and min(std) <= 0:
        raise ValueError(f"std: expected positive numbers, got {list(std)}")
    _check_factory(model_factory)
    if model_id is not None and not isinstance(model_id, str):
        raise TypeError(f"model_id: expected None or a string, got {model_id!r}")
    retries = _check_int(retries, "retries", minimum=0)
    if engine == "local":
        for name, value in (("address", address), ("workers", workers),
                            ("gpus_per_worker", gpus_per_worker)):
            if value is not None and not (name == "workers" and value == 1):
                raise ValueError(f"{name}: only for engine='ray', got {value!r} with the "
                                 "local engine")
    else:
        if workers is not None:
            workers = check_positive_int(workers, "workers")
        cpus_per_worker = check_non_negative(cpus_per_worker, "cpus_per_worker")
        if gpus_per_worker is not None:
            gpus_per_worker = check_non_negative(gpus_per_worker, "gpus_per_worker")
        if address is not None and not isinstance(address, str):
            raise TypeError(f"address: expected None or a string, got {address!r}")
        _require_ray()
    if parquet is None:
        parquet = importlib.util.find_spec("pyarrow") is not None
    elif parquet and importlib.util.find_spec("pyarrow") is None:
        raise ImportError('parquet=True needs pyarrow, which is not installed: '
                          'pip install "saliency-toolkit[ray]" (or pip install pyarrow)')
    folder = Path(out)
    try:
        check_out(folder)
    except CommandError as error:
        raise ValueError("out: " + str(error).removeprefix("--out: ")) from None

    resolved = resolve_inputs(inputs, size=size, hash_contents=hash_contents)
    job_target, per_input = _targets(target, len(resolved))
    options = Options(n_samples=n_samples, noise_level=noise_level, steps=steps,
                      batch_size=batch_size, seed=seed, layer=layer)
    fields = {field.name for field in dataclasses.fields(Options)}
    given = dict(method_options or {})
    for name in given:
        if name not in fields - _OWN_OPTIONS:
            raise ValueError(f"method_options: expected fields of adapters.cli.methods.Options "
                             f"other than {', '.join(sorted(_OWN_OPTIONS))}, got {name!r}")
    if "progress" in fields:
        given["progress"] = False
    options = dataclasses.replace(options, **given)
    settings = {
        "method": method,
        "method_definition": {"callback": chosen.callback, "attribution": chosen.attribution,
                              "aggregate": chosen.aggregate},
        "options": {name: value for name, value in dataclasses.asdict(options).items()
                    if name != "progress"},
        "noise": DEFAULT_NOISE,
        "metrics": list(metric_names),
        "deletion_steps": metric_options.deletion_steps, "baseline": metric_options.baseline,
        "score": score, "stability_samples": metric_options.stability_samples,
        "target": "per input" if per_input is not None else job_target,
        "framework": framework, "channels": channels,
        "size": None if size is None else list(size),
        "mean": None if mean is None else list(mean),
        "std": None if std is None else list(std),
        "model": model_id if model_id is not None else model_identity(model_factory),
        "seeds": "SeedSequence(entropy=seed, spawn_key=(sha256(name)[:8], purpose))",
        "versions": {key: versions()[key] for key in ("saliency-toolkit", "numpy")},
    }
    settings_digest = shards.digest(settings)
    previous = shards.read_json(folder / shards.MANIFEST)
    if isinstance(previous, dict) and previous.get("settings_digest") not in (
            None, settings_digest):
        raise ValueError(f"out: {folder} holds the results of a job with other settings "
                         f"({folder / shards.MANIFEST}); choose another folder, or remove "
                         "it to start over")
    job = JobSpec(out=str(folder.absolute()), method=method, options=options,
                  metrics=metric_names, metric_options=metric_options, target=job_target,
                  framework=framework, channels=channels, size=size, mean=mean, std=std,
                  model_factory=model_factory, parquet=bool(parquet),
                  settings_digest=settings_digest, seed=seed)
    planned = plan(resolved, settings_digest, shard_size, per_input)
    shards.remove_temporary(folder)
    pending = [shard for shard in planned if shards.complete(folder, shard.key) is None]
    engine_info: dict[str, Any] = {"name": engine}
    if engine == "local":
        records = run_local(job, pending, array=resolved.array, progress=progress)
    else:
        from .ray_engine import run_ray

        records, engine_info = run_ray(job, pending, array=resolved.array, address=address,
                                       workers=workers, cpus_per_worker=cpus_per_worker,
                                       gpus_per_worker=gpus_per_worker, retries=retries,
                                       progress=progress)
    manifest = _manifest(job, settings, resolved, planned, records, engine_info, shard_size,
                         seconds=time.perf_counter() - started)
    shards.replace_json(folder / shards.MANIFEST, manifest)
    written = sum(1 for r in records if r["status"] == "written")
    return JobResult(out=folder, manifest=folder / shards.MANIFEST, inputs=len(resolved),
                     shards=len(planned), written=written, found=len(planned) - written,
                     seconds=time.perf_counter() - started, engine=engine)


def _require_ray() -> None:
    try:
        import ray.data  # noqa: F401
    except ImportError:
        raise ImportError('engine="ray" needs Ray Data, which is not installed: '
                          'pip install "saliency-toolkit[ray]"') from None


def plan(inputs: InputSet, settings_digest: str, shard_size: int,
         per_input: list[int] | None) -> list[Shard]:
    """The job's shards: ``shard_size`` consecutive inputs each, named by their contents."""
    planned = []
    for number, first in enumerate(range(0, len(inputs), shard_size)):
        stop = min(first + shard_size, len(inputs))
        identities = inputs.identities[first:stop]
        targets = None if per_input is None else tuple(per_input[first:stop])
        if targets is not None:
            identities = [f"{i} target {t}" for i, t in zip(identities, targets, strict=True)]
        planned.append(Shard(number=number, first=first, names=tuple(inputs.names[first:stop]),
                             key=shards.shard_key(settings_digest, identities),
                             targets=targets))
    return planned


def _manifest(job: JobSpec, settings: dict[str, Any], inputs: InputSet, planned: list[Shard],
              records: list[dict[str, Any]], engine_info: dict[str, Any], shard_size: int,
              *, seconds: float) -> dict[str, Any]:
    """Check that every shard is complete; add Parquet tables a resumed job lacks."""
    folder = Path(job.out)
    listed, shapes = [], set()
    framework_versions: dict[str, str | None] = {}
    for record in records:
        if record.get("framework"):
            framework_versions[record["framework"]] = record.get("framework_version")
    for shard in planned:
        marker = shards.complete(folder, shard.key)
        if marker is None:
            raise RuntimeError(f"{shard.describe()} was not written (key {shard.key}); run "
                               "the job again to write the missing shards")
        names = shards.files_of(shard.key, parquet=job.parquet)
        if job.parquet and not (folder / names["metrics_parquet"]).is_file():
            _add_parquet(folder / names["metrics"], folder / names["metrics_parquet"])
        shapes.add((tuple(marker["map_shape"]), marker["map_dtype"]))
        if marker.get("framework"):
            framework_versions.setdefault(marker["framework"], marker.get("framework_version"))
        entry = {"number": shard.number, "key": shard.key, "first": shard.first,
                 "count": shard.count, "maps": names["maps"], "metrics": names["metrics"],
                 "marker": names["marker"]}
        if job.parquet:
            entry["metrics_parquet"] = names["metrics_parquet"]
        listed.append(entry)
    if len(shapes) != 1:
        raise RuntimeError(f"the shards hold maps of different shapes: {sorted(shapes)}")
    (shape, dtype), = shapes
    written = [r["key"] for r in records if r["status"] == "written"]
    return {
        "format": shards.MANIFEST_FORMAT,
        "complete": True,
        "settings": settings,
        "settings_digest": job.settings_digest,
        "versions": {**versions(), **{name: version for name, version in
                                      framework_versions.items() if version}},
        "engine": engine_info,
        "shard_size": shard_size,
        "inputs": describe(inputs),
        "map": {"shape": list(shape), "dtype": dtype},
        "columns": ["index", "input", "target", "score", *job.metrics],
        "shards": listed,
        "last_run": {"written": len(written), "found": len(planned) - len(written),
                     "seconds": round(seconds, 3)},
    }


def _add_parquet(csv_path: Path, parquet_path: Path) -> None:
    from .engine import write_parquet

    table = _read_table(csv_path)
    shards.write_new(parquet_path, lambda stream: write_parquet(
        {name: column.tolist() for name, column in table.items()}, stream))


# --------------------------------------------------------------------------- reading


def _read_table(path: Path) -> dict[str, np.ndarray]:
    with open(path, newline="", encoding="utf-8") as stream:
        rows = list(csv.reader(stream))
    header, body = rows[0], rows[1:]
    columns = list(zip(*body, strict=True)) if body else [() for _ in header]
    table: dict[str, np.ndarray] = {}
    for name, column in zip(header, columns, strict=True):
        if name in ("index", "target"):
            table[name] = np.array([int(v) for v in column], dtype=np.int64)
        elif name == "input":
            table[name] = np.array(column, dtype=object)
        else:
            table[name] = np.array([float(v) for v in column], dtype=np.float64)
    return table


def _read_manifest(out: str | os.PathLike[str]) -> tuple[Path, dict[str, Any]]:
    folder = Path(out)
    manifest = shards.read_json(folder / shards.MANIFEST)
    if not isinstance(manifest, dict) or manifest.get("format") != shards.MANIFEST_FORMAT:
        raise ValueError(f"out: expected a folder with a finished job's {shards.MANIFEST} "
                         f"({shards.MANIFEST_FORMAT!r}), got none in {folder}")
    return folder, manifest


def iter_shards(
    out: str | os.PathLike[str], *, maps: bool = True
) -> Iterator[tuple[dict[str, Any], dict[str, np.ndarray], np.ndarray | None]]:
    """The shards of a finished job, in input order: (manifest entry, table, maps or None).

    Reads one shard at a time, so a data set larger than memory can be walked through.

    Raises:
        ValueError: ``out`` holds no finished job.
    """
    folder, manifest = _read_manifest(out)
    for entry in manifest["shards"]:
        table = _read_table(folder / entry["metrics"])
        array = np.load(folder / entry["maps"], allow_pickle=False) if maps else None
        yield entry, table, array


def read_results(out: str | os.PathLike[str], *, maps: bool = True) -> Results:
    """A finished job's results, all shards together, in input order.

    Args:
        out: the job's output folder.
        maps: read the maps too (all in memory; see :func:`iter_shards` otherwise).

    Returns:
        The :class:`Results`.

    Raises:
        ValueError: ``out`` holds no finished job.
    """
    _, manifest = _read_manifest(out)
    tables, arrays = [], []
    for _, table, array in iter_shards(out, maps=maps):
        tables.append(table)
        if array is not None:
            arrays.append(array)
    columns = {name: np.concatenate([t[name] for t in tables]) for name in tables[0]}
    return Results(names=[str(n) for n in columns["input"]], table=columns,
                   maps=np.concatenate(arrays) if maps else None, manifest=manifest)
