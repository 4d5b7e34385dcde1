"""OAuth helpers: clients made with the real CLI, PKCE pairs, and the whole code flow driven through
the API with Flask's test client (a signed-in browser on one side, the client app on the other)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update
from werkzeug.test import TestResponse

from app.db import utcnow
from app.extensions import Database, db
from tests.conftest import AuthActions, make_app

ISSUER = "http://localhost:8000"
RESOURCE = f"{ISSUER}/api"
RESOURCE_METADATA_URL = f"{ISSUER}/.well-known/oauth-protected-resource/api"
INVALID_TOKEN_CHALLENGE = (
    f'Bearer error="invalid_token", resource_metadata="{RESOURCE_METADATA_URL}"'
)
CONSENT_URL = "http://localhost:3000/oauth/authorize/consent"
LOGIN_URL = "http://localhost:3000/login"
REDIRECT_URI = "https://app.example/callback"
STATE = "st4te-xyz"
TOKEN = "/api/oauth/token"
REVOKE = "/api/oauth/revoke"
INTROSPECT = "/api/oauth/introspect"
AUTHORIZE = "/api/oauth/authorize"
CONSENT = "/api/oauth/authorize/consent"
SELF = "/api/accounts/self"
DEFAULT_SCOPES = "openid profile email offline_access READ_PUBLISHED_THREADS CREATE_POST"
FORM = "application/x-www-form-urlencoded"


def pkce_pair() -> tuple[str, str]:
    """A fresh RFC 7636 verifier and its S256 challenge."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def basic(client_id: str, secret: str) -> dict[str, str]:
    credentials = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {credentials}"}


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


def params(location: str) -> dict[str, str]:
    """The query of a redirect, each parameter exactly once."""
    parsed = parse_qs(urlsplit(location).query, keep_blank_values=True)
    assert all(len(values) == 1 for values in parsed.values()), location
    return {name: values[0] for name, values in parsed.items()}


def without_query(location: str) -> str:
    parts = urlsplit(location)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def assert_error(
    response: TestResponse, status: int, error: str, description: str | None = None
) -> None:
    """An RFC 6749 §5.2 error body: exactly `error` and a human `error_description`."""
    body = response.get_json()
    assert response.status_code == status, body
    assert set(body) == {"error", "error_description"}, body
    assert body["error"] == error, body
    assert isinstance(body["error_description"], str) and body["error_description"]
    if description is not None:
        assert body["error_description"] == description


def assert_token_error(
    response: TestResponse, status: int, error: str, description: str | None = None
) -> None:
    """A token-endpoint error: §5.2 body and never cached."""
    assert_error(response, status, error, description)
    assert response.headers["Cache-Control"] == "no-store"


def assert_redirect_error(
    response: TestResponse, redirect_uri: str, error: str, state: str | None = STATE
) -> dict[str, str]:
    """A 302 back to the client with `error`, `error_description`, `state` and RFC 9207 `iss`."""
    assert response.status_code == 302, response.get_json()
    location = response.headers["Location"]
    assert without_query(location) == without_query(redirect_uri)
    query = params(location)
    expected = {"error", "error_description", "iss"} | ({"state"} if state else set())
    assert set(query) == expected, query
    assert query["error"] == error
    assert query["iss"] == ISSUER
    if state:
        assert query["state"] == state
    return query


def assert_dead(app: Flask, access_token: str) -> None:
    """Hearth's API refuses the access token at once."""
    response = app.test_client().get(SELF, headers=bearer(access_token))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == INVALID_TOKEN_CHALLENGE
    assert response.get_json() == {
        "error": "unauthenticated",
        "error_description": "The access token is invalid, expired or revoked.",
    }


def assert_alive(app: Flask, access_token: str) -> dict[str, Any]:
    response = app.test_client().get(SELF, headers=bearer(access_token))
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


@dataclass(frozen=True)
class Registered:
    """What `hearth clients create --json` printed."""

    client_id: str
    client_secret: str | None
    token_endpoint_auth_method: str
    redirect_uris: list[str]
    scopes: list[str]
    grants: list[str]
    scope_policy: str

    @property
    def redirect_uri(self) -> str:
        return self.redirect_uris[0]


@dataclass(frozen=True)
class Authorized:
    """The client's view after an approved consent: a code and the verifier that redeems it."""

    code: str
    verifier: str
    redirect_uri: str
    state: str | None


class OAuthActions:
    """Drive the provider the way a browser and a client app would, through the real endpoints."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.auth = AuthActions(app)

    def make_client(
        self,
        *,
        name: str = "Test App",
        redirect_uris: Sequence[str] = (REDIRECT_URI,),
        scopes: str = DEFAULT_SCOPES,
        public: bool = False,
        auth_method: str | None = None,
        grants: Sequence[str] = (),
        scope_policy: str = "explicit",
        owner: str | None = None,
        skip_consent: bool = False,
    ) -> Registered:
        """Register a client with `hearth clients create … --json`."""
        args = ["clients", "create", "--name", name, "--scopes", scopes, "--json"]
        for uri in redirect_uris:
            args += ["--redirect-uri", uri]
        args.append("--public" if public else "--confidential")
        if auth_method:
            args += ["--auth-method", auth_method]
        for grant in grants:
            args += ["--grant", grant]
        args += ["--scope-policy", scope_policy]
        if owner:
            args += ["--owner", owner]
        if skip_consent:
            args.append("--skip-consent")
        result = self.app.test_cli_runner().invoke(args=args)
        assert result.exit_code == 0, result.output
        return Registered(**json.loads(result.output))

    def cli(self, *args: str) -> str:
        result = self.app.test_cli_runner().invoke(args=list(args))
        assert result.exit_code == 0, result.output
        output: str = result.output
        return output

    def authorize_query(
        self,
        client: Registered,
        *,
        scope: str | None = DEFAULT_SCOPES,
        challenge: str | None = None,
        redirect_uri: str | None = None,
        state: str | None = STATE,
        **extra: str,
    ) -> dict[str, str]:
        query = {
            "response_type": "code",
            "client_id": client.client_id,
            "redirect_uri": redirect_uri or client.redirect_uri,
            "code_challenge": challenge or pkce_pair()[1],
            "code_challenge_method": "S256",
        }
        if scope is not None:
            query["scope"] = scope
        if state is not None:
            query["state"] = state
        query.update(extra)
        return query

    def authorize(
        self, browser: FlaskClient, query: dict[str, str] | Sequence[tuple[str, str]]
    ) -> TestResponse:
        return browser.get(AUTHORIZE, query_string=urlencode(query))

    def start(self, browser: FlaskClient, client: Registered, **options: Any) -> tuple[str, str]:
        """Authorize up to the consent page; return (request_id, verifier)."""
        verifier, challenge = pkce_pair()
        response = self.authorize(
            browser, self.authorize_query(client, challenge=challenge, **options)
        )
        assert response.status_code == 302, response.get_json()
        location = response.headers["Location"]
        assert without_query(location) == CONSENT_URL, location
        return params(location)["request_id"], verifier

    def approve(
        self,
        browser: FlaskClient,
        client: Registered,
        *,
        scopes: list[str] | None = None,
        **options: Any,
    ) -> Authorized:
        """Authorize, approve on the consent API, and read the code off the redirect."""
        request_id, verifier = self.start(browser, client, **options)
        body: dict[str, Any] = {"request_id": request_id, "decision": "approve"}
        if scopes is not None:
            body["scopes"] = scopes
        response = browser.post(CONSENT, json=body)
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["status"] == "approved"
        location = response.get_json()["location"]
        query = params(location)
        assert query["iss"] == self.app.config["PUBLIC_API_ADDRESS"]
        redirect_uri = options.get("redirect_uri") or client.redirect_uri
        assert without_query(location) == without_query(redirect_uri)
        return Authorized(query["code"], verifier, redirect_uri, query.get("state"))

    def token(
        self,
        client: Registered,
        data: dict[str, str] | Sequence[tuple[str, str]],
        *,
        auth: str | None = None,
        headers: dict[str, str] | None = None,
        path: str = TOKEN,
    ) -> TestResponse:
        """POST a form to a token-family endpoint, authenticating as the client is registered
        (or as `auth` says: client_secret_basic, client_secret_post, none, or "" for nothing)."""
        method = client.token_endpoint_auth_method if auth is None else auth
        pairs = list(data.items()) if isinstance(data, dict) else list(data)
        headers = dict(headers or {})
        if method == "client_secret_basic":
            assert client.client_secret is not None
            headers.update(basic(client.client_id, client.client_secret))
        elif method == "client_secret_post":
            pairs += [
                ("client_id", client.client_id),
                ("client_secret", client.client_secret or ""),
            ]
        elif method == "none":
            pairs.append(("client_id", client.client_id))
        return self.app.test_client().post(
            path, data=urlencode(pairs), content_type=FORM, headers=headers
        )

    def redeem(self, client: Registered, authorized: Authorized, **overrides: str) -> TestResponse:
        data = {
            "grant_type": "authorization_code",
            "code": authorized.code,
            "redirect_uri": authorized.redirect_uri,
            "code_verifier": authorized.verifier,
        }
        data.update(overrides)
        return self.token(client, {k: v for k, v in data.items() if v != ""})

    def tokens(self, browser: FlaskClient, client: Registered, **options: Any) -> dict[str, Any]:
        """The whole flow: authorize, approve, redeem; return the token response."""
        response = self.redeem(client, self.approve(browser, client, **options))
        assert response.status_code == 200, response.get_json()
        body: dict[str, Any] = response.get_json()
        return body

    def refresh(self, client: Registered, refresh_token: str, **extra: str) -> TestResponse:
        return self.token(
            client, {"grant_type": "refresh_token", "refresh_token": refresh_token, **extra}
        )


@pytest.fixture
def oauth(app: Flask) -> OAuthActions:
    return OAuthActions(app)


@pytest.fixture
def make_oauth(database_url: str) -> Iterator[Callable[..., OAuthActions]]:
    """OAuthActions over an app built with configuration overrides (disposed afterwards)."""
    apps: list[Flask] = []

    def build(**overrides: Any) -> OAuthActions:
        app = make_app(database_url, **overrides)
        apps.append(app)
        return OAuthActions(app)

    yield build
    for app in apps:
        Database.dispose(app)


def expire_all(app: Flask, model: Any) -> None:
    """Move every row of `model` (pending requests, codes, tokens, sessions) into the past."""
    with app.app_context():
        db.session.execute(update(model).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()


def assert_refresh_refused(response: TestResponse) -> None:
    """A refused refresh token: 400 invalid_grant with a description, never cached."""
    assert_token_error(response, 400, "invalid_grant")
