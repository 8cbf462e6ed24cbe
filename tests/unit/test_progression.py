"""Progression rules of REFERENCE §5, each on both sides of its threshold, and the statin context."""

import math
from datetime import date

import pytest

from fhircac.clinical.assessment import ProgressionCategory as Cat
from fhircac.clinical.progression import annualized_percent, categorise, compare_scans
from fhircac.clinical.record import CacScan

D1, D2 = date(2020, 1, 1), date(2024, 1, 1)  # 4.0 years (1461 days / 365.25)
FAILURE_WORDS = ("failure", "failing", "not working", "ineffective")


def compare(prior: float, current: float, on_statin: bool = False, d1: date = D1, d2: date = D2):  # type: ignore[no-untyped-def]
    return compare_scans(CacScan(prior, d1), CacScan(current, d2), on_statin)


def test_annualised_percent_is_compound() -> None:
    # 100 → 146.41 over 4 years is exactly 10 %/year compounded (1.1⁴ = 1.4641).
    assert annualized_percent(100, 146.41, 4.0) == pytest.approx(10.0)
    assert compare(100, 146.41).annualized_change == pytest.approx(46.41 / 4.0)


@pytest.mark.parametrize(
    ("prior", "current", "category"),
    [
        (0, 0, Cat.STILL_ZERO),
        (0, 5, Cat.INCIDENT),
        (100, 156.25, Cat.PROGRESSION),  # √156.25 − √100 = 2.5 exactly: progression (≥ 2.5)
        (100, 156.0, Cat.POSSIBLE_PROGRESSION),  # 2.49: not by the square-root method, but > 4.93·10 = 49.3
        (100, 149.29, Cat.WITHIN_VARIABILITY),  # +49.29: just inside the ±49.3 repeatability limit
        (100, 149.4, Cat.POSSIBLE_PROGRESSION),
        (100, 50.71, Cat.WITHIN_VARIABILITY),  # −49.29
        (100, 50.6, Cat.DECREASE),
        (20, 0, Cat.WITHIN_VARIABILITY),  # −20 is within 4.93·√20 = 22.05
        (30, 0, Cat.DECREASE),
    ],
)
def test_categories(prior: float, current: float, category: Cat) -> None:
    assert categorise(prior, current) is category


def test_square_root_threshold_sets_significant() -> None:
    assert compare(100, 156.25).significant
    assert not compare(100, 156.0).significant
    assert compare(100, 156.25).sqrt_delta == pytest.approx(2.5)


@pytest.mark.parametrize(("current", "rapid"), [(174.9, False), (175.0, True)])
def test_rapid_progression_above_15_percent_a_year(current: float, rapid: bool) -> None:
    # 100 × 1.15⁴ = 174.90: exactly 15 %/year is not "above 15 %".
    assert compare(100, current).rapid is rapid


def test_incident_cac_has_no_percent_and_cites_the_conversion_rate() -> None:
    result = compare(0, 12)
    assert result.category is Cat.INCIDENT and result.annualized_percent is None
    assert "7%" in result.interpretation


def test_rise_without_statin_beyond_15_percent_mentions_higher_risk_calmly() -> None:
    result = compare(100, 250)
    assert result.rapid and not result.on_statin
    assert "studies link that pace with a higher risk of heart attack" in result.interpretation
    assert "not a cause for alarm" in result.interpretation
    assert "10-20%" not in result.interpretation  # review finding 25: never "rapid" and "typical" at once
    assert "Raggi" in result.source
    assert not any(word in result.interpretation.lower() for word in FAILURE_WORDS)


@pytest.mark.parametrize(("prior", "current"), [(100, 250), (100, 120), (0, 40), (400, 900)])
def test_rise_on_statin_is_expected_never_failure(prior: float, current: float) -> None:
    result = compare(prior, current, on_statin=True)
    text = result.interpretation
    assert result.on_statin
    assert "expected" in text and "does not by itself mean that the treatment is failing" in text
    # the only mention of failing is the negation
    assert text.lower().count("failing") == 1 and "failure" not in text.lower()
    assert "source 001" in result.source and "source 004" in result.source


def test_statin_sentence_only_when_the_score_rose() -> None:
    assert "statin" not in compare(100, 90, on_statin=True).interpretation


@pytest.mark.parametrize(("d2", "short"), [(date(2022, 12, 31), True), (date(2023, 1, 2), False)])
def test_short_interval_warns_about_variability(d2: date, short: bool) -> None:
    assert ("less than 3 years apart" in compare(100, 130, d2=d2).interpretation) is short


def test_latest_score_drives_risk_statement_always_present() -> None:
    assert "latest score matters more" in compare(100, 300).interpretation


def test_prior_after_current_is_refused() -> None:
    with pytest.raises(ValueError):
        compare(100, 120, d1=D2, d2=D1)


def test_years_uses_julian_year() -> None:
    assert compare(10, 20).years == pytest.approx(1461 / 365.25)
    assert math.isclose(compare(10, 20).years, 4.0)


@pytest.mark.parametrize(
    ("prior", "current", "d2"),
    [
        (1e-262, 5.0, D2),
        (0.5, 400.0, D2),
        (1.0, 50_000.0, date(2020, 1, 2)),
    ],  # tiny prior; huge rise in a day
)
def test_degenerate_inputs_give_no_percentage_instead_of_crashing(
    prior: float, current: float, d2: date
) -> None:
    result = compare(prior, current, d2=d2)
    assert result.annualized_percent is None and not result.rapid
