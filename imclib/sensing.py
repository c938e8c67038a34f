"""Sense noise from the sensing circuit, and the read margin of a cell's levels.

A column read integrates the column current for ``t_int`` seconds; an integrator (boxcar
of length ``t_int``) has the noise bandwidth ``df = 1 / (2 t_int)`` (hertz). Two sources:

* Every cell on the column, driven at ``V_i`` from its row (the column at virtual ground),
  is a tunnel junction: its current noise density (A^2/Hz) is
  ``S_ij = 2 q I_ij coth(q V_i / (2 k T)) = 2 q G_ij |V_i| coth(q |V_i| / (2 k T))``,
  full shot noise at ``q |V| >> 2 k T`` (Fano factor ~1 measured in CoFeB/MgO/CoFeB
  junctions, Sekiguchi et al., Appl. Phys. Lett. 96, 252504 (2010)) and the thermal
  (Johnson-Nyquist) noise ``4 k T G_ij`` of an unbiased cell at ``V = 0``. Adding
  ``4 k T G`` and ``2 q I`` separately would count the thermal part twice at bias
  (by 52 % of ``2 q I`` at 0.1 V); the coth form is the exact sum for a tunnel barrier.
* A cell that is a stack of junctions in series is a chain of independent noise sources,
  not one junction at the full voltage. Junction k of the stack (resistance ``R_k``, share
  ``r_k = R_k / R`` of the stack's ``R = sum_k R_k``) carries the stack current
  ``I = V / R`` at its own voltage ``V_k = r_k V`` (the series divider), with the density
  ``S_k = 2 q I coth(q V_k / (2 k T)) = (S/G)(V_k) / R_k``. A series noise current source
  ``i_k`` across ``R_k`` drives ``i_k R_k / R`` through the shorted stack, so the stack's
  density, referred to the column current, is
  ``S = sum_k S_k (R_k / R)^2 = G sum_k r_k (S/G)(r_k V)`` (A^2/Hz, ``G = 1 / R``).
  It is at most the one-junction ``G (S/G)(V)`` (``(S/G)`` grows with ``|V|``, the
  ``r_k`` sum to 1) and equals it for one junction; for two equal junctions at 0.1 V it
  is 0.64 of it. The divider is the nominal one at zero bias (the level's junction
  resistances, :func:`junction_shares`).
* The sense (transimpedance feedback) resistance ``R_s`` adds ``4 k T / R_s``.

So one read of one column of one array has the current variance
``sigma_I^2 = df (sum_i S_ij + 4 k T / R_s)`` (amperes^2), ``S_ij`` the stack density of
cell ij at its row voltage ``V_i``; partial sums of several arrays
accumulated digitally add their variances. The amplifier's own voltage noise is left out
(an optimistic floor). Constants: ``k`` and ``q`` are exact in the SI since 2019.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import pandas as pd
from scipy.special import ndtr

from . import _validate, defaults
from .cells import CellLevels

BOLTZMANN_J_PER_K = 1.380649e-23
"""Boltzmann constant k (J/K), exact (SI 2019)."""
ELEMENTARY_CHARGE_C = 1.602176634e-19
"""Elementary charge q (coulombs), exact (SI 2019)."""


@dataclass(frozen=True)
class SenseCircuit:
    """The integrating sense amplifier of one column.

    Parameters
    ----------
    t_int : float
        Integration time of one read (seconds), > 0; noise bandwidth ``1 / (2 t_int)``.
    r_sense : float
        Sense (feedback) resistance (ohms), > 0; ``math.inf`` removes its noise.
    temperature : float
        Temperature (kelvin), > 0.
    """

    t_int: float = defaults.SENSE_T_INT_S
    r_sense: float = defaults.SENSE_R_OHM
    temperature: float = defaults.TEMPERATURE_K

    def __post_init__(self):
        _validate.positive("t_int", self.t_int)
        _validate.positive("r_sense", self.r_sense, allow_inf=True)
        _validate.positive("temperature", self.temperature)

    @property
    def bandwidth(self) -> float:
        """Noise bandwidth ``df = 1 / (2 t_int)`` (hertz)."""
        return 0.5 / self.t_int

    @property
    def thermal_voltage(self) -> float:
        """``k T / q`` (volts)."""
        return BOLTZMANN_J_PER_K * self.temperature / ELEMENTARY_CHARGE_C

    def noise_per_siemens(self, v) -> np.ndarray:
        """Current noise density of a tunnel junction per siemens of conductance,
        ``S / G = 2 q |v| coth(q |v| / (2 k T))`` (A^2 / (Hz S)), at junction voltage ``v``
        (volts); equals ``4 k T`` at ``v = 0`` and ``2 q |v|`` at ``|v| >> 2 k T / q``."""
        x = np.abs(np.asarray(v, dtype=np.float64)) / (2.0 * self.thermal_voltage)
        safe = np.where(x > 1e-8, x, 1.0)
        ratio = np.where(x > 1e-8, safe / np.tanh(safe), 1.0 + x * x / 3.0)  # x coth x
        return 4.0 * BOLTZMANN_J_PER_K * self.temperature * ratio

    def stack_noise_per_siemens(self, v, shares) -> np.ndarray:
        """Current noise density of a series stack per siemens of its conductance,
        ``S / G = sum_k r_k (S/G)(r_k v)`` (A^2 / (Hz S)), at stack voltage ``v`` (volts,
        any shape ``S``) with junction resistance shares ``shares`` (``r_k = R_k / R``,
        last axis the junctions, summing to 1; broadcast against ``v[..., None]``).
        One junction (``shares = [1]``) gives :meth:`noise_per_siemens`."""
        shares = np.asarray(shares, dtype=np.float64)
        return np.sum(shares * self.noise_per_siemens(np.asarray(v, dtype=np.float64)[..., None] * shares), axis=-1)

    @property
    def sense_density(self) -> float:
        """Thermal noise density of the sense resistance, ``4 k T / R_s`` (A^2/Hz)."""
        return 4.0 * BOLTZMANN_J_PER_K * self.temperature / self.r_sense

    def column_variance(self, voltages, conductance, reads: int = 1, shares=None, state=None) -> np.ndarray:
        """Current variance (A^2) of column reads:
        ``df (sum_i G_ij sum_k r_qk (S/G)(r_qk V_i) + reads 4 k T / R_s)``, ``q`` the level
        of cell ij and ``r_qk`` the resistance shares of its junctions (one junction,
        ``r = [1]``, without ``shares``).

        Parameters
        ----------
        voltages : ndarray, shape (..., n_rows)
            Row voltages (volts) of each read.
        conductance : ndarray, shape (n_rows, n_cols) or broadcastable batch (..., n_rows, n_cols)
            Cell conductances (siemens).
        reads : int
            Reads whose variances are summed into each result (arrays accumulated
            digitally), each with its own sense resistance.
        shares : ndarray, shape (N, J), optional
            Junction resistance shares of each level (:func:`junction_shares`); with it
            every cell is a series stack of per-junction noise sources. None: every cell is
            one junction at its row voltage.
        state : ndarray of int, shape like ``conductance``
            Level index (0 to N - 1) of every cell; required with ``shares``.

        Returns
        -------
        ndarray, shape (..., n_cols)
        """
        voltages = np.asarray(voltages, dtype=np.float64)
        if shares is None:
            cells = np.matmul(self.noise_per_siemens(voltages)[..., None, :], conductance)[..., 0, :]
            return self.bandwidth * (cells + reads * self.sense_density)
        shares = np.asarray(shares, dtype=np.float64)
        if shares.ndim != 2 or not np.allclose(shares.sum(axis=1), 1.0, rtol=1e-12, atol=0):
            raise ValueError(f"shares must have shape (N, J) with rows summing to 1, got shape {shares.shape}")
        state = np.asarray(state) if state is not None else None
        if np.ndim(conductance) != 2:
            raise ValueError(f"conductance must have shape (n_rows, n_cols) when shares are given, got {np.shape(conductance)}")
        if state is None or state.shape != np.shape(conductance) or state.min() < 0 or state.max() >= len(shares):
            raise ValueError(f"state must be level indices in [0, {len(shares) - 1}] shaped like conductance "
                             f"{np.shape(conductance)} when shares are given")
        cells = _stack_cells(voltages.reshape(-1, voltages.shape[-1]), np.ascontiguousarray(conductance, dtype=np.float64),
                             state.astype(np.int64), shares, 4.0 * BOLTZMANN_J_PER_K * self.temperature,
                             2.0 * self.thermal_voltage)
        return self.bandwidth * (cells.reshape(voltages.shape[:-1] + cells.shape[-1:]) + reads * self.sense_density)

    def cell_read_sigma(self, v, g, shares=(1.0,)) -> np.ndarray:
        """Current noise (amperes rms) of reading one cell of conductance ``g`` (siemens) at
        ``v`` (volts): ``sqrt(df (g sum_k r_k (S/G)(r_k v) + 4 k T / R_s))``, junction
        resistance shares ``shares`` (last axis; default one junction)."""
        return np.sqrt(self.bandwidth * (self.stack_noise_per_siemens(v, shares) * np.asarray(g) + self.sense_density))


_EXCESS_BITS = 10
"""``2^10`` row voltages whose stack densities :func:`_stack_cells` keeps at once (a
direct-mapped table indexed by the top bits of a hash of the voltage's bits): the inputs of
a layer often take few distinct values (256 for 8-bit pixels), so most rows reuse their
densities rather than evaluate ``coth``."""


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _stack_cells(voltages, conductance, state, shares, kt4, two_vt):
    """``sum_i G_ij sum_k r_qk (S/G)(r_qk V_bi)`` (A^2/Hz), ``q = state_ij``, shape
    (batch, n_cols): the cells' part of :meth:`SenseCircuit.column_variance` with junction
    ``shares``, ``(S/G)(v) = 4 k T x coth x`` with ``x = |v| / (2 k T / q)``
    (``1 + x^2 / 3`` below ``x = 1e-8``, as :meth:`SenseCircuit.noise_per_siemens`).

    Computed as the thermal part ``4 k T sum_i G_ij`` of every read (the shares sum to 1)
    plus, for each nonzero row voltage only, the bias excess
    ``4 k T sum_k r_qk (x_k coth x_k - 1)``; each row's N stack densities are computed once
    per distinct ``|V|`` (in ``2^_EXCESS_BITS`` slots) and gathered per cell, so the
    cost is at most that of one matrix product, not N."""
    batch, rows = voltages.shape
    n_levels, n_junctions = shares.shape
    thermal = kt4 * conductance.sum(axis=0)
    out = np.empty((batch, conductance.shape[1]))
    kept = np.full(1 << _EXCESS_BITS, -1.0)  # the |V| each slot holds the densities of (-1: none)
    excess = np.empty((1 << _EXCESS_BITS, n_levels))
    bits = np.abs(voltages).view(np.uint64)
    for b in range(batch):
        out[b] = thermal
        for i in range(rows):
            magnitude = abs(voltages[b, i])
            if magnitude == 0.0:
                continue
            slot = (bits[b, i] * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(64 - _EXCESS_BITS)
            densities = excess[slot]
            if kept[slot] != magnitude:
                v = magnitude / two_vt
                for q in range(n_levels):
                    total = 0.0
                    for k in range(n_junctions):
                        x = v * shares[q, k]
                        total += shares[q, k] * ((x / np.tanh(x) if x > 1e-8 else 1.0 + x * x / 3.0) - 1.0)
                    densities[q] = kt4 * total
                kept[slot] = magnitude
            for j in range(conductance.shape[1]):
                out[b, j] += densities[state[i, j]] * conductance[i, j]
    return out


def junction_shares(cell: CellLevels) -> np.ndarray:
    """Resistance share ``r_qk = R_qk / sum_k R_qk`` of every junction k of every level q of
    a stack at zero bias, shape (N, J) (dimensionless, rows sum to 1). The ``uniform`` cell
    counts as one junction (every row ``[1]``)."""
    if cell.kind == "uniform":
        return np.ones((cell.n_states, 1))
    scale, flags = cell.junction_layout()
    resistance = scale * (1.0 + cell.mtj.tmr0 * flags)
    return resistance / resistance.sum(axis=-1, keepdims=True)


def level_spread(cell: CellLevels, junction_sigma: float) -> np.ndarray:
    """Relative sigma of each level's conductance from per-junction variation of ``ln R_P``,
    to first order: ``sigma_q = sigma sqrt(sum_j (R_qj / R_q)^2)`` (dimensionless, shape (N,)).
    The ``uniform`` cell counts as one junction (``sigma_q = sigma``)."""
    _validate.non_negative("junction_sigma", junction_sigma)
    return junction_sigma * np.sqrt(np.sum(junction_shares(cell) ** 2, axis=-1))


def read_margin(cell: CellLevels, v_read: float = defaults.V_READ_V, sense: SenseCircuit | None = None,
                junction_sigma: float = defaults.JUNCTION_SIGMA, read_sigma: float = defaults.READ_SIGMA) -> pd.DataFrame:
    """Probability that two adjacent levels of one cell overlap when the cell is read alone.

    Level q read at ``v_read`` (volts) gives a current with mean ``mu_q = v_read G_q(v_read)``
    (bias-dependent TMR included) and, to first order, Gaussian spread
    ``s_q^2 = (mu_q sigma_q)^2 + (mu_q read_sigma)^2 + sigma_sense,q^2``: static
    per-junction variation (:func:`level_spread`), per-read conductance noise, and the
    sensing circuit's noise of the stack, junction by junction (:meth:`SenseCircuit.cell_read_sigma`
    with :func:`junction_shares`). With the decision
    threshold between q and q+1 where both tails are equally many sigmas away,
    ``z = (mu_{q+1} - mu_q) / (s_q + s_{q+1})``, and the overlap (misread) probability is
    ``P = 2 Phi(-z)``.

    Returns
    -------
    DataFrame
        One row per adjacent pair: ``level`` (lower level q), ``current_uA`` (mu_q),
        ``gap_nA`` (mu_{q+1} - mu_q), ``sigma_nA`` ((s_q + s_{q+1}) / 2), ``z``,
        ``overlap_probability``.
    """
    _validate.positive("v_read", v_read)
    _validate.non_negative("read_sigma", read_sigma)
    sense = sense or SenseCircuit()
    mean = v_read * cell.conductances(v_read)
    spread = np.sqrt((mean * level_spread(cell, junction_sigma)) ** 2 + (mean * read_sigma) ** 2
                     + sense.cell_read_sigma(v_read, mean / v_read, junction_shares(cell)) ** 2)
    gap = np.diff(mean)
    z = gap / (spread[:-1] + spread[1:])
    return pd.DataFrame({"level": np.arange(cell.n_states - 1), "current_uA": mean[:-1] * 1e6, "gap_nA": gap * 1e9,
                         "sigma_nA": 0.5 * (spread[:-1] + spread[1:]) * 1e9, "z": z,
                         "overlap_probability": 2.0 * ndtr(-z)})


def worst_overlap(cell: CellLevels, **kwargs) -> float:
    """Largest adjacent-level overlap probability of :func:`read_margin`."""
    return float(read_margin(cell, **kwargs).overlap_probability.max())

