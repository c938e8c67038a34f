"""Study 05: an optimum number of states per cell (claim C6).

Cells are series stacks of ``N - 1`` identical junctions, so the conductance window
``G_max - G_min = (1/R_P - 1/R_AP) / (N - 1)`` shrinks with N while the sense amplifier's
noise floor stays fixed in amperes. Quantization error falls roughly as ``1/(N - 1)``;
the resolution error (sense noise in weight units) grows as ``(N - 1)``; their sum has an
interior minimum. With the ``uniform`` cell (fixed window) the noise term does not grow
with N and no optimum appears; :func:`states_sweep` computes that contrast too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .. import defaults
from ..cells import MTJ, CellLevels
from ..config import CrossbarConfig
from ..layer import simulate_mvm
from ..metrics import nrmse
from ..network import hardware_accuracy
from ..periphery import Periphery

STATES = tuple(range(2, 33))


def sweep_config(n_states: int, kind: str = "series", sense_noise: float = defaults.SENSE_NOISE_A,
                 tmr0: float = defaults.TMR0, v_read: float = defaults.V_READ_V) -> CrossbarConfig:
    """Quantization onto an N-state cell read with sense noise ``sense_noise`` (amperes)."""
    cell = CellLevels(n_states, kind, MTJ(tmr0=tmr0))
    return CrossbarConfig.quantization_only(cell, v_read=v_read).with_(periphery=Periphery(sense_noise=sense_noise))


def states_sweep(weights: np.ndarray, x: np.ndarray, states=STATES, kind: str = "series",
                 sense_noise: float = defaults.SENSE_NOISE_A, tmr0: float = defaults.TMR0,
                 v_read: float = defaults.V_READ_V, seeds=range(3), progress: bool = True) -> pd.DataFrame:
    """MVM error against states per cell on inputs ``x`` (batch, n_in).

    Columns: ``states``, ``component`` (quantization, resolution, total), ``seed``,
    ``error``. Quantization: ``||y_q - y_ref|| / ||y_ref||`` (noise free); resolution:
    ``||y - y_q|| / ||y_ref||``; total: ``||y - y_ref|| / ||y_ref||``.
    """
    reference = x @ weights
    norm = np.linalg.norm(reference)
    records = []
    for n in tqdm(states, desc="states", disable=not progress):
        config = sweep_config(n, kind, sense_noise, tmr0, v_read)
        quantized = simulate_mvm(weights, x, config.with_(periphery=Periphery()))
        q_error = nrmse(quantized, reference)
        for seed in seeds:
            y = simulate_mvm(weights, x, config, seed)
            records += [
                {"states": n, "component": "quantization", "seed": seed, "error": q_error},
                {"states": n, "component": "resolution", "seed": seed, "error": float(np.linalg.norm(y - quantized) / norm)},
                {"states": n, "component": "total", "seed": seed, "error": float(np.linalg.norm(y - reference) / norm)},
            ]
    return pd.DataFrame(records)


def optimum(sweep: pd.DataFrame) -> int:
    """States per cell with the smallest mean total error."""
    total = sweep[sweep.component == "total"].groupby("states").error.mean()
    return int(total.idxmin())


def accuracy_sweep(model, x_test, y_test, states=STATES, kind: str = "series",
                   sense_noise: float = defaults.SENSE_NOISE_A, seeds=range(2)) -> pd.DataFrame:
    """MNIST test accuracy (PTQ) against states per cell; columns ``states``, ``seed``, ``accuracy``."""
    frames = [hardware_accuracy(model, x_test, y_test, sweep_config(n, kind, sense_noise), seeds).assign(states=n)
              for n in tqdm(states, desc="states")]
    return pd.concat(frames, ignore_index=True)[["states", "seed", "accuracy"]]
