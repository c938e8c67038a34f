"""Sequential networks (imclib.sequential): gradients against finite differences, the MLP as
the special case (forward, training and deployment bit for bit), hardware reads of a CNN,
the store's schema for it, and input checks."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from finite_differences import central_differences
from imclib import cache, conv
from imclib.config import DECODE_SCHEMES, CrossbarConfig
from imclib.deploy import deploy_network
from imclib.mlp import MLP, TrainConfig, train_mlp
from imclib.network import device_quantizer, hardware_accuracy, hardware_matmul
from imclib.sequential import SMALL_CNN, Activation, Dense, Sequential, train_sequential

# every layer kind: conv with stride 2 and padding, both pools (odd sizes crop), tanh, dense
TINY = (("conv2d", 3, 3, 2, 1), ("tanh",), ("conv2d", 4, 3, 1, 1), ("maxpool2d", 2), ("relu",),
        ("conv2d", 2, 2, 1, 0), ("avgpool2d", 2), ("logistic",), ("flatten",), ("dense", 5), ("relu",), ("dense", 3))
TINY_SHAPE = (2, 13, 11)


def _tiny(seed=0):
    rng = np.random.default_rng(seed)
    model = Sequential.build(TINY, TINY_SHAPE, rng)
    model = model.with_parameters(model.weights, [rng.normal(0, 0.1, b.shape) for b in model.biases])
    x = rng.uniform(0, 1, (6, int(np.prod(TINY_SHAPE))))
    return model, x, np.arange(6) % 3


def test_gradients_match_central_differences():
    """Every weight and bias gradient against a central difference, step 1e-6: the
    difference is exact to O(h^2) ~ 1e-12 plus rounding ~ 1e-16 / 1e-6; 1e-6 relative to the
    largest gradient of the layer is far above both and far below a wrong gradient."""
    model, x, y = _tiny()
    _, weight_grads, bias_grads, _ = model.loss_and_gradients(x, y)
    for params, grads in ((model.weights, weight_grads), (model.biases, bias_grads)):
        for param, grad in zip(params, grads):
            assert grad.shape == param.shape
            numeric = central_differences(lambda: model.loss_and_gradients(x, y)[0], param, step=1e-6)
            assert np.max(np.abs(grad - numeric)) <= 1e-6 * np.max(np.abs(numeric))
            assert np.max(np.abs(numeric)) > 0


def _mlp(seed=0, sizes=(12, 7, 4)):
    rng = np.random.default_rng(seed)
    return MLP([rng.standard_normal((a, b)) / np.sqrt(a) for a, b in zip(sizes[:-1], sizes[1:])],
               [rng.normal(0, 0.1, b) for b in sizes[1:]], ("tanh", "relu")[: len(sizes) - 2] + ("identity",))


def test_an_mlp_converts_losslessly_and_computes_the_same_logits():
    model = _mlp()
    network = Sequential.from_mlp(model)
    assert network.architecture == (("dense", 7), ("tanh",), ("dense", 4))
    x = np.random.default_rng(1).uniform(-1, 1, (9, 12))
    assert np.array_equal(network.forward(x), model.forward(x))
    back = network.to_mlp()
    assert back.activations == model.activations
    assert all(np.array_equal(a, b) for a, b in zip(back.weights + back.biases, model.weights + model.biases))
    with pytest.raises(ValueError, match="only dense layers"):
        Sequential.build(TINY, TINY_SHAPE).to_mlp()


@pytest.mark.parametrize("qat", [False, True])
def test_training_a_dense_network_is_train_mlp_bit_for_bit(qat):
    rng = np.random.default_rng(2)
    x, y = rng.uniform(0, 1, (300, 12)), rng.integers(0, 4, 300)
    config = TrainConfig(hidden=(9,), epochs=2, batch_size=64, seed=3, qat=qat, qat_noise=0.05 if qat else 0.0)
    quantize = device_quantizer(CrossbarConfig()) if qat else None
    reference, reference_history = train_mlp(x, y, config, quantize=quantize, x_val=x[:50], y_val=y[:50],
                                             progress=False)
    quantize = device_quantizer(CrossbarConfig()) if qat else None  # a fresh quantizer (it keeps state)
    network, history = train_sequential(x, y, dataclasses.replace(config, hidden=()),
                                        (("dense", 9), ("relu",), ("dense", 4)), (12,), quantize=quantize,
                                        x_val=x[:50], y_val=y[:50], progress=False)
    assert all(np.array_equal(a, b) for a, b in zip(network.weights + network.biases,
                                                    reference.weights + reference.biases))
    assert history.equals(reference_history)


def test_deploying_a_converted_mlp_programs_the_same_arrays():
    model = _mlp(sizes=(12, 7, 4))
    rng = np.random.default_rng(4)
    calibration, x, y = rng.uniform(0, 1, (40, 12)), rng.uniform(0, 1, (30, 12)), rng.integers(0, 4, 30)
    config = CrossbarConfig()
    reference, reference_report = deploy_network(model, config, calibration, 5)
    layers, report = deploy_network(Sequential.from_mlp(model), config, calibration, 5)
    for a, b in zip(layers, reference):
        assert np.array_equal(a.conductance, b.conductance)
        assert np.array_equal(a.adc_range, b.adc_range) and a.input_range == b.input_range
    assert report.equals(reference_report)
    assert hardware_accuracy(Sequential.from_mlp(model), x, y, config, [0, 1], calibration).equals(
        hardware_accuracy(model, x, y, config, [0, 1], calibration))
    with pytest.raises(ValueError, match="input_ranges"):
        deploy_network(Sequential.from_mlp(model), config, calibration, 5, input_ranges=[1.0, 1.0])
    with pytest.raises(ValueError, match="MLP or a Sequential"):
        hardware_accuracy("net", x, y, config, [0], calibration)


def _cnn_data(n=5, seed=6):
    rng = np.random.default_rng(seed)
    return Sequential.build(SMALL_CNN, (1, 28, 28), rng), rng.uniform(0, 1, (n, 784))


def test_a_cnn_on_ideal_arrays_computes_its_float_logits():
    model, x = _cnn_data()
    rng = np.random.default_rng(0)
    layers, _ = deploy_network(model, CrossbarConfig.ideal(), x, rng)
    want = model.forward(x)
    assert np.max(np.abs(model.forward(x, hardware_matmul(layers, rng)) - want)) <= 1e-12 * np.max(np.abs(want))


@pytest.mark.filterwarnings("ignore:ADC saturated")  # ranges calibrated on 4 images: the test images exceed them
@pytest.mark.parametrize("scheme", DECODE_SCHEMES)
def test_a_cnn_reads_every_image_alike_alone_or_in_a_batch(scheme, monkeypatch):
    """Noise-free default device of each decode scheme (static deviations, bias dependence,
    8-bit converters): an image's logits do not depend on its batch, nor on the chunks the
    reads are cut into; deployment calibrates each layer once on all its rows."""
    model, x = _cnn_data(n=4)
    config = CrossbarConfig(**DECODE_SCHEMES[scheme])
    config = config.with_(nonideal=dataclasses.replace(config.nonideal, read_sigma=0.0),
                          periphery=dataclasses.replace(config.periphery, sense_noise=0.0))
    layers, report = deploy_network(model, config, x, 1)
    assert list(report["layer"]) == [0, 1, 2, 3]
    matmul = hardware_matmul(layers, 2)
    batch = model.forward(x, matmul)
    for index in range(len(x)):
        assert np.array_equal(model.forward(x[index : index + 1], matmul)[0], batch[index])
    monkeypatch.setattr(conv, "rows_per_chunk", lambda row_bytes: 1)  # one image per chunk
    chunked_layers, chunked_report = deploy_network(model, config, x, 1)
    assert chunked_report.equals(report)
    assert np.array_equal(model.forward(x, hardware_matmul(chunked_layers, 2)), batch)


def test_the_store_keeps_a_sequential_network(tmp_path):
    model, x = _cnn_data(n=20)
    y = np.arange(20) % 10
    key = {"task": "test-cnn", "architecture": SMALL_CNN, "input_shape": (1, 28, 28)}
    calls = []

    def train():
        calls.append(1)
        return train_sequential(x, y, TrainConfig(hidden=(), epochs=1, batch_size=10), SMALL_CNN, (1, 28, 28),
                                progress=False)

    trained, history = cache.cached_train(key, train, tmp_path, store_dir=tmp_path / "none")
    loaded, loaded_history = cache.cached_train(key, train, tmp_path, store_dir=tmp_path / "none")
    assert len(calls) == 1 and loaded.architecture == SMALL_CNN and loaded_history.equals(history)
    assert all(np.array_equal(a, b) for a, b in zip(loaded.weights + loaded.biases, trained.weights + trained.biases))
    assert np.array_equal(loaded.forward(x), trained.forward(x))
    # a key of another architecture finds an entry of this digest wrong: moved aside, retrained
    path = next(tmp_path.glob("*.npz"))
    with pytest.raises(cache.CorruptEntryError, match="layers .* do not match the key's architecture"):
        cache.load_entry(path, path.stem, {"input_shape": [1, 28, 28], "architecture": [["dense", 10]]})
    arrays = dict(np.load(path))
    arrays["sequential"] = np.array(json.dumps({"input_shape": [1, 28, 28], "architecture": [["conv2d", 8, 0, 1, 0]]}))
    np.savez_compressed(path, **arrays)
    with pytest.warns(RuntimeWarning, match="conv2d kernel must be"):
        cache.cached_train(key, train, tmp_path, store_dir=tmp_path / "none")
    assert len(calls) == 2


def test_bad_architectures_are_refused_naming_the_layer():
    with pytest.raises(ValueError, match="kind one of"):
        Sequential.build((("conv3d", 4, 3, 1, 0),), (1, 8, 8))
    with pytest.raises(ValueError, match="conv2d takes the arguments"):
        Sequential.build((("conv2d", 4, 3),), (1, 8, 8))
    with pytest.raises(ValueError, match="conv2d stride must be"):
        Sequential.build((("conv2d", 4, 3, 0, 0),), (1, 8, 8))
    with pytest.raises(ValueError, match=r"architecture\[1\].*kernel must be <= the padded input size"):
        Sequential.build((("conv2d", 4, 3, 1, 0), ("conv2d", 4, 7, 1, 0), ("flatten",)), (1, 8, 8))
    with pytest.raises(ValueError, match="flatten images first"):
        Sequential.build((("dense", 4),), (1, 8, 8))
    with pytest.raises(ValueError, match="must end in flat logits"):
        Sequential.build((("conv2d", 4, 3, 1, 0),), (1, 8, 8))
    with pytest.raises(ValueError, match="activation must be one of"):
        Activation("softplus")
    with pytest.raises(ValueError, match="dense bias must have shape"):
        Dense(np.ones((3, 2)), np.ones(3))
    model, x = _cnn_data()
    with pytest.raises(ValueError, match=r"x must have shape \(batch, 784\)"):
        model.forward(x[:, :100])
    with pytest.raises(ValueError, match="config.hidden must be \\(\\)"):
        train_sequential(x, np.arange(5), TrainConfig(), SMALL_CNN, (1, 28, 28))


# ---------------------------------------------------------------- the CNN study (imclib.experiments.cnn)


def test_energy_per_inference_of_an_mlp_is_its_cost_table_and_conv_layers_scale_by_their_rows():
    from imclib.cost import cost_table, network_inputs
    from imclib.experiments import cnn, mnist

    config = CrossbarConfig()
    x = mnist.split()["x_test"][:3]
    mlp = _mlp(sizes=(784, 16, 10))
    layers, _ = deploy_network(mlp, config, mnist.calibration_inputs(), 0)
    want = cost_table(layers, network_inputs(mlp, layers, x, np.random.default_rng(0))[1])
    got = cnn.energy_per_inference(mlp, config, x)
    np.testing.assert_allclose(got.energy_J, want.energy_J, rtol=1e-12)
    model, _ = _cnn_data()
    table = cnn.energy_per_inference(model, config, x).set_index(["layer", "component"])
    layers, _ = deploy_network(model, config, mnist.calibration_inputs(), 0)
    rows = np.random.default_rng(1).uniform(0, 1, (5, 25))
    per_row = cost_table(layers[:1], rows).set_index(["layer", "component"])
    # the ADC energy of a conversion does not depend on the input: conv 1 converts 24 x 24 rows per image
    assert table.loc[("layer 1", "ADC"), "energy_J"] == pytest.approx(576 * per_row.loc[("layer 1", "ADC"), "energy_J"],
                                                                       rel=1e-12)
    assert table.loc[("layer 1", "ADC"), "area_m2"] == per_row.loc[("layer 1", "ADC"), "area_m2"]
    total = table.loc[("total", "total"), "energy_J"]
    assert total == pytest.approx(table.drop(index="total", level=0).energy_J.sum(), rel=1e-12)


def test_check_c8_applies_each_part_of_the_criterion_per_scheme():
    from imclib.experiments import cnn

    def rows(scheme, software, hardware, device_sd):
        return [{"scheme": scheme, "network": "software", "mean": software, "device_sd": float("nan")},
                {"scheme": scheme, "network": "HWA", "mean": hardware, "device_sd": device_sd}]

    confidence = pd.DataFrame(rows("a", 0.9925, 0.9890, 0.001) + rows("b", 0.9925, 0.9880, 0.001)
                              + rows("c", 0.9925, 0.9900, 0.0025))
    checks, by_scheme, verdict = cnn.check_c8(confidence)
    assert by_scheme == {"a": True, "b": False, "c": False} and verdict == "partly"
    assert not checks.loc["b", "gap <= 0.42 points"] and not checks.loc["c", "device sd <= 0.2 points"]
    low = confidence.assign(mean=confidence["mean"] - 0.01)
    assert cnn.check_c8(low)[2] == "not reproduced"
    good = pd.DataFrame(rows("a", 0.9925, 0.9890, 0.001) + rows("b", 0.9925, 0.9884, 0.002))
    assert cnn.check_c8(good)[1:] == ({"a": True, "b": True}, "reproduced")  # b: gap 0.41 points, sd at the bound


def test_judge_c8_records_the_verdict_and_the_findings_state_it(tmp_path, monkeypatch):
    import json

    from imclib.experiments import cnn, mnist

    monkeypatch.setenv("IMCLIB_FIGURES_DIR", str(tmp_path))
    rng = np.random.default_rng(0)
    rows = [{"scheme": scheme, "network": "software", "train_seed": seed, "device_seed": -1, "accuracy": 0.991}
            for scheme in ("offset/digital", "differential") for seed in (0, 1, 2)]
    for scheme, hwa in (("offset/digital", 0.9885), ("differential", 0.9860)):  # gaps 0.25 and 0.50 points
        rows += [{"scheme": scheme, "network": network, "train_seed": 0, "device_seed": seed,
                  "accuracy": mean + 0.0005 * rng.standard_normal()}
                 for network, mean in (("HWA", hwa), ("PTQ expert", 0.975)) for seed in range(10)]
    rows += [{"scheme": "offset/digital", "network": "PTQ naive", "train_seed": 0, "device_seed": seed,
              "accuracy": 0.5} for seed in range(3)]
    confidence = mnist.confidence_table(pd.DataFrame(rows))
    energy = pd.DataFrame({"network": ["CNN (HWA)", "CNN (PTQ expert)", "MLP (HWA)", "MLP (PTQ expert)"],
                           "accuracy": [0.9885, 0.975, 0.976, 0.966], "energy_J": [80e-9, 80e-9, 36e-9, 36e-9],
                           "ADC_share": [0.9, 0.9, 0.95, 0.95], "latency_s": [1e-6] * 4, "area_m2": [1e-8] * 4})
    checks, verdict = cnn.judge_c8(confidence, energy, 20424)
    assert verdict == "partly" and list(checks.passes) == [True, False]
    entry = json.loads((tmp_path / "results.json").read_text())["C8"]
    assert entry["verdict"] == "partly" and entry["by_scheme"] == {"offset/digital": True, "differential": False}
    assert entry["measured"]["energy_nJ"] == {"CNN (HWA)": 80.0, "CNN (PTQ expert)": 80.0, "MLP (HWA)": 36.0,
                                              "MLP (PTQ expert)": 36.0}
    text = cnn.c8_findings(confidence, checks, verdict, energy, 20424)
    assert "**partly**" in text and "gap <= 0.42 points does not hold" in text and "80 nJ against 36 nJ" in text
