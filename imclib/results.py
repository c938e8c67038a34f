"""Where studies write their figures and claim results (``figures/results.json``).

The folder is ``$IMCLIB_FIGURES_DIR`` if set (the test command points it at a temporary
folder, so only ``python3 workbook.py reproduce`` rewrites the committed figures), else
``figures/`` of the repository.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

REPOSITORY_FIGURES = Path(__file__).resolve().parents[1] / "figures"


def figures_dir() -> Path:
    """The folder figures and ``results.json`` go to (created if missing)."""
    folder = Path(os.environ.get("IMCLIB_FIGURES_DIR", REPOSITORY_FIGURES))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def record_claim(claim: str, statement: str, measured: dict, passed: bool, paper: dict | None = None,
                 verdict: str | None = None, criterion: str | None = None) -> dict:
    """Write one claim's measured values and verdict into ``results.json`` and return the entry.

    Parameters
    ----------
    claim : str
        Claim id, ``"C1"`` .. ``"C6"``.
    statement : str
        The claim in one sentence.
    measured : dict
        Measured values (JSON-able numbers, rounded as they should be reported).
    passed : bool
        Whether the measurement supports the claim.
    paper : dict, optional
        The source paper's values where it gives any.
    verdict : {"reproduced", "partly", "not reproduced"}, optional
        Stored when given.
    criterion : str, optional
        The criterion the measurement was checked against, stated before computing it.
    """
    if verdict is not None and verdict not in ("reproduced", "partly", "not reproduced"):
        raise ValueError(f"verdict must be 'reproduced', 'partly' or 'not reproduced', got {verdict!r}")
    path = figures_dir() / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    entry = {"statement": statement, "measured": measured, "paper": paper or {}, "passed": bool(passed)}
    if criterion is not None:
        entry["criterion"] = criterion
    if verdict is not None:
        entry["verdict"] = verdict
    results[claim] = entry
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(dict(sorted(results.items())), indent=2) + "\n")
    os.replace(tmp, path)
    return entry
