"""The benchmark networks: one numpy weight set, loaded identically into PyTorch, Keras and JAX.

Two ResNet-style CNNs (He et al. 2016) without batch normalisation (a trained network's
eval-mode batch norm folds into the convolution biases, which these have):

``small``  input 64x64x3, 10 classes, 9 convolutions:
           stem conv 3x3 3->16; a block 16->16; a block 16->32 and a block 32->64, both
           with a strided first conv and a strided 1x1 shortcut conv; global average pool;
           dense 64->10. About 74k parameters.
``resnet18``  input 224x224x3, 1000 classes, ResNet-18's shape: stem conv 7x7/2 3->64,
           max pool 3x3/2, four stages of two basic blocks (64, 128, 256, 512 channels;
           stages 2-4 start with a strided conv and a strided 1x1 shortcut conv), global
           average pool, dense 512->1000. About 11.7M parameters, 20 convolutions.

A basic block is ``relu(conv2(relu(conv1(x))) + shortcut(x))``. Padding is explicit and
symmetric everywhere (``ZeroPadding2D`` then a ``"valid"`` convolution in Keras), so
TensorFlow's asymmetric ``"same"`` padding of strided convolutions never enters. The max
pool follows a ReLU, so zero padding (Keras) and -inf padding (PyTorch, JAX) give the
same result and the same input gradient.

Weights are drawn in numpy from a seed: kernels ``{layer}_w`` in HWIO, biases ``{layer}_b``;
``fc_w`` is (in, classes). PyTorch takes kernels as ``w.transpose(3, 2, 0, 1)`` (OIHW) and
images as NCHW; Keras and JAX take NHWC. :func:`make_inputs` gives NHWC images whose
values span exactly [0, 1], so a relative noise level of 0.15 (PAIR, tf-keras-vis, the
toolkit's ``noise_level``) is the absolute sigma 0.15 (Captum, xplique, ``sigma=``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "SPECS",
    "Conv",
    "Spec",
    "jax_model",
    "keras_model",
    "make_inputs",
    "make_targets",
    "from_nchw",
    "make_weights",
    "to_nchw",
    "torch_model",
]


@dataclass(frozen=True)
class Conv:
    """One convolution: kernel size, channels, stride and symmetric zero padding."""

    name: str
    kernel: int
    cin: int
    cout: int
    stride: int
    padding: int


@dataclass(frozen=True)
class Spec:
    """A ResNet-style network: stem, optional max pool, stages of basic blocks, dense head."""

    name: str
    size: int  # input height = width
    stem: tuple[int, int, int, int]  # kernel, out channels, stride, padding
    stem_pool: bool  # max pool 3x3, stride 2, padding 1 after the stem
    stages: tuple[tuple[int, int, int], ...]  # (channels, blocks, stride of the first block)
    n_classes: int

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.size, self.size, 3)

    def blocks(self) -> list[tuple[str, Conv, Conv, Conv | None]]:
        """``(name, conv1, conv2, shortcut or None)`` for every basic block, in order."""
        channels = self.stem[1]
        result = []
        for s, (cout, n_blocks, first_stride) in enumerate(self.stages, start=1):
            for b in range(1, n_blocks + 1):
                stride = first_stride if b == 1 else 1
                name = f"s{s}b{b}"
                conv1 = Conv(f"{name}c1", 3, channels, cout, stride, 1)
                conv2 = Conv(f"{name}c2", 3, cout, cout, 1, 1)
                shortcut = None
                if stride != 1 or channels != cout:
                    shortcut = Conv(f"{name}sc", 1, channels, cout, stride, 0)
                result.append((name, conv1, conv2, shortcut))
                channels = cout
        return result

    def convs(self) -> list[Conv]:
        kernel, cout, stride, padding = self.stem
        convs = [Conv("stem", kernel, 3, cout, stride, padding)]
        for _, conv1, conv2, shortcut in self.blocks():
            convs += [conv1, conv2] + ([shortcut] if shortcut else [])
        return convs

    @property
    def features(self) -> int:
        return self.stages[-1][0]


SPECS = {
    "small": Spec("small", 64, (3, 16, 1, 1), False, ((16, 1, 1), (32, 1, 2), (64, 1, 2)), 10),
    "resnet18": Spec(
        "resnet18",
        224,
        (7, 64, 2, 3),
        True,
        ((64, 2, 1), (128, 2, 2), (256, 2, 2), (512, 2, 2)),
        1000,
    ),
}


def make_weights(spec: Spec, seed: int = 0) -> dict[str, np.ndarray]:
    """He-initialised float32 weights; each block's second conv is scaled by 1/2 so that
    activations do not grow through the residual additions."""
    rng = np.random.default_rng(seed)
    weights: dict[str, np.ndarray] = {}
    for conv in spec.convs():
        scale = np.sqrt(2.0 / (conv.kernel * conv.kernel * conv.cin))
        if conv.name.endswith("c2"):
            scale *= 0.5
        shape = (conv.kernel, conv.kernel, conv.cin, conv.cout)
        weights[f"{conv.name}_w"] = (scale * rng.standard_normal(shape)).astype(np.float32)
        weights[f"{conv.name}_b"] = (0.01 * rng.standard_normal(conv.cout)).astype(np.float32)
    fc_shape = (spec.features, spec.n_classes)
    weights["fc_w"] = (rng.standard_normal(fc_shape) / np.sqrt(spec.features)).astype(np.float32)
    weights["fc_b"] = (0.01 * rng.standard_normal(spec.n_classes)).astype(np.float32)
    return weights


def make_inputs(spec: Spec, n: int, seed: int = 1) -> np.ndarray:
    """``n`` NHWC float32 images: smooth blobs plus texture, each spanning exactly [0, 1]."""
    rng = np.random.default_rng(seed)
    size = spec.size
    coarse = rng.uniform(size=(n, 8, 8, 3))
    # nearest-neighbour upsampling of the coarse pattern, then fine texture on top
    index = np.arange(size) * 8 // size
    images = coarse[:, index][:, :, index] + 0.3 * rng.uniform(size=(n, size, size, 3))
    flat = images.reshape(n, -1)
    low, high = flat.min(axis=1), flat.max(axis=1)
    images = (images - low[:, None, None, None]) / (high - low)[:, None, None, None]
    return images.astype(np.float32)


def make_targets(spec: Spec, n: int) -> np.ndarray:
    """One class per image (0, 1, 2, ...), int64."""
    return (np.arange(n) % spec.n_classes).astype(np.int64)


def to_nchw(x: np.ndarray) -> np.ndarray:
    """NHWC -> NCHW, contiguous."""
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def from_nchw(x: np.ndarray) -> np.ndarray:
    """NCHW -> NHWC, contiguous."""
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1))


# --------------------------------------------------------------------------- PyTorch


def torch_model(spec: Spec, weights: dict[str, np.ndarray]) -> Any:
    """The network as a ``torch.nn.Module`` in eval mode, NCHW input, float32."""
    import torch
    from torch import nn

    class Block(nn.Module):
        def __init__(self, conv1: Conv, conv2: Conv, shortcut: Conv | None) -> None:
            super().__init__()
            self.conv1 = _torch_conv(conv1)
            self.conv2 = _torch_conv(conv2)
            self.shortcut = _torch_conv(shortcut) if shortcut else None
            self.relu = nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.conv2(self.relu(self.conv1(x)))
            return self.relu(h + (self.shortcut(x) if self.shortcut is not None else x))

    class ResNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = _torch_conv(spec.convs()[0])
            self.relu = nn.ReLU()
            self.pool = nn.MaxPool2d(3, 2, 1) if spec.stem_pool else nn.Identity()
            self.blocks = nn.Sequential(*(Block(c1, c2, sc) for _, c1, c2, sc in spec.blocks()))
            self.fc = nn.Linear(spec.features, spec.n_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = self.blocks(self.pool(self.relu(self.stem(x))))
            return self.fc(h.mean(dim=(2, 3)))

    model = ResNet()
    modules = {"stem": model.stem, "fc": model.fc}
    for block, (_, c1, c2, sc) in zip(model.blocks, spec.blocks(), strict=True):
        modules[c1.name], modules[c2.name] = block.conv1, block.conv2
        if sc is not None:
            modules[sc.name] = block.shortcut
    with torch.no_grad():
        for name, module in modules.items():
            w = weights[f"{name}_w"]
            w = w.T if name == "fc" else w.transpose(3, 2, 0, 1)
            module.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
            module.bias.copy_(torch.from_numpy(weights[f"{name}_b"]))
    return model.eval()


def _torch_conv(conv: Conv) -> Any:
    from torch import nn

    return nn.Conv2d(conv.cin, conv.cout, conv.kernel, conv.stride, conv.padding)


# --------------------------------------------------------------------------- Keras 3


def keras_model(spec: Spec, weights: dict[str, np.ndarray]) -> Any:
    """The network as a Keras functional model, NHWC input, float32."""
    import keras
    from keras import layers

    def conv(h: Any, c: Conv) -> Any:
        if c.padding:
            h = layers.ZeroPadding2D(c.padding, name=f"{c.name}_pad")(h)
        return layers.Conv2D(c.cout, c.kernel, strides=c.stride, padding="valid", name=c.name)(h)

    inputs = keras.Input(shape=spec.input_shape, dtype="float32", name="image")
    h = layers.ReLU(name="stem_relu")(conv(inputs, spec.convs()[0]))
    if spec.stem_pool:
        h = layers.ZeroPadding2D(1, name="pool_pad")(h)  # after a ReLU: same as -inf
        h = layers.MaxPooling2D(3, strides=2, name="pool")(h)
    for name, c1, c2, sc in spec.blocks():
        r = layers.ReLU(name=f"{name}_relu1")(conv(h, c1))
        r = conv(r, c2)
        h = layers.ReLU(name=f"{name}_out")(
            layers.Add(name=f"{name}_add")([r, conv(h, sc) if sc else h])
        )
    h = layers.GlobalAveragePooling2D(name="gap")(h)
    outputs = layers.Dense(spec.n_classes, name="fc")(h)
    model = keras.Model(inputs, outputs, name=spec.name)
    for c in [*spec.convs(), Conv("fc", 1, 0, 0, 1, 0)]:
        model.get_layer(c.name).set_weights([weights[f"{c.name}_w"], weights[f"{c.name}_b"]])
    return model


# --------------------------------------------------------------------------- JAX


def jax_model(spec: Spec, weights: dict[str, np.ndarray]) -> tuple[Any, dict[str, Any]]:
    """``(apply_fn, params)``: ``apply_fn(params, x)`` on NHWC input gives the logits.

    ``apply_fn`` is made once per spec and cached, so every caller shares one function
    object (and so one compiled program per input shape in the toolkit's adapter).
    """
    import jax.numpy as jnp

    params = {name: jnp.asarray(value) for name, value in weights.items()}
    return _jax_apply(spec.name), params


_JAX_APPLY: dict[str, Any] = {}


def _jax_apply(name: str) -> Any:
    if name in _JAX_APPLY:
        return _JAX_APPLY[name]
    import jax
    import jax.numpy as jnp

    spec = SPECS[name]

    def conv(params: dict[str, Any], x: Any, c: Conv) -> Any:
        y = jax.lax.conv_general_dilated(
            x,
            params[f"{c.name}_w"],
            window_strides=(c.stride, c.stride),
            padding=((c.padding, c.padding), (c.padding, c.padding)),
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
        )
        return y + params[f"{c.name}_b"]

    def apply(params: dict[str, Any], x: Any) -> Any:
        h = jax.nn.relu(conv(params, x, spec.convs()[0]))
        if spec.stem_pool:
            h = jax.lax.reduce_window(
                h,
                -jnp.inf,
                jax.lax.max,
                (1, 3, 3, 1),
                (1, 2, 2, 1),
                ((0, 0), (1, 1), (1, 1), (0, 0)),
            )
        for _, c1, c2, sc in spec.blocks():
            r = conv(params, jax.nn.relu(conv(params, h, c1)), c2)
            h = jax.nn.relu(r + (conv(params, h, sc) if sc else h))
        return h.mean(axis=(1, 2)) @ params["fc_w"] + params["fc_b"]

    apply.__name__ = f"{name}_apply"
    _JAX_APPLY[name] = apply
    return apply
