"""Therapy and work-up to consider (REFERENCE §7, §9), per policy, with the policies' disagreement
on statins reported rather than hidden.

Wording follows the strength of the source: the guideline says "reasonable" or "may be
considered", so the output does too. Nothing here is an order.
"""

from __future__ import annotations

from enum import StrEnum

from fhircac.clinical import citations as c
from fhircac.clinical.assessment import Findings, MetabolicState
from fhircac.clinical.bands import HIGH_SCORE, VERY_HIGH_SCORE
from fhircac.clinical.context import Context
from fhircac.clinical.metabolic import UNREST_MARKERS
from fhircac.clinical.policies import ACC_AHA_2018, LIFESTYLE_FIRST, Policy, PolicyId
from fhircac.clinical.record import DrugClass
from fhircac.clinical.units import NMOL_L

ACC = c.cite("REFERENCE §7", c.CHOLESTEROL_2018)
LIFESTYLE = c.cite("REFERENCE §7", c.SOURCE_002)
CAC_GUIDED_AGES = (40.0, 75.0)  # the 2018 CAC statements concern adults 40-75
ASPIRIN_AGES = (40.0, 70.0)
SEVERE_LDL_MG_DL = 190.0


class StatinStance(StrEnum):
    """What a policy says about starting a statin; used to detect and report disagreement."""

    FAVOURED = "favoured"
    INDIVIDUAL = "individual"
    NOT_ADVISED = "not-advised"
    NOT_APPLICABLE = "not-applicable"


def therapy(ctx: Context, findings: Findings) -> None:
    if ctx.record.known_coronary_disease:
        _known_coronary_disease(findings)
        return
    _appropriateness(ctx, findings)
    if ctx.policy.id is PolicyId.LIFESTYLE_FIRST:
        _lifestyle_first(ctx, findings)
    else:
        _acc_aha(ctx, findings)
    _work_up(ctx, findings)
    _report_divergence(ctx, findings)


def _known_coronary_disease(findings: Findings) -> None:
    source = c.cite("REFERENCE §9", c.SOURCE_003, c.SOURCE_004, c.NLA_2021)
    findings.warn(
        "known-coronary-disease",
        "Known coronary disease (heart attack, stent or bypass) is recorded: the calcium score adds "
        "nothing to the assessment and stents distort it.",
        source,
    )
    findings.recommend(
        "secondary-prevention",
        "Manage as established coronary disease (secondary prevention); the calcium score does not "
        "guide this therapy.",
        source,
    )


def _appropriateness(ctx: Context, findings: Findings) -> None:
    """Say when the guideline's CAC statements do not fit this patient, so no one over-reads them."""
    age = ctx.age_now
    low, high = CAC_GUIDED_AGES
    if age is not None and not low <= age <= high:
        findings.warn(
            "cac-statements-age",
            f"The guideline's CAC-guided statin statements concern adults aged 40-75; at {age:.0f} they "
            "apply only indirectly.",
            ACC,
        )
    ldl = ctx.record.labs.ldl
    if ldl is not None and ldl.value >= SEVERE_LDL_MG_DL:
        findings.warn(
            "ldl-190",
            f"LDL cholesterol {ldl.value:.0f} mg/dL (≥190): the guideline recommends a high-intensity statin "
            "without risk estimation; the calcium score does not change that.",
            c.cite("REFERENCE §7", c.CHOLESTEROL_2018),
        )
    pce = ctx.pce_ascvd_10y
    if pce is not None and pce >= 0.20:
        findings.warn(
            "cac-not-needed-high-risk",
            f"Estimated 10-year ASCVD risk is {pce:.0%} (high, PCE): statin therapy is indicated from "
            "the risk estimate; a calcium score is not needed for that decision.",
            c.cite("REFERENCE §4", c.CHOLESTEROL_2018, c.PCE),
        )
    elif pce is not None and pce < 0.05:
        findings.warn(
            "cac-low-risk",
            f"Estimated 10-year ASCVD risk is {pce:.1%} (low, PCE): calcium scoring is mainly advised "
            "when risk is borderline or intermediate.",
            c.cite("REFERENCE §4", c.PREVENTION_2019, c.PCE),
        )


def statin_stance(policy: Policy, ctx: Context) -> StatinStance:
    if ctx.record.known_coronary_disease:
        return StatinStance.NOT_APPLICABLE
    if policy.id is PolicyId.LIFESTYLE_FIRST:
        return _lifestyle_first_stance(ctx)
    score = ctx.agatston
    age = ctx.age_now
    ldl = ctx.record.labs.ldl
    diabetes_40_75 = bool(ctx.record.diabetes) and age is not None and 40 <= age <= 75
    if (
        score >= HIGH_SCORE
        or ctx.high_percentile
        or diabetes_40_75
        or (ldl and ldl.value >= SEVERE_LDL_MG_DL)
    ):
        return StatinStance.FAVOURED
    if score > 0:
        return StatinStance.FAVOURED if age is not None and age >= 55 else StatinStance.INDIVIDUAL
    return StatinStance.INDIVIDUAL if ctx.higher_risk_conditions() else StatinStance.NOT_ADVISED


def _lifestyle_first_stance(ctx: Context) -> StatinStance:
    score = ctx.agatston
    if score < HIGH_SCORE:
        return StatinStance.NOT_ADVISED
    if score < VERY_HIGH_SCORE:
        raised = _raised_apob_or_crp(ctx)
        return (
            StatinStance.INDIVIDUAL
            if raised is None
            else (StatinStance.FAVOURED if raised else StatinStance.NOT_ADVISED)
        )
    return {
        MetabolicState.ACTIVE: StatinStance.FAVOURED,
        MetabolicState.CALM: StatinStance.NOT_ADVISED,
        MetabolicState.UNKNOWN: StatinStance.INDIVIDUAL,
    }[ctx.metabolic.state]


def _raised_apob_or_crp(ctx: Context) -> bool | None:
    """True if ApoB or CRP is off source 002's target, None if neither was measured."""
    measured = [m for m in ctx.metabolic.markers if m.marker in ("apob", "hs_crp")]
    if not measured:
        return None
    return any(not m.on_target for m in measured)


def _already(ctx: Context) -> str:
    return " A statin is already recorded." if ctx.on_statin else ""


def _acc_aha(ctx: Context, findings: Findings) -> None:
    record = ctx.record
    score = ctx.agatston
    age = ctx.age_now
    if record.diabetes and age is not None and 40 <= age <= 75:
        findings.recommend(
            "statin-diabetes",
            "Diabetes at age 40-75: the guideline recommends at least a moderate-intensity statin, "
            "whatever the calcium score." + _already(ctx),
            ACC,
        )
    if score <= 0:
        _acc_aha_cac_zero(ctx, findings)
    elif score >= HIGH_SCORE:
        findings.recommend(
            "statin-cac-100", "CAC ≥100: it is reasonable to start a statin." + _already(ctx), ACC
        )
    elif ctx.high_percentile:
        findings.recommend(
            "statin-cac-75th-percentile",
            "CAC at or above the 75th percentile for age, sex and race: it is reasonable to start a statin."
            + _already(ctx),
            c.cite(ACC, c.MESA_PERCENTILE),
        )
    elif age is not None and age >= 55:
        findings.recommend(
            "statin-cac-1-99",
            "CAC 1-99 at age 55 or over: it is reasonable to start a statin." + _already(ctx),
            ACC,
        )
    else:
        if age is None:
            findings.need("age", "statin statement for CAC 1-99 (age 55 or over)")
        findings.recommend(
            "statin-cac-1-99-under-55",
            "CAC 1-99 under age 55: the guideline favours a statin mainly from age 55; decide from the "
            "overall risk and risk enhancers." + _already(ctx),
            ACC,
        )
    _acc_aha_aspirin(ctx, findings)
    _risk_enhancers(ctx, findings)


def _acc_aha_cac_zero(ctx: Context, findings: Findings) -> None:
    record = ctx.record
    for name, value in (
        ("diabetes", record.diabetes),
        ("current_smoker", record.current_smoker),
        ("family_history", record.family_history_premature_chd),
    ):
        if value is None:
            findings.need(name, "whether CAC 0 allows withholding a statin")
    exceptions = ctx.higher_risk_conditions()
    if exceptions:
        findings.recommend(
            "statin-cac-0-exceptions",
            f"CAC 0, but with {', '.join(exceptions)} the guideline's statement that a statin may be "
            "withheld does not apply; decide on a statin from the overall risk.",
            ACC,
        )
    elif ctx.on_statin:
        findings.recommend(
            "statin-cac-0-on-statin",
            "CAC 0 while already taking a statin: the guideline's CAC 0 statement concerns starting a "
            "statin, not stopping one; discuss with the treating clinician.",
            ACC,
        )
    else:
        findings.recommend(
            "statin-cac-0-withhold",
            "CAC 0: it is reasonable to withhold a statin and reassess in 5-10 years.",
            ACC,
        )


def _acc_aha_aspirin(ctx: Context, findings: Findings) -> None:
    if ctx.agatston < HIGH_SCORE:
        return
    source = c.cite("REFERENCE §7", c.PREVENTION_2019)
    age = ctx.age_now
    bleeding = ctx.record.high_bleeding_risk
    if age is None:
        findings.need("age", "aspirin consideration (ages 40-70)")
        return
    if age > ASPIRIN_AGES[1]:
        findings.recommend(
            "aspirin-not-over-70",
            "Aspirin is not routinely recommended for primary prevention above age 70.",
            source,
        )
    elif bleeding:
        findings.recommend(
            "aspirin-bleeding-risk",
            "Raised bleeding risk is recorded: aspirin is not advised for primary prevention.",
            source,
        )
    elif age >= ASPIRIN_AGES[0]:
        condition = "" if bleeding is False else " if bleeding risk is not raised"
        if bleeding is None:
            findings.need("bleeding_risk", "aspirin consideration")
        findings.recommend(
            "aspirin-may-be-considered",
            f"Low-dose aspirin may be considered for primary prevention{condition} (age 40-70, CAC ≥100); "
            "it is not routine.",
            source,
        )


def _risk_enhancers(ctx: Context, findings: Findings) -> None:
    labs = ctx.record.labs
    present: list[str] = []
    if labs.hs_crp is not None and labs.hs_crp.value >= 2.0:
        present.append(f"hs-CRP {labs.hs_crp.value:g} mg/L (≥2.0)")
    if labs.lpa is not None:
        threshold = 125.0 if labs.lpa.unit == NMOL_L else 50.0
        if labs.lpa.value >= threshold:
            unit = "nmol/L" if labs.lpa.unit == NMOL_L else "mg/dL"
            present.append(f"Lp(a) {labs.lpa.value:g} {unit} (≥{threshold:g})")
    if labs.apob is not None and labs.apob.value >= 130:
        present.append(f"ApoB {labs.apob.value:g} mg/dL (≥130)")
    if labs.triglycerides is not None and labs.triglycerides.value >= 175:
        present.append(f"triglycerides {labs.triglycerides.value:g} mg/dL (≥175)")
    if ctx.record.family_history_premature_chd:
        present.append("family history of premature coronary disease")
    if present:
        findings.recommend(
            "risk-enhancers",
            f"Risk enhancers present: {'; '.join(present)}. They weigh toward statin therapy when risk "
            "is borderline or intermediate.",
            ACC,
        )


def _keeps_treatment(ctx: Context) -> str:
    """Source 002's disclaimer: it never advises altering existing treatment. Say so wherever its
    "no medication" could be read as "stop your statin"."""
    on_lipid_lowering = ctx.on_statin or ctx.record.taking(DrugClass.OTHER_LIPID_LOWERING, ctx.as_of)
    if not on_lipid_lowering:
        return ""
    return (
        " This is not advice to stop the lipid-lowering treatment already recorded: the policy's source "
        "does not advise changing existing treatment."
    )


def _lifestyle_first(ctx: Context, findings: Findings) -> None:
    score = ctx.agatston
    if score <= 0:
        findings.recommend(
            "lf-cac-0",
            "CAC 0: this policy advises no new medication; repeat in 5 years." + _keeps_treatment(ctx),
            LIFESTYLE,
        )
    elif score < HIGH_SCORE:
        findings.recommend(
            "lf-cac-1-99", "CAC 1-99: sharpen the lifestyle plan; check again in 3 years.", LIFESTYLE
        )
    elif score < VERY_HIGH_SCORE:
        raised = _raised_apob_or_crp(ctx)
        if raised is None:
            findings.need("apob", "LDL-lowering decision at CAC 100-399 (lifestyle-first)")
            findings.need("hs_crp", "LDL-lowering decision at CAC 100-399 (lifestyle-first)")
            findings.recommend(
                "lf-cac-100-399-measure",
                "CAC 100-399: measure ApoB and hs-CRP; LDL lowering is considered when either is raised.",
                LIFESTYLE,
            )
        elif raised:
            findings.recommend(
                "lf-cac-100-399-ldl-lowering",
                "CAC 100-399 with raised ApoB or CRP: consider LDL-lowering therapy.",
                LIFESTYLE,
            )
        else:
            findings.recommend(
                "lf-cac-100-399-lifestyle",
                "CAC 100-399 with ApoB and CRP on target: continue the lifestyle plan; this policy does "
                "not advise starting LDL-lowering medication." + _keeps_treatment(ctx),
                LIFESTYLE,
            )
    else:
        _lifestyle_first_very_high(ctx, findings)
    findings.recommend(
        "lf-annual-markers",
        "Re-evaluate hs-CRP, ApoB, the triglyceride/HDL ratio, fasting insulin and CAC progression "
        "once a year against their targets.",
        c.cite("REFERENCE §8", c.SOURCE_002),
    )
    _lifestyle_first_aspirin(ctx, findings)


def _lifestyle_first_very_high(ctx: Context, findings: Findings) -> None:
    state = ctx.metabolic.state
    if state is MetabolicState.ACTIVE:
        off = ", ".join(m.marker for m in ctx.metabolic.off_target())
        findings.recommend(
            "lf-cac-400-active",
            f"CAC ≥400 with metabolic activity ({off} off target): consider medication for progression "
            "or inflammation.",
            LIFESTYLE,
        )
    elif state is MetabolicState.CALM:
        findings.recommend(
            "lf-cac-400-calm",
            "CAC ≥400, metabolically calm: this policy advises no new medication; continue the lifestyle "
            "plan and check again in 3-5 years." + _keeps_treatment(ctx),
            LIFESTYLE,
        )
    else:
        findings.recommend(
            "lf-cac-400-measure",
            "CAC ≥400 and no metabolic markers available: measure hs-CRP, ApoB, triglycerides/HDL and "
            "fasting insulin to decide.",
            LIFESTYLE,
        )


def _lifestyle_first_aspirin(ctx: Context, findings: Findings) -> None:
    if ctx.agatston < VERY_HIGH_SCORE:
        return
    source = c.cite("REFERENCE §7", c.SOURCE_002)
    unrest = ctx.metabolic.off_target(*UNREST_MARKERS)
    bleeding = ctx.record.high_bleeding_risk
    if not unrest or bleeding:
        reason = "raised bleeding risk" if bleeding else "no active metabolic unrest (CRP, ApoB, progression)"
        findings.recommend("lf-aspirin-avoid", f"Aspirin is not advised under this policy: {reason}.", source)
        return
    condition = "" if bleeding is False else " if bleeding risk is low"
    if bleeding is None:
        findings.need("bleeding_risk", "aspirin consideration")
    markers = ", ".join(m.marker for m in unrest)
    findings.recommend(
        "lf-aspirin-consider",
        f"Low-dose aspirin (at most 100 mg/day) may be considered{condition}, with good stomach "
        f"protection: CAC ≥400 with active metabolic unrest ({markers}).",
        source,
    )


def _work_up(ctx: Context, findings: Findings) -> None:
    """Work-up rules shared by both policies (sources 003, 004)."""
    if ctx.agatston >= HIGH_SCORE and ctx.record.labs.lpa is None:
        findings.recommend(
            "lpa-measure-once",
            "Lp(a) has not been measured: consider measuring it once; it can reveal an inherited "
            "risk factor.",
            c.cite("REFERENCE §7", c.SOURCE_004),
        )
    symptoms = ctx.record.symptoms
    if symptoms is None:
        findings.need("symptoms", "whether further testing (stress test, CT angiography) may be appropriate")
    elif symptoms:
        findings.recommend(
            "symptoms-further-testing",
            "Symptoms such as chest pain or breathlessness on exertion are recorded: further testing "
            "such as a stress test or CT coronary angiography may be appropriate. The calcium score "
            "does not show whether arteries are narrowed.",
            c.cite("REFERENCE §7", c.SOURCE_003, c.SOURCE_004),
        )


def _report_divergence(ctx: Context, findings: Findings) -> None:
    """REFERENCE §1: where the policies disagree on a statin, say so instead of choosing silently."""
    stances = {policy.id: statin_stance(policy, ctx) for policy in (ACC_AHA_2018, LIFESTYLE_FIRST)}
    acc, lifestyle = stances[PolicyId.ACC_AHA_2018], stances[PolicyId.LIFESTYLE_FIRST]
    if {acc, lifestyle} != {StatinStance.FAVOURED, StatinStance.NOT_ADVISED}:
        return
    favoured_by = "acc-aha-2018" if acc is StatinStance.FAVOURED else "lifestyle-first"
    advised_against_by = "lifestyle-first" if favoured_by == "acc-aha-2018" else "acc-aha-2018"
    findings.warn(
        "policy-divergence-statin",
        f"The policies disagree here: under {favoured_by} a statin would be reasonable, under "
        f"{advised_against_by} no new medication is advised. This result follows {ctx.policy.id.value}.",
        c.cite("REFERENCE §1", c.CHOLESTEROL_2018, c.SOURCE_002),
    )
