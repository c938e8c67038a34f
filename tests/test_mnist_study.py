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
