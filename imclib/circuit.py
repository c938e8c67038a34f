"""Nodal analysis of passive 1R crossbar arrays with wire parasitics, batched.

Geometry
--------
A ``k x m`` array has ``k`` row wires (index ``i``, top to bottom) and ``m`` column wires
(index ``j``, left to right). At every crossing ``(i, j)`` one cell of conductance
``G[i, j]`` (siemens) connects the *row node* ``r(i, j)`` to the *column node* ``c(i, j)``::

              col 0             col 1                   col m-1
    V_0 -Rd-Rr- r(0,0) ---Rr--- r(0,1) ---Rr--- ... --- r(0,m-1)        (open end)
                  |G00             |G01                    |
                c(0,0)           c(0,1)                 c(0,m-1)
                  Rc               Rc                      Rc
    V_1 -Rd-Rr- r(1,0) ---Rr--- r(1,1) --- ...             |
                  |G10             |                       |
                c(1,0)           c(1,1)                    |
                  Rc               Rc                      Rc
                 ...              ...                     ...
                c(k-1,0)         c(k-1,1)               c(k-1,m-1)
                  Rc               Rc                      Rc
                  Rs               Rs                      Rs
                 SA_0 (0 V)       SA_1 (0 V)              SA_{m-1} (0 V)

* Row ``i`` is driven at its **left** end (before column 0) by an ideal source ``V_i``
  through the driver resistance ``Rd = r_driver`` and one row segment ``Rr = r_row``;
  consecutive row nodes ``r(i, j)``, ``r(i, j+1)`` are joined by ``r_row``; the right end
  (after column ``m-1``) is open.
* Column ``j`` runs from row 0 (top, open end) to row ``k-1``; consecutive column nodes
  ``c(i, j)``, ``c(i+1, j)`` are joined by ``Rc = r_col``; after the **last row**
  (``i = k-1``) one more segment ``r_col`` and the sense resistance ``Rs = r_sense`` lead to
  the sense amplifier ``SA_j``, which holds its input at virtual ground (0 V).
* The output ``I_j`` is the current flowing into ``SA_j`` (amperes). It is positive when
  current flows from the rows into the amplifier (e.g. all ``V_i > 0``).

The source path ``Rd + Rr`` and the sink path ``Rc + Rs`` are series connections and are
lumped into ``g_in = 1 / (r_driver + r_row)`` and ``g_out = 1 / (r_col + r_sense)``.

Equations
---------
Kirchhoff's current law at every unknown node (currents leaving the node sum to zero):

* row node ``r(i, j)``:
  ``g_in [j=0] (v_r(i,0) - V_i) + g_r (2 v_r(i,j) - v_r(i,j-1) - v_r(i,j+1))
  + G_ij (v_r(i,j) - v_c(i,j)) = 0`` (wire terms only for existing neighbours,
  ``g_r = 1 / r_row``),
* column node ``c(i, j)``:
  ``g_c (2 v_c(i,j) - v_c(i-1,j) - v_c(i+1,j)) + g_out [i=k-1] v_c(k-1,j)
  + G_ij (v_c(i,j) - v_r(i,j)) = 0`` (``g_c = 1 / r_col``).

In matrix form ``A x = B V`` with ``x = (v_r, v_c)`` (``2 k m`` unknowns),

``A = [[L_r + D_in + diag(G),  -diag(G)], [-diag(G),  L_c + D_out + diag(G)]]``,

where ``L_r`` (``L_c``) is the graph Laplacian of the row (column) wire chains, ``D_in``
(``D_out``) puts ``g_in`` (``g_out``) on the first row nodes (last column nodes) and
``B[r(i, 0), i] = g_in``. ``A`` is symmetric positive definite (a grounded weighted
Laplacian). The column current is the sum of the cell currents of the column (the column
wire has no other exit): ``I_j = sum_i G_ij (v_r(i,j) - v_c(i,j))``.

Zero resistances are handled exactly, by eliminating nodes rather than by large
conductances: ``r_row = 0`` merges the row nodes of a row into one node (driven through
``r_driver``), and with ``r_driver = 0`` as well the row is a known potential ``V_i``;
likewise ``r_col = 0`` merges a column and ``r_col = r_sense = 0`` pins it at 0 V. With all
four resistances zero, ``I_j = sum_i V_i G_ij`` exactly.

Solvers
-------
Because the network is linear, each programmed array has a transfer matrix ``T`` (``k x m``,
siemens) with ``I = V @ T``; :func:`transfer_matrix` computes it with ``k`` right-hand sides,
by a batched Gaussian elimination over the structural nonzeros (compiled, vectorized across
arrays) for up to :data:`DENSE_MAX_UNKNOWNS` unknowns and by a sparse LU
(``scipy.sparse.linalg.splu``) per array above. :func:`linear_column_currents` solves a
batch smaller than ``k`` directly (one right-hand side per input) and uses ``T`` otherwise. Cells whose conductance
depends on their own voltage are solved by :func:`nonlinear_column_currents` (fixed-point
iteration: the chord method with one factorization per array, or Picard re-solves).
:func:`spice_netlist` writes the same network as an ngspice netlist, for validation.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable

import numba
import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from . import _validate
from ._blas import one_blas_thread

__all__ = [
    "DENSE_MAX_UNKNOWNS",
    "SolverOptions",
    "WireParasitics",
    "ideal_column_currents",
    "linear_column_currents",
    "nonlinear_column_currents",
    "spice_netlist",
    "transfer_matrix",
]

#: Largest number of unknown node voltages solved by batched dense LU; larger arrays use a
#: sparse LU per array. 2 k m unknowns with wire resistance on both sides (8 x 8: 128,
#: 16 x 16: 512). Measured crossover (single-threaded BLAS): 8 x 8 dense 0.13 ms vs sparse
#: 0.16 ms per array, 12 x 12 dense 1.1 ms vs sparse 0.3 ms.
DENSE_MAX_UNKNOWNS = 200

# Memory budget (bytes) for the batched dense work arrays of one chunk.
_CHUNK_BYTES = 64 * 2**20
# Work per chunk of the batched dense transfer-matrix solve, sized to stay in cache: 2 MiB
# chunks were 25 % (4 x 4 arrays) and 12 % (8 x 8) faster than 64 MiB ones.
_CACHE_BYTES = 2 * 2**20

_SOLVERS = ("auto", "dense", "sparse")
_NL_METHODS = ("auto", "picard", "chord")
WIRE_RANGE_OHM = (1e-9, 1e9)
"""Accepted non-zero wire resistances (ohms): a smaller one makes the nodal system singular in float64."""
CONDUCTANCE_TIMES_WIRE_MAX = 1e6
"""Largest accepted ``max G * max r`` (cell conductance in siemens times the largest wire,
driver or sense resistance in ohms). Eliminating a cell of conductance ``G`` behind a wire
of conductance ``1/r`` cancels ``G`` against itself and leaves pivots of order ``1/r``, so
the solve keeps a relative precision of about ``1e-16 G r``: 4e-10 at ``G r = 1e6`` (4 x 4
arrays, against a pivoted sparse LU), 2e-4 at 1e12, and a zero pivot beyond about 1e16."""


@dataclass(frozen=True)
class WireParasitics:
    """Series resistances of the crossbar wiring (ohms), see the module docstring.

    Parameters
    ----------
    r_row : float
        Row wire resistance per segment: between adjacent cells of a row and between the
        driver and the first cell. In [0, inf).
    r_col : float
        Column wire resistance per segment: between adjacent cells of a column and between
        the last cell (row ``k-1``) and the sense amplifier. In [0, inf).
    r_driver : float
        Output resistance of each row driver; 0 is an ideal voltage source. In [0, inf).
    r_sense : float
        Input resistance of each sense amplifier (in series with its virtual ground);
        0 is an ideal virtual ground. In [0, inf).
    """

    r_row: float = 0.0
    r_col: float = 0.0
    r_driver: float = 0.0
    r_sense: float = 0.0

    def __post_init__(self):
        for name in ("r_row", "r_col", "r_driver", "r_sense"):
            _validate.zero_or_in_range(name, getattr(self, name), *WIRE_RANGE_OHM, "ohm")

    @property
    def is_ideal(self) -> bool:
        """Whether all four resistances are zero (then ``I = V @ G`` exactly)."""
        return self.r_row == 0 and self.r_col == 0 and self.r_driver == 0 and self.r_sense == 0


@dataclass(frozen=True)
class SolverOptions:
    """How the nonlinear nodal equations are iterated (:func:`nonlinear_column_currents`);
    carried by ``CrossbarConfig.solver``, so that a failed solve's advice ("increase
    max_iter, lower damping or use method='picard'") can be followed from the config.

    Parameters
    ----------
    method : {'auto', 'picard', 'chord'}
        Fixed-point map; ``'auto'`` is ``'chord'``.
    damping : float
        Relaxation factor in (0, 1].
    max_iter : int
        Maximum number of iterations, >= 1.
    tol : float
        Relative tolerance on the column currents, in (0, 1).
    """

    method: str = "auto"
    damping: float = 1.0
    max_iter: int = 100
    tol: float = 1e-10

    def __post_init__(self):
        _validate.choice("method", self.method, _NL_METHODS)
        _validate.positive("damping", self.damping)
        if self.damping > 1:
            raise ValueError(f"damping must be in (0, 1], got {self.damping!r}")
        _validate.integer_at_least("max_iter", self.max_iter, 1)
        _validate.positive("tol", self.tol)
        if self.tol >= 1:
            raise ValueError(f"tol must be in (0, 1), got {self.tol!r}")

    @property
    def keywords(self) -> dict:
        """The options as keyword arguments of :func:`nonlinear_column_currents`."""
        return {"method": self.method, "damping": self.damping, "max_iter": self.max_iter, "tol": self.tol}


# --------------------------------------------------------------------------- validation


def _check_parasitics(parasitics) -> WireParasitics:
    if not isinstance(parasitics, WireParasitics):
        raise ValueError(f"parasitics must be a WireParasitics, got {type(parasitics).__name__}")
    return parasitics


def _check_conductance(G, name: str = "G") -> np.ndarray:
    G = np.asarray(G, dtype=np.float64)
    if G.ndim < 2 or G.shape[-1] < 1 or G.shape[-2] < 1:
        raise ValueError(f"{name} must have shape (..., k, m) with k, m >= 1, got shape {G.shape}")
    if not np.all(np.isfinite(G)):
        raise ValueError(f"{name} must contain only finite conductances (no NaN or inf)")
    if np.any(G < 0):
        raise ValueError(f"{name} must be >= 0 siemens everywhere, got min {G.min()!r}")
    return G


def _largest_wire(par: WireParasitics) -> float:
    """The largest of the four resistances (ohms)."""
    return max(par.r_row, par.r_col, par.r_driver, par.r_sense)


def _solvable(G: np.ndarray, par: WireParasitics) -> bool:
    """Whether ``max G * max r`` is within :data:`CONDUCTANCE_TIMES_WIRE_MAX`."""
    return float(np.max(G, initial=0.0)) * _largest_wire(par) <= CONDUCTANCE_TIMES_WIRE_MAX


def _check_solvable(G: np.ndarray, par: WireParasitics, name: str = "G") -> None:
    """Refuse conductances too large for the wires: ``max G * max r`` above
    :data:`CONDUCTANCE_TIMES_WIRE_MAX` (the nodal solve would lose every digit)."""
    if not _solvable(G, par):
        r_max, g_max = _largest_wire(par), float(np.max(G))
        raise ValueError(
            f"{name} (max {g_max:.3g} S) times the largest wire resistance ({r_max:.3g} ohm) must be <= "
            f"{CONDUCTANCE_TIMES_WIRE_MAX:g}, got {g_max * r_max:.3g}: the cell conductances must stay below "
            f"{CONDUCTANCE_TIMES_WIRE_MAX / r_max:.3g} S with these wires, or the nodal solve loses its precision"
        )


def _check_voltages(V, k: int, tile_shape: tuple[int, ...]) -> np.ndarray:
    V = np.asarray(V, dtype=np.float64)
    expected = "(batch, " + "".join(f"{t}, " for t in tile_shape) + f"{k})"
    if V.ndim != len(tile_shape) + 2 or V.shape[-1] != k:
        raise ValueError(f"V must have shape {expected} (batch, *tile_shape, k), got shape {V.shape}")
    try:
        np.broadcast_shapes(V.shape[1:-1], tile_shape)
    except ValueError:
        raise ValueError(
            f"V must have shape {expected} (batch, *tile_shape, k), got shape {V.shape}"
        ) from None
    if not np.all(np.isfinite(V)):
        raise ValueError("V must contain only finite voltages (no NaN or inf)")
    return V


# --------------------------------------------------------------------------- ideal


def ideal_column_currents(G, V) -> np.ndarray:
    """Ideal Kirchhoff column currents ``I_j = sum_i V_i G_ij`` (no wire resistance).

    Parameters
    ----------
    G : array_like, shape (..., k, m)
        Cell conductances (siemens), finite and >= 0; leading dims index tiles.
    V : array_like, shape (batch, ..., k)
        Row input voltages (volts); the tile dims broadcast against those of ``G``.

    Returns
    -------
    numpy.ndarray, shape (batch, ..., m)
        Column currents (amperes).
    """
    G = _check_conductance(G)
    V = _check_voltages(V, G.shape[-2], G.shape[:-2])
    return np.matmul(V[..., None, :], G)[..., 0, :]


# --------------------------------------------------------------------------- topology


class _Topology:
    """Node numbering and the constant (wire) part of the nodal equations of one array."""

    def __init__(self, k: int, m: int, par: WireParasitics):
        self.k, self.m = k, m
        ii, jj = np.meshgrid(np.arange(k), np.arange(m), indexing="ij")
        self.cell_row = ii.ravel()
        # Row side: 'dist' (one node per cell), 'merged' (one node per row), 'fixed' (= V_i).
        if par.r_row > 0:
            self.row_mode, n_r, R = "dist", k * m, ii * m + jj
        elif par.r_driver > 0:
            self.row_mode, n_r, R = "merged", k, ii.copy()
        else:
            self.row_mode, n_r, R = "fixed", 0, np.full((k, m), -1)
        if par.r_col > 0:
            self.col_mode, n_c, C = "dist", k * m, n_r + ii * m + jj
        elif par.r_sense > 0:
            self.col_mode, n_c, C = "merged", m, n_r + jj
        else:
            self.col_mode, n_c, C = "fixed", 0, np.full((k, m), -1)
        self.n_r, self.n_c, self.n = n_r, n_c, n_r + n_c
        self.R, self.C = R.ravel(), C.ravel()
        self.row_var = self.row_mode != "fixed"
        self.col_var = self.col_mode != "fixed"

        rows, cols, vals = [], [], []

        def couple(a, b, g):
            a, b = a.ravel(), b.ravel()
            rows.extend([a, b, a, b])
            cols.extend([a, b, b, a])
            vals.extend([np.full(a.size, g)] * 2 + [np.full(a.size, -g)] * 2)

        def ground(a, g):
            a = np.asarray(a).ravel()
            rows.append(a)
            cols.append(a)
            vals.append(np.full(a.size, g))

        # B: g_in from each source V_i into its first row node (sparse: k entries)
        self.b_rows, self.b_vals = np.zeros(0, dtype=np.intp), np.zeros(0)
        if self.row_var:
            g_in = 1.0 / (par.r_driver + par.r_row)
            first = R[:, 0]
            ground(first, g_in)
            self.b_rows, self.b_vals = first.ravel(), np.full(k, g_in)
            if self.row_mode == "dist" and m > 1:
                couple(R[:, :-1], R[:, 1:], 1.0 / par.r_row)
        if self.col_var:
            g_out = 1.0 / (par.r_col + par.r_sense)
            ground(C[-1, :], g_out)
            if self.col_mode == "dist" and k > 1:
                couple(C[:-1, :], C[1:, :], 1.0 / par.r_col)
        if rows:
            self.w_rows = np.concatenate(rows)
            self.w_cols = np.concatenate(cols)
            self.w_vals = np.concatenate(vals)
        else:
            self.w_rows = self.w_cols = np.zeros(0, dtype=np.intp)
            self.w_vals = np.zeros(0)

        # Cell stamps: diagonal (with duplicates for merged nodes) and off-diagonal (unique).
        km = k * m
        cells = np.arange(km)
        d_rows, d_cells = [], []
        if self.row_var:
            d_rows.append(self.R)
            d_cells.append(cells)
        if self.col_var:
            d_rows.append(self.C)
            d_cells.append(cells)
        self.d_rows = np.concatenate(d_rows)
        self.d_cells = np.concatenate(d_cells)

    # ----------------------------------------------------------------- dense assembly

    def wire_dense(self) -> np.ndarray:
        A = np.zeros((self.n, self.n))
        np.add.at(A, (self.w_rows, self.w_cols), self.w_vals)
        return A

    def scatter_diag(self) -> np.ndarray:
        """(km, n) 0/1 matrix: ``g @ S`` is the cells' contribution to the diagonal."""
        S = np.zeros((self.k * self.m, self.n))
        np.add.at(S, (self.d_cells, self.d_rows), 1.0)
        return S

    def assemble_dense(self, g: np.ndarray, A_wire=None, S=None) -> np.ndarray:
        """Nodal matrices ``A`` (P, n, n) for flattened conductances ``g`` (P, k*m)."""
        n = self.n
        A_wire = self.wire_dense() if A_wire is None else A_wire
        S = self.scatter_diag() if S is None else S
        P = g.shape[0]
        A = np.empty((P, n, n))
        A[:] = A_wire
        A.reshape(P, n * n)[:, :: n + 1] += g @ S
        if self.row_var and self.col_var:
            A[:, self.R, self.C] -= g
            A[:, self.C, self.R] -= g
        return A

    @functools.cached_property
    def B_wire(self) -> np.ndarray:
        """The wire part of ``B`` as a dense (n, k) matrix (dense path: small n)."""
        B = np.zeros((self.n, self.k))
        B[self.b_rows, np.arange(self.b_rows.size)] = self.b_vals
        return B

    def rhs_matrix_dense(self, g: np.ndarray) -> np.ndarray:
        """``B`` (P, n, k) such that the right-hand side is ``B @ V``."""
        P = g.shape[0]
        B = np.empty((P, self.n, self.k))
        B[:] = self.B_wire
        if not self.row_var:  # row nodes pinned at V_i: G_ij V_i enters the column node
            B[:, self.C, self.cell_row] += g
        return B

    def cell_voltages(self, x: np.ndarray, V: np.ndarray) -> np.ndarray:
        """Cell voltages (..., k*m, r) from node voltages x (..., n, r) and inputs V (..., k, r)."""
        if self.row_var:
            v = x[..., self.R, :]
        else:
            v = V[..., self.cell_row, :]
        if self.col_var:
            v = v - x[..., self.C, :]
        return v

    @functools.cached_property
    def elimination(self) -> tuple[np.ndarray, np.ndarray]:
        """Fill pattern of ``A`` for :func:`_eliminate` (:func:`_fill_pattern`)."""
        pattern = self.wire_dense() != 0
        pattern[np.diag_indices(self.n)] = True
        if self.row_var and self.col_var:
            pattern[self.R, self.C] = pattern[self.C, self.R] = True
        return _fill_pattern(pattern)

    def solve_dense_last(self, g: np.ndarray, rhs: np.ndarray) -> np.ndarray:
        """Solve ``A(g) X = rhs`` for P arrays, ``g`` (P, k*m), ``rhs`` (n, r, P) with the
        batch last (overwritten and returned as ``X``)."""
        A = np.empty((self.n, self.n, g.shape[0]))
        A[:] = self.wire_dense()[:, :, None]
        diagonal = np.arange(self.n)
        A[diagonal, diagonal] += (g @ self.scatter_diag()).T
        if self.row_var and self.col_var:
            A[self.R, self.C] -= g.T
            A[self.C, self.R] -= g.T
        _eliminate(A, rhs, *self.elimination)
        return rhs

    def rhs_dense_last(self, g: np.ndarray) -> np.ndarray:
        """``B`` (n, k, P) with the batch last (the right-hand side is ``B V``)."""
        B = np.empty((self.n, self.k, g.shape[0]))
        B[:] = self.B_wire[:, :, None]
        if not self.row_var:
            B[self.C, self.cell_row] += g.T
        return B

    # ----------------------------------------------------------------- sparse assembly

    def assemble_sparse(self, g: np.ndarray) -> sp.csc_matrix:
        """Sparse nodal matrix for one array, ``g`` shape (k*m,)."""
        rows = [self.w_rows, self.d_rows]
        cols = [self.w_cols, self.d_rows]
        vals = [self.w_vals, g[self.d_cells]]
        if self.row_var and self.col_var:
            rows += [self.R, self.C]
            cols += [self.C, self.R]
            vals += [-g, -g]
        A = sp.coo_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(self.n, self.n),
        )
        return A.tocsc()

    def rhs_matrix_sparse(self, g: np.ndarray) -> sp.csr_matrix:
        """``B`` (n, k) of one array, sparse (``g`` shape (k*m,))."""
        if self.row_var:
            rows, cols, vals = self.b_rows, np.arange(self.k), self.b_vals
        else:  # row nodes pinned at V_i: G_ij V_i enters the column node
            rows, cols, vals = self.C, self.cell_row, g
        return sp.csr_matrix((vals, (rows, cols)), shape=(self.n, self.k))


def _use_dense(n: int, solver: str) -> bool:
    _validate.choice("solver", solver, _SOLVERS)
    if solver == "auto":
        return n <= DENSE_MAX_UNKNOWNS
    return solver == "dense"


def _splu(A):
    return spla.splu(A, permc_spec="MMD_AT_PLUS_A")


def _elimination_chunk(n: int, r: int) -> int:
    """Arrays per chunk of :func:`_eliminate`, so that their matrices stay in cache
    (:data:`_CACHE_BYTES`). 4 x 4 arrays (227 per chunk): 12,544 transfer matrices in 0.09 s,
    against 0.52 s with LAPACK's batched solve (paired, loaded machine); 8 x 8: 0.47 vs 1.8 s."""
    return max(1, _CACHE_BYTES // (8 * n * (n + r)))


def _fill_pattern(pattern: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symbolic Gaussian elimination of a symmetric sparsity pattern (n, n).

    Returns ``starts`` (n + 1,) and ``below``: the rows ``i > p`` with a nonzero in
    column ``p`` after the fill of the pivots before ``p`` are ``below[starts[p]:starts[p+1]]``
    (by symmetry also the columns ``j > p`` of row ``p``).
    """
    nonzero = pattern.copy()
    starts, below = [0], []
    for pivot in range(nonzero.shape[0]):
        rows = np.flatnonzero(nonzero[pivot + 1 :, pivot]) + pivot + 1
        nonzero[np.ix_(rows, rows)] = True
        below.extend(rows)
        starts.append(len(below))
    return np.asarray(starts, dtype=np.intp), np.asarray(below, dtype=np.intp)


@numba.njit(nogil=True, cache=True)
def _eliminate(A, B, starts, below):  # pragma: no cover - compiled
    """Solve ``A X = B`` in place (``B`` <- ``X``) for a batch on the LAST axis, A (n, n, P),
    B (n, r, P): Gaussian elimination without pivoting (A symmetric positive definite and
    diagonally dominant) over the structural nonzeros only, vectorized over the batch."""
    n, _, P = A.shape
    r = B.shape[1]
    multiplier = np.empty(P)
    for p in range(n):
        for a in range(starts[p], starts[p + 1]):
            i = below[a]
            for t in range(P):
                multiplier[t] = A[i, p, t] / A[p, p, t]
            for b in range(starts[p], starts[p + 1]):
                j = below[b]
                for t in range(P):
                    A[i, j, t] -= multiplier[t] * A[p, j, t]
            for c in range(r):
                for t in range(P):
                    B[i, c, t] -= multiplier[t] * B[p, c, t]
    for p in range(n - 1, -1, -1):
        for c in range(r):
            for b in range(starts[p], starts[p + 1]):
                j = below[b]
                for t in range(P):
                    B[p, c, t] -= A[p, j, t] * B[j, c, t]
            for t in range(P):
                B[p, c, t] /= A[p, p, t]


# --------------------------------------------------------------------------- linear


@one_blas_thread  # 3136 transfer matrices of 8 x 8 arrays: 5.9 s with 2 threads, 0.56 s with 1
def transfer_matrix(G, parasitics: WireParasitics, *, solver: str = "auto") -> np.ndarray:
    """Transfer matrix ``T`` of each programmed array: column currents ``I = V @ T``.

    ``T[..., l, j]`` is the current into sense amplifier ``j`` per volt applied to row ``l``
    (siemens). It is obtained by assembling the nodal conductance matrix ``A`` of each array
    once (see the module docstring for ``A x = B V``) and solving ``A X = B`` for the ``k``
    unit inputs at once; then ``T[l, j] = sum_i G_ij (v_r(i,j) - v_c(i,j))[input l]``.
    With ideal parasitics ``T = G``.

    Parameters
    ----------
    G : array_like, shape (..., k, m)
        Cell conductances (siemens), finite and >= 0; leading dims index tiles.
    parasitics : WireParasitics
        Wire, driver and sense resistances (ohms).
    solver : {'auto', 'dense', 'sparse'}
        ``'dense'``: Gaussian elimination over the structural nonzeros of ``A`` (symmetric
        positive definite, no pivoting), compiled and vectorized across the tiles, in
        cache-sized chunks; ``'sparse'``: ``scipy.sparse.linalg.splu`` per tile; ``'auto'``:
        dense when the number of unknowns ``n`` is <= :data:`DENSE_MAX_UNKNOWNS`.

    Returns
    -------
    numpy.ndarray, shape (..., k, m)
        Transfer matrices (siemens).
    """
    G = _check_conductance(G)
    par = _check_parasitics(parasitics)
    if par.is_ideal:
        return G.copy()
    _check_solvable(G, par)
    k, m = G.shape[-2:]
    tiles = G.shape[:-2]
    topo = _Topology(k, m, par)
    g = G.reshape(-1, k * m)
    P = g.shape[0]
    T = np.empty((P, k, m))
    if _use_dense(topo.n, solver):
        chunk = _elimination_chunk(topo.n, k)
        for s in range(0, P, chunk):
            gs = g[s : s + chunk]
            X = topo.solve_dense_last(gs, topo.rhs_dense_last(gs))  # (n, k, p)
            eye = np.broadcast_to(np.eye(k)[:, :, None], (k, k, gs.shape[0]))
            v = topo.cell_voltages(X.transpose(2, 0, 1), eye.transpose(2, 0, 1))  # (p, km, k) per unit input
            T[s : s + chunk] = np.einsum("pijl,pij->plj", v.reshape(-1, k, m, k), gs.reshape(-1, k, m))
    else:
        eye = np.eye(k)
        for p in range(P):
            lu = _splu(topo.assemble_sparse(g[p]))
            X = lu.solve(topo.rhs_matrix_sparse(g[p]).toarray())
            v = topo.cell_voltages(X, eye)
            T[p] = np.einsum("ijl,ij->lj", v.reshape(k, m, k), g[p].reshape(k, m))
    return T.reshape(*tiles, k, m)


def linear_column_currents(G, V, parasitics: WireParasitics, *, solver: str = "auto") -> np.ndarray:
    """Exact column currents of a linear crossbar with wire parasitics.

    Solves KCL at every node (see the module docstring), ``A x = B V``, and sums the cell
    currents ``I_j = sum_i G_ij (v_r(i,j) - v_c(i,j))``. A batch of at least ``k`` inputs
    goes through the transfer matrix, ``I = V @ T`` with ``T = transfer_matrix(G, ...)``
    (``k`` right-hand sides per array, then one matmul); a smaller batch is solved
    directly, with one right-hand side per input. Ideal parasitics give
    ``I_j = sum_i V_i G_ij`` exactly.

    Parameters
    ----------
    G : array_like, shape (..., k, m)
        Cell conductances (siemens), finite and >= 0; leading dims index tiles.
    V : array_like, shape (batch, ..., k)
        Row input voltages (volts); tile dims broadcast against those of ``G``.
    parasitics : WireParasitics
        Wire, driver and sense resistances (ohms).
    solver : {'auto', 'dense', 'sparse'}
        See :func:`transfer_matrix`.

    Returns
    -------
    numpy.ndarray, shape (batch, ..., m)
        Currents into the sense amplifiers (amperes).
    """
    G = _check_conductance(G)
    par = _check_parasitics(parasitics)
    V = _check_voltages(V, G.shape[-2], G.shape[:-2])
    _validate.choice("solver", solver, _SOLVERS)
    if par.is_ideal:
        return np.matmul(V[..., None, :], G)[..., 0, :]
    _check_solvable(G, par)
    k, m = G.shape[-2:]
    if V.shape[0] >= k:  # k right-hand sides per array serve the whole batch
        T = transfer_matrix(G, par, solver=solver)
        return np.matmul(V[..., None, :], T)[..., 0, :]
    tiles = np.broadcast_shapes(V.shape[1:-1], G.shape[:-2])
    g = np.broadcast_to(G, (*tiles, k, m)).reshape(-1, k * m)
    volts = np.broadcast_to(V, (V.shape[0], *tiles, k)).reshape(V.shape[0], -1, k)
    return _direct_currents(g, volts, _Topology(k, m, par), solver).reshape(V.shape[0], *tiles, m)


@one_blas_thread
def _direct_currents(g: np.ndarray, V: np.ndarray, topo: _Topology, solver: str) -> np.ndarray:
    """Column currents (batch, P, m) of P arrays (conductances ``g`` (P, k*m)) for the
    inputs ``V`` (batch, P, k): one nodal solve per input, ``A x = B V``."""
    k, m = topo.k, topo.m
    batch, P = V.shape[:2]
    I = np.empty((batch, P, m))
    if _use_dense(topo.n, solver):
        chunk = _elimination_chunk(topo.n, batch)
        for s in range(0, P, chunk):
            gs = g[s : s + chunk]
            Vt = V[:, s : s + chunk].transpose(2, 0, 1)  # (k, batch, p)
            x = topo.solve_dense_last(gs, np.einsum("nkp,kbp->nbp", topo.rhs_dense_last(gs), Vt))
            v = topo.cell_voltages(x.transpose(2, 0, 1), Vt.transpose(2, 0, 1))  # (p, km, batch)
            I[:, s : s + chunk] = np.einsum("pijb,pij->bpj", v.reshape(-1, k, m, batch), gs.reshape(-1, k, m))
    else:
        for p in range(P):
            Vt = V[:, p].T  # (k, batch)
            # one factorization serves all the batch's right-hand sides at once (SuperLU gssv);
            # COLAMD: 3.7-4.2 s vs 5.1-5.7 s for MMD_AT_PLUS_A, 256 x 256 array, 100 inputs
            rhs = np.asarray(topo.rhs_matrix_sparse(g[p]) @ Vt)
            x = spla.spsolve(topo.assemble_sparse(g[p]), rhs, permc_spec="COLAMD").reshape(topo.n, batch)
            v = topo.cell_voltages(x, Vt)  # (km, batch)
            I[:, p] = np.einsum("ijb,ij->bj", v.reshape(k, m, batch), g[p].reshape(k, m))
    return I


# --------------------------------------------------------------------------- nonlinear


class _Diverged(Exception):
    pass


def _call_conductance(conductance_at, v: np.ndarray, iterating: bool = False) -> np.ndarray:
    if iterating and not np.all(np.isfinite(v)):
        raise _Diverged
    G = np.asarray(conductance_at(v), dtype=np.float64)
    try:
        G = np.broadcast_to(G, v.shape)
    except ValueError:
        raise ValueError(
            f"conductance_at must return conductances of the cell-voltage shape {v.shape}, "
            f"got shape {G.shape}"
        ) from None
    if iterating and not np.all(np.isfinite(G)):
        raise _Diverged
    if not np.all(np.isfinite(G)) or np.any(G < 0):
        raise ValueError("conductance_at must return finite conductances >= 0 siemens")
    return G


@one_blas_thread
def nonlinear_column_currents(
    conductance_at: Callable[[np.ndarray], np.ndarray],
    V,
    parasitics: WireParasitics,
    *,
    tol: float = 1e-10,
    max_iter: int = 100,
    damping: float = 1.0,
    method: str = "auto",
    n_cols: int | None = None,
    solver: str = "auto",
    return_cell_voltages: bool = False,
):
    """Column currents of a crossbar whose cells' conductance depends on their own voltage.

    Each cell carries ``i_ij = G_ij(v_ij) v_ij`` with ``v_ij = v_r(i,j) - v_c(i,j)`` (volts,
    row node minus column node). The network equations are KCL at every node as in the
    module docstring with ``G_ij`` replaced by ``G_ij(v_ij)``; the column current is
    ``I_j = sum_i G_ij(v_ij) v_ij``. Ideal parasitics need no iteration:
    ``v_ij = V_i`` and ``I_j = sum_i V_i G_ij(V_i)``.

    Otherwise the equations are solved by a damped fixed-point iteration on the cell
    voltages, ``v <- v + damping (Phi(v) - v)``, started from ``v_ij = V_i``:

    ``'picard'``
        ``Phi(v)``: solve the linear network with ``G = conductance_at(v)`` (one nodal
        solve per input and tile per iteration).
    ``'chord'``
        ``Phi(v)``: solve the linear network with the fixed zero-bias conductances
        ``G0 = conductance_at(0)`` and the deviation ``(G(v) - G0) v`` as a current source
        in parallel with each cell. ``A(G0)`` is factorized once per tile, so each iteration
        costs only triangular solves (or one matrix product per tile on the dense path);
        much cheaper than ``'picard'`` for large batches and arrays, with a similar
        contraction rate when the wires are much less resistive than the cells.
    ``'auto'``
        ``'chord'``. Use ``'picard'`` for cells whose conductance changes by a large factor
        over the bias range (e.g. selectors that are off at zero bias), where the chord
        iteration contracts slowly or diverges; it is correct but costs one factorization
        per input and tile per iteration.

    Iteration stops when, for every input and tile, the largest change of the column
    currents between two iterations is at most ``tol`` times the largest column current.

    Parameters
    ----------
    conductance_at : callable
        ``conductance_at(v_cell) -> G``: ``v_cell`` has shape ``(batch, ..., k, m)``
        (volts); the result (siemens, finite, >= 0) has the same shape (or broadcasts to
        it). It must act cellwise and broadcast over the leading batch axis (it is called on
        chunks of the batch, and once with a zero-bias array of batch size 1).
    V : array_like, shape (batch, ..., k)
        Row input voltages (volts); the middle dims are the tile dims.
    parasitics : WireParasitics
        Wire, driver and sense resistances (ohms).
    tol : float
        Relative tolerance on the column currents, in (0, 1).
    max_iter : int
        Maximum number of iterations, >= 1.
    damping : float
        Relaxation factor in (0, 1]; lower it for strong nonlinearities.
    method : {'auto', 'picard', 'chord'}
        Fixed-point map, see above.
    n_cols : int, optional
        Number of columns ``m``. If omitted it is inferred by calling ``conductance_at`` once
        on zeros of shape ``(1, ..., k, 1)`` (which relies on broadcasting).
    solver : {'auto', 'dense', 'sparse'}
        Linear solver, see :func:`transfer_matrix`.
    return_cell_voltages : bool
        Also return the converged cell voltages ``v`` (batch, ..., k, m).

    Returns
    -------
    I : numpy.ndarray, shape (batch, ..., m)
        Currents into the sense amplifiers (amperes).
    v : numpy.ndarray, shape (batch, ..., k, m)
        Only with ``return_cell_voltages``: cell voltages (volts).

    Raises
    ------
    ValueError
        For invalid arguments, or when ``conductance_at`` returns a wrong shape, negative or
        non-finite conductances at the initial (ideal) cell voltages.
    RuntimeError
        If the iteration has not converged after ``max_iter`` iterations, or diverged
        (non-finite voltages or conductances).
    """
    if not callable(conductance_at):
        raise ValueError("conductance_at must be a callable v_cell -> G")
    par = _check_parasitics(parasitics)
    if not isinstance(tol, (int, float, np.integer, np.floating)) or not 0 < tol < 1:
        raise ValueError(f"tol must be in (0, 1), got {tol!r}")
    _validate.integer_at_least("max_iter", max_iter, 1)
    if not isinstance(damping, (int, float, np.integer, np.floating)) or not 0 < damping <= 1:
        raise ValueError(f"damping must be in (0, 1], got {damping!r}")
    _validate.choice("method", method, _NL_METHODS)
    _validate.choice("solver", solver, _SOLVERS)
    V = np.asarray(V, dtype=np.float64)
    if V.ndim < 2:
        raise ValueError(f"V must have shape (batch, ..., k), got shape {V.shape}")
    k = V.shape[-1]
    tiles = V.shape[1:-1]
    if n_cols is None:
        probe_shape = (1, *tiles, k, 1)
        probe = np.shape(conductance_at(np.zeros(probe_shape)))
        try:
            full = np.broadcast_shapes(probe, probe_shape)
        except ValueError:
            full = ()
        if len(full) != len(probe_shape) or full[-2] != k or full[0] != 1:
            raise ValueError(
                "could not infer the number of columns from conductance_at "
                f"(probe on shape {probe_shape} returned shape {probe}); pass n_cols"
            )
        m = full[-1]
        tiles = full[1:-2]
    else:
        _validate.integer_at_least("n_cols", n_cols, 1)
        m = int(n_cols)
    V = _check_voltages(V, k, tiles)
    batch = V.shape[0]
    V = np.broadcast_to(V, (batch, *tiles, k))
    shape = (batch, *tiles, k, m)

    if par.is_ideal:
        v = np.broadcast_to(V[..., :, None], shape)
        G = _call_conductance(conductance_at, v)
        I = np.einsum("...i,...ij->...j", V, G)
        return (I, np.array(v)) if return_cell_voltages else I

    topo = _Topology(k, m, par)
    dense = _use_dense(topo.n, solver)
    if method == "auto":
        method = "chord"
    P = math.prod(tiles)
    Vf = V.reshape(batch, P, k)
    I = np.empty((batch, P, m))
    v_out = np.empty((batch, P, k * m)) if return_cell_voltages else None

    if method == "picard":
        if dense:
            step, chunk = _picard_dense(topo, P)
        else:
            step, chunk = _picard_sparse(topo, P)
    else:
        G0 = _call_conductance(conductance_at, np.zeros((1, *tiles, k, m))).reshape(P, k * m)
        _check_solvable(G0, par, "conductance_at")
        if dense:
            step, chunk = _chord_dense(topo, G0)
        else:
            step, chunk = _chord_sparse(topo, G0)

    for s in range(0, batch, chunk):
        Vc = Vf[s : s + chunk]
        b = Vc.shape[0]
        v = np.broadcast_to(Vc[:, :, :, None], (b, P, k, m)).reshape(b, P, k * m).copy()
        I_old = None
        worst = float("nan")
        for it in range(1, max_iter + 1):
            try:
                G = _call_conductance(conductance_at, v.reshape(b, *tiles, k, m), it > 1)
                if method == "picard" and it == 1:  # the matrix holds G (chord: G0, checked above)
                    _check_solvable(G, par, "conductance_at")  # and at the solution, below
                G = G.reshape(b, P, k * m)
                v_new = step(G, v, Vc)  # (b, P, km)
            except (_Diverged, ZeroDivisionError):  # a zero pivot: iterated conductances beyond the wires'
                raise RuntimeError(
                    f"nonlinear crossbar solve ({method}) diverged at iteration {it} of "
                    f"max_iter={max_iter} (non-finite cell voltages or conductances, or conductances too large "
                    f"for the wires; last "
                    f"relative change of the column currents {worst:.3g}, tol={tol:.3g}). "
                    f"Lower damping (now {damping})"
                    + (" or use method='picard'" if method != "picard" else "")
                    + " (in a layer: CrossbarConfig.solver)."
                ) from None
            # column current = sum of the cell currents of the linear network just solved
            if method == "picard":
                i_cell = G * v_new
            else:  # G0 plus the deviation current sources evaluated at v
                i_cell = G0 * v_new + (G - G0) * v
            I_new = i_cell.reshape(b, P, k, m).sum(axis=2)
            if I_old is not None:
                change = np.abs(I_new - I_old).max(axis=-1)
                scale = np.abs(I_new).max(axis=-1)
                residual = change / np.where(scale > 0, scale, 1.0)
                worst = float(residual.max())
                if worst <= tol:
                    if method == "picard":  # the solution's own solve must have kept its precision
                        _check_solvable(G, par, "conductance_at")
                    break
            I_old = I_new
            v = v + damping * (v_new - v) if damping != 1.0 else v_new
        else:
            raise RuntimeError(
                f"nonlinear crossbar solve ({method}) did not converge in max_iter={max_iter} "
                f"iterations: relative change of the column currents {worst:.3g} "
                f"> tol={tol:.3g}. Increase max_iter or lower damping (now {damping})"
                + (" or use method='picard' if the cell nonlinearity is strong" if method != "picard" else "")
                + " (in a layer: CrossbarConfig.solver)."
            )
        I[s : s + chunk] = I_new
        if return_cell_voltages:
            v_out[s : s + chunk] = v_new
    I = I.reshape(batch, *tiles, m)
    if return_cell_voltages:
        return I, v_out.reshape(shape)
    return I


def _picard_dense(topo: _Topology, P: int):
    """Per-(input, tile) dense solve of A(G) x = B(G) V."""
    A_wire, S = topo.wire_dense(), topo.scatter_diag()
    n, k, m = topo.n, topo.k, topo.m
    chunk = max(1, _CHUNK_BYTES // (8 * P * (n * n + 2 * n + 4 * k * m)))

    def step(G, v, Vc):
        b = G.shape[0]
        g = G.reshape(b * P, k * m)
        A = topo.assemble_dense(g, A_wire, S)
        Vr = Vc.reshape(b * P, k, 1)
        rhs = np.matmul(topo.rhs_matrix_dense(g), Vr)  # (bP, n, 1)
        x = np.linalg.solve(A, rhs)
        return topo.cell_voltages(x, Vr)[..., 0].reshape(b, P, k * m)

    return step, chunk


def _picard_sparse(topo: _Topology, P: int):
    k, m = topo.k, topo.m

    def step(G, v, Vc):
        b = G.shape[0]
        out = np.empty((b, P, k * m))
        for q in range(b):
            for p in range(P):
                g = G[q, p]
                lu = _splu(topo.assemble_sparse(g))
                Vr = Vc[q, p][:, None]
                x = lu.solve(np.asarray(topo.rhs_matrix_sparse(g) @ Vr))
                out[q, p] = topo.cell_voltages(x, Vr)[:, 0]
        return out

    return step, max(1, _CHUNK_BYTES // (8 * P * 6 * k * m))


def _chord_dense(topo: _Topology, G0: np.ndarray):
    """Fixed matrix A(G0) per tile; cell voltages v = K V - Z j with j = (G(v) - G0) v."""
    k, m, n = topo.k, topo.m, topo.n
    km = k * m
    P = G0.shape[0]
    A = topo.assemble_dense(G0)
    B = topo.rhs_matrix_dense(G0)  # (P, n, k)
    # Injection of a current j from row node to column node of every cell: -j at R, +j at C.
    Pt = np.zeros((n, km))
    if topo.row_var:
        Pt[topo.R, np.arange(km)] -= 1.0
    if topo.col_var:
        Pt[topo.C, np.arange(km)] += 1.0
    X = np.linalg.solve(A, np.concatenate([B, np.broadcast_to(Pt, (P, n, km))], axis=2))
    eye = np.broadcast_to(np.eye(k), (P, k, k))
    K = topo.cell_voltages(X[..., :k], eye)  # (P, km, k)
    Z = topo.cell_voltages(X[..., k:], np.zeros((P, k, km)))  # (P, km, km): dv per injected j
    chunk = max(1, _CHUNK_BYTES // (8 * P * (6 * km + k)))

    def step(G, v, Vc):
        j = (G - G0) * v  # (b, P, km)
        vt = np.matmul(K, Vc.transpose(1, 2, 0)) + np.matmul(Z, j.transpose(1, 2, 0))
        return vt.transpose(2, 0, 1)

    return step, chunk


def _chord_sparse(topo: _Topology, G0: np.ndarray):
    k, m, n = topo.k, topo.m, topo.n
    km = k * m
    P = G0.shape[0]
    lus = [_splu(topo.assemble_sparse(G0[p])) for p in range(P)]
    Bs = [topo.rhs_matrix_sparse(G0[p]) for p in range(P)]
    # Injection of a current j from row node to column node of every cell: -j at R, +j at C
    # (a sparse (n, km) matrix: merged nodes receive the sum of their cells' currents).
    cells = np.arange(km)
    nodes, signs = [], []
    if topo.row_var:
        nodes.append(topo.R)
        signs.append(-np.ones(km))
    if topo.col_var:
        nodes.append(topo.C)
        signs.append(np.ones(km))
    inject = sp.csr_matrix(
        (np.concatenate(signs), (np.concatenate(nodes), np.tile(cells, len(nodes)))), shape=(n, km)
    )

    def step(G, v, Vc):
        b = G.shape[0]
        out = np.empty((b, P, km))
        j = (G - G0) * v
        for p in range(P):
            rhs = np.asarray(Bs[p] @ Vc[:, p, :].T + inject @ j[:, p, :].T)  # (n, b)
            x = lus[p].solve(rhs)
            out[:, p, :] = topo.cell_voltages(x, Vc[:, p, :].T).T
        return out

    return step, max(1, _CHUNK_BYTES // (8 * P * 4 * n))


# --------------------------------------------------------------------------- SPICE


def _num(x) -> str:
    return f"{float(x):.17g}"


def spice_netlist(
    G,
    V,
    parasitics: WireParasitics,
    *,
    cell_current: Callable[[int, int, str], str] | None = None,
    title: str = "imclib crossbar",
) -> str:
    """ngspice netlist of one array with one input vector, same topology as the solver.

    Nodes: ``in<i>`` (source), ``d<i>`` (after the driver), ``r<i>_<j>`` (row),
    ``c<i>_<j>`` (column), ``s<j>`` (after the last column segment), ``a<j>`` (sense amp).
    Zero resistances become 0 V sources (shorts). Each sense amplifier is a 0 V source
    ``VSA<j>`` from ``a<j>`` to ground; ``i(vsa<j>)`` is the column current ``I_j`` (positive
    into the amplifier). The ``.control`` block runs an ``.op`` analysis, prints the currents
    with 17 digits (lines ``i(vsa<j>) = <value>``) and quits; run it with ``ngspice -b``.

    Parameters
    ----------
    G : array_like, shape (k, m)
        Cell conductances (siemens); a zero conductance omits the cell.
    V : array_like, shape (k,)
        Row input voltages (volts).
    parasitics : WireParasitics
        Wire, driver and sense resistances (ohms).
    cell_current : callable, optional
        ``cell_current(i, j, v) -> str``: an ngspice expression of the cell current (amperes)
        in terms of the cell-voltage expression ``v`` (e.g. ``'V(r0_0,c0_0)'``); the cell
        then is a behavioural current source ``B`` instead of the resistor ``1/G``.
    title : str
        First (title) line.
    """
    G = _check_conductance(G)
    if G.ndim != 2:
        raise ValueError(f"G must have shape (k, m) for one array, got shape {G.shape}")
    k, m = G.shape
    V = np.asarray(V, dtype=np.float64)
    if V.shape != (k,) or not np.all(np.isfinite(V)):
        raise ValueError(f"V must be a finite vector of shape ({k},), got shape {V.shape}")
    par = _check_parasitics(parasitics)
    lines = [title.replace("\n", " ")]

    def res(name, a, b, r):
        lines.append(f"R{name} {a} {b} {_num(r)}" if r > 0 else f"V{name} {a} {b} DC 0")

    for i in range(k):
        lines.append(f"VIN{i} in{i} 0 DC {_num(V[i])}")
        res(f"DRV{i}", f"in{i}", f"d{i}", par.r_driver)
        res(f"ROW{i}_0", f"d{i}", f"r{i}_0", par.r_row)
        for j in range(1, m):
            res(f"ROW{i}_{j}", f"r{i}_{j - 1}", f"r{i}_{j}", par.r_row)
    for j in range(m):
        for i in range(1, k):
            res(f"COL{i}_{j}", f"c{i - 1}_{j}", f"c{i}_{j}", par.r_col)
        res(f"COL{k}_{j}", f"c{k - 1}_{j}", f"s{j}", par.r_col)
        res(f"SNS{j}", f"s{j}", f"a{j}", par.r_sense)
        lines.append(f"VSA{j} a{j} 0 DC 0")
    for i in range(k):
        for j in range(m):
            a, b = f"r{i}_{j}", f"c{i}_{j}"
            if cell_current is not None:
                lines.append(f"BCELL{i}_{j} {a} {b} I = {cell_current(i, j, f'V({a},{b})')}")
            elif G[i, j] > 0:
                lines.append(f"RCELL{i}_{j} {a} {b} {_num(1.0 / G[i, j])}")
    lines += [
        ".options reltol=1e-12 abstol=1e-20 vntol=1e-15",
        ".control",
        "op",
        "set numdgt=17",
        "print " + " ".join(f"i(vsa{j})" for j in range(m)),
        "quit 0",
        ".endc",
        ".end",
    ]
    return "\n".join(lines) + "\n"
