"""Impossible input is refused with every problem named; values merely outside a formula's range are not
errors (the formula then says it does not apply)."""

from __future__ import annotations

import math
from datetime import date

from fhircac.clinical.errors import InvalidInput, Problem
from fhircac.clinical.record import CacScan, Measurement, PatientRecord
from fhircac.clinical.units import Analyte, check_plausible

MAX_AGATSTON = 50_000.0
MAX_AGE = 120.0

_LAB_ANALYTES = {
    "total_cholesterol": Analyte.TOTAL_CHOLESTEROL,
    "hdl": Analyte.HDL,
    "ldl": Analyte.LDL,
    "triglycerides": Analyte.TRIGLYCERIDES,
    "apob": Analyte.APOB,
    "lpa": Analyte.LPA,
    "hs_crp": Analyte.HS_CRP,
    "fasting_insulin": Analyte.FASTING_INSULIN,
    "hba1c": Analyte.HBA1C,
}


def validate(record: PatientRecord, as_of: date) -> None:
    problems: list[Problem] = []
    if not record.scans:
        problems.append(Problem("cac", "no CAC score was given"))
    seen_dates: set[date] = set()
    for index, scan in enumerate(record.scans_by_date()):
        name = "cac" if index == len(record.scans) - 1 else f"scans[{index}]"
        problems += _scan_problems(scan, name, as_of)
        if scan.date in seen_dates:
            problems.append(Problem(f"{name}.date", f"two scans are dated {scan.date.isoformat()}"))
        seen_dates.add(scan.date)
    age = record.age
    if age is not None:
        if not (math.isfinite(age.years) and 0 <= age.years <= MAX_AGE and age.at(as_of) <= MAX_AGE):
            problems.append(Problem("age", f"{age.years:g} is not a possible age (0-120)"))
        elif record.scans and age.at(min(s.date for s in record.scans)) < 0:
            problems.append(Problem("age", "the patient would not have been born at the first scan"))
    for field_name, analyte in _LAB_ANALYTES.items():
        measurement: Measurement | None = getattr(record.labs, field_name)
        if measurement is not None:
            problems += _plausibility(analyte, measurement, field_name)
    if record.systolic_bp is not None:
        problems += _plausibility(Analyte.SYSTOLIC_BP, record.systolic_bp, "systolic_bp")
    for index, medication in enumerate(record.medications):
        if medication.start and medication.end and medication.start > medication.end:
            problems.append(Problem(f"medications[{index}]", "ends before it starts"))
    if problems:
        raise InvalidInput(problems)


def _scan_problems(scan: CacScan, name: str, as_of: date) -> list[Problem]:
    problems: list[Problem] = []
    if not _possible_score(scan.agatston):
        problems.append(
            Problem(name, f"{scan.agatston!r} is not a possible Agatston score (0-{MAX_AGATSTON:g})")
        )
    if scan.date > as_of:
        problems.append(
            Problem(
                f"{name}.date", f"{scan.date.isoformat()} is after the assessment date {as_of.isoformat()}"
            )
        )
    impossible_vessels = [
        Problem(f"{name}.{vessel.value}", f"{score!r} is not a possible Agatston score")
        for vessel, score in (scan.vessel_scores or {}).items()
        if not _possible_score(score)
    ]
    problems += impossible_vessels
    count = scan.vessel_count
    # Consistency is only judged on possible numbers, so one bad value is not reported twice.
    if count is not None and _possible_score(scan.agatston) and not impossible_vessels:
        if not 0 <= count <= 4:
            problems.append(
                Problem(f"{name}.vessels", f"{count} vessels: there are four coronary arteries scored")
            )
        elif scan.agatston > 0 and count == 0:
            problems.append(Problem(f"{name}.vessels", "the total is above 0 but no vessel has calcium"))
        elif scan.agatston == 0 and count > 0:
            problems.append(Problem(f"{name}.vessels", "the total is 0 but a vessel has calcium"))
    if scan.reported_percentile is not None and not 0 <= scan.reported_percentile <= 100:
        problems.append(
            Problem(f"{name}.percentile", f"{scan.reported_percentile:g} is not a percentile (0-100)")
        )
    return problems


def _possible_score(value: float) -> bool:
    return math.isfinite(value) and 0 <= value <= MAX_AGATSTON


def _plausibility(analyte: Analyte, measurement: Measurement, field_name: str) -> list[Problem]:
    if not math.isfinite(measurement.value):
        return [Problem(field_name, "is not a finite number")]
    try:
        check_plausible(analyte, measurement.value, measurement.unit, field_name)
    except KeyError:
        return [
            Problem(field_name, f"unit {measurement.unit!r} is not the canonical unit for {analyte.value}")
        ]
    except InvalidInput as error:
        return error.problems
    return []
