"""The lifestyle plan (REFERENCE §10): the same pillars under both policies, with each policy's content."""

from __future__ import annotations

from fhircac.clinical import citations as c
from fhircac.clinical.assessment import Claim, Statement
from fhircac.clinical.context import Context
from fhircac.clinical.policies import PolicyId

SECTION = "REFERENCE §10"


def lifestyle_plan(ctx: Context) -> tuple[Statement, ...]:
    lifestyle_first = ctx.policy.id is PolicyId.LIFESTYLE_FIRST
    plan: list[Statement] = []
    if lifestyle_first:
        plan.append(
            Statement(
                "diet-carbohydrate-restricted",
                "Diet: carbohydrate-restricted (under 50 g a day), rich in protein and omega-3.",
                c.cite(SECTION, c.SOURCE_002),
                frozenset({Claim.CARBOHYDRATE_RESTRICTION}),
            )
        )
        plan.append(
            Statement(
                "exercise-strength-vo2max",
                "Exercise: muscle activation 4-5 times a week, strength and VO2max training.",
                c.cite(SECTION, c.SOURCE_002),
                frozenset({Claim.EXERCISE, Claim.VIGOROUS_EXERCISE}),
            )
        )
    else:
        plan.append(
            Statement(
                "diet-mediterranean-dash",
                "Diet: a Mediterranean or DASH pattern, rich in vegetables, fruit, whole grains and lean "
                "protein, low in processed food, refined sugar and saturated fat.",
                c.cite(SECTION, c.SOURCE_001),
            )
        )
        plan.append(
            Statement(
                "exercise-aerobic-150",
                "Exercise: at least 150 minutes a week of moderate aerobic activity such as brisk walking.",
                c.cite(SECTION, c.SOURCE_001),
                frozenset({Claim.EXERCISE}),
            )
        )
    smoker = ctx.record.current_smoker
    if smoker or smoker is None:
        text = (
            "Stop smoking: the single most effective lifestyle change for the arteries."
            if smoker
            else "If you smoke, stopping is the single most effective lifestyle change for the arteries."
        )
        plan.append(Statement("stop-smoking", text, c.cite(SECTION, c.SOURCE_001)))
    plan.append(
        Statement("sleep-stress", "Sleep and stress: make room for recovery.", c.cite(SECTION, c.SOURCE_002))
    )
    plan.append(
        Statement(
            "vitamin-d-magnesium",
            "Keep vitamin D and magnesium at sufficient levels, without excess vitamin D supplements.",
            c.cite(SECTION, c.SOURCE_001, c.SOURCE_002),
        )
    )
    plan.append(
        Statement(
            "calcium-from-food",
            "Get calcium from food rather than supplements.",
            c.cite(SECTION, c.SOURCE_001),
        )
    )
    return tuple(plan)
