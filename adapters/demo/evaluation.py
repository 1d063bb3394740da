"""The paper's claims as numbers, on the shipped digits models, in any framework.

The SmoothGrad paper judges maps by eye (section 3.2: "no ground truth"). :func:`study`
measures them instead, with :mod:`saliency_core.metrics`, on held-out digits. Everything
but the training-noise comparison runs on the model trained without input noise
(variant ``"plain"``), where the paper's effect shows:

- the noise-level sweep (paper figure 3): SmoothGrad at noise levels 0-50% against the
  deletion and insertion AUC, stability and sparseness;
- the sample-size sweep (figure 4): the same against ``n_samples``;
- training with noise (section 3.5): the gradient and SmoothGrad of the model trained
  without noise and of the one trained with it (variant ``"noise"``), the 2x2 of the
  paper's figure, with each model's held-out accuracy;
- the methods side by side: the plain gradient, SmoothGrad, integrated gradients, guided
  backpropagation, Grad-CAM, and a random map as the floor;
- the sanity check of Adebayo et al. (2018): each method's map under cascading
  randomisation of the layers, from the top down, as the Spearman rank correlation with the
  original map (a method that passes falls towards 0; one that fails stays high).

Every map is measured as the paper displays it: its magnitude, summed over channels.
Deletion and insertion remove (or reveal) pixels most important first, to the black
background (0), and score the target's softmax probability. All randomness comes from
``seed``, so a study is the same on every run and, up to float rounding, in every
framework, except the sanity check: re-initialised weights are drawn in each framework's
own weight layout (PyTorch's OIHW kernels, HWIO elsewhere), so those curves differ between
frameworks as two random draws do.

References:
    Smilkov et al. (2017). SmoothGrad: removing noise by adding noise. arXiv:1706.03825.
    Adebayo et al. (2018). Sanity checks for saliency maps. NeurIPS.
    Petsiuk et al. (2018). RISE: randomized input sampling for explanation of black-box
    models. BMVC (deletion and insertion).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, cast

import numpy as np

from adapters._backend import reinitialise
from saliency_core import grad_cam, integrated_gradients, metrics, smoothgrad, vanilla_gradient

from . import load_held_out, load_samples
from . import model as demo_model

__all__ = ["METHOD_NAMES", "TRAINING_METHODS", "Study", "magnitude", "study"]

#: The methods of the side-by-side comparison, in the order they are reported.
METHOD_NAMES = ("gradient", "SmoothGrad", "integrated gradients", "guided backprop",
                "Grad-CAM", "random")

#: The maps of the training-noise comparison, for each of :data:`adapters.demo.VARIANTS`.
TRAINING_METHODS = ("gradient", "SmoothGrad")

#: The layer Grad-CAM reads (the last convolutional block, after its ReLU).
CAM_LAYER = "relu3"


@dataclasses.dataclass(frozen=True)
class Study:
    """The measured numbers: means over the inputs (see :func:`study` for the settings).

    Attributes:
        framework: the framework the model ran in.
        n_inputs: how many held-out digits were measured.
        n_samples: SmoothGrad's sample count outside the sample-size sweep (noise 15%).
        seed: the seed of every random draw.
        noise_levels: ``(L,)`` the sweep's noise levels.
        noise: metric name -> ``(L,)`` SmoothGrad's mean at each noise level.
        sample_sizes: ``(S,)`` the sweep's sample sizes.
        samples: metric name -> ``(S,)`` SmoothGrad's mean at each sample size.
        training: variant (``"plain"``, ``"noise"``) -> method (:data:`TRAINING_METHODS`)
            -> metric name -> mean; each variant explains its own predicted classes.
        accuracy: variant -> held-out accuracy on :func:`adapters.demo.load_held_out`.
        methods: method name -> metric name -> mean.
        layers: the layers randomised, top first.
        randomisation: method name -> ``(len(layers) + 1,)`` mean Spearman correlation of
            the map with the original's, after randomising none, then one more layer each.
    """

    framework: str
    n_inputs: int
    n_samples: int
    seed: int
    noise_levels: np.ndarray
    noise: dict[str, np.ndarray]
    sample_sizes: np.ndarray
    samples: dict[str, np.ndarray]
    training: dict[str, dict[str, dict[str, float]]]
    accuracy: dict[str, float]
    methods: dict[str, dict[str, float]]
    layers: tuple[str, ...]
    randomisation: dict[str, np.ndarray]

    def as_dict(self) -> dict[str, Any]:
        """Plain lists and floats, for JSON."""
        def plain(value: Any) -> Any:
            if isinstance(value, np.ndarray):
                return value.tolist()
            if isinstance(value, dict):
                return {key: plain(item) for key, item in value.items()}
            if isinstance(value, tuple):
                return list(value)
            return value

        return {field.name: plain(getattr(self, field.name)) for field in dataclasses.fields(self)}


def magnitude(maps: np.ndarray) -> np.ndarray:
    """The map as the paper shows it: ``|map|`` summed over channels, ``(N, H, W)`` float64
    (channels-last ``(N, H, W, C)`` maps; ``(N, H, W)`` maps, Grad-CAM's, as they are)."""
    maps = np.abs(np.asarray(maps, dtype=np.float64))
    return maps.sum(axis=-1) if maps.ndim == 4 else maps


def study(
    framework: str = "torch",
    *,
    n_inputs: int = 20,
    noise_levels: Sequence[float] = (0.0, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5),
    sample_sizes: Sequence[int] = (1, 3, 10, 30, 100),
    n_samples: int = 50,
    steps: int = 16,
    stability_samples: int = 3,
    seed: int = 0,
    batch_size: int = 256,
    progress: Callable[[str], None] | None = None,
) -> Study:
    """Measure SmoothGrad and its neighbours on the shipped digits models.

    Args:
        framework: ``"torch"``, ``"tensorflow"`` or ``"jax"``.
        n_inputs: how many of the shipped held-out digits to measure (1 to 20).
        noise_levels: the noise-level sweep (relative to each digit's range).
        sample_sizes: the sample-size sweep, at noise level 0.15.
        n_samples: SmoothGrad's sample count outside the sample-size sweep.
        steps: deletion and insertion steps.
        stability_samples: noisy copies per input for :func:`saliency_core.metrics.stability`.
        seed: every random draw (noise, random maps, re-initialised weights) comes from it.
        batch_size: rows per model call.
        progress: called with a short line before each part, for a command's output.

    Returns:
        A :class:`Study`.

    Raises:
        ValueError: ``n_inputs`` outside 1..20 (the shipped samples), or bad options of the
            methods and metrics (their own messages).
    """
    images, _ = load_samples()
    if not isinstance(n_inputs, int) or not 1 <= n_inputs <= len(images):
        raise ValueError(f"n_inputs: expected an int in [1, {len(images)}], got {n_inputs!r}")
    say = progress or (lambda line: None)
    model = demo_model(framework, variant="plain")
    x = images[:n_inputs]
    predict = model.predict_fn()
    target = predict(x).argmax(axis=1)
    gradient = model.gradient_fn()
    guided = model.gradient_fn(relu_rule="guided")
    layer_fn, channel_axis = model.layer_fn(CAM_LAYER)

    def smooth(fn: Callable, *, level: float = 0.15, n: int = n_samples) -> Callable:
        return partial(smoothgrad, fn, n_samples=n, noise_level=level, seed=seed,
                       batch_size=batch_size)

    def measure(maps: np.ndarray, explain: Callable | None, *, predict: Callable = predict,
                target: np.ndarray = target) -> dict[str, float]:
        shown = magnitude(maps)
        options: dict[str, Any] = {"steps": steps, "score": "softmax",
                                   "batch_size": batch_size, "channel_axis": -1}
        values = {
            "deletion AUC": metrics.deletion(predict, x, shown, target, **options).auc,
            "insertion AUC": metrics.insertion(predict, x, shown, target, **options).auc,
            "sparseness": metrics.sparseness(shown),
        }
        if explain is not None:
            values["stability"] = metrics.stability(
                lambda rows, t: magnitude(explain(rows, t)), x, target,
                n_samples=stability_samples, seed=seed, batch_size=batch_size)
        return {name: float(np.mean(value)) for name, value in values.items()}

    say("noise levels")
    by_level = [measure(smooth(gradient, level=level)(x, target), smooth(gradient, level=level))
                for level in noise_levels]
    say("sample sizes")
    by_size = [measure(smooth(gradient, n=n)(x, target), smooth(gradient, n=n))
               for n in sample_sizes]

    say("methods")
    explainers: dict[str, Callable] = {
        "gradient": partial(vanilla_gradient, gradient, batch_size=batch_size),
        "SmoothGrad": smooth(gradient),
        "integrated gradients": partial(integrated_gradients, gradient, steps=steps,
                                        batch_size=batch_size),
        "guided backprop": partial(vanilla_gradient, guided, batch_size=batch_size),
        "Grad-CAM": partial(grad_cam, layer_fn, channel_axis=channel_axis,
                            input_channel_axis=-1, batch_size=batch_size),
    }
    methods = {name: measure(explain(x, target), explain) for name, explain in explainers.items()}
    noise = np.random.default_rng(seed).random(x.shape[:-1])
    methods["random"] = measure(noise, None)

    say("training noise")
    training = {"plain": {name: methods[name] for name in TRAINING_METHODS}}
    noisy = demo_model(framework, variant="noise")
    noisy_predict = noisy.predict_fn()
    noisy_target = noisy_predict(x).argmax(axis=1)
    noisy_explainers: dict[str, Callable] = {
        "gradient": partial(vanilla_gradient, noisy.gradient_fn(), batch_size=batch_size),
        "SmoothGrad": smooth(noisy.gradient_fn()),
    }
    training["noise"] = {
        name: measure(explain(x, noisy_target), explain, predict=noisy_predict,
                      target=noisy_target)
        for name, explain in noisy_explainers.items()
    }
    held_out, held_out_labels = load_held_out()
    accuracy = {}
    for variant, network in (("plain", predict), ("noise", noisy_predict)):
        predicted = np.concatenate([network(held_out[start : start + batch_size]).argmax(axis=1)
                                    for start in range(0, len(held_out), batch_size)])
        accuracy[variant] = float(np.mean(predicted == held_out_labels))

    say("randomisation")
    layers = tuple(model.weight_layers()[::-1])

    def factory(make: Callable[[Any], Callable]) -> Callable:
        def explain_for(randomised: tuple[str, ...], seeds: tuple[int, ...]) -> Callable:
            if not randomised:
                return make(model)
            copy = model.copy_with_weights(reinitialise, layers=list(randomised), seed=seeds[0])
            return make(copy)
        return explain_for

    makers: dict[str, Callable[[Any], Callable]] = {
        "gradient": lambda m: partial(vanilla_gradient, m.gradient_fn(), batch_size=batch_size),
        "SmoothGrad": lambda m: smooth(m.gradient_fn()),
        "guided backprop": lambda m: partial(vanilla_gradient, m.gradient_fn(relu_rule="guided"),
                                             batch_size=batch_size),
        "Grad-CAM": lambda m: partial(grad_cam, m.layer_fn(CAM_LAYER)[0],
                                      channel_axis=channel_axis, input_channel_axis=-1,
                                      batch_size=batch_size),
    }
    randomisation = {}
    for name, make in makers.items():
        with warnings.catch_warnings():
            # a fully randomised network can give constant maps (Grad-CAM's ReLU zeroes
            # them): their correlation is NaN, and the mean is over the others
            warnings.simplefilter("ignore", RuntimeWarning)
            result = metrics.model_randomisation(
                factory(make), x, target, layers=layers, similarity="spearman",
                channel_axis=-1 if name != "Grad-CAM" else None, seed=seed,
                batch_size=batch_size)
            # similarity="spearman" fills result.spearman
            means = np.nanmean(cast(np.ndarray, result.spearman), axis=0)
        randomisation[name] = np.concatenate([[1.0], np.nan_to_num(means, nan=0.0)])

    def column(rows: list[dict[str, float]]) -> dict[str, np.ndarray]:
        return {name: np.array([row[name] for row in rows]) for name in rows[0]}

    return Study(
        framework=str(model.framework), n_inputs=n_inputs, n_samples=n_samples, seed=seed,
        noise_levels=np.asarray(noise_levels, dtype=np.float64), noise=column(by_level),
        sample_sizes=np.asarray(sample_sizes, dtype=np.int64), samples=column(by_size),
        training=training, accuracy=accuracy,
        methods=methods, layers=layers, randomisation=randomisation,
    )
