"""The ``saliency`` command: ``saliency demo`` and ``saliency explain``.

``saliency demo`` reproduces the paper's figures on the shipped digits model
(:mod:`adapters.demo`) in the framework of your choice; ``saliency explain`` computes a map
for your own model and images. Both write PNG files (and ``.npy`` raw maps for
``explain``) and print where each went. Bad input (a missing file, an unreadable image, an
unknown framework or method, a target out of range, a model that does not import) ends
the command with one line on stderr and exit status 2, and leaves nothing half-written in
the output folder: files are written to a temporary folder beside it and moved in at the
end.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

import visualize as vis
from saliency_core import (
    grad_cam,
    grad_cam_plus_plus,
    guided_grad_cam,
    integrated_gradients,
    occlusion,
    smoothgrad,
    vanilla_gradient,
)

from .models import FRAMEWORKS, Model

__all__ = ["METHODS", "main"]

#: The demo network's last convolutional block (after its ReLU), for Grad-CAM.
DEMO_CAM_LAYER = "relu3"


class CommandError(Exception):
    """A problem with the user's input: reported in one line, exit status 2."""


# --------------------------------------------------------------------------- methods


@dataclass(frozen=True)
class Options:
    n_samples: int = 50
    noise_level: float = 0.15
    steps: int = 50
    batch_size: int = 64
    seed: int | None = 0
    layer: str | None = None


def _smooth(fn: Callable, x: np.ndarray, target: np.ndarray, options: Options,
            aggregate: str = "mean") -> np.ndarray:
    return smoothgrad(fn, x, target, n_samples=options.n_samples,
                      noise_level=options.noise_level, aggregate=aggregate,
                      batch_size=options.batch_size, seed=options.seed, progress=True)


def _ig(model: Model, options: Options) -> Callable:
    return partial(integrated_gradients, model.gradient_fn(), steps=options.steps,
                   batch_size=options.batch_size)


def _cam(method: Callable, model: Model, options: Options) -> Callable:
    if options.layer is None:
        raise CommandError("Grad-CAM needs --layer NAME (the last convolutional layer, say)")
    layer_fn, channel_axis = model.layer_fn(options.layer)
    return partial(method, layer_fn, channel_axis=channel_axis, input_channel_axis=-1,
                   batch_size=options.batch_size)


#: name -> (description, compute(model, x, target, options) -> maps); x is channels-last.
METHODS: dict[str, tuple[str, Callable[[Model, np.ndarray, np.ndarray, Options], np.ndarray]]] = {
    "gradient": ("the vanilla gradient", lambda m, x, t, o: vanilla_gradient(
        m.gradient_fn(), x, t, batch_size=o.batch_size)),
    "smoothgrad": ("SmoothGrad", lambda m, x, t, o: _smooth(m.gradient_fn(), x, t, o)),
    "smoothgrad-squared": ("SmoothGrad-squared", lambda m, x, t, o: _smooth(
        m.gradient_fn(), x, t, o, aggregate="square")),
    "vargrad": ("VarGrad", lambda m, x, t, o: _smooth(m.gradient_fn(), x, t, o, "variance")),
    "integrated-gradients": ("integrated gradients", lambda m, x, t, o: _ig(m, o)(x, t)),
    "smoothgrad-ig": ("SmoothGrad over integrated gradients", lambda m, x, t, o: _smooth(
        _ig(m, o), x, t, o)),
    "guided": ("guided backpropagation", lambda m, x, t, o: vanilla_gradient(
        m.gradient_fn(relu_rule="guided"), x, t, batch_size=o.batch_size)),
    "smoothgrad-guided": ("SmoothGrad over guided backpropagation", lambda m, x, t, o: _smooth(
        m.gradient_fn(relu_rule="guided"), x, t, o)),
    "grad-cam": ("Grad-CAM (needs --layer)", lambda m, x, t, o: _cam(grad_cam, m, o)(x, t)),
    "grad-cam++": ("Grad-CAM++ (needs --layer)", lambda m, x, t, o: _cam(
        grad_cam_plus_plus, m, o)(x, t)),
    "smooth-grad-cam++": ("Smooth Grad-CAM++ (needs --layer)", lambda m, x, t, o: _smooth(
        _cam(grad_cam_plus_plus, m, o), x, t, o)),
}


# --------------------------------------------------------------------------- output


def _say(message: str) -> None:
    print(message, flush=True)


@contextlib.contextmanager
def _staged_output(out: Path) -> Iterator[Path]:
    """A temporary folder beside ``out`` whose files move into ``out`` only on success."""
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-partial-", dir=out.parent))
    try:
        yield staging
        out.mkdir(exist_ok=True)
        for item in sorted(staging.iterdir()):
            os.replace(item, out / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _heat(maps: np.ndarray) -> np.ndarray:
    """The paper's display: absolute values, summed over channels, capped at the 99th pct."""
    return vis.grayscale(maps, channel_axis=-1 if maps.ndim == 4 else None)


# --------------------------------------------------------------------------- demo


def _demo(args: argparse.Namespace) -> int:
    from . import demo

    started = time.perf_counter()
    _say(f"saliency demo: the digits CNN in {args.framework} "
         f"(held-out accuracy {demo.load_metadata()['test_accuracy']:.1%}), seed {args.seed}")
    model = Model(demo.build(args.framework), args.framework,
                  layers=_demo_layers(args.framework))
    images, labels = demo.load_samples()
    pick = [int(np.flatnonzero(labels == digit)[0]) for digit in (0, 2, 3, 7)]
    x, y = images[pick], labels[pick]
    predicted = model.predict_fn()(x).argmax(axis=1)
    options = Options(seed=args.seed)
    sample_titles = [f"digit {label}" for label in y]
    figures: list[tuple[str, Any]] = []

    with _staged_output(Path(args.out)) as staging:
        def figure(name: str, title: str, image: Any) -> None:
            path = staging / name
            vis.save(image, path)
            figures.append((name, title))
            _say(f"  wrote {Path(args.out) / name}  ({title})")

        gradient = model.gradient_fn()
        vanilla = vanilla_gradient(gradient, x, predicted)
        smooth = _smooth(gradient, x, predicted, options)
        figure("vanilla_vs_smoothgrad.png", "vanilla gradient against SmoothGrad",
               vis.grid([[image, _heat(v), _heat(s)]
                         for image, v, s in zip(x, vanilla, smooth, strict=True)],
                        titles=["input", "gradient", "SmoothGrad"], row_labels=sample_titles,
                        cell_size=112))

        levels = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
        sweep = [smoothgrad(gradient, x, predicted, n_samples=50, noise_level=level,
                            seed=args.seed) for level in levels]
        figure("noise_levels.png", "noise level sweep, n = 50 (paper Fig. 3)",
               vis.grid([[x[i]] + [_heat(m[i]) for m in sweep] for i in range(len(x))],
                        titles=["input"] + [f"{level:.0%}" for level in levels],
                        row_labels=sample_titles, cell_size=96))

        sizes = (1, 5, 10, 20, 50, 100)
        sweep = [smoothgrad(gradient, x, predicted, n_samples=n, seed=args.seed) for n in sizes]
        figure("sample_sizes.png", "sample size sweep, noise 15% (paper Fig. 4)",
               vis.grid([[x[i]] + [_heat(m[i]) for m in sweep] for i in range(len(x))],
                        titles=["input"] + [f"n = {n}" for n in sizes],
                        row_labels=sample_titles, cell_size=96))

        rows = []
        for i in range(len(x)):
            rows.append([
                x[i],
                vis.apply_colormap(vis.diverging(smooth[i]), cmap="blue_grey_red"),
                vis.grayscale(smooth[i], clip_percentile=100.0),
                _heat(smooth[i]),
                _heat(vis.times_input(smooth[i], x[i])),
            ])
        figure("visualization_techniques.png", "signed, absolute, capped, times input (3.1)",
               vis.grid(rows, titles=["input", "signed", "|map|", "|map| capped p99",
                                      "map x input"], row_labels=sample_titles, cell_size=96))

        combined = {
            "gradient": vanilla,
            "SmoothGrad": smooth,
            "IG": _ig(model, options)(x, predicted),
            "SmoothGrad IG": _smooth(_ig(model, Options(steps=10)), x, predicted,
                                     Options(n_samples=20, seed=args.seed)),
        }
        if _has_relu_rules(model):
            guided = model.gradient_fn(relu_rule="guided")
            combined["guided BP"] = vanilla_gradient(guided, x, predicted)
            combined["SmoothGrad guided"] = _smooth(guided, x, predicted, options)
        figure("combined_methods.png", "SmoothGrad combined with other methods (3.4)",
               vis.grid([[x[i]] + [_heat(m[i]) for m in combined.values()]
                         for i in range(len(x))],
                        titles=["input", *combined], row_labels=sample_titles, cell_size=96))

        figure("discriminativity.png", "two digits in one image, one map per class (3.3)",
               _discriminativity_figure(model, images, labels, options))

        figure("cam_methods.png", "Grad-CAM, Grad-CAM++, Guided Grad-CAM, occlusion",
               _cam_figure(model, x, predicted, smooth, sample_titles, options))

    _say(f"saliency demo: {len(figures)} figures in {Path(args.out)} "
         f"({time.perf_counter() - started:.1f} s)")
    return 0


def _cam_figure(model: Model, x: np.ndarray, target: np.ndarray, smooth: np.ndarray,
                titles: list[str], options: Options) -> Any:
    """Class activation maps of the last convolutional block beside SmoothGrad."""
    layer_fn, channel_axis = model.layer_fn(DEMO_CAM_LAYER)
    cam_options = dict(layer_fn=layer_fn, channel_axis=channel_axis, input_channel_axis=-1)
    cam = grad_cam(layer_fn, x, target, channel_axis=channel_axis)
    cam_pp = grad_cam_plus_plus(layer_fn, x, target, channel_axis=channel_axis)
    smooth_cam_pp = _smooth(partial(grad_cam_plus_plus, layer_fn, channel_axis=channel_axis),
                            x, target, options)
    guided = guided_grad_cam(model.gradient_fn(relu_rule="guided"), x, target, **cam_options)
    occluded = occlusion(model.predict_fn(), x, target, window=(4, 4, 1), stride=(2, 2, 1))
    rows = [[x[i], _heat(smooth[i]), vis.grayscale(cam[i], channel_axis=None),
             vis.grayscale(cam_pp[i], channel_axis=None),
             vis.grayscale(smooth_cam_pp[i], channel_axis=None), _heat(guided[i]),
             vis.grayscale(occluded[i], sign="positive")] for i in range(len(x))]
    return vis.grid(rows, titles=["input", "SmoothGrad", "Grad-CAM", "Grad-CAM++",
                                  "Smooth GC++", "Guided GC", "occlusion"],
                    row_labels=titles, cell_size=96)


def _has_relu_rules(model: Model) -> bool:
    import inspect

    return "relu_rule" in inspect.signature(model._adapter.gradient_fn).parameters


def _demo_layers(framework: str) -> Callable[[str], tuple[Callable, Callable]] | None:
    if framework != "jax":
        return None
    from .demo import _jax

    def split(layer: str) -> tuple[Callable, Callable]:
        return (partial(_jax.apply_until, layer=layer), partial(_jax.apply_from, layer=layer))

    return split


def _discriminativity_figure(model: Model, images: np.ndarray, labels: np.ndarray,
                             options: Options) -> Any:
    """Two digits side by side: SmoothGrad for each digit's class, and their difference."""
    left, right = (int(np.flatnonzero(labels == d)[0]) for d in (3, 6))
    pair = np.concatenate([images[left], images[right]], axis=1)[None]  # (1, 28, 56, 1)
    gradient = model.gradient_fn()
    maps = {}
    for digit in (3, 6):
        maps[digit] = _smooth(gradient, pair, np.array([digit]), options)[0]
        maps[f"g{digit}"] = vanilla_gradient(gradient, pair, np.array([digit]))[0]
    row_smooth = [pair[0], _heat(maps[3]), _heat(maps[6]),
                  vis.discriminativity(maps[3], maps[6])]
    row_plain = [pair[0], _heat(maps["g3"]), _heat(maps["g6"]),
                 vis.discriminativity(maps["g3"], maps["g6"])]
    return vis.grid([row_plain, row_smooth],
                    titles=["input", "class 3", "class 6", "3 minus 6"],
                    row_labels=["gradient", "SmoothGrad"], cell_size=(224, 112))


# --------------------------------------------------------------------------- explain


def _load_model(spec: str, framework: str | None) -> Model:
    path = Path(spec)
    if path.suffix in (".keras", ".h5", ".pt", ".pt2"):
        if not path.is_file():
            raise CommandError(f"--model: no such file: {spec}")
        if path.suffix in (".keras", ".h5"):
            keras = _import("keras", "tensorflow")
            try:
                handle = keras.saving.load_model(path, safe_mode=True)
            except Exception as error:
                raise CommandError(f"--model: could not load {spec} with Keras: {error}") from None
            return Model(handle, "tensorflow")
        torch = _import("torch", "torch")
        try:
            if path.suffix == ".pt":
                handle = torch.jit.load(str(path), map_location="cpu").eval()
            else:
                handle = torch.export.load(str(path)).module()
        except Exception as error:
            raise CommandError(f"--model: could not load {spec} with PyTorch: {error}") from None
        return Model(handle, "torch")
    module_name, _, function_name = spec.partition(":")
    if not module_name or not function_name:
        raise CommandError(
            f"--model: expected module:function or a .keras/.h5/.pt/.pt2 file, got {spec!r}"
        )
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        raise CommandError(f"--model: could not import {module_name!r}: {error}") from None
    factory = getattr(module, function_name, None)
    if not callable(factory):
        raise CommandError(f"--model: {module_name!r} has no function {function_name!r}")
    try:
        handle = factory()
    except Exception as error:
        raise CommandError(f"--model: {spec}() failed: {type(error).__name__}: {error}") from None
    try:
        return Model(handle, framework)
    except (TypeError, ValueError) as error:
        raise CommandError(f"--model: {spec}() returned an unusable model: {error}") from None


def _import(name: str, extra: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        raise CommandError(
            f"{name} is not installed: pip install \"saliency-toolkit[{extra}]\""
        ) from None


def _read_images(paths: Sequence[str], *, channels: int, size: tuple[int, int] | None,
                 mean: Sequence[float] | None, std: Sequence[float] | None) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    arrays = []
    for name in paths:
        if not Path(name).is_file():
            raise CommandError(f"--input: no such file: {name}")
        try:
            with Image.open(name) as image:
                image = image.convert("RGB" if channels == 3 else "L")
                if size is not None:
                    image = image.resize((size[1], size[0]), Image.BILINEAR)
                array = np.asarray(image, dtype=np.float32) / 255.0
        except (UnidentifiedImageError, OSError) as error:
            raise CommandError(f"--input: cannot read {name} as an image: {error}") from None
        arrays.append(array.reshape(*array.shape[:2], channels))
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise CommandError(f"--input: images of different sizes {sorted(shapes)}; pass --size H W")
    x = np.stack(arrays)
    for name, values in (("mean", mean), ("std", std)):
        if values is not None and len(values) not in (1, channels):
            raise CommandError(f"--{name}: expected 1 or {channels} values, got {len(values)}")
    if mean is not None:
        x = x - np.asarray(mean, dtype=np.float32)
    if std is not None:
        if any(s <= 0 for s in std):
            raise CommandError(f"--std: expected positive values, got {list(std)}")
        x = x / np.asarray(std, dtype=np.float32)
    return x


def _explain(args: argparse.Namespace) -> int:
    if args.method not in METHODS:
        raise CommandError(f"--method: expected one of {', '.join(METHODS)}, got {args.method!r}")
    if args.framework is not None and args.framework not in FRAMEWORKS:
        raise CommandError(
            f"--framework: expected one of {', '.join(FRAMEWORKS)}, got {args.framework!r}"
        )
    for name in ("n_samples", "steps", "batch_size"):
        if getattr(args, name) < 1:
            raise CommandError(f"--{name.replace('_', '-')}: expected a positive integer, "
                               f"got {getattr(args, name)}")
    if args.noise_level < 0:
        raise CommandError(f"--noise-level: expected a non-negative number, got {args.noise_level}")
    x = _read_images(args.input, channels=args.channels, size=args.size, mean=args.mean,
                     std=args.std)
    model = _load_model(args.model, args.framework)
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
    options = Options(n_samples=args.n_samples, noise_level=args.noise_level, steps=args.steps,
                      batch_size=args.batch_size, seed=args.seed, layer=args.layer)
    try:
        maps = METHODS[args.method][1](model, x, target, options)
    except ValueError as error:
        raise CommandError(f"{args.method}: {error}") from None
    heat = _heat(maps)
    with _staged_output(Path(args.out)) as staging:
        for i, name in enumerate(args.input):
            stem = f"{Path(name).stem}_{args.method}"
            vis.save(vis.to_image(heat[i]), staging / f"{stem}_heatmap.png")
            vis.save(vis.overlay(x[i], heat[i], alpha=0.5), staging / f"{stem}_overlay.png")
            np.save(staging / f"{stem}.npy", maps[i])
            _say(f"{name}: {METHODS[args.method][0]} of class {target[i]} "
                 f"(score {outputs[i, target[i]]:.3f})")
            for suffix in ("_heatmap.png", "_overlay.png", ".npy"):
                _say(f"  wrote {Path(args.out) / (stem + suffix)}")
    return 0


# --------------------------------------------------------------------------- parser


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit status 2, no usage dump
        raise CommandError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="saliency", description="SmoothGrad and gradient saliency maps "
                     "for PyTorch, TensorFlow/Keras and JAX models.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    demo = commands.add_parser("demo", help="reproduce the paper's figures on the digits CNN")
    demo.add_argument("--framework", default="torch", help="torch, tensorflow or jax")
    demo.add_argument("--out", default="saliency-figures", help="output folder")
    demo.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")

    explain = commands.add_parser("explain", help="saliency maps for your model and images")
    explain.add_argument("--model", required=True,
                         help="module:function returning a model, or a .keras/.h5/.pt/.pt2 file")
    explain.add_argument("--input", required=True, nargs="+", help="image files")
    explain.add_argument("--target", type=int, help="class to explain (default: predicted)")
    explain.add_argument("--method", default="smoothgrad", help=", ".join(METHODS))
    explain.add_argument("--framework", help="torch, tensorflow or jax (default: detected)")
    explain.add_argument("--layer", help="layer for Grad-CAM methods")
    explain.add_argument("--n-samples", type=int, default=50)
    explain.add_argument("--noise-level", type=float, default=0.15)
    explain.add_argument("--steps", type=int, default=50, help="integrated-gradients steps")
    explain.add_argument("--batch-size", type=int, default=64)
    explain.add_argument("--seed", type=int, default=0)
    explain.add_argument("--channels", type=int, choices=(1, 3), default=3,
                         help="read images as grey (1) or RGB (3)")
    explain.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                         help="resize images to H x W")
    explain.add_argument("--mean", type=float, nargs="+", help="subtract after scaling to [0, 1]")
    explain.add_argument("--std", type=float, nargs="+", help="divide after subtracting --mean")
    explain.add_argument("--out", default="saliency-out", help="output folder")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; returns the exit status (0, or 2 for bad input)."""
    try:
        args = build_parser().parse_args(argv)
        if args.command == "demo":
            if args.framework not in FRAMEWORKS:
                raise CommandError(f"--framework: expected one of {', '.join(FRAMEWORKS)}, "
                                   f"got {args.framework!r}")
            return _demo(args)
        return _explain(args)
    except CommandError as error:
        print(f"saliency: error: {error}", file=sys.stderr)
        return 2


def console() -> None:  # the console script's entry point
    sys.exit(main())


if __name__ == "__main__":
    console()
