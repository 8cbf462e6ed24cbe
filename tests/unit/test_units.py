"""Unit normalisation with REFERENCE §8's factors; unknown units and impossible values are errors."""

import pytest

from fhircac.clinical.errors import InvalidInput
from fhircac.clinical.units import Analyte, to_canonical


@pytest.mark.parametrize(
    ("analyte", "value", "unit", "expected", "canonical"),
    [
        (Analyte.TOTAL_CHOLESTEROL, 5.172, "mmol/L", 200.0, "mg/dL"),  # ×0.02586
        (Analyte.HDL, 1.293, "mmol/l", 50.0, "mg/dL"),
        (Analyte.TRIGLYCERIDES, 1.6935, "mmol/L", 150.0, "mg/dL"),  # ×0.01129
        (Analyte.HS_CRP, 0.3, "mg/dL", 3.0, "mg/L"),  # ×10
        (Analyte.APOB, 0.8, "g/L", 80.0, "mg/dL"),  # ÷100
        (Analyte.LPA, 500.0, "mg/L", 50.0, "mg/dL"),
        (Analyte.LPA, 125.0, "nmol/L", 125.0, "nmol/L"),  # molar stays molar
        (Analyte.FASTING_INSULIN, 6.0, "µU/mL", 6.0, "u[IU]/mL"),
        (Analyte.FASTING_INSULIN, 6.0, "mU/L", 6.0, "u[IU]/mL"),
        (Analyte.HBA1C, 48.0, "mmol/mol", 6.54, "%"),  # IFCC → NGSP
        (Analyte.SYSTOLIC_BP, 16.0, "kPa", 120.0, "mm[Hg]"),
        (Analyte.SYSTOLIC_BP, 120.0, "mmHg", 120.0, "mm[Hg]"),
    ],
)
def test_conversions(analyte: Analyte, value: float, unit: str, expected: float, canonical: str) -> None:
    converted, target = to_canonical(analyte, value, unit)
    assert target == canonical
    assert converted == pytest.approx(expected, rel=2e-3)


def test_lpa_mass_and_molar_are_never_converted() -> None:
    with pytest.raises(InvalidInput, match="not convertible"):
        to_canonical(Analyte.LPA, 50, "mmol/L")
    with pytest.raises(InvalidInput, match="needs its unit"):
        to_canonical(Analyte.LPA, 50, None)


@pytest.mark.parametrize(
    ("analyte", "unit"),
    [(Analyte.HDL, "furlongs"), (Analyte.HS_CRP, "g/L"), (Analyte.TOTAL_CHOLESTEROL, "nmol/L")],
)
def test_unknown_units_are_named_not_guessed(analyte: Analyte, unit: str) -> None:
    with pytest.raises(InvalidInput) as error:
        to_canonical(analyte, 1.0, unit)
    assert unit in str(error.value) and "accepted" in str(error.value)


def test_insulin_in_pmol_is_refused_with_the_reason() -> None:
    with pytest.raises(InvalidInput, match="not standardised"):
        to_canonical(Analyte.FASTING_INSULIN, 40, "pmol/L")


@pytest.mark.parametrize(
    ("analyte", "value", "unit"),
    [
        (Analyte.HDL, 0, "mg/dL"),
        (Analyte.SYSTOLIC_BP, 500, None),
        (Analyte.TOTAL_CHOLESTEROL, -5, None),
        (Analyte.HBA1C, 40, "%"),
    ],
)
def test_impossible_values(analyte: Analyte, value: float, unit: str | None) -> None:
    with pytest.raises(InvalidInput, match="not a possible value"):
        to_canonical(analyte, value, unit)
