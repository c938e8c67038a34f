"""Networks trained elsewhere, as an :class:`~imclib.mlp.MLP`: scikit-learn MLPs and
PyTorch-style ``Linear`` weights (a ``.safetensors`` file or a dict of arrays).

Both give the float network; deploy it with :func:`imclib.deploy.deploy_network` or score it
with :func:`imclib.network.hardware_accuracy` like any other. Neither imports torch: weight
files are read with the numpy API of the ``safetensors`` package.

PyTorch-style layer order
    A state dict names each parameter ``<module>.weight`` / ``<module>.bias``, e.g. ``0.weight``
    (``nn.Sequential``), ``fc1.weight`` or ``layers.0.weight``. A ``.safetensors`` file does
    not keep the order of the modules (it stores tensors by name), so the order is read from
    the names: every module name must have the same text with one or more integers in it
    (``#``, ``fc#``, ``layers.#``, ``blocks.#.linear``), and the modules run in ascending
    order of those integers (compared as numbers, so ``fc10`` follows ``fc9``). Names that
    do not fit one such pattern (``fc``, ``out``; ``encoder.0`` with ``head``) are ambiguous
    and refused, unless the caller gives the module order (``order=``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from .mlp import ACTIVATIONS, MLP

__all__ = ["from_sklearn", "load_weights"]

_SKLEARN_OUTPUTS = ("softmax", "identity", "logistic")


def from_sklearn(estimator) -> MLP:
    """The :class:`~imclib.mlp.MLP` of a fitted scikit-learn ``MLPClassifier`` or ``MLPRegressor``.

    Layer ``i`` takes ``coefs_[i]`` (already shaped (n_in, n_out)) and ``intercepts_[i]``; the
    hidden layers get the estimator's ``activation`` (relu, tanh, logistic or identity, the
    same functions as :data:`imclib.mlp.ACTIVATIONS`) and the last layer the identity, so the
    MLP's output are the logits of the estimator's output function:

    * ``softmax`` (multi-class classifier): the logits themselves; class ``k`` of
      :meth:`MLP.predict` is ``estimator.classes_[k]``;
    * ``logistic`` on one output (binary classifier): a zero logit is prepended,
      ``softmax([0, z]) = [1 - s(z), s(z)]`` with ``s`` the logistic, so the two-class
      probabilities are the estimator's exactly (class 1 is ``classes_[1]``);
    * ``identity`` (regressor): the regression outputs.

    Raises
    ------
    ValueError
        If ``estimator`` is not an ``MLPClassifier`` / ``MLPRegressor``, is not fitted, has
        an activation outside (relu, tanh, logistic, identity), or is a multi-label
        classifier (independent logistic outputs, which a softmax cannot represent).
    """
    from sklearn.neural_network import MLPClassifier, MLPRegressor

    if not isinstance(estimator, (MLPClassifier, MLPRegressor)):
        raise ValueError(
            "estimator must be a scikit-learn MLPClassifier or MLPRegressor, "
            f"got {type(estimator).__module__}.{type(estimator).__name__}"
        )
    if not hasattr(estimator, "coefs_"):
        raise ValueError(f"estimator must be fitted: this {type(estimator).__name__} has no coefs_ (call fit first)")
    if estimator.activation not in ACTIVATIONS:
        raise ValueError(
            f"estimator.activation must be one of ({', '.join(ACTIVATIONS)}), got {estimator.activation!r}: "
            "imclib runs no other activation"
        )
    output = estimator.out_activation_
    if output not in _SKLEARN_OUTPUTS:
        raise ValueError(f"estimator.out_activation_ must be one of {_SKLEARN_OUTPUTS}, got {output!r}")
    weights = [np.array(w, dtype=np.float64) for w in estimator.coefs_]
    biases = [np.array(b, dtype=np.float64) for b in estimator.intercepts_]
    if output == "logistic":
        if weights[-1].shape[1] != 1:
            raise ValueError(
                f"a multi-label MLPClassifier (out_activation_='logistic' on {weights[-1].shape[1]} outputs) "
                "is not supported: its outputs are independent logistics, and an MLP's output is one softmax"
            )
        weights[-1] = np.hstack([np.zeros_like(weights[-1]), weights[-1]])
        biases[-1] = np.concatenate([[0.0], biases[-1]])
    return MLP(weights, biases, (estimator.activation,) * (len(weights) - 1) + ("identity",))


def load_weights(source, activations, *, order=None) -> MLP:
    """An :class:`~imclib.mlp.MLP` from PyTorch-style ``Linear`` weights.

    Parameters
    ----------
    source : str, os.PathLike or mapping
        A ``.safetensors`` file (read with ``safetensors.numpy.load_file``) or a dict from
        parameter name to array (e.g. ``{k: v.numpy() for k, v in model.state_dict().items()}``).
        Every name is ``<module>.weight``, shape (out, in), or ``<module>.bias``, shape (out,);
        a module without a bias gets zeros. Weights are transposed to imclib's (in, out).
    activations : sequence of str
        One name of :data:`imclib.mlp.ACTIVATIONS` per layer, e.g. ``("relu", "identity")``:
        a weight file holds no activations.
    order : sequence of str, optional
        The module names in forward order, when the names alone do not give it (module
        docstring); every module of ``source`` must be listed once.

    Raises
    ------
    ValueError
        Naming the offending parameter: a name that is not ``<module>.weight`` /
        ``<module>.bias`` (e.g. a BatchNorm's running statistics), a weight that is not 2-D
        or not floating point, a bias of the wrong shape, an ambiguous or incomplete order,
        layers whose shapes do not chain, or activations that do not fit.
    """
    arrays = _read_arrays(source)
    modules: dict[str, dict[str, np.ndarray]] = {}
    for name, value in arrays.items():
        module, dot, kind = name.rpartition(".")
        if not dot or not module or kind not in ("weight", "bias"):
            raise ValueError(f"parameter {name!r} is not <module>.weight or <module>.bias: only Linear layers load")
        value = np.asarray(value)
        if not np.issubdtype(value.dtype, np.floating):
            raise ValueError(f"parameter {name!r} must hold floating-point values, got dtype {value.dtype}")
        modules.setdefault(module, {})[kind] = value
    if not modules:
        raise ValueError("source holds no parameters")
    names = _module_order(list(modules), order)
    weights, biases = [], []
    for index, module in enumerate(names):
        if "weight" not in modules[module]:
            raise ValueError(f"module {module!r} has a bias but no weight")
        weight = modules[module]["weight"]
        if weight.ndim != 2:
            raise ValueError(f"parameter {module + '.weight'!r} must be a 2-D Linear weight (out, in), "
                             f"got shape {weight.shape}")
        if index and weight.shape[1] != weights[-1].shape[1]:
            raise ValueError(
                f"{module + '.weight'!r} has {weight.shape[1]} inputs but the module before it, "
                f"{names[index - 1]!r}, has {weights[-1].shape[1]} outputs: the layer order "
                f"{names} does not chain"
            )
        bias = modules[module].get("bias", np.zeros(weight.shape[0]))
        if bias.shape != (weight.shape[0],):
            raise ValueError(f"parameter {module + '.bias'!r} must have shape ({weight.shape[0]},), got {bias.shape}")
        weights.append(weight.T.astype(np.float64))
        biases.append(bias.astype(np.float64))
    return MLP(weights, biases, activations)


def _read_arrays(source) -> dict:
    """``source`` as a dict of arrays: the mapping itself, or a ``.safetensors`` file's tensors."""
    if isinstance(source, dict):
        return source
    if not isinstance(source, (str, os.PathLike)):
        raise ValueError(f"source must be a .safetensors path or a dict of arrays, got {type(source).__name__}")
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        return load_file(Path(source))
    except (SafetensorError, OSError, TypeError) as error:
        raise ValueError(f"{source} is not a readable .safetensors file: {type(error).__name__}: {error}") from error


def _module_order(modules: list[str], order) -> list[str]:
    """Module names in forward order: ``order`` checked against ``modules``, or ascending by
    the integers in the names when they share one pattern (module docstring)."""
    if order is not None:
        if isinstance(order, (str, bytes)) or sorted(order) != sorted(modules):
            raise ValueError(f"order must list every module once, {sorted(modules)}, got {order!r}")
        return list(order)
    patterns = {re.sub(r"\d+", "#", module) for module in modules}
    if len(modules) > 1 and (len(patterns) > 1 or "#" not in next(iter(patterns))):
        raise ValueError(
            f"the layer order of modules {sorted(modules)} is ambiguous: names must share one pattern with "
            "numbers in it (0, 1, ...; fc1, fc2, ...; layers.0, layers.1, ...); give order=[...] in forward order"
        )
    return sorted(modules, key=lambda module: [int(number) for number in re.findall(r"\d+", module)])
