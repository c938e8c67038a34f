"""Energy, latency and area of tiled crossbar layers, to first order.

The cost is computed from the same programmed layer (:class:`~imclib.layer.ProgrammedLayer`)
and inputs the accuracy comes from, so accuracy and cost always describe the same hardware.
Everything the model reads from a layer passes through one adapter, :func:`layer_hardware`.
Per input and layer (constants in :mod:`imclib.defaults`, each with its source):

Array read (joules)
    ``E_read = t_read sum_i V_i^2 sum_j G_ij(V_i)`` over every physical column (weight,
    padding and reference columns), with the programmed conductances (static deviations
    included) and the actual row voltages; with bias-dependent cells ``G_ij(V_i)`` is the
    actual level curve at ``V_i``. Behind resistive wires the ideal-wire value is reported:
    an upper bound on cell plus wire dissipation, since at fixed source voltages the power a
    resistive network dissipates does not increase when a resistance grows (Rayleigh
    monotonicity).
Row drive
    ``E_drive = C_line sum_i V_i^2`` with ``C_line`` = line capacitance per cell x cells the
    input's row lines cross (every physical column): the charge that sets the row lines to
    their voltages once per read.
DAC
    ``E_DAC = FOM_DAC 2^d`` per conversion of a ``d``-bit input DAC: ``n_in`` conversions per
    input when every tile has its own array (one DAC per input row, its line buffered to every
    column tile), ``n_arrays rows`` when one array reads the tiles one after the other. No DAC
    (``dac_bits=None``) costs nothing. ``FOM_DAC`` defaults to :data:`DAC_FOM_J` (an
    assumption, see there).
ADC
    ``E_ADC = FOM 2^b`` per conversion (Walden figure of merit, :data:`ADC_SURVEY_FOM_J` by
    default); every array converts each of its ``cols`` columns once per input, so a layer
    makes ``n_arrays cols`` conversions (reference columns included). An ideal ADC
    (``adc_bits=None``, as the accuracy path allows) is costed at
    :data:`imclib.defaults.COST_ADC_BITS` bits; the table says so.
Common-mode current
    Where the common-mode current is subtracted before the ADC by a current source, that
    source carries ``I_cm = sum_i V_i G_cm`` per column from a supply at ``v_read`` during
    ``t_read``: ``E_cm = v_read t_read n_physical G_cm sum_i V_i``.
Digital
    ``(row_blocks - 1) n_physical`` additions (partial sums over row blocks), one
    multiplication per output (column scale ``a/s``), and the offset term: ``b sum(x)`` costs
    ``n_in - 1`` additions for ``sum(x)`` (digital) plus one multiplication and one addition per
    output (digital or reference column); the differential mapping costs one subtraction per
    output. 32-bit integer operations at 45 nm.
Latency (seconds)
    ``per_tile``: every array reads at once, ``t_read + t_ADC`` per layer; ``reused``: one
    array reads the ``n_arrays`` tiles one after the other, ``n_arrays (t_read + t_ADC)``.
    Digital work is taken as pipelined behind the reads (no latency); layers run in sequence.
Area (square metres)
    Per built array (``n_arrays`` for ``per_tile``, 1 for ``reused``): ``rows cols`` cells of
    ``n_junctions`` cross-point junctions (4 F^2 each), one row driver per row, one ADC per
    column; plus one accumulator (adder) per physical column and one multiplier per output.

Left out (first order): reprogramming energy and time of a reused array (a write cost),
sense-amplifier bias power, leakage, control logic, buffers and data
movement between layers, wire capacitance of the columns (held at virtual ground), and any
pipelining of layers. Constants come from different nodes (ADC energy from the survey's
best SAR, ADC time and area 90 nm, digital and cells 45 nm) and are not scaled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from . import _validate, defaults
from .layer import ProgrammedLayer
from .network import hardware_matmul

ADC_SURVEY_FOM_J = 2.2e-15
"""ADC energy per conversion step (joules), Walden figure of merit ``P / (2^ENOB f_s)``:
2.2 fJ/conversion-step of the 10/12-bit SAR ADC of Harpe, Cantatore and van Roermund
(ISSCC 2013), the best Walden FOM of B. E. Jonsson's ADC survey in its spring-2013 update
(converterpassion.wordpress.com, 2013-04-14, 4,057 data points from 1974 to Q1-2013). An
8-bit conversion then costs ``2.2 fJ x 2^8 = 0.56 pJ``, inside the 0.1-2 pJ of current SAR
ADCs. Assumption, stated: B. Murmann's "ADC Performance Survey 1997-2024" could not be read
with this project's search tools, so its envelope is not used; the Walden FOM (not the
Schreier FOM) is used because the cost is energy per conversion at a given resolution."""
DAC_FOM_J = ADC_SURVEY_FOM_J
"""Input DAC energy per conversion step (joules): no sourced DAC survey figure was found, so a
``d``-bit DAC conversion is assumed to cost as much as a ``d``-bit ADC conversion
(``FOM 2^d``), an upper bound in the sense that a SAR ADC switches its own ``d``-bit
capacitive DAC ``d`` times per conversion."""


@dataclass(frozen=True)
class Technology:
    """Circuit and technology constants of the cost model (SI units).

    Parameters
    ----------
    t_read : float
        Integration time of one array read (seconds), > 0.
    adc_fom : float
        ADC energy per conversion step (joules), Walden FOM; a conversion costs ``FOM 2^b``.
    dac_fom : float
        Input DAC energy per conversion step (joules), >= 0; a conversion costs ``FOM 2^d``.
    adc_time : float
        Time of one ADC conversion (seconds).
    adc_area : float
        Area of one ADC (square metres).
    ideal_adc_bits : int
        Bits at which an ideal ADC (``adc_bits=None``) is costed.
    line_capacitance : float
        Row-line capacitance per cell crossed (farads).
    e_add, e_mult : float
        Energy of one digital addition, multiplication (joules).
    adder_area, multiplier_area : float
        Area of one digital adder, multiplier (square metres).
    feature_size : float
        F (metres) for the footprints given in F^2.
    cell_area_f2 : float
        Footprint of one junction (F^2).
    driver_area_f2 : float
        Footprint of one row driver (F^2).
    """

    t_read: float = defaults.T_READ_S
    adc_fom: float = ADC_SURVEY_FOM_J
    dac_fom: float = DAC_FOM_J
    adc_time: float = defaults.ADC_CONVERSION_TIME_S
    adc_area: float = defaults.ADC_AREA_M2
    ideal_adc_bits: int = defaults.COST_ADC_BITS
    line_capacitance: float = defaults.LINE_CAPACITANCE_PER_CELL_F
    e_add: float = defaults.E_ADD_J
    e_mult: float = defaults.E_MULT_J
    adder_area: float = defaults.ADDER_AREA_M2
    multiplier_area: float = defaults.MULTIPLIER_AREA_M2
    feature_size: float = defaults.FEATURE_SIZE_M
    cell_area_f2: float = defaults.CELL_AREA_F2_PER_JUNCTION
    driver_area_f2: float = defaults.ROW_DRIVER_AREA_F2

    def __post_init__(self):
        for name in ("t_read", "adc_fom", "adc_time", "adc_area", "e_add", "e_mult", "adder_area",
                     "multiplier_area", "feature_size", "cell_area_f2"):
            _validate.positive(name, getattr(self, name))
        _validate.non_negative("line_capacitance", self.line_capacitance)
        _validate.non_negative("dac_fom", self.dac_fom)
        _validate.non_negative("driver_area_f2", self.driver_area_f2)
        _validate.optional_bits("ideal_adc_bits", self.ideal_adc_bits)
        if self.ideal_adc_bits is None:
            raise ValueError("ideal_adc_bits must be an integer in [1, 32], got None")

    def with_(self, **changes) -> "Technology":
        """A copy with ``changes`` applied (validated)."""
        return Technology(**{**self.__dict__, **changes})


@dataclass(frozen=True)
class LayerHardware:
    """What the cost model needs from one programmed layer (built by :func:`layer_hardware`).

    Attributes
    ----------
    n_in, n_out : int
        Logical inputs and outputs.
    rows, cols : int
        Size of one physical array.
    row_blocks, n_physical : int
        Arrays stacked along the inputs; physical columns (all column tiles).
    v_read : float
        Full-scale row voltage (volts).
    adc_bits : int or None
        ADC resolution of the configuration (None: ideal ADC).
    dac_bits : int or None
        Input DAC resolution (None: no DAC).
    scenario, mapping, input_sum : str
        As in :class:`~imclib.config.CrossbarConfig`.
    n_junctions : int
        Junctions per cell.
    drive : callable
        ``drive(x, absolute) -> (3,)`` for inputs ``x`` (batch, n_in): the mean over the
        batch of ``sum_i V_i^2 sum_j G_ij(V_i)`` (watts), of ``sum_i V_i^2`` (V^2) and, when
        ``absolute``, of ``sum_i |V_i|`` (volts; else 0), over the driven rows (padding rows
        carry no voltage).
    common_mode_conductance : float or None
        ``G_cm`` (siemens per row) of a common-mode current subtracted before the ADC by a
        current source; None where no such source is used.
    """

    n_in: int
    n_out: int
    rows: int
    cols: int
    row_blocks: int
    n_physical: int
    v_read: float
    adc_bits: int | None
    dac_bits: int | None
    scenario: str
    mapping: str
    input_sum: str
    n_junctions: int
    drive: Callable[[np.ndarray, bool], np.ndarray]
    common_mode_conductance: float | None = None

    @property
    def n_arrays(self) -> int:
        """Tiles of the layer, ``row_blocks x n_physical / cols``."""
        return self.row_blocks * self.n_physical // self.cols


_CHUNK_ROWS = 1024  # inputs per chunk of the polynomial sums (small temporaries)
FIT_TOLERANCE = 1e-6
"""Largest relative error allowed when the level curves are fitted by a polynomial in V^2."""


def _level_polynomial(layer: ProgrammedLayer, max_terms: int = 6) -> np.ndarray | None:
    """Coefficients ``a_qk`` (siemens) of ``G_q(V) = sum_k a_qk (V / v_read)^(2k)`` fitted by
    least squares on the layer's level table over ``|V| <= v_read``, with the fewest terms
    whose largest relative error is below :data:`FIT_TOLERANCE`; None if no fit reaches it."""
    table = layer.levels.table
    nodes = int(round(layer.config.v_read * layer.levels.per_volt)) + 1
    u = np.square(np.arange(nodes) / max(nodes - 1, 1))
    levels = table[:nodes]
    for terms in range(1, max_terms + 1):
        basis = np.vander(u, terms, increasing=True)
        coefficients = np.linalg.lstsq(basis, levels, rcond=None)[0]
        if np.max(np.abs(basis @ coefficients - levels) / levels) < FIT_TOLERANCE:
            return coefficients.T
    return None


def _drive(layer: ProgrammedLayer) -> Callable[[np.ndarray, bool], np.ndarray]:
    """The row-drive sums of :attr:`LayerHardware.drive` for a programmed layer.

    Row voltages as the layer applies them: ``V = s dac(x)``, ``s = v_read / x_max`` with the
    DAC full scale ``x_max`` stored on the layer (:meth:`ProgrammedLayer.applied_inputs`). Linear cells: ``sum_i V_i^2 R_i`` with
    ``R_i = sum_j G_ij`` (programmed conductances, static deviations included).
    Bias-dependent cells: ``sum_j G_{q_ij}(V_i) D_ij = sum_q G_q(V_i) C_iq`` with
    ``C_iq = sum_j [q_ij = q] D_ij``; the actual level curves of the layer's level table
    are fitted by a short polynomial in ``V^2`` (:func:`_level_polynomial`, relative error
    below :data:`FIT_TOLERANCE`), so that ``sum_i V_i^2 G(V_i) = sum_k sum_i V_i^(2k+2) c_ik``
    with ``c_ik = sum_q C_iq a_qk``; without such a fit the table is looked up at every
    non-zero input (exact, slower).
    """
    config, n_in = layer.config, layer.n_in
    polynomial = None
    if layer.levels is None:
        row_sums = layer.conductance[:n_in].sum(axis=1)
    else:
        levels = layer.levels.table.shape[1]
        state, variation = layer.state[:n_in], layer.variation[:n_in]
        counts = np.stack([np.where(state == q, variation, 0.0).sum(axis=1) for q in range(levels)], axis=1)
        coefficients = _level_polynomial(layer)
        if coefficients is not None:
            polynomial = np.ascontiguousarray((counts @ coefficients).T)  # (terms, n_in), siemens

    def drive(x: np.ndarray, absolute: bool = False) -> np.ndarray:
        x_max = layer.input_range
        applied = layer.applied_inputs(x)
        volts_per_unit = config.v_read / x_max
        sums = np.zeros(3)
        squares = np.einsum("bi,bi->i", applied, applied)  # sum over the batch of x_i^2
        sums[1] = squares.sum()
        if layer.levels is None:
            sums[0] = squares @ row_sums
        elif polynomial is not None:
            sums[0] = squares @ polynomial[0]
            for start in range(0, x.shape[0] if len(polynomial) > 1 else 0, _CHUNK_ROWS):
                part = applied[start : start + _CHUNK_ROWS]
                ratio = np.square(part * (1.0 / x_max))  # (V / v_read)^2
                power = np.square(part)
                for coefficient in polynomial[1:]:
                    power *= ratio
                    sums[0] += power.sum(axis=0) @ coefficient
        else:
            flat = np.flatnonzero(applied)
            row = flat % n_in
            values = applied.ravel()[flat]
            index, fraction = layer.levels.locate(values * volts_per_unit)
            conductance = np.zeros(values.shape)
            for q in range(counts.shape[1]):
                conductance += layer.levels.level(index, fraction, q) * counts[row, q]
            sums[0] = np.square(values) @ conductance
        sums[:2] *= volts_per_unit**2
        if absolute:
            sums[2] = volts_per_unit * np.abs(applied).sum()
        return sums / x.shape[0]

    return drive


def layer_hardware(layer: ProgrammedLayer) -> LayerHardware:
    """The adapter: everything the cost model reads from a programmed layer and its config.

    Reads the config (array size, converters, scenario, mapping, cell) and the programmed
    layer (shape, layout, conductances or level table, input scaling); see :func:`_drive`.
    """
    if not isinstance(layer, ProgrammedLayer):
        raise ValueError(f"layers must hold ProgrammedLayer objects, got {type(layer).__name__}")
    config = layer.config
    return LayerHardware(
        n_in=layer.n_in, n_out=layer.n_out, rows=config.rows, cols=config.cols, row_blocks=layer.row_blocks,
        n_physical=layer.layout.n_physical, v_read=config.v_read, adc_bits=config.periphery.adc_bits,
        dac_bits=config.periphery.dac_bits, scenario=config.scenario, mapping=config.mapping, input_sum=config.input_sum,
        n_junctions=config.cell.n_junctions, drive=_drive(layer),
        common_mode_conductance=_common_mode_conductance(layer),
    )


def _common_mode_conductance(layer: ProgrammedLayer) -> float | None:
    """Mean conductance (siemens, over the physical columns) of the common-mode current
    subtracted before the ADC: ``G0_j`` of the offset current, or ``r_j G_max`` of the
    reference-column mirror (``I = r_j I_ref = G0_j sum_i V_i`` on nominal cells); None
    when nothing is subtracted."""
    subtracted = layer.common_mode + layer.mirror * layer.weight_map.levels[-1]
    return float(subtracted.mean()) if np.any(subtracted) else None


def operation_counts(hardware: LayerHardware, technology: Technology | None = None) -> dict:
    """Counts per input of one layer: arrays, ADC and DAC conversions, sequential reads,
    converters and digital operations (see the module docstring)."""
    technology = technology or Technology()
    outputs = hardware.n_out
    adds = (hardware.row_blocks - 1) * hardware.n_physical
    mults = outputs  # column scale a/s
    if hardware.mapping == "differential":
        adds += outputs
    else:
        adds += outputs
        mults += outputs
        if hardware.input_sum == "digital":
            adds += hardware.n_in - 1
    per_tile = hardware.scenario == "per_tile"
    built = hardware.n_arrays if per_tile else 1
    return {
        "arrays": hardware.n_arrays,
        "arrays_built": built,
        "conversions": hardware.n_arrays * hardware.cols,
        "adcs": built * hardware.cols,
        "sequential_reads": 1 if per_tile else hardware.n_arrays,
        "dac_conversions": 0 if hardware.dac_bits is None else (hardware.n_in if per_tile else hardware.n_arrays * hardware.rows),
        "adc_bits": hardware.adc_bits if hardware.adc_bits is not None else technology.ideal_adc_bits,
        "adc_assumed": hardware.adc_bits is None,
        "adds": adds,
        "mults": mults,
    }


def converter_energy(hardware: LayerHardware, technology: Technology | None = None) -> dict:
    """ADC and DAC energy of one layer per input (joules), ``{"ADC": ..., "DAC": ...}``:
    ``conversions FOM 2^bits`` each (see the module docstring). It depends on the
    configuration and the layer's shape only, not on the data, so it bounds a
    configuration's energy from below before anything is simulated."""
    t = technology or Technology()
    counts = operation_counts(hardware, t)
    return {"ADC": counts["conversions"] * t.adc_fom * 2.0 ** counts["adc_bits"],
            "DAC": counts["dac_conversions"] * t.dac_fom * 2.0 ** (hardware.dac_bits or 0)}


COLUMNS = ["layer", "component", "energy_J", "latency_s", "area_m2", "adc_bits", "adc_assumed"]


def _layer_rows(hardware: LayerHardware, x, technology: Technology) -> list[tuple]:
    """``(component, energy J, latency s, area m^2, adc_bits, adc_assumed)`` per component."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != hardware.n_in or x.shape[0] == 0:
        raise ValueError(f"x must have shape (batch >= 1, {hardware.n_in}), got {x.shape}")
    t = technology
    counts = operation_counts(hardware, t)
    sums = hardware.drive(x, hardware.common_mode_conductance is not None)
    if not np.all(np.isfinite(sums)):  # a NaN or inf input propagates into its sums
        raise ValueError("x must contain only finite values (no NaN or inf)")
    power, square_sum, plain_sum = (float(v) for v in sums)
    f2 = t.feature_size**2
    built, reads = counts["arrays_built"], counts["sequential_reads"]
    converters = converter_energy(hardware, t)
    rows = [
        ("array read", t.t_read * power, reads * t.t_read, 0.0),
        ("row drive", t.line_capacitance * hardware.n_physical * square_sum, 0.0, 0.0),
        ("DAC", converters["DAC"], 0.0, 0.0),
        ("ADC", converters["ADC"], reads * t.adc_time, counts["adcs"] * t.adc_area),
        ("digital", counts["adds"] * t.e_add + counts["mults"] * t.e_mult, 0.0,
         hardware.n_physical * t.adder_area + hardware.n_out * t.multiplier_area),
        ("cells", 0.0, 0.0, built * hardware.rows * hardware.cols * hardware.n_junctions * t.cell_area_f2 * f2),
        ("row drivers", 0.0, 0.0, built * hardware.rows * t.driver_area_f2 * f2),
    ]
    if hardware.common_mode_conductance is not None:
        energy = hardware.v_read * t.t_read * hardware.n_physical * hardware.common_mode_conductance * plain_sum
        rows.insert(3, ("common-mode current", energy, 0.0, 0.0))
    return [(*row, counts["adc_bits"], counts["adc_assumed"]) for row in rows]


def layer_cost(hardware: LayerHardware, x, technology: Technology | None = None) -> pd.DataFrame:
    """Energy (J per input, mean over ``x``), latency (s) and area (m^2) of one layer by component.

    Parameters
    ----------
    hardware : LayerHardware
        From :func:`layer_hardware`.
    x : array_like, shape (batch, n_in)
        The layer's inputs (input units, as passed to ``ProgrammedLayer.mvm``).
    technology : Technology, optional

    Returns
    -------
    DataFrame
        Columns ``component``, ``energy_J``, ``latency_s``, ``area_m2``, ``adc_bits``,
        ``adc_assumed`` (see :func:`cost_table`).
    """
    return pd.DataFrame(_layer_rows(hardware, x, technology or Technology()), columns=COLUMNS[1:])


def cost_table(layers: Sequence[ProgrammedLayer], x, technology: Technology | None = None) -> pd.DataFrame:
    """Energy, latency and area per layer and component, and the total per inference.

    Parameters
    ----------
    layers : sequence of ProgrammedLayer
        A programmed network (:func:`imclib.network.program_network`) or one layer.
    x : array_like, or list of array_like
        Each layer's inputs, shape (batch, n_in of that layer), as a list (e.g. from
        :func:`network_inputs`); a single array is accepted for a single layer.
    technology : Technology, optional

    Returns
    -------
    DataFrame
        Tidy: ``layer`` (``"layer 1"``, ... and ``"total"``), ``component``, ``energy_J``
        (joules per inference, mean over the batch), ``latency_s``, ``area_m2``,
        ``adc_bits`` (bits costed) and ``adc_assumed`` (ideal ADC costed at
        ``technology.ideal_adc_bits``). The ``total`` rows sum each component over layers
        (layers run in sequence, every layer's hardware is built); the row with component
        ``"total"`` sums everything.
    """
    technology = technology or Technology()
    if isinstance(layers, ProgrammedLayer):
        layers = [layers]
    if not len(layers):
        raise ValueError("layers must hold at least one ProgrammedLayer")
    inputs = list(x) if isinstance(x, (list, tuple)) else [x]
    if len(inputs) != len(layers):
        raise ValueError(f"x must give one input array per layer ({len(layers)} layers), e.g. from network_inputs")
    rows = [(f"layer {i + 1}", *row) for i, (layer, inp) in enumerate(zip(layers, inputs))
            for row in _layer_rows(layer_hardware(layer), inp, technology)]
    bits, assumed = max(row[5] for row in rows), any(row[6] for row in rows)
    totals: dict[str, np.ndarray] = {}
    for row in rows:
        totals[row[1]] = totals.get(row[1], 0.0) + np.array(row[2:5])
    rows += [("total", component, *values, bits, assumed) for component, values in totals.items()]
    rows.append(("total", "total", *sum(totals.values()), bits, assumed))
    return pd.DataFrame(rows, columns=COLUMNS)


def efficiency(table: pd.DataFrame, layers: Sequence[ProgrammedLayer]) -> dict:
    """Per-inference totals and derived figures of merit from a :func:`cost_table`.

    ``ops = sum over layers of 2 n_in n_out`` (a multiply-accumulate counts as two
    operations); ``TOPS_per_W = ops / E / 1e12``; ``inferences_per_s_per_mm2 =
    1 / (latency x area in mm^2)`` (one inference at a time, no pipelining).
    """
    if isinstance(layers, ProgrammedLayer):
        layers = [layers]
    total = table[(table.layer == "total") & (table.component == "total")].iloc[0]
    ops = float(sum(2 * layer.n_in * layer.n_out for layer in layers))
    return {
        "energy_J": float(total.energy_J),
        "latency_s": float(total.latency_s),
        "area_m2": float(total.area_m2),
        "ops": ops,
        "TOPS_per_W": ops / float(total.energy_J) / 1e12,
        "inferences_per_s_per_mm2": 1.0 / (float(total.latency_s) * float(total.area_m2) * 1e6),
    }


def network_inputs(model, layers: Sequence[ProgrammedLayer], x, rng=None) -> tuple[np.ndarray, list[np.ndarray]]:
    """Run ``model`` on the programmed ``layers`` and keep what each layer was fed.

    Returns ``(logits, inputs)``, ``inputs[i]`` of shape (batch, n_in of layer i): the
    activations the hardware actually produced, so the cost describes the same inference as
    the accuracy.
    """
    read = hardware_matmul(list(layers), rng)
    inputs: list[np.ndarray] = []

    def matmul(index: int, activations: np.ndarray, weights: np.ndarray) -> np.ndarray:
        inputs.append(activations)
        return read(index, activations, weights)

    return model.forward(np.asarray(x, dtype=np.float64), matmul=matmul), inputs
