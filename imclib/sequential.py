"""One sequential model for every architecture: Dense, Conv2d, pooling, activations, flatten.

A :class:`Sequential` network applies its layers in order to images ``x`` given flat,
(batch, prod(input_shape)), and returns the logits of a softmax. Two layer kinds hold
weights and run on crossbars, both as an MVM ``rows @ W`` with ``W`` (n_in, n_out):

* ``dense``: ``y = x W + b``, one row per input;
* ``conv2d``: ``y = im2col(x) W + b`` (:mod:`imclib.conv`), one row per output position,
  ``W`` (C_in k k, C_out).

Pooling (max or mean over non-overlapping ``size x size`` windows, a remainder dropped),
the activations of :data:`imclib.mlp.ACTIVATIONS` and flatten are digital. Images are NCHW
and flatten keeps C-order, as PyTorch does.

An architecture is a tuple of layer specifications, JSON-able and with a stable ``repr``
(cache keys): ``("conv2d", C_out, k, stride, padding)``, ``("dense", n_out)``,
``("maxpool2d", size)``, ``("avgpool2d", size)``, ``("flatten",)`` and ``(name,)`` for an
activation (``"relu"``, ``"tanh"``, ``"logistic"``, ``"identity"``).

The MLP is the special case with dense layers and activations only:
:meth:`Sequential.from_mlp` and :meth:`Sequential.to_mlp` convert losslessly, and
:func:`train_sequential` trains a dense-only network exactly as :func:`imclib.mlp.train_mlp`
does (same initialisation, shuffling and AdamW steps; tested bit for bit). Hardware: every
weight layer is programmed and calibrated by :func:`imclib.deploy.deploy_network`, and
:meth:`Sequential.forward` reads it through the same ``matmul(i, rows, W)`` hook as the MLP
(:func:`imclib.network.hardware_matmul`); :func:`imclib.network.hardware_accuracy` scores
either kind.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from . import _validate
from ._blas import one_blas_thread
from .conv import _convolve, col2im, conv_output_size, rows_per_chunk
from .mlp import (ACTIVATIONS, MLP, TRAINED_FOR, MatmulFn, QuantizeFn, TrainConfig, _AdamW, _cosine_learning_rate, _forward_weights, _quantized_weights, activation_derivative,
                  softmax_cross_entropy)

__all__ = ["SMALL_CNN", "Sequential", "train_sequential"]

WEIGHT_KINDS = ("dense", "conv2d")
POOL_KINDS = ("maxpool2d", "avgpool2d")
LAYER_KINDS = (*WEIGHT_KINDS, *POOL_KINDS, "flatten", *ACTIVATIONS)
"""Every layer kind of an architecture (module docstring)."""
_ARGUMENTS = {"dense": ("n_out",), "conv2d": ("out_channels", "kernel", "stride", "padding"),
              "maxpool2d": ("size",), "avgpool2d": ("size",), "flatten": ()}

SMALL_CNN = (("conv2d", 8, 5, 1, 0), ("maxpool2d", 2), ("relu",),
             ("conv2d", 16, 5, 1, 0), ("maxpool2d", 2), ("relu",),
             ("flatten",), ("dense", 64), ("relu",), ("dense", 10))
"""The small MNIST CNN (input 1 x 28 x 28): 5x5 conv to 8 channels (24 x 24), 2x2 max pool,
5x5 conv to 16 channels (8 x 8), 2x2 max pool, 256 features, dense 64, dense 10; 20,424
weights (200 + 3,200 + 16,384 + 640) and 98 biases. Max pooling commutes with ReLU, so
pooling first applies the ReLU to 4x fewer values."""


def _spec(layer) -> tuple:
    """``layer`` (a tuple or list from an architecture) checked: a known kind with integer
    arguments in range; a ValueError names the layer and what is wrong."""
    if isinstance(layer, (str, bytes)) or not isinstance(layer, (tuple, list)) or not layer \
            or layer[0] not in LAYER_KINDS:
        raise ValueError(f"a layer must be a tuple (kind, *arguments) with kind one of {LAYER_KINDS}, got {layer!r}")
    kind, arguments = str(layer[0]), tuple(layer[1:])
    names = _ARGUMENTS.get(kind, ())
    if len(arguments) != len(names):
        raise ValueError(f"layer {layer!r}: {kind} takes the arguments {names}, got {len(arguments)}")
    for name, value in zip(names, arguments):
        _validate.integer_at_least(f"{kind} {name}", value, 0 if name == "padding" else 1)
    return (kind, *(int(value) for value in arguments))


class _Layer:
    """A layer of a :class:`Sequential` network: ``forward`` and ``backward`` on a batch."""

    weight: np.ndarray | None = None
    bias: np.ndarray | None = None

    def output_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        return shape

    def forward(self, x: np.ndarray, product, whole: bool = False) -> np.ndarray:
        """Output of the layer for the batch ``x``; ``product(rows)`` computes ``rows @ W``
        of a weight layer (None for the others), called once per chunk of inputs, or once
        for all when ``whole``."""
        raise NotImplementedError

    def backward(self, x: np.ndarray, y: np.ndarray, grad: np.ndarray, weight, rows, input_grad: bool) -> tuple:
        """``(dL/dx, dL/dW, dL/db)`` from the output gradient ``grad``, for input ``x`` and
        output ``y``, with ``weight`` the matrix and ``rows`` the MVM inputs used forward
        (``dL/dW``, ``dL/db`` None without weights; ``dL/dx`` None unless ``input_grad``)."""
        raise NotImplementedError


@dataclass(eq=False)
class _Weights(_Layer):
    """A layer with a weight matrix ``W`` (n_in, n_out) and a bias ``b`` (n_out,), float64."""

    weight: np.ndarray
    bias: np.ndarray

    def __post_init__(self):
        self.weight = _validate.finite_array(f"{self.kind} weight", self.weight, 2)
        self.bias = _validate.finite_array(f"{self.kind} bias", self.bias, 1)
        if self.bias.shape != (self.weight.shape[1],):
            raise ValueError(f"{self.kind} bias must have shape ({self.weight.shape[1]},), got {self.bias.shape}")


@dataclass(eq=False)
class Dense(_Weights):
    """``y = x W + b`` on (batch, n_in)."""

    kind = "dense"

    @property
    def spec(self) -> tuple:
        return ("dense", self.weight.shape[1])

    def output_shape(self, shape):
        if shape != (self.weight.shape[0],):
            raise ValueError(f"a dense layer of {self.weight.shape[0]} inputs cannot take inputs shaped {shape} "
                             "(flatten images first)")
        return (self.weight.shape[1],)

    def rows_per_input(self, shape) -> int:
        return 1

    def forward(self, x, product, whole=False):
        return product(x) + self.bias

    def backward(self, x, y, grad, weight, rows, input_grad):
        return grad @ weight.T if input_grad else None, rows.T @ grad, grad.sum(axis=0)


@dataclass(eq=False)
class Conv2d(_Weights):
    """``y = im2col(x) W + b`` on images (batch, C_in, H, W) (:func:`imclib.conv.conv2d`)."""

    kernel: int = 1
    stride: int = 1
    padding: int = 0
    kind = "conv2d"

    def __post_init__(self):
        super().__post_init__()
        _spec(("conv2d", self.weight.shape[1], self.kernel, self.stride, self.padding))
        if self.weight.shape[0] % (self.kernel * self.kernel):
            raise ValueError(f"conv2d weight must have C_in * {self.kernel}^2 rows, got shape {self.weight.shape}")

    @property
    def in_channels(self) -> int:
        return self.weight.shape[0] // (self.kernel * self.kernel)

    @property
    def spec(self) -> tuple:
        return ("conv2d", self.weight.shape[1], self.kernel, self.stride, self.padding)

    def output_shape(self, shape):
        if len(shape) != 3 or shape[0] != self.in_channels:
            raise ValueError(f"a conv2d layer of {self.in_channels} input channels cannot take inputs shaped {shape} "
                             "(expected (channels, height, width))")
        return (self.weight.shape[1], *(conv_output_size(size, self.kernel, self.stride, self.padding)
                                        for size in shape[1:]))

    def rows_per_input(self, shape) -> int:
        _, h, w = self.output_shape(shape)
        return h * w

    def forward(self, x, product, whole=False):
        return _convolve(x, self.weight.shape[1], self.bias, self.kernel, self.stride, self.padding, product, whole)

    def backward(self, x, y, grad, weight, rows, input_grad):
        rows_grad = grad.transpose(0, 2, 3, 1).reshape(-1, grad.shape[1])
        dx = col2im(rows_grad @ weight.T, x.shape, self.kernel, self.stride, self.padding) if input_grad else None
        return dx, rows.T @ rows_grad, rows_grad.sum(axis=0)


@dataclass(eq=False)
class Pool2d(_Layer):
    """Max (``maxpool2d``) or mean (``avgpool2d``) over non-overlapping ``size x size``
    windows of images (batch, C, H, W); the last ``H mod size`` rows and ``W mod size``
    columns are dropped (as PyTorch's default)."""

    kind: str
    size: int

    def __post_init__(self):
        _spec((self.kind, self.size))
        if self.kind not in POOL_KINDS:
            raise ValueError(f"pool kind must be one of {POOL_KINDS}, got {self.kind!r}")

    @property
    def spec(self) -> tuple:
        return (self.kind, self.size)

    def output_shape(self, shape):
        if len(shape) != 3 or min(shape[1:]) < self.size:
            raise ValueError(f"a {self.size}x{self.size} pool needs images (channels, height, width) of at least "
                             f"{self.size} pixels a side, got {shape}")
        return (shape[0], shape[1] // self.size, shape[2] // self.size)

    def _windows(self, x) -> list[np.ndarray]:
        """The ``size^2`` strided views ``x[:, :, i::size, j::size]`` (cropped to H_o x W_o),
        one per position ``(i, j)`` in the window, row-major."""
        h_out, w_out, s = x.shape[2] // self.size, x.shape[3] // self.size, self.size
        return [x[:, :, i : h_out * s : s, j : w_out * s : s] for i in range(s) for j in range(s)]

    def forward(self, x, product, whole=False):
        windows = self._windows(x)
        if self.kind == "maxpool2d":
            return functools.reduce(np.maximum, windows)
        return functools.reduce(np.add, windows) / self.size**2

    def backward(self, x, y, grad, weight, rows, input_grad):
        """Max: the gradient goes to the first maximum of each window (row-major), the
        others get 0; mean: ``grad / size^2`` to each pixel. Cropped pixels get 0."""
        dx = np.zeros_like(x)
        if self.kind == "avgpool2d":
            for view in self._windows(dx):
                view[...] = grad / self.size**2
            return dx, None, None
        unassigned = np.ones(grad.shape, dtype=bool)
        for source, target in zip(self._windows(x), self._windows(dx)):
            first = unassigned & (source == y)
            target[...] = np.where(first, grad, 0.0)
            unassigned &= ~first
        return dx, None, None


@dataclass(eq=False)
class Activation(_Layer):
    """An element-wise activation of :data:`imclib.mlp.ACTIVATIONS`, ``y = f(x)``."""

    name: str

    def __post_init__(self):
        _validate.choice("activation", self.name, tuple(ACTIVATIONS))

    @property
    def spec(self) -> tuple:
        return (self.name,)

    def forward(self, x, product, whole=False):
        return ACTIVATIONS[self.name](x)

    def backward(self, x, y, grad, weight, rows, input_grad):
        return (grad if self.name == "identity" else grad * activation_derivative(self.name, y)), None, None


@dataclass(eq=False)
class Flatten(_Layer):
    """Images (batch, C, H, W) to rows (batch, C H W), C-order."""

    @property
    def spec(self) -> tuple:
        return ("flatten",)

    def output_shape(self, shape):
        return (math.prod(shape),)

    def forward(self, x, product, whole=False):
        return x.reshape(x.shape[0], -1)

    def backward(self, x, y, grad, weight, rows, input_grad):
        return grad.reshape(x.shape), None, None


def _he_layer(spec: tuple, shape: tuple[int, ...], rng: np.random.Generator) -> _Layer:
    """A layer of ``spec`` for inputs of ``shape``; weights He-initialised,
    ``W ~ N(0, 2 / n_in)`` drawn (n_in, n_out) (as :func:`imclib.mlp.train_mlp`), zero bias."""
    kind = spec[0]
    if kind in WEIGHT_KINDS:
        n_in = shape[0] * spec[2] ** 2 if kind == "conv2d" else math.prod(shape)
        weight = rng.standard_normal((n_in, spec[1])) * np.sqrt(2.0 / n_in)
        return Dense(weight, np.zeros(spec[1])) if kind == "dense" else Conv2d(weight, np.zeros(spec[1]), *spec[2:])
    if kind in POOL_KINDS:
        return Pool2d(kind, spec[1])
    return Flatten() if kind == "flatten" else Activation(kind)


class Sequential:
    """A network of layers applied in order; its output are the logits of a softmax.

    Parameters
    ----------
    layers : sequence of layer objects
        :class:`Dense`, :class:`Conv2d`, :class:`Pool2d`, :class:`Activation`,
        :class:`Flatten`; the weight layers hold float64 parameters.
    input_shape : tuple of int
        Shape of one input, ``(n_in,)`` or ``(channels, height, width)``; inputs are given
        flat, (batch, prod(input_shape)).
    trained_for : {"float", "quantized"}
        Provenance, data only, as :attr:`imclib.mlp.MLP.trained_for`: whether the weights
        were trained to compute ``x @ W`` (default) or ``x @ W_q`` (QAT).

    Raises
    ------
    ValueError
        If the layers do not chain for ``input_shape`` or the network does not end in
        (batch, n_out) logits; the message names the layer.
    """

    def __init__(self, layers, input_shape, trained_for: str = "float"):
        _validate.choice("trained_for", trained_for, TRAINED_FOR)
        self.trained_for = trained_for
        self.layers = list(layers)
        if not self.layers or not any(isinstance(layer, _Weights) for layer in self.layers):
            raise ValueError("layers must hold at least one dense or conv2d layer")
        self.input_shape = tuple(int(size) for size in input_shape)
        shapes = [self.input_shape]
        for index, layer in enumerate(self.layers):
            if not isinstance(layer, _Layer):
                raise ValueError(f"layers[{index}] must be a layer object, got {type(layer).__name__}")
            try:
                shapes.append(layer.output_shape(shapes[-1]))
            except ValueError as error:
                raise ValueError(f"layers[{index}] {layer.spec}: {error}") from None
        if len(shapes[-1]) != 1:
            raise ValueError(f"the network must end in flat logits, its output is shaped {shapes[-1]} (add flatten)")
        self.shapes = shapes

    # ------------------------------------------------------------------ structure

    @classmethod
    def build(cls, architecture, input_shape, rng=None) -> "Sequential":
        """A He-initialised network of ``architecture`` (module docstring) for inputs of
        ``input_shape``; weights drawn layer by layer from ``rng`` (Generator or seed)."""
        rng = _validate.generator(rng)
        if isinstance(architecture, (str, bytes)) or not isinstance(architecture, (tuple, list)):
            raise ValueError(f"architecture must be a sequence of layer tuples, got {architecture!r}")
        shape, layers = tuple(int(size) for size in input_shape), []
        for index, spec in enumerate(architecture):
            layer = _he_layer(_spec(spec), shape, rng)
            try:
                shape = layer.output_shape(shape)
            except ValueError as error:
                raise ValueError(f"architecture[{index}] {spec!r}: {error}") from None
            layers.append(layer)
        return cls(layers, input_shape)

    @property
    def architecture(self) -> tuple:
        """The layer specifications (module docstring), a tuple of tuples."""
        return tuple(layer.spec for layer in self.layers)

    @property
    def spec(self) -> dict:
        """``{"input_shape": [...], "architecture": [[kind, *arguments], ...]}`` (JSON-able)."""
        return {"input_shape": list(self.input_shape), "architecture": [list(spec) for spec in self.architecture]}

    @classmethod
    def from_spec(cls, spec: dict | str, weights, biases) -> "Sequential":
        """The network of :attr:`spec` (a dict or its JSON text) with the given parameters,
        one per weight layer in order."""
        spec = json.loads(spec) if isinstance(spec, str) else spec
        architecture = [_spec(tuple(layer)) for layer in spec["architecture"]]
        weights, biases = list(weights), list(biases)
        n_weight_layers = sum(layer[0] in WEIGHT_KINDS for layer in architecture)
        if len(weights) != n_weight_layers or len(biases) != n_weight_layers:
            raise ValueError(f"the architecture has {n_weight_layers} weight layers, got {len(weights)} weights "
                             f"and {len(biases)} biases")
        return cls.build(architecture, spec["input_shape"], 0).with_parameters(weights, biases)

    @property
    def weight_layers(self) -> list[_Weights]:
        return [layer for layer in self.layers if isinstance(layer, _Weights)]

    @property
    def weights(self) -> list[np.ndarray]:
        """The weight matrices (n_in, n_out) of the weight layers, in order (the arrays
        themselves: training updates them in place)."""
        return [layer.weight for layer in self.weight_layers]

    @property
    def biases(self) -> list[np.ndarray]:
        return [layer.bias for layer in self.weight_layers]

    @property
    def n_in(self) -> int:
        return math.prod(self.input_shape)

    @property
    def n_out(self) -> int:
        return self.shapes[-1][0]

    @property
    def n_weights(self) -> int:
        """Number of weights (crossbar cells before mapping), biases excluded."""
        return sum(w.size for w in self.weights)

    def with_parameters(self, weights, biases) -> "Sequential":
        """The same architecture with new parameters (checked: shapes must match)."""
        weights, biases, index = list(weights), list(biases), 0
        layers = []
        for layer in self.layers:
            if isinstance(layer, _Weights):
                weight, bias = np.asarray(weights[index], dtype=np.float64), np.asarray(biases[index], dtype=np.float64)
                if weight.shape != layer.weight.shape:
                    raise ValueError(f"weights[{index}] must have shape {layer.weight.shape}, got {weight.shape}")
                layer = Dense(weight, bias) if layer.kind == "dense" else Conv2d(
                    weight, bias, layer.kernel, layer.stride, layer.padding)
                index += 1
            layers.append(layer)
        return Sequential(layers, self.input_shape, self.trained_for)

    def copy(self) -> "Sequential":
        """Deep copy of the parameters."""
        return self.with_parameters([w.copy() for w in self.weights], [b.copy() for b in self.biases])

    @classmethod
    def from_mlp(cls, model: MLP) -> "Sequential":
        """The MLP as a sequential network: each of its layers a :class:`Dense` then an
        :class:`Activation` (none after an identity), same parameters (copied)."""
        _validate.instance("model", model, MLP)
        layers = []
        for weight, bias, name in zip(model.weights, model.biases, model.activations):
            layers.append(Dense(weight.copy(), bias.copy()))
            if name != "identity":
                layers.append(Activation(name))
        return cls(layers, (model.layer_sizes[0],), model.trained_for)

    def to_mlp(self) -> MLP:
        """The network as an :class:`~imclib.mlp.MLP` (dense layers, each followed by at most
        one activation); a ValueError for any other layer kind."""
        weights, biases, activations = [], [], []
        for layer in self.layers:
            if isinstance(layer, Dense):
                weights.append(layer.weight.copy())
                biases.append(layer.bias.copy())
                activations.append("identity")
            elif isinstance(layer, Activation) and weights and activations[-1] == "identity":
                activations[-1] = layer.name
            else:
                raise ValueError(f"only dense layers, each followed by at most one activation, make an MLP; "
                                 f"this network has {self.architecture}")
        return MLP(weights, biases, tuple(activations), self.trained_for)

    # ------------------------------------------------------------------ inference

    def _check(self, x, name: str = "x") -> np.ndarray:
        return _validate.features(name, x, self.n_in)

    def _chunk(self) -> int:
        """Inputs per forward chunk: the largest matmul input of one input (rows times row
        length) fits :data:`imclib.conv.CHUNK_BYTES`."""
        row_bytes = max(layer.rows_per_input(shape) * layer.weight.shape[0] * 8
                        for layer, shape in zip(self.layers, self.shapes) if isinstance(layer, _Weights))
        return rows_per_chunk(row_bytes)

    def _run(self, x: np.ndarray, weights, matmul: MatmulFn | None, keep: bool, whole: bool = False):
        """Logits of ``x`` (batch, n_in) with ``weights`` per weight layer; when ``keep``
        (for the backward pass) also every layer's input and every weight layer's MVM input
        rows (by position). With ``whole`` every weight layer gets all its rows in one call."""
        activation, inputs, rows, index = x.reshape(x.shape[0], *self.input_shape), [], {}, 0
        for position, layer in enumerate(self.layers):
            if keep:
                inputs.append(activation)
            product = None
            if isinstance(layer, _Weights):
                product = functools.partial(_product, matmul, index, weights[index], rows.setdefault(position, [])
                                            if keep else None)
                index += 1
            activation = layer.forward(activation, product, whole)
        return activation, inputs, {position: np.concatenate(chunks) for position, chunks in rows.items()}

    def forward(self, x, matmul: MatmulFn | None = None) -> np.ndarray:
        """Logits, shape (batch, n_out), computed in chunks of inputs (memory bounded by
        :data:`imclib.conv.CHUNK_BYTES` per chunk).

        Parameters
        ----------
        x : array_like, shape (batch, prod(input_shape))
            Finite inputs.
        matmul : callable, optional
            ``matmul(i, rows, W)`` returning ``rows @ W`` for weight layer ``i`` (its input
            rows: the inputs of a dense layer, the im2col rows of a conv2d layer), e.g.
            :func:`imclib.network.hardware_matmul`; biases are added afterwards.
        """
        x = self._check(x)
        chunk = self._chunk()
        return np.concatenate([self._run(x[start : start + chunk], self.weights, matmul, False)[0]
                               for start in range(0, x.shape[0], chunk)])

    def predict(self, x, matmul: MatmulFn | None = None) -> np.ndarray:
        """Predicted class labels ``argmax_k z_k``, int64 shape (batch,)."""
        return self.forward(x, matmul).argmax(axis=1).astype(np.int64)

    def accuracy(self, x, y, matmul: MatmulFn | None = None) -> float:
        """Fraction of inputs whose predicted label equals ``y``."""
        x = self._check(x)
        y = _validate.class_labels("y", y, x.shape[0], self.n_out)
        return float(np.mean(self.predict(x, matmul) == y))

    # ------------------------------------------------------------------ training

    def loss_and_gradients(self, x: np.ndarray, y: np.ndarray, weights=None):
        """Mean softmax cross-entropy of ``x`` (batch, n_in) against labels ``y`` and its
        gradients by backpropagation, with ``weights`` per weight layer (default the
        model's; the biases are the model's).

        ``dL/dz = (softmax(z) - onehot(y)) / B`` (:func:`imclib.mlp.softmax_cross_entropy`),
        then each layer from the last maps its output gradient ``g`` to its input's:
        dense ``x^T g``, ``sum_n g``, ``g W^T``; conv2d the same on im2col rows, the input
        gradient put back by :func:`imclib.conv.col2im`; activations ``g f'``; max pool to
        the first maximum of each window, mean pool ``g / size^2`` to each pixel. The input
        gradient of the first layer is not computed.

        Returns
        -------
        loss : float
        weight_grads, bias_grads : list of ndarray
            Shapes of the parameters.
        logits : ndarray, shape (batch, n_out)
        """
        weights = self.weights if weights is None else weights
        logits, inputs, rows = self._run(x, weights, None, True)
        outputs = inputs[1:] + [logits]
        loss, grad = softmax_cross_entropy(logits, y)
        first = next(position for position, layer in enumerate(self.layers) if isinstance(layer, _Weights))
        weight_grads, bias_grads, index = [], [], len(weights)
        for position in range(len(self.layers) - 1, first - 1, -1):
            layer, weight = self.layers[position], None
            if isinstance(layer, _Weights):
                index -= 1
                weight = weights[index]
            grad, grad_weight, grad_bias = layer.backward(inputs[position], outputs[position], grad, weight,
                                                          rows.get(position), position > first)
            if grad_weight is not None:
                weight_grads.append(grad_weight)
                bias_grads.append(grad_bias)
        return loss, weight_grads[::-1], bias_grads[::-1], logits


def _product(matmul: MatmulFn | None, index: int, weight: np.ndarray, kept: list | None,
             rows: np.ndarray) -> np.ndarray:
    """``rows @ weight`` of weight layer ``index``, or ``matmul(index, rows, weight)`` with a
    shape check naming the layer; ``rows`` appended to ``kept`` when given. The rows are made
    C-contiguous first: a programmed layer's read rounds a row differently in another memory
    order (e.g. the Fortran-ordered output of the layer before), which would make a row's
    result depend on its batch."""
    rows = np.ascontiguousarray(rows)
    if kept is not None:
        kept.append(rows)
    if matmul is None:
        return rows @ weight
    product = np.asarray(matmul(index, rows, weight))
    if product.shape != (rows.shape[0], weight.shape[1]):
        raise ValueError(f"matmul for weight layer {index} must return shape {(rows.shape[0], weight.shape[1])}, "
                         f"got {product.shape}")
    return product


@one_blas_thread
def train_sequential(x, y, config: TrainConfig, architecture, input_shape, *, quantize: QuantizeFn | None = None,
                     init: Sequential | None = None, x_val=None, y_val=None,
                     progress: bool = True) -> tuple[Sequential, pd.DataFrame]:
    """Train a :class:`Sequential` network by minibatch AdamW on the softmax cross-entropy,
    exactly as :func:`imclib.mlp.train_mlp` trains an MLP (its docstring gives the
    schedule, QAT with the straight-through estimator, and the history's columns).

    ``config.hidden`` must be ``()``: the layers are ``architecture`` (module docstring) for
    inputs of ``input_shape``, He-initialised from ``np.random.default_rng(config.seed)``
    (which then shuffles and draws the QAT noise), or copied from ``init`` (same
    architecture). ``x`` is (n_samples, prod(input_shape)); ``y`` labels in
    ``0 .. n_out - 1``. Weight decay applies to the weight matrices, not to the biases.

    Returns
    -------
    model : Sequential
        ``trained_for`` ``"quantized"`` under QAT, else ``"float"``.
    history : pandas.DataFrame
        ``epoch``, ``loss``, ``train_accuracy``, ``val_accuracy`` (NaN without validation).
    """
    if config.hidden != ():
        raise ValueError(f"config.hidden must be () for a sequential network (its layers are the architecture), "
                         f"got {config.hidden!r}")
    if config.qat != (quantize is not None):
        raise ValueError("quantize must be given if and only if config.qat is True "
                         f"(qat={config.qat}, quantize={'given' if quantize else 'None'})")
    if (x_val is None) != (y_val is None):
        raise ValueError("x_val and y_val must be given together")
    rng = np.random.default_rng(config.seed)
    model = Sequential.build(architecture, input_shape, rng) if init is None else init.copy()
    if model.architecture != tuple(_spec(spec) for spec in architecture):
        raise ValueError(f"init must have the architecture {tuple(architecture)}, got {model.architecture}")
    x = model._check(x)
    y = _validate.class_labels("y", y, x.shape[0], model.n_out)
    if x_val is not None:
        x_val = model._check(x_val)
        y_val = _validate.class_labels("y_val", y_val, x_val.shape[0], model.n_out)
    optimizer = _AdamW(model.weights + model.biases, [True] * len(model.weights) + [False] * len(model.biases),
                       config.weight_decay)
    steps_per_epoch = math.ceil(x.shape[0] / config.batch_size)
    records = []
    epochs = tqdm(range(1, config.epochs + 1), desc="train_sequential", disable=not progress)
    for epoch in epochs:
        order = rng.permutation(x.shape[0])
        loss_sum, correct = 0.0, 0
        for start in range(0, x.shape[0], config.batch_size):
            batch = order[start : start + config.batch_size]
            loss, weight_grads, bias_grads, logits = model.loss_and_gradients(
                x[batch], y[batch], _forward_weights(model.weights, config, quantize, rng))
            step = (epoch - 1) * steps_per_epoch + start // config.batch_size
            optimizer.step(weight_grads + bias_grads,
                           _cosine_learning_rate(config, step, config.epochs * steps_per_epoch))
            loss_sum += loss * len(batch)
            correct += int(np.sum(logits.argmax(axis=1) == y[batch]))
        deployed = model if quantize is None else model.with_parameters(_quantized_weights(model.weights, quantize),
                                                                         model.biases)
        records.append({"epoch": epoch, "loss": loss_sum / x.shape[0], "train_accuracy": correct / x.shape[0],
                        "val_accuracy": math.nan if x_val is None else deployed.accuracy(x_val, y_val)})
        epochs.set_postfix(loss=f"{records[-1]['loss']:.4f}", val=f"{records[-1]['val_accuracy']:.4f}")
    model.trained_for = "quantized" if config.qat else "float"
    return model, pd.DataFrame.from_records(records)
