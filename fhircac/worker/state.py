"""The worker's durable state in SQLite: a cursor per FHIR server and a ledger of handled Observations.

The cursor is the server's own ``meta.lastUpdated`` of the last Observation handled, kept as the raw
string the server sent (re-serialising it can change its precision). It only moves forward, and only
in the same SQLite transaction that records the Observation as handled, so a crash between a write
and its ledger row makes the worker redo that Observation, which write-back makes harmless.
The ledger holds ids and versions only: no names, identifiers or dates of birth.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

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
    """One SQLite file; safe to share between processes (WAL, busy timeout)."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def cursor(self, server: str) -> str | None:
        row = self._db.execute("SELECT last_updated FROM cursor WHERE server = ?", (server,)).fetchone()
        return str(row[0]) if row else None

    def handled(self, server: str, observation: str, version: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM ledger WHERE server = ? AND observation = ? AND version = ?",
            (server, observation, version),
        ).fetchone()
        return row is not None

    def record(
        self,
        server: str,
        observation: str,
        version: str,
        outcome: str,
        *,
        reason: str | None = None,
        last_updated: str | None = None,
    ) -> None:
        """Ledger row and cursor advance in one transaction; the cursor never moves backwards."""
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO ledger VALUES (?, ?, ?, ?, ?, ?)",
                (server, observation, version, outcome, reason, time.time()),
            )
            if last_updated is not None:
                epoch = instant_epoch(last_updated)
                self._db.execute(
                    "INSERT INTO cursor VALUES (?, ?, ?) ON CONFLICT(server) DO UPDATE SET "
                    "last_updated = excluded.last_updated, last_updated_epoch = excluded.last_updated_epoch "
                    "WHERE excluded.last_updated_epoch > cursor.last_updated_epoch",
                    (server, last_updated, epoch),
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
        rows = self._db.execute(query + " ORDER BY handled_at", parameters).fetchall()
        return [LedgerEntry(*row) for row in rows]

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")
