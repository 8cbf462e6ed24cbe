"""Therapy and work-up to consider (REFERENCE §7, §9), per policy, with the policies' disagreements
(statin, aspirin, repeat scan) reported rather than hidden (REFERENCE §1).

Wording follows the strength of the source: the guideline says "reasonable" or "may be
considered", so the output does too. Nothing here is an order. Repeat-scan timing is quoted
from the one follow-up result, so an output never gives two intervals. Each statement is tagged
with the claims it makes (``Claim``); the guardrails (``guardrails.py``) then hold every policy to
REFERENCE §14, and disagreement between policies is read from their guarded statements.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from fhircac.clinical import citations as c
from fhircac.clinical.assessment import Claim, Findings, MetabolicState, NextScan, Statement
from fhircac.clinical.bands import HIGH_SCORE, VERY_HIGH_SCORE
from fhircac.clinical.context import HIGH_PERCENTILE, Context
from fhircac.clinical.followup import CAC_GUIDED_AGES
from fhircac.clinical.guardrails import DIABETES_AGES, HIGH_PCE, SEVERE_LDL_MG_DL
from fhircac.clinical.metabolic import CALM_NEEDS, UNREST_MARKERS, marker_names
from fhircac.clinical.percentile import WORST_ABSOLUTE_ERROR
from fhircac.clinical.policies import Policy, PolicyId
from fhircac.clinical.record import DrugClass
from fhircac.clinical.units import NMOL_L

ACC = c.cite("REFERENCE §7", c.CHOLESTEROL_2018)
LIFESTYLE = c.cite("REFERENCE §7", c.SOURCE_002)
LOW_PCE = 0.05
STATIN_DECISION_AGE = 55  # CAC 1-99: the guideline favours a statin from 55
CAC_DRS_A3 = 300.0  # CAC-DRS A3 (≥300): high-intensity statin


class StatinStance(StrEnum):
    """What a policy's (guarded) statements say about a statin; used to report disagreement."""

    INDICATED = "indicated"
    FAVOURED = "favoured"
    INDIVIDUAL = "individual"
    NOT_ADVISED = "not-advised"


def therapy(ctx: Context, findings: Findings, follow_up: NextScan) -> None:
    if ctx.record.known_coronary_disease:
        _known_coronary_disease(findings)
        return
    if ctx.record.use_unknown(DrugClass.STATIN):
        findings.need(
            "statin", "whether the statin statements concern starting a statin or one already taken"
        )
    _appropriateness(ctx, findings)
    if ctx.policy.id is PolicyId.LIFESTYLE_FIRST:
        _lifestyle_first(ctx, findings, follow_up)
    else:
        _acc_aha(ctx, findings, follow_up)
    _lpa_once(ctx, findings)


def _known_coronary_disease(findings: Findings) -> None:
    source = c.cite("REFERENCE §9", c.SOURCE_003, c.NLA_2021)
    findings.warn(
        "known-coronary-disease",
        "Known atherosclerotic disease (heart attack, stent, bypass, ischaemic stroke or TIA, or "
        "peripheral artery disease) is recorded: the calcium score adds "
        "nothing to the assessment and stents distort it.",
        source,
    )
    findings.recommend(
        "secondary-prevention",
        "Manage as established atherosclerotic disease (secondary prevention); the calcium score does not "
        "guide this therapy.",
        source,
        Claim.STATIN_INDICATED,
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
            Claim.STATIN_INDICATED,
        )
    pce = ctx.pce_ascvd_10y
    if pce is not None and pce >= HIGH_PCE:
        findings.warn(
            "cac-not-needed-high-risk",
            f"Estimated 10-year ASCVD risk is {pce:.0%} (high, PCE): statin therapy is indicated from "
            "the risk estimate; a calcium score is not needed for that decision.",
            c.cite("REFERENCE §4", c.CHOLESTEROL_2018, c.PCE),
            Claim.STATIN_INDICATED,
        )
    elif pce is not None and pce < LOW_PCE:
        findings.warn(
            "cac-low-risk",
            f"Estimated 10-year ASCVD risk is {pce:.1%} (low, PCE): calcium scoring is mainly advised "
            "when risk is borderline or intermediate.",
            c.cite("REFERENCE §4", c.PREVENTION_2019, c.PCE),
        )


# --- what the statements say, for disagreement between policies -----------------------------------


def statin_stance(statements: Iterable[Statement]) -> StatinStance:
    claims = {claim for statement in statements for claim in statement.claims}
    if Claim.STATIN_INDICATED in claims:
        return StatinStance.INDICATED
    if Claim.STATIN_REASONABLE in claims:
        return StatinStance.FAVOURED
    if Claim.NO_NEW_MEDICATION in claims:
        return StatinStance.NOT_ADVISED
    return StatinStance.INDIVIDUAL


def _apob_crp_status(ctx: Context) -> tuple[bool | None, list[str]]:
    """(raised, unmeasured): raised is True if ApoB or CRP is off source 002's target, None if that
    cannot be excluded because one was not measured, False if both are on target."""
    measured = {m.marker: m for m in ctx.metabolic.markers if m.marker in CALM_NEEDS}
    unmeasured = [name for name in CALM_NEEDS if name not in measured]
    if any(not m.on_target for m in measured.values()):
        return True, unmeasured
    return (None if unmeasured else False), unmeasured


# --- acc-aha-2018 -----------------------------------------------------------------------------------


def _statin_reasonable(ctx: Context, reason: str, intensity: str = "") -> str:
    """Worded from what is recorded: "start" without a statin, "continue" on one (never "start… a
    statin is already recorded")."""
    if ctx.on_statin:
        return (
            f"{reason}: statin therapy is reasonable{intensity}; a statin is already recorded, so continue "
            "it and review its dose and intensity."
        )
    return f"{reason}: it is reasonable to start a statin{intensity}."


def _intensity(score: float) -> str:
    if score >= CAC_DRS_A3:
        return " (CAC-DRS A3: high intensity)"
    return " (CAC-DRS A2: moderate to high intensity)"


def _on_statin_note(ctx: Context) -> str:
    return " A statin is already recorded: continue it." if ctx.on_statin else ""


def _on_statin_review(ctx: Context) -> str:
    """Where lifestyle-first considers medication for someone already on a statin: "continue", and
    the dose is the treating clinician's (source 002 does not advise changing existing treatment)."""
    if not ctx.on_statin:
        return ""
    return " A statin is already recorded: continue it, and review its dose with the treating clinician."


def _acc_aha(ctx: Context, findings: Findings, follow_up: NextScan) -> None:
    record = ctx.record
    score = ctx.agatston
    age = ctx.age_now
    diabetes_indication = (
        bool(record.diabetes) and age is not None and DIABETES_AGES[0] <= age <= DIABETES_AGES[1]
    )
    if diabetes_indication:
        findings.recommend(
            "statin-diabetes",
            "Diabetes at age 40-75: the guideline recommends at least a moderate-intensity statin "
            "(Class I), whatever the calcium score." + _on_statin_note(ctx),
            ACC,
            Claim.STATIN_INDICATED,
        )
    if score <= 0:
        _acc_aha_cac_zero(ctx, findings, follow_up, diabetes_indication)
    elif score >= HIGH_SCORE:
        findings.recommend(
            "statin-cac-100",
            _statin_reasonable(ctx, "CAC ≥100", _intensity(score)),
            c.cite(ACC, c.CAC_DRS),
            Claim.STATIN_REASONABLE,
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
        and (age is None or age < STATIN_DECISION_AGE)  # from 55 the statement is the same either side
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
            _statin_reasonable(ctx, "CAC at or above the 75th percentile for age, sex and race"),
            c.cite(ACC, c.MESA_PERCENTILE),
            Claim.STATIN_REASONABLE,
        )
    elif age is not None and age >= STATIN_DECISION_AGE:
        findings.recommend(
            "statin-cac-1-99",
            _statin_reasonable(ctx, "CAC 1-99 at age 55 or over"),
            ACC,
            Claim.STATIN_REASONABLE,
        )
    else:
        if age is None:
            findings.need("age", "statin statement for CAC 1-99 (age 55 or over)")
        if percentile is None:
            findings.need("percentile", "statin statement for CAC 1-99 (75th percentile or above)")
        findings.recommend(
            "statin-cac-1-99-under-55",
            "CAC 1-99 under age 55: the guideline favours a statin mainly from age 55; decide from the "
            "overall risk and risk enhancers." + _on_statin_note(ctx),
            ACC,
        )


def _acc_aha_cac_zero(
    ctx: Context, findings: Findings, follow_up: NextScan, diabetes_indication: bool
) -> None:
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
            f"CAC 0 does not remove the statin indication (Class I) that comes from {indication}."
            + _on_statin_note(ctx),
            ACC,
            Claim.STATIN_INDICATED,
        )
    elif diabetes_indication:
        pass  # statin-diabetes already states the Class I indication; no second, weaker statement
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
            f"CAC 0: it is reasonable to withhold a statin and reassess (this assumes LDL cholesterol "
            f"below 190 mg/dL); {when}.",
            ACC,
            Claim.NO_NEW_MEDICATION,
        )


ASPIRIN_SOURCE = c.cite("REFERENCE §7", c.PREVENTION_2019, c.CAC_DRS, c.USPSTF_2022)


def _acc_aha_aspirin(ctx: Context, findings: Findings) -> None:
    """The policy's own criterion (CAC ≥100); the guideline's limits (ages 40-70, raised or unknown
    bleeding risk, symptoms) are the guardrails' (``guardrails.aspirin``), the same for every policy."""
    if ctx.agatston < HIGH_SCORE:
        return
    findings.recommend(
        "aspirin-may-be-considered",
        "Low-dose aspirin may be considered for primary prevention (age 40-70, CAC ≥100); "
        "it is not routine. The CAC ≥100 threshold is this service's choice (CAC-DRS 2018 suggests "
        "it): the 2019 guideline names no CAC cut-off, and USPSTF 2022 advises against starting "
        "aspirin at 60 or over.",
        ASPIRIN_SOURCE,
        Claim.ASPIRIN_CONSIDERED,
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
    if labs.ldl is not None and 160 <= labs.ldl.value < SEVERE_LDL_MG_DL:
        present.append(f"LDL cholesterol {labs.ldl.value:g} mg/dL (160-189)")
    if ctx.record.family_history_premature_chd:
        present.append("family history of premature coronary disease")
    if present:
        findings.recommend(
            "risk-enhancers",
            f"Risk enhancers present: {'; '.join(present)}. They weigh toward statin therapy when risk "
            "is borderline or intermediate. Not assessed (fhircac does not read them): metabolic "
            "syndrome, chronic kidney disease, chronic inflammatory disease, South Asian ancestry, "
            "ankle-brachial index, pregnancy-related conditions.",
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


def _lifestyle_first(ctx: Context, findings: Findings, follow_up: NextScan) -> None:
    score = ctx.agatston
    if score <= 0:
        findings.recommend(
            "lf-cac-0",
            "CAC 0: this policy advises no new medication." + _keeps_treatment(ctx),
            LIFESTYLE,
            Claim.NO_NEW_MEDICATION,
        )
    elif score < HIGH_SCORE:
        findings.recommend(
            "lf-cac-1-99",
            "CAC 1-99: sharpen the lifestyle plan; this policy adds no medication at this score."
            + _keeps_treatment(ctx),
            LIFESTYLE,
            Claim.NO_NEW_MEDICATION,
        )
    elif score < VERY_HIGH_SCORE:
        _lifestyle_first_100_399(ctx, findings)
    else:
        _lifestyle_first_very_high(ctx, findings)
    next_scan_text = (
        f"at the next scan (not before {follow_up.earliest.isoformat()})"
        if follow_up.earliest is not None
        else "only at a repeat scan, at least 3 years after the last one"
    )
    findings.recommend(
        "lf-annual-markers",
        "Re-evaluate hs-CRP, ApoB, the triglyceride/HDL ratio and fasting insulin once a year against "
        f"their targets; CAC progression is judged only {next_scan_text}, never by a yearly scan.",
        c.cite("REFERENCE §8", c.SOURCE_002, c.SOURCE_000),
    )
    _lifestyle_first_aspirin(ctx, findings)


def _lifestyle_first_100_399(ctx: Context, findings: Findings) -> None:
    raised, unmeasured = _apob_crp_status(ctx)
    if raised:
        findings.recommend(
            "lf-cac-100-399-ldl-lowering",
            "CAC 100-399 with raised ApoB or CRP: consider LDL-lowering therapy." + _on_statin_review(ctx),
            LIFESTYLE,
            Claim.STATIN_REASONABLE,
        )
    elif raised is None:
        for name in unmeasured:
            findings.need(name, "LDL-lowering decision at CAC 100-399 (lifestyle-first)")
        findings.recommend(
            "lf-cac-100-399-measure",
            f"CAC 100-399: measure {marker_names(unmeasured).replace(', ', ' and ')}; LDL lowering is "
            "considered when ApoB or CRP is raised.",
            LIFESTYLE,
        )
    else:
        findings.recommend(
            "lf-cac-100-399-lifestyle",
            "CAC 100-399 with ApoB and CRP on target: continue the lifestyle plan; this policy does "
            "not advise starting LDL-lowering medication." + _keeps_treatment(ctx),
            LIFESTYLE,
            Claim.NO_NEW_MEDICATION,
        )


def _lifestyle_first_very_high(ctx: Context, findings: Findings) -> None:
    metabolic = ctx.metabolic
    unrest = metabolic.off_target(*UNREST_MARKERS)
    if unrest:
        findings.recommend(
            "lf-cac-400-active",
            f"CAC ≥400 with metabolic unrest ({marker_names([m.marker for m in unrest])} off target): "
            "consider medication for progression or inflammation." + _on_statin_review(ctx),
            LIFESTYLE,
            Claim.STATIN_REASONABLE,
        )
        return
    if metabolic.state is not MetabolicState.CALM and metabolic.state is not MetabolicState.ACTIVE:
        purpose = "whether CAC ≥400 needs medication (lifestyle-first: CRP, ApoB, progression)"
        for name in CALM_NEEDS:
            findings.need(name, purpose)
        findings.recommend(
            "lf-cac-400-measure",
            "CAC ≥400 and the metabolic state is not known (hs-CRP and ApoB measured within a year are "
            "needed): measure hs-CRP, ApoB, triglycerides/HDL and fasting insulin before this policy "
            "decides on medication.",
            LIFESTYLE,
        )
        return
    _, unmeasured = _apob_crp_status(ctx)
    if unmeasured:  # active from another marker, but the deciding ones are not measured
        for name in unmeasured:
            findings.need(name, "whether CAC ≥400 needs medication (lifestyle-first: CRP, ApoB, progression)")
        names = marker_names([m.marker for m in metabolic.off_target()])
        findings.recommend(
            "lf-cac-400-measure",
            f"CAC ≥400 with {names} off target: measure {marker_names(unmeasured)} before this policy "
            "decides on medication (it ties medication to inflammation, ApoB or progression).",
            LIFESTYLE,
        )
    elif metabolic.state is MetabolicState.ACTIVE:
        names = marker_names([m.marker for m in metabolic.off_target()])
        findings.recommend(
            "lf-cac-400-active-lifestyle",
            f"CAC ≥400 with {names} off target but hs-CRP, ApoB and progression on target: sharpen the "
            "lifestyle plan; this policy adds no medication without inflammation or progression."
            + _keeps_treatment(ctx),
            LIFESTYLE,
            Claim.NO_NEW_MEDICATION,
        )
    else:
        findings.recommend(
            "lf-cac-400-calm",
            "CAC ≥400, metabolically calm (hs-CRP and ApoB on target): this policy advises no new "
            "medication; continue the lifestyle plan." + _keeps_treatment(ctx),
            LIFESTYLE,
            Claim.NO_NEW_MEDICATION,
        )


def _lifestyle_first_aspirin(ctx: Context, findings: Findings) -> None:
    """Source 002's aspirin rule as written; the guardrails then apply the guideline's limits
    (age over 70, raised or unknown bleeding risk, symptoms) that source 002 does not state in full."""
    if ctx.agatston < VERY_HIGH_SCORE:
        return
    source = c.cite("REFERENCE §7", c.SOURCE_002)
    unrest = ctx.metabolic.off_target(*UNREST_MARKERS)
    if ctx.record.high_bleeding_risk or not unrest:
        _, unmeasured = _apob_crp_status(ctx)
        if ctx.record.high_bleeding_risk:
            reason = "raised bleeding risk"
        elif unmeasured:
            reason = (
                f"metabolic unrest is not assessable ({marker_names(unmeasured)} not measured), and the "
                "policy needs active unrest"
            )
        else:
            reason = "no active metabolic unrest (hs-CRP, ApoB and progression on target or not raised)"
        findings.recommend(
            "lf-aspirin-avoid",
            f"Aspirin is not advised under this policy: {reason}.",
            source,
            Claim.ASPIRIN_NOT_ADVISED,
        )
        return
    findings.recommend(
        "lf-aspirin-consider",
        "Low-dose aspirin (at most 100 mg/day) may be considered, with good stomach "
        f"protection: CAC ≥400 with active metabolic unrest ({marker_names([m.marker for m in unrest])}).",
        source,
        Claim.ASPIRIN_CONSIDERED,
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


STANCE_WORDS = {
    StatinStance.INDICATED: "statin therapy is recommended (a Class I indication)",
    StatinStance.FAVOURED: "a statin would be reasonable",
    StatinStance.INDIVIDUAL: "the statin decision is left to the overall risk or further measurement",
    StatinStance.NOT_ADVISED: "no new medication is advised",
}


def report_divergence(
    ctx: Context,
    findings: Findings,
    own: tuple[tuple[Statement, ...], NextScan],
    others: dict[Policy, tuple[tuple[Statement, ...], NextScan]],
) -> None:
    """REFERENCE §1: where the policies disagree for this patient, say so instead of choosing silently.

    ``own`` and ``others`` are each policy's guarded recommendations and repeat scan, so a
    disagreement is read from what each policy would actually say (never from a second model of it).
    """
    follows = f"This result follows {ctx.policy.id.value}."
    statements, follow_up = own
    mine = statin_stance(statements)
    my_aspirin = any(Claim.ASPIRIN_CONSIDERED in s.claims for s in statements)
    for other, (other_statements, other_follow_up) in others.items():
        theirs = statin_stance(other_statements)
        if theirs is not mine:
            findings.warn(
                "policy-divergence-statin",
                f"The policies disagree here: under {ctx.policy.id.value} {STANCE_WORDS[mine]}; under "
                f"{other.id.value} {STANCE_WORDS[theirs]}. {follows}",
                c.cite("REFERENCE §1", c.CHOLESTEROL_2018, c.SOURCE_002),
            )
        their_aspirin = any(Claim.ASPIRIN_CONSIDERED in s.claims for s in other_statements)
        if their_aspirin is not my_aspirin:
            yes, no = (ctx.policy, other) if my_aspirin else (other, ctx.policy)
            findings.warn(
                "policy-divergence-aspirin",
                f"The policies disagree on aspirin: under {yes.id.value} low-dose aspirin may be considered, "
                f"under {no.id.value} it is not advised or not yet assessable. {follows}",
                c.cite("REFERENCE §1", c.PREVENTION_2019, c.SOURCE_002),
            )
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
