"""fhircac's CDS services: their discovery entries, and what each answers to a call.

A call is the same three steps as every other entry point (ARCHITECTURE.md): read the patient's
FHIR data (here: prefetch, or the EHR's FHIR server), assess it with the clinical core, and turn
the result into cards. The order hooks look at the draft orders first, so a call without a CAC
scan or aspirin order costs nothing and never needs the patient's data.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from fhircac.cdshooks import content
from fhircac.cdshooks.cards import Card
from fhircac.cdshooks.prefetch import READER_KEYS, TEMPLATES, Gathered, gather
from fhircac.clinical.assessment import Assessment
from fhircac.clinical.inputs import describe as describe_inputs
from fhircac.clinical.inputs import record_inputs
from fhircac.clinical.orders import review_aspirin_order, review_scan_order
from fhircac.clinical.policies import Policy
from fhircac.clinical.record import DrugClass, PatientRecord
from fhircac.evaluate import assess_group
from fhircac.fhir import codes
from fhircac.fhir.client import FhirClient
from fhircac.fhir.inputs import collection, group_by_patient
from fhircac.fhir.issues import Issue, has_errors
from fhircac.fhir.read import ReadResult, classify_medication
from fhircac.fhir.write import assessment_and_plan, care_plan_identifier


@dataclass(frozen=True)
class Service:
    id: str
    hook: str
    title: str
    description: str
    prefetch: tuple[str, ...]
    usage: str

    def discovery(self) -> dict[str, Any]:
        return {
            "hook": self.hook,
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "prefetch": {key: TEMPLATES[key] for key in self.prefetch},
            "usageRequirements": self.usage,
        }


_USAGE = (
    "Reads the patient's CAC score Observations, labs, blood pressure, smoking status, medications, "
    "conditions, procedures and family history: prefetch them, or send fhirServer (and "
    "fhirAuthorization) so fhircac can fetch what is missing."
)
PATIENT_VIEW = Service(
    "cac-patient-view",
    "patient-view",
    "Coronary artery calcium: interpretation",
    "Interprets the patient's latest coronary artery calcium (CAC) score: band, CAC-DRS, percentile, "
    "10-year risk, change since the last scan (in the light of statin therapy), what to consider and "
    "when a repeat scan makes sense.",
    (*READER_KEYS, "cacCarePlans"),
    _USAGE,
)
ORDER_SELECT = Service(
    "cac-order-select",
    "order-select",
    "Coronary artery calcium: order check",
    "Checks a selected CAC scan order against the earliest sensible repeat date, a last score of 400 "
    "or more and known coronary disease, and a selected aspirin order against the active policy.",
    READER_KEYS,
    _USAGE,
)
ORDER_SIGN = Service(
    "cac-order-sign",
    "order-sign",
    "Coronary artery calcium: order check before signing",
    "Before signing: checks draft CAC scan orders against the earliest sensible repeat date, a last "
    "score of 400 or more and known coronary disease, and draft aspirin orders against the active "
    "policy.",
    READER_KEYS,
    _USAGE,
)
SERVICES: dict[str, Service] = {s.id: s for s in (PATIENT_VIEW, ORDER_SELECT, ORDER_SIGN)}


@dataclass(frozen=True)
class Situation:
    """What a call needs besides its body: the policy, today, and where fhircac is reachable."""

    policy: Policy
    today: date
    now: datetime
    base_url: str
    # (patient id, the call's data) → the report page, when the caller may see that patient's
    report_url: Callable[[str, Gathered], str | None]
    # fhircac writes back to the hook's fhirServer itself: the card suggests no CarePlan to create
    # (the EHR creating it too would duplicate fhircac's own)
    writes_back: bool = False


@dataclass
class Answer:
    cards: list[Card]
    gathered: Gathered | None = None


@dataclass(frozen=True)
class PatientView:
    """The patient as read for one call; ``assessment`` is None when there is no usable score."""

    read: ReadResult | None
    assessment: Assessment | None
    issues: list[Issue]
    has_cac_data: bool

    @property
    def record(self) -> PatientRecord | None:
        return self.read.record if self.read else None

    @property
    def known_coronary_disease(self) -> bool:
        return bool(self.record and self.record.known_coronary_disease)

    @property
    def coronary_history_unknown(self) -> bool:
        return self.record is None or self.record.coronary_history_unknown


def call(
    service: Service,
    body: Mapping[str, Any],
    situation: Situation,
    client: Callable[[], FhirClient | None],
    deadline: float | None = None,
) -> Answer:
    """``deadline`` (time.monotonic): fetching from fhirServer stops there with a 412."""
    context = body["context"]
    if service is PATIENT_VIEW:
        gathered = gather(service.prefetch, body.get("prefetch") or {}, context, client, deadline)
        view = read_patient(gathered, context["patientId"], situation)
        return Answer(_patient_view_cards(view, gathered, context["patientId"], situation), gathered)
    orders = draft_orders(context, selected_only=service is ORDER_SELECT)
    scans = [order for order in orders if is_scan_order(order)]
    aspirin = [order for order in orders if is_aspirin_order(order, context)]
    if not scans and not aspirin:
        return Answer([])
    gathered = gather(service.prefetch, body.get("prefetch") or {}, context, client, deadline)
    view = read_patient(gathered, context["patientId"], situation)
    if has_errors(view.issues) and view.has_cac_data:
        return Answer([content.not_interpretable_card(view.issues, situation)], gathered)
    known = view.known_coronary_disease
    # Coronary history not readable (no problem list, or the EHR could not send conditions or
    # procedures): a scan warning still stands, but nothing that depends on "no known disease".
    unknown = not known and (
        view.coronary_history_unknown or bool({"conditions", "procedures"} & set(gathered.unavailable))
    )
    missing = dict(gathered.unavailable)
    if unknown:
        missing.setdefault("coronary history", "no conditions or procedures could be read")
    cards: list[Card] = []
    for order in scans:
        ordered_for = _order_date(order) or situation.today
        reasons = review_scan_order(view.assessment, known, ordered_for)
        cards += [
            content.scan_order_card(reason, order, view.assessment, situation, missing) for reason in reasons
        ]
    if aspirin and view.assessment is not None and not known and not unknown:
        review = review_aspirin_order(view.assessment, situation.policy)
        cards += [content.aspirin_card(review, situation, missing) for _ in aspirin]
    return Answer(cards, gathered)


def _patient_view_cards(
    view: PatientView, gathered: Gathered, patient_id: str, situation: Situation
) -> list[Card]:
    if not view.has_cac_data:
        return []  # nothing to interpret: a CAC service stays quiet on charts without a CAC score
    if view.assessment is None or view.read is None:
        return [content.not_interpretable_card(view.issues, situation)]
    assessment, read = view.assessment, view.read
    care_plan = None
    deceased = bool(read.record and read.record.deceased)  # no plan is proposed for a deceased patient
    if "cacCarePlans" not in gathered.unavailable and not situation.writes_back and not deceased:
        wanted = care_plan_identifier(assessment, read)
        existing = [
            identifier
            for plan in gathered.of("cacCarePlans")
            for identifier in plan.get("identifier") or []
            if identifier == wanted
        ]
        if not existing:
            care_plan = assessment_and_plan(assessment, read)
    cards = [
        content.summary_card(
            assessment,
            gathered,
            care_plan,
            situation.report_url(patient_id, gathered),
            situation,
            describe_inputs(record_inputs(read.record)) if read.record is not None else (),
        )
    ]
    lpa = next((r for r in assessment.recommendations if r.id == "lpa-measure-once"), None)
    if lpa is not None:
        cards.append(content.lpa_card(lpa, patient_id, situation))
    return cards


def read_patient(gathered: Gathered, patient_id: str, situation: Situation) -> PatientView:
    documents = [
        (
            f"prefetch.{key}",
            collection(resources),
        )
        for key, resources in gathered.resources.items()
        if key in READER_KEYS and resources
    ]
    has_cac_data = bool(gathered.resources.get("cacScores"))
    groups, issues = group_by_patient(documents)
    group = next((g for g in groups if g.patient.id == patient_id), None)
    if group is None:
        if not has_errors(issues):
            issues.append(
                Issue("error", "not-found", "prefetch.patient", f"no Patient {patient_id!r} in the data")
            )
        return PatientView(None, None, issues, has_cac_data)
    read, assessment, found = assess_group(group, situation.policy, situation.today)
    issues += found
    return PatientView(read, None if has_errors(issues) else assessment, issues, has_cac_data)


# --- draft orders ---------------------------------------------------------------------------------
_SCAN_ORDER_TYPES = ("ServiceRequest", "ProcedureRequest")  # R4; STU3
_MEDICATION_ORDER_TYPES = ("MedicationRequest", "MedicationOrder")  # R4/STU3; DSTU2 (the sandbox's default)
_SCAN_TEXT = re.compile(r"calcium scor|agatston|\bcac\b", re.IGNORECASE)


def draft_orders(context: Mapping[str, Any], *, selected_only: bool) -> list[dict[str, Any]]:
    """The draft orders the hook is about: for order-select only the ``selections``."""
    resources = [entry["resource"] for entry in _entries(context) if isinstance(entry.get("resource"), dict)]
    if not selected_only:
        return resources
    selections = {s for s in _list(context.get("selections")) if isinstance(s, str)}
    return [r for r in resources if f"{r.get('resourceType')}/{r.get('id')}" in selections]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _objects(value: Any) -> list[dict[str, Any]]:
    """The objects of a JSON array. Draft orders come from the EHR unvalidated (in any FHIR version),
    so every element is checked for its shape before it is used."""
    return [item for item in _list(value) if isinstance(item, dict)]


def _entries(context: Mapping[str, Any]) -> list[dict[str, Any]]:
    bundle = context.get("draftOrders")
    return _objects(bundle.get("entry")) if isinstance(bundle, dict) else []


def _concepts(*values: Any) -> list[dict[str, Any]]:
    """CodeableConcepts reduced to what is read (text, codings), safe to hand to the reader."""
    concepts = []
    for value in values:
        if isinstance(value, dict):
            text = value.get("text")
            concepts.append(
                {"text": text if isinstance(text, str) else "", "coding": _objects(value.get("coding"))}
            )
    return concepts


def is_scan_order(order: Mapping[str, Any]) -> bool:
    if order.get("resourceType") not in _SCAN_ORDER_TYPES:
        return False
    for concept in _concepts(order.get("code")):
        codings = concept["coding"]
        if any((str(c.get("system")), str(c.get("code"))) in codes.SCAN_ORDER_CODES for c in codings):
            return True
        texts = [concept["text"], *(c.get("display") for c in codings)]
        if any(isinstance(text, str) and _SCAN_TEXT.search(text) for text in texts):
            return True
    return False


def is_aspirin_order(order: Mapping[str, Any], context: Mapping[str, Any]) -> bool:
    if order.get("resourceType") not in _MEDICATION_ORDER_TYPES:
        return False
    concepts = _concepts(order.get("medicationCodeableConcept"))
    reference = order.get("medicationReference")
    target = reference.get("reference") if isinstance(reference, dict) else None
    medication = _find_medication(target, order, context) if isinstance(target, str) else None
    if medication is not None:
        ingredients = [i.get("itemCodeableConcept") for i in _objects(medication.get("ingredient"))]
        concepts += _concepts(medication.get("code"), *ingredients)
    classes, _ = classify_medication(concepts)
    return DrugClass.ASPIRIN in classes


def _find_medication(
    reference: str, order: Mapping[str, Any], context: Mapping[str, Any]
) -> dict[str, Any] | None:
    """A Medication contained in the order, or included in the draftOrders Bundle (as Epic sends it)."""
    if reference.startswith("#"):
        pool = _objects(order.get("contained"))
        wanted: tuple[str, ...] = ("Medication", reference[1:])
    else:
        pool = [e["resource"] for e in _entries(context) if isinstance(e.get("resource"), dict)]
        wanted = tuple(reference.rsplit("/", 2)[-2:]) if "/" in reference else ("Medication", reference)
    return next((r for r in pool if (r.get("resourceType"), r.get("id")) == wanted), None)


def _order_date(order: Mapping[str, Any]) -> date | None:
    """When the scan would happen: the order's occurrence, else when it was written (else: today)."""
    period = order.get("occurrencePeriod")
    candidates = [
        order.get("occurrenceDateTime"),
        period.get("start") if isinstance(period, dict) else None,
        order.get("authoredOn"),
    ]
    for value in candidates:
        if isinstance(value, str) and len(value) >= 10:
            try:
                return date.fromisoformat(value[:10])
            except ValueError:
                continue
    return None
