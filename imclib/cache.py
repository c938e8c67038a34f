"""The store: trained models, result tables and derived arrays on disk, in data-only formats
(npz read with ``allow_pickle=False``); a shipped read-only store, a user cache, healing.

The store imports the model (:mod:`imclib.mlp`); the model never imports the store. File
helpers shared with the model and :mod:`imclib.results` (atomic writes with the umask's
permissions, the hardened npz reader, the user-cache location) are in :mod:`imclib._files`.

:func:`cached_train` looks a training run up by the SHA-256 digest of its key, and
:func:`cached_table` a result table by its name (the digest of its key, given by
:func:`imclib.experiments.mnist.table_name`), in order:

1. the **shipped store** ``imclib/models/`` (package data, in the repository: the studies'
   trained networks and, in ``tables/``, their result tables, so tests and notebooks never
   recompute them; ``$IMCLIB_MODEL_STORE`` replaces it). It is only read, never written or
   renamed: a bad shipped entry is skipped with a warning naming it;
2. the **user cache** :func:`default_cache_dir` (``$IMCLIB_CACHE``, else
   ``$XDG_CACHE_HOME/imclib/models``, else ``~/.cache/imclib/models``; tables in
   ``tables/``). A bad entry there is moved aside (``<name>.bad-<time>``, kept for
   inspection) with a warning naming it;
3. computing: ``train_fn()`` or ``compute()`` runs and its result is written to the user
   cache (atomically; when the cache cannot be written the result is returned from memory
   with a warning).

``$IMCLIB_RETRAIN=1`` skips both stores (``python -m imclib.reproduce --retrain`` sets it).

**Models.** One compressed ``<digest>.npz`` per training run: the weights and biases as
**float32**, the training history, and the key's digest and JSON text. A freshly trained
model is rounded through float32 before it is returned, so a retrained model and a loaded
one are bit-identical (float32 keeps 24 bits of mantissa, a relative rounding of at most
6e-8 per weight, far below any effect the studies measure). Every entry is validated on
load: it must open, carry the requested digest, hold finite float32 arrays whose shapes
chain into an MLP, and match the architecture expected from the key (``layer_sizes`` if
given, else the hidden widths of ``key["training"]``). A :class:`~imclib.sequential.Sequential`
network (e.g. a CNN) is stored the same way plus ``sequential``, the JSON text of its layers
(kinds from :data:`imclib.sequential.LAYER_KINDS` with integer arguments, and the input
shape); it must rebuild into a network whose parameters have those shapes and whose spec
equals the key's ``architecture`` and ``input_shape``. A non-finite (diverged) training is
never stored.

**Tables.** One compressed ``<name>.npz`` per table: a JSON schema and one typed array per
column (:func:`read_table` gives the format and its checks: name, columns, dtypes, no inf,
NaN only where the schema allows it). The format is versioned inside the file, so the
store's code is not part of any table's key.

``$IMCLIB_MODEL_LOG`` names a file to which every lookup appends one JSON line (digest or
table name, where it was found); ``python -m imclib.cache --ship-models LOG`` copies the
models and tables a run used into the shipped store, after validating each.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np
import pandas as pd

from ._files import CorruptEntryError, atomic_write, default_cache_dir, read_npz
from .mlp import MLP, TrainConfig
from .sequential import Sequential

CACHE_FORMAT_VERSION = 2
"""Bump when training or the stored format changes so stale entries miss (2: one compressed
npz per entry, float32 weights)."""

SHIPPED_STORE = Path(__file__).resolve().parent / "models"


# --------------------------------------------------------------------------- locations


def shipped_store_dir() -> Path:
    """The read-only store of shipped models and tables: ``$IMCLIB_MODEL_STORE``, else ``imclib/models``."""
    override = os.environ.get("IMCLIB_MODEL_STORE")
    return Path(override).expanduser() if override else SHIPPED_STORE


def retraining() -> bool:
    """Whether ``$IMCLIB_RETRAIN`` asks to ignore both stores (``1``, ``true`` or ``yes``)."""
    return os.environ.get("IMCLIB_RETRAIN", "").strip().lower() in ("1", "true", "yes")


def digest(key: dict) -> str:
    """SHA-256 hex digest of ``json.dumps({"cache_format_version": ..., "key": key},
    sort_keys=True, default=repr)``."""
    payload = {"cache_format_version": CACHE_FORMAT_VERSION, "key": key}
    text = json.dumps(payload, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- files


def move_aside(path: Path, reason: str) -> None:
    """Rename a bad entry to ``<name>.bad-<unix time>`` (kept for inspection) with a warning."""
    target = path.with_name(f"{path.name}.bad-{time.time_ns()}")
    try:
        os.replace(path, target)
        where = f"moved to {target.name}"
    except OSError as error:
        where = f"could not be moved aside ({error})"
    warnings.warn(f"ignoring a bad cache entry, {where}: {reason}", RuntimeWarning, stacklevel=3)


def load_arrays(path: Path, expected: dict[str, tuple[int, ...] | None]) -> dict[str, np.ndarray] | None:
    """Validated arrays of a cache file, or ``None`` when it is missing or bad (a bad file is
    moved aside with a warning, so the caller recomputes it)."""
    try:
        return read_npz(path, expected)
    except FileNotFoundError:
        return None
    except CorruptEntryError as error:
        move_aside(path, str(error))
        return None


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> bool:
    """Write ``arrays`` as a compressed npz atomically; on an unwritable location warn and
    return ``False`` (the caller keeps its result in memory)."""
    try:
        atomic_write(path, lambda file: np.savez_compressed(file, **arrays))
    except OSError as error:
        warnings.warn(f"could not write the cache file {path} ({error}); keeping the result in memory only",
                      RuntimeWarning, stacklevel=3)
        return False
    return True


# --------------------------------------------------------------------------- models


def _as_float32_model(model):
    """``model`` with every parameter rounded through float32 (see the module docstring)."""
    weights = [w.astype(np.float32).astype(np.float64) for w in model.weights]
    biases = [b.astype(np.float32).astype(np.float64) for b in model.biases]
    return model.with_parameters(weights, biases) if isinstance(model, Sequential) else \
        MLP(weights, biases, model.activations)


def _entry_arrays(entry_digest: str, key_text: str, model, history: pd.DataFrame) -> dict[str, np.ndarray]:
    arrays = {"digest": np.array(entry_digest), "key": np.array(key_text),
              "history_columns": np.array(list(map(str, history.columns)))}
    if isinstance(model, Sequential):  # its layers as JSON text: kinds and integer arguments only
        arrays["sequential"] = np.array(json.dumps(model.spec))
    else:
        arrays["activations"] = np.array(model.activations)
    arrays.update({f"weight_{i}": w.astype(np.float32) for i, w in enumerate(model.weights)})
    arrays.update({f"bias_{i}": b.astype(np.float32) for i, b in enumerate(model.biases)})
    arrays.update({f"history_{i}": history[c].to_numpy(dtype=np.float64) for i, c in enumerate(history.columns)})
    return arrays


def expected_layer_sizes(key: dict, layer_sizes: tuple[int, ...] | None) -> tuple[int | None, ...] | dict | None:
    """The architecture an entry for ``key`` must have: ``layer_sizes`` if given; for a
    :class:`~imclib.sequential.Sequential` network (``key["architecture"]`` and
    ``key["input_shape"]``) its :attr:`~imclib.sequential.Sequential.spec`; else
    ``(None, *hidden, None)`` from ``key["training"]`` (a TrainConfig), else ``None``."""
    if layer_sizes is not None:
        return tuple(int(n) for n in layer_sizes)
    if isinstance(key, dict) and "architecture" in key:
        return json.loads(json.dumps({"input_shape": key["input_shape"], "architecture": key["architecture"]}))
    training = key.get("training") if isinstance(key, dict) else None
    if isinstance(training, TrainConfig):
        return (None, *training.hidden, None)
    return None


def _matches(model, architecture: tuple[int | None, ...] | dict) -> bool:
    """Whether ``model`` has the ``architecture`` of :func:`expected_layer_sizes`."""
    if isinstance(architecture, dict) or isinstance(model, Sequential):
        return isinstance(model, Sequential) and model.spec == architecture
    return len(architecture) == len(model.layer_sizes) and all(
        want is None or want == got for want, got in zip(architecture, model.layer_sizes))


def _describe(model) -> str:
    """``layer sizes (...)`` of an MLP, ``layers {spec}`` of a Sequential network."""
    return f"layers {model.spec}" if isinstance(model, Sequential) else f"layer sizes {model.layer_sizes}"


def load_entry(path: Path, entry_digest: str, architecture: tuple[int | None, ...] | dict | None):
    """``(model, history)`` of a validated entry (an MLP, or a Sequential network when the
    entry holds its ``sequential`` spec); raises :class:`CorruptEntryError`."""
    arrays = read_npz(path, finite=False)  # the history may hold NaN; MLP checks the parameters
    stored_digest = str(arrays.get("digest", ""))
    if stored_digest != entry_digest:
        raise CorruptEntryError(f"{path}: stores the model of digest {stored_digest or '<none>'!r}, "
                                f"not {entry_digest}")
    n_layers = sum(1 for name in arrays if name.startswith("weight_"))
    names = [f"{kind}_{i}" for i in range(n_layers) for kind in ("weight", "bias")]
    if n_layers == 0 or any(name not in arrays for name in names):
        raise CorruptEntryError(f"{path}: incomplete model (members {sorted(arrays)})")
    if any(arrays[name].dtype != np.float32 for name in names):
        raise CorruptEntryError(f"{path}: parameters must be float32")
    weights, biases = [arrays[f"weight_{i}"] for i in range(n_layers)], [arrays[f"bias_{i}"] for i in range(n_layers)]
    try:
        if "sequential" in arrays:
            model = Sequential.from_spec(str(arrays["sequential"]), weights, biases)
        else:
            activations = tuple(arrays["activations"].tolist()) if "activations" in arrays else None  # absent: ReLU
            model = MLP(weights, biases, activations)
    except (ValueError, KeyError, TypeError) as error:  # json.JSONDecodeError is a ValueError
        raise CorruptEntryError(f"{path}: {type(error).__name__}: {error}") from error
    if architecture is not None and not _matches(model, architecture):
        raise CorruptEntryError(f"{path}: {_describe(model)} do not match the key's architecture {architecture} "
                                "(None: any width)")
    columns = [str(c) for c in arrays.get("history_columns", np.array([], dtype=str))]
    if any(f"history_{i}" not in arrays for i in range(len(columns))):
        raise CorruptEntryError(f"{path}: incomplete training history")
    history = pd.DataFrame({c: arrays[f"history_{i}"] for i, c in enumerate(columns)})
    if "epoch" in history:
        history["epoch"] = history["epoch"].astype(np.int64)
    return model, history


Loaded = TypeVar("Loaded")


def _load_first(shipped: Path, user: Path, kind: str, load: Callable[[Path], Loaded]) -> tuple[Loaded, str] | None:
    """``(load(path), source)`` for the first of the shipped entry (``source="store"``) and
    the user-cache entry (``"cache"``) that loads, or ``None`` (also under
    ``$IMCLIB_RETRAIN``). ``load`` raises FileNotFoundError or :class:`CorruptEntryError`.
    The shipped store is only read: a bad shipped entry is skipped with a warning naming it;
    a bad user-cache entry is moved aside (:func:`move_aside`)."""
    if retraining():
        return None
    for source, path in (("store", shipped), ("cache", user)):
        try:
            return load(path), source
        except FileNotFoundError:
            continue
        except CorruptEntryError as error:
            if source == "store":
                warnings.warn(f"skipping a bad shipped {kind}: {error}", RuntimeWarning, stacklevel=3)
            else:
                move_aside(path, str(error))
    return None


def _log(entry_digest: str, source: str, key_text: str) -> None:
    log = os.environ.get("IMCLIB_MODEL_LOG")
    if log:
        line = json.dumps({"digest": entry_digest, "source": source, "key": key_text}) + "\n"
        try:
            with open(log, "a", encoding="utf-8") as file:
                file.write(line)
        except OSError as error:
            warnings.warn(f"could not append to IMCLIB_MODEL_LOG={log}: {error}", RuntimeWarning, stacklevel=3)


def log_lookup(name: str, kind: str, source: str) -> None:
    """Append a lookup of another cached artefact (``kind="table"``: a cached result table
    of ``name``) to ``$IMCLIB_MODEL_LOG``, so that :func:`ship_models` ships it too."""
    log = os.environ.get("IMCLIB_MODEL_LOG")
    if log:
        try:
            with open(log, "a", encoding="utf-8") as file:
                file.write(json.dumps({kind: name, "source": source}) + "\n")
        except OSError as error:
            warnings.warn(f"could not append to IMCLIB_MODEL_LOG={log}: {error}", RuntimeWarning, stacklevel=3)


def cached_train(
    key: dict,
    train_fn: Callable[[], tuple[object, pd.DataFrame]],
    cache_dir: str | os.PathLike | None = None,
    *,
    layer_sizes: tuple[int, ...] | None = None,
    store_dir: str | os.PathLike | None = None,
):
    """Return ``train_fn()``'s ``(model, history)``, from the shipped store, the user cache,
    or by training (see the module docstring for the order, the format and the checks).

    The entry name is :func:`digest` of ``key``: ``key`` must be JSON-able or made of objects
    with a stable, complete ``repr`` (frozen dataclasses such as TrainConfig); put everything
    that determines the result (data identity, config, quantizer settings) in it.

    Parameters
    ----------
    key : dict
        Description of the training run.
    train_fn : callable
        ``() -> (MLP, DataFrame)``, e.g. ``lambda: train_mlp(x, y, config)``.
    cache_dir : path, optional
        User cache; defaults to :func:`default_cache_dir`.
    layer_sizes : tuple of int, optional
        Architecture the model must have; defaults to the hidden widths of ``key["training"]``.
    store_dir : path, optional
        Shipped store; defaults to :func:`shipped_store_dir`.

    Returns
    -------
    model : MLP
        Parameters rounded through float32 (identical whether loaded or trained).
    history : pandas.DataFrame

    Raises
    ------
    RuntimeError
        If the training diverged (non-finite parameters); nothing is stored.
    """
    directory = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    store = Path(store_dir).expanduser() if store_dir is not None else shipped_store_dir()
    entry_digest = digest(key)
    key_text = json.dumps(key, sort_keys=True, default=repr, indent=2)
    architecture = expected_layer_sizes(key, layer_sizes)
    name = f"{entry_digest}.npz"
    found = _load_first(store / name, directory / name, "model",
                        lambda path: load_entry(path, entry_digest, architecture))
    if found is not None:
        (model, history), source = found
        _log(entry_digest, source, key_text)
        return model, history

    model, history = train_fn()
    if not all(np.all(np.isfinite(p)) for p in [*model.weights, *model.biases]):
        raise RuntimeError(f"training diverged (non-finite weights) for key {key_text}; nothing was cached. "
                           "Lower learning_rate or check the data.")
    model = _as_float32_model(model)
    if architecture is not None and not _matches(model, architecture):
        raise RuntimeError(f"train_fn returned {_describe(model)}, not the key's {architecture}")
    save_arrays(directory / name, _entry_arrays(entry_digest, key_text, model, history))
    _log(entry_digest, "trained", key_text)
    return model, history


# --------------------------------------------------------------------------- tables

TABLE_FORMAT = "imclib-table"
TABLE_FORMAT_VERSION = 1
"""Layout of a table file, stored inside it (its name does not change with the layout): a
file of another format or version is a bad entry, recomputed."""
_STORABLE_DTYPES = {np.dtype(code).name: np.dtype(code) for code in "?bhilqBHILQfd"}
"""Column dtypes stored as they are (native byte order); strings are stored as unicode."""


def _column_array(values: pd.Series | pd.Index, label: str) -> tuple[np.ndarray, dict]:
    """A typed array and its schema entry (``dtype``, ``nan``) for one column or index."""
    dtype = values.dtype
    if isinstance(dtype, np.dtype) and dtype.isnative and dtype.name in _STORABLE_DTYPES:
        array = values.to_numpy()
        if dtype.kind == "f" and np.isinf(array).any():
            raise ValueError(f"{label} holds inf")
        return array, {"dtype": dtype.name, "nan": bool(dtype.kind == "f" and np.isnan(array).any())}
    if pd.api.types.is_string_dtype(dtype) and all(isinstance(v, str) for v in values):
        return np.array(list(values), dtype=str), {"dtype": "str", "nan": False}
    raise ValueError(f"{label} has dtype {dtype} (storable: bool, integers, floats, strings without missing values)")


def table_arrays(table: pd.DataFrame, name: str) -> dict[str, np.ndarray]:
    """The arrays of the table file ``<name>.npz`` (see :func:`read_table`).

    Raises
    ------
    TypeError
        If ``table`` is not a DataFrame.
    ValueError
        If the table holds what the format cannot store exactly (column names that are not
        distinct strings, other dtypes, missing strings, inf, a MultiIndex, an index name
        that is not a string); the message names the column.
    """
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"a cached table must be a DataFrame, got {type(table).__name__}")
    names = list(table.columns)
    if isinstance(table.columns, pd.MultiIndex) or not all(isinstance(c, str) for c in names) \
            or len(set(names)) != len(names):
        raise ValueError(f"column names must be distinct strings, got {names}")
    arrays, columns = {}, []
    for i, column in enumerate(names):
        arrays[f"column_{i}"], spec = _column_array(table[column], f"column {column!r}")
        columns.append({"name": column, **spec})
    index = table.index
    if isinstance(index, pd.RangeIndex):
        index_spec = {"range": [index.start, index.step]}
    elif isinstance(index, pd.MultiIndex):
        raise ValueError("a MultiIndex cannot be stored (reset_index() first)")
    else:
        arrays["index"], index_spec = _column_array(index, "the index")
    if not (index.name is None or isinstance(index.name, str)):
        raise ValueError(f"the index name must be a string or None, got {index.name!r}")
    index_spec["name"] = index.name
    schema = {"format": TABLE_FORMAT, "version": TABLE_FORMAT_VERSION, "name": name, "rows": len(table),
              "columns": columns, "index": index_spec}
    arrays["schema"] = np.array(json.dumps(schema))
    return arrays


def _column_values(path: Path, arrays: dict[str, np.ndarray], member: str, spec: object, rows: int) -> np.ndarray:
    """The checked array ``member`` described by the schema entry ``spec``."""
    if not isinstance(spec, dict) or not isinstance(spec.get("dtype"), str) or not isinstance(spec.get("nan"), bool):
        raise CorruptEntryError(f"{path}: bad schema entry for {member}: {spec!r}")
    array, dtype = arrays.get(member), spec["dtype"]
    if array is None:
        raise CorruptEntryError(f"{path}: {member} is missing")
    if array.dtype.kind != "U" if dtype == "str" else (dtype not in _STORABLE_DTYPES
                                                      or array.dtype != _STORABLE_DTYPES[dtype]):
        raise CorruptEntryError(f"{path}: {member} ({spec.get('name', 'index')}) holds {array.dtype}, "
                                f"the schema says {dtype}")
    if array.shape != (rows,):
        raise CorruptEntryError(f"{path}: {member} has shape {array.shape}, expected ({rows},)")
    if array.dtype.kind == "f" and np.isinf(array).any():
        raise CorruptEntryError(f"{path}: {member} ({spec.get('name', 'index')}) holds inf")
    if array.dtype.kind == "f" and not spec["nan"] and np.isnan(array).any():
        raise CorruptEntryError(f"{path}: {member} ({spec.get('name', 'index')}) holds NaN, "
                                "which its schema does not allow")
    return array


def read_table(path: Path) -> pd.DataFrame:
    """The table stored at ``path`` (``<name>.npz``), after checking it.

    Format (version :data:`TABLE_FORMAT_VERSION`): an npz read with ``allow_pickle=False``
    (:func:`~imclib._files.read_npz`: nothing in the file is ever executed) holding
    ``schema``, a JSON text ``{"format", "version", "name", "rows", "columns": [{"name",
    "dtype", "nan"}, ...], "index": {"range": [start, step] | "dtype", "nan", "name"}}``,
    one array ``column_<i>`` per column (bool, integer, float or unicode) and ``index`` when
    the index is not a range. Checks: the format and version, ``name`` equal to the file's
    stem (the digest of the key it answers), exactly the declared members, each column's
    dtype and length as declared, no inf, and NaN only in a column whose schema entry has
    ``"nan": true`` (e.g. an optimum that does not exist for some settings).

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    CorruptEntryError
        Naming the file, if any check fails.
    """
    arrays = read_npz(path, finite=False)
    schema_text = arrays.get("schema")
    try:
        if schema_text is None or schema_text.dtype.kind != "U" or schema_text.shape != ():
            raise ValueError("no schema")
        schema = json.loads(str(schema_text))
        columns, index, rows = schema["columns"], schema["index"], schema["rows"]
        if not (isinstance(columns, list) and isinstance(index, dict) and type(rows) is int and rows >= 0
                and (index.get("name") is None or isinstance(index["name"], str))):
            raise ValueError("bad schema fields")
    except (ValueError, KeyError, TypeError, RecursionError) as error:
        raise CorruptEntryError(f"{path}: not a table file ({error})") from error
    if (schema.get("format"), schema.get("version")) != (TABLE_FORMAT, TABLE_FORMAT_VERSION):
        raise CorruptEntryError(f"{path}: format {schema.get('format')!r} version {schema.get('version')!r}, "
                                f"expected {TABLE_FORMAT!r} version {TABLE_FORMAT_VERSION}")
    if schema.get("name") != path.stem:
        raise CorruptEntryError(f"{path}: holds the table {schema.get('name')!r}, not {path.stem}")
    members = {"schema", *(f"column_{i}" for i in range(len(columns))), *(() if "range" in index else ("index",))}
    if set(arrays) != members:
        raise CorruptEntryError(f"{path}: holds {sorted(arrays)}, the schema declares {sorted(members)}")
    names = [spec.get("name") if isinstance(spec, dict) else None for spec in columns]
    if not all(isinstance(n, str) for n in names) or len(set(names)) != len(names):
        raise CorruptEntryError(f"{path}: column names must be distinct strings, got {names}")
    data = {name: _column_values(path, arrays, f"column_{i}", spec, rows)
            for i, (name, spec) in enumerate(zip(names, columns))}
    if "range" in index:
        start_step = index["range"]
        if not (isinstance(start_step, list) and len(start_step) == 2 and all(type(v) is int for v in start_step)
                and start_step[1] != 0):
            raise CorruptEntryError(f"{path}: bad range index {start_step!r}")
        start, step = start_step
        labels = pd.RangeIndex(start, start + rows * step, step, name=index.get("name"))
    else:
        labels = pd.Index(_column_values(path, arrays, "index", index, rows), name=index.get("name"))
    return pd.DataFrame(data, index=labels)


def save_table(path: Path, table: pd.DataFrame) -> bool:
    """Write ``table`` to ``path`` (``<name>.npz``, see :func:`read_table`) atomically; a table
    the format cannot hold exactly, or an unwritable location, is not stored: warn and return
    ``False`` (the caller keeps its result in memory)."""
    try:
        arrays = table_arrays(table, path.stem)
    except ValueError as error:
        warnings.warn(f"not caching the table {path.name}: {error}; keeping it in memory only",
                      RuntimeWarning, stacklevel=3)
        return False
    return save_arrays(path, arrays)


def cached_table(name: str, compute: Callable[[], pd.DataFrame], user_dir: Path) -> pd.DataFrame:
    """The table ``name`` (``<digest>.npz``): from the shipped store's ``tables/`` folder
    (only read), else from ``user_dir``, else ``compute()`` stored into ``user_dir``
    (see :func:`_load_first` for bad entries and ``$IMCLIB_RETRAIN``); every lookup is logged
    to ``$IMCLIB_MODEL_LOG`` so that :func:`ship_models` can ship the tables a run used."""
    shipped = shipped_store_dir() / "tables"
    found = _load_first(shipped / name, user_dir / name, "table", read_table)
    if found is not None:
        table, source = found
        log_lookup(name, "table", str(shipped if source == "store" else user_dir))
        return table
    table = compute()
    save_table(user_dir / name, table)
    log_lookup(name, "table", "computed")
    return table


# --------------------------------------------------------------------------- shipping


def ship_models(log: Path, store: Path | None = None, cache_dir: Path | None = None) -> list[Path]:
    """Copy every entry named in a model log (see ``$IMCLIB_MODEL_LOG``) from the user cache
    into the shipped store, after validating it; return the store paths written."""
    store = store or shipped_store_dir()
    cache_dir = cache_dir or default_cache_dir()
    digests, tables = [], []
    for line in log.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            if "table" in record:
                tables.append(record["table"])
            elif record["digest"] not in digests:
                digests.append(record["digest"])
    written = []
    for name in dict.fromkeys(tables):
        source, target = cache_dir / "tables" / name, store / "tables" / name
        if source.exists():
            read_table(source)  # refuse to ship a bad table
            atomic_write(target, lambda file, source=source: file.write(source.read_bytes()))
            written.append(target)
        elif not target.exists():
            raise FileNotFoundError(f"table {name} of {log} is in neither {cache_dir / 'tables'} nor {store / 'tables'}")
    for entry_digest in digests:
        source = cache_dir / f"{entry_digest}.npz"
        target = store / source.name
        if not source.exists() and target.exists():
            continue  # already shipped and not retrained
        if not source.exists():
            raise FileNotFoundError(f"model {entry_digest} of {log} is in neither {cache_dir} nor {store}: "
                                    "run the reproduce command again on this machine")
        load_entry(source, entry_digest, None)  # refuse to ship a bad entry
        store.mkdir(parents=True, exist_ok=True)
        atomic_write(target, lambda file, source=source: file.write(source.read_bytes()))
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imclib.cache",
                                     description="Inspect the model stores; ship the models a run used.")
    parser.add_argument("--ship-models", type=Path, metavar="LOG",
                        help="copy the entries named in LOG (written by reproduce, models-used.jsonl) "
                             "from the user cache into the shipped store")
    parser.add_argument("--list", action="store_true", help="list the shipped store")
    parser.add_argument("--store", type=Path, help=f"shipped store (default {SHIPPED_STORE})")
    args = parser.parse_args(argv)
    store = args.store or shipped_store_dir()
    if args.ship_models:
        written = ship_models(args.ship_models, store)
        for path in written:
            print(f"shipped {path.name} ({path.stat().st_size / 1e6:.2f} MB)")
        print(f"{len(written)} entries written to {store}")
    if args.list or not args.ship_models:
        entries = sorted(store.glob("*.npz"))
        for path in entries:
            print(f"{path.stat().st_size / 1e6:7.2f} MB  {path.name}")
        print(f"{sum(p.stat().st_size for p in entries) / 1e6:7.2f} MB  in {len(entries)} entries, {store}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
