"""Where studies write their figures and claim results (``results.json``).

The folder is ``$IMCLIB_FIGURES_DIR`` if set, else the git-ignored ``.imclib-figures/`` at the
repository root. ``python3 workbook.py reproduce`` sets it to ``figures/`` (the committed
figures) or ``DIR/figures`` (``--output DIR``), the test command to a temporary folder; a
notebook run by hand (JupyterLab, ``jupyter nbconvert --execute``) therefore never rewrites a
tracked file.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from ._files import atomic_write

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

SCRATCH_FIGURES = Path(__file__).resolve().parents[1] / ".imclib-figures"
"""Where a notebook run by hand writes its figures and ``results.json`` (git-ignored)."""


def figures_dir() -> Path:
    """The folder figures and ``results.json`` go to: ``$IMCLIB_FIGURES_DIR`` if set, else
    :data:`SCRATCH_FIGURES` (created if missing)."""
    folder = Path(os.environ.get("IMCLIB_FIGURES_DIR") or SCRATCH_FIGURES)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def strict_json(value):
    """``value`` with every non-finite float (NaN, +-inf) replaced by None, in nested dicts,
    lists and tuples: strict JSON (RFC 8259 has no NaN) writes them as ``null``."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(item) for item in value]
    return value


def record_claim(claim: str, statement: str, measured: dict, passed: bool, paper: dict | None = None,
                 verdict: str | None = None, criterion: str | None = None, *, by_scheme: dict | None = None,
                 statistics: dict | None = None) -> dict:
    """Write one claim's measured values and verdict into ``results.json`` and return the entry.

    Parameters
    ----------
    claim : str
        Claim id, ``"C1"`` .. ``"C6"``.
    statement : str
        The claim in one sentence.
    measured : dict
        Measured values (JSON-able numbers, rounded as they should be reported); NaN and
        infinities are written as ``null`` (shown as "n/a"), like every non-finite number
        of the entry.
    passed : bool
        Whether the measurement supports the claim.
    paper : dict, optional
        The source paper's values where it gives any.
    verdict : {"reproduced", "partly", "not reproduced"}, optional
        Overall verdict (``partly``: the criterion holds under some decode schemes only);
        by default ``reproduced`` when ``passed``, else ``not reproduced``.
    criterion : str, optional
        The criterion, stated before the measurement, in one line.
    by_scheme : dict, optional
        Decode scheme name -> whether the criterion holds under it.
    statistics : dict, optional
        Seed statistics, stored as top-level keys of the entry: ``n_seeds`` and ``ci95``
        and/or ``p_value``.

    Notes
    -----
    Safe with concurrent writers: the read-modify-write runs under an exclusive advisory
    lock (``fcntl.flock`` on ``.results.json.lock``), and the new file is written under a
    unique temporary name and moved into place with ``os.replace``.

    Raises
    ------
    ValueError
        If the existing ``results.json`` is not a JSON object (the message names the file;
        it is left untouched).
    """
    if verdict is not None and verdict not in ("reproduced", "partly", "not reproduced"):
        raise ValueError(f"verdict must be 'reproduced', 'partly' or 'not reproduced', got {verdict!r}")
    entry = {"statement": statement, "measured": measured, "paper": paper or {}, "passed": bool(passed)}
    verdict = verdict or ("reproduced" if passed else "not reproduced")
    extra = {"verdict": verdict, "by_scheme": by_scheme, "criterion": criterion, **(statistics or {})}
    entry.update({key: value for key, value in extra.items() if value is not None})
    entry = strict_json(entry)
    json.dumps(entry, allow_nan=False)  # a value JSON cannot hold raises TypeError here, before the file is touched
    path = figures_dir() / "results.json"
    with open(path.with_name(f".{path.name}.lock"), "a") as lock:
        if fcntl is not None:  # POSIX; elsewhere the atomic replace still prevents torn files
            fcntl.flock(lock, fcntl.LOCK_EX)
        results = read_results(path) if path.exists() else {}
        results[claim] = entry
        new_text = json.dumps(strict_json(dict(sorted(results.items()))), indent=2, allow_nan=False) + "\n"
        atomic_write(path, lambda file: file.write(new_text.encode()))
    return entry


def read_results(path: Path) -> dict:
    """The claims in a ``results.json``; a clear ``ValueError`` naming the file if it is corrupt."""
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is corrupt ({error}); delete it or restore it from git "
                         "(git checkout -- figures/results.json)") from error
    if not isinstance(results, dict):
        raise ValueError(f"{path} is corrupt: expected a JSON object of claims, got {type(results).__name__}")
    return results
