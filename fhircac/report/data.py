"""Where a report's data comes from: the one place the report page reads patient data.

``from_fhir_server`` reads the configured FHIR server with fhircac's own credentials, which is why
a signed link (``fhircac.report.links.Grant``: patient, server, CDS client) must first show that the
caller read this patient there with its own token. A SMART on FHIR launch needs only another
``FetchPatient``: the same searches with the launch's access token, whose scope is then the access
check itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from fhircac.clinical.assessment import Assessment
from fhircac.clinical.policies import Policy
from fhircac.evaluate import assess_group
from fhircac.fhir.client import FhirClient
from fhircac.fhir.inputs import collection, group_by_patient
from fhircac.fhir.issues import Issue, has_errors
from fhircac.fhir.read import ReadResult
from fhircac.worker.writeback import fetch_patients

# A patient id → everything the reader needs about that patient (None: no such patient).
FetchPatient = Callable[[str], list[dict[str, Any]] | None]


@dataclass(frozen=True)
class ReportData:
    read: ReadResult
    assessment: Assessment

    @property
    def notes(self) -> list[Issue]:
        """What reading assumed or ignored, for the clinician section."""
        return [issue for issue in self.read.issues if not issue.is_error]


class ReportRefused(Exception):
    """No report can be made from this data; ``status`` is the HTTP status that says why."""

    def __init__(self, status: int, issues: list[Issue]) -> None:
        super().__init__("; ".join(issue.message for issue in issues))
        self.status = status
        self.issues = issues


def from_fhir_server(client: FhirClient) -> FetchPatient:
    def fetch(patient_id: str) -> list[dict[str, Any]] | None:
        data = fetch_patients(client, [patient_id]).get(patient_id)
        return None if data is None else data.resources

    return fetch


def fetched(fetch: FetchPatient, patient_id: str, policy: Policy, today: date) -> ReportData:
    resources = fetch(patient_id)
    if resources is None:
        raise ReportRefused(
            404, [Issue("error", "not-found", "Patient", "the FHIR server has no such patient")]
        )
    return assessed([("server", collection(resources))], patient_id, policy, today, status=422)


def assessed(
    documents: list[tuple[str, Any]],
    patient_id: str | None,
    policy: Policy,
    today: date,
    *,
    status: int = 400,
) -> ReportData:
    """The one patient of ``documents`` (or the one named ``patient_id``), read and assessed.

    ``status`` is what unusable data means for the caller: 400 for a posted bundle (the caller sent
    it), 422 for data read from a server (the request was fine; the record cannot be assessed).
    """
    groups, issues = group_by_patient(documents)
    if has_errors(issues):
        raise ReportRefused(status, [i for i in issues if i.is_error])
    if patient_id is not None:
        groups = [g for g in groups if g.patient.id == patient_id]
    if not groups:
        where = "no Patient" if patient_id is None else f"no Patient with id {patient_id!r}"
        raise ReportRefused(status, [Issue("error", "required", "(input)", f"{where} in the data")])
    if len(groups) > 1:
        ids = ", ".join(repr(g.patient.id) for g in groups)
        message = f"the data holds {len(groups)} patients ({ids}); name one with ?patient=<id>"
        raise ReportRefused(status, [Issue("error", "multiple-matches", "(input)", message)])
    read, assessment, found = assess_group(groups[0], policy, today)
    if assessment is None or read.record is None:
        raise ReportRefused(status, [i for i in found if i.is_error] or found)
    read.issues += [i for i in issues if not i.is_error and i not in read.issues]
    return ReportData(read, assessment)
