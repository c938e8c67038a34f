"""Deployment: calibrated weight map, fixed converter ranges, common-mode subtraction,
mean-normalised variation, and rows independent of their batch."""

import warnings

import numpy as np
import pytest

import imclib.layer
from imclib import CellLevels, CrossbarConfig, Nonidealities, Periphery, deploy, kernels, nrmse, program_layer
from imclib.circuit import WireParasitics
from imclib.deploy import calibrate, column_correction, deploy_network, fit_columns, input_full_scale, partial_signal
from imclib.mapping import fit_affine_map, map_weights, quantize_weights
from imclib.mlp import MLP
from imclib.network import hardware_logits
from imclib.nonidealities import draw_variation


# --- calibrated (MSE-optimal) affine map -------------------------------------------------

def test_mse_optimal_map_on_a_three_level_toy_cell():
    # levels L = {0, 1, 3} (uneven); weights sit +-d around the affine image 2 L - 1, so the
    # optimum is a = 2, b = -1 with every weight assigned to its own level and MSE d^2
    values, d = np.array([0.0, 1.0, 3.0]), 0.1
    image = 2 * values - 1
    weights = np.concatenate([image - d, image + d])[:, None]
    gain, offset, assignment = fit_affine_map(weights, values)
    assert gain[0] == pytest.approx(2.0) and offset[0] == pytest.approx(-1.0)
    np.testing.assert_array_equal(assignment[:, 0], [0, 1, 2, 0, 1, 2])
    error = np.mean((weights[:, 0] - gain[0] * values[assignment[:, 0]] - offset[0]) ** 2)
    assert error == pytest.approx(d**2)
    # the naive symmetric range [-max|w|, max|w|] onto [0, 3] puts levels at {-5.1, -1.7, 5.1}
    w_max = np.abs(weights).max()
    naive = -w_max + 2 * w_max / 3 * values
    naive_error = np.mean(np.min((weights - naive) ** 2, axis=1))
    assert naive_error > 10 * error


def test_affine_fit_beats_a_brute_force_grid():
    rng = np.random.default_rng(0)
    values = CellLevels(4, "binary").conductances()
    weights = rng.standard_t(4, size=(300, 3)) + rng.normal(size=3)  # heavy tails, off-centre
    gain, offset, assignment = fit_affine_map(weights, values)
    error = np.mean((weights - gain * values[assignment] - offset) ** 2, axis=0)
    for j in range(3):
        w = weights[:, j]
        best = np.inf
        for low in np.linspace(w.min(), np.median(w), 60):
            for high in np.linspace(np.median(w), w.max(), 60):
                for lo, hi in ((low, high), (high, low)):  # both orientations of a
                    levels = lo + (hi - lo) * (values - values[0]) / (values[-1] - values[0])
                    best = min(best, np.mean(np.min((w[:, None] - levels) ** 2, axis=1)))
        assert error[j] <= best * 1.001


@pytest.mark.parametrize("mapping", ["offset", "differential"])
def test_bias_correction_keeps_every_column_mean(mapping):
    rng = np.random.default_rng(1)
    weights = rng.normal(0.2, 1.0, size=(64, 7)) ** 3
    config = CrossbarConfig.quantization_only(mapping=mapping)
    quantized = quantize_weights(weights, config)
    np.testing.assert_allclose(quantized.mean(axis=0), weights.mean(axis=0), atol=1e-12)
    naive = quantize_weights(weights, config.with_(weight_map="naive"))
    assert np.mean((quantized - weights) ** 2) < np.mean((naive - weights) ** 2)


def test_calibrated_map_on_a_three_state_cell_beats_the_naive_one():
    rng = np.random.default_rng(2)
    weights, x = rng.normal(size=(48, 12)), rng.uniform(size=(32, 48))
    cell = CellLevels(3, "series")
    errors = {kind: nrmse(x @ quantize_weights(weights, CrossbarConfig.quantization_only(cell, weight_map=kind)), x @ weights)
              for kind in ("calibrated", "naive")}
    assert errors["calibrated"] < 0.7 * errors["naive"]


def test_differential_pairs_hold_one_cell_at_g_min():
    rng = np.random.default_rng(3)
    targets, weight_map = map_weights(rng.normal(size=(20, 5)), CrossbarConfig.quantization_only(mapping="differential"))
    assert targets.shape == (20, 5, 2)
    assert np.all(np.minimum(targets[..., 0], targets[..., 1]) == 0)


# --- fixed converter ranges ----------------------------------------------------------------

def test_common_mode_subtraction_with_a_reference_column_by_hand():
    # one weight and a reference column (cells at G_max) in one 1 x 2 array; naive map on a
    # 2-state uniform cell 1/12k..1/6k S: w = 0 sits at G0 = 1/8k S, mirror ratio G0/G_max = 3/4
    config = CrossbarConfig.quantization_only(CellLevels(2, "uniform"), rows=1, cols=2, weight_map="naive",
                                              input_sum="reference")
    layer = program_layer(np.array([[-1.0]]), config, input_range=2.0, input_signed=False)
    assert layer.mirror[0] == pytest.approx(0.75) and layer.mirror[1] == 0
    currents, applied, s = layer.column_currents(np.array([[1.0]]))  # V = 0.05 V
    # I = 0.05 / 12k (w = -1 at G_min), I_ref = 0.05 / 6k, I' = I - 0.75 I_ref
    assert currents[0, 0] == pytest.approx(0.05 / 12e3 - 0.75 * 0.05 / 6e3)
    assert currents[0, 1] == pytest.approx(0.05 / 6e3)
    assert layer.mvm(np.array([[1.0]]))[0, 0] == pytest.approx(-1.0)


def test_clipped_dac_by_hand():
    config = CrossbarConfig.quantization_only(CellLevels(2, "uniform"), weight_map="naive").with_(
        periphery=Periphery(dac_bits=2))
    layer = program_layer(np.array([[1.0]]), config, input_range=1.5, input_signed=False)
    # 2-bit unipolar DAC on [0, 1.5]: codes 0, 0.5, 1, 1.5; 2.0 clips to 1.5, 0.6 rounds to 0.5
    x = np.array([[2.0], [0.6], [-0.3]])
    np.testing.assert_allclose(layer.applied_inputs(x), [[1.5], [0.5], [0.0]])
    np.testing.assert_allclose(layer.mvm(x), [[1.5], [0.5], [0.0]], rtol=1e-12, atol=1e-15)
    assert layer.clipped_fraction(x) == pytest.approx(2 / 3)


def test_dac_full_scale_is_a_percentile_of_the_calibration_inputs():
    x = np.arange(100.0).reshape(50, 2)  # |x| = 0 .. 99
    assert input_full_scale(x, 90.0) == pytest.approx(np.percentile(np.arange(100.0), 90.0))
    config = CrossbarConfig.quantization_only(input_percentile=90.0)
    layer = calibrate(program_layer(np.ones((2, 3)), config), x)
    assert layer.input_range == pytest.approx(89.1) and not layer.input_signed
    assert layer.clipped_fraction(x) == pytest.approx(0.10)
    assert calibrate(layer, x, input_range=5.0).input_range == 5.0


@pytest.mark.parametrize("shape", [(1, 1), (7, 3), (1000, 784), (40000, 25)])
@pytest.mark.parametrize("percentile", [0.0, 50.0, 99.9, 99.99, 100.0])
def test_dac_full_scale_equals_numpy_percentile_exactly(shape, percentile):
    # the large shapes take the sampled bound; ties (the zeros, repeated values) and signs included
    rng = np.random.default_rng(hash((shape, percentile)) % 2**32)
    x = np.round(rng.standard_normal(shape), 2) * (rng.random(shape) < 0.6)
    expected = float(np.percentile(np.abs(x), percentile))
    assert input_full_scale(x, percentile) == (expected if expected > 0 else 1.0)


def test_adc_full_scale_is_the_percentile_of_the_signal_per_column():
    rng = np.random.default_rng(4)
    weights, x = rng.normal(size=(16, 6)), rng.uniform(size=(100, 16))
    config = CrossbarConfig.quantization_only(adc_percentile=99.0).with_(periphery=Periphery(adc_bits=8))
    layer = calibrate(program_layer(weights, config, 0), x)
    signal = np.abs(partial_signal(layer, x)).reshape(-1, layer.layout.n_physical)
    np.testing.assert_allclose(layer.adc_range[:6], np.percentile(signal, 99.0, axis=0)[:6], rtol=1e-12)
    assert layer.adc_signed  # the signal takes both signs once the common mode is gone
    worst = calibrate(program_layer(weights, config.with_(adc_calibration="worst_case"), 0), x)
    assert np.all(worst.adc_range == config.rows * config.v_read * layer.weight_map.levels[-1])
    assert np.all(layer.adc_range < 0.5 * worst.adc_range)


@pytest.mark.parametrize("config", [
    CrossbarConfig(),
    CrossbarConfig.quantization_only().with_(periphery=Periphery(adc_bits=8)),
    CrossbarConfig().with_(rows=8, cols=8),
], ids=["default", "linear cells", "8x8 arrays"])
def test_streamed_adc_calibration_equals_the_percentile_of_the_stored_currents(config):
    """The ADC ranges and the saturated fraction of the deployment report, from the largest
    partial currents streamed in groups of inputs (never stored), equal those of the stored
    currents (numpy's percentile and count), on more inputs than one group."""
    rng = np.random.default_rng(7)
    weights, x = rng.normal(size=(40, 12)), rng.uniform(size=(150, 40)) * (rng.uniform(size=(150, 40)) < 0.6)
    layer, summary = deploy._calibrated(program_layer(weights, config, 3), x, None, 100)
    assert isinstance(summary, kernels.Largest) and x[::2].shape[0] > imclib.layer._LARGEST_INPUTS
    stored = np.abs(partial_signal(layer, x[::2])).reshape(-1, layer.layout.n_physical)  # the same 75 inputs
    expected = np.percentile(stored, config.adc_percentile, axis=0)
    np.testing.assert_array_equal(layer.adc_range, np.where(expected > 0, expected, layer.adc_range))
    report = deploy._report(layer, x, summary)
    assert report["adc_saturated"] == np.count_nonzero(stored > layer.adc_range) / stored.size > 0
    assert report == deploy.range_report(layer, x, 100)


def test_calibrated_adc_range_beats_the_worst_case_at_six_bits():
    rng = np.random.default_rng(5)
    weights, x = rng.normal(size=(64, 16)), rng.uniform(size=(200, 64))
    base = CrossbarConfig.quantization_only()
    exact = calibrate(program_layer(weights, base), x).mvm(x)
    errors = {}
    for mode in ("signal", "worst_case"):
        config = base.with_(periphery=Periphery(adc_bits=6), adc_calibration=mode)
        errors[mode] = nrmse(calibrate(program_layer(weights, config), x).mvm(x), exact)
    assert errors["signal"] < 0.5 * errors["worst_case"]


# --- mean-normalised variation -------------------------------------------------------------

def test_programming_variation_has_mean_one():
    sigma, n = 0.3, 400_000
    factors = draw_variation((n,), sigma, np.random.default_rng(6))
    standard_error = np.sqrt(np.expm1(sigma**2) / n)
    assert abs(factors.mean() - 1.0) < 4 * standard_error  # exp(sigma z) would be 1.046 (100 SE off)
    assert np.std(np.log(factors)) == pytest.approx(sigma, rel=0.01)


def test_programmed_conductances_have_the_target_as_their_mean():
    config = CrossbarConfig.quantization_only().with_(nonideal=Nonidealities(programming_sigma=0.2))
    layer = program_layer(np.random.default_rng(7).normal(size=(400, 100)), config, 8)
    nominal = config.cell.conductances()[layer.state]
    ratio = layer.conductance / nominal
    assert abs(ratio.mean() - 1.0) < 4 * ratio.std() / np.sqrt(ratio.size)


# --- no row depends on its batch ---------------------------------------------------------

WIRES = WireParasitics(r_row=2.0, r_col=3.0)
PATHS = {
    "offset digital": {},
    "offset reference": {"input_sum": "reference"},
    "differential": {"mapping": "differential"},
    "no ADC": {"periphery": Periphery(dac_bits=8)},
    "no DAC": {"periphery": Periphery(adc_bits=8)},
    "no converters": {"periphery": Periphery()},
    "worst-case ADC": {"adc_calibration": "worst_case"},
    "naive map": {"weight_map": "naive"},
    "wires": {"wires": WIRES},
    "bias dependence": {"nonideal": Nonidealities(programming_sigma=0.03, bias_dependence=True)},
    "bias dependence and wires": {"nonideal": Nonidealities(bias_dependence=True), "wires": WIRES},
}


@pytest.mark.parametrize("changes", PATHS.values(), ids=PATHS.keys())
def test_every_row_is_independent_of_its_batch(changes):
    rng = np.random.default_rng(9)
    weights, x = rng.normal(size=(20, 9)), rng.uniform(size=(1000, 20))
    config = CrossbarConfig().with_(nonideal=Nonidealities(programming_sigma=0.03), periphery=Periphery(
        dac_bits=8, adc_bits=8)).with_(**changes)
    assert config.nonideal.read_sigma == 0 and config.periphery.sense_noise == 0  # noise off
    layer = calibrate(program_layer(weights, config, 1), x[:200])
    whole = layer.mvm(x)
    for row in (0, 1, 999):
        np.testing.assert_array_equal(layer.mvm(x[row : row + 1]), whole[row : row + 1])
    outlier = np.vstack([x[:1], 100 * x[1:2]])  # a huge neighbour changes nothing
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the neighbour itself saturates the ADC
        np.testing.assert_array_equal(layer.mvm(outlier)[:1], whole[:1])


def test_a_batch_of_one_and_a_batch_of_ten_thousand_give_identical_rows():
    rng = np.random.default_rng(10)
    weights, biases = [rng.normal(size=(30, 16)) / 5, rng.normal(size=(16, 10)) / 4], [np.zeros(16), np.zeros(10)]
    model = MLP(weights, biases)
    x = rng.uniform(size=(10_000, 30))
    config = CrossbarConfig().with_(nonideal=Nonidealities(programming_sigma=0.03, bias_dependence=True),
                                    periphery=Periphery(dac_bits=8, adc_bits=8))
    calibration = rng.uniform(size=(500, 30))
    whole = hardware_logits(model, x, config, 3, calibration)
    for row in (0, 4321, 9999):
        np.testing.assert_array_equal(hardware_logits(model, x[row : row + 1], config, 3, calibration),
                                      whole[row : row + 1])


# --- the deployed network ------------------------------------------------------------------

def test_ideal_deployment_reproduces_the_float_network():
    rng = np.random.default_rng(11)
    model = MLP([rng.normal(size=(12, 8)), rng.normal(size=(8, 3))], [rng.normal(size=8), rng.normal(size=3)])
    x = rng.normal(size=(50, 12))
    layers, report = deploy_network(model, CrossbarConfig.ideal(), x, 0)
    assert list(report.layer) == [0, 1] and np.all(report.input_clipped == 0)
    assert all(layer.correction is not None for layer in layers)  # the column calibration is on, and exact
    logits = model.forward(x, matmul=lambda i, a, w: layers[i].mvm(a))
    np.testing.assert_allclose(logits, model.forward(x), rtol=1e-9, atol=1e-9)


def test_deployment_reports_clipping_and_accepts_explicit_ranges():
    rng = np.random.default_rng(12)
    model = MLP([rng.normal(size=(12, 8)), rng.normal(size=(8, 3))], [np.zeros(8), np.zeros(3)])
    x = rng.uniform(size=(400, 12))
    _, report = deploy_network(model, CrossbarConfig().with_(input_percentile=95.0), x, 0)
    assert 0.02 < report.input_clipped[0] < 0.08
    layers, report = deploy_network(model, CrossbarConfig(), x, 0, input_ranges=[0.5, 100.0])
    assert layers[0].input_range == 0.5 and layers[1].input_range == 100.0
    assert report.input_clipped[0] == pytest.approx(np.mean(x > 0.5))
    with pytest.raises(ValueError, match="input_ranges"):
        deploy_network(model, CrossbarConfig(), x, 0, input_ranges=[1.0])


# --- post-programming column calibration -----------------------------------------------

def test_column_correction_recovers_gain_offset_and_input_sum_by_hand():
    rng = np.random.default_rng(21)
    target, input_sum = rng.normal(size=(50, 4)), rng.uniform(10, 20, size=50)
    gain, offset, per_input = np.array([1.1, 0.9, 2.0, 1.0]), np.array([0.3, -0.2, 0.0, 1.0]), np.array([0.02, 0, -0.1, 0])
    y = gain * target + offset + np.outer(input_sum, per_input)
    np.testing.assert_allclose(column_correction(y, target, input_sum), [gain, offset, per_input], atol=1e-12)
    # a constant input sum: no input-sum term; a column whose target does not vary: the identity
    target[:, 3] = 0.0
    fitted = column_correction(gain * target + offset, target, np.full(50, 7.0))
    np.testing.assert_allclose(fitted[:, :3], [gain[:3], offset[:3], [0, 0, 0]], atol=1e-12)
    np.testing.assert_array_equal(fitted[:, 3], [1.0, 0.0, 0.0])


@pytest.mark.parametrize("scheme", ["offset/digital", "offset/reference", "differential"])
def test_column_calibration_removes_a_global_gain_exactly(scheme):
    # R_P (1 + eps) moves every decoded output by an affine function of (y, sum x) per column
    # (linear cells, no ADC): the fitted correction undoes it exactly, in every decode scheme.
    from imclib.experiments.errors import SCHEMES, quantization_only, with_source

    rng = np.random.default_rng(22)
    weights, calibration, x = rng.normal(size=(20, 6)), rng.uniform(size=(80, 20)), rng.uniform(size=(30, 20))
    base = quantization_only(CrossbarConfig().with_(**SCHEMES[scheme]))
    reads = {}
    for eps in (0.0, 0.05):
        layer = calibrate(program_layer(weights, with_source(base, {"rp_error": eps})), calibration)
        reads[eps] = (layer.mvm(x), fit_columns(layer, calibration, weights).mvm(x))
    assert nrmse(reads[0.05][0], reads[0.0][0]) > 1e-3  # uncalibrated: the gain error shows
    np.testing.assert_allclose(reads[0.05][1], reads[0.0][1], rtol=1e-9, atol=1e-12)


def test_column_calibration_is_unbiased_under_noise_and_keeps_the_noise():
    # y = g t + o + noise: least squares against the noise-free target is unbiased; the noise of
    # a later read is not removed (rms of the corrected error = sigma / g).
    rng = np.random.default_rng(23)
    n, columns, trials, sigma = 40, 50, 200, 0.5
    gain = np.full(columns, 1.3)
    fitted, residual = [], []
    for _ in range(trials):
        target = rng.normal(size=(n, columns))
        y = gain * target + 0.2 + sigma * rng.standard_normal((n, columns))
        correction = column_correction(y, target, rng.uniform(5, 6, size=n))
        fitted.append(correction[0])
        fresh = rng.normal(size=columns)
        noisy = gain * fresh + 0.2 + sigma * rng.standard_normal(columns)
        residual.append((noisy - correction[1] - correction[2] * 5.5) / correction[0] - fresh)
    fitted, residual = np.concatenate(fitted), np.concatenate(residual)
    assert abs(fitted.mean() - 1.3) < 4 * fitted.std(ddof=1) / np.sqrt(fitted.size)
    rms = np.sqrt(np.mean(residual**2))
    # the rms of N normal draws has relative standard error 1 / sqrt(2N); the fit adds O(1/n) variance
    expected = sigma / 1.3 * np.sqrt(1 + 3 / n)
    assert abs(rms / expected - 1) < 4 / np.sqrt(2 * residual.size)


def test_deployment_calibrates_columns_by_default_but_not_naive_ptq():
    rng = np.random.default_rng(24)
    model = MLP([rng.normal(size=(12, 8)), rng.normal(size=(8, 3))], [np.zeros(8), np.zeros(3)])
    x = rng.uniform(size=(100, 12))
    layers, report = deploy_network(model, CrossbarConfig(), x, 0)
    assert all(layer.correction is not None and layer.correction.shape == (3, layer.n_out) for layer in layers)
    assert list(report.columns_uncorrected) == [0, 0]
    naive = CrossbarConfig().with_(weight_map="naive", adc_calibration="worst_case")
    assert all(layer.correction is None for layer in deploy_network(model, naive, x, 0)[0])
    assert all(layer.correction is not None for layer in deploy_network(model, naive, x, 0, column_calibration=True)[0])
    assert all(layer.correction is None for layer in deploy_network(model, CrossbarConfig(), x, 0, column_calibration=False)[0])
    with pytest.raises(ValueError, match="column_calibration"):
        deploy_network(model, CrossbarConfig(), x, 0, column_calibration="yes")
    with pytest.raises(ValueError, match="at least 3"):
        deploy_network(model, CrossbarConfig(), x[:2], 0)
