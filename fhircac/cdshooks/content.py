"""The words on fhircac's cards: an assessment (or an order review) in, cards out.

Every statement on a card carries its rule id and its source, as in the written RiskAssessment.
Score cards are ``info``: a high score is a risk signal to manage, never an emergency (REFERENCE
§2, §11), except that recorded symptoms make the summary card a ``warning`` led by the symptoms
(REFERENCE §14.1); order cards that advise against an order are ``warning``. Nothing here is
``critical``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fhircac.cdshooks.cards import (
    Action,
    Card,
    Coding,
    Link,
    Source,
    Suggestion,
    override_reason,
    rule_topic,
    shorten,
)
from fhircac.cdshooks.prefetch import Gathered
from fhircac.clinical.assessment import Assessment, ProgressionCategory, Statement
from fhircac.clinical.bands import shown_score
from fhircac.clinical.orders import AspirinReview
from fhircac.clinical.policies import Policy, PolicyId
from fhircac.clinical.risk import shown_risk
from fhircac.fhir import codes
from fhircac.fhir.issues import Issue

if TYPE_CHECKING:
    from fhircac.cdshooks.services import Situation

_MARKDOWN = re.compile(r"([\\`*_\[\]<>#|])")
_RISES = (
    ProgressionCategory.PROGRESSION,
    ProgressionCategory.POSSIBLE_PROGRESSION,
    ProgressionCategory.INCIDENT,
)
LPA_LOINC = (
    "43583-4",
    "Lipoprotein (a) [Moles/volume] in Serum or Plasma",
)  # service choice: the molar assay


def md(text: str) -> str:
    """Plain text made safe for the card's markdown (EHRs may render raw HTML in it)."""
    return _MARKDOWN.sub(r"\\\1", text)


def _cited(statement: Statement) -> str:
    return f"{md(statement.text)} _({md(statement.source)}; rule `{statement.id}`)_"


def _percent(value: float | None) -> str | None:
    return None if value is None else shown_risk(value)


def _ordinal(value: float) -> str:
    number = round(value)
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def _source(situation: Situation, topic: Coding, anchor: str) -> Source:
    policy = situation.policy
    return Source(
        label=f"fhircac · {policy.id.value} {policy.version}",
        url=f"{situation.base_url}/rules#{anchor}",
        topic=topic,
    )


def _policy_line(policy: Policy) -> str:
    return f"Policy: **{policy.id.value} {policy.version}** ({md(policy.title)})."


# --- patient-view ---------------------------------------------------------------------------------


def summary_card(
    assessment: Assessment,
    gathered: Gathered,
    care_plan: tuple[dict[str, Any], dict[str, Any]] | None,
    report_url: str | None,
    situation: Situation,
    inputs: tuple[str, ...] = (),
) -> Card:
    """``inputs``: the summary's ``inputs`` described (clinical.inputs.describe)."""
    a = assessment
    score = a.score
    parts = [f"CAC {shown_score(score.agatston)} (band {score.band}, CAC-DRS {score.cac_drs})"]
    if a.percentile is not None:
        parts.append(f"{_ordinal(a.percentile.value)} percentile")
    risk = _percent(a.risk.mesa_chd_10y_with_cac)
    if risk and not a.symptoms_first:
        parts.append(f"10-y CHD risk {risk}")
    rose_on_statin = bool(a.progression and a.progression.on_statin and a.progression.category in _RISES)
    summary = ", ".join(parts)
    if a.symptoms_first:
        summary = f"Symptoms recorded: evaluate them first. {summary}"
    if rose_on_statin and len(summary) < 100:
        # >15 %/year on a statin has been linked with MI (Raggi 2004): expected in kind, not in pace
        fast = bool(a.progression and a.progression.rapid)
        summary += (
            "; fast rise on a statin: review risk factors" if fast else "; rise on a statin is expected"
        )
    suggestions: tuple[Suggestion, ...] = ()
    if care_plan is not None:
        suggestions = (_care_plan_suggestion(*care_plan),)
    links = (Link("Patient and clinician report", report_url),) if report_url else ()
    return Card(
        kind="cac-summary",
        summary=shorten(summary),
        indicator="warning" if a.symptoms_first else "info",
        source=_source(
            situation, Coding(codes.FHIRCAC, "cac-risk-assessment", "CAC interpretation"), a.policy.id.value
        ),
        detail=_summary_detail(a, gathered, rose_on_statin, inputs),
        suggestions=suggestions,
        selection_behavior="at-most-one" if suggestions else None,
        override_reasons=tuple(
            override_reason(c) for c in ("already-addressed", "clinical-judgement", "data-incorrect")
        ),
        links=links,
    )


def _summary_detail(a: Assessment, gathered: Gathered, rose_on_statin: bool, inputs: tuple[str, ...]) -> str:
    score = a.score
    lines = []
    first = next((r for r in a.recommendations if r.id == "symptoms-evaluate-first"), None)
    if first is not None:
        lines.append(f"**Symptoms first:** {_cited(first)}")
    figures = [
        f"Agatston **{shown_score(score.agatston)}**",
        f"band {md(score.band)}",
        f"CAC-DRS {md(score.cac_drs)}",
    ]
    if a.percentile is not None:
        estimated = "estimated, " if a.percentile.estimated else ""
        figures.append(f"{_ordinal(a.percentile.value)} percentile ({estimated}{md(a.percentile.reference)})")
    lines.append(f"**Latest scan ({score.date.isoformat()}):** " + " · ".join(figures))
    risks = []
    if a.risk.mesa_chd_10y_with_cac is not None:
        without = _percent(a.risk.mesa_chd_10y_without_cac)
        risks.append(
            f"MESA 10-year CHD risk {_percent(a.risk.mesa_chd_10y_with_cac)} with CAC"
            + (f" ({without} without)" if without else "")
        )
    if a.risk.pce_ascvd_10y is not None:
        risks.append(f"PCE 10-year ASCVD risk {_percent(a.risk.pce_ascvd_10y)} ({md(a.risk.pce_band or '')})")
    if risks:
        label = "**Risk (for people without symptoms):** " if a.symptoms_first else "**Risk:** "
        lines.append(label + " · ".join(risks))
    progression = a.progression
    if progression is not None:
        lead = (
            "**Rise on a statin: expected; not by itself a sign that the treatment is failing.** "
            if rose_on_statin
            else ""
        )
        lines.append(
            f"**Since {progression.prior_date.isoformat()} "
            f"(Agatston {shown_score(progression.prior_agatston)}):** "
            f"{lead}{md(progression.interpretation)} _({md(progression.source)})_"
        )
    rest = [r for r in a.recommendations if r is not first]
    if rest:
        lines.append("**To consider:**\n" + "\n".join(f"- {_cited(r)}" for r in rest))
    scan = a.next_scan
    when = []
    if scan.earliest:
        when.append(f"not before {scan.earliest.isoformat()}")
    if scan.suggested:
        when.append(f"suggested around {scan.suggested.isoformat()}")
    lines.append(
        "**Repeat scan:** "
        + md(scan.rationale)
        + (f" ({', '.join(when)})" if when else "")
        + f" _({md(scan.source)})_"
    )
    if a.warnings:
        lines.append("**Cautions:**\n" + "\n".join(f"- {_cited(w)}" for w in a.warnings))
    missing = [f"{md(m.field)} (for {md(', '.join(m.needed_for))})" for m in a.missing]
    missing += [
        f"prefetch {md(key)}: the EHR could not provide it ({md(why)})"
        for key, why in gathered.unavailable.items()
    ]
    if missing:
        lines.append("**Missing, so the result is less complete:**\n" + "\n".join(f"- {m}" for m in missing))
    if inputs:
        lines.append("**How the record was read:**\n" + "\n".join(f"- {md(line)}" for line in inputs))
    lines.append(_policy_line(a.policy))
    return "\n\n".join(lines)


def _care_plan_suggestion(risk_assessment: dict[str, Any], care_plan: dict[str, Any]) -> Suggestion:
    return Suggestion(
        label="Create the CAC follow-up plan (CarePlan) and its interpretation (RiskAssessment)",
        kind="create-careplan",
        actions=(
            Action(
                "create", "Record fhircac's interpretation of the CAC score (RiskAssessment)", risk_assessment
            ),
            Action(
                "create", "Create the CAC follow-up plan to discuss with the patient (CarePlan)", care_plan
            ),
        ),
    )


def lpa_card(statement: Statement, patient_id: str, situation: Situation) -> Card:
    request = {
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "order",
        "code": {
            "coding": [{"system": codes.LOINC, "code": LPA_LOINC[0], "display": LPA_LOINC[1]}],
            "text": "Lipoprotein(a)",
        },
        "subject": {"reference": f"Patient/{patient_id}"},
        "reasonCode": [{"text": f"{statement.text} ({statement.source})"}],
    }
    return Card(
        kind="lpa-once",
        summary="Lp(a) has never been measured: consider measuring it once (CAC ≥100)",
        indicator="info",
        source=_source(situation, rule_topic(statement.id), statement.id),
        detail=_cited(statement),
        suggestions=(
            Suggestion(
                label="Order Lp(a) once",
                kind="order-lpa",
                actions=(Action("create", "Draft an order for lipoprotein(a), measured once", request),),
            ),
        ),
        selection_behavior="at-most-one",
        override_reasons=tuple(
            override_reason(c) for c in ("already-addressed", "patient-declined", "clinical-judgement")
        ),
    )


def not_interpretable_card(issues: list[Issue], situation: Situation) -> Card:
    errors = [issue for issue in issues if issue.is_error][:10]
    listed = "\n".join(f"- {md(issue.location)}: {md(issue.message)}" for issue in errors)
    return Card(
        kind="not-interpretable",
        summary="The CAC score could not be interpreted from the data sent: see why",
        indicator="info",
        source=_source(situation, Coding(codes.FHIRCAC, "cac-risk-assessment", "CAC interpretation"), "data"),
        detail="fhircac gives no interpretation rather than a wrong one. The data it could not use:\n\n"
        + listed,
    )


# --- order-select / order-sign --------------------------------------------------------------------

_SCAN_SUMMARIES = {
    "scan-order-too-soon": "Repeat CAC scan before {earliest}: sooner than the earliest sensible date",
    "scan-order-high-score": "Last CAC score {score} (≥400): a repeat scan adds little; reconsider the order",
    "scan-order-known-cad": "Known coronary disease is recorded: a CAC scan adds nothing; reconsider it",
    "scan-order-symptoms": "Symptoms are recorded: a CAC scan is not the test for them; reconsider it",
}


def _missing_line(missing: Mapping[str, str]) -> list[str]:
    if not missing:
        return []
    listed = "\n".join(f"- {md(key)}: {md(why)}" for key, why in missing.items())
    return [f"**Could not be checked, because the data was not available:**\n{listed}"]


def scan_order_card(
    reason: Statement,
    order: Mapping[str, Any],
    assessment: Assessment | None,
    situation: Situation,
    missing: Mapping[str, str],
) -> Card:
    earliest = assessment.next_scan.earliest if assessment else None
    summary = _SCAN_SUMMARIES[reason.id].format(
        earliest=earliest.isoformat() if earliest else "",
        score=f"{shown_score(assessment.score.agatston)}" if assessment else "",
    )
    if (
        reason.id == "scan-order-high-score"
        and assessment
        and assessment.policy.id is PolicyId.LIFESTYLE_FIRST
    ):
        summary = (
            f"Last CAC score {shown_score(assessment.score.agatston)} (≥400): "
            "repeat only once metabolically calm"
        )
    lines = [_cited(reason)]
    if assessment is not None and reason.id != "scan-order-known-cad":
        lines.append(f"**Repeat-scan rule for this patient:** {md(assessment.next_scan.rationale)}")
        lines.append(_policy_line(assessment.policy))
    lines += _missing_line(missing)
    return Card(
        kind=reason.id,
        summary=shorten(summary),
        indicator="warning",
        source=_source(situation, rule_topic(reason.id), reason.id),
        detail="\n\n".join(lines),
        **_remove_draft(order, "Remove the draft CAC scan order", "CAC scan"),
        override_reasons=tuple(
            override_reason(c)
            for c in ("other-indication", "specialist-advice", "clinical-judgement", "data-incorrect")
        ),
    )


# The guardrails that hold under every policy (REFERENCE §14.3), named in the summary itself.
_ASPIRIN_GUARDRAIL_SUMMARIES = {
    "aspirin-bleeding-risk-check": (
        "Aspirin for primary prevention: bleeding risk not recorded; check it first"
    ),
    "aspirin-not-over-70": "Aspirin for primary prevention: not advised above 70 (Class III, Harm)",
    "aspirin-bleeding-risk": "Aspirin for primary prevention: not advised with raised bleeding risk",
    "aspirin-not-with-symptoms": "Aspirin for primary prevention: no statement while symptoms are evaluated",
}


def aspirin_card(review: AspirinReview, situation: Situation, missing: Mapping[str, str]) -> Card:
    """No removal suggestion: an aspirin order may serve another purpose (stroke, peripheral artery
    disease) this primary-prevention rule does not see."""
    policy = situation.policy.id.value
    if review.considered:
        summary = f"Aspirin for primary prevention: may be considered under {policy}; it is not routine"
    elif review.patient.id in _ASPIRIN_GUARDRAIL_SUMMARIES:
        summary = _ASPIRIN_GUARDRAIL_SUMMARIES[review.patient.id]
    else:
        summary = f"Aspirin for primary prevention: {policy} criteria not met for this patient"
    lines = [
        f"**What the policy requires:** {_cited(review.requirement)}",
        f"**This patient:** {_cited(review.patient)}",
        "If this aspirin is for another reason (for example stroke or peripheral artery disease), this "
        "primary-prevention rule does not apply.",
        *_missing_line(missing),
    ]
    return Card(
        kind="aspirin-policy",
        summary=shorten(summary),
        indicator="info" if review.considered else "warning",
        source=_source(situation, rule_topic(review.requirement.id), review.requirement.id),
        detail="\n\n".join(lines),
        override_reasons=tuple(
            override_reason(c)
            for c in ("other-indication", "specialist-advice", "clinical-judgement", "patient-declined")
        ),
    )


_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def _remove_draft(order: Mapping[str, Any], label: str, what: str) -> dict[str, Any]:
    """A suggestion to delete the draft, when the draft has a FHIR id to name it by (an EHR that
    sends another kind of id gets the card without the suggestion, not a refused call)."""
    resource_type, resource_id = order.get("resourceType"), order.get("id")
    if not isinstance(resource_id, str) or not _FHIR_ID.fullmatch(resource_id):
        return {}
    action = Action("delete", f"Remove the draft {what} order", resource_id=f"{resource_type}/{resource_id}")
    return {
        "suggestions": (Suggestion(label=label, kind="remove-draft", actions=(action,)),),
        "selection_behavior": "at-most-one",
    }
