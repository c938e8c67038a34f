"""Cells: level formulas against hand values, bias dependence against a root finder."""

import math

import numpy as np
import pytest
from scipy.optimize import brentq

from imclib import MTJ, CellLevels


def test_binary_stack_levels_match_hand_values():
    # two junctions 6k/12k and 12k/24k in series: R = 18k + c * 6k, c = 0..3
    levels = CellLevels(4, "binary", MTJ(6e3, 1.0))
    np.testing.assert_allclose(levels.resistances(), [36e3, 30e3, 24e3, 18e3], rtol=1e-15)


def test_series_stack_levels_match_hand_values():
    # two identical junctions: 2 AP = 24k, 1 AP = 18k, 0 AP = 12k
    levels = CellLevels(3, "series", MTJ(6e3, 1.0))
    np.testing.assert_allclose(levels.conductances(), [1 / 24e3, 1 / 18e3, 1 / 12e3], rtol=1e-15)


def test_three_bit_binary_stack():
    # junctions 1:2:4 of R_P = 5k, TMR 80 %: R = 7 * 5k + c * 0.8 * 5k
    levels = CellLevels(8, "binary", MTJ(5e3, 0.8))
    expected = 35e3 + np.arange(8)[::-1] * 4e3
    np.testing.assert_allclose(levels.resistances(), expected, rtol=1e-14)


def test_uniform_levels_span_single_junction_window():
    levels = CellLevels(5, "uniform", MTJ(6e3, 1.0)).conductances()
    np.testing.assert_allclose(levels, np.linspace(1 / 12e3, 1 / 6e3, 5), rtol=1e-15)


def test_stack_window_shrinks_as_one_over_n_minus_one():
    windows = [np.ptp(CellLevels(n, "series").conductances()) for n in (2, 3, 5, 9)]
    np.testing.assert_allclose(np.array(windows) * [1, 2, 4, 8], windows[0], rtol=1e-12)


def test_bias_dependence_hand_values():
    mtj = MTJ(6e3, 1.0, 0.5)
    assert mtj.tmr(0.5) == pytest.approx(0.5)
    # single junction at 0.5 V: R_AP = 6k * 1.5 = 9k
    assert CellLevels(2, "uniform", mtj).conductances(0.5)[0] == pytest.approx(1 / 9e3, rel=1e-14)
    assert CellLevels(2, "series", mtj).conductances(0.5)[0] == pytest.approx(1 / 9e3, rel=1e-12)
    # two identical AP junctions at 1 V: 0.5 V each by symmetry, 9k each
    assert CellLevels(3, "series", mtj).conductances(1.0)[0] == pytest.approx(1 / 18e3, rel=1e-12)


def test_bias_dependence_matches_root_finder():
    mtj = MTJ(6e3, 1.0, 0.5)
    v = 0.3
    # level 1 of a 2-junction series stack: one AP junction in series with one P junction
    def residual(current):
        v_ap = v - current * mtj.r_p
        return v_ap - current * mtj.r_p * (1 + float(mtj.tmr(v_ap)))

    current = brentq(residual, 1e-9, v / mtj.r_p)
    assert CellLevels(3, "series", mtj).conductances(v)[1] == pytest.approx(current / v, rel=1e-12)


def test_conductances_broadcast_over_voltages():
    levels = CellLevels(4, "binary")
    v = np.linspace(-0.2, 0.2, 7).reshape(7, 1)
    g = levels.conductances(v)
    assert g.shape == (7, 1, 4)
    np.testing.assert_allclose(g[0], g[-1])  # symmetric in v
    assert np.all(np.diff(g, axis=-1) > 0)  # still ascending
    np.testing.assert_allclose(g[3, 0], levels.conductances(), rtol=1e-15)  # v = 0
    # TMR falls with bias, so every level with an AP junction conducts more; all-P does not change
    assert np.all(g[0, 0, :-1] > levels.conductances()[:-1])
    assert g[0, 0, -1] == pytest.approx(levels.conductances()[-1], rel=1e-15)


def test_no_bias_dependence_with_infinite_v_half():
    levels = CellLevels(4, "binary", MTJ(v_half=math.inf))
    np.testing.assert_array_equal(levels.conductances(0.2), levels.conductances())


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(n_states=1), "n_states"),
        (dict(n_states=6, kind="binary"), "n_states"),
        (dict(kind="triangular"), "kind"),
    ],
)
def test_bad_cell_levels(kwargs, name):
    with pytest.raises(ValueError, match=name):
        CellLevels(**kwargs)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        (dict(r_p=0.0), "r_p"),
        (dict(r_p=-5.0), "r_p"),
        (dict(r_p=float("nan")), "r_p"),
        (dict(tmr0=0.0), "tmr0"),
        (dict(tmr0=-1.0), "tmr0"),
        (dict(v_half=0.0), "v_half"),
    ],
)
def test_bad_mtj(kwargs, name):
    with pytest.raises(ValueError, match=name):
        MTJ(**kwargs)
