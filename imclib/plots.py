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
    """Save ``fig`` as ``<figures>/<name>.png`` at print resolution; return the path."""
    path = figures_dir() / f"{name}.png"
    fig.savefig(path, dpi=200, bbox_inches="tight")
    return path


def cell_levels(levels: pd.DataFrame) -> plt.Figure:
    """Level ladders: conductance of every level per construction, at 0 V and at V_read."""
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    long = levels.melt(id_vars=["construction", "level"], value_vars=["conductance_uS", "conductance_at_vread_uS"],
                       var_name="bias", value_name="G")
    long["bias"] = long.bias.map({"conductance_uS": "0 V", "conductance_at_vread_uS": "at V_read"})
    sns.stripplot(data=long, x="construction", y="G", hue="bias", dodge=True, marker="_", size=30, linewidth=2.5,
                  jitter=False, ax=ax)
    ax.set(ylabel="level conductance G (µS)", xlabel="cell construction", title="Levels of one N-ary MTJ cell")
    return fig


def array_read(cells: pd.DataFrame, columns: pd.DataFrame) -> plt.Figure:
    """One array: cell conductances (heatmap), row voltages and column currents; decoded vs exact."""
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
    ax_out.set(xlabel="output column", ylabel="y (weight units)", title="MVM retrieval", xticks=x)
    ax_out.legend(fontsize=8)
    fig.tight_layout()
    return fig


def tiling(tiles: pd.DataFrame, n_in: int, n_out: int, rows: int, cols: int) -> plt.Figure:
    """A weight matrix cut into arrays (padding hatched)."""
    fig, ax = plt.subplots(figsize=(5, 5 * max(n_in, 1) / max(n_out, 1) * 0.6 + 1))
    for tile in tiles.itertuples():
        ax.add_patch(plt.Rectangle((tile.first_column, tile.first_row), cols, rows, fill=False, hatch="//", lw=0.5))
        ax.add_patch(plt.Rectangle((tile.first_column, tile.first_row), tile.used_columns, tile.used_rows,
                                   color=plt.cm.tab20(tile.Index % 20), alpha=0.7))
        ax.text(tile.first_column + cols / 2, tile.first_row + rows / 2, f"({tile.row_block},{tile.column_tile})",
                ha="center", va="center", fontsize=8)
    ax.set(xlim=(0, tiles.first_column.max() + cols), ylim=(tiles.first_row.max() + rows, 0),
           xlabel="output column j", ylabel="input row i", aspect="equal",
           title=f"{n_in}x{n_out} layer on {len(tiles)} arrays of {rows}x{cols}")
    return fig


def xor_margins(table: pd.DataFrame) -> plt.Figure:
    """Decision margin of each XOR row in software and on the array."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    labels = [f"({int(a)},{int(b)})→{t}" for a, b, t in zip(table.x1, table.x2, table.target)]
    x = np.arange(len(table))
    ax.bar(x - 0.2, table.float_margin, 0.4, label="software")
    ax.bar(x + 0.2, table.margin, 0.4, label="4x4 MTJ array")
    ax.axhline(0, color="k", lw=1)
    ax.set(xticks=x, xticklabels=labels, ylabel="margin z_target - z_other", title="XOR decision margins (> 0 is correct)")
    ax.legend()
    return fig


def xor_noise(sweep: pd.DataFrame) -> plt.Figure:
    """Rows correct against programming variation."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    sns.lineplot(data=sweep, x="programming_sigma", y="rows_correct", errorbar=("pi", 90), marker="o", ax=ax)
    ax.set(xlabel="programming variation σ of ln G", ylabel="XOR rows correct (of 4)", ylim=(0, 4.2),
           title="XOR on one array vs cell-to-cell variation")
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


ERROR_LIMITS = (3e-3, 10.0)
"""Fixed y range of the states-sweep error panels (normalized MVM error)."""


def _mark_optimum(ax, label: str, best_n: int, y: float) -> None:
    """A vertical line at an interior optimum, or the words "no interior optimum"."""
    if label.startswith("N ="):
        ax.axvline(best_n, color="k", ls=":", lw=1)
        ax.annotate(f"optimum {label}", (best_n, y), xytext=(4, 0), textcoords="offset points", fontsize=8, va="center")
    else:
        ax.text(0.98, 0.97, label, transform=ax.transAxes, ha="right", va="top", fontsize=8)


def states_sweep(sweep: pd.DataFrame, result: dict | None = None, title: str = "", ax: plt.Axes | None = None,
                 legend: bool = True) -> plt.Figure:
    """MVM error components (mean, 95 % CI band over device seeds) against states per cell,
    on fixed axes; ``result`` (:func:`imclib.experiments.states.interior_optimum`) marks the
    optimum or says there is none."""
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 4))
    sns.lineplot(data=sweep, x="states", y="error", hue="component", hue_order=["quantization", "resolution", "total"],
                 marker="o", errorbar=("ci", 95), ax=ax, legend=legend)
    ax.set(yscale="log", ylim=ERROR_LIMITS, xlim=(1.5, 16.5), xticks=range(2, 17, 2), xlabel="states per cell N",
           ylabel="normalized MVM error (layer 1)", title=title)
    if legend:
        ax.legend(loc="lower left", fontsize=8)
    if result is not None:
        _mark_optimum(ax, result["label"], result["best_N"], result["value"])
    return fig


def states_study(sweeps: dict, results: dict, accuracy_table: pd.DataFrame | None = None,
                 accuracy_result: dict | None = None, credible_max: int | None = None) -> plt.Figure:
    """Small multiples: error components per cell type / scheme (``sweeps``: title ->
    sweep, ``results``: title -> :func:`interior_optimum` dict), then MNIST accuracy per N
    (mean, 95 % CI band over device seeds). Cells beyond ``credible_max`` states are shaded
    (not physically credible)."""
    panels = len(sweeps) + (accuracy_table is not None)
    columns = min(panels, 3)
    rows = -(-panels // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 3.7 * rows), squeeze=False)
    axes = axes.ravel()
    for i, (title, sweep) in enumerate(sweeps.items()):
        states_sweep(sweep, results[title], title, axes[i], legend=i == 0)
        if credible_max is not None and title.startswith("writable"):
            axes[i].axvspan(credible_max + 0.5, 16.5, color="0.88", zorder=0)
            axes[i].text(credible_max + 0.7, ERROR_LIMITS[1] / 1.4, "not credible\nto build", fontsize=7, color="0.35",
                         va="top")
    if accuracy_table is not None:
        ax = axes[len(sweeps)]
        table = accuracy_table.assign(accuracy_pct=accuracy_table.accuracy * 100)
        sns.lineplot(data=table, x="states", y="accuracy_pct", marker="o", errorbar=("ci", 95), color="k", ax=ax)
        low = max(0.0, 5.0 * np.floor(table.groupby("states").accuracy_pct.mean().min() / 5.0 - 0.5))
        ax.set(xlim=(1.5, 16.5), xticks=range(2, 17, 2), ylim=(low, 100), xlabel="states per cell N",
               ylabel="MNIST test accuracy (%)", title="writable stack: accuracy (QAT per N)")
        if accuracy_result is not None:
            _mark_optimum(ax, accuracy_result["label"], accuracy_result["best_N"], accuracy_result["value"] * 100)
        if credible_max is not None:
            ax.axvspan(credible_max + 0.5, 16.5, color="0.88", zorder=0)
    for ax in axes[panels:]:
        ax.set_visible(False)
    fig.suptitle("Quantization vs resolution with circuit-derived sense noise (bands: 95 % CI over device seeds; "
                 "grey: writable stacks that are not credible to build)", y=1.0)
    fig.tight_layout()
    return fig


def optimum_shift(table: pd.DataFrame) -> plt.Figure:
    """Best N against TMR0, v_read and t_int (one panel each): filled markers are interior
    optima, open markers the grid edge where there is none."""
    parameters = list(dict.fromkeys(table.parameter))
    fig, axes = plt.subplots(1, len(parameters), figsize=(3.6 * len(parameters), 3.3), sharey=True, squeeze=False)
    for ax, parameter in zip(axes[0], parameters):
        part = table[table.parameter == parameter]
        for scheme, rows in part.groupby("scheme", sort=False) if "scheme" in part else [("", part)]:
            line, = ax.plot(rows.value, rows.best_N, "-", lw=1, label=scheme or None)
            interior = rows.optimum.notna()
            ax.plot(rows.value[interior], rows.best_N[interior], "o", color=line.get_color())
            ax.plot(rows.value[~interior], rows.best_N[~interior], "o", mfc="none", color=line.get_color())
        ax.set(xscale="log", xlabel=parameter, ylim=(1, 17), yticks=range(2, 17, 2))
        ax.set_xticks(sorted(part.value.unique()), [f"{v:g}" for v in sorted(part.value.unique())])
        ax.minorticks_off()
    axes[0, 0].set_ylabel("best N (open: no interior optimum)")
    if "scheme" in table:
        axes[0, -1].legend(fontsize=8)
    fig.suptitle("Where the optimum number of states lies", y=1.02)
    fig.tight_layout()
    return fig


def cell_physics(cells: pd.DataFrame, budget: float = 1e-3, v_breakdown: float | None = None) -> plt.Figure:
    """Per cell type: worst adjacent-level overlap probability (read margin, dotted: the
    ``budget``) and largest junction voltage while writing (dotted: ``v_breakdown``), against N."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    sns.lineplot(data=cells, x="n_states", y="worst_overlap", hue="kind", marker="o", ax=axes[0])
    axes[0].axhline(budget, color="k", ls=":", lw=1)
    axes[0].set(yscale="log", ylim=(1e-30, 1), xlabel="states per cell N", ylabel="worst adjacent-level overlap",
                title="read margin of one cell at V_read")
    stacks = cells[cells.kind != "uniform"]
    sns.lineplot(data=stacks, x="n_states", y="write_voltage_max_V", hue="kind", marker="o", ax=axes[1], legend=False)
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
    """MVM error against wire resistance per array size (one panel per device) and MNIST
    accuracy against wire resistance per array size (last panel); symlog resistance axis."""
    device_names = list(dict.fromkeys(errors.device))
    fig, axes = plt.subplots(1, len(device_names) + 1, figsize=(4.2 * (len(device_names) + 1), 4))
    palette = dict(zip(sorted(errors["size"].unique()), sns.color_palette("viridis", errors["size"].nunique())))
    for ax, name in zip(axes, device_names):
        sns.lineplot(data=errors[errors.device == name], x="r_wire", y=column, hue="size", palette=palette,
                     marker="o", ax=ax, legend=ax is axes[0])
        ax.set(yscale="log", xlabel="wire resistance per segment (Ω)", ylabel="normalized MVM error", title=name)
    sns.lineplot(data=accuracy_table, x="r_wire", y="accuracy", hue="size", palette=palette, marker="o",
                 ax=axes[-1], legend=False)
    axes[-1].set(xlabel="wire resistance per segment (Ω)", ylabel="MNIST accuracy",
                 title=f"accuracy: {accuracy_table.device.iloc[0]}")
    resistances = sorted(errors.r_wire.unique())
    for ax in axes:
        ax.set_xscale("symlog", linthresh=0.5)
        ax.set_xticks(resistances, [f"{r:g}" for r in resistances], minor=False)
        ax.set_xticks([], minor=True)
        ax.set_xlim(-0.1, 1.15 * resistances[-1])
    axes[0].legend(title="array n x n", fontsize=8)
    fig.suptitle("IR drop: small arrays win once the wires are resistive", y=1.02)
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
