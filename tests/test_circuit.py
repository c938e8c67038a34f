"""Tests of imclib.circuit: nodal analysis of passive 1R crossbars, validated against ngspice.

The ngspice tests skip when ``ngspice`` is not on PATH, except when the environment variable
``CI`` is ``"true"``: there a missing ngspice fails them.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

from imclib import circuit
from imclib.circuit import (
    WireParasitics,
    ideal_column_currents,
    linear_column_currents,
    nonlinear_column_currents,
    spice_netlist,
    transfer_matrix,
)

G_MIN, G_MAX = 1 / 12e3, 1 / 6e3  # realistic MTJ cell conductances (S)
R_P, TMR0, V_H = 6e3, 1.0, 0.5  # bias-dependent MTJ: R_AP(v) = R_P (1 + TMR0 / (1 + (v/V_H)^2))


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def ngspice():
    """Path to ngspice; skip (fail when CI=true) if it is missing."""
    path = shutil.which("ngspice")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("ngspice is required in CI (CI=true) but is not on PATH")
        pytest.skip("ngspice not on PATH (install it, e.g. `apt-get install ngspice`)")
    return path


def run_ngspice(exe: str, netlist: str, m: int) -> np.ndarray:
    """Run ``ngspice -b`` on a :func:`spice_netlist` netlist; return the m column currents."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "crossbar.cir")
        with open(path, "w") as f:
            f.write(netlist)
        proc = subprocess.run([exe, "-b", path], cwd=tmp, capture_output=True, text=True, timeout=60)
    found = dict(re.findall(r"^i\(vsa(\d+)\)\s*=\s*(\S+)", proc.stdout, flags=re.MULTILINE))
    if proc.returncode != 0 or len(found) != m:
        raise AssertionError(f"ngspice failed (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return np.array([float(found[str(j)]) for j in range(m)])


def random_case(rng, k, m, batch=1, tiles=()):
    G = rng.uniform(G_MIN, G_MAX, (*tiles, k, m))
    V = rng.uniform(-0.2, 0.2, (batch, *tiles, k))
    return G, V


def mtj_conductance(antiparallel):
    """conductance_at for cells that are P (constant 1/R_P) or AP (bias-dependent)."""
    ap = np.asarray(antiparallel, dtype=bool)

    def conductance_at(v):
        g_ap = 1.0 / (R_P * (1.0 + TMR0 / (1.0 + (v / V_H) ** 2)))
        return np.where(ap, g_ap, 1.0 / R_P)

    return conductance_at


def mtj_spice_current(antiparallel):
    def expr(i, j, v):
        if antiparallel[i, j]:
            return f"{v}/({R_P!r}*(1+{TMR0!r}/(1+({v}/{V_H!r})**2)))"
        return f"{v}/{R_P!r}"

    return expr


def reference_solve(G, V, par):
    """Independent full nodal solve of one array (all resistances > 0): 2 k m unknowns.

    Unknowns: row nodes r(i, j) -> i*m + j, column nodes c(i, j) -> k*m + i*m + j.
    """
    k, m = G.shape
    n = 2 * k * m
    A = np.zeros((n, n))
    b = np.zeros(n)

    def stamp(a, c, g):
        A[a, a] += g
        if c is None:
            return
        A[c, c] += g
        A[a, c] -= g
        A[c, a] -= g

    for i in range(k):
        stamp(i * m, None, 1 / (par.r_driver + par.r_row))
        b[i * m] += V[i] / (par.r_driver + par.r_row)
        for j in range(m - 1):
            stamp(i * m + j, i * m + j + 1, 1 / par.r_row)
        for j in range(m):
            stamp(i * m + j, k * m + i * m + j, G[i, j])
    for j in range(m):
        for i in range(k - 1):
            stamp(k * m + i * m + j, k * m + (i + 1) * m + j, 1 / par.r_col)
        stamp(k * m + (k - 1) * m + j, None, 1 / (par.r_col + par.r_sense))
    x = np.linalg.solve(A, b)
    return x[k * m + (k - 1) * m : k * m + k * m] / (par.r_col + par.r_sense)


def max_rel(a, b):
    """Largest elementwise relative deviation |a - b| / |b|."""
    return float(np.max(np.abs(a - b) / np.abs(b)))


# --------------------------------------------------------------------------- parasitics


def test_wire_parasitics_defaults_and_ideal():
    assert WireParasitics().is_ideal
    assert not WireParasitics(r_sense=1.0).is_ideal
    assert not WireParasitics(r_row=0.5).is_ideal


@pytest.mark.parametrize("field", ["r_row", "r_col", "r_driver", "r_sense"])
@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf")])
def test_wire_parasitics_rejects_bad_values(field, value):
    with pytest.raises(ValueError, match=rf"{field} must be 0 or in \[1e-09, 1e\+09\] ohm"):
        WireParasitics(**{field: value})


# --------------------------------------------------------------------------- hand-computed


def test_ideal_2x2_by_hand():
    G = np.array([[1.0e-4, 2.0e-4], [5.0e-5, 1.25e-4]])
    V = np.array([[0.1, 0.2], [0.2, -0.1]])
    # I_0 = 0.1*1e-4 + 0.2*5e-5 = 2e-5,  I_1 = 0.1*2e-4 + 0.2*1.25e-4 = 4.5e-5
    # I_0 = 0.2*1e-4 - 0.1*5e-5 = 1.5e-5, I_1 = 0.2*2e-4 - 0.1*1.25e-4 = 2.75e-5
    expected = np.array([[2.0e-5, 4.5e-5], [1.5e-5, 2.75e-5]])
    np.testing.assert_allclose(ideal_column_currents(G, V), expected, rtol=1e-14)
    np.testing.assert_allclose(linear_column_currents(G, V, WireParasitics()), expected, rtol=1e-14)
    np.testing.assert_allclose(
        nonlinear_column_currents(lambda v: G, V, WireParasitics()), expected, rtol=1e-14
    )


@pytest.mark.parametrize("solver", ["dense", "sparse"])
@pytest.mark.parametrize(
    "par",
    [
        WireParasitics(r_row=2.0, r_col=3.0, r_driver=40.0, r_sense=7.0),
        WireParasitics(r_row=2.0),
        WireParasitics(r_col=3.0),
        WireParasitics(r_driver=40.0),
        WireParasitics(r_sense=7.0),
        WireParasitics(r_driver=40.0, r_sense=7.0),
    ],
)
def test_single_cell_series_resistance(par, solver):
    G = np.array([[1 / 8000.0]])
    V = np.array([[0.15], [-0.05]])
    r_total = par.r_driver + par.r_row + 8000.0 + par.r_col + par.r_sense
    expected = V / r_total
    np.testing.assert_allclose(linear_column_currents(G, V, par, solver=solver), expected, rtol=1e-13)
    np.testing.assert_allclose(transfer_matrix(G, par, solver=solver), [[1 / r_total]], rtol=1e-13)
    nl = nonlinear_column_currents(lambda v: G, V, par, solver=solver)
    np.testing.assert_allclose(nl, expected, rtol=1e-12)


# --------------------------------------------------------------------------- linear


def test_zero_wires_equal_ideal_kirchhoff():
    rng = np.random.default_rng(1)
    G, V = random_case(rng, 7, 5, batch=6, tiles=(3,))
    expected = np.array([[[sum(V[b, t, i] * G[t, i, j] for i in range(7)) for j in range(5)]
                          for t in range(3)] for b in range(6)])
    for got in (
        ideal_column_currents(G, V),
        linear_column_currents(G, V, WireParasitics()),
        np.einsum("bti,tij->btj", V, transfer_matrix(G, WireParasitics())),
    ):
        assert max_rel(got, expected) <= 1e-12
    # tiny (nonzero) resistances go through the solver and approach the ideal result
    tiny = WireParasitics(r_row=1e-9, r_col=1e-9, r_driver=1e-9, r_sense=1e-9)
    for solver in ("dense", "sparse"):
        assert max_rel(linear_column_currents(G, V, tiny, solver=solver), expected) <= 1e-9


def test_currents_decrease_with_row_resistance():
    rng = np.random.default_rng(2)
    G = rng.uniform(G_MIN, G_MAX, (8, 6))
    V = rng.uniform(0.05, 0.2, (4, 8))  # all positive inputs
    previous = ideal_column_currents(G, V)
    for r_row in (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0):
        current = linear_column_currents(G, V, WireParasitics(r_row=r_row, r_col=1.0))
        assert np.all(current > 0)
        assert np.all(current < previous)
        previous = current


def test_transfer_matrix_equals_direct_solve():
    rng = np.random.default_rng(3)
    par = WireParasitics(r_row=4.0, r_col=7.0, r_driver=30.0, r_sense=15.0)
    G, V = random_case(rng, 6, 4, batch=5)
    expected = np.array([reference_solve(G, v, par) for v in V])
    T = transfer_matrix(G, par)
    assert T.shape == (6, 4)
    assert max_rel(V @ T, expected) <= 1e-10
    for solver in ("dense", "sparse"):
        assert max_rel(linear_column_currents(G, V, par, solver=solver), expected) <= 1e-10


@pytest.mark.parametrize("r", list(itertools.product([0.0, 3.0], repeat=4)))
def test_dense_and_sparse_agree_for_all_zero_patterns(r):
    """Every combination of zero / nonzero resistances (node elimination paths)."""
    rng = np.random.default_rng(4)
    par = WireParasitics(*r)
    G, V = random_case(rng, 4, 3, batch=3, tiles=(2,))
    dense = linear_column_currents(G, V, par, solver="dense")
    sparse = linear_column_currents(G, V, par, solver="sparse")
    np.testing.assert_allclose(dense, sparse, rtol=1e-12)
    picard = nonlinear_column_currents(lambda v: G, V, par, method="picard")
    chord = nonlinear_column_currents(lambda v: G, V, par, method="chord", solver="sparse")
    np.testing.assert_allclose(picard, dense, rtol=1e-12)
    np.testing.assert_allclose(chord, dense, rtol=1e-12)


def test_batched_tiles_match_per_tile_loop(monkeypatch):
    rng = np.random.default_rng(5)
    par = WireParasitics(r_row=2.0, r_col=2.0, r_sense=10.0)
    G, V = random_case(rng, 5, 4, batch=3, tiles=(2, 3))
    I = linear_column_currents(G, V, par)
    assert I.shape == (3, 2, 3, 4)
    for a, b in itertools.product(range(2), range(3)):
        np.testing.assert_allclose(I[:, a, b], linear_column_currents(G[a, b], V[:, a, b], par), rtol=1e-13)
    # inputs broadcast over tiles
    shared = linear_column_currents(G, V[:, :1, :1], par)
    np.testing.assert_allclose(shared[:, 1, 2], linear_column_currents(G[1, 2], V[:, 0, 0], par), rtol=1e-13)
    # tiny chunks give the same result
    monkeypatch.setattr(circuit, "_CHUNK_BYTES", 1)
    np.testing.assert_allclose(linear_column_currents(G, V, par), I, rtol=1e-13)
    np.testing.assert_allclose(nonlinear_column_currents(lambda v: G, V, par), I, rtol=1e-12)


# --------------------------------------------------------------------------- ngspice


SPICE_CASES = [
    (2, 2, WireParasitics(r_row=1.0, r_col=1.0)),
    (4, 4, WireParasitics(r_row=5.0, r_col=5.0, r_driver=100.0, r_sense=50.0)),
    (8, 8, WireParasitics(r_row=10.0, r_col=10.0)),
    (5, 3, WireParasitics(r_row=2.0, r_col=7.0, r_sense=30.0)),
    (16, 8, WireParasitics(r_row=3.0, r_col=3.0, r_driver=20.0)),
    (3, 4, WireParasitics(r_driver=25.0, r_sense=40.0)),  # merged rows and columns
    (3, 4, WireParasitics(r_row=2.0, r_sense=40.0)),  # distributed rows, merged columns
    (3, 4, WireParasitics(r_col=2.0)),  # pinned rows, distributed columns
]


@pytest.mark.parametrize("k,m,par", SPICE_CASES)
def test_linear_matches_ngspice(ngspice, k, m, par):
    rng = np.random.default_rng(10 * k + m)
    G, V = random_case(rng, k, m, batch=2)
    ours = {s: linear_column_currents(G, V, par, solver=s) for s in ("dense", "sparse")}
    for b in range(2):
        spice = run_ngspice(ngspice, spice_netlist(G, V[b], par), m)
        for solver, I in ours.items():
            assert max_rel(I[b], spice) <= 1e-6, (solver, I[b], spice)


@pytest.mark.parametrize("k,m,par", [
    (4, 4, WireParasitics(r_row=5.0, r_col=5.0, r_driver=200.0, r_sense=100.0)),
    (8, 8, WireParasitics(r_row=10.0, r_col=10.0, r_driver=50.0)),
])
def test_nonlinear_mtj_matches_ngspice(ngspice, k, m, par):
    rng = np.random.default_rng(7 * k)
    antiparallel = rng.random((k, m)) < 0.5
    V = rng.uniform(-0.2, 0.2, (2, k))
    conductance_at = mtj_conductance(antiparallel)
    for method in ("picard", "chord"):
        I = nonlinear_column_currents(conductance_at, V, par, method=method)
        for b in range(2):
            netlist = spice_netlist(np.ones((k, m)), V[b], par, cell_current=mtj_spice_current(antiparallel))
            spice = run_ngspice(ngspice, netlist, m)
            assert max_rel(I[b], spice) <= 1e-6, (method, I[b], spice)
    # the bias dependence matters at this accuracy: the zero-bias linear solve is off
    G0 = conductance_at(np.zeros((k, m)))
    assert max_rel(linear_column_currents(G0, V, par), I) > 1e-3


# --------------------------------------------------------------------------- nonlinear


@pytest.mark.parametrize("method", ["picard", "chord"])
@pytest.mark.parametrize("solver", ["dense", "sparse"])
def test_nonlinear_with_constant_conductance_equals_linear(method, solver):
    rng = np.random.default_rng(8)
    par = WireParasitics(r_row=3.0, r_col=5.0, r_driver=10.0, r_sense=20.0)
    G, V = random_case(rng, 6, 5, batch=4, tiles=(2,))
    expected = linear_column_currents(G, V, par)
    got = nonlinear_column_currents(lambda v: G, V, par, method=method, solver=solver)
    assert max_rel(got, expected) <= 1e-10


def kcl_residual(v, G, V, par, I):
    """Network-equation residual of a solution given by its cell voltages v (k, m).

    From the cell currents i = G v, KCL fixes the current in every wire segment (a row
    segment carries the currents of all cells beyond it, a column segment those of all
    cells above it); Ohm's law then gives the row and column node voltages. The returned
    residual is the largest current mismatch G |v_r - v_c - v|, relative to the largest
    cell current, together with the mismatch of the column currents.
    """
    i_cell = G * v
    beyond = np.cumsum(i_cell[:, ::-1], axis=1)[:, ::-1]  # current entering row node (i, j)
    v_row = V[:, None] - par.r_driver * beyond[:, :1] - par.r_row * np.cumsum(beyond, axis=1)
    above = np.cumsum(i_cell, axis=0)  # current leaving column node (i, j) downwards
    v_col = par.r_sense * above[-1:] + par.r_col * np.cumsum(above[::-1], axis=0)[::-1]
    scale = np.abs(i_cell).max()
    node = np.abs(G * (v_row - v_col - v)).max() / scale
    column = np.abs(above[-1] - I).max() / np.abs(I).max()
    return node, column


@pytest.mark.parametrize("method", ["picard", "chord"])
def test_nonlinear_mtj_satisfies_kcl(method):
    rng = np.random.default_rng(9)
    k, m = 8, 6
    par = WireParasitics(r_row=5.0, r_col=8.0, r_driver=300.0, r_sense=150.0)
    antiparallel = rng.random((k, m)) < 0.5
    conductance_at = mtj_conductance(antiparallel)
    V = rng.uniform(-0.2, 0.2, (3, k))
    I, v = nonlinear_column_currents(conductance_at, V, par, method=method, return_cell_voltages=True)
    assert I.shape == (3, m) and v.shape == (3, k, m)
    for b in range(3):
        node, column = kcl_residual(v[b], conductance_at(v[b]), V[b], par, I[b])
        assert node <= 1e-9
        assert column <= 1e-9
        # the linear network with the converged conductances reproduces the currents
        G_conv = conductance_at(v[b])
        np.testing.assert_allclose(linear_column_currents(G_conv, V[b : b + 1], par)[0], I[b], rtol=1e-9)
    # damping converges to the same solution
    damped = nonlinear_column_currents(conductance_at, V, par, method=method, damping=0.6)
    np.testing.assert_allclose(damped, I, rtol=1e-9)


def test_nonlinear_ideal_fast_path():
    rng = np.random.default_rng(11)
    antiparallel = rng.random((2, 5, 4)) < 0.5
    conductance_at = mtj_conductance(antiparallel)
    V = rng.uniform(-0.2, 0.2, (3, 2, 5))
    calls = []

    def counted(v):
        calls.append(v.shape)
        return conductance_at(v)

    I = nonlinear_column_currents(counted, V, WireParasitics(), n_cols=4)
    assert calls == [(3, 2, 5, 4)]  # no probe, one evaluation, no iteration
    G = conductance_at(np.broadcast_to(V[..., None], (3, 2, 5, 4)))
    expected = np.einsum("bti,btij->btj", V, G)
    assert max_rel(I, expected) <= 1e-13


@pytest.mark.parametrize("method", ["picard", "chord"])
def test_nonlinear_strong_nonlinearity_raises(method):
    par = WireParasitics(r_row=50.0, r_col=50.0, r_driver=1e3, r_sense=1e3)
    V = np.full((2, 4), 0.2)

    def absurd(v):
        return 1e-4 * np.exp(np.minimum(60.0 * np.abs(v), 300.0))

    with pytest.raises(RuntimeError, match=r"did not converge in max_iter=2 iterations.*tol=1e-10"):
        nonlinear_column_currents(absurd, V, par, max_iter=2, n_cols=4, method=method)


def test_nonlinear_divergence_raises():
    par = WireParasitics(r_row=50.0, r_col=50.0, r_driver=1e3, r_sense=1e3)
    V = np.full((2, 4), 0.2)

    def absurd(v):
        with np.errstate(over="ignore"):
            return 1e-4 * np.exp(60.0 * np.abs(v))

    with pytest.raises(RuntimeError, match=r"diverged at iteration \d+ of max_iter=100"):
        nonlinear_column_currents(absurd, V, par, n_cols=4, method="chord")


# --------------------------------------------------------------------------- bad inputs


def test_bad_conductance_rejected():
    V = np.zeros((1, 2))
    par = WireParasitics(r_row=1.0)
    with pytest.raises(ValueError, match=r"^G must be >= 0"):
        linear_column_currents(np.array([[1e-4, -1e-5], [1e-4, 1e-4]]), V, par)
    with pytest.raises(ValueError, match=r"^G must contain only finite"):
        transfer_matrix(np.array([[1e-4, np.nan], [1e-4, 1e-4]]), par)
    with pytest.raises(ValueError, match=r"^G must contain only finite"):
        ideal_column_currents(np.array([[1e-4, np.inf], [1e-4, 1e-4]]), V)
    with pytest.raises(ValueError, match=r"^G must have shape"):
        transfer_matrix(np.ones(3), par)


def test_bad_voltages_rejected():
    G = np.full((3, 2), 1e-4)
    par = WireParasitics(r_col=1.0)
    with pytest.raises(ValueError, match=r"^V must have shape \(batch, 3\)"):
        linear_column_currents(G, np.zeros((4, 2)), par)
    with pytest.raises(ValueError, match=r"^V must have shape"):
        linear_column_currents(G, np.zeros(3), par)  # missing batch axis
    with pytest.raises(ValueError, match=r"^V must have shape \(batch, 2, 3\)"):
        linear_column_currents(np.stack([G, G]), np.zeros((1, 4, 3)), par)  # tile mismatch
    with pytest.raises(ValueError, match=r"^V must contain only finite"):
        linear_column_currents(G, np.array([[0.1, np.nan, 0.0]]), par)
    with pytest.raises(ValueError, match=r"^V must contain only finite"):
        nonlinear_column_currents(lambda v: G, np.array([[0.1, np.inf, 0.0]]), par)


def test_bad_options_rejected():
    G = np.full((2, 2), 1e-4)
    V = np.zeros((1, 2))
    par = WireParasitics(r_row=1.0)
    with pytest.raises(ValueError, match="^parasitics"):
        linear_column_currents(G, V, 1.0)
    with pytest.raises(ValueError, match="^solver"):
        transfer_matrix(G, par, solver="cholesky")
    with pytest.raises(ValueError, match="^tol"):
        nonlinear_column_currents(lambda v: G, V, par, tol=0.0)
    with pytest.raises(ValueError, match="^max_iter"):
        nonlinear_column_currents(lambda v: G, V, par, max_iter=0)
    with pytest.raises(ValueError, match="^damping"):
        nonlinear_column_currents(lambda v: G, V, par, damping=1.5)
    with pytest.raises(ValueError, match="^method"):
        nonlinear_column_currents(lambda v: G, V, par, method="newton")
    with pytest.raises(ValueError, match="^conductance_at"):
        nonlinear_column_currents(lambda v: -G, V, par)
    with pytest.raises(ValueError, match="^conductance_at"):
        nonlinear_column_currents(lambda v: np.ones((3, 3)), V, par, n_cols=2)
    with pytest.raises(ValueError, match="^conductance_at"):
        nonlinear_column_currents(G, V, par)
