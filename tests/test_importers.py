"""Networks in: MLP activations, scikit-learn import, PyTorch-style weight files."""

import warnings

import numpy as np
import pandas as pd
import pytest
from safetensors.numpy import save_file
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier, MLPRegressor

import imclib
from imclib.importers import from_sklearn, load_weights
from imclib.mlp import ACTIVATIONS, MLP, _loss_and_gradients

DIGITS = load_digits()
X, Y = DIGITS.data[:300] / 16.0, DIGITS.target[:300]


def _fit(estimator, x=X, y=Y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(x, y)


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_from_sklearn_classifier_reproduces_its_probabilities(activation):
    clf = _fit(MLPClassifier(hidden_layer_sizes=(12, 7), activation=activation, max_iter=30, random_state=0))
    model = from_sklearn(clf)
    assert model.activations == (activation, activation, "identity")
    np.testing.assert_allclose(model.predict_proba(X), clf.predict_proba(X), rtol=0, atol=1e-12)
    assert np.array_equal(clf.classes_[model.predict(X)], clf.predict(X))


def test_from_sklearn_binary_and_regressor():
    binary = _fit(MLPClassifier(hidden_layer_sizes=(6,), activation="logistic", max_iter=30, random_state=0),
                  y=(Y > 4).astype(int))
    model = from_sklearn(binary)
    assert model.layer_sizes[-1] == 2
    np.testing.assert_allclose(model.predict_proba(X), binary.predict_proba(X), rtol=0, atol=1e-12)
    regressor = _fit(MLPRegressor(hidden_layer_sizes=(5,), activation="tanh", max_iter=30, random_state=0),
                     y=np.c_[Y, Y**2])
    np.testing.assert_allclose(from_sklearn(regressor).forward(X), regressor.predict(X), rtol=1e-12, atol=1e-12)


def test_from_sklearn_refuses_what_it_cannot_run():
    with pytest.raises(ValueError, match="must be fitted"):
        from_sklearn(MLPClassifier())
    with pytest.raises(ValueError, match="MLPClassifier or MLPRegressor, got .*LogisticRegression"):
        from_sklearn(_fit(LogisticRegression(max_iter=20)))
    clf = _fit(MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0))
    clf.activation = "softplus"  # a fitted estimator of an activation imclib does not run
    with pytest.raises(ValueError, match="activation must be one of .*got 'softplus'"):
        from_sklearn(clf)
    multilabel = _fit(MLPClassifier(hidden_layer_sizes=(4,), max_iter=5, random_state=0), y=np.c_[Y > 4, Y % 2 == 0])
    with pytest.raises(ValueError, match="multi-label"):
        from_sklearn(multilabel)


def _torch_reference(state, order, activations, x):
    """``x W^T + b`` layer by layer, PyTorch's convention, then the activation."""
    for module, name in zip(order, activations):
        x = ACTIVATIONS[name](x @ state[f"{module}.weight"].astype(np.float64).T + state[f"{module}.bias"])
    return x


@pytest.mark.parametrize("names", [("0", "2", "4"), ("fc1", "fc2", "fc10"), ("layers.0", "layers.1", "layers.2")])
def test_safetensors_round_trip(tmp_path, names):
    rng = np.random.default_rng(0)
    sizes = (64, 9, 5, 3)
    state = {}
    for module, (n_in, n_out) in reversed(list(zip(names, zip(sizes, sizes[1:])))):  # written out of order
        state[f"{module}.weight"] = rng.normal(size=(n_out, n_in)).astype(np.float32)
        state[f"{module}.bias"] = rng.normal(size=n_out).astype(np.float32)
    path = tmp_path / "net.safetensors"
    save_file(state, str(path))
    activations = ("tanh", "relu", "identity")
    model = load_weights(path, activations)
    assert model.layer_sizes == sizes and model.activations == activations
    np.testing.assert_allclose(model.forward(X), _torch_reference(state, names, activations, X), rtol=1e-12)
    from_dict = load_weights(state, activations)
    for a, b in zip(model.weights + model.biases, from_dict.weights + from_dict.biases):
        np.testing.assert_array_equal(a, b)


def test_load_weights_missing_bias_and_explicit_order():
    rng = np.random.default_rng(1)
    state = {"head.weight": rng.normal(size=(3, 4)), "body.weight": rng.normal(size=(4, 6)),
             "body.bias": rng.normal(size=4)}
    with pytest.raises(ValueError, match="ambiguous.*order="):
        load_weights(state, ("relu", "identity"))
    model = load_weights(state, ("relu", "identity"), order=["body", "head"])
    np.testing.assert_array_equal(model.biases[1], np.zeros(3))
    np.testing.assert_array_equal(model.weights[0], state["body.weight"].T)
    with pytest.raises(ValueError, match="order must list every module once"):
        load_weights(state, ("relu", "identity"), order=["body"])


@pytest.mark.parametrize("state, message", [
    ({"0.weight": np.ones((3, 4)), "1.running_mean": np.ones(3)}, "'1.running_mean' is not <module>.weight"),
    ({"0.weight": np.ones(4)}, "'0.weight' must be a 2-D Linear weight"),
    ({"0.weight": np.ones((3, 4), dtype=np.int32)}, "'0.weight' must hold floating-point"),
    ({"0.weight": np.ones((3, 4)), "0.bias": np.ones(4)}, r"'0.bias' must have shape \(3,\)"),
    ({"0.weight": np.ones((3, 4)), "1.weight": np.ones((2, 5))}, "has 5 inputs but the module before it"),
    ({"0.bias": np.ones(3)}, "has a bias but no weight"),
    ({}, "holds no parameters"),
])
def test_load_weights_refusals_name_the_parameter(state, message):
    with pytest.raises(ValueError, match=message):
        load_weights(state, ("relu", "identity"))


def test_load_weights_refuses_bad_files_and_activations(tmp_path):
    path = tmp_path / "broken.safetensors"
    path.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="not a readable .safetensors file"):
        load_weights(path, ("identity",))
    with pytest.raises(ValueError, match="activations must name one activation per layer"):
        load_weights({"0.weight": np.ones((3, 4))}, ("relu", "identity"))
    with pytest.raises(ValueError, match=r"activations\[0\] must be one of"):
        load_weights({"0.weight": np.ones((3, 4))}, ("gelu",))


def test_activations_are_saved_and_old_files_load_as_relu(tmp_path):
    rng = np.random.default_rng(2)
    model = MLP([rng.normal(size=(4, 3)), rng.normal(size=(3, 2))], [np.zeros(3), np.zeros(2)], ("tanh", "logistic"))
    model.save(tmp_path / "m.npz")
    loaded = MLP.load(tmp_path / "m.npz")
    assert loaded.activations == ("tanh", "logistic")
    np.testing.assert_array_equal(loaded.forward(X[:, :4]), model.forward(X[:, :4]))
    np.savez(tmp_path / "old.npz", weight_0=model.weights[0], bias_0=model.biases[0], weight_1=model.weights[1],
             bias_1=model.biases[1])
    assert MLP.load(tmp_path / "old.npz").activations == ("relu", "identity")
    np.savez(tmp_path / "bad.npz", weight_0=model.weights[0], bias_0=model.biases[0], activations=np.array(["swish"]))
    with pytest.raises(ValueError, match="not a valid MLP file.*swish"):
        MLP.load(tmp_path / "bad.npz")


@pytest.mark.parametrize("activations", [("tanh", "identity"), ("logistic", "tanh"), ("identity", "logistic")])
def test_gradients_match_finite_differences(activations):
    rng = np.random.default_rng(3)
    weights, biases = [rng.normal(size=(5, 4)), rng.normal(size=(4, 3))], [rng.normal(size=4), rng.normal(size=3)]
    x, y = rng.normal(size=(7, 5)), rng.integers(0, 3, size=7)
    result = _loss_and_gradients(weights, biases, x, y, activations)
    step = 1e-6
    for layer in range(2):
        for index in [(0, 0), (2, 1), (3, 2)]:
            shifted = [w.copy() for w in weights]
            shifted[layer][index] += step
            up = _loss_and_gradients(shifted, biases, x, y, activations).loss
            shifted[layer][index] -= 2 * step
            down = _loss_and_gradients(shifted, biases, x, y, activations).loss
            assert result.weight_grads[layer][index] == pytest.approx((up - down) / (2 * step), abs=1e-7)


def test_hardware_path_applies_the_activation():
    rng = np.random.default_rng(4)
    weights, biases = [rng.normal(size=(6, 5)), rng.normal(size=(5, 3))], [rng.normal(size=5), rng.normal(size=3)]
    x = rng.uniform(size=(20, 6))
    config = imclib.CrossbarConfig.ideal()
    for activations in [("tanh", "identity"), ("relu", "identity")]:
        model = MLP(weights, biases, activations)
        np.testing.assert_allclose(imclib.hardware_logits(model, x, config, 0, x), model.forward(x), atol=1e-9)


def test_top_level_entry_points():
    for name in ("deploy_network", "hardware_accuracy", "hardware_logits", "MLP", "CellLevels", "MeasuredCell",
                 "from_sklearn", "load_weights"):
        assert name in imclib.__all__ and getattr(imclib, name) is not None


def test_the_store_keeps_activations(tmp_path):
    from imclib import cache

    rng = np.random.default_rng(6)
    model = MLP([rng.normal(size=(4, 3)), rng.normal(size=(3, 2))], [np.zeros(3), np.zeros(2)], ("tanh", "identity"))
    history = pd.DataFrame({"epoch": [1], "loss": [0.5]})
    folders = {"cache_dir": tmp_path / "cache", "store_dir": tmp_path / "store"}
    first, _ = cache.cached_train({"task": "tanh-activations"}, lambda: (model, history), **folders)
    again, _ = cache.cached_train({"task": "tanh-activations"}, lambda: pytest.fail("retrained"), **folders)
    assert first.activations == again.activations == ("tanh", "identity")


@pytest.mark.parametrize("activations", [("tanh", "identity"), ("logistic", "tanh")])
def test_hardware_aware_gradients_honour_the_activations(activations):
    from imclib import hwa

    rng = np.random.default_rng(7)
    model = MLP([rng.normal(size=(64, 16)) / 8, rng.normal(size=(16, 10)) / 4], [rng.normal(size=16) * 0.1,
                                                                                 rng.normal(size=10) * 0.1],
                activations)
    x, y = X[:50], Y[:50]
    config = imclib.CrossbarConfig.ideal()  # the hardware-aware pass is the float pass
    states = hwa._calibrate(model, x, config)
    loss, weight_grads, bias_grads, _ = hwa._step(model, states, x, y, config, np.random.default_rng(0))
    reference = _loss_and_gradients(model.weights, model.biases, x, y, activations)
    assert loss == pytest.approx(reference.loss, rel=1e-12)
    for got, want in zip(weight_grads + bias_grads, reference.weight_grads + reference.bias_grads):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------- Conv2d weights (Sequential networks)

CNN = (("conv2d", 4, 3, 2, 1), ("relu",), ("maxpool2d", 2), ("conv2d", 5, 3, 1, 0), ("flatten",), ("dense", 3))
CNN_INPUT = (2, 13, 13)


def _torch_state(seed=0):
    """A hand-made PyTorch-style state dict of CNN: Conv2d weights (C_out, C_in, k, k),
    Linear (out, in), float32 as torch saves them."""
    rng = np.random.default_rng(seed)
    shapes = {"features.0": (4, 2, 3, 3), "features.3": (5, 4, 3, 3), "classifier.0": (3, 5 * 1 * 1)}
    state = {}
    for module, shape in shapes.items():
        state[f"{module}.weight"] = rng.normal(size=shape).astype(np.float32)
        state[f"{module}.bias"] = rng.normal(size=shape[0]).astype(np.float32)
    return state


def _torch_cnn_reference(state, x):
    """CNN by explicit loops in PyTorch's convention: y[o, u, v] = b[o] + sum K[o, c, i, j] x[c, s u + i, s v + j]."""
    def conv(images, kernels, bias, stride, padding):
        images = np.pad(images, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
        k = kernels.shape[-1]
        h_out, w_out = (images.shape[2] - k) // stride + 1, (images.shape[3] - k) // stride + 1
        out = np.zeros((len(images), len(kernels), h_out, w_out))
        for u in range(h_out):
            for v in range(w_out):
                patch = images[:, :, u * stride : u * stride + k, v * stride : v * stride + k]
                out[:, :, u, v] = np.einsum("ncij,ocij->no", patch, kernels) + bias
        return out

    kernels = {name: value.astype(np.float64) for name, value in state.items()}
    h = np.maximum(conv(x.reshape(-1, *CNN_INPUT), kernels["features.0.weight"], kernels["features.0.bias"], 2, 1), 0)
    h = h[:, :, :6, :6].reshape(len(h), 4, 3, 2, 3, 2).max(axis=(3, 5))
    h = conv(h, kernels["features.3.weight"], kernels["features.3.bias"], 1, 0).reshape(len(h), -1)
    return h @ kernels["classifier.0.weight"].T + kernels["classifier.0.bias"]


def test_conv2d_weights_load_from_safetensors_and_dicts(tmp_path):
    state = _torch_state()
    path = tmp_path / "cnn.safetensors"
    save_file(state, str(path))
    x = np.random.default_rng(1).uniform(0, 1, (5, int(np.prod(CNN_INPUT))))
    order = ["features.0", "features.3", "classifier.0"]  # two name patterns: the order is given
    model = load_weights(path, architecture=CNN, input_shape=CNN_INPUT, order=order)
    assert model.architecture == CNN
    want = _torch_cnn_reference(state, x)
    assert np.max(np.abs(model.forward(x) - want)) <= 1e-12 * np.max(np.abs(want))
    from_dict = load_weights(state, architecture=CNN, input_shape=CNN_INPUT, order=order)
    for a, b in zip(model.weights + model.biases, from_dict.weights + from_dict.biases):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(model.weights[0], state["features.0.weight"].reshape(4, -1).T)


def test_conv2d_weight_refusals_name_the_parameter():
    state = _torch_state()
    order = ["features.0", "features.3", "classifier.0"]
    with pytest.raises(ValueError, match="must be a 2-D Linear weight.*architecture="):
        load_weights(state, ("relu", "relu", "identity"), order=order)
    bad = {**state, "features.3.weight": np.ones((5, 4, 5, 5), dtype=np.float32)}
    with pytest.raises(ValueError, match=r"'features.3.weight' must have shape \(5, 4, 3, 3\) for the layer "
                                         r"\('conv2d', 5, 3, 1, 0\)"):
        load_weights(bad, architecture=CNN, input_shape=CNN_INPUT, order=order)
    bad = {**state, "classifier.0.bias": np.ones(4, dtype=np.float32)}
    with pytest.raises(ValueError, match=r"'classifier.0.bias' must have shape \(3,\)"):
        load_weights(bad, architecture=CNN, input_shape=CNN_INPUT, order=order)
    with pytest.raises(ValueError, match="the architecture has 3 conv2d and dense layers, the weights 2 modules"):
        load_weights({k: v for k, v in state.items() if not k.startswith("classifier")}, architecture=CNN,
                     input_shape=CNN_INPUT)
    with pytest.raises(ValueError, match="with architecture give input_shape and no activations"):
        load_weights(state, ("relu",), architecture=CNN, input_shape=CNN_INPUT, order=order)
