"""Several API nodes (separate gunicorn processes) share their rate-limit counters through a real Redis server."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from app.migrate import upgrade
from tests.conftest import free_port
from tests.faults.conftest import Gunicorn, production_env

pytestmark = pytest.mark.live


@pytest.fixture
def redis_url() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (scripts/test.sh installs it)")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="hearth-redis-")
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def test_signin_limit_is_shared_between_api_nodes(tmp_path: Path, redis_url: str) -> None:
    url = f"sqlite:///{tmp_path / 'hearth.db'}"
    upgrade(url)
    env = {
        **production_env(url, tmp_path),
        "RATELIMIT_ENABLED": "true",
        "RATELIMIT_STORAGE_URI": redis_url,
    }
    nodes = [Gunicorn(env, workers=1), Gunicorn(env, workers=1)]
    try:
        body = {"handle": "alice", "password": "wrong-password"}
        statuses = [
            requests.post(
                f"{nodes[n % 2].url}/api/auth/password/signin", json=body, timeout=30
            ).status_code
            for n in range(11)
        ]
        assert statuses == [401] * 10 + [429]
        assert redis.Redis.from_url(redis_url).dbsize() > 0
    finally:
        for node in nodes:
            node.stop()
