"""Study 05 machinery: the physical read path, the optimum criterion and the training seam."""

import numpy as np
import pandas as pd
import pytest

from imclib import CrossbarConfig, defaults, simulate_mvm
from imclib.experiments import states, verdicts
from imclib.mlp import MLP
from imclib.sensing import SenseCircuit, junction_shares


def _small(seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(24, 6)), rng.uniform(0, 1, size=(30, 24))


def test_noise_free_read_equals_library_mvm():
    weights, x = _small()
    config = states.study_config(8, "writable")
    layer, g = states.program(weights, config)
    y = states.read(layer, g, x, 0, sense_noise=0.0)
    np.testing.assert_allclose(y, simulate_mvm(weights, x, config), rtol=1e-12, atol=1e-12)


def test_read_noise_has_the_circuit_variance():
    weights, x = _small(1)
    x = x[:2]
    config = states.study_config(4, "writable")
    layer, g = states.program(weights, config)
    sense = SenseCircuit(t_int=1e-9)
    quiet = states.read(layer, g, x, 0, sense_noise=0.0)
    reads = np.stack([states.read(layer, g, x, seed, sense) for seed in range(4000)])
    applied, voltages, s = layer.row_voltages(x)
    variance = sense.column_variance(voltages, g, layer.row_blocks, junction_shares(config.cell),
                                     layer.state)[:, layer.layout.weight]
    predicted = np.sqrt(variance) * np.abs(layer.weight_map.gain) / s  # the calibrated map may flip a
    np.testing.assert_allclose(reads.mean(axis=0), quiet, atol=4 * predicted.max() / np.sqrt(4000))
    np.testing.assert_allclose(reads.std(axis=0), predicted, rtol=0.06)


def test_program_draws_junction_variation_and_rejects_other_nonidealities():
    weights, _ = _small()
    layer, g = states.program(weights, states.study_config(4), 0.03, 5)
    assert g.shape == layer.conductance.shape and not np.allclose(g, layer.conductance)
    np.testing.assert_allclose(np.log(g / layer.conductance).std(), 0.03 * np.sqrt(5) / 3, rtol=0.3)
    with pytest.raises(ValueError, match="config"):
        states.program(weights, CrossbarConfig())


def test_sweep_resolution_grows_with_noise_and_seeds_repeat():
    weights, x = _small()
    quiet = states.states_sweep(weights, x, (2, 4), sense_noise=0.0, seeds=[0], progress=False)
    noisy = states.states_sweep(weights, x, (2, 4), sense=SenseCircuit(t_int=1e-10), seeds=[0, 1], progress=False)
    again = states.states_sweep(weights, x, (2, 4), sense=SenseCircuit(t_int=1e-10), seeds=[0, 1], progress=False)
    assert np.all(quiet[quiet.component == "resolution"].error == 0)
    assert np.all(noisy[noisy.component == "resolution"].error > 0)
    pd.testing.assert_frame_equal(noisy, again)


def _table(values_by_seed):
    return pd.DataFrame([{"states": n, "component": "total", "seed": s, "error": e}
                         for s, row in enumerate(values_by_seed) for n, e in zip((2, 3, 4, 5), row)])


def test_interior_optimum_criterion():
    clear = states.interior_optimum(_table([[1.0, 0.5, 0.6, 0.9], [1.1, 0.52, 0.61, 0.92], [0.9, 0.49, 0.58, 0.88]]))
    assert clear["optimum"] == 3 and clear["label"] == "N = 3" and clear["n_seeds"] == 3
    edge = states.interior_optimum(_table([[1.0, 0.5, 0.4, 0.3], [1.0, 0.5, 0.4, 0.3]]))
    assert edge["optimum"] is None and edge["label"] == "no interior optimum" and edge["best_N"] == 5
    # interior minimum, but the last N is within the seed spread of it
    noisy = states.interior_optimum(_table([[1.0, 0.5, 0.40, 0.30], [1.0, 0.5, 0.40, 0.55], [1.0, 0.5, 0.40, 0.45]]))
    assert noisy["best_N"] == 4 and noisy["optimum"] is None
    accuracy = _table([[0.1, 0.9, 0.95, 0.5], [0.1, 0.9, 0.96, 0.5]]).rename(columns={"error": "accuracy"})
    assert states.interior_optimum(accuracy, column="accuracy", component=None, best="max")["optimum"] == 4


def test_accuracy_sweep_trains_per_n_through_the_seam():
    rng = np.random.default_rng(0)
    model = MLP([rng.normal(size=(12, 8)), rng.normal(size=(8, 3))], [np.zeros(8), np.zeros(3)])
    x, y = rng.uniform(0, 1, (40, 12)), rng.integers(0, 3, 40)
    seen = []

    def train(config, seed):
        seen.append((config.cell.n_states, seed))
        return model

    table = states.accuracy_sweep(x, y, x, train, states=(2, 5), seeds=range(2), progress=False, train_seeds=(0, 3))
    assert seen == [(2, 0), (2, 3), (5, 0), (5, 3)] and len(table) == 8
    assert list(table.columns) == ["states", "train_seed", "seed", "accuracy"]
    exact = np.mean(model.forward(x, matmul=lambda i, a, w: simulate_mvm(w, a, states.study_config(5))).argmax(1) == y)
    quiet = states.network_accuracy(model, x, y, states.study_config(5), [0], np.ones((1, 12)),
                                    SenseCircuit(t_int=1.0, r_sense=np.inf))
    assert quiet.accuracy[0] == pytest.approx(exact)


def test_cell_table_covers_every_n():
    table = states.cell_table(kinds=("writable", "series"))
    writable = table[(table.kind == "writable") & (table.design == "equal RA")].set_index("n_states")
    assert list(writable.index) == list(range(2, 17)) and writable.writable.all()
    assert writable.credible[2] and not writable.credible[16]
    assert set(table[table.kind == "writable"].design) == set(states.STACK_DESIGNS)
    assert set(table[table.kind == "series"].design) == {"equal RA"}
    graded = table[(table.kind == "writable") & (table.design == "graded RA")].set_index("n_states")
    np.testing.assert_allclose(graded.window_uS, writable.window_uS)  # same levels, other geometry
    assert not table[(table.kind == "series") & (table.n_states > 2)].writable.any()


def test_optimum_shift_reuses_the_default_point_and_noise_falls_with_t_int():
    weights, x = _small(2)
    table = states.optimum_shift(lambda **setting: states.states_sweep(weights, x, (2, 3, 4), seeds=range(3),
                                                                       progress=False, **setting), progress=False)
    defaults_rows = table[((table.parameter == "TMR0") & (table.value == 1.0)) | ((table.parameter == "v_read (V)") & (table.value == 0.1))
                          | ((table.parameter == "t_int (ns)") & (table.value == 10.0))]
    assert len(defaults_rows) == 3 and defaults_rows.total_error.nunique() == 1
    t_int = table[table.parameter == "t_int (ns)"].set_index("value").total_error
    assert t_int[1.0] > t_int[10.0] > t_int[100.0]


def test_training_noise_floor_is_the_circuit_noise_of_a_full_scale_column():
    config = states.study_config(4, "writable")
    sense = SenseCircuit()
    # by hand: df (rows mean_q G_q sum_k r_qk S/G(r_qk V) + 4kT/R_s), S/G(v) = 2 q v coth(qv / 2kT) per junction;
    # junctions R_P, 2 R_P (x2 when antiparallel): levels (codes 3, 2, 1, 0) have R_P x [6, 5, 4, 3]
    q, k, temperature = 1.602176634e-19, 1.380649e-23, sense.temperature
    v, r_p = config.v_read, config.cell.mtj.r_p
    junctions = [(2, 4), (1, 4), (2, 2), (1, 2)]  # (R_0, R_1) / R_P per level, lowest G first

    def per_siemens(u):
        return 2 * q * u / np.tanh(q * u / (2 * k * temperature))

    density = [sum(rk * per_siemens(v * rk / sum(r)) for rk in r) / (sum(r) ** 2 * r_p) for r in junctions]
    expected = np.sqrt(sense.bandwidth * (config.rows * np.mean(density) + 4 * k * temperature / sense.r_sense))
    assert states.training_noise_floor(config, sense) == pytest.approx(expected, rel=1e-12)
    assert states.training_noise_floor(config, SenseCircuit(t_int=1e-9)) > states.training_noise_floor(config, sense)


def test_hwa_training_trains_on_the_study_levels_with_the_noise_floor(monkeypatch):
    from imclib.experiments import mnist

    seen = []
    monkeypatch.setattr(mnist, "hwa_model", lambda config, seed: seen.append((config, seed)) or ("model", None))
    config = states.study_config(3, "writable")
    assert states.hwa_training(config, seed=2) == "model"
    trained, seed = seen[0]
    assert seed == 2 and trained.cell == config.cell and trained.weight_map == config.weight_map
    assert trained.periphery.sense_noise == pytest.approx(states.training_noise_floor(config))
    assert trained.with_(periphery=config.periphery) == config  # nothing else differs


def test_cached_tables_key_every_parameter(monkeypatch, tmp_path):
    from imclib.experiments import mnist

    monkeypatch.setattr(mnist, "default_cache_dir", lambda: tmp_path)
    monkeypatch.setattr(states, "layer1_inputs", lambda n_samples=1000: _small(n_samples))
    calls = []

    def sweep(*args, **kwargs):
        calls.append(kwargs)
        return pd.DataFrame({"states": [2], "error": [float(len(calls))]})

    monkeypatch.setattr(states, "states_sweep", sweep)
    first = states.sweep_table(n_samples=3, states=(2, 3), seeds=range(2))
    again = states.sweep_table(n_samples=3, states=(2, 3), seeds=range(2), sense=SenseCircuit(), tmr0=1.0)
    pd.testing.assert_frame_equal(first, again)  # defaults spelled out hit the same entry
    assert len(calls) == 1 and calls[0]["sense"] == SenseCircuit() and calls[0]["scheme"] == "offset/digital"
    for changed in ({"tmr0": 2.0}, {"v_read": 0.2}, {"sense": SenseCircuit(t_int=1e-9)}, {"scheme": "differential"},
                    {"junction_sigma": 0.03}, {"kind": "uniform"}, {"seeds": range(3)}, {"n_samples": 4}):
        states.sweep_table(**{"n_samples": 3, "states": (2, 3), "seeds": range(2), **changed})
    assert len(calls) == 9  # every parameter change recomputes


def test_accuracy_table_runs_the_named_training_on_a_subset(monkeypatch, tmp_path):
    from imclib.experiments import mnist

    monkeypatch.setattr(mnist, "default_cache_dir", lambda: tmp_path)
    seen = []

    def sweep(x, y, calibration, train, states_, kind, seeds, sense, junction_sigma, scheme, progress, train_seeds):
        seen.append((len(x), train, list(states_), list(seeds), list(train_seeds), float(x.sum())))
        return pd.DataFrame({"states": list(states_), "train_seed": 0, "seed": 0, "accuracy": 0.5})

    monkeypatch.setattr(states, "accuracy_sweep", sweep)
    table = states.accuracy_table("expert PTQ", n_images=7, states=(2, 3), seeds=range(2), train_seeds=(0, 1))
    assert seen[0][:5] == (7, states.expert_ptq, [2, 3], [0, 1], [0, 1]) and set(table.training) == {"expert PTQ"}
    states.accuracy_table("expert PTQ", n_images=7, states=(2, 3), seeds=range(2), train_seeds=(0, 1))
    assert len(seen) == 1  # cached
    states.accuracy_table("expert PTQ", n_images=7, subset="val", states=(2, 3), seeds=range(2), train_seeds=(0, 1))
    assert len(seen) == 2 and seen[1][-1] != seen[0][-1]  # other images
    with pytest.raises(ValueError, match="training"):
        states.accuracy_table("none")
    with pytest.raises(ValueError, match="subset"):
        states.accuracy_table("HWA", subset="train")


def _accuracy(values):
    """Rows (N, training seed, device seed, accuracy) from {N: [per training seed]}."""
    return pd.DataFrame([{"states": n, "train_seed": t, "seed": 0, "accuracy": a}
                         for n, row in values.items() for t, a in enumerate(row)])


def test_select_and_test_chooses_on_one_set_and_tests_on_the_other():
    selection = _accuracy({2: [0.90, 0.91, 0.90], 4: [0.97, 0.97, 0.96], 8: [0.96, 0.97, 0.97], 16: [0.95, 0.95, 0.96]})
    # on the test set N = 8 would look best, but N = 4 was chosen: it is what is tested
    clear = states.select_and_test(selection, _accuracy({2: [0.90, 0.90, 0.91], 4: [0.970, 0.971, 0.969],
                                                         8: [0.99, 0.99, 0.99], 16: [0.950, 0.952, 0.951]}))
    assert clear["selected_N"] == 4 and clear["optimum"] == 4 and clear["label"] == "N = 4"
    assert clear["test"]["n_seeds"] == 3
    # the chosen N does not beat N = 16 on fresh data beyond the training-seed spread
    lost = states.select_and_test(selection, _accuracy({2: [0.90, 0.90, 0.91], 4: [0.97, 0.95, 0.96],
                                                        16: [0.96, 0.97, 0.95]}))
    assert lost["selected_N"] == 4 and lost["optimum"] is None and lost["label"] == "no interior optimum"
    with pytest.raises(ValueError, match="test table"):
        states.select_and_test(selection, _accuracy({2: [0.9] * 3, 16: [0.9] * 3}))


def test_c6_verdict_follows_the_criteria():
    def result(optimum):
        return {"optimum": optimum}

    errors = {f"writable, {s}": result(None) for s in states.SCHEMES}
    no_shift = pd.DataFrame({"scheme": ["offset/digital"], "parameter": ["TMR0"], "value": [1.0], "optimum": [np.nan]})
    accuracy = {"offset/digital": result(None), "differential": result(None)}
    nothing = states.c6_verdict(errors, no_shift, accuracy, 4)
    assert nothing["verdict"] == "not reproduced" and nothing["parts_held"] == []
    assert nothing["parts"]["offset/reference"] == {"error": False, "accuracy": None}  # accuracy not computed there
    # an optimum on accuracy only, under differential: partly, and the part is named; no scheme holds
    partly = states.c6_verdict(errors, no_shift, {**accuracy, "differential": result(4)}, 4)
    assert partly["verdict"] == "partly" and partly["optima"] == [4] and not any(partly["by_scheme"].values())
    assert partly["parts_held"] == ["differential: accuracy"]
    # both parts at the defaults under offset/digital at a credible N: that scheme holds, the others do not
    both = {**errors, "writable, offset/digital": result(4)}
    one_scheme = states.c6_verdict(both, no_shift, {**accuracy, "offset/digital": result(4)}, 4)
    assert one_scheme["verdict"] == "partly"
    assert one_scheme["by_scheme"] == {"offset/digital": True, "offset/reference": False, "differential": False}
    # every scheme, both parts where computed: reproduced
    everywhere = {f"writable, {s}": result(3) for s in states.SCHEMES}
    reproduced = states.c6_verdict(everywhere, no_shift, {"offset/digital": result(4), "differential": result(3)}, 4)
    assert reproduced["verdict"] == "reproduced" and all(reproduced["by_scheme"].values())
    # beyond the credible N the accuracy part fails, the error part still holds
    beyond = states.c6_verdict(both, no_shift, {**accuracy, "offset/digital": result(8)}, 4)
    assert beyond["verdict"] == "partly" and beyond["parts_held"] == ["offset/digital: error"]
    assert not any(beyond["by_scheme"].values())
    # an optimum in a shifted setting is reported, not judged
    shifted = no_shift.assign(optimum=[8.0])
    moved = states.c6_verdict(errors, shifted, accuracy, 4)
    assert moved["anywhere"] == ["offset/digital, TMR0 = 1 (N = 8)"] and moved["verdict"] == "not reproduced"
    for record in (nothing, partly, one_scheme, reproduced, beyond, moved):
        assert verdicts.verdict_problems(record) == []
    # the criterion states the rule before the parts
    assert states.C6_CRITERION.startswith(verdicts.VERDICT_RULE)


def _findings_inputs(optimum_offset=None, accuracy_optimum=6):
    designs = {"equal RA": [2, 3, 4], "graded RA": [3, 4, 5, 6, 7, 8]}
    cells = pd.DataFrame([{"kind": "writable", "design": design, "n_states": n, "credible": n in credible,
                           "write_voltage_max_V": 0.1 * n + (0.5 if design == "equal RA" else 0.0)}
                          for design, credible in designs.items() for n in range(2, 17)])

    def sweep(optimum, best, value):
        return {"optimum": optimum, "label": f"N = {optimum}" if optimum else "no interior optimum", "best_N": best,
                "value": value, "ci95": 0.0001, "near_optimal": [best], "n_seeds": 5}

    errors = {"writable, offset/digital": sweep(optimum_offset, optimum_offset or 16, 0.0693),
              "writable, offset/reference": sweep(None, 16, 0.07), "writable, differential": sweep(8, 8, 0.043),
              f"writable, offset/digital, {defaults.JUNCTION_SIGMA:.0%} junction variation": sweep(None, 16, 0.08),
              "series (contrast: not writable)": sweep(14, 14, 0.1), "uniform (contrast: idealized)": sweep(None, 16, 0.05)}

    def selection(optimum):
        return {"selected_N": 6, "selection_value": 0.9778, "label": f"N = {optimum}" if optimum else "no interior optimum",
                "optimum": optimum, "test": {"value": 0.9715, "gain_low": 0.0159, "ci95_low": 0.0025, "gain_high": 0.0027,
                                             "ci95_high": 0.0015, "n_seeds": 3}}

    selections = {"offset/digital": selection(accuracy_optimum), "differential": selection(None)}
    validation = pd.DataFrame([{"scheme": scheme, "states": n, "seed": seed, "accuracy": 0.96 + 0.001 * n}
                               for scheme in selections for n in states.ACCURACY_STATES for seed in (0, 1, 2)])
    ptq = pd.DataFrame({"states": [2, 4, 16], "seed": 0, "accuracy": [0.723, 0.9695, 0.9755]})
    artifact = pd.DataFrame({"states": [2, 3, 4], "zero_maps_to": [0.0, -0.6, 0.0],
                             "quantization_offset": [0.5, 0.9, 0.3], "quantization_offset_calibrated": [0.4, 0.35, 0.2]})
    shift = pd.DataFrame({"scheme": ["differential"], "parameter": ["TMR0"], "value": [0.5], "optimum": [8.0]})
    c6 = states.c6_verdict(errors, shift, selections, 8)
    return cells, {2: 30.2, 4: 16.4, 16: 11.0}, errors, selections, validation, ptq, artifact, c6


def test_c6_findings_are_generated_from_the_tables():
    inputs = _findings_inputs()
    text = states.c6_findings(*inputs)
    assert "What we found" not in text  # the heading is the notebook's markdown cell
    assert "With equal RA only N = 2, 3, 4 is credible" in text and "N = 3, 4, 5, 6, 7, 8 is credible" in text
    assert "1.3 V (3 junctions) or 2.1 V (4 junctions)" in text  # 0.1 * 8 + 0.5, 0.1 * 16 + 0.5
    assert "30 nA (N = 2), 16 nA (N = 4) and 11 nA (N = 16)" in text
    assert "0.0693 ± 0.0001 (95 % CI) at N = 16" in text and "Differential pairs: **N = 8**" in text
    assert "stored as -0.60 w_max at N = 3" in text and "quantization error 0.35 instead of 0.90" in text
    assert "72.30% at N = 2" in text and "+1.59% ± 0.25% over N = 2" in text
    # the verdict bullet follows c6_verdict: offset/digital accuracy (N = 6) and differential error (N = 8) hold
    assert "**Verdict for C6: partly.**" in text
    assert "offset/digital: error fails, accuracy holds" in text and "offset/reference: error fails, accuracy not computed" in text
    assert "Parts that hold: offset/digital: accuracy; differential: error." in text
    assert "N = 6 are not powers of two" in text  # the accuracy optimum at N = 6 is flagged
    # other tables, other text: nothing typed in
    error_optimum = states.c6_findings(*_findings_inputs(optimum_offset=4, accuracy_optimum=None))
    assert "Writable stack with offset/digital: **N = 4**" in error_optimum
    assert "offset/digital: error holds, accuracy fails" in error_optimum
    assert "not powers of two" not in error_optimum and "Every one of them is at a power of two" in error_optimum


def test_accuracy_steps_pairs_training_seeds():
    # seed s at N: 0.90 + 0.01 N + 0.002 s, except a step of +0.05 at N = 4 that seed 2 lacks
    rows = [{"scheme": "offset/digital", "states": n, "seed": s,
             "accuracy": 0.90 + 0.01 * n + 0.002 * s + (0.05 if n >= 4 and s < 2 else 0.0)}
            for n in (2, 3, 4) for s in (0, 1, 2)]
    validation = pd.DataFrame(rows + [{**row, "scheme": "differential", "accuracy": 0.5} for row in rows])
    table, significant = states.accuracy_steps(validation)
    assert list(table.columns) == [3, 4]
    np.testing.assert_allclose(table.loc["HWA change"], [0.01, 0.01 + 0.05 * 2 / 3], rtol=1e-12)
    # N = 3: the same change for every seed, CI 0; N = 4: changes 0.06, 0.06, 0.01
    sd = np.std([0.06, 0.06, 0.01], ddof=1)
    np.testing.assert_allclose(table.loc["95 % CI (training seeds)"], [0.0, 4.302652729911275 * sd / np.sqrt(3)],
                               rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(table.loc["sd over training seeds at N", 3], 0.002, rtol=1e-9)
    assert significant == [3]  # 0.043 +- 0.124 at N = 4 is not
    with pytest.raises(ValueError, match="validation must hold >= 2 training seeds"):
        states.accuracy_steps(validation[validation.seed == 0])


def test_accuracy_curve_finding_and_artifact_summary_are_generated_from_the_tables():
    cells, _, _, _, validation, ptq, artifact, _ = _findings_inputs()
    ptq = pd.concat([ptq, pd.DataFrame({"states": [3], "seed": [0], "accuracy": [0.91]})])
    text = states.accuracy_curve_finding(validation, states.accuracy_steps(validation)[1], ptq, artifact)
    assert "Across 3 training seeds (offset/digital, validation images)" in text
    # the seeds agree exactly: every step (0.1 point per N) beyond its CI of 0
    assert "at N = 3, 4, 5, 6, 8, 12, 16;" in text and "sd is up to 0.00 points" in text
    assert "reach only 72.3% and 91.0%" in text and "error is 0.40 and 0.35" in text
    assert "recovers 96.2% and 96.3%" in text
    windows = {2: 40.0, 3: 20.0, 5: 10.0, 9: 8.0}
    cells = cells.assign(r_min_kohm=cells.n_states * 1.0, window_uS=cells.n_states.map(windows).fillna(1.0))
    artifact = artifact.assign(quantization_differential=[0.45, 0.40, 0.2])
    sweep = pd.DataFrame({"component": "resolution", "states": list(range(3, 17)), "error": 0.01})
    sweep.loc[sweep.states == 4, "error"] = 0.0125  # 25 % above N = 3 in the 3-junction group
    lines = states.artifact_summary(artifact, sweep, cells).splitlines()
    assert lines[0] == ("N = 3, naive maps: w = 0 is stored as -0.60 w_max; quantization error offset 0.90 vs "
                        "differential 0.40; calibrated offset map 0.35")
    assert lines[1] == ("all-parallel stack resistance at N = 2: 2 kΩ, 3: 3 kΩ, 5: 5 kΩ, 9: 9 kΩ; "
                        "the window shrinks 2.0×, 2.0×, 1.2× at N = 3, 5, 9")
    assert lines[2] == "resolution error varies by up to 25.0% within one junction count (calibrated map: one gain per N)"


def test_record_c6_writes_the_criterion_verdict_parts_and_measured(tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("IMCLIB_FIGURES_DIR", str(tmp_path))
    cells, _, errors, selections, validation, ptq, _, c6 = _findings_inputs()
    entry = states.record_c6(errors, selections, validation, ptq, cells, c6)
    stored = json.loads((tmp_path / "results.json").read_text())["C6"]
    assert stored["verdict"] == entry["verdict"] == "partly" and stored["criterion"] == states.C6_CRITERION
    assert entry["by_scheme"] == dict.fromkeys(states.SCHEMES, False)
    assert entry["measured"]["parts_held"] == ["offset/digital: accuracy", "differential: error"]
    assert entry["measured"]["credible_writable_N_by_design"] == {"equal RA": [2, 3, 4], "graded RA": [3, 4, 5, 6, 7, 8]}
    assert stored["measured"]["accuracy_contrast_expert_PTQ_validation"] == {"2": 0.723, "4": 0.9695, "16": 0.9755}
    assert entry["n_seeds"] == 5 and entry["accuracy_training_seeds"] == 3
    # a verdict that does not follow from by_scheme and the parts is refused, and nothing is written
    (tmp_path / "results.json").unlink()
    with pytest.raises(ValueError, match="C6: verdict 'reproduced'"):
        states.record_c6(errors, selections, validation, ptq, cells, {**c6, "verdict": "reproduced"})
    assert not (tmp_path / "results.json").exists()
