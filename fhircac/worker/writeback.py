"""Write-back: read a patient from a FHIR server, assess, and write the result in one transaction.

Two HTTP requests per patient in the usual case: one batch of searches that brings everything the
reader needs, and one transaction of conditional creates. The transaction also revokes the
patient's previous CAC CarePlan (versioned, ``If-Match``) when a newer scan replaces it, so the
new plan and the revocation land together or not at all. Running it twice writes nothing new.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
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
_ASSESSMENTS = "RiskAssessment?patient={p}&identifier={system}|&_count={n}"  # see _withdrawals
# A scan stamped up to this far after the worker's clock counts as taken: clocks drift.
CLOCK_SKEW = timedelta(minutes=10)


class WritebackRefused(Exception):
    """The patient's data cannot be assessed (bad or insufficient data): retrying will not help."""

    def __init__(self, reason: str, issues: list[Issue] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.issues = issues or []


class WritebackDeferred(Exception):
    """The scan is dated after now, even in its own time zone: it can be assessed from ``due``."""

    def __init__(self, reason: str, due: datetime) -> None:
        super().__init__(reason)
        self.reason = reason
        self.due = due


@dataclass
class WritebackResult:
    patient: str
    scan: str | None  # the CAC Observation assessed, "Observation/<id>/_history/<v>"
    latest: bool  # the patient's latest scan (it carries the CarePlan)
    created: list[str] = field(default_factory=list)  # "RiskAssessment/<id>", … newly created
    superseded: list[str] = field(default_factory=list)  # CarePlans revoked by this write
    reactivated: list[str] = field(default_factory=list)  # this scan's plan, current again
    withdrawn: list[str] = field(default_factory=list)  # RiskAssessments now entered-in-error
    repaired: list[str] = field(default_factory=list)  # plans a concurrent writer left active, revoked
    evaluation: Evaluation | None = None

    @property
    def outcome(self) -> str:
        changed = self.created or self.superseded or self.reactivated or self.withdrawn or self.repaired
        return "written" if changed else "unchanged"


@dataclass(frozen=True)
class PatientData:
    """What the server holds for one patient: the reader's resources, its fhircac CarePlans and
    its fhircac RiskAssessments."""

    resources: list[dict[str, Any]]
    plans: list[dict[str, Any]]
    assessments: list[dict[str, Any]] = field(default_factory=list)


def fetch_patients(client: FhirClient, patient_ids: list[str]) -> dict[str, PatientData]:
    """Everything the reader needs for several patients in one batch request of nine searches.

    A patient the server does not have is absent from the result. The poller prefetches a page's
    patients this way: eight searches for a hundred patients cost the server far less than eight
    each.
    """
    ids = list(dict.fromkeys(patient_ids))
    references = quote(",".join(f"Patient/{pid}" for pid in ids), safe=",")
    urls = [f"Patient?_id={quote(','.join(ids), safe=',')}&_count={SEARCH_COUNT}"]
    urls += [search.format(p=references, n=SEARCH_COUNT) for search in _PATIENT_SEARCHES]
    system = quote(codes.ASSESSMENT_ID, safe="")
    urls.append(_PLANS.format(p=references, system=system, n=SEARCH_COUNT))
    urls.append(_ASSESSMENTS.format(p=references, system=system, n=SEARCH_COUNT))
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
            if resource.get("resourceType") == "RiskAssessment":
                owner.assessments.append(resource)
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
    now: datetime | None = None,
    zone: tzinfo | None = None,
    prefetched: PatientData | None = None,
    check_plans: bool = True,
) -> WritebackResult:
    """Assess ``patient_id`` and write the result; ``scan_id`` names the CAC Observation to assess
    (default: the latest). ``prefetched``: the patient's data read just before (``fetch_patients``).

    The assessment date is today in the clinic's zone (``zone``, else the scan's own UTC offset,
    else UTC; ``today`` fixes it). A scan withdrawn (``entered-in-error``, another status fhircac
    does not read, or deleted) has its RiskAssessments marked entered-in-error and the patient is
    assessed again from the remaining scans; a corrected version supersedes the RiskAssessment of
    the version before. Version conflicts on a superseded resource are retried with fresh data.
    ``check_plans``: look for a second active plan after the write (``repair_plans``); the poller
    turns it off and checks a whole chunk of patients in one search instead."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    for attempt in range(MAX_CONFLICT_RETRIES + 1):
        try:
            result = _write_back_once(
                client, patient_id, policy, scan_id, today, recorded, now, zone, prefetched
            )
            if check_plans and (result.reactivated or any(r.startswith("CarePlan/") for r in result.created)):
                result.repaired = repair_plans(client, patient_id, policy, now, zone, today=today)
            return result
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
    now: datetime,
    zone: tzinfo | None,
    prefetched: PatientData | None,
) -> WritebackResult:
    recorded = recorded or now.replace(microsecond=0)
    data = prefetched or fetch_patients(client, [patient_id]).get(patient_id)
    if data is None:
        raise WritebackRefused(f"Patient/{patient_id} is not on the FHIR server")
    resources, plans = data.resources, data.plans
    observations = {
        str(r.get("id")): r for r in resources if r.get("resourceType") == "Observation" and r.get("id")
    }
    target = observations.get(scan_id) if scan_id is not None else None
    if scan_id is not None and (target is None or target.get("status") not in codes.CAC_USABLE_STATUSES):
        scan_id = None  # withdrawn: assess the patient again from what remains
    if target is not None and scan_id is not None:
        _defer_if_future(target, now, zone)
    today = today or clinic_today(resources, scan_id, now, zone)
    try:
        evaluation = _evaluate(resources, policy, today, recorded, care_plan=True)
        latest = evaluation.read.current_scan
        if latest is None:
            raise WritebackRefused("the patient has no final CAC score the service can read")
    except WritebackRefused:
        # Nothing left to assess; what was derived from withdrawn scans is withdrawn all the same.
        withdrawals = _withdrawals(data, observations, None, None)
        if not withdrawals:
            raise
        revoked = _write_withdrawals_only(client, data, observations, withdrawals)
        return WritebackResult(f"Patient/{patient_id}", None, False, [], revoked, [], list(withdrawals))
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
    scan = evaluation.read.current_scan
    withdrawals = _withdrawals(data, observations, scan.id if scan else None, scan.version if scan else None)
    replaced = [ref for ref, why in withdrawals.items() if why.startswith(_SUPERSEDED)]
    if replaced:
        produced.risk_assessment.setdefault("extension", []).extend(
            {"url": codes.EXT_REPLACES_ASSESSMENT, "valueReference": {"reference": ref}} for ref in replaced
        )
    bundle = produced.transaction()
    bundle["entry"] += [_withdraw(data, ref, why) for ref, why in withdrawals.items()]
    superseded, reactivated = _plan_changes(produced.care_plan, plans, bundle)
    if produced.care_plan is None:
        superseded += _revoke_withdrawn_plans(plans, observations, bundle)
    response = client.transaction(bundle)
    created = []
    for request, answer in zip(bundle["entry"], response.get("entry") or [], strict=False):
        status = str((answer.get("response") or {}).get("status", ""))
        if status.startswith("201") and request["request"]["method"] == "POST":
            location = str(answer["response"].get("location", ""))
            created.append("/".join(location.split("/_history/")[0].split("/")[-2:]))
    scan_text = None
    if scan is not None:
        scan_text = f"Observation/{scan.id}" + (f"/_history/{scan.version}" if scan.version else "")
    is_latest = scan is not None and f"Observation/{scan.id}" == latest_ref
    return WritebackResult(
        f"Patient/{patient_id}",
        scan_text,
        is_latest,
        created,
        superseded,
        reactivated,
        list(withdrawals),
        evaluation=evaluation,
    )


# -- the clinic's date -----------------------------------------------------------------------------


def _effective(observation: dict[str, Any]) -> str | None:
    value = observation.get("effectiveDateTime") or (observation.get("effectivePeriod") or {}).get("start")
    value = value or observation.get("issued")
    return value if isinstance(value, str) else None


def _instant(text: str, zone: tzinfo) -> datetime | None:
    """A FHIR dateTime as an aware datetime: a date alone is its midnight in ``zone``."""
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), zone)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def is_cac(observation: dict[str, Any]) -> bool:
    """Coded as a CAC score (the codes the reader and the poller's search use)."""
    codings = (observation.get("code") or {}).get("coding") or []
    return any(isinstance(c, dict) and (c.get("system"), c.get("code")) in codes.CAC_CODES for c in codings)


def clinic_today(
    resources: list[dict[str, Any]], scan_id: str | None, now: datetime, zone: tzinfo | None
) -> date:
    """Today where the scan was taken: in ``zone`` when configured, else in the UTC offset the scan
    (``scan_id``, or the latest CAC scan) was written with, else in UTC. The reader dates a scan by
    the local date written in it, so both dates are compared in the same zone. A scan stamped up
    to CLOCK_SKEW after ``now`` (a worker clock that lags) moves today to its own date."""
    scans = [
        r
        for r in resources
        if r.get("resourceType") == "Observation"
        and r.get("status") in codes.CAC_USABLE_STATUSES
        and is_cac(r)
        and _effective(r)
    ]
    timed = [(moment, r) for r in scans if (moment := _instant(str(_effective(r)), zone or UTC))]
    chosen = [r for _, r in timed if r.get("id") == scan_id] or [
        r for moment, r in sorted(timed, key=lambda pair: pair[0]) if moment <= now + CLOCK_SKEW
    ][-1:]
    where = zone
    if where is None and chosen:
        moment = _instant(str(_effective(chosen[0])), UTC)
        where = moment.tzinfo if moment is not None else None
    today = now.astimezone(where or UTC).date()
    for moment, r in timed:
        local = str(_effective(r))[:10]
        if today.isoformat() < local and moment <= now + CLOCK_SKEW:
            today = date.fromisoformat(local)
    return today


def _defer_if_future(observation: dict[str, Any], now: datetime, zone: tzinfo | None) -> None:
    text = _effective(observation)
    moment = _instant(text, zone or UTC) if text else None
    if moment is not None and moment > now + CLOCK_SKEW:
        raise WritebackDeferred(
            f"Observation/{observation.get('id')} is dated {text}, after now: assessed once that time comes",
            moment - CLOCK_SKEW,
        )


# -- withdrawn and corrected scans -----------------------------------------------------------------

_SUPERSEDED = "superseded"


def _assessed_scan(resource: dict[str, Any]) -> tuple[str, str] | None:
    """(Observation id, version) a fhircac RiskAssessment or CarePlan interprets, from its identifier
    ("riskassessment:Observation/<id>/_history/<v>:<policy>:<version>")."""
    for identifier in resource.get("identifier") or []:
        if identifier.get("system") != codes.ASSESSMENT_ID:
            continue
        key = str(identifier.get("value") or "").split(":", 1)[-1].rsplit(":", 2)[0]
        parts = key.split("/")
        if len(parts) == 4 and parts[0] == "Observation" and parts[2] == "_history":
            return parts[1], parts[3]
        if len(parts) == 2 and parts[0] == "Observation":
            return parts[1], ""
    return None


def _withdrawals(
    data: PatientData,
    observations: dict[str, dict[str, Any]],
    scan_id: str | None,
    scan_version: str | None,
) -> dict[str, str]:
    """RiskAssessment reference → why it is no longer a current interpretation: its Observation
    was withdrawn (another status than final/amended/corrected, or gone from the patient), or it
    read an older version of the scan assessed now (``scan_id``/``scan_version``)."""
    found: dict[str, str] = {}
    for assessment in data.assessments:
        assessed = _assessed_scan(assessment)
        if assessment.get("status") != "final" or assessed is None or not assessment.get("id"):
            continue
        observation_id, version = assessed
        observation = observations.get(observation_id)
        ref = f"RiskAssessment/{assessment['id']}"
        if observation is None:
            found[ref] = f"Observation/{observation_id} was deleted or is no longer this patient's"
        elif observation.get("status") not in codes.CAC_USABLE_STATUSES:
            found[ref] = f"Observation/{observation_id} was withdrawn (status {observation.get('status')})"
        elif observation_id == scan_id and scan_version and version and version != scan_version:
            found[ref] = (
                f"{_SUPERSEDED} by the interpretation of Observation/{scan_id}/_history/{scan_version}"
            )
    return found


def _withdraw(data: PatientData, ref: str, why: str) -> dict[str, Any]:
    """A versioned update: the RiskAssessment becomes entered-in-error, with a note saying why."""
    assessment = next(a for a in data.assessments if f"RiskAssessment/{a['id']}" == ref)
    note = {
        "text": f"Withdrawn by fhircac: {why}. This interpretation is no longer current.",
        "extension": [{"url": codes.EXT_NOTE_AUDIENCE, "valueCode": "clinician"}],
    }
    return _versioned(assessment, {"status": "entered-in-error", "note": [*assessment.get("note", []), note]})


def _revoke_withdrawn_plans(
    plans: list[dict[str, Any]], observations: dict[str, dict[str, Any]], bundle: dict[str, Any]
) -> list[str]:
    """Active plans of scans that were withdrawn, when no remaining scan's plan takes over."""
    revoked = []
    for plan in plans:
        assessed = _assessed_scan(plan)
        if plan.get("status") != "active" or assessed is None:
            continue
        observation = observations.get(assessed[0])
        if observation is None or observation.get("status") not in codes.CAC_USABLE_STATUSES:
            bundle["entry"].append(_revoke(plan))
            revoked.append(f"CarePlan/{plan['id']}")
    return revoked


def _write_withdrawals_only(
    client: FhirClient,
    data: PatientData,
    observations: dict[str, dict[str, Any]],
    withdrawals: dict[str, str],
) -> list[str]:
    """No scan is left to assess: withdraw what was derived from the scans that are gone."""
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "transaction", "entry": []}
    bundle["entry"] += [_withdraw(data, ref, why) for ref, why in withdrawals.items()]
    revoked = _revoke_withdrawn_plans(data.plans, observations, bundle)
    client.transaction(bundle)
    return revoked


# -- one active plan per patient -------------------------------------------------------------------


def repair_plans(
    client: FhirClient,
    patient_id: str,
    policy: Policy,
    now: datetime,
    zone: tzinfo | None,
    *,
    today: date | None = None,
) -> list[str]:
    """After a write that made a plan active, read the patient again: a writer that read before
    another committed (no plan to revoke yet) leaves a second active plan. Whoever reads last sees
    both commits, so every writer checking after its own commit leaves one: the latest scan's.
    When that scan's plan is not written yet, its own writer will do the check."""
    search = {"patient": f"Patient/{patient_id}", "identifier": f"{codes.ASSESSMENT_ID}|", "status": "active"}
    if len(client.search_resources("CarePlan", search)) < 2:
        return []  # the usual case: one small search
    data = fetch_patients(client, [patient_id]).get(patient_id)
    active = [plan for plan in (data.plans if data else []) if plan.get("status") == "active"]
    if data is None or len(active) < 2:
        return []
    try:
        day = today or clinic_today(data.resources, None, now, zone)
        evaluation = _evaluate(data.resources, policy, day, now.replace(microsecond=0), care_plan=True)
    except WritebackRefused:
        return []
    plan = evaluation.produced.care_plan
    if plan is None:
        return []
    wanted = plan["identifier"][0]["value"]
    if not any(wanted in _assessment_identifiers(p) for p in active):
        return []
    stale = [p for p in active if wanted not in _assessment_identifiers(p)]
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "transaction", "entry": []}
    bundle["entry"] += [_revoke(p) for p in stale]
    client.transaction(bundle)
    log.info("revoked %d CarePlan(s) a concurrent write-back left active", len(stale))
    return [f"CarePlan/{p['id']}" for p in stale]


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
    changes: dict[str, Any] = {"status": status}
    if replaces:
        known = [r for r in plan.get("replaces") or [] if r.get("reference") not in replaces]
        changes["replaces"] = known + [{"reference": ref} for ref in replaces]
    return _versioned(plan, changes)


def _versioned(resource: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """A transaction entry updating ``resource`` with ``changes``, If-Match its version."""
    updated = dict(resource) | changes
    # Keep what the resource claims (profile, tags, security labels); the server sets the rest anew.
    meta = {k: v for k, v in (resource.get("meta") or {}).items() if k in ("profile", "tag", "security")}
    if meta:
        updated["meta"] = meta
    else:
        updated.pop("meta", None)
    url = f"{resource['resourceType']}/{resource['id']}"
    version = (resource.get("meta") or {}).get("versionId")
    request: dict[str, Any] = {"method": "PUT", "url": url}
    if version:
        request["ifMatch"] = f'W/"{version}"'
    return {"fullUrl": url, "resource": updated, "request": request}


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
