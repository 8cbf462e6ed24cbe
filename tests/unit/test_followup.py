"""Repeat-scan timing (REFERENCE §6) for both policies; never sooner than 3 years."""

from datetime import date

import pytest

from fhircac.clinical.policies import ACC_AHA_2018, LIFESTYLE_FIRST
from fhircac.clinical.record import CoronaryHistory, add_years
from tests.builders import SCAN_DATE, labs, run, statin

PLUS_3, PLUS_5 = date(2029, 1, 15), date(2031, 1, 15)
CALM = labs(hs_crp=0.5, apob=70)
ACTIVE = labs(hs_crp=3.0, apob=70)


@pytest.mark.parametrize("policy", [ACC_AHA_2018, LIFESTYLE_FIRST])
def test_cac_zero_few_risk_factors_five_years(policy) -> None:  # type: ignore[no-untyped-def]
    scan = run(0, policy=policy).next_scan
    assert (scan.earliest, scan.suggested) == (PLUS_5, PLUS_5)


@pytest.mark.parametrize("policy", [ACC_AHA_2018, LIFESTYLE_FIRST])
@pytest.mark.parametrize(
    "risk", [{"diabetes": True}, {"current_smoker": True, "family_history_premature_chd": True}]
)
def test_cac_zero_with_diabetes_or_several_risk_factors_three_years(policy, risk) -> None:  # type: ignore[no-untyped-def]
    scan = run(0, policy=policy, **risk).next_scan
    assert (scan.earliest, scan.suggested) == (PLUS_3, PLUS_3)
    assert "Dzaye" in scan.source


def test_one_risk_factor_is_not_several() -> None:
    assert run(0, current_smoker=True).next_scan.suggested == PLUS_5


def test_unknown_diabetes_is_reported_for_cac_zero() -> None:
    result = run(0, diabetes=None)
    assert any(m.field == "diabetes" and "repeat-scan" in " ".join(m.needed_for) for m in result.missing)


@pytest.mark.parametrize(
    ("cac", "suggested", "phrase"),
    [
        (50, PLUS_5, "only if the result would change management"),
        (250, None, "not routine"),
        (800, None, "adds little"),
    ],
)
def test_acc_aha_by_band(cac: float, suggested: date | None, phrase: str) -> None:
    scan = run(cac).next_scan
    assert scan.earliest == PLUS_3 and scan.suggested == suggested
    assert phrase in scan.rationale


def test_acc_aha_on_statin_no_repeat_needed_to_judge_it() -> None:
    scan = run(50, medications=(statin(),)).next_scan
    assert scan.suggested is None and scan.earliest == PLUS_3
    assert "Not needed to judge the statin" in scan.rationale


@pytest.mark.parametrize(
    ("cac", "markers", "suggested"),
    [
        (50, labs(), PLUS_3),
        (250, CALM, PLUS_3),
        (800, CALM, PLUS_3),
        (250, ACTIVE, None),
        (800, ACTIVE, None),
        (800, labs(), None),
    ],
)
def test_lifestyle_first_by_band_and_metabolic_state(cac: float, markers, suggested: date | None) -> None:  # type: ignore[no-untyped-def]
    scan = run(cac, policy=LIFESTYLE_FIRST, labs=markers).next_scan
    assert scan.earliest == PLUS_3 and scan.suggested == suggested
    assert "source 002" in scan.source


@pytest.mark.parametrize("policy", [ACC_AHA_2018, LIFESTYLE_FIRST])
def test_known_coronary_disease_no_repeat_scan(policy) -> None:  # type: ignore[no-untyped-def]
    scan = run(300, policy=policy, coronary_history=(CoronaryHistory.STENT,)).next_scan
    assert scan.earliest is None and scan.suggested is None
    assert "REFERENCE §9" in scan.source


@pytest.mark.parametrize("policy", [ACC_AHA_2018, LIFESTYLE_FIRST])
@pytest.mark.parametrize("cac", [0, 1, 50, 99, 100, 250, 399, 400, 2000])
@pytest.mark.parametrize(
    "extra", [{}, {"diabetes": True}, {"medications": (statin(),)}, {"labs": CALM}, {"labs": ACTIVE}]
)
def test_never_sooner_than_three_years(policy, cac: float, extra) -> None:  # type: ignore[no-untyped-def]
    scan = run(cac, policy=policy, **extra).next_scan
    assert scan.earliest is not None and scan.earliest >= add_years(SCAN_DATE, 3)
    assert scan.suggested is None or scan.suggested >= scan.earliest


def test_add_years_on_29_february() -> None:
    assert add_years(date(2024, 2, 29), 3) == date(2027, 2, 28)
    assert add_years(date(2024, 2, 29), 4) == date(2028, 2, 29)
