"""Order reviews (REFERENCE §6, §7, §9): what the order hooks say about a CAC scan or aspirin order."""

from datetime import date

import pytest

from fhircac.clinical.orders import aspirin_requirement, review_aspirin_order, review_scan_order
from fhircac.clinical.policies import ACC_AHA_2018, LIFESTYLE_FIRST
from fhircac.clinical.record import CoronaryHistory
from tests.builders import labs, run

THREE_YEARS_LATER = date(2029, 1, 15)  # SCAN_DATE + 3 years: "never sooner than 3 years" (source 000)


def reason_ids(reasons: list) -> list[str]:  # type: ignore[type-arg]
    return [r.id for r in reasons]


@pytest.mark.parametrize("policy", [ACC_AHA_2018, LIFESTYLE_FIRST])
def test_a_scan_within_three_years_is_too_soon_with_the_earliest_date(policy) -> None:  # type: ignore[no-untyped-def]
    assessment = run(50, policy=policy)
    reasons = review_scan_order(assessment, False, date(2028, 6, 1))
    assert reason_ids(reasons) == ["scan-order-too-soon"]
    assert "2029-01-15" in reasons[0].text and "2026-01-15" in reasons[0].text
    assert "REFERENCE §6" in reasons[0].source and "source 000" in reasons[0].source


@pytest.mark.parametrize("policy", [ACC_AHA_2018, LIFESTYLE_FIRST])
def test_a_scan_on_the_earliest_date_is_not_too_soon(policy) -> None:  # type: ignore[no-untyped-def]
    assert review_scan_order(run(50, policy=policy), False, THREE_YEARS_LATER) == []
    assert reason_ids(review_scan_order(run(50, policy=policy), False, date(2029, 1, 14))) == [
        "scan-order-too-soon"
    ]


def test_after_a_score_of_400_a_repeat_adds_little_under_acc_aha() -> None:
    reasons = review_scan_order(run(450), False, date(2031, 1, 1))
    assert reason_ids(reasons) == ["scan-order-high-score"]
    assert "adds little" in reasons[0].text and "450" in reasons[0].text


def test_lifestyle_first_never_warns_against_the_repeat_its_own_plan_proposed() -> None:
    # review finding 8 / REFERENCE §14.7: calm at 450, the plan suggests a repeat at 3 years
    calm = run(450, policy=LIFESTYLE_FIRST, labs=labs(hs_crp=0.5, apob=70))
    assert calm.next_scan.suggested == date(2029, 1, 15)
    assert review_scan_order(calm, False, date(2031, 1, 1)) == []
    assert review_scan_order(calm, False, calm.next_scan.suggested) == []
    active = run(450, policy=LIFESTYLE_FIRST, labs=labs(hs_crp=3.0, apob=70))
    reasons = review_scan_order(active, False, date(2031, 1, 1))
    assert reason_ids(reasons) == ["scan-order-high-score"]
    assert "off target" in reasons[0].text and "acc-aha-2018" in reasons[0].text


def test_too_soon_and_high_score_are_separate_reasons() -> None:
    assert reason_ids(review_scan_order(run(800), False, date(2027, 1, 1))) == [
        "scan-order-too-soon",
        "scan-order-high-score",
    ]


def test_known_coronary_disease_is_the_reason_whatever_the_score() -> None:
    assessment = run(800, coronary_history=(CoronaryHistory.STENT,))
    reasons = review_scan_order(assessment, True, date(2027, 1, 1))
    # No repeat-scan date exists with known disease (REFERENCE §9), so only that reason stands.
    assert reason_ids(reasons) == ["scan-order-known-cad"]
    assert "stents distort" in reasons[0].text and "REFERENCE §9" in reasons[0].source


def test_without_an_earlier_score_only_known_disease_can_be_said() -> None:
    assert review_scan_order(None, False, date(2027, 1, 1)) == []
    assert reason_ids(review_scan_order(None, True, date(2027, 1, 1))) == ["scan-order-known-cad"]


def test_aspirin_may_be_considered_under_acc_aha_at_cac_100_age_40_to_70() -> None:
    review = review_aspirin_order(run(150, age=55), ACC_AHA_2018)
    assert review.considered
    assert review.patient.id == "aspirin-may-be-considered"
    assert review.requirement.id == "aspirin-policy-acc-aha-2018"
    assert "40-70" in review.requirement.text and "CAC ≥100" in review.requirement.text


def test_aspirin_below_the_score_threshold_of_each_policy() -> None:
    acc = review_aspirin_order(run(60, age=55), ACC_AHA_2018)
    assert (acc.considered, acc.patient.id) == (False, "aspirin-below-threshold")
    assert "threshold of 100" in acc.patient.text
    lifestyle = review_aspirin_order(run(150, age=55, policy=LIFESTYLE_FIRST), LIFESTYLE_FIRST)
    assert (lifestyle.considered, lifestyle.patient.id) == (False, "aspirin-below-threshold")
    assert "threshold of 400" in lifestyle.patient.text


def test_aspirin_not_over_70_and_not_with_bleeding_risk() -> None:
    over_70 = review_aspirin_order(run(300, age=75), ACC_AHA_2018)
    assert (over_70.considered, over_70.patient.id) == (False, "aspirin-not-over-70")
    bleeding = review_aspirin_order(run(300, age=60, high_bleeding_risk=True), ACC_AHA_2018)
    assert (bleeding.considered, bleeding.patient.id) == (False, "aspirin-bleeding-risk")


def test_aspirin_criteria_that_could_not_be_checked_are_named() -> None:
    # the guardrail (one place for every policy) says why: age unknown, aspirin only at 40-70
    assessment = run(300, age=None)
    review = review_aspirin_order(assessment, ACC_AHA_2018)
    assert (review.considered, review.patient.id) == (False, "aspirin-age-unknown")
    assert "only at age 40-70" in review.patient.text
    assert any("aspirin" in p for m in assessment.missing if m.field == "age" for p in m.needed_for)


def test_aspirin_under_40_meets_the_score_but_not_the_other_criteria() -> None:
    review = review_aspirin_order(run(300, age=35), ACC_AHA_2018)
    assert (review.considered, review.patient.id) == (False, "aspirin-under-40")


def test_lifestyle_first_aspirin_needs_metabolic_unrest() -> None:
    calm = review_aspirin_order(
        run(500, policy=LIFESTYLE_FIRST, labs=labs(hs_crp=0.5, apob=70)), LIFESTYLE_FIRST
    )
    assert (calm.considered, calm.patient.id) == (False, "lf-aspirin-avoid")
    active = review_aspirin_order(
        run(500, policy=LIFESTYLE_FIRST, labs=labs(hs_crp=3.0, apob=70)), LIFESTYLE_FIRST
    )
    assert (active.considered, active.patient.id) == (True, "lf-aspirin-consider")
    assert "100 mg/day" in aspirin_requirement(LIFESTYLE_FIRST).text


def test_no_cac_score_means_the_criterion_cannot_be_checked() -> None:
    review = review_aspirin_order(None, ACC_AHA_2018)
    assert (review.considered, review.patient.id) == (False, "aspirin-no-cac-score")


def test_every_order_statement_cites_a_reference_section() -> None:
    statements = [
        *review_scan_order(run(800), True, date(2027, 1, 1)),
        *review_scan_order(run(800), False, date(2027, 1, 1)),
        aspirin_requirement(ACC_AHA_2018),
        aspirin_requirement(LIFESTYLE_FIRST),
        review_aspirin_order(run(60), ACC_AHA_2018).patient,
    ]
    assert statements and all("REFERENCE §" in s.source for s in statements)
    assert all("emergency" not in s.text.lower() for s in statements)


def test_too_soon_gives_the_rule_that_set_the_date_not_always_3_years() -> None:
    # CAC 0 with few risk factors: 5 years (REFERENCE §6), so a scan at 4 years is too soon too.
    assessment = run(0)
    reasons = review_scan_order(assessment, False, date(2030, 1, 15))
    assert reason_ids(reasons) == ["scan-order-too-soon"]
    assert "2031-01-15" in reasons[0].text and "5-10 years" in reasons[0].text
    assert "variability" not in reasons[0].text  # 4 years: beyond the 3-year variability window
    assert reasons[0].source == assessment.next_scan.source
