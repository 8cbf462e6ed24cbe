"""FHIR resources → PatientRecord: every mapping rule of fhircac/fhir/read.py, and what it reports."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from fhircac.clinical.record import CoronaryHistory, DrugClass, Race, Sex, Vessel
from fhircac.fhir import codes
from fhircac.fhir.inputs import group_by_patient
from fhircac.fhir.issues import Issue
from fhircac.fhir.read import ReadResult, classify_medication, read_patient
from tests import fhir_builders as fb

AS_OF = date(2026, 3, 1)


def read(*resources: dict[str, Any], as_of: date = AS_OF) -> ReadResult:
    groups, issues = group_by_patient([("in.json", fb.collection(*resources))])
    assert [i for i in issues if i.is_error] == []
    assert len(groups) == 1
    return read_patient(groups[0], as_of)


def errors(result: ReadResult) -> list[Issue]:
    return [i for i in result.issues if i.is_error]


def messages(result: ReadResult) -> str:
    return "\n".join(str(i) for i in result.issues)


# -- patient ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("race", "ethnicity", "detailed", "expected"),
    [
        ([codes.WHITE], [codes.NOT_HISPANIC], None, Race.WHITE),
        ([codes.BLACK], [codes.NOT_HISPANIC], None, Race.BLACK),
        ([codes.WHITE], [codes.HISPANIC], None, Race.HISPANIC),  # Hispanic ethnicity wins
        (None, [codes.HISPANIC], None, Race.HISPANIC),
        ([codes.ASIAN], [codes.NOT_HISPANIC], [codes.CHINESE], Race.CHINESE),
        ([codes.ASIAN], [codes.NOT_HISPANIC], None, Race.OTHER),  # Asian is not MESA's Chinese group
        ([codes.WHITE, codes.BLACK], [codes.NOT_HISPANIC], None, Race.OTHER),
        (["1002-5"], [codes.NOT_HISPANIC], None, Race.OTHER),
        (None, None, None, None),
        (["UNK"], None, None, None),
    ],
)
def test_us_core_race_and_ethnicity_map_to_mesa_groups(
    race: list[str] | None, ethnicity: list[str] | None, detailed: list[str] | None, expected: Race | None
) -> None:
    result = read(fb.patient(race=race, ethnicity=ethnicity, detailed=detailed), fb.cac())
    assert result.record is not None and result.record.race is expected


def test_race_without_ethnicity_is_read_with_a_note() -> None:
    result = read(fb.patient(race=[codes.WHITE]), fb.cac())
    assert result.record is not None and result.record.race is Race.WHITE
    assert "ethnicity not recorded" in messages(result)


def test_other_race_makes_percentile_and_mesa_not_computable_and_says_so() -> None:
    from fhircac.clinical.assess import assess

    result = read(fb.patient(race=[codes.ASIAN], ethnicity=[codes.NOT_HISPANIC]), fb.cac())
    assert result.record is not None
    assessment = assess(result.record, as_of=AS_OF)
    assert assessment.percentile is None
    assert "percentile-not-computed" in [w.id for w in assessment.warnings]


def test_age_is_completed_years_at_the_current_scan() -> None:
    result = read(fb.patient(birth_date="1966-01-16"), fb.cac(date="2026-01-15"))
    assert result.record is not None and result.record.age is not None
    assert result.record.age.at(date(2026, 1, 15)) == 59
    assert result.record.age.at(date(2026, 1, 16)) == 60


def test_partial_birth_date_is_used_with_a_warning() -> None:
    result = read(fb.patient(birth_date="1960"), fb.cac())
    assert result.record is not None and result.record.age is not None
    assert result.record.age.at(date(2026, 1, 15)) == 65
    assert any(i.severity == "warning" and "partial" in i.message for i in result.issues)


def test_gender_other_leaves_sex_unknown_with_a_warning() -> None:
    result = read(fb.patient(gender="other"), fb.cac())
    assert result.record is not None and result.record.sex is None
    assert "sex-specific" in messages(result)
    assert read(fb.patient(gender="female"), fb.cac()).record.sex is Sex.FEMALE  # type: ignore[union-attr]


# -- CAC Observations ---------------------------------------------------------------------------------
def test_latest_scan_is_current_and_earlier_ones_feed_progression() -> None:
    result = read(fb.patient(), fb.cac("old", 80, "2022-01-10"), fb.cac("new", 120, "2026-01-15"))
    assert result.record is not None
    assert [s.agatston for s in result.record.scans_by_date()] == [80, 120]
    assert result.current_scan is not None and result.current_scan.id == "new"


@pytest.mark.parametrize("status", ["preliminary", "entered-in-error", "cancelled", "registered"])
def test_cac_with_unusable_status_is_ignored_and_reported(status: str) -> None:
    result = read(
        fb.patient(), fb.cac("good", 120, "2026-01-15"), fb.cac("bad", 999, "2026-02-01", status=status)
    )
    assert result.record is not None and [s.agatston for s in result.record.scans] == [120]
    assert f"status {status}" in messages(result)


@pytest.mark.parametrize("status", ["amended", "corrected"])
def test_amended_and_corrected_cac_is_used(status: str) -> None:
    result = read(fb.patient(), fb.cac(status=status))
    assert result.record is not None and result.record.scans[0].agatston == 120


@pytest.mark.parametrize("code", ["1", "{Agatston}", "{score}"])
def test_accepted_agatston_units(code: str) -> None:
    assert not errors(read(fb.patient(), fb.cac(unit_code=code)))


def test_cac_with_another_unit_is_an_error_naming_it() -> None:
    result = read(fb.patient(), fb.cac(unit_code="mg"))
    problem, no_scan = errors(result)
    assert "no usable CAC score" in no_scan.message
    assert problem.location.endswith("valueQuantity.code") and "'mg'" in problem.message


def test_cac_value_that_is_not_a_number_is_an_error() -> None:
    result = read(fb.patient(), fb.cac(valueString="moderate"))
    problem = errors(result)[0]
    assert problem.location.endswith("valueString") and "must be a number" in problem.message


def test_cac_accepts_alternative_snomed_and_fhircac_codes() -> None:
    alternative = fb.cac("a", 50, "2024-01-01")
    alternative["code"] = {"coding": [{"system": codes.SNOMED, "code": "450734004"}]}
    own = fb.cac("b", 70, "2026-01-01")
    own["code"] = {"coding": [{"system": codes.FHIRCAC, "code": "cac-total"}]}
    result = read(fb.patient(), alternative, own)
    assert result.record is not None and len(result.record.scans) == 2


def test_scan_after_the_assessment_date_is_ignored_so_the_past_can_be_replayed() -> None:
    result = read(fb.patient(), fb.cac("a", 50, "2025-01-01"), fb.cac("b", 90, "2026-06-01"))
    assert result.record is not None and [s.agatston for s in result.record.scans] == [50]
    assert "after the assessment date" in messages(result)


def test_same_scan_twice_is_read_once_but_two_different_scores_on_one_day_is_an_error() -> None:
    same = read(fb.patient(), fb.cac("a", 120), fb.cac("b", 120))
    assert same.record is not None and len(same.record.scans) == 1 and not errors(same)
    different = read(fb.patient(), fb.cac("a", 120), fb.cac("b", 140))
    assert "two different CAC scores" in errors(different)[0].message


def test_no_cac_observation_is_an_error() -> None:
    result = read(fb.patient(), fb.lab("2093-3", 200, "mg/dL"))
    assert "no usable CAC score" in errors(result)[0].message


def test_per_vessel_components_and_reported_percentile() -> None:
    vessels = {"cac-left-main": 0, "cac-lad": 90, "cac-lcx": 0, "cac-rca": 30}
    result = read(fb.patient(), fb.cac(value=120, vessels=vessels, percentile=82))
    scan = result.record.scans[0]  # type: ignore[union-attr]
    assert scan.vessel_scores == {Vessel.LEFT_MAIN: 0, Vessel.LAD: 90, Vessel.LCX: 0, Vessel.RCA: 30}
    assert scan.vessel_count == 2 and scan.reported_percentile == 82


def test_vessels_missing_from_the_report_are_zero_only_when_the_rest_add_up() -> None:
    adds_up = read(fb.patient(), fb.cac(value=120, vessels={"cac-lad": 90, "cac-rca": 30}))
    assert adds_up.record.scans[0].vessel_count == 2  # type: ignore[union-attr]
    short = read(fb.patient(), fb.cac(value=120, vessels={"cac-lad": 90}))
    assert short.record.scans[0].vessel_scores is None  # type: ignore[union-attr]
    assert "do not add up" in messages(short)


# -- labs and vitals ----------------------------------------------------------------------------------------
def test_si_units_are_converted_to_the_canonical_units() -> None:
    result = read(
        fb.patient(),
        fb.cac(),
        fb.lab("2093-3", 5.2, "mmol/L", id="tc"),
        fb.lab("2571-8", 1.7, "mmol/L", id="tg"),
        fb.lab("1884-6", 0.9, "g/L", id="apob"),
        fb.lab("30522-7", 0.15, "mg/dL", id="crp"),
        fb.lab("4548-4", 48, "mmol/mol", id="a1c"),
        fb.lab("43583-4", 120, "nmol/L", id="lpa"),
    )
    labs = result.record.labs  # type: ignore[union-attr]
    assert labs.total_cholesterol.value == pytest.approx(201.1, abs=0.1)  # type: ignore[union-attr]
    assert labs.triglycerides.value == pytest.approx(150.6, abs=0.1)  # type: ignore[union-attr]
    assert labs.apob.value == pytest.approx(90)  # type: ignore[union-attr]
    assert labs.hs_crp.value == pytest.approx(1.5)  # type: ignore[union-attr]
    assert labs.hba1c.value == pytest.approx(6.54, abs=0.01)  # type: ignore[union-attr]
    assert (labs.lpa.value, labs.lpa.unit) == (120, "nmol/L")  # type: ignore[union-attr]


def test_lpa_mass_code_with_a_molar_unit_is_refused() -> None:
    result = read(fb.patient(), fb.cac(), fb.lab("10835-7", 120, "nmol/L"))
    assert "Lp(a) mass" in errors(result)[0].message


@pytest.mark.parametrize(
    ("loinc", "unit"), [("2093-3", "g/dL"), ("2085-9", "furlongs"), ("27873-9", "pmol/L")]
)
def test_unknown_or_unconvertible_units_are_errors_never_guesses(loinc: str, unit: str) -> None:
    result = read(fb.patient(), fb.cac(), fb.lab(loinc, 5, unit))
    (problem,) = errors(result)
    assert problem.location.endswith("valueQuantity")


def test_lab_without_unit_is_an_error() -> None:
    result = read(fb.patient(), fb.cac(), fb.lab("2093-3", 200, None))
    assert "no unit" in errors(result)[0].message


def test_latest_lab_on_or_before_the_assessment_date_is_used() -> None:
    result = read(
        fb.patient(),
        fb.cac(),
        fb.lab("2085-9", 40, "mg/dL", date="2025-01-01"),
        fb.lab("2085-9", 55, "mg/dL", date="2026-02-01"),
        fb.lab("2085-9", 70, "mg/dL", date="2026-06-01"),
    )
    assert result.record.labs.hdl.value == 55  # type: ignore[union-attr]


def test_standard_crp_is_read_as_hs_crp_with_a_note() -> None:
    result = read(fb.patient(), fb.cac(), fb.lab("1988-5", 1.2, "mg/L"))
    assert result.record.labs.hs_crp.value == 1.2  # type: ignore[union-attr]
    assert "standard CRP" in messages(result)


def test_systolic_from_the_blood_pressure_panel() -> None:
    result = read(fb.patient(), fb.cac(), fb.blood_pressure(142))
    assert result.record.systolic_bp.value == 142  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("snomed", "expected"), [("449868002", True), ("8517006", False), ("266919005", False)]
)
def test_smoking_status(snomed: str, expected: bool) -> None:
    assert read(fb.patient(), fb.cac(), fb.smoking(snomed)).record.current_smoker is expected  # type: ignore[union-attr]


def test_unrecognised_smoking_answer_is_unknown_with_a_warning() -> None:
    result = read(fb.patient(), fb.cac(), fb.smoking("266927001"))
    assert result.record.current_smoker is None  # type: ignore[union-attr]
    assert "not recognised" in messages(result)


# -- medications --------------------------------------------------------------------------------------------
def test_no_medication_list_means_use_unknown() -> None:
    result = read(fb.patient(), fb.cac())
    assert result.record.unknown_medications == frozenset(DrugClass)  # type: ignore[union-attr]
    assert "no medication list" in messages(result)


def test_a_medication_list_without_a_statin_means_not_taking_one() -> None:
    result = read(fb.patient(), fb.cac(), fb.medication_statement(fb.rxnorm("29046", "lisinopril")))
    record = result.record
    assert record is not None and record.unknown_medications == frozenset()
    assert record.taking(DrugClass.ANTIHYPERTENSIVE, date(2026, 1, 15))
    assert not record.taking(DrugClass.STATIN, date(2026, 1, 15))


@pytest.mark.parametrize(
    "concept",
    [
        fb.rxnorm("83367", "atorvastatin"),
        {"coding": [{"system": codes.ATC, "code": "C10AA07"}]},
        {"coding": [{"system": codes.RXNORM, "code": "617310", "display": "atorvastatin 20 MG Oral Tablet"}]},
        {"text": "Simvastatin 40mg tablets"},
        {"coding": [{"system": codes.ATC, "code": "C10BA02"}]},  # simvastatin + ezetimibe
    ],
)
def test_statins_are_recognised_by_ingredient_atc_class_or_name(concept: dict[str, Any]) -> None:
    classes, _name = classify_medication([concept])
    assert DrugClass.STATIN in classes


def test_atc_longest_prefix_wins() -> None:
    assert classify_medication([{"coding": [{"system": codes.ATC, "code": "C10AX09"}]}])[0] == {
        DrugClass.OTHER_LIPID_LOWERING
    }
    assert classify_medication([{"coding": [{"system": codes.ATC, "code": "B01AC06"}]}])[0] == {
        DrugClass.ASPIRIN
    }
    assert classify_medication([{"text": "metformin 500 mg"}])[0] == set()


def test_medication_reference_resolves_through_the_ingredient() -> None:
    medication = {
        "resourceType": "Medication",
        "id": "m1",
        "code": {"coding": [{"system": codes.RXNORM, "code": "259255"}]},
        "ingredient": [{"itemCodeableConcept": fb.rxnorm("301542", "rosuvastatin")}],
    }
    result = read(fb.patient(), fb.cac(), medication, fb.medication_statement(reference="Medication/m1"))
    assert result.record.taking(DrugClass.STATIN, date(2026, 1, 15))  # type: ignore[union-attr]


def test_statin_taken_between_two_scans_is_seen() -> None:
    result = read(
        fb.patient(),
        fb.cac("old", 80, "2022-01-10"),
        fb.cac("new", 120, "2026-01-15"),
        fb.medication_statement(status="completed", start="2022-06-01", end="2024-06-01"),
    )
    record = result.record
    assert record is not None
    assert record.took_during(DrugClass.STATIN, date(2022, 1, 10), date(2026, 1, 15))
    assert not record.taking(DrugClass.STATIN, date(2026, 1, 15))


@pytest.mark.parametrize("status", ["not-taken", "entered-in-error", "intended"])
def test_statements_that_do_not_mean_taking_are_not_counted(status: str) -> None:
    result = read(fb.patient(), fb.cac(), fb.medication_statement(status=status))
    record = result.record
    assert record is not None and not record.took_during(DrugClass.STATIN, date(2000, 1, 1), date(2026, 3, 1))
    assert not record.use_unknown(DrugClass.STATIN)


def test_status_unknown_makes_that_class_unknown() -> None:
    result = read(fb.patient(), fb.cac(), fb.medication_statement(status="unknown"))
    assert result.record.use_unknown(DrugClass.STATIN)  # type: ignore[union-attr]


def test_stopped_without_dates_is_ignored_with_a_warning() -> None:
    result = read(fb.patient(), fb.cac(), fb.medication_statement(status="stopped", start=None))
    assert "when it was taken is unknown" in messages(result)


# -- conditions, procedures, family history ----------------------------------------------------
@pytest.mark.parametrize(
    ("code", "system"),
    [("44054006", codes.SNOMED), ("E11.9", codes.ICD10_CM), ("E10", codes.ICD10)],
)
def test_diabetes_by_snomed_or_icd10(code: str, system: str) -> None:
    assert read(fb.patient(), fb.cac(), fb.condition(code, system)).record.diabetes is True  # type: ignore[union-attr]


def test_absence_is_no_only_with_a_problem_list() -> None:
    with_list = read(fb.patient(), fb.cac(), fb.condition("59621000")).record
    assert with_list is not None and with_list.diabetes is False and not with_list.coronary_history_unknown
    without = read(fb.patient(), fb.cac()).record
    assert without is not None and without.diabetes is None and without.coronary_history_unknown


def test_ips_no_known_problems_is_a_problem_list() -> None:
    none_known = fb.condition("no-known-problems", codes.IPS_ABSENT_UNKNOWN)
    record = read(fb.patient(), fb.cac(), none_known).record
    assert record is not None and record.diabetes is False


def test_resolved_diabetes_is_not_diabetes_but_a_past_mi_stays_history() -> None:
    record = read(
        fb.patient(),
        fb.cac(),
        fb.condition("44054006", clinical="resolved"),
        fb.condition("22298006", clinical="resolved", id="mi"),
    ).record
    assert record is not None and record.diabetes is False
    assert record.coronary_history == (CoronaryHistory.MYOCARDIAL_INFARCTION,)


def test_refuted_condition_is_ignored() -> None:
    record = read(fb.patient(), fb.cac(), fb.condition("22298006", verification="refuted")).record
    assert record is not None and record.coronary_history == ()


@pytest.mark.parametrize(
    ("code", "system", "expected"),
    [
        ("Z95.5", codes.ICD10_CM, CoronaryHistory.STENT),
        ("I25.2", codes.ICD10_CM, CoronaryHistory.MYOCARDIAL_INFARCTION),  # longest prefix beats I25
        ("I25.110", codes.ICD10_CM, CoronaryHistory.CORONARY_DISEASE),  # with unstable angina
        ("Z95.1", codes.ICD10, CoronaryHistory.BYPASS),
    ],
)
def test_coronary_history_by_icd10(code: str, system: str, expected: CoronaryHistory) -> None:
    record = read(fb.patient(), fb.cac(), fb.condition(code, system)).record
    assert record is not None and record.coronary_history == (expected,)


def test_stent_procedure_counts_as_coronary_history() -> None:
    procedure = {
        "resourceType": "Procedure",
        "id": "pci",
        "status": "completed",
        "code": {"coding": [{"system": codes.SNOMED, "code": "36969009"}]},
        "subject": fb.PATIENT_REF,
    }
    record = read(fb.patient(), fb.cac(), procedure).record
    assert record is not None and record.coronary_history == (CoronaryHistory.STENT,)


def test_bleeding_risk_from_the_problem_list() -> None:
    record = read(fb.patient(), fb.cac(), fb.condition("K92.2", codes.ICD10_CM)).record
    assert record is not None and record.high_bleeding_risk is True


@pytest.mark.parametrize(
    ("relationship", "onset", "expected"),
    [("FTH", 50, True), ("FTH", 58, False), ("MTH", 60, True), ("MTH", 66, False), ("FTH", None, None)],
)
def test_family_history_of_premature_chd(
    relationship: str, onset: float | None, expected: bool | None
) -> None:
    record = read(fb.patient(), fb.cac(), fb.family_history(relationship, onset)).record
    assert record is not None and record.family_history_premature_chd is expected


def test_second_degree_relatives_do_not_count() -> None:
    # A grandfather's early MI is not premature CHD in a first-degree relative, nor evidence of none.
    record = read(fb.patient(), fb.cac(), fb.family_history("GRFTH", 45)).record
    assert record is not None and record.family_history_premature_chd is None


def test_family_history_unknown_without_any_record() -> None:
    record = read(fb.patient(), fb.cac()).record
    assert record is not None and record.family_history_premature_chd is None


def test_sources_are_every_resource_used() -> None:
    result = read(
        fb.patient(),
        fb.cac(),
        fb.lab("2093-3", 200, "mg/dL", id="tc"),
        fb.lab("2093-3", 180, "mg/dL", id="tc-old", date="2024-01-01"),
        fb.medication_statement(),
    )
    assert set(result.sources) == {"Observation/scan1", "Observation/tc", "MedicationStatement/med1"}


def test_moles_per_volume_lipid_codes_are_read() -> None:
    result = read(
        fb.patient(), fb.cac(), fb.lab("14647-2", 5.0, "mmol/L", id="tc"), fb.lab("14646-4", 1.3, "mmol/L")
    )
    labs = result.record.labs  # type: ignore[union-attr]
    assert labs.total_cholesterol.value == pytest.approx(193.3, abs=0.1)  # type: ignore[union-attr]
    assert labs.hdl.value == pytest.approx(50.3, abs=0.1)  # type: ignore[union-attr]


# -- review findings (each once a crash or a silent wrong answer) ---------------------------------------
def test_value_integer_true_is_not_a_score() -> None:
    result = read(fb.patient(), fb.cac(valueInteger=True))
    assert any("must be a number" in i.message for i in errors(result))


def test_white_with_a_detailed_race_code_is_still_white() -> None:
    record = read(
        fb.patient(race=[codes.WHITE], detailed=["2108-9"], ethnicity=[codes.NOT_HISPANIC]), fb.cac()
    ).record
    assert record is not None and record.race is Race.WHITE


@pytest.mark.parametrize(
    ("code", "expected"), [("Z955", CoronaryHistory.STENT), ("I252", CoronaryHistory.MYOCARDIAL_INFARCTION)]
)
def test_icd10_codes_without_their_dot(code: str, expected: CoronaryHistory) -> None:
    record = read(fb.patient(), fb.cac(), fb.condition(code, codes.ICD10_CM)).record
    assert record is not None and record.coronary_history == (expected,)


def test_partial_medication_dates_are_bounded_not_open_ended() -> None:
    record = read(
        fb.patient(),
        fb.cac("old", 80, "2023-01-10"),
        fb.cac("new", 120, "2024-06-01"),
        fb.medication_statement(start="2025-06"),
        as_of=date(2026, 1, 1),
    ).record
    assert record is not None and not record.took_during(
        DrugClass.STATIN, date(2023, 1, 10), date(2024, 6, 1)
    )
    assert record.taking(DrugClass.STATIN, date(2025, 6, 1))


def test_family_history_onset_in_months() -> None:
    history = fb.family_history("FTH", None)
    history["condition"][0]["onsetAge"] = {"value": 600, "unit": "months", "system": codes.UCUM, "code": "mo"}
    record = read(fb.patient(), fb.cac(), history).record
    assert record is not None and record.family_history_premature_chd is True


def test_conditions_after_the_assessment_date_or_unconfirmed_are_ignored() -> None:
    later = fb.condition("22298006", id="mi")
    later["onsetDateTime"] = "2026-09-01"
    provisional = fb.condition("44054006", verification="provisional")
    result = read(fb.patient(), fb.cac(), later, provisional)
    record = result.record
    assert record is not None and record.coronary_history == () and record.diabetes is False
    assert "after the assessment date" in messages(result) and "provisional" in messages(result)


def test_four_vessel_scores_must_add_up_to_the_total() -> None:
    vessels = {"cac-left-main": 0, "cac-lad": 400, "cac-lcx": 50, "cac-rca": 50}
    result = read(fb.patient(), fb.cac(value=120, vessels=vessels))
    assert result.record.scans[0].vessel_scores is None  # type: ignore[union-attr]
    assert "do not add up" in messages(result)


def test_medication_request_plans_are_not_taking() -> None:
    request = {
        "resourceType": "MedicationRequest",
        "id": "mr1",
        "status": "active",
        "intent": "plan",
        "medicationCodeableConcept": fb.rxnorm("83367", "atorvastatin"),
        "subject": fb.PATIENT_REF,
        "authoredOn": "2025-01-01",
    }
    record = read(fb.patient(), fb.cac(), request).record
    assert record is not None and not record.taking(DrugClass.STATIN, date(2026, 1, 15))
    ordered = read(fb.patient(), fb.cac(), {**request, "intent": "order"}).record
    assert ordered is not None and ordered.taking(DrugClass.STATIN, date(2026, 1, 15))


def test_partial_lab_date_ignores_that_lab_only() -> None:
    old = fb.lab("2085-9", 40, "mg/dL", date="2025-03")
    result = read(fb.patient(), fb.cac(), old)
    assert not errors(result) and result.record.labs.hdl is None  # type: ignore[union-attr]


def test_contained_medication_resolves() -> None:
    statement = fb.medication_statement(reference="#m1")
    statement["contained"] = [
        {"resourceType": "Medication", "id": "m1", "code": fb.rxnorm("301542", "rosuvastatin")}
    ]
    record = read(fb.patient(), fb.cac(), statement).record
    assert record is not None and record.taking(DrugClass.STATIN, date(2026, 1, 15))
