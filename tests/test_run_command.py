"""The README's run command works: ./scripts/run.sh serves the API, the frontend and demo data."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
API = "http://localhost:8000"
WEB = "http://localhost:3000"
# The credentials the README promises and `hearth demo` prints.
DEMO_ACCOUNTS = {"admin": "keeper-of-the-hearth", "alice": "warm-by-the-fire"}
START_TIMEOUT = 90.0

pytestmark = pytest.mark.live


def port_in_use(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


class RunCommand:
    """scripts/run.sh in its own process group, its output collected in a file."""

    def __init__(self, tmp_path: Path) -> None:
        self.output_path = tmp_path / "run.log"
        environ = {
            **os.environ,
            "HEARTH_ENV": "development",
            "HEARTH_INSTANCE_DIR": str(tmp_path / "instance"),
            "DATABASE_URL": f"sqlite:///{tmp_path / 'hearth.db'}",
        }
        with self.output_path.open("wb") as output:
            self.process = subprocess.Popen(
                [str(ROOT / "scripts" / "run.sh")],
                cwd=ROOT,
                env=environ,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def output(self) -> str:
        return self.output_path.read_text(errors="replace")

    def wait_until_serving(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"scripts/run.sh exited with {self.process.returncode}:\n{self.output}")
            try:
                requests.get(f"{API}/health/alive", timeout=2)
                requests.get(f"{WEB}/health/alive", timeout=2)
            except requests.ConnectionError:
                time.sleep(0.25)
                continue
            return
        pytest.fail(f"scripts/run.sh did not serve within {START_TIMEOUT:.0f}s:\n{self.output}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=15)


@pytest.fixture
def run_command(tmp_path: Path) -> Iterator[RunCommand]:
    busy = [port for port in (8000, 3000) if port_in_use(port)]
    if busy:
        pytest.fail(
            f"port(s) {', '.join(map(str, busy))} already in use: stop whatever is listening "
            "there (another Hearth?) before running the run-command test"
        )
    command = RunCommand(tmp_path)
    try:
        command.wait_until_serving()
        yield command
    finally:
        command.stop()


# One test on purpose: the servers hold fixed ports, so no two workers may start them at once.
def test_run_command_serves_api_frontend_and_demo_accounts(run_command: RunCommand) -> None:
    for handle, password in DEMO_ACCOUNTS.items():
        assert f"account {handle} (password: {password}" in run_command.output

    response = requests.get(f"{API}/api/accounts/self", timeout=10)
    assert response.status_code == 401
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert isinstance(body["error"], str)
    assert isinstance(body["error_description"], str)

    response = requests.get(f"{WEB}/login", timeout=10)
    assert response.status_code == 200, f"GET {WEB}/login: {response.status_code}"
    assert response.headers["Content-Type"].startswith("text/html")

    for handle, password in DEMO_ACCOUNTS.items():
        response = requests.post(
            f"{API}/api/auth/password/signin",
            json={"handle": handle, "password": password},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        assert response.json()["handle"] == handle
        assert response.cookies.get("storyden-session")
