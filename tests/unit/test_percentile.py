"""The fitted MESA CAC percentile model: published check values, validity range, and accuracy against the
calculator's answers (when the reference file, which is not part of the repository, is available)."""

from __future__ import annotations

import bisect
import itertools
import json
import os
from pathlib import Path

import pytest

from fhircac.clinical.percentile import (
    MESA_MAX_AGE,
    MESA_MIN_AGE,
    MESA_RACES,
    estimate_percentile,
    percentile_thresholds,
)
from fhircac.clinical.record import Race, Sex

REFERENCE_ENV = "FHIRCAC_MESA_REFERENCE"
# The MESA calculator's figures ("for fitting and checking only"), committed so a clean checkout
# checks the model too; the shared copy, where it exists beside the checkout, must be the same file.
DEFAULT_REFERENCE = Path(__file__).resolve().parents[1] / "data" / "mesa_cac_reference.json"
SHARED_REFERENCE = (
    Path(__file__).resolve().parents[2].parent / "shared" / "clinical" / "data" / "mesa_cac_reference.json"
)
MAX_SCORE = 3000


@pytest.mark.parametrize(
    ("age", "sex", "race", "agatston", "expected"),
    [
        (55, Sex.MALE, Race.WHITE, 0, 0),
        (46, Sex.FEMALE, Race.CHINESE, 35, 97),
        (62, Sex.FEMALE, Race.BLACK, 120, 91),
        (70, Sex.MALE, Race.HISPANIC, 450, 84),
        (72, Sex.MALE, Race.WHITE, 1200, 85),
    ],
)
def test_official_check_values(age: int, sex: Sex, race: Race, agatston: float, expected: int) -> None:
    assert estimate_percentile(age, sex, race, agatston) == expected


@pytest.mark.parametrize("age", [MESA_MIN_AGE - 1, MESA_MAX_AGE + 1, 44.99, 85.0])
def test_age_outside_mesa_range_is_refused(age: float) -> None:
    with pytest.raises(ValueError):
        estimate_percentile(age, Sex.FEMALE, Race.WHITE, 10)


@pytest.mark.parametrize("age", [MESA_MIN_AGE - 1, MESA_MAX_AGE + 1])
def test_thresholds_outside_mesa_range_are_refused(age: int) -> None:
    with pytest.raises(ValueError):
        percentile_thresholds(age, Sex.MALE, Race.BLACK)


def test_race_other_is_refused() -> None:
    with pytest.raises(ValueError):
        estimate_percentile(60, Sex.MALE, Race.OTHER, 100)
    with pytest.raises(ValueError):
        percentile_thresholds(60, Sex.MALE, Race.OTHER)


def test_nan_score_is_refused() -> None:
    with pytest.raises(ValueError):
        estimate_percentile(60, Sex.MALE, Race.WHITE, float("nan"))


def test_age_is_floored_to_completed_years() -> None:
    for score in (1, 10, 100, 1000):
        assert estimate_percentile(62.99, Sex.FEMALE, Race.BLACK, score) == estimate_percentile(
            62, Sex.FEMALE, Race.BLACK, score
        )
    assert estimate_percentile(84.9, Sex.MALE, Race.CHINESE, 50) == estimate_percentile(
        84, Sex.MALE, Race.CHINESE, 50
    )


@pytest.mark.parametrize("race", sorted(MESA_RACES))
@pytest.mark.parametrize("sex", list(Sex))
def test_zero_score_is_percentile_zero(sex: Sex, race: Race) -> None:
    for age in (MESA_MIN_AGE, 60, MESA_MAX_AGE):
        assert estimate_percentile(age, sex, race, 0) == 0


@pytest.mark.parametrize(
    ("age", "sex", "race"),
    [
        (45, Sex.FEMALE, Race.CHINESE),
        (62, Sex.FEMALE, Race.BLACK),
        (70, Sex.MALE, Race.HISPANIC),
        (84, Sex.MALE, Race.WHITE),
    ],
)
def test_monotone_and_bounded_in_score(age: int, sex: Sex, race: Race) -> None:
    thresholds = percentile_thresholds(age, sex, race)
    assert len(thresholds) == 99
    assert all(a <= b for a, b in itertools.pairwise(thresholds))
    previous = 0
    for score in [0.5, *range(1, 5001), 10_000, 100_000, 1e9, float("inf")]:
        percentile = estimate_percentile(age, sex, race, score)
        assert previous <= percentile <= 99
        previous = percentile
    assert previous == 99


def test_thresholds_and_estimate_agree() -> None:
    thresholds = percentile_thresholds(70, Sex.MALE, Race.HISPANIC)
    for n, threshold in enumerate(thresholds, start=1):
        if threshold > 0:
            assert estimate_percentile(70, Sex.MALE, Race.HISPANIC, threshold) >= n
            assert estimate_percentile(70, Sex.MALE, Race.HISPANIC, threshold * (1 - 1e-9)) < n


def _reference_path() -> Path:
    override = os.environ.get(REFERENCE_ENV)
    return Path(override) if override else DEFAULT_REFERENCE


def test_committed_reference_is_the_shared_one() -> None:
    assert DEFAULT_REFERENCE.is_file()
    if SHARED_REFERENCE.is_file():  # beside a developer's checkout; a clean CI checkout has only ours
        assert DEFAULT_REFERENCE.read_bytes() == SHARED_REFERENCE.read_bytes()


def test_accuracy_against_mesa_calculator() -> None:
    path = _reference_path()
    groups = json.loads(path.read_text(encoding="utf-8"))["groups"]

    cases = 0
    total_error = 0
    disagreements = 0
    for race in sorted(MESA_RACES):
        for sex in Sex:
            for age in range(MESA_MIN_AGE, MESA_MAX_AGE + 1):
                official = groups[f"{race}:{sex}:{age}"]["min_score_for_percentile"]
                model = percentile_thresholds(age, sex, race)
                for score in range(1, MAX_SCORE + 1):
                    expected = bisect.bisect_right(official, score)
                    got = bisect.bisect_right(model, score)
                    total_error += abs(got - expected)
                    disagreements += (got >= 75) != (expected >= 75)
                    cases += 1

    assert cases == 320 * MAX_SCORE
    mae = total_error / cases
    agreement = 100 * (1 - disagreements / cases)
    assert mae <= 1.0, f"mean absolute error {mae:.4f} percentile points"
    assert agreement >= 99.5, f">=75th percentile agreement {agreement:.3f} %"
