"""Studies 02 and 03: MNIST on tiled 4-state MTJ arrays (claims C2, C3).

Models are trained once and cached by config hash (:func:`imclib.mlp.cached_train`).
Hardware accuracy is reported per device seed: each seed programs the whole network anew
(static deviations) and redraws read noise. PCA, when used, is a digital front end: the
projection runs in software and only the MLP runs on the arrays.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from tqdm.auto import tqdm

from .. import cache
from ..config import CrossbarConfig
from ..data import load_mnist
from ..mlp import MLP, TrainConfig, cached_train, default_cache_dir, train_mlp
from ..network import device_quantizer, hardware_accuracy, hardware_logits

FLOAT_TRAINING = TrainConfig()
QAT_TRAINING = TrainConfig(epochs=4, learning_rate=1e-3, qat=True, qat_noise=0.03)
PERCENTILE_GRID = (100.0, 99.9, 99.5, 99.0, 98.0, 95.0, 90.0)
PAPER = {"software_accuracy": 0.9756, "hardware_accuracy": 0.9448}


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


def float_model(n_components: int | None = None, training: TrainConfig = FLOAT_TRAINING) -> tuple[MLP, pd.DataFrame]:
    """The software baseline (cached): ``(model, history)``."""
    x_train, y_train, x_test, y_test = features(n_components)
    key = {"task": "mnist", "pca": n_components, "training": training}
    return cached_train(key, lambda: train_mlp(x_train, y_train, training, x_val=x_test, y_val=y_test))


def qat_model(config: CrossbarConfig, n_components: int | None = None, training: TrainConfig = QAT_TRAINING) -> tuple[MLP, pd.DataFrame]:
    """Quantization-aware fine-tuning of the float model onto ``config``'s weight levels
    (straight-through estimator, multiplicative noise injection), cached."""
    start, _ = float_model(n_components)
    x_train, y_train, x_test, y_test = features(n_components)
    quantizer_inputs = (config.cell, config.quantize, config.mapping, config.scale,
                        config.weight_percentile, config.nonideal.decode_as_uniform)
    key = {"task": "mnist-qat", "pca": n_components, "training": training, "start": FLOAT_TRAINING,
           "quantizer": repr(quantizer_inputs)}
    quantize = device_quantizer(config)
    return cached_train(key, lambda: train_mlp(x_train, y_train, training, quantize=quantize, init=start,
                                               x_val=x_test, y_val=y_test))


def calibrate_percentile(config: CrossbarConfig, n_components: int | None = None, n_calibration: int = 5000,
                         grid=PERCENTILE_GRID) -> pd.DataFrame:
    """Post-training calibration of the weight range on training images (never the test set).

    Returns ``percentile``, ``accuracy`` on the first ``n_calibration`` training images,
    one device seed (0); pick the best with ``table.loc[table.accuracy.idxmax()]``.
    """
    x_train, y_train, _, _ = features(n_components)
    model, _ = float_model(n_components)
    x_cal, y_cal = x_train[:n_calibration], y_train[:n_calibration]
    frames = [hardware_accuracy(model, x_cal, y_cal, config.with_(weight_percentile=p), [0]).assign(percentile=p)
              for p in grid]
    return pd.concat(frames, ignore_index=True)[["percentile", "accuracy"]]


def accuracy_table(config: CrossbarConfig, seeds=range(5), n_components: int | None = None) -> pd.DataFrame:
    """Test accuracy of software, PTQ-on-hardware and QAT-on-hardware networks.

    PTQ is reported twice: with the weight range at max ``|w|`` (``config`` as given) and
    with the clipping percentile calibrated on training images
    (:func:`calibrate_percentile`). Columns: ``pca`` (components or "none"), ``network``
    (``software``, ``PTQ hardware``, ``PTQ calibrated``, ``QAT hardware``), ``seed`` (-1
    for software), ``accuracy``, ``percentile``.
    """
    _, _, x_test, y_test = features(n_components)
    model, _ = float_model(n_components)
    qat, _ = qat_model(config, n_components)
    calibration = calibrate_percentile(config, n_components)
    best = float(calibration.percentile[calibration.accuracy.idxmax()])
    calibrated = config.with_(weight_percentile=best)
    frames = [
        pd.DataFrame({"network": ["software"], "seed": [-1], "accuracy": [model.accuracy(x_test, y_test)]}),
        hardware_accuracy(model, x_test, y_test, config, seeds).assign(network="PTQ hardware"),
        hardware_accuracy(model, x_test, y_test, calibrated, seeds).assign(network="PTQ calibrated", percentile=best),
        hardware_accuracy(qat, x_test, y_test, config, seeds).assign(network="QAT hardware"),
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
    """Tidy confusion counts of one hardware network: columns ``true``, ``predicted``, ``count``."""
    _, _, x_test, y_test = features(n_components)
    model = qat_model(config, n_components)[0] if qat else float_model(n_components)[0]
    predicted = hardware_logits(model, x_test, config, seed).argmax(axis=1)
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
