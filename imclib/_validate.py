"""Argument checks shared by the configs and the simulation entry points.

Every check raises ``ValueError`` naming the parameter and the allowed range (or type).
Numbers must be real numbers: ``bool``, complex numbers, strings and ``None`` are refused,
so ``sense_noise=True`` or ``quantize="False"`` never slip through as ``1`` or ``True``.
"""

from __future__ import annotations

import math
import numbers
import os

import numpy as np

MEMORY_LIMIT_BYTES = 4 * 2**30
"""Largest working memory (bytes) one call may ask for before it is refused;
``$IMCLIB_MEMORY_LIMIT_GB`` overrides it."""


def _describe(value) -> str:
    return f"{value!r} ({type(value).__name__})"


def real(name: str, value) -> float:
    """Require a real number (int or float, numpy scalars included; not bool, complex,
    str or None) and return it as a ``float``. NaN and inf pass; the range checks refuse them."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real number, got {_describe(value)}")
    return float(value)


def positive(name: str, value: float, *, allow_inf: bool = False) -> None:
    """Require ``0 < value`` (finite unless ``allow_inf``)."""
    upper = "inf]" if allow_inf else "inf)"
    message = f"{name} must be in (0, {upper}, got {_describe(value)}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(message)
    number = float(value)
    if math.isnan(number) or number <= 0 or (math.isinf(number) and not allow_inf):
        raise ValueError(message)


def positive_sequence(name: str, value, length: int, per: str) -> list[float]:
    """Require a sequence of ``length`` numbers (one per ``per``), each in (0, inf); return
    them as floats."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__len__"):
        raise ValueError(f"{name} must be a sequence of one value per {per} ({length}), got {_describe(value)}")
    if len(value) != length:
        raise ValueError(f"{name} must give one value per {per} ({length}), got {len(value)}")
    for index, item in enumerate(value):
        positive(f"{name}[{index}]", item)
    return [float(item) for item in value]


def non_negative(name: str, value: float) -> None:
    """Require ``0 <= value < inf``."""
    message = f"{name} must be in [0, inf), got {_describe(value)}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(message)
    number = float(value)
    if not 0 <= number < math.inf:
        raise ValueError(message)


def in_range(name: str, value: float, low: float, high: float, unit: str = "") -> None:
    """Require ``low <= value <= high`` (``unit`` is named in the message)."""
    unit = f" {unit}" if unit else ""
    message = f"{name} must be in [{low:g}, {high:g}]{unit}, got {_describe(value)}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(message)
    number = float(value)
    if not low <= number <= high:
        raise ValueError(message)


def zero_or_in_range(name: str, value: float, low: float, high: float, unit: str = "") -> None:
    """Require ``value == 0`` or ``low <= value <= high`` (e.g. a wire resistance: 0 is an
    ideal wire, a tiny non-zero one would make ``1/r`` overflow or the solve ill-conditioned)."""
    unit = f" {unit}" if unit else ""
    message = f"{name} must be 0 or in [{low:g}, {high:g}]{unit}, got {_describe(value)}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(message)
    number = float(value)
    if number != 0 and not low <= number <= high:
        raise ValueError(message)


def integer_at_least(name: str, value: int, low: int) -> None:
    """Require an integer ``value >= low``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {_describe(value)}")


def integer_in_range(name: str, value: int, low: int, high: int) -> None:
    """Require an integer ``low <= value <= high``."""
    if (isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer))
            or not low <= value <= high):
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {_describe(value)}")


def optional_bits(name: str, value: int | None) -> None:
    """Require ``None`` (converter off) or an integer number of bits in [1, 32]."""
    if value is not None:
        integer_at_least(name, value, 1)
        if value > 32:
            raise ValueError(f"{name} must be None or an integer in [1, 32], got {value!r}")


def boolean(name: str, value) -> None:
    """Require a real ``bool`` (``True``/``False`` or a numpy bool), not a truthy string or number."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {_describe(value)}")


def instance(name: str, value, cls: type) -> None:
    """Require ``isinstance(value, cls)``."""
    if not isinstance(value, cls):
        raise ValueError(f"{name} must be a {cls.__name__}, got {_describe(value)}")


def choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    """Require ``value`` to be one of ``allowed``."""
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def finite_array(name: str, value, ndim: int, keep_float32: bool = False) -> np.ndarray:
    """Return ``value`` as a float64 array of ``ndim`` dimensions with only finite entries
    (a float32 array as it is with ``keep_float32``, for callers that convert it themselves).

    Refused, with a message naming ``name``: masked arrays (the mask would be dropped),
    complex values (the imaginary part would be dropped), strings, objects and ragged
    nesting, a wrong number of dimensions, an empty array (a zero length along any axis),
    NaN and inf.
    """
    if isinstance(value, np.ma.MaskedArray):
        raise ValueError(f"{name} must be a plain array, got a masked array (fill or drop the masked "
                         "entries first)")
    try:
        raw = np.asarray(value)
    except ValueError as error:  # ragged nesting
        raise ValueError(f"{name} must be a rectangular array of real numbers: {error}") from None
    if raw.dtype.kind == "c":
        raise ValueError(f"{name} must hold real numbers, got complex dtype {raw.dtype}")
    if raw.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold real numbers, got dtype {raw.dtype} "
                         "(strings, objects or ragged nesting)")
    if raw.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D array, got shape {raw.shape}")
    if raw.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {raw.shape}")
    array = raw if keep_float32 and raw.dtype == np.float32 else raw.astype(np.float64, copy=False)
    if not all_finite(array):
        raise ValueError(f"{name} must contain only finite values (no NaN or inf)")
    return array


def all_finite(array: np.ndarray) -> bool:
    """Whether every entry of the float array is finite: their sum is finite unless one is
    NaN or infinite or the sum overflows, so a finite sum decides in one pass without a
    temporary; otherwise the entries are checked one by one."""
    with np.errstate(over="ignore", invalid="ignore"):
        if np.isfinite(np.add.reduce(array, axis=None)):
            return True
    return bool(np.all(np.isfinite(array)))


def features(name: str, value, n_in: int) -> np.ndarray:
    """:func:`finite_array` of shape ``(batch, n_in)``: inputs of a layer or network."""
    array = finite_array(name, value, 2)
    if array.shape[1] != n_in:
        raise ValueError(f"{name} must have shape (batch, {n_in}), one column per input, got shape {array.shape}")
    return array


def magnitude_at_most(name: str, array: np.ndarray, limit: float, why: str) -> None:
    """Require ``max |array| <= limit`` (``array`` already checked finite), saying ``why``."""
    largest = float(np.max(np.abs(array), initial=0.0))
    if largest > limit:
        raise ValueError(f"{name} must have |{name}| <= {limit:g} ({why}), got max |{name}| = {largest:.3g}")


def class_labels(name: str, value, n_samples: int, n_classes: int) -> np.ndarray:
    """Return ``value`` as int64 class labels of shape ``(n_samples,)``, each an integer in
    ``[0, n_classes)``; integer-valued floats are accepted, bools and fractions refused."""
    labels = np.asarray(value)
    if labels.shape != (n_samples,):
        raise ValueError(f"{name} must have shape ({n_samples},), one label per input, got shape {labels.shape}")
    if labels.dtype.kind not in "iuf":
        raise ValueError(f"{name} must hold integer class labels, got dtype {labels.dtype}")
    if not np.all(np.isfinite(labels)) or np.any(labels != np.round(labels)):
        raise ValueError(f"{name} must hold integer class labels in [0, {n_classes}), got non-integer values")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise ValueError(f"{name} must hold class labels in [0, {n_classes}) (the model has {n_classes} outputs), "
                         f"got values in [{labels.min():g}, {labels.max():g}]")
    return labels.astype(np.int64)


def seed(name: str, value, *, optional: bool = False) -> int | None:
    """Require a non-negative integer seed (not bool), or also ``None`` when ``optional``;
    return it as an ``int`` (or ``None``)."""
    if optional and value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 0:
        allowed = "None or a non-negative integer" if optional else "a non-negative integer"
        raise ValueError(f"{name} must be {allowed}, got {_describe(value)}")
    return int(value)


def finite_scale(name: str, numerator: float, denominator: float, explain: str) -> float:
    """Return ``numerator / denominator``, refusing a result that is not finite and non-zero
    (e.g. ``v_read / x_max`` for inputs so small that the scale overflows)."""
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        ratio = float(np.float64(numerator) / np.float64(denominator))
    if not math.isfinite(ratio) or ratio == 0:
        raise ValueError(f"{name} = {numerator!r} / {denominator!r} is not a finite non-zero number: {explain}")
    return ratio


def memory_limit_bytes() -> int:
    """:data:`MEMORY_LIMIT_BYTES`, or ``$IMCLIB_MEMORY_LIMIT_GB`` gigabytes when set."""
    override = os.environ.get("IMCLIB_MEMORY_LIMIT_GB")
    return int(float(override) * 2**30) if override else MEMORY_LIMIT_BYTES


def memory(what: str, n_bytes: float) -> None:
    """Refuse a call that needs more than :func:`memory_limit_bytes` of working memory,
    naming the estimate."""
    limit = memory_limit_bytes()
    if n_bytes > limit:
        raise ValueError(f"{what} needs about {n_bytes / 2**30:.3g} GiB of memory, above the limit of "
                         f"{limit / 2**30:.3g} GiB (set IMCLIB_MEMORY_LIMIT_GB to raise it)")


def generator(rng: np.random.Generator | int | None) -> np.random.Generator:
    """``rng`` itself if it is a ``numpy.random.Generator``, else one seeded with it
    (``None``, a non-negative integer or a ``numpy.random.SeedSequence``)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, np.random.SeedSequence):
        return np.random.default_rng(rng)
    try:
        return np.random.default_rng(seed("rng", rng))
    except ValueError:
        raise ValueError(f"rng must be a numpy.random.Generator, a non-negative integer seed or None, "
                         f"got {_describe(rng)}") from None
