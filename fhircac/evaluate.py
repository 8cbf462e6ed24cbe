"""``fhircac evaluate``: FHIR documents in, one assessment per patient out (read → assess → write).

All or nothing: if any document or patient has an error, nothing is produced and every problem is
returned, so a caller never writes half a batch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from fhircac.clinical.assess import assess
from fhircac.clinical.assessment import Assessment
from fhircac.clinical.errors import InvalidInput
from fhircac.clinical.policies import Policy
from fhircac.clinical.summary import to_summary
from fhircac.fhir.inputs import group_by_patient
from fhircac.fhir.issues import Issue, has_errors
from fhircac.fhir.read import ReadResult, locate_problems, read_patient
from fhircac.fhir.write import Produced, produce, read_notes


@dataclass(frozen=True)
class Evaluation:
    read: ReadResult
    assessment: Assessment
    produced: Produced

    def summary(self) -> dict[str, Any]:
        """The ARCHITECTURE summary, plus what reading assumed or ignored (``input_notes``)."""
        return {**to_summary(self.assessment), "input_notes": read_notes(self.read.issues)}


def parse_json(text: str | bytes, origin: str) -> tuple[Any, list[Issue]]:
    try:
        return json.loads(text), []
    except json.JSONDecodeError as error:
        where = f"{origin}: line {error.lineno} column {error.colno}"
        return None, [Issue("fatal", "structure", where, f"not JSON: {error.msg}")]
    except UnicodeDecodeError as error:
        return None, [Issue("fatal", "structure", origin, f"not UTF-8 text: {error.reason}")]


def evaluate(
    documents: list[tuple[str, Any]], policy: Policy, as_of: date, recorded: datetime
) -> tuple[list[Evaluation], list[Issue]]:
    """Every patient in ``documents``; the evaluations are empty when any issue is an error."""
    groups, issues = group_by_patient(documents)
    if not groups and not has_errors(issues):
        issues.append(Issue("error", "required", "(input)", "no Patient found in the input"))
    evaluations = []
    for group in groups:
        read = read_patient(group, as_of)
        issues += read.issues
        if has_errors(read.issues) or read.record is None:
            continue
        try:
            assessment = assess(read.record, policy, as_of=as_of)
        except InvalidInput as error:
            issues += locate_problems(read, error)
            continue
        evaluations.append(Evaluation(read, assessment, produce(assessment, read, recorded=recorded)))
    if has_errors(issues):
        return [], issues
    return evaluations, issues
