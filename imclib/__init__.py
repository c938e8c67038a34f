"""imclib: neural inference on simulated N-ary memory crossbars.

Layers: :mod:`~imclib.cells` (one cell's levels) -> :mod:`~imclib.array` (one array's
currents) -> :mod:`~imclib.layer` (a layer tiled onto arrays) -> :mod:`~imclib.network`
(an MLP on tiled layers). Configs: :class:`CrossbarConfig` with :class:`CellLevels`,
:class:`MTJ`, :class:`Nonidealities`, :class:`Periphery`. Sweeps in parallel:
:func:`sweep`.
"""

from . import _numba_cache  # noqa: F401 (first: picks a writable numba cache before any kernel is defined)
from .cells import MTJ, CellLevels
from .config import CrossbarConfig
from .layer import ProgrammedLayer, program_layer, simulate_mvm
from .metrics import nrmse
from .nonidealities import Nonidealities
from .periphery import Periphery
from .sweep import sweep

__all__ = [
    "MTJ",
    "CellLevels",
    "CrossbarConfig",
    "Nonidealities",
    "Periphery",
    "ProgrammedLayer",
    "nrmse",
    "program_layer",
    "simulate_mvm",
    "sweep",
]
