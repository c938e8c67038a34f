"""Where numba keeps the compiled kernels (``@numba.njit(cache=True)``) of this package.

numba caches next to the sources (``imclib/__pycache__``) when it can write there, else in
its user-wide folder (``~/.cache/numba``), and fails at import with ``cannot cache function
...: no locator available`` when it can write in neither, e.g. a read-only checkout or
site-packages run with a read-only home. Imported first by :mod:`imclib`, before any kernel
is defined, :func:`choose_cache_dir` keeps numba's own choice when the package folder is
writable or ``$NUMBA_CACHE_DIR`` is set, and otherwise sets ``$NUMBA_CACHE_DIR`` to
``numba/`` in the imclib user cache (:func:`imclib._files.default_cache_dir`), or, if that
cannot be written either, to a private temporary folder removed at exit (kernels then
compile once per process, with a warning).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numba

from ._files import default_cache_dir

PACKAGE = Path(__file__).resolve().parent


def _writable(folder: Path) -> bool:
    """Whether ``folder`` exists or can be made, and a file can be created in it (numba's own
    test of a cache folder)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError:
        return False
    return True


def choose_cache_dir() -> Path | None:
    """Set ``$NUMBA_CACHE_DIR`` (and numba's config) when the package folder is read-only, see
    the module docstring; return the folder chosen, or ``None`` when numba's choice stands."""
    if numba.config.CACHE_DIR or _writable(PACKAGE / "__pycache__"):
        return None
    folder = default_cache_dir() / "numba"
    if not _writable(folder):
        folder = Path(tempfile.mkdtemp(prefix="imclib-numba-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        warnings.warn(f"neither the package folder {PACKAGE} nor the user cache {default_cache_dir()} is "
                      f"writable: numba kernels are cached in {folder} for this process only (set "
                      "IMCLIB_CACHE or NUMBA_CACHE_DIR to a writable folder to keep them)", RuntimeWarning,
                      stacklevel=2)
    os.environ["NUMBA_CACHE_DIR"] = str(folder)
    numba.config.reload_config()
    return folder


choose_cache_dir()
