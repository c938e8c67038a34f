"""Argument checks shared by the configs and the simulation entry points.

Every check raises ``ValueError`` naming the parameter and the allowed range.
"""

from __future__ import annotations

import math

import numpy as np


def positive(name: str, value: float, *, allow_inf: bool = False) -> None:
    """Require ``0 < value`` (finite unless ``allow_inf``)."""
    bad = not isinstance(value, (int, float, np.integer, np.floating)) or math.isnan(value)
    if bad or value <= 0 or (math.isinf(value) and not allow_inf):
        upper = "inf]" if allow_inf else "inf)"
        raise ValueError(f"{name} must be in (0, {upper}, got {value!r}")


def non_negative(name: str, value: float) -> None:
    """Require ``0 <= value < inf``."""
    bad = not isinstance(value, (int, float, np.integer, np.floating)) or math.isnan(value)
    if bad or value < 0 or math.isinf(value):
        raise ValueError(f"{name} must be in [0, inf), got {value!r}")


def in_range(name: str, value: float, low: float, high: float) -> None:
    """Require ``low <= value <= high``."""
    bad = not isinstance(value, (int, float, np.integer, np.floating)) or math.isnan(value)
    if bad or not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value!r}")


def integer_at_least(name: str, value: int, low: int) -> None:
    """Require an integer ``value >= low``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def optional_bits(name: str, value: int | None) -> None:
    """Require ``None`` (converter off) or an integer number of bits in [1, 32]."""
    if value is not None:
        integer_at_least(name, value, 1)
        if value > 32:
            raise ValueError(f"{name} must be None or an integer in [1, 32], got {value!r}")


def choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    """Require ``value`` to be one of ``allowed``."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def finite_array(name: str, value, ndim: int) -> np.ndarray:
    """Return ``value`` as a float64 array of ``ndim`` dimensions with only finite entries."""
    array = np.asarray(value, dtype=np.float64)
    if array.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} must contain only finite values (no NaN or inf)")
    return array


def generator(rng: np.random.Generator | int | None) -> np.random.Generator:
    """``rng`` itself if it is a ``numpy.random.Generator``, else one seeded with it."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)
