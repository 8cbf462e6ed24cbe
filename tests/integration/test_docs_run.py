"""Docs that run as written: every shell block marked ``<!-- runnable -->`` in the README, docs/,
examples/ and profiles/ (tests/docs_blocks.py) runs in bash (``-euo pipefail``) against a real
``fhircac serve`` and a HAPI FHIR server of its own (so write-backs in the docs touch no other
test's patients), from a copy of the repository root made of links, with ``FHIRCAC_URL`` and
``HAPI_URL`` set and without the project's .venv/bin on PATH. A documented output must be what
the block prints.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from hapi_server import HapiServer

from fhircac.fhir.client import FhirClient
from tests.docs_blocks import Block, all_blocks, mismatches
from tests.integration.conftest import EXAMPLES, ROOT, fhircac_service, load_example

pytestmark = pytest.mark.integration

RUNNABLE = [block for block in all_blocks() if block.runnable]


@pytest.fixture(scope="module")
def docs_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    folder = tmp_path_factory.mktemp("docs")
    with HapiServer(log_path=ROOT / ".artifacts" / "hapi-docs.log") as hapi:
        client = FhirClient(hapi.base_url, retries=2, backoff_factor=0.1)
        try:
            for path in EXAMPLES:  # "with the examples loaded" (examples/README.md)
                load_example(client, path)
        finally:
            client.close()
        settings = {
            "FHIRCAC_CDS_AUTH": "off",
            "FHIRCAC_FHIR_BASE_URL": hapi.base_url,
            "FHIRCAC_DATA_DIR": str(folder / "data"),
        }
        with fhircac_service(settings, ROOT / ".artifacts" / "docs-service.log") as base_url:
            work = folder / "repo"  # the repository root, so files the docs write land here
            work.mkdir()
            for name in tracked_top_level() | {".venv"}:  # not local state (.fhircac) or outputs
                (work / name).symlink_to(ROOT / name)
            venv_bin = str(ROOT / ".venv" / "bin")
            path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != venv_bin)
            env = {
                "PATH": path or "/usr/bin:/bin",
                "HOME": os.environ.get("HOME", str(folder)),
                "LANG": "C.UTF-8",
                "FHIRCAC_URL": base_url,
                "HAPI_URL": hapi.base_url,
            }
            yield work, env


def tracked_top_level() -> set[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    return {line.split("/", 1)[0] for line in listed.stdout.splitlines() if (ROOT / line).exists()}


def test_the_docs_have_runnable_blocks_in_every_place_a_reader_starts() -> None:
    places = {block.path.relative_to(ROOT).as_posix() for block in RUNNABLE}
    expected = {"examples/README.md", "examples/cds-hooks/README.md", "profiles/README.md"}
    assert expected <= places and any(place.startswith("docs/") for place in places), places


@pytest.mark.parametrize("block", RUNNABLE, ids=[block.name for block in RUNNABLE])
def test_a_runnable_block_runs_as_written(block: Block, docs_env: tuple[Path, dict[str, str]]) -> None:
    work, env = docs_env
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block.code],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = f"{run.stdout[-2000:]}\n{run.stderr[-3000:]}"
    assert run.returncode == 0, f"{block.name} exited {run.returncode}:\n{output}"
    assert "Traceback" not in run.stderr, run.stderr
    if block.output is not None:
        printed, _ = json.JSONDecoder().raw_decode(run.stdout.lstrip())  # the first JSON value printed
        assert mismatches(block.output, printed) == [], block.name
