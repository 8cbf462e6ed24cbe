"""FHIRCAC_DATA_DIR: every SQLite file in one writable folder, unless a file is named on its own;
``fhircac serve`` refuses, readably, a folder it cannot write (instead of "Worker failed to boot")."""

from __future__ import annotations

from pathlib import Path

import pytest

from fhircac.config import ConfigError, Settings
from fhircac.web import serve


def test_every_sqlite_file_defaults_into_the_data_dir() -> None:
    assert Settings.from_env({}).data_files() == (".fhircac/cds.sqlite", ".fhircac/state.sqlite")
    settings = Settings.from_env({"FHIRCAC_DATA_DIR": "/var/lib/fhircac"})
    assert settings.data_dir == "/var/lib/fhircac"
    assert settings.data_files() == ("/var/lib/fhircac/cds.sqlite", "/var/lib/fhircac/state.sqlite")
    assert Settings() == Settings.from_env({})  # the dataclass defaults say the same


def test_a_file_named_on_its_own_wins_over_the_data_dir() -> None:
    settings = Settings.from_env(
        {"FHIRCAC_DATA_DIR": "/data", "FHIRCAC_CDS_DB": "/elsewhere/cds.db", "FHIRCAC_STATE_FILE": "s.db"}
    )
    assert settings.data_files() == ("/elsewhere/cds.db", "s.db")


def test_a_folder_that_cannot_be_made_is_refused_naming_the_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ConfigError, match="FHIRCAC_DATA_DIR"):
        serve.check_writable(str(blocker / "data" / "cds.sqlite"))
    serve.check_writable(str(tmp_path / "fresh" / "cds.sqlite"))
    assert (tmp_path / "fresh").is_dir()


def test_serve_stops_before_gunicorn_when_the_data_dir_is_unusable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("FHIRCAC_DATA_DIR", str(tmp_path / "a-file" / "data"))
    monkeypatch.setenv("FHIRCAC_CDS_AUTH", "off")
    monkeypatch.setattr(serve.os, "execv", lambda *args: pytest.fail("gunicorn must not start"))
    assert serve.serve() == 2
    assert "FHIRCAC_DATA_DIR" in capsys.readouterr().err
