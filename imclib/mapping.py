"""Affine weight <-> conductance mapping onto a cell's actual level set.

Offset mapping (default, one cell per weight):
    ``w = a G + b`` with ``a = 2 w_max / (G_max - G_min)`` (weight units per siemens) and
    ``b = -w_max - a G_min``, so ``[-w_max, w_max]`` spans ``[G_min, G_max]``. The weight
    levels are the affine image ``w_q = a G_q + b`` of the device's levels (uniform or not);
    quantizing picks the nearest one. Retrieval: ``y_j = (a_j / s) I_j + b_j sum_i x_i``.
Differential mapping (two cells per weight):
    ``w = a (G+ - G-)`` with ``a = w_max / (G_max - G_min)``; the unused cell of a pair sits
    at ``G_min``. Retrieval: ``y_j = (a_j / s) (I+_j - I-_j)``.

``w_max`` is a percentile of ``|w|`` per output column or per layer; weights beyond it are
clipped and the clipped fraction is reported in :class:`WeightMap`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _validate
from .config import CrossbarConfig


@dataclass(frozen=True)
class WeightMap:
    """The nominal map used to program and to decode one layer.

    Attributes
    ----------
    gain : ndarray, shape (n_out,)
        ``a`` per output column (weight units per siemens).
    offset : ndarray, shape (n_out,)
        ``b`` per output column (weight units); zero for the differential mapping.
    levels : ndarray, shape (N,)
        Conductances the decode assumes for the cell's states (siemens).
    clipped_fraction : float
        Fraction of weights beyond ``w_max`` that were clipped.
    """

    gain: np.ndarray
    offset: np.ndarray
    levels: np.ndarray
    clipped_fraction: float


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
    """Index of the nearest of the ascending ``levels`` for each target conductance."""
    midpoints = 0.5 * (levels[1:] + levels[:-1])
    return np.searchsorted(midpoints, conductance)


def map_weights(weights: np.ndarray, config: CrossbarConfig) -> tuple[np.ndarray, WeightMap]:
    """Target conductances (siemens) for every weight, and the nominal map.

    Parameters
    ----------
    weights : ndarray, shape (n_in, n_out)
        Finite weights.
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
    levels = assumed_levels(config)
    g_min, g_max = levels[0], levels[-1]
    w_max = weight_range(weights, config.scale, config.weight_percentile)
    clipped = np.clip(weights, -w_max, w_max)
    clipped_fraction = float(np.mean(clipped != weights))
    if config.mapping == "offset":
        gain = 2.0 * w_max / (g_max - g_min)
        offset = -w_max - gain * g_min
        targets = (clipped - offset) / gain
    else:
        gain = w_max / (g_max - g_min)
        offset = np.zeros_like(w_max)
        targets = g_min + np.stack([np.maximum(clipped, 0), np.maximum(-clipped, 0)], axis=-1) / gain[:, None]
    targets = np.clip(targets, g_min, g_max)
    if config.quantize:
        targets = nearest_level(targets, levels)
    return targets, WeightMap(gain, offset, levels, clipped_fraction)


def decode_targets(targets: np.ndarray, weight_map: WeightMap, quantized: bool) -> np.ndarray:
    """Weights the nominal hardware represents: ``a G + b`` or ``a (G+ - G-)``."""
    conductance = weight_map.levels[targets] if quantized else targets
    if conductance.ndim == 3:
        return weight_map.gain * (conductance[..., 0] - conductance[..., 1])
    return weight_map.gain * conductance + weight_map.offset


def quantize_weights(weights: np.ndarray, config: CrossbarConfig) -> np.ndarray:
    """The weights a nominal, noise-free array holds after mapping (what quantization
    alone makes of ``weights``); used for quantization-aware training."""
    targets, weight_map = map_weights(weights, config)
    return decode_targets(targets, weight_map, config.quantize)
