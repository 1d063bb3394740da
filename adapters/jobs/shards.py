"""Shard files on disk: names from contents, atomic writes, the completion marker, the manifest.

A job's output folder holds, for every shard (a run of consecutive inputs):

- ``maps-KEY.npy``: the maps of the shard's inputs, ``(count, *map_shape)``, in order;
- ``metrics-KEY.csv`` (and ``metrics-KEY.parquet`` where pyarrow is installed): one row per
  input, with its index in the job, its name, the class explained, the model's score for
  it and every metric asked for;
- ``shard-KEY.json``: the marker, written last, that says the shard is complete (its
  inputs and files).

``KEY`` is a digest of the job's settings and the identities of the shard's inputs
(:func:`shard_key`), so the same inputs with the same settings always give the same names,
and different ones never do. Every file is first written to a hidden temporary file in the
same folder and then given its name in one step, without ever replacing an existing file
(:func:`write_new`): ``os.link`` where the file system has hard links, ``os.replace``
otherwise. A file that has its name is therefore always whole, and since its name says
what it holds, one left by an attempt that was killed before its marker is reused as it
is. A shard is complete when its marker is there and names files that are there
(:func:`complete`); a job started again computes only the shards that are not.

``manifest.json`` (:data:`MANIFEST`), written at the end of a job (temporary file and
``os.replace``), names the inputs, the settings, the versions and the shard files.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

__all__ = [
    "MANIFEST",
    "MANIFEST_FORMAT",
    "TEMPORARY_PREFIX",
    "complete",
    "digest",
    "files_of",
    "read_json",
    "remove_temporary",
    "replace_json",
    "shard_key",
    "write_new",
]

#: The name of the manifest in a job's folder.
MANIFEST = "manifest.json"

#: The ``format`` field of the manifests this version writes and reads.
MANIFEST_FORMAT = "saliency-toolkit job 1"

#: How the names of temporary files begin (hidden; removed when a job starts).
TEMPORARY_PREFIX = ".saliency-job-"

#: The length of a shard key, in hexadecimal digits (80 bits).
KEY_LENGTH = 20

#: The errors of ``os.link`` that mean the file system has no hard links here.
_NO_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK,
             errno.ENOSYS, errno.EACCES}


def digest(value: Any) -> str:
    """The SHA-256 of ``value`` as canonical JSON (sorted keys, no spaces), in hexadecimal.

    Example:
        >>> digest({"b": 1, "a": [2, 3]}) == digest({"a": [2, 3], "b": 1})
        True
    """
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def shard_key(settings_digest: str, identities: Sequence[str]) -> str:
    """The name of a shard: a digest of the job's settings and its inputs' identities.

    Args:
        settings_digest: :func:`digest` of the job's settings.
        identities: one string per input of the shard, in order (its name and what its
            contents are, see :mod:`adapters.jobs.inputs`).

    Returns:
        :data:`KEY_LENGTH` hexadecimal digits.

    Example:
        >>> a = shard_key("s", ["x.png 10 5"])
        >>> a == shard_key("s", ["x.png 10 5"]), a == shard_key("t", ["x.png 10 5"])
        (True, False)
    """
    return digest({"settings": settings_digest, "inputs": list(identities)})[:KEY_LENGTH]


def files_of(key: str, *, parquet: bool) -> dict[str, str]:
    """The file names of a shard, by role: ``maps``, ``metrics``, ``metrics_parquet``, ``marker``.

    Example:
        >>> files_of("ab", parquet=False)
        {'maps': 'maps-ab.npy', 'metrics': 'metrics-ab.csv', 'marker': 'shard-ab.json'}
    """
    names = {"maps": f"maps-{key}.npy", "metrics": f"metrics-{key}.csv"}
    if parquet:
        names["metrics_parquet"] = f"metrics-{key}.parquet"
    names["marker"] = f"shard-{key}.json"
    return names


@contextlib.contextmanager
def _temporary(folder: Path) -> Iterator[tuple[IO[bytes], Path]]:
    """A hidden temporary file in ``folder``, removed afterwards unless it was renamed."""
    handle, name = tempfile.mkstemp(prefix=TEMPORARY_PREFIX, suffix=".tmp", dir=folder)
    path = Path(name)
    try:
        with os.fdopen(handle, "wb") as stream:
            yield stream, path
    finally:
        path.unlink(missing_ok=True)


def write_new(path: Path, write: Callable[[IO[bytes]], None]) -> bool:
    """Write a file atomically, never replacing one that already has the name.

    ``write(stream)`` fills a temporary file in the same folder, which is flushed to disk
    and then linked to ``path`` (``os.link``, which fails if ``path`` exists); where the
    file system has no hard links, it is moved there with ``os.replace``. A reader
    therefore sees either no file or the whole file.

    Args:
        path: the file to create.
        write: writes the contents to a binary stream.

    Returns:
        True if this call created the file; False if a file of that name was already
        there (it is left as it is).

    Example:
        >>> folder = Path(tempfile.mkdtemp())
        >>> write_new(folder / "a.txt", lambda s: s.write(b"one"))
        True
        >>> write_new(folder / "a.txt", lambda s: s.write(b"two"))
        False
        >>> (folder / "a.txt").read_bytes(), sorted(p.name for p in folder.iterdir())
        (b'one', ['a.txt'])
    """
    if path.exists():
        return False
    with _temporary(path.parent) as (stream, temporary):
        write(stream)
        stream.flush()
        os.fsync(stream.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
        except OSError as error:
            if error.errno not in _NO_LINKS:
                raise
            if path.exists():
                return False
            os.replace(temporary, path)
    return True


def replace_json(path: Path, value: Any) -> None:
    """Write ``value`` as JSON to ``path`` atomically (temporary file, then ``os.replace``)."""
    text = (json.dumps(value, indent=1, sort_keys=False) + "\n").encode("utf-8")
    with _temporary(path.parent) as (stream, temporary):
        stream.write(text)
        stream.flush()
        os.fsync(stream.fileno())
        os.replace(temporary, path)


def read_json(path: Path) -> Any:
    """The JSON in ``path``, or None if it is missing or is not whole JSON."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def complete(folder: Path, key: str) -> dict[str, Any] | None:
    """The marker of shard ``key`` if the shard is complete in ``folder``, else None.

    Complete: the marker is there, is whole JSON for this key, and every file it names
    is there.
    """
    marker = read_json(folder / f"shard-{key}.json")
    if not isinstance(marker, dict) or marker.get("key") != key:
        return None
    files = marker.get("files")
    if not isinstance(files, dict) or not all(
            isinstance(name, str) and (folder / name).is_file() for name in files.values()):
        return None
    return marker


def remove_temporary(folder: Path) -> int:
    """Remove the temporary files a killed job left in ``folder``; returns how many.

    Only one job may write into a folder at a time: a job's temporary files are removed
    when the next one starts.
    """
    removed = 0
    if not folder.is_dir():
        return 0
    for entry in folder.iterdir():
        if entry.name.startswith(TEMPORARY_PREFIX) and entry.is_file():
            entry.unlink(missing_ok=True)
            removed += 1
    return removed
