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

Bias dependence: a junction with voltage ``v`` across it has
``TMR(v) = TMR0 / (1 + (v / V_h)^2)``, so ``R_AP(v) = R_P (1 + TMR(v))``; ``R_P`` is taken
bias independent. In a stack the junction voltages follow from the series divider and are
solved self-consistently.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from . import _validate, defaults

LEVEL_KINDS = ("uniform", "series", "binary")
R_P_RANGE_OHM = (1e-3, 1e12)
"""Accepted R_P (ohms): beyond it ``1/R_P`` or the level window leaves float precision."""
TMR0_RANGE = (1e-6, 1e3)
"""Accepted TMR0: below it the level window ``G_P - G_AP`` vanishes in float64."""


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
        Number of levels N, >= 2 (a power of two for ``kind="binary"``).
    kind : {"uniform", "series", "binary"}
        How the levels are built (see the module docstring).
    mtj : MTJ
        The junction the stack is made of (nominal parameters).
    """

    n_states: int = defaults.N_STATES
    kind: str = "binary"
    mtj: MTJ = field(default_factory=MTJ)

    def __post_init__(self):
        _validate.integer_at_least("n_states", self.n_states, 2)
        _validate.choice("kind", self.kind, LEVEL_KINDS)
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
        if self.kind == "binary":
            return int(math.log2(self.n_states))
        return 1

    def _stack(self) -> tuple[np.ndarray, np.ndarray]:
        """Junction resistance scales ``(J,)`` and antiparallel flags ``(N, J)``.

        Row q of the flags is level q; levels ascend in conductance, so level 0 has every
        junction antiparallel.
        """
        n, j = self.n_states, self.n_junctions
        if self.kind == "series":
            scale = np.ones(j)
            n_antiparallel = np.arange(n)[::-1]
            flags = np.arange(j)[None, :] < n_antiparallel[:, None]
        else:
            scale = 2.0 ** np.arange(j)
            code = np.arange(n)[::-1]
            flags = (code[:, None] >> np.arange(j)[None, :]) & 1
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
            g_p = 1.0 / mtj.r_p
            g_ap = 1.0 / (mtj.r_p * (1.0 + mtj.tmr(v)))
            step = np.arange(self.n_states) / (self.n_states - 1)
            return g_ap[..., None] + step * (g_p - g_ap)[..., None]
        scale, flags = self._stack()
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
