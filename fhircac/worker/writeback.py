"""Write-back: read a patient from a FHIR server, assess, and write the result in one transaction.

Two HTTP requests per patient in the usual case: one batch of searches that brings everything the
reader needs, and one transaction of conditional creates. The transaction also revokes the
patient's previous CAC CarePlan (versioned, ``If-Match``) when a newer scan replaces it, so the
new plan and the revocation land together or not at all. Running it twice writes nothing new.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

from fhircac.clinical.policies import Policy
from fhircac.evaluate import Evaluation, evaluate
from fhircac.fhir import codes
from fhircac.fhir.client import FhirClient, FhirError, VersionConflict, outcome_message
from fhircac.fhir.inputs import collection
from fhircac.fhir.issues import Issue, has_errors

log = logging.getLogger(__name__)

SEARCH_COUNT = 1000  # one page per search for any realistic patient; more pages are followed
MAX_CONFLICT_RETRIES = 3
# What the reader uses, searched per patient in one batch request.
_PATIENT_SEARCHES = (
    "Observation?patient={p}&_count={n}",
    "MedicationStatement?patient={p}&_include=MedicationStatement:medication&_count={n}",
    "MedicationRequest?patient={p}&_include=MedicationRequest:medication&_count={n}",
    "Condition?patient={p}&_count={n}",
    "Procedure?patient={p}&_count={n}",
    "FamilyMemberHistory?patient={p}&_count={n}",
)
_PLANS = "CarePlan?patient={p}&identifier={system}|&_count={n}"  # every status: see _plan_changes


class WritebackRefused(Exception):
    """The patient's data cannot be assessed (bad or insufficient data): retrying will not help."""

    def __init__(self, reason: str, issues: list[Issue] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.issues = issues or []


@dataclass
class WritebackResult:
    patient: str
    scan: str | None  # the CAC Observation assessed, "Observation/<id>/_history/<v>"
    latest: bool  # the patient's latest scan (it carries the CarePlan)
    created: list[str] = field(default_factory=list)  # "RiskAssessment/<id>", … newly created
    superseded: list[str] = field(default_factory=list)  # CarePlans revoked by this write
    reactivated: list[str] = field(default_factory=list)  # this scan's plan, current again
    evaluation: Evaluation | None = None

    @property
    def outcome(self) -> str:
        return "written" if self.created or self.superseded or self.reactivated else "unchanged"


@dataclass(frozen=True)
class PatientData:
    """What the server holds for one patient: the reader's resources and its fhircac CarePlans."""

    resources: list[dict[str, Any]]
    plans: list[dict[str, Any]]


def fetch_patients(client: FhirClient, patient_ids: list[str]) -> dict[str, PatientData]:
    """Everything the reader needs for several patients in one batch request of eight searches.

    A patient the server does not have is absent from the result. The poller prefetches a page's
    patients this way: eight searches for a hundred patients cost the server far less than eight
    each.
    """
    ids = list(dict.fromkeys(patient_ids))
    references = quote(",".join(f"Patient/{pid}" for pid in ids), safe=",")
    urls = [f"Patient?_id={quote(','.join(ids), safe=',')}&_count={SEARCH_COUNT}"]
    urls += [search.format(p=references, n=SEARCH_COUNT) for search in _PATIENT_SEARCHES]
    urls.append(_PLANS.format(p=references, system=quote(codes.ASSESSMENT_ID, safe=""), n=SEARCH_COUNT))
    batch = {
        "resourceType": "Bundle",
        "type": "batch",
        "entry": [{"request": {"method": "GET", "url": url}} for url in urls],
    }
    entries = client.transaction(batch).get("entry") or []
    if len(entries) != len(urls):
        raise FhirError(f"the FHIR server answered {len(entries)} of {len(urls)} searches of a batch")
    found: dict[str, list[dict[str, Any]]] = {url: [] for url in urls}
    for url, entry in zip(urls, entries, strict=True):
        status = str((entry.get("response") or {}).get("status", ""))
        bundle = entry.get("resource") or {}
        if not status.startswith("200") or bundle.get("resourceType") != "Bundle":
            detail = outcome_message(bundle) if bundle.get("resourceType") == "OperationOutcome" else status
            raise FhirError(
                f"the FHIR server refused the search {url.split('?')[0]}: {detail or 'no status'}"
            )
        pages = [bundle, *client.pages_after(bundle)]
        found[url] = [e["resource"] for page in pages for e in page.get("entry") or [] if "resource" in e]
    medications = {
        f"Medication/{r['id']}": r
        for r in found[urls[2]] + found[urls[3]]
        if r.get("resourceType") == "Medication"
    }
    data = {
        str(patient["id"]): PatientData([patient], [])
        for patient in found[urls[0]]
        if patient.get("resourceType") == "Patient"
    }
    for url in urls[1:]:
        for resource in found[url]:
            owner = data.get(patient_of(resource) or "")
            if owner is None:
                continue  # an _include (Medication), or a resource of a patient not asked for
            if resource.get("resourceType") == "CarePlan":
                owner.plans.append(resource)
                continue
            owner.resources.append(resource)
            medication = str((resource.get("medicationReference") or {}).get("reference") or "")
            if medication in medications and medications[medication] not in owner.resources:
                owner.resources.append(medications[medication])
    return data


def write_back(
    client: FhirClient,
    patient_id: str,
    policy: Policy,
    *,
    scan_id: str | None = None,
    today: date | None = None,
    recorded: datetime | None = None,
    prefetched: PatientData | None = None,
) -> WritebackResult:
    """Assess ``patient_id`` and write the result; ``scan_id`` names the CAC Observation to assess
    (default: the latest). ``prefetched``: the patient's data read just before (``fetch_patients``).
    Version conflicts on a superseded CarePlan are retried with freshly read data."""
    for attempt in range(MAX_CONFLICT_RETRIES + 1):
        try:
            return _write_back_once(client, patient_id, policy, scan_id, today, recorded, prefetched)
        except VersionConflict:
            prefetched = None
            if attempt == MAX_CONFLICT_RETRIES:
                raise
            log.info("version conflict while writing back; re-reading (attempt %d)", attempt + 2)
    raise AssertionError("unreachable")


def _write_back_once(
    client: FhirClient,
    patient_id: str,
    policy: Policy,
    scan_id: str | None,
    today: date | None,
    recorded: datetime | None,
    prefetched: PatientData | None,
) -> WritebackResult:
    recorded = recorded or datetime.now(UTC).replace(microsecond=0)
    today = today or recorded.date()
    data = prefetched or fetch_patients(client, [patient_id]).get(patient_id)
    if data is None:
        raise WritebackRefused(f"Patient/{patient_id} is not on the FHIR server")
    resources, plans = data.resources, data.plans
    evaluation = _evaluate(resources, policy, today, recorded, care_plan=True)
    latest = evaluation.read.current_scan
    if latest is None:
        raise WritebackRefused("the patient has no final CAC score the service can read")
    latest_ref = f"Observation/{latest.id}"
    if scan_id is not None and scan_id != latest.id:
        scan_day = _scan_day(resources, scan_id)
        evaluation = _evaluate(resources, policy, scan_day, recorded, care_plan=False)
        current = evaluation.read.current_scan
        if current is None or current.id != scan_id:
            raise WritebackRefused(
                f"Observation/{scan_id} is not a final CAC score of this patient that the service can read"
            )
    produced = evaluation.produced
    bundle = produced.transaction()
    superseded, reactivated = _plan_changes(produced.care_plan, plans, bundle)
    response = client.transaction(bundle)
    created = []
    for request, answer in zip(bundle["entry"], response.get("entry") or [], strict=False):
        status = str((answer.get("response") or {}).get("status", ""))
        if status.startswith("201") and request["request"]["method"] == "POST":
            location = str(answer["response"].get("location", ""))
            created.append("/".join(location.split("/_history/")[0].split("/")[-2:]))
    scan = evaluation.read.current_scan
    scan_text = None
    if scan is not None:
        scan_text = f"Observation/{scan.id}" + (f"/_history/{scan.version}" if scan.version else "")
    is_latest = scan is not None and f"Observation/{scan.id}" == latest_ref
    return WritebackResult(
        f"Patient/{patient_id}", scan_text, is_latest, created, superseded, reactivated, evaluation
    )


def _plan_changes(
    new_plan: dict[str, Any] | None, plans: list[dict[str, Any]], bundle: dict[str, Any]
) -> tuple[list[str], list[str]]:
    """Add to ``bundle`` the updates that leave exactly this assessment's plan active.

    Every other active fhircac CarePlan of the patient is revoked and named in ``replaces``. If
    this plan exists but was revoked earlier (the policy was switched away and back), it is made
    active again rather than left with no active plan at all.
    """
    if new_plan is None:
        return [], []
    identifier = new_plan["identifier"][0]["value"]
    ours = [plan for plan in plans if identifier in _assessment_identifiers(plan)]
    others = [plan for plan in plans if plan not in ours and plan.get("status") == "active"]
    superseded = [f"CarePlan/{plan['id']}" for plan in others]
    bundle["entry"] += [_revoke(plan) for plan in others]
    if superseded:
        new_plan["replaces"] = [{"reference": ref} for ref in superseded]
    reactivated = []
    for plan in ours:
        # Only a plan fhircac revoked comes back; one a clinician completed or put on hold stays so.
        if plan.get("status") == "revoked":
            bundle["entry"].append(_versioned_put(plan, "active", superseded))
            reactivated.append(f"CarePlan/{plan['id']}")
    return superseded, reactivated


def _assessment_identifiers(plan: dict[str, Any]) -> set[str]:
    return {
        str(i.get("value")) for i in plan.get("identifier") or [] if i.get("system") == codes.ASSESSMENT_ID
    }


def _evaluate(
    resources: list[dict[str, Any]], policy: Policy, as_of: date, recorded: datetime, *, care_plan: bool
) -> Evaluation:
    evaluations, issues = evaluate(
        [("server", collection(resources))], policy, as_of, recorded, writing=True, care_plan=care_plan
    )
    if has_errors(issues) or len(evaluations) != 1:
        errors = [issue for issue in issues if issue.is_error] or issues
        raise WritebackRefused("; ".join(_without_origin(issue) for issue in errors[:5]), issues)
    return evaluations[0]


def _without_origin(issue: Issue) -> str:
    return f"{issue.location.split(': ', 1)[-1]}: {issue.message}"


def _scan_day(resources: list[dict[str, Any]], scan_id: str) -> date:
    for resource in resources:
        if resource.get("resourceType") == "Observation" and resource.get("id") == scan_id:
            effective = resource.get("effectiveDateTime") or (resource.get("effectivePeriod") or {}).get(
                "start"
            )
            effective = effective or resource.get("issued")
            if isinstance(effective, str) and len(effective) >= 10:
                try:
                    return date.fromisoformat(effective[:10])
                except ValueError:
                    break
            break
    raise WritebackRefused(
        f"Observation/{scan_id} is not one of this patient's Observations with a full date"
    )


def _revoke(plan: dict[str, Any]) -> dict[str, Any]:
    return _versioned_put(plan, "revoked", [])


def _versioned_put(plan: dict[str, Any], status: str, replaces: list[str]) -> dict[str, Any]:
    """A versioned update of a plan's status: a concurrent change fails the whole transaction."""
    revoked = dict(plan)
    # Keep what the plan claims (profile, tags, security labels); the server sets the rest anew.
    meta = {k: v for k, v in (plan.get("meta") or {}).items() if k in ("profile", "tag", "security")}
    if meta:
        revoked["meta"] = meta
    else:
        revoked.pop("meta", None)
    revoked["status"] = status
    if replaces:
        known = [r for r in plan.get("replaces") or [] if r.get("reference") not in replaces]
        revoked["replaces"] = known + [{"reference": ref} for ref in replaces]
    version = (plan.get("meta") or {}).get("versionId")
    request: dict[str, Any] = {"method": "PUT", "url": f"CarePlan/{plan['id']}"}
    if version:
        request["ifMatch"] = f'W/"{version}"'
    return {"fullUrl": f"CarePlan/{plan['id']}", "resource": revoked, "request": request}


def patient_of(observation: dict[str, Any]) -> str | None:
    """The Patient id a resource is about (``subject``, or ``patient`` for FamilyMemberHistory),
    when it is a plain ``Patient/<id>`` reference."""
    element = observation.get("subject") or observation.get("patient") or {}
    reference = str(element.get("reference") or "") if isinstance(element, dict) else ""
    if "/_history/" in reference:
        reference = reference.split("/_history/")[0]
    parts = reference.rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2] == "Patient" and parts[-1]:
        return parts[-1]
    return None
