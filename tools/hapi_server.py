"""Build, start and stop the test FHIR server (HAPI FHIR JPA, R4) on 127.0.0.1.

    python tools/hapi_server.py build             # mvn package (downloads from Maven Central once)
    python tools/hapi_server.py run [--port P]    # start, wait for /fhir/metadata, run until Ctrl-C

The integration tests and benchmarks import ``HapiServer`` and start their own server on a free
port. ``data_dir`` keeps the H2 database in files, so a server can be stopped and started again
without losing what was written (the worker's outage test needs that); without it the database
lives in memory and disappears with the process.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import processes

ROOT = Path(__file__).resolve().parent / "hapi"
JAR = ROOT / "target" / "fhircac-hapi-test-server.jar"
STARTUP_TIMEOUT = float(os.environ.get("FHIRCAC_HAPI_STARTUP_TIMEOUT", "300"))


class HapiError(RuntimeError):
    pass


def _sources_newer_than_jar() -> bool:
    if not JAR.exists():
        return True
    built = JAR.stat().st_mtime
    sources = [ROOT / "pom.xml", *ROOT.joinpath("src").rglob("*")]
    return any(path.is_file() and path.stat().st_mtime > built for path in sources)


def build(quiet: bool = True) -> Path:
    """Package the server jar when it is missing or older than its sources."""
    if not _sources_newer_than_jar():
        return JAR
    maven = shutil.which("mvn")
    if maven is None:
        raise HapiError("Maven (mvn) is not installed; it is needed to build the test FHIR server")
    command = [maven, "-B", "-f", str(ROOT / "pom.xml"), "package", "-DskipTests"]
    if quiet:
        command.insert(2, "-q")
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0 or not JAR.exists():
        raise HapiError(
            f"building the test FHIR server failed:\n{result.stdout[-4000:]}{result.stderr[-2000:]}"
        )
    return JAR


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HapiServer:
    """One HAPI process. ``start()`` returns when ``/fhir/metadata`` answers."""

    def __init__(
        self, port: int | None = None, data_dir: Path | None = None, log_path: Path | None = None
    ) -> None:
        self.port = port or free_port()
        self.data_dir = data_dir
        self.log_path = log_path or Path(os.environ.get("TMPDIR", "/tmp")) / f"fhircac-hapi-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/fhir"

    def command(self) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise HapiError("Java is not installed; it is needed to run the test FHIR server")
        command = [java, "-Xmx2g", "-XX:+UseParallelGC", "-jar", str(JAR), f"--server.port={self.port}"]
        if self.data_dir is not None:
            url = f"jdbc:h2:file:{self.data_dir.resolve() / 'hapi'};DB_CLOSE_ON_EXIT=FALSE"
            command.append(f"--spring.datasource.url={url}")
        return command

    def start(self, timeout: float = STARTUP_TIMEOUT) -> HapiServer:
        build()
        if self.data_dir is not None:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process = processes.start(self.command(), self.log_path)
        try:
            processes.wait_until(self.ready, timeout, "the test FHIR server", self.process)
        except BaseException as error:  # a timeout, an exit, Ctrl-C: never leave Java running
            self.stop()
            if isinstance(error, processes.ProcessError):
                raise HapiError(f"{error}:\n{self.log_tail()}") from None
            raise
        return self

    def ready(self) -> bool:
        return processes.http_ok(f"{self.base_url}/metadata")

    def stop(self) -> None:
        if self.process is not None:
            processes.stop(self.process, timeout=60)

    def log_tail(self, characters: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-characters:]
        except OSError:
            return "(no log)"

    def __enter__(self) -> HapiServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="build the server jar")
    run = sub.add_parser("run", help="start the server and keep it running until interrupted")
    run.add_argument("--port", type=int, default=8090)
    run.add_argument("--data-dir", type=Path, help="keep the database in files under this folder")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            print(build(quiet=False))
            return 0
        server = HapiServer(args.port, args.data_dir).start()
    except HapiError as error:
        print(f"hapi_server: {error}", file=sys.stderr)
        return 1
    print(f"HAPI FHIR ready at {server.base_url} (log: {server.log_path})", flush=True)

    def stop_on_signal(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop_on_signal)
    signal.signal(signal.SIGINT, stop_on_signal)  # also when started in the background with &
    try:
        while server.process is not None and server.process.poll() is None:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
