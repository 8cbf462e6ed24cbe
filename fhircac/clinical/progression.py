"""Change between two scans, read in the light of statin therapy (REFERENCE §5).

The latest score drives risk; progression is context. The one rule that must never break: a
rise while a statin was taken is expected (plaque calcifies as it stabilises) and is never
called treatment failure (sources 000, 001, 004).
"""

from __future__ import annotations

import math

from fhircac.clinical import citations as c
from fhircac.clinical.assessment import Progression, ProgressionCategory
from fhircac.clinical.record import DAYS_PER_YEAR, CacScan, add_years

SQRT_PROGRESSION_THRESHOLD = 2.5  # Hokanson: √CAC₂ − √CAC₁ ≥ 2.5
REPEATABILITY_FACTOR = 4.93  # Sevrukov: change within ±4.93·√baseline is within repeatability
RAPID_PERCENT_PER_YEAR = 15.0  # source 000, Raggi 2004
SHORT_INTERVAL_YEARS = 3  # source 000: variability can dominate below 3 years
INCIDENT_SIGNIFICANT_SCORE = 11.6  # Sevrukov, AJR 2005: after 0, a follow-up above 11.6 is significant

STATIN_RISE_TEXT = (
    "A statin was taken during this interval. Statins typically make the calcium score rise as "
    "plaque calcifies and stabilises, so a rise is expected and does not by itself mean that the "
    "treatment is failing."
)
STATIN_UNKNOWN_RISE_TEXT = (
    "Whether a statin was taken between the scans is not known; if one was, a rise is expected and "
    "does not by itself mean that the treatment is failing."
)
LATEST_SCORE_TEXT = "For risk, the latest score matters more than the rate of change."
SHORT_INTERVAL_TEXT = (
    "The scans are less than 3 years apart, so measurement variability can account for much of "
    "the difference."
)
SHORT_INTERVAL_RISE_TEXT = (
    "But the scans are less than 3 years apart, where measurement variability can account for much "
    "of the difference: treat the rise as provisional, and do not let it drive therapy on its own."
)
RAPID_ON_STATIN_TEXT = (
    "A rise above 15% a year has been linked with a higher risk of heart attack even in people "
    "taking a statin: review adherence, LDL-C or ApoB against goal, and the other risk factors. "
    "This is not a reason to stop the statin."
)
RAPID_TEXT = (
    "A rise above 15% a year is faster than usual, and studies link that pace with a higher risk "
    "of heart attack: a reason to review the risk factors and whether treatment is needed, not a "
    "cause for alarm."
)
POSSIBLE_INCIDENT_TEXT = (
    "A small amount of calcium may have appeared since a score of 0; at this size (11.6 or less) "
    "it can be measurement noise."
)

_CATEGORY_TEXT = {
    ProgressionCategory.STILL_ZERO: "The score is still 0.",
    ProgressionCategory.INCIDENT: (
        "Calcium has appeared since a score of 0, above what measurement variability explains (about "
        "7% of people with a score of 0 convert each year, on average after about 4 years)."
    ),
    ProgressionCategory.PROGRESSION: (
        "The score rose by more than interscan variability (square-root method)."
    ),
    ProgressionCategory.POSSIBLE_PROGRESSION: (
        "The score rose by more than the repeatability limit but less than the square-root method's "
        "threshold: possible progression."
    ),
    ProgressionCategory.WITHIN_VARIABILITY: "The change is within measurement variability.",
    ProgressionCategory.DECREASE: (
        "The score fell by more than measurement variability. Calcium scores rarely fall with "
        "treatment, so differences in scanner or protocol are the likelier explanation."
    ),
}


def categorise(prior: float, current: float) -> ProgressionCategory:
    if prior <= 0:
        return ProgressionCategory.STILL_ZERO if current <= 0 else ProgressionCategory.INCIDENT
    if math.sqrt(current) - math.sqrt(prior) >= SQRT_PROGRESSION_THRESHOLD:
        return ProgressionCategory.PROGRESSION
    limit = REPEATABILITY_FACTOR * math.sqrt(prior)
    if current - prior > limit:
        return ProgressionCategory.POSSIBLE_PROGRESSION
    if prior - current > limit:
        return ProgressionCategory.DECREASE
    return ProgressionCategory.WITHIN_VARIABILITY


MIN_SCORE_FOR_PERCENT = 1.0  # below one Agatston unit a percentage change means nothing


def annualized_percent(prior: float, current: float, years: float) -> float | None:
    """Compound annual % change; undefined from a score below 1, and when it is astronomically large
    (a big rise over a few days), which the short-interval caution already covers."""
    if prior < MIN_SCORE_FOR_PERCENT:
        return None
    try:
        return (math.pow(current / prior, 1.0 / years) - 1.0) * 100.0
    except OverflowError:
        return None


def compare_scans(prior: CacScan, current: CacScan, on_statin: bool | None) -> Progression:
    """``on_statin``: a statin was taken at some time between the scans; None when that is unknown."""
    years = (current.date - prior.date).days / DAYS_PER_YEAR
    if years <= 0:
        raise ValueError("the prior scan must be dated before the current one")
    category = categorise(prior.agatston, current.agatston)
    sqrt_delta = math.sqrt(current.agatston) - math.sqrt(prior.agatston)
    percent = annualized_percent(prior.agatston, current.agatston, years)
    # Rapid means a real rise: beyond measurement variability and above 15 %/year.
    rapid = (
        category is ProgressionCategory.PROGRESSION
        and percent is not None
        and percent > RAPID_PERCENT_PER_YEAR
    )
    rose = current.agatston > prior.agatston
    significant = (
        current.agatston > INCIDENT_SIGNIFICANT_SCORE
        if prior.agatston <= 0
        else sqrt_delta >= SQRT_PROGRESSION_THRESHOLD
    )
    incident_small = category is ProgressionCategory.INCIDENT and not significant
    sentences = [POSSIBLE_INCIDENT_TEXT if incident_small else _CATEGORY_TEXT[category]]
    if percent is not None and rose:
        sentences.append(f"That is {percent:.1f}% a year.")
    sources = [c.SOURCE_000, c.SQUARE_ROOT_METHOD, c.REPEATABILITY]
    if rose and on_statin:
        sentences.append(STATIN_RISE_TEXT)
        sources += [c.SOURCE_001, c.SOURCE_004]
        if rapid:
            sentences.append(RAPID_ON_STATIN_TEXT)
            sources.append(c.RAPID_PROGRESSION)
    elif rose and on_statin is None:
        sentences.append(STATIN_UNKNOWN_RISE_TEXT)
    elif rapid:
        sentences.append(RAPID_TEXT)
        sources.append(c.RAPID_PROGRESSION)
    if current.date < add_years(prior.date, SHORT_INTERVAL_YEARS):
        real_rise = category is ProgressionCategory.PROGRESSION or (
            category is ProgressionCategory.INCIDENT and significant
        )
        sentences.append(SHORT_INTERVAL_RISE_TEXT if real_rise else SHORT_INTERVAL_TEXT)
    sentences.append(LATEST_SCORE_TEXT)
    return Progression(
        prior_agatston=prior.agatston,
        prior_date=prior.date,
        years=years,
        annualized_change=(current.agatston - prior.agatston) / years,
        annualized_percent=percent,
        sqrt_delta=sqrt_delta,
        significant=significant,
        category=category,
        rapid=rapid,
        on_statin=on_statin,
        interpretation=" ".join(sentences),
        source=c.cite("REFERENCE §5", *sources),
    )
