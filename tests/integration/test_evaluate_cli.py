"""``fhircac evaluate`` in a real process: output formats, exit codes, bad input refused per patient."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests import fhir_builders as fb

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def fhircac(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fhircac", "evaluate", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def write(tmp_path: Path, name: str, content: Any) -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return str(path)


def outcome(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""  # nothing half-written
    parsed = json.loads(result.stderr)
    assert parsed["resourceType"] == "OperationOutcome"
    return list(parsed["issue"])


def test_summary_of_several_files_one_line_per_patient() -> None:
    files = [str(EXAMPLES / "01-cac-zero-low-risk.json"), str(EXAMPLES / "09-per-vessel-scores.json")]
    result = fhircac(*files, "--format", "summary", "--as-of", "2026-11-01")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["patient"] for line in lines] == ["Patient/cac-ex01", "Patient/cac-ex09"]
    expected = json.loads((EXAMPLES / "expected" / "09-per-vessel-scores.summary.json").read_text())
    assert lines[1] == expected


def test_bundle_format_is_a_transaction_per_patient_from_stdin() -> None:
    text = (EXAMPLES / "06-rising-on-statin.json").read_text()
    result = fhircac("-", "--policy", "lifestyle-first", "--as-of", "2026-11-01", stdin=text)
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    bundle = json.loads(line)
    assert bundle["type"] == "transaction"
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == [
        "RiskAssessment",
        "CarePlan",
        "Provenance",
    ]
    assert "lifestyle-first" in bundle["entry"][0]["resource"]["identifier"][0]["value"]


def test_not_json(tmp_path: Path) -> None:
    (issue,) = outcome(fhircac(write(tmp_path, "bad.json", '{"resourceType": "Bundle",')))
    assert (
        issue["expression"][0].endswith("bad.json: line 1 column 27") and "not JSON" in issue["diagnostics"]
    )


def test_not_fhir(tmp_path: Path) -> None:
    (issue,) = outcome(fhircac(write(tmp_path, "x.json", {"name": "not a resource"})))
    assert "no resourceType" in issue["diagnostics"]


def test_wrong_resource_type(tmp_path: Path) -> None:
    (issue,) = outcome(fhircac(write(tmp_path, "x.json", {"resourceType": "Practitioner", "id": "d1"})))
    assert "does not read Practitioner" in issue["diagnostics"]


def test_cac_value_not_a_number(tmp_path: Path) -> None:
    bundle = fb.full_record()
    bundle["entry"][1]["resource"]["valueQuantity"]["value"] = "120"
    issues = outcome(fhircac(write(tmp_path, "x.json", bundle)))
    assert any(i["expression"][0].endswith("Bundle.entry[1].resource.valueQuantity.value") for i in issues), (
        issues
    )


def test_unknown_units_each_named(tmp_path: Path) -> None:
    bundle = fb.full_record(
        fb.lab("2571-8", 1.2, "mg/mL", id="tg"), fb.lab("1884-6", 90, "umol/L", id="apob")
    )
    issues = [i for i in outcome(fhircac(write(tmp_path, "x.json", bundle))) if i["severity"] == "error"]
    assert len(issues) == 2
    assert all("is not understood here" in i["diagnostics"] for i in issues)
    assert {i["expression"][0].split("entry")[1][:4] for i in issues} == {"[9].", "[10]"}


def test_references_that_do_not_resolve(tmp_path: Path) -> None:
    orphan = fb.lab("2093-3", 200, "mg/dL", id="tc-orphan")
    orphan["subject"] = {"reference": "Patient/missing"}
    bundle = fb.full_record(orphan)
    (issue,) = [i for i in outcome(fhircac(write(tmp_path, "x.json", bundle))) if i["severity"] == "error"]
    assert issue["code"] == "not-found" and "Patient/missing" in issue["diagnostics"]


def test_a_medication_not_in_the_input_is_a_warning_not_a_refusal(tmp_path: Path) -> None:
    """An EHR search without _include leaves the Medication out: the patient is still assessed."""
    bundle = fb.full_record(fb.medication_statement(reference="Medication/missing", id="m2"))
    result = fhircac(write(tmp_path, "x.json", bundle), "--format", "summary")
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    assert any("Medication/missing" in note for note in json.loads(line)["input_notes"])


def test_several_patients_mixed_in_one_record(tmp_path: Path) -> None:
    bundle = fb.collection(fb.patient(), fb.patient(id="p2"), fb.cac(), bundle_type="transaction")
    (issue,) = outcome(fhircac(write(tmp_path, "x.json", bundle)))
    assert "mixes several patients" in issue["diagnostics"]


def test_one_bad_patient_never_stops_the_others_exit_3_for_a_partial_run(tmp_path: Path) -> None:
    good = str(EXAMPLES / "01-cac-zero-low-risk.json")
    bad = fb.full_record()
    bad["entry"][1]["resource"]["valueQuantity"]["code"] = "mg"
    output = tmp_path / "out.ndjson"
    output.write_text("previous\n")
    result = fhircac(good, write(tmp_path, "bad.json", bad), "--output", str(output), "--format", "summary")
    assert result.returncode == 3, result.stderr
    (line,) = output.read_text().splitlines()
    assert json.loads(line)["patient"] == "Patient/cac-ex01"
    refused = [i for i in json.loads(result.stderr)["issue"] if i["severity"] == "error"]
    assert refused and all("bad.json" in i["expression"][0] for i in refused)
    assert list(tmp_path.glob(".fhircac-*")) == []


def test_every_patient_refused_is_exit_2_and_an_existing_output_file_is_untouched(tmp_path: Path) -> None:
    bad = fb.full_record()
    bad["entry"][1]["resource"]["valueQuantity"]["code"] = "mg"
    output = tmp_path / "out.ndjson"
    output.write_text("previous\n")
    outcome(fhircac(write(tmp_path, "bad.json", bad), "--output", str(output)))
    assert output.read_text() == "previous\n"


def test_output_file_is_written_whole(tmp_path: Path) -> None:
    output = tmp_path / "out.ndjson"
    result = fhircac(
        str(EXAMPLES / "02-cac-zero-diabetes.json"), "--output", str(output), "--format", "summary"
    )
    assert result.returncode == 0 and result.stdout == ""
    assert json.loads(output.read_text())["patient"] == "Patient/cac-ex02"


@pytest.mark.parametrize(
    ("args", "where"), [(["--policy", "nope"], "--policy"), (["--as-of", "2026-02-30"], "--as-of")]
)
def test_bad_options(args: list[str], where: str) -> None:
    (issue,) = outcome(fhircac(str(EXAMPLES / "01-cac-zero-low-risk.json"), *args))
    assert issue["expression"] == [where]


def test_missing_file() -> None:
    (issue,) = outcome(fhircac("/nonexistent/x.json"))
    assert "cannot read" in issue["diagnostics"]


def test_output_to_an_impossible_path_is_exit_2() -> None:
    (issue,) = outcome(
        fhircac(str(EXAMPLES / "01-cac-zero-low-risk.json"), "--output", "/nonexistent/dir/x.json")
    )
    assert issue["expression"] == ["--output"]


def test_deeply_nested_and_duplicate_key_json(tmp_path: Path) -> None:
    (issue,) = outcome(fhircac(write(tmp_path, "deep.json", "[" * 100000 + "]" * 100000)))
    assert "nested too deeply" in issue["diagnostics"]
    (issue,) = outcome(
        fhircac(write(tmp_path, "dup.json", '{"resourceType": "Patient", "id": "a", "id": "b"}'))
    )
    assert "appears twice" in issue["diagnostics"]


def test_refusal_carries_the_notes_that_explain_it(tmp_path: Path) -> None:
    bundle = fb.full_record()
    bundle["entry"][1]["resource"]["status"] = "preliminary"
    issues = outcome(fhircac(write(tmp_path, "x.json", bundle)))
    assert issues[0]["severity"] == "error" and "no usable CAC score" in issues[0]["diagnostics"]
    assert any("status preliminary" in i["diagnostics"] for i in issues[1:])


def test_patient_without_id_or_identifier_cannot_be_written_but_can_be_summarised(tmp_path: Path) -> None:
    patient = fb.patient()
    del patient["id"]
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": "urn:uuid:7c1f0000-0000-4000-8000-000000000001", "resource": patient},
            {"resource": fb.cac(subject={"reference": "urn:uuid:7c1f0000-0000-4000-8000-000000000001"})},
        ],
    }
    path = write(tmp_path, "x.json", bundle)
    (issue,) = [i for i in outcome(fhircac(path)) if i["severity"] == "error"]
    assert "neither an id nor an identifier" in issue["diagnostics"]
    assert fhircac(path, "--format", "summary").returncode == 0


def test_written_resources_do_not_carry_local_file_paths(tmp_path: Path) -> None:
    bundle = json.loads((EXAMPLES / "11-missing-race-and-labs.json").read_text())
    result = fhircac(write(tmp_path, "private-name.json", bundle))
    assert (
        result.returncode == 0 and "private-name" not in result.stdout and str(tmp_path) not in result.stdout
    )
