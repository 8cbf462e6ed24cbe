"""``fhircac subscribe`` refuses to register a Subscription the service would refuse (no
FHIRCAC_HOOK_TOKEN) unless --no-auth, and warns when notifications would travel unencrypted."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fhircac import cli
from fhircac.worker import commands
from fhircac.worker.subscription import Registration


@pytest.fixture
def registered(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def register(client: Any, endpoint: str, **options: Any) -> Registration:
        calls.append({"endpoint": endpoint, **options})
        return Registration(id="s1", status="active", created=True)

    monkeypatch.setattr(commands, "register", register)
    for name in ("FHIRCAC_HOOK_TOKEN", "FHIRCAC_HOOK_AUTH", "FHIRCAC_FHIR_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FHIRCAC_FHIR_BASE_URL", "http://127.0.0.1:9/fhir")
    return calls


def test_without_a_hook_token_nothing_is_registered_and_the_variable_is_named(
    registered: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["subscribe", "--endpoint", "https://fhircac.example/fhir-hook"]) == 2
    error = capsys.readouterr().err
    assert "FHIRCAC_HOOK_TOKEN is not set" in error and "--no-auth" in error
    assert registered == []


def test_no_auth_registers_without_a_token_and_warns_about_http(
    registered: list[dict[str, Any]], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FHIRCAC_HOOK_TOKEN", "a-token-that-must-not-be-sent")
    argv = ["subscribe", "--endpoint", "http://127.0.0.1:8080/fhir-hook", "--no-auth"]
    assert cli.main(argv) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["subscription"] == "Subscription/s1"
    assert registered == [{"endpoint": "http://127.0.0.1:8080/fhir-hook", "payload": True, "token": None}]
    assert "WARNING fhircac.worker --endpoint is not https" in err


def test_with_the_token_it_is_sent_and_https_gives_no_warning(
    registered: list[dict[str, Any]], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FHIRCAC_HOOK_TOKEN", "t0k3n")
    assert cli.main(["subscribe", "--endpoint", "https://fhircac.example/fhir-hook", "--no-payload"]) == 0
    expected = {"endpoint": "https://fhircac.example/fhir-hook", "payload": False, "token": "t0k3n"}
    assert registered == [expected]
    assert "WARNING" not in capsys.readouterr().err


@pytest.mark.parametrize("endpoint", ["fhircac.example/fhir-hook", "ftp://x/fhir-hook", "https:///fhir-hook"])
def test_an_endpoint_that_is_not_an_absolute_http_url_is_refused(
    endpoint: str, registered: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["subscribe", "--endpoint", endpoint, "--no-auth"]) == 2
    assert "--endpoint" in capsys.readouterr().err and registered == []
