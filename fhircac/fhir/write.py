"""The core's ``Assessment`` → RiskAssessment, CarePlan and Provenance, as one idempotent transaction.

Every resource carries an identifier derived from its inputs (the current CAC Observation's id and
version, the policy id and version; ARCHITECTURE.md), so a transaction replayed with
``If-None-Exist`` creates nothing new. R4 Provenance has no identifier: its key is a ``meta.tag``.
Everything the service proposes is a consideration with its rule and source, never an order.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from fhircac import __version__
from fhircac.clinical import citations as c
from fhircac.clinical.assessment import Assessment, Claim, Statement
from fhircac.clinical.summary import to_summary
from fhircac.fhir import codes
from fhircac.fhir.inputs import validate_resource
from fhircac.fhir.issues import Issue
from fhircac.fhir.read import ReadResult, SourceRef

SOFTWARE = {"system": codes.DEVICE_ID, "value": "fhircac"}
# summary risk field → (fhircac outcome code, label, source): cited as the core cites the equations
_PREDICTIONS = (
    ("mesa_chd_10y_with_cac", "mesa-chd-10y-with-cac", "MESA 10-year CHD risk with CAC", c.MESA_RISK),
    (
        "mesa_chd_10y_without_cac",
        "mesa-chd-10y-without-cac",
        "MESA 10-year CHD risk without CAC",
        c.MESA_RISK,
    ),
    ("pce_ascvd_10y", "pce-ascvd-10y", "Pooled Cohort Equations 10-year ASCVD risk", c.PCE),
)
_MEDICATION_PREFIXES = ("statin-", "ldl-190", "aspirin-", "lf-aspirin-", "lf-cac-100-399-ldl-lowering")
_THERAPY_PREFIXES = (*_MEDICATION_PREFIXES, "secondary-prevention", "lf-cac-", "cac-low-risk")
_SERVICE_REQUEST_IDS = ("lpa-measure-once", "symptoms-evaluate-first")
_PROPOSES_MEDICINE = frozenset({Claim.STATIN_INDICATED, Claim.STATIN_REASONABLE, Claim.ASPIRIN_CONSIDERED})


class OutputInvalid(RuntimeError):
    """A produced resource failed FHIR validation: a bug in fhircac, never the user's input."""


@dataclass(frozen=True)
class Produced:
    risk_assessment: dict[str, Any]
    care_plan: dict[str, Any] | None  # None for a scan that is no longer the patient's latest
    provenance: dict[str, Any]
    full_urls: tuple[str, str, str]  # urn:uuid per resource, deterministic, for in-bundle references

    def resources(self) -> list[dict[str, Any]]:
        return [r for r in (self.risk_assessment, self.care_plan, self.provenance) if r is not None]

    def urls(self) -> list[str]:
        """The fullUrl of each of ``resources()``, in the same order."""
        if self.care_plan is None:
            return [self.full_urls[0], self.full_urls[2]]
        return list(self.full_urls)

    def transaction(self) -> dict[str, Any]:
        """A transaction Bundle a FHIR server can replay safely: conditional creates only."""
        entries = []
        for full_url, resource in zip(self.urls(), self.resources(), strict=True):
            if resource["resourceType"] == "Provenance":
                tag = resource["meta"]["tag"][0]
                condition = urlencode({"_tag": f"{tag['system']}|{tag['code']}"})
            else:
                identifier = resource["identifier"][0]
                condition = urlencode({"identifier": f"{identifier['system']}|{identifier['value']}"})
            entries.append(
                {
                    "fullUrl": full_url,
                    "resource": resource,
                    "request": {"method": "POST", "url": resource["resourceType"], "ifNoneExist": condition},
                }
            )
        return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def assessment_key(read: ReadResult) -> str:
    """What the produced resources are *about*: the current CAC Observation, as precisely as known."""
    scan = read.current_scan
    if scan is not None and scan.id:
        return f"Observation/{scan.id}" + (f"/_history/{scan.version}" if scan.version else "")
    if scan is not None and scan.identifier:
        text = f"{scan.identifier.get('system')}|{scan.identifier.get('value')}"
        return "Observation-identifier-" + hashlib.sha256(text.encode()).hexdigest()[:20]
    record = read.record
    patient = json.dumps(_subject(read.patient), sort_keys=True)
    basis = f"{patient}|{[(s.date.isoformat(), s.agatston) for s in record.scans] if record else ''}"
    return "Observation-content-" + hashlib.sha256(basis.encode()).hexdigest()[:20]


def produce(
    assessment: Assessment, read: ReadResult, *, recorded: datetime, care_plan: bool = True
) -> Produced:
    """Build and validate the resources; ``recorded`` is when fhircac made them (Provenance).

    ``care_plan=False`` for a scan that a later scan has already replaced: its assessment is a
    record of what that scan meant, but only the latest scan's plan is one to act on.
    """
    key = _key(assessment, read)
    subject = _subject(read.patient)
    urls = (_full_url("riskassessment", key), _full_url("careplan", key), _full_url("provenance", key))
    risk_assessment = _risk_assessment(assessment, read, key, subject)
    plan = _care_plan(assessment, key, subject, urls[0]) if care_plan else None
    targets = urls[:2] if care_plan else urls[:1]
    provenance = _provenance(assessment, read, key, recorded, targets)
    produced = Produced(risk_assessment, plan, provenance, urls)
    _validated(produced.resources())
    return produced


def care_plan_identifier(assessment: Assessment, read: ReadResult) -> dict[str, str]:
    """The identifier ``produce`` gives this assessment's CarePlan, without building anything."""
    return _identifier("careplan", _key(assessment, read))[0]


def assessment_and_plan(assessment: Assessment, read: ReadResult) -> tuple[dict[str, Any], dict[str, Any]]:
    """The RiskAssessment and CarePlan alone, validated: what a CDS card suggests the EHR create.
    The EHR records them itself, so there is no Provenance of a fhircac write; the plan names the
    interpretation by identifier, because the EHR assigns the ids."""
    key = _key(assessment, read)
    subject = _subject(read.patient)
    risk_assessment = _risk_assessment(assessment, read, key, subject)
    plan = _care_plan(assessment, key, subject, _full_url("riskassessment", key))
    plan["supportingInfo"] = [
        {
            "type": "RiskAssessment",
            "identifier": risk_assessment["identifier"][0],
            "display": "fhircac CAC interpretation",
        }
    ]
    _validated([risk_assessment, plan])
    return risk_assessment, plan


def _key(assessment: Assessment, read: ReadResult) -> str:
    return f"{assessment_key(read)}:{assessment.policy.id.value}:{assessment.policy.version}"


def _validated(resources: list[dict[str, Any]]) -> None:
    for resource in resources:
        problems = validate_resource(resource, f"output {resource['resourceType']}")
        if problems:
            raise OutputInvalid("; ".join(str(p) for p in problems))


def _full_url(kind: str, key: str) -> str:
    return f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, f'{codes.ASSESSMENT_ID}/{kind}:{key}')}"


def _identifier(kind: str, key: str) -> list[dict[str, str]]:
    return [{"system": codes.ASSESSMENT_ID, "value": f"{kind}:{key}"}]


def _subject(patient: SourceRef) -> dict[str, Any]:
    if patient.id:
        return {"reference": f"Patient/{patient.id}"}
    if patient.identifier and patient.identifier.get("value"):
        query = urlencode(
            {"identifier": f"{patient.identifier.get('system', '')}|{patient.identifier['value']}"}
        )
        return {"reference": f"Patient?{query}"}  # a conditional reference, resolved by the server
    return {"display": "patient without id or identifier"}


def _policy_extension(assessment: Assessment) -> dict[str, Any]:
    policy = assessment.policy
    coding = {"system": codes.POLICY, "code": policy.id.value, "display": policy.title}
    return {
        "url": codes.EXT_POLICY,
        "extension": [
            {"url": "policy", "valueCoding": coding},
            {"url": "version", "valueString": policy.version},
        ],
    }


def _fhircac_coding(code: str) -> dict[str, str]:
    return {"system": codes.FHIRCAC, "code": code, "display": codes.FHIRCAC_CONCEPTS[code][0]}


def _note(text: str, audience: str) -> dict[str, Any]:
    return {"text": text, "extension": [{"url": codes.EXT_NOTE_AUDIENCE, "valueCode": audience}]}


def _cited(statement: Statement) -> str:
    return f"{statement.text} [{statement.id}; source: {statement.source}]"


def _risk_assessment(
    assessment: Assessment, read: ReadResult, key: str, subject: dict[str, Any]
) -> dict[str, Any]:
    a = assessment
    extensions = [
        _policy_extension(a),
        {"url": codes.EXT_SCORE_BAND, "valueCoding": _fhircac_coding(codes.BAND_CODES[a.score.band])},
        {"url": codes.EXT_CAC_DRS, "valueString": a.score.cac_drs},
    ]
    if a.percentile is not None:
        parts: list[dict[str, Any]] = [
            {"url": "value", "valueDecimal": round(a.percentile.value, 1)},
            {"url": "estimated", "valueBoolean": a.percentile.estimated},
            {"url": "reference", "valueString": a.percentile.reference},
        ]
        extensions.append({"url": codes.EXT_PERCENTILE, "extension": parts})
    extensions.append(
        {
            "url": codes.EXT_METABOLIC_STATE,
            "valueCoding": _fhircac_coding(codes.METABOLIC_CODES[a.metabolic.state]),
        }
    )
    summary = to_summary(a)
    predictions = []
    for field_name, code, label, source in _PREDICTIONS:
        value = summary["risk"][field_name]
        if value is None:
            continue
        predictions.append(
            {
                "outcome": {"coding": [_fhircac_coding(code)], "text": label},
                "probabilityDecimal": value,
                "whenRange": {"high": {"value": 10, "unit": "years", "system": codes.UCUM, "code": "a"}},
                "rationale": c.cite("REFERENCE §4", source)
                + ("; derived in people without symptoms" if a.symptoms_first else ""),
            }
        )
    explanation = a.explanation
    notes = [_note("\n\n".join([explanation.headline, *explanation.paragraphs]), "patient")]
    if a.progression is not None:
        notes.append(
            _note(
                f"Progression: {a.progression.interpretation} [source: {a.progression.source}]", "clinician"
            )
        )
    notes.append(_note(f"Next scan: {a.next_scan.rationale} [source: {a.next_scan.source}]", "clinician"))
    notes += [_note(f"Warning: {_cited(w)}", "clinician") for w in a.warnings]
    notes += [_note(f"Missing input: {m}", "clinician") for m in a.missing]
    notes += [_note(f"Input note: {note}", "clinician") for note in read_notes(read.issues)]
    resource: dict[str, Any] = {
        "resourceType": "RiskAssessment",
        "meta": {"profile": [codes.PROFILE_CAC_RISK_ASSESSMENT]},
        "extension": extensions,
        "identifier": _identifier("riskassessment", key),
        "status": "final",
        "code": {"coding": [_fhircac_coding("cac-risk-assessment")]},
        "method": {
            "text": f"fhircac {__version__}: CAC interpretation under policy {a.policy.id.value} "
            f"{a.policy.version} ({a.policy.title})"
        },
        "subject": subject,
        "occurrenceDateTime": a.as_of.isoformat(),
        "basis": [ref.reference() for ref in read.sources.values() if ref.type != "Patient"],
    }
    if predictions:
        resource["prediction"] = predictions
    if a.recommendations:
        resource["mitigation"] = "\n".join(f"- {_cited(r)}" for r in a.recommendations)
    resource["note"] = notes
    return resource


def _activity_code(statement_id: str) -> str:
    if statement_id.endswith("-lifestyle"):
        return "lifestyle"
    if statement_id == "lf-annual-markers" or statement_id.endswith("-measure"):
        return "lab-monitoring"
    if statement_id.startswith(_THERAPY_PREFIXES):
        return "therapy-consideration"
    return "workup-consideration"


def _activity_kind(statement: Statement, code: str) -> str | None:
    # A MedicationRequest activity proposes a medicine: only where the statement does (REFERENCE
    # §14.7), never for "withhold a statin" or "aspirin is not advised".
    if statement.claims & _PROPOSES_MEDICINE:
        return "MedicationRequest"
    if code == "lab-monitoring" or statement.id in _SERVICE_REQUEST_IDS:
        return "ServiceRequest"
    return None


def _statement_activity(statement: Statement, code: str | None = None) -> dict[str, Any]:
    code = code or _activity_code(statement.id)
    detail: dict[str, Any] = {}
    kind = _activity_kind(statement, code)
    if kind:
        detail["kind"] = kind
    detail |= {
        "code": {"coding": [_fhircac_coding(code)], "text": codes.FHIRCAC_CONCEPTS[code][0]},
        "reasonCode": [{"coding": [{"system": codes.RULE, "code": statement.id}], "text": statement.source}],
        "status": "not-started",
        "description": statement.text,
    }
    return {"detail": detail}


def _scan_activity(assessment: Assessment) -> dict[str, Any] | None:
    scan = assessment.next_scan
    # REFERENCE §14.7: no coded repeat-scan activity where the rule proposes no repeat (the
    # rationale stays in the RiskAssessment's notes).
    if scan.earliest is None or scan.suggested is None:
        return None
    when = f"Not before {scan.earliest.isoformat()}; suggested around {scan.suggested.isoformat()}"
    return {
        "detail": {
            "kind": "ServiceRequest",
            "code": {
                "coding": [_fhircac_coding("repeat-cac-scan"), {"system": codes.CPT, "code": "75571"}],
                "text": "Repeat coronary artery calcium scan",
            },
            "reasonCode": [{"text": scan.source}],
            "status": "not-started",
            "scheduledPeriod": {"start": scan.earliest.isoformat()},
            "description": f"{when}. {scan.rationale}",
        }
    }


def _care_plan(
    assessment: Assessment, key: str, subject: dict[str, Any], risk_assessment_url: str
) -> dict[str, Any]:
    a = assessment
    activities = [activity for activity in [_scan_activity(a)] if activity]
    activities += [_statement_activity(r) for r in a.recommendations]
    activities += [_statement_activity(item, "lifestyle") for item in a.lifestyle]
    explanation = a.explanation
    patient_text = "\n\n".join(
        [
            explanation.headline,
            *explanation.paragraphs,
            "Questions to ask:\n" + "\n".join(f"- {q}" for q in explanation.questions),
            f"(Source: {explanation.source})",
        ]
    )
    score = a.score
    resource: dict[str, Any] = {
        "resourceType": "CarePlan",
        "meta": {"profile": [codes.PROFILE_CAC_CARE_PLAN]},
        "extension": [_policy_extension(a)],
        "identifier": _identifier("careplan", key),
        "status": "active",
        "intent": "proposal",
        "category": [{"coding": [_fhircac_coding("cac-care-plan")]}],
        "title": "Coronary artery calcium: follow-up to discuss",
        "description": (
            f"Proposals after a CAC score of {score.agatston:g} on {score.date.isoformat()} "
            f"(band {score.band}, CAC-DRS {score.cac_drs}), under policy {a.policy.id.value} "
            f"{a.policy.version}. Considerations to discuss with the patient, not orders."
        ),
        "subject": subject,
        "period": {"start": a.as_of.isoformat()},
        "created": a.as_of.isoformat(),
        "author": {"type": "Device", "identifier": SOFTWARE, "display": f"fhircac {__version__}"},
        "supportingInfo": [{"reference": risk_assessment_url}],
        "activity": activities,
        "note": [_note(patient_text, "patient")],
    }
    return resource


def _provenance(
    assessment: Assessment, read: ReadResult, key: str, recorded: datetime, targets: tuple[str, ...]
) -> dict[str, Any]:
    entities = [{"role": "source", "what": read.patient.reference(versioned=True)}]
    entities += [{"role": "source", "what": ref.reference(versioned=True)} for ref in read.sources.values()]
    tag_code = hashlib.sha256(f"provenance:{key}".encode()).hexdigest()[:32]
    resource: dict[str, Any] = {
        "resourceType": "Provenance",
        "meta": {
            "profile": [codes.PROFILE_CAC_PROVENANCE],
            "tag": [{"system": codes.PROVENANCE_TAG, "code": tag_code, "display": f"provenance:{key}"}],
        },
        "target": [{"reference": target} for target in targets],
        "occurredDateTime": assessment.as_of.isoformat(),
        "recorded": recorded.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "activity": {"coding": [{"system": codes.V3_DATA_OPERATION, "code": "CREATE", "display": "create"}]},
        "agent": [
            {
                "type": {"coding": [{"system": codes.PROVENANCE_PARTICIPANT, "code": "assembler"}]},
                "who": {"type": "Device", "identifier": SOFTWARE, "display": f"fhircac {__version__}"},
            }
        ],
        "entity": entities,
    }
    return resource


def read_notes(issues: list[Issue]) -> list[str]:
    """Warnings and notes from reading, placed by element but without the input's file name (it is
    local to the machine that ran fhircac and must not travel into a FHIR server)."""
    return [
        f"{issue.message} ({issue.location.split(': ', 1)[-1]})" for issue in issues if not issue.is_error
    ]
