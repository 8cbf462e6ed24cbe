"""Small FHIR R4 resource builders for tests: valid by default, one keyword away from each edge case."""

from __future__ import annotations

from typing import Any

from fhircac.fhir import codes

PATIENT_REF = {"reference": "Patient/p1"}


def patient(
    id: str = "p1",
    gender: str | None = "male",
    birth_date: str | None = "1966-04-02",
    race: list[str] | None = None,
    ethnicity: list[str] | None = None,
    detailed: list[str] | None = None,
) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": "Patient", "id": id}
    if gender:
        resource["gender"] = gender
    if birth_date:
        resource["birthDate"] = birth_date
    extensions = []
    if race is not None or detailed is not None:
        parts = [
            {"url": "ombCategory", "valueCoding": {"system": codes.CDC_RACE_ETHNICITY, "code": c}}
            for c in race or []
        ]
        parts += [
            {"url": "detailed", "valueCoding": {"system": codes.CDC_RACE_ETHNICITY, "code": c}}
            for c in detailed or []
        ]
        extensions.append(
            {"url": codes.US_CORE_RACE, "extension": [*parts, {"url": "text", "valueString": "race"}]}
        )
    if ethnicity is not None:
        parts = [
            {"url": "ombCategory", "valueCoding": {"system": codes.CDC_RACE_ETHNICITY, "code": c}}
            for c in ethnicity
        ]
        extensions.append(
            {"url": codes.US_CORE_ETHNICITY, "extension": [*parts, {"url": "text", "valueString": "e"}]}
        )
    if extensions:
        resource["extension"] = extensions
    return resource


def quantity(value: Any, code: str | None, unit: str | None = None) -> dict[str, Any]:
    q: dict[str, Any] = {"value": value}
    if unit or code:
        q["unit"] = unit or code
    if code:
        q["system"] = codes.UCUM
        q["code"] = code
    return q


def cac(
    id: str = "scan1",
    value: Any = 120,
    date: str = "2026-01-15",
    status: str = "final",
    unit_code: str | None = "{Agatston}",
    vessels: dict[str, float] | None = None,
    percentile: float | None = None,
    subject: dict[str, Any] | None = None,
    version: str | None = None,
    **value_override: Any,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": id,
        "status": status,
        "code": {"coding": [{"system": codes.SNOMED, "code": "450360000"}]},
        "subject": subject or PATIENT_REF,
        "effectiveDateTime": date,
    }
    if version:
        resource["meta"] = {"versionId": version}
    if value_override:
        resource.update(value_override)
    else:
        resource["valueQuantity"] = quantity(value, unit_code, "Agatston")
    components = []
    for code, score in (vessels or {}).items():
        components.append(
            {
                "code": {"coding": [{"system": codes.FHIRCAC, "code": code}]},
                "valueQuantity": quantity(score, "{Agatston}"),
            }
        )
    if percentile is not None:
        components.append(
            {
                "code": {"coding": [{"system": codes.FHIRCAC, "code": codes.CAC_PERCENTILE}]},
                "valueQuantity": quantity(percentile, "1"),
            }
        )
    if components:
        resource["component"] = components
    return resource


def lab(
    loinc: str,
    value: Any,
    unit_code: str | None,
    id: str | None = None,
    date: str = "2026-01-10",
    status: str = "final",
) -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": id or f"lab-{loinc}-{date}",
        "status": status,
        "code": {"coding": [{"system": codes.LOINC, "code": loinc}]},
        "subject": PATIENT_REF,
        "effectiveDateTime": date,
        "valueQuantity": quantity(value, unit_code),
    }


def blood_pressure(systolic: float, id: str = "bp1", date: str = "2026-01-10") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": id,
        "status": "final",
        "code": {"coding": [{"system": codes.LOINC, "code": "85354-9"}]},
        "subject": PATIENT_REF,
        "effectiveDateTime": date,
        "component": [
            {
                "code": {"coding": [{"system": codes.LOINC, "code": "8480-6"}]},
                "valueQuantity": quantity(systolic, "mm[Hg]"),
            },
            {
                "code": {"coding": [{"system": codes.LOINC, "code": "8462-4"}]},
                "valueQuantity": quantity(80, "mm[Hg]"),
            },
        ],
    }


def smoking(snomed: str, id: str = "smoke1", date: str = "2026-01-10") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": id,
        "status": "final",
        "code": {"coding": [{"system": codes.LOINC, "code": codes.SMOKING_STATUS}]},
        "subject": PATIENT_REF,
        "effectiveDateTime": date,
        "valueCodeableConcept": {"coding": [{"system": codes.SNOMED, "code": snomed}]},
    }


def condition(
    code: str,
    system: str = codes.SNOMED,
    id: str | None = None,
    clinical: str = "active",
    verification: str = "confirmed",
) -> dict[str, Any]:
    return {
        "resourceType": "Condition",
        "id": id or f"cond-{code}".replace(".", "-"),
        "clinicalStatus": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": clinical}
            ]
        },
        "verificationStatus": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status", "code": verification}
            ]
        },
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": PATIENT_REF,
    }


def medication_statement(
    concept: dict[str, Any] | None = None,
    id: str = "med1",
    status: str = "active",
    start: str | None = "2020-01-01",
    end: str | None = None,
    reference: str | None = None,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "MedicationStatement",
        "id": id,
        "status": status,
        "subject": PATIENT_REF,
    }
    if reference:
        resource["medicationReference"] = {"reference": reference}
    else:
        resource["medicationCodeableConcept"] = concept or rxnorm("83367", "atorvastatin")
    period = {k: v for k, v in (("start", start), ("end", end)) if v}
    if period:
        resource["effectivePeriod"] = period
    return resource


def rxnorm(code: str, display: str) -> dict[str, Any]:
    return {"coding": [{"system": codes.RXNORM, "code": code, "display": display}], "text": display}


def family_history(
    relationship: str, onset_age: float | None, code: str = "22298006", id: str = "fmh1"
) -> dict[str, Any]:
    item: dict[str, Any] = {"code": {"coding": [{"system": codes.SNOMED, "code": code}]}}
    if onset_age is not None:
        item["onsetAge"] = {"value": onset_age, "unit": "years", "system": codes.UCUM, "code": "a"}
    return {
        "resourceType": "FamilyMemberHistory",
        "id": id,
        "status": "completed",
        "patient": PATIENT_REF,
        "relationship": {"coding": [{"system": codes.V3_ROLE_CODE, "code": relationship}]},
        "condition": [item],
    }


def collection(*resources: dict[str, Any], bundle_type: str = "collection") -> dict[str, Any]:
    entries = []
    for resource in resources:
        entry: dict[str, Any] = {"resource": resource}
        if bundle_type == "transaction":
            entry["request"] = {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"}
        entries.append(entry)
    return {"resourceType": "Bundle", "type": bundle_type, "entry": entries}


def full_record(*extra: dict[str, Any], **patient_args: Any) -> dict[str, Any]:
    """A patient with everything the risk equations need, plus ``extra`` resources."""
    return collection(
        patient(race=[codes.WHITE], ethnicity=[codes.NOT_HISPANIC], **patient_args),
        cac(),
        lab("2093-3", 200, "mg/dL", id="tc"),
        lab("2085-9", 50, "mg/dL", id="hdl"),
        blood_pressure(130),
        smoking("266919005"),
        condition("59621000", id="htn"),
        medication_statement(rxnorm("29046", "lisinopril"), id="lisinopril"),
        {
            "resourceType": "Observation",
            "id": "fh",
            "status": "final",
            "code": {"coding": [{"system": codes.FHIRCAC, "code": codes.FAMILY_HISTORY_PREMATURE_CHD}]},
            "subject": PATIENT_REF,
            "valueBoolean": False,
        },
        *extra,
    )
