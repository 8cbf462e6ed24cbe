"""The ``fhircac`` command line: ``calc`` (the core as a calculator), ``evaluate`` (FHIR files),
``writeback``/``poll``/``subscribe`` (a FHIR server; fhircac.worker.commands) and ``serve``.

Exit codes: 0 ok, 2 bad input (each problem named on stderr), 1 internal error, 3 (server commands)
the FHIR server is unreachable or refused a request.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from typing import IO, Any

from fhircac import __version__

EXIT_OK, EXIT_INTERNAL, EXIT_BAD_INPUT = 0, 1, 2
EXIT_PARTIAL = 3  # evaluate: some patients written, others refused (OperationOutcome on stderr)

# (flag, help); every flag maps to the batch key with dashes turned into underscores.
_VALUE_FLAGS = [
    ("--id", "an identifier echoed as the summary's patient"),
    ("--age", "age in years at the scan"),
    ("--sex", "female or male"),
    ("--race", "white, black, hispanic, chinese or other"),
    ("--cac", "total Agatston score of the current scan"),
    ("--date", "date of the current scan (YYYY-MM-DD; default: --as-of)"),
    ("--vessels", "number of coronary arteries (0-4) with calcium, for the CAC-DRS N modifier"),
    ("--percentile", "percentile reported with the scan (wins over the estimate)"),
    ("--prior-cac", "Agatston score of the previous scan"),
    ("--prior-date", "date of the previous scan"),
    ("--tc", "total cholesterol, mg/dL (or with a unit: '5.2 mmol/L')"),
    ("--hdl", "HDL cholesterol, mg/dL or with a unit"),
    ("--ldl", "LDL cholesterol, mg/dL or with a unit"),
    ("--tg", "triglycerides, mg/dL or with a unit"),
    ("--sbp", "systolic blood pressure, mmHg"),
    ("--apob", "apolipoprotein B, mg/dL or with a unit ('0.9 g/L')"),
    ("--crp", "hs-CRP, mg/L or with a unit"),
    ("--insulin", "fasting insulin, µU/mL"),
    ("--hba1c", "HbA1c, %% or with a unit ('48 mmol/mol')"),
    ("--lpa", "lipoprotein(a); give its unit with --lpa-unit or inline"),
    ("--lpa-unit", "mg/dL or nmol/L (never converted into each other)"),
    ("--policy", "acc-aha-2018 (default) or lifestyle-first"),
    ("--as-of", "assessment date (default: today)"),
]
_BOOLEAN_FLAGS = [
    ("--statin", "taking a statin (now and between the scans)"),
    ("--lipid-lowering", "taking other lipid-lowering medication"),
    ("--bp-treated", "taking blood-pressure medication"),
    ("--diabetes", "has diabetes"),
    ("--smoker", "current smoker"),
    ("--family-history", "family history of premature coronary disease"),
    ("--known-cad", "known coronary disease (MI, stent, bypass)"),
    ("--symptoms", "chest pain or breathlessness on exertion"),
    ("--bleeding-risk", "raised bleeding risk"),
]


def _key(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fhircac", description="FHIR interoperability and CDS for CAC scores"
    )
    parser.add_argument("--version", action="version", version=f"fhircac {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    calc = commands.add_parser(
        "calc",
        help="interpret one CAC score (or a JSON Lines batch) without FHIR",
        description=(
            "Boolean flags: '--diabetes' means yes, absent means no, '--diabetes unknown' means unknown."
        ),
    )
    for flag, text in _VALUE_FLAGS:
        calc.add_argument(flag, dest=_key(flag), help=text)
    for flag, text in _BOOLEAN_FLAGS:
        calc.add_argument(flag, dest=_key(flag), nargs="?", const="yes", metavar="yes|no|unknown", help=text)
    calc.add_argument(
        "--batch", metavar="FILE", help="JSON Lines file ('-' for stdin): one input object a line"
    )

    evaluate = commands.add_parser(
        "evaluate",
        help="assess FHIR input: Bundles or single resources, one or many patients",
        description=(
            "Reads FHIR R4 JSON (Bundles of type collection, searchset, transaction, batch or document, "
            "or single resources) and prints one JSON line per patient: a transaction Bundle of the "
            "RiskAssessment, CarePlan and Provenance (--format bundle) or the assessment summary "
            "(--format summary). "
            "Bad input exits 2 with an OperationOutcome on stderr and writes nothing; when some "
            "patients are refused and others assessed, the others are written and the exit code is 3."
        ),
    )
    evaluate.add_argument("inputs", nargs="+", metavar="INPUT", help="JSON files ('-' for stdin)")
    evaluate.add_argument("--format", choices=("bundle", "summary"), default="bundle")
    evaluate.add_argument("--policy", help="acc-aha-2018 (default) or lifestyle-first")
    evaluate.add_argument("--as-of", dest="as_of", help="assessment date (default: today)")
    evaluate.add_argument("--output", metavar="FILE", help="write here (atomically) instead of stdout")

    from fhircac.worker.commands import add_commands

    add_commands(commands)

    serve = commands.add_parser("serve", help="run the HTTP service under gunicorn")
    serve.add_argument("--host", help="address to bind (default FHIRCAC_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default FHIRCAC_PORT or 8080)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure_logging()
    if args.command == "calc":
        return _calc(args)
    if args.command == "evaluate":
        return _evaluate(args)
    if args.command in ("writeback", "poll", "subscribe"):
        import os
        import sqlite3

        from fhircac.storage import reason
        from fhircac.worker.commands import run

        try:
            return run(args)
        except sqlite3.Error as error:  # the state file (FHIRCAC_STATE_FILE): a line, not a traceback
            state = os.environ.get("FHIRCAC_STATE_FILE") or ".fhircac/state.sqlite"
            print(
                f"fhircac {args.command}: the state file {state} cannot be used: {reason(error)}",
                file=sys.stderr,
            )
            return EXIT_INTERNAL
    if args.command == "serve":
        from fhircac.web.serve import serve

        return serve(host=args.host, port=args.port)
    return EXIT_INTERNAL  # pragma: no cover - argparse enforces the choices


def _configure_logging() -> None:
    """fhircac's one log format (fhircac.logs) on stderr; output stays alone on stdout. A broken
    setting is reported by the command that reads it, so the defaults serve until then."""
    from fhircac import logs
    from fhircac.config import ConfigError, Settings

    try:
        settings = Settings.from_env()
    except ConfigError:
        settings = Settings()
    logs.configure(settings.log_level, settings.log_format)


def _calc(args: argparse.Namespace) -> int:
    from fhircac.calc_input import calculate
    from fhircac.clinical.errors import InvalidInput

    if args.batch is not None:
        given = [flag for flag, _ in _VALUE_FLAGS + _BOOLEAN_FLAGS if getattr(args, _key(flag)) is not None]
        if given:
            print(
                f"fhircac calc: --batch reads every input from the file; drop {', '.join(given)}",
                file=sys.stderr,
            )
            return EXIT_BAD_INPUT
        if args.batch == "-":
            return run_batch(sys.stdin, sys.stdout, sys.stderr)
        try:
            with open(args.batch, encoding="utf-8") as lines:
                return run_batch(lines, sys.stdout, sys.stderr)
        except OSError as error:
            print(f"fhircac calc: cannot read {args.batch}: {error.strerror}", file=sys.stderr)
            return EXIT_BAD_INPUT
    data = {
        _key(flag): getattr(args, _key(flag))
        for flag, _ in _VALUE_FLAGS + _BOOLEAN_FLAGS
        if getattr(args, _key(flag)) is not None
    }
    wrong = [
        f"fhircac calc: {flag}: {getattr(args, _key(flag))!r}: use yes, no or unknown"
        for flag, _ in _BOOLEAN_FLAGS
        if getattr(args, _key(flag)) is not None and getattr(args, _key(flag)).lower() not in _BOOLEAN_VALUES
    ]
    if wrong:
        print("\n".join(wrong), file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        summary = calculate(data, date.today())
    except InvalidInput as error:
        for problem in error.problems:
            print(f"fhircac calc: {_flag_problem(problem.field, problem.message)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    json.dump(summary, sys.stdout, indent=2, ensure_ascii=False)
    sys.stdout.write("\n")
    return EXIT_OK


def _evaluate(args: argparse.Namespace) -> int:
    from fhircac.clinical.errors import InvalidInput
    from fhircac.clinical.policies import get_policy
    from fhircac.evaluate import evaluate, parse_json
    from fhircac.fhir.issues import Issue, has_errors

    try:
        policy = get_policy(args.policy)
        as_of = date.fromisoformat(args.as_of) if args.as_of else date.today()
    except InvalidInput as error:
        return _refuse([Issue("error", "value", "--policy", p.message) for p in error.problems])
    except ValueError:
        return _refuse([Issue("error", "value", "--as-of", f"{args.as_of!r} is not a date (YYYY-MM-DD)")])
    issues: list[Issue] = []  # a document that cannot be read refuses its patients, not the others
    documents = []
    for name in args.inputs:
        try:
            text = sys.stdin.buffer.read() if name == "-" else open(name, "rb").read()  # noqa: SIM115
        except OSError as error:
            issues.append(Issue("fatal", "not-found", name, f"cannot read: {error.strerror}"))
            continue
        origin = "stdin" if name == "-" else name
        document, problems = parse_json(text, origin)
        issues += problems
        if not problems:
            documents.append((origin, document))
    if not documents and has_errors(issues):
        return _refuse(issues)
    writing = args.format == "bundle"
    evaluations, found = evaluate(documents, policy, as_of, datetime.now(UTC), writing=writing)
    issues += found
    if not evaluations and has_errors(issues):
        return _refuse(issues)
    lines = [
        json.dumps(e.summary() if args.format == "summary" else e.produced.transaction(), ensure_ascii=False)
        for e in evaluations
    ]
    text = "".join(line + "\n" for line in lines)
    if args.output:
        try:
            _write_atomically(args.output, text)
        except OSError as error:
            return _refuse(
                [Issue("fatal", "exception", "--output", f"cannot write {args.output}: {error.strerror}")]
            )
    else:
        sys.stdout.write(text)
    if has_errors(issues):
        _refuse(issues)  # the patients (or documents) refused, on stderr
        return EXIT_PARTIAL
    return EXIT_OK


def _refuse(issues: list[Any]) -> int:
    from fhircac.fhir.issues import operation_outcome

    # Errors first; the notes after them often say why (e.g. the only CAC Observation was preliminary).
    ordered = [i for i in issues if i.is_error] + [i for i in issues if not i.is_error]
    json.dump(operation_outcome(ordered), sys.stderr, indent=2, ensure_ascii=False)
    sys.stderr.write("\n")
    return EXIT_BAD_INPUT


def _write_atomically(path: str, text: str) -> None:
    """Readers of ``path`` see the old content or the whole new one, never a partial write."""
    import os
    import tempfile

    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".fhircac-", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


_FLAG_KEYS = {_key(flag): flag for flag, _ in _VALUE_FLAGS + _BOOLEAN_FLAGS}
_BOOLEAN_VALUES = ("yes", "no", "unknown", "true", "false")
# the core names the current scan's details under "cac" (cac.vessels); the flags are their own
_SCAN_DETAILS = {"cac.vessels": "--vessels", "cac.date": "--date", "cac.percentile": "--percentile"}


def _flag_name(field: str) -> str:
    """The flag the user typed for a problem's field (``cac.vessels`` → ``--vessels``)."""
    if field in _SCAN_DETAILS:
        return _SCAN_DETAILS[field]
    head, _, rest = field.partition(".")
    flag = _FLAG_KEYS.get(head, "--" + head.replace("_", "-") if head.isidentifier() else head)
    return flag + ("." + rest if rest else "")


def _flag_problem(field: str, message: str) -> str:
    """A problem in the command line's words: the flag typed, flags for input keys in the message,
    and the flag that fixes it where one does."""
    flag = _flag_name(field)
    message = re.sub(r"\b[a-z]+(?:_[a-z]+)+\b", lambda m: _FLAG_KEYS.get(m.group(0), m.group(0)), message)
    if message == "is required":
        return f"{flag} is required"
    if "after the assessment date" in message:
        message += " (--as-of sets the assessment date; default: today)"
    elif field == "lpa" and "needs its unit" in message:
        message = (
            "Lp(a) needs its unit (mg/dL or nmol/L): add --lpa-unit, or write it inline (--lpa '50 mg/dL')"
        )
    return f"{flag}: {message}"


def run_batch(lines: Iterable[str], out: IO[str], err: IO[str]) -> int:
    """One output line per non-blank input line, in order: a summary, or ``{"line", "errors"}``."""
    from fhircac.calc_input import calculate
    from fhircac.clinical.errors import InvalidInput

    today = date.today()
    failed = 0
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            result: dict[str, Any] = calculate(json.loads(line), today)
        except json.JSONDecodeError as error:
            result = {"line": number, "errors": [{"field": "(line)", "message": f"not JSON: {error.msg}"}]}
        except InvalidInput as error:
            result = {
                "line": number,
                "errors": [{"field": p.field, "message": p.message} for p in error.problems],
            }
        if "errors" in result:
            failed += 1
            for problem in result["errors"]:
                print(f"fhircac calc: line {number}: {problem['field']}: {problem['message']}", file=err)
        out.write(json.dumps(result, ensure_ascii=False))
        out.write("\n")
    return EXIT_BAD_INPUT if failed else EXIT_OK
