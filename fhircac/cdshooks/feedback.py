"""CDS Hooks feedback and the cards it is about, in SQLite, and the acceptance summary.

Feedback names a card only by its uuid, so every card fhircac sends is recorded with its kind
(``cac-summary``, ``scan-order-too-soon`` …) and its suggestions' kinds; that is what makes an
acceptance rate per card type possible. No patient data is stored: uuids, kinds, outcomes, times,
override codes and the clinician's comment.

Every distinct feedback item is kept: the same item sent twice is one row, but items that differ
in anything, the override reason or the comment included, are two (a client reports each
interaction). The summary counts cards, not items: a card is *accepted* when any of its
suggestions was accepted (a dismissal after that, as the CDS Hooks sandbox sends when the card is
closed, does not undo it), else *overridden* when it was overridden, with the reason of its last
override.

Cards, their suggestions and feedback are kept ``retention_days`` (FHIRCAC_CDS_RETENTION_DAYS),
then deleted, so the file does not grow forever. A file that cannot be used raises StorageError.
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fhircac import storage
from fhircac.cdshooks.cards import Card
from fhircac.fhir import codes

PURGE_SECONDS = 600.0  # expired rows are deleted at most this often (on recording cards)


def _utc(timestamp: str) -> str:
    """One spelling per moment, so the same feedback sent with another offset is stored once."""
    moment = datetime.fromisoformat(timestamp.replace("Z", "+00:00").replace("z", "+00:00"))
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_SCHEMA = """
CREATE TABLE IF NOT EXISTS card (
    uuid TEXT PRIMARY KEY,
    service TEXT NOT NULL,
    kind TEXT NOT NULL,
    issued_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS suggestion (
    uuid TEXT PRIMARY KEY,
    card TEXT NOT NULL,
    kind TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY,
    service TEXT NOT NULL,
    card TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('accepted', 'overridden')),
    outcome_timestamp TEXT NOT NULL,
    accepted_suggestions TEXT NOT NULL,  -- JSON array of suggestion uuids, sorted
    override_system TEXT,
    override_code TEXT,
    user_comment TEXT,
    received_at REAL NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS feedback_item ON feedback (
    service, card, outcome, outcome_timestamp, accepted_suggestions,
    IFNULL(override_system, ''), IFNULL(override_code, ''), IFNULL(user_comment, '')
);
CREATE INDEX IF NOT EXISTS card_issued_at ON card (issued_at);
CREATE INDEX IF NOT EXISTS suggestion_card ON suggestion (card);
CREATE INDEX IF NOT EXISTS feedback_received_at ON feedback (received_at);
"""
# Before every distinct item was kept, the table itself made (card, outcome, time, suggestions)
# unique: such a file is rebuilt once, keeping its rows.
_OLD_KEY = "UNIQUE (service, card, outcome, outcome_timestamp, accepted_suggestions)"
_FEEDBACK_COLUMNS = (
    "id, service, card, outcome, outcome_timestamp, accepted_suggestions, override_system, "
    "override_code, user_comment, received_at"
)


@dataclass
class _CardOutcome:
    """What the feedback on one card adds up to (the summary's unit)."""

    kind: str
    accepted: bool = False
    overridden: bool = False
    override_code: str | None = None  # of the last override
    items: int = 0
    suggestions: dict[str, str] = field(default_factory=dict)  # accepted suggestion uuid -> kind


class FeedbackRefused(ValueError):
    """Feedback that contradicts what fhircac sent (a card of another service, a foreign suggestion)."""


class FeedbackStore:
    """One SQLite file shared by the gunicorn workers (WAL, busy timeout); a connection per thread."""

    def __init__(self, path: str | os.PathLike[str], retention_days: int = 30) -> None:
        self.path = str(path)
        self.retention_seconds = retention_days * 86_400.0
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._memory_lock = threading.Lock()
        self._memory: sqlite3.Connection | None = None
        self._ready = False
        self._purged_at = -math.inf  # the first cards recorded purge what expired meanwhile
        with suppress(storage.StorageError):  # still start: calls get 503 and the reason, so does /healthz
            self._schema()

    @contextmanager
    def _guard(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as error:
            raise storage.failed(self.path, "the CDS store (FHIRCAC_CDS_DB)", error) from None

    def _schema(self) -> None:
        if self._ready:
            return
        with self._guard():
            self._migrate(self._connection())
        self._ready = True

    @staticmethod
    def _migrate(db: sqlite3.Connection) -> None:
        db.execute("BEGIN IMMEDIATE")  # the workers start together: one of them migrates
        try:
            table = db.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'feedback'")
            old = table.fetchone()
            if old is not None and _OLD_KEY in old[0]:
                db.execute("ALTER TABLE feedback RENAME TO feedback_before_items")
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)
            if old is not None and _OLD_KEY in old[0]:
                db.execute(
                    f"INSERT INTO feedback ({_FEEDBACK_COLUMNS}) "
                    f"SELECT {_FEEDBACK_COLUMNS} FROM feedback_before_items"
                )
                db.execute("DROP TABLE feedback_before_items")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def problem(self) -> str | None:
        """Why the store cannot be used now, or None (for /healthz)."""
        try:
            self._schema()
        except storage.StorageError as error:
            return str(error)
        found = storage.problem(self.path)
        return None if found is None else f"the CDS store (FHIRCAC_CDS_DB) {self.path}: {found}"

    def purge(self, now: float | None = None) -> int:
        """Delete cards, suggestions and feedback older than the retention; the rows deleted."""
        cutoff = (time.time() if now is None else now) - self.retention_seconds
        self._schema()
        with self._guard(), self._connection() as db:
            deleted = db.execute(
                "DELETE FROM suggestion WHERE card IN (SELECT uuid FROM card WHERE issued_at < ?)", (cutoff,)
            ).rowcount
            deleted += db.execute("DELETE FROM card WHERE issued_at < ?", (cutoff,)).rowcount
            deleted += db.execute("DELETE FROM feedback WHERE received_at < ?", (cutoff,)).rowcount
        self._purged_at = time.monotonic()
        return deleted

    def _connection(self) -> sqlite3.Connection:
        if self.path == ":memory:":  # tests: one shared connection
            with self._memory_lock:
                if self._memory is None:
                    self._memory = sqlite3.connect(":memory:", check_same_thread=False)
                return self._memory
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=storage.BUSY_TIMEOUT_SECONDS)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    def record_cards(self, service: str, cards: Iterable[Card]) -> None:
        cards = list(cards)
        if not cards:
            return
        now = time.time()
        self._schema()
        if time.monotonic() - self._purged_at >= PURGE_SECONDS:
            self.purge(now)
        with self._guard(), self._connection() as db:
            db.executemany(
                "INSERT OR IGNORE INTO card (uuid, service, kind, issued_at) VALUES (?, ?, ?, ?)",
                [(card.uuid, service, card.kind, now) for card in cards],
            )
            db.executemany(
                "INSERT OR IGNORE INTO suggestion (uuid, card, kind) VALUES (?, ?, ?)",
                [(s.uuid, card.uuid, s.kind) for card in cards for s in card.suggestions],
            )

    def record_feedback(self, service: str, items: list[Mapping[str, Any]]) -> tuple[int, int]:
        """Store valid feedback (schema-checked); returns (stored, already stored)."""
        self._schema()
        with self._guard():
            rows = [self._row(service, item) for item in items]
        stored = 0
        with self._guard(), self._connection() as db:
            for row in rows:
                cursor = db.execute(
                    "INSERT OR IGNORE INTO feedback (service, card, outcome, outcome_timestamp, "
                    "accepted_suggestions, override_system, override_code, user_comment, received_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
                stored += cursor.rowcount
        return stored, len(rows) - stored

    def _row(self, service: str, item: Mapping[str, Any]) -> tuple[Any, ...]:
        card = str(item["card"])
        db = self._connection()
        issued = db.execute("SELECT service FROM card WHERE uuid = ?", (card,)).fetchone()
        if issued is not None and issued[0] != service:
            raise FeedbackRefused(f"card {card} was sent by the service {issued[0]}, not {service}")
        accepted = sorted({str(s["id"]) for s in item.get("acceptedSuggestions") or []})
        if issued is not None and accepted:
            known = {row[0] for row in db.execute("SELECT uuid FROM suggestion WHERE card = ?", (card,))}
            foreign = [s for s in accepted if s not in known]
            if foreign:
                raise FeedbackRefused(f"suggestion {foreign[0]} is not one of card {card}'s suggestions")
        override: Mapping[str, Any] = item.get("overrideReason") or {}
        given = override.get("reason")
        reason: Mapping[str, Any] = given if isinstance(given, dict) else override
        system, code = reason.get("system"), reason.get("code")
        try:
            moment = _utc(item["outcomeTimestamp"])
        except ValueError:
            raise FeedbackRefused(
                f"outcomeTimestamp {item['outcomeTimestamp']!r} is not a valid time"
            ) from None
        return (
            service,
            card,
            item["outcome"],
            moment,
            json.dumps(accepted),
            system,
            code if system == codes.OVERRIDE_REASON else (f"other:{code}" if code else None),
            override.get("userComment"),
            time.time(),
        )

    def summary(self) -> dict[str, Any]:
        """Acceptance per service and card kind, counted in cards (see the module docstring);
        feedback on cards fhircac has no record of is counted apart (``unattributed``), never
        dropped. Covers the retention period."""
        self._schema()
        with self._guard():
            return self._summary(self._connection())

    def _summary(self, db: sqlite3.Connection) -> dict[str, Any]:
        services: dict[str, Any] = {}

        def kind_entry(service: str, kind: str) -> dict[str, Any]:
            cards: dict[str, dict[str, Any]] = services.setdefault(service, {"cards": {}})["cards"]
            return cards.setdefault(
                kind,
                {
                    "issued": 0,
                    "accepted": 0,
                    "overridden": 0,
                    "feedback_items": 0,
                    "suggestions_accepted": {},
                    "override_reasons": {},
                },
            )

        for service, kind, issued in db.execute("SELECT service, kind, COUNT(*) FROM card GROUP BY 1, 2"):
            kind_entry(service, kind)["issued"] = issued
        unattributed = 0
        outcomes: dict[tuple[str, str], _CardOutcome] = {}
        items = db.execute(
            "SELECT f.service, f.card, c.kind, f.outcome, f.override_code FROM feedback f "
            "LEFT JOIN card c ON c.uuid = f.card ORDER BY f.outcome_timestamp, f.id"
        )
        for service, card, kind, outcome, override_code in items:
            if kind is None:
                unattributed += 1
                continue
            state = outcomes.setdefault((service, card), _CardOutcome(kind))
            state.items += 1
            if outcome == "accepted":
                state.accepted = True
            else:
                state.overridden, state.override_code = True, override_code
        suggestions = db.execute(
            "SELECT DISTINCT f.service, f.card, j.value, COALESCE(s.kind, 'unknown') "
            "FROM feedback f JOIN card c ON c.uuid = f.card, json_each(f.accepted_suggestions) j "
            "LEFT JOIN suggestion s ON s.uuid = j.value"
        )
        for service, card, suggestion, suggestion_kind in suggestions:
            outcomes[(service, card)].suggestions[str(suggestion)] = suggestion_kind
        for (service, _), state in outcomes.items():
            entry = kind_entry(service, state.kind)
            entry["feedback_items"] += state.items
            if state.accepted:
                entry["accepted"] += 1
                for suggestion_kind in state.suggestions.values():
                    counts = entry["suggestions_accepted"]
                    counts[suggestion_kind] = counts.get(suggestion_kind, 0) + 1
            elif state.overridden:
                entry["overridden"] += 1
                if state.override_code:
                    reasons = entry["override_reasons"]
                    reasons[state.override_code] = reasons.get(state.override_code, 0) + 1
        for service_entry in services.values():
            for entry in service_entry["cards"].values():
                answered = entry["accepted"] + entry["overridden"]
                entry["acceptance_rate"] = round(entry["accepted"] / answered, 3) if answered else None
        summary: dict[str, Any] = {"services": services, "unattributed_feedback": unattributed}
        return summary
