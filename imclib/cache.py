"""Trained models and derived arrays on disk: a shipped read-only store, a user cache, healing.

:func:`cached_train` looks a training run up by the SHA-256 digest of its key, in order:

1. the **shipped store** ``imclib/models/`` (package data, in the repository: the studies'
   trained networks, so tests and notebooks never retrain them; ``$IMCLIB_MODEL_STORE``
   replaces it);
2. the **user cache** :func:`default_cache_dir` (``$IMCLIB_CACHE``, else
   ``$XDG_CACHE_HOME/imclib/models``, else ``~/.cache/imclib/models``);
3. training: ``train_fn()`` runs and its result is written to the user cache.

``$IMCLIB_RETRAIN=1`` skips both stores (``python -m imclib.reproduce --retrain`` sets it).
Every entry is one compressed ``<digest>.npz``: the weights and biases as **float32**, the
training history, and the key's digest and JSON text. A freshly trained model is rounded
through float32 before it is returned, so a retrained model and a loaded one are
bit-identical (float32 keeps 24 bits of mantissa, a relative rounding of at most 6e-8 per
weight, far below any effect the studies measure).

Every entry is validated on load: it must open, carry the requested digest, hold finite
float32 arrays whose shapes chain into an MLP, and match the architecture expected from the
key (``layer_sizes`` if given, else the hidden widths of ``key["training"]``). A bad entry in
the user cache is moved aside (``<name>.bad-<time>``) with a warning and the model is
retrained; a bad shipped entry is skipped with a warning. A non-finite (diverged) training is
never stored; when the cache cannot be written the model is returned from memory with a
warning.

``$IMCLIB_MODEL_LOG`` names a file to which every lookup appends one JSON line (digest,
where it was found); ``python -m imclib.cache --ship-models LOG`` copies the entries a run
used into the shipped store.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import tempfile
import time
import warnings
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

CACHE_FORMAT_VERSION = 2
"""Bump when training or the stored format changes so stale entries miss (2: one compressed
npz per entry, float32 weights)."""

SHIPPED_STORE = Path(__file__).resolve().parent / "models"
MAX_ENTRY_BYTES = 2**30
"""Largest array data an entry may declare (bytes): a crafted header cannot make a load
allocate more."""


class CorruptEntryError(ValueError):
    """A cache file exists but fails validation; the message names the file."""


# --------------------------------------------------------------------------- locations


def default_cache_dir() -> Path:
    """User model cache: ``$IMCLIB_CACHE``, else ``$XDG_CACHE_HOME/imclib/models``, else
    ``~/.cache/imclib/models``."""
    if os.environ.get("IMCLIB_CACHE"):
        return Path(os.environ["IMCLIB_CACHE"]).expanduser()
    xdg_cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg_cache) / "imclib" / "models"


def shipped_store_dir() -> Path:
    """The read-only store of shipped models: ``$IMCLIB_MODEL_STORE``, else ``imclib/models``."""
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


def atomic_write(path: Path, write: Callable[[object], None]) -> None:
    """Call ``write(binary_file)`` on a uniquely named temp file next to ``path``, then
    ``os.replace`` it onto ``path`` (readers never see a partial file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False
    ) as temp_file:
        temp_path = Path(temp_file.name)
        try:
            write(temp_file)
        except BaseException:
            temp_file.close()
            temp_path.unlink(missing_ok=True)
            raise
    os.replace(temp_path, path)


def read_npz(path: Path, expected: dict[str, tuple[int, ...] | None] | None = None,
             finite: bool = True) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` after checking it, or raise :class:`CorruptEntryError`.

    The member headers are read first: more than :data:`MAX_ENTRY_BYTES` of declared data is
    refused before anything is allocated. ``expected`` maps member names to a shape (or
    ``None``, any shape) and requires exactly those members; with ``finite`` every float
    array must be free of NaN and inf.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    CorruptEntryError
        If the file is truncated, empty, not an npz, has other members or shapes, or holds
        NaN or inf. The message names the file.
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
    from .mlp import MLP

    return MLP([w.astype(np.float32).astype(np.float64) for w in model.weights],
               [b.astype(np.float32).astype(np.float64) for b in model.biases])


def _entry_arrays(entry_digest: str, key_text: str, model, history: pd.DataFrame) -> dict[str, np.ndarray]:
    arrays = {"digest": np.array(entry_digest), "key": np.array(key_text),
              "history_columns": np.array(list(map(str, history.columns)))}
    arrays.update({f"weight_{i}": w.astype(np.float32) for i, w in enumerate(model.weights)})
    arrays.update({f"bias_{i}": b.astype(np.float32) for i, b in enumerate(model.biases)})
    arrays.update({f"history_{i}": history[c].to_numpy(dtype=np.float64) for i, c in enumerate(history.columns)})
    return arrays


def expected_layer_sizes(key: dict, layer_sizes: tuple[int, ...] | None) -> tuple[int | None, ...] | None:
    """The architecture an entry for ``key`` must have: ``layer_sizes`` if given, else
    ``(None, *hidden, None)`` from ``key["training"]`` (a TrainConfig), else ``None``."""
    from .mlp import TrainConfig

    if layer_sizes is not None:
        return tuple(int(n) for n in layer_sizes)
    training = key.get("training") if isinstance(key, dict) else None
    if isinstance(training, TrainConfig):
        return (None, *training.hidden, None)
    return None


def load_entry(path: Path, entry_digest: str, architecture: tuple[int | None, ...] | None):
    """``(model, history)`` of a validated entry; raises :class:`CorruptEntryError`."""
    from .mlp import MLP

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
    try:
        model = MLP([arrays[f"weight_{i}"] for i in range(n_layers)], [arrays[f"bias_{i}"] for i in range(n_layers)])
    except ValueError as error:
        raise CorruptEntryError(f"{path}: {error}") from error
    if architecture is not None and (
        len(architecture) != len(model.layer_sizes)
        or any(want is not None and want != got for want, got in zip(architecture, model.layer_sizes))
    ):
        raise CorruptEntryError(f"{path}: layer sizes {model.layer_sizes} do not match the key's "
                                f"architecture {architecture} (None: any width)")
    columns = [str(c) for c in arrays.get("history_columns", np.array([], dtype=str))]
    if any(f"history_{i}" not in arrays for i in range(len(columns))):
        raise CorruptEntryError(f"{path}: incomplete training history")
    history = pd.DataFrame({c: arrays[f"history_{i}"] for i, c in enumerate(columns)})
    if "epoch" in history:
        history["epoch"] = history["epoch"].astype(np.int64)
    return model, history


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
    if not retraining():
        for source, path in (("store", store / name), ("cache", directory / name)):
            try:
                model, history = load_entry(path, entry_digest, architecture)
            except FileNotFoundError:
                continue
            except CorruptEntryError as error:
                if source == "store":
                    warnings.warn(f"skipping a bad shipped model: {error}", RuntimeWarning, stacklevel=2)
                else:
                    move_aside(path, str(error))
                continue
            _log(entry_digest, source, key_text)
            return model, history

    model, history = train_fn()
    if not all(np.all(np.isfinite(p)) for p in [*model.weights, *model.biases]):
        raise RuntimeError(f"training diverged (non-finite weights) for key {key_text}; nothing was cached. "
                           "Lower learning_rate or check the data.")
    model = _as_float32_model(model)
    if architecture is not None and any(w is not None and w != g for w, g in zip(architecture, model.layer_sizes)):
        raise RuntimeError(f"train_fn returned layer sizes {model.layer_sizes}, not the key's {architecture}")
    save_arrays(directory / name, _entry_arrays(entry_digest, key_text, model, history))
    _log(entry_digest, "trained", key_text)
    return model, history


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
            target.parent.mkdir(parents=True, exist_ok=True)
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
