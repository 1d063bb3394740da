"""The demo network as a Keras model (NHWC); imports TensorFlow and Keras.

Used by :func:`adapters.demo.build` (``build("tensorflow")``). Padding is explicit
(``ZeroPadding2D(1)`` then a ``"valid"`` convolution), exactly as in the numpy reference.
Take gradients through :func:`adapters.tensorflow.gradient_fn`, which runs compiled.
"""

from __future__ import annotations

import numpy as np

try:
    import keras
    import tensorflow as tf  # noqa: F401  (Keras runs on the TensorFlow backend here)
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "adapters.demo.build('tensorflow') needs TensorFlow, which is not installed; install "
        'it with `pip install "saliency-toolkit[tensorflow]"` (or `pip install tensorflow`)'
    ) from error

from adapters.demo import ARCHITECTURE, INPUT_SHAPE

__all__ = ["LAYER_SPLIT", "build_model"]


#: How :class:`adapters.models.Model` reaches a named layer: ``None``, since the layers
#: are named Keras layers (``model.get_layer("conv3")``) and the adapter finds them by name.
LAYER_SPLIT = None


def build_model(weights: dict[str, np.ndarray]) -> keras.Model:
    """A float32 Keras functional model (NHWC) with ``weights`` (HWIO kernels) loaded.

    Its input is ``(None, None, None, 1)``: 28x28 digits, or other sizes whose height and
    width are multiples of 4.

    Layers are named as in :data:`adapters.demo.ARCHITECTURE` (``conv3`` is the last
    convolution, ``relu3`` its ReLU), plus ``{name}_pad`` padding layers before each
    convolution.
    """
    # Height and width are left open: the network is fully convolutional up to the
    # global average pool (28x28 is what it was trained on).
    inputs = keras.Input(shape=(None, None, INPUT_SHAPE[2]), dtype="float32", name="image")
    h = inputs
    for layer in ARCHITECTURE:
        h = _keras_layer(layer.name, layer.kind, layer.output_shape)(h)
    model = keras.Model(inputs, h, name="digits_cnn")
    for layer in ARCHITECTURE:
        if layer.kernel_shape is not None:
            model.get_layer(layer.name).set_weights(
                [
                    np.asarray(weights[f"{layer.name}_w"], dtype=np.float32),
                    np.asarray(weights[f"{layer.name}_b"], dtype=np.float32),
                ]
            )
    return model


def _keras_layer(name: str, kind: str, output_shape: tuple[int, ...]):
    """The Keras layer(s) of one architecture entry, as one callable on tensors."""
    if kind == "conv":
        pad = keras.layers.ZeroPadding2D(1, dtype="float32", name=f"{name}_pad")
        conv = keras.layers.Conv2D(output_shape[-1], 3, padding="valid", dtype="float32", name=name)
        return lambda tensor: conv(pad(tensor))
    if kind == "relu":
        return keras.layers.ReLU(dtype="float32", name=name)
    if kind == "average_pool":
        return keras.layers.AveragePooling2D(2, dtype="float32", name=name)
    if kind == "global_average_pool":
        return keras.layers.GlobalAveragePooling2D(dtype="float32", name=name)
    return keras.layers.Dense(output_shape[-1], dtype="float32", name=name)
