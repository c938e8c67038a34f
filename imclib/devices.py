"""Published multi-level devices as :class:`~imclib.cells.MeasuredCell` presets.

Each preset names its paper, the figure each number comes from and the range where the
numbers hold; nothing here is fitted by us. The default device of the package stays the
binary-weighted MTJ stack (:class:`imclib.cells.CellLevels`).
"""

from __future__ import annotations

import numpy as np

from . import _validate
from .cells import MeasuredCell

MILO_G_MIN_S = 50e-6
"""Lowest conductance of the RRAM_Milo range (siemens): 225 uS / 4.5, CrossSim's suggested
on/off ratio for this device."""
MILO_G_MAX_S = 225e-6
"""Highest conductance of the RRAM_Milo range (siemens), CrossSim ``RRAMMilo.Gmax``."""
MILO_SIGMA_FIT_US = (-0.009107, 4.782321)
"""``(A, B)`` of the programming error ``sigma_G = A G + B`` (G and sigma_G in uS): CrossSim's
linear fit to Fig. 4 of Milo et al. (IGVVA-100 programming algorithm)."""
MILO_MAX_STATES = 64
"""Largest N of :func:`rram_milo`: 64 levels in 175 uS are 2.8 uS apart, about the
programming error itself; more levels only overlap."""


def rram_milo(n_states: int = 4) -> MeasuredCell:
    """Multi-level HfO2 RRAM programmed by incremental gate-voltage verify (IGVVA-100).

    Source: V. Milo et al., "Optimized programming algorithms for multilevel RRAM in
    hardware neural networks", IEEE International Reliability Physics Symposium (IRPS),
    2021, https://ieeexplore.ieee.org/document/9405119; the numbers as Sandia's CrossSim
    encodes them in ``simulator/devices/custom/RRAM_Milo.py`` (class ``RRAMMilo``):

    * conductance range 50-225 uS (``Gmax = 225`` uS, suggested on/off ratio 4.5);
    * programming error from Fig. 4 (IGVVA-100), a linear fit
      ``sigma_G = -0.009107 G + 4.782321`` (uS): 4.33 uS (8.7 %) at 50 uS, 2.73 uS (1.2 %)
      at 225 uS.

    The N levels are placed equally spaced in conductance over 50-225 uS (the paper's
    number and placement of levels are not in that source; N is the caller's choice), and
    level q gets the relative spread ``s_q = sigma_G(G_q) / G_q``. CrossSim draws the error
    as additive Gaussian ``G + sigma_G z``; the :class:`~imclib.cells.MeasuredCell` draws the
    mean-normalised lognormal ``G exp(s z - s^2 / 2)``, equal to first order (``s <= 0.087``).
    Valid for conductances in 50-225 uS only (the fit's range). No read-voltage dependence
    is given (the source has none): the levels are bias independent; drift and read noise
    are not part of this preset.

    Parameters
    ----------
    n_states : int
        Number of levels, in [2, :data:`MILO_MAX_STATES`].
    """
    _validate.integer_in_range("n_states", n_states, 2, MILO_MAX_STATES)
    levels = np.linspace(MILO_G_MIN_S, MILO_G_MAX_S, n_states)
    slope, intercept = MILO_SIGMA_FIT_US
    sigma = np.maximum(slope * levels * 1e6 + intercept, 0.0) * 1e-6
    return MeasuredCell(levels=levels, spread=sigma / levels,
                        source="Milo et al., IRPS 2021, Fig. 4 (IGVVA-100), via CrossSim RRAM_Milo")


PRESETS = {"rram_milo": rram_milo}
"""Device presets by name: ``PRESETS[name](n_states)`` is a :class:`~imclib.cells.MeasuredCell`."""
