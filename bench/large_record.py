"""Benchmark one very large patient record through ``fhircac evaluate``.

The record is the biggest Bundle of the Synthea corpus (tools/synthea_corpus.py, built when not
cached) with its history replicated COPIES times under fresh ids (one Patient, every other entry
copied; the CAC scans only once), as a long-stay ``$everything`` export would be. Each run is a
separate process, so its peak RSS is its own (``wait4``); the baseline is a process that only reads
and parses the same JSON, measured in the same run. Prints time and peak memory per entry and the
ratios; the issue's aim is at most 4x the parse-only time and 1.5x its peak memory.

    python bench/large_record.py [--copies 8] [--repeats 2] [--source CHECKOUT]

``--source`` runs the fhircac package of another checkout (e.g. main's, or another branch's worktree)
on the same record, for a before/after in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

import synthea_corpus  # noqa: E402

BASELINE = "import json, sys\njson.loads(open(sys.argv[1], 'rb').read())\n"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
COPY_NAMESPACE = uuid.UUID("0b9e4a5e-8f7d-4c1b-a3e2-5d6c7b8a9f10")


def biggest_record(corpus: Path) -> tuple[str, dict[str, Any]]:
    manifest = synthea_corpus.load_manifest(corpus)
    item = max(manifest["files"], key=lambda f: f["entries"])
    return item["file"], json.loads((corpus / item["file"]).read_bytes())


def _is_cac_scan(resource: dict[str, Any]) -> bool:
    codes = {coding.get("code") for coding in resource.get("code", {}).get("coding", [])}
    return resource["resourceType"] == "Observation" and bool(codes & {"450360000", "450734004"})


def replicate(bundle: dict[str, Any], copies: int) -> dict[str, Any]:
    """The record with every entry but the Patient and the CAC scans repeated under fresh ids
    (references inside a copy point into the same copy; the Patient stays the one subject)."""
    patient = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    patient_id = patient["resource"]["id"]
    cac = {"450360000", "450734004"}
    history = [
        e
        for e in bundle["entry"]
        if e is not patient
        and not {c.get("code") for c in e["resource"].get("code", {}).get("coding", [])} & cac
    ]
    text = json.dumps(history)
    entries = list(bundle["entry"])
    for copy in range(1, copies):

        def fresh(match: re.Match[str], copy: int = copy) -> str:
            old = match.group(0)
            return old if old == patient_id else str(uuid.uuid5(COPY_NAMESPACE, f"{copy}:{old}"))

        entries += json.loads(UUID.sub(fresh, text))
    return {**bundle, "entry": entries}


def measure(argv: list[str], source: Path) -> tuple[float, float, int]:
    """Wall time (s), CPU time (s) and peak RSS (bytes) of one child process running ``source``'s
    fhircac. CPU time is the ratio that survives a busy machine; wall time is shown beside it."""
    env = dict(os.environ, PYTHONPATH=str(source))
    start = time.perf_counter()
    process = subprocess.Popen(argv, cwd=source, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    stderr = process.stderr.read().decode() if process.stderr else ""
    if process.returncode != 0:
        raise SystemExit(f"{argv[:4]} exited {process.returncode}: {stderr[-2000:]}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024  # Linux reports KiB


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--source", action="append", default=[], help="another checkout to run as well")
    args = parser.parse_args()
    name, bundle = biggest_record(synthea_corpus.build())
    record = replicate(bundle, args.copies)
    entries = len(record["entry"])
    as_of = synthea_corpus.AS_OF.isoformat()
    sources = [("this checkout", ROOT)] + [(str(Path(s)), Path(s).resolve()) for s in args.source]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "large-record.json"
        path.write_text(json.dumps(record), encoding="utf-8")
        size = path.stat().st_size
        print(
            f"large record: {name} ({len(bundle['entry'])} entries) x{args.copies} = {entries} entries, "
            f"{size / 2**20:.0f} MiB JSON"
        )
        runs: dict[str, list[tuple[float, float, int]]] = {"parse only": []}
        commands = {"parse only": ([sys.executable, "-c", BASELINE, str(path)], ROOT)}
        evaluate = [sys.executable, "-m", "fhircac", "evaluate", str(path), "--as-of", as_of]
        for label, source in sources:
            commands[f"evaluate ({label})"] = ([*evaluate, "--format", "summary"], source)
            runs[f"evaluate ({label})"] = []
        for _ in range(args.repeats):  # interleaved, so a busy moment hits every command alike
            for label, (argv, source) in commands.items():
                runs[label].append(measure(argv, source))
        base_wall = min(w for w, _, _ in runs["parse only"])
        base_cpu = min(c for _, c, _ in runs["parse only"])
        base_rss = max(m for _, _, m in runs["parse only"])
        for label, measured in runs.items():
            wall = min(w for w, _, _ in measured)
            cpu = min(c for _, c, _ in measured)
            peak = max(m for _, _, m in measured)
            per_entry = cpu / entries * 1e6
            print(
                f"  {label:32s} cpu {cpu:6.1f} s {per_entry:6.0f} us/entry {cpu / base_cpu:5.1f}x parse"
                f" | wall {wall:6.1f} s {wall / base_wall:5.1f}x | peak {peak / 2**20:6.0f} MiB"
                f" {peak / entries / 1024:5.1f} KiB/entry {peak / base_rss:5.2f}x parse"
            )
        print("  aim: evaluate <= 4x parse-only time and <= 1.5x parse-only peak memory")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
