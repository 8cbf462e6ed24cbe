"""``fhircac evaluate``: FHIR documents in, one assessment per patient out (read → assess → write).

Patient by patient: a patient whose record has an error is refused (every problem is returned), the
others are assessed. A document with an error outside any one patient's record (an unresolvable
reference, a transaction mixing patients) refuses the patients of that document only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from fhircac.clinical.assess import assess
from fhircac.clinical.assessment import Assessment
from fhircac.clinical.errors import InvalidInput
from fhircac.clinical.inputs import record_inputs
from fhircac.clinical.policies import Policy
from fhircac.clinical.summary import to_summary
from fhircac.fhir.inputs import PatientInput, group_by_patient
from fhircac.fhir.issues import Issue, has_errors
from fhircac.fhir.read import ReadResult, locate_problems, read_patient
from fhircac.fhir.write import Produced, produce, read_notes


@dataclass(frozen=True)
class Evaluation:
    read: ReadResult
    assessment: Assessment
    produced: Produced

    def summary(self) -> dict[str, Any]:
        """The ARCHITECTURE summary, plus what was read (``inputs``, see ``clinical.inputs``) and what
        reading assumed or ignored (``input_notes``)."""
        assert self.read.record is not None  # an evaluation exists only for a record that was read
        return {
            **to_summary(self.assessment),
            "inputs": record_inputs(self.read.record),
            "input_notes": read_notes(self.read.issues),
        }


class _DuplicateKey(ValueError):
    pass


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))  # type: ignore[func-returns-value]
        raise _DuplicateKey(f"the key {duplicate!r} appears twice in one object")
    return result


def _no_constants(name: str) -> Any:
    raise _NotJson(f"{name} is not a JSON number")


class _NotJson(ValueError):
    pass


_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


MAX_DEPTH = 100  # FHIR documents nest about 15 deep; deeper input would only exhaust recursion later


def _depth(data: Any) -> int:
    """Nesting depth, level by level without recursion (the point is to refuse what recursion
    cannot handle); it stops counting past MAX_DEPTH."""
    level = [data] if isinstance(data, dict | list) else []
    depth = 0
    while level:
        depth += 1
        if depth > MAX_DEPTH:
            return depth
        below: list[Any] = []
        for node in level:
            below += [
                c for c in (node.values() if isinstance(node, dict) else node) if isinstance(c, dict | list)
            ]
        level = below
    return depth


def parse_json(text: str | bytes, origin: str) -> tuple[Any, list[Issue]]:
    """JSON as FHIR needs it: well formed, UTF-8, no duplicate keys (which value would be meant?),
    no NaN or Infinity, no unpaired surrogates (they are not Unicode text), numbers of sane length."""
    try:
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        data = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constants)
        if _depth(data) > MAX_DEPTH:
            raise RecursionError
        if _ESCAPED_SURROGATE.search(text):
            json.dumps(data, ensure_ascii=False).encode("utf-8")  # raises on an unpaired surrogate
        return data, []
    except _DuplicateKey as error:
        return None, [Issue("fatal", "structure", origin, f"not valid FHIR JSON: {error}")]
    except RecursionError:
        return None, [Issue("fatal", "structure", origin, "not usable JSON: nested too deeply")]
    except json.JSONDecodeError as error:
        where = f"{origin}: line {error.lineno} column {error.colno}"
        return None, [Issue("fatal", "structure", where, f"not JSON: {error.msg}")]
    except UnicodeDecodeError as error:
        return None, [Issue("fatal", "structure", origin, f"not UTF-8 text: {error.reason}")]
    except UnicodeEncodeError:
        return None, [
            Issue("fatal", "structure", origin, "not usable JSON: a string holds an unpaired surrogate")
        ]
    except _NotJson as error:
        return None, [Issue("fatal", "structure", origin, f"not JSON: {error}")]
    except ValueError as error:  # e.g. an integer longer than Python converts (4300 digits)
        return None, [Issue("fatal", "structure", origin, f"not usable JSON: {error}")]


def evaluate(
    documents: list[tuple[str, Any]],
    policy: Policy,
    as_of: date,
    recorded: datetime,
    *,
    writing: bool = True,
    care_plan: bool = True,
) -> tuple[list[Evaluation], list[Issue]]:
    """Every patient in ``documents`` that could be assessed; the issues say why any other was not.

    ``writing``: the resources will go to a FHIR server, so every patient must be referable.
    ``care_plan``: see ``produce`` (False for a scan a later one has replaced).
    """
    groups, issues = group_by_patient(documents)
    document_notes = [i for i in issues if not i.is_error]
    refused_documents = {i.location.split(": ", 1)[0] for i in issues if i.is_error}
    if not groups and not has_errors(issues):
        issues.append(Issue("error", "required", "(input)", "no Patient found in the input"))
    evaluations = []
    for group in groups:
        # The document's notes (e.g. resources of unread types) travel with its patients' results;
        # ``issues`` already holds them once.
        origin = group.patient.location.split(": ", 1)[0]
        if origin in refused_documents:
            continue
        read, assessment, found = assess_group(group, policy, as_of)
        issues += found
        read.issues += [note for note in document_notes if note.location.split(": ", 1)[0] == origin]
        if writing and not group.patient.id and not read.patient.identifier:
            message = (
                "the Patient has neither an id nor an identifier, so written resources could not name it"
            )
            issues.append(Issue("error", "required", group.patient.location, message))
            continue
        if assessment is None:
            continue
        if has_errors(found):
            continue
        # A deceased patient's record is assessed, but no active care plan is proposed.
        plan = care_plan and not (read.record is not None and read.record.deceased)
        evaluations.append(
            Evaluation(read, assessment, produce(assessment, read, recorded=recorded, care_plan=plan))
        )
    return evaluations, issues


def assess_group(
    group: PatientInput, policy: Policy, as_of: date
) -> tuple[ReadResult, Assessment | None, list[Issue]]:
    """One patient: read, then assess unless reading found errors. The issues are reading's and the
    core's (located at the resource they came from); the assessment is None when any is an error."""
    read = read_patient(group, as_of)
    issues = list(read.issues)
    if has_errors(read.issues) or read.record is None:
        return read, None, issues
    try:
        return read, assess(read.record, policy, as_of=as_of), issues
    except InvalidInput as error:
        return read, None, issues + locate_problems(read, error)
