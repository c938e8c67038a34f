"""Writable multi-junction stacks: levels, per-junction variation, write/read physics by hand."""

import math

import numpy as np
import pytest
from scipy.optimize import brentq

from imclib import MTJ, CellLevels
from imclib.cells import junction_conductance_samples, stack_physics


@pytest.mark.parametrize("n", [2, 4, 8, 16])
def test_writable_equals_binary_for_powers_of_two(n):
    np.testing.assert_array_equal(CellLevels(n, "writable").conductances(), CellLevels(n, "binary").conductances())
    np.testing.assert_array_equal(CellLevels(n, "writable").conductances(0.15), CellLevels(n, "binary").conductances(0.15))


def test_writable_three_states_by_hand():
    # two junctions 6k/12k (P) and 12k/24k (AP); codes round(i * 3 / 2) = 0, 2, 3:
    # code 3 both AP = 36k, code 2 (large junction P, small AP) = 6k + 24k = 30k, code 0 = 18k
    levels = CellLevels(3, "writable", MTJ(6e3, 1.0))
    np.testing.assert_array_equal(levels.codes(), [3, 2, 0])
    np.testing.assert_allclose(levels.resistances(), [36e3, 30e3, 18e3], rtol=1e-15)


@pytest.mark.parametrize("n", range(2, 17))
def test_every_n_has_distinct_ascending_levels_and_full_window(n):
    cell = CellLevels(n, "writable", MTJ(6e3, 1.0))
    g = cell.conductances()
    assert g.size == n and np.all(np.diff(g) > 0)
    junctions = math.ceil(math.log2(n))
    total_parallel = (2**junctions - 1) * 6e3
    np.testing.assert_allclose([g[0], g[-1]], [1 / (2 * total_parallel), 1 / total_parallel], rtol=1e-14)


def test_junction_samples_without_variation_are_the_levels():
    cell = CellLevels(8, "writable")
    state = np.arange(8).repeat(3).reshape(4, 6)
    np.testing.assert_allclose(junction_conductance_samples(cell, state, 0.0, 0), cell.conductances()[state], rtol=1e-14)


def test_junction_variation_averages_over_identical_junctions():
    # k identical parallel junctions with independent ln R_P ~ N(0, s): relative spread ~ s / sqrt(k)
    sigma, k = 0.03, 4
    cell = CellLevels(k + 1, "series")
    g = junction_conductance_samples(cell, np.full(200_000, k), sigma, np.random.default_rng(1))
    assert np.std(g) / np.mean(g) == pytest.approx(sigma / math.sqrt(k), rel=0.02)
    one = junction_conductance_samples(CellLevels(2, "writable"), np.zeros(200_000, dtype=int), sigma, 2)
    assert np.std(np.log(one)) == pytest.approx(sigma, rel=0.01)


def test_junction_samples_are_seeded():
    cell, state = CellLevels(4, "writable"), np.arange(4)
    np.testing.assert_array_equal(junction_conductance_samples(cell, state, 0.05, 7),
                                  junction_conductance_samples(cell, state, 0.05, 7))


def test_stack_physics_hand_values_single_junction():
    d = stack_physics(CellLevels(2, "writable", MTJ(6e3, 1.0)), v_read=0.1, ra=10e-12, jc=3.9e10)
    area = 10e-12 / 6e3
    assert d["diameters_nm"][0] == pytest.approx(math.sqrt(4 * area / math.pi) * 1e9)
    assert d["ic_uA"][0] == pytest.approx(3.9e10 * area * 1e6)
    assert d["read_current_uA"] == pytest.approx(0.1 / 6e3 * 1e6)
    assert d["read_disturb_ratio"] == pytest.approx((0.1 / 6e3) / (3.9e10 * area))
    assert d["credible"] and d["writable"]


def test_stack_write_voltage_matches_root_finder():
    mtj = MTJ(6e3, 1.0, 0.5)
    d = stack_physics(CellLevels(4, "writable", mtj), ra=10e-12, jc=3.9e10, jc_spread=0.05)
    current = 3.9e10 * 10e-12 / 6e3 * 1.15  # first pulse, through the small (12k) junction in AP
    v = brentq(lambda v: v - current * 12e3 * (1 + 1 / (1 + (v / 0.5) ** 2)), 0.1, 5.0)
    assert d["write_voltage_max_V"] == pytest.approx(v, rel=1e-9)
    assert d["area_ratios"] == pytest.approx((1.0, 0.5))


def test_graded_ra_design_by_hand():
    # three junctions, consecutive areas 1.5x apart, the smallest (R_P,2 = 4 R_P) at 20 nm; RA_j = R_P,j A_j
    mtj = MTJ(6e3, 1.0, 0.5)
    d = stack_physics(CellLevels(8, "writable", mtj), jc=3.9e10, jc_spread=0.05, min_diameter=20e-9, area_ratio=1.5)
    smallest = math.pi * (20e-9) ** 2 / 4
    areas = [smallest * 2.25, smallest * 1.5, smallest]
    assert d["diameters_nm"] == pytest.approx([math.sqrt(4 * a / math.pi) * 1e9 for a in areas], rel=1e-12)
    assert d["ra_ohm_um2"] == pytest.approx([6e3 * 2**j * a * 1e12 for j, a in enumerate(areas)], rel=1e-12)
    assert d["ic_uA"] == pytest.approx([3.9e10 * a * 1e6 for a in areas], rel=1e-12)
    current = 3.9e10 * areas[0] * 1.15  # first pulse, through the 24k junction in AP
    v = brentq(lambda v: v - current * 24e3 * (1 + 1 / (1 + (v / 0.5) ** 2)), 0.01, 5.0)
    assert d["write_voltage_max_V"] == pytest.approx(v, rel=1e-9)
    assert d["writable"] and "graded RA" in d["construction"]
    # the equal-RA stack of the same levels puts more on its smallest junction
    assert stack_physics(CellLevels(8, "writable", mtj), jc=3.9e10)["write_voltage_max_V"] > v
    with pytest.raises(ValueError, match="area_ratio"):
        stack_physics(CellLevels(8, "writable"), area_ratio=1.0)


def test_write_window_needs_spread_below_one_ninth():
    assert stack_physics(CellLevels(8, "writable"), jc_spread=0.10)["writable"]
    assert not stack_physics(CellLevels(8, "writable"), jc_spread=0.12)["writable"]


def test_identical_series_stack_is_not_writable_and_uniform_is_not_physical():
    series = stack_physics(CellLevels(5, "series"))
    assert not series["writable"] and not series["credible"] and "threshold" in series["reason"]
    assert not stack_physics(CellLevels(4, "uniform"))["credible"]


def test_read_disturb_grows_with_read_voltage():
    cell = CellLevels(2, "writable")
    low, high = stack_physics(cell, v_read=0.1), stack_physics(cell, v_read=0.6)
    assert high["read_disturb_probability"] > low["read_disturb_probability"]
    assert not high["credible"] and "disturb" in high["reason"]


@pytest.mark.parametrize("kwargs, name", [(dict(v_read=0.0), "v_read"), (dict(ra=-1.0), "ra"),
                                          (dict(jc_spread=-0.1), "jc_spread")])
def test_bad_stack_physics_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        stack_physics(CellLevels(4, "writable"), **kwargs)


def test_bad_junction_sigma():
    with pytest.raises(ValueError, match="sigma"):
        junction_conductance_samples(CellLevels(4, "writable"), np.arange(4), -0.1, 0)
