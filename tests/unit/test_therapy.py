"""Therapy and work-up (REFERENCE §7, §9) under both policies, and how their disagreement is reported."""

import pytest

from fhircac.clinical.policies import ACC_AHA_2018, LIFESTYLE_FIRST
from fhircac.clinical.record import CoronaryHistory, Labs, Measurement
from tests.builders import ids, labs, run, statin

ACC, LF = ACC_AHA_2018, LIFESTYLE_FIRST
CALM = labs(hs_crp=0.5, apob=70, lpa=20, ldl=120)
ACTIVE_CRP = labs(hs_crp=3.0, apob=70, lpa=20, ldl=120)
LDL_KNOWN = labs(ldl=120)


def texts(statements) -> str:  # type: ignore[no-untyped-def]
    return " ".join(s.text for s in statements)


# --- acc-aha-2018: statins ---------------------------------------------------------------------------


def test_cac_zero_reasonable_to_withhold() -> None:
    result = run(0, labs=LDL_KNOWN)
    assert "statin-cac-0-withhold" in ids(result.recommendations)
    assert (
        "reasonable to withhold a statin and reassess (this assumes LDL cholesterol below 190 mg/dL); "
        "a repeat scan is suggested around 2031-01-15" in texts(result.recommendations)
    )


@pytest.mark.parametrize(
    ("risk", "named"),
    [
        ({"current_smoker": True}, "current smoking"),
        ({"family_history_premature_chd": True}, "family history"),
    ],
)
def test_cac_zero_exceptions(risk, named: str) -> None:  # type: ignore[no-untyped-def]
    result = run(0, labs=LDL_KNOWN, **risk)
    assert "statin-cac-0-withhold" not in ids(result.recommendations)
    assert "statin-cac-0-exceptions" in ids(result.recommendations)
    assert named in texts(result.recommendations)


def test_cac_zero_with_diabetes_states_the_class_i_indication_once() -> None:
    # review finding 11: no second, weaker "decide from the overall risk" statement next to it
    result = run(0, labs=LDL_KNOWN, diabetes=True)
    assert "statin-diabetes" in ids(result.recommendations)
    assert "statin-cac-0-exceptions" not in ids(result.recommendations)
    assert "Class I" in texts(result.recommendations)


def test_cac_zero_already_on_statin_is_not_told_to_stop() -> None:
    result = run(0, medications=(statin(),))
    assert ids(result.recommendations) & {"statin-cac-0-on-statin"}
    assert "not stopping one" in texts(result.recommendations)


@pytest.mark.parametrize(("age", "rec"), [(55, "statin-cac-1-99"), (54, "statin-cac-1-99-under-55")])
def test_cac_1_99_depends_on_age_55(age: float, rec: str) -> None:
    # a reported percentile below 75 isolates the age rule
    assert rec in ids(run(50, age=age, reported_percentile=60).recommendations)


def test_cac_1_99_at_or_above_75th_percentile() -> None:
    assert "statin-cac-75th-percentile" in ids(run(50, age=50, reported_percentile=75).recommendations)
    assert "statin-cac-75th-percentile" not in ids(run(50, age=50, reported_percentile=74).recommendations)


@pytest.mark.parametrize(("cac", "rec"), [(99, "statin-cac-1-99"), (100, "statin-cac-100")])
def test_cac_100_boundary(cac: float, rec: str) -> None:
    assert rec in ids(run(cac, age=60, reported_percentile=50).recommendations)


def test_statin_wording_is_reasonable_not_must() -> None:
    text = texts(run(500).recommendations)
    assert "reasonable to start a statin" in text and "must" not in text


def test_on_statin_is_acknowledged_as_continue_never_start() -> None:
    text = texts(run(300, medications=(statin(),)).recommendations)
    assert "a statin is already recorded, so continue it" in text
    assert "start" not in text.split("CAC ≥100:")[1].split(".")[0]


def test_diabetes_40_75_statin_whatever_the_score() -> None:
    assert "statin-diabetes" in ids(run(0, diabetes=True).recommendations)
    assert "statin-diabetes" not in ids(run(0, diabetes=True, age=80).recommendations)


# --- acc-aha-2018: aspirin -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cac", "age", "bleeding", "rec"),
    [
        (150, 60, False, "aspirin-may-be-considered"),
        (150, 70, False, "aspirin-may-be-considered"),
        (150, 71, False, "aspirin-not-over-70"),
        (150, 60, True, "aspirin-bleeding-risk"),
    ],
)
def test_aspirin(cac: float, age: float, bleeding: bool, rec: str) -> None:
    recs = run(cac, age=age, high_bleeding_risk=bleeding).recommendations
    aspirin = {i for i in ids(recs) if i.startswith("aspirin")}
    assert aspirin == {rec}


def test_aspirin_is_only_may_be_considered_and_not_below_100() -> None:
    statement = next(s for s in run(150).recommendations if s.id == "aspirin-may-be-considered")
    assert "may be considered" in statement.text and "not routine" in statement.text
    assert not {i for i in ids(run(99).recommendations) if i.startswith("aspirin")}


def test_aspirin_with_unknown_bleeding_risk_needs_a_check_first() -> None:
    result = run(150, high_bleeding_risk=None)
    aspirin = [s for s in result.recommendations if s.id.startswith("aspirin")]
    assert [s.id for s in aspirin] == ["aspirin-bleeding-risk-check"]
    assert "may be considered" not in aspirin[0].text and "check" in aspirin[0].text
    assert any(m.field == "bleeding_risk" for m in result.missing)


# --- risk enhancers and work-up (both policies) ----------------------------------------------------


def test_risk_enhancers_at_their_thresholds() -> None:
    enhancers = Labs(
        hs_crp=Measurement(2.0, "mg/L"),
        lpa=Measurement(125, "nmol/L"),
        apob=Measurement(130, "mg/dL"),
        triglycerides=Measurement(175, "mg/dL"),
    )
    text = texts(run(50, labs=enhancers).recommendations)
    for phrase in ("hs-CRP 2 mg/L", "Lp(a) 125 nmol/L", "ApoB 130 mg/dL", "triglycerides 175 mg/dL"):
        assert phrase in text


def test_risk_enhancers_below_thresholds_are_not_listed() -> None:
    below = Labs(
        hs_crp=Measurement(1.9, "mg/L"), lpa=Measurement(124, "nmol/L"), apob=Measurement(129, "mg/dL")
    )
    assert "risk-enhancers" not in ids(run(50, labs=below).recommendations)
    assert "risk-enhancers" in ids(run(50, labs=Labs(lpa=Measurement(50, "mg/dL"))).recommendations)


@pytest.mark.parametrize("policy", [ACC, LF])
def test_lpa_measured_once_when_high_score_and_never_measured(policy) -> None:  # type: ignore[no-untyped-def]
    assert "lpa-measure-once" in ids(run(100, policy=policy).recommendations)
    assert "lpa-measure-once" not in ids(run(99, policy=policy).recommendations)
    assert "lpa-measure-once" not in ids(run(500, policy=policy, labs=labs(lpa=10)).recommendations)


@pytest.mark.parametrize("policy", [ACC, LF])
def test_symptoms_lead_to_further_testing(policy) -> None:  # type: ignore[no-untyped-def]
    result = run(20, policy=policy, symptoms=True)
    statement = result.recommendations[0]
    assert statement.id == "symptoms-evaluate-first"
    assert "may be appropriate" in statement.text and "source 003" in statement.source
    assert any(m.field == "symptoms" for m in run(20, policy=policy, symptoms=None).missing)


@pytest.mark.parametrize("policy", [ACC, LF])
@pytest.mark.parametrize("event", list(CoronaryHistory))
def test_known_coronary_disease_the_score_adds_nothing(policy, event) -> None:  # type: ignore[no-untyped-def]
    result = run(800, policy=policy, coronary_history=(event,))
    assert "known-coronary-disease" in ids(result.warnings)
    assert ids(result.recommendations) == {"secondary-prevention"}


# --- appropriateness -------------------------------------------------------------------------------


def test_ldl_190_and_age_outside_40_75_are_flagged() -> None:
    assert "ldl-190" in ids(run(0, labs=labs(ldl=190)).warnings)
    assert "ldl-190" not in ids(run(0, labs=labs(ldl=189)).warnings)
    assert "cac-statements-age" in ids(run(10, age=78).warnings)
    assert "cac-statements-age" not in ids(run(10, age=75).warnings)


def test_pce_high_and_low_risk_appropriateness() -> None:
    high = run(
        50,
        age=70,
        labs=labs(total_cholesterol=280, hdl=35),
        systolic_bp=Measurement(170, "mm[Hg]"),
        current_smoker=True,
        diabetes=True,
    )
    assert high.risk.pce_ascvd_10y is not None and high.risk.pce_ascvd_10y >= 0.2
    assert "cac-not-needed-high-risk" in ids(high.warnings)
    low = run(
        0, age=45, sex=None, labs=labs(total_cholesterol=180, hdl=60), systolic_bp=Measurement(110, "mm[Hg]")
    )
    assert low.risk.pce_ascvd_10y is None  # sex unknown: not computed, no appropriateness claim
    low = run(0, age=45, labs=labs(total_cholesterol=180, hdl=60), systolic_bp=Measurement(110, "mm[Hg]"))
    assert low.risk.pce_band == "low" and "cac-low-risk" in ids(low.warnings)


# --- lifestyle-first -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cac", "markers", "rec"),
    [
        (0, CALM, "lf-cac-0"),
        (50, CALM, "lf-cac-1-99"),
        (250, labs(apob=90), "lf-cac-100-399-ldl-lowering"),
        (250, labs(hs_crp=1.2), "lf-cac-100-399-ldl-lowering"),
        (250, CALM, "lf-cac-100-399-lifestyle"),
        (250, labs(), "lf-cac-100-399-measure"),
        (800, CALM, "lf-cac-400-calm"),
        (800, ACTIVE_CRP, "lf-cac-400-active"),
        (800, labs(), "lf-cac-400-measure"),
    ],
)
def test_lifestyle_first_table(cac: float, markers, rec: str) -> None:  # type: ignore[no-untyped-def]
    result = run(cac, policy=LF, labs=markers)
    assert rec in ids(result.recommendations)
    assert "lf-annual-markers" in ids(result.recommendations)
    assert not {i for i in ids(result.recommendations) if i.startswith("statin-")}


@pytest.mark.parametrize(
    ("markers", "bleeding", "rec"),
    [
        (ACTIVE_CRP, False, "lf-aspirin-consider"),
        (labs(apob=120, lpa=10), False, "lf-aspirin-consider"),
        (ACTIVE_CRP, True, "lf-aspirin-avoid"),
        (CALM, False, "lf-aspirin-avoid"),
        (labs(hs_crp=0.5, fasting_insulin=12, lpa=10), False, "lf-aspirin-avoid"),
    ],  # insulin is not an unrest marker
)
def test_lifestyle_first_aspirin(markers, bleeding: bool, rec: str) -> None:  # type: ignore[no-untyped-def]
    recs = run(800, policy=LF, labs=markers, high_bleeding_risk=bleeding).recommendations
    assert {i for i in ids(recs) if "aspirin" in i} == {rec}


def test_lifestyle_first_aspirin_text_has_dose_and_stomach_protection() -> None:
    text = texts(run(800, policy=LF, labs=ACTIVE_CRP).recommendations)
    assert "at most 100 mg/day" in text and "stomach protection" in text


def test_no_lifestyle_first_aspirin_below_400() -> None:
    assert not {i for i in ids(run(399, policy=LF, labs=ACTIVE_CRP).recommendations) if "aspirin" in i}


# --- policies disagree: said, never silent --------------------------------------------------------


@pytest.mark.parametrize("policy", [ACC, LF])
def test_divergence_at_high_score_calm_is_reported_under_both(policy) -> None:  # type: ignore[no-untyped-def]
    result = run(800, policy=policy, labs=CALM)
    warning = next(w for w in result.warnings if w.id == "policy-divergence-statin")
    assert f"follows {policy.id.value}" in warning.text
    assert "REFERENCE §1" in warning.source


def test_no_divergence_when_policies_agree() -> None:
    assert "policy-divergence-statin" not in ids(run(800, policy=LF, labs=ACTIVE_CRP).warnings)
    assert "policy-divergence-statin" not in ids(run(0, labs=LDL_KNOWN).warnings)


def test_divergence_for_diabetes_with_cac_zero() -> None:
    # acc-aha: diabetes 40-75 → statin; lifestyle-first's "CAC 0: no medication" gives way to the
    # Class I indication (REFERENCE §14.2), and the statement names the divergence
    result = run(0, policy=LF, diabetes=True)
    statement = next(s for s in result.recommendations if s.id == "statin-guideline-indication")
    assert "Class I" in statement.text and "does not address this group" in statement.text
    assert "lf-cac-0" not in ids(result.recommendations)


def test_every_statement_cites_a_source() -> None:
    for policy in (ACC, LF):
        for cac in (0, 50, 250, 800):
            result = run(cac, policy=policy, labs=ACTIVE_CRP, symptoms=True, high_bleeding_risk=None)
            for statement in (*result.recommendations, *result.warnings, *result.lifestyle):
                assert statement.id and statement.text and statement.source
                assert "REFERENCE §" in statement.source or "source 00" in statement.source


@pytest.mark.parametrize(
    ("cac", "markers", "rec"),
    [(0, CALM, "lf-cac-0"), (250, CALM, "lf-cac-100-399-lifestyle"), (800, CALM, "lf-cac-400-calm")],
)
def test_lifestyle_first_never_reads_as_stop_your_statin(cac: float, markers, rec: str) -> None:  # type: ignore[no-untyped-def]
    # source 002's disclaimer: it never advises altering existing treatment
    on_statin = next(
        s for s in run(cac, policy=LF, labs=markers, medications=(statin(),)).recommendations if s.id == rec
    )
    assert "not advice to stop the lipid-lowering treatment already recorded" in on_statin.text
    assert "no new medication" in on_statin.text or "not advise starting" in on_statin.text
    without = next(s for s in run(cac, policy=LF, labs=markers).recommendations if s.id == rec)
    assert "stop" not in without.text
