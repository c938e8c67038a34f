"""The attack cases of issue 19 on deployment, sweeps, configs and inputs, as tables.

Each row of ``REFUSED`` is one input that used to crash deep inside (a numpy reshape or
broadcast error, a ``MemoryError``, a ``ZeroDivisionError``), to hang, or to be scored
silently; it must now raise a ``ValueError`` whose message names the parameter and its
allowed range. The other tests check the cases whose answer is a correct result instead:
tiny (subnormal) weights, inputs beyond the calibrated range on the ideal config, and a
failing sweep task named by its grid point and seed on every backend.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from imclib import CellLevels, CrossbarConfig, MTJ, Periphery, program_layer, simulate_mvm
from imclib.circuit import WireParasitics, linear_column_currents, nonlinear_column_currents, transfer_matrix
from imclib.deploy import deploy_network
from imclib.mlp import MLP
from imclib.network import hardware_accuracy, hardware_logits, hardware_matmul
from imclib.sweep import SweepTaskError, sweep

RNG = np.random.default_rng(19)
MODEL = MLP([RNG.normal(size=(12, 9)), RNG.normal(size=(9, 3))], [RNG.normal(size=9), RNG.normal(size=3)])
X = RNG.uniform(size=(25, 12))
Y = RNG.integers(0, 3, size=25)
W = RNG.normal(size=(8, 4))
V = RNG.uniform(size=(3, 8))
IDEAL = CrossbarConfig.ideal()
QUANTIZED = CrossbarConfig.quantization_only()
ONE_OHM = WireParasitics(r_row=1.0, r_col=1.0)


def huge_model() -> MLP:
    return MLP([MODEL.weights[0] * 1e300, MODEL.weights[1]], list(MODEL.biases))


REFUSED = [
    # deployment
    ("calibration of the wrong width", lambda: deploy_network(MODEL, QUANTIZED, X[:, :10], 0),
     r"calibration must have shape \(batch, 12\).*\(25, 10\)"),
    ("inputs of the wrong width", lambda: hardware_logits(MODEL, X[:, :10], QUANTIZED, 0, X),
     r"x must have shape \(batch, 12\)"),
    ("labels of the wrong length", lambda: hardware_accuracy(MODEL, X, Y[:5], QUANTIZED, [0], X),
     r"y must have shape \(25,\)"),
    ("labels beyond the classes", lambda: hardware_accuracy(MODEL, X, Y + 3, QUANTIZED, [0], X),
     r"y must hold class labels in \[0, 3\)"),
    ("negative labels", lambda: hardware_accuracy(MODEL, X, Y - 3, QUANTIZED, [0], X),
     r"y must hold class labels in \[0, 3\)"),
    ("fractional labels", lambda: hardware_accuracy(MODEL, X, Y + 0.5, QUANTIZED, [0], X),
     r"y must hold integer class labels in \[0, 3\)"),
    ("labels as a column", lambda: hardware_accuracy(MODEL, X, Y[:, None], QUANTIZED, [0], X),
     r"y must have shape \(25,\)"),
    ("no seeds", lambda: hardware_accuracy(MODEL, X, Y, QUANTIZED, [], X), "seeds must be a non-empty sequence"),
    ("seeds as one number", lambda: hardware_accuracy(MODEL, X, Y, QUANTIZED, 3, X), "seeds must be a non-empty"),
    ("a negative seed among seeds", lambda: hardware_accuracy(MODEL, X, Y, QUANTIZED, [0, -1], X),
     r"seeds\[1\] must be a non-negative integer"),
    ("negative seed", lambda: hardware_logits(MODEL, X, QUANTIZED, -1, X), "seed must be a non-negative integer"),
    ("fractional seed", lambda: hardware_logits(MODEL, X, QUANTIZED, 1.5, X), "seed must be a non-negative integer"),
    ("negative device rng", lambda: deploy_network(MODEL, QUANTIZED, X, -1), "rng must be"),
    ("model of the wrong type", lambda: deploy_network(MODEL.weights, QUANTIZED, X, 0),
     "model must be an MLP or a Sequential network"),
    ("config of the wrong type", lambda: deploy_network(MODEL, "ideal", X, 0), "config must be a CrossbarConfig"),
    ("one input range for two layers", lambda: deploy_network(MODEL, QUANTIZED, X, 0, input_ranges=1.0),
     r"input_ranges must be a sequence of one value per layer \(2\)"),
    ("a NaN input range", lambda: deploy_network(MODEL, QUANTIZED, X, 0, input_ranges=[np.nan, 1.0]),
     r"input_ranges\[0\] must be in \(0, inf\)"),
    ("NaN calibration", lambda: deploy_network(MODEL, QUANTIZED, X * np.nan, 0), "calibration must contain only finite"),
    # sweeps
    ("an empty grid", lambda: sweep(lambda: 1, {}, progress=False), "grid must name at least one parameter"),
    ("an empty grid point", lambda: sweep(lambda: 1, [{}], progress=False), "every grid point must name"),
    ("an axis without values", lambda: sweep(lambda a: a, {"a": []}, progress=False), "grid has no points"),
    ("a grid of numbers", lambda: sweep(lambda a: a, [1, 2], progress=False), "grid must be a mapping"),
    ("a negative sweep seed", lambda: sweep(divide, {"a": [1.0], "b": [1.0]}, seed=-1, progress=False),
     "seed must be None or a non-negative integer"),
    ("a fractional sweep seed", lambda: sweep(divide, {"a": [1.0], "b": [1.0]}, seed=1.5, progress=False),
     "seed must be None or a non-negative integer"),
    ("fewer programmed layers than the model has", lambda: MODEL.forward(X, matmul=hardware_matmul(
        deploy_network(MLP(MODEL.weights[:1], MODEL.biases[:1]), IDEAL, X, 0)[0], 0)),
     r"layers holds 1 programmed layers, the model has more \(layer 1\)"),
    ("layers that are not programmed layers", lambda: hardware_matmul(MODEL.weights, 0),
     "layers must be a list of ProgrammedLayer"),
    ("a hidden activation that overflowed", lambda: hardware_matmul(deploy_network(MODEL, QUANTIZED, X, 0)[0], 0)(
        1, np.full((2, 9), np.inf), MODEL.weights[1]), "x must contain only finite values"),
    ("a layer's NaN input", lambda: deploy_network(MODEL, QUANTIZED, X, 0)[0][0].mvm(X * np.nan, 0),
     "x must contain only finite values"),
    # configs: sizes that hung or asked for terabytes
    ("1024-state binary cells read with bias dependence", lambda: CrossbarConfig(cell=CellLevels(1024, "binary")),
     r"cell.n_states must be <= 256 for kind='binary' with bias_dependence=True"),
    ("65-state series cells read with bias dependence", lambda: CrossbarConfig(cell=CellLevels(65, "series")),
     r"cell.n_states must be <= 64 for kind='series'"),
    ("2^21-state binary cells", lambda: CellLevels(2**21, "binary"), r"n_states must be in \[2, 1048576\]"),
    ("8192-state series cells", lambda: CellLevels(8192, "series"), r"n_states must be in \[2, 4096\] for kind='series'"),
    ("2^40 rows", lambda: CrossbarConfig(rows=2**40), r"rows must be an integer in \[1, 4096\]"),
    ("2^40 columns", lambda: CrossbarConfig.ideal(cols=2**40), r"cols must be an integer in \[1, 4096\]"),
    ("array size 0", lambda: CrossbarConfig(rows=0), r"rows must be an integer in \[1, 4096\]"),
    ("N < 2", lambda: CellLevels(1, "uniform"), "n_states must be an integer >= 2"),
    # weights and conductances beyond float64
    ("weights x 1e300 (ideal)", lambda: simulate_mvm(W * 1e300, V, IDEAL), r"weights must have \|weights\| <= 1e\+100"),
    ("weights x 1e300 (quantized)", lambda: simulate_mvm(W * 1e300, V, CrossbarConfig()),
     r"weights must have \|weights\| <= 1e\+100"),
    ("a network with weights x 1e300", lambda: deploy_network(huge_model(), IDEAL, X, 0), r"weights must have \|weights\|"),
    ("NaN weights", lambda: simulate_mvm(W * np.nan, V, IDEAL), "weights must contain only finite values"),
    ("a network with NaN weights", lambda: MLP([W * np.nan], [np.zeros(4)]), "layer 0 parameters must be finite"),
    ("inputs of the wrong width", lambda: simulate_mvm(W, V[:, :5], IDEAL), r"inputs must have shape \(batch, 8\)"),
    ("a read of the wrong width", lambda: program_layer(W, IDEAL).mvm(V[:, :5]), r"x must have shape \(batch, 8\)"),
    ("1e300 S behind 1-ohm wires", lambda: transfer_matrix(np.full((4, 4), 1e300), ONE_OHM),
     r"G \(max 1e\+300 S\) times the largest wire resistance \(1 ohm\) must be <= 1e\+06"),
    ("1e300 S behind 1-ohm wires, small batch", lambda: linear_column_currents(np.full((4, 4), 1e300), V[:1, :4], ONE_OHM),
     "times the largest wire resistance"),
    ("1e300 S of a nonlinear cell (chord)", lambda: nonlinear_column_currents(lambda v: np.full(v.shape, 1e300),
                                                                               V[:, :4], ONE_OHM, n_cols=4),
     r"conductance_at \(max 1e\+300 S\) times the largest wire resistance"),
    ("1e300 S of a nonlinear cell (picard)", lambda: nonlinear_column_currents(lambda v: np.full(v.shape, 1e300),
                                                                                V[:, :4], ONE_OHM, n_cols=4,
                                                                                method="picard"),
     r"conductance_at \(max 1e\+300 S\)"),
    ("a nonlinear cell of 1e20 S at its solution (picard: returned zeros)", lambda: nonlinear_column_currents(
        lambda v: np.where(np.abs(v) > 0.19, 1e-4, 1e20), np.full((2, 4), 0.2), WireParasitics(50.0, 50.0, 1e3, 1e3),
        n_cols=4, method="picard"), r"conductance_at \(max 1e\+20 S\) times the largest wire resistance \(1e\+03 ohm\)"),
    ("1-milliohm junctions behind 1-gigaohm wires", lambda: program_layer(W, CrossbarConfig.quantization_only(
        CellLevels(4, "binary", MTJ(r_p=1e-3)), wires=WireParasitics(r_row=1e9))), "times the largest wire resistance"),
    # device parameters (R_AP = R_P (1 + TMR0) > R_P, resistances > 0)
    ("R_AP = R_P", lambda: MTJ(tmr0=0.0), r"tmr0 must be in \[1e-06, 1000\]"),
    ("R_AP < R_P", lambda: MTJ(tmr0=-0.5), r"tmr0 must be in \[1e-06, 1000\]"),
    ("negative R_P", lambda: MTJ(r_p=-6e3), r"r_p must be in \[0.001, 1e\+12\] ohm"),
    ("negative wire resistance", lambda: WireParasitics(r_col=-1.0), r"r_col must be 0 or in \[1e-09, 1e\+09\] ohm"),
]


@pytest.mark.parametrize("call, message", [case[1:] for case in REFUSED], ids=[case[0] for case in REFUSED])
def test_bad_input_is_refused_with_its_name_and_range(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_the_allowed_extremes_still_run():
    """The bounds above sit where the work is still practical, not below it."""
    CrossbarConfig(cell=CellLevels(256, "binary"))
    CrossbarConfig(cell=CellLevels(64, "series"))
    CrossbarConfig.quantization_only(CellLevels(1024, "binary"))  # no bias dependence: nothing to tabulate
    assert CrossbarConfig(rows=4096, cols=4096).rows == 4096
    largest = W / np.abs(W).max() * 1e100
    y = simulate_mvm(largest, V, CrossbarConfig(), 0)
    assert np.all(np.isfinite(y)) and np.abs(y).max() > 1e98
    np.testing.assert_allclose(simulate_mvm(largest, V, IDEAL), V @ largest, rtol=1e-12)
    g = np.full((4, 4), 1e6)  # G r = 1e6, the largest accepted
    np.testing.assert_allclose(linear_column_currents(g, V[:4, :4], ONE_OHM),
                               linear_column_currents(g, V[:4, :4], ONE_OHM, solver="sparse"), rtol=1e-8)


@pytest.mark.parametrize("scale", [1e-320, 1e-315, 1e-310, 1e-305])
def test_tiny_weights_on_the_ideal_config_are_read_back_correctly_rounded(scale):
    """Subnormal weights (below 2.2e-308) lose nothing in the map: the ideal MVM is the exact
    product rounded once. The reference is that product computed on weights scaled by
    2^1060, an exact power of two that makes every weight normal; numpy's own ``x @ W`` on
    the subnormal weights rounds every partial sum and is off by a few subnormal steps
    (5e-324 each, 5e-4 of 1e-320: the silent relative error of the issue)."""
    weights = W * scale
    exact = V @ np.ldexp(weights, 1060)
    read = np.ldexp(simulate_mvm(weights, V, IDEAL), 1060)
    step = np.ldexp(np.nextafter(0.0, 1.0), 1060)  # the smallest subnormal, scaled alike
    assert np.max(np.abs(read - exact) - 1e-14 * np.abs(exact)) <= step


@pytest.mark.parametrize("factor", [10.0, -10.0])
def test_the_ideal_config_equals_the_float_network_beyond_the_calibrated_range(factor):
    """Calibrated on inputs in [0, 1], read on inputs 10 times larger (and of the other sign):
    analog cells without a DAC clip nothing, so the logits are the float network's."""
    x = factor * RNG.uniform(size=(30, 12))
    expected = MODEL.forward(x)
    np.testing.assert_allclose(hardware_logits(MODEL, x, IDEAL, 0, X), expected, rtol=1e-12,
                               atol=1e-12 * np.abs(expected).max())
    _, report = deploy_network(MODEL, IDEAL, x, 0)
    assert not IDEAL.clips_inputs and (report.input_clipped == 0).all()


def test_a_real_dac_still_clips():
    """The ideal exception is narrow: with a DAC (a driver with a range) or quantized cells the
    inputs beyond the calibrated full scale clip, as before."""
    for config in (IDEAL.with_(periphery=Periphery(dac_bits=16)), QUANTIZED):
        layer = deploy_network(MODEL, config, X, 0)[0][0]
        assert config.clips_inputs and layer.clipped_fraction(10 * X) > 0.5
        assert np.abs(layer.applied_inputs(10 * X)).max() <= layer.input_range * (1 + 1e-12)


def divide(a, b, rng):
    """A task that fails at b = 0 (module level: picklable for worker processes)."""
    return {"q": a / b + 0.0 * rng.random()}


FAILING_GRID = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "b": [1.0, 1.0, 0.0, 1.0]})  # task 2 fails


def _sweep_failure(**options) -> SweepTaskError:
    with pytest.raises(SweepTaskError) as failure:
        sweep(divide, FAILING_GRID, seed=7, progress=False, **options)
    return failure.value


def _check_names_the_task(error: SweepTaskError):
    message = str(error)
    assert "task 2 of 4" in message and "{'a': 3.0, 'b': 0.0}" in message, message
    assert "SeedSequence(7).spawn(4)[2]" in message and "ZeroDivisionError" in message, message
    assert isinstance(error.__cause__, ZeroDivisionError)


@pytest.mark.parametrize("options", [{"n_jobs": 1}, {"n_jobs": 2, "backend": "loky"},
                                     {"n_jobs": 2, "backend": "threading"}], ids=["serial", "loky", "threading"])
def test_a_failing_task_is_named_by_its_grid_point_and_seed(options):
    _check_names_the_task(_sweep_failure(**options))


def test_a_failing_task_is_named_on_a_dask_cluster():
    distributed = pytest.importorskip("distributed", reason="dask.distributed not installed (extra 'cluster')")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster):
        _check_names_the_task(_sweep_failure(n_jobs=2, backend="dask"))


def test_a_worker_traceback_travels_with_the_cause():
    """From a worker process the original exception has lost its traceback: the worker's
    traceback text is attached to it as a note."""
    cause = _sweep_failure(n_jobs=2, backend="loky").__cause__
    assert any("in divide" in note for note in getattr(cause, "__notes__", [])), cause


def test_a_decode_gain_that_overflows_is_refused_by_name():
    """Huge inputs on a weak conductance window make a/s overflow: refused, not inf."""
    config = CrossbarConfig().with_(v_read=1e-6)
    weights = np.random.default_rng(0).normal(size=(8, 4))
    inputs = np.full((2, 8), 1e300)
    with pytest.raises(ValueError, match="decode gain"):
        simulate_mvm(weights, inputs, config, np.random.default_rng(1))


class _TwoArgumentError(Exception):
    """An exception whose reduce tuple cannot rebuild it (its __init__ takes two arguments)."""

    def __init__(self, first, second):
        super().__init__(f"{first} and {second}")


def _raise_two_argument_error(a):
    raise _TwoArgumentError(a, "b")


def test_a_worker_exception_that_cannot_be_rebuilt_travels_as_runtime_error_with_the_task_named():
    with pytest.raises(SweepTaskError, match=r"task \d of 2 failed at grid point") as info:
        sweep(_raise_two_argument_error, {"a": [1, 2]}, n_jobs=2, backend="loky", progress=False)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert "_TwoArgumentError" in str(info.value.__cause__)
