"""The typed facts the clinical core reasons over.

Adapters (CLI, FHIR reader, CDS Hooks prefetch) build a ``PatientRecord``; the core never sees
FHIR. Values are already in the canonical unit of their analyte (see ``units.py``), and a
``None`` means *unknown*, which is different from *no* and is reported in ``missing``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

DAYS_PER_YEAR = 365.25


class Sex(StrEnum):
    FEMALE = "female"
    MALE = "male"


class Race(StrEnum):
    """MESA's four race/ethnicity groups; anything else is ``OTHER`` (not computable for MESA)."""

    WHITE = "white"
    BLACK = "black"
    HISPANIC = "hispanic"
    CHINESE = "chinese"
    OTHER = "other"


class Vessel(StrEnum):
    LEFT_MAIN = "left_main"
    LAD = "lad"
    LCX = "lcx"
    RCA = "rca"


class DrugClass(StrEnum):
    STATIN = "statin"
    OTHER_LIPID_LOWERING = "other_lipid_lowering"
    ANTIHYPERTENSIVE = "antihypertensive"
    ASPIRIN = "aspirin"
    # Non-aspirin antithrombotics: raised bleeding risk for aspirin decisions (issue 14).
    ANTICOAGULANT = "anticoagulant"
    P2Y12_INHIBITOR = "p2y12_inhibitor"


class CoronaryHistory(StrEnum):
    """Known clinical ASCVD: with any of these, CAC scoring adds nothing (REFERENCE §9); prior
    ischaemic stroke/TIA and peripheral artery disease are clinical ASCVD too (secondary prevention)."""

    CORONARY_DISEASE = "coronary_disease"
    MYOCARDIAL_INFARCTION = "myocardial_infarction"
    STENT = "stent"
    BYPASS = "bypass"
    STROKE_OR_TIA = "stroke_or_tia"
    PERIPHERAL_ARTERY_DISEASE = "peripheral_artery_disease"


@dataclass(frozen=True)
class CacScan:
    """One CAC scan. ``vessel_scores`` when the report has per-vessel Agatston scores;
    ``vessels_with_calcium`` when only the count is known."""

    agatston: float
    date: date
    vessel_scores: dict[Vessel, float] | None = None
    vessels_with_calcium: int | None = None
    reported_percentile: float | None = None
    source_id: str | None = None

    @property
    def vessel_count(self) -> int | None:
        if self.vessel_scores is not None:
            return sum(1 for score in self.vessel_scores.values() if score > 0)
        return self.vessels_with_calcium


@dataclass(frozen=True)
class Measurement:
    """A value in its analyte's canonical unit (``units.CANONICAL_UNITS``), with when and where from."""

    value: float
    unit: str
    date: date | None = None
    source_id: str | None = None


@dataclass(frozen=True)
class Labs:
    total_cholesterol: Measurement | None = None  # mg/dL
    hdl: Measurement | None = None  # mg/dL
    ldl: Measurement | None = None  # mg/dL
    triglycerides: Measurement | None = None  # mg/dL
    apob: Measurement | None = None  # mg/dL
    lpa: Measurement | None = None  # mg/dL or nmol/L: mass and molar are never converted
    hs_crp: Measurement | None = None  # mg/L
    fasting_insulin: Measurement | None = None  # µU/mL
    hba1c: Measurement | None = None  # %


@dataclass(frozen=True)
class MedicationPeriod:
    """A drug class taken from ``start`` to ``end``; ``None`` bounds mean open-ended."""

    drug_class: DrugClass
    start: date | None = None
    end: date | None = None
    name: str | None = None
    source_id: str | None = None

    def active_on(self, day: date) -> bool:
        return (self.start is None or self.start <= day) and (self.end is None or day <= self.end)

    def overlaps(self, first: date, last: date) -> bool:
        return (self.start is None or self.start <= last) and (self.end is None or first <= self.end)


def add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def completed_years(birth_date: date, day: date) -> int:
    return day.year - birth_date.year - ((day.month, day.day) < (birth_date.month, birth_date.day))


@dataclass(frozen=True)
class StatedAge:
    """An age known either from a birth date (exact) or as "``years`` old on ``on``" (calculator input).

    Guideline thresholds ("age 55 or over", "40-70") and the calculators count completed years,
    so ``at`` returns whole years.
    """

    years: float
    on: date
    birth_date: date | None = None

    @classmethod
    def from_birth_date(cls, birth_date: date, on: date) -> StatedAge:
        return cls(years=float(completed_years(birth_date, on)), on=on, birth_date=birth_date)

    def at(self, day: date) -> int:
        if self.birth_date is not None:
            return completed_years(self.birth_date, day)
        return math.floor(self.years + (day - self.on).days / DAYS_PER_YEAR)


@dataclass(frozen=True)
class PatientRecord:
    """Everything the core may use about one patient. ``None`` means unknown."""

    scans: tuple[CacScan, ...]
    age: StatedAge | None = None
    sex: Sex | None = None
    race: Race | None = None
    labs: Labs = field(default_factory=Labs)
    systolic_bp: Measurement | None = None  # mm[Hg]
    medications: tuple[MedicationPeriod, ...] = ()
    # Drug classes whose use is unknown (not just unrecorded): rules that depend on them say so.
    unknown_medications: frozenset[DrugClass] = frozenset()
    diabetes: bool | None = None
    current_smoker: bool | None = None
    # The guideline's risk enhancer (premature: male <55, female <65). MESA's own term is any family
    # history of heart attack; fhircac feeds this one field to both, which can understate MESA risk
    # slightly when a relative's heart attack came later in life.
    family_history_premature_chd: bool | None = None
    coronary_history: tuple[CoronaryHistory, ...] = ()
    coronary_history_unknown: bool = False
    symptoms: bool | None = None  # chest pain or exertional breathlessness
    high_bleeding_risk: bool | None = None
    patient_id: str | None = None
    deceased: bool | None = None  # the record is assessed; no active plan or rescan is proposed

    def scans_by_date(self) -> tuple[CacScan, ...]:
        return tuple(sorted(self.scans, key=lambda scan: scan.date))

    def use_unknown(self, drug_class: DrugClass) -> bool:
        return drug_class in self.unknown_medications and not any(
            m.drug_class is drug_class for m in self.medications
        )

    def taking(self, drug_class: DrugClass, day: date) -> bool:
        return any(m.drug_class is drug_class and m.active_on(day) for m in self.medications)

    def took_during(self, drug_class: DrugClass, first: date, last: date) -> bool:
        return any(m.drug_class is drug_class and m.overlaps(first, last) for m in self.medications)

    def share_taking(self, drug_class: DrugClass, first: date, last: date) -> float:
        """The fraction of the days from ``first`` to ``last`` covered by ``drug_class`` (0-1)."""
        days = (last - first).days
        if days <= 0:
            return 1.0 if self.taking(drug_class, first) else 0.0
        covered: set[int] = set()
        for m in self.medications:
            if m.drug_class is drug_class and m.overlaps(first, last):
                start = max(m.start or first, first)
                end = min(m.end or last, last)
                covered.update(range((start - first).days, (end - first).days))
        return min(len(covered) / days, 1.0)

    @property
    def known_coronary_disease(self) -> bool:
        return bool(self.coronary_history)
