"""Property-based tests: random JSON, random bytes and random tokens at every HTTP endpoint.

Whatever a client sends, the service answers with a 4xx and a JSON OperationOutcome (or a 200
with the documented shape): never a 500, never an HTML page, never an exception that escapes the
app. The only 5xx allowed are the documented ones of /fhir-hook (503: no FHIR server configured
or reachable; 502: the FHIR server answered with an error).

The generators start from valid requests (the examples/ patients, sorted into the prefetch keys
discovery publishes) and break them a little, so the fuzzing reaches the readers and the card
builders instead of stopping at the first schema check. The deterministic tests at the end pin
the crashes the fuzzing found, each with its minimal input.
"""

from __future__ import annotations

import base64
import copy
import json
import logging
import os
import socket
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jwt.algorithms import ECAlgorithm
from werkzeug.test import TestResponse

from fhircac.clinical.policies import get_policy
from fhircac.config import Settings
from fhircac.fhir import codes
from fhircac.fhir.client import FhirClient
from fhircac.web.app import create_app
from fhircac.worker.poller import Poller
from fhircac.worker.state import State
from tests.cds_builders import aspirin_order, scan_order
from tests.cds_builders import prefetch as cds_prefetch

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SERVICE_IDS = ("cac-patient-view", "cac-order-select", "cac-order-sign")
HOOK_OF = {
    "cac-patient-view": "patient-view",
    "cac-order-select": "order-select",
    "cac-order-sign": "order-sign",
}
JSON_TYPES = frozenset({"application/json", "application/fhir+json"})
ISS = "https://ehr.test"
PUBLIC = "https://cds.test"  # public_base_url of the apps that check client JWTs: aud = PUBLIC + path
KID = "k1"
UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing listens there
HOOK_TOKEN = "t"

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
FEW = settings(FUZZ, max_examples=60)
DEEP = settings(FUZZ, max_examples=400)  # the CDS calls built from the examples: where the readers break


# --- the app and the checks every answer must pass -------------------------------------------------


def make_app(tmp_path: Path, **overrides: Any) -> tuple[Flask, FlaskClient]:
    """One app per test function (not per example): its SQLite files live in ``tmp_path``."""
    values: dict[str, Any] = {
        "cds_auth": False,
        "cds_db": str(tmp_path / "cds.sqlite"),
        "state_file": str(tmp_path / "state.sqlite"),
        "hook_token": HOOK_TOKEN,
        **overrides,
    }
    app = create_app(Settings(**values))
    return app, app.test_client()


def with_fast_poller(app: Flask, tmp_path: Path) -> None:
    """The poller /fhir-hook makes on first use, made in advance without retries: an unreachable
    server then fails in milliseconds instead of after urllib3's back-off (same code paths)."""
    client = FhirClient(UNREACHABLE, retries=0, timeout=(1.0, 1.0))
    state = State(tmp_path / "hook-state.sqlite")
    app.extensions["fhircac-poller"] = Poller(client, state, get_policy(app.config["FHIRCAC"].policy))


def check(
    response: TestResponse,
    allowed: set[int] | frozenset[int],
    caplog: pytest.LogCaptureFixture,
    *,
    html: bool = False,
) -> Any:
    """The answer's status is one of ``allowed`` (never 500), its body is JSON (an OperationOutcome
    for errors), and nothing was logged at ERROR (the catch-all handler logs "unhandled error")."""
    status = response.status_code
    raw = response.get_data()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    caplog.clear()
    assert status != 500 and not errors, f"{status}; logged: {[_where(r) for r in errors]}"
    assert status in allowed, f"{status} not in {sorted(allowed)}: {raw[:500]!r}"
    if html:
        assert response.mimetype == "text/html"
        return raw.decode("utf-8")
    assert response.mimetype in JSON_TYPES, f"{status} {response.mimetype}: {raw[:200]!r}"
    data = json.loads(raw)
    if status >= 400:
        assert isinstance(data, dict) and data.get("resourceType") == "OperationOutcome", data
        assert isinstance(data.get("issue"), list) and data["issue"], data
    return data


def _where(record: logging.LogRecord) -> str:
    """The message and the last lines of the traceback of a logged error."""
    if not record.exc_info or record.exc_info[1] is None:
        return record.getMessage()
    frames = traceback.extract_tb(record.exc_info[2])[-2:]
    at = " <- ".join(f"{Path(f.filename).name}:{f.lineno} {f.line}" for f in reversed(frames))
    return f"{record.getMessage()}: {record.exc_info[1]!r:.200} at {at}"


def check_cards(data: Any) -> None:
    assert isinstance(data, dict) and isinstance(data.get("cards"), list), data
    for card in data["cards"]:
        assert isinstance(card.get("uuid"), str) and card["uuid"], card
        assert isinstance(card.get("summary"), str) and 0 < len(card["summary"]) < 140, card
        assert card.get("indicator") in ("info", "warning", "critical"), card
        assert isinstance(card.get("source"), dict), card
        assert isinstance(card["source"].get("label"), str) and card["source"]["label"], card


def send(
    client: FlaskClient,
    method: str,
    path: str,
    body: Any = None,
    *,
    raw: bytes | None = None,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> TestResponse:
    """JSON is serialised here with ensure_ascii (the test client's json= would choke on a lone
    surrogate, which JSON itself allows as a \\ud800 escape)."""
    data = raw if raw is not None else json.dumps(body).encode()
    return client.open(path, method=method, data=data, content_type=content_type, headers=headers or {})


# --- strategies -------------------------------------------------------------------------------------

# Text as JSON can carry it: including lone surrogates ("\ud800" is a valid JSON escape).
texts = st.text(max_size=20) | st.text(
    alphabet=st.characters(categories=["L", "N", "P", "Cs", "Cc"]), min_size=1, max_size=6
)
json_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False)
    | texts
)
json_values = st.recursive(
    json_leaves,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=16,
)


def fresh(values: Sequence[Any]) -> st.SearchStrategy[Any]:
    """One of ``values``, as a new object on every draw. ``sampled_from`` hands out the very same
    list or dict each time; ``mutate`` edits inside what it placed, so a shared one would come to
    contain itself (RecursionError, "Circular reference detected")."""
    return st.sampled_from(values).map(copy.deepcopy)


# Values of the wrong type that are not falsy (hypothesis favours 0, False and "", which `x or []` hides).
wrong_types = fresh([1, 7, -1, 2.5, True, "x", "Patient/p1", {"a": 1}, [1], ["x"], [[]], [{}]])

SYSTEMS = [codes.LOINC, codes.SNOMED, codes.RXNORM, codes.CPT, codes.FHIRCAC, codes.UCUM, "urn:x", ""]
KNOWN_CODES = sorted(
    {code for _, code in codes.CAC_CODES}
    | {code for _, code in codes.SCAN_ORDER_CODES}
    | set(codes.LAB_CODES)
    | set(codes.BLOOD_PRESSURE_PANELS)
    | {codes.SMOKING_STATUS, codes.FAMILY_HISTORY_PREMATURE_CHD, "1191", "83367", "8480-6", "73211009"}
)
DATES = st.sampled_from(
    [
        "2024-01-01",
        "2024-01-01T10:00:00Z",
        "2024-01-01T10:00:00+02:00",
        "1960",
        "1960-05",
        "2024-13-45",
        "0000-00-00",
        "9999-12-31",
        "not a date",
        "",
    ]
) | st.dates().map(lambda d: d.isoformat())
REFERENCES = st.sampled_from(
    ["Patient/p1", "Patient/p2", "p1", "Patient/", "Patient/p1/_history/2", "#med", "Medication/m1", ""]
)


def _maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the plausible value, sometimes any JSON: wrong types are what breaks readers."""
    return st.one_of(strategy, strategy, wrong_types, json_values)


codings = st.fixed_dictionaries(
    {},
    optional={
        "system": _maybe(st.sampled_from(SYSTEMS)),
        "code": _maybe(st.sampled_from(KNOWN_CODES)),
        "display": _maybe(st.sampled_from(["aspirin", "Agatston score", "CT calcium scoring"]) | texts),
    },
)
concepts = st.fixed_dictionaries(
    {},
    optional={
        "coding": _maybe(st.lists(_maybe(codings), max_size=3)),
        "text": _maybe(st.sampled_from(["aspirin 81 mg", "CAC score", "calcium scoring"]) | texts),
    },
)
references = st.fixed_dictionaries({}, optional={"reference": _maybe(REFERENCES), "display": texts})
quantities = st.fixed_dictionaries(
    {},
    optional={
        "value": _maybe(st.integers(-5, 5000) | st.floats(allow_nan=False, allow_infinity=False)),
        "unit": _maybe(st.sampled_from(["mg/dL", "mmol/L", "mm[Hg]", "%", "{Agatston}", "1", "kg"])),
        "system": _maybe(st.just(codes.UCUM)),
        "code": _maybe(st.sampled_from(["mg/dL", "mmol/L", "mm[Hg]", "%", "{Agatston}", "1"])),
    },
)
FIELD_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "id": _maybe(st.sampled_from(["p1", "p2", "o1", "m1", "med"])),
    "status": _maybe(
        st.sampled_from(["final", "amended", "preliminary", "active", "draft", "entered-in-error"])
    ),
    "gender": _maybe(st.sampled_from(["male", "female", "other", "unknown"])),
    "birthDate": _maybe(DATES),
    "subject": _maybe(references),
    "patient": _maybe(references),
    "code": _maybe(concepts),
    "category": _maybe(st.lists(concepts, max_size=2)),
    "valueQuantity": _maybe(quantities),
    "valueCodeableConcept": _maybe(concepts),
    "valueString": _maybe(texts),
    "effectiveDateTime": _maybe(DATES),
    "effectivePeriod": _maybe(st.fixed_dictionaries({}, optional={"start": DATES, "end": DATES})),
    "issued": _maybe(DATES),
    "component": _maybe(
        st.lists(
            st.fixed_dictionaries({}, optional={"code": concepts, "valueQuantity": quantities}), max_size=3
        )
    ),
    "medicationCodeableConcept": _maybe(concepts),
    "medicationReference": _maybe(references),
    "clinicalStatus": _maybe(concepts),
    "verificationStatus": _maybe(concepts),
    "onsetDateTime": _maybe(DATES),
    "performedDateTime": _maybe(DATES),
    "relationship": _maybe(concepts),
    "condition": _maybe(st.lists(st.fixed_dictionaries({}, optional={"code": concepts}), max_size=2)),
    "identifier": _maybe(
        st.lists(
            st.fixed_dictionaries({}, optional={"system": st.just(codes.ASSESSMENT_ID), "value": texts}),
            max_size=2,
        )
    ),
    "meta": _maybe(st.fixed_dictionaries({}, optional={"versionId": texts, "lastUpdated": DATES})),
    "extension": json_values,
    "ingredient": _maybe(
        st.lists(st.fixed_dictionaries({}, optional={"itemCodeableConcept": concepts}), max_size=2)
    ),
    "contained": json_values,
    "issue": json_values,
    "dataAbsentReason": _maybe(concepts),
    "deceasedBoolean": json_values,
}
RESOURCE_TYPES = [
    "Patient",
    "Observation",
    "Bundle",
    "OperationOutcome",
    "Condition",
    "MedicationStatement",
    "MedicationRequest",
    "Medication",
    "Procedure",
    "FamilyMemberHistory",
    "CarePlan",
    "xyz",
]


@st.composite
def resources(draw: st.DrawFn, types: list[str] = RESOURCE_TYPES) -> dict[str, Any]:
    resource: dict[str, Any] = {"resourceType": draw(st.sampled_from(types))}
    for name in draw(st.lists(st.sampled_from(sorted(FIELD_VALUES)), max_size=6, unique=True)):
        resource[name] = draw(FIELD_VALUES[name])
    if draw(st.booleans()):
        resource.update(draw(st.dictionaries(texts, json_values, max_size=2)))
    return resource


searchset_bundles = st.fixed_dictionaries(
    {"resourceType": st.just("Bundle")},
    optional={
        "type": _maybe(st.sampled_from(["searchset", "collection"])),
        "total": json_values,
        "entry": _maybe(
            st.lists(
                _maybe(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "resource": _maybe(resources()),
                            "search": _maybe(
                                st.fixed_dictionaries(
                                    {"mode": st.sampled_from(["match", "include", "outcome"])}
                                )
                            ),
                        },
                    )
                ),
                max_size=4,
            )
        ),
        "link": _maybe(
            st.lists(
                st.fixed_dictionaries(
                    {}, optional={"relation": st.sampled_from(["self", "next"]) | texts, "url": texts}
                ),
                max_size=2,
            )
        ),
    },
)
outcomes = st.fixed_dictionaries(
    {"resourceType": st.just("OperationOutcome")},
    optional={
        "issue": _maybe(
            st.lists(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "severity": _maybe(st.sampled_from(["error", "warning", "information"])),
                        "code": _maybe(st.sampled_from(["not-found", "forbidden", "processing"])),
                        "diagnostics": _maybe(texts),
                        "details": _maybe(concepts),
                    },
                ),
                max_size=3,
            )
        )
    },
)
# Any JSON only now and then: one non-object value makes the whole call a 400 before any reading.
prefetch_values = st.one_of(st.none(), resources(), searchset_bundles, searchset_bundles, outcomes)

# Breaking a valid document: a node replaced, dropped or wrapped.
mutant_values = st.one_of(
    json_values,
    fresh([None, "", [], {}, 0, -1, 10**20, 1e308, -1e308, True, "\ud800", "Patient/p1"]),
    *FIELD_VALUES.values(),
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    items: list[tuple[Any, Any]]
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list):
        items = list(enumerate(value))
    else:
        return []
    found = []
    for key, child in items:
        found.append((*prefix, key))
        found += _paths(child, (*prefix, key))
    return found


def mutate(draw: Callable[..., Any], document: Any, max_mutations: int = 3) -> Any:
    """``document`` with 1 to ``max_mutations`` nodes replaced, dropped or wrapped (``draw``: a
    composite strategy's draw or ``data.draw``)."""
    document = copy.deepcopy(document)
    for _ in range(draw(st.integers(1, max_mutations), label="mutations")):
        paths = _paths(document)
        if not paths:
            break
        # A Random that hypothesis drives (and replays): cheap for the hundreds of nodes of a chart.
        path = draw(st.randoms(use_true_random=False), label="random").choice(paths)
        parent = document
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        how = draw(st.sampled_from(["replace", "replace", "delete", "wrap", "stringify"]), label="how")
        if how == "delete":
            del parent[key]
        elif how == "stringify":  # the same data as a JSON string: a classic wrong shape
            parent[key] = json.dumps(parent[key])
        elif how == "wrap":
            old = parent[key]
            parent[key] = draw(
                st.sampled_from([[old], {"value": old}, json.dumps(old), None]), label="wrapped"
            )
        else:
            parent[key] = draw(mutant_values, label="value")
    return document


@FEW
@given(data=st.data())
def test_strategies_hand_out_new_objects_and_mutants_never_contain_themselves(data: st.DataObject) -> None:
    draws = [data.draw(wrong_types) for _ in range(30)] + [data.draw(mutant_values) for _ in range(30)]
    shared = [value for value in draws if isinstance(value, list | dict)]
    assert len({id(value) for value in shared}) == len(shared)
    document = {"a": [{"b": [1, {}]}], "c": {"d": []}}
    for _ in range(5):
        document = mutate(data.draw, document, max_mutations=3)
        json.dumps(document)  # ValueError "Circular reference detected" if a node held itself


# --- valid requests, from the examples --------------------------------------------------------------


def _example_prefetches() -> list[tuple[str, dict[str, Any]]]:
    """(patient id, prefetch with every key any service publishes) for each examples/*.json."""
    keys: tuple[str, ...] = ("patient", "cacScores", "observations", "medicationStatements")
    keys += ("medicationRequests", "conditions", "procedures", "familyHistory", "cacCarePlans")
    found = []
    for path in sorted(EXAMPLES.glob("*.json")):
        bundle = json.loads(path.read_text(encoding="utf-8"))
        resources_ = [entry["resource"] for entry in bundle.get("entry", [])]
        patient = next(r for r in resources_ if r["resourceType"] == "Patient")
        found.append((patient["id"], cds_prefetch(resources_, list(keys))))
    return found


EXAMPLE_PREFETCHES = _example_prefetches()


def patient_view_body(patient_id: str, prefetch: dict[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/1", "patientId": patient_id},
    }
    if prefetch is not None:
        body["prefetch"] = prefetch
    return body


def order_body(
    hook: str, patient_id: str, orders: list[Any], selections: Any, prefetch: Any
) -> dict[str, Any]:
    context: dict[str, Any] = {
        "userId": "Practitioner/1",
        "patientId": patient_id,
        "draftOrders": {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": o} for o in orders],
        },
    }
    if hook == "order-select":
        context["selections"] = selections
    body: dict[str, Any] = {"hook": hook, "hookInstance": str(uuid.uuid4()), "context": context}
    if prefetch is not None:
        body["prefetch"] = prefetch
    return body


ORDER_TYPES = [
    "ServiceRequest",
    "ProcedureRequest",
    "MedicationRequest",
    "MedicationOrder",
    "Medication",
    "xyz",
]


def _broken_inside(strategy: st.SearchStrategy[Any], *names: str) -> st.SearchStrategy[Any]:
    """Plausible values, and objects whose ``names`` hold the wrong type (or lists of it)."""
    broken = [st.fixed_dictionaries({name: wrong_types}) for name in names]
    deep = [
        st.fixed_dictionaries({name: st.lists(wrong_types | json_values, min_size=1, max_size=2)})
        for name in names
    ]
    return st.one_of(strategy, *broken, *broken, *deep, json_values)


medications = resources(["Medication"]) | st.builds(
    lambda code, ingredient: {
        "resourceType": "Medication",
        "id": "med",
        "code": code,
        "ingredient": ingredient,
    },
    _broken_inside(concepts, "coding", "text"),
    _broken_inside(st.lists(st.fixed_dictionaries({"itemCodeableConcept": concepts})), "itemCodeableConcept"),
)
ORDER_FIELDS: dict[str, st.SearchStrategy[Any]] = {
    "code": _broken_inside(concepts, "coding", "text"),
    "medicationCodeableConcept": _broken_inside(concepts, "coding", "text"),
    "medicationReference": _broken_inside(references, "reference"),
    "contained": _maybe(st.lists(_maybe(medications), max_size=2)),
    "ingredient": FIELD_VALUES["ingredient"],
    "occurrenceDateTime": _maybe(DATES),
    "occurrencePeriod": _maybe(st.fixed_dictionaries({}, optional={"start": DATES})),
    "authoredOn": _maybe(DATES),
    "status": FIELD_VALUES["status"],
    "subject": FIELD_VALUES["subject"],
}


@st.composite
def draft_orders(draw: st.DrawFn) -> dict[str, Any]:
    base = draw(st.sampled_from([scan_order, aspirin_order, None]))
    order: dict[str, Any] = (
        base(draw(st.sampled_from(["o1", "o2", "m1", "med"])))
        if base
        else {
            "resourceType": draw(st.sampled_from(ORDER_TYPES)),
            "id": draw(st.sampled_from(["o1", "o2", "m1"])),
        }
    )
    for name in draw(st.lists(st.sampled_from(sorted(ORDER_FIELDS)), max_size=4, unique=True)):
        order[name] = draw(ORDER_FIELDS[name])
    return order


selections = _maybe(
    st.lists(
        st.sampled_from(
            ["ServiceRequest/o1", "MedicationRequest/o2", "MedicationRequest/o1", "Medication/m1"]
        ),
        min_size=1,
        max_size=3,
    )
)


@st.composite
def prefetches(draw: st.DrawFn, keys: list[str]) -> tuple[str, dict[str, Any] | None]:
    """(patient id, prefetch): an example's (which the tests break), random values per key, or none."""
    how = draw(
        st.sampled_from(["example", "example", "example", "random-all", "random-some", "junk", "none"])
    )
    if how == "example":
        patient_id, prefetch = draw(fresh(EXAMPLE_PREFETCHES))
        return patient_id, {key: prefetch[key] for key in keys}
    if how == "none":
        return "p1", None
    values = {key: prefetch_values for key in keys}
    if how == "junk":
        return "p1", draw(st.fixed_dictionaries({key: prefetch_values | json_values for key in keys}))
    if how == "random-all":
        return "p1", draw(st.fixed_dictionaries(values))
    return "p1", draw(st.fixed_dictionaries({}, optional=values))


def discovery_keys(client: FlaskClient, caplog: pytest.LogCaptureFixture) -> dict[str, list[str]]:
    data = check(client.get("/cds-services"), {200}, caplog)
    return {service["id"]: list(service["prefetch"]) for service in data["services"]}


class _Apps:
    """One app per test function: hypothesis runs the examples of one test in one tmp_path."""

    def __init__(self) -> None:
        self._made: dict[tuple[Path, str], tuple[Flask, FlaskClient]] = {}

    def get(self, tmp_path: Path, name: str = "", **overrides: Any) -> tuple[Flask, FlaskClient]:
        made = self._made.get((tmp_path, name))
        if made is None:
            made = self._made[(tmp_path, name)] = make_app(tmp_path / (name or "app"), **overrides)
        return made


APPS = _Apps()


# --- 1. arbitrary JSON at every endpoint that takes a body ------------------------------------------

BODY_ENDPOINTS: list[tuple[str, str, frozenset[int]]] = [
    *(("POST", f"/cds-services/{s}", frozenset({200, 400, 412})) for s in SERVICE_IDS),
    *(("POST", f"/cds-services/{s}/feedback", frozenset({200, 400})) for s in SERVICE_IDS),
    ("POST", "/cds-services/no-such-service", frozenset({404})),
    ("POST", "/cds-services/no-such-service/feedback", frozenset({404})),
    ("POST", "/calc", frozenset({200, 400})),
    ("PUT", "/fhir-hook/Observation/1", frozenset({503})),  # no FHIR server configured
    ("POST", "/fhir-hook", frozenset({503})),
]


@FUZZ
@given(endpoint=st.sampled_from(BODY_ENDPOINTS), body=json_values)
def test_any_json_at_any_endpoint(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, endpoint: tuple[str, str, frozenset[int]], body: Any
) -> None:
    method, path, allowed = endpoint
    _, client = APPS.get(tmp_path)
    data = check(send(client, method, path, body), allowed, caplog)
    if path.startswith("/cds-services/cac-") and not path.endswith("feedback") and "cards" in data:
        check_cards(data)


# /calc with the calculator's own keys, values plausible or not.
numbers_or_text = st.one_of(
    st.integers(-10, 10**6),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["5.2 mmol/L", "200 mg/dL", "1e999", "-0", "12 kg", " 7 ", "0x10", "1_000", "\u0663"]),
    wrong_types,
    texts,
)
FLAGS = [True, False, None, "yes", "no", "true", "false", "unknown"]
calc_inputs = st.fixed_dictionaries(
    {"cac": numbers_or_text},
    optional={
        "id": texts,
        "age": numbers_or_text,
        "sex": st.sampled_from(["female", "male"]) | wrong_types,
        "race": st.sampled_from(["white", "black", "hispanic", "chinese", "other"]) | wrong_types,
        "date": DATES,
        "as_of": DATES,
        "prior_date": DATES,
        "prior_cac": numbers_or_text,
        "percentile": numbers_or_text,
        "vessels": numbers_or_text,
        "lpa_unit": st.sampled_from(["nmol/L", "mg/dL", "x"]) | texts,
        "policy": st.sampled_from(["acc-aha-2018", "lifestyle-first", "nope"]) | wrong_types,
        **{
            flag: st.sampled_from(FLAGS) | wrong_types
            for flag in ("statin", "diabetes", "smoker", "known_cad")
        },
        **{lab: numbers_or_text for lab in ("tc", "hdl", "ldl", "tg", "sbp", "apob", "crp", "hba1c", "lpa")},
    },
)


@FUZZ
@given(body=calc_inputs)
def test_calc_with_its_own_keys(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, body: dict[str, Any]
) -> None:
    _, client = APPS.get(tmp_path)
    data = check(send(client, "POST", "/calc", body), {200, 400}, caplog)
    assert isinstance(data, dict)


# --- 2. structured but wrong CDS calls ----------------------------------------------------------------


@DEEP
@given(data=st.data())
def test_patient_view_with_broken_prefetch(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, data: st.DataObject
) -> None:
    _, client = APPS.get(tmp_path)
    keys = discovery_keys(client, caplog)["cac-patient-view"]
    patient_id, prefetch = data.draw(prefetches(keys), label="prefetch")
    if prefetch is not None and data.draw(st.sampled_from([True, True, True, False]), label="mutate"):
        prefetch = mutate(data.draw, prefetch)
    body = patient_view_body(patient_id, prefetch)
    if data.draw(st.integers(0, 9), label="break the request") == 9:
        body = mutate(data.draw, body, max_mutations=1)
    response = send(client, "POST", "/cds-services/cac-patient-view", body)
    result = check(response, {200, 400, 412}, caplog)
    if response.status_code == 200:
        check_cards(result)


@DEEP
@given(data=st.data())
def test_order_hooks_with_random_draft_orders(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, data: st.DataObject
) -> None:
    _, client = APPS.get(tmp_path)
    keys = discovery_keys(client, caplog)
    service = data.draw(st.sampled_from(["cac-order-select", "cac-order-sign"]), label="service")
    patient_id, prefetch = data.draw(prefetches(keys[service]), label="prefetch")
    orders = data.draw(
        st.lists(draft_orders() | draft_orders() | medications | json_values, max_size=4), label="orders"
    )
    body = order_body(
        HOOK_OF[service], patient_id, orders, data.draw(selections, label="selections"), prefetch
    )
    if data.draw(st.booleans(), label="mutate"):
        body = mutate(data.draw, body, max_mutations=2)
    response = send(client, "POST", f"/cds-services/{service}", body)
    result = check(response, {200, 400, 412}, caplog)
    if response.status_code == 200:
        check_cards(result)


_FHIR_SERVER_PATTERN = r"\Ahttps?://[^\s/?#]+(/[^\s?#]*)?\Z"
fhir_servers = st.sampled_from(
    [
        "http://127.0.0.1:9",
        "http://localhost:9/fhir",
        "http://[::1]:9",
        "http://[",
        "https://[::1",
        "https://:80",
        "https://127.0.0.1:99999",
        "https://127.0.0.1:0",
        "https://user:pw@127.0.0.1:9/fhir",
        "http://127.0.0.1:9/%zz",
        "http://ehr.invalid/fhir",
        "ftp://127.0.0.1:9",
    ]
) | st.from_regex(_FHIR_SERVER_PATTERN, fullmatch=True).filter(lambda s: len(s) < 200)
fhir_authorizations = st.fixed_dictionaries(
    {
        "access_token": st.text(min_size=1, max_size=20).filter(lambda t: not any(c.isspace() for c in t)),
        "token_type": st.just("Bearer"),
        "expires_in": st.integers(0, 3600),
        "scope": st.just("patient/*.read"),
        "subject": st.just("cds"),
    }
)


@pytest.fixture
def no_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only loopback names resolve: a generated fhirServer host must not reach the network."""
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        if name.strip("[]") not in ("127.0.0.1", "::1", "localhost"):
            raise socket.gaierror(socket.EAI_NONAME, "not resolved in tests")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@FEW
@given(data=st.data())
def test_patient_view_with_random_fhir_server(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, no_dns: None, data: st.DataObject
) -> None:
    """Missing prefetch and a fhirServer that cannot answer: 412 (or 400 for a bad fhirServer)."""
    _, client = APPS.get(tmp_path, cds_fetch_timeout=1)
    body = patient_view_body("p1", None)
    body["fhirServer"] = data.draw(fhir_servers, label="fhirServer")
    if data.draw(st.booleans(), label="with token"):
        body["fhirAuthorization"] = data.draw(fhir_authorizations, label="fhirAuthorization")
    check(send(client, "POST", "/cds-services/cac-patient-view", body), {400, 412}, caplog)


# --- 3. feedback ---------------------------------------------------------------------------------------

TIMESTAMPS = ["2024-05-01T10:00:00Z", "2024-05-01T10:00:00.123+02:00", "2024-05-01t10:00:00z"]
uuids = st.uuids().map(str)
override_reasons = st.one_of(
    st.fixed_dictionaries(
        {
            "reason": st.fixed_dictionaries(
                {
                    "code": st.sampled_from(["not-relevant", "x"]) | texts,
                    "system": st.just(codes.OVERRIDE_REASON),
                },
                optional={"display": texts},
            )
        },
        optional={"userComment": texts},
    ),
    st.fixed_dictionaries({"userComment": texts}),
    st.fixed_dictionaries({"code": texts, "system": texts}),  # the bare Coding older sandboxes send
    st.fixed_dictionaries(
        {}, optional={"reason": json_values, "userComment": json_values, "code": json_values}
    ),
)


@st.composite
def feedback_items(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly well-formed feedback (any card id, any text), sometimes with one thing wrong."""
    outcome = draw(st.sampled_from(["accepted", "overridden"]), label="outcome")
    item: dict[str, Any] = {
        "card": draw(uuids | texts, label="card"),
        "outcome": outcome,
        "outcomeTimestamp": draw(st.sampled_from(TIMESTAMPS) | texts, label="outcomeTimestamp"),
    }
    if outcome == "accepted" or draw(st.integers(0, 4)) == 0:
        suggestions = st.lists(st.fixed_dictionaries({"id": uuids | texts}), min_size=1, max_size=3)
        item["acceptedSuggestions"] = draw(suggestions, label="acceptedSuggestions")
    if (outcome == "overridden" and draw(st.booleans())) or draw(st.integers(0, 4)) == 0:
        item["overrideReason"] = draw(override_reasons, label="overrideReason")
    if draw(st.integers(0, 4)) == 0:
        item = mutate(draw, item, max_mutations=1)
    return item


feedback_bodies = st.one_of(
    st.fixed_dictionaries({"feedback": st.lists(feedback_items(), min_size=1, max_size=3)}),
    st.fixed_dictionaries({"feedback": st.lists(feedback_items(), max_size=3) | json_values}),
    json_values,
)


@FUZZ
@given(service=st.sampled_from(SERVICE_IDS), body=feedback_bodies)
def test_random_feedback(tmp_path: Path, caplog: pytest.LogCaptureFixture, service: str, body: Any) -> None:
    _, client = APPS.get(tmp_path)
    data = check(send(client, "POST", f"/cds-services/{service}/feedback", body), {200, 400}, caplog)
    if "stored" in data:
        assert data["stored"] + data["already_stored"] == len(body["feedback"])
    summary = check(client.get("/cds-feedback/summary"), {200}, caplog)
    assert isinstance(summary["services"], dict)


@FEW
@given(data=st.data())
def test_feedback_on_issued_cards(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, data: st.DataObject
) -> None:
    """Feedback naming real cards and suggestions (or foreign ones, or another service's): 200 or 400,
    and well-formed feedback on this service's own card with its own suggestions is stored (200)."""
    _, client = APPS.get(tmp_path)
    patient_id, prefetch = EXAMPLE_PREFETCHES[data.draw(st.integers(0, len(EXAMPLE_PREFETCHES) - 1))]
    response = send(client, "POST", "/cds-services/cac-patient-view", patient_view_body(patient_id, prefetch))
    cards = check(response, {200}, caplog)["cards"]
    assert cards, "every example has a CAC score, so patient-view answers with a card"
    card = data.draw(st.sampled_from(cards), label="card")
    own = [s["uuid"] for s in card.get("suggestions", [])]
    outcome = data.draw(st.sampled_from(["accepted", "overridden"]), label="outcome")
    item: dict[str, Any] = {
        "card": card["uuid"],
        "outcome": outcome,
        "outcomeTimestamp": data.draw(st.sampled_from(TIMESTAMPS)),
    }
    if outcome == "accepted":
        item["acceptedSuggestions"] = [{"id": s} for s in own] or [{"id": str(uuid.uuid4())}]
    service = data.draw(st.sampled_from(SERVICE_IDS), label="service")
    expected = {200} if service == "cac-patient-view" and (outcome == "overridden" or own) else {400}
    check(send(client, "POST", f"/cds-services/{service}/feedback", {"feedback": [item]}), expected, caplog)
    broken = mutate(data.draw, {"feedback": [item]}, max_mutations=2)
    check(send(client, "POST", f"/cds-services/{service}/feedback", broken), {200, 400}, caplog)


# --- 4. bytes that are not JSON, or too much of it -----------------------------------------------------


def _truncated_call() -> st.SearchStrategy[bytes]:
    patient_id, prefetch = EXAMPLE_PREFETCHES[0]
    raw = json.dumps(patient_view_body(patient_id, prefetch)).encode()
    return st.integers(0, len(raw) - 1).map(lambda n: raw[:n])


raw_bodies = st.one_of(
    st.binary(max_size=64),
    st.binary(min_size=1, max_size=16).map(lambda b: b'{"hook": "' + b + b'\xff\xfe"}'),  # not UTF-8
    _truncated_call(),
    st.sampled_from([1000, 100_000]).map(lambda n: b"[" * n),
    st.sampled_from([1000, 100_000]).map(lambda n: b"[" * n + b"]" * n),  # nested too deeply
    st.sampled_from([1000, 30_000]).map(lambda n: b'{"a":' * n),
    st.just(b'"' + b"x" * 200_000 + b'"'),  # over the limit of these apps (RAW_LIMIT)
    st.just(b'{"hook": "' + b"x" * 300_000 + b'"}'),
    st.just(b'{"feedback": ' + b"9" * 5000 + b"}"),  # an integer Python will not parse
    st.sampled_from([b"NaN", b"Infinity", b'{"a": -Infinity}', b"\xef\xbb\xbf{}", b"{}{}", b'{"a":1,"a":2}']),
    st.text(max_size=30).map(lambda t: json.dumps({"hook": t}).encode("utf-16")),
)
RAW_LIMIT = 150_000  # room for the deep nesting and the long numbers; oversized bodies stay cheap
RAW_ENDPOINTS: list[tuple[str, str, frozenset[int]]] = [
    *(("POST", f"/cds-services/{s}", frozenset({400})) for s in SERVICE_IDS),
    *(("POST", f"/cds-services/{s}/feedback", frozenset({400})) for s in SERVICE_IDS),
    ("POST", "/calc", frozenset({400, 413})),
    ("PUT", "/fhir-hook/Observation/1", frozenset({503})),
    ("POST", "/fhir-hook", frozenset({503})),
]


@FUZZ
@given(endpoint=st.sampled_from(RAW_ENDPOINTS), raw=raw_bodies)
def test_raw_bytes_at_any_endpoint(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, endpoint: tuple[str, str, frozenset[int]], raw: bytes
) -> None:
    method, path, allowed = endpoint
    _, client = APPS.get(tmp_path, max_body_bytes=RAW_LIMIT)
    check(send(client, method, path, raw=raw), allowed, caplog)


@FEW
@given(
    path=st.sampled_from(["/calc", "/cds-services/cac-patient-view", "/fhir-hook/Observation/1"]),
    content_type=st.sampled_from(["text/plain", "application/x-www-form-urlencoded", "", "application/json"])
    | st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
    body=st.binary(max_size=64),
)
def test_any_content_type(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, path: str, content_type: str, body: bytes
) -> None:
    _, client = APPS.get(tmp_path, max_body_bytes=4096)
    method = "PUT" if path.startswith("/fhir-hook") else "POST"
    check(send(client, method, path, raw=body, content_type=content_type), {400, 413, 415, 503}, caplog)


# --- the FHIR subscription hook, with a server configured that cannot be reached ----------------------

observations = st.builds(
    lambda fields, oid: {**fields, "resourceType": "Observation", "id": oid},
    st.dictionaries(st.sampled_from(sorted(FIELD_VALUES)), st.just(None), max_size=6).flatmap(
        lambda names: st.fixed_dictionaries({name: FIELD_VALUES[name] for name in names})
    ),
    _maybe(st.sampled_from(["obs-1", "obs-2"])),
)
authorizations = st.sampled_from([f"Bearer {HOOK_TOKEN}", f"Bearer {HOOK_TOKEN}", "Bearer x", "", "t"])


@FUZZ
@given(
    observation_id=st.sampled_from(["obs-1", "obs-2"]),
    body=st.one_of(observations, observations, json_values),
    authorization=authorizations,
    method=st.sampled_from(["PUT", "PUT", "PUT", "POST"]),
)
def test_fhir_hook_with_unreachable_server(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    observation_id: str,
    body: Any,
    authorization: str,
    method: str,
) -> None:
    app, client = APPS.get(tmp_path, fhir_base_url=UNREACHABLE)
    if "fhircac-poller" not in app.extensions:
        with_fast_poller(app, tmp_path)
    path = f"/fhir-hook/Observation/{observation_id}" if method == "PUT" else "/fhir-hook"
    response = send(client, method, path, body, headers={"Authorization": authorization})
    if authorization != f"Bearer {HOOK_TOKEN}":
        check(response, {401}, caplog)
    elif method == "POST":
        check(response, {202}, caplog)
    else:
        check(response, {200, 400, 502, 503}, caplog)


@FEW
@given(raw=raw_bodies)
def test_fhir_hook_raw_bytes_with_a_server(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, raw: bytes
) -> None:
    app, client = APPS.get(tmp_path, fhir_base_url=UNREACHABLE, max_body_bytes=RAW_LIMIT)
    if "fhircac-poller" not in app.extensions:
        with_fast_poller(app, tmp_path)
    headers = {"Authorization": f"Bearer {HOOK_TOKEN}"}
    check(send(client, "PUT", "/fhir-hook/Observation/1", raw=raw, headers=headers), {400, 413}, caplog)


def test_fhir_hook_real_client_unreachable_is_503(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The poller the app makes itself (client_from_env, with urllib3's retries): still a 503."""
    for name in [n for n in os.environ if n.startswith("FHIRCAC_")]:
        monkeypatch.delenv(name)
    _, client = make_app(tmp_path, fhir_base_url=UNREACHABLE)
    observation = {"resourceType": "Observation", "id": "obs-1", "subject": {"reference": "Patient/p1"}}
    headers = {"Authorization": f"Bearer {HOOK_TOKEN}"}
    response = send(client, "PUT", "/fhir-hook/Observation/obs-1", observation, headers=headers)
    outcome = check(response, {503}, caplog)
    assert outcome["issue"][0]["code"] == "transient"


# --- GET endpoints, unknown routes and methods ---------------------------------------------------------

segments = st.text(max_size=12).map(lambda t: quote(t, safe=""))


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]),
    path=st.one_of(
        st.sampled_from(["/", "/healthz", "/cds-services", "/cds-feedback/summary", "/rules", "/calc"]),
        segments.map(lambda s: f"/cds-services/{s}"),
        segments.map(lambda s: f"/cds-services/{s}/feedback"),
        segments.map(lambda s: f"/fhir-hook/Observation/{s}"),
        segments.map(lambda s: f"/{s}"),
    ),
    query=st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
    origin=st.sampled_from(["", "https://ehr.test", "null"]),
)
def test_any_route_and_method(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
    query: dict[str, str],
    origin: str,
) -> None:
    _, client = APPS.get(tmp_path)
    headers = {"Origin": origin, "Access-Control-Request-Method": "POST"} if origin else {}
    response = client.open(path, method=method, query_string=query, headers=headers)
    if method in ("OPTIONS", "HEAD"):  # CORS preflights and bodiless answers
        assert response.status_code < 500, (response.status_code, response.get_data()[:300])
        return
    if 300 <= response.status_code < 400:  # werkzeug's redirects (e.g. merging "//"): not errors
        assert response.headers.get("Location"), response.status_code
        return
    if path == "/rules" and method == "GET":
        assert "<h1>" in check(response, {200}, caplog, html=True)
        return
    check(response, {200, 400, 404, 405, 415, 503}, caplog)  # a POST here has no body at all
    if method == "GET" and path in ("/", "/healthz", "/cds-services", "/cds-feedback/summary"):
        assert response.status_code == 200


# --- 5. client JWTs -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ehr_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture(scope="module")
def other_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


def auth_app(tmp_path: Path, key: ec.EllipticCurvePrivateKey) -> tuple[Flask, FlaskClient]:
    clients = tmp_path / "clients.json"
    if not clients.exists():
        tmp_path.mkdir(parents=True, exist_ok=True)
        jwk = {**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": KID}
        clients.write_text(json.dumps({"clients": [{"iss": ISS, "jwks": {"keys": [jwk]}}]}))
    return APPS.get(tmp_path, "auth", cds_auth=True, cds_clients_file=str(clients), public_base_url=PUBLIC)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def signed(key: Any, header: dict[str, Any], payload: Any, algorithm: str = "ES384") -> str:
    """A JWS built by hand, so claims of any type can be signed (PyJWT refuses a non-string iss)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    signature = jwt.get_algorithm_by_name(algorithm).sign(signing_input.encode(), key)
    return f"{signing_input}.{_b64(signature)}"


def token(key: Any, audience: Any, *, algorithm: str = "ES384", kid: Any = KID, **overrides: Any) -> str:
    """A client JWT with a fresh jti; ``overrides`` replace claims (None drops one)."""
    now = int(time.time())
    claims = {
        "iss": ISS,
        "aud": audience,
        "iat": now,
        "exp": now + 300,
        "jti": str(uuid.uuid4()),
        **overrides,
    }
    header = {"alg": algorithm, "typ": "JWT"} if kid is None else {"alg": algorithm, "typ": "JWT", "kid": kid}
    return signed(key, header, {k: v for k, v in claims.items() if v is not None}, algorithm)


def unsigned(header: Any, payload: Any) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}."


# A valid call per endpoint, so only the token decides.
AUTH_CALLS: list[tuple[str, str, Any, frozenset[int]]] = [
    ("GET", "/cds-services", None, frozenset({200})),
    ("POST", "/cds-services/cac-patient-view", "patient-view", frozenset({200})),
    ("POST", "/cds-services/cac-order-sign", "order-sign", frozenset({200})),
    ("POST", "/cds-services/cac-patient-view/feedback", "feedback", frozenset({200})),
]


def _valid_body(kind: Any) -> Any:
    if kind == "patient-view":
        return patient_view_body("p1", dict.fromkeys(EXAMPLE_PREFETCHES[0][1]))
    if kind == "order-sign":
        return order_body("order-sign", "p1", [], None, None)  # no scan, no aspirin: no data needed
    if kind == "feedback":
        card = str(uuid.uuid4())
        return {"feedback": [{"card": card, "outcome": "overridden", "outcomeTimestamp": TIMESTAMPS[0]}]}
    return None


def call(
    client: FlaskClient, endpoint: tuple[str, str, Any, frozenset[int]], authorization: str | None
) -> Any:
    method, path, kind, _ = endpoint
    headers = {} if authorization is None else {"Authorization": authorization}
    if method == "GET":
        return client.get(path, headers=headers)
    return send(client, method, path, _valid_body(kind), headers=headers)


def check_unauthorized(response: TestResponse, caplog: pytest.LogCaptureFixture) -> None:
    outcome = check(response, {401}, caplog)
    assert response.headers.get("WWW-Authenticate") == "Bearer"
    assert all(set(issue) <= {"severity", "code"} for issue in outcome["issue"]), outcome  # no reason given


header_texts = st.text(alphabet=st.characters(max_codepoint=255, exclude_characters="\r\n"), max_size=40)
b64_parts = st.one_of(
    st.binary(max_size=40).map(_b64),
    json_values.map(lambda v: _b64(json.dumps(v).encode())),
    header_texts.filter(lambda t: "." not in t),
)


@st.composite
def bad_authorizations(draw: st.DrawFn, keys: dict[str, Any]) -> str:
    """Authorization headers that must all be refused; ``keys`` holds the keys and the audience."""
    kind = draw(
        st.sampled_from(["text", "bearer-text", "dots", "json-parts", "other-key", "none", "hs", "claims"])
    )
    audience = keys["aud"]
    if kind == "text":
        return draw(header_texts)
    if kind == "bearer-text":
        return "Bearer " + draw(header_texts)
    if kind == "dots":
        return "Bearer " + ".".join(draw(st.lists(b64_parts, min_size=1, max_size=4)))
    if kind == "json-parts":
        return "Bearer " + unsigned(draw(json_values), draw(json_values)) + draw(b64_parts)
    if kind == "other-key":
        return "Bearer " + token(keys["other"], audience)
    if kind == "none":
        now = int(time.time())
        claims = {"iss": ISS, "aud": audience, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())}
        return "Bearer " + unsigned(
            {"alg": draw(st.sampled_from(["none", "None", "NONE"])), "kid": KID}, claims
        )
    if kind == "hs":
        secret = draw(st.binary(min_size=32, max_size=48))
        return "Bearer " + token(secret, audience, algorithm=draw(st.sampled_from(["HS256", "HS384"])))
    # the right key, claims wrong in one way
    now = int(time.time())
    wrong: dict[str, Any] = draw(
        st.sampled_from(
            [
                {"iss": "https://other.test"},
                {"iss": 5},
                {"aud": PUBLIC + "/cds-services/elsewhere"},
                {"aud": audience + "/"},
                {"aud": ["https://a.test"]},
                {"iat": now + 3600, "exp": now + 3900},
                {"exp": now - 3600, "iat": now - 3700},
                {"exp": now + 7200},
                {"exp": float("inf")},
                {"iat": True},
                {"nbf": now + 3600},
                {"iss": None},
                {"aud": None},
                {"exp": None},
                {"iat": None},
                {"jti": None},
                {"exp": "soon"},
                {"jti": ""},
                {"jti": 42},
                {"tenant": 5},
                {"kid": "k2"},
                {"kid": 7},
                {"typ": "at+jwt"},
            ]
        )
    )
    if "kid" in wrong or "typ" in wrong:
        header = {"typ": wrong.get("typ", "JWT"), "kid": wrong.get("kid", KID)}
        claims = {"iss": ISS, "aud": audience, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())}
        return "Bearer " + signed(keys["ehr"], {"alg": "ES384", **header}, claims)
    return "Bearer " + token(keys["ehr"], audience, **wrong)


@FUZZ
@given(data=st.data())
def test_refused_tokens_get_401_and_no_reason(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    ehr_key: ec.EllipticCurvePrivateKey,
    other_key: ec.EllipticCurvePrivateKey,
    data: st.DataObject,
) -> None:
    _, client = auth_app(tmp_path, ehr_key)
    endpoint = data.draw(st.sampled_from(AUTH_CALLS), label="endpoint")
    keys = {"ehr": ehr_key, "other": other_key, "aud": PUBLIC + endpoint[1]}
    authorization = data.draw(st.none() | bad_authorizations(keys), label="authorization")
    check_unauthorized(call(client, endpoint, authorization), caplog)


def test_signed_token_is_accepted_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, ehr_key: ec.EllipticCurvePrivateKey
) -> None:
    """The control for the test above: the same calls with a good token succeed (and a replay is 401)."""
    _, client = auth_app(tmp_path, ehr_key)
    for endpoint in AUTH_CALLS:
        good = "Bearer " + token(ehr_key, PUBLIC + endpoint[1])
        check(call(client, endpoint, good), endpoint[3], caplog)
        check_unauthorized(call(client, endpoint, good), caplog)  # the same jti again
        scheme = "bearer " + token(ehr_key, ["https://a.test", PUBLIC + endpoint[1]])
        check(call(client, endpoint, scheme), endpoint[3], caplog)


@FEW
@given(data=st.data())
def test_good_token_then_random_body(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, ehr_key: ec.EllipticCurvePrivateKey, data: st.DataObject
) -> None:
    """Past the token check, a random body is still only ever a 4xx."""
    _, client = auth_app(tmp_path, ehr_key)
    method, path, allowed = data.draw(st.sampled_from(BODY_ENDPOINTS[:6]), label="endpoint")
    good = "Bearer " + token(ehr_key, PUBLIC + path)
    body = data.draw(json_values, label="body")
    check(send(client, method, path, body, headers={"Authorization": good}), allowed, caplog)


# --- the crashes the fuzzing found, pinned with their minimal inputs ----------------------------------


def _json(body: Any) -> bytes:
    return json.dumps(body).encode()


def _pv(**extra: Any) -> bytes:
    return _json({**patient_view_body("p1", None), **extra})


def _sign(draft: dict[str, Any]) -> bytes:
    return _json(order_body("order-sign", "p1", [draft], None, None))


def _prefetched(**given: Any) -> bytes:
    """A patient-view call for p1 with every prefetch key present: ``given``, else null."""
    return _json(patient_view_body("p1", {**dict.fromkeys(EXAMPLE_PREFETCHES[0][1]), **given}))


PATIENT = {"resourceType": "Patient", "id": "p1", "gender": "male", "birthDate": "1960-01-01"}
SCAN = {
    "resourceType": "Observation",
    "id": "s1",
    "status": "final",
    "code": {"coding": [{"system": codes.SNOMED, "code": "450360000"}]},
    "subject": {"reference": "Patient/p1"},
    "effectiveDateTime": "2024-01-01",
    "valueQuantity": {"value": 10, "system": codes.UCUM, "code": "{Agatston}"},
}


FOUND: list[tuple[str, str, str, Callable[[], bytes], frozenset[int]]] = [
    # json.loads raises RecursionError, which /calc does not catch
    ("calc-deep-nesting", "POST", "/calc", lambda: b"[" * 100_000, frozenset({400})),
    # parse_json lets the int-digits ValueError (not a JSONDecodeError) through
    ("cds-huge-integer", "POST", "/cds-services/cac-patient-view", lambda: b"1" * 5000, frozenset({400})),
    (
        "feedback-huge-integer",
        "POST",
        "/cds-services/cac-patient-view/feedback",
        lambda: b'{"feedback": ' + b"1" * 5000 + b"}",
        frozenset({400}),
    ),
    # a lone surrogate cannot be stored in SQLite (UnicodeEncodeError)
    (
        "feedback-lone-surrogate",
        "POST",
        "/cds-services/cac-patient-view/feedback",
        lambda: _json(
            {"feedback": [{"card": "\ud800", "outcome": "overridden", "outcomeTimestamp": TIMESTAMPS[0]}]}
        ),
        frozenset({200, 400}),
    ),
    # the unknown key is echoed into the OperationOutcome, which is UTF-8 encoded (ensure_ascii off)
    ("calc-lone-surrogate-key", "POST", "/calc", lambda: _json({"\ud800": 1}), frozenset({400})),
    # Coding lists of another type: is_scan_order iterates them
    (
        "order-coding-not-a-list",
        "POST",
        "/cds-services/cac-order-sign",
        lambda: _sign({"resourceType": "ServiceRequest", "code": {"coding": 5}}),
        frozenset({200, 400, 412}),
    ),
    (
        "order-contained-not-a-list",
        "POST",
        "/cds-services/cac-order-sign",
        lambda: _sign(
            {"resourceType": "MedicationRequest", "medicationReference": {"reference": "#m"}, "contained": 5}
        ),
        frozenset({200, 400, 412}),
    ),
    # a Coding whose system is a list: the (system, code) tuple is unhashable in the frozenset lookup
    (
        "order-coding-system-a-list",
        "POST",
        "/cds-services/cac-order-sign",
        lambda: _sign(
            {"resourceType": "ServiceRequest", "code": {"coding": [{"system": [], "code": "75571"}]}}
        ),
        frozenset({200, 400, 412}),
    ),
    # fhir.resources validation accepts a JSON *string* where an object belongs (it parses it), so a
    # "validated" prefetched resource can hold a str where the readers call .get(): AttributeError
    (
        "prefetch-meta-json-string",  # inputs.py Located.version
        "POST",
        "/cds-services/cac-patient-view",
        lambda: _prefetched(patient={**PATIENT, "meta": "{}"}),
        frozenset({200, 400}),
    ),
    (
        "prefetch-extension-json-string",  # read.py _us_core_codes
        "POST",
        "/cds-services/cac-patient-view",
        lambda: _prefetched(
            patient={**PATIENT, "extension": [{"url": codes.US_CORE_RACE, "extension": ['{"url": "text"}']}]}
        ),
        frozenset({200, 400}),
    ),
    (
        "prefetch-value-quantity-json-string",  # read.py Reader._quantity
        "POST",
        "/cds-services/cac-patient-view",
        lambda: _prefetched(patient=PATIENT, cacScores={**SCAN, "valueQuantity": '{"value": 10}'}),
        frozenset({200, 400}),
    ),
    (
        "prefetch-medication-concept-json-string",  # read.py classify_medication
        "POST",
        "/cds-services/cac-patient-view",
        lambda: _prefetched(
            patient=PATIENT,
            cacScores=SCAN,
            medicationStatements={
                "resourceType": "MedicationStatement",
                "id": "ms1",
                "status": "active",
                "subject": {"reference": "Patient/p1"},
                "medicationCodeableConcept": '{"text": "aspirin"}',
            },
        ),
        frozenset({200, 400}),
    ),
    # fhirServer values the schema pattern lets through but urlsplit / FhirClient refuse (ValueError)
    (
        "fhir-server-bad-ipv6",
        "POST",
        "/cds-services/cac-patient-view",
        lambda: _pv(fhirServer="http://["),
        frozenset({400}),
    ),
    (
        "fhir-server-no-host",
        "POST",
        "/cds-services/cac-patient-view",
        lambda: _pv(fhirServer="https://:80"),
        frozenset({400, 412}),
    ),
    (
        "fhir-server-bad-port",
        "POST",
        "/cds-services/cac-patient-view",
        lambda: _pv(fhirServer="https://127.0.0.1:99999"),
        frozenset({400, 412}),
    ),
    # an access token that is not latin-1 cannot go into an HTTP header (UnicodeEncodeError in requests)
    (
        "fhir-authorization-not-latin-1",
        "POST",
        "/cds-services/cac-patient-view",
        lambda: _pv(
            fhirServer=UNREACHABLE,
            fhirAuthorization={
                "access_token": "\u20ac",
                "token_type": "Bearer",
                "expires_in": 1,
                "scope": "",
                "subject": "",
            },
        ),
        frozenset({400, 412}),
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "raw", "allowed"), [f[1:] for f in FOUND], ids=[f[0] for f in FOUND]
)
def test_found_crash(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
    raw: Callable[[], bytes],
    allowed: frozenset[int],
) -> None:
    _, client = make_app(tmp_path, cds_fetch_timeout=1)
    check(send(client, method, path, raw=raw()), allowed, caplog)


def test_found_crash_fhir_hook_deep_nesting(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app, client = make_app(tmp_path, fhir_base_url=UNREACHABLE)
    with_fast_poller(app, tmp_path)
    headers = {"Authorization": f"Bearer {HOOK_TOKEN}"}
    check(send(client, "PUT", "/fhir-hook/Observation/1", raw=b"[" * 100_000, headers=headers), {400}, caplog)


def test_examples_give_cards(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The fuzzing starts from valid calls: every example patient gets 200 and at least one card."""
    _, client = make_app(tmp_path)
    for patient_id, prefetch in EXAMPLE_PREFETCHES:
        response = send(
            client, "POST", "/cds-services/cac-patient-view", patient_view_body(patient_id, prefetch)
        )
        data = check(response, {200}, caplog)
        check_cards(data)
        assert data["cards"], patient_id
