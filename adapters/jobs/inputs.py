"""A job's inputs: image files (named by a folder, a glob pattern or a list) or one array.

Every input has a **name** and an **identity**. The name is what the results call it: the
path as given (normalised, as :func:`adapters.cli.images.expand_inputs` lists a folder or a
pattern) or ``array[i]`` for row ``i`` of an array. The identity says what its contents
are: for a file its name, size in bytes and modification time (or, with
``hash_contents=True``, the SHA-256 of its bytes); for an array row the SHA-256 of its
bytes, dtype and shape. Shard names are digests of identities (a file that changes gets a
new shard); per-input seeds come from names (so an input's noise does not depend on where
it falls in the job, nor on the shard size).

Files are checked before any work: each must exist and be an image Pillow can open, and
without ``size`` all must have the same size (after their EXIF orientation), as
:func:`adapters.cli.images.read_images` needs. Pixels are read later, a shard at a time,
by that same function.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from adapters.cli.errors import CommandError
from adapters.cli.images import expand_inputs

__all__ = ["InputSet", "describe", "resolve_inputs"]

#: The EXIF orientations (5 to 8) that swap an image's width and height.
_TRANSPOSED = {5, 6, 7, 8}
_ORIENTATION_TAG = 0x0112


@dataclass(frozen=True)
class InputSet:
    """The inputs of a job, resolved.

    Attributes:
        names: one name per input, in order.
        identities: one identity per input (see the module docstring).
        paths: the image files, or None for an array.
        array: the array ``(N, H, W, C)``, or None for files.
    """

    names: list[str]
    identities: list[str]
    paths: list[str] | None = None
    array: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.names)

    @property
    def kind(self) -> str:
        """``"files"`` or ``"array"``."""
        return "array" if self.array is not None else "files"


def _plain(message: str) -> str:
    """A command's ``--input:`` message, worded for the Python argument ``inputs``."""
    return "inputs: " + message.removeprefix("--input: ")


def resolve_inputs(
    inputs: Any, *, size: Sequence[int] | None = None, hash_contents: bool = False
) -> InputSet:
    """The inputs a job was given, with their names and identities, checked.

    Args:
        inputs: a folder, a glob pattern or an image file (``str`` or ``os.PathLike``); a
            list or tuple of those; or a numpy array ``(N, H, W, C)`` of channels-last
            inputs (integers are converted to float32).
        size: the ``(H, W)`` images are resized to, or None (then all must agree).
        hash_contents: identify files by the SHA-256 of their bytes instead of their size
            and modification time (reads every file once more).

    Returns:
        The :class:`InputSet`.

    Raises:
        TypeError: ``inputs`` is none of the above, or an array of a type that is not
            numeric.
        ValueError: no inputs; a missing file, a folder without images, a pattern that
            matches none, a file that is not an image; images of different sizes without
            ``size``; an array that is not 4-D or holds NaN or infinity.
    """
    if isinstance(inputs, np.ndarray):
        return _array_inputs(inputs)
    if isinstance(inputs, (str, os.PathLike)):
        items = [os.fspath(inputs)]
    elif isinstance(inputs, (list, tuple)):
        items = []
        for item in inputs:
            if not isinstance(item, (str, os.PathLike)):
                raise TypeError("inputs: expected paths (str or os.PathLike), got an item "
                                f"of type {type(item).__name__}")
            items.append(os.fspath(item))
    else:
        raise TypeError("inputs: expected a folder, a glob pattern, a file, a list of those "
                        f"or a numpy array (N, H, W, C), got {type(inputs).__name__}")
    if not items:
        raise ValueError("inputs: expected at least one input, got an empty list")
    try:
        paths = [os.path.normpath(path) for path in expand_inputs(items).paths]
    except CommandError as error:
        raise ValueError(_plain(str(error))) from None
    _check_images(paths, size)
    identities = [_file_identity(path, hash_contents) for path in paths]
    return InputSet(names=paths, identities=identities, paths=paths)


def _array_inputs(array: np.ndarray) -> InputSet:
    if array.dtype.kind not in "fiub" or array.dtype.kind == "b":
        raise TypeError(f"inputs: expected a real numeric array, got dtype {array.dtype}")
    if array.ndim != 4:
        raise ValueError("inputs: expected an array (N, H, W, C) of channels-last inputs, got "
                         f"shape {array.shape}")
    if len(array) == 0:
        raise ValueError("inputs: expected at least one input, got an array of 0 rows")
    if array.dtype.kind != "f" or array.dtype.itemsize < 4:
        array = array.astype(np.float32)
    array = np.ascontiguousarray(array)
    if not np.isfinite(array).all():
        bad = int(np.flatnonzero(~np.isfinite(array.reshape(len(array), -1)).all(axis=1))[0])
        raise ValueError(f"inputs: expected finite values, got NaN or infinity in row {bad}")
    names = [f"array[{i}]" for i in range(len(array))]
    identities = []
    for name, row in zip(names, array, strict=True):
        content = hashlib.sha256(row.tobytes())
        content.update(f"{row.dtype.str}{row.shape}".encode("ascii"))
        identities.append(f"{name} {content.hexdigest()}")
    return InputSet(names=names, identities=identities, array=array)


def _file_identity(path: str, hash_contents: bool) -> str:
    if hash_contents:
        content = hashlib.sha256()
        with open(path, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                content.update(block)
        return f"{path} sha256:{content.hexdigest()}"
    status = os.stat(path)
    return f"{path} {status.st_size} {status.st_mtime_ns}"


def _check_images(paths: Sequence[str], size: Sequence[int] | None) -> None:
    """Open every file's header: it must be an image; without ``size`` all of one size."""
    from PIL import Image, UnidentifiedImageError

    first: tuple[str, tuple[int, int]] | None = None
    for path in paths:
        try:
            with Image.open(path) as image:
                width, height = image.size
                if image.getexif().get(_ORIENTATION_TAG) in _TRANSPOSED:
                    width, height = height, width
        except (UnidentifiedImageError, OSError, ValueError) as error:
            raise ValueError(f"inputs: cannot read {path} as an image: {error}") from None
        if size is not None:
            continue
        if first is None:
            first = (path, (height, width))
        elif (height, width) != first[1]:
            raise ValueError(
                f"inputs: expected images of one size without size=(H, W), got "
                f"{first[1][0]} x {first[1][1]} ({first[0]}) and {height} x {width} ({path})"
            )


def describe(inputs: InputSet) -> dict[str, Any]:
    """What the manifest says about the inputs."""
    described: dict[str, Any] = {"kind": inputs.kind, "count": len(inputs),
                                 "names": list(inputs.names)}
    if inputs.array is not None:
        described["shape"] = list(inputs.array.shape[1:])
        described["dtype"] = str(inputs.array.dtype)
    return described

