"""profiles/: generated, in step with codes.py, valid R4B; the differential checker on hand-made resources."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from fhircac.clinical.policies import POLICIES
from fhircac.clinical.record import DrugClass
from fhircac.fhir import codes
from fhircac.fhir.conformance import check

REPO_ROOT = Path(__file__).resolve().parents[2]
PROFILES = REPO_ROOT / "profiles"
FILES = sorted(PROFILES.glob("*.json"))


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PROFILES / name).read_text(encoding="utf-8"))
    return data


def of_type(resource_type: str) -> list[dict[str, Any]]:
    return [load(p.name) for p in FILES if p.name.startswith(f"{resource_type}-")]


# --- the files ------------------------------------------------------------------------------------


def test_profiles_are_generated_and_up_to_date() -> None:
    assert len(FILES) >= 20
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / "build_profiles.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_file_is_a_valid_r4b_resource(path: Path) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    resource_type, _, id_ = path.stem.partition("-")
    assert data["resourceType"] == resource_type
    assert data["id"] == id_
    assert data["url"] == f"{codes.CANONICAL}/{resource_type}/{id_}"
    assert data["status"] == "active" and data["publisher"] == "fhircac"
    get_fhir_model_class(resource_type).model_validate(data)


def test_structure_definition_elements_are_consistent() -> None:
    for definition in of_type("StructureDefinition"):
        type_ = definition["type"]
        for element in definition["differential"]["element"]:
            element_id = element["id"]
            assert element_id == type_ or element_id.startswith(f"{type_}."), element_id
            assert element["path"] == ".".join(part.split(":")[0] for part in element_id.split("."))
            last = element_id.rsplit(".", 1)[-1]
            assert element.get("sliceName") == (last.split(":")[1] if ":" in last else None), element_id
            if "sliceName" in element:  # every slice follows the slicing of its element
                sliced = element_id.rpartition(":")[0]
                assert any(
                    e["id"] == sliced and "slicing" in e for e in definition["differential"]["element"]
                )


def test_extension_slices_name_known_extensions() -> None:
    extension_urls = {d["url"] for d in of_type("StructureDefinition") if d["type"] == "Extension"}
    assert extension_urls == {
        codes.EXT_POLICY,
        codes.EXT_SCORE_BAND,
        codes.EXT_CAC_DRS,
        codes.EXT_PERCENTILE,
        codes.EXT_METABOLIC_STATE,
        codes.EXT_REPLACES_ASSESSMENT,
        codes.EXT_NOTE_AUDIENCE,
    }
    for definition in of_type("StructureDefinition"):
        for element in definition["differential"]["element"]:
            for type_ in element.get("type", []):
                for profile in type_.get("profile", []):
                    assert profile in extension_urls


# --- code systems and value sets agree with codes.py ----------------------------------------------


def concepts(value_set: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (inc["system"], c["code"]) for inc in value_set["compose"]["include"] for c in inc.get("concept", [])
    }


def filters(value_set: dict[str, Any]) -> set[str]:
    return {f["value"] for inc in value_set["compose"]["include"] for f in inc.get("filter", [])}


def test_code_systems_match_codes_py() -> None:
    fhircac = load("CodeSystem-fhircac.json")
    assert fhircac["url"] == codes.FHIRCAC
    assert {c["code"]: (c["display"], c["definition"]) for c in fhircac["concept"]} == codes.FHIRCAC_CONCEPTS
    policy = load("CodeSystem-fhircac-policy.json")
    assert policy["url"] == codes.POLICY
    assert [c["code"] for c in policy["concept"]] == list(POLICIES)
    rules = load("CodeSystem-fhircac-rule.json")
    assert rules["url"] == codes.RULE
    rule_ids = {c["code"] for c in rules["concept"]}
    assert len(rule_ids) > 40
    assert {"statin-cac-100", "cac-0-not-zero-risk", "stop-smoking", "lf-cac-400-calm"} <= rule_ids
    for code_system in of_type("CodeSystem"):
        assert code_system["count"] == len(code_system["concept"])


def test_value_sets_match_codes_py() -> None:
    fhircac_codes = {(codes.FHIRCAC, code) for code in codes.FHIRCAC_CONCEPTS}
    assert concepts(load("ValueSet-cac-codes.json")) == codes.CAC_CODES
    assert concepts(load("ValueSet-cac-scan-orders.json")) == codes.SCAN_ORDER_CODES
    vessels = concepts(load("ValueSet-cac-vessel-components.json"))
    assert vessels == {(codes.FHIRCAC, c) for c in [*codes.VESSEL_COMPONENTS, codes.CAC_PERCENTILE]}
    bands = concepts(load("ValueSet-cac-score-bands.json"))
    assert bands == {(codes.FHIRCAC, c) for c in codes.BAND_CODES.values()} and bands <= fhircac_codes
    note_audience = load("CodeSystem-note-audience.json")
    audiences = {(note_audience["url"], c["code"]) for c in note_audience["concept"]}
    assert concepts(load("ValueSet-note-audience.json")) == audiences
    assert {code for _, code in audiences} == {"patient", "clinician"}


@pytest.mark.parametrize(
    ("name", "drug_class"),
    [
        ("statins", DrugClass.STATIN),
        ("other-lipid-lowering", DrugClass.OTHER_LIPID_LOWERING),
        ("aspirin", DrugClass.ASPIRIN),
        ("antihypertensives", DrugClass.ANTIHYPERTENSIVE),
    ],
)
def test_drug_value_sets_match_codes_py(name: str, drug_class: DrugClass) -> None:
    value_set = load(f"ValueSet-{name}.json")
    rxnorm = {code for system, code in concepts(value_set) if system == codes.RXNORM}
    assert rxnorm == {code for code, (cls, _) in codes.RXNORM_INGREDIENTS.items() if cls is drug_class}
    atc = {code for system, code in concepts(value_set) if system == codes.ATC} | filters(value_set)
    assert atc
    for code in atc:  # the longest ATC prefix codes.py knows gives this class
        prefix = max((p for p in codes.ATC_PREFIXES if code.startswith(p)), key=len)
        assert drug_class in codes.ATC_PREFIXES[prefix], code
    assert all(inc["system"] in {codes.RXNORM, codes.ATC} for inc in value_set["compose"]["include"])


def test_capability_statement_names_the_profiles() -> None:
    (statement,) = of_type("CapabilityStatement")
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert resources["RiskAssessment"]["supportedProfile"] == [codes.PROFILE_CAC_RISK_ASSESSMENT]
    assert resources["CarePlan"]["supportedProfile"] == [codes.PROFILE_CAC_CARE_PLAN]
    assert resources["Provenance"]["supportedProfile"] == [codes.PROFILE_CAC_PROVENANCE]
    assert all(resources[t]["conditionalCreate"] for t in ("RiskAssessment", "CarePlan", "Provenance"))
    assert {"Patient", "Observation", "MedicationStatement", "Condition"} <= resources.keys()


# --- the checker ----------------------------------------------------------------------------------

POLICY_EXTENSION = {
    "url": codes.EXT_POLICY,
    "extension": [
        {
            "url": "policy",
            "valueCoding": {"system": codes.POLICY, "code": "acc-aha-2018", "display": "ACC/AHA"},
        },
        {"url": "version", "valueString": "1.0.0"},
    ],
}
PERCENTILE_EXTENSION = {
    "url": codes.EXT_PERCENTILE,
    "extension": [
        {"url": "value", "valueDecimal": 91},
        {"url": "estimated", "valueBoolean": True},
        {"url": "reference", "valueString": "MESA"},
    ],
}
DEVICE = {
    "type": "Device",
    "identifier": {"system": codes.DEVICE_ID, "value": "fhircac"},
    "display": "fhircac 0.1.0",
}


def note(audience: str) -> dict[str, Any]:
    return {"text": "A note.", "extension": [{"url": codes.EXT_NOTE_AUDIENCE, "valueCode": audience}]}


def risk_assessment() -> dict[str, Any]:
    return {
        "resourceType": "RiskAssessment",
        "meta": {"profile": [codes.PROFILE_CAC_RISK_ASSESSMENT]},
        "extension": [
            POLICY_EXTENSION,
            {
                "url": codes.EXT_SCORE_BAND,
                "valueCoding": {
                    "system": codes.FHIRCAC,
                    "code": "cac-band-100-399",
                    "display": "CAC 100-399",
                },
            },
            {"url": codes.EXT_CAC_DRS, "valueString": "A2/N2"},
            PERCENTILE_EXTENSION,
            {
                "url": codes.EXT_METABOLIC_STATE,
                "valueCoding": {"system": codes.FHIRCAC, "code": "metabolic-calm"},
            },
        ],
        "identifier": [{"system": codes.ASSESSMENT_ID, "value": "abc"}],
        "status": "final",
        "code": {
            "coding": [
                {"system": codes.FHIRCAC, "code": "cac-risk-assessment", "display": "CAC interpretation"}
            ]
        },
        "method": {"text": "fhircac"},
        "subject": {"reference": "Patient/x"},
        "occurrenceDateTime": "2026-11-01",
        "basis": [{"reference": "Observation/cac"}],
        "prediction": [
            {
                "outcome": {
                    "coding": [{"system": codes.FHIRCAC, "code": "mesa-chd-10y-with-cac"}],
                    "text": "MESA",
                },
                "probabilityDecimal": 0.0306,
                "whenRange": {"high": {"value": 10, "unit": "years", "system": codes.UCUM, "code": "a"}},
                "rationale": "MESA with CAC.",
            }
        ],
        "mitigation": "Statin.",
        "note": [note("clinician"), note("patient")],
    }


def care_plan() -> dict[str, Any]:
    return {
        "resourceType": "CarePlan",
        "meta": {"profile": [codes.PROFILE_CAC_CARE_PLAN]},
        "extension": [POLICY_EXTENSION],
        "identifier": [{"system": codes.ASSESSMENT_ID, "value": "abc-plan"}],
        "status": "active",
        "intent": "proposal",
        "category": [{"coding": [{"system": codes.FHIRCAC, "code": "cac-care-plan"}]}],
        "title": "CAC follow-up",
        "description": "Follow-up after a CAC score.",
        "subject": {"reference": "Patient/x"},
        "period": {"start": "2026-11-01"},
        "created": "2026-11-01",
        "author": DEVICE,
        "supportingInfo": [{"reference": "urn:uuid:0b5a3c8e-2d7f-4a55-9d44-6f0e1d3c2b1a"}],
        "activity": [
            {
                "detail": {
                    "kind": "ServiceRequest",
                    "code": {
                        "coding": [{"system": codes.FHIRCAC, "code": "repeat-cac-scan"}],
                        "text": "Repeat",
                    },
                    "reasonCode": [
                        {"coding": [{"system": codes.RULE, "code": "statin-cac-100"}], "text": "ACC"}
                    ],
                    "status": "not-started",
                    "scheduledPeriod": {"start": "2029-11-01"},
                    "description": "Repeat the scan.",
                }
            },
            {
                "detail": {
                    "code": {"coding": [{"system": codes.FHIRCAC, "code": "lifestyle"}]},
                    "reasonCode": [{"coding": [{"system": codes.RULE, "code": "stop-smoking"}]}],
                    "status": "not-started",
                    "description": "Stop smoking.",
                }
            },
        ],
        "note": [note("patient")],
    }


def provenance() -> dict[str, Any]:
    return {
        "resourceType": "Provenance",
        "meta": {
            "profile": [codes.PROFILE_CAC_PROVENANCE],
            "tag": [{"system": codes.PROVENANCE_TAG, "code": "abc"}],
        },
        "target": [{"reference": "urn:uuid:0b5a3c8e-2d7f-4a55-9d44-6f0e1d3c2b1a"}],
        "occurredDateTime": "2026-11-01",
        "recorded": "2026-11-01T10:00:00Z",
        "activity": {"coding": [{"system": codes.V3_DATA_OPERATION, "code": "CREATE"}]},
        "agent": [
            {
                "type": {"coding": [{"system": codes.PROVENANCE_PARTICIPANT, "code": "assembler"}]},
                "who": DEVICE,
            }
        ],
        "entity": [{"role": "source", "what": {"reference": "Observation/x/_history/1"}}],
    }


def agatston(value: float) -> dict[str, Any]:
    return {"value": value, "unit": "Agatston", "system": codes.UCUM, "code": "{Agatston}"}


def vessel(code: str, value: float) -> dict[str, Any]:
    return {"code": {"coding": [{"system": codes.FHIRCAC, "code": code}]}, "valueQuantity": agatston(value)}


def observation() -> dict[str, Any]:
    return {
        "resourceType": "Observation",
        "meta": {"profile": [codes.PROFILE_CAC_OBSERVATION]},
        "status": "final",
        "category": [{"coding": [{"system": codes.OBSERVATION_CATEGORY, "code": "imaging"}]}],
        "code": {
            "coding": [
                {"system": codes.SNOMED, "code": "450360000"},
                {"system": codes.FHIRCAC, "code": "cac-total"},
            ]
        },
        "subject": {"reference": "Patient/x"},
        "effectiveDateTime": "2026-01-15",
        "method": {"coding": [{"system": codes.DICOM, "code": "112055"}]},
        "valueQuantity": agatston(120),
        "component": [
            vessel("cac-left-main", 0),
            vessel("cac-lad", 80),
            vessel("cac-lcx", 10),
            vessel("cac-rca", 30),
            {"code": {"coding": [{"system": codes.FHIRCAC, "code": "cac-percentile"}]}, "valueInteger": 91},
        ],
    }


@pytest.mark.parametrize("make", [risk_assessment, care_plan, provenance, observation])
def test_valid_resources_conform(make: Any) -> None:
    resource = make()
    assert check(resource) == []
    get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def test_conditional_and_absolute_references_are_accepted() -> None:
    resource = risk_assessment()
    resource["subject"] = {"reference": "Patient?identifier=http://hospital|123"}
    assert check(resource) == []
    resource["subject"] = {"reference": "https://fhir.example.org/fhir/Patient/x/_history/2"}
    assert check(resource) == []
    resource["subject"] = {"reference": "Group?name=x"}
    assert check(resource) == ["RiskAssessment.subject: reference 'Group?name=x' is not to Patient"]


def changed(make: Any, change: Any) -> list[str]:
    resource = copy.deepcopy(make())
    change(resource)
    return check(resource)


def test_risk_assessment_violations() -> None:
    assert changed(risk_assessment, lambda r: r.pop("identifier")) == [
        "RiskAssessment.identifier: 0 found, at least 1 required"
    ]
    assert changed(risk_assessment, lambda r: r["extension"].pop(0)) == [
        "RiskAssessment.extension:policy: 0 found, at least 1 required"
    ]
    assert changed(risk_assessment, lambda r: r["extension"].append(POLICY_EXTENSION)) == [
        "RiskAssessment.extension:policy: 2 found, at most 1 allowed"
    ]
    assert changed(risk_assessment, lambda r: r["subject"].update(reference="Group/1")) == [
        "RiskAssessment.subject: reference 'Group/1' is not to Patient"
    ]
    assert changed(risk_assessment, lambda r: r.update(status="preliminary")) == [
        'RiskAssessment.status: "preliminary" is not in ValueSet cac-riskassessment-status'
    ]
    assert changed(risk_assessment, lambda r: r.update(status="entered-in-error")) == []  # withdrawn
    assert changed(risk_assessment, lambda r: r["code"]["coding"][0].update(code="other")) == [
        'RiskAssessment.code: {"coding":[{"system":"https://fhircac.org/fhir/CodeSystem/fhircac","code":"other",'
        '"display":"CAC interpretation"}]} does not match the pattern '
        '{"coding":[{"system":"https://fhircac.org/fhir/CodeSystem/fhircac","code":"cac-risk-assessment"}]}'
    ]
    assert changed(
        risk_assessment, lambda r: r["prediction"][0].update(probabilityRange={"high": {"value": 1}})
    ) == ["RiskAssessment.prediction.probability[x]: probabilityRange not allowed (allowed types: decimal)"]
    assert changed(risk_assessment, lambda r: r["prediction"][0].pop("outcome")) == [
        "RiskAssessment.prediction.outcome: 0 found, at least 1 required"
    ]
    assert changed(risk_assessment, lambda r: r.pop("note")) == [
        "RiskAssessment.note: 0 found, at least 1 required"
    ]


def test_extension_value_types_are_checked() -> None:
    def percentile_as_string(resource: dict[str, Any]) -> None:
        resource["extension"][3] = {"url": codes.EXT_PERCENTILE, "valueString": "91"}

    assert changed(risk_assessment, percentile_as_string) == [
        "cac-percentile extension: Extension.extension:value: 0 found, at least 1 required",
        "cac-percentile extension: Extension.extension:estimated: 0 found, at least 1 required",
        "cac-percentile extension: Extension.value[x]: 1 found, at most 0 allowed",
    ]
    assert changed(risk_assessment, lambda r: r["extension"][3]["extension"][0].update(url="valeu")) == [
        "cac-percentile extension: Extension.extension:value: 0 found, at least 1 required"
    ]
    assert changed(risk_assessment, lambda r: r["extension"][3]["extension"][1].update(valueString="y")) == [
        "cac-percentile extension: Extension.extension:estimated.value[x]: valueString not allowed "
        "(allowed types: boolean)"
    ]

    def drs_as_coding(resource: dict[str, Any]) -> None:
        resource["extension"][2] = {"url": codes.EXT_CAC_DRS, "valueCoding": {"code": "A2"}}

    assert changed(risk_assessment, drs_as_coding) == [
        "cac-drs extension: Extension.value[x]: valueCoding not allowed (allowed types: string)"
    ]
    assert changed(risk_assessment, lambda r: r["extension"][1]["valueCoding"].update(code="cac-band-9")) == [
        'cac-score-band extension: Extension.value[x]: {"system":"https://fhircac.org/fhir/CodeSystem/fhircac",'
        '"code":"cac-band-9","display":"CAC 100-399"} is not in ValueSet cac-score-bands'
    ]
    assert changed(risk_assessment, lambda r: r["note"][0]["extension"][0].update(valueCode="family")) == [
        'note-audience extension: Extension.value[x]: "family" is not in ValueSet note-audience'
    ]
    unknown = f"{codes.CANONICAL}/StructureDefinition/unknown"
    assert changed(
        risk_assessment, lambda r: r["extension"].append({"url": unknown, "valueString": "x"})
    ) == [f"extension {unknown}: not a fhircac extension"]


def test_care_plan_violations() -> None:
    assert changed(care_plan, lambda r: r.update(intent="plan")) == [
        'CarePlan.intent: "plan" is not the fixed value "proposal"'
    ]
    assert changed(care_plan, lambda r: r.pop("extension")) == [
        "CarePlan.extension:policy: 0 found, at least 1 required"
    ]
    assert changed(care_plan, lambda r: r["activity"][1]["detail"].pop("reasonCode")) == [
        "CarePlan.activity.detail.reasonCode: 0 found, at least 1 required"
    ]
    assert changed(care_plan, lambda r: r["activity"].append({"progress": [{"text": "x"}]})) == [
        "CarePlan.activity.detail: 0 found, at least 1 required"
    ]
    assert changed(care_plan, lambda r: r.update(category=[{"text": "other"}])) == [
        "CarePlan.category:cac: 0 found, at least 1 required"
    ]
    assert changed(care_plan, lambda r: r.pop("category")) == [
        "CarePlan.category: 0 found, at least 1 required",
        "CarePlan.category:cac: 0 found, at least 1 required",
    ]
    assert changed(care_plan, lambda r: r.update(subject={"reference": "Group/1"})) == [
        "CarePlan.subject: reference 'Group/1' is not to Patient"
    ]


def test_provenance_violations() -> None:
    assert changed(provenance, lambda r: r["meta"].pop("tag")) == [
        "Provenance.meta.tag: 0 found, at least 1 required"
    ]
    assert changed(provenance, lambda r: r.update(entity=[])) == [
        "Provenance.entity: 0 found, at least 1 required"
    ]


def test_observation_violations() -> None:
    assert changed(observation, lambda r: r["component"].append(vessel("cac-lad", 5))) == [
        "Observation.component:lad: 2 found, at most 1 allowed"
    ]
    loinc_only = {"coding": [{"system": codes.LOINC, "code": "1-8"}]}
    assert changed(observation, lambda r: r.update(code=loinc_only)) == [
        'Observation.code: {"coding":[{"system":"http://loinc.org","code":"1-8"}]} '
        "is not in ValueSet cac-codes"
    ]
    assert changed(observation, lambda r: (r.pop("valueQuantity"), r.update(valueString="120"))) == [
        "Observation.value[x]: valueString not allowed (allowed types: Quantity, integer)"
    ]
    assert changed(observation, lambda r: r.pop("valueQuantity")) == [
        "Observation.value[x]: 0 found, at least 1 required"
    ]
    assert changed(observation, lambda r: r.pop("effectiveDateTime")) == [
        "Observation.effective[x]: 0 found, at least 1 required"
    ]


def test_profile_lookup() -> None:
    resource = risk_assessment()
    resource["meta"]["profile"] = [f"{codes.CANONICAL}/StructureDefinition/nope", codes.PROFILE_CAC_CARE_PLAN]
    problems = check(resource)
    assert problems[0].startswith(
        f"meta.profile: {codes.CANONICAL}/StructureDefinition/nope is not a profile in "
    )
    assert problems[1:] == [
        f"meta.profile: {codes.PROFILE_CAC_CARE_PLAN} profiles CarePlan, not RiskAssessment"
    ]
    assert check({"resourceType": "Patient"}) == []
