"""Rate limits, request ids and structured logs that never carry a secret."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import secrets
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask

from app.observability import JsonFormatter
from tests.conftest import PASSWORD, AuthActions, make_app


@pytest.fixture
def limited(database_url: str) -> Flask:
    return make_app(database_url, RATELIMIT_ENABLED=True)


def test_signin_is_limited_per_handle_then_per_address(limited: Flask) -> None:
    client = limited.test_client()
    for _ in range(10):
        response = client.post(
            "/api/auth/password/signin", json={"handle": "alice", "password": "wrong-password"}
        )
        assert response.status_code == 401
    limited_response = client.post(
        "/api/auth/password/signin", json={"handle": "Alice", "password": "wrong-password"}
    )
    assert limited_response.status_code == 429
    assert limited_response.get_json()["error"] == "too_many_requests"
    assert set(limited_response.get_json()) == {"error", "error_description"}
    assert int(limited_response.headers["Retry-After"]) > 0
    # Another handle from the same address is still allowed until the per-address limit.
    other = client.post(
        "/api/auth/password/signin", json={"handle": "bob-the-builder", "password": "x"}
    )
    assert other.status_code == 401


def test_token_endpoint_is_limited_per_client(limited: Flask) -> None:
    client = limited.test_client()
    form = {"grant_type": "client_credentials", "client_id": "hc_unknown", "client_secret": "x"}
    statuses = [client.post("/api/oauth/token", data=form).status_code for _ in range(1201)]
    assert statuses[:1200] == [400] * 1200  # invalid_client by form: RFC 6749 §5.2 allows 400
    assert statuses[1200] == 429
    other = client.post("/api/oauth/token", data={**form, "client_id": "hc_other"})
    assert other.status_code == 400
    assert other.get_json()["error"] == "invalid_client"


def test_registration_is_limited_per_address(database_url: str) -> None:
    app = make_app(database_url, RATELIMIT_ENABLED=True, OAUTH_DYNAMIC_REGISTRATION_ENABLED=True)
    client = app.test_client()
    body = {"redirect_uris": ["https://app.example/cb"], "client_name": "App"}
    statuses = [client.post("/api/oauth/register", json=body).status_code for _ in range(21)]
    assert statuses == [201] * 20 + [429]


def test_request_id_is_echoed_or_generated(client) -> None:  # type: ignore[no-untyped-def]
    echoed = client.get("/api/threads", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["X-Request-ID"] == "abc-123"
    generated = client.get("/api/threads", headers={"X-Request-ID": "bad id with spaces"})
    assert len(generated.headers["X-Request-ID"]) == 32
    assert generated.headers["X-Content-Type-Options"] == "nosniff"


def test_whole_flow_logs_no_secret(
    app: Flask, auth: AuthActions, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hearth")
    created = json.loads(
        app.test_cli_runner()
        .invoke(
            args=[
                "clients",
                "create",
                "--name",
                "Logged",
                "--redirect-uri",
                "https://app.example/cb",
                "--scopes",
                "openid offline_access CREATE_POST",
                "--json",
            ]
        )
        .output
    )
    browser = app.test_client()
    signup = browser.post(
        "/api/auth/password/signup", json={"handle": "alice", "password": PASSWORD}
    )
    session_id = signup.headers["Set-Cookie"].split(";")[0].split("=", 1)[1]
    browser.post(
        "/api/auth/password/signin", json={"handle": "alice", "password": "wrong-password-1"}
    )
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    authorize = browser.get(
        "/api/oauth/authorize",
        query_string={
            "response_type": "code",
            "client_id": created["client_id"],
            "redirect_uri": "https://app.example/cb",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "scope": "openid offline_access CREATE_POST",
            "state": "state-value-123",
            "nonce": "nonce-value-456",
        },
    )
    request_id = parse_qs(urlsplit(authorize.headers["Location"]).query)["request_id"][0]
    approved = browser.post(
        "/api/oauth/authorize/consent", json={"request_id": request_id, "decision": "approve"}
    )
    code = parse_qs(urlsplit(approved.get_json()["location"]).query)["code"][0]
    basic = base64.b64encode(f"{created['client_id']}:{created['client_secret']}".encode()).decode()
    tokens = (
        app.test_client()
        .post(
            "/api/oauth/token",
            headers={"Authorization": f"Basic {basic}"},
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": "https://app.example/cb",
                "code_verifier": verifier,
            },
        )
        .get_json()
    )
    app.test_client().post(
        "/api/oauth/token",
        headers={"Authorization": f"Basic {basic}"},
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": "https://app.example/cb",
            "code_verifier": verifier,
        },
    )
    app.test_client().post(
        "/api/oauth/revoke",
        headers={"Authorization": f"Basic {basic}"},
        data={"token": tokens["access_token"]},
    )

    formatter = JsonFormatter()
    lines = [formatter.format(record) for record in caplog.records]
    text = "\n".join(lines)
    secrets_seen = [
        PASSWORD,
        "wrong-password-1",
        session_id,
        request_id,
        code,
        verifier,
        tokens["access_token"],
        tokens["refresh_token"],
        tokens["id_token"],
        created["client_secret"],
        "state-value-123",
        "nonce-value-456",
    ]
    for secret in secrets_seen:
        assert secret not in text
    events = [json.loads(line).get("event") for line in lines]
    assert {"signin_failure", "consent_decision", "code_replay", "revocation"} <= set(events)
    requests_logged = [json.loads(line) for line in lines if json.loads(line)["msg"] == "request"]
    assert {"method", "path", "status", "duration_ms", "request_id"} <= set(requests_logged[0])
    assert all("?" not in line["path"] for line in requests_logged)


CORS_YES = [
    ("POST", "/api/oauth/token"),
    ("POST", "/api/oauth/revoke"),
    ("POST", "/api/oauth/introspect"),
    ("POST", "/api/oauth/register"),
    ("GET", "/api/oauth/jwks"),
    ("GET", "/api/oauth/userinfo"),
    ("GET", "/.well-known/oauth-authorization-server"),
    ("GET", "/.well-known/openid-configuration"),
    ("GET", "/.well-known/oauth-protected-resource/api"),
]
CORS_NO = [
    ("GET", "/api/oauth/authorize"),
    ("GET", "/api/oauth/authorize/consent"),
    ("POST", "/api/oauth/authorize/consent"),
    ("GET", "/api/accounts/self"),
    ("GET", "/api/accounts/self/authorized-apps"),
    ("POST", "/api/auth/password/signin"),
    ("GET", "/api/threads"),
    ("POST", "/api/threads"),
    ("GET", "/api/admin/oauth/clients"),
]


@pytest.mark.parametrize(("method", "path"), CORS_YES)
def test_protocol_endpoints_allow_any_origin(client, method: str, path: str) -> None:  # type: ignore[no-untyped-def]
    preflight = client.options(
        path,
        headers={
            "Origin": "https://spa.example",
            "Access-Control-Request-Method": method,
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert method in preflight.headers["Access-Control-Allow-Methods"]
    assert preflight.headers["Access-Control-Allow-Headers"] == "Authorization, Content-Type"
    assert "Access-Control-Allow-Credentials" not in preflight.headers
    actual = client.open(path, method=method, headers={"Origin": "https://spa.example"})
    assert actual.headers["Access-Control-Allow-Origin"] == "*"
    assert actual.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(("method", "path"), CORS_NO)
def test_cookie_endpoints_never_allow_other_origins(client, method: str, path: str) -> None:  # type: ignore[no-untyped-def]
    preflight = client.options(
        path,
        headers={
            "Origin": "https://evil.example",
            "Access-Control-Request-Method": method,
        },
    )
    assert "Access-Control-Allow-Origin" not in preflight.headers
    actual = client.open(path, method=method, headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in actual.headers
    assert actual.headers["X-Content-Type-Options"] == "nosniff"


def test_health_endpoints(client) -> None:  # type: ignore[no-untyped-def]
    alive = client.get("/health/alive")
    assert (alive.status_code, alive.get_json()) == (200, {"status": "ok"})
    ready = client.get("/health/ready")
    assert (ready.status_code, ready.get_json()) == (200, {"status": "ok"})


def test_ready_is_503_when_the_database_is_unreachable(tmp_path) -> None:  # type: ignore[no-untyped-def]
    app = make_app(f"sqlite:///{tmp_path}/missing/dir/hearth.db")
    ready = app.test_client().get("/health/ready")
    assert ready.status_code == 503
    assert ready.get_json() == {
        "status": "unavailable",
        "error_description": "database unreachable",
    }
    assert app.test_client().get("/health/alive").status_code == 200


def test_trusted_proxy_supplies_the_client_address_for_limits(database_url: str) -> None:
    body = {"handle": "alice", "password": "wrong-password"}

    def statuses(app: Flask) -> list[int]:
        client = app.test_client()
        return [
            client.post(
                "/api/auth/password/signin",
                json=body,
                headers={"X-Forwarded-For": f"198.51.100.{n % 2}"},
            ).status_code
            for n in range(12)
        ]

    behind_proxy = make_app(database_url, RATELIMIT_ENABLED=True, TRUSTED_PROXY_COUNT=1)
    # Two browsers behind the frontend: each gets its own per-(address, handle) allowance.
    assert statuses(behind_proxy) == [401] * 12
    direct = make_app(database_url, RATELIMIT_ENABLED=True)
    # Without a trusted proxy the header is ignored: one address, one allowance.
    assert statuses(direct) == [401] * 10 + [429] * 2
