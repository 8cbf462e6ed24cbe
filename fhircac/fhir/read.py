"""One patient's FHIR resources → the core's ``PatientRecord``, with every assumption reported.

Rules of reading (each one also in the README):
- Only Observations with status final, amended or corrected are used; others are reported and ignored.
- The latest CAC scan on or before the assessment date is the current one; earlier ones feed
  progression. Data dated after the assessment date is ignored, so a past date replays the past.
- Labs: the latest value on or before the assessment date per analyte, converted through its UCUM
  unit; an unknown unit is an error, never a guess.
- Absence is *no* only where a list was supplied: no diabetes/coronary Condition means "no" when the
  patient has a problem list (any Condition, or IPS no-known-problems); no statin means "not taking"
  when the patient has a medication list (any MedicationStatement/Request, or IPS no-known-medications).
  Otherwise the fact is unknown and the core says what that leaves out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any, TypeGuard

from fhircac.clinical.errors import InvalidInput
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
    Vessel,
)
from fhircac.clinical.units import Analyte, to_canonical
from fhircac.fhir import codes, terminology
from fhircac.fhir.inputs import Located, PatientInput
from fhircac.fhir.issues import Issue
from fhircac.fhir.relevance import Classified, describe_codes, looks_like_cac, looks_relevant, read_medication

_LAB_FIELDS = {
    Analyte.TOTAL_CHOLESTEROL: "total_cholesterol",
    Analyte.HDL: "hdl",
    Analyte.LDL: "ldl",
    Analyte.TRIGLYCERIDES: "triglycerides",
    Analyte.APOB: "apob",
    Analyte.LPA: "lpa",
    Analyte.HS_CRP: "hs_crp",
    Analyte.FASTING_INSULIN: "fasting_insulin",
    Analyte.HBA1C: "hba1c",
}
_LPA_MOLAR_CODE, _LPA_MASS_CODE = "43583-4", "10835-7"
_BOUND = object()  # a lab value given as a bound or as text: reported, not used
_VALUE_STRING = re.compile(r"^\s*(<=|>=|<|>|≤|≥)?\s*(\d+(?:\.\d+)?)\s*([^\s\d<>=].*?)\s*$")
# Labs and vitals older than this before the current scan are not used as its current values
# (README "How FHIR is read"); the metabolic markers have their own one-year caution in the core.
CURRENT_VALUE_AGE = timedelta(days=round(3 * 365.25))
_ORDER_INTENTS = frozenset({"order", "original-order", "reflex-order", "filler-order", "instance-order"})
_CONFIRMED = frozenset({"confirmed"})
_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?")


# Renewals (service choice, README "Medication periods"): an order stopped or completed without an
# end date runs on to the next order of its class if that follows within RENEWAL_GAP (yearly
# renewals plus a month's grace); an order with a recorded end, if the next follows within
# REFILL_GAP of that end.
RENEWAL_GAP = timedelta(days=400)
REFILL_GAP = timedelta(days=90)
_DURATION_DAYS = {"d": 1, "wk": 7, "mo": 30, "a": 365, "day": 1, "days": 1, "week": 7, "weeks": 7}


@dataclass(frozen=True)
class _Order:
    located: Located
    start: date | None
    end: date | None  # recorded or implied by the supply; None when not known
    active: bool
    name: str | None
    prior: str | None  # priorPrescription reference


def _supply_end(start: date, dispense: dict[str, Any]) -> date | None:
    """The last day covered by the dispensed supply, when the order gives one."""
    duration = dispense.get("expectedSupplyDuration") or {}
    value = duration.get("value")
    per = _DURATION_DAYS.get(str(duration.get("code") or duration.get("unit") or "").lower())
    if not _is_number(value) or per is None or value <= 0:
        return None
    repeats = dispense.get("numberOfRepeatsAllowed")
    fills = 1 + (repeats if isinstance(repeats, int) and not isinstance(repeats, bool) and repeats > 0 else 0)
    try:
        return start + timedelta(days=round(value * per * fills))
    except OverflowError:
        return None


def _reference(value: Any) -> str | None:
    reference = value.get("reference") if isinstance(value, dict) else None
    return reference if isinstance(reference, str) else None


@dataclass(frozen=True)
class SourceRef:
    """A resource the assessment used: for RiskAssessment.basis and Provenance.entity."""

    type: str
    id: str | None
    version: str | None
    identifier: dict[str, Any] | None
    location: str

    @classmethod
    def of(cls, located: Located) -> SourceRef:
        identifiers = located.resource.get("identifier")
        identifier = identifiers[0] if isinstance(identifiers, list) and identifiers else None
        return cls(located.type, located.id, located.version, identifier, located.location)

    def reference(self, versioned: bool = False) -> dict[str, Any]:
        if self.id:
            text = f"{self.type}/{self.id}"
            if versioned and self.version:
                text += f"/_history/{self.version}"
            return {"reference": text}
        if self.identifier:
            return {"type": self.type, "identifier": self.identifier}
        return {"type": self.type, "display": f"{self.type} without id or identifier"}


@dataclass
class ReadResult:
    """The record, what was assumed or ignored on the way, and which resources were used."""

    record: PatientRecord | None
    patient: SourceRef
    issues: list[Issue] = field(default_factory=list)
    sources: dict[str, SourceRef] = field(default_factory=dict)  # record source_id → resource
    current_scan: SourceRef | None = None
    field_locations: dict[str, str] = field(default_factory=dict)  # core Problem field → location

    def use(self, located: Located) -> str:
        ref = SourceRef.of(located)
        self.sources[located.key] = ref
        return located.key


class _Reader:
    def __init__(self, data: PatientInput, as_of: date) -> None:
        self.data = data
        self.as_of = as_of
        self.result = ReadResult(record=None, patient=SourceRef.of(data.patient))

    # -- issues ------------------------------------------------------------------------------------
    def error(self, location: str, message: str, code: str = "invalid") -> None:
        self.result.issues.append(Issue("error", code, location, message))

    def warn(self, location: str, message: str) -> None:
        self.result.issues.append(Issue("warning", "informational", location, message))

    def note(self, location: str, message: str) -> None:
        self.result.issues.append(Issue("information", "informational", location, message))

    # -- the whole record --------------------------------------------------------------------------
    def read(self) -> ReadResult:
        observations = [o for o in self.data.of_type("Observation") if self._usable_observation(o)]
        scans = self._scans(observations)
        self._defective_scans(scans)
        if not scans:
            for located in observations:
                if looks_like_cac(located.resource) and not _codings_match(
                    located.resource.get("code"), codes.CAC_CODES
                ):
                    self.note(
                        located.location,
                        "worded like a CAC score but not coded as one (SNOMED 450360000 or 450734004, "
                        "or fhircac cac-total): not read",
                    )
        if not scans and not self.data.defective_scans:
            self.error(
                self.data.patient.location, "no usable CAC score Observation for this patient", "required"
            )
        current_day = max((s.date for s in scans), default=self.as_of)
        age = self._age(current_day)
        labs, systolic_bp = self._labs(observations, current_day)
        medications, unknown_medications = self._medications()
        problems_listed = bool(self.data.of_type("Condition")) or "Condition" in self.data.listed
        problems = self._conditions(problems_listed)
        if problems.subclinical and not problems.coronary:
            first = problems.subclinical[0]
            self.note(
                first.location,
                "coronary atherosclerosis without angina, infarction or revascularisation is recorded: read "
                "as subclinical atherosclerosis (what the calcium score measures), not as known ASCVD, so "
                "the CAC assessment applies",
            )
        bleeding = self._bleeding_risk(problems, medications, problems_listed)
        record = PatientRecord(
            scans=tuple(scans),
            age=age,
            sex=self._sex(),
            race=self._race(),
            labs=labs,
            systolic_bp=systolic_bp,
            medications=tuple(medications),
            unknown_medications=unknown_medications,
            diabetes=True if problems.diabetes else (False if problems_listed else None),
            current_smoker=self._smoking(observations, problems.tobacco),
            family_history_premature_chd=self._family_history(observations),
            coronary_history=tuple(sorted(problems.coronary)),
            coronary_history_unknown=not problems.coronary and not problems_listed,
            symptoms=True if problems.symptoms else None,
            high_bleeding_risk=bleeding,
            patient_id=self.data.patient.key,
            deceased=self._deceased(current_day if scans else None),
        )
        self.result.record = record
        self.result.issues = _merge_repeats(self.result.issues)
        return self.result

    def _defective_scans(self, scans: list[CacScan]) -> None:
        """A CAC Observation that is not valid FHIR refuses the patient when it may be the current
        scan (dated on or after the latest valid one, or undated); an earlier one is only dropped."""
        latest = max((s.date for s in scans), default=None)
        for defect in self.data.defective_scans:
            resource = defect.located.resource
            text = resource.get("effectiveDateTime") if isinstance(resource, dict) else None
            day = _full_date(text) if isinstance(text, str) else None
            if day is not None and (day > self.as_of or (latest is not None and day < latest)):
                when = (
                    "after the assessment date" if day > self.as_of else f"before the current scan {latest}"
                )
                for problem in defect.problems:
                    self.warn(problem.location, f"{problem.message} (a CAC scan {when}: not read)")
                continue
            self.result.issues.extend(defect.problems)
            self.error(
                defect.located.location,
                "this CAC Observation may be the current scan and is not valid FHIR, so no "
                "interpretation is given",
                "structure",
            )

    def _usable_observation(self, located: Located) -> bool:
        status = located.resource.get("status")
        if status not in codes.OBSERVATION_STATUSES:
            self.error(located.at("status"), f"{status!r} is not an Observation status", "code-invalid")
            return False
        if status not in codes.CAC_USABLE_STATUSES:
            if _codings_match(located.resource.get("code"), codes.CAC_CODES) or _loinc(located) is not None:
                self.note(
                    located.location, f"ignored: status {status} (only final, amended, corrected are used)"
                )
            return False
        return True

    # -- patient -----------------------------------------------------------------------------------
    def _age(self, scan_day: date) -> StatedAge | None:
        patient = self.data.patient
        text = patient.resource.get("birthDate")
        if not text:
            return None
        match = _DATE.match(str(text))
        if match is None:  # validated already; defensive
            return None
        year, month, day = (int(g) if g else None for g in match.groups())
        assert year is not None
        if month is None or day is None:
            # A partial birth date: the middle of the period it names, said out loud.
            month, day = month or 7, 1 if month is None else 15
            self.warn(
                patient.at("birthDate"),
                f"birthDate {text!r} is partial; age taken from {year}-{month:02d}-{day:02d} "
                "and may be off by a year",
            )
        self.result.field_locations["age"] = patient.at("birthDate")
        return StatedAge.from_birth_date(date(year, month, day), scan_day)

    def _sex(self) -> Sex | None:
        """``gender``; when it is absent or unknown (US Core 8+ makes it optional), the
        us-core-individual-sex extension, then us-core-birthsex, each said in a note."""
        patient = self.data.patient
        gender = patient.resource.get("gender")
        if gender in ("female", "male"):
            return Sex(gender)
        if gender not in (None, "unknown"):
            self.warn(
                patient.at("gender"),
                f"gender {gender!r}: the percentile and risk equations are sex-specific, so they are "
                "not computed",
            )
            return None
        for url, read, name in (
            (codes.US_CORE_INDIVIDUAL_SEX, _individual_sex, "the us-core-individual-sex extension"),
            (codes.US_CORE_BIRTH_SEX, _birth_sex, "birth sex (us-core-birthsex)"),
        ):
            for extension in patient.resource.get("extension") or []:
                if isinstance(extension, dict) and extension.get("url") == url and (sex := read(extension)):
                    self.note(
                        patient.at("extension"),
                        f"no gender: sex read as {sex.value} from {name} (the equations are sex-specific)",
                    )
                    return sex
        if gender == "unknown":
            self.warn(
                patient.at("gender"),
                "gender 'unknown': the percentile and risk equations are sex-specific, so they are "
                "not computed",
            )
        return None

    def _race(self) -> Race | None:
        """US Core race/ethnicity → MESA's groups. Hispanic ethnicity → hispanic; otherwise one race:
        White → white, Black → black, the detailed race Chinese → chinese; anything else → other."""
        patient = self.data.patient
        categories = _us_core_codes(patient.resource, codes.US_CORE_RACE, "ombCategory") - {"UNK", "ASKU"}
        detailed = _us_core_codes(patient.resource, codes.US_CORE_RACE, "detailed")
        ethnicity = _us_core_codes(patient.resource, codes.US_CORE_ETHNICITY, "ombCategory")
        if codes.HISPANIC in ethnicity:
            return Race.HISPANIC
        if not ethnicity and _us_core_codes(patient.resource, codes.US_CORE_ETHNICITY, "detailed"):
            self.warn(
                patient.at("extension"),
                "ethnicity given only as detailed codes, without the OMB category: not read",
            )
        if not categories and not detailed:
            return None
        if codes.CHINESE in detailed and categories <= {codes.ASIAN} and detailed <= {codes.CHINESE}:
            race = Race.CHINESE
        elif categories == {codes.WHITE}:
            race = Race.WHITE
        elif categories == {codes.BLACK}:
            race = Race.BLACK
        else:
            self.note(
                patient.at("extension"),
                "race is not one of MESA's groups (White, Black, Chinese, Hispanic): read as other",
            )
            return Race.OTHER
        if not ethnicity - {"UNK", "ASKU"}:
            self.note(
                patient.at("extension"),
                f"ethnicity not recorded: race read as non-Hispanic {race.value} (MESA's group)",
            )
        return race

    # -- CAC scans ---------------------------------------------------------------------------------
    def _scans(self, observations: list[Located]) -> list[CacScan]:
        scans: dict[date, tuple[CacScan, Located]] = {}
        per_vessel: list[tuple[Located, Vessel]] = []
        for located in observations:
            if not _codings_match(located.resource.get("code"), codes.CAC_CODES):
                continue
            site = located.resource.get("bodySite")
            if site is not None and not _whole_heart(site):
                vessel = _vessel(site)
                if vessel is None:
                    self.note(
                        located.location,
                        "a CAC score for a body site that is not a coronary artery fhircac knows: not read",
                    )
                else:
                    per_vessel.append((located, vessel))
                continue
            scan = self._scan(located)
            if scan is None:
                continue
            if scan.date > self.as_of:
                self.note(
                    located.location, f"ignored: dated {scan.date} after the assessment date {self.as_of}"
                )
                continue
            earlier = scans.get(scan.date)
            if earlier is None:
                scans[scan.date] = (scan, located)
                continue
            if earlier[0].agatston == scan.agatston:
                self.note(located.location, f"same scan as {earlier[1].key} (same date and score): read once")
                continue
            chosen = self._correction(located, earlier[1])
            if chosen is None:
                self.error(
                    located.location,
                    f"two different CAC scores on {scan.date}: {scan.agatston:g} here and "
                    f"{earlier[0].agatston:g} in {earlier[1].key}",
                    "business-rule",
                )
            elif chosen is located:
                scans[scan.date] = (scan, located)
        self._vessel_scores(per_vessel, scans)
        ordered = sorted(scans.values(), key=lambda pair: pair[0].date)
        for index, (_scan, located) in enumerate(ordered):
            name = "cac" if index == len(ordered) - 1 else f"scans[{index}]"
            self.result.field_locations[name] = located.location
            self.result.use(located)
        if ordered:
            self.result.current_scan = SourceRef.of(ordered[-1][1])
        return [scan for scan, _ in ordered]

    def _correction(self, one: Located, other: Located) -> Located | None:
        """Of two scores on one day, the correction: status corrected/amended over final, else the
        later ``issued``; None when nothing tells them apart."""

        def rank(located: Located) -> tuple[int, str]:
            status = located.resource.get("status")
            return (1 if status in ("corrected", "amended") else 0, str(located.resource.get("issued") or ""))

        first, second = rank(one), rank(other)
        if first == second or (first[0] == second[0] and not (first[1] and second[1])):
            return None
        chosen, replaced = (one, other) if first > second else (other, one)
        why = (
            "its status is " + str(chosen.resource.get("status"))
            if first[0] != second[0]
            else "it was issued later"
        )
        self.note(
            chosen.location,
            f"two CAC scores on one day: this one replaces {replaced.key} because {why} (a correction)",
        )
        return chosen

    def _vessel_scores(
        self, per_vessel: list[tuple[Located, Vessel]], scans: dict[date, tuple[CacScan, Located]]
    ) -> None:
        """Per-vessel Observations (told apart by bodySite) join the total of their day."""
        by_day: dict[date, dict[Vessel, float]] = {}
        for located, vessel in per_vessel:
            day = self._effective_date(located)
            value = self._score(located, located.resource, "")
            if day is None or value is None:
                continue
            if day not in scans:
                self.note(
                    located.location, f"a per-vessel CAC score ({vessel.value}) without a total on {day}"
                )
                continue
            by_day.setdefault(day, {})[vessel] = value
            self.result.use(located)
        for day, vessels in by_day.items():
            scan, source = scans[day]
            completed = self._complete_vessels(source, scan.agatston, vessels)
            scans[day] = (replace(scan, vessel_scores=completed), source)

    def _scan(self, located: Located) -> CacScan | None:
        resource = located.resource
        day = self._effective_date(located, required=True)
        agatston = self._score(located, resource, "")
        if day is None or agatston is None:
            return None
        vessels: dict[Vessel, float] = {}
        percentile = None
        for index, component in enumerate(resource.get("component") or []):
            path = f"component[{index}]"
            code = _fhircac_code(component.get("code"))
            if code in codes.VESSEL_COMPONENTS:
                value = self._score(located, component, path)
                if value is not None:
                    vessels[codes.VESSEL_COMPONENTS[code]] = value
            elif code == codes.CAC_PERCENTILE:
                percentile = self._number(located, component, path, "percentile")
        return CacScan(
            agatston=agatston,
            date=day,
            vessel_scores=self._complete_vessels(located, agatston, vessels),
            reported_percentile=percentile,
            source_id=located.key,
        )

    def _complete_vessels(
        self, located: Located, total: float, vessels: dict[Vessel, float]
    ) -> dict[Vessel, float] | None:
        """Per-vessel scores need all four arteries; missing ones are 0 only when the rest add up."""
        if not vessels:
            return None
        given = sum(vessels.values())
        if math.isclose(given, total, rel_tol=0.01, abs_tol=1.0):
            return {vessel: vessels.get(vessel, 0.0) for vessel in Vessel}
        self.warn(
            located.at("component"),
            f"per-vessel scores ({len(vessels)} of 4 arteries, sum {given:g}) do not add up to the total "
            f"{total:g}: the CAC-DRS vessel count is not given",
        )
        return None

    def _score(self, located: Located, element: dict[str, Any], path: str) -> float | None:
        prefix = f"{path}." if path else ""
        if "valueQuantity" in element:
            quantity = element["valueQuantity"]
            value = quantity.get("value")
            if not _is_number(value):
                self.error(
                    located.at(f"{prefix}valueQuantity.value"), "the CAC score is not a number", "value"
                )
                return None
            if quantity.get("comparator"):
                bound = f"{quantity['comparator']}{value:g}"
                self.error(
                    located.at(f"{prefix}valueQuantity.comparator"),
                    f"the CAC score is given as a bound ({bound!r}), not a score: it is not used as one",
                    "value",
                )
                return None
            code, unit = quantity.get("code"), quantity.get("unit")
            if code is not None and code not in codes.AGATSTON_UNITS:
                accepted = ", ".join(sorted(codes.AGATSTON_UNITS))
                self.error(
                    located.at(f"{prefix}valueQuantity.code"),
                    f"unit {code!r} is not an Agatston score unit; accepted UCUM codes: {accepted}",
                    "code-invalid",
                )
                return None
            if (
                code is None
                and unit is not None
                and str(unit).strip().lower() not in codes.AGATSTON_UNIT_TEXT
            ):
                self.error(
                    located.at(f"{prefix}valueQuantity.unit"),
                    f"unit {unit!r} is not an Agatston score unit",
                    "code-invalid",
                )
                return None
            return float(value)
        if _is_number(element.get("valueInteger")):
            return float(element["valueInteger"])
        kinds = [key for key in element if key.startswith("value")]
        if kinds:
            self.error(
                located.at(f"{prefix}{kinds[0]}"), f"the CAC score must be a number, not {kinds[0]}", "value"
            )
        elif not path:
            self.warn(located.location, "ignored: the CAC Observation has no value")
        return None

    def _number(self, located: Located, element: dict[str, Any], path: str, what: str) -> float | None:
        value = (element.get("valueQuantity") or {}).get("value", element.get("valueDecimal"))
        if value is None and "valueInteger" in element:
            value = element["valueInteger"]
        if not _is_number(value):
            self.error(located.at(path), f"the {what} is not a number", "value")
            return None
        return float(value)

    def _effective_date(self, located: Located, required: bool = False) -> date | None:
        resource = located.resource
        text = resource.get("effectiveDateTime") or (resource.get("effectivePeriod") or {}).get("start")
        text = text or resource.get("effectiveInstant")
        if not text:
            if required:
                self.error(
                    located.at("effective[x]"),
                    "no effective date: the scan cannot be placed in time",
                    "required",
                )
            return None
        day = _full_date(str(text))
        if day is None and required:
            self.error(
                located.at("effective[x]"), f"{text!r} is not a full date (YYYY-MM-DD needed)", "value"
            )
        elif day is None:
            self.warn(located.at("effective[x]"), f"ignored: {text!r} is not a full date")
        return day

    # -- labs and vitals ---------------------------------------------------------------------------
    def _same_day(self, analyte: Analyte, used: Located, other: Located) -> None:
        same_time = used.resource.get("effectiveDateTime") == other.resource.get("effectiveDateTime")
        how = (
            "given first in the input (same time, nothing else tells them apart)"
            if same_time
            else "taken later"
        )
        self.warn(
            used.location,
            f"two {analyte.value} values on one day ({used.key} and {other.key}): the one {how} is used",
        )

    def _labs(self, observations: list[Located], scan_day: date) -> tuple[Labs, Measurement | None]:
        latest: dict[Analyte, tuple[Measurement, Located]] = {}
        for located in observations:
            for analyte, value, unit, path, code in self._lab_values(located):
                day = self._effective_date(located)
                if day is None:
                    if not located.resource.get("effectiveDateTime"):
                        self.warn(located.location, f"ignored: {analyte.value} without a date")
                    continue
                if day > self.as_of:
                    self.note(
                        located.location, f"ignored: dated {day} after the assessment date {self.as_of}"
                    )
                    continue
                measurement = self._measurement(located, analyte, value, unit, path, code, day)
                if measurement is None:
                    continue
                if code in codes.LAB_CODES_WITH_NOTE:
                    self.note(located.at("code"), codes.LAB_CODES_WITH_NOTE[code])
                current = latest.get(analyte)
                if current is None or _later(located, day, current[1], current[0].date):
                    if (
                        current is not None
                        and current[0].date == day
                        and current[0].value != measurement.value
                    ):
                        self._same_day(analyte, located, current[1])
                    latest[analyte] = (measurement, located)
                elif current[0].date == day and current[0].value != measurement.value:
                    self._same_day(analyte, current[1], located)
        values: dict[str, Measurement] = {}
        for analyte, (measurement, located) in latest.items():
            if measurement.date is not None and measurement.date < scan_day - CURRENT_VALUE_AGE:
                self.note(
                    located.location,
                    f"the latest {analyte.value} is from {measurement.date}, more than 3 years before the "
                    f"scan ({scan_day}): not used as a current value",
                )
                continue
            name = "systolic_bp" if analyte is Analyte.SYSTOLIC_BP else _LAB_FIELDS[analyte]
            values[name] = measurement
            self.result.use(located)
            self.result.field_locations[name] = located.location
        systolic = values.pop("systolic_bp", None)
        return Labs(**values), systolic

    def _lab_values(self, located: Located) -> Iterator[tuple[Analyte, Any, str | None, str, str]]:
        resource = located.resource
        code = _loinc(located)
        if code in codes.LAB_CODES:
            yield codes.LAB_CODES[code], *self._quantity(located, resource, ""), code
        elif code in codes.BLOOD_PRESSURE_PANELS:
            for index, component in enumerate(resource.get("component") or []):
                if _code_in(component.get("code"), codes.LOINC, {"8480-6"}):
                    path = f"component[{index}]"
                    yield Analyte.SYSTOLIC_BP, *self._quantity(located, component, path), "8480-6"

    def _quantity(self, located: Located, element: dict[str, Any], path: str) -> tuple[Any, str | None, str]:
        """Value, unit and where. A value given as a bound ("<0.3 mg/L", a comparator) is never read
        as that number: it is reported and not used (``_BOUND``)."""
        prefix = f"{path}." if path else ""
        quantity = element.get("valueQuantity")
        if quantity is None:
            text = element.get("valueString")
            if isinstance(text, str):
                return self._value_string(located, text, f"{prefix}valueString")
            return None, None, f"{prefix}value[x]"
        unit = quantity.get("code") if quantity.get("system") in (codes.UCUM, None) else None
        if quantity.get("comparator"):
            self.note(
                located.at(f"{prefix}valueQuantity"),
                f"value given as {quantity['comparator']}{quantity.get('value')}"
                f"{' ' + str(quantity['unit']) if quantity.get('unit') else ''}: a bound, not an exact "
                "value, so it is not used",
            )
            return _BOUND, None, f"{prefix}valueQuantity"
        return quantity.get("value"), unit or quantity.get("unit"), f"{prefix}valueQuantity"

    def _value_string(self, located: Located, text: str, path: str) -> tuple[Any, str | None, str]:
        match = _VALUE_STRING.match(text)
        if match is None:
            self.note(located.at(path), f"result given as text {text!r}: not a number with a unit, not used")
            return _BOUND, None, path
        comparator, number, unit = match.groups()
        if comparator:
            self.note(
                located.at(path), f"result given as {text!r}: a bound, not an exact value, so it is not used"
            )
            return _BOUND, None, path
        self.note(located.at(path), f"result given as text {text!r}: read as {number} {unit}")
        return float(number), unit, path

    def _measurement(
        self,
        located: Located,
        analyte: Analyte,
        value: Any,
        unit: str | None,
        path: str,
        code: str,
        day: date,
    ) -> Measurement | None:
        if value is _BOUND:
            return None
        if value is None:
            if path.endswith("value[x]") and any(k.startswith("value") for k in located.resource):
                self.error(located.at(path), f"{analyte.value} must be a Quantity with a unit", "value")
            else:
                self.warn(located.location, f"ignored: {analyte.value} without a value")
            return None
        if not _is_number(value):
            self.error(located.at(f"{path}.value"), f"{analyte.value} is not a number", "value")
            return None
        if unit is None:
            self.error(
                located.at(path), f"{analyte.value} has no unit; the unit is never guessed", "required"
            )
            return None
        if analyte is Analyte.LPA and (code == _LPA_MOLAR_CODE) != (unit.strip().lower() == "nmol/l"):
            kind = "molar (nmol/L)" if code == _LPA_MOLAR_CODE else "mass"
            self.error(located.at(path), f"LOINC {code} is Lp(a) {kind} but the unit is {unit!r}", "value")
            return None
        try:
            converted, canonical = to_canonical(analyte, float(value), unit, analyte.value)
        except InvalidInput as error:
            for problem in error.problems:
                self.error(located.at(path), problem.message, "value")
            return None
        return Measurement(converted, canonical, day, located.key)

    def _smoking(self, observations: list[Located], conditions: list[tuple[Located, bool]]) -> bool | None:
        """The latest smoking status (72166-2 or 11367-0, SNOMED or LOINC answers); an active
        tobacco-use Condition counts from its date unless a later status says otherwise."""
        latest: tuple[date, bool | None, Located] | None = None
        for located in observations:
            if _loinc(located) not in terminology.smoking_observation_codes():
                continue
            day = self._effective_date(located) or date.min
            if day > self.as_of:
                continue
            smoker = self._smoking_answer(located)
            if latest is None or latest[0] <= day:
                latest = (day, smoker, located)
        for located, smoker in conditions:
            text = located.resource.get("onsetDateTime") or located.resource.get("recordedDate")
            day = (_full_date(str(text)) if text else None) or date.min
            if latest is None or latest[0] < day or (latest[1] is None and smoker):
                self.note(located.location, "smoking status read from the problem list")
                latest = (day, smoker, located)
            elif smoker and latest[1] is False:
                since = f"since {day}" if day != date.min else "undated"
                self.note(
                    located.location,
                    f"an active tobacco-use problem ({since}) is contradicted by a later smoking status "
                    f"({latest[0]}, not a current smoker): the later status is used",
                )
        if latest is None:
            return None
        self.result.use(latest[2])
        return latest[1]

    def _smoking_answer(self, located: Located) -> bool | None:
        concept = located.resource.get("valueCodeableConcept")
        answer = _codes_of(concept, codes.SNOMED)
        if answer & codes.CURRENT_SMOKER:
            return True
        if answer & codes.NOT_CURRENT_SMOKER:
            return False
        for coding in _codings(concept):
            found = terminology.smoking_answer(coding.get("system"), coding.get("code"))
            if found == "current":
                return True
            if found in ("not-current", "smokeless"):
                if found == "smokeless":
                    self.note(located.at("valueCodeableConcept"), "smokeless tobacco: not read as smoking")
                return False
        self.warn(located.at("valueCodeableConcept"), "smoking status not recognised: read as unknown")
        return None

    def _bleeding_risk(
        self, problems: _Problems, medications: list[MedicationPeriod], problems_listed: bool
    ) -> bool | None:
        """Raised bleeding risk for aspirin decisions: a bleeding condition, or an anticoagulant or
        P2Y12 inhibitor taken on the assessment date (or long-term anticoagulant use, Z79.01)."""
        antithrombotic = [
            m
            for m in medications
            if m.drug_class in (DrugClass.ANTICOAGULANT, DrugClass.P2Y12_INHIBITOR)
            and m.active_on(self.as_of)
        ]
        if antithrombotic:
            names = ", ".join(sorted({m.name or m.drug_class.value for m in antithrombotic}))
            self.note(
                self.data.patient.location,
                f"taking {names} on {self.as_of}: read as raised bleeding risk for aspirin decisions and "
                "as antithrombotic therapy already given",
            )
        if problems.anticoagulant_use:
            self.note(
                self.data.patient.location,
                "long-term anticoagulant use is on the problem list: read as raised bleeding risk",
            )
        if problems.bleeding or problems.anticoagulant_use or antithrombotic:
            return True
        return False if problems_listed else None

    def _deceased(self, scan_day: date | None) -> bool | None:
        """Deceased by the as-of date; a current scan dated after the death is warned about (it
        cannot be this patient's, or one of the two dates is wrong)."""
        patient = self.data.patient
        resource = patient.resource
        day: date | None = None
        if isinstance(resource.get("deceasedBoolean"), bool):
            dead = bool(resource["deceasedBoolean"])
        elif resource.get("deceasedDateTime"):
            day = _full_date(str(resource["deceasedDateTime"]))
            dead = day is None or day <= self.as_of
        else:
            return None
        if dead:
            self.warn(
                patient.location,
                "the patient is recorded as deceased: the record is assessed, but no active care plan or "
                "repeat scan is proposed",
            )
        if day is not None and scan_day is not None and scan_day > day:
            self.warn(
                patient.at("deceasedDateTime"),
                f"the current CAC scan ({scan_day}) is dated after the recorded death ({day}): check that "
                "the scan belongs to this patient and that both dates are right",
            )
        return dead

    def _family_history(self, observations: list[Located]) -> bool | None:
        stated: bool | None = None
        for located in observations:
            if _fhircac_code(located.resource.get("code")) == codes.FAMILY_HISTORY_PREMATURE_CHD:
                value = located.resource.get("valueBoolean")
                if not isinstance(value, bool):
                    self.error(located.at("value[x]"), "family history must be valueBoolean", "value")
                    continue
                stated = value if stated is None else (stated or value)
                self.result.use(located)
        histories = [
            h
            for h in self.data.of_type("FamilyMemberHistory")
            if h.resource.get("status") != "entered-in-error"
        ]
        verdicts = set()
        for located in histories:
            verdict = self._premature_chd(located)
            if verdict == "premature":
                self.result.use(located)
                return True
            verdicts.add(verdict)
        if stated is not None:
            return stated
        if verdicts == {"later"} or verdicts == {"later", "unrelated"}:
            return False
        if verdicts == {"unrelated"}:
            self.note(
                histories[0].location,
                "family history is recorded, but none of it is coronary disease in a first-degree "
                "relative: premature coronary disease in the family is unknown, not ruled out",
            )
        return None

    def _premature_chd(self, located: Located) -> str:
        """premature: a first-degree relative had CHD before 55 (male) / 65 (female); later: CHD in a
        first-degree relative at a later age; unknown: cannot tell; unrelated: no such CHD recorded."""
        resource = located.resource
        relationship = _codes_of(resource.get("relationship"), codes.V3_ROLE_CODE)
        sex = _codes_of(resource.get("sex"), "http://hl7.org/fhir/administrative-gender")
        if relationship & codes.FIRST_DEGREE_MALE or "male" in sex:
            limit = codes.PREMATURE_ONSET_MALE
        elif relationship & codes.FIRST_DEGREE_FEMALE or "female" in sex:
            limit = codes.PREMATURE_ONSET_FEMALE
        else:
            limit = None
        first_degree = bool(
            relationship & (codes.FIRST_DEGREE_MALE | codes.FIRST_DEGREE_FEMALE | codes.FIRST_DEGREE_ANY)
        )
        for index, condition in enumerate(resource.get("condition") or []):
            concept = condition.get("code")
            if not (
                _codes_of(concept, codes.SNOMED) & codes.FAMILY_CHD_SNOMED
                or _icd10_match(concept, codes.FAMILY_CHD_ICD10)
            ):
                continue
            if not first_degree:
                continue
            onset = _age_in_years(condition.get("onsetAge"))
            if onset is None or limit is None:
                self.note(
                    located.at(f"condition[{index}]"),
                    "coronary disease in a first-degree relative, but the age at onset or the relative's "
                    "sex is not given: cannot tell whether it was premature",
                )
                return "unknown"
            return "premature" if onset < limit else "later"
        return "unrelated"

    def _after_as_of(self, located: Located, text: Any) -> bool:
        day = _full_date(str(text)) if text else None
        if day is not None and day > self.as_of:
            self.note(located.location, f"ignored: dated {day} after the assessment date {self.as_of}")
            return True
        return False

    # -- medications -------------------------------------------------------------------------------
    def _medications(self) -> tuple[list[MedicationPeriod], frozenset[DrugClass]]:
        statements = self.data.of_type("MedicationStatement") + self.data.of_type("MedicationRequest")
        if not statements and not self.data.listed & {"MedicationStatement", "MedicationRequest"}:
            self.note(
                self.data.patient.location,
                "no medication list: statin, other lipid-lowering, blood-pressure, aspirin and "
                "antithrombotic use unknown",
            )
            return [], frozenset(DrugClass)
        periods: list[MedicationPeriod] = []
        unknown: set[DrugClass] = set()
        orders: dict[DrugClass, list[_Order]] = {}
        for located in statements:
            classified = self._drug_classes(located)
            if classified.unrecognised:
                self.note(
                    located.location,
                    f"looks like a cardiovascular medication but is not recognised "
                    f"({classified.unrecognised}): not counted",
                )
            if not classified.classes:
                if classified.note:
                    self.note(located.location, classified.note)
                if self._unidentified(located) and located.resource.get("status") in ("active", "unknown"):
                    unknown |= set(DrugClass)  # a current order for a drug the input does not name
                continue
            if classified.note:
                self.note(located.location, classified.note)
            status = located.resource.get("status")
            if status == "unknown":
                unknown |= classified.classes
                continue
            if located.type == "MedicationRequest":
                order = self._order(located, status, classified.name)
                if order is not None:
                    for drug_class in classified.classes:
                        orders.setdefault(drug_class, []).append(order)
                continue
            period = self._statement_period(located, status)
            if period is None:
                continue
            for drug_class in sorted(classified.classes):
                periods.append(MedicationPeriod(drug_class, *period, classified.name, located.key))
            self.result.use(located)
        for drug_class in sorted(orders):
            periods += self._courses(drug_class, orders[drug_class])
        return periods, frozenset(unknown)

    def _unidentified(self, located: Located) -> bool:
        """Names no drug at all: a medicationReference outside the input, without a display."""
        resource = located.resource
        reference = resource.get("medicationReference") or {}
        return (
            "medicationCodeableConcept" not in resource
            and reference.get("reference") not in self.data.medications
            and not reference.get("display")
        )

    def _order(self, located: Located, status: Any, name: str | None) -> _Order | None:
        """A MedicationRequest as an order: its start, and its end where one is recorded or implied
        by the supply dispensed (expectedSupplyDuration × (1 + numberOfRepeatsAllowed))."""
        resource = located.resource
        if resource.get("intent") not in _ORDER_INTENTS or status not in ("active", "completed", "stopped"):
            return None
        dispense = resource.get("dispenseRequest") or {}
        validity = dispense.get("validityPeriod") or {}
        start = self._period_bound(located, resource.get("authoredOn") or validity.get("start"), True)
        if status == "active":
            end = None
        else:
            end = self._period_bound(located, validity.get("end"), first=False)
            if end is None and start is not None:
                end = _supply_end(start, dispense)
        prior = _reference(resource.get("priorPrescription") or {})
        return _Order(located, start, end, status == "active", name, prior)

    def _courses(self, drug_class: DrugClass, orders: list[_Order]) -> list[MedicationPeriod]:
        """Orders of one drug class as courses: a renewal (the next order of the same medication,
        within RENEWAL_GAP of the last order date when no end is recorded, within REFILL_GAP of a
        recorded end, or one naming it as priorPrescription) continues the course without a break.
        Orders dated after the assessment date only say that the earlier one was still running then."""
        ordered = sorted(orders, key=lambda o: o.start or date.min)
        by_prior = {o.prior: o for o in ordered if o.prior is not None}
        periods: list[MedicationPeriod] = []
        unended: list[_Order] = []
        future = 0
        for index, order in enumerate(ordered):
            if order.start is not None and order.start > self.as_of:
                future += 1
                continue
            end = None if order.active else order.end
            following = self._renewal(order, ordered, index, by_prior)
            if not order.active and following is not None:
                assert following.start is not None
                end = None if following.start > self.as_of else max(following.start, end or following.start)
            elif not order.active and order.end is None:
                end = order.start
                unended.append(order)
                if end is None:
                    self.warn(order.located.location, "ignored: no dates, so when it was taken is unknown")
                    continue
            periods.append(MedicationPeriod(drug_class, order.start, end, order.name, order.located.key))
            self.result.use(order.located)
        if unended:
            last = unended[-1]
            self.note(
                last.located.location,
                f"{drug_class.value}: {len(unended)} order(s) stopped or completed without an end date and "
                f"not renewed within {RENEWAL_GAP.days} days: each taken as ending on its order date "
                f"(last {last.start})",
            )
        if future:
            self.note(
                self.data.patient.location,
                f"{drug_class.value}: {future} order(s) dated after the assessment date {self.as_of} "
                "ignored (they only show that the order before them was still running)",
            )
        return periods

    def _renewal(
        self, order: _Order, ordered: list[_Order], index: int, by_prior: dict[str, _Order]
    ) -> _Order | None:
        """The order that renews ``order``: one naming it as priorPrescription, else the next of the
        same medication in time (the search stops once later orders are out of reach)."""
        named = by_prior.get(order.located.key) or (by_prior.get(order.located.full_url or ""))
        if named is not None and named.start is not None:
            return named
        if order.start is None:
            return None
        reach = max(order.start + RENEWAL_GAP, (order.end or order.start) + REFILL_GAP)
        for candidate in ordered[index + 1 :]:
            if candidate.start is None or candidate.start > reach:
                break
            if self._renews(order, candidate):
                return candidate
        return None

    def _renews(self, order: _Order, following: _Order) -> bool:
        """The same medication re-ordered (by its name), in time; hospital injectables never renew."""
        if following.start is None or order.start is None:
            return False
        if order.name != following.name or order.name in terminology.parenteral_anticoagulants():
            return following.prior is not None and following.prior in (
                order.located.key,
                order.located.full_url,
            )
        if following.prior is not None and following.prior in (order.located.key, order.located.full_url):
            return True
        if order.end is not None:
            return following.start - order.end <= REFILL_GAP
        return following.start - order.start <= RENEWAL_GAP

    def _statement_period(self, located: Located, status: Any) -> tuple[date | None, date | None] | None:
        resource = located.resource
        if status in ("not-taken", "entered-in-error", "intended"):
            return None
        effective = resource.get("effectivePeriod") or {}
        start = self._period_bound(located, effective.get("start") or resource.get("effectiveDateTime"), True)
        end = self._period_bound(located, effective.get("end"), first=False)
        if status in ("completed", "stopped", "on-hold") and end is None:
            asserted = self._period_bound(located, resource.get("dateAsserted"), first=False)
            end = asserted or start
            if end is None:
                self.warn(
                    located.location, f"ignored: {status} with no dates, so when it was taken is unknown"
                )
                return None
            self.note(located.location, f"{status} without an end date: taken as ending {end}")
        if start is None and status == "active":
            self.note(located.location, "no start date: counted as taken since before the earliest scan")
        return start, end

    def _period_bound(self, located: Located, text: Any, first: bool) -> date | None:
        """A partial date (2025, 2025-06) stands for its first day as a start, its last day as an end."""
        if not text:
            return None
        day = _full_date(str(text))
        if day is not None:
            return day
        match = _DATE.match(str(text))
        if match is None:
            return None
        year, month = int(match.group(1)), int(match.group(2) or (1 if first else 12))
        if first:
            bound = date(year, month, 1)
        else:
            bound = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
        self.note(located.location, f"partial date {text!r} read as {bound}")
        return bound

    def _drug_classes(self, located: Located) -> Classified:
        concepts = []
        resource = located.resource
        if "medicationCodeableConcept" in resource:
            concepts.append(resource["medicationCodeableConcept"])
        reference = (resource.get("medicationReference") or {}).get("reference")
        medication = self.data.medications.get(reference) if reference else None
        if medication is not None:
            concepts.append(medication.resource.get("code"))
            concepts += [i.get("itemCodeableConcept") for i in medication.resource.get("ingredient") or []]
        elif isinstance(display := (resource.get("medicationReference") or {}).get("display"), str):
            concepts.append({"text": display})  # the Medication is not in the input
        return read_medication(c for c in concepts if isinstance(c, dict))

    # -- conditions and procedures -----------------------------------------------------------------
    def _conditions(self, problems_listed: bool) -> _Problems:
        found = _Problems()
        for located in self.data.of_type("Condition"):
            resource = located.resource
            verification = _codes_of(resource.get("verificationStatus"), None)
            concept = resource.get("code")
            if verification and not verification & _CONFIRMED:
                if _is_relevant_condition(concept):
                    status = ", ".join(sorted(verification))
                    self.note(
                        located.location, f"ignored: verification status {status} (only confirmed is used)"
                    )
                continue
            recorded = resource.get("onsetDateTime") or resource.get("recordedDate")
            if self._after_as_of(located, recorded):
                continue
            active = not (
                _codes_of(resource.get("clinicalStatus"), None) & {"inactive", "resolved", "remission"}
            )
            self._condition(located, concept, active, found)
        for located in self.data.of_type("Procedure"):
            performed = located.resource.get("performedDateTime") or (
                located.resource.get("performedPeriod") or {}
            ).get("start")
            if self._after_as_of(located, performed):
                continue
            if located.resource.get("status") in ("completed", "in-progress"):
                history = coronary_history(located.resource.get("code"))
                if history is not None:
                    found.coronary.add(history)
                    self.result.use(located)
                elif looks_relevant(located.resource.get("code")):
                    self._unrecognised(located, "procedure")
        if not problems_listed:
            self.note(
                self.data.patient.location,
                "no problem list (no Condition): diabetes, known ASCVD and bleeding risk unknown",
            )
        return found

    def _condition(self, located: Located, concept: Any, active: bool, found: _Problems) -> None:
        kinds = {c.kind: c for c in _concepts(concept)}
        history = coronary_history(concept)
        if history is not None:  # a past MI, stroke or stent stays history, whatever its clinical status
            found.coronary.add(history)
            self.result.use(located)
            return
        intracranial = _codes_of(concept, codes.SNOMED) & codes.INTRACRANIAL_HAEMORRHAGE_SNOMED
        if Kind.HAEMORRHAGIC_STROKE in kinds or intracranial:
            found.bleeding = True
            self.result.use(located)
            if Kind.HAEMORRHAGIC_STROKE in kinds:
                name = kinds[Kind.HAEMORRHAGIC_STROKE].display
            else:
                name = f"intracranial haemorrhage (SNOMED {min(intracranial)})"
            self.note(
                located.location,
                f"{name!r}: a haemorrhagic stroke is not atherosclerotic "
                "disease; read as raised bleeding risk",
            )
            return
        if Kind.SUBCLINICAL in kinds:
            found.subclinical.append(located)
            return
        smoking = _smoking_of(concept)
        if smoking is not None and active:
            found.tobacco.append((located, smoking))
            return
        if not active:
            return
        if (
            Kind.DIABETES in kinds
            or (Kind.GESTATIONAL_DIABETES not in kinds and _icd10_match(concept, codes.DIABETES_ICD10))
            or _codes_of(concept, codes.SNOMED) & codes.DIABETES_SNOMED
        ):
            found.diabetes = True
            self.result.use(located)
        elif Kind.GESTATIONAL_DIABETES in kinds:
            self.note(located.location, "diabetes in pregnancy is not read as diabetes mellitus")
        elif _codes_of(concept, codes.SNOMED) & codes.SYMPTOM_SNOMED or _icd10_match(
            concept, codes.SYMPTOM_ICD10
        ):
            found.symptoms = True
            self.result.use(located)
        elif (
            _fhircac_code(concept) == codes.HIGH_BLEEDING_RISK
            or _icd10_match(concept, codes.BLEEDING_ICD10)
            or _codes_of(concept, codes.SNOMED) & codes.BLEEDING_SNOMED
        ):
            found.bleeding = True
            self.result.use(located)
        elif Kind.ANTICOAGULANT_USE in kinds:
            found.anticoagulant_use = True
            self.result.use(located)
        elif Kind.FAMILIAL_HYPERCHOLESTEROLAEMIA in kinds:
            self.note(
                located.location,
                "familial hypercholesterolaemia is recorded: fhircac's rules do not read it; the guideline "
                "treats it apart from the calcium score",
            )
        elif looks_relevant(concept):
            self._unrecognised(located, "condition")

    def _unrecognised(self, located: Located, what: str) -> None:
        concept = located.resource.get("code")
        described = describe_codes(_codings(concept), [str((concept or {}).get("text") or "")])
        self.note(
            located.location,
            f"looks like a cardiovascular {what} but is not recognised ({described}): not counted",
        )


@dataclass
class _Problems:
    """What the problem list and procedures say, gathered before it becomes the record."""

    diabetes: bool = False
    symptoms: bool = False
    bleeding: bool = False
    anticoagulant_use: bool = False  # Z79.01 long-term anticoagulant use
    coronary: set[CoronaryHistory] = field(default_factory=set)
    subclinical: list[Located] = field(default_factory=list)
    tobacco: list[tuple[Located, bool]] = field(default_factory=list)  # active, smoker or not


Kind = terminology.ConditionKind


def _concepts(concept: Any) -> list[terminology.Concept]:
    found = (terminology.condition(c.get("system"), c.get("code")) for c in _codings(concept))
    return [c for c in found if c is not None]


def _smoking_of(concept: Any) -> bool | None:
    """Smoker (True) or not (False) by a tobacco-use answer code; None when it is none."""
    for coding in _codings(concept):
        answer = terminology.smoking_answer(coding.get("system"), coding.get("code"))
        if answer == "current":
            return True
        if answer in ("not-current", "smokeless"):
            return False
    return None


_OTHER_CONDITION_SNOMED = (
    codes.DIABETES_SNOMED
    | codes.SYMPTOM_SNOMED
    | codes.INTRACRANIAL_HAEMORRHAGE_SNOMED
    | codes.BLEEDING_SNOMED
)


def _is_relevant_condition(concept: Any) -> bool:
    return bool(
        coronary_history(concept) is not None
        or _concepts(concept)
        or _codes_of(concept, codes.SNOMED) & _OTHER_CONDITION_SNOMED
        or _icd10_match(concept, (*codes.DIABETES_ICD10, *codes.SYMPTOM_ICD10, *codes.BLEEDING_ICD10))
        or _fhircac_code(concept) == codes.HIGH_BLEEDING_RISK
    )


# Coronary arteries by SNOMED body structure or by name (per-vessel CAC Observations, bodySite).
_VESSEL_SNOMED = {"3227004": Vessel.LEFT_MAIN, "13647002": Vessel.RCA}
_VESSEL_WORDS = (
    ("left main", Vessel.LEFT_MAIN),
    (r"\blm\b", Vessel.LEFT_MAIN),
    ("anterior descending", Vessel.LAD),
    (r"\blad\b", Vessel.LAD),
    ("circumflex", Vessel.LCX),
    (r"\blcx\b", Vessel.LCX),
    ("right coronary", Vessel.RCA),
    (r"\brca\b", Vessel.RCA),
)
_WHOLE_HEART = re.compile(r"\bheart\b|coronary arteries|all coronary|whole")


def _site_text(site: Any) -> str:
    return " ".join(
        [str((site or {}).get("text") or "")] + [str(c.get("display") or "") for c in _codings(site)]
    ).lower()


_WHOLE_HEART_SNOMED = frozenset({"80891009", "41801008"})  # heart structure, coronary artery structure


def _whole_heart(site: Any) -> bool:
    if _vessel(site) is not None:
        return False
    return bool(_codes_of(site, codes.SNOMED) & _WHOLE_HEART_SNOMED or _WHOLE_HEART.search(_site_text(site)))


def _vessel(site: Any) -> Vessel | None:
    for code in _codes_of(site, codes.SNOMED):
        if code in _VESSEL_SNOMED:
            return _VESSEL_SNOMED[code]
    text = _site_text(site)
    return next((vessel for pattern, vessel in _VESSEL_WORDS if re.search(pattern, text)), None)


def _later(located: Located, day: date, other: Located, other_day: date | None) -> bool:
    """Latest wins; on the same day, the later effective time (ISO strings of one day compare)."""
    if other_day is None or day != other_day:
        return other_day is None or day > other_day
    return str(located.resource.get("effectiveDateTime", "")) > str(
        other.resource.get("effectiveDateTime", "")
    )


def _merge_repeats(issues: list[Issue]) -> list[Issue]:
    """One note for many alike (a renewal series, forty refills): the first place, and how many."""
    counts: dict[tuple[str, str, str], int] = {}
    for issue in issues:
        if not issue.is_error:
            key = (issue.severity, issue.code, issue.message)
            counts[key] = counts.get(key, 0) + 1
    merged: list[Issue] = []
    seen: set[tuple[str, str, str]] = set()
    for issue in issues:
        key = (issue.severity, issue.code, issue.message)
        if issue.is_error or counts[key] == 1:
            merged.append(issue)
        elif key not in seen:
            seen.add(key)
            merged.append(replace(issue, message=f"{issue.message} (and {counts[key] - 1} more like it)"))
    return merged


def read_patient(data: PatientInput, as_of: date) -> ReadResult:
    """Map one patient's resources; problems and assumptions are in ``ReadResult.issues``."""
    return _Reader(data, as_of).read()


def locate_problems(result: ReadResult, error: InvalidInput) -> list[Issue]:
    """The core's ``InvalidInput`` problems, placed at the resource they came from."""
    issues = []
    for problem in error.problems:
        head = problem.field.split(".")[0]
        location = result.field_locations.get(head) or result.patient.location
        issues.append(Issue("error", "value", location, f"{problem.field}: {problem.message}"))
    return issues


# -- coded values ----------------------------------------------------------------------------------
def _codings(concept: Any) -> list[dict[str, Any]]:
    if not isinstance(concept, dict):
        return []
    return [c for c in concept.get("coding") or [] if isinstance(c, dict)]


def _codes_of(concept: Any, system: str | None) -> set[str]:
    return {
        str(c.get("code"))
        for c in _codings(concept)
        if system is None or terminology.system_of(c.get("system")) == system
    }


def _code_in(concept: Any, system: str, wanted: Iterable[str]) -> bool:
    return bool(_codes_of(concept, system) & set(wanted))


def _codings_match(concept: Any, wanted: frozenset[tuple[str, str]]) -> bool:
    return any((terminology.system_of(c.get("system")), c.get("code")) in wanted for c in _codings(concept))


def _fhircac_code(concept: Any) -> str | None:
    found = _codes_of(concept, codes.FHIRCAC)
    return next(iter(found)) if found else None


_READ_LOINC = (
    frozenset(codes.LAB_CODES) | codes.BLOOD_PRESSURE_PANELS | terminology.smoking_observation_codes()
)


def _loinc(located: Located) -> str | None:
    """The LOINC code fhircac reads this Observation by, if any."""
    return next(iter(sorted(_codes_of(located.resource.get("code"), codes.LOINC) & _READ_LOINC)), None)


def _icd10(code: Any) -> str:
    """ICD-10 codes compare without their dot: Z95.5 and Z955 are the same code."""
    return str(code or "").upper().replace(".", "")


def _icd10_match(concept: Any, prefixes: Iterable[str]) -> bool:
    wanted = tuple(_icd10(p) for p in prefixes)
    systems = codes.ICD10_SYSTEMS
    return any(
        _icd10(c.get("code")).startswith(wanted)
        for c in _codings(concept)
        if terminology.system_of(c.get("system")) in systems
    )


# The most telling history first, when one concept carries several codes.
_HISTORY_ORDER = (
    CoronaryHistory.MYOCARDIAL_INFARCTION,
    CoronaryHistory.BYPASS,
    CoronaryHistory.STENT,
    CoronaryHistory.CORONARY_DISEASE,
    CoronaryHistory.STROKE_OR_TIA,
    CoronaryHistory.PERIPHERAL_ARTERY_DISEASE,
)


def coronary_history(concept: Any) -> CoronaryHistory | None:
    """Clinical ASCVD a condition or procedure code records: the terminology tables first (value
    sets, incl. CPT and ICD-10-PCS procedures), then REFERENCE §12's codes and ICD-10 prefixes.
    Coronary atherosclerosis alone and haemorrhagic stroke are not clinical ASCVD here."""
    histories: set[CoronaryHistory] = set()
    excluded = False
    for coding in _codings(concept):
        system, code = coding.get("system"), coding.get("code")
        for found in (terminology.condition(system, code), terminology.procedure(system, code)):
            if found is None:
                continue
            if found.history is not None:
                histories.add(found.history)
            elif found.kind in (Kind.SUBCLINICAL, Kind.HAEMORRHAGIC_STROKE):
                excluded = True
    if excluded and not histories:
        return None
    histories |= {
        codes.CORONARY_SNOMED[c] for c in _codes_of(concept, codes.SNOMED) if c in codes.CORONARY_SNOMED
    }
    by_prefix = _coronary_by_icd10(concept)
    if by_prefix is not None:
        histories.add(by_prefix)
    return next((h for h in _HISTORY_ORDER if h in histories), None)


def _coronary_by_icd10(concept: Any) -> CoronaryHistory | None:
    """REFERENCE §12's ICD-10 codes as prefixes, the longest match winning (I25.2 MI over I25)."""
    best: tuple[int, CoronaryHistory] | None = None
    for coding in _codings(concept):
        if terminology.system_of(coding.get("system")) not in codes.ICD10_SYSTEMS:
            continue
        code = _icd10(coding.get("code"))
        for prefix, history in codes.CORONARY_ICD10.items():
            if code.startswith(_icd10(prefix)) and (best is None or len(prefix) > best[0]):
                best = (len(prefix), history)
    return best[1] if best else None


def classify_medication(concepts: Iterable[dict[str, Any]]) -> tuple[set[DrugClass], str | None]:
    """Drug classes of a medication and the name it was recognised by (see ``read_medication``)."""
    classified = read_medication(concepts)
    return set(classified.classes), classified.name


_INDIVIDUAL_SEX = {
    (codes.SNOMED, "248152002"): Sex.FEMALE,
    (codes.SNOMED, "248153007"): Sex.MALE,
    ("http://hl7.org/fhir/administrative-gender", "female"): Sex.FEMALE,
    ("http://hl7.org/fhir/administrative-gender", "male"): Sex.MALE,
}


def _individual_sex(extension: dict[str, Any]) -> Sex | None:
    coding = extension.get("valueCoding") or {}
    return _INDIVIDUAL_SEX.get((terminology.system_of(coding.get("system")), str(coding.get("code"))))


def _birth_sex(extension: dict[str, Any]) -> Sex | None:
    return {"F": Sex.FEMALE, "M": Sex.MALE}.get(str(extension.get("valueCode")))


def _us_core_codes(patient: dict[str, Any], url: str, part_url: str) -> set[str]:
    found: set[str] = set()
    for extension in patient.get("extension") or []:
        if extension.get("url") != url:
            continue
        for part in extension.get("extension") or []:
            if part.get("url") == part_url:
                coding = part.get("valueCoding") or {}
                if coding.get("code"):
                    found.add(str(coding["code"]))
    return found


_AGE_UNITS_PER_YEAR = {"a": 1.0, "mo": 12.0, "wk": 52.1775, "d": 365.25}


def _age_in_years(age: Any) -> float | None:
    """An Age quantity in years; None when its unit is not a UCUM time unit we know."""
    if not isinstance(age, dict) or not _is_number(age.get("value")):
        return None
    unit = age.get("code") or (
        "a" if str(age.get("unit", "")).lower() in ("a", "y", "yr", "year", "years") else None
    )
    per_year = _AGE_UNITS_PER_YEAR.get(str(unit)) if unit else None
    return float(age["value"]) / per_year if per_year else None


def _is_number(value: Any) -> TypeGuard[int | float]:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer too large for a float
        return False


def _full_date(text: str) -> date | None:
    match = _DATE.match(text)
    if match is None or None in match.groups():
        return None
    try:
        return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
    except ValueError:
        return None
