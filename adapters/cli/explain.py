"""``saliency explain``: saliency maps for your own model and images.

``--input`` takes image files, folders (the images inside) and glob patterns (expanded
here too, for shells that do not): see :func:`adapters.cli.images.expand_inputs`.

For each image it writes ``{stem}_{method}_heatmap.png`` (the map as the paper shows it),
``{stem}_{method}_overlay.png`` (over the image) and ``{stem}_{method}.npy`` (the raw map,
channels-last, at the model's resolution), and prints which class was explained with its
score. The two PNG files are at least ``--display-size`` pixels (224 by default) on their
long side: a smaller map is enlarged by the smallest whole factor that reaches it, by
nearest neighbour, so each of the model's pixels is a sharp square (28 x 28 becomes
224 x 224, 64 x 64 becomes 256 x 256); a larger one keeps the model's resolution. Beside
them, ``summary.png`` shows every image in a row (the input, the map, the overlay, the
class and its score), :data:`SHEET_ROWS` rows a page; more images give ``summary-2.png``,
``summary-3.png``, ... (pages of nearly equal length).

``{stem}`` is the image's file name without its suffix; where several inputs share one
(``a/three.png`` and ``b/three.png``), the later ones are numbered ``three-2``,
``three-3``, ... in the order given (see :func:`adapters.cli.output.unique_stems`), and the
command says so.

Model calls never hold more than ``--batch-size`` images (noisy copies, path points):
the maps are computed in groups of images, which a progress bar counts (on a terminal,
unless ``--quiet``).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

import visualize as vis
from saliency_core import DEFAULT_NOISE, NOISE_SCHEMES
from visualize.sheet import pages, summary_sheet

from .errors import CommandError, check_framework
from .images import expand_inputs, read_images
from .loading import load_model, reading_shape, refusal
from .methods import METHODS, Method, Options, compute
from .output import (
    Staging,
    check_out,
    display_factor,
    enlarge,
    heat,
    ranked,
    say,
    staged_output,
    unique_stems,
)

if TYPE_CHECKING:
    from adapters.models import Model

__all__ = [
    "DISPLAY_SIZE",
    "HELP",
    "SHEET_ROWS",
    "add_arguments",
    "add_method_arguments",
    "add_model_arguments",
    "add_progress_argument",
    "check_method",
    "check_numbers",
    "compute_maps",
    "display_pixels",
    "expand_input_argument",
    "load_inputs",
    "options_of",
    "predict_in_batches",
    "rows_per_image",
    "say_job",
    "run",
]

#: The line ``saliency --help`` shows for this command.
HELP = "saliency maps for your model and images"

#: The default ``--display-size``: the least long side of the written heat maps and overlays.
DISPLAY_SIZE = 224

#: The most images one page of ``summary.png`` shows.
SHEET_ROWS = 12

#: The side of each picture's cell on the summary sheet, in pixels.
SHEET_CELL_SIZE = 224


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``saliency explain``'s options to ``parser``."""
    add_model_arguments(parser)
    parser.add_argument("--method", default="smoothgrad", metavar="NAME",
                        help="one of " + ", ".join(METHODS))
    add_method_arguments(parser)
    parser.add_argument("--display-size", type=int, default=DISPLAY_SIZE, metavar="PIXELS",
                        help="least long side of the heat map and overlay PNGs: smaller maps "
                             "are enlarged by a whole factor, nearest neighbour (the .npy "
                             "keeps the model's resolution)")
    parser.add_argument("--out", default="saliency-out", metavar="FOLDER",
                        help="output folder, created if missing")
    add_progress_argument(parser)
    from adapters.jobs import command as job_command

    job_command.add_arguments(parser)


def say_job(result: Any) -> None:
    """The closing line of a data-set job (``--engine``)."""
    say(f"{result.inputs} input(s) in {result.shards} shard(s): wrote {result.written}, "
        f"{result.found} already complete, in {result.out}")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that name the model, the images and the classes (shared with evaluate)."""
    parser.add_argument("--model", required=True, metavar="SPEC",
                        help="module:function returning a model, or a "
                             ".keras/.h5/.hdf5/.pt/.pth/.pt2/.onnx file")
    parser.add_argument("--input", required=True, nargs="+", metavar="PATH",
                        help="image files, folders of images, or glob patterns such as "
                             "'photos/*.jpg' or 'data/**/*.png'")
    parser.add_argument("--target", type=int, metavar="CLASS",
                        help="class to explain (default: each image's predicted class)")
    parser.add_argument("--framework", metavar="NAME",
                        help="torch, tensorflow or jax (default: detected from the model)")
    parser.add_argument("--layer", metavar="NAME",
                        help="layer for Grad-CAM methods (default: none; they need one)")
    parser.add_argument("--channels", type=int, choices=(1, 3),
                        help="read images as grey (1) or RGB (3) (default: what the model "
                             "declares, else 3)")
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                        help="resize images to H x W (default: the size the model declares, "
                             "else the images' own, which must then agree)")
    parser.add_argument("--mean", type=float, nargs="+", metavar="VALUE",
                        help="subtract after scaling to [0, 1], one value or one per channel "
                             "(default: none)")
    parser.add_argument("--std", type=float, nargs="+", metavar="VALUE",
                        help="divide after subtracting --mean, one value or one per channel "
                             "(default: none)")


def add_method_arguments(parser: argparse.ArgumentParser) -> None:
    """The numbers every method runs with (shared with evaluate)."""
    parser.add_argument("--n-samples", type=int, default=50, metavar="N",
                        help="SmoothGrad's noisy samples per image")
    parser.add_argument("--noise-level", type=float, default=0.15, metavar="LEVEL",
                        help="SmoothGrad's noise, a fraction of each image's value range")
    parser.add_argument("--noise", choices=NOISE_SCHEMES, default=DEFAULT_NOISE,
                        help="SmoothGrad's noise scheme (lhs: Latin hypercube, the fewest "
                             "samples for a given error; iid: independent draws)")
    parser.add_argument("--steps", type=int, default=50, metavar="N",
                        help="integrated-gradients steps")
    parser.add_argument("--batch-size", type=int, default=64, metavar="N",
                        help="the most rows (images, noisy copies, path points) one model "
                             "call gets")
    parser.add_argument("--seed", type=int, default=0, metavar="N",
                        help="seed of every random draw (SmoothGrad's noise, RISE's masks, "
                             "NoiseGrad's model copies)")
    parser.add_argument("--n-models", type=int, default=10, metavar="N",
                        help="noise-grad and fusion-grad: noisy copies of the model")
    parser.add_argument("--weight-noise", type=float, default=0.2, metavar="SIGMA",
                        help="noise-grad and fusion-grad: sigma of the weights' N(1, sigma^2) "
                             "noise")
    parser.add_argument("--n-masks", type=int, default=2000, metavar="N",
                        help="rise: random masks")


def add_progress_argument(parser: argparse.ArgumentParser) -> None:
    """``--quiet`` (shared with evaluate)."""
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar and no line per image (default: a progress bar "
                             "on a terminal, and a line per image)")


def run(args: argparse.Namespace) -> int:
    """Explain the images of ``args``; returns the exit status 0.

    Raises:
        CommandError: for bad input, before any file is written.
    """
    check_method(args, args.method)
    check_numbers(args)
    if getattr(args, "engine", None) is not None:
        from adapters.jobs import command as job_command

        result = job_command.run_from_args(args, method=args.method, out=args.out)
        say_job(result)
        return 0
    if args.display_size < 1:
        raise CommandError(f"--display-size: expected a positive integer, got "
                           f"{args.display_size}")
    check_out(Path(args.out))
    method = METHODS[args.method]
    expand_input_argument(args)
    stems = unique_stems(args.input)
    for name, stem in zip(args.input, stems, strict=True):
        if stem != Path(name).stem:
            say(f"{name}: written as {stem}_*, as another input has the stem "
                f"{Path(name).stem!r}")
    x, model, outputs, target = load_inputs(args)
    maps = compute_maps(method, model, x, target, options_of(args), progress=not args.quiet)
    pixels = display_pixels(x, args.mean, args.std)
    # XRAI's values rank regions (and may be negative): shown by rank, the others by magnitude
    shown = ranked(maps) if method.attribution == "xrai" else heat(maps)
    scores = outputs[np.arange(len(x)), target]
    with staged_output(Path(args.out)) as staging:
        report = _write_images(staging, method, args.input, stems, pixels, shown, maps,
                               target, scores, args.display_size)
        sheets = _write_sheets(staging, method, args.input, pixels, shown, target, scores)
    if not args.quiet:
        for line in report:
            say(line)
    say(f"wrote {3 * len(x)} files for {len(x)} image{'s' if len(x) != 1 else ''} and "
        + ", ".join(path.name for path in sheets) + f" in {args.out}")
    return 0


def _write_images(staging: Staging, method: Method, names: Sequence[str], stems: Sequence[str],
                  pixels: np.ndarray, shown: np.ndarray, maps: np.ndarray,
                  target: np.ndarray, scores: np.ndarray, display_size: int) -> list[str]:
    """Stage each image's heat map, overlay and raw map; returns the report lines."""
    factor = display_factor(shown.shape[1:3], display_size)
    report = []
    for i, name in enumerate(names):
        stem = f"{stems[i]}_{method.name}"
        heat_pixels = np.rint(np.clip(shown[i], 0.0, 1.0) * 255).astype(np.uint8)
        blended = vis.overlay(pixels[i], shown[i], alpha=0.5)
        written = [
            staging.png(f"{stem}_heatmap.png", enlarge(heat_pixels, factor)),
            staging.png(f"{stem}_overlay.png", enlarge(blended, factor)),
            staging.npy(f"{stem}.npy", maps[i]),
        ]
        report.append(f"{name}: {method.description} of class {target[i]} "
                      f"(score {scores[i]:.3f})")
        report += [f"  wrote {path}" for path in written]
    return report


def _write_sheets(staging: Staging, method: Method, names: Sequence[str], pixels: np.ndarray,
                  shown: np.ndarray, target: np.ndarray, scores: np.ndarray) -> list[Path]:
    """Stage ``summary.png`` (and ``summary-2.png``, ... for more than a page of images)."""
    written = []
    sheet_pages = pages(len(names), SHEET_ROWS)
    for number, page in enumerate(sheet_pages, start=1):
        rows = [[pixels[i], shown[i], vis.overlay(pixels[i], shown[i], alpha=0.5)]
                for i in page]
        labels = [f"{names[i]}\nclass {target[i]}\nscore {scores[i]:.3f}" for i in page]
        heading = (f"{method.description}: images {page.start + 1}-{page.stop} of "
                   f"{len(names)}")
        if len(sheet_pages) > 1:
            heading += f" (page {number} of {len(sheet_pages)})"
        sheet = summary_sheet(rows, labels=labels, titles=["input", "map", "overlay"],
                              heading=heading, cell_size=SHEET_CELL_SIZE)
        name = "summary.png" if number == 1 else f"summary-{number}.png"
        written.append(staging.png(name, sheet))
    return written


def expand_input_argument(args: argparse.Namespace) -> None:
    """Replace ``args.input`` by the image files its files, folders and patterns name.

    Says how many files were skipped (not images) or named twice, if any.

    Raises:
        CommandError: an input that is missing, a folder without images, a pattern that
            matches none (see :func:`adapters.cli.images.expand_inputs`).
    """
    inputs = expand_inputs(args.input)
    notes = []
    if inputs.skipped:
        notes.append(f"{inputs.skipped} file{'s' if inputs.skipped != 1 else ''} that "
                     f"{'are' if inputs.skipped != 1 else 'is'} not an image skipped")
    if inputs.repeated:
        notes.append(f"{inputs.repeated} named twice, read once")
    if notes:
        say(f"--input: {len(inputs.paths)} image{'s' if len(inputs.paths) != 1 else ''} ("
            + "; ".join(notes) + ")")
    args.input = inputs.paths


def display_pixels(x: np.ndarray, mean: Sequence[float] | None,
                   std: Sequence[float] | None) -> np.ndarray:
    """The images as read, for display: ``--std`` and ``--mean`` undone, as uint8.

    Args:
        x: the model's inputs ``(N, H, W, C)``, scaled to [0, 1] and then normalised.
        mean: the ``--mean`` values, or None.
        std: the ``--std`` values, or None.

    Returns:
        uint8 ``(N, H, W, C)``: the pixels in [0, 1] times 255, rounded.

    Example:
        >>> display_pixels(np.array([[[[-1.0], [1.0]]]]), [0.5], [0.5]).ravel().tolist()
        [0, 255]
    """
    values = x.astype(np.float64)
    if std is not None:
        values = values * np.asarray(std, dtype=np.float64)
    if mean is not None:
        values = values + np.asarray(mean, dtype=np.float64)
    return np.rint(np.clip(values, 0.0, 1.0) * 255).astype(np.uint8)


def predict_in_batches(model: Model, x: np.ndarray, batch_size: int) -> np.ndarray:
    """The model's outputs for ``x``, from calls of at most ``batch_size`` images each.

    Args:
        model: the model.
        x: the inputs ``(N, ...)``.
        batch_size: the most rows one call gets.

    Returns:
        The outputs ``(N, ...)``, in order.

    Example:
        >>> from types import SimpleNamespace
        >>> calls = []
        >>> def predict(rows):
        ...     calls.append(len(rows))
        ...     return rows * 2
        >>> model = SimpleNamespace(predict_fn=lambda: predict)
        >>> predict_in_batches(model, np.arange(5.0), 2).tolist(), calls
        ([0.0, 2.0, 4.0, 6.0, 8.0], [2, 2, 1])
    """
    predict = model.predict_fn()
    parts = [np.asarray(predict(x[start:start + batch_size]))
             for start in range(0, len(x), batch_size)]
    return np.concatenate(parts) if parts else np.asarray(predict(x))


def load_inputs(args: argparse.Namespace) -> tuple[np.ndarray, Model, np.ndarray, np.ndarray]:
    """The images, the model, its outputs and the classes to explain, from ``args``.

    Raises:
        CommandError: unreadable images, a model that does not load, outputs that are not
            class scores, a ``--target`` out of range.
    """
    model, declared = load_model(args.model, args.framework)
    channels, size = reading_shape(declared, channels=args.channels, size=args.size)
    x = read_images(args.input, channels=channels, size=size, mean=args.mean, std=args.std)
    try:
        outputs = predict_in_batches(model, x, args.batch_size)
    except CommandError:
        raise
    except Exception as error:  # the model refuses the images: name the shape it takes
        raise refusal(error, x.shape, declared) from None
    if outputs.ndim != 2:
        raise CommandError(f"the model gives outputs of shape {outputs.shape[1:]} per image; "
                           "explain needs class scores (N, C)")
    classes = outputs.shape[1]
    if args.target is None:
        target = outputs.argmax(axis=1)
    elif not 0 <= args.target < classes:
        raise CommandError(f"--target: expected a class in [0, {classes - 1}], got {args.target}")
    else:
        target = np.full(len(x), args.target)
    return x, model, outputs, target


def options_of(args: argparse.Namespace) -> Options:
    """The method options of ``args``; the command's own bars count images and methods."""
    return Options(n_samples=args.n_samples, noise_level=args.noise_level, noise=args.noise,
                   steps=args.steps,
                   batch_size=args.batch_size, seed=args.seed, layer=args.layer,
                   n_models=args.n_models, weight_noise=args.weight_noise,
                   n_masks=args.n_masks, progress=False)


def rows_per_image(method: Method, options: Options) -> int:
    """How many rows of model input ``method`` makes per image (noisy copies, path points).

    Example:
        >>> rows_per_image(METHODS["smoothgrad-ig"], Options(n_samples=10, steps=20))
        200
    """
    return method.rows_per_input(options)


def _group_size(rows: int, batch_size: int) -> int:
    """Images per :func:`compute` call: the fewest that fill the calls to 90 percent.

    Every call but a group's last is full, so a group of ``g`` images of ``rows`` rows
    fills ``g * rows / (batch_size * ceil(g * rows / batch_size))`` of its calls. The
    search starts at the most images one call holds and stops after eight times as many
    (then the best found is taken), so the progress bar keeps moving.
    """
    start = max(1, batch_size // rows)
    best, best_fill = start, 0.0
    for size in range(start, 8 * start + 1):
        fill = size * rows / (batch_size * -(-size * rows // batch_size))
        if fill >= 0.9:
            return size
        if fill > best_fill:
            best, best_fill = size, fill
    return best


def compute_maps(method: Method, model: Model, x: np.ndarray, target: np.ndarray,
                 options: Options, *, progress: bool = False) -> np.ndarray:
    """``compute`` over groups of images, with refusals turned into one-line errors.

    The images go to :func:`~adapters.cli.methods.compute` a group at a time (a group
    fills the model calls, each of at most ``options.batch_size`` rows, to nine tenths
    where it can), so that a progress bar can count images. SmoothGrad's noise is drawn
    from one generator, seeded once, over all groups: the maps are those of one call on
    all the images, whatever the batch size.

    Args:
        method: the method to run.
        model: the model.
        x: the inputs ``(N, H, W, C)``.
        target: one class per input.
        options: the numbers to run with.
        progress: show a progress bar over the images (on a terminal only: tqdm leaves
            it out when stderr is not one).

    Returns:
        The maps, as :func:`~adapters.cli.methods.compute` gives them.

    Raises:
        CommandError: if the model or the core refuses the input.
    """
    group = _group_size(rows_per_image(method, options), options.batch_size)
    if method.aggregate is not None:
        # one stream of noise across the groups, as one call would draw it
        options = dataclasses.replace(options, seed=np.random.default_rng(options.seed))
    bar = tqdm(total=len(x), desc=method.name, unit="image", leave=False,
               disable=None if progress else True)
    parts = []
    try:
        for start in range(0, len(x), group):
            stop = min(start + group, len(x))
            parts.append(compute(method, model, x[start:stop], target[start:stop], options))
            bar.update(stop - start)
    except (ValueError, TypeError, ImportError) as error:
        raise CommandError(f"{method.name}: {error}") from None
    finally:
        bar.close()
    return np.concatenate(parts)


def check_method(args: argparse.Namespace, name: str) -> None:
    """CommandError for an unknown method, or a Grad-CAM method without ``--layer``."""
    if name not in METHODS:
        raise CommandError(f"--method: expected one of {', '.join(METHODS)}, got {name!r}")
    if METHODS[name].needs_layer and args.layer is None:
        raise CommandError(
            f"{METHODS[name].description} needs --layer NAME "
            "(the last convolutional layer, say)"
        )


def check_numbers(args: argparse.Namespace) -> None:
    """CommandError for a bad framework name, counts below 1, a negative noise level or seed."""
    if args.framework is not None:
        check_framework(args.framework)
    for name in ("n_samples", "steps", "batch_size", "n_models", "n_masks"):
        if getattr(args, name) < 1:
            raise CommandError(f"--{name.replace('_', '-')}: expected a positive integer, "
                               f"got {getattr(args, name)}")
    if args.noise_level < 0:
        raise CommandError(f"--noise-level: expected a non-negative number, got {args.noise_level}")
    if not args.weight_noise >= 0:
        raise CommandError(f"--weight-noise: expected a non-negative number, "
                           f"got {args.weight_noise}")
    if args.seed < 0:
        raise CommandError(f"--seed: expected a non-negative integer, got {args.seed}")
