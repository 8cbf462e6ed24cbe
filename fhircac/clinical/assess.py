"""The one entry point of the clinical core: ``assess(record, policy, as_of) -> Assessment``."""

from __future__ import annotations

from datetime import date, timedelta

from fhircac.clinical import citations as c
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
from fhircac.clinical.lifestyle import lifestyle_plan
from fhircac.clinical.metabolic import assess_metabolic
from fhircac.clinical.narrative import explain
from fhircac.clinical.policies import DEFAULT_POLICY, Policy, PolicyId
from fhircac.clinical.progression import compare_scans
from fhircac.clinical.record import CacScan, DrugClass, PatientRecord
from fhircac.clinical.risk import NotComputable, RiskFactors, mesa_chd_risk, pce_ascvd_risk, pce_band
from fhircac.clinical.therapy import therapy
from fhircac.clinical.validate import validate

MARKER_MAX_AGE = timedelta(days=366)  # source 002: re-evaluate the markers annually


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
    uses_metabolic_state = policy.id is PolicyId.LIFESTYLE_FIRST and not record.known_coronary_disease
    metabolic = assess_metabolic(record.labs, progression, findings, report_missing=uses_metabolic_state)
    risk = _risk(record, scan, age_at_scan, findings)
    score = ScoreResult(
        agatston=scan.agatston,
        date=scan.date,
        band=primary_band(scan.agatston),
        fine_band=fine_band(scan.agatston),
        cac_drs=cac_drs(scan.agatston, scan.vessel_count),
        vessels_with_calcium=scan.vessel_count,
        stage=cac_stage(scan.agatston, percentile.value if percentile else None),
        arterial_age=round(arterial_age(scan.agatston), 1) if scan.agatston > 0 else None,
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
    follow_up = next_scan(ctx, findings)
    therapy(ctx, findings, follow_up)
    _interpretation_cautions(ctx, findings, follow_up)
    return Assessment(
        patient_id=record.patient_id,
        as_of=as_of,
        policy=policy,
        score=score,
        percentile=percentile,
        risk=risk,
        progression=progression,
        next_scan=follow_up,
        metabolic=metabolic,
        recommendations=tuple(findings.recommendations),
        warnings=tuple(findings.warnings),
        lifestyle=lifestyle_plan(ctx),
        explanation=explain(ctx, follow_up, risk.mesa_chd_10y_with_cac, findings.recommendations),
        missing=findings.missing_inputs(),
    )


def _percentile(
    record: PatientRecord, scan: CacScan, age: float | None, findings: Findings
) -> PercentileResult | None:
    """A percentile reported with the scan wins; otherwise our MESA model, labelled estimated."""
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
    on_statin: bool | None = record.took_during(DrugClass.STATIN, prior.date, current.date)
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
    return RiskResult(mesa_with, mesa_without, pce, pce_band(pce) if pce is not None else None)


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
        findings.recommend(
            "explain-result",
            "Explain the result in a conversation: a high score is a risk signal to manage, not an "
            "emergency, and it does not mean the arteries are blocked.",
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
