"""Convolution as an MVM of im2col rows (imclib.conv): reference equality, adjointness,
batch independence, chunking and input checks."""

import dataclasses

import numpy as np
import pytest
from scipy.signal import correlate

from imclib import conv
from imclib.config import DECODE_SCHEMES, CrossbarConfig
from imclib.layer import program_layer

# odd image sizes, several channels, stride 1 and 2, with and without padding
SHAPES = [  # (batch, C_in, H, W, C_out, kernel, stride, padding)
    (3, 2, 7, 9, 5, 3, 1, 0),
    (2, 3, 11, 9, 4, 5, 2, 2),
    (4, 1, 9, 7, 3, 3, 2, 1),
    (1, 2, 5, 5, 2, 5, 1, 0),
]


def _reference(x, kernels, bias, stride, padding):
    """Cross-correlation by scipy.signal.correlate per image, output and input channel."""
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    n, c_out = x.shape[0], kernels.shape[0]
    full = np.array([[sum(correlate(x[i, c], kernels[o, c], mode="valid") for c in range(x.shape[1]))
                      for o in range(c_out)] for i in range(n)])
    return full[:, :, ::stride, ::stride] + bias[None, :, None, None]


def _case(shape, seed=0):
    n, c_in, h, w, c_out, k, stride, padding = shape
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (n, c_in, h, w))
    kernels = rng.standard_normal((c_out, c_in, k, k))
    bias = rng.standard_normal(c_out)
    return x, kernels, bias, k, stride, padding


def _relative_error(got, want):
    return np.max(np.abs(got - want)) / np.max(np.abs(want))


@pytest.mark.parametrize("shape", SHAPES)
def test_float_conv_equals_reference(shape):
    x, kernels, bias, k, stride, padding = _case(shape)
    got = conv.conv2d(x, kernels.reshape(kernels.shape[0], -1).T, bias, k, stride, padding)
    want = _reference(x, kernels, bias, stride, padding)
    assert got.shape == want.shape
    assert _relative_error(got, want) < 1e-12


@pytest.mark.parametrize("shape", SHAPES)
def test_ideal_hardware_conv_equals_reference(shape):
    x, kernels, bias, k, stride, padding = _case(shape)
    layer = program_layer(kernels.reshape(kernels.shape[0], -1).T, CrossbarConfig.ideal(), 0,
                          input_range=float(x.max()), input_signed=False)
    got = conv.hardware_conv2d(layer, x, bias, k, stride, padding, rng=1)
    assert _relative_error(got, _reference(x, kernels, bias, stride, padding)) < 1e-12


def test_col2im_is_the_adjoint_of_im2col():
    rng = np.random.default_rng(3)
    for n, c, h, w, _, k, stride, padding in SHAPES:
        x = rng.standard_normal((n, c, h, w))
        rows = im2col_rows = conv.im2col(x, k, stride, padding)
        r = rng.standard_normal(im2col_rows.shape)
        lhs, rhs = np.sum(rows * r), np.sum(x * conv.col2im(r, x.shape, k, stride, padding))
        assert abs(lhs - rhs) <= 1e-12 * np.sum(np.abs(rows * r))


def _noise_free(config):
    """``config`` without per-read noise (cells and sense amplifier): static deviations,
    bias dependence and converters stay."""
    return config.with_(nonideal=dataclasses.replace(config.nonideal, read_sigma=0.0),
                        periphery=dataclasses.replace(config.periphery, sense_noise=0.0))


@pytest.mark.parametrize("scheme", ["ideal", *DECODE_SCHEMES])
def test_batch_of_one_equals_batch_of_many_on_noise_free_paths(scheme):
    """Every image's output is the same alone as in a batch (and so whatever the chunking),
    on the ideal device and on the default device of every decode scheme without read noise.
    The ideal device's float GEMM may round in the last bit with the batch size (OpenBLAS picks
    a kernel per shape and CPU, e.g. Prescott or Haswell): equal to 1e-13 relative there; the
    converters' codes make the other paths identical."""
    x, kernels, bias, k, stride, padding = _case((9, 2, 9, 9, 5, 3, 2, 1), seed=4)
    config = CrossbarConfig.ideal() if scheme == "ideal" else _noise_free(CrossbarConfig(**DECODE_SCHEMES[scheme]))
    layer = program_layer(kernels.reshape(5, -1).T, config, 7, input_range=1.0, input_signed=False)
    batch = conv.hardware_conv2d(layer, x, bias, k, stride, padding)
    for index in (0, 4, 8):
        single = conv.hardware_conv2d(layer, x[index : index + 1], bias, k, stride, padding)
        if scheme == "ideal":
            np.testing.assert_allclose(single[0], batch[index], rtol=1e-13, atol=1e-13 * np.abs(batch).max())
        else:
            assert np.array_equal(single[0], batch[index])


def test_chunking_does_not_change_the_rows(monkeypatch):
    x, kernels, bias, k, stride, padding = _case((7, 3, 11, 9, 4, 5, 2, 2), seed=5)
    weights = kernels.reshape(4, -1).T
    whole = conv.conv2d(x, weights, bias, k, stride, padding)
    calls = []
    monkeypatch.setattr(conv, "CHUNK_BYTES", 1)  # one image per chunk
    monkeypatch.setattr(conv, "rows_per_chunk", lambda row_bytes, budget=1: 2)
    chunked = conv.conv2d(x, weights, bias, k, stride, padding, matmul=lambda rows: calls.append(len(rows)) or
                          rows @ weights)
    assert len(calls) == 4
    assert np.array_equal(whole, chunked)


def test_bad_shapes_are_refused_with_the_parameter_named():
    x = np.zeros((1, 2, 5, 5))
    with pytest.raises(ValueError, match="kernel must be <= the padded input size"):
        conv.conv2d(x, np.zeros((2 * 49, 1)), np.zeros(1), 7)
    with pytest.raises(ValueError, match="stride must be"):
        conv.conv2d(x, np.zeros((18, 1)), np.zeros(1), 3, stride=0)
    with pytest.raises(ValueError, match="weights must have 2 \\* 3\\^2 = 18 rows"):
        conv.conv2d(x, np.zeros((9, 1)), np.zeros(1), 3)
    layer = program_layer(np.ones((9, 2)), CrossbarConfig.ideal())
    with pytest.raises(ValueError, match="layer must be programmed with 2 \\* 3\\^2 = 18 rows"):
        conv.hardware_conv2d(layer, x, np.zeros(2), 3)
    with pytest.raises(ValueError, match="bias must have shape \\(2,\\)"):
        conv.hardware_conv2d(layer, x[:, :1], np.zeros(3), 3)
    with pytest.raises(ValueError, match="x must contain only finite"):
        conv.hardware_conv2d(layer, np.full((1, 1, 5, 5), np.nan), np.zeros(2), 3)
