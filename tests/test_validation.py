"""Regression tests for the hardening of the public API (issue: nothing wrong returned silently).

Each row of the tables is one bad case found by a systematic attack on the API: a call that
used to return a wrong result (or fail later with an unrelated error) must now raise a
``ValueError`` naming the parameter. A second table checks that the accepted extremes of
every bounded quantity still give finite results, so the bounds are not merely decorative.
"""

from __future__ import annotations

import numpy as np
import pytest

import imclib
from imclib import CellLevels, CrossbarConfig, MTJ, Nonidealities, Periphery, program_layer, simulate_mvm
from imclib.circuit import WireParasitics
from imclib.mlp import TrainConfig

RNG = np.random.default_rng(0)
W = RNG.normal(size=(8, 4))
X = RNG.uniform(size=(3, 8))

BAD_CASES = [
    # 2. on/off flags must be real bools, numbers real numbers
    (lambda: CrossbarConfig(quantize="False"), "quantize"),
    (lambda: CrossbarConfig(quantize=1), "quantize"),
    (lambda: Nonidealities(bias_dependence="no"), "bias_dependence"),
    (lambda: Nonidealities(decode_as_uniform="no"), "decode_as_uniform"),
    (lambda: Nonidealities(decode_as_uniform=None), "decode_as_uniform"),
    (lambda: Periphery(sense_noise=True), "sense_noise"),
    (lambda: Nonidealities(programming_sigma=True), "programming_sigma"),
    (lambda: Nonidealities(rp_error=False), "rp_error"),
    (lambda: MTJ(r_p=True), "r_p"),
    (lambda: MTJ(tmr0=1 + 0j), "tmr0"),
    (lambda: CrossbarConfig(v_read="0.1"), "v_read"),
    (lambda: CrossbarConfig(rows=True), "rows"),
    (lambda: CrossbarConfig(weight_percentile=None), "weight_percentile"),
    (lambda: WireParasitics(r_row=True), "r_row"),
    (lambda: TrainConfig(learning_rate=True), "learning_rate"),
    (lambda: TrainConfig(qat="yes"), "qat"),
    # 3. sub-config types
    (lambda: CrossbarConfig(periphery=None), "periphery"),
    (lambda: CrossbarConfig(cell="binary"), "cell"),
    (lambda: CrossbarConfig(nonideal={}), "nonideal"),
    (lambda: CrossbarConfig(wires=0.0), "wires"),
    (lambda: CellLevels(4, "binary", mtj=None), "mtj"),
    (lambda: program_layer(W, "default"), "config"),
    (lambda: simulate_mvm(W, X, "ideal"), "config"),
    # 4. accepted extremes that gave NaN, inf or zeros
    (lambda: WireParasitics(r_row=1e-308), "r_row"),
    (lambda: WireParasitics(r_sense=5e-324), "r_sense"),
    (lambda: simulate_mvm(W, X * 1e-320, CrossbarConfig.ideal()), "input_range"),
    (lambda: MTJ(r_p=5e-324), "r_p"),
    (lambda: MTJ(tmr0=5e-324), "tmr0"),
    (lambda: CrossbarConfig(v_read=1e300), "v_read"),
    (lambda: Nonidealities(programming_sigma=1e300), "programming_sigma"),
    (lambda: Nonidealities(read_sigma=1e300), "read_sigma"),
    (lambda: Periphery(sense_noise=1e300), "sense_noise"),
    (lambda: Periphery(adc_range=1e300), "adc_range"),
    (lambda: TrainConfig(learning_rate=1e300), "learning_rate"),
    (lambda: TrainConfig(weight_decay=1e300), "weight_decay"),
    (lambda: TrainConfig(qat=True, qat_noise=1e300), "qat_noise"),
    (lambda: TrainConfig(epochs=10**9), "epochs"),
    # 5. complex, masked, string, ragged and empty inputs
    (lambda: simulate_mvm(W, X + 1j, CrossbarConfig.ideal()), "inputs"),
    (lambda: simulate_mvm(W + 0j, X, CrossbarConfig.ideal()), "weights"),
    (lambda: simulate_mvm(W, np.ma.masked_less(X, 0.5), CrossbarConfig.ideal()), "inputs"),
    (lambda: simulate_mvm(W.astype(str), X, CrossbarConfig.ideal()), "weights"),
    (lambda: simulate_mvm([[1.0, 2.0], [3.0]], X), "weights"),
    (lambda: simulate_mvm(np.zeros((0, 4)), np.zeros((3, 0))), "weights"),
    (lambda: simulate_mvm(W, np.zeros((0, 8))), "inputs"),
    (lambda: program_layer(np.zeros((8, 0))), "weights"),
    (lambda: program_layer(W, CrossbarConfig.ideal()).mvm(X + 1j), "x"),
    # 6. memory: refuse instead of trying to allocate tens of GB
    (lambda: program_layer(W, CrossbarConfig(cell=CellLevels(1000, "series"))), "n_states"),
    # bad rng values
    (lambda: simulate_mvm(W, X, CrossbarConfig(), rng="seed"), "rng"),
    (lambda: simulate_mvm(W, X, CrossbarConfig(), rng=-1), "rng"),
    (lambda: simulate_mvm(W, X, CrossbarConfig(), rng=1.5), "rng"),
    (lambda: simulate_mvm(W, X, CrossbarConfig(), rng=True), "rng"),
]


@pytest.mark.parametrize("call, name", BAD_CASES, ids=[f"{i:02d}-{name}" for i, (_, name) in enumerate(BAD_CASES)])
def test_bad_input_is_refused_naming_the_parameter(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_quantization_only_takes_periphery_and_nonideal_overrides():
    """It used to raise a duplicate-keyword TypeError."""
    periphery = Periphery(adc_bits=8)
    config = CrossbarConfig.quantization_only(periphery=periphery, nonideal=Nonidealities(read_sigma=0.01))
    assert config.periphery == periphery and config.nonideal.read_sigma == 0.01
    assert CrossbarConfig.quantization_only().nonideal == Nonidealities()


def test_numpy_scalars_and_bools_are_accepted():
    config = CrossbarConfig(quantize=np.bool_(True), rows=np.int64(4), v_read=np.float32(0.1),
                            nonideal=Nonidealities(bias_dependence=np.bool_(False), read_sigma=np.float64(0.01)))
    assert config.rows == 4


EXTREMES = [
    ("smallest non-zero wires", CrossbarConfig.quantization_only(wires=WireParasitics(1e-9, 1e-9, 1e-9, 1e-9))),
    ("largest wires", CrossbarConfig.quantization_only(wires=WireParasitics(1e9, 1e9, 0.0, 0.0))),
    ("smallest R_P", CrossbarConfig.quantization_only(CellLevels(4, "binary", MTJ(r_p=1e-3)))),
    ("largest R_P", CrossbarConfig.quantization_only(CellLevels(4, "binary", MTJ(r_p=1e12)))),
    ("smallest TMR0", CrossbarConfig.quantization_only(CellLevels(4, "binary", MTJ(tmr0=1e-6)))),
    ("largest TMR0", CrossbarConfig.quantization_only(CellLevels(4, "binary", MTJ(tmr0=1e3)))),
    ("smallest v_read", CrossbarConfig(v_read=1e-6)),
    ("largest programming sigma", CrossbarConfig(nonideal=Nonidealities(programming_sigma=3.0, read_sigma=3.0))),
    ("largest sense noise", CrossbarConfig(periphery=Periphery(sense_noise=1.0))),
    ("ADC at the smallest full scale", CrossbarConfig(periphery=Periphery(adc_bits=4, adc_range=1e-18))),
]


@pytest.mark.parametrize("config", [c for _, c in EXTREMES], ids=[name for name, _ in EXTREMES])
def test_accepted_extremes_give_finite_results(config):
    with np.errstate(all="raise"), pytest.warns() if config.periphery.adc_range else _no_warning():
        y = simulate_mvm(W, X, config, 0)
    assert y.shape == (3, 4) and np.all(np.isfinite(y))


def test_tiny_but_representable_inputs_still_reproduce_the_ideal_product():
    x = X * 1e-300
    np.testing.assert_allclose(simulate_mvm(W, x, CrossbarConfig.ideal()), x @ W, rtol=1e-9)


class _no_warning:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_memory_limit_names_the_estimate(monkeypatch):
    monkeypatch.setenv("IMCLIB_MEMORY_LIMIT_GB", "0.001")
    with pytest.raises(ValueError, match=r"GiB of memory, above the limit of 0\.001 GiB"):
        CellLevels(32, "series").conductances(np.linspace(0, 0.1, 4097))
    monkeypatch.delenv("IMCLIB_MEMORY_LIMIT_GB")
    assert CellLevels(32, "series").conductances(np.linspace(0, 0.1, 4097)).shape == (4097, 32)


def test_solver_message_does_not_recommend_the_method_already_used():
    from imclib import circuit

    def steep(v):
        return 1e-3 * (1.0 + 1e3 * np.abs(v))  # a strongly bias-dependent cell conductance (S)

    wires = WireParasitics(r_row=10.0, r_col=10.0)
    for method in ("picard", "chord"):
        with pytest.raises(RuntimeError) as error:
            circuit.nonlinear_column_currents(steep, np.full((1, 4), 0.1), wires, n_cols=4, method=method, max_iter=2)
        assert ("method='picard'" in str(error.value)) == (method == "chord"), str(error.value)
