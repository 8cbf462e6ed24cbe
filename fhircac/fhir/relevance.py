"""Which Observations and Procedures fhircac reads, told from their codes before any validation.

A real record is mostly resources fhircac never reads (vitals, surveys, encounters' procedures):
they are neither validated nor can a defect in them block the assessment. The test is shape-safe
(any JSON) and errs towards reading: an Observation whose code cannot be looked at is read, so its
defect is reported.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from fhircac.clinical.record import DrugClass
from fhircac.fhir import codes, terminology

_OBSERVATION_CODES = (
    frozenset((codes.LOINC, code) for code in codes.LAB_CODES)
    | frozenset((codes.LOINC, code) for code in codes.BLOOD_PRESSURE_PANELS)
    | frozenset((codes.LOINC, code) for code in terminology.smoking_observation_codes())
    | {(codes.LOINC, "8480-6"), (codes.FHIRCAC, codes.FAMILY_HISTORY_PREMATURE_CHD)}
    | codes.CAC_CODES
)
_CORONARY_WORDS = re.compile(r"coronar|stent|bypass|cabg|angioplast|\bpci\b|revascular")


def _code_codings(resource: dict[str, Any]) -> list[dict[str, Any]] | None:
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


def concept_codings(concept: Any) -> list[dict[str, Any]]:
    """The codings of a CodeableConcept, whatever the JSON holds."""
    if not isinstance(concept, dict):
        return []
    codings = concept.get("coding")
    return [c for c in codings if isinstance(c, dict)] if isinstance(codings, list) else []


def is_cac(resource: dict[str, Any]) -> bool:
    return bool(_keys(_code_codings(resource) or []) & codes.CAC_CODES)


_CAC_WORDS = re.compile(r"calcium scor|agatston|\bcac\b")


def looks_like_cac(resource: dict[str, Any]) -> bool:
    """Worded like a calcium score, whatever its code (so an uncoded one can be pointed at)."""
    concept = resource.get("code")
    texts = [str(concept.get("text") or "")] if isinstance(concept, dict) else []
    texts += [str(c.get("display") or "") for c in _code_codings(resource) or []]
    return bool(_CAC_WORDS.search(" ".join(texts).lower()))


def read_observation(resource: dict[str, Any]) -> bool:
    codings = _code_codings(resource)
    return codings is None or bool(_keys(codings) & _OBSERVATION_CODES) or looks_like_cac(resource)


def read_procedure(resource: dict[str, Any]) -> bool:
    """Coronary procedures by code (the PCI and CABG tables, REFERENCE §12), or by wording."""
    codings = _code_codings(resource)
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


_ICD10_PREFIXES = tuple(
    p.replace(".", "")
    for p in (
        *codes.DIABETES_ICD10,
        *codes.SYMPTOM_ICD10,
        *codes.BLEEDING_ICD10,
        *codes.CORONARY_ICD10,
    )
)
_CONDITION_SNOMED = (
    codes.DIABETES_SNOMED
    | codes.SYMPTOM_SNOMED
    | codes.INTRACRANIAL_HAEMORRHAGE_SNOMED
    | codes.BLEEDING_SNOMED
    | frozenset(codes.CORONARY_SNOMED)
)


def read_condition(resource: dict[str, Any]) -> bool:
    """Conditions fhircac reads: in the terminology tables, REFERENCE §12's codes, the bleeding and
    symptom codes, tobacco use, or cardiovascular/diabetes wording (reported when unrecognised)."""
    codings = _code_codings(resource)
    if codings is None:
        return True
    for coding in codings:
        system, code = coding.get("system"), coding.get("code")
        if not isinstance(code, str):
            return True  # let validation say what is wrong
        if terminology.condition(system, code) or terminology.procedure(system, code):
            return True
        if terminology.smoking_answer(system, code) is not None:
            return True
        canonical = terminology.system_of(system)
        if canonical == codes.SNOMED and code in _CONDITION_SNOMED:
            return True
        if canonical == codes.FHIRCAC and code == codes.HIGH_BLEEDING_RISK:
            return True
        if canonical in codes.ICD10_SYSTEMS and code.upper().replace(".", "").startswith(_ICD10_PREFIXES):
            return True
    return looks_relevant(resource.get("code"))


def read_medication_use(resource: dict[str, Any]) -> bool:
    """MedicationStatement/Request fhircac reads: a drug class it knows, or one that looks
    cardiovascular (reported); a referenced Medication is always read (it is classified later)."""
    if "medicationReference" in resource:
        return True
    concept = resource.get("medicationCodeableConcept")
    if not isinstance(concept, dict):
        return True
    classified = read_medication([concept])
    return bool(classified.classes or classified.note or classified.unrecognised)


_READERS = {
    "Observation": read_observation,
    "Procedure": read_procedure,
    "Condition": read_condition,
    "MedicationStatement": read_medication_use,
    "MedicationRequest": read_medication_use,
}
# Types whose mere presence says something (a problem list, a medication list exists).
LISTS = frozenset({"Condition", "MedicationStatement", "MedicationRequest"})


def is_read(resource: dict[str, Any]) -> bool:
    """Whether fhircac reads this resource of a readable type (Patient, Medication, FamilyMemberHistory:
    always)."""
    reader = _READERS.get(str(resource.get("resourceType")))
    return reader is None or reader(resource)


_RELEVANT_WORDS = re.compile(
    r"diabet|infarct|coronary|angina|stroke|ischaemi|ischemi|stent|bypass|cabg|atheroscl|arterioscl|"
    r"claudication|transient isch|cerebrovasc|peripheral arter|haemorrhag|hemorrhag|\bpad\b|\bcad\b|\bmi\b"
)


def looks_relevant(concept: Any) -> bool:
    """Cardiovascular or diabetes wording (not prediabetes) in a concept no table recognises."""
    texts = [str((concept or {}).get("text") or "")] + [
        str(c.get("display") or "") for c in concept_codings(concept)
    ]
    text = " ".join(texts).lower().replace("prediabet", "")
    return bool(_RELEVANT_WORDS.search(text))


@dataclass(frozen=True)
class Classified:
    """What a medication was read as, and what needs saying about how."""

    classes: frozenset[DrugClass]
    name: str | None
    note: str | None = None  # e.g. a name matched despite its spelling
    unrecognised: str | None = None  # the codes of a cardiovascular-looking medication not recognised


def read_medication(concepts: Iterable[dict[str, Any]]) -> Classified:
    """Drug classes of a medication: by code in the terminology tables, then by RxNorm ingredient or
    ATC (longest prefix), then by ingredient or brand name in its text and displays."""
    classes: set[DrugClass] = set()
    name: str | None = None
    reservation: str | None = None
    texts: list[str] = []
    codings: list[dict[str, Any]] = []
    for concept in concepts:
        texts.append(str(concept.get("text") or ""))
        for coding in concept_codings(concept):
            codings.append(coding)
            texts.append(str(coding.get("display") or ""))
            found = terminology.drug(coding.get("system"), coding.get("code"))
            if found is not None:
                classes |= found.classes
                name = name or (found.name if found.classes else None)
                reservation = reservation or found.note
    if not classes:
        classes, name = _by_ingredient_or_atc(codings)
    note = None
    if not classes:
        for text in texts:
            match = terminology.drug_by_name(text) if text else None
            if match is not None:
                classes |= match.classes
                name = name or match.name
                if match.misspelt and note is None:
                    note = f"{text!r} read as {match.name} (a misspelling of the name)"
    unrecognised = None
    if not classes and reservation is None and any(terminology.looks_cardiovascular(t) for t in texts):
        unrecognised = describe_codes(codings, texts)
    return Classified(frozenset(classes), name, note or reservation, unrecognised)


def _by_ingredient_or_atc(codings: list[dict[str, Any]]) -> tuple[set[DrugClass], str | None]:
    classes: set[DrugClass] = set()
    name: str | None = None
    for coding in codings:
        system, code = terminology.system_of(coding.get("system")), str(coding.get("code", ""))
        if system == codes.RXNORM and code in codes.RXNORM_INGREDIENTS:
            drug_class, name = codes.RXNORM_INGREDIENTS[code]
            classes.add(drug_class)
        elif system == codes.ATC:
            prefixes = [p for p in codes.ATC_PREFIXES if code.upper().startswith(p)]
            if prefixes:
                classes.update(codes.ATC_PREFIXES[max(prefixes, key=len)])
                name = name or coding.get("display") or code
    return classes, name


_SYSTEM_NAMES = {
    codes.RXNORM: "RxNorm",
    codes.SNOMED: "SNOMED",
    codes.ATC: "ATC",
    codes.ICD10_CM: "ICD-10-CM",
    codes.LOINC: "LOINC",
    codes.CPT: "CPT",
    terminology.ICD10_PCS: "ICD-10-PCS",
}


def describe_codes(codings: list[dict[str, Any]], texts: list[str]) -> str:
    described = [
        f"{_SYSTEM_NAMES.get(terminology.system_of(c.get('system')), c.get('system'))} {c.get('code')}"
        + (f" {c['display']!r}" if c.get("display") else "")
        for c in codings
    ]
    if not described:
        described = [repr(t) for t in texts if t][:1] or ["no code"]
    return ", ".join(described)
