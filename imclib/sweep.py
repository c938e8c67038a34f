"""Parameter and device-seed sweeps in parallel: on this machine, or on a Dask cluster.

:func:`sweep` calls a function once per grid point, in worker processes (joblib), and
returns every result as one tidy DataFrame (one row per result, the grid point's
parameters as columns). Random draws are reproducible whatever the number of workers:
task ``t`` (the ``t``-th grid point) receives the generator
``numpy.random.default_rng(SeedSequence(seed).spawn(n)[t])``, which depends on ``seed``
and ``t`` only, never on which worker runs it or when.

The same call runs on a Dask cluster through joblib's ``dask`` backend (the optional extra
``pip install -e .[cluster]``): connect a ``dask.distributed.Client`` first, then pass
``backend="dask"``.
"""

from __future__ import annotations

import contextlib
import inspect
import itertools
from collections.abc import Callable, Iterable, Mapping

import joblib
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import _validate

BACKENDS = ("loky", "threading", "dask")


def grid_points(grid: Mapping[str, Iterable] | Iterable[Mapping] | pd.DataFrame) -> list[dict]:
    """The grid as a list of points (dicts of parameter values).

    ``grid`` is a mapping ``{name: values}`` (every combination, in ``itertools.product``
    order, last name fastest; a single value, e.g. a string or a number, is one point), an iterable of mappings (the points themselves) or a
    DataFrame (one point per row).
    """
    if isinstance(grid, pd.DataFrame):
        return grid.to_dict("records")
    if isinstance(grid, Mapping):
        names = list(grid)
        values = [list(grid[name]) if isinstance(grid[name], Iterable) and not isinstance(grid[name], (str, bytes))
                  else [grid[name]] for name in names]  # a single value is a one-point axis
        return [dict(zip(names, combination)) for combination in itertools.product(*values)]
    points = [dict(point) for point in grid]
    if not all(isinstance(point, dict) for point in points):
        raise ValueError("grid must be a mapping {name: values}, an iterable of mappings or a DataFrame")
    return points


def _rows(point: dict, result) -> pd.DataFrame:
    """One task's result as rows, with the grid point's parameters in front."""
    if isinstance(result, pd.DataFrame):
        rows = result.reset_index(drop=True)
    elif isinstance(result, Mapping):
        rows = pd.DataFrame([dict(result)])
    elif isinstance(result, Iterable) and not isinstance(result, (str, bytes)):
        rows = pd.DataFrame([dict(row) for row in result])
    else:
        rows = pd.DataFrame({"value": [result]})
    clash = set(point) & set(rows.columns)
    if clash:
        raise ValueError(f"the result repeats grid parameters {sorted(clash)}: return only new columns")
    for position, (name, value) in enumerate(point.items()):
        rows.insert(position, name, [value] * len(rows))
    return rows


def _task(fn: Callable, point: dict, seed_sequence: np.random.SeedSequence | None):
    if seed_sequence is None:
        return fn(**point)
    return fn(**point, rng=np.random.default_rng(seed_sequence))


def sweep(
    fn: Callable,
    grid: Mapping[str, Iterable] | Iterable[Mapping] | pd.DataFrame,
    *,
    n_jobs: int = 1,
    backend: str = "loky",
    seed: int | None = 0,
    progress: bool = True,
    description: str = "sweep",
) -> pd.DataFrame:
    """Run ``fn(**point)`` for every grid point, in parallel, and collect a tidy DataFrame.

    Parameters
    ----------
    fn : callable
        ``fn(**point)`` or, if it has a parameter named ``rng``, ``fn(**point, rng=g)``
        with the task's own ``numpy.random.Generator``. It returns a mapping (one row), a
        list of mappings or a DataFrame (several rows) or a scalar (column ``value``). It
        must be picklable (a module-level function or a ``functools.partial`` of one) for
        process and cluster backends.
    grid : mapping, iterable of mappings or DataFrame
        The points, see :func:`grid_points`.
    n_jobs : int
        Workers (>= 1, or -1 for every CPU; on a Dask cluster, the number of tasks in
        flight). ``n_jobs=1`` runs in this process.
    backend : {"loky", "threading", "dask"}
        joblib backend: worker processes (``loky``, the default), threads, or the Dask
        cluster of the current ``dask.distributed.Client``.
    seed : int or None
        Root of the task seeds: task ``t`` draws from
        ``default_rng(SeedSequence(seed).spawn(len(points))[t])``. ``None`` passes no
        generator even when ``fn`` takes ``rng`` (it then uses its own default).
    progress : bool
        Show a progress bar (tqdm; removed when done).
    description : str
        Label of the progress bar.

    Returns
    -------
    pandas.DataFrame
        The grid parameters, then ``fn``'s columns; rows in grid order (the same for any
        ``n_jobs`` and backend).
    """
    if not callable(fn):
        raise ValueError("fn must be callable")
    if n_jobs != -1:
        _validate.integer_at_least("n_jobs", n_jobs, 1)
    _validate.choice("backend", backend, BACKENDS)
    points = grid_points(grid)
    takes_rng = seed is not None and "rng" in inspect.signature(fn).parameters
    seeds = np.random.SeedSequence(seed).spawn(len(points)) if takes_rng else [None] * len(points)
    if backend == "dask":
        _require_dask_client()
    parallel = n_jobs != 1 or backend == "dask"
    with joblib.parallel_config(backend=backend, n_jobs=n_jobs) if parallel else contextlib.nullcontext():
        if parallel:
            tasks = (joblib.delayed(_task)(fn, point, child) for point, child in zip(points, seeds))
            results = joblib.Parallel(return_as="generator")(tasks)
        else:
            results = (_task(fn, point, child) for point, child in zip(points, seeds))
        bar = tqdm(results, total=len(points), desc=description, disable=not progress, leave=False)
        frames = [_rows(point, result) for point, result in zip(points, bar)]
    if not frames:
        return pd.DataFrame(columns=list(points[0]) if points else [])
    return pd.concat(frames, ignore_index=True)


def _require_dask_client() -> None:
    try:
        from distributed import get_client
    except ImportError:
        raise ValueError(
            "backend='dask' needs dask.distributed: pip install -e '.[cluster]'"
        ) from None
    try:
        get_client()
    except ValueError:
        raise ValueError(
            "backend='dask' runs on the current dask.distributed Client: create one first, "
            "e.g. Client(LocalCluster(n_workers=2)) or Client('scheduler-address:8786')"
        ) from None
