"""Helpers shared by the frontend and browser tests: building the frontend, driving the live API."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from flask import Flask
from flask.testing import FlaskClient

from frontend import create_frontend
from tests.conftest import PASSWORD, AuthActions

SESSION_COOKIE = "storyden-session"
WEB_SECRET_KEY = "frontend-test-secret-key-long-enough-0123456789"
# Allowed what a member holds plus VIEW_ACCOUNTS (members lack it); never MANAGE_POSTS.
PINBOARD_SCOPES = (
    "openid profile email offline_access READ_PUBLISHED_THREADS CREATE_POST VIEW_ACCOUNTS"
)
PINBOARD_REDIRECT = "https://pinboard.example/oauth/callback?from=hearth"


def make_web(api_url: str, web_port: int, **overrides: Any) -> Flask:
    """The frontend configured as an operator would put it in front of the API at `api_url`."""
    web = create_frontend(
        {
            "API_INTERNAL_ADDRESS": api_url,
            "PUBLIC_API_ADDRESS": api_url,
            "PUBLIC_WEB_ADDRESS": f"http://127.0.0.1:{web_port}",
            "SECRET_KEY": WEB_SECRET_KEY,
            **overrides,
        }
    )
    web.testing = True
    return web


def sign_in(client: FlaskClient, token: str) -> FlaskClient:
    """Give a test client a session cookie, as if the API had set it."""
    client.set_cookie(SESSION_COOKIE, token)
    return client


class LiveApi:
    """Talk to the live API over HTTP the way a second browser would."""

    def __init__(self, url: str) -> None:
        self.url = url

    def request(
        self,
        method: str,
        path: str,
        token: str | None = None,
        json: Any = None,
        params: dict[str, str] | None = None,
    ) -> requests.Response:
        cookies = {SESSION_COOKIE: token} if token else None
        return requests.request(
            method,
            self.url + path,
            json=json,
            params=params,
            cookies=cookies,
            timeout=10,
            allow_redirects=False,
        )

    def signup(self, handle: str, password: str = PASSWORD) -> str:
        """Create a member and return its session cookie value."""
        response = self.request(
            "POST", "/api/auth/password/signup", json={"handle": handle, "password": password}
        )
        assert response.status_code == 200, response.text
        return response.cookies[SESSION_COOKIE]

    def created(self, token: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.request("POST", path, token, body)
        assert response.status_code == 201, response.text
        data: dict[str, Any] = response.json()
        return data

    def whoami(self, token: str) -> requests.Response:
        return self.request("GET", "/api/accounts/self", token)

    def authorize(self, token: str, client: OAuthClient, scope: str, state: str = "xyz") -> str:
        """Start an authorization request as `token`'s account; return the consent page URL."""
        response = self.request(
            "GET", "/api/oauth/authorize", token, params=client.authorize_params(scope, state)
        )
        assert response.status_code == 302, response.text
        location: str = response.headers["Location"]
        return location

    def start_consent(self, token: str, client: OAuthClient, scope: str) -> str:
        """Start an authorization request; return the pending request's id."""
        (request_id,) = parse_qs(urlsplit(self.authorize(token, client, scope)).query)["request_id"]
        return request_id

    def authorized(self, token: str, client: OAuthClient, scope: str) -> dict[str, Any]:
        """Approve `client` for `scope` through the consent API; return the token response."""
        request_id = self.start_consent(token, client, scope)
        body = {"request_id": request_id, "decision": "approve"}
        answer = self.request("POST", "/api/oauth/authorize/consent", token, body)
        assert answer.status_code == 200, answer.text
        tokens = self.redeem(client, answer.json()["location"])
        assert tokens.status_code == 200, tokens.text
        data: dict[str, Any] = tokens.json()
        return data

    def refresh(self, client: OAuthClient, refresh_token: str) -> requests.Response:
        return self.token(client, grant_type="refresh_token", refresh_token=refresh_token)

    def token(self, client: OAuthClient, **form: str) -> requests.Response:
        """Call the token endpoint with the client's secret (client_secret_basic)."""
        return requests.post(
            f"{self.url}/api/oauth/token",
            data=form,
            auth=(client.client_id, client.client_secret or ""),
            timeout=10,
        )

    def redeem(self, client: OAuthClient, location: str) -> requests.Response:
        """Redeem the code in an authorization response `location` at the token endpoint."""
        (code,) = parse_qs(urlsplit(location).query)["code"]
        return self.token(
            client,
            grant_type="authorization_code",
            code=code,
            redirect_uri=client.redirect_uri,
            code_verifier=client.verifier,
        )


def pkce_pair() -> tuple[str, str]:
    """An RFC 7636 S256 (verifier, challenge) pair."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class OAuthClient:
    """A registered client as a third-party developer holds it."""

    client_id: str
    client_secret: str | None
    redirect_uri: str
    verifier: str
    challenge: str

    def authorize_params(self, scope: str, state: str) -> dict[str, str]:
        return {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "code_challenge": self.challenge,
            "code_challenge_method": "S256",
            "scope": scope,
            "state": state,
        }


def register_client(
    app: Flask, redirect_uri: str, scopes: str, *options: str, name: str = "Pinboard"
) -> OAuthClient:
    """Register a client through the `hearth clients create` command, as an operator would."""
    args = ["clients", "create", "--name", name, "--redirect-uri", redirect_uri]
    result = app.test_cli_runner().invoke(args=[*args, "--scopes", scopes, *options, "--json"])
    assert result.exit_code == 0, result.output
    created = json.loads(result.output.strip().splitlines()[-1])
    verifier, challenge = pkce_pair()
    return OAuthClient(
        created["client_id"], created.get("client_secret"), redirect_uri, verifier, challenge
    )


def jwt_claims(token: str) -> dict[str, Any]:
    """The claims of a JWT access token (its signature is the API's business, not these tests')."""
    payload = token.split(".")[1]
    claims: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return claims


@dataclass
class Forum:
    admin_token: str
    category: dict[str, Any]
    thread: dict[str, Any]


def seed_forum(auth: AuthActions, api: LiveApi) -> Forum:
    """An administrator, a category and one thread with a reply, created through the API."""
    cookie = auth.admin("keeper").get_cookie(SESSION_COOKIE)
    assert cookie is not None
    token = cookie.value
    category = api.created(
        token, "/api/categories", {"name": "General", "description": "Anything goes"}
    )
    thread = api.created(
        token,
        "/api/threads",
        {"title": "Welcome to Hearth", "body": "Introduce yourself.", "category": category["slug"]},
    )
    api.created(token, f"/api/threads/{thread['slug']}/replies", {"body": "Glad to be here."})
    return Forum(token, category, thread)
