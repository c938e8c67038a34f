"""Convolution as a matrix-vector multiply over im2col rows, so it runs on tiled arrays.

A 2-D convolution (cross-correlation, as in every deep-learning framework) of images
``x`` (batch, C_in, H, W) with kernels ``K`` (C_out, C_in, k, k), stride ``s`` and zero
padding ``p`` is

.. math::
    y_{n, o, u, v} = b_o + \\sum_{c, i, j} x^{p}_{n, c, s u + i, s v + j}\\, K_{o, c, i, j},
    \\qquad u < H_o = \\lfloor (H + 2p - k)/s \\rfloor + 1

(``x^p`` the zero-padded image, ``v < W_o`` likewise). Every output position ``(n, u, v)``
is one **im2col row** ``r_{(n,u,v)} = (x^p_{n, c, s u + i, s v + j})_{c, i, j}`` of length
``k k C_in``, ordered ``(c, i, j)`` as PyTorch flattens a kernel, so that

.. math::
    y_{(n,u,v), o} = r_{(n,u,v)} \\cdot W_{:, o} + b_o,
    \\qquad W = K.\\mathrm{reshape}(C_{out}, k k C_{in})^\\top,

an MVM of each row against the (k k C_in) x C_out weight matrix ``W``. On hardware ``W``
is programmed like any dense layer (:func:`imclib.layer.program_layer`), so tiling,
programming variation, calibration, the periphery, the decode schemes and the wires apply
unchanged; the rows are read as the layer's input vectors, one output position per read.
Pooling, activations and flatten stay digital (:mod:`imclib.sequential`).

Images are laid out (batch, channels, height, width) (NCHW, as PyTorch); im2col works on
chunks of images so that its rows never take more than :data:`CHUNK_BYTES` at once.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from . import _validate
from .layer import ProgrammedLayer

__all__ = ["CHUNK_BYTES", "col2im", "conv2d", "conv_output_size", "hardware_conv2d", "im2col"]

CHUNK_BYTES = 64 * 2**20
"""Largest im2col block (bytes) built at once by :func:`conv2d`: 64 MiB, e.g. 580 MNIST
images of a 5x5 single-channel kernel (24 x 24 rows of 25 float64 each)."""


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length ``floor((size + 2 padding - kernel) / stride) + 1`` along one axis.

    Raises
    ------
    ValueError
        If the kernel (>= 1) is larger than the padded input, or stride < 1 or padding < 0.
    """
    _validate.integer_at_least("kernel", kernel, 1)
    _validate.integer_at_least("stride", stride, 1)
    _validate.integer_at_least("padding", padding, 0)
    if kernel > size + 2 * padding:
        raise ValueError(f"kernel must be <= the padded input size {size} + 2*{padding} = {size + 2 * padding}, "
                         f"got {kernel}")
    return (size + 2 * padding - kernel) // stride + 1


def _padded(x: np.ndarray, padding: int) -> np.ndarray:
    return np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding))) if padding else x


def im2col(x: np.ndarray, kernel: int, stride: int = 1, padding: int = 0) -> np.ndarray:
    """im2col rows of images ``x`` (batch, C, H, W): shape (batch H_o W_o, C k k).

    Row ``(n, u, v)`` (row-major) holds the zero-padded patch
    ``x^p[n, c, s u + i, s v + j]`` ordered ``(c, i, j)`` (module docstring); a copy built in
    one vectorised gather (no Python loop over positions).
    """
    n, c, h, w = x.shape
    h_out, w_out = conv_output_size(h, kernel, stride, padding), conv_output_size(w, kernel, stride, padding)
    windows = np.lib.stride_tricks.sliding_window_view(_padded(x, padding), (kernel, kernel), axis=(2, 3))
    windows = windows[:, :, : (h_out - 1) * stride + 1 : stride, : (w_out - 1) * stride + 1 : stride]
    return windows.transpose(0, 2, 3, 1, 4, 5).reshape(n * h_out * w_out, c * kernel * kernel)


def col2im(rows: np.ndarray, shape: tuple[int, int, int, int], kernel: int, stride: int = 1,
           padding: int = 0) -> np.ndarray:
    """Adjoint of :func:`im2col`: images of ``shape`` (batch, C, H, W) in which every entry of
    ``rows`` (batch H_o W_o, C k k) is added back at the pixel it was gathered from (padding
    dropped), so that ``<im2col(x), r> = <x, col2im(r)>``. The backward pass of a convolution
    with respect to its input; ``k * k`` vectorised scatter-adds."""
    n, c, h, w = shape
    h_out, w_out = conv_output_size(h, kernel, stride, padding), conv_output_size(w, kernel, stride, padding)
    patches = np.ascontiguousarray(rows.reshape(n, h_out, w_out, c, kernel, kernel).transpose(4, 5, 0, 3, 1, 2))
    images = np.zeros((n, c, h + 2 * padding, w + 2 * padding))
    for i in range(kernel):
        for j in range(kernel):
            images[:, :, i : i + stride * (h_out - 1) + 1 : stride, j : j + stride * (w_out - 1) + 1 : stride] += \
                patches[i, j]
    return images[:, :, padding : padding + h, padding : padding + w]


def rows_per_chunk(row_bytes: int, budget: int = CHUNK_BYTES) -> int:
    """Images per chunk so that their im2col rows (``row_bytes`` per image) fit ``budget``."""
    return max(1, budget // max(row_bytes, 1))


def conv2d(x: np.ndarray, weights: np.ndarray, bias: np.ndarray, kernel: int, stride: int = 1, padding: int = 0,
           matmul: Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """Convolution ``y = im2col(x) @ W + b`` of images ``x`` (batch, C_in, H, W), shape
    (batch, C_out, H_o, W_o) (equation in the module docstring).

    Parameters
    ----------
    x : ndarray, shape (batch, C_in, H, W)
    weights : ndarray, shape (C_in k k, C_out)
        Rows ordered ``(c, i, j)``; a PyTorch kernel ``K`` (C_out, C_in, k, k) is
        ``K.reshape(C_out, -1).T``.
    bias : ndarray, shape (C_out,)
        Added digitally after the product.
    kernel, stride, padding : int
        Kernel side ``k`` >= 1, stride ``s`` >= 1, zero padding ``p`` >= 0 (pixels).
    matmul : callable, optional
        ``matmul(rows) -> rows @ weights`` (e.g. a programmed layer's read); the float
        product when omitted. Called once per chunk of images (:data:`CHUNK_BYTES`).
    """
    if weights.shape[0] != x.shape[1] * kernel * kernel:
        raise ValueError(f"weights must have {x.shape[1]} * {kernel}^2 = {x.shape[1] * kernel * kernel} rows for "
                         f"{x.shape[1]} input channels and kernel {kernel}, got shape {weights.shape}")
    return _convolve(x, weights.shape[1], bias, kernel, stride, padding,
                     (lambda rows: rows @ weights) if matmul is None else matmul)


def _convolve(x: np.ndarray, n_out: int, bias: np.ndarray, kernel: int, stride: int, padding: int,
              product: Callable[[np.ndarray], np.ndarray], whole: bool = False) -> np.ndarray:
    """:func:`conv2d` with the row product ``product(rows)`` (rows, n_out), chunked over images
    (or all images in one call when ``whole``)."""
    n, c, h, w = x.shape
    h_out, w_out = conv_output_size(h, kernel, stride, padding), conv_output_size(w, kernel, stride, padding)
    out = np.empty((n, h_out, w_out, n_out))
    chunk = n if whole else rows_per_chunk(h_out * w_out * c * kernel * kernel * 8)
    for start in range(0, n, chunk):
        rows = im2col(x[start : start + chunk], kernel, stride, padding)
        out[start : start + chunk] = np.asarray(product(rows)).reshape(-1, h_out, w_out, n_out)
    out += bias
    return out.transpose(0, 3, 1, 2)


def hardware_conv2d(layer: ProgrammedLayer, x, bias, kernel: int, stride: int = 1, padding: int = 0,
                    rng: np.random.Generator | int | None = None) -> np.ndarray:
    """The convolution of :func:`conv2d` read on programmed arrays: every im2col row of
    ``x`` (batch, C_in, H, W) is one :meth:`~imclib.layer.ProgrammedLayer.mvm` input of
    ``layer`` (programmed from the (C_in k k, C_out) weight matrix), ``bias`` (C_out,) added
    digitally; ``rng`` draws the read noise. Shape (batch, C_out, H_o, W_o)."""
    _validate.instance("layer", layer, ProgrammedLayer)
    x = _validate.finite_array("x", x, 4)
    bias = _validate.finite_array("bias", bias, 1)
    if bias.shape != (layer.n_out,):
        raise ValueError(f"bias must have shape ({layer.n_out},), one per output channel, got {bias.shape}")
    if layer.n_in != x.shape[1] * kernel * kernel:
        raise ValueError(f"layer must be programmed with {x.shape[1]} * {kernel}^2 = {x.shape[1] * kernel * kernel} "
                         f"rows for x's {x.shape[1]} channels and kernel {kernel}, got n_in = {layer.n_in}")
    rng = _validate.generator(rng)
    return _convolve(x, layer.n_out, bias, kernel, stride, padding, lambda rows: layer.mvm(rows, rng))
