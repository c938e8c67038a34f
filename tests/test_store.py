"""The store of result tables and models: data-only files, refused when planted or bad, a
read-only shipped store, files created with the umask's permissions, no import cycle, and
numba caches that work from a read-only checkout."""

from __future__ import annotations

import ast
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import imclib
from imclib import _numba_cache, cache, results
from imclib.experiments import mnist
from imclib.mlp import MLP, TrainConfig, train_mlp

PACKAGE = Path(imclib.__file__).resolve().parent


@pytest.fixture
def stores(tmp_path, monkeypatch):
    """Empty shipped store and user cache in tmp_path, no retraining, no lookup log."""
    store, user = tmp_path / "store", tmp_path / "user"
    monkeypatch.setenv("IMCLIB_MODEL_STORE", str(store))
    monkeypatch.setenv("IMCLIB_CACHE", str(user))
    monkeypatch.delenv("IMCLIB_RETRAIN", raising=False)
    monkeypatch.delenv("IMCLIB_MODEL_LOG", raising=False)
    return store / "tables", user / "tables"


class Compute:
    """``compute`` for cached_table that counts its calls."""

    def __init__(self, table: pd.DataFrame):
        self.table, self.calls = table, 0

    def __call__(self) -> pd.DataFrame:
        self.calls += 1
        return self.table.copy()


ACCURACY = pd.DataFrame({"seed": np.arange(3), "accuracy": [0.91, 0.92, 0.93]})

# --------------------------------------------------------------------------- round trips

ROUND_TRIPS = {
    "study columns": pd.DataFrame({"scheme": ["offset/digital", "differential", ""], "seed": [0, 1, 2],
                                   "error": [0.1, -2.5e-300, 1e300], "random": [True, False, True]}),
    "NaN where a column may hold it": pd.DataFrame({"label": ["N = 8", "none"], "optimum": [8.0, np.nan]}),
    "narrow dtypes": pd.DataFrame({"a": np.array([1, 2], np.int8), "b": np.array([3, 4], np.uint16),
                                   "c": np.array([0.5, 1.5], np.float32), "d": np.array([-1, 7], np.int32)}),
    "empty": pd.DataFrame({"accuracy": np.array([], np.float64), "name": pd.Series([], dtype="str")}),
    "no columns": pd.DataFrame(index=pd.RangeIndex(4)),
    "named range index": pd.DataFrame({"x": [1.0, 2.0]}, index=pd.RangeIndex(10, 14, 2, name="row")),
    "integer index": pd.DataFrame({"x": [1.0, 2.0, 3.0]}, index=pd.Index([5, 3, 5], name="n_states")),
    "string index": pd.DataFrame({"x": [1.0, 2.0]}, index=pd.Index(["software", "HWA"], name="network")),
}


@pytest.mark.parametrize("case", list(ROUND_TRIPS))
def test_tables_round_trip_exactly(tmp_path, case):
    table = ROUND_TRIPS[case]
    path = tmp_path / "0123abcd.npz"
    assert cache.save_table(path, table)
    pd.testing.assert_frame_equal(cache.read_table(path), table, check_exact=True, check_index_type=True,
                                  check_column_type=True)


UNSTORABLE = {
    "inf": (pd.DataFrame({"energy_J": [1.0, np.inf]}), "column 'energy_J' holds inf"),
    "objects": (pd.DataFrame({"x": pd.Series([1, "a"], dtype=object)}), "column 'x' has dtype object"),
    "missing string": (pd.DataFrame({"x": pd.Series(["a", None], dtype="str")}), "column 'x' has dtype"),
    "categorical": (pd.DataFrame({"x": pd.Categorical(["a", "b"])}), "column 'x' has dtype category"),
    "integer column names": (pd.DataFrame({0: [1.0]}), "column names must be distinct strings"),
    "MultiIndex": (pd.DataFrame({"x": [1.0]}, index=pd.MultiIndex.from_tuples([(0, 1)])), "MultiIndex"),
    "index named by a number": (pd.DataFrame({"x": [1.0]}, index=pd.RangeIndex(1, name=3)), "index name"),
}


@pytest.mark.parametrize("case", list(UNSTORABLE))
def test_a_table_the_format_cannot_hold_is_returned_uncached_with_a_warning(stores, case):
    table, reason = UNSTORABLE[case]
    compute = Compute(table)
    with pytest.warns(RuntimeWarning, match=f"not caching the table .*{reason}"):
        got = mnist.cached_table({"case": case}, compute)
    pd.testing.assert_frame_equal(got, table)
    assert not stores[1].exists() or not list(stores[1].iterdir())


def test_cached_table_computes_once_then_reads_the_user_cache(stores):
    compute = Compute(ACCURACY)
    first = mnist.cached_table({"probe": 1}, compute)
    again = mnist.cached_table({"probe": 1}, compute)
    pd.testing.assert_frame_equal(first, again, check_exact=True)
    assert compute.calls == 1 and [p.name for p in stores[1].iterdir()] == [mnist.table_name({"probe": 1})]


NAMES = textwrap.dedent("""
    from pathlib import Path
    from imclib.experiments import mnist, tables
    print(mnist.table_name({"probe": 1}), tables.code_digest(Path(tables.PACKAGE) / "experiments" / "cost.py"))
""")


def test_editing_a_store_module_keeps_every_table_name(tmp_path):
    """How a table is written changes none of its values: editing the store (``cache.py``,
    ``_files.py``) keeps both the TABLE_CODE digest and a study module's import-closure
    digest, while editing the model (``mlp.py``) changes both."""

    def names(*edited: str) -> list[str]:
        copy = tmp_path / "-".join(("copy", *edited)) / "imclib"
        shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__", "models", "*.bad-*"))
        for module in edited:
            (copy / module).write_text((copy / module).read_text() + "\n# an edit\n")
        env = {**os.environ, "PYTHONPATH": str(copy.parent), "OPENBLAS_NUM_THREADS": "1"}
        return subprocess.run([sys.executable, "-c", NAMES], capture_output=True, text=True, check=True, env=env,
                              cwd=tmp_path).stdout.split()

    unedited = names()
    assert names("cache.py", "_files.py") == unedited
    edited_model = names("mlp.py")
    assert edited_model[0] != unedited[0] and edited_model[1] != unedited[1]


def test_cached_tables_are_shipped_logged_and_read_from_the_store(stores, tmp_path, monkeypatch):
    shipped, user = stores
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("IMCLIB_MODEL_LOG", str(log))
    compute = Compute(ACCURACY)
    mnist.cached_table({"probe": 1}, compute)
    written = cache.ship_models(log, shipped.parent, user.parent)
    assert [p.parent for p in written] == [shipped]
    (user / written[0].name).unlink()
    pd.testing.assert_frame_equal(mnist.cached_table({"probe": 1}, compute), ACCURACY)
    assert compute.calls == 1  # from the shipped store
    assert [json.loads(line)["source"] for line in log.read_text().splitlines()] == ["computed", str(shipped)]


def test_a_bad_table_is_not_shipped(stores, tmp_path, monkeypatch):
    shipped, user = stores
    log = tmp_path / "log.jsonl"
    monkeypatch.setenv("IMCLIB_MODEL_LOG", str(log))
    mnist.cached_table({"probe": 1}, Compute(ACCURACY))
    (user / mnist.table_name({"probe": 1})).write_bytes(b"broken")
    with pytest.raises(cache.CorruptEntryError, match=mnist.table_name({"probe": 1})):
        cache.ship_models(log, shipped.parent, user.parent)
    assert not shipped.exists()


# --------------------------------------------------------------------------- planted and bad files


class Payload:
    """Unpickling this creates ``marker``: proof that a load ran code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


class PayloadReturningATable:
    """Creates ``marker`` and evaluates to a valid table (a forgery meant to be used silently)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (eval, (f"__import__('pathlib').Path({str(self.marker)!r}).touch() or "
                       "__import__('pandas').DataFrame({'seed': [0], 'accuracy': [0.99]})",))


def _table_file(path: Path, members: dict | None = None, **schema_changes) -> None:
    """Write ACCURACY as a valid table file, then replace ``members`` and ``schema_changes``."""
    arrays = cache.table_arrays(ACCURACY, path.stem)
    arrays["schema"] = np.array(json.dumps({**json.loads(str(arrays["schema"])), **schema_changes}))
    np.savez(path, **{**arrays, **(members or {})})


PLANTED = {
    "pickle protocol 0": lambda path, marker: path.write_bytes(pickle.dumps(Payload(marker), protocol=0)),
    "pickle protocol 5": lambda path, marker: path.write_bytes(pickle.dumps(Payload(marker), protocol=5)),
    "pickle that returns a table": lambda path, marker: path.write_bytes(
        pickle.dumps(PayloadReturningATable(marker), protocol=5)),
    "npz with an object array": lambda path, marker: np.savez(
        path, payload=np.array([Payload(marker)], dtype=object)),
    "table with an object column": lambda path, marker: _table_file(
        path, {"column_1": np.array([Payload(marker)] * 3, dtype=object)}),
    "object array as the schema": lambda path, marker: _table_file(
        path, {"schema": np.array(Payload(marker), dtype=object)}),
}

SEED, ACCURACY_COLUMN = {"name": "seed", "dtype": "int64", "nan": False}, {"name": "accuracy", "dtype": "float64"}
BAD_TABLES = {
    "NaN accuracies": lambda path: _table_file(path, {"column_1": np.array([0.9, np.nan, 0.9])}),
    "inf accuracy": lambda path: _table_file(path, {"column_1": np.array([0.9, np.inf, 0.9])}),
    "NaN declared but inf": lambda path: _table_file(path, {"column_1": np.array([0.9, -np.inf, 0.9])},
                                                     columns=[SEED, {**ACCURACY_COLUMN, "nan": True}]),
    "wrong columns": lambda path: _table_file(path, columns=[SEED]),
    "an extra member": lambda path: _table_file(path, {"column_7": np.zeros(3)}),
    "dtype other than declared": lambda path: _table_file(path, {"column_0": np.array([0.0, 1.0, 2.0])}),
    "undeclared dtype": lambda path: _table_file(path, columns=[{**SEED, "dtype": "object"}, {**ACCURACY_COLUMN,
                                                                                           "nan": False}]),
    "big-endian column": lambda path: _table_file(path, {"column_1": np.array([0.9, 0.9, 0.9], ">f8")}),
    "short column": lambda path: _table_file(path, {"column_1": np.array([0.9, 0.9])}),
    "2-D column": lambda path: _table_file(path, {"column_1": np.full((3, 1), 0.9)}),
    "another key's valid table": lambda path: _table_file(path, name="f" * 64),
    "another format version": lambda path: _table_file(path, version=cache.TABLE_FORMAT_VERSION + 1),
    "no schema": lambda path: np.savez(path, column_0=np.arange(3)),
    "schema not JSON": lambda path: _table_file(path, {"schema": np.array("{not json")}),
    "duplicate column names": lambda path: _table_file(path, columns=[SEED, {**SEED, "dtype": "float64"}]),
    "zero-step range index": lambda path: _table_file(path, index={"range": [0, 0], "name": None}),
    "negative row count": lambda path: _table_file(path, rows=-3),
    "index named by a list": lambda path: _table_file(path, index={"range": [0, 1], "name": ["a"]}),
    "deeply nested schema": lambda path: _table_file(path, {"schema": np.array("[" * 100_000 + "]" * 100_000)}),
    "empty file": lambda path: path.write_bytes(b""),
    "truncated": lambda path: _table_file(path) or path.write_bytes(path.read_bytes()[:100]),
    "header claims a huge array": lambda path: _table_file(path, {"column_1": np.zeros(3)}) or path.write_bytes(
        path.read_bytes().replace(b"'shape': (3,)", b"'shape': (10000000000000,)")),
}


def _tree(folder: Path) -> dict[str, tuple[bytes | None, int]]:
    """Every file's bytes and every entry's mtime under ``folder`` (a folder's mtime changes
    when an entry is created, renamed or removed in it)."""
    return {str(p.relative_to(folder)): (None if p.is_dir() else p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted([folder, *folder.rglob("*")])}


@pytest.mark.parametrize("where", ["user cache", "shipped store"])
@pytest.mark.parametrize("case", list(PLANTED) + list(BAD_TABLES))
def test_planted_or_bad_tables_never_run_and_are_refused_naming_the_file(stores, tmp_path, where, case):
    shipped, user = stores
    key = {"attack": case}
    name = mnist.table_name(key)
    folder = shipped if where == "shipped store" else user
    shipped.mkdir(parents=True)
    user.mkdir(parents=True)
    marker = tmp_path / "marker"
    (PLANTED[case](folder / name, marker) if case in PLANTED else BAD_TABLES[case](folder / name))
    planted = _tree(shipped.parent)
    compute = Compute(ACCURACY)
    warning = "skipping a bad shipped table" if where == "shipped store" else "bad cache entry"
    with pytest.warns(RuntimeWarning, match=f"{warning}.*{name}"):
        table = mnist.cached_table(key, compute)
    assert not marker.exists()  # nothing in the file ran
    pd.testing.assert_frame_equal(table, ACCURACY)
    assert compute.calls == 1  # recomputed ...
    pd.testing.assert_frame_equal(cache.read_table(user / name), ACCURACY)  # ... into the user cache
    assert _tree(shipped.parent) == planted  # the shipped store is only read: files and mtimes unchanged
    if where == "user cache":
        assert len(list(user.glob(f"{name}.bad-*"))) == 1  # kept for inspection


def test_a_bad_shipped_model_is_skipped_and_the_store_left_unchanged(stores, tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)), rng.integers(0, 2, 40)
    config = TrainConfig(hidden=(4,), epochs=1, batch_size=20)
    key = {"task": "tiny", "training": config}
    store = stores[0].parent
    store.mkdir(parents=True)
    marker = tmp_path / "marker"
    (store / f"{cache.digest(key)}.npz").write_bytes(pickle.dumps(Payload(marker), protocol=5))
    before = _tree(store)
    with pytest.warns(RuntimeWarning, match=f"skipping a bad shipped model.*{cache.digest(key)}"):
        model, _ = cache.cached_train(key, lambda: train_mlp(x, y, config, progress=False))
    assert not marker.exists() and _tree(store) == before and model.layer_sizes == (3, 4, 2)


# --------------------------------------------------------------------------- permissions


def _write_each_kind(folder: Path) -> list[Path]:
    """A table, a model (MLP.save and the model cache) and results.json, written into ``folder``."""
    table, model = folder / "tables" / "abc.npz", folder / "model.npz"
    cache.save_table(table, ACCURACY)
    MLP([np.ones((2, 2))], [np.zeros(2)]).save(model)
    cache.cached_train({"task": "constant"}, lambda: (MLP([np.ones((2, 2))], [np.zeros(2)]),
                                                      pd.DataFrame({"epoch": [1]})), cache_dir=folder / "models")
    results.record_claim("C0", "permissions", {"x": 1}, True)
    return [table, model, next((folder / "models").glob("*.npz")), folder / "results.json"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_files_are_created_with_the_umask_permissions(stores, tmp_path, monkeypatch, umask):
    monkeypatch.setenv("IMCLIB_FIGURES_DIR", str(tmp_path))
    previous = os.umask(umask)
    try:
        written = _write_each_kind(tmp_path)
    finally:
        os.umask(previous)
    assert {path.name: oct(path.stat().st_mode & 0o777) for path in written} == {
        path.name: oct(0o666 & ~umask) for path in written}
    assert not list(tmp_path.rglob("*.tmp"))


# --------------------------------------------------------------------------- structure


def _imported_modules(path: Path) -> set[str]:
    """Dotted ``imclib`` modules imported anywhere in ``path`` (inside functions too)."""
    parts = ("imclib", *path.relative_to(PACKAGE).with_suffix("").parts)
    package = parts if path.name == "__init__.py" else parts[:-1]
    package = package[:-1] if package[-1] == "__init__" else package
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else ()
            module = ".".join((*base, *([node.module] if node.module else [])))
            for alias in node.names:
                found.add(f"{module}.{alias.name}" if (PACKAGE.parent / f"{module}.{alias.name}".replace(
                    ".", "/")).with_suffix(".py").exists() else module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.split(".")[0] == "imclib"}


def test_the_model_never_imports_the_store():
    assert not {m for m in _imported_modules(PACKAGE / "mlp.py") if m in ("imclib.cache", "imclib.results")}
    code = "import sys, imclib.mlp; print(sorted(m for m in sys.modules if m.startswith('imclib.')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONPATH": str(PACKAGE.parent)}).stdout
    assert "imclib.mlp" in loaded and "imclib.cache" not in loaded


def test_imclib_has_no_import_cycle():
    """Imports inside functions count: a lazy import hides a cycle, it does not remove it."""
    modules = {".".join(("imclib", *p.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(".__init__"): p
               for p in PACKAGE.rglob("*.py")}
    graph = {name: {m for m in _imported_modules(path) if m in modules and m != name}
             for name, path in modules.items()}
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        state[name] = "open"
        for child in sorted(graph[name]):
            assert state.get(child) != "open", "import cycle: " + " -> ".join([*trail, name, child])
            if child not in state:
                visit(child, [*trail, name])
        state[name] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name, [])


# --------------------------------------------------------------------------- numba cache


def test_numba_cache_falls_back_to_the_user_cache_when_the_package_folder_is_unwritable(tmp_path, monkeypatch):
    """A ``__pycache__`` that is a file cannot be written, not even by root."""
    package = tmp_path / "package"
    package.mkdir()
    (package / "__pycache__").write_text("a file, not a folder")
    monkeypatch.setattr(_numba_cache, "PACKAGE", package)
    monkeypatch.setenv("IMCLIB_CACHE", str(tmp_path / "user"))
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setattr(_numba_cache.numba.config, "CACHE_DIR", "")
    try:
        assert _numba_cache.choose_cache_dir() == tmp_path / "user" / "numba"
        assert os.environ["NUMBA_CACHE_DIR"] == str(tmp_path / "user" / "numba")
        assert _numba_cache.numba.config.CACHE_DIR == str(tmp_path / "user" / "numba")
        shutil.rmtree(tmp_path / "user")
        (tmp_path / "user").write_text("not a folder either")
        monkeypatch.setattr(_numba_cache.numba.config, "CACHE_DIR", "")
        with pytest.warns(RuntimeWarning, match="for this process only"):
            private = _numba_cache.choose_cache_dir()
        assert private.is_dir() and private.parent == Path(tempfile.gettempdir())
    finally:
        monkeypatch.undo()
        _numba_cache.numba.config.reload_config()


READ_ONLY_CHECK = textwrap.dedent("""
    import os, sys, numba, imclib
    from imclib import array, circuit, kernels as compiled
    kernels = [f for m in (array, circuit, compiled) for f in vars(m).values()
               if isinstance(f, numba.core.registry.CPUDispatcher)
               and isinstance(f._cache, numba.core.caching.FunctionCache)]  # cache=True kernels
    assert len(kernels) >= 8, len(kernels)
    for kernel in kernels:
        kernel._cache._impl.locator.ensure_cache_path()  # numba's own test that it can write there
    print(imclib.__file__, len(kernels), sorted({k._cache.cache_path.split(os.sep)[-2] for k in kernels}))
""")


PROBE = textwrap.dedent("""
    import pathlib, numba, pandas
    try:
        pathlib.Path("imclib/__pycache__").mkdir()
    except OSError:
        print("read-only")
""")


def _run_as_reader(code: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter as a user the read-only files refuse: the current
    user, or, for root (whom permission bits do not stop), the unprivileged ``nobody``."""
    user = {"user": 65534, "group": 65534, "extra_groups": []} if os.geteuid() == 0 else {}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=300, **user)


def test_a_read_only_checkout_imports_and_caches_numba_kernels_in_the_user_cache():
    root = Path(tempfile.mkdtemp())
    try:
        root.chmod(0o755)
        shutil.copytree(PACKAGE, root / "checkout" / "imclib",
                        ignore=shutil.ignore_patterns("__pycache__", "models", "*.bad-*"))
        for folder in (root / "home", root / "user"):  # home read-only too: numba's own fallback fails
            folder.mkdir()
        (root / "user").chmod(0o777)
        for path in [root / "home", root / "checkout", *(root / "checkout").rglob("*")]:
            path.chmod(path.stat().st_mode & ~0o222)
        env = {key: value for key, value in os.environ.items() if not key.startswith(("NUMBA_", "IMCLIB_"))}
        env.update(HOME=str(root / "home"), XDG_CACHE_HOME=str(root / "home" / ".cache"),
                   PYTHONPATH=str(root / "checkout"), IMCLIB_CACHE=str(root / "user"), OPENBLAS_NUM_THREADS="1")
        try:
            probe = _run_as_reader(PROBE, env, root / "checkout")
        except PermissionError:
            pytest.skip("root without the right to switch to an unprivileged user here")
        if probe.returncode != 0:
            pytest.skip(f"the reading user cannot run this Python environment: {probe.stderr[-300:]}")
        if probe.stdout.strip() != "read-only":
            pytest.skip("this user can write into a read-only folder: nothing to test")
        run = _run_as_reader(READ_ONLY_CHECK, env, root)
        assert run.returncode == 0, run.stderr[-2000:]
        path, n_kernels, folders = run.stdout.split(" ", 2)
        assert path == str(root / "checkout" / "imclib" / "__init__.py") and int(n_kernels) >= 3
        assert (root / "user" / "numba").is_dir() and folders.strip() == str(["numba"])
    finally:
        for path in [root, *root.rglob("*")]:
            if not path.is_symlink():
                path.chmod(0o755)
        shutil.rmtree(root)
