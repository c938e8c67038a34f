"""A trained network (an MLP or a :class:`~imclib.sequential.Sequential` CNN) on tiled
crossbars: deploy every weight layer once, then infer.

Each layer's ``x @ W`` runs on its own tiled arrays, programmed and with converter ranges
calibrated by :func:`imclib.deploy.deploy_network`; biases, activations
(:data:`imclib.mlp.ACTIVATIONS`) and softmax stay digital. One device seed programs the whole network (static deviations), and read noise is redrawn
at every inference.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import pandas as pd

from . import _validate
from .config import CrossbarConfig
from .deploy import deploy_network
from .layer import ProgrammedLayer
from .mapping import assumed_levels, level_set, map_weights, quantize_weights, refine_affine_map
from .mlp import MLP
from .sequential import Sequential


def hardware_matmul(layers: list[ProgrammedLayer], rng) -> Callable:
    """A ``matmul(i, x, W)`` hook for :meth:`MLP.forward` and :meth:`Sequential.forward` that
    reads programmed layer ``i`` (:meth:`ProgrammedLayer.mvm`). The forward pass has checked
    the network's input, so the first layer's rows (that input, or copies of its entries:
    im2col, flattening, max pooling) are read without a second check
    (:meth:`ProgrammedLayer.read_checked`); the later layers' activations are checked."""
    rng = _validate.generator(rng)
    if not isinstance(layers, (list, tuple)) or not all(isinstance(layer, ProgrammedLayer) for layer in layers):
        raise ValueError(f"layers must be a list of ProgrammedLayer (deploy_network), got {type(layers).__name__}")

    def matmul(index: int, x: np.ndarray, weights: np.ndarray) -> np.ndarray:
        if index >= len(layers):
            raise ValueError(f"layers holds {len(layers)} programmed layers, the model has more (layer {index})")
        if weights.shape != (layers[index].n_in, layers[index].n_out):
            raise ValueError(
                f"layer {index} was programmed with shape {(layers[index].n_in, layers[index].n_out)}, "
                f"the model has {weights.shape}"
            )
        return layers[index].read_checked(x, rng) if index == 0 else layers[index].mvm(x, rng)

    return matmul


def _inputs(model, x) -> np.ndarray:
    """``x`` checked against the network's input width; a ValueError names a wrong ``model``."""
    if isinstance(model, Sequential):
        return model._check(x)
    if not isinstance(model, MLP):
        raise ValueError(f"model must be an MLP or a Sequential network, got {type(model).__name__}")
    return _validate.features("x", x, model.layer_sizes[0])


def hardware_logits(model: MLP | Sequential, x: np.ndarray, config: CrossbarConfig, seed: int, calibration,
                    column_calibration: bool | None = None, column_target: str | None = None) -> np.ndarray:
    """Logits of ``model`` on hardware deployed with device seed ``seed``.

    ``x``: finite inputs, shape (batch, n_in); ``seed``: a non-negative integer;
    ``calibration``: inputs the converter ranges and the column calibration are fitted on
    (training images, never the evaluated data: required, so that nothing is set on the
    data it is scored on); ``column_calibration`` and ``column_target``: as in
    :func:`imclib.deploy.deploy_network` (default: on unless ``weight_map="naive"``,
    fitted towards what the network was trained for, ``model.trained_for``).
    """
    x = _inputs(model, x)
    rng = np.random.default_rng(_validate.seed("seed", seed))
    layers, _ = deploy_network(model, config, calibration, rng, column_calibration=column_calibration,
                               column_target=column_target)
    return model.forward(x, matmul=hardware_matmul(layers, rng))


def hardware_accuracy(
    model: MLP | Sequential, x: np.ndarray, y: np.ndarray, config: CrossbarConfig, seeds: Iterable[int], calibration,
    column_calibration: bool | None = None, column_target: str | None = None
) -> pd.DataFrame:
    """Accuracy on hardware for each device seed: columns ``seed``, ``accuracy``.

    ``y``: one class label per row of ``x``, integers in ``[0, n_out)``; ``seeds``: a
    non-empty sequence of non-negative integers; ``calibration``, ``column_calibration``
    and ``column_target`` as in :func:`hardware_logits`.
    """
    x = _inputs(model, x)
    y = _validate.class_labels("y", y, x.shape[0], model.n_out if isinstance(model, Sequential) else model.layer_sizes[-1])
    if isinstance(seeds, (str, bytes)) or not isinstance(seeds, Iterable):
        raise ValueError(f"seeds must be a non-empty sequence of non-negative integer seeds, got {seeds!r}")
    seeds = [_validate.seed(f"seeds[{index}]", seed) for index, seed in enumerate(seeds)]
    if not seeds:
        raise ValueError("seeds must be a non-empty sequence of non-negative integer seeds, got none")
    rows = [
        {"seed": seed,
         "accuracy": float(np.mean(hardware_logits(model, x, config, seed, calibration,
                                                   column_calibration, column_target).argmax(1) == y))}
        for seed in seeds
    ]
    return pd.DataFrame(rows)


def device_quantizer(config: CrossbarConfig, refine_steps: int = 2) -> Callable[[int, np.ndarray], np.ndarray]:
    """``quantize(i, W)`` for quantization-aware training: the weights a nominal array of
    ``config`` represents, ``w_q = a L_q + b`` (:func:`imclib.mapping.quantize_weights`).

    With the calibrated map the first call per layer fits it in full
    (:func:`imclib.mapping.map_weights`); later calls refine the previous ``(a, b)`` by
    ``refine_steps`` Lloyd-Max steps and correct the bias (the weights move little between
    training steps), which costs a few passes over ``W`` instead of a fit from a dozen starts.
    """
    if config.weight_map != "calibrated" or not config.quantize:
        return lambda index, weights: quantize_weights(weights, config)
    values = level_set(assumed_levels(config), config.mapping)
    fitted: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def quantize(index: int, weights: np.ndarray) -> np.ndarray:
        columns = weights if config.scale == "column" else weights.reshape(-1, 1)
        if index not in fitted:
            _, weight_map = map_weights(weights, config)
            fitted[index] = (weight_map.gain[: columns.shape[1]], weight_map.offset[: columns.shape[1]])
        gain, offset, assignment = refine_affine_map(columns, values, *fitted[index], refine_steps)
        offset = offset + np.mean(columns - gain * values[assignment] - offset, axis=0)
        fitted[index] = (gain, offset)
        return (gain * values[assignment] + offset).reshape(weights.shape)

    return quantize
