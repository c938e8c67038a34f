"""Affine weight <-> conductance mapping onto a cell's actual level set.

Every weight level is the affine image of a device level, ``w_q = a L_q + b`` (``a`` weight
units per siemens, ``b`` weight units), one ``(a, b)`` per output column or per layer.

Offset mapping (one cell per weight)
    ``L_q = G_q``, the cell's conductances. Retrieval:
    ``y_j = (a_j / s) I_j + b_j sum_i x_i``; with the common-mode subtraction of
    :mod:`imclib.layer` the ``b_j sum_i x_i`` term is removed in the analog domain.
Differential mapping (two cells per weight)
    ``w = a (G+ - G-) + b``: the level set is ``L = {+-(G_q - G_min)}`` (the unused cell of a
    pair sits at ``G_min``). Retrieval: ``y_j = (a_j / s) (I+_j - I-_j) + b_j sum_i x_i``.

Two ways to choose ``(a, b)`` (``CrossbarConfig.weight_map``):

``calibrated`` (default)
    The affine map minimising the weight mean squared error over the device's actual
    levels, ``min_{a, b} sum_i min_q (w_i - a L_q - b)^2``, asymmetric range allowed. It is
    found by a Lloyd-Max alternation (assign every weight to its nearest level, refit
    ``(a, b)`` by least squares), vectorized over columns and started from several ranges
    (percentile ranges of the column, both orientations of ``a``); the best start per
    column wins. Then bias correction: ``b`` moves so that the mean of each quantized
    column equals the mean of the float one. Analog cells (``quantize=False``) take the
    tight asymmetric range ``[min w, max w] -> [L_min, L_max]`` (no clipping, exact).
``naive``
    The symmetric ``[-w_max, w_max]`` range with ``w_max`` the ``weight_percentile`` of
    ``|w|``: offset ``a = 2 w_max / (G_max - G_min)``, ``b = -w_max - a G_min``;
    differential ``a = w_max / (G_max - G_min)``, ``b = 0``. On uneven binary-stack levels
    this rounds most weights to one level.

Weights beyond the representable range ``[a L_min + b, a L_max + b]`` clip; the clipped
fraction is reported in :class:`WeightMap`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _memo, _validate, kernels
from .config import CrossbarConfig

WEIGHT_LIMIT = 1e100
"""Largest accepted ``|w|`` (weight units). The calibrated fit sums squared weight errors
(they overflow float64 beyond about 1e150), the gain ``a = w / (G_max - G_min)`` exceeds
``|w|`` by up to the inverse of the narrowest level window (1e18 per siemens) and the decode
divides it by ``s = v_read / x_max``; 1e100 leaves room for all three. Trained weights are
of order 1. Tiny weights need no bound: on the ideal config even subnormal weights (below
2.2e-308) give ``x @ W`` correctly rounded."""
_LLOYD_ITERATIONS = 30
_START_PERCENTILES = (0.0, 1.0, 5.0)
"""Starting ranges of the Lloyd-Max fit: ``[P_p, P_(100-p)]`` of each column's weights."""


@dataclass(frozen=True)
class WeightMap:
    """The nominal map used to program and to decode one layer.

    Attributes
    ----------
    gain : ndarray, shape (n_out,)
        ``a`` per output column (weight units per siemens); may be negative.
    offset : ndarray, shape (n_out,)
        ``b`` per output column (weight units).
    levels : ndarray, shape (N,)
        Conductances the decode assumes for the cell's states (siemens).
    clipped_fraction : float
        Fraction of weights outside the representable range (clipped).
    """

    gain: np.ndarray
    offset: np.ndarray
    levels: np.ndarray
    clipped_fraction: float

    @property
    def zero_conductance(self) -> np.ndarray:
        """Conductance that encodes ``w = 0`` per column, ``G0 = -b / a`` (siemens)."""
        return -self.offset / self.gain


def assumed_levels(config: CrossbarConfig) -> np.ndarray:
    """Level conductances the decode assumes (siemens): the nominal zero-bias levels, or a
    uniform grid between their extremes when ``decode_as_uniform`` is on."""
    levels = config.cell.conductances()
    if config.nonideal.decode_as_uniform:
        return np.linspace(levels[0], levels[-1], levels.size)
    return levels


def weight_range(weights: np.ndarray, scale: str, percentile: float) -> np.ndarray:
    """``w_max`` per output column, shape (n_out,): the ``percentile`` of ``|w|`` over the
    column (``scale="column"``) or the layer (``scale="layer"``). All-zero ranges become 1
    so that an all-zero column maps without dividing by zero."""
    magnitude = np.abs(weights)
    statistic = np.max if percentile == 100 else lambda a, axis=None: np.percentile(a, percentile, axis=axis)
    if scale == "column":
        w_max = statistic(magnitude, axis=0)
    else:
        w_max = np.full(weights.shape[1], statistic(magnitude))
    return np.where(w_max > 0, w_max, 1.0)


def nearest_level(conductance: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Index of the nearest of the ascending ``levels`` for each target conductance: the
    number of midpoints ``(L_q + L_(q+1)) / 2`` below it (a tie goes to the lower level;
    :func:`imclib.kernels.count_below`, ``np.searchsorted`` of the midpoints)."""
    return kernels.count_below(conductance, _midpoints(levels))


def _midpoints(levels: np.ndarray) -> np.ndarray:
    """``(L_q + L_(q+1)) / 2`` of ascending ``levels``: the edges between nearest levels."""
    return 0.5 * (levels[1:] + levels[:-1])


def level_set(levels: np.ndarray, mapping: str) -> np.ndarray:
    """Ascending values ``L`` the weight levels are the affine image of (siemens): the cell
    levels (offset) or the signed pair differences ``+-(G_q - G_min)`` (differential)."""
    if mapping == "offset":
        return levels
    steps = levels - levels[0]
    return np.concatenate([-steps[:0:-1], steps])


def _nearest(weights: np.ndarray, gain: np.ndarray, offset: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(q, values[q])``: the index ``q`` into ``values`` of the nearest weight level ``a L_q + b``
    for every weight; ``weights`` (n, C), ``gain``/``offset`` (C,). The map is monotonic, so
    this is the nearest level to ``(w - b) / a`` in ``L`` (:func:`nearest_level`, without
    storing the quotients)."""
    return kernels.count_below_affine(weights, offset, gain, _midpoints(values), values)


def _least_squares(w_mean: np.ndarray, w_centred: np.ndarray, x: np.ndarray, gain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per column ``(a, b) = argmin sum_i (w_i - a x_i - b)^2`` of weights with column means
    ``w_mean`` and ``w_centred = w - w_mean``; columns whose ``x`` or ``w`` is constant (no
    slope to fit) keep their gain ``a`` and refit ``b`` only."""
    x_mean = x.mean(axis=0)
    x_centred = x - x_mean
    variance = np.einsum("ij,ij->j", x_centred, x_centred)
    covariance = np.einsum("ij,ij->j", x_centred, w_centred)
    safe = (variance > 1e-30 * np.maximum(np.einsum("ij,ij->j", x, x), 1e-300)) & (covariance != 0)
    new_gain = np.where(safe, covariance / np.where(safe, variance, 1.0), gain)
    return new_gain, w_mean - new_gain * x_mean


def fit_affine_map(weights: np.ndarray, values: np.ndarray,
                   iterations: int = _LLOYD_ITERATIONS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MSE-optimal affine map of each column of ``weights`` onto the level set ``values``.

    Minimises ``sum_i (w_i - a L_{q_i} - b)^2`` over ``(a, b)`` and the assignment ``q`` by
    Lloyd-Max alternation (nearest level, then least squares), from the ranges
    ``[P_p(w), P_(100-p)(w)]`` and ``[-P_(100-p)(|w|), P_(100-p)(|w|)]`` mapped onto
    ``[L_min, L_max]`` for p in ``_START_PERCENTILES`` and both signs of ``a``; keeps the
    start with the least error per column, then corrects the bias:
    ``b += mean_i(w_i - a L_{q_i} - b)`` with the assignment held. Both steps of the
    alternation and the bias correction never raise the error, and the symmetric start at
    p = 0 is the naive map, so the result is never worse than the naive map. Stops early once no
    assignment changes.

    Parameters
    ----------
    weights : ndarray, shape (n, C)
        One column per independent map.
    values : ndarray, shape (N,)
        Ascending level set (siemens).

    Returns
    -------
    gain, offset : ndarray, shape (C,)
        ``a`` and ``b``.
    assignment : ndarray of int, shape (n, C)
        Index into ``values`` of every weight's level.
    """
    span = values[-1] - values[0]
    best_error = np.full(weights.shape[1], np.inf)
    best_gain, best_offset = np.zeros(weights.shape[1]), np.zeros(weights.shape[1])
    starts = []
    for p in _START_PERCENTILES:
        starts.append(np.percentile(weights, [p, 100.0 - p], axis=0))
        magnitude = np.percentile(np.abs(weights), 100.0 - p, axis=0)
        starts.append(np.stack([-magnitude, magnitude]))  # symmetric, the naive map at p = 0
    for low, high in starts:
        high = np.where(high > low, high, low + 1.0)
        for sign in (1.0, -1.0):
            gain = sign * (high - low) / span
            offset = np.where(sign > 0, low, high) - gain * values[0]
            gain, offset, assignment = refine_affine_map(weights, values, gain, offset, iterations)
            error = np.mean((weights - gain * values[assignment] - offset) ** 2, axis=0)
            better = error < best_error
            best_error = np.where(better, error, best_error)
            best_gain, best_offset = np.where(better, gain, best_gain), np.where(better, offset, best_offset)
    assignment, _ = _nearest(weights, best_gain, best_offset, values)
    best_offset = best_offset + np.mean(weights - best_gain * values[assignment] - best_offset, axis=0)
    return best_gain, best_offset, assignment


def refine_affine_map(weights: np.ndarray, values: np.ndarray, gain: np.ndarray, offset: np.ndarray,
                      iterations: int = _LLOYD_ITERATIONS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lloyd-Max alternation from ``(gain, offset)`` (shape (C,)): assign every weight of
    ``weights`` (n, C) to its nearest level ``a L_q + b``, refit ``(a, b)`` by least
    squares, repeat until no assignment changes or ``iterations`` refits.
    Returns ``(gain, offset, assignment)``, the assignment nearest under the final map."""
    assignment, level = _nearest(weights, gain, offset, values)
    w_mean = weights.mean(axis=0)
    w_centred = weights - w_mean
    for _ in range(iterations):
        gain, offset = _least_squares(w_mean, w_centred, level, gain)
        previous, (assignment, level) = assignment, _nearest(weights, gain, offset, values)
        if np.array_equal(previous, assignment):
            break
    return gain, offset, assignment


def _calibrated(weights: np.ndarray, values: np.ndarray, config: CrossbarConfig):
    """``(gain, offset, assignment or None)`` of the calibrated map, per output column."""
    columns = weights if config.scale == "column" else weights.reshape(-1, 1)
    if config.quantize:
        gain, offset, assignment = fit_affine_map(columns, values)
        assignment = assignment.reshape(weights.shape)
    else:
        low, high = columns.min(axis=0), columns.max(axis=0)
        high = np.where(high > low, high, low + 1.0)
        gain = (high - low) / (values[-1] - values[0])
        offset, assignment = low - gain * values[0], None
    if config.scale == "layer":
        gain, offset = np.full(weights.shape[1], gain[0]), np.full(weights.shape[1], offset[0])
    return gain, offset, assignment


def _naive(weights: np.ndarray, levels: np.ndarray, config: CrossbarConfig) -> tuple[np.ndarray, np.ndarray]:
    """``(gain, offset)`` of the symmetric max-|w| (or percentile) map."""
    w_max = weight_range(weights, config.scale, config.weight_percentile)
    if config.mapping == "offset":
        gain = 2.0 * w_max / (levels[-1] - levels[0])
        return gain, -w_max - gain * levels[0]
    return w_max / (levels[-1] - levels[0]), np.zeros_like(w_max)


_MAPS = _memo.Recent(128 * 2**20, lambda result: result[0].nbytes)
"""Recent maps kept by :func:`map_weights`, up to 128 MiB of targets (about 80 maps of a
784 x 256 layer): a device-seed loop programs the same weights many times, and the
calibrated fit (a Lloyd-Max alternation) costs about a second per layer; notebook 05 maps
219 (layer, cell, scheme) pairs in 343 calls."""


def map_weights(weights: np.ndarray, config: CrossbarConfig) -> tuple[np.ndarray, WeightMap]:
    """Target conductances (siemens) for every weight, and the nominal map (memoised: the
    most recent results (:data:`_MAPS`), keyed by a digest of the weights and the config fields
    the map depends on, are returned read-only).

    Parameters
    ----------
    weights : ndarray, shape (n_in, n_out)
        Finite weights, ``|w| <=`` :data:`WEIGHT_LIMIT`.
    config : CrossbarConfig

    Returns
    -------
    targets : ndarray
        Shape (n_in, n_out) for the offset mapping, (n_in, n_out, 2) (``G+``, ``G-``) for
        the differential one. With ``config.quantize`` the entries are level indices
        (int); otherwise conductances in ``[G_min, G_max]``.
    weight_map : WeightMap
    """
    weights = _validate.finite_array("weights", weights, 2)
    _validate.magnitude_at_most("weights", weights, WEIGHT_LIMIT,
                                "the weight map's squared errors and gains must stay finite")
    key = (_memo.digest(weights), weights.shape, config.cell, config.quantize, config.mapping, config.scale,
           config.weight_map, config.weight_percentile, config.nonideal.decode_as_uniform)
    return _MAPS.get(key, lambda: _frozen(_map_weights(weights, config)))


def _frozen(result: tuple[np.ndarray, WeightMap]) -> tuple[np.ndarray, WeightMap]:
    """``result`` with every array read-only, so a memoised map cannot be changed in place."""
    targets, weight_map = result
    for array in (targets, weight_map.gain, weight_map.offset, weight_map.levels):
        array.setflags(write=False)
    return targets, weight_map


def _map_weights(weights: np.ndarray, config: CrossbarConfig) -> tuple[np.ndarray, WeightMap]:
    """:func:`map_weights` without the memo."""
    levels = assumed_levels(config)
    values = level_set(levels, config.mapping)
    assignment = None
    if config.weight_map == "calibrated":
        gain, offset, assignment = _calibrated(weights, values, config)
    else:
        gain, offset = _naive(weights, levels, config)
    image = np.stack([gain * values[0] + offset, gain * values[-1] + offset])
    slack = 1e-12 * np.abs(image).max(axis=0)  # rounding of the map itself is no clipping
    beyond = (weights < image.min(axis=0) - slack) | (weights > image.max(axis=0) + slack)
    clipped_fraction = float(np.mean(beyond))
    if assignment is None:
        position = np.clip((weights - offset) / gain, values[0], values[-1])
        assignment = nearest_level(position, values) if config.quantize else position
    weight_map = WeightMap(gain, offset, levels, clipped_fraction)
    if config.mapping == "offset":
        return assignment, weight_map
    return _pair_targets(assignment, levels, config.quantize), weight_map


def _pair_targets(position: np.ndarray, levels: np.ndarray, quantized: bool) -> np.ndarray:
    """Differential pair ``(G+, G-)`` for every weight from its place in the signed level
    set: an index into ``+-(G_q - G_min)`` (quantized) or the signed difference itself."""
    if quantized:
        signed = position - (levels.size - 1)  # q >= 0 on G+, q < 0 on G-
        return np.stack([np.maximum(signed, 0), np.maximum(-signed, 0)], axis=-1)
    return levels[0] + np.stack([np.maximum(position, 0), np.maximum(-position, 0)], axis=-1)


def decode_targets(targets: np.ndarray, weight_map: WeightMap, quantized: bool) -> np.ndarray:
    """Weights the nominal hardware represents: ``a G + b`` or ``a (G+ - G-) + b``."""
    conductance = weight_map.levels[targets] if quantized else targets
    if conductance.ndim == 3:
        return weight_map.gain * (conductance[..., 0] - conductance[..., 1]) + weight_map.offset
    return weight_map.gain * conductance + weight_map.offset


def quantize_weights(weights: np.ndarray, config: CrossbarConfig) -> np.ndarray:
    """The weights a nominal, noise-free array holds after mapping (what quantization
    alone makes of ``weights``); used for quantization-aware training."""
    targets, weight_map = map_weights(weights, config)
    return decode_targets(targets, weight_map, config.quantize)
