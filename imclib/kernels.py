"""The compiled inner loops of a read, each with the plain-numpy reference it must match.

A read of a tiled layer, per input row ``b``, row block (array) ``r`` and physical column
``j`` (amperes, volts, siemens):

1. partial current ``I_brj = sum_{i,q} d_briq M_riqj``: the row drives ``d`` meet the read
   matrices ``M``. Linear cells have one "level", ``d_bri0 = V_bri`` and ``M_ri0j = T_ij``
   (the transfer matrix, common mode folded in). Bias-dependent cells have one drive per
   level ``q``, ``d_briq = V_bri G_q(|V_bri|)`` (:class:`imclib.array.LevelTable`), and the
   masks ``M_riqj = (q_ij == q) D_ij``, plus a last level ``d = V``, ``M = -G0_j`` for the
   common-mode current; with a reference column's current mirror, then
   ``I_brj -= m_j I_br,ref(j)`` (:func:`_mirrored`);
2. noise: ``I_brj + sigma_brj z_brj`` with ``sigma^2 = R s_sense^2 + s_read^2 sum_{i,q}
   d_briq^2 M2_riqj`` (``M2 = G_ij^2`` or ``(q_ij == q) D_ij^2``, none for the common-mode
   level): Gaussian read noise per
   cell and the sense amplifier's noise in one variance per conversion, ``z`` standard
   normal from a counter-based stream (:func:`read_normals`);
3. ADC: codes ``c = clip(rint((I - low) K), 0, 2^bits - 1)`` with ``low = -I_fs`` (bipolar)
   or 0 and ``K = (2^bits - 1) / (I_fs - low)`` codes per ampere, one full scale per
   column; a conversion saturates when ``|I| > I_fs``;
4. digital sum over the row blocks, ``sum_r (low + c_r / K) = R low + sum_r c_r / K``.

:func:`read` does all four in one pass over groups of inputs (parallel over the groups
with numba, ``numba.set_num_threads``), never storing a partial current; the per-input
work skips rows whose voltage is 0, and a conversion whose array sees no voltage at all
(a "silent" one) carries only sense noise: its code is iid per column
(:func:`zero_current_pmf`), so the ``m`` silent conversions of one input row and column are
not converted one by one: the read counts them, then draws their sum in one step from one
uniform number, by the m-fold convolution of that code distribution (:func:`silent_tables`,
:func:`_silent_sums`).
The sums over (row, level) go four matrix rows per pass (:func:`_accumulate`); for one-hot
4-level cells the read-noise variance is the sum of the squared cell currents, summed in the
same pass as the current (:func:`_accumulate_cells`), and arrays of at most
:data:`ACROSS_WIDTH` columns are read with the inputs side by side (:func:`_read_across`:
loops over 64 inputs rather than over a few columns, the same numbers). :func:`convert` does 2-4 on
partial currents computed elsewhere (nonlinear circuit solves), :func:`partial_currents`
step 1 alone (calibration). Random numbers depend only on (key, input row, block or silent sum, column),
so a read gives the same numbers whatever the thread count or chunk size. Each kernel has
a plain-numpy reference (``reference_*``) that ``tests/test_kernels.py`` compares it with;
:func:`largest` selects the order statistics of the ADC calibration.
"""

from __future__ import annotations

import dataclasses
import decimal
import functools
import math

import numba
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic
from scipy.special import ndtr

# ---- counter-based standard normals ---------------------------------------------------

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_LOW32 = np.uint64(0xFFFFFFFF)
_SILENT = np.uint64(0x5EED5EED5EED5EED)  # keys the silent sums' stream (:func:`silent_uniforms`)
_EXPONENT_52 = np.uint64(0x4330000000000000)  # the bits of 2^52: int -> float by bit tricks
_MANTISSA = np.uint64((1 << 52) - 1)
_ONE = np.uint64(0x3FF0000000000000)
_LN2 = math.log(2.0)
_SQRT_HALF = math.sqrt(0.5)
# ln(1 + x) on [sqrt(1/2) - 1, sqrt(2) - 1]: least-squares Chebyshev fit of degree 12 in powers
# of x, coefficients of x^1 .. x^12 (largest error 6e-11): no division, so the loop vectorises
_LOG1P_SERIES = (1.0000000002581686, -0.5000000077820854, 0.33333327734293566, -0.24999900089840585,
                 0.20000288183647075, -0.16671424135218907, 0.14282201276102638, -0.12397888919881438,
                 0.11049219973050926, -0.10965993333408573, 0.10641818464966533, -0.057459178074605426)
# exp(r) on |r| <= ln(2) / 2: Taylor coefficients 1 / n!, n = 0..13 (error below 1e-16)
_EXP_SERIES = tuple(1.0 / math.factorial(n) for n in range(14))
_LN2_HIGH = float.fromhex("0x1.62e42fefa3800p-1")  # ln 2 in two parts (Cody-Waite): k ln2_high exact
_LN2_LOW = float.fromhex("0x1.ef35793c76730p-45")


_LAYER_BITS = 10
_LAYERS = 1 << _LAYER_BITS
_ABSCISSA_BITS = 31 - _LAYER_BITS  # of the 32 bits of a first try: layer, sign, abscissa
_ACCEPT_MASK = np.uint64((1 << _ABSCISSA_BITS) - 1)
_R, _AREA = "4.038849846109504563", "0.001226324646353088"  # r and v of 1024 layers, 19 digits


def _ziggurat_tables() -> tuple:
    """Marsaglia and Tsang's ziggurat of the standard normal's right half, ``f(x) =
    exp(-x^2 / 2)`` (unnormalized), in 1024 layers of equal area ``v``, computed in 40-digit
    decimal arithmetic (the same float64 tables on every machine).

    Edges ``x_1 = r`` (the tail's start), ``x_{i+1} = sqrt(-2 ln(v / x_i + f(x_i)))``,
    ``x_1024 = 0``, and ``x_0 = v / f(r)`` (the base strip, a rectangle of height ``f(r)``
    plus the tail beyond ``r``, ``v = r f(r) + int_r^inf f``); layer ``i`` spans heights
    ``f(x_i) .. f(x_{i+1})`` over ``x`` in ``[0, x_i]``. ``r`` and ``v`` (:data:`_R`,
    :data:`_AREA`) solve the recursion, given to 19 digits: the top layer's area equals ``v``
    to 1e-13 relative. Returns ``(width, height)``. ``width`` is one packed float64 per layer, so that a first try
    reads one table entry: ``x_i 2^-21`` with the low 21 bits of its mantissa replaced by
    ``accept_i``, the 21-bit integer ``m`` below which ``(m + 1/2) x_i 2^-21 < x_{i+1}``
    (under the curve: accepted at once); the entry is ``x_i 2^-21`` to 2^-31 relative, the
    abscissas' scale. ``height_i = f(x_i)`` (1025 entries, ``height_1024 = 1``).
    """
    context = decimal.Context(prec=40)
    r, area = decimal.Decimal(_R), decimal.Decimal(_AREA)
    f = lambda x: context.exp(-x * x / 2)  # noqa: E731
    edges = [area / f(r), r]
    for _ in range(_LAYERS - 2):
        edges.append(context.sqrt(-2 * context.ln(area / edges[-1] + f(edges[-1]))))
    edges.append(decimal.Decimal(0))
    scale = decimal.Decimal(2) ** _ABSCISSA_BITS
    ratio = [edges[i + 1] * scale / edges[i] - decimal.Decimal("0.5") for i in range(_LAYERS)]  # m < ratio_i
    accept = np.array([int(q.to_integral_value(decimal.ROUND_CEILING)) for q in ratio], dtype=np.uint64)
    width = np.array([float(x / scale) for x in edges[:-1]])
    packed = (width.view(np.uint64) & ~_ACCEPT_MASK) | accept
    height = np.array([float(f(x)) for x in edges])
    return packed.view(np.float64), height


_ZIGGURAT_WIDTH, _ZIGGURAT_HEIGHT = _ziggurat_tables()
_ZIGGURAT_R = float(_R)  # where the tail starts, x_1 = r
_SLOW = np.uint64(0xD1B54A32D192ED03)  # keys a number's own stream for the ziggurat's rare retries


def _ziggurat_accept() -> np.ndarray:
    """The acceptance bounds ``accept_i`` held in the packed widths (int64, numpy side)."""
    return (_ZIGGURAT_WIDTH.view(np.uint64) & _ACCEPT_MASK).astype(np.int64)


@intrinsic
def _bits(typingctx, x):  # pragma: no cover - compiled
    """The 64 bits of a float64, as uint64 (no conversion)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.uint64(types.float64), codegen


@intrinsic
def _float(typingctx, x):  # pragma: no cover - compiled
    """The float64 with the bits of a uint64 (no conversion)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.uint64), codegen


@intrinsic
def _fma(typingctx, a, b, c):  # pragma: no cover - compiled
    """``a b + c`` rounded once (LLVM's ``llvm.fma``: the same bits on every CPU, in one
    instruction on those with FMA)."""
    def codegen(context, builder, signature, args):
        double = ir.DoubleType()
        return builder.call(builder.module.declare_intrinsic("llvm.fma", [double], ir.FunctionType(double, [double] * 3)), args)
    return types.float64(types.float64, types.float64, types.float64), codegen


@numba.njit(inline="always", error_model="numpy")
def _mix(x):  # pragma: no cover - compiled
    """SplitMix64's finalizer: a bijective 64-bit hash."""
    x = (x ^ (x >> np.uint64(30))) * _MIX1
    x = (x ^ (x >> np.uint64(27))) * _MIX2
    return x ^ (x >> np.uint64(31))


@numba.njit(inline="always", error_model="numpy")
def _unit(bits32):  # pragma: no cover - compiled
    """``(n + 1/2) 2^-32`` for a 32-bit integer ``n``: in (0, 1), never 0 or 1."""
    return (_float(bits32 | _EXPONENT_52) - 2.0**52 + 0.5) * 2.0**-32


@numba.njit(inline="always", error_model="numpy")
def _log(u):  # pragma: no cover - compiled
    """``ln u`` for normal positive ``u``: ``u = 2^e m``, ``m`` in [sqrt(1/2), sqrt(2)),
    ``ln u = e ln 2 + ln(1 + (m - 1))`` (polynomial :data:`_LOG1P_SERIES`, error < 1e-10)."""
    bits = _bits(u)
    exponent = _float((bits >> np.uint64(52)) | _EXPONENT_52) - 2.0**52 - 1023.0
    m = _float((bits & _MANTISSA) | _ONE)
    high = m > 1.0 / _SQRT_HALF
    x = (m * 0.5 if high else m) - 1.0
    exponent = exponent + 1.0 if high else exponent
    c, x2 = _LOG1P_SERIES, x * x  # pairs of terms in x, then Horner in x^2, with fused multiply-adds
    series = _fma(x2, _fma(x, c[11], c[10]), _fma(x, c[9], c[8]))
    series = _fma(x2, series, _fma(x, c[7], c[6]))
    series = _fma(x2, series, _fma(x, c[5], c[4]))
    series = _fma(x2, series, _fma(x, c[3], c[2]))
    series = _fma(x2, series, _fma(x, c[1], c[0]))
    return _fma(x, series, exponent * _LN2)


@numba.njit(inline="always", error_model="numpy")
def _exp(y):  # pragma: no cover - compiled
    """``e^y`` for ``-700 < y <= 0``: ``y = k ln 2 + r``, ``|r| <= ln(2) / 2`` (``k ln 2`` in
    two parts), ``e^y = 2^k exp(r)`` (polynomial :data:`_EXP_SERIES` with fused multiply-adds,
    error below 1e-15 relative), ``2^k`` from its bits."""
    k = np.rint(y * (1.0 / _LN2))
    r = _fma(k, -_LN2_LOW, _fma(k, -_LN2_HIGH, y))
    c, r2 = _EXP_SERIES, r * r  # Estrin's scheme: pairs in r, then in r^2 and r^4 (a short dependency chain)
    r4 = r2 * r2
    p01, p23, p45, p67 = _fma(r, c[1], c[0]), _fma(r, c[3], c[2]), _fma(r, c[5], c[4]), _fma(r, c[7], c[6])
    p89, p1011, p1213 = _fma(r, c[9], c[8]), _fma(r, c[11], c[10]), _fma(r, c[13], c[12])
    low = _fma(r4, _fma(r2, p67, p45), _fma(r2, p23, p01))
    high = _fma(r4, p1213, _fma(r2, p1011, p89))
    series = _fma(r4 * r4, high, low)
    return series * _float(np.uint64(np.int64(k) + 1023) << np.uint64(52))


@numba.njit(inline="always", error_model="numpy")
def _ziggurat_fast(bits32):  # pragma: no cover - compiled
    """The ziggurat's first try from 32 random bits: layer ``i`` (low 10 bits), sign (bit
    10) and ``m`` (high 21 bits); ``+-(m + 1/2) width_i``, or NaN when ``m >= accept_i`` (the
    point may lie outside the curve: :func:`_ziggurat_slow` decides). One table entry per
    number (``width_i`` holds ``accept_i``), integers to floats by their bits, the sign as a
    bit and the table a compile-time constant (loads that no store can alias), so that the
    loop over numbers vectorises (with one gather)."""
    width = _ZIGGURAT_WIDTH[np.int64(bits32 & np.uint64(_LAYERS - 1))]
    m = bits32 >> np.uint64(_LAYER_BITS + 1)
    x = _float(_bits((_float(m | _EXPONENT_52) - 2.0**52 + 0.5) * width) | ((bits32 >> np.uint64(_LAYER_BITS)) << np.uint64(63)))
    return x if m < (_bits(width) & _ACCEPT_MASK) else np.nan


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _ziggurat_slow(bits32, stream):  # pragma: no cover - compiled
    """A standard normal from the ziggurat (:func:`_ziggurat_tables`) starting with the 32
    bits of :func:`_ziggurat_fast`, drawing from the hashes ``mix(stream + n phi)``, n = 0, 1,
    ... whenever it needs more: in the base layer beyond ``r``, Marsaglia's tail ``r + a``
    with ``a = -ln(u) / r``, accepted when ``-2 ln(u') > a^2``; in layer ``i >= 1`` beyond
    ``x_{i+1}``, ``x`` is accepted when ``f(x_i) + u (f(x_{i+1}) - f(x_i)) < exp(-x^2 / 2)``;
    else a new first try from the next hash's high 32 bits."""
    width, height = _ZIGGURAT_WIDTH, _ZIGGURAT_HEIGHT
    n = 0
    while True:
        i = bits32 & np.uint64(_LAYERS - 1)
        m = bits32 >> np.uint64(_LAYER_BITS + 1)
        negative = (bits32 >> np.uint64(_LAYER_BITS)) & np.uint64(1)
        x = (np.float64(m) + 0.5) * width[i]
        if m < (_bits(width[i]) & _ACCEPT_MASK):
            break
        h = _mix(stream + np.uint64(n) * _GOLDEN)
        n += 1
        if i == 0:
            a = -_log(_unit(h >> np.uint64(32))) * (1.0 / _ZIGGURAT_R)
            if -2.0 * _log(_unit(h & _LOW32)) > a * a:
                x = _ZIGGURAT_R + a
                break
        elif height[i] + _unit(h >> np.uint64(32)) * (height[i + 1] - height[i]) < _exp(-0.5 * x * x):
            break
        bits32 = _mix(stream + np.uint64(n) * _GOLDEN) >> np.uint64(32)
        n += 1
    return -x if negative else x


@numba.njit(inline="always", error_model="numpy")
def _completed(h, second):  # pragma: no cover - compiled
    """The normal that the ziggurat's first try left open (:func:`_ziggurat_slow`): from
    the high 32 bits of the hash ``h`` (``second`` False) or its low 32 bits, with the
    number's own stream for the retries."""
    bits32 = h & _LOW32 if second else h >> np.uint64(32)
    return _ziggurat_slow(bits32, _mix(h ^ (_SLOW + np.uint64(second))))


@numba.njit(inline="always", error_model="numpy")
def _list_open(values, n, offset, open_, n_open):  # pragma: no cover - compiled
    """Append ``offset + u`` to ``open_[n_open:]`` for every NaN ``values[u]``, ``u < n``, in
    order; returns the new count. Eight entries at a time, scanned one by one only where one
    of them is NaN (almost never: 0.43 % of the numbers)."""
    for c in range(0, n - n % 8, 8):
        nan = False
        for u in range(8):
            nan |= values[c + u] != values[c + u]
        if nan:
            for u in range(c, c + 8):
                open_[n_open] = offset + u
                n_open += values[u] != values[u]
    for u in range(n - n % 8, n):
        open_[n_open] = offset + u
        n_open += values[u] != values[u]
    return n_open


@numba.njit(inline="always", error_model="numpy")
def _sigma(read_var, variance, sense_var):  # pragma: no cover - compiled
    """Noise of one conversion (amperes): ``sigma = sqrt(read_var variance + sense_var)``."""
    return math.sqrt(read_var * variance + sense_var)


@numba.njit(inline="always", error_model="numpy")
def _noise(stream, variance, read_var, sense_var, out, open_):  # pragma: no cover - compiled
    """``out[j] = sigma_j z_j``, ``sigma_j^2 = read_var variance_j + sense_var``, of one
    conversion row with hash stream ``stream`` (:func:`read_normals`): the two 32-bit halves
    of ``mix(stream + t phi)`` give ``z_t`` and ``z_{H + t}`` by the ziggurat's first try
    (:func:`_ziggurat_fast`, a loop that vectorises); the 0.43 % that it leaves open (NaN) are
    listed in the work array ``open_`` (:func:`_list_open`) and completed one after the other
    (:func:`_completed`: independent, so the processor overlaps them). ``variance``,
    ``out`` and ``open_`` of even length ``2 H`` (the caller uses the first ``p``)."""
    half = out.shape[0] // 2
    n_open = 0
    for t in range(half):
        h = _mix(stream + np.uint64(t) * _GOLDEN)
        za, zb = _ziggurat_fast(h >> np.uint64(32)), _ziggurat_fast(h & _LOW32)
        out[t] = _sigma(read_var, variance[t], sense_var) * za
        out[half + t] = _sigma(read_var, variance[half + t], sense_var) * zb
        n_open += (za != za) | (zb != zb)
    if n_open == 0:
        return
    n_open = _list_open(out, out.shape[0], 0, open_, 0)
    for index in range(n_open):
        j = open_[index]
        t = j - half if j >= half else j
        out[j] = _sigma(read_var, variance[j], sense_var) * _completed(_mix(stream + np.uint64(t) * _GOLDEN), j >= half)


def stream_key(rng: np.random.Generator) -> np.uint64:
    """A 64-bit key for one read, drawn from ``rng`` (the read's only draw from it)."""
    return rng.integers(2**64, dtype=np.uint64)


@numba.njit(inline="always", error_model="numpy")
def _stream(key, row, blocks, r, p):  # pragma: no cover - compiled
    """Hash stream of input row ``row``, block ``r``: ``key + ((row blocks + r) p) phi``."""
    return key + np.uint64((row * blocks + r) * p) * _GOLDEN


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _read_normals(key, row0, out):  # pragma: no cover - compiled
    batch, blocks, p = out.shape
    z, ones, open_ = np.empty(p + p % 2), np.ones(p + p % 2), np.empty(p + p % 2, dtype=np.int64)
    for b in range(batch):
        for r in range(blocks):
            _noise(_stream(key, row0 + b, blocks, r, p), ones, 1.0, 0.0, z, open_)
            out[b, r] = z[:p]


def read_normals(key, batch: int, blocks: int, p: int, row0: int = 0) -> np.ndarray:
    """The standard normals ``z_brj`` of a read (:func:`read`), shape (batch, blocks, p).

    Counter-based ziggurat: with ``H = ceil(p / 2)``, conversion ``(b, r, j)`` of input
    row ``n = row0 + b`` hashes the counter ``c = (n R + r) p + (j mod H)`` to
    ``h = mix(key + c phi)`` (SplitMix64: Weyl step ``phi = 0x9E3779B97F4A7C15``, then its
    64-bit finalizer ``mix``); the high 32 bits of ``h`` give ``z`` for ``j < H``, the low 32
    bits otherwise, by the ziggurat of 1024 layers (:func:`_ziggurat_tables`; Marsaglia and
    Tsang 2000): layer from 10 bits, sign from 1, the abscissa ``(m + 1/2) x_i 2^-21`` from
    21, accepted at once under the curve (99.57 % of the numbers); the others
    (:func:`_ziggurat_slow`) draw further hashes ``mix(s + n phi)`` of their own stream
    ``s = mix(h XOR (0xD1B54A32D192ED03 + [j >= H]))``. Exactly normal but for the 21-bit
    grid of the abscissa within a layer and the 32-bit uniforms of the tail (``|z| <= 10``);
    the tables are computed in decimal arithmetic and ``ln``, ``exp`` are polynomials with
    fused multiply-adds (:func:`_log`, :func:`_exp`), so every CPU gives the same bits.
    Every number depends only on (key, input row, block, column): not on threads or chunks.
    """
    out = np.empty((batch, blocks, p))
    _read_normals(np.uint64(key), int(row0), out)
    return out


def _reference_hashes(key, batch: int, blocks: int, p: int, row0: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plain-numpy hashes of a read: ``(hi, lo)`` 32-bit halves of ``mix(key + c phi)`` for
    every conversion's counter ``c`` (:func:`read_normals`), and whether ``j < H``."""
    half = (p + 1) // 2
    j = np.arange(p)
    counter = ((row0 + np.arange(batch))[:, None, None] * blocks + np.arange(blocks)[:, None]) * p + j % half
    with np.errstate(over="ignore"):
        h = _reference_mix(np.uint64(key) + counter.astype(np.uint64) * _GOLDEN)
    return h >> np.uint64(32), h & _LOW32, j < half


def _reference_mix(h: np.ndarray) -> np.ndarray:
    """Plain-numpy :func:`_mix` (uint64, wrapping)."""
    with np.errstate(over="ignore"):
        h = (h ^ (h >> np.uint64(30))) * _MIX1
        h = (h ^ (h >> np.uint64(27))) * _MIX2
        return h ^ (h >> np.uint64(31))


def _reference_ziggurat(bits: int, stream: int) -> float:
    """Plain-Python :func:`_ziggurat_slow` (numpy's ``log`` and ``exp``) of 32 bits and a
    retry stream, both as Python integers."""
    width, accept, height = _ZIGGURAT_WIDTH, _ziggurat_accept(), _ZIGGURAT_HEIGHT
    hashes = (int(_reference_mix(np.uint64((stream + n * int(_GOLDEN)) % 2**64))) for n in range(2**31))
    unit = lambda bits: (bits + 0.5) * 2.0**-32  # noqa: E731
    while True:
        i, negative, m = bits & (_LAYERS - 1), (bits >> _LAYER_BITS) & 1, bits >> (_LAYER_BITS + 1)
        x = (m + 0.5) * width[i]
        if m < accept[i]:
            break
        h = next(hashes)
        if i == 0:
            a = -np.log(unit(h >> 32)) / _ZIGGURAT_R
            if -2.0 * np.log(unit(h & 0xFFFFFFFF)) > a * a:
                x = _ZIGGURAT_R + a
                break
        elif height[i] + unit(h >> 32) * (height[i + 1] - height[i]) < np.exp(-0.5 * x * x):
            break
        bits = next(hashes) >> 32
    return -x if negative else x


def reference_normals(key, batch: int, blocks: int, p: int, row0: int = 0) -> np.ndarray:
    """Plain-numpy :func:`read_normals` (numpy's ``log`` and ``exp`` where the ziggurat's
    first try does not decide)."""
    hi, lo, first = _reference_hashes(key, batch, blocks, p, row0)
    with np.errstate(over="ignore"):
        h = (hi << np.uint64(32)) | lo
    bits = np.where(first, hi, lo).astype(np.int64)
    layer, m = bits & (_LAYERS - 1), bits >> (_LAYER_BITS + 1)
    z = (m + 0.5) * _ZIGGURAT_WIDTH[layer] * np.where((bits >> _LAYER_BITS) & 1, -1.0, 1.0)
    for index in zip(*np.nonzero(m >= _ziggurat_accept()[layer])):
        stream = _reference_mix(h[index] ^ (_SLOW + np.uint64(not first[index[-1]])))
        z[index] = _reference_ziggurat(int(bits[index]), int(stream))
    return z


# ---- noise, ADC and digital sum of one conversion row -----------------------------------

@numba.njit(inline="always", error_model="numpy")
def _saturates(value, fs):  # pragma: no cover - compiled
    """Whether a conversion of ``value`` (amperes) lies beyond the full scale ``+-fs``."""
    return (value > fs) | (value < -fs)


@numba.njit(inline="always", error_model="numpy")
def _code(value, low, per_ampere, top):  # pragma: no cover - compiled
    """ADC code of ``value`` (amperes): ``rint(clip((value - low) K, 0, top))``."""
    return np.rint(min(max((value - low) * per_ampere, 0.0), top))


@numba.njit(inline="always", error_model="numpy")
def _convert_row(current, variance, read_var, sense_var, stream, z, open_, fs, low, per_ampere, top, out):  # pragma: no cover
    """Steps 2-4 of the module docstring for one (input, block): ``out += ADC(I + sigma z)``
    (``top = 0``: no ADC, ``out += I + sigma z``); returns the saturated conversions.
    ``variance`` and the work arrays ``z``, ``open_`` of even length (:func:`_noise`); ``z``
    all 0 in a read without noise (``sigma = 0``), which leaves it so."""
    if read_var > 0.0 or sense_var > 0.0:
        _noise(stream, variance, read_var, sense_var, z, open_)
    if top == 0.0:  # two loops, not one with a branch: the compiler would run both sides, masked
        for j in range(current.shape[0]):
            out[j] += current[j] + z[j]
        return 0
    over = 0
    for j in range(current.shape[0]):
        value = current[j] + z[j]
        over += _saturates(value, fs[j])
        out[j] += _code(value, low[j], per_ampere[j], top)
    return over


@numba.njit(inline="always", error_model="numpy")
def _silent_key(key):  # pragma: no cover - compiled
    """Key of the silent sums' stream (:func:`silent_uniforms`), apart from the conversions'."""
    return _mix(key ^ _SILENT)


@numba.njit(inline="always", error_model="numpy")
def _unit53(h):  # pragma: no cover - compiled
    """``(n + 1/2) 2^-53`` for the top 53 bits ``n`` of a 64-bit hash: in (0, 1)."""
    return (np.float64(h >> np.uint64(11)) + 0.5) * 2.0**-53


@numba.njit(inline="always", error_model="numpy")
def _add_silent_sums(key, row, m, cdf, start, length, first, guide, out):  # pragma: no cover - compiled
    """``out[j] += S_j``: the sum of the codes of the ``m`` silent conversions of input row
    ``row`` in column ``j``, by inverse CDF of the m-fold table (:func:`silent_tables`) at
    the uniform ``u_j`` of (row, j) (:func:`silent_uniforms`): the first entry ``t`` of the
    nondecreasing CDF ``C`` (``n`` entries) with ``C_t > u_j``, else the last. The search
    starts at the guide entry of ``u_j``'s bucket, ``t_g = min(#{t : C_t <= g / G}, n - 1)``
    for ``g = floor(u_j G)`` (at or below the answer), and steps forward while ``C_t <= u_j``:
    about one step per draw."""
    p = out.shape[0]
    stream = _silent_key(key) + np.uint64(row * p) * _GOLDEN
    base, last, buckets = start[m], length[m] - 1, guide.shape[1]
    for j in range(p):
        u = _unit53(_mix(stream + np.uint64(j) * _GOLDEN))
        t = guide[m, int(u * buckets), j]
        while t < last and cdf[base + t * p + j] <= u:
            t += 1
        out[j] += first[m, j] + t


@numba.njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def _silent_sums(key, row0, counts, order, cdf, start, length, first, guide, out):  # pragma: no cover - compiled
    """``out[b] += S_b`` (:func:`_add_silent_sums`) for the input rows ``b`` with
    ``counts[b] > 0`` silent arrays, in ``order`` (sorted by count, so that one count's
    table serves consecutive rows from cache; the sums do not depend on the order)."""
    for group in numba.prange((order.shape[0] + GROUP - 1) // GROUP):
        for b in order[group * GROUP : group * GROUP + GROUP]:
            if counts[b]:
                _add_silent_sums(key, row0 + b, counts[b], cdf, start, length, first, guide, out[b])


@numba.njit(inline="always", error_model="numpy")
def _mirrored(current, mirror, reference, n):  # pragma: no cover - compiled
    """``I_jw -= m_j I_ref(j)w`` for the columns ``j`` with a mirror ``m_j`` (none when
    ``mirror`` is empty) and the first ``n`` inputs ``w`` of ``current`` (p, inputs); a
    reference column has ``m = 0``, so every ``I_ref`` is read unchanged."""
    for j in range(mirror.shape[0]):
        if mirror[j] != 0.0:
            row, ref_row, m = current[j], current[reference[j]], mirror[j]
            for w in range(n):
                row[w] -= m * ref_row[w]


@numba.njit(inline="always", error_model="numpy")
def _accumulate(matrix, rows, weights, n, out):  # pragma: no cover - compiled
    """``out[j] = sum_{t < n} weights[t] matrix[rows[t], j]``: four rows per pass over ``out``
    (one load and store of ``out`` per four products), then the remainder; entries of
    ``out`` past the matrix's width are 0."""
    out[:] = 0.0
    p = matrix.shape[1]
    t = 0
    while t + 4 <= n:
        a, b, c, d = matrix[rows[t]], matrix[rows[t + 1]], matrix[rows[t + 2]], matrix[rows[t + 3]]
        wa, wb, wc, wd = weights[t], weights[t + 1], weights[t + 2], weights[t + 3]
        for j in range(p):
            out[j] += (wa * a[j] + wb * b[j]) + (wc * c[j] + wd * d[j])
        t += 4
    for t in range(t, n):
        row, w = matrix[rows[t]], weights[t]
        for j in range(p):
            out[j] += w * row[j]


@numba.njit(inline="always", error_model="numpy")
def _accumulate_cells(state, deviation, common, rows, drives, n, current, variance):  # pragma: no cover - compiled
    """Both sums of one array in one pass, for 4-level cells with one-hot masks (each cell's
    drive meets one level), from the cells' states ``q_ij`` and deviations ``D_ij`` (the
    one nonzero mask entry, :func:`one_hot_cells`): per driven cell row ``i = rows[t]``
    (drives ``drives[t] = (d_i0 .. d_i3, v_i)``), ``c_ij = d_(i, q_ij) D_ij``, the current of
    cell (i, j), then ``current_j = sum_i c_ij + (sum_i v_i) E_j`` (``E = -G0_j``, the
    common-mode level of every row; 0 without one) and ``variance_j = sum_i c_ij^2``, the
    ``sum_{i,q} d_iq^2 M2_(i,q)j`` of the module docstring with ``M2 = M^2``. A select
    instead of four products: 9 bytes per cell read instead of 40, the same cell currents
    bit for bit as the four-level products ``(d_0 M_0 + d_1 M_1) + (d_2 M_2 + d_3 M_3)``
    (three of them exact zeros)."""
    p = state.shape[1]
    if n == 0:
        current[:] = 0.0
        variance[:p] = 0.0
    total = 0.0
    for t in range(n):
        i = rows[t]
        d0, d1, d2, d3 = drives[t, 0], drives[t, 1], drives[t, 2], drives[t, 3]
        total += drives[t, 4]
        q, dev = state[i], deviation[i]
        if t == 0:  # the first row starts both sums from 0: no pass to clear them
            for j in range(p):
                level = q[j]
                cell = (d0 if level == 0 else d1 if level == 1 else d2 if level == 2 else d3) * dev[j]
                current[j], variance[j] = 0.0 + cell, 0.0 + cell * cell
            continue
        for j in range(p):
            level = q[j]
            cell = (d0 if level == 0 else d1 if level == 1 else d2 if level == 2 else d3) * dev[j]
            current[j] += cell
            variance[j] += cell * cell
    for j in range(p):
        current[j] += total * common[j]


def _common_mode_uniform(masks: np.ndarray) -> bool:
    """Whether the fifth (common-mode) level of masks (blocks, k, 5, p) is the same in every
    row of an array; True for 4-level masks (no common mode)."""
    return masks.shape[2] == 4 or not np.any(masks[:, 1:, 4] != masks[:, :1, 4])


def one_hot_cells(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(q, D, E)`` of one-hot 4-level masks (blocks, k, 4 or 5, p): the level of each
    cell's nonzero entry (int8) and that entry (0 where none), (blocks, k, p), and the fifth,
    common-mode level (blocks, p; zeros without it), the same in every row of an array."""
    if np.any(np.count_nonzero(masks[:, :, :4], axis=2) > 1):
        raise ValueError("masks must be one-hot over their 4 levels (at most one nonzero entry per cell)")
    state = np.argmax(masks[:, :, :4] != 0, axis=2).astype(np.int8)
    deviation = np.ascontiguousarray(masks[:, :, :4].sum(axis=2), dtype=np.float64)
    if not _common_mode_uniform(masks):
        raise ValueError("masks' common-mode level (the fifth) must be the same in every row of an array")
    common = masks[:, 0, 4] if masks.shape[2] == 5 else np.zeros((masks.shape[0], masks.shape[3]))
    return state, deviation, np.ascontiguousarray(common, dtype=np.float64)


_NO_MIRROR, _NO_REFERENCE = np.zeros(0), np.zeros(0, dtype=np.int64)  # no current mirror (:class:`ReadMatrices`)
LINEAR = np.zeros((1, 2, 0))
"""``segments`` of linear cells: no level table, the voltage is the only drive."""
LINEAR.flags.writeable = False


@dataclasses.dataclass(frozen=True, eq=False)
class ReadMatrices:
    """What a read (:func:`read`) of one tiled layer takes from its cells (module docstring).

    ``masks`` (blocks, k, L, p): read matrices ``M`` (siemens, or dimensionless masks),
    ``L = N`` levels of ``segments`` plus one if the voltage itself is a drive. ``masks2``
    (blocks, k, L2, p) or None: variance kernels ``M2`` of the first ``L2 <= L`` levels (the
    others carry no read noise: the common mode); None for one-hot masks (at most one
    nonzero level per cell, ``M2 = M^2`` over the ``N >= 1`` levels of ``segments``).
    ``segments``, ``per_volt``: the level table of bias-dependent cells (:func:`level_drives`),
    :data:`LINEAR` otherwise. ``mirror`` (p,) and ``reference`` (p, int): a current mirror
    subtracts ``mirror_j`` times the current of physical column ``reference_j`` of the same
    array from column ``j``'s (:func:`_mirrored`; a reference column mirrors nothing), after
    the sums of ``M`` and without noise of its own; empty (the default) for none.
    """

    masks: np.ndarray
    masks2: np.ndarray | None
    segments: np.ndarray = dataclasses.field(default_factory=lambda: LINEAR)
    per_volt: float = 0.0
    mirror: np.ndarray = dataclasses.field(default_factory=lambda: _NO_MIRROR)
    reference: np.ndarray = dataclasses.field(default_factory=lambda: _NO_REFERENCE)

    def __post_init__(self):
        shape, shape2 = self.masks.shape, None if self.masks2 is None else self.masks2.shape
        if len(shape) != 4 or shape2 is not None and (len(shape2) != 4 or shape2[:2] + shape2[3:] != shape[:2] + shape[3:]):
            raise ValueError(f"masks and masks2 must have shapes (blocks, k, L, p) and (blocks, k, L2, p), got {shape} and {shape2}")
        for name, dtype in (("mirror", np.float64), ("reference", np.int64)):  # as the kernels take them
            object.__setattr__(self, name, np.ascontiguousarray(getattr(self, name), dtype=dtype))
        if self.mirror.size:
            p = shape[3]
            if self.mirror.shape != (p,) or self.reference.shape != (p,) or not np.all((self.reference >= 0) & (self.reference < p)):
                raise ValueError(f"mirror and reference must have shape ({p},), reference indices in [0, {p}), got shapes "
                                 f"{self.mirror.shape} and {self.reference.shape}")
            if np.any(self.mirror[self.reference] != 0):
                raise ValueError("a reference column must not mirror another column (mirror[reference] must be 0)")

    @functools.cached_property
    def one_pass(self) -> bool:
        """Whether a noisy read sums each array's current and variance in one pass
        (:func:`_accumulate_cells`): one-hot masks (``masks2`` None) of 4-level cells, with
        the common-mode level, if any, the same in every row of an array."""
        return (self.masks2 is None and self.segments.shape[2] == 4 and self.masks.shape[2] in (4, 5)
                and _common_mode_uniform(self.masks))

    @functools.cached_property
    def cells(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """:func:`one_hot_cells` of ``masks`` (one-pass reads only), derived on first use."""
        if not self.one_pass:
            raise ValueError("cells exist for one-hot masks of 4-level cells only (masks2 None, 4 levels)")
        return one_hot_cells(self.masks)

    def kernel_rows(self, noisy: bool) -> tuple[np.ndarray, np.ndarray]:
        """``M`` and ``M2`` as the kernel reads them: one row per (cell row, level), shape
        (blocks, k L, p), C-contiguous float64. ``M2`` is empty unless a ``noisy`` read needs
        it (one-pass reads square each cell's current instead), ``M^2`` of the levels of
        ``segments`` for one-hot masks."""
        masks, masks2 = self.masks, self.masks2
        if not noisy or self.one_pass:
            masks2 = masks[:, :, :0]
        elif masks2 is None:
            masks2 = np.square(masks[:, :, : self.segments.shape[2]])
        return tuple(np.ascontiguousarray(m.reshape(m.shape[0], -1, m.shape[3]), dtype=np.float64) for m in (masks, masks2))


# Inputs per group: their sums (group x p) stay in cache while one array's read matrices
# serve all of them (measured on the noise-free linear read of 10,000 inputs on 196 x 256
# 4x4 arrays: 16 inputs 0.25 s; 1: 0.29 s, 64: 0.35 s). The results do not depend on it.
GROUP = 16


@numba.njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def _read(voltages, k, scale, segments, per_volt, masks, masks2, cells, mirror, reference, read_var, sense_var, key, row0,
          fs, low, per_ampere, top, out, saturated, partials, silent):  # pragma: no cover
    batch, n_rows = voltages.shape
    blocks, width, noisy_width, p = masks.shape[0], masks.shape[1] // k, masks2.shape[1] // k, masks.shape[2]
    noisy_cells = read_var > 0.0
    state, deviation, common = cells
    one_pass = state.shape[0] > 0 and noisy_cells  # current and variance of one-hot 4-level cells together
    store = partials.shape[0] > 0  # keep the partial currents, no conversion
    skip_silent = silent.shape[0] > 0  # count the silent arrays per input row instead of converting them
    for group in numba.prange((batch + GROUP - 1) // GROUP):
        first, last = group * GROUP, min(group * GROUP + GROUP, batch)
        current, variance, z, drive = np.empty(p), np.zeros(p + p % 2), np.zeros(p + p % 2), np.empty(width)
        open_ = np.empty(p + p % 2, dtype=np.int64)
        rows, weights = np.empty(k * width, dtype=np.int64), np.empty(k * width)
        rows2, weights2 = np.empty(k * noisy_width, dtype=np.int64), np.empty(k * noisy_width)
        cell_drives = np.zeros((k, 5))  # one-pass reads: a row's 4 level drives and its voltage (0 without common mode)
        over = 0
        for b in range(first, last):
            out[b, :] = 0.0
            if skip_silent:
                silent[b] = 0
        for r in range(blocks):
            top_row = min(k, n_rows - r * k)  # rows of array r that are driven: the last array may have fewer
            for b in range(first, last):
                n = n2 = 0  # the nonzero drives: rows of M and M2 and their weights
                for i in range(top_row):
                    v = voltages[b, r * k + i] * scale
                    if v == 0.0:  # no drive: nothing to add
                        continue
                    if one_pass:
                        level_drives(v, segments, per_volt, cell_drives[n, :width])
                        rows[n] = i
                        n += 1
                        continue
                    level_drives(v, segments, per_volt, drive)
                    for q in range(width):
                        rows[n], weights[n] = i * width + q, drive[q]
                        n += 1
                    for q in range(noisy_width):
                        rows2[n2], weights2[n2] = i * noisy_width + q, drive[q] * drive[q]
                        n2 += 1
                if skip_silent and n == 0:  # no current: counted, summed by table
                    silent[b] += 1
                    continue
                if one_pass:
                    _accumulate_cells(state[r], deviation[r], common[r], rows, cell_drives, n, current, variance)
                else:
                    _accumulate(masks[r], rows, weights, n, current)
                _mirrored(current.reshape((p, 1)), mirror, reference, 1)
                if store:
                    partials[b, r] = current
                    continue
                if noisy_cells and not one_pass:
                    _accumulate(masks2[r], rows2, weights2, n2, variance)
                stream = _stream(key, row0 + b, blocks, r, p)
                over += _convert_row(current, variance, read_var, sense_var, stream, z, open_, fs, low, per_ampere, top, out[b])
        saturated[group] = over



INPUT_LANES = 64
"""Inputs read side by side by :func:`_read_across` (the length of its inner loops)."""
ACROSS_WIDTH = 64
"""Noisy one-pass reads of arrays with at most this many columns go through
:func:`_read_across`; wider ones through :func:`_read` (CPU time on the captured layers of
the default device: the small CNN's layers of 8, 16 and 64 columns and the MLP's output
layer of 12 columns 1.3-2x faster across inputs; the MLP's first layer, 256 columns, 1.4x
slower)."""


@numba.njit(cache=True, nogil=True, parallel=True, error_model="numpy")
def _read_across(voltages, k, scale, segments, per_volt, cells, mirror, reference, read_var, sense_var, key, row0,
                 fs, low, per_ampere, top, out, saturated, silent):  # pragma: no cover - compiled
    """:func:`_read` of one-hot 4-level cells (:func:`_accumulate_cells`) with the inputs
    as the inner dimension: per array, a group of :data:`INPUT_LANES` inputs side by side,
    so that the loops vectorise however few columns the array has. Where more than a
    quarter of the group leaves the array silent (its row voltages all 0, the sum drawn by
    table), only the inputs that drive it take lanes (``live``); else every input does and a
    silent one's codes are multiplied by 0. The same numbers as :func:`_read`: each sum gets
    the same terms in the same order (a row at 0 V adds exact zeros, where :func:`_read`
    skips it), each conversion the same hash and normal, and each silent array is counted
    (``silent``) and adds nothing, as there."""
    batch, n_rows = voltages.shape
    state, deviation, common = cells
    blocks, _, p = state.shape
    levels = segments.shape[2]
    half = (p + p % 2) // 2
    lanes = INPUT_LANES
    skip_silent = silent.shape[0] > 0
    for group in numba.prange((batch + lanes - 1) // lanes):
        b0 = group * lanes
        nb = min(lanes, batch - b0)
        drive = np.zeros((k, levels + 1, lanes))  # per row: the level drives and the voltage, per lane
        nodes, fractions, total, kept = np.empty(lanes, dtype=np.int64), np.empty(lanes), np.empty(lanes), np.empty(lanes)
        live, streams = np.empty(lanes, dtype=np.int64), np.empty(lanes, dtype=np.uint64)  # compacted lanes' inputs; hash streams
        volts_in = np.empty((k, lanes))  # the row voltages of the array, per lane
        current, variance, z = np.zeros((2 * half, lanes)), np.zeros((2 * half, lanes)), np.zeros((2 * half, lanes))
        sums, counts = np.zeros((p, lanes)), np.zeros(lanes, dtype=np.int64)
        open_ = np.empty(2 * half * lanes, dtype=np.int64)
        over = 0
        for r in range(blocks):
            rows = min(k, n_rows - r * k)  # the last array may have fewer driven rows
            kept[:nb] = 0.0  # rows at a nonzero voltage
            for i in range(rows):
                v_row = volts_in[i]
                for u in range(nb):
                    v_row[u] = voltages[b0 + u, r * k + i] * scale
                    kept[u] += v_row[u] != 0.0
            n = nb
            if skip_silent:  # silent arrays counted, not converted (kept 0.0, else 1.0)
                quiet = 0
                for u in range(nb):
                    silent_here = kept[u] == 0.0
                    counts[u] += silent_here
                    quiet += silent_here
                    kept[u] = 0.0 if silent_here else 1.0
                if quiet == nb:
                    continue
                if 4 * quiet > nb:  # many silent: the inputs that drive the array take the first lanes
                    n = 0
                    for u in range(nb):
                        live[n] = u
                        n += kept[u] != 0.0
                    for i in range(rows):
                        for w in range(n):
                            volts_in[i, w] = volts_in[i, live[w]]
                    kept[:n] = 1.0
            else:
                kept[:nb] = 1.0
            total[:n] = 0.0
            for i in range(k):
                volts = drive[i, levels]
                if i >= rows:
                    drive[i] = 0.0
                    continue
                for w in range(n):
                    v = volts_in[i, w]
                    nodes[w], fractions[w] = _segment(v, segments, per_volt)
                    volts[w] = v
                    total[w] += v
                for q in range(levels):
                    row = drive[i, q]
                    for w in range(n):
                        row[w] = _level_drive(volts[w], segments, nodes[w], fractions[w], q)
            for j in range(p):
                c_row, v_row = current[j], variance[j]
                src, dev = drive[0, state[r, 0, j]], deviation[r, 0, j]
                for w in range(n):
                    cell = src[w] * dev
                    c_row[w], v_row[w] = 0.0 + cell, 0.0 + cell * cell
                for i in range(1, k):
                    src, dev = drive[i, state[r, i, j]], deviation[r, i, j]
                    for w in range(n):
                        cell = src[w] * dev
                        c_row[w] += cell
                        v_row[w] += cell * cell
                for w in range(n):
                    c_row[w] += total[w] * common[r, j]
            _mirrored(current, mirror, reference, n)
            first, step = _stream(key, row0 + b0, blocks, r, p), np.uint64(blocks * p) * _GOLDEN
            for w in range(n):  # _stream of the lane's input
                streams[w] = first + np.uint64(w if n == nb else live[w]) * step
            n_open = 0
            for t in range(half):  # the normals of columns t and half + t from one hash (:func:`_noise`)
                za_row, zb_row, va_row, vb_row = z[t], z[half + t], variance[t], variance[half + t]
                for w in range(n):
                    h = _mix(streams[w] + np.uint64(t) * _GOLDEN)
                    za, zb = _ziggurat_fast(h >> np.uint64(32)), _ziggurat_fast(h & _LOW32)
                    za_row[w] = _sigma(read_var, va_row[w], sense_var) * za
                    zb_row[w] = _sigma(read_var, vb_row[w], sense_var) * zb
                    n_open += (za != za) | (zb != zb)
            if n_open:
                n_open = 0
                for j in range(2 * half):
                    n_open = _list_open(z[j], n, j * lanes, open_, n_open)
                for index in range(n_open):
                    j, w = open_[index] // lanes, open_[index] % lanes
                    h = _mix(streams[w] + np.uint64(j - half if j >= half else j) * _GOLDEN)
                    z[j, w] = _sigma(read_var, variance[j, w], sense_var) * _completed(h, j >= half)
            for j in range(p):
                c_row, z_row, s_row = current[j], z[j], sums[j]
                if top == 0.0:
                    for w in range(n):
                        s_row[w] += c_row[w] + z_row[w]
                elif n == nb:  # every lane its own input: codes of silent arrays times 0
                    for w in range(n):
                        value = c_row[w] + z_row[w]
                        over += _saturates(value, fs[j]) & (kept[w] != 0.0)
                        s_row[w] += _code(value, low[j], per_ampere[j], top) * kept[w]
                else:  # the inputs that drive the array in the first lanes
                    for w in range(n):
                        value = c_row[w] + z_row[w]
                        over += _saturates(value, fs[j])
                        c_row[w] = _code(value, low[j], per_ampere[j], top)
                    for w in range(n):
                        s_row[live[w]] += c_row[w]
        for u in range(nb):
            out[b0 + u] = sums[:, u]
            if skip_silent:
                silent[b0 + u] = counts[u]
        saturated[group] = over


# One thread: it runs between BLAS calls (the chunked reads), whose spinning worker threads
# made a parallel version 10x slower with 2 threads (case c: 0.29 s against 0.15 s serial).
@numba.njit(cache=True, nogil=True, error_model="numpy")
def _convert(currents, variance, read_var, sense_var, key, row0, fs, low, per_ampere, top, out, saturated):  # pragma: no cover
    batch, blocks, p = currents.shape
    for group in range((batch + GROUP - 1) // GROUP):
        z, row, open_ = np.zeros(p + p % 2), np.zeros(p + p % 2), np.empty(p + p % 2, dtype=np.int64)
        over = 0
        for b in range(group * GROUP, min(group * GROUP + GROUP, batch)):
            out[b, :] = 0.0
            for r in range(blocks):
                stream = _stream(key, row0 + b, blocks, r, p)
                if read_var > 0.0:
                    row[:p] = variance[b, r]
                over += _convert_row(currents[b, r], row, read_var, sense_var, stream, z, open_, fs, low, per_ampere, top, out[b])
        saturated[group] = over


@numba.njit(inline="always", error_model="numpy")
def level_drives(v, segments, per_volt, drive):  # pragma: no cover - compiled
    """Drives of one row voltage ``v``: ``drive[q] = v G_q(|v|)`` for the ``N`` levels of
    ``segments`` (:attr:`imclib.array.LevelTable.segments`: ``G_q(v_n)`` and
    ``G_q(v_{n+1}) - G_q(v_n)`` per node ``n``, interpolated at ``|v| per_volt``), then
    ``drive[N] = v`` if ``drive`` is longer (the voltage itself: linear cells, common mode)."""
    levels = segments.shape[2]
    if levels:
        node, fraction = _segment(v, segments, per_volt)
        for q in range(levels):
            drive[q] = _level_drive(v, segments, node, fraction, q)
    if drive.shape[0] > levels:
        drive[levels] = v


@numba.njit(inline="always", error_model="numpy")
def _level_drive(v, segments, node, fraction, q):  # pragma: no cover - compiled
    """``v G_q(|v|)`` with ``G_q`` interpolated in segment ``node`` (:func:`_segment`)."""
    return v * (segments[node, 0, q] + fraction * segments[node, 1, q])


@numba.njit(inline="always", error_model="numpy")
def _segment(v, segments, per_volt):  # pragma: no cover - compiled
    """The node ``n`` of the level table below ``|v|`` and the fraction of the way to the
    next: ``|v| per_volt = n + fraction`` (the last segment extrapolates)."""
    position = abs(v) * per_volt
    node = min(int(position), segments.shape[0] - 1)
    return node, position - node


# ---- entry points -----------------------------------------------------------------------

SILENT_SIGMA_MAX = 1.0
"""Largest sense noise (codes rms) for which silent conversions are summed by table
(:func:`silent_tables`; 0.15-0.7 codes in the default device): it bounds the tables' width,
about 8 sigma sqrt(m) codes per (m, column): for a layer of 196 row blocks and 256 columns
with every m present, 45 MB and 50 ms at 0.7 codes, 61 MB and 80 ms at 1 code, plus 13 MB
of guides (:data:`SILENT_BUCKETS` int32 per (m, column))."""
SILENT_BUCKETS = 64
"""Buckets ``G`` of the uniform in the silent sums' guide tables (:func:`silent_tables`)."""
SILENT_TAIL = 2.0**-50
"""Probability dropped from each tail of a silent-sum distribution at each convolution step."""
_NO_CELLS = (np.zeros((0, 0, 0), dtype=np.int8), np.zeros((0, 0, 0)), np.zeros((0, 0)))  # no one-pass read (:func:`one_hot_cells`)
_NO_SILENT = (np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros((0, 0)), np.zeros((0, 0, 0), dtype=np.int32))
_NO_COUNTS = np.zeros(0, dtype=np.int64)  # silent arrays converted one by one (not counted)


def zero_current_pmf(adc, sense_var: float):
    """The code distribution of a conversion whose partial current is exactly 0 (every row
    voltage of its array 0), per column; None where silent conversions are converted one by one.

    Only sense noise remains: ``c = rint(clip(a_j + s_j z, 0, 2^b - 1))`` with ``a_j = -low_j K_j``
    and ``s_j = sigma_sense K_j`` (codes), so ``P(c <= k) = Phi((k + 1/2 - a_j) / s_j)`` below
    the top code and ``P(c >= k) = Phi((a_j - k + 1/2) / s_j)`` above code 0; the probability of
    code ``k`` is the difference of the first form at or below ``a_j``, of the second above it
    (no cancellation in either tail). Returns ``(c0, pmf)``: ``pmf[j, t]`` the probability of
    code ``c0_j + t - W``, ``c0_j = floor(clip(a_j, 0, 2^b - 1))`` (so the likely codes lie at
    the same offsets in every column), ``W = ceil(12 max s_j)`` (the mass beyond 12 sigma,
    below 1e-32, is left out). Without sense noise the code is ``c0_j = rint(clip(a_j, 0,
    2^b - 1))`` (``pmf`` of width 1). None without an ADC (``adc=None`` or ``top = 0``), when a
    column's sense noise exceeds :data:`SILENT_SIGMA_MAX` codes, or when the full scale is
    below 9 sense sigmas (silent conversions then saturate with probability above 1e-18,
    which the table would not count).
    """
    if adc is None or adc[3] == 0.0 or np.any(adc[0] < 9 * np.sqrt(sense_var)):
        return None
    _, low, per_ampere, top = adc
    center, spread = -low * per_ampere, np.sqrt(sense_var) * per_ampere
    if np.any(spread > SILENT_SIGMA_MAX):
        return None
    if sense_var == 0.0:
        return np.rint(np.clip(center, 0.0, top)), np.ones((low.shape[0], 1))
    c0 = np.floor(np.clip(center, 0.0, top))
    width = int(np.ceil(12 * spread.max()))
    k = c0[:, None] + np.arange(-width, width + 1)
    below = lambda k: np.where(k >= top, 1.0, np.where(k < 0, 0.0, ndtr((k + 0.5 - center[:, None]) / spread[:, None])))  # noqa: E731
    above = lambda k: np.where(k <= 0, 1.0, np.where(k > top, 0.0, ndtr((center[:, None] - k + 0.5) / spread[:, None])))  # noqa: E731
    pmf = np.where(k <= center[:, None], below(k) - below(k - 1), above(k) - above(k + 1))
    return c0, np.where((k >= 0) & (k <= top), np.maximum(pmf, 0.0), 0.0)  # >= 0 despite rounding


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _trim(dist, n, tail, mass):  # pragma: no cover - compiled
    """Drop the rows of ``dist[:n]`` (codes x columns) at either end while every column's
    cumulative probability there stays at or below ``tail``; shift the rest to the front;
    returns (rows kept, rows dropped below). ``mass`` is a work array (columns)."""
    p = dist.shape[1]
    low = 0
    mass[:] = 0.0
    while low < n - 1:
        for j in range(p):
            mass[j] += dist[low, j]
        if np.max(mass) > tail:
            break
        low += 1
    high = n - 1
    mass[:] = 0.0
    while high > low:
        for j in range(p):
            mass[j] += dist[high, j]
        if np.max(mass) > tail:
            break
        high -= 1
    for t in range(high - low + 1):
        dist[t] = dist[low + t]
    return high - low + 1, low


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _silent_tables(c0, pmf, needed, tail, start, length, first, guide):  # pragma: no cover - compiled
    """The tables of :func:`silent_tables` in one pass: fills ``start``, ``length``,
    ``first`` and ``guide``; returns the CDF entries in a buffer that grows by doubling and
    their number. Every column at once (the inner loops run over columns), the tails trimmed where they
    are negligible in every column."""
    w, p = pmf.shape
    top_m = needed.shape[0] - 1
    single, mass = pmf.copy(), np.empty(p)
    w1, low1 = _trim(single, w, tail, mass)
    work, step = np.zeros((top_m * (w1 - 1) + 1, p)), np.empty((top_m * (w1 - 1) + 1, p))
    n, low = w1, low1 - w // 2  # the distribution of one code: offsets low .. low + n - 1 from c0
    work[:n] = single[:n]
    total, running, cdf = 0, np.empty(p), np.empty(64 * p)
    for m in range(1, top_m + 1):
        if m > 1:  # one more conversion: convolve with the single code's distribution
            step[: n + w1 - 1] = 0.0
            for a in range(n):
                for c in range(w1):
                    for j in range(p):
                        step[a + c, j] += work[a, j] * single[c, j]
            n, dropped = _trim(step, n + w1 - 1, tail, mass)
            low += low1 - w // 2 + dropped
            work[:n] = step[:n]
        if not needed[m]:
            continue
        if total + n * p > cdf.shape[0]:
            grown = np.empty(max(2 * cdf.shape[0], total + n * p))
            grown[:total] = cdf[:total]
            cdf = grown
        running[:] = 0.0
        for t in range(n):  # column j's CDF at total + t p + j
            for j in range(p):
                running[j] += work[t, j]
                cdf[total + t * p + j] = running[j]
        start[m], length[m] = total, n
        for j in range(p):
            first[m, j] = m * c0[j] + low
            running[j] = 1.0 / running[j]
        for t in range(n):
            for j in range(p):
                cdf[total + t * p + j] *= running[j]
        buckets = guide.shape[1]  # guide[m, g, j] = min(#{t : C_t <= g / G}, n - 1): #{t : ceil(C_t G) <= g} by counts
        for t in range(n):
            for j in range(p):
                g = int(math.ceil(cdf[total + t * p + j] * buckets))
                if g < buckets:
                    guide[m, g, j] += 1
        for g in range(1, buckets):
            for j in range(p):
                guide[m, g, j] += guide[m, g - 1, j]
        for g in range(buckets):
            for j in range(p):
                guide[m, g, j] = min(guide[m, g, j], n - 1)
        total += n * p
    return cdf, total


def silent_tables(adc, sense_var: float, counts: np.ndarray) -> tuple:
    """Tables to draw, per input row and column, the SUM of the codes of its ``m`` silent
    conversions (arrays whose row voltages are all 0) in one step.

    Those conversions are iid with the per-column code distribution of
    :func:`zero_current_pmf`, so their sum has its m-fold convolution. For every ``m`` in
    ``counts`` (silent arrays per input row) and column ``j`` the tables hold that
    distribution's CDF, built by repeated convolution; at every step each tail of total
    probability at most :data:`SILENT_TAIL` (2^-50) is dropped and the CDF is renormalized,
    so the sum is exact but for tails of total probability below ``2 m 2^-50`` (below 2^-41
    for 196 arrays). Returns ``(cdf, start, length, first, guide)``: ``cdf[start[m] + t p +
    j]`` is ``P(S_j <= first[m, j] + t)`` for ``t < length[m]`` (``start``, ``length`` of
    shape (max m + 1,), ``first`` (max m + 1, p)); nondecreasing in ``t`` (running sums of
    nonnegative probabilities), the last entry 1 up to rounding: the draw takes the last
    code for any uniform above it. ``guide[m, g, j]`` (max m + 1, :data:`SILENT_BUCKETS`, p)
    is where a draw with a uniform in ``[g / G, (g + 1) / G)`` starts its search. Or empty
    tables (silent conversions converted one by one) when :func:`zero_current_pmf` is None or
    no row has a silent array.
    """
    return _silent_tables_of(zero_current_pmf(adc, sense_var), counts)


def _silent_tables_of(pmf, counts: np.ndarray) -> tuple:
    """:func:`silent_tables` from the :func:`zero_current_pmf` ``pmf`` (None: empty tables)."""
    counts = np.asarray(counts)
    if pmf is None or not np.any(counts):
        return _NO_SILENT
    c0, pmf = pmf
    needed = np.zeros(int(counts.max()) + 1, dtype=np.bool_)
    needed[counts] = True
    needed[0] = False
    start, length = np.zeros((2, needed.size), dtype=np.int64)
    first = np.zeros((needed.size, c0.size))
    guide = np.zeros((needed.size, SILENT_BUCKETS, c0.size), dtype=np.int32)  # pages of unneeded m: never touched
    pmf = np.ascontiguousarray(pmf.T)
    cdf, total = _silent_tables(c0, pmf, needed, SILENT_TAIL, start, length, first, guide)
    return cdf[:total], start, length, first, guide


def silent_uniforms(key, batch: int, p: int, row0: int = 0) -> np.ndarray:
    """Plain-numpy uniforms of the silent sums (:func:`silent_tables`), shape (batch, p):
    ``u = (n + 1/2) 2^-53`` with ``n`` the top 53 bits of ``mix(k' + (row p + j) phi)``,
    ``k' = mix(key XOR 0x5EED5EED5EED5EED)``, a stream apart from the conversions'."""
    with np.errstate(over="ignore"):
        silent_key = _reference_mix(np.uint64(key) ^ _SILENT)
        counter = ((row0 + np.arange(batch))[:, None] * p + np.arange(p)).astype(np.uint64)
        h = _reference_mix(silent_key + counter * _GOLDEN)
    return ((h >> np.uint64(11)).astype(np.float64) + 0.5) * 2.0**-53


def _no_adc(p: int) -> tuple:
    """ADC constants that mean "no ADC" to the kernels (``top = 0``)."""
    return np.ones(p), np.zeros(p), np.ones(p), 0.0


def _driven_rows(voltages, matrices: ReadMatrices) -> np.ndarray:
    """``voltages`` as the kernels read them: (batch, n) C-contiguous float64, the rows of
    the ``blocks`` arrays of ``k`` rows in order (a (batch, blocks, k) array flattened), ``n``
    past the last array's first row and at most ``blocks k`` (rows past ``n`` at 0 V)."""
    voltages = np.asarray(voltages)
    voltages = np.ascontiguousarray(voltages.reshape(voltages.shape[0], -1), dtype=np.float64)
    blocks, k = matrices.masks.shape[:2]
    if not (blocks - 1) * k < voltages.shape[1] <= blocks * k:
        raise ValueError(f"voltages must drive {(blocks - 1) * k + 1}..{blocks * k} rows of the {blocks} arrays of {k} rows, "
                         f"got {voltages.shape[1]}")
    return voltages


def read(voltages, matrices: ReadMatrices, adc, *, volts_per_unit=1.0, read_var=0.0, sense_var=0.0, key=np.uint64(0),
         row0=0) -> tuple[np.ndarray, int]:
    """Steps 1-4 of the module docstring in one compiled pass: ``sum_r ADC(I_brj + sigma_brj z_brj)``.

    Parameters
    ----------
    voltages : ndarray, shape (batch, blocks, k) or (batch, n)
        Row voltages (volts) of each array, or inputs that ``volts_per_unit`` scales to them;
        (batch, n): the arrays' rows in order, those past ``n`` (the last array's) at 0 V.
    matrices : ReadMatrices
        Read matrices and level table of the arrays (``blocks`` arrays of ``k`` rows, ``p``
        columns); with read noise and one-hot masks of 4-level cells the variance is summed
        in the same pass as the current (:func:`_accumulate_cells`, from
        :attr:`ReadMatrices.cells`), else from ``M2``.
    adc : tuple or None
        ``(fs, low, per_ampere, top)``: per-column full scale, lower end, codes per ampere
        (amperes, shape (p,)) and ``2^bits - 1`` (:func:`imclib.periphery.adc_constants`);
        the sums returned are then code sums. None: no ADC, the sums are amperes.
    volts_per_unit : float
        ``s``: the row voltage is ``s`` times ``voltages`` (multiplied in the kernel: no
        scaled copy of the inputs).
    read_var : float
        ``s_read^2`` (relative read noise variance, dimensionless).
    sense_var : float
        Sense noise variance per conversion (A^2).
    key, row0
        Stream key (:func:`stream_key`) and index of the first input row in the read.

    Returns
    -------
    sums : ndarray, shape (batch, p)
        ``sum_r c_brj`` (code sums), or the noisy currents summed (amperes) without an ADC.
    saturated : int
        Saturated conversions.
    """
    voltages = _driven_rows(voltages, matrices)
    blocks, k, _, p = matrices.masks.shape
    adc = _no_adc(p) if adc is None else adc
    out = np.empty((voltages.shape[0], p))
    noisy_cells = read_var > 0
    cells = matrices.cells if noisy_cells and matrices.one_pass else _NO_CELLS
    pmf = zero_current_pmf(adc, sense_var)
    silent = np.empty(voltages.shape[0] if pmf is not None else 0, dtype=np.int64)
    across = cells is not _NO_CELLS and p <= ACROSS_WIDTH
    saturated = np.zeros(-(-voltages.shape[0] // (INPUT_LANES if across else GROUP)), dtype=np.int64)  # per group of inputs
    if across:
        _read_across(voltages, k, float(volts_per_unit), matrices.segments, float(matrices.per_volt), cells, matrices.mirror, matrices.reference,
                     float(read_var), float(sense_var), np.uint64(key), int(row0), *adc, out, saturated, silent)
    else:
        _read(voltages, k, float(volts_per_unit), matrices.segments, float(matrices.per_volt), *matrices.kernel_rows(noisy_cells),
              cells, matrices.mirror, matrices.reference, float(read_var), float(sense_var), np.uint64(key), int(row0), *adc, out, saturated,
              np.empty((0, 0, 0)), silent)
    if np.any(silent):
        order = np.argsort(silent.astype(np.min_scalar_type(blocks)), kind="stable")  # radix sort for counts of 8 or 16 bits
        _silent_sums(np.uint64(key), int(row0), silent, order, *_silent_tables_of(pmf, silent), out)
    return out, int(saturated.sum())


def partial_currents(voltages, matrices: ReadMatrices, *, out=None) -> np.ndarray:
    """Step 1 of the module docstring alone: the noise-free partial currents ``I_brj``
    (amperes), shape (batch, blocks, p), with the arguments of :func:`read`; into ``out``
    (C-contiguous float64 of that shape) if given."""
    voltages = _driven_rows(voltages, matrices)
    blocks, k, _, p = matrices.masks.shape
    batch = voltages.shape[0]
    partials = np.empty((batch, blocks, p)) if out is None else out
    _read(voltages, k, 1.0, matrices.segments, float(matrices.per_volt), *matrices.kernel_rows(False), _NO_CELLS,
          matrices.mirror, matrices.reference, 0.0, 0.0, np.uint64(0), 0, *_no_adc(p), np.empty((batch, p)), np.zeros(-(-batch // GROUP), dtype=np.int64),
          partials, _NO_COUNTS)
    return partials


def convert(currents, adc, *, variance=None, read_var=0.0, sense_var=0.0, key=np.uint64(0),
            row0=0) -> tuple[np.ndarray, int]:
    """Steps 2-4 of the module docstring on given partial currents.

    ``currents`` (batch, blocks, p, amperes) and ``variance`` (the same shape,
    ``sum_i V^2 G^2``, or None without read noise) are not modified. ``adc`` as in
    :func:`read`, or None for no ADC (the sums are then amperes). Returns the sums over
    blocks, shape (batch, p), and the saturated conversions.
    """
    currents = np.ascontiguousarray(currents, dtype=np.float64)
    batch, _, p = currents.shape
    variance = np.zeros((1, 1, p)) if variance is None else np.ascontiguousarray(variance, dtype=np.float64)
    adc = _no_adc(p) if adc is None else adc
    out = np.empty((batch, p))
    saturated = np.zeros(-(-batch // GROUP), dtype=np.int64)
    _convert(currents, variance, float(read_var), float(sense_var), np.uint64(key), int(row0), *adc, out, saturated)
    return out, int(saturated.sum())


def reference_read(voltages, masks, masks2, adc, normals, *, drives=None, read_var=0.0, sense_var=0.0,
                   silent_uniforms=None, mirror=None, reference=None):
    """Plain-numpy :func:`read` with the standard normals ``normals`` (batch, blocks, p)
    given (:func:`reference_normals` of the read, or any generator's); ``drives`` (batch,
    blocks, k, L) defaults to the voltages (linear cells). With ``silent_uniforms`` (batch,
    p; :func:`silent_uniforms`), the conversions of arrays whose row voltages are all 0 are
    summed as :func:`read` does where :func:`zero_current_pmf` applies, by inverse CDF of
    the m-fold ``np.convolve`` of that code distribution (no tails dropped). ``mirror`` and
    ``reference`` as in :class:`ReadMatrices`."""
    drives = voltages[..., None] if drives is None else drives
    currents = np.einsum("brkl,rklp->brp", drives, masks)
    if mirror is not None:
        currents = currents - mirror * currents[..., reference]
    sigma = np.sqrt(read_var * np.einsum("brkl,rklp->brp", drives[..., : masks2.shape[2]] ** 2, masks2) + sense_var)
    noisy = currents + sigma * normals
    if adc is None:
        return noisy.sum(axis=1), 0
    fs, low, per_ampere, top = adc
    codes = np.clip(np.rint((noisy - low) * per_ampere), 0, top)
    saturated = np.abs(noisy) > fs
    pmf = zero_current_pmf(adc, sense_var) if silent_uniforms is not None else None
    if pmf is None:
        return codes.sum(axis=1), int(np.count_nonzero(saturated))
    c0, pmf = pmf
    silent = ~np.any(voltages, axis=-1)
    sums = np.where(silent[..., None], 0.0, codes).sum(axis=1)
    for b, m in enumerate(silent.sum(axis=1)):
        for j in range(c0.size):
            dist = np.ones(1)
            for _ in range(m):
                dist = np.convolve(dist, pmf[j])
            if m:  # offsets from m c0_j: -m W .. m W
                cdf = np.cumsum(dist) / dist.sum()
                sums[b, j] += m * c0[j] - m * (pmf.shape[1] // 2) + np.argmax(cdf > silent_uniforms[b, j])
    return sums, int(np.count_nonzero(saturated & ~silent[..., None]))


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _quantize(values, low, per_unit, step, top, out):  # pragma: no cover - compiled
    flat, result = values.ravel(), out.ravel()
    for t in range(flat.shape[0]):
        result[t] = low + min(max(np.rint((flat[t] - low) * per_unit), 0.0), top) * step


def quantize(values: np.ndarray, low: float, per_unit: float, step: float, top: float) -> np.ndarray:
    """``low + clip(rint((v - low) K), 0, top) step`` elementwise in one compiled pass (a new
    float64 array), the operations of :func:`imclib.periphery.uniform_quantize` in its order,
    so the results are identical; ``low``, ``K``, ``step`` and ``top`` scalars. float32
    values are read as they are (each converted exactly to float64 before the arithmetic)."""
    values = np.ascontiguousarray(values)
    values = values if values.dtype == np.float32 else values.astype(np.float64, copy=False)
    out = np.empty(values.shape)
    _quantize(values, float(low), float(per_unit), float(step), float(top), out)
    return out


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _beyond(values, low, high, out):  # pragma: no cover - compiled
    flat = values.ravel()
    beyond = 0
    if out is None:
        for t in range(flat.shape[0]):
            beyond += (flat[t] < low) | (flat[t] > high)
        return beyond
    result = out.ravel()
    for t in range(flat.shape[0]):
        value = np.float64(flat[t])
        result[t] = value
        beyond += (value < low) | (value > high)
    return beyond


def in_float64(values: np.ndarray, low: float, high: float) -> tuple[np.ndarray, int]:
    """``(values as float64, entries outside [low, high])`` in one compiled pass: float64
    ``values`` themselves (not copied), float32 ones converted (a new array; each entry
    converted exactly, compared in float64). NaN is not counted. Reference:
    ``values.astype(np.float64)`` and ``np.count_nonzero((v < low) | (v > high))``."""
    values = np.ascontiguousarray(values)
    if values.dtype not in (np.float32, np.float64):
        raise ValueError(f"values must be float32 or float64, got {values.dtype}")
    out = None if values.dtype == np.float64 else np.empty(values.shape)
    count = int(_beyond(values, float(low), float(high), out))
    return (values if out is None else out), count


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _affine_rows(y, input_sum, offset, coefficient, divisor):  # pragma: no cover - compiled
    for b in range(y.shape[0]):
        row, s = y[b], input_sum[b]
        for j in range(y.shape[1]):
            row[j] = ((row[j] - offset[j]) + s * coefficient[j]) / divisor[j]


def affine_rows(y: np.ndarray, input_sum: np.ndarray, offset: np.ndarray, coefficient: np.ndarray,
                divisor: np.ndarray) -> np.ndarray:
    """``y_bj <- ((y_bj - o_j) + S_b c_j) / g_j`` in place in ``y`` (batch, n, float64), with ``S``
    (batch,) and ``o``, ``c``, ``g`` (n,): one compiled pass doing the numpy steps ``y -= o;
    y += S[:, None] * c; y /= g`` in their order, so with the same roundings (and no
    (batch, n) temporary). Returns ``y``."""
    if y.dtype != np.float64 or y.ndim != 2:
        raise ValueError(f"y must be a 2-D float64 array, got dtype {y.dtype} and shape {y.shape}")
    vectors = [np.ascontiguousarray(np.broadcast_to(v, (y.shape[1],)), dtype=np.float64) for v in (offset, coefficient, divisor)]
    _affine_rows(y, np.ascontiguousarray(input_sum, dtype=np.float64).reshape(y.shape[0]), *vectors)
    return y


# ---- weight mapping: nearest level -----------------------------------------------------------

_BELOW_BLOCK = 1024  # values counted at once: their counts stay in L1 while every edge passes over them


@numba.njit(inline="always", error_model="numpy")
def _count_block(block, n, edges, counts):  # pragma: no cover - compiled
    """``counts[t] = #{k : edges_k < block[t]}`` (NaN above every edge) for ``t < n``: one
    loop without branches per edge, vectorised."""
    counts[:n] = 0
    for k in range(edges.shape[0]):
        edge = edges[k]
        for t in range(n):
            counts[t] += (edge < block[t]) | (block[t] != block[t])


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _count_below(values, offset, gain, edges, levels, out, picked):  # pragma: no cover - compiled
    """``out[i, j] = #{k : edges_k < (values_ij - offset_j) / gain_j}`` (``values_ij`` itself
    when ``offset`` is empty), and ``picked[i, j] = levels[out[i, j]]`` when ``levels`` is not
    empty; a block of :data:`_BELOW_BLOCK` columns of a row at a time."""
    position, counts = np.empty(_BELOW_BLOCK), np.empty(_BELOW_BLOCK, dtype=np.int64)
    columns, affine = values.shape[1], offset.shape[0] > 0
    for i in range(values.shape[0]):
        for start in range(0, columns, _BELOW_BLOCK):
            n = min(_BELOW_BLOCK, columns - start)
            if affine:
                for t in range(n):
                    position[t] = (values[i, start + t] - offset[start + t]) / gain[start + t]
            else:
                position[:n] = values[i, start : start + n]
            _count_block(position, n, edges, counts)
            out[i, start : start + n] = counts[:n]
            if levels.shape[0]:
                for t in range(n):
                    picked[i, start + t] = levels[counts[t]]


def _edges(edges: np.ndarray) -> np.ndarray:
    edges = np.ascontiguousarray(edges, dtype=np.float64)
    if edges.ndim != 1 or np.isnan(edges).any() or np.any(edges[1:] < edges[:-1]):
        raise ValueError(f"edges must be a 1-D ascending array without NaN, got {edges}")
    return edges


_NONE = np.zeros(0)  # no offset and gain, no levels to pick (:func:`_count_below`)


def count_below(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """``#{k : edges_k < v}`` for every entry ``v`` of ``values`` (int64, the shape of
    ``values``), NaN counted above every edge: ``np.searchsorted(edges, values)`` for
    ascending ``edges`` (side ``left``, the same integers), by comparisons instead of a
    binary search per value (4-8x faster for the 3-31 edges of a level set)."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    out = np.empty(values.shape, dtype=np.int64)
    _count_below(values.reshape(1, -1), _NONE, _NONE, _edges(edges), _NONE, out.reshape(1, -1), np.zeros((0, 0)))
    return out


def count_below_affine(weights: np.ndarray, offset: np.ndarray, gain: np.ndarray, edges: np.ndarray,
                       levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`count_below` of ``(w_ij - b_j) / a_j`` for ``weights`` (n, C), ``offset`` ``b``
    and ``gain`` ``a`` (C,), without storing the quotients: the same integers ``c`` as
    ``count_below((weights - offset) / gain, edges)`` (each quotient the same correctly
    rounded float64), and ``levels[c]`` (``levels``: ``len(edges) + 1`` entries), gathered
    in the same pass. Returns ``(c, levels[c])``."""
    weights = np.ascontiguousarray(weights, dtype=np.float64)
    if weights.ndim != 2:
        raise ValueError(f"weights must be 2-D (n, C), got shape {weights.shape}")
    edges = _edges(edges)
    offset, gain = (np.ascontiguousarray(np.broadcast_to(v, weights.shape[1:]), dtype=np.float64) for v in (offset, gain))
    levels = np.ascontiguousarray(levels, dtype=np.float64)
    if levels.shape != (edges.shape[0] + 1,):
        raise ValueError(f"levels must have len(edges) + 1 = {edges.shape[0] + 1} entries, got shape {levels.shape}")
    out, picked = np.empty(weights.shape, dtype=np.int64), np.empty(weights.shape)
    _count_below(weights, offset, gain, edges, levels, out, picked)
    return out, picked


# ---- calibration: order statistics per column ---------------------------------------------

@numba.njit(inline="always", error_model="numpy")
def _sift_down(heap, position, value):  # pragma: no cover - compiled
    """Put ``value`` at ``position`` of the min-heap ``heap`` and sift it down."""
    size = heap.shape[0]
    while True:
        child = 2 * position + 1
        if child >= size:
            break
        if child + 1 < size and heap[child + 1] < heap[child]:
            child += 1
        if heap[child] >= value:
            break
        heap[position] = heap[child]
        position = child
    heap[position] = value


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _feed(values, heap, smallest, count):  # pragma: no cover - compiled
    """Feed the magnitudes of ``values`` (a, b, p) to the per-column min-heaps ``heap``
    (p, m) of the m largest so far (``count`` values per column fed before; ``smallest``
    the heaps' roots once full); returns the new count."""
    a, b, p = values.shape
    m = heap.shape[1]
    for i in range(a):
        for r in range(b):
            row = values[i, r]
            if count < m:  # the first m values of every column, then heapified
                heap[:, count] = np.abs(row)
                count += 1
                if count == m:
                    for j in range(p):
                        for position in range(m // 2 - 1, -1, -1):
                            _sift_down(heap[j], position, heap[j, position])
                        smallest[j] = heap[j, 0]
                continue
            larger = 0
            for j in range(p):  # most rows hold no value for the heaps: checked in a loop that vectorises
                larger += abs(row[j]) > smallest[j]
            if larger == 0:
                continue
            for j in range(p):
                magnitude = abs(row[j])
                if magnitude > smallest[j]:
                    _sift_down(heap[j], 0, magnitude)
                    smallest[j] = heap[j, 0]
    return count


class Largest:
    """The ``m`` largest magnitudes ``|value|`` of every column of a stream of blocks of
    values (a, b, p), kept in one min-heap of ``m`` values per column (``O(n log m)`` for
    n values, the values themselves not kept): :meth:`add` feeds a block,
    :meth:`order_statistics` gives the ``m``-th and ``(m - 1)``-th largest, :meth:`count_above`
    counts the values above a bound that is at least the ``m``-th largest. The result does
    not depend on how the values are cut into blocks."""

    def __init__(self, p: int, m: int):
        self.heap, self.smallest, self.count, self.size = np.empty((p, m)), np.empty(p), 0, 0

    def add(self, values: np.ndarray) -> "Largest":
        """Feed ``values`` (a, b, p); returns self."""
        self.count = _feed(values, self.heap, self.smallest, self.count)
        self.size += values.size
        return self

    def order_statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """The ``m``-th and ``(m - 1)``-th largest magnitude per column (the first twice when
        ``m = 1``); at least ``m`` values per column must have been fed."""
        m = self.heap.shape[1]
        if self.count < m:
            raise ValueError(f"m must be in [1, {self.count}] (the values per column fed), got {m}")
        second = self.heap[:, 0] if m == 1 else (self.heap[:, 1] if m == 2 else np.minimum(self.heap[:, 1], self.heap[:, 2]))
        return self.heap[:, 0].copy(), second.copy()

    def count_above(self, bound: np.ndarray) -> int:
        """Values with ``|value| > bound_j`` in their column ``j``, exact for ``bound_j`` at
        least the ``m``-th largest (every other value is at most that)."""
        if np.any(bound < self.heap[:, 0]):
            raise ValueError("bound must be at least the m-th largest magnitude of every column")
        return int(np.count_nonzero(self.heap > np.asarray(bound)[:, None]))


def largest(values: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``m``-th and ``(m - 1)``-th largest magnitude ``|value|`` of every column (last
    axis) of ``values`` (a, b, p), over its first two axes, in one streaming pass
    (:class:`Largest`); the second is the first when ``m = 1``. Reference:
    ``np.sort(np.abs(values).reshape(-1, p), axis=0)[[n - m, n - m + 1]]``."""
    if not 1 <= m <= values.shape[0] * values.shape[1]:
        raise ValueError(f"m must be in [1, {values.shape[0] * values.shape[1]}], got {m}")
    return Largest(values.shape[2], int(m)).add(values).order_statistics()


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _count_above(values, bound):  # pragma: no cover - compiled
    a, b, p = values.shape
    count = 0
    for i in range(a):
        for r in range(b):
            row = values[i, r]
            for j in range(p):
                count += abs(row[j]) > bound[j]
    return count


def count_above(values: np.ndarray, bound: np.ndarray) -> int:
    """How many entries of ``values`` (a, b, p) have ``|value| > bound_j`` (``bound`` (p,),
    by column), in one streaming pass. Reference: ``np.count_nonzero(np.abs(values) > bound)``."""
    return int(_count_above(values, np.ascontiguousarray(bound, dtype=np.float64)))
