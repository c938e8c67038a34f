"""Tiled-layer MVM: the ideal limit, hand-computed arrays, noise, determinism, bad input."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imclib import (
    CellLevels,
    CrossbarConfig,
    Nonidealities,
    Periphery,
    nrmse,
    program_layer,
    simulate_mvm,
)
from imclib.array import bias_dependent_currents, column_currents
from imclib.deploy import calibrate
from imclib.mapping import quantize_weights


def _problem(n_in=24, n_out=10, batch=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n_in, n_out)), rng.normal(size=(batch, n_in))


@settings(max_examples=60, deadline=None)
@given(
    n_in=st.integers(1, 40),
    n_out=st.integers(1, 20),
    batch=st.integers(1, 5),
    rows=st.integers(1, 8),
    cols=st.integers(2, 8),
    mapping=st.sampled_from(["offset", "differential"]),
    scale=st.sampled_from(["column", "layer"]),
    reference=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_ideal_limit_reproduces_matmul(n_in, n_out, batch, rows, cols, mapping, scale, reference, seed):
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(n_in, n_out)) * rng.uniform(0.01, 100)
    inputs = rng.normal(size=(batch, n_in)) * rng.uniform(0.01, 100)
    input_sum = "reference" if reference and mapping == "offset" else "digital"
    config = CrossbarConfig.ideal(rows, cols).with_(mapping=mapping, scale=scale, input_sum=input_sum)
    expected = inputs @ weights
    result = simulate_mvm(weights, inputs, config)
    assert result.shape == expected.shape
    assert np.linalg.norm(result - expected) <= 1e-9 * np.linalg.norm(expected) + 1e-300


def test_ideal_limit_with_many_uniform_states_and_fine_converters():
    weights, inputs = _problem()
    config = CrossbarConfig.quantization_only(CellLevels(2**20 + 1, "uniform"))
    assert nrmse(simulate_mvm(weights, inputs, config), inputs @ weights) < 1e-5


def test_hand_computed_2x2_array():
    g = np.array([[1e-4, 2e-4], [3e-4, 4e-4]])  # siemens
    v = np.array([0.1, 0.2])  # volts
    currents = column_currents(v[None, None, :], g[None])[0, 0]
    np.testing.assert_allclose(currents, [7e-5, 1e-4], rtol=1e-15)  # amperes


def test_hand_computed_4x4_array():
    r = np.array(
        [[18e3, 18e3, 36e3, 36e3], [18e3, 24e3, 36e3, 30e3], [18e3, 30e3, 36e3, 24e3], [18e3, 36e3, 36e3, 18e3]]
    )
    v = np.array([0.2, 0.1, 0.0, -0.1])
    # column 0: 0.2/18k; column 1: 1/90000 + 1/240000 - 1/360000 = 9/720000; ...
    expected = [0.2 / 18e3, 9 / 720000, 0.2 / 36e3, 1 / 300000]
    currents = column_currents(v[None, None, :], 1 / r[None])[0, 0]
    np.testing.assert_allclose(currents, expected, rtol=1e-14)


def test_single_array_decode_hand_case():
    # 1 input, 1 output, 2-state uniform cell 1/12k..1/6k S; naive map: w in [-1, 1] -> G in
    # [Gmin, Gmax], so w = 0 sits at G0 = 1/8k S and the offset current G0 * V is subtracted
    config = CrossbarConfig.quantization_only(CellLevels(2, "uniform"), v_read=0.1, weight_map="naive")
    layer = program_layer(np.array([[1.0]]), config, input_range=0.5, input_signed=False)
    assert layer.conductance[0, 0] == pytest.approx(1 / 6e3)
    assert layer.common_mode[0] == pytest.approx(1 / 8e3)
    currents, applied, s = layer.column_currents(np.array([[0.5]]))
    # x = 0.5 is the DAC full scale, so V = 0.1 V, I' = 0.1 V * (1/6k - 1/8k) S
    assert currents[0, 0] == pytest.approx(0.1 * (1 / 6e3 - 1 / 8e3))
    assert layer.mvm(np.array([[0.5]]))[0, 0] == pytest.approx(0.5)
    # without the subtraction the whole column current reaches the ADC; same decoded value
    worst = program_layer(np.array([[1.0]]), config.with_(adc_calibration="worst_case"), input_range=0.5)
    assert worst.column_currents(np.array([[0.5]]))[0][0, 0] == pytest.approx(0.1 / 6e3)
    assert worst.mvm(np.array([[0.5]]))[0, 0] == pytest.approx(0.5)


@pytest.mark.parametrize("kind", ["uniform", "series"])
def test_quantization_error_shrinks_with_states(kind):
    weights, inputs = _problem(64, 16, 32)
    errors = [
        nrmse(simulate_mvm(weights, inputs, CrossbarConfig.quantization_only(CellLevels(n, kind))), inputs @ weights)
        for n in (2, 3, 5, 9, 17, 33)
    ]
    assert np.all(np.diff(errors) < 0), errors
    assert errors[-1] < 0.1 * errors[0]


def test_quantized_weights_lie_on_the_level_image():
    weights, _ = _problem()
    config = CrossbarConfig.quantization_only(scale="layer", weight_map="naive")
    quantized = quantize_weights(weights, config)
    assert np.unique(quantized.round(12)).size == 4
    assert np.max(np.abs(quantized)) == pytest.approx(np.max(np.abs(weights)))
    calibrated = quantize_weights(weights, config.with_(weight_map="calibrated"))
    assert np.unique(calibrated.round(12)).size == 4
    assert np.mean((calibrated - weights) ** 2) < np.mean((quantized - weights) ** 2)


def test_zero_sigma_changes_nothing():
    weights, inputs = _problem()
    base = CrossbarConfig.quantization_only()
    zero = base.with_(nonideal=Nonidealities(programming_sigma=0.0, read_sigma=0.0, stuck_fraction=0.0))
    np.testing.assert_array_equal(simulate_mvm(weights, inputs, base, 1), simulate_mvm(weights, inputs, zero, 2))


def test_same_seed_same_numbers_other_seed_other_numbers():
    weights, inputs = _problem()
    config = CrossbarConfig().with_(
        nonideal=Nonidealities(programming_sigma=0.05, read_sigma=0.02, stuck_fraction=0.01),
        periphery=Periphery(sense_noise=1e-8),
    )
    first = simulate_mvm(weights, inputs, config, np.random.default_rng(7))
    np.testing.assert_array_equal(first, simulate_mvm(weights, inputs, config, np.random.default_rng(7)))
    assert not np.allclose(first, simulate_mvm(weights, inputs, config, np.random.default_rng(8)))


def test_reference_column_equals_digital_sum_without_noise():
    weights, inputs = _problem()
    config = CrossbarConfig.quantization_only()
    digital = simulate_mvm(weights, inputs, config)
    reference = simulate_mvm(weights, inputs, config.with_(input_sum="reference"))
    np.testing.assert_allclose(reference, digital, rtol=1e-10, atol=1e-12 * np.abs(digital).max())


def test_reused_array_repeats_its_deviations_in_every_tile():
    weights, _ = _problem(12, 8)
    config = CrossbarConfig().with_(scenario="reused", nonideal=Nonidealities(programming_sigma=0.1))
    variation = program_layer(weights, config, 3).variation
    tiles = variation.reshape(3, 4, 2, 4).transpose(0, 2, 1, 3).reshape(6, 4, 4)
    assert np.all(tiles == tiles[0])
    per_tile = program_layer(weights, config.with_(scenario="per_tile"), 3).variation
    assert not np.allclose(per_tile[:4, :4], per_tile[4:8, :4])


def test_read_noise_variance_matches_per_cell_sampling():
    rng = np.random.default_rng(0)
    weights, x = rng.normal(size=(8, 3)), rng.uniform(0, 1, size=(1, 8))
    sigma = 0.05
    config = CrossbarConfig.quantization_only().with_(nonideal=Nonidealities(read_sigma=sigma))
    layer = program_layer(weights, config, rng)
    reads = 20000
    aggregated = layer.mvm(np.repeat(x, reads, axis=0), rng)
    # direct: redraw every cell's conductance for every read, then Kirchhoff and the same decode
    _, voltages, s = layer.row_voltages(x)
    noisy_g = layer.conductance * (1 + sigma * rng.standard_normal((reads,) + layer.conductance.shape))
    currents = np.einsum("k,rkp->rp", voltages[0], noisy_g - layer.common_mode)  # offset current subtracted
    direct = layer.decode(currents, np.repeat(x, reads, axis=0), s)
    np.testing.assert_allclose(aggregated.mean(0), direct.mean(0), atol=4 * direct.std(0).max() / np.sqrt(reads) * 2)
    np.testing.assert_allclose(aggregated.std(0), direct.std(0), rtol=0.05)


def test_bias_dependent_currents_match_direct_per_cell_sum():
    rng = np.random.default_rng(1)
    levels = CellLevels(4, "binary")
    state = rng.integers(0, 4, size=(2, 3, 5))
    variation = np.exp(0.1 * rng.standard_normal((2, 3, 5)))
    voltages = rng.uniform(-0.2, 0.2, size=(6, 2, 3))
    fast = bias_dependent_currents(voltages, levels.conductances(voltages), state, variation)
    cell_g = np.take_along_axis(
        levels.conductances(voltages)[..., None, :].repeat(5, axis=-2), state[None, ..., None], axis=-1
    )[..., 0]
    direct = np.sum(voltages[..., None] * cell_g * variation, axis=-2)
    np.testing.assert_allclose(fast, direct, rtol=1e-13)


def test_adc_with_many_bits_is_transparent_and_few_bits_are_not():
    weights, inputs = _problem()
    config = CrossbarConfig.quantization_only()
    reference = simulate_mvm(weights, inputs, config)
    fine = simulate_mvm(weights, inputs, config.with_(periphery=Periphery(adc_bits=30)))
    coarse = simulate_mvm(weights, inputs, config.with_(periphery=Periphery(adc_bits=3)))
    assert nrmse(fine, reference) < 1e-7
    assert nrmse(coarse, reference) > 1e-2


def test_dac_quantizes_inputs():
    weights, inputs = _problem()
    config = CrossbarConfig.ideal()
    with_dac = simulate_mvm(weights, inputs, config.with_(periphery=Periphery(dac_bits=4)))
    x_max = np.abs(inputs).max()
    step = 2 * x_max / 15
    expected_inputs = -x_max + np.rint((inputs + x_max) / step) * step
    np.testing.assert_allclose(with_dac, expected_inputs @ weights, rtol=1e-9, atol=1e-12)


def test_adc_saturation_is_reported():
    weights, inputs = _problem()
    config = CrossbarConfig.quantization_only().with_(periphery=Periphery(adc_bits=8, adc_range=1e-7))
    with pytest.warns(RuntimeWarning, match="saturated"):
        simulate_mvm(weights, inputs, config)


def test_percentile_range_reports_clipping():
    weights, _ = _problem(100, 10)
    naive = CrossbarConfig.quantization_only(weight_map="naive")
    layer = program_layer(weights, naive.with_(weight_percentile=90.0))
    assert 0.05 < layer.weight_map.clipped_fraction < 0.15
    assert program_layer(weights, naive).weight_map.clipped_fraction == 0


def test_systematic_sources_change_the_result():
    weights, inputs = _problem()
    base = CrossbarConfig.quantization_only()
    reference = simulate_mvm(weights, inputs, base)
    for nonideal in (
        Nonidealities(rp_error=0.05),
        Nonidealities(tmr_error=-0.1),
        Nonidealities(bias_dependence=True),
        Nonidealities(decode_as_uniform=True),
    ):
        result = simulate_mvm(weights, inputs, base.with_(nonideal=nonideal))
        assert nrmse(result, reference) > 1e-3, nonideal


def test_no_warnings_on_default_config():
    weights, inputs = _problem()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        simulate_mvm(weights, inputs, CrossbarConfig(), 0)


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda w, x: simulate_mvm(w * np.nan, x), "weights"),
        (lambda w, x: simulate_mvm(w, x * np.inf), "inputs"),
        (lambda w, x: simulate_mvm(w, x[:, :-1]), "inputs"),
        (lambda w, x: simulate_mvm(w[0], x), "weights"),
        (lambda w, x: CrossbarConfig(rows=0), "rows"),
        (lambda w, x: CrossbarConfig(cols=0), "cols"),
        (lambda w, x: Periphery(adc_bits=0), "adc_bits"),
        (lambda w, x: Periphery(dac_bits=0), "dac_bits"),
        (lambda w, x: Periphery(sense_noise=-1e-9), "sense_noise"),
        (lambda w, x: Nonidealities(programming_sigma=-0.1), "programming_sigma"),
        (lambda w, x: Nonidealities(read_sigma=-0.1), "read_sigma"),
        (lambda w, x: Nonidealities(stuck_fraction=1.5), "stuck_fraction"),
        (lambda w, x: CrossbarConfig(v_read=0.0), "v_read"),
        (lambda w, x: CrossbarConfig(mapping="triple"), "mapping"),
        (lambda w, x: CrossbarConfig(weight_percentile=20.0), "weight_percentile"),
        (lambda w, x: CrossbarConfig(weight_map="max"), "weight_map"),
        (lambda w, x: CrossbarConfig(input_percentile=120.0), "input_percentile"),
        (lambda w, x: CrossbarConfig(adc_percentile=10.0), "adc_percentile"),
        (lambda w, x: CrossbarConfig(adc_calibration="none"), "adc_calibration"),
        (lambda w, x: program_layer(w, CrossbarConfig(), input_range=0.0), "input_range"),
        (lambda w, x: CrossbarConfig(mapping="differential", input_sum="reference"), "input_sum"),
        (lambda w, x: CrossbarConfig(quantize=False), "quantize"),
        (lambda w, x: program_layer(w, CrossbarConfig()).mvm(x[:, :3]), "x"),
    ],
)
def test_bad_input_names_the_parameter(call, name):
    weights, inputs = _problem()
    with pytest.raises(ValueError, match=name):
        call(weights, inputs)


def test_interpolated_level_conductances_match_the_cell_model():
    from imclib.array import LevelTable

    levels = CellLevels(4, "binary")
    voltages = np.random.default_rng(2).uniform(-0.2, 0.2, size=(300, 40))  # 12000 distinct values
    table = LevelTable.build(levels.conductances, float(np.abs(voltages).max()))
    np.testing.assert_allclose(table.levels(voltages), levels.conductances(voltages), rtol=1e-9)
    at_zero = LevelTable.build(levels.conductances, 0.0)
    np.testing.assert_array_equal(at_zero.levels(np.zeros(3)), [levels.conductances()] * 3)


def test_mvm_reads_nested_lists_and_float32_as_it_reads_float64_arrays():
    weights, x = _problem(n_in=10, n_out=5, batch=6)
    x = np.abs(x)
    layer = calibrate(program_layer(weights, CrossbarConfig(), 0), x)
    expected = layer.mvm(x, 4)
    np.testing.assert_array_equal(layer.mvm(x.tolist(), 4), expected)
    x32 = x.astype(np.float32)
    np.testing.assert_array_equal(layer.mvm(x32, 4), layer.mvm(x32.astype(np.float64), 4))
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 10\), got \(6, 9\)"):
        layer.mvm(x[:, :9], 4)
