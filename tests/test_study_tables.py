"""Cached study tables (imclib.experiments.tables): keys that name every argument and the code."""

import numpy as np
import pandas as pd
import pytest

from imclib import CrossbarConfig, cache
from imclib.experiments import tables
from imclib.mlp import MLP


@pytest.fixture
def caches(tmp_path, monkeypatch):
    """Empty user cache and shipped store in a temporary folder."""
    monkeypatch.setenv("IMCLIB_CACHE", str(tmp_path / "user"))
    monkeypatch.setenv("IMCLIB_MODEL_STORE", str(tmp_path / "store"))
    monkeypatch.delenv("IMCLIB_RETRAIN", raising=False)
    return tmp_path


CALLS = []


def study(x: np.ndarray, config: CrossbarConfig, seeds=range(2), progress: bool = True) -> pd.DataFrame:
    CALLS.append(1)
    return pd.DataFrame({"seed": list(seeds), "value": float(x.sum()) + config.rows})


def two_tables(n: int = 2) -> tuple[pd.DataFrame, pd.DataFrame]:
    CALLS.append(1)
    return pd.DataFrame({"a": range(n)}), pd.DataFrame({"b": ["x"] * n, "c": 1.5})


def test_fingerprint_follows_the_values():
    x = np.arange(6.0).reshape(2, 3)
    y = x.copy()
    y[1, 2] += 1e-12
    assert tables.fingerprint(x) == tables.fingerprint(x.copy())
    assert tables.fingerprint(x) != tables.fingerprint(y)
    assert tables.fingerprint(x) != tables.fingerprint(x.reshape(3, 2))  # same bytes, other shape
    assert tables.fingerprint(x) != tables.fingerprint(x.astype(np.float32))
    assert tables.fingerprint(range(3)) == tables.fingerprint([0, 1, 2])
    assert tables.fingerprint(CrossbarConfig()) != tables.fingerprint(CrossbarConfig(rows=8, cols=8))
    model = MLP([np.ones((3, 2))], [np.zeros(2)])
    other = MLP([np.ones((3, 2))], [np.full(2, 0.5)])
    assert tables.fingerprint(model) != tables.fingerprint(other)
    with pytest.raises(TypeError, match="cache key"):
        tables.fingerprint({"compute": lambda: 1})


def test_realistic_inputs_are_keyed_by_what_determines_them():
    from imclib.experiments import errors

    rng = np.random.default_rng(0)
    model = MLP([rng.normal(size=(6, 4)), rng.normal(size=(4, 3))], [np.zeros(4), np.zeros(3)])
    x = rng.uniform(size=(20, 6))
    layers = errors.realistic_inputs(model, x, n_samples=5)
    assert [w.shape for _, w, _ in layers] == [(6, 4), (4, 3)] and layers[1][2].shape == (5, 4)
    shifted = errors.Layers([(n, w, a + 1e-15) for n, w, a in layers], layers.cache_key)
    assert tables.fingerprint(shifted) == tables.fingerprint(layers)  # machine-level bits of the activations do not count
    assert tables.fingerprint(errors.realistic_inputs(model, x, n_samples=5, seed=1)) != tables.fingerprint(layers)
    assert tables.fingerprint(errors.realistic_inputs(model, x * 2, n_samples=5)) != tables.fingerprint(layers)
    assert tables.fingerprint(list(layers)) != tables.fingerprint(list(shifted))  # plain lists: keyed by the bytes


def test_code_digest_covers_the_imported_modules():
    path = tables.PACKAGE / "experiments" / "cost.py"
    names = {str(p.relative_to(tables.PACKAGE)) for p in tables._imports(path)}
    # the cost model and the MNIST study it uses are imported (neither is in mnist.TABLE_CODE for the former)
    assert {"cost.py", "experiments/mnist.py", "config.py", "deploy.py"} <= names
    assert "plots.py" not in names and "widgets.py" not in names
    errors = tables.PACKAGE / "experiments" / "errors.py"
    assert tables.code_digest(path) != tables.code_digest(errors)


def test_cached_call_computes_once_per_arguments(caches):
    CALLS.clear()
    x = np.ones((2, 2))
    first = tables.cached_call(study, x, CrossbarConfig())
    assert len(CALLS) == 1
    again = tables.cached_call(study, x.copy(), CrossbarConfig(), progress=False)  # progress is not keyed
    pd.testing.assert_frame_equal(first, again)
    assert len(CALLS) == 1
    assert (caches / "user" / "tables").is_dir()
    # every argument is part of the key: the data, the configuration and a default made explicit
    tables.cached_call(study, x * 2, CrossbarConfig())
    tables.cached_call(study, x, CrossbarConfig(rows=8, cols=8))
    changed = tables.cached_call(study, x, CrossbarConfig(), seeds=range(3))
    assert len(CALLS) == 4 and list(changed.seed) == [0, 1, 2]
    tables.cached_call(study, x, CrossbarConfig(), range(2))  # the default, given positionally
    assert len(CALLS) == 4


def test_cached_call_stores_tuples_part_by_part(caches):
    CALLS.clear()
    a, b = tables.cached_call(two_tables, 3)
    a2, b2 = tables.cached_call(two_tables, n=3)
    assert len(CALLS) == 1
    pd.testing.assert_frame_equal(a, a2)
    pd.testing.assert_frame_equal(b, b2)
    assert list(b.columns) == ["b", "c"] and len(b) == 3
    # a lost part is recomputed (the function runs again, once)
    for path in sorted((caches / "user" / "tables").glob("*.npz")):
        if list(cache.read_table(path).columns) == ["b", "c"]:
            path.unlink()
    _, b3 = tables.cached_call(two_tables, 3)
    assert len(CALLS) == 2
    pd.testing.assert_frame_equal(b, b3)


def test_cached_call_refuses_what_it_cannot_store(caches):
    with pytest.raises(TypeError, match="not DataFrames"):
        tables.cached_call(lambda: {"a": 1})
    with pytest.raises(TypeError):
        tables.cached_call(study, np.ones(2), CrossbarConfig(), unknown=1)  # not an argument of study
