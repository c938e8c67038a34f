"""Small numpy multilayer perceptron for crossbar-inference experiments.

The network is a stack of fully connected layers ``a_{i+1} = f_i(a_i W_i + b_i)`` with a
per-layer activation ``f_i`` (:data:`ACTIVATIONS`: ReLU, tanh, logistic, identity; by
default ReLU on hidden layers and the identity on the last, whose output are the logits of
a softmax). Weights are stored as float64 arrays
shaped ``(n_in, n_out)``, so a layer's weight matrix maps directly onto a
crossbar whose rows are driven by the layer input and whose columns are read
out as the layer output.

Hardware inference plugs in through the ``matmul`` hook of
:meth:`MLP.forward`: a simulated crossbar computes ``x @ W`` and the bias is
added digitally afterwards.

Training (:func:`train_mlp`) is minibatch AdamW on the softmax cross-entropy
with a cosine learning-rate schedule, optionally with quantization-aware
training (QAT) through a straight-through estimator so the network tolerates
the device's few weight levels. :func:`imclib.cache.cached_train` memoises trained
models on disk and in the repository's shipped store (the store imports this module, never
the reverse).
"""

from __future__ import annotations

import math
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import _validate
from ._blas import one_blas_thread
from ._files import atomic_write

__all__ = [
    "ACTIVATIONS",
    "MLP",
    "TrainConfig",
    "train_mlp",
]

MatmulFn = Callable[[int, np.ndarray, np.ndarray], np.ndarray]
"""``matmul(layer_index, x, W) -> x @ W`` replacement, e.g. a crossbar model."""

QuantizeFn = Callable[[int, np.ndarray], np.ndarray]
"""``quantize(layer_index, W) -> W snapped onto the device's weight levels``."""

ACTIVATIONS = {
    "relu": lambda z: np.maximum(z, 0.0),
    "tanh": np.tanh,
    "logistic": lambda z: 0.5 * (1.0 + np.tanh(0.5 * z)),
    "identity": lambda z: z,
}
"""Activation functions by name: ``relu(z) = max(z, 0)``, ``tanh(z)``,
``logistic(z) = 1 / (1 + e^{-z}) = (1 + tanh(z / 2)) / 2`` (the tanh form cannot overflow)
and ``identity(z) = z``."""

TRAINED_FOR = ("float", "quantized")
"""What a trained network's weights ``W`` were trained to compute (:attr:`MLP.trained_for`):
``"float"``, ``x @ W`` (ordinary training); ``"quantized"``, ``x @ W_q`` with ``W_q`` the
weights a nominal array holds (:func:`imclib.mapping.quantize_weights`: quantization-aware
or hardware-aware training, :func:`imclib.hwa.train_hwa`). The deployment's column
calibration targets the same product (:func:`imclib.deploy.resolve_column_target`)."""

_DERIVATIVES = {
    "relu": lambda a: (a > 0).astype(np.float64),
    "tanh": lambda a: 1.0 - a * a,
    "logistic": lambda a: a * (1.0 - a),
    "identity": np.ones_like,
}
"""``f'(z)`` of each activation written in terms of its output ``a = f(z)`` (what the
backward pass keeps): ``[a > 0]``, ``1 - a^2``, ``a (1 - a)``, ``1``."""


def activation_derivative(name: str, output: np.ndarray) -> np.ndarray:
    """``f'(z)`` of activation ``name`` at the point whose output is ``a = f(z)``
    (:data:`_DERIVATIVES`), the factor backpropagation multiplies the gradient by."""
    return _DERIVATIVES[name](output)


def default_activations(n_layers: int) -> tuple[str, ...]:
    """ReLU on the ``n_layers - 1`` hidden layers, the identity on the output (logits)."""
    return ("relu",) * (n_layers - 1) + ("identity",)


MAX_EPOCHS = 1000
MAX_WIDTH = 65536
"""Bounds of :class:`TrainConfig` (with learning_rate in (0, 1], weight_decay in
[0, 1/learning_rate] so that the decay factor ``1 - eta lambda`` stays >= 0, qat_noise in [0, 1])."""

_ADAM_BETA1 = 0.9
_ADAM_BETA2 = 0.999
_ADAM_EPS = 1e-8


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of :func:`train_mlp`.

    Parameters
    ----------
    hidden : tuple of int
        Widths of the hidden layers; ``()`` gives softmax regression.
    epochs : int
        Number of passes over the training set, in [1, 1000].
    batch_size : int
        Minibatch size, >= 1. The last minibatch of an epoch may be smaller.
    learning_rate : float
        Peak Adam step size :math:`\\eta_0`, in (0, 1].
    weight_decay : float
        Decoupled (AdamW) weight decay :math:`\\lambda`, in
        :math:`[0, 1/\\eta_0]`, applied to the weight matrices only, not to the
        biases.
    seed : int
        Seed of the single ``np.random.default_rng`` used for initialisation,
        shuffling and QAT noise, >= 0.
    qat : bool
        Quantization-aware training: the forward pass uses quantized weights
        (see :func:`train_mlp`).
    qat_noise : float
        Relative standard deviation :math:`\\sigma \\in [0, 1]` of the multiplicative
        Gaussian noise on the quantized weights during QAT forward passes;
        requires ``qat=True`` when non-zero.
    lr_decay : float
        Final learning rate as a fraction of ``learning_rate``, in [0, 1].
        The step size follows a per-step cosine schedule from
        :math:`\\eta_0` down to :math:`f\\,\\eta_0` (:math:`f` = ``lr_decay``):

        .. math::
            \\eta_t = \\eta_0 \\left[f + (1 - f)\\,
            \\tfrac{1}{2}\\left(1 + \\cos\\frac{\\pi t}{T}\\right)\\right],

        with :math:`t` the step index and :math:`T` the total number of
        steps. ``lr_decay=1`` keeps the learning rate constant.

    Raises
    ------
    ValueError
        If a field is out of range; the message names the field.

    Notes
    -----
    The defaults were tuned for the fastest float training of 784-256-10 on
    MNIST that still reaches >= 98 % test accuracy: 98.13-98.23 % over seeds
    0-5, about 4 s on 2 CPU cores.
    """

    hidden: tuple[int, ...] = (256,)
    epochs: int = 5
    batch_size: int = 256
    learning_rate: float = 6e-3
    weight_decay: float = 0.1
    seed: int = 0
    qat: bool = False
    qat_noise: float = 0.0
    lr_decay: float = 0.0

    def __post_init__(self) -> None:
        self._validate_hidden()
        _validate.integer_at_least("epochs", self.epochs, 1)
        if self.epochs > MAX_EPOCHS:
            raise ValueError(f"epochs must be an integer in [1, {MAX_EPOCHS}], got {self.epochs!r}")
        _validate.integer_at_least("batch_size", self.batch_size, 1)
        _validate.in_range("learning_rate", self.learning_rate, 0.0, 1.0)
        if self.learning_rate == 0:
            raise ValueError("learning_rate must be a real number in (0, 1], got 0")
        _validate.in_range("weight_decay", self.weight_decay, 0.0, 1.0 / self.learning_rate)
        _validate.integer_at_least("seed", self.seed, 0)
        _validate.boolean("qat", self.qat)
        _validate.in_range("qat_noise", self.qat_noise, 0.0, 1.0)
        if self.qat_noise and not self.qat:
            raise ValueError(f"qat_noise must be 0 unless qat=True, got {self.qat_noise!r}")
        _validate.in_range("lr_decay", self.lr_decay, 0.0, 1.0)

    def _validate_hidden(self) -> None:
        """Require a sequence of ints >= 1 and store it as a tuple."""
        message = f"hidden must be a tuple of integers in [1, {MAX_WIDTH}], got {self.hidden!r}"
        try:
            widths = tuple(self.hidden)
        except TypeError:
            raise ValueError(message) from None
        for width in widths:
            if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or not 1 <= width <= MAX_WIDTH:
                raise ValueError(message)
        object.__setattr__(self, "hidden", tuple(int(width) for width in widths))


def _check_features(x: np.ndarray, n_in: int, name: str = "x") -> np.ndarray:
    """Return ``x`` as an array after checking shape ``(batch, n_in)`` and finiteness."""
    x = np.asarray(x)
    if x.ndim != 2 or x.shape[1] != n_in:
        raise ValueError(f"{name} must have shape (batch, {n_in}), got {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or not _validate.all_finite(x):
        raise ValueError(f"{name} must contain only finite numbers")
    return x


def _check_labels(y: np.ndarray, n_samples: int, name: str = "y") -> np.ndarray:
    """Return ``y`` as a 1-D non-negative int array of length ``n_samples``."""
    y = np.asarray(y)
    if y.shape != (n_samples,):
        raise ValueError(f"{name} must have shape ({n_samples},), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"{name} must hold integer class labels, got dtype {y.dtype}")
    if n_samples and y.min() < 0:
        raise ValueError(f"{name} must hold labels >= 0, got {y.min()}")
    return y.astype(np.int64, copy=False)


def _layer_inputs_and_logits(
    weights: list[np.ndarray],
    biases: list[np.ndarray],
    x: np.ndarray,
    matmul: MatmulFn | None = None,
    activations: tuple[str, ...] | None = None,
) -> tuple[list[np.ndarray], np.ndarray]:
    """Forward pass returning each layer's input and the output.

    Layer ``i`` computes :math:`a_{i+1} = f_i(a_i W_i + b_i)` with ``f_i`` the activation
    ``activations[i]`` (:data:`ACTIVATIONS`; default :func:`default_activations`: ReLU on
    hidden layers, the identity on the last, whose output are the logits), where
    :math:`a_i W_i` is ``matmul(i, a_i, W_i)`` when a hook is given.
    """
    layer_inputs = []
    activation = x
    activations = default_activations(len(weights)) if activations is None else activations
    for index, (weight, bias) in enumerate(zip(weights, biases)):
        layer_inputs.append(activation)
        if matmul is None:
            product = activation @ weight
        else:
            product = np.asarray(matmul(index, activation, weight))
            expected = (activation.shape[0], weight.shape[1])
            if product.shape != expected:
                raise ValueError(
                    f"matmul for layer {index} must return shape {expected}, "
                    f"got {product.shape}"
                )
        activation = ACTIVATIONS[activations[index]](product + bias)
    return layer_inputs, activation


def _softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax :math:`p_k = e^{z_k} / \\sum_j e^{z_j}` (max-shifted)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


class _LossAndGradients(NamedTuple):
    """Result of :func:`_loss_and_gradients`."""

    loss: float
    weight_grads: list[np.ndarray]
    bias_grads: list[np.ndarray]
    logits: np.ndarray


def softmax_cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean softmax cross-entropy ``L = (1/B) sum_n (log sum_k e^{z_nk} - z_{n y_n})`` and
    its gradient ``dL/dz = (softmax(z) - onehot(y)) / B`` (computed on ``z - max_k z``)."""
    batch = np.arange(len(y))
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(shifted).sum(axis=1))
    loss = float(np.mean(log_norm - shifted[batch, y]))
    delta = np.exp(shifted - log_norm[:, None])
    delta[batch, y] -= 1.0
    delta /= len(y)
    return loss, delta


def _loss_and_gradients(
    weights: list[np.ndarray],
    biases: list[np.ndarray],
    x: np.ndarray,
    y: np.ndarray,
    activations: tuple[str, ...] | None = None,
) -> _LossAndGradients:
    """Mean softmax cross-entropy and its gradients by backpropagation.

    .. math::
        L = \\frac{1}{B}\\sum_{n=1}^{B}\\left(\\log\\sum_k e^{z_{nk}}
            - z_{n y_n}\\right), \\qquad
        \\frac{\\partial L}{\\partial z} = \\frac{1}{B}\\,(p - \\mathrm{onehot}(y)),

    with :math:`z` the network output; then for layer :math:`i` with input :math:`a_i`,
    output :math:`a_{i+1} = f_i(a_i W_i + b_i)` and output gradient :math:`g_i`:
    :math:`\\delta_i = g_i \\odot f_i'` (:func:`activation_derivative`),
    :math:`\\partial L/\\partial W_i = a_i^\\top\\delta_i`,
    :math:`\\partial L/\\partial b_i = \\sum_n \\delta_{i,n}` and
    :math:`g_{i-1} = \\delta_i W_i^\\top`. The gradient with respect to the network input
    is not computed.

    Parameters
    ----------
    weights, biases : list of ndarray
        Parameters used in the forward pass, shapes ``(n_in, n_out)`` and
        ``(n_out,)``.
    x : ndarray, shape (batch, n_in)
        Inputs.
    y : ndarray of int, shape (batch,)
        Class labels.
    activations : tuple of str, optional
        One name of :data:`ACTIVATIONS` per layer (default :func:`default_activations`).

    Returns
    -------
    _LossAndGradients
        ``loss`` (float), ``weight_grads`` and ``bias_grads`` (same shapes as
        the parameters) and the forward ``logits``.
    """
    activations = default_activations(len(weights)) if activations is None else activations
    layer_inputs, logits = _layer_inputs_and_logits(weights, biases, x, activations=activations)
    outputs = layer_inputs[1:] + [logits]
    loss, delta = softmax_cross_entropy(logits, y)
    weight_grads, bias_grads = [], []
    for index in range(len(weights) - 1, -1, -1):
        if activations[index] != "identity":
            delta = delta * activation_derivative(activations[index], outputs[index])
        weight_grads.append(layer_inputs[index].T @ delta)
        bias_grads.append(delta.sum(axis=0))
        if index > 0:
            delta = delta @ weights[index].T
    return _LossAndGradients(loss, weight_grads[::-1], bias_grads[::-1], logits)


@dataclass(eq=False)
class MLP:
    """Fully connected network ``a_{i+1} = f_i(a_i W_i + b_i)``; the last layer's output are
    the logits of a softmax (:meth:`predict_proba`).

    Parameters
    ----------
    weights : list of ndarray
        Layer weights, each float64 shaped ``(n_in, n_out)``; a layer computes
        ``x @ W + b``. Consecutive shapes must chain.
    biases : list of ndarray
        Layer biases, each float64 shaped ``(n_out,)``.
    activations : sequence of str, optional
        One name of :data:`ACTIVATIONS` per layer ("relu", "tanh", "logistic",
        "identity"); default ReLU on hidden layers and the identity on the output
        (:func:`default_activations`). Stored as a tuple.
    trained_for : {"float", "quantized"}
        Provenance, data only (:data:`TRAINED_FOR`): whether the weights were trained to
        compute ``x @ W`` (default) or ``x @ W_q`` (QAT, hardware-aware training). Not part
        of any cache key; :func:`train_mlp` and :func:`imclib.hwa.train_hwa` set it.

    Notes
    -----
    A model returned by QAT holds the float *shadow* weights; hardware
    inference must quantize them with the same mapping used in training.
    """

    weights: list[np.ndarray]
    biases: list[np.ndarray]
    activations: tuple[str, ...] | None = None
    trained_for: str = "float"

    def __post_init__(self) -> None:
        self.weights = [np.asarray(w, dtype=np.float64) for w in self.weights]
        self.biases = [np.asarray(b, dtype=np.float64) for b in self.biases]
        if not self.weights or len(self.weights) != len(self.biases):
            raise ValueError(
                "weights and biases must be non-empty lists of equal length, "
                f"got {len(self.weights)} and {len(self.biases)}"
            )
        for index, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            self._check_layer(index, weight, bias)
        self.activations = _checked_activations(self.activations, len(self.weights))
        _validate.choice("trained_for", self.trained_for, TRAINED_FOR)

    def _check_layer(self, index: int, weight: np.ndarray, bias: np.ndarray) -> None:
        if weight.ndim != 2:
            raise ValueError(f"weights[{index}] must be 2-D, got shape {weight.shape}")
        if bias.shape != (weight.shape[1],):
            raise ValueError(
                f"biases[{index}] must have shape ({weight.shape[1]},), got {bias.shape}"
            )
        if index > 0 and weight.shape[0] != self.weights[index - 1].shape[1]:
            raise ValueError(
                f"weights[{index}] must have {self.weights[index - 1].shape[1]} rows "
                f"to follow weights[{index - 1}], got {weight.shape[0]}"
            )
        if not (np.isfinite(weight).all() and np.isfinite(bias).all()):
            raise ValueError(f"layer {index} parameters must be finite")

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """Widths ``(n_in, hidden..., n_out)`` of all layers."""
        return (self.weights[0].shape[0], *(w.shape[1] for w in self.weights))

    def forward(self, x: np.ndarray, matmul: MatmulFn | None = None) -> np.ndarray:
        """Output logits :math:`z` (pre-softmax), shape ``(batch, n_out)``.

        Parameters
        ----------
        x : ndarray, shape (batch, n_in)
            Finite inputs.
        matmul : callable, optional
            ``matmul(layer_index, x, W)`` returning ``(batch, n_out)``,
            replacing ``x @ W`` (e.g. a simulated crossbar); biases are added
            afterwards.
        """
        x = _check_features(x, self.layer_sizes[0])
        return _layer_inputs_and_logits(self.weights, self.biases, x, matmul, self.activations)[1]

    def predict_proba(self, x: np.ndarray, matmul: MatmulFn | None = None) -> np.ndarray:
        """Softmax class probabilities, shape ``(batch, n_out)``."""
        return _softmax(self.forward(x, matmul))

    def predict(self, x: np.ndarray, matmul: MatmulFn | None = None) -> np.ndarray:
        """Predicted class labels ``argmax_k z_k``, int64 shape ``(batch,)``."""
        return self.forward(x, matmul).argmax(axis=1).astype(np.int64)

    def accuracy(self, x: np.ndarray, y: np.ndarray, matmul: MatmulFn | None = None) -> float:
        """Fraction of samples whose predicted label equals ``y``."""
        x = _check_features(x, self.layer_sizes[0])
        y = _check_labels(y, x.shape[0])
        return float(np.mean(self.predict(x, matmul) == y))

    def hidden_activations(
        self, x: np.ndarray, matmul: MatmulFn | None = None
    ) -> list[np.ndarray]:
        """Input of every layer: ``[x, f_0(layer 0 output), ...]``.

        Element ``i`` is the matrix fed to layer ``i``'s matmul, i.e. a
        realistic set of MVM input vectors for that layer's crossbar.
        """
        x = _check_features(x, self.layer_sizes[0])
        return _layer_inputs_and_logits(self.weights, self.biases, x, matmul, self.activations)[0]

    def copy(self) -> MLP:
        """Deep copy of the parameters."""
        return MLP([w.copy() for w in self.weights], [b.copy() for b in self.biases], self.activations,
                   self.trained_for)

    def save(self, path: str | os.PathLike) -> None:
        """Write the parameters, the activations and :attr:`trained_for` to ``path`` as
        ``.npz`` (atomically, exact path; data only: float arrays and arrays of names)."""
        arrays = {f"weight_{i}": w for i, w in enumerate(self.weights)}
        arrays.update({f"bias_{i}": b for i, b in enumerate(self.biases)})
        arrays["activations"] = np.array(self.activations)
        arrays["trained_for"] = np.array(self.trained_for)
        atomic_write(Path(path), lambda file: np.savez(file, **arrays))

    @classmethod
    def load(cls, path: str | os.PathLike) -> MLP:
        """Read a model written by :meth:`save`. A file without ``activations`` (written
        before they were stored) holds the default ReLU network; one without
        ``trained_for``, a float-trained network.

        Raises
        ------
        ValueError
            Naming ``path``, if the file is truncated, not an npz, lacks a layer, or holds
            parameters that do not chain or are not finite, or unknown activations.
        """
        try:
            with np.load(path, allow_pickle=False) as data:
                n_layers = sum(1 for name in data.files if name.startswith("weight_"))
                weights = [data[f"weight_{i}"] for i in range(n_layers)]
                biases = [data[f"bias_{i}"] for i in range(n_layers)]
                activations = tuple(data["activations"].tolist()) if "activations" in data.files else None
                trained_for = str(data["trained_for"]) if "trained_for" in data.files else "float"
            return cls(weights, biases, activations, trained_for)
        except (ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
            raise ValueError(f"{path} is not a valid MLP file: {type(error).__name__}: {error}") from error


def _checked_activations(activations, n_layers: int) -> tuple[str, ...]:
    """``activations`` as a tuple of ``n_layers`` names of :data:`ACTIVATIONS` (the default
    when None); a ValueError names what is wrong."""
    if activations is None:
        return default_activations(n_layers)
    allowed = ", ".join(ACTIVATIONS)
    if isinstance(activations, (str, bytes)) or not isinstance(activations, (list, tuple, np.ndarray)):
        raise ValueError(f"activations must be a sequence of {n_layers} names in ({allowed}), got {activations!r}")
    activations = tuple(activations)
    if len(activations) != n_layers:
        raise ValueError(f"activations must name one activation per layer ({n_layers}), got {len(activations)}")
    for index, name in enumerate(activations):
        if not isinstance(name, str) or name not in ACTIVATIONS:
            raise ValueError(f"activations[{index}] must be one of ({allowed}), got {name!r}")
    return tuple(str(name) for name in activations)


def _he_init(layer_sizes: tuple[int, ...], rng: np.random.Generator) -> MLP:
    """He initialisation :math:`W_{ij} \\sim \\mathcal N(0, 2/n_{in})`, zero biases."""
    weights = [
        rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / n_in)
        for n_in, n_out in zip(layer_sizes[:-1], layer_sizes[1:])
    ]
    biases = [np.zeros(n_out) for n_out in layer_sizes[1:]]
    return MLP(weights, biases)


def _cosine_learning_rate(config: TrainConfig, step: int, total_steps: int) -> float:
    """Learning rate at ``step`` of the cosine schedule documented in TrainConfig."""
    cosine = 0.5 * (1.0 + math.cos(math.pi * step / total_steps))
    return config.learning_rate * (config.lr_decay + (1.0 - config.lr_decay) * cosine)


class _AdamW:
    """Adam with decoupled weight decay, updating parameters in place.

    For gradient :math:`g_t` at step :math:`t`:

    .. math::
        m_t = \\beta_1 m_{t-1} + (1-\\beta_1) g_t, \\quad
        v_t = \\beta_2 v_{t-1} + (1-\\beta_2) g_t^2, \\\\
        \\theta_t = \\theta_{t-1} - \\eta_t\\left(
            \\frac{m_t/(1-\\beta_1^t)}{\\sqrt{v_t/(1-\\beta_2^t)} + \\epsilon}
            + \\lambda\\,\\theta_{t-1}\\right),

    with :math:`\\beta_1=0.9, \\beta_2=0.999, \\epsilon=10^{-8}` and
    :math:`\\lambda` only for parameters flagged ``decay``.
    """

    def __init__(self, params: list[np.ndarray], decay: list[bool], weight_decay: float):
        self.params = params
        self.decay_rates = [weight_decay if flag else 0.0 for flag in decay]
        self.first_moments = [np.zeros_like(p) for p in params]
        self.second_moments = [np.zeros_like(p) for p in params]
        self.step_count = 0

    def step(self, grads: list[np.ndarray], learning_rate: float) -> None:
        self.step_count += 1
        correction1 = 1.0 - _ADAM_BETA1**self.step_count
        correction2 = 1.0 - _ADAM_BETA2**self.step_count
        step_size = learning_rate / correction1
        for param, grad, m, v, decay_rate in zip(
            self.params, grads, self.first_moments, self.second_moments, self.decay_rates
        ):
            m *= _ADAM_BETA1
            m += (1.0 - _ADAM_BETA1) * grad
            v *= _ADAM_BETA2
            v += (1.0 - _ADAM_BETA2) * grad * grad
            if decay_rate:
                param *= 1.0 - learning_rate * decay_rate
            denominator = np.sqrt(v / correction2)
            denominator += _ADAM_EPS
            param -= step_size * m / denominator


def _quantized_weights(
    weights: list[np.ndarray], quantize: QuantizeFn
) -> list[np.ndarray]:
    """``[quantize(i, W_i)]`` with a shape check on each result."""
    quantized = []
    for index, weight in enumerate(weights):
        snapped = np.asarray(quantize(index, weight), dtype=np.float64)
        if snapped.shape != weight.shape:
            raise ValueError(
                f"quantize for layer {index} must return shape {weight.shape}, "
                f"got {snapped.shape}"
            )
        quantized.append(snapped)
    return quantized


def _forward_weights(
    weights: list[np.ndarray],
    config: TrainConfig,
    quantize: QuantizeFn | None,
    rng: np.random.Generator,
) -> list[np.ndarray]:
    """Weights used by a training forward pass.

    Float training uses the shadow weights themselves. QAT uses
    :math:`\\tilde W = Q(W)\\odot(1 + \\sigma\\,\\xi)`,
    :math:`\\xi_{ij}\\sim\\mathcal N(0,1)` drawn afresh per call (omitted when
    :math:`\\sigma=0`).
    """
    if not config.qat:
        return weights
    quantized = _quantized_weights(weights, quantize)
    if config.qat_noise > 0:
        quantized = [
            q * (1.0 + config.qat_noise * rng.standard_normal(q.shape)) for q in quantized
        ]
    return quantized


def _initial_model(
    init: MLP | None,
    layer_sizes: tuple[int, ...],
    n_classes: int,
    rng: np.random.Generator,
) -> MLP:
    """Copy of ``init`` after a compatibility check, else a He-initialised MLP."""
    if init is None:
        return _he_init(layer_sizes, rng)
    if init.layer_sizes[:-1] != layer_sizes[:-1] or init.layer_sizes[-1] < n_classes:
        raise ValueError(
            f"init must have layer sizes {layer_sizes[:-1]} + (>= {n_classes},), "
            f"got {init.layer_sizes}"
        )
    return init.copy()


@one_blas_thread
def train_mlp(
    x: np.ndarray,
    y: np.ndarray,
    config: TrainConfig,
    *,
    quantize: QuantizeFn | None = None,
    init: MLP | None = None,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    progress: bool = True,
) -> tuple[MLP, pd.DataFrame]:
    """Train an MLP by minibatch AdamW on the softmax cross-entropy.

    Each epoch visits the training set in a fresh random order in minibatches
    of ``config.batch_size``; each minibatch takes one :class:`_AdamW` step
    (see its equations) with the cosine learning rate of
    :class:`TrainConfig`. All randomness (He initialisation, shuffling, QAT
    noise) comes from ``np.random.default_rng(config.seed)``, so equal
    inputs and configs give identical models.

    Quantization-aware training (``config.qat``) uses the straight-through
    estimator: the forward pass uses
    :math:`\\tilde W = Q(W)\\odot(1+\\sigma\\xi)` with :math:`Q` = ``quantize``
    and :math:`\\sigma` = ``config.qat_noise``, and the gradient with respect
    to :math:`\\tilde W` is applied unchanged to the float shadow weights
    :math:`W` (:math:`\\partial\\tilde W/\\partial W := I`). The returned MLP
    holds the shadow weights; deploy it with the same ``quantize``.

    Parameters
    ----------
    x : ndarray, shape (n_samples, n_in)
        Finite training inputs (any float dtype; cast to float64 per batch).
    y : ndarray of int, shape (n_samples,)
        Class labels in ``0 .. n_classes-1``; ``n_classes`` is the largest
        label + 1 (or ``init``'s output width).
    config : TrainConfig
        Hyper-parameters.
    quantize : callable, optional
        ``quantize(layer_index, W) -> ndarray`` of W's shape; required if and
        only if ``config.qat``.
    init : MLP, optional
        Starting weights and activations (copied), e.g. a float-pretrained model for
        QAT; its layer sizes must match ``(n_in, *config.hidden, n_out)``.
    x_val, y_val : ndarray, optional
        Validation set, given together.
    progress : bool
        Show a ``tqdm`` progress bar over epochs.

    Returns
    -------
    model : MLP
        Trained model (shadow weights under QAT; :attr:`MLP.trained_for` ``"quantized"``
        under QAT, else ``"float"``).
    history : pandas.DataFrame
        One row per epoch with columns ``epoch`` (1-based), ``loss`` (mean
        minibatch loss over the epoch), ``train_accuracy`` (fraction of
        correctly classified samples in the epoch's training forward
        passes, i.e. with the QAT weights and noise), ``val_accuracy``
        (of the deployed weights, ``Q(W)`` under QAT and without noise; NaN
        without a validation set).

    Raises
    ------
    ValueError
        On malformed data, a missing or superfluous ``quantize``, or an
        incompatible ``init``.
    """
    if config.qat != (quantize is not None):
        raise ValueError(
            "quantize must be given if and only if config.qat is True "
            f"(qat={config.qat}, quantize={'given' if quantize else 'None'})"
        )
    if (x_val is None) != (y_val is None):
        raise ValueError("x_val and y_val must be given together")
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"x must have shape (n_samples, n_in), got {x.shape}")
    x = _check_features(x, x.shape[1])
    y = _check_labels(y, x.shape[0])
    if x.shape[0] == 0:
        raise ValueError("x must contain at least one sample")
    n_classes = int(y.max()) + 1
    if x_val is not None:
        x_val = _check_features(x_val, x.shape[1], "x_val")
        y_val = _check_labels(y_val, x_val.shape[0], "y_val")
        n_classes = max(n_classes, int(y_val.max(initial=0)) + 1)

    rng = np.random.default_rng(config.seed)
    layer_sizes = (x.shape[1], *config.hidden, n_classes)
    model = _initial_model(init, layer_sizes, n_classes, rng)
    optimizer = _AdamW(
        model.weights + model.biases,
        [True] * len(model.weights) + [False] * len(model.biases),
        config.weight_decay,
    )
    steps_per_epoch = math.ceil(x.shape[0] / config.batch_size)
    total_steps = config.epochs * steps_per_epoch

    records = []
    epochs = tqdm(range(1, config.epochs + 1), desc="train_mlp", disable=not progress)
    for epoch in epochs:
        order = rng.permutation(x.shape[0])
        loss_sum = 0.0
        correct = 0
        for start in range(0, x.shape[0], config.batch_size):
            batch = order[start : start + config.batch_size]
            x_batch = x[batch].astype(np.float64, copy=False)
            result = _loss_and_gradients(
                _forward_weights(model.weights, config, quantize, rng),
                model.biases,
                x_batch,
                y[batch],
                model.activations,
            )
            step = (epoch - 1) * steps_per_epoch + start // config.batch_size
            optimizer.step(
                result.weight_grads + result.bias_grads,
                _cosine_learning_rate(config, step, total_steps),
            )
            loss_sum += result.loss * len(batch)
            correct += int(np.sum(result.logits.argmax(axis=1) == y[batch]))

        record = {
            "epoch": epoch,
            "loss": loss_sum / x.shape[0],
            "train_accuracy": correct / x.shape[0],
            "val_accuracy": _deployed_accuracy(model, x_val, y_val, quantize),
        }
        records.append(record)
        epochs.set_postfix(loss=f"{record['loss']:.4f}", val=f"{record['val_accuracy']:.4f}")
    model.trained_for = "quantized" if config.qat else "float"
    return model, pd.DataFrame.from_records(records)


def _deployed_accuracy(
    model: MLP,
    x: np.ndarray | None,
    y: np.ndarray | None,
    quantize: QuantizeFn | None,
) -> float:
    """Accuracy of ``model`` with weights ``Q(W)`` (or ``W``); NaN if no data."""
    if x is None:
        return math.nan
    if quantize is None:
        return model.accuracy(x, y)
    return MLP(_quantized_weights(model.weights, quantize), model.biases, model.activations).accuracy(x, y)
