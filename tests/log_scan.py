"""What must never be in a fhircac log line: patient ids, names and birth dates, tokens and keys.

Shared by the integration run's check of every service and worker log it wrote
(tests/integration/conftest.py) and by the test that drives PHI-bearing traffic on purpose
(tests/integration/test_logs_hapi.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# JWTs (CDS client tokens, report links, SMART assertions) and bearer values that were not blanked
TOKENS = re.compile(r"eyJ[\w-]{4,}\.[\w-]+\.[\w-]*|(?i:bearer)\s+(?!…)\S+")
# the integration tests' own patients and scans: c1234abcd-…, t1234abcd-… (their prefix fixtures)
TEST_IDS = re.compile(r"\b[ct][0-9a-f]{8}-[\w.-]+")


def example_phi() -> set[str]:
    """Every example patient's id, given name and birth date (examples/*.json)."""
    found: set[str] = set()
    for path in sorted((ROOT / "examples").glob("[0-9][0-9]-*.json")):
        for entry in json.loads(path.read_text(encoding="utf-8"))["entry"]:
            patient = entry["resource"]
            if patient["resourceType"] != "Patient":
                continue
            found.add(patient["id"])
            found.add(patient["birthDate"])
            found.update(given for name in patient.get("name", []) for given in name.get("given", []))
    return found


def hits(line: str, secrets: Iterable[str] = (), phi: set[str] | None = None) -> set[str]:
    """The PHI and secrets in one line."""
    known = (example_phi() if phi is None else phi) | {secret for secret in secrets if secret}
    found = {value for value in known if value in line}
    return found | {match.group(0) for match in (*TOKENS.finditer(line), *TEST_IDS.finditer(line))}


def findings(text: str, secrets: Iterable[str] = ()) -> list[str]:
    """The lines of ``text`` that hold PHI or a secret, each with what was found."""
    phi = example_phi()
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        if leaked := hits(line, secrets, phi):
            found.append(f"line {number}: {sorted(leaked)}: {line[:300]}")
    return found
