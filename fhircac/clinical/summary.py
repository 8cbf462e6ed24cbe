"""The assessment summary JSON of ARCHITECTURE.md: one object per patient.

Fields may be added, never renamed. Risks are fractions; dates ISO 8601.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from fhircac.clinical.assessment import Assessment, Statement


def _number(value: float | None, digits: int) -> float | int | None:
    if value is None:
        return None
    rounded = round(value, digits)
    return int(rounded) if float(rounded).is_integer() and digits <= 1 else rounded


def _date(value: date | None) -> str | None:
    return value.isoformat() if value else None


def _statements(statements: tuple[Statement, ...]) -> list[dict[str, str]]:
    return [{"id": s.id, "text": s.text, "source": s.source} for s in statements]


def to_summary(assessment: Assessment) -> dict[str, Any]:
    a = assessment
    progression = a.progression
    return {
        "patient": a.patient_id,
        "as_of": a.as_of.isoformat(),
        "policy": {"id": a.policy.id.value, "version": a.policy.version},
        "score": {
            "agatston": _number(a.score.agatston, 1),
            "date": a.score.date.isoformat(),
            "band": a.score.band,
            "fine_band": a.score.fine_band,
            "cac_drs": a.score.cac_drs,
            "vessels_with_calcium": a.score.vessels_with_calcium,
            "stage": a.score.stage,
            "arterial_age": a.score.arterial_age,
        },
        "percentile": None
        if a.percentile is None
        else {
            "value": _number(a.percentile.value, 1),
            "estimated": a.percentile.estimated,
            "reference": a.percentile.reference,
        },
        "risk": {
            "mesa_chd_10y_with_cac": _number(a.risk.mesa_chd_10y_with_cac, 4),
            "mesa_chd_10y_without_cac": _number(a.risk.mesa_chd_10y_without_cac, 4),
            "pce_ascvd_10y": _number(a.risk.pce_ascvd_10y, 4),
            "pce_band": a.risk.pce_band,
        },
        "progression": None
        if progression is None
        else {
            "prior_agatston": _number(progression.prior_agatston, 1),
            "prior_date": progression.prior_date.isoformat(),
            "years": round(progression.years, 2),
            "annualized_change": round(progression.annualized_change, 1),
            "annualized_percent": None
            if progression.annualized_percent is None
            else round(progression.annualized_percent, 1),
            "sqrt_delta": round(progression.sqrt_delta, 2),
            "significant": progression.significant,
            "category": progression.category.value,
            "rapid": progression.rapid,
            "on_statin": progression.on_statin,
            "interpretation": progression.interpretation,
            "source": progression.source,
        },
        "next_scan": {
            "earliest": _date(a.next_scan.earliest),
            "suggested": _date(a.next_scan.suggested),
            "rationale": a.next_scan.rationale,
            "source": a.next_scan.source,
        },
        "metabolic_state": a.metabolic.state.value,
        "metabolic_markers": [
            {
                "marker": m.marker,
                "value": round(m.value, 2),
                "unit": m.unit,
                "target": m.target,
                "on_target": m.on_target,
            }
            for m in a.metabolic.markers
        ],
        "recommendations": _statements(a.recommendations),
        "warnings": _statements(a.warnings),
        "lifestyle": _statements(a.lifestyle),
        "explanation": {
            "headline": a.explanation.headline,
            "paragraphs": list(a.explanation.paragraphs),
            "questions": list(a.explanation.questions),
            "source": a.explanation.source,
        },
        "missing": [str(m) for m in a.missing],
    }
