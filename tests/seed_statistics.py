"""Margins of the statistical tests, from the tests' own spread.

A claim such as "hardware-aware training beats post-training quantization" is checked on
one difference per training seed (each seed is one independent training trajectory, the
way a different CPU's floating-point rounding gives another one), and must exceed 4
standard errors of those differences: no hand-picked margin, and no dependence on which
trajectory one machine happens to follow.
"""

from __future__ import annotations

import numpy as np


def assert_above_four_standard_errors(differences, what: str) -> tuple[float, float]:
    """Assert ``mean(differences) > 4 * sd(differences) / sqrt(n)`` (sample sd, n - 1), print
    both sides (``pytest -rP`` shows them), and return ``(mean, standard_error)``.

    Differences all zero, or centred on zero, fail: the claimed effect must be there.
    """
    differences = np.asarray(differences, dtype=float)
    if differences.size < 3:
        raise ValueError(f"need >= 3 independent differences for a standard error, got {differences.size}")
    mean = float(differences.mean())
    standard_error = float(differences.std(ddof=1) / np.sqrt(differences.size))
    summary = (f"{what}: mean difference {mean:.4f}, 4 standard errors {4 * standard_error:.4f} "
               f"(n = {differences.size}: {np.round(differences, 3).tolist()})")
    print(summary)
    assert mean > 4 * standard_error, summary
    return mean, standard_error
