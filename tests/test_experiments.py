"""Study helpers: small, independent checks of the logic the notebooks rely on."""

import json

import numpy as np
import pandas as pd
import pytest

from imclib import CrossbarConfig, program_layer
from imclib.experiments import basics, errors, mnist, pca, states, xor
from imclib.mlp import MLP
from imclib.reproduce import results_table
from imclib.results import record_claim


def test_cell_levels_table_has_hand_values():
    table = basics.cell_levels(4, tmr0=1.0, v_read=0.1)
    binary = table[table.construction == "binary"].resistance_ohm.to_numpy()
    np.testing.assert_allclose(np.sort(binary), [18e3, 24e3, 30e3, 36e3])
    assert set(table.construction) == {"series", "uniform", "binary"}
    assert set(basics.cell_levels(3).construction) == {"series", "uniform"}  # 3 is no power of two


def test_tiling_example_counts_tiles_and_is_exact():
    tiles, max_error = basics.tiling_example(10, 6, 4, 4)
    assert len(tiles) == 3 * 2
    assert tiles.used_rows.tolist() == [4, 4, 4, 4, 2, 2]
    assert max_error < 1e-12


def test_xor_on_ideal_array_reproduces_software_logits():
    rng = np.random.default_rng(0)
    model = MLP([rng.normal(size=(2, 2)), rng.normal(size=(2, 2))], [rng.normal(size=2), rng.normal(size=2)])
    table = xor.xor_on_one_array(model, CrossbarConfig.ideal(), seed=0)
    np.testing.assert_allclose(table[["z0", "z1"]], table[["z0_float", "z1_float"]], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(table.margin, table.float_margin, rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="4 x 4"):
        xor.xor_on_one_array(model, CrossbarConfig.ideal(8, 8), 0)


def test_xor_seed_search_is_cached_with_its_seed(tmp_path, monkeypatch):
    monkeypatch.setenv("IMCLIB_MODEL_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("IMCLIB_CACHE", str(tmp_path / "user"))
    monkeypatch.delenv("IMCLIB_RETRAIN", raising=False)
    model, seed = xor.train_xor(max_seed=5, min_margin=-1.0)
    assert 0 <= seed < 5 and np.min(xor.xor_on_one_array(model, CrossbarConfig.ideal(), 0).float_margin) >= -1.0
    monkeypatch.setattr(xor, "_search_xor", lambda *args: pytest.fail("the cached search was run again"))
    again, again_seed = xor.train_xor(max_seed=5, min_margin=-1.0)
    assert again_seed == seed and all(np.array_equal(a, b) for a, b in zip(again.weights, model.weights))
    with pytest.raises(pytest.fail.Exception, match="run again"):  # another search is another entry
        xor.train_xor(max_seed=5, min_margin=-0.9)
    monkeypatch.undo()
    with pytest.raises(RuntimeError, match="no seed below 2"):
        xor._search_xor(2, 100.0)


def test_the_studys_xor_network_is_shipped(tmp_path, monkeypatch):
    """Notebook 01 loads its network from the shipped store on any machine: training
    depends on the CPU's BLAS kernel, so a retrained network could change its results."""
    monkeypatch.setenv("IMCLIB_CACHE", str(tmp_path / "user"))
    monkeypatch.delenv("IMCLIB_MODEL_STORE", raising=False)
    monkeypatch.delenv("IMCLIB_RETRAIN", raising=False)
    monkeypatch.setattr(xor, "_search_xor", lambda *args: pytest.fail("the XOR network was trained, not loaded"))
    model, seed = xor.train_xor()
    assert model.layer_sizes == (2, 2, 2) and seed >= 0


@pytest.mark.parametrize(
    "changes",
    [{}, {"input_sum": "reference"}, {"mapping": "differential"}, {"rows": 8, "cols": 3}],
)
def test_tile_count_matches_programmed_layers(changes):
    config = CrossbarConfig.quantization_only(**changes)
    sizes = [64, 256, 10]
    programmed = sum(program_layer(np.ones((a, b)), config).n_arrays for a, b in zip(sizes, sizes[1:]))
    assert mnist.tile_count(64, config, hidden=(256,)) == programmed


def _fake_accuracy(table):
    """A stand-in for ``mnist.network_accuracy`` reading accuracies from ``table[(network, pca, subset)]``
    (a list, one per device seed; the software accuracy is a single number)."""
    def network_accuracy(network, config, train_seed=0, device_seeds=range(10), n_components=None, subset="test"):
        key = (network, "none" if n_components is None else n_components, subset)
        if network == "software":
            return pd.DataFrame({"network": [network], "train_seed": [train_seed], "device_seed": [-1],
                                 "accuracy": [table[key]]})
        seeds = list(device_seeds)
        return pd.DataFrame({"network": network, "train_seed": train_seed, "device_seed": seeds,
                             "accuracy": table[key][:len(seeds)]})
    return network_accuracy


def test_pca_gap_table_is_software_minus_hardware(monkeypatch):
    monkeypatch.setattr(mnist, "network_accuracy", _fake_accuracy({
        ("software", 16, "val"): 0.9, ("HWA", 16, "val"): [0.8, 0.85],
        ("software", "none", "val"): 0.98, ("HWA", "none", "val"): [0.95, 0.96]}))
    gaps = pca.gap_table(CrossbarConfig(), (16, None), ("HWA",), range(2), "val", progress=False)
    assert gaps.gap.tolist() == pytest.approx([0.1, 0.05, 0.03, 0.02])
    assert gaps.pca.tolist() == [16, 16, "none", "none"]
    assert gaps.tiles.tolist() == [mnist.tile_count(16, CrossbarConfig())] * 2 + [mnist.tile_count(None, CrossbarConfig())] * 2


def test_pca_size_is_chosen_on_validation_and_tested_on_test(monkeypatch):
    # on validation 64 has the smallest gap; on test 16 would look better: the study must test 64
    table = {("software", p, subset): 0.97 for p in (16, 64, "none") for subset in ("val", "test")}
    table.update({("HWA", 16, "val"): [0.90] * 3, ("HWA", 64, "val"): [0.96] * 3, ("HWA", "none", "val"): [0.93] * 3,
                  ("HWA", 16, "test"): [0.969, 0.968, 0.970, 0.969],
                  ("HWA", 64, "test"): [0.95, 0.951, 0.949, 0.950], ("HWA", "none", "test"): [0.94, 0.942, 0.938, 0.94]})
    monkeypatch.setattr(mnist, "network_accuracy", _fake_accuracy(table))
    validation, test, tests = pca.pca_study(CrossbarConfig(), ("HWA",), (16, 64), range(3), range(4), progress=False)
    assert pca.choose_size(validation, "HWA") == 64
    assert set(test.pca) == {64, "none"}
    row = tests.iloc[0]
    assert row["size"] == 64 and row.n_seeds == 4
    assert row.gap_pca == pytest.approx(0.02) and row.gap_no_pca == pytest.approx(0.03)


def _one_sided_welch_by_hand(with_pca, without):
    """(t, p = P(T <= t)) of Welch's test that the gap with PCA is smaller."""
    from scipy import stats

    v1, v2 = with_pca.var(ddof=1) / with_pca.size, without.var(ddof=1) / without.size
    t = (with_pca.mean() - without.mean()) / np.sqrt(v1 + v2)
    dof = (v1 + v2) ** 2 / (v1 ** 2 / (with_pca.size - 1) + v2 ** 2 / (without.size - 1))
    return t, stats.t.cdf(t, dof)


def test_welch_gap_test_by_hand():
    from scipy import stats

    with_pca, without = np.array([0.01, 0.02, 0.015, 0.012]), np.array([0.03, 0.028, 0.035, 0.031, 0.029])
    gaps = pd.DataFrame({"network": "HWA", "pca": [32] * 4 + ["none"] * 5, "gap": np.concatenate([with_pca, without])})
    result = pca.welch_gap_test(gaps, "HWA", 32)
    t, p_value = _one_sided_welch_by_hand(with_pca, without)
    assert result["p_value"] == pytest.approx(p_value) and t < 0
    assert result["n_seeds"] == 4
    assert result["difference"] == pytest.approx(with_pca.mean() - without.mean())
    half = stats.t.ppf(0.975, 3) * with_pca.std(ddof=1) / 2
    assert result["ci95_pca"] == pytest.approx([with_pca.mean() - half, with_pca.mean() + half])
    # the test is one-sided: a wider gap with PCA gives the upper tail, P(T <= t) with t > 0
    swapped = pca.welch_gap_test(gaps.assign(pca=["none"] * 4 + [32] * 5), "HWA", 32)
    t, p_value = _one_sided_welch_by_hand(without, with_pca)
    assert swapped["p_value"] == pytest.approx(p_value) and t > 0
    with pytest.raises(ValueError, match="device seeds"):
        pca.welch_gap_test(gaps.iloc[3:], "HWA", 32)


def test_log_slope_recovers_power_law():
    n = np.array([4, 16, 64, 256])
    table = pd.DataFrame({"rows": n, "error": 3.0 * n**0.5})
    assert errors.log_slope(table, "rows", "error") == pytest.approx(0.5)


def test_states_optimum_and_sweep_components():
    rng = np.random.default_rng(2)
    weights, x = rng.normal(size=(32, 4)), rng.uniform(0, 1, size=(40, 32))
    sweep = states.states_sweep(weights, x, states=(2, 4, 8), sense_noise=0.0, seeds=[0], progress=False)
    resolution = sweep[sweep.component == "resolution"].error
    assert np.all(resolution == 0)  # no noise, no resolution error
    totals = sweep[sweep.component == "total"].set_index("states").error
    quantization = sweep[sweep.component == "quantization"].set_index("states").error
    np.testing.assert_allclose(totals, quantization)
    synthetic = pd.DataFrame({"states": [2, 3, 4], "component": "total", "error": [0.5, 0.2, 0.3]})
    assert states.optimum(synthetic) == 3


def test_record_claim_and_readme_table(tmp_path, monkeypatch):
    monkeypatch.setenv("IMCLIB_FIGURES_DIR", str(tmp_path))
    record_claim("C9", "a statement", {"value": 0.123456}, passed=False, paper={"value": 0.2})
    record_claim("C8", "another", {"n": 3}, passed=True)
    results = json.loads((tmp_path / "results.json").read_text())
    assert list(results) == ["C8", "C9"]
    table = results_table(results)
    assert "| C9 | a statement | – | value = 0.1235 | value = 0.2 | – | **not reproduced** |" in table
    assert "| C8 | another | – | n = 3 | – | – | reproduced |" in table


def test_non_finite_numbers_are_written_as_null_and_shown_as_n_a(tmp_path, monkeypatch):
    monkeypatch.setenv("IMCLIB_FIGURES_DIR", str(tmp_path))
    entry = record_claim("C7", "s", {"ratio": float("nan"), "slope": [1.0, float("inf")], "n": 4}, passed=False,
                         paper={"ratio": -np.inf}, statistics={"p_value": np.float64("nan")})
    assert entry["measured"] == {"ratio": None, "slope": [1.0, None], "n": 4} and entry["p_value"] is None
    text = (tmp_path / "results.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    strict = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} is not strict JSON"))
    assert strict["C7"]["paper"] == {"ratio": None}
    assert "| C7 | s | – | ratio = n/a; slope = [1.0, n/a]; n = 4 | ratio = n/a |" in results_table(strict)


def test_cell_window_widget_value_by_hand():
    from imclib.widgets import cell_window_uS

    # three junctions 6k/12k in series: 1/18k - 1/36k = 27.78 uS
    assert cell_window_uS(4, 1.0, 0.0) == pytest.approx((1 / 18e3 - 1 / 36e3) * 1e6)
    assert cell_window_uS(4, 1.0, 0.2) < cell_window_uS(4, 1.0, 0.0)  # TMR falls with bias


def _c3_tests(p_reference):
    """Made-up :func:`pca.pca_study` ``tests`` and ``test`` tables of every scheme."""
    rows, test = [], []
    for scheme in mnist.SCHEMES:
        for network in pca.NETWORKS[scheme]:
            p_value = p_reference if scheme == "offset/reference" and network == "HWA" else 0.2
            rows.append({"scheme": scheme, "network": network, "size": 64, "gap_pca": 0.01, "gap_no_pca": 0.012,
                         "ci95_pca": [0.008, 0.012], "ci95_no_pca": [0.011, 0.013], "difference": -0.002,
                         "p_value": p_value, "n_seeds": 10})
            test.append(pd.DataFrame({"scheme": scheme, "network": network, "pca": [64, "none"],
                                      "software": [0.975, 0.981]}))
    return pd.DataFrame(rows), pd.concat(test, ignore_index=True)


def test_check_c3_verdict_record_and_findings(tmp_path, monkeypatch):
    monkeypatch.setenv("IMCLIB_FIGURES_DIR", str(tmp_path))
    tests, test = _c3_tests(p_reference=0.001)
    by_scheme, verdict = pca.check_c3(tests)
    assert by_scheme == {"offset/digital": False, "offset/reference": True, "differential": False}
    assert verdict == "partly"
    entry = json.loads((tmp_path / "results.json").read_text())["C3"]
    assert entry["by_scheme"] == by_scheme and entry["criterion"] == pca.CRITERION
    assert entry["measured"]["PTQ_expert_p_value"] == 0.2 and entry["p_value"]["offset/reference"] == 0.001
    text = pca.c3_findings(tests, test, by_scheme, verdict)
    assert "Verdict on C3: **partly**" in text and "narrows significantly under offset/reference;" in text
    assert "software 97.50% at 64 components, 98.10% without PCA" in text
    assert pca.check_c3(_c3_tests(p_reference=pca.P_MAX)[0])[1] == "not reproduced"  # p must be below P_MAX


def test_your_network_effects_and_findings_from_a_summary():
    import pandas as pd

    from imclib.experiments import your_network as yn

    table = pd.DataFrame([
        {"network": "a", "device": "float", "training": "software", "seed": -1, "accuracy": 98.0},
        *({"network": "a", "device": d, "training": t, "seed": s, "accuracy": base + 0.1 * s}
          for d, ptq, hwa in (("D1", 96.0, 97.0), ("D2", 97.0, 96.5)) for t, base in (("PTQ", ptq), ("HWA", hwa))
          for s in range(3))])
    summary = yn.summary(table)
    found = yn.effects(summary)
    assert found["pairs"] == [("a", "D1"), ("a", "D2")]
    assert found["loss"] == pytest.approx({("a", "D1"): 1.9, ("a", "D2"): 0.9})  # PTQ means 96.1 and 97.1
    assert found["gain"] == pytest.approx({("a", "D1"): 1.0, ("a", "D2"): -0.5})
    assert found["loss_mean"] == pytest.approx(1.4) and found["gain_mean"] == pytest.approx(0.25)
    assert found["loss_sem"] == pytest.approx(np.sqrt(2 * (0.1 / np.sqrt(3)) ** 2) / 2)
    text = yn.findings(summary, 1e-16, 0.0, yn.rram_milo(4), 597)
    assert "0.9-1.9 points" in text and "+0.2" in text and "not resolved" not in text


def test_your_network_fine_tune_does_not_depend_on_the_blas_threads():
    """Notebook 08 fine-tunes on every run: one BLAS thread or several, the same weights."""
    from threadpoolctl import threadpool_limits

    from imclib.experiments import your_network as yn

    tuned = []
    for threads in (1, 2):
        with threadpool_limits(limits=threads, user_api="blas"):
            tuned.append(yn.fine_tune(yn.relu_network(), yn.device_config(yn.DEVICES[0])))
    assert all(np.array_equal(a, b) for a, b in zip(tuned[0].weights, tuned[1].weights))


def _blas_threads() -> int:
    from threadpoolctl import threadpool_info

    return max(info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas")


@pytest.mark.parametrize("trainer", ["train_mlp", "train_sequential", "train_hwa"])
def test_training_steps_run_with_one_blas_thread(trainer, monkeypatch):
    """Training rounds differently with one BLAS thread than with several (OpenBLAS), so every
    trainer runs its steps with one: a network does not depend on the machine's core count."""
    import os

    from threadpoolctl import threadpool_limits

    from imclib import hwa, mlp, sequential
    from imclib.mlp import TrainConfig

    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core: BLAS has one thread anyway")
    seen = []
    target = {"train_mlp": (mlp, "_loss_and_gradients"), "train_sequential": (sequential.Sequential, "loss_and_gradients"),
              "train_hwa": (hwa, "_step")}[trainer]
    original = getattr(*target)

    def recording(*args, **kwargs):
        seen.append(_blas_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(*target, recording)
    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 1, (20, 784)), np.arange(20) % 10
    training = TrainConfig(hidden=(8,), epochs=1, batch_size=10)
    with threadpool_limits(limits=2, user_api="blas"):
        assert _blas_threads() == 2
        if trainer == "train_mlp":
            mlp.train_mlp(x, y, training, progress=False)
        elif trainer == "train_sequential":
            sequential.train_sequential(x, y, TrainConfig(hidden=(), epochs=1, batch_size=10), sequential.SMALL_CNN,
                                        (1, 28, 28), progress=False)
        else:
            init = MLP([rng.normal(size=(784, 8)) / 28, rng.normal(size=(8, 10)) / 3], [np.zeros(8), np.zeros(10)])
            hwa.train_hwa(x, y, CrossbarConfig(), training, init, n_calibration=20, progress=False)
        assert _blas_threads() == 2  # restored
    assert seen and set(seen) == {1}
