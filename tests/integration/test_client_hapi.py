"""The FHIR client against HAPI FHIR itself: what the unit tests' scripted server can only imitate."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from fhircac.fhir.client import FhirClient, FhirError, NotFound, VersionConflict
from tests import fhir_builders as fb

pytestmark = pytest.mark.integration


@pytest.fixture
def prefix() -> str:
    return f"c{uuid.uuid4().hex[:8]}"


def test_paging_follows_the_servers_next_links_and_includes(fhir: FhirClient, prefix: str) -> None:
    patient = f"{prefix}-p"
    fhir.update(fb.patient(id=patient))
    medication = {
        "resourceType": "Medication",
        "id": f"{prefix}-med",
        "code": fb.rxnorm("83367", "atorvastatin"),
    }
    fhir.update(medication)
    for n in range(7):
        statement = fb.medication_statement(id=f"{prefix}-ms{n}", reference=f"Medication/{prefix}-med")
        fhir.update({**statement, "subject": {"reference": f"Patient/{patient}"}})
    params = {"patient": f"Patient/{patient}", "_include": "MedicationStatement:medication", "_count": "3"}
    pages = list(fhir.search("MedicationStatement", params))
    assert len(pages) == 3  # 3 + 3 + 1, by the server's own next links
    result = fhir.search_all("MedicationStatement", params)
    assert sorted(r["id"] for r in result.matches) == sorted(f"{prefix}-ms{n}" for n in range(7))
    assert [r["id"] for r in result.includes] == [f"{prefix}-med"]  # once, though on every page


def test_last_updated_window(fhir: FhirClient, prefix: str) -> None:
    before = datetime.now(UTC) - timedelta(seconds=2)
    fhir.update(fb.patient(id=f"{prefix}-p"))
    since = {"_id": f"{prefix}-p", "_lastUpdated": f"ge{before.isoformat(timespec='milliseconds')}"}
    assert len(fhir.search_resources("Patient", since)) == 1
    later = (datetime.now(UTC) + timedelta(minutes=5)).isoformat(timespec="milliseconds")
    assert fhir.search_resources("Patient", {"_id": f"{prefix}-p", "_lastUpdated": f"ge{later}"}) == []


def test_conditional_create_matches_instead_of_duplicating(fhir: FhirClient, prefix: str) -> None:
    resource = {**fb.patient(), "identifier": [{"system": "urn:test", "value": prefix}]}
    del resource["id"]  # a server-assigned id: only the identifier can match
    first = fhir.create(resource, if_none_exist=f"identifier=urn:test|{prefix}")
    second = fhir.create(resource, if_none_exist=f"identifier=urn:test|{prefix}")
    assert (first.status, first.created) == (201, True)
    assert (second.status, second.created) == (200, False)
    assert (
        first.location
        and second.location
        and first.location.split("/_history")[0] == second.location.split("/_history")[0]
    )
    assert len(fhir.search_resources("Patient", {"identifier": f"urn:test|{prefix}"})) == 1


def test_stale_if_match_is_a_version_conflict_on_hapi(fhir: FhirClient, prefix: str) -> None:
    """HAPI answers a stale If-Match with 409 (the spec says 412); the client calls both a conflict."""
    first = fhir.update(fb.patient(id=f"{prefix}-p"))
    assert first.etag == 'W/"1"'
    fhir.update(fb.patient(id=f"{prefix}-p", gender="female"), if_match=1)
    with pytest.raises(VersionConflict) as conflict:
        fhir.update(fb.patient(id=f"{prefix}-p", gender="male"), if_match='W/"1"')
    assert conflict.value.status in (409, 412)
    assert "not the current version" in str(conflict.value)  # HAPI's OperationOutcome text
    assert fhir.read("Patient", f"{prefix}-p")["gender"] == "female"


def test_server_errors_carry_the_operation_outcome_text(fhir: FhirClient, prefix: str) -> None:
    with pytest.raises(NotFound) as missing:
        fhir.read("Patient", f"{prefix}-nobody")
    assert missing.value.status == 404 and f"{prefix}-nobody" in str(missing.value)
    with pytest.raises(FhirError) as invalid:
        fhir.create({"resourceType": "Observation", "status": "not-a-status", "code": {"text": "x"}})
    assert invalid.value.status == 400 and invalid.value.outcome is not None
    assert "not-a-status" in str(invalid.value)


def test_transaction_with_a_dangling_reference_is_refused_whole(fhir: FhirClient, prefix: str) -> None:
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": fb.patient(id=f"{prefix}-p"),
                "request": {"method": "PUT", "url": f"Patient/{prefix}-p"},
            },
            {
                "resource": fb.cac(id=f"{prefix}-s", subject={"reference": f"Patient/{prefix}-nobody"}),
                "request": {"method": "PUT", "url": f"Observation/{prefix}-s"},
            },
        ],
    }
    with pytest.raises(FhirError) as refused:
        fhir.transaction(bundle)
    assert refused.value.status in (400, 404, 409, 422)
    with pytest.raises(NotFound):
        fhir.read("Patient", f"{prefix}-p")  # atomic: the valid entry was not kept either
