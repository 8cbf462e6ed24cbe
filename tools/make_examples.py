"""Write the example FHIR R4 transaction Bundles in examples/ (one synthetic patient each) and their README.

    .venv/bin/python tools/make_examples.py            # (re)write examples/NN-*.json and examples/README.md
    .venv/bin/python tools/make_examples.py --check    # exit 1 if examples/ differs from what it would write
    .venv/bin/python tools/make_examples.py --calc     # print the equivalent `fhircac calc` command per case

Every bundle is a ``transaction`` of ``PUT <Type>/<id>`` entries with client ids (``cac-exNN…``), so
it can be POSTed to a FHIR server as often as you like without duplicating anything. Codes and URLs
come from ``fhircac.fhir.codes``; a code typed here that the reader must recognise is checked
against the codes.py collection it belongs to. Every bundle is validated with ``fhir.resources``
(R4B models) before anything is written. Output is deterministic: no clock, no random ids.

The cases are meant to be replayed with ``--as-of 2026-11-01`` (every lab is dated on or before it,
and within a year of it); expected summaries live in ``examples/expected/`` (not written here).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from fhir.resources.R4B.bundle import Bundle

from fhircac.clinical.record import DrugClass, completed_years
from fhircac.clinical.units import MM_HG, Analyte
from fhircac.fhir import codes, terminology

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
AS_OF = "2026-11-01"
FULL_URL_BASE = "https://fhircac.org/examples"  # uuid5 seed of each entry's urn:uuid fullUrl
MRN_SYSTEM = "https://example.org/fhir/sid/mrn"

# Code systems fhircac does not read (so codes.py does not carry them); used for well-formed resources.
ADMINISTRATIVE_GENDER = "http://hl7.org/fhir/administrative-gender"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VER_STATUS = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"

Json = dict[str, Any]


def known(code: str, collection: Collection[Any]) -> str:
    """``code``, after checking that codes.py's ``collection`` (the reader's contract) contains it."""
    if code not in collection:
        raise SystemExit(f"make_examples: code {code!r} is not in the codes.py collection the reader uses")
    return code


SUBCLINICAL_SNOMED = frozenset(
    code
    for code in ("53741008",)
    if (concept := terminology.condition(codes.SNOMED, code)) is not None
    and concept.kind is terminology.ConditionKind.SUBCLINICAL
)


def _loinc_for(analyte: Analyte) -> str:
    """The single LOINC code codes.LAB_CODES maps to ``analyte`` (fails if there is not exactly one)."""
    (code,) = (loinc for loinc, mapped in codes.LAB_CODES.items() if mapped is analyte)
    return code


RXNORM_BY_NAME = {name: code for code, (_, name) in codes.RXNORM_INGREDIENTS.items()}
DRUG_CLASS_BY_NAME = {name: drug_class for _, (drug_class, name) in codes.RXNORM_INGREDIENTS.items()}

# --- labs: key → (LOINC, display, calc flag) ------------------------------------------------------------
LABS: dict[str, tuple[str, str, str]] = {
    "tc": (known("2093-3", codes.LAB_CODES), "Cholesterol [Mass/volume] in Serum or Plasma", "--tc"),
    "hdl": (known("2085-9", codes.LAB_CODES), "Cholesterol in HDL [Mass/volume] in Serum or Plasma", "--hdl"),
    "ldl": (known("2089-1", codes.LAB_CODES), "Cholesterol in LDL [Mass/volume] in Serum or Plasma", "--ldl"),
    "tg": (known("2571-8", codes.LAB_CODES), "Triglyceride [Mass/volume] in Serum or Plasma", "--tg"),
    "apob": (known("1884-6", codes.LAB_CODES), "Apolipoprotein B [Mass/volume] in Serum or Plasma", "--apob"),
    "lpa-mass": (
        known("10835-7", codes.LAB_CODES),
        "Lipoprotein a [Mass/volume] in Serum or Plasma",
        "--lpa",
    ),
    "lpa-molar": (
        known("43583-4", codes.LAB_CODES),
        "Lipoprotein a [Moles/volume] in Serum or Plasma",
        "--lpa",
    ),
    "crp": (
        known("30522-7", codes.LAB_CODES),
        "C reactive protein [Mass/volume] in Serum or Plasma by High sensitivity method",
        "--crp",
    ),
    "insulin": (
        known("27873-9", codes.LAB_CODES),
        "Insulin [Units/volume] in Serum or Plasma --fasting",
        "--insulin",
    ),
    "hba1c": (known("4548-4", codes.LAB_CODES), "Hemoglobin A1c/Hemoglobin.total in Blood", "--hba1c"),
    "hba1c-ifcc": (
        known("59261-8", codes.LAB_CODES),
        "Hemoglobin A1c/Hemoglobin.total in Blood by IFCC protocol",
        "--hba1c",
    ),
}
LAB_TEXT = {
    "tc": "Total cholesterol",
    "hdl": "HDL cholesterol",
    "ldl": "LDL cholesterol",
    "tg": "Triglycerides",
    "apob": "Apolipoprotein B",
    "lpa-mass": "Lipoprotein(a)",
    "lpa-molar": "Lipoprotein(a)",
    "crp": "hs-CRP",
    "insulin": "Fasting insulin",
    "hba1c": "HbA1c",
    "hba1c-ifcc": "HbA1c (IFCC)",
}
UNIT_TEXT = {"u[IU]/mL": "µIU/mL"}  # human-readable unit where the UCUM code is not one

# --- other codes --------------------------------------------------------------------------------------
CAC_SNOMED = known("450360000", {code for _, code in codes.CAC_CODES})
SYSTOLIC = known("8480-6", codes.LAB_CODES)
DIASTOLIC = "8462-4"  # not read by fhircac
BP_PANEL = known("85354-9", codes.BLOOD_PRESSURE_PANELS)
SMOKING_ANSWERS: dict[str, tuple[str, str]] = {
    "never": (known("266919005", codes.NOT_CURRENT_SMOKER), "Never smoked tobacco"),
    "former": (known("8517006", codes.NOT_CURRENT_SMOKER), "Ex-smoker"),
    "current": (known("449868002", codes.CURRENT_SMOKER), "Smokes tobacco daily"),
}
RACES: dict[str, tuple[list[tuple[str, str, str]], tuple[str, str], str]] = {
    # group → ([(sub-extension, code, display)], (ethnicity code, display), text)
    "white": (
        [("ombCategory", codes.WHITE, "White")],
        (codes.NOT_HISPANIC, "Not Hispanic or Latino"),
        "White",
    ),
    "black": (
        [("ombCategory", codes.BLACK, "Black or African American")],
        (codes.NOT_HISPANIC, "Not Hispanic or Latino"),
        "Black or African American",
    ),
    "hispanic": ([("ombCategory", codes.WHITE, "White")], (codes.HISPANIC, "Hispanic or Latino"), "White"),
    "chinese": (
        [("ombCategory", codes.ASIAN, "Asian"), ("detailed", codes.CHINESE, "Chinese")],
        (codes.NOT_HISPANIC, "Not Hispanic or Latino"),
        "Chinese",
    ),
}
VESSEL_LABELS = {"cac-left-main": "left main", "cac-lad": "LAD", "cac-lcx": "LCx", "cac-rca": "RCA"}


# --- case model -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Scan:
    day: str
    total: float
    vessels: dict[str, float] | None = None  # codes.VESSEL_COMPONENTS key → Agatston
    percentile: float | None = None  # reported with the scan


@dataclass(frozen=True)
class Lab:
    key: str  # LABS key
    value: float
    unit: str  # UCUM code
    day: str


@dataclass(frozen=True)
class Problem:
    id_suffix: str
    system: str
    code: str
    display: str
    onset: str
    kind: str = "Condition"  # or "Procedure"


@dataclass(frozen=True)
class Med:
    ingredient: str  # a codes.RXNORM_INGREDIENTS name, or "metformin" (not a class fhircac reads)
    text: str
    start: str
    end: str | None = None


@dataclass(frozen=True)
class Relative:
    relationship: str  # v3-RoleCode
    display: str
    sex: str
    onset_age: int


@dataclass(frozen=True)
class Case:
    number: int
    slug: str
    shows: str
    expected: str
    birth_date: str
    sex: str
    race: str | None
    scans: tuple[Scan, ...]  # oldest first; the last is the current scan
    labs: tuple[Lab, ...] = ()
    bp: tuple[int, int, str] | None = None  # systolic, diastolic, date
    smoking: tuple[str, str] | None = None  # (never|former|current, date)
    problems: tuple[Problem, ...] = ()
    no_known_problems: bool = False
    meds: tuple[Med, ...] = ()
    no_known_meds: bool = False
    family_history: Relative | bool | None = None  # a relative (yes), False (explicit no), None (unknown)
    policies: tuple[str, ...] = ("acc-aha-2018",)

    @property
    def recorded(self) -> str:
        """When the problem list, medication list and family history were recorded: the scan visit."""
        return self.scans[-1].day

    @property
    def key(self) -> str:
        return f"ex{self.number:02d}"

    @property
    def patient_id(self) -> str:
        return f"cac-{self.key}"

    @property
    def filename(self) -> str:
        return f"{self.number:02d}-{self.slug}.json"


METFORMIN_RXNORM = "6809"  # not a class fhircac reads: present only to make the medication list realistic

HTN = Problem("htn", codes.SNOMED, "59621000", "Essential hypertension", "2019-04-02")


def conventional_labs(day: str, **values: float) -> tuple[Lab, ...]:
    """Labs in US conventional units, keyed like LABS with ``_`` for ``-`` (``lpa_mass=18``)."""
    units = {"tc": "mg/dL", "hdl": "mg/dL", "ldl": "mg/dL", "tg": "mg/dL", "apob": "mg/dL", "crp": "mg/L"}
    units |= {"insulin": "u[IU]/mL", "hba1c": "%", "lpa-mass": "mg/dL", "lpa-molar": "nmol/L"}
    return tuple(
        Lab(key.replace("_", "-"), value, units[key.replace("_", "-")], day) for key, value in values.items()
    )


CASES: tuple[Case, ...] = (
    Case(
        1,
        "cac-zero-low-risk",
        "CAC 0 in a 52-year-old White woman: never smoker, normal labs, no problems, no medications",
        "band 0, A0, percentile 0; `statin-cac-0-withhold`; next scan 2031-05-20 (5 years); "
        "lifestyle-first: `lf-cac-0`",
        birth_date="1974-03-14",
        sex="female",
        race="white",
        scans=(Scan("2026-05-20", 0),),
        labs=conventional_labs("2026-05-12", tc=188, hdl=62, ldl=104, tg=85, crp=0.7, hba1c=5.3),
        bp=(116, 74, "2026-05-12"),
        smoking=("never", "2026-05-12"),
        no_known_problems=True,
        no_known_meds=True,
        family_history=False,
        policies=("acc-aha-2018", "lifestyle-first"),
    ),
    Case(
        2,
        "cac-zero-diabetes",
        "CAC 0 in a 57-year-old Hispanic man with type 2 diabetes and hypertension (metformin, lisinopril)",
        "band 0, A0; `statin-diabetes` and `statin-cac-0-exceptions` (CAC 0 does not cancel "
        "diabetes); next scan 2029-03-10 (3 years)",
        birth_date="1968-08-02",
        sex="male",
        race="hispanic",
        scans=(Scan("2026-03-10", 0),),
        labs=conventional_labs("2026-03-02", tc=182, hdl=44, ldl=108, tg=165, hba1c=7.1),
        bp=(132, 82, "2026-03-02"),
        smoking=("never", "2026-03-02"),
        problems=(
            Problem(
                "t2dm",
                codes.SNOMED,
                known("44054006", codes.DIABETES_SNOMED),
                "Diabetes mellitus type 2",
                "2019-06-11",
            ),
            HTN,
        ),
        meds=(
            Med("metformin", "metformin 1000 mg tablet", "2019-06-11"),
            Med("lisinopril", "lisinopril 10 mg tablet", "2019-04-02"),
        ),
        family_history=False,
    ),
    Case(
        3,
        "cac-1-99-over-55",
        "CAC 45 in a 61-year-old White man (former smoker, treated hypertension)",
        "band 1-99, A1, percentile 54; `statin-cac-1-99` (age ≥55: a statin is reasonable)",
        birth_date="1965-01-22",
        sex="male",
        race="white",
        scans=(Scan("2026-06-03", 45),),
        labs=conventional_labs("2026-05-27", tc=205, hdl=48, ldl=128, tg=140),
        bp=(128, 80, "2026-05-27"),
        smoking=("former", "2026-05-27"),
        problems=(HTN,),
        meds=(Med("lisinopril", "lisinopril 20 mg tablet", "2019-04-02"),),
        family_history=False,
    ),
    Case(
        4,
        "cac-100-399-above-75th",
        "CAC 150 in a 48-year-old Black woman whose mother had a heart attack at 58",
        "band 100-399, A2, percentile 99 (estimated); `statin-cac-100`; `risk-enhancers` names the "
        "family history",
        birth_date="1977-10-05",
        sex="female",
        race="black",
        scans=(Scan("2026-02-17", 150),),
        labs=conventional_labs("2026-02-09", tc=210, hdl=55, ldl=130, tg=100),
        bp=(124, 78, "2026-02-09"),
        smoking=("never", "2026-02-09"),
        no_known_problems=True,
        no_known_meds=True,
        family_history=Relative("MTH", "mother", "female", 58),
    ),
    Case(
        5,
        "cac-400-metabolically-calm",
        "CAC 520 in a 66-year-old White man whose source-002 markers (TG/HDL, hs-CRP, ApoB, fasting insulin) "
        "are all on target",
        "band ≥400, A3, percentile 81; metabolic state calm; `statin-cac-100` (acc-aha-2018) but "
        "`lf-cac-400-calm` (lifestyle-first): `policy-divergence-statin` under both",
        birth_date="1960-04-11",
        sex="male",
        race="white",
        scans=(Scan("2026-04-28", 520),),
        labs=conventional_labs(
            "2026-04-20", tc=176, hdl=68, ldl=92, tg=62, apob=72, crp=0.5, insulin=4.8, hba1c=5.2, lpa_mass=18
        ),
        bp=(122, 76, "2026-04-20"),
        smoking=("never", "2026-04-20"),
        no_known_problems=True,
        no_known_meds=True,
        family_history=False,
        policies=("acc-aha-2018", "lifestyle-first"),
    ),
    Case(
        6,
        "rising-on-statin",
        "CAC 180 (2022) → 260 (2026) in a 68-year-old White woman on atorvastatin since 2021",
        "band 100-399, A2; progression beyond variability, 9.5%/year, `on_statin` true: the "
        "interpretation says the rise is expected, not treatment failure; `progression-marker-"
        "excluded-on-statin`",
        birth_date="1957-07-19",
        sex="female",
        race="white",
        scans=(Scan("2022-06-14", 180), Scan("2026-07-08", 260)),
        labs=conventional_labs("2026-06-30", tc=160, hdl=58, ldl=78, tg=110),
        bp=(126, 78, "2026-06-30"),
        smoking=("former", "2026-06-30"),
        problems=(Problem("hyperlipidemia", codes.SNOMED, "55822004", "Hyperlipidemia", "2021-10-20"),),
        meds=(Med("atorvastatin", "atorvastatin 20 mg tablet", "2021-11-02"),),
        family_history=False,
        policies=("acc-aha-2018", "lifestyle-first"),
    ),
    Case(
        7,
        "rapid-rise-no-statin",
        "CAC 60 (2023) → 150 (2026) in a 54-year-old White man who smokes, on amlodipine but no statin",
        "band 100-399, A2; progression rapid (32.3%/year, `on_statin` false); `statin-cac-100`; "
        "metabolic state active",
        birth_date="1971-11-30",
        sex="male",
        race="white",
        scans=(Scan("2023-05-16", 60), Scan("2026-08-25", 150)),
        labs=conventional_labs("2026-08-18", tc=232, hdl=41, ldl=152, tg=190, crp=3.1),
        bp=(138, 86, "2026-08-18"),
        smoking=("current", "2026-08-18"),
        problems=(HTN,),
        meds=(Med("amlodipine", "amlodipine 5 mg tablet", "2020-02-14"),),
        family_history=Relative("FTH", "father", "male", 50),
        policies=("acc-aha-2018", "lifestyle-first"),
    ),
    Case(
        8,
        "known-cad-stent",
        "CAC 350 in a 66-year-old White man with a coronary stent (2021) on atorvastatin and aspirin",
        "`known-coronary-disease` and `risk-equations-not-applicable` warnings; only `secondary-"
        "prevention`; risks null; no next scan",
        birth_date="1959-02-08",
        sex="male",
        race="white",
        scans=(Scan("2026-01-20", 350),),
        labs=conventional_labs("2026-01-12", tc=150, hdl=46, ldl=68, tg=120),
        bp=(124, 76, "2026-01-12"),
        smoking=("former", "2026-01-12"),
        problems=(
            Problem(
                "cad",
                codes.SNOMED,
                # subclinical on its own (terminology tables); the stent below makes it known disease
                known("53741008", SUBCLINICAL_SNOMED),
                "Coronary arteriosclerosis",
                "2021-03-08",
            ),
            Problem(
                "stent-status",
                codes.ICD10_CM,
                known("Z95.5", codes.CORONARY_ICD10),
                "Presence of coronary angioplasty implant and graft",
                "2021-03-09",
            ),
            Problem(
                "pci",
                codes.SNOMED,
                known("36969009", codes.CORONARY_SNOMED),
                "Placement of stent in coronary artery",
                "2021-03-09",
                kind="Procedure",
            ),
        ),
        meds=(
            Med("atorvastatin", "atorvastatin 40 mg tablet", "2021-03-10"),
            Med("aspirin", "aspirin 81 mg delayed-release tablet", "2021-03-10"),
        ),
        family_history=False,
    ),
    Case(
        9,
        "per-vessel-scores",
        "Per-vessel scores in a 64-year-old White woman: LAD 150, RCA 60, LCx 0, left main 0 (total 210)",
        "band 100-399, CAC-DRS `A2/N2` (vessels_with_calcium 2); `statin-cac-100`",
        birth_date="1962-09-12",
        sex="female",
        race="white",
        scans=(Scan("2026-09-15", 210, {"cac-left-main": 0, "cac-lad": 150, "cac-lcx": 0, "cac-rca": 60}),),
        labs=conventional_labs("2026-09-08", tc=214, hdl=57, ldl=132, tg=125),
        bp=(130, 80, "2026-09-08"),
        smoking=("never", "2026-09-08"),
        problems=(HTN,),
        meds=(Med("losartan", "losartan 50 mg tablet", "2019-05-20"),),
        family_history=False,
    ),
    Case(
        10,
        "si-units",
        "CAC 85 in a 57-year-old Hispanic woman with labs in SI units: lipids mmol/L, ApoB g/L, HbA1c "
        "mmol/mol, Lp(a) nmol/L",
        "band 1-99, A1, percentile 95 (estimated): `statin-cac-75th-percentile`; `risk-enhancers` "
        "names Lp(a) 160 nmol/L (kept in nmol/L)",
        birth_date="1968-12-03",
        sex="female",
        race="hispanic",
        scans=(Scan("2026-05-06", 85),),
        labs=(
            Lab("tc", 5.4, "mmol/L", "2026-04-28"),
            Lab("hdl", 1.4, "mmol/L", "2026-04-28"),
            Lab("ldl", 3.3, "mmol/L", "2026-04-28"),
            Lab("tg", 1.3, "mmol/L", "2026-04-28"),
            Lab("apob", 1.05, "g/L", "2026-04-28"),
            Lab("lpa-molar", 160, "nmol/L", "2026-04-28"),
            Lab("crp", 1.8, "mg/L", "2026-04-28"),
            Lab("hba1c-ifcc", 38, "mmol/mol", "2026-04-28"),
        ),
        bp=(126, 78, "2026-04-28"),
        smoking=("never", "2026-04-28"),
        no_known_problems=True,
        no_known_meds=True,
        family_history=False,
    ),
    Case(
        11,
        "missing-race-and-labs",
        "CAC 30 in a 51-year-old man with no race or ethnicity, no labs, no blood pressure, no problem list, "
        "no medication list",
        "band 1-99, A1; percentile and all risks null; `missing` names race, the lipids and blood "
        "pressure, and the unknown diabetes, smoking and medication status; `statin-"
        "cac-1-99-under-55`",
        birth_date="1975-06-21",
        sex="male",
        race=None,
        scans=(Scan("2026-06-30", 30),),
    ),
    Case(
        12,
        "chinese-reported-percentile",
        "CAC 35 in a 46-year-old Chinese American woman, with the percentile reported on the scan (97th)",
        "band 1-99, A1; percentile 97 with `estimated` false (reported on the scan); `statin-"
        "cac-75th-percentile`",
        birth_date="1980-02-25",
        sex="female",
        race="chinese",
        scans=(Scan("2026-04-14", 35, percentile=97),),
        labs=conventional_labs("2026-04-07", tc=196, hdl=58, ldl=118, tg=95),
        bp=(118, 72, "2026-04-07"),
        smoking=("never", "2026-04-07"),
        no_known_problems=True,
        no_known_meds=True,
        family_history=False,
    ),
)


# --- FHIR builders --------------------------------------------------------------------------------------
def coding(system: str, code: str, display: str | None = None) -> Json:
    out: Json = {"system": system, "code": code}
    if display is not None:
        out["display"] = display
    return out


def concept(*codings: Json, text: str | None = None) -> Json:
    out: Json = {"coding": list(codings)}
    if text is not None:
        out["text"] = text
    return out


def quantity(value: float, unit: str, code: str) -> Json:
    number: float | int = int(value) if float(value).is_integer() else value
    return {"value": number, "unit": unit, "system": codes.UCUM, "code": code}


def agatston(value: float) -> Json:
    return quantity(value, "Agatston", "{Agatston}")


def category(code: str, display: str) -> list[Json]:
    return [concept(coding(codes.OBSERVATION_CATEGORY, code, display))]


def fhircac_coding(code: str) -> Json:
    return coding(codes.FHIRCAC, code, codes.FHIRCAC_CONCEPTS[code][0])


class BundleWriter:
    def __init__(self, case: Case) -> None:
        self.case = case
        self.entries: list[Json] = []
        self.subject = {"reference": f"Patient/{case.patient_id}"}

    def add(self, resource_type: str, id_suffix: str | None, body: Json) -> None:
        resource_id = self.case.patient_id if id_suffix is None else f"{self.case.patient_id}-{id_suffix}"
        resource = {"resourceType": resource_type, "id": resource_id, **body}
        url = f"{resource_type}/{resource_id}"
        full_url = uuid.uuid5(uuid.NAMESPACE_URL, f"{FULL_URL_BASE}/{url}")
        self.entries.append(
            {
                "fullUrl": f"urn:uuid:{full_url}",
                "resource": resource,
                "request": {"method": "PUT", "url": url},
            }
        )

    def bundle(self) -> Json:
        return {"resourceType": "Bundle", "type": "transaction", "entry": self.entries}


def race_extensions(race: str) -> list[Json]:
    race_parts, (ethnicity_code, ethnicity_display), text = RACES[race]
    race_ext = [
        {"url": part, "valueCoding": coding(codes.CDC_RACE_ETHNICITY, code, display)}
        for part, code, display in race_parts
    ]
    ethnicity = coding(codes.CDC_RACE_ETHNICITY, ethnicity_code, ethnicity_display)
    return [
        {"url": codes.US_CORE_RACE, "extension": [*race_ext, {"url": "text", "valueString": text}]},
        {
            "url": codes.US_CORE_ETHNICITY,
            "extension": [
                {"url": "ombCategory", "valueCoding": ethnicity},
                {"url": "text", "valueString": ethnicity_display},
            ],
        },
    ]


def patient(case: Case) -> Json:
    number = f"{case.number:02d}"
    body: Json = {} if case.race is None else {"extension": race_extensions(case.race)}
    body["identifier"] = [{"system": MRN_SYSTEM, "value": f"EX{number}"}]
    body["name"] = [{"use": "official", "family": "Example", "given": [f"Case{number}"]}]
    body["gender"] = case.sex
    body["birthDate"] = case.birth_date
    return body


def cac_observation(case: Case, scan: Scan, subject: Json) -> Json:
    method_system, method_code = codes.AGATSTON_METHOD
    body: Json = {
        "meta": {"profile": [codes.PROFILE_CAC_OBSERVATION]},
        "status": "final",
        "category": category("imaging", "Imaging"),
        "code": concept(
            coding(codes.SNOMED, CAC_SNOMED, "Coronary artery calcium score"),
            fhircac_coding(codes.CAC_TOTAL),
            text="Coronary artery calcium score (Agatston)",
        ),
        "subject": subject,
        "effectiveDateTime": scan.day,
        "valueQuantity": agatston(scan.total),
        "method": concept(coding(method_system, method_code, "Agatston scoring method")),
    }
    components: list[Json] = []
    for vessel_code, score in (scan.vessels or {}).items():
        known(vessel_code, codes.VESSEL_COMPONENTS)
        components.append(
            {
                "code": concept(fhircac_coding(vessel_code), text=VESSEL_LABELS[vessel_code]),
                "valueQuantity": agatston(score),
            }
        )
    if scan.percentile is not None:
        components.append(
            {
                "code": concept(
                    fhircac_coding(codes.CAC_PERCENTILE), text="MESA percentile (age, sex, race)"
                ),
                "valueQuantity": quantity(scan.percentile, "percentile", "1"),
            }
        )
    if components:
        body["component"] = components
    return body


def lab_observation(lab: Lab, subject: Json) -> Json:
    loinc, display, _ = LABS[lab.key]
    return {
        "status": "final",
        "category": category("laboratory", "Laboratory"),
        "code": concept(coding(codes.LOINC, loinc, display), text=LAB_TEXT[lab.key]),
        "subject": subject,
        "effectiveDateTime": lab.day,
        "valueQuantity": quantity(lab.value, UNIT_TEXT.get(lab.unit, lab.unit), lab.unit),
    }


def bp_observation(systolic: int, diastolic: int, day: str, subject: Json) -> Json:
    return {
        "status": "final",
        "category": category("vital-signs", "Vital Signs"),
        "code": concept(
            coding(codes.LOINC, BP_PANEL, "Blood pressure panel with all children optional"),
            text="Blood pressure",
        ),
        "subject": subject,
        "effectiveDateTime": day,
        "component": [
            {
                "code": concept(coding(codes.LOINC, SYSTOLIC, "Systolic blood pressure")),
                "valueQuantity": quantity(systolic, "mmHg", MM_HG),
            },
            {
                "code": concept(coding(codes.LOINC, DIASTOLIC, "Diastolic blood pressure")),
                "valueQuantity": quantity(diastolic, "mmHg", MM_HG),
            },
        ],
    }


def smoking_observation(answer: str, day: str, subject: Json) -> Json:
    code, display = SMOKING_ANSWERS[answer]
    return {
        "status": "final",
        "category": category("social-history", "Social History"),
        "code": concept(
            coding(codes.LOINC, codes.SMOKING_STATUS, "Tobacco smoking status"), text="Tobacco smoking status"
        ),
        "subject": subject,
        "effectiveDateTime": day,
        "valueCodeableConcept": concept(coding(codes.SNOMED, code, display), text=display),
    }


def condition(code: Json, subject: Json, onset: str | None, recorded: str, text: str) -> Json:
    body: Json = {
        "clinicalStatus": concept(coding(CONDITION_CLINICAL, "active", "Active")),
        "verificationStatus": concept(coding(CONDITION_VER_STATUS, "confirmed", "Confirmed")),
        "category": [concept(coding(CONDITION_CATEGORY, "problem-list-item", "Problem List Item"))],
        "code": {**code, "text": text},
        "subject": subject,
    }
    if onset is not None:
        body["onsetDateTime"] = onset
    body["recordedDate"] = recorded
    return body


def medication_statement(med: Med, subject: Json, asserted: str) -> Json:
    code = METFORMIN_RXNORM if med.ingredient == "metformin" else RXNORM_BY_NAME[med.ingredient]
    period = {"start": med.start} if med.end is None else {"start": med.start, "end": med.end}
    return {
        "status": "active" if med.end is None else "completed",
        "medicationCodeableConcept": concept(coding(codes.RXNORM, code, med.ingredient), text=med.text),
        "subject": subject,
        "effectivePeriod": period,
        "dateAsserted": asserted,
    }


def build(case: Case) -> Json:
    writer = BundleWriter(case)
    subject = writer.subject
    writer.add("Patient", None, patient(case))
    for scan in case.scans:
        writer.add("Observation", f"scan-{scan.day[:4]}", cac_observation(case, scan, subject))
    for lab in case.labs:
        writer.add("Observation", lab.key, lab_observation(lab, subject))
    if case.bp is not None:
        writer.add("Observation", "bp", bp_observation(*case.bp, subject))
    if case.smoking is not None:
        writer.add("Observation", "smoking", smoking_observation(*case.smoking, subject))
    for problem in case.problems:
        problem_concept = concept(coding(problem.system, problem.code, problem.display))
        if problem.kind == "Procedure":
            writer.add(
                "Procedure",
                problem.id_suffix,
                {
                    "status": "completed",
                    "code": {**problem_concept, "text": problem.display},
                    "subject": subject,
                    "performedDateTime": problem.onset,
                },
            )
        else:
            writer.add(
                "Condition",
                problem.id_suffix,
                condition(problem_concept, subject, problem.onset, case.recorded, problem.display),
            )
    if case.no_known_problems:
        system, code = codes.NO_KNOWN_PROBLEMS
        writer.add(
            "Condition",
            "no-known-problems",
            condition(
                concept(coding(system, code, "No known problems")),
                subject,
                None,
                case.recorded,
                "No known problems",
            ),
        )
    for med in case.meds:
        writer.add("MedicationStatement", med.ingredient, medication_statement(med, subject, case.recorded))
    if case.no_known_meds:
        system, code = codes.NO_KNOWN_MEDICATIONS
        writer.add(
            "MedicationStatement",
            "no-known-medications",
            {
                "status": "active",
                "medicationCodeableConcept": concept(
                    coding(system, code, "No known medications"), text="No known medications"
                ),
                "subject": subject,
                "dateAsserted": case.recorded,
            },
        )
    if isinstance(case.family_history, Relative):
        relative = case.family_history
        onset_age = {"value": relative.onset_age, "unit": "years", "system": codes.UCUM, "code": "a"}
        writer.add(
            "FamilyMemberHistory",
            "family-history",
            {
                "status": "completed",
                "patient": subject,
                "date": case.recorded,
                "relationship": concept(coding(codes.V3_ROLE_CODE, relative.relationship, relative.display)),
                "sex": concept(coding(ADMINISTRATIVE_GENDER, relative.sex, relative.sex.capitalize())),
                "condition": [
                    {
                        "code": concept(
                            coding(
                                codes.SNOMED,
                                known("22298006", codes.FAMILY_CHD_SNOMED),
                                "Myocardial infarction",
                            ),
                            text="Heart attack",
                        ),
                        "onsetAge": onset_age,
                    }
                ],
            },
        )
    elif case.family_history is False:
        writer.add(
            "Observation",
            "family-history",
            {
                "status": "final",
                "code": concept(fhircac_coding(codes.FAMILY_HISTORY_PREMATURE_CHD)),
                "subject": subject,
                "effectiveDateTime": case.recorded,
                "valueBoolean": False,
            },
        )
    return writer.bundle()


# --- equivalent calculator input (for checking the cases with `fhircac calc`) ---------------------------
def calc_args(case: Case, policy: str = "acc-aha-2018") -> list[str]:
    current = case.scans[-1]
    args = ["--id", f"Patient/{case.patient_id}", "--as-of", AS_OF, "--policy", policy]
    args += [
        "--age",
        str(completed_years(date.fromisoformat(case.birth_date), date.fromisoformat(current.day))),
    ]
    args += ["--sex", case.sex]
    if case.race is not None:
        args += ["--race", case.race]
    args += ["--cac", f"{current.total:g}", "--date", current.day]
    if current.vessels is not None:
        args += ["--vessels", str(sum(1 for score in current.vessels.values() if score > 0))]
    if current.percentile is not None:
        args += ["--percentile", f"{current.percentile:g}"]
    if len(case.scans) > 1:
        prior = case.scans[-2]
        args += ["--prior-cac", f"{prior.total:g}", "--prior-date", prior.day]
    for lab in case.labs:
        lab_flag = LABS[lab.key][2]
        if lab_flag == "--lpa":
            args += ["--lpa", f"{lab.value:g}", "--lpa-unit", lab.unit]
        else:
            args += [lab_flag, f"{lab.value:g} {lab.unit}"]
    if case.bp is not None:
        args += ["--sbp", str(case.bp[0])]

    def boolean(name: str, value: bool | None) -> None:
        if value is None:
            args.extend([name, "unknown"])
        elif value:
            args.append(name)

    med_list = bool(case.meds) or case.no_known_meds
    classes = {DRUG_CLASS_BY_NAME.get(med.ingredient) for med in case.meds}
    has_problem_list = bool(case.problems) or case.no_known_problems
    problem_codes = {problem.code for problem in case.problems}
    coronary = set(codes.CORONARY_SNOMED) | set(codes.CORONARY_ICD10)
    boolean("--statin", DrugClass.STATIN in classes if med_list else None)
    boolean("--lipid-lowering", DrugClass.OTHER_LIPID_LOWERING in classes if med_list else None)
    boolean("--bp-treated", DrugClass.ANTIHYPERTENSIVE in classes if med_list else None)
    boolean("--diabetes", bool(problem_codes & codes.DIABETES_SNOMED) if has_problem_list else None)
    boolean("--known-cad", bool(problem_codes & coronary) if has_problem_list else None)
    boolean("--bleeding-risk", False if has_problem_list else None)
    # No bundle states the absence of chest pain or exertional breathlessness, and a problem list
    # does not: symptoms stay unknown.
    boolean("--symptoms", None)
    boolean("--smoker", None if case.smoking is None else case.smoking[0] == "current")
    boolean("--family-history", None if case.family_history is None else case.family_history is not False)
    return args


def calc_command(case: Case, policy: str = "acc-aha-2018") -> str:
    return shlex.join([".venv/bin/fhircac", "calc", *calc_args(case, policy)])


# --- README -------------------------------------------------------------------------------------------------
README_HEAD = """\
# Example FHIR bundles

Generated by `tools/make_examples.py` — edit the cases there and run
`.venv/bin/python tools/make_examples.py` (`--check` fails when this folder is out of date,
`--calc` prints the equivalent `fhircac calc` command for each case).

Each `NN-short-name.json` is a FHIR R4 **transaction** Bundle for one synthetic patient
(`Example, CaseNN`, MRN `EXNN` in `https://example.org/fhir/sid/mrn`). Every entry is a
`PUT <Type>/<id>` with a client id (`cac-exNN`, `cac-exNN-scan-2026`, `cac-exNN-ldl`, …), so a
bundle can be loaded any number of times without creating duplicates; references are plain
`Patient/cac-exNN`. Current scans are dated 2026 (earlier scans, where given, are separate CAC
Observations and feed progression); labs, blood pressure and smoking status are dated within the
year up to **2026-11-01**, the as-of date of the expected outputs. Ages at the scan are 40-79.

Every patient carries a problem list (real Conditions or an IPS `no-known-problems` Condition), a
medication list (MedicationStatements or IPS `no-known-medications`) and a family-history
statement, so that "none recorded" reads as "no" — except case 11, which deliberately has none of
them and so reads as "unknown".

| file | what it shows | key expected result |
|---|---|---|
"""

README_TAIL = """
## Load one into a FHIR server

`FHIR` is the server's base URL: the test server of `docs/fhir-server.md`
(`make hapi`, then `.venv/bin/python tools/hapi_server.py run --port 8090`) is
`http://127.0.0.1:8090/fhir`; fhircac's own port, 8080, has no FHIR API.

<!-- runnable -->
```sh
FHIR=${HAPI_URL:-http://127.0.0.1:8090/fhir}
curl -sS --fail-with-body -X POST -H 'Content-Type: application/fhir+json' \\
     --data @examples/01-cac-zero-low-risk.json "$FHIR"
```

The server answers with a `transaction-response` Bundle (`201 Created` the first time, `200 OK`
on a reload). HAPI FHIR's default `client_id_strategy` (`ALPHANUMERIC`) accepts these ids. To load
them all:

<!-- runnable -->
```sh
FHIR=${HAPI_URL:-http://127.0.0.1:8090/fhir}
for f in examples/[0-9][0-9]-*.json; do
  curl -sS --fail-with-body -o /dev/null -X POST -H 'Content-Type: application/fhir+json' \\
       --data @"$f" "$FHIR"
  echo "loaded $f"
done
```

## Replay against the service

<!-- runnable -->
```sh
.venv/bin/fhircac evaluate examples/01-cac-zero-low-risk.json --format summary --as-of 2026-11-01
```

Expected summaries are kept in `expected/NN-short-name.summary.json` (as of 2026-11-01, default
policy `acc-aha-2018`); the "key expected result" column above is what to look at first. Always
pass `--as-of 2026-11-01`: with today's date the lab ages, repeat-scan dates and ages change.

`.venv/bin/python tools/make_examples.py --calc` prints each case as the equivalent
`fhircac calc` command (and, for cases 01, 05, 06 and 07, also under `--policy lifestyle-first`).
The calculator and the FHIR reader feed the same clinical core, so the band, CAC-DRS, percentile,
risks and recommendation ids should match; a difference points at the FHIR mapping.
"""


def readme() -> str:
    rows = [f"| [`{case.filename}`]({case.filename}) | {case.shows} | {case.expected} |" for case in CASES]
    return README_HEAD + "\n".join(rows) + "\n" + README_TAIL


# --- output ------------------------------------------------------------------------------------------------
def dump(data: Json) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


def validate(name: str, data: Json) -> None:
    Bundle.model_validate(data)  # raises with every problem named
    ids = [entry["request"]["url"] for entry in data["entry"]]
    if len(ids) != len(set(ids)):
        raise SystemExit(f"make_examples: {name}: duplicate resource ids")
    for entry in data["entry"]:
        rid = entry["resource"]["id"]
        if not (len(rid) <= 64 and any(ch.isalpha() for ch in rid)):
            raise SystemExit(f"make_examples: {name}: id {rid!r} is not a non-numeric client id")


def check_case(case: Case) -> None:
    """The conventions the README promises: 2026 scans, ages 40-79, labs within the year before AS_OF."""
    as_of = date.fromisoformat(AS_OF)
    current = date.fromisoformat(case.scans[-1].day)
    problems = []
    if current.year != 2026 or current > as_of:
        problems.append(f"current scan {current} is not in 2026 on or before {AS_OF}")
    if [scan.day for scan in case.scans] != sorted(scan.day for scan in case.scans):
        problems.append("scans are not oldest first")
    age = completed_years(date.fromisoformat(case.birth_date), current)
    if not 40 <= age <= 79:
        problems.append(f"age {age} at the scan is outside 40-79")
    days = [lab.day for lab in case.labs]
    days += [case.bp[2]] if case.bp is not None else []
    days += [case.smoking[1]] if case.smoking is not None else []
    for day in days:
        if not 0 <= (as_of - date.fromisoformat(day)).days < 365:
            problems.append(f"measurement dated {day} is not within the year up to {AS_OF}")
    for scan in case.scans:
        if scan.vessels is not None and sum(scan.vessels.values()) != scan.total:
            problems.append(f"vessel scores of the {scan.day} scan do not add up to {scan.total:g}")
    if problems:
        raise SystemExit(f"make_examples: case {case.filename}: " + "; ".join(problems))


def outputs() -> dict[str, str]:
    files: dict[str, str] = {}
    for case in CASES:
        check_case(case)
        data = build(case)
        validate(case.filename, data)
        files[case.filename] = dump(data)
    files["README.md"] = readme()
    return files


def check(files: dict[str, str], report: Callable[[str], None]) -> bool:
    ok = True
    for name, text in files.items():
        path = EXAMPLES / name
        if not path.is_file():
            report(f"missing: examples/{name}")
            ok = False
        elif path.read_text("utf-8") != text:
            report(f"differs: examples/{name}")
            ok = False
    for path in sorted(EXAMPLES.glob("[0-9][0-9]-*.json")):
        if path.name not in files:
            report(f"not generated (stale?): examples/{path.name}")
            ok = False
    return ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if examples/ differs; write nothing")
    parser.add_argument("--calc", action="store_true", help="print the equivalent `fhircac calc` commands")
    args = parser.parse_args(argv)
    if args.calc:
        for case in CASES:
            for policy in case.policies:
                print(f"# {case.filename} ({policy})\n{calc_command(case, policy)}")
        return 0
    files = outputs()
    if args.check:
        if check(files, lambda line: print(line, file=sys.stderr)):
            print(f"examples/ is up to date ({len(files)} files)")
            return 0
        print("run: .venv/bin/python tools/make_examples.py", file=sys.stderr)
        return 1
    EXAMPLES.mkdir(exist_ok=True)
    for name, text in files.items():
        (EXAMPLES / name).write_text(text, "utf-8")
    print(f"wrote {len(files)} files to {EXAMPLES.relative_to(ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
