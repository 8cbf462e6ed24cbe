"""Property-based: the guardrails of REFERENCE §14 hold for every policy in the registry, on random records.

The test iterates over ``POLICIES``, so a policy added later is held to the same properties without
touching this file. Every draw builds fresh objects (no shared mutable values in the strategies).
Each property is checked twice where it can be: on the claims the statements make, and on their words,
so a future rule that forgets to tag a claim is still caught by its text.
"""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhircac.clinical.assess import assess
from fhircac.clinical.assessment import Assessment, Claim, MetabolicState
from fhircac.clinical.orders import review_aspirin_order, review_scan_order
from fhircac.clinical.policies import POLICIES
from fhircac.clinical.record import (
    CacScan,
    CoronaryHistory,
    DrugClass,
    Labs,
    Measurement,
    MedicationPeriod,
    PatientRecord,
    Race,
    Sex,
    StatedAge,
    add_years,
)

AS_OF = date(2026, 6, 1)
SCAN_DATE = date(2026, 3, 1)
EXERCISE_WORDS = ("vo2max", "150 minutes", "strength and", "aerobic")


def _maybe(strategy: st.SearchStrategy[float], unit: str) -> st.SearchStrategy[Measurement | None]:
    return st.one_of(st.none(), strategy.map(lambda value: Measurement(value, unit)))


def _mg_dl(low: float, high: float) -> st.SearchStrategy[Measurement | None]:
    return _maybe(st.floats(low, high, allow_nan=False), "mg/dL")


labs = st.builds(
    Labs,
    total_cholesterol=_mg_dl(120, 340),
    hdl=_mg_dl(20, 110),
    ldl=_mg_dl(50, 260),
    triglycerides=_mg_dl(40, 600),
    apob=_mg_dl(40, 200),
    lpa=_mg_dl(0, 200),
    hs_crp=_maybe(st.floats(0, 15, allow_nan=False), "mg/L"),
    fasting_insulin=_maybe(st.floats(1, 40, allow_nan=False), "u[IU]/mL"),
    hba1c=_maybe(st.floats(4.5, 11, allow_nan=False), "%"),
)
scores = st.one_of(
    st.just(0.0),
    st.floats(0.5, 12, allow_nan=False),
    st.floats(1, 99.9, allow_nan=False),
    st.floats(100, 399.9, allow_nan=False),
    st.floats(400, 999, allow_nan=False),
    st.floats(1000, 4000, allow_nan=False),
)
flags = st.sampled_from([True, False, None])


@st.composite
def medications(draw: st.DrawFn) -> tuple[MedicationPeriod, ...]:
    periods = []
    for drug_class in (DrugClass.STATIN, DrugClass.ANTIHYPERTENSIVE, DrugClass.OTHER_LIPID_LOWERING):
        if draw(st.booleans()):
            start = draw(st.one_of(st.none(), st.dates(date(2012, 1, 1), date(2026, 5, 1))))
            ends = st.dates(start or date(2012, 1, 1), date(2026, 6, 1))
            end = draw(st.one_of(st.none(), ends))
            periods.append(MedicationPeriod(drug_class, start, end))
    return tuple(periods)


@st.composite
def records(draw: st.DrawFn) -> PatientRecord:
    scans = [CacScan(draw(scores), SCAN_DATE)]
    if draw(st.booleans()):
        days_before = draw(st.integers(150, 10 * 365))
        scans.insert(0, CacScan(draw(scores), SCAN_DATE - timedelta(days=days_before)))
    age = draw(st.one_of(st.none(), st.integers(25, 95)))
    return PatientRecord(
        scans=tuple(scans),
        age=None if age is None else StatedAge(float(age), SCAN_DATE),
        sex=draw(st.one_of(st.none(), st.sampled_from(Sex))),
        race=draw(st.one_of(st.none(), st.sampled_from(Race))),
        labs=draw(labs),
        systolic_bp=draw(_maybe(st.floats(95, 190, allow_nan=False), "mm[Hg]")),
        medications=draw(medications()),
        unknown_medications=frozenset(draw(st.sets(st.sampled_from(DrugClass), max_size=2))),
        diabetes=draw(flags),
        current_smoker=draw(flags),
        family_history_premature_chd=draw(flags),
        coronary_history=draw(st.sampled_from([(), (), (), (CoronaryHistory.STENT,)])),
        symptoms=draw(flags),
        high_bleeding_risk=draw(flags),
    )


def _claims(assessment: Assessment) -> set[Claim]:
    return {c for s in assessment.recommendations for c in s.claims}


def _text(statements: tuple) -> str:  # type: ignore[type-arg]
    return " ".join(s.text for s in statements).lower()


def check_guardrails(record: PatientRecord, assessment: Assessment) -> None:
    age = record.age.at(AS_OF) if record.age else None
    policy = assessment.policy
    known_cad = record.known_coronary_disease
    recommendations = _text(assessment.recommendations)

    # §14.3 aspirin: never "may be considered" over 70, age unknown, bleeding raised/unknown, symptoms
    if age is None or age > 70 or record.high_bleeding_risk is not False or record.symptoms or known_cad:
        assert Claim.ASPIRIN_CONSIDERED not in _claims(assessment)
        aspirin = _text(tuple(s for s in assessment.recommendations if "aspirin" in s.id))
        assert "may be considered" not in aspirin
        if not known_cad:
            assert not review_aspirin_order(assessment, policy).considered

    # §14.2 guideline indications: never "no new medication"
    ldl = record.labs.ldl
    pce = assessment.risk.pce_ascvd_10y
    indicated = (
        (ldl is not None and ldl.value >= 190)
        or (bool(record.diabetes) and age is not None and 40 <= age <= 75)
        or (pce is not None and pce >= 0.20)
        or known_cad
        or (assessment.score.agatston >= 1000 and (age is None or age <= 75))
    )
    if indicated:
        assert Claim.NO_NEW_MEDICATION not in _claims(assessment)
        assert "advises no new medication" not in recommendations
        assert "reasonable to withhold" not in recommendations
        # stated as advice (a recommendation), never only as a warning
        assert Claim.STATIN_INDICATED in _claims(assessment)
    if assessment.score.agatston >= 1000 and not known_cad and (age is None or age <= 75):
        assert "at cac ≥1000 a high-intensity statin" in recommendations  # §14.8: read as very high

    # §14.5 HbA1c ≥6.5 % with no diabetes recorded: possible diabetes, said whatever else applies
    hba1c = record.labs.hba1c
    if hba1c is not None and hba1c.value >= 6.5 and not record.diabetes:
        assert "hba1c-possible-diabetes" in {w.id for w in assessment.warnings}
        assert "diabetes" in {m.field for m in assessment.missing}

    # §8 "calm" needs hs-CRP and ApoB
    if assessment.metabolic.state is MetabolicState.CALM:
        measured = {m.marker for m in assessment.metabolic.markers}
        assert {"hs_crp", "apob"} <= measured
        assert record.labs.hs_crp is not None and record.labs.apob is not None

    # §6, §14.7 repeat scan: never sooner than 3 years; none where the rule says it adds little
    scan = assessment.next_scan
    floor = add_years(assessment.score.date, 3)
    for day in (scan.earliest, scan.suggested):
        assert day is None or day >= floor
    rationale = scan.rationale.lower()
    if any(words in rationale for words in ("adds little", "not routine", "not needed", "no repeat")):
        assert scan.suggested is None
    if known_cad or record.symptoms:
        assert scan.suggested is None
    if scan.suggested is not None:  # the order hooks never warn against what the plan proposed
        reasons = review_scan_order(assessment, known_cad, scan.suggested)
        assert not {r.id for r in reasons} & {"scan-order-too-soon", "scan-order-high-score"}

    # §14.1, §14.4 symptoms: first statement, warning card, no exercise intensity
    if record.symptoms:
        assert assessment.symptoms_first
        assert assessment.recommendations[0].id == "symptoms-evaluate-first"
        assert not any(Claim.EXERCISE in item.claims for item in assessment.lifestyle)
        assert not any(word in _text(assessment.lifestyle) for word in EXERCISE_WORDS)
        assert "more than a few minutes" in assessment.explanation.paragraphs[0]
        assert "reassuring" not in " ".join(assessment.explanation.paragraphs)
    if record.symptoms and not known_cad:  # §14.1: no primary-prevention verdict on the order card
        barrier = {"aspirin-not-with-symptoms", "aspirin-not-over-70", "aspirin-bleeding-risk"}
        assert review_aspirin_order(assessment, policy).patient.id in barrier
    if known_cad or (age is not None and age >= 75):
        assert not any(Claim.VIGOROUS_EXERCISE in item.claims for item in assessment.lifestyle)

    # §2 never an emergency (the safety net names emergency services for symptoms only)
    everything = " ".join(
        (
            assessment.explanation.headline,
            *assessment.explanation.paragraphs,
            recommendations,
            _text(assessment.warnings),
        )
    ).lower()
    allowed = everything.replace("not an emergency", "").replace("call emergency services", "")
    assert "emergency" not in allowed.replace("emergency services", "") or record.symptoms
    assert "failure" not in allowed.replace("sign of treatment failure", "")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(record=records())
def test_every_policy_keeps_the_guardrails_on_random_records(record: PatientRecord) -> None:
    for policy in POLICIES.values():
        check_guardrails(record, assess(record, policy, as_of=AS_OF))


def test_a_policy_cannot_opt_out(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A reckless policy's rules (aspirin at any age, "no new medication" whatever the LDL, VO2max
    training for everyone) still come out guarded: the guardrails run after any policy's rules."""
    from fhircac.clinical import assess as assess_module
    from fhircac.clinical.assessment import Statement

    def reckless_therapy(ctx, findings, follow_up) -> None:  # type: ignore[no-untyped-def]
        findings.recommend("x-no-medication", "No new medication.", "source 002", Claim.NO_NEW_MEDICATION)
        findings.recommend("x-aspirin", "Aspirin may be considered.", "source 002", Claim.ASPIRIN_CONSIDERED)

    def reckless_lifestyle(ctx):  # type: ignore[no-untyped-def]
        return (Statement("x-vo2max", "VO2max training daily.", "source 002", frozenset({Claim.EXERCISE})),)

    monkeypatch.setattr(assess_module, "therapy", reckless_therapy)
    monkeypatch.setattr(assess_module, "lifestyle_plan", reckless_lifestyle)
    record = PatientRecord(
        scans=(CacScan(2500, SCAN_DATE),),
        age=StatedAge(80, SCAN_DATE),
        sex=Sex.MALE,
        race=Race.WHITE,
        labs=Labs(ldl=Measurement(200, "mg/dL")),
        symptoms=True,
        high_bleeding_risk=None,
    )
    for policy in POLICIES.values():
        assessment = assess(record, policy, as_of=AS_OF)
        check_guardrails(record, assessment)
        ids = [s.id for s in assessment.recommendations]
        assert ids[0] == "symptoms-evaluate-first"
        assert "statin-guideline-indication" in ids and "x-no-medication" not in ids
        assert "x-aspirin" not in ids and "x-vo2max" not in {i.id for i in assessment.lifestyle}
