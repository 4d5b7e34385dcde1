"""Faults an operator will meet: the database going away, workers dying, shutdowns mid-request.

Each test runs real gunicorn processes on 127.0.0.1 and is bounded in time.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import signal
import socket
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from app.migrate import upgrade
from tests.conftest import PASSWORD, make_app
from tests.faults.conftest import Gunicorn, PrivatePostgres, production_env

pytestmark = pytest.mark.live


def _signup(base: str, handle: str) -> requests.Response:
    return requests.post(
        f"{base}/api/auth/password/signup",
        json={"handle": handle, "password": PASSWORD},
        timeout=30,
    )


def test_database_outage_answers_503_and_recovers_without_restart(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    upgrade(private_postgres.url)
    server = Gunicorn(production_env(private_postgres.url, tmp_path))
    try:
        alice = _signup(server.url, "alice")
        assert alice.status_code == 200
        cookies = alice.cookies

        private_postgres.stop()
        me = requests.get(f"{server.url}/api/accounts/self", cookies=cookies, timeout=30)
        assert me.status_code == 503
        assert me.json() == {
            "error": "temporarily_unavailable",
            "error_description": "The service is temporarily unavailable; try again shortly.",
        }
        assert me.headers["Retry-After"] == "5"
        assert "Traceback" not in me.text
        write = _signup(server.url, "bob-the-builder")
        assert write.status_code == 503
        assert requests.get(f"{server.url}/health/ready", timeout=30).status_code == 503
        assert requests.get(f"{server.url}/health/alive", timeout=30).status_code == 200

        private_postgres.start()
        assert requests.get(f"{server.url}/health/ready", timeout=30).status_code == 200
        again = requests.get(f"{server.url}/api/accounts/self", cookies=cookies, timeout=30)
        assert again.status_code == 200
        assert again.json()["handle"] == "alice"
        # The sign-up that failed during the outage left nothing behind.
        missing = requests.post(
            f"{server.url}/api/auth/password/signin",
            json={"handle": "bob-the-builder", "password": PASSWORD},
            timeout=30,
        )
        assert missing.status_code == 401
        assert _signup(server.url, "bob-the-builder").status_code == 200
    finally:
        server.stop()


def _make_client(url: str) -> dict[str, str]:
    """A confidential client for https://app.example/cb, made with the real CLI."""
    created = (
        make_app(url)
        .test_cli_runner()
        .invoke(
            args=[
                "clients",
                "create",
                "--name",
                "App",
                "--redirect-uri",
                "https://app.example/cb",
                "--scopes",
                "openid offline_access",
                "--json",
            ]
        )
    )
    assert created.exit_code == 0, created.output
    client: dict[str, str] = json.loads(created.output)
    return client


def _approved_code(base: str, client: dict[str, str]) -> tuple[str, str, requests.Session]:
    browser = requests.Session()
    assert (
        browser.post(
            f"{base}/api/auth/password/signup",
            json={"handle": "alice", "password": PASSWORD},
            timeout=30,
        ).status_code
        == 200
    )
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    authorize = browser.get(
        f"{base}/api/oauth/authorize",
        allow_redirects=False,
        timeout=30,
        params={
            "response_type": "code",
            "client_id": client["client_id"],
            "redirect_uri": "https://app.example/cb",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "scope": "openid offline_access",
        },
    )
    request_id = parse_qs(urlsplit(authorize.headers["Location"]).query)["request_id"][0]
    approved = browser.post(
        f"{base}/api/oauth/authorize/consent",
        json={"request_id": request_id, "decision": "approve"},
        timeout=30,
    )
    assert approved.status_code == 200
    code = parse_qs(urlsplit(approved.json()["location"]).query)["code"][0]
    return code, verifier, browser


def test_killed_workers_lose_no_grant_already_answered(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hearth.db'}"
    upgrade(url)
    client = _make_client(url)
    server = Gunicorn(production_env(url, tmp_path))
    try:
        code, verifier, browser = _approved_code(server.url, client)
        before = set(server.workers())
        for pid in before:
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (
            set(server.workers()) & before or len(server.workers()) < 2
        ):
            time.sleep(0.2)
        assert not set(server.workers()) & before

        tokens = requests.post(
            f"{server.url}/api/oauth/token",
            timeout=30,
            auth=(client["client_id"], client["client_secret"]),
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": "https://app.example/cb",
                "code_verifier": verifier,
            },
        )
        assert tokens.status_code == 200, tokens.text
        apps = browser.get(f"{server.url}/api/accounts/self/authorized-apps", timeout=30).json()
        assert [item["client_id"] for item in apps["items"]] == [client["client_id"]]
    finally:
        server.stop()


def test_token_endpoint_outage_answers_503_and_its_autocommit_pool_recovers(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    """On PostgreSQL the token endpoint has a pool of its own (autocommit): it must answer a
    lost database like every other endpoint, and reconnect on its own afterwards."""
    upgrade(private_postgres.url)
    client = _make_client(private_postgres.url)
    server = Gunicorn(production_env(private_postgres.url, tmp_path))

    def token(data: dict[str, str]) -> requests.Response:
        return requests.post(
            f"{server.url}/api/oauth/token",
            timeout=30,
            auth=(client["client_id"], client["client_secret"]),
            data=data,
        )

    try:
        code, verifier, _browser = _approved_code(server.url, client)
        redeemed = token(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": "https://app.example/cb",
                "code_verifier": verifier,
            }
        )
        assert redeemed.status_code == 200, redeemed.text
        refresh_token = redeemed.json()["refresh_token"]

        private_postgres.stop()
        failed = token({"grant_type": "refresh_token", "refresh_token": refresh_token})
        assert failed.status_code == 503
        assert failed.json() == {
            "error": "temporarily_unavailable",
            "error_description": "The service is temporarily unavailable; try again shortly.",
        }
        assert failed.headers["Retry-After"] == "5"

        private_postgres.start()
        # The refresh that failed wrote nothing: the same token still works, on either worker.
        for _ in range(4):
            refreshed = token({"grant_type": "refresh_token", "refresh_token": refresh_token})
            assert refreshed.status_code == 200, refreshed.text
            refresh_token = refreshed.json()["refresh_token"]
    finally:
        server.stop()


def test_sigterm_drains_an_in_flight_request(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hearth.db'}"
    upgrade(url)
    server = Gunicorn(production_env(url, tmp_path))
    try:
        body = json.dumps({"handle": "alice", "password": PASSWORD}).encode()
        half = len(body) // 2
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as conn:
            conn.sendall(
                b"POST /api/auth/password/signup HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nConnection: close\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body[:half]
            )
            time.sleep(0.5)  # a worker is now inside this request, reading its body
            os.killpg(server.process.pid, signal.SIGTERM)
            time.sleep(0.5)
            conn.sendall(body[half:])
            response = b""
            while chunk := conn.recv(65536):
                response += chunk
        assert response.startswith(b"HTTP/1.1 200"), response[:200]
        assert server.process.wait(timeout=30) == 0
        assert (
            make_app(url)
            .test_client()
            .post("/api/auth/password/signin", json={"handle": "alice", "password": PASSWORD})
            .status_code
            == 200
        )
    finally:
        server.stop()
