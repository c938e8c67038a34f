"""A layer tiled onto small arrays: programming, simulated MVM and decode.

A weight matrix (n_in, n_out) is cut into ``ceil(n_in / k)`` row blocks of ``k`` rows
(zero-padded) and into physical columns grouped ``m`` to an array. Every array of a row
block yields partial column currents; these are optionally digitized (ADC) and summed
digitally, then decoded with the nominal map (:mod:`imclib.mapping`):
``y_j = (a_j / s) I_j + b_j sum_i x_i``.

Converter ranges are fixed hardware, stored with the programmed layer, so no output row
depends on the other rows of its batch. The DAC full scale ``x_max`` (input units) maps to
``v_read``: ``V_i = s x_i``, ``s = v_read / x_max``; inputs beyond it clip (``[0, x_max]``
for a unipolar DAC, ``[-x_max, x_max]`` for a bipolar one). Ranges come from calibration
inputs (:mod:`imclib.deploy`) or are given to :func:`program_layer`.

Common-mode subtraction (``adc_calibration="signal"``). The offset mapping puts ``w = 0``
at ``G0_j = -b_j / a_j``, so most of a column current, ``G0_j sum_i V_i``, carries no
information. It is removed before the ADC, so that the converter's codes span the signal
``I'_j = sum_i V_i (G_ij - G0_j)``:

* ``input_sum="digital"``: a programmable offset current per column,
  ``I_off_j = G0_j s sum_i x_i``, set from the digital input sum the decode needs anyway
  (a current-steering DAC; modelled as exact, it carries no cell variation);
* ``input_sum="reference"``: the array's reference column (cells at ``G_max``, with their
  own programming variation and bias dependence) drives a current mirror of ratio
  ``G0_j / G_max`` per column, ``I'_j = I_j - (G0_j / G_max) I_ref``.

Both are linear in the currents of one array, so for linear cells they are folded into the
read matrix (``transfer`` holds ``T_ij - G0_j`` or ``T_ij - r_j T_i,ref``); bias-dependent
cells subtract them from the solved currents. The differential mapping subtracts
``G_min sum_i V_i`` from both columns of a pair (it cancels in ``I+ - I-``). The decode
then reads ``y_j = (a_j / s) I'_j + (b_j + a_j G0_j) sum_i x_i`` whose last term vanishes
for the offset mapping. The ADC full scale is then a property of the signal (a percentile
of its partial currents on calibration inputs), per physical column.

Without an ADC the digitization is the identity and the decode is linear, so the partial
sums are accumulated inside one matmul (exact); for linear cells without noise it is one GEMM
of the DAC-applied inputs with ``s T`` (the scale folded into the read matrix, so no voltage
array is formed). With an ADC the partial sums are never
stored: :func:`imclib.kernels.read` computes them, adds the noise, digitizes and sums them
in one compiled pass (linear or bias-dependent cells, ideal wires or transfer matrices).
Read noise is Gaussian per cell and read, so a column's noise is Gaussian with variance
``sum_i V_i^2 (sigma G_ij)^2``: it is drawn once per conversion, with the sense noise, from
a counter-based stream keyed by one number drawn from the read's generator
(:func:`imclib.kernels.read_normals`), so that a read does not depend on threads or chunks.

Wire resistance (``config.wires``) is solved by nodal analysis (:mod:`imclib.circuit`).
With linear cells every array is a fixed linear map ``I = V @ T`` (its transfer matrix,
siemens); the transfer matrices of all arrays are computed once when the layer is
programmed, laid out like ``conductance`` (:attr:`ProgrammedLayer.transfer`), and every
read uses them in place of the conductances: exact, and as fast as ideal wires. With
bias-dependent cells each read solves the nonlinear network of every array
(:func:`imclib.circuit.nonlinear_column_currents`, batched over arrays and inputs).
Read noise is that of the cells (the subtraction's own noise is not modelled). Read noise with wires is approximated to first order in the wire resistance: its variance
kernel keeps the cell conductances and the row voltages, ``sum_i V_i^2 (sigma G_ij)^2``
(the wires change the mean currents exactly, the small noise term only to zeroth order).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np

from . import _memo, _validate, kernels
from .array import LevelTable, bias_dependent_currents, column_currents, level_masks
from .circuit import nonlinear_column_currents, transfer_matrix
from .config import CrossbarConfig
from .mapping import WeightMap, map_weights
from .nonidealities import draw_stuck, draw_variation
from .periphery import adc_constants, dac, scale_codes, warn_saturation

# Work per chunk of inputs: of 1, 4, 16 and 64 MiB, 16 MiB was fastest (ADC: 25 %, bias-dependent
# cells: 8 % faster than 64 MiB; benchmarks/bench_inference.py). Nonlinear solves take larger
# chunks, so that every array's factorization serves many inputs.
_CHUNK_BYTES = 16 * 2**20
_SOLVE_BYTES = 64 * 2**20
_SOLVE_WORK = 16  # float64 work arrays per cell of one nonlinear solve (peak measured: about 10)
# Calibrated ADC ranges saturate on purpose (1 - adc_percentile of the calibration reads);
# warn only when far more reads saturate than calibration allowed for.
_SATURATION_WARNING = 0.01
# Inputs per pass of the ADC calibration's streaming order statistics (ProgrammedLayer.signal_largest):
# two groups of the read kernel (one per thread of two), 13 MB of partial currents for 196 x 256 arrays.
_LARGEST_INPUTS = 2 * kernels.GROUP


def _to_tiles(matrix: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """(R rows, C cols) layout -> one ``rows x cols`` array per tile, shape (R, C, rows, cols)."""
    blocks, columns = matrix.shape[0] // rows, matrix.shape[1] // cols
    return matrix.reshape(blocks, rows, columns, cols).swapaxes(1, 2)


def _from_tiles(tiles: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_to_tiles`."""
    blocks, columns, rows, cols = tiles.shape
    return tiles.swapaxes(1, 2).reshape(blocks * rows, columns * cols)


@dataclass(frozen=True)
class ColumnLayout:
    """Where each output column's cells sit among the physical columns.

    Attributes
    ----------
    n_physical : int
        Physical columns, ``tiles_per_row_block * cols``.
    weight : ndarray of int, shape (n_out,) or (n_out, 2)
        Physical column of each output (``G+``, ``G-`` for the differential mapping).
    reference : ndarray of int, shape (column_tiles,)
        Reference column of every array (empty unless ``input_sum="reference"``).
    tile_of_output : ndarray of int, shape (n_out,)
        Array (column tile) each output column lies in.
    """

    n_physical: int
    weight: np.ndarray
    reference: np.ndarray
    tile_of_output: np.ndarray

    @classmethod
    def build(cls, n_out: int, config: CrossbarConfig) -> "ColumnLayout":
        """Layout for ``n_out`` outputs on arrays of ``config.cols`` columns."""
        m = config.cols
        outputs = np.arange(n_out)
        if config.mapping == "differential":
            plus = 2 * outputs
            weight = np.stack([plus, plus + 1], axis=-1)
            n_tiles = -(-2 * n_out // m)
            tile = plus // m
            reference = np.empty(0, dtype=int)
        elif config.input_sum == "reference":
            tile = outputs // (m - 1)
            weight = tile * m + outputs % (m - 1)
            n_tiles = -(-n_out // (m - 1))
            reference = np.arange(n_tiles) * m + m - 1
        else:
            weight = outputs
            tile = outputs // m
            n_tiles = -(-n_out // m)
            reference = np.empty(0, dtype=int)
        return cls(n_tiles * m, weight, reference, tile)

    def column_reference(self, cols: int) -> np.ndarray:
        """The reference column of every physical column's array (int64, shape (n_physical,)),
        for arrays of ``cols`` columns; only with ``input_sum="reference"``."""
        return self.reference[np.arange(self.n_physical) // cols].astype(np.int64)


@dataclass(frozen=True)
class ProgrammedLayer:
    """A weight matrix programmed onto tiled arrays: the actual device, ready to read.

    Create with :func:`program_layer`. ``state`` / ``conductance`` / ``transfer`` are laid
    out as (padded n_in, physical columns); row block r holds rows ``r k .. r k + k - 1``.
    ``transfer`` holds every array's transfer matrix (siemens, ``I = V @ T`` per array) with
    resistive wires and linear cells; otherwise it is ``conductance`` itself. ``levels``
    tabulates the actual level curves ``G_q(|v|)`` of bias-dependent cells (None otherwise)
    over every voltage a cell can see: ``[0, v_read]``, or ``[0, 2 v_read]`` behind resistive
    wires (node potentials lie between the most negative and most positive row voltage).

    With the common-mode subtraction ``transfer`` is the read matrix with it folded in
    (see the module docstring); ``common_mode`` (siemens) and ``mirror`` (dimensionless)
    hold the subtraction per physical column, ``I'_j = I_j - common_mode_j sum_i V_i -
    mirror_j I_ref(j)``. ``input_range`` (input units) and ``input_signed`` are the DAC's
    full scale and polarity; ``adc_range`` (amperes, per physical column) the ADC's full
    scale and ``adc_signed`` its polarity. ``correction`` (3, n_out) holds each output
    column's digital calibration ``(g_j, o_j, c_j)`` fitted after programming
    (:func:`imclib.deploy.fit_columns`), applied to every decoded output as
    ``(y_j - o_j - c_j sum(x)) / g_j``; None reads without it.
    """

    config: CrossbarConfig
    n_in: int
    n_out: int
    weight_map: WeightMap
    layout: ColumnLayout
    state: np.ndarray | None
    variation: np.ndarray
    conductance: np.ndarray
    transfer: np.ndarray
    levels: LevelTable | None
    common_mode: np.ndarray
    mirror: np.ndarray
    input_range: float
    input_signed: bool
    adc_range: np.ndarray
    adc_signed: bool
    correction: np.ndarray | None = None

    @property
    def row_blocks(self) -> int:
        """Arrays stacked along the inputs, ``ceil(n_in / rows)``."""
        return self.conductance.shape[0] // self.config.rows

    @property
    def n_arrays(self) -> int:
        """Physical arrays (tiles) the layer occupies."""
        return self.row_blocks * self.layout.n_physical // self.config.cols

    def applied_inputs(self, x: np.ndarray) -> np.ndarray:
        """Inputs as the DAC applies them (input units, float64): clipped to its full scale
        ``[0, x_max]`` or ``[-x_max, x_max]``, then rounded to its codes when
        ``dac_bits`` is set; ``x`` itself (as float64) when ``config.clips_inputs`` is False
        or no entry lies beyond the full scale. ``x`` float64, or float32 (converted once,
        exactly)."""
        bits = self.config.periphery.dac_bits
        if self.config.clips_inputs and bits is not None:
            return dac(x, bits, self.input_range, self.input_signed)
        if not self.config.clips_inputs or not x.size:
            return x.astype(np.float64, copy=False)
        low = -self.input_range if self.input_signed else 0.0
        applied, beyond = kernels.in_float64(x, low, self.input_range)  # converted and range-checked in one pass
        if not beyond:  # compared in float64: nothing to clip
            return applied
        return np.clip(applied, low, self.input_range, out=None if applied is x else applied)

    def clipped_fraction(self, x: np.ndarray) -> float:
        """Fraction of the entries of ``x`` beyond the DAC full scale (clipped)."""
        if not self.config.clips_inputs:
            return 0.0
        low = -self.input_range if self.input_signed else 0.0
        return float(np.mean((x > self.input_range) | (x < low))) if x.size else 0.0

    @property
    def volts_per_unit(self) -> float:
        """``s = v_read / x_max``: volts per input unit."""
        return _validate.finite_scale("v_read / input_range", self.config.v_read, self.input_range,
                                      "the DAC full scale input_range (calibrated on the inputs, or max |inputs| in simulate_mvm) "
                                      "is too small to map to volts")

    def row_voltages(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """DAC-applied inputs, padded row voltages ``V = s x`` (volts) and ``s`` (volts per
        input unit, ``v_read / x_max``)."""
        applied = self.applied_inputs(x)
        return applied, _padded(applied, self.conductance.shape[0]) * self.volts_per_unit, self.volts_per_unit

    def subtract_common_mode(self, currents: np.ndarray, v_blocks: np.ndarray) -> np.ndarray:
        """``I'_j = I_j - common_mode_j sum_i V_i - mirror_j I_ref(j)`` per block, in place:
        ``currents`` (batch, blocks, p, amperes) of reads not folded into ``transfer``,
        ``v_blocks`` (batch, blocks, k) their row voltages (volts)."""
        if np.any(self.common_mode):
            currents -= v_blocks.sum(axis=-1, keepdims=True) * self.common_mode
        if np.any(self.mirror):
            currents -= currents[..., self.layout.column_reference(self.config.cols)] * self.mirror
        return currents

    def _block_currents(self, voltages: np.ndarray, blocks: int, power: int = 1) -> np.ndarray:
        """Noise-free currents (or, with ``power=2``, the read-noise variance kernel) per block,
        shape (batch, blocks, physical columns).

        A batch of one row is computed as two copies of it: BLAS sums a lone row with
        another kernel (matrix-vector), whose rounding differs in the last bit, and every
        row's result must not depend on its batch."""
        if voltages.shape[0] == 1:
            return self._block_currents(np.repeat(voltages, 2, axis=0), blocks, power)[:1]
        v_blocks = voltages.reshape(voltages.shape[0], blocks, -1)
        shape = (blocks, -1, self.layout.n_physical)
        if self.levels is not None:
            currents = bias_dependent_currents(v_blocks, self.levels, self.state.reshape(shape),
                                               self.variation.reshape(shape), power, self._level_masks(blocks, power))
            return self.subtract_common_mode(currents, v_blocks) if power == 1 else currents
        if power == 1:
            return column_currents(v_blocks, self.transfer.reshape(shape))
        # the variance only scales Gaussian noise: float32 (1e-7 relative) halves the matmul
        return column_currents(np.square(v_blocks, dtype=np.float32), self._noise_kernel.reshape(shape))

    @functools.cached_property
    def _masks(self) -> dict:
        return {}

    def _level_masks(self, blocks: int, power: int) -> np.ndarray:
        """Stacked level masks of bias-dependent cells (:func:`imclib.array.level_masks`),
        computed once per ``(blocks, power)``."""
        if (blocks, power) not in self._masks:
            shape = (blocks, -1, self.layout.n_physical)
            self._masks[blocks, power] = level_masks(self.state.reshape(shape), self.variation.reshape(shape),
                                                     self.levels.table.shape[1], power)
        return self._masks[blocks, power]

    @functools.cached_property
    def _noise_kernel(self) -> np.ndarray:
        """``G_ij^2`` (siemens^2) in float32, for the read-noise variance ``sum_i V_i^2 (sigma G_ij)^2``."""
        return np.square(self.conductance, dtype=np.float32)

    @functools.cached_property
    def _read_matrices(self) -> kernels.ReadMatrices:
        """:func:`read_matrices` of this layer, computed once."""
        return read_matrices(self)

    @property
    def solves_circuit(self) -> bool:
        """Whether reads solve the nonlinear network (bias-dependent cells, resistive wires)."""
        return self.config.nonideal.bias_dependence and not self.config.wires.is_ideal

    def _solved_currents(self, voltages: np.ndarray, blocks: int) -> np.ndarray:
        """Noise-free currents per block of bias-dependent cells behind resistive wires.

        Every array is solved by nodal analysis with the cell law
        ``G_ij(v) = G_{q_ij}(v) D_ij`` at its own cell voltage ``v`` (actual level curves,
        programmed state ``q_ij``, static deviation ``D_ij``), batched over a group of
        arrays and over the inputs; the group size bounds the memory.
        """
        rows, cols = self.config.rows, self.config.cols
        batch, column_tiles = voltages.shape[0], self.layout.n_physical // cols
        state = _to_tiles(self.state, rows, cols).reshape(-1, rows, cols)
        variation = _to_tiles(self.variation, rows, cols).reshape(-1, rows, cols)
        tile = np.arange(state.shape[0])
        v_blocks = voltages.reshape(batch, self.row_blocks, rows)
        target = tile if blocks > 1 else tile % column_tiles  # where each array's currents add up
        currents = np.zeros((batch, blocks * column_tiles, cols))
        group = max(1, _SOLVE_BYTES // (8 * _SOLVE_WORK * rows * cols * batch))
        for start in range(0, tile.size, group):
            part = slice(start, start + group)
            law = lambda v, part=part: self.levels.cell(v, state[part]) * variation[part]  # noqa: E731
            solved = nonlinear_column_currents(law, v_blocks[:, tile[part] // column_tiles], self.config.wires,
                                               n_cols=cols, **self.config.solver.keywords)
            np.add.at(currents, (slice(None), target[part]), solved)
        currents = currents.reshape(batch, blocks, self.layout.n_physical)
        return self.subtract_common_mode(currents, voltages.reshape(batch, blocks, -1))

    def signal_currents(self, voltages: np.ndarray, blocks: int) -> np.ndarray:
        """Noise-free column currents after the common-mode subtraction (amperes), shape
        (batch, blocks, physical columns): what reaches the ADCs."""
        if self.solves_circuit:
            return self._solved_currents(voltages, blocks)
        if blocks == self.row_blocks > 1:  # per array: the read kernel's first step
            return kernels.partial_currents(voltages, self._read_matrices)
        return self._block_currents(voltages, blocks)

    def signal_largest(self, voltages: np.ndarray, m: int) -> kernels.Largest:
        """The ``m`` largest ``|I'|`` per physical column over the row blocks and inputs of
        :meth:`signal_currents` (row voltages ``voltages``, one row per input), as a
        :class:`imclib.kernels.Largest`: per array (the read kernel's first step) a group of
        :data:`_LARGEST_INPUTS` inputs at a time into one reused buffer, so that the
        (batch, blocks, physical columns) currents are never stored; the same values as
        :meth:`signal_currents`, so the same order statistics."""
        blocks, p = self.row_blocks, self.layout.n_physical
        largest = kernels.Largest(p, m)
        if self.solves_circuit or blocks == 1:
            return largest.add(self.signal_currents(voltages, blocks))
        buffer = np.empty((min(_LARGEST_INPUTS, voltages.shape[0]), blocks, p))
        for start in range(0, voltages.shape[0], _LARGEST_INPUTS):
            part = voltages[start : start + _LARGEST_INPUTS]
            largest.add(kernels.partial_currents(part, self._read_matrices, out=buffer[: part.shape[0]]))
        return largest

    @property
    def _reads_in_one_pass(self) -> bool:
        """Whether reads go through :func:`imclib.kernels.read` (an ADC, no circuit solve)."""
        return self.config.periphery.adc_bits is not None and not self.solves_circuit

    def _chunked_read(self, applied, volts_per_unit, blocks, adc, noise) -> tuple[np.ndarray, int]:
        """Column currents summed over ``blocks``, chunk by chunk of inputs (bounded memory):
        the chunk's row voltages ``s x`` (``applied`` the DAC-applied inputs, ``s`` volts per
        unit), noise-free partial currents (:meth:`signal_currents`) and the read-noise
        variance kernel, then noise, ADC and sum (:func:`imclib.kernels.convert`)."""
        # live float64 arrays per input: about four of the partial currents, four of the inputs
        row_bytes = 8 * 4 * (blocks * self.layout.n_physical + self.conductance.shape[0])
        budget = _CHUNK_BYTES
        if self.solves_circuit:  # the solver works on every cell of at least one array
            row_bytes += 8 * _SOLVE_WORK * self.config.rows * self.config.cols
            budget = _SOLVE_BYTES
        chunk = max(1, budget // row_bytes)
        totals = np.empty((applied.shape[0], self.layout.n_physical))
        saturated = 0
        for start in range(0, applied.shape[0], chunk):
            part = _padded(applied[start : start + chunk], self.conductance.shape[0]) * volts_per_unit
            currents = self.signal_currents(part, blocks)
            if adc is None and not noise:
                totals[start : start + chunk] = currents[:, 0]
                continue
            variance = self._block_currents(part, blocks, power=2) if noise.get("read_var") else None
            totals[start : start + chunk], saturated_here = kernels.convert(currents, adc, variance=variance,
                                                                            row0=start, **noise)
            saturated += saturated_here
        return totals, saturated

    def column_currents(self, x: np.ndarray, rng=None) -> tuple[np.ndarray, np.ndarray, float]:
        """Physical column currents (amperes) after the common-mode subtraction, with read
        and sense noise, through the ADC per array and summed over row blocks.

        Returns ``(currents (batch, physical columns), applied inputs, s)``.
        """
        rng = _validate.generator(rng)
        adc_bits, p = self.config.periphery.adc_bits, self.layout.n_physical
        blocks = self.row_blocks if adc_bits is not None else 1
        noise = _read_noise(self, blocks, rng)
        applied, volts_per_unit = self.applied_inputs(x), self.volts_per_unit
        if adc_bits is None and not noise and self.levels is None:  # one GEMM, s folded into the read matrix
            return _linear_currents(applied, self.transfer[: self.n_in] * volts_per_unit), applied, volts_per_unit
        adc = None if adc_bits is None else adc_constants(adc_bits, self.adc_range, self.adc_signed, p)
        if self._reads_in_one_pass:  # one compiled pass, no partial sums stored, inputs scaled to volts there
            totals, saturated = kernels.read(applied, self._read_matrices, adc, volts_per_unit=volts_per_unit, **noise)
        else:
            totals, saturated = self._chunked_read(applied, volts_per_unit, blocks, adc, noise)
        if adc is not None:
            totals = scale_codes(totals, blocks, adc)
        if saturated > _SATURATION_WARNING * x.shape[0] * blocks * p:
            warn_saturation(saturated, x.shape[0] * blocks * p, float(np.max(self.adc_range)))
        return totals, applied, volts_per_unit

    def decode(self, currents: np.ndarray, applied: np.ndarray, volts_per_unit: float) -> np.ndarray:
        """Weight-unit outputs from physical column currents with the nominal map.

        ``y_j = (a_j/s) I'_j + c_j sum(x)`` with ``c_j = b_j + a_j G0_j`` for the ``G0_j``
        subtracted before the ADC (so ``c_j = 0`` for the offset mapping with subtraction,
        ``c_j = b_j`` without); ``sum(x)`` is digital (the row sums of ``applied``), or read
        from the reference column (``I_ref / (s G_max)``); differential:
        ``y_j = (a_j/s)(I'+_j - I'-_j) + b_j sum(x)``.
        """
        weight_map = self.weight_map
        with np.errstate(over="ignore"):
            gain = weight_map.gain / volts_per_unit
        if not np.all(np.isfinite(gain)):
            raise ValueError(f"the decode gain a/s overflows: the weight scale a (up to {np.max(np.abs(weight_map.gain)):.3g} "
                             f"per siemens) over s = v_read / input_range = {volts_per_unit:.3g} V per input unit; "
                             "inputs (input_range) this large need a larger conductance window or v_read")
        if self.config.mapping == "differential":
            plus, minus = self.layout.weight[:, 0], self.layout.weight[:, 1]
            y = np.take(currents, plus, axis=1)  # the same copy as currents[:, plus], 10x faster on many rows
            y -= np.take(currents, minus, axis=1)
            y *= gain
            return _add_input_sum(y, applied, weight_map.offset)
        columns = self.layout.weight
        # every physical column holds an output (offset, digital sum): no gather needed
        if columns.size != currents.shape[1]:
            y = np.take(currents, columns, axis=1)
            y *= gain
        else:
            y = currents * gain
        if self.config.input_sum == "reference":
            g_ref = weight_map.levels[-1]
            subtracted = self.mirror[columns] * g_ref
            input_sum = np.take(currents, self.layout.reference, axis=1) / (volts_per_unit * g_ref)
            return y + (weight_map.offset + weight_map.gain * subtracted) * np.take(input_sum, self.layout.tile_of_output, axis=1)
        subtracted = self.common_mode[columns]
        # c_j = b_j + a_j G0_j is exactly 0 where the subtracted G0_j is the zero conductance -b_j/a_j
        coefficient = np.where(subtracted == weight_map.zero_conductance, 0.0, weight_map.offset + weight_map.gain * subtracted)
        return _add_input_sum(y, applied, coefficient)

    def mvm(self, x, rng: np.random.Generator | int | None = None) -> np.ndarray:
        """Simulated ``x @ W`` in weight units, shape (batch, n_out).

        Parameters
        ----------
        x : array_like, shape (batch, n_in)
            Finite inputs; ``input_range`` maps to ``v_read``, larger inputs clip.
        rng : numpy.random.Generator or seed, optional
            Source of per-read noise.
        """
        x = _validate.finite_array("x", x, 2, keep_float32=True)  # the DAC converts it
        if x.shape[1] != self.n_in:
            raise ValueError(f"x must have shape (batch, {self.n_in}), got {x.shape}")
        return self.read_checked(x, rng)

    def read_checked(self, x: np.ndarray, rng) -> np.ndarray:
        """:meth:`mvm` of inputs already checked: ``x`` a float32 or float64 array (batch,
        n_in) of finite entries (a network's forward pass checked its input)."""
        currents, applied, volts_per_unit = self.column_currents(x, rng)
        return self.corrected(self.decode(currents, applied, volts_per_unit), applied)

    def corrected(self, y: np.ndarray, applied: np.ndarray) -> np.ndarray:
        """Decoded outputs ``y`` (batch, n_out, float64) after the column
        calibration, ``(y_j - o_j - c_j sum(x)) / g_j`` with ``applied`` the DAC-applied inputs;
        ``y`` itself (unchanged) without a ``correction``. Overwrites ``y``."""
        if self.correction is None:
            return y
        gain, offset, per_input = self.correction
        if np.any(per_input):
            return kernels.affine_rows(y, applied.sum(axis=1), offset, -per_input, gain)
        y -= offset
        y /= gain
        return y


def read_matrices(layer: ProgrammedLayer) -> kernels.ReadMatrices:
    """The :class:`imclib.kernels.ReadMatrices` of ``layer``, M and M2 shaped
    (blocks, k, L, p): ``T`` and ``G^2`` for linear cells (the mirror folded into ``T``); for
    bias-dependent cells the one-hot level masks ``(q_ij == q) D_ij``, plus the level
    ``-G0_j`` driven by the voltage itself when a common mode is subtracted (it carries no
    read noise), M2 None (the kernel squares each cell's current), and the reference
    column's mirror as the read's own step (``mirror``, ``reference``)."""
    shape = (layer.row_blocks, layer.config.rows, 1, layer.layout.n_physical)
    if layer.levels is None:
        return kernels.ReadMatrices(layer.transfer.reshape(shape), np.square(layer.conductance).reshape(shape))
    state, variation = (a.reshape(layer.row_blocks, layer.config.rows, -1) for a in (layer.state, layer.variation))
    masks = level_masks(state, variation, layer.levels.table.shape[1], 1)
    if np.any(layer.common_mode):
        masks = np.concatenate([masks, np.broadcast_to(-layer.common_mode, shape)], axis=2)
    mirror = {}
    if np.any(layer.mirror):
        mirror = {"mirror": layer.mirror, "reference": layer.layout.column_reference(layer.config.cols)}
    return kernels.ReadMatrices(masks, None, layer.levels.segments, layer.levels.per_volt, **mirror)


def _read_noise(layer: ProgrammedLayer, blocks: int, rng: np.random.Generator) -> dict:
    """Read noise of the cells (``read_var``, relative variance), sense noise of one
    conversion of ``blocks`` (``sense_var``, A^2) and the read's stream ``key``; empty
    without noise (then ``rng`` is not used)."""
    read_var = layer.config.nonideal.read_sigma**2
    sense_var = layer.row_blocks // blocks * layer.config.periphery.sense_noise**2
    if read_var == 0 and sense_var == 0:
        return {}
    return {"read_var": read_var, "sense_var": sense_var, "key": kernels.stream_key(rng)}


def _linear_currents(applied: np.ndarray, scaled_transfer: np.ndarray) -> np.ndarray:
    """``I_bj = sum_i x_bi (s T_ij)`` (amperes), the noise-free currents of linear arrays
    without an ADC, as one GEMM; a batch of one row is computed as two copies of it (as in
    :meth:`ProgrammedLayer._block_currents`: every row's result is that of any batch)."""
    if applied.shape[0] == 1:
        return (np.repeat(applied, 2, axis=0) @ scaled_transfer)[:1]
    return applied @ scaled_transfer


def _padded(inputs: np.ndarray, rows: int) -> np.ndarray:
    """``inputs`` (batch, n_in) with zero columns up to ``rows``, the arrays' rows (itself
    when none are missing)."""
    if inputs.shape[1] == rows:
        return inputs
    padded = np.zeros((inputs.shape[0], rows))
    padded[:, : inputs.shape[1]] = inputs
    return padded


def _add_input_sum(y: np.ndarray, applied: np.ndarray, coefficient: np.ndarray) -> np.ndarray:
    """``y + sum(x) c`` in place in ``y`` (batch, n, float64): the digital input-sum term
    with the row sums of the DAC-applied inputs ``applied`` and ``c`` (n,); skipped when ``c``
    is all zero."""
    if np.any(coefficient):
        kernels.affine_rows(y, applied.sum(axis=1), 0.0, coefficient, 1.0)
    return y


def _tile_draw(draw, config: CrossbarConfig, shape: tuple[int, int], rng) -> np.ndarray:
    """Draw per cell, or once for one array and repeat it in every tile (``reused``)."""
    if config.scenario == "per_tile":
        return draw(shape, rng)
    one_array = draw((config.rows, config.cols), rng)
    return np.tile(one_array, (shape[0] // config.rows, shape[1] // config.cols))


def _common_mode(weight_map: WeightMap, layout: ColumnLayout, config: CrossbarConfig) -> tuple[np.ndarray, np.ndarray]:
    """``(common_mode (siemens), mirror ratio)`` per physical column: what is subtracted
    before the ADC (module docstring); zeros with ``adc_calibration="worst_case"``."""
    common_mode, mirror = np.zeros(layout.n_physical), np.zeros(layout.n_physical)
    if config.adc_calibration != "signal":
        return common_mode, mirror
    if config.mapping == "differential":
        common_mode[layout.weight.ravel()] = weight_map.levels[0]
    elif config.input_sum == "reference":
        mirror[layout.weight] = weight_map.zero_conductance / weight_map.levels[-1]
    else:
        common_mode[layout.weight] = weight_map.zero_conductance
    return common_mode, mirror


def _fold_common_mode(transfer: np.ndarray, common_mode: np.ndarray, mirror: np.ndarray,
                      layout: ColumnLayout, cols: int) -> np.ndarray:
    """Read matrix with the subtraction folded in: ``T_ij - common_mode_j - mirror_j T_i,ref(j)``."""
    reference = layout.column_reference(cols) if np.any(mirror) else None
    folded = transfer - common_mode
    if reference is not None:
        folded -= transfer[:, reference] * mirror
    return folded


def signal_bound(layer: ProgrammedLayer) -> np.ndarray:
    """Data-free ADC full scale per physical column (amperes): the largest partial current
    the programmed read matrix can give for any input within the DAC range,
    ``max_blocks v_read max(sum_i (T'_ij)+, sum_i (T'_ij)-)`` (unipolar inputs) or
    ``max_blocks v_read sum_i |T'_ij|`` (bipolar), with ``T'`` the zero-bias read matrix after
    the common-mode subtraction."""
    config = layer.config
    blocks = layer.transfer.reshape(layer.row_blocks, config.rows, -1)
    if layer.input_signed:
        bound = np.abs(blocks).sum(axis=1)
    else:
        bound = np.maximum(np.clip(blocks, 0, None).sum(axis=1), np.clip(-blocks, 0, None).sum(axis=1))
    bound = config.v_read * bound.max(axis=0)
    return np.where(bound > 0, bound, config.v_read * layer.weight_map.levels[-1])


def adc_polarity(config: CrossbarConfig, input_signed: bool) -> bool:
    """Whether the ADC is bipolar: signed inputs, or a signal with its common mode removed
    (offset mapping), which takes both signs."""
    return bool(input_signed or (config.adc_calibration == "signal" and config.mapping == "offset"))


def with_ranges(layer: ProgrammedLayer, input_range: float, input_signed: bool,
                adc_range: np.ndarray | float | None = None) -> ProgrammedLayer:
    """``layer`` with new converter ranges: DAC full scale ``input_range`` (input units,
    > 0) and polarity, and ADC full scale (amperes, scalar or per physical column).

    ``adc_range=None`` takes ``periphery.adc_range`` if set, else ``rows v_read G_max``
    with ``adc_calibration="worst_case"``, else :func:`signal_bound`.
    """
    _validate.positive("input_range", input_range)
    config = layer.config
    layer = _replace(layer, input_range=float(input_range), input_signed=bool(input_signed),
                     adc_signed=adc_polarity(config, input_signed))
    if adc_range is None:
        if config.periphery.adc_range is not None:
            adc_range = config.periphery.adc_range
        elif config.adc_calibration == "worst_case":
            adc_range = config.rows * config.v_read * layer.weight_map.levels[-1]
        else:
            adc_range = signal_bound(layer)
    adc_range = np.broadcast_to(np.asarray(adc_range, dtype=np.float64), (layer.layout.n_physical,)).copy()
    if not np.all(adc_range > 0):
        raise ValueError("adc_range must be > 0 amperes for every physical column")
    return _replace(layer, adc_range=adc_range)


def _replace(layer: ProgrammedLayer, **ranges) -> ProgrammedLayer:
    """``dataclasses.replace`` of converter ranges (or the column correction), keeping the
    matrices derived from the programmed cells (``functools.cached_property``), which
    neither changes."""
    new = dataclasses.replace(layer, **ranges)
    new.__dict__.update({name: value for name, value in layer.__dict__.items()
                         if isinstance(getattr(ProgrammedLayer, name, None), functools.cached_property)})
    return new


def program_layer(weights, config: CrossbarConfig | None = None, rng=None, *,
                  input_range: float = 1.0, input_signed: bool = True) -> ProgrammedLayer:
    """Program ``weights`` (n_in, n_out) onto tiled arrays.

    Static deviations (programming variation, stuck cells) are drawn here, from ``rng``
    (a ``numpy.random.Generator`` or a seed), in that order. The DAC full scale is
    ``input_range`` (input units) with polarity ``input_signed``; the ADC full scale follows
    :func:`with_ranges`. Calibrate both on data with :func:`imclib.deploy.calibrate`.
    """
    config = CrossbarConfig() if config is None else config
    _validate.instance("config", config, CrossbarConfig)
    rng = _validate.generator(rng)
    targets, weight_map = map_weights(weights, config)
    n_in, n_out = targets.shape[:2]
    layout = ColumnLayout.build(n_out, config)
    padded_rows = -(-n_in // config.rows) * config.rows
    shape = (padded_rows, layout.n_physical)
    lowest, highest = (0, weight_map.levels.size - 1) if config.quantize else weight_map.levels[[0, -1]]
    cells = np.full(shape, lowest, dtype=targets.dtype)
    cells[:n_in, layout.weight] = targets
    cells[:, layout.reference] = highest
    nonideal = config.nonideal
    variation = _tile_draw(lambda s, g: draw_variation(s, nonideal.programming_sigma, g), config, shape, rng)
    stuck = _tile_draw(lambda s, g: draw_stuck(s, nonideal.stuck_fraction, g), config, shape, rng)
    cells = np.where(stuck < 0, lowest, np.where(stuck > 0, highest, cells))
    if config.quantize and config.cell.level_sigma is not None:  # a measured cell's spread per level
        sigma = config.cell.level_sigma[cells]  # exp(s_q z - s_q^2 / 2), imclib.cells.MeasuredCell
        variation = variation * np.exp(sigma * _tile_draw(lambda s, g: g.standard_normal(s), config, shape, rng)
                                       - 0.5 * sigma**2)
    if config.quantize:
        actual_levels = config.cell.conductances(0.0, config.actual_mtj)
        conductance, state = actual_levels[cells] * variation, cells
    else:
        conductance, state = cells * variation, None
    transfer, levels = conductance, None
    if nonideal.bias_dependence:
        span = 1 if config.wires.is_ideal else 2  # cell voltages up to v_read, or 2 v_read behind wires
        levels = _level_table(config.cell, config.actual_mtj, span * config.v_read, span * 4096 + 1)
    elif not config.wires.is_ideal:
        transfer = _wired_transfer(conductance, config)
    common_mode, mirror = _common_mode(weight_map, layout, config)
    if np.any(common_mode) or np.any(mirror):
        transfer = _fold_common_mode(transfer, common_mode, mirror, layout, config.cols)
    layer = ProgrammedLayer(config, n_in, n_out, weight_map, layout, state, variation, conductance, transfer,
                            levels, common_mode, mirror, 1.0, True, np.ones(layout.n_physical), True)
    return with_ranges(layer, input_range, input_signed)


_TRANSFERS = _memo.Recent(256 * 2**20, lambda transfer: transfer.nbytes)
"""Recent transfer matrices kept by :func:`_wired_transfer`: a study that programs equal
cells behind equal wires again (another decode, range calibration or device seed that
draws nothing, as the wire studies do) solves each array once; 256 MiB hold every layer-1
matrix of notebook 06's scheme sweep (784 x 256 weights, 75 wired layers)."""


def _wired_transfer(conductance: np.ndarray, config: CrossbarConfig) -> np.ndarray:
    """Transfer matrices (siemens, laid out like ``conductance``) of the ``config.rows x
    config.cols`` arrays of ``conductance`` behind ``config.wires``
    (:func:`imclib.circuit.transfer_matrix`), memoised (:data:`_TRANSFERS`, keyed by a digest
    of the conductances, the array size and the wires), read-only."""
    def solve() -> np.ndarray:
        transfer = _from_tiles(transfer_matrix(_to_tiles(conductance, config.rows, config.cols), config.wires))
        transfer.setflags(write=False)
        return transfer

    return _TRANSFERS.get((_memo.digest(conductance), conductance.shape, config.rows, config.cols, config.wires), solve)


def _level_table(cell, mtj, v_max: float, nodes: int) -> LevelTable:
    """``LevelTable.build`` of the actual level curves of ``cell`` (with ``mtj``) on
    ``[0, v_max]`` volts, shared for hashable cells (:func:`_shared_level_table`): every
    layer of a deployment reads one table."""
    try:
        return _shared_level_table(cell, mtj, v_max, nodes)
    except TypeError:  # an unhashable cell model: built every time
        return LevelTable.build(functools.partial(cell.conductances, mtj=mtj), v_max, nodes)


@functools.lru_cache(maxsize=8)
def _shared_level_table(cell, mtj, v_max: float, nodes: int) -> LevelTable:
    """:func:`_level_table` of a hashable cell, read-only, the last 8 kept."""
    table = LevelTable.build(functools.partial(cell.conductances, mtj=mtj), v_max, nodes)
    for array in (table.table, table.start, table.slope, table.segments):
        array.setflags(write=False)
    return table


def simulate_mvm(weights, inputs, config: CrossbarConfig | None = None, rng=None) -> np.ndarray:
    """One simulated matrix-vector multiply on tiled N-ary crossbars.

    Parameters
    ----------
    weights : array_like, shape (n_in, n_out)
    inputs : array_like, shape (batch, n_in)
    config : CrossbarConfig, optional
        Defaults to the source study's setting (4-state MTJ cells on 4 x 4 arrays);
        ``CrossbarConfig.ideal()`` reproduces ``inputs @ weights`` to float precision.
        The DAC full scale is ``max |inputs|`` (nothing clips) and the ADC full scale the
        data-free bound of :func:`with_ranges`; to calibrate ranges on other data use
        :mod:`imclib.deploy`.
    rng : numpy.random.Generator or int, optional
        Source of every random draw (static deviations first, then read noise).

    Returns
    -------
    ndarray, shape (batch, n_out)
        ``inputs @ weights`` as the hardware computes it, in weight units.
    """
    weights = _validate.finite_array("weights", weights, 2)
    inputs = _validate.finite_array("inputs", inputs, 2)
    if inputs.shape[1] != weights.shape[0]:
        raise ValueError(
            f"inputs must have shape (batch, {weights.shape[0]}) to match weights "
            f"{weights.shape}, got {inputs.shape}"
        )
    rng = _validate.generator(rng)
    x_max = float(np.abs(inputs).max(initial=0.0))
    layer = program_layer(weights, config, rng, input_range=x_max if x_max > 0 else 1.0,
                          input_signed=bool(np.any(inputs < 0)))
    return layer.mvm(inputs, rng)
