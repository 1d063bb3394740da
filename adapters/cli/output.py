"""What the command writes: report lines, heatmaps, and files staged until success.

Files go to a hidden temporary folder inside the output folder and move in only when the
command succeeds, after every target name has been checked, so a command that fails leaves
nothing half-written there. The output folder is created if missing (and removed again if
the command that created it fails); nothing outside it is written, so ``--out .`` works in
a folder whose parent is read-only.

Two inputs with the same file stem (``a/three.png`` and ``b/three.png``) get distinct output
names: see :func:`unique_stems`. Pictures of small maps are enlarged for display by a whole
factor, nearest neighbour (:func:`display_factor`, :func:`enlarge`).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import visualize as vis

from .errors import CommandError

if TYPE_CHECKING:
    from PIL import Image

__all__ = [
    "Staging",
    "check_out",
    "display_factor",
    "enlarge",
    "heat",
    "say",
    "staged_output",
    "unique_stems",
]

#: How the hidden staging folder inside the output folder begins.
STAGING_PREFIX = ".saliency-partial-"


def say(message: str) -> None:
    """Print one report line on stdout, at once (progress bars share the terminal)."""
    print(message, flush=True)


def heat(maps: np.ndarray) -> np.ndarray:
    """The paper's display: absolute values, summed over channels, capped at the 99th pct.

    Args:
        maps: a batch of channels-last maps ``(N, H, W, C)``, or of maps without a channel
            axis ``(N, H, W)`` (Grad-CAM's), shown as they are. One map alone must keep its
            batch axis (``maps[None]``): a 3-D array is read as ``(N, H, W)``.

    Returns:
        Values in [0, 1], without the channel axis.

    Example:
        >>> heat(np.array([[[[-2.0], [1.0]]]])).shape
        (1, 1, 2)
    """
    return vis.grayscale(maps, channel_axis=-1 if maps.ndim == 4 else None)


def ranked(maps: np.ndarray) -> np.ndarray:
    """XRAI's ``(N, H, W)`` maps in [0, 1] by value, the lowest region black, the highest white.

    XRAI's values rank its regions and may be negative, so each map is shifted to start at
    0 before :func:`visualize.grayscale`, which would otherwise show magnitudes.

    Example:
        >>> ranked(np.array([[[-2.0, 1.0]]])).round(2)
        array([[[0., 1.]]])
    """
    lowest = maps.reshape(len(maps), -1).min(axis=1).reshape(-1, *(1,) * (maps.ndim - 1))
    return vis.grayscale(maps - lowest, channel_axis=None)


def display_factor(shape: Sequence[int], display_size: int) -> int:
    """The whole factor that brings the long side of ``shape`` to at least ``display_size``.

    Args:
        shape: the picture's ``(H, W)``.
        display_size: the least long side wanted, in pixels.

    Returns:
        ``ceil(display_size / max(H, W))``, and 1 for a picture that is that large already.

    Example:
        >>> display_factor((28, 28), 224), display_factor((64, 48), 224), display_factor(
        ...     (300, 200), 224)
        (8, 4, 1)
    """
    return max(1, math.ceil(display_size / max(shape)))


def enlarge(pixels: np.ndarray, factor: int) -> np.ndarray:
    """``pixels`` ``(H, W)`` or ``(H, W, C)`` with each pixel a ``factor`` x ``factor`` square.

    This is nearest-neighbour enlarging by a whole factor, exactly: no pixel is blended
    with its neighbours, so a 28 x 28 map stays as sharp as the model sees it.

    Example:
        >>> enlarge(np.array([[0, 1]]), 2).tolist()
        [[0, 0, 1, 1], [0, 0, 1, 1]]
    """
    if factor == 1:
        return pixels
    return np.repeat(np.repeat(pixels, factor, axis=0), factor, axis=1)


@dataclass(frozen=True)
class Staging:
    """Where the command's files go until it succeeds.

    Attributes:
        folder: the temporary folder the files are written to.
        out: the output folder as the user named it; the files will be there.
    """

    folder: Path
    out: Path

    def png(self, name: str, image: Image.Image | np.ndarray) -> Path:
        """Save ``image`` as the PNG file ``name``; returns where it will be."""
        vis.save(image, self.folder / name)
        return self.out / name

    def npy(self, name: str, array: np.ndarray) -> Path:
        """Save ``array`` as the ``.npy`` file ``name``; returns where it will be."""
        np.save(self.folder / name, array)
        return self.out / name

    def json(self, name: str, value: object) -> Path:
        """Save ``value`` as the JSON file ``name``; returns where it will be."""
        (self.folder / name).write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
        return self.out / name


def unique_stems(paths: Sequence[str]) -> list[str]:
    """One output stem per input: its file stem, numbered where two inputs share one.

    The rule: each input gets its file name without the suffix. When several inputs have
    the same stem (compared without regard to case, for file systems that ignore it), the
    first keeps it and each later one, in the order given, gets the first of ``-2``,
    ``-3``, ... that no other input's stem already uses.

    Args:
        paths: the input files, in the order given.

    Returns:
        The stems, one per path, pairwise distinct (ignoring case).

    Example:
        >>> unique_stems(["a/three.png", "b/three.png", "c/three-2.png", "one.png"])
        ['three', 'three-3', 'three-2', 'one']
    """
    stems = [Path(name).stem for name in paths]
    reserved = {stem.casefold() for stem in stems}
    taken: set[str] = set()
    result: list[str] = []
    for stem in stems:
        unique, number = stem, 2
        while unique.casefold() in taken:
            unique = f"{stem}-{number}"
            if unique.casefold() in reserved:
                unique = stem  # another input's own stem: try the next number
            number += 1
        taken.add(unique.casefold())
        result.append(unique)
    return result


def check_out(out: Path) -> None:
    """Refuse an output folder that names a file, or that cannot be created or written.

    Checks without writing anything, so that a command can refuse before its work.

    Raises:
        CommandError: if ``out`` (or the nearest of its parents that exists) is not a
            folder, or that folder is not writable.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "notes.txt").write_text("x")
        1
        >>> check_out(root / "maps")
        >>> try:
        ...     check_out(root / "notes.txt")
        ... except CommandError as error:
        ...     print(str(error).startswith("--out: expected a folder"))
        True
    """
    folder = Path(out).absolute()
    if folder.exists() and not folder.is_dir():
        raise CommandError(f"--out: expected a folder, got the file {out}")
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise CommandError(f"--out: cannot create the folder {out}: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CommandError(f"--out: cannot write into {out}: {existing} is not writable")


@contextlib.contextmanager
def staged_output(out: Path) -> Iterator[Staging]:
    """A hidden temporary folder inside ``out`` whose files move into ``out`` on success.

    Args:
        out: the output folder; it and its parents are created if missing, and removed
            again if the block fails.

    Yields:
        The :class:`Staging` to write the files to. When the block ends without an
        exception, every target in ``out`` is checked first (a folder in the way of a file
        ends the command before anything moves); then every file moves into ``out``
        (replacing files of the same names). Either way the temporary folder is removed.

    Raises:
        CommandError: if ``out`` is a file or cannot be created or written, or if a folder
            in ``out`` has the name of a file to write.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> with staged_output(root / "maps") as staging:
        ...     path = staging.npy("zeros.npy", np.zeros(3))
        >>> path == root / "maps" / "zeros.npy", path.is_file()
        (True, True)
        >>> sorted(p.name for p in root.iterdir()), sorted(p.name for p in path.parent.iterdir())
        (['maps'], ['zeros.npy'])
    """
    shown = Path(out)
    check_out(shown)
    folder = shown.absolute()
    created = None  # the topmost folder this run creates, removed if the run fails
    for parent in (folder, *folder.parents):
        if parent.exists():
            break
        created = parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=folder))
    except OSError as error:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)
        raise CommandError(f"--out: cannot write into {shown}: {error}") from None
    succeeded = False
    try:
        yield Staging(staging, shown)
        items = sorted(staging.iterdir())
        for item in items:
            target = folder / item.name
            if target.is_dir() and not target.is_symlink():
                raise CommandError(f"--out: cannot write {shown / item.name}: a folder of "
                                   "that name is in the way; nothing was written")
        try:
            for item in items:
                os.replace(item, folder / item.name)
        except OSError as error:
            raise CommandError(f"--out: cannot write into {shown}: {error}") from None
        succeeded = True
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not succeeded and created is not None:
            shutil.rmtree(created, ignore_errors=True)
