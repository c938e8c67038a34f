"""imclib: neural inference on simulated N-ary memory crossbars.

Layers: :mod:`~imclib.cells` (one cell's levels) -> :mod:`~imclib.array` (one array's
currents) -> :mod:`~imclib.layer` (a layer tiled onto arrays) -> :mod:`~imclib.network`
(an MLP on tiled layers). Configs: :class:`CrossbarConfig` with :class:`CellLevels` (or a
measured device, :class:`MeasuredCell`; published presets in :mod:`imclib.devices`),
:class:`MTJ`, :class:`Nonidealities`, :class:`Periphery`. Sweeps in parallel:
:func:`sweep`.

Your own network: :class:`MLP` (weights shaped (n_in, n_out), per-layer activations), or
:func:`from_sklearn` / :func:`load_weights` (PyTorch-style weights); then
:func:`deploy_network`, :func:`hardware_logits`, :func:`hardware_accuracy`.
"""

from . import _numba_cache  # noqa: F401 (first: picks a writable numba cache before any kernel is defined)
from .cells import MTJ, CellLevels, MeasuredCell
from .config import CrossbarConfig
from .deploy import deploy_network
from .importers import from_sklearn, load_weights
from .layer import ProgrammedLayer, program_layer, simulate_mvm
from .metrics import nrmse
from .mlp import MLP
from .network import hardware_accuracy, hardware_logits
from .nonidealities import Nonidealities
from .periphery import Periphery
from .sweep import sweep

__all__ = [
    "MTJ",
    "CellLevels",
    "CrossbarConfig",
    "MLP",
    "MeasuredCell",
    "Nonidealities",
    "Periphery",
    "ProgrammedLayer",
    "deploy_network",
    "from_sklearn",
    "hardware_accuracy",
    "hardware_logits",
    "load_weights",
    "nrmse",
    "program_layer",
    "simulate_mvm",
    "sweep",
]
