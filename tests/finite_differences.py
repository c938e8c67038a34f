"""Numerical gradients for the gradient checks of the numpy networks."""

from __future__ import annotations

from typing import Callable

import numpy as np


def central_differences(loss: Callable[[], float], param: np.ndarray, step: float = 1e-6) -> np.ndarray:
    """``d loss / d param`` by central differences, ``(L(p + h) - L(p - h)) / 2h`` per entry,
    perturbing ``param`` in place (each entry is restored) and calling ``loss()`` twice per
    entry: exact to O(h^2) plus rounding of order eps / h."""
    numeric = np.zeros_like(param)
    for index in np.ndindex(param.shape):
        saved = param[index]
        param[index] = saved + step
        up = loss()
        param[index] = saved - step
        down = loss()
        param[index] = saved
        numeric[index] = (up - down) / (2 * step)
    return numeric
