"""The worker's durable state in SQLite: a cursor per FHIR server and a ledger of handled Observations.

The cursor is the server's own ``meta.lastUpdated`` of the last Observation of a fully handled
search page, kept as the raw string the server sent (re-serialising it can change its precision).
It only moves forward. An Observation enters the ledger after its write succeeded, so a crash
between the write and the ledger row makes the worker redo it, which write-back makes harmless;
a crash within a page makes the worker re-read the page and skip what the ledger already holds.
The ledger holds ids and versions only: no names, identifiers or dates of birth. An Observation
that cannot be assessed *yet* (dated after now) is not in the ledger but in ``deferred``, with the
moment it becomes due; the poller retries it then.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fhircac.storage import BUSY_TIMEOUT_SECONDS

_SCHEMA = """
CREATE TABLE IF NOT EXISTS cursor (
    server TEXT PRIMARY KEY,
    last_updated TEXT NOT NULL,
    last_updated_epoch REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS ledger (
    server TEXT NOT NULL,
    observation TEXT NOT NULL,
    version TEXT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('written', 'unchanged', 'skipped')),
    reason TEXT,
    handled_at REAL NOT NULL,
    PRIMARY KEY (server, observation, version)
);
CREATE TABLE IF NOT EXISTS deferred (
    server TEXT NOT NULL,
    observation TEXT NOT NULL,
    version TEXT NOT NULL,
    due REAL NOT NULL,
    reason TEXT,
    PRIMARY KEY (server, observation)
);
"""


@dataclass(frozen=True)
class LedgerEntry:
    server: str
    observation: str
    version: str
    outcome: str
    reason: str | None
    handled_at: float


def instant_epoch(text: str) -> float:
    """A FHIR instant as seconds since the epoch; FHIR instants always carry a zone."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class State:
    """One SQLite file; safe to share between processes (WAL, busy timeout) and threads (a lock)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _rows(self, query: str, parameters: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(query, parameters).fetchall()

    def _write(self, query: str, parameters: Sequence[Any], *more: tuple[str, Sequence[Any]]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for statement, values in ((query, parameters), *more):
                    self._db.execute(statement, values)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def cursor(self, server: str) -> str | None:
        rows = self._rows("SELECT last_updated FROM cursor WHERE server = ?", (server,))
        return str(rows[0][0]) if rows else None

    def handled(self, server: str, observation: str, version: str) -> bool:
        query = "SELECT 1 FROM ledger WHERE server = ? AND observation = ? AND version = ?"
        return bool(self._rows(query, (server, observation, version)))

    def record(
        self, server: str, observation: str, version: str, outcome: str, *, reason: str | None = None
    ) -> None:
        """The Observation is handled: written, unchanged, or skipped for ``reason``."""
        self._write(
            "INSERT OR REPLACE INTO ledger VALUES (?, ?, ?, ?, ?, ?)",
            (server, observation, version, outcome, reason, time.time()),
            ("DELETE FROM deferred WHERE server = ? AND observation = ?", (server, observation)),
        )

    def defer(self, server: str, observation: str, version: str, due: float, reason: str) -> None:
        """Not assessable before ``due`` (epoch seconds): retried then, never recorded as handled."""
        self._write(
            "INSERT OR REPLACE INTO deferred VALUES (?, ?, ?, ?, ?)",
            (server, observation, version, due, reason),
        )

    def due(self, server: str, now: float) -> list[str]:
        """Deferred Observation ids whose moment has come."""
        rows = self._rows(
            "SELECT observation FROM deferred WHERE server = ? AND due <= ? ORDER BY due", (server, now)
        )
        return [str(row[0]) for row in rows]

    def deferred(self, server: str) -> dict[str, tuple[str, float, str | None]]:
        """Observation id → (version, due, reason) of what waits."""
        rows = self._rows(
            "SELECT observation, version, due, reason FROM deferred WHERE server = ?", (server,)
        )
        return {str(o): (str(v), float(d), r) for o, v, d, r in rows}

    def advance(self, server: str, last_updated: str) -> None:
        """Move the cursor to ``last_updated`` (the server's raw string); never backwards."""
        self._write(
            "INSERT INTO cursor VALUES (?, ?, ?) ON CONFLICT(server) DO UPDATE SET "
            "last_updated = excluded.last_updated, last_updated_epoch = excluded.last_updated_epoch "
            "WHERE excluded.last_updated_epoch > cursor.last_updated_epoch",
            (server, last_updated, instant_epoch(last_updated)),
        )

    def entries(self, server: str | None = None, outcome: str | None = None) -> list[LedgerEntry]:
        query = "SELECT server, observation, version, outcome, reason, handled_at FROM ledger WHERE 1=1"
        parameters: list[str] = []
        if server is not None:
            query += " AND server = ?"
            parameters.append(server)
        if outcome is not None:
            query += " AND outcome = ?"
            parameters.append(outcome)
        return [LedgerEntry(*row) for row in self._rows(query + " ORDER BY handled_at", parameters)]
