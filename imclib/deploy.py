"""Deployment: from a float network to programmed arrays with calibrated converter ranges.

What a careful hardware designer does between training and inference, on training data
only:

1. map every layer's weights onto the cell's actual levels with the calibrated affine map
   (:mod:`imclib.mapping`, ``CrossbarConfig.weight_map``) and program the arrays (static
   deviations drawn per device seed, :func:`imclib.layer.program_layer`);
2. fix the DAC full scale of every layer: the ``input_percentile`` of ``|x|`` over the
   calibration inputs that reach it (or an explicit value); larger inputs clip, and the
   clipped fraction is reported;
3. fix the ADC full scale of every physical column to the signal that reaches it, after
   the common-mode subtraction (:mod:`imclib.layer`): the ``adc_percentile`` of the
   column's noise-free partial currents ``|I'|`` on the programmed (actual) arrays.

Layer ``i + 1`` is calibrated on the activations the programmed layers ``0 .. i`` produce
(hardware outputs, plus bias, then each layer's activation), as they would be measured on
the chip. The ranges are stored with each :class:`~imclib.layer.ProgrammedLayer`, so every
later read is a fixed function of its own input row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import _validate, kernels
from .config import CrossbarConfig
from .layer import ProgrammedLayer, program_layer, with_ranges
from .mlp import ACTIVATIONS, MLP

ADC_SAMPLES = 256
"""Calibration inputs whose partial currents set the ADC full scale (evenly spaced rows)."""


def _subsample(x: np.ndarray, n: int) -> np.ndarray:
    """At most ``n`` evenly spaced rows of ``x`` (deterministic)."""
    return x[:: max(1, -(-x.shape[0] // n))][:n]


def input_full_scale(x: np.ndarray, percentile: float) -> float:
    """DAC full scale ``x_max`` (input units): the ``percentile`` of ``|x|`` over every
    entry of the calibration inputs; 1 if that is 0."""
    x_max = float(np.percentile(np.abs(x), percentile)) if x.size else 0.0
    return x_max if x_max > 0 else 1.0


def calibrate(layer: ProgrammedLayer, x, input_range: float | None = None,
              adc_samples: int = ADC_SAMPLES) -> ProgrammedLayer:
    """``layer`` with converter ranges calibrated on the inputs ``x`` (batch, n_in).

    DAC: full scale ``input_range`` if given, else :func:`input_full_scale` at
    ``config.input_percentile``; bipolar when any calibration input is negative.
    ADC (``adc_calibration="signal"`` without an explicit ``periphery.adc_range``): the
    ``config.adc_percentile`` of ``|I'_bj|`` per physical column ``j`` over the row blocks
    ``b`` and up to ``adc_samples`` calibration inputs (noise-free currents of the actual
    arrays after the common-mode subtraction). Otherwise the ADC range of
    :func:`imclib.layer.with_ranges`.
    """
    x = _validate.finite_array("x", x, 2)
    if x.shape[1] != layer.n_in:
        raise ValueError(f"x must have shape (batch, {layer.n_in}), got {x.shape}")
    _validate.integer_at_least("adc_samples", adc_samples, 1)
    return _calibrated(layer, x, input_range, adc_samples)[0]


def _calibrated(layer: ProgrammedLayer, x: np.ndarray, input_range: float | None,
                adc_samples: int) -> tuple[ProgrammedLayer, np.ndarray]:
    """:func:`calibrate` on checked inputs, with the noise-free ``I'`` (batch, blocks,
    physical columns) of the subsampled inputs through the calibrated DAC (the ADC range
    does not change them)."""
    config = layer.config
    x_max = input_full_scale(x, config.input_percentile) if input_range is None else input_range
    layer = with_ranges(layer, x_max, bool(np.any(x < 0)))
    _, voltages, _ = layer.row_voltages(_subsample(x, adc_samples))
    currents = layer.signal_currents(voltages, layer.row_blocks)
    if config.adc_calibration != "signal" or config.periphery.adc_range is not None:
        return layer, currents
    in_memory_order = currents if currents.flags.c_contiguous else currents.transpose(1, 0, 2)
    full_scale = percentile_rows(in_memory_order, config.adc_percentile)
    return with_ranges(layer, x_max, layer.input_signed, np.where(full_scale > 0, full_scale, layer.adc_range)), currents


def percentile_rows(values: np.ndarray, q: float) -> np.ndarray:
    """``np.percentile(np.abs(values), q, axis=0)`` (linear interpolation) of ``values``
    (n, p), identical to it, from only the two order statistics it needs per column
    (:func:`imclib.kernels.largest`, no copy of ``values``). ``values`` may also be
    (a, b, p): the percentile over the first two axes.

    With ``h = (q / 100) (n - 1)``, ``lo = floor(h)``, ``g = h - lo`` and ``x, y`` the
    ``lo``-th and ``(lo + 1)``-th smallest values (from 0): ``x + g (y - x)`` for
    ``g < 0.5``, else ``y - (1 - g)(y - x)``, as numpy computes it.
    """
    values = values if values.ndim == 3 else values[None]
    n = values.shape[0] * values.shape[1]
    virtual = np.true_divide(q, 100) * (n - 1)
    lo = min(int(np.floor(virtual)), n - 1)
    gamma = virtual - lo if lo < n - 1 else 0.0
    x, y = kernels.largest(values, n - lo)
    diff = y - x
    return y - diff * (1 - gamma) if gamma >= 0.5 else x + diff * gamma


def partial_signal(layer: ProgrammedLayer, x: np.ndarray) -> np.ndarray:
    """Noise-free partial currents at the ADC inputs (amperes), shape (batch, row blocks,
    physical columns), for inputs ``x`` through the layer's DAC."""
    _, voltages, _ = layer.row_voltages(x)
    return np.array(layer.signal_currents(voltages, layer.row_blocks))


def range_report(layer: ProgrammedLayer, x: np.ndarray, adc_samples: int = ADC_SAMPLES) -> dict:
    """Converter ranges of ``layer`` and how the inputs ``x`` use them: ``input_range``,
    ``input_signed``, ``input_clipped`` (fraction of entries beyond the DAC full scale),
    ``adc_range_uA`` (median over physical columns, microamperes) and ``adc_saturated``
    (fraction of noise-free partial currents beyond the ADC full scale, on up to
    ``adc_samples`` inputs)."""
    return _report(layer, x, partial_signal(layer, _subsample(x, adc_samples)))


def _report(layer: ProgrammedLayer, x: np.ndarray, currents: np.ndarray) -> dict:
    """:func:`range_report` with the inputs' noise-free ``I'`` (batch, blocks, physical
    columns) already computed."""
    return {
        "input_range": layer.input_range,
        "input_signed": layer.input_signed,
        "input_clipped": layer.clipped_fraction(x),
        "adc_range_uA": float(np.median(layer.adc_range) * 1e6),
        "adc_saturated": kernels.count_above(currents, layer.adc_range) / currents.size,
    }


def deploy_network(model: MLP, config: CrossbarConfig, calibration, rng=None,
                   input_ranges=None) -> tuple[list[ProgrammedLayer], pd.DataFrame]:
    """Program every layer of ``model`` and calibrate its converter ranges.

    Parameters
    ----------
    model : MLP
    config : CrossbarConfig
    calibration : array_like, shape (batch, n_in)
        Calibration inputs (training images, never the test set).
    rng : numpy.random.Generator or int, optional
        Device seed: static deviations are drawn layer by layer; the calibration reads use
        a generator spawned from it.
    input_ranges : sequence of float, optional
        Explicit DAC full scale per layer (input units) instead of the percentile.

    Returns
    -------
    layers : list of ProgrammedLayer
    report : pandas.DataFrame
        One row per layer: ``layer`` and the columns of :func:`range_report` on the
        calibration inputs of that layer.
    """
    _validate.instance("model", model, MLP)
    _validate.instance("config", config, CrossbarConfig)
    x = _validate.features("calibration", calibration, model.layer_sizes[0])
    if input_ranges is not None:
        input_ranges = _validate.positive_sequence("input_ranges", input_ranges, len(model.weights), "layer")
    rng = _validate.generator(rng)
    read_rng = rng.spawn(1)[0]
    layers, records = [], []
    for index, (weights, bias) in enumerate(zip(model.weights, model.biases)):
        layer, currents = _calibrated(program_layer(weights, config, rng), x,
                                      None if input_ranges is None else input_ranges[index], ADC_SAMPLES)
        layers.append(layer)
        records.append({"layer": index, **_report(layer, x, currents)})
        if index < len(model.weights) - 1:
            x = ACTIVATIONS[model.activations[index]](layer.mvm(x, read_rng) + bias)
    return layers, pd.DataFrame(records)
