"""Rules every shell block of the docs keeps, run or not (tests/docs_blocks.py), and the
documented-output matcher the docs test uses."""

from __future__ import annotations

import re

import pytest

from tests.docs_blocks import all_blocks, mismatches

SHELL = [block for block in all_blocks() if block.language in ("sh", "bash", "")]
COMMAND_START = r"(?:^|[;&|(]\s*|\$\(\s*|^\s*(?:[A-Z_]+=\S*\s+)*)"


@pytest.mark.parametrize("block", SHELL, ids=[block.name for block in SHELL])
def test_shell_blocks_name_commands_that_exist_after_the_two_commands(block) -> None:  # type: ignore[no-untyped-def]
    lines = [line for line in block.code.splitlines() if not line.lstrip().startswith("#")]
    code = "\n".join(line.split(" #")[0] for line in lines)
    # after `make serve` / `make test`, fhircac and the project's Python are in .venv/bin only
    assert not re.search(COMMAND_START + r"fhircac\s", code, re.M), "use .venv/bin/fhircac"
    assert not re.search(COMMAND_START + r"python\s", code, re.M), "use .venv/bin/python"
    # HAPI (the test FHIR server) is on 8090 or $HAPI_URL; 8080 is fhircac's own port, it has no /fhir
    assert not re.search(r"(localhost|127\.0\.0\.1):8080/fhir\b", code), "fhircac has no /fhir"


def test_the_matcher_reads_the_docs_wildcards() -> None:
    printed = {"a": 1, "b": "REFERENCE §6; source 000 (x)", "c": [{"id": "x", "t": 1}, {"id": "y"}], "d": []}
    assert mismatches({"a": 1, "b": "REFERENCE §6; …", "c": [{"id": "x", "…": "…"}, "…"]}, printed) == []
    assert mismatches({"a": "…", "d": []}, printed) == []
    assert mismatches({"d": ["hs_crp: …"]}, printed) == ["$.d: 0 items printed, the docs show 1"]
    assert mismatches({"a": 2}, printed) == ["$.a: printed 1, the docs say 2"]
    assert mismatches({"e": 1}, printed) == ["$.e: not printed"]
    assert mismatches({"c": [{"id": "x"}]}, printed) == ["$.c: 2 items printed, the docs show 1"]
