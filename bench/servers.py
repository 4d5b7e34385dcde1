"""Gunicorn under test: start, wait until every worker answers, read its CPU time, stop.

CPU time is utime+stime of the master and its workers from /proc/<pid>/stat (PERFORMANCE.md:
server CPU milliseconds per operation is the figure that survives a noisy machine).
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces; fields resume after its closing parenthesis.
    return text[text.rindex(")") + 2 :].split()


def children(pid: int) -> list[int]:
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime (fields 14 and 15 of /proc/<pid>/stat) of these processes, in seconds."""
    total = 0
    for pid in pids:
        fields = _stat(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])
    return total / TICKS


def tree_cpu_seconds(pid: int) -> float:
    """CPU of a server and its children, reaped ones included (cutime, cstime).

    For PostgreSQL's postmaster: backends come and go with connections, and their CPU moves into
    the postmaster's cutime/cstime when they exit.
    """
    fields = _stat(pid)
    if fields is None:
        return 0.0
    reaped = (int(fields[13]) + int(fields[14])) / TICKS
    return cpu_seconds([pid, *children(pid)]) + reaped


def parent(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[1]) if fields is not None else None


def system_cpu() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    total = sum(values[:8])
    idle = values[3] + values[4]
    return (total - idle) / TICKS, total / TICKS


class Gunicorn:
    """`gunicorn -w WORKERS -b 127.0.0.1:PORT APP`, the production command, on loopback."""

    def __init__(
        self, app: str, port: int, env: dict[str, str], workers: int, log: Path, probe: str
    ) -> None:
        self.app = app
        self.port = port
        self.env = env
        self.workers = workers
        self.log = log
        self.probe = probe
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def command(self) -> list[str]:
        return ["gunicorn", "-w", str(self.workers), "-b", f"127.0.0.1:{self.port}", self.app]

    def start(self, timeout: float = 60) -> Gunicorn:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", *self.command],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn {self.app} exited: {self._log_tail()}")
            if len(self.worker_pids()) >= self.workers and self._answers():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gunicorn {self.app} not ready in {timeout}s: {self._log_tail()}")

    def _answers(self) -> bool:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            conn.request("GET", self.probe)
            response = conn.getresponse()
            response.read()
            return response.status == 200
        except OSError:
            return False
        finally:
            conn.close()

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    def worker_pids(self) -> list[int]:
        return children(self.process.pid) if self.process is not None else []

    def pids(self) -> list[int]:
        return [self.process.pid, *self.worker_pids()] if self.process is not None else []

    def cpu(self) -> float:
        return cpu_seconds(self.pids())

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
