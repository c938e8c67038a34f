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


ERROR_FLOOR = 1e-4
"""Smallest error drawn on the log axes of :func:`error_decomposition`; smaller values are
drawn at the floor with a left-pointing marker."""


def error_decomposition(summary: pd.DataFrame) -> plt.Figure:
    """Dot plot of the MVM error per source, one panel per decode scheme, on one shared log
    axis: the mean over device seeds per layer with its 95 % confidence interval (horizontal
    bar, Student t; deterministic sources have none), default-device sources above the
    miscalibrations, quantization as a dashed line per layer. ``summary`` is
    :func:`imclib.experiments.errors.summarize_errors`."""
    schemes = list(dict.fromkeys(summary.scheme))
    layers = list(dict.fromkeys(summary.layer))
    colors = dict(zip(layers, sns.color_palette("colorblind", len(layers))))
    rows, labels, y = {}, [], 0
    for group, title in (("default device", "default device"), ("miscalibration", "miscalibrations")):
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
    (a) against the per-cell magnitude, per layer (band: 95 % confidence interval of the
    mean ratio over device seeds); (b) against the common-mode fraction ``||b Σx|| / ||x W||``
    with the weights fixed and the inputs shifted (bars: 95 % CI). Above the dotted line at
    1 a systematic error costs more. ``ratios`` is
    :func:`imclib.experiments.errors.c5_ratios`, ``sweep``
    :func:`imclib.experiments.errors.common_mode_sweep`."""
    schemes = list(dict.fromkeys(ratios.scheme))
    colors = dict(zip(schemes, sns.color_palette("colorblind", len(schemes))))
    layers = list(dict.fromkeys(ratios.layer))
    styles = dict(zip(layers, ["-o", "--s", ":^"]))
    panels = 2 if sweep is not None else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.2 * panels + 2.4, 4.2), sharey=True, squeeze=False)
    ax = axes[0, 0]
    for scheme in schemes:
        for layer in layers:
            part = ratios[(ratios.scheme == scheme) & (ratios.layer == layer)].sort_values("magnitude")
            ax.fill_between(part.magnitude, part.ci95_low, part.ci95_high, color=colors[scheme], alpha=0.25, lw=0)
            ax.plot(part.magnitude, part.ratio, styles[layer], color=colors[scheme], ms=4)
    ax.set(xscale="log", yscale="log", xlabel="per-cell conductance error δ (rms, relative)",
           ylabel="e_systematic / e_random", title="(a) against the per-cell magnitude")
    if sweep is not None:
        ax_cm = axes[0, 1]
        for scheme in schemes:
            part = sweep[sweep.scheme == scheme].sort_values("common_mode_fraction")
            ax_cm.errorbar(part.common_mode_fraction, part.ratio,
                           yerr=[part.ratio - part.ci95_low, part.ci95_high - part.ratio], fmt="-o",
                           color=colors[scheme], ms=4, capsize=2)
        ax_cm.set(xlabel="common-mode fraction ||b Σx|| / ||x W||", title=f"(b) inputs shifted, δ = {sweep.magnitude.iloc[0]:.1%}")
    for a in axes[0]:
        a.axhline(1, color="k", ls=":", lw=1)
    handles = [plt.Line2D([], [], color=colors[s], lw=3, label=s) for s in schemes]
    handles += [plt.Line2D([], [], color="0.3", ls=styles[layer][:-1], marker=styles[layer][-1], label=layer)
                for layer in layers]
    fig.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 0.9), frameon=False, fontsize=8)
    fig.suptitle("Equal per-cell rms error: a coherent error vs a random one", y=1.0)
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
