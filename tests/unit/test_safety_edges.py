"""Edge cases where an earlier version gave a misleading answer (found in review); each is pinned here."""

import json
from datetime import date

import pytest

from fhircac.cli import EXIT_BAD_INPUT, main
from fhircac.clinical.assessment import MetabolicState
from fhircac.clinical.policies import ACC_AHA_2018, LIFESTYLE_FIRST
from fhircac.clinical.record import CoronaryHistory, DrugClass, Measurement
from tests.builders import ids, labs, run

LF = LIFESTYLE_FIRST
PRIOR_2021 = date(2021, 1, 15)
RISK_INPUTS = {"labs": labs(total_cholesterol=200, hdl=50), "systolic_bp": Measurement(130, "mm[Hg]")}


def missing(result) -> set[str]:  # type: ignore[no-untyped-def]
    return {m.field for m in result.missing}


# --- unknown is not "no" ---------------------------------------------------------------------------


def test_unknown_statin_use_is_not_read_as_no_statin() -> None:
    result = run(200, prior=(100, PRIOR_2021), unknown_medications=frozenset({DrugClass.STATIN}))
    assert result.progression is not None and result.progression.on_statin is None
    assert "if one was, a rise is expected" in result.progression.interpretation
    assert "linked with higher long-term risk" not in result.progression.interpretation
    assert "statin" in missing(result)


def test_unknown_bp_treatment_leaves_the_risk_equations_uncomputed() -> None:
    result = run(50, unknown_medications=frozenset({DrugClass.ANTIHYPERTENSIVE}), **RISK_INPUTS)
    assert result.risk.pce_ascvd_10y is None and result.risk.mesa_chd_10y_with_cac is None
    assert "bp_treated" in missing(result)


def test_unknown_coronary_history_is_reported() -> None:
    assert "known_cad" in missing(run(200, coronary_history_unknown=True))


def test_calc_unknown_flags_reach_the_record(capsys) -> None:  # type: ignore[no-untyped-def]
    main(
        [
            "calc",
            "--cac",
            "200",
            "--prior-cac",
            "100",
            "--prior-date",
            "2021-01-01",
            "--statin",
            "unknown",
            "--known-cad",
            "unknown",
            "--date",
            "2026-01-01",
            "--as-of",
            "2026-02-01",
        ]
    )
    summary = json.loads(capsys.readouterr().out)
    assert summary["progression"]["on_statin"] is None
    assert any(m.startswith("statin:") for m in summary["missing"])
    assert any(m.startswith("known_cad:") for m in summary["missing"])


# --- progression that is not real is not "rapid" and not metabolic unrest ----------------------------


def test_rise_within_variability_is_not_rapid_and_not_unrest() -> None:
    # 400 → 440 in ~6 months: 21 %/year, but √440 − √400 = 0.98 (within variability)
    result = run(440, policy=LF, prior=(400, date(2025, 7, 15)), labs=labs(hs_crp=0.5, apob=70))
    assert result.progression is not None and not result.progression.rapid
    assert result.metabolic.state is MetabolicState.CALM
    assert "lf-aspirin-consider" not in ids(result.recommendations)


def test_new_calcium_from_zero_counts_as_progression() -> None:
    result = run(450, policy=LF, age=60, prior=(0, PRIOR_2021), labs=labs(hs_crp=0.5, apob=70))
    assert result.metabolic.state is MetabolicState.ACTIVE
    assert [m.marker for m in result.metabolic.off_target()] == ["cac_progression"]
    assert "lf-cac-400-active" in ids(result.recommendations)


def test_three_years_to_the_day_is_not_a_short_interval() -> None:
    short = run(150, prior=(100, date(2023, 1, 16))).progression
    exact = run(150, prior=(100, date(2023, 1, 15))).progression
    assert short is not None and "less than 3 years apart" in short.interpretation
    assert exact is not None and "less than 3 years apart" not in exact.interpretation


# --- no contradictions inside one output ------------------------------------------------------------


@pytest.mark.parametrize(
    "indication",
    [
        {"labs": labs(ldl=200)},
        {
            "age": 70,
            "labs": labs(total_cholesterol=280, hdl=35),
            "systolic_bp": Measurement(170, "mm[Hg]"),
            "current_smoker": False,
        },
    ],
)
def test_cac_zero_never_says_withhold_beside_an_indication(indication) -> None:  # type: ignore[no-untyped-def]
    recommendations = ids(run(0, **indication).recommendations)
    assert "statin-cac-0-withhold" not in recommendations
    assert "statin-cac-0-indicated" in recommendations


@pytest.mark.parametrize("policy", [ACC_AHA_2018, LF])
def test_one_repeat_interval_per_output(policy) -> None:  # type: ignore[no-untyped-def]
    for extra in ({"diabetes": True}, {"labs": labs(hdl=35), "medications": ()}):
        result = run(0, policy=policy, **extra)
        statements = " ".join(s.text for s in result.recommendations)
        assert "5-10 years" not in statements and "5 years" not in statements
        assert result.next_scan.suggested == date(2029, 1, 15) or "diabetes" not in extra


def test_lifestyle_first_does_not_call_an_unmeasured_apob_on_target() -> None:
    result = run(150, policy=LF, labs=labs(hs_crp=0.5))
    assert "lf-cac-100-399-lifestyle" not in ids(result.recommendations)
    statement = next(s for s in result.recommendations if s.id == "lf-cac-100-399-measure")
    assert "measure ApoB" in statement.text and "hs-CRP" not in statement.text.split(";")[0]
    assert "apob" in missing(result)


def test_lifestyle_first_insulin_alone_is_not_a_reason_for_medication() -> None:
    result = run(450, policy=LF, labs=labs(fasting_insulin=10, hs_crp=0.5, apob=70))
    assert result.metabolic.state is MetabolicState.ACTIVE
    recommendations = ids(result.recommendations)
    assert "lf-cac-400-active-lifestyle" in recommendations and "lf-cac-400-active" not in recommendations
    assert "lf-aspirin-avoid" in recommendations


# --- policy disagreement is said, for aspirin and repeat scans too ----------------------------------


@pytest.mark.parametrize("policy", [ACC_AHA_2018, LF])
def test_aspirin_and_repeat_scan_divergence_reported(policy) -> None:  # type: ignore[no-untyped-def]
    warnings = ids(run(450, policy=policy, labs=labs(hs_crp=0.5, apob=70, lpa=10)).warnings)
    assert {"policy-divergence-aspirin", "policy-divergence-repeat-scan"} <= warnings


def test_no_aspirin_divergence_when_both_say_no() -> None:
    assert "policy-divergence-aspirin" not in ids(run(450, high_bleeding_risk=True).warnings)


# --- honesty about the percentile estimate ----------------------------------------------------------


def test_estimated_percentile_near_75th_is_flagged() -> None:
    # The model's worst case: 45-year-old white man, CAC 1 → 71, where the official calculator says 75.
    result = run(1, age=45)
    assert result.percentile is not None and result.percentile.value == 71
    assert "percentile-near-75th" in ids(result.warnings)
    assert "percentile-near-75th" not in ids(run(1, age=45, reported_percentile=75).warnings)
    assert "percentile-near-75th" not in ids(run(1, age=60).warnings)  # 34th: no flip possible


def test_missing_percentile_is_listed_for_the_under_55_statement() -> None:
    assert "percentile" in missing(run(30, age=44))


# --- known coronary disease -------------------------------------------------------------------------


def test_known_cad_keeps_symptom_work_up_and_asks_for_nothing_unused() -> None:
    result = run(300, coronary_history=(CoronaryHistory.STENT,), symptoms=True, age=None, sex=None, race=None)
    assert result.recommendations[0].id == "symptoms-evaluate-first"
    assert "risk-equations-not-applicable" in ids(result.warnings)
    assert not missing(result) & {"total_cholesterol", "hdl", "systolic_bp", "hs_crp", "apob"}


def test_acc_aha_does_not_ask_for_markers_it_does_not_use() -> None:
    assert not missing(run(50)) & {"hs_crp", "apob", "fasting_insulin", "triglycerides"}
    # lifestyle-first uses the markers from CAC 100 (review finding 26: at 1-99 they change nothing)
    assert not missing(run(50, policy=LF)) & {"hs_crp", "apob", "fasting_insulin", "triglycerides"}
    assert {"hs_crp", "apob"} <= missing(run(250, policy=LF))


# --- stale results and small CLI problems -----------------------------------------------------------


def test_an_old_scan_says_its_repeat_date_has_passed() -> None:
    result = run(50, scan_date=date(2015, 1, 1), as_of=date(2025, 6, 1))
    assert "repeat-interval-passed" in ids(result.warnings)
    assert "can now be considered" in " ".join(result.explanation.paragraphs)


def test_help_works(capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as exit_info:
        main(["calc", "--help"])
    assert exit_info.value.code == 0 and "HbA1c, % or with a unit" in capsys.readouterr().out


def test_conflicting_lpa_units_are_an_error(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["calc", "--cac", "10", "--lpa", "50 nmol/L", "--lpa-unit", "mg/dL"]) == EXIT_BAD_INPUT
    assert "contradicts --lpa-unit" in capsys.readouterr().err  # the flag typed, not the batch key
