"""One physical array (and a stack of them): column currents by Ohm's and Kirchhoff's laws.

With ideal wires every cell sees its row voltage and the column current is
``I_j = sum_i V_i G_ij`` (amperes, volts, siemens). Arrays are batched: a leading block
axis holds the arrays that share a set of rows, so ``V`` (batch, blocks, k) and ``G``
(blocks, k, p) give ``I`` (batch, blocks, p) with one batched matmul.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numba
import numpy as np

from .kernels import level_drives


def column_currents(voltages: np.ndarray, conductances: np.ndarray) -> np.ndarray:
    """Ideal Kirchhoff column currents ``I_bj = sum_i V_bi G_ij`` per block.

    Parameters
    ----------
    voltages : ndarray, shape (batch, blocks, k)
        Row voltages (volts).
    conductances : ndarray, shape (blocks, k, p)
        Cell conductances (siemens).

    Returns
    -------
    ndarray, shape (batch, blocks, p)
        Column currents (amperes); with several blocks a view of a (blocks, batch, p)
        array (one BLAS call per block, each block's currents contiguous).
    """
    if conductances.shape[0] == 1:
        return (voltages[:, 0, :] @ conductances[0])[:, None, :]
    return np.matmul(voltages.transpose(1, 0, 2), conductances).transpose(1, 0, 2)


@dataclass(frozen=True)
class LevelTable:
    """A cell's level conductances ``G_q(|v|)`` tabulated for fast lookup (siemens).

    The cell model is evaluated exactly on ``nodes`` equally spaced points of ``|v|`` in
    ``[0, v_max]`` (the bias dependence is even in v) and interpolated linearly between
    them, ``G_q(v) = (1 - f) G_q(v_n) + f G_q(v_{n+1})`` with ``n = floor(|v| / dv)``,
    ``f = |v| / dv - n``; beyond ``v_max`` the last segment is extrapolated. For
    ``TMR(v) = TMR0 / (1 + (v/V_h)^2)`` the error is below ``(dv)^2 max|G''| / 8``, about
    1e-9 relative at ``V <= 0.5 V`` with the default 4097 nodes.

    Attributes
    ----------
    table : ndarray, shape (nodes, N)
        Level conductances at the nodes (siemens).
    per_volt : float
        ``1 / dv`` (nodes per volt); 0 when ``v_max == 0`` (every lookup returns node 0).
    """

    table: np.ndarray
    per_volt: float
    start: np.ndarray = field(init=False, repr=False)
    slope: np.ndarray = field(init=False, repr=False)
    segments: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        # per level, contiguous: G_q(v_n) and G_q(v_{n+1}) - G_q(v_n), shape (N, nodes - 1)
        object.__setattr__(self, "start", np.ascontiguousarray(self.table[:-1].T))
        object.__setattr__(self, "slope", np.ascontiguousarray(np.diff(self.table, axis=0).T))
        # per node, all levels side by side (one cache line per lookup): shape (nodes - 1, 2, N)
        object.__setattr__(self, "segments", np.ascontiguousarray(np.stack([self.start.T, self.slope.T], axis=1)))

    @classmethod
    def build(cls, level_conductances: Callable[[np.ndarray], np.ndarray], v_max: float, nodes: int = 4097) -> "LevelTable":
        """Tabulate ``level_conductances(v) -> (..., N)`` on ``[0, v_max]`` volts."""
        table = level_conductances(np.linspace(0.0, v_max, nodes))
        return cls(table, (nodes - 1) / v_max if v_max > 0 else 0.0)

    def locate(self, voltages: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Node index ``n`` and fraction ``f`` of every voltage."""
        position = np.abs(voltages) * self.per_volt
        index = np.minimum(position.astype(np.intp), self.table.shape[0] - 2)
        return index, position - index

    def levels(self, voltages: np.ndarray) -> np.ndarray:
        """All level conductances at every voltage, shape ``voltages.shape + (N,)``."""
        index, fraction = self.locate(voltages)
        fraction = fraction[..., None]
        return self.table[index] * (1.0 - fraction) + self.table[index + 1] * fraction

    def level(self, index: np.ndarray, fraction: np.ndarray, q: int) -> np.ndarray:
        """Conductance of level ``q`` at located voltages (:meth:`locate`),
        ``G_q(v_n) + f (G_q(v_{n+1}) - G_q(v_n))``: no ``(..., N)`` temporary."""
        conductance = self.start[q][index]
        conductance += fraction * self.slope[q][index]
        return conductance

    def cell(self, voltages: np.ndarray, state: np.ndarray) -> np.ndarray:
        """Conductance of level ``state`` (int, broadcast against ``voltages``) at each voltage."""
        index, fraction = self.locate(voltages)
        flat = self.table.ravel()
        at = index * self.table.shape[1] + state
        return flat[at] * (1.0 - fraction) + flat[at + self.table.shape[1]] * fraction


    def drives(self, voltages: np.ndarray, power: int = 1) -> np.ndarray:
        """Every level's drive ``(V G_q(V))^power`` at every voltage, in one compiled pass
        (one lookup per voltage serves all levels), shape ``voltages.shape + (N,)``.

        Same interpolation as :meth:`level`: ``G_q(v_n) + f (G_q(v_{n+1}) - G_q(v_n))``.
        """
        voltages = np.ascontiguousarray(voltages, dtype=np.float64)
        k = voltages.shape[-1]
        flat = voltages.reshape(math.prod(voltages.shape[:-1]), k)
        out = np.empty((flat.shape[0], k, self.start.shape[0]))
        _level_drives(flat, self.segments, self.per_volt, power, out)
        return out.reshape(*voltages.shape, self.start.shape[0])


@numba.njit(nogil=True, cache=True)
def _level_drives(voltages, segments, per_volt, power, out):  # pragma: no cover - compiled
    levels = out.shape[2]
    for b in range(voltages.shape[0]):
        for i in range(voltages.shape[1]):
            v = voltages[b, i]
            drive = out[b, i]
            if v == 0.0:  # no drive (unused inputs, padding rows): skip the lookup
                for q in range(levels):  # element loops: whole-slice operations cost 4x here
                    drive[q] = 0.0
                continue
            level_drives(v, segments, per_volt, drive)
            if power == 2:
                for q in range(levels):
                    drive[q] *= drive[q]


def level_masks(state: np.ndarray, variation: np.ndarray, levels: int, power: int = 1) -> np.ndarray:
    """Level masks ``((q_ij == q) D_ij)^power`` of every cell, shape (blocks, k, N, p):
    ``[r, i, q]`` selects the cells of row ``i`` of block ``r`` at level ``q`` (see
    :func:`bias_dependent_currents`)."""
    deviation = variation if power == 1 else variation**2
    return (state[:, :, None] == np.arange(levels)[:, None]) * deviation[:, :, None]


def bias_dependent_currents(
    voltages: np.ndarray,
    level_g: np.ndarray | LevelTable,
    state: np.ndarray,
    variation: np.ndarray,
    power: int = 1,
    masks: np.ndarray | None = None,
) -> np.ndarray:
    """Column currents of cells whose conductance depends on their own voltage.

    With ideal wires cell (i, j) sees ``V_i``, so
    ``I_j = sum_i V_i G_{q_ij}(V_i) D_ij = sum_{i,q} [V_i G_q(V_i)] [(q_ij == q) D_ij]``:
    the drives ``V_i G_q(V_i)`` of all N levels meet the level masks ``(q_ij == q) D_ij`` in
    one matmul over the pairs ``(i, q)`` (inner dimension ``k N``). ``power=2``
    returns ``sum_i V_i^2 G_ij(V_i)^2 D_ij^2`` (the variance kernel of read noise).

    Parameters
    ----------
    voltages : ndarray, shape (batch, blocks, k)
        Row voltages (volts).
    level_g : ndarray, shape (batch, blocks, k, N), or LevelTable
        Level conductances at each row voltage (siemens), e.g. from
        ``cell.conductances(V)`` (exact); or a :class:`LevelTable` covering ``|V|``, looked
        up once per voltage for all levels (:meth:`LevelTable.drives`).
    state : ndarray of int, shape (blocks, k, p)
        Level index of every cell.
    variation : ndarray, shape (blocks, k, p)
        Static multiplicative deviation ``D_ij`` of every cell.
    masks : ndarray, shape (blocks, k, N, p), optional
        ``level_masks(state, variation, N, power)``, if computed once beforehand.
    """
    batch, blocks, k = voltages.shape
    if isinstance(level_g, LevelTable):
        drives = level_g.drives(voltages, power)  # (batch, blocks, k, N)
    else:
        drives = voltages[..., None] * level_g
        if power == 2:
            drives *= drives
    levels = drives.shape[-1]
    if masks is None:
        masks = level_masks(state, variation, levels, power)
    return column_currents(drives.reshape(batch, blocks, k * levels), masks.reshape(blocks, k * levels, masks.shape[-1]))
