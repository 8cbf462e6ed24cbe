"""Metabolic activity from source 002's annual targets (REFERENCE §8).

Active if any available marker is off target; calm only if hs-CRP and ApoB were both measured
within the last year and every available marker is on target (one good marker is not calm);
otherwise unknown. Progression counts as a marker only over an interval of at least 3 years and
beyond the square-root threshold (or, after a score of 0, above 11.6), and never during statin
therapy: the statin-context rule (REFERENCE §5) outranks source 002, which does not consider statins.
"""

from __future__ import annotations

from datetime import date, timedelta

from fhircac.clinical import citations as c
from fhircac.clinical.assessment import (
    Findings,
    MarkerStatus,
    Metabolic,
    MetabolicState,
    Progression,
    ProgressionCategory,
)
from fhircac.clinical.progression import SHORT_INTERVAL_YEARS
from fhircac.clinical.record import Labs, Measurement
from fhircac.clinical.units import MG_DL, MG_L, MICRO_IU_ML, cholesterol_mmol, triglycerides_mmol

CRP_TARGET_MG_L = 1.0
APOB_TARGET_MG_DL = 80.0  # source 002 writes "0.8 mmol/L": a unit slip for 0.8 g/L
TG_HDL_TARGET_MMOL = 1.0
INSULIN_TARGET = 7.0
PROGRESSION_TARGET_PERCENT = 20.0

UNREST_MARKERS = ("hs_crp", "apob", "cac_progression")  # source 002's aspirin criterion
CALM_NEEDS = ("hs_crp", "apob")  # REFERENCE §8: calm cannot be known without both
MARKER_MAX_AGE = timedelta(days=366)  # source 002: re-evaluate the markers annually
MARKER_NAMES = {
    "hs_crp": "hs-CRP",
    "apob": "ApoB",
    "tg_hdl_ratio": "triglyceride/HDL ratio",
    "triglycerides": "triglycerides",
    "hdl": "HDL cholesterol",
    "fasting_insulin": "fasting insulin",
    "cac_progression": "CAC progression",
}


def marker_names(names: list[str] | tuple[str, ...]) -> str:
    """Marker names as a clinician reads them ("hs-CRP, ApoB"), never the internal keys."""
    return ", ".join(MARKER_NAMES.get(name, name) for name in names)


def _current(measurement: Measurement | None, as_of: date | None) -> bool:
    """Measured, and within the last year (an undated calculator value counts as current)."""
    if measurement is None:
        return False
    if measurement.date is None or as_of is None:
        return True
    return as_of - measurement.date <= MARKER_MAX_AGE


def assess_metabolic(
    labs: Labs,
    progression: Progression | None,
    findings: Findings,
    *,
    report_missing: bool,
    as_of: date | None = None,
) -> Metabolic:
    """``report_missing``: whether the policy in force uses the state, so absent markers matter."""
    purpose = "metabolic state (source 002 targets)"
    markers: list[MarkerStatus] = []
    absent: list[str] = []
    if labs.hs_crp is not None:
        crp = labs.hs_crp.value
        markers.append(MarkerStatus("hs_crp", crp, MG_L, "<1 mg/L", crp < CRP_TARGET_MG_L))
    else:
        absent.append("hs_crp")
    if labs.apob is not None:
        apob = labs.apob.value
        markers.append(MarkerStatus("apob", apob, MG_DL, "<80 mg/dL (0.8 g/L)", apob < APOB_TARGET_MG_DL))
    else:
        absent.append("apob")
    if labs.triglycerides is not None and labs.hdl is not None:
        ratio = triglycerides_mmol(labs.triglycerides.value) / cholesterol_mmol(labs.hdl.value)
        markers.append(
            MarkerStatus("tg_hdl_ratio", ratio, "mmol/L:mmol/L", "<1 (in mmol/L)", ratio < TG_HDL_TARGET_MMOL)
        )
    else:
        absent.append("triglycerides" if labs.triglycerides is None else "hdl")
    if labs.fasting_insulin is not None:
        insulin = labs.fasting_insulin.value
        markers.append(
            MarkerStatus("fasting_insulin", insulin, MICRO_IU_ML, "<7 µU/mL", insulin < INSULIN_TARGET)
        )
    else:
        absent.append("fasting_insulin")
    if progression is not None:
        marker = _progression_marker(progression, findings)
        if marker is not None:
            markers.append(marker)
    if report_missing:
        for name in absent:
            findings.need(name, purpose)
    current = {"hs_crp": _current(labs.hs_crp, as_of), "apob": _current(labs.apob, as_of)}
    if any(not m.on_target for m in markers):
        state = MetabolicState.ACTIVE
    elif all(current[name] for name in CALM_NEEDS):
        state = MetabolicState.CALM
    else:
        state = MetabolicState.UNKNOWN
        if report_missing and markers:
            for name in CALM_NEEDS:
                if not current[name]:
                    findings.need(
                        name, "whether the metabolic state is calm (needs hs-CRP and ApoB within a year)"
                    )
    return Metabolic(state=state, markers=tuple(markers))


def _progression_marker(progression: Progression, findings: Findings) -> MarkerStatus | None:
    """Progression counts against the 20 %/year target only when it is real: over at least 3 years,
    beyond measurement variability (square-root method) or new calcium above 11.6 after a score of 0,
    and not on a statin (REFERENCE §5, §8)."""
    source = c.cite("REFERENCE §5", "REFERENCE §8", c.SOURCE_000, c.SOURCE_002)
    if progression.on_statin:
        findings.warn(
            "progression-marker-excluded-on-statin",
            "CAC progression was not counted as a sign of metabolic activity because a statin was "
            "taken between the scans: a rise on a statin is expected (policy rule: the statin "
            "context outranks source 002's progression target).",
            source,
        )
        return None
    if progression.on_statin is None:
        findings.need("statin", "reading the change between scans (statin context)")
        findings.warn(
            "progression-marker-statin-unknown",
            "CAC progression was not counted as a sign of metabolic activity because it is not known "
            "whether a statin was taken between the scans.",
            source,
        )
        return None
    target = f"≤{PROGRESSION_TARGET_PERCENT:g}%/year"
    if progression.years < SHORT_INTERVAL_YEARS:
        findings.warn(
            "progression-marker-short-interval",
            "The scans are less than 3 years apart, so CAC progression was not assessed as a metabolic "
            "marker (neither on nor off target): over a short interval measurement variability can "
            "dominate.",
            source,
        )
        return None
    percent = progression.annualized_percent
    category = progression.category
    if category is ProgressionCategory.INCIDENT:
        if not progression.significant:
            return None  # possible early calcium within the variability of a single scan
        return MarkerStatus("cac_progression", progression.annualized_change, "Agatston/year", target, False)
    if category is ProgressionCategory.PROGRESSION:
        if percent is None:
            return MarkerStatus(
                "cac_progression", progression.annualized_change, "Agatston/year", target, False
            )
        return MarkerStatus(
            "cac_progression", percent, "%/year", target, percent <= PROGRESSION_TARGET_PERCENT
        )
    if category is ProgressionCategory.POSSIBLE_PROGRESSION:
        findings.warn(
            "progression-marker-not-assessable",
            "The rise is beyond the repeatability limit but not confirmed by the square-root method, so "
            "CAC progression was not assessed against the 20%/year target.",
            source,
        )
    # Within measurement variability (or a fall): no real change to judge, so not assessed.
    return None
