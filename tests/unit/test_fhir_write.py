"""Assessment → RiskAssessment, CarePlan, Provenance: valid FHIR, conformant to profiles/, idempotent keys."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from fhircac.clinical.assessment import Claim
from fhircac.clinical.policies import get_policy
from fhircac.evaluate import Evaluation, evaluate
from fhircac.fhir import codes, conformance
from tests import fhir_builders as fb

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CASES = sorted(p.name for p in EXAMPLES.glob("[0-9][0-9]-*.json"))
AS_OF = date(2026, 11, 1)
RECORDED = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def run(document: dict[str, Any], policy: str = "acc-aha-2018") -> Evaluation:
    evaluations, issues = evaluate([("in.json", document)], get_policy(policy), AS_OF, RECORDED)
    assert [str(i) for i in issues if i.is_error] == []
    return evaluations[0]


def example(name: str, policy: str = "acc-aha-2018") -> Evaluation:
    return run(json.loads((EXAMPLES / name).read_text(encoding="utf-8")), policy)


@pytest.mark.parametrize("policy", ["acc-aha-2018", "lifestyle-first"])
@pytest.mark.parametrize("name", CASES)
def test_produced_resources_are_valid_fhir_and_conform_to_the_profiles(name: str, policy: str) -> None:
    produced = example(name, policy).produced
    for resource in produced.resources():
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
        assert conformance.check(resource) == [], resource["resourceType"]
    bundle = produced.transaction()
    get_fhir_model_class("Bundle").model_validate(bundle)
    assert all(
        entry["request"]["method"] == "POST" and entry["request"]["ifNoneExist"] for entry in bundle["entry"]
    )


@pytest.mark.parametrize("name", CASES)
def test_example_inputs_conform_to_the_cac_observation_profile(name: str) -> None:
    bundle = json.loads((EXAMPLES / name).read_text(encoding="utf-8"))
    observations = [
        e["resource"]
        for e in bundle["entry"]
        if codes.PROFILE_CAC_OBSERVATION in e["resource"].get("meta", {}).get("profile", [])
    ]
    assert observations
    for observation in observations:
        assert conformance.check(observation) == []


def test_identifiers_are_derived_from_the_scan_and_the_policy_and_are_stable() -> None:
    first, again = example("06-rising-on-statin.json"), example("06-rising-on-statin.json")
    other_policy = example("06-rising-on-statin.json", "lifestyle-first")
    ra = first.produced.risk_assessment["identifier"][0]
    assert ra == {
        "system": codes.ASSESSMENT_ID,
        "value": "riskassessment:Observation/cac-ex06-scan-2026:acc-aha-2018:1.0.0",
    }
    assert (
        first.produced.transaction()["entry"][0]["fullUrl"]
        == again.produced.transaction()["entry"][0]["fullUrl"]
    )
    assert first.produced.provenance["meta"]["tag"] == again.produced.provenance["meta"]["tag"]
    assert other_policy.produced.risk_assessment["identifier"] != first.produced.risk_assessment["identifier"]
    assert other_policy.produced.provenance["meta"]["tag"] != first.produced.provenance["meta"]["tag"]


def test_a_new_version_of_the_scan_gives_new_identifiers() -> None:
    v1 = run(fb.full_record()).produced.care_plan["identifier"][0]["value"]
    bundle = fb.full_record()
    bundle["entry"][1]["resource"]["meta"] = {"versionId": "2"}
    v2 = run(bundle).produced.care_plan["identifier"][0]["value"]
    assert v1 == "careplan:Observation/scan1:acc-aha-2018:1.0.0"
    assert v2 == "careplan:Observation/scan1/_history/2:acc-aha-2018:1.0.0"


def test_resources_without_ids_are_referenced_by_identifier() -> None:
    patient = fb.patient(race=["2106-3"], ethnicity=["2186-5"])
    del patient["id"]
    patient["identifier"] = [{"system": "https://example.org/mrn", "value": "123"}]
    scan = fb.cac(subject={"reference": "urn:uuid:0d0e5d8c-1111-4111-8111-000000000001"})
    del scan["id"]
    scan["identifier"] = [{"system": "https://example.org/accession", "value": "A-77"}]
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:0d0e5d8c-1111-4111-8111-000000000001",
                "resource": patient,
                "request": {"method": "POST", "url": "Patient"},
            },
            {"resource": scan, "request": {"method": "POST", "url": "Observation"}},
        ],
    }
    produced = run(bundle).produced
    ra = produced.risk_assessment
    assert ra["subject"] == {"reference": "Patient?identifier=https%3A%2F%2Fexample.org%2Fmrn%7C123"}
    assert ra["basis"] == [{"type": "Observation", "identifier": scan["identifier"][0]}]
    assert ra["identifier"][0]["value"].startswith("riskassessment:Observation-identifier-")


def test_risk_assessment_carries_the_figures_of_the_summary() -> None:
    evaluation = example("09-per-vessel-scores.json")
    summary, ra = evaluation.summary(), evaluation.produced.risk_assessment
    extensions = {e["url"]: e for e in ra["extension"]}
    assert extensions[codes.EXT_CAC_DRS]["valueString"] == summary["score"]["cac_drs"] == "A2/N2"
    assert extensions[codes.EXT_SCORE_BAND]["valueCoding"]["code"] == "cac-band-100-399"
    parts = {p["url"]: p for p in extensions[codes.EXT_PERCENTILE]["extension"]}
    assert parts["value"]["valueDecimal"] == summary["percentile"]["value"]
    policy = {p["url"]: p for p in extensions[codes.EXT_POLICY]["extension"]}
    assert (policy["policy"]["valueCoding"]["code"], policy["version"]["valueString"]) == (
        "acc-aha-2018",
        "1.0.0",
    )
    predictions = {p["outcome"]["coding"][0]["code"]: p["probabilityDecimal"] for p in ra["prediction"]}
    assert predictions["mesa-chd-10y-with-cac"] == summary["risk"]["mesa_chd_10y_with_cac"]
    assert predictions["pce-ascvd-10y"] == summary["risk"]["pce_ascvd_10y"]
    patient_notes = [n["text"] for n in ra["note"] if n["extension"][0]["valueCode"] == "patient"]
    assert patient_notes and summary["explanation"]["headline"] in patient_notes[0]
    assert {"reference": "Observation/cac-ex09-scan-2026"} in ra["basis"]


def test_basis_and_provenance_name_every_input_used() -> None:
    evaluation = example("06-rising-on-statin.json")
    produced, read = evaluation.produced, evaluation.read
    basis = {b["reference"] for b in produced.risk_assessment["basis"]}
    assert basis == set(read.sources)
    assert "MedicationStatement/cac-ex06-atorvastatin" in basis and "Observation/cac-ex06-scan-2022" in basis
    entities = {e["what"]["reference"] for e in produced.provenance["entity"]}
    assert entities == basis | {"Patient/cac-ex06"}
    assert [t["reference"] for t in produced.provenance["target"]] == list(produced.full_urls[:2])
    agent = produced.provenance["agent"][0]["who"]
    assert (
        agent["display"].startswith("fhircac ") and produced.provenance["recorded"] == "2026-11-01T12:00:00Z"
    )


def test_care_plan_activities_cite_their_rules_and_the_scan_waits_for_the_earliest_date() -> None:
    evaluation = example("04-cac-100-399-above-75th.json")
    summary, care_plan = evaluation.summary(), evaluation.produced.care_plan
    assert care_plan["intent"] == "proposal"
    assert care_plan["supportingInfo"] == [{"reference": evaluation.produced.full_urls[0]}]
    details = [a["detail"] for a in care_plan["activity"]]
    # CAC 100-399: the rule says a repeat is not routine, so the plan schedules none (REFERENCE §14.7)
    assert summary["next_scan"]["suggested"] is None
    assert all(d["code"]["coding"][0]["code"] != "repeat-cac-scan" for d in details)
    assert all(d["reasonCode"][0]["text"] for d in details)
    cited = {d["reasonCode"][0]["coding"][0]["code"] for d in details if "coding" in d["reasonCode"][0]}
    assert {r["id"] for r in summary["recommendations"]} <= cited
    assert {item["id"] for item in summary["lifestyle"]} <= cited
    lpa = next(
        d for d in details if d["reasonCode"][0].get("coding", [{}])[0].get("code") == "lpa-measure-once"
    )
    assert lpa["code"]["coding"][0]["code"] == "workup-consideration" and lpa["kind"] == "ServiceRequest"
    note = care_plan["note"][0]
    assert note["extension"][0]["valueCode"] == "patient"
    assert all(question in note["text"] for question in summary["explanation"]["questions"])


def test_a_proposed_repeat_scan_waits_for_the_earliest_date() -> None:
    evaluation = example("03-cac-1-99-over-55.json")
    summary, care_plan = evaluation.summary(), evaluation.produced.care_plan
    details = [a["detail"] for a in care_plan["activity"]]
    scan = next(d for d in details if d["code"]["coding"][0]["code"] == "repeat-cac-scan")
    assert scan["scheduledPeriod"]["start"] == summary["next_scan"]["earliest"]
    assert summary["next_scan"]["suggested"] in scan["description"]
    last = date.fromisoformat(summary["score"]["date"])
    assert date.fromisoformat(scan["scheduledPeriod"]["start"]) >= last.replace(year=last.year + 3)


def test_no_repeat_scan_activity_with_known_coronary_disease() -> None:
    care_plan = example("08-known-cad-stent.json").produced.care_plan
    assert all(a["detail"]["code"]["coding"][0]["code"] != "repeat-cac-scan" for a in care_plan["activity"])


def test_input_notes_reach_the_clinician_notes() -> None:
    ra = example("11-missing-race-and-labs.json").produced.risk_assessment
    texts = [n["text"] for n in ra["note"] if n["extension"][0]["valueCode"] == "clinician"]
    assert any(t.startswith("Input note: no medication list") for t in texts)
    assert any(t.startswith("Missing input: race") for t in texts)


def test_the_profile_check_would_catch_a_broken_output() -> None:
    """The conformance assertions above are not vacuous: damage an output and they fail."""
    produced = example("01-cac-zero-low-risk.json").produced
    broken_ra = {k: v for k, v in produced.risk_assessment.items() if k not in ("basis", "identifier")}
    assert len(conformance.check(broken_ra)) == 2
    broken_cp = {**produced.care_plan, "intent": "order"}
    assert conformance.check(broken_cp) != []


def test_id_less_scans_of_different_patients_get_different_identifiers() -> None:
    def bundle(mrn: str) -> dict[str, Any]:
        patient = fb.patient(race=["2106-3"], ethnicity=["2186-5"])
        del patient["id"]
        patient["identifier"] = [{"system": "https://example.org/mrn", "value": mrn}]
        scan = fb.cac(subject={"reference": "urn:uuid:0d0e5d8c-1111-4111-8111-000000000009"})
        del scan["id"]
        return {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [
                {"fullUrl": "urn:uuid:0d0e5d8c-1111-4111-8111-000000000009", "resource": patient},
                {"resource": scan},
            ],
        }

    first = run(bundle("A")).produced.risk_assessment["identifier"]
    second = run(bundle("B")).produced.risk_assessment["identifier"]
    assert first != second and first[0]["value"].startswith("riskassessment:Observation-content-")


@pytest.mark.parametrize("policy", ["acc-aha-2018", "lifestyle-first"])
@pytest.mark.parametrize("name", CASES)
def test_a_medication_activity_only_where_a_statement_proposes_the_medicine(name: str, policy: str) -> None:
    # REFERENCE §14.7 (plans agree with rules): "withhold a statin" or "aspirin is not advised" is not
    # a proposed MedicationRequest; the activity kind follows what the statement claims
    evaluation = example(name, policy)
    assert evaluation.assessment is not None and evaluation.produced.care_plan is not None
    proposes = {Claim.STATIN_INDICATED, Claim.STATIN_REASONABLE, Claim.ASPIRIN_CONSIDERED}
    medicines = {s.id for s in evaluation.assessment.recommendations if s.claims & proposes}
    kinds = {
        d["reasonCode"][0]["coding"][0]["code"]: d.get("kind")
        for d in (a["detail"] for a in evaluation.produced.care_plan["activity"])
        if "coding" in d["reasonCode"][0]
    }
    assert {rule for rule, kind in kinds.items() if kind == "MedicationRequest"} == medicines
