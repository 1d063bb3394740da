"""``saliency demo``: the paper's figures on the shipped digits model, in any framework.

Each figure is one function of a :class:`Scene` (four held-out digits, the model, and the
maps several figures share) returning the image; :data:`FIGURES` lists them with their
file names and titles, in the order they are written. With the same ``--seed`` the
figures are the same in PyTorch, TensorFlow and JAX, up to float rounding.

References:
    Smilkov, Thorat, Kim, Viegas, Wattenberg (2017). SmoothGrad: removing noise by adding
    noise. arXiv:1706.03825 (figures 3 and 4; sections 3.1, 3.3 and 3.4).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import visualize as vis
from adapters import demo as digits
from adapters.demo import evaluation
from saliency_core import (
    grad_cam,
    grad_cam_plus_plus,
    guided_grad_cam,
    occlusion,
    smoothgrad,
    vanilla_gradient,
)
from saliency_core.types import GradientFn

from .errors import CommandError, check_framework
from .methods import METHODS, Options, compute, smooth
from .output import check_out, heat, say, staged_output

if TYPE_CHECKING:
    from PIL import Image

    from adapters.models import Model

__all__ = [
    "CAM_LAYER",
    "FIGURES",
    "HELP",
    "Scene",
    "add_arguments",
    "cam_methods",
    "combined_methods",
    "discriminativity",
    "make_scene",
    "noise_levels",
    "run",
    "sample_sizes",
    "vanilla_vs_smoothgrad",
    "visualization_techniques",
]

#: The line ``saliency --help`` shows for this command.
HELP = "reproduce the paper's figures on the digits CNN"

#: The demo network's last convolutional block (after its ReLU), for Grad-CAM.
CAM_LAYER = "relu3"

#: The digits most figures show, one row each (the first held-out sample of each).
SHOWN_DIGITS = (0, 2, 3, 7)

#: The two digits put side by side in the discriminativity figure.
PAIR = (3, 6)

NOISE_LEVELS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5)
SAMPLE_SIZES = (1, 5, 10, 20, 50, 100)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``saliency demo``'s options to ``parser``."""
    parser.add_argument("--framework", default="torch", help="torch, tensorflow or jax")
    parser.add_argument("--out", default="saliency-figures", help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    parser.add_argument("--evaluation", action="store_true",
                        help="also measure the paper's claims with the metrics (evaluation.png "
                             "and evaluation.json; under a minute on a CPU)")


@dataclass(frozen=True)
class Scene:
    """What the figures draw from.

    Attributes:
        model: the digits network.
        gradient: its gradient callback, shared by the figures.
        images: every shipped sample ``(20, 28, 28, 1)``; labels: their classes.
        x: the digits of :data:`SHOWN_DIGITS`, ``(4, 28, 28, 1)``.
        target: the class the model predicts for each of them.
        titles: one row label per digit.
        options: SmoothGrad's and integrated gradients' numbers, with the seed.
        vanilla: the gradient of ``x``; smooth: SmoothGrad of ``x``.
    """

    model: Model
    gradient: GradientFn
    images: np.ndarray
    labels: np.ndarray
    x: np.ndarray
    target: np.ndarray
    titles: list[str]
    options: Options
    vanilla: np.ndarray
    smooth: np.ndarray


def make_scene(model: Model, *, seed: int) -> Scene:
    """The scene of the figures: four digits, the predicted classes and the shared maps."""
    images, labels = digits.load_samples()
    pick = [int(np.flatnonzero(labels == digit)[0]) for digit in SHOWN_DIGITS]
    x = images[pick]
    target = model.predict_fn()(x).argmax(axis=1)
    options = Options(seed=seed)
    gradient = model.gradient_fn()
    return Scene(
        model=model, gradient=gradient, images=images, labels=labels, x=x, target=target,
        titles=[f"digit {label}" for label in labels[pick]], options=options,
        vanilla=vanilla_gradient(gradient, x, target),
        smooth=smooth(gradient, x, target, options),
    )


def _columns(scene: Scene, maps: list[np.ndarray], titles: list[str]) -> Image.Image:
    """One row per digit: the input, then one heatmap per entry of ``maps``."""
    return vis.grid([[scene.x[i]] + [heat(m[i]) for m in maps] for i in range(len(scene.x))],
                    titles=["input", *titles], row_labels=scene.titles, cell_size=96)


def vanilla_vs_smoothgrad(scene: Scene) -> Image.Image:
    """The input, its gradient and SmoothGrad, side by side."""
    return vis.grid([[image, heat(v), heat(s)]
                     for image, v, s in zip(scene.x, scene.vanilla, scene.smooth, strict=True)],
                    titles=["input", "gradient", "SmoothGrad"], row_labels=scene.titles,
                    cell_size=112)


def noise_levels(scene: Scene) -> Image.Image:
    """SmoothGrad at each of :data:`NOISE_LEVELS`, 50 samples (paper figure 3)."""
    sweep = [smoothgrad(scene.gradient, scene.x, scene.target, n_samples=50, noise_level=level,
                        seed=scene.options.seed) for level in NOISE_LEVELS]
    return _columns(scene, sweep, [f"{level:.0%}" for level in NOISE_LEVELS])


def sample_sizes(scene: Scene) -> Image.Image:
    """SmoothGrad with each of :data:`SAMPLE_SIZES` samples, noise 15% (paper figure 4)."""
    sweep = [smoothgrad(scene.gradient, scene.x, scene.target, n_samples=n,
                        seed=scene.options.seed) for n in SAMPLE_SIZES]
    return _columns(scene, sweep, [f"n = {n}" for n in SAMPLE_SIZES])


def visualization_techniques(scene: Scene) -> Image.Image:
    """SmoothGrad signed, absolute, capped at the 99th percentile, times the input (3.1)."""
    rows = [
        [
            x,
            vis.apply_colormap(vis.diverging(s), cmap="blue_grey_red"),
            vis.grayscale(s, clip_percentile=100.0),
            heat(s),
            heat(vis.times_input(s, x)),
        ]
        for x, s in zip(scene.x, scene.smooth, strict=True)
    ]
    return vis.grid(rows, titles=["input", "signed", "|map|", "|map| capped p99", "map x input"],
                    row_labels=scene.titles, cell_size=96)


def combined_methods(scene: Scene) -> Image.Image:
    """SmoothGrad over integrated gradients and guided backpropagation (3.4)."""
    guided = scene.model.gradient_fn(relu_rule="guided")
    combined = {
        "gradient": scene.vanilla,
        "SmoothGrad": scene.smooth,
        "IG": compute(METHODS["integrated-gradients"], scene.model, scene.x, scene.target,
                      scene.options),
        "SmoothGrad IG": compute(METHODS["smoothgrad-ig"], scene.model, scene.x, scene.target,
                                 Options(n_samples=20, steps=10, seed=scene.options.seed)),
        "guided BP": vanilla_gradient(guided, scene.x, scene.target),
        "SmoothGrad guided": smooth(guided, scene.x, scene.target, scene.options),
    }
    return _columns(scene, list(combined.values()), list(combined))


def discriminativity(scene: Scene) -> Image.Image:
    """Two digits in one image: a map for each digit's class, and their difference (3.3)."""
    left, right = (int(np.flatnonzero(scene.labels == digit)[0]) for digit in PAIR)
    pair = np.concatenate([scene.images[left], scene.images[right]], axis=1)[None]
    methods = {"gradient": _gradient, "SmoothGrad": _smoothgrad}
    rows = []
    for method in methods.values():
        first, second = (method(scene, pair, digit) for digit in PAIR)
        rows.append([pair[0], heat(first), heat(second), vis.discriminativity(first, second)])
    return vis.grid(rows, titles=["input", *(f"class {digit}" for digit in PAIR),
                                  f"{PAIR[0]} minus {PAIR[1]}"],
                    row_labels=list(methods), cell_size=(224, 112))


def _gradient(scene: Scene, x: np.ndarray, digit: int) -> np.ndarray:
    return vanilla_gradient(scene.gradient, x, np.array([digit]))[0]


def _smoothgrad(scene: Scene, x: np.ndarray, digit: int) -> np.ndarray:
    return smooth(scene.gradient, x, np.array([digit]), scene.options)[0]


def cam_methods(scene: Scene) -> Image.Image:
    """Class activation maps of :data:`CAM_LAYER` and occlusion, beside SmoothGrad.

    Grad-CAM, Grad-CAM++, Smooth Grad-CAM++ and Guided Grad-CAM share one layer callback.
    """
    model, x, target = scene.model, scene.x, scene.target
    layer_fn, channel_axis = model.layer_fn(CAM_LAYER)
    cam = grad_cam(layer_fn, x, target, channel_axis=channel_axis)
    cam_pp = grad_cam_plus_plus(layer_fn, x, target, channel_axis=channel_axis)
    smooth_cam_pp = smooth(partial(grad_cam_plus_plus, layer_fn, channel_axis=channel_axis),
                           x, target, scene.options)
    guided = guided_grad_cam(model.gradient_fn(relu_rule="guided"), x, target,
                             layer_fn=layer_fn, channel_axis=channel_axis,
                             input_channel_axis=-1)
    occluded = occlusion(model.predict_fn(), x, target, window=(4, 4, 1), stride=(2, 2, 1))
    rows = [[x[i], heat(scene.smooth[i]), vis.grayscale(cam[i], channel_axis=None),
             vis.grayscale(cam_pp[i], channel_axis=None),
             vis.grayscale(smooth_cam_pp[i], channel_axis=None), heat(guided[i]),
             vis.grayscale(occluded[i], sign="positive")] for i in range(len(x))]
    return vis.grid(rows, titles=["input", "SmoothGrad", "Grad-CAM", "Grad-CAM++",
                                  "Smooth GC++", "Guided GC", "occlusion"],
                    row_labels=scene.titles, cell_size=96)


#: ``(file name, title, figure)`` for every figure, in the order they are written.
FIGURES: tuple[tuple[str, str, Callable[[Scene], Image.Image]], ...] = (
    ("vanilla_vs_smoothgrad.png", "vanilla gradient against SmoothGrad", vanilla_vs_smoothgrad),
    ("noise_levels.png", "noise level sweep, n = 50 (paper Fig. 3)", noise_levels),
    ("sample_sizes.png", "sample size sweep, noise 15% (paper Fig. 4)", sample_sizes),
    ("visualization_techniques.png", "signed, absolute, capped, times input (3.1)",
     visualization_techniques),
    ("combined_methods.png", "SmoothGrad combined with other methods (3.4)", combined_methods),
    ("discriminativity.png", "two digits in one image, one map per class (3.3)",
     discriminativity),
    ("cam_methods.png", "Grad-CAM, Grad-CAM++, Guided Grad-CAM, occlusion", cam_methods),
)


def run(args: argparse.Namespace) -> int:
    """Write every figure of :data:`FIGURES` into ``args.out``; returns the exit status 0.

    Raises:
        CommandError: if ``args.framework`` is not a known framework, or ``args.seed`` is
            negative.
    """
    check_framework(args.framework)
    if args.seed < 0:
        raise CommandError(f"--seed: expected a non-negative integer, got {args.seed}")
    check_out(Path(args.out))  # before the figures are computed
    started = time.perf_counter()
    say(f"saliency demo: the digits CNN in {args.framework} "
        f"(held-out accuracy {digits.load_metadata()['test_accuracy']:.1%}), seed {args.seed}")
    scene = make_scene(digits.model(args.framework), seed=args.seed)
    out = Path(args.out)
    with staged_output(out) as staging:
        for name, title, figure in FIGURES:
            path = staging.png(name, figure(scene))
            say(f"  wrote {path}  ({title})")
        written = len(FIGURES)
        if args.evaluation:
            say("  measuring (noise levels, sample sizes, methods, randomisation) ...")
            measured = evaluation.study(args.framework, seed=args.seed,
                                        progress=lambda part: say(f"    {part}"))
            path = staging.png("evaluation.png", evaluation_figure(measured))
            say(f"  wrote {path}  (the paper's claims as numbers)")
            say(f"  wrote {staging.json('evaluation.json', measured.as_dict())}")
            written += 1
    say(f"saliency demo: {written} figures in {out} "
        f"({time.perf_counter() - started:.1f} s)")
    return 0


def evaluation_figure(measured: evaluation.Study) -> Image.Image:
    """Four panels: the noise-level and sample-size sweeps, the methods, the sanity check."""
    from PIL import Image, ImageDraw, ImageFont

    size = (520, 340)
    unit = (0.0, 1.0)
    sweeps = ("deletion AUC", "insertion AUC", "stability", "sparseness")
    panels = [
        vis.line_chart(measured.noise_levels, {m: measured.noise[m] for m in sweeps},
                       title=f"SmoothGrad against the noise level (n = {measured.n_samples})",
                       xlabel="noise level (fraction of the input's range)", ylabel="mean",
                       size=size, y_range=unit),
        vis.line_chart(measured.sample_sizes, {m: measured.samples[m] for m in sweeps},
                       title="SmoothGrad against the sample size (noise 15%)",
                       xlabel="n_samples", ylabel="mean", size=size, y_range=unit, log_x=True),
        _methods_table(measured, size),
        vis.line_chart(np.arange(len(measured.layers) + 1), measured.randomisation,
                       title="Sanity check: layers re-initialised from the top",
                       xlabel="layers randomised (0 = original; then "
                              + ", ".join(measured.layers) + ")",
                       ylabel="Spearman with the original map", size=size,
                       y_range=(-0.4, 1.05)),
    ]
    figure = Image.new("RGB", (2 * size[0] + 10, 2 * size[1] + 30), "white")
    for index, panel in enumerate(panels):
        figure.paste(panel, ((index % 2) * (size[0] + 10), 30 + (index // 2) * size[1]))
    caption = (f"The digits CNN ({measured.framework}), means over {measured.n_inputs} held-out "
               "digits; maps as magnitudes; deletion: lower is better, the rest: higher")
    ImageDraw.Draw(figure).text((10, 10), caption, fill="black", font=ImageFont.load_default())
    return figure


def _methods_table(measured: evaluation.Study, size: tuple[int, int]) -> Image.Image:
    from PIL import Image, ImageDraw, ImageFont

    columns = ("deletion AUC", "insertion AUC", "stability", "sparseness")
    picture = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default()
    draw.text((12, 8), f"The methods side by side (SmoothGrad: n = {measured.n_samples}, noise "
              "15%)", fill="black", font=font)
    left, top, first, step = 12, 36, 150, 90
    for j, column in enumerate(columns):
        draw.text((left + first + j * step, top), column, fill="black", font=font)
    for i, name in enumerate(measured.methods):
        y = top + 22 + i * 20
        draw.text((left, y), name, fill="black", font=font)
        for j, column in enumerate(columns):
            value = measured.methods[name].get(column)
            text = "-" if value is None else f"{value:.3f}"
            draw.text((left + first + j * step, y), text, fill="black", font=font)
    return picture
