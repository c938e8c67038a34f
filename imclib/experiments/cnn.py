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

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .. import _validate, defaults
from ..cache import cached_train
from ..cells import CellLevels
from ..config import CrossbarConfig
from ..cost import Technology, cost_table
from ..mlp import TrainConfig
from ..network import hardware_matmul
from ..sequential import SMALL_CNN, Sequential, deploy_sequential, sequential_accuracy, train_sequential
from .mnist import CALIBRATION, SCHEMES, SPLIT, cached_table, calibration_inputs, scheme_config, split

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


NETWORKS = ("software", "PTQ naive", "PTQ expert")
"""Networks of the CNN study: the float CNN in floating point, and deployed with the naive
(max |w|) or the calibrated map (expert PTQ). Hardware-aware training
(:func:`imclib.hwa.train_hwa`) runs MLPs only, so the CNN has no HWA network yet."""
SOFTWARE_MIN, GAP_MAX, DEVICE_SD_MAX = 0.990, 0.0042, 0.002
"""Criterion of claim C8: software mean >= 99.0 %; gap software - hardware <= 0.42 points
(Jung et al., Nature 601, 2022: VGG-8 on their MRAM crossbar, 98.86 vs 99.28 %); device-seed
sd <= 0.2 points."""
JUNG_2022 = {"software_accuracy": 0.9928, "hardware_accuracy": 0.9886, "gap_points": 0.42}


def cnn_accuracy(network: str, config: CrossbarConfig, train_seed: int = 0, device_seeds=range(10)) -> pd.DataFrame:
    """Test accuracy (10,000 images) of one network of :data:`NETWORKS`, one row per device
    seed (``software``: one row, ``device_seed`` -1), each seed's evaluation cached on its own
    (:func:`imclib.experiments.mnist.cached_table`). Columns ``network``, ``train_seed``,
    ``device_seed``, ``accuracy``."""
    _validate.choice("network", network, NETWORKS)
    model, _ = cnn_model(train_seed)
    data = split()
    if network == "software":
        return pd.DataFrame({"network": [network], "train_seed": [train_seed], "device_seed": [-1],
                             "accuracy": [model.accuracy(data["x_test"], data["y_test"])]})
    deployed = config.with_(weight_map="naive" if network == "PTQ naive" else "calibrated")
    frames = []
    for seed in device_seeds:
        key = {"model": {"cnn": dataclasses.replace(CNN_TRAINING, seed=train_seed), "architecture": SMALL_CNN},
               "config": repr(deployed), "seed": int(seed), "subset": "test", "calibration": CALIBRATION,
               "validation": SPLIT}
        frames.append(cached_table(key, lambda seed=seed: sequential_accuracy(
            model, data["x_test"], data["y_test"], deployed, [int(seed)], calibration_inputs())))
    table = pd.concat(frames, ignore_index=True).rename(columns={"seed": "device_seed"})
    return table.assign(network=network, train_seed=train_seed)[["network", "train_seed", "device_seed", "accuracy"]]


def cnn_study(config: CrossbarConfig, train_seeds=(0, 1, 2), device_seeds=range(10), schemes=tuple(SCHEMES),
              progress: bool = True) -> pd.DataFrame:
    """Software, naive PTQ and expert PTQ of the CNN on ``config`` switched to each decode
    scheme (:func:`imclib.experiments.mnist.scheme_config`): the software network and the
    expert PTQ of every training seed, the naive PTQ of the first one (a contrast), each on
    every device seed. Columns ``scheme``, ``network``, ``train_seed``, ``device_seed``,
    ``accuracy``."""
    jobs = [(scheme, network, seed) for scheme in schemes for network in NETWORKS for seed in train_seeds
            if network != "PTQ naive" or seed == train_seeds[0]]
    frames = [cnn_accuracy(network, scheme_config(scheme, config), seed, device_seeds).assign(scheme=scheme)
              for scheme, network, seed in tqdm(jobs, desc="CNN deployments", disable=not progress)]
    return pd.concat(frames, ignore_index=True)[["scheme", "network", "train_seed", "device_seed", "accuracy"]]


def check_c8(confidence: pd.DataFrame, hardware: str = "PTQ expert") -> tuple[pd.DataFrame, dict, str]:
    """The criterion of C8 per decode scheme on a :func:`imclib.experiments.mnist.confidence_table`
    of :func:`cnn_study`: software mean >= :data:`SOFTWARE_MIN`, gap (software mean minus the
    ``hardware`` network's mean) <= :data:`GAP_MAX`, device-seed sd of that network <=
    :data:`DEVICE_SD_MAX`. Returns the checks (one row per scheme, column ``passes``),
    ``by_scheme`` and the verdict (``reproduced`` if every scheme passes, ``partly`` if some
    do, else ``not reproduced``)."""
    stats = confidence.set_index(["scheme", "network"])
    rows = []
    for scheme in dict.fromkeys(confidence.scheme):
        software, deployed = stats.loc[(scheme, "software")], stats.loc[(scheme, hardware)]
        rows.append({"scheme": scheme, "software": software["mean"], "hardware": deployed["mean"],
                     "gap": software["mean"] - deployed["mean"], "device_sd": deployed["device_sd"],
                     "software >= 99.0 %": software["mean"] >= SOFTWARE_MIN,
                     "gap <= 0.42 points": software["mean"] - deployed["mean"] <= GAP_MAX,
                     "device sd <= 0.2 points": deployed["device_sd"] <= DEVICE_SD_MAX})
    checks = pd.DataFrame(rows).set_index("scheme")
    checks["passes"] = checks[["software >= 99.0 %", "gap <= 0.42 points", "device sd <= 0.2 points"]].all(axis=1)
    by_scheme = {scheme: bool(ok) for scheme, ok in checks.passes.items()}
    verdict = "reproduced" if all(by_scheme.values()) else "partly" if any(by_scheme.values()) else "not reproduced"
    return checks, by_scheme, verdict


def energy_per_inference(model, config: CrossbarConfig, x, seed: int = 0,
                         technology: Technology | None = None) -> pd.DataFrame:
    """Energy (J) and latency (s) per inference of ``model`` (an MLP or a Sequential network)
    on ``config`` (device seed ``seed``, ranges calibrated on training images), by layer and
    component, from :func:`imclib.cost.cost_table` on the inputs the hardware produces for
    images ``x``. A conv layer reads one im2col row per output position, one after the
    other on its arrays: its per-row energy and latency are multiplied by the rows per image
    (``H_o W_o``); area is that of the built arrays, unchanged. Columns as
    :func:`imclib.cost.cost_table`."""
    network = model if isinstance(model, Sequential) else Sequential.from_mlp(model)
    layers, _ = deploy_sequential(network, config, calibration_inputs(), seed)
    read, inputs = hardware_matmul(layers, np.random.default_rng(seed)), {}

    def matmul(index, rows, weights):
        inputs.setdefault(index, []).append(rows)
        return read(index, rows, weights)

    network.forward(x, matmul)
    rows = [np.concatenate(inputs[i]) for i in range(len(layers))]
    per_image = [len(r) // len(x) for r in rows]
    table = cost_table(layers, rows, technology)
    layer_rows = table.layer != "total"
    scale = table.layer[layer_rows].map(lambda name: per_image[int(name.split()[1]) - 1])
    table.loc[layer_rows, ["energy_J", "latency_s"]] = table.loc[layer_rows, ["energy_J", "latency_s"]].mul(
        scale, axis=0)
    sums = table[layer_rows].groupby("component", sort=False)[["energy_J", "latency_s", "area_m2"]].sum()
    for component, values in sums.iterrows():
        table.loc[(table.layer == "total") & (table.component == component), ["energy_J", "latency_s", "area_m2"]] = \
            values.to_numpy()
    table.loc[(table.layer == "total") & (table.component == "total"), ["energy_J", "latency_s", "area_m2"]] = \
        sums.sum().to_numpy()
    return table


WIDGET_IMAGES = 1000
"""Test images the widget scores (the first ones): a deployment and a read in a few seconds."""


def widget_accuracy(n_states: int = 4, programming_sigma: float = defaults.PROGRAMMING_SIGMA, tile: int = 4,
                    n_test: int = WIDGET_IMAGES) -> float:
    """Expert-PTQ accuracy of the training-seed-0 CNN on the default device with binary-stack
    cells of ``n_states`` levels, programming variation ``programming_sigma`` (relative) and
    ``tile x tile`` arrays: device seed 0, the first ``n_test`` test images."""
    base = CrossbarConfig()
    config = base.with_(cell=CellLevels(n_states, "binary"), rows=tile, cols=tile,
                        nonideal=dataclasses.replace(base.nonideal, programming_sigma=programming_sigma))
    data = split()
    return float(sequential_accuracy(cnn_model(0)[0], data["x_test"][:n_test], data["y_test"][:n_test], config, [0],
                                     calibration_inputs()).accuracy[0])


def cnn_widget():
    """States per cell, programming variation and array size -> the CNN's expert-PTQ accuracy
    (:func:`widget_accuracy`) as a dot beside its software accuracy on the same images, on a
    fixed 90-100 % axis (a lower value is marked at the axis floor). Recomputes when a control
    is released."""
    import ipywidgets
    import matplotlib.pyplot as plt

    data = split()
    software = cnn_model(0)[0].accuracy(data["x_test"][:WIDGET_IMAGES], data["y_test"][:WIDGET_IMAGES])

    def show(n_states=4, programming_sigma=defaults.PROGRAMMING_SIGMA, tile=4):
        value = widget_accuracy(n_states, programming_sigma, tile)
        fig, ax = plt.subplots(figsize=(7, 1.8))
        ax.plot([software * 100, max(value * 100, 90.0)], [1, 0], "o", color="C0")
        ax.set(xlim=(90, 100), ylim=(-0.5, 1.5), yticks=[0, 1], yticklabels=["hardware (PTQ expert)", "software"],
               xlabel=f"MNIST accuracy (%), first {WIDGET_IMAGES} test images")
        plt.show(fig)
        print(f"{n_states} states, σ = {programming_sigma:.2f}, {tile}x{tile} arrays: accuracy {value:.2%} "
              f"(software {software:.2%}; gap {100 * (software - value):.2f} points)")

    style = {"continuous_update": False}
    return ipywidgets.interactive(
        show, n_states=ipywidgets.Dropdown(options=[2, 4, 8, 16], value=4, description="states"),
        programming_sigma=ipywidgets.FloatSlider(defaults.PROGRAMMING_SIGMA, min=0.0, max=0.2, step=0.01,
                                                 description="σ prog.", **style),
        tile=ipywidgets.Dropdown(options=[4, 8, 16, 32], value=4, description="array"))
