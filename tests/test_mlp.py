"""Tests of imclib.mlp: gradients, training, hooks, QAT, validation and caching."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from imclib.cache import cached_train, default_cache_dir
from imclib.mlp import (
    MLP,
    TrainConfig,
    _loss_and_gradients,
    train_mlp,
)
from finite_differences import central_differences
from seed_statistics import assert_above_four_standard_errors

DIGITS_CONFIG = TrainConfig(hidden=(64,), epochs=10, batch_size=32, learning_rate=3e-3)
TRAINING_SEEDS = range(6)
"""Independent training trajectories of the statistical tests (seed_statistics)."""


def uniform_quantizer(n_levels: int):
    """Stand-in device mapping: ``n_levels`` evenly spaced levels on [-max|W|, max|W|]."""

    def quantize(layer_index: int, weight: np.ndarray) -> np.ndarray:
        max_abs = np.abs(weight).max()
        step = 2.0 * max_abs / (n_levels - 1)
        return -max_abs + np.round((weight + max_abs) / step) * step

    return quantize


def quantized_model(model: MLP, quantize) -> MLP:
    return MLP([quantize(i, w) for i, w in enumerate(model.weights)], model.biases)


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(
        data.data / 16.0, data.target, test_size=0.3, random_state=0, stratify=data.target
    )
    return x_train, x_test, y_train, y_test


@pytest.fixture(scope="module")
def float_models(digits):
    """``DIGITS_CONFIG`` trained with each of ``TRAINING_SEEDS``: (model, history) pairs."""
    x_train, x_test, y_train, y_test = digits
    return [train_mlp(x_train, y_train, TrainConfig(**{**vars(DIGITS_CONFIG), "seed": seed}),
                      x_val=x_test, y_val=y_test, progress=False) for seed in TRAINING_SEEDS]


@pytest.fixture(scope="module")
def float_model(float_models):
    return float_models[0]


@pytest.fixture
def tiny_model():
    rng = np.random.default_rng(1)
    sizes = (5, 4, 3, 3)
    weights = [rng.normal(size=(n_in, n_out)) for n_in, n_out in zip(sizes[:-1], sizes[1:])]
    biases = [rng.normal(size=n_out) * 0.1 for n_out in sizes[1:]]
    return MLP(weights, biases)


# --- gradients -------------------------------------------------------------


def test_loss_is_mean_softmax_cross_entropy(tiny_model):
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(7, 5)), rng.integers(0, 3, size=7)
    result = _loss_and_gradients(tiny_model.weights, tiny_model.biases, x, y)
    probabilities = tiny_model.predict_proba(x)
    assert result.loss == pytest.approx(-np.mean(np.log(probabilities[np.arange(7), y])))
    np.testing.assert_array_equal(result.logits, tiny_model.forward(x))


def test_gradients_match_finite_differences(tiny_model):
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(6, 5)), rng.integers(0, 3, size=6)
    params = tiny_model.weights + tiny_model.biases
    result = _loss_and_gradients(tiny_model.weights, tiny_model.biases, x, y)
    analytic = result.weight_grads + result.bias_grads

    def loss() -> float:
        return _loss_and_gradients(tiny_model.weights, tiny_model.biases, x, y).loss

    for param, grad in zip(params, analytic):
        assert grad.shape == param.shape
        numeric = central_differences(loss, param, step=1e-6)
        relative_error = np.linalg.norm(grad - numeric) / np.linalg.norm(grad + numeric)
        assert relative_error < 1e-5
        np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-9)


# --- training --------------------------------------------------------------


def test_training_on_digits_learns_with_a_falling_loss(digits, float_model):
    x_train, x_test, y_train, y_test = digits
    model, history = float_model
    assert model.layer_sizes == (64, 64, 10)
    assert list(history.columns) == ["epoch", "loss", "train_accuracy", "val_accuracy"]
    assert history["epoch"].tolist() == list(range(1, DIGITS_CONFIG.epochs + 1))
    assert (np.diff(history["loss"]) < 0).all()
    assert history["val_accuracy"].iloc[-1] == model.accuracy(x_test, y_test)


def test_training_on_digits_beats_a_nearest_class_mean_classifier(digits, float_models):
    # The reference has no training trajectory (class means of the training images); the
    # paired accuracy difference on the test images, one per training seed, must exceed 4
    # standard errors of its spread. A training that learned less than the class means
    # (e.g. a broken gradient: chance, 0.1) fails.
    x_train, x_test, y_train, y_test = digits
    means = np.stack([x_train[y_train == label].mean(axis=0) for label in range(10)])
    nearest_mean = np.mean(np.argmin(((x_test[:, None, :] - means) ** 2).sum(axis=2), axis=1) == y_test)
    gains = [model.accuracy(x_test, y_test) - nearest_mean for model, _ in float_models]
    assert_above_four_standard_errors(gains, "MLP minus nearest-class-mean test accuracy, per training seed")


def test_history_val_accuracy_is_nan_without_validation_set(digits):
    x_train, _, y_train, _ = digits
    config = TrainConfig(hidden=(8,), epochs=2)
    _, history = train_mlp(x_train, y_train, config, progress=False)
    assert history["val_accuracy"].isna().all()


def test_same_seed_gives_identical_weights_and_different_seed_differs(digits):
    x_train, _, y_train, _ = digits
    config = TrainConfig(hidden=(16,), epochs=2, batch_size=64)
    first, _ = train_mlp(x_train, y_train, config, progress=False)
    again, _ = train_mlp(x_train, y_train, config, progress=False)
    other, _ = train_mlp(x_train, y_train, TrainConfig(**{**vars(config), "seed": 1}),
                         progress=False)
    for w_first, w_again, w_other in zip(first.weights, again.weights, other.weights):
        np.testing.assert_array_equal(w_first, w_again)
        assert not np.array_equal(w_first, w_other)


def test_noisy_qat_is_reproducible(digits, float_model):
    x_train, _, y_train, _ = digits
    config = TrainConfig(hidden=(64,), epochs=1, qat=True, qat_noise=0.1, seed=5)
    runs = [
        train_mlp(x_train, y_train, config, quantize=uniform_quantizer(4),
                  init=float_model[0], progress=False)[0]
        for _ in range(2)
    ]
    for w_first, w_second in zip(runs[0].weights, runs[1].weights):
        np.testing.assert_array_equal(w_first, w_second)


def test_init_is_copied_not_modified(digits, float_model):
    x_train, _, y_train, _ = digits
    init = float_model[0]
    before = [w.copy() for w in init.weights]
    config = TrainConfig(hidden=(64,), epochs=1)
    trained, _ = train_mlp(x_train, y_train, config, init=init, progress=False)
    for w_init, w_before, w_trained in zip(init.weights, before, trained.weights):
        np.testing.assert_array_equal(w_init, w_before)
        assert not np.array_equal(w_trained, w_before)


# --- inference API ---------------------------------------------------------


def test_identity_matmul_hook_matches_forward_exactly(digits, float_model):
    x_test = digits[1]
    model = float_model[0]
    hooked = model.forward(x_test, matmul=lambda i, x, w: x @ w)
    np.testing.assert_array_equal(hooked, model.forward(x_test))


def test_matmul_hook_called_once_per_layer_with_layer_shapes(tiny_model):
    calls = []

    def recording_matmul(layer_index, x, weight):
        calls.append((layer_index, x.shape, weight.shape))
        return x @ weight

    tiny_model.predict(np.ones((2, 5)), matmul=recording_matmul)
    assert calls == [(0, (2, 5), (5, 4)), (1, (2, 4), (4, 3)), (2, (2, 3), (3, 3))]


def test_matmul_hook_with_wrong_output_shape_is_rejected(tiny_model):
    with pytest.raises(ValueError, match="matmul"):
        tiny_model.forward(np.ones((2, 5)), matmul=lambda i, x, w: x @ w[:, :1])


def test_hidden_activations_are_layer_inputs(tiny_model):
    x = np.random.default_rng(4).normal(size=(3, 5))
    inputs = tiny_model.hidden_activations(x)
    assert [a.shape for a in inputs] == [(3, 5), (3, 4), (3, 3)]
    np.testing.assert_array_equal(inputs[0], x)
    np.testing.assert_array_equal(
        inputs[1], np.maximum(x @ tiny_model.weights[0] + tiny_model.biases[0], 0)
    )
    logits = inputs[-1] @ tiny_model.weights[-1] + tiny_model.biases[-1]
    np.testing.assert_array_equal(logits, tiny_model.forward(x))


@pytest.mark.parametrize(
    "x, message",
    [
        (np.ones((2, 4)), r"x must have shape \(batch, 5\)"),
        (np.ones(5), r"x must have shape \(batch, 5\)"),
        (np.array([[0, 0, np.nan, 0, 0]]), "finite"),
        (np.array([[0, 0, np.inf, 0, 0]]), "finite"),
    ],
)
def test_forward_rejects_bad_inputs(tiny_model, x, message):
    with pytest.raises(ValueError, match=message):
        tiny_model.forward(x)


def test_mlp_rejects_inconsistent_layers():
    with pytest.raises(ValueError, match=r"weights\[1\]"):
        MLP([np.ones((3, 4)), np.ones((5, 2))], [np.zeros(4), np.zeros(2)])
    with pytest.raises(ValueError, match=r"biases\[0\]"):
        MLP([np.ones((3, 4))], [np.zeros(3)])


def test_save_load_roundtrip(tmp_path, tiny_model):
    path = tmp_path / "model.npz"
    tiny_model.save(path)
    loaded = MLP.load(path)
    assert loaded.layer_sizes == tiny_model.layer_sizes == (5, 4, 3, 3)
    for saved, restored in zip(tiny_model.weights + tiny_model.biases,
                               loaded.weights + loaded.biases):
        np.testing.assert_array_equal(saved, restored)


# --- quantization-aware training -------------------------------------------


def test_qat_beats_post_training_quantization(digits, float_models):
    # Per training seed (an independent trajectory of float training and QAT): 3-level PTQ
    # loses accuracy against the float network, and QAT wins accuracy back over PTQ, each by
    # more than 4 standard errors of its spread over seeds. Seen on seed 0: float 0.950,
    # PTQ 0.35, QAT 0.92. If quantizing cost nothing, or QAT did nothing, a mean difference is
    # ~0 and its assertion fails.
    x_train, x_test, y_train, y_test = digits
    quantize = uniform_quantizer(3)
    quantization_losses, qat_gains = [], []
    for seed, (float_net, _) in zip(TRAINING_SEEDS, float_models):
        ptq_accuracy = quantized_model(float_net, quantize).accuracy(x_test, y_test)
        config = TrainConfig(**{**vars(DIGITS_CONFIG), "qat": True, "seed": seed})
        qat_model, history = train_mlp(x_train, y_train, config, quantize=quantize, init=float_net,
                                       x_val=x_test, y_val=y_test, progress=False)
        qat_accuracy = quantized_model(qat_model, quantize).accuracy(x_test, y_test)
        assert history["val_accuracy"].iloc[-1] == qat_accuracy
        quantization_losses.append(float_net.accuracy(x_test, y_test) - ptq_accuracy)
        qat_gains.append(qat_accuracy - ptq_accuracy)
    assert_above_four_standard_errors(quantization_losses, "float minus 3-level PTQ accuracy, per training seed")
    assert_above_four_standard_errors(qat_gains, "3-level QAT minus PTQ accuracy, per training seed")


def test_qat_requires_quantize_and_quantize_requires_qat(digits):
    x_train, _, y_train, _ = digits
    with pytest.raises(ValueError, match="quantize"):
        train_mlp(x_train, y_train, TrainConfig(qat=True), progress=False)
    with pytest.raises(ValueError, match="quantize"):
        train_mlp(x_train, y_train, TrainConfig(), quantize=uniform_quantizer(3),
                  progress=False)


def test_quantize_with_wrong_shape_is_rejected(digits):
    x_train, _, y_train, _ = digits
    config = TrainConfig(hidden=(8,), epochs=1, qat=True)
    with pytest.raises(ValueError, match="quantize for layer 0"):
        train_mlp(x_train, y_train, config, quantize=lambda i, w: w[:1], progress=False)


def test_incompatible_init_is_rejected(digits, tiny_model):
    x_train, _, y_train, _ = digits
    with pytest.raises(ValueError, match="init"):
        train_mlp(x_train, y_train, TrainConfig(hidden=(4, 3)), init=tiny_model,
                  progress=False)


@pytest.mark.parametrize(
    "x_change, y_change, message",
    [
        (lambda x: x[:, :, None], None, "x must have shape"),
        (lambda x: np.where(x == x.max(), np.nan, x), None, "finite"),
        (None, lambda y: y[:-1], "y must have shape"),
        (None, lambda y: y.astype(float), "integer"),
        (None, lambda y: y - 1, ">= 0"),
    ],
)
def test_train_rejects_bad_data(digits, x_change, y_change, message):
    x_train, _, y_train, _ = digits
    x = x_change(x_train) if x_change else x_train
    y = y_change(y_train) if y_change else y_train
    with pytest.raises(ValueError, match=message):
        train_mlp(x, y, TrainConfig(hidden=(4,), epochs=1), progress=False)


# --- config validation -----------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [
        ("hidden", (0,)),
        ("hidden", (8.5,)),
        ("hidden", 8),
        ("epochs", 0),
        ("epochs", 1.5),
        ("batch_size", 0),
        ("learning_rate", 0.0),
        ("learning_rate", float("nan")),
        ("weight_decay", -1e-4),
        ("seed", -1),
        ("qat", "yes"),
        ("qat_noise", -0.1),
        ("qat_noise", 0.1),  # noise without qat
        ("lr_decay", 1.5),
        ("lr_decay", -0.1),
    ],
)
def test_config_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=rf"^{field} must"):
        TrainConfig(**{field: value})


def test_config_normalises_hidden_to_tuple():
    config = TrainConfig(hidden=[32, np.int64(16)])
    assert config.hidden == (32, 16)
    hash(config)


# --- caching ---------------------------------------------------------------


def test_cached_train_trains_once_per_key(tmp_path, digits):
    x_train, _, y_train, _ = digits
    calls = []

    def make_train_fn(config):
        def train_fn():
            calls.append(config)
            return train_mlp(x_train, y_train, config, progress=False)

        return train_fn

    config = TrainConfig(hidden=(8,), epochs=2)
    key = {"data": "digits", "config": config}
    model, history = cached_train(key, make_train_fn(config), cache_dir=tmp_path)
    loaded, loaded_history = cached_train(key, make_train_fn(config), cache_dir=tmp_path)
    assert len(calls) == 1
    for saved, restored in zip(model.weights + model.biases, loaded.weights + loaded.biases):
        np.testing.assert_array_equal(saved, restored)
    pd.testing.assert_frame_equal(history, loaded_history)
    assert len(list(tmp_path.glob("*.npz"))) == 1

    other = TrainConfig(hidden=(8,), epochs=2, seed=1)
    cached_train({"data": "digits", "config": other}, make_train_fn(other), cache_dir=tmp_path)
    assert len(calls) == 2
    assert len(list(tmp_path.glob("*.npz"))) == 2
    assert not list(tmp_path.glob("*.tmp"))


def test_default_cache_dir_honours_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("IMCLIB_CACHE", str(tmp_path / "explicit"))
    assert default_cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("IMCLIB_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "imclib" / "models"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "imclib" / "models"
