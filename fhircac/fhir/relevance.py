"""Which Observations and Procedures fhircac reads, told from their codes before any validation.

A real record is mostly resources fhircac never reads (vitals, surveys, encounters' procedures):
they are neither validated nor can a defect in them block the assessment. The test is shape-safe
(any JSON) and errs towards reading: an Observation whose code cannot be looked at is read, so its
defect is reported.
"""

from __future__ import annotations

import re
from typing import Any

from fhircac.fhir import codes, terminology

_OBSERVATION_CODES = (
    frozenset((codes.LOINC, code) for code in codes.LAB_CODES)
    | frozenset((codes.LOINC, code) for code in codes.BLOOD_PRESSURE_PANELS)
    | frozenset((codes.LOINC, code) for code in terminology.smoking_observation_codes())
    | {(codes.LOINC, "8480-6"), (codes.FHIRCAC, codes.FAMILY_HISTORY_PREMATURE_CHD)}
    | codes.CAC_CODES
)
_CORONARY_WORDS = re.compile(r"coronar|stent|bypass|cabg|angioplast|\bpci\b|revascular")


def _codings(resource: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The codings of ``resource.code``; None when ``code`` is not a CodeableConcept at all."""
    concept = resource.get("code")
    if not isinstance(concept, dict):
        return None
    codings = concept.get("coding", [])
    if not isinstance(codings, list):
        return None
    return [c for c in codings if isinstance(c, dict)]


def _keys(codings: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {
        (terminology.system_of(c.get("system")), code)
        for c in codings
        if isinstance(code := c.get("code"), str)
    }


def is_cac(resource: dict[str, Any]) -> bool:
    return bool(_keys(_codings(resource) or []) & codes.CAC_CODES)


def read_observation(resource: dict[str, Any]) -> bool:
    codings = _codings(resource)
    return codings is None or bool(_keys(codings) & _OBSERVATION_CODES)


def read_procedure(resource: dict[str, Any]) -> bool:
    """Coronary procedures by code (the PCI and CABG tables, REFERENCE §12), or by wording."""
    codings = _codings(resource)
    if codings is None:
        return True
    for coding in codings:
        system, code = coding.get("system"), coding.get("code")
        if terminology.procedure(system, code) or terminology.condition(system, code):
            return True
        if str(code) in codes.CORONARY_SNOMED:
            return True
    concept = resource.get("code") or {}
    texts = [str(concept.get("text") or "")] + [str(c.get("display") or "") for c in codings]
    return bool(_CORONARY_WORDS.search(" ".join(texts).lower()))


def is_read(resource: dict[str, Any]) -> bool:
    """Whether fhircac reads this resource of a readable type (every type but these two: always)."""
    kind = resource.get("resourceType")
    if kind == "Observation":
        return read_observation(resource)
    if kind == "Procedure":
        return read_procedure(resource)
    return True
