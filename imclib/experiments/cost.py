"""Study 07: what an N-ary crossbar costs per MNIST inference, against its accuracy (claim E1).

Every cost comes from :mod:`imclib.cost` on the same programmed network and the same test
images the accuracy is measured on. The network is the cached float 784-256-10 MLP with
post-training quantization: the calibrated per-column weight map on the cell's actual
levels and converter ranges calibrated on training images (never the test set), as in
study 02 (:func:`imclib.deploy.deploy_network`). Configurations: the default device
(bias-dependent TMR, programming variation, read and sense noise) with ``n_states`` binary
MTJ stacks on ``size x size`` arrays and an ``adc_bits`` ADC on every array's columns.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..cells import MTJ, CellLevels
from ..config import CrossbarConfig
from ..cost import Technology, cost_table, efficiency, network_inputs
from ..layer import program_layer
from ..deploy import deploy_network
from ..periphery import Periphery
from . import mnist

STATES = (2, 4, 8, 16)
"""States per cell (binary MTJ stacks of 1 to 4 junctions)."""
SIZES = (4, 16, 64)
"""Array sizes (rows = columns); 4 is the source study's."""
ADC_BITS = (4, 6, 8, 10)
"""ADC resolutions (bits)."""
PAPER_POINT = {"n_states": 4, "size": 4, "adc_bits": 8}
"""The source study's configuration (4-state cells on 4x4 arrays); it specifies no ADC, so
its point is costed and simulated with the 8-bit ADC the converter constants describe."""

JUNG_2022 = {
    "rows": 64, "cols": 128, "r_cell_low_ohm": 13e3, "r_cell_high_ohm": 26e3, "t_read_s": 29e-9, "adc_bits": 7,
}
"""Jung et al., Nature 601, 211 (2022): a 64x64 array of binary weights, each held by two
complementary MTJ paths (13 kOhm / 26 kOhm including the access transistor), read out in
13-29 ns in 28 nm CMOS. Mapped here as a differential pair per weight (64 rows x 128
physical columns), binary +-1 inputs at ``v_read``, 29 ns reads, and a 7-bit ADC (enough
to resolve the 65 values of a sum of 64 +-1 products; the chip itself uses a time-domain
readout, which this model does not describe)."""
JUNG_2022_TOPS_PER_W = None
"""The energy efficiency Jung et al. report: not found with the literature search available
to this project, so no model/measurement ratio is computed (None)."""


def config(n_states: int = 4, size: int = 4, adc_bits: int | None = 8, scenario: str = "per_tile",
           bias_dependence: bool = True) -> CrossbarConfig:
    """The default device with ``n_states`` binary MTJ stacks on ``size x size`` arrays and an
    ``adc_bits`` ADC (None: ideal); ``bias_dependence=False`` keeps every other default
    nonideality but reads the cells at their zero-bias levels (linear cells, faster)."""
    base = CrossbarConfig()
    return base.with_(cell=CellLevels(n_states, "binary"), rows=size, cols=size, scenario=scenario,
                      nonideal=dataclasses.replace(base.nonideal, bias_dependence=bias_dependence),
                      periphery=Periphery(adc_bits=adc_bits, sense_noise=base.periphery.sense_noise))


def test_subset(n_test: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n_test`` MNIST test images and labels."""
    _, _, x_test, y_test = mnist.features(None)
    return x_test[:n_test], y_test[:n_test]


def network_cost(model, config_: CrossbarConfig, x: np.ndarray, seed: int = 0,
                 technology: Technology | None = None) -> tuple[pd.DataFrame, dict, np.ndarray]:
    """Program ``model`` with device seed ``seed``, infer ``x`` and cost that inference.

    Returns ``(cost table, efficiency summary, logits)`` (:func:`imclib.cost.cost_table`,
    :func:`imclib.cost.efficiency`).
    """
    rng = np.random.default_rng(seed)
    layers, _ = deploy_network(model, config_, mnist.calibration_inputs(), rng)
    logits, inputs = network_inputs(model, layers, x, rng)
    table = cost_table(layers, inputs, technology)
    return table, efficiency(table, layers), logits


def breakdown(model, x: np.ndarray, sizes=(4, 16, 64), scenarios=("per_tile", "reused"), n_states: int = 4,
              adc_bits: int = 8, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cost per MNIST inference by component for each array size and scenario.

    Returns ``(components, summary)``: the cost tables (with ``size``, ``scenario``) and one
    row per configuration with energy, latency, area, TOPS/W and inferences/s/mm^2.
    """
    tables, rows = [], []
    for size in sizes:
        for scenario in scenarios:
            table, summary, _ = network_cost(model, config(n_states, size, adc_bits, scenario), x, seed)
            tables.append(table.assign(size=size, scenario=scenario))
            rows.append({"size": size, "scenario": scenario, **summary})
    return pd.concat(tables, ignore_index=True), pd.DataFrame(rows)


def pareto_study(model, x: np.ndarray, y: np.ndarray, states=STATES, sizes=SIZES,
                 bits=ADC_BITS, seeds=range(2), bias_dependence: bool = False, progress: bool = True) -> pd.DataFrame:
    """Accuracy and cost of every (states, size, ADC bits) configuration and device seed
    (linear cells unless ``bias_dependence``: the bias-dependent read is several times slower).

    Columns: ``n_states``, ``size``, ``adc_bits``, ``seed``, ``accuracy`` (on ``x``, ``y``),
    ``energy_J`` (per inference), ``latency_s``, ``area_m2``, ``TOPS_per_W``.
    """
    rows = []
    grid = [(n, s, b) for n in states for s in sizes for b in bits]
    for n, size, b in tqdm(grid, desc="configurations", disable=not progress):
        for seed in seeds:
            _, summary, logits = network_cost(model, config(n, size, b, bias_dependence=bias_dependence), x, seed)
            rows.append({"n_states": n, "size": size, "adc_bits": b, "seed": seed,
                         "accuracy": float(np.mean(logits.argmax(axis=1) == y)),
                         **{k: summary[k] for k in ("energy_J", "latency_s", "area_m2", "TOPS_per_W")}})
    return pd.DataFrame(rows)


def summarize(study: pd.DataFrame) -> pd.DataFrame:
    """Mean over device seeds per configuration, with ``on_front``: no other configuration
    is at least as accurate for less energy (or more accurate for the same energy)."""
    keys = ["n_states", "size", "adc_bits"]
    means = study.groupby(keys, as_index=False)[["accuracy", "energy_J", "latency_s", "area_m2", "TOPS_per_W"]].mean()
    means = means.sort_values(["energy_J", "accuracy"], ascending=[True, False], ignore_index=True)
    best_so_far = np.maximum.accumulate(means.accuracy.to_numpy())
    previous_best = np.concatenate([[-np.inf], best_so_far[:-1]])
    means["on_front"] = means.accuracy.to_numpy() > previous_best
    return means


def point(summary: pd.DataFrame, n_states: int, size: int, adc_bits: int) -> pd.Series:
    """One configuration's row of :func:`summarize`."""
    match = summary[(summary["n_states"] == n_states) & (summary["size"] == size) & (summary["adc_bits"] == adc_bits)]
    if match.empty:
        raise ValueError(f"no configuration n_states={n_states}, size={size}, adc_bits={adc_bits} in the study")
    return match.iloc[0]


def knob_steps(summary: pd.DataFrame, start: dict = PAPER_POINT) -> pd.DataFrame:
    """One step of each knob (states, array size, ADC bits) up and down from ``start``, along
    the values the study holds.

    Columns: ``knob``, ``to`` (new value), ``delta_accuracy`` (points), ``delta_energy_J``,
    ``energy_per_point_J`` (``delta_energy / delta_accuracy``, for moves that gain accuracy).
    """
    origin = point(summary, **start)
    rows = []
    for knob in ("n_states", "size", "adc_bits"):
        grid = sorted(summary[knob].unique())
        position = grid.index(start[knob])
        for step in (-1, 1):
            if 0 <= position + step < len(grid):
                moved = point(summary, **{**start, knob: grid[position + step]})
                gain = 100 * (moved.accuracy - origin.accuracy)
                cost = moved.energy_J - origin.energy_J
                rows.append({"knob": knob, "to": int(grid[position + step]), "delta_accuracy": gain,
                             "delta_energy_J": cost, "energy_per_point_J": cost / gain if gain > 0 else np.nan})
    return pd.DataFrame(rows)


def nearest_on_front(summary: pd.DataFrame, accuracy: float) -> pd.Series:
    """The configuration on the front whose accuracy is closest to ``accuracy``."""
    front = summary[summary.on_front]
    return front.loc[(front.accuracy - accuracy).abs().idxmin()]


def jung_comparison(seed: int = 0, n_inputs: int = 256) -> dict:
    """Jung et al. 2022's array run through the cost model (:data:`JUNG_2022`).

    One 64 x 64 layer of random +-1 weights on a 64 x 128 array (differential pairs of
    binary cells, 13 / 26 kOhm), ``n_inputs`` random +-1 input vectors at ``v_read``.
    Returns the model's energy per MVM, TOPS/W, the published TOPS/W (None if unknown) and
    their ratio (None without a published value).
    """
    p = JUNG_2022
    rng = np.random.default_rng(seed)
    mtj = MTJ(r_p=p["r_cell_low_ohm"], tmr0=p["r_cell_high_ohm"] / p["r_cell_low_ohm"] - 1.0)
    config_ = CrossbarConfig.quantization_only(CellLevels(2, "binary", mtj), rows=p["rows"], cols=p["cols"],
                                               mapping="differential").with_(periphery=Periphery(adc_bits=p["adc_bits"]))
    layer = program_layer(rng.choice([-1.0, 1.0], size=(64, 64)), config_, rng)
    x = rng.choice([-1.0, 1.0], size=(n_inputs, 64))
    technology = Technology(t_read=p["t_read_s"])
    table = cost_table([layer], x, technology)
    summary = efficiency(table, [layer])
    measured = JUNG_2022_TOPS_PER_W
    return {"energy_per_MVM_J": summary["energy_J"], "model_TOPS_per_W": summary["TOPS_per_W"],
            "published_TOPS_per_W": measured,
            "model_over_published": None if measured is None else summary["TOPS_per_W"] / measured,
            "table": table}


@lru_cache(maxsize=8)
def _programmed(n_states: int, size: int, adc_bits: int, n_test: int):
    model, _ = mnist.float_model()
    x, _ = test_subset(n_test)
    rng = np.random.default_rng(0)
    layers, _ = deploy_network(model, config(n_states, size, adc_bits, bias_dependence=False),
                               mnist.calibration_inputs(), rng)
    logits, inputs = network_inputs(model, layers, x, rng)
    return layers, inputs, logits


def live_cost(n_states: int, size: int, adc_bits: int, t_read: float,
              n_test: int = 200) -> pd.DataFrame:
    """Cost table of one configuration (device seed 0, first ``n_test`` test images, linear
    cells as in :func:`pareto_study`) with read time ``t_read`` (seconds), and in column
    ``accuracy`` that configuration's accuracy on the same images (the same on every row);
    programmed networks are cached per configuration."""
    layers, inputs, logits = _programmed(n_states, size, adc_bits, n_test)
    _, y = test_subset(n_test)
    return cost_table(layers, inputs, Technology(t_read=t_read)).assign(
        accuracy=float(np.mean(logits.argmax(axis=1) == y)))
