"""Worker throughput against HAPI FHIR, as a ratio to HAPI alone accepting the same writes.

    .venv/bin/python bench/writeback.py [--patients 200] [--rounds 2]

Starts its own HAPI server (tools/hapi_server.py) on 127.0.0.1. Each round seeds N patients (one
CAC scan, a lipid panel, blood pressure, smoking status and a statin each: what a real record
holds), then times the worker's poll pass (the code ``fhircac poll`` runs) until every scan has
its RiskAssessment, CarePlan and Provenance. The baseline, measured in the same run on the same
server, is HAPI alone accepting the very transactions the worker wrote (with fresh identifiers, so
they create rather than match): the cost of the writes with nothing of fhircac's around them.
Prints observations per second, HTTP requests per observation and the ratio; best of ``--rounds``.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

from hapi_server import HapiServer  # noqa: E402

from fhircac.clinical.policies import get_policy  # noqa: E402
from fhircac.fhir import codes  # noqa: E402
from fhircac.fhir.client import FhirClient  # noqa: E402
from fhircac.worker.poller import Poller  # noqa: E402
from fhircac.worker.state import State  # noqa: E402
from tests import fhir_builders as fb  # noqa: E402


def record(prefix: str, n: int) -> list[dict[str, Any]]:
    pid = f"{prefix}-p{n}"
    subject = {"reference": f"Patient/{pid}"}
    resources = [
        fb.patient(id=pid, race=["2106-3"], birth_date=f"{1950 + n % 25}-05-0{1 + n % 9}"),
        fb.cac(id=f"{prefix}-s{n}", value=(n * 37) % 900, date="2026-03-01", subject=subject),
    ]
    for loinc, value, unit in (("2093-3", 210, "mg/dL"), ("2085-9", 48, "mg/dL"), ("13457-7", 130, "mg/dL")):
        lab = fb.lab(loinc, value, unit, id=f"{prefix}-l{loinc}-{n}")
        resources.append({**lab, "subject": subject})
    resources.append({**fb.blood_pressure(128 + n % 20, id=f"{prefix}-bp{n}"), "subject": subject})
    resources.append({**fb.smoking("8517006", id=f"{prefix}-sm{n}"), "subject": subject})
    statin = fb.medication_statement(fb.rxnorm("83367", "atorvastatin"), id=f"{prefix}-m{n}")
    resources.append({**statin, "subject": subject})
    return resources


BENCH_ID = "https://fhircac.org/fhir/sid/bench-copy"


def seed(client: FhirClient, prefix: str, count: int) -> None:
    for start in range(0, count, 50):
        entries = [
            {"resource": r, "request": {"method": "PUT", "url": f"{r['resourceType']}/{r['id']}"}}
            for n in range(start, min(count, start + 50))
            for r in record(prefix, n)
        ]
        client.transaction({"resourceType": "Bundle", "type": "transaction", "entry": entries})


class Recording(FhirClient):
    """The worker's client, keeping the write transactions it sent for the baseline."""

    writes: list[dict[str, Any]]

    def transaction(self, bundle: Any, *, representation: bool = False) -> dict[str, Any]:
        if bundle.get("type") == "transaction":
            self.writes.append(copy.deepcopy(bundle))
        return super().transaction(bundle, representation=representation)


def fresh(bundle: dict[str, Any]) -> dict[str, Any]:
    """The same transaction with new identifiers (and fullUrls), so every entry creates."""
    salt = uuid.uuid4().hex[:8]
    replaced = copy.deepcopy(bundle)
    urls = {e["fullUrl"]: f"urn:uuid:{uuid.uuid4()}" for e in replaced["entry"]}
    text = json.dumps(replaced)
    for old, new in urls.items():
        text = text.replace(old, new)
    replaced = json.loads(text)
    for entry in replaced["entry"]:
        resource = entry["resource"]
        for identifier in resource.get("identifier") or []:
            if identifier.get("system") == codes.ASSESSMENT_ID:
                # Another system: the copies must not count as fhircac's own plans (the worker's
                # next pass would revoke the second active plan it sees for the patient).
                identifier["system"] = BENCH_ID
                identifier["value"] += f":bench-{salt}"
        for tag in (resource.get("meta") or {}).get("tag") or []:
            if tag.get("system") == codes.PROVENANCE_TAG:
                tag["code"] = f"{tag['code'][:24]}{salt}"
        request = entry["request"]
        if "ifNoneExist" in request:
            identifier = (resource.get("identifier") or [None])[0]
            if identifier:
                request["ifNoneExist"] = f"identifier={identifier['system']}|{identifier['value']}"
            else:
                tag = resource["meta"]["tag"][0]
                request["ifNoneExist"] = f"_tag={tag['system']}|{tag['code']}"
    return replaced


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--concurrency", type=int, default=2, help="the worker's (fhircac poll --concurrency)"
    )
    args = parser.parse_args()
    policy = get_policy("acc-aha-2018")
    with tempfile.TemporaryDirectory() as folder, HapiServer(log_path=Path(folder) / "hapi.log") as server:
        client = Recording(server.base_url)
        client.writes = []
        state = State(Path(folder) / "state.sqlite")
        poller = Poller(client, state, policy, concurrency=args.concurrency)  # page size: poll's default
        seed(client, "warm", args.patients)  # JIT warm-up of both sides: not timed
        poller.poll_once()
        results = []
        for round_number in range(args.rounds):
            prefix = f"r{round_number}"
            seed(client, prefix, args.patients)
            time.sleep(5)  # let HAPI finish the work the seeding queued, so it does not bill the worker
            client.writes = []
            before = client.requests_sent
            started = time.perf_counter()
            report = poller.poll_once()
            worker_seconds = time.perf_counter() - started
            requests_sent = client.requests_sent - before
            assert report.written == args.patients, f"round {round_number}: {report}"
            time.sleep(5)  # the same settling time for the baseline
            baseline = FhirClient(server.base_url)
            bundles = [fresh(bundle) for bundle in client.writes]
            started = time.perf_counter()
            for bundle in bundles:
                response = baseline.transaction(bundle)
                assert all(e["response"]["status"].startswith("201") for e in response["entry"]), response
            hapi_seconds = time.perf_counter() - started
            results.append((worker_seconds, hapi_seconds, requests_sent))
            print(
                f"round {round_number + 1}: worker {worker_seconds:.2f} s, HAPI alone {hapi_seconds:.2f} s, "
                f"ratio {worker_seconds / hapi_seconds:.2f}, {requests_sent / args.patients:.2f} requests/obs"
            )
        worker_seconds, hapi_seconds, requests_sent = min(results, key=lambda r: r[0] / r[1])
        print()
        print(f"CAC Observations per round:         {args.patients}")
        print(f"worker, poll to last write:         {worker_seconds:.2f} s")
        print(f"observations per second:            {args.patients / worker_seconds:.1f}")
        print(f"HTTP requests per observation:      {requests_sent / args.patients:.2f}  (target < 4)")
        print(f"HAPI alone, same write transactions: {hapi_seconds:.2f} s")
        print(f"ratio worker / HAPI alone:          {worker_seconds / hapi_seconds:.2f}  (target < 1.5)")
        ratios = sorted(w / h for w, h, _ in results)
        print(f"ratio, median of {len(ratios)} rounds:        {ratios[len(ratios) // 2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
