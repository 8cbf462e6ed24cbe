"""The score-over-time chart: what it shows (``score_chart``) and how it is drawn (``chart_svg``).

Every CAC score is a point; the periods a statin was taken are shaded behind them, so a rise on a
statin is seen in its context (REFERENCE §5, source 000: statins raise the score as plaque calcifies).
The data part is plain dataclasses so it can be tested without parsing SVG.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, timedelta
from xml.sax.saxutils import escape

from fhircac.clinical.assessment import Assessment
from fhircac.clinical.bands import shown_score
from fhircac.clinical.inputs import courses
from fhircac.clinical.record import DrugClass, PatientRecord

MARGIN = timedelta(days=240)  # room either side of the first and last date
LOOK_BACK = timedelta(days=5 * 365)


@dataclass(frozen=True)
class ScorePoint:
    day: date
    agatston: float
    on_statin: bool | None  # None: statin use is not recorded either way


@dataclass(frozen=True)
class StatinPeriod:
    """A shaded span, clipped to the chart (``start``, ``end``); ``started``/``ended`` are the
    recorded dates, None when the record has none (start unknown, still taken)."""

    start: date
    end: date
    started: date | None
    ended: date | None

    @property
    def words(self) -> str:
        begun = "start not recorded" if self.started is None else f"from {self.started.isoformat()}"
        ending = "still taken" if self.ended is None else f"to {self.ended.isoformat()}"
        return f"{begun}, {ending}"


@dataclass(frozen=True)
class ScoreChart:
    points: tuple[ScorePoint, ...]
    statin_periods: tuple[StatinPeriod, ...]
    statin_unknown: bool
    next_scan: date | None  # the suggested repeat date, when one is suggested
    start: date
    end: date
    y_max: float
    y_ticks: tuple[float, ...]

    @property
    def years(self) -> tuple[int, ...]:
        """1 January of each year inside the chart, for the time axis."""
        first = self.start.year + (0 if self.start == date(self.start.year, 1, 1) else 1)
        return tuple(range(first, self.end.year + 1))


def score_chart(record: PatientRecord, assessment: Assessment) -> ScoreChart:
    scans = record.scans_by_date()
    statin_unknown = record.use_unknown(DrugClass.STATIN)
    points = tuple(
        ScorePoint(
            scan.date,
            scan.agatston,
            None if statin_unknown else record.taking(DrugClass.STATIN, scan.date),
        )
        for scan in scans
    )
    next_scan = assessment.next_scan.suggested
    last = max([scans[-1].date, assessment.as_of, *([next_scan] if next_scan else [])])
    # A statin started before the first scan is shown from its start, up to LOOK_BACK earlier.
    statin_starts = [
        m.start
        for m in record.medications
        if m.drug_class is DrugClass.STATIN and m.start is not None and m.start >= scans[0].date - LOOK_BACK
    ]
    start, end = min([scans[0].date, *statin_starts]) - MARGIN, last + MARGIN
    y_max, y_ticks = _axis(max(scan.agatston for scan in scans))
    return ScoreChart(
        points=points,
        statin_periods=statin_periods(record, start, end),
        statin_unknown=statin_unknown,
        next_scan=next_scan,
        start=start,
        end=end,
        y_max=y_max,
        y_ticks=y_ticks,
    )


def statin_periods(record: PatientRecord, start: date, end: date) -> tuple[StatinPeriod, ...]:
    """Statin use merged across overlapping or back-to-back statements, clipped to [start, end].

    A statement without a start began at a time not recorded; without an end it is still taken.
    """
    merged = courses(record, DrugClass.STATIN)
    return tuple(
        StatinPeriod(max(first or start, start), min(last or end, end), first, last)
        for first, last in merged
        if (first or date.min) <= end and (last or date.max) >= start
    )


def statin_share(record: PatientRecord, first: date, last: date) -> float:
    """The fraction of the days from ``first`` to ``last`` on which a statin was taken."""
    return record.share_taking(DrugClass.STATIN, first, last)


def _axis(highest: float) -> tuple[float, tuple[float, ...]]:
    """A round top and 3-6 round ticks (steps of 1, 2 or 5 × 10ⁿ); a chart of zeros still has a scale."""
    top = max(highest * 1.1, 10.0)
    raw_step = top / 5
    magnitude = 10 ** math.floor(math.log10(raw_step))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw_step)
    y_max = math.ceil(top / step) * step
    return y_max, tuple(step * i for i in range(round(y_max / step) + 1))


# --- drawing ---------------------------------------------------------------------------------------
WIDTH, HEIGHT = 640, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 16, 44
INK = "#1a1a1a"
LINE = "#0b4f8a"  # 8.6:1 on white
STATIN_FILL = "#cfe8d5"  # behind the line; the legend names it
GRID = "#d0d0d0"
NEXT = "#7a4a00"  # 7.4:1 on white


def _x(chart: ScoreChart, day: date) -> float:
    span = (chart.end - chart.start).days or 1
    return LEFT + (WIDTH - LEFT - RIGHT) * (day - chart.start).days / span


def _y(chart: ScoreChart, value: float) -> float:
    return TOP + (HEIGHT - TOP - BOTTOM) * (1 - value / chart.y_max)


def describe(chart: ScoreChart) -> str:
    """The chart in words: the text alternative screen readers get, and the print-out's caption."""
    scores = "; ".join(
        f"{shown_score(p.agatston)} on {p.day.isoformat()}"
        + ("" if p.on_statin is None else (" (on a statin)" if p.on_statin else " (no statin)"))
        for p in chart.points
    )
    text = f"Calcium score{'s' if len(chart.points) > 1 else ''}: {scores}."
    if chart.statin_unknown:
        text += " Statin use is not recorded."
    elif chart.statin_periods:
        text += f" Statin taken: {'; '.join(p.words for p in chart.statin_periods)}."
    else:
        text += " No statin recorded."
    if chart.next_scan is not None:
        text += f" Suggested repeat scan: {chart.next_scan.isoformat()}."
    return text


def chart_svg(
    chart: ScoreChart, title_id: str = "score-chart-title", desc_id: str = "score-chart-desc"
) -> str:
    """Inline SVG (no script, no external reference) that prints in black and white as well."""
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{title_id} {desc_id}" class="score-chart" data-points="{len(chart.points)}" '
        f'data-statin-periods="{len(chart.statin_periods)}">',
        f'<title id="{title_id}">Calcium score over time</title>',
        f'<desc id="{desc_id}">{escape(describe(chart))}</desc>',
    ]
    bottom, top = _y(chart, 0), _y(chart, chart.y_max)
    for period in chart.statin_periods:
        x0, x1 = _x(chart, period.start), _x(chart, period.end)
        out.append(
            f'<rect class="statin-period" x="{x0:.1f}" y="{top:.1f}" width="{max(x1 - x0, 1):.1f}" '
            f'height="{bottom - top:.1f}" fill="{STATIN_FILL}"/>'
        )
    for tick in chart.y_ticks:
        y = _y(chart, tick)
        out.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>')
        out.append(
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="12" fill="{INK}">'
            f"{shown_score(tick)}</text>"
        )
    for year in chart.years:
        x = _x(chart, date(year, 1, 1))
        out.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{bottom:.1f}" y2="{bottom + 5:.1f}" stroke="{INK}"/>'
        )
        if len(chart.years) <= 12 or year % 2 == 0:
            out.append(
                f'<text x="{x:.1f}" y="{bottom + 19:.1f}" text-anchor="middle" font-size="12" '
                f'fill="{INK}">{year}</text>'
            )
    out.append(
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{bottom:.1f}" y2="{bottom:.1f}" stroke="{INK}"/>'
        f'<line x1="{LEFT}" x2="{LEFT}" y1="{top:.1f}" y2="{bottom:.1f}" stroke="{INK}"/>'
        f'<text x="14" y="{(top + bottom) / 2:.1f}" font-size="12" fill="{INK}" text-anchor="middle" '
        f'transform="rotate(-90 14 {(top + bottom) / 2:.1f})">Agatston score</text>'
    )
    if chart.next_scan is not None:
        x = _x(chart, chart.next_scan)
        out.append(
            f'<line class="next-scan" x1="{x:.1f}" x2="{x:.1f}" y1="{top:.1f}" y2="{bottom:.1f}" '
            f'stroke="{NEXT}" stroke-width="2" stroke-dasharray="6 4"/>'
            f'<text x="{x - 4:.1f}" y="{top + 12:.1f}" text-anchor="end" font-size="12" fill="{NEXT}">'
            f"repeat scan suggested from {chart.next_scan.isoformat()}</text>"
        )
    coordinates = [(_x(chart, p.day), _y(chart, p.agatston)) for p in chart.points]
    if len(coordinates) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coordinates)
        out.append(f'<polyline points="{path}" fill="none" stroke="{LINE}" stroke-width="2.5"/>')
    for point, (x, y) in zip(chart.points, coordinates, strict=True):
        out.append(
            f'<circle class="score-point" cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{LINE}" '
            f'data-date="{point.day.isoformat()}" data-score="{shown_score(point.agatston)}"/>'
            f'<text x="{x:.1f}" y="{max(y - 10, top + 12):.1f}" text-anchor="middle" font-size="13" '
            f'font-weight="bold" fill="{INK}">{shown_score(point.agatston)}</text>'
        )
    out.append("</svg>")
    return "".join(out)
