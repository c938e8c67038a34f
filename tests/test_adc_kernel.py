"""The compiled ADC kernels against the direct reference: ``adc(...)`` on every partial sum,
then the sum over arrays, with the saturation counts.

Currents here are small integers times a power of two, so every partial sum is exact in
float64 whatever the order of accumulation: the fused matmul kernel and the reference then
see the same currents, and their codes must agree exactly.
"""

import numpy as np
import pytest

from imclib import CrossbarConfig, Nonidealities, Periphery, program_layer
from imclib.array import column_currents
from imclib.periphery import adc, digitized_matmul, digitized_sum, uniform_quantize

AMPERE = 2.0**-20  # current unit: exact binary fractions


def _reference(currents, bits, full_scale, signed):
    digitized, saturated = adc(currents, bits, full_scale, signed)
    return digitized.sum(axis=1), saturated


def _exact_operands(rng, batch, blocks, k, p, signed):
    low = -3 if signed else 0
    voltages = rng.integers(low, 4, size=(batch, blocks, k)).astype(float) * 2.0**-3
    conductances = rng.integers(0, 9, size=(blocks, k, p)).astype(float) * AMPERE * 8
    return voltages, conductances


FULL_SCALES = {
    "scalar": 11.0 * AMPERE,
    "per column": np.array([5.0, 11.0, 16.0, 3.0, 24.0, 8.0, 13.0]) * AMPERE,
}


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("scale", list(FULL_SCALES))
@pytest.mark.parametrize("bits", [1, 3, 8])
def test_digitized_sum_equals_adc_then_sum(signed, scale, bits):
    rng = np.random.default_rng(bits)
    full_scale = FULL_SCALES[scale]
    voltages, conductances = _exact_operands(rng, 13, 9, 4, 7, signed)
    currents = column_currents(voltages, conductances)
    expected, expected_saturated = _reference(currents, bits, full_scale, signed)
    before = currents.copy()
    sums, saturated = digitized_sum(currents, bits, full_scale, signed)
    np.testing.assert_array_equal(currents, before)  # input not modified
    np.testing.assert_allclose(sums, expected, rtol=1e-13, atol=1e-13 * np.abs(expected).max())
    assert saturated == expected_saturated > 0


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("scale", list(FULL_SCALES))
@pytest.mark.parametrize("batch", [1, 16, 37])  # below, at and across the kernel's input groups
def test_digitized_matmul_equals_matmul_adc_then_sum(signed, scale, batch):
    rng = np.random.default_rng(batch)
    full_scale = FULL_SCALES[scale]
    voltages, conductances = _exact_operands(rng, batch, 6, 4, 7, signed)
    expected, expected_saturated = _reference(column_currents(voltages, conductances), 6, full_scale, signed)
    sums, saturated = digitized_matmul(voltages, conductances, 6, full_scale, signed)
    np.testing.assert_allclose(sums, expected, rtol=1e-13, atol=1e-13 * np.abs(expected).max())
    assert saturated == expected_saturated
    if batch > 1:
        assert saturated > 0


def test_codes_are_those_of_the_reference_quantizer():
    """Sum over one array = the digitized current itself; random (inexact) currents."""
    rng = np.random.default_rng(3)
    currents = rng.uniform(-2e-5, 2e-5, size=(200, 1, 6))
    full_scale = np.linspace(5e-6, 1.5e-5, 6)
    sums, saturated = digitized_sum(currents, 5, full_scale, True)
    expected = uniform_quantize(currents[:, 0], 5, -full_scale, full_scale)
    np.testing.assert_allclose(sums, expected, rtol=1e-14, atol=1e-14 * 2e-5)
    assert saturated == np.count_nonzero(np.abs(currents) > full_scale)


def test_unipolar_adc_maps_negative_currents_to_zero_without_saturating():
    nano = 1e-9
    currents = np.array([[[-1 * nano, -2 * nano], [3.4 * nano, 0.0]]])
    sums, saturated = digitized_sum(currents, 4, 15 * nano, False)  # step 1 nA: codes 0 + 3, 0 + 0
    np.testing.assert_allclose(sums, [[3 * nano, 0.0]], rtol=1e-14, atol=1e-24)
    assert saturated == 0
    assert digitized_sum(np.array([[[-16 * nano]]]), 4, 15 * nano, False)[1] == 1


def test_full_scale_shape_and_sign_are_checked():
    with pytest.raises(ValueError, match="full_scale"):
        digitized_sum(np.zeros((2, 3, 4)), 8, np.ones(3), False)
    with pytest.raises(ValueError, match="full_scale"):
        digitized_matmul(np.zeros((2, 3, 4)), np.zeros((3, 4, 5)), 8, -1.0, False)


@pytest.mark.parametrize("wires", [False, True])
def test_layer_fused_path_equals_chunked_path(monkeypatch, wires):
    """A noise-free ADC layer reads through digitized_matmul; the generic chunked path
    (partial currents, then digitized_sum) must give the same outputs."""
    from imclib.circuit import WireParasitics

    rng = np.random.default_rng(11)
    weights, x = rng.normal(size=(37, 9)), rng.uniform(size=(50, 37))
    config = CrossbarConfig.quantization_only().with_(
        nonideal=Nonidealities(programming_sigma=0.05), periphery=Periphery(adc_bits=6),
        wires=WireParasitics(r_row=1.0, r_col=1.0) if wires else WireParasitics())
    layer = program_layer(weights, config, 0)
    fused = layer.mvm(x)
    monkeypatch.setattr(type(layer), "_reads_in_one_pass", property(lambda self: False))
    chunked = layer.mvm(x)
    np.testing.assert_allclose(fused, chunked, rtol=1e-12, atol=1e-12 * np.abs(chunked).max())


def test_fused_adc_rows_do_not_depend_on_their_batch():
    """Each input's partial sums are accumulated in a fixed order whatever its batch: a row
    read alone equals the same row read among 999 others, bit for bit."""
    rng = np.random.default_rng(12)
    weights, x = rng.normal(size=(37, 9)), rng.uniform(size=(1000, 37))
    x[:, 5] = 1.0  # every batch has the same input range (the DAC scale follows the batch here)
    config = CrossbarConfig.quantization_only().with_(
        nonideal=Nonidealities(programming_sigma=0.05), periphery=Periphery(adc_bits=8))
    layer = program_layer(weights, config, 0)
    whole = layer.mvm(x)
    for row in (0, 15, 16, 999):  # first, last and first-of-next input group, last row
        np.testing.assert_array_equal(layer.mvm(x[row : row + 1]), whole[row : row + 1])


@pytest.mark.parametrize("low, high", [(0.0, 1.0), (-0.7, 0.7), (-2.5e-6, 2.5e-6)])
def test_compiled_uniform_quantize_equals_numpy(low, high):
    """The compiled pass of :func:`uniform_quantize` (float64 arrays, scalar ends) gives the
    numpy expression's values bit for bit, in range, at the ends and beyond them."""
    rng = np.random.default_rng(7)
    values = rng.uniform(1.5 * low - 0.1 * high, 1.5 * high, size=(300, 17))
    values[0, :3] = low, high, (low + high) / 2
    per_unit = 255 / (high - low)
    expected = low + np.clip(np.rint((values - low) * per_unit), 0, 255) * ((high - low) / 255)
    np.testing.assert_array_equal(uniform_quantize(values, 8, low, high), expected)
    np.testing.assert_array_equal(uniform_quantize(values[:, ::2], 8, low, high), expected[:, ::2])  # strided
