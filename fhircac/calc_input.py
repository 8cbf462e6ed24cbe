"""Calculator input (``fhircac calc`` flags, ``--batch`` lines, ``POST /calc``) → PatientRecord.

One schema and one converter serve all three, so the same input always means the same thing.
Boolean keys follow calculator convention: absent means *no*; ``"unknown"`` (or null) means
unknown and is reported in ``missing``.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import date
from functools import cache
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator

from fhircac.clinical.assess import assess
from fhircac.clinical.errors import InvalidInput, Problem
from fhircac.clinical.policies import Policy, get_policy
from fhircac.clinical.record import (
    CacScan,
    CoronaryHistory,
    DrugClass,
    Labs,
    Measurement,
    MedicationPeriod,
    PatientRecord,
    Race,
    Sex,
    StatedAge,
)
from fhircac.clinical.summary import to_summary
from fhircac.clinical.units import Analyte, normalise_unit, to_canonical

_QUANTITY = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(\S.*?)?\s*$")
_TRUE = {True, "yes", "true"}
_FALSE = {False, "no", "false"}

# calc key → (field of Labs or "systolic_bp", analyte)
LAB_KEYS: dict[str, tuple[str, Analyte]] = {
    "tc": ("total_cholesterol", Analyte.TOTAL_CHOLESTEROL),
    "hdl": ("hdl", Analyte.HDL),
    "ldl": ("ldl", Analyte.LDL),
    "tg": ("triglycerides", Analyte.TRIGLYCERIDES),
    "apob": ("apob", Analyte.APOB),
    "crp": ("hs_crp", Analyte.HS_CRP),
    "insulin": ("fasting_insulin", Analyte.FASTING_INSULIN),
    "hba1c": ("hba1c", Analyte.HBA1C),
    "lpa": ("lpa", Analyte.LPA),
    "sbp": ("systolic_bp", Analyte.SYSTOLIC_BP),
}
MEDICATION_KEYS = {
    "statin": DrugClass.STATIN,
    "lipid_lowering": DrugClass.OTHER_LIPID_LOWERING,
    "bp_treated": DrugClass.ANTIHYPERTENSIVE,
}


@dataclass(frozen=True)
class CalcRequest:
    record: PatientRecord
    policy: Policy
    as_of: date


@cache
def _validator() -> Draft202012Validator:
    schema = json.loads(resources.files("fhircac.schemas").joinpath("calc-input.json").read_text("utf-8"))
    return Draft202012Validator(schema)


def schema_problems(data: object) -> list[Problem]:
    problems = []
    for error in sorted(_validator().iter_errors(data), key=lambda e: list(e.path)):
        where = ".".join(str(p) for p in error.path) or "(input)"
        if error.validator == "additionalProperties" and isinstance(data, dict):
            known = _validator().schema["properties"]
            for key in sorted(set(data) - set(known)):
                problems.append(Problem(key, "is not a known input"))
            continue
        if error.validator == "required" and isinstance(error.instance, dict):
            for key in error.validator_value:
                if key not in error.instance:
                    problems.append(Problem(key, "is required"))
            continue
        if error.validator == "enum":  # JSON spelling (true, null), never Python's (True, None)
            choices = ", ".join(json.dumps(choice) for choice in error.validator_value)
            problems.append(Problem(where, f"{json.dumps(error.instance)} is not one of {choices}"))
            continue
        problems.append(Problem(where, error.message))
    return problems


class _Reader:
    """Reads typed values out of the input, collecting every problem instead of stopping at the first."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data
        self.problems: list[Problem] = []

    def number(self, key: str) -> float | None:
        raw = self.data.get(key)
        if raw is None:
            return None
        try:
            value = float(raw)
        except (TypeError, ValueError):
            self.problems.append(Problem(key, f"{raw!r} is not a number"))
            return None
        if isinstance(raw, bool) or not math.isfinite(value):
            self.problems.append(Problem(key, f"{raw!r} is not a number"))
            return None
        return value

    def integer(self, key: str) -> int | None:
        value = self.number(key)
        if value is not None and not value.is_integer():
            self.problems.append(Problem(key, f"{value:g} is not a whole number"))
            return None
        return None if value is None else int(value)

    def day(self, key: str) -> date | None:
        raw = self.data.get(key)
        if raw is None:
            return None
        try:
            return date.fromisoformat(str(raw))
        except ValueError:
            self.problems.append(Problem(key, f"{raw!r} is not a date (YYYY-MM-DD)"))
            return None

    def flag(self, key: str) -> bool | None:
        raw = self.data.get(key, False)
        if raw in _TRUE:
            return True
        if raw in _FALSE:
            return False
        if raw is None or raw == "unknown":
            return None
        self.problems.append(Problem(key, f"{raw!r} is not yes, no or unknown"))
        return None

    def measurement(self, key: str, analyte: Analyte, default_unit: str | None = None) -> Measurement | None:
        raw = self.data.get(key)
        if raw is None:
            return None
        unit = default_unit
        if isinstance(raw, str):
            match = _QUANTITY.match(raw)
            if not match:
                self.problems.append(Problem(key, f"{raw!r} is not a number with an optional unit"))
                return None
            value, unit = float(match.group(1)), match.group(2) or default_unit
            if (
                match.group(2)
                and default_unit
                and normalise_unit(match.group(2)) != normalise_unit(default_unit)
            ):
                self.problems.append(
                    Problem(key, f"the unit in {raw!r} contradicts {key}_unit {default_unit!r}")
                )
                return None
        elif isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
            self.problems.append(Problem(key, f"{raw!r} is not a number"))
            return None
        else:
            value = float(raw)
        try:
            converted, canonical = to_canonical(analyte, value, unit, field=key)
        except InvalidInput as error:
            self.problems += error.problems
            return None
        return Measurement(converted, canonical)


def parse_calc_input(data: object, today: date) -> CalcRequest:
    """Validate and convert one calculator input; raises InvalidInput naming every problem."""
    problems = schema_problems(data)
    if problems or not isinstance(data, dict):
        raise InvalidInput(problems or [Problem("(input)", "must be a JSON object")])
    read = _Reader(data)
    as_of = read.day("as_of") or today
    scan_date = read.day("date") or as_of
    prior_date = read.day("prior_date")
    prior_cac = read.number("prior_cac")
    if (prior_cac is None) != (prior_date is None) and not read.problems:
        missing_key = "prior_date" if prior_date is None else "prior_cac"
        read.problems.append(Problem(missing_key, "prior_cac and prior_date go together"))
    if prior_date is not None and prior_date >= scan_date:
        read.problems.append(
            Problem(
                "prior_date", f"{prior_date.isoformat()} is not before the scan date {scan_date.isoformat()}"
            )
        )
    vessels = read.integer("vessels")
    scans = [
        CacScan(
            agatston=_or_nan(read.number("cac")),
            date=scan_date,
            vessels_with_calcium=vessels,
            reported_percentile=read.number("percentile"),
        )
    ]
    if prior_cac is not None and prior_date is not None:
        scans.insert(0, CacScan(agatston=prior_cac, date=prior_date))
    age = read.number("age")
    lab_values = {
        key: read.measurement(key, analyte, data.get("lpa_unit") if key == "lpa" else None)
        for key, (_, analyte) in LAB_KEYS.items()
    }
    medication_flags = {drug_class: read.flag(key) for key, drug_class in MEDICATION_KEYS.items()}
    known_cad = read.flag("known_cad")
    record = PatientRecord(
        scans=tuple(scans),
        age=None if age is None else StatedAge(age, scan_date),
        sex=Sex(data["sex"]) if "sex" in data else None,
        race=Race(data["race"]) if "race" in data else None,
        labs=Labs(
            **{field: lab_values[key] for key, (field, _) in LAB_KEYS.items() if field != "systolic_bp"}
        ),
        systolic_bp=lab_values["sbp"],
        medications=tuple(
            MedicationPeriod(drug_class) for drug_class, taken in medication_flags.items() if taken
        ),
        unknown_medications=frozenset(
            drug_class for drug_class, taken in medication_flags.items() if taken is None
        ),
        diabetes=read.flag("diabetes"),
        current_smoker=read.flag("smoker"),
        family_history_premature_chd=read.flag("family_history"),
        coronary_history=(CoronaryHistory.CORONARY_DISEASE,) if known_cad else (),
        coronary_history_unknown=known_cad is None,
        symptoms=read.flag("symptoms"),
        high_bleeding_risk=read.flag("bleeding_risk"),
        patient_id=data.get("id"),
    )
    policy = None
    try:
        policy = get_policy(data.get("policy"))
    except InvalidInput as error:
        read.problems += error.problems
    if read.problems or policy is None:
        raise InvalidInput(read.problems)
    return CalcRequest(record=record, policy=policy, as_of=as_of)


def _or_nan(value: float | None) -> float:
    """A missing or unreadable score was already reported; NaN keeps the record well-typed meanwhile."""
    return math.nan if value is None else value


def calculate(data: object, today: date) -> dict[str, Any]:
    """One calculator input to its summary JSON; raises InvalidInput naming every problem."""
    request = parse_calc_input(data, today)
    return to_summary(assess(request.record, request.policy, as_of=request.as_of))
