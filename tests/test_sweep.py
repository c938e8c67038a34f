"""imclib.sweep: tidy results, and the same numbers for any number of workers or backend."""

import functools

import numpy as np
import pandas as pd
import pytest

import imclib
from imclib.sweep import grid_points, sweep


def noisy_mvm(n_in, sigma, rng):
    """A small random task: a read-noise MVM on random weights (module level: picklable)."""
    weights = rng.normal(size=(n_in, 3))
    config = imclib.CrossbarConfig.quantization_only().with_(
        nonideal=imclib.Nonidealities(read_sigma=sigma))
    y = imclib.simulate_mvm(weights, np.ones((2, n_in)), config, rng)
    return {"y0": float(y[0, 0]), "y1": float(y[1, 0])}


def device_rows(seed):
    return pd.DataFrame({"draw": [0, 1], "value": np.random.default_rng(seed).normal(size=2)})


GRID = {"n_in": [4, 9], "sigma": [0.0, 0.01, 0.05]}


def test_grid_forms_give_the_same_points():
    points = grid_points(GRID)
    assert points[:2] == [{"n_in": 4, "sigma": 0.0}, {"n_in": 4, "sigma": 0.01}] and len(points) == 6
    assert grid_points(pd.DataFrame(points)) == points == grid_points(iter(points))
    assert grid_points({"mode": "offset", "n_in": [4, 9], "sigma": 0.01}) == [
        {"mode": "offset", "n_in": 4, "sigma": 0.01}, {"mode": "offset", "n_in": 9, "sigma": 0.01}]


def test_results_are_tidy_and_in_grid_order():
    table = sweep(noisy_mvm, GRID, progress=False)
    assert list(table.columns) == ["n_in", "sigma", "y0", "y1"]
    assert table[["n_in", "sigma"]].to_dict("records") == grid_points(GRID)
    rows = sweep(device_rows, {"seed": [3, 4]}, progress=False)
    assert list(rows.columns) == ["seed", "draw", "value"] and len(rows) == 4
    np.testing.assert_array_equal(rows["value"][:2], np.random.default_rng(3).normal(size=2))
    assert sweep(lambda a: a * 2, {"a": [1, 2]}, progress=False)["value"].tolist() == [2, 4]


def test_seeds_depend_on_the_grid_point_not_on_the_order_of_execution():
    one = sweep(noisy_mvm, GRID, seed=5, progress=False)
    np.testing.assert_array_equal(one["y0"], sweep(noisy_mvm, GRID, seed=5, progress=False)["y0"])
    assert not np.array_equal(one["y0"], sweep(noisy_mvm, GRID, seed=6, progress=False)["y0"])
    assert one["y0"].nunique() == len(one)  # every task has its own stream


def test_one_and_two_workers_give_identical_numbers():
    one = sweep(noisy_mvm, GRID, n_jobs=1, progress=False)
    two = sweep(noisy_mvm, GRID, n_jobs=2, progress=False)
    pd.testing.assert_frame_equal(one, two)


def test_dask_local_cluster_gives_identical_numbers():
    """Two workers in this process (a cluster of processes starts in about 10 s; pickling to
    worker processes is covered by the loky test above)."""
    distributed = pytest.importorskip("distributed", reason="dask.distributed not installed (extra 'cluster')")
    one = sweep(functools.partial(noisy_mvm, 6), {"sigma": [0.0, 0.02, 0.04]}, progress=False)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster):
        on_cluster = sweep(functools.partial(noisy_mvm, 6), {"sigma": [0.0, 0.02, 0.04]},
                           backend="dask", n_jobs=2, progress=False)
    pd.testing.assert_frame_equal(one, on_cluster)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="n_jobs"):
        sweep(noisy_mvm, GRID, n_jobs=0)
    with pytest.raises(ValueError, match="backend"):
        sweep(noisy_mvm, GRID, backend="spark")
    with pytest.raises(ValueError, match="repeats grid parameters"):
        sweep(lambda a: {"a": a}, {"a": [1]}, progress=False)
    with pytest.raises(ValueError, match="Client"):
        sweep(noisy_mvm, GRID, backend="dask")
