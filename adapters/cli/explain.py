"""``saliency explain``: saliency maps for your own model and images.

For each image it writes ``{stem}_{method}_heatmap.png`` (the map as the paper shows it),
``{stem}_{method}_overlay.png`` (over the image) and ``{stem}_{method}.npy`` (the raw map,
channels-last), and prints which class was explained with its score. ``{stem}`` is the
image's file name without its suffix; where several inputs share one (``a/three.png`` and
``b/three.png``), the later ones are numbered ``three-2``, ``three-3``, ... in the order given
(see :func:`adapters.cli.output.unique_stems`), and the command says so.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import visualize as vis

from .errors import CommandError, check_framework
from .images import read_images
from .loading import load_model
from .methods import METHODS, Method, Options, compute
from .output import check_out, heat, say, staged_output, unique_stems

if TYPE_CHECKING:
    from adapters.models import Model

__all__ = [
    "HELP",
    "add_arguments",
    "add_method_arguments",
    "add_model_arguments",
    "check_method",
    "check_numbers",
    "compute_maps",
    "load_inputs",
    "options_of",
    "run",
]

#: The line ``saliency --help`` shows for this command.
HELP = "saliency maps for your model and images"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``saliency explain``'s options to ``parser``."""
    add_model_arguments(parser)
    parser.add_argument("--method", default="smoothgrad", help=", ".join(METHODS))
    add_method_arguments(parser)
    parser.add_argument("--out", default="saliency-out", help="output folder")


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that name the model, the images and the classes (shared with evaluate)."""
    parser.add_argument("--model", required=True,
                        help="module:function returning a model, or a .keras/.h5/.pt/.pt2 file")
    parser.add_argument("--input", required=True, nargs="+", help="image files")
    parser.add_argument("--target", type=int, help="class to explain (default: predicted)")
    parser.add_argument("--framework", help="torch, tensorflow or jax (default: detected)")
    parser.add_argument("--layer", help="layer for Grad-CAM methods")
    parser.add_argument("--channels", type=int, choices=(1, 3), default=3,
                        help="read images as grey (1) or RGB (3)")
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                        help="resize images to H x W")
    parser.add_argument("--mean", type=float, nargs="+", help="subtract after scaling to [0, 1]")
    parser.add_argument("--std", type=float, nargs="+", help="divide after subtracting --mean")


def add_method_arguments(parser: argparse.ArgumentParser) -> None:
    """The numbers every method runs with (shared with evaluate)."""
    parser.add_argument("--n-samples", type=int, default=50)
    parser.add_argument("--noise-level", type=float, default=0.15)
    parser.add_argument("--steps", type=int, default=50, help="integrated-gradients steps")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    """Explain the images of ``args``; returns the exit status 0.

    Raises:
        CommandError: for bad input, before any file is written.
    """
    check_method(args, args.method)
    check_numbers(args)
    check_out(Path(args.out))
    method = METHODS[args.method]
    stems = unique_stems(args.input)
    x, model, outputs, target = load_inputs(args)
    maps = compute_maps(method, model, x, target, options_of(args))
    shown = heat(maps)
    with staged_output(Path(args.out)) as staging:
        for i, name in enumerate(args.input):
            if stems[i] != Path(name).stem:
                say(f"{name}: written as {stems[i]}_*, as another input has the stem "
                    f"{Path(name).stem!r}")
            stem = f"{stems[i]}_{method.name}"
            written = [
                staging.png(f"{stem}_heatmap.png", vis.to_image(shown[i])),
                staging.png(f"{stem}_overlay.png", vis.overlay(x[i], shown[i], alpha=0.5)),
                staging.npy(f"{stem}.npy", maps[i]),
            ]
            say(f"{name}: {method.description} of class {target[i]} "
                f"(score {outputs[i, target[i]]:.3f})")
            for path in written:
                say(f"  wrote {path}")
    return 0


def load_inputs(args: argparse.Namespace) -> tuple[np.ndarray, Model, np.ndarray, np.ndarray]:
    """The images, the model, its outputs and the classes to explain, from ``args``.

    Raises:
        CommandError: unreadable images, a model that does not load, outputs that are not
            class scores, a ``--target`` out of range.
    """
    x = read_images(args.input, channels=args.channels, size=args.size, mean=args.mean,
                    std=args.std)
    model = load_model(args.model, args.framework)
    outputs = model.predict_fn()(x)
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
    """The method options of ``args``."""
    return Options(n_samples=args.n_samples, noise_level=args.noise_level, steps=args.steps,
                   batch_size=args.batch_size, seed=args.seed, layer=args.layer)


def compute_maps(method: Method, model: Model, x: np.ndarray, target: np.ndarray,
                 options: Options) -> np.ndarray:
    """``compute`` with the model's refusals turned into one-line command errors."""
    try:
        return compute(method, model, x, target, options)
    except (ValueError, TypeError) as error:
        raise CommandError(f"{method.name}: {error}") from None


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
    for name in ("n_samples", "steps", "batch_size"):
        if getattr(args, name) < 1:
            raise CommandError(f"--{name.replace('_', '-')}: expected a positive integer, "
                               f"got {getattr(args, name)}")
    if args.noise_level < 0:
        raise CommandError(f"--noise-level: expected a non-negative number, got {args.noise_level}")
    if args.seed < 0:
        raise CommandError(f"--seed: expected a non-negative integer, got {args.seed}")
