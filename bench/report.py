"""Benchmark the report page: what rendering adds to reading and assessing the same patient.

For each example patient, in this run: (a) read + assess (the work every entry point does),
(b) the same plus the chart, the text choices and the HTML. Prints the best-of-repeats time per
page and the ratio b / a (machines are noisy; only the ratio is meant to be compared).

    python bench/report.py [--rounds 200] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fhircac.clinical.policies import DEFAULT_POLICY  # noqa: E402
from fhircac.fhir.inputs import VALID_RESOURCES  # noqa: E402
from fhircac.report.data import assessed  # noqa: E402
from fhircac.report.page import build_page, render  # noqa: E402

AS_OF = date(2026, 11, 1)


def best(work: Callable[[], Any], rounds: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        elapsed = 0.0
        for _ in range(rounds):
            VALID_RESOURCES.clear()  # first-time validation cost, as for a new chart
            start = time.perf_counter()
            work()
            elapsed += time.perf_counter() - start
        times.append(elapsed / rounds)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    documents = [
        (path.stem, json.loads(path.read_text()))
        for path in sorted((ROOT / "examples").glob("[0-9][0-9]-*.json"))
    ]
    now = datetime.now(UTC)

    def assess_all() -> None:
        for name, document in documents:
            assessed([(name, document)], None, DEFAULT_POLICY, AS_OF)

    def report_all() -> None:
        for name, document in documents:
            render(build_page(assessed([(name, document)], None, DEFAULT_POLICY, AS_OF), now))

    render(build_page(assessed(documents[:1], None, DEFAULT_POLICY, AS_OF), now))  # templates compiled once
    baseline = best(assess_all, args.rounds, args.repeats) / len(documents)
    page = best(report_all, args.rounds, args.repeats) / len(documents)
    print(f"{len(documents)} example patients, best of {args.repeats} × {args.rounds} rounds")
    print(f"read + assess           {baseline * 1000:7.2f} ms per patient   (baseline)")
    print(f"read + assess + report  {page * 1000:7.2f} ms per patient   ratio {page / baseline:.2f}")
    added = page - baseline
    print(f"the page itself adds    {added * 1000:7.2f} ms ({added / page:.0%} of the page)")


if __name__ == "__main__":
    main()
