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

4. calibrate every output column after programming (on by default; :func:`fit_columns`):
   read the calibration inputs through the programmed arrays and fit, by least squares,
   the column's gain, offset and input-sum coefficient of the hardware output against the
   target ``t`` of the same layer, ``y_hw_j = g_j t_j + o_j + c_j sum(x)``; every later
   read is corrected digitally, ``y_j = (y_hw_j - o_j - c_j sum(x)) / g_j``. The target is
   what the network was trained to compute (:func:`resolve_column_target`): ``t = x @ W``
   for a float-trained network (``"float"``: the fit also removes the affine part of the
   quantization error, which such a network never saw), ``t = x @ W_q`` for a network
   trained with its quantized weights in the loop (``"quantized"``: QAT, hardware-aware
   training; it learned ``W`` for ``W_q``, so the fit removes only the device's deviations
   from its design: miscalibrated levels, converter gains, the mean of the variation).
   ``W_q`` are the weights a nominal, noise-free array holds
   (:func:`imclib.mapping.quantize_weights`).

Layer ``i + 1`` is calibrated on the activations the programmed layers ``0 .. i`` produce
(hardware outputs, corrected, plus bias, then each layer's activation), as they would be
measured on the chip; the one read of the calibration inputs through layer ``i`` serves
both its column fit and layer ``i + 1``'s inputs. The ranges and the column correction are
stored with each :class:`~imclib.layer.ProgrammedLayer`, so every later read is a fixed
function of its own input row.

The column calibration is per output column (the digital sum over the row-block tiles of
that column), not per physical tile column: the read path digitizes and sums the tiles in
one pass and exposes only their sum. A gain error shared by the tiles of a column (a
wafer-level R_P or TMR shift, a converter gain) is removed exactly for linear cells
without an ADC; tile-to-tile differences within a column are corrected only in their
weighted mean, and a level error that is not affine in the weight (a TMR error of a
multi-level stack, bias dependence) only in its best affine fit. The ``c_j sum(x)`` term
is the offset of a column read with an offset map: a gain error of the cells scales the
common mode ``b_j sum(x)`` the decode adds back, so the column's offset is proportional to
the input sum, not a constant. The naive deployment (``weight_map="naive"``) is by
definition without this calibration (``deploy_network(column_calibration=None)``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import _validate, kernels
from .config import CrossbarConfig
from .layer import ProgrammedLayer, _replace, program_layer, with_ranges
from .mapping import quantize_weights
from .mlp import MLP, TRAINED_FOR
from .sequential import Sequential

ADC_SAMPLES = 256
"""Calibration inputs whose partial currents set the ADC full scale (evenly spaced rows)."""


def _subsample(x: np.ndarray, n: int) -> np.ndarray:
    """At most ``n`` evenly spaced rows of ``x`` (deterministic)."""
    return x[:: max(1, -(-x.shape[0] // n))][:n]


def input_full_scale(x: np.ndarray, percentile: float) -> float:
    """DAC full scale ``x_max`` (input units): the ``percentile`` of ``|x|`` over every
    entry of the calibration inputs, identical to ``np.percentile`` (linear interpolation,
    :func:`_interpolate`); 1 if that is 0.

    It needs the ``m``-th and ``(m - 1)``-th largest ``|x|`` only: they are selected among the
    entries at least ``t``, the value of a strided sample above which about ``2 m`` entries
    are expected, when at least ``m`` entries are (else among all entries)."""
    if not x.size:
        return 1.0
    magnitudes = np.abs(x).ravel()
    lo, gamma = _percentile_order(magnitudes.size, percentile)
    m = magnitudes.size - lo
    candidates = magnitudes
    if 8 * m < magnitudes.size:
        sample = magnitudes[:: max(1, magnitudes.size // 65536)]
        rank = sample.size - 1 - min(sample.size - 1, 2 * m * sample.size // magnitudes.size)
        above = magnitudes[magnitudes >= np.partition(sample, rank)[rank]]
        if above.size >= m:
            candidates = above
    ranks = [candidates.size - m, min(candidates.size - m + 1, candidates.size - 1)]
    x_max = float(_interpolate(*np.partition(candidates, ranks)[ranks], gamma))
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
                adc_samples: int) -> tuple[ProgrammedLayer, np.ndarray | kernels.Largest]:
    """:func:`calibrate` on checked inputs, with the noise-free ``I'`` of the subsampled
    inputs through the calibrated DAC (the ADC range does not change them), for
    :func:`_report`: with a signal-calibrated ADC, only the largest magnitudes per column
    that the percentile needs (:meth:`~imclib.layer.ProgrammedLayer.signal_largest`, the
    currents never stored; they count the saturated ones above the range it sets), else
    the currents (batch, blocks, physical columns)."""
    config = layer.config
    x_max = input_full_scale(x, config.input_percentile) if input_range is None else input_range
    layer = with_ranges(layer, x_max, bool(np.any(x < 0)))
    _, voltages, _ = layer.row_voltages(_subsample(x, adc_samples))
    if config.adc_calibration != "signal" or config.periphery.adc_range is not None:
        return layer, layer.signal_currents(voltages, layer.row_blocks)
    lo, gamma = _percentile_order(voltages.shape[0] * layer.row_blocks, config.adc_percentile)
    largest = layer.signal_largest(voltages, voltages.shape[0] * layer.row_blocks - lo)
    full_scale = _interpolate(*largest.order_statistics(), gamma)
    return with_ranges(layer, x_max, layer.input_signed, np.where(full_scale > 0, full_scale, layer.adc_range)), largest


def _percentile_order(n: int, q: float) -> tuple[int, float]:
    """``(lo, g)`` of ``np.percentile`` (linear interpolation) of ``n`` values at ``q``:
    ``h = (q / 100) (n - 1)``, ``lo = floor(h)``, ``g = h - lo`` (0 at the top)."""
    virtual = np.true_divide(q, 100) * (n - 1)
    lo = min(int(np.floor(virtual)), n - 1)
    return lo, (virtual - lo if lo < n - 1 else 0.0)


def _interpolate(x: np.ndarray, y: np.ndarray, gamma: float) -> np.ndarray:
    """numpy's percentile between the ``lo``-th and ``(lo + 1)``-th smallest values ``x`` and
    ``y``: ``x + g (y - x)`` for ``g < 0.5``, else ``y - (1 - g)(y - x)``."""
    diff = y - x
    return y - diff * (1 - gamma) if gamma >= 0.5 else x + diff * gamma


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
    lo, gamma = _percentile_order(n, q)
    return _interpolate(*kernels.largest(values, n - lo), gamma)


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


def _report(layer: ProgrammedLayer, x: np.ndarray, currents: np.ndarray | kernels.Largest) -> dict:
    """:func:`range_report` with the inputs' noise-free ``I'`` (batch, blocks, physical
    columns) already computed, or their largest magnitudes per column (:func:`_calibrated`)."""
    saturated = currents.count_above(layer.adc_range) if isinstance(currents, kernels.Largest) else \
        kernels.count_above(currents, layer.adc_range)
    return {
        "input_range": layer.input_range,
        "input_signed": layer.input_signed,
        "input_clipped": layer.clipped_fraction(x),
        "adc_range_uA": float(np.median(layer.adc_range) * 1e6),
        "adc_saturated": saturated / currents.size,
    }


def column_correction(y: np.ndarray, target: np.ndarray, input_sum: np.ndarray) -> np.ndarray:
    """Least-squares per-column fit ``y_j = g_j t_j + o_j + c_j S`` of hardware outputs ``y``
    (batch, n_out, weight units) against the noise-free targets ``t`` (same shape) and the
    digital input sum ``S`` (batch,): ``(g, o, c)`` stacked as (3, n_out).

    Solved on centered values (``t'``, ``S'``, ``y'`` minus their means over the batch):
    ``[[Σt'^2, Σt'S'], [Σt'S', ΣS'^2]] (g, c) = (Σt'y', ΣS'y')``, ``o = ȳ - g t̄ - c S̄``;
    ``c = 0`` when ``S`` does not vary (then ``g = Σt'y' / Σt'^2``). The regressors are the
    noise-free targets and the digital sum, so read noise in ``y`` leaves the fit unbiased.
    A column whose target does not vary, or whose fitted gain is not positive and finite,
    keeps the identity ``(1, 0, 0)``.
    """
    t = target - target.mean(axis=0)
    s = input_sum - input_sum.mean()
    dy = y - y.mean(axis=0)
    a11, a12, a22 = np.einsum("bj,bj->j", t, t), s @ t, float(s @ s)
    b1, b2 = np.einsum("bj,bj->j", t, dy), s @ dy
    det = a11 * a22 - a12**2
    with np.errstate(divide="ignore", invalid="ignore"):
        joint = det > 1e-12 * a11 * a22
        gain = np.where(joint, (a22 * b1 - a12 * b2) / det, b1 / a11)
        per_input = np.where(joint, (a11 * b2 - a12 * b1) / det, 0.0)
    offset = y.mean(axis=0) - gain * target.mean(axis=0) - per_input * input_sum.mean()
    usable = (a11 > 0) & np.isfinite(gain) & (gain > 0) & np.isfinite(offset) & np.isfinite(per_input)
    return np.where(usable, np.stack([gain, offset, per_input]), np.array([[1.0], [0.0], [0.0]]))


def _fit_columns(layer: ProgrammedLayer, x: np.ndarray, y: np.ndarray, weights: np.ndarray,
                 column_target: str) -> tuple[ProgrammedLayer, np.ndarray]:
    """``layer`` with the :func:`column_correction` of its uncorrected read ``y`` of ``x``
    against the target ``x @ W`` (``column_target="float"``) or ``x @ W_q``
    (``"quantized"``, :func:`imclib.mapping.quantize_weights` of ``weights``), and that
    read corrected."""
    applied = layer.applied_inputs(x)
    target = x @ (weights if column_target == "float" else quantize_weights(weights, layer.config))
    layer = _replace(layer, correction=column_correction(y, target, applied.sum(axis=1)))
    return layer, layer.corrected(y.copy(), applied)


def fit_columns(layer: ProgrammedLayer, x, weights, rng=None, column_target: str = "float") -> ProgrammedLayer:
    """``layer`` (programmed, converter ranges set) calibrated per output column on the
    inputs ``x`` (batch, n_in): reads ``x`` through the arrays (read noise from ``rng``)
    and fits :func:`column_correction` of the read against the target ``x @ W``
    (``column_target="float"``, default) or ``x @ W_q`` (``"quantized"``; ``weights`` the
    layer's float matrix, (n_in, n_out); ``W_q`` what a nominal array holds of it,
    :func:`imclib.mapping.quantize_weights`): what the matrix was trained to compute
    (:data:`imclib.mlp.TRAINED_FOR`). Every later
    :meth:`~imclib.layer.ProgrammedLayer.mvm` applies it.
    """
    x = _validate.finite_array("x", x, 2)
    weights = _validate.finite_array("weights", weights, 2)
    _validate.choice("column_target", column_target, TRAINED_FOR)
    if x.shape[1] != layer.n_in or weights.shape != (layer.n_in, layer.n_out):
        raise ValueError(f"x must have shape (batch, {layer.n_in}) and weights ({layer.n_in}, {layer.n_out}), "
                         f"got {x.shape} and {weights.shape}")
    if x.shape[0] < 3:
        raise ValueError(f"x must hold at least 3 calibration inputs (three coefficients per column), got {x.shape[0]}")
    uncorrected = _replace(layer, correction=None)
    return _fit_columns(uncorrected, x, uncorrected.mvm(x, _validate.generator(rng)), weights, column_target)[0]


def resolve_column_calibration(config: CrossbarConfig, column_calibration: bool | None, n_inputs: int) -> bool:
    """Whether a deployment fits the column calibration: ``column_calibration`` if given,
    else on with the calibrated weight map and off with ``weight_map="naive"``; it needs at
    least 3 calibration inputs (three coefficients per column)."""
    if column_calibration is None:
        column_calibration = config.weight_map == "calibrated"
    _validate.boolean("column_calibration", column_calibration)
    if column_calibration and n_inputs < 3:
        raise ValueError(f"calibration must hold at least 3 inputs for the column calibration, got {n_inputs}")
    return column_calibration


def resolve_column_target(model, column_target: str | None) -> str:
    """What a deployment's column calibration fits towards: ``column_target`` if given
    (``"float"``: ``x @ W``; ``"quantized"``: ``x @ W_q``), else what ``model`` was trained
    for (its ``trained_for``, :data:`imclib.mlp.TRAINED_FOR`: ``"quantized"`` after QAT or
    hardware-aware training, ``"float"`` otherwise)."""
    column_target = model.trained_for if column_target is None else column_target
    _validate.choice("column_target", column_target, TRAINED_FOR)
    return column_target


def uncorrected_columns(layer: ProgrammedLayer) -> int:
    """Output columns of ``layer`` the column calibration left at the identity (0 without it)."""
    if layer.correction is None:
        return 0
    return int(np.sum(np.all(layer.correction == np.array([[1.0], [0.0], [0.0]]), axis=0)))


def deploy_network(model, config: CrossbarConfig, calibration, rng=None,
                   input_ranges=None, column_calibration: bool | None = None, column_target: str | None = None
                   ) -> tuple[list[ProgrammedLayer], pd.DataFrame]:
    """Program every layer of ``model`` and calibrate its converter ranges.

    Parameters
    ----------
    model : MLP or Sequential
        A :class:`imclib.sequential.Sequential` network (a CNN; no ``input_ranges``): every
        weight layer as for an MLP, a conv layer on its im2col rows (:func:`_deploy_sequential`).
    config : CrossbarConfig
    calibration : array_like, shape (batch, n_in)
        Calibration inputs (training images, never the test set).
    rng : numpy.random.Generator or int, optional
        Device seed: static deviations are drawn layer by layer; the calibration reads use
        a generator spawned from it.
    input_ranges : sequence of float, optional
        Explicit DAC full scale per layer (input units) instead of the percentile.
    column_calibration : bool, optional
        Fit every output column's gain, offset and input-sum coefficient after programming
        (:func:`fit_columns`, module docstring). Default: on with the calibrated weight map,
        off with ``weight_map="naive"`` (naive PTQ is by definition uncalibrated).
    column_target : {"float", "quantized"}, optional
        The column calibration's target, ``x @ W`` or ``x @ W_q`` (:func:`resolve_column_target`).
        Default: what the network was trained for, ``model.trained_for`` (``"quantized"``
        for QAT and hardware-aware training, ``"float"`` for a float-trained network).

    Returns
    -------
    layers : list of ProgrammedLayer
    report : pandas.DataFrame
        One row per layer: ``layer``, the columns of :func:`range_report` on the
        calibration inputs of that layer, and ``columns_uncorrected`` (output columns the
        column calibration left at the identity; 0 without it).
    """
    _validate.instance("config", config, CrossbarConfig)
    if isinstance(model, Sequential):
        if input_ranges is not None:
            raise ValueError("input_ranges is not supported for a Sequential network (its DAC ranges are calibrated)")
        return _deploy_sequential(model, config, calibration, rng, column_calibration, column_target)
    if not isinstance(model, MLP):
        raise ValueError(f"model must be an MLP or a Sequential network, got {type(model).__name__}")
    if input_ranges is not None:
        input_ranges = _validate.positive_sequence("input_ranges", input_ranges, len(model.weights), "layer")
    return _deploy_sequential(Sequential.from_mlp(model), config, calibration, rng, column_calibration, column_target,
                              input_ranges)


def _deploy_sequential(model: Sequential, config: CrossbarConfig, calibration, rng=None,
                      column_calibration: bool | None = None, column_target: str | None = None,
                      input_ranges: list[float] | None = None) -> tuple[list[ProgrammedLayer], pd.DataFrame]:
    """:func:`deploy_network` of a :class:`~imclib.sequential.Sequential` network, and of an
    MLP as :meth:`Sequential.from_mlp` (the same layers, the same order of draws).

    Weight layer ``i`` is programmed from ``rng`` (static deviations, layer by layer) and
    calibrated (:func:`calibrate`, each calibration pass once) on its input rows from the calibration
    inputs: the inputs themselves for a dense layer, their im2col rows for a conv2d layer,
    as the programmed layers before it produce them (read with a generator spawned from
    ``rng``, then the digital layers). Each layer is calibrated on all its rows at once, so
    they must fit in memory (1,000 MNIST images: 115 MB of im2col rows for a 5x5 kernel).

    The parameters are those of :func:`deploy_network` (a conv layer fits its column
    calibration on every output channel, over its im2col rows); ``input_ranges``, one DAC
    full scale per weight layer or None (calibrated), only come from an MLP.

    Returns
    -------
    layers : list of ProgrammedLayer
        One per weight layer, for :func:`imclib.network.hardware_matmul`.
    report : pandas.DataFrame
        One row per weight layer: ``layer``, :func:`range_report` and
        ``columns_uncorrected``.
    """
    x = model._check(calibration, "calibration")
    column_calibration = resolve_column_calibration(config, column_calibration, x.shape[0])
    column_target = resolve_column_target(model, column_target)
    rng = _validate.generator(rng)
    read_rng = rng.spawn(1)[0]
    layers, records = [], []

    def program(index: int, rows: np.ndarray, weights: np.ndarray) -> np.ndarray:
        layer, currents = _calibrated(program_layer(weights, config, rng), rows,
                                      None if input_ranges is None else input_ranges[index], ADC_SAMPLES)
        record = {"layer": index, **_report(layer, rows, currents)}
        last = len(layers) == len(model.weights) - 1
        y = layer.mvm(rows, read_rng) if column_calibration or not last else np.zeros((len(rows), layer.n_out))
        if column_calibration:
            layer, y = _fit_columns(layer, rows, y, weights, column_target)
        layers.append(layer)
        records.append({**record, "columns_uncorrected": uncorrected_columns(layer)})
        return y

    model._run(x, model.weights, program, False, whole=True)
    return layers, pd.DataFrame(records)
