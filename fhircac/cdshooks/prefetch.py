"""Prefetch: the FHIR queries fhircac's services publish, and getting their data for one call.

CDS Hooks 2.0 §Prefetch: a key may be present with a resource or searchset Bundle (data), present
with ``null`` (no data), present with an OperationOutcome (the EHR could not get it: fhircac treats
the data as missing and says so), or absent (not prefetched). Absent keys are fetched from
``fhirServer`` with the ``fhirAuthorization`` token; when there is no ``fhirServer``, a missing
context key is treated as unavailable data (the card says so) and only a missing ``patient`` or
``cacScores`` gets 412, as does a fetch that fails.
A paginated Bundle's further pages come from ``fhirServer`` the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote

from fhircac.fhir import bounded, codes
from fhircac.fhir.client import FhirClient, FhirError, NotFound, outcome_message

_PATIENT = "{{context.patientId}}"


def _codes(pairs: list[tuple[str, str]]) -> str:
    return ",".join(f"{system}|{code}" for system, code in pairs)


_CONTEXT_OBSERVATIONS = [
    *((codes.LOINC, code) for code in codes.LAB_CODES),
    *((codes.LOINC, code) for code in sorted(codes.BLOOD_PRESSURE_PANELS)),
    (codes.LOINC, codes.SMOKING_STATUS),
    (codes.FHIRCAC, codes.FAMILY_HISTORY_PREMATURE_CHD),
]

# key → template. Read templates are "Type/{{token}}"; searches "Type?params". 2.0-valid tokens only.
TEMPLATES: dict[str, str] = {
    "patient": f"Patient/{_PATIENT}",
    "cacScores": f"Observation?patient={_PATIENT}&code={_codes(sorted(codes.CAC_CODES))}&_count=100",
    "observations": f"Observation?patient={_PATIENT}&code={_codes(_CONTEXT_OBSERVATIONS)}&_count=500",
    "medicationStatements": (
        f"MedicationStatement?patient={_PATIENT}&_include=MedicationStatement:medication&_count=200"
    ),
    "medicationRequests": (
        f"MedicationRequest?patient={_PATIENT}&_include=MedicationRequest:medication&_count=200"
    ),
    "conditions": f"Condition?patient={_PATIENT}&_count=200",
    "procedures": f"Procedure?patient={_PATIENT}&_count=200",
    "familyHistory": f"FamilyMemberHistory?patient={_PATIENT}&_count=100",
    "cacCarePlans": f"CarePlan?patient={_PATIENT}&identifier={codes.ASSESSMENT_ID}|&status=active&_count=50",
}
MAX_PAGES = 20  # of one search, fetched or followed; a patient's CAC-relevant data fits in far fewer
READER_KEYS = (
    "patient",
    "cacScores",
    "observations",
    "medicationStatements",
    "medicationRequests",
    "conditions",
    "procedures",
    "familyHistory",
)


class PrefetchUnavailable(Exception):
    """Data the service needs is neither prefetched nor obtainable from ``fhirServer``: 412."""

    def __init__(self, key: str, why: str) -> None:
        super().__init__(f"prefetch {key!r}: {why}")
        self.key = key
        self.why = why


class BadPrefetch(ValueError):
    """A prefetch value that is not a resource, Bundle, OperationOutcome or null: the client's error (400)."""

    def __init__(self, key: str, why: str) -> None:
        super().__init__(f"prefetch.{key}: {why}")
        self.key = key
        self.why = why


# without these there is nothing to interpret; every other key is context a card can do without
ESSENTIAL = frozenset({"patient", "cacScores"})


@dataclass
class Gathered:
    """The data of one call, by prefetch key, and what could not be had."""

    resources: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # key → resources
    unavailable: dict[str, str] = field(default_factory=dict)  # key → why (treated as missing data)
    fetched: list[str] = field(default_factory=list)  # keys fhircac fetched itself

    def of(self, *keys: str) -> list[dict[str, Any]]:
        return [resource for key in keys for resource in self.resources.get(key, [])]


def render(template: str, context: Mapping[str, Any]) -> str:
    """Replace ``{{context.x}}`` tokens; values were checked by the request schema (FHIR ids)."""
    rendered = template
    for name, value in context.items():
        if isinstance(value, str):
            rendered = rendered.replace(f"{{{{context.{name}}}}}", quote(value, safe=""))
    if "{{" in rendered:
        raise ValueError(f"unresolved token in prefetch template {template!r}")
    return rendered


def gather(
    keys: tuple[str, ...],
    prefetch: Mapping[str, Any],
    context: Mapping[str, Any],
    client: Callable[[], FhirClient | None],
    deadline: float | None = None,
) -> Gathered:
    """Every key's data: from the prefetch, else from the FHIR server ``client()`` reaches (or None).

    Fetching stops at ``deadline`` (time.monotonic) and after MAX_PAGES pages of one search: an
    EHR waiting for cards is better served by a 412 than by a hook that hangs.
    """
    gathered = Gathered()
    budget = _Budget(deadline)
    for key in keys:
        if key in prefetch:
            _take(gathered, key, prefetch[key], client, budget)
        else:
            fhir = client()
            if fhir is None:
                why = "not prefetched, and the request has no fhirServer to fetch it from"
                if key in ESSENTIAL:
                    raise PrefetchUnavailable(key, why)
                gathered.unavailable[key] = why  # context: the card goes on and names what it lacks
                gathered.resources[key] = []
                continue
            gathered.resources[key] = _fetch(fhir, key, render(TEMPLATES[key], context), budget)
            gathered.fetched.append(key)
    return gathered


class _Budget:
    def __init__(self, deadline: float | None) -> None:
        self.deadline = deadline

    def pages(self, key: str, pages: Iterator[dict[str, Any]]) -> list[dict[str, Any]]:
        taken = []
        for page in pages:
            taken.append(page)
            if len(taken) > MAX_PAGES:
                raise PrefetchUnavailable(key, f"the search has more than {MAX_PAGES} pages")
            if self.deadline is not None and time.monotonic() > self.deadline:
                raise PrefetchUnavailable(key, "fetching it from fhirServer took too long")
        return taken


def _take(
    gathered: Gathered, key: str, value: Any, client: Callable[[], FhirClient | None], budget: _Budget
) -> None:
    if value is None:  # the EHR ran the query and found nothing
        gathered.resources[key] = []
        return
    if not isinstance(value, dict) or not isinstance(value.get("resourceType"), str):
        raise BadPrefetch(key, "must be a FHIR resource, a Bundle, an OperationOutcome or null")
    resource_type = value["resourceType"]
    if resource_type == "OperationOutcome":
        gathered.unavailable[key] = _outcome_text(value)
        gathered.resources[key] = []
        return
    if resource_type != "Bundle":
        gathered.resources[key] = [value]
        return
    _check_bundle(key, value)
    pages = [value]
    if any(link.get("relation") == "next" for link in _links(value)):
        fhir = client()
        if fhir is None:
            raise PrefetchUnavailable(
                key, "the prefetched Bundle has further pages and there is no fhirServer"
            )
        try:
            pages += budget.pages(key, fhir.pages_after(value))
        except FhirError as error:
            raise PrefetchUnavailable(key, f"reading its further pages failed: {_why(error)}") from None
    gathered.resources[key] = _entries(pages)


def _fetch(fhir: FhirClient, key: str, query: str, budget: _Budget) -> list[dict[str, Any]]:
    try:
        if "?" not in query:
            resource_type, resource_id = query.split("/", 1)
            try:
                return [fhir.read(resource_type, resource_id)]
            except NotFound:
                return []
        resource_type, params = query.split("?", 1)
        return _entries(
            budget.pages(key, fhir.search(resource_type, parse_qsl(params, keep_blank_values=True)))
        )
    except FhirError as error:
        raise PrefetchUnavailable(key, f"fetching it from fhirServer failed: {_why(error)}") from None


def _why(error: FhirError) -> str:
    """What went wrong, in fhircac's words only: the server's own answer (an error page, its
    OperationOutcome) is never passed on to the caller, who may not be meant to read it."""
    refusal = bounded.refusal_of(error)
    if refusal is not None:
        return refusal.why
    if error.status is None:
        return str(error)  # fhircac's own message: unreachable, timed out, a paging loop, a next link
    if 200 <= error.status < 300:
        return f"fhirServer answered HTTP {error.status} without the FHIR resource expected"
    return f"fhirServer answered HTTP {error.status}"


def _check_bundle(key: str, bundle: Mapping[str, Any]) -> None:
    for element in ("entry", "link"):
        items = bundle.get(element, [])
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise BadPrefetch(key, f"Bundle.{element} must be an array of objects")
    for index, entry in enumerate(bundle.get("entry", [])):
        if "resource" in entry and not isinstance(entry["resource"], dict):
            raise BadPrefetch(key, f"Bundle.entry[{index}].resource must be an object")


def _outcome_text(outcome: Mapping[str, Any]) -> str:
    try:
        return outcome_message(outcome)
    except (TypeError, AttributeError):
        return "the EHR answered with an OperationOutcome"


def _links(bundle: Mapping[str, Any]) -> list[dict[str, Any]]:
    return list(bundle.get("link") or [])


def _entries(pages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The resources of searchset pages. OperationOutcome entries (search.mode "outcome") are the
    server's notes on the search, not patient data, and are left out."""
    return [
        entry["resource"]
        for page in pages
        for entry in page.get("entry") or []
        if isinstance(entry, dict)
        and isinstance(entry.get("resource"), dict)
        and entry["resource"].get("resourceType") != "OperationOutcome"
    ]
