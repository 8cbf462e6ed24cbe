"""CDS feedback: every distinct item is stored (override reason and comment are part of it), and
the summary counts cards by their outcome, as a real client (the CDS Hooks sandbox) reports them."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from fhircac.config import Settings
from fhircac.fhir import codes
from fhircac.web.app import create_app
from tests import cds_builders as cb
from tests import fhir_builders as fb

VIEW = "/cds-services/cac-patient-view"
KEYS = ["patient", "cacScores", "observations", "medicationStatements", "medicationRequests"]
KEYS += ["conditions", "procedures", "familyHistory", "cacCarePlans"]
AT = "2026-12-03T10:05:31Z"


@pytest.fixture
def client(tmp_path: Path) -> Any:
    return create_app(Settings(cds_auth=False, cds_db=str(tmp_path / "cds.sqlite"))).test_client()


def cards(client: Any) -> dict[str, dict[str, Any]]:
    """The patient-view cards by kind: the summary card comes first, the Lp(a) card names its rule."""
    body = cb.request("patient-view", "p1", [fb.patient(), fb.cac(value=150)], KEYS)
    answer = client.post(VIEW, json=body).get_json()["cards"]
    lpa = next(card for card in answer if card["source"]["topic"]["code"] == "lpa-measure-once")
    return {"cac-summary": answer[0], "lpa-once": lpa}


def send(client: Any, *items: dict[str, Any]) -> dict[str, int]:
    answer = client.post(f"{VIEW}/feedback", json={"feedback": list(items)})
    assert answer.status_code == 200, answer.get_json()
    result: dict[str, int] = answer.get_json()
    return result


def override(card: dict[str, Any], code: str | None = None, comment: str | None = None) -> dict[str, Any]:
    reason: dict[str, Any] = {}
    if code:
        reason["reason"] = {"code": code, "system": codes.OVERRIDE_REASON}
    if comment:
        reason["userComment"] = comment
    item = {"card": card["uuid"], "outcome": "overridden", "outcomeTimestamp": AT}
    return {**item, "overrideReason": reason} if reason else item


def kinds(client: Any) -> dict[str, Any]:
    summary: dict[str, Any] = client.get("/cds-feedback/summary").get_json()
    return summary["services"]["cac-patient-view"]["cards"]


def test_feedback_differing_only_in_reason_or_comment_is_kept(client: Any) -> None:
    card = cards(client)["lpa-once"]
    assert send(client, override(card)) == {"stored": 1, "already_stored": 0}
    assert send(client, override(card, comment="discussed by phone")) == {"stored": 1, "already_stored": 0}
    both = override(card, "patient-declined", "A comment")
    assert send(client, both) == {"stored": 1, "already_stored": 0}
    assert send(client, both, override(card)) == {"stored": 0, "already_stored": 2}  # the same items again
    entry = kinds(client)["lpa-once"]
    assert entry["feedback_items"] == 3
    # one card, overridden three times: one overridden card, with its last reason
    assert (entry["overridden"], entry["override_reasons"]) == (1, {"patient-declined": 1})


def test_accept_then_dismiss_counts_one_accepted_card(client: Any) -> None:
    """The sandbox: accepting a suggestion leaves the card up; Dismiss then sends an override."""
    found = cards(client)
    for kind in ("cac-summary", "lpa-once"):
        card = found[kind]
        assert card["suggestions"], card
        accepted = {
            "card": card["uuid"],
            "outcome": "accepted",
            "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
            "outcomeTimestamp": "2026-12-03T10:05:00Z",
        }
        send(client, accepted, override(card, "already-addressed"))
    summary = kinds(client)
    for kind in ("cac-summary", "lpa-once"):
        entry = summary[kind]
        assert (entry["issued"], entry["accepted"], entry["overridden"]) == (1, 1, 0), entry
        assert entry["acceptance_rate"] == 1.0 and entry["feedback_items"] == 2
        assert sum(entry["suggestions_accepted"].values()) == 1
        assert entry["accepted"] + entry["overridden"] <= entry["issued"]


def test_a_store_made_before_items_were_distinct_is_migrated_with_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "cds.sqlite"
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE feedback (id INTEGER PRIMARY KEY, service TEXT NOT NULL, card TEXT NOT NULL,
            outcome TEXT NOT NULL CHECK (outcome IN ('accepted', 'overridden')),
            outcome_timestamp TEXT NOT NULL, accepted_suggestions TEXT NOT NULL,
            override_system TEXT, override_code TEXT, user_comment TEXT, received_at REAL NOT NULL,
            UNIQUE (service, card, outcome, outcome_timestamp, accepted_suggestions));
        INSERT INTO feedback VALUES (1, 'cac-patient-view', 'c1', 'overridden', '2026-12-03T10:05:31.000Z',
            '[]', NULL, NULL, NULL, 0);
        """
    )
    old.commit()
    old.close()
    client = create_app(Settings(cds_auth=False, cds_db=str(path))).test_client()
    item = {"card": "c1", "outcome": "overridden", "outcomeTimestamp": AT}
    assert send(client, item) == {"stored": 0, "already_stored": 1}  # the old row is still there
    commented = {**item, "overrideReason": {"userComment": "x"}}
    assert send(client, commented) == {"stored": 1, "already_stored": 0}
    assert client.get("/cds-feedback/summary").get_json()["unattributed_feedback"] == 2


def test_feedback_diagnostics_say_what_is_wrong_without_dumping_the_item(client: Any) -> None:
    card = cards(client)["lpa-once"]
    suggestion = [{"id": card["suggestions"][0]["uuid"]}]
    both = {**override(card, comment="x"), "acceptedSuggestions": suggestion}
    answer = client.post(f"{VIEW}/feedback", json={"feedback": [both]})
    assert answer.status_code == 400
    (issue,) = answer.get_json()["issue"]
    assert "acceptedSuggestions is not allowed with outcome 'overridden'" in issue["diagnostics"]
    assert card["uuid"] not in issue["diagnostics"]
    empty = {**override(card), "overrideReason": {"x": 1}}
    answer = client.post(f"{VIEW}/feedback", json={"feedback": [empty]})
    assert "give reason, or userComment, or code and system" in answer.get_json()["issue"][0]["diagnostics"]


def test_an_acceptance_may_carry_a_comment(client: Any) -> None:
    """The spec's invariants do not forbid it; the card still counts as accepted."""
    card = cards(client)["lpa-once"]
    item = {
        "card": card["uuid"],
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": card["suggestions"][0]["uuid"]}],
        "overrideReason": {"userComment": "ordered for next week"},
        "outcomeTimestamp": AT,
    }
    assert send(client, item) == {"stored": 1, "already_stored": 0}
    assert kinds(client)["lpa-once"]["accepted"] == 1
