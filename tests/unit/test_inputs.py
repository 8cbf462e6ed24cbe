"""The summary's ``inputs`` object: exactly the contract's keys, null when unknown, the report's figure."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from fhircac.clinical.inputs import describe, record_inputs
from fhircac.clinical.policies import POLICIES
from fhircac.clinical.record import CacScan, DrugClass, MedicationPeriod, PatientRecord
from fhircac.evaluate import evaluate
from fhircac.report.chart import statin_share
from tests import fhir_builders as fb

KEYS = {
    "sex",
    "age",
    "race",
    "statin",
    "antihypertensive_at_scan",
    "aspirin_at_scan",
    "antithrombotic_at_scan",
    "diabetes",
    "known_ascvd",
    "smoker",
    "ldl_c",
    "deceased",
}
STATIN_KEYS = {"at_scan", "since", "between_scans_share"}


def summary(*resources: dict[str, Any], as_of: date = date(2026, 3, 1)) -> dict[str, Any]:
    evaluations, issues = evaluate(
        [("in.json", fb.collection(*resources))],
        POLICIES["acc-aha-2018"],
        as_of,
        datetime(2026, 3, 1, tzinfo=UTC),
    )
    assert [i for i in issues if i.is_error] == []
    (evaluation,) = evaluations
    return evaluation.summary()


def test_a_sparse_record_gives_every_key_and_null_for_what_is_unknown() -> None:
    inputs = summary(fb.patient(gender=None, birth_date=None), fb.cac())["inputs"]
    assert set(inputs) == KEYS and set(inputs["statin"]) == STATIN_KEYS
    assert inputs == {
        "sex": None,
        "age": None,
        "race": None,
        "statin": {"at_scan": None, "since": None, "between_scans_share": None},
        "antihypertensive_at_scan": None,
        "aspirin_at_scan": None,
        "antithrombotic_at_scan": None,
        "diabetes": None,
        "known_ascvd": None,
        "smoker": None,
        "ldl_c": None,
        "deceased": None,
    }


def test_a_full_record_is_read_into_the_contract() -> None:
    bundle = fb.full_record(
        fb.cac(id="prior", value=60, date="2022-01-15"),
        fb.lab("2089-1", 131.04, "mg/dL", id="ldl"),
        fb.medication_statement(fb.rxnorm("36567", "simvastatin"), id="statin", start="2024-01-15"),
        fb.medication_statement(fb.rxnorm("855332", "warfarin sodium 5 MG"), id="warfarin"),
    )
    inputs = summary(*(entry["resource"] for entry in bundle["entry"]))["inputs"]
    assert inputs["sex"] == "male" and inputs["age"] == 59 and inputs["race"] == "white"
    # statin from 2024-01-15: half of the four years between the scans
    assert inputs["statin"]["at_scan"] is True and inputs["statin"]["since"] == "2024-01-15"
    assert abs(inputs["statin"]["between_scans_share"] - 0.5) < 0.01
    assert inputs["antihypertensive_at_scan"] is True and inputs["aspirin_at_scan"] is False
    assert inputs["antithrombotic_at_scan"] is True
    assert inputs["diabetes"] is False and inputs["known_ascvd"] is False and inputs["smoker"] is False
    assert inputs["ldl_c"] == 131.0 and inputs["deceased"] is None


def test_between_scans_share_is_the_report_pages_statin_share() -> None:
    record = PatientRecord(
        scans=(CacScan(10, date(2020, 1, 1)), CacScan(30, date(2024, 1, 1))),
        medications=(
            MedicationPeriod(DrugClass.STATIN, date(2021, 1, 1), date(2022, 1, 1)),
            MedicationPeriod(DrugClass.STATIN, date(2022, 1, 2), None),  # back to back: one course
        ),
    )
    share = record_inputs(record)["statin"]["between_scans_share"]
    assert share == round(statin_share(record, date(2020, 1, 1), date(2024, 1, 1)), 3)
    assert share == round(record.share_taking(DrugClass.STATIN, date(2020, 1, 1), date(2024, 1, 1)), 3)
    assert abs(share - 0.75) < 0.01
    assert record_inputs(record)["statin"]["since"] == "2021-01-01"


def test_describe_says_each_input_and_unknowns() -> None:
    record = PatientRecord(scans=(CacScan(10, date(2024, 1, 1)),), unknown_medications=frozenset(DrugClass))
    text = "\n".join(describe(record_inputs(record)))
    assert "Statin at the scan: unknown" in text and "Sex: unknown" in text
    assert "anticoagulant or P2Y12 inhibitor: unknown" in text
