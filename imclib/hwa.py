"""Hardware-aware training: quantization-aware training with noise drawn from the device model.

Starting from a float network, every training forward pass runs each layer as the deployed
hardware would, in weight units (:mod:`imclib.deploy`), with fresh noise at every step:

* DAC: inputs clip at the layer's full scale ``x_max`` (the ``input_percentile`` of the
  calibration activations) and round to ``2^d`` codes;
* weights: the calibrated map (:mod:`imclib.mapping`) snaps ``W`` to the cell's levels,
  ``w_q = a L_q + b``, and programming variation (mean-normalised lognormal,
  ``programming_sigma``) and read noise (``read_sigma``) multiply every cell's conductance:
  ``w~ = a (G_q eps) + b`` (offset) or ``a (G+ eps+ - G- eps-) + b`` (differential),
  ``eps = exp(sigma z - sigma^2 / 2) (1 + sigma_read xi)``, for a measured cell also times
  its level's spread ``exp(s_q z' - s_q^2 / 2)`` (:class:`imclib.cells.MeasuredCell`);
* ADC: each of the ``B`` row-block partial sums is rounded with step
  ``Delta_j = (2) FS_j / (2^b - 1)`` (bipolar / unipolar), ``FS_j`` the ``adc_percentile``
  of the column's partial sums ``|sum_{i in block} x_i w_q,ij|`` on calibration inputs
  (exactly the ADC's full scale in weight units, since ``(a_j / s) I'_j = sum_i x_i w_ij``);
  the rounding errors are injected as Gaussian noise of variance ``B Delta_j^2 / 12`` on the
  output, plus the sense noise ``B sigma_I^2 (a_j / s)^2``.

Gradients use the straight-through estimator: ``dL/dW := dL/dw~`` for the float shadow
weights, and ``dL/dx`` passes the DAC unchanged inside its range (zero where it clips).
Every layer's activation (:data:`imclib.mlp.ACTIVATIONS`) is applied digitally as in
inference, and backpropagated through its derivative at the layer's output as the next layer's DAC
applies it (:func:`imclib.mlp.activation_derivative`; for ReLU ``[x_applied > 0]``).
The map ``(a, b)``, the DAC and the ADC ranges are refit every ``refit_every`` steps on a
fixed calibration batch of training images. Not modelled in training: bias-dependent TMR,
wire resistance, stuck cells (the deployed evaluation includes whatever the config has).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import _validate
from ._blas import one_blas_thread
from .config import CrossbarConfig
from .deploy import ADC_SAMPLES, input_full_scale
from .mapping import _pair_targets, level_set, map_weights, nearest_level, refine_affine_map
from .mlp import (ACTIVATIONS, MLP, TrainConfig, _AdamW, _cosine_learning_rate, activation_derivative,
                  softmax_cross_entropy)
from .periphery import dac


@dataclass(frozen=True)
class _LayerState:
    """Deployment of one layer frozen between refits (weight units)."""

    gain: np.ndarray
    offset: np.ndarray
    x_max: float
    signed: bool
    adc_sigma: np.ndarray  # rms output noise of ADC rounding and sense noise per column


def _conductances(weights: np.ndarray, state: _LayerState, levels: np.ndarray, config: CrossbarConfig) -> np.ndarray:
    """Nominal conductances (siemens) that program ``weights`` under the map: shape
    (n_in, n_out) (offset) or (n_in, n_out, 2) (differential pair ``G+``, ``G-``); the
    nearest levels, or the clipped analog values with ``quantize=False``."""
    values = level_set(levels, config.mapping)
    position = np.clip((weights - state.offset) / state.gain, values[0], values[-1])
    if config.quantize:
        position = nearest_level(position, values)
        targets = position if config.mapping == "offset" else _pair_targets(position, levels, True)
        return levels[targets]
    return position if config.mapping == "offset" else _pair_targets(position, levels, False)


def _decoded(conductance: np.ndarray, state: _LayerState, noise=None) -> np.ndarray:
    """``a G + b`` or ``a (G+ - G-) + b`` with every conductance times ``noise`` (if given)."""
    if noise is not None:
        conductance = conductance * noise
    if conductance.ndim == 3:
        return state.gain * (conductance[..., 0] - conductance[..., 1]) + state.offset
    return state.gain * conductance + state.offset


def _dac(x: np.ndarray, state: _LayerState, config: CrossbarConfig) -> tuple[np.ndarray, np.ndarray]:
    """DAC-applied inputs and the straight-through mask (1 inside the range); analog cells read
    without a DAC clip nothing (``config.clips_inputs``, as in the read path)."""
    if not config.clips_inputs:
        return x, np.ones(x.shape, dtype=bool)
    low = -state.x_max if state.signed else 0.0
    inside = (x >= low) & (x <= state.x_max)
    bits = config.periphery.dac_bits
    applied = np.clip(x, low, state.x_max) if bits is None else dac(x, bits, state.x_max, state.signed)
    return applied, inside


def _calibrate(model: MLP, x_cal: np.ndarray, config: CrossbarConfig,
               previous: list[_LayerState] | None = None) -> list[_LayerState]:
    """Fit the map, the DAC and the ADC ranges of every layer on the calibration batch,
    propagating it through the noise-free deployed network. With ``previous`` states (and
    per-column quantized maps) the map is refined from them by a few Lloyd-Max steps
    instead of fitted from scratch; the ADC ranges use the first ``ADC_SAMPLES`` images."""
    levels = config.cell.conductances()
    values = level_set(levels, config.mapping)
    states, activation = [], x_cal
    periphery, rows = config.periphery, config.rows
    for index, (weights, bias) in enumerate(zip(model.weights, model.biases)):
        if previous is not None and config.scale == "column" and config.quantize:
            gain, offset, _ = refine_affine_map(weights, values, previous[index].gain, previous[index].offset, 3)
        else:
            _, weight_map = map_weights(weights, config)
            gain, offset = weight_map.gain, weight_map.offset
        x_max = input_full_scale(activation, config.input_percentile)
        state = _LayerState(gain, offset, x_max, bool(np.any(activation < 0)), np.zeros(weights.shape[1]))
        applied, _ = _dac(activation, state, config)
        quantized = _decoded(_conductances(weights, state, levels, config), state)
        blocks = -(-weights.shape[0] // rows)
        variance = np.zeros(weights.shape[1])
        if periphery.adc_bits is not None:
            padded = np.zeros((blocks * rows, weights.shape[1]))
            padded[: weights.shape[0]] = quantized
            sample = applied[:ADC_SAMPLES]
            x_pad = np.zeros((sample.shape[0], blocks * rows))
            x_pad[:, : weights.shape[0]] = sample
            partial = np.einsum("nbk,bkj->nbj", x_pad.reshape(-1, blocks, rows), padded.reshape(blocks, rows, -1))
            full_scale = np.percentile(np.abs(partial).reshape(-1, weights.shape[1]), config.adc_percentile, axis=0)
            bipolar = state.signed or config.mapping == "offset"
            step = (2.0 if bipolar else 1.0) * full_scale / (2**periphery.adc_bits - 1)
            variance += blocks * step**2 / 12.0
        volts_per_unit = config.v_read / x_max
        variance += blocks * (periphery.sense_noise * gain / volts_per_unit) ** 2
        states.append(_LayerState(state.gain, state.offset, x_max, state.signed, np.sqrt(variance)))
        activation = ACTIVATIONS[model.activations[index]](applied @ quantized + bias)
    return states


def _cell_noise(shape: tuple[int, ...], config: CrossbarConfig, rng: np.random.Generator,
                conductance: np.ndarray | None = None) -> np.ndarray | None:
    """Per-cell factor ``exp(sigma z - sigma^2/2) (1 + sigma_read xi)``, or None without noise;
    for a measured cell (:class:`imclib.cells.MeasuredCell`) times its level's
    ``exp(s_q z' - s_q^2/2)``, ``s_q`` looked up from the nominal ``conductance`` (siemens)."""
    sigma, read = config.nonideal.programming_sigma, config.nonideal.read_sigma
    level_sigma = config.cell.level_sigma if config.quantize else None
    if not sigma and not read and level_sigma is None:
        return None
    noise = np.exp(sigma * rng.standard_normal(shape) - 0.5 * sigma**2) if sigma else np.ones(shape)
    if read:
        noise *= 1.0 + read * rng.standard_normal(shape)
    if level_sigma is not None:
        spread = np.interp(conductance, config.cell.conductances(), level_sigma)
        noise *= np.exp(spread * rng.standard_normal(shape) - 0.5 * spread**2)
    return noise


def _step(model: MLP, states: list[_LayerState], x: np.ndarray, y: np.ndarray, config: CrossbarConfig,
          rng: np.random.Generator, noisy: bool = True):
    """Loss, gradients (straight-through) and logits of one hardware-aware forward pass."""
    levels = config.cell.conductances()
    inputs, masks, used = [], [], []
    activation = x
    last = len(model.weights) - 1
    for index, (weights, bias, state) in enumerate(zip(model.weights, model.biases, states)):
        applied, inside = _dac(activation, state, config)
        conductance = _conductances(weights, state, levels, config)
        noise = _cell_noise(conductance.shape, config, rng, conductance) if noisy else None
        effective = _decoded(conductance, state, noise)
        pre = applied @ effective + bias
        if noisy and np.any(state.adc_sigma):
            pre += state.adc_sigma * rng.standard_normal(pre.shape)
        inputs.append(applied)
        masks.append(inside)
        used.append(effective)
        activation = ACTIVATIONS[model.activations[index]](pre)
    logits = activation
    if y is None:
        return logits
    loss, delta = softmax_cross_entropy(logits, y)
    weight_grads, bias_grads = [None] * len(used), [None] * len(used)
    for index in range(last, -1, -1):
        if model.activations[index] != "identity":
            output = logits if index == last else inputs[index + 1]
            delta = delta * activation_derivative(model.activations[index], output)
        weight_grads[index] = inputs[index].T @ delta
        bias_grads[index] = delta.sum(axis=0)
        if index > 0:
            delta = (delta @ used[index].T) * masks[index]
    return loss, weight_grads, bias_grads, logits


def hwa_accuracy(model: MLP, x: np.ndarray, y: np.ndarray, config: CrossbarConfig, x_cal: np.ndarray) -> float:
    """Accuracy of the noise-free deployed network in weight units (the training's model
    of the hardware without noise), with ranges calibrated on ``x_cal``."""
    states = _calibrate(model, x_cal, config)
    logits = _step(model, states, x.astype(np.float64), None, config, None, noisy=False)
    return float(np.mean(logits.argmax(axis=1) == y))


@one_blas_thread
def train_hwa(x: np.ndarray, y: np.ndarray, config: CrossbarConfig, training: TrainConfig, init: MLP, *,
              x_val: np.ndarray | None = None, y_val: np.ndarray | None = None, n_calibration: int = 1000,
              refit_every: int = 100, progress: bool = True) -> tuple[MLP, pd.DataFrame]:
    """Hardware-aware fine-tuning of ``init`` for the device ``config`` (module docstring).

    Parameters
    ----------
    x, y : ndarray
        Training images (n, n_in) and labels (n,).
    config : CrossbarConfig
        The device the network will be deployed on (map, converters, noise magnitudes).
    training : TrainConfig
        AdamW hyper-parameters (``qat`` must be False: the device model replaces it);
        ``training.seed`` seeds shuffling and every noise draw.
    init : MLP
        Float network to start from (copied).
    x_val, y_val : ndarray, optional
        Validation split: ``val_accuracy`` per epoch (noise-free deployed model).
    n_calibration : int
        Training images (evenly spaced) in the calibration batch of the ranges.
    refit_every : int
        Steps between refits of the map and of the converter ranges.

    Returns
    -------
    model : MLP
        Shadow weights, trained for their quantized values (``trained_for="quantized"``);
        deploy them with ``config`` (:func:`imclib.deploy.deploy_network`).
    history : pandas.DataFrame
        ``epoch``, ``loss``, ``train_accuracy`` (noisy forward passes), ``val_accuracy``.
    """
    if training.qat:
        raise ValueError("training.qat must be False for hardware-aware training (the device model is used)")
    _validate.integer_at_least("n_calibration", n_calibration, 1)
    _validate.integer_at_least("refit_every", refit_every, 1)
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim != 2 or not np.all(np.isfinite(x)) or y.shape != (x.shape[0],):
        raise ValueError(f"x must be finite (n, n_in) and y (n,), got {x.shape} and {y.shape}")
    rng = np.random.default_rng(training.seed)
    model = init.copy()
    x_cal = x[:: max(1, x.shape[0] // n_calibration)][:n_calibration].astype(np.float64)
    optimizer = _AdamW(model.weights + model.biases, [True] * len(model.weights) + [False] * len(model.biases),
                       training.weight_decay)
    steps_per_epoch = math.ceil(x.shape[0] / training.batch_size)
    total_steps = training.epochs * steps_per_epoch
    records, step, states = [], 0, None
    epochs = tqdm(range(1, training.epochs + 1), desc="train_hwa", disable=not progress)
    for epoch in epochs:
        order = rng.permutation(x.shape[0])
        loss_sum, correct = 0.0, 0
        for start in range(0, x.shape[0], training.batch_size):
            if step % refit_every == 0:
                states = _calibrate(model, x_cal, config, states if step else None)
            batch = order[start : start + training.batch_size]
            loss, weight_grads, bias_grads, logits = _step(model, states, x[batch].astype(np.float64), y[batch],
                                                           config, rng)
            optimizer.step(weight_grads + bias_grads, _cosine_learning_rate(training, step, total_steps))
            step += 1
            loss_sum += loss * len(batch)
            correct += int(np.sum(logits.argmax(axis=1) == y[batch]))
        val = math.nan if x_val is None else hwa_accuracy(model, x_val, y_val, config, x_cal)
        records.append({"epoch": epoch, "loss": loss_sum / x.shape[0], "train_accuracy": correct / x.shape[0],
                        "val_accuracy": val})
        epochs.set_postfix(loss=f"{records[-1]['loss']:.4f}", val=f"{val:.4f}")
    model.trained_for = "quantized"
    return model, pd.DataFrame.from_records(records)
