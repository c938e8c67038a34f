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
* The sense (transimpedance feedback) resistance ``R_s`` adds ``4 k T / R_s``.

So one read of one column of one array has the current variance
``sigma_I^2 = df (sum_i S_ij + 4 k T / R_s)`` (amperes^2); partial sums of several arrays
accumulated digitally add their variances. The amplifier's own voltage noise is left out
(an optimistic floor). Constants: ``k`` and ``q`` are exact in the SI since 2019.
"""

from __future__ import annotations

from dataclasses import dataclass

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

    @property
    def sense_density(self) -> float:
        """Thermal noise density of the sense resistance, ``4 k T / R_s`` (A^2/Hz)."""
        return 4.0 * BOLTZMANN_J_PER_K * self.temperature / self.r_sense

    def column_variance(self, voltages, conductance, reads: int = 1) -> np.ndarray:
        """Current variance (A^2) of column reads: ``df (sum_i (S/G)(V_i) G_ij + reads 4 k T / R_s)``.

        Parameters
        ----------
        voltages : ndarray, shape (..., n_rows)
            Row voltages (volts) of each read.
        conductance : ndarray, shape (n_rows, n_cols) or broadcastable batch (..., n_rows, n_cols)
            Cell conductances (siemens).
        reads : int
            Reads whose variances are summed into each result (arrays accumulated
            digitally), each with its own sense resistance.

        Returns
        -------
        ndarray, shape (..., n_cols)
        """
        density = self.noise_per_siemens(voltages)
        cells = np.matmul(density[..., None, :], conductance)[..., 0, :]
        return self.bandwidth * (cells + reads * self.sense_density)

    def cell_read_sigma(self, v, g) -> np.ndarray:
        """Current noise (amperes rms) of reading one cell of conductance ``g`` (siemens) at
        ``v`` (volts): ``sqrt(df ((S/G)(v) g + 4 k T / R_s))``."""
        return np.sqrt(self.bandwidth * (self.noise_per_siemens(v) * np.asarray(g) + self.sense_density))


def level_spread(cell: CellLevels, junction_sigma: float) -> np.ndarray:
    """Relative sigma of each level's conductance from per-junction variation of ``ln R_P``,
    to first order: ``sigma_q = sigma sqrt(sum_j (R_qj / R_q)^2)`` (dimensionless, shape (N,)).
    The ``uniform`` cell counts as one junction (``sigma_q = sigma``)."""
    _validate.non_negative("junction_sigma", junction_sigma)
    if cell.kind == "uniform":
        return np.full(cell.n_states, float(junction_sigma))
    scale, flags = cell.junction_layout()
    resistance = scale * (1.0 + cell.mtj.tmr0 * flags)
    share = resistance / resistance.sum(axis=-1, keepdims=True)
    return junction_sigma * np.sqrt(np.sum(share**2, axis=-1))


def read_margin(cell: CellLevels, v_read: float = defaults.V_READ_V, sense: SenseCircuit | None = None,
                junction_sigma: float = defaults.JUNCTION_SIGMA, read_sigma: float = defaults.READ_SIGMA) -> pd.DataFrame:
    """Probability that two adjacent levels of one cell overlap when the cell is read alone.

    Level q read at ``v_read`` (volts) gives a current with mean ``mu_q = v_read G_q(v_read)``
    (bias-dependent TMR included) and, to first order, Gaussian spread
    ``s_q^2 = (mu_q sigma_q)^2 + (mu_q read_sigma)^2 + sigma_sense,q^2``: static
    per-junction variation (:func:`level_spread`), per-read conductance noise, and the
    sensing circuit's noise (:meth:`SenseCircuit.cell_read_sigma`). With the decision
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
                     + sense.cell_read_sigma(v_read, mean / v_read) ** 2)
    gap = np.diff(mean)
    z = gap / (spread[:-1] + spread[1:])
    return pd.DataFrame({"level": np.arange(cell.n_states - 1), "current_uA": mean[:-1] * 1e6, "gap_nA": gap * 1e9,
                         "sigma_nA": 0.5 * (spread[:-1] + spread[1:]) * 1e9, "z": z,
                         "overlap_probability": 2.0 * ndtr(-z)})


def worst_overlap(cell: CellLevels, **kwargs) -> float:
    """Largest adjacent-level overlap probability of :func:`read_margin`."""
    return float(read_margin(cell, **kwargs).overlap_probability.max())

