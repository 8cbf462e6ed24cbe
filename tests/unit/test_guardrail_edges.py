"""Edges of the REFERENCE §14 guardrails found in a second review of issue 15, near the reviewer's cases.

Each case is a ``fhircac calc`` command (through the same calculator input the CLI uses), run under
every policy where the guardrail is meant to hold for all of them.
"""

from __future__ import annotations

from datetime import date

import pytest

from fhircac.clinical.assessment import Claim
from fhircac.clinical.orders import review_aspirin_order
from fhircac.clinical.policies import POLICIES
from tests.unit.test_review_findings import BASE, reviewed

BOTH = sorted(POLICIES)


def _stated(assessment) -> set[Claim]:  # type: ignore[no-untyped-def]
    """Claims the recommendations make (what a clinician reads as the advice, not the caveats)."""
    return {claim for s in assessment.recommendations for claim in s.claims}


# --- §14.2: a Class I indication is stated as advice, not left in a warning -------------------------


@pytest.mark.parametrize("policy", BOTH)
@pytest.mark.parametrize(
    "command",
    [
        # LDL ≥190 at CAC 100-399 and ≥400, with the metabolic markers unknown
        f"{BASE} --cac 150 --ldl 195".replace("--tc 200", "--tc 280"),
        f"{BASE} --cac 500 --ldl 195".replace("--tc 200", "--tc 280"),
        # PCE ≥20 % (75-year-old man) at CAC 1500
        f"{BASE} --cac 1500".replace("--age 55", "--age 75"),
    ],
)
def test_a_class_i_indication_is_a_recommendation_whatever_the_band(command: str, policy: str) -> None:
    a = reviewed(command, policy)
    assert Claim.STATIN_INDICATED in _stated(a), [s.id for s in a.recommendations]
    assert "statin-guideline-indication" in {s.id for s in a.recommendations}


@pytest.mark.parametrize("policy", BOTH)
def test_cac_1000_goals_are_stated_even_when_another_indication_is(policy: str) -> None:
    """§14.8: diabetes states its own (moderate-intensity) indication; CAC ≥1000 still adds its goals."""
    a = reviewed(f"{BASE} --cac 1500 --diabetes --ldl 120".replace("--age 55", "--age 60"), policy)
    text = " ".join(s.text for s in a.recommendations)
    assert "CAC ≥1000" in text and "LDL-C <55 mg/dL" in text


def test_the_divergence_names_acc_ahas_class_i_indication() -> None:
    a = reviewed(f"{BASE} --cac 150 --ldl 195".replace("--tc 200", "--tc 280"), "lifestyle-first")
    divergence = [s.text for s in a.warnings if s.id == "policy-divergence-statin"]
    assert not any("a statin would be reasonable" in text for text in divergence)


# --- §14.1 / §14.7: with symptoms, one earliest date everywhere -----------------------------------------


@pytest.mark.parametrize("policy", BOTH)
def test_symptoms_keep_the_policys_earliest_repeat_date(policy: str) -> None:
    a = reviewed(f"{BASE} --cac 0 --ldl 120 --symptoms", policy)
    without = reviewed(f"{BASE} --cac 0 --ldl 120", policy)
    assert a.next_scan.suggested is None
    assert a.next_scan.earliest == without.next_scan.earliest == date(2031, 5, 1)
    said = " ".join((*(s.text for s in a.recommendations), *a.explanation.paragraphs))
    assert "2029-05-01" not in said


# --- §14.1 / §14.3: with symptoms the aspirin order card makes no primary-prevention statement --------


@pytest.mark.parametrize("policy", BOTH)
@pytest.mark.parametrize("cac", ["0 --ldl 120", "50", "150", "2500"])
def test_aspirin_order_with_symptoms_says_the_symptoms_come_first(cac: str, policy: str) -> None:
    a = reviewed(f"{BASE} --cac {cac} --symptoms --bleeding-risk no", policy)
    review = review_aspirin_order(a, a.policy)
    assert not review.considered
    assert review.patient.id == "aspirin-not-with-symptoms", review.patient.text
    # the patient-view says the same: no policy "not advised" verdict for a symptomatic patient
    aspirin = [s.id for s in a.recommendations if "aspirin" in s.id]
    assert aspirin in ([], ["aspirin-not-with-symptoms"])


def test_cac_1000_calm_under_lifestyle_first_does_not_claim_the_policy_is_silent() -> None:
    """Source 002 does address ≥400 calm (no medication): the guideline indication outranks it, the
    policy is not silent. "Does not address this group" stays true for LDL ≥190, diabetes, PCE ≥20 %."""
    a = reviewed(f"{BASE} --cac 1000 --crp 0.5 --apob 70 --tg 80 --hdl 60 --insulin 5", "lifestyle-first")
    statement = next(s for s in a.recommendations if s.id == "statin-guideline-indication")
    assert "does not address this group" not in statement.text
    assert "outranks" in statement.text and "lifestyle advice stands" in statement.text
    ldl = reviewed(f"{BASE} --cac 0 --ldl 195".replace("--tc 200", "--tc 280"), "lifestyle-first")
    assert "does not address this group" in next(
        s.text for s in ldl.recommendations if s.id == "statin-guideline-indication"
    )


# --- wording follows what is recorded (issue 15: on a statin, "continue") ---------------------------


@pytest.mark.parametrize(
    ("extra", "rule"),
    [
        ("--cac 600 --crp 3", "lf-cac-400-active"),
        ("--cac 150 --crp 3 --apob 70", "lf-cac-100-399-ldl-lowering"),
    ],
)
def test_lifestyle_first_medication_advice_on_a_statin_says_continue(extra: str, rule: str) -> None:
    a = reviewed(f"{BASE} {extra} --statin", "lifestyle-first")
    text = next(s.text for s in a.recommendations if s.id == rule)
    assert "already recorded" in text and "continue it" in text
    without = reviewed(f"{BASE} {extra}", "lifestyle-first")
    assert "already recorded" not in next(s.text for s in without.recommendations if s.id == rule)


def test_the_guideline_indication_on_a_statin_reads_as_one_sentence() -> None:
    a = reviewed(f"{BASE} --cac 0 --ldl 195 --statin".replace("--tc 200", "--tc 280"), "lifestyle-first")
    text = next(s.text for s in a.recommendations if s.id == "statin-guideline-indication")
    assert "whatever the calcium score; a statin is already recorded, so continue it" in text


# --- review finding 9: a fast rise on a statin is expected in kind, not in pace -----------------------


def test_a_fast_rise_on_a_statin_is_worth_reviewing_in_the_patient_text() -> None:
    a = reviewed(f"{BASE} --cac 200 --prior-cac 50 --prior-date 2023-05-01 --statin")
    assert a.progression is not None and a.progression.rapid and a.progression.on_statin
    change = next(p for p in a.explanation.meaning if p.startswith("Your score went from"))
    assert "faster than usual" in change and "worth reviewing" in change
    assert "do not stop the statin" in change
    slow = reviewed(f"{BASE} --cac 200 --prior-cac 150 --prior-date 2023-05-01 --statin")
    assert slow.progression is not None and not slow.progression.rapid
    assert "faster than usual" not in " ".join(slow.explanation.meaning)


# --- §14.5: possible diabetes is said even when a statin is indicated for another reason -------------


@pytest.mark.parametrize("policy", BOTH)
@pytest.mark.parametrize("extra", ["--cac 0 --ldl 195 --hba1c 7", "--cac 1500 --ldl 120 --hba1c 7"])
def test_hba1c_65_is_possible_diabetes_whatever_else_indicates_a_statin(extra: str, policy: str) -> None:
    command = f"{BASE} {extra}"
    if "--ldl 195" in extra:
        command = command.replace("--tc 200", "--tc 280")
    a = reviewed(command, policy)
    assert "hba1c-possible-diabetes" in {s.id for s in a.warnings}
    assert "diabetes" in {m.field for m in a.missing}
    assert Claim.STATIN_INDICATED in _stated(a)
