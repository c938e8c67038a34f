"""Studies 02 and 03: MNIST on tiled 4-state MTJ arrays (claims C2, C3).

Data: the last ``VALIDATION`` (5,000) training images are the validation split; networks
train on the first 55,000, every choice is made on training or validation images, and the
10,000 test images only report. Converter ranges are calibrated on ``CALIBRATION``
training images (:mod:`imclib.deploy`).

Models are trained once and cached by config hash (:func:`imclib.cache.cached_train`).
Hardware accuracy is reported per device seed: each seed programs the whole network anew
(static deviations) and redraws read noise. Hardware accuracy tables are cached too, keyed
by everything that determines them including a digest of the package's source code, so a
warm rerun of the same code is fast and any code change recomputes them. PCA, when used,
is a digital front end: the projection runs in software and only the MLP runs on the arrays.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from tqdm.auto import tqdm

from .. import _validate, cache, defaults
from ..cache import cached_train, default_cache_dir
from ..config import ADC_CALIBRATIONS, DECODE_SCHEMES, SCALES, WEIGHT_MAPS, CrossbarConfig
from ..data import load_mnist
from ..deploy import calibrate, deploy_network
from ..hwa import train_hwa
from ..mlp import MLP, TrainConfig, train_mlp
from ..network import device_quantizer, hardware_logits, hardware_matmul
from ..nonidealities import SIGMA_MAX
from ..results import record_claim
from .verdicts import VERDICT_RULE, verdict as scheme_verdict

FLOAT_TRAINING = TrainConfig()
QAT_TRAINING = TrainConfig(epochs=4, learning_rate=1e-3, qat=True, qat_noise=0.03)
HWA_TRAINING = TrainConfig(epochs=2, learning_rate=1e-3, weight_decay=0.0)
"""Hardware-aware fine-tuning (:func:`imclib.hwa.train_hwa`) from the float network."""
PAPER = {"software_accuracy": 0.9756, "hardware_accuracy": 0.9448}
VALIDATION = 5000
"""The last this many training images are the validation split."""
CALIBRATION = 1000
"""Training images (evenly spaced over the training split) that calibrate converter ranges."""
SPLIT = f"last {VALIDATION} of the 60000 training images (networks train on the first {60000 - VALIDATION})"


MAX_COMPONENTS = 256


@lru_cache(maxsize=1)
def _principal_components() -> tuple[np.ndarray, np.ndarray]:
    """Train and test images projected on the first ``MAX_COMPONENTS`` principal axes of
    the training set (full SVD, deterministic); the first n columns are the n-component
    PCA. Cached on disk next to the trained models."""
    path = default_cache_dir() / f"mnist-pca{MAX_COMPONENTS}-v1.npz"
    cached = cache.load_arrays(path, {"train": (60_000, MAX_COMPONENTS), "test": (10_000, MAX_COMPONENTS)})
    if cached is not None:  # a bad file was moved aside with a warning: recompute it
        return cached["train"], cached["test"]
    data = load_mnist()
    pca = PCA(n_components=MAX_COMPONENTS, svd_solver="full").fit(data.x_train)
    train, test = pca.transform(data.x_train).astype(np.float32), pca.transform(data.x_test).astype(np.float32)
    cache.save_arrays(path, {"train": train, "test": test})
    return train, test


def features(n_components: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)``; with ``n_components`` (1 to 256) the inputs
    are the first principal components, a digital front end."""
    data = load_mnist()
    if n_components is None:
        return data.x_train, data.y_train, data.x_test, data.y_test
    if not 1 <= n_components <= MAX_COMPONENTS:
        raise ValueError(f"n_components must be in [1, {MAX_COMPONENTS}] or None, got {n_components!r}")
    train, test = _principal_components()
    return train[:, :n_components], data.y_train, test[:, :n_components], data.y_test


def split(n_components: int | None = None) -> dict[str, np.ndarray]:
    """``fit``/``val``/``test`` inputs (``x_*``) and labels (``y_*``): training images minus
    the validation split, the last ``VALIDATION`` training images, the test set."""
    x_train, y_train, x_test, y_test = features(n_components)
    cut = x_train.shape[0] - VALIDATION
    return {"x_fit": x_train[:cut], "y_fit": y_train[:cut], "x_val": x_train[cut:], "y_val": y_train[cut:],
            "x_test": x_test, "y_test": y_test}


def calibration_inputs(n_components: int | None = None, n: int = CALIBRATION) -> np.ndarray:
    """``n`` training images, evenly spaced over the training split (never validation or test)."""
    x_fit = split(n_components)["x_fit"]
    return x_fit[:: x_fit.shape[0] // n][:n]


def float_model(n_components: int | None = None, training: TrainConfig = FLOAT_TRAINING) -> tuple[MLP, pd.DataFrame]:
    """The software baseline (cached): ``(model, history)``, trained on the training split
    minus the validation split (``val_accuracy`` on the validation split)."""
    data = split(n_components)
    key = {"task": "mnist", "pca": n_components, "training": training, "validation": SPLIT}
    return cached_train(key, lambda: train_mlp(data["x_fit"], data["y_fit"], training,
                                               x_val=data["x_val"], y_val=data["y_val"]))


def _trained_quantized(found: tuple[MLP, pd.DataFrame]) -> tuple[MLP, pd.DataFrame]:
    """``(model, history)`` of :func:`imclib.cache.cached_train` with ``model.trained_for``
    set to ``"quantized"``: the store keeps parameters only, and the keys of
    :func:`qat_model` and :func:`hwa_model` say the network was trained with its quantized
    weights in the loop (so its column calibration targets ``x @ W_q``,
    :func:`imclib.deploy.resolve_column_target`)."""
    model, history = found
    model.trained_for = "quantized"
    return model, history


def qat_model(config: CrossbarConfig, n_components: int | None = None, training: TrainConfig = QAT_TRAINING) -> tuple[MLP, pd.DataFrame]:
    """Quantization-aware fine-tuning of the float model onto ``config``'s weight levels
    (straight-through estimator, multiplicative noise injection), cached."""
    start, _ = float_model(n_components, dataclasses.replace(FLOAT_TRAINING, seed=training.seed))
    data = split(n_components)
    quantizer_inputs = (config.cell, config.quantize, config.mapping, config.scale, config.weight_map,
                        config.weight_percentile, config.nonideal.decode_as_uniform)
    key = {"task": "mnist-qat", "pca": n_components, "training": training, "start": FLOAT_TRAINING,
           "quantizer": repr(quantizer_inputs), "validation": SPLIT}
    quantize = device_quantizer(config)
    return _trained_quantized(cached_train(key, lambda: train_mlp(data["x_fit"], data["y_fit"], training,
                                                                  quantize=quantize, init=start,
                                                                  x_val=data["x_val"], y_val=data["y_val"])))


def hwa_model(config: CrossbarConfig, seed: int = 0, n_components: int | None = None,
              training: TrainConfig = HWA_TRAINING) -> tuple[MLP, pd.DataFrame]:
    """Hardware-aware training (:func:`imclib.hwa.train_hwa`) for ``config`` from the float
    network of the same training seed, cached: ``(model, history)``."""
    training = dataclasses.replace(training, seed=seed)
    start_training = dataclasses.replace(FLOAT_TRAINING, seed=seed)
    start, _ = float_model(n_components, start_training)
    data = split(n_components)
    key = {"task": "mnist-hwa", "pca": n_components, "training": training, "start": start_training,
           "device": repr(config), "validation": SPLIT, "calibration": CALIBRATION}
    return _trained_quantized(cached_train(key, lambda: train_hwa(data["x_fit"], data["y_fit"], config, training, start,
                                                                  x_val=data["x_val"], y_val=data["y_val"],
                                                                  n_calibration=CALIBRATION)))


TABLE_CODE = ("cells.py", "array.py", "kernels.py", "layer.py", "mapping.py", "deploy.py", "network.py", "periphery.py",
              "nonidealities.py", "circuit.py", "config.py", "defaults.py", "mlp.py", "hwa.py", "data.py",
              "conv.py", "sequential.py", "experiments/mnist.py", "experiments/cnn.py")
"""The modules a cached accuracy table depends on (the physics, deployment, training and data).
The store (:mod:`imclib.cache`, :mod:`imclib._files`) is not among them: how a table is
written does not change its values, and the file format is versioned inside each file."""


def _code_digest() -> str:
    """sha256 of the modules of :data:`TABLE_CODE`: a change to any of them invalidates
    every cached table (plots, widgets or docs do not)."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parents[1]
    for name in TABLE_CODE:
        digest.update(name.encode())
        digest.update((package / name).read_bytes())
    return digest.hexdigest()


def table_name(key: dict) -> str:
    """File name ``<sha256>.npz`` of the table of ``key``: the digest of
    ``json.dumps({"key": key, "code": <digest of TABLE_CODE>}, sort_keys=True, default=repr)``."""
    text = json.dumps({"key": key, "code": _code_digest()}, sort_keys=True, default=repr)
    return f"{hashlib.sha256(text.encode()).hexdigest()}.npz"


def cached_table(key: dict, compute) -> pd.DataFrame:
    """``compute()`` (a DataFrame), memoised under ``key`` plus the code digest
    (:func:`table_name`): looked up in the shipped store (``imclib/models/tables/``, only
    read, written by ``python -m imclib.cache --ship-models``), then in the user cache, else
    computed and stored in the user cache, in a data-only format whose schema is checked on
    load (:func:`imclib.cache.read_table`). A bad shipped entry is skipped with a warning, a
    bad user entry is moved aside with a warning, and the table is recomputed; every lookup
    is logged like a model's (``$IMCLIB_MODEL_LOG``), so the tables a reproduce run used can
    be shipped."""
    return cache.cached_table(table_name(key), compute, default_cache_dir() / "tables")


SCHEMES = DECODE_SCHEMES
"""The three decode schemes (:data:`imclib.config.DECODE_SCHEMES`)."""
NETWORKS = ("software", "PTQ naive", "PTQ expert", "HWA")


def scheme_config(scheme: str, config: CrossbarConfig | None = None) -> CrossbarConfig:
    """``config`` (default ``CrossbarConfig()``) switched to a decode scheme of :data:`SCHEMES`."""
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {sorted(SCHEMES)}, got {scheme!r}")
    return (config or CrossbarConfig()).with_(**SCHEMES[scheme])


RANGES = ("fixed", "per batch")
"""How converter ranges are set: ``fixed`` once on calibration images at deployment (the
project's default, :mod:`imclib.deploy`), or ``per batch`` on the evaluated batch itself."""
PER_BATCH_IMAGES = 100
"""Batch size (test images) of ``ranges="per batch"``."""


def per_batch_matmul(layers, rng) -> Callable:
    """A ``matmul(i, x, W)`` hook for :meth:`MLP.forward` that sets the converter ranges of
    programmed layer ``i`` on the batch ``x`` it reads (:func:`imclib.deploy.calibrate` on
    every row of ``x``, at the layer's ``input_percentile`` and ``adc_percentile``), then
    reads ``x`` through them: ``y = calibrate(L_i, x).mvm(x)``. A row's output then depends
    on the rest of its batch, as in simulators that scale the converters to each batch. The
    column calibration (if the deployment fitted one) stays the one fitted on the calibration
    inputs."""
    layers = list(layers)

    def matmul(index: int, x: np.ndarray, weights: np.ndarray) -> np.ndarray:
        batch_layers = [*layers]
        if index < len(layers):
            batch_layers[index] = calibrate(layers[index], x, adc_samples=x.shape[0])
        return hardware_matmul(batch_layers, rng)(index, x, weights)

    return matmul


def deployed_logits(model: MLP, x: np.ndarray, config: CrossbarConfig, seed: int, calibration,
                    ranges: str = "fixed", deploy_options: tuple = ()) -> np.ndarray:
    """Logits of ``model`` deployed with device seed ``seed`` on the inputs ``x``: programmed
    and calibrated on ``calibration`` by :func:`imclib.deploy.deploy_network` (with the
    keyword arguments ``dict(deploy_options)``), then read.

    ``ranges="fixed"``: every read uses the calibrated ranges (the computation of
    :func:`imclib.network.hardware_logits`); ``"per batch"``: the ranges are set again on
    each batch of :data:`PER_BATCH_IMAGES` inputs (:func:`per_batch_matmul`). One generator
    draws the static deviations, then the read noise, batch after batch.
    """
    _validate.choice("ranges", ranges, RANGES)
    rng = np.random.default_rng(_validate.seed("seed", seed))
    layers, _ = deploy_network(model, config, calibration, rng, **dict(deploy_options))
    step, hook = (PER_BATCH_IMAGES, per_batch_matmul) if ranges == "per batch" else (max(1, len(x)), hardware_matmul)
    return np.concatenate([model.forward(x[start:start + step], matmul=hook(layers, rng))
                           for start in range(0, len(x), step)])


def _hardware_table(model_key: dict, model: MLP, config: CrossbarConfig, seeds, n_components=None,
                    subset: str = "test", ranges: str = "fixed", deploy_options: tuple = ()) -> pd.DataFrame:
    """Accuracy per device seed of ``model`` deployed on ``config`` on the ``subset``
    (``test`` or ``val``) images (:func:`deployed_logits`); each seed's evaluation is
    cached on its own, so studies that share an evaluation compute it once. Columns
    ``seed``, ``accuracy``."""
    data = split(n_components)
    x, y = data[f"x_{subset}"], data[f"y_{subset}"]
    frames = []
    for seed in seeds:
        key = {"model": model_key, "config": repr(config), "seed": int(seed), "pca": n_components, "subset": subset,
               "calibration": CALIBRATION, "validation": SPLIT}
        if ranges != "fixed" or deploy_options:
            key.update(ranges=ranges, batch=PER_BATCH_IMAGES, deploy=repr(tuple(deploy_options)))
        frames.append(cached_table(key, lambda seed=seed: pd.DataFrame({"seed": [int(seed)], "accuracy": [float(np.mean(
            deployed_logits(model, x, config, int(seed), calibration_inputs(n_components), ranges, deploy_options)
            .argmax(axis=1) == y))]})))
    return pd.concat(frames, ignore_index=True)


def network_accuracy(network: str, config: CrossbarConfig, train_seed: int = 0, device_seeds=range(10),
                     n_components: int | None = None, subset: str = "test", ranges: str = "fixed",
                     deploy_options: tuple = ()) -> pd.DataFrame:
    """Accuracy of one network of :data:`NETWORKS` on ``subset`` (``test``: the 10,000 test
    images; ``val``: the validation split), one row per device seed (cached).

    ``software``: the float network in floating point (one row, ``device_seed`` -1);
    ``PTQ naive``: the float network with the max-|w| map; ``PTQ expert``: the float network
    with the calibrated map and ranges; ``HWA``: the network hardware-aware trained for
    ``config`` (:func:`hwa_model`). ``ranges`` and ``deploy_options`` as in
    :func:`deployed_logits` (hardware networks only). Columns: ``network``,
    ``train_seed``, ``device_seed``, ``accuracy``.
    """
    if network not in NETWORKS:
        raise ValueError(f"network must be one of {NETWORKS}, got {network!r}")
    if subset not in ("test", "val"):
        raise ValueError(f"subset must be 'test' or 'val', got {subset!r}")
    float_training = dataclasses.replace(FLOAT_TRAINING, seed=train_seed)
    if network == "software":
        data = split(n_components)
        model, _ = float_model(n_components, float_training)
        return pd.DataFrame({"network": [network], "train_seed": [train_seed], "device_seed": [-1],
                             "accuracy": [model.accuracy(data[f"x_{subset}"], data[f"y_{subset}"])]})
    if network == "HWA":
        model, _ = hwa_model(config, train_seed, n_components)
        model_key = {"hwa": train_seed, "training": HWA_TRAINING, "device": repr(config)}
        deployed = config
    else:
        model, _ = float_model(n_components, float_training)
        model_key = {"float": float_training}
        deployed = config.with_(weight_map="naive" if network == "PTQ naive" else "calibrated")
    table = _hardware_table(model_key, model, deployed, device_seeds, n_components, subset, ranges, deploy_options)
    return (table.rename(columns={"seed": "device_seed"}).assign(network=network, train_seed=train_seed)
            [["network", "train_seed", "device_seed", "accuracy"]])


def deployment_study(config: CrossbarConfig, train_seeds=(0, 1, 2), device_seeds=range(10),
                     naive_device_seeds=range(10), progress: bool = True) -> pd.DataFrame:
    """Test accuracy of the software network, naive PTQ, expert PTQ and hardware-aware
    training on ``config`` (10,000 test images; ranges calibrated on training images).

    The software network of every training seed (``device_seed`` -1); the HWA network of
    every training seed on each of ``device_seeds``; the first training seed's float network
    with the calibrated map (``PTQ expert``) on ``device_seeds`` and with the max-|w| map
    (``PTQ naive``) on ``naive_device_seeds`` (empty: left out). Every evaluation is cached
    (:func:`network_accuracy`). Columns: ``network``, ``train_seed``, ``device_seed``,
    ``accuracy``.
    """
    first = train_seeds[0]
    jobs = [("software", s, ()) for s in train_seeds]
    jobs += [("PTQ naive", first, naive_device_seeds)] if len(naive_device_seeds) else []
    jobs += [("PTQ expert", first, device_seeds)] + [("HWA", s, device_seeds) for s in train_seeds]
    frames = [network_accuracy(network, config, seed, seeds)
              for network, seed, seeds in tqdm(jobs, desc="deployments", disable=not progress)]
    return pd.concat(frames, ignore_index=True)


def ci95(values) -> list[float]:
    """95 % Student-t interval of the mean of ``values``: ``mean +- t_{0.975, n-1} sd / sqrt(n)``
    (``[nan, nan]`` for fewer than two values)."""
    from scipy import stats

    values = np.asarray(values, dtype=float)
    n = len(values)
    half = stats.t.ppf(0.975, n - 1) * values.std(ddof=1) / np.sqrt(n) if n > 1 else float("nan")
    return [float(values.mean() - half), float(values.mean() + half)]


def confidence_table(study: pd.DataFrame) -> pd.DataFrame:
    """Mean accuracy per network (and per ``scheme`` if the study has that column) with a
    95 % confidence interval of the mean over its evaluations (:func:`ci95`), the sd over
    device seeds (pooled within training seeds) and the counts."""
    keys = [column for column in ("scheme", "network") if column in study]
    rows = []
    for names, group in study.groupby(keys, sort=False):
        n, sd = len(group), group.accuracy.std(ddof=1) if len(group) > 1 else 0.0
        low, high = ci95(group.accuracy)
        device_sd = (group.groupby("train_seed").accuracy.std(ddof=1).pow(2).mean() ** 0.5
                     if group.device_seed.max() >= 0 and n > 1 else float("nan"))
        rows.append({**dict(zip(keys, names if isinstance(names, tuple) else (names,))), "mean": group.accuracy.mean(),
                     "ci_low": low, "ci_high": high,
                     "sd": sd, "device_sd": device_sd, "train_seeds": group.train_seed.nunique(),
                     "device_seeds": group.device_seed[group.device_seed >= 0].nunique(), "n": n})
    return pd.DataFrame(rows)


PAPER_GAP = PAPER["software_accuracy"] - PAPER["hardware_accuracy"]
"""The paper's software-hardware gap (fraction): 97.56 % - 94.48 % = 3.08 points."""


@dataclass(frozen=True)
class Deployment:
    """One set of deployment assumptions of the paper-reconciliation table
    (:func:`paper_reconciliation`), applied to the float network without retraining (PTQ).
    Each field replaces the matching field of the study's base :class:`CrossbarConfig`
    (:meth:`config`); the defaults are the expert deployment of study 02.

    Parameters
    ----------
    weight_map : {"calibrated", "naive"}
        ``CrossbarConfig.weight_map``: the MSE-optimal affine map on the actual levels, or
        the symmetric max-|w| map.
    scale : {"column", "layer"}
        ``CrossbarConfig.scale``: one affine map per output column or one per layer.
    ranges : {"fixed", "per batch"}
        Converter ranges fixed once on the calibration images, or set again on each batch
        of :data:`PER_BATCH_IMAGES` test images at the batch's largest value (100th
        percentile of the DAC inputs and of each column's ADC currents) (:data:`RANGES`).
    adc_range : {"signal", "worst_case"}
        ``CrossbarConfig.adc_calibration``: common mode subtracted and the full scale from
        the signal, or nothing subtracted and the full scale the largest tile current
        ``rows v_read G_max``.
    adc_bits : int
        ADC resolution (bits), 1 to 32.
    programming_sigma : float
        Static programming variation, sigma of ln(G) (dimensionless), in [0, 3].
    decode_as_uniform : bool
        The decode assumes levels uniform in G between the stack's extremes
        (``Nonidealities.decode_as_uniform``).
    deploy_options : tuple of (str, value) pairs
        Keyword arguments of :func:`imclib.deploy.deploy_network`.
    """

    weight_map: str = "calibrated"
    scale: str = "column"
    ranges: str = "fixed"
    adc_range: str = "signal"
    adc_bits: int = defaults.ADC_BITS
    programming_sigma: float = defaults.PROGRAMMING_SIGMA
    decode_as_uniform: bool = False
    deploy_options: tuple = ()

    def __post_init__(self):
        _validate.choice("weight_map", self.weight_map, WEIGHT_MAPS)
        _validate.choice("scale", self.scale, SCALES)
        _validate.choice("ranges", self.ranges, RANGES)
        _validate.choice("adc_range", self.adc_range, ADC_CALIBRATIONS)
        _validate.integer_in_range("adc_bits", self.adc_bits, 1, 32)
        _validate.in_range("programming_sigma", self.programming_sigma, 0.0, SIGMA_MAX)
        _validate.boolean("decode_as_uniform", self.decode_as_uniform)
        if not isinstance(self.deploy_options, tuple) or not all(
                isinstance(option, tuple) and len(option) == 2 and isinstance(option[0], str)
                for option in self.deploy_options):
            raise ValueError("deploy_options must be a tuple of (keyword, value) pairs of deploy_network, "
                             f"got {self.deploy_options!r}")

    @property
    def label(self) -> str:
        """The assumptions that differ from the expert deployment, in words."""
        parts = (["naive max-|w| weight map"] * (self.weight_map == "naive")
                 + ["one weight map per layer"] * (self.scale == "layer")
                 + [f"ranges set on each {PER_BATCH_IMAGES}-image batch"] * (self.ranges == "per batch")
                 + ["ADC range worst case (no common-mode subtraction)"] * (self.adc_range == "worst_case")
                 + [f"{self.adc_bits}-bit ADC"] * (self.adc_bits != defaults.ADC_BITS)
                 + [f"{100 * self.programming_sigma:g} % programming variation"]
                 * (self.programming_sigma != defaults.PROGRAMMING_SIGMA)
                 + ["levels decoded as uniform"] * self.decode_as_uniform
                 + [f"deploy_network({name}={value!r})" for name, value in self.deploy_options])
        return ", ".join(parts) or "expert deployment"

    def config(self, base: CrossbarConfig) -> CrossbarConfig:
        """``base`` with these assumptions (and, for per-batch ranges, DAC and ADC full
        scales at the 100th percentile)."""
        per_batch = {"input_percentile": 100.0, "adc_percentile": 100.0} if self.ranges == "per batch" else {}
        return base.with_(weight_map=self.weight_map, scale=self.scale, adc_calibration=self.adc_range,
                          periphery=dataclasses.replace(base.periphery, adc_bits=self.adc_bits),
                          nonideal=dataclasses.replace(base.nonideal, programming_sigma=self.programming_sigma,
                                                       decode_as_uniform=self.decode_as_uniform), **per_batch)


PAPER_DEPLOYMENTS = (
    Deployment(),
    Deployment(weight_map="naive"),
    Deployment(scale="layer"),
    Deployment(adc_bits=6),
    Deployment(adc_bits=5),
    Deployment(adc_bits=4),
    Deployment(adc_range="worst_case"),
    Deployment(adc_range="worst_case", adc_bits=6),
    Deployment(scale="layer", adc_range="worst_case"),
    Deployment(ranges="per batch"),
    Deployment(programming_sigma=0.0),
    Deployment(programming_sigma=0.10),
    Deployment(decode_as_uniform=True),
    Deployment(deploy_options=(("column_calibration", False),)),
    Deployment(scale="layer", deploy_options=(("column_calibration", False),)),
    Deployment(scale="layer", adc_range="worst_case", deploy_options=(("column_calibration", False),)),
    Deployment(deploy_options=(("column_target", "quantized"),)),
)
"""The rows of :func:`paper_reconciliation`: the expert deployment, then one assumption a
2019-2021 hardware simulation plausibly made at a time (naive or per-layer map, a 6-, 5- or
4-bit ADC, an ADC that sees the whole current, ranges scaled to each batch, no or 10 %
programming variation, a uniform-level decode, no per-column calibration after programming,
the column calibration fitted towards the quantized weights ``x @ W_q`` instead of the float
network's ``x @ W``, a contrast of :func:`imclib.deploy.resolve_column_target`) and four combinations (worst-case ADC range
at 6 bits; per-layer map with the worst-case ADC range; per-layer map without the column
calibration, alone and with the worst-case ADC range). A deployment that
:func:`imclib.deploy.deploy_network` runs with a keyword argument is one more entry, e.g.
``Deployment(deploy_options=(("keyword", False),))``."""
RECONCILIATION_CRITERION = (
    "a deployment reproduces the paper's gap if 97.56 % - 94.48 % = 3.08 points lies inside the 95 % CI "
    "(Student t over device seeds) of its mean gap, software (float network, training seed 0) minus hardware "
    "(the same network deployed, no retraining), on the 10,000 test images")


def paper_reconciliation(config: CrossbarConfig | None = None, deployments=PAPER_DEPLOYMENTS, device_seeds=range(3),
                         train_seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """Which deployment assumptions give the paper's 3.08-point gap (:data:`RECONCILIATION_CRITERION`).

    Every :class:`Deployment` of ``deployments`` deploys the float network of ``train_seed``
    on ``config`` (default ``CrossbarConfig()``) with its assumptions, on each of
    ``device_seeds`` (at least 2), 10,000 test images, cached per seed
    (:func:`network_accuracy`). One row per deployment: ``assumptions`` (its label), its
    fields, ``accuracy`` (mean), ``accuracy_ci_low``/``accuracy_ci_high``, ``gap`` =
    ``software - accuracy`` with ``gap_ci_low``/``gap_ci_high`` (95 % Student-t interval of
    the mean, :func:`ci95`), ``device_seeds``, ``software`` and ``reproduces_paper_gap``
    (``gap_ci_low <= PAPER_GAP <= gap_ci_high``). Accuracies and gaps are fractions.
    """
    config = config or CrossbarConfig()
    seeds = [_validate.seed(f"device_seeds[{index}]", seed) for index, seed in enumerate(device_seeds)]
    if len(seeds) < 2:
        raise ValueError(f"device_seeds must hold at least 2 seeds (a confidence interval), got {len(seeds)}")
    software = network_accuracy("software", config, train_seed, ()).accuracy.iloc[0]
    rows = []
    for deployment in tqdm(list(deployments), desc="paper reconciliation", disable=not progress):
        _validate.instance("deployment", deployment, Deployment)
        network = "PTQ naive" if deployment.weight_map == "naive" else "PTQ expert"
        accuracy = network_accuracy(network, deployment.config(config), train_seed, seeds, ranges=deployment.ranges,
                                    deploy_options=deployment.deploy_options).accuracy.to_numpy(float)
        low, high = ci95(software - accuracy)
        rows.append({"assumptions": deployment.label, **dataclasses.asdict(deployment),
                     "accuracy": accuracy.mean(), "accuracy_ci_low": software - high, "accuracy_ci_high": software - low,
                     "gap": software - accuracy.mean(), "gap_ci_low": low, "gap_ci_high": high,
                     "device_seeds": len(seeds), "software": software, "reproduces_paper_gap": bool(low <= PAPER_GAP <= high)})
    return pd.DataFrame(rows)


def reconciliation_record(table: pd.DataFrame) -> dict:
    """:func:`paper_reconciliation` as JSON-able data for ``results.json``: assumptions ->
    accuracy and gap (fractions, 4 decimals), the gap's 95 % CI, device seeds, and whether
    it reproduces the paper's gap."""
    return {row.assumptions: {"accuracy": round(row.accuracy, 4), "gap": round(row.gap, 4),
                              "gap_ci95": [round(row.gap_ci_low, 4), round(row.gap_ci_high, 4)],
                              "device_seeds": int(row.device_seeds), "reproduces_paper_gap": bool(row.reproduces_paper_gap)}
            for row in table.itertuples()}


def reconciliation_sentence(table: pd.DataFrame) -> str:
    """One generated paragraph on :func:`paper_reconciliation`: which deployments reproduce
    the paper's gap and, around it, the nearest smaller and larger gaps."""
    def points(value):
        return f"{100 * value:.2f}"

    def describe(row):
        return f"{row.assumptions} ({points(row.gap)} points, 95 % CI {points(row.gap_ci_low)}–{points(row.gap_ci_high)})"

    expert = table[table.assumptions == Deployment().label]
    hits = table[table.reproduces_paper_gap]
    below, above = table[table.gap_ci_high < PAPER_GAP], table[table.gap_ci_low > PAPER_GAP]
    text = (f"The paper's gap is {points(PAPER_GAP)} points ({points(PAPER['software_accuracy'])} % software, "
            f"{points(PAPER['hardware_accuracy'])} % hardware). Of {len(table)} "
            f"deployments of our software network ({points(table.software.iloc[0])} %; 10,000 test images, "
            f"{int(table.device_seeds.min())} device seeds each), ")
    text += (f"{len(hits)} reproduce{'s' if len(hits) == 1 else ''} it within the 95 % CI of the mean gap: "
             + "; ".join(map(describe, hits.itertuples()))
             if len(hits) else "none reproduces it within the 95 % CI of the mean gap")
    text += "".join(f"; the nearest {side} is {describe(rows.loc[(rows.gap - PAPER_GAP).abs().idxmin()])}"
                    for side, rows in (("smaller gap", below), ("larger gap", above)) if len(rows))
    if len(expert):
        text += f". The expert deployment's gap is {points(expert.gap.iloc[0])} points"
    return text + "."


def adc_bits_sweep(config: CrossbarConfig, bits=(4, 6, 8, 10), device_seeds=(0,), train_seed: int = 0,
                   progress: bool = True) -> pd.DataFrame:
    """Test accuracy of the expert-PTQ network against ADC resolution, for the naive ADC
    range (no common-mode subtraction, full scale ``rows v_read G_max``) and the calibrated
    one. Columns: ``adc_bits``, ``adc_range`` (``naive``/``calibrated``), ``device_seed``,
    ``accuracy``."""
    frames = []
    for b in tqdm(list(bits), desc="ADC bits", disable=not progress):
        for label, mode in (("naive", "worst_case"), ("calibrated", "signal")):
            deployed = config.with_(adc_calibration=mode,
                                    periphery=dataclasses.replace(config.periphery, adc_bits=int(b)))
            table = network_accuracy("PTQ expert", deployed, train_seed, device_seeds)
            frames.append(table.assign(adc_bits=int(b), adc_range=label))
    return pd.concat(frames, ignore_index=True)[["adc_bits", "adc_range", "device_seed", "accuracy"]]


def confusion(config: CrossbarConfig, seed: int = 0, qat: bool = True, n_components: int | None = None) -> pd.DataFrame:
    """Tidy confusion counts of one hardware network (the hardware-aware trained one with
    ``qat``, training seed 0; else the float one): columns ``true``, ``predicted``, ``count``."""
    _, _, x_test, y_test = features(n_components)
    model = hwa_model(config, 0, n_components)[0] if qat else float_model(n_components)[0]
    predicted = hardware_logits(model, x_test, config, seed, calibration_inputs(n_components)).argmax(axis=1)
    counts = np.zeros((10, 10), dtype=int)
    np.add.at(counts, (y_test, predicted), 1)
    true, pred = np.indices(counts.shape)
    return pd.DataFrame({"true": true.ravel(), "predicted": pred.ravel(), "count": counts.ravel()})


def per_class_accuracy(confusion_table: pd.DataFrame) -> pd.DataFrame:
    """Accuracy per true class from a tidy confusion table."""
    total = confusion_table.groupby("true")["count"].sum()
    right = confusion_table[confusion_table.true == confusion_table.predicted].set_index("true")["count"]
    return (right / total).rename("accuracy").reset_index().rename(columns={"true": "digit"})


def tile_count(n_components: int | None, config: CrossbarConfig, hidden: tuple[int, ...] = FLOAT_TRAINING.hidden) -> int:
    """Arrays the whole network occupies (rows x columns tiles summed over layers)."""
    sizes = [784 if n_components is None else n_components, *hidden, 10]
    per_array_columns = config.cols - 1 if config.input_sum == "reference" else config.cols
    physical = (lambda n: 2 * n) if config.mapping == "differential" else (lambda n: n)
    return int(sum(-(-a // config.rows) * -(-physical(b) // per_array_columns) for a, b in zip(sizes, sizes[1:])))


C2_TRAIN_SEEDS, C2_DEVICE_SEEDS = (0, 1, 2), range(10)
C2_PLAN = {
    "offset/digital": dict(train_seeds=C2_TRAIN_SEEDS, device_seeds=C2_DEVICE_SEEDS, naive_device_seeds=C2_DEVICE_SEEDS),
    "offset/reference": dict(train_seeds=C2_TRAIN_SEEDS[:1], device_seeds=C2_DEVICE_SEEDS, naive_device_seeds=()),
    "differential": dict(train_seeds=C2_TRAIN_SEEDS[:1], device_seeds=C2_DEVICE_SEEDS, naive_device_seeds=()),
}
"""Seeds of C2 per decode scheme (:func:`deployment_study` arguments): 3 HWA training seeds
x 10 device seeds and a naive contrast for offset/digital; 1 x 10 for the other schemes (budget)."""
C2_MIN = {"software": 0.98, "PTQ expert": 0.95, "HWA": 0.97}
"""C2's thresholds on mean test accuracy (fractions), per network."""
C2_HWA_SD_MAX = 0.003
"""C2's largest sd of the HWA accuracy over device seeds (pooled within training seeds), a fraction."""


def _percent(fraction: float) -> str:
    """``0.98`` -> ``"98.0 %"``."""
    return f"{100 * fraction:.1f} %"


def _c2_criterion() -> str:
    """C2's criterion in one line, from :data:`C2_PLAN`, :data:`C2_MIN` and :data:`C2_HWA_SD_MAX`."""
    def seeds(scheme):
        plan = C2_PLAN[scheme]
        return f"{len(plan['train_seeds'])} training x {len(plan['device_seeds'])} device seeds for {scheme}"
    return (f"{VERDICT_RULE}. The criterion, per decode scheme: software mean >= {_percent(C2_MIN['software'])} "
            f"({len(C2_TRAIN_SEEDS)} training seeds), "
            f"expert PTQ mean >= {_percent(C2_MIN['PTQ expert'])} ({len(C2_DEVICE_SEEDS)} device seeds), HWA mean >= "
            f"{_percent(C2_MIN['HWA'])} with device-seed sd <= {100 * C2_HWA_SD_MAX:.1f} points; HWA "
            + ", ".join(map(seeds, C2_PLAN)) + "; 10,000 test images; the paper reconciliation is reported, not judged: "
            + RECONCILIATION_CRITERION)


def check_c2(confidence: pd.DataFrame, reconciliation: pd.DataFrame, config: CrossbarConfig) -> tuple[pd.DataFrame, str]:
    """Judge C2 and record it (:func:`imclib.results.record_claim`): ``(checks, verdict)``.

    ``confidence``: :func:`confidence_table` of the study of every scheme of
    :data:`C2_PLAN` (with a ``scheme`` column); ``reconciliation``:
    :func:`paper_reconciliation`, stored as ``measured["paper_reconciliation"]``;
    ``config``: the deployed base config (its converter bits are recorded). ``checks`` has
    one row per scheme, one boolean column per condition of the criterion and ``passes``.
    """
    stats = confidence.set_index(["scheme", "network"])
    default = next(iter(C2_PLAN))
    software = stats.loc[(default, "software")]
    rows = []
    for scheme in C2_PLAN:
        expert, aware = stats.loc[(scheme, "PTQ expert")], stats.loc[(scheme, "HWA")]
        rows.append({"scheme": scheme, f"software >= {_percent(C2_MIN['software'])}": software["mean"] >= C2_MIN["software"],
                     f"expert PTQ >= {_percent(C2_MIN['PTQ expert'])}": expert["mean"] >= C2_MIN["PTQ expert"],
                     f"HWA >= {_percent(C2_MIN['HWA'])}": aware["mean"] >= C2_MIN["HWA"],
                     f"HWA device sd <= {100 * C2_HWA_SD_MAX:.1f} points": aware["device_sd"] <= C2_HWA_SD_MAX})
    checks = pd.DataFrame(rows).set_index("scheme")
    checks["passes"] = checks.all(axis=1)
    by_scheme = {scheme: bool(ok) for scheme, ok in checks.passes.items()}
    verdict = scheme_verdict(by_scheme)

    def value(scheme, network, column):
        return round(float(stats.loc[(scheme, network), column]), 4)

    measured = {
        "software_mean": value(default, "software", "mean"),
        "PTQ_naive_mean": value(default, "PTQ naive", "mean"),
        "PTQ_expert_mean": value(default, "PTQ expert", "mean"),
        "PTQ_expert_std": value(default, "PTQ expert", "sd"),
        "HWA_mean": value(default, "HWA", "mean"),
        "HWA_std": value(default, "HWA", "device_sd"),
        "device_seeds": int(stats.loc[(default, "HWA"), "device_seeds"]),
        "train_seeds": int(stats.loc[(default, "HWA"), "train_seeds"]),
        "adc_bits": config.periphery.adc_bits,
        "dac_bits": config.periphery.dac_bits,
        "validation": SPLIT,
        "paper_reconciliation": reconciliation_record(reconciliation),
    }
    statistics = {
        "n_seeds": {scheme: int(stats.loc[(scheme, "PTQ expert"), "device_seeds"]) for scheme in C2_PLAN},
        "ci95": {scheme: {network: [value(scheme, network, "ci_low"), value(scheme, network, "ci_high")]
                          for network in ("PTQ expert", "HWA")} for scheme in C2_PLAN},
        "per_scheme": {scheme: {"PTQ_expert_mean": value(scheme, "PTQ expert", "mean"),
                                "PTQ_expert_std": value(scheme, "PTQ expert", "sd"),
                                "HWA_mean": value(scheme, "HWA", "mean"), "HWA_std": value(scheme, "HWA", "device_sd"),
                                "HWA_train_seeds": int(stats.loc[(scheme, "HWA"), "train_seeds"])} for scheme in C2_PLAN},
    }
    record_claim("C2", "MNIST on 4x4-tiled 4-state MTJ arrays: hardware close to software", measured,
                 passed=verdict == "reproduced", paper={"software": PAPER["software_accuracy"],
                                                        "hardware": PAPER["hardware_accuracy"]},
                 verdict=verdict, criterion=_c2_criterion(), by_scheme=by_scheme, statistics=statistics)
    return checks, verdict


def c2_findings(confidence: pd.DataFrame, checks: pd.DataFrame, verdict: str, sweep: pd.DataFrame,
                reconciliation: pd.DataFrame) -> str:
    """02's "What we found" paragraph (markdown), every number from the arguments:
    :func:`confidence_table`, :func:`check_c2`'s ``checks`` and ``verdict``,
    :func:`adc_bits_sweep` and :func:`paper_reconciliation`."""
    stats = confidence.set_index(["scheme", "network"])
    default = next(iter(C2_PLAN))
    software, naive = stats.loc[(default, "software")], stats.loc[(default, "PTQ naive")]
    curve = sweep.groupby(["adc_range", "adc_bits"]).accuracy.mean()
    best = curve["calibrated"].max()

    def bits_needed(mode):
        within = curve[mode][curve[mode] >= best - 0.005]
        return f"{within.index.min()} bits" if len(within) else f"more than {curve[mode].index.max()} bits"

    def scheme_sentence(scheme):
        expert, aware = stats.loc[(scheme, "PTQ expert")], stats.loc[(scheme, "HWA")]
        failed = [name for name, ok in checks.loc[scheme].drop("passes").items() if not ok]
        return (f"* **{scheme}**: expert PTQ {expert['mean']:.2%} (95 % CI {expert['ci_low']:.2%}–{expert['ci_high']:.2%}, "
                f"sd {expert['sd']:.2%} over {int(expert['device_seeds'])} device seeds); HWA {aware['mean']:.2%} "
                f"(CI {aware['ci_low']:.2%}–{aware['ci_high']:.2%}, device-seed sd {aware['device_sd']:.2%}, "
                f"{int(aware['n'])} evaluations over {int(aware['train_seeds'])} training seed(s)): "
                + ("passes." if checks.loc[scheme, "passes"] else f"fails ({'; '.join(failed)} does not hold)."))

    passes = [scheme for scheme, ok in checks.passes.items() if ok]
    fails = [scheme for scheme, ok in checks.passes.items() if not ok]
    low, high = sweep.adc_bits.min(), defaults.ADC_BITS
    return (
        f"The software network reaches {software['mean']:.2%} (mean of {int(software['n'])} training seeds; paper "
        f"{PAPER['software_accuracy']:.2%}). Deployed naively ({default}, symmetric max |w| map on the uneven "
        f"binary-stack levels) it keeps only {naive['mean']:.2%} (95 % CI {naive['ci_low']:.2%}–{naive['ci_high']:.2%}, "
        f"{int(naive['n'])} device seeds). With the calibrated map, fixed converter ranges calibrated on training images "
        f"and the common mode subtracted before the ADC, per decode scheme (paper hardware: "
        f"{PAPER['hardware_accuracy']:.2%}):\n\n" + "\n".join(map(scheme_sentence, C2_PLAN)) +
        f"\n\nOn the ADC-bits curve (expert PTQ network, {default}, device seed(s) "
        f"{', '.join(map(str, sorted(sweep.device_seed.unique())))}) the naive ADC range needs {bits_needed('naive')} "
        f"to come within 0.5 points of the best calibrated result ({best:.2%}), the calibrated range "
        f"{bits_needed('calibrated')} (at {low} bits: {curve['naive'][low]:.1%} naive vs {curve['calibrated'][low]:.1%} "
        f"calibrated; at {high} bits: {curve['naive'][high]:.2%} vs {curve['calibrated'][high]:.2%}).\n\n"
        f"**The paper's {PAPER['hardware_accuracy']:.2%}.** {reconciliation_sentence(reconciliation)}\n\n"
        f"Verdict on C2 under the criterion stated above: **{verdict}** (passes: {', '.join(passes) or 'no scheme'}; "
        f"fails: {', '.join(fails) or 'no scheme'}).")
