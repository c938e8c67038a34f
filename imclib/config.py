"""One object for a whole hardware setup: :class:`CrossbarConfig`.

Derive variants with ``dataclasses.replace`` (or :meth:`CrossbarConfig.with_`), e.g.
``config.with_(cell=CellLevels(8, "series"))``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from . import _validate, defaults
from .cells import CellLevels, MTJ
from .circuit import SolverOptions, WireParasitics
from .nonidealities import Nonidealities
from .periphery import Periphery

MAPPINGS = ("offset", "differential")
SCALES = ("column", "layer")
INPUT_SUMS = ("digital", "reference")
SCENARIOS = ("per_tile", "reused")
V_READ_RANGE_V = (1e-6, 10.0)
"""Accepted full-scale read voltage (volts)."""


@dataclass(frozen=True)
class CrossbarConfig:
    """Hardware setup of a tiled crossbar layer. Defaults are the source study's setting:
    4-state MTJ cells (two junctions, binary-weighted stack) on 4 x 4 arrays, with the
    literature-plausible nonidealities of :meth:`Nonidealities.typical` and the sense noise
    floor of :data:`imclib.defaults.SENSE_NOISE_A`.

    Parameters
    ----------
    cell : CellLevels
        Level set of one cell (nominal device).
    quantize : bool
        Snap weights to the cell's levels; ``False`` programs any conductance in
        ``[G_min, G_max]`` (an analog cell, the infinitely-many-states limit).
    rows, cols : int
        Size of one physical array (k x m), >= 1.
    v_read : float
        Full-scale row voltage (volts); inputs map as ``V_i = s x_i``, ``s = v_read / x_max``.
    mapping : {"offset", "differential"}
        ``offset``: ``w = a G + b`` on one cell, retrieved as ``y = (a/s) I + b sum(x)``;
        ``differential``: ``w = a (G+ - G-)`` on a pair of cells, ``y = (a/s)(I+ - I-)``.
    scale : {"column", "layer"}
        One affine map per output column or per layer.
    weight_percentile : float
        Weight range ``w_max`` is this percentile of ``|w|`` (100 = max, no clipping);
        weights beyond it are clipped, and the clipped fraction is reported.
    input_sum : {"digital", "reference"}
        How ``sum(x)`` is obtained for the offset mapping: computed digitally, or read from
        a reference column of cells at ``G_max`` in every array (which then holds
        ``cols - 1`` weight columns).
    scenario : {"per_tile", "reused"}
        ``per_tile``: one array per tile, each with its own static deviations;
        ``reused``: one physical array reprogrammed for every tile, so its cell-specific
        deviations repeat in every tile.
    nonideal : Nonidealities
        Device nonidealities (the actual device departs from the nominal one).
    periphery : Periphery
        DAC, ADC and sense noise.
    wires : WireParasitics
        Series resistances of every array's wiring (ohms per segment, driver, sense
        amplifier), solved by nodal analysis (:mod:`imclib.circuit`). The default is ideal
        wires, ``I_j = sum_i V_i G_ij``.
    solver : SolverOptions
        Iteration of the nonlinear nodal solve (bias-dependent cells behind resistive
        wires): method, damping, max_iter, tol.
    """

    cell: CellLevels = field(default_factory=CellLevels)
    quantize: bool = True
    rows: int = defaults.ARRAY_ROWS
    cols: int = defaults.ARRAY_COLS
    v_read: float = defaults.V_READ_V
    mapping: str = "offset"
    scale: str = "column"
    weight_percentile: float = 100.0
    input_sum: str = "digital"
    scenario: str = "per_tile"
    nonideal: Nonidealities = field(default_factory=Nonidealities.typical)
    periphery: Periphery = field(default_factory=lambda: Periphery(sense_noise=defaults.SENSE_NOISE_A))
    wires: WireParasitics = field(default_factory=WireParasitics)
    solver: SolverOptions = field(default_factory=SolverOptions)

    def __post_init__(self):
        _validate.instance("cell", self.cell, CellLevels)
        _validate.boolean("quantize", self.quantize)
        _validate.integer_at_least("rows", self.rows, 1)
        _validate.integer_at_least("cols", self.cols, 1)
        _validate.in_range("v_read", self.v_read, V_READ_RANGE_V[0], V_READ_RANGE_V[1], "V")
        _validate.choice("mapping", self.mapping, MAPPINGS)
        _validate.choice("scale", self.scale, SCALES)
        _validate.in_range("weight_percentile", self.weight_percentile, 50.0, 100.0)
        _validate.choice("input_sum", self.input_sum, INPUT_SUMS)
        _validate.choice("scenario", self.scenario, SCENARIOS)
        _validate.instance("nonideal", self.nonideal, Nonidealities)
        _validate.instance("periphery", self.periphery, Periphery)
        _validate.instance("wires", self.wires, WireParasitics)
        if self.input_sum == "reference":
            if self.mapping != "offset":
                raise ValueError("input_sum='reference' applies to mapping='offset' only")
            if self.cols < 2:
                raise ValueError(f"cols must be >= 2 with input_sum='reference', got {self.cols}")
        level_effects = (
            self.nonideal.rp_error or self.nonideal.tmr_error
            or self.nonideal.bias_dependence or self.nonideal.decode_as_uniform
        )
        if not self.quantize and level_effects:
            raise ValueError(
                "rp_error, tmr_error, bias_dependence and decode_as_uniform act on a level "
                "set: they need quantize=True"
            )

    @classmethod
    def ideal(cls, rows: int = defaults.ARRAY_ROWS, cols: int = defaults.ARRAY_COLS) -> "CrossbarConfig":
        """The ideal limit: uniform analog cells, no quantization, no nonidealities, ideal
        converters. Its MVM equals ``x @ W`` to float precision."""
        return cls(
            cell=CellLevels(2, "uniform", MTJ()),
            quantize=False,
            rows=rows,
            cols=cols,
            nonideal=Nonidealities(),
            periphery=Periphery(),
        )

    @classmethod
    def quantization_only(cls, cell: CellLevels | None = None, **kwargs) -> "CrossbarConfig":
        """Quantization onto ``cell``'s levels and nothing else (``nonideal`` and
        ``periphery`` in ``kwargs`` replace the ideal ones)."""
        kwargs = {"nonideal": Nonidealities(), "periphery": Periphery(), **kwargs}
        return cls(cell=cell or CellLevels(), **kwargs)

    def with_(self, **changes) -> "CrossbarConfig":
        """A copy with ``changes`` applied (``dataclasses.replace``, validated)."""
        return dataclasses.replace(self, **changes)

    @property
    def actual_mtj(self) -> MTJ:
        """The junction as built: nominal R_P and TMR0 shifted by the systematic errors, and
        bias dependence only when switched on."""
        nominal = self.cell.mtj
        return MTJ(
            r_p=nominal.r_p * (1.0 + self.nonideal.rp_error),
            tmr0=nominal.tmr0 * (1.0 + self.nonideal.tmr_error),
            v_half=nominal.v_half if self.nonideal.bias_dependence else float("inf"),
        )
