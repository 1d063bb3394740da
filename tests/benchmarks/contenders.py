"""Everything that computes a SmoothGrad map in the benchmarks, one factory per framework.

A contender is a :class:`Contender`: ``run(n_samples, seed)`` returns the signed SmoothGrad
map (the mean of the noisy gradients, not their magnitude) of the benchmark images as a
float32 NHWC numpy array, so maps from every framework and library compare directly.

Settings shared by every contender (``Setup``): the same numpy weights and images
(:mod:`tests.benchmarks.models`), one target class per image, ``batch_size`` rows per
model call wherever the library lets the caller choose it, and noise of standard deviation
``NOISE = 0.15``. The images span exactly [0, 1], so the relative conventions (the
toolkit's ``noise_level``, PAIR's ``stdev_spread``, tf-keras-vis's ``smooth_noise``: sigma =
level x (max - min) per image) and the absolute ones (Captum's ``stdevs``, xplique's
``noise``) give the same sigma, 0.15.

Where each contender draws its noise:

* toolkit: numpy ``Generator`` from ``seed`` (the toolkit's own convention);
* native loops: the framework's generator (``torch.Generator``, ``tf.random.Generator``,
  ``jax.random``) inside the loop, as a user would write it; the ``native (numpy noise)``
  loops draw exactly the toolkit's numpy stream instead, so their map must equal the
  toolkit's (the benchmark's fairness check);
* Captum: ``torch.normal`` from torch's global generator (``torch.manual_seed(seed)``);
* xplique: ``tf.random.normal`` inside its own ``tf.function`` (``tf.random.set_seed``);
* PAIR and tf-keras-vis: numpy's global ``np.random`` (``np.random.seed(seed)``), float64.

Peers are imported only when their factory runs, so the toolkit's contenders work in the
project's own virtual environment.

TensorFlow: never take an eager ``tf.GradientTape`` through these networks in this
process except where a peer does it itself (tf-keras-vis); eager tapes through strided
1x1 convolutions have crashed processes on these machines. The native loop and the PAIR
callback run their tapes inside ``tf.function``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from saliency_core import smoothgrad
from tests.benchmarks import models

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__all__ = ["KEYS", "NOISE", "PEERS", "Contender", "Setup", "factories"]

#: The noise standard deviation every contender uses (relative 0.15 of a [0, 1] image).
NOISE = 0.15


@dataclass
class Setup:
    """What every contender of one benchmark gets: model spec, weights, images, targets."""

    spec: models.Spec
    n_images: int
    batch_size: int
    weights: dict[str, np.ndarray] = field(init=False)
    x: np.ndarray = field(init=False)  # NHWC float32, each image spans [0, 1]
    targets: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.weights = models.make_weights(self.spec)
        self.x = models.make_inputs(self.spec, self.n_images)
        self.targets = models.make_targets(self.spec, self.n_images)


@dataclass
class Contender:
    """One way of computing the map: ``run(n_samples, seed) -> (N, H, W, C) float32``."""

    key: str  # short name: toolkit, native, native-numpy, captum, pair, xplique, tf-keras-vis
    name: str
    run: Callable[[int, int], np.ndarray]
    rows_per_call: str  # rows per model call, as the library makes them
    noise: str  # where the noise comes from, and its convention
    note: str = ""
    exact_twin_of: str | None = None  # key of the contender whose map this one must equal
    twin_tolerance: float = 1e-4  # largest max |difference| / max |map| allowed for the twin


#: Every contender key, toolkit first; ``peers`` need the bench environment.
KEYS = (
    "toolkit",
    "toolkit-b1",
    "native",
    "native-numpy",
    "captum",
    "xplique",
    "tf-keras-vis",
    "pair",
)
PEERS = ("captum", "xplique", "tf-keras-vis", "pair")


def _toolkit(
    key: str,
    grad_fn: Any,
    x: np.ndarray,
    targets: np.ndarray,
    batch_size: int,
    to_nhwc: Callable[[np.ndarray], np.ndarray],
) -> Contender:
    """``saliency_core.smoothgrad`` over an adapter's gradient callback."""

    def run(n_samples: int, seed: int) -> np.ndarray:
        maps = smoothgrad(
            grad_fn,
            x,
            targets,
            n_samples=n_samples,
            noise_level=NOISE,
            noise="iid",  # the peers draw independent noise: like for like
            batch_size=batch_size,
            seed=seed,
        )
        return to_nhwc(maps)

    if key == "toolkit":
        return Contender(key, "toolkit", run, str(batch_size), "numpy Generator, relative")
    # the result does not depend on batch_size, so this map must equal the toolkit's
    return Contender(
        key,
        f"toolkit (batch_size={batch_size})",
        run,
        str(batch_size),
        "numpy Generator, relative",
        note="PAIR's rows per call, for a comparison at equal settings",
        exact_twin_of="toolkit",
        # Other batch sizes make frameworks pick other kernels, so float rounding differs,
        # and a ReLU input within rounding of zero can flip for one noisy sample: PyTorch's
        # CPU kernels at batch 1 and 50 moved ~200 pixels of one map by 1.4e-3 of its max.
        twin_tolerance=1e-2,
    )


def _same(x: np.ndarray) -> np.ndarray:
    return x


def _numpy_sigmas(x: np.ndarray) -> np.ndarray:
    flat = x.reshape(x.shape[0], -1)
    return (NOISE * (flat.max(axis=1) - flat.min(axis=1))).astype(np.float32)


# ============================================================================ PyTorch


def torch_contenders(
    setup: Setup, keys: frozenset[str] | set[str] = frozenset(KEYS)
) -> list[Contender]:
    import torch

    from adapters import torch as torch_adapter

    model = models.torch_model(setup.spec, setup.weights)
    x_nchw = models.to_nchw(setup.x)
    targets, batch, n_images = setup.targets, setup.batch_size, setup.n_images
    contenders: list[Contender] = []

    grad_fn = torch_adapter.gradient_fn(model)

    contenders.append(_toolkit("toolkit", grad_fn, x_nchw, targets, batch, models.from_nchw))
    contenders.append(_toolkit("toolkit-b1", grad_fn, x_nchw, targets, 1, models.from_nchw))

    x_tensor = torch.from_numpy(x_nchw)
    sigmas = [float(s) for s in _numpy_sigmas(x_nchw)]

    def native_step(noisy: torch.Tensor, target: int) -> torch.Tensor:
        noisy.requires_grad_(True)
        score = model(noisy)[:, target].sum()
        (grad,) = torch.autograd.grad(score, noisy)
        return grad.sum(dim=0, dtype=torch.float64)

    def native(n_samples: int, seed: int) -> np.ndarray:
        generator = torch.Generator().manual_seed(seed)
        total = torch.zeros(x_tensor.shape, dtype=torch.float64)
        for i in range(n_images):
            for start in range(0, n_samples, batch):
                k = min(batch, n_samples - start)
                noisy = torch.randn((k, *x_tensor.shape[1:]), generator=generator)
                noisy.mul_(sigmas[i]).add_(x_tensor[i])
                total[i] += native_step(noisy, int(targets[i]))
        return models.from_nchw((total / n_samples).float().numpy())

    contenders.append(
        Contender("native", "native loop", native, str(batch), "torch.randn, relative")
    )

    def native_numpy(n_samples: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        total = torch.zeros(x_tensor.shape, dtype=torch.float64)
        numpy_sigmas = _numpy_sigmas(x_nchw)
        for i in range(n_images):
            for start in range(0, n_samples, batch):
                k = min(batch, n_samples - start)
                noise = rng.standard_normal((k, *x_nchw.shape[1:]), dtype=np.float32)
                noise *= numpy_sigmas[i]
                noise += x_nchw[i]
                total[i] += native_step(torch.from_numpy(noise), int(targets[i]))
        return models.from_nchw((total / n_samples).float().numpy())

    contenders.append(
        Contender(
            "native-numpy",
            "native loop (numpy noise)",
            native_numpy,
            str(batch),
            "numpy Generator, relative (the toolkit's stream)",
            exact_twin_of="toolkit",
        )
    )

    if "captum" in keys:
        contenders.append(_captum(setup, model, x_tensor))
    if "pair" in keys:
        contenders.append(_pair_torch(setup, model, x_nchw))
    return [c for c in contenders if c.key in keys]


def _captum(setup: Setup, model: Any, x_tensor: Any) -> Contender:
    import captum
    import torch
    from captum.attr import NoiseTunnel, Saliency

    tunnel = NoiseTunnel(Saliency(model))
    per_call = max(1, setup.batch_size // setup.n_images)
    target = torch.from_numpy(setup.targets)

    def run(n_samples: int, seed: int) -> np.ndarray:
        torch.manual_seed(seed)
        maps = tunnel.attribute(
            x_tensor,
            nt_type="smoothgrad",
            nt_samples=n_samples,
            nt_samples_batch_size=per_call,
            stdevs=NOISE,
            target=target,
            abs=False,
        )
        return models.from_nchw(maps.detach().numpy())

    return Contender(
        "captum",
        f"Captum {captum.__version__} NoiseTunnel(Saliency)",
        run,
        f"{per_call * setup.n_images} (nt_samples_batch_size={per_call} x {setup.n_images} images)",
        "torch.normal (global torch seed), absolute stdevs",
        note="abs=False for the signed map",
    )


def _pair_torch(setup: Setup, model: Any, x_nchw: np.ndarray) -> Contender:
    import saliency.core as pair
    import torch

    def call_model(
        x_batch: np.ndarray, call_model_args: Any = None, expected_keys: Any = None
    ) -> dict[str, np.ndarray]:
        inputs = torch.from_numpy(np.asarray(x_batch, dtype=np.float32)).requires_grad_(True)
        score = model(inputs)[:, call_model_args["target"]].sum()
        (grad,) = torch.autograd.grad(score, inputs)
        return {pair.base.INPUT_OUTPUT_GRADIENTS: grad.numpy()}

    method = pair.GradientSaliency()

    def run(n_samples: int, seed: int) -> np.ndarray:
        np.random.seed(seed)  # noqa: NPY002 - PAIR draws from numpy's global state
        maps = [
            method.GetSmoothedMask(
                x_nchw[i],
                call_model,
                {"target": int(setup.targets[i])},
                stdev_spread=NOISE,
                nsamples=n_samples,
                magnitude=False,
            )
            for i in range(setup.n_images)
        ]
        return models.from_nchw(np.stack(maps).astype(np.float32))

    return Contender(
        "pair",
        f"PAIR saliency {_version('saliency')} GetSmoothedMask",
        run,
        "1 (fixed: one model call per noisy sample)",
        "np.random.normal float64 (global seed), relative stdev_spread",
        note="magnitude=False for the signed map; callback: torch autograd",
    )


# ============================================================================ TensorFlow


def tensorflow_contenders(
    setup: Setup, keys: frozenset[str] | set[str] = frozenset(KEYS)
) -> list[Contender]:
    import tensorflow as tf

    from adapters import tensorflow as tf_adapter

    model = models.keras_model(setup.spec, setup.weights)
    x, targets, batch = setup.x, setup.targets, setup.batch_size
    contenders: list[Contender] = []

    grad_fn = tf_adapter.gradient_fn(model)

    contenders.append(_toolkit("toolkit", grad_fn, x, targets, batch, _same))
    contenders.append(_toolkit("toolkit-b1", grad_fn, x, targets, 1, _same))

    shape = x.shape[1:]
    generator = tf.random.Generator.from_seed(0)

    @tf.function(
        input_signature=[
            tf.TensorSpec(shape, tf.float32),
            tf.TensorSpec((), tf.float32),
            tf.TensorSpec((), tf.int32),
            tf.TensorSpec((), tf.int32),
        ]
    )
    def native_chunk(
        image: tf.Tensor, sigma: tf.Tensor, target: tf.Tensor, rows: tf.Tensor
    ) -> tf.Tensor:
        noisy = image[None] + sigma * generator.normal(tf.concat([[rows], shape], axis=0))
        return _tf_gradient_sum(model, noisy, target)

    @tf.function(
        input_signature=[tf.TensorSpec((None, *shape), tf.float32), tf.TensorSpec((), tf.int32)]
    )
    def numpy_chunk(noisy: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
        return _tf_gradient_sum(model, noisy, target)

    sigmas = _numpy_sigmas(x)

    def native(n_samples: int, seed: int) -> np.ndarray:
        generator.reset_from_seed(seed)
        total = np.zeros(x.shape, np.float64)
        for i in range(len(x)):
            for start in range(0, n_samples, batch):
                rows = min(batch, n_samples - start)
                total[i] += native_chunk(x[i], sigmas[i], int(targets[i]), rows).numpy()
        return (total / n_samples).astype(np.float32)

    contenders.append(
        Contender(
            "native",
            "native loop",
            native,
            str(batch),
            "tf.random.Generator in the tf.function, relative",
        )
    )

    def native_numpy(n_samples: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        total = np.zeros(x.shape, np.float64)
        for i in range(len(x)):
            for start in range(0, n_samples, batch):
                rows = min(batch, n_samples - start)
                noise = rng.standard_normal((rows, *shape), dtype=np.float32)
                noise *= sigmas[i]
                noise += x[i]
                total[i] += numpy_chunk(noise, int(targets[i])).numpy()
        return (total / n_samples).astype(np.float32)

    contenders.append(
        Contender(
            "native-numpy",
            "native loop (numpy noise)",
            native_numpy,
            str(batch),
            "numpy Generator, relative (the toolkit's stream)",
            exact_twin_of="toolkit",
        )
    )

    if "xplique" in keys:
        contenders.append(_xplique(setup, model))
    if "tf-keras-vis" in keys:
        contenders.append(_tf_keras_vis(setup, model))
    if "pair" in keys:
        contenders.append(_pair_tensorflow(setup, model))
    return [c for c in contenders if c.key in keys]


def _tf_gradient_sum(model: Any, noisy: Any, target: Any) -> Any:
    """Inside a tf.function: the sum over rows of d output[:, target] / d input."""
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(noisy)
        score = tf.reduce_sum(model(noisy, training=False)[:, target])
    return tf.reduce_sum(tape.gradient(score, noisy), axis=0)


def _xplique(setup: Setup, model: Any) -> Contender:
    import tensorflow as tf
    import xplique
    from xplique.attributions import SmoothGrad

    one_hot = np.eye(setup.spec.n_classes, dtype=np.float32)[setup.targets]
    explainers: dict[int, Any] = {}

    def run(n_samples: int, seed: int) -> np.ndarray:
        if n_samples not in explainers:
            explainers[n_samples] = SmoothGrad(
                model, batch_size=setup.batch_size, nb_samples=n_samples, noise=NOISE, reducer=None
            )
        tf.random.set_seed(seed)
        return np.asarray(explainers[n_samples].explain(setup.x, one_hot), dtype=np.float32)

    return Contender(
        "xplique",
        f"xplique {xplique.__version__} SmoothGrad",
        run,
        f"{setup.batch_size} (batch_size={setup.batch_size})",
        "tf.random.normal in a tf.function (global tf seed), absolute noise",
        note="reducer=None for the full map",
    )


def _tf_keras_vis(setup: Setup, model: Any) -> Contender:
    from tf_keras_vis.saliency import Saliency
    from tf_keras_vis.utils.scores import CategoricalScore

    saliency = Saliency(model, clone=False)
    score = CategoricalScore([int(t) for t in setup.targets])

    def run(n_samples: int, seed: int) -> np.ndarray:
        np.random.seed(seed)  # noqa: NPY002 - tf-keras-vis draws from numpy's global state
        maps = saliency(
            score,
            setup.x,
            smooth_samples=n_samples,
            smooth_noise=NOISE,
            keepdims=True,
            gradient_modifier=None,
            normalize_map=False,
        )
        return np.asarray(maps, dtype=np.float32)

    return Contender(
        "tf-keras-vis",
        f"tf-keras-vis {_version('tf-keras-vis')} Saliency",
        run,
        f"{setup.n_images} (fixed: one noisy copy of every image per call)",
        "np.random.normal float64 for all samples at once (global seed), relative smooth_noise",
        note="eager GradientTape; keepdims=True, gradient_modifier=None, normalize_map=False",
    )


def _pair_tensorflow(setup: Setup, model: Any) -> Contender:
    import saliency.core as pair
    import tensorflow as tf

    shape = setup.x.shape[1:]

    @tf.function(
        input_signature=[tf.TensorSpec((None, *shape), tf.float32), tf.TensorSpec((), tf.int32)]
    )
    def gradient(inputs: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            tape.watch(inputs)
            score = tf.reduce_sum(model(inputs, training=False)[:, target])
        return tape.gradient(score, inputs)

    def call_model(
        x_batch: np.ndarray, call_model_args: Any = None, expected_keys: Any = None
    ) -> dict[str, np.ndarray]:
        batch = np.asarray(x_batch, dtype=np.float32)
        grads = gradient(batch, call_model_args["target"]).numpy()
        return {pair.base.INPUT_OUTPUT_GRADIENTS: grads}

    method = pair.GradientSaliency()

    def run(n_samples: int, seed: int) -> np.ndarray:
        np.random.seed(seed)  # noqa: NPY002 - PAIR draws from numpy's global state
        maps = [
            method.GetSmoothedMask(
                setup.x[i],
                call_model,
                {"target": int(setup.targets[i])},
                stdev_spread=NOISE,
                nsamples=n_samples,
                magnitude=False,
            )
            for i in range(setup.n_images)
        ]
        return np.stack(maps).astype(np.float32)

    return Contender(
        "pair",
        f"PAIR saliency {_version('saliency')} GetSmoothedMask",
        run,
        "1 (fixed: one model call per noisy sample)",
        "np.random.normal float64 (global seed), relative stdev_spread",
        note="magnitude=False; callback: tape inside tf.function",
    )


# ============================================================================ JAX


def jax_contenders(
    setup: Setup, keys: frozenset[str] | set[str] = frozenset(KEYS)
) -> list[Contender]:
    import functools

    import jax
    import jax.numpy as jnp

    from adapters import jax as jax_adapter

    apply_fn, params = models.jax_model(setup.spec, setup.weights)
    x, targets, batch = setup.x, setup.targets, setup.batch_size
    contenders: list[Contender] = []

    grad_fn = jax_adapter.gradient_fn(apply_fn, params=params)

    contenders.append(_toolkit("toolkit", grad_fn, x, targets, batch, _same))
    # its own callback: a JAX callback pads small chunks up to the largest it has run
    grad_fn_b1 = jax_adapter.gradient_fn(apply_fn, params=params)
    contenders.append(_toolkit("toolkit-b1", grad_fn_b1, x, targets, 1, _same))

    def row_gradients(params: Any, noisy: Any, target: Any) -> Any:
        def score(row: Any) -> Any:
            return apply_fn(params, row[None])[0, target]

        return jax.vmap(jax.grad(score))(noisy)

    @functools.partial(jax.jit, static_argnames="rows")
    def native_chunk(
        params: Any, key: Any, image: Any, sigma: Any, target: Any, *, rows: int
    ) -> Any:
        noisy = image + sigma * jax.random.normal(key, (rows, *image.shape), image.dtype)
        return row_gradients(params, noisy, target).sum(axis=0)

    @jax.jit
    def numpy_chunk(params: Any, noisy: Any, target: Any) -> Any:
        return row_gradients(params, noisy, target).sum(axis=0)

    sigmas = _numpy_sigmas(x)
    images = jnp.asarray(x)

    def native(n_samples: int, seed: int) -> np.ndarray:
        key = jax.random.key(seed)
        sums = []
        for i in range(len(x)):
            total = jnp.zeros(x.shape[1:], jnp.float32)
            for start in range(0, n_samples, batch):
                key, subkey = jax.random.split(key)
                total += native_chunk(
                    params,
                    subkey,
                    images[i],
                    sigmas[i],
                    int(targets[i]),
                    rows=min(batch, n_samples - start),
                )
            sums.append(total)
        return np.asarray(jnp.stack(sums)) / np.float32(n_samples)

    contenders.append(
        Contender(
            "native",
            "native loop",
            native,
            str(batch),
            "jax.random.normal inside jit(vmap(grad)), relative",
        )
    )

    def native_numpy(n_samples: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        total = np.zeros(x.shape, np.float64)
        for i in range(len(x)):
            for start in range(0, n_samples, batch):
                rows = min(batch, n_samples - start)
                noise = rng.standard_normal((rows, *x.shape[1:]), dtype=np.float32)
                noise *= sigmas[i]
                noise += x[i]
                total[i] += np.asarray(numpy_chunk(params, noise, int(targets[i])))
        return (total / n_samples).astype(np.float32)

    contenders.append(
        Contender(
            "native-numpy",
            "native loop (numpy noise)",
            native_numpy,
            str(batch),
            "numpy Generator, relative (the toolkit's stream)",
            exact_twin_of="toolkit",
        )
    )
    return [c for c in contenders if c.key in keys]


def _version(distribution: str) -> str:
    from importlib.metadata import version

    return version(distribution)


factories: dict[str, Callable[..., list[Contender]]] = {
    "torch": torch_contenders,
    "tensorflow": tensorflow_contenders,
    "jax": jax_contenders,
}
