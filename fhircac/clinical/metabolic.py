"""Metabolic activity from source 002's annual targets (REFERENCE §8).

Active if any available marker is off target, calm if every available one is on target,
unknown if none is available. Progression during statin therapy is not counted as a marker:
the statin-context rule (REFERENCE §5) outranks source 002, which does not consider statins.
"""

from __future__ import annotations

from fhircac.clinical import citations as c
from fhircac.clinical.assessment import (
    Findings,
    MarkerStatus,
    Metabolic,
    MetabolicState,
    Progression,
    ProgressionCategory,
)
from fhircac.clinical.record import Labs
from fhircac.clinical.units import MG_DL, MG_L, MICRO_IU_ML, cholesterol_mmol, triglycerides_mmol

CRP_TARGET_MG_L = 1.0
APOB_TARGET_MG_DL = 80.0  # source 002 writes "0.8 mmol/L": a unit slip for 0.8 g/L
TG_HDL_TARGET_MMOL = 1.0
INSULIN_TARGET = 7.0
PROGRESSION_TARGET_PERCENT = 20.0

UNREST_MARKERS = ("hs_crp", "apob", "cac_progression")  # source 002's aspirin criterion


def assess_metabolic(
    labs: Labs, progression: Progression | None, findings: Findings, *, report_missing: bool
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
    if not markers:
        state = MetabolicState.UNKNOWN
    elif all(m.on_target for m in markers):
        state = MetabolicState.CALM
    else:
        state = MetabolicState.ACTIVE
    return Metabolic(state=state, markers=tuple(markers))


def _progression_marker(progression: Progression, findings: Findings) -> MarkerStatus | None:
    """Progression counts against the 20 %/year target only when it is real: beyond measurement
    variability (square-root method), or new calcium since a score of 0, and not on a statin."""
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
    percent = progression.annualized_percent
    category = progression.category
    if (category is ProgressionCategory.INCIDENT and progression.significant) or (
        category is ProgressionCategory.PROGRESSION and percent is None
    ):
        return MarkerStatus("cac_progression", progression.annualized_change, "Agatston/year", target, False)
    if category is ProgressionCategory.PROGRESSION and percent is not None:
        return MarkerStatus(
            "cac_progression", percent, "%/year", target, percent <= PROGRESSION_TARGET_PERCENT
        )
    if (
        category is ProgressionCategory.POSSIBLE_PROGRESSION
        and percent is not None
        and percent > PROGRESSION_TARGET_PERCENT
    ):
        findings.warn(
            "progression-marker-not-assessable",
            "The rise is beyond the repeatability limit but not confirmed by the square-root method, so "
            "it was not counted against the 20%/year target.",
            source,
        )
        return None
    # No rise beyond measurement variability: on target.
    return MarkerStatus("cac_progression", percent if percent is not None else 0.0, "%/year", target, True)
