"""The risk equations against their published check values (REFERENCE §4)."""

import pytest

from fhircac.clinical.record import Race, Sex
from fhircac.clinical.risk import NotComputable, RiskFactors, mesa_chd_risk, pce_ascvd_risk, pce_band


def factors(**changes: object) -> RiskFactors:
    base = {
        "age": 55.0,
        "sex": Sex.FEMALE,
        "race": Race.WHITE,
        "total_cholesterol": 213.0,
        "hdl": 50.0,
        "systolic_bp": 120.0,
        "bp_treated": False,
        "diabetes": False,
        "current_smoker": False,
    }
    base.update(changes)
    return RiskFactors(**base)  # type: ignore[arg-type]


MESA_CHECK = factors(
    age=70.0,
    sex=Sex.MALE,
    race=Race.HISPANIC,
    total_cholesterol=190.0,
    hdl=50.0,
    systolic_bp=130.0,
    bp_treated=True,
)


def test_mesa_with_cac_published_check_value() -> None:
    # REFERENCE §4: 70 M Hispanic, TC 190, HDL 50, SBP 130 treated, CAC 0 → 3.06 %.
    risk = mesa_chd_risk(MESA_CHECK, lipid_lowering=False, family_history=False, agatston=0)
    assert round(risk * 100, 2) == 3.06


def test_mesa_without_cac_uses_the_base_model() -> None:
    # By hand from the base-model column: L = 0.0455·70 + 0.7496 − 0.1900 + 0.0053·190 − 0.0140·50
    # + 0.0085·130 + 0.3381 = 5.4947; risk = 1 − 0.99963^exp(5.4947) = 8.61 %.
    risk = mesa_chd_risk(MESA_CHECK, lipid_lowering=False, family_history=False, agatston=None)
    assert round(risk * 100, 2) == 8.61


def test_mesa_rises_with_cac_and_is_not_clamped() -> None:
    low = mesa_chd_risk(MESA_CHECK, lipid_lowering=False, family_history=False, agatston=0)
    high = mesa_chd_risk(MESA_CHECK, lipid_lowering=False, family_history=False, agatston=1000)
    assert high > low
    # ln(1001) · 0.2743 multiplies the hazard by about 6.6
    assert (1 - high) == pytest.approx((1 - low) ** (1001**0.2743), rel=1e-9)


@pytest.mark.parametrize("age", [44.0, 85.0, 86.0, 30.0])
def test_mesa_outside_its_ages_is_not_computable(age: float) -> None:
    # REFERENCE §4 (corrected): the MESA risk score was derived at ages 45-84
    with pytest.raises(NotComputable, match="ages 45-84"):
        mesa_chd_risk(factors(age=age), lipid_lowering=False, family_history=False, agatston=10)


def test_mesa_at_84_is_computed() -> None:
    assert mesa_chd_risk(factors(age=84.0), lipid_lowering=False, family_history=False, agatston=10) > 0


def test_mesa_other_race_is_not_computable() -> None:
    with pytest.raises(NotComputable, match="White, Black, Hispanic and Chinese"):
        mesa_chd_risk(factors(race=Race.OTHER), lipid_lowering=False, family_history=False, agatston=10)


@pytest.mark.parametrize(
    ("sex", "race", "published_percent"),
    [
        (Sex.FEMALE, Race.WHITE, 2.1),
        (Sex.FEMALE, Race.BLACK, 3.0),
        (Sex.MALE, Race.WHITE, 5.4),
        (Sex.MALE, Race.BLACK, 6.1),
    ],
)
def test_pce_published_check_values(sex: Sex, race: Race, published_percent: float) -> None:
    # Goff 2014: 55 y, TC 213, HDL 50, untreated SBP 120, non-smoker, no diabetes.
    risk = pce_ascvd_risk(factors(sex=sex, race=race))
    assert round(risk * 100, 1) == pytest.approx(published_percent, abs=0.1)


def test_pce_other_race_uses_white_equations() -> None:
    assert pce_ascvd_risk(factors(race=Race.CHINESE)) == pce_ascvd_risk(factors(race=Race.WHITE))


def test_pce_treated_sbp_raises_risk() -> None:
    assert pce_ascvd_risk(factors(systolic_bp=140.0, bp_treated=True)) > pce_ascvd_risk(
        factors(systolic_bp=140.0)
    )


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"age": 39.0}, "ages 40-79"),
        ({"age": 80.0}, "ages 40-79"),
        ({"total_cholesterol": 350.0}, "total cholesterol"),
        ({"hdl": 15.0}, "hdl"),
        ({"systolic_bp": 210.0}, "systolic bp"),
    ],
)
def test_pce_outside_derivation_ranges(change: dict[str, float], reason: str) -> None:
    with pytest.raises(NotComputable, match=reason):
        pce_ascvd_risk(factors(**change))


@pytest.mark.parametrize(
    ("risk", "band"),
    [
        (0.049, "low"),
        (0.05, "borderline"),
        (0.0749, "borderline"),
        (0.075, "intermediate"),
        (0.199, "intermediate"),
        (0.20, "high"),
    ],
)
def test_pce_bands(risk: float, band: str) -> None:
    assert pce_band(risk) == band
