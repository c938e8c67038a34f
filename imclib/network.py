"""A trained MLP on tiled crossbars: program every layer once, then infer.

Each layer's ``x @ W`` runs on its own tiled arrays (:func:`imclib.layer.program_layer`);
biases, ReLU and softmax stay digital. One device seed programs the whole network (static
deviations), and read noise is redrawn at every inference.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np
import pandas as pd

from . import _validate
from .config import CrossbarConfig
from .layer import ProgrammedLayer, program_layer
from .mapping import quantize_weights
from .mlp import MLP


def program_network(model: MLP, config: CrossbarConfig, rng) -> list[ProgrammedLayer]:
    """Program every layer of ``model`` with ``config``; draws from ``rng`` layer by layer."""
    rng = _validate.generator(rng)
    return [program_layer(weights, config, rng) for weights in model.weights]


def hardware_matmul(layers: list[ProgrammedLayer], rng) -> Callable:
    """A ``matmul(i, x, W)`` hook for :meth:`MLP.forward` that reads programmed layer ``i``."""
    rng = _validate.generator(rng)

    def matmul(index: int, x: np.ndarray, weights: np.ndarray) -> np.ndarray:
        if weights.shape != (layers[index].n_in, layers[index].n_out):
            raise ValueError(
                f"layer {index} was programmed with shape {(layers[index].n_in, layers[index].n_out)}, "
                f"the model has {weights.shape}"
            )
        return layers[index].mvm(x, rng)

    return matmul


def hardware_logits(model: MLP, x: np.ndarray, config: CrossbarConfig, seed: int) -> np.ndarray:
    """Logits of ``model`` on hardware programmed with device seed ``seed``."""
    rng = np.random.default_rng(seed)
    layers = program_network(model, config, rng)
    return model.forward(x, matmul=hardware_matmul(layers, rng))


def hardware_accuracy(
    model: MLP, x: np.ndarray, y: np.ndarray, config: CrossbarConfig, seeds: Iterable[int]
) -> pd.DataFrame:
    """Test accuracy on hardware for each device seed: columns ``seed``, ``accuracy``."""
    rows = [
        {"seed": seed, "accuracy": float(np.mean(hardware_logits(model, x, config, seed).argmax(1) == y))}
        for seed in seeds
    ]
    return pd.DataFrame(rows)


def device_quantizer(config: CrossbarConfig) -> Callable[[int, np.ndarray], np.ndarray]:
    """``quantize(i, W)`` for quantization-aware training: the weights a nominal array of
    ``config`` represents (:func:`imclib.mapping.quantize_weights`)."""
    return lambda index, weights: quantize_weights(weights, config)
