"""Turning ``saliency explain --model SPEC`` into an :class:`adapters.models.Model`.

``SPEC`` is a saved model file (``.keras``/``.h5`` for Keras, ``.pt`` TorchScript,
``.pt2`` a ``torch.export`` program) or ``module:function``, a function of no arguments
returning a model of any framework (imported with the current folder on the path).
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType

from adapters.models import Model

from .errors import CommandError

__all__ = ["MODEL_FILES", "load_model"]

#: The model file suffixes ``--model`` reads.
MODEL_FILES = (".keras", ".h5", ".pt", ".pt2")


def load_model(spec: str, framework: str | None) -> Model:
    """The model ``spec`` names.

    Args:
        spec: a file ending in one of :data:`MODEL_FILES`, or ``module:function``.
        framework: the framework of a ``module:function`` model, or None to detect it.

    Returns:
        The model, seen channels-last.

    Raises:
        CommandError: if the file is missing or does not load, the framework it needs is
            not installed, the module does not import, the function is missing or fails,
            or what it returns is not a model.

    Example:
        >>> try:
        ...     load_model("model.onnx", None)
        ... except CommandError as error:
        ...     print(error)
        --model: expected module:function or a .keras/.h5/.pt/.pt2 file, got 'model.onnx'
    """
    path = Path(spec)
    if path.suffix in MODEL_FILES:
        return _load_file(path, spec)
    module_name, _, function_name = spec.partition(":")
    if not module_name or not function_name:
        raise CommandError(
            f"--model: expected module:function or a .keras/.h5/.pt/.pt2 file, got {spec!r}"
        )
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        raise CommandError(f"--model: could not import {module_name!r}: {error}") from None
    factory = getattr(module, function_name, None)
    if not callable(factory):
        raise CommandError(f"--model: {module_name!r} has no function {function_name!r}")
    try:
        handle = factory()
    except Exception as error:
        raise CommandError(f"--model: {spec}() failed: {type(error).__name__}: {error}") from None
    try:
        return Model(handle, framework)
    except (TypeError, ValueError) as error:
        raise CommandError(f"--model: {spec}() returned an unusable model: {error}") from None


def _load_file(path: Path, spec: str) -> Model:
    if not path.is_file():
        raise CommandError(f"--model: no such file: {spec}")
    if path.suffix in (".keras", ".h5"):
        keras = _import("keras", "tensorflow")
        try:
            handle = keras.saving.load_model(path, safe_mode=True)
        except Exception as error:
            raise CommandError(f"--model: could not load {spec} with Keras: {error}") from None
        return Model(handle, "tensorflow")
    torch = _import("torch", "torch")
    try:
        if path.suffix == ".pt":
            handle = torch.jit.load(str(path), map_location="cpu").eval()
        else:
            handle = torch.export.load(str(path)).module()
    except Exception as error:
        raise CommandError(f"--model: could not load {spec} with PyTorch: {error}") from None
    return Model(handle, "torch")


def _import(name: str, extra: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ImportError:
        raise CommandError(
            f"{name} is not installed: pip install \"saliency-toolkit[{extra}]\""
        ) from None
