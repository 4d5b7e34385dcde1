"""Fault-injection fixtures: a private PostgreSQL server the test may stop and start, and real
gunicorn processes. Everything listens on 127.0.0.1 and is torn down by the fixtures."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import SIGNING_KEY, free_port

ROOT = Path(__file__).resolve().parents[2]


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


class PrivatePostgres:
    """A throwaway PostgreSQL cluster owned by one test, run as `nobody` when we are root."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="hearth-fault-pg-", dir="/tmp"))
        self.data = self.root / "data"
        self.socket = self.root / "socket"
        self.port = free_port()
        self.as_user = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []
        self.socket.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.root, "nobody")
            shutil.chown(self.socket, "nobody")
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
            "--encoding=UTF8",
            "--no-locale",
        )
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self.as_user, str(self.bindir / tool), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=60,
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.socket} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off"
        )
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.root / "log"),
            "-w",
            "-t",
            "30",
            "-o",
            options,
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop")

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            subprocess.run(
                [
                    *self.as_user,
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(self.data),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
                check=False,
                capture_output=True,
                timeout=30,
            )
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    bindir = _postgres_bin()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries on this machine")
    server = PrivatePostgres(bindir)
    try:
        server.start()
        yield server
    finally:
        server.destroy()


class Gunicorn:
    """`gunicorn -w 2 wsgi:api` in its own process group, as in production."""

    def __init__(self, env: dict[str, str], workers: int = 2) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        log_fd, self.log_path = tempfile.mkstemp(prefix="hearth-gunicorn-", suffix=".log")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "-w",
                str(workers),
                "-b",
                f"127.0.0.1:{self.port}",
                "--graceful-timeout",
                "20",
                "--timeout",
                "60",
                "wsgi:api",
            ],
            cwd=ROOT,
            env=env,
            stdout=log_fd,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        os.close(log_fd)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.url}/health/alive", timeout=2).status_code == 200:
                    return
            except requests.RequestException:  # not listening yet, or still booting
                time.sleep(0.2)
            if self.process.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"gunicorn did not start: {Path(self.log_path).read_text()[-2000:]}")

    def workers(self) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True)
        return [int(pid) for pid in out.stdout.split()]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def production_env(database_url: str, instance: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("OAUTH_", "PUBLIC_", "RATELIMIT"))
    }
    env.update(
        {
            "HEARTH_ENV": "production",
            "DATABASE_URL": database_url,
            "HEARTH_INSTANCE_DIR": str(instance),
            "SECRET_KEY": "fault-test-secret-key-0123456789abcdef",
            "OAUTH_SIGNING_KEY": SIGNING_KEY,
            "RATELIMIT_ENABLED": "false",
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env
