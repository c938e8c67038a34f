"""Cost model: hand-computed array reads, conversion counts per scenario, totals, bad input."""

import numpy as np
import pandas as pd
import pytest

from imclib import CellLevels, CrossbarConfig, Nonidealities, Periphery, program_layer
from imclib.cost import LayerHardware, Technology, cost_table, efficiency, layer_cost, layer_hardware, network_inputs, operation_counts
from imclib import cost
from imclib.mlp import MLP

T_READ = 20e-9


def _hardware(conductance, v_read=0.1, **overrides):
    """A LayerHardware over a given conductance matrix (siemens), inputs mapped as V = v_read x."""
    conductance = np.asarray(conductance, dtype=float)
    fields = dict(
        n_in=conductance.shape[0], n_out=conductance.shape[1], rows=conductance.shape[0], cols=conductance.shape[1],
        row_blocks=1, n_physical=conductance.shape[1], v_read=v_read, adc_bits=8, dac_bits=None, scenario="per_tile",
        mapping="offset", input_sum="digital", n_junctions=2,
        drive=lambda x, absolute: np.mean([np.square(v_read * x) @ conductance.sum(axis=1),
                                           np.square(v_read * x).sum(axis=1), np.abs(v_read * x).sum(axis=1)], axis=1),
    )
    return LayerHardware(**{**fields, **overrides})


def _row(table, component):
    return table.set_index("component").loc[component]


def test_two_by_two_read_energy_by_hand():
    # G = [[100, 200], [300, 400]] uS, V = [0.1, 0.05] V, t = 20 ns:
    # E = t (0.1^2 (100 + 200) + 0.05^2 (300 + 400)) uS V^2 = 20e-9 * (3e-6 + 1.75e-6) = 9.5e-14 J
    hardware = _hardware([[100e-6, 200e-6], [300e-6, 400e-6]])
    table = layer_cost(hardware, [[1.0, 0.5]], Technology(t_read=T_READ, line_capacitance=2e-15))
    assert _row(table, "array read").energy_J == pytest.approx(9.5e-14, rel=1e-12)
    # row drive: C_line x 2 cells per row x (0.1^2 + 0.05^2) V^2 = 2e-15 * 2 * 0.0125 = 5e-17 J
    assert _row(table, "row drive").energy_J == pytest.approx(5e-17, rel=1e-12)
    # two inputs, one of them zero: the mean over the batch halves the first input's energy
    two = layer_cost(hardware, [[1.0, 0.5], [0.0, 0.0]], Technology(t_read=T_READ))
    assert _row(two, "array read").energy_J == pytest.approx(9.5e-14 / 2, rel=1e-12)


def _extremes_layer(bias_dependence: bool):
    """2x2 array of 4-state binary MTJ stacks (R_P = 6 kOhm, TMR 100 %): each column holds its
    largest weight at G_max = 1/(3 R_P) and its smallest at G_min = 1/(6 R_P)."""
    config = CrossbarConfig.quantization_only(CellLevels(4, "binary"), rows=2, cols=2).with_(
        nonideal=Nonidealities(bias_dependence=bias_dependence))
    layer = program_layer(np.array([[1.0, -1.0], [-1.0, 1.0]]), config, 0)
    np.testing.assert_array_equal(layer.state, [[3, 0], [0, 3]])
    return layer


def test_programmed_two_by_two_read_energy_by_hand():
    layer = _extremes_layer(bias_dependence=False)
    x = np.array([[1.0, 0.5]])  # x_max = 1 -> V = [0.1, 0.05] V
    # every row holds one G_max and one G_min cell: sum_j G_ij = 1/18 kOhm + 1/36 kOhm = 1/12 kOhm
    expected = T_READ * (0.1**2 + 0.05**2) / 12e3
    table = layer_cost(layer_hardware(layer), x, Technology(t_read=T_READ))
    assert _row(table, "array read").energy_J == pytest.approx(expected, rel=1e-12)


def test_bias_dependent_read_energy_uses_the_level_curves():
    layer = _extremes_layer(bias_dependence=True)
    x = np.array([[1.0, 0.5]])
    cell, mtj = layer.config.cell, layer.config.actual_mtj
    expected = T_READ * sum(v**2 * (cell.conductances(v, mtj)[3] + cell.conductances(v, mtj)[0]) for v in (0.1, 0.05))
    table = layer_cost(layer_hardware(layer), x, Technology(t_read=T_READ))
    assert _row(table, "array read").energy_J == pytest.approx(expected, rel=1e-6)  # FIT_TOLERANCE
    # the antiparallel junctions conduct more under bias: more energy than the zero-bias levels
    assert expected > T_READ * (0.1**2 + 0.05**2) / 12e3


@pytest.mark.parametrize("scenario, adcs, reads", [("per_tile", 24, 1), ("reused", 4, 6)])
def test_conversions_of_a_three_row_block_layer(scenario, adcs, reads):
    # 10 inputs on 4-row arrays: 3 row blocks (padded to 12); 6 outputs on 4-column arrays:
    # 2 column tiles (8 physical columns); 3 x 2 = 6 arrays, each converting its 4 columns.
    config = CrossbarConfig.quantization_only(rows=4, cols=4, scenario=scenario).with_(periphery=Periphery(adc_bits=6))
    layer = program_layer(np.random.default_rng(0).normal(size=(10, 6)), config, 0)
    counts = operation_counts(layer_hardware(layer))
    assert (counts["arrays"], counts["conversions"], counts["adcs"], counts["sequential_reads"]) == (6, 24, adcs, reads)
    # digital: (3 - 1) x 8 partial-sum additions + 9 for sum(x) + 6 offset additions; 6 scale + 6 offset products
    assert (counts["adds"], counts["mults"]) == (31, 12)
    technology = Technology()
    table = layer_cost(layer_hardware(layer), np.ones((3, 10)), technology)
    adc = _row(table, "ADC")
    assert adc.energy_J == pytest.approx(24 * technology.adc_fom * 2**6, rel=1e-12)
    assert adc.latency_s == pytest.approx(reads * technology.adc_time, rel=1e-12)
    assert adc.area_m2 == pytest.approx(adcs * technology.adc_area, rel=1e-12)
    assert _row(table, "array read").latency_s == pytest.approx(reads * technology.t_read, rel=1e-12)
    assert _row(table, "DAC").energy_J == 0.0  # no DAC configured


@pytest.mark.parametrize("scenario, conversions", [("per_tile", 10), ("reused", 6 * 4)])
def test_dac_conversions_per_scenario(scenario, conversions):
    # 10 inputs, 6 arrays of 4 rows: one 5-bit DAC per input row (per_tile) or one per array
    # row read, tile after tile (reused)
    config = CrossbarConfig.quantization_only(rows=4, cols=4, scenario=scenario).with_(periphery=Periphery(dac_bits=5))
    layer = program_layer(np.random.default_rng(0).normal(size=(10, 6)), config, 0)
    technology = Technology(dac_fom=3e-15)
    assert operation_counts(layer_hardware(layer), technology)["dac_conversions"] == conversions
    dac = _row(layer_cost(layer_hardware(layer), np.ones((2, 10)), technology), "DAC")
    assert dac.energy_J == pytest.approx(conversions * 3e-15 * 2**5, rel=1e-12)


def test_survey_converter_energies():
    # Walden FOM 2.2 fJ/step (Harpe et al., ISSCC 2013): an 8-bit conversion costs 0.56 pJ,
    # inside the 0.1-2 pJ of current SAR ADCs; the DAC is assumed to cost the same per step
    assert Technology().adc_fom * 2**8 == pytest.approx(0.5632e-12, rel=1e-12)
    assert Technology().dac_fom == Technology().adc_fom == cost.ADC_SURVEY_FOM_J


def test_reference_column_is_read_and_converted():
    # cols = 4 with a reference column: 3 weights per array, 6 outputs -> 2 arrays per row block
    config = CrossbarConfig.quantization_only(rows=4, cols=4, input_sum="reference")
    layer = program_layer(np.random.default_rng(0).normal(size=(10, 6)), config, 0)
    hardware = layer_hardware(layer)
    counts = operation_counts(hardware)
    assert counts["conversions"] == 3 * 2 * 4
    assert counts["adds"] == 2 * 8 + 6  # no digital sum(x)
    # the reference cells sit at G_max and carry current: the read energy includes them
    without = layer.conductance.copy()
    without[:, layer.layout.reference] = 0.0
    x = np.random.default_rng(1).uniform(size=(4, 10))
    voltages = layer.row_voltages(x)[1]
    full = T_READ * np.mean(np.square(voltages) @ layer.conductance.sum(axis=1))
    assert _row(layer_cost(hardware, x, Technology(t_read=T_READ)), "array read").energy_J == pytest.approx(full, rel=1e-12)
    assert full > T_READ * np.mean(np.square(voltages) @ without.sum(axis=1))


def test_ideal_adc_is_costed_at_the_stated_bits():
    layer = program_layer(np.ones((4, 4)), CrossbarConfig.quantization_only(), 0)
    table = layer_cost(layer_hardware(layer), np.ones((1, 4)), Technology(ideal_adc_bits=5))
    assert bool(table.adc_assumed.all()) and int(table.adc_bits.iloc[0]) == 5
    assert _row(table, "ADC").energy_J == pytest.approx(4 * Technology().adc_fom * 2**5, rel=1e-12)


def test_common_mode_current_source_energy_by_hand():
    # G_cm = 50 uS per row, 2 physical columns, V = [0.1, 0.05] V, supply v_read = 0.1 V, 20 ns:
    # E = 0.1 * 20e-9 * 2 * 50e-6 * 0.15 = 3e-14 J
    hardware = _hardware([[100e-6, 200e-6], [300e-6, 400e-6]], common_mode_conductance=50e-6)
    table = layer_cost(hardware, [[1.0, 0.5]], Technology(t_read=T_READ))
    assert _row(table, "common-mode current").energy_J == pytest.approx(3e-14, rel=1e-12)


def test_network_totals_and_efficiency():
    rng = np.random.default_rng(0)
    model = MLP([rng.normal(size=(9, 5)), rng.normal(size=(5, 3))], [np.zeros(5), np.zeros(3)])
    config = CrossbarConfig.quantization_only().with_(periphery=Periphery(adc_bits=8))
    layers = [program_layer(w, config, 0) for w in model.weights]
    x = rng.uniform(size=(7, 9))
    logits, inputs = network_inputs(model, layers, x, 1)
    assert logits.shape == (7, 3) and inputs[0].shape == (7, 9) and inputs[1].shape == (7, 5)
    assert np.all(inputs[1] >= 0)  # ReLU activations fed to layer 2
    table = cost_table(layers, inputs)
    per_layer = table[table.layer != "total"]
    grand = table[(table.layer == "total") & (table.component == "total")].iloc[0]
    for column in ("energy_J", "latency_s", "area_m2"):
        assert grand[column] == pytest.approx(per_layer[column].sum(), rel=1e-12)
    summary = efficiency(table, layers)
    assert summary["ops"] == 2 * (9 * 5 + 5 * 3)
    assert summary["TOPS_per_W"] == pytest.approx(summary["ops"] / grand.energy_J / 1e12)


def test_bad_input_names_the_parameter():
    layer = program_layer(np.ones((4, 4)), CrossbarConfig.quantization_only(), 0)
    with pytest.raises(ValueError, match="t_read"):
        Technology(t_read=0.0)
    with pytest.raises(ValueError, match="adc_fom"):
        Technology(adc_fom=-1.0)
    with pytest.raises(ValueError, match="dac_fom"):
        Technology(dac_fom=-1.0)
    with pytest.raises(ValueError, match="ideal_adc_bits"):
        Technology(ideal_adc_bits=40)
    with pytest.raises(ValueError, match=r"x must have shape \(batch >= 1, 4\)"):
        cost_table([layer], np.ones((2, 3)))
    with pytest.raises(ValueError, match="x must give one input array per layer"):
        cost_table([layer, layer], np.ones((2, 4)))
    with pytest.raises(ValueError, match="layers"):
        cost_table([], np.ones((2, 4)))
    with pytest.raises(ValueError, match="ProgrammedLayer"):
        cost_table([np.ones((4, 4))], np.ones((2, 4)))


def test_bias_dependent_sum_equals_the_dense_cell_sum(monkeypatch):
    # default device (bias-dependent TMR, variation), inputs with zeros, 3 row blocks with padding
    rng = np.random.default_rng(3)
    layer = program_layer(rng.normal(size=(10, 6)), CrossbarConfig(), rng)
    x = np.where(rng.uniform(size=(5, 10)) < 0.4, 0.0, rng.uniform(size=(5, 10)))
    voltages = layer.row_voltages(x)[1]  # (5, 12), padded rows at 0 V
    cells = layer.levels.cell(voltages[:, :, None], layer.state[None]) * layer.variation[None]
    dense = T_READ * np.mean(np.einsum("bi,bij->b", np.square(voltages), cells))
    table = layer_cost(layer_hardware(layer), x, Technology(t_read=T_READ))
    assert _row(table, "array read").energy_J == pytest.approx(dense, rel=1e-6)  # polynomial fit of the levels
    # without the fit (exact table lookup at every non-zero input)
    monkeypatch.setattr(cost, "_level_polynomial", lambda layer: None)
    exact = layer_cost(layer_hardware(layer), x, Technology(t_read=T_READ))
    assert _row(exact, "array read").energy_J == pytest.approx(dense, rel=1e-12)


def test_non_finite_inputs_are_rejected():
    layer = program_layer(np.ones((4, 4)), CrossbarConfig.quantization_only(), 0)
    with pytest.raises(ValueError, match="x must contain only finite values"):
        cost_table([layer], np.array([[1.0, np.nan, 0.0, 0.0]]))


def test_pareto_front_and_knob_steps_on_a_hand_made_study():
    from imclib.experiments import cost as study

    # four configurations, two seeds each; (energy nJ, accuracy): A (1, 0.5), B (2, 0.9), C (3, 0.8), D (4, 0.95)
    points = {(4, 4, 8): (2e-9, 0.9), (8, 4, 8): (4e-9, 0.95), (4, 16, 8): (1e-9, 0.5), (4, 4, 10): (3e-9, 0.8)}
    rows = [{"n_states": n, "size": s, "adc_bits": b, "seed": seed, "accuracy": acc + (0.01 if seed else -0.01),
             "energy_J": energy, "latency_s": 1.0, "area_m2": 1.0, "TOPS_per_W": 1.0}
            for (n, s, b), (energy, acc) in points.items() for seed in (0, 1)]
    summary = study.summarize(pd.DataFrame(rows))
    front = {tuple(r) for r in summary[summary.on_front][["n_states", "size", "adc_bits"]].to_numpy()}
    assert front == {(4, 16, 8), (4, 4, 8), (8, 4, 8)}  # (4, 4, 10) costs more than (4, 4, 8) for less accuracy
    steps = study.knob_steps(summary, {"n_states": 4, "size": 4, "adc_bits": 8}).set_index("knob")
    # from (4, 4, 8): 8 states gain 5 points for 2 nJ; 16x16 arrays lose 40 points; 10 bits lose 10 points
    assert steps.loc["n_states", "delta_accuracy"] == pytest.approx(5.0)
    assert steps.loc["n_states", "energy_per_point_J"] == pytest.approx(2e-9 / 5.0)
    assert steps.loc["size", "delta_accuracy"] == pytest.approx(-40.0) and np.isnan(steps.loc["size", "energy_per_point_J"])
    assert steps.loc["adc_bits", "delta_energy_J"] == pytest.approx(1e-9)


def test_converter_floor_is_the_converter_rows_of_the_cost_table():
    from imclib.experiments import cost as study

    rng = np.random.default_rng(4)
    model = MLP([rng.normal(size=(9, 5)), rng.normal(size=(5, 3))], [np.zeros(5), np.zeros(3)])
    config = study.config(4, 4, 6, bias_dependence=False)
    layers = [program_layer(w, config, 0) for w in model.weights]
    _, inputs = network_inputs(model, layers, rng.uniform(size=(3, 9)), 0)
    table = cost_table(layers, inputs).set_index(["layer", "component"])
    expected = table.loc[("total", "ADC"), "energy_J"] + table.loc[("total", "DAC"), "energy_J"]
    assert study.converter_floor(model, config) == pytest.approx(expected, rel=1e-12)
    assert study.converter_floor(model, config) < table.loc[("total", "total"), "energy_J"]
    wired = study.e1_config(2, 16, 4, scheme="differential")
    assert wired.nonideal.bias_dependence == study.E1_BIAS_DEPENDENCE and wired.wires.r_row == wired.wires.r_col == study.E1_WIRE_OHM
    assert wired.mapping == "differential" and wired.periphery.adc_bits == 4 and wired.periphery.dac_bits is not None
    with pytest.raises(ValueError, match="scheme"):
        study.e1_config(2, 16, 4, scheme="offset")


def _fake_study(monkeypatch, outcomes: dict):
    """credible_search on made-up outcomes: key -> (floor J, energy J, accuracy per seed)."""
    from imclib.experiments import cost as study

    monkeypatch.setattr(study, "converter_floor", lambda model, config_: outcomes[
        (config_.cell.n_states, config_.rows, config_.periphery.adc_bits)][0])
    monkeypatch.setattr(study.mnist, "calibration_inputs", lambda n=None: None)
    visited = []

    def evaluate(model, x, y, key, seeds, calibration, scheme="offset/digital"):
        visited.append(key)
        _, energy, accuracies = outcomes[key]
        return [{"n_states": key[0], "size": key[1], "adc_bits": key[2], "scheme": scheme, "seed": seed,
                 "accuracy": a, "energy_J": energy, "latency_s": 1.0, "area_m2": 1.0, "TOPS_per_W": 1.0}
                for seed, a in zip(seeds, accuracies)]

    monkeypatch.setattr(study, "_evaluate", evaluate)
    table = study.credible_search(None, None, None, states=(2, 4), sizes=(4, 16), bits=(8,), seeds=(0, 1, 2), progress=False)
    return study, table, visited


def test_credible_search_stops_where_no_configuration_can_be_cheaper(monkeypatch):
    outcomes = {  # (floor, energy, accuracies); the paper's (4, 4, 8) at 0.95, 10 units of energy
        (4, 4, 8): (9.0, 10.0, (0.95, 0.95, 0.95)),
        (2, 16, 8): (1.0, 2.0, (0.90, 0.90, 0.90)),   # cheapest, but 5 points worse: not the answer
        (4, 16, 8): (2.0, 3.0, (0.945, 0.94, 0.945)),  # within 1 point: the answer
        (2, 4, 8): (5.0, 6.0, (0.99, 0.99, 0.99)),    # floor 5 >= incumbent 3: never simulated
    }
    study, table, visited = _fake_study(monkeypatch, outcomes)
    assert visited == [(4, 4, 8), (2, 16, 8), (4, 16, 8)]
    result = study.check_claim(table, table[table.visit == 0], 0.97, 2000, record=False)
    assert result["passed"] and tuple(result["cheapest"][["n_states", "size", "adc_bits"]]) == (4, 16, 8)
    assert result["saving"] == pytest.approx(0.7)
    np.testing.assert_allclose(result["difference_by_seed"], [-0.005, -0.01, -0.005])
    assert result["visited"] == 3 and result["grid"] == 18
    assert "E1 (reproduced)" in study.findings(result, _breakdown_summary(), _shares())


def test_credible_search_fails_when_only_the_paper_configuration_is_within_one_point(monkeypatch):
    outcomes = {(4, 4, 8): (9.0, 10.0, (0.95,) * 3), (2, 16, 8): (1.0, 2.0, (0.9,) * 3),
                (4, 16, 8): (2.0, 3.0, (0.93,) * 3), (2, 4, 8): (5.0, 6.0, (0.939,) * 3)}
    study, table, visited = _fake_study(monkeypatch, outcomes)
    assert len(visited) == 4
    result = study.check_claim(table, table[table.visit == 0], 0.97, 2000, record=False)
    assert not result["passed"] and result["cheapest"].visit == 0 and result["saving"] == 0.0


def _breakdown_summary():
    return pd.DataFrame([{"size": s, "scenario": "per_tile", "energy_J": 1e-9, "TOPS_per_W": 1.0} for s in (4, 16, 64)])


def _shares():
    index = pd.MultiIndex.from_tuples([(4, "per_tile")], names=["size", "scenario"])
    return pd.DataFrame({"ADC": [0.9], "DAC": [0.05], "array read": [0.01], "digital": [0.04]}, index=index)
