"""Periphery: input DAC, output ADC and the sense-amplifier noise floor.

``dac_bits``: inputs are rounded to ``2^d`` uniform codes over their range
(``[0, x_max]`` for non-negative inputs, else ``[-x_max, x_max]``).
``adc_bits``: each tile's column current is rounded to ``2^b`` uniform codes over
``[0, I_fs]`` (non-negative inputs) or ``[-I_fs, I_fs]``; currents beyond full scale
saturate, and one warning per MVM reports the saturated fraction (a unipolar ADC maps
negative currents, from noise only, to code 0). ``adc_range`` (amperes) sets
``I_fs``; ``None`` takes the largest current a tile of nominal cells can carry,
``rows * V_read * G_max``; programming variation or noise can still push a read past it,
and such saturation is reported like any other.
``sense_noise``: Gaussian input-referred noise added to every column read (amperes rms).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from . import _validate, kernels

CURRENT_RANGE_A = (1e-18, 1.0)
"""Accepted ADC full scale and non-zero sense noise (amperes)."""


@dataclass(frozen=True)
class Periphery:
    """Converters and sense amplifier. ``None`` bits means the converter is ideal."""

    dac_bits: int | None = None
    adc_bits: int | None = None
    adc_range: float | None = None
    sense_noise: float = 0.0

    def __post_init__(self):
        _validate.optional_bits("dac_bits", self.dac_bits)
        _validate.optional_bits("adc_bits", self.adc_bits)
        if self.adc_range is not None:
            _validate.in_range("adc_range", self.adc_range, CURRENT_RANGE_A[0], CURRENT_RANGE_A[1], "A")
        _validate.zero_or_in_range("sense_noise", self.sense_noise, CURRENT_RANGE_A[0], CURRENT_RANGE_A[1], "A")

    @property
    def any(self) -> bool:
        """Whether any periphery effect is on."""
        return self.dac_bits is not None or self.adc_bits is not None or self.sense_noise > 0


def _codes_per_ampere(bits: int, low, high):
    """``(2^b - 1) / (high - low)``: the inverse code step (codes per unit of the input)."""
    return (2**bits - 1) / (np.asarray(high, dtype=np.float64) - low)


def uniform_quantize(values: np.ndarray, bits: int, low, high) -> np.ndarray:
    """Round ``values`` to the nearest of ``2^bits`` uniform codes on ``[low, high]``.

    ``q = low + c step`` with ``c = clip(rint((v - low) / step), 0, 2^bits - 1)`` and
    ``step = (high - low) / (2^bits - 1)``; the division is a multiplication by the inverse
    step (:func:`_codes_per_ampere`), exactly as in the fused kernels. Values outside the
    range saturate at its ends. ``low`` and ``high`` are scalars or broadcast against
    ``values`` (e.g. one range per column, shape ``(p,)``); float64 and float32 arrays with
    scalar ends take one compiled pass (:func:`imclib.kernels.quantize`, the same operations
    in float64), with a float64 result.
    """
    top = 2**bits - 1
    per_unit, step = _codes_per_ampere(bits, low, high), (high - np.asarray(low, dtype=np.float64)) / top
    if np.ndim(low) == np.ndim(high) == 0 and isinstance(values, np.ndarray) and values.dtype in (np.float32, np.float64):
        return kernels.quantize(values, low, per_unit, step, top)
    codes = np.clip(np.rint((values - low) * per_unit), 0, top)
    return low + codes * step


def dac(x: np.ndarray, bits: int | None, x_max: float, signed: bool) -> np.ndarray:
    """Quantize inputs to the DAC's codes (identity when ``bits`` is None)."""
    if bits is None:
        return x
    return uniform_quantize(x, bits, -x_max if signed else 0.0, x_max)


def adc(current: np.ndarray, bits: int | None, full_scale, signed: bool) -> tuple[np.ndarray, int]:
    """Digitize column currents (amperes) to the ADC's codes (identity when ``bits`` is None).

    ``full_scale`` ``I_fs`` (amperes) is a scalar or an array broadcast against the last
    axis (one full scale per physical column). Returns the digitized currents and the
    number of reads whose magnitude exceeded full scale (saturated, ``|I| > I_fs``). A
    unipolar ADC also maps negative currents, which only noise on a near-zero current
    produces, to code 0.
    """
    if bits is None:
        return current, 0
    full_scale = np.asarray(full_scale, dtype=np.float64)
    saturated = int(np.count_nonzero(np.abs(current) > full_scale))
    return uniform_quantize(current, bits, -full_scale if signed else 0.0, full_scale), saturated


def adc_constants(bits: int, full_scale, signed: bool, p: int) -> tuple:
    """Per physical column ``I_fs``, ``low`` and codes per ampere, each shape (p,) float64,
    and ``2^bits - 1``: the ADC as the compiled kernels take it (:func:`imclib.kernels.read`)."""
    try:
        fs = np.ascontiguousarray(np.broadcast_to(np.asarray(full_scale, dtype=np.float64), (p,)))
    except ValueError:
        raise ValueError(
            f"full_scale must be a scalar or broadcast to the {p} physical columns, "
            f"got shape {np.shape(full_scale)}"
        ) from None
    if not np.all(fs > 0) or not np.all(np.isfinite(fs)):
        raise ValueError("full_scale must be in (0, inf) amperes in every column")
    low = -fs if signed else np.zeros(p)
    return fs, low, _codes_per_ampere(bits, low, fs), float(2**bits - 1)


def digitized_sum(currents: np.ndarray, bits: int, full_scale, signed: bool) -> tuple[np.ndarray, int]:
    """Every partial sum through the ADC, then summed over blocks: the fused, one-pass form
    of ``adc(currents, bits, full_scale, signed)[0].sum(axis=1)`` (:func:`adc`).

    With ``low = -I_fs`` (bipolar) or 0, ``step = (I_fs - low) / (2^b - 1)`` and codes
    ``c = clip(rint((I - low) / step), 0, 2^b - 1)``, the digital sum is
    ``sum_r (low + c_r step) = R low + step sum_r c_r``: the codes are summed (exact
    integers in float64) and scaled once. A read saturates when ``|I| > I_fs``. One compiled
    pass (:func:`imclib.kernels.convert`) reads every current once: no temporaries.

    Parameters
    ----------
    currents : ndarray, shape (batch, blocks, p)
        Partial column currents (amperes); not modified.
    bits : int
        ADC resolution ``b``.
    full_scale : float or ndarray broadcastable to (p,)
        ``I_fs`` (amperes), one value or one per physical column.
    signed : bool
        Bipolar ADC (``[-I_fs, I_fs]``) or unipolar (``[0, I_fs]``).

    Returns
    -------
    sums : ndarray, shape (batch, p)
        Digitized currents summed over blocks (amperes).
    saturated : int
        Number of saturated reads.
    """
    currents = np.asarray(currents, dtype=np.float64)
    constants = adc_constants(bits, full_scale, signed, currents.shape[2])
    codes, saturated = kernels.convert(currents, constants)
    return scale_codes(codes, currents.shape[1], constants), saturated


def digitized_matmul(voltages: np.ndarray, conductances: np.ndarray, bits: int, full_scale,
                     signed: bool) -> tuple[np.ndarray, int]:
    """Partial column currents of stacked arrays, each through the ADC, summed over arrays:
    ``sum_r ADC(sum_i V_bri G_rij)`` in one compiled pass, never storing the partial sums.

    Equals ``digitized_sum(column_currents(voltages, conductances), ...)``
    (:func:`digitized_sum`, :func:`imclib.array.column_currents`) up to the rounding of the
    partial currents ``I_brj = sum_i V_bri G_rij`` (accumulated in the order ``i = 0..k-1``,
    where BLAS may use another order): :func:`imclib.kernels.read` on linear cells without
    noise.

    Parameters
    ----------
    voltages : ndarray, shape (batch, blocks, k)
        Row voltages (volts) of each array (row block).
    conductances : ndarray, shape (blocks, k, p)
        Conductances or transfer matrices (siemens) of the arrays of each row block.
    bits, full_scale, signed
        As in :func:`digitized_sum`.

    Returns
    -------
    sums, saturated
        As in :func:`digitized_sum`.
    """
    voltages = np.ascontiguousarray(voltages, dtype=np.float64)
    conductances = np.ascontiguousarray(conductances, dtype=np.float64)
    batch, blocks, k = voltages.shape
    if conductances.shape[:2] != (blocks, k):
        raise ValueError(f"conductances must have shape ({blocks}, {k}, p), got {conductances.shape}")
    constants = adc_constants(bits, full_scale, signed, conductances.shape[2])
    matrices = conductances[:, :, None, :]
    codes, saturated = kernels.read(voltages, kernels.ReadMatrices(matrices, matrices), constants)
    return scale_codes(codes, blocks, constants), saturated


def scale_codes(codes: np.ndarray, blocks: int, constants: tuple) -> np.ndarray:
    """Code sums -> amperes, ``R low + step sum_r c_r`` (in place), with the
    :func:`adc_constants` ``constants``."""
    fs, low, _, top = constants
    codes *= (fs - low) / top
    codes += blocks * low
    return codes


def warn_saturation(saturated: int, reads: int, full_scale: float) -> None:
    """Warn once with the saturated fraction of ADC reads, if any saturated."""
    if saturated:
        warnings.warn(
            f"ADC saturated on {saturated / reads:.2%} of reads: currents exceed adc_range = "
            f"{full_scale:.3g} A; raise adc_range or leave it None",
            RuntimeWarning,
            stacklevel=3,
        )
