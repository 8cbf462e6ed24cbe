"""The guardrails every policy obeys (REFERENCE §14), applied in one place after the policy's rules.

``assess`` runs a policy's rules into an ``Outcome`` and passes it through ``apply``; no policy
can skip this step, and the guardrails read only what a statement claims (``Claim``), never a
policy's rule ids, so a new policy is held to them without code changes here. The order hooks,
the CDS cards and the CarePlan all read the guarded assessment, so they agree with it.

What they hold: symptoms come first and change the whole output; a guideline statin indication
beats "no new medication"; primary-prevention aspirin is never "considered" over 70, with raised
or unknown bleeding risk, or with symptoms; exercise intensity and a very-low-carbohydrate diet
carry their safety conditions; HbA1c ≥6.5 % means possible diabetes; a CAC 0 "withhold" needs
LDL-C <190; a repeat scan never comes sooner than 3 years, nor while symptoms are evaluated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from fhircac.clinical import citations as c
from fhircac.clinical.assessment import Claim, Findings, NextScan, Statement
from fhircac.clinical.context import Context
from fhircac.clinical.followup import CAC_GUIDED_AGES, MINIMUM_INTERVAL_YEARS
from fhircac.clinical.record import add_years

SECTION = "REFERENCE §14"
ASPIRIN_AGES = (40, 70)  # 2019 guideline: IIb at 40-70; Class III (Harm) above 70
SEVERE_LDL_MG_DL = 190.0  # 2018 guideline: high-intensity statin without risk estimation (Class I)
HIGH_PCE = 0.20  # 2018 guideline: ≥20 % 10-year ASCVD risk, statin (Class I)
DIABETES_AGES = (40, 75)  # 2018 guideline: diabetes at 40-75, moderate-intensity statin (Class I)
EXTENSIVE_SCORE = 1000.0  # CAC ≥1000: statin first-line (2026 guideline, Class I) and NLA 2021
EXERCISE_PLAN_AGE = 75

SYMPTOMS = "chest pain or breathlessness on exertion"
SAFETY_NET = (
    "If chest pain is severe, comes on at rest or lasts more than a few minutes, call emergency "
    "services straight away."
)
SYMPTOMS_SOURCE = c.cite(SECTION, "REFERENCE §7", c.SOURCE_003, c.SOURCE_004, c.CHEST_PAIN_2021)
ASPIRIN_SOURCE = c.cite(SECTION, "REFERENCE §7", c.PREVENTION_2019, c.USPSTF_2022)
INDICATION_SOURCE = c.cite(SECTION, c.CHOLESTEROL_2018)
EXTENSIVE_SOURCE = c.cite(
    SECTION, c.GUIDELINE_2026 + " (as reported in secondary summaries)", c.NLA_2021, c.VERY_HIGH_CAC
)
LIFESTYLE_SOURCE = c.cite(SECTION, "REFERENCE §10", c.SOURCE_001, c.SOURCE_004)
# §14.1: with symptoms no primary-prevention aspirin statement, for or against (the order hook too).
ASPIRIN_WITH_SYMPTOMS = Statement(
    "aspirin-not-with-symptoms",
    "Symptoms are recorded: no primary-prevention aspirin statement applies until they are evaluated.",
    ASPIRIN_SOURCE,
)


@dataclass(frozen=True)
class Outcome:
    """What a policy's rules produced (and, after ``apply``, what may be said)."""

    recommendations: tuple[Statement, ...]
    warnings: tuple[Statement, ...]
    lifestyle: tuple[Statement, ...]
    next_scan: NextScan

    def claims(self) -> frozenset[Claim]:
        return frozenset(claim for s in (*self.recommendations, *self.warnings) for claim in s.claims)


Guardrail = Callable[[Context, Outcome, Findings], Outcome]


def apply(ctx: Context, outcome: Outcome, findings: Findings) -> Outcome:
    """Every guardrail, in order; ``findings`` only collects what is missing."""
    for guardrail in GUARDRAILS:
        outcome = guardrail(ctx, outcome, findings)
    return outcome


# --- facts the guardrails decide on ----------------------------------------------------------------


def statin_indications(ctx: Context) -> list[str]:
    """Guideline statin indications that stand whatever a policy's score table says (§14.2, §14.8)."""
    record = ctx.record
    reasons = []
    if record.known_coronary_disease:
        reasons.append("known atherosclerotic disease (secondary prevention)")
    ldl = record.labs.ldl
    if ldl is not None and ldl.value >= SEVERE_LDL_MG_DL:
        reasons.append(
            f"LDL cholesterol {ldl.value:.0f} mg/dL (≥190, possible familial hypercholesterolaemia)"
        )
    age = ctx.age_now
    if record.diabetes and age is not None and DIABETES_AGES[0] <= age <= DIABETES_AGES[1]:
        reasons.append("diabetes at age 40-75")
    if ctx.pce_ascvd_10y is not None and ctx.pce_ascvd_10y >= HIGH_PCE:
        reasons.append(f"a high estimated 10-year ASCVD risk ({ctx.pce_ascvd_10y:.0%}, PCE ≥20%)")
    # The CAC-guided statements concern adults up to 75; above that the statin decision is individual.
    cac_guided_age = age is None or age <= CAC_GUIDED_AGES[1]
    if ctx.agatston >= EXTENSIVE_SCORE and not record.known_coronary_disease and cac_guided_age:
        reasons.append(
            "CAC ≥1000 (extensive calcium, CAC stage 4: risk approaching that of established disease)"
        )
    return reasons


def aspirin_barrier(ctx: Context) -> Statement | None:
    """What replaces "may be considered" when primary-prevention aspirin may not be considered (§14.3)."""
    record = ctx.record
    age = ctx.age_now
    if record.known_coronary_disease:
        return Statement(
            "aspirin-secondary-prevention",
            "Known atherosclerotic disease is recorded: aspirin is a secondary-prevention decision for "
            "the treating clinician, not a primary-prevention statement.",
            ASPIRIN_SOURCE,
        )
    if ctx.symptomatic:
        return ASPIRIN_WITH_SYMPTOMS
    if age is None:
        return Statement(
            "aspirin-age-unknown",
            "Age is not known: primary-prevention aspirin can be weighed only at age 40-70.",
            ASPIRIN_SOURCE,
        )
    if age > ASPIRIN_AGES[1]:
        return Statement(
            "aspirin-not-over-70",
            "Low-dose aspirin should not be given routinely for primary prevention above age 70: the "
            "2019 guideline rates it Class III (Harm).",
            ASPIRIN_SOURCE,
        )
    if age < ASPIRIN_AGES[0]:
        return Statement(
            "aspirin-under-40",
            "Under 40, no guideline supports primary-prevention aspirin.",
            ASPIRIN_SOURCE,
        )
    if record.high_bleeding_risk:
        return Statement(
            "aspirin-bleeding-risk",
            "Raised bleeding risk is recorded: aspirin is not advised for primary prevention (2019 "
            "guideline: Class III, Harm).",
            ASPIRIN_SOURCE,
        )
    if record.high_bleeding_risk is None:
        return Statement(
            "aspirin-bleeding-risk-check",
            "Bleeding risk is not recorded: it needs a bleeding-risk check first; only if bleeding risk "
            "is not raised could low-dose aspirin be weighed for primary prevention.",
            ASPIRIN_SOURCE,
        )
    return None


# --- the guardrails ----------------------------------------------------------------------------------


def _replace(
    statements: tuple[Statement, ...], claim: Claim, replacement: Statement | None
) -> tuple[tuple[Statement, ...], bool]:
    """Statements making ``claim`` replaced (the first) or dropped (the rest); whether any was."""
    out: list[Statement] = []
    found = False
    for statement in statements:
        if claim in statement.claims:
            if not found and replacement is not None:
                out.append(replacement)
            found = True
        else:
            out.append(statement)
    return tuple(out), found


def _on_statin_words(ctx: Context) -> str:
    if ctx.on_statin:
        return "a statin is already recorded, so continue it and review its dose and intensity"
    return "discuss starting one"


def _possible_diabetes_warning(ctx: Context, outcome: Outcome, findings: Findings) -> Outcome:
    """§14.5: HbA1c ≥6.5 % with no diabetes recorded (ADA diagnostic threshold)."""
    hba1c = ctx.record.labs.hba1c
    assert hba1c is not None
    findings.need("diabetes", "confirming possible diabetes (HbA1c ≥6.5%) before any statin decision")
    warning = Statement(
        "hba1c-possible-diabetes",
        f"HbA1c {hba1c.value:g}% (≥6.5%) with no diabetes recorded: this suggests diabetes; confirm "
        "it. Until then no 'withhold' or 'no new medication' statement is given, and the risk "
        "equations assume no diabetes.",
        c.cite(SECTION, c.ADA_DIAGNOSIS, c.CHOLESTEROL_2018),
    )
    return replace(outcome, warnings=(*outcome.warnings, warning))


def no_medication(ctx: Context, outcome: Outcome, findings: Findings) -> Outcome:
    """§14.1, 14.2, 14.5, 14.6: when "no new medication" / "withhold" may not be said, and what
    is said instead."""
    policy = ctx.policy.id.value
    if ctx.possible_diabetes:  # said whatever else indicates a statin: the diagnosis matters beyond it
        outcome = _possible_diabetes_warning(ctx, outcome, findings)
    indications = statin_indications(ctx)
    if indications:
        reasons = "; ".join(indications)
        extensive = any(reason.startswith("CAC ≥1000") for reason in indications)
        text = (
            f"Statin therapy is indicated (Class I) because of {reasons}"
            + ("" if extensive and len(indications) == 1 else ", whatever the calcium score")
            + ("; " if ctx.on_statin else ": ")
            + f"{_on_statin_words(ctx)}."
        )
        if extensive:
            text += (
                " At CAC ≥1000 a high-intensity statin with LDL-C goals is favoured (LDL-C <55 mg/dL in "
                "the 2026 guideline), and add-on therapy may be considered."
            )
        # Source 002 is silent on LDL ≥190, diabetes and high estimated risk, but not on ≥400 calm.
        why = (
            "the guideline's Class I statement for CAC ≥1000 outranks that advice here"
            if extensive and len(indications) == 1
            else "that policy does not address this group, so that advice does not apply here"
        )
        divergence = (
            f" Under {policy} the score band alone would mean no new medication, but {why}; its "
            "lifestyle advice stands."
        )
        source = EXTENSIVE_SOURCE if extensive else INDICATION_SOURCE
        replacement = Statement(
            "statin-guideline-indication", text + divergence, source, frozenset({Claim.STATIN_INDICATED})
        )
        recommendations, replaced = _replace(outcome.recommendations, Claim.NO_NEW_MEDICATION, replacement)
        # The indication is advice, so a recommendation states it (a warning alone is not enough);
        # CAC ≥1000 adds its intensity and goals even where another indication is already stated.
        stated = any(Claim.STATIN_INDICATED in s.claims for s in recommendations)
        if not replaced and (extensive or not stated):
            recommendations = (replace(replacement, text=text), *recommendations)
        return replace(outcome, recommendations=recommendations)
    if ctx.possible_diabetes:
        replacement = Statement(
            "statin-decision-possible-diabetes",
            "Possible diabetes (HbA1c ≥6.5%): confirm it before deciding on a statin; if confirmed at "
            "age 40-75, the guideline recommends at least a moderate-intensity statin (Class I).",
            c.cite(SECTION, c.ADA_DIAGNOSIS, c.CHOLESTEROL_2018),
        )
        recommendations, _ = _replace(outcome.recommendations, Claim.NO_NEW_MEDICATION, replacement)
        return replace(outcome, recommendations=recommendations)
    if ctx.symptomatic:
        replacement = Statement(
            "symptoms-prevention-deferred",
            "With symptoms, the calcium score's 'no new medication' statements (written for people "
            "without symptoms) do not apply: decide on treatment once the symptoms are evaluated; a "
            "low score does not rule out non-calcified plaque.",
            SYMPTOMS_SOURCE,
        )
        recommendations, _ = _replace(outcome.recommendations, Claim.NO_NEW_MEDICATION, replacement)
        return replace(outcome, recommendations=recommendations)
    ldl = ctx.record.labs.ldl
    if ctx.agatston <= 0 and ldl is None and Claim.NO_NEW_MEDICATION in outcome.claims():
        findings.need("ldl", "whether CAC 0 allows withholding a statin (needs LDL-C below 190 mg/dL)")
        replacement = Statement(
            "statin-cac-0-needs-ldl",
            f"CAC 0: {policy} would hold off a statin, but only with LDL cholesterol below 190 mg/dL; "
            "LDL-C is not recorded, so measure it before deciding.",
            c.cite(SECTION, c.CHOLESTEROL_2018),
        )
        recommendations, _ = _replace(outcome.recommendations, Claim.NO_NEW_MEDICATION, replacement)
        return replace(outcome, recommendations=recommendations)
    return outcome


def aspirin(ctx: Context, outcome: Outcome, findings: Findings) -> Outcome:
    """§14.3: aspirin "may be considered" only at 40-70 with bleeding risk known not raised and no
    symptoms, whatever the policy; the order hooks read the same statements. §14.1: with symptoms a
    policy's own "not advised" gives way too (aspirin may belong to the symptoms' work-up)."""
    if ctx.symptomatic and not ctx.record.known_coronary_disease:
        recommendations, found = _replace(
            outcome.recommendations, Claim.ASPIRIN_NOT_ADVISED, ASPIRIN_WITH_SYMPTOMS
        )
        if found:
            outcome = replace(outcome, recommendations=recommendations)
    if Claim.ASPIRIN_CONSIDERED not in outcome.claims():
        return outcome
    barrier = aspirin_barrier(ctx)
    if barrier is None:
        return outcome
    if barrier.id == "aspirin-bleeding-risk-check":
        findings.need("bleeding_risk", "aspirin consideration")
    if barrier.id == "aspirin-age-unknown":
        findings.need("age", "aspirin consideration (ages 40-70)")
    already = {s.id for s in outcome.recommendations}
    recommendations, _ = _replace(
        outcome.recommendations, Claim.ASPIRIN_CONSIDERED, None if barrier.id in already else barrier
    )
    return replace(outcome, recommendations=recommendations)


def symptoms(ctx: Context, outcome: Outcome, findings: Findings) -> Outcome:
    """§14.1: symptoms first. The first statement, the risk equations' label, no routine repeat scan."""
    if ctx.record.symptoms is None:
        findings.need("symptoms", "whether the result is a screening result (symptoms are evaluated first)")
        return outcome
    if not ctx.symptomatic:
        return outcome
    first = Statement(
        "symptoms-evaluate-first",
        f"Symptoms ({SYMPTOMS}) are recorded: they need prompt clinical evaluation, and this is not a "
        "screening result. The prevention statements below assume no symptoms. Stress testing or CT "
        "coronary angiography may be appropriate; the calcium score does not show whether an artery "
        f"is narrowed. {SAFETY_NET}",
        SYMPTOMS_SOURCE,
    )
    warnings = outcome.warnings
    if not ctx.record.known_coronary_disease:
        warnings += (
            Statement(
                "risk-equations-without-symptoms",
                "The risk figures (MESA, PCE) and the CAC statements were derived in people without "
                "symptoms: read them only once the symptoms are evaluated.",
                c.cite(SECTION, "REFERENCE §4", c.MESA_RISK, c.PCE, c.NLA_2021),
            ),
        )
    scan = outcome.next_scan
    if scan.earliest is not None:
        # The policy's own earliest date stands (other statements quote it); never under 3 years.
        earliest = max(scan.earliest, add_years(ctx.scan.date, MINIMUM_INTERVAL_YEARS))
        scan = NextScan(
            earliest,
            None,
            "No routine repeat scan while symptoms are evaluated: the symptoms come first. If a repeat is "
            f"ever considered, not before {earliest.isoformat()}.",
            c.cite(SYMPTOMS_SOURCE, c.SOURCE_000),
        )
    return replace(
        outcome, recommendations=(first, *outcome.recommendations), warnings=warnings, next_scan=scan
    )


def lifestyle_safety(ctx: Context, outcome: Outcome, findings: Findings) -> Outcome:
    """§14.4: exercise intensity only without symptoms; with known CAD or at 75+ an agreed plan;
    a very-low-carbohydrate diet with diabetes carries the medication caveat."""
    record = ctx.record
    age = ctx.age_now
    exercise: Statement | None = None
    if ctx.symptomatic:
        exercise = Statement(
            "exercise-after-symptoms-checked",
            "Activity: discuss with your clinician what activity is safe for you; start an exercise plan "
            "once your symptoms have been checked.",
            LIFESTYLE_SOURCE,
        )
    elif record.known_coronary_disease or (age is not None and age >= EXERCISE_PLAN_AGE):
        exercise = Statement(
            "exercise-agree-plan",
            "Exercise: agree an exercise plan with your clinician; build up gradually, and ask whether a "
            "supervised (cardiac rehabilitation) programme suits you.",
            LIFESTYLE_SOURCE,
        )
    plan: list[Statement] = []
    for item in outcome.lifestyle:
        if Claim.EXERCISE in item.claims and exercise is not None:
            if exercise not in plan:
                plan.append(exercise)
            continue
        if Claim.VIGOROUS_EXERCISE in item.claims and record.symptoms is None:
            item = replace(
                item,
                text=item.text + " Before vigorous training, have any chest pain or breathlessness on "
                "exertion checked by your clinician.",
            )
        if Claim.CARBOHYDRATE_RESTRICTION in item.claims and ctx.diabetes_possible_or_known:
            item = replace(
                item,
                text=item.text + " If you take medicine for diabetes, agree this diet with your clinician "
                "first: doses may need to change, because of the risk of low blood sugar.",
                source=c.cite(item.source, SECTION),
            )
        plan.append(item)
    return replace(outcome, lifestyle=tuple(plan))


def repeat_scan(ctx: Context, outcome: Outcome, findings: Findings) -> Outcome:
    """§6, §9, §14.7: never sooner than 3 years after the last scan; none with known coronary disease."""
    scan = outcome.next_scan
    if ctx.record.known_coronary_disease:
        if scan.earliest is None and scan.suggested is None:
            return outcome
        return replace(outcome, next_scan=NextScan(None, None, scan.rationale, scan.source))
    floor = add_years(ctx.scan.date, MINIMUM_INTERVAL_YEARS)
    earliest = scan.earliest if scan.earliest is None or scan.earliest >= floor else floor
    suggested = scan.suggested if scan.suggested is None or scan.suggested >= floor else floor
    if (earliest, suggested) == (scan.earliest, scan.suggested):
        return outcome
    return replace(outcome, next_scan=replace(scan, earliest=earliest, suggested=suggested))


GUARDRAILS: tuple[Guardrail, ...] = (no_medication, aspirin, symptoms, lifestyle_safety, repeat_scan)
