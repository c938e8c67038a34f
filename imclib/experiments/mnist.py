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
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from tqdm.auto import tqdm

from .. import cache
from ..config import DECODE_SCHEMES, CrossbarConfig
from ..data import load_mnist
from ..hwa import train_hwa
from ..cache import cached_train, default_cache_dir
from ..mlp import MLP, TrainConfig, train_mlp
from ..network import device_quantizer, hardware_accuracy, hardware_logits

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
    return cached_train(key, lambda: train_mlp(data["x_fit"], data["y_fit"], training, quantize=quantize, init=start,
                                               x_val=data["x_val"], y_val=data["y_val"]))


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
    return cached_train(key, lambda: train_hwa(data["x_fit"], data["y_fit"], config, training, start,
                                               x_val=data["x_val"], y_val=data["y_val"], n_calibration=CALIBRATION))


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


def _hardware_table(model_key: dict, model: MLP, config: CrossbarConfig, seeds, n_components=None,
                    subset: str = "test") -> pd.DataFrame:
    """Accuracy per device seed of ``model`` deployed on ``config`` on the ``subset``
    (``test`` or ``val``) images; each seed's evaluation is cached on its own, so studies
    that share an evaluation compute it once. Columns ``seed``, ``accuracy``."""
    data = split(n_components)
    x, y = data[f"x_{subset}"], data[f"y_{subset}"]
    frames = []
    for seed in seeds:
        key = {"model": model_key, "config": repr(config), "seed": int(seed), "pca": n_components, "subset": subset,
               "calibration": CALIBRATION, "validation": SPLIT}
        frames.append(cached_table(key, lambda seed=seed: hardware_accuracy(model, x, y, config, [int(seed)],
                                                                            calibration_inputs(n_components))))
    return pd.concat(frames, ignore_index=True)


def network_accuracy(network: str, config: CrossbarConfig, train_seed: int = 0, device_seeds=range(10),
                     n_components: int | None = None, subset: str = "test") -> pd.DataFrame:
    """Accuracy of one network of :data:`NETWORKS` on ``subset`` (``test``: the 10,000 test
    images; ``val``: the validation split), one row per device seed (cached).

    ``software``: the float network in floating point (one row, ``device_seed`` -1);
    ``PTQ naive``: the float network with the max-|w| map; ``PTQ expert``: the float network
    with the calibrated map and ranges; ``HWA``: the network hardware-aware trained for
    ``config`` (:func:`hwa_model`). Columns: ``network``, ``train_seed``, ``device_seed``,
    ``accuracy``.
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
    table = _hardware_table(model_key, model, deployed, device_seeds, n_components, subset)
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


def confidence_table(study: pd.DataFrame) -> pd.DataFrame:
    """Mean accuracy per network (and per ``scheme`` if the study has that column) with a
    95 % confidence interval of the mean over its evaluations (Student t,
    ``mean +- t_{0.975, n-1} sd / sqrt(n)``), the sd over device seeds (pooled within
    training seeds) and the counts."""
    from scipy import stats

    keys = [column for column in ("scheme", "network") if column in study]
    rows = []
    for names, group in study.groupby(keys, sort=False):
        n, mean, sd = len(group), group.accuracy.mean(), group.accuracy.std(ddof=1) if len(group) > 1 else 0.0
        half = stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n) if n > 1 else float("nan")
        device_sd = (group.groupby("train_seed").accuracy.std(ddof=1).pow(2).mean() ** 0.5
                     if group.device_seed.max() >= 0 and n > 1 else float("nan"))
        rows.append({**dict(zip(keys, names if isinstance(names, tuple) else (names,))), "mean": mean,
                     "ci_low": mean - half, "ci_high": mean + half,
                     "sd": sd, "device_sd": device_sd, "train_seeds": group.train_seed.nunique(),
                     "device_seeds": group.device_seed[group.device_seed >= 0].nunique(), "n": n})
    return pd.DataFrame(rows)


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
