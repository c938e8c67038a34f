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
ARRAY_SIDE_MAX = 4096
"""Largest ``rows`` and ``cols`` of one physical array: four times the largest arrays built
(1024 x 1024); one padded 4096 x 4096 tile already holds 128 MiB per float64 matrix."""
BIAS_LEVELS_MAX = 4096
"""Largest ``N x J`` (levels times junctions per cell, J = 1 for the uniform cell) with
``bias_dependence``: the cell is tabulated at 4097 (8193 behind resistive wires) voltages,
solving N x J junction voltages at each (:class:`imclib.array.LevelTable`). Allowed: binary
N <= 256, writable N <= 455, series N <= 64, uniform N <= 4096; programming takes about
5 s at the largest (one shared core), binary N = 512 took 8 s, series N = 128 19 s and
binary N = 1024 36 s."""
WEIGHT_MAPS = ("calibrated", "naive")
ADC_CALIBRATIONS = ("signal", "worst_case")
DECODE_SCHEMES = {
    "offset/digital": {"mapping": "offset", "input_sum": "digital"},
    "offset/reference": {"mapping": "offset", "input_sum": "reference"},
    "differential": {"mapping": "differential", "input_sum": "digital"},
}
"""The three decode schemes, one spelling across every study: ``name -> CrossbarConfig fields``.
*offset/digital* (the default): offset map ``w = a g + b`` per column with ``sum(x)`` computed
digitally; *offset/reference*: the same map with ``sum(x)`` read from a reference column of
cells; *differential*: pairs of columns, ``w ∝ g+ - g-``."""


@dataclass(frozen=True)
class CrossbarConfig:
    """Hardware setup of a tiled crossbar layer. Defaults are the source study's setting:
    4-state MTJ cells (two junctions, binary-weighted stack) on 4 x 4 arrays, with the
    literature-plausible nonidealities of :meth:`Nonidealities.typical`, finite converters
    (:data:`imclib.defaults.DAC_BITS`, :data:`imclib.defaults.ADC_BITS`) and the sense noise
    floor of :data:`imclib.defaults.SENSE_NOISE_A`; weights are mapped with the calibrated
    (MSE-optimal) affine map and the ADC sees the signal with its common mode subtracted.

    Parameters
    ----------
    cell : CellLevels
        Level set of one cell (nominal device).
    quantize : bool
        Snap weights to the cell's levels; ``False`` programs any conductance in
        ``[G_min, G_max]`` (an analog cell, the infinitely-many-states limit).
    rows, cols : int
        Size of one physical array (k x m), in [1, :data:`ARRAY_SIDE_MAX`].
    v_read : float
        Full-scale row voltage (volts); inputs map as ``V_i = s x_i``, ``s = v_read / x_max``.
    mapping : {"offset", "differential"}
        ``offset``: ``w = a G + b`` on one cell, retrieved as ``y = (a/s) I + b sum(x)``;
        ``differential``: ``w = a (G+ - G-)`` on a pair of cells, ``y = (a/s)(I+ - I-)``.
    scale : {"column", "layer"}
        One affine map per output column or per layer.
    weight_map : {"calibrated", "naive"}
        ``calibrated``: the affine map minimising the weight MSE over the cell's actual
        levels, with bias correction; ``naive``: the symmetric ``[-w_max, w_max]`` range
        (:mod:`imclib.mapping`).
    weight_percentile : float
        ``naive`` map only: ``w_max`` is this percentile of ``|w|`` (100 = max, no
        clipping); weights beyond it are clipped, and the clipped fraction is reported.
    input_sum : {"digital", "reference"}
        How ``sum(x)`` is obtained for the offset mapping: computed digitally, or read from
        a reference column of cells at ``G_max`` in every array (which then holds
        ``cols - 1`` weight columns).
    scenario : {"per_tile", "reused"}
        ``per_tile``: one array per tile, each with its own static deviations;
        ``reused``: one physical array reprogrammed for every tile, so its cell-specific
        deviations repeat in every tile.
    input_percentile : float
        DAC full scale ``x_max`` of a layer: this percentile of ``|x|`` over calibration
        inputs (:mod:`imclib.deploy`); larger inputs clip (see :attr:`clips_inputs`).
    adc_calibration : {"signal", "worst_case"}
        ``signal``: the known common-mode current is subtracted before the ADC and the ADC
        full scale is the ``adc_percentile`` of the signal's partial currents per column
        on calibration inputs; ``worst_case`` (naive): nothing is subtracted and the full
        scale is the largest current a tile can carry, ``rows * v_read * G_max``.
        ``periphery.adc_range``, when given, sets the full scale in both.
    adc_percentile : float
        Percentile of ``|I|`` (partial currents per physical column) taken as ADC full scale.
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
    weight_map: str = "calibrated"
    weight_percentile: float = 100.0
    input_sum: str = "digital"
    scenario: str = "per_tile"
    input_percentile: float = defaults.INPUT_PERCENTILE
    adc_calibration: str = "signal"
    adc_percentile: float = defaults.ADC_PERCENTILE
    nonideal: Nonidealities = field(default_factory=Nonidealities.typical)
    periphery: Periphery = field(default_factory=lambda: Periphery(
        dac_bits=defaults.DAC_BITS, adc_bits=defaults.ADC_BITS, sense_noise=defaults.SENSE_NOISE_A))
    wires: WireParasitics = field(default_factory=WireParasitics)
    solver: SolverOptions = field(default_factory=SolverOptions)

    def __post_init__(self):
        _validate.instance("cell", self.cell, CellLevels)
        _validate.boolean("quantize", self.quantize)
        for name in ("rows", "cols"):
            _validate.integer_in_range(name, getattr(self, name), 1, ARRAY_SIDE_MAX)
        _validate.in_range("v_read", self.v_read, V_READ_RANGE_V[0], V_READ_RANGE_V[1], "V")
        _validate.choice("mapping", self.mapping, MAPPINGS)
        _validate.choice("scale", self.scale, SCALES)
        _validate.choice("weight_map", self.weight_map, WEIGHT_MAPS)
        _validate.in_range("weight_percentile", self.weight_percentile, 50.0, 100.0)
        _validate.in_range("input_percentile", self.input_percentile, 50.0, 100.0)
        _validate.choice("adc_calibration", self.adc_calibration, ADC_CALIBRATIONS)
        _validate.in_range("adc_percentile", self.adc_percentile, 50.0, 100.0)
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
        cell = self.cell
        if self.nonideal.bias_dependence and cell.n_states * cell.n_junctions > BIAS_LEVELS_MAX:
            raise ValueError(
                f"cell.n_states must be <= {_largest_tabulated(cell.kind)} for kind={cell.kind!r} with "
                f"bias_dependence=True (levels x junctions <= {BIAS_LEVELS_MAX}, the cost of tabulating the "
                f"cell), got n_states={cell.n_states} ({cell.n_junctions} junctions)"
            )
        if not self.quantize and level_effects:
            raise ValueError(
                "rp_error, tmr_error, bias_dependence and decode_as_uniform act on a level "
                "set: they need quantize=True"
            )

    @classmethod
    def ideal(cls, rows: int = defaults.ARRAY_ROWS, cols: int = defaults.ARRAY_COLS) -> "CrossbarConfig":
        """The ideal limit: uniform analog cells, no quantization, no nonidealities, ideal
        converters. Its MVM equals ``x @ W`` to float precision on any input, also inputs
        beyond the calibrated DAC full scale: analog cells without a DAC clip nothing
        (:attr:`clips_inputs`), so a deployed network equals the float network."""
        return cls(
            cell=CellLevels(2, "uniform", MTJ()),
            quantize=False,
            rows=rows,
            cols=cols,
            nonideal=Nonidealities(),
            input_percentile=100.0,
            periphery=Periphery(),
        )

    @property
    def clips_inputs(self) -> bool:
        """Whether inputs beyond the DAC full scale ``x_max`` clip
        (:meth:`imclib.layer.ProgrammedLayer.applied_inputs`).

        They do, except for analog cells (``quantize=False``, hence no bias dependence:
        linear at any voltage) read without a DAC (``periphery.dac_bits=None``). Then
        ``x_max`` only sets the volts per input unit, ``s = v_read / x_max``: an input beyond
        it drives its row above ``v_read`` and is read as exactly as any other. That is the
        ideal limit (:meth:`ideal`), whose driver has no voltage limit. A real driver's
        range is modelled with a DAC (``dac_bits``), which clips. Quantized cells always
        clip: they model junction stacks, read at ``v_read`` at most (read disturb and
        breakdown bound it, :func:`imclib.cells.stack_physics`; bias-dependent levels are
        tabulated up to ``v_read`` only). No study deploys analog cells without a DAC, so
        this exception changes none of their numbers.
        """
        return self.quantize or self.periphery.dac_bits is not None

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


def _largest_tabulated(kind: str) -> int:
    """Largest N of ``kind`` whose levels x junctions is within :data:`BIAS_LEVELS_MAX`."""
    sizes = (2**bits for bits in range(1, 13)) if kind == "binary" else range(2, BIAS_LEVELS_MAX + 1)
    return max(n for n in sizes if n * CellLevels(n, kind).n_junctions <= BIAS_LEVELS_MAX)
