"""Study 07: what an N-ary crossbar costs per MNIST inference, against its accuracy (claim E1).

Every cost comes from :mod:`imclib.cost` on the same programmed network and the same test
images the accuracy is measured on. The network is the cached float 784-256-10 MLP with
post-training quantization: the calibrated per-column weight map on the cell's actual
levels and converter ranges calibrated on training images (never the test set), as in
study 02 (:func:`imclib.deploy.deploy_network`). Configurations: the default device
(bias-dependent TMR, programming variation, read and sense noise) with ``n_states`` binary
MTJ stacks on ``size x size`` arrays and an ``adc_bits`` ADC on every array's columns.

Claim E1 (:func:`credible_search`, :func:`check_claim`, criterion :data:`CRITERION`): among
credible cells (binary stacks of N <= 4 states, writable per study 05), with wires at
:data:`E1_WIRE_OHM` per segment and bias-dependent cells, the cheapest configuration whose
accuracy is within one point of the paper's configuration, on :data:`E1_TEST_IMAGES` test
images and :data:`E1_SEEDS` device seeds.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..cells import MTJ, CellLevels
from ..circuit import SolverOptions, WireParasitics
from ..config import DECODE_SCHEMES, CrossbarConfig
from ..cost import ADC_SURVEY_FOM_J, DAC_FOM_J, Technology, converter_energy, cost_table, efficiency, layer_hardware, network_inputs
from ..layer import program_layer
from ..deploy import deploy_network
from ..nonidealities import Nonidealities
from ..periphery import Periphery
from ..results import record_claim
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
JUNG_2022_ACCURACY = {"software": 0.9524, "hardware": 0.9323}
"""Jung et al. 2022's two-layer perceptron on MNIST: software and measured chip accuracy."""
JUNG_2022_TOPS_PER_W = None
"""The energy efficiency Jung et al. report: not found with the literature search available
to this project, so no model/measurement ratio is computed (None)."""


CREDIBLE_STATES = (2, 4)
"""States per cell of E1: binary stacks of one and two junctions, the writable stacks with
N <= 4 (study 05)."""
CREDIBLE_SIZES = (4, 16, 64)
"""Array sizes of E1."""
CREDIBLE_BITS = (4, 6, 8)
"""ADC resolutions of E1 (bits)."""
E1_WIRE_OHM = 1.0
"""Row and column wire resistance per segment in E1 (ohms): interconnect at recent nodes is
about 1-10 ohm per cell pitch (study 06)."""
E1_TEST_IMAGES = 2000
"""Test images of E1 (the first ones): binomial 95 % error of one accuracy near 95 % about
+-1 point, smaller on a paired difference of the same images."""
E1_SEEDS = (0, 1, 2)
"""Device seeds of E1."""
E1_CALIBRATION = 256
"""Training images that calibrate E1's converter ranges (every one is read through the
solved circuit, so fewer than the other studies' 1,000)."""
E1_TOLERANCE = 0.01
"""E1's accuracy tolerance: one point below the paper configuration's accuracy."""
E1_BIAS_DEPENDENCE = False
"""Whether E1's cells are bias dependent. Off: with wires the bias-dependent read is a
nonlinear solve per input, measured at 15 s (4x4 arrays) and 75 s (64x64) per 200 images and
device seed on one core, hours for the search; without it the wired read is one linear
transfer matrix per array (1.8-2.1 s per 200 images). Study 06 measures bias dependence
with wires (C7)."""
E1_SOLVER = SolverOptions(tol=1e-6)
"""Nonlinear solve of E1's wired bias-dependent arrays: column currents to 1e-6 relative
(far below the 8-bit ADC's 4e-3 step), about twice as fast as the default 1e-10."""
CRITERION = (
    f"among credible cells (binary stacks, N in {CREDIBLE_STATES}), arrays {CREDIBLE_SIZES}, ADC bits {CREDIBLE_BITS}, "
    f"offset/digital decode, default device with wires at {E1_WIRE_OHM:g} ohm per segment and "
    f"{'bias-dependent' if E1_BIAS_DEPENDENCE else 'bias-independent (compute budget)'} TMR, "
    f"expert PTQ, converter ranges calibrated on {E1_CALIBRATION} training images: the cheapest configuration (mean "
    f"energy per inference) whose mean accuracy over device seeds {E1_SEEDS} on the first {E1_TEST_IMAGES:,} test images "
    f"is at least the paper configuration's (4 states, 4x4, 8-bit ADC, same device) minus {100 * E1_TOLERANCE:g} point. "
    f"E1 holds if that configuration is not the paper's own, i.e. a credible configuration within one point costs less "
    f"energy; it fails if the paper's configuration is the cheapest within one point. Converter energies: Walden FOM "
    f"{ADC_SURVEY_FOM_J * 1e15:g} fJ/step (ADC), {DAC_FOM_J * 1e15:g} fJ/step (8-bit input DAC, assumed)")
"""E1's criterion, fixed before :func:`credible_search` computes anything."""


def config(n_states: int = 4, size: int = 4, adc_bits: int | None = 8, scenario: str = "per_tile",
           bias_dependence: bool = True) -> CrossbarConfig:
    """The default device with ``n_states`` binary MTJ stacks on ``size x size`` arrays and an
    ``adc_bits`` ADC (None: ideal), the default DAC; ``bias_dependence=False`` keeps every
    other default nonideality but reads the cells at their zero-bias levels (linear cells,
    faster)."""
    base = CrossbarConfig()
    return base.with_(cell=CellLevels(n_states, "binary"), rows=size, cols=size, scenario=scenario,
                      nonideal=dataclasses.replace(base.nonideal, bias_dependence=bias_dependence),
                      periphery=dataclasses.replace(base.periphery, adc_bits=adc_bits))


def e1_config(n_states: int, size: int, adc_bits: int, scheme: str = "offset/digital",
              r_wire: float = E1_WIRE_OHM) -> CrossbarConfig:
    """:func:`config` with :data:`E1_BIAS_DEPENDENCE`, wires of ``r_wire`` ohms per segment,
    the decode ``scheme`` and :data:`E1_SOLVER`."""
    if scheme not in DECODE_SCHEMES:
        raise ValueError(f"scheme must be one of {sorted(DECODE_SCHEMES)}, got {scheme!r}")
    return config(n_states, size, adc_bits, bias_dependence=E1_BIAS_DEPENDENCE).with_(wires=WireParasitics(r_row=r_wire, r_col=r_wire),
                                                  solver=E1_SOLVER, **DECODE_SCHEMES[scheme])


def converter_floor(model, config_: CrossbarConfig, technology: Technology | None = None) -> float:
    """ADC plus DAC energy per inference of ``model`` on ``config_`` (joules,
    :func:`imclib.cost.converter_energy`): data independent, a lower bound on the total
    energy, computed from the layout alone (cells programmed without nonidealities)."""
    layout_only = config_.with_(nonideal=Nonidealities(), wires=WireParasitics())
    return sum(sum(converter_energy(layer_hardware(program_layer(w, layout_only, 0)), technology).values())
               for w in model.weights)


def test_subset(n_test: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n_test`` MNIST test images and labels."""
    _, _, x_test, y_test = mnist.features(None)
    return x_test[:n_test], y_test[:n_test]


def network_cost(model, config_: CrossbarConfig, x: np.ndarray, seed: int = 0,
                 technology: Technology | None = None, calibration: np.ndarray | None = None,
                 ) -> tuple[pd.DataFrame, dict, np.ndarray]:
    """Program ``model`` with device seed ``seed``, calibrate its converter ranges on
    ``calibration`` (default :func:`mnist.calibration_inputs`), infer ``x`` and cost that
    inference.

    Returns ``(cost table, efficiency summary, logits)`` (:func:`imclib.cost.cost_table`,
    :func:`imclib.cost.efficiency`).
    """
    rng = np.random.default_rng(seed)
    calibration = mnist.calibration_inputs() if calibration is None else calibration
    layers, _ = deploy_network(model, config_, calibration, rng)
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


def _evaluate(model, x, y, key: tuple, seeds, calibration, scheme: str = "offset/digital") -> list[dict]:
    """Accuracy and cost of one E1 configuration ``key = (n_states, size, adc_bits)`` per seed."""
    rows = []
    for seed in seeds:
        _, summary, logits = network_cost(model, e1_config(*key, scheme=scheme), x, seed, calibration=calibration)
        rows.append({"n_states": key[0], "size": key[1], "adc_bits": key[2], "scheme": scheme, "seed": seed,
                     "accuracy": float(np.mean(logits.argmax(axis=1) == y)),
                     **{k: summary[k] for k in ("energy_J", "latency_s", "area_m2", "TOPS_per_W")}})
    return rows


def credible_search(model, x: np.ndarray, y: np.ndarray, states=CREDIBLE_STATES, sizes=CREDIBLE_SIZES,
                    bits=CREDIBLE_BITS, seeds=E1_SEEDS, tolerance: float = E1_TOLERANCE,
                    progress: bool = True) -> pd.DataFrame:
    """The cheapest credible configuration within ``tolerance`` of the paper's (:data:`CRITERION`).

    Exact without simulating every configuration: the paper's configuration
    (:data:`PAPER_POINT`) is evaluated first and is the first incumbent (it is within the
    tolerance of itself). The others are visited in increasing order of their converter
    energy (:func:`converter_floor`, a lower bound on their total energy); the visit stops
    at the first whose floor is not below the incumbent's energy, since neither it nor any
    later one can be cheaper. A visited configuration whose mean accuracy is at least the
    paper's minus ``tolerance`` and whose mean energy is lower becomes the incumbent.

    Returns
    -------
    DataFrame
        One row per visited configuration and device seed: ``n_states``, ``size``,
        ``adc_bits``, ``scheme``, ``seed``, ``accuracy`` (on ``x``, ``y``), ``energy_J``,
        ``latency_s``, ``area_m2``, ``TOPS_per_W``, ``floor_J`` (converter energy) and
        ``visit`` (0 for the paper's configuration, then 1, 2, ...).
    """
    model_floor = {key: converter_floor(model, e1_config(*key)) for key in
                   [(n, s, b) for n in states for s in sizes for b in bits]}
    paper = tuple(PAPER_POINT[k] for k in ("n_states", "size", "adc_bits"))
    if paper not in model_floor:
        raise ValueError(f"the grid must hold the paper's configuration {PAPER_POINT}")
    calibration = mnist.calibration_inputs(n=E1_CALIBRATION)
    rows = [dict(row, floor_J=model_floor[paper], visit=0) for row in _evaluate(model, x, y, paper, seeds, calibration)]
    paper_accuracy = np.mean([row["accuracy"] for row in rows])
    incumbent = np.mean([row["energy_J"] for row in rows])
    order = sorted((key for key in model_floor if key != paper), key=model_floor.get)
    with tqdm(total=len(order), desc="credible configurations", disable=not progress) as bar:
        for visit, key in enumerate(order, start=1):
            if model_floor[key] >= incumbent:
                break
            evaluated = _evaluate(model, x, y, key, seeds, calibration)
            rows += [dict(row, floor_J=model_floor[key], visit=visit) for row in evaluated]
            energy = np.mean([row["energy_J"] for row in evaluated])
            if np.mean([row["accuracy"] for row in evaluated]) >= paper_accuracy - tolerance and energy < incumbent:
                incumbent = energy
            bar.update()
    return pd.DataFrame(rows)


def jung_closest(model, x: np.ndarray, y: np.ndarray, seeds=E1_SEEDS) -> pd.DataFrame:
    """The configuration of this model closest to Jung et al. 2022's chip: binary cells
    (N = 2), 64 x 64 arrays, a differential pair per weight (their complementary MTJ paths),
    8-bit ADC, cells and wires as in E1; rows as :func:`credible_search`'s
    (without ``floor_J``, ``visit``). Their chip sums resistances in series and reads them in
    the time domain, which this model does not describe."""
    return pd.DataFrame(_evaluate(model, x, y, (2, 64, 8), seeds, mnist.calibration_inputs(n=E1_CALIBRATION),
                                  scheme="differential"))


def check_claim(search: pd.DataFrame, jung: pd.DataFrame, software_accuracy: float, n_test: int,
                record: bool = True) -> dict:
    """Judge E1 by :data:`CRITERION` on :func:`credible_search`'s table and (``record``) write
    it to ``results.json`` with the sourced converter energies and the Jung et al. comparison.

    ``software_accuracy``: the float network's accuracy on the same ``n_test`` images.
    Returns the per-configuration means (``summary``), the ``paper`` and ``cheapest`` rows,
    ``passed``, ``saving`` (``1 - E_cheapest / E_paper``), the paired accuracy difference
    of the cheapest against the paper's configuration per seed (``difference_by_seed``),
    and Jung's modelled accuracy (``jung_accuracy``, mean over seeds) and gap.
    """
    keys = ["n_states", "size", "adc_bits"]
    summary = search.groupby(keys + ["visit"], as_index=False)[["accuracy", "energy_J", "TOPS_per_W", "floor_J"]].mean()
    paper = summary[summary.visit == 0].iloc[0]
    within = summary[summary.accuracy >= paper.accuracy - E1_TOLERANCE]
    cheapest = within.loc[within.energy_J.idxmin()]
    passed = bool(cheapest.visit != 0)
    by_seed = search.pivot_table(index="seed", columns="visit", values="accuracy")
    difference = (by_seed[cheapest.visit] - by_seed[0]).to_numpy()
    jung_accuracy = float(jung.accuracy.mean())
    result = {"summary": summary, "paper": paper, "cheapest": cheapest, "passed": passed,
              "saving": float(1 - cheapest.energy_J / paper.energy_J), "difference_by_seed": difference,
              "jung_accuracy": jung_accuracy, "jung_gap": software_accuracy - jung_accuracy,
              "software_accuracy": software_accuracy, "n_test": n_test, "visited": int(summary.visit.nunique()),
              "grid": len(CREDIBLE_STATES) * len(CREDIBLE_SIZES) * len(CREDIBLE_BITS)}
    if record:
        record_claim(
            "E1", "a credible configuration (N <= 4, with wires) within one point of the paper "
            "configuration's accuracy costs less energy than the paper's 4-state 4x4 8-bit configuration",
            {"cheapest_n_states": int(cheapest.n_states), "cheapest_size": int(cheapest["size"]),
             "cheapest_adc_bits": int(cheapest.adc_bits), "cheapest_accuracy": round(float(cheapest.accuracy), 4),
             "cheapest_energy_nJ": round(float(cheapest.energy_J) * 1e9, 3),
             "paper_config_accuracy": round(float(paper.accuracy), 4),
             "paper_config_energy_nJ": round(float(paper.energy_J) * 1e9, 3),
             "energy_saving": round(result["saving"], 4),
             "accuracy_difference_by_seed": [round(float(d), 4) for d in difference],
             "configurations_simulated": result["visited"], "configurations_in_grid": result["grid"],
             "test_images": n_test, "device_seeds": len(E1_SEEDS), "wire_ohm_per_segment": E1_WIRE_OHM,
             "bias_dependence": E1_BIAS_DEPENDENCE,
             "adc_walden_fom_fJ_per_step": ADC_SURVEY_FOM_J * 1e15, "dac_fom_fJ_per_step": DAC_FOM_J * 1e15,
             "adc_energy_8bit_pJ": round(ADC_SURVEY_FOM_J * 2**8 * 1e12, 3),
             "converter_energy_source": ("Walden FOM 2.2 fJ/step, Harpe, Cantatore, van Roermund, ISSCC 2013 (10/12-bit SAR), "
                                         "the best of B. E. Jonsson's ADC survey (spring-2013 update); Murmann's survey not "
                                         "read; DAC per step assumed equal to the ADC's"),
             "jung2022_model_accuracy": round(jung_accuracy, 4),
             "jung2022_model_gap_points": round(100 * result["jung_gap"], 2),
             "jung2022_published_gap_points": round(100 * (JUNG_2022_ACCURACY["software"] - JUNG_2022_ACCURACY["hardware"]), 2)},
            passed=passed, paper={"hardware_accuracy": mnist.PAPER["hardware_accuracy"]},
            verdict="reproduced" if passed else "not reproduced", criterion=CRITERION,
            statistics={"n_seeds": len(E1_SEEDS)})
    return result


def findings(result: dict, breakdown_summary: pd.DataFrame, shares: pd.DataFrame) -> str:
    """07's "What we found" (Markdown) from :func:`check_claim`'s result, the
    :func:`breakdown` summary and the energy shares per component of the 4x4 arrays."""
    paper, cheapest = result["paper"], result["cheapest"]
    four = breakdown_summary.set_index(["size", "scenario"])
    share = shares.loc[(4, "per_tile")]
    jung_published = JUNG_2022_ACCURACY["software"] - JUNG_2022_ACCURACY["hardware"]
    differences = ", ".join(f"{100 * d:+.2f}" for d in result["difference_by_seed"])
    return (
        f"* **Where the energy goes.** On the paper's 4x4 arrays one MNIST inference costs "
        f"{four.loc[(4, 'per_tile'), 'energy_J'] * 1e9:.1f} nJ ({four.loc[(4, 'per_tile'), 'TOPS_per_W']:.1f} TOPS/W): "
        f"ADC {share['ADC']:.1%}, DAC {share['DAC']:.1%}, array read {share['array read']:.2%}, digital "
        f"{share['digital']:.1%} (ADC {ADC_SURVEY_FOM_J * 1e15:g} fJ/step Walden FOM, {ADC_SURVEY_FOM_J * 2**8 * 1e12:.2f} pJ "
        f"per 8-bit conversion). 16x16 arrays need {four.loc[(16, 'per_tile'), 'energy_J'] * 1e9:.1f} nJ and 64x64 "
        f"{four.loc[(64, 'per_tile'), 'energy_J'] * 1e9:.1f} nJ (ideal wires).\n"
        f"* **E1 ({'reproduced' if result['passed'] else 'not reproduced'}).** With wires at {E1_WIRE_OHM:g} Ω per segment "
        f"and bias-dependent cells, the paper's configuration reaches {paper.accuracy:.2%} (first {result['n_test']:,} "
        f"test images, mean of {len(E1_SEEDS)} device seeds) for {paper.energy_J * 1e9:.1f} nJ. The cheapest credible "
        f"configuration within one point is N = {int(cheapest.n_states)}, {int(cheapest['size'])}x{int(cheapest['size'])} "
        f"arrays, {int(cheapest.adc_bits)}-bit ADC: {cheapest.accuracy:.2%} for {cheapest.energy_J * 1e9:.1f} nJ, "
        f"{result['saving']:.0%} less energy (accuracy difference per seed, points: {differences}). "
        f"{result['visited']} of {result['grid']} configurations needed simulating: the others' converter energy alone "
        f"exceeds the incumbent's total.\n"
        f"* **Jung et al. 2022.** Their 64x64 MRAM chip lost {100 * jung_published:.2f} points against software "
        f"({JUNG_2022_ACCURACY['hardware']:.2%} vs {JUNG_2022_ACCURACY['software']:.2%}, their two-layer perceptron). The "
        f"closest configuration here (binary cells, 64x64, differential pair, wires on) loses "
        f"{100 * result['jung_gap']:.2f} points ({result['jung_accuracy']:.2%} vs {result['software_accuracy']:.2%}, "
        f"our 784-256-10 network, expert PTQ): a different network and a current-summing readout, not their "
        f"time-domain one.\n"
        f"* **Caveats.** First order: converter energies from a 2013 survey record (the DAC's assumed equal per step), "
        f"digital and cell constants from 45 nm, no reprogramming cost, one ADC per column; {result['n_test']:,} test "
        f"images and {len(E1_SEEDS)} device seeds."
    )


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
