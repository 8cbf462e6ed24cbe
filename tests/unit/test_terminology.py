"""fhircac/fhir/terminology: generated from the published value sets, in step, with provenance; lookups."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fhircac.clinical.record import CoronaryHistory, DrugClass
from fhircac.fhir import codes, terminology
from fhircac.fhir.terminology import ConditionKind

REPO_ROOT = Path(__file__).resolve().parents[2]
TABLES = REPO_ROOT / "fhircac" / "fhir" / "terminology"
SCRIPT = REPO_ROOT / "tools" / "build_terminology.py"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--check", *args], capture_output=True, text=True, check=False
    )


def test_tables_are_what_the_script_generates() -> None:
    """With the pack on disk (../shared) the tables are rebuilt and compared; without it (a clean
    checkout elsewhere) the supplement table is rebuilt and every other table's digest checked."""
    result = run()
    assert result.returncode == 0, result.stderr
    assert ("rebuilt from the pack" in result.stdout) or ("checked digests" in result.stdout)


def test_a_hand_edited_table_fails_the_check_even_without_the_pack(tmp_path: Path) -> None:
    copy = tmp_path / "terminology"
    shutil.copytree(TABLES, copy, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    assert run("--out", str(copy), "--source", str(tmp_path / "absent")).returncode == 0
    statins = copy / "statins.json"
    statins.write_text(statins.read_text(encoding="utf-8").replace('"low"', '"high"', 1), encoding="utf-8")
    result = run("--out", str(copy), "--source", str(tmp_path / "absent"))
    assert result.returncode == 1
    assert "statins.json differs" in result.stderr


def test_every_table_keeps_its_value_sets_and_the_index_keeps_the_licence_notices() -> None:
    index = json.loads((TABLES / "index.json").read_text(encoding="utf-8"))
    notices = " ".join(index["notices"])
    assert "American Medical Association" in notices and "Regenstrief" in notices and "SNOMED" in notices
    assert "NCQA" in notices and "World Health Organization" in notices
    for name in index["tables"]:
        table = json.loads((TABLES / name).read_text(encoding="utf-8"))
        assert table["generatedBy"] == "tools/build_terminology.py"
        if name in ("supplement.json", "other-lipid-lowering.json"):
            continue
        assert table["valueSets"], name
        for value_set in table["valueSets"]:
            assert value_set["valueSet"] == f"http://cts.nlm.nih.gov/fhir/ValueSet/{value_set['oid']}"
            assert value_set["version"] and value_set["expansionTimestamp"] and value_set["commit"]
        assert all(code["valueSet"] for code in table["codes"])


def test_every_supplement_entry_says_why() -> None:
    supplement = json.loads((REPO_ROOT / "tools" / "terminology_supplement.json").read_text(encoding="utf-8"))
    for section in ("medications", "conditions", "procedures"):
        assert all(entry["why"] for entry in supplement[section]), section


# -- lookups (the shapes of the real-data review) --------------------------------------------------
@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("316672", {DrugClass.STATIN}),  # Synthea's simvastatin 10 MG component (F1)
        ("617312", {DrugClass.STATIN}),  # atorvastatin 10 MG Oral Tablet, code only (F1)
        ("597967", {DrugClass.STATIN, DrugClass.ANTIHYPERTENSIVE}),  # amlodipine/atorvastatin (Caduet SCD)
        ("476345", {DrugClass.STATIN}),  # ezetimibe/simvastatin (Vytorin SCD): listed as a statin
        ("855332", {DrugClass.ANTICOAGULANT}),  # warfarin 5 MG (F3)
        ("1364445", {DrugClass.ANTICOAGULANT}),  # apixaban 5 MG
        ("309362", {DrugClass.P2Y12_INHIBITOR}),  # clopidogrel 75 MG
        ("243670", {DrugClass.ASPIRIN}),  # aspirin 81 MG
        ("1191", {DrugClass.ASPIRIN}),  # the ingredient (REFERENCE §12)
    ],
)
def test_rxnorm_codes(code: str, expected: set[DrugClass]) -> None:
    found = terminology.drug(codes.RXNORM, code)
    assert found is not None and found.classes == expected


def test_aspirin_in_an_analgesic_combination_is_not_antiplatelet_aspirin() -> None:
    found = terminology.drug(codes.RXNORM, "1092398")  # aspirin 500 MG / diphenhydramine
    assert found is not None and found.classes == frozenset()
    assert found.note is not None and "analgesic combination" in found.note


@pytest.mark.parametrize(
    ("text", "expected", "misspelt"),
    [
        ("Simvistatin 10 MG", {DrugClass.STATIN}, "simvistatin"),
        ("VYTORIN 10-40 MG TABLET", {DrugClass.STATIN, DrugClass.OTHER_LIPID_LOWERING}, None),
        ("CADUET 5-20 MG TABLET", {DrugClass.STATIN, DrugClass.ANTIHYPERTENSIVE}, None),
        ("Verapamil Hydrochloride 40 MG", {DrugClass.ANTIHYPERTENSIVE}, None),
        ("Lasix 40 mg", {DrugClass.ANTIHYPERTENSIVE}, None),
        ("Eliquis 5 mg", {DrugClass.ANTICOAGULANT}, None),
        ("Plavix", {DrugClass.P2Y12_INHIBITOR}, None),
        ("Repatha SureClick", {DrugClass.OTHER_LIPID_LOWERING}, None),
        ("fenofibrate 145 mg", {DrugClass.OTHER_LIPID_LOWERING}, None),
    ],
)
def test_names_survive_real_displays(text: str, expected: set[DrugClass], misspelt: str | None) -> None:
    found = terminology.drug_by_name(text)
    assert found is not None and found.classes == expected
    assert found.misspelt == misspelt


@pytest.mark.parametrize("text", ["metformin 500 mg", "niacinamide 500 mg", "Nitroglycerin 0.4 MG", "ASAP"])
def test_names_that_are_not_these_drugs(text: str) -> None:
    assert terminology.drug_by_name(text) is None


@pytest.mark.parametrize(
    ("system", "code", "kind", "history"),
    [
        (codes.SNOMED, "313436004", ConditionKind.DIABETES, None),  # T2DM without complication (F5)
        (codes.SNOMED, "401303003", ConditionKind.ASCVD, CoronaryHistory.MYOCARDIAL_INFARCTION),  # STEMI
        (codes.SNOMED, "401314000", ConditionKind.ASCVD, CoronaryHistory.MYOCARDIAL_INFARCTION),  # NSTEMI
        (
            codes.SNOMED,
            "399211009",
            ConditionKind.ASCVD,
            CoronaryHistory.MYOCARDIAL_INFARCTION,
        ),  # history of MI
        (codes.SNOMED, "399261000", ConditionKind.ASCVD, CoronaryHistory.BYPASS),  # history of CABG
        (codes.SNOMED, "194828000", ConditionKind.ASCVD, CoronaryHistory.CORONARY_DISEASE),  # angina
        (codes.SNOMED, "230690007", ConditionKind.ASCVD, CoronaryHistory.STROKE_OR_TIA),  # stroke (F4)
        (codes.ICD10_CM, "I63.9", ConditionKind.ASCVD, CoronaryHistory.STROKE_OR_TIA),
        (codes.ICD10_CM, "I70.213", ConditionKind.ASCVD, CoronaryHistory.PERIPHERAL_ARTERY_DISEASE),
        (codes.ICD10_CM, "I25.10", ConditionKind.SUBCLINICAL, None),
        (codes.ICD10_CM, "I2584", ConditionKind.SUBCLINICAL, None),  # without its dot
        (codes.SNOMED, "53741008", ConditionKind.SUBCLINICAL, None),
        (codes.ICD10_CM, "Z79.01", ConditionKind.ANTICOAGULANT_USE, None),
        ("http://snomed.info/sct/731000124108", "313436004", ConditionKind.DIABETES, None),  # edition URI
    ],
)
def test_condition_codes(
    system: str, code: str, kind: ConditionKind, history: CoronaryHistory | None
) -> None:
    found = terminology.condition(system, code)
    assert found is not None and found.kind is kind and found.history is history


def test_haemorrhagic_stroke_codes_are_not_ascvd() -> None:
    table = json.loads((TABLES / "ascvd-conditions.json").read_text(encoding="utf-8"))
    haemorrhagic = [c for c in table["codes"] if c.get("hemorrhagic")]
    assert haemorrhagic
    for code in haemorrhagic:
        found = terminology.condition(code["system"], code["code"])
        assert found is not None and found.kind is ConditionKind.HAEMORRHAGIC_STROKE, code


@pytest.mark.parametrize(
    ("system", "code", "history"),
    [
        ("http://www.ama-assn.org/go/cpt", "92928", CoronaryHistory.STENT),
        ("http://www.ama-assn.org/go/cpt", "33533", CoronaryHistory.BYPASS),
        (codes.SNOMED, "736169009", CoronaryHistory.STENT),  # drug-eluting stent insertion (F5)
        ("http://www.cms.gov/Medicare/Coding/ICD10", "0210093", CoronaryHistory.BYPASS),
    ],
)
def test_procedure_codes(system: str, code: str, history: CoronaryHistory) -> None:
    found = terminology.procedure(system, code)
    assert found is not None and found.history is history


def test_smoking_answers_and_ldl_codes() -> None:
    assert terminology.smoking_answer(codes.LOINC, "LA18976-3") == "current"
    assert terminology.smoking_answer(codes.LOINC, "LA18978-9") == "not-current"
    assert terminology.smoking_answer(codes.SNOMED, "160603005") == "current"  # light cigarette smoker
    assert terminology.smoking_answer(codes.SNOMED, "8517006") == "not-current"
    assert {"72166-2", "11367-0"} <= terminology.smoking_observation_codes()
    assert "2089-1" in terminology.ldl_codes() and "86911-5" not in terminology.ldl_codes()
