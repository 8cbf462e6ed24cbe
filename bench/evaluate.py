"""Benchmark ``fhircac evaluate`` over 1,000 patient transaction Bundles.

Prints the cost per patient of each stage next to the cost of only parsing the same JSON, all
measured in this run (machines are noisy: each measurement is repeated and the best kept). The
issue's aim: parsing + FHIR validation should dominate, not fhircac's own mapping.

Also times the real command (``python -m fhircac evaluate FILE…``) end to end against a process
that only reads and parses the same files.

    python bench/evaluate.py [--patients 1000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from unittest.mock import patch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fhircac.clinical.assess import assess  # noqa: E402
from fhircac.clinical.policies import DEFAULT_POLICY  # noqa: E402
from fhircac.fhir import inputs, write  # noqa: E402
from fhircac.fhir.inputs import group_by_patient  # noqa: E402
from fhircac.fhir.read import read_patient  # noqa: E402
from fhircac.fhir.write import produce  # noqa: E402

AS_OF = date(2026, 11, 1)
BASELINE = "import json, sys\nfor name in sys.argv[1:]:\n    json.loads(open(name, 'rb').read())\n"


def make_bundles(count: int, seed: int = 2026) -> list[str]:
    """The examples, re-identified and varied (scores, ages), so every patient is distinct."""
    rng = random.Random(seed)
    templates = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "examples").glob("[0-9][0-9]-*.json"))]
    texts = []
    for index in range(count):
        text = templates[index % len(templates)].replace("cac-ex", f"b{index}-ex")
        bundle = json.loads(text)
        for entry in bundle["entry"]:
            resource = entry["resource"]
            if resource["resourceType"] == "Patient":
                year = int(resource["birthDate"][:4]) + rng.randint(-3, 3)
                resource["birthDate"] = f"{year}{resource['birthDate'][4:]}"
            quantity = resource.get("valueQuantity")
            if quantity and quantity.get("code") == "{Agatston}" and quantity["value"] > 0:
                quantity["value"] = round(quantity["value"] * rng.uniform(0.9, 1.1), 1)
                resource.pop("component", None)  # keep totals and vessels consistent
        texts.append(json.dumps(bundle))
    return texts


def best(repeats: int, work: Callable[[], Any]) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeats):
        inputs.VALID_RESOURCES.clear()  # first-time costs: every patient here is new to the service
        start = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    texts = make_bundles(args.patients)
    recorded = datetime.now(UTC)

    t_parse, documents = best(args.repeats, lambda: [json.loads(t) for t in texts])
    named = [(f"patient-{i}.json", d) for i, d in enumerate(documents)]
    t_group, grouped = best(args.repeats, lambda: group_by_patient(named))
    groups, issues = grouped
    assert not [i for i in issues if i.is_error], issues[:3]
    t_read, reads = best(args.repeats, lambda: [read_patient(g, AS_OF) for g in groups])
    t_assess, assessments = best(
        args.repeats,
        lambda: [assess(r.record, DEFAULT_POLICY, as_of=AS_OF) for r in reads],  # type: ignore[arg-type]
    )
    pairs = list(zip(assessments, reads, strict=True))
    t_write, produced = best(args.repeats, lambda: [produce(a, r, recorded=recorded) for a, r in pairs])
    t_dump, _ = best(args.repeats, lambda: [json.dumps(p.transaction()) for p in produced])
    # The same two stages with fhir.resources validation switched off: the difference is its cost.
    with (
        patch.object(inputs, "validate_resource", lambda *_: []),
        patch.object(write, "validate_resource", lambda *_: []),
    ):
        t_group_only, _ = best(args.repeats, lambda: group_by_patient(named))
        t_build_only, _ = best(args.repeats, lambda: [produce(a, r, recorded=recorded) for a, r in pairs])
    t_validate, t_out_validate = t_group - t_group_only, t_write - t_build_only

    n = len(groups)
    stages = [
        ("parse JSON (baseline)", t_parse),
        ("validate input (fhir.resources)", t_validate),
        ("group + resolve references", t_group_only),
        ("read: FHIR -> PatientRecord", t_read),
        ("assess (clinical core)", t_assess),
        ("write: build resources", t_build_only),
        ("validate output (fhir.resources)", t_out_validate),
        ("serialise output", t_dump),
    ]
    total = sum(t for _, t in stages)
    print(
        f"fhircac evaluate, {n} patients "
        f"({sum(len(t) for t in texts) / n / 1024:.1f} KiB JSON each), in-process:"
    )
    for name, seconds in stages:
        per_patient = seconds / n * 1000
        ratio, share = seconds / t_parse, seconds / total
        print(f"  {name:36s} {per_patient:7.3f} ms/patient  {ratio:6.1f}x parse  {share:5.1%}")
    mapping = t_read + t_build_only + t_group_only
    parsing_validation = t_parse + t_validate + t_out_validate
    print(f"  {'total':36s} {total / n * 1000:7.3f} ms/patient  {total / t_parse:6.1f}x parse")
    print(
        f"  parsing + validation {parsing_validation / total:.0%} of the time; fhircac's mapping "
        f"(group, read, write) {mapping / total:.0%}; clinical core {t_assess / total:.0%}"
    )

    with tempfile.TemporaryDirectory() as folder:
        files = []
        for index, text in enumerate(texts):
            path = Path(folder) / f"patient-{index}.json"
            path.write_text(text, encoding="utf-8")
            files.append(str(path))
        command = [sys.executable, "-m", "fhircac", "evaluate", *files, "--as-of", AS_OF.isoformat()]
        baseline = [sys.executable, "-c", BASELINE, *files]
        cli_times, base_times = [], []
        for _ in range(args.repeats):
            for argv, times in ((command, cli_times), (baseline, base_times)):
                start = time.perf_counter()
                subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
                times.append(time.perf_counter() - start)
        cli, base = min(cli_times), min(base_times)
        print(f"command line, {n} files: {cli:.2f} s ({cli / n * 1000:.2f} ms/patient, start-up included)")
        print(f"  baseline process that only reads + parses the files: {base:.2f} s; ratio {cli / base:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
