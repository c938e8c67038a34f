"""Solver paths of imclib.circuit: the direct small-batch solve against the transfer
matrix, and the solver options carried by the config."""

import numpy as np
import pytest

from imclib import CellLevels, CrossbarConfig, Nonidealities, program_layer
from imclib.circuit import SolverOptions, WireParasitics, linear_column_currents, transfer_matrix

WIRES = {
    "distributed": WireParasitics(r_row=2.0, r_col=3.0, r_driver=5.0, r_sense=7.0),
    "merged rows": WireParasitics(r_driver=5.0, r_col=3.0),
    "fixed rows": WireParasitics(r_col=3.0, r_sense=1.0),
}


@pytest.mark.parametrize("solver", ["dense", "sparse"])
@pytest.mark.parametrize("wires", list(WIRES))
def test_direct_small_batch_equals_transfer_matrix(solver, wires):
    rng = np.random.default_rng(0)
    G = rng.uniform(1e-5, 1e-3, size=(3, 6, 5))  # 3 tiles of 6 x 5
    V = rng.uniform(-0.2, 0.2, size=(4, 3, 6))  # batch 4 < k = 6: direct solve
    direct = linear_column_currents(G, V, WIRES[wires], solver=solver)
    via_transfer = np.einsum("bpi,pij->bpj", V, transfer_matrix(G, WIRES[wires], solver=solver))
    np.testing.assert_allclose(direct, via_transfer, rtol=1e-11, atol=1e-12 * np.abs(via_transfer).max())
    large = np.concatenate([V, V, V[:1]])  # batch 9 >= k: the transfer-matrix path
    np.testing.assert_allclose(linear_column_currents(G, large, WIRES[wires], solver=solver)[:4], direct,
                               rtol=1e-11, atol=1e-12 * np.abs(direct).max())


def test_direct_solve_broadcasts_one_array_over_tiles_of_inputs():
    rng = np.random.default_rng(1)
    G, V = rng.uniform(1e-5, 1e-3, size=(1, 4, 4)), rng.uniform(0, 0.2, size=(2, 3, 4))
    one_by_one = np.concatenate([linear_column_currents(G, V[:, t : t + 1], WIRES["distributed"]) for t in range(3)], axis=1)
    np.testing.assert_allclose(linear_column_currents(G, V, WIRES["distributed"]), one_by_one, rtol=1e-13)


@pytest.mark.parametrize("bad, message", [
    ({"method": "newton"}, "method"), ({"damping": 0.0}, "damping"), ({"damping": 1.5}, "damping"),
    ({"max_iter": 0}, "max_iter"), ({"tol": 1.0}, "tol"),
])
def test_solver_options_are_validated(bad, message):
    with pytest.raises(ValueError, match=message):
        SolverOptions(**bad)


def test_config_solver_options_reach_the_nonlinear_solve():
    config = CrossbarConfig.quantization_only(cell=CellLevels(4, "binary")).with_(
        nonideal=Nonidealities(bias_dependence=True), wires=WireParasitics(r_row=5.0, r_col=5.0))
    weights, x = np.random.default_rng(2).normal(size=(8, 4)), np.random.default_rng(3).uniform(size=(3, 8))
    converged = program_layer(weights, config, 0).mvm(x)
    with pytest.raises(RuntimeError, match="max_iter=1"):
        program_layer(weights, config.with_(solver=SolverOptions(max_iter=1)), 0).mvm(x)
    picard = program_layer(weights, config.with_(solver=SolverOptions(method="picard", damping=0.8)), 0).mvm(x)
    np.testing.assert_allclose(picard, converged, rtol=1e-7, atol=1e-9 * np.abs(converged).max())
