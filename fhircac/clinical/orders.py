"""What to say about an order a clinician is about to place: a repeat CAC scan or aspirin.

The order hooks show these statements as cards. They reuse the assessment's own conclusions
(next scan, known coronary disease, the guarded aspirin statements and their claims) so a card
never says something the assessment would not, and the guardrails of REFERENCE §14 hold here as in
the patient-view and the CarePlan; they only add the order's point of view (REFERENCE §6, §7, §9).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from fhircac.clinical import citations as c
from fhircac.clinical.assessment import Assessment, Claim, MetabolicState, Statement
from fhircac.clinical.bands import HIGH_SCORE, VERY_HIGH_SCORE
from fhircac.clinical.followup import MINIMUM_INTERVAL_YEARS
from fhircac.clinical.guardrails import ASPIRIN_WITH_SYMPTOMS, SYMPTOMS_SOURCE
from fhircac.clinical.policies import Policy, PolicyId
from fhircac.clinical.record import add_years

KNOWN_CAD_SOURCE = c.cite("REFERENCE §9", c.SOURCE_003, c.SOURCE_004, c.NLA_2021)
_ASPIRIN_STATEMENTS = ("aspirin-", "lf-aspirin-")
ASPIRIN_FLOOR = (
    " Under every policy: never above 70, with raised or unknown bleeding risk, or while symptoms are "
    "evaluated (2019 guideline safety floor)."
)


def review_scan_order(
    assessment: Assessment | None, known_coronary_disease: bool, ordered_for: date
) -> list[Statement]:
    """Reasons to reconsider a repeat CAC scan ordered for ``ordered_for``; empty when there are none.

    ``assessment`` is None when the patient has no usable earlier score: only known coronary
    disease can then be said.
    """
    reasons: list[Statement] = []
    if known_coronary_disease:
        reasons.append(
            Statement(
                "scan-order-known-cad",
                "Known coronary disease (heart attack, stent or bypass) is recorded: a calcium score adds "
                "nothing to the assessment and stents distort it.",
                KNOWN_CAD_SOURCE,
            )
        )
    if assessment is None:
        return reasons
    if assessment.symptoms_first:
        reasons.append(
            Statement(
                "scan-order-symptoms",
                "Symptoms (chest pain or breathlessness on exertion) are recorded: a calcium score does not "
                "show whether an artery is narrowed, so it is not the test for them; stress testing or CT "
                "coronary angiography may be appropriate.",
                SYMPTOMS_SOURCE,
            )
        )
    last = assessment.score
    earliest = assessment.next_scan.earliest
    if earliest is not None and ordered_for < earliest:
        scan = assessment.next_scan
        variability = (
            " Over less than 3 years measurement variability can outweigh real change."
            if ordered_for < add_years(last.date, MINIMUM_INTERVAL_YEARS)
            else ""
        )
        reasons.append(
            Statement(
                "scan-order-too-soon",
                f"This scan ({ordered_for.isoformat()}) would come before {earliest.isoformat()}, the "
                f"earliest sensible date after the last scan of {last.date.isoformat()}: {scan.rationale}"
                f"{variability}",
                scan.source,  # the repeat-scan rule that set the date (REFERENCE §6)
            )
        )
    # REFERENCE §14.7: never warn against a repeat the same policy's plan proposed.
    planned = assessment.next_scan.suggested is not None and earliest is not None and ordered_for >= earliest
    if last.agatston >= VERY_HIGH_SCORE and not known_coronary_disease and not planned:
        reasons.append(_high_score_reason(assessment))
    return reasons


def _high_score_reason(assessment: Assessment) -> Statement:
    score = f"{assessment.score.agatston:g}"
    if assessment.policy.id is PolicyId.LIFESTYLE_FIRST:
        state = assessment.metabolic.state
        now = {
            MetabolicState.CALM: "the markers are calm now",
            MetabolicState.ACTIVE: "the markers are off target now, so they come first",
            MetabolicState.UNKNOWN: "the markers are not available, so measure them first",
        }[state]
        return Statement(
            "scan-order-high-score",
            f"The last score was {score} (≥400). Under lifestyle-first a repeat at 3-5 years is for a "
            f"metabolically calm patient ({now}); acc-aha-2018 holds that a repeat adds little at this "
            "score.",
            c.cite("REFERENCE §6", "REFERENCE §1", c.SOURCE_002, c.SOURCE_000),
        )
    return Statement(
        "scan-order-high-score",
        f"The last score was {score} (≥400): a repeat scan adds little; managing the risk matters more "
        "than the next number.",
        c.cite("REFERENCE §6", c.SOURCE_000),
    )


@dataclass(frozen=True)
class AspirinReview:
    """The active policy's criterion for primary-prevention aspirin, and where this patient stands."""

    requirement: Statement
    patient: Statement
    considered: bool  # the policy lets aspirin be considered for this patient


def aspirin_requirement(policy: Policy) -> Statement:
    if policy.id is PolicyId.LIFESTYLE_FIRST:
        return Statement(
            "aspirin-policy-lifestyle-first",
            "Under lifestyle-first, low-dose aspirin (at most 100 mg/day) for primary prevention only with "
            "CAC ≥400 and active metabolic unrest (raised CRP or ApoB, or progression) and low bleeding "
            "risk." + ASPIRIN_FLOOR,
            c.cite("REFERENCE §7", "REFERENCE §14", c.SOURCE_002, c.PREVENTION_2019),
        )
    return Statement(
        "aspirin-policy-acc-aha-2018",
        "Under acc-aha-2018, low-dose aspirin for primary prevention may be considered at age 40-70 with "
        "CAC ≥100 (a service threshold; the 2019 guideline names none) and no raised bleeding risk; it is "
        "not routine." + ASPIRIN_FLOOR,
        c.cite("REFERENCE §7", "REFERENCE §14", c.PREVENTION_2019, c.CAC_DRS, c.USPSTF_2022),
    )


def review_aspirin_order(assessment: Assessment | None, policy: Policy) -> AspirinReview:
    """For a patient without known coronary disease (aspirin there is secondary prevention).

    ``considered`` comes only from the guarded assessment's claims, so the order card can never
    consider aspirin where the patient-view and the CarePlan would not (REFERENCE §14.3)."""
    requirement = aspirin_requirement(policy)
    if assessment is None:
        return AspirinReview(
            requirement,
            Statement(
                "aspirin-no-cac-score",
                "No usable CAC score is on record, so the policy's CAC criterion cannot be checked.",
                requirement.source,
            ),
            considered=False,
        )
    said = [r for r in assessment.recommendations if r.id.startswith(_ASPIRIN_STATEMENTS)]
    if said:
        return AspirinReview(requirement, said[0], considered=Claim.ASPIRIN_CONSIDERED in said[0].claims)
    if assessment.symptoms_first:  # §14.1: no primary-prevention verdict, such as "below threshold"
        return AspirinReview(requirement, ASPIRIN_WITH_SYMPTOMS, considered=False)
    threshold = VERY_HIGH_SCORE if policy.id is PolicyId.LIFESTYLE_FIRST else HIGH_SCORE
    score = f"{assessment.score.agatston:g}"
    if assessment.score.agatston < threshold:
        statement = Statement(
            "aspirin-below-threshold",
            f"The latest CAC score is {score}, below this policy's threshold of {threshold}: aspirin is "
            "not part of its primary-prevention plan at this score.",
            requirement.source,
        )
        return AspirinReview(requirement, statement, considered=False)
    unknown = [m.field for m in assessment.missing if any("aspirin" in p for p in m.needed_for)]
    if unknown:
        statement = Statement(
            "aspirin-criteria-unchecked",
            f"The latest CAC score is {score}, which meets the policy's CAC criterion, but its other "
            f"criteria could not be checked (missing: {', '.join(unknown)}).",
            requirement.source,
        )
    else:
        statement = Statement(
            "aspirin-criteria-not-met",
            f"The latest CAC score is {score}, which meets the policy's CAC criterion, but not its other "
            "criteria, so aspirin is not part of its primary-prevention plan for this patient.",
            requirement.source,
        )
    return AspirinReview(requirement, statement, considered=False)
