"""``fhircac calc``: flags and --batch map to the same input; bad input exits 2 naming the field."""

import io
import json
from pathlib import Path

import pytest

from fhircac.cli import EXIT_BAD_INPUT, EXIT_OK, main, run_batch


def calc(capsys, args: str) -> tuple[int, dict | None, str]:  # type: ignore[no-untyped-def]
    """Run ``fhircac calc`` with fixed dates plus ``args`` (split on spaces; '_' stands for a space)."""
    code = main(["calc", *BASE, *(arg.replace("_", " ") for arg in args.split())])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else None, err


BASE = ("--as-of", "2026-03-01", "--date", "2026-01-15")


def test_reference_check_case(capsys) -> None:  # type: ignore[no-untyped-def]
    code, summary, _ = calc(
        capsys, "--age 70 --sex male --race hispanic --cac 450 --tc 190 --hdl 50 --sbp 130 --bp-treated"
    )
    assert code == EXIT_OK and summary is not None
    assert summary["percentile"] == {"value": 84, "estimated": True, "reference": "MESA"}  # REFERENCE §3
    assert summary["score"]["band"] == "≥400" and summary["score"]["cac_drs"] == "A3"
    assert summary["risk"]["mesa_chd_10y_with_cac"] > 0.0306  # more than the CAC 0 check value


def test_mesa_check_value_through_the_cli(capsys) -> None:  # type: ignore[no-untyped-def]
    _, summary, _ = calc(
        capsys, "--age 70 --sex male --race hispanic --cac 0 --tc 190 --hdl 50 --sbp 130 --bp-treated"
    )
    assert summary is not None and summary["risk"]["mesa_chd_10y_with_cac"] == 0.0306


def test_si_units_inline(capsys) -> None:  # type: ignore[no-untyped-def]
    _, mg, _ = calc(capsys, "--age 60 --sex female --race white --cac 50 --tc 200 --hdl 50 --sbp 120")
    _, si, _ = calc(
        capsys,
        "--age 60 --sex female --race white --cac 50 --tc 5.172_mmol/L --hdl 1.293_mmol/L --sbp 16_kPa",
    )
    assert mg is not None and si is not None
    assert si["risk"]["pce_ascvd_10y"] == pytest.approx(mg["risk"]["pce_ascvd_10y"], abs=2e-4)


def test_progression_and_statin_flags(capsys) -> None:  # type: ignore[no-untyped-def]
    _, summary, _ = calc(capsys, "--cac 300 --prior-cac 150 --prior-date 2021-01-15 --statin")
    assert summary is not None
    assert summary["progression"]["on_statin"] is True
    assert "does not by itself mean that the treatment is failing" in summary["progression"]["interpretation"]


def test_boolean_flag_values(capsys) -> None:  # type: ignore[no-untyped-def]
    _, unknown, _ = calc(capsys, "--cac 0 --diabetes unknown")
    _, absent, _ = calc(capsys, "--cac 0")
    assert unknown is not None and absent is not None
    assert any(m.startswith("diabetes:") for m in unknown["missing"])
    assert not any(m.startswith("diabetes:") for m in absent["missing"])


def test_vessels_give_the_n_modifier(capsys) -> None:  # type: ignore[no-untyped-def]
    _, summary, _ = calc(capsys, "--cac 120 --vessels 2")
    assert summary is not None and summary["score"]["cac_drs"] == "A2/N2"


def test_policy_is_recorded(capsys) -> None:  # type: ignore[no-untyped-def]
    _, summary, _ = calc(capsys, "--cac 800 --policy lifestyle-first --crp 0.5")
    assert summary is not None and summary["policy"]["id"] == "lifestyle-first"


@pytest.mark.parametrize(
    ("args", "named"),
    [
        ("--cac -5", "--cac"),
        ("--cac abc", "--cac: 'abc' is not a number"),
        ("--cac 10 --age 130", "--age"),
        ("--cac 10 --age old", "--age"),
        ("--cac 10 --sex unknown", "--sex"),
        ("--cac 10 --race martian", "--race"),
        ("--cac 10 --prior-cac 5 --prior-date 2026-02-01", "--prior-date"),
        ("--cac 10 --prior-cac 5", "--prior-date"),
        ("--cac 10 --lpa 40 --lpa-unit furlongs", "--lpa"),
        ("--cac 10 --lpa 40", "--lpa: Lp(a) needs its unit"),
        ("--cac 10 --hdl 50_furlongs", "--hdl"),
        ("--cac 10 --insulin 40_pmol/L", "--insulin"),
        ("--cac 10 --policy nope", "--policy"),
        ("--cac 10 --date 2026-13-01", "--date"),
        ("--cac 10 --vessels 5", "vessels"),
        ("--cac 10 --vessels 1.5", "--vessels"),
        ("--cac 10 --diabetes maybe", "--diabetes"),
        ("--cac 10 --date 2026-04-01", "after the assessment date"),
        ("--age 60", "cac"),
    ],
)
def test_bad_input_exits_2_naming_the_field(capsys, args: str, named: str) -> None:  # type: ignore[no-untyped-def]
    code, summary, err = calc(capsys, args)
    assert code == EXIT_BAD_INPUT and summary is None
    assert named in err


@pytest.mark.parametrize(
    ("args", "line"),
    [
        ("--cac 10 --vessels 5", "--vessels: 5 vessels: there are four coronary arteries scored"),
        ("--cac 10 --date 2027-05-01", "--date: 2027-05-01 is after the assessment date 2026-11-01 (--as-of"),
        ("--cac 10 --diabetes maybe", "--diabetes: 'maybe': use yes, no or unknown"),
        ("--cac 10 --prior-cac 5", "--prior-date: --prior-cac and --prior-date go together"),
        ("--age 60", "fhircac calc: --cac is required"),
        ("--cac 10 --lpa 40", "add --lpa-unit, or write it inline (--lpa '50 mg/dL')"),
        ("--cac 10 --percentile 150", "--percentile: 150 is not a percentile (0-100)"),
    ],
)
def test_errors_name_the_flag_the_user_typed(capsys, args: str, line: str) -> None:  # type: ignore[no-untyped-def]
    code, _, err = calc(capsys, args + " --as-of 2026-11-01")
    assert code == EXIT_BAD_INPUT and line in err
    assert "--cac." not in err and "True" not in err and "_" not in err.replace("fhircac calc", "")


def test_age_30_is_not_an_error(capsys) -> None:  # type: ignore[no-untyped-def]
    code, summary, _ = calc(capsys, "--cac 10 --age 30 --sex male --race white --tc 200 --hdl 50 --sbp 120")
    assert code == EXIT_OK and summary is not None
    assert summary["risk"]["mesa_chd_10y_with_cac"] is None and summary["percentile"] is None
    assert {"mesa-risk-not-computed", "percentile-not-computed"} <= {w["id"] for w in summary["warnings"]}


# --- batch ------------------------------------------------------------------------------------------


def test_batch_one_output_line_per_input_line_bad_lines_named() -> None:
    lines = [
        json.dumps({"cac": 120, "age": 62, "sex": "female", "race": "black", "as_of": "2026-03-01"}),
        "",
        json.dumps({"cac": -1}),
        "{not json",
        json.dumps({"cac": 5, "prior_cac": 1, "prior_date": "2020-01-01", "statin": True, "id": "p-9"}),
        json.dumps({"cac": 5, "priorcac": 1}),
    ]
    out, err = io.StringIO(), io.StringIO()
    code = run_batch(lines, out, err)
    results = [json.loads(line) for line in out.getvalue().splitlines()]
    assert code == EXIT_BAD_INPUT and len(results) == 5
    assert results[0]["percentile"]["value"] == 91  # REFERENCE §3 check value
    assert results[1] == {
        "line": 3,
        "errors": [{"field": "cac", "message": results[1]["errors"][0]["message"]}],
    }
    assert results[2]["line"] == 4 and "not JSON" in results[2]["errors"][0]["message"]
    assert results[3]["patient"] == "p-9" and results[3]["progression"]["on_statin"] is True
    assert results[4]["errors"] == [{"field": "priorcac", "message": "is not a known input"}]
    assert "line 3: cac" in err.getvalue()


def test_batch_all_good_exits_0(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "in.jsonl"
    path.write_text(
        "\n".join(json.dumps({"cac": n, "age": 55, "sex": "male", "race": "white"}) for n in (0, 10, 500))
    )
    assert main(["calc", "--batch", str(path)]) == EXIT_OK
    bands = [json.loads(line)["score"]["band"] for line in capsys.readouterr().out.splitlines()]
    assert bands == ["0", "1-99", "≥400"]


def test_batch_refuses_other_flags_and_missing_files(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["calc", "--batch", str(tmp_path / "absent.jsonl")]) == EXIT_BAD_INPUT
    assert "cannot read" in capsys.readouterr().err
    assert main(["calc", "--batch", "-", "--cac", "10"]) == EXIT_BAD_INPUT
    assert "drop --cac" in capsys.readouterr().err


def test_batch_line_that_is_not_an_object() -> None:
    out, err = io.StringIO(), io.StringIO()
    assert run_batch(["[1, 2]", "42"], out, err) == EXIT_BAD_INPUT
    assert [json.loads(line)["line"] for line in out.getvalue().splitlines()] == [1, 2]
