"""Study 06 helpers (wire resistance against array size): hand-made tables and small layers."""

import warnings

import numpy as np
import pandas as pd
import pytest

from imclib import CrossbarConfig, Nonidealities
from imclib.periphery import Periphery
from imclib.experiments import circuit


def _table(errors: dict[int, list[float]], resistances=(0.0, 1.0, 2.0, 5.0)) -> pd.DataFrame:
    return pd.DataFrame([{"size": size, "r_wire": r, "error": e}
                         for size, row in errors.items() for r, e in zip(resistances, row)])


def test_crossover_is_where_small_arrays_win_from_then_on():
    table = _table({4: [1.0, 1.1, 1.2, 1.3], 64: [0.9, 1.2, 1.1, 2.0]})
    assert circuit.crossover(table) == 5.0  # wins at 1 ohm, loses at 2, wins from 5 on
    assert circuit.crossover(_table({4: [1.0, 1.1, 1.2, 1.3], 64: [1.0, 2.0, 3.0, 4.0]})) == 1.0  # a tie is no win
    assert circuit.crossover(_table({4: [1.0, 1.1, 1.2, 1.3], 64: [0.5, 0.6, 0.7, 0.8]})) is None


def test_best_size_and_size_exponent():
    table = _table({4: [1.0, 2.0, 3.0, 4.0], 8: [1.0, 1.0, 4.0, 5.0], 16: [0.5, 3.0, 6.0, 7.0]})
    assert circuit.best_size(table).tolist() == [16, 8, 4, 4]
    assert circuit.best_size(_table({4: [1.0] * 4, 8: [1.0 - 1e-12] * 4})).tolist() == [4] * 4  # rounding tie
    power_law = pd.DataFrame({"size": [4, 8, 16, 32], "r_wire": 1.0, "wire_error": 0.01 * np.array([4, 8, 16, 32]) ** 2.0})
    assert circuit.size_exponent(power_law, 1.0) == pytest.approx(2.0)


def test_mvm_sweep_separates_the_wire_error():
    rng = np.random.default_rng(0)
    weights, x = rng.normal(size=(16, 8)), rng.uniform(0, 1, size=(5, 16))
    config = CrossbarConfig.quantization_only()
    table = circuit.mvm_sweep(weights, x, "q", config, sizes=(4, 8), resistances=(0.0, 1.0, 10.0), progress=False)
    ideal = table[table.r_wire == 0]
    assert (ideal.wire_error == 0).all() and (ideal.beyond_quantization == 0).all()
    np.testing.assert_allclose(ideal.error, ideal.error.iloc[0], rtol=1e-12)  # tiling does not change quantization
    for _, per_size in table.groupby("size"):
        assert np.all(np.diff(per_size.sort_values("r_wire").wire_error) > 0)
    at_10 = table[table.r_wire == 10].set_index("size").wire_error
    assert at_10[8] > 2 * at_10[4]
    bias = circuit.mvm_sweep(weights, x, "b", config.with_(nonideal=Nonidealities(bias_dependence=True)),
                             sizes=(4,), resistances=(0.0, 1.0), progress=False)
    assert bias.bias_dependence.all() and (bias[bias.r_wire == 0].beyond_quantization > 0).all()
    assert not table.adc_saturated.any()  # no ADC
    tiny = config.with_(periphery=Periphery(adc_bits=8, adc_range=1e-9))  # 1 nA full scale: every read saturates
    saturated = circuit.mvm_sweep(weights, x, "s", tiny, sizes=(4,), resistances=(0.0, 1.0), progress=False)
    assert saturated.adc_saturated.all()


def test_cell_voltage_map_drops_from_the_driven_corner():
    weights = np.random.default_rng(1).normal(size=(8, 8))
    ideal = circuit.cell_voltage_map(weights, 8, 0.0)
    np.testing.assert_allclose(ideal.cell_voltage_mV, 100.0)
    cells = circuit.cell_voltage_map(weights, 8, 5.0).set_index(["row", "column"])
    assert (cells.cell_voltage_mV < 100.0).all()
    # the cell next to the driver and the sense amplifier (bottom left) sees the most
    assert cells.cell_voltage_mV.idxmax() == (7, 0) and cells.cell_voltage_mV.idxmin()[1] == 7
    with pytest.raises(ValueError, match="size"):
        circuit.cell_voltage_map(weights, 16, 1.0)


@pytest.mark.filterwarnings("ignore:ADC saturated:RuntimeWarning")
def test_scheme_sweep_ranges_and_the_common_mode():
    rng = np.random.default_rng(2)
    weights, x, calibration = rng.normal(size=(16, 8)), rng.uniform(0, 1, size=(6, 16)), rng.uniform(0, 1, size=(40, 16))
    table = circuit.scheme_sweep(weights, x, calibration, sizes=(4, 16), resistances=(0.0, 2.0, 20.0), progress=False)
    assert set(table.scheme) == set(circuit.DECODE_SCHEMES) and set(table.ranges) == set(circuit.RANGES)
    ideal = table[table.r_wire == 0]
    assert (ideal.wire_error == 0).all()
    for _, part in ideal.groupby(["scheme", "size"]):  # with ideal wires both calibrations are the same read
        assert part.error.nunique() == 1
    fixed = table[(table.ranges == "ideal wires") & (table.r_wire == 20.0) & (table["size"] == 16)].set_index("scheme").wire_error
    # the offset mapping's common-mode current drops on the wires too; the differential pair's mostly cancels
    assert fixed["differential"] < fixed["offset/digital"]
    with pytest.raises(ValueError, match="scheme"):
        circuit.scheme_device("offset")


@pytest.mark.filterwarnings("ignore:ADC saturated:RuntimeWarning")
def test_scheme_accuracy_copies_the_ideal_wire_ranges():
    from imclib.mlp import MLP
    rng = np.random.default_rng(3)
    model = MLP([rng.normal(size=(16, 6)), rng.normal(size=(6, 3))], [np.zeros(6), np.zeros(3)])
    x, calibration = rng.uniform(0, 1, size=(30, 16)), rng.uniform(0, 1, size=(40, 16))
    y = model.forward(x).argmax(axis=1)
    table = circuit.scheme_accuracy(model, x, y, calibration, schemes=("differential",), sizes=(4,),
                                    resistances=(0.0, 5.0), progress=False)
    assert len(table) == 4 and table.accuracy.between(0, 1).all()
    at_zero = table[table.r_wire == 0].accuracy
    assert at_zero.iloc[0] == at_zero.iloc[1]  # ideal wires: one calibration


def _check_tables(small_wins: bool):
    sweep = pd.concat([_table({4: [1.0, 1.1, 1.2, 1.3], 64: [1.0, 2.0, 3.0, 4.0]}).assign(device=d)
                       for d in ("quantization only", "default device")], ignore_index=True)
    sizes = {4: 1.0, 8: 2.0, 16: 4.0, 32: 8.0, 64: 16.0}
    sweep = pd.concat([sweep, pd.DataFrame([{"device": "quantization only", "size": n, "r_wire": 0.5, "error": 1.0,
                                             "wire_error": 1e-3 * (n / 4) ** 2} for n in sizes])], ignore_index=True)
    sweep.loc[sweep.wire_error.isna(), "wire_error"] = 1e-3
    rows = []
    for scheme in circuit.DECODE_SCHEMES:
        for ranges in circuit.RANGES:
            big = [1.0, 2.0, 3.0, 4.0, 5.0] if (small_wins or scheme == "differential") else [0.5] * 5
            for size, errors in ((4, [1.0] * 5), (64, big)):
                for r, e in zip((0.0, 0.5, 1.0, 2.0, 5.0), errors):
                    rows.append({"scheme": scheme, "ranges": ranges, "size": size, "r_wire": r, "error": e,
                                 "wire_error": r * size * 1e-3})
    schemes = pd.DataFrame(rows)
    accuracy = pd.DataFrame([{"size": n, "r_wire": r, "accuracy": 0.9} for n in (4, 64) for r in circuit.RESISTANCES])
    scheme_acc = pd.DataFrame([{"scheme": s, "ranges": g, "size": n, "r_wire": 1.0, "accuracy": 0.5}
                               for s in circuit.DECODE_SCHEMES for g in circuit.RANGES for n in (4, 64)])
    return sweep, accuracy, schemes, scheme_acc


@pytest.mark.parametrize("small_wins, verdict", [(True, "reproduced"), (False, "partly")])
def test_check_claim_judges_every_scheme(small_wins, verdict):
    result = circuit.check_claim(*_check_tables(small_wins), n_test=10_000, n_scheme_test=2_000, record=False)
    assert result["verdict"] == verdict
    assert result["by_scheme"]["differential"] and result["by_scheme"]["offset/digital"] == small_wins
    assert result["exponent"] == pytest.approx(2.0)
    text = circuit.findings(result)
    assert f"C7: {verdict}" in text and "2,000 test images" in text


def test_ideal_wire_contrast_takes_ranges_and_column_fit_of_the_ideal_deployment():
    from imclib.deploy import deploy_network
    from imclib.experiments import circuit as study
    from imclib.mlp import MLP

    rng = np.random.default_rng(3)
    model = MLP([rng.normal(size=(8, 4))], [np.zeros(4)])
    calibration = rng.uniform(size=(30, 8))
    config = study.scheme_device("offset/digital")
    (nominal,), _ = deploy_network(model, study.wired(config, 4, 0.0), calibration, 0)
    (actual,), _ = deploy_network(model, study.wired(config, 4, 5.0), calibration, 0)
    copied = study.with_ranges_of(actual, nominal)
    np.testing.assert_array_equal(copied.correction, nominal.correction)
    np.testing.assert_array_equal(copied.adc_range, nominal.adc_range)
    assert not np.array_equal(actual.correction, nominal.correction)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with study.saturation_recorded():
            warnings.warn("ADC saturated on 5% of reads", RuntimeWarning)
