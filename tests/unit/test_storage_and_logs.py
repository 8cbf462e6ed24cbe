"""fhircac's own files and logs (review finding 9): retention of issued cards, storage faults answered
503 with a reason (never 401 or a bare 500), /healthz reporting storage, a readable CLI error, and
gunicorn's error log without query strings or identifying paths."""

from __future__ import annotations

import json
import logging
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from gunicorn.config import Config

from fhircac import storage
from fhircac.cdshooks.cards import Card, Source
from fhircac.cdshooks.feedback import FeedbackStore
from fhircac.config import Settings
from fhircac.web.access_log import RedactingLogger
from fhircac.web.app import create_app
from tests import cds_builders as cb
from tests import fhir_builders as fb

DAY = 86_400.0
VIEW = "/cds-services/cac-patient-view"
KEYS = ["patient", "cacScores", "observations", "medicationStatements", "medicationRequests"]
KEYS += ["conditions", "procedures", "familyHistory", "cacCarePlans"]


def card(uuid: str) -> Card:
    return Card(kind="cac-summary", summary="CAC 120", indicator="info", source=Source("fhircac"), uuid=uuid)


def rows(path: Path, table: str) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_issued_cards_and_feedback_expire_after_the_retention(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review finding 15: the card and suggestion tables grew ~0.45 kB per card, forever."""
    path = tmp_path / "cds.sqlite"
    store = FeedbackStore(path, retention_days=30)
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now - 31 * DAY)
    store.record_cards("cac-patient-view", [card("old-1"), card("old-2")])
    item = {"card": "old-1", "outcome": "overridden", "outcomeTimestamp": "2026-01-01T10:00:00Z"}
    store.record_feedback("cac-patient-view", [item])
    monkeypatch.setattr(time, "time", lambda: now - 29 * DAY)
    store.record_cards("cac-patient-view", [card("recent")])
    assert (rows(path, "card"), rows(path, "feedback")) == (3, 1)
    monkeypatch.setattr(time, "time", lambda: now)
    assert store.purge() == 3  # two cards and their feedback
    assert rows(path, "card") == 1
    assert store.summary()["services"]["cac-patient-view"]["cards"]["cac-summary"]["issued"] == 1
    # a new process purges what expired meanwhile on the first cards it records
    later = FeedbackStore(path, retention_days=1)
    later.record_cards("cac-patient-view", [card("new")])
    assert rows(path, "card") == 1


def test_retention_comes_from_the_environment() -> None:
    assert Settings.from_env({}).cds_retention_days == 30
    assert Settings.from_env({"FHIRCAC_CDS_RETENTION_DAYS": "7"}).cds_retention_days == 7
    with pytest.raises(ValueError, match="FHIRCAC_CDS_RETENTION_DAYS"):
        Settings.from_env({"FHIRCAC_CDS_RETENTION_DAYS": "0"})


def test_a_locked_store_gives_up_well_before_the_worker_timeout(tmp_path: Path) -> None:
    path = tmp_path / "cds.sqlite"
    store = FeedbackStore(path)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    started = time.monotonic()
    try:
        with pytest.raises(storage.StorageError, match="locked by another process"):
            store.record_cards("cac-patient-view", [card("c1")])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert storage.BUSY_TIMEOUT_SECONDS < 30  # gunicorn's worker timeout
    assert time.monotonic() - started < 30


def damaged(path: Path) -> Path:
    path.write_bytes(b"this is not an SQLite database " * 200)
    return path


def test_a_damaged_cds_store_answers_503_with_the_reason_and_healthz_says_so(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP384R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    clients = tmp_path / "clients.json"
    entry = {"iss": "https://ehr.test", "jwks": {"keys": [{**public, "kid": "k1"}]}}
    clients.write_text(json.dumps({"clients": [entry]}))
    settings = Settings(
        cds_db=str(damaged(tmp_path / "cds.sqlite")),
        cds_clients_file=str(clients),
        public_base_url="http://localhost",
    )
    client = create_app(settings).test_client()  # starts: it used to fail to boot
    health = client.get("/healthz")
    assert health.status_code == 503 and health.get_json()["status"] == "degraded"
    assert "not an SQLite database" in health.get_json()["storage"]["cds"]
    body = cb.request("patient-view", "p1", [fb.patient(), fb.cac(value=150)], KEYS)
    token = cb.client_token(key, "http://localhost" + VIEW)
    answer = client.post(VIEW, json=body, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 503  # was 401: the caller's token was fine
    issue = answer.get_json()["issue"][0]
    assert issue["code"] == "transient" and "FHIRCAC_CDS_DB" in issue["diagnostics"]
    assert answer.headers["Retry-After"]


def test_a_damaged_state_file_answers_notifications_503_and_healthz_says_so(tmp_path: Path) -> None:
    settings = Settings(
        cds_db=str(tmp_path / "cds.sqlite"),
        fhir_base_url="http://127.0.0.1:1/fhir",
        hook_token="t" * 32,
        state_file=str(damaged(tmp_path / "state.sqlite")),
    )
    client = create_app(settings).test_client()
    health = client.get("/healthz").get_json()
    assert health["storage"]["cds"] == "ok" and "not an SQLite database" in health["storage"]["state"]
    observation = {**fb.cac(id="o1"), "meta": {"versionId": "1"}}
    answer = client.put(
        "/fhir-hook/Observation/o1", json=observation, headers={"Authorization": f"Bearer {'t' * 32}"}
    )
    assert answer.status_code == 503  # was a 500 for every notification
    assert "not an SQLite database" in answer.get_json()["issue"][0]["diagnostics"]


def test_healthz_is_ok_when_storage_is(tmp_path: Path) -> None:
    client = create_app(Settings(cds_db=str(tmp_path / "cds.sqlite"))).test_client()
    answer = client.get("/healthz")
    assert answer.status_code == 200 and answer.get_json()["storage"] == {"cds": "ok"}


def test_the_cli_names_a_damaged_state_file_in_one_line(tmp_path: Path) -> None:
    state = damaged(tmp_path / "state.sqlite")
    env = {"FHIRCAC_FHIR_BASE_URL": "http://127.0.0.1:1/fhir", "FHIRCAC_STATE_FILE": str(state)}
    done = subprocess.run(
        [sys.executable, "-m", "fhircac", "poll", "--once"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert f"the state file {state} cannot be used: not an SQLite database" in done.stderr


def test_gunicorns_error_log_holds_no_query_string_and_no_identifying_path() -> None:
    """Review finding 10: 'Error handling request GET /report/cac-ex06?access=eyJ…' opened the
    patient's report for whoever read the log; debug level logged every path."""
    logger = RedactingLogger(Config())
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger.error_log.addHandler(Keep())
    logger.error_log.setLevel(logging.DEBUG)
    try:
        raise RuntimeError("worker aborted")
    except RuntimeError:
        logger.exception("Error handling request %s %s", "GET", "/report/cac-ex06?access=eyJhbGciOi.x.y")
    logger.debug("%s %s", "PUT", "/fhir-hook/Observation/lock-f070da-s1")
    logger.info("Error handling request /report/victim-1?access=abc")
    text = "\n".join(record.getMessage() for record in records)
    for secret in ("access=", "eyJ", "cac-ex06", "lock-f070da", "victim-1"):
        assert secret not in text, secret
    assert "GET /report/…?…" in text and "/fhir-hook/Observation/…" in text


def test_the_request_schema_is_still_what_the_web_layer_uses(tmp_path: Path) -> None:
    """Sanity: a valid call with a healthy store still gets its cards."""
    client = create_app(Settings(cds_auth=False, cds_db=str(tmp_path / "cds.sqlite"))).test_client()
    body: dict[str, Any] = cb.request("patient-view", "p1", [fb.patient(), fb.cac(value=150)], KEYS)
    assert client.post(VIEW, json=body).status_code == 200
