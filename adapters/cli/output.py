"""What the command writes: report lines, heatmaps, and files staged until success.

Files go to a temporary folder beside the output folder and move in only when the command
succeeds, so a command that fails leaves nothing half-written there.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import visualize as vis

if TYPE_CHECKING:
    from PIL import Image

__all__ = ["Staging", "heat", "say", "staged_output"]


def say(message: str) -> None:
    """Print one report line on stdout, at once (progress bars share the terminal)."""
    print(message, flush=True)


def heat(maps: np.ndarray) -> np.ndarray:
    """The paper's display: absolute values, summed over channels, capped at the 99th pct.

    Args:
        maps: channels-last maps, ``(N, H, W, C)`` or one ``(H, W, C)``; maps without a
            channel axis (Grad-CAM's ``(N, H, W)``) are shown as they are.

    Returns:
        Values in [0, 1], without the channel axis.

    Example:
        >>> heat(np.array([[[[-2.0], [1.0]]]])).shape
        (1, 1, 2)
    """
    return vis.grayscale(maps, channel_axis=-1 if maps.ndim == 4 else None)


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


@contextlib.contextmanager
def staged_output(out: Path) -> Iterator[Staging]:
    """A temporary folder beside ``out`` whose files move into ``out`` only on success.

    Args:
        out: the output folder; it and its parents are created if missing.

    Yields:
        The :class:`Staging` to write the files to. When the block ends without an
        exception, every file moves into ``out`` (replacing files of the same names);
        either way the temporary folder is removed.

    Example:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> with staged_output(root / "maps") as staging:
        ...     path = staging.npy("zeros.npy", np.zeros(3))
        >>> path == root / "maps" / "zeros.npy", path.is_file()
        (True, True)
        >>> sorted(p.name for p in root.iterdir())
        ['maps']
    """
    shown = Path(out)
    out = shown.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{out.name}-partial-", dir=out.parent))
    try:
        yield Staging(folder, shown)
        out.mkdir(exist_ok=True)
        for item in sorted(folder.iterdir()):
            os.replace(item, out / item.name)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
