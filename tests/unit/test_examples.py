"""examples/: every bundle evaluates to its expected summary, and each case shows what it claims to.

The expected files are the reviewed output of ``fhircac evaluate --format summary --as-of 2026-11-01``;
regenerate them after an intended change with ``FHIRCAC_UPDATE_EXPECTED=1 make unit`` and review
the diff. The scenario tests below check each case's point independently of those files.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from fhircac.clinical.policies import POLICIES, get_policy
from fhircac.evaluate import Evaluation, evaluate

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXPECTED = EXAMPLES / "expected"
AS_OF = date(2026, 11, 1)
CASES = sorted(p.stem for p in EXAMPLES.glob("[0-9][0-9]-*.json"))


@cache
def evaluation(case: str, policy: str = "acc-aha-2018") -> Evaluation:
    document = json.loads((EXAMPLES / f"{case}.json").read_text(encoding="utf-8"))
    evaluations, issues = evaluate(
        [(f"examples/{case}.json", document)], get_policy(policy), AS_OF, datetime.now(UTC)
    )
    assert [str(i) for i in issues if i.is_error] == []
    (only,) = evaluations
    return only


def summary(case: str, policy: str = "acc-aha-2018") -> dict[str, Any]:
    return evaluation(case, policy).summary()


def ids(statements: list[dict[str, str]]) -> set[str]:
    return {s["id"] for s in statements}


def test_there_are_at_least_eleven_cases() -> None:
    assert len(CASES) >= 11


@pytest.mark.parametrize("policy", sorted(POLICIES))
@pytest.mark.parametrize("case", CASES)
def test_example_matches_its_expected_summary(case: str, policy: str) -> None:
    suffix = "" if policy == "acc-aha-2018" else f".{policy}"
    path = EXPECTED / f"{case}{suffix}.summary.json"
    actual = summary(case, policy)
    if os.environ.get("FHIRCAC_UPDATE_EXPECTED"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(actual, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    assert actual == json.loads(path.read_text(encoding="utf-8"))


def test_every_expected_file_has_its_example() -> None:
    stems = {p.name.split(".")[0] for p in EXPECTED.glob("*.summary.json")}
    assert stems == set(CASES)


# -- what each case is for ------------------------------------------------------------------------------
def test_01_cac_zero_low_risk() -> None:
    s = summary("01-cac-zero-low-risk")
    assert s["score"]["band"] == "0" and s["risk"]["pce_band"] == "low"
    assert "statin-cac-0-withhold" in ids(s["recommendations"])
    assert date.fromisoformat(s["next_scan"]["earliest"]) >= date.fromisoformat(s["score"]["date"]).replace(
        year=date.fromisoformat(s["score"]["date"]).year + 3
    )


def test_02_cac_zero_with_diabetes_is_not_a_reason_to_withhold() -> None:
    s = summary("02-cac-zero-diabetes")
    assert s["score"]["band"] == "0"
    assert "statin-diabetes" in ids(s["recommendations"])
    assert "statin-cac-0-withhold" not in ids(s["recommendations"])


def test_03_cac_1_99_at_55_or_over() -> None:
    s = summary("03-cac-1-99-over-55")
    assert s["score"]["band"] == "1-99" and "statin-cac-1-99" in ids(s["recommendations"])


def test_04_above_the_75th_percentile() -> None:
    s = summary("04-cac-100-399-above-75th")
    assert s["score"]["band"] == "100-399" and s["percentile"]["value"] >= 75 and s["percentile"]["estimated"]


def test_05_high_score_metabolically_calm_shows_the_policies_disagree() -> None:
    acc, lifestyle = (
        summary("05-cac-400-metabolically-calm"),
        summary("05-cac-400-metabolically-calm", "lifestyle-first"),
    )
    assert acc["score"]["band"] == "≥400" and lifestyle["metabolic_state"] == "calm"
    assert "policy-divergence-statin" in ids(acc["warnings"]) and "policy-divergence-statin" in ids(
        lifestyle["warnings"]
    )
    assert "statin-cac-100" in ids(acc["recommendations"]) and "lf-cac-400-calm" in ids(
        lifestyle["recommendations"]
    )


def test_06_rise_on_a_statin_is_read_as_expected_not_failure() -> None:
    s = summary("06-rising-on-statin")
    progression = s["progression"]
    assert progression["on_statin"] is True and progression["annualized_percent"] > 0
    assert "expected" in progression["interpretation"]
    assert "progression-marker-excluded-on-statin" in ids(
        summary("06-rising-on-statin", "lifestyle-first")["warnings"]
    )


def test_07_rapid_rise_without_a_statin() -> None:
    s = summary("07-rapid-rise-no-statin")
    assert s["progression"]["rapid"] is True and s["progression"]["on_statin"] is False


def test_08_known_coronary_disease() -> None:
    s = summary("08-known-cad-stent")
    assert "secondary-prevention" in ids(s["recommendations"])
    assert s["risk"]["mesa_chd_10y_with_cac"] is None and s["next_scan"]["earliest"] is None


def test_09_per_vessel_scores_give_the_n_modifier() -> None:
    s = summary("09-per-vessel-scores")
    assert s["score"]["cac_drs"] == "A2/N2" and s["score"]["vessels_with_calcium"] == 2


def test_10_si_units_are_converted() -> None:
    record = evaluation("10-si-units").read.record
    assert record is not None and record.labs.total_cholesterol is not None
    assert record.labs.total_cholesterol.unit == "mg/dL" and record.labs.lpa is not None
    assert record.labs.lpa.unit == "nmol/L"
    assert summary("10-si-units")["risk"]["mesa_chd_10y_with_cac"] is not None


def test_11_missing_race_and_labs_degrade_and_say_so() -> None:
    s = summary("11-missing-race-and-labs")
    assert s["percentile"] is None and s["risk"]["pce_ascvd_10y"] is None
    missing = " ".join(s["missing"])
    for name in ("race", "total_cholesterol", "hdl", "known_cad"):
        assert name in missing
    assert any("no medication list" in note for note in s["input_notes"])


def test_examples_are_what_the_generator_writes() -> None:
    import subprocess
    import sys

    script = EXAMPLES.parent / "tools" / "make_examples.py"
    result = subprocess.run(
        [sys.executable, str(script), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
