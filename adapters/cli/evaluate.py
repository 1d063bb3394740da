"""``saliency evaluate``: measure saliency maps of your model and images with the metrics.

For every ``--method`` it computes the maps (as ``saliency explain`` does) and measures each
map as the paper shows it, its magnitude summed over channels:

- faithfulness: the deletion and insertion AUC (pixels most important first, to
  ``--baseline``, ``--deletion-steps`` steps, the target's softmax probability by default);
- complexity: sparseness (Gini index) and complexity (entropy);
- localisation, with ``--masks`` (one mask per image, an image whose non-zero pixels are the
  object, or a ``.npy`` boolean array ``(H, W)``): the pointing game, relevance mass
  accuracy and relevance rank accuracy;
- robustness, with ``--stability N``: the rank correlation of the map with the maps of N
  slightly noisy copies.

``--input`` takes files, folders and glob patterns, as for ``saliency explain``. It shows
a progress bar over the methods (on a terminal, unless ``--quiet``), prints a
table of the means per method on stdout and writes every value, image by image, to
``--out`` (CSV, or JSON for a ``.json`` name), atomically.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from adapters.demo.evaluation import magnitude
from saliency_core import metrics

from .errors import CommandError
from .explain import (
    add_method_arguments,
    add_model_arguments,
    add_progress_argument,
    check_method,
    check_numbers,
    compute_maps,
    expand_input_argument,
    load_inputs,
    options_of,
    say_job,
)
from .methods import METHODS, compute
from .output import say

__all__ = ["HELP", "METRICS", "add_arguments", "read_masks", "run"]

#: The line ``saliency --help`` shows for this command.
HELP = "measure saliency maps of your model and images (faithfulness, localisation, ...)"

#: The metric columns, in the order they are reported; the last three need --masks and
#: stability needs --stability.
METRICS = ("deletion AUC", "insertion AUC", "sparseness", "complexity", "stability",
           "pointing game", "relevance mass", "relevance rank")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``saliency evaluate``'s options to ``parser``."""
    add_model_arguments(parser)
    parser.add_argument("--method", nargs="+", default=["gradient", "smoothgrad"],
                        help="one or more of " + ", ".join(METHODS)
                        + " (default: gradient smoothgrad)")
    parser.add_argument("--masks", nargs="+",
                        help="one mask per image (an image, non-zero = object, or a .npy)")
    parser.add_argument("--deletion-steps", type=int, default=20,
                        help="deletion and insertion steps (default: 20)")
    parser.add_argument("--baseline", type=float, default=0.0,
                        help="value of deleted pixels, after --mean/--std (default: 0)")
    parser.add_argument("--score", choices=("softmax", "output"), default="softmax",
                        help="what deletion and insertion measure (default: softmax)")
    parser.add_argument("--stability", type=int, default=0, metavar="N",
                        help="noisy copies per image for stability (default: 0, off)")
    add_method_arguments(parser)
    parser.add_argument("--out", default="saliency-evaluation.csv",
                        help="CSV file, or JSON for a .json name (default: "
                             "saliency-evaluation.csv); with --engine, a folder holding one "
                             "job per method")
    add_progress_argument(parser)
    from adapters.jobs import command as job_command

    job_command.add_arguments(parser)


def _run_jobs(args: argparse.Namespace) -> int:
    """``--engine``: one data-set job per method, into ``--out``/METHOD."""
    from adapters.jobs import command as job_command

    if args.masks is not None:
        raise CommandError("--masks: not with --engine (data-set jobs measure deletion, "
                           "insertion, sparseness, complexity and stability)")
    metrics: tuple[str, ...] = ("deletion_auc", "insertion_auc", "sparseness", "complexity")
    metrics += ("stability",) if args.stability else ()
    for name in args.method:
        result = job_command.run_from_args(args, method=name, out=str(Path(args.out) / name),
                                           metrics=metrics)
        say_job(result)
    return 0


def run(args: argparse.Namespace) -> int:
    """Evaluate the methods of ``args`` on its images; returns the exit status 0.

    Raises:
        CommandError: for bad input, before any file is written.
    """
    for name in args.method:
        check_method(args, name)
    check_numbers(args)
    if args.deletion_steps < 1:
        raise CommandError(f"--deletion-steps: expected a positive integer, got "
                           f"{args.deletion_steps}")
    if args.stability < 0:
        raise CommandError(f"--stability: expected a non-negative integer, got {args.stability}")
    if not math.isfinite(args.baseline):
        raise CommandError(f"--baseline: expected a finite number, got {args.baseline}")
    if getattr(args, "engine", None) is not None:
        return _run_jobs(args)
    out = Path(args.out)
    if out.is_dir():
        raise CommandError(f"--out: expected a file name, got the folder {args.out}")
    expand_input_argument(args)
    if args.masks is not None and len(args.masks) != len(args.input):
        raise CommandError(f"--masks: expected one mask per image ({len(args.input)}), got "
                           f"{len(args.masks)}")
    x, model, _, target = load_inputs(args)
    masks = None if args.masks is None else read_masks(args.masks, x.shape[1:3])
    options = options_of(args)
    predict = model.predict_fn()
    rows: list[dict[str, Any]] = []
    means: dict[str, dict[str, float]] = {}
    bar = tqdm(args.method, desc="evaluate", unit="method", leave=False,
               disable=True if args.quiet else None)
    for name in bar:
        method = METHODS[name]
        say(f"{method.description}: maps and metrics for {len(x)} image(s)")
        shown = magnitude(compute_maps(method, model, x, target, options))
        values = _measure(predict, x, shown, target, masks, args)
        if args.stability:
            explain = partial(compute, method, model, options=options)
            values["stability"] = metrics.stability(
                lambda rows_x, t, explain=explain: magnitude(explain(rows_x, t)), x, target,
                n_samples=args.stability, seed=args.seed, batch_size=args.batch_size)
        means[name] = {metric: float(np.nanmean(v)) for metric, v in values.items()}
        for i, image in enumerate(args.input):
            rows.append({"image": image, "method": name, "target": int(target[i]),
                         **{metric: float(v[i]) for metric, v in values.items()}})
    bar.close()
    columns = [metric for metric in METRICS if metric in means[args.method[0]]]
    say(_table(means, columns))
    _write(out, rows, ["image", "method", "target", *columns])
    say(f"wrote {out}")
    return 0


def read_masks(paths: list[str], size: tuple[int, int]) -> np.ndarray:
    """Boolean masks ``(N, H, W)``: images (non-zero pixels, resized to ``size`` by nearest
    neighbour) or ``.npy`` arrays of exactly ``size``.

    Raises:
        CommandError: a missing or unreadable file, or a ``.npy`` mask of another shape or
            with values other than 0 and 1.
    """
    from PIL import Image, UnidentifiedImageError

    masks = []
    for name in paths:
        path = Path(name)
        if not path.is_file():
            raise CommandError(f"--masks: no such file: {name}")
        if path.suffix.lower() == ".npy":
            try:
                array = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as error:
                raise CommandError(f"--masks: cannot read {name} as .npy: {error}") from None
            array = np.squeeze(array)
            if array.shape != tuple(size):
                raise CommandError(f"--masks: expected a mask of shape {tuple(size)} (the "
                                   f"images' size), got {array.shape} in {name}")
            if array.dtype != np.bool_ and not np.isin(array, (0, 1)).all():
                raise CommandError(f"--masks: expected a boolean (or 0/1) mask, got values "
                                   f"other than 0 and 1 in {name}")
            masks.append(array.astype(bool))
            continue
        try:
            with Image.open(path) as image:
                # Pillow sets its resampling constants at import; its annotations miss them
                grey = image.convert("L").resize(
                    (size[1], size[0]), Image.NEAREST)  # type: ignore[attr-defined]
                masks.append(np.asarray(grey) > 0)
        except (UnidentifiedImageError, OSError) as error:
            raise CommandError(f"--masks: cannot read {name} as an image: {error}") from None
    return np.stack(masks)


def _measure(predict: Any, x: np.ndarray, shown: np.ndarray, target: np.ndarray,
             masks: np.ndarray | None, args: argparse.Namespace) -> dict[str, np.ndarray]:
    curve = {"steps": args.deletion_steps, "baseline": args.baseline, "score": args.score,
             "batch_size": args.batch_size, "channel_axis": -1}
    values = {
        "deletion AUC": metrics.deletion(predict, x, shown, target, **curve).auc,
        "insertion AUC": metrics.insertion(predict, x, shown, target, **curve).auc,
        "sparseness": metrics.sparseness(shown),
        "complexity": metrics.complexity(shown),
    }
    if masks is not None:
        values["pointing game"] = metrics.pointing_game(shown, masks)
        values["relevance mass"] = metrics.relevance_mass_accuracy(shown, masks)
        values["relevance rank"] = metrics.relevance_rank_accuracy(shown, masks)
    return values


def _table(means: dict[str, dict[str, float]], columns: list[str]) -> str:
    width = max(len("method"), *(len(name) for name in means))
    head = "method".ljust(width) + "".join(f"  {c:>14}" for c in columns)
    lines = [head, "-" * len(head)]
    for name, values in means.items():
        lines.append(name.ljust(width) + "".join(f"  {values[c]:>14.4f}" for c in columns))
    return "\n".join(lines)


def _write(out: Path, rows: list[dict[str, Any]], columns: list[str]) -> None:
    """The rows as CSV (or JSON for a .json name), written to a temporary file and moved."""
    if out.suffix.lower() == ".json":
        text = json.dumps(rows, indent=2) + "\n"
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        text = buffer.getvalue()
    target = out.resolve()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}-", dir=target.parent)
    except OSError as error:
        raise CommandError(f"--out: cannot write {out}: {error}") from None
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temporary, target)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        raise CommandError(f"--out: cannot write {out}: {error}") from None
