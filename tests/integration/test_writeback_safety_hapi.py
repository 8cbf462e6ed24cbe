"""Withdrawn and corrected scans, dates in the clinic's zone, concurrent write-backs and forged
notifications, against the real HAPI server (attack review 2026-12, findings 3-7).

Each test seeds its own patients (a unique prefix) and checks what the server holds afterwards.
Write-back runs in-process where the test needs a fixed clock, through the real service
(``fhircac serve``, 2 gunicorn workers) where the finding came through its notification endpoint.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
from hapi_server import HapiServer

from fhircac.clinical.policies import get_policy
from fhircac.fhir import codes
from fhircac.fhir.client import FhirClient
from fhircac.worker import writeback
from fhircac.worker.poller import Poller
from fhircac.worker.state import State
from fhircac.worker.subscription import notify
from fhircac.worker.writeback import WritebackDeferred, fetch_patients, write_back
from tests import fhir_builders as fb
from tests.integration.conftest import ROOT, fhircac_service

pytestmark = pytest.mark.integration
POLICY = get_policy("acc-aha-2018")


@pytest.fixture
def prefix() -> str:
    return f"s{uuid.uuid4().hex[:8]}"


@pytest.fixture
def poller(fhir: FhirClient, tmp_path: Path) -> Iterator[Poller]:
    state = State(tmp_path / "state.sqlite")
    try:
        yield Poller(fhir, state, POLICY, overlap_seconds=5)
    finally:
        state.close()


def put(fhir: FhirClient, *resources: dict[str, Any]) -> None:
    entries = [
        {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
        for r in resources
    ]
    fhir.transaction({"resourceType": "Bundle", "type": "transaction", "entry": entries})


def scan(patient: str, scan_id: str, value: float, day: str, **extra: Any) -> dict[str, Any]:
    return fb.cac(id=scan_id, value=value, date=day, subject={"reference": f"Patient/{patient}"}, **extra)


def patient(patient_id: str) -> dict[str, Any]:
    return fb.patient(id=patient_id, race=["2106-3"])


def ours(fhir: FhirClient, resource_type: str, patient_id: str) -> list[dict[str, Any]]:
    params = {"patient": f"Patient/{patient_id}", "identifier": f"{codes.ASSESSMENT_ID}|", "_count": "100"}
    return fhir.search_resources(resource_type, params)


def scan_of(resource: dict[str, Any]) -> str:
    """The Observation (id/_history/version) a fhircac resource interprets, from its identifier."""
    value = next(i["value"] for i in resource["identifier"] if i["system"] == codes.ASSESSMENT_ID)
    return str(value.split("Observation/", 1)[1].rsplit(":", 2)[0])


def statuses(fhir: FhirClient, resource_type: str, patient_id: str) -> dict[str, str]:
    """Scan interpreted (id/_history/version) → status, for the patient's fhircac resources."""
    return {scan_of(r): r["status"] for r in ours(fhir, resource_type, patient_id)}


def final_assessments(fhir: FhirClient, patient_id: str) -> list[dict[str, Any]]:
    """``RiskAssessment?subject=`` as a consumer reads it: the ones not withdrawn (R4 has no status
    search parameter for RiskAssessment)."""
    found = fhir.search_resources("RiskAssessment", {"subject": f"Patient/{patient_id}"})
    return [r for r in found if r["status"] == "final"]


# -- withdrawn and corrected results (findings 3 and 7) ---------------------------------------------


def test_withdrawing_the_only_scan_withdraws_its_assessment_and_revokes_its_plan(
    fhir: FhirClient, poller: Poller, prefix: str
) -> None:
    p, s = f"{prefix}-p", f"{prefix}-s"
    put(fhir, patient(p), scan(p, s, 450, "2024-05-02"))
    assert notify(poller, {"id": s}).written == 1
    assert statuses(fhir, "CarePlan", p) == {f"{s}/_history/1": "active"}

    put(fhir, scan(p, s, 450, "2024-05-02", status="entered-in-error"))
    assert notify(poller, {"id": s}).written == 1
    assert statuses(fhir, "RiskAssessment", p) == {f"{s}/_history/1": "entered-in-error"}
    assert statuses(fhir, "CarePlan", p) == {f"{s}/_history/1": "revoked"}
    assert final_assessments(fhir, p) == []
    (withdrawn,) = ours(fhir, "RiskAssessment", p)
    assert any(
        f"Observation/{s} was withdrawn (status entered-in-error)" in n["text"] for n in withdrawn["note"]
    )
    assert notify(poller, {"id": s}).already == 1


def test_withdrawing_the_latest_scan_makes_the_earlier_scans_plan_current_again(
    fhir: FhirClient, poller: Poller, prefix: str
) -> None:
    p, old, new = f"{prefix}-p", f"{prefix}-2019", f"{prefix}-2024"
    put(fhir, patient(p), scan(p, old, 40, "2019-03-01"))
    assert notify(poller, {"id": old}).written == 1
    put(fhir, scan(p, new, 450, "2024-05-02"))
    assert notify(poller, {"id": new}).written == 1
    assert statuses(fhir, "CarePlan", p) == {f"{old}/_history/1": "revoked", f"{new}/_history/1": "active"}

    put(fhir, scan(p, new, 450, "2024-05-02", status="entered-in-error"))
    assert notify(poller, {"id": new}).written == 1
    assert statuses(fhir, "CarePlan", p) == {f"{old}/_history/1": "active", f"{new}/_history/1": "revoked"}
    assert statuses(fhir, "RiskAssessment", p) == {
        f"{old}/_history/1": "final",
        f"{new}/_history/1": "entered-in-error",
    }


def delete_scan(fhir: FhirClient, patient_id: str, scan_id: str) -> None:
    """Delete a scan as a lab system must on a server that keeps referential integrity (HAPI's
    default, and the test server's): what refers to it first (fhircac's Provenance, plan and
    RiskAssessment of it, as a cascading delete would), then the Observation."""
    mine = [
        r
        for kind in ("CarePlan", "RiskAssessment")
        for r in ours(fhir, kind, patient_id)
        if scan_of(r).startswith(f"{scan_id}/")
    ]
    targets = ",".join(f"{r['resourceType']}/{r['id']}" for r in mine)
    provenances = fhir.search_resources("Provenance", {"target": targets})
    for resource in [*provenances, *mine]:
        url = f"{fhir.base_url}/{resource['resourceType']}/{resource['id']}"
        fhir.session.delete(url, timeout=30).raise_for_status()
    fhir.session.delete(f"{fhir.base_url}/Observation/{scan_id}", timeout=30).raise_for_status()


def test_a_deleted_scan_is_seen_by_the_poller_and_the_patient_assessed_again(
    fhir: FhirClient, poller: Poller, prefix: str
) -> None:
    p, old, new = f"{prefix}-p", f"{prefix}-2019", f"{prefix}-2024"
    put(fhir, patient(p), scan(p, old, 40, "2019-03-01"))
    poller.poll_once()  # sets the deletion cursor and handles everything so far
    put(fhir, scan(p, new, 450, "2024-05-02"))
    assert notify(poller, {"id": new}).written == 1
    assert statuses(fhir, "CarePlan", p) == {f"{old}/_history/1": "revoked", f"{new}/_history/1": "active"}

    delete_scan(fhir, p, new)
    report = poller.poll_once()
    assert report.written >= 1
    assert statuses(fhir, "CarePlan", p) == {f"{old}/_history/1": "active"}
    assert [scan_of(r) for r in final_assessments(fhir, p)] == [f"{old}/_history/1"]
    # a notification naming the deleted Observation, or another pass, changes nothing more
    assert notify(poller, {"id": new}).already == 1
    assert poller.poll_once().written == 0


def test_a_corrected_value_supersedes_the_earlier_assessment(
    fhir: FhirClient, poller: Poller, prefix: str
) -> None:
    p, s = f"{prefix}-p", f"{prefix}-s"
    put(fhir, patient(p), scan(p, s, 250, "2024-05-02"))
    assert notify(poller, {"id": s}).written == 1
    put(fhir, scan(p, s, 25, "2024-05-02", status="corrected"))
    assert notify(poller, {"id": s}).written == 1

    assert statuses(fhir, "RiskAssessment", p) == {
        f"{s}/_history/1": "entered-in-error",
        f"{s}/_history/2": "final",
    }
    assert statuses(fhir, "CarePlan", p) == {f"{s}/_history/1": "revoked", f"{s}/_history/2": "active"}
    (current,) = final_assessments(fhir, p)
    (earlier,) = [r for r in ours(fhir, "RiskAssessment", p) if r["status"] == "entered-in-error"]
    link = [e for e in current["extension"] if e["url"] == codes.EXT_REPLACES_ASSESSMENT]
    assert link == [
        {
            "url": codes.EXT_REPLACES_ASSESSMENT,
            "valueReference": {"reference": f"RiskAssessment/{earlier['id']}"},
        }
    ]
    assert any("superseded by the interpretation of" in n["text"] for n in earlier["note"])


def test_withdrawn_and_superseding_assessments_validate_against_the_profile(
    fhir: FhirClient, poller: Poller, prefix: str
) -> None:
    """The profile allows final and entered-in-error, and the replaces-assessment extension."""
    order = ("CodeSystem", "ValueSet", "StructureDefinition", "CapabilityStatement")
    files = sorted(
        (ROOT / "profiles").glob("*.json"), key=lambda f: (order.index(f.name.split("-")[0]), f.name)
    )
    for path in files:
        fhir.update(json.loads(path.read_text(encoding="utf-8")))
    p, s = f"{prefix}-p", f"{prefix}-s"
    put(fhir, patient(p), scan(p, s, 250, "2024-05-02"))
    notify(poller, {"id": s})
    put(fhir, scan(p, s, 25, "2024-05-02", status="corrected"))
    notify(poller, {"id": s})
    stored = ours(fhir, "RiskAssessment", p)
    assert {r["status"] for r in stored} == {"final", "entered-in-error"}
    for resource in stored:
        outcome = fhir.validate(resource, profile=codes.PROFILE_CAC_RISK_ASSESSMENT)
        errors = [i for i in outcome.get("issue", []) if i.get("severity") in ("error", "fatal")]
        assert errors == [], errors
    broken = {**stored[0], "status": "preliminary"}
    outcome = fhir.validate(broken, profile=codes.PROFILE_CAC_RISK_ASSESSMENT)
    errors = [i for i in outcome["issue"] if i.get("severity") == "error"]
    assert any("cac-riskassessment-status" in str(i) for i in errors), outcome


# -- dates in the clinic's zone (finding 4) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "effective", "clinic_date"),
    [
        # UTC+14: one minute after the scan, 10:01 UTC; the local date is already the next day
        ("2026-12-03T10:01:52+00:00", "2026-12-04T00:00:52+14:00", "2026-12-04"),
        # UTC-12: the local date is still the day before the UTC date
        ("2026-12-04T09:00:00+00:00", "2026-12-03T20:00:00-12:00", "2026-12-03"),
    ],
    ids=["utc+14", "utc-12"],
)
def test_a_scan_taken_today_is_assessed_as_of_the_clinics_date(
    fhir: FhirClient, prefix: str, now: str, effective: str, clinic_date: str
) -> None:
    p, s = f"{prefix}-p", f"{prefix}-s"
    put(fhir, patient(p), scan(p, s, 120, effective))
    result = write_back(fhir, p, POLICY, scan_id=s, now=datetime.fromisoformat(now))
    assert result.outcome == "written" and result.latest
    (risk,) = ours(fhir, "RiskAssessment", p)
    assert risk["occurrenceDateTime"] == clinic_date


def test_a_scan_dated_after_now_is_retried_when_due_not_skipped_forever(
    fhir: FhirClient, tmp_path: Path, prefix: str
) -> None:
    p, s = f"{prefix}-p", f"{prefix}-s"
    put(fhir, patient(p), scan(p, s, 120, "2026-12-05T09:00:00+13:00"))
    with pytest.raises(WritebackDeferred):
        write_back(fhir, p, POLICY, scan_id=s, now=datetime(2026, 12, 3, 10, tzinfo=UTC))
    now = [datetime(2026, 12, 3, 10, tzinfo=UTC)]
    state = State(tmp_path / "state.sqlite")
    try:
        poller = Poller(fhir, state, POLICY, clock=lambda: now[0])
        assert notify(poller, {"id": s}).deferred == 1
        assert not state.handled(poller.server, s, "1")
        now[0] = datetime(2026, 12, 4, 20, 5, tzinfo=UTC)  # 09:05 on 5 December at UTC+13
        assert poller.poll_once().written >= 1
        assert state.handled(poller.server, s, "1")
    finally:
        state.close()
    (risk,) = ours(fhir, "RiskAssessment", p)
    assert risk["occurrenceDateTime"] == "2026-12-05"


# -- forged notifications (finding 6) ----------------------------------------------------------------


def test_a_forged_notification_cannot_suppress_the_assessment_of_a_correction(
    fhir: FhirClient, poller: Poller, prefix: str
) -> None:
    p, s = f"{prefix}-p", f"{prefix}-s"
    put(fhir, patient(p), scan(p, s, 450, "2024-05-02"))
    assert notify(poller, {"id": s}).written == 1
    forged = {
        "resourceType": "Observation",
        "id": s,
        "meta": {"versionId": "2"},
        "subject": {"reference": "Patient/nobody-here"},
    }
    assert notify(poller, forged).already == 1  # the server holds version 1: handled already
    assert not poller.state.handled(poller.server, s, "2")
    put(fhir, scan(p, s, 45, "2024-05-02", status="corrected"))
    assert notify(poller, {"id": s}).written == 1
    assert statuses(fhir, "CarePlan", p) == {f"{s}/_history/1": "revoked", f"{s}/_history/2": "active"}


# -- one active plan per patient (finding 5) --------------------------------------------------------


def test_two_scans_notified_0_to_50_ms_apart_leave_exactly_one_active_plan(
    hapi: HapiServer, fhir: FhirClient, tmp_path: Path, prefix: str
) -> None:
    """The review's race: scan 1 created and notified, scan 2 created and notified X ms later,
    through the service's hook (2 gunicorn workers); each round one new patient."""
    token = uuid.uuid4().hex
    settings = {
        "FHIRCAC_FHIR_BASE_URL": hapi.base_url,
        "FHIRCAC_HOOK_TOKEN": token,
        "FHIRCAC_STATE_FILE": str(tmp_path / "hook.sqlite"),
        "FHIRCAC_CDS_DB": str(tmp_path / "cds.sqlite"),
    }
    gaps = [0.0, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.0, 0.01, 0.02]
    with fhircac_service(settings, tmp_path / "serve.log") as url:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
        failures: list[str] = []

        def arrive(resource: dict[str, Any], delay: float) -> None:
            time.sleep(delay)
            try:
                put(fhir_for_thread(hapi), resource)
                answer = requests.put(
                    f"{url}/fhir-hook/Observation/{resource['id']}",
                    json=resource,
                    headers=headers,
                    timeout=60,
                )
                if answer.status_code != 200:
                    failures.append(f"{answer.status_code} {answer.text[:200]}")
            except Exception as error:  # reported below; a thread must not swallow it
                failures.append(repr(error))

        for n, gap in enumerate(gaps):
            p = f"{prefix}-p{n}"
            put(fhir, patient(p))
            first = scan(p, f"{p}-s1", 100, "2023-01-10")
            second = scan(p, f"{p}-s2", 300, "2025-01-10")
            threads = [threading.Thread(target=arrive, args=(r, d)) for r, d in ((first, 0.0), (second, gap))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=120)
        assert failures == []
    for n in range(len(gaps)):
        p = f"{prefix}-p{n}"
        active = [scan_of(r) for r in ours(fhir, "CarePlan", p) if r["status"] == "active"]
        assert active == [f"{p}-s2/_history/1"], (n, gaps[n], active)


def test_the_poller_heals_two_active_plans_a_writer_left_without_its_check(
    fhir: FhirClient, poller: Poller, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer that died between its commit and its check (or an older fhircac) leaves two active
    plans: reproduced by a stale writer with the check turned off; the next poll pass heals it."""
    p, s1, s2 = f"{prefix}-p", f"{prefix}-s1", f"{prefix}-s2"
    poller.poll_once()  # the pass's own cursors start here
    put(fhir, patient(p), scan(p, s1, 100, "2023-01-10"))
    stale = fetch_patients(fhir, [p])[p]  # writer A reads before anything is written
    put(fhir, scan(p, s2, 300, "2025-01-10"))
    assert write_back(fhir, p, POLICY, scan_id=s2).outcome == "written"  # writer B
    monkeypatch.setattr(writeback, "repair_plans", lambda *args, **kwargs: [])  # A dies before its check
    assert write_back(fhir, p, POLICY, scan_id=s1, prefetched=stale).outcome == "written"
    monkeypatch.undo()
    assert statuses(fhir, "CarePlan", p) == {f"{s1}/_history/1": "active", f"{s2}/_history/1": "active"}
    for scan_id in (s1, s2):  # as in the review: both in the ledger as written, so no re-assessment
        poller.state.record(poller.server, scan_id, "1", "written")

    assert poller.poll_once().repaired == 1
    assert statuses(fhir, "CarePlan", p) == {f"{s1}/_history/1": "revoked", f"{s2}/_history/1": "active"}
    assert poller.poll_once().repaired == 0


def fhir_for_thread(hapi: HapiServer) -> FhirClient:
    """A client per thread: a requests.Session is not documented as thread-safe."""
    return FhirClient(hapi.base_url, retries=2, backoff_factor=0.1)
