"""Studies 02 and 03: MNIST on tiled 4-state MTJ arrays (claims C2, C3).

Data: the last ``VALIDATION`` (5,000) training images are the validation split; networks
train on the first 55,000, every choice is made on training or validation images, and the
10,000 test images only report. Converter ranges are calibrated on ``CALIBRATION``
training images (:mod:`imclib.deploy`).

Models are trained once and cached by config hash (:func:`imclib.mlp.cached_train`).
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
import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from tqdm.auto import tqdm

from .. import cache
from ..config import CrossbarConfig
from ..data import load_mnist
from ..hwa import train_hwa
from ..mlp import MLP, TrainConfig, cached_train, default_cache_dir, train_mlp
from ..network import device_quantizer, hardware_accuracy, hardware_logits

FLOAT_TRAINING = TrainConfig()
QAT_TRAINING = TrainConfig(epochs=4, learning_rate=1e-3, qat=True, qat_noise=0.03)
HWA_TRAINING = TrainConfig(epochs=2, learning_rate=1e-3, weight_decay=0.0)
"""Hardware-aware fine-tuning (:func:`imclib.hwa.train_hwa`) from the float network."""
PERCENTILE_GRID = (100.0, 99.9, 99.5, 99.0, 98.0, 95.0, 90.0)
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


TABLE_CODE = ("cells.py", "array.py", "layer.py", "mapping.py", "deploy.py", "network.py", "periphery.py",
              "nonidealities.py", "circuit.py", "config.py", "defaults.py", "mlp.py", "hwa.py", "cache.py", "data.py",
              "experiments/mnist.py")
"""The modules a cached accuracy table depends on (the physics, deployment, training and data)."""


def _code_digest() -> str:
    """sha256 of the modules of :data:`TABLE_CODE`: a change to any of them invalidates
    every cached table (plots, widgets or docs do not)."""
    digest = hashlib.sha256()
    package = Path(__file__).resolve().parents[1]
    for name in TABLE_CODE:
        digest.update(name.encode())
        digest.update((package / name).read_bytes())
    return digest.hexdigest()


def cached_table(key: dict, compute) -> pd.DataFrame:
    """``compute()`` (a DataFrame), memoised under ``key`` plus the code digest: looked up
    in the shipped store (``imclib/models/tables/``, written by ``python -m imclib.cache
    --ship-models``), then in the user cache, else computed and stored in the user cache.
    An unreadable entry is moved aside with a warning and recomputed; every lookup is
    logged like a model's (``$IMCLIB_MODEL_LOG``), so the tables a reproduce run used can
    be shipped."""
    text = json.dumps({"key": key, "code": _code_digest()}, sort_keys=True, default=repr)
    name = f"{hashlib.sha256(text.encode()).hexdigest()}.pkl"
    stores = [] if cache.retraining() else [cache.shipped_store_dir() / "tables", default_cache_dir() / "tables"]
    for path in stores:
        if path.joinpath(name).exists():
            try:
                table = pd.read_pickle(path / name)
            except Exception as error:  # noqa: BLE001 - any unreadable entry is healed the same way
                cache.move_aside(path / name, f"unreadable table ({type(error).__name__}: {error})")
                continue
            if isinstance(table, pd.DataFrame):
                cache.log_lookup(name, "table", str(path))
                return table
            cache.move_aside(path / name, f"not a DataFrame but {type(table).__name__}")
    table = compute()
    path = default_cache_dir() / "tables" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    table.to_pickle(partial)
    os.replace(partial, path)
    cache.log_lookup(name, "table", "computed")
    return table


def _hardware_table(model_key: dict, model: MLP, config: CrossbarConfig, seeds, n_components=None) -> pd.DataFrame:
    """Test accuracy per device seed of ``model`` deployed on ``config`` (cached)."""
    data = split(n_components)
    key = {"model": model_key, "config": repr(config), "seeds": list(seeds), "pca": n_components,
           "calibration": CALIBRATION, "validation": SPLIT}
    return cached_table(key, lambda: hardware_accuracy(model, data["x_test"], data["y_test"], config, seeds,
                                                       calibration_inputs(n_components)))


def deployment_study(config: CrossbarConfig, train_seeds=(0, 1, 2), device_seeds=range(10),
                     other_device_seeds=range(3), naive_device_seeds=range(3), progress: bool = True) -> pd.DataFrame:
    """Test accuracy of the software network, naive PTQ, expert PTQ and hardware-aware
    training on ``config`` (10,000 test images; ranges calibrated on training images).

    ``network``: ``software`` (per training seed, ``device_seed`` -1), ``PTQ naive`` (the
    float network with the max-|w| map), ``PTQ expert`` (the float network with the
    calibrated map and ranges), ``HWA`` (hardware-aware trained). The first training seed's
    networks run on ``device_seeds`` (the naive contrast on ``naive_device_seeds``); the HWA
    networks of the other training seeds on ``other_device_seeds`` (each evaluation of the
    full test set takes seconds to minutes). Columns: ``network``, ``train_seed``,
    ``device_seed``, ``accuracy``.
    """
    data = split()
    first = train_seeds[0]
    jobs = [("PTQ naive", first, naive_device_seeds), ("PTQ expert", first, device_seeds)]
    jobs += [("HWA", s, device_seeds if s == first else other_device_seeds) for s in train_seeds]
    frames = []
    for seed in train_seeds:
        model, _ = float_model(None, dataclasses.replace(FLOAT_TRAINING, seed=seed))
        frames.append(pd.DataFrame({"network": ["software"], "train_seed": [seed], "device_seed": [-1],
                                    "accuracy": [model.accuracy(data["x_test"], data["y_test"])]}))
    for network, seed, seeds in tqdm(jobs, desc="deployments", disable=not progress):
        float_training = dataclasses.replace(FLOAT_TRAINING, seed=seed)
        if network == "HWA":
            model, _ = hwa_model(config, seed)
            model_key = {"hwa": seed, "training": HWA_TRAINING, "device": repr(config)}
            deployed = config
        else:
            model, _ = float_model(None, float_training)
            model_key = {"float": float_training}
            deployed = config.with_(weight_map="naive" if network == "PTQ naive" else "calibrated")
        table = _hardware_table(model_key, model, deployed, seeds)
        frames.append(table.rename(columns={"seed": "device_seed"}).assign(network=network, train_seed=seed))
    return pd.concat(frames, ignore_index=True)[["network", "train_seed", "device_seed", "accuracy"]]


def confidence_table(study: pd.DataFrame) -> pd.DataFrame:
    """Mean accuracy per network with a 95 % confidence interval of the mean over its
    evaluations (Student t, ``mean +- t_{0.975, n-1} sd / sqrt(n)``), the sd over device
    seeds (pooled within training seeds) and the counts."""
    from scipy import stats

    rows = []
    for network, group in study.groupby("network", sort=False):
        n, mean, sd = len(group), group.accuracy.mean(), group.accuracy.std(ddof=1) if len(group) > 1 else 0.0
        half = stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n) if n > 1 else float("nan")
        device_sd = (group.groupby("train_seed").accuracy.std(ddof=1).pow(2).mean() ** 0.5
                     if group.device_seed.max() >= 0 and n > 1 else float("nan"))
        rows.append({"network": network, "mean": mean, "ci_low": mean - half, "ci_high": mean + half,
                     "sd": sd, "device_sd": device_sd, "train_seeds": group.train_seed.nunique(),
                     "device_seeds": group.device_seed[group.device_seed >= 0].nunique(), "n": n})
    return pd.DataFrame(rows)


def adc_bits_sweep(config: CrossbarConfig, bits=(4, 6, 8, 10), device_seeds=(0,), train_seed: int = 0,
                   progress: bool = True) -> pd.DataFrame:
    """Test accuracy of the expert-PTQ network against ADC resolution, for the naive ADC
    range (no common-mode subtraction, full scale ``rows v_read G_max``) and the calibrated
    one. Columns: ``adc_bits``, ``adc_range`` (``naive``/``calibrated``), ``device_seed``,
    ``accuracy``."""
    float_training = dataclasses.replace(FLOAT_TRAINING, seed=train_seed)
    model, _ = float_model(None, float_training)
    frames = []
    for b in tqdm(list(bits), desc="ADC bits", disable=not progress):
        for label, mode in (("naive", "worst_case"), ("calibrated", "signal")):
            deployed = config.with_(adc_calibration=mode,
                                    periphery=dataclasses.replace(config.periphery, adc_bits=int(b)))
            table = _hardware_table({"float": float_training}, model, deployed, device_seeds)
            frames.append(table.rename(columns={"seed": "device_seed"}).assign(adc_bits=int(b), adc_range=label))
    return pd.concat(frames, ignore_index=True)[["adc_bits", "adc_range", "device_seed", "accuracy"]]


def calibrate_percentile(config: CrossbarConfig, n_components: int | None = None, n_calibration: int = 5000,
                         grid=PERCENTILE_GRID) -> pd.DataFrame:
    """Post-training calibration of the clipping percentile of the naive weight range on the
    validation split (never the test set).

    Returns ``percentile``, ``accuracy`` on the first ``n_calibration`` validation images,
    one device seed (0); pick the best with ``table.loc[table.accuracy.idxmax()]``.
    """
    data = split(n_components)
    model, _ = float_model(n_components)
    x_cal, y_cal = data["x_val"][:n_calibration], data["y_val"][:n_calibration]
    naive = config.with_(weight_map="naive")
    frames = [hardware_accuracy(model, x_cal, y_cal, naive.with_(weight_percentile=p), [0],
                                calibration_inputs(n_components)).assign(percentile=p)
              for p in grid]
    return pd.concat(frames, ignore_index=True)[["percentile", "accuracy"]]


def accuracy_table(config: CrossbarConfig, seeds=range(5), n_components: int | None = None) -> pd.DataFrame:
    """Test accuracy of software, PTQ-on-hardware and QAT-on-hardware networks.

    PTQ is reported twice: with ``config`` as given (the calibrated map by default) and
    with the naive map clipped at the percentile calibrated on the validation split
    (:func:`calibrate_percentile`). Converter ranges are calibrated on training images. Columns: ``pca`` (components or "none"), ``network``
    (``software``, ``PTQ hardware``, ``PTQ calibrated``, ``QAT hardware``), ``seed`` (-1
    for software), ``accuracy``, ``percentile``.
    """
    _, _, x_test, y_test = features(n_components)
    model, _ = float_model(n_components)
    qat, _ = qat_model(config, n_components)
    calibration = calibrate_percentile(config, n_components)
    best = float(calibration.percentile[calibration.accuracy.idxmax()])
    calibrated = config.with_(weight_map="naive", weight_percentile=best)
    ranges = calibration_inputs(n_components)
    frames = [
        pd.DataFrame({"network": ["software"], "seed": [-1], "accuracy": [model.accuracy(x_test, y_test)]}),
        hardware_accuracy(model, x_test, y_test, config, seeds, ranges).assign(network="PTQ hardware"),
        hardware_accuracy(model, x_test, y_test, calibrated, seeds, ranges).assign(network="PTQ calibrated",
                                                                                    percentile=best),
        hardware_accuracy(qat, x_test, y_test, config, seeds, ranges).assign(network="QAT hardware"),
    ]
    table = pd.concat(frames, ignore_index=True)
    table.insert(0, "pca", "none" if n_components is None else n_components)
    table["percentile"] = table.percentile.fillna(config.weight_percentile)
    return table[["pca", "network", "seed", "accuracy", "percentile"]]


def summarize(table: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation, min and max accuracy per (pca, network)."""
    return (table.groupby(["pca", "network"], sort=False).accuracy
            .agg(["mean", "std", "min", "max", "count"]).reset_index())


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


def pca_study(config: CrossbarConfig, components=(16, 32, 64, 128, 256, None), seeds=range(5)) -> pd.DataFrame:
    """Accuracy tables for each PCA size, with the tile count each needs."""
    frames = [accuracy_table(config, seeds, n).assign(tiles=tile_count(n, config))
              for n in tqdm(components, desc="PCA sizes")]
    return pd.concat(frames, ignore_index=True)


def gap_table(study: pd.DataFrame) -> pd.DataFrame:
    """Software minus hardware accuracy (mean over seeds) per PCA size and network."""
    means = study.groupby(["pca", "network"], sort=False).accuracy.mean().unstack("network")
    tiles = study.groupby("pca", sort=False).tiles.first()
    out = pd.DataFrame({
        "tiles": tiles,
        "software": means["software"],
        "gap_PTQ": means["software"] - means["PTQ hardware"],
        "gap_PTQ_calibrated": means["software"] - means["PTQ calibrated"],
        "gap_QAT": means["software"] - means["QAT hardware"],
    })
    return out.reset_index()
