"""Polls FHIR servers for new or changed CAC Observations and writes back an assessment for each.

The query is ``Observation?code=<CAC codes>&_lastUpdated=ge<cursor − overlap>&_sort=_lastUpdated``.
A JPA server stamps ``lastUpdated`` when a transaction starts, but its resources only become
visible when it commits, so a long transaction surfaces "in the past". Two rules keep it from
being skipped: the cursor never moves past the moment the search ran (the first page's
``meta.lastUpdated``), and each pass re-reads ``overlap`` (default 5 min: the longest transaction
tolerated) before the cursor; the ledger (id + version) makes re-reading harmless. The cursor
moves past a page only once every Observation on it is handled. When the server is unreachable,
failing, throttling or refusing our credentials, the pass stops and the loop backs off.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from fhircac.clinical.policies import Policy
from fhircac.fhir import codes
from fhircac.fhir.auth import AuthError
from fhircac.fhir.client import FhirClient, FhirError, Gone, NotFound
from fhircac.worker.state import State, instant_epoch
from fhircac.worker.writeback import (
    PatientData,
    WritebackDeferred,
    WritebackRefused,
    fetch_patients,
    is_cac,
    patient_of,
    repair_plans,
    write_back,
)

log = logging.getLogger(__name__)

# Answers that mean "this request will never succeed": the data is refused (400, 422) or the
# server already holds several resources with one of our identifiers (412 on a conditional create).
REFUSED = frozenset({400, 412, 422})
CHUNK_PATIENTS = 25  # patients read per batch request
CAC_CODE_PARAM = ",".join(sorted(f"{system}|{code}" for system, code in codes.CAC_CODES))


class _Stopped(Exception):
    """A stop was requested between two Observations."""


class ServerTrouble(Exception):
    """The server is unreachable or failing (5xx after retries): stop the batch and back off."""


@dataclass
class PollReport:
    seen: int = 0
    already: int = 0  # in the ledger from an earlier pass (the overlap, or a restart)
    written: int = 0
    unchanged: int = 0  # assessed, but the server already had every resource (another worker, a retry)
    skipped: int = 0  # recorded as unassessable, with the reason, in the ledger
    deferred: int = 0  # dated after now: not in the ledger, retried when due
    repaired: int = 0  # second active plans revoked by the pass's check
    skipped_reasons: list[str] = field(default_factory=list)

    def add(self, other: PollReport) -> None:
        for name in ("seen", "already", "written", "unchanged", "skipped", "deferred", "repaired"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.skipped_reasons += other.skipped_reasons


def _since(cursor: str, overlap: float) -> str:
    moment = datetime.fromisoformat(cursor.replace("Z", "+00:00")) - timedelta(seconds=overlap)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Poller:
    """One FHIR server's poller. ``server_key`` names the server in the state file."""

    def __init__(
        self,
        client: FhirClient,
        state: State,
        policy: Policy,
        *,
        server_key: str | None = None,
        page_size: int = 500,
        overlap_seconds: float = 300.0,
        concurrency: int = 2,
        on_handled: Callable[[str, str], None] | None = None,
        zone: tzinfo | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.client = client
        self.state = state
        self.policy = policy
        self.server = server_key or client.base_url
        self.page_size = page_size
        self.overlap = overlap_seconds
        self.concurrency = concurrency
        self.on_handled = on_handled  # (observation id, outcome): a hook for tests and metrics
        self.zone = zone  # the clinic's zone (FHIRCAC_TIMEZONE); None: each scan's own UTC offset
        self.clock = clock or (lambda: datetime.now(UTC))

    def query(self) -> list[tuple[str, str]]:
        params = [
            ("code", CAC_CODE_PARAM),
            ("_sort", "_lastUpdated"),
            ("_count", str(self.page_size)),
            ("_elements", "subject"),  # id and meta come anyway; write-back reads the rest itself
        ]
        cursor = self.state.cursor(self.server)
        if cursor is not None:
            params.append(("_lastUpdated", f"ge{_since(cursor, self.overlap)}"))
        return params

    def poll_once(self, stop: threading.Event | None = None) -> PollReport:
        """Everything new since the cursor, page by page. Raises ServerTrouble to ask for a back-off.

        A page's patients are handled ``concurrency`` at a time (one patient's Observations in
        order, by one thread), so fhircac's reading and assessing overlap the server's writing.
        The cursor moves past a page only once every Observation on it is handled.
        """
        report = PollReport()
        searched_at: str | None = None
        try:
            for observation_id in self.state.due(self.server, self.clock().timestamp()):
                report.add(self.handle_id(observation_id))
            self._deletions(report)
            self._heal_plans(report)
            for page in self.client.search("Observation", self.query()):
                searched_at = searched_at or (page.get("meta") or {}).get("lastUpdated")
                observations = [
                    entry["resource"]
                    for entry in page.get("entry") or []
                    if (entry.get("search") or {}).get("mode", "match") == "match"
                    and (entry.get("resource") or {}).get("resourceType") == "Observation"
                ]
                if not self._handle_page(observations, report, stop):
                    return report
                last = (observations[-1].get("meta") or {}).get("lastUpdated") if observations else None
                if last and searched_at:
                    # Later pages show resources as they are now: an edit made during the pass
                    # carries a time after the search, and must not carry the cursor past it.
                    if instant_epoch(last) > instant_epoch(searched_at):
                        last = searched_at
                    self.state.advance(self.server, last)
        except (FhirError, AuthError) as error:
            # Unreachable, 5xx, throttled, credentials refused, or the stored search expired: all
            # may pass; none is a reason to skip an Observation.
            raise ServerTrouble(str(error)) from None
        return report

    def _handle_page(
        self, observations: list[dict[str, Any]], report: PollReport, stop: threading.Event | None
    ) -> bool:
        """True when every Observation of the page was handled (none left for a stop request).

        The page's patients go in chunks; a thread reads its chunk's data in one batch request,
        then handles each patient's Observations in order. With two threads, one chunk's reading
        overlaps the other's writing.
        """
        by_patient: dict[str, list[dict[str, Any]]] = {}
        for observation in observations:
            by_patient.setdefault(patient_of(observation) or f"?{observation.get('id')}", []).append(
                observation
            )
        patients = list(by_patient.items())
        chunks = [patients[i : i + CHUNK_PATIENTS] for i in range(0, len(patients), CHUNK_PATIENTS)]

        def handle_chunk(chunk: list[tuple[str, list[dict[str, Any]]]]) -> PollReport:
            result = PollReport()
            wanted = [patient for patient, mine in chunk if any(not self._handled(o) for o in mine)]
            prefetched = (
                fetch_patients(self.client, [p for p in wanted if not p.startswith("?")]) if wanted else {}
            )
            written = []
            for patient, mine in chunk:
                # The prefetch serves the patient's first Observation only: after that write the
                # server holds more (a new CarePlan) than the prefetch saw.
                data = prefetched.get(patient)
                for observation in mine:
                    if stop is not None and stop.is_set():
                        raise _Stopped(result)  # the next pass's _heal_plans checks what was written
                    handled = self.handle(observation, prefetched=data, check_plans=False)
                    result.add(handled)
                    if handled.written:
                        written.append(patient)
                    data = None
            result.repaired += self._check_plans(written)
            return result

        complete = True
        failure: BaseException | None = None
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = [pool.submit(handle_chunk, chunk) for chunk in chunks]
            for future in as_completed(futures):
                try:
                    report.add(future.result())
                except _Stopped as stopped:
                    report.add(stopped.args[0])
                    complete = False
                except BaseException as error:  # re-raised below, after the other threads finish
                    if failure is None:
                        failure = error
                        for other in futures:
                            other.cancel()
        if failure is not None:
            raise failure
        return complete

    def _handled(self, observation: dict[str, Any]) -> bool:
        version = str((observation.get("meta") or {}).get("versionId") or "")
        return self.state.handled(self.server, str(observation.get("id")), version)

    def handle(
        self, observation: dict[str, Any], prefetched: PatientData | None = None, *, check_plans: bool = True
    ) -> PollReport:
        """One Observation: assess and write, or record why not. Server trouble propagates.
        ``check_plans`` off: the caller checks for second active plans itself (``_check_plans``)."""
        report = PollReport(seen=1)
        observation_id = str(observation.get("id"))
        version = str((observation.get("meta") or {}).get("versionId") or "")
        if self._handled(observation):
            report.already = 1
            return report
        patient = patient_of(observation)
        outcome, reason = "skipped", None
        if patient is None:
            reason = "Observation.subject is not a reference to a Patient on this server"
        else:
            try:
                result = write_back(
                    self.client,
                    patient,
                    self.policy,
                    scan_id=observation_id,
                    prefetched=prefetched,
                    now=self.clock(),
                    zone=self.zone,
                    check_plans=check_plans,
                )
                outcome = result.outcome
            except WritebackDeferred as wait:
                self.state.defer(self.server, observation_id, version, wait.due.timestamp(), wait.reason)
                report.deferred = 1
                log.info("Observation/%s/_history/%s: deferred until %s", observation_id, version, wait.due)
                return report
            except WritebackRefused as refusal:
                reason = refusal.reason
            except FhirError as error:
                if error.status not in REFUSED:
                    raise  # unreachable, throttled, credentials, conflicts: may pass, so retry later
                reason = f"the FHIR server refused the write-back: {error}"
        self.state.record(self.server, observation_id, version, outcome, reason=reason)
        setattr(report, outcome, 1)
        if reason:
            report.skipped_reasons.append(f"Observation/{observation_id}: {reason}")
        log.info("Observation/%s/_history/%s: %s", observation_id, version, outcome)
        if self.on_handled is not None:
            self.on_handled(observation_id, outcome)
        return report

    def handle_id(self, observation_id: str) -> PollReport:
        """An Observation named by a notification or a deferral: what the server holds now is what
        counts (id, version, subject), never what the notification said. Gone: a deletion."""
        try:
            observation = self.client.read("Observation", observation_id)
        except (NotFound, Gone):
            return self.handle_deleted(observation_id)
        return self.handle(observation)

    def handle_deleted(self, observation_id: str) -> PollReport:
        """A deleted Observation: the patient is assessed again without it (its RiskAssessments
        become entered-in-error, its plan is revoked). The patient and the deletion's version come
        from the server's history of the Observation."""
        report = PollReport(seen=1)
        try:
            pages = list(self.client.history("Observation", observation_id))
        except (NotFound, Gone):  # expunged, or never there: nothing left to read or to withdraw
            report.already = 1
            return report
        entries = [e for page in pages for e in page.get("entry") or []]
        newest = entries[0] if entries else {}
        deletion = newest if (newest.get("request") or {}).get("method") == "DELETE" else None
        before = next((e["resource"] for e in entries if isinstance(e.get("resource"), dict)), None)
        if deletion is None or before is None:
            report.already = 1  # not deleted after all (or never existed): nothing to withdraw
            return report
        version = str((deletion.get("request") or {}).get("url", "")).rsplit("/", 1)[-1]
        if self.state.handled(self.server, observation_id, version):
            report.already = 1
            return report
        patient = patient_of(before)
        if patient is None or not is_cac(before):
            self.state.record(self.server, observation_id, version, "unchanged")
            report.unchanged = 1
            return report
        withdrawn = {**before, "status": "entered-in-error", "meta": {"versionId": version}}
        return self.handle(withdrawn)

    def _check_plans(self, patients: list[str]) -> int:
        """After a chunk's writes, one search for the active fhircac plans of the patients written:
        any with two (a concurrent notification's write-back) is repaired. Returns plans revoked."""
        patients = [p for p in dict.fromkeys(patients) if p and not p.startswith("?")]
        if not patients:
            return 0
        params = [
            ("patient", ",".join(f"Patient/{p}" for p in patients)),
            ("identifier", f"{codes.ASSESSMENT_ID}|"),
            ("status", "active"),
            ("_count", "1000"),
            ("_elements", "subject"),
        ]
        return self._repair_doubles(self.client.search("CarePlan", params))

    def _repair_doubles(self, pages: Iterator[dict[str, Any]]) -> int:
        active: dict[str, int] = {}
        for page in pages:
            for entry in page.get("entry") or []:
                patient = patient_of(entry.get("resource") or {})
                if patient is not None:
                    active[patient] = active.get(patient, 0) + 1
        repaired = 0
        for patient, count in active.items():
            if count > 1:
                repaired += len(repair_plans(self.client, patient, self.policy, self.clock(), self.zone))
        return repaired

    def _heal_plans(self, report: PollReport) -> None:
        """Patients with two active fhircac plans among those made active since the last pass
        (every one on the first pass): a writer that died between its commit and its check, or
        an older fhircac, left them; the latest scan's plan stays. No extra request otherwise."""
        key = f"{self.server} plans"
        cursor = self.state.cursor(key)
        params = [
            ("identifier", f"{codes.ASSESSMENT_ID}|"),
            ("status", "active"),
            ("_count", str(self.page_size)),
            ("_elements", "subject"),
        ]
        if cursor is not None:
            params.append(("_lastUpdated", f"ge{_since(cursor, self.overlap)}"))
        searched: list[str] = []

        def pages() -> Iterator[dict[str, Any]]:
            for page in self.client.search("CarePlan", params):
                searched.append(str((page.get("meta") or {}).get("lastUpdated") or ""))
                yield page

        report.repaired += self._repair_doubles(pages())
        if searched and searched[0]:
            self.state.advance(key, searched[0])

    def _deletions(self, report: PollReport) -> None:
        """Observations deleted since the last pass (the search cannot see them), from the history."""
        key = f"{self.server} deletions"
        cursor = self.state.cursor(key)
        searched_at: str | None = None
        if cursor is not None:
            params = [("_since", _since(cursor, self.overlap)), ("_count", str(self.page_size))]
            for page in self.client.history("Observation", params=params):
                searched_at = searched_at or (page.get("meta") or {}).get("lastUpdated")
                for entry in page.get("entry") or []:
                    request = entry.get("request") or {}
                    parts = str(request.get("url", "")).split("/")  # Observation/<id>/_history/<v>
                    if request.get("method") != "DELETE" or len(parts) < 2 or parts[0] != "Observation":
                        continue
                    if len(parts) == 4 and self.state.handled(self.server, parts[1], parts[3]):
                        report.add(PollReport(seen=1, already=1))
                        continue
                    report.add(self.handle_deleted(parts[1]))
        else:
            first = next(self.client.history("Observation", params=[("_count", "1")]))
            searched_at = (first.get("meta") or {}).get("lastUpdated")
        if searched_at:
            self.state.advance(key, searched_at)


def run_forever(
    pollers: Sequence[Poller],
    stop: threading.Event,
    *,
    interval: float = 30.0,
    max_backoff: float = 300.0,
    once: bool = False,
) -> tuple[PollReport, int]:
    """Poll every server, wait ``interval``, repeat; while a server is in trouble, back off
    exponentially (with jitter, so several workers do not retry in step). ``once``: one pass over
    every server. Returns the totals and how many passes ended in server trouble."""
    total, troubles = PollReport(), 0
    failures = {poller.server: 0 for poller in pollers}
    next_due = {poller.server: 0.0 for poller in pollers}
    while not stop.is_set():
        for poller in pollers:
            if stop.is_set() or next_due[poller.server] > time.monotonic():
                continue
            try:
                report = poller.poll_once(stop)
            except Exception as trouble:  # the worker must outlive any one pass; no PHI in the log line
                troubles += 1
                failures[poller.server] += 1
                delay = min(max_backoff, interval * 2 ** (failures[poller.server] - 1))
                delay *= 0.5 + random.random() / 2
                next_due[poller.server] = time.monotonic() + delay
                message = str(trouble) if isinstance(trouble, ServerTrouble) else type(trouble).__name__
                log.warning("%s: %s; backing off %.1f s", poller.client.display_base, message, delay)
                continue
            total.add(report)
            failures[poller.server] = 0
            next_due[poller.server] = time.monotonic() + interval
            if report.seen - report.already:
                log.info(
                    "%s: %d written, %d unchanged, %d skipped",
                    poller.client.display_base,
                    report.written,
                    report.unchanged,
                    report.skipped,
                )
        if once:
            break
        stop.wait(max(0.05, min(next_due.values()) - time.monotonic()))
    return total, troubles
