"""The single-page-app variant: the app keeps its PKCE verifier and posts the code back as JSON."""

from __future__ import annotations

import base64
import hashlib
import secrets

import pytest
import requests

from tests.federation.conftest import CLIENT_ID, Browser, Hearth, MockIssuer, query


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def spa_redirect_uri(hearth: Hearth) -> str:
    return f"{hearth.web}/auth/oauth/callback"


def auth_url(hearth: Hearth, browser: Browser, challenge: str, **overrides: str) -> dict[str, str]:
    params = {
        "provider": "google",
        "redirect_uri": spa_redirect_uri(hearth),
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **overrides,
    }
    return {k: v for k, v in params.items() if v}


def spa_sign_in(
    hearth: Hearth, google: MockIssuer, browser: Browser, sub: str
) -> tuple[str, dict[str, str]]:
    """Get the URL, approve at the provider; return the verifier and the app's callback query."""
    verifier, challenge = pkce_pair()
    response = browser.get(
        f"{hearth.url}/api/oauth/auth-url", params=auth_url(hearth, browser, challenge)
    )
    assert response.status_code == 200, response.text
    location = google.approve(browser, response.json()["url"], sub)
    assert location.startswith(spa_redirect_uri(hearth) + "?")
    return verifier, query(location)


def post_callback(
    hearth: Hearth, browser: Browser, body: dict[str, str], **headers: str
) -> requests.Response:
    return browser.post(
        f"{hearth.url}/api/auth/oauth/google/callback",
        json=body,
        headers={"Origin": hearth.web, **headers},
    )


def test_spa_sign_in(hearth: Hearth, google: MockIssuer) -> None:
    google.user(
        "g-spa", preferred_username="spa-user", email="spa@example.org", email_verified=True
    )
    browser = Browser()
    verifier, back = spa_sign_in(hearth, google, browser, "g-spa")

    response = post_callback(
        hearth, browser, {"code": back["code"], "state": back["state"], "code_verifier": verifier}
    )

    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    assert "storyden-session=" in response.headers["Set-Cookie"]
    assert response.json()["handle"] == "spa-user"
    assert hearth.me(browser).json()["id"] == response.json()["id"]
    exchange = google.token_requests[0]
    assert exchange["redirect_uri"] == spa_redirect_uri(hearth)
    assert exchange["code_verifier"] == verifier


def test_auth_url_carries_the_apps_challenge(hearth: Hearth) -> None:
    _, challenge = pkce_pair()

    response = Browser().get(
        f"{hearth.url}/api/oauth/auth-url", params=auth_url(hearth, Browser(), challenge)
    )

    assert response.status_code == 200
    assert list(response.json()) == ["url"]
    params = query(response.json()["url"])
    assert params["code_challenge"] == challenge
    assert params["redirect_uri"] == spa_redirect_uri(hearth)
    assert params["client_id"] == CLIENT_ID


def test_auth_url_rejects_unregistered_redirect_and_bad_pkce_with_422(hearth: Hearth) -> None:
    response = Browser().get(
        f"{hearth.url}/api/oauth/auth-url",
        params=auth_url(
            hearth,
            Browser(),
            "short",
            redirect_uri="https://evil.example/callback",
            code_challenge_method="plain",
        ),
    )

    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "loc": ["query", "redirect_uri"],
                "msg": "must be one of the registered redirect URIs",
                "type": "value_error",
            },
            {
                "loc": ["query", "code_challenge"],
                "msg": "must be a base64url SHA-256 (43 characters)",
                "type": "value_error",
            },
            {
                "loc": ["query", "code_challenge_method"],
                "msg": "must be S256",
                "type": "value_error",
            },
        ]
    }


def test_auth_url_rejects_an_unknown_provider(hearth: Hearth) -> None:
    _, challenge = pkce_pair()

    response = Browser().get(
        f"{hearth.url}/api/oauth/auth-url",
        params=auth_url(hearth, Browser(), challenge, provider="myspace"),
    )

    assert response.status_code == 400
    assert response.json()["error"] == "INVALID_PROVIDER"


def test_wrong_verifier_is_refused_and_burns_the_state(hearth: Hearth, google: MockIssuer) -> None:
    browser = Browser()
    verifier, back = spa_sign_in(hearth, google, browser, "g-stolen")

    stolen = post_callback(
        hearth,
        Browser(),
        {"code": back["code"], "state": back["state"], "code_verifier": pkce_pair()[0]},
    )
    late = post_callback(
        hearth, browser, {"code": back["code"], "state": back["state"], "code_verifier": verifier}
    )

    assert stolen.status_code == 400
    assert stolen.json()["error"] == "invalid_grant"
    assert late.status_code == 400
    assert late.json()["error"] == "invalid_state"
    assert google.token_requests == []


@pytest.mark.parametrize(
    "headers",
    [{"Origin": "https://evil.example"}, {"Sec-Fetch-Site": "cross-site"}],
)
def test_cross_site_json_callback_is_refused(
    hearth: Hearth, google: MockIssuer, headers: dict[str, str]
) -> None:
    browser = Browser()
    verifier, back = spa_sign_in(hearth, google, browser, "g-csrf")

    response = post_callback(
        hearth,
        browser,
        {"code": back["code"], "state": back["state"], "code_verifier": verifier},
        **headers,
    )

    assert response.status_code == 403
    assert response.json()["error"] == "cross_origin_request"


def test_browser_state_cannot_finish_as_an_spa_and_vice_versa(
    hearth: Hearth, google: MockIssuer
) -> None:
    browser = Browser()
    started = hearth.start(browser, "google")
    browser_back = query(google.approve(browser, started["url"], "g-cross"))
    verifier, spa_back = spa_sign_in(hearth, google, browser, "g-cross")

    as_spa = post_callback(
        hearth,
        browser,
        {"code": browser_back["code"], "state": browser_back["state"], "code_verifier": verifier},
    )
    as_browser = browser.get(
        f"{hearth.url}/api/auth/oauth/google/callback",
        params={"code": spa_back["code"], "state": spa_back["state"]},
    )

    assert as_spa.status_code == 400 and as_spa.json()["error"] == "invalid_state"
    assert as_browser.headers["Location"] == f"{hearth.web}/login?error=invalid_state"
