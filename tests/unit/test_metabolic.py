"""Metabolic state from source 002's targets (REFERENCE §8)."""

from datetime import date

import pytest

from fhircac.clinical.assessment import Findings, MetabolicState
from fhircac.clinical.metabolic import assess_metabolic
from fhircac.clinical.progression import compare_scans
from fhircac.clinical.record import CacScan
from tests.builders import labs


def state(progression=None, **values: float):  # type: ignore[no-untyped-def]
    findings = Findings()
    return assess_metabolic(labs(**values), progression, findings, report_missing=True), findings


def test_unknown_without_markers_and_says_what_is_missing() -> None:
    result, findings = state()
    assert result.state is MetabolicState.UNKNOWN
    assert {"hs_crp", "apob", "triglycerides", "fasting_insulin"} <= set(findings.missing)


def test_calm_when_every_available_marker_is_on_target() -> None:
    result, _ = state(hs_crp=0.5, apob=70, triglycerides=70, hdl=60, fasting_insulin=5)
    assert result.state is MetabolicState.CALM
    assert len(result.markers) == 4


@pytest.mark.parametrize(
    ("values", "off"),
    [({"hs_crp": 1.0}, "hs_crp"), ({"apob": 80}, "apob"), ({"fasting_insulin": 7}, "fasting_insulin")],
)
def test_active_at_the_target_boundary(values: dict[str, float], off: str) -> None:
    # Targets are "below": CRP <1 mg/L, ApoB <80 mg/dL (0.8 g/L), insulin <7 µU/mL.
    result, _ = state(**values)
    assert result.state is MetabolicState.ACTIVE
    assert [m.marker for m in result.off_target()] == [off]


def test_tg_hdl_ratio_is_computed_in_mmol() -> None:
    # TG 100 mg/dL = 1.129 mmol/L; HDL 45 mg/dL = 1.1637 mmol/L → ratio 0.970 (<1, on target),
    # although the mg/dL ratio 2.22 would look "high" to a naive reading.
    calm, _ = state(triglycerides=100, hdl=45, hs_crp=0.5, apob=70)
    assert calm.state is MetabolicState.CALM
    ratio = next(m for m in calm.markers if m.marker == "tg_hdl_ratio")
    assert ratio.value == pytest.approx(0.970, abs=1e-3) and ratio.on_target
    active, _ = state(triglycerides=110, hdl=45)  # 1.2419 / 1.1637 = 1.067
    assert active.state is MetabolicState.ACTIVE


def test_progression_above_20_percent_is_active_without_statin() -> None:
    # 100 → 250 over 4 years is 25.7 %/year.
    progression = compare_scans(
        CacScan(100, date(2020, 1, 1)), CacScan(250, date(2024, 1, 1)), on_statin=False
    )
    result, _ = state(progression, hs_crp=0.5)
    assert result.state is MetabolicState.ACTIVE
    assert [m.marker for m in result.off_target()] == ["cac_progression"]


def test_progression_on_statin_is_not_counted_and_that_is_said() -> None:
    progression = compare_scans(
        CacScan(100, date(2020, 1, 1)), CacScan(250, date(2024, 1, 1)), on_statin=True
    )
    result, findings = state(progression, hs_crp=0.5, apob=70)
    assert result.state is MetabolicState.CALM
    assert [w.id for w in findings.warnings] == ["progression-marker-excluded-on-statin"]
