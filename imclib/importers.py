"""Networks trained elsewhere, as an :class:`~imclib.mlp.MLP`: scikit-learn MLPs and
PyTorch-style ``Linear`` weights (a ``.safetensors`` file or a dict of arrays); with
``Conv2d`` weights too, as a :class:`~imclib.sequential.Sequential` network.

Both give the float network; deploy it with :func:`imclib.deploy.deploy_network` or score it
with :func:`imclib.network.hardware_accuracy` like any other (a Sequential network too).
Neither imports torch: weight files are read with the numpy API of the ``safetensors`` package.

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
from .sequential import Sequential

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


def load_weights(source, activations=None, *, order=None, architecture=None, input_shape=None):
    """An :class:`~imclib.mlp.MLP` from PyTorch-style ``Linear`` weights, or, given an
    ``architecture``, a :class:`~imclib.sequential.Sequential` network (e.g. a CNN) from
    ``Linear`` and ``Conv2d`` weights.

    Parameters
    ----------
    source : str, os.PathLike or mapping
        A ``.safetensors`` file (read with ``safetensors.numpy.load_file``) or a dict from
        parameter name to array (e.g. ``{k: v.numpy() for k, v in model.state_dict().items()}``).
        Every name is ``<module>.weight`` or ``<module>.bias``, shape (out,); a module
        without a bias gets zeros. A ``Linear`` weight (out, in) is transposed to imclib's
        (in, out); a ``Conv2d`` weight (C_out, C_in, k, k) becomes the (C_in k k, C_out)
        matrix of its im2col rows, ``K.reshape(C_out, -1).T`` (:mod:`imclib.conv`).
    activations : sequence of str
        MLP only: one name of :data:`imclib.mlp.ACTIVATIONS` per layer, e.g.
        ``("relu", "identity")``: a weight file holds no activations.
    order : sequence of str, optional
        The module names in forward order, when the names alone do not give it (module
        docstring); every module of ``source`` must be listed once.
    architecture : sequence of tuple, optional
        The layers of a :class:`~imclib.sequential.Sequential` network (its module
        docstring: ``("conv2d", C_out, k, stride, padding)``, ``("maxpool2d", 2)``,
        ``("relu",)``, ``("flatten",)``, ``("dense", n_out)``, ...): the weight modules, in
        order, fill its conv2d and dense layers. Pooling, strides, padding and activations
        are not in a weight file, so they are given here (not ``activations``).
    input_shape : tuple of int, optional
        With ``architecture``: the shape of one input, e.g. ``(1, 28, 28)``.

    Raises
    ------
    ValueError
        Naming the offending parameter: a name that is not ``<module>.weight`` /
        ``<module>.bias`` (e.g. a BatchNorm's running statistics), a weight that is not
        floating point or of the wrong shape (not 2-D for an MLP; not the shape the
        architecture expects), a bias of the wrong shape, an ambiguous or incomplete order,
        layers whose shapes do not chain, or activations that do not fit.
    """
    modules = _ordered_modules(source, order)
    if architecture is not None:
        if activations is not None or input_shape is None:
            raise ValueError("with architecture give input_shape and no activations (the architecture names them), "
                             f"got activations={activations!r}, input_shape={input_shape!r}")
        return _load_sequential(modules, architecture, input_shape)
    if activations is None:
        raise ValueError("activations must name one activation per layer (or give architecture and input_shape)")
    weights, biases = [], []
    for index, (module, weight, bias) in enumerate(modules):
        if weight.ndim != 2:
            raise ValueError(f"parameter {module + '.weight'!r} must be a 2-D Linear weight (out, in), "
                             f"got shape {weight.shape} (load Conv2d weights with architecture=...)")
        if index and weight.shape[1] != weights[-1].shape[1]:
            raise ValueError(
                f"{module + '.weight'!r} has {weight.shape[1]} inputs but the module before it, "
                f"{modules[index - 1][0]!r}, has {weights[-1].shape[1]} outputs: the layer order "
                f"{[name for name, _, _ in modules]} does not chain"
            )
        weights.append(weight.T.astype(np.float64))
        biases.append(_bias(module, bias, weight.shape[0]))
    return MLP(weights, biases, activations)


def _load_sequential(modules: list[tuple], architecture, input_shape) -> Sequential:
    """The :class:`~imclib.sequential.Sequential` network of ``architecture`` whose weight
    layers take the ``modules`` (name, weight, bias) in order, PyTorch shapes checked."""
    template = Sequential.build(architecture, input_shape, 0)
    layers = template.weight_layers
    if len(modules) != len(layers):
        raise ValueError(f"the architecture has {len(layers)} conv2d and dense layers, the weights "
                         f"{len(modules)} modules ({[name for name, _, _ in modules]})")
    weights, biases = [], []
    for (module, weight, bias), layer in zip(modules, layers):
        n_out = layer.weight.shape[1]
        expected = (n_out, layer.in_channels, layer.kernel, layer.kernel) if layer.kind == "conv2d" else \
            (n_out, layer.weight.shape[0])
        if weight.shape != expected:
            raise ValueError(f"parameter {module + '.weight'!r} must have shape {expected} for the layer "
                             f"{layer.spec} of the architecture, got {weight.shape}")
        weights.append(weight.reshape(n_out, -1).T.astype(np.float64))
        biases.append(_bias(module, bias, n_out))
    return template.with_parameters(weights, biases)


def _bias(module: str, bias: np.ndarray | None, n_out: int) -> np.ndarray:
    """The bias of ``module`` as float64, zeros when it has none; its shape must be (n_out,)."""
    if bias is None:
        return np.zeros(n_out)
    if bias.shape != (n_out,):
        raise ValueError(f"parameter {module + '.bias'!r} must have shape ({n_out},), got {bias.shape}")
    return bias.astype(np.float64)


def _ordered_modules(source, order) -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    """``(module, weight, bias or None)`` of every module of ``source`` in forward order
    (:func:`_module_order`), after checking the names and the floating-point dtype."""
    arrays = _read_arrays(source)
    modules: dict[str, dict[str, np.ndarray]] = {}
    for name, value in arrays.items():
        module, dot, kind = name.rpartition(".")
        if not dot or not module or kind not in ("weight", "bias"):
            raise ValueError(f"parameter {name!r} is not <module>.weight or <module>.bias: "
                             "only Linear and Conv2d layers load")
        value = np.asarray(value)
        if not np.issubdtype(value.dtype, np.floating):
            raise ValueError(f"parameter {name!r} must hold floating-point values, got dtype {value.dtype}")
        modules.setdefault(module, {})[kind] = value
    if not modules:
        raise ValueError("source holds no parameters")
    names = _module_order(list(modules), order)
    for module in names:
        if "weight" not in modules[module]:
            raise ValueError(f"module {module!r} has a bias but no weight")
    return [(module, modules[module]["weight"], modules[module].get("bias")) for module in names]


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
