"""The reference network shared by every adapter test, with a numpy forward pass.

One set of weights, drawn from a seed in numpy, is loaded into the same architecture in
PyTorch, TensorFlow/Keras and JAX (``tests/adapters/harness_<framework>.py``). The numpy
forward pass here is the ground truth the three frameworks are compared against.

Architecture (NHWC here; PyTorch builds the same net in NCHW), input ``(N, 16, 16, 3)``:

====  ==========================================================  =============
name  layer                                                       output (NHWC)
====  ==========================================================  =============
c1    conv 3x3, 3->8, stride 1, zero padding 1, bias; ReLU          16x16x8
pool  max pool 2x2, stride 2                                        8x8x8
c2    conv 3x3, 8->16, stride 2, zero padding 1, bias; ReLU         4x4x16
c3    conv 3x3, 16->16, stride 1, zero padding 1, bias              4x4x16
sc    shortcut: conv 1x1, 8->16, stride 2, no padding, bias         4x4x16
add   ReLU(c3 + sc)                                                 4x4x16
gap   global average pool over H, W                                 16
fc    dense 16->10, bias                                            10 (logits)
====  ==========================================================  =============

Weights: ``{name}_w`` kernels in HWIO (height, width, in, out) and ``{name}_b`` biases;
``fc_w`` is (16, 10). PyTorch kernels are ``w.transpose(3, 2, 0, 1)`` (OIHW) and its dense
weight is ``fc_w.T``. Padding is explicit and symmetric everywhere, so that TensorFlow's
asymmetric ``"same"`` padding for strided convolutions never enters.
"""

from __future__ import annotations

import numpy as np

INPUT_SHAPE = (16, 16, 3)
N_CLASSES = 10

#: (name, kernel size, in channels, out channels, stride, padding)
CONVS = (
    ("c1", 3, 3, 8, 1, 1),
    ("c2", 3, 8, 16, 2, 1),
    ("c3", 3, 16, 16, 1, 1),
    ("sc", 1, 8, 16, 2, 0),
)


def make_weights(seed: int = 0) -> dict[str, np.ndarray]:
    """He-initialised float32 weights for the reference network."""
    rng = np.random.default_rng(seed)
    weights: dict[str, np.ndarray] = {}
    for name, k, cin, cout, _, _ in CONVS:
        fan_in = k * k * cin
        kernel = rng.standard_normal((k, k, cin, cout)) * np.sqrt(2 / fan_in)
        weights[f"{name}_w"] = kernel.astype(np.float32)
        weights[f"{name}_b"] = (0.1 * rng.standard_normal(cout)).astype(np.float32)
    weights["fc_w"] = (rng.standard_normal((16, N_CLASSES)) * np.sqrt(1 / 16)).astype(np.float32)
    weights["fc_b"] = (0.1 * rng.standard_normal(N_CLASSES)).astype(np.float32)
    return weights


def make_inputs(n: int = 4, seed: int = 1) -> np.ndarray:
    """Inputs in [0, 1], NHWC float32, smooth enough that max-pool ties never happen."""
    rng = np.random.default_rng(seed)
    return rng.uniform(0.0, 1.0, size=(n, *INPUT_SHAPE)).astype(np.float32)


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """NHWC convolution (cross-correlation, as every framework computes it), float64."""
    x = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    k = w.shape[0]
    n, h, wd, _ = x.shape
    out_h = (h - k) // stride + 1
    out_w = (wd - k) // stride + 1
    out = np.zeros((n, out_h, out_w, w.shape[3]))
    for i in range(k):
        for j in range(k):
            patch = x[:, i : i + stride * out_h : stride, j : j + stride * out_w : stride, :]
            out += patch @ w[i, j]
    return out + b


def max_pool_2x2(x: np.ndarray) -> np.ndarray:
    n, h, w, c = x.shape
    return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def forward(weights: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Logits ``(N, 10)`` of the reference network, computed in float64."""
    p = {k: v.astype(np.float64) for k, v in weights.items()}
    x = np.asarray(x, dtype=np.float64)
    h = np.maximum(conv2d(x, p["c1_w"], p["c1_b"], 1, 1), 0)
    h = max_pool_2x2(h)
    r = np.maximum(conv2d(h, p["c2_w"], p["c2_b"], 2, 1), 0)
    r = conv2d(r, p["c3_w"], p["c3_b"], 1, 1)
    s = conv2d(h, p["sc_w"], p["sc_b"], 2, 0)
    h = np.maximum(r + s, 0)
    h = h.mean(axis=(1, 2))
    return h @ p["fc_w"] + p["fc_b"]


def finite_difference_gradient(
    weights: dict[str, np.ndarray], x: np.ndarray, target: np.ndarray, eps: float = 1e-4
) -> np.ndarray:
    """Central differences of ``forward(x)[i, target[i]]`` in float64, for spot checks."""
    x = np.asarray(x, dtype=np.float64)
    grad = np.zeros_like(x)
    rows = np.arange(x.shape[0])
    flat = grad.reshape(x.shape[0], -1)
    for idx in range(flat.shape[1]):
        step = np.zeros((x.shape[0], flat.shape[1]))
        step[:, idx] = eps
        step = step.reshape(x.shape)
        up = forward(weights, x + step)[rows, target]
        down = forward(weights, x - step)[rows, target]
        flat[:, idx] = (up - down) / (2 * eps)
    return grad
