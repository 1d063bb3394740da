"""What ``saliency explain`` and ``saliency evaluate`` call to run as a data-set job.

:func:`add_arguments` adds the job's options (``--engine``, ``--shard-size``, ``--address``,
``--workers``, ``--gpus-per-worker``, ``--retries``); :func:`run_from_args` runs one method
of a parsed command line as a job (:func:`adapters.jobs.run`) into ``--out`` and returns
the one-line report. Running the same command again into the same ``--out`` resumes it:
only the shards that are missing are computed.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from adapters.cli.errors import CommandError

from .engine import METRICS
from .job import ENGINES, JobResult, run

__all__ = ["add_arguments", "run_from_args"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the job's options to a ``saliency explain`` or ``saliency evaluate`` parser."""
    group = parser.add_argument_group(
        "data-set jobs", "with --engine, the results go to --out as shards (maps .npy, tables "
        "CSV/Parquet, manifest.json); the same command run again completes a job that was "
        "interrupted, computing only the missing shards")
    group.add_argument("--engine", choices=ENGINES, default=None,
                       help="run as a data-set job: in this process (local) or on Ray Data "
                            "(ray, the ray extra) (default: none, the per-image files)")
    group.add_argument("--shard-size", type=int, default=64, metavar="N",
                       help="inputs per shard")
    group.add_argument("--address", metavar="ADDRESS",
                       help="with --engine ray: the Ray cluster to join, such as auto or "
                            "ray://host:10001 (default: start a local Ray for the job)")
    group.add_argument("--workers", type=int, metavar="N",
                       help="with --engine ray: actors, each loading the model once "
                            "(default: as many as the CPUs, or GPUs, allow)")
    group.add_argument("--gpus-per-worker", type=float, metavar="N",
                       help="with --engine ray: GPUs per actor (default: 1 where the "
                            "cluster has GPUs, else 0)")
    group.add_argument("--retries", type=int, default=3, metavar="N",
                       help="with --engine ray: tries again of a shard whose worker "
                            "failed or died")


def run_from_args(args: argparse.Namespace, *, method: str, out: str,
                  metrics: Sequence[str] = ()) -> JobResult:
    """Run ``method`` over ``args.input`` as a job into ``out``.

    Args:
        args: a parsed ``saliency explain``/``evaluate`` command line with the options of
            :func:`add_arguments` (``args.input`` as given: files, folders, patterns).
        method: the method (one of ``args.method`` for evaluate).
        out: the job's folder.
        metrics: names of :data:`adapters.jobs.engine.METRICS` (evaluate's columns:
            ``deletion_auc``, ``insertion_auc``, ``sparseness``, ``complexity``, and
            ``stability`` where ``--stability N`` is above 0).

    Returns:
        The :class:`adapters.jobs.JobResult`.

    Raises:
        CommandError: bad input (one line, before anything is written).
    """
    unknown = [name for name in metrics if name not in METRICS]
    if unknown:
        raise CommandError(f"metrics: expected names from {', '.join(METRICS)}, got {unknown}")
    engine = "ray" if args.engine == "ray" else "local"
    ray_only = {"address": args.address, "workers": args.workers,
                "gpus_per_worker": args.gpus_per_worker}
    if engine == "local":
        given = [name for name, value in ray_only.items() if value is not None]
        if given:
            raise CommandError(f"--{given[0].replace('_', '-')}: only with --engine ray")
    stability = getattr(args, "stability", 0) or 0
    try:
        return run(
            list(args.input), args.model, out=out, method=method, metrics=tuple(metrics),
            target=args.target, n_samples=args.n_samples, noise_level=args.noise_level,
            steps=args.steps, batch_size=args.batch_size, seed=args.seed, layer=args.layer,
            deletion_steps=getattr(args, "deletion_steps", 20),
            baseline=getattr(args, "baseline", 0.0), score=getattr(args, "score", "softmax"),
            stability_samples=stability if stability > 0 else 10,
            framework=args.framework, channels=args.channels,
            size=None if args.size is None else tuple(args.size), mean=args.mean,
            std=args.std, shard_size=args.shard_size, engine=engine,
            retries=args.retries, progress=not args.quiet,
            method_options={name: getattr(args, name)
                            for name in ("n_models", "weight_noise", "n_masks", "noise")
                            if hasattr(args, name)},
            **({key: value for key, value in ray_only.items()} if engine == "ray" else {}),
        )
    except (ValueError, TypeError, ImportError) as error:
        raise CommandError(_flag_names(str(error))) from None


#: The Python argument names in messages, as the command's options.
_FLAGS = {"inputs: ": "--input: ", "model_factory: ": "--model: ", "out: ": "--out: ",
          "shard_size: ": "--shard-size: ", "workers: ": "--workers: ",
          "n_samples: ": "--n-samples: ", "noise_level: ": "--noise-level: ",
          "batch_size: ": "--batch-size: ", "seed: ": "--seed: ", "steps: ": "--steps: ",
          "method: ": "--method: ", "target: ": "--target: ", "layer: ": "--layer: "}


def _flag_names(message: str) -> str:
    for name, flag in _FLAGS.items():
        if message.startswith(name):
            return flag + message[len(name):]
    return message
