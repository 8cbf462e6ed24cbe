"""The patient explanation: calm, specific, never alarming (REFERENCE §11, source 004)."""

import re
from datetime import date

import pytest

from fhircac.clinical.policies import ACC_AHA_2018, LIFESTYLE_FIRST
from fhircac.clinical.record import Measurement
from tests.builders import labs, run, statin

ALARMING = re.compile(
    r"\b(urgent|urgently|danger|dangerous|deadly|fatal|failure|immediately|alarming)\b", re.I
)


def full_text(result) -> str:  # type: ignore[no-untyped-def]
    e = result.explanation
    return " ".join((e.headline, *e.paragraphs, *e.questions))


@pytest.mark.parametrize("policy", [ACC_AHA_2018, LIFESTYLE_FIRST])
@pytest.mark.parametrize("cac", [0, 5, 50, 150, 450, 1500, 6000])
def test_never_alarming(policy, cac: float) -> None:  # type: ignore[no-untyped-def]
    text = full_text(run(cac, policy=policy, prior=(cac / 2, date(2021, 1, 1))))
    assert not ALARMING.search(text)
    # "emergency" appears only negated
    assert text.count("emergency") == text.count("not an emergency")


def test_high_score_headline_is_a_signal_not_an_emergency() -> None:
    assert "not an emergency" in run(1500).explanation.headline
    assert "not an emergency" not in run(50).explanation.headline


def test_says_what_the_score_measures_and_does_not() -> None:
    text = full_text(run(150))
    assert "does not show soft plaque" in text and "narrowed or blocked" in text
    assert "not to lower this number" in text  # the goal is stable plaque


def test_cac_zero_is_reassuring_not_a_guarantee() -> None:
    assert "not a guarantee of zero risk" in full_text(run(0))


def test_rise_on_statin_explained_as_possibly_good_news() -> None:
    result = run(300, prior=(150, date(2021, 1, 1)), medications=(statin(date(2020, 6, 1)),))
    assert "does not by itself mean the statin is failing" in full_text(result)


def test_rise_without_statin_is_not_called_good_news() -> None:
    text = " ".join(run(300, prior=(150, date(2021, 1, 1))).explanation.paragraphs[2:-2])
    assert "statin is failing" not in text and "went from 150 to 300" in text


def test_percentile_and_risk_in_plain_numbers() -> None:
    result = run(
        120,
        age=62,
        reported_percentile=91,
        labs=labs(total_cholesterol=200, hdl=50),
        systolic_bp=Measurement(130, "mm[Hg]"),
    )
    text = full_text(result)
    assert "higher than about 91 in 100" in text
    assert result.risk.mesa_chd_10y_with_cac is not None
    in_100 = round(result.risk.mesa_chd_10y_with_cac * 100)
    assert (
        f"about {in_100} in 100 people like you" in text and f"about {100 - in_100} in 100 would not" in text
    )


def test_questions_from_source_004_adapt_to_the_patient() -> None:
    questions = run(300).explanation.questions
    assert any("lipoprotein(a)" in q for q in questions)
    assert any("statin and my calcium score rises" in q for q in questions)
    measured = run(300, labs=labs(lpa=30)).explanation.questions
    assert not any("lipoprotein(a)" in q for q in measured)
    assert len(run(0).explanation.questions) == 3


def test_next_scan_date_in_the_explanation() -> None:
    assert "around 2031-01-15 is the suggested time, not earlier" in full_text(run(0))
    not_planned = "A repeat scan is not planned for now; if one is ever considered, not before 2029-01-15"
    assert not_planned in full_text(run(800))
