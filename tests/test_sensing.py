"""Sense noise from the circuit and the read margin, against hand values and Monte Carlo."""

import math

import numpy as np
import pytest

from imclib import MTJ, CellLevels
from imclib.sensing import BOLTZMANN_J_PER_K, ELEMENTARY_CHARGE_C, SenseCircuit, level_spread, read_margin

KT4 = 4 * BOLTZMANN_J_PER_K * 300.0


def test_noise_density_limits():
    sense = SenseCircuit(temperature=300.0)
    assert sense.noise_per_siemens(0.0) == pytest.approx(KT4, rel=1e-12)  # Johnson-Nyquist
    assert sense.noise_per_siemens(2.0) == pytest.approx(2 * ELEMENTARY_CHARGE_C * 2.0, rel=1e-12)  # full shot noise
    x = 0.1 / (2 * BOLTZMANN_J_PER_K * 300.0 / ELEMENTARY_CHARGE_C)
    assert sense.noise_per_siemens(-0.1) == pytest.approx(2 * ELEMENTARY_CHARGE_C * 0.1 / math.tanh(x), rel=1e-12)


def test_bandwidth_and_single_read_by_hand():
    sense = SenseCircuit(t_int=10e-9, r_sense=10e3)
    assert sense.bandwidth == pytest.approx(50e6)
    expected = math.sqrt(50e6 * KT4 * (1 / 6e3 + 1 / 10e3))
    assert sense.cell_read_sigma(0.0, 1 / 6e3) == pytest.approx(expected, rel=1e-12)


def test_column_variance_by_hand_and_batched_blocks():
    sense = SenseCircuit(t_int=5e-9, r_sense=20e3)
    g = np.array([[1 / 6e3, 1 / 12e3], [1 / 18e3, 1 / 9e3]])
    v = np.array([[0.0, 0.1]])
    density = sense.noise_per_siemens(np.array([0.0, 0.1]))
    expected = 1e8 * (density @ g + KT4 / 20e3)
    np.testing.assert_allclose(sense.column_variance(v, g), expected[None], rtol=1e-12)
    # two arrays of 2 rows read separately, then summed: equals one matmul with reads=2
    rng = np.random.default_rng(0)
    g4, v4 = rng.uniform(1e-5, 1e-4, (4, 3)), rng.uniform(0, 0.1, (5, 4))
    blocks = sense.column_variance(v4.reshape(5, 2, 2), g4.reshape(2, 2, 3)).sum(axis=1)
    np.testing.assert_allclose(blocks, sense.column_variance(v4, g4, reads=2), rtol=1e-12)


def test_noise_falls_with_integration_time():
    g = np.full((4, 1), 1 / 20e3)
    v = np.full((1, 4), 0.1)
    short, long = SenseCircuit(t_int=1e-9).column_variance(v, g), SenseCircuit(t_int=100e-9).column_variance(v, g)
    np.testing.assert_allclose(short / long, 100.0, rtol=1e-12)


def test_level_spread_by_hand():
    assert level_spread(CellLevels(3, "uniform"), 0.04) == pytest.approx([0.04] * 3)
    # all-parallel level of 4 identical junctions: sigma / 2
    assert level_spread(CellLevels(5, "series"), 0.04)[-1] == pytest.approx(0.02)
    # binary 2-junction stack, all parallel: shares 1/3, 2/3
    assert level_spread(CellLevels(4, "writable"), 0.03)[-1] == pytest.approx(0.03 * math.sqrt(5) / 3)


def test_read_margin_matches_monte_carlo():
    cell = CellLevels(8, "writable", MTJ(v_half=math.inf))
    sense = SenseCircuit(t_int=1e-9)
    table = read_margin(cell, 0.1, sense, junction_sigma=0.03, read_sigma=0.005)
    g = cell.conductances(0.1)
    mean = 0.1 * g
    spread = np.sqrt((mean * level_spread(cell, 0.03)) ** 2 + (mean * 0.005) ** 2 + sense.cell_read_sigma(0.1, g) ** 2)
    rng = np.random.default_rng(3)
    q = 3
    threshold = (mean[q] * spread[q + 1] + mean[q + 1] * spread[q]) / (spread[q] + spread[q + 1])
    low = mean[q] + spread[q] * rng.standard_normal(400_000)
    high = mean[q + 1] + spread[q + 1] * rng.standard_normal(400_000)
    empirical = np.mean(low > threshold) + np.mean(high < threshold)
    assert table.overlap_probability[q] == pytest.approx(empirical, rel=0.05)
    assert 0.01 < table.overlap_probability[q] < 0.5


def test_read_margin_without_noise_is_perfect_and_worsens_with_n():
    quiet = read_margin(CellLevels(4, "writable"), sense=SenseCircuit(t_int=1.0, r_sense=math.inf),
                        junction_sigma=0.0, read_sigma=0.0)
    assert quiet.overlap_probability.max() < 1e-100
    worst = [read_margin(CellLevels(n, "writable")).overlap_probability.max() for n in (2, 4, 8, 16)]
    assert np.all(np.diff(worst) > 0)


@pytest.mark.parametrize("kwargs, name", [(dict(t_int=0.0), "t_int"), (dict(r_sense=-1.0), "r_sense"),
                                          (dict(temperature=0.0), "temperature")])
def test_bad_sense_circuit(kwargs, name):
    with pytest.raises(ValueError, match=name):
        SenseCircuit(**kwargs)
