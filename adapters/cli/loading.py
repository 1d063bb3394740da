"""Turning ``saliency explain --model SPEC`` into an :class:`adapters.models.Model`.

``SPEC`` is a saved model file or ``module:function``, a function of no arguments returning
a model of any framework (imported with the current folder on the path). The files read:

========================  ===========================================================
``.keras``                Keras 3 (``model.save("m.keras")``)
``.h5``, ``.hdf5``        Keras 2 and Keras 3 HDF5 files (``model.save("m.h5")``)
``.pt``, ``.pth``         TorchScript (``torch.jit.script``/``torch.jit.trace`` then
                          ``.save``)
``.pt2``                  a :func:`torch.export` program (``torch.export.save``)
``.onnx``                 ONNX, converted to PyTorch by ``onnx2torch`` (the ``onnx`` extra)
========================  ===========================================================

Models are loaded for inference: Keras files without their optimizer (``compile=False``:
explaining never trains, and a Keras 2 file's optimizer settings, such as ``lr``, are not
Keras 3's), PyTorch modules in eval mode. A program exported in training mode gets the
exported equivalent of ``model.eval()``: its dropout and batch-norm operations are switched
to inference (``.eval()`` itself is refused by exported modules).

What is not a model is named, with what to do instead: a ``torch.save(model.state_dict())``
file holds weights without the architecture (build the model in a ``module:function`` and
load them there); a ``torch.save(model)`` file is a pickle, which runs code from the file
when loaded and is not read; an HDF5 file from ``model.save_weights`` holds weights only.

Each model also tells what images it takes, where it declares them (:class:`InputShape`):
a Keras model its input shape, an exported program its example input, an ONNX file its
graph's input, a PyTorch module the input channels of its first convolution.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import pickle
import re
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

from adapters.models import Model, backend

from .errors import CommandError

__all__ = ["MODEL_FILES", "InputShape", "LoadedModel", "load_model", "reading_shape", "refusal"]

#: The model file suffixes ``--model`` reads.
MODEL_FILES = (".keras", ".h5", ".hdf5", ".pt", ".pth", ".pt2", ".onnx")

_KERAS_FILES = (".keras", ".h5", ".hdf5")
_TORCH_FILES = (".pt", ".pth")
_EXPECTED = "module:function or a " + "/".join(MODEL_FILES) + " file"

_BOLD = re.compile(r"\x1b\[1m(.*?)\x1b\[0m", re.DOTALL)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_RAISED = re.compile(r"^[A-Za-z_.]*(Error|Exception): ")

#: The keys under which training checkpoints commonly keep a model's state_dict.
_CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model", "net", "module")

#: Exported operations that take a training flag, and the flag's position: ``model.eval()``
#: for an exported program is these flags set to False.
_TRAINING_FLAGS = {
    "aten::dropout": 2,
    "aten::feature_dropout": 2,
    "aten::alpha_dropout": 2,
    "aten::feature_alpha_dropout": 2,
    "aten::native_dropout": 2,
    "aten::batch_norm": 5,
    "aten::native_batch_norm": 5,
    "aten::_native_batch_norm_legit": 5,
}
#: Exported training-mode operations that have no inference form in place.
_TRAINING_ONLY = {"aten::_native_batch_norm_legit_functional": 5}


@dataclass(frozen=True)
class InputShape:
    """What a model declares about the images it takes (channels-last, as the command reads).

    Args:
        channels: the number of channels, or None where the model does not tell.
        size: ``(H, W)``, or None where the model does not tell (or takes any size).
        source: where the numbers come from, for messages ("from its input shape (None,
            64, 64, 1)"); empty when the model declares nothing.
    """

    channels: int | None = None
    size: tuple[int, int] | None = None
    source: str = ""

    def describe(self) -> str:
        """The declared shape in words, such as ``"64 x 64 pixels, 1 channel"``."""
        parts = []
        if self.size is not None:
            parts.append(f"{self.size[0]} x {self.size[1]} pixels")
        if self.channels is not None:
            parts.append(f"{self.channels} channel" + ("s" if self.channels != 1 else ""))
        return ", ".join(parts)


class LoadedModel(NamedTuple):
    """A loaded model and the input shape it declares."""

    model: Model
    shape: InputShape


def load_model(spec: str, framework: str | None) -> LoadedModel:
    """The model ``spec`` names, and the input shape it declares.

    Args:
        spec: a file ending in one of :data:`MODEL_FILES`, or ``module:function``.
        framework: the framework of a ``module:function`` model, or None to detect it.

    Returns:
        The model, seen channels-last, and its :class:`InputShape`.

    Raises:
        CommandError: if the file is missing, is not a model (a state_dict, a pickle,
            weights only) or does not load, the framework it needs is not installed, the
            module does not import, the function is missing or fails, or what it returns
            is not a model; always one line.

    Example:
        >>> try:
        ...     load_model("model.caffemodel", None)
        ... except CommandError as error:
        ...     print(error)  # doctest: +ELLIPSIS
        --model: expected module:function or a .keras/.h5/.hdf5/.pt/.pth/.pt2/.onnx file, ...
    """
    path = Path(spec)
    if path.suffix.lower() in MODEL_FILES:
        return _load_file(path, spec)
    module_name, _, function_name = spec.partition(":")
    if not module_name or not function_name:
        raise CommandError(f"--model: expected {_EXPECTED}, got {spec!r}")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        raise CommandError(f"--model: could not import {module_name!r}: "
                           f"{_one_line(error)}") from None
    factory = getattr(module, function_name, None)
    if not callable(factory):
        raise CommandError(f"--model: {module_name!r} has no function {function_name!r}")
    try:
        handle = factory()
    except Exception as error:
        raise CommandError(f"--model: {spec}() failed: {type(error).__name__}: "
                           f"{_one_line(error)}") from None
    try:
        model = Model(handle, framework)
    except (TypeError, ValueError) as error:
        raise CommandError(f"--model: {spec}() returned an unusable model: "
                           f"{_one_line(error)}") from None
    return LoadedModel(model, _declared(model))


def _declared(model: Model, *, exported: bool = False) -> InputShape:
    """The input shape the backend reads from the model itself."""
    channels, size = backend(str(model.framework)).input_spec(model.handle)
    if channels is None and size is None:
        return InputShape()
    inputs = getattr(model.handle, "inputs", None)  # a Keras model's symbolic inputs
    if isinstance(inputs, list | tuple) and inputs and hasattr(inputs[0], "shape"):
        source = f"from its input shape {tuple(inputs[0].shape)}"
    elif exported:
        source = "from its exported example input"
    elif size is not None:
        source = "from its example input"
    else:
        source = "from its first convolution"
    return InputShape(channels, size, source)


# --------------------------------------------------------------------------- files


def _load_file(path: Path, spec: str) -> LoadedModel:
    if not path.is_file():
        raise CommandError(f"--model: no such file: {spec}")
    suffix = path.suffix.lower()
    if suffix in _KERAS_FILES:
        return _load_keras(path, spec)
    torch = _import("torch", "torch")
    if suffix in _TORCH_FILES:
        handle = _load_torchscript(torch, path, spec)
        model = Model(handle, "torch")
        return LoadedModel(model, _declared(model))
    if suffix == ".pt2":
        program = _load_exported(torch, path, spec)
        shape = _declared(Model(program, "torch"), exported=True)
        batch = _exported_batch(program)
        handle = _in_batches_of(program, batch) if batch is not None else program
        return LoadedModel(Model(handle, "torch"), shape)
    return _load_onnx(path, spec)


def _load_keras(path: Path, spec: str) -> LoadedModel:
    keras = _import("keras", "tensorflow")
    try:
        with _keras3_readable(path) as readable:
            handle = keras.saving.load_model(readable, compile=False, safe_mode=True)
    except Exception as error:
        if path.suffix.lower() != ".keras" and _weights_only_hdf5(path):
            raise CommandError(
                f"--model: {spec} holds weights without the model's architecture (from "
                "model.save_weights); pass --model module:function, a function that builds "
                f"the model, calls model.load_weights({str(path)!r}) and returns it"
            ) from None
        raise CommandError(f"--model: could not load {spec} with Keras: "
                           f"{_one_line(error)}") from None
    model = Model(handle, "tensorflow")
    return LoadedModel(model, _declared(model))


@contextmanager
def _keras3_readable(path: Path) -> Iterator[Path]:
    """``path``, or where a Keras 2 Sequential HDF5 file needs it, a patched copy of it.

    Keras 2 wrote a Sequential model's input shape into its first layer's config
    (``batch_input_shape``), which Keras 3 reads as an input shape without the batch axis
    (one axis too many); and Keras 2.0 and 2.1 wrote a Sequential's config as a list of
    layers. The copy, in a temporary folder removed afterwards, has the Keras 3 form: an
    ``InputLayer`` first, and the layers under ``"layers"``. The weights are untouched.
    """
    config = _hdf5_model_config(path)
    patched = _keras3_sequential(config) if config is not None else None
    if patched is None:
        yield path
        return
    import h5py

    with tempfile.TemporaryDirectory(prefix="saliency-keras2-") as folder:
        copy = Path(folder) / path.name
        shutil.copyfile(path, copy)
        with h5py.File(copy, "r+") as file:
            file.attrs["model_config"] = json.dumps(patched).encode()
        yield copy


def _keras3_sequential(config: dict[str, Any]) -> dict[str, Any] | None:
    """The Keras 3 form of a Keras 2 Sequential model config, or None if it needs none."""
    if config.get("class_name") != "Sequential":
        return None
    body = config.get("config")
    changed = isinstance(body, list)
    if isinstance(body, list):
        body = {"name": "sequential", "layers": body}
    layers = body.get("layers") if isinstance(body, dict) else None
    if isinstance(layers, list) and layers and isinstance(layers[0], dict):
        first = layers[0]
        settings = first.get("config")
        if (first.get("class_name") != "InputLayer" and isinstance(settings, dict)
                and "batch_input_shape" in settings):
            layers.insert(0, {"class_name": "InputLayer", "config": {
                "batch_input_shape": settings.pop("batch_input_shape"),
                "dtype": settings.get("dtype", "float32"),
                "name": f"{settings.get('name', 'layer')}_input"}})
            changed = True
    return {**config, "config": body} if changed else None


def _hdf5_model_config(path: Path) -> dict[str, Any] | None:
    """The ``model_config`` of a Keras HDF5 file, or None (not HDF5, or none there)."""
    if path.suffix.lower() == ".keras":
        return None
    try:
        import h5py

        with h5py.File(path, "r") as file:
            raw = file.attrs.get("model_config")
        config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    except Exception:  # not HDF5, no config, h5py missing: Keras says what is wrong
        return None
    return config if isinstance(config, dict) else None


def _weights_only_hdf5(path: Path) -> bool:
    """Whether an HDF5 file holds Keras weights but no model config."""
    try:
        import h5py

        with h5py.File(path, "r") as file:
            return "model_config" not in file.attrs and (
                "layer_names" in file.attrs or "model_weights" in file
                or "layers" in file or "_layer_checkpoint_dependencies" in file)
    except Exception:  # not HDF5, or h5py missing: nothing to add to Keras's own message
        return False


def _load_torchscript(torch: ModuleType, path: Path, spec: str) -> Any:
    """A TorchScript module in eval mode, or the one-line reason the file is not one."""
    try:
        return torch.jit.load(str(path), map_location="cpu").eval()
    except Exception as error:
        script_error = error
    try:
        content = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        if not _saved_by_torch(path):
            raise CommandError(f"--model: {spec} is neither TorchScript nor a file torch.save "
                               "wrote") from None
        raise CommandError(
            f"--model: {spec} is a pickle of Python objects (torch.save of a model, or of a "
            "checkpoint holding more than tensors), which is not read, as unpickling runs "
            "code from the file; save the model with "
            "torch.jit.script(model).save(...) or torch.export, or pass --model "
            "module:function, a function that builds it"
        ) from None
    except Exception:
        why = f": {_one_line(script_error)}" if zipfile.is_zipfile(path) else ""
        raise CommandError(
            f"--model: {spec} is neither TorchScript nor a file torch.save wrote{why}"
        ) from None
    key = _state_dict_key(torch, content)
    if key is not None:
        weights = f"torch.load({str(path)!r})" + (f"[{key!r}]" if key else "")
        what = "a state_dict" if not key else f"a checkpoint with a state_dict under {key!r}"
        raise CommandError(
            f"--model: {spec} is {what}: the weights without the model's architecture; "
            "pass --model module:function, a function that builds the model, calls "
            f"model.load_state_dict({weights}) and returns it"
        )
    raise CommandError(f"--model: {spec} holds a {type(content).__name__}, not a model "
                       "(expected TorchScript)")


def _saved_by_torch(path: Path) -> bool:
    """Whether a file has the form ``torch.save`` writes: a zip archive, or (before
    PyTorch 1.6) a pickle, which starts with the pickle protocol byte 0x80."""
    with path.open("rb") as file:
        return zipfile.is_zipfile(path) or file.read(1) == b"\x80"


def _state_dict_key(torch: ModuleType, content: object) -> str | None:
    """``""`` for a state_dict, the key of one inside a checkpoint dict, else None."""

    def is_state_dict(value: object) -> bool:
        return (isinstance(value, Mapping) and len(value) > 0
                and all(isinstance(item, torch.Tensor) for item in value.values()))

    if is_state_dict(content):
        return ""
    if isinstance(content, Mapping):
        for key in _CHECKPOINT_KEYS:
            if is_state_dict(content.get(key)):
                return key
    return None


def _load_exported(torch: ModuleType, path: Path, spec: str) -> Any:
    """The module of an exported program, with its training-mode operations switched off."""
    if not zipfile.is_zipfile(path):
        raise CommandError(f"--model: {spec} is not a torch.export archive (not a zip file)")
    try:
        with _quiet("torch.export"):
            module = torch.export.load(str(path)).module()
    except Exception as error:
        raise CommandError(f"--model: could not load {spec} with torch.export: "
                           f"{_one_line(error)}") from None
    _to_inference(module, spec)
    return module


def _exported_batch(module: Any) -> int | None:
    """The batch size a program was exported with when it is fixed (not a ``Dim``)."""
    for node in module.graph.nodes:
        if node.op == "placeholder":
            shape = getattr(node.meta.get("val"), "shape", None)
            return shape[0] if shape is not None and len(shape) > 0 and isinstance(
                shape[0], int) else None
    return None


def _in_batches_of(module: Any, batch: int) -> Any:
    """A module that runs ``module``, which takes exactly ``batch`` rows, on any number:
    in groups of ``batch`` rows, the last one padded by repeating its last row (in
    inference mode, rows do not interact, so the padding changes no real row's output or
    gradient)."""
    import torch

    class FixedBatch(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.program = module

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            rows = x.shape[0]
            if rows == batch:
                return self.program(x)
            padding = -rows % batch
            if padding:
                x = torch.cat([x, x[-1:].expand(padding, *x.shape[1:])])
            outputs = [self.program(group) for group in torch.split(x, batch)]
            return torch.cat(outputs)[:rows]

    wrapped = FixedBatch()
    wrapped.training = False  # .eval() would call the program's, which refuses it
    return wrapped


def _to_inference(module: Any, spec: str) -> None:
    """``model.eval()`` for the graph module of an exported program.

    Dropout and batch-norm operations exported in training mode take their inference
    form (the training flag set to False); the batch counters a training-mode batch-norm
    increments are no longer incremented; and every submodule's ``training`` flag is
    cleared, through ``torch.nn.Module.train`` itself (exported modules refuse ``.eval()``).
    """
    import torch

    graph = module.graph
    for node in list(graph.nodes):
        if node.op != "call_function":
            continue
        name = str(getattr(getattr(node.target, "_schema", None), "name", ""))
        index = _TRAINING_FLAGS.get(name)
        if name in _TRAINING_ONLY and node.args[_TRAINING_ONLY[name]] is True:
            raise CommandError(f"--model: {spec} was exported in training mode, with {name} "
                               "in training form; export it from model.eval()")
        if index is not None and len(node.args) > index and node.args[index] is True:
            node.args = (*node.args[:index], False, *node.args[index + 1:])
        elif (name == "aten::add_" and not node.users and node.args
              and getattr(node.args[0], "op", None) == "get_attr"
              and str(node.args[0].target).endswith("num_batches_tracked")):
            graph.erase_node(node)
    graph.lint()
    module.recompile()
    torch.nn.Module.train(module, False)


def _load_onnx(path: Path, spec: str) -> LoadedModel:
    """An ONNX file as a PyTorch module (onnx2torch), with the input shape it declares."""
    try:
        onnx = importlib.import_module("onnx")
        onnx2torch = importlib.import_module("onnx2torch")
    except ImportError:
        raise CommandError('--model: .onnx files need onnx2torch, which is not installed: '
                           'pip install "saliency-toolkit[onnx]"') from None
    except Exception as error:  # installed but broken (a torchvision of another torch)
        raise CommandError(f"--model: .onnx files need onnx2torch, which does not import: "
                           f"{type(error).__name__}: {_one_line(error)}") from None
    try:
        proto = onnx.load(str(path))
    except Exception as error:
        raise CommandError(f"--model: could not read {spec} as ONNX: {_one_line(error)}") from None
    try:
        module = onnx2torch.convert(proto).eval()
    except Exception as error:
        raise CommandError(f"--model: could not convert {spec} to PyTorch with onnx2torch: "
                           f"{type(error).__name__}: {_one_line(error)}") from None
    dims, channels_last = _onnx_input(proto)
    if channels_last:
        module = _nchw_to_nhwc(module)
    model = Model(module, "torch")
    if dims is None:
        return LoadedModel(model, _declared(model))
    height, width, channels = (dims[1], dims[2], dims[3]) if channels_last else (
        dims[2], dims[3], dims[1])
    size = (height, width) if height is not None and width is not None else None
    shape = tuple("N" if value is None else value for value in dims)
    return LoadedModel(model, InputShape(channels, size, f"from its ONNX input shape {shape}"))


def _onnx_input(proto: Any) -> tuple[tuple[int | None, ...] | None, bool]:
    """The first graph input's dimensions (None where symbolic) if it is 4-D, and whether it
    is channels-last: fed straight to a ``Transpose`` with ``perm=[0, 3, 1, 2]`` (ONNX's
    convolutions take NCHW, so a graph written for NHWC images starts so)."""
    graph = proto.graph
    initialisers = {tensor.name for tensor in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initialisers]
    if len(inputs) != 1 or not inputs[0].type.HasField("tensor_type"):
        return None, False
    shape = inputs[0].type.tensor_type.shape
    dims = tuple(dim.dim_value if dim.HasField("dim_value") and dim.dim_value > 0 else None
                 for dim in shape.dim)
    if len(dims) != 4:
        return None, False
    consumers = [node for node in graph.node if inputs[0].name in node.input]
    channels_last = bool(consumers) and all(
        node.op_type == "Transpose"
        and any(attribute.name == "perm" and list(attribute.ints) == [0, 3, 1, 2]
                for attribute in node.attribute)
        for node in consumers)
    return dims, channels_last


def _nchw_to_nhwc(graph: Any) -> Any:
    """A module taking NCHW images (as PyTorch models do) that feeds them to ``graph``, a
    converted ONNX graph that takes NHWC images."""
    import torch

    class ChannelsLastGraph(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.graph = graph

        def forward(self, x: torch.Tensor) -> Any:
            return self.graph(x.permute(0, 2, 3, 1))

    return ChannelsLastGraph().eval()


# --------------------------------------------------------------------------- helpers


def _one_line(error: BaseException, limit: int = 300) -> str:
    """An error's message in one line of at most ``limit`` characters: its first line, or
    where Keras sets the cause in bold, that; where TensorFlow reports an error raised
    inside a traced function ("in user code:" and a traceback), the error raised."""
    text = str(error)
    bold = _BOLD.search(text)
    if bold is not None:
        text = bold.group(1)
    lines = [line.strip() for line in _ANSI.sub("", text).splitlines() if line.strip()]
    if lines and lines[0] == "in user code:":
        raised = [line for line in lines if _RAISED.match(line)]
        lines = raised[-1:] or lines
    line = lines[0] if lines else type(error).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


@contextmanager
def _quiet(logger: str) -> Iterator[None]:
    """Silence a library logger that prints tracebacks for errors it also raises."""
    log = logging.getLogger(logger)
    level = log.level
    log.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        log.setLevel(level)


def _import(name: str, extra: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError:
        raise CommandError(
            f"{name} is not installed: pip install \"saliency-toolkit[{extra}]\""
        ) from None


# --------------------------------------------------------------------------- image shape


def reading_shape(
    shape: InputShape, *, channels: int | None, size: tuple[int, int] | None
) -> tuple[int, tuple[int, int] | None]:
    """The channels and size to read the images at: ``--channels``/``--size`` where given,
    else what the model declares, else 3 channels and the images' own size.

    Args:
        shape: what the model declares.
        channels: ``--channels``, or None.
        size: ``--size``, or None.

    Returns:
        ``(channels, size)``: 1 or 3, and ``(H, W)`` or None.

    Raises:
        CommandError: if the model declares a number of channels images are not read with
            (neither 1 nor 3) and ``--channels`` is not given.

    Example:
        >>> declared = InputShape(1, (64, 64), "from its input shape (None, 64, 64, 1)")
        >>> reading_shape(declared, channels=None, size=None)
        (1, (64, 64))
        >>> reading_shape(declared, channels=3, size=None)
        (3, (64, 64))
        >>> reading_shape(InputShape(), channels=None, size=None)
        (3, None)
    """
    if channels is None:
        if shape.channels is not None and shape.channels not in (1, 3):
            raise CommandError(f"the model takes {shape.describe()} ({shape.source}); images "
                               "are read as grey (1) or RGB (3) only")
        channels = shape.channels if shape.channels is not None else 3
    return channels, (size if size is not None else shape.size)


def refusal(error: Exception, image_shape: tuple[int, ...], shape: InputShape) -> CommandError:
    """The one-line error for a model that failed on images of ``image_shape`` (NHWC).

    It names the model's error, the shape it declares (where it does) and the flags that
    give the images that shape.

    Example:
        >>> print(refusal(ValueError("expected 64 x 64"), (2, 28, 28, 3),
        ...               InputShape(1, (64, 64), "from its input shape (None, 64, 64, 1)")))
        ... # doctest: +NORMALIZE_WHITESPACE
        the model could not run on 28 x 28 images with 3 channels (ValueError: expected
        64 x 64); it takes 64 x 64 pixels, 1 channel (from its input shape (None, 64, 64,
        1)): pass --size 64 64 --channels 1
    """
    height, width, channels = image_shape[1:4] if len(image_shape) == 4 else (0, 0, 0)
    message = (f"the model could not run on {height} x {width} images with {channels} channel"
               f"{'s' if channels != 1 else ''} ({type(error).__name__}: "
               f"{_one_line(error, 200)})")
    fixes = []
    if shape.size is not None and shape.size != (height, width):
        fixes.append(f"--size {shape.size[0]} {shape.size[1]}")
    if shape.channels is not None and shape.channels != channels:
        fixes.append(f"--channels {shape.channels}")
    declared = f"{shape.describe()}, {shape.source}" if shape.source else ""
    if fixes:
        return CommandError(f"{message}; it takes {shape.describe()} ({shape.source}): pass "
                            f"{' '.join(fixes)}")
    unknown = [flag for flag, known in (("--size H W", shape.size), ("--channels 1 or 3",
                                                                      shape.channels))
               if known is None]
    if unknown:
        hint = f"; pass {' and '.join(unknown)} as the model was trained"
        return CommandError(message + hint + (f" (it takes {declared})" if declared else ""))
    return CommandError(f"{message}; the images have the shape it declares, {declared}")
