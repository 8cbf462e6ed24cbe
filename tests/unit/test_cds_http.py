"""The CDS Hooks HTTP surface in-process: client JWTs, errors, CORS, feedback and its summary."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from fhircac.config import ConfigError, Settings
from fhircac.web.app import create_app
from tests import cds_builders as cb
from tests import fhir_builders as fb

BASE = "http://localhost"
VIEW = "/cds-services/cac-patient-view"
KEYS = ["patient", "cacScores", "observations", "medicationStatements", "medicationRequests"]
KEYS += ["conditions", "procedures", "familyHistory", "cacCarePlans"]


@pytest.fixture(scope="module")
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


@pytest.fixture
def settings(tmp_path: Path, key: ec.EllipticCurvePrivateKey) -> Settings:
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    clients = {"clients": [{"iss": "https://ehr.test", "jwks": {"keys": [{**public, "kid": "k1"}]}}]}
    path = tmp_path / "clients.json"
    path.write_text(json.dumps(clients))
    return Settings(
        cds_clients_file=str(path),
        cds_db=str(tmp_path / "cds.sqlite"),
        max_body_bytes=64 * 1024,
        public_base_url=BASE,
    )


@pytest.fixture
def client(settings: Settings) -> Any:
    return create_app(settings).test_client()


def auth(key: Any, path: str, **claims: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {cb.client_token(key, BASE + path, **claims)}"}


def view_body() -> dict[str, Any]:
    return cb.request("patient-view", "p1", [fb.patient(), fb.cac(value=150)], KEYS)


def test_discovery_and_calls_need_a_valid_token(client: Any, key: Any) -> None:
    assert client.get("/cds-services").status_code == 401
    assert client.get("/cds-services", headers=auth(key, "/cds-services")).status_code == 200
    assert client.post(VIEW, json=view_body()).status_code == 401
    response = client.post(VIEW, json=view_body(), headers=auth(key, VIEW))
    assert response.status_code == 200 and response.get_json()["cards"]


def test_401_says_nothing_about_why(client: Any, key: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="fhircac.web.cds")
    bodies = []
    for headers in (
        {},
        {"Authorization": "Basic dXNlcjpwdw=="},
        auth(key, "/cds-services"),  # audience of another endpoint
        auth(key, VIEW, iss="https://stranger.test"),
        auth(key, VIEW, lifetime=-600),  # expired
        {"Authorization": "Bearer " + jwt.encode({"iss": "https://ehr.test"}, "s" * 48, algorithm="HS256")},
    ):
        response = client.post(VIEW, json=view_body(), headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        bodies.append(response.get_json())
    assert all(body == bodies[0] for body in bodies)  # one answer for every cause
    assert "diagnostics" not in json.dumps(bodies[0])
    assert any("audience" in r.getMessage().lower() or "aud" in r.getMessage() for r in caplog.records)


def test_a_replayed_token_is_refused(client: Any, key: Any) -> None:
    headers = auth(key, VIEW)
    assert client.post(VIEW, json=view_body(), headers=headers).status_code == 200
    assert client.post(VIEW, json=view_body(), headers=headers).status_code == 401


def test_public_base_url_sets_the_audience(settings: Settings, key: Any) -> None:
    behind_proxy = create_app(
        Settings(**{**settings.__dict__, "public_base_url": "https://cds.hospital.example/fhircac"})
    ).test_client()
    assert behind_proxy.get("/cds-services", headers=auth(key, "/cds-services")).status_code == 401
    token = cb.client_token(key, "https://cds.hospital.example/fhircac/cds-services")
    response = behind_proxy.get("/cds-services", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


def test_bad_bodies_get_400_naming_the_problem(client: Any, key: Any) -> None:
    cases = [
        (b"{not json", "not JSON"),
        (b"", "empty"),
        (b'{"hook": "patient-view", "hook": "x"}', "appears twice"),
        (json.dumps({"hook": "patient-view", "context": {}}).encode(), "hookInstance"),
        (json.dumps({**view_body(), "hook": "order-sign"}).encode(), "a patient-view service"),
        (
            json.dumps({**view_body(), "context": {"userId": "Practitioner/1", "patientId": "a b"}}).encode(),
            "patientId",
        ),
        (
            json.dumps({**view_body(), "fhirAuthorization": {"access_token": "t"}}).encode(),
            "fhirAuthorization",
        ),
        (json.dumps({**view_body(), "fhirServer": "http://ehr.example/fhir"}).encode(), "https"),
        (json.dumps({**view_body(), "prefetch": {"patient": [1]}}).encode(), "prefetch.patient"),
        (b"[" * 50_000, "nested too deeply"),
        (b'{"x": "' + b"a" * 70 * 1024 + b'"}', "larger than the limit of 65536 bytes"),
    ]
    for raw, expected in cases:
        response = client.post(
            VIEW, data=raw, headers={**auth(key, VIEW), "Content-Type": "application/json"}
        )
        assert response.status_code == 400, (raw[:60], response.get_json())
        assert response.mimetype == "application/json"
        text = json.dumps(response.get_json())
        assert expected in text, (expected, text)


def test_unknown_service_is_404_after_authentication(client: Any, key: Any) -> None:
    assert client.post("/cds-services/nope", json=view_body()).status_code == 401
    response = client.post("/cds-services/nope", json=view_body(), headers=auth(key, "/cds-services/nope"))
    assert response.status_code == 404 and "GET /cds-services" in json.dumps(response.get_json())


def test_cors_preflight_and_headers_for_browser_clients(client: Any, key: Any) -> None:
    preflight = client.options(
        VIEW,
        headers={
            "Origin": "https://sandbox.cds-hooks.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] in ("*", "https://sandbox.cds-hooks.org")
    allowed = preflight.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    answer = client.get(
        "/cds-services", headers={**auth(key, "/cds-services"), "Origin": "https://sandbox.cds-hooks.org"}
    )
    assert answer.headers["Access-Control-Allow-Origin"] in ("*", "https://sandbox.cds-hooks.org")


def test_cors_origins_can_be_restricted(settings: Settings) -> None:
    app = create_app(Settings(**{**settings.__dict__, "cors_origins": ("https://ehr.hospital.example",)}))
    client = app.test_client()
    headers = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    assert "Access-Control-Allow-Origin" not in client.options(VIEW, headers=headers).headers
    headers["Origin"] = "https://ehr.hospital.example"
    assert (
        client.options(VIEW, headers=headers).headers["Access-Control-Allow-Origin"]
        == "https://ehr.hospital.example"
    )


def test_feedback_is_stored_once_and_summarised_per_card_kind(client: Any, key: Any) -> None:
    cards = client.post(VIEW, json=view_body(), headers=auth(key, VIEW)).get_json()["cards"]
    summary_card = cards[0]
    lpa_card = next(c for c in cards if c["source"]["topic"]["code"] == "lpa-measure-once")
    feedback_path = VIEW + "/feedback"
    accepted = {
        "card": lpa_card["uuid"],
        "outcome": "accepted",
        "acceptedSuggestions": [{"id": lpa_card["suggestions"][0]["uuid"]}],
        "outcomeTimestamp": "2026-11-21T10:05:31.123Z",
    }
    overridden = {
        "card": summary_card["uuid"],
        "outcome": "overridden",
        # The sandbox sends the reason without display; older builds send a bare Coding.
        "overrideReason": {
            "reason": {"code": "already-addressed", "system": summary_card["overrideReasons"][0]["system"]}
        },
        "outcomeTimestamp": "2026-11-21T10:06:00Z",
    }
    body = {"feedback": [accepted, overridden]}
    first = client.post(feedback_path, json=body, headers=auth(key, feedback_path))
    assert first.status_code == 200 and first.get_json() == {"stored": 2, "already_stored": 0}
    again = client.post(feedback_path, json=body, headers=auth(key, feedback_path))
    assert again.get_json() == {"stored": 0, "already_stored": 2}
    # The same moment with another offset, and a suggestion listed twice, are still the same feedback.
    shifted = {**accepted, "outcomeTimestamp": "2026-11-21T11:05:31.123+01:00"}
    shifted["acceptedSuggestions"] = accepted["acceptedSuggestions"] * 2
    repeat = client.post(feedback_path, json={"feedback": [shifted]}, headers=auth(key, feedback_path))
    assert repeat.get_json() == {"stored": 0, "already_stored": 1}
    summary = client.get("/cds-feedback/summary").get_json()
    kinds = summary["services"]["cac-patient-view"]["cards"]
    assert kinds["lpa-once"]["issued"] == 1 and kinds["lpa-once"]["accepted"] == 1
    assert kinds["lpa-once"]["suggestions_accepted"] == {"order-lpa": 1}
    assert kinds["lpa-once"]["acceptance_rate"] == 1.0
    assert kinds["cac-summary"]["overridden"] == 1 and kinds["cac-summary"]["acceptance_rate"] == 0.0
    assert kinds["cac-summary"]["override_reasons"] == {"already-addressed": 1}
    assert summary["unattributed_feedback"] == 0
    assert "p1" not in json.dumps(summary)  # no patient data in the summary


def test_feedback_problems_get_400(client: Any, key: Any) -> None:
    path = VIEW + "/feedback"
    cards = client.post(VIEW, json=view_body(), headers=auth(key, VIEW)).get_json()["cards"]
    base = {"card": cards[0]["uuid"], "outcomeTimestamp": "2026-11-21T10:05:31Z"}
    cases = [
        ({"feedback": [{**base, "outcome": "accepted"}]}, "acceptedSuggestions"),  # cds-fb-2
        ({"feedback": [{**base, "outcome": "ignored"}]}, "outcome"),  # cds-fb-1
        (
            {"feedback": [{**base, "outcome": "overridden", "overrideReason": {}}]},
            "overrideReason",
        ),  # cds-fb-3
        (
            {"feedback": [{**base, "outcome": "overridden", "outcomeTimestamp": "yesterday"}]},
            "outcomeTimestamp",
        ),
        (
            {"feedback": [{**base, "outcome": "accepted", "acceptedSuggestions": [{"id": "not-its"}]}]},
            "not one of",
        ),
        ({"feedback": []}, "feedback"),
        (
            {"feedback": [{**base, "outcome": "overridden", "outcomeTimestamp": "2026-11-21T25:00:00Z"}]},
            "valid time",
        ),
    ]
    for body, expected in cases:
        response = client.post(path, json=body, headers=auth(key, path))
        assert response.status_code == 400, body
        assert expected in json.dumps(response.get_json()), (expected, response.get_json())
    other = "/cds-services/cac-order-sign/feedback"
    response = client.post(
        other, json={"feedback": [{**base, "outcome": "overridden"}]}, headers=auth(key, other)
    )
    assert response.status_code == 400 and "cac-patient-view" in json.dumps(response.get_json())


def test_feedback_on_an_unknown_card_is_kept_apart(client: Any, key: Any) -> None:
    path = VIEW + "/feedback"
    body = {
        "feedback": [
            {
                "card": "0b1e7b64-6b35-4c37-9d1b-7c3f1b8e2a10",
                "outcome": "overridden",
                "outcomeTimestamp": "2026-11-21T10:05:31Z",
            }
        ]
    }
    assert client.post(path, json=body, headers=auth(key, path)).status_code == 200
    assert client.get("/cds-feedback/summary").get_json()["unattributed_feedback"] == 1


def test_verification_off_is_logged_as_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    client = create_app(Settings(cds_auth=False, cds_db=str(tmp_path / "cds.sqlite"))).test_client()
    assert client.get("/cds-services").status_code == 200
    assert any("verification is OFF" in r.getMessage() for r in caplog.records)


def test_no_trusted_clients_refuses_everyone_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    client = create_app(Settings(cds_db=str(tmp_path / "cds.sqlite"))).test_client()
    assert client.get("/cds-services").status_code == 401
    assert any("FHIRCAC_CDS_CLIENTS unset" in r.getMessage() for r in caplog.records)


def test_trusted_clients_need_the_public_base_url_not_the_host_header(settings: Settings, key: Any) -> None:
    with pytest.raises(ConfigError, match="FHIRCAC_PUBLIC_BASE_URL"):
        create_app(Settings(**{**settings.__dict__, "public_base_url": None}))
    client = create_app(settings).test_client()
    # A token for another service at the same path, sent with that service's Host: still refused.
    token = cb.client_token(key, "https://other-vendor.example" + VIEW)
    headers = {"Authorization": f"Bearer {token}", "Host": "other-vendor.example"}
    assert client.post(VIEW, json=view_body(), headers=headers).status_code == 401


def test_a_broken_clients_file_stops_the_service_at_start(tmp_path: Path) -> None:
    path = tmp_path / "clients.json"
    path.write_text('{"clients": [{"iss": "x"}]}')
    with pytest.raises(ConfigError, match="FHIRCAC_CDS_CLIENTS"):
        create_app(
            Settings(cds_clients_file=str(path), cds_db=str(tmp_path / "cds.sqlite"), public_base_url=BASE)
        )


def test_settings_read_the_cds_environment() -> None:
    settings = Settings.from_env(
        {
            "FHIRCAC_CDS_CLIENTS": "/etc/fhircac/clients.json",
            "FHIRCAC_CDS_AUTH": "off",
            "FHIRCAC_PUBLIC_BASE_URL": "https://cds.example/fhircac/",
            "FHIRCAC_CORS_ORIGINS": "https://a.example, https://b.example",
        }
    )
    assert settings.cds_clients_file == "/etc/fhircac/clients.json" and settings.cds_auth is False
    assert settings.public_base_url == "https://cds.example/fhircac"
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    with pytest.raises(ConfigError, match="FHIRCAC_PUBLIC_BASE_URL"):
        Settings.from_env({"FHIRCAC_PUBLIC_BASE_URL": "cds.example"})
    with pytest.raises(ConfigError, match="FHIRCAC_CDS_AUTH"):
        Settings.from_env({"FHIRCAC_CDS_AUTH": "maybe"})


def test_rules_page_has_an_anchor_for_every_rule_cards_cite(client: Any, key: Any) -> None:
    page = client.get("/rules")
    assert page.status_code == 200 and page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    cards = client.post(VIEW, json=view_body(), headers=auth(key, VIEW)).get_json()["cards"]
    for card in cards:
        anchor = card["source"]["url"].split("#", 1)[1]
        assert f"id='{anchor}'" in text, anchor
    assert "id='scan-order-too-soon'" in text and "id='acc-aha-2018'" in text
