"""The fast read paths against slow, direct computations on small cases.

Each shortcut of the inference hot path (batched matmuls per block, per-level drive vectors
from a level table, the fused ADC-and-sum, unpadded row voltages, chunking) is compared with
a straightforward per-cell / per-array computation written independently here.
"""

import numpy as np
import pytest

import imclib.layer
from imclib import CellLevels, CrossbarConfig, Nonidealities, Periphery, _validate, kernels, program_layer
from imclib.array import LevelTable, bias_dependent_currents, column_currents
from imclib.periphery import adc, digitized_sum


def _direct_currents(voltages, conductances):
    """``I[b, r, p] = sum_k V[b, r, k] G[r, k, p]`` with explicit loops."""
    batch, blocks, k = voltages.shape
    out = np.zeros((batch, blocks, conductances.shape[-1]))
    for b in range(batch):
        for r in range(blocks):
            for i in range(k):
                out[b, r] += voltages[b, r, i] * conductances[r, i]
    return out


def _cell_conductance(config, voltages, state, variation):
    """Each cell's conductance at its row voltage from the cell model itself (no table)."""
    levels = config.cell.conductances(voltages, config.actual_mtj)  # (..., k, N)
    picked = np.take_along_axis(levels[..., None, :], np.broadcast_to(state, voltages.shape[:-1] + state.shape[-2:])[..., None], -1)
    return picked[..., 0] * variation


@pytest.mark.parametrize("blocks", [1, 3])
def test_batched_matmul_equals_per_cell_sums(blocks):
    rng = np.random.default_rng(0)
    voltages, conductances = rng.normal(size=(5, blocks, 4)), rng.uniform(size=(blocks, 4, 6))
    np.testing.assert_allclose(column_currents(voltages, conductances), _direct_currents(voltages, conductances),
                               rtol=1e-13, atol=1e-15)


def test_level_table_lookups_agree_with_each_other_and_the_cell_model():
    cell = CellLevels(8, "binary")
    table = LevelTable.build(cell.conductances, 0.2)
    v = np.random.default_rng(1).uniform(-0.2, 0.2, size=(50, 7))
    exact = cell.conductances(v)
    index, fraction = table.locate(v)
    per_level = np.stack([table.level(index, fraction, q) for q in range(8)], axis=-1)
    np.testing.assert_allclose(per_level, exact, rtol=1e-9)
    np.testing.assert_allclose(per_level, table.levels(v), rtol=1e-14)
    state = np.random.default_rng(2).integers(0, 8, size=v.shape)
    np.testing.assert_allclose(table.cell(v, state), np.take_along_axis(exact, state[..., None], -1)[..., 0], rtol=1e-9)


@pytest.mark.parametrize("power", [1, 2])
@pytest.mark.parametrize("blocks", [1, 2])
def test_per_level_drives_equal_the_direct_per_cell_sum(power, blocks):
    rng = np.random.default_rng(3)
    config = CrossbarConfig.quantization_only().with_(nonideal=Nonidealities(bias_dependence=True))
    state = rng.integers(0, 4, size=(blocks, 4, 5))
    variation = np.exp(0.1 * rng.standard_normal((blocks, 4, 5)))
    voltages = rng.uniform(-0.1, 0.1, size=(6, blocks, 4))
    table = LevelTable.build(lambda v: config.cell.conductances(v, config.actual_mtj), 0.1)
    fast = bias_dependent_currents(voltages, table, state, variation, power)
    cell_g = _cell_conductance(config, voltages, state, variation)  # (batch, blocks, k, p)
    direct = np.sum((voltages[..., None] * cell_g) ** power, axis=-2)
    np.testing.assert_allclose(fast, direct, rtol=1e-9, atol=1e-9 * np.abs(direct).max())  # signed sums cancel


@pytest.mark.parametrize("signed", [False, True])
def test_fused_adc_sum_equals_adc_then_sum(signed):
    rng = np.random.default_rng(4)
    currents = rng.uniform(-1.3e-5 if signed else -1e-7, 1.3e-5, size=(7, 9, 5))  # some beyond full scale
    digitized, saturated = adc(currents.copy(), 6, 1e-5, signed)
    sums, fused_saturated = digitized_sum(currents.copy(), 6, 1e-5, signed)
    np.testing.assert_allclose(sums, digitized.sum(axis=1), rtol=1e-13, atol=1e-20)
    assert fused_saturated == saturated > 0


def _direct_layer(layer, x, bits=None, bias=False):
    """Decoded outputs of a programmed layer computed array by array, cell by cell: the
    offset current ``G0 sum(V)`` is subtracted from every array's partial currents before
    the ADC (full scale and polarity stored with the layer)."""
    config = layer.config
    k = config.rows
    s = config.v_read / layer.input_range
    voltages = np.zeros((x.shape[0], layer.conductance.shape[0]))
    voltages[:, : layer.n_in] = x * s
    total = np.zeros((x.shape[0], layer.conductance.shape[1]))
    for r in range(layer.row_blocks):
        rows = slice(r * k, (r + 1) * k)
        v = voltages[:, rows]
        if bias:
            g = _cell_conductance(config, v, layer.state[rows], layer.variation[rows])  # (batch, k, p)
            partial = np.einsum("bi,bip->bp", v, g)
        else:
            partial = v @ layer.conductance[rows]
        partial = partial - v.sum(axis=1, keepdims=True) * layer.common_mode
        if bits is not None:
            partial = np.stack([adc(partial[:, j], bits, layer.adc_range[j], layer.adc_signed)[0]
                                for j in range(partial.shape[1])], axis=1)
        total += partial
    y = layer.weight_map.gain / s * total[:, : layer.n_out]
    residual = layer.weight_map.offset + layer.weight_map.gain * layer.common_mode[: layer.n_out]  # ~0
    return y + residual * x.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("config", [
    CrossbarConfig.quantization_only().with_(periphery=Periphery(adc_bits=8)),
    CrossbarConfig().with_(nonideal=Nonidealities(bias_dependence=True)),
    CrossbarConfig.quantization_only(),
])
def test_chunking_does_not_change_the_result(monkeypatch, config):
    rng = np.random.default_rng(7)
    weights, x = rng.normal(size=(20, 9)), rng.uniform(size=(40, 20))
    whole = program_layer(weights, config, 0).mvm(x, 1)
    monkeypatch.setattr(imclib.layer, "_CHUNK_BYTES", 1)  # one input per chunk, same noise draws in order
    np.testing.assert_allclose(program_layer(weights, config, 0).mvm(x, 1), whole, rtol=1e-12, atol=1e-14)


def test_all_zero_inputs_read_zero_currents():
    layer = program_layer(np.ones((8, 3)), CrossbarConfig.quantization_only().with_(nonideal=Nonidealities(bias_dependence=True)))
    currents, applied, s = layer.column_currents(np.zeros((2, 8)))
    assert s == layer.config.v_read and np.all(currents == 0) and np.all(applied == 0)


def test_affine_rows_equals_the_numpy_steps_bit_for_bit():
    rng = np.random.default_rng(4)
    y, s = rng.normal(size=(40, 7)) * 1e3, rng.normal(size=40) * 50
    offset, coefficient, divisor = rng.normal(size=7), rng.normal(size=7), rng.uniform(0.5, 2, size=7)
    expected = y.copy()
    expected -= offset
    expected += s[:, None] * coefficient
    expected /= divisor
    strided = np.asfortranarray(y)  # any memory layout
    for target in (y.copy(), strided):
        np.testing.assert_array_equal(kernels.affine_rows(target, s, offset, coefficient, divisor), expected)
    with pytest.raises(ValueError, match="y must be a 2-D float64 array"):
        kernels.affine_rows(y.astype(np.float32), s, offset, coefficient, divisor)


@pytest.mark.parametrize("values, finite", [
    ([1.0, -2.0, 3.5], True),
    ([1e308, 1e308, -1e308], True),  # the sum overflows: decided entry by entry
    ([1.0, np.nan], False), ([np.inf, 1.0], False), ([-np.inf, np.inf], False),
])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_all_finite_matches_isfinite(values, finite, dtype):
    with np.errstate(over="ignore"):
        array = np.array(values, dtype=dtype)
    assert _validate.all_finite(array) is bool(np.all(np.isfinite(array)))
    assert _validate.all_finite(array) is (finite and bool(np.all(np.isfinite(array))))


@pytest.mark.parametrize("dac_bits", [None, 8])
def test_float32_inputs_read_exactly_as_their_float64_values(dac_bits):
    """mvm converts float32 inputs itself (in the DAC kernel, or once after the range
    check): the same outputs, bit for bit, as for the same values in float64; a value
    between the full scale and its float32 rounding is clipped as in float64."""
    rng = np.random.default_rng(5)
    config = CrossbarConfig(periphery=Periphery(dac_bits=dac_bits, adc_bits=None), nonideal=Nonidealities(programming_sigma=0.03))
    layer = imclib.layer.with_ranges(program_layer(rng.normal(size=(10, 3)), config, 0), 0.1, False)
    assert float(np.float32(0.1)) > 0.1  # the float32 nearest 0.1 lies above it: float32 comparisons would not clip it
    x = rng.uniform(0, 0.1, size=(25, 10)).astype(np.float32)
    x[0, 0] = np.float32(0.1)
    np.testing.assert_array_equal(layer.applied_inputs(x), layer.applied_inputs(x.astype(np.float64)))
    assert layer.applied_inputs(x).dtype == np.float64 and layer.applied_inputs(x)[0, 0] <= 0.1
    np.testing.assert_array_equal(layer.mvm(x, 1), layer.mvm(x.astype(np.float64), 1))


def test_in_float64_equals_numpy_conversion_and_range_count():
    rng = np.random.default_rng(8)
    x = (rng.normal(size=(37, 13)) * 1e3).astype(np.float32)
    x[3, 4], x[5, 6] = np.finfo(np.float32).max, -np.finfo(np.float32).tiny
    for values in (x, x.astype(np.float64), x.astype(np.float64)[:, ::2]):
        for low, high in [(-1e3, 1e3), (-np.inf, np.inf), (float(x.min()), float(x.max())), (0.0, 0.0)]:
            converted, beyond = kernels.in_float64(values, low, high)
            np.testing.assert_array_equal(converted, values.astype(np.float64))
            assert converted.dtype == np.float64 and beyond == np.count_nonzero((values < low) | (values > high))
            assert (converted is values) == (values.dtype == np.float64 and values.flags.c_contiguous)  # no copy of float64
    with pytest.raises(ValueError, match="values must be float32 or float64"):
        kernels.in_float64(np.arange(6).reshape(2, 3), 0.0, 1.0)
    # a float32 input that clips: the clipped float64 copy, x itself untouched
    layer = imclib.layer.with_ranges(program_layer(rng.normal(size=(13, 3)), CrossbarConfig(periphery=Periphery(dac_bits=None, adc_bits=None)), 0), 100.0, True)
    before = x.copy()
    np.testing.assert_array_equal(layer.applied_inputs(x), np.clip(x.astype(np.float64), -100.0, 100.0))
    np.testing.assert_array_equal(x, before)


def test_read_scales_its_inputs_to_volts_exactly():
    rng = np.random.default_rng(6)
    inputs = rng.uniform(0, 1, size=(20, 3, 4)) * (rng.uniform(size=(20, 3, 4)) < 0.6)
    masks = rng.uniform(1e-6, 1e-4, size=(3, 4, 1, 5))
    scale = 0.1 / 0.7
    noise = {"read_var": 0.01**2, "sense_var": 1e-16, "key": np.uint64(9)}
    matrices = kernels.ReadMatrices(masks, np.square(masks))
    scaled = kernels.read(inputs, matrices, None, volts_per_unit=scale, **noise)[0]
    np.testing.assert_array_equal(scaled, kernels.read(inputs * scale, matrices, None, **noise)[0])


def test_one_pass_read_refuses_masks_that_are_not_one_hot():
    masks = np.zeros((1, 4, 4, 3))
    masks[0, :, 0] = 1.0
    masks[0, 2, 3, 1] = 2.0  # cell (2, 1) has two levels
    table = LevelTable.build(lambda v: np.stack([np.full_like(v, g) for g in (1e-5, 2e-5, 3e-5, 4e-5)], axis=-1), 0.2)
    with pytest.raises(ValueError, match="masks must be one-hot"):
        kernels.read(np.full((2, 1, 4), 0.1), kernels.ReadMatrices(masks, None, table.segments, table.per_volt), None,
                     read_var=1e-4, key=np.uint64(1))


def test_layers_of_one_device_share_one_read_only_level_table():
    config = CrossbarConfig()
    first, second = (program_layer(np.full((8, 3), w), config, seed) for w, seed in ((0.1, 0), (-0.2, 1)))
    assert first.levels is second.levels
    assert not first.levels.segments.flags.writeable
    fresh = LevelTable.build(lambda v: config.cell.conductances(v, config.actual_mtj), config.v_read, 4097)
    np.testing.assert_array_equal(first.levels.segments, fresh.segments)


def test_a_read_of_unpadded_rows_equals_the_read_of_zero_padded_arrays():
    """25 inputs on arrays of 4 rows: the last array's 3 missing rows read as 0 V, the same
    sums and saturations as an explicit zero-padded (batch, 7, 4) read, silent arrays included."""
    rng = np.random.default_rng(11)
    layer = program_layer(rng.normal(size=(25, 6)), CrossbarConfig(), 0)
    matrices = layer._read_matrices
    x = rng.uniform(0, 0.2, size=(40, 25)) * (rng.uniform(size=(40, 25)) < 0.3)
    padded = np.zeros((40, 28))
    padded[:, :25] = x
    full_scale = np.quantile(np.abs(kernels.partial_currents(x, matrices)), 0.9, axis=(0, 1))  # some conversions saturate
    adc = imclib.periphery.adc_constants(6, full_scale, True, layer.layout.n_physical)
    noise = {"read_var": 1e-4, "sense_var": (0.2 * full_scale.min() / 32) ** 2, "key": np.uint64(3)}
    silent_arrays = np.count_nonzero(~np.any(padded.reshape(40, 7, 4), axis=2), axis=1)
    assert kernels.silent_tables(adc, noise["sense_var"], silent_arrays)[0].size > 0
    unpadded = kernels.read(x, matrices, adc, **noise)
    explicit = kernels.read(padded.reshape(40, 7, 4), matrices, adc, **noise)
    np.testing.assert_array_equal(unpadded[0], explicit[0])
    assert unpadded[1] == explicit[1] > 0
    np.testing.assert_array_equal(kernels.partial_currents(x, matrices), kernels.partial_currents(padded, matrices))
    for width in (24, 29):
        with pytest.raises(ValueError, match="voltages must drive 25..28 rows of the 7 arrays of 4 rows, got " + str(width)):
            kernels.read(np.zeros((40, width)), matrices, adc, **noise)


def test_read_matrices_refuse_mismatched_shapes_and_derive_cells_only_for_one_pass_reads():
    masks = np.zeros((2, 4, 5, 3))
    with pytest.raises(ValueError, match=r"masks and masks2 must have shapes .* got \(2, 4, 5, 3\) and \(2, 4, 4, 2\)"):
        kernels.ReadMatrices(masks, np.zeros((2, 4, 4, 2)))
    with pytest.raises(ValueError, match=r"got \(2, 4, 3\) and None"):
        kernels.ReadMatrices(masks[:, :, 0], None)
    with pytest.raises(ValueError, match="cells exist for one-hot masks of 4-level cells only"):
        kernels.ReadMatrices(masks, np.zeros((2, 4, 1, 3))).cells
    with pytest.raises(ValueError, match=r"mirror and reference must have shape \(3,\), reference indices in \[0, 3\)"):
        kernels.ReadMatrices(masks, None, mirror=np.ones(3), reference=np.array([2, 2, 3]))
    with pytest.raises(ValueError, match=r"a reference column must not mirror another column"):
        kernels.ReadMatrices(masks, None, mirror=np.array([0.5, 0.5, 0.5]), reference=np.array([2, 2, 2]))


def test_the_reference_columns_mirror_is_the_reads_own_step():
    """With the input sum read from a reference column, bias-dependent layers keep one-hot
    masks (the fast one-pass reads) and subtract the mirrored reference current after the sums:
    the partial currents equal those of the numpy path, which subtracts ``m_j I_ref`` from
    the summed column currents (:meth:`ProgrammedLayer.subtract_common_mode`)."""
    rng = np.random.default_rng(12)
    layer = program_layer(rng.normal(size=(25, 9)), CrossbarConfig().with_(input_sum="reference"), 0)
    matrices = layer._read_matrices
    assert matrices.one_pass and matrices.mirror.size and np.any(matrices.mirror)
    volts = layer.config.v_read * rng.uniform(-1, 1, size=(30, 28)) * (rng.uniform(size=(30, 28)) < 0.5)
    volts[:, 25:] = 0.0
    fused = kernels.partial_currents(volts, matrices)
    numpy_path = layer._block_currents(volts, layer.row_blocks)
    np.testing.assert_allclose(fused, numpy_path, rtol=1e-12, atol=1e-12 * np.abs(numpy_path).max())
    assert np.abs(numpy_path[..., layer.layout.weight]).max() > 0
