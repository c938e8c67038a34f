"""Cached study tables: a study function's DataFrames memoised under its name, every argument
it was called with and the source code it runs.

:func:`cached_call` stores through :func:`imclib.experiments.mnist.cached_table` (shipped
store, then user cache, else computed), whose key already carries a digest of the physics,
deployment, training and data modules (``mnist.TABLE_CODE``). The key added here names the
function, fingerprints every argument (arrays and networks by a SHA-256 of their values,
configurations by their full ``repr``) and digests the source of the function's module and of
every ``imclib`` module it imports, directly or not, so that an edit to a study or to a
model outside ``TABLE_CODE`` (e.g. :mod:`imclib.cost`) recomputes the table. The store
modules (:data:`STORE_MODULES`) are left out of that digest, as they are of ``TABLE_CODE``:
how a table is written does not change its values.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from ..mlp import MLP
from . import mnist

PACKAGE = Path(__file__).resolve().parents[1]
UNKEYED = frozenset({"progress"})
"""Arguments that do not change a table (left out of its key)."""
STORE_MODULES = frozenset({PACKAGE / "cache.py", PACKAGE / "_files.py"})
"""Modules that load and save tables and models (left out of :func:`code_digest`; the table
format is versioned inside each file)."""


def fingerprint(value):
    """A JSON-able value that identifies ``value``: an object with a ``cache_key`` attribute
    by that key, arrays by a SHA-256 of their dtype, shape and bytes, :class:`~imclib.mlp.MLP`
    networks by that of their parameters and by what they were trained for (``trained_for``:
    the column calibration's default target), containers element by element, ranges as lists, anything else
    (numbers, strings, frozen dataclass configs) by ``repr``; a ``repr`` that shows a memory
    address (a function, a plain object) is refused with a TypeError, as it would never
    match again."""
    if hasattr(value, "cache_key"):  # e.g. experiments.errors.Layers: keyed by what determines it
        return {type(value).__name__: fingerprint(value.cache_key)}
    if isinstance(value, np.ndarray):
        data = np.ascontiguousarray(value)
        return f"array {data.dtype} {data.shape} {hashlib.sha256(data.tobytes()).hexdigest()}"
    if isinstance(value, MLP):
        return {"MLP": fingerprint([*value.weights, *value.biases]), "trained_for": value.trained_for}
    if isinstance(value, dict):
        return {str(k): fingerprint(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, range)):
        return [fingerprint(v) for v in value]
    text = repr(value)
    if " at 0x" in text:
        raise TypeError(f"{type(value).__name__} has no value-based repr ({text}): it cannot be part of a cache key")
    return text


def _module_path(package_dir: Path, dotted: str) -> Path | None:
    """``package_dir/dotted`` as a module file (``a.b`` -> ``a/b.py`` or ``a/b/__init__.py``)."""
    base = package_dir.joinpath(*dotted.split(".")) if dotted else package_dir
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imports(path: Path) -> set[Path]:
    """The ``imclib`` module files ``path`` imports (relative or absolute, at any depth of the file)."""
    found = set()
    here = path.parent
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.parents[node.level - 2] if node.level > 1 else here
            elif (node.module or "").split(".")[0] == "imclib":
                base = PACKAGE.parent
            else:
                continue
            module = node.module or ""
            candidates = [module] if node.module else []
            candidates += [f"{module}.{alias.name}".lstrip(".") for alias in node.names]
        elif isinstance(node, ast.Import):
            base, candidates = PACKAGE.parent, [a.name for a in node.names if a.name.split(".")[0] == "imclib"]
        else:
            continue
        found.update(p for p in (_module_path(base, c) for c in candidates) if p is not None)
    return {p.resolve() for p in found if PACKAGE in p.resolve().parents}


@lru_cache(maxsize=None)
def code_digest(path: Path) -> str:
    """SHA-256 of the module file ``path`` and of every ``imclib`` module it imports,
    transitively (each file once, in path order), except :data:`STORE_MODULES`."""
    seen, todo = set(), [Path(path).resolve()]
    while todo:
        current = todo.pop()
        if current not in seen:
            seen.add(current)
            todo.extend(_imports(current) - seen)
    digest = hashlib.sha256()
    for file in sorted(seen - STORE_MODULES):
        digest.update(str(file.relative_to(PACKAGE) if PACKAGE in file.parents else file.name).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def cached_call(function, *args, **kwargs):
    """``function(*args, **kwargs)``, a DataFrame or a tuple of DataFrames, memoised under
    the function's name, its bound arguments with defaults applied (:func:`fingerprint`;
    ``progress`` is left out) and :func:`code_digest` of its module, through
    :func:`~imclib.experiments.mnist.cached_table` (a tuple is stored part by part, with its
    length). ``function`` runs at most once per call."""
    bound = inspect.signature(function).bind(*args, **kwargs)
    bound.apply_defaults()
    name = f"{function.__module__}.{function.__qualname__}"
    key = {"function": name,
           "arguments": fingerprint({k: v for k, v in bound.arguments.items() if k not in UNKEYED}),
           "code": code_digest(Path(inspect.getsourcefile(function)))}
    computed: list = []

    def result() -> tuple:
        if not computed:
            value = function(*args, **kwargs)
            parts = value if isinstance(value, tuple) else (value,)
            if not all(isinstance(part, pd.DataFrame) for part in parts):
                raise TypeError(f"{name} returned {type(value).__name__}, not DataFrames: it cannot be cached")
            computed.append((isinstance(value, tuple), parts))
        return computed[0]

    shape = mnist.cached_table({**key, "part": "shape"}, lambda: pd.DataFrame(
        {"tuple": [result()[0]], "parts": [len(result()[1])]}))
    parts = [mnist.cached_table({**key, "part": i}, lambda i=i: result()[1][i]) for i in range(int(shape.parts.iloc[0]))]
    return tuple(parts) if bool(shape.tuple.iloc[0]) else parts[0]
