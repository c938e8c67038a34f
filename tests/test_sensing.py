"""Sense noise from the circuit and the read margin, against hand values and Monte Carlo."""

import math

import numpy as np
import pytest

from imclib import MTJ, CellLevels
from imclib.sensing import (BOLTZMANN_J_PER_K, ELEMENTARY_CHARGE_C, SenseCircuit, junction_shares, level_spread,
                            read_margin)

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


def _coth(x):
    return 1.0 / math.tanh(x)


def test_two_equal_junctions_by_hand():
    # the referee's case: two equal junctions in series at 0.1 V, each at 0.05 V
    sense = SenseCircuit(temperature=300.0)
    vt = BOLTZMANN_J_PER_K * 300.0 / ELEMENTARY_CHARGE_C
    r = 6e3
    current = 0.1 / (2 * r)
    per_junction = 2 * ELEMENTARY_CHARGE_C * current * _coth(0.05 / (2 * vt))  # S_k = 2 q I coth(q V_k / 2kT)
    stack = 2 * per_junction * (r / (2 * r)) ** 2  # sum_k S_k (R_k / R)^2
    one_junction = 2 * ELEMENTARY_CHARGE_C * current * _coth(0.1 / (2 * vt))  # the whole stack as one junction
    g = 1 / (2 * r)
    assert sense.stack_noise_per_siemens(0.1, [0.5, 0.5]) * g == pytest.approx(stack, rel=1e-12)
    assert stack / one_junction == pytest.approx(0.64, abs=0.005)
    assert sense.cell_read_sigma(0.1, g, [0.5, 0.5]) ** 2 == pytest.approx(
        sense.bandwidth * (stack + sense.sense_density), rel=1e-12)


def test_unequal_stack_by_hand_and_one_junction_limit():
    sense = SenseCircuit(temperature=300.0)
    vt = BOLTZMANN_J_PER_K * 300.0 / ELEMENTARY_CHARGE_C
    r1, r2, v = 6e3, 24e3, 0.12
    current = v / (r1 + r2)
    densities = [2 * ELEMENTARY_CHARGE_C * current * _coth(current * rk / (2 * vt)) for rk in (r1, r2)]
    expected = sum(s * (rk / (r1 + r2)) ** 2 for s, rk in zip(densities, (r1, r2)))
    shares = [r1 / (r1 + r2), r2 / (r1 + r2)]
    assert sense.stack_noise_per_siemens(v, shares) / (r1 + r2) == pytest.approx(expected, rel=1e-12)
    # never above the one-junction formula, equal to it for one junction, 4kT at zero bias
    assert sense.stack_noise_per_siemens(v, shares) < sense.noise_per_siemens(v)
    assert sense.stack_noise_per_siemens(v, [1.0]) == pytest.approx(sense.noise_per_siemens(v), rel=1e-15)
    assert sense.stack_noise_per_siemens(0.0, shares) == pytest.approx(KT4, rel=1e-12)


def test_junction_shares_by_hand():
    # writable N = 4: junctions R_P and 2 R_P, TMR0 = 1; level 0 (code 3) both antiparallel, level 3 both parallel
    shares = junction_shares(CellLevels(4, "writable"))
    np.testing.assert_allclose(shares[0], [1 / 3, 2 / 3], rtol=1e-15)
    np.testing.assert_allclose(shares[3], [1 / 3, 2 / 3], rtol=1e-15)
    np.testing.assert_allclose(shares[1], [1 / 5, 4 / 5], rtol=1e-15)  # code 2: R_P + 2 R_P (1 + 1)
    np.testing.assert_allclose(shares[2], [1 / 2, 1 / 2], rtol=1e-15)  # code 1: R_P (1 + 1) + 2 R_P
    np.testing.assert_allclose(junction_shares(CellLevels(5, "uniform")), np.ones((5, 1)))


@pytest.mark.parametrize("n", [2, 5, 16])
def test_stack_column_variance_matches_per_level_reference(n):
    sense = SenseCircuit(t_int=2e-9)
    cell = CellLevels(n, "writable")
    rng = np.random.default_rng(n)
    state = rng.integers(0, n, (12, 5))
    g = cell.conductances()[state] * rng.uniform(0.9, 1.1, state.shape)
    v = rng.uniform(-0.1, 0.2, (2, 3, 12))
    v[v < 0.0] = 0.0  # zero rows take the thermal-only path
    shares = junction_shares(cell)
    reference = sum(np.where(state == q, g, 0.0).T @ sense.stack_noise_per_siemens(v[..., None, :], shares[q])[..., 0, :]
                    .reshape(-1, 12).T for q in range(n)).T.reshape(2, 3, 5)
    np.testing.assert_allclose(sense.column_variance(v, g, 2, shares, state),
                               sense.bandwidth * (reference + 2 * sense.sense_density), rtol=1e-12)
    if n == 2:  # one junction per cell: the single-junction formula
        np.testing.assert_allclose(sense.column_variance(v, g, 2, shares, state), sense.column_variance(v, g, 2), rtol=1e-12)


def test_stack_column_variance_rejects_bad_layout():
    sense, g = SenseCircuit(), np.full((3, 2), 1e-4)
    shares = junction_shares(CellLevels(4, "writable"))
    with pytest.raises(ValueError, match="state"):
        sense.column_variance(np.zeros((1, 3)), g, 1, shares, np.full((3, 2), 4))
    with pytest.raises(ValueError, match="state"):
        sense.column_variance(np.zeros((1, 3)), g, 1, shares, None)
    with pytest.raises(ValueError, match="shares"):
        sense.column_variance(np.zeros((1, 3)), g, 1, shares[:, :1], np.zeros((3, 2), dtype=int))


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
    spread = np.sqrt((mean * level_spread(cell, 0.03)) ** 2 + (mean * 0.005) ** 2 + sense.cell_read_sigma(0.1, g, junction_shares(cell)) ** 2)
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


def test_stack_column_variance_of_repeated_voltages_is_that_of_each_read_alone():
    """The stack densities are kept per distinct |V| (``2^imclib.sensing._EXCESS_BITS``
    slots): a read's variance must not depend on the other reads of the batch, whether its
    voltages repeat (8-bit pixels) or overflow the slots (3,000 distinct values)."""
    sense = SenseCircuit()
    cell = CellLevels(8, "writable")
    shares = junction_shares(cell)
    rng = np.random.default_rng(7)
    state = rng.integers(0, 8, (40, 6))
    g = cell.conductances()[state]
    pixels = 0.1 * rng.integers(0, 256, (30, 40)) / 255  # few distinct values, many zeros
    spread = rng.choice(rng.uniform(-0.1, 0.1, 3000), (30, 40))  # more values than slots: they collide
    for v in (pixels, spread, np.concatenate([pixels, spread])):
        together = sense.column_variance(v, g, 1, shares, state)
        alone = np.concatenate([sense.column_variance(v[b : b + 1], g, 1, shares, state) for b in range(len(v))])
        np.testing.assert_array_equal(together, alone)
        reference = sum(np.where(state == q, g, 0.0).T @ sense.stack_noise_per_siemens(v[:, None, :], shares[q])[:, 0, :].T
                        for q in range(8)).T
        np.testing.assert_allclose(together, sense.bandwidth * (reference + sense.sense_density), rtol=1e-12)
