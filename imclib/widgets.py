"""Interactive controls for the study notebooks.

Every widget re-runs a cheap part of a study through a pure function of this module and,
each time, prints one line ``WIDGET_CHECK {"function": ..., "kwargs": ..., "value": ...}``
so that a test can recompute the value the widget shows for the control's new position
(see tests/browser). The figure it draws is shown inline.
"""

from __future__ import annotations

import dataclasses
import json
from functools import lru_cache

import ipywidgets as w
import matplotlib.pyplot as plt
import pandas as pd

from . import defaults, plots
from .cells import MTJ, CellLevels
from .config import CrossbarConfig
from .experiments import basics, errors, mnist, states, xor
from .network import hardware_accuracy


def _report(function: str, kwargs: dict, value: float) -> None:
    print(f"WIDGET_CHECK {json.dumps({'function': f'imclib.widgets.{function}', 'kwargs': kwargs, 'value': float(value)})}")


# ---- 00: one cell -------------------------------------------------------------------

def cell_window_uS(n_states: int, tmr0: float, v_read: float) -> float:
    """Conductance window ``G_max - G_min`` (µS) of an N-state series stack at ``v_read``."""
    levels = CellLevels(n_states, "series", MTJ(tmr0=tmr0)).conductances(v_read)
    return float((levels[-1] - levels[0]) * 1e6)


def cell_levels_widget() -> w.interactive:
    """States, TMR and read voltage -> the level ladders of one cell."""
    def show(n_states=4, tmr0=1.0, v_read=defaults.V_READ_V):
        plt.show(plots.cell_levels(basics.cell_levels(n_states, tmr0, v_read)))
        value = cell_window_uS(n_states, tmr0, v_read)
        print(f"series stack of {n_states - 1} MTJs: window G_max - G_min = {value:.2f} µS at {v_read:.2f} V")
        _report("cell_window_uS", {"n_states": n_states, "tmr0": tmr0, "v_read": v_read}, value)
    return w.interactive(show, n_states=w.IntSlider(4, 2, 16, description="states N"),
                         tmr0=w.FloatSlider(1.0, min=0.5, max=3.0, step=0.1, description="TMR0"),
                         v_read=w.FloatSlider(defaults.V_READ_V, min=0.05, max=0.5, step=0.05, description="V_read (V)"))


# ---- 01: XOR ------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _xor_model():
    return xor.train_xor()[0]


def xor_rows_correct(programming_sigma: float, n_seeds: int = 20) -> float:
    """Mean XOR rows correct (of 4) over ``n_seeds`` device seeds at ``programming_sigma``."""
    sweep = xor.xor_noise_sweep(_xor_model(), CrossbarConfig(), [programming_sigma], range(n_seeds))
    return float(sweep.rows_correct.mean())


def xor_widget() -> w.interactive:
    """Programming variation -> XOR rows correct on one array, over device seeds."""
    def show(programming_sigma=defaults.PROGRAMMING_SIGMA):
        value = xor_rows_correct(programming_sigma)
        print(f"σ = {programming_sigma:.3f}: {value:.2f} of 4 rows correct on average over 20 arrays")
        _report("xor_rows_correct", {"programming_sigma": programming_sigma}, value)
    return w.interactive(show, programming_sigma=w.FloatSlider(defaults.PROGRAMMING_SIGMA, min=0.0, max=0.3, step=0.01,
                                                               description="σ prog.", readout_format=".2f"))


# ---- 02: MNIST ----------------------------------------------------------------------

def mnist_accuracy(n_states: int, programming_sigma: float, tile: int, network: str, n_test: int = 2000) -> float:
    """Hardware accuracy (device seed 0) on the first ``n_test`` test images of the float
    network (``"PTQ"``) or the network fine-tuned for that cell (``"QAT"``)."""
    base = CrossbarConfig()
    config = base.with_(cell=CellLevels(n_states, "binary"), rows=tile, cols=tile,
                        nonideal=dataclasses.replace(base.nonideal, programming_sigma=programming_sigma))
    model = mnist.qat_model(config)[0] if network == "QAT" else mnist.float_model()[0]
    _, _, x_test, y_test = mnist.features(None)
    return float(hardware_accuracy(model, x_test[:n_test], y_test[:n_test], config, [0],
                                   mnist.calibration_inputs()).accuracy[0])


def mnist_widget() -> w.interactive:
    """States, programming variation, tile size and PTQ/QAT -> MNIST accuracy."""
    def show(n_states=4, programming_sigma=defaults.PROGRAMMING_SIGMA, tile=4, network="PTQ"):
        value = mnist_accuracy(n_states, programming_sigma, tile, network)
        print(f"{network}, {n_states} states, σ = {programming_sigma:.2f}, {tile}x{tile} arrays: "
              f"accuracy {value:.2%} on 2000 test images")
        _report("mnist_accuracy", {"n_states": n_states, "programming_sigma": programming_sigma, "tile": tile,
                                   "network": network}, value)
    return w.interactive(show, n_states=w.Dropdown(options=[2, 4, 8, 16], value=4, description="states"),
                         programming_sigma=w.FloatSlider(defaults.PROGRAMMING_SIGMA, min=0.0, max=0.2, step=0.01,
                                                         description="σ prog."),
                         tile=w.Dropdown(options=[4, 8, 16, 32], value=4, description="array"),
                         network=w.Dropdown(options=["PTQ", "QAT"], value="PTQ", description="network"))


# ---- 03: PCA ------------------------------------------------------------------------

def pca_gap(n_components: int, network: str = "QAT", n_test: int = 2000) -> float:
    """Software minus hardware accuracy (device seed 0, first ``n_test`` test images) with
    ``n_components`` PCA inputs (0 means raw pixels)."""
    components = n_components or None
    config = CrossbarConfig()
    software = mnist.float_model(components)[0]
    model = mnist.qat_model(config, components)[0] if network == "QAT" else software
    _, _, x_test, y_test = mnist.features(components)
    x_test, y_test = x_test[:n_test], y_test[:n_test]
    hardware = hardware_accuracy(model, x_test, y_test, config, [0]).accuracy[0]
    return float(software.accuracy(x_test, y_test) - hardware)


def pca_widget() -> w.interactive:
    """PCA components and PTQ/QAT -> software-hardware gap."""
    def show(n_components=64, network="QAT"):
        value = pca_gap(n_components, network)
        print(f"{n_components or 'no'} PCA components, {network}: gap {value * 100:.2f} points on 2000 test images")
        _report("pca_gap", {"n_components": n_components, "network": network}, value)
    return w.interactive(show, n_components=w.Dropdown(options=[16, 32, 64, 128, 256, 0], value=64, description="PCA"),
                         network=w.Dropdown(options=["PTQ", "QAT"], value="PTQ", description="network"))


# ---- 04: errors ---------------------------------------------------------------------

def systematic_to_random_ratio(magnitude: float, n_samples: int = 500) -> float:
    """Ratio of the MVM error increments (layer 1, MNIST inputs) of a coherent and a random
    per-cell conductance error of equal rms ``magnitude`` (random: mean over 3 seeds)."""
    model = mnist.float_model()[0]
    layer = errors.realistic_inputs(model, mnist.features(None)[2], n_samples)[:1]
    table = errors.random_vs_systematic(layer, [magnitude], seeds=range(3))
    means = table.groupby("kind").error.mean()
    return float(means["systematic"] / means["random"])


def errors_widget() -> w.interactive:
    """Per-cell error magnitude -> systematic / random error ratio."""
    def show(magnitude=0.02):
        value = systematic_to_random_ratio(magnitude)
        print(f"per-cell error {magnitude:.1%}: systematic error is {value:.1f}x the random one")
        _report("systematic_to_random_ratio", {"magnitude": magnitude}, value)
    return w.interactive(show, magnitude=w.FloatSlider(0.02, min=0.005, max=0.2, step=0.005, description="δ",
                                                       readout_format=".3f"))


# ---- 05: states ---------------------------------------------------------------------

LIVE_STATES = (2, 3, 4, 5, 6, 8, 10, 12, 16, 20, 24, 32)


def optimal_states(sense_noise_nA: float, tmr0: float, v_read: float, n_samples: int = 300) -> tuple[float, pd.DataFrame]:
    """States per cell with the least total MVM error (layer 1, MNIST inputs, one seed),
    and the sweep it comes from."""
    model = mnist.float_model()[0]
    (_, weights, x), = errors.realistic_inputs(model, mnist.features(None)[2], n_samples)[:1]
    sweep = states.states_sweep(weights, x, LIVE_STATES, sense_noise=sense_noise_nA * 1e-9, tmr0=tmr0,
                                v_read=v_read, seeds=[0], progress=False)
    return float(states.optimum(sweep)), sweep


def states_widget() -> w.interactive:
    """Sense noise floor, TMR and read voltage -> where the optimum number of states lies."""
    def show(sense_noise_nA=defaults.SENSE_NOISE_A * 1e9, tmr0=defaults.TMR0, v_read=defaults.V_READ_V):
        best, sweep = optimal_states(sense_noise_nA, tmr0, v_read)
        plt.show(plots.states_sweep(sweep, best=int(best)))
        print(f"noise {sense_noise_nA:.0f} nA, TMR0 {tmr0:.1f}, V_read {v_read:.2f} V: optimum N = {best:.0f}")
        _report("optimal_states_value", {"sense_noise_nA": sense_noise_nA, "tmr0": tmr0, "v_read": v_read}, best)
    return w.interactive(show, sense_noise_nA=w.FloatSlider(defaults.SENSE_NOISE_A * 1e9, min=1, max=200, step=1,
                                                            description="noise (nA)"),
                         tmr0=w.FloatSlider(defaults.TMR0, min=0.5, max=3.0, step=0.1, description="TMR0"),
                         v_read=w.FloatSlider(defaults.V_READ_V, min=0.05, max=0.5, step=0.05, description="V_read (V)"))


def optimal_states_value(sense_noise_nA: float, tmr0: float, v_read: float) -> float:
    """:func:`optimal_states` without the sweep table (what the widget reports)."""
    return optimal_states(sense_noise_nA, tmr0, v_read)[0]


# ---- 06: circuit effects ------------------------------------------------------------

WIRE_SAMPLES = 16


@lru_cache(maxsize=1)
def _layer1(n_samples: int):
    model = mnist.float_model()[0]
    (_, weights, x), = errors.realistic_inputs(model, mnist.features(None)[2], n_samples)[:1]
    return weights, x


def wire_mvm_error(r_wire: float, size: int, n_samples: int = WIRE_SAMPLES) -> float:
    """Total MVM error of layer 1 (the study's ``n_samples`` MNIST inputs) on the
    quantization-only device with ``size x size`` arrays and ``r_wire`` ohms per wire segment."""
    from .experiments import circuit
    from .layer import simulate_mvm
    from .metrics import nrmse

    weights, x = _layer1(n_samples)
    config = circuit.wired(CrossbarConfig.quantization_only(), size, r_wire)
    return nrmse(simulate_mvm(weights, x, config), x @ weights)


def wire_widget() -> w.interactive:
    """Wire resistance and array size -> MVM error, and the voltage every cell of one array sees."""
    from .experiments import circuit

    def show(r_wire=1.0, size=16):
        value = wire_mvm_error(r_wire, size)
        plt.show(plots.cell_voltage_map(circuit.cell_voltage_map(_layer1(WIRE_SAMPLES)[0], size, r_wire)))
        print(f"{size}x{size} arrays, {r_wire:.1f} Ω per segment: MVM error {value:.3f} "
              f"(quantization only: {wire_mvm_error(0.0, size):.3f})")
        _report("wire_mvm_error", {"r_wire": r_wire, "size": size}, value)
    return w.interactive(show, r_wire=w.FloatSlider(1.0, min=0.0, max=10.0, step=0.5, description="r wire (Ω)"),
                         size=w.Dropdown(options=list(circuit.SIZES), value=16, description="array"))
