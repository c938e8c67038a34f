"""Files of the user cache: where it is, atomic writes with the umask's permissions, and a
hardened ``.npz`` reader.

A leaf module (numpy and the standard library only): the model (:mod:`imclib.mlp`), the
store (:mod:`imclib.cache`) and :mod:`imclib.results` all write through it, so none of them
needs to import another to save a file.
"""

from __future__ import annotations

import io
import os
import secrets
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

MAX_ENTRY_BYTES = 2**30
"""Largest array data an entry may declare (bytes): a crafted header cannot make a load
allocate more."""


class CorruptEntryError(ValueError):
    """A cache file exists but fails validation; the message names the file."""


def default_cache_dir() -> Path:
    """User model cache: ``$IMCLIB_CACHE``, else ``$XDG_CACHE_HOME/imclib/models``, else
    ``~/.cache/imclib/models``."""
    if os.environ.get("IMCLIB_CACHE"):
        return Path(os.environ["IMCLIB_CACHE"]).expanduser()
    xdg_cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg_cache) / "imclib" / "models"


def atomic_write(path: Path, write: Callable[[object], None]) -> None:
    """Call ``write(binary_file)`` on a uniquely named temp file next to ``path``, then
    ``os.replace`` it onto ``path`` (readers never see a partial file).

    The temp file is created with mode ``0o666`` and the process umask applies, as for any
    file ``open`` creates: ``path`` ends up ``0o666 & ~umask`` (``0o644`` under the usual
    umask ``0o022``), readable by whoever may read its folder.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temp_path = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    descriptor = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(descriptor, "wb") as temp_file:
            write(temp_file)
        os.replace(temp_path, path)
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise


def read_npz(path: Path, expected: dict[str, tuple[int, ...] | None] | None = None,
             finite: bool = True) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` after checking it, or raise :class:`CorruptEntryError`.

    The file is read with ``allow_pickle=False``: an object array (or a pickle renamed to
    ``.npz``) is refused, never unpickled. The member headers are read first: more than
    :data:`MAX_ENTRY_BYTES` of declared data is refused before anything is allocated.
    ``expected`` maps member names to a shape (or ``None``, any shape) and requires exactly
    those members; with ``finite`` every float array must be free of NaN and inf.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    CorruptEntryError
        If the file is truncated, empty, not an npz, holds object arrays, has other members
        or shapes, or holds NaN or inf. The message names the file.
    """
    try:
        raw = path.read_bytes()
    except NotADirectoryError as error:  # a parent is a file: the entry cannot exist
        raise FileNotFoundError(str(error)) from error
    except FileNotFoundError:
        raise
    except OSError as error:
        raise CorruptEntryError(f"{path}: cannot read ({error})") from error
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as archive:
            declared = 0
            for name in archive.namelist():
                with archive.open(name) as member:
                    version = np.lib.format.read_magic(member)
                    reader = {(1, 0): np.lib.format.read_array_header_1_0,
                              (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                    if reader is None:
                        raise ValueError(f"{name}: unsupported .npy version {version}")
                    shape, _, dtype = reader(member)
                declared += int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
            if declared > MAX_ENTRY_BYTES:
                raise ValueError(f"declares {declared:.3g} bytes of arrays, above {MAX_ENTRY_BYTES}")
        with np.load(io.BytesIO(raw), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (ValueError, KeyError, EOFError, OSError, MemoryError, zipfile.BadZipFile) as error:
        raise CorruptEntryError(f"{path}: unreadable ({type(error).__name__}: {error})") from error
    if expected is not None:
        if sorted(arrays) != sorted(expected):
            raise CorruptEntryError(f"{path}: holds {sorted(arrays)}, expected {sorted(expected)}")
        for name, shape in expected.items():
            if shape is not None and arrays[name].shape != tuple(shape):
                raise CorruptEntryError(f"{path}: {name} has shape {arrays[name].shape}, expected {tuple(shape)}")
    for name, array in arrays.items():
        if finite and array.dtype.kind in "fc" and not np.all(np.isfinite(array)):
            raise CorruptEntryError(f"{path}: {name} holds NaN or inf")
    return arrays
