"""Live servers for upstream sign-in: Hearth itself, oidc-provider-mock issuers, a fake GitHub.

Everything listens on 127.0.0.1; nothing reaches the network. A `Browser` keeps cookies per
origin and never follows redirects by itself, so each test walks the redirect dance by hand.
"""

from __future__ import annotations

import json
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask, g, request
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy import update
from werkzeug.serving import make_server

import config
from app.db import utcnow
from app.extensions import Database, db
from app.models import LoginState
from tests.conftest import make_app
from tests.federation.fake_github import CLIENT_ID as GITHUB_CLIENT_ID
from tests.federation.fake_github import CLIENT_SECRET as GITHUB_CLIENT_SECRET
from tests.federation.fake_github import FakeGitHub

with warnings.catch_warnings():
    # oidc-provider-mock still imports Authlib's deprecated modules: not ours to fix. (Importing
    # authlib.deprecate first: it installs an "always" filter for its warnings.)
    import authlib.deprecate  # noqa: F401

    warnings.simplefilter("ignore", DeprecationWarning)
    import oidc_provider_mock

CLIENT_ID = "hearth-client"
# The frontend's address: never served here, as the tests stop at redirects to it.
WEB = "http://web.hearth.test"
CLIENT_SECRET = "hearth-client-secret"


class Server:
    """A threaded WSGI server on 127.0.0.1, bound (to a port the kernel picks) before its app is
    built: apps that must know their own URL get it, and no other process can take the port in
    between, as it can after `tests.conftest.free_port`."""

    def __init__(self) -> None:
        self._server = make_server("127.0.0.1", 0, Flask("unready"), threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self, app: Any) -> Server:
        self._server.app = app
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Silence the mock's own Authlib deprecation warnings in these tests only."""
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.filterwarnings("ignore:get_jwt_config:DeprecationWarning"))


class Browser:
    """One user agent: cookies per origin (standing for separate sites), redirects by hand."""

    def __init__(self) -> None:
        self._sites: dict[str, requests.Session] = {}

    def site(self, url: str) -> requests.Session:
        parts = urlsplit(url)
        return self._sites.setdefault(f"{parts.scheme}://{parts.netloc}", requests.Session())

    def get(self, url: str, **kwargs: Any) -> requests.Response:
        return self.site(url).get(url, allow_redirects=False, timeout=10, **kwargs)

    def post(self, url: str, **kwargs: Any) -> requests.Response:
        return self.site(url).post(url, allow_redirects=False, timeout=10, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> requests.Response:
        return self.site(url).delete(url, allow_redirects=False, timeout=10, **kwargs)

    def cookie(self, url: str, name: str) -> str | None:
        value: str | None = self.site(url).cookies.get(name)
        return value


def query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


@dataclass
class Hearth:
    """A Hearth API served over HTTP; its frontend origin is never served."""

    app: Flask
    url: str
    web: str

    def start(self, browser: Browser, provider: str, **params: str) -> dict[str, Any]:
        response = browser.get(f"{self.url}/api/auth/oauth/{provider}/url", params=params)
        assert response.status_code == 200, response.text
        started: dict[str, Any] = response.json()
        return started

    def me(self, browser: Browser) -> requests.Response:
        return browser.get(f"{self.url}/api/accounts/self")

    def expire_login_states(self) -> None:
        with self.app.app_context():
            db.session.execute(
                update(LoginState).values(expires_at=utcnow() - timedelta(seconds=1))
            )
            db.session.commit()


HearthFactory = Callable[..., Hearth]


@pytest.fixture
def hearth_factory(database_url: str) -> Iterator[HearthFactory]:
    """Build the Hearth under test with upstream providers configured through config.py."""
    running: list[tuple[Flask, Server]] = []

    def build(environ: dict[str, str], server: Server | None = None, **overrides: Any) -> Hearth:
        server = server or Server()
        api, web = server.url, WEB
        app = make_app(
            database_url,
            PUBLIC_API_ADDRESS=api,
            PUBLIC_WEB_ADDRESS=web,
            OAUTH_AUTHORISATION_CODE_CONSENT_URL=f"{web}/oauth/authorize/consent",
            OAUTH_AUTHORISATION_LOGIN_URL=f"{web}/login",
            **config.federation_settings(environ, web),
            **overrides,
        )
        running.append((app, server.start(app)))
        return Hearth(app, api, web)

    yield build
    for app, server in running:
        server.stop()
        Database.dispose(app)


Tamper = Callable[[str, RSAKey], str]


class MockIssuer:
    """oidc-provider-mock on 127.0.0.1, optionally rewriting the ID tokens it issues.

    `tamper(id_token, key)` gets each ID token and the mock's own signing key, so a test can
    issue a token that is correctly signed but wrong in exactly one way.
    """

    def __init__(self, setup: Callable[[Flask], None] | None = None) -> None:
        self.app = oidc_provider_mock.app()
        self.tamper: Tamper | None = None
        self.token_requests: list[dict[str, str]] = []
        self.app.before_request(self._record)
        self.app.after_request(self._rewrite)
        if setup is not None:
            setup(self.app)
        self.server = Server().start(self.app)
        self.url = self.server.url

    def _record(self) -> None:
        if request.path == "/oauth2/token":
            self.token_requests.append(request.form.to_dict())

    def _rewrite(self, response: Any) -> Any:
        if request.path != "/oauth2/token" or self.tamper is None or response.status_code != 200:
            return response
        body = json.loads(response.get_data())
        key = RSAKey.import_key(g.oidc_provider_mock_storage.jwk.as_dict(is_private=True))
        body["id_token"] = self.tamper(body["id_token"], key)
        response.set_data(json.dumps(body))
        return response

    def user(self, sub: str, **claims: Any) -> None:
        response = requests.put(f"{self.url}/users/{sub}", json=claims, timeout=10)
        assert response.status_code == 204, response.text

    def approve(self, browser: Browser, authorization_url: str, sub: str) -> str:
        """Sign in as `sub` on the mock's page; return where it sends the browser back."""
        assert authorization_url.startswith(self.url + "/")
        response = browser.post(authorization_url, data={"sub": sub})
        assert response.status_code == 302, response.text
        return response.headers["Location"]

    def deny(self, browser: Browser, authorization_url: str) -> str:
        response = browser.post(authorization_url, data={"action": "deny"})
        assert response.status_code == 302, response.text
        return response.headers["Location"]

    def stop(self) -> None:
        self.server.stop()


def resign(token: str, key: RSAKey, **changes: Any) -> str:
    """The same ID token with some claims changed (None removes one), signed again by `key`."""
    decoded = jwt.decode(token, key)
    claims = {**decoded.claims, **changes}
    return jwt.encode(dict(decoded.header), {k: v for k, v in claims.items() if v is not None}, key)


@pytest.fixture
def mock_issuer() -> Iterator[Callable[..., MockIssuer]]:
    started: list[MockIssuer] = []

    def start(setup: Callable[[Flask], None] | None = None) -> MockIssuer:
        issuer = MockIssuer(setup)
        started.append(issuer)
        return issuer

    yield start
    for issuer in started:
        issuer.stop()


@pytest.fixture
def google(mock_issuer: Callable[..., MockIssuer]) -> MockIssuer:
    return mock_issuer()


def google_env(issuer: MockIssuer, **extra: str) -> dict[str, str]:
    return {
        "OAUTH_PROVIDER_GOOGLE_CLIENT_ID": CLIENT_ID,
        "OAUTH_PROVIDER_GOOGLE_CLIENT_SECRET": CLIENT_SECRET,
        "OAUTH_PROVIDER_GOOGLE_ISSUER": issuer.url,
        **extra,
    }


@pytest.fixture
def hearth(hearth_factory: HearthFactory, google: MockIssuer) -> Hearth:
    """Hearth with Google (played by oidc-provider-mock) enabled."""
    return hearth_factory(google_env(google))


@dataclass
class GitHubServer:
    fake: FakeGitHub
    server: Server

    @property
    def url(self) -> str:
        return self.server.url

    def env(self) -> dict[str, str]:
        return {
            "OAUTH_PROVIDER_GITHUB_CLIENT_ID": GITHUB_CLIENT_ID,
            "OAUTH_PROVIDER_GITHUB_CLIENT_SECRET": GITHUB_CLIENT_SECRET,
            "OAUTH_PROVIDER_GITHUB_AUTHORIZE_URL": f"{self.url}/login/oauth/authorize",
            "OAUTH_PROVIDER_GITHUB_TOKEN_URL": f"{self.url}/login/oauth/access_token",
            "OAUTH_PROVIDER_GITHUB_API_URL": self.url,
        }


@pytest.fixture
def github() -> Iterator[GitHubServer]:
    fake = FakeGitHub()
    server = Server().start(fake.app())
    yield GitHubServer(fake, server)
    server.stop()


def sign_in_with_google(
    hearth: Hearth, google: MockIssuer, browser: Browser, sub: str, **params: str
) -> requests.Response:
    """The whole dance: start at Hearth, approve at the mock, come back to the callback."""
    started = hearth.start(browser, "google", **params)
    return browser.get(google.approve(browser, started["url"], sub))
