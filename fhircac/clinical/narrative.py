"""The plain-language explanation a patient can read (REFERENCE §11, source 004).

Calm and specific: what the number measures and what it does not, what it means for this
person, that the aim is stable plaque rather than a lower number, and the questions worth
asking. A high score is a signal to act on, never an emergency (sources 002, 004).
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from fhircac.clinical import citations as c
from fhircac.clinical.assessment import (
    Claim,
    NextScan,
    PatientExplanation,
    Progression,
    ProgressionCategory,
    Statement,
)
from fhircac.clinical.bands import HIGH_SCORE, VERY_HIGH_SCORE, shown_score
from fhircac.clinical.context import Context
from fhircac.clinical.guardrails import SAFETY_NET

SOURCE = c.cite("REFERENCE §11", c.SOURCE_004, c.SOURCE_000, c.SOURCE_002, c.SOURCE_003)

WHAT_IT_MEASURES = (
    "The scan measures calcium in the walls of the arteries that feed your heart. Calcium marks places "
    "where plaque has built up over many years. The scan does not show soft plaque, and it does not "
    "show whether any artery is narrowed or blocked."
)
THE_GOAL = (
    "The aim of treatment is not to lower this number. It is to keep any plaque stable and to lower "
    "the chance of a heart attack."
)
STATIN_RISE = (
    " Statins often make the score go up, because plaque hardens as it stabilises, so a rising score "
    "on a statin may reflect plaque becoming more stable."
)
SYMPTOMS_TEXT = (
    "You have reported chest pain or breathlessness on exertion. Please talk to your clinician about "
    "these symptoms soon, whatever your calcium score: this scan cannot show whether an artery is "
    f"narrowed, and the symptoms are checked first. {SAFETY_NET}"
)


def _headline(score: float, symptomatic: bool) -> str:
    shown = shown_score(score)
    if score <= 0:
        text = "Your calcium score is 0: no calcified plaque was seen."
    elif score < HIGH_SCORE:
        text = f"Your calcium score is {shown}: a small amount of calcified plaque."
    elif score < VERY_HIGH_SCORE:
        text = f"Your calcium score is {shown}: a moderate amount of calcified plaque."
    elif symptomatic:
        text = (
            f"Your calcium score is {shown}: a lot of calcified plaque. The score itself is not an emergency."
        )
    else:
        return (
            f"Your calcium score is {shown}: a lot of calcified plaque. "
            "This is a signal to act on calmly, not an emergency."
        )
    if symptomatic:
        text += " Because you have symptoms, please have them checked by your clinician soon."
    return text


def in_100(percentile: float) -> int:
    """A percentile as "higher than about N in 100": never 0 or 100 of 100, which no one can be."""
    return min(max(round(percentile), 1), 99)


def _meaning(ctx: Context) -> str:
    score = ctx.agatston
    if ctx.record.known_coronary_disease:
        return (
            "Because heart disease is already known (for example a stent, bypass or a previous heart "
            "attack), the calcium score adds little to what your care team already knows."
        )
    if score <= 0 and ctx.symptomatic:
        text = (
            "A score of 0 means no calcified plaque was seen. With symptoms it does not rule out heart "
            "disease, because soft plaque does not show on this scan."
        )
    elif score <= 0:
        text = (
            "A score of 0 is reassuring, but it is not a guarantee of zero risk, because soft plaque "
            "does not show on this scan."
        )
    elif score < HIGH_SCORE:
        text = "A small amount of plaque is a reason to pay attention to your risk factors."
    else:
        text = (
            "A higher score means more plaque is likely present. It does not mean your arteries are "
            "blocked, and it does not predict what will happen to you: it is a risk, and risk can be managed."
        )
    percentile = ctx.percentile
    if percentile is not None and score > 0:
        text += (
            f" Compared with people of the same age, sex and background, your score is higher than "
            f"about {in_100(percentile.value)} in 100."
        )
    return text


def _risk_sentence(mesa_with_cac: float | None, symptomatic: bool) -> str | None:
    if mesa_with_cac is None:
        return None
    in_100 = max(1, round(mesa_with_cac * 100))
    text = (
        f"Using your score and risk factors, the MESA study's calculator estimates that about {in_100} in "
        f"100 people like you would have a heart attack or a similar heart problem in the next 10 years. "
        f"So about {100 - in_100} in 100 would not."
    )
    if symptomatic:
        text += (
            " This estimate is for people without symptoms, so it may not fit you until yours are checked."
        )
    return text


def _change(progression: Progression, current: float) -> str:
    before, now = shown_score(progression.prior_agatston), shown_score(current)
    if progression.on_statin and current > progression.prior_agatston:
        text = (
            f"Your score went from {before} to {now} while you were taking a statin. That is expected and "
            "can mean the plaque is becoming more stable; it does not by itself mean the statin is failing."
        )
        if progression.rapid:  # Raggi 2004: >15 %/year linked with heart attack even on a statin
            text += (
                " This rise was faster than usual, so it is worth reviewing your risk factors and "
                "treatment with your clinician; do not stop the statin because of it."
            )
        return text
    if progression.on_statin is None and current > progression.prior_agatston:
        return (
            f"Your score went from {before} to {now}. If you were taking a statin in between, a rise is "
            "expected and can mean the plaque is becoming more stable."
        )
    if progression.category in (ProgressionCategory.WITHIN_VARIABILITY, ProgressionCategory.STILL_ZERO):
        return f"Your score went from {before} to {now}, which is within the usual variation between scans."
    if progression.rapid and progression.on_statin is False:
        return (
            f"Your score went from {before} to {now}, a faster rise than usual. That is worth taking "
            "seriously but calmly: it is a reason to review your risk factors and whether treatment "
            "would help, with your clinician."
        )
    if progression.category is ProgressionCategory.DECREASE:
        return (
            f"Your score went from {before} to {now}. Scores rarely fall, so the difference most likely "
            "comes from differences between scanners."
        )
    return (
        f"Your score went from {before} to {now}. Your clinician will read this together with your other "
        "risk factors; the latest score matters more than the change."
    )


class RepeatScan(StrEnum):
    """Where this person stands on a repeat scan, for every text that tells them."""

    NOT_NEEDED = "not-needed"  # no repeat scan (e.g. known coronary disease)
    NOT_ROUTINE = "not-routine"  # none routinely suggested, though one may be done after ``earliest``
    LATER = "later"  # a suggested date still ahead
    CAN_CONSIDER = "can-consider"  # the suggested date has passed


def repeat_scan(next_scan: NextScan, as_of: date) -> RepeatScan:
    if next_scan.suggested is not None:
        return RepeatScan.LATER if next_scan.suggested > as_of else RepeatScan.CAN_CONSIDER
    return RepeatScan.NOT_ROUTINE if next_scan.earliest is not None else RepeatScan.NOT_NEEDED


def _next_steps(next_scan: NextScan, as_of: date, symptomatic: bool) -> str:
    if symptomatic:
        text = (
            "What matters most now is having your symptoms checked; after that, your overall risk and a plan."
        )
    else:
        text = (
            "What matters most now is a conversation with your clinician about your overall risk and a plan."
        )
    status = repeat_scan(next_scan, as_of)
    if status is RepeatScan.LATER:
        assert next_scan.suggested is not None
        text += (
            f" If a repeat scan would help your care, around {next_scan.suggested.isoformat()} is the "
            "suggested time, not earlier."
        )
    elif status is RepeatScan.CAN_CONSIDER:
        text += " A repeat scan can now be considered, if it would change your care."
    elif status is RepeatScan.NOT_ROUTINE:
        assert next_scan.earliest is not None
        text += (
            " A repeat scan is not planned for now; if one is ever considered, not before "
            f"{next_scan.earliest.isoformat()}."
        )
    else:
        text += " A repeat calcium scan is not needed."
    return text


def _questions(ctx: Context) -> tuple[str, ...]:
    questions = [
        "Given my full risk profile, not just the calcium score, what is my overall risk and how should "
        "I think about it?",
    ]
    tests = (
        "Which tests do my symptoms need, such as a stress test or a CT coronary angiogram, and how soon?"
        if ctx.symptomatic
        else "Do my symptoms or risk factors mean I need further tests, such as a stress test or a CT "
        "coronary angiogram, or is managing my risk factors enough for now?"
    )
    questions.insert(0 if ctx.symptomatic else 1, tests)
    if ctx.agatston > 0 and ctx.record.labs.lpa is None:
        questions.append("Should my lipoprotein(a) level be checked?")
    if ctx.on_statin:
        questions.append(
            "If my calcium score rises at a repeat scan while I take my statin, what would that mean for "
            "my plaque?"
        )
    elif ctx.agatston > 0:
        questions.append(
            "If I take a statin and my calcium score rises at a repeat scan, does that mean the medicine "
            "is failing, or that the plaque is stabilising?"
        )
    questions.append(
        "What targets should I work toward for blood pressure, cholesterol and lifestyle, and how often "
        "should we review them?"
    )
    return tuple(questions)


# Topics to raise with the clinician, in the patient's words, keyed by the exact rule ids that call
# for them. Each asks "whether", never says "you need": the rule is for the clinician to weigh (the
# clinician section shows it with its source). Rules that advise against something (aspirin not
# advised, over 70, bleeding risk) raise no topic.
_STATIN_TOPIC = "Cholesterol-lowering treatment: whether a statin (or another medicine) is right for you."
_ON_STATIN_TOPIC = (
    "Your cholesterol-lowering treatment: whether the dose is right for you, and which targets to aim for."
)
_STATIN_CLAIMS = frozenset({Claim.STATIN_INDICATED, Claim.STATIN_REASONABLE})
_STATIN_RULES = (
    "statin-cac-1-99-under-55",
    "statin-cac-0-exceptions",
    "statin-decision-possible-diabetes",
    "statin-cac-0-needs-ldl",
)
_SYMPTOMS_TOPIC = (
    "Your symptoms, and whether they call for further tests.",
    ("symptoms-evaluate-first",),
)
_TOPICS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "Cholesterol-lowering medicine: with a score of 0, whether it can be held off for now, and when "
        "to look again.",
        ("statin-cac-0-withhold",),
    ),
    (
        "Your statin: a score of 0 is about whether to start a statin, not about stopping the one you take.",
        ("statin-cac-0-on-statin",),
    ),
    (
        "Low-dose aspirin: whether its benefit would outweigh the risk of bleeding for you.",
        ("aspirin-may-be-considered", "lf-aspirin-consider"),
    ),
    (
        "A one-off blood test for lipoprotein(a), a cholesterol particle whose level is mostly inherited.",
        ("lpa-measure-once",),
    ),
    (
        "Blood tests of your metabolic health (such as insulin, triglycerides and inflammation), and how "
        "often to repeat them.",
        ("lf-cac-100-399-measure", "lf-cac-400-measure", "lf-annual-markers"),
    ),
    (
        "Other things that raise your risk, such as family history, and what they mean for your plan.",
        ("risk-enhancers",),
    ),
)


def _to_discuss(ctx: Context, statements: tuple[Statement, ...] | list[Statement]) -> tuple[str, ...]:
    """Topics keyed by what the statements claim (a statin indication, whichever rule states it) or
    by exact rule ids. Each asks "whether", never says "you need"; on a statin, the statin topic is
    about the treatment taken, not whether to take it. Rules that advise against something raise no
    topic."""
    ids = {s.id for s in statements}
    topics: list[str] = []
    if ids.intersection(_SYMPTOMS_TOPIC[1]):
        topics.append(_SYMPTOMS_TOPIC[0])
    statin = any(s.claims & _STATIN_CLAIMS for s in statements) or ids.intersection(_STATIN_RULES)
    if statin:
        topics.append(_ON_STATIN_TOPIC if ctx.on_statin else _STATIN_TOPIC)
    topics += [topic for topic, rules in _TOPICS if ids.intersection(rules)]
    return tuple(topics)


def explain(
    ctx: Context,
    next_scan: NextScan,
    mesa_with_cac: float | None,
    statements: tuple[Statement, ...] | list[Statement] = (),
) -> PatientExplanation:
    """``statements``: the guarded recommendations and warnings, which decide the topics."""
    symptomatic = ctx.symptomatic
    meaning = [_meaning(ctx)]
    risk = _risk_sentence(mesa_with_cac, symptomatic)
    if risk is not None and not ctx.record.known_coronary_disease:
        meaning.append(risk)
    if ctx.progression is not None:
        meaning.append(_change(ctx.progression, ctx.agatston))
    goal = THE_GOAL + (STATIN_RISE if ctx.agatston > 0 or ctx.on_statin else "")
    return PatientExplanation(
        headline=_headline(ctx.agatston, symptomatic),
        measures=(WHAT_IT_MEASURES,),
        meaning=tuple(meaning),
        plan=(goal, _next_steps(next_scan, ctx.as_of, symptomatic)),
        to_discuss=_to_discuss(ctx, statements),
        safety=(SYMPTOMS_TEXT,) if symptomatic else (),
        questions=_questions(ctx),
        source=SOURCE,
    )
