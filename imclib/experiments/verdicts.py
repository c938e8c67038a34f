"""One rule from a per-scheme criterion to a claim's verdict, and a check that a recorded
verdict follows it (C2-C8 judge every decode scheme of :data:`imclib.config.DECODE_SCHEMES`).

Kept apart from the studies so that a study's cached tables (keyed by the source of the
modules it imports, :mod:`imclib.experiments.tables`) do not depend on another study's code.
"""

from __future__ import annotations

VERDICT_RULE = ("verdict: reproduced if the criterion holds under every decode scheme, partly if it holds under "
                "some, or if a stated part of it holds under some scheme (the parts held are recorded), not "
                "reproduced otherwise")
"""How every per-scheme claim's verdict follows from ``by_scheme`` (and, for a criterion with
stated parts, the parts held): :func:`verdict`; :func:`verdict_problems` checks a record."""


def verdict(by_scheme: dict, parts_held=()) -> str:
    """:data:`VERDICT_RULE`: ``reproduced`` if the criterion holds under every decode scheme
    (``by_scheme``: scheme -> bool, not empty), ``partly`` if under some or if ``parts_held``
    (the stated parts of the criterion that hold under some scheme, e.g. ``"differential:
    error"``) is not empty, ``not reproduced`` otherwise."""
    if not by_scheme:
        raise ValueError("by_scheme must name at least one decode scheme, got none")
    held = [bool(v) for v in by_scheme.values()]
    return "reproduced" if all(held) else "partly" if any(held) or len(parts_held) else "not reproduced"


def verdict_problems(record: dict) -> list[str]:
    """Why a claim's ``verdict`` does not follow from its ``by_scheme`` (and its
    ``parts_held``, if it states parts: a key of the record or of its ``measured``) by
    :data:`VERDICT_RULE`; empty if it does. ``record``: a ``results.json`` entry or a
    study's result dict."""
    by_scheme = record.get("by_scheme") or {}
    parts = record.get("parts_held") or (record.get("measured") or {}).get("parts_held", ())
    if not by_scheme:
        return ["by_scheme is missing or empty"]
    expected = verdict(by_scheme, parts)
    if record.get("verdict") != expected:
        held = [s for s, ok in by_scheme.items() if ok]
        return [f"verdict {record.get('verdict')!r} but by_scheme holds under {held or 'no scheme'} and "
                f"parts_held is {list(parts) or 'empty'}: the rule gives {expected!r}"]
    return []


def require_consistent(claim: str, record: dict) -> None:
    """Raise a ValueError naming ``claim`` and the problem if :func:`verdict_problems` finds
    any in ``record``; called before a verdict is written to ``results.json``."""
    problems = verdict_problems(record)
    if problems:
        raise ValueError(f"{claim}: {'; '.join(problems)}")
