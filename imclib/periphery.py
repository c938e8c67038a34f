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

from . import _validate

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


def uniform_quantize(values: np.ndarray, bits: int, low: float, high: float) -> np.ndarray:
    """Round ``values`` to the nearest of ``2^bits`` uniform codes on ``[low, high]``.

    ``q = low + round((v - low) / step) * step`` with ``step = (high - low) / (2^bits - 1)``;
    values outside the range saturate at its ends.
    """
    step = (high - low) / (2**bits - 1)
    codes = np.clip(np.rint((values - low) / step), 0, 2**bits - 1)
    return low + codes * step


def dac(x: np.ndarray, bits: int | None, x_max: float, signed: bool) -> np.ndarray:
    """Quantize inputs to the DAC's codes (identity when ``bits`` is None)."""
    if bits is None:
        return x
    return uniform_quantize(x, bits, -x_max if signed else 0.0, x_max)


def adc(current: np.ndarray, bits: int | None, full_scale: float, signed: bool) -> tuple[np.ndarray, int]:
    """Digitize column currents (amperes) to the ADC's codes (identity when ``bits`` is None).

    Returns the digitized currents and the number of reads whose magnitude exceeded full
    scale (saturated). A unipolar ADC also maps negative currents, which only noise on a
    near-zero current produces, to code 0.
    """
    if bits is None:
        return current, 0
    saturated = int(np.count_nonzero(np.abs(current) > full_scale))
    return uniform_quantize(current, bits, -full_scale if signed else 0.0, full_scale), saturated


def digitized_sum(currents: np.ndarray, bits: int, full_scale: float, signed: bool) -> tuple[np.ndarray, int]:
    """Every partial sum through the ADC, then summed over blocks: the fused, in-place form
    of ``adc(currents, bits, full_scale, signed)[0].sum(axis=1)`` (:func:`adc`).

    With ``low = -I_fs`` (bipolar) or 0, ``step = (I_fs - low) / (2^b - 1)`` and codes
    ``c = clip(rint((I - low) / step), 0, 2^b - 1)``, the digital sum is
    ``sum_r (low + c_r step) = R low + step sum_r c_r``: the codes are summed (exact
    integers in float64) and scaled once. A read saturates when ``|I| > I_fs``, i.e. when its
    unclipped code exceeds ``2^b - 1`` or lies below 0 (bipolar) or ``-(2^b - 1)`` (unipolar).

    Parameters
    ----------
    currents : ndarray, shape (batch, blocks, p)
        Partial column currents (amperes); overwritten with the codes.

    Returns
    -------
    sums : ndarray, shape (batch, p)
        Digitized currents summed over blocks (amperes).
    saturated : int
        Number of saturated reads.
    """
    top = 2**bits - 1
    low = -full_scale if signed else 0.0
    step = (full_scale - low) / top
    codes = np.subtract(currents, low, out=currents)
    codes /= step
    floor = 0.0 if signed else -top
    saturated = 0
    if codes.max(initial=0.0) > top or codes.min(initial=0.0) < floor:
        saturated = int(np.count_nonzero(codes > top) + np.count_nonzero(codes < floor))
    np.rint(codes, out=codes)
    np.clip(codes, 0, top, out=codes)
    return currents.shape[1] * low + step * codes.sum(axis=1), saturated


def warn_saturation(saturated: int, reads: int, full_scale: float) -> None:
    """Warn once with the saturated fraction of ADC reads, if any saturated."""
    if saturated:
        warnings.warn(
            f"ADC saturated on {saturated / reads:.2%} of reads: currents exceed adc_range = "
            f"{full_scale:.3g} A; raise adc_range or leave it None",
            RuntimeWarning,
            stacklevel=3,
        )
