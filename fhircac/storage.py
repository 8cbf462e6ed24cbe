"""fhircac's local SQLite files (CDS store, worker state): how long to wait for them, and what to say
when one cannot be used.

A locked, full or corrupt file is fhircac's trouble, not the caller's: it is answered 503 with the
reason (never a 401 or a bare 500), shown by ``/healthz``, and told in a readable line by the CLI.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

# SQLite waits this long for a lock another process holds. Well below gunicorn's 30 s worker timeout,
# and short because under the gevent worker the wait blocks every connection of that worker.
BUSY_TIMEOUT_SECONDS = 5.0


class StorageError(Exception):
    """A local store cannot be used; the message names the file and why (no patient data)."""


def reason(error: sqlite3.Error) -> str:
    """SQLite's own words, which name the fault without quoting any data."""
    text = str(error) or type(error).__name__
    hints = {
        "database is locked": "locked by another process",
        "file is not a database": "not an SQLite database (damaged, or another kind of file)",
        "database disk image is malformed": "damaged (malformed database image)",
        "database or disk is full": "the disk is full",
        "unable to open database file": "cannot be opened (missing folder or no permission)",
        "attempt to write a readonly database": "read-only",
    }
    return next((f"{hint} ({text})" for known, hint in hints.items() if known in text), text)


def failed(path: str, what: str, error: sqlite3.Error) -> StorageError:
    return StorageError(f"{what} {path}: {reason(error)}")


def problem(path: str) -> str | None:
    """Why the SQLite file at ``path`` cannot be read, or None when it can (or does not exist yet:
    it is created on first use). Opens it read-only: a health check must not create or lock it."""
    if path == ":memory:" or not Path(path).exists():
        return None
    try:
        db = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True, timeout=1.0)
        try:
            db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        finally:
            db.close()
    except sqlite3.Error as error:
        return reason(error)
    return None
