"""Tiled inference with wire resistance: layer reads against direct nodal solves of each array."""

import numpy as np
import pytest

from imclib import MTJ, CellLevels, CrossbarConfig, Nonidealities, Periphery, program_layer
from imclib.circuit import WireParasitics, linear_column_currents, nonlinear_column_currents
from imclib.periphery import uniform_quantize

WIRES = WireParasitics(r_row=20.0, r_col=30.0, r_driver=5.0, r_sense=10.0)  # ohms, strong IR drop on purpose
BIAS = Nonidealities(bias_dependence=True)


def _problem(n_in, n_out, batch=6, seed=0, signed=False):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch, n_in)) if signed else rng.uniform(0, 1, size=(batch, n_in))
    return rng.normal(size=(n_in, n_out)), x


def _hand_decode(layer, currents, x):
    """``y = (a / s) (I - G0 sum(V)) + (b + a G0) sum(x)`` with ``s = v_read / x_max``
    (offset mapping, digital sum, offset current ``G0 sum(V)`` subtracted)."""
    s = layer.config.v_read / layer.input_range
    n = layer.n_out
    signal = currents[:, :n] - s * x.sum(1, keepdims=True) * layer.common_mode[:n]
    residual = layer.weight_map.offset + layer.weight_map.gain * layer.common_mode[:n]
    return layer.weight_map.gain / s * signal + residual * x.sum(1, keepdims=True)


def _program(weights, config, rng=None, x=None):
    """``program_layer`` with the DAC full scale at ``max |x|`` (no input clips)."""
    return program_layer(weights, config, rng, input_range=1.0 if x is None else np.abs(x).max())


def _tile_law(layer, rows, cols):
    """Conductance law of one array straight from the cell model (no interpolation table)."""
    config = layer.config
    state = layer.state[rows, cols]
    variation = layer.variation[rows, cols]

    def law(v):
        levels = config.cell.conductances(v, config.actual_mtj)  # (..., k, m, N)
        index = np.broadcast_to(state, v.shape)[..., None]
        return np.take_along_axis(levels, index, axis=-1)[..., 0] * variation

    return law


def test_ideal_wires_keep_the_kirchhoff_path():
    weights, x = _problem(10, 7)
    for config in (CrossbarConfig.quantization_only(), CrossbarConfig.quantization_only().with_(nonideal=BIAS)):
        layer = _program(weights, config.with_(wires=WireParasitics()), x=x)
        assert layer.levels is not None or np.array_equal(layer.transfer, layer.conductance - layer.common_mode)
        _, voltages, _ = layer.row_voltages(x)
        levels = config.cell.conductances(voltages, config.actual_mtj)  # (batch, rows, N)
        cell_g = np.take_along_axis(levels[:, :, None, :], layer.state[None, :, :, None], axis=-1)[..., 0]
        currents = np.einsum("bi,bij->bj", voltages, cell_g * layer.variation)
        expected = _hand_decode(layer, currents, x)  # exact cell model vs the interpolated one: ~1e-9
        np.testing.assert_allclose(layer.mvm(x), expected, rtol=1e-7, atol=1e-8 * np.abs(expected).max())


@pytest.mark.parametrize("bias", [False, True])
def test_vanishing_wire_resistance_tends_to_the_ideal_path(bias):
    weights, x = _problem(10, 7, signed=True)
    config = CrossbarConfig.quantization_only().with_(nonideal=BIAS if bias else Nonidealities())
    ideal = _program(weights, config, x=x).mvm(x)
    tiny = _program(weights, config.with_(wires=WireParasitics(1e-6, 1e-6, 1e-6, 1e-6)), x=x).mvm(x)
    assert not np.array_equal(tiny, ideal)  # the solver ran
    np.testing.assert_allclose(tiny, ideal, rtol=1e-6, atol=1e-9 * np.abs(ideal).max())


def test_single_array_layer_equals_the_circuit_solver_decoded_by_hand():
    weights, x = _problem(4, 3)
    layer = _program(weights, CrossbarConfig.quantization_only(wires=WIRES), x=x)
    assert layer.conductance.shape == (4, 4)  # one 4 x 4 array, column 3 padding
    voltages = x * (0.1 / np.abs(x).max())
    currents = linear_column_currents(layer.conductance, voltages, WIRES)
    np.testing.assert_allclose(layer.mvm(x), _hand_decode(layer, currents, x), rtol=1e-12)


def test_ir_drop_lowers_every_column_current_as_the_resistance_grows():
    weights, x = _problem(16, 8)
    magnitudes = []
    for r in (0.0, 1.0, 10.0, 100.0, 1000.0):
        config = CrossbarConfig.quantization_only(wires=WireParasitics(r_row=r, r_col=r))
        config = config.with_(adc_calibration="worst_case")  # whole column currents, no subtraction
        currents, _, _ = program_layer(weights, config).column_currents(x)
        magnitudes.append(currents)
    assert np.all(np.diff(np.stack(magnitudes), axis=0) < 0)
    assert np.all(magnitudes[-1] < 0.8 * magnitudes[0])


def test_bias_dependent_solve_without_bias_dependence_equals_the_linear_path():
    weights, x = _problem(12, 9, signed=True)
    flat = CellLevels(4, "binary", MTJ(v_half=float("inf")))
    linear = CrossbarConfig.quantization_only(flat, wires=WIRES).with_(nonideal=Nonidealities(programming_sigma=0.05))
    solved = linear.with_(nonideal=Nonidealities(programming_sigma=0.05, bias_dependence=True))
    layer_linear, layer_solved = _program(weights, linear, 4, x), _program(weights, solved, 4, x)
    assert layer_solved.solves_circuit and not layer_linear.solves_circuit
    np.testing.assert_allclose(layer_solved.mvm(x), layer_linear.mvm(x), rtol=1e-9)


@pytest.mark.parametrize("bias", [False, True])
def test_two_array_layer_equals_per_array_direct_solves(bias):
    weights, x = _problem(8, 4, batch=5, seed=3, signed=True)
    nonideal = Nonidealities(programming_sigma=0.1, bias_dependence=bias)
    layer = _program(weights, CrossbarConfig.quantization_only(wires=WIRES).with_(nonideal=nonideal), 1, x)
    assert layer.n_arrays == 2
    voltages = x * (0.1 / np.abs(x).max())
    tiles = [(slice(0, 4), slice(0, 4)), (slice(4, 8), slice(0, 4))]
    if bias:
        per_array = [nonlinear_column_currents(_tile_law(layer, r, c), voltages[:, r], WIRES, n_cols=4,
                                               method="picard", tol=1e-13) for r, c in tiles]
    else:
        per_array = [linear_column_currents(layer.conductance[r, c], voltages[:, r], WIRES) for r, c in tiles]
    expected = _hand_decode(layer, per_array[0] + per_array[1], x)
    np.testing.assert_allclose(layer.mvm(x), expected, rtol=1e-7, atol=1e-8 * np.abs(expected).max())

    # with an ADC every array's partial sums are digitized before the digital sum
    adc = _program(weights, layer.config.with_(periphery=Periphery(adc_bits=6)), 1, x)
    full_scale = adc.adc_range
    offset_current = [voltages[:, r].sum(1, keepdims=True) * adc.common_mode for r, _ in tiles]
    digitized = sum(uniform_quantize(current - offset, 6, -full_scale, full_scale)
                    for current, offset in zip(per_array, offset_current))
    np.testing.assert_allclose(adc.column_currents(x)[0], digitized, rtol=1e-12, atol=1e-20)


def test_transfer_matrices_are_laid_out_per_array():
    weights, _ = _problem(8, 8)
    layer = program_layer(weights, CrossbarConfig.quantization_only(wires=WIRES))
    for rows in (slice(0, 4), slice(4, 8)):
        for cols in (slice(0, 4), slice(4, 8)):
            unit = np.eye(4)  # currents per volt on each row: the transfer matrix itself
            expected = linear_column_currents(layer.conductance[rows, cols], unit, WIRES) - layer.common_mode[cols]
            np.testing.assert_allclose(layer.transfer[rows, cols], expected, rtol=1e-12, atol=1e-18)


def test_read_noise_with_wires_matches_per_read_resolves():
    """The noise kernel ignores the wires (first order in r): at small r the spread of the
    layer's reads matches redrawing every cell and re-solving the network for every read."""
    rng = np.random.default_rng(5)
    weights, x = rng.normal(size=(4, 4)), rng.uniform(0.2, 1, size=(1, 4))
    wires, sigma, reads = WireParasitics(r_row=2.0, r_col=2.0), 0.05, 4000
    config = CrossbarConfig.quantization_only(wires=wires).with_(nonideal=Nonidealities(read_sigma=sigma))
    layer = _program(weights, config, x=x)
    aggregated = layer.column_currents(np.repeat(x, reads, axis=0), rng)[0]
    noisy_g = layer.conductance * (1 + sigma * rng.standard_normal((reads, 4, 4)))
    voltages = x[0] * (0.1 / x.max())
    direct = linear_column_currents(noisy_g, voltages[None, None, :], wires)[0]  # one input, `reads` arrays
    direct = direct - voltages.sum() * layer.common_mode  # the offset current
    np.testing.assert_allclose(aggregated.std(0), direct.std(0), rtol=0.08)
    whole_current = np.abs(direct.mean(0) + voltages.sum() * layer.common_mode)
    np.testing.assert_allclose(aggregated.mean(0), direct.mean(0), rtol=0, atol=2e-3 * whole_current.max())


@pytest.mark.parametrize(
    "make, name",
    [
        (lambda: CrossbarConfig(wires=(1.0, 1.0, 0.0, 0.0)), "wires"),
        (lambda: CrossbarConfig(wires=None), "wires"),
        (lambda: WireParasitics(r_row=-1.0), "r_row"),
        (lambda: WireParasitics(r_col=float("nan")), "r_col"),
        (lambda: WireParasitics(r_sense=float("inf")), "r_sense"),
    ],
)
def test_bad_wires_name_the_field(make, name):
    with pytest.raises(ValueError, match=name):
        make()


def test_transfer_matrices_of_equal_arrays_are_solved_once(monkeypatch):
    """Programming equal cells behind equal wires again reuses the solved transfer matrices
    (read-only); other wires or other cells are solved anew, and a reused layer reads the same."""
    import imclib.layer as layer_module

    solved = []
    solve = layer_module.transfer_matrix
    monkeypatch.setattr(layer_module, "transfer_matrix", lambda tiles, wires: solved.append(wires) or solve(tiles, wires))
    monkeypatch.setattr(layer_module, "_TRANSFERS", layer_module._memo.Recent(2**30, lambda t: t.nbytes))
    weights, x = _problem(10, 5)
    config = CrossbarConfig(rows=4, cols=4, wires=WIRES, nonideal=Nonidealities(), periphery=Periphery())
    first = program_layer(weights, config)
    again = program_layer(weights.copy(), config)
    assert len(solved) == 1
    np.testing.assert_array_equal(again.transfer, first.transfer)
    np.testing.assert_array_equal(again.mvm(x), first.mvm(x))
    with pytest.raises(ValueError, match="read-only"):
        layer_module._wired_transfer(first.conductance, config)[0, 0] = 0.0
    program_layer(weights, config.with_(wires=WireParasitics(r_row=1.0, r_col=1.0)))
    program_layer(weights, config.with_(nonideal=Nonidealities(programming_sigma=0.03)), 0)
    assert len(solved) == 3
    monkeypatch.setattr(layer_module._TRANSFERS, "max_bytes", 0)  # nothing kept beyond the latest
    program_layer(weights, config.with_(wires=WireParasitics(r_row=2.0, r_col=2.0)))
    assert len(solved) == 4 and len(layer_module._TRANSFERS) == 1
    program_layer(weights, config)  # evicted: solved again
    assert len(solved) == 5
