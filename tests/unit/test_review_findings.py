"""The December 2026 clinical review (shared/reviews/2026-12-clinical-review.md), finding by finding.

Each test replays the reviewer's own command (the same ``fhircac calc`` flags, through the same
calculator input the CLI uses) and asserts the corrected behaviour of REFERENCE §14 and the
corrections to §2-§8. S1/S2 findings first, then the S3 findings fixed in code.
"""

from __future__ import annotations

import json
import shlex
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from fhircac.calc_input import parse_calc_input
from fhircac.cli import EXIT_OK, main
from fhircac.clinical.assess import assess
from fhircac.clinical.assessment import Assessment, Claim, MetabolicState
from fhircac.clinical.orders import review_aspirin_order, review_scan_order
from fhircac.clinical.policies import LIFESTYLE_FIRST, POLICIES, get_policy
from fhircac.evaluate import evaluate

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BASE = "--age 55 --sex male --race white --tc 200 --hdl 50 --sbp 130 --date 2026-05-01 --as-of 2026-06-01"
TODAY = date(2026, 6, 1)


def flags(command: str) -> dict[str, Any]:
    """``--cac 2500 --symptoms`` → the calculator input the CLI builds from those flags."""
    data: dict[str, Any] = {}
    words = shlex.split(command)
    for i, word in enumerate(words):
        if not word.startswith("--"):
            continue
        key = word[2:].replace("-", "_")
        value = words[i + 1] if i + 1 < len(words) and not words[i + 1].startswith("--") else True
        data[key] = value
    return data


def reviewed(command: str, policy: str | None = None) -> Assessment:
    """The reviewer's ``fhircac calc`` command as an Assessment (orders, claims and all)."""
    data = flags(command)
    if policy:
        data["policy"] = policy
    request = parse_calc_input(data, TODAY)
    return assess(request.record, request.policy, as_of=request.as_of)


def cli_summary(capsys: Any, command: str) -> dict[str, Any]:
    """The same command through ``fhircac calc`` itself (what the reviewer ran)."""
    assert main(["calc", *shlex.split(command)]) == EXIT_OK
    return json.loads(capsys.readouterr().out)


def ids(statements: Any) -> set[str]:
    return {s.id for s in statements}


def claims(assessment: Assessment) -> set[Claim]:
    return {c for s in (*assessment.recommendations, *assessment.warnings) for c in s.claims}


def words(assessment: Assessment) -> str:
    e = assessment.explanation
    return " ".join((e.headline, *e.paragraphs, *e.to_discuss, *e.questions))


def clinician(assessment: Assessment) -> str:
    return " ".join(s.text for s in (*assessment.recommendations, *assessment.warnings))


BOTH = sorted(POLICIES)

# --- Finding 1 (S1): symptoms --------------------------------------------------------------------------


@pytest.mark.parametrize("policy", BOTH)
def test_f1_symptoms_with_a_score_of_2500_change_the_whole_output(policy: str) -> None:
    a = reviewed(f"{BASE} --cac 2500 --symptoms", policy)
    assert a.symptoms_first
    first = a.recommendations[0]
    assert first.id == "symptoms-evaluate-first" and "prompt clinical evaluation" in first.text
    assert "stress testing or ct coronary angiography may be appropriate" in first.text.lower()
    assert "2021 AHA/ACC chest pain guideline" in first.source
    # the patient reads the symptoms and a calm safety net first
    safety = a.explanation.paragraphs[0]
    assert "chest pain or breathlessness on exertion" in safety
    assert "comes on at rest or lasts more than a few minutes, call emergency services" in safety
    assert "signal to act on calmly, not an emergency" not in words(a)
    assert "The score itself is not an emergency" in a.explanation.headline
    assert a.explanation.to_discuss[0].startswith("Your symptoms")
    # no exercise prescription, no primary-prevention aspirin, risk labelled for people without symptoms
    assert not any(Claim.EXERCISE in item.claims for item in a.lifestyle)
    assert "exercise-after-symptoms-checked" in ids(a.lifestyle)
    assert Claim.ASPIRIN_CONSIDERED not in claims(a)
    assert not review_aspirin_order(a, a.policy).considered
    assert "risk-equations-without-symptoms" in ids(a.warnings)
    assert "for people without symptoms" in " ".join(a.explanation.meaning)
    assert a.next_scan.suggested is None


@pytest.mark.parametrize("policy", BOTH)
def test_f1_cac_0_with_symptoms_is_never_reassuring_and_gets_no_routine_rescan(policy: str) -> None:
    a = reviewed(f"{BASE} --cac 0 --symptoms --ldl 120", policy)
    assert "reassuring" not in words(a)
    assert "does not rule out heart disease" in words(a)
    assert a.next_scan.suggested is None
    assert not ids(a.recommendations) & {"statin-cac-0-withhold", "lf-cac-0"}
    assert Claim.NO_NEW_MEDICATION not in claims(a)


def test_f1_the_reviewers_cli_command_leads_with_the_symptoms(capsys: Any) -> None:
    summary = cli_summary(capsys, f"{BASE} --cac 2500 --symptoms")
    assert summary["recommendations"][0]["id"] == "symptoms-evaluate-first"
    assert not {i["id"] for i in summary["lifestyle"]} & {"exercise-aerobic-150", "exercise-strength-vo2max"}


# --- Finding 2 (S1): guideline indications win over "no new medication" ---------------------------------

INDICATIONS = [
    "--age 55 --sex male --race white --tc 280 --hdl 50 --sbp 130 --date 2026-05-01 --as-of 2026-06-01 "
    "--cac 0 --ldl 195",
    f"{BASE} --cac 0 --diabetes --ldl 120",
    "--age 70 --sex male --race white --tc 240 --hdl 35 --sbp 160 --date 2026-05-01 --as-of 2026-06-01 "
    "--cac 0 --smoker --diabetes --ldl 120",
]


@pytest.mark.parametrize("command", INDICATIONS)
def test_f2_lifestyle_first_states_the_class_i_indication_and_the_divergence(command: str) -> None:
    a = reviewed(command, "lifestyle-first")
    assert Claim.NO_NEW_MEDICATION not in claims(a)
    assert "this policy advises no new medication" not in clinician(a)
    statement = next(s for s in a.recommendations if s.id == "statin-guideline-indication")
    assert "Class I" in statement.text and "does not address this group" in statement.text
    assert any(topic.startswith("Cholesterol-lowering treatment") for topic in a.explanation.to_discuss)


def test_f2_the_pce_60_percent_case_names_the_high_risk() -> None:
    a = reviewed(INDICATIONS[2], "lifestyle-first")
    assert a.risk.pce_ascvd_10y is not None and a.risk.pce_ascvd_10y > 0.2
    assert "PCE ≥20%" in clinician(a)


# --- Finding 3 (S1): "calm" needs hs-CRP and ApoB ------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    ["--hdl 60 --tg 80 --cac 900", "--cac 900 --prior-cac 850 --prior-date 2021-05-01"],
)
def test_f3_one_marker_or_progression_alone_is_never_calm(extra: str) -> None:
    a = reviewed(f"{BASE} {extra}", "lifestyle-first")
    assert a.metabolic.state is MetabolicState.UNKNOWN
    assert "lf-cac-400-calm" not in ids(a.recommendations)
    assert "lf-cac-400-measure" in ids(a.recommendations)
    assert a.next_scan.suggested is None
    assert {"hs_crp", "apob"} <= {m.field for m in a.missing}
    # acc-aha says a statin is reasonable: the disagreement is said, not hidden
    assert "policy-divergence-statin" in ids(a.warnings)


@pytest.mark.parametrize("case", ["06-rising-on-statin", "09-per-vessel-scores"])
def test_f3_examples_06_and_09_are_calm_only_with_both_markers(case: str) -> None:
    document = json.loads((EXAMPLES / f"{case}.json").read_text(encoding="utf-8"))
    (evaluation,), _ = evaluate([(case, document)], LIFESTYLE_FIRST, date(2026, 11, 1), datetime.now(UTC))
    a = evaluation.assessment
    assert a is not None
    measured = {m.marker for m in a.metabolic.markers}
    if a.metabolic.state is MetabolicState.CALM:
        assert {"hs_crp", "apob"} <= measured
    said = " ".join(s.text for s in a.recommendations) + a.next_scan.rationale
    assert not ("measure ApoB" in said and "Metabolically calm" in said)


# --- Finding 4 (S1): aspirin at 80 -----------------------------------------------------------------------


def test_f4_no_aspirin_at_80_under_lifestyle_first_and_the_order_card_agrees() -> None:
    a = reviewed(
        "--age 80 --sex male --race white --tc 200 --hdl 50 --sbp 130 --date 2026-05-01 --as-of 2026-06-01 "
        "--cac 1500 --crp 4",
        "lifestyle-first",
    )
    assert Claim.ASPIRIN_CONSIDERED not in claims(a)
    statement = next(s for s in a.recommendations if s.id == "aspirin-not-over-70")
    assert "Class III (Harm)" in statement.text
    review = review_aspirin_order(a, a.policy)
    assert not review.considered and review.patient.id == "aspirin-not-over-70"
    assert not any("aspirin" in topic.lower() for topic in a.explanation.to_discuss)


# --- Finding 5 (S2): exercise and diet safety ------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("--cac 2500 --symptoms", "exercise-after-symptoms-checked"),
        ("--cac 800 --known-cad --symptoms", "exercise-after-symptoms-checked"),
        ("--cac 800 --known-cad --no-symptoms", "exercise-agree-plan"),
    ],
)
def test_f5_no_vo2max_training_with_symptoms_or_known_cad(extra: str, expected: str) -> None:
    a = reviewed(f"{BASE} {extra}".replace("--no-symptoms", ""), "lifestyle-first")
    assert not any(Claim.VIGOROUS_EXERCISE in item.claims for item in a.lifestyle)
    assert expected in ids(a.lifestyle)


def test_f5_no_vo2max_training_at_85() -> None:
    a = reviewed(f"{BASE} --cac 600".replace("--age 55", "--age 85"), "lifestyle-first")
    assert "exercise-agree-plan" in ids(a.lifestyle)
    assert "supervised (cardiac rehabilitation)" in " ".join(i.text for i in a.lifestyle)


def test_f5_carbohydrate_restriction_with_diabetes_carries_the_medicine_caveat() -> None:
    a = reviewed(f"{BASE} --cac 0 --diabetes --hba1c 9", "lifestyle-first")
    diet = next(i for i in a.lifestyle if Claim.CARBOHYDRATE_RESTRICTION in i.claims)
    assert "If you take medicine for diabetes, agree this diet with your clinician first" in diet.text


# --- Finding 6 (S2): short-interval progression ----------------------------------------------------------


def test_f6_a_one_year_rise_is_not_metabolic_unrest_and_drives_nothing() -> None:
    a = reviewed(f"{BASE} --cac 700 --prior-cac 400 --prior-date 2025-05-01", "lifestyle-first")
    assert not any(m.marker == "cac_progression" for m in a.metabolic.markers)
    assert not ids(a.recommendations) & {"lf-cac-400-active", "lf-aspirin-consider"}
    assert "progression-marker-short-interval" in ids(a.warnings)
    assert a.progression is not None and "provisional" in a.progression.interpretation


@pytest.mark.parametrize("policy", BOTH)
def test_f6_a_within_variability_change_is_never_on_target_above_the_target(policy: str) -> None:
    a = reviewed(f"{BASE} --cac 130 --prior-cac 100 --prior-date 2025-05-01", policy)
    for marker in a.metabolic.markers:
        assert not (marker.marker == "cac_progression" and marker.on_target and marker.value > 20)
    assert a.metabolic.state is not MetabolicState.CALM


# --- Finding 7 (S2): "once a year" means blood markers -------------------------------------------------


def test_f7_annual_re_evaluation_is_blood_markers_never_a_yearly_scan() -> None:
    a = reviewed(f"{BASE} --cac 1000", "lifestyle-first")
    text = next(s.text for s in a.recommendations if s.id == "lf-annual-markers")
    assert "CAC progression once a year" not in text
    assert "never by a yearly scan" in text and "not before 2029-05-01" in text


# --- Finding 8 (S2): plans agree with rules ----------------------------------------------------------------


def test_f8_no_coded_repeat_scan_where_the_rule_says_it_adds_little() -> None:
    document = json.loads((EXAMPLES / "05-cac-400-metabolically-calm.json").read_text(encoding="utf-8"))
    (evaluation,), _ = evaluate(
        [("05", document)], get_policy("acc-aha-2018"), date(2026, 11, 1), datetime.now(UTC)
    )
    assert evaluation.assessment is not None and evaluation.assessment.next_scan.suggested is None
    care_plan = evaluation.produced.care_plan
    assert all(a["detail"]["code"]["coding"][0]["code"] != "repeat-cac-scan" for a in care_plan["activity"])


def test_f8_the_order_hook_never_warns_against_the_repeat_the_plan_proposed() -> None:
    a = reviewed(f"{BASE} --cac 600 --crp 0.5 --apob 70", "lifestyle-first")
    assert a.metabolic.state is MetabolicState.CALM and a.next_scan.suggested == date(2029, 5, 1)
    assert review_scan_order(a, False, date(2029, 6, 1)) == []


# --- Finding 9 (S2): rapid rise on a statin ----------------------------------------------------------------


def test_f9_rapid_rise_on_a_statin_keeps_its_risk_context_without_failure_words() -> None:
    a = reviewed(f"{BASE} --cac 200 --prior-cac 50 --prior-date 2023-05-01 --statin")
    p = a.progression
    assert p is not None and p.rapid and p.on_statin
    assert "higher risk of heart attack even in people taking a statin" in p.interpretation
    assert "not a reason to stop the statin" in p.interpretation
    assert "does not by itself mean" in p.interpretation
    assert "Raggi" in p.source and "statin-treated" in p.source
    assert "failure" not in p.interpretation.lower()


# --- Finding 10 (S2): HbA1c ≥6.5 % ------------------------------------------------------------------------


@pytest.mark.parametrize("policy", BOTH)
@pytest.mark.parametrize("hba1c", ["8.0", "'48 mmol/mol'"])
def test_f10_hba1c_65_or_more_is_possible_diabetes(hba1c: str, policy: str) -> None:
    a = reviewed(f"{BASE} --cac 0 --ldl 120 --hba1c {hba1c}", policy)
    assert Claim.NO_NEW_MEDICATION not in claims(a)
    assert not ids(a.recommendations) & {"statin-cac-0-withhold", "lf-cac-0"}
    assert "possible diabetes (hba1c ≥6.5%)" in clinician(a).lower()
    assert "hba1c-possible-diabetes" in ids(a.warnings)
    assert "diabetes" in {m.field for m in a.missing}
    assert a.next_scan.suggested == date(2029, 5, 1)  # 3 years, as with diabetes


# --- Finding 11 (S2): one statin statement for diabetes at CAC 0 ----------------------------------------


def test_f11_diabetes_with_cac_0_has_no_contradictory_second_statement() -> None:
    a = reviewed(f"{BASE} --cac 0 --diabetes --ldl 120")
    assert "statin-diabetes" in ids(a.recommendations)
    assert "statin-cac-0-exceptions" not in ids(a.recommendations)
    assert "decide on a statin from the overall risk" not in clinician(a)


# --- Finding 12 (S2): very high scores -----------------------------------------------------------------


@pytest.mark.parametrize("policy", BOTH)
def test_f12_cac_2500_is_read_as_very_high(policy: str) -> None:
    a = reviewed(f"{BASE} --cac 2500 --vessels 4", policy)
    statement = next(s for s in a.recommendations if s.id == "statin-guideline-indication")
    assert "CAC ≥1000" in statement.text and "high-intensity" in statement.text
    assert "add-on therapy" in statement.text and "NLA" in statement.source
    assert Claim.NO_NEW_MEDICATION not in claims(a)


def test_f12_acc_aha_gives_the_cac_drs_intensity() -> None:
    assert "CAC-DRS A3: high intensity" in clinician(reviewed(f"{BASE} --cac 300"))
    assert "CAC-DRS A2: moderate to high intensity" in clinician(reviewed(f"{BASE} --cac 150"))


# --- Finding 13 (S2): CAC 0 withhold needs LDL-C --------------------------------------------------------


@pytest.mark.parametrize("policy", BOTH)
def test_f13_cac_0_withhold_needs_ldl(policy: str) -> None:
    a = reviewed(f"{BASE} --cac 0", policy)
    assert Claim.NO_NEW_MEDICATION not in claims(a)
    assert "statin-cac-0-needs-ldl" in ids(a.recommendations)
    assert "ldl" in {m.field for m in a.missing}
    known = reviewed(f"{BASE} --cac 0 --ldl 120", policy)
    assert Claim.NO_NEW_MEDICATION in claims(known)


# --- S3 findings fixed in code ------------------------------------------------------------------------


def test_f14_divergence_is_read_from_what_each_policy_says() -> None:
    for policy in BOTH:
        smoker = reviewed(f"{BASE} --cac 0 --smoker --ldl 120", policy)
        assert "policy-divergence-statin" in ids(smoker.warnings)


def test_f15_no_unrest_is_not_asserted_when_nothing_was_measured() -> None:
    a = reviewed(f"{BASE} --cac 2500", "lifestyle-first")
    avoid = next(s for s in a.recommendations if s.id == "lf-aspirin-avoid")
    assert "not assessable" in avoid.text and "no active metabolic unrest" not in avoid.text


def test_f16_a_tiny_follow_up_score_is_possible_early_calcium() -> None:
    a = reviewed(f"{BASE} --cac 3 --prior-cac 0 --prior-date 2021-05-01")
    p = a.progression
    assert p is not None and not p.significant
    assert "can be measurement noise" in p.interpretation and "Calcium has appeared" not in p.interpretation
    assert not any(m.marker == "cac_progression" for m in a.metabolic.markers)
    assert reviewed(f"{BASE} --cac 12 --prior-cac 0 --prior-date 2021-05-01").progression.significant  # type: ignore[union-attr]


@pytest.mark.parametrize("age", [55, 56, 57])
def test_f17_no_near_75th_warning_where_it_changes_nothing(age: int) -> None:
    a = reviewed(f"{BASE} --cac 75".replace("--age 55", f"--age {age}"))
    assert "percentile-near-75th" not in ids(a.warnings)


def test_f18_no_rescan_date_at_30_with_few_risk_factors() -> None:
    a = reviewed(f"{BASE} --cac 0 --ldl 120".replace("--age 55", "--age 30"))
    assert a.next_scan.suggested is None and "from age 40" in a.next_scan.rationale
    assert "2031" not in words(a)


def test_f19_cac_0_with_family_history_is_3_to_5_years_and_keeps_the_hedge() -> None:
    a = reviewed(f"{BASE} --cac 0 --family-history --ldl 120")
    assert "3-5 years" in a.next_scan.rationale and a.next_scan.suggested == date(2029, 5, 1)
    diabetic = reviewed(f"{BASE} --cac 0 --diabetes --ldl 120")
    assert "may be most useful" in diabetic.next_scan.rationale


def test_f20_no_percentile_with_known_coronary_disease() -> None:
    a = reviewed(f"{BASE} --cac 800 --known-cad")
    assert a.percentile is None and "percentile-not-applicable" in ids(a.warnings)


def test_f21_arterial_age_only_inside_45_to_84() -> None:
    assert reviewed(f"{BASE} --cac 2500").score.arterial_age is None
    assert reviewed(f"{BASE} --cac 1").score.arterial_age is None  # 44.1
    assert reviewed(f"{BASE} --cac 100").score.arterial_age == pytest.approx(72.6, abs=0.1)


def test_f22_aspirin_cites_the_real_source_of_the_threshold_and_class_iii_over_70() -> None:
    considered = next(s for s in reviewed(f"{BASE} --cac 150").recommendations if s.id.startswith("aspirin"))
    assert "service's choice" in considered.text and "USPSTF 2022" in considered.source
    old = reviewed(f"{BASE} --cac 150".replace("--age 55", "--age 71"))
    assert "Class III (Harm)" in next(s.text for s in old.recommendations if s.id == "aspirin-not-over-70")


def test_f23_pce_caveats() -> None:
    chinese = reviewed(f"{BASE} --cac 10".replace("white", "chinese").replace("male", "female"))
    assert "pce-white-equations" in ids(chinese.warnings)
    on_statin = reviewed(f"{BASE} --cac 80 --statin")
    assert "pce-treated-lipids" in ids(on_statin.warnings)


def test_f24_ldl_160_189_is_a_risk_enhancer() -> None:
    a = reviewed(f"{BASE} --cac 10 --ldl 170")
    enhancers = next(s.text for s in a.recommendations if s.id == "risk-enhancers")
    assert "LDL cholesterol 170 mg/dL (160-189)" in enhancers and "Not assessed" in enhancers


def test_f25_wording_follows_what_is_recorded() -> None:
    on_statin = reviewed(f"{BASE} --cac 150 --statin")
    text = clinician(on_statin)
    assert "continue it" in text and "reasonable to start a statin. A statin is already recorded" not in text
    assert not any("whether a statin" in t for t in on_statin.explanation.to_discuss)
    zero = reviewed(f"{BASE} --cac 0 --ldl 120")
    assert "Statins often make the score go up" not in words(zero)
    lf = reviewed(f"{BASE} --cac 900 --crp 3", "lifestyle-first")
    assert "hs_crp" not in clinician(lf) and "hs-CRP off target" in clinician(lf)


def test_f26_apob_in_mmol_is_refused_with_the_reason(capsys: Any) -> None:
    assert main(["calc", *shlex.split(f"{BASE} --cac 100 --apob '0.8 mmol/L'")]) == 2
    assert "unit slip for 0.8 g/L" in capsys.readouterr().err


def test_f26_lifestyle_first_asks_for_markers_only_where_they_change_the_advice() -> None:
    for cac in ("0 --ldl 120", "50"):
        a = reviewed(f"{BASE} --cac {cac}", "lifestyle-first")
        assert not {m.field for m in a.missing} & {"hs_crp", "apob", "fasting_insulin", "triglycerides"}
