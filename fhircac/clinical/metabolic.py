"""Metabolic activity from source 002's annual targets (REFERENCE §8).

Active if any available marker is off target, calm if every available one is on target,
unknown if none is available. Progression during statin therapy is not counted as a marker:
the statin-context rule (REFERENCE §5) outranks source 002, which does not consider statins.
"""

from __future__ import annotations

from fhircac.clinical import citations as c
from fhircac.clinical.assessment import Findings, MarkerStatus, Metabolic, MetabolicState, Progression
from fhircac.clinical.record import Labs
from fhircac.clinical.units import MG_DL, MG_L, MICRO_IU_ML, cholesterol_mmol, triglycerides_mmol

CRP_TARGET_MG_L = 1.0
APOB_TARGET_MG_DL = 80.0  # source 002 writes "0.8 mmol/L": a unit slip for 0.8 g/L
TG_HDL_TARGET_MMOL = 1.0
INSULIN_TARGET = 7.0
PROGRESSION_TARGET_PERCENT = 20.0

SOURCE = c.cite("REFERENCE §8", c.SOURCE_002)
UNREST_MARKERS = ("hs_crp", "apob", "cac_progression")  # source 002's aspirin criterion


def assess_metabolic(labs: Labs, progression: Progression | None, findings: Findings) -> Metabolic:
    purpose = "metabolic state (source 002 targets)"
    markers: list[MarkerStatus] = []
    if labs.hs_crp is not None:
        crp = labs.hs_crp.value
        markers.append(MarkerStatus("hs_crp", crp, MG_L, "<1 mg/L", crp < CRP_TARGET_MG_L))
    else:
        findings.need("hs_crp", purpose)
    if labs.apob is not None:
        apob = labs.apob.value
        markers.append(MarkerStatus("apob", apob, MG_DL, "<80 mg/dL (0.8 g/L)", apob < APOB_TARGET_MG_DL))
    else:
        findings.need("apob", purpose)
    if labs.triglycerides is not None and labs.hdl is not None:
        ratio = triglycerides_mmol(labs.triglycerides.value) / cholesterol_mmol(labs.hdl.value)
        markers.append(
            MarkerStatus("tg_hdl_ratio", ratio, "mmol/L:mmol/L", "<1 (in mmol/L)", ratio < TG_HDL_TARGET_MMOL)
        )
    else:
        findings.need("triglycerides" if labs.triglycerides is None else "hdl", purpose)
    if labs.fasting_insulin is not None:
        insulin = labs.fasting_insulin.value
        markers.append(
            MarkerStatus("fasting_insulin", insulin, MICRO_IU_ML, "<7 µU/mL", insulin < INSULIN_TARGET)
        )
    else:
        findings.need("fasting_insulin", purpose)
    if progression is not None and progression.annualized_percent is not None:
        percent = progression.annualized_percent
        if progression.on_statin:
            findings.warn(
                "progression-marker-excluded-on-statin",
                "CAC progression was not counted as a sign of metabolic activity because a statin was "
                "taken between the scans: a rise on a statin is expected (policy rule: the statin "
                "context outranks source 002's progression target).",
                c.cite("REFERENCE §5", "REFERENCE §8", c.SOURCE_000, c.SOURCE_002),
            )
        else:
            markers.append(
                MarkerStatus(
                    "cac_progression", percent, "%/year", "≤20%/year", percent <= PROGRESSION_TARGET_PERCENT
                )
            )
    if not markers:
        state = MetabolicState.UNKNOWN
    elif all(m.on_target for m in markers):
        state = MetabolicState.CALM
    else:
        state = MetabolicState.ACTIVE
    return Metabolic(state=state, markers=tuple(markers))
