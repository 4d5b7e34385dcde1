"""Failures that are nobody's attack: providers down or misconfigured, odd callbacks, races,
and housekeeping of old login states."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
import requests
from flask import Flask, Response, jsonify, request
from sqlalchemy import func, select, update

from app.db import utcnow
from app.extensions import db
from app.federation.service import delete_expired_login_states
from app.models import LoginState
from tests.conftest import free_port
from tests.federation.conftest import (
    Browser,
    Hearth,
    HearthFactory,
    MockIssuer,
)


def test_provider_down_when_starting_is_503(hearth_factory: HearthFactory) -> None:
    hearth = hearth_factory(
        {
            "OAUTH_PROVIDER_GOOGLE_CLIENT_ID": "g",
            "OAUTH_PROVIDER_GOOGLE_CLIENT_SECRET": "s",
            "OAUTH_PROVIDER_GOOGLE_ISSUER": f"http://127.0.0.1:{free_port()}",
        }
    )
    browser = Browser()

    response = browser.get(f"{hearth.url}/api/auth/oauth/google/url")

    assert response.status_code == 503
    assert response.json() == {
        "error": "provider_unavailable",
        "error_description": "The sign-in provider is unavailable.",
    }
    assert browser.cookie(hearth.url, "hearth-login") is None
    with hearth.app.app_context():
        assert db.session.scalar(select(func.count()).select_from(LoginState)) == 0


def test_provider_down_during_the_callback(hearth: Hearth, google: MockIssuer) -> None:
    browser = Browser()
    started = hearth.start(browser, "google", return_url="/home")
    callback = google.approve(browser, started["url"], "g-down")
    google.stop()

    response = browser.get(callback)

    assert response.status_code == 302
    assert response.headers["Location"] == f"{hearth.web}/home?error=provider_unavailable"


def bad_discovery(app: Flask) -> None:
    @app.get("/<case>/.well-known/openid-configuration")
    def discovery(case: str) -> Response:
        base = request.host_url.rstrip("/")
        document: dict[str, object] = {
            "issuer": f"{base}/{case}",
            "authorization_endpoint": f"{base}/oauth2/authorize",
            "token_endpoint": f"{base}/oauth2/token",
            "jwks_uri": f"{base}/jwks",
        }
        if case == "other-issuer":
            document["issuer"] = "https://evil.example"
        elif case == "plain-http-endpoint":
            document["token_endpoint"] = "http://10.0.0.7/token"
        elif case == "symmetric-only":
            document["id_token_signing_alg_values_supported"] = ["HS256", "none"]
        return jsonify(document)


@pytest.mark.parametrize("case", ["other-issuer", "plain-http-endpoint", "symmetric-only"])
def test_untrustworthy_discovery_document_is_refused(
    hearth_factory: HearthFactory, mock_issuer: Callable[..., MockIssuer], case: str
) -> None:
    issuer = mock_issuer(bad_discovery)
    hearth = hearth_factory(
        {
            "OIDC_PROVIDERS": "corp",
            "OIDC_PROVIDER_CORP_ISSUER": f"{issuer.url}/{case}",
            "OIDC_PROVIDER_CORP_CLIENT_ID": "c",
        }
    )

    response = Browser().get(f"{hearth.url}/api/auth/oauth/corp/url")

    assert response.status_code == 503
    assert response.json()["error"] == "provider_unavailable"


def test_callback_for_an_unknown_provider_goes_to_the_login_page(hearth: Hearth) -> None:
    response = Browser().get(
        f"{hearth.url}/api/auth/oauth/myspace/callback", params={"code": "c", "state": "s"}
    )

    assert response.status_code == 302
    assert response.headers["Location"] == f"{hearth.web}/login?error=invalid_provider"


def test_callback_without_a_code_is_an_invalid_request(hearth: Hearth) -> None:
    browser = Browser()
    started = hearth.start(browser, "google", return_url="/home")

    response = browser.get(
        f"{hearth.url}/api/auth/oauth/google/callback", params={"state": started["state"]}
    )

    assert response.headers["Location"] == f"{hearth.web}/home?error=invalid_request"


def test_unknown_type_is_refused(hearth: Hearth) -> None:
    response = Browser().get(f"{hearth.url}/api/auth/oauth/google/url", params={"type": "merge"})

    assert response.status_code == 400
    assert response.json()["fields"] == {"type": "must be authenticate or link"}


def test_two_tabs_sign_in_at_once_with_one_cookie(hearth: Hearth, google: MockIssuer) -> None:
    browser = Browser()
    first = hearth.start(browser, "google", return_url="/one")
    second = hearth.start(browser, "google", return_url="/two")
    first_back = google.approve(browser, first["url"], "g-tabs")
    second_back = google.approve(browser, second["url"], "g-tabs")

    assert browser.get(second_back).headers["Location"] == f"{hearth.web}/two"
    assert browser.get(first_back).headers["Location"] == f"{hearth.web}/one"


def test_racing_callbacks_sign_in_once(hearth: Hearth, google: MockIssuer) -> None:
    browser = Browser()
    started = hearth.start(browser, "google", return_url="/home")
    callback = google.approve(browser, started["url"], "g-race")
    cookies = browser.site(hearth.url).cookies
    locations: list[str] = []
    barrier = threading.Barrier(4)

    def attempt() -> None:
        barrier.wait()
        response = requests.get(callback, cookies=cookies, allow_redirects=False, timeout=10)
        locations.append(response.headers["Location"])

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert (
        sorted(locations) == [f"{hearth.web}/home"] + [f"{hearth.web}/home?error=invalid_state"] * 3
    )
    assert len(google.token_requests) == 1


def test_cleanup_deletes_only_expired_login_states(hearth: Hearth) -> None:
    browser = Browser()
    for _ in range(3):
        hearth.start(browser, "google")
    with hearth.app.app_context():
        ids = db.session.scalars(select(LoginState.id).order_by(LoginState.id)).all()
        db.session.execute(
            update(LoginState)
            .where(LoginState.id.in_(ids[:2]))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()

        assert delete_expired_login_states(db.session, 1) == 1
        assert delete_expired_login_states(db.session, 10) == 1
        assert delete_expired_login_states(db.session, 10) == 0
        db.session.commit()
        assert db.session.scalars(select(LoginState.id)).all() == [ids[2]]
