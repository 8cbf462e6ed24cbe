"""The one entry point of the clinical core: ``assess(record, policy, as_of) -> Assessment``."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from fhircac.clinical import citations as c
from fhircac.clinical import guardrails
from fhircac.clinical import percentile as mesa_percentile
from fhircac.clinical.assessment import (
    Assessment,
    Findings,
    NextScan,
    PercentileResult,
    Progression,
    RiskResult,
    ScoreResult,
)
from fhircac.clinical.bands import HIGH_SCORE, arterial_age, cac_drs, cac_stage, fine_band, primary_band
from fhircac.clinical.context import Context
from fhircac.clinical.followup import next_scan
from fhircac.clinical.guardrails import Outcome
from fhircac.clinical.lifestyle import lifestyle_plan
from fhircac.clinical.metabolic import MARKER_MAX_AGE, assess_metabolic
from fhircac.clinical.narrative import explain
from fhircac.clinical.policies import DEFAULT_POLICY, POLICIES, Policy
from fhircac.clinical.progression import compare_scans
from fhircac.clinical.record import CacScan, DrugClass, PatientRecord, Race
from fhircac.clinical.risk import NotComputable, RiskFactors, mesa_chd_risk, pce_ascvd_risk, pce_band
from fhircac.clinical.therapy import report_divergence, therapy
from fhircac.clinical.validate import validate

ARTERIAL_AGE_RANGE = (45.0, 84.0)  # McClelland 2009 derived the formula in MESA, ages 45-84
STATIN_SHARE_FOR_CONTEXT = 0.5  # a statin "covered the interval" when taken at least half of it


def assess(record: PatientRecord, policy: Policy = DEFAULT_POLICY, *, as_of: date) -> Assessment:
    """Interpret the latest CAC scan of ``record`` under ``policy`` as of ``as_of``.

    Raises ``InvalidInput`` for impossible input. Anything merely missing or out of a formula's
    range degrades the result and is reported in ``missing`` or ``warnings``.
    """
    validate(record, as_of)
    findings = Findings()
    scans = record.scans_by_date()
    scan = scans[-1]
    age_at_scan = record.age.at(scan.date) if record.age else None
    age_now = record.age.at(as_of) if record.age else None
    if record.age is None:
        findings.need("age", "percentile, risk equations and age-based statements")

    percentile = _percentile(record, scan, age_at_scan, findings)
    progression = _progression(record, scans)
    uses_metabolic_state = (
        policy.uses_metabolic_state and not record.known_coronary_disease and scan.agatston >= HIGH_SCORE
    )
    metabolic = assess_metabolic(
        record.labs, progression, findings, report_missing=uses_metabolic_state, as_of=as_of
    )
    risk = _risk(record, scan, age_at_scan, findings)
    score = ScoreResult(
        agatston=scan.agatston,
        date=scan.date,
        band=primary_band(scan.agatston),
        fine_band=fine_band(scan.agatston),
        cac_drs=cac_drs(scan.agatston, scan.vessel_count),
        vessels_with_calcium=scan.vessel_count,
        stage=cac_stage(scan.agatston, percentile.value if percentile else None),
        arterial_age=_arterial_age(record, scan, findings),
    )
    ctx = Context(
        record=record,
        policy=policy,
        as_of=as_of,
        scan=scan,
        age_at_scan=age_at_scan,
        age_now=age_now,
        percentile=percentile,
        progression=progression,
        metabolic=metabolic,
        pce_ascvd_10y=risk.pce_ascvd_10y,
    )
    outcome = policy_outcome(ctx, findings)
    findings.recommendations[:] = outcome.recommendations
    findings.warnings[:] = outcome.warnings
    if not record.known_coronary_disease:
        others = {
            other: policy_outcome(replace(ctx, policy=other), Findings())
            for other in POLICIES.values()
            if other.id is not policy.id
        }
        report_divergence(
            ctx,
            findings,
            (outcome.recommendations, outcome.next_scan),
            {other: (o.recommendations, o.next_scan) for other, o in others.items()},
        )
    _interpretation_cautions(ctx, findings, outcome.next_scan)
    return Assessment(
        patient_id=record.patient_id,
        as_of=as_of,
        policy=policy,
        score=score,
        percentile=percentile,
        risk=risk,
        progression=progression,
        next_scan=outcome.next_scan,
        metabolic=metabolic,
        recommendations=tuple(findings.recommendations),
        warnings=tuple(findings.warnings),
        lifestyle=outcome.lifestyle,
        explanation=explain(
            ctx,
            outcome.next_scan,
            risk.mesa_chd_10y_with_cac,
            (*findings.recommendations, *findings.warnings),
        ),
        missing=findings.missing_inputs(),
        symptoms_first=ctx.symptomatic,
    )


def policy_outcome(ctx: Context, findings: Findings) -> Outcome:
    """The policy's rules, then the guardrails every policy passes through (REFERENCE §14)."""
    follow_up = next_scan(ctx, findings)
    therapy(ctx, findings, follow_up)
    draft = Outcome(
        recommendations=tuple(findings.recommendations),
        warnings=tuple(findings.warnings),
        lifestyle=lifestyle_plan(ctx),
        next_scan=follow_up,
    )
    return guardrails.apply(ctx, draft, findings)


def _arterial_age(record: PatientRecord, scan: CacScan, findings: Findings) -> float | None:
    """Only inside the range the formula was derived in, and not with known coronary disease."""
    if scan.agatston <= 0 or record.known_coronary_disease:
        return None
    value = round(arterial_age(scan.agatston), 1)
    low, high = ARTERIAL_AGE_RANGE
    if not low <= value <= high:
        bound = f"above {high:g}" if value > high else f"below {low:g}"
        findings.warn(
            "arterial-age-not-shown",
            f"Arterial age not given: this score maps {bound}, outside the ages 45-84 the formula was "
            "derived in.",
            c.cite("REFERENCE §3", "REFERENCE §14", c.ARTERIAL_AGE),
        )
        return None
    return value


def _percentile(
    record: PatientRecord, scan: CacScan, age: float | None, findings: Findings
) -> PercentileResult | None:
    """A percentile reported with the scan wins; otherwise our MESA model, labelled estimated. Neither
    with known coronary disease: the MESA reference population was free of it (REFERENCE §14.9)."""
    if record.known_coronary_disease:
        findings.warn(
            "percentile-not-applicable",
            "Percentile not given: the MESA reference population was free of known coronary disease.",
            c.cite("REFERENCE §3", "REFERENCE §14", c.MESA_PERCENTILE),
        )
        return None
    if scan.reported_percentile is not None:
        return PercentileResult(scan.reported_percentile, estimated=False, reference="reported")
    purpose = "MESA percentile"
    if record.sex is None:
        findings.need("sex", purpose)
    if record.race is None:
        findings.need("race", purpose)
    if age is None or record.sex is None or record.race is None:
        return None
    reason = None
    if record.race not in mesa_percentile.MESA_RACES:
        reason = "MESA reference values exist for White, Black, Hispanic and Chinese adults only"
    elif not mesa_percentile.MESA_MIN_AGE <= int(age) <= mesa_percentile.MESA_MAX_AGE:
        reason = f"MESA reference values cover ages 45-84, not {int(age)}"
    if reason:
        findings.warn(
            "percentile-not-computed",
            f"Percentile not computed: {reason}.",
            c.cite("REFERENCE §3", c.MESA_PERCENTILE),
        )
        return None
    value = mesa_percentile.estimate_percentile(age, record.sex, record.race, scan.agatston)
    return PercentileResult(float(value), estimated=True, reference="MESA")


def _progression(record: PatientRecord, scans: tuple[CacScan, ...]) -> Progression | None:
    if len(scans) < 2:
        return None
    prior, current = scans[-2], scans[-1]
    # The statin context needs a statin over (most of) the interval: one begun just before the
    # second scan cannot explain the rise.
    share = record.share_taking(DrugClass.STATIN, prior.date, current.date)
    on_statin: bool | None = share >= STATIN_SHARE_FOR_CONTEXT
    if not on_statin and record.use_unknown(DrugClass.STATIN):
        on_statin = None
    return compare_scans(prior, current, on_statin)


def _risk(record: PatientRecord, scan: CacScan, age: float | None, findings: Findings) -> RiskResult:
    """Risk equations use the covariates at the time of the scan they interpret."""
    if record.known_coronary_disease:
        findings.warn(
            "risk-equations-not-applicable",
            "10-year risk equations (MESA, PCE) are for people without known coronary disease; not computed.",
            c.cite("REFERENCE §4", "REFERENCE §9", c.MESA_RISK, c.PCE),
        )
        return RiskResult(None, None, None, None)
    labs = record.labs
    needed = {
        "age": age,
        "sex": record.sex,
        "race": record.race,
        "total_cholesterol": labs.total_cholesterol,
        "hdl": labs.hdl,
        "systolic_bp": record.systolic_bp,
        "diabetes": record.diabetes,
        "current_smoker": record.current_smoker,
    }
    absent = [name for name, value in needed.items() if value is None]
    if record.use_unknown(DrugClass.ANTIHYPERTENSIVE):
        absent.append("bp_treated")
    for name in absent:
        findings.need(name, "MESA CHD risk and PCE ASCVD risk")
    lipid_lowering_unknown = record.use_unknown(DrugClass.STATIN) or record.use_unknown(
        DrugClass.OTHER_LIPID_LOWERING
    )
    if lipid_lowering_unknown:
        findings.need("lipid_lowering", "MESA CHD risk")
    if record.family_history_premature_chd is None:
        findings.need("family_history", "MESA CHD risk")
    if absent:
        return RiskResult(None, None, None, None)
    assert age is not None and record.sex and record.race and labs.total_cholesterol and labs.hdl
    assert record.systolic_bp is not None
    factors = RiskFactors(
        age=age,
        sex=record.sex,
        race=record.race,
        total_cholesterol=labs.total_cholesterol.value,
        hdl=labs.hdl.value,
        systolic_bp=record.systolic_bp.value,
        bp_treated=record.taking(DrugClass.ANTIHYPERTENSIVE, scan.date),
        diabetes=bool(record.diabetes),
        current_smoker=bool(record.current_smoker),
    )
    mesa_with = mesa_without = None
    if record.family_history_premature_chd is not None and not lipid_lowering_unknown:
        lipid_lowering = record.taking(DrugClass.STATIN, scan.date) or record.taking(
            DrugClass.OTHER_LIPID_LOWERING, scan.date
        )
        try:
            options = {
                "lipid_lowering": lipid_lowering,
                "family_history": record.family_history_premature_chd,
            }
            mesa_with = mesa_chd_risk(factors, agatston=scan.agatston, **options)
            mesa_without = mesa_chd_risk(factors, agatston=None, **options)
        except NotComputable as why:
            findings.warn(
                "mesa-risk-not-computed",
                f"MESA CHD risk not computed: {why}.",
                c.cite("REFERENCE §4", c.MESA_RISK),
            )
    pce = None
    try:
        pce = pce_ascvd_risk(factors)
    except NotComputable as why:
        findings.warn(
            "pce-not-computed", f"PCE ASCVD risk not computed: {why}.", c.cite("REFERENCE §4", c.PCE)
        )
    if pce is not None:
        _pce_caveats(record, scan, findings)
    return RiskResult(mesa_with, mesa_without, pce, pce_band(pce) if pce is not None else None)


def _pce_caveats(record: PatientRecord, scan: CacScan, findings: Findings) -> None:
    """What the PCE figure cannot say for this patient (2018 guideline)."""
    source = c.cite("REFERENCE §4", c.PCE, c.CHOLESTEROL_2018)
    if record.race not in (Race.WHITE, Race.BLACK):
        overestimate = (
            "; they may overestimate risk in East Asian and Hispanic adults"
            if record.race in (Race.CHINESE, Race.HISPANIC)
            else ""
        )
        findings.warn(
            "pce-white-equations",
            f"The PCE have equations for White and Black adults only: the White equations were used "
            f"here{overestimate}.",
            source,
        )
    if record.taking(DrugClass.STATIN, scan.date):
        findings.warn(
            "pce-treated-lipids",
            "A statin is recorded: the PCE estimate untreated risk, but here they use cholesterol values "
            "measured on treatment.",
            source,
        )


def _interpretation_cautions(ctx: Context, findings: Findings, follow_up: NextScan) -> None:
    """Cautions that keep a reader from over-reading the number (REFERENCE §2, §8, §9)."""
    if ctx.record.coronary_history_unknown:
        findings.need("known_cad", "whether the calcium score applies at all (known coronary disease)")
    if ctx.record.known_coronary_disease:
        return
    if follow_up.suggested is not None and follow_up.suggested <= ctx.as_of:
        findings.warn(
            "repeat-interval-passed",
            f"The latest scan is from {ctx.scan.date.isoformat()}; the suggested repeat date "
            f"({follow_up.suggested.isoformat()}) has passed, so this result may be out of date.",
            follow_up.source,
        )
    if ctx.agatston <= 0:
        findings.warn(
            "cac-0-not-zero-risk",
            "CAC 0 is not zero risk: soft, non-calcified plaque does not show on the scan.",
            c.cite("REFERENCE §9", c.SOURCE_003, c.SOURCE_004),
        )
    elif ctx.agatston >= HIGH_SCORE:
        number = (
            "the score itself is not an emergency, but the symptoms are evaluated first"
            if ctx.symptomatic
            else "a high score is a risk signal to manage, not an emergency"
        )
        findings.recommend(
            "explain-result",
            f"Explain the result in a conversation: {number}, and it does not mean the arteries are blocked.",
            c.cite("REFERENCE §2", "REFERENCE §11", c.SOURCE_002, c.SOURCE_004),
        )
    labs = ctx.record.labs
    stale = [
        name
        for name, measurement in (
            ("hs_crp", labs.hs_crp),
            ("apob", labs.apob),
            ("triglycerides", labs.triglycerides),
            ("hdl", labs.hdl),
            ("fasting_insulin", labs.fasting_insulin),
        )
        if measurement is not None
        and measurement.date is not None
        and ctx.as_of - measurement.date > MARKER_MAX_AGE
    ]
    if stale:
        findings.warn(
            "markers-older-than-a-year",
            f"Measured more than a year ago: {', '.join(stale)}. The metabolic markers are meant to be "
            "re-evaluated annually.",
            c.cite("REFERENCE §8", c.SOURCE_002),
        )
