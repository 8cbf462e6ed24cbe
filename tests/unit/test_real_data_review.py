"""Every finding of ../shared/reviews/2026-12-real-data-review.md, with the resource shape that caused it.

Each test builds the resource the way the review quotes it (Synthea 2019/3.3, US Core 9, radiology
systems) and checks what fhircac reads from it and what it then says.
"""

from __future__ import annotations

import copy
from datetime import UTC, date, datetime
from typing import Any

from fhircac.clinical.policies import POLICIES
from fhircac.clinical.record import CoronaryHistory, DrugClass, PatientRecord, Sex
from fhircac.evaluate import Evaluation, evaluate
from fhircac.fhir import codes
from fhircac.fhir.inputs import group_by_patient
from fhircac.fhir.read import ReadResult, read_patient
from tests import fhir_builders as fb

AS_OF = date(2026, 11, 15)
SCAN = "2026-10-20"
RXNORM = codes.RXNORM
SUBJECT = {"reference": "Patient/p1"}


def read(*resources: dict[str, Any], as_of: date = AS_OF) -> ReadResult:
    groups, issues = group_by_patient([("in.json", fb.collection(*resources))])
    assert [i for i in issues if i.is_error] == [], issues
    (group,) = groups
    return read_patient(group, as_of)


def record_of(*resources: dict[str, Any], as_of: date = AS_OF) -> PatientRecord:
    result = read(*resources, as_of=as_of)
    assert [i for i in result.issues if i.is_error] == [], result.issues
    assert result.record is not None
    return result.record


def notes(result: ReadResult) -> str:
    return "\n".join(i.message for i in result.issues)


def evaluated(*resources: dict[str, Any], as_of: date = AS_OF, policy: str = "acc-aha-2018") -> Evaluation:
    evaluations, issues = evaluate(
        [("in.json", fb.collection(*resources))], POLICIES[policy], as_of, datetime(2026, 11, 15, tzinfo=UTC)
    )
    assert [i for i in issues if i.is_error] == [], issues
    (evaluation,) = evaluations
    return evaluation


def rule_ids(evaluation: Evaluation) -> set[str]:
    summary = evaluation.summary()
    return {s["id"] for s in summary["recommendations"] + summary["warnings"]}


def request(
    code: str,
    display: str,
    authored: str,
    status: str = "stopped",
    id: str | None = None,
    text: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A MedicationRequest as Synthea writes it (a renewal is a new order; the old one is stopped)."""
    concept: dict[str, Any] = {"coding": [{"system": RXNORM, "code": code, "display": display}]}
    if text:
        concept["text"] = text
    return {
        "resourceType": "MedicationRequest",
        "id": id or f"mr-{code}-{authored[:10]}",
        "status": status,
        "intent": "order",
        "medicationCodeableConcept": concept,
        "subject": SUBJECT,
        "authoredOn": authored,
        "dosageInstruction": [{"timing": {"repeat": {"frequency": 1, "period": 1.0, "periodUnit": "d"}}}],
        **extra,
    }


def cac(value: float = 150, day: str = SCAN, id: str = "scan", **extra: Any) -> dict[str, Any]:
    """A CAC result the way radiology systems send it (DICOM TID 3905: SNOMED 450360000, UCUM 1)."""
    return {
        "resourceType": "Observation",
        "id": id,
        "status": "final",
        "category": [{"coding": [{"system": codes.OBSERVATION_CATEGORY, "code": "imaging"}]}],
        "code": {
            "coding": [{"system": codes.SNOMED, "code": "450360000"}],
            "text": "Coronary artery calcium score",
        },
        "subject": SUBJECT,
        "effectiveDateTime": f"{day}T09:30:00-05:00",
        "issued": f"{day}T14:05:12.000-05:00",
        "method": {"coding": [{"system": codes.DICOM, "code": "112055"}]},
        "valueQuantity": {"value": value, "unit": "Agatston", "system": codes.UCUM, "code": "1"},
        **extra,
    }


def patient(**extra: Any) -> dict[str, Any]:
    return {
        **fb.patient(birth_date="1962-05-01", race=[codes.WHITE], ethnicity=[codes.NOT_HISPANIC]),
        **extra,
    }


def condition(
    code: str, system: str = codes.SNOMED, onset: str = "2019-01-26", **extra: Any
) -> dict[str, Any]:
    return {**fb.condition(code, system), "onsetDateTime": f"{onset}T21:37:43+00:00", **extra}


def procedure(code: str, system: str, performed: str = "2018-03-09") -> dict[str, Any]:
    return {
        "resourceType": "Procedure",
        "id": f"proc-{code}",
        "status": "completed",
        "code": {"coding": [{"system": system, "code": code}]},
        "subject": SUBJECT,
        "performedDateTime": f"{performed}T10:00:00+00:00",
    }


def risk_inputs(*extra: dict[str, Any]) -> list[dict[str, Any]]:
    """Labs, BP, smoking and a problem list, so the risk equations and aspirin rules can run."""
    return [
        fb.lab("2093-3", 200, "mg/dL", id="tc", date="2026-09-01"),
        fb.lab("2085-9", 45, "mg/dL", id="hdl", date="2026-09-01"),
        fb.blood_pressure(135, date="2026-09-01"),
        fb.smoking("266919005", date="2026-09-01"),
        condition("59621000", onset="2010-01-01"),  # essential hypertension (not read)
        *extra,
    ]


# -- F1 statins on the chart not recognised ------------------------------------------------------------
def test_f1_synthea_simvistatin_316672_is_a_statin_with_a_note_on_the_spelling() -> None:
    simvistatin = request(
        "316672", "Simvistatin 10 MG", "2024-01-19T04:59:42+00:00", "active", text="Simvistatin 10 MG"
    )
    result = read(patient(), cac(), simvistatin)
    assert result.record is not None and result.record.taking(DrugClass.STATIN, date(2026, 10, 20))
    by_name = read(patient(), cac(), request("999999", "Simvistatin 10 MG", "2024-01-19", "active"))
    assert by_name.record is not None and by_name.record.taking(DrugClass.STATIN, date(2026, 10, 20))
    assert "read as simvastatin (a misspelling" in notes(by_name)


def test_f1_a_woman_on_simvastatin_with_cac_0_is_not_told_to_withhold_one() -> None:
    woman = patient(gender="female")
    on_statin = evaluated(
        woman, cac(0), request("316672", "Simvistatin 10 MG", "2015-01-19", "active"), *risk_inputs()
    )
    assert "statin-cac-0-withhold" not in rule_ids(on_statin)
    assert on_statin.summary()["inputs"]["statin"]["at_scan"] is True


def test_f1_code_only_product_and_brand_texts() -> None:
    code_only = {"coding": [{"system": RXNORM, "code": "617312"}]}  # atorvastatin 10 MG, no display
    for concept in (code_only, {"text": "VYTORIN 10-40 MG TABLET"}, {"text": "CADUET 5-20 MG TABLET"}):
        statement = fb.medication_statement(concept, start="2024-01-01")
        assert record_of(patient(), cac(), statement).taking(DrugClass.STATIN, date(2026, 10, 20)), concept


def test_f1_an_unrecognised_cardiovascular_medication_is_noted_with_its_code() -> None:
    statement = fb.medication_statement(fb.rxnorm("1234567", "mystatin 5 MG Oral Tablet"), start="2024-01-01")
    result = read(patient(), cac(), statement)
    assert "not recognised (RxNorm 1234567 'mystatin 5 MG Oral Tablet'): not counted" in notes(result)


# -- F2 renewals read as one-day prescriptions ---------------------------------------------------------
def yearly_renewals(
    first_year: int, last_year: int, code: str = "314231", display: str = "Simvastatin 10 MG Oral Tablet"
) -> list[dict[str, Any]]:
    """Synthea 3.x: one order a year, each stopped when renewed, the newest active; no end dates."""
    orders = [request(code, display, f"{year}-09-28T08:32:47+00:00") for year in range(first_year, last_year)]
    orders.append(request(code, display, f"{last_year}-10-10T08:32:47+00:00", "active"))
    return orders


def test_f2_a_renewal_series_is_one_course_and_gives_one_note() -> None:
    result = read(patient(), cac(60, "2022-10-18", id="prior"), cac(), *yearly_renewals(2005, 2026))
    record = result.record
    assert record is not None
    evaluation_inputs = evaluated(
        patient(), cac(60, "2022-10-18", id="prior"), cac(), *yearly_renewals(2005, 2026)
    ).summary()["inputs"]
    assert evaluation_inputs["statin"] == {"at_scan": True, "since": "2005-09-28", "between_scans_share": 1.0}
    assert "stopped without an end date" not in notes(result)
    assert notes(result).count("order(s) stopped or completed") == 0


def test_f2_scan_between_two_renewals_and_a_past_date_replay() -> None:
    # s33-18: replayed --as-of 2025-11-15, scan 2025-10-20; the order active then is 'stopped' now.
    replay = date(2025, 11, 15)
    record = record_of(patient(), cac(day="2025-10-20"), *yearly_renewals(2016, 2026), as_of=replay)
    assert record.taking(DrugClass.STATIN, date(2025, 10, 20))
    # s33-06: HCTZ renewed 2026-04-12 (stopped), next order 2026-10-25, scan 2026-10-20
    hctz = [
        request("310798", "Hydrochlorothiazide 25 MG Oral Tablet", "2025-04-12"),
        request("310798", "Hydrochlorothiazide 25 MG Oral Tablet", "2026-04-12"),
        request("310798", "Hydrochlorothiazide 25 MG Oral Tablet", "2026-10-25", "active"),
    ]
    assert record_of(patient(), cac(), *hctz).taking(DrugClass.ANTIHYPERTENSIVE, date(2026, 10, 20))


def test_f2_supply_and_prior_prescription_and_a_real_stop() -> None:
    supplied = request(
        "314231",
        "simvastatin 10 MG Oral Tablet",
        "2026-01-01",
        "completed",
        dispenseRequest={
            "expectedSupplyDuration": {"value": 90, "unit": "days", "code": "d"},
            "numberOfRepeatsAllowed": 3,
        },
    )
    record = record_of(patient(), cac(), supplied)
    assert record.taking(DrugClass.STATIN, date(2026, 10, 20))  # 4 × 90 days from 1 January
    assert not record.taking(DrugClass.STATIN, date(2027, 1, 10))
    first = request("314231", "simvastatin 10 MG Oral Tablet", "2023-01-01", id="first")
    second = request(
        "314231",
        "simvastatin 10 MG Oral Tablet",
        "2025-06-01",
        "active",
        priorPrescription={"reference": "MedicationRequest/first"},
    )
    assert record_of(patient(), cac(), first, second).taking(DrugClass.STATIN, date(2024, 6, 1))
    stopped_long_ago = read(
        patient(), cac(), request("314231", "simvastatin 10 MG Oral Tablet", "2019-01-01")
    )
    assert stopped_long_ago.record is not None and not stopped_long_ago.record.taking(
        DrugClass.STATIN, date(2026, 10, 20)
    )
    assert "not renewed within 400 days" in notes(stopped_long_ago)


# -- F3 aspirin offered to anticoagulated / P2Y12-treated patients -----------------------------------------
def test_f3_warfarin_and_clopidogrel_are_raised_bleeding_risk_and_antithrombotic_therapy() -> None:
    warfarin = request("855332", "Warfarin Sodium 5 MG Oral Tablet", "2010-05-12T06:12:47+00:00", "active")
    clopidogrel = request("309362", "clopidogrel 75 MG Oral Tablet", "2020-01-01", "active")
    for drug in (warfarin, clopidogrel):
        evaluation = evaluated(patient(), cac(150), drug, *risk_inputs())
        assert "aspirin-may-be-considered" not in rule_ids(evaluation)
        assert "aspirin-bleeding-risk" in rule_ids(evaluation)
        assert evaluation.summary()["inputs"]["antithrombotic_at_scan"] is True
        assert evaluation.read.record is not None and evaluation.read.record.high_bleeding_risk is True


# -- F4 prior stroke / PAD read as primary prevention -----------------------------------------------------
def test_f4_stroke_and_pad_are_clinical_ascvd_haemorrhagic_stroke_is_not() -> None:
    stroke = condition("230690007")
    evaluation = evaluated(patient(), cac(150), stroke, *risk_inputs())
    assert "secondary-prevention" in rule_ids(evaluation) and "statin-cac-100" not in rule_ids(evaluation)
    assert evaluation.summary()["inputs"]["known_ascvd"] is True
    assert evaluation.summary()["risk"]["pce_ascvd_10y"] is None
    pad = record_of(patient(), cac(), condition("I70.213", codes.ICD10_CM))
    assert pad.coronary_history == (CoronaryHistory.PERIPHERAL_ARTERY_DISEASE,)
    ischaemic = record_of(patient(), cac(), condition("I63.9", codes.ICD10_CM))
    assert ischaemic.coronary_history == (CoronaryHistory.STROKE_OR_TIA,)
    bleed = read(patient(), cac(), condition("I69.00", codes.ICD10_CM))  # after subarachnoid haemorrhage
    assert bleed.record is not None and bleed.record.coronary_history == ()
    assert bleed.record.high_bleeding_risk is True and "not atherosclerotic" in notes(bleed)


# -- F5 neighbouring codes; subclinical atherosclerosis ------------------------------------------------------
def test_f5_snomed_subtypes_and_procedure_codes() -> None:
    assert record_of(patient(), cac(0), condition("313436004")).diabetes is True
    for code, history in (
        ("401314000", CoronaryHistory.MYOCARDIAL_INFARCTION),  # NSTEMI (Synthea 3.3)
        ("401303003", CoronaryHistory.MYOCARDIAL_INFARCTION),  # STEMI
        ("399261000", CoronaryHistory.BYPASS),  # history of CABG
        ("194828000", CoronaryHistory.CORONARY_DISEASE),  # angina
        ("399211009", CoronaryHistory.MYOCARDIAL_INFARCTION),  # history of MI
    ):
        assert record_of(patient(), cac(0), condition(code)).coronary_history == (history,), code
    for code, system, history in (
        ("92928", codes.CPT, CoronaryHistory.STENT),
        ("33533", codes.CPT, CoronaryHistory.BYPASS),
        ("736169009", codes.SNOMED, CoronaryHistory.STENT),
    ):
        assert record_of(
            patient(), cac(0), condition("59621000"), procedure(code, system)
        ).coronary_history == (history,)


def test_f5_coronary_atherosclerosis_alone_is_subclinical_and_the_cac_pathway_goes_on() -> None:
    for code, system in (("I25.10", codes.ICD10_CM), ("I25.84", codes.ICD10_CM), ("53741008", codes.SNOMED)):
        result = read(patient(), cac(40), condition(code, system))
        assert result.record is not None and result.record.coronary_history == (), code
        assert "subclinical atherosclerosis" in notes(result)
    with_angina = record_of(patient(), cac(40), condition("53741008"), condition("194828000"))
    assert with_angina.coronary_history == (CoronaryHistory.CORONARY_DISEASE,)


# -- F6 valid data refused wholesale -------------------------------------------------------------------------
def test_f6_defects_in_resources_fhircac_never_reads_do_not_block() -> None:
    encounter = {
        "resourceType": "Encounter",
        "id": "e1",
        "status": "finished",
        "subject": SUBJECT,
    }  # no class
    height = fb.lab("8302-2", 170, "cm", id="height")
    height["issued"] = "2026-09-01T10:00:00"  # no timezone: not an instant
    claim = {
        "resourceType": "Claim",
        "id": "c1",
        "status": "active",
        "patient": SUBJECT,
    }  # no insurance, provider
    document = {"resourceType": "DocumentReference", "id": "d1", "status": "current", "date": "2026-09-01"}
    result = read(patient(), cac(), encounter, height, claim, document)
    assert result.record is not None and [i for i in result.issues if i.is_error] == []


def test_f6_a_defect_in_a_read_resource_drops_it_with_a_note_unless_it_is_the_current_scan() -> None:
    bad_lab = fb.lab("2093-3", 200, "mg/dL", id="tc")
    bad_lab["issued"] = "2026-09-01T10:00:00"
    groups, issues = group_by_patient([("in.json", fb.collection(patient(), cac(), bad_lab))])
    assert [i for i in issues if i.is_error] == []
    assert any("not valid FHIR: not read" in i.message for i in issues)
    bad_scan = cac()
    bad_scan["issued"] = "2026-10-20T14:05:12"
    groups, _ = group_by_patient([("in.json", fb.collection(patient(), bad_scan))])
    assert any(i.is_error for i in read_patient(groups[0], AS_OF).issues)
    bad_prior = cac(20, "2022-10-18", id="prior")
    bad_prior["issued"] = "2022-10-18T14:05:12"
    groups, _ = group_by_patient([("in.json", fb.collection(patient(), cac(), bad_prior))])
    prior_read = read_patient(groups[0], AS_OF)
    assert not any(i.is_error for i in prior_read.issues) and prior_read.record is not None
    assert len(prior_read.record.scans) == 1


def test_f6_lab_value_strings_with_a_comparator_are_never_used_as_numbers() -> None:
    crp = {**fb.lab("30522-7", 0.3, "mg/L", id="crp"), "valueString": "<0.3 mg/L"}
    del crp["valueQuantity"]
    lpa = fb.lab("10835-7", 10, "mg/dL", id="lpa")
    lpa["valueQuantity"]["comparator"] = "<"
    result = read(patient(), cac(), crp, lpa)
    assert result.record is not None and result.record.labs.hs_crp is None and result.record.labs.lpa is None
    assert "'<0.3 mg/L': a bound, not an exact value" in notes(result)
    assert "<10 mg/dL: a bound, not an exact value" in notes(result)


def test_f6_per_vessel_cac_observations_by_body_site_and_a_corrected_score() -> None:
    sites = {
        "RCA": ("13647002", "Right coronary artery", 12),
        "LAD": (None, "Left anterior descending artery", 20),
        "LCX": (None, "Left circumflex artery", 8),
        "LM": ("3227004", "Left main coronary artery", 0),
    }
    vessels = []
    for name, (code, display, value) in sites.items():
        coding = {"system": codes.SNOMED, "display": display, **({"code": code} if code else {})}
        vessels.append(cac(value, id=f"v-{name}", bodySite={"coding": [coding], "text": display}))
    record = record_of(patient(), cac(40), *vessels)
    (scan,) = record.scans
    assert scan.agatston == 40 and scan.vessel_count == 3
    corrected = cac(48, id="corrected", status="corrected", issued="2026-10-21T08:00:00.000-05:00")
    result = read(patient(), cac(40), corrected)
    assert result.record is not None and result.record.scans[0].agatston == 48
    assert "replaces Observation/scan because its status is corrected" in notes(result)


def test_f6_ips_document_bundles_are_read() -> None:
    composition = {
        "resourceType": "Composition",
        "id": "ips",
        "status": "final",
        "type": {"text": "IPS"},
        "subject": SUBJECT,
        "date": "2026-10-21",
        "author": [{"display": "x"}],
        "title": "IPS",
    }
    bundle = fb.collection(composition, patient(), cac())
    bundle["type"] = "document"
    groups, issues = group_by_patient([("ips.json", bundle)])
    assert [i for i in issues if i.is_error] == [] and len(groups) == 1


def test_f6_one_bad_patient_never_stops_the_others() -> None:
    good = [("good.json", fb.collection(patient(), cac()))]
    bad_scan = cac()
    bad_scan["valueQuantity"]["code"] = "mg"
    bad = [
        ("bad.json", fb.collection(fb.patient(id="p2"), {**bad_scan, "subject": {"reference": "Patient/p2"}}))
    ]
    evaluations, issues = evaluate(
        good + bad, POLICIES["acc-aha-2018"], AS_OF, datetime(2026, 11, 15, tzinfo=UTC)
    )
    assert [e.summary()["patient"] for e in evaluations] == ["Patient/p1"]
    assert any(i.is_error and i.location.startswith("bad.json") for i in issues)


# -- F7 US Core 8/9 sex ---
def test_f7_us_core_individual_sex_and_birth_sex_when_gender_is_absent() -> None:
    individual = {
        "url": codes.US_CORE_INDIVIDUAL_SEX,
        "valueCoding": {"system": codes.SNOMED, "code": "248152002", "display": "Female (finding)"},
    }
    us_core = patient()
    del us_core["gender"]
    us_core["extension"] = [*us_core["extension"], individual]
    result = read(us_core, cac())
    assert result.record is not None and result.record.sex is Sex.FEMALE
    assert "sex read as female from the us-core-individual-sex extension" in notes(result)
    birth = patient()
    del birth["gender"]
    birth["extension"] = [*birth["extension"], {"url": codes.US_CORE_BIRTH_SEX, "valueCode": "M"}]
    assert record_of(birth, cac()).sex is Sex.MALE


# -- F8 antihypertensives outside a 15-name list ------------------------------------------------------------
def test_f8_verapamil_captopril_furosemide_are_antihypertensives() -> None:
    for text in (
        "Verapamil Hydrochloride 40 MG",
        "Captopril 25 MG Oral Tablet",
        "Lasix 40 MG",
        "furosemide 20 MG",
    ):
        statement = fb.medication_statement({"text": text}, start="2010-01-01")
        assert record_of(patient(), cac(), statement).taking(
            DrugClass.ANTIHYPERTENSIVE, date(2026, 10, 20)
        ), text


# -- F9 one unrelated FamilyMemberHistory read as 'no' ---
def test_f9_a_fathers_kidney_disease_says_nothing_about_premature_chd() -> None:
    ckd = fb.family_history("FTH", 60, code="709044004")  # chronic kidney disease
    result = read(patient(), cac(), ckd)
    assert result.record is not None and result.record.family_history_premature_chd is None
    assert "unknown, not ruled out" in notes(result)


# -- F10 smoking ---
def test_f10_smoking_answers_and_codes() -> None:
    la_answer = fb.smoking("x", id="s2", date="2026-09-02")
    la_answer["valueCodeableConcept"] = {
        "coding": [{"system": codes.LOINC, "code": "LA18976-3", "display": "Current every day smoker"}]
    }
    assert record_of(patient(), cac(), fb.smoking("266919005"), la_answer).current_smoker is True
    light = fb.smoking("160603005", id="s3", date="2026-09-02")
    assert record_of(patient(), cac(), fb.smoking("266919005"), light).current_smoker is True
    history = fb.smoking("77176002", id="s4", date="2026-09-02")
    history["code"] = {
        "coding": [{"system": codes.LOINC, "code": "11367-0", "display": "History of Tobacco use"}]
    }
    assert (
        record_of(patient(), cac(), fb.smoking("266919005", date="2020-01-01"), history).current_smoker
        is True
    )
    daily = condition("449868002", onset="1991-05-01")  # Synthea 3.3 s33-08, problem list only
    assert record_of(patient(), cac(), daily).current_smoker is True


# -- F11 deceased patients ---
def test_f11_deceased_patient_is_assessed_without_an_active_plan_or_rescan() -> None:
    dead = patient(deceasedDateTime="2024-03-01T03:00:46+00:00")
    evaluation = evaluated(dead, cac(150, "2023-09-01"), *risk_inputs())
    summary = evaluation.summary()
    assert summary["inputs"]["deceased"] is True
    assert summary["next_scan"]["suggested"] is None and summary["next_scan"]["earliest"] is None
    assert evaluation.produced.care_plan is None
    assert any("recorded as deceased" in n for n in summary["input_notes"])


# -- F12 CAC code and unit robustness ---
def test_f12_units_systems_and_an_uncoded_calcium_score() -> None:
    au = cac()
    au["valueQuantity"] = {"value": 40, "unit": "AU", "system": codes.UCUM, "code": "{AU}"}
    assert record_of(patient(), au).scans[0].agatston == 40
    edition = cac()
    edition["code"]["coding"][0]["system"] = "http://snomed.info/sct/731000124108"
    assert record_of(patient(), edition).scans[0].agatston == 150
    local = cac()
    local["code"] = {
        "coding": [{"system": "urn:oid:1.2.840.114350", "code": "CALC1", "display": "CALCIUM SCORE TOTAL"}]
    }
    result = read(patient(), local)
    assert "worded like a CAC score but not coded as one" in notes(result)


# -- F13 lab and vital codes ---
def test_f13_hba1c_hplc_fasting_triglycerides_and_sitting_systolic() -> None:
    record = record_of(
        patient(),
        cac(),
        fb.lab("17856-6", 7.1, "%", id="a1c", date="2026-09-01"),
        fb.lab("3043-7", 410, "mg/dL", id="tg", date="2026-09-01"),
        fb.lab("8459-0", 150, "mm[Hg]", id="sbp", date="2026-09-01"),
    )
    assert record.labs.hba1c is not None and record.labs.hba1c.value == 7.1
    assert record.labs.triglycerides is not None and record.labs.triglycerides.value == 410
    assert record.systolic_bp is not None and record.systolic_bp.value == 150


# -- F14 same-timestamp duplicates ---
def test_f14_same_time_duplicates_say_the_first_given_is_used() -> None:
    first = fb.lab("2093-3", 197.2, "mg/dL", id="tc1", date="2021-03-13T21:37:43+00:00")
    second = fb.lab("2093-3", 229.7, "mg/dL", id="tc2", date="2021-03-13T21:37:43+00:00")
    result = read(patient(), cac(day="2021-04-01"), first, second, as_of=date(2021, 5, 1))
    assert result.record is not None and result.record.labs.total_cholesterol is not None
    assert result.record.labs.total_cholesterol.value == 197.2
    assert "given first in the input (same time" in notes(result)


# -- F15 no age limit on risk-equation inputs ---
def test_f15_values_older_than_three_years_before_the_scan_are_not_current() -> None:
    result = read(
        patient(),
        cac(),
        fb.blood_pressure(150, date="1999-06-01"),
        fb.lab("4548-4", 6.1, "%", id="a1c", date="2001-01-01"),
    )
    assert (
        result.record is not None and result.record.systolic_bp is None and result.record.labs.hba1c is None
    )
    assert "more than 3 years before the scan" in notes(result)


# -- F16 notes flood ---
def test_f16_forty_renewals_give_one_note() -> None:
    unknown = [request("99999", "mystatin 5 MG", f"{1985 + year}-01-01", id=f"m{year}") for year in range(40)]
    result = read(patient(), cac(), *copy.deepcopy(unknown))
    matching = [i for i in result.issues if "mystatin" in i.message]
    assert len(matching) == 1 and "(and 39 more like it)" in matching[0].message


def test_f2_only_the_same_medication_renews_and_hospital_heparin_never_does() -> None:
    heparin = [
        request("1361615", "heparin sodium 5000 UNT/ML Injectable Solution", day, id=f"hep-{day}")
        for day in ("2026-03-01", "2026-09-01")
    ]
    record = record_of(patient(), cac(), *heparin)
    assert not record.taking(DrugClass.ANTICOAGULANT, date(2026, 6, 1))
    switch = [
        request("314231", "simvastatin 10 MG Oral Tablet", "2025-01-01"),
        request("617312", "atorvastatin 10 MG Oral Tablet", "2025-06-01", "active"),
    ]
    switched = record_of(patient(), cac(), *switch)
    assert not switched.taking(DrugClass.STATIN, date(2025, 3, 1))  # no end recorded, no renewal
    assert switched.taking(DrugClass.STATIN, date(2026, 10, 20))


def test_f6_a_defect_in_an_element_fhircac_does_not_read_keeps_the_resource() -> None:
    statin = request("314231", "simvastatin 10 MG Oral Tablet", "2024-01-01", "active")
    statin["dosageInstruction"] = [{"timing": {"repeat": {"frequency": "daily"}}}]  # not an integer
    statin["requester"] = {"reference": 42}
    assert record_of(patient(), cac(), statin).taking(DrugClass.STATIN, date(2026, 10, 20))
    unknown = cac()
    unknown["colour"] = "blue"  # not a FHIR element at all: still reported, the scan is refused
    groups, _ = group_by_patient([("in.json", fb.collection(patient(), unknown))])
    assert any("unknown element" in i.message for i in read_patient(groups[0], AS_OF).issues)


# -- second review: neighbouring shapes -----------------------------------------------------------------
def test_f3_snomed_coded_haemorrhage_and_bleeding_disorders_are_raised_bleeding_risk() -> None:
    """Synthea and Epic/Cerner problem lists carry SNOMED, not ICD-10: a cerebral haemorrhage coded
    274100004 must stop "aspirin may be considered" exactly as ICD-10 I61 does."""
    resolved = {
        "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "resolved"}]
    }
    for code in ("274100004", "1386000", "21454007"):  # cerebral, intracranial, subarachnoid
        evaluation = evaluated(patient(), cac(150), condition(code, clinicalStatus=resolved), *risk_inputs())
        assert "aspirin-may-be-considered" not in rule_ids(evaluation), code
        assert "aspirin-bleeding-risk" in rule_ids(evaluation), code
        assert evaluation.summary()["inputs"]["known_ascvd"] is False, code
        assert "not atherosclerotic" in notes(evaluation.read), code
    for code in ("74474003", "64779008", "90935002"):  # GI haemorrhage, coagulation disorder, haemophilia
        record = record_of(patient(), cac(), condition(code))
        assert record.high_bleeding_risk is True, code


def test_f5_synthea_off_pump_cabg_procedure_alone_is_known_coronary_disease() -> None:
    """Synthea 3.3 records CABG as SNOMED 418824004 "Off-pump coronary artery bypass", which no CABG
    value set of the pack holds; with only the procedure on the chart it must still be a bypass."""
    evaluation = evaluated(patient(), cac(0), procedure("418824004", codes.SNOMED), *risk_inputs())
    assert evaluation.read.record is not None
    assert evaluation.read.record.coronary_history == (CoronaryHistory.BYPASS,)
    assert "secondary-prevention" in rule_ids(evaluation) and "statin-cac-0-withhold" not in rule_ids(
        evaluation
    )
    assert "not recognised" not in notes(evaluation.read)


def test_f11_a_scan_dated_after_the_recorded_death_is_warned_about() -> None:
    """A CAC scan after the recorded death is impossible: a wrong patient link or a wrong date."""
    dead = patient(deceasedDateTime="2026-01-01T00:00:00Z")
    result = read(dead, cac(150))
    assert result.record is not None and result.record.deceased is True
    after = [i for i in result.issues if "after the recorded death" in i.message]
    assert len(after) == 1 and not after[0].is_error
    assert "2026-10-20" in after[0].message and "2026-01-01" in after[0].message
    before = read(patient(deceasedDateTime="2026-11-01T00:00:00Z"), cac(150))
    assert "after the recorded death" not in notes(before)


def test_f10_an_active_smoking_problem_overruled_by_a_later_status_says_so() -> None:
    """Synthea 3.3 (Germán350, Zackary401) keeps an active "Smokes tobacco daily" Condition next to
    later "Never smoked" statuses: the later status is used, and the conflict is not silent."""
    daily = condition("449868002", onset="2001-10-12")
    result = read(patient(), cac(), daily, fb.smoking("266919005", date="2026-06-12"))
    assert result.record is not None and result.record.current_smoker is False
    assert "contradicted by a later smoking status" in notes(result)
    agrees = read(patient(), cac(), daily, fb.smoking("77176002", date="2026-06-12"))
    assert agrees.record is not None and agrees.record.current_smoker is True
    assert "contradicted" not in notes(agrees)


def test_f6_a_medication_reference_outside_the_input_drops_only_that_order() -> None:
    """Epic/Cerner searches return MedicationRequest without the Medication it references unless
    _include is asked for: the patient is still assessed, the reference's display is read by name."""
    named = request("617312", "atorvastatin", "2026-01-01", "active", id="named")
    del named["medicationCodeableConcept"]
    named["medicationReference"] = {
        "reference": "Medication/eAbc",
        "display": "atorvastatin 40 MG Oral Tablet",
    }
    bare = request("617312", "atorvastatin", "2026-01-01", "active", id="bare")
    del bare["medicationCodeableConcept"]
    bare["medicationReference"] = {"reference": "Medication/eXyz"}
    groups, issues = group_by_patient([("in.json", fb.collection(patient(), cac(), named, bare))])
    unresolved = [i for i in issues if "does not resolve" in i.message]
    assert len(unresolved) == 2 and not any(i.is_error for i in issues)
    record = read_patient(groups[0], AS_OF).record
    assert record is not None and record.taking(DrugClass.STATIN, date(2026, 10, 20))
    evaluation = evaluated(patient(), cac(), bare, *risk_inputs())  # an active order for an unnamed drug
    assert "statin-cac-100" in rule_ids(evaluation)
    assert evaluation.summary()["inputs"]["statin"]["at_scan"] is None  # unknown, not "not taking"
    assert evaluation.summary()["inputs"]["antithrombotic_at_scan"] is None


def test_f12_a_cac_score_given_as_a_bound_is_not_read_as_that_number() -> None:
    """valueQuantity.comparator "<" 1 is not a score of 1 (band 1-99): it is refused, saying why,
    like any CAC value that is not a number, never silently used as exact."""
    for comparator in ("<", "<=", ">", ">="):
        bound = cac(
            1, valueQuantity={"value": 1, "comparator": comparator, "system": codes.UCUM, "code": "1"}
        )
        result = read(patient(), bound)
        errors = [i for i in result.issues if i.is_error]
        assert result.record is None or result.record.scans == (), comparator
        assert any(f"'{comparator}1'" in i.message and "bound" in i.message for i in errors), comparator
