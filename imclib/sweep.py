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

A task that raises stops the sweep with a :class:`SweepTaskError` naming the task, its grid
point and its seed, on every backend; the task's own exception is its ``__cause__``.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import itertools
import pickle
import traceback
from collections.abc import Callable, Iterable, Mapping

import joblib
import numba
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import _validate

BACKENDS = ("loky", "threading", "dask")


class SweepTaskError(RuntimeError):
    """A task of :func:`sweep` raised: the message names the task's index, its grid point and
    its seed; the task's own exception is the ``__cause__`` (with the worker's traceback in
    its notes when it ran in another process)."""


class _TaskFailed(Exception):
    """A task's exception on its way out of a worker, with the task's index and the
    worker's traceback text (an exception that does not survive pickling travels as a
    ``RuntimeError`` with its type and message)."""

    def __init__(self, index: int, error: BaseException, trace: str):
        super().__init__(index, error, trace)
        self.index, self.error, self.trace = index, error, trace

    def __reduce__(self):
        try:  # it must pickle (importable class) and rebuild from its reduce tuple (its args)
            pickle.dumps(self.error)
            error = copy.deepcopy(self.error)
        except Exception:  # noqa: BLE001 - any exception that cannot travel is replaced
            error = RuntimeError(f"{type(self.error).__qualname__}: {self.error}")
        return _TaskFailed, (self.index, error, self.trace)


def grid_points(grid: Mapping[str, Iterable] | Iterable[Mapping] | pd.DataFrame) -> list[dict]:
    """The grid as a list of points (dicts of parameter values), at least one, each naming
    at least one parameter.

    ``grid`` is a mapping ``{name: values}`` (every combination, in ``itertools.product``
    order, last name fastest; a single value, e.g. a string or a number, is one point), an
    iterable of mappings (the points themselves) or a DataFrame (one point per row).
    """
    if isinstance(grid, pd.DataFrame):
        points = grid.to_dict("records")
    elif isinstance(grid, Mapping):
        names = list(grid)
        if not names:
            raise ValueError("grid must name at least one parameter, got an empty mapping {}")
        values = [list(grid[name]) if isinstance(grid[name], Iterable) and not isinstance(grid[name], (str, bytes))
                  else [grid[name]] for name in names]  # a single value is a one-point axis
        points = [dict(zip(names, combination)) for combination in itertools.product(*values)]
    else:
        points = list(grid) if isinstance(grid, Iterable) and not isinstance(grid, (str, bytes)) else [grid]
        if not all(isinstance(point, Mapping) for point in points):
            raise ValueError("grid must be a mapping {name: values}, an iterable of mappings or a DataFrame, "
                             f"got {type(grid).__name__}")
        points = [dict(point) for point in points]
    if not points:
        raise ValueError("grid has no points (an axis without values, or no rows): nothing to sweep")
    empty = [index for index, point in enumerate(points) if not point]
    if empty:
        raise ValueError(f"every grid point must name at least one parameter; point {empty[0]} names none")
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


def _task(fn: Callable, point: dict, seed_sequence: np.random.SeedSequence | None, index: int,
          one_thread: bool = False):
    """``fn(**point)`` (with ``rng`` when a seed sequence is given); an exception leaves as
    :class:`_TaskFailed`, tagged with the task's ``index``. With ``one_thread`` (tasks run side
    by side) the compiled read kernels use one thread, so that workers do not oversubscribe
    the cores (their results do not depend on the thread count)."""
    if one_thread:
        numba.set_num_threads(1)
    try:
        if seed_sequence is None:
            return fn(**point)
        return fn(**point, rng=np.random.default_rng(seed_sequence))
    except Exception as error:
        raise _TaskFailed(index, error, traceback.format_exc()) from None


def _failure(failure: _TaskFailed, points: list[dict], seed: int | None, takes_rng: bool,
             description: str) -> SweepTaskError:
    """The :class:`SweepTaskError` for a failed task, naming its index, point and seed."""
    error, index = failure.error, failure.index
    if error.__traceback__ is None:  # raised in another process: keep the worker's traceback
        error.add_note(f"Traceback in the worker:\n{failure.trace}")
    seed_text = (f"rng = default_rng(SeedSequence({seed}).spawn({len(points)})[{index}])" if takes_rng
                 else "no rng passed")
    return SweepTaskError(f"{description}: task {index} of {len(points)} failed at grid point {points[index]} "
                          f"({seed_text}): {type(error).__name__}: {error}")


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

    Raises
    ------
    SweepTaskError
        When a task raises: names the task's index, grid point and seed; the task's
        exception is its ``__cause__``.
    """
    if not callable(fn):
        raise ValueError("fn must be callable")
    if n_jobs != -1:
        _validate.integer_at_least("n_jobs", n_jobs, 1)
    _validate.choice("backend", backend, BACKENDS)
    _validate.seed("seed", seed, optional=True)
    points = grid_points(grid)
    takes_rng = seed is not None and "rng" in inspect.signature(fn).parameters
    seeds = np.random.SeedSequence(seed).spawn(len(points)) if takes_rng else [None] * len(points)
    if backend == "dask":
        _require_dask_client()
    parallel = n_jobs != 1 or backend == "dask"
    tasks = [(fn, point, child, index) for index, (point, child) in enumerate(zip(points, seeds))]
    with joblib.parallel_config(backend=backend, n_jobs=n_jobs) if parallel else contextlib.nullcontext():
        if parallel:
            results = joblib.Parallel(return_as="generator")(joblib.delayed(_task)(*task, True) for task in tasks)
        else:
            results = (_task(*task) for task in tasks)
        bar = tqdm(results, total=len(points), desc=description, disable=not progress, leave=False)
        try:
            frames = [_rows(point, result) for point, result in zip(points, bar)]
        except _TaskFailed as failure:
            raise _failure(failure, points, seed, takes_rng, description) from failure.error
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
