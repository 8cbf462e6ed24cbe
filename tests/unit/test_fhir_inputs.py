"""Parsing, validating and grouping FHIR input: each kind of bad input is named where it is."""

from __future__ import annotations

from typing import Any

from fhircac.fhir.inputs import group_by_patient
from fhircac.fhir.issues import Issue
from tests import fhir_builders as fb


def group(*documents: Any) -> tuple[list[Any], list[Issue]]:
    return group_by_patient([(f"doc{index}.json", d) for index, d in enumerate(documents)])


def error_messages(issues: list[Issue]) -> list[str]:
    return [str(i) for i in issues if i.is_error]


def errors_after_reading(*documents: Any) -> list[str]:
    """Grouping's errors and each patient's reading errors (a defective CAC scan is the reader's)."""
    from datetime import date

    from fhircac.fhir.read import read_patient

    groups, issues = group(*documents)
    for patient in groups:
        issues += read_patient(patient, date(2026, 3, 1)).issues
    return error_messages(issues)


def test_collection_with_two_patients_gives_two_groups() -> None:
    other = fb.cac("scan2", subject={"reference": "Patient/p2"})
    groups, issues = group(fb.collection(fb.patient(), fb.patient(id="p2"), fb.cac(), other))
    assert error_messages(issues) == []
    assert sorted((g.patient.key, len(g.resources)) for g in groups) == [("Patient/p1", 1), ("Patient/p2", 1)]


def test_a_transaction_bundle_mixing_patients_is_refused() -> None:
    bundle = fb.collection(fb.patient(), fb.patient(id="p2"), fb.cac(), bundle_type="transaction")
    _groups, issues = group(bundle)
    (message,) = error_messages(issues)
    assert "mixes several patients" in message and "Patient/p1" in message and "Patient/p2" in message


def test_single_resources_across_documents_are_joined_by_reference() -> None:
    groups, issues = group(fb.patient(), fb.cac())
    assert error_messages(issues) == [] and len(groups[0].resources) == 1


def test_unresolved_subject_is_an_error_at_the_element() -> None:
    _groups, issues = group(fb.collection(fb.patient(), fb.cac(subject={"reference": "Patient/nobody"})))
    (message,) = error_messages(issues)
    assert message.startswith("doc0.json: Bundle.entry[1].resource.subject") and "does not resolve" in message


def test_subject_that_is_not_a_patient_is_an_error() -> None:
    group_resource = {"resourceType": "Group", "id": "g1", "type": "person", "actual": True}
    _groups, issues = group(
        fb.collection(fb.patient(), group_resource, fb.cac(subject={"reference": "Group/g1"}))
    )
    (message,) = error_messages(issues)
    assert "'Group/g1' is a Group, not a Patient" in message


def test_urn_uuid_references_resolve_through_full_urls() -> None:
    patient = fb.patient()
    del patient["id"]
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:5f0c4a0e-0000-4000-8000-000000000001",
                "resource": patient,
                "request": {"method": "POST", "url": "Patient"},
            },
            {
                "resource": fb.cac(subject={"reference": "urn:uuid:5f0c4a0e-0000-4000-8000-000000000001"}),
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }
    groups, issues = group(bundle)
    assert error_messages(issues) == [] and len(groups[0].resources) == 1


def test_unread_types_in_a_bundle_are_noted_not_refused() -> None:
    encounter = {"resourceType": "Encounter", "id": "e1", "status": "finished", "class": {"code": "AMB"}}
    _groups, issues = group(fb.collection(fb.patient(), fb.cac(), encounter))
    assert error_messages(issues) == []
    assert any("1 Encounter" in i.message for i in issues)


def test_a_single_resource_of_an_unread_type_is_refused() -> None:
    _groups, issues = group({"resourceType": "Practitioner", "id": "x"})
    assert "does not read Practitioner" in error_messages(issues)[0]


def test_not_fhir() -> None:
    for document, expected in [
        ([1, 2], "not a JSON object"),
        ({"hello": "world"}, "no resourceType"),
        ({"resourceType": "Spaceship"}, "not a FHIR resource type"),
    ]:
        _groups, issues = group(document)
        assert expected in error_messages(issues)[0]


def test_invalid_element_is_named_with_its_path() -> None:
    bad = fb.cac()
    bad["effectiveDateTime"] = "2026-13-45"
    bad["colour"] = "blue"
    messages = errors_after_reading(fb.collection(fb.patient(), bad))
    assert any(m.startswith("doc0.json: Bundle.entry[1].resource.effectiveDateTime") for m in messages)
    assert any("colour" in m and "unknown element" in m for m in messages)


def test_history_bundles_are_not_read() -> None:
    _groups, issues = group({"resourceType": "Bundle", "type": "history", "entry": []})
    assert "Bundle type 'history'" in error_messages(issues)[0]


def test_conflicting_copies_of_a_patient_are_refused() -> None:
    _groups, issues = group(fb.collection(fb.patient(), fb.cac()), fb.patient(gender="female"))
    assert "given, differently" in error_messages(issues)[0]


def test_deleted_entries_and_search_outcomes_are_skipped() -> None:
    bundle = fb.collection(fb.patient(), fb.cac(), bundle_type="searchset")
    bundle["entry"].append(
        {
            "resource": {
                "resourceType": "OperationOutcome",
                "issue": [{"severity": "warning", "code": "processing"}],
            },
            "search": {"mode": "outcome"},
        }
    )
    groups, issues = group(bundle)
    assert error_messages(issues) == [] and len(groups) == 1


def test_json_null_is_refused() -> None:
    scan = fb.cac()
    scan["valueQuantity"] = None
    messages = errors_after_reading(fb.collection(fb.patient(), scan))
    assert any("valueQuantity: null is not allowed" in m for m in messages)


def test_huge_integer_is_an_error_not_a_crash() -> None:
    from datetime import date

    from fhircac.fhir.read import read_patient

    scan = fb.cac(value=10**400)
    groups, issues = group(fb.collection(fb.patient(), scan))
    found = error_messages(issues) or [
        str(i) for i in read_patient(groups[0], date(2026, 3, 1)).issues if i.is_error
    ]
    assert found


def test_duplicate_ids_with_different_content_are_refused() -> None:
    _groups, issues = group(fb.collection(fb.patient(), fb.cac("o1", 120), fb.cac("o1", 5, "2025-01-01")))
    assert "Observation/o1 is also given, differently" in error_messages(issues)[0]


def test_a_transaction_referring_to_two_patients_is_refused() -> None:
    bundle = fb.collection(
        fb.patient(), fb.cac(), fb.cac("s2", subject={"reference": "Patient/p2"}), bundle_type="transaction"
    )
    _groups, issues = group(bundle, fb.patient(id="p2"))
    assert any("refers to several: Patient/p1, Patient/p2" in m for m in error_messages(issues))


def test_validation_is_remembered_only_for_resources_that_passed() -> None:
    from unittest.mock import patch

    from fhircac.fhir import inputs

    inputs.VALID_RESOURCES.clear()
    good = {"resourceType": "Patient", "id": "cache-1", "gender": "female"}
    bad = {"resourceType": "Patient", "id": "cache-2", "gender": 5}
    assert inputs.validate_resource(good, "x") == []
    first = inputs.validate_resource(bad, "x")
    assert first
    with patch.object(inputs, "_model", side_effect=AssertionError("validated again")):
        assert inputs.validate_resource(dict(good), "x") == []  # same content: remembered
    assert inputs.validate_resource(bad, "x") == first  # a failure is reported again, in full
    changed = {**good, "birthDate": "not-a-date"}
    assert inputs.validate_resource(changed, "x")  # any change in content is validated afresh


def test_the_validation_memory_is_bounded() -> None:
    from fhircac.fhir.inputs import _ValidCache

    cache = _ValidCache(3)
    digests = [bytes([i]) * 16 for i in range(5)]
    for digest in digests[:3]:
        cache.add(digest)
    assert digests[0] in cache  # used: now the most recent
    cache.add(digests[3])
    cache.add(digests[4])
    assert digests[0] in cache and digests[1] not in cache and digests[2] not in cache


def test_an_object_given_as_a_json_string_is_refused_with_its_place() -> None:
    from fhircac.fhir.inputs import validate_resource

    observation = {
        "resourceType": "Observation",
        "id": "disguised",
        "status": "final",
        "code": {"text": "CAC"},
        "valueQuantity": '{"value": 120, "unit": "Agatston"}',  # fhir.resources would parse this
        "component": [{"code": '{"text": "LAD"}', "valueString": "[kept: a string field may hold brackets]"}],
    }
    issues = validate_resource(observation, "x")
    assert [issue.location for issue in issues] == ["x.valueQuantity", "x.component[0].code"]
    assert all("JSON string" in issue.message for issue in issues)
