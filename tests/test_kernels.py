"""The compiled read kernels (:mod:`imclib.kernels`) against their plain-numpy references,
the counter-based normals against the normal distribution and numpy's generator, and the
determinism of a noisy read across thread counts and chunk sizes."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special, stats

import imclib.layer
from imclib import CellLevels, CrossbarConfig, Nonidealities, Periphery, kernels, program_layer
from imclib.array import LevelTable
from imclib.deploy import calibrate, percentile_rows
from imclib.periphery import adc_constants

ROOT = Path(__file__).resolve().parents[1]


# --- counter-based normals -----------------------------------------------------------------

@pytest.mark.parametrize("p", [1, 7, 256])
def test_read_normals_equal_the_numpy_reference(p):
    compiled = kernels.read_normals(2**63 + 12345, 5, 3, p, row0=11)
    expected = kernels.reference_normals(2**63 + 12345, 5, 3, p, row0=11)
    # the ziggurat's first try: the same operations; its slow path (tail and wedges) uses
    # polynomial exp and ln (errors below 1e-10)
    np.testing.assert_allclose(compiled, expected, rtol=1e-10, atol=0)


def test_the_ziggurat_slow_path_equals_the_numpy_reference():
    """Numbers of every kind of the slow path: the tail beyond r (base layer), the wedges
    of the layers between, the top layer (always the slow path), in both halves of a hash."""
    z = kernels.read_normals(99, 200, 4, 256)
    expected = kernels.reference_normals(99, 200, 4, 256)
    np.testing.assert_allclose(z, expected, rtol=1e-10, atol=0)
    hi, lo, first = kernels._reference_hashes(99, 200, 4, 256, 0)
    bits = np.where(first, hi, lo).astype(np.int64)
    top = kernels._LAYERS - 1
    accept = kernels._ziggurat_accept()
    layer, left_open = bits & top, (bits >> (kernels._LAYER_BITS + 1)) >= accept[bits & top]
    for kind in (layer == 0, (layer > 0) & (layer < top), layer == top):  # tail, wedges, top layer
        assert np.count_nonzero(kind & left_open & first) > 0 and np.count_nonzero(kind & left_open & ~first) > 0
    assert np.count_nonzero(np.abs(z) > kernels._ZIGGURAT_R) > 0  # the tail drawn


def test_ziggurat_tables_have_layers_of_equal_area_under_the_normal():
    """Every layer ``x_i (f(x_{i+1}) - f(x_i))``, the top one included, and the base strip
    ``x_0 f(r)`` have the area ``v`` (``r`` and ``v`` solve the recursion); ``v`` is the base
    strip's rectangle plus the tail beyond ``r``; the packed widths are ``x_i 2^-21`` to 2^-31
    relative and their acceptance bounds lie under the curve; the polynomial exp matches numpy's."""
    width, height = kernels._ZIGGURAT_WIDTH, kernels._ZIGGURAT_HEIGHT
    assert width.size == 1024 and height.size == 1025
    bits = kernels._ABSCISSA_BITS
    edges = np.sqrt(-2 * np.log(height[1:]))  # x_1 .. x_1024 from their heights
    edges = np.concatenate([[width[0] * 2.0**bits], edges])
    np.testing.assert_allclose(edges[:-1], width * 2.0**bits, rtol=2.0**-30)
    area = float(kernels._AREA)
    np.testing.assert_allclose(edges[1:-1] * (height[2:] - height[1:-1]), area, rtol=1e-9)
    r = kernels._ZIGGURAT_R
    np.testing.assert_allclose(edges[0] * height[1], area, rtol=2.0**-30)  # x_0 from its packed width
    np.testing.assert_allclose(r * np.exp(-r * r / 2) + np.sqrt(np.pi / 2) * special.erfc(r / np.sqrt(2)), area, rtol=1e-12)
    accept = kernels._ziggurat_accept().astype(np.float64)
    tolerance = 2.0**-30  # the packed widths' precision
    assert np.all((accept - 0.5) * width < edges[1:] * (1 + tolerance)) and np.all((accept + 0.5) * width >= edges[1:] * (1 - tolerance))
    assert 0.9957 < np.sum(accept) / 2.0**bits / 1024 < 0.9958  # the first try accepts 99.57 %
    y = -np.linspace(0, 60, 10001)
    np.testing.assert_allclose([kernels._exp(v) for v in y[::50]], np.exp(y[::50]), rtol=2e-15)


def test_read_normals_are_standard_normal_and_independent():
    z = kernels.read_normals(7, 2000, 4, 125)  # 1e6 numbers; columns j and j + 63 share a hash
    n = z.size
    assert abs(z.mean()) < 4 / np.sqrt(n)
    assert abs(z.var() - 1) < 4 * np.sqrt(2 / n)
    # the distribution: Kolmogorov-Smirnov at the 0.1 % level (critical value 1.95 / sqrt(n))
    assert stats.kstest(z.ravel(), "norm").statistic < 1.95 / np.sqrt(n)
    # the tails: fractions beyond 3 and 4 sigma within 4 binomial standard errors
    for sigmas in (3, 4):
        tail = 2 * stats.norm.sf(sigmas)
        assert abs(np.mean(np.abs(z) > sigmas) - tail) < 4 * np.sqrt(tail * (1 - tail) / n)
    # binned chi-square against the normal over 100 equiprobable bins (0.1 % level)
    counts = np.bincount(np.minimum((stats.norm.cdf(z.ravel()) * 100).astype(int), 99), minlength=100)
    assert stats.chisquare(counts).pvalue > 1e-3
    # no correlation between the two numbers of one hash, nor between neighbouring blocks
    for a, b in [(z[..., :62], z[..., 63:]), (z[:, :-1], z[:, 1:])]:
        assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 4 / np.sqrt(a.size)


def test_read_normals_depend_on_the_key_row_and_block():
    z = kernels.read_normals(1, 2, 2, 16)
    assert not np.allclose(z, kernels.read_normals(2, 2, 2, 16))
    np.testing.assert_array_equal(z[1:], kernels.read_normals(1, 1, 2, 16, row0=1))
    assert not np.allclose(z[:, 0], z[:, 1]) and not np.allclose(z[0], z[1])


# --- the fused read and the conversion against the numpy reference -------------------------

def _bias_dependent_operands(rng, batch, blocks, k, p):
    """Voltages with zeros, a level table, level masks plus a common-mode level, and the
    drives the numpy reference needs."""
    table = LevelTable.build(CellLevels(4, "binary").conductances, 0.1)
    voltages = rng.uniform(0, 0.1, size=(batch, blocks, k)) * (rng.uniform(size=(batch, blocks, k)) < 0.5)
    state = rng.integers(0, 4, size=(blocks, k, p))
    variation = np.exp(0.03 * rng.standard_normal((blocks, k, p)))
    masks = (state[:, :, None] == np.arange(4)[:, None]) * variation[:, :, None]
    common_mode = rng.uniform(1e-4, 2e-4, size=p)
    masks = np.concatenate([masks, np.broadcast_to(-common_mode, (blocks, k, 1, p))], axis=2)
    masks2 = np.concatenate([masks[:, :, :4] ** 2, np.zeros((blocks, k, 1, p))], axis=2)
    drives = np.concatenate([voltages[..., None] * table.levels(voltages), voltages[..., None]], axis=-1)
    return voltages, table, np.ascontiguousarray(masks), masks2, drives


def _mirror(rng, p, cols=4):
    """A reference column at the end of every array of ``cols`` columns (its own mirror 0) and
    a mirror ratio for each of the others: ``(mirror, reference)`` of :class:`ReadMatrices`."""
    reference = np.minimum(np.arange(p) // cols * cols + cols - 1, p - 1)
    mirror = np.where(reference == np.arange(p), 0.0, rng.uniform(0.1, 0.6, p))
    return mirror, reference


@pytest.mark.parametrize("bits", [None, 4, 8])
@pytest.mark.parametrize("cells", ["linear", "bias-dependent", "bias-dependent, no common mode", "bias-dependent, mirrored"])
@pytest.mark.parametrize("p", [9, kernels.ACROSS_WIDTH + 6])  # one-hot cells: read across inputs, or array by array
def test_fused_read_equals_the_numpy_reference(bits, cells, p):
    rng = np.random.default_rng(0 if bits is None else bits)
    batch, blocks, k = 37, 5, 4  # inputs: groups of 16, 16 and 5 array by array, one group of 37 across inputs
    if cells == "linear":
        voltages = rng.uniform(-0.1, 0.1, size=(batch, blocks, k)) * (rng.uniform(size=(batch, blocks, k)) < 0.5)
        transfer = rng.uniform(-1e-4, 1e-4, size=(blocks, k, 1, p))
        masks2, drives, extra = rng.uniform(0, 1e-8, size=(blocks, k, 1, p)), None, {}
        masks = transfer
    else:
        voltages, table, masks, masks2, drives = _bias_dependent_operands(rng, batch, blocks, k, p)
        extra = {"segments": table.segments, "per_volt": table.per_volt}
        if cells.endswith("no common mode") or cells.endswith("mirrored"):
            masks, masks2, drives = np.ascontiguousarray(masks[:, :, :4]), masks2[:, :, :4], drives[..., :4]
        if cells.endswith("mirrored"):  # a current mirror subtracts a scaled reference column (no noise of its own)
            extra["mirror"], extra["reference"] = _mirror(rng, p)
    currents = np.einsum("brkl,rklp->brp", voltages[..., None] if drives is None else drives, masks)
    if "mirror" in extra:
        currents = currents - extra["mirror"] * currents[..., extra["reference"]]
    full_scale = np.quantile(np.abs(currents), 0.9, axis=(0, 1))  # some conversions saturate
    adc = None if bits is None else adc_constants(bits, full_scale, True, p)
    noise = {"read_var": 0.05**2, "sense_var": (2e-7) ** 2}
    key = np.uint64(2**64 - 5)
    # the silent arrays (all voltages 0) of an input are summed by table where the sense noise
    # is at most SILENT_SIGMA_MAX codes (4 bits: 0.05-0.2 codes), else converted one by one
    # (8 bits: 0.9-4.6 codes, above 1 in some column)
    assert (kernels.zero_current_pmf(adc, noise["sense_var"]) is not None) == (bits == 4)
    assert np.max(np.sum(~np.any(voltages, axis=-1), axis=1)) > 1
    # one-hot level masks: the kernel squares each cell's current (masks2=None), the reference takes M2
    matrices = kernels.ReadMatrices(masks, None if cells != "linear" else masks2, **extra)
    sums, saturated = kernels.read(voltages, matrices, adc, **noise, key=key, row0=3)
    normals = kernels.reference_normals(key, batch, blocks, p, row0=3)
    uniform = kernels.silent_uniforms(key, batch, p, row0=3)
    expected, expected_saturated = kernels.reference_read(voltages, masks, masks2, adc, normals, drives=drives,
                                                          silent_uniforms=uniform, mirror=extra.get("mirror"),
                                                          reference=extra.get("reference"), **noise)
    if bits is None:
        np.testing.assert_allclose(sums, expected, rtol=1e-10, atol=1e-12 * np.abs(expected).max())
    else:  # code sums: integers, equal unless a rounding error meets a code boundary (~1e-12)
        np.testing.assert_array_equal(sums, expected)
        assert saturated == expected_saturated > 0


@pytest.mark.parametrize("bits", [None, 4, 8])
@pytest.mark.parametrize("p", [9, 12, kernels.ACROSS_WIDTH + 6])
@pytest.mark.parametrize("mirrored", [False, True])
def test_reads_across_inputs_equal_reads_array_by_array(monkeypatch, bits, p, mirrored):
    """Noisy reads of one-hot cells go across inputs (:func:`imclib.kernels._read_across`)
    for narrow arrays and array by array (:func:`imclib.kernels._read`) for wide ones: both
    give the same sums and saturation counts bit for bit, silent arrays (summed by table
    with 4 bits, converted with 8; in a whole group of inputs, in most of one, in a few)
    and a last array with fewer rows included."""
    rng = np.random.default_rng(p)
    batch, blocks, k = 150, 6, 4  # 3 groups of inputs across, 10 array by array
    voltages, table, masks, _, _ = _bias_dependent_operands(rng, batch, blocks, k, p)
    voltages = voltages.reshape(batch, -1)[:, :-1]
    voltages[:70, 4:12] = 0.0  # arrays 1 and 2 silent in a whole group of inputs (0-63)
    voltages[64:110, 12:16] = 0.0  # array 3 silent for 46 of the 64 inputs 64-127: the others take the first lanes
    mirror = dict(zip(("mirror", "reference"), _mirror(rng, p))) if mirrored else {}
    matrices = kernels.ReadMatrices(masks, None, table.segments, table.per_volt, **mirror)
    full_scale = np.quantile(np.abs(kernels.partial_currents(voltages, matrices)), 0.9, axis=(0, 1))
    adc = None if bits is None else adc_constants(bits, full_scale, True, p)
    sense = 1e-7 if mirrored else 2e-7  # mirrored currents span less: less sense noise, so that 4 bits sum silent ones by table
    arguments = {"read_var": 0.05**2, "sense_var": sense**2, "key": np.uint64(2**63 + 11), "row0": 5}
    assert (kernels.zero_current_pmf(adc, arguments["sense_var"]) is not None) == (bits == 4)
    reads = []
    for width in (0, 10**6):  # every array read array by array, then every one across inputs
        monkeypatch.setattr(kernels, "ACROSS_WIDTH", width)
        reads.append(kernels.read(voltages, matrices, adc, **arguments))
    (by_array, saturated_by_array), (across, saturated_across) = reads
    np.testing.assert_array_equal(across, by_array)
    assert saturated_across == saturated_by_array
    assert bits is None or saturated_across > 0


def test_a_common_mode_that_differs_between_rows_is_read_by_the_general_path():
    """The one-pass read adds the common mode once per conversion, ``(sum_i v_i) E_j``: only
    for a common-mode level equal in every row of an array. Masks whose fifth level differs
    between rows are read through ``M`` and ``M2`` instead, and give the reference's sums."""
    rng = np.random.default_rng(5)
    voltages, table, masks, masks2, drives = _bias_dependent_operands(rng, 20, 3, 4, 5)
    extra = {"segments": table.segments, "per_volt": table.per_volt}
    assert kernels.ReadMatrices(masks, None, **extra).one_pass
    masks[:, 2, 4] *= 1.5
    matrices = kernels.ReadMatrices(masks, None, **extra)
    assert not matrices.one_pass
    with pytest.raises(ValueError, match="common-mode level .* must be the same in every row"):
        kernels.one_hot_cells(masks)
    noise = {"read_var": 0.05**2, "sense_var": (2e-7) ** 2}
    sums, _ = kernels.read(voltages, matrices, None, **noise, key=np.uint64(8))
    expected, _ = kernels.reference_read(voltages, masks, masks2, None, kernels.reference_normals(8, 20, 3, 5), drives=drives,
                                         **noise)
    np.testing.assert_allclose(sums, expected, rtol=1e-10, atol=1e-12 * np.abs(expected).max())


def test_convert_equals_the_numpy_reference_and_the_adc_semantics():
    rng = np.random.default_rng(4)
    currents = rng.uniform(-2e-5, 2e-5, size=(40, 3, 6))
    variance = rng.uniform(0, 1e-8, size=currents.shape)
    adc = adc_constants(6, np.full(6, 1.5e-5), True, 6)
    noise = {"read_var": 0.1**2, "sense_var": (1e-7) ** 2}
    sums, saturated = kernels.convert(currents, adc, variance=variance, key=9, **noise)
    normals = kernels.reference_normals(9, 40, 3, 6)
    sigma = np.sqrt(noise["read_var"] * variance + noise["sense_var"])
    noisy = currents + sigma * normals
    codes = np.clip(np.rint((noisy - adc[1]) * adc[2]), 0, adc[3])
    np.testing.assert_array_equal(sums, codes.sum(axis=1))
    assert saturated == np.count_nonzero(np.abs(noisy) > adc[0]) > 0


@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("sense_codes", [0.0, 0.3, 0.99])
def test_silent_sum_tables_equal_repeated_convolution(signed, sense_codes):
    """The table of the sum of m silent conversions is the m-fold ``np.convolve`` of one
    conversion's code distribution (clipped at code 0 when unsigned), but for the dropped
    tails (at most 2^-50 each per step): within 2 m 2^-50 plus rounding, every code."""
    p = 3
    adc = adc_constants(8, np.array([1e-5, 2e-5, 3e-5]), signed, p)
    sense_var = (sense_codes / adc[2].max()) ** 2
    c0, pmf = kernels.zero_current_pmf(adc, sense_var)
    np.testing.assert_allclose(pmf.sum(axis=1), 1.0, rtol=1e-14)
    width = pmf.shape[1] // 2
    counts = np.array([0, 1, 2, 7, 196, 7])
    cdf, start, length, first, guide = kernels.silent_tables(adc, sense_var, counts)
    buckets = np.arange(kernels.SILENT_BUCKETS) / kernels.SILENT_BUCKETS
    for m in (1, 2, 7, 196):
        for j in range(p):
            column = cdf[start[m] + j + p * np.arange(length[m])]
            assert np.all(np.diff(column) >= 0)
            # where a draw starts: at or below its answer, the first entry above u (else the last)
            np.testing.assert_array_equal(guide[m, :, j], np.minimum(np.searchsorted(column, buckets, side="right"), length[m] - 1))
            exact = np.ones(1)
            for _ in range(m):
                exact = np.convolve(exact, pmf[j])
            table = np.diff(cdf[start[m] + j + p * np.arange(length[m])], prepend=0.0)
            offset = int(first[m, j] - m * (c0[j] - width))  # the table's first code in the exact pmf
            assert 0 <= offset and offset + table.size <= exact.size
            assert np.abs(np.pad(table, (offset, exact.size - offset - table.size)) - exact).max() < 2 * m * 2.0**-50 + 1e-14
    assert np.all(length[[0, 3]] == 0)  # no row with 0 or 3 silent arrays: no table


# --- noise statistics: fused path against the numpy path -----------------------------------

@pytest.mark.parametrize("case", ["no ADC", "8-bit ADC", "zero current, 8-bit ADC"])
def test_conversion_noise_statistics_match_the_numpy_path(case):
    """One row block, so every output is one conversion (zero current: seven silent row
    blocks, every output the sum of their seven codes, drawn in one step from the 7-fold
    convolution of the code distribution): the fused path (counter-based normals) and the
    numpy reference path (``numpy.random.Generator``'s normals, every conversion on its own)
    must give the same per-output mean and variance, within 4 standard errors of their
    own samples (which are below 1 % of the variance for 1e6 outputs per column)."""
    rng = np.random.default_rng(5)
    n, k, p = 1_000_000, 4, 2  # 1e6 outputs per column
    blocks = 7 if case.startswith("zero") else 1
    row = np.zeros((1, blocks, k)) if case.startswith("zero") else rng.uniform(0.02, 0.1, size=(1, 1, k))
    voltages = np.broadcast_to(row, (n, blocks, k))
    conductance = rng.uniform(1e-4, 2e-4, size=(blocks, k, 1, p))
    masks, masks2 = conductance - 1.5e-4, conductance**2  # common mode folded in, variance of the cells
    noise = {"read_var": 0.02**2, "sense_var": (1e-7) ** 2}
    currents = np.einsum("brk,rkp->brp", row, masks[:, :, 0])[0, 0]
    sigma = np.sqrt(noise["read_var"] * np.einsum("brk,rkp->brp", row**2, masks2[:, :, 0]) + noise["sense_var"])[0, 0]
    full_scale = {"no ADC": None, "8-bit ADC": np.abs(currents) + 4 * sigma, "zero current, 8-bit ADC": 200 * sigma}[case]
    adc = None if full_scale is None else adc_constants(8, full_scale, True, p)
    # the ADC sees the noise: it spans codes, or (zero current) decides between two codes
    assert adc is None or np.all(sigma * adc[2] > (0.01 if case.startswith("zero") else 1))
    silent = np.count_nonzero(~np.any(row, axis=-1), axis=1)
    assert (kernels.silent_tables(adc, noise["sense_var"], silent)[0].size > 0) == case.startswith("zero")
    fused = kernels.read(voltages, kernels.ReadMatrices(masks, masks2), adc, **noise, key=kernels.stream_key(rng))[0]
    numpy_path = kernels.reference_read(voltages, masks, masks2, adc, rng.standard_normal((n, blocks, p)), **noise)[0]
    for column in range(p):
        a, b = fused[:, column], numpy_path[:, column]
        se_mean = np.sqrt(a.var() / n + b.var() / n)
        assert abs(a.mean() - b.mean()) < 4 * se_mean
        se_variance = np.sqrt(2 / (n - 1)) * np.hypot(a.var(), b.var())
        assert 4 * se_variance < 0.01 * b.var()  # the test resolves 1 %
        assert abs(a.var() - b.var()) < 4 * se_variance


# --- determinism of a noisy read -------------------------------------------------------------

CONFIGS = {
    "default (fused)": CrossbarConfig(),
    "linear, ADC (fused)": CrossbarConfig().with_(nonideal=Nonidealities(programming_sigma=0.03, read_sigma=0.005)),
    "read noise, no ADC (chunked)": CrossbarConfig.quantization_only().with_(
        nonideal=Nonidealities(programming_sigma=0.03, read_sigma=0.005), periphery=Periphery(sense_noise=1e-8)),
}
_SCRIPT = """
import sys, numpy as np
from tests.test_kernels import _noisy_reads
np.save(sys.argv[1], _noisy_reads())
"""


def _noisy_reads() -> np.ndarray:
    """Every config of :data:`CONFIGS`: 70 inputs read twice (seed 3), stacked."""
    rng = np.random.default_rng(1)
    weights, x = rng.normal(size=(30, 11)), rng.uniform(size=(70, 30)) * (rng.uniform(size=(70, 30)) < 0.5)
    reads = []
    for config in CONFIGS.values():
        layer = calibrate(program_layer(weights, config, 0), x)
        generator = np.random.default_rng(3)
        reads += [layer.mvm(x, generator), layer.mvm(x, generator)]
    return np.stack(reads)


def test_same_seed_same_numbers_whatever_the_threads_and_chunks(monkeypatch, tmp_path):
    import numba

    numba.set_num_threads(1)
    one_thread = _noisy_reads()
    env = {**os.environ, "NUMBA_NUM_THREADS": "2", "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path / "two.npy")], cwd=ROOT, env=env, check=True)
    np.testing.assert_array_equal(np.load(tmp_path / "two.npy"), one_thread)
    monkeypatch.setattr(imclib.layer, "_CHUNK_BYTES", 1)  # one input per chunk
    chunked = _noisy_reads()
    pairs = one_thread.reshape(len(CONFIGS), 2, *one_thread.shape[1:])
    for index, (first, second) in enumerate(pairs):
        assert not np.allclose(first, second)  # the second read draws other noise
        # Same noise numbers: the fused reads are bit-identical; the chunked path's read-noise
        # variance is a float32 GEMM whose rounding some BLAS kernels (e.g. Prescott) make
        # depend on the batch, so it may differ by float32 rounding of the noise (1e-7
        # relative), far below what another noise draw changes.
        draw_difference = np.abs(first - second).max()
        assert np.abs(chunked[2 * index : 2 * index + 2] - one_thread[2 * index : 2 * index + 2]).max() < 1e-5 * draw_difference
    np.testing.assert_array_equal(chunked[:4], one_thread[:4])  # the fused configs: bit-identical
    rng = np.random.default_rng(1)
    weights, x = rng.normal(size=(30, 11)), rng.uniform(size=(70, 30))
    layer = calibrate(program_layer(weights, CrossbarConfig(), 0), x)
    assert not np.allclose(layer.mvm(x, 3), layer.mvm(x, 4))


def test_a_read_of_some_rows_is_independent_of_the_chunks_it_is_cut_into():
    rng = np.random.default_rng(2)
    weights, x = rng.normal(size=(30, 11)), rng.uniform(size=(100, 30)) * (rng.uniform(size=(100, 30)) < 0.3)
    layer = calibrate(program_layer(weights, CrossbarConfig(), 0), x)
    _, voltages, _ = layer.row_voltages(x)
    matrices = layer._read_matrices
    assert matrices.one_pass  # the layer's one-hot cells, derived once (whole), and fresh ones (parts)
    adc = adc_constants(8, layer.adc_range, layer.adc_signed, layer.layout.n_physical)
    arguments = {"read_var": 1e-4, "sense_var": 1e-16, "key": 77}
    k = layer.config.rows
    # silent arrays (their codes summed by table) in rows of every part
    silent = ~np.any(np.pad(voltages, ((0, 0), (0, -voltages.shape[1] % k))).reshape(len(voltages), -1, k), axis=2)
    assert kernels.silent_tables(adc, 1e-16, np.count_nonzero(silent, axis=1))[0].size > 0
    assert all(np.any(silent[a:b]) for a, b in [(0, 17), (17, 18), (18, 100)])
    whole = kernels.read(voltages, matrices, adc, **arguments)[0]
    fresh = [kernels.ReadMatrices(matrices.masks, None, matrices.segments, matrices.per_volt) for _ in range(3)]
    parts = [kernels.read(voltages[a:b], m, adc, row0=a, **arguments)[0] for m, (a, b) in zip(fresh, [(0, 17), (17, 18), (18, 100)])]
    np.testing.assert_array_equal(np.vstack(parts), whole)


# --- calibration: percentile by selection --------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 3), (2, 5), (50176, 7), (1001, 4)])
@pytest.mark.parametrize("q", [0.0, 50.0, 99.9, 99.99, 100.0])
def test_percentile_by_selection_equals_numpy_percentile(shape, q):
    rng = np.random.default_rng(shape[0])
    values = np.abs(rng.standard_normal(shape)) * rng.uniform(1, 10, size=shape[1])
    values[: shape[0] // 3, 0] = values[0, 0]  # ties
    np.testing.assert_array_equal(percentile_rows(values, q), np.percentile(values, q, axis=0))


def test_percentile_and_count_of_magnitudes_equal_numpy_on_signed_values():
    rng = np.random.default_rng(8)
    values = rng.standard_normal((300, 7, 5)) * rng.uniform(1, 10, size=5)
    magnitudes = np.abs(values).reshape(-1, 5)
    np.testing.assert_array_equal(percentile_rows(values, 99.0), np.percentile(magnitudes, 99.0, axis=0))
    bound = np.percentile(magnitudes, 90.0, axis=0)
    assert kernels.count_above(values, bound) == np.count_nonzero(magnitudes > bound) > 0
    strided = values.transpose(1, 0, 2)  # a view in another memory order
    assert kernels.count_above(strided, bound) == np.count_nonzero(magnitudes > bound)


def test_streamed_largest_magnitudes_do_not_depend_on_the_blocks_fed():
    """:class:`kernels.Largest` fed block by block (the first blocks shorter than m, ties)
    gives numpy's order statistics and counts above any bound at least the m-th largest."""
    rng = np.random.default_rng(9)
    values = rng.standard_normal((90, 7, 5)) * rng.uniform(1, 10, size=5)
    values[:20, :, 1] = 3.0  # ties
    magnitudes = np.sort(np.abs(values).reshape(-1, 5), axis=0)
    for m in (1, 2, 3, 40, 630):
        largest = kernels.Largest(5, m)
        for a, b in [(0, 1), (1, 33), (33, 90)]:
            largest.add(values[a:b])
        first, second = largest.order_statistics()
        np.testing.assert_array_equal(first, magnitudes[-m])
        np.testing.assert_array_equal(second, magnitudes[-max(m - 1, 1)])
        assert largest.size == values.size
        for bound in (first, (first + second) / 2, second * 1.5):
            assert largest.count_above(bound) == np.count_nonzero(magnitudes > bound)
    with pytest.raises(ValueError, match="bound"):
        largest.count_above(first / 2)
    with pytest.raises(ValueError, match="m must be"):
        kernels.Largest(5, 8).add(values[:1]).order_statistics()


# ---- nearest level: counts below ascending edges --------------------------------------------

@given(st.lists(st.floats(-3, 3, allow_nan=False), min_size=1, max_size=31),
       st.lists(st.one_of(st.floats(-4, 4), st.sampled_from([np.nan, np.inf, -np.inf])), min_size=1, max_size=3000),
       st.integers(1, 7))
@settings(max_examples=200, deadline=None)
def test_counts_below_edges_equal_searchsorted(edges, values, columns):
    edges = np.sort(np.asarray(edges))
    values = np.asarray(values)
    values[: len(values) // 3] = np.resize(edges, len(values) // 3)  # ties: a value on an edge counts below it
    np.testing.assert_array_equal(kernels.count_below(values, edges), np.searchsorted(edges, values))
    # per column, (w - b) / a: the same integers as counting the quotients, and the picked values
    weights = np.resize(values, (-(-len(values) // columns), columns))
    rng = np.random.default_rng(len(values))
    offset, gain = rng.normal(size=columns), rng.uniform(0.5, 2, columns) * rng.choice([-1.0, 1.0], columns)
    with np.errstate(invalid="ignore"):
        expected = np.searchsorted(edges, (weights - offset) / gain)
    levels = np.arange(len(edges) + 1) * 10.0
    counts, picked = kernels.count_below_affine(weights, offset, gain, edges, levels)
    np.testing.assert_array_equal(counts, expected)
    np.testing.assert_array_equal(picked, levels[expected])


def test_counts_below_refuse_unsorted_edges_and_bad_shapes():
    with pytest.raises(ValueError, match="edges must be a 1-D ascending array"):
        kernels.count_below(np.zeros(3), np.array([1.0, 0.0]))
    with pytest.raises(ValueError, match="edges must be a 1-D ascending array"):
        kernels.count_below(np.zeros(3), np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="weights must be 2-D"):
        kernels.count_below_affine(np.zeros(3), 0.0, 1.0, np.array([0.0]), np.zeros(2))
    with pytest.raises(ValueError, match="levels must have len"):
        kernels.count_below_affine(np.zeros((2, 2)), 0.0, 1.0, np.array([0.0]), np.zeros(3))
