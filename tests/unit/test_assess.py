"""assess(): validation, degradation with missing input, and the summary contract of ARCHITECTURE.md."""

import json
import math
from datetime import date

import pytest

from fhircac.clinical.assess import assess
from fhircac.clinical.errors import InvalidInput
from fhircac.clinical.policies import ACC_AHA_2018, LIFESTYLE_FIRST
from fhircac.clinical.record import (
    CacScan,
    DrugClass,
    Measurement,
    MedicationPeriod,
    PatientRecord,
    Race,
    StatedAge,
    Vessel,
)
from fhircac.clinical.summary import to_summary
from tests.builders import AS_OF, SCAN_DATE, ids, labs, record, run, statin


def problems(rec: PatientRecord, as_of: date = AS_OF) -> list[str]:
    with pytest.raises(InvalidInput) as error:
        assess(rec, ACC_AHA_2018, as_of=as_of)
    return [p.field for p in error.value.problems]


# --- impossible input -----------------------------------------------------------------------------


@pytest.mark.parametrize("score", [-1, math.nan, math.inf, 60_000])
def test_impossible_scores(score: float) -> None:
    assert problems(record(score)) == ["cac"]


@pytest.mark.parametrize("age", [-1, 121, math.nan])
def test_impossible_ages(age: float) -> None:
    assert problems(record(10, age=age)) == ["age"]


def test_scan_after_the_assessment_date() -> None:
    assert problems(record(10), as_of=date(2025, 1, 1)) == ["cac.date"]


def test_two_scans_on_one_day_are_ambiguous() -> None:
    assert "cac.date" in problems(record(10, prior=(5, SCAN_DATE)))


def test_vessel_consistency() -> None:
    zero = {Vessel.LEFT_MAIN: 0.0, Vessel.LAD: 0.0, Vessel.LCX: 0.0, Vessel.RCA: 0.0}
    assert problems(record(50, vessel_scores=zero)) == ["cac.vessels"]
    assert problems(record(0, vessel_scores={**zero, Vessel.LAD: 3.0})) == ["cac.vessels"]
    assert problems(record(50, vessel_scores={**zero, Vessel.RCA: -2.0})) == ["cac.rca"]


def test_vessel_inconsistency_is_reported_beside_an_unrelated_problem() -> None:
    zero = dict.fromkeys(Vessel, 0.0)
    assert problems(record(50, vessel_scores=zero), as_of=date(2025, 1, 1)) == ["cac.date", "cac.vessels"]


def test_impossible_lab_and_every_problem_reported_at_once() -> None:
    fields = problems(record(-5, age=200, labs=labs(hdl=0), systolic_bp=Measurement(20, "mm[Hg]")))
    assert fields == ["cac", "age", "hdl", "systolic_bp"]


def test_no_scan() -> None:
    assert problems(PatientRecord(scans=())) == ["cac"]


def test_medication_ending_before_it_starts() -> None:
    bad = MedicationPeriod(DrugClass.STATIN, date(2024, 1, 1), date(2023, 1, 1))
    assert problems(record(10, medications=(bad,))) == ["medications[0]"]


# --- outside a formula's range degrades, never fails --------------------------------------------------


def test_age_30_gives_null_figures_with_reasons() -> None:
    result = run(10, age=30, labs=labs(total_cholesterol=200, hdl=50), systolic_bp=Measurement(120, "mm[Hg]"))
    assert result.percentile is None and result.risk.mesa_chd_10y_with_cac is None
    assert result.risk.pce_ascvd_10y is None
    assert {"percentile-not-computed", "mesa-risk-not-computed", "pce-not-computed"} <= ids(result.warnings)


def test_other_race_percentile_and_mesa_not_computed_but_pce_is() -> None:
    result = run(
        10, race=Race.OTHER, labs=labs(total_cholesterol=200, hdl=50), systolic_bp=Measurement(120, "mm[Hg]")
    )
    assert result.percentile is None and result.risk.mesa_chd_10y_with_cac is None
    assert result.risk.pce_ascvd_10y is not None
    assert "White, Black, Hispanic and Chinese" in " ".join(w.text for w in result.warnings)


def test_missing_inputs_are_listed_with_what_they_would_change() -> None:
    result = run(120, age=None, sex=None, race=None, diabetes=None)
    missing = {m.field: m.needed_for for m in result.missing}
    assert {"age", "sex", "race", "total_cholesterol", "hdl", "systolic_bp", "diabetes"} <= set(missing)
    assert any("MESA percentile" in p for p in missing["race"])
    assert result.risk.mesa_chd_10y_with_cac is None and result.percentile is None


def test_reported_percentile_wins_over_the_estimate() -> None:
    result = run(35, age=46, reported_percentile=42)
    assert result.percentile is not None
    assert (result.percentile.value, result.percentile.estimated, result.percentile.reference) == (
        42,
        False,
        "reported",
    )


def test_percentile_is_estimated_from_the_model() -> None:
    # REFERENCE §3 check value: 62 F Black, CAC 120 → 91st percentile
    from fhircac.clinical.record import Sex

    result = run(120, age=62, sex=Sex.FEMALE, race=Race.BLACK)
    assert result.percentile is not None
    assert (result.percentile.value, result.percentile.estimated, result.percentile.reference) == (
        91,
        True,
        "MESA",
    )


def test_latest_scan_is_current_whatever_the_order() -> None:
    scans = (CacScan(300, date(2025, 6, 1)), CacScan(100, date(2020, 6, 1)))
    result = assess(PatientRecord(scans=scans, age=StatedAge(60, date(2025, 6, 1))), as_of=AS_OF)
    assert result.score.agatston == 300 and result.progression is not None
    assert result.progression.prior_agatston == 100


def test_statin_during_interval_only_counts_when_it_overlaps() -> None:
    before = run(
        200, prior=(100, date(2020, 1, 1)), medications=(statin(date(2015, 1, 1), date(2019, 1, 1)),)
    )
    during = run(200, prior=(100, date(2020, 1, 1)), medications=(statin(date(2022, 1, 1)),))
    assert before.progression is not None and not before.progression.on_statin
    assert during.progression is not None and during.progression.on_statin


# --- summary contract -------------------------------------------------------------------------------

ARCHITECTURE_KEYS = {
    "patient",
    "as_of",
    "policy",
    "score",
    "percentile",
    "risk",
    "progression",
    "next_scan",
    "metabolic_state",
    "recommendations",
    "warnings",
    "missing",
}


@pytest.mark.parametrize("policy", [ACC_AHA_2018, LIFESTYLE_FIRST])
def test_summary_has_the_architecture_shape(policy) -> None:  # type: ignore[no-untyped-def]
    summary = to_summary(
        run(
            120,
            policy=policy,
            prior=(80, date(2023, 1, 1)),
            medications=(statin(),),
            vessel_scores={Vessel.LAD: 100.0, Vessel.RCA: 20.0, Vessel.LCX: 0.0, Vessel.LEFT_MAIN: 0.0},
            labs=labs(total_cholesterol=200, hdl=50),
            systolic_bp=Measurement(130, "mm[Hg]"),
        )
    )
    assert set(summary) >= ARCHITECTURE_KEYS
    json.dumps(summary)  # serialisable
    assert summary["policy"] == {"id": policy.id.value, "version": policy.version}
    assert summary["score"]["band"] == "100-399" and summary["score"]["fine_band"] == "101-400"
    assert summary["score"]["cac_drs"] == "A2/N2" and summary["score"]["vessels_with_calcium"] == 2
    assert summary["score"]["date"] == SCAN_DATE.isoformat() and summary["as_of"] == AS_OF.isoformat()
    risk = summary["risk"]
    assert 0 < risk["mesa_chd_10y_with_cac"] < 1 and 0 < risk["pce_ascvd_10y"] < 1
    progression = summary["progression"]
    assert set(progression) >= {
        "prior_agatston",
        "prior_date",
        "years",
        "annualized_percent",
        "sqrt_delta",
        "significant",
        "on_statin",
        "interpretation",
    }
    assert progression["on_statin"] is True and progression["prior_date"] == "2023-01-01"
    assert summary["metabolic_state"] in {"active", "calm", "unknown"}
    for statement in summary["recommendations"] + summary["warnings"]:
        assert set(statement) == {"id", "text", "source"}
    assert all(isinstance(m, str) and ": needed for " in m for m in summary["missing"])
    assert summary["next_scan"]["earliest"] == "2029-01-15"
