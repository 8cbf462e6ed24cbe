"""When a repeat scan makes sense (REFERENCE §6). Never sooner than 3 years after the last scan."""

from __future__ import annotations

from datetime import date

from fhircac.clinical import citations as c
from fhircac.clinical.assessment import Findings, MetabolicState, NextScan
from fhircac.clinical.bands import HIGH_SCORE, VERY_HIGH_SCORE
from fhircac.clinical.context import Context
from fhircac.clinical.policies import PolicyId
from fhircac.clinical.record import DrugClass, add_years

MINIMUM_INTERVAL_YEARS = 3  # source 000: not sooner than 3-5 years
CAC_ZERO_LOW_RISK_YEARS = 5
CAC_GUIDED_AGES = (40, 75)  # the guideline CAC statements concern adults 40-75
INTERMEDIATE_PCE = 0.075  # 2018 guideline: intermediate risk from 7.5 %

SOURCE = c.cite("REFERENCE §6", c.SOURCE_000)


def several_risk_factors(ctx: Context) -> bool:
    """Service definition of "several risk factors" (source 000 gives none): two or more of current
    smoking, family history of premature coronary disease, treated hypertension or SBP ≥140 mmHg,
    HDL <40 mg/dL (the ATP III major risk factors, age aside)."""
    record = ctx.record
    hdl = record.labs.hdl
    sbp = record.systolic_bp
    hypertension = record.taking(DrugClass.ANTIHYPERTENSIVE, ctx.as_of) or (
        sbp is not None and sbp.value >= 140
    )
    factors = [
        bool(record.current_smoker),
        bool(record.family_history_premature_chd),
        hypertension,
        hdl is not None and hdl.value < 40,
    ]
    return sum(factors) >= 2


def next_scan(ctx: Context, findings: Findings) -> NextScan:
    scan_date = ctx.scan.date
    if ctx.record.deceased:
        return NextScan(
            earliest=None,
            suggested=None,
            rationale="No repeat CAC scan: the patient is recorded as deceased.",
            source="fhircac reading rule: deceased patients (README, How FHIR is read)",
        )
    if ctx.record.known_coronary_disease:
        return NextScan(
            earliest=None,
            suggested=None,
            rationale=(
                "No repeat CAC scan: with known coronary disease the score adds nothing "
                "and stents distort it."
            ),
            source=c.cite("REFERENCE §9", c.SOURCE_003, c.SOURCE_004, c.NLA_2021),
        )
    earliest = add_years(scan_date, MINIMUM_INTERVAL_YEARS)
    score = ctx.agatston
    lifestyle_first = ctx.policy.id is PolicyId.LIFESTYLE_FIRST

    if score <= 0:
        return _cac_zero(ctx, findings, earliest)

    if lifestyle_first:
        return _lifestyle_first(ctx, earliest)

    if ctx.on_statin:
        return NextScan(
            earliest,
            None,
            "Not needed to judge the statin: on a statin the score is expected to rise. If a repeat is "
            "considered for another reason, not before 3 years.",
            c.cite(SOURCE, c.SOURCE_004),
        )
    if score < HIGH_SCORE:
        return NextScan(
            earliest,
            add_years(scan_date, 5),
            "CAC 1-99: a repeat at 3-5 years only if the result would change management.",
            SOURCE,
        )
    if score < VERY_HIGH_SCORE:
        return NextScan(
            earliest,
            None,
            "CAC 100-399: repeat scanning is not routine; if considered, not before 3-5 years.",
            SOURCE,
        )
    return NextScan(
        earliest,
        None,
        "CAC ≥400: a repeat scan adds little; manage the risk instead.",
        SOURCE,
    )


def _lifestyle_first(ctx: Context, earliest: date) -> NextScan:
    source = c.cite("REFERENCE §6", c.SOURCE_002, c.SOURCE_000)
    if ctx.agatston < HIGH_SCORE:
        return NextScan(earliest, earliest, "CAC 1-99: check again in 3 years.", source)
    if ctx.metabolic.state is MetabolicState.CALM:
        return NextScan(
            earliest, earliest, "Metabolically calm: check again in 3-5 years (suggested at 3).", source
        )
    return NextScan(
        earliest,
        None,
        "No repeat scan is planned for now: under this policy a repeat at 3-5 years is for a "
        "metabolically calm patient, and the markers are "
        + (
            "off target"
            if ctx.metabolic.state is MetabolicState.ACTIVE
            else "not known to be calm (that needs hs-CRP and ApoB measured within a year)"
        )
        + "; re-evaluate the blood markers first.",
        source,
    )


def _cac_zero(ctx: Context, findings: Findings, earliest: date) -> NextScan:
    """CAC 0: 3 years with diabetes (or possible diabetes) or several risk factors, 3-5 years with a
    strong family history or intermediate risk, otherwise 5 years; none under 40 with few risk factors."""
    record = ctx.record
    scan_date = ctx.scan.date
    lifestyle_first = ctx.policy.id is PolicyId.LIFESTYLE_FIRST
    if record.diabetes is None:
        findings.need("diabetes", "repeat-scan interval after CAC 0")
    if ctx.diabetes_possible_or_known or several_risk_factors(ctx):
        which = "possible diabetes (HbA1c ≥6.5%)" if ctx.possible_diabetes else "diabetes"
        return NextScan(
            earliest,
            earliest,
            f"CAC 0 with {which} or several risk factors: repeat at 3 years, where repeat scanning may be "
            "most useful (conversion to a positive score comes sooner).",
            c.cite(SOURCE, c.WARRANTY),
        )
    pce = ctx.pce_ascvd_10y
    if record.family_history_premature_chd or (pce is not None and pce >= INTERMEDIATE_PCE):
        reason = (
            "a family history of premature coronary disease"
            if record.family_history_premature_chd
            else "intermediate estimated risk"
        )
        return NextScan(
            earliest,
            earliest,
            f"CAC 0 with {reason}: repeat in 3-5 years (suggested at 3, the sooner end).",
            c.cite(SOURCE, c.WARRANTY, c.NLA_2021),
        )
    age = ctx.age_now
    if age is not None and age < CAC_GUIDED_AGES[0]:
        return NextScan(
            earliest,
            None,
            "CAC 0 under 40 with few risk factors: no routine repeat scan; reassess risk from age 40, or "
            "sooner if risk factors change.",
            c.cite(SOURCE, c.NLA_2021),
        )
    five_years = add_years(scan_date, CAC_ZERO_LOW_RISK_YEARS)
    rationale = (
        "CAC 0 with few risk factors: repeat in 5 years."
        if lifestyle_first
        else "CAC 0 with few risk factors: reassess in 5-10 years."
    )
    source = c.cite(SOURCE, c.SOURCE_002 if lifestyle_first else c.CHOLESTEROL_2018)
    return NextScan(five_years, five_years, rationale, source)
