"""MNIST study helpers that need no training: confidence intervals, the table cache, the split."""

import numpy as np
import pandas as pd
import pytest

from imclib.experiments import mnist


def test_confidence_interval_by_hand():
    study = pd.DataFrame({
        "network": ["software", "HWA", "HWA", "HWA", "HWA"],
        "train_seed": [0, 0, 0, 1, 1],
        "device_seed": [-1, 0, 1, 0, 1],
        "accuracy": [0.98, 0.90, 0.92, 0.94, 0.96],
    })
    table = mnist.confidence_table(study).set_index("network")
    hwa = table.loc["HWA"]
    sd = np.std([0.90, 0.92, 0.94, 0.96], ddof=1)
    half = 3.182446305284263 * sd / 2  # t(0.975, 3) sd / sqrt(4)
    assert hwa["mean"] == pytest.approx(0.93)
    assert hwa.ci_low == pytest.approx(0.93 - half) and hwa.ci_high == pytest.approx(0.93 + half)
    # within each training seed the two device seeds differ by 0.02: sd 0.02 / sqrt(2), pooled alike
    assert hwa.device_sd == pytest.approx(0.02 / np.sqrt(2))
    assert (hwa.train_seeds, hwa.device_seeds, hwa.n) == (2, 2, 4)
    assert np.isnan(table.loc["software", "ci_low"])


def test_cached_table_computes_once(tmp_path, monkeypatch):
    monkeypatch.setenv("IMCLIB_CACHE", str(tmp_path))
    calls = []

    def compute():
        calls.append(1)
        return pd.DataFrame({"a": [1.0, 2.0]})

    first = mnist.cached_table({"what": "test"}, compute)
    second = mnist.cached_table({"what": "test"}, compute)
    pd.testing.assert_frame_equal(first, second)
    assert len(calls) == 1
    mnist.cached_table({"what": "other"}, compute)
    assert len(calls) == 2


def test_confidence_table_groups_by_scheme():
    study = pd.DataFrame({"scheme": ["a", "a", "b", "b"], "network": "HWA", "train_seed": 0,
                          "device_seed": [0, 1, 0, 1], "accuracy": [0.90, 0.92, 0.80, 0.84]})
    table = mnist.confidence_table(study).set_index("scheme")
    assert table.loc["a", "mean"] == pytest.approx(0.91) and table.loc["b", "mean"] == pytest.approx(0.82)
    assert table.loc["b", "device_sd"] == pytest.approx(np.std([0.80, 0.84], ddof=1))


def test_scheme_configs_and_bad_names():
    assert mnist.scheme_config("offset/digital") == mnist.CrossbarConfig()
    assert mnist.scheme_config("offset/reference").input_sum == "reference"
    assert mnist.scheme_config("differential").mapping == "differential"
    with pytest.raises(ValueError, match="scheme"):
        mnist.scheme_config("offset")
    with pytest.raises(ValueError, match="network"):
        mnist.network_accuracy("QAT", mnist.CrossbarConfig())
    with pytest.raises(ValueError, match="subset"):
        mnist.network_accuracy("HWA", mnist.CrossbarConfig(), subset="train")


def test_deployment_study_plan(monkeypatch):
    calls = []

    def fake(network, config, train_seed=0, device_seeds=range(10), n_components=None, subset="test"):
        calls.append((network, train_seed, tuple(device_seeds)))
        seeds = list(device_seeds) or [-1]
        return pd.DataFrame({"network": network, "train_seed": train_seed, "device_seed": seeds, "accuracy": 0.9})

    monkeypatch.setattr(mnist, "network_accuracy", fake)
    study = mnist.deployment_study(mnist.CrossbarConfig(), (0, 1), range(3), (), progress=False)
    assert calls == [("software", 0, ()), ("software", 1, ()), ("PTQ expert", 0, (0, 1, 2)),
                     ("HWA", 0, (0, 1, 2)), ("HWA", 1, (0, 1, 2))]
    assert "PTQ naive" not in set(study.network) and len(study) == 2 + 3 * 3


def _fake_reconciliation_accuracy(by_label, calls):
    """A stand-in for ``mnist.network_accuracy``: software 0.98; a hardware deployment's
    accuracies per device seed from ``by_label[Deployment label]``, found by its config."""
    configs = {deployment.config(mnist.CrossbarConfig()): label for label, (deployment, _) in by_label.items()}

    def network_accuracy(network, config, train_seed=0, device_seeds=range(10), n_components=None, subset="test",
                         ranges="fixed", deploy_options=()):
        calls.append((network, ranges, deploy_options))
        if network == "software":
            return pd.DataFrame({"network": [network], "train_seed": [train_seed], "device_seed": [-1], "accuracy": [0.98]})
        seeds = list(device_seeds)
        values = by_label[configs[config]][1]
        return pd.DataFrame({"network": network, "train_seed": train_seed, "device_seed": seeds,
                             "accuracy": values[:len(seeds)]})
    return network_accuracy


def test_paper_reconciliation_gap_and_criterion_by_hand(monkeypatch):
    from scipy import stats

    expert, near, naive = mnist.Deployment(), mnist.Deployment(adc_bits=5), mnist.Deployment(weight_map="naive")
    rows = {expert.label: (expert, [0.969, 0.970, 0.971]), near.label: (near, [0.948, 0.950, 0.952]),
            naive.label: (naive, [0.55, 0.60, 0.65])}
    calls = []
    monkeypatch.setattr(mnist, "network_accuracy", _fake_reconciliation_accuracy(
        {label: (deployment, values) for label, (deployment, values) in rows.items()}, calls))
    table = mnist.paper_reconciliation(deployments=(expert, near, naive), progress=False).set_index("assumptions")
    assert [network for network, _, _ in calls] == ["software", "PTQ expert", "PTQ expert", "PTQ naive"]
    for label, (_, values) in rows.items():
        gaps = 0.98 - np.array(values)
        half = stats.t.ppf(0.975, 2) * gaps.std(ddof=1) / np.sqrt(3)
        row = table.loc[label]
        assert row.gap == pytest.approx(gaps.mean()) and row.accuracy == pytest.approx(np.mean(values))
        assert (row.gap_ci_low, row.gap_ci_high) == pytest.approx((gaps.mean() - half, gaps.mean() + half))
        assert row.accuracy_ci_low == pytest.approx(np.mean(values) - half)
        assert row.reproduces_paper_gap == (gaps.mean() - half <= mnist.PAPER_GAP <= gaps.mean() + half)
    # the paper's 3.08-point gap: inside [3.0 +- 0.5] points, outside [1.0 +- 0.25] and [38 +- 12]
    assert table.reproduces_paper_gap.tolist() == [False, True, False]
    record = mnist.reconciliation_record(table.reset_index())
    assert record[near.label]["reproduces_paper_gap"] and record[near.label]["device_seeds"] == 3
    sentence = mnist.reconciliation_sentence(table.reset_index())
    assert "1 reproduces it" in sentence and "5-bit ADC (3.00 points" in sentence
    assert "nearest smaller gap is expert deployment (1.00 points" in sentence
    assert "nearest larger gap is naive max-|w| weight map (38.00 points" in sentence
    with pytest.raises(ValueError, match="device_seeds"):
        mnist.paper_reconciliation(deployments=(expert,), device_seeds=(0,), progress=False)


def test_reconciliation_passes_ranges_and_deploy_options(monkeypatch):
    batch = mnist.Deployment(ranges="per batch")
    option = mnist.Deployment(deploy_options=(("column_calibration", False),))
    assert "column_calibration=False" in option.label and "100-image batch" in batch.label
    calls = []
    monkeypatch.setattr(mnist, "network_accuracy", _fake_reconciliation_accuracy(
        {batch.label: (batch, [0.95] * 3), "option": (option, [0.96] * 3)}, calls))
    table = mnist.paper_reconciliation(deployments=(batch, option), progress=False)
    assert calls[1:] == [("PTQ expert", "per batch", ()), ("PTQ expert", "fixed", (("column_calibration", False),))]
    assert not table.reproduces_paper_gap.any()  # zero spread: a point interval that misses 3.08 points


def test_deployment_configs_and_validation():
    base = mnist.CrossbarConfig()
    assert mnist.Deployment().config(base) == base  # the expert row reuses study 02's evaluations
    assert mnist.Deployment().label == "expert deployment"
    batch = mnist.Deployment(ranges="per batch").config(base)
    assert (batch.input_percentile, batch.adc_percentile) == (100.0, 100.0)
    changed = mnist.Deployment(scale="layer", adc_range="worst_case", adc_bits=6, programming_sigma=0.1,
                               decode_as_uniform=True).config(base)
    assert changed.scale == "layer"
    assert (changed.adc_calibration, changed.periphery.adc_bits) == ("worst_case", 6)
    assert (changed.nonideal.programming_sigma, changed.nonideal.decode_as_uniform) == (0.1, True)
    assert changed.nonideal.read_sigma == base.nonideal.read_sigma
    for field, value in (("weight_map", "max"), ("scale", "row"), ("ranges", "dynamic"), ("adc_range", "full"), ("adc_bits", 0),
                         ("adc_bits", 33), ("programming_sigma", -0.1), ("decode_as_uniform", 1),
                         ("deploy_options", {"column_calibration": False})):
        with pytest.raises(ValueError, match=field):
            mnist.Deployment(**{field: value})


def _small_network(rng):
    from imclib.mlp import MLP

    return MLP([rng.normal(size=(12, 8)) / 3, rng.normal(size=(8, 3)) / 3], [rng.normal(size=8) * 0.1, np.zeros(3)])


@pytest.mark.filterwarnings("ignore:ADC saturated")  # ranges calibrated on 40 other inputs
def test_deployed_logits_fixed_ranges_are_hardware_logits():
    from imclib.network import hardware_logits

    rng = np.random.default_rng(4)
    model, x, calibration = _small_network(rng), rng.uniform(0, 1, (30, 12)), rng.uniform(0, 1, (40, 12))
    config = mnist.CrossbarConfig()  # programming variation and read noise on
    np.testing.assert_array_equal(mnist.deployed_logits(model, x, config, 3, calibration),
                                  hardware_logits(model, x, config, 3, calibration))
    with pytest.raises(ValueError, match="ranges"):
        mnist.deployed_logits(model, x, config, 3, calibration, ranges="dynamic")


@pytest.mark.filterwarnings("ignore:ADC saturated")  # the louder row saturates the fixed ranges
def test_per_batch_ranges_are_calibrated_on_the_batch_itself():
    from imclib.network import hardware_logits
    from imclib.periphery import Periphery

    rng = np.random.default_rng(5)
    model = _small_network(rng)
    x = rng.uniform(0, 1, (mnist.PER_BATCH_IMAGES, 12))
    config = mnist.Deployment(ranges="per batch").config(
        mnist.CrossbarConfig.quantization_only(periphery=Periphery(dac_bits=6, adc_bits=5)))  # noise-free
    calibration = rng.uniform(0, 1, (40, 12))
    uncorrected = (("column_calibration", False),)  # the column fit is set on the calibration set, not per batch
    per_batch = mnist.deployed_logits(model, x, config, 1, calibration, ranges="per batch", deploy_options=uncorrected)
    # one batch: the same as ranges fixed on that batch (at its largest values)
    np.testing.assert_allclose(per_batch, hardware_logits(model, x, config, 1, x, column_calibration=False),
                               rtol=0, atol=1e-12)
    assert not np.allclose(per_batch, hardware_logits(model, x, config, 1, calibration, column_calibration=False))
    # a row's output depends on the rest of its batch: one larger input changes the other rows
    louder = x.copy()
    louder[0] *= 3
    fixed_before = mnist.deployed_logits(model, x, config, 1, calibration)
    fixed_after = mnist.deployed_logits(model, louder, config, 1, calibration)
    np.testing.assert_array_equal(fixed_before[1:], fixed_after[1:])
    assert not np.allclose(per_batch[1:], mnist.deployed_logits(model, louder, config, 1, calibration,
                                                                ranges="per batch")[1:])


def _c2_inputs(hwa_reference=0.975):
    """A confidence table of every C2 scheme (offset/reference's HWA mean ``hwa_reference``),
    an ADC sweep and a reconciliation table, all made up."""
    study = []
    for scheme in mnist.C2_PLAN:
        study.append(pd.DataFrame({"scheme": scheme, "network": "software", "train_seed": [0, 1, 2],
                                   "device_seed": -1, "accuracy": [0.981, 0.980, 0.982]}))
        hwa = hwa_reference if scheme == "offset/reference" else 0.976
        for network, mean in (("PTQ naive", 0.58), ("PTQ expert", 0.969), ("HWA", hwa)):
            if network == "PTQ naive" and scheme != "offset/digital":
                continue
            study.append(pd.DataFrame({"scheme": scheme, "network": network, "train_seed": 0, "device_seed": range(4),
                                       "accuracy": mean + np.array([-0.001, 0.0, 0.001, 0.0])}))
    confidence = mnist.confidence_table(pd.concat(study, ignore_index=True))
    sweep = pd.DataFrame({"adc_bits": [4, 4, 8, 8], "adc_range": ["naive", "calibrated"] * 2, "device_seed": 0,
                          "accuracy": [0.73, 0.91, 0.968, 0.969]})
    reconciliation = pd.DataFrame({"assumptions": ["expert deployment", "4-bit ADC"], "accuracy": [0.969, 0.95],
                                   "gap": [0.012, 0.031], "gap_ci_low": [0.011, 0.028], "gap_ci_high": [0.013, 0.034],
                                   "device_seeds": 3, "software": 0.981, "reproduces_paper_gap": [False, True]})
    return confidence, sweep, reconciliation


def test_check_c2_judges_each_scheme_and_records_the_reconciliation(tmp_path, monkeypatch):
    import json

    monkeypatch.setenv("IMCLIB_FIGURES_DIR", str(tmp_path))
    confidence, sweep, reconciliation = _c2_inputs()
    checks, verdict = mnist.check_c2(confidence, reconciliation, mnist.CrossbarConfig())
    assert verdict == "reproduced" and checks.passes.all()
    assert list(checks.columns) == ["software >= 98.0 %", "expert PTQ >= 95.0 %", "HWA >= 97.0 %",
                                    "HWA device sd <= 0.3 points", "passes"]
    entry = json.loads((tmp_path / "results.json").read_text())["C2"]
    assert entry["measured"]["paper_reconciliation"]["4-bit ADC"] == {
        "accuracy": 0.95, "gap": 0.031, "gap_ci95": [0.028, 0.034], "device_seeds": 3, "reproduces_paper_gap": True}
    assert entry["measured"]["train_seeds"] == 1 and entry["measured"]["device_seeds"] == 4  # read from the table
    assert "3 training x 10 device seeds for offset/digital" in entry["criterion"]
    assert "1 training x 10 device seeds for differential" in entry["criterion"]

    checks, verdict = mnist.check_c2(*_c2_inputs(hwa_reference=0.965)[::2], mnist.CrossbarConfig())
    assert verdict == "partly" and not checks.loc["offset/reference", "passes"]
    assert json.loads((tmp_path / "results.json").read_text())["C2"]["by_scheme"]["offset/reference"] is False
    text = mnist.c2_findings(confidence, checks, verdict, sweep, reconciliation)
    assert "**partly**" in text and "fails (HWA >= 97.0 % does not hold)" in text
    assert "at 4 bits: 73.0% naive vs 91.0% calibrated" in text
    assert "4-bit ADC (3.10 points, 95 % CI 2.80–3.40)" in text  # the reconciliation sentence
