"""Signing in with GitHub (OAuth 2 and the REST API), against a local fake."""

from __future__ import annotations

import requests
from sqlalchemy import select

from app.extensions import db
from app.models import FederatedIdentity
from tests.federation.conftest import (
    Browser,
    GitHubServer,
    Hearth,
    HearthFactory,
    query,
)
from tests.federation.fake_github import GitHubUser


def sign_in_with_github(
    hearth: Hearth, github: GitHubServer, browser: Browser, login: str | None, **params: str
) -> requests.Response:
    github.fake.next_login = login
    started = hearth.start(browser, "github", **params)
    approved = browser.get(started["url"])
    assert approved.status_code == 302
    return browser.get(approved.headers["Location"])


def test_github_sign_in_uses_the_numeric_id_and_the_verified_primary_email(
    hearth_factory: HearthFactory, github: GitHubServer
) -> None:
    hearth = hearth_factory(github.env())
    github.fake.add(
        GitHubUser(
            id=42,
            login="Octo_Cat",
            name="The Octocat",
            emails=[
                {"email": "old@example.org", "primary": False, "verified": True},
                {"email": "octo@example.org", "primary": True, "verified": True},
            ],
        )
    )
    browser = Browser()

    response = sign_in_with_github(hearth, github, browser, "Octo_Cat", return_url="/home")

    assert response.status_code == 302
    assert response.headers["Location"] == f"{hearth.web}/home"
    me = hearth.me(browser).json()
    assert (me["handle"], me["name"], me["email"]) == (
        "octo_cat",
        "The Octocat",
        "octo@example.org",
    )
    asked = github.fake.authorize_params[0]
    assert asked["scope"] == "read:user user:email"
    assert asked["code_challenge_method"] == "S256"
    assert asked["redirect_uri"] == f"{hearth.url}/api/auth/oauth/github/callback"
    assert "nonce" not in asked
    with hearth.app.app_context():
        identity = db.session.scalars(select(FederatedIdentity)).one()
        assert (identity.provider, identity.subject, identity.email_verified) == (
            "github",
            "42",
            True,
        )


def test_github_unverified_primary_email_is_ignored(
    hearth_factory: HearthFactory, github: GitHubServer
) -> None:
    hearth = hearth_factory(github.env())
    github.fake.add(
        GitHubUser(
            id=7,
            login="mallory",
            emails=[
                {"email": "victim@example.org", "primary": True, "verified": False},
                {"email": "mallory@example.org", "primary": False, "verified": True},
            ],
        )
    )
    browser = Browser()

    sign_in_with_github(hearth, github, browser, "mallory")

    assert hearth.me(browser).json()["email"] is None
    with hearth.app.app_context():
        identity = db.session.scalars(select(FederatedIdentity)).one()
        assert (identity.email, identity.email_verified) == (None, False)


def test_renamed_github_login_still_reaches_the_same_account(
    hearth_factory: HearthFactory, github: GitHubServer
) -> None:
    hearth = hearth_factory(github.env())
    user = github.fake.add(GitHubUser(id=99, login="before"))
    first, second = Browser(), Browser()
    sign_in_with_github(hearth, github, first, "before")
    github.fake.users.pop("before")
    user.login = "after"
    github.fake.add(user)

    sign_in_with_github(hearth, github, second, "after")

    assert hearth.me(first).json()["id"] == hearth.me(second).json()["id"]


def test_github_denial_returns_to_the_return_url(
    hearth_factory: HearthFactory, github: GitHubServer
) -> None:
    hearth = hearth_factory(github.env())
    browser = Browser()

    response = sign_in_with_github(hearth, github, browser, None, return_url="/home")

    assert response.headers["Location"] == f"{hearth.web}/home?error=access_denied"
    assert hearth.me(browser).status_code == 401


def test_github_refusing_the_code_is_a_provider_error(
    hearth_factory: HearthFactory, github: GitHubServer
) -> None:
    # GitHub answers HTTP 200 with {"error": "bad_verification_code"}.
    hearth = hearth_factory(github.env())
    github.fake.add(GitHubUser(id=5, login="nope"))
    github.fake.next_login = "nope"
    browser = Browser()
    started = hearth.start(browser, "github", return_url="/home")
    callback = browser.get(started["url"]).headers["Location"]
    github.fake.codes.clear()

    response = browser.get(callback)

    assert response.headers["Location"] == f"{hearth.web}/home?error=provider_error"
    assert hearth.me(browser).status_code == 401


def test_github_down_during_the_callback_is_provider_unavailable(
    hearth_factory: HearthFactory, github: GitHubServer
) -> None:
    hearth = hearth_factory(github.env())
    github.fake.add(GitHubUser(id=6, login="late"))
    github.fake.next_login = "late"
    browser = Browser()
    started = hearth.start(browser, "github", return_url="/home")
    callback = browser.get(started["url"]).headers["Location"]
    assert "code" in query(callback)
    github.server.stop()

    response = browser.get(callback)

    assert response.status_code == 302
    assert response.headers["Location"] == f"{hearth.web}/home?error=provider_unavailable"
