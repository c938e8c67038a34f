"""Study 04 (claims C4, C5): statistics, criteria and the physics behind them, on small
hand-checkable cases."""

import numpy as np
import pandas as pd
import pytest

import imclib
from imclib.experiments import errors
from imclib.layer import program_layer, simulate_mvm


@pytest.fixture(scope="module")
def small_layer():
    rng = np.random.default_rng(3)
    return [("small", rng.normal(size=(32, 6)), rng.uniform(0, 1, size=(40, 32)))]


def test_lognormal_sigma_is_mean_normalised_rms():
    sigma = errors.lognormal_sigma_for_rms(0.05)
    assert np.expm1(sigma**2) == pytest.approx(0.05**2, rel=1e-9)
    z = np.random.default_rng(0).standard_normal(400_000)
    factors = np.exp(sigma * z - sigma**2 / 2)
    assert factors.mean() == pytest.approx(1.0, abs=1e-3)
    assert np.sqrt(np.mean((factors - 1) ** 2)) == pytest.approx(0.05, rel=0.01)


def test_mean_ci_and_one_sided_p_by_hand():
    # [1, 2, 3, 4]: mean 2.5, sd 1.29099, t_{0.975, 3} = 3.18245 -> half width 2.05426
    mean, low, high = errors.mean_ci([1, 2, 3, 4])
    assert mean == 2.5 and low == pytest.approx(2.5 - 2.05426, abs=1e-4) and high == pytest.approx(2.5 + 2.05426, abs=1e-4)
    assert errors.mean_ci([0.3] * 5) == (0.3, 0.3, 0.3)  # deterministic: the point itself
    # [1, 2, 3]: t = 2 / (1 / sqrt 3) = 3.4641, df 2: p = (1 - t / sqrt(t^2 + 2)) / 2 = 0.03709
    assert errors.one_sided_p([1, 2, 3]) == pytest.approx(0.03709, abs=1e-4)
    assert errors.one_sided_p([0.2] * 4) == 0.0 and errors.one_sided_p([-0.2] * 4) == 1.0


def test_verdict_from_schemes():
    assert errors.verdict({"a": True, "b": True}) == "reproduced"
    assert errors.verdict({"a": True, "b": False}) == "partly"
    assert errors.verdict({"a": False, "b": False}) == "not reproduced"


def _decomposition(source_errors: dict) -> pd.DataFrame:
    seeds = range(len(next(iter(source_errors.values()))))
    rows = [{"scheme": "s", "layer": "l", "group": "quantization", "kind": "quantization",
             "source": "weight quantization", "seed": s, "error": 1.0} for s in seeds]
    rows += [{"scheme": "s", "layer": "l", "group": "default device", "kind": "random", "source": name, "seed": s,
              "error": e} for name, values in source_errors.items() for s, e in zip(seeds, values)]
    return pd.DataFrame(rows)


def test_c4_comparisons_criterion():
    rng = np.random.default_rng(0)
    table = errors.c4_comparisons(_decomposition({
        "small, deterministic": [0.5] * 10,
        "larger, deterministic": [1.2] * 10,
        "close, random": list(0.9 + 0.01 * rng.standard_normal(10)),
        "one seed above": [0.5] * 9 + [1.01],
    })).set_index("source")
    assert table.holds.to_dict() == {"small, deterministic": True, "larger, deterministic": False,
                                     "close, random": True, "one seed above": False}
    assert table.loc["small, deterministic", "difference"] == pytest.approx(0.5)
    assert table.loc["larger, deterministic", "p_value"] == 1.0
    assert table.loc["close, random", "ci95_low"] < 0.1 < table.loc["close, random", "ci95_high"]


def test_c5_ratios_criterion():
    rows = []
    for scheme, random_errors in (("coherent wins", [1.0, 0.9, 1.1]), ("random wins", [3.0, 2.9, 3.1])):
        for seed, e in enumerate(random_errors):
            rows += [{"scheme": scheme, "layer": "l", "magnitude": 0.02, "kind": "global gain", "seed": seed, "error": 2.0},
                     {"scheme": scheme, "layer": "l", "magnitude": 0.02, "kind": "position pattern", "seed": seed,
                      "error": 0.5 * e},
                     {"scheme": scheme, "layer": "l", "magnitude": 0.02, "kind": "random", "seed": seed, "error": e}]
    ratios = errors.c5_ratios(pd.DataFrame(rows)).set_index("scheme")
    assert ratios.ratio["coherent wins"] == pytest.approx(np.mean([2.0, 2 / 0.9, 2 / 1.1]))
    assert ratios.holds.to_dict() == {"coherent wins": True, "random wins": False}
    pattern = errors.c5_ratios(pd.DataFrame(rows), "position pattern")
    np.testing.assert_allclose(pattern.ratio, 0.5)  # per-seed ratios, paired by seed
    assert set(pattern.systematic) == {"position pattern"} and not pattern.holds.any()


def test_magnitude_dependence_of_the_ratio():
    ratios = pd.DataFrame({"scheme": "s", "layer": ["flat"] * 3 + ["rising"] * 3, "systematic": "global gain",
                           "magnitude": [0.01, 0.02, 0.05] * 2, "ratio": [2.0, 2.1, 1.9, 1.0, 2.0, 3.0],
                           "ci95_low": [1.7, 1.8, 1.6, 0.9, 1.9, 2.9], "ci95_high": [2.3, 2.4, 2.2, 1.1, 2.1, 3.1]})
    table = errors.magnitude_dependence(ratios).set_index("layer")
    assert table.overlap.to_dict() == {"flat": True, "rising": False}
    assert table.relative_spread["rising"] == pytest.approx(2.0 / 2.0)
    assert (table.ratio_min["flat"], table.ratio_max["flat"]) == (1.9, 2.1)


def test_quantization_only_and_schemes_keep_the_device():
    device = imclib.CrossbarConfig()
    base = errors.quantization_only(device)
    assert not base.nonideal.any and not base.periphery.any and not errors.is_random(base)
    assert base.cell == device.cell and base.rows == device.rows
    schemes = errors.decode_schemes(device)
    assert [(c.mapping, c.input_sum) for c in schemes.values()] == [
        ("offset", "digital"), ("offset", "reference"), ("differential", "digital")]
    sources = errors.default_sources(device)
    assert {group for group, _, _ in sources.values()} == {"default device", "miscalibration", "decoder contrast"}
    assert set(errors.MISCALIBRATION_SOURCES) == {name for name, (group, _, _) in sources.items() if group == "miscalibration"}
    assert sources[f"programming variation σ = {device.nonideal.programming_sigma:.0%}"][2] == {
        "programming_sigma": device.nonideal.programming_sigma}


def test_reference_column_cancels_a_gain_error_exactly(small_layer):
    # R_P (1 + eps) scales every level, the reference cells' included, by 1 / (1 + eps):
    # decoded y' = y_q / (1 + eps), so ||y' - y_q|| = eps / (1 + eps) ||y_q||.
    (_, weights, x), eps = small_layer[0], 0.05
    base = errors.quantization_only(imclib.CrossbarConfig(input_sum="reference"))
    y_q = simulate_mvm(weights, x, base)
    y = simulate_mvm(weights, x, errors.with_source(base, {"rp_error": eps}))
    np.testing.assert_allclose(y, y_q / (1 + eps), rtol=1e-10, atol=1e-12)
    # with a digital sum only (a/s) I = y_q - b sum(x) is scaled: the common-mode term is not cancelled
    # (exact for linear cells without an ADC, whatever the map's a and b)
    digital = errors.quantization_only(imclib.CrossbarConfig())
    y_q = simulate_mvm(weights, x, digital)
    y = simulate_mvm(weights, x, errors.with_source(digital, {"rp_error": eps}))
    common = np.outer(x.sum(axis=1), program_layer(weights, digital).weight_map.offset)
    np.testing.assert_allclose(y - y_q, -(eps / (1 + eps)) * (y_q - common), rtol=1e-9, atol=1e-12)


def test_common_mode_fraction_by_hand(small_layer):
    _, weights, x = small_layer[0]
    offset_config = imclib.CrossbarConfig()
    b = program_layer(weights, errors.quantization_only(offset_config)).weight_map.offset
    expected = np.linalg.norm(np.outer(x.sum(axis=1), b)) / np.linalg.norm(x @ weights)
    assert errors.common_mode_fraction(weights, x, offset_config) == pytest.approx(expected)
    differential = offset_config.with_(mapping="differential")
    b = program_layer(weights, errors.quantization_only(differential)).weight_map.offset
    expected = np.linalg.norm(np.outer(x.sum(axis=1), b)) / np.linalg.norm(x @ weights)
    assert errors.common_mode_fraction(weights, x, differential) == pytest.approx(expected, abs=1e-12)


def test_level_errors_gain_vs_tmr():
    levels = errors.level_errors()
    rp = levels[levels.source == "R_P +5 %"].ratio
    np.testing.assert_allclose(rp, 1 / 1.05)  # one gain for every level
    tmr = levels[levels.source == "TMR0 -10 %"].sort_values("level").ratio.to_numpy()
    assert tmr[-1] == pytest.approx(1.0)  # G_max (all junctions parallel) does not move
    assert np.all(np.diff(tmr) < 0)  # the lower levels move, each by a different factor


def test_error_decomposition_table(small_layer):
    sources = {"variation": ("default device", "random", {"programming_sigma": 0.03}),
               "R_P +5 %": ("miscalibration", "systematic", {"rp_error": 0.05})}
    table = errors.error_decomposition(small_layer, sources=sources, seeds=range(3), progress=False)
    assert set(table.scheme) == set(errors.SCHEMES) and len(table) == 3 * 3 * 3
    name, weights, x = small_layer[0]
    quantization = table[(table.group == "quantization") & (table.scheme == "offset/digital")].error
    base = errors.quantization_only(imclib.CrossbarConfig())
    assert quantization.iloc[0] == pytest.approx(imclib.nrmse(simulate_mvm(weights, x, base), x @ weights))
    rp = table[table.source == "R_P +5 %"].groupby("scheme").error
    assert (rp.nunique() == 1).all()  # deterministic: one simulation, repeated for every seed
    variation = table[(table.source == "variation") & (table.scheme == "differential")].error
    assert variation.nunique() == 3  # random: one draw per seed


def test_random_vs_systematic_follows_the_common_mode(small_layer):
    versus = errors.random_vs_systematic(small_layer, magnitudes=[0.02], seeds=range(4), progress=False)
    assert (versus[versus.kind == "global gain"].groupby("scheme").error.nunique() == 1).all()
    assert (versus[versus.kind == "position pattern"].groupby("scheme").error.nunique() == 4).all()
    ratios = errors.c5_ratios(versus).set_index("scheme").ratio
    # a digital sum leaves the common-mode term in the coherent error; a reference column cancels it
    assert ratios["offset/digital"] > 1 > ratios["offset/reference"]


def test_position_pattern_repeats_in_every_tile(small_layer):
    _, weights, _ = small_layer[0]
    configs = errors.equal_magnitude_configs(errors.quantization_only(imclib.CrossbarConfig()), 0.05)
    variation = program_layer(weights, configs["position pattern"], 0).variation
    tiles = variation.reshape(8, 4, -1, 4).swapaxes(1, 2).reshape(-1, 4, 4)
    np.testing.assert_array_equal(tiles, np.broadcast_to(tiles[0], tiles.shape))
    random = program_layer(weights, configs["random"], 0).variation
    assert np.unique(random).size == random.size  # every cell its own draw


def test_calibrated_decomposition_removes_a_gain_but_not_variation(small_layer):
    # an R_P error scales every level: after the column calibration it is gone (linear cells, no ADC)
    name, weights, x = small_layer[0]
    calibration = [(name, weights, np.random.default_rng(9).uniform(0, 1, size=(60, 32)))]
    sources = {"variation": ("default device", "random", {"programming_sigma": 0.03}),
               "R_P +5 %": ("miscalibration", "systematic", {"rp_error": 0.05})}
    table = errors.error_decomposition(small_layer, sources=sources, seeds=range(3), progress=False,
                                       calibration=calibration)
    uncalibrated = errors.error_decomposition(small_layer, sources=sources, seeds=range(3), progress=False)
    rp = table[table.source == "R_P +5 %"].error
    assert rp.max() < 1e-9 < uncalibrated[uncalibrated.source == "R_P +5 %"].error.min()
    assert (table[table.source == "variation"].error > 1e-3).all()


def test_accuracy_decomposition_and_c4_by_scheme():
    rng = np.random.default_rng(4)
    model = imclib.MLP([rng.normal(size=(8, 6)), rng.normal(size=(6, 3))], [np.zeros(6), np.zeros(3)])
    x, calibration = rng.uniform(size=(300, 8)), rng.uniform(size=(100, 8))
    y = model.forward(x).argmax(axis=1)  # the float network is right on every image
    sources = {"variation": ("default device", "random", {"programming_sigma": 0.5}),
               "R_P +5 %": ("miscalibration", "systematic", {"rp_error": 0.05})}
    table = errors.accuracy_decomposition(model, x, y, calibration, sources=sources, seeds=range(3),
                                          schemes=["offset/digital"], progress=False)
    quantization = table[table.group == "quantization"]
    assert np.allclose(quantization.error, 1 - quantization.accuracy)
    rp = table[table.source == "R_P +5 %"]
    np.testing.assert_allclose(rp.accuracy, quantization.accuracy)  # a gain is calibrated away exactly
    variation = table[table.source == "variation"]
    np.testing.assert_allclose(variation.error, quantization.accuracy.to_numpy() - variation.accuracy.to_numpy())
    comparisons = errors.c4_comparisons(table)
    by_scheme = errors.c4_by_scheme(comparisons)
    assert by_scheme == {"offset/digital": bool(comparisons[comparisons.group == "default device"].holds.all())}
    # the calibrated R_P error loses nothing: quantization beats it exactly when it loses anything
    assert errors.c4_by_scheme(comparisons, groups=("miscalibration",)) == {
        "offset/digital": bool(quantization.error.iloc[0] > 0)}


def test_common_mode_sweep_columns(small_layer):
    _, weights, x = small_layer[0]
    sweep = errors.common_mode_sweep(weights, x, shifts=(0.0, 0.5), seeds=range(3), schemes=["offset/digital"])
    assert list(sweep["shift"]) == [0.0, 0.5] and (sweep.n_seeds == 3).all()
    assert sweep.common_mode_fraction.is_monotonic_increasing


def test_record_claim_keeps_verdict_fields(tmp_path, monkeypatch):
    import json

    from imclib.results import record_claim

    monkeypatch.setenv("IMCLIB_FIGURES_DIR", str(tmp_path))
    record_claim("C9", "a claim", {"x": 1}, passed=False, verdict="partly", by_scheme={"a": True, "b": False},
                 criterion="x > 0", statistics={"n_seeds": 10, "p_value": 0.001})
    entry = json.loads((tmp_path / "results.json").read_text())["C9"]
    assert entry["verdict"] == "partly" and entry["by_scheme"] == {"a": True, "b": False}
    assert entry["criterion"] == "x > 0" and entry["n_seeds"] == 10 and entry["p_value"] == 0.001
    record_claim("C8", "old style", {"x": 1}, passed=True)
    record_claim("C7", "old style, failed", {"x": 1}, passed=False)
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["C8"]["verdict"] == "reproduced" and results["C7"]["verdict"] == "not reproduced"
    assert "by_scheme" not in results["C8"] and "criterion" not in results["C8"]


def test_break_even_rp_error_by_hand(small_layer):
    # e(eps) = K eps / (1 + eps): from e(0.05) = 0.21, K = 0.21 * 1.05 / 0.05 = 4.41;
    # e = 0.5 at eps / (1 + eps) = 0.5 / 4.41 = 0.11338, eps = 0.12788
    assert errors.break_even_rp_error(0.5, 0.21) == pytest.approx(0.12788, abs=1e-5)
    assert errors.break_even_rp_error(10.0, 0.21) == float("inf")
    # and on a simulated layer: at the break-even R_P error the increment equals the quantization error
    _, weights, x = small_layer[0]
    base = errors.quantization_only(imclib.CrossbarConfig())
    y_q, reference = simulate_mvm(weights, x, base), x @ weights
    increment = lambda eps: np.linalg.norm(simulate_mvm(weights, x, errors.with_source(base, {"rp_error": eps})) - y_q) / np.linalg.norm(reference)
    q = imclib.nrmse(y_q, reference)
    eps = errors.break_even_rp_error(q, increment(0.05))
    assert increment(eps) == pytest.approx(q, rel=1e-9)


def _study_table(values: dict, layers=("l1", "l2"), seeds=range(10), **extra) -> pd.DataFrame:
    """Rows of a decomposition: ``values[(scheme, group, source)]`` = error on every seed
    (plus a small seed-dependent jitter for the random default-device source)."""
    rows = []
    for (scheme, group, source), error in values.items():
        for layer in layers:
            for seed in seeds:
                jitter = 0.01 * error * np.sin(seed + 1) if group == "default device" else 0.0
                rows.append({"scheme": scheme, "layer": layer, "group": group,
                             "kind": "quantization" if group == "quantization" else "random",
                             "source": source, "seed": seed, "error": error + jitter, **extra})
    return pd.DataFrame(rows)


def test_c4_result_verdict_measured_and_findings(tmp_path, monkeypatch):
    values = {("a", "quantization", "weight quantization"): 1.0, ("a", "default device", "dev"): 0.5,
              ("a", "miscalibration", "R_P"): 2.0,
              ("b", "quantization", "weight quantization"): 1.0, ("b", "default device", "dev"): 1.5,
              ("b", "miscalibration", "R_P"): 0.1}
    calibrated, uncalibrated = _study_table(values), _study_table({**values, ("a", "miscalibration", "R_P"): 3.0})
    accuracy = _study_table({key: 0.01 if key[1] == "quantization" else 0.001 for key in values},
                            layers=("network",), accuracy=0.97, images=10_000)
    result = errors.c4_result(calibrated, accuracy, uncalibrated)
    # the contrast (R_P, larger than quantization under "a") does not count; "dev" beats quantization under "b"
    assert result["by_scheme"] == {"a": True, "b": False} and result["verdict"] == "partly"
    measured = result["measured"]
    assert measured["sources_larger_than_quantization"] == {"a": [], "b": ["dev"]}
    assert measured["contrasts_layer1_calibrated"]["R_P"] == {"a": 2.0, "b": 0.1}
    assert measured["contrasts_layer1_uncalibrated"]["R_P"]["a"] == 3.0 and measured["test_images"] == 10_000
    assert result["statistics"]["n_seeds"] == 10
    with pytest.raises(ValueError, match="10000 test images"):
        errors.c4_result(calibrated, accuracy.assign(images=2000), uncalibrated)
    monkeypatch.setenv("IMCLIB_FIGURES_DIR", str(tmp_path))
    entry = errors.record("C4", result)
    assert entry["criterion"] == errors.C4_CRITERION and entry["by_scheme"] == {"a": True, "b": False}
    versus = []
    for scheme, pattern in (("a", 2.0), ("b", 0.5)):
        for magnitude in (0.005, 0.02):
            for seed in range(10):
                random = 1.0 + 0.05 * np.sin(seed)
                versus += [{"scheme": scheme, "layer": "layer 1", "magnitude": magnitude, "kind": kind, "seed": seed,
                            "error": error} for kind, error in (("global gain", 3.0), ("position pattern", pattern * random),
                                                                 ("random", random))]
    c5 = errors.c5_result(pd.DataFrame(versus), slopes={"systematic": 1.0, "random": 0.5})
    assert c5["by_scheme"] == {"a": True, "b": False} and c5["measured"]["holds_for_global_gain"] == {"a": True, "b": True}
    assert c5["measured"]["pattern_ratio_independent_of_magnitude"] == {"a": True, "b": True}
    text = errors.findings(result, c5)
    assert "**C4, partly:**" in text and "holds only under a" in text and "larger than quantization: dev" in text
    assert "**C5, partly:**" in text and "2.00x the random error with a" in text
