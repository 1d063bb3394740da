"""TensorFlow/Keras harness for the shared adapter tests (interface: ``harness.py``).

Handles are Keras 3 models (NHWC) for the reference network and the linear and scalar
models, so the shared tests go through the Keras path of the adapter; the adapter's own
tests cover plain callables and ``tf.Module`` too.

Never take gradients eagerly through the reference model here or in tests: an eager
``tf.GradientTape`` through its strided 1x1 convolution has crashed the process on these
machines. The adapter only runs the tape inside ``tf.function``.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from typing import Any  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from adapters import tensorflow as adapter  # noqa: E402
from tests.adapters import reference  # noqa: E402

#: The channel axis of the activations that ``layer_fn`` returns (NHWC).
LAYER_CHANNEL_AXIS = -1

#: Framework-neutral layer names -> Keras layer names of ``reference_model``: ``"block"``
#: is the residual block's output after its final ReLU (4x4x16), ``"c1"`` the first
#: convolution's output before its ReLU (16x16x8).
LAYERS = {"block": "add_relu", "c1": "c1"}

__all__ = [
    "LAYER_CHANNEL_AXIS",
    "LAYERS",
    "adapter",
    "from_native",
    "gradient_fn",
    "layer_fn",
    "linear_model",
    "predict_fn",
    "reference_model",
    "scalar_model",
    "snapshot",
    "square_sum_objective",
    "to_native",
]


def reference_model(weights: dict[str, np.ndarray], *, dtype: str = "float32") -> keras.Model:
    """The network of ``reference.py`` as a Keras functional model (NHWC), weights loaded.

    Padding is explicit (``ZeroPadding2D(1)`` then a ``"valid"`` convolution), so
    TensorFlow's asymmetric ``"same"`` padding of strided convolutions never enters. ReLU
    comes in three kinds: an ``Activation("relu")`` layer after ``c1`` (so the layer
    ``c1`` gives the pre-ReLU output that the neutral name ``"c1"`` means),
    ``activation="relu"`` in ``c2``, and a ``ReLU`` layer ``add_relu`` (the neutral
    ``"block"``).
    """
    if dtype not in ("float32", "float16", "bfloat16"):
        raise ValueError(f"expected dtype 'float32', 'float16' or 'bfloat16', got {dtype!r}")
    inputs = keras.Input(shape=reference.INPUT_SHAPE, dtype=dtype, name="image")
    padded = keras.layers.ZeroPadding2D(1, dtype=dtype, name="c1_pad")(inputs)
    h = keras.layers.Conv2D(8, 3, dtype=dtype, name="c1")(padded)
    h = keras.layers.Activation("relu", dtype=dtype, name="c1_relu")(h)
    h = keras.layers.MaxPooling2D(2, dtype=dtype, name="pool")(h)
    r = keras.layers.ZeroPadding2D(1, dtype=dtype, name="c2_pad")(h)
    r = keras.layers.Conv2D(16, 3, strides=2, activation="relu", dtype=dtype, name="c2")(r)
    r = keras.layers.ZeroPadding2D(1, dtype=dtype, name="c3_pad")(r)
    r = keras.layers.Conv2D(16, 3, dtype=dtype, name="c3")(r)
    s = keras.layers.Conv2D(16, 1, strides=2, padding="valid", dtype=dtype, name="sc")(h)
    h = keras.layers.Add(dtype=dtype, name="add")([r, s])
    h = keras.layers.ReLU(dtype=dtype, name="add_relu")(h)
    h = keras.layers.GlobalAveragePooling2D(dtype=dtype, name="gap")(h)
    outputs = keras.layers.Dense(reference.N_CLASSES, dtype=dtype, name="fc")(h)
    model = keras.Model(inputs, outputs, name="reference")
    for name in ("c1", "c2", "c3", "sc", "fc"):
        model.get_layer(name).set_weights([weights[f"{name}_w"], weights[f"{name}_b"]])
    return model


def linear_model(w: np.ndarray) -> keras.Model:
    """``x @ w`` for ``x`` (k, D) and ``w`` (D, C), a float32 Dense layer without bias."""
    w = np.asarray(w, dtype=np.float32)
    inputs = keras.Input(shape=(w.shape[0],), dtype="float32")
    dense = keras.layers.Dense(w.shape[1], use_bias=False, dtype="float32", name="linear")
    model = keras.Model(inputs, dense(inputs), name="linear")
    dense.set_weights([w])
    return model


def scalar_model(v: np.ndarray) -> keras.Model:
    """``x @ v`` for ``v`` (D,): one score per row, output shape (k,)."""
    v = np.asarray(v, dtype=np.float32)
    inputs = keras.Input(shape=(v.shape[0],), dtype="float32")
    dense = keras.layers.Dense(1, use_bias=False, dtype="float32", name="linear")
    outputs = keras.layers.Reshape((), name="squeeze")(dense(inputs))
    model = keras.Model(inputs, outputs, name="scalar")
    dense.set_weights([v[:, None]])
    return model


def gradient_fn(handle: Any, **options: Any) -> Any:
    """``adapters.tensorflow.gradient_fn(handle, **options)``."""
    return adapter.gradient_fn(handle, **options)


def layer_fn(handle: Any, layer: str, **options: Any) -> Any:
    """``adapters.tensorflow.layer_fn(handle, name, **options)`` for a neutral layer name.

    ``"block"`` and ``"c1"`` are mapped through :data:`LAYERS`; any other name is
    passed on as a Keras layer name.
    """
    return adapter.layer_fn(handle, LAYERS.get(layer, layer), **options)


def predict_fn(handle: Any, **options: Any) -> Any:
    """``adapters.tensorflow.predict_fn(handle, **options)``."""
    return adapter.predict_fn(handle, **options)


def square_sum_objective() -> Any:
    """``objective(output, target) = sum(output ** 2, axis=1)``, target ignored."""

    def objective(output: tf.Tensor, target: Any) -> tf.Tensor:
        return tf.reduce_sum(tf.square(output), axis=1)

    return objective


def to_native(x_nhwc: np.ndarray) -> np.ndarray:
    """Keras models take NHWC: identity."""
    return x_nhwc


def from_native(array: Any) -> np.ndarray:
    """NHWC already: identity (as numpy)."""
    return np.asarray(array)


def snapshot(handle: Any) -> dict[str, Any]:
    """Weights (by variable path), ``trainable`` flags, dtype policies, ``built``, nodes.

    Keras keeps no train/eval mode and no ``.grad`` on variables: the ``training``
    argument is per call, so the persistent state is the variables (moving statistics
    and seed-generator states included) and the flags recorded here.
    """
    state: dict[str, Any] = {}
    for index, variable in enumerate(getattr(handle, "variables", ())):
        name = getattr(variable, "path", None) or variable.name
        value = np.asarray(variable.numpy())
        if value.dtype.name in ("float16", "bfloat16"):  # lossless, comparable anywhere
            value = value.astype(np.float32)
        state[f"var{index}:{name}"] = value
        state[f"var{index}:{name}.trainable"] = bool(variable.trainable)
        state[f"var{index}:{name}.dtype"] = str(variable.dtype)
    state["built"] = bool(getattr(handle, "built", True))
    state["trainable"] = bool(getattr(handle, "trainable", True))
    state["variable_count"] = len(getattr(handle, "variables", ()))
    for path, layer in _sublayers(handle, ""):
        state[f"layer:{path}.trainable"] = bool(layer.trainable)
        state[f"layer:{path}.dtype_policy"] = str(layer.dtype_policy.name)
        # the graph of the model: calls recorded on the layer (a layer_fn builds a model
        # on the same layers and must not add any)
        state[f"layer:{path}.inbound_nodes"] = len(getattr(layer, "_inbound_nodes", ()))
        state[f"layer:{path}.outbound_nodes"] = len(getattr(layer, "_outbound_nodes", ()))
        if hasattr(layer, "activation"):
            state[f"layer:{path}.activation"] = _identify(layer.activation)
    # the ReLU functions a guided backward pass might be tempted to patch
    for name, function in (
        ("tf.nn.relu", tf.nn.relu),
        ("keras.activations.relu", keras.activations.relu),
        ("keras.ops.relu", keras.ops.relu),
    ):
        state[f"function:{name}"] = _identify(function)
    return state


def _identify(function: Any) -> str:
    """A string naming a function object exactly (its qualified name and id)."""
    name = getattr(function, "__qualname__", type(function).__name__)
    return f"{getattr(function, '__module__', '?')}.{name}@{id(function):x}"


def _sublayers(layer: Any, prefix: str) -> list[tuple[str, Any]]:
    """Every nested Keras layer under ``layer``, with a path of layer names."""
    found = []
    for child in getattr(layer, "layers", ()):
        path = f"{prefix}{child.name}"
        found.append((path, child))
        found.extend(_sublayers(child, f"{path}/"))
    return found
