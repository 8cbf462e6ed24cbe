"""Write-back's rules without a server: the clinic's date, withdrawn and superseded assessments.

The same cases run end to end on HAPI in tests/integration/test_writeback_safety_hapi.py.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from fhircac.config import ConfigError, Settings
from fhircac.fhir import codes
from fhircac.worker.writeback import (
    CLOCK_SKEW,
    PatientData,
    WritebackDeferred,
    _assessed_scan,
    _defer_if_future,
    _withdrawals,
    clinic_today,
)
from tests import fhir_builders as fb


def scan(scan_id: str, effective: str, status: str = "final") -> dict[str, Any]:
    return fb.cac(id=scan_id, date=effective, status=status)


def assessment(ra_id: str, observation: str, version: str = "1", status: str = "final") -> dict[str, Any]:
    value = f"riskassessment:Observation/{observation}/_history/{version}:acc-aha-2018:2018.1"
    return {
        "resourceType": "RiskAssessment",
        "id": ra_id,
        "status": status,
        "identifier": [{"system": codes.ASSESSMENT_ID, "value": value}],
    }


# -- the clinic's date -------------------------------------------------------------------------------


def test_today_is_taken_in_the_scans_own_offset_east_of_utc() -> None:
    """The review's case: 10:01:52 UTC, a scan one minute earlier at a UTC+14 clinic."""
    now = datetime(2026, 12, 3, 10, 1, 52, tzinfo=UTC)
    resources = [scan("s", "2026-12-04T00:00:52+14:00")]
    assert now.date() == date(2026, 12, 3)  # what write-back used to compare with
    assert clinic_today(resources, "s", now, None) == date(2026, 12, 4)


def test_today_is_taken_in_the_scans_own_offset_west_of_utc() -> None:
    now = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
    resources = [scan("s", "2026-12-03T20:00:00-12:00")]
    assert clinic_today(resources, "s", now, None) == date(2026, 12, 3)


def test_a_configured_zone_decides_for_scans_written_as_dates() -> None:
    now = datetime(2026, 12, 3, 12, 30, tzinfo=UTC)  # 01:30 on 4 December in Auckland (NZDT)
    resources = [scan("s", "2026-12-04")]
    assert clinic_today(resources, "s", now, None) == date(2026, 12, 3)  # UTC: the scan would wait
    assert clinic_today(resources, "s", now, ZoneInfo("Pacific/Auckland")) == date(2026, 12, 4)


def test_a_scan_stamped_just_after_a_lagging_clock_counts_as_taken() -> None:
    """The review's clock-skew case: the worker 15 min behind... within CLOCK_SKEW, after it not."""
    stamped = datetime(2026, 12, 3, 0, 5, tzinfo=UTC)
    resources = [scan("s", "2026-12-03T00:05:00Z")]
    lagging = stamped - CLOCK_SKEW + timedelta(minutes=1)
    assert clinic_today(resources, "s", lagging, None) == date(2026, 12, 3)
    _defer_if_future(resources[0], lagging, None)  # no deferral
    with pytest.raises(WritebackDeferred) as deferred:
        _defer_if_future(resources[0], stamped - CLOCK_SKEW - timedelta(minutes=1), None)
    assert deferred.value.due == stamped - CLOCK_SKEW


def test_the_latest_scan_sets_the_zone_when_none_is_named() -> None:
    now = datetime(2026, 12, 3, 11, 0, tzinfo=UTC)
    resources = [scan("old", "2020-01-01T09:00:00Z"), scan("new", "2026-12-03T20:00:00+09:00")]
    assert clinic_today(resources, None, now, None) == date(2026, 12, 3)
    withdrawn = [scan("old", "2020-01-01"), scan("new", "2026-12-04T00:30:00+14:00", "entered-in-error")]
    assert clinic_today(withdrawn, None, now, None) == date(2026, 12, 3)  # a withdrawn scan does not count


def test_timezone_setting_is_an_iana_name() -> None:
    assert Settings.from_env({"FHIRCAC_TIMEZONE": "Pacific/Kiritimati"}).zone() == ZoneInfo(
        "Pacific/Kiritimati"
    )
    assert Settings.from_env({}).zone() is None
    with pytest.raises(ConfigError, match="FHIRCAC_TIMEZONE"):
        Settings.from_env({"FHIRCAC_TIMEZONE": "UTC+14"})


# -- withdrawn and superseded assessments ------------------------------------------------------------


def test_assessed_scan_reads_the_identifier() -> None:
    assert _assessed_scan(assessment("r", "obs-1", "3")) == ("obs-1", "3")
    assert _assessed_scan({"identifier": [{"system": "other", "value": "x"}]}) is None


def _observations(*resources: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in resources}


def test_an_assessment_of_a_withdrawn_or_deleted_scan_is_withdrawn() -> None:
    data = PatientData([], [], [assessment("r1", "gone"), assessment("r2", "bad"), assessment("r3", "ok")])
    found = _withdrawals(
        data,
        _observations(scan("bad", "2024-01-01", "entered-in-error"), scan("ok", "2023-01-01")),
        None,
        None,
    )
    assert found == {
        "RiskAssessment/r1": "Observation/gone was deleted or is no longer this patient's",
        "RiskAssessment/r2": "Observation/bad was withdrawn (status entered-in-error)",
    }


def test_an_assessment_of_an_earlier_version_is_superseded_by_the_one_written_now() -> None:
    data = PatientData(
        [], [], [assessment("r1", "s", "1"), assessment("r2", "s", "2"), assessment("r0", "other")]
    )
    observations = _observations(scan("s", "2024-01-01", "corrected"), scan("other", "2020-01-01"))
    found = _withdrawals(data, observations, "s", "2")
    assert list(found) == ["RiskAssessment/r1"]
    assert found["RiskAssessment/r1"].startswith(
        "superseded by the interpretation of Observation/s/_history/2"
    )
    # an assessment already withdrawn is left as it is
    data.assessments[0]["status"] = "entered-in-error"
    assert _withdrawals(data, observations, "s", "2") == {}


def test_offsets_are_compared_as_instants() -> None:
    """Two stamps of one instant in different zones are the same moment (no deferral either way)."""
    now = datetime(2026, 12, 3, 10, 0, tzinfo=timezone(timedelta(hours=-12)))
    _defer_if_future(scan("s", "2026-12-04T10:00:00+12:00"), now, None)
