"""``saliency demo``: the paper's figures on the shipped digits models, in any framework.

Each figure is one function of a :class:`Scene` (four held-out MNIST digits, the model
trained without input noise, the one trained with it, and the maps several figures share)
returning the image; :data:`FIGURES` lists them with their file names and titles, in the
order they are written. Every figure but the training-noise one shows the model trained
without noise, where the paper's effect shows; every panel is at least
:data:`CELL_SIZE` pixels, the digits enlarged nearest-neighbour. With the same ``--seed``
the figures are the same in PyTorch, TensorFlow and JAX, up to float rounding.

Two figures go beyond the paper: the class activation maps (``cam_methods.png``) and the
methods of other libraries (``more_methods.png``: Blur IG, Guided IG, XRAI, expected
gradients, RISE, NoiseGrad and FusionGrad), each run as ``saliency explain --method`` runs
it, with the command's default numbers (expected gradients, which has no ``--method``,
with the other shipped held-out digits as baselines).

With ``--evaluation`` the command first measures the paper's claims
(:func:`adapters.demo.evaluation.study`) and prints the numbers of each figure beside the
line that reports it, then writes them as ``evaluation.png`` and ``evaluation.json``.

References:
    Smilkov, Thorat, Kim, Viegas, Wattenberg (2017). SmoothGrad: removing noise by adding
    noise. arXiv:1706.03825 (figures 3 and 4; sections 3.1, 3.3, 3.4 and 3.5).
    Jiang et al. (2021). LayerCAM. IEEE TIP 30; Wang et al. (2020). Score-CAM. CVPR
    workshops. Xu, Venugopalan, Sundararajan (2020). Attribution in scale and space (Blur
    IG). Kapishnikov et al. (2021). Guided integrated gradients; Kapishnikov et al. (2019).
    XRAI. Erion et al. (2021). Expected gradients. Petsiuk, Das, Saenko (2018). RISE.
    Bykov et al. (2022). NoiseGrad and FusionGrad.
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
    expected_gradients,
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
from .output import check_out, heat, ranked, say, staged_output

if TYPE_CHECKING:
    from PIL import Image

    from adapters.models import Model

__all__ = [
    "CAM_LAYER",
    "CELL_SIZE",
    "FIGURES",
    "HELP",
    "Scene",
    "add_arguments",
    "cam_methods",
    "combined_methods",
    "discriminativity",
    "evaluation_figure",
    "figure_numbers",
    "make_scene",
    "more_methods",
    "noise_levels",
    "reference_set",
    "run",
    "sample_sizes",
    "training_noise",
    "vanilla_vs_smoothgrad",
    "visualization_techniques",
]

#: The line ``saliency --help`` shows for this command.
HELP = "reproduce the paper's figures on the digits CNN"

#: The side of every square panel, in pixels (a 28x28 digit enlarged 8 times).
CELL_SIZE = 224

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
    parser.add_argument("--framework", default="torch",
                        help="torch, tensorflow or jax (default torch)")
    parser.add_argument("--out", default="saliency-figures",
                        help="output folder (default saliency-figures)")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (default 0)")
    parser.add_argument("--evaluation", action="store_true",
                        help="also measure the paper's claims with the metrics, print the "
                             "numbers beside each figure and write evaluation.png and "
                             "evaluation.json (about a minute on a CPU)")


@dataclass(frozen=True)
class Scene:
    """What the figures draw from.

    Attributes:
        model: the digits network trained without input noise (variant ``"plain"``).
        noisy: the same network trained with input noise (variant ``"noise"``), for the
            training-noise figure.
        gradient: the gradient callback of ``model``, shared by the figures.
        images: every shipped sample ``(20, 28, 28, 1)``; labels: their classes.
        x: the digits of :data:`SHOWN_DIGITS`, ``(4, 28, 28, 1)``.
        target: the class the model predicts for each of them.
        titles: one row label per digit.
        options: SmoothGrad's and integrated gradients' numbers, with the seed.
        vanilla: the gradient of ``x``; smooth: SmoothGrad of ``x``.
    """

    model: Model
    noisy: Model
    gradient: GradientFn
    images: np.ndarray
    labels: np.ndarray
    x: np.ndarray
    target: np.ndarray
    titles: list[str]
    options: Options
    vanilla: np.ndarray
    smooth: np.ndarray


def make_scene(model: Model, *, seed: int, noisy: Model | None = None) -> Scene:
    """The scene of the figures: four digits, the predicted classes and the shared maps.

    Args:
        model: the network the figures explain (the model trained without noise).
        seed: SmoothGrad's noise seed.
        noisy: the network trained with noise, for :func:`training_noise`; default: the
            shipped ``"noise"`` variant in ``model``'s framework.
    """
    images, labels = digits.load_samples()
    pick = [int(np.flatnonzero(labels == digit)[0]) for digit in SHOWN_DIGITS]
    x = images[pick]
    target = model.predict_fn()(x).argmax(axis=1)
    options = Options(seed=seed)
    gradient = model.gradient_fn()
    if noisy is None:
        noisy = digits.model(str(model.framework), variant="noise")
    return Scene(
        model=model, noisy=noisy, gradient=gradient, images=images, labels=labels, x=x,
        target=target,
        titles=[f"digit {label}" for label in labels[pick]], options=options,
        vanilla=vanilla_gradient(gradient, x, target),
        smooth=smooth(gradient, x, target, options),
    )


def _columns(scene: Scene, maps: list[np.ndarray], titles: list[str]) -> Image.Image:
    """One row per digit: the input, then one heatmap per entry of ``maps``."""
    shown = [heat(m) for m in maps]  # whole batches: heat() reads one (H, W, C) as (N, H, W)
    return vis.grid([[scene.x[i]] + [m[i] for m in shown] for i in range(len(scene.x))],
                    titles=["input", *titles], row_labels=scene.titles, cell_size=CELL_SIZE)


def vanilla_vs_smoothgrad(scene: Scene) -> Image.Image:
    """The input, its gradient and SmoothGrad, side by side."""
    return vis.grid([[image, v, s] for image, v, s in
                     zip(scene.x, heat(scene.vanilla), heat(scene.smooth), strict=True)],
                    titles=["input", "gradient", "SmoothGrad"], row_labels=scene.titles,
                    cell_size=CELL_SIZE)


def training_noise(scene: Scene) -> Image.Image:
    """Training with noise against SmoothGrad, the 2x2 of the paper's section 3.5.

    One row per digit: the input, then the gradient and SmoothGrad of the model trained
    without noise, then the same of the model trained with noise, each model explaining
    the class it predicts.
    """
    noisy_gradient = scene.noisy.gradient_fn()
    noisy_target = scene.noisy.predict_fn()(scene.x).argmax(axis=1)
    maps = [
        scene.vanilla,
        scene.smooth,
        vanilla_gradient(noisy_gradient, scene.x, noisy_target),
        smooth(noisy_gradient, scene.x, noisy_target, scene.options),
    ]
    return _columns(scene, maps, ["trained plain: gradient", "trained plain: SmoothGrad",
                                  "trained with noise: gradient",
                                  "trained with noise: SmoothGrad"])


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
            shown,
            times_input,
        ]
        for x, s, shown, times_input in zip(
            scene.x, scene.smooth, heat(scene.smooth),
            heat(vis.times_input(scene.smooth, scene.x)), strict=True)
    ]
    return vis.grid(rows, titles=["input", "signed", "|map|", "|map| capped p99", "map x input"],
                    row_labels=scene.titles, cell_size=CELL_SIZE)


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
        rows.append([pair[0], heat(first[None])[0], heat(second[None])[0],
                     vis.discriminativity(first, second)])
    return vis.grid(rows, titles=["input", *(f"class {digit}" for digit in PAIR),
                                  f"{PAIR[0]} minus {PAIR[1]}"],
                    row_labels=list(methods), cell_size=(2 * CELL_SIZE, CELL_SIZE))


def _gradient(scene: Scene, x: np.ndarray, digit: int) -> np.ndarray:
    return vanilla_gradient(scene.gradient, x, np.array([digit]))[0]


def _smoothgrad(scene: Scene, x: np.ndarray, digit: int) -> np.ndarray:
    return smooth(scene.gradient, x, np.array([digit]), scene.options)[0]


def cam_methods(scene: Scene) -> Image.Image:
    """Class activation maps of :data:`CAM_LAYER` and occlusion, beside SmoothGrad.

    Grad-CAM, Grad-CAM++, Smooth Grad-CAM++ and Guided Grad-CAM share one layer callback;
    Layer-CAM and Score-CAM run through :func:`adapters.cli.methods.compute`, as
    ``saliency explain --method layer-cam --layer relu3`` (or ``score-cam``) runs them.
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
    options = Options(seed=scene.options.seed, layer=CAM_LAYER)
    layer_cams, score_cams = (compute(METHODS[name], model, x, target, options)
                              for name in ("layer-cam", "score-cam"))
    # heat() of the whole batch: one (H, W, C) map alone would be read as (N, H, W)
    smooth_shown, guided_shown = heat(scene.smooth), heat(guided)
    rows = [[x[i], smooth_shown[i], vis.grayscale(cam[i], channel_axis=None),
             vis.grayscale(cam_pp[i], channel_axis=None),
             vis.grayscale(smooth_cam_pp[i], channel_axis=None), guided_shown[i],
             vis.grayscale(layer_cams[i], channel_axis=None),
             vis.grayscale(score_cams[i], channel_axis=None),
             vis.grayscale(occluded[i], sign="positive")] for i in range(len(x))]
    return vis.grid(rows, titles=["input", "SmoothGrad", "Grad-CAM", "Grad-CAM++",
                                  "Smooth GC++", "Guided GC", "Layer-CAM", "Score-CAM",
                                  "occlusion"],
                    row_labels=scene.titles, cell_size=CELL_SIZE)


def reference_set(scene: Scene) -> np.ndarray:
    """Expected gradients' baselines: every shipped held-out digit but the shown ones.

    Returns:
        ``(496, 28, 28, 1)``: :func:`adapters.demo.load_held_out` without the rows equal to
        a digit of ``scene.x``.
    """
    held_out, _ = digits.load_held_out()
    flat = held_out.reshape(len(held_out), -1)
    shown = (flat[:, None, :] == scene.x.reshape(len(scene.x), -1)[None]).all(axis=2)
    return held_out[~shown.any(axis=1)]


def more_methods(scene: Scene) -> Image.Image:
    """The methods of other libraries, beside the gradient and SmoothGrad.

    Blur IG, Guided IG, XRAI, RISE, NoiseGrad and FusionGrad run through
    :func:`adapters.cli.methods.compute` with the command's defaults (``Options``: 50
    steps, XRAI's two integrated gradients of 50 steps each, 2000 RISE masks, 10 model
    copies with weight noise 0.2, FusionGrad's 50 noisy inputs per copy); expected gradients
    draws 50 baselines per digit from :func:`reference_set`. Everything is seeded with the
    scene's seed. XRAI is shown by rank (:func:`~adapters.cli.output.ranked`), the others
    as magnitudes.
    Without scikit-image (XRAI's segmentation, the ``xrai`` extra) the XRAI column is left
    empty and its title says so.
    """
    model, x, target, options = scene.model, scene.x, scene.target, scene.options
    shown: dict[str, np.ndarray | None] = {
        "gradient": heat(scene.vanilla), "SmoothGrad": heat(scene.smooth),
        **{label: heat(compute(METHODS[name], model, x, target, options))
           for label, name in (("Blur IG", "blur-ig"), ("Guided IG", "guided-ig"))},
    }
    try:
        shown["XRAI"] = ranked(compute(METHODS["xrai"], model, x, target, options))
    except ImportError:  # raised before any model call: scikit-image is not installed
        shown["XRAI (needs scikit-image)"] = None
    shown["expected gradients"] = heat(expected_gradients(
        scene.gradient, x, target, baselines=reference_set(scene),
        n_samples=options.n_samples, batch_size=options.batch_size, seed=options.seed))
    for label, name in (("RISE", "rise"), ("NoiseGrad", "noise-grad"),
                        ("FusionGrad", "fusion-grad")):
        shown[label] = heat(compute(METHODS[name], model, x, target, options))
    return vis.grid([[x[i]] + [None if maps is None else maps[i] for maps in shown.values()]
                     for i in range(len(x))],
                    titles=["input", *shown], row_labels=scene.titles, cell_size=CELL_SIZE)


#: ``(file name, title, figure)`` for every figure, in the order they are written.
FIGURES: tuple[tuple[str, str, Callable[[Scene], Image.Image]], ...] = (
    ("training_noise.png", "training with noise against SmoothGrad (3.5)", training_noise),
    ("vanilla_vs_smoothgrad.png", "vanilla gradient against SmoothGrad", vanilla_vs_smoothgrad),
    ("noise_levels.png", "noise level sweep, n = 50 (paper Fig. 3)", noise_levels),
    ("sample_sizes.png", "sample size sweep, noise 15% (paper Fig. 4)", sample_sizes),
    ("visualization_techniques.png", "signed, absolute, capped, times input (3.1)",
     visualization_techniques),
    ("combined_methods.png", "SmoothGrad combined with other methods (3.4)", combined_methods),
    ("discriminativity.png", "two digits in one image, one map per class (3.3)",
     discriminativity),
    ("cam_methods.png", "Grad-CAM, Grad-CAM++, Guided Grad-CAM, Layer-CAM, Score-CAM, "
     "occlusion", cam_methods),
    ("more_methods.png", "Blur IG, Guided IG, XRAI, expected gradients, RISE, NoiseGrad, "
     "FusionGrad", more_methods),
)


def run(args: argparse.Namespace) -> int:
    """Write every figure of :data:`FIGURES` into ``args.out``; returns the exit status 0.

    With ``args.evaluation``, the study runs first, its numbers are printed under each
    figure's line (:func:`figure_numbers`), and ``evaluation.png`` and ``evaluation.json``
    are written last.

    Raises:
        CommandError: if ``args.framework`` is not a known framework, or ``args.seed`` is
            negative.
    """
    check_framework(args.framework)
    if args.seed < 0:
        raise CommandError(f"--seed: expected a non-negative integer, got {args.seed}")
    check_out(Path(args.out))  # before the figures are computed
    started = time.perf_counter()
    accuracy = {variant: digits.load_metadata(variant)["test_accuracy"]
                for variant in digits.VARIANTS}
    say(f"saliency demo: the digits CNN in {args.framework}, seed {args.seed}; held-out "
        f"accuracy {accuracy['plain']:.1%} trained without noise, {accuracy['noise']:.1%} "
        f"trained with noise ({digits.load_metadata()['n_test']} MNIST digits)")
    model = digits.model(args.framework, variant="plain")
    noisy = digits.model(args.framework, variant="noise")
    measured = None
    if args.evaluation:
        say("  measuring (noise levels, sample sizes, methods, training noise, "
            "randomisation) ...")
        measured = evaluation.study(args.framework, seed=args.seed,
                                    progress=lambda part: say(f"    {part}"))
    scene = make_scene(model, seed=args.seed, noisy=noisy)
    out = Path(args.out)
    with staged_output(out) as staging:
        for name, title, figure in FIGURES:
            path = staging.png(name, figure(scene))
            say(f"  wrote {path}  ({title})")
            if measured is not None:
                for line in figure_numbers(name, measured):
                    say(f"      {line}")
        written = len(FIGURES)
        if measured is not None:
            path = staging.png("evaluation.png", evaluation_figure(measured))
            say(f"  wrote {path}  (the paper's claims as numbers)")
            for line in figure_numbers("evaluation.png", measured):
                say(f"      {line}")
            say(f"  wrote {staging.json('evaluation.json', measured.as_dict())}")
            written += 1
    say(f"saliency demo: {written} figures in {out} "
        f"({time.perf_counter() - started:.1f} s)")
    return 0


def _row(values: dict[str, float]) -> str:
    """``deletion 0.123, insertion 0.456, ...`` for one method's means."""
    short = {"deletion AUC": "deletion", "insertion AUC": "insertion"}
    return ", ".join(f"{short.get(name, name)} {values[name]:.3f}"
                     for name in ("deletion AUC", "insertion AUC", "stability", "sparseness")
                     if name in values)


def figure_numbers(name: str, measured: evaluation.Study) -> list[str]:
    """The study's numbers that go with the figure written as ``name`` (may be none).

    Args:
        name: a file name of :data:`FIGURES`, or ``"evaluation.png"``.
        measured: the study.

    Returns:
        Lines of text, means over the study's digits (deletion: lower is better; insertion,
        stability, sparseness: higher is better).
    """
    methods = measured.methods
    lines: list[str] = []
    if name == "training_noise.png":
        for variant, label in (("plain", "trained plain"), ("noise", "trained with noise")):
            lines.append(f"{label} (held-out accuracy {measured.accuracy[variant]:.1%}):")
            lines.extend(f"  {method}: {_row(values)}"
                         for method, values in measured.training[variant].items())
    elif name in ("noise_levels.png", "sample_sizes.png"):
        if name == "noise_levels.png":
            sweep, points = measured.noise, [f"{level:.0%}" for level in measured.noise_levels]
            lines.append(f"SmoothGrad, n = {measured.n_samples}, by noise level:")
        else:
            sweep, points = measured.samples, [f"n={n}" for n in measured.sample_sizes]
            lines.append("SmoothGrad, noise 15%, by sample size:")
        for metric, values in sweep.items():
            cells = "  ".join(f"{point} {value:.3f}"
                              for point, value in zip(points, values, strict=True))
            lines.append(f"  {metric}: {cells}")
        best = int(np.argmax(sweep["stability"]))
        lines.append(f"  stability peaks at {points[best]} ({sweep['stability'][best]:.3f})")
    elif name == "vanilla_vs_smoothgrad.png":
        lines.extend(f"{method}: {_row(methods[method])}"
                     for method in ("gradient", "SmoothGrad", "random"))
    elif name == "combined_methods.png":
        lines.extend(f"{method}: {_row(methods[method])}"
                     for method in ("integrated gradients", "guided backprop"))
    elif name == "cam_methods.png":
        lines.append(f"Grad-CAM: {_row(methods['Grad-CAM'])}")
    elif name == "evaluation.png":
        steps = ", ".join(measured.layers)
        lines.append(f"sanity check, Spearman with the original map as {steps} are "
                     "re-initialised in turn:")
        lines.extend(f"  {method}: " + "  ".join(f"{value:.3f}" for value in values)
                     for method, values in measured.randomisation.items())
    return lines


def evaluation_figure(measured: evaluation.Study) -> Image.Image:
    """Four panels: the noise-level and sample-size sweeps, the methods (and the training
    noise comparison), the sanity check."""
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
    """The methods side by side, and under them the training-noise 2x2 (section 3.5)."""
    from PIL import Image, ImageDraw

    picture = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(picture)
    bottom = _table(draw, 8, f"The methods side by side (SmoothGrad: n = {measured.n_samples}, "
                    "noise 15%)", measured.methods)
    rows = {f"{'plain' if variant == 'plain' else 'noise'}-trained {method}": values
            for variant in ("plain", "noise")
            for method, values in measured.training[variant].items()}
    _table(draw, bottom + 16, "Trained without and with input noise (held-out accuracy "
           f"{measured.accuracy['plain']:.1%}, {measured.accuracy['noise']:.1%})", rows)
    return picture


def _table(draw, top: int, title: str, rows: dict[str, dict[str, float]]) -> int:
    """Draw a titled table of metric means at ``top``; returns the y below it."""
    from PIL import ImageFont

    columns = ("deletion AUC", "insertion AUC", "stability", "sparseness")
    font = ImageFont.load_default()
    draw.text((12, top), title, fill="black", font=font)
    left, first, step = 12, 150, 90
    header = top + 22
    for j, column in enumerate(columns):
        draw.text((left + first + j * step, header), column, fill="black", font=font)
    y = header
    for name, values in rows.items():
        y += 18
        draw.text((left, y), name, fill="black", font=font)
        for j, column in enumerate(columns):
            value = values.get(column)
            text = "-" if value is None else f"{value:.3f}"
            draw.text((left + first + j * step, y), text, fill="black", font=font)
    return y + 18
