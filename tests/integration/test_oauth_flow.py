"""The whole code flow driven by Authlib's own OAuth2Session against the real API over HTTP."""

from __future__ import annotations

import json
import secrets
import threading
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.conftest import PASSWORD, LiveServer

REDIRECT_URI = "http://127.0.0.1:8765/callback"
SCOPE = "openid profile email offline_access READ_PUBLISHED_THREADS CREATE_POST"


def create_client(live_api: LiveServer, *args: str) -> dict[str, Any]:
    result = live_api.app.test_cli_runner().invoke(
        args=[
            "clients",
            "create",
            "--name",
            "Test app",
            "--redirect-uri",
            REDIRECT_URI,
            "--scopes",
            SCOPE,
            "--json",
            *args,
        ]
    )
    assert result.exit_code == 0, result.output
    created: dict[str, Any] = json.loads(result.output)
    return created


def browser_signed_in(live_api: LiveServer, handle: str) -> requests.Session:
    browser = requests.Session()
    response = browser.post(
        f"{live_api.url}/api/auth/password/signup",
        json={"handle": handle, "password": PASSWORD, "email": f"{handle}@example.org"},
        timeout=10,
    )
    assert response.status_code == 200
    return browser


def approve(live_api: LiveServer, browser: requests.Session, authorization_url: str) -> str:
    """Follow /authorize to the consent URL, read the request and approve it; return `location`."""
    response = browser.get(authorization_url, allow_redirects=False, timeout=10)
    assert response.status_code == 302
    consent = urlsplit(response.headers["Location"])
    assert consent.path == "/oauth/authorize/consent"
    request_id = parse_qs(consent.query)["request_id"][0]
    details = browser.get(
        f"{live_api.url}/api/oauth/authorize/consent", params={"request_id": request_id}, timeout=10
    )
    assert details.status_code == 200
    assert details.json()["granted_scopes"] == SCOPE.split()
    decision = browser.post(
        f"{live_api.url}/api/oauth/authorize/consent",
        json={"request_id": request_id, "decision": "approve"},
        timeout=10,
    )
    assert decision.status_code == 200
    location: str = decision.json()["location"]
    return location


def check_id_token(
    live_api: LiveServer, token: dict[str, Any], client_id: str, nonce: str
) -> dict[str, Any]:
    keys = KeySet.import_key_set(requests.get(f"{live_api.url}/api/oauth/jwks", timeout=10).json())
    decoded = jwt.decode(token["id_token"], keys)
    claims = dict(decoded.claims)
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": live_api.url},
        aud={"essential": True, "value": client_id},
        nonce={"essential": True, "value": nonce},
        sub={"essential": True},
        exp={"essential": True},
        auth_time={"essential": True},
        at_hash={"essential": True},
    ).validate(claims)
    return claims


@pytest.mark.parametrize("kind", ["confidential", "public"])
def test_full_flow_with_authlib_client(live_api: LiveServer, kind: str) -> None:
    created = create_client(live_api, "--public") if kind == "public" else create_client(live_api)
    browser = browser_signed_in(live_api, "alice")
    me = browser.get(f"{live_api.url}/api/accounts/self", timeout=10).json()

    oauth = OAuth2Session(
        client_id=created["client_id"],
        client_secret=created["client_secret"],
        scope=SCOPE,
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
        token_endpoint_auth_method=created["token_endpoint_auth_method"],
    )
    verifier = secrets.token_urlsafe(48)
    nonce = secrets.token_urlsafe(16)
    url, state = oauth.create_authorization_url(
        f"{live_api.url}/api/oauth/authorize", code_verifier=verifier, nonce=nonce
    )
    location = approve(live_api, browser, url)
    params = parse_qs(urlsplit(location).query)
    assert params["state"] == [state]
    assert params["iss"] == [live_api.url]  # RFC 9207

    token = oauth.fetch_token(
        f"{live_api.url}/api/oauth/token", authorization_response=location, code_verifier=verifier
    )
    assert token["token_type"] == "Bearer"
    assert token["scope"] == SCOPE
    assert token["expires_in"] == 900
    claims = check_id_token(live_api, token, created["client_id"], nonce)
    assert claims["sub"] == me["id"]
    assert claims["preferred_username"] == "alice"

    access = jwt.decode(
        token["access_token"],
        KeySet.import_key_set(requests.get(f"{live_api.url}/api/oauth/jwks", timeout=10).json()),
    )
    assert access.header["typ"] == "at+jwt"
    assert access.claims["aud"] == f"{live_api.url}/api"
    assert access.claims["client_id"] == created["client_id"]
    assert access.claims["sub"] == me["id"]

    api = oauth.get(f"{live_api.url}/api/accounts/self", timeout=10)
    assert api.status_code == 200
    assert api.json()["permissions"] == ["READ_PUBLISHED_THREADS", "CREATE_POST"]
    info = oauth.get(f"{live_api.url}/api/oauth/userinfo", timeout=10).json()
    assert info == {
        "sub": me["id"],
        "preferred_username": "alice",
        "name": "alice",
        "email": "alice@example.org",
        "email_verified": False,
    }

    old_refresh = token["refresh_token"]
    refreshed = oauth.refresh_token(f"{live_api.url}/api/oauth/token")
    assert refreshed["refresh_token"] != old_refresh
    assert oauth.get(f"{live_api.url}/api/accounts/self", timeout=10).status_code == 200

    revoked = oauth.revoke_token(
        f"{live_api.url}/api/oauth/revoke",
        token=refreshed["refresh_token"],
        token_type_hint="refresh_token",
    )
    assert revoked.status_code == 200
    after = oauth.get(f"{live_api.url}/api/accounts/self", timeout=10)
    assert after.status_code == 401
    assert after.headers["WWW-Authenticate"] == (
        f'Bearer error="invalid_token", resource_metadata="{live_api.url}'
        '/.well-known/oauth-protected-resource/api"'
    )


def test_parallel_redemptions_of_one_code_exactly_one_wins(live_api: LiveServer) -> None:
    created = create_client(live_api)
    browser = browser_signed_in(live_api, "alice")
    oauth = OAuth2Session(
        client_id=created["client_id"],
        client_secret=created["client_secret"],
        scope=SCOPE,
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
    )
    verifier = secrets.token_urlsafe(48)
    url, _state = oauth.create_authorization_url(
        f"{live_api.url}/api/oauth/authorize", code_verifier=verifier
    )
    code = parse_qs(urlsplit(approve(live_api, browser, url)).query)["code"][0]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
    }
    start = threading.Barrier(8)
    results: list[requests.Response] = []
    lock = threading.Lock()

    def redeem() -> None:
        start.wait(timeout=10)
        response = requests.post(
            f"{live_api.url}/api/oauth/token",
            data=form,
            auth=(created["client_id"], created["client_secret"]),
            timeout=30,
        )
        with lock:
            results.append(response)

    threads = [threading.Thread(target=redeem) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    statuses = sorted(r.status_code for r in results)
    assert statuses == [200] + [400] * 7
    assert {r.json()["error"] for r in results if r.status_code == 400} == {"invalid_grant"}
    winner = next(r for r in results if r.status_code == 200).json()
    # The losing redemptions were valid replays: the grant and the winner's tokens are revoked.
    api = requests.get(
        f"{live_api.url}/api/accounts/self",
        headers={"Authorization": f"Bearer {winner['access_token']}"},
        timeout=10,
    )
    assert api.status_code == 401
