"""Study 00: the framework in pictures (cell levels, one array, the retrieval, tiling)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..cells import MTJ, CellLevels
from ..config import CrossbarConfig
from ..layer import program_layer


def cell_levels(n_states: int = 4, tmr0: float = 1.0, v_read: float = 0.2, r_p: float = 6e3, v_half: float = 0.5) -> pd.DataFrame:
    """Levels of one cell for each construction that offers ``n_states``.

    Columns: ``construction``, ``junctions``, ``level``, ``resistance_ohm`` and
    ``conductance_uS`` at 0 V, ``conductance_at_vread_uS`` at ``v_read`` volts.
    """
    mtj = MTJ(r_p, tmr0, v_half)
    kinds = ["series", "uniform"] + (["binary"] if n_states & (n_states - 1) == 0 else [])
    frames = []
    for kind in kinds:
        cell = CellLevels(n_states, kind, mtj)
        g0, gv = cell.conductances(0.0), cell.conductances(v_read)
        frames.append(pd.DataFrame({
            "construction": kind,
            "junctions": cell.n_junctions,
            "level": np.arange(n_states),
            "resistance_ohm": 1 / g0,
            "conductance_uS": g0 * 1e6,
            "conductance_at_vread_uS": gv * 1e6,
        }))
    return pd.concat(frames, ignore_index=True)


def array_example(config: CrossbarConfig | None = None, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One 4 x 4 array: random weights and inputs, programmed and read once. The column
    currents are the raw Kirchhoff sums ``I_j = sum_i V_i G_ij``: this example subtracts no
    common-mode current before its (ideal) ADC (``adc_calibration="worst_case"``).

    Returns ``cells`` (row, column, weight, state, conductance_uS) and ``columns``
    (column, current_uA, decoded, exact ``x @ W``).
    """
    config = (config or CrossbarConfig.quantization_only()).with_(adc_calibration="worst_case")
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(config.rows, config.cols))
    x = rng.uniform(0, 1, size=(1, config.rows))
    layer = program_layer(weights, config, rng)
    currents, applied, volts_per_unit = layer.column_currents(x, rng)
    decoded = layer.decode(currents, applied, volts_per_unit)
    rows, cols = np.indices(weights.shape)
    cells = pd.DataFrame({
        "row": rows.ravel(), "column": cols.ravel(), "weight": weights.ravel(),
        "input": np.repeat(x[0], config.cols),
        "row_voltage_V": np.repeat(x[0] * volts_per_unit, config.cols),
        "state": (layer.state[: config.rows, : config.cols].ravel() if layer.state is not None else -1),
        "conductance_uS": layer.conductance[: config.rows, : config.cols].ravel() * 1e6,
    })
    columns = pd.DataFrame({
        "column": np.arange(config.cols),
        "current_uA": currents[0, layer.layout.weight] * 1e6,
        "decoded": decoded[0],
        "exact": (x @ weights)[0],
    })
    return cells, columns


def tiling_example(n_in: int = 10, n_out: int = 6, rows: int = 4, cols: int = 4, seed: int = 0) -> tuple[pd.DataFrame, float]:
    """Which tile holds which part of an ``n_in x n_out`` matrix, and the ideal-limit error.

    Returns ``tiles`` (row_block, column_tile, first_row, first_column, used_rows,
    used_columns) and the largest ``|y - x @ W|`` of the ideal tiled MVM.
    """
    config = CrossbarConfig.ideal(rows, cols)
    rng = np.random.default_rng(seed)
    weights, x = rng.normal(size=(n_in, n_out)), rng.normal(size=(3, n_in))
    layer = program_layer(weights, config, input_range=np.abs(x).max())  # DAC full scale: no input clips
    records = [
        {
            "row_block": r, "column_tile": c, "first_row": r * rows, "first_column": c * cols,
            "used_rows": min(rows, n_in - r * rows), "used_columns": min(cols, n_out - c * cols),
        }
        for r in range(layer.row_blocks) for c in range(-(-n_out // cols))
    ]
    return pd.DataFrame(records), float(np.max(np.abs(layer.mvm(x) - x @ weights)))
