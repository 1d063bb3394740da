"""JAX side of the shared adapter tests (see ``tests/adapters/harness.py``).

A model handle is an ``(apply_fn, params)`` pair, which ``adapters.jax`` takes as it is:
``apply_fn(params, x)`` with ``x`` in NHWC. The apply functions are module-level, so every
handle built here shares one compiled program per input shape (the adapter caches by
``apply_fn``). The reference network's params are nested by layer, ``{"c1": {"w": ..., "b":
...}, ...}``, so its weight layers are ``c1, c2, c3, sc, fc``, input to output. For
Grad-CAM it is split at a layer into module-level ``features_fn`` and ``head_fn``
(``LAYERS``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import adapters.jax as adapter
from adapters._backend import find_named

__all__ = [
    "LAYERS",
    "LAYER_CHANNEL_AXIS",
    "adapter",
    "block_features",
    "block_head",
    "c1_features",
    "c1_head",
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

Handle = tuple[Any, Any]

#: Full float32 precision on every backend (GPUs would otherwise use TF32 for float32).
_PRECISION = jax.lax.Precision.HIGHEST


def _accumulate(x):
    """float32 accumulation for convolutions and products, whatever the storage dtype.

    That is what cuDNN, PyTorch and Keras do for float16/bfloat16 layers; XLA on CPU would
    otherwise accumulate float16 convolutions in float16, which alone moves the reference
    network's gradient map by ~6% (relative L2) instead of ~0.05%.
    """
    return jnp.promote_types(x.dtype, jnp.float32)


def _conv(x, params, name: str, stride: int, padding: int):
    y = jax.lax.conv_general_dilated(
        x,
        params[name]["w"],
        window_strides=(stride, stride),
        padding=((padding, padding), (padding, padding)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        precision=_PRECISION,
        preferred_element_type=_accumulate(x),
    )
    return (y + params[name]["b"]).astype(x.dtype)


def _dense(x, w, b):
    y = jnp.dot(x, w, precision=_PRECISION, preferred_element_type=_accumulate(x))
    return (y + b).astype(x.dtype)


def _max_pool_2x2(x):
    return jax.lax.reduce_window(
        x, np.array(-np.inf, x.dtype), jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID"
    )


def c1_features(params, x):
    """Layer ``"c1"``: the first convolution's output before its ReLU, (N, 16, 16, 8)."""
    return _conv(x, params, "c1", 1, 1)


def _block_from_c1(params, c1):
    h = _max_pool_2x2(jax.nn.relu(c1))
    r = jax.nn.relu(_conv(h, params, "c2", 2, 1))
    r = _conv(r, params, "c3", 1, 1)
    s = _conv(h, params, "sc", 2, 0)
    return jax.nn.relu(r + s)


def block_features(params, x):
    """Layer ``"block"``: the residual block after its final ReLU, (N, 4, 4, 16)."""
    return _block_from_c1(params, c1_features(params, x))


def block_head(params, block):
    """From ``"block"`` to the logits: global average pool, then the dense layer."""
    return _dense(block.mean(axis=(1, 2)), params["fc"]["w"], params["fc"]["b"])


def c1_head(params, c1):
    """From ``"c1"`` (before its ReLU) to the logits."""
    return block_head(params, _block_from_c1(params, c1))


def reference_apply(params, x):
    """The network of ``tests/adapters/reference.py`` in JAX, NHWC, logits ``(N, 10)``.

    Computes in the dtype of ``x`` (the adapter casts the input to the params' dtype),
    accumulating in at least float32. It is ``block_head(block_features(x))``, the same
    operations in the same order as the split :func:`layer_fn` uses.
    """
    return block_head(params, block_features(params, x))


#: The framework-neutral layer names of the shared tests: (features_fn, head_fn).
LAYERS = {"block": (block_features, block_head), "c1": (c1_features, c1_head)}

#: Channel axis of the layers' activations (NHWC).
LAYER_CHANNEL_AXIS = -1


def _linear_apply(params, x):
    return jnp.dot(x, params["w"], precision=_PRECISION)


def _scalar_apply(params, x):
    return jnp.dot(x, params["v"], precision=_PRECISION)


def reference_model(weights: dict[str, np.ndarray], *, dtype: str = "float32") -> Handle:
    """``(reference_apply, params)`` with the numpy weights loaded exactly, cast to ``dtype``.

    ``weights["c1_w"]`` becomes ``params["c1"]["w"]``.
    """
    if dtype not in ("float32", "float16", "bfloat16"):
        raise ValueError(f"expected dtype float32, float16 or bfloat16, got {dtype!r}")
    params: dict[str, dict[str, Any]] = {}
    for name, value in weights.items():
        layer, _, kind = name.rpartition("_")
        params.setdefault(layer, {})[kind] = jnp.asarray(value, dtype=jnp.dtype(dtype))
    return reference_apply, params


def linear_model(w: np.ndarray) -> Handle:
    """Handle of ``x @ w``: ``x`` (k, D), ``w`` (D, C), float32."""
    return _linear_apply, {"w": jnp.asarray(w, dtype=jnp.float32)}


def scalar_model(v: np.ndarray) -> Handle:
    """Handle of ``x @ v`` for ``v`` (D,): one score per row, shape (k,)."""
    return _scalar_apply, {"v": jnp.asarray(v, dtype=jnp.float32)}


def gradient_fn(handle: Handle, **options: Any):
    return adapter.gradient_fn(handle, **options)


def layer_fn(handle: Handle, layer: str, **options: Any):
    """``adapters.jax.layer_fn`` for a reference-model handle, split at ``layer``.

    ``layer`` is a neutral name: ``"block"`` (the residual block's output after its final
    ReLU, NHWC 4x4x16) or ``"c1"`` (the first convolution's output before its ReLU).
    """
    return adapter.layer_fn(handle, find_named(layer, LAYERS), **options)


def predict_fn(handle: Handle, **options: Any):
    return adapter.predict_fn(handle, **options)


def _square_sum(output, target):
    del target
    return jnp.sum(output**2, axis=1)


def square_sum_objective():
    """``objective(output, target) = sum(output ** 2, axis=1)``, target ignored.

    The same function object every time, so adapters that cache by objective reuse it.
    """
    return _square_sum


def to_native(x_nhwc: np.ndarray) -> np.ndarray:
    """JAX models here take NHWC numpy arrays as they are."""
    return np.asarray(x_nhwc)


def from_native(array: Any) -> np.ndarray:
    return np.asarray(array)


def snapshot(handle: Handle) -> dict[str, Any]:
    """Copies of every parameter leaf, keyed by its pytree path, plus dtypes and devices.

    JAX arrays are immutable, so the only ways an adapter could change a model are
    donating its buffers (which deletes them) or swapping leaves; both show up here.
    """
    _, params = handle
    state: dict[str, Any] = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        key = jax.tree_util.keystr(path)
        deleted = bool(getattr(leaf, "is_deleted", lambda: False)())
        state[f"deleted{key}"] = deleted
        state[f"value{key}"] = None if deleted else np.array(leaf)
        state[f"dtype{key}"] = str(leaf.dtype)
    state["treedef"] = str(jax.tree_util.tree_structure(params))
    return state
