"""The worker's logic without a server: state, cursor rules, error classes, hook answers.

The guarantees themselves (exactly once across SIGKILL, outages, two workers) are shown against a
real HAPI server in tests/integration/test_worker_hapi.py; these tests pin the rules that make them
hold, with a scripted stand-in for the FHIR client and for write-back.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from fhircac.clinical.policies import get_policy
from fhircac.config import ConfigError, Settings
from fhircac.fhir.client import FhirError, FhirUnavailable, NotFound
from fhircac.web.app import create_app
from fhircac.worker import poller as poller_module
from fhircac.worker.poller import Poller, ServerTrouble, _since
from fhircac.worker.state import State, instant_epoch
from fhircac.worker.subscription import CRITERIA, notify, subscription_resource
from fhircac.worker.writeback import WritebackDeferred, WritebackRefused, WritebackResult, patient_of

POLICY = get_policy("acc-aha-2018")
SEARCHED_AT = "2026-11-21T10:01:00.000+00:00"


def observation(n: int, patient: str | None = None, version: str = "1") -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "id": f"o{n}",
        "meta": {"versionId": version, "lastUpdated": f"2026-11-21T10:00:{n:02d}.000+00:00"},
        "subject": {"reference": f"Patient/{patient or f'p{n}'}"},
    }


class ScriptedClient:
    """Serves search pages; records what the poller asked."""

    base_url = display_base = "http://127.0.0.1:1/fhir"

    def __init__(self, pages: list[list[dict[str, Any]]], searched_at: str = SEARCHED_AT) -> None:
        self.pages = pages
        self.searched_at = searched_at
        self.queries: list[Any] = []
        self.stored: dict[str, dict[str, Any]] = {}  # what a read by id returns
        self.active_plans: list[dict[str, Any]] = []  # what a search for active CarePlans finds
        self.plan_queries: list[dict[str, Any]] = []

    def read(self, resource_type: str, id: str) -> dict[str, Any]:
        if id not in self.stored:
            raise NotFound(f"GET /{resource_type}/… → HTTP 404", status=404)
        return self.stored[id]

    def history(
        self, resource_type: str, id: str | None = None, params: Any = None
    ) -> Iterator[dict[str, Any]]:
        if id is not None:  # the history of one Observation: none kept here (expunged, or never there)
            raise NotFound(f"GET /{resource_type}/…/_history → HTTP 404", status=404)
        yield {"resourceType": "Bundle", "meta": {"lastUpdated": self.searched_at}, "entry": []}

    def search(self, resource_type: str, params: Any) -> Iterator[dict[str, Any]]:
        if resource_type != "Observation":  # the checks for second active plans
            self.plan_queries.append(dict(params))
            entries = [{"resource": plan} for plan in self.active_plans]
            yield {"resourceType": "Bundle", "meta": {"lastUpdated": self.searched_at}, "entry": entries}
            return
        self.queries.append(params)
        for page in self.pages:
            yield {
                "resourceType": "Bundle",
                "meta": {"lastUpdated": self.searched_at},  # when the server ran the search
                "entry": [{"resource": r, "search": {"mode": "match"}} for r in page],
            }


@pytest.fixture
def state() -> Iterator[State]:
    store = State(":memory:")
    yield store
    store.close()


@pytest.fixture
def outcomes(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Observation id → what write-back does for it: "written", an exception, … (default written)."""
    script: dict[str, Any] = {}
    monkeypatch.setattr(poller_module, "fetch_patients", lambda client, ids: {})

    def write_back(
        client: Any, patient: str, policy: Any, *, scan_id: str, prefetched: Any, **_: Any
    ) -> WritebackResult:
        action = script.get(scan_id, "written")
        if isinstance(action, BaseException):
            raise action
        return WritebackResult(f"Patient/{patient}", f"Observation/{scan_id}", True, ["RiskAssessment/x"])

    monkeypatch.setattr(poller_module, "write_back", write_back)
    return script


# -- state -------------------------------------------------------------------------------------------


def test_cursor_only_moves_forward_and_keeps_the_servers_string(state: State) -> None:
    assert state.cursor("s") is None
    state.advance("s", "2026-11-21T10:00:05.120+00:00")
    state.advance("s", "2026-11-21T10:00:01Z")  # earlier: ignored
    assert state.cursor("s") == "2026-11-21T10:00:05.120+00:00"
    state.advance("s", "2026-11-21T11:00:05.120+01:00")  # the same instant in another zone: not later
    assert state.cursor("s") == "2026-11-21T10:00:05.120+00:00"
    state.advance("s", "2026-11-21T10:00:05.121Z")
    assert state.cursor("s") == "2026-11-21T10:00:05.121Z"
    assert state.cursor("other") is None


def test_ledger_is_per_server_id_and_version(state: State) -> None:
    state.record("s", "o1", "1", "written")
    state.record("s", "o2", "1", "skipped", reason="no score")
    assert state.handled("s", "o1", "1")
    assert not state.handled("s", "o1", "2")  # a corrected Observation is new work
    assert not state.handled("t", "o1", "1")
    assert [(e.observation, e.reason) for e in state.entries("s", "skipped")] == [("o2", "no score")]


def test_state_is_safe_across_threads(tmp_path: Any) -> None:
    store = State(tmp_path / "state.sqlite")

    def work(n: int) -> None:
        for i in range(50):
            store.record("s", f"o{n}-{i}", "1", "written")
            store.advance("s", f"2026-11-21T10:{n:02d}:{i:02d}Z")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(store.entries("s")) == 400
    assert store.cursor("s") == "2026-11-21T10:07:49Z"
    store.close()


def test_instants_and_the_overlap_window() -> None:
    assert instant_epoch("2026-11-21T10:00:00Z") == instant_epoch("2026-11-21T11:00:00+01:00")
    assert _since("2026-11-21T10:00:03.250+00:00", 5) == "2026-11-21T09:59:58.250Z"


# -- poller ------------------------------------------------------------------------------------------


def test_a_pass_handles_every_page_then_moves_the_cursor(state: State, outcomes: dict[str, Any]) -> None:
    client = ScriptedClient([[observation(1), observation(2)], [observation(3)]])
    report = Poller(client, state, POLICY).poll_once()  # type: ignore[arg-type]
    assert (report.seen, report.written) == (3, 3)
    assert state.cursor(Poller(client, state, POLICY).server) == "2026-11-21T10:00:03.000+00:00"  # type: ignore[arg-type]
    again = Poller(client, state, POLICY).poll_once()  # type: ignore[arg-type]
    assert (again.seen, again.already, again.written) == (3, 3, 0)
    query = dict(Poller(client, state, POLICY).query())  # type: ignore[arg-type]
    assert query["_lastUpdated"] == "ge2026-11-21T09:55:03.000Z"  # cursor minus the 5-minute overlap
    assert query["_sort"] == "_lastUpdated"


def test_server_trouble_stops_the_pass_without_moving_the_cursor(
    state: State, outcomes: dict[str, Any]
) -> None:
    outcomes["o2"] = FhirUnavailable("FHIR server http://127.0.0.1:1/fhir unavailable")
    client = ScriptedClient([[observation(1), observation(2), observation(3)]])
    poller = Poller(client, state, POLICY, concurrency=1)  # type: ignore[arg-type]
    with pytest.raises(ServerTrouble, match="unavailable"):
        poller.poll_once()
    assert state.cursor(poller.server) is None
    assert state.handled(poller.server, "o1", "1") and not state.handled(poller.server, "o2", "1")
    outcomes["o2"] = FhirError("HTTP 503", status=503)
    with pytest.raises(ServerTrouble):
        poller.poll_once()
    del outcomes["o2"]
    report = poller.poll_once()
    assert (report.already, report.written) == (1, 2)
    assert state.cursor(poller.server) == "2026-11-21T10:00:03.000+00:00"


def test_the_cursor_never_passes_the_moment_of_the_search(state: State, outcomes: dict[str, Any]) -> None:
    """A later page shows an Observation edited during the pass with its new time; resources of a
    transaction still running when the search ran will appear with earlier times. Neither may be
    jumped over."""
    edited = {**observation(2), "meta": {"versionId": "2", "lastUpdated": "2026-11-21T10:05:00.000+00:00"}}
    client = ScriptedClient([[observation(1), edited]], searched_at="2026-11-21T10:01:00.000+00:00")
    poller = Poller(client, state, POLICY)  # type: ignore[arg-type]
    poller.poll_once()
    assert state.cursor(poller.server) == "2026-11-21T10:01:00.000+00:00"


@pytest.mark.parametrize("status", [401, 403, 404, 408, 409, 410, 429, 500, 503])
def test_answers_that_may_pass_are_never_recorded_as_skips(
    state: State, outcomes: dict[str, Any], status: int
) -> None:
    outcomes["o1"] = FhirError(f"HTTP {status}", status=status)
    poller = Poller(ScriptedClient([[observation(1)]]), state, POLICY)  # type: ignore[arg-type]
    with pytest.raises(ServerTrouble):
        poller.poll_once()
    assert not state.handled(poller.server, "o1", "1") and state.cursor(poller.server) is None


def test_unassessable_or_refused_observations_are_recorded_and_passed(
    state: State, outcomes: dict[str, Any]
) -> None:
    outcomes["o1"] = WritebackRefused(
        "Observation.valueQuantity.code: 'mg' is not a unit for an Agatston score"
    )
    outcomes["o2"] = FhirError("POST /fhir → HTTP 422: business rule", status=422)
    no_patient = {**observation(3), "subject": {"reference": "Group/g1"}}
    client = ScriptedClient([[observation(1), observation(2), no_patient, observation(4)]])
    poller = Poller(client, state, POLICY)  # type: ignore[arg-type]
    report = poller.poll_once()
    assert (report.skipped, report.written) == (3, 1)
    reasons = {e.observation: e.reason for e in state.entries(outcome="skipped")}
    assert "'mg' is not a unit" in (reasons["o1"] or "")
    assert "refused the write-back" in (reasons["o2"] or "") and "422" in (reasons["o2"] or "")
    assert "not a reference to a Patient" in (reasons["o3"] or "")
    assert state.cursor(poller.server) == "2026-11-21T10:00:04.000+00:00"


def test_a_patient_with_several_observations_on_a_page_is_handled_in_order(
    state: State, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, bool]] = []
    monkeypatch.setattr(poller_module, "fetch_patients", lambda client, ids: dict.fromkeys(ids, "data"))

    def write_back(
        client: Any, patient: str, policy: Any, *, scan_id: str, prefetched: Any, **_: Any
    ) -> WritebackResult:
        seen.append((scan_id, prefetched is not None))
        return WritebackResult(f"Patient/{patient}", scan_id, True)

    monkeypatch.setattr(poller_module, "write_back", write_back)
    page = [observation(1, "a"), observation(2, "b"), observation(3, "a")]
    Poller(ScriptedClient([page]), state, POLICY, concurrency=4).poll_once()  # type: ignore[arg-type]
    mine = [entry for entry in seen if entry[0] in ("o1", "o3")]
    # the prefetch serves a patient's first Observation only; the second reads fresh data
    assert mine == [("o1", True), ("o3", False)]


def test_a_notification_never_moves_the_cursor(state: State, outcomes: dict[str, Any]) -> None:
    """Else a notification for a new Observation would let the poller skip older unhandled ones."""
    client = ScriptedClient([])
    client.stored["o9"] = observation(9)
    poller = Poller(client, state, POLICY)  # type: ignore[arg-type]
    report = notify(poller, observation(9))
    assert report.written == 1 and state.handled(poller.server, "o9", "1")
    assert state.cursor(poller.server) is None


def test_a_notification_is_a_hint_the_server_says_what_the_observation_is(
    state: State, outcomes: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A forged body (another version, another patient) cannot put a version into the ledger."""
    seen: list[tuple[str, str]] = []
    real = poller_module.write_back

    def recording(client: Any, patient: str, policy: Any, **kwargs: Any) -> WritebackResult:
        seen.append((patient, kwargs["scan_id"]))
        return real(client, patient, policy, **kwargs)

    monkeypatch.setattr(poller_module, "write_back", recording)
    client = ScriptedClient([])
    client.stored["o9"] = observation(9, patient="p9", version="1")
    poller = Poller(client, state, POLICY)  # type: ignore[arg-type]
    forged = observation(9, patient="nobody-here", version="2")
    assert notify(poller, forged).written == 1
    assert seen == [("p9", "o9")]
    assert state.handled(poller.server, "o9", "1") and not state.handled(poller.server, "o9", "2")
    # the lab's correction, version 2, is still new work
    client.stored["o9"] = observation(9, patient="p9", version="2")
    assert notify(poller, observation(9, patient="p9", version="2")).written == 1


def test_a_notification_for_an_observation_the_server_never_had_changes_nothing(
    state: State, outcomes: dict[str, Any]
) -> None:
    poller = Poller(ScriptedClient([]), state, POLICY)  # type: ignore[arg-type]
    report = notify(poller, observation(7, patient="someone-else", version="9"))
    assert (report.already, report.written, report.skipped) == (1, 0, 0)
    assert state.entries() == []  # nothing recorded: a later real o7 is new work


def test_a_pass_checks_the_patients_it_wrote_for_a_second_active_plan_in_one_search(
    state: State, outcomes: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A notification's write-back for the same patient may have committed meanwhile."""
    repaired: list[str] = []
    monkeypatch.setattr(
        poller_module,
        "repair_plans",
        lambda client, patient, *a, **k: repaired.append(patient) or ["CarePlan/x"],
    )
    client = ScriptedClient([[observation(1), observation(2), observation(3, patient="p2")]])
    poller = Poller(client, state, POLICY)  # type: ignore[arg-type]
    poller.poll_once()  # the first pass: its heal search sets its cursor
    client.plan_queries.clear()
    client.pages = [[observation(4), observation(5, patient="p4")]]
    client.active_plans = [{"subject": {"reference": "Patient/p4"}}] * 2 + [
        {"subject": {"reference": "Patient/p9"}}
    ]
    report = poller.poll_once()
    chunk = [q for q in client.plan_queries if "patient" in q]
    assert [q["patient"] for q in chunk] == ["Patient/p4"]  # one search for the chunk's patients
    assert set(repaired) == {"p4"}  # p9 has one active plan: left alone
    assert report.repaired == len(repaired)  # the heal search and the chunk's check each found p4


def test_a_scan_dated_after_now_is_deferred_not_recorded_then_retried_when_due(
    state: State, outcomes: dict[str, Any]
) -> None:
    due = datetime(2026, 12, 5, 9, 50, tzinfo=UTC)
    outcomes["o9"] = WritebackDeferred("dated 2026-12-05T10:00:00Z, after now", due)
    now = [datetime(2026, 12, 3, 10, 0, tzinfo=UTC)]
    client = ScriptedClient([[observation(9)]])
    client.stored["o9"] = observation(9)
    poller = Poller(client, state, POLICY, clock=lambda: now[0])  # type: ignore[arg-type]
    first = poller.poll_once()
    assert first.deferred == 1 and first.skipped == 0
    assert not state.handled(poller.server, "o9", "1")
    assert state.deferred(poller.server)["o9"][1] == due.timestamp()
    client.pages = []
    assert poller.poll_once().seen == 0  # not due yet: not even read
    del outcomes["o9"]
    now[0] = datetime(2026, 12, 5, 9, 51, tzinfo=UTC)
    assert poller.poll_once().written == 1
    assert state.handled(poller.server, "o9", "1") and state.deferred(poller.server) == {}


def test_patient_of_reads_plain_patient_references_only() -> None:
    assert patient_of({"subject": {"reference": "Patient/p1"}}) == "p1"
    assert patient_of({"subject": {"reference": "http://127.0.0.1/fhir/Patient/p1/_history/2"}}) == "p1"
    assert patient_of({"patient": {"reference": "Patient/p2"}}) == "p2"  # FamilyMemberHistory
    assert patient_of({"subject": {"reference": "Group/g"}}) is None
    assert patient_of({"subject": {"display": "someone"}}) is None
    assert patient_of({"subject": "Patient/p1"}) is None


def test_subscription_resource_asks_for_every_cac_code() -> None:
    resource = subscription_resource("http://127.0.0.1:9/fhir-hook", token="s3cret")
    assert resource["criteria"] == CRITERIA and CRITERIA.count("|") == 3
    assert resource["channel"]["header"] == ["Authorization: Bearer s3cret"]
    assert "payload" not in subscription_resource("http://127.0.0.1:9/fhir-hook", payload=False)["channel"]


# -- settings and the hook endpoint -----------------------------------------------------------------


def test_settings_for_the_worker() -> None:
    settings = Settings.from_env({"FHIRCAC_FHIR_BASE_URL": "http://127.0.0.1:8090/fhir/"})
    assert settings.servers() == ("http://127.0.0.1:8090/fhir",)
    several = Settings.from_env({"FHIRCAC_POLL_SERVERS": "http://127.0.0.1:1/fhir, http://127.0.0.1:2/fhir"})
    assert several.servers() == ("http://127.0.0.1:1/fhir", "http://127.0.0.1:2/fhir")
    assert Settings.from_env({"FHIRCAC_HOOK_AUTH": "off"}).hook_auth is False
    with pytest.raises(ConfigError, match="FHIRCAC_HOOK_AUTH"):
        Settings.from_env({"FHIRCAC_HOOK_AUTH": "maybe"})
    with pytest.raises(ConfigError, match="FHIRCAC_POLL_INTERVAL"):
        Settings.from_env({"FHIRCAC_POLL_INTERVAL": "0"})


def test_hook_answers_in_operation_outcomes() -> None:
    unconfigured = create_app(Settings()).test_client()
    response = unconfigured.post("/fhir-hook")
    assert response.status_code == 503 and "FHIRCAC_FHIR_BASE_URL" in response.get_data(as_text=True)

    settings = Settings(fhir_base_url="http://127.0.0.1:1/fhir", hook_token="right")
    app = create_app(settings).test_client()
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "right"}):
        answer = app.post("/fhir-hook", headers=headers)
        assert answer.status_code == 401 and answer.get_json()["resourceType"] == "OperationOutcome"
    no_token_set = create_app(Settings(fhir_base_url="http://127.0.0.1:1/fhir")).test_client()
    assert no_token_set.post("/fhir-hook", headers={"Authorization": "Bearer "}).status_code == 401
    headers = {"Authorization": "Bearer right"}
    for body in (
        {"resourceType": "Observation", "id": "x", "meta": "bad"},
        {"resourceType": "Observation", "id": "x", "subject": ["Patient/p"]},
    ):
        answer = app.put("/fhir-hook/Observation/x", json=body, headers=headers)
        assert answer.status_code == 400 and "must be a JSON object" in answer.get_data(as_text=True)
