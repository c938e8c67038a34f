"""Error metrics for simulated MVMs."""

from __future__ import annotations

import numpy as np


def nrmse(y_hardware, y_reference) -> float:
    """Normalized RMSE ``||y_hw - y_ref||_2 / ||y_ref||_2`` over the whole batch."""
    y_hardware = np.asarray(y_hardware, dtype=np.float64)
    y_reference = np.asarray(y_reference, dtype=np.float64)
    if y_hardware.shape != y_reference.shape:
        raise ValueError(f"y_hardware shape {y_hardware.shape} != y_reference shape {y_reference.shape}")
    norm = np.linalg.norm(y_reference)
    if norm == 0:
        raise ValueError("y_reference must not be all zero (the error is normalized by its norm)")
    return float(np.linalg.norm(y_hardware - y_reference) / norm)
