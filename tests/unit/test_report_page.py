"""What the report chooses to say: percentile, repeat scan, statin context, topics, sections, sources."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, date, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest

from fhircac.clinical import narrative
from fhircac.clinical.assess import assess
from fhircac.clinical.assessment import NextScan, Statement
from fhircac.clinical.bands import PRIMARY_BANDS
from fhircac.clinical.policies import get_policy
from fhircac.clinical.record import CacScan, CoronaryHistory, PatientRecord, Race, Sex, StatedAge
from fhircac.report.data import ReportData, assessed
from fhircac.report.page import build_page, long_date, percentile_text, render, repeat_scan_text

ROOT = Path(__file__).resolve().parents[2]
AS_OF = date(2026, 11, 1)
NOW = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)
EXAMPLES = sorted(p.stem for p in (ROOT / "examples").glob("[0-9][0-9]-*.json"))


def data(name: str, policy: str = "acc-aha-2018") -> ReportData:
    document = json.loads((ROOT / "examples" / f"{name}.json").read_text())
    return assessed([(name, document)], None, get_policy(policy), AS_OF)


def expected(name: str, policy: str = "acc-aha-2018") -> dict:  # type: ignore[type-arg]
    suffix = "" if policy == "acc-aha-2018" else f".{policy}"
    summary = json.loads((ROOT / "examples" / "expected" / f"{name}{suffix}.summary.json").read_text())
    return summary[0] if isinstance(summary, list) else summary


def minimal(**kw: object) -> PatientRecord:
    fields = {"scans": (CacScan(150, date(2026, 1, 1)),), "age": StatedAge(60, AS_OF), "sex": Sex.MALE}
    return PatientRecord(**{**fields, **kw})  # type: ignore[arg-type]


class Sections(HTMLParser):
    """Section ids and h2 texts, and whether any script or external resource is referenced."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.headings: list[str] = []
        self.external: list[str] = []
        self._in_h2 = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "section":
            self.sections.append(str(values.get("id")))
        if tag == "h2":
            self._in_h2 = True
            self.headings.append("")
        if tag == "script" or tag == "link" or any(k in ("src", "href") for k in values):
            self.external.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "h2":
            self._in_h2 = False

    def handle_data(self, text: str) -> None:
        if self._in_h2:
            self.headings[-1] += text


def test_percentile_text_states_the_assessments_value_and_its_reference() -> None:
    page = build_page(data("04-cac-100-399-above-75th"), NOW)
    value = expected("04-cac-100-399-above-75th")["percentile"]["value"]
    assert page.percentile == pytest.approx(value, abs=0.5)
    assert f"Higher than about {value:.0f} in 100" in page.percentile_text
    assert "estimate" in page.percentile_text and "MESA" in page.percentile_text


def test_a_reported_percentile_is_not_called_an_estimate() -> None:
    page = build_page(data("12-chinese-reported-percentile"), NOW)
    assert expected("12-chinese-reported-percentile")["percentile"]["estimated"] is False
    assert "estimate" not in page.percentile_text and "scan report" in page.percentile_text


def test_no_percentile_says_which_input_is_missing() -> None:
    page = build_page(data("11-missing-race-and-labs"), NOW)
    assert page.percentile is None
    assert page.percentile_text == "Not available: race not recorded."


def test_percentile_outside_mesa_uses_the_cores_reason() -> None:
    rec = minimal(race=Race.OTHER)
    a = assess(rec, as_of=AS_OF)
    reason = next(w.text for w in a.warnings if w.id == "percentile-not-computed")
    assert percentile_text(a, rec) == reason


def test_a_zero_score_gets_words_not_a_percentile_scale() -> None:
    page = build_page(data("01-cac-zero-low-risk"), NOW)
    assert page.percentile is None and page.percentile_text.startswith("A score of 0")
    assert 'aria-label="Percentile scale' not in render(page)
    assert 'aria-label="Percentile scale' in render(build_page(data("04-cac-100-399-above-75th"), NOW))


def test_the_statin_legend_appears_only_with_statin_periods() -> None:
    assert "time on a statin" in render(build_page(data("06-rising-on-statin"), NOW))
    assert "time on a statin" not in render(build_page(data("07-rapid-rise-no-statin"), NOW))


def test_known_coronary_disease_hides_the_percentile() -> None:
    page = build_page(data("08-known-cad-stent"), NOW)
    assert page.percentile is None and page.percentile_text.startswith("Not shown")
    rec = minimal(race=Race.WHITE, coronary_history=(CoronaryHistory.STENT,))
    assert percentile_text(assess(rec, as_of=AS_OF), rec).startswith("Not shown")


@pytest.mark.parametrize(
    ("earliest", "suggested", "text"),
    [
        (
            date(2029, 1, 1),
            date(2029, 1, 1),
            "Not before 1 January 2029, and only if it would change your care.",
        ),
        (
            date(2025, 1, 1),
            date(2025, 6, 1),
            "A repeat scan can now be considered, if it would change your care.",
        ),
        (
            date(2029, 1, 1),
            None,
            "Not planned for now; if one is ever considered, not before 1 January 2029.",
        ),
        (None, None, "Not needed."),
    ],
)
def test_repeat_scan_text_follows_the_next_scan(
    earliest: date | None, suggested: date | None, text: str
) -> None:
    a = assess(minimal(race=Race.WHITE), as_of=AS_OF)
    a = dataclasses.replace(a, next_scan=NextScan(earliest, suggested, "r", "s"))
    assert repeat_scan_text(a) == text


def test_example_repeat_scan_date_is_the_summarys() -> None:
    suggested = expected("01-cac-zero-low-risk")["next_scan"]["suggested"]
    page = build_page(data("01-cac-zero-low-risk"), NOW)
    assert page.repeat_scan_text.startswith(f"Not before {long_date(date.fromisoformat(suggested))}")


def test_no_statin_context_when_the_statin_began_just_before_the_second_scan() -> None:
    document = json.loads((ROOT / "examples" / "06-rising-on-statin.json").read_text())
    statement = next(
        e["resource"] for e in document["entry"] if e["resource"]["resourceType"] == "MedicationStatement"
    )
    statement["effectivePeriod"] = {"start": "2026-06-01"}  # the scans: 2022-06-14 and 2026-07-08
    late = assessed([("late", document)], None, get_policy("acc-aha-2018"), AS_OF)
    # the core agrees with the page: a statin over less than half the interval is no statin context
    assert late.assessment.progression is not None and late.assessment.progression.on_statin is False
    assert "A statin was taken during this interval" not in late.assessment.progression.interpretation
    page = build_page(late, NOW)
    assert not page.statin_rise and 'id="statin-context"' not in render(page)


def test_statin_context_only_when_the_score_rose_on_a_statin() -> None:
    rising = build_page(data("06-rising-on-statin"), NOW)
    assert rising.statin_rise
    callout = re.search(r'<p class="callout" id="statin-context">(.*?)</p>', render(rising), re.S)
    assert callout and expected("06-rising-on-statin")["progression"]["source"] in callout.group(1)
    for name in ("07-rapid-rise-no-statin", "04-cac-100-399-above-75th", "01-cac-zero-low-risk"):
        page = build_page(data(name), NOW)
        assert not page.statin_rise, name
        assert 'id="statin-context"' not in render(page), name


def test_one_band_is_marked_and_it_is_the_assessments() -> None:
    for name in EXAMPLES:
        page = build_page(data(name), NOW)
        current = [b.label for b in page.bands if b.current]
        assert current == [expected(name)["score"]["band"]], name
        assert [b.label for b in page.bands] == list(PRIMARY_BANDS)


def test_topics_name_only_rules_that_exist() -> None:
    rules = json.loads((ROOT / "profiles" / "CodeSystem-fhircac-rule.json").read_text())
    known = {concept["code"] for concept in rules["concept"]}
    for topic, ids in narrative._TOPICS:
        assert set(ids) <= known, (topic, set(ids) - known)


def test_topics_never_contradict_the_rule_that_raised_them() -> None:
    """CAC 0 'withhold' is not 'whether a statin is right'; aspirin not advised raises no aspirin
    topic (review findings)."""
    withhold = build_page(data("01-cac-zero-low-risk"), NOW).to_discuss
    assert any("held off" in t for t in withhold) and not any("right for you" in t for t in withhold)
    for kw in ({"high_bleeding_risk": True}, {"age": StatedAge(75, AS_OF)}):
        rec = minimal(race=Race.WHITE, **kw)
        a = assess(rec, as_of=AS_OF)
        assert not any(r.id == "aspirin-may-be-considered" for r in a.recommendations), kw
        assert not any("aspirin" in t.lower() for t in a.explanation.to_discuss), kw
    considered = assess(minimal(race=Race.WHITE, high_bleeding_risk=False), as_of=AS_OF)
    if any(r.id == "aspirin-may-be-considered" for r in considered.recommendations):
        assert any("aspirin" in t.lower() for t in considered.explanation.to_discuss)


def test_topics_to_discuss_follow_the_recommendations() -> None:
    def topics(name: str, policy: str = "acc-aha-2018") -> str:
        return " ".join(build_page(data(name, policy), NOW).to_discuss)

    ids = {r["id"] for r in expected("04-cac-100-399-above-75th")["recommendations"]}
    assert any(i.startswith("statin-") for i in ids)
    assert "whether a statin" in topics("04-cac-100-399-above-75th")
    if "lpa-measure-once" in ids:
        assert "lipoprotein(a)" in topics("04-cac-100-399-above-75th")
    assert "aspirin-may-be-considered" in ids and "Low-dose aspirin" in topics("04-cac-100-399-above-75th")
    assert "aspirin" not in topics("01-cac-zero-low-risk")


def test_to_discuss_never_tells_the_patient_what_they_need() -> None:
    for name in EXAMPLES:
        for policy in ("acc-aha-2018", "lifestyle-first"):
            for topic in build_page(data(name, policy), NOW).to_discuss:
                assert "whether" in topic.lower() or "test" in topic.lower() or "mean" in topic, topic
                assert not re.search(r"\byou (need|must)\b", topic, re.IGNORECASE), topic


def test_every_section_the_issue_names_is_rendered_for_every_example() -> None:
    wanted = ["glance", "history", "measures", "meaning", "plan", "questions", "clinician"]
    for name in EXAMPLES:
        parser = Sections()
        parser.feed(render(build_page(data(name), NOW)))
        assert parser.sections == wanted, name
        assert len(parser.headings) == len(wanted)
        assert parser.external == [], name


def test_clinician_section_shows_every_statement_with_its_rule_and_source() -> None:
    for name in ("04-cac-100-399-above-75th", "05-cac-400-metabolically-calm", "08-known-cad-stent"):
        for policy in ("acc-aha-2018", "lifestyle-first"):
            html = render(build_page(data(name, policy), NOW))
            summary = expected(name, policy)
            for statement in summary["recommendations"] + summary["warnings"]:
                row = re.search(
                    rf"<code>{re.escape(statement['id'])}</code></td><td>(.*?)</td><td[^>]*>(.*?)</td>", html
                )
                assert row, (name, policy, statement["id"])
                assert row.group(2) == statement["source"].replace("&", "&amp;"), statement["id"]


def test_patient_text_is_the_cores_explanation() -> None:
    for name in ("06-rising-on-statin", "05-cac-400-metabolically-calm"):
        html = render(build_page(data(name), NOW))
        explanation = expected(name)["explanation"]
        assert explanation["headline"] in html
        for paragraph in explanation["paragraphs"]:
            assert paragraph.replace("'", "&#39;") in html, paragraph[:40]
        for question in explanation["questions"]:
            assert question.replace("'", "&#39;") in html


def test_a_high_score_is_never_an_emergency() -> None:
    html = render(build_page(data("05-cac-400-metabolically-calm"), NOW)).lower()
    for match in re.finditer(r"emergenc", html):
        assert "not an emergency" in html[match.start() - 10 : match.end() + 5]
    assert "urgent" not in html and "immediately" not in html


def test_text_from_the_record_is_escaped() -> None:
    page = build_page(data("06-rising-on-statin"), NOW)
    page = dataclasses.replace(page, lifestyle=(Statement("x", "<script>alert(1)</script>", "<b>s</b>"),))
    html = render(page)
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_missing_inputs_and_reading_notes_reach_the_clinician() -> None:
    page = build_page(data("11-missing-race-and-labs"), NOW)
    html = render(page)
    missing = re.search(r'<ul id="missing">(.*?)</ul>', html, re.S)
    notes = re.search(r'<ul id="input-notes">(.*?)</ul>', html, re.S)
    assert missing and notes
    assert [m for m in expected("11-missing-race-and-labs")["missing"]] == re.findall(
        r"<li>(.*?)</li>", missing.group(1)
    )
    assert "no medication list" in notes.group(1)


def test_the_example_dates_read_as_words() -> None:
    assert long_date(date(2029, 3, 4)) == "4 March 2029"
    page = build_page(data("06-rising-on-statin"), NOW)
    assert page.scan_date == long_date(date.fromisoformat(expected("06-rising-on-statin")["score"]["date"]))
    assert page.scan_date == "8 July 2026"


def test_a_score_just_under_a_band_edge_is_never_shown_as_the_edge() -> None:
    """399.99 is band 100-399: '400' would contradict the marked band (review finding)."""
    a = assess(minimal(scans=(CacScan(399.99, date(2026, 1, 1)),), race=Race.WHITE), as_of=AS_OF)
    assert a.score.band == "100-399"
    assert a.explanation.headline.startswith("Your calcium score is 399.9:")
    page = build_page(ReportData(data("04-cac-100-399-above-75th").read, a), NOW)
    assert page.score == "399.9" and "400" not in page.headline


def test_a_percentile_of_100_or_0_reads_as_a_possible_number() -> None:
    for reported, shown in ((100.0, 99), (99.7, 99), (0.0, 1), (42.4, 42)):
        rec = minimal(scans=(CacScan(150, date(2026, 1, 1), reported_percentile=reported),), race=Race.WHITE)
        a = assess(rec, as_of=AS_OF)
        assert f"about {shown} in 100" in percentile_text(a, rec)
        assert f"about {shown} in 100" in " ".join(a.explanation.meaning)


def test_the_repeat_scan_line_on_the_chart_gives_the_full_date() -> None:
    page = build_page(data("01-cac-zero-low-risk"), NOW)
    suggested = expected("01-cac-zero-low-risk")["next_scan"]["suggested"]
    assert f"repeat scan suggested from {suggested}" in page.chart_svg


def test_symptoms_come_first_on_the_page() -> None:
    # review finding 1 / REFERENCE §14.1: the safety net before anything else, labelled risk figures
    document = json.loads((ROOT / "examples" / "05-cac-400-metabolically-calm.json").read_text())
    patient = next(e["resource"] for e in document["entry"] if e["resource"]["resourceType"] == "Patient")
    chest_pain = {
        "resourceType": "Condition",
        "id": "chest-pain",
        "clinicalStatus": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}
            ]
        },
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "29857009"}]},
        "subject": {"reference": f"Patient/{patient['id']}"},
    }
    document["entry"].append(
        {"resource": chest_pain, "request": {"method": "PUT", "url": "Condition/chest-pain"}}
    )
    page = build_page(assessed([("sx", document)], None, get_policy("acc-aha-2018"), AS_OF), NOW)
    html = render(page)
    assert page.safety and "more than a few minutes" in page.safety[0]
    assert html.index('id="symptoms-first"') < html.index('id="glance"')
    assert "The score itself is not an emergency" in page.headline
    assert "(for people without symptoms)" in html
    assert "exercise-after-symptoms-checked" in {item.id for item in page.lifestyle}


def test_how_the_record_was_read_shows_the_summarys_inputs() -> None:
    from fhircac.clinical.inputs import describe

    html = render(build_page(data("06-rising-on-statin"), NOW))
    shown = re.search(r'<ul id="inputs">(.*?)</ul>', html, re.S)
    assert shown
    lines = [html_unescape(item) for item in re.findall(r"<li>(.*?)</li>", shown.group(1))]
    assert lines == list(describe(expected("06-rising-on-statin")["inputs"]))
    assert any(line.startswith("Statin at the scan: yes") for line in lines)


def html_unescape(text: str) -> str:
    import html

    return html.unescape(text)
