"""Study 08: your network on your device.

Two networks trained elsewhere on scikit-learn's 8 x 8 digits (1797 images, 64 pixels
scaled to [0, 1]; 1200 for training, 597 held out, stratified with ``random_state=0``):

* a scikit-learn ``MLPClassifier`` (64-32-10, tanh), imported with :func:`imclib.from_sklearn`;
* a ReLU network 64-32-10 written as a PyTorch ``nn.Sequential(Linear, ReLU, Linear)`` state
  dict (``0.weight`` (32, 64), ``0.bias``, ``2.weight``, ``2.bias``) to a ``.safetensors``
  file and read back with :func:`imclib.load_weights`. It is trained here with
  :func:`imclib.mlp.train_mlp` to stand in for a PyTorch model (:func:`relu_network`).

Each runs on two devices, post-training quantized (PTQ) and after a short hardware-aware
fine-tune (:func:`imclib.hwa.train_hwa`): the default binary-stack MTJ cell
(``CrossbarConfig()``) and the multi-level RRAM preset :func:`imclib.devices.rram_milo`
(measured programming spread per level; read noise as the default device, no other
nonideality, since the preset gives none).
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd

from .. import defaults
from .._blas import one_blas_thread
from ..cells import CellLevels
from ..config import CrossbarConfig
from ..devices import rram_milo
from ..hwa import train_hwa
from ..importers import from_sklearn
from ..mlp import MLP, TrainConfig, train_mlp
from ..network import hardware_accuracy
from ..nonidealities import Nonidealities

DEVICES = ("MTJ-stack", "RRAM-Milo-2021")
"""Device names of :func:`device_config` (no spaces: a dropdown shows them as non-breaking spaces)."""
N_TRAIN = 1200
HIDDEN = 32
FINE_TUNE = TrainConfig(hidden=(HIDDEN,), epochs=8, batch_size=50, learning_rate=5e-4, weight_decay=0.0)
"""The hardware-aware fine-tune: 8 epochs of 24 steps (about a second per network)."""


@functools.lru_cache(maxsize=1)
def digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)`` of the digits split (module docstring)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x_train, x_test, y_train, y_test = train_test_split(data.data / 16.0, data.target, train_size=N_TRAIN,
                                                        stratify=data.target, random_state=0)
    return x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64)


@functools.lru_cache(maxsize=1)
@one_blas_thread  # fitted on every run: the same weights whatever the thread count, as imclib's training
def sklearn_classifier():
    """The fitted ``MLPClassifier(hidden_layer_sizes=(32,), activation="tanh",
    learning_rate_init=0.01)`` (seed 0; it stops when the loss stalls), with one BLAS thread."""
    from sklearn.neural_network import MLPClassifier

    x, y, _, _ = digits()
    return MLPClassifier(hidden_layer_sizes=(HIDDEN,), activation="tanh", learning_rate_init=0.01,
                         random_state=0).fit(x, y)


def torch_style_state(model: MLP) -> dict[str, np.ndarray]:
    """``model`` as the state dict of ``nn.Sequential(Linear, act, Linear, ...)``: layer i is
    module ``2 i`` (the activations sit between), weights shaped (out, in), float32."""
    state = {}
    for index, (weight, bias) in enumerate(zip(model.weights, model.biases)):
        state[f"{2 * index}.weight"] = np.ascontiguousarray(weight.T, dtype=np.float32)  # save_file needs C order
        state[f"{2 * index}.bias"] = bias.astype(np.float32)
    return state


@functools.lru_cache(maxsize=1)
def relu_network() -> MLP:
    """The 64-32-10 ReLU network standing in for a PyTorch model (:func:`imclib.mlp.train_mlp`,
    40 epochs, seed 0)."""
    x, y, _, _ = digits()
    return train_mlp(x, y, TrainConfig(hidden=(HIDDEN,), epochs=40, batch_size=50, learning_rate=3e-3),
                     progress=False)[0]


def write_weight_file(model: MLP, folder: Path) -> Path:
    """Write ``model`` to ``folder/mlp.safetensors`` as a PyTorch-style state dict
    (:func:`torch_style_state`); return the path."""
    from safetensors.numpy import save_file

    path = Path(folder) / "mlp.safetensors"
    save_file(torch_style_state(model), str(path))
    return path


def device_config(device: str, n_states: int = 4) -> CrossbarConfig:
    """The config of a device of :data:`DEVICES` with ``n_states`` levels: the default MTJ
    config with a binary stack of ``n_states`` (power of two; 4 is ``CrossbarConfig()``), or
    the RRAM preset with read noise :data:`imclib.defaults.READ_SIGMA` and nothing else."""
    if device == DEVICES[0]:
        return CrossbarConfig().with_(cell=CellLevels(n_states, "binary"))
    if device == DEVICES[1]:
        return CrossbarConfig(cell=rram_milo(n_states), nonideal=Nonidealities(read_sigma=defaults.READ_SIGMA))
    raise ValueError(f"device must be one of {DEVICES}, got {device!r}")


def fine_tune(model: MLP, config: CrossbarConfig) -> MLP:
    """``model`` after the hardware-aware fine-tune :data:`FINE_TUNE` for ``config``. It is
    trained on every run (not stored); :func:`imclib.hwa.train_hwa` trains with one BLAS
    thread, so it does not depend on the thread count (one thread and two gave different
    weights and a 0.1-point different mean HWA accuracy in notebook 08 on a 2-core machine
    before)."""
    x, y, _, _ = digits()
    return train_hwa(x, y, config, FINE_TUNE, model, n_calibration=300, refit_every=24, progress=False)[0]


def study(networks: dict[str, MLP], seeds=range(5), n_states: int = 4) -> pd.DataFrame:
    """Test accuracy (%) of every network on every device, PTQ and fine-tuned, per device
    seed: columns ``network``, ``device``, ``training``, ``seed``, ``accuracy`` (%), plus one
    ``training="software"`` row per network (float, seed -1)."""
    x, _, x_test, y_test = digits()
    rows = []
    for name, model in networks.items():
        rows.append({"network": name, "device": "float", "training": "software", "seed": -1,
                     "accuracy": 100.0 * model.accuracy(x_test, y_test)})
        for device in DEVICES:
            config = device_config(device, n_states)
            for training, deployed in (("PTQ", model), ("HWA", fine_tune(model, config))):
                table = hardware_accuracy(deployed, x_test, y_test, config, seeds, x)
                rows += [{"network": name, "device": device, "training": training, "seed": int(seed),
                          "accuracy": 100.0 * accuracy} for seed, accuracy in zip(table.seed, table.accuracy)]
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard error and count of the accuracy (%) per network, device and training."""
    grouped = table.groupby(["network", "device", "training"], sort=False).accuracy
    return pd.DataFrame({"mean": grouped.mean(), "sem": grouped.sem().fillna(0.0), "n": grouped.size()})


def device_accuracy(device: str, n_states: int) -> float:
    """Hardware accuracy (%) of the scikit-learn network (PTQ, device seed 0) on the held-out
    digits, on ``device`` with ``n_states`` levels."""
    x, _, x_test, y_test = digits()
    model = from_sklearn(sklearn_classifier())
    return 100.0 * float(hardware_accuracy(model, x_test, y_test, device_config(device, n_states), [0], x).accuracy[0])


def effects(summary_table: pd.DataFrame) -> dict:
    """What PTQ and the fine-tune do, from :func:`summary`: per (network, device) pair the
    points PTQ loses against software (``loss``) and the fine-tune's change against PTQ
    (``gain``), and over the pairs their means with standard errors
    (``sqrt(sum of squared standard errors) / pairs``; the software accuracy is exact)."""
    mean, sem = summary_table["mean"], summary_table["sem"]
    pairs = [(network, device) for network, device, training in summary_table.index if training == "PTQ"]
    loss = {pair: mean[(pair[0], "float", "software")] - mean[(*pair, "PTQ")] for pair in pairs}
    gain = {pair: mean[(*pair, "HWA")] - mean[(*pair, "PTQ")] for pair in pairs}
    return {"pairs": pairs, "loss": loss, "gain": gain,
            "loss_mean": float(np.mean(list(loss.values()))),
            "loss_sem": float(np.sqrt(sum(sem[(*pair, "PTQ")] ** 2 for pair in pairs)) / len(pairs)),
            "gain_mean": float(np.mean(list(gain.values()))),
            "gain_sem": float(np.sqrt(sum(sem[(*pair, "HWA")] ** 2 + sem[(*pair, "PTQ")] ** 2
                                          for pair in pairs)) / len(pairs))}


def findings(summary_table: pd.DataFrame, import_error: float, file_error: float, cell, n_test: int) -> str:
    """The "What we found" paragraph of study 08 (markdown), every number from the arguments:
    :func:`summary`, the import errors, the RRAM cell (:func:`imclib.devices.rram_milo`) and
    the number of held-out images."""
    found = effects(summary_table)
    mean, sem = summary_table["mean"], summary_table["sem"]
    rows = "\n".join(f"| {n} | {d} | {mean[(n, 'float', 'software')]:.1f} | {mean[(n, d, 'PTQ')]:.1f} ± "
                     f"{sem[(n, d, 'PTQ')]:.1f} | {mean[(n, d, 'HWA')]:.1f} ± {sem[(n, d, 'HWA')]:.1f} |"
                     for n, d in found["pairs"])
    gains = ", ".join(f"{n} on {d} {found['gain'][(n, d)]:+.1f}" for n, d in found["pairs"])
    resolved = abs(found["gain_mean"]) > 2 * found["gain_sem"]
    return ("* Both imports are exact: `from_sklearn` reproduces scikit-learn's probabilities to "
            f"{import_error:.0e}, and the safetensors file loads as the float32 network that was written "
            f"(largest difference {file_error:.0e}).\n"
            f"* Accuracy (%) on {n_test} held-out digits, mean ± standard error over the device seeds:\n\n"
            "| network | device | software | PTQ | HWA |\n|---|---|---|---|---|\n" + rows + "\n\n"
            f"* Post-training quantization (calibrated map, ranges and per-column calibration) costs "
            f"{min(found['loss'].values()):.1f}-{max(found['loss'].values()):.1f} points, "
            f"{found['loss_mean']:.1f} ± {found['loss_sem']:.1f} on average over the four pairs.\n"
            f"* The short hardware-aware fine-tune changes accuracy by {round(found['gain_mean'], 1) + 0.0:+.1f} ± "
            f"{found['gain_sem']:.1f} points on average (per pair: {gains}): "
            + ("a change beyond two standard errors." if resolved else
               "not resolved from zero at two standard errors, with this few held-out images and seeds.") + "\n"
            f"* The measured RRAM cell ({cell.n_states} levels over {cell.levels[0] * 1e6:.0f}-"
            f"{cell.levels[-1] * 1e6:.0f} µS, spread {cell.spread[0]:.1%} at the lowest level, {cell.spread[-1]:.1%} "
            "at the highest) runs through the same mapping, deployment and fine-tune as the built-in MTJ stack.")
