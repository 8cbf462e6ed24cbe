"""Write-back, polling and subscriptions against a real HAPI FHIR JPA server, through the real commands.

Each test seeds its own patients (client ids with a unique prefix) into the session's HAPI server and
counts what the server holds afterwards, so the guarantees are checked where they matter: on the
server. The poller reads every CAC Observation on the server, including other tests' ones; counts
are restricted to the test's own prefix.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import processes
import pytest
import requests
from hapi_server import HapiServer, free_port

from fhircac.fhir import codes
from fhircac.fhir.client import FhirClient
from fhircac.worker.state import State
from tests import fhir_builders as fb
from tests.integration.conftest import fhircac_log, fhircac_service

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _env(base_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FHIRCAC_")}
    return {**env, "FHIRCAC_FHIR_BASE_URL": base_url, **extra}


def fhircac(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fhircac", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def seed(fhir: FhirClient, patient_id: str, scans: list[tuple[str, float, str]], **cac_args: Any) -> None:
    """PUT a Patient and its CAC scans (id, score, date) in one transaction."""
    resources = [fb.patient(id=patient_id, race=["2106-3"])]
    subject = {"reference": f"Patient/{patient_id}"}
    resources += [
        fb.cac(id=scan_id, value=value, date=day, subject=subject, **cac_args)
        for scan_id, value, day in scans
    ]
    fhir.transaction(
        {
            "resourceType": "Bundle",
            "type": "transaction",
            "entry": [
                {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
                for r in resources
            ],
        }
    )


def seed_many(fhir: FhirClient, prefix: str, count: int) -> list[str]:
    """``count`` patients with one scan each, in one transaction; returns the scan ids."""
    entries, scans = [], []
    for n in range(count):
        patient = fb.patient(id=f"{prefix}-p{n}", race=["2106-3"])
        scan = fb.cac(
            id=f"{prefix}-s{n}",
            value=10 * n,
            date="2026-03-01",
            subject={"reference": f"Patient/{patient['id']}"},
        )
        scans.append(scan["id"])
        entries += [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
            for r in (patient, scan)
        ]
    fhir.transaction({"resourceType": "Bundle", "type": "transaction", "entry": entries})
    return scans


def written(fhir: FhirClient, resource_type: str, prefix: str) -> Counter[str]:
    """How many resources of ``resource_type`` fhircac wrote per scan Observation id with ``prefix``."""
    found: Counter[str] = Counter()
    params = {"identifier": f"{codes.ASSESSMENT_ID}|", "_count": "500", "_elements": "identifier"}
    if resource_type == "Provenance":
        params = {"_count": "500", "_elements": "meta"}  # HAPI's _tag search needs a code
    for resource in fhir.search_resources(resource_type, params):
        if resource_type == "Provenance":
            values = [
                t.get("display", "") for t in resource["meta"]["tag"] if t["system"] == codes.PROVENANCE_TAG
            ]
        else:
            values = [
                i["value"] for i in resource.get("identifier", []) if i["system"] == codes.ASSESSMENT_ID
            ]
        for value in values:
            scan = value.split("Observation/", 1)[-1].split("/")[0].split(":")[0]
            if scan.startswith(prefix):
                found[scan] += 1
    return found


def care_plans(fhir: FhirClient, patient_id: str) -> list[dict[str, Any]]:
    return fhir.search_resources("CarePlan", {"patient": f"Patient/{patient_id}"})


@pytest.fixture
def prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}"


# -- fhircac writeback ---------------------------------------------------------------------------


def test_writeback_twice_writes_once(hapi: HapiServer, fhir: FhirClient, prefix: str) -> None:
    seed(fhir, f"{prefix}-p", [(f"{prefix}-scan", 250, "2026-02-01")])
    env = _env(hapi.base_url)
    first = fhircac("writeback", "--patient", f"{prefix}-p", env=env)
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    assert result["outcome"] == "written"
    assert sorted(ref.split("/")[0] for ref in result["created"]) == [
        "CarePlan",
        "Provenance",
        "RiskAssessment",
    ]
    assert result["scan"] == f"Observation/{prefix}-scan/_history/1"

    second = fhircac("writeback", "--patient", f"{prefix}-p", env=env)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout) | {"created": None} == result | {"outcome": "unchanged", "created": None}
    assert json.loads(second.stdout)["created"] == []
    for resource_type in ("RiskAssessment", "CarePlan", "Provenance"):
        assert written(fhir, resource_type, prefix) == {f"{prefix}-scan": 1}, resource_type

    risk = fhir.read("RiskAssessment", result["created"][0].split("/")[1])
    assert risk["subject"] == {"reference": f"Patient/{prefix}-p"}
    assert {"reference": f"Observation/{prefix}-scan"} in risk["basis"]  # Provenance pins the version


def test_newer_scan_supersedes_the_previous_care_plan(
    hapi: HapiServer, fhir: FhirClient, prefix: str
) -> None:
    patient = f"{prefix}-p"
    seed(fhir, patient, [(f"{prefix}-old", 120, "2022-01-10")])
    env = _env(hapi.base_url)
    assert fhircac("writeback", "--patient", patient, env=env).returncode == 0
    (old_plan,) = care_plans(fhir, patient)
    assert old_plan["status"] == "active"

    seed(fhir, patient, [(f"{prefix}-old", 120, "2022-01-10"), (f"{prefix}-new", 180, "2026-01-10")])
    run = fhircac("writeback", "--patient", patient, env=env)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["scan"].startswith(f"Observation/{prefix}-new/")
    assert result["superseded"] == [f"CarePlan/{old_plan['id']}"]

    plans = {plan["id"]: plan for plan in care_plans(fhir, patient)}
    assert plans[old_plan["id"]]["status"] == "revoked"
    (new_plan,) = [plan for plan in plans.values() if plan["id"] != old_plan["id"]]
    assert new_plan["status"] == "active"
    assert new_plan["replaces"] == [{"reference": f"CarePlan/{old_plan['id']}"}]

    again = fhircac("writeback", "--patient", patient, env=env)
    assert json.loads(again.stdout)["created"] == [] and json.loads(again.stdout)["superseded"] == []
    assert len(care_plans(fhir, patient)) == 2


def test_a_scan_that_is_no_longer_the_latest_gets_an_assessment_but_no_plan(
    hapi: HapiServer, fhir: FhirClient, prefix: str
) -> None:
    patient = f"{prefix}-p"
    seed(fhir, patient, [(f"{prefix}-old", 120, "2022-01-10"), (f"{prefix}-new", 180, "2026-01-10")])
    env = _env(hapi.base_url)
    run = fhircac("writeback", "--patient", patient, "--scan", f"{prefix}-old", env=env)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["latest"] is False and result["scan"].startswith(f"Observation/{prefix}-old/")
    assert sorted(ref.split("/")[0] for ref in result["created"]) == ["Provenance", "RiskAssessment"]
    assert care_plans(fhir, patient) == []
    risk = fhir.read("RiskAssessment", result["created"][0].split("/")[1])
    assert risk["occurrenceDateTime"].startswith("2022-01-10")  # assessed as of that scan


def test_writeback_refusals_name_the_reason(hapi: HapiServer, fhir: FhirClient, prefix: str) -> None:
    env = _env(hapi.base_url)
    missing = fhircac("writeback", "--patient", f"{prefix}-nobody", env=env)
    assert missing.returncode == 2
    assert f"Patient/{prefix}-nobody is not on the FHIR server" in missing.stderr

    seed(fhir, f"{prefix}-p", [(f"{prefix}-scan", 250, "2026-02-01")], unit_code="mg")
    bad_unit = fhircac("writeback", "--patient", f"{prefix}-p", env=env)
    assert bad_unit.returncode == 2
    outcome = json.loads(bad_unit.stderr)
    assert outcome["resourceType"] == "OperationOutcome"
    assert any("mg" in issue["diagnostics"] for issue in outcome["issue"]), outcome
    assert written(fhir, "RiskAssessment", prefix) == {}

    unreachable = fhircac("writeback", "--patient", "x", env=_env(f"http://127.0.0.1:{free_port()}/fhir"))
    assert unreachable.returncode == 3
    assert "unavailable" in unreachable.stderr and "Traceback" not in unreachable.stderr


# -- fhircac poll ------------------------------------------------------------------------------------


def _ledger(path: Path, prefix: str) -> dict[str, str]:
    if not path.exists():
        return {}
    state = State(path)
    try:
        return {e.observation: e.outcome for e in state.entries() if e.observation.startswith(prefix)}
    finally:
        state.close()


def _wait(condition: Any, timeout: float, what: str) -> None:
    try:
        processes.wait_until(condition, timeout, what)
    except processes.ProcessError as error:
        raise AssertionError(f"timed out waiting for {error}") from None


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Pollers a test starts; stopped with their process groups however the test ends."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for process in started:
            processes.stop(process)


def _start_poller(env: dict[str, str], state: Path, log: Path, *extra: str) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "fhircac", "poll", "--state", str(state), "--interval", "0.5", *extra]
    return processes.start(argv, fhircac_log(log, env), env=env)


def test_sigkill_mid_batch_then_restart_gives_exactly_one_assessment_each(
    hapi: HapiServer, fhir: FhirClient, prefix: str, tmp_path: Path, workers: list[subprocess.Popen[bytes]]
) -> None:
    scans = seed_many(fhir, prefix, 40)
    state, env = tmp_path / "state.sqlite", _env(hapi.base_url)
    worker = _start_poller(env, state, tmp_path / "worker.log", "--page-size", "10")
    workers.append(worker)
    _wait(lambda: len(_ledger(state, prefix)) >= 5, 120, "the worker to handle 5 Observations")
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=30)
    handled_before_kill = len(_ledger(state, prefix))
    assert handled_before_kill < len(scans), "the kill should land in the middle of the batch"

    again = fhircac("poll", "--state", str(state), "--once", env=env, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert set(_ledger(state, prefix)) == set(scans)
    assert written(fhir, "RiskAssessment", prefix) == dict.fromkeys(scans, 1)
    assert written(fhir, "Provenance", prefix) == dict.fromkeys(scans, 1)

    third = fhircac("poll", "--state", str(state), "--once", env=env, timeout=300)
    assert json.loads(third.stdout)["written"] == 0  # the ledger and the cursor remember


def test_two_workers_on_one_server_write_no_duplicates(
    hapi: HapiServer, fhir: FhirClient, prefix: str, tmp_path: Path, workers: list[subprocess.Popen[bytes]]
) -> None:
    env = _env(hapi.base_url)
    first = _start_poller(env, tmp_path / "a.sqlite", tmp_path / "a.log")
    second = _start_poller(env, tmp_path / "b.sqlite", tmp_path / "b.log")
    workers += [first, second]
    scans = seed_many(fhir, prefix, 30)
    _wait(
        lambda: (
            len(_ledger(tmp_path / "a.sqlite", prefix)) == len(_ledger(tmp_path / "b.sqlite", prefix)) == 30
        ),
        240,
        "both workers to handle all 30 Observations",
    )
    for resource_type in ("RiskAssessment", "CarePlan", "Provenance"):
        assert written(fhir, resource_type, prefix) == dict.fromkeys(scans, 1), resource_type
    outcomes = Counter(_ledger(tmp_path / "a.sqlite", prefix).values())
    outcomes.update(_ledger(tmp_path / "b.sqlite", prefix).values())
    assert outcomes["written"] == 30 and outcomes["unchanged"] == 30, outcomes


def test_an_unassessable_observation_is_recorded_and_does_not_block_the_rest(
    hapi: HapiServer, fhir: FhirClient, prefix: str, tmp_path: Path
) -> None:
    seed(fhir, f"{prefix}-bad", [(f"{prefix}-bad-scan", 250, "2026-02-01")], unit_code="mg")
    scans = seed_many(fhir, f"{prefix}-ok", 3)
    state, env = tmp_path / "state.sqlite", _env(hapi.base_url)
    run = fhircac("poll", "--state", str(state), "--once", env=env, timeout=300)
    assert run.returncode == 0, run.stderr
    ledger = State(state)
    entries = {e.observation: e for e in ledger.entries() if e.observation.startswith(prefix)}
    assert entries[f"{prefix}-bad-scan"].outcome == "skipped"
    assert "mg" in (entries[f"{prefix}-bad-scan"].reason or "")
    assert {scan: entries[scan].outcome for scan in scans} == dict.fromkeys(scans, "written")
    assert written(fhir, "RiskAssessment", prefix) == dict.fromkeys(scans, 1)
    # the bad one is not retried on every pass
    rerun = fhircac("poll", "--state", str(state), "--once", env=env, timeout=300)
    assert json.loads(rerun.stdout)["skipped"] == 0


def test_worker_backs_off_while_the_server_is_down_and_catches_up(
    tmp_path: Path, prefix: str, workers: list[subprocess.Popen[bytes]]
) -> None:
    """A server of its own, with its database in files, so it can be stopped and started again."""
    server = HapiServer(data_dir=tmp_path / "hapi-data", log_path=tmp_path / "hapi.log").start()
    try:
        fhir = FhirClient(server.base_url)
        before = seed_many(fhir, f"{prefix}-a", 10)
        state, log = tmp_path / "state.sqlite", tmp_path / "worker.log"
        worker = _start_poller(_env(server.base_url), state, log)
        workers.append(worker)
        _wait(lambda: len(_ledger(state, prefix)) >= 1, 120, "the worker to start")
        server.stop()
        _wait(lambda: "backing off" in log.read_text(), 60, "the worker to back off")
        time.sleep(2)
        assert worker.poll() is None, "the worker must keep running while the server is down"
        server.start()
        after = seed_many(fhir, f"{prefix}-b", 10)
        _wait(lambda: len(_ledger(state, prefix)) == 20, 300, "the worker to catch up")
        assert written(fhir, "RiskAssessment", prefix) == dict.fromkeys(before + after, 1)
        assert "Traceback" not in log.read_text()
    finally:
        server.stop()


# -- subscriptions ----------------------------------------------------------------------------------


@pytest.fixture
def service(hapi: HapiServer, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """``fhircac serve`` under gunicorn, wired to the session's HAPI; yields (base URL, hook token)."""
    token = uuid.uuid4().hex
    env = _env(hapi.base_url, FHIRCAC_HOOK_TOKEN=token, FHIRCAC_STATE_FILE=str(tmp_path / "hook.sqlite"))
    env["FHIRCAC_DATA_DIR"] = str(tmp_path / "data")
    log_path = ROOT / ".artifacts" / f"serve-{request.node.name}.log"
    with fhircac_service(env, log_path) as url:
        yield url, token


@pytest.mark.parametrize("payload", [True, False], ids=["with-payload", "without-payload"])
def test_subscription_notifications_feed_write_back(
    hapi: HapiServer, fhir: FhirClient, service: tuple[str, str], prefix: str, payload: bool
) -> None:
    url, token = service
    env = _env(hapi.base_url, FHIRCAC_HOOK_TOKEN=token)
    args = ["subscribe", "--endpoint", f"{url}/fhir-hook"] + ([] if payload else ["--no-payload"])
    registered = fhircac(*args, env=env)
    assert registered.returncode == 0, registered.stderr
    subscription = json.loads(registered.stdout)
    assert subscription["status"] == "active"
    try:
        again = json.loads(fhircac(*args, env=env).stdout)
        assert again["subscription"] == subscription["subscription"] and again["created"] is False
        seed(fhir, f"{prefix}-p", [(f"{prefix}-scan", 300, "2026-02-01")])
        _wait(
            lambda: written(fhir, "RiskAssessment", prefix) == {f"{prefix}-scan": 1}, 60, "the notification"
        )
    finally:
        fhir.session.delete(f"{hapi.base_url}/{subscription['subscription']}", timeout=30)


def test_hook_refuses_a_wrong_token_and_a_wrong_body(service: tuple[str, str]) -> None:
    url, token = service
    wrong = requests.post(f"{url}/fhir-hook", headers={"Authorization": "Bearer nope"}, timeout=10)
    assert wrong.status_code == 401 and wrong.json()["resourceType"] == "OperationOutcome"
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"}
    not_json = requests.put(f"{url}/fhir-hook/Observation/x", data=b"{", headers=headers, timeout=10)
    assert not_json.status_code == 400 and "not JSON" in not_json.text
    patient = requests.put(
        f"{url}/fhir-hook/Observation/x", json={"resourceType": "Patient"}, headers=headers
    )
    assert patient.status_code == 400 and "must carry an Observation" in patient.text
    other_id = requests.put(
        f"{url}/fhir-hook/Observation/x", json={"resourceType": "Observation", "id": "y"}, headers=headers
    )
    assert other_id.status_code == 400 and "does not match" in other_id.text


def test_switching_policy_away_and_back_leaves_exactly_one_active_plan(
    hapi: HapiServer, fhir: FhirClient, prefix: str
) -> None:
    patient = f"{prefix}-p"
    seed(fhir, patient, [(f"{prefix}-scan", 150, "2026-01-10")])
    env = _env(hapi.base_url)

    def active() -> list[str]:
        plans = care_plans(fhir, patient)
        return [p["identifier"][0]["value"].rsplit(":", 2)[1] for p in plans if p["status"] == "active"]

    for policy in ("acc-aha-2018", "lifestyle-first", "acc-aha-2018"):
        run = fhircac("writeback", "--patient", patient, "--policy", policy, env=env)
        assert run.returncode == 0, run.stderr
        assert active() == [policy]
    result = json.loads(run.stdout)
    assert result["reactivated"] and result["superseded"] and result["created"] == []
    assert len(care_plans(fhir, patient)) == 2


def test_subscribe_without_a_hook_token_registers_nothing(
    hapi: HapiServer, fhir: FhirClient, prefix: str
) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}/fhir-hook-{prefix}"
    refused = fhircac("subscribe", "--endpoint", endpoint, env=_env(hapi.base_url))
    assert refused.returncode == 2 and "FHIRCAC_HOOK_TOKEN" in refused.stderr, refused.stderr
    found = fhir.session.get(f"{hapi.base_url}/Subscription", params={"_count": 200}, timeout=30).json()
    endpoints = [entry["resource"]["channel"].get("endpoint") for entry in found.get("entry", [])]
    assert endpoint not in endpoints
