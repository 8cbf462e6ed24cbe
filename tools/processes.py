"""Start, wait for and stop the servers that tests, benchmarks and tools run (stdlib only).

Every server is started in a session of its own, so stopping it stops its whole process group
(gunicorn's master and workers, Java's children) and nothing is left listening after a failure.
A wait has a deadline, gives up at once when the process exits, and treats any transport error
(refused, reset, timed out, a half-written answer) as "not ready yet".
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path


class ProcessError(RuntimeError):
    pass


def start(
    argv: Sequence[str], log_path: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """``argv`` in a new session, stdout and stderr appended to ``log_path``."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            list(argv), env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(process: subprocess.Popen[bytes] | subprocess.Popen[str], timeout: float = 30) -> None:
    """SIGTERM to the process group, then SIGKILL after ``timeout`` seconds; always reaps."""
    if process.poll() is None:
        _signal_group(process, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=timeout)
    # the leader may be gone while its children (gunicorn workers, forked helpers) still run
    _signal_group(process, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout)


def _signal_group(process: subprocess.Popen[bytes] | subprocess.Popen[str], signum: int) -> None:
    try:
        os.killpg(process.pid, signum)  # the pid is the group id: started with start_new_session
    except ProcessLookupError:
        return
    except PermissionError:  # not a group leader of ours: signal the process alone
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signum)


def http_ok(url: str, timeout: float = 5) -> bool:
    """True when ``url`` answers 200; any error on the way is False."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bool(response.status == 200)
    except (OSError, http.client.HTTPException, ValueError):  # URLError and timeouts are OSErrors
        return False


def wait_until(
    ready: Callable[[], bool],
    timeout: float,
    what: str,
    process: subprocess.Popen[bytes] | subprocess.Popen[str] | None = None,
    log_path: Path | None = None,
) -> None:
    """Poll ``ready`` until it is true; ProcessError when ``process`` exits or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise ProcessError(f"{what}: the process exited with {process.returncode}{_tail(log_path)}")
        if ready():
            return
        if time.monotonic() >= deadline:
            raise ProcessError(f"{what}: not ready within {timeout:.0f} s{_tail(log_path)}")
        time.sleep(0.2)


@contextlib.contextmanager
def running(
    argv: Sequence[str],
    log_path: Path,
    ready: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """A started and ready process, stopped however the block ends (failed start included)."""
    process = start(argv, log_path, env=env, cwd=cwd)
    try:
        wait_until(ready, timeout, what, process, log_path)
        yield process
    finally:
        stop(process)


def _tail(log_path: Path | None, characters: int = 4000) -> str:
    if log_path is None:
        return ""
    try:
        return ":\n" + log_path.read_text(errors="replace")[-characters:]
    except OSError:
        return ""
