"""Study 06: wire resistance against array size (claim C7).

Every array's row and column wires have a resistance ``r_wire`` per segment (ohms, drivers
and sense amplifiers ideal); the layer's reads are solved by nodal analysis
(:mod:`imclib.circuit`): exactly through per-array transfer matrices for linear cells, and
by a nonlinear solve per input for bias-dependent cells. IR drop lowers the voltage the
cells see, and more so the more cells share a wire: a column of ``n`` cells carries ``n``
cell currents through ``n`` segments, so the relative drop grows about as ``n^2 r G``.
The decode still assumes ideal wires.

Errors are normalized by ``||x W||`` (float64). ``error`` is the total MVM error;
``beyond_quantization`` is ``||y - y_q|| / ||x W||`` with ``y_q`` the noise-free
quantized array with ideal wires (quantization's error is the same for every array size);
``wire_error`` is ``||y(r) - y(0)|| / ||x W||``, the solved circuit against the ideal
Kirchhoff read of the same device (same seed).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..circuit import WireParasitics, nonlinear_column_currents
from ..config import CrossbarConfig
from ..layer import program_layer, simulate_mvm
from ..mlp import MLP
from ..network import hardware_accuracy
from ..nonidealities import Nonidealities

RESISTANCES = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0)
"""Wire resistance per segment (ohms); interconnect at recent nodes is about 1-10 ohm per cell pitch."""
SIZES = (4, 8, 16, 32, 64)
"""Array sizes (rows = columns); 4 is the source study's."""


def devices() -> dict[str, CrossbarConfig]:
    """The devices of the study, by name (4-state MTJ cells, 4 x 4 arrays, ideal wires):
    quantization only (linear cells), the same with bias-dependent TMR, and the default
    device (bias-dependent TMR, programming variation, read and sense noise)."""
    quantization = CrossbarConfig.quantization_only()
    return {
        "quantization only": quantization,
        "quantization + bias-dependent TMR": quantization.with_(nonideal=Nonidealities(bias_dependence=True)),
        "default device": CrossbarConfig(),
    }


def wired(config: CrossbarConfig, size: int, r_wire: float) -> CrossbarConfig:
    """``config`` on ``size x size`` arrays whose row and column wires have ``r_wire`` ohms per segment."""
    return config.with_(rows=size, cols=size, wires=WireParasitics(r_row=r_wire, r_col=r_wire))


def mvm_sweep(weights: np.ndarray, x: np.ndarray, device: str, config: CrossbarConfig, sizes=SIZES,
              resistances=RESISTANCES, seed: int = 0, progress: bool = True) -> pd.DataFrame:
    """MVM error of ``x @ weights`` against array size and wire resistance.

    Columns: ``device``, ``bias_dependence``, ``size``, ``r_wire`` (ohms), ``inputs``,
    ``error``, ``beyond_quantization``, ``wire_error`` (see the module docstring),
    ``adc_saturated`` (whether any ADC read of the point saturated). Device seed ``seed``
    programs every point (so ``wire_error`` compares equal draws).
    """
    reference = x @ weights
    norm = np.linalg.norm(reference)
    records = []
    for size in tqdm(sizes, desc=device, disable=not progress):
        quantized = simulate_mvm(weights, x, CrossbarConfig.quantization_only(rows=size, cols=size))
        ideal, ideal_saturated = _read(weights, x, wired(config, size, 0.0), seed)
        for r_wire in resistances:
            y, saturated = (ideal, ideal_saturated) if r_wire == 0 else _read(weights, x, wired(config, size, r_wire), seed)
            records.append({
                "device": device, "bias_dependence": config.nonideal.bias_dependence, "size": size,
                "r_wire": r_wire, "inputs": x.shape[0],
                "error": float(np.linalg.norm(y - reference) / norm),
                "beyond_quantization": float(np.linalg.norm(y - quantized) / norm),
                "wire_error": float(np.linalg.norm(y - ideal) / norm),
                "adc_saturated": saturated,
            })
    return pd.DataFrame(records)


def _read(weights: np.ndarray, x: np.ndarray, config: CrossbarConfig, seed: int) -> tuple[np.ndarray, bool]:
    """:func:`simulate_mvm` and whether any ADC read saturated (its warning, recorded
    instead of shown, so that a cached table keeps it)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        y = simulate_mvm(weights, x, config, seed)
    return y, any("ADC saturated" in str(w.message) for w in caught)


def accuracy_sweep(model: MLP, x_test: np.ndarray, y_test: np.ndarray, device: str, config: CrossbarConfig,
                   calibration: np.ndarray, sizes=SIZES, resistances=RESISTANCES, seed: int = 0,
                   progress: bool = True) -> pd.DataFrame:
    """MNIST test accuracy against array size and wire resistance (device seed ``seed``),
    converter ranges calibrated on ``calibration`` (training images, never the test set).

    Columns: ``device``, ``size``, ``r_wire``, ``accuracy``.
    """
    frames = [hardware_accuracy(model, x_test, y_test, wired(config, size, r_wire), [seed], calibration)
              .assign(device=device, size=size, r_wire=r_wire)
              for size in tqdm(sizes, desc=f"{device}: accuracy", disable=not progress) for r_wire in resistances]
    return pd.concat(frames, ignore_index=True)[["device", "size", "r_wire", "accuracy"]]


def crossover(table: pd.DataFrame, small: int = 4, large: int = 64, column: str = "error",
              rtol: float = 1e-6) -> float | None:
    """Smallest ``r_wire`` from which ``small`` arrays have a lower ``column`` than ``large``
    ones at every larger ``r_wire`` of ``table`` (one device); None if they never do.

    "Lower" means lower by more than ``rtol`` (relative), so a tie to rounding is no win.
    """
    means = table.groupby(["r_wire", "size"])[column].mean().unstack("size").sort_index()
    small_wins = (means[small] < (1.0 - rtol) * means[large]).to_numpy()
    from_here_on = np.logical_and.accumulate(small_wins[::-1])[::-1]
    return float(means.index[np.argmax(from_here_on)]) if from_here_on.any() else None


def best_size(table: pd.DataFrame, column: str = "error", rtol: float = 1e-6) -> pd.Series:
    """Smallest array size whose mean ``column`` is within ``rtol`` (relative) of the least,
    at each ``r_wire`` (one device); ties to rounding go to the smaller array."""
    means = table.groupby(["r_wire", "size"])[column].mean().unstack("size").sort_index(axis=1)
    near_best = means.le((1.0 + rtol) * means.min(axis=1), axis=0)
    return near_best.idxmax(axis=1).rename("best_size")


def size_exponent(table: pd.DataFrame, r_wire: float, column: str = "wire_error") -> float:
    """Least-squares slope of ``log column`` against ``log size`` at ``r_wire`` (one device)."""
    at = table[table.r_wire == r_wire].groupby("size")[column].mean()
    return float(np.polyfit(np.log(at.index.to_numpy(dtype=float)), np.log(at.to_numpy()), 1)[0])


def cell_voltage_map(weights: np.ndarray, size: int, r_wire: float, config: CrossbarConfig | None = None) -> pd.DataFrame:
    """The voltage every cell of one ``size x size`` array sees with all rows at ``v_read``.

    The array holds the top-left ``size x size`` block of ``weights`` (quantization-only
    device unless ``config`` is given). Columns: ``row``, ``column``, ``conductance_uS``,
    ``cell_voltage_mV``, ``drop_percent`` (``1 - v / V_read``, in %).
    """
    if min(weights.shape) < size:
        raise ValueError(f"size must be <= min(weights.shape) = {min(weights.shape)}, got {size}")
    config = wired(config or CrossbarConfig.quantization_only(), size, r_wire)
    layer = program_layer(weights[:size, :size], config)
    conductance = layer.conductance[:size, :size]
    volts = np.full((1, size), config.v_read)
    _, v = nonlinear_column_currents(lambda _: conductance, volts, config.wires, n_cols=size,
                                     return_cell_voltages=True)
    rows, cols = np.indices((size, size))
    return pd.DataFrame({
        "row": rows.ravel(), "column": cols.ravel(), "conductance_uS": conductance.ravel() * 1e6,
        "cell_voltage_mV": v[0].ravel() * 1e3, "drop_percent": (1 - v[0].ravel() / config.v_read) * 100,
    })
