"""What the report says and shows (``build_page``), and the HTML it is rendered to (``render``).

Every word for the patient comes from the clinical core (``Assessment.explanation``, the lifestyle
plan); this module chooses which of it to show where, and turns figures into short labels. The
clinician section repeats each statement with its rule id and source.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from functools import cache

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from fhircac import __version__
from fhircac.clinical.assessment import Assessment, Statement
from fhircac.clinical.bands import PRIMARY_BANDS, shown_score
from fhircac.clinical.inputs import describe as describe_inputs
from fhircac.clinical.inputs import record_inputs
from fhircac.clinical.narrative import RepeatScan, in_100, repeat_scan
from fhircac.clinical.record import PatientRecord
from fhircac.clinical.risk import shown_risk
from fhircac.fhir.write import read_notes
from fhircac.report.chart import ScoreChart, chart_svg, describe, score_chart
from fhircac.report.data import ReportData

BAND_WORDS = {
    "0": "no calcified plaque",
    "1-99": "a small amount",
    "100-399": "a moderate amount",
    "≥400": "a large amount",
}


@dataclass(frozen=True)
class Band:
    label: str
    words: str
    current: bool


@dataclass(frozen=True)
class Figure:
    """One row of the clinician's table: what, the value as shown, and where the value comes from."""

    name: str
    value: str
    source: str = ""


@dataclass(frozen=True)
class ReportPage:
    title: str
    headline: str
    scan_date: str
    as_of: str
    score: str
    bands: tuple[Band, ...]
    percentile: float | None  # shown on the scale
    percentile_text: str  # what the percentile says, or why there is none
    repeat_scan_text: str
    chart: ScoreChart
    chart_svg: Markup
    chart_text: str
    statin_rise: bool  # the score rose while a statin was taken: say it is expected, next to the chart
    progression_source: str  # the rule behind what the page says about the change between scans
    safety: tuple[str, ...]  # with symptoms: what to do about them, shown first (REFERENCE §14.1)
    measures: tuple[str, ...]
    meaning: tuple[str, ...]
    plan: tuple[str, ...]
    lifestyle: tuple[Statement, ...]
    to_discuss: tuple[str, ...]
    questions: tuple[str, ...]
    explanation_source: str
    figures: tuple[Figure, ...]
    recommendations: tuple[Statement, ...]
    warnings: tuple[Statement, ...]
    missing: tuple[str, ...]
    inputs: tuple[str, ...]  # the summary's ``inputs``, described (clinical.inputs)
    input_notes: tuple[str, ...]
    policy: str
    generated: str
    version: str


def long_date(day: date) -> str:
    return f"{day.day} {day:%B %Y}"


def percentile_text(a: Assessment, record: PatientRecord) -> str:
    if record.known_coronary_disease:
        return "Not shown: with known heart disease, comparing your score with other people does not apply."
    p = a.percentile
    if p is not None:
        if a.score.agatston <= 0:
            return "A score of 0: no calcified plaque, like many people of your age, sex and background."
        reference = "the MESA study" if p.reference == "MESA" else "the scan report"
        estimate = "an estimate " if p.estimated else ""
        return (
            f"Higher than about {in_100(p.value)} in 100 people of the same age, sex and background "
            f"({estimate}from {reference})."
        )
    why = next((w.text for w in a.warnings if w.id == "percentile-not-computed"), None)
    if why is None:
        needed = [m.field for m in a.missing if m.field in ("age", "sex", "race")]
        why = f"Not available: {', '.join(needed)} not recorded." if needed else "Not available."
    return why


def repeat_scan_text(a: Assessment) -> str:
    status = repeat_scan(a.next_scan, a.as_of)
    if status is RepeatScan.LATER:
        assert a.next_scan.suggested is not None
        return f"Not before {long_date(a.next_scan.suggested)}, and only if it would change your care."
    if status is RepeatScan.CAN_CONSIDER:
        return "A repeat scan can now be considered, if it would change your care."
    if status is RepeatScan.NOT_ROUTINE:
        assert a.next_scan.earliest is not None
        # the same words as the explanation's plan (review finding 25: one message, not two)
        return (
            f"Not planned for now; if one is ever considered, not before {long_date(a.next_scan.earliest)}."
        )
    return "Not needed."


def _percent(value: float | None) -> str:
    return "not computed" if value is None else shown_risk(value)


def figures(a: Assessment) -> tuple[Figure, ...]:
    score = a.score
    rows = [
        Figure("Agatston score", f"{shown_score(score.agatston)} ({score.date.isoformat()})"),
        Figure("Band / fine band", f"{score.band} / {score.fine_band}", "REFERENCE §2"),
        Figure("CAC-DRS", score.cac_drs, "REFERENCE §2"),
        Figure(
            "Vessels with calcium",
            "not reported" if score.vessels_with_calcium is None else str(score.vessels_with_calcium),
        ),
        Figure("CAC stage", "not assigned" if score.stage is None else str(score.stage), "REFERENCE §2"),
    ]
    if a.percentile is not None:
        kind = "estimated" if a.percentile.estimated else "reported"
        rows.append(
            Figure(
                "Percentile", f"{a.percentile.value:.0f} ({kind}, {a.percentile.reference})", "REFERENCE §3"
            )
        )
    # With symptoms the equations no longer describe this patient (REFERENCE §14.1).
    label = " (for people without symptoms)" if a.symptoms_first else ""
    rows += [
        Figure(
            f"MESA 10-year CHD risk with CAC{label}", _percent(a.risk.mesa_chd_10y_with_cac), "REFERENCE §4"
        ),
        Figure(
            f"MESA 10-year CHD risk without CAC{label}",
            _percent(a.risk.mesa_chd_10y_without_cac),
            "REFERENCE §4",
        ),
        Figure(
            f"PCE 10-year ASCVD risk{label}",
            _percent(a.risk.pce_ascvd_10y) + (f" ({a.risk.pce_band})" if a.risk.pce_band else ""),
            "REFERENCE §4",
        ),
    ]
    p = a.progression
    if p is not None:
        statin = {True: "on a statin", False: "no statin", None: "statin use unknown"}[p.on_statin]
        percent = "" if p.annualized_percent is None else f", {p.annualized_percent:.1f}%/year"
        rows.append(
            Figure(
                "Progression",
                f"{shown_score(p.prior_agatston)} ({p.prior_date.isoformat()}) → "
                f"{shown_score(score.agatston)} over "
                f"{p.years:.1f} years{percent}; √Δ {p.sqrt_delta:.2f}; {p.category.value}; {statin}. "
                f"{p.interpretation}",
                p.source,
            )
        )
    n = a.next_scan
    when = ", ".join(
        part
        for part in (
            f"earliest {n.earliest.isoformat()}" if n.earliest else "",
            f"suggested {n.suggested.isoformat()}" if n.suggested else "",
        )
        if part
    )
    rows.append(Figure("Repeat scan", f"{when or 'none'}. {n.rationale}", n.source))
    markers = "; ".join(
        f"{m.marker} {m.value:g} {m.unit} (target {m.target}{'' if m.on_target else ', off target'})"
        for m in a.metabolic.markers
    )
    rows.append(
        Figure(
            "Metabolic state", a.metabolic.state.value + (f": {markers}" if markers else ""), "REFERENCE §8"
        )
    )
    return tuple(rows)


def build_page(data: ReportData, generated: datetime) -> ReportPage:
    a, record = data.assessment, data.read.record
    assert record is not None
    chart = score_chart(record, a)
    progression = a.progression
    # The core decides whether a statin covered the interval (at least half of it; a statin begun
    # just before the second scan cannot explain the rise), so the callout says what the core says.
    statin_rise = bool(
        progression and progression.on_statin and a.score.agatston > progression.prior_agatston
    )
    explanation = a.explanation
    return ReportPage(
        title="Your heart calcium scan",
        headline=explanation.headline,
        scan_date=long_date(a.score.date),
        as_of=long_date(a.as_of),
        score=f"{shown_score(a.score.agatston)}",
        bands=tuple(Band(b, BAND_WORDS[b], b == a.score.band) for b in PRIMARY_BANDS),
        percentile=None
        if record.known_coronary_disease or a.percentile is None or a.score.agatston <= 0
        else a.percentile.value,
        percentile_text=percentile_text(a, record),
        repeat_scan_text=repeat_scan_text(a),
        chart=chart,
        chart_svg=Markup(chart_svg(chart)),
        chart_text=describe(chart),
        statin_rise=statin_rise,
        progression_source=progression.source if progression else "",
        safety=explanation.safety,
        measures=explanation.measures,
        meaning=explanation.meaning,
        plan=explanation.plan,
        lifestyle=a.lifestyle,
        to_discuss=explanation.to_discuss,
        questions=explanation.questions,
        explanation_source=explanation.source,
        figures=figures(a),
        recommendations=a.recommendations,
        warnings=a.warnings,
        missing=tuple(str(m) for m in a.missing),
        inputs=describe_inputs(record_inputs(record)),
        input_notes=tuple(read_notes(data.read.issues)),
        policy=f"{a.policy.title} ({a.policy.id.value} {a.policy.version})",
        generated=generated.isoformat(timespec="seconds"),
        version=__version__,
    )


@cache
def _environment() -> Environment:
    environment = Environment(
        loader=PackageLoader("fhircac.report", "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters["score"] = shown_score
    return environment


def render(page: ReportPage) -> str:
    return _environment().get_template("report.html").render(page=page)


def render_error(status: int, title: str, messages: list[str]) -> str:
    return _environment().get_template("error.html").render(status=status, title=title, messages=messages)
