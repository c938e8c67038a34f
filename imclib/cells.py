"""N-ary cells: one magnetic tunnel junction and the level sets built from junction stacks.

A cell offers N conductance levels ``G_0 < ... < G_{N-1}`` (siemens). Three level sets:

``uniform``
    N levels equally spaced in conductance between ``1/R_AP`` and ``1/R_P`` of one junction
    (idealized; the window is fixed, whatever N).
``series``
    ``k = N - 1`` identical junctions in series; with ``m`` of them antiparallel
    ``R = m R_AP + (k - m) R_P``. Equally spaced in R, not in G; the window
    ``G_max - G_min`` shrinks as ``1/(N-1)``.
``binary``
    ``b = log2 N`` junctions whose resistances scale 1:2:4:...; with code ``c`` (bit j set
    when junction j is antiparallel) ``R = (2^b - 1) R_P + c TMR R_P``. Also equally spaced
    in R; a 4-state cell is two junctions in series.
``writable``
    The binary-weighted stack that realises any N: ``b = ceil(log2 N)`` junctions of areas
    ``A_0 / 2^j`` (so ``R_P,j = 2^j R_P``, ``I_c,j = J_c A_0 / 2^j``), of whose ``2^b``
    codes the N codes ``c_i = round(i (2^b - 1) / (N - 1))`` are used (the extremes and
    codes evenly spread in R between them). Equal to ``binary`` when N is a power of two.
    Every code is writable (:func:`stack_physics`); the identical-junction ``series``
    stack is not, and is kept only as a labelled contrast.

Writing a ``writable`` stack (largest junction first): the junctions share one current.
Pulse j (j = 0, 1, ..., b - 1) carries ``I_j`` with ``I_c,j (1 + 3 s) < I_j <
I_c,j-1 (1 - 3 s)`` (pulse 0: only the lower bound; ``s`` the relative spread of I_c) and
the polarity of junction j's target state: it sets junction j (and every smaller junction,
rewritten by the later pulses) and cannot disturb the larger ones, written before. The
window exists when ``I_c,j-1 / I_c,j = 2 > (1 + 3 s) / (1 - 3 s)``, i.e. ``s < 1/9``.
A pulse only threatens junctions switching in its own direction, so a P->AP / AP->P
asymmetry of I_c shared by all junctions of the stack leaves the windows unchanged.

Bias dependence: a junction with voltage ``v`` across it has
``TMR(v) = TMR0 / (1 + (v / V_h)^2)``, so ``R_AP(v) = R_P (1 + TMR(v))``; ``R_P`` is taken
bias independent. In a stack the junction voltages follow from the series divider and are
solved self-consistently.

``measured`` (:class:`MeasuredCell`)
    A device described by a table instead of junctions: N measured level conductances
    ``G_q`` (siemens), the relative programming spread of each level, and optionally the
    conductance of each level against read voltage. Presets of published devices are in
    :mod:`imclib.devices`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import brentq

from . import _validate, defaults

LEVEL_KINDS = ("uniform", "series", "binary", "writable")
R_P_RANGE_OHM = (1e-3, 1e12)
"""Accepted R_P (ohms): beyond it ``1/R_P`` or the level window leaves float precision."""
TMR0_RANGE = (1e-6, 1e3)
"""Accepted TMR0: below it the level window ``G_P - G_AP`` vanishes in float64."""
MAX_STATES = {"uniform": 2**22, "series": 4096, "binary": 2**20, "writable": 2**20}
"""Largest N per kind: the level and junction arrays (N x J float64) stay within about
170 MB, and quantization onto them takes a few seconds at most (uniform 2^22: 2.5 s, series
4096: 0.3 s, binary 2^20: 1 s; series 8192 took 5.6 s, one shared core). Bias-dependent
cells are bounded far lower, by the cost of tabulating them
(:data:`imclib.config.BIAS_LEVELS_MAX`). The states studied are N <= 16."""


@dataclass(frozen=True)
class MTJ:
    """One magnetic tunnel junction.

    Parameters
    ----------
    r_p : float
        Parallel-state resistance (ohms), > 0.
    tmr0 : float
        Zero-bias TMR ``(R_AP - R_P) / R_P`` (dimensionless), > 0.
    v_half : float
        Bias at which the TMR has halved (volts), > 0; ``math.inf`` switches bias
        dependence off.
    """

    r_p: float = defaults.R_P_OHM
    tmr0: float = defaults.TMR0
    v_half: float = defaults.V_HALF_V

    def __post_init__(self):
        _validate.in_range("r_p", self.r_p, R_P_RANGE_OHM[0], R_P_RANGE_OHM[1], "ohm")
        _validate.in_range("tmr0", self.tmr0, TMR0_RANGE[0], TMR0_RANGE[1])
        _validate.positive("v_half", self.v_half, allow_inf=True)

    @property
    def r_ap(self) -> float:
        """Zero-bias antiparallel resistance ``R_P (1 + TMR0)`` (ohms)."""
        return self.r_p * (1.0 + self.tmr0)

    def tmr(self, v) -> np.ndarray:
        """``TMR(v) = TMR0 / (1 + (v / V_h)^2)`` for the junction voltage ``v`` (volts)."""
        return self.tmr0 / (1.0 + (np.asarray(v, dtype=np.float64) / self.v_half) ** 2)


@dataclass(frozen=True)
class CellLevels:
    """The level set of one N-ary cell.

    Parameters
    ----------
    n_states : int
        Number of levels N, in [2, ``MAX_STATES[kind]``] (a power of two for
        ``kind="binary"``): 2^22 uniform, 4096 series, 2^20 binary and writable.
    kind : {"uniform", "series", "binary", "writable"}
        How the levels are built (see the module docstring); ``writable`` is the
        binary-weighted stack for any N, ``series`` a contrast that cannot be written.
    mtj : MTJ
        The junction the stack is made of (nominal parameters).
    """

    n_states: int = defaults.N_STATES
    kind: str = "binary"
    mtj: MTJ = field(default_factory=MTJ)

    def __post_init__(self):
        _validate.integer_at_least("n_states", self.n_states, 2)
        _validate.choice("kind", self.kind, LEVEL_KINDS)
        if self.n_states > MAX_STATES[self.kind]:
            raise ValueError(f"n_states must be in [2, {MAX_STATES[self.kind]}] for kind={self.kind!r}, "
                             f"got {self.n_states}")
        _validate.instance("mtj", self.mtj, MTJ)
        if self.kind == "binary" and self.n_states & (self.n_states - 1):
            raise ValueError(
                f"n_states must be a power of two (2, 4, 8, ...) for kind='binary', "
                f"got {self.n_states}"
            )

    @property
    def n_junctions(self) -> int:
        """Junctions in the stack (1 for the idealized uniform cell)."""
        if self.kind == "series":
            return self.n_states - 1
        if self.kind in ("binary", "writable"):
            return math.ceil(math.log2(self.n_states))
        return 1

    def codes(self) -> np.ndarray:
        """Stack code of every level (bit j set when junction j is antiparallel), shape
        (N,), level 0 (all antiparallel: lowest G) first. ``binary``: ``2^b - 1 - q``;
        ``writable``: ``c_{N-1-q}`` with ``c_i = round(i (2^b - 1) / (N - 1))``."""
        top = 2**self.n_junctions - 1
        if self.kind == "writable":
            return np.rint(np.arange(self.n_states) * top / (self.n_states - 1)).astype(np.int64)[::-1]
        return np.arange(self.n_states)[::-1]

    def junction_layout(self) -> tuple[np.ndarray, np.ndarray]:
        """Junction resistance scales ``(J,)`` (``R_P,j / R_P``) and antiparallel flags
        ``(N, J)``; row q of the flags is level q (levels ascend in conductance, so level 0
        has every junction antiparallel). The ``uniform`` cell is described as one junction
        whose two extreme states bound the window; its interior levels are not stack states.
        """
        n, j = self.n_states, self.n_junctions
        if self.kind == "uniform":
            return np.ones(1), np.linspace(1.0, 0.0, n)[:, None]
        if self.kind == "series":
            scale = np.ones(j)
            n_antiparallel = np.arange(n)[::-1]
            flags = np.arange(j)[None, :] < n_antiparallel[:, None]
        else:
            scale = 2.0 ** np.arange(j)
            flags = (self.codes()[:, None] >> np.arange(j)[None, :]) & 1
        return scale, flags.astype(np.float64)

    def conductances(self, v=0.0, mtj: MTJ | None = None) -> np.ndarray:
        """Level conductances (siemens) at cell voltage ``v`` (volts).

        Parameters
        ----------
        v : float or array_like
            Voltage across the whole cell; any shape ``S``.
        mtj : MTJ, optional
            Junction parameters to evaluate with (the actual device); defaults to the
            nominal ``self.mtj``.

        Returns
        -------
        ndarray, shape ``S + (N,)``
            Ascending conductances. ``uniform``:
            ``G_q = G_AP(v) + q (G_P - G_AP(v)) / (N - 1)`` with ``G_P = 1/R_P`` and
            ``G_AP(v) = 1 / (R_P (1 + TMR(v)))``. Stacks: ``G_q = 1 / sum_j R_qj(v_qj)``
            where ``v_qj = v R_qj / sum_j R_qj`` is solved by fixed-point iteration.
        """
        mtj = self.mtj if mtj is None else mtj
        v = np.asarray(v, dtype=np.float64)
        if not np.all(np.isfinite(v)):
            raise ValueError("v must contain only finite voltages (volts)")
        if self.kind == "uniform":
            _validate.memory(f"CellLevels({self.n_states}, 'uniform').conductances at {v.size} voltages",
                             3 * 8 * v.size * self.n_states)  # ~3 float64 temporaries of shape S + (N,)
            g_p = 1.0 / mtj.r_p
            g_ap = 1.0 / (mtj.r_p * (1.0 + mtj.tmr(v)))
            step = np.arange(self.n_states) / (self.n_states - 1)
            return g_ap[..., None] + step * (g_p - g_ap)[..., None]
        scale, flags = self.junction_layout()
        r_parallel = mtj.r_p * scale
        v_cell = v[..., None, None]
        resistance = np.broadcast_to(r_parallel * (1.0 + flags * mtj.tmr0), v.shape + flags.shape)
        if math.isinf(mtj.v_half) or not np.any(v):
            return 1.0 / resistance.sum(axis=-1)
        _validate.memory(f"CellLevels({self.n_states}, {self.kind!r}).conductances at {v.size} voltages",
                         6 * 8 * v.size * flags.size)  # ~6 float64 temporaries of shape S + (N, J)
        for _ in range(200):
            v_junction = v_cell * resistance / resistance.sum(axis=-1, keepdims=True)
            updated = r_parallel * (1.0 + flags * mtj.tmr(v_junction))
            if np.max(np.abs(updated - resistance) / resistance) < 1e-14:
                return 1.0 / updated.sum(axis=-1)
            resistance = updated
        raise RuntimeError(
            "junction voltages in the MTJ stack did not converge in 200 iterations; "
            f"the cell voltage (max |v| = {np.max(np.abs(v)):.3g} V) is too large for "
            f"v_half = {mtj.v_half} V"
        )

    def resistances(self, v=0.0, mtj: MTJ | None = None) -> np.ndarray:
        """Level resistances ``1 / G_q`` (ohms) at cell voltage ``v``, descending."""
        return 1.0 / self.conductances(v, mtj)

    @property
    def level_sigma(self) -> np.ndarray | None:
        """Programming spread of each level beyond ``Nonidealities.programming_sigma``:
        None for junction stacks (their variation is the config's), the measured spread for
        a :class:`MeasuredCell`."""
        return None


MEASURED_MAX_STATES = 4096
"""Largest N of a :class:`MeasuredCell`: with bias dependence the cell is tabulated at 4097
voltages (:data:`imclib.config.BIAS_LEVELS_MAX`, one device per cell)."""
MEASURED_G_RANGE_S = (1e-12, 1e3)
"""Accepted measured conductances (siemens): ``1 / R`` over the accepted R_P range."""
MEASURED_SIGMA_MAX = 1.0
"""Largest accepted spread of a level (sigma of ln G): a spread of 100 % leaves no level."""


@dataclass(frozen=True)
class MeasuredCell(CellLevels):
    """A cell described by measured levels: a table, not a junction model.

    A programmed cell in level q has the static conductance
    ``G = G_q(v) exp(s_q z - s_q^2 / 2)`` (siemens), ``z ~ N(0, 1)`` drawn once per cell when
    the array is programmed (mean-normalised lognormal, as
    :func:`imclib.nonidealities.draw_variation`; to first order ``s_q`` is the relative
    standard deviation of level q), on top of ``Nonidealities.programming_sigma``
    (set it to 0 to keep only the measured spread) and read noise. ``G_q(v)`` is
    ``levels[q]`` at every voltage, or, with a bias table,
    ``G_q(v) = levels[q] b_q(|v|)``, ``b_q`` interpolated linearly in ``bias_factors[q]``
    over ``voltages`` (volts; no extrapolation: reading beyond ``voltages[-1]`` is refused).

    It stands wherever a built-in cell does (``CrossbarConfig(cell=...)``: mapping,
    deployment, the read path with ``bias_dependence``, studies, cost as one device per
    cell). Systematic errors: ``rp_error`` scales every level by ``1 / (1 + rp_error)``
    (a level gain, as for a junction's R_P); ``tmr_error`` has no meaning here and is refused.
    The junction-stack analyses (:func:`stack_physics`, :func:`junction_conductance_samples`,
    the read margins of :mod:`imclib.sensing`) do not apply and refuse it.

    Parameters
    ----------
    levels : sequence of float
        Level conductances ``G_q`` (siemens), ascending, distinct, in
        :data:`MEASURED_G_RANGE_S`; N = len(levels) in [2, :data:`MEASURED_MAX_STATES`].
    spread : sequence of float
        Relative programming spread ``s_q`` of each level (sigma of ln G), in
        [0, :data:`MEASURED_SIGMA_MAX`]; one per level.
    voltages : sequence of float, optional
        Read voltages (volts) of the bias table: ascending, ``voltages[0] == 0``, at least two.
    bias_factors : sequence of sequences of float, optional
        ``G_q(v) / G_q(0)`` per level (rows) and voltage (columns), positive, first column 1;
        given together with ``voltages``.
    source : str
        Where the numbers come from (paper, figure or table); shown in the repr.
    """

    n_states: int = field(init=False, repr=False, default=2)
    kind: str = field(init=False, repr=False, default="measured")
    mtj: MTJ = field(init=False, repr=False, default_factory=MTJ)
    levels: tuple[float, ...] = ()
    spread: tuple[float, ...] = ()
    voltages: tuple[float, ...] | None = None
    bias_factors: tuple[tuple[float, ...], ...] | None = None
    source: str = ""

    def __post_init__(self):
        levels = _validate.finite_array("levels", self.levels, 1)
        if not 2 <= levels.size <= MEASURED_MAX_STATES:
            raise ValueError(f"levels must hold between 2 and {MEASURED_MAX_STATES} conductances, got {levels.size}")
        low, high = MEASURED_G_RANGE_S
        if levels.min() < low or levels.max() > high:
            raise ValueError(f"levels must be conductances in [{low:g}, {high:g}] siemens, got "
                             f"[{levels.min():.3g}, {levels.max():.3g}]")
        if np.any(np.diff(levels) <= 0):
            raise ValueError("levels must be distinct and sorted ascending (siemens)")
        spread = _validate.finite_array("spread", self.spread, 1)
        if spread.shape != levels.shape:
            raise ValueError(f"spread must hold one value per level ({levels.size}), got {spread.size}")
        if spread.min() < 0 or spread.max() > MEASURED_SIGMA_MAX:
            raise ValueError(f"spread must be in [0, {MEASURED_SIGMA_MAX}] (sigma of ln G), got "
                             f"[{spread.min():.3g}, {spread.max():.3g}]")
        object.__setattr__(self, "levels", tuple(levels.tolist()))
        object.__setattr__(self, "spread", tuple(spread.tolist()))
        object.__setattr__(self, "n_states", levels.size)
        if not isinstance(self.source, str):
            raise ValueError(f"source must be a string naming where the levels come from, got {self.source!r}")
        self._check_bias_table()

    def _check_bias_table(self) -> None:
        """Validate ``voltages`` and ``bias_factors`` (given together) and store them as tuples."""
        if (self.voltages is None) != (self.bias_factors is None):
            raise ValueError("voltages and bias_factors must be given together (or neither)")
        if self.voltages is None:
            return
        voltages = _validate.finite_array("voltages", self.voltages, 1)
        if voltages.size < 2 or voltages[0] != 0 or np.any(np.diff(voltages) <= 0):
            raise ValueError("voltages must be at least two ascending read voltages (volts) starting at 0")
        factors = _validate.finite_array("bias_factors", self.bias_factors, 2)
        if factors.shape != (self.n_states, voltages.size):
            raise ValueError(f"bias_factors must have shape (levels, voltages) = ({self.n_states}, {voltages.size}), "
                             f"got {factors.shape}")
        if np.any(factors <= 0) or np.any(factors[:, 0] != 1):
            raise ValueError("bias_factors must be positive, G_q(v) / G_q(0), with first column 1")
        object.__setattr__(self, "voltages", tuple(voltages.tolist()))
        object.__setattr__(self, "bias_factors", tuple(tuple(row) for row in factors.tolist()))

    @property
    def n_junctions(self) -> int:
        """One device per cell (for the cost model's area)."""
        return 1

    @property
    def level_sigma(self) -> np.ndarray:
        """The measured spread ``s_q`` of each level (sigma of ln G)."""
        return np.array(self.spread)

    def codes(self) -> np.ndarray:
        """Refused: a measured cell is no junction stack."""
        raise ValueError("a MeasuredCell has no junction stack: codes() and junction_layout() apply to "
                         "CellLevels(kind='series'|'binary'|'writable')")

    def junction_layout(self) -> tuple[np.ndarray, np.ndarray]:
        """Refused: a measured cell is no junction stack."""
        return self.codes()

    def conductances(self, v=0.0, mtj: MTJ | None = None) -> np.ndarray:
        """Level conductances (siemens) at cell voltage ``v`` (volts), shape ``v.shape + (N,)``.

        ``G_q(v) = levels[q] / (1 + rp_error) b_q(|v|)`` (class docstring); ``mtj`` is the
        actual device of :attr:`imclib.config.CrossbarConfig.actual_mtj`, whose R_P ratio to
        the nominal one carries ``rp_error`` and whose infinite ``v_half`` switches the bias
        table off (``bias_dependence=False``). Default: the nominal device, bias table on.
        """
        v = np.asarray(v, dtype=np.float64)
        if not np.all(np.isfinite(v)):
            raise ValueError("v must contain only finite voltages (volts)")
        if mtj is not None and mtj.tmr0 != self.mtj.tmr0:
            raise ValueError("tmr_error does not apply to a MeasuredCell (it has no TMR); "
                             "use rp_error for a level gain")
        gain = 1.0 if mtj is None else self.mtj.r_p / mtj.r_p
        levels = gain * np.array(self.levels)
        if self.voltages is None or (mtj is not None and math.isinf(mtj.v_half)) or not np.any(v):
            return np.broadcast_to(levels, v.shape + levels.shape).copy()
        magnitude = np.abs(v)
        if magnitude.max() > self.voltages[-1]:
            raise ValueError(f"cell voltage {magnitude.max():.3g} V is beyond the bias table of this MeasuredCell "
                             f"(valid up to {self.voltages[-1]:g} V)")
        factors = np.stack([np.interp(magnitude, self.voltages, row) for row in self.bias_factors], axis=-1)
        return levels * factors



def junction_conductance_samples(cell: CellLevels, state, sigma: float, rng, mtj: MTJ | None = None) -> np.ndarray:
    """Zero-bias conductance (siemens) of every cell, with per-junction variation drawn per cell.

    Each junction j of each cell gets its own ``R_P,j exp(sigma z_j)``, ``z_j ~ N(0, 1)``
    (area / barrier variation scales R_P and R_AP alike), so a cell in level q has
    ``G = 1 / sum_j R_P 2^j (1 + TMR0 f_qj) exp(sigma z_j)`` (``f_qj`` = 1 when junction j
    is antiparallel; scales ``2^j`` for binary and writable stacks, 1 for series stacks).
    The ``uniform`` cell counts as one junction: ``G = G_q exp(-sigma z)``. To first order
    the relative spread of a level is ``sigma sqrt(sum_j (R_qj / R_q)^2)``: variation
    averages over the junctions of a stack.

    Parameters
    ----------
    cell : CellLevels
    state : array_like of int
        Level index of every cell, any shape ``S``.
    sigma : float
        Sigma of ``ln R_P`` of each junction (dimensionless), >= 0.
    rng : numpy.random.Generator or int
    mtj : MTJ, optional
        Junction parameters (defaults to the nominal ``cell.mtj``).

    Returns
    -------
    ndarray, shape ``S``
    """
    _validate.non_negative("sigma", sigma)
    rng = _validate.generator(rng)
    mtj = cell.mtj if mtj is None else mtj
    scale, flags = cell.junction_layout()
    state = np.asarray(state)
    if cell.kind == "uniform":
        return cell.conductances(0.0, mtj)[state] * np.exp(sigma * rng.standard_normal(state.shape))
    factors = np.exp(sigma * rng.standard_normal(state.shape + scale.shape))
    resistance = mtj.r_p * scale * (1.0 + mtj.tmr0 * flags[state]) * factors
    return 1.0 / resistance.sum(axis=-1)


def _junction_voltage(current: float, r_p: float, mtj: MTJ) -> float:
    """Voltage (volts) across an antiparallel junction of parallel resistance ``r_p`` carrying
    ``current`` (amperes): the root of ``V = I r_p (1 + TMR(V))``."""
    low, high = current * r_p, current * r_p * (1.0 + mtj.tmr0)
    if math.isinf(mtj.v_half) or high == low:
        return high
    return brentq(lambda v: v - current * r_p * (1.0 + float(mtj.tmr(v))), low, high, xtol=1e-12)


def stack_physics(cell: CellLevels, v_read: float = defaults.V_READ_V, ra: float = defaults.RA_OHM_M2,
                  jc: float = defaults.JC_A_PER_M2, jc_spread: float = defaults.JC_SPREAD,
                  v_breakdown: float = defaults.V_BREAKDOWN_V, delta: float = defaults.THERMAL_STABILITY,
                  tau0: float = defaults.ATTEMPT_TIME_S, t_read: float = defaults.SENSE_T_INT_S,
                  disturb_budget: float = defaults.READ_DISTURB_BUDGET,
                  min_diameter: float = defaults.MIN_JUNCTION_DIAMETER_M, area_ratio: float | None = None) -> dict:
    """Whether a cell's N states can be written and read: geometry, write window, write
    voltage, read disturb.

    Assumptions shared by both designs: one critical current density ``J_c`` and one
    ``TMR0`` for every junction, critical currents proportional to area, one write current
    through the whole stack per pulse, junction j with ``R_P,j = scale_j R_P``.

    Geometry, ``area_ratio`` None (equal RA, the default design): every junction has the
    same ``RA``; the largest junction has ``R_P = cell.mtj.r_p``, so its area is
    ``A_0 = RA / R_P`` (m^2), and junction j has ``A_j = A_0 / scale_j``. With
    ``area_ratio`` ``rho`` (graded RA): consecutive areas differ by ``rho`` only,
    ``A_j = A_min rho^(J - 1 - j)`` with the smallest junction at ``min_diameter``, and each
    junction's barrier sets ``RA_j = R_P,j A_j`` (``RA`` is not used). Diameter
    ``sqrt(4 A_j / pi)``, critical current ``I_c,j = J_c A_j`` (amperes).

    Write (largest junction first, see the module docstring): pulse j carries
    ``I_j`` in ``(I_c,j (1 + 3 s), I_c,j-1 (1 - 3 s))``; a window exists when every
    ratio of consecutive critical currents exceeds ``(1 + 3 s) / (1 - 3 s)``. Identical
    junctions (``series``, N >= 3) share one threshold: no window. The first pulse,
    ``I_0 = I_c,0 (1 + 3 s)``, flows through every junction; the smallest, if
    antiparallel, then sees ``V = I_0 R_P,j (1 + TMR(V))``, which must stay below
    ``v_breakdown``.

    Read disturb: the largest read current ``I_r = v_read / R_min`` (all parallel) against
    the smallest critical current gives, by thermally activated switching (Neel-Brown with
    a linear current dependence), ``P = 1 - exp(-(t_read / tau0) exp(-Delta (1 - I_r / I_c)))``
    per read; it must stay below ``disturb_budget``.

    Parameters
    ----------
    cell : CellLevels
    v_read : float
        Read voltage across the cell (volts), > 0.
    ra : float
        Resistance-area product (ohm m^2), > 0.
    jc : float
        Critical current density (A/m^2), > 0.
    jc_spread : float
        Relative sigma of I_c (dimensionless), >= 0.
    v_breakdown : float
        Largest junction voltage allowed while writing (volts), > 0.
    delta, tau0, t_read : float
        Thermal stability (dimensionless), attempt time and read duration (seconds).
    disturb_budget : float
        Largest acceptable flip probability per read.
    min_diameter : float
        Smallest manufacturable junction diameter (meters).
    area_ratio : float, optional
        Graded-RA design: area ratio of consecutive junctions, > 1; None: equal RA.

    Returns
    -------
    dict
        ``construction``, ``n_junctions``, ``area_ratios`` (A_j / A_0), ``ra_ohm_um2``
        (RA_j, ohm um^2), ``diameters_nm``,
        ``ic_uA``, ``r_min_kohm``, ``r_max_kohm``, ``writable`` (a write window exists),
        ``write_sequence``, ``write_voltage_max_V``, ``read_current_uA``,
        ``read_disturb_ratio`` (I_r / min I_c), ``read_disturb_probability``,
        ``credible`` and ``reason`` (what fails, or "ok").
    """
    for name, value in (("v_read", v_read), ("ra", ra), ("jc", jc), ("v_breakdown", v_breakdown),
                        ("tau0", tau0), ("t_read", t_read), ("min_diameter", min_diameter)):
        _validate.positive(name, value)
    _validate.non_negative("jc_spread", jc_spread)
    if area_ratio is not None and not (math.isfinite(area_ratio) and area_ratio > 1.0):
        raise ValueError(f"area_ratio must be a finite number > 1 (graded RA) or None (equal RA), got {area_ratio!r}")
    mtj = cell.mtj
    levels = cell.resistances()
    base = {"n_states": cell.n_states, "kind": cell.kind, "r_min_kohm": float(levels.min() / 1e3),
            "r_max_kohm": float(levels.max() / 1e3), "read_current_uA": float(v_read / levels.min() * 1e6)}
    if cell.kind == "uniform":
        return {**base, "construction": "idealized: N levels evenly spaced in G inside one junction's window",
                "n_junctions": 1, "area_ratios": (1.0,), "ra_ohm_um2": (), "diameters_nm": (), "ic_uA": (), "writable": cell.n_states == 2,
                "write_sequence": "none: one MTJ has two states" if cell.n_states > 2 else "one pulse",
                "write_voltage_max_V": math.nan, "read_disturb_ratio": math.nan, "read_disturb_probability": math.nan,
                "credible": False, "reason": "not a physical cell (a single MTJ has two states)"}
    scale, _ = cell.junction_layout()
    if area_ratio is None:
        area = ra / mtj.r_p / scale
    else:
        area = math.pi * min_diameter**2 / 4.0 * area_ratio ** np.arange(scale.size)[::-1]
    diameter = np.sqrt(4.0 * area / math.pi)
    ic = jc * area
    needed = (1.0 + 3.0 * jc_spread) / max(1.0 - 3.0 * jc_spread, 1e-12)
    ratios = ic[:-1] / ic[1:]
    writable = bool(np.all(ratios > needed))
    pulse0 = ic[0] * (1.0 + 3.0 * jc_spread)
    write_voltage = max(_junction_voltage(pulse0, mtj.r_p * s, mtj) for s in scale)
    disturb_ratio = float(base["read_current_uA"] * 1e-6 / ic.min())
    exponent = -delta * max(1.0 - disturb_ratio, 0.0)
    p_disturb = float(-np.expm1(-(t_read / tau0) * np.exp(exponent)))
    failures = []
    if not writable:
        failures.append("identical junctions share one switching threshold: states not selectively writable"
                        if cell.kind == "series" else f"I_c ratio {ratios.min():.2f} below {needed:.2f}")
    if diameter.min() < min_diameter:
        failures.append(f"smallest junction {diameter.min() * 1e9:.0f} nm < {min_diameter * 1e9:.0f} nm")
    if write_voltage > v_breakdown:
        failures.append(f"write puts {write_voltage:.2f} V on a junction (> {v_breakdown:.1f} V breakdown)")
    if p_disturb > disturb_budget:
        failures.append(f"read disturb {p_disturb:.1e} per read (> {disturb_budget:.0e})")
    if cell.kind == "series":
        construction = f"{scale.size} identical junctions in series (contrast)"
        sequence = "one pulse (N = 2)" if scale.size == 1 else "none: one threshold for all junctions"
    else:
        construction = (f"{scale.size} junctions, areas 1:" + ":".join(f"1/{a:.3g}" for a in area[0] / area[1:])
                        if scale.size > 1 else "1 junction")
        construction += ", equal RA" if area_ratio is None else ", graded RA"
        if cell.n_states < 2**scale.size:
            construction += f", {cell.n_states} of {2 ** scale.size} codes"
        windows = [f"J0 above {ic[0] * (1 + 3 * jc_spread) * 1e6:.0f} uA"]
        windows += [f"J{j} at {ic[j] * (1 + 3 * jc_spread) * 1e6:.0f}-{ic[j - 1] * (1 - 3 * jc_spread) * 1e6:.0f} uA"
                    for j in range(1, scale.size)]
        sequence = " then ".join(windows)
    return {**base, "construction": construction, "n_junctions": int(scale.size),
            "area_ratios": tuple(float(a) for a in area / area[0]),
            "ra_ohm_um2": tuple(float(r) for r in mtj.r_p * scale * area * 1e12),
            "diameters_nm": tuple(float(d) for d in diameter * 1e9), "ic_uA": tuple(float(i) for i in ic * 1e6),
            "writable": writable, "write_sequence": sequence, "write_voltage_max_V": float(write_voltage),
            "read_disturb_ratio": disturb_ratio, "read_disturb_probability": p_disturb,
            "credible": not failures, "reason": "; ".join(failures) or "ok"}
