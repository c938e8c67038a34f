"""Device nonidealities: systematic level errors, static random variation, read noise.

Each is a switch with a magnitude. The decode always uses the nominal model, so every
nonideality shows up as MVM error.

Systematic (coherent across the array)
    ``rp_error``: every junction's R_P is ``R_P (1 + rp_error)`` (a level gain);
    ``tmr_error``: TMR0 is ``TMR0 (1 + tmr_error)`` (stretches the level spacing);
    ``bias_dependence``: TMR falls with the junction voltage (see :mod:`imclib.cells`);
    ``decode_as_uniform``: the mapping assumes levels uniform in G between the stack's
    extremes while the device has the stack's (uniform-in-R) levels.
Random (cell specific)
    ``programming_sigma``: static lognormal variation, mean-normalised so that
    ``E[G] = G_level``: ``G = G_level exp(sigma z - sigma^2 / 2)``, ``z ~ N(0, 1)`` drawn
    once when the array is programmed (``E[exp(sigma z)] = exp(sigma^2 / 2)``);
    ``read_sigma``: Gaussian relative noise redrawn at every read,
    ``G (1 + read_sigma z)``;
    ``stuck_fraction``: cells stuck at the lowest or highest level (equal odds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _validate, defaults

SIGMA_MAX = 3.0
"""Largest accepted programming or read sigma: ``exp(3 z)`` stays finite for any draw."""


@dataclass(frozen=True)
class Nonidealities:
    """Switches and magnitudes of the device nonidealities (all dimensionless)."""

    rp_error: float = 0.0
    tmr_error: float = 0.0
    bias_dependence: bool = False
    decode_as_uniform: bool = False
    programming_sigma: float = 0.0
    read_sigma: float = 0.0
    stuck_fraction: float = 0.0

    def __post_init__(self):
        _validate.in_range("rp_error", self.rp_error, -0.5, 1.0)
        _validate.in_range("tmr_error", self.tmr_error, -0.9, 1.0)
        _validate.boolean("bias_dependence", self.bias_dependence)
        _validate.boolean("decode_as_uniform", self.decode_as_uniform)
        _validate.in_range("programming_sigma", self.programming_sigma, 0.0, SIGMA_MAX)
        _validate.in_range("read_sigma", self.read_sigma, 0.0, SIGMA_MAX)
        _validate.in_range("stuck_fraction", self.stuck_fraction, 0.0, 1.0)

    @classmethod
    def typical(cls) -> "Nonidealities":
        """Literature-plausible defaults (see :mod:`imclib.defaults`): bias-dependent TMR,
        static variation, read noise."""
        return cls(
            bias_dependence=True,
            programming_sigma=defaults.PROGRAMMING_SIGMA,
            read_sigma=defaults.READ_SIGMA,
        )

    @property
    def systematic(self) -> bool:
        """Whether any systematic source is on."""
        return bool(self.rp_error or self.tmr_error or self.bias_dependence or self.decode_as_uniform)

    @property
    def any(self) -> bool:
        """Whether any source is on."""
        return self.systematic or bool(self.programming_sigma or self.read_sigma or self.stuck_fraction)


def draw_variation(shape: tuple[int, ...], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Static multiplicative variation factors ``exp(sigma z - sigma^2 / 2)``, ``z ~ N(0, 1)``.

    Mean-normalised: ``E[exp(sigma z)] = exp(sigma^2 / 2)``, so the factors have mean 1 and
    a programmed cell's conductance has the target as its expectation (no coherent offset).
    Returns ones (and draws nothing) when ``sigma == 0``.
    """
    if sigma == 0:
        return np.ones(shape)
    return np.exp(sigma * rng.standard_normal(shape) - 0.5 * sigma**2)


def draw_stuck(shape: tuple[int, ...], fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Stuck-cell map: 0 free, -1 stuck at the lowest level, +1 stuck at the highest."""
    if fraction == 0:
        return np.zeros(shape, dtype=np.int8)
    stuck = rng.random(shape) < fraction
    high = rng.random(shape) < 0.5
    return (stuck * np.where(high, 1, -1)).astype(np.int8)
