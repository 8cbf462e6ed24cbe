"""10-year risk equations (REFERENCE §4): MESA CHD risk with and without CAC, and the PCE.

Each function takes the inputs it needs as plain numbers and returns the risk as a fraction,
or raises ``NotComputable`` with the reason, so the caller can put the reason in ``missing``.
MESA predicts CHD, the PCE predict ASCVD: the two are never compared on one scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from fhircac.clinical.record import Race, Sex


class NotComputable(Exception):
    """The equation does not apply to these inputs; ``str(exc)`` says why."""


@dataclass(frozen=True)
class RiskFactors:
    """The inputs shared by the MESA and PCE equations; lipids in mg/dL, SBP in mmHg."""

    age: float
    sex: Sex
    race: Race
    total_cholesterol: float
    hdl: float
    systolic_bp: float
    bp_treated: bool
    diabetes: bool
    current_smoker: bool


@dataclass(frozen=True)
class _MesaCoefficients:
    age: float
    male: float
    race: dict[Race, float]
    diabetes: float
    smoker: float
    total_cholesterol: float
    hdl: float
    lipid_lowering: float
    systolic_bp: float
    bp_treated: float
    family_history: float
    log_cac: float
    baseline_survival: float


MESA_WITH_CAC = _MesaCoefficients(
    age=0.0172,
    male=0.4079,
    race={Race.WHITE: 0.0, Race.CHINESE: -0.3475, Race.BLACK: 0.0353, Race.HISPANIC: -0.0222},
    diabetes=0.3892,
    smoker=0.3717,
    total_cholesterol=0.0043,
    hdl=-0.0114,
    lipid_lowering=0.1206,
    systolic_bp=0.0066,
    bp_treated=0.2278,
    family_history=0.3239,
    log_cac=0.2743,
    baseline_survival=0.99833,
)
MESA_WITHOUT_CAC = _MesaCoefficients(
    age=0.0455,
    male=0.7496,
    race={Race.WHITE: 0.0, Race.CHINESE: -0.5055, Race.BLACK: -0.2111, Race.HISPANIC: -0.1900},
    diabetes=0.5168,
    smoker=0.4732,
    total_cholesterol=0.0053,
    hdl=-0.0140,
    lipid_lowering=0.2473,
    systolic_bp=0.0085,
    bp_treated=0.3381,
    family_history=0.4522,
    log_cac=0.0,
    baseline_survival=0.99963,
)
MESA_RISK_AGES = (45.0, 84.0)  # JACC 2015 p1644: ages 45-84 (REFERENCE §4)


def mesa_chd_risk(
    factors: RiskFactors, *, lipid_lowering: bool, family_history: bool, agatston: float | None
) -> float:
    """MESA 10-year CHD risk; with ``agatston`` the CAC model, without it the base model. Not clamped."""
    low, high = MESA_RISK_AGES
    if not low <= factors.age <= high:
        raise NotComputable(f"MESA risk is defined for ages {low:g}-{high:g}, not {factors.age:.0f}")
    coefficients = MESA_WITHOUT_CAC if agatston is None else MESA_WITH_CAC
    if factors.race not in coefficients.race:
        raise NotComputable("MESA risk is defined for White, Black, Hispanic and Chinese participants only")
    linear = (
        coefficients.age * factors.age
        + coefficients.male * (factors.sex is Sex.MALE)
        + coefficients.race[factors.race]
        + coefficients.diabetes * factors.diabetes
        + coefficients.smoker * factors.current_smoker
        + coefficients.total_cholesterol * factors.total_cholesterol
        + coefficients.hdl * factors.hdl
        + coefficients.lipid_lowering * lipid_lowering
        + coefficients.systolic_bp * factors.systolic_bp
        + coefficients.bp_treated * factors.bp_treated
        + coefficients.family_history * family_history
    )
    if agatston is not None:
        linear += coefficients.log_cac * math.log(agatston + 1)
    return 1.0 - math.pow(coefficients.baseline_survival, math.exp(linear))


@dataclass(frozen=True)
class _PceCoefficients:
    ln_age: float
    ln_age_squared: float
    ln_tc: float
    ln_age_ln_tc: float
    ln_hdl: float
    ln_age_ln_hdl: float
    ln_treated_sbp: float
    ln_age_ln_treated_sbp: float
    ln_untreated_sbp: float
    ln_age_ln_untreated_sbp: float
    smoker: float
    ln_age_smoker: float
    diabetes: float
    mean: float
    baseline_survival: float


# Goff 2014, Table A; "other" races use the White equations.
PCE_COEFFICIENTS: dict[tuple[Sex, bool], _PceCoefficients] = {
    (Sex.FEMALE, False): _PceCoefficients(
        -29.799,
        4.884,
        13.540,
        -3.114,
        -13.578,
        3.149,
        2.019,
        0.0,
        1.957,
        0.0,
        7.574,
        -1.665,
        0.661,
        -29.18,
        0.9665,
    ),
    (Sex.FEMALE, True): _PceCoefficients(
        17.114,
        0.0,
        0.940,
        0.0,
        -18.920,
        4.475,
        29.291,
        -6.432,
        27.820,
        -6.087,
        0.691,
        0.0,
        0.874,
        86.61,
        0.9533,
    ),
    (Sex.MALE, False): _PceCoefficients(
        12.344,
        0.0,
        11.853,
        -2.664,
        -7.990,
        1.769,
        1.797,
        0.0,
        1.764,
        0.0,
        7.837,
        -1.795,
        0.658,
        61.18,
        0.9144,
    ),
    (Sex.MALE, True): _PceCoefficients(
        2.469, 0.0, 0.302, 0.0, -0.307, 0.0, 1.916, 0.0, 1.809, 0.0, 0.549, 0.0, 0.645, 19.54, 0.8954
    ),
}
PCE_AGES = (40.0, 79.0)
# The ranges the equations were derived in (Goff 2014); outside them the estimate is not made.
PCE_RANGES = {"total_cholesterol": (130.0, 320.0), "hdl": (20.0, 100.0), "systolic_bp": (90.0, 200.0)}


def pce_ascvd_risk(factors: RiskFactors) -> float:
    """Pooled Cohort Equations 10-year ASCVD risk (first hard ASCVD event)."""
    low, high = PCE_AGES
    if not low <= factors.age < high + 1:
        raise NotComputable(f"the PCE are defined for ages {low:g}-{high:g}, not {factors.age:.0f}")
    for name, (lowest, highest) in PCE_RANGES.items():
        value: float = getattr(factors, name)
        if not lowest <= value <= highest:
            label = name.replace("_", " ")
            raise NotComputable(f"the PCE are defined for {label} {lowest:g}-{highest:g}, not {value:g}")
    c = PCE_COEFFICIENTS[(factors.sex, factors.race is Race.BLACK)]
    ln_age = math.log(factors.age)
    ln_tc = math.log(factors.total_cholesterol)
    ln_hdl = math.log(factors.hdl)
    ln_sbp = math.log(factors.systolic_bp)
    if factors.bp_treated:
        sbp_term = c.ln_treated_sbp * ln_sbp + c.ln_age_ln_treated_sbp * ln_age * ln_sbp
    else:
        sbp_term = c.ln_untreated_sbp * ln_sbp + c.ln_age_ln_untreated_sbp * ln_age * ln_sbp
    linear = (
        c.ln_age * ln_age
        + c.ln_age_squared * ln_age**2
        + c.ln_tc * ln_tc
        + c.ln_age_ln_tc * ln_age * ln_tc
        + c.ln_hdl * ln_hdl
        + c.ln_age_ln_hdl * ln_age * ln_hdl
        + sbp_term
        + c.smoker * factors.current_smoker
        + c.ln_age_smoker * ln_age * factors.current_smoker
        + c.diabetes * factors.diabetes
    )
    return 1.0 - math.pow(c.baseline_survival, math.exp(linear - c.mean))


def shown_risk(fraction: float) -> str:
    """A 10-year risk (a fraction) as people read it: a percentage with one decimal."""
    return f"{fraction * 100:.1f}%"


def pce_band(risk: float) -> str:
    """2018 guideline risk categories."""
    if risk < 0.05:
        return "low"
    if risk < 0.075:
        return "borderline"
    if risk < 0.20:
        return "intermediate"
    return "high"
