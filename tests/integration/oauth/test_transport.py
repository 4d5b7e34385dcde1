"""OAuth over plain HTTP is refused with a clear 400 except on loopback, and a trusted TLS
proxy's X-Forwarded-Proto is believed (OAuth 2.1 §1.5; RFC 8252 §7.3 for loopback)."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

import pytest

from tests.integration.oauth.conftest import (
    FORM,
    INTROSPECT,
    REVOKE,
    TOKEN,
    OAuthActions,
    basic,
)

PLAIN_HTTP = {
    "error": "invalid_request",
    "error_description": "OAuth requires HTTPS: this request reached the server over plain HTTP. "
    "Behind a TLS proxy, set TRUSTED_PROXY_COUNT so its X-Forwarded-Proto is believed.",
}
PROXIED = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}


def refresh_at(
    oauth: OAuthActions, base_url: str, refresh_token: str, headers: dict[str, str]
) -> tuple[int, dict[str, object]]:
    client = oauth.app.config["_test_client"]
    response = oauth.app.test_client().post(
        TOKEN,
        base_url=base_url,
        data=urlencode({"grant_type": "refresh_token", "refresh_token": refresh_token}),
        content_type=FORM,
        headers={**basic(client.client_id, client.client_secret), **headers},
    )
    return response.status_code, response.get_json()


@pytest.fixture
def proxied(make_oauth: Callable[..., OAuthActions]) -> tuple[OAuthActions, str]:
    """An API behind one trusted proxy, and a live refresh token from a real flow."""
    oauth = make_oauth(TRUSTED_PROXY_COUNT=1)
    client = oauth.make_client()
    oauth.app.config["_test_client"] = client
    tokens = oauth.tokens(oauth.auth.signup("alice"), client)
    return oauth, tokens["refresh_token"]


@pytest.mark.parametrize("path", [TOKEN, REVOKE, INTROSPECT])
def test_protocol_endpoints_over_plain_http_to_a_public_host_are_refused(
    oauth: OAuthActions, path: str
) -> None:
    client = oauth.make_client()
    response = oauth.app.test_client().post(
        path,
        base_url="http://forum.example",
        data=urlencode({"grant_type": "client_credentials", "token": "x"}),
        content_type=FORM,
        headers=basic(client.client_id, client.client_secret or ""),
    )
    assert response.status_code == 400
    assert response.get_json() == PLAIN_HTTP
    assert response.headers["Content-Type"] == "application/json"


def test_refresh_behind_a_trusted_tls_proxy_works(proxied: tuple[OAuthActions, str]) -> None:
    oauth, refresh_token = proxied
    status, body = refresh_at(oauth, "http://forum.example", refresh_token, PROXIED)
    assert status == 200, body
    assert body["token_type"] == "Bearer"
    assert body["refresh_token"] != refresh_token


def test_refused_plain_http_refresh_leaves_the_token_usable(
    proxied: tuple[OAuthActions, str],
) -> None:
    oauth, refresh_token = proxied
    without_proto = {"X-Forwarded-For": "203.0.113.9"}
    assert refresh_at(oauth, "http://forum.example", refresh_token, without_proto) == (
        400,
        PLAIN_HTTP,
    )
    status, body = refresh_at(oauth, "https://forum.example", refresh_token, {})
    assert status == 200, body


def test_forwarded_proto_is_ignored_without_a_trusted_proxy(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    oauth.app.config["_test_client"] = client
    tokens = oauth.tokens(oauth.auth.signup("alice"), client)
    spoofed = refresh_at(oauth, "http://forum.example", tokens["refresh_token"], PROXIED)
    assert spoofed == (400, PLAIN_HTTP)
    status, _ = refresh_at(oauth, "http://127.0.0.1:8000", tokens["refresh_token"], {})
    assert status == 200


def test_proto_comes_from_the_nearest_proxy_when_the_frontend_counts_as_one(
    make_oauth: Callable[..., OAuthActions],
) -> None:
    """TRUSTED_PROXY_COUNT=2 (a TLS proxy, then the frontend): apps reach the token endpoint
    through the TLS proxy alone, which sets the only X-Forwarded-Proto."""
    oauth = make_oauth(TRUSTED_PROXY_COUNT=2)
    client = oauth.make_client()
    oauth.app.config["_test_client"] = client
    tokens = oauth.tokens(oauth.auth.signup("alice"), client)
    status, body = refresh_at(oauth, "http://forum.example", tokens["refresh_token"], PROXIED)
    assert status == 200, body
