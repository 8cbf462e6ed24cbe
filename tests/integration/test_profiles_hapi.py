"""profiles/ loaded into HAPI; every example input and every resource fhircac writes passes ``$validate``.

The profiles are PUT by id (CodeSystems, then ValueSets, then StructureDefinitions, then the
CapabilityStatement). They carry differentials only: HAPI generates the snapshots itself, which
``test_profiles_load_and_hapi_builds_their_snapshots`` checks with ``$snapshot``.

What counts as a failure (``_failures``):

* every issue of severity ``error`` or ``fatal``: none is filtered out;
* any issue, whatever its severity, whose text names a ``https://fhircac.org/`` URL. Our own
  CodeSystems, ValueSets and extensions are loaded, so HAPI can check them completely: a warning such
  as "Unable to validate code https://fhircac.org/fhir/CodeSystem/fhircac-rule#x - Code is not found
  in CodeSystem" (an unbound coding with a code our CodeSystem lacks; HAPI only warns) or
  "Unknown extension https://fhircac.org/…" is a defect of ours, not a HAPI limitation.

Allowed (warnings and information that say nothing about our content; counted, printed with
``-rP``): "CodeSystem is unknown and can't be validated" for LOINC, RxNorm, ICD-10-CM, CPT and the
IPS absent-unknown codes (the test server has no terminology server), dom-6 "should have narrative",
"all observations should have a performer", the UCUM ``{Agatston}`` annotation best-practice warning
(fhircac writes that unit on purpose; profiles/README.md), "Unknown extension" for US Core race and
ethnicity (US Core is not loaded), the information that the server-set ``meta.source`` (``#abc…``)
looks like an internal reference; on the profile files themselves, "The value set references
CodeSystem 'http://snomed.info/sct' which has status 'not-present'", and the information that the
``pattern`` discriminator is deprecated in R5+ and that required extension slices add up to more than
the sliced element's minimum of 0.

One narrowly matched class is ignored, and only in ``test_profile_files_themselves_validate`` (the
conformance resources, validated against the core spec): the error "Error generating Snapshot:
Unable to resolve package id hl7.fhir.r4.core#null (this usually arises from a problem in the
differential)" on a StructureDefinition of type Extension. HAPI 8.8.0 reports it for every Extension
StructureDefinition, a minimal spec-conformant one included, while it generates their snapshots
without complaint (``$snapshot``) and validates resources against them (the negative controls).
The test checks that the minimal extension still gets this error, so it notices when HAPI is fixed.

HAPI ignores a ``?profile=`` it does not know (no issue at all), so the negative controls validate
broken resources whose ``meta.profile`` was removed: the errors they must produce prove that each
profile, our ValueSets and CodeSystems are really applied.
"""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from fhircac.clinical.policies import get_policy
from fhircac.evaluate import evaluate
from fhircac.fhir import codes
from fhircac.fhir.client import FhirClient
from fhircac.worker.writeback import write_back
from tests.integration.conftest import EXAMPLES, ROOT, patient_id

pytestmark = pytest.mark.integration

PROFILES = ROOT / "profiles"
LOAD_ORDER = ("CodeSystem", "ValueSet", "StructureDefinition", "CapabilityStatement")
POLICIES = ("acc-aha-2018", "lifestyle-first")
OUTPUT_PROFILES = {
    "RiskAssessment": codes.PROFILE_CAC_RISK_ASSESSMENT,
    "CarePlan": codes.PROFILE_CAC_CARE_PLAN,
    "Provenance": codes.PROFILE_CAC_PROVENANCE,
}
AS_OF = date(2026, 11, 1)
RECORDED = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
OWN_URL = "https://fhircac.org/"
# The examples' client ids (cac-exNN…) are shared with other integration tests on the same server;
# the write-back runs use renamed copies, so their outputs are this module's alone.
ID_PREFIX = "prof-hapi-ex"

Outcome = dict[str, Any]


# --- helpers --------------------------------------------------------------------------------------


def _profile_files() -> list[Path]:
    files = sorted(PROFILES.glob("*.json"))
    return sorted(files, key=lambda p: (LOAD_ORDER.index(p.name.split("-", 1)[0]), p.name))


def _issues(outcome: Outcome) -> list[dict[str, Any]]:
    return [i for i in outcome.get("issue") or [] if isinstance(i, dict)]


def _text(issue: dict[str, Any]) -> str:
    details = issue.get("details") or {}
    return str(issue.get("diagnostics") or details.get("text") or "(no text)")


def _where(issue: dict[str, Any]) -> str:
    return ", ".join(str(w) for w in issue.get("expression") or issue.get("location") or []) or "?"


def _failures(outcome: Outcome) -> list[str]:
    """Errors and fatals, and any issue about our own (loaded, fully checkable) content."""
    return [
        f"[{issue.get('severity')}] {_text(issue)} @ {_where(issue)}"
        for issue in _issues(outcome)
        if issue.get("severity") in ("error", "fatal") or OWN_URL in _text(issue)
    ]


_CLASSES = (
    (
        "CodeSystem unknown (no terminology server)",
        re.compile(r"CodeSystem is unknown and can't be validated"),
    ),
    ("dom-6 narrative", re.compile(r"dom-6")),
    ("observation performer", re.compile(r"observations should have a performer")),
    ("UCUM annotation", re.compile(r"UCUM Codes that contain human readable annotations")),
    ("unknown extension (US Core)", re.compile(r"Unknown extension http://hl7\.org/fhir/us/core/")),
    ("meta.source internal target", re.compile(r"might be wrong because it appears to point to an internal")),
)


def _tally(outcome: Outcome, counts: Counter[str]) -> None:
    for issue in _issues(outcome):
        text = _text(issue)
        name = next((name for name, pattern in _CLASSES if pattern.search(text)), text[:80])
        counts[f"{issue.get('severity')}: {name}"] += 1


def _check(
    client: FhirClient,
    label: str,
    resource: dict[str, Any],
    profile: str | None,
    failures: list[str],
    counts: Counter[str],
) -> None:
    outcome = client.validate(resource, profile=profile)
    _tally(outcome, counts)
    counts["(resources validated)"] += 1
    name = f"{resource['resourceType']}/{resource.get('id', '(no id)')}"
    for failure in _failures(outcome):
        failures.append(f"{label} {name} against {profile or '(meta.profile only)'}: {failure}")


def _report(counts: Counter[str]) -> None:
    print("\n".join(f"{n:5d}  {name}" for name, n in sorted(counts.items())))


def _renamed(path: Path) -> dict[str, Any]:
    """The example with its ids (and the references to them) renamed to this module's own."""
    text = re.sub(r"\bcac-ex(\d\d)", rf"{ID_PREFIX}\1", path.read_text(encoding="utf-8"))
    bundle: dict[str, Any] = json.loads(text)
    return bundle


def _read_back(client: FhirClient, produced: dict[str, Any]) -> dict[str, Any]:
    """The stored resource, found by the idempotency key fhircac gave it."""
    resource_type = produced["resourceType"]
    if resource_type == "Provenance":
        tag = produced["meta"]["tag"][0]
        params = {"_tag": f"{tag['system']}|{tag['code']}"}
    else:
        identifier = produced["identifier"][0]
        params = {"identifier": f"{identifier['system']}|{identifier['value']}"}
    found = client.search_resources(resource_type, params)
    assert len(found) == 1, f"{resource_type}?{params}: {len(found)} stored resources"
    return found[0]


def _claims(resource: dict[str, Any]) -> list[str]:
    return list((resource.get("meta") or {}).get("profile") or [])


# --- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(hapi: Any) -> Iterator[FhirClient]:
    fhir = FhirClient(hapi.base_url, retries=2, backoff_factor=0.1, timeout=(3.05, 120.0))
    try:
        yield fhir
    finally:
        fhir.close()


@pytest.fixture(scope="module")
def loaded(client: FhirClient) -> dict[str, dict[str, Any]]:
    """Every file of profiles/ PUT by id, in dependency order; file name → the stored resource."""
    stored: dict[str, dict[str, Any]] = {}
    for path in _profile_files():
        resource = json.loads(path.read_text(encoding="utf-8"))
        result = client.update(resource)
        assert result.status in (200, 201), f"{path.name}: HTTP {result.status}"
        assert result.resource is not None and result.resource["id"] == resource["id"], path.name
        assert result.resource.get("url") == resource["url"], path.name
        stored[path.name] = result.resource
    return stored


# --- tests ----------------------------------------------------------------------------------------


def test_profiles_load_and_hapi_builds_their_snapshots(
    client: FhirClient, loaded: dict[str, dict[str, Any]]
) -> None:
    assert set(loaded) == {p.name for p in PROFILES.glob("*.json")}
    problems = []
    for name, resource in loaded.items():
        resource_type = resource["resourceType"]
        same_url = client.search_resources(resource_type, {"url": resource["url"]})
        if [r["id"] for r in same_url] != [resource["id"]]:
            problems.append(f"{name}: {resource['url']} resolves to {[r['id'] for r in same_url]}")
        if resource_type != "StructureDefinition":
            continue
        # Differentials only: HAPI must be able to generate the snapshot it validates against.
        response = client.session.get(
            f"{client.base_url}/StructureDefinition/{resource['id']}/$snapshot", timeout=client.timeout
        )
        body = response.json()
        snapshot = (body.get("snapshot") or {}).get("element") or []
        if response.status_code != 200 or len(snapshot) < len(resource["differential"]["element"]):
            problems.append(f"{name}: $snapshot answered {response.status_code}: {json.dumps(body)[:500]}")
    assert problems == []


def test_example_inputs_validate_against_their_profiles(
    client: FhirClient, loaded: dict[str, dict[str, Any]]
) -> None:
    failures: list[str] = []
    counts: Counter[str] = Counter()
    unclaimed = []
    for path in EXAMPLES:
        bundle = json.loads(path.read_text(encoding="utf-8"))
        for entry in bundle["entry"]:
            resource = entry["resource"]
            claims = _claims(resource)
            coded = {
                (c.get("system"), c.get("code")) for c in (resource.get("code") or {}).get("coding") or []
            }
            if resource["resourceType"] == "Observation" and coded & codes.CAC_CODES:
                if codes.PROFILE_CAC_OBSERVATION not in claims:
                    unclaimed.append(f"{path.name} Observation/{resource['id']}")
                counts["(CAC Observations)"] += 1
            _check(client, path.name, resource, claims[0] if claims else None, failures, counts)
    _report(counts)
    assert unclaimed == [], "CAC score Observations that do not claim the cac-observation profile"
    assert counts["(CAC Observations)"] >= len(EXAMPLES)
    assert failures == [], f"{len(failures)} validation failures:\n" + "\n".join(failures)


def test_written_resources_validate_against_their_profiles(
    client: FhirClient, loaded: dict[str, dict[str, Any]]
) -> None:
    """write_back of each example under both policies; the stored resources are what is validated."""
    failures: list[str] = []
    counts: Counter[str] = Counter()
    for path in EXAMPLES:
        bundle = _renamed(path)
        client.transaction(bundle)
        patient = patient_id(bundle)
        plans = []
        for policy in POLICIES:
            result = write_back(client, patient, get_policy(policy), today=AS_OF, recorded=RECORDED)
            assert result.evaluation is not None and result.latest
            produced = result.evaluation.produced
            assert produced.care_plan is not None, f"{path.name} {policy}: no CarePlan"
            for resource in produced.resources():
                stored = _read_back(client, resource)
                profile = OUTPUT_PROFILES[stored["resourceType"]]
                assert profile in _claims(stored), f"{path.name} {policy}: {stored['resourceType']}"
                _check(client, f"{path.name} {policy}", stored, profile, failures, counts)
            plans.append(produced.care_plan)
        # The second policy's plan superseded the first one's, which is now stored as revoked.
        revoked = _read_back(client, plans[0])
        assert revoked["status"] == "revoked", path.name
        _check(client, f"{path.name} superseded", revoked, codes.PROFILE_CAC_CARE_PLAN, failures, counts)
    _report(counts)
    assert counts["(resources validated)"] == len(EXAMPLES) * (3 * len(POLICIES) + 1)
    assert failures == [], f"{len(failures)} validation failures:\n" + "\n".join(failures)


@pytest.mark.parametrize(("example", "prior_scan"), [("06-rising-on-statin", "scan-2022")])
def test_historical_scan_writes_no_care_plan_and_validates(
    client: FhirClient, loaded: dict[str, dict[str, Any]], example: str, prior_scan: str
) -> None:
    bundle = _renamed(ROOT / "examples" / f"{example}.json")
    client.transaction(bundle)
    patient = patient_id(bundle)
    scan_id = f"{patient}-{prior_scan}"
    failures: list[str] = []
    counts: Counter[str] = Counter()
    for policy in POLICIES:
        result = write_back(
            client, patient, get_policy(policy), scan_id=scan_id, today=AS_OF, recorded=RECORDED
        )
        assert result.evaluation is not None and not result.latest
        assert result.scan is not None and result.scan.startswith(f"Observation/{scan_id}")
        produced = result.evaluation.produced
        assert produced.care_plan is None
        assert [r["resourceType"] for r in produced.resources()] == ["RiskAssessment", "Provenance"]
        for resource in produced.resources():
            stored = _read_back(client, resource)
            profile = OUTPUT_PROFILES[stored["resourceType"]]
            assert profile in _claims(stored)
            _check(client, f"{example} {policy} {prior_scan}", stored, profile, failures, counts)
    _report(counts)
    assert counts["(resources validated)"] == 2 * len(POLICIES)
    assert failures == [], f"{len(failures)} validation failures:\n" + "\n".join(failures)


# HAPI 8.8.0 cannot re-generate the snapshot of any Extension StructureDefinition when validating the
# StructureDefinition itself (module docstring); MINIMAL_EXTENSION reproduces it with no content of ours.
EXTENSION_SD_LIMITATION = (
    "[error] Error generating Snapshot: Unable to resolve package id hl7.fhir.r4.core#null "
    "(this usually arises from a problem in the differential) @ StructureDefinition"
)
MINIMAL_EXTENSION: dict[str, Any] = {
    "resourceType": "StructureDefinition",
    "url": "https://example.org/fhir/StructureDefinition/minimal",
    "name": "Minimal",
    "status": "draft",
    "fhirVersion": "4.0.1",
    "kind": "complex-type",
    "abstract": False,
    "context": [{"type": "element", "expression": "Patient"}],
    "type": "Extension",
    "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Extension",
    "derivation": "constraint",
    "differential": {
        "element": [
            {"id": "Extension", "path": "Extension"},
            {
                "id": "Extension.url",
                "path": "Extension.url",
                "fixedUri": "https://example.org/fhir/StructureDefinition/minimal",
            },
            {"id": "Extension.value[x]", "path": "Extension.value[x]", "type": [{"code": "string"}]},
        ]
    },
}


def test_profile_files_themselves_validate(client: FhirClient, loaded: dict[str, dict[str, Any]]) -> None:
    canary = _failures(client.validate(MINIMAL_EXTENSION))
    assert canary == [EXTENSION_SD_LIMITATION], (
        "HAPI no longer fails a minimal Extension StructureDefinition the known way: "
        f"remove the EXTENSION_SD_LIMITATION exception ({canary})"
    )
    failures: list[str] = []
    counts: Counter[str] = Counter()
    for path in _profile_files():
        resource = json.loads(path.read_text(encoding="utf-8"))
        outcome = client.validate(resource)
        _tally(outcome, counts)
        is_extension = resource["resourceType"] == "StructureDefinition" and resource["type"] == "Extension"
        failures += [
            f"{path.name}: {failure}"
            for failure in _failures(outcome)
            if not (is_extension and failure == EXTENSION_SD_LIMITATION)
        ]
    _report(counts)
    assert failures == [], f"{len(failures)} validation failures:\n" + "\n".join(failures)


# --- negative controls ----------------------------------------------------------------------------


def _produced(name: str) -> dict[str, dict[str, Any]]:
    document = json.loads((ROOT / "examples" / f"{name}.json").read_text(encoding="utf-8"))
    evaluations, issues = evaluate([(name, document)], get_policy("acc-aha-2018"), AS_OF, RECORDED)
    assert [str(i) for i in issues if i.is_error] == []
    resources = {r["resourceType"]: r for r in evaluations[0].produced.resources()}
    scan = next(e["resource"] for e in document["entry"] if e["resource"]["id"].endswith("-scan-2026"))
    return {**resources, "Observation": scan}


def _drop_policy_extension(resource: dict[str, Any]) -> None:
    resource["extension"] = [e for e in resource["extension"] if e["url"] != codes.EXT_POLICY]


def _band_outside_value_set(resource: dict[str, Any]) -> None:
    band = next(e for e in resource["extension"] if e["url"] == codes.EXT_SCORE_BAND)
    band["valueCoding"] = {"system": codes.FHIRCAC, "code": "cac-total"}  # ours, but not a band


CONTROLS: list[tuple[str, str, Callable[[dict[str, Any]], None], str]] = [
    (
        "CarePlan",
        "intent order",
        lambda r: r.update(intent="order"),
        rf"fixed to 'proposal' in the profile {re.escape(codes.PROFILE_CAC_CARE_PLAN)}",
    ),
    (
        "RiskAssessment",
        "no policy extension",
        _drop_policy_extension,
        rf"RiskAssessment\.extension:policy.*required.*{re.escape(codes.PROFILE_CAC_RISK_ASSESSMENT)}",
    ),
    (
        "RiskAssessment",
        "score band outside its ValueSet",
        _band_outside_value_set,
        rf"not found in the value set .*{re.escape(codes.value_set('cac-score-bands'))}",
    ),
    (
        "Provenance",
        "no entity",
        lambda r: r.pop("entity"),
        rf"Provenance\.entity: minimum required = 1.*{re.escape(codes.PROFILE_CAC_PROVENANCE)}",
    ),
    (
        "Observation",
        "CAC score without a date",
        lambda r: r.pop("effectiveDateTime"),
        rf"Observation\.effective\[x\]: minimum required = 1.*{re.escape(codes.PROFILE_CAC_OBSERVATION)}",
    ),
]


@pytest.fixture(scope="module")
def example_09() -> dict[str, dict[str, Any]]:
    return _produced("09-per-vessel-scores")


@pytest.mark.parametrize(
    ("resource_type", "change", "mutate", "expected"), CONTROLS, ids=[f"{c[0]}-{c[1]}" for c in CONTROLS]
)
def test_negative_control_a_broken_resource_fails_its_profile(
    client: FhirClient,
    loaded: dict[str, dict[str, Any]],
    example_09: dict[str, dict[str, Any]],
    resource_type: str,
    change: str,
    mutate: Callable[[dict[str, Any]], None],
    expected: str,
) -> None:
    """Without meta.profile, so only ``?profile=`` can apply the profile (HAPI ignores an unknown one)."""
    resource = copy.deepcopy(example_09[resource_type])
    profile = OUTPUT_PROFILES.get(resource_type, codes.PROFILE_CAC_OBSERVATION)
    meta = resource.pop("meta", {})
    meta.pop("profile", None)
    if meta:  # the Provenance keeps its tag
        resource["meta"] = meta
    baseline = _failures(client.validate(resource, profile=profile))
    assert baseline == [], f"the unbroken {resource_type} should validate: {baseline}"
    mutate(resource)
    errors = _failures(client.validate(resource, profile=profile))
    assert errors, f"{resource_type} with {change}: HAPI found nothing against {profile}"
    assert any(re.search(expected, error) for error in errors), "\n".join(errors)
