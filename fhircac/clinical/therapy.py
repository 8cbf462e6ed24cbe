"""Therapy and work-up to consider (REFERENCE §7, §9), per policy, with the policies' disagreements
(statin, aspirin, repeat scan) reported rather than hidden (REFERENCE §1).

Wording follows the strength of the source: the guideline says "reasonable" or "may be
considered", so the output does too. Nothing here is an order. Repeat-scan timing is quoted
from the one follow-up result, so an output never gives two intervals.
"""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum

from fhircac.clinical import citations as c
from fhircac.clinical.assessment import Findings, MetabolicState, NextScan
from fhircac.clinical.bands import HIGH_SCORE, VERY_HIGH_SCORE
from fhircac.clinical.context import HIGH_PERCENTILE, Context
from fhircac.clinical.followup import next_scan
from fhircac.clinical.metabolic import UNREST_MARKERS
from fhircac.clinical.percentile import WORST_ABSOLUTE_ERROR
from fhircac.clinical.policies import ACC_AHA_2018, LIFESTYLE_FIRST, Policy, PolicyId
from fhircac.clinical.record import DrugClass
from fhircac.clinical.units import NMOL_L

ACC = c.cite("REFERENCE §7", c.CHOLESTEROL_2018)
LIFESTYLE = c.cite("REFERENCE §7", c.SOURCE_002)
CAC_GUIDED_AGES = (40, 75)  # the 2018 CAC statements concern adults 40-75
ASPIRIN_AGES = (40, 70)
SEVERE_LDL_MG_DL = 190.0
HIGH_PCE = 0.20
LOW_PCE = 0.05


class StatinStance(StrEnum):
    """What a policy says about starting a statin; used to detect and report disagreement."""

    FAVOURED = "favoured"
    INDIVIDUAL = "individual"
    NOT_ADVISED = "not-advised"
    NOT_APPLICABLE = "not-applicable"


def therapy(ctx: Context, findings: Findings, follow_up: NextScan) -> None:
    if ctx.record.known_coronary_disease:
        _known_coronary_disease(findings)
        _symptoms(ctx, findings)
        return
    if ctx.record.use_unknown(DrugClass.STATIN):
        findings.need(
            "statin", "whether the statin statements concern starting a statin or one already taken"
        )
    _appropriateness(ctx, findings)
    if ctx.policy.id is PolicyId.LIFESTYLE_FIRST:
        _lifestyle_first(ctx, findings)
    else:
        _acc_aha(ctx, findings, follow_up)
    _lpa_once(ctx, findings)
    _symptoms(ctx, findings)
    _report_divergence(ctx, findings, follow_up)


def _known_coronary_disease(findings: Findings) -> None:
    source = c.cite("REFERENCE §9", c.SOURCE_003, c.NLA_2021)
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


def _indication_without_cac(ctx: Context) -> str | None:
    """Why a statin is indicated whatever the score (2018 guideline), or None."""
    ldl = ctx.record.labs.ldl
    if ldl is not None and ldl.value >= SEVERE_LDL_MG_DL:
        return "LDL cholesterol ≥190 mg/dL"
    if ctx.pce_ascvd_10y is not None and ctx.pce_ascvd_10y >= HIGH_PCE:
        return "a high estimated 10-year ASCVD risk (≥20%)"
    return None


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
            ACC,
        )
    pce = ctx.pce_ascvd_10y
    if pce is not None and pce >= HIGH_PCE:
        findings.warn(
            "cac-not-needed-high-risk",
            f"Estimated 10-year ASCVD risk is {pce:.0%} (high, PCE): statin therapy is indicated from "
            "the risk estimate; a calcium score is not needed for that decision.",
            c.cite("REFERENCE §4", c.CHOLESTEROL_2018, c.PCE),
        )
    elif pce is not None and pce < LOW_PCE:
        findings.warn(
            "cac-low-risk",
            f"Estimated 10-year ASCVD risk is {pce:.1%} (low, PCE): calcium scoring is mainly advised "
            "when risk is borderline or intermediate.",
            c.cite("REFERENCE §4", c.PREVENTION_2019, c.PCE),
        )


# --- statin stance per policy (also used to report disagreement) ----------------------------------


def statin_stance(policy: Policy, ctx: Context) -> StatinStance:
    if ctx.record.known_coronary_disease:
        return StatinStance.NOT_APPLICABLE
    if policy.id is PolicyId.LIFESTYLE_FIRST:
        return _lifestyle_first_stance(ctx)
    age = ctx.age_now
    diabetes_40_75 = bool(ctx.record.diabetes) and age is not None and 40 <= age <= 75
    if ctx.agatston >= HIGH_SCORE or ctx.high_percentile or diabetes_40_75 or _indication_without_cac(ctx):
        return StatinStance.FAVOURED
    if ctx.agatston > 0:
        return StatinStance.FAVOURED if age is not None and age >= 55 else StatinStance.INDIVIDUAL
    return StatinStance.INDIVIDUAL if ctx.higher_risk_conditions() else StatinStance.NOT_ADVISED


def _lifestyle_first_stance(ctx: Context) -> StatinStance:
    score = ctx.agatston
    if score < HIGH_SCORE:
        return StatinStance.NOT_ADVISED
    if score < VERY_HIGH_SCORE:
        raised, _ = _apob_crp_status(ctx)
        stances = {
            True: StatinStance.FAVOURED,
            False: StatinStance.NOT_ADVISED,
            None: StatinStance.INDIVIDUAL,
        }
        return stances[raised]
    if ctx.metabolic.off_target(*UNREST_MARKERS):
        return StatinStance.FAVOURED
    _, unmeasured = _apob_crp_status(ctx)
    return StatinStance.INDIVIDUAL if unmeasured else StatinStance.NOT_ADVISED


def _apob_crp_status(ctx: Context) -> tuple[bool | None, list[str]]:
    """(raised, unmeasured): raised is True if ApoB or CRP is off source 002's target, None if that
    cannot be excluded because one was not measured, False if both are on target."""
    measured = {m.marker: m for m in ctx.metabolic.markers if m.marker in ("apob", "hs_crp")}
    unmeasured = [name for name in ("apob", "hs_crp") if name not in measured]
    if any(not m.on_target for m in measured.values()):
        return True, unmeasured
    return (None if unmeasured else False), unmeasured


# --- acc-aha-2018 -----------------------------------------------------------------------------------


def _already(ctx: Context) -> str:
    return " A statin is already recorded." if ctx.on_statin else ""


def _acc_aha(ctx: Context, findings: Findings, follow_up: NextScan) -> None:
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
        _acc_aha_cac_zero(ctx, findings, follow_up)
    elif score >= HIGH_SCORE:
        findings.recommend(
            "statin-cac-100", "CAC ≥100: it is reasonable to start a statin." + _already(ctx), ACC
        )
    else:
        _acc_aha_cac_1_99(ctx, findings)
    _acc_aha_aspirin(ctx, findings)
    _risk_enhancers(ctx, findings)


def _acc_aha_cac_1_99(ctx: Context, findings: Findings) -> None:
    age = ctx.age_now
    percentile = ctx.percentile
    if (
        percentile is not None
        and percentile.estimated
        # within the model's worst error, the official calculator may fall on the other side of 75
        and HIGH_PERCENTILE - WORST_ABSOLUTE_ERROR
        <= percentile.value
        < HIGH_PERCENTILE + WORST_ABSOLUTE_ERROR
    ):
        findings.warn(
            "percentile-near-75th",
            f"The estimated percentile ({percentile.value:.0f}) is close to the 75th, where the statin "
            "statement changes; the official MESA calculator or a reported percentile may place it on "
            "the other side.",
            c.cite("REFERENCE §3", c.MESA_PERCENTILE),
        )
    if ctx.high_percentile:
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
        if percentile is None:
            findings.need("percentile", "statin statement for CAC 1-99 (75th percentile or above)")
        findings.recommend(
            "statin-cac-1-99-under-55",
            "CAC 1-99 under age 55: the guideline favours a statin mainly from age 55; decide from the "
            "overall risk and risk enhancers." + _already(ctx),
            ACC,
        )


def _acc_aha_cac_zero(ctx: Context, findings: Findings, follow_up: NextScan) -> None:
    record = ctx.record
    for name, value in (
        ("diabetes", record.diabetes),
        ("current_smoker", record.current_smoker),
        ("family_history", record.family_history_premature_chd),
    ):
        if value is None:
            findings.need(name, "whether CAC 0 allows withholding a statin")
    exceptions = ctx.higher_risk_conditions()
    indication = _indication_without_cac(ctx)
    if indication:
        findings.recommend(
            "statin-cac-0-indicated",
            f"CAC 0 does not remove the statin indication that comes from {indication}.",
            ACC,
        )
    elif exceptions:
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
        when = (
            f"a repeat scan is suggested around {follow_up.suggested.isoformat()}"
            if follow_up.suggested
            else "the guideline suggests 5-10 years"
        )
        findings.recommend(
            "statin-cac-0-withhold",
            f"CAC 0: it is reasonable to withhold a statin and reassess; {when}.",
            ACC,
        )


def aspirin_considered(policy: Policy, ctx: Context) -> bool:
    """Whether the policy would let low-dose aspirin be considered for primary prevention."""
    if ctx.record.high_bleeding_risk or ctx.record.known_coronary_disease:
        return False
    if policy.id is PolicyId.LIFESTYLE_FIRST:
        return ctx.agatston >= VERY_HIGH_SCORE and bool(ctx.metabolic.off_target(*UNREST_MARKERS))
    age = ctx.age_now
    return ctx.agatston >= HIGH_SCORE and age is not None and ASPIRIN_AGES[0] <= age <= ASPIRIN_AGES[1]


def _bleeding_condition(ctx: Context, findings: Findings, wording: str) -> str:
    if ctx.record.high_bleeding_risk is None:
        findings.need("bleeding_risk", "aspirin consideration")
        return wording
    return ""


def _acc_aha_aspirin(ctx: Context, findings: Findings) -> None:
    if ctx.agatston < HIGH_SCORE:
        return
    source = c.cite("REFERENCE §7", c.PREVENTION_2019)
    age = ctx.age_now
    if age is None:
        findings.need("age", "aspirin consideration (ages 40-70)")
    elif age > ASPIRIN_AGES[1]:
        findings.recommend(
            "aspirin-not-over-70",
            "Aspirin is not routinely recommended for primary prevention above age 70.",
            source,
        )
    elif ctx.record.high_bleeding_risk:
        findings.recommend(
            "aspirin-bleeding-risk",
            "Raised bleeding risk is recorded: aspirin is not advised for primary prevention.",
            source,
        )
    elif aspirin_considered(ACC_AHA_2018, ctx):
        condition = _bleeding_condition(ctx, findings, " if bleeding risk is not raised")
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


# --- lifestyle-first --------------------------------------------------------------------------------


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
            "lf-cac-0", "CAC 0: this policy advises no new medication." + _keeps_treatment(ctx), LIFESTYLE
        )
    elif score < HIGH_SCORE:
        findings.recommend("lf-cac-1-99", "CAC 1-99: sharpen the lifestyle plan.", LIFESTYLE)
    elif score < VERY_HIGH_SCORE:
        _lifestyle_first_100_399(ctx, findings)
    else:
        _lifestyle_first_very_high(ctx, findings)
    findings.recommend(
        "lf-annual-markers",
        "Re-evaluate hs-CRP, ApoB, the triglyceride/HDL ratio, fasting insulin and CAC progression "
        "once a year against their targets.",
        c.cite("REFERENCE §8", c.SOURCE_002),
    )
    _lifestyle_first_aspirin(ctx, findings)


def _lifestyle_first_100_399(ctx: Context, findings: Findings) -> None:
    raised, unmeasured = _apob_crp_status(ctx)
    if raised:
        findings.recommend(
            "lf-cac-100-399-ldl-lowering",
            "CAC 100-399 with raised ApoB or CRP: consider LDL-lowering therapy.",
            LIFESTYLE,
        )
    elif raised is None:
        for name in unmeasured:
            findings.need(name, "LDL-lowering decision at CAC 100-399 (lifestyle-first)")
        names = " and ".join("ApoB" if n == "apob" else "hs-CRP" for n in unmeasured)
        findings.recommend(
            "lf-cac-100-399-measure",
            f"CAC 100-399: measure {names}; LDL lowering is considered when ApoB or CRP is raised.",
            LIFESTYLE,
        )
    else:
        findings.recommend(
            "lf-cac-100-399-lifestyle",
            "CAC 100-399 with ApoB and CRP on target: continue the lifestyle plan; this policy does "
            "not advise starting LDL-lowering medication." + _keeps_treatment(ctx),
            LIFESTYLE,
        )


def _lifestyle_first_very_high(ctx: Context, findings: Findings) -> None:
    metabolic = ctx.metabolic
    unrest = metabolic.off_target(*UNREST_MARKERS)
    _, unmeasured = _apob_crp_status(ctx)
    if unrest:
        names = ", ".join(m.marker for m in unrest)
        findings.recommend(
            "lf-cac-400-active",
            f"CAC ≥400 with metabolic unrest ({names} off target): consider medication for progression "
            "or inflammation.",
            LIFESTYLE,
        )
        return
    for name in unmeasured:
        findings.need(name, "whether CAC ≥400 needs medication (lifestyle-first: CRP, ApoB, progression)")
    if metabolic.state is MetabolicState.ACTIVE:
        names = ", ".join(m.marker for m in metabolic.off_target())
        findings.recommend(
            "lf-cac-400-active-lifestyle",
            f"CAC ≥400 with {names} off target but no raised CRP, ApoB or progression: sharpen the "
            "lifestyle plan; this policy ties medication to inflammation or progression.",
            LIFESTYLE,
        )
    elif metabolic.state is MetabolicState.CALM:
        findings.recommend(
            "lf-cac-400-calm",
            "CAC ≥400, metabolically calm: this policy advises no new medication; continue the lifestyle "
            "plan." + _keeps_treatment(ctx),
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
    if not aspirin_considered(LIFESTYLE_FIRST, ctx):
        reason = (
            "raised bleeding risk"
            if ctx.record.high_bleeding_risk
            else "no active metabolic unrest (CRP, ApoB, progression)"
        )
        findings.recommend("lf-aspirin-avoid", f"Aspirin is not advised under this policy: {reason}.", source)
        return
    condition = _bleeding_condition(ctx, findings, " if bleeding risk is low")
    markers = ", ".join(m.marker for m in ctx.metabolic.off_target(*UNREST_MARKERS))
    findings.recommend(
        "lf-aspirin-consider",
        f"Low-dose aspirin (at most 100 mg/day) may be considered{condition}, with good stomach "
        f"protection: CAC ≥400 with active metabolic unrest ({markers}).",
        source,
    )


# --- shared by both policies ------------------------------------------------------------------------


def _lpa_once(ctx: Context, findings: Findings) -> None:
    if ctx.agatston >= HIGH_SCORE and ctx.record.labs.lpa is None:
        findings.recommend(
            "lpa-measure-once",
            "Lp(a) has not been measured: consider measuring it once; it can reveal an inherited "
            "risk factor.",
            c.cite("REFERENCE §7", c.SOURCE_004),
        )


def _symptoms(ctx: Context, findings: Findings) -> None:
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


def _report_divergence(ctx: Context, findings: Findings, follow_up: NextScan) -> None:
    """REFERENCE §1: where the policies disagree for this patient, say so instead of choosing silently."""
    other = LIFESTYLE_FIRST if ctx.policy.id is PolicyId.ACC_AHA_2018 else ACC_AHA_2018
    follows = f"This result follows {ctx.policy.id.value}."
    statin = {policy.id: statin_stance(policy, ctx) for policy in (ctx.policy, other)}
    if set(statin.values()) == {StatinStance.FAVOURED, StatinStance.NOT_ADVISED}:
        favoured = next(p for p, s in statin.items() if s is StatinStance.FAVOURED)
        against = next(p for p, s in statin.items() if s is StatinStance.NOT_ADVISED)
        findings.warn(
            "policy-divergence-statin",
            f"The policies disagree here: under {favoured.value} a statin would be reasonable, under "
            f"{against.value} no new medication is advised. {follows}",
            c.cite("REFERENCE §1", c.CHOLESTEROL_2018, c.SOURCE_002),
        )
    aspirin = {policy.id: aspirin_considered(policy, ctx) for policy in (ctx.policy, other)}
    if len(set(aspirin.values())) == 2:
        yes = next(p for p, considered in aspirin.items() if considered)
        no = next(p for p, considered in aspirin.items() if not considered)
        findings.warn(
            "policy-divergence-aspirin",
            f"The policies disagree on aspirin: under {yes.value} low-dose aspirin may be considered, under "
            f"{no.value} it is not advised. {follows}",
            c.cite("REFERENCE §1", c.PREVENTION_2019, c.SOURCE_002),
        )
    other_follow_up = next_scan(replace(ctx, policy=other), Findings())
    if other_follow_up.suggested != follow_up.suggested:
        findings.warn(
            "policy-divergence-repeat-scan",
            f"The policies disagree on a repeat scan: under {ctx.policy.id.value}, "
            f"{_describe(follow_up)}; under {other.id.value}, {_describe(other_follow_up)}. {follows}",
            c.cite("REFERENCE §1", "REFERENCE §6", c.SOURCE_000, c.SOURCE_002),
        )


def _describe(follow_up: NextScan) -> str:
    if follow_up.suggested is None:
        return "no routine repeat scan"
    return f"a repeat scan around {follow_up.suggested.isoformat()}"
