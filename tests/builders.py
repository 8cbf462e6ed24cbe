"""Small builders so each test states only the facts it is about."""

from __future__ import annotations

from datetime import date
from typing import Any

from fhircac.clinical.assess import assess
from fhircac.clinical.assessment import Assessment
from fhircac.clinical.policies import ACC_AHA_2018, Policy
from fhircac.clinical.record import (
    CacScan,
    DrugClass,
    Labs,
    Measurement,
    MedicationPeriod,
    PatientRecord,
    Race,
    Sex,
    StatedAge,
)

SCAN_DATE = date(2026, 1, 15)
AS_OF = date(2026, 3, 1)


def mg_dl(value: float) -> Measurement:
    return Measurement(value, "mg/dL")


def labs(**values: float) -> Labs:
    """labs(hdl=50, hs_crp=0.5, ...) in canonical units."""
    units = {"hs_crp": "mg/L", "fasting_insulin": "u[IU]/mL", "hba1c": "%"}
    return Labs(**{name: Measurement(v, units.get(name, "mg/dL")) for name, v in values.items()})


def statin(start: date | None = None, end: date | None = None) -> MedicationPeriod:
    return MedicationPeriod(DrugClass.STATIN, start, end)


def record(
    cac: float = 0,
    *,
    prior: tuple[float, date] | None = None,
    age: float | None = 60,
    sex: Sex | None = Sex.MALE,
    race: Race | None = Race.WHITE,
    **fields: Any,
) -> PatientRecord:
    scans = [
        CacScan(
            cac,
            fields.pop("scan_date", SCAN_DATE),
            vessel_scores=fields.pop("vessel_scores", None),
            reported_percentile=fields.pop("reported_percentile", None),
        )
    ]
    if prior is not None:
        scans.insert(0, CacScan(prior[0], prior[1]))
    defaults: dict[str, Any] = {
        "diabetes": False,
        "current_smoker": False,
        "family_history_premature_chd": False,
        "symptoms": False,
        "high_bleeding_risk": False,
    }
    defaults.update(fields)
    return PatientRecord(
        scans=tuple(scans),
        age=None if age is None else StatedAge(age, scans[-1].date),
        sex=sex,
        race=race,
        **defaults,
    )


def run(cac: float = 0, *, policy: Policy = ACC_AHA_2018, as_of: date = AS_OF, **kwargs: Any) -> Assessment:
    return assess(record(cac, **kwargs), policy, as_of=as_of)


def ids(statements: Any) -> set[str]:
    return {s.id for s in statements}
