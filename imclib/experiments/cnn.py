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
from ..deploy import deploy_network
from ..cost import Technology, cost_table
from ..mlp import TrainConfig
from ..network import device_quantizer, hardware_accuracy, hardware_matmul
from ..results import record_claim
from ..sequential import SMALL_CNN, Sequential, train_sequential
from . import tables, verdicts
from .mnist import (SCHEMES, SPLIT, _trained_quantized, cached_table, calibration_inputs, float_model,
                    hwa_model, network_accuracy, scheme_config, split)

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


CNN_HWA_TRAINING = TrainConfig(hidden=(), epochs=2, learning_rate=1e-3, weight_decay=0.0, qat=True,
                               qat_noise=defaults.PROGRAMMING_SIGMA)
"""Hardware-aware fine-tuning of the CNN from the float CNN of the same training seed: 2 epochs
at learning rate 1e-3 without weight decay (the MLP's :data:`~imclib.experiments.mnist.HWA_TRAINING`),
every forward pass on the weights a nominal array of the deployed configuration holds
(:func:`imclib.network.device_quantizer`: the calibrated map, refitted as the weights move)
times fresh multiplicative noise of the programming variation's size, ``W~ = Q(W) (1 + 0.03 xi)``,
straight-through gradients (:func:`imclib.sequential.train_sequential` with ``qat=True``).
Unlike the MLP's :func:`imclib.hwa.train_hwa` it injects no DAC, ADC or sense noise."""


def cnn_hwa_model(config: CrossbarConfig, seed: int = 0,
                  training: TrainConfig = CNN_HWA_TRAINING) -> tuple[Sequential, pd.DataFrame]:
    """The hardware-aware CNN of training seed ``seed`` for ``config`` (cached): ``(model,
    history)``, fine-tuned (:data:`CNN_HWA_TRAINING`) from :func:`cnn_model` of the same seed on
    the training split minus the validation split; ``val_accuracy`` is that of the quantized
    network on the validation split. Marked ``trained_for = "quantized"``, so its column
    calibration targets the quantized weights (:func:`imclib.deploy.resolve_column_target`)."""
    _validate.instance("config", config, CrossbarConfig)
    training = dataclasses.replace(training, seed=seed)
    start_training = dataclasses.replace(CNN_TRAINING, seed=seed)
    start, _ = cnn_model(seed)
    data = split()
    key = {"task": "mnist-cnn-hwa", "architecture": SMALL_CNN, "input_shape": INPUT_SHAPE, "training": training,
           "start": start_training, "device": repr(config), "validation": SPLIT}
    return _trained_quantized(cached_train(key, lambda: train_sequential(
        data["x_fit"], data["y_fit"], training, SMALL_CNN, INPUT_SHAPE, quantize=device_quantizer(config), init=start,
        x_val=data["x_val"], y_val=data["y_val"], progress=False)))


CNN_CALIBRATION = 500
"""Training images (evenly spaced over the training split, :func:`calibration_inputs`) that
calibrate the CNN's converter ranges and columns: 288,000 im2col rows for its first conv layer
(576 per image), against the MLP's 1,000 images of one row each. Deployment reads them through
the programmed layers, so its time scales with their number. Measured before choosing (expert
PTQ, offset/digital, 10,000 test images, paired by device seed): 1,000 images 98.25 % (seeds
0-2), 500 images 98.22 % (-0.03 points), 250 images 98.19 % against 98.24 % (seeds 0-5, -0.05);
HWA (training seed 0, device seeds 0-2) 98.27 % with 1,000 and with 250 images."""


def cnn_calibration_inputs() -> np.ndarray:
    """The :data:`CNN_CALIBRATION` training images that calibrate the CNN."""
    return calibration_inputs(n=CNN_CALIBRATION)


NETWORKS = ("software", "PTQ naive", "PTQ expert", "HWA")
"""Networks of the CNN study: the float CNN in floating point; deployed with the naive
(max |w|) or the calibrated map (PTQ naive, PTQ expert); and the hardware-aware CNN
(:func:`cnn_hwa_model`, trained for the deployed configuration) deployed with the calibrated map."""
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
    model, _ = cnn_hwa_model(config, train_seed) if network == "HWA" else cnn_model(train_seed)
    data = split()
    if network == "software":
        return pd.DataFrame({"network": [network], "train_seed": [train_seed], "device_seed": [-1],
                             "accuracy": [model.accuracy(data["x_test"], data["y_test"])]})
    deployed = config.with_(weight_map="naive" if network == "PTQ naive" else "calibrated")
    frames = []
    for seed in device_seeds:
        trained = {"cnn": dataclasses.replace(CNN_TRAINING, seed=train_seed), "architecture": SMALL_CNN}
        if network == "HWA":
            trained["hwa"] = dataclasses.replace(CNN_HWA_TRAINING, seed=train_seed)
        key = {"model": trained,
               "config": repr(deployed), "seed": int(seed), "subset": "test", "calibration": CNN_CALIBRATION,
               "validation": SPLIT}
        frames.append(cached_table(key, lambda seed=seed: hardware_accuracy(
            model, data["x_test"], data["y_test"], deployed, [int(seed)], cnn_calibration_inputs())))
    table = pd.concat(frames, ignore_index=True).rename(columns={"seed": "device_seed"})
    return table.assign(network=network, train_seed=train_seed)[["network", "train_seed", "device_seed", "accuracy"]]


TRAIN_SEEDS = (0, 1, 2)
"""Training seeds of the float CNN (the software accuracy) and of the HWA CNN under the default scheme."""


def cnn_study(config: CrossbarConfig, scheme: str, networks=NETWORKS, hwa_train_seeds=TRAIN_SEEDS,
              device_seeds=range(10), naive_device_seeds=range(3), progress: bool = True) -> pd.DataFrame:
    """The networks ``networks`` (of :data:`NETWORKS`) on ``config`` switched to decode scheme
    ``scheme`` (:func:`imclib.experiments.mnist.scheme_config`), 10,000 test images each:
    software on every seed of :data:`TRAIN_SEEDS`; HWA on every seed of ``hwa_train_seeds``
    and every device seed of ``device_seeds``; PTQ expert of the first training seed on every
    device seed; PTQ naive (a contrast) of the first training seed on ``naive_device_seeds``.
    Every (network, training seed, device seed) evaluation is cached on its own
    (:func:`cnn_accuracy`). Columns ``scheme``, ``network``, ``train_seed``, ``device_seed``,
    ``accuracy``."""
    for network in networks:
        _validate.choice("networks", network, NETWORKS)
    plan = {"software": [(seed, ()) for seed in TRAIN_SEEDS],
            "HWA": [(seed, device_seeds) for seed in hwa_train_seeds],
            "PTQ expert": [(TRAIN_SEEDS[0], device_seeds)], "PTQ naive": [(TRAIN_SEEDS[0], naive_device_seeds)]}
    jobs = [(network, seed, seeds) for network in networks for seed, seeds in plan[network]]
    deployed = scheme_config(scheme, config)
    frames = [cnn_accuracy(network, deployed, seed, seeds)
              for network, seed, seeds in tqdm(jobs, desc=f"CNN deployments ({scheme})", disable=not progress)]
    return pd.concat(frames, ignore_index=True).assign(scheme=scheme)[
        ["scheme", "network", "train_seed", "device_seed", "accuracy"]]


def check_c8(confidence: pd.DataFrame, hardware: str = "HWA") -> tuple[pd.DataFrame, dict, str]:
    """The criterion of C8 per decode scheme on a :func:`imclib.experiments.mnist.confidence_table`
    of :func:`cnn_study`: software mean >= :data:`SOFTWARE_MIN`, gap (software mean minus the
    ``hardware`` network's mean) <= :data:`GAP_MAX`, device-seed sd of that network <=
    :data:`DEVICE_SD_MAX`. Returns the checks (one row per scheme, column ``passes``),
    ``by_scheme`` and the verdict (:func:`imclib.experiments.verdicts.verdict`: ``reproduced``
    if every scheme passes, ``partly`` if some do, else ``not reproduced``)."""
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
    return checks, by_scheme, verdicts.verdict(by_scheme)


def energy_per_inference(model, config: CrossbarConfig, x, seed: int = 0,
                         technology: Technology | None = None) -> pd.DataFrame:
    """Energy (J) and latency (s) per inference of ``model`` (an MLP or a Sequential network)
    on ``config`` (device seed ``seed``, calibrated on training images: :data:`CNN_CALIBRATION`
    for a Sequential network, the MLP's 1,000 for an MLP), by layer and
    component, from :func:`imclib.cost.cost_table` on the inputs the hardware produces for
    images ``x``. A conv layer reads one im2col row per output position, one after the
    other on its arrays: its per-row energy and latency are multiplied by the rows per image
    (``H_o W_o``); area is that of the built arrays, unchanged. Columns as
    :func:`imclib.cost.cost_table`."""
    network = model if isinstance(model, Sequential) else Sequential.from_mlp(model)
    calibration = cnn_calibration_inputs() if isinstance(model, Sequential) else calibration_inputs()
    layers, _ = deploy_network(network, config, calibration, seed)
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


ENERGY_IMAGES = 500
"""Test images (the first ones) whose hardware inputs the energy per inference is computed on."""


def energy_table(config: CrossbarConfig) -> pd.DataFrame:
    """Energy per inference (:func:`energy_per_inference`, device seed 0, the first
    :data:`ENERGY_IMAGES` test images) of the training-seed-0 CNN (HWA and expert PTQ) and of
    study 02's 784-256-10 MLP (HWA and expert PTQ) on ``config``. Columns ``network``,
    ``energy_J``, ``ADC_share`` (of the energy), ``latency_s``, ``area_m2``."""
    x = split()["x_test"][:ENERGY_IMAGES]
    rows = []
    for name, model in (("CNN (HWA)", cnn_hwa_model(config, 0)[0]), ("CNN (PTQ expert)", cnn_model(0)[0]),
                        ("MLP (HWA)", hwa_model(config, 0)[0]), ("MLP (PTQ expert)", float_model()[0])):
        table = energy_per_inference(model, config, x)
        total = table[table.layer == "total"].set_index("component")
        rows.append({"network": name, "energy_J": total.loc["total", "energy_J"],
                     "ADC_share": total.loc["ADC", "energy_J"] / total.loc["total", "energy_J"],
                     "latency_s": total.loc["total", "latency_s"], "area_m2": total.loc["total", "area_m2"]})
    return pd.DataFrame(rows)


def energy_comparison(config: CrossbarConfig, confidence: pd.DataFrame, device_seeds=range(10)) -> pd.DataFrame:
    """:func:`energy_table` (cached, :func:`imclib.experiments.tables.cached_call`) with each
    network's mean accuracy on the 10,000 test images (column ``accuracy``): the CNN's from
    ``confidence`` (:func:`cnn_study`, the decode scheme of ``config``), the MLP's from
    :func:`imclib.experiments.mnist.network_accuracy` (training seed 0, ``device_seeds``)."""
    scheme = next(name for name in SCHEMES if scheme_config(name, config) == config)
    stats = confidence.set_index(["scheme", "network"])
    accuracy = {"CNN (HWA)": stats.loc[(scheme, "HWA"), "mean"], "CNN (PTQ expert)": stats.loc[(scheme, "PTQ expert"), "mean"]}
    accuracy.update({f"MLP ({name})": network_accuracy(name, config, 0, device_seeds).accuracy.mean()
                     for name in ("HWA", "PTQ expert")})
    energy = tables.cached_call(energy_table, config)
    return energy.assign(accuracy=energy.network.map(accuracy))[["network", "accuracy", *energy.columns[1:]]]


C8_CRITERION = (f"{verdicts.VERDICT_RULE}. The criterion, per decode scheme: software mean >= 99.0 % (3 training "
                "seeds); gap software - HWA <= 0.42 points (Jung et al. 2022, VGG-8 on an MRAM crossbar); HWA "
                "device-seed sd <= 0.2 points (pooled within "
                "training seeds); HWA of training seeds 0-2 (offset/digital) or 0 (other schemes) x device seeds "
                "0-9, 10,000 test images; expert PTQ and naive PTQ reported as contrasts")


def judge_c8(confidence: pd.DataFrame, energy: pd.DataFrame, n_weights: int) -> tuple[pd.DataFrame, str]:
    """Judge C8 (:func:`check_c8`) and record it (:func:`imclib.results.record_claim`) with
    the energy comparison ``energy`` (:func:`energy_comparison`): ``(checks, verdict)``."""
    checks, by_scheme, verdict = check_c8(confidence)
    stats, default = confidence.set_index(["scheme", "network"]), next(iter(by_scheme))

    def mean(scheme, network):
        return round(float(stats.loc[(scheme, network), "mean"]), 4)

    measured = {"software_mean": mean(default, "software"), "PTQ_naive_mean": mean(default, "PTQ naive"),
                "PTQ_expert_mean": mean(default, "PTQ expert"), "HWA_mean": mean(default, "HWA"),
                "HWA_device_sd": round(float(checks.loc[default, "device_sd"]), 4),
                "gap_points": round(100 * float(checks.loc[default, "gap"]), 2),
                "energy_nJ": {row.network: round(1e9 * row.energy_J, 2) for row in energy.itertuples()},
                "weights": int(n_weights), "validation": SPLIT}
    statistics = {
        "n_device_seeds": {scheme: int(stats.loc[(scheme, "HWA"), "device_seeds"]) for scheme in by_scheme},
        "n_train_seeds": {scheme: int(stats.loc[(scheme, "HWA"), "train_seeds"]) for scheme in by_scheme},
        "ci95": {scheme: {network: [round(float(stats.loc[(scheme, network), bound]), 4) for bound in ("ci_low", "ci_high")]
                          for network in ("software", "HWA", "PTQ expert")} for scheme in by_scheme},
        "per_scheme": {scheme: {"HWA_mean": round(float(checks.loc[scheme, "hardware"]), 4),
                                "PTQ_expert_mean": mean(scheme, "PTQ expert"),
                                "gap_points": round(100 * float(checks.loc[scheme, "gap"]), 2),
                                "HWA_device_sd": round(float(checks.loc[scheme, "device_sd"]), 4)} for scheme in by_scheme},
    }
    record_claim("C8", "a small CNN on 4x4-tiled 4-state MTJ arrays stays within Jung et al.'s 0.42-point gap", measured,
                 passed=verdict == "reproduced", paper=JUNG_2022, verdict=verdict, criterion=C8_CRITERION,
                 by_scheme=by_scheme, statistics=statistics)
    return checks, verdict


def c8_findings(confidence: pd.DataFrame, checks: pd.DataFrame, verdict: str, energy: pd.DataFrame,
                n_weights: int) -> str:
    """The "What we found" paragraph of study 09 (markdown), every number from the arguments
    (:func:`cnn_study`'s :func:`~imclib.experiments.mnist.confidence_table`, :func:`judge_c8`,
    :func:`energy_comparison`)."""
    stats = confidence.set_index(["scheme", "network"])
    default = checks.index[0]
    software, naive = stats.loc[(default, "software")], stats.loc[(default, "PTQ naive")]
    labels = ["software >= 99.0 %", "gap <= 0.42 points", "device sd <= 0.2 points"]

    def sentence(scheme):
        hwa, expert = stats.loc[(scheme, "HWA")], stats.loc[(scheme, "PTQ expert")]
        failed = [label for label in labels if not checks.loc[scheme, label]]
        return (f"* **{scheme}**: HWA {hwa['mean']:.2%} (95 % CI {hwa['ci_low']:.2%}–{hwa['ci_high']:.2%}, device-seed "
                f"sd {hwa['device_sd']:.2%}, {int(hwa['n'])} evaluations), a gap of {100 * checks.loc[scheme, 'gap']:.2f} "
                f"points: " + ("passes" if checks.loc[scheme, "passes"] else f"fails ({'; '.join(failed)} does not hold)")
                + f"; expert PTQ {expert['mean']:.2%} ({int(expert['n'])} evaluations).")

    by_name = energy.set_index("network")
    cnn_row, mlp_row = by_name.loc["CNN (HWA)"], by_name.loc["MLP (HWA)"]
    passing = [scheme for scheme in checks.index if checks.loc[scheme, "passes"]]
    failing = [scheme for scheme in checks.index if not checks.loc[scheme, "passes"]]
    return (f"The float CNN ({n_weights:,} weights) reaches {software['mean']:.2%} on the test images (mean of "
            f"{int(software['n'])} training seeds; Jung et al.'s VGG-8: 99.28 %). Deployed naively ({default}, symmetric "
            f"max |w| map) it keeps {naive['mean']:.2%}. Per decode scheme (Jung et al.'s MRAM crossbar: 98.86 %, a "
            f"0.42-point gap):\n\n" + "\n".join(sentence(scheme) for scheme in checks.index)
            + f"\n\nOne CNN inference (HWA) costs {1e9 * cnn_row.energy_J:.0f} nJ against {1e9 * mlp_row.energy_J:.0f} nJ "
            f"for the 784-256-10 MLP (HWA) on the same device ({default}): the CNN reads its first layer once per output "
            f"position, and ADC conversions take {cnn_row.ADC_share:.0%} and {mlp_row.ADC_share:.0%} of the energy. "
            f"Verdict on C8 under the criterion stated above: **{verdict}** (passes: {', '.join(passing) or 'no scheme'}; "
            f"fails: {', '.join(failing) or 'no scheme'}).")


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
    return float(hardware_accuracy(cnn_model(0)[0], data["x_test"][:n_test], data["y_test"][:n_test], config, [0],
                                     cnn_calibration_inputs()).accuracy[0])

