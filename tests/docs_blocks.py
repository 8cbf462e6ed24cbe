"""The shell blocks of the documentation, as tests/integration/test_docs_run.py runs them.

A block runs when the line before its fence is ``<!-- runnable -->``. It runs from the repository
root with ``FHIRCAC_URL`` (the service) and ``HAPI_URL`` (the FHIR server's base) set, so a block
reads them with a default for the reader (``${FHIRCAC_URL:-http://127.0.0.1:8080}``). A ``json``
block right after it, marked ``<!-- output -->``, is what the block prints: compared key by key,
where ``"…"`` stands for anything, ``…`` inside a string for any text there, and a list ending
in ``"…"`` for any further items.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RUNNABLE = "<!-- runnable -->"
OUTPUT = "<!-- output -->"
ELLIPSIS = "…"


def documents() -> list[Path]:
    """README, docs/ and the READMEs of examples/ and profiles/."""
    return [
        ROOT / "README.md",
        *sorted((ROOT / "docs").glob("*.md")),
        ROOT / "examples" / "README.md",
        ROOT / "examples" / "cds-hooks" / "README.md",
        ROOT / "profiles" / "README.md",
    ]


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    runnable: bool
    output: Any = None  # the expected JSON, when an output block follows

    @property
    def name(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        fence = re.match(r"^```(\w*)\s*$", lines[index])
        if not fence:
            index += 1
            continue
        start, language = index, fence.group(1)
        end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("```"))
        code = "\n".join(lines[start + 1 : end]) + "\n"
        previous = next((lines[i].strip() for i in range(start - 1, -1, -1) if lines[i].strip()), "")
        if previous == OUTPUT and found and found[-1].runnable and found[-1].output is None:
            last = found.pop()
            found.append(Block(last.path, last.line, last.language, last.code, True, json.loads(code)))
        else:
            found.append(Block(path, start + 1, language, code, previous == RUNNABLE))
        index = end + 1
    return found


def all_blocks() -> list[Block]:
    return [block for path in documents() for block in blocks(path)]


def mismatches(expected: Any, actual: Any, where: str = "$") -> list[str]:
    """How ``actual`` differs from the documented ``expected`` (with its ``…`` wildcards)."""
    if expected == ELLIPSIS:
        return []
    if isinstance(expected, str) and ELLIPSIS in expected:
        pattern = ".*".join(re.escape(part) for part in expected.split(ELLIPSIS))
        ok = isinstance(actual, str) and re.fullmatch(pattern, actual, re.S) is not None
        return [] if ok else [f"{where}: printed {actual!r}, the docs say {expected!r}"]
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return [f"{where}: {actual!r} is not an object"]
        shown = [key for key in expected if key != ELLIPSIS]
        problems = [f"{where}.{key}: not printed" for key in shown if key not in actual]
        for key, value in expected.items():
            if key != ELLIPSIS and key in actual:
                problems += mismatches(value, actual[key], f"{where}.{key}")
        return problems
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return [f"{where}: {actual!r} is not a list"]
        open_ended = bool(expected) and expected[-1] == ELLIPSIS
        shown = expected[:-1] if open_ended else expected
        if len(actual) < len(shown) or (not open_ended and len(actual) != len(shown)):
            return [f"{where}: {len(actual)} items printed, the docs show {len(shown)}"]
        return [p for i, item in enumerate(shown) for p in mismatches(item, actual[i], f"{where}[{i}]")]
    return [] if expected == actual else [f"{where}: printed {actual!r}, the docs say {expected!r}"]
