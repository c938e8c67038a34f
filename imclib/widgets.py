"""Interactive controls for the study notebooks.

Every widget re-runs a cheap part of a study through a pure function of this module and,
each time, when ``IMCLIB_WIDGET_CHECK=1`` (set by the browser suite only), prints one line
``WIDGET_CHECK {"function": ..., "kwargs": ..., "value": ...}`` so that a test can recompute
the value the widget shows for the control's new position (see tests/browser). The figure it draws is shown inline.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from functools import lru_cache

import ipywidgets as w
import matplotlib.pyplot as plt
import pandas as pd

from . import defaults, plots
from .cells import MTJ, CellLevels
from .config import CrossbarConfig
from .experiments import basics, cnn, errors, mnist, states, tables, xor, your_network
from .importers import from_sklearn
from .network import hardware_accuracy


def _live(show, **controls) -> w.interactive:
    """``ipywidgets.interactive(show, **controls)`` for expensive updates: sliders recompute
    only when released (``continuous_update=False``), and a label says "computing ..."
    while ``show`` runs."""
    busy = w.Label("")

    @functools.wraps(show)
    def run(*args, **kwargs):
        busy.value = "computing ..."
        try:
            show(*args, **kwargs)
        finally:
            busy.value = ""

    for control in controls.values():
        if hasattr(control, "continuous_update"):
            control.continuous_update = False
    panel = w.interactive(run, **controls)
    panel.children = (*panel.children[:-1], busy, panel.children[-1])
    return panel


def _report(function: str, kwargs: dict, value: float) -> None:
    """Print the browser suite's ``WIDGET_CHECK`` line, only when ``IMCLIB_WIDGET_CHECK=1``
    (the suite sets it for its kernels; a reader never sees the line)."""
    if os.environ.get("IMCLIB_WIDGET_CHECK") == "1":
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
    return _live(show, n_states=w.IntSlider(4, 2, 16, description="states N"),
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
    return _live(show, programming_sigma=w.FloatSlider(defaults.PROGRAMMING_SIGMA, min=0.0, max=0.3, step=0.01,
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
    """States, programming variation, tile size and PTQ/QAT -> MNIST accuracy of the hardware
    network beside the software one (first 2000 test images, device seed 0), with the paper's
    two values; fixed 0-100 % axis."""
    software = mnist.float_model()[0]
    _, _, x_test, y_test = mnist.features(None)
    software_accuracy = software.accuracy(x_test[:2000], y_test[:2000])

    def show(n_states=4, programming_sigma=defaults.PROGRAMMING_SIGMA, tile=4, network="PTQ"):
        value = mnist_accuracy(n_states, programming_sigma, tile, network)
        fig, ax = plt.subplots(figsize=(7, 2.2))
        ax.barh(["software", f"hardware ({network})"], [software_accuracy * 100, value * 100], color=["0.6", "C0"])
        for name, paper in (("paper software", mnist.PAPER["software_accuracy"]),
                            ("paper hardware", mnist.PAPER["hardware_accuracy"])):
            ax.axvline(paper * 100, ls="--", lw=1, color="k" if "software" in name else "C3", label=name)
        ax.set(xlim=(0, 100), xlabel="MNIST accuracy (%), first 2000 test images")
        ax.legend(loc="lower left", fontsize=8)
        plt.show(fig)
        print(f"{network}, {n_states} states, σ = {programming_sigma:.2f}, {tile}x{tile} arrays: "
              f"accuracy {value:.2%} on 2000 test images (software {software_accuracy:.2%})")
        _report("mnist_accuracy", {"n_states": n_states, "programming_sigma": programming_sigma, "tile": tile,
                                   "network": network}, value)
    return _live(show, n_states=w.Dropdown(options=[2, 4, 8, 16], value=4, description="states"),
                 programming_sigma=w.FloatSlider(defaults.PROGRAMMING_SIGMA, min=0.0, max=0.2, step=0.01,
                                                 description="σ prog."),
                 tile=w.Dropdown(options=[4, 8, 16, 32], value=4, description="array"),
                 network=w.Dropdown(options=["PTQ", "QAT"], value="PTQ", description="network"))


# ---- 03: PCA ------------------------------------------------------------------------

def pca_gap(n_components: int, network: str = "HWA", n_test: int = 2000) -> float:
    """Software minus hardware accuracy (device seed 0, first ``n_test`` test images) with
    ``n_components`` PCA inputs (0 means raw pixels); ``network`` is ``HWA`` (hardware-aware
    trained, cached; trained on first use) or ``PTQ`` (the float network, calibrated map)."""
    components = n_components or None
    config = CrossbarConfig()
    software = mnist.float_model(components)[0]
    model = mnist.hwa_model(config, 0, components)[0] if network == "HWA" else software
    _, _, x_test, y_test = mnist.features(components)
    x_test, y_test = x_test[:n_test], y_test[:n_test]
    hardware = hardware_accuracy(model, x_test, y_test, config, [0], mnist.calibration_inputs(components)).accuracy[0]
    return float(software.accuracy(x_test, y_test) - hardware)


def pca_widget() -> w.interactive:
    """PCA components and PTQ/HWA -> software-hardware gap."""
    def show(n_components=64, network="HWA"):
        value = pca_gap(n_components, network)
        print(f"{n_components or 'no'} PCA components, {network}: gap {value * 100:.2f} points on 2000 test images")
        _report("pca_gap", {"n_components": n_components, "network": network}, value)
    return _live(show, n_components=w.Dropdown(options=[16, 32, 64, 128, 256, 0], value=64, description="PCA"),
                         network=w.Dropdown(options=["PTQ", "HWA"], value="PTQ", description="network"))


# ---- 04: errors ---------------------------------------------------------------------

ERRORS_SAMPLES = 500
"""MNIST test images of the 04 widget: the study's own 500 (same draw), so that at its default
settings the widget shows the layer-1 point of the figure above it."""
ERRORS_SEEDS = 10
"""Device seeds of the 04 widget, as in the study."""


def systematic_to_random_ratio(magnitude: float, scheme: str = "offset/digital",
                               n_samples: int = ERRORS_SAMPLES, n_seeds: int = ERRORS_SEEDS) -> float:
    """Ratio of the MVM error increments (layer 1, ``n_samples`` MNIST test inputs, the
    default device under decode ``scheme``) of a coherent and a random per-cell
    conductance error of equal rms ``magnitude``: mean over ``n_seeds`` device seeds of
    ``e_sys / e_random(seed)`` (:func:`imclib.experiments.errors.c5_ratios`); the table is
    cached (:func:`imclib.experiments.tables.cached_call`)."""
    weights, x = _layer1(n_samples)
    table = tables.cached_call(errors.random_vs_systematic, [("layer 1", weights, x)], [magnitude], CrossbarConfig(),
                               seeds=range(n_seeds), schemes=[scheme], pattern=False, progress=False)
    return float(errors.c5_ratios(table).ratio.iloc[0])


def errors_widget() -> w.interactive:
    """Per-cell error magnitude and decode scheme -> systematic / random error ratio."""
    def show(magnitude=0.02, scheme="offset/digital"):
        value = systematic_to_random_ratio(magnitude, scheme)
        verdict = "more" if value > 1 else "less"
        print(f"{scheme}, per-cell error {magnitude:.1%}: the systematic error is {value:.2f}x the random one "
              f"(it costs {verdict} than random noise; layer 1, {ERRORS_SAMPLES} test images, "
              f"{ERRORS_SEEDS} device seeds)")
        _report("systematic_to_random_ratio", {"magnitude": magnitude, "scheme": scheme}, value)
    return _live(show, magnitude=w.FloatSlider(0.02, min=0.005, max=0.2, step=0.005, description="δ",
                                               readout_format=".3f"),
                 scheme=w.Dropdown(options=list(errors.SCHEMES), value="offset/digital", description="decode"))


# ---- 05: states ---------------------------------------------------------------------

@lru_cache(maxsize=32)
def _states_result(tmr0: float, v_read: float, t_int_ns: float, scheme: str):
    from .sensing import SenseCircuit

    sweep = states.sweep_table(sense=SenseCircuit(t_int=t_int_ns / 1e9), tmr0=tmr0, v_read=v_read, scheme=scheme)
    return states.interior_optimum(sweep), sweep


def optimal_states(tmr0: float, v_read: float, t_int_ns: float, scheme: str = "offset/digital") -> tuple[float, pd.DataFrame]:
    """Best N (least mean total MVM error of layer 1 over N = 2..16, writable stacks,
    circuit-derived sense noise at integration time ``t_int_ns``, 5 device seeds, the
    study's 1000 MNIST inputs) and the sweep it comes from: the study's own
    :func:`imclib.experiments.states.sweep_table` entry, so a setting of the study's grids
    is read from its cache."""
    result, sweep = _states_result(float(tmr0), float(v_read), float(t_int_ns), scheme)
    return float(result["best_N"]), sweep


def states_widget() -> w.VBox:
    """TMR0, read voltage, integration time and decode scheme -> the error components
    against N and where the optimum lies. Defaults reproduce the study's first panel.

    The sliders offer the study's grids (:data:`imclib.experiments.states.SHIFT_TMR0`,
    ``SHIFT_V_READ_V``, ``SHIFT_T_INT_S``): one parameter moved from its default is a sweep
    the study computed (cached, offset/digital and differential), so it shows at once;
    two moved together, or the reference-column scheme, is a new sweep (the calibrated
    weight map of 15 N, tens of seconds)."""
    busy = w.Label("")

    def show(tmr0=defaults.TMR0, v_read=defaults.V_READ_V, t_int_ns=defaults.SENSE_T_INT_S * 1e9,
             scheme="offset/digital"):
        busy.value = "computing ..."
        try:
            result, sweep = _states_result(float(tmr0), float(v_read), float(t_int_ns), scheme)
            plt.show(plots.states_sweep(sweep, result, f"writable stack, {scheme}"))
            print(f"TMR0 {tmr0:.1f}, V_read {v_read:.2f} V, t_int {t_int_ns:g} ns, {scheme}: {result['label']} "
                  f"(lowest mean total error at N = {result['best_N']})")
            _report("optimal_states_value", {"tmr0": tmr0, "v_read": v_read, "t_int_ns": t_int_ns, "scheme": scheme},
                    result["best_N"])
        finally:
            busy.value = ""

    controls = dict(
        tmr0=w.SelectionSlider(options=list(states.SHIFT_TMR0), value=defaults.TMR0, description="TMR0",
                               continuous_update=False),
        v_read=w.SelectionSlider(options=list(states.SHIFT_V_READ_V), value=defaults.V_READ_V, description="V_read (V)",
                                 continuous_update=False),
        t_int_ns=w.SelectionSlider(options=[t * 1e9 for t in states.SHIFT_T_INT_S], value=defaults.SENSE_T_INT_S * 1e9,
                                   description="t_int (ns)", continuous_update=False),
        scheme=w.Dropdown(options=list(states.SCHEMES), value="offset/digital", description="scheme"),
    )
    ui = w.interactive(show, **controls)
    return w.VBox([*ui.children[:-1], busy, ui.children[-1]])


def optimal_states_value(tmr0: float, v_read: float, t_int_ns: float, scheme: str = "offset/digital") -> float:
    """:func:`optimal_states` without the sweep table (what the widget reports)."""
    return optimal_states(tmr0, v_read, t_int_ns, scheme)[0]


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
    return _live(show, r_wire=w.FloatSlider(1.0, min=0.0, max=10.0, step=0.5, description="r wire (Ω)"),
                         size=w.Dropdown(options=list(circuit.SIZES), value=16, description="array"))


# ---- 07: cost -----------------------------------------------------------------------

COST_ENERGY_RANGE_J = (1e-13, 1e-5)
"""Fixed energy axis of the cost widget's component panel (joules per inference), so that
moving a control shows how each component moves."""


def _live_cost(n_states: int, size: int, adc_bits: int, t_read_ns: float) -> pd.DataFrame:
    """:func:`imclib.experiments.cost.live_cost` (with its ``accuracy`` column), cached
    (:func:`imclib.experiments.tables.cached_call`)."""
    from .experiments import cost

    return tables.cached_call(cost.live_cost, n_states, size, adc_bits, t_read_ns * 1e-9)


def _total_energy_J(table: pd.DataFrame) -> float:
    return float(table[(table.layer == "total") & (table.component == "total")].energy_J.iloc[0])


def energy_per_inference_nJ(n_states: int, size: int, adc_bits: int, t_read_ns: float) -> float:
    """Energy per MNIST inference (nJ) of one configuration (:func:`imclib.experiments.cost.live_cost`)."""
    return _total_energy_J(_live_cost(n_states, size, adc_bits, t_read_ns)) * 1e9


def cost_widget() -> w.interactive:
    """States, array size, ADC bits and read time -> energy by component, and the selected
    configuration beside the paper's on the accuracy-energy plane (both computed live on the
    first 200 test images, device seed 0; the read time changes energy and latency only)."""
    from .experiments import cost

    def show(n_states=4, size=4, adc_bits=8, t_read_ns=defaults.T_READ_S * 1e9):
        table = _live_cost(n_states, size, adc_bits, t_read_ns)
        energy, accuracy = _total_energy_J(table), float(table.accuracy.iloc[0])
        paper_table = _live_cost(**cost.PAPER_POINT, t_read_ns=t_read_ns)
        paper = {**cost.PAPER_POINT, "energy_J": _total_energy_J(paper_table),
                 "accuracy": float(paper_table.accuracy.iloc[0])}
        current = {"n_states": n_states, "size": size, "adc_bits": adc_bits, "energy_J": energy, "accuracy": accuracy}
        plt.show(plots.cost_view(table, paper, current, COST_ENERGY_RANGE_J))
        print(f"{n_states} states, {size}x{size} arrays, {adc_bits}-bit ADC, {t_read_ns:.0f} ns reads: "
              f"{energy * 1e9:.2f} nJ per inference, accuracy {accuracy:.1%} (first 200 test images)")
        _report("energy_per_inference_nJ", {"n_states": n_states, "size": size, "adc_bits": adc_bits,
                                            "t_read_ns": t_read_ns}, energy * 1e9)

    return _live(show, n_states=w.Dropdown(options=list(cost.STATES), value=4, description="states"),
                 size=w.Dropdown(options=list(cost.SIZES), value=4, description="array"),
                 adc_bits=w.IntSlider(8, min=min(cost.ADC_BITS), max=max(cost.ADC_BITS), step=2, description="ADC bits"),
                 t_read_ns=w.FloatSlider(defaults.T_READ_S * 1e9, min=5, max=100, step=5, description="t_read (ns)"))


# ---- 08: your network, your device ---------------------------------------------------

def your_device_accuracy(device: str, n_states: int) -> float:
    """Hardware accuracy (%) of notebook 08's scikit-learn network (PTQ, device seed 0) on
    the held-out digits, on ``device`` (:data:`imclib.experiments.your_network.DEVICES`)."""
    return your_network.device_accuracy(device, n_states)


def your_device_widget() -> w.interactive:
    """Device and states -> accuracy of the imported scikit-learn network beside its software
    accuracy (held-out digits, device seed 0); fixed 50-100 % axis."""
    _, _, x_test, y_test = your_network.digits()
    software = 100.0 * from_sklearn(your_network.sklearn_classifier()).accuracy(x_test, y_test)

    def show(device=your_network.DEVICES[0], n_states=4):
        value = your_device_accuracy(device, n_states)
        fig, ax = plt.subplots(figsize=(7, 1.8))
        # a dot plot: the axis does not start at zero, so no bars
        ax.plot([software, value], ["software", f"{device}, {n_states} states"], "o", markersize=9)
        ax.set(xlim=(50, 100), xlabel=f"accuracy (%), {y_test.size} held-out digits")
        plt.show(fig)
        print(f"{device}, {n_states} states: accuracy {value:.2f} % (software {software:.2f} %)")
        _report("your_device_accuracy", {"device": device, "n_states": n_states}, value)
    return _live(show, device=w.Dropdown(options=list(your_network.DEVICES), description="device"),
                 n_states=w.Dropdown(options=[2, 4, 8, 16], value=4, description="states"))


# ---- 09: a CNN ----------------------------------------------------------------------

def cnn_accuracy(n_states: int, programming_sigma: float, tile: int) -> float:
    """Expert-PTQ accuracy of notebook 09's CNN (training seed 0, device seed 0, the first
    test images) with ``n_states`` binary-stack levels, programming variation and ``tile x
    tile`` arrays (:func:`imclib.experiments.cnn.widget_accuracy`)."""
    return cnn.widget_accuracy(n_states, programming_sigma, tile)


def cnn_widget() -> w.interactive:
    """States per cell, programming variation and array size -> the CNN's expert-PTQ accuracy
    (:func:`cnn_accuracy`) as a dot beside its software accuracy on the same images, on a
    fixed 90-100 % axis (a lower value is marked at the axis floor)."""
    data = mnist.split()
    n_test = cnn.WIDGET_IMAGES
    software = cnn.cnn_model(0)[0].accuracy(data["x_test"][:n_test], data["y_test"][:n_test])

    def show(n_states=4, programming_sigma=defaults.PROGRAMMING_SIGMA, tile=4):
        value = cnn_accuracy(n_states, programming_sigma, tile)
        fig, ax = plt.subplots(figsize=(7, 1.8))
        ax.plot([software * 100, max(value * 100, 90.0)], [1, 0], "o", color="C0")
        ax.set(xlim=(90, 100), ylim=(-0.5, 1.5), yticks=[0, 1], yticklabels=["hardware (PTQ expert)", "software"],
               xlabel=f"MNIST accuracy (%), first {n_test} test images")
        plt.show(fig)
        print(f"{n_states} states, σ = {programming_sigma:.2f}, {tile}x{tile} arrays: accuracy {value:.2%} "
              f"(software {software:.2%}; gap {100 * (software - value):.2f} points)")
        _report("cnn_accuracy", {"n_states": n_states, "programming_sigma": programming_sigma, "tile": tile}, value)
    return _live(show, n_states=w.Dropdown(options=[2, 4, 8, 16], value=4, description="states"),
                 programming_sigma=w.FloatSlider(defaults.PROGRAMMING_SIGMA, min=0.0, max=0.2, step=0.01,
                                                 description="σ prog."),
                 tile=w.Dropdown(options=[4, 8, 16, 32], value=4, description="array"))
