"""Figures of the studies: each function draws one tidy DataFrame and returns the figure.

:func:`save` writes a figure as PNG (200 dpi, stable file name) into
:func:`imclib.results.figures_dir`.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from .results import figures_dir

sns.set_theme(context="notebook", style="whitegrid")
PAPER_COLOR = "0.3"


def save(fig: plt.Figure, name: str) -> Path:
    """Save ``fig`` as ``<figures>/<name>.png`` (200 dpi, for the notebook and README) and
    ``<figures>/<name>.svg`` (vector, for papers); return the PNG path."""
    folder = figures_dir()
    fig.savefig(folder / f"{name}.png", dpi=200, bbox_inches="tight")
    with plt.rc_context({"svg.hashsalt": name, "svg.fonttype": "none"}):
        fig.savefig(folder / f"{name}.svg", bbox_inches="tight", metadata={"Date": None})
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


def accuracy(table: pd.DataFrame, paper: dict | None = None) -> plt.Figure:
    """Accuracy per network (points per device seed, bar = mean) with the paper's values."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    sns.barplot(data=table, x="network", y="accuracy", errorbar=None, alpha=0.5, ax=ax)
    sns.stripplot(data=table, x="network", y="accuracy", color="k", size=4, ax=ax)
    for name, value in (paper or {}).items():
        ax.axhline(value, ls="--", color=PAPER_COLOR, lw=1)
        ax.text(ax.get_xlim()[1], value, f" paper {name}: {value:.2%}", va="center", fontsize=8)
    low = max(0.0, table.accuracy.min() - 0.05)
    ax.set(ylim=(low, 1.0), ylabel="MNIST test accuracy", xlabel="", title="MNIST: software vs 4-state 4x4 MTJ arrays")
    return fig


def confusion(table: pd.DataFrame) -> plt.Figure:
    """Confusion matrix (row-normalized) from a tidy confusion table."""
    counts = table.pivot(index="true", columns="predicted", values="count")
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    sns.heatmap(counts.div(counts.sum(axis=1), axis=0), annot=counts, fmt="d", cmap="Blues", cbar=False,
                annot_kws={"fontsize": 7}, ax=ax)
    ax.set(xlabel="predicted digit", ylabel="true digit", title="Hardware confusion matrix (counts)")
    return fig


def pca_gap(gaps: pd.DataFrame) -> plt.Figure:
    """Software minus hardware accuracy against PCA components, with tiles needed."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    labels = [str(p) for p in gaps.pca]
    x = np.arange(len(gaps))
    ax.plot(x, gaps.gap_PTQ * 100, "o-", label="PTQ, range max|w|")
    ax.plot(x, gaps.gap_PTQ_calibrated * 100, "^-", label="PTQ, calibrated clipping")
    ax.plot(x, gaps.gap_QAT * 100, "s-", label="QAT")
    for xi, tiles in zip(x, gaps.tiles):
        ax.annotate(f"{tiles} arrays", (xi, 0), textcoords="offset points", xytext=(0, 4), ha="center", fontsize=7)
    ax.axhline(0, color="k", lw=0.8)
    ax.set(xticks=x, xticklabels=labels, xlabel="PCA components (none = raw 784 pixels)",
           ylabel="software − hardware accuracy (points)", title="Does PCA narrow the gap?")
    ax.legend()
    return fig


def error_decomposition(errors: pd.DataFrame) -> plt.Figure:
    """MVM error per source (mean and spread over device seeds), one panel per layer."""
    order = errors.drop_duplicates("source").source.tolist()
    grid = sns.catplot(data=errors, y="source", x="error", hue="group", col="layer", kind="bar", order=order,
                       errorbar="sd", dodge=False, height=4.5, aspect=1.0, sharex=False)
    grid.set_axis_labels("normalized MVM error ||Δy|| / ||y_ref||", "")
    grid.figure.suptitle("Where the MVM error comes from", y=1.02)
    for ax in grid.axes.flat:
        ax.set_xscale("log")
    return grid.figure


def random_vs_systematic(table: pd.DataFrame) -> plt.Figure:
    """Error increment against per-cell error magnitude: coherent vs random vs reused array."""
    grid = sns.relplot(data=table, x="magnitude", y="error", hue="kind", style="kind", col="layer", kind="line",
                       markers=True, errorbar="sd", height=3.8, facet_kws={"sharey": False})
    grid.set(xscale="log", yscale="log")
    grid.set_axis_labels("per-cell conductance error (rms, relative)", "MVM error increment")
    grid.figure.suptitle("Equal per-cell magnitude: systematic vs random", y=1.03)
    return grid.figure


def averaging(table: pd.DataFrame, slopes: dict) -> plt.Figure:
    """Column-current error against rows summed per column (log-log), with fitted slopes."""
    fig, ax = plt.subplots(figsize=(6, 4))
    sns.lineplot(data=table, x="rows", y="current_error_A", hue="kind", marker="o", errorbar="sd", ax=ax)
    ax.set(xscale="log", yscale="log", xlabel="rows summed on one column n", ylabel="column current error (A rms)",
           title="Averaging: systematic ∝ n, random ∝ √n")
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles, [f"{k} (slope {slopes[k]:.2f})" for k in labels])
    return fig


def states_sweep(sweep: pd.DataFrame, accuracy_table: pd.DataFrame | None = None, best: int | None = None) -> plt.Figure:
    """MVM error components against states per cell, MNIST accuracy on a second axis."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    sns.lineplot(data=sweep, x="states", y="error", hue="component", marker="o", errorbar="sd", ax=ax)
    ax.set(yscale="log", xlabel="states per cell N (series stack of N−1 MTJs)", ylabel="normalized MVM error")
    if best is not None:
        ax.axvline(best, color="k", ls=":", lw=1)
        ax.text(best, ax.get_ylim()[1], f" optimum N = {best}", va="top", fontsize=9)
    if accuracy_table is not None:
        twin = ax.twinx()
        means = accuracy_table.groupby("states").accuracy.mean()
        twin.plot(means.index, means.values * 100, "k--", lw=1, label="MNIST accuracy (PTQ)")
        twin.set(ylabel="MNIST accuracy (%)")
        twin.grid(False)
        twin.legend(loc="lower right", fontsize=8)
    ax.set_title("Quantization vs resolution: an optimum number of states")
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
    sns.lineplot(data=main, x="r_wire", y=column, hue="size", palette=palette, marker="o", ax=ax_err, legend=False)
    ax_err.set(yscale="log", ylabel="normalized MVM error", title=f"(a) MVM error: {device_names[-1]}")
    sns.lineplot(data=accuracy_table, x="r_wire", y="accuracy", hue="size", palette=palette, marker="o", ax=ax_acc,
                 legend=False)
    ax_acc.set(ylabel="MNIST test accuracy", ylim=(0, 1.02), title=f"(b) accuracy: {accuracy_table.device.iloc[0]}")
    ends = errors[errors["size"].isin([sizes[0], sizes[-1]])]
    sns.lineplot(data=ends, x="r_wire", y=column, hue="size", palette=palette, style="device", markers=True,
                 ax=ax_dev, legend=False)
    ax_dev.set(yscale="log", ylabel="normalized MVM error",
               title=f"(c) device models, {sizes[0]}x{sizes[0]} vs {sizes[-1]}x{sizes[-1]}")
    means = errors.groupby(["device", "size", "r_wire"])[column].mean().unstack("size")
    ratio = (means[sizes[-1]] / means[sizes[0]]).rename("ratio").reset_index()
    sns.lineplot(data=ratio, x="r_wire", y="ratio", style="device", markers=True, color="k", ax=ax_ratio, legend=False)
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

ENERGY_COMPONENTS = ("array read", "row drive", "ADC", "common-mode current", "digital")
AREA_COMPONENTS = ("cells", "row drivers", "ADC", "digital")


def cost_breakdown(components: pd.DataFrame) -> plt.Figure:
    """Energy per inference and area by component, and latency, for each array size and
    scenario (dot plots on log axes), from study 07's cost tables (``layer == "total"``)."""
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
    ax_e.legend(fontsize=8, loc="lower left")
    area = totals[totals.component.isin(AREA_COMPONENTS) & (totals.area_m2 > 0)].assign(area_mm2=lambda t: t.area_m2 * 1e6)
    sns.stripplot(data=area, x="area_mm2", y="configuration", hue="component", order=order, jitter=False, size=9,
                  marker="s", ax=ax_a, hue_order=[c for c in AREA_COMPONENTS if c in set(area.component)],
                  palette="dark")
    ax_a.set(xscale="log", xlabel="area (mm²)", ylabel="", title="Area by component")
    ax_a.legend(fontsize=8, loc="lower left")
    latency = totals[totals.component == "total"].set_index("configuration").latency_s.reindex(order)
    ax_t.scatter(latency, range(len(order)), color="k")
    ax_t.set(xscale="log", xlabel="latency per inference (s)", title="Latency")
    fig.suptitle("What one MNIST inference costs (784-256-10, 4-state MTJ cells, 8-bit ADC)", y=1.02)
    fig.tight_layout()
    return fig


def pareto(summary: pd.DataFrame, paper: dict, current: dict | None = None, xlim=None, ylim=None,
           ax: plt.Axes | None = None) -> plt.Figure:
    """Accuracy against energy per inference for every configuration (mean over seeds), the
    Pareto front, the paper's configuration (star) and optionally the ``current`` one (ring)."""
    if ax is None:
        fig, ax = plt.subplots(figsize=(8, 5))
    else:
        fig = ax.figure
    data = summary.assign(states=summary.n_states.astype(str), array=summary["size"].map(lambda s: f"{s}x{s}"),
                          ADC=summary.adc_bits.map(lambda b: f"{b} bits"))
    sns.scatterplot(data=data, x="energy_J", y="accuracy", hue="ADC", style="array", size="states",
                    hue_order=[f"{b} bits" for b in sorted(summary.adc_bits.unique())],
                    size_order=[str(n) for n in sorted(summary.n_states.unique(), reverse=True)],
                    style_order=[f"{n}x{n}" for n in sorted(summary["size"].unique())],
                    sizes=(25, 110), palette="viridis", ax=ax, legend="full")
    front = summary[summary.on_front].sort_values("energy_J")
    ax.step(front.energy_J, front.accuracy, where="post", color="k", lw=1, label="Pareto front")
    mark = summary[(summary.n_states == paper["n_states"]) & (summary["size"] == paper["size"])
                   & (summary.adc_bits == paper["adc_bits"])].iloc[0]
    ax.scatter(mark.energy_J, mark.accuracy, marker="*", s=350, facecolor="none", edgecolor="crimson", lw=1.5,
               label="paper's configuration", zorder=4)
    if current is not None:
        ax.scatter(current["energy_J"], current["accuracy"], marker="o", s=300, facecolor="none", edgecolor="red",
                   lw=2, label="selected", zorder=5)
    ax.set(xscale="log", xlabel="energy per MNIST inference (J)", ylabel="MNIST accuracy (test subset)",
           title="Accuracy against energy: states, array size, ADC bits")
    if xlim is not None:
        ax.set_xlim(xlim)
    if ylim is not None:
        ax.set_ylim(ylim)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return fig


def cost_view(table: pd.DataFrame, summary: pd.DataFrame, paper: dict, current: dict, energy_range) -> plt.Figure:
    """Widget view: one configuration's energy by component (fixed axis) beside the Pareto plot."""
    fig, (ax_e, ax_p) = plt.subplots(1, 2, figsize=(13, 4.2), gridspec_kw={"width_ratios": [1, 1.3]})
    totals = table[(table.layer == "total") & table.component.isin(ENERGY_COMPONENTS + ("total",))]
    totals = totals[totals.energy_J > 0]
    ax_e.scatter(totals.energy_J, totals.component, color="C0", s=60)
    ax_e.set(xscale="log", xlim=energy_range, xlabel="energy per inference (J)", title="Energy by component")
    pareto(summary, paper, current, xlim=energy_range, ylim=(0, 1), ax=ax_p)
    fig.tight_layout()
    return fig
