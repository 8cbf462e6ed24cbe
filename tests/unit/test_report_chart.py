"""The report's chart data: every score a point, statin periods merged and clipped, a usable axis."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import pytest

from fhircac.clinical.assess import assess
from fhircac.clinical.policies import get_policy
from fhircac.clinical.record import CacScan, DrugClass, MedicationPeriod, PatientRecord, StatedAge
from fhircac.fhir import codes
from fhircac.report.chart import ScoreChart, chart_svg, describe, score_chart, statin_periods, statin_share
from fhircac.report.data import assessed

ROOT = Path(__file__).resolve().parents[2]
AS_OF = date(2026, 11, 1)


def example(name: str) -> tuple[PatientRecord, ScoreChart]:
    document = json.loads((ROOT / "examples" / f"{name}.json").read_text())
    data = assessed([(name, document)], None, get_policy("acc-aha-2018"), AS_OF)
    assert data.read.record is not None
    return data.read.record, score_chart(data.read.record, data.assessment)


def observations(name: str) -> list[tuple[date, float]]:
    """The CAC Observations of an example bundle, straight from its JSON."""
    document = json.loads((ROOT / "examples" / f"{name}.json").read_text())
    found = []
    for entry in document["entry"]:
        resource = entry["resource"]
        codings = {(c["system"], c["code"]) for c in resource.get("code", {}).get("coding", [])}
        if resource["resourceType"] == "Observation" and codings & codes.CAC_CODES:
            found.append(
                (date.fromisoformat(resource["effectiveDateTime"][:10]), resource["valueQuantity"]["value"])
            )
    return sorted(found)


def record(
    *scans: tuple[date, float], medications: tuple[MedicationPeriod, ...] = (), **kw: object
) -> PatientRecord:
    return PatientRecord(
        scans=tuple(CacScan(score, day) for day, score in scans),
        age=StatedAge(60, AS_OF),
        medications=medications,
        **kw,  # type: ignore[arg-type]
    )


def statin(start: date | None, end: date | None) -> MedicationPeriod:
    return MedicationPeriod(DrugClass.STATIN, start, end)


def test_every_scan_of_the_rising_on_statin_example_is_a_point_in_date_order() -> None:
    rec, chart = example("06-rising-on-statin")
    assert [(p.day, p.agatston) for p in chart.points] == [(s.date, s.agatston) for s in rec.scans_by_date()]
    assert len(chart.points) == 2
    assert chart.points[0].agatston < chart.points[1].agatston
    assert all(p.on_statin for p in chart.points)
    assert len(chart.statin_periods) == 1
    period = chart.statin_periods[0]
    assert period.start <= chart.points[0].day and period.ended is None and period.end == chart.end
    assert period.started is not None and period.words == f"from {period.started.isoformat()}, still taken"


def test_a_rapid_rise_without_statin_has_no_shading_and_says_so() -> None:
    _, chart = example("07-rapid-rise-no-statin")
    assert len(chart.points) >= 2
    assert chart.statin_periods == ()
    assert all(p.on_statin is False for p in chart.points)
    assert "No statin recorded." in describe(chart)


def test_chart_range_holds_every_point_the_next_scan_and_the_report_date() -> None:
    for name in ("01-cac-zero-low-risk", "03-cac-1-99-over-55", "06-rising-on-statin"):
        _, chart = example(name)
        days = [p.day for p in chart.points] + ([chart.next_scan] if chart.next_scan else []) + [AS_OF]
        assert all(chart.start < day < chart.end for day in days), name
        assert all(0 <= p.agatston <= chart.y_max for p in chart.points)


def test_next_scan_is_the_assessments_suggested_date() -> None:
    _, chart = example("01-cac-zero-low-risk")
    assert chart.next_scan is not None and chart.next_scan.year >= chart.points[-1].day.year + 3


def test_overlapping_and_back_to_back_statements_merge_into_one_period() -> None:
    periods = statin_periods(
        record(
            (date(2020, 1, 1), 10),
            medications=(
                statin(date(2018, 1, 1), date(2019, 6, 30)),
                statin(date(2019, 7, 1), date(2020, 3, 1)),  # the next day: one period
                statin(date(2019, 1, 1), date(2019, 2, 1)),  # inside
                MedicationPeriod(DrugClass.ASPIRIN, date(2010, 1, 1), None),  # not a statin
                statin(date(2022, 1, 1), None),
            ),
        ),
        date(2017, 1, 1),
        date(2025, 1, 1),
    )
    assert [(p.start, p.end, p.started, p.ended) for p in periods] == [
        (date(2018, 1, 1), date(2020, 3, 1), date(2018, 1, 1), date(2020, 3, 1)),
        (date(2022, 1, 1), date(2025, 1, 1), date(2022, 1, 1), None),
    ]


def test_open_ended_statements_merge_with_later_ones_without_overflow() -> None:
    """A statement never closed, then a dose change: one period, still taken (review finding)."""
    cases = {
        "open end first": (statin(date(2021, 11, 2), None), statin(date(2023, 1, 1), date(2024, 1, 1))),
        "no dates at all": (statin(None, None), statin(date(2023, 1, 1), date(2024, 1, 1))),
        "end of calendar": (statin(date(2021, 1, 1), date(9999, 12, 31)), statin(date(2023, 1, 1), None)),
    }
    for why, medications in cases.items():
        periods = statin_periods(
            record((date(2022, 1, 1), 10), medications=medications), date(2020, 1, 1), date(2026, 1, 1)
        )
        assert len(periods) == 1, why
        assert periods[0].end == date(2026, 1, 1), why
    no_start = statin_periods(
        record((date(2022, 1, 1), 10), medications=(statin(None, date(2023, 5, 1)),)),
        date(2020, 1, 1),
        date(2026, 1, 1),
    )
    assert no_start[0].start == date(2020, 1, 1) and no_start[0].words == "start not recorded, to 2023-05-01"


def test_statin_share_counts_the_days_covered_between_two_scans() -> None:
    rec = record((date(2020, 1, 1), 10), medications=(statin(date(2022, 1, 1), None),))
    assert statin_share(rec, date(2020, 1, 1), date(2024, 1, 1)) == pytest.approx(0.5, abs=0.01)
    assert statin_share(rec, date(2022, 6, 1), date(2024, 1, 1)) == 1.0
    assert statin_share(rec, date(2018, 1, 1), date(2021, 1, 1)) == 0.0


def test_periods_are_clipped_to_the_chart_and_those_outside_it_dropped() -> None:
    periods = statin_periods(
        record(
            (date(2020, 1, 1), 10),
            medications=(
                statin(None, date(2019, 1, 1)),  # began before anything we know
                statin(date(2005, 1, 1), date(2006, 1, 1)),  # before the chart
                statin(date(2030, 1, 1), None),  # after the chart
            ),
        ),
        date(2018, 6, 1),
        date(2024, 1, 1),
    )
    assert [(p.start, p.end, p.started, p.ended) for p in periods] == [
        (date(2018, 6, 1), date(2019, 1, 1), None, date(2019, 1, 1))
    ]


def test_a_statin_begun_before_the_first_scan_widens_the_chart_within_five_years() -> None:
    base = ((date(2020, 1, 1), 50.0), (date(2024, 1, 1), 90.0))
    near = score_chart(
        rec := record(*base, medications=(statin(date(2017, 1, 1), None),)), assess(rec, as_of=AS_OF)
    )
    assert near.start < date(2017, 1, 1) and near.statin_periods[0].start == date(2017, 1, 1)
    far = score_chart(
        rec := record(*base, medications=(statin(date(2001, 1, 1), None),)), assess(rec, as_of=AS_OF)
    )
    assert far.start > date(2014, 1, 1) and far.statin_periods[0].start == far.start
    assert far.statin_periods[0].started == date(2001, 1, 1) and "from 2001-01-01" in describe(far)


def test_unknown_statin_use_marks_points_unknown_not_no() -> None:
    rec = record(
        (date(2020, 1, 1), 50), (date(2024, 1, 1), 90), unknown_medications=frozenset({DrugClass.STATIN})
    )
    chart = score_chart(rec, assess(rec, as_of=AS_OF))
    assert chart.statin_unknown and [p.on_statin for p in chart.points] == [None, None]
    assert "Statin use is not recorded." in describe(chart)


def test_axis_has_round_ticks_above_the_highest_score_and_a_scale_for_zeros() -> None:
    cases = {0: (10, 2), 7: (10, 2), 260: (300, 100), 1450: (2000, 500), 80: (100, 20)}
    for highest, (top, step) in cases.items():
        rec = record((date(2024, 1, 1), float(highest)))
        chart = score_chart(rec, assess(rec, as_of=AS_OF))
        assert chart.y_max == top, highest
        assert chart.y_ticks == tuple(step * i for i in range(top // step + 1)), highest
        assert 3 <= len(chart.y_ticks) <= 7


def test_svg_draws_each_point_and_period_and_names_them_in_words() -> None:
    _, chart = example("06-rising-on-statin")
    svg = chart_svg(chart)
    assert svg.count('class="score-point"') == len(chart.points)
    assert svg.count('class="statin-period"') == len(chart.statin_periods)
    assert 'role="img"' in svg and "<title" in svg and "<desc" in svg
    for point in chart.points:
        assert f'data-score="{point.agatston:g}"' in svg
        assert point.day.isoformat() in describe(chart)
    assert not re.search(r"<script|href=|xlink", svg)


def test_points_rise_on_screen_as_scores_rise() -> None:
    _, chart = example("06-rising-on-statin")
    ys = [float(y) for y in re.findall(r'class="score-point" cx="[\d.]+" cy="([\d.]+)"', chart_svg(chart))]
    assert len(ys) == 2 and ys[1] < ys[0]  # SVG y grows downward


def test_chart_points_match_the_observations_in_the_example_file() -> None:
    for name in ("06-rising-on-statin", "07-rapid-rise-no-statin", "04-cac-100-399-above-75th"):
        _, chart = example(name)
        expected = observations(name)
        assert len(expected) >= 1, name
        assert [(p.day, p.agatston) for p in chart.points] == expected, name
