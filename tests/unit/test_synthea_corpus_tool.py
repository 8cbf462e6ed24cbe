"""tools/synthea_corpus.py without Synthea: the CAC step on a small bundle, and the deadline that
keeps a generator from running on."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

TOOLS = Path(__file__).resolve().parents[2] / "tools"
sys.path.insert(0, str(TOOLS))

import synthea_corpus as sc  # noqa: E402


def synthea_like(
    birth: str = "1960-05-01", deceased: str | None = None, statin: bool = True
) -> dict[str, Any]:
    patient: dict[str, Any] = {"resourceType": "Patient", "id": "p1", "gender": "male", "birthDate": birth}
    if deceased:
        patient["deceasedDateTime"] = deceased
    entries = [
        {"fullUrl": "urn:uuid:p1", "resource": patient, "request": {"method": "POST", "url": "Patient"}}
    ]
    for year in (2019, 2022, 2025):
        lipid = {
            "resourceType": "Observation",
            "id": f"tc{year}",
            "code": {"coding": [{"system": "http://loinc.org", "code": "2093-3"}]},
            "effectiveDateTime": f"{year}-03-10T10:00:00+00:00",
        }
        entries.append({"fullUrl": f"urn:uuid:tc{year}", "resource": lipid})
    if statin:
        order = {
            "resourceType": "MedicationRequest",
            "id": "m1",
            "status": "active",
            "medicationCodeableConcept": {
                "coding": [{"code": "314231", "display": "Simvastatin 10 MG Oral Tablet"}]
            },
            "authoredOn": "2015-01-01T00:00:00+00:00",
        }
        entries.append({"fullUrl": "urn:uuid:m1", "resource": order})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}


def test_cac_scans_are_added_as_radiology_systems_send_them() -> None:
    bundle = synthea_like()
    scans = sc.add_cac(bundle)
    assert 1 <= len(scans) <= 2
    added = bundle["entry"][-len(scans) :]
    for entry, scan in zip(added, scans, strict=True):
        resource = entry["resource"]
        assert entry["request"] == {"method": "POST", "url": "Observation"}
        assert entry["fullUrl"] == f"urn:uuid:{scan.observation_id}"
        assert resource["subject"] == {"reference": "urn:uuid:p1"}
        assert resource["status"] == "final"
        assert resource["effectiveDateTime"].startswith(scan.date)
        code = resource["code"]["coding"][0]
        if scan.coding == "dicom":
            assert code["code"] == "450360000"
            assert resource["method"]["coding"][0] == {
                "system": "http://dicom.nema.org/resources/ontology/DCM",
                "code": "112055",
                "display": "Agatston scoring method",
            }
            assert resource["valueQuantity"]["code"] == "1"
        else:
            assert code["code"] == "450734004" and resource["valueQuantity"]["code"] == "{score}"
        assert resource["valueQuantity"]["system"] == "http://unitsofmeasure.org"
    current = scans[-1]
    assert "2025-03-12" <= current.date <= "2025-03-31"  # a few days after the last lipid panel


def test_cac_step_is_deterministic_from_seed_and_patient() -> None:
    first, second, other_seed = synthea_like(), synthea_like(), synthea_like()
    assert sc.add_cac(first) == sc.add_cac(second)
    assert first == second
    different = [sc.add_cac(copy.deepcopy(other_seed), seed=seed) for seed in range(1, 30)]
    assert len({tuple(scans) for scans in different}) > 1


def test_prior_scan_is_earlier_and_not_higher() -> None:
    priors = []
    for seed in range(60):
        scans = sc.add_cac(synthea_like(), seed=seed)
        if len(scans) == 2:
            prior, current = scans
            assert prior.date < current.date and prior.agatston <= current.agatston
            priors.append(prior)
    assert len(priors) > 30  # most statin users get a prior scan


def test_a_deceased_patient_is_scanned_before_death_and_a_child_not_at_all() -> None:
    for seed in range(20):
        scans = sc.add_cac(synthea_like(deceased="2025-03-15T00:00:00+00:00"), seed=seed)
        assert max(scan.date for scan in scans) < "2025-03-15"
    assert sc.add_cac(synthea_like(birth="2000-01-01", deceased="2003-01-01T00:00:00+00:00")) == []


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is gone for our purpose
        return stat.read().split(") ")[1].startswith("Z")


def test_a_generator_past_its_deadline_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    started = time.monotonic()
    with pytest.raises(sc.SyntheaError, match="did not finish within"):
        sc._run_bounded(["sh", "-c", f"echo $$ > {pid_file}; exec sleep 60"], tmp_path, tmp_path / "log", 1.0)
    assert time.monotonic() - started < 30
    assert _gone(int(pid_file.read_text()))


def test_a_generator_dies_with_the_process_that_started_it(tmp_path: Path) -> None:
    """Even when the parent is SIGKILLed (Linux's PR_SET_PDEATHSIG; the project runs on Linux)."""
    pid_file = tmp_path / "pid"
    script = (
        f"import sys; sys.path.insert(0, {str(TOOLS)!r}); from pathlib import Path; "
        "import synthea_corpus as sc; "
        f"sc._run_bounded(['sh', '-c', 'echo $$ > {pid_file}; exec sleep 60'], Path({str(tmp_path)!r}), "
        f"Path({str(tmp_path / 'log')!r}), 120)"
    )
    parent = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 30
        while not (pid_file.exists() and pid_file.read_text().strip()) and time.monotonic() < deadline:
            time.sleep(0.05)
        child = int(pid_file.read_text())
        parent.kill()  # SIGKILL: no finally clause runs in the parent
        parent.wait(timeout=30)
        deadline = time.monotonic() + 10
        while not _gone(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _gone(child)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(timeout=30)
