"""One verdict rule for every per-scheme claim (imclib.experiments.verdicts), checked on
synthetic records: the check passes a consistent record and fails an inconsistent one."""

import json

import pytest

from imclib.config import DECODE_SCHEMES as SCHEMES
from imclib.experiments import errors, verdicts


def test_verdict_check_passes_consistent_records_and_fails_inconsistent_ones():
    # the record shipped before this rule: C6 "partly" with every scheme failing and no part named
    stale = {"verdict": "partly", "by_scheme": dict.fromkeys(SCHEMES, False)}
    assert verdicts.verdict_problems(stale) and "the rule gives 'not reproduced'" in verdicts.verdict_problems(stale)[0]
    # the same verdict with the part that holds named (in measured, as notebook 05 records it): consistent
    assert verdicts.verdict_problems({**stale, "measured": {"parts_held": ["differential: error"]}}) == []
    # C4: fails under differential only -> partly (consistent); "reproduced" with a failing scheme is not
    c4 = {"offset/digital": True, "offset/reference": True, "differential": False}
    assert verdicts.verdict_problems({"verdict": "partly", "by_scheme": c4}) == []
    assert verdicts.verdict_problems({"verdict": "reproduced", "by_scheme": c4})
    # C3: fails under every scheme -> not reproduced; "partly" would not follow
    c3 = dict.fromkeys(SCHEMES, False)
    assert verdicts.verdict_problems({"verdict": "not reproduced", "by_scheme": c3}) == []
    assert verdicts.verdict_problems({"verdict": "partly", "by_scheme": c3})
    assert verdicts.verdict_problems({"verdict": "reproduced", "by_scheme": {}}) == ["by_scheme is missing or empty"]
    with pytest.raises(ValueError, match="by_scheme must name at least one"):
        verdicts.verdict({})


def test_c4_c5_and_c3_criteria_state_the_verdict_rule_first():
    from imclib.experiments import pca

    for criterion in (errors.C4_CRITERION, errors.C5_CRITERION, pca.CRITERION):
        assert criterion.startswith(verdicts.VERDICT_RULE + ". The criterion")


def test_c4_and_c5_records_refuse_a_verdict_the_rule_does_not_give(tmp_path, monkeypatch):
    monkeypatch.setenv("IMCLIB_FIGURES_DIR", str(tmp_path))
    by_scheme = {"offset/digital": True, "offset/reference": True, "differential": False}
    result = {"verdict": "reproduced", "by_scheme": by_scheme, "measured": {}, "statistics": {}}
    for claim in ("C4", "C5"):
        with pytest.raises(ValueError, match=f"{claim}: verdict 'reproduced' .* the rule gives 'partly'"):
            errors.record(claim, result)
    assert not (tmp_path / "results.json").exists()
    entry = errors.record("C4", {**result, "verdict": "partly"})
    assert entry["verdict"] == json.loads((tmp_path / "results.json").read_text())["C4"]["verdict"] == "partly"
