"""Federation between two Hearths: one signs people in with the other's OpenID Connect provider.

The upstream is a second Hearth (its own SQLite file, its own signing key) served over HTTP; its
client for the downstream is made with its CLI, and the consent step goes through its consent
API exactly as its frontend would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from sqlalchemy import select

from app.extensions import Database, db
from app.migrate import upgrade
from app.models import FederatedIdentity
from app.oauth.keys import _generate_pem
from tests.conftest import PASSWORD, make_app
from tests.federation.conftest import Browser, Hearth, HearthFactory, Server, query


@dataclass
class Upstream:
    app: Flask
    server: Server

    @property
    def url(self) -> str:
        return self.server.url

    def create_client(self, redirect_uri: str, *options: str) -> dict[str, str]:
        result = self.app.test_cli_runner().invoke(
            args=[
                "clients",
                "create",
                "--name",
                "Downstream Hearth",
                "--redirect-uri",
                redirect_uri,
                "--scopes",
                "openid profile email",
                "--json",
                *options,
            ]
        )
        assert result.exit_code == 0, result.output
        created: dict[str, str] = json.loads(result.output)
        return created

    def signup(self, browser: Browser, handle: str) -> str:
        response = browser.post(
            f"{self.url}/api/auth/password/signup",
            json={"handle": handle, "password": PASSWORD, "email": f"{handle}@example.org"},
        )
        assert response.status_code == 200, response.text
        account_id: str = response.json()["id"]
        return account_id

    def consent(self, browser: Browser, authorization_url: str, decision: str) -> str:
        """Follow /authorize to the consent page and decide there; return `location`."""
        response = browser.get(authorization_url)
        assert response.status_code == 302, response.text
        request_id = parse_qs(urlsplit(response.headers["Location"]).query)["request_id"][0]
        decided = browser.post(
            f"{self.url}/api/oauth/authorize/consent",
            json={"request_id": request_id, "decision": decision},
        )
        assert decided.status_code == 200, decided.text
        location: str = decided.json()["location"]
        return location


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[Upstream]:
    database_url = f"sqlite:///{tmp_path / 'upstream.db'}"
    upgrade(database_url)
    server, web = Server(), "http://web.upstream.test"
    app = make_app(
        database_url,
        PUBLIC_API_ADDRESS=server.url,
        PUBLIC_WEB_ADDRESS=web,
        OAUTH_AUTHORISATION_CODE_CONSENT_URL=f"{web}/oauth/authorize/consent",
        OAUTH_AUTHORISATION_LOGIN_URL=f"{web}/login",
        OAUTH_SIGNING_KEY=_generate_pem(),
    )
    yield Upstream(app, server.start(app))
    server.stop()
    Database.dispose(app)


@pytest.fixture
def downstream(hearth_factory: HearthFactory, upstream: Upstream) -> Hearth:
    server = Server()
    client = upstream.create_client(f"{server.url}/api/auth/oauth/upstream-hearth/callback")
    return hearth_factory(
        {
            "OIDC_PROVIDERS": "upstream-hearth",
            "OIDC_PROVIDER_UPSTREAM_HEARTH_ISSUER": upstream.url,
            "OIDC_PROVIDER_UPSTREAM_HEARTH_CLIENT_ID": client["client_id"],
            "OIDC_PROVIDER_UPSTREAM_HEARTH_CLIENT_SECRET": client["client_secret"],
            "OIDC_PROVIDER_UPSTREAM_HEARTH_DISPLAY_NAME": "Upstream Hearth",
        },
        server=server,
    )


def test_sign_in_to_one_hearth_with_another(downstream: Hearth, upstream: Upstream) -> None:
    browser = Browser()
    upstream_id = upstream.signup(browser, "uma")
    started = downstream.start(browser, "upstream-hearth", return_url="/home")
    assert urlsplit(started["url"]).path == "/api/oauth/authorize"

    location = upstream.consent(browser, started["url"], "approve")
    assert query(location)["iss"] == upstream.url
    response = browser.get(location)

    assert response.status_code == 302
    assert response.headers["Location"] == f"{downstream.web}/home"
    me = downstream.me(browser).json()
    assert me["handle"] == "uma"
    # Hearth does not verify addresses, so the downstream does not adopt this one.
    assert me["email"] is None
    with downstream.app.app_context():
        identity = db.session.scalars(select(FederatedIdentity)).one()
        assert (identity.provider, identity.subject) == ("upstream-hearth", upstream_id)
        assert (identity.email, identity.email_verified) == ("uma@example.org", False)


def test_signing_in_again_reaches_the_same_downstream_account(
    downstream: Hearth, upstream: Upstream
) -> None:
    browser = Browser()
    upstream.signup(browser, "vic")
    ids = []
    for _ in range(2):
        started = downstream.start(browser, "upstream-hearth")
        browser.get(upstream.consent(browser, started["url"], "approve"))
        ids.append(downstream.me(browser).json()["id"])
        browser.post(f"{downstream.url}/api/auth/signout", json={})

    assert ids[0] == ids[1]


def test_denied_at_the_upstream_hearth(downstream: Hearth, upstream: Upstream) -> None:
    browser = Browser()
    upstream.signup(browser, "walt")
    started = downstream.start(browser, "upstream-hearth", return_url="/home")

    response = browser.get(upstream.consent(browser, started["url"], "deny"))

    assert response.headers["Location"] == f"{downstream.web}/home?error=access_denied"
    assert downstream.me(browser).status_code == 401


def test_response_without_iss_is_refused_when_the_issuer_promises_it(
    downstream: Hearth, upstream: Upstream
) -> None:
    # RFC 9207 §2.4: Hearth advertises authorization_response_iss_parameter_supported.
    browser = Browser()
    upstream.signup(browser, "xena")
    started = downstream.start(browser, "upstream-hearth", return_url="/home")
    location = upstream.consent(browser, started["url"], "approve")
    params = query(location)

    response = browser.get(
        location.split("?")[0], params={"code": params["code"], "state": params["state"]}
    )

    assert response.headers["Location"] == f"{downstream.web}/home?error=invalid_issuer"
    assert downstream.me(browser).status_code == 401


def test_downstream_may_be_a_public_client_of_the_upstream(
    hearth_factory: HearthFactory, upstream: Upstream
) -> None:
    # No client secret configured: Hearth authenticates with PKCE alone (auth method none).
    server = Server()
    client = upstream.create_client(
        f"{server.url}/api/auth/oauth/upstream-hearth/callback", "--public"
    )
    assert client["token_endpoint_auth_method"] == "none"
    downstream = hearth_factory(
        {
            "OIDC_PROVIDERS": "upstream-hearth",
            "OIDC_PROVIDER_UPSTREAM_HEARTH_ISSUER": upstream.url,
            "OIDC_PROVIDER_UPSTREAM_HEARTH_CLIENT_ID": client["client_id"],
        },
        server=server,
    )
    browser = Browser()
    upstream.signup(browser, "yuri")
    started = downstream.start(browser, "upstream-hearth", return_url="/home")

    response = browser.get(upstream.consent(browser, started["url"], "approve"))

    assert response.headers["Location"] == f"{downstream.web}/home"
    assert downstream.me(browser).json()["handle"] == "yuri"
