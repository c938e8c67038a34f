"""Rows that no input of a chunk drives are left out of the read matmuls: the outputs must
be those of the full matmul (same noise draws), for every read path that uses it."""

import numpy as np
import pytest

import imclib.layer
from imclib import CrossbarConfig, Nonidealities, Periphery, program_layer
from imclib.circuit import WireParasitics

CONFIGS = {
    "ideal": CrossbarConfig.ideal(),
    "read noise": CrossbarConfig.quantization_only().with_(
        nonideal=Nonidealities(programming_sigma=0.03, read_sigma=0.01), periphery=Periphery(sense_noise=1e-9)),
    "bias-dependent": CrossbarConfig.quantization_only().with_(
        nonideal=Nonidealities(programming_sigma=0.03, bias_dependence=True, read_sigma=0.01)),
    "wires": CrossbarConfig.quantization_only().with_(wires=WireParasitics(r_row=2.0, r_col=2.0)),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_skipping_undriven_rows_changes_nothing(monkeypatch, name):
    rng = np.random.default_rng(0)
    weights, x = rng.normal(size=(30, 7)), rng.uniform(size=(20, 30))
    x[:, [0, 3, 4, 5, 11, 12, 29]] = 0.0  # 7 of 32 padded rows undriven, plus 2 padding rows
    layer = program_layer(weights, CONFIGS[name], 1)
    skipped = layer.mvm(x, 2)
    monkeypatch.setattr(imclib.layer, "_SKIP_UNDRIVEN", 0)  # never skip
    full = layer.mvm(x, 2)
    # read noise: its variance is a float32 matmul, whose rounding depends on the rows summed
    tolerance = 1e-7 if CONFIGS[name].nonideal.read_sigma > 0 else 1e-12
    np.testing.assert_allclose(skipped, full, rtol=tolerance, atol=tolerance * np.abs(full).max())
    if name == "ideal":
        np.testing.assert_allclose(skipped, x @ weights, rtol=1e-12, atol=1e-12 * np.abs(x @ weights).max())
