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


def deployment(study: pd.DataFrame, confidence: pd.DataFrame, paper: dict | None = None) -> plt.Figure:
    """Accuracy per network: one dot per (training seed, device seed), the mean with its
    95 % confidence interval (``confidence``: ``network``, ``mean``, ``ci_low``,
    ``ci_high``), and the paper's values as dashed lines."""
    fig, ax = plt.subplots(figsize=(7, 4))
    order = list(confidence.network)
    sns.stripplot(data=study, x="network", y="accuracy", hue="train_seed", order=order, palette="Greys",
                  size=4, alpha=0.8, jitter=0.2, ax=ax, legend=False)
    positions = np.arange(len(order))
    ax.errorbar(positions + 0.3, confidence["mean"], yerr=[confidence["mean"] - confidence.ci_low,
                                                           confidence.ci_high - confidence["mean"]],
                fmt="o", color="C3", capsize=4, label="mean, 95 % CI of the mean")
    for name, value in (paper or {}).items():
        ax.axhline(value, ls="--", color=PAPER_COLOR, lw=1)
        ax.text(ax.get_xlim()[1], value, f" paper {name}: {value:.2%}", va="center", fontsize=8)
    ax.set(ylabel="MNIST test accuracy (10,000 images)", xlabel="",
           title="Deployment on 4x4 arrays of 4-state MTJs, 8-bit converters")
    ax.legend(loc="lower right", fontsize=8)
    return fig


def adc_bits(sweep: pd.DataFrame) -> plt.Figure:
    """Accuracy against ADC resolution for the naive and the calibrated ADC range."""
    fig, ax = plt.subplots(figsize=(6, 3.8))
    sns.lineplot(data=sweep, x="adc_bits", y="accuracy", hue="adc_range", marker="o", errorbar=None, ax=ax)
    ax.set(xlabel="ADC resolution (bits)", ylabel="MNIST test accuracy", ylim=(0, 1),
           title="Expert PTQ network vs ADC bits")
    ax.legend(title="ADC range", fontsize=8)
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
