"""Hardware-aware training: exact gradients in the ideal limit, the injected noise by hand,
determinism, and a gain over post-training quantization on a noisy device."""

import numpy as np
import pytest
from sklearn.datasets import load_digits

from imclib import CellLevels, CrossbarConfig, Nonidealities, Periphery
from imclib import hwa
from imclib.mlp import MLP, TrainConfig, _loss_and_gradients, train_mlp
from imclib.network import hardware_accuracy
from seed_statistics import assert_above_four_standard_errors


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    x, y = data.data / 16.0, data.target
    return x[:1200], y[:1200], x[1200:], y[1200:]


def _model(seed=0, sizes=(64, 16, 10)):
    rng = np.random.default_rng(seed)
    return MLP([rng.normal(size=(a, b)) / np.sqrt(a) for a, b in zip(sizes, sizes[1:])],
               [rng.normal(size=b) * 0.1 for b in sizes[1:]])


def test_ideal_device_gives_the_float_gradients(digits):
    x, y = digits[0][:50], digits[1][:50]
    model = _model()
    config = CrossbarConfig.ideal()
    states = hwa._calibrate(model, x, config)
    loss, weight_grads, bias_grads, _ = hwa._step(model, states, x, y, config, np.random.default_rng(0))
    reference = _loss_and_gradients(model.weights, model.biases, x, y)
    assert loss == pytest.approx(reference.loss, rel=1e-12)
    for got, want in zip(weight_grads + bias_grads, reference.weight_grads + reference.bias_grads):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_injected_adc_noise_by_hand():
    # one layer, 8 inputs = 2 row blocks of 4, one output; weights exactly on the level image
    config = CrossbarConfig.quantization_only(CellLevels(2, "uniform")).with_(
        periphery=Periphery(adc_bits=4, sense_noise=1e-7))
    weights = np.array([[1.0], [-1.0]] * 4)
    model = MLP([weights], [np.zeros(1)])
    x = np.ones((1, 8))
    (state,) = hwa._calibrate(model, x, config)
    # partial sums of both blocks are 0 -> full scale 0 -> no rounding noise; sense noise only:
    # 2 reads of 1e-7 A rms, in weight units times a / s (a = 2 / (G_max - G_min), s = v_read / 1)
    gain = 2.0 / (1 / 6e3 - 1 / 12e3)
    assert state.adc_sigma[0] == pytest.approx(np.sqrt(2) * 1e-7 * gain / 0.1)
    x = np.array([[1.0, 0, 1.0, 0, 1.0, 0, 1.0, 0]])
    (state,) = hwa._calibrate(model, x, config.with_(periphery=Periphery(adc_bits=4)))
    # partial sums 2 and 2: full scale 2, bipolar step 4 / 15, variance 2 * step^2 / 12
    assert state.adc_sigma[0] == pytest.approx(np.sqrt(2 * (4 / 15) ** 2 / 12))


def test_cell_noise_has_mean_one_and_the_device_spread():
    config = CrossbarConfig().with_(nonideal=Nonidealities(programming_sigma=0.2, read_sigma=0.05))
    noise = hwa._cell_noise((400_000,), config, np.random.default_rng(1))
    assert abs(noise.mean() - 1) < 4 * noise.std() / np.sqrt(noise.size)
    assert noise.std() == pytest.approx(np.sqrt(np.expm1(0.04) * (1 + 0.05**2) + 0.05**2), rel=0.02)
    assert hwa._cell_noise((3,), CrossbarConfig.quantization_only(), np.random.default_rng(1)) is None


def test_training_is_deterministic_and_rejects_qat(digits):
    x, y, _, _ = digits
    config = CrossbarConfig().with_(nonideal=Nonidealities(programming_sigma=0.1))
    training = TrainConfig(hidden=(16,), epochs=1, batch_size=100, learning_rate=1e-3)
    first, history = hwa.train_hwa(x, y, config, training, _model(), progress=False, n_calibration=200)
    second, _ = hwa.train_hwa(x, y, config, training, _model(), progress=False, n_calibration=200)
    for a, b in zip(first.weights, second.weights):
        np.testing.assert_array_equal(a, b)
    assert list(history.columns) == ["epoch", "loss", "train_accuracy", "val_accuracy"]
    with pytest.raises(ValueError, match="qat"):
        hwa.train_hwa(x, y, config, TrainConfig(hidden=(16,), qat=True), _model(), progress=False)


def test_hardware_aware_training_beats_ptq_on_a_noisy_two_state_device(digits):
    # One accuracy gain (aware - PTQ, paired on the same device draws and test images) per
    # training seed: float training and fine-tuning are trajectories that a CPU's rounding
    # changes, so the gain must exceed 4 standard errors of its spread over trajectories.
    # Without the effect (fine-tuning that does nothing, or harm) the mean gain is <= 0 and
    # the assertion fails.
    x, y, x_test, y_test = digits
    config = CrossbarConfig(cell=CellLevels(2, "binary"), nonideal=Nonidealities(programming_sigma=0.15))
    device_seeds = range(6)
    gains = []
    for seed in range(8):
        float_model, _ = train_mlp(x, y, TrainConfig(hidden=(32,), epochs=30, batch_size=64, seed=seed),
                                   progress=False)
        training = TrainConfig(hidden=(32,), epochs=40, batch_size=64, learning_rate=2e-3, weight_decay=0.0,
                               seed=seed)
        trained, _ = hwa.train_hwa(x, y, config, training, float_model, progress=False, n_calibration=300)
        # without the post-programming column calibration, which hwa's training model leaves out
        ptq = hardware_accuracy(float_model, x_test, y_test, config, device_seeds, x[:300], False).accuracy
        aware = hardware_accuracy(trained, x_test, y_test, config, device_seeds, x[:300], False).accuracy
        gains.append(np.mean(aware - ptq))
    assert_above_four_standard_errors(gains, "hardware-aware minus PTQ accuracy, per training seed")
