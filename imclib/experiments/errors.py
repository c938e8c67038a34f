"""Study 04: where the MVM error comes from (claims C4, C5).

Inputs are realistic: MNIST test images into layer 1 and the float network's hidden
activations into layer 2. ``y_ref = x @ W`` in float64. Quantization's error is
``||y_q - y_ref|| / ||y_ref||``; every other source is switched on alone on top of the
quantized array and charged with its increment ``||y_{q+s} - y_q|| / ||y_ref||``, so the
numbers add up to first order. Monte-Carlo spread comes from device seeds.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from tqdm.auto import tqdm

from .. import defaults
from ..config import CrossbarConfig
from ..layer import program_layer, simulate_mvm
from ..metrics import nrmse
from ..mlp import MLP
from ..periphery import Periphery


def realistic_inputs(model: MLP, x: np.ndarray, n_samples: int = 1000, seed: int = 0) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(layer name, W, X)`` for every layer: ``n_samples`` test inputs and the float
    network's activations in front of each layer."""
    rows = np.random.default_rng(seed).choice(x.shape[0], n_samples, replace=False)
    activations = model.hidden_activations(x[rows].astype(np.float64))
    return [(f"layer {i + 1} ({w.shape[0]}x{w.shape[1]})", w, a) for i, (w, a) in enumerate(zip(model.weights, activations))]


def default_sources() -> dict[str, tuple[str, dict]]:
    """Sources at their default magnitudes: ``name -> (group, changes)`` where changes are
    Nonidealities or Periphery fields."""
    return {
        "R_P +5 %": ("systematic", {"rp_error": 0.05}),
        "TMR -10 %": ("systematic", {"tmr_error": -0.10}),
        "bias-dependent TMR": ("systematic", {"bias_dependence": True}),
        "levels decoded as uniform": ("systematic", {"decode_as_uniform": True}),
        f"programming variation {defaults.PROGRAMMING_SIGMA:.0%}": ("random", {"programming_sigma": defaults.PROGRAMMING_SIGMA}),
        f"read noise {defaults.READ_SIGMA:.1%}": ("random", {"read_sigma": defaults.READ_SIGMA}),
        "stuck cells 0.1 %": ("random", {"stuck_fraction": 0.001}),
        "DAC 8 bit": ("periphery", {"dac_bits": 8}),
        "ADC 8 bit": ("periphery", {"adc_bits": 8}),
        f"sense noise {defaults.SENSE_NOISE_A * 1e9:.0f} nA": ("periphery", {"sense_noise": defaults.SENSE_NOISE_A}),
    }


def with_source(base: CrossbarConfig, changes: dict) -> CrossbarConfig:
    """``base`` with Nonidealities / Periphery fields in ``changes`` set."""
    periphery_fields = {f.name for f in dataclasses.fields(Periphery)}
    nonideal = {k: v for k, v in changes.items() if k not in periphery_fields}
    periphery = {k: v for k, v in changes.items() if k in periphery_fields}
    return base.with_(nonideal=dataclasses.replace(base.nonideal, **nonideal),
                      periphery=dataclasses.replace(base.periphery, **periphery))


def error_decomposition(layers, base: CrossbarConfig | None = None, sources: dict | None = None, seeds=range(5)) -> pd.DataFrame:
    """MVM error per layer, source and device seed.

    Columns: ``layer``, ``group`` (quantization, systematic, random, periphery, all),
    ``source``, ``seed``, ``error`` (normalized, see the module docstring).
    """
    base = base or CrossbarConfig.quantization_only()
    sources = sources or default_sources()
    every_change = {k: v for _, changes in sources.values() for k, v in changes.items()}
    records = []
    for name, weights, x in layers:
        reference = x @ weights
        quantized = simulate_mvm(weights, x, base)
        records.append({"layer": name, "group": "quantization", "source": "weight quantization",
                        "seed": 0, "error": nrmse(quantized, reference)})
        for seed in tqdm(seeds, desc=name):
            for source, (group, changes) in sources.items():
                y = simulate_mvm(weights, x, with_source(base, changes), seed)
                records.append({"layer": name, "group": group, "source": source, "seed": seed,
                                "error": float(np.linalg.norm(y - quantized) / np.linalg.norm(reference))})
            y_all = simulate_mvm(weights, x, with_source(base, every_change), seed)
            records.append({"layer": name, "group": "all", "source": "all together", "seed": seed,
                            "error": nrmse(y_all, reference)})
    return pd.DataFrame(records)


def lognormal_sigma_for_rms(relative_rms: float) -> float:
    """``sigma`` of the mean-normalised variation ``exp(sigma z - sigma^2 / 2)``, z ~ N(0, 1),
    whose rms deviation from 1 is ``relative_rms``: ``exp(sigma^2) - 1 = relative_rms^2``."""
    return brentq(lambda s: np.expm1(s * s) - relative_rms**2, 1e-9, 2.0)


def random_vs_systematic(layers, magnitudes=(0.005, 0.01, 0.02, 0.05, 0.1), base: CrossbarConfig | None = None, seeds=range(5)) -> pd.DataFrame:
    """Error increment of a per-cell conductance error of equal rms magnitude ``delta``,
    applied coherently (every cell ``G (1 - delta)``: ``R_P`` up by ``1/(1-delta) - 1``) or
    at random (static lognormal variation of rms ``delta``), the latter per tile or on one
    array reused for every tile.

    Columns: ``layer``, ``magnitude``, ``kind`` (systematic, random, random (reused
    array)), ``seed``, ``error``.
    """
    base = base or CrossbarConfig.quantization_only()
    records = []
    for name, weights, x in layers:
        reference = x @ weights
        quantized = simulate_mvm(weights, x, base)
        for delta in magnitudes:
            kinds = {
                "systematic": [with_source(base, {"rp_error": 1 / (1 - delta) - 1})],
                "random": [with_source(base, {"programming_sigma": lognormal_sigma_for_rms(delta)})],
            }
            kinds["random (reused array)"] = [kinds["random"][0].with_(scenario="reused")]
            for kind, (config,) in kinds.items():
                for seed in seeds if kind != "systematic" else [0]:
                    y = simulate_mvm(weights, x, config, seed)
                    records.append({"layer": name, "magnitude": delta, "kind": kind, "seed": seed,
                                    "error": float(np.linalg.norm(y - quantized) / np.linalg.norm(reference))})
    return pd.DataFrame(records)


def averaging_with_rows(rows=(4, 16, 64, 256, 1024), delta: float = 0.02, n_inputs: int = 200, seeds=range(20), seed: int = 0) -> pd.DataFrame:
    """Column-current error of one column of ``n`` cells against ``n``: coherent error
    adds as ``n``, independent errors as ``sqrt(n)``.

    Each cell holds a random level, inputs are uniform in [0, 1]; the error is the rms
    over inputs of the column current's departure from nominal (amperes).
    Columns: ``rows``, ``kind``, ``seed``, ``current_error_A``.
    """
    records = []
    for n in rows:
        rng = np.random.default_rng([seed, n])
        weights = rng.normal(size=(n, 1))
        x = rng.uniform(0, 1, size=(n_inputs, n))
        nominal = CrossbarConfig.quantization_only(rows=n, cols=1)
        ideal_current = program_layer(weights, nominal).column_currents(x)[0]
        kinds = {"systematic": with_source(nominal, {"rp_error": 1 / (1 - delta) - 1}),
                 "random": with_source(nominal, {"programming_sigma": lognormal_sigma_for_rms(delta)})}
        for kind, config in kinds.items():
            for s in seeds if kind == "random" else [0]:
                current = program_layer(weights, config, s).column_currents(x)[0]
                records.append({"rows": n, "kind": kind, "seed": s,
                                "current_error_A": float(np.sqrt(np.mean((current - ideal_current) ** 2)))})
    return pd.DataFrame(records)


def log_slope(table: pd.DataFrame, x: str, y: str) -> float:
    """Least-squares slope of ``log y`` against ``log x`` (of the means per ``x``)."""
    means = table.groupby(x)[y].mean()
    return float(np.polyfit(np.log(means.index.to_numpy(dtype=float)), np.log(means.to_numpy()), 1)[0])
