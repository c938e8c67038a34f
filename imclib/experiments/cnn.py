"""Study 09: a small convolutional network on tiled 4-state MTJ arrays (claim C8).

The network is :data:`imclib.sequential.SMALL_CNN` (two 5x5 conv layers of 8 and 16
channels with 2x2 max pooling, dense 64, dense 10; 20,424 weights) on MNIST images
(1 x 28 x 28, pixels in [0, 1]). Data and calibration are those of the MLP studies
(:mod:`imclib.experiments.mnist`): trained on the first 55,000 training images, validated
on the last 5,000, converter ranges calibrated on training images, the 10,000 test images
only report. Trained networks are cached by :func:`imclib.cache.cached_train` like the MLPs.
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from ..cache import cached_train
from ..mlp import TrainConfig
from ..sequential import SMALL_CNN, Sequential, train_sequential
from .mnist import SPLIT, split

INPUT_SHAPE = (1, 28, 28)
CNN_TRAINING = TrainConfig(hidden=(), epochs=6)
"""Float training of the CNN: the MLP's AdamW settings (batch 256, peak learning rate 6e-3,
weight decay 0.1, cosine decay to 0) for 6 epochs; ``hidden=()`` since the layers are
:data:`~imclib.sequential.SMALL_CNN`."""


def cnn_model(seed: int = 0, training: TrainConfig = CNN_TRAINING) -> tuple[Sequential, pd.DataFrame]:
    """The float CNN of training seed ``seed`` (cached): ``(model, history)``, trained on the
    training split minus the validation split (``val_accuracy`` on the validation split)."""
    training = dataclasses.replace(training, seed=seed)
    data = split()
    key = {"task": "mnist-cnn", "architecture": SMALL_CNN, "input_shape": INPUT_SHAPE, "training": training,
           "validation": SPLIT}
    return cached_train(key, lambda: train_sequential(data["x_fit"], data["y_fit"], training, SMALL_CNN, INPUT_SHAPE,
                                                      x_val=data["x_val"], y_val=data["y_val"], progress=False))
