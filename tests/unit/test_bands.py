"""Every band boundary of REFERENCE §2, checked on both sides."""

import pytest

from fhircac.clinical.bands import arterial_age, cac_drs, cac_stage, fine_band, primary_band


@pytest.mark.parametrize(
    ("score", "band"),
    [
        (0, "0"),
        (0.5, "1-99"),
        (1, "1-99"),
        (99, "1-99"),
        (99.9, "1-99"),
        (100, "100-399"),
        (399, "100-399"),
        (399.9, "100-399"),
        (400, "≥400"),
        (5000, "≥400"),
    ],
)
def test_primary_band(score: float, band: str) -> None:
    assert primary_band(score) == band


@pytest.mark.parametrize(
    ("score", "band"),
    [
        (0, "0"),
        (1, "1-10"),
        (10, "1-10"),
        (10.5, "11-100"),
        (11, "11-100"),
        (100, "11-100"),
        (101, "101-400"),
        (400, "101-400"),
        (400.5, ">400"),
        (401, ">400"),
    ],
)
def test_fine_band(score: float, band: str) -> None:
    assert fine_band(score) == band


@pytest.mark.parametrize(
    ("score", "vessels", "drs"),
    [
        (0, None, "A0"),
        (0, 0, "A0"),
        (1, None, "A1"),
        (99, 1, "A1/N1"),
        (100, 2, "A2/N2"),
        (299, None, "A2"),
        (299, 3, "A2/N3"),
        (300, None, "A3"),
        (300, 4, "A3/N4"),
        (2500, 4, "A3/N4"),
    ],
)
def test_cac_drs(score: float, vessels: int | None, drs: str) -> None:
    assert cac_drs(score, vessels) == drs


@pytest.mark.parametrize(
    ("score", "percentile", "stage"),
    [
        (0, None, 0),
        (50, 74, 1),
        (50, 75, 2),
        (50, None, None),
        (99, 10, 1),
        (100, 10, 2),
        (299, None, 2),
        (300, None, 3),
        (999, 99, 3),
        (1000, None, 4),
    ],
)
def test_cac_stage(score: float, percentile: float | None, stage: int | None) -> None:
    assert cac_stage(score, percentile) == stage


def test_arterial_age_formula() -> None:
    # McClelland 2009: 39.1 + 7.25 ln(CAC + 1); CAC 0 sits at the formula's intercept.
    assert arterial_age(0) == pytest.approx(39.1)
    assert arterial_age(100) == pytest.approx(39.1 + 7.25 * 4.61512, abs=1e-3)
