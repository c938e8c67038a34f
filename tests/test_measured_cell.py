"""Devices in: a cell described by measured levels, and the published RRAM preset."""

import numpy as np
import pytest

import imclib
from imclib import cells, devices
from imclib.cells import CellLevels, MeasuredCell
from imclib.config import BIAS_LEVELS_MAX, CrossbarConfig
from imclib.cost import cost_table, network_inputs
from imclib.deploy import deploy_network
from imclib.hwa import _cell_noise
from imclib.layer import program_layer
from imclib.mlp import MLP
from imclib.nonidealities import Nonidealities

LEVELS = (50e-6, 100e-6, 150e-6, 200e-6)
SPREAD = (0.2, 0.1, 0.05, 0.0)


def test_reprs_that_key_the_store_are_unchanged():
    assert repr(CellLevels()) == "CellLevels(n_states=4, kind='binary', mtj=MTJ(r_p=6000.0, tmr0=1.0, v_half=0.5))"
    assert repr(CrossbarConfig()).startswith(f"CrossbarConfig(cell={CellLevels()!r}, quantize=True,")
    assert cells.MEASURED_MAX_STATES <= BIAS_LEVELS_MAX


@pytest.mark.parametrize("kwargs, message", [
    (dict(levels=(2e-4, 1e-4), spread=(0, 0)), "distinct and sorted ascending"),
    (dict(levels=(1e-4, 1e-4), spread=(0, 0)), "distinct and sorted ascending"),
    (dict(levels=(-1e-4, 1e-4), spread=(0, 0)), r"conductances in \[1e-12, 1000\] siemens"),
    (dict(levels=(1e-4,), spread=(0,)), "between 2 and"),
    (dict(levels=(1e-4, 2e-4), spread=(0.1,)), "one value per level"),
    (dict(levels=(1e-4, 2e-4), spread=(0.1, 1.5)), r"spread must be in \[0, 1.0\]"),
    (dict(levels=(1e-4, np.nan), spread=(0, 0)), "levels must contain only finite"),
    (dict(levels=("a", "b"), spread=(0, 0)), "levels must hold real numbers"),
    (dict(levels=(1e-4, 2e-4), spread=(0, 0), voltages=(0, 0.2)), "given together"),
    (dict(levels=(1e-4, 2e-4), spread=(0, 0), voltages=(0.1, 0.2), bias_factors=((1, 1), (1, 1))), "starting at 0"),
    (dict(levels=(1e-4, 2e-4), spread=(0, 0), voltages=(0, 0.2), bias_factors=((1, 1),)), "must have shape"),
    (dict(levels=(1e-4, 2e-4), spread=(0, 0), voltages=(0, 0.2), bias_factors=((1, 0.9), (1.1, 1))), "first column 1"),
])
def test_validation_names_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MeasuredCell(**kwargs)


def test_levels_bias_table_and_systematic_errors():
    cell = MeasuredCell(levels=LEVELS, spread=SPREAD, voltages=(0.0, 0.2), bias_factors=[(1, 0.8)] * 2 + [(1, 0.9)] * 2)
    assert cell.n_states == 4 and cell.n_junctions == 1 and cell.kind == "measured"
    np.testing.assert_array_equal(cell.conductances(), LEVELS)
    g = cell.conductances(np.array([-0.1, 0.1]))  # linear in the table, even in v
    np.testing.assert_allclose(g, np.array(LEVELS) * [0.9, 0.9, 0.95, 0.95] * np.ones((2, 1)), rtol=1e-14)
    with pytest.raises(ValueError, match="valid up to 0.2 V"):
        cell.conductances(0.3)
    actual = CrossbarConfig(cell=cell, nonideal=Nonidealities(rp_error=0.25)).actual_mtj  # bias dependence off
    np.testing.assert_allclose(cell.conductances(0.1, actual), np.array(LEVELS) / 1.25, rtol=1e-14)
    tmr = CrossbarConfig(cell=cell, nonideal=Nonidealities(tmr_error=0.1))
    with pytest.raises(ValueError, match="tmr_error does not apply to a MeasuredCell"):
        program_layer(np.ones((4, 4)), tmr, 0)
    with pytest.raises(ValueError, match="no junction stack"):
        cells.stack_physics(cell)


def test_programmed_spread_per_level_matches_the_table():
    config = CrossbarConfig.quantization_only(MeasuredCell(levels=LEVELS, spread=SPREAD), rows=64, cols=64)
    weights = np.tile(np.linspace(-1, 1, 4)[:, None], (100, 100))  # every column holds every level
    layer = program_layer(weights, config, 0)
    state, conductance = layer.state[:400], layer.conductance[:400]
    for q, (level, sigma) in enumerate(zip(LEVELS, SPREAD)):
        ratio = conductance[state == q] / level
        n = ratio.size
        assert n > 1000
        assert abs(ratio.mean() - 1) <= 4 * max(ratio.std(), 1e-300) / np.sqrt(n) + 1e-12  # mean-normalised
        log_sd = np.log(ratio).std()
        assert abs(log_sd - sigma) <= 4 * sigma / np.sqrt(2 * n) + 1e-12  # sd of a sample sd: sigma / sqrt(2n)
    builtin = CrossbarConfig.quantization_only(CellLevels(4, "binary"))  # built-in cells draw nothing more
    assert np.all(program_layer(weights[:8, :8], builtin, 0).variation == 1)


def test_hwa_noise_uses_the_level_spread():
    config = CrossbarConfig.quantization_only(MeasuredCell(levels=LEVELS, spread=SPREAD))
    conductance = np.repeat(np.array(LEVELS)[None, :], 50_000, axis=0)
    noise = _cell_noise(conductance.shape, config, np.random.default_rng(0), conductance)
    for q, sigma in enumerate(SPREAD):
        assert abs(np.log(noise[:, q]).std() - sigma) <= 4 * sigma / np.sqrt(2 * noise.shape[0]) + 1e-12


@pytest.mark.filterwarnings("ignore:ADC saturated")
def test_measured_cell_deploys_reads_with_bias_and_costs():
    rng = np.random.default_rng(5)
    model = MLP([rng.normal(size=(12, 8)), rng.normal(size=(8, 3))], [np.zeros(8), np.zeros(3)])
    x = rng.uniform(size=(40, 12))
    cell = MeasuredCell(levels=LEVELS, spread=(0.02,) * 4, voltages=(0.0, 0.2), bias_factors=[(1, 0.7)] * 4)
    flat = CrossbarConfig(cell=cell, nonideal=Nonidealities(read_sigma=0.005))
    biased = flat.with_(nonideal=Nonidealities(read_sigma=0.005, bias_dependence=True))
    software = model.forward(x)

    def error(config, column_calibration):
        logits = imclib.hardware_logits(model, x, config, 0, x, column_calibration=column_calibration)
        return np.sqrt(np.mean((logits - software) ** 2))

    assert error(biased, False) > 2 * error(flat, False)  # the uncompensated 15 % conductance drop at 0.1 V shows
    assert error(biased, True) < error(biased, False) / 2  # the column calibration takes out most of it
    layers, _ = deploy_network(model, flat, x, 0)
    _, inputs = network_inputs(model, layers, x, 1)
    table = cost_table(layers, inputs)
    assert np.isfinite(table.energy_J).all() and (table.energy_J >= 0).all()


def test_rram_milo_preset_follows_its_source():
    cell = devices.rram_milo(4)
    assert "Milo" in devices.rram_milo.__doc__ and "Fig. 4" in devices.rram_milo.__doc__ and "IRPS" in cell.source
    g = cell.conductances()
    assert g[0] == pytest.approx(50e-6) and g[-1] == pytest.approx(225e-6)
    sigma_us = np.array(cell.spread) * g * 1e6
    np.testing.assert_allclose(sigma_us[[0, -1]], [-0.009107 * 50 + 4.782321, -0.009107 * 225 + 4.782321])
    assert np.all(np.diff(sigma_us) < 0)  # the fit: the error shrinks with conductance
    with pytest.raises(ValueError, match="n_states"):
        devices.rram_milo(devices.MILO_MAX_STATES + 1)
    assert devices.PRESETS["rram_milo"] is devices.rram_milo
