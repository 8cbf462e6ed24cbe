"""The Docker image's layout, rebuilt without Docker (there is no Docker engine here), read from the
Dockerfile itself: its COPY lines into a root-owned WORKDIR, ``pip install -c constraints.txt .``
into a root-owned environment, its ENV, the data folder its RUN line creates and chowns, and its
CMD run as its USER (``setpriv`` when the tests run as root; otherwise the app is made read-only
and the command runs as the current user). The service must answer ``/healthz`` (and the image's
HEALTHCHECK command must pass) while writing only under FHIRCAC_DATA_DIR; the old layout (no data
folder) must stop at once with an error that names the setting, not "Worker failed to boot".
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import processes
import pytest
import requests
from hapi_server import free_port

from tests.integration.conftest import ROOT, fhircac_log

pytestmark = pytest.mark.integration


@dataclass
class Image:
    env: dict[str, str]
    workdir: str
    copies: list[tuple[list[str], str]]
    owned_dirs: list[str]  # created by `mkdir -p` and chowned in the RUN line
    user: tuple[int, int]
    cmd: list[str]
    healthcheck: list[str]


def read_dockerfile(path: Path = ROOT / "Dockerfile") -> Image:
    text = re.sub(r"\\\n", " ", path.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    env: dict[str, str] = {}
    copies, owned, user, cmd, health, workdir = [], [], (0, 0), [], [], "/"
    for line in lines:
        instruction, _, rest = line.partition(" ")
        if instruction == "ENV":
            env.update(item.split("=", 1) for item in shlex.split(rest))
        elif instruction == "WORKDIR":
            workdir = rest.strip()
        elif instruction == "COPY":
            *sources, destination = shlex.split(rest)
            copies.append((sources, destination))
        elif instruction == "RUN":
            owned += [d for step in rest.split("&&") if (d := step.split()[-1]) and "chown" in step]
        elif instruction == "USER":
            uid, _, gid = rest.strip().partition(":")
            user = (int(uid), int(gid or uid))
        elif instruction == "CMD":
            cmd = json.loads(rest)
        elif instruction == "HEALTHCHECK":
            health = shlex.split(rest.split(" CMD ", 1)[1])
    return Image(env, workdir, copies, owned, user, cmd, health)


@pytest.fixture
def image_root() -> Iterator[Path]:
    """A folder the service user can reach (pytest's tmp_path is private to root)."""
    root = Path(tempfile.mkdtemp(prefix="fhircac-image-"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        for folder, _, _ in os.walk(root):  # read-only when not run as root: writable again to remove
            os.chmod(folder, stat.S_IRWXU)
        shutil.rmtree(root)


def system_python() -> str:
    """A Python every user can run, as the image's /usr/local/bin/python (a pyenv or .venv Python
    may live under a home folder the service user cannot enter)."""
    for candidate in ("/usr/local/bin/python3", "/usr/bin/python3"):
        if (
            os.access(candidate, os.X_OK)
            and subprocess.run(
                [candidate, "-c", "import sys, venv; sys.exit(sys.version_info < (3, 11))"], timeout=60
            ).returncode
            == 0
        ):
            return candidate
    return sys._base_executable  # type: ignore[attr-defined]


def build(image: Image, root: Path) -> tuple[Path, Path]:
    app = root / image.workdir.lstrip("/")
    app.mkdir(parents=True)
    for sources, destination in image.copies:
        target = app / destination
        for source in sources:
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                shutil.copy(ROOT / source, target / Path(source).name)
    venv = root / "venv"
    subprocess.run([system_python(), "-m", "venv", str(venv)], check=True, timeout=300)
    subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "-c", "constraints.txt", "."],
        cwd=app,
        check=True,
        timeout=900,
        capture_output=True,
    )
    for folder in image.owned_dirs:
        data = root / folder.lstrip("/")
        data.mkdir(parents=True)
        if os.geteuid() == 0:
            os.chown(data, *image.user)
    return app, venv


def as_image_user(image: Image, argv: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return argv
    uid, gid = image.user
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--", *argv]


def image_env(image: Image, root: Path, venv: Path, port: int) -> dict[str, str]:
    """The image's ENV (absolute paths moved under ``root``), on loopback and a free port."""
    env = {
        name: str(root / value.lstrip("/")) if value.startswith("/") else value
        for name, value in image.env.items()
    }
    return {
        **env,
        "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": "/nonexistent",  # useradd --no-create-home
        "FHIRCAC_HOST": "127.0.0.1",
        "FHIRCAC_PORT": str(port),
    }


def test_the_image_layout_serves_as_its_unprivileged_user_and_writes_only_its_data_dir(
    image_root: Path,
) -> None:
    image = read_dockerfile()
    assert image.env.get("FHIRCAC_DATA_DIR") in image.owned_dirs, "the data folder must belong to USER"
    assert image.user[0] != 0 and image.cmd[:2] == ["fhircac", "serve"]
    app, venv = build(image, image_root)
    if os.geteuid() != 0:  # no other user to become: the app is made read-only instead
        for folder in (app, venv):
            subprocess.run(["chmod", "-R", "a-w", str(folder)], check=True)
    port = free_port()
    env = image_env(image, image_root, venv, port)
    data = Path(env["FHIRCAC_DATA_DIR"])
    log = fhircac_log(ROOT / ".artifacts" / "container-layout.log", env)
    log.unlink(missing_ok=True)
    base_url = f"http://127.0.0.1:{port}"
    with processes.running(
        as_image_user(image, image.cmd),
        log,
        lambda: processes.http_ok(f"{base_url}/healthz"),
        timeout=180,
        what="fhircac serve in the image layout",
        env=env,
        cwd=app,
    ):
        assert requests.get(f"{base_url}/healthz", timeout=10).json()["status"] == "ok"
        assert requests.get(f"{base_url}/cds-feedback/summary", timeout=10).status_code == 200
        health = subprocess.run(as_image_user(image, image.healthcheck), env=env, cwd=app, timeout=60)
        assert health.returncode == 0
    assert (data / "cds.sqlite").exists()
    if os.geteuid() == 0:
        assert (data / "cds.sqlite").stat().st_uid == image.user[0]
    assert not (app / ".fhircac").exists()
    assert "Traceback" not in log.read_text()

    # the layout the review found (no data folder): a clear refusal at once, naming the setting
    old = {name: value for name, value in env.items() if name != "FHIRCAC_DATA_DIR"}
    refused = subprocess.run(
        as_image_user(image, image.cmd), env=old, cwd=app, capture_output=True, text=True, timeout=120
    )
    assert refused.returncode == 2, refused.stderr
    assert "FHIRCAC_DATA_DIR" in refused.stderr and "Traceback" not in refused.stderr
