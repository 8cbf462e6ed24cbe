"""Generate profiles/*.json (StructureDefinitions, CodeSystems, ValueSets, the CapabilityStatement).

Usage::

    python tools/build_profiles.py [--check]

Every code, system and canonical URL comes from ``fhircac.fhir.codes`` (and the policy list from
``fhircac.clinical.policies``); the rule CodeSystem lists every statement id the clinical core can emit,
found by scanning ``fhircac/clinical/*.py``. Output is deterministic (fixed ``date``), so ``--check``
(exit 1 when profiles/ differs from what would be written) keeps profiles/ in step with the code.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import fhircac  # noqa: E402
from fhircac.clinical.policies import POLICIES  # noqa: E402
from fhircac.clinical.record import DrugClass  # noqa: E402
from fhircac.fhir import codes  # noqa: E402

PROFILES_DIR = REPO_ROOT / "profiles"
CLINICAL_DIR = REPO_ROOT / "fhircac" / "clinical"
VERSION = fhircac.__version__
DATE = "2026-11-21"
PUBLISHER = "fhircac"
FHIR_VERSION = "4.0.1"
CORE = "http://hl7.org/fhir/StructureDefinition"
NOTE_AUDIENCE_SYSTEM = codes.NOTE_AUDIENCE
NOTE_AUDIENCES = {
    "patient": ("Patient", "Written for the patient, in plain language."),
    "clinician": ("Clinician", "Written for the clinician, with sources."),
}
VESSEL_SLICES = {"cac-left-main": "left-main", "cac-lad": "lad", "cac-lcx": "lcx", "cac-rca": "rca"}
# ATC codes listed explicitly per class (antihypertensives use is-a filters instead).
ATC_CODES: dict[DrugClass, dict[str, str]] = {
    DrugClass.STATIN: {
        "C10AA01": "simvastatin",
        "C10AA02": "lovastatin",
        "C10AA03": "pravastatin",
        "C10AA04": "fluvastatin",
        "C10AA05": "atorvastatin",
        "C10AA06": "cerivastatin",
        "C10AA07": "rosuvastatin",
        "C10AA08": "pitavastatin",
    },
    DrugClass.OTHER_LIPID_LOWERING: {
        "C10AX09": "ezetimibe",
        "C10AX13": "evolocumab",
        "C10AX14": "alirocumab",
    },
    DrugClass.ASPIRIN: {"B01AC06": "acetylsalicylic acid"},
    DrugClass.ANTIHYPERTENSIVE: {},
}
ATC_FILTERS: dict[DrugClass, tuple[str, ...]] = {
    DrugClass.ANTIHYPERTENSIVE: ("C02", "C03", "C07", "C08", "C09")
}
DRUG_VALUE_SETS = {
    "statins": (DrugClass.STATIN, "Statins"),
    "other-lipid-lowering": (DrugClass.OTHER_LIPID_LOWERING, "Other lipid-lowering drugs"),
    "aspirin": (DrugClass.ASPIRIN, "Aspirin"),
    "antihypertensives": (DrugClass.ANTIHYPERTENSIVE, "Antihypertensives"),
}
STATEMENT_CALL = re.compile(
    r"""(?:\bfindings\.recommend|\bfindings\.warn|\bStatement)\(\s*["']([a-z0-9-]+)["']"""
)
MIN_RULES = 40


# --- helpers --------------------------------------------------------------------------------------
def _header(
    resource_type: str, id_: str, url: str, name: str, title: str, description: str
) -> dict[str, Any]:
    return {
        "resourceType": resource_type,
        "id": id_,
        "url": url,
        "version": VERSION,
        "name": name,
        "title": title,
        "status": "active",
        "date": DATE,
        "publisher": PUBLISHER,
        "description": description,
    }


def _el(id_: str, **props: Any) -> dict[str, Any]:
    """A differential element; its path is the id without slice names, its sliceName the last one's."""
    element: dict[str, Any] = {"id": id_, "path": ".".join(part.split(":")[0] for part in id_.split("."))}
    last = id_.rsplit(".", 1)[-1]
    if ":" in last:
        element["sliceName"] = last.split(":", 1)[1]
    element.update(props)
    return element


def _concept(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def _reference(*types: str) -> list[dict[str, Any]]:
    return [{"code": "Reference", "targetProfile": [f"{CORE}/{t}" for t in types]}]


def _extension_slices(path: str, slices: list[tuple[str, str, int, str]]) -> list[dict[str, Any]]:
    """``path`` sliced by url, then one slice per (name, extension url, min, max)."""
    elements = [
        _el(
            path,
            slicing={"discriminator": [{"type": "value", "path": "url"}], "ordered": False, "rules": "open"},
        )
    ]
    for name, url, lo, hi in slices:
        elements.append(_el(f"{path}:{name}", min=lo, max=hi, type=[{"code": "Extension", "profile": [url]}]))
    return elements


def _note_elements(type_: str) -> list[dict[str, Any]]:
    return [
        _el(f"{type_}.note", min=1, short="Plain-text notes, each marked with its audience"),
        *_extension_slices(f"{type_}.note.extension", [("audience", codes.EXT_NOTE_AUDIENCE, 0, "1")]),
    ]


def _profile(
    id_: str, name: str, type_: str, title: str, description: str, elements: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        **_header("StructureDefinition", id_, codes.structure_definition(id_), name, title, description),
        "fhirVersion": FHIR_VERSION,
        "kind": "resource",
        "abstract": False,
        "type": type_,
        "baseDefinition": f"{CORE}/{type_}",
        "derivation": "constraint",
        "differential": {"element": [_el(type_, short=title, definition=description), *elements]},
    }


# --- resource profiles ----------------------------------------------------------------------------
def cac_observation() -> dict[str, Any]:
    slices: list[dict[str, Any]] = [
        _el(
            "Observation.component",
            slicing={
                "discriminator": [{"type": "pattern", "path": "code"}],
                "ordered": False,
                "rules": "open",
            },
            short="Per-vessel Agatston scores and a reported percentile",
        )
    ]
    for code in [*codes.VESSEL_COMPONENTS, codes.CAC_PERCENTILE]:
        name = VESSEL_SLICES.get(code, "percentile")
        display = codes.FHIRCAC_CONCEPTS[code][0]
        slices.append(_el(f"Observation.component:{name}", min=0, max="1", short=display))
        slices.append(
            _el(f"Observation.component:{name}.code", patternCodeableConcept=_concept(codes.FHIRCAC, code))
        )
    return _profile(
        "cac-observation",
        "CacObservation",
        "Observation",
        "CAC score Observation",
        "A coronary artery calcium (Agatston) score as fhircac reads it: the total score as value, "
        "optional per-vessel scores and a reported percentile as components.",
        [
            _el("Observation.status", min=1),
            _el(
                "Observation.code",
                min=1,
                binding={"strength": "required", "valueSet": codes.value_set("cac-codes")},
            ),
            _el("Observation.subject", min=1, type=_reference("Patient")),
            _el("Observation.effective[x]", min=1, type=[{"code": "dateTime"}, {"code": "Period"}]),
            _el(
                "Observation.value[x]",
                min=1,
                type=[{"code": "Quantity"}, {"code": "integer"}],
                short="Agatston score",
                comment="UCUM unit: fhircac writes {Agatston}; 1, {score} and {Agatston'U} are accepted.",
            ),
            _el(
                "Observation.method",
                short="Scoring method",
                comment="Agatston scoring is DICOM 112055 (http://dicom.nema.org/resources/ontology/DCM); "
                "documented, not required.",
            ),
            *slices,
        ],
    )


def cac_risk_assessment() -> dict[str, Any]:
    return _profile(
        "cac-riskassessment",
        "CacRiskAssessment",
        "RiskAssessment",
        "CAC interpretation",
        "fhircac's interpretation of a CAC score: score band, CAC-DRS, percentile, metabolic state, "
        "10-year risks as predictions, and the policy it was made under.",
        [
            *_extension_slices(
                "RiskAssessment.extension",
                [
                    ("policy", codes.EXT_POLICY, 1, "1"),
                    ("scoreBand", codes.EXT_SCORE_BAND, 1, "1"),
                    ("cacDrs", codes.EXT_CAC_DRS, 1, "1"),
                    ("percentile", codes.EXT_PERCENTILE, 0, "1"),
                    ("metabolicState", codes.EXT_METABOLIC_STATE, 0, "1"),
                    ("replaces", codes.EXT_REPLACES_ASSESSMENT, 0, "*"),
                ],
            ),
            _el("RiskAssessment.identifier", min=1, comment=f"System {codes.ASSESSMENT_ID}."),
            _el(
                "RiskAssessment.status",
                short="final, or entered-in-error once its CAC Observation is withdrawn or corrected",
                binding={"strength": "required", "valueSet": codes.value_set("cac-riskassessment-status")},
            ),
            _el(
                "RiskAssessment.code",
                min=1,
                patternCodeableConcept=_concept(codes.FHIRCAC, "cac-risk-assessment"),
            ),
            _el("RiskAssessment.subject", min=1, type=_reference("Patient")),
            _el("RiskAssessment.occurrence[x]", min=1),
            _el("RiskAssessment.basis", min=1, short="The CAC Observations (and other inputs) used"),
            _el("RiskAssessment.prediction.outcome", min=1),
            _el(
                "RiskAssessment.prediction.probability[x]", type=[{"code": "decimal"}], short="A fraction 0-1"
            ),
            *_note_elements("RiskAssessment"),
        ],
    )


def cac_care_plan() -> dict[str, Any]:
    return _profile(
        "cac-careplan",
        "CacCarePlan",
        "CarePlan",
        "CAC follow-up plan",
        "Considerations and follow-up proposed after a CAC score; every activity cites the fhircac rule "
        "(statement id) behind it. A proposal, never an order.",
        [
            *_extension_slices("CarePlan.extension", [("policy", codes.EXT_POLICY, 1, "1")]),
            _el("CarePlan.identifier", min=1, comment=f"System {codes.ASSESSMENT_ID}."),
            _el("CarePlan.intent", fixedCode="proposal"),
            _el(
                "CarePlan.category",
                min=1,
                slicing={
                    "discriminator": [{"type": "pattern", "path": "$this"}],
                    "ordered": False,
                    "rules": "open",
                },
            ),
            _el(
                "CarePlan.category:cac",
                min=1,
                max="1",
                patternCodeableConcept=_concept(codes.FHIRCAC, "cac-care-plan"),
            ),
            _el("CarePlan.subject", min=1, type=_reference("Patient")),
            _el("CarePlan.supportingInfo", min=1, short="The RiskAssessment this plan follows from"),
            _el("CarePlan.activity.detail", min=1),
            _el("CarePlan.activity.detail.code", min=1, comment=f"A code of {codes.FHIRCAC}."),
            _el(
                "CarePlan.activity.detail.reasonCode",
                min=1,
                comment=f"The statement id ({codes.RULE}) and its citation as text.",
            ),
            _el("CarePlan.activity.detail.description", min=1),
            *_note_elements("CarePlan"),
        ],
    )


def cac_provenance() -> dict[str, Any]:
    return _profile(
        "cac-provenance",
        "CacProvenance",
        "Provenance",
        "CAC output provenance",
        "What fhircac produced (targets) from which inputs (entities), by which software version.",
        [
            _el("Provenance.meta.tag", min=1, comment=f"System {codes.PROVENANCE_TAG}: the idempotency key."),
            _el("Provenance.target", min=1),
            _el("Provenance.agent", min=1),
            _el("Provenance.entity", min=1),
        ],
    )


# --- extensions -----------------------------------------------------------------------------------
def _extension(
    id_: str, name: str, title: str, description: str, contexts: list[str], elements: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        **_header("StructureDefinition", id_, codes.structure_definition(id_), name, title, description),
        "fhirVersion": FHIR_VERSION,
        "kind": "complex-type",
        "abstract": False,
        "context": [{"type": "element", "expression": context} for context in contexts],
        "type": "Extension",
        "baseDefinition": f"{CORE}/Extension",
        "derivation": "constraint",
        "differential": {
            "element": [
                _el("Extension", short=title, definition=description),
                *elements,
            ]
        },
    }


def _simple_extension(
    id_: str, name: str, title: str, description: str, contexts: list[str], type_: str, **value: Any
) -> dict[str, Any]:
    return _extension(
        id_,
        name,
        title,
        description,
        contexts,
        [
            _el("Extension.extension", max="0"),
            _el("Extension.url", fixedUri=codes.structure_definition(id_)),
            _el("Extension.value[x]", min=1, **({"type": [{"code": type_}]} | value)),
        ],
    )


def _required(value_set: str) -> dict[str, Any]:
    return {"binding": {"strength": "required", "valueSet": codes.value_set(value_set)}}


def _complex_extension(
    id_: str,
    name: str,
    title: str,
    description: str,
    contexts: list[str],
    parts: list[tuple[str, str, int, str]],
) -> dict[str, Any]:
    """An extension made of sub-extensions (part url, value type, min, short), no value of its own."""
    elements: list[dict[str, Any]] = [
        _el(
            "Extension.extension",
            slicing={"discriminator": [{"type": "value", "path": "url"}], "ordered": False, "rules": "open"},
        )
    ]
    for part, type_, lo, short in parts:
        elements += [
            _el(f"Extension.extension:{part}", min=lo, max="1", short=short),
            _el(f"Extension.extension:{part}.extension", max="0"),
            _el(f"Extension.extension:{part}.url", fixedUri=part),
            _el(f"Extension.extension:{part}.value[x]", min=1, type=[{"code": type_}]),
        ]
    elements += [
        _el("Extension.url", fixedUri=codes.structure_definition(id_)),
        _el("Extension.value[x]", max="0"),
    ]
    return _extension(id_, name, title, description, contexts, elements)


def percentile_extension() -> dict[str, Any]:
    return _complex_extension(
        "cac-percentile",
        "CacPercentile",
        "CAC percentile",
        "Age/sex/race percentile of the score: the value, whether fhircac estimated it, and the reference.",
        ["RiskAssessment"],
        [
            ("value", "decimal", 1, "Percentile 0-100"),
            ("estimated", "boolean", 1, "True when fhircac estimated it"),
            ("reference", "string", 0, "Reference population: MESA, or reported"),
        ],
    )


def policy_extension() -> dict[str, Any]:
    return _complex_extension(
        "policy",
        "FhircacPolicy",
        "fhircac policy",
        f"The named policy an output was made under (a code of {codes.POLICY}) and its version.",
        ["RiskAssessment", "CarePlan"],
        [
            ("policy", "Coding", 1, "The policy (fhircac-policy code)"),
            ("version", "string", 1, "The policy's version"),
        ],
    )


def extensions() -> list[dict[str, Any]]:
    return [
        policy_extension(),
        _simple_extension(
            "cac-score-band",
            "CacScoreBand",
            "CAC score band",
            "The primary Agatston score band.",
            ["RiskAssessment"],
            "Coding",
            **_required("cac-score-bands"),
        ),
        _simple_extension(
            "cac-drs", "CacDrs", "CAC-DRS", "CAC-DRS category, e.g. A2/N2.", ["RiskAssessment"], "string"
        ),
        percentile_extension(),
        _simple_extension(
            "metabolic-state",
            "MetabolicState",
            "Metabolic state",
            f"Metabolically active, calm or unknown (codes of {codes.FHIRCAC}).",
            ["RiskAssessment"],
            "Coding",
        ),
        _simple_extension(
            "replaces-assessment",
            "ReplacesAssessment",
            "Replaces assessment",
            "An earlier fhircac interpretation this one replaces, because the CAC Observation it read "
            "was corrected (the earlier one is then entered-in-error). RiskAssessment has no replaces "
            "element in R4 and the core replaces extensions do not apply to it.",
            ["RiskAssessment"],
            "Reference",
            type=[{"code": "Reference", "targetProfile": [f"{CORE}/RiskAssessment"]}],
        ),
        _simple_extension(
            "note-audience",
            "NoteAudience",
            "Note audience",
            "Who a note is written for: the patient or the clinician.",
            ["Annotation"],
            "code",
            **_required("note-audience"),
        ),
    ]


# --- code systems ---------------------------------------------------------------------------------
def _code_system(
    id_: str, url: str, name: str, title: str, description: str, concepts: list[dict[str, Any]], **extra: Any
) -> dict[str, Any]:
    return {
        **_header("CodeSystem", id_, url, name, title, description),
        "caseSensitive": True,
        "content": "complete",
        "count": len(concepts),
        **extra,
        "concept": concepts,
    }


def rule_ids() -> list[str]:
    sources = [path.read_text(encoding="utf-8") for path in CLINICAL_DIR.glob("*.py")]
    found = {m.group(1) for source in sources for m in STATEMENT_CALL.finditer(source)}
    if len(found) <= MIN_RULES:
        raise SystemExit(f"only {len(found)} statement ids found in {CLINICAL_DIR}; the scan is broken")
    return sorted(found)


def code_systems() -> list[dict[str, Any]]:
    return [
        _code_system(
            "fhircac",
            codes.FHIRCAC,
            "Fhircac",
            "fhircac codes",
            "CAC observations and components, predictions, score bands, metabolic states, plan activities.",
            [
                {"code": c, "display": d, "definition": text}
                for c, (d, text) in codes.FHIRCAC_CONCEPTS.items()
            ],
        ),
        _code_system(
            "fhircac-policy",
            codes.POLICY,
            "FhircacPolicy",
            "fhircac policies",
            "The named policies fhircac applies; each concept's `version` property is the policy version.",
            [
                {
                    "code": p.id.value,
                    "display": p.title,
                    "definition": p.basis,
                    "property": [{"code": "version", "valueString": p.version}],
                }
                for p in POLICIES.values()
            ],
            property=[{"code": "version", "description": "Version of the policy", "type": "string"}],
        ),
        _code_system(
            "fhircac-rule",
            codes.RULE,
            "FhircacRule",
            "fhircac rules",
            "Ids of the statements (recommendations, warnings, lifestyle items) the clinical core can emit.",
            [{"code": rule, "display": rule.replace("-", " ")} for rule in rule_ids()],
        ),
        _code_system(
            "cds-override-reason",
            codes.OVERRIDE_REASON,
            "CdsOverrideReason",
            "fhircac CDS override reasons",
            "Reasons a clinician can give for dismissing a fhircac CDS Hooks card (card overrideReasons).",
            [{"code": c, "display": d, "definition": why} for c, (d, why) in codes.OVERRIDE_REASONS.items()],
        ),
        _code_system(
            "note-audience",
            NOTE_AUDIENCE_SYSTEM,
            "NoteAudience",
            "Note audience",
            "Who a note is written for.",
            [{"code": c, "display": d, "definition": text} for c, (d, text) in NOTE_AUDIENCES.items()],
        ),
    ]


# --- value sets -----------------------------------------------------------------------------------
OBSERVATION_STATUS = "http://hl7.org/fhir/observation-status"


def _include(system: str, concepts: Sequence[tuple[str, str | None]]) -> dict[str, Any]:
    return {
        "system": system,
        "concept": [{"code": c, **({"display": d} if d else {})} for c, d in concepts],
    }


def _display(system: str, code: str) -> str | None:
    return codes.FHIRCAC_CONCEPTS[code][0] if system == codes.FHIRCAC else None


def _by_system(pairs: frozenset[tuple[str, str]]) -> list[dict[str, Any]]:
    systems = sorted({system for system, _ in pairs})
    return [
        _include(system, [(code, _display(system, code)) for s, code in sorted(pairs) if s == system])
        for system in systems
    ]


def _value_set(
    id_: str, name: str, title: str, description: str, includes: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        **_header("ValueSet", id_, codes.value_set(id_), name, title, description),
        "compose": {"include": includes},
    }


def _fhircac_include(code_list: list[str]) -> dict[str, Any]:
    return _include(codes.FHIRCAC, [(code, codes.FHIRCAC_CONCEPTS[code][0]) for code in code_list])


def drug_value_set(id_: str, drug_class: DrugClass, title: str) -> dict[str, Any]:
    rxnorm = [(code, name) for code, (cls, name) in codes.RXNORM_INGREDIENTS.items() if cls is drug_class]
    includes = [_include(codes.RXNORM, rxnorm)]
    if ATC_CODES[drug_class]:
        includes.append(_include(codes.ATC, list(ATC_CODES[drug_class].items())))
    for prefix in ATC_FILTERS.get(drug_class, ()):
        includes.append(
            {"system": codes.ATC, "filter": [{"property": "concept", "op": "is-a", "value": prefix}]}
        )
    name = "".join(part.capitalize() for part in id_.split("-"))
    return _value_set(
        id_, name, title, f"{title}: RxNorm ingredients and ATC codes fhircac recognises.", includes
    )


def value_sets() -> list[dict[str, Any]]:
    return [
        _value_set(
            "cac-codes",
            "CacCodes",
            "CAC score codes",
            "Codes of a total CAC score.",
            _by_system(codes.CAC_CODES),
        ),
        _value_set(
            "cac-vessel-components",
            "CacVesselComponents",
            "CAC components",
            "Component codes of a CAC Observation: per-vessel scores and a reported percentile.",
            [_fhircac_include([*codes.VESSEL_COMPONENTS, codes.CAC_PERCENTILE])],
        ),
        _value_set(
            "cac-scan-orders",
            "CacScanOrders",
            "CAC scan orders",
            "Codes of an order for a CAC scan.",
            _by_system(codes.SCAN_ORDER_CODES),
        ),
        _value_set(
            "cac-riskassessment-status",
            "CacRiskAssessmentStatus",
            "CAC interpretation status",
            "A fhircac interpretation is final; it becomes entered-in-error when the CAC Observation "
            "it read is withdrawn, deleted or corrected (a newer interpretation then replaces it).",
            [_include(OBSERVATION_STATUS, [("final", "Final"), ("entered-in-error", "Entered in Error")])],
        ),
        *(drug_value_set(id_, cls, title) for id_, (cls, title) in DRUG_VALUE_SETS.items()),
        _value_set(
            "cac-score-bands",
            "CacScoreBands",
            "CAC score bands",
            "The primary Agatston score bands.",
            [_fhircac_include(list(codes.BAND_CODES.values()))],
        ),
        _value_set(
            "note-audience",
            "NoteAudience",
            "Note audience",
            "Who a note is written for.",
            [_include(NOTE_AUDIENCE_SYSTEM, [(c, d) for c, (d, _) in NOTE_AUDIENCES.items()])],
        ),
    ]


# --- capability statement -------------------------------------------------------------------------
SEARCH_PARAM_TYPES = {
    "_id": "token",
    "_lastUpdated": "date",
    "_tag": "token",
    "code": "token",
    "identifier": "token",
    "patient": "reference",
    "status": "token",
}
READS = {
    "Patient": ("_id", "_lastUpdated"),
    "Observation": ("patient", "code", "_lastUpdated", "status"),
    "MedicationStatement": ("patient", "code", "_lastUpdated", "status"),
    "MedicationRequest": ("patient", "code", "_lastUpdated", "status"),
    "Medication": ("_id", "code"),
    "Condition": ("patient", "code", "_lastUpdated"),
    "Procedure": ("patient", "code", "_lastUpdated", "status"),
    "FamilyMemberHistory": ("patient", "code", "_lastUpdated", "status"),
}


def _rest_resource(
    type_: str, interactions: list[str], params: tuple[str, ...], **extra: Any
) -> dict[str, Any]:
    return {
        "type": type_,
        **extra,
        "interaction": [{"code": code} for code in interactions],
        "searchParam": [{"name": p, "type": SEARCH_PARAM_TYPES[p]} for p in params],
    }


def capability_statement() -> dict[str, Any]:
    reads = [_rest_resource(t, ["read", "search-type"], params) for t, params in READS.items()]
    idempotent = (
        f"Created with If-None-Exist on the identifier ({codes.ASSESSMENT_ID}), so reprocessing never "
    )
    writes = [
        _rest_resource(
            type_,
            ["create", "update", "search-type"],
            ("identifier", "patient"),
            supportedProfile=[profile],
            documentation=idempotent + documentation,
            conditionalCreate=True,
        )
        for type_, profile, documentation in (
            (
                "RiskAssessment",
                codes.PROFILE_CAC_RISK_ASSESSMENT,
                "duplicates. When the CAC Observation it read is withdrawn, deleted or corrected, it is "
                "updated to status entered-in-error (a corrected version's interpretation replaces it).",
            ),
            (
                "CarePlan",
                codes.PROFILE_CAC_CARE_PLAN,
                "duplicates. A newer scan's plan replaces the patient's previous CAC plan, which is "
                "updated to status revoked.",
            ),
        )
    ]
    provenance = _rest_resource(
        "Provenance",
        ["create"],
        ("_tag",),
        supportedProfile=[codes.PROFILE_CAC_PROVENANCE],
        documentation=f"Created with If-None-Exist on _tag ({codes.PROVENANCE_TAG}).",
        conditionalCreate=True,
    )
    url = f"{codes.CANONICAL}/CapabilityStatement/fhircac"
    return {
        **_header(
            "CapabilityStatement",
            "fhircac",
            url,
            "Fhircac",
            "fhircac as a FHIR client",
            "What fhircac reads from and writes to a FHIR R4 server.",
        ),
        "kind": "instance",
        "software": {"name": "fhircac", "version": VERSION},
        "implementation": {
            "description": "fhircac service. Its own HTTP endpoints (POST /calc, CDS Hooks) are not FHIR "
            "interactions and are documented in the README."
        },
        "fhirVersion": FHIR_VERSION,
        "format": ["json"],
        "rest": [
            {
                "mode": "client",
                "documentation": "Reads a patient's record (search by patient, code, _lastUpdated, status); "
                "writes its interpretation as RiskAssessment, CarePlan and Provenance.",
                "resource": [*reads, *writes, provenance],
            }
        ],
    }


# --- files ----------------------------------------------------------------------------------------
def build() -> dict[str, dict[str, Any]]:
    resources = [
        cac_observation(),
        cac_risk_assessment(),
        cac_care_plan(),
        cac_provenance(),
        *extensions(),
        *code_systems(),
        *value_sets(),
        capability_statement(),
    ]
    files = {f"{r['resourceType']}-{r['id']}.json": r for r in resources}
    assert len(files) == len(resources), "duplicate file names"
    return files


def render(resource: dict[str, Any]) -> str:
    return json.dumps(resource, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if profiles/ differs from what would be written"
    )
    args = parser.parse_args(argv)
    wanted = {name: render(resource) for name, resource in build().items()}
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in sorted(PROFILES_DIR.glob("*.json"))}
    if args.check:
        stale = sorted(
            name for name in wanted.keys() | on_disk.keys() if wanted.get(name) != on_disk.get(name)
        )
        for name in stale:
            print(f"profiles/{name}: out of date (run python tools/build_profiles.py)", file=sys.stderr)
        return 1 if stale else 0
    PROFILES_DIR.mkdir(exist_ok=True)
    for name in on_disk.keys() - wanted.keys():
        (PROFILES_DIR / name).unlink()
    for name, text in wanted.items():
        if on_disk.get(name) != text:
            (PROFILES_DIR / name).write_text(text, encoding="utf-8")
    print(f"{len(wanted)} files in {PROFILES_DIR}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
