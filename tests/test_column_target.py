"""The column calibration's target: ``x @ W`` for a float-trained network, ``x @ W_q`` for a
network trained with its quantized weights in the loop (QAT, hardware-aware training)."""

import numpy as np
import pandas as pd
import pytest

from imclib import CrossbarConfig, hwa
from imclib.deploy import calibrate, column_correction, deploy_network, fit_columns, resolve_column_target
from imclib.experiments import mnist
from imclib.layer import program_layer
from imclib.mapping import quantize_weights
from imclib.mlp import MLP, TrainConfig, train_mlp
from imclib.network import device_quantizer, hardware_logits
from imclib.sequential import Sequential


def _data(seed=0, n=60, n_in=12, classes=3):
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(n, n_in)), rng.integers(0, classes, size=n)


def _model(seed=1, sizes=(12, 8, 3)):
    rng = np.random.default_rng(seed)
    return MLP([rng.normal(size=(a, b)) / np.sqrt(a) for a, b in zip(sizes[:-1], sizes[1:])],
               [np.zeros(b) for b in sizes[1:]])


def test_training_records_what_the_network_was_trained_for():
    x, y = _data()
    config = CrossbarConfig()
    small = TrainConfig(hidden=(8,), epochs=1, batch_size=20)
    float_trained = train_mlp(x, y, small, progress=False)[0]
    qat = train_mlp(x, y, TrainConfig(hidden=(8,), epochs=1, batch_size=20, qat=True), quantize=device_quantizer(config),
                    init=float_trained, progress=False)[0]
    aware = hwa.train_hwa(x, y, config, small, float_trained, n_calibration=30, progress=False)[0]
    assert (float_trained.trained_for, qat.trained_for, aware.trained_for) == ("float", "quantized", "quantized")
    assert [resolve_column_target(m, None) for m in (float_trained, qat, aware)] == ["float", "quantized", "quantized"]
    assert resolve_column_target(aware, "float") == "float"
    # the default deployment of each network is the deployment with its own target, not the other one
    calibration = np.random.default_rng(2).uniform(size=(50, 12))
    for model, own, other in ((float_trained, "float", "quantized"), (aware, "quantized", "float")):
        default = hardware_logits(model, x, config, 3, calibration)
        np.testing.assert_array_equal(default, hardware_logits(model, x, config, 3, calibration, column_target=own))
        assert not np.allclose(default, hardware_logits(model, x, config, 3, calibration, column_target=other))


def test_provenance_survives_copies_files_and_conversions(tmp_path):
    model = _model()
    model.trained_for = "quantized"
    assert model.copy().trained_for == "quantized"
    model.save(tmp_path / "m.npz")
    assert MLP.load(tmp_path / "m.npz").trained_for == "quantized"
    # a file written before the field existed: a float-trained network
    with np.load(tmp_path / "m.npz") as data:
        np.savez(tmp_path / "old.npz", **{k: data[k] for k in data.files if k != "trained_for"})
    assert MLP.load(tmp_path / "old.npz").trained_for == "float"
    sequential = Sequential.from_mlp(model)
    assert sequential.trained_for == sequential.copy().trained_for == sequential.to_mlp().trained_for == "quantized"
    # the studies' QAT and HWA networks come from the store, which keeps parameters only
    marked, history = mnist._trained_quantized((_model(), pd.DataFrame()))
    assert marked.trained_for == "quantized" and history.empty
    # a cached study table keys a network by its parameters and what it was trained for (its default deployment)
    from imclib.experiments.tables import fingerprint

    assert fingerprint(marked) != fingerprint(_model()) and fingerprint(_model()) == fingerprint(_model())


def test_bad_targets_name_the_parameter_and_the_choices():
    x = np.random.default_rng(3).uniform(size=(20, 12))
    with pytest.raises(ValueError, match=r"trained_for must be one of \('float', 'quantized'\)"):
        MLP(_model().weights, _model().biases, trained_for="hwa")
    with pytest.raises(ValueError, match="column_target must be one of"):
        deploy_network(_model(), CrossbarConfig(), x, 0, column_target="nominal")
    with pytest.raises(ValueError, match="column_target must be one of"):
        deploy_network(Sequential.from_mlp(_model()), CrossbarConfig(), x, 0, column_target=1)
    layer = calibrate(program_layer(_model().weights[0], CrossbarConfig()), x)
    with pytest.raises(ValueError, match="column_target must be one of"):
        fit_columns(layer, x, _model().weights[0], column_target="W")


@pytest.mark.parametrize("column_target", ["float", "quantized"])
def test_calibrated_ideal_path_equals_the_float_network(column_target):
    model, x = _model(), np.random.default_rng(4).uniform(size=(40, 12))
    np.testing.assert_allclose(hardware_logits(model, x, CrossbarConfig.ideal(), 0, x, column_target=column_target),
                               model.forward(x), rtol=1e-9, atol=1e-12)


def test_fit_targets_the_chosen_product_on_a_noise_free_quantizing_layer():
    # a nominal, noise-free quantizing layer reads exactly x @ W_q: towards x @ W_q the fit is
    # the identity; towards x @ W it is the least-squares regression of x @ W_q on (x @ W, 1, sum x).
    from imclib.experiments.errors import quantization_only

    rng = np.random.default_rng(5)
    weights, x = rng.normal(size=(16, 5)), rng.uniform(size=(80, 16))
    config = quantization_only(CrossbarConfig())
    layer = calibrate(program_layer(weights, config), x, input_range=float(x.max()))
    read = layer.mvm(x)
    np.testing.assert_allclose(read, x @ quantize_weights(weights, config), rtol=1e-9, atol=1e-9)
    identity = fit_columns(layer, x, weights, column_target="quantized").correction
    np.testing.assert_allclose(identity, np.array([[1.0], [0.0], [0.0]]) * np.ones(5), atol=1e-9)
    towards_float = fit_columns(layer, x, weights, column_target="float").correction
    for j in range(5):
        design = np.column_stack([x @ weights[:, j], np.ones(len(x)), x.sum(axis=1)])
        by_hand = np.linalg.lstsq(design, read[:, j], rcond=None)[0]
        np.testing.assert_allclose(towards_float[:, j], by_hand, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("column_target", ["float", "quantized"])
def test_fit_with_either_target_is_unbiased_on_a_synthetic_layer(column_target):
    # y = g t + o + c S + noise with t the chosen target: the fitted (g, o, c) average to the
    # hand-set values within 4 standard errors of their own spread over trials.
    rng = np.random.default_rng(6)
    config = CrossbarConfig()
    weights = rng.normal(size=(16, 4))
    product = weights if column_target == "float" else quantize_weights(weights, config)
    gain, offset, per_input = np.array([1.2, 0.8, 1.0, 1.05]), np.array([0.1, -0.3, 0.0, 0.2]), np.array([0.03, 0, -0.02, 0])
    fitted = []
    for _ in range(300):
        x = rng.uniform(size=(30, 16))
        target, total = x @ product, x.sum(axis=1)
        y = gain * target + offset + np.outer(total, per_input) + 0.3 * rng.standard_normal(target.shape)
        fitted.append(column_correction(y, target, total))
    fitted = np.array(fitted)
    mean, standard_error = fitted.mean(axis=0), fitted.std(axis=0, ddof=1) / np.sqrt(len(fitted))
    assert np.all(np.abs(mean - [gain, offset, per_input]) < 4 * standard_error)


def test_paper_reconciliation_keeps_both_column_calibration_contrasts():
    options = [dict(d.deploy_options) for d in mnist.PAPER_DEPLOYMENTS if d.deploy_options]
    assert {"column_calibration": False} in options and {"column_target": "quantized"} in options
    contrast = mnist.Deployment(deploy_options=(("column_target", "quantized"),))
    assert contrast.label == "deploy_network(column_target='quantized')"
