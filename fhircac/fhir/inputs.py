"""FHIR input → one ``PatientInput`` per patient: parse, validate structure, resolve references, group.

Accepts Bundles (collection, searchset, transaction, batch, document) and single resources. Every
resource fhircac reads is validated with ``fhir.resources.R4B`` (what it does not read is skipped
unvalidated, see ``relevance``); anything wrong is an ``Issue`` naming where it is. A
transaction Bundle is one patient's record: several patients in one is refused, because nothing
tells which resource belongs to whom when such a bundle is replayed.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from pydantic import BaseModel, ValidationError

from fhircac.fhir import relevance
from fhircac.fhir.issues import Issue

ACCEPTED_BUNDLE_TYPES = frozenset({"collection", "searchset", "transaction", "batch", "document"})
# resource type → the element that names its patient (Medication has none: it is shared)
PATIENT_ELEMENT = {
    "Observation": "subject",
    "Condition": "subject",
    "Procedure": "subject",
    "MedicationStatement": "subject",
    "MedicationRequest": "subject",
    "FamilyMemberHistory": "patient",
}
READABLE_TYPES = frozenset({"Patient", "Medication", *PATIENT_ELEMENT})


@dataclass(frozen=True)
class Located:
    """A resource (already validated) and where it came from, for messages and references."""

    resource: dict[str, Any]
    location: str
    full_url: str | None = None

    @property
    def type(self) -> str:
        return str(self.resource["resourceType"])

    @property
    def id(self) -> str | None:
        value = self.resource.get("id")
        return str(value) if value else None

    @property
    def version(self) -> str | None:
        value = (self.resource.get("meta") or {}).get("versionId")
        return str(value) if value else None

    @property
    def key(self) -> str:
        """``Type/id`` when the resource has an id, else its fullUrl or location: stable within a run."""
        if self.id:
            return f"{self.type}/{self.id}"
        return self.full_url or self.location

    def at(self, path: str) -> str:
        return f"{self.location}.{path}" if path else self.location


@dataclass
class PatientInput:
    patient: Located
    resources: list[Located] = field(default_factory=list)
    medications: dict[str, Located] = field(default_factory=dict)  # reference → Medication
    defective_scans: list[Defect] = field(default_factory=list)  # CAC Observations that are not valid
    listed: set[str] = field(default_factory=set)  # types present but not read (a list exists)

    def of_type(self, resource_type: str) -> list[Located]:
        return [r for r in self.resources if r.type == resource_type]


@cache
def _model(resource_type: str) -> Any:
    from fhir.resources.R4B import get_fhir_model_class

    return get_fhir_model_class(resource_type)


def _path(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


class _ValidCache:
    """Digests of resources that passed validation, most recently used last, bounded.

    Validation is a pure function of a resource's content and costs 0.1-1 ms per resource, while
    the same resources come back again and again (a chart opened, then its orders signed; the
    poller re-reading a patient). Only passes are remembered: a failure is re-reported in full.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._digests: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def digest(resource: dict[str, Any]) -> bytes | None:
        try:
            text = json.dumps(resource, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        except (TypeError, ValueError):
            return None
        return hashlib.blake2b(text.encode(), digest_size=16).digest()

    def __contains__(self, digest: bytes) -> bool:
        with self._lock:
            if digest in self._digests:
                self._digests.move_to_end(digest)
                return True
            return False

    def clear(self) -> None:
        with self._lock:
            self._digests.clear()

    def add(self, digest: bytes) -> None:
        with self._lock:
            self._digests[digest] = None
            if len(self._digests) > self.size:
                self._digests.popitem(last=False)


VALID_RESOURCES = _ValidCache(50_000)  # about 6 MB at most


def validate_resource(resource: dict[str, Any], location: str) -> list[Issue]:
    """Structure and datatypes per FHIR R4 (fhir.resources R4B), each problem at its element."""
    digest = VALID_RESOURCES.digest(resource)
    if digest is not None and digest in VALID_RESOURCES:
        return []
    try:
        model = _model(str(resource["resourceType"])).model_validate(resource)
    except ValidationError as error:
        issues = []
        for detail in error.errors():
            path = _path(tuple(detail["loc"]))
            message = str(detail["msg"]).removeprefix("Value error, ")
            if detail["type"] == "extra_forbidden":
                message = "unknown element (not part of FHIR R4)"
            where = f"{location}.{path}" if path else location
            issues.append(Issue("error", "structure", where, message))
        return issues
    except ValueError as error:
        return [Issue("error", "structure", location, f"not a valid FHIR resource: {error}")]
    except (TypeError, KeyError):
        return [
            Issue("error", "structure", location, "not a valid FHIR resource: its structure cannot be read")
        ]
    disguised = [
        Issue(
            "error",
            "structure",
            f"{location}.{path}",
            "an object is given as a JSON string; FHIR JSON nests it",
        )
        for path in _objects_in_strings(resource, model, "")
    ]
    if disguised:
        return disguised
    if digest is not None:
        VALID_RESOURCES.add(digest)
    return []


def _objects_in_strings(node: dict[str, Any], model: Any, path: str) -> Iterator[str]:
    """Elements fhir.resources parsed out of a JSON *string* (it accepts ``"meta": "{...}"``): the
    readers expect the object itself, so such input is refused rather than half-read."""
    for key, value in node.items():
        if key == "resourceType" or key.startswith("_"):
            continue
        where = f"{path}.{key}" if path else key
        attribute = getattr(model, key, None)
        if isinstance(value, str):
            if value.lstrip()[:1] in ("{", "[") and isinstance(attribute, BaseModel | list):
                yield where
        elif isinstance(value, dict) and isinstance(attribute, BaseModel):
            yield from _objects_in_strings(value, attribute, where)
        elif isinstance(value, list) and isinstance(attribute, list):
            for index, (item, parsed) in enumerate(zip(value, attribute, strict=False)):
                if (
                    isinstance(item, str)
                    and item.lstrip()[:1] in ("{", "[")
                    and isinstance(parsed, BaseModel)
                ):
                    yield f"{where}[{index}]"
                elif isinstance(item, dict) and isinstance(parsed, BaseModel):
                    yield from _objects_in_strings(item, parsed, f"{where}[{index}]")


def _nulls(node: Any, path: str) -> Iterator[str]:
    """JSON nulls: FHIR JSON never has them (an absent element is left out), so they are errors."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from ([f"{path}.{key}"] if value is None else _nulls(value, f"{path}.{key}"))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from ([f"{path}[{index}]"] if value is None else _nulls(value, f"{path}[{index}]"))


def _check_resource(resource: Any, location: str, issues: list[Issue]) -> bool:
    if not isinstance(resource, dict):
        issues.append(Issue("error", "structure", location, "not a JSON object, so not a FHIR resource"))
        return False
    resource_type = resource.get("resourceType")
    if not isinstance(resource_type, str) or not resource_type:
        issues.append(Issue("error", "structure", location, "no resourceType, so not a FHIR resource"))
        return False
    try:
        _model(resource_type)
    except (ValueError, KeyError):
        issues.append(
            Issue("error", "not-supported", location, f"{resource_type!r} is not a FHIR resource type")
        )
        return False
    nulls = [
        Issue("error", "structure", where, "null is not allowed in FHIR JSON")
        for where in _nulls(resource, location)
    ]
    if nulls:
        issues.extend(nulls)
        return False
    found = validate_resource(resource, location)
    issues.extend(found)
    return not found


def collect(
    document: Any,
    origin: str,
    issues: list[Issue],
    unread: list[Located] | None = None,
    defective: list[Defect] | None = None,
    listed: list[Located] | None = None,
) -> list[Located]:
    """The readable resources of one input document (a Bundle or a single resource).

    Only what fhircac reads is validated: resources of other types (and Observations and Procedures
    whose codes fhircac does not read) are skipped unvalidated with one note per type, and go to
    ``unread`` (they may still be the target of a reference). A read resource that is not valid
    FHIR goes to ``defective`` with its problems (the reader decides: dropped with a note, unless it
    is the current CAC scan); without ``defective`` its problems are errors. Conditions and
    medication statements not read go to ``listed``: they still show that a list exists.
    """
    location = f"{origin}: {_type_name(document)}"
    if not _is_bundle(document):
        if not _check_resource(document, location, issues):
            return []
        located = Located(document, f"{origin}: {document['resourceType']}")
        if located.type not in READABLE_TYPES:
            readable = ", ".join(sorted(READABLE_TYPES))
            issues.append(
                Issue(
                    "error",
                    "not-supported",
                    located.location,
                    f"fhircac does not read {located.type} resources; give a Bundle or one of: {readable}",
                )
            )
            return []
        return [located]
    bundle_type = document.get("type")
    if bundle_type not in ACCEPTED_BUNDLE_TYPES:
        accepted = ", ".join(sorted(ACCEPTED_BUNDLE_TYPES))
        message = f"Bundle type {bundle_type!r} is not read; accepted: {accepted}"
        issues.append(Issue("error", "not-supported", f"{origin}: Bundle.type", message))
        return []
    entries = document.get("entry", [])
    if not isinstance(entries, list):
        issues.append(Issue("error", "structure", f"{origin}: Bundle.entry", "Bundle.entry must be an array"))
        return []
    found: list[Located] = []
    ignored: dict[str, int] = {}
    not_read: dict[str, int] = {}
    for index, entry in enumerate(entries):
        where = f"{origin}: Bundle.entry[{index}]"
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(entry, dict) or not isinstance(resource, dict):
            if not _deleted_or_outcome(entry):
                issues.append(
                    Issue("warning", "structure", where, "not a Bundle entry with a resource: skipped")
                )
            continue
        if _deleted_or_outcome(entry):
            continue
        resource_type = resource.get("resourceType")
        if not isinstance(resource_type, str):
            issues.append(Issue("warning", "structure", f"{where}.resource", "no resourceType: skipped"))
            continue
        full_url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
        located = Located(resource, f"{where}.resource", full_url)
        if resource_type not in READABLE_TYPES:
            ignored[resource_type] = ignored.get(resource_type, 0) + 1
            if unread is not None:
                unread.append(located)
            continue
        if not relevance.is_read(resource):
            not_read[resource_type] = not_read.get(resource_type, 0) + 1
            if listed is not None and resource_type in relevance.LISTS:
                listed.append(located)
            continue
        problems = _problems(resource, located.location)
        if not problems:
            found.append(located)
        elif defective is not None:
            defective.append(Defect(located, problems))
        else:
            issues.extend(problems)
    for resource_type, count in sorted(ignored.items()):
        message = f"{count} {resource_type} resource(s) ignored: fhircac does not read them"
        issues.append(Issue("information", "informational", f"{origin}: Bundle", message))
    for resource_type, count in sorted(not_read.items()):
        message = f"{count} {resource_type} resource(s) with codes fhircac does not read: ignored"
        issues.append(Issue("information", "informational", f"{origin}: Bundle", message))
    return found


@dataclass(frozen=True)
class Defect:
    """A resource fhircac would read that is not valid FHIR, and why."""

    located: Located
    problems: list[Issue]


def _deleted_or_outcome(entry: Any) -> bool:
    if not isinstance(entry, dict):
        return False
    request, search = entry.get("request"), entry.get("search")
    return (isinstance(request, dict) and request.get("method") == "DELETE") or (
        isinstance(search, dict) and search.get("mode") == "outcome"
    )


# The elements the reader uses, per type (and every choice element of these prefixes): only they are
# validated, so a defect in, say, a MedicationRequest's dosageInstruction or an Observation's
# referenceRange never drops what fhircac reads (and validation costs a fraction).
_COMMON = frozenset({"resourceType", "id", "meta", "identifier", "contained"})
READ_ELEMENTS: dict[str, tuple[frozenset[str], tuple[str, ...]]] = {
    "Observation": (
        frozenset({"status", "code", "subject", "issued", "component", "bodySite"}),
        ("value", "effective"),
    ),
    "Condition": (
        frozenset({"clinicalStatus", "verificationStatus", "code", "subject", "recordedDate"}),
        ("onset",),
    ),
    "Procedure": (frozenset({"status", "code", "subject"}), ("performed",)),
    "MedicationRequest": (
        frozenset({"status", "intent", "subject", "authoredOn", "dispenseRequest", "priorPrescription"}),
        ("medication",),
    ),
    "MedicationStatement": (frozenset({"status", "subject", "dateAsserted"}), ("medication", "effective")),
}


@cache
def _element_names(resource_type: str) -> frozenset[str]:
    return frozenset(field.alias or name for name, field in _model(resource_type).model_fields.items())


def read_part(resource: dict[str, Any]) -> dict[str, Any]:
    """The part of ``resource`` fhircac reads (all of it for types not in READ_ELEMENTS); an element
    that is no FHIR element of the type stays in, so that it is still reported."""
    resource_type = str(resource.get("resourceType"))
    spec = READ_ELEMENTS.get(resource_type)
    if spec is None:
        return resource
    names, prefixes = spec
    known = _element_names(resource_type)
    return {
        key: value
        for key, value in resource.items()
        if (bare := key.removeprefix("_")) in names
        or bare in _COMMON
        or bare.startswith(prefixes)
        or key not in known
    }


def _problems(resource: dict[str, Any], location: str) -> list[Issue]:
    part = read_part(resource)
    nulls = [
        Issue("error", "structure", where, "null is not allowed in FHIR JSON")
        for where in _nulls(part, location)
    ]
    return nulls or validate_resource(part, location)


def _is_bundle(document: Any) -> bool:
    return isinstance(document, dict) and document.get("resourceType") == "Bundle"


def _type_name(document: Any) -> str:
    if isinstance(document, dict) and isinstance(document.get("resourceType"), str):
        return str(document["resourceType"])
    return "(document)"


def _reference(value: Any) -> str | None:
    if isinstance(value, dict) and isinstance(value.get("reference"), str):
        return str(value["reference"])
    return None


class _Index:
    """Resolves references the way a FHIR server would: ``Type/id``, absolute URLs, ``urn:uuid:``."""

    def __init__(self, resources: list[Located]) -> None:
        self._by_key: dict[str, Located] = {}
        for located in resources:
            if located.id:
                self._by_key[f"{located.type}/{located.id}"] = located
            if located.full_url:
                self._by_key[located.full_url] = located

    def resolve(self, reference: str) -> Located | None:
        if reference in self._by_key:
            return self._by_key[reference]
        parts = reference.split("/_history/")[0].rstrip("/").split("/")
        if len(parts) >= 2:
            return self._by_key.get(f"{parts[-2]}/{parts[-1]}")
        return None


def _contained(located: Located, reference: str) -> Located | None:
    for index, resource in enumerate(located.resource.get("contained") or []):
        if isinstance(resource, dict) and resource.get("id") == reference[1:]:
            return Located(resource, located.at(f"contained[{index}]"))
    return None


def collection(resources: list[dict[str, Any]]) -> dict[str, Any]:
    """Loose resources (a prefetch key, a server's search results) as one document for the reader."""
    return {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": r} for r in resources]}


def group_by_patient(documents: list[tuple[str, Any]]) -> tuple[list[PatientInput], list[Issue]]:
    """Every readable resource of every document, grouped by the Patient it points at."""
    issues: list[Issue] = []
    everything: list[Located] = []
    unread: list[Located] = []
    defects: list[Defect] = []
    listed: list[Located] = []
    for origin, document in documents:
        collected = collect(document, origin, issues, unread, defects, listed)
        if _is_bundle(document) and document.get("type") == "transaction":
            patients = [r for r in collected if r.type == "Patient"]
            if len(patients) > 1:
                names = ", ".join(f"{p.key} ({p.location.split(': ', 1)[1]})" for p in patients)
                issues.append(
                    Issue(
                        "error",
                        "business-rule",
                        f"{origin}: Bundle",
                        "a transaction Bundle is one patient's record, but this one mixes several "
                        f"patients: {names}",
                    )
                )
                continue
        everything.extend(collected)
    index = _Index(everything + unread)
    groups: dict[str, PatientInput] = {}
    patients_of: dict[str, set[str]] = {}  # document → the patients its resources refer to
    transactions = {origin for origin, d in documents if _is_bundle(d) and d.get("type") == "transaction"}
    seen: dict[str, Located] = {}
    unique: list[Located] = []
    for located in everything:
        existing = seen.get(located.key)
        if existing is None:
            seen[located.key] = located
            unique.append(located)
        elif existing.resource != located.resource:
            message = f"{located.key} is also given, differently, at {existing.location}"
            issues.append(Issue("error", "duplicate", located.location, message))
    everything = unique
    for located in everything:
        if located.type == "Patient":
            groups.setdefault(located.key, PatientInput(located))
    for located in everything:
        if located.type in ("Patient", "Medication"):
            continue
        element = PATIENT_ELEMENT[located.type]
        reference = _reference(located.resource.get(element))
        if reference is None:
            issues.append(Issue("error", "required", located.at(element), f"{located.type} names no patient"))
            continue
        target = index.resolve(reference)
        if target is None:
            issues.append(
                Issue(
                    "error",
                    "not-found",
                    located.at(element),
                    f"reference {reference!r} does not resolve in the input",
                )
            )
            continue
        if target.type != "Patient":
            issues.append(
                Issue(
                    "error",
                    "invalid",
                    located.at(element),
                    f"{reference!r} is a {target.type}, not a Patient",
                )
            )
            continue
        groups[target.key].resources.append(located)
        patients_of.setdefault(located.location.split(": ", 1)[0], set()).add(target.key)
    for origin, referred in sorted(patients_of.items()):
        if origin in transactions and len(referred) > 1:
            names = ", ".join(sorted(referred))
            message = f"a transaction Bundle is one patient's record, but this one refers to several: {names}"
            issues.append(Issue("error", "business-rule", f"{origin}: Bundle", message))
    for located in listed:
        reference = _reference(located.resource.get(PATIENT_ELEMENT[located.type]))
        target = index.resolve(reference) if reference else None
        if target is not None and target.key in groups:
            groups[target.key].listed.add(located.type)
    for defect in defects:
        _place_defect(defect, groups, index, issues)
    for group in groups.values():
        _attach_medications(group, index, issues)
    return list(groups.values()), issues


def _place_defect(
    defect: Defect, groups: dict[str, PatientInput], index: _Index, issues: list[Issue]
) -> None:
    """A Patient that is not valid FHIR cannot be assessed; a CAC Observation goes to its patient
    (the reader decides whether it was the current scan); anything else is dropped, said so."""
    located = defect.located
    if located.type == "Patient":
        issues.extend(defect.problems)
        return
    if located.type == "Observation" and relevance.is_cac(located.resource):
        reference = _reference(located.resource.get("subject"))
        target = index.resolve(reference) if reference else None
        group = groups.get(target.key) if target is not None else None
        if group is not None:
            group.defective_scans.append(defect)
        else:
            issues.extend(defect.problems)
        return
    issues.extend(
        Issue("warning", p.code, p.location, f"{p.message} (this {located.type} is not valid FHIR: not read)")
        for p in defect.problems
    )


def _attach_medications(group: PatientInput, index: _Index, issues: list[Issue]) -> None:
    for located in group.resources:
        if located.type not in ("MedicationStatement", "MedicationRequest"):
            continue
        reference = _reference(located.resource.get("medicationReference"))
        if reference is None:
            continue
        target = _contained(located, reference) if reference.startswith("#") else index.resolve(reference)
        if target is None:  # a search without _include: the order is read by the reference's display
            issues.append(
                Issue(
                    "warning",
                    "not-found",
                    located.at("medicationReference"),
                    f"reference {reference!r} does not resolve in the input: the medication is read from "
                    "the reference's display, if any",
                )
            )
        elif target.type != "Medication":
            issues.append(
                Issue(
                    "error", "invalid", located.at("medicationReference"), f"{reference!r} is a {target.type}"
                )
            )
        else:
            group.medications[reference] = target
