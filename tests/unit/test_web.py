"""The Flask app in-process: routes and the OperationOutcome shape of every error."""

import json

import pytest
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st

from fhircac.config import ConfigError, Settings
from fhircac.web.app import create_app


@pytest.fixture
def client() -> FlaskClient:
    return create_app(Settings(max_body_bytes=4096)).test_client()


def outcome(response) -> list[str]:  # type: ignore[no-untyped-def]
    assert response.mimetype == "application/fhir+json"
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    return [issue["diagnostics"] for issue in body["issue"]]


def test_health(client: FlaskClient) -> None:
    assert client.get("/healthz").get_json()["status"] == "ok"


def test_calc(client: FlaskClient) -> None:
    response = client.post("/calc", json={"cac": 120, "age": 62, "sex": "female", "race": "black"})
    assert response.status_code == 200
    assert response.get_json()["percentile"]["value"] == 91


def test_calc_bad_values_name_each_field(client: FlaskClient) -> None:
    response = client.post("/calc", json={"cac": "abc", "age": 200, "colour": "red"})
    assert response.status_code == 400
    diagnostics = outcome(response)
    assert any(d.startswith("colour:") for d in diagnostics)


def test_calc_impossible_score(client: FlaskClient) -> None:
    response = client.post("/calc", json={"cac": -4})
    assert response.status_code == 400 and outcome(response)[0].startswith("cac:")


@pytest.mark.parametrize("body", [b"{not json", b"\xff\xfe", b"[]", b"null"])
def test_calc_malformed_bodies(client: FlaskClient, body: bytes) -> None:
    response = client.post("/calc", data=body, content_type="application/json")
    assert response.status_code == 400
    assert outcome(response)


def test_calc_wrong_content_type(client: FlaskClient) -> None:
    response = client.post("/calc", data="cac=10", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415 and outcome(response)


def test_oversized_body(client: FlaskClient) -> None:
    response = client.post(
        "/calc", data=json.dumps({"id": "x" * 5000, "cac": 1}), content_type="application/json"
    )
    assert response.status_code == 413 and outcome(response)


def test_unknown_route_and_method(client: FlaskClient) -> None:
    assert client.get("/nope").status_code == 404 and outcome(client.get("/nope"))
    assert client.get("/calc").status_code == 405


def test_settings_from_env() -> None:
    settings = Settings.from_env({"FHIRCAC_PORT": "9000", "FHIRCAC_POLICY": "lifestyle-first"})
    assert (settings.port, settings.policy, settings.host) == (9000, "lifestyle-first", "127.0.0.1")
    for bad in ({"FHIRCAC_PORT": "eighty"}, {"FHIRCAC_PORT": "70000"}, {"FHIRCAC_POLICY": "nope"}):
        with pytest.raises(ConfigError):
            Settings.from_env(bad)


def test_service_policy_applies_when_the_body_names_none() -> None:
    app = create_app(Settings(policy="lifestyle-first"))
    body = app.test_client().post("/calc", json={"cac": 10}).get_json()
    assert body["policy"]["id"] == "lifestyle-first"


json_values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)
calc_like = st.dictionaries(
    st.sampled_from(
        [
            "cac",
            "age",
            "sex",
            "race",
            "date",
            "prior_cac",
            "prior_date",
            "tc",
            "lpa",
            "lpa_unit",
            "policy",
            "statin",
            "vessels",
        ]
    ),
    json_values,
    max_size=6,
)


@settings(max_examples=200, deadline=None)
@given(st.one_of(json_values, calc_like))
def test_random_json_is_never_a_server_error(body: object) -> None:
    client = create_app(Settings()).test_client()
    response = client.post("/calc", data=json.dumps(body), content_type="application/json")
    assert response.status_code in (200, 400)
    if response.status_code == 400:
        assert outcome(response)
