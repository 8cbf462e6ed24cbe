"""CDS Hooks ``cac-patient-view`` under gunicorn, as a ratio to a bare Flask echo endpoint.

    .venv/bin/python bench/cds.py [--clients 16] [--seconds 8] [--rounds 3] [--patients 400]

Starts two servers on 127.0.0.1 with the same gunicorn command line (``fhircac.web.serve.
gunicorn_argv``: same workers, worker class, logging; only the app and the port differ):

- fhircac itself, with a trusted-clients file holding the bench's own EC P-384 key, so every call
  goes through the full client JWT check (ES384 signature, aud, unique jti recorded in SQLite);
- the baseline: a Flask app whose POST /cds-services/cac-patient-view only parses the JSON body
  and sends it back (``jsonify(json.loads(body))``).

Both get the same requests: a CDS Hooks patient-view call for one of ``--patients`` distinct
patients, each with a realistic prefetch (the patient, 3 CAC scans a few years apart, 9 labs and
a blood pressure, smoking status, 3 medication statements including a statin, 2-3 conditions), put
under the prefetch keys fhircac's discovery publishes (searches as searchset Bundles, the patient
as the resource, keys without data as null). Every request has its own hookInstance, its own
pre-signed JWT (signed before the clock starts, so signing does not load the load generator) and,
unless ``--same-patients``, its own patient id: each call is a chart fhircac has not seen, as when
clinicians open different patients' charts, so a per-resource cache cannot make the bench look
faster than production. ``--same-patients`` sends the same charts again and again instead.

The load generator is ``--clients`` concurrent clients (threads spread over ``--load-procs``
processes, raw sockets, requests encoded in advance), all on 127.0.0.1. After a warm-up that sends every
patient once to each server, each round measures the echo server and fhircac for ``--seconds``
each, alternating which goes first, so drift on this noisy machine hits both sides alike. Each
line also shows the CPUs the server (gunicorn master and workers) and the load generator used
while it ran: when the two add up to about the machine's CPUs, it was saturated.

How to read it: ``ratio`` is fhircac's requests per second divided by the echo baseline's in the
same round: the share of a bare Flask endpoint's throughput that fhircac keeps while doing its
work (JWT check, prefetch reading, assessment, cards). The issue's targets: ratio >= 0.5, and
fhircac's p99 latency under 50 ms at 16 clients. Latency is from the first byte sent (connect
included: gunicorn's sync workers close every connection) to the last byte received, so it
includes the time a request waits for a free worker. The targets are reported, never asserted;
the exit status is non-zero only when a request failed (non-200, no cards, broken response),
because then the numbers mean nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import multiprocessing
import os
import random
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from array import array
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tools"))

import processes  # noqa: E402

from fhircac.config import Settings  # noqa: E402
from fhircac.fhir import codes  # noqa: E402
from fhircac.web.serve import gunicorn_argv  # noqa: E402
from tests import fhir_builders as fb  # noqa: E402

HOST = "127.0.0.1"
SERVICE = "cac-patient-view"
PATH = f"/cds-services/{SERVICE}"
ISS = "https://bench.example"
KID = "bench-es384"
EHR_FHIR = "https://ehr.bench.example/fhir"  # fullUrls and self links only; never contacted
TOKEN_LIFETIME = 3000  # seconds; fhircac refuses tokens living longer than an hour
HOOK_INSTANCE_PLACEHOLDER = "00000000-0000-4000-8000-000000000000"  # same length as a uuid4
PATIENT_TAG = "TAGxTAGx"  # in every patient id, replaced per request by 8 hex digits (--same-patients: 0s)
TAGS_PER_PROCESS = 1 << 24
NO_CARDS = b'{"cards":[]}'
ECHO_APP = '''"""bench/cds.py baseline: parse the JSON body and send it back, nothing else."""
import json

from flask import Flask, jsonify, request

app = Flask("echo")


@app.post("/cds-services/<service_id>")
def echo(service_id):
    return jsonify(json.loads(request.get_data()))


@app.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})
'''


class BenchError(Exception):
    """The bench cannot measure anything meaningful; the message says why."""


# --- realistic patients -----------------------------------------------------------------------------


def patient_resources(index: int, rng: random.Random, today: date) -> list[dict[str, Any]]:
    """One patient's chart: what a CAC patient's record typically holds, values varied per patient."""
    pid = f"bench-{index}-{PATIENT_TAG}"
    subject = {"reference": f"Patient/{pid}"}

    def own(resource: dict[str, Any], key: str = "subject") -> dict[str, Any]:
        return {**resource, key: subject}

    age = rng.randint(42, 74)
    birth = today - timedelta(days=int(age * 365.25) + rng.randint(20, 340))
    race = rng.choice([codes.WHITE, codes.WHITE, codes.BLACK, codes.ASIAN])
    ethnicity = codes.HISPANIC if rng.random() < 0.15 else codes.NOT_HISPANIC
    resources = [
        fb.patient(
            id=pid,
            gender="male" if index % 2 == 0 else "female",
            birth_date=birth.isoformat(),
            race=[race],
            ethnicity=[ethnicity],
        )
    ]

    # Three scans about three years apart; the latest a few weeks or months ago.
    latest_date = today - timedelta(days=rng.randint(14, 150))
    dates = [latest_date - timedelta(days=days) for days in (2 * 1100 + rng.randint(0, 200), 1100, 0)]
    latest = 0 if rng.random() < 0.12 else min(2500, round(rng.lognormvariate(4.6, 1.1)))
    growth = rng.uniform(1.08, 1.3) ** 3  # per three years
    scores = [round(latest / growth**2), round(latest / growth), latest]
    for number, (when, score) in enumerate(zip(dates, scores, strict=True)):
        vessels: dict[str, float] | None = None
        if number == 2 and score > 0:
            shares = [rng.random() * weight for weight in (0.3, 1.0, 0.6, 0.8)]
            parts: list[float] = [math.floor(score * share / sum(shares)) for share in shares]
            parts[1] += score - sum(parts)  # the LAD takes the rounding: the four add up to the total
            vessels = dict(zip(("cac-left-main", "cac-lad", "cac-lcx", "cac-rca"), parts, strict=True))
        resources.append(
            fb.cac(
                id=f"{pid}-cac{number}", value=score, date=when.isoformat(), subject=subject, vessels=vessels
            )
        )

    lab_day = (today - timedelta(days=rng.randint(20, 150))).isoformat()
    ldl, hdl, tg = rng.randint(70, 190), rng.randint(35, 75), rng.randint(70, 320)
    lpa = (
        ("43583-4", rng.randint(10, 300), "nmol/L")
        if index % 3 == 0
        else ("10835-7", rng.randint(5, 120), "mg/dL")
    )
    labs = [
        ("13457-7", ldl, "mg/dL"),
        ("2085-9", hdl, "mg/dL"),
        ("2093-3", ldl + hdl + tg // 5, "mg/dL"),
        ("2571-8", tg, "mg/dL"),
        ("1884-6", round(ldl * rng.uniform(0.65, 0.85)), "mg/dL"),
        lpa,
        ("30522-7", round(rng.uniform(0.3, 6.0), 1), "mg/L"),
        ("4548-4", round(rng.uniform(5.0, 7.2), 1), "%"),
        ("27873-9", round(rng.uniform(3, 25), 1), "u[IU]/mL"),
    ]
    for loinc, value, unit in labs:
        resources.append(own(fb.lab(loinc, value, unit, id=f"{pid}-{loinc}", date=lab_day)))
    resources.append(own(fb.blood_pressure(rng.randint(108, 165), id=f"{pid}-bp", date=lab_day)))
    smoker = rng.choice(["266919005", "266919005", "8517006", "449868002"])  # never, never, former, current
    resources.append(own(fb.smoking(smoker, id=f"{pid}-smoking", date=lab_day)))

    statin_start = (dates[1] - timedelta(days=rng.randint(60, 400))).isoformat()
    statin = rng.choice([("83367", "atorvastatin"), ("301542", "rosuvastatin"), ("36567", "simvastatin")])
    pressure = rng.choice([("29046", "lisinopril"), ("17767", "amlodipine"), ("52175", "losartan")])
    third = ("1191", "aspirin") if index % 3 == 1 else ("6809", "metformin")
    for number, (code, name) in enumerate((statin, pressure, third)):
        start = statin_start if number == 0 else (dates[0] + timedelta(days=rng.randint(0, 900))).isoformat()
        resources.append(
            own(fb.medication_statement(fb.rxnorm(code, name), id=f"{pid}-med{number}", start=start))
        )

    conditions = [("59621000", "htn"), ("55822004", "hld")]  # essential hypertension, hyperlipidaemia
    if index % 4 == 0:
        conditions.append(("714628002", "prediabetes"))
    resources += [own(fb.condition(code, id=f"{pid}-{name}")) for code, name in conditions]
    return resources


def _codings(resource: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (c.get("system", ""), c.get("code", "")) for c in (resource.get("code") or {}).get("coding") or []
    }


def prefetch_for(templates: dict[str, str], pid: str, resources: list[dict[str, Any]]) -> dict[str, Any]:
    """Every key the service declares, filled as an EHR answers its query: a read gives the resource,
    a search a searchset Bundle of the matching resources (by type and, if the query has one, code);
    a key with no data is null."""
    prefetch: dict[str, Any] = {}
    for key, template in templates.items():
        query = template.replace("{{context.patientId}}", pid)
        if "{{" in query:
            raise BenchError(f"prefetch {key}: the bench cannot fill the template {template!r}")
        if "?" not in query:
            resource_type, resource_id = query.split("/", 1)
            found = [r for r in resources if (r["resourceType"], r["id"]) == (resource_type, resource_id)]
            prefetch[key] = found[0] if found else None
            continue
        resource_type, params = query.split("?", 1)
        wanted = {
            tuple(token.split("|", 1))
            for name, value in parse_qsl(params)
            if name == "code"
            for token in value.split(",")
        }
        matches = [
            r
            for r in resources
            if r["resourceType"] == resource_type and (not wanted or _codings(r) & wanted)
        ]
        prefetch[key] = (
            {
                "resourceType": "Bundle",
                "type": "searchset",
                "total": len(matches),
                "link": [{"relation": "self", "url": f"{EHR_FHIR}/{query}"}],
                "entry": [
                    {
                        "fullUrl": f"{EHR_FHIR}/{r['resourceType']}/{r['id']}",
                        "resource": r,
                        "search": {"mode": "match"},
                    }
                    for r in matches
                ],
            }
            if matches
            else None
        )
    return prefetch


def make_bodies(count: int, templates: dict[str, str], seed: int = 2026) -> list[bytes]:
    """``count`` distinct patient-view calls, encoded; each holds HOOK_INSTANCE_PLACEHOLDER once and
    PATIENT_TAG wherever the patient's id appears (ids, references, fullUrls, the context)."""
    rng = random.Random(seed)
    today = date.today()
    bodies = []
    for index in range(count):
        resources = patient_resources(index, rng, today)
        pid = resources[0]["id"]
        body = {
            "hook": "patient-view",
            "hookInstance": HOOK_INSTANCE_PLACEHOLDER,
            "context": {"userId": f"Practitioner/bench-dr-{index % 23}", "patientId": pid},
            "prefetch": prefetch_for(templates, pid, resources),
        }
        bodies.append(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode())
    return bodies


# --- the client's key and tokens -----------------------------------------------------------------------


def new_key() -> tuple[bytes, dict[str, Any]]:
    """A fresh EC P-384 key: its PEM (for signing) and the public JWK (for fhircac's clients file)."""
    private = ec.generate_private_key(ec.SECP384R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = ECAlgorithm.to_jwk(private.public_key(), as_dict=True)
    return pem, {**public, "kid": KID, "alg": "ES384", "use": "sig"}


def sign(key: Any, audience: str, count: int) -> list[str]:
    now = int(time.time())
    return [
        jwt.encode(
            {"iss": ISS, "aud": audience, "iat": now, "exp": now + TOKEN_LIFETIME, "jti": str(uuid.uuid4())},
            key,
            algorithm="ES384",
            headers={"kid": KID, "typ": "JWT"},
        )
        for _ in range(count)
    ]


def load_key(pem: bytes) -> Any:
    return serialization.load_pem_private_key(pem, password=None)


# --- a minimal HTTP/1.1 client (cheap per request: the load generator shares 2 CPUs with the servers) --


class ProtocolError(Exception):
    pass


class Client:
    """One keep-alive connection; reconnects when the server closed it (sync workers always do)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def request(self, data: bytes) -> tuple[int, bytes]:
        reused = self.sock is not None
        try:
            return self._exchange(data)
        except (ConnectionError, ProtocolError) as error:
            self.close()
            if not reused or not getattr(error, "before_response", False):
                raise
            return self._exchange(data)  # a kept-alive connection the server had dropped: once more

    def _exchange(self, data: bytes) -> tuple[int, bytes]:
        if self.sock is None:
            self.sock = socket.create_connection((HOST, self.port))
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock = self.sock
        sock.sendall(data)
        buffer = bytearray()
        while (end := buffer.find(b"\r\n\r\n")) < 0:
            chunk = sock.recv(65536)
            if not chunk:
                error = ConnectionError("connection closed before the response head")
                error.before_response = not buffer  # type: ignore[attr-defined]
                raise error
            buffer += chunk
        lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            raise ProtocolError(f"bad status line {lines[0]!r}")
        length, close = None, lines[0].startswith("HTTP/1.0")
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "connection":
                close = value.strip().lower() == "close"
            elif name == "transfer-encoding":
                raise ProtocolError(f"Transfer-Encoding {value.strip()} is not supported by this client")
        body = buffer[end + 4 :]
        if length is None:
            close = True
            while chunk := sock.recv(65536):
                body += chunk
        else:
            while len(body) < length:
                chunk = sock.recv(max(65536, length - len(body)))
                if not chunk:
                    raise ProtocolError("connection closed inside the response body")
                body += chunk
        if close:
            self.close()
        return int(parts[1]), bytes(body)


# --- the load generator -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """What the load processes run against one server, for one phase."""

    port: int
    check_cards: bool  # fhircac: a 200 without cards counts as a failure
    requests: int | None  # a fixed number in all (warm-up), else as many as fit in `seconds`
    seconds: float
    tokens: int  # tokens signed per process before the clock starts
    reuse_tokens: bool  # the echo server ignores them; fhircac refuses a jti it has seen
    fresh_patients: bool  # a new patient id in every request, so no cache can know the chart
    start: int  # the first patient of load process 0; process k starts at start + k
    tags: int  # the first patient tag of load process 0; process k's from tags + k * TAGS_PER_PROCESS


@dataclass
class Outcome:
    latencies: array[float] = field(default_factory=lambda: array("d"))
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)  # the first few, as text
    failed: int = 0
    no_cards: int = 0
    exhausted: bool = False  # the tokens ran out before the time did
    started: float = math.inf  # time.monotonic(), comparable across processes on Linux
    ended: float = -math.inf
    cpu: float = 0.0  # the load process's own CPU seconds while it ran
    server_cpu: float = math.nan  # the server's CPU seconds (master and workers) meanwhile

    def merge(self, other: Outcome) -> None:
        self.latencies.extend(other.latencies)
        self.statuses.update(other.statuses)
        self.failures += other.failures[: max(0, 5 - len(self.failures))]
        self.failed += other.failed
        self.no_cards += other.no_cards
        self.exhausted |= other.exhausted
        self.started = min(self.started, other.started)
        self.ended = max(self.ended, other.ended)
        self.cpu += other.cpu

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def wall(self) -> float:
        return self.ended - self.started

    @property
    def rate(self) -> float:
        return self.ok / self.wall if self.wall > 0 else 0.0

    @property
    def cpu_per_request(self) -> float:
        """The server's CPU milliseconds per answered request (nan when unknown)."""
        return self.server_cpu / self.ok * 1000 if self.ok and self.server_cpu > 0 else math.nan

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile, in milliseconds."""
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)] * 1000 if ordered else math.nan


def _requests_for(
    job: Job, process: int, processes: int, bodies: list[bytes], pem: bytes
) -> Callable[[], bytes | None]:
    """This process's request maker: the next request, fully encoded, or None when done."""
    if job.requests is not None:  # warm-up: patient `process`, `process + processes`, ...
        count = len(range(process, job.requests, processes))
        tokens = sign(load_key(pem), f"http://{HOST}:{job.port}{PATH}", count)
    else:
        tokens = sign(load_key(pem), f"http://{HOST}:{job.port}{PATH}", job.tokens)
        count = len(tokens) if not job.reuse_tokens else -1
    heads = [
        (
            f"POST {PATH} HTTP/1.1\r\nHost: {HOST}:{job.port}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nAccept: application/json\r\n"
        ).encode()
        for token in tokens
    ]
    hook_instance, tag = HOOK_INSTANCE_PLACEHOLDER.encode(), PATIENT_TAG.encode()
    lengths = [f"Content-Length: {len(body)}\r\n\r\n".encode() for body in bodies]
    start, tags = job.start + process, job.tags + process * TAGS_PER_PROCESS
    counter = itertools.count()  # next() on it is atomic under the GIL

    def make() -> bytes | None:
        n = next(counter)
        if 0 <= count <= n:
            return None
        patient = (start + n * processes) % len(bodies)
        body = bodies[patient].replace(hook_instance, str(uuid.uuid4()).encode())
        patient_tag = f"{(tags + n) % (1 << 32):08x}" if job.fresh_patients else "00000000"
        body = body.replace(tag, patient_tag.encode())
        return b"".join((heads[n % len(heads)], lengths[patient], body))

    return make


def _client_thread(job: Job, make: Callable[[], bytes | None], deadline: float, out: Outcome) -> None:
    client = Client(job.port)
    clock = time.perf_counter
    try:
        while time.monotonic() < deadline:
            data = make()
            if data is None:
                out.exhausted = job.requests is None
                break
            began = clock()
            try:
                status, body = client.request(data)
            except (OSError, ProtocolError) as error:
                client.close()
                out.failed += 1
                if len(out.failures) < 5:
                    out.failures.append(f"{type(error).__name__}: {error}")
                continue
            elapsed = clock() - began
            out.statuses[status] += 1
            if status != 200:
                out.failed += 1
                if len(out.failures) < 5:
                    out.failures.append(f"HTTP {status}: {body[:300]!r}")
            elif job.check_cards and body.startswith(NO_CARDS):
                out.no_cards += 1
            else:
                out.latencies.append(elapsed)
    finally:
        client.close()
        out.ended = time.monotonic()


def _load_process(
    job: Job,
    process: int,
    processes: int,
    threads: int,
    bodies: list[bytes],
    pem: bytes,
    ready: Any,
    results: Connection,
) -> None:
    try:
        make = _requests_for(job, process, processes, bodies, pem)
        ready.wait(timeout=600)  # every process has signed its tokens: start together
        started = time.monotonic()
        cpu_before = time.process_time()
        deadline = math.inf if job.requests is not None else started + job.seconds
        outcomes = [Outcome(started=started) for _ in range(threads)]
        workers = [
            threading.Thread(target=_client_thread, args=(job, make, deadline, out), daemon=True)
            for out in outcomes
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        total = Outcome(cpu=time.process_time() - cpu_before)
        for out in outcomes:
            total.merge(out)
        results.send(total)
    except BaseException as error:  # the parent must hear of it, not wait
        results.send(f"load process {process}: {type(error).__name__}: {error}")
        raise
    finally:
        results.close()


def run_load(job: Job, clients: int, processes: int, bodies: list[bytes], pem: bytes) -> Outcome:
    """``clients`` concurrent clients in ``processes`` forked processes; their merged outcome."""
    context = multiprocessing.get_context("fork")  # the bodies are shared by fork, not pickled
    processes = max(1, min(processes, clients))
    ready = context.Barrier(processes)
    pipes, children = [], []
    for process in range(processes):
        threads = clients // processes + (1 if process < clients % processes else 0)
        receive, send = context.Pipe(duplex=False)
        child = context.Process(
            target=_load_process,
            args=(job, process, processes, threads, bodies, pem, ready, send),
            daemon=True,
        )
        child.start()
        send.close()
        pipes.append(receive)
        children.append(child)
    total = Outcome()
    problems = []
    limit = time.monotonic() + 600 + job.seconds
    try:
        for receive, child in zip(pipes, children, strict=True):
            while not receive.poll(1.0):
                if not child.is_alive() or time.monotonic() > limit:
                    raise BenchError(f"load process {child.pid} died or hung (exit code {child.exitcode})")
            result = receive.recv()
            if isinstance(result, str):
                problems.append(result)
            else:
                total.merge(result)
    finally:
        for child in children:
            child.join(timeout=10)
            if child.is_alive():
                child.terminate()
                child.join()
    if problems:
        raise BenchError("; ".join(problems))
    return total


# --- the servers --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by the gunicorn master and its workers (Linux /proc; else nan)."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0.0
        try:
            for entry in os.scandir("/proc"):
                if not entry.name.isdigit():
                    continue
                with contextlib.suppress(OSError):
                    stat = Path(entry.path, "stat").read_text()
                    fields = stat[stat.rindex(")") + 2 :].split()
                    pid, ppid = int(entry.name), int(fields[1])
                    if pid == self.process.pid or ppid == self.process.pid:
                        total += (int(fields[11]) + int(fields[12])) / tick
        except OSError:
            return math.nan
        return total


def start_server(name: str, argv: list[str], env: dict[str, str], port: int, folder: Path) -> Server:
    """Started in a process group of its own (stopped with it); stopped again if it never answers."""
    log = folder / f"{name}.log"
    process = processes.start(argv, log, env=env, cwd=folder)
    server = Server(name, port, process, log)
    healthz = f"{server.base_url}/healthz"
    try:
        processes.wait_until(lambda: processes.http_ok(healthz, 2), 120, f"{name} {healthz}", process, log)
    except BaseException as error:
        processes.stop(process)
        if isinstance(error, processes.ProcessError):
            raise BenchError(str(error)) from None
        raise
    return server


def stop_server(server: Server) -> None:
    processes.stop(server.process)


def call(port: int, method: str, path: str, token: str | None, body: bytes = b"") -> tuple[int, bytes]:
    head = f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n"
    if token:
        head += f"Authorization: Bearer {token}\r\n"
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return Client(port).request(head.encode() + b"\r\n" + body)


@contextlib.contextmanager
def servers(folder: Path, public_jwk: dict[str, Any]) -> Iterator[tuple[Server, Server, list[str]]]:
    """fhircac and the echo app under the same gunicorn command line; stopped however the bench ends."""
    clients_file = folder / "clients.json"
    clients_file.write_text(json.dumps({"clients": [{"iss": ISS, "jwks": {"keys": [public_jwk]}}]}))
    fhircac_port, echo_port = free_port(), free_port()
    env = {
        **os.environ,
        "FHIRCAC_HOST": HOST,
        "FHIRCAC_PORT": str(fhircac_port),
        "FHIRCAC_CDS_CLIENTS": str(clients_file),
        "FHIRCAC_CDS_AUTH": "on",
        "FHIRCAC_CDS_DB": str(folder / "cds.sqlite"),
        "FHIRCAC_STATE_FILE": str(folder / "state.sqlite"),
        "FHIRCAC_PUBLIC_BASE_URL": f"http://{HOST}:{fhircac_port}",
        "FHIRCAC_LOG_LEVEL": "warning",
    }
    settings = Settings.from_env(env)
    argv = gunicorn_argv(settings)
    bind = argv.index("--bind") + 1
    if argv[bind] != f"{HOST}:{fhircac_port}" or "create_app" not in argv[-1]:
        raise BenchError(f"unexpected gunicorn command line, update the bench: {argv}")
    echo_argv = [*argv[:bind], f"{HOST}:{echo_port}", *argv[bind + 1 : -1], "bench_echo:app"]
    (folder / "bench_echo.py").write_text(ECHO_APP)
    started: list[Server] = []
    try:
        started.append(start_server("fhircac", argv, env, fhircac_port, folder))
        started.append(start_server("echo", echo_argv, env, echo_port, folder))
        yield started[0], started[1], argv
    finally:
        for server in started:
            stop_server(server)


# --- the bench ----------------------------------------------------------------------------------------


def discovered_prefetch(server: Server, key: Any) -> dict[str, str]:
    token = sign(key, f"{server.base_url}/cds-services", 1)[0]
    status, body = call(server.port, "GET", "/cds-services", token)
    if status != 200:
        raise BenchError(f"GET /cds-services answered {status}: {body[:300]!r}\n{server.log_tail()}")
    services = {s["id"]: s for s in json.loads(body)["services"]}
    if SERVICE not in services:
        raise BenchError(f"discovery does not list {SERVICE}: {sorted(services)}")
    prefetch: dict[str, str] = services[SERVICE].get("prefetch") or {}
    return prefetch


def check_servers(fhircac: Server, echo: Server, body: bytes, key: Any) -> int:
    """One call to each, fully checked; the number of cards fhircac gave."""
    sample = body.replace(HOOK_INSTANCE_PLACEHOLDER.encode(), str(uuid.uuid4()).encode())
    sample = sample.replace(PATIENT_TAG.encode(), b"sample00")
    token = sign(key, f"{fhircac.base_url}{PATH}", 1)[0]
    status, answer = call(fhircac.port, "POST", PATH, token, sample)
    if status != 200:
        raise BenchError(
            f"fhircac answered {status} to a sample call: {answer[:500]!r}\n{fhircac.log_tail()}"
        )
    cards = json.loads(answer).get("cards") or []
    if not cards:
        raise BenchError(f"fhircac gave no cards for a sample call: {answer[:500]!r}")
    status, _ = call(fhircac.port, "POST", PATH, token, sample)
    if status != 401:
        raise BenchError(f"fhircac answered {status}, not 401, to a replayed token: JWT checks are off?")
    status, echoed = call(echo.port, "POST", PATH, token, sample)
    if status != 200 or json.loads(echoed) != json.loads(sample):
        raise BenchError(f"the echo server answered {status} without echoing the body: {echoed[:300]!r}")
    return len(cards)


def check(outcome: Outcome, what: str) -> None:
    if outcome.failed or outcome.no_cards:
        statuses = ", ".join(f"{status}: {n}" for status, n in sorted(outcome.statuses.items()))
        details = "\n  ".join(outcome.failures)
        raise BenchError(
            f"{what}: {outcome.failed} request(s) failed and {outcome.no_cards} got no cards "
            f"(statuses {statuses}); the numbers would mean nothing.\n  {details}"
        )


HEADER = (
    f"{'round':5s} {'side':8s} {'ok':>7s} {'req/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s} "
    f"{'CPU ms/req':>10s}   CPUs used by server, load generator"
)


def describe(outcome: Outcome) -> str:
    ended = "  (tokens ran out early)" if outcome.exhausted else ""
    return (
        f"{outcome.ok:7d} {outcome.rate:9.1f} {outcome.percentile(50):8.1f} {outcome.percentile(99):8.1f} "
        f"{outcome.cpu_per_request:10.2f}   {outcome.server_cpu / outcome.wall:4.2f}, "
        f"{outcome.cpu / outcome.wall:4.2f}{ended}"
    )


def _terminated(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--seconds", type=float, default=8.0, help="per side and round (default 8)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--patients", type=int, default=400, help="distinct request bodies")
    parser.add_argument("--load-procs", type=int, default=2, help="load generator processes (default 2)")
    parser.add_argument(
        "--same-patients",
        action="store_true",
        help="send the --patients charts over and over, unchanged (default: every request a new patient id, "
        "so nothing fhircac caches per resource can know the chart)",
    )
    args = parser.parse_args()

    signal.signal(signal.SIGTERM, _terminated)  # stop the servers on `kill` too, not only on Ctrl-C
    pem, public_jwk = new_key()
    key = load_key(pem)
    with tempfile.TemporaryDirectory(prefix="fhircac-bench-cds-") as name:
        try:
            with servers(Path(name), public_jwk) as (fhircac, echo, argv):
                return bench(fhircac, echo, argv, args, pem, key)
        except BenchError as error:
            print(f"bench/cds.py: {error}", file=sys.stderr)
            return 2


def bench(
    fhircac: Server, echo: Server, argv: list[str], args: argparse.Namespace, pem: bytes, key: Any
) -> int:
    templates = discovered_prefetch(fhircac, key)
    bodies = make_bodies(args.patients, templates)
    cards = check_servers(fhircac, echo, bodies[0], key)
    sizes = sorted(len(b) for b in bodies)
    fresh = not args.same_patients
    tags = itertools.count(0, max(1, min(args.load_procs, args.clients)) * TAGS_PER_PROCESS)

    def next_tags() -> int:
        return next(tags) % (1 << 32)

    flags = argv[argv.index("-m") + 2 : -1]
    bind = flags.index("--bind")
    del flags[bind : bind + 2]
    default_class = (
        "" if {"-k", "--worker-class", "--threads"} & set(flags) else " (sync workers: the default)"
    )
    print(f"{SERVICE} vs. a Flask echo endpoint; {os.cpu_count()} CPUs")
    print(f"both servers: gunicorn {shlex.join(flags)}{default_class}")
    print(
        f"{args.clients} clients on {HOST} in {min(args.load_procs, args.clients)} load process(es); "
        f"{args.patients} charts, body {statistics.median(sizes) / 1024:.1f} KiB median "
        f"({sizes[0] / 1024:.1f}-{sizes[-1] / 1024:.1f}), "
        + ("a new patient id in every request" if fresh else "the same charts over and over")
    )
    print(f"prefetch keys: {', '.join(templates)}; sample call: {cards} card(s)")

    try:
        warm: dict[str, Outcome] = {}
        for server, check_cards in ((echo, False), (fhircac, True)):
            job = Job(server.port, check_cards, args.patients, 0.0, 0, False, fresh, 0, next_tags())
            warm[server.name] = run_load(job, args.clients, args.load_procs, bodies, pem)
            if server.process.poll() is not None:
                raise BenchError(f"{server.name} exited during the warm-up")
            check(warm[server.name], f"warm-up, {server.name}")
        print(
            "warm-up (every patient once): "
            + ", ".join(
                f"{name} {o.rate:.0f} req/s, p99 {o.percentile(99):.1f} ms" for name, o in warm.items()
            )
        )
        # Enough fresh tokens for 4x the warm-up rate; a round that uses them all ends early (and says so).
        processes = max(1, min(args.load_procs, args.clients))
        per_process = (
            math.ceil(max(warm["fhircac"].rate, 50) * 4 * args.seconds / processes) + args.clients * 4
        )
        print()
        print(HEADER)
        results: list[dict[str, Outcome]] = []
        for round_number in range(args.rounds):
            order = [echo, fhircac] if round_number % 2 == 0 else [fhircac, echo]
            measured: dict[str, Outcome] = {}
            for server in order:
                reuse = server is echo
                tokens = min(per_process, 2000) if reuse else per_process
                start = random.randrange(args.patients)
                job = Job(
                    server.port,
                    server is fhircac,
                    None,
                    args.seconds,
                    tokens,
                    reuse,
                    fresh,
                    start,
                    next_tags(),
                )
                cpu = server.cpu_seconds()
                outcome = run_load(job, args.clients, args.load_procs, bodies, pem)
                outcome.server_cpu = server.cpu_seconds() - cpu
                if server.process.poll() is not None:
                    raise BenchError(f"{server.name} exited during round {round_number + 1}")
                check(outcome, f"round {round_number + 1}, {server.name}")
                measured[server.name] = outcome
                print(f"{round_number + 1:5d} {server.name:8s} {describe(outcome)}")
            ratio = measured["fhircac"].rate / measured["echo"].rate
            cost = measured["echo"].cpu_per_request / measured["fhircac"].cpu_per_request
            print(f"{round_number + 1:5d} ratio fhircac/echo: throughput {ratio:.2f}, CPU cost {cost:.2f}")
            results.append(measured)
    except BenchError:
        print(f"\nfhircac log:\n{fhircac.log_tail()}", file=sys.stderr)
        raise

    def median(side: str, value: Callable[[Outcome], float]) -> float:
        return statistics.median(value(r[side]) for r in results)

    ratio = statistics.median(r["fhircac"].rate / r["echo"].rate for r in results)
    cost = statistics.median(r["echo"].cpu_per_request / r["fhircac"].cpu_per_request for r in results)
    p99 = median("fhircac", lambda o: o.percentile(99))
    print()
    print(f"median of {len(results)} round(s):")
    for side in ("echo", "fhircac"):
        rate = median(side, lambda o: o.rate)
        p50_side = median(side, lambda o: o.percentile(50))
        p99_side = median(side, lambda o: o.percentile(99))
        cpu = median(side, lambda o: o.cpu_per_request)
        print(
            f"  {side:8s} {rate:9.1f} req/s   p50 {p50_side:6.1f} ms   p99 {p99_side:6.1f} ms   "
            f"server CPU {cpu:5.2f} ms/req"
        )
    verdict = {True: "met", False: "NOT met"}
    print(f"  throughput ratio fhircac/echo: {ratio:.2f}   (target >= 0.5: {verdict[ratio >= 0.5]})")
    print(f"  fhircac p99 at {args.clients} clients: {p99:.1f} ms   (target < 50 ms: {verdict[p99 < 50]})")
    print(
        f"  CPU cost ratio: {cost:.2f}   (echo's server CPU per request / fhircac's: other load on the "
        "machine moves it less)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
