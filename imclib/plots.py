"""Figures of the studies: each function draws one tidy DataFrame and returns the figure.

:func:`save` writes a figure as PNG (200 dpi, stable file name) into
:func:`imclib.results.figures_dir`.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .results import figures_dir

sns.set_theme(context="notebook", style="whitegrid")
PAPER_COLOR = "0.3"


SEED = 0
"""Seed of every random draw a figure makes (seaborn's bootstrap confidence bands, jitter):
drawing the same table twice gives the same pixels."""


def _lineplot(**kwargs) -> plt.Axes:
    """``seaborn.lineplot`` with its bootstrap confidence band seeded (:data:`SEED`)."""
    return sns.lineplot(seed=SEED, **kwargs)


def save(fig: plt.Figure, name: str) -> Path:
    """Save ``fig`` as ``<figures>/<name>.png`` (200 dpi, for the notebook and README) and
    ``<figures>/<name>.svg`` (vector, for papers); return the PNG path.

    Byte-reproducible: neither file records a date or the matplotlib version, and the SVG's
    element ids come from a fixed salt (the figure's name)."""
    folder = figures_dir()
    fig.savefig(folder / f"{name}.png", dpi=200, bbox_inches="tight", metadata={"Software": None})
    with plt.rc_context({"svg.hashsalt": name, "svg.fonttype": "none"}):
        fig.savefig(folder / f"{name}.svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
    return folder / f"{name}.png"


def cell_levels(levels: pd.DataFrame) -> plt.Figure:
    """Level ladders of one cell, one panel per construction (each with its own conductance
    axis, so that a narrow window stays readable), at 0 V and at V_read."""
    kinds = list(dict.fromkeys(levels.construction))
    fig, axes = plt.subplots(1, len(kinds), figsize=(2.6 * len(kinds) + 1, 3.8), squeeze=False)
    for ax, kind in zip(axes[0], kinds):
        part = levels[levels.construction == kind]
        for offset, (column, label, color) in enumerate((("conductance_uS", "0 V", "C0"),
                                                         ("conductance_at_vread_uS", "at V_read", "C1"))):
            ax.hlines(part[column], offset - 0.35, offset + 0.35, color=color, lw=2.5, label=label)
        ax.set(xticks=[0, 1], xticklabels=["0 V", "V_read"], xlim=(-0.6, 1.6),
               title=f"{kind} ({int(part.junctions.iloc[0])} MTJ)")
        ax.grid(axis="x", visible=False)
    axes[0, 0].set_ylabel("level conductance G (µS)")
    fig.suptitle(f"Levels of one {levels.level.max() + 1}-state MTJ cell", y=1.02)
    fig.tight_layout()
    return fig


def array_read(cells: pd.DataFrame, columns: pd.DataFrame) -> plt.Figure:
    """One array: cell conductances (heatmap), row voltages and column currents; decoded vs
    exact, with a note on any column whose decoded sign differs from the exact one (the
    weights were quantized to the cell's few levels)."""
    fig, (ax_map, ax_out) = plt.subplots(1, 2, figsize=(10, 4), gridspec_kw={"width_ratios": [1.3, 1]})
    grid = cells.pivot(index="row", columns="column", values="conductance_uS")
    sns.heatmap(grid, annot=True, fmt=".1f", cmap="viridis", cbar_kws={"label": "G (µS)"}, ax=ax_map)
    volts = cells.groupby("row").row_voltage_V.first()
    ax_map.set_yticklabels([f"{v * 1e3:.0f} mV" for v in volts], rotation=0)
    ax_map.set_xticklabels([f"{i:.2f} µA" for i in columns.current_uA], rotation=0)
    ax_map.set(ylabel="row voltage V_i", xlabel="column current I_j", title="Ohm + Kirchhoff: I_j = Σ V_i G_ij")
    x = np.arange(len(columns))
    ax_out.bar(x - 0.2, columns.exact, 0.4, label="exact x·W")
    ax_out.bar(x + 0.2, columns.decoded, 0.4, label="decoded (a/s) I + b Σx")
    ax_out.axhline(0, color="k", lw=0.8)
    span = float(np.ptp(np.r_[columns.exact, columns.decoded, 0.0])) or 1.0
    for column in x[np.sign(columns.decoded) != np.sign(columns.exact)]:
        ax_out.annotate("sign flipped by\nweight quantization", xy=(column + 0.2, columns.decoded.iloc[column]),
                        xytext=(column + 0.2, columns.decoded.iloc[column] - 0.3 * span), ha="center", va="top",
                        fontsize=7, arrowprops={"arrowstyle": "->", "lw": 0.8})
    ax_out.set(xlabel="output column", ylabel="y (weight units)", title="MVM retrieval", xticks=x)
    ax_out.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def tiling(tiles: pd.DataFrame, n_in: int, n_out: int, rows: int, cols: int) -> plt.Figure:
    """A weight matrix cut into arrays: each array's used cells coloured, its zero padding
    hatched, its (row block, column tile) index at the centre of the used cells."""
    fig, ax = plt.subplots(figsize=(5, 5 * max(n_in, 1) / max(n_out, 1) * 0.6 + 1))
    for tile in tiles.itertuples():
        ax.add_patch(plt.Rectangle((tile.first_column, tile.first_row), cols, rows, facecolor="white",
                                   edgecolor="0.45", hatch="///", lw=0.8, zorder=1))
        ax.add_patch(plt.Rectangle((tile.first_column, tile.first_row), tile.used_columns, tile.used_rows,
                                   facecolor=plt.cm.tab20(tile.Index % 20), edgecolor="none", zorder=2))
        ax.add_patch(plt.Rectangle((tile.first_column, tile.first_row), cols, rows, fill=False, edgecolor="k",
                                   lw=1.2, zorder=3))
        ax.text(tile.first_column + tile.used_columns / 2, tile.first_row + tile.used_rows / 2,
                f"({tile.row_block},{tile.column_tile})", ha="center", va="center", fontsize=8, zorder=4)
    ax.add_patch(plt.Rectangle((0, 0), 0, 0, facecolor="white", edgecolor="0.45", hatch="///", label="zero padding"))
    ax.set(xlim=(0, tiles.first_column.max() + cols), ylim=(tiles.first_row.max() + rows, 0),
           xlabel="output column j", ylabel="input row i", aspect="equal",
           title=f"{n_in}x{n_out} layer on {len(tiles)} arrays of {rows}x{cols}")
    ax.grid(False)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False)
    return fig


def xor_margins(table: pd.DataFrame) -> plt.Figure:
    """Decision margin ``z_target - z_other`` (logits) of each XOR row in software and on the array."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    labels = [f"({int(a)},{int(b)})→{t}" for a, b, t in zip(table.x1, table.x2, table.target)]
    x = np.arange(len(table))
    ax.bar(x - 0.2, table.float_margin, 0.4, label="software")
    ax.bar(x + 0.2, table.margin, 0.4, label="4x4 MTJ array")
    ax.axhline(0, color="k", lw=1)
    ax.set(xticks=x, xticklabels=labels, xlabel="input (x1, x2) → target",
           ylabel="margin z_target − z_other (logit units)", title="XOR decision margins (> 0 is correct)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return fig


def xor_noise(sweep: pd.DataFrame) -> plt.Figure:
    """Fraction of simulated arrays with all four XOR rows correct against programming
    variation; the band is the 95 % Wilson confidence interval of that fraction."""
    from .experiments.xor import all_correct_fraction

    summary = all_correct_fraction(sweep)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.fill_between(summary.programming_sigma, summary.ci95_low, summary.ci95_high, alpha=0.25,
                    label="95 % confidence interval (Wilson)")
    ax.plot(summary.programming_sigma, summary.fraction, "o-", label="fraction of arrays with 4/4 rows")
    ax.set(xlabel="programming variation σ of ln G", ylabel="arrays with 4/4 rows correct", ylim=(0, 1.05),
           title=f"XOR on one array vs cell-to-cell variation ({summary.arrays.iloc[0]} arrays per σ)")
    ax.legend(loc="lower left", fontsize=8)
    return fig


AXIS_FLOOR_PERCENT = 93.0
"""Lower end of :func:`deployment`'s accuracy axis; a network below it is marked by an arrow."""


def deployment(study: pd.DataFrame, confidence: pd.DataFrame, paper: dict | None = None) -> plt.Figure:
    """Accuracy (%) per network, one panel per decode scheme (column ``scheme``, if the
    study has one): one dot per (training seed, device seed), the mean with its 95 %
    confidence interval (``confidence``: ``network``, ``mean``, ``ci_low``, ``ci_high``
    as fractions, and ``scheme``), and the paper's values (fractions) as dashed lines."""
    schemes = list(dict.fromkeys(study.scheme)) if "scheme" in study else [None]
    fig, axes = plt.subplots(1, len(schemes), figsize=(1.5 + 3.6 * len(schemes), 4.6), sharey=True, squeeze=False)
    for ax, scheme in zip(axes[0], schemes):
        rows = study if scheme is None else study[study.scheme == scheme]
        intervals = confidence if scheme is None else confidence[confidence.scheme == scheme]
        order = list(intervals.network)
        position = rows.network.map({network: i for i, network in enumerate(order)}).to_numpy(float)
        jitter = np.random.default_rng(SEED).uniform(-0.2, 0.2, len(rows))
        ax.scatter(position + jitter, rows.accuracy * 100, s=10, color="0.55", alpha=0.8)
        ax.set_xticks(range(len(order)), order)
        mean = intervals["mean"].to_numpy() * 100
        ax.errorbar(np.arange(len(order)) + 0.3, mean,
                    yerr=[mean - intervals.ci_low.to_numpy() * 100, intervals.ci_high.to_numpy() * 100 - mean],
                    fmt="o", color="C3", capsize=4, label="mean, 95 % CI of the mean")
        for value in (paper or {}).values():
            ax.axhline(value * 100, ls="--", color=PAPER_COLOR, lw=1)
        for position, value in enumerate(mean):
            if value < AXIS_FLOOR_PERCENT:  # off the zoomed axis: say where it is
                ax.annotate(f"mean {value:.1f} %\n(below axis)", (position, AXIS_FLOOR_PERCENT), xytext=(0, 8),
                            textcoords="offset points", ha="center", fontsize=8, color="C3",
                            arrowprops={"arrowstyle": "->", "color": "C3"})
        ax.set(xlabel="", ylabel="", title=scheme or "", ylim=(AXIS_FLOOR_PERCENT, 99.5))
        ax.grid(axis="x", visible=False)
        ax.tick_params(axis="x", labelsize=8, rotation=15)
    for name, value in (paper or {}).items():
        axes[0, -1].text(axes[0, -1].get_xlim()[1], value * 100, f" paper {name}: {value:.2%}", va="center", fontsize=8)
    axes[0, 0].set_ylabel("MNIST test accuracy (%, 10,000 images)")
    axes[0, 0].legend(loc="upper right", fontsize=8)
    fig.suptitle("Deployment on 4x4 arrays of 4-state MTJs, 8-bit converters")
    fig.tight_layout()
    return fig


ADC_ZOOM_POINTS = 0.5
"""Band of :func:`adc_bits`' zoomed panel: accuracies within this many points of the best
calibrated one (the notebook's "comes within 0.5 points")."""
ADC_ZOOM_SPAN = 3.0
""":func:`adc_bits`' zoomed panel shows the accuracies within this many points of the best
calibrated one (plus half a point of margin each way)."""


def adc_bits(sweep: pd.DataFrame) -> plt.Figure:
    """Accuracy (%) against ADC resolution for the naive and the calibrated ADC range: (a) the
    full 0-100 % range, (b) zoomed to the points within :data:`ADC_ZOOM_SPAN` points of the
    best calibrated accuracy, with the band within :data:`ADC_ZOOM_POINTS` of it; a point below the zoomed axis
    is named at its lower edge."""
    table = sweep.assign(percent=sweep.accuracy * 100)
    means = table.groupby(["adc_range", "adc_bits"]).percent.mean()
    best = means["calibrated"].max()
    near = means[means >= best - ADC_ZOOM_SPAN]
    low, high = np.floor(2 * near.min() - 1) / 2, np.ceil(2 * best + 1) / 2
    fig, (ax_full, ax_zoom) = plt.subplots(1, 2, figsize=(10, 3.8), gridspec_kw={"width_ratios": [1, 1.4]})
    for ax, legend in ((ax_full, False), (ax_zoom, True)):
        _lineplot(data=table, x="adc_bits", y="percent", hue="adc_range", marker="o", errorbar=None, ax=ax, legend=legend)
        ax.set(xlabel="ADC resolution (bits)", xticks=sorted(table.adc_bits.unique()))
    ax_full.set(ylabel="MNIST test accuracy (%)", ylim=(0, 100), title="(a) full range")
    ax_full.axhspan(low, high, color="0.85", zorder=0)
    ax_full.text(0.72, low, "zoomed in (b)", transform=ax_full.get_yaxis_transform(), ha="center", va="top", fontsize=8,
                 color="0.35")
    ax_zoom.axhspan(best - ADC_ZOOM_POINTS, best, color="C2", alpha=0.15, lw=0,
                    label=f"within {ADC_ZOOM_POINTS:g} points of the best calibrated")
    below = means[means < low].reset_index()
    for bits, rows in below.groupby("adc_bits"):
        ax_zoom.annotate("below:\n" + "\n".join(f"{r.adc_range} {r.percent:.1f} %" for r in rows.itertuples()),
                         (bits, low), xytext=(4, 6), textcoords="offset points", ha="left", va="bottom", fontsize=8)
    ax_zoom.set(ylabel="", ylim=(low, high), title="(b) zoomed to the top")
    ax_zoom.legend(title="ADC range", fontsize=8, loc="lower right")
    fig.suptitle("Expert PTQ network vs ADC bits")
    fig.tight_layout()
    return fig


def paper_reconciliation(table: pd.DataFrame, paper_gap: float) -> plt.Figure:
    """The software-hardware gap (points) per deployment (rows of
    :func:`imclib.experiments.mnist.paper_reconciliation`: ``assumptions``, ``gap``,
    ``gap_ci_low``, ``gap_ci_high`` as fractions): a dot plot with each mean's 95 % CI on a
    log axis (the gaps span two decades), and the paper's gap (a fraction) as a dashed line."""
    rows = table.iloc[::-1]
    position = np.arange(len(rows))
    gap = rows.gap.to_numpy() * 100
    fig, ax = plt.subplots(figsize=(11, 0.42 * len(rows) + 1.8))
    ax.errorbar(gap, position, xerr=[gap - rows.gap_ci_low.to_numpy() * 100, rows.gap_ci_high.to_numpy() * 100 - gap],
                fmt="o", color="C3", capsize=4, label="mean gap, 95 % CI of the mean over device seeds")
    ax.axvline(paper_gap * 100, ls="--", color=PAPER_COLOR, lw=1, label=f"paper: {100 * paper_gap:.2f} points")
    ax.set(xscale="log", yticks=position, yticklabels=list(rows.assumptions), ylim=(-0.6, len(rows) - 0.4),
           xlabel="software − hardware accuracy (points, log scale; 10,000 test images)")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    ax.tick_params(axis="y", labelsize=8)
    ax.grid(axis="y", visible=False)
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    fig.suptitle("Which deployment assumptions give the paper's gap? (float network, no retraining)", y=0.995)
    fig.tight_layout()
    return fig


def pca_gap(validation: pd.DataFrame, tests: pd.DataFrame) -> plt.Figure:
    """C3. Left: software minus hardware accuracy (points) per PCA size on the validation
    split, mean over device seeds, per decode scheme (colour) and network (solid: HWA,
    dotted: expert PTQ). Right: on the test
    set, the gap without PCA (squares) and at the size chosen on validation (circles) with
    95 % t intervals over device seeds, and the one-sided Welch p-value.

    ``validation``: :func:`imclib.experiments.pca.gap_table` rows with a ``scheme`` column;
    ``tests``: :func:`imclib.experiments.pca.welch_gap_test` rows with ``scheme`` and
    ``network`` columns."""
    from matplotlib.lines import Line2D

    sizes = sorted(p for p in validation.pca.unique() if p != "none")
    x = np.arange(len(sizes))
    schemes = list(dict.fromkeys(validation.scheme))
    colours = dict(zip(schemes, sns.color_palette(n_colors=len(schemes))))
    styles = {"HWA": "-", "PTQ expert": ":"}
    fig, (ax_val, ax_test) = plt.subplots(1, 2, figsize=(13, 4.8))
    for (scheme, network), rows in validation.groupby(["scheme", "network"], sort=False):
        means = rows.groupby("pca").gap.mean() * 100
        ax_val.plot(x, [means[p] for p in sizes], marker="o", ls=styles.get(network, "-"), color=colours[scheme],
                    label=f"{scheme}, {network}")
    ax_val.axhline(0, color="k", lw=0.6)
    ax_val.set(xticks=x, xticklabels=sizes, xlabel="PCA components", ylabel="software − hardware accuracy (points)",
               title="Validation split: gap per PCA size")
    ax_val.legend(fontsize=7)
    labels = []
    for i, row in enumerate(tests.itertuples()):
        for offset, mean, ci, marker in ((-0.15, row.gap_no_pca, row.ci95_no_pca, "s"), (0.15, row.gap_pca, row.ci95_pca, "o")):
            ax_test.errorbar(i + offset, mean * 100, yerr=[[(mean - ci[0]) * 100], [(ci[1] - mean) * 100]], fmt=marker,
                             color=colours[row.scheme], capsize=3)
        labels.append(f"{row.scheme}\n{row.network}\n{row.size} vs none\np = {row.p_value:.2g}")
    ax_test.axhline(0, color="k", lw=0.6)
    ax_test.set(xticks=range(len(tests)), xticklabels=labels, ylabel="software − hardware accuracy (points)",
                title="Test set: chosen size vs no PCA (95 % CI over device seeds)")
    ax_test.tick_params(axis="x", labelsize=7)
    ax_test.legend(handles=[Line2D([], [], marker="s", ls="", color="0.4", label="no PCA"),
                            Line2D([], [], marker="o", ls="", color="0.4", label="PCA size chosen on validation")],
                   fontsize=8)
    fig.tight_layout()
    return fig


ERROR_FLOOR = 1e-4
"""Smallest error drawn on the log axes of :func:`error_decomposition`; smaller values are
drawn at the floor with a left-pointing marker."""


def error_decomposition(summary: pd.DataFrame) -> plt.Figure:
    """Dot plot of the MVM error per source, one panel per decode scheme, on one shared log
    axis: the mean over device seeds per layer with its 95 % confidence interval (horizontal
    bar, Student t; deterministic sources have none), default-device sources above the
    miscalibrations and the decoder contrast, quantization as a dashed line per layer.
    ``summary`` is :func:`imclib.experiments.errors.summarize_errors`."""
    schemes = list(dict.fromkeys(summary.scheme))
    layers = list(dict.fromkeys(summary.layer))
    colors = dict(zip(layers, sns.color_palette("colorblind", len(layers))))
    rows, labels, y = {}, [], 0
    groups = (("default device", "default device"), ("miscalibration", "miscalibrations (contrast)"),
              ("decoder contrast", "decoder contrast"))
    for group, title in ((g, t) for g, t in groups if (summary.group == g).any()):
        labels.append((y, f"— {title} —"))
        y += 1
        for source in dict.fromkeys(summary[summary.group == group].source):
            rows[source] = y
            labels.append((y, source))
            y += 1
    fig, axes = plt.subplots(1, len(schemes), figsize=(3.3 * len(schemes) + 2.2, 0.36 * y + 1.6), sharex=True,
                             sharey=True, squeeze=False)
    offsets = np.linspace(-0.18, 0.18, len(layers)) if len(layers) > 1 else [0.0]
    for ax, scheme in zip(axes[0], schemes):
        part = summary[summary.scheme == scheme]
        for layer, dy in zip(layers, offsets):
            rows_here = part[part.layer == layer]
            q = rows_here[rows_here.group == "quantization"]["mean"]
            if len(q):
                ax.axvline(float(q.iloc[0]), color=colors[layer], ls="--", lw=1.2)
            others = rows_here[rows_here.group != "quantization"]
            ypos = others.source.map(rows).to_numpy() + dy
            mean = others["mean"].to_numpy()
            shown = np.maximum(mean, ERROR_FLOOR)
            err = np.vstack([mean - others.ci95_low.to_numpy(), others.ci95_high.to_numpy() - mean])
            below = mean < ERROR_FLOOR
            ax.errorbar(shown[~below], ypos[~below], xerr=err[:, ~below], fmt="o", color=colors[layer], ms=5,
                        capsize=2, lw=1)
            ax.plot(shown[below], ypos[below], "<", color=colors[layer], ms=6)
        ax.set_title(scheme)
        ax.set_xscale("log")
        ax.set_xlim(ERROR_FLOOR / 1.5, None)
        ax.grid(axis="y", visible=False)
        for position, text in labels:
            if text.startswith("—"):
                ax.axhline(position, color="0.6", lw=0.6)
    axes[0, 0].set_yticks([p for p, _ in labels], [t for _, t in labels])
    for tick, (_, text) in zip(axes[0, 0].get_yticklabels(), labels):
        if text.startswith("—"):
            tick.set_fontweight("bold")
    axes[0, 0].set_ylim(y - 0.5, -0.5)
    fig.supxlabel("normalized MVM error ||Δy|| / ||y_ref||  (log scale)")
    handles = [plt.Line2D([], [], color=colors[layer], marker="o", ls="none", label=f"{layer}: source alone")
               for layer in layers]
    handles += [plt.Line2D([], [], color=colors[layer], ls="--", label=f"{layer}: weight quantization")
                for layer in layers]
    handles.append(plt.Line2D([], [], color="0.3", marker="<", ls="none", label=f"below {ERROR_FLOOR:g}"))
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=3, frameon=False, fontsize=8)
    fig.suptitle("Where the MVM error comes from: each source alone vs weight quantization", y=1.0)
    fig.tight_layout()
    return fig


def random_vs_systematic(ratios: pd.DataFrame, sweep: pd.DataFrame | None = None) -> plt.Figure:
    """C5's ratio ``e_systematic / e_random`` at equal per-cell rms error, per decode scheme:
    one panel per coherent error in ``ratios`` (its ``systematic`` column: the global gain,
    the per-position pattern) against the per-cell magnitude, per layer (band: 95 %
    confidence interval of the mean ratio over device seeds); last, with ``sweep``, the
    ratio against the common-mode fraction ``||b Σx|| / ||x W||`` with the weights fixed and
    the inputs shifted (bars: 95 % CI). Above the dotted line at 1 a systematic error costs
    more. ``ratios`` is :func:`imclib.experiments.errors.c5_ratios` (one or several,
    concatenated), ``sweep`` :func:`imclib.experiments.errors.common_mode_sweep`."""
    schemes = list(dict.fromkeys(ratios.scheme))
    colors = dict(zip(schemes, sns.color_palette("colorblind", len(schemes))))
    layers = list(dict.fromkeys(ratios.layer))
    styles = dict(zip(layers, ["-o", "--s", ":^"]))
    kinds = list(dict.fromkeys(ratios.systematic))
    panels = len(kinds) + (sweep is not None)
    fig, axes = plt.subplots(1, panels, figsize=(3.8 * panels + 0.8, 4.6), sharey=True, squeeze=False)  # within 15 in at 200 dpi, legend included
    for index, (ax, kind) in enumerate(zip(axes[0], kinds)):
        for scheme in schemes:
            for layer in layers:
                part = ratios[(ratios.systematic == kind) & (ratios.scheme == scheme)
                              & (ratios.layer == layer)].sort_values("magnitude")
                ax.fill_between(part.magnitude, part.ci95_low, part.ci95_high, color=colors[scheme], alpha=0.25, lw=0)
                ax.plot(part.magnitude, part.ratio, styles[layer], color=colors[scheme], ms=4)
        ax.set(xscale="log", yscale="log", xlabel="per-cell conductance error δ (rms, relative)",
               title=f"({'abc'[index]}) {kind} vs random")
    axes[0, 0].set_ylabel("e_systematic / e_random")
    if sweep is not None:
        ax_cm = axes[0, -1]
        for scheme in schemes:
            part = sweep[sweep.scheme == scheme].sort_values("common_mode_fraction")
            ax_cm.errorbar(part.common_mode_fraction, part.ratio,
                           yerr=[part.ratio - part.ci95_low, part.ci95_high - part.ratio], fmt="-o",
                           color=colors[scheme], ms=4, capsize=2)
        ax_cm.set(xlabel="common-mode fraction ||b Σx|| / ||x W||",
                  title=f"({'abc'[len(kinds)]}) global gain, inputs shifted, δ = {sweep.magnitude.iloc[0]:.1%}")
    for a in axes[0]:
        a.axhline(1, color="k", ls=":", lw=1)
    handles = [plt.Line2D([], [], color=colors[s], lw=3, label=s) for s in schemes]
    handles += [plt.Line2D([], [], color="0.3", ls=styles[layer][:-1], marker=styles[layer][-1], label=layer)
                for layer in layers]
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 0.9), frameon=False, fontsize=8)
    fig.suptitle("Equal per-cell rms error: coherent errors vs a random one", y=1.0)
    fig.tight_layout()
    return fig


def averaging(table: pd.DataFrame, slopes: dict) -> plt.Figure:
    """Sanity check: column-current error against the rows summed on one column (log-log)
    with the fitted slopes; the band is the 95 % confidence interval of the random error's
    mean over device seeds (the systematic error is deterministic)."""
    from .experiments.errors import mean_ci

    fig, ax = plt.subplots(figsize=(6, 4))
    for kind, color in zip(("systematic", "random"), sns.color_palette("colorblind", 2)):
        part = table[table.kind == kind]
        stats = pd.DataFrame([mean_ci(g.current_error_A) for _, g in part.groupby("rows")],
                             index=sorted(part.rows.unique()), columns=["mean", "low", "high"])
        ax.fill_between(stats.index, stats.low, stats.high, color=color, alpha=0.3, lw=0)
        ax.plot(stats.index, stats["mean"], "o-", color=color, label=f"{kind} (slope {slopes[kind]:.2f})")
    ax.set(xscale="log", yscale="log", xlabel="rows summed on one column n", ylabel="column current error (A rms)",
           title="Sanity check (an identity): coherent ∝ n, random ∝ √n")
    ax.legend(frameon=False)
    return fig


ERROR_LIMITS = (3e-3, 10.0)
"""Fixed y range of the states-sweep error panels (normalized MVM error)."""


def _mark_optimum(ax, label: str, best_n: int, height: float = 0.97) -> None:
    """A vertical line at an interior optimum labelled beside it, or the words "no interior
    optimum", at ``height`` (fraction of the axes; chosen where no curve runs)."""
    if label.startswith("N ="):
        ax.axvline(best_n, color="k", ls=":", lw=1)
        ax.text(best_n, height, f" optimum {label}", transform=ax.get_xaxis_transform(), fontsize=8, va="top")
    else:
        ax.text(0.98, height, label, transform=ax.transAxes, ha="right", va="top", fontsize=8)


def states_sweep(sweep: pd.DataFrame, result: dict | None = None, title: str = "", ax: plt.Axes | None = None,
                 legend: bool = True) -> plt.Figure:
    """MVM error components (mean, 95 % CI band over device seeds) against states per cell,
    on fixed axes; ``result`` (:func:`imclib.experiments.states.interior_optimum`) marks the
    optimum or says there is none, at the top of the panel (the errors stay below 1)."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 4))
    _lineplot(data=sweep, x="states", y="error", hue="component", hue_order=["quantization", "resolution", "total"],
                 marker="o", errorbar=("ci", 95), ax=ax, legend=legend)
    ax.set(yscale="log", ylim=ERROR_LIMITS, xlim=(1.5, 16.5), xticks=range(2, 17, 2), xlabel="states per cell N",
           ylabel="normalized MVM error (layer 1)", title=title)
    if legend:
        ax.legend(loc="lower left", fontsize=8)
    if result is not None:
        _mark_optimum(ax, result["label"], result["best_N"])
    return fig


def states_study(sweeps: dict, results: dict, accuracy_table: pd.DataFrame | None = None,
                 accuracy_result: dict | None = None, credible_max: int | None = None,
                 accuracy_label: str = "QAT per N", contrast_table: pd.DataFrame | None = None,
                 contrast_label: str = "", accuracy_ylabel: str = "MNIST test accuracy (%)") -> plt.Figure:
    """Small multiples: error components per cell type / scheme (``sweeps``: title ->
    sweep, ``results``: title -> :func:`interior_optimum` dict) in two rows, one legend for
    them below, and, in a column of its own on the right, MNIST accuracy per N (mean, 95 % CI
    band over the table's rows, e.g. training seeds; one line per ``scheme`` when the table
    has that column) of the ``accuracy_label`` network, with an optional ``contrast_table``
    (dashed, ``contrast_label``). Cells beyond ``credible_max`` states are shaded (not
    physically credible)."""
    rows = 1 if len(sweeps) == 1 else 2
    columns = -(-len(sweeps) // rows)
    extra = accuracy_table is not None
    fig = plt.figure(figsize=(3.6 * (columns + extra), 3.5 * rows + 0.6))  # within 15 in at 200 dpi
    grid = fig.add_gridspec(rows, columns + extra)
    for i, (title, sweep) in enumerate(sweeps.items()):
        ax = fig.add_subplot(grid[i // columns, i % columns])
        states_sweep(sweep, results[title], title, ax, legend=i == 0)
        if i == 0:
            legend = ax.get_legend()
            fig.legend(legend.legend_handles, [t.get_text() for t in legend.texts], loc="upper center",
                       bbox_to_anchor=(0.5, 0.0), ncol=3, frameon=False, title="MVM error component (layer 1)")
            legend.remove()
        if credible_max is not None and title.startswith("writable"):
            ax.axvspan(credible_max + 0.5, 16.5, color="0.88", zorder=0)
            ax.text(credible_max + 0.7, 0.85, "not credible\nto build", transform=ax.get_xaxis_transform(), fontsize=7,
                    color="0.35", va="top")
    if extra:
        ax = fig.add_subplot(grid[:, columns])
        table = accuracy_table.assign(accuracy_pct=accuracy_table.accuracy * 100)
        if "scheme" in table:
            _lineplot(data=table.assign(network=accuracy_label + ", " + table.scheme), x="states", y="accuracy_pct",
                      hue="network", marker="o", errorbar=("ci", 95), ax=ax)
        else:
            _lineplot(data=table, x="states", y="accuracy_pct", marker="o", errorbar=("ci", 95), color="k", ax=ax,
                      label=accuracy_label if contrast_table is not None else None)
        lowest = table.groupby("states").accuracy_pct.mean().min()
        if contrast_table is not None:
            contrast = contrast_table.assign(accuracy_pct=contrast_table.accuracy * 100)
            _lineplot(data=contrast, x="states", y="accuracy_pct", marker="s", errorbar=("ci", 95), color="0.5",
                      ls="--", ax=ax, label=contrast_label)
            lowest = min(lowest, contrast.groupby("states").accuracy_pct.mean().min())
            ax.legend(fontsize=7, loc="lower right")
        low = max(0.0, 5.0 * np.floor(lowest / 5.0 - 0.5))
        ax.set(xlim=(1.5, 16.5), xticks=range(2, 17, 2), ylim=(low, 100), xlabel="states per cell N",
               ylabel=accuracy_ylabel, title=f"writable stack: accuracy ({accuracy_label})")
        if accuracy_result is not None:
            _mark_optimum(ax, accuracy_result["label"], accuracy_result["best_N"], height=0.5)
        if credible_max is not None:
            ax.axvspan(credible_max + 0.5, 16.5, color="0.88", zorder=0)
    fig.suptitle("Quantization vs resolution with circuit-derived sense noise (bands: 95 % CI over device seeds; "
                 "grey: writable stacks that are not credible to build)", y=1.0)
    fig.tight_layout()
    return fig


NO_OPTIMUM_ROW = 18
"""Where :func:`optimum_shift` draws a setting without an interior optimum (above N = 16)."""


def optimum_shift(table: pd.DataFrame) -> plt.Figure:
    """Best N against TMR0, v_read and t_int (one panel each), per scheme: interior optima are
    filled markers joined by a line; a setting with none is an open marker in a row of its
    own labelled "none", joined to nothing. Schemes are dodged sideways so that equal values
    stay visible."""
    parameters = list(dict.fromkeys(table.parameter))
    fig, axes = plt.subplots(1, len(parameters), figsize=(3.6 * len(parameters), 4.2), sharey=True, squeeze=False)
    groups = list(table.groupby("scheme", sort=False)) if "scheme" in table else [("", table)]
    dodge = dict(zip([name for name, _ in groups], np.linspace(-0.02, 0.02, len(groups)) if len(groups) > 1 else [0.0]))
    for ax, parameter in zip(axes[0], parameters):
        values = sorted(table[table.parameter == parameter].value.unique())
        for (scheme, rows), color in zip(groups, sns.color_palette(n_colors=len(groups))):
            rows = rows[rows.parameter == parameter].sort_values("value")
            x = rows.value.to_numpy(float) * 10 ** dodge[scheme]
            interior = rows.optimum.notna().to_numpy()
            ax.plot(x, np.where(interior, rows.best_N, np.nan), "o-", lw=1, color=color, label=scheme or None)
            ax.plot(x[~interior], np.full((~interior).sum(), NO_OPTIMUM_ROW), "o", mfc="none", color=color)
        ax.axhline(NO_OPTIMUM_ROW - 1, color="0.6", lw=0.8)
        ax.set(xscale="log", xlabel=parameter, ylim=(1, NO_OPTIMUM_ROW + 1))
        ax.set_yticks([*range(2, 17, 2), NO_OPTIMUM_ROW], [*map(str, range(2, 17, 2)), "none"])
        ax.set_xticks(values, [f"{v:g}" for v in values])
        ax.minorticks_off()
    axes[0, 0].set_ylabel("best N (none: no interior optimum)")
    if "scheme" in table:
        axes[0, -1].legend(fontsize=8, loc="center right")
    fig.suptitle("Where the optimum number of states lies", y=1.02)
    fig.tight_layout()
    return fig


def cell_physics(cells: pd.DataFrame, budget: float = 1e-3, v_breakdown: float | None = None) -> plt.Figure:
    """Per cell type (writable stacks per ``design``): worst adjacent-level overlap
    probability (read margin, dotted: the ``budget``) and largest junction voltage while
    writing (dotted: ``v_breakdown``), against N."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    cells = cells.assign(cell=cells.kind.where(cells.kind != "writable", cells.kind + ", " + cells.design))
    _lineplot(data=cells, x="n_states", y="worst_overlap", hue="cell", marker="o", ax=axes[0])
    axes[0].axhline(budget, color="k", ls=":", lw=1)
    axes[0].set(yscale="log", ylim=(1e-30, 1), xlabel="states per cell N", ylabel="worst adjacent-level overlap",
                title="read margin of one cell at V_read")
    stacks = cells[cells.kind != "uniform"]
    _lineplot(data=stacks, x="n_states", y="write_voltage_max_V", hue="cell", marker="o", ax=axes[1], legend=False)
    if v_breakdown is not None:
        axes[1].axhline(v_breakdown, color="k", ls=":", lw=1)
        axes[1].text(16.3, v_breakdown, "breakdown limit", ha="right", va="bottom", fontsize=8)
    axes[0].text(16.3, budget, f"budget {budget:g}", ha="right", va="bottom", fontsize=8)
    axes[1].set(xlabel="states per cell N", ylabel="largest junction voltage while writing (V)", ylim=(0, 4),
                title="write: first pulse through the whole stack")
    for ax in axes:
        ax.set(xlim=(1.5, 16.5), xticks=range(2, 17, 2))
    fig.tight_layout()
    return fig


# ---- 06: circuit effects ------------------------------------------------------------

def circuit_effects(errors: pd.DataFrame, accuracy_table: pd.DataFrame, column: str = "error") -> plt.Figure:
    """Wire resistance against array size, 2 x 2: (a) MVM error of the last device model
    (the default device) per array size; (b) MNIST accuracy per array size; (c) the three
    device models side by side for the smallest and the largest array; (d) the ratio of the
    largest to the smallest array's error (above 1: the small array wins). One shared legend
    per row; symlog resistance axis."""
    device_names = list(dict.fromkeys(errors.device))
    sizes = sorted(errors["size"].unique())
    palette = dict(zip(sizes, sns.color_palette("colorblind", len(sizes))))
    fig, axes = plt.subplots(2, 2, figsize=(10, 7.6))
    (ax_err, ax_acc), (ax_dev, ax_ratio) = axes
    main = errors[errors.device == device_names[-1]]
    _lineplot(data=main, x="r_wire", y=column, hue="size", palette=palette, marker="o", ax=ax_err, legend=False)
    ax_err.set(yscale="log", ylabel="normalized MVM error", title=f"(a) MVM error: {device_names[-1]}")
    _lineplot(data=accuracy_table.assign(percent=accuracy_table.accuracy * 100), x="r_wire", y="percent", hue="size",
              palette=palette, marker="o", ax=ax_acc, legend=False)
    ax_acc.set(ylabel="MNIST test accuracy (%)", ylim=(0, 102), title=f"(b) accuracy: {accuracy_table.device.iloc[0]}")
    ends = errors[errors["size"].isin([sizes[0], sizes[-1]])]
    _lineplot(data=ends, x="r_wire", y=column, hue="size", palette=palette, style="device", markers=True,
                 ax=ax_dev, legend=False)
    ax_dev.set(yscale="log", ylabel="normalized MVM error",
               title=f"(c) device models, {sizes[0]}x{sizes[0]} vs {sizes[-1]}x{sizes[-1]}")
    means = errors.groupby(["device", "size", "r_wire"])[column].mean().unstack("size")
    ratio = (means[sizes[-1]] / means[sizes[0]]).rename("ratio").reset_index()
    _lineplot(data=ratio, x="r_wire", y="ratio", style="device", markers=True, color="k", ax=ax_ratio, legend=False)
    ax_ratio.axhline(1, color="0.5", lw=1, ls="--")
    ax_ratio.set(yscale="log", ylabel=f"error {sizes[-1]}x{sizes[-1]} / error {sizes[0]}x{sizes[0]}",
                 title="(d) > 1: the small array wins")
    resistances = sorted(errors.r_wire.unique())
    for ax in axes.flat:
        ax.set_xscale("symlog", linthresh=0.5)
        ax.set_xticks(resistances, [f"{r:g}" for r in resistances], minor=False)
        ax.set_xticks([], minor=True)
        ax.set_xlim(-0.1, 1.15 * resistances[-1])
        ax.set_xlabel("wire resistance per segment (Ω)")
    size_handles = [plt.Line2D([], [], color=palette[s], marker="o", label=f"{s}x{s}") for s in sizes]
    fig.legend(handles=size_handles, title="array n x n", loc="upper left", bbox_to_anchor=(1.0, 0.93), frameon=False)
    style_markers = ["o", "X", "s", "P", "D"]
    style_dashes = ["-", "--", ":", "-."]
    device_handles = [plt.Line2D([], [], color="k", marker=style_markers[i % 5], ls=style_dashes[i % 4], label=name)
                      for i, name in enumerate(device_names)]
    fig.legend(handles=device_handles, title="device model (c, d)", loc="upper left", bbox_to_anchor=(1.0, 0.45),
               frameon=False)
    fig.suptitle("IR drop: small arrays win once the wires are resistive", y=1.0)
    fig.tight_layout()
    return fig


def cell_voltage_map(cells: pd.DataFrame) -> plt.Figure:
    """The voltage each cell of one array sees (mV), all rows driven at V_read."""
    grid = cells.pivot(index="row", columns="column", values="cell_voltage_mV")
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    sns.heatmap(grid, cmap="magma", cbar_kws={"label": "cell voltage (mV)"}, ax=ax,
                xticklabels=max(1, len(grid.columns) // 8), yticklabels=max(1, len(grid) // 8))
    ax.set(xlabel="column j (sense amplifier at the bottom)", ylabel="row i (driver at the left)",
           title=f"{len(grid)}x{len(grid.columns)} array: worst drop {cells.drop_percent.max():.1f} % of V_read")
    return fig


# ---- 07: cost ------------------------------------------------------------------------

ENERGY_COMPONENTS = ("array read", "row drive", "DAC", "ADC", "common-mode current", "digital")
AREA_COMPONENTS = ("cells", "row drivers", "ADC", "digital")


def cost_breakdown(components: pd.DataFrame) -> plt.Figure:
    """Energy per inference and area by component, and latency, for each array size and
    scenario (dot plots on log axes), from study 07's cost tables (``layer == "total"``); the
    legends sit below the panels, clear of every row."""
    totals = components[(components.layer == "total")].copy()
    totals["configuration"] = [f"{s}x{s}, {scenario}" for s, scenario in zip(totals["size"], totals.scenario)]
    order = list(dict.fromkeys(totals.configuration))
    fig, (ax_e, ax_a, ax_t) = plt.subplots(1, 3, figsize=(14, 0.5 * len(order) + 2.5), sharey=True,
                                           gridspec_kw={"width_ratios": [1.4, 1.2, 0.8]})
    energy = totals[totals.component.isin(ENERGY_COMPONENTS) & (totals.energy_J > 0)]
    sns.stripplot(data=energy, x="energy_J", y="configuration", hue="component", order=order, jitter=False,
                  size=9, marker="o", ax=ax_e, hue_order=[c for c in ENERGY_COMPONENTS if c in set(energy.component)])
    total_energy = totals[totals.component == "total"].set_index("configuration").energy_J.reindex(order)
    ax_e.scatter(total_energy, range(len(order)), marker="|", s=400, color="k", label="total", zorder=3)
    ax_e.set(xscale="log", xlabel="energy per inference (J)", ylabel="", title="Energy by component")
    ax_e.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=3, frameon=False)
    area = totals[totals.component.isin(AREA_COMPONENTS) & (totals.area_m2 > 0)].assign(area_mm2=lambda t: t.area_m2 * 1e6)
    sns.stripplot(data=area, x="area_mm2", y="configuration", hue="component", order=order, jitter=False, size=9,
                  marker="s", ax=ax_a, hue_order=[c for c in AREA_COMPONENTS if c in set(area.component)],
                  palette="dark")
    ax_a.set(xscale="log", xlabel="area (mm²)", ylabel="", title="Area by component")
    ax_a.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.17), ncol=2, frameon=False)
    latency = totals[totals.component == "total"].set_index("configuration").latency_s.reindex(order)
    ax_t.scatter(latency, range(len(order)), color="k")
    ax_t.set(xscale="log", xlabel="latency per inference (s)", title="Latency")
    fig.suptitle("What one MNIST inference costs (784-256-10, 4-state MTJ cells, 8-bit ADC)", y=1.02)
    fig.tight_layout()
    return fig


def pareto(summary: pd.DataFrame, paper: dict) -> plt.Figure:
    """Accuracy (%) against energy per inference for every configuration (mean over seeds),
    the Pareto front and the paper's configuration (star)."""
    fig, ax = plt.subplots(figsize=(8, 5))
    data = summary.assign(states=summary.n_states.astype(str), array=summary["size"].map(lambda s: f"{s}x{s}"),
                          ADC=summary.adc_bits.map(lambda b: f"{b} bits"), percent=summary.accuracy * 100)
    sns.scatterplot(data=data, x="energy_J", y="percent", hue="ADC", style="array", size="states",
                    hue_order=[f"{b} bits" for b in sorted(summary.adc_bits.unique())],
                    size_order=[str(n) for n in sorted(summary.n_states.unique(), reverse=True)],
                    style_order=[f"{n}x{n}" for n in sorted(summary["size"].unique())],
                    sizes=(25, 110), palette="viridis", ax=ax, legend="full")
    front = data[data.on_front].sort_values("energy_J")
    ax.step(front.energy_J, front.percent, where="post", color="k", lw=1, label="Pareto front")
    mark = data[(data.n_states == paper["n_states"]) & (data["size"] == paper["size"])
                & (data.adc_bits == paper["adc_bits"])].iloc[0]
    ax.scatter(mark.energy_J, mark.percent, marker="*", s=350, facecolor="none", edgecolor="crimson", lw=1.5,
               label="paper's configuration", zorder=4)
    ax.set(xscale="log", xlabel="energy per MNIST inference (J)", ylabel="MNIST accuracy (%, test subset)",
           title="Accuracy against energy: states, array size, ADC bits")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig


def _configuration(point: dict) -> str:
    return f"{point['n_states']} states, {point['size']}x{point['size']}, {point['adc_bits']}-bit ADC"


def cost_view(table: pd.DataFrame, paper: dict, current: dict, energy_range) -> plt.Figure:
    """Widget view: one configuration's energy by component (fixed axis ``energy_range``, J)
    beside accuracy (%) against energy for it and the paper's configuration (``paper`` and
    ``current``: ``n_states``, ``size``, ``adc_bits``, ``energy_J``, ``accuracy``), on axes
    fitted to the two points, each named with its configuration in the legend."""
    fig, (ax_e, ax_p) = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [1, 1.3]})
    totals = table[(table.layer == "total") & table.component.isin(ENERGY_COMPONENTS + ("total",))]
    totals = totals[totals.energy_J > 0]
    ax_e.scatter(totals.energy_J, totals.component, color="C0", s=60)
    ax_e.set(xscale="log", xlim=energy_range, xlabel="energy per inference (J)", title="Energy by component")
    ax_p.scatter(paper["energy_J"], paper["accuracy"] * 100, marker="*", s=350, facecolor="none", edgecolor="crimson",
                 lw=1.5, label=f"paper's configuration ({_configuration(paper)})", zorder=4)
    ax_p.scatter(current["energy_J"], current["accuracy"] * 100, marker="o", s=300, facecolor="none", edgecolor="C0",
                 lw=2, label=f"selected ({_configuration(current)})", zorder=5)
    energies = np.array([paper["energy_J"], current["energy_J"]])
    percents = np.array([paper["accuracy"], current["accuracy"]]) * 100
    ax_p.set(xscale="log", xlim=(energies.min() / 3, energies.max() * 3),
             ylim=(max(0.0, percents.min() - 5), min(100.0, percents.max() + 5) + 0.5),
             xlabel="energy per MNIST inference (J)", ylabel="MNIST accuracy (%)",
             title="Accuracy against energy (first 200 test images)")
    ax_p.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), frameon=False)
    fig.tight_layout()
    return fig
