"""One test per attack on the sign-in callback: each must end in a redirect with an error code,
no session, and — where the attack is caught before the exchange — no code sent upstream."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import RSAKey
from sqlalchemy import select

from app.extensions import db
from app.models import LoginState
from tests.federation.conftest import (
    Browser,
    Hearth,
    HearthFactory,
    MockIssuer,
    Tamper,
    google_env,
    resign,
    sign_in_with_google,
)


def assert_refused(
    response: requests.Response, location: str, browser: Browser, hearth: Hearth
) -> None:
    assert response.status_code == 302
    assert response.headers["Location"] == location
    assert "storyden-session" not in response.headers.get("Set-Cookie", "")
    assert hearth.me(browser).status_code == 401


def test_reused_state_is_refused(hearth: Hearth, google: MockIssuer) -> None:
    browser = Browser()
    started = hearth.start(browser, "google", return_url="/home")
    callback = google.approve(browser, started["url"], "g-reuse")
    assert browser.get(callback).headers["Location"] == f"{hearth.web}/home"
    browser.post(f"{hearth.url}/api/auth/signout", json={})

    replay = browser.get(callback)

    assert_refused(replay, f"{hearth.web}/home?error=invalid_state", browser, hearth)
    assert len(google.token_requests) == 1


def test_expired_state_is_refused(hearth: Hearth, google: MockIssuer) -> None:
    browser = Browser()
    started = hearth.start(browser, "google", return_url="/home")
    callback = google.approve(browser, started["url"], "g-late")
    hearth.expire_login_states()

    response = browser.get(callback)

    assert_refused(response, f"{hearth.web}/home?error=expired_state", browser, hearth)
    assert google.token_requests == []


def test_state_from_another_browser_is_refused(hearth: Hearth, google: MockIssuer) -> None:
    # Login CSRF: the attacker signs in at the provider and sends the victim the callback link.
    attacker, victim = Browser(), Browser()
    started = hearth.start(attacker, "google", return_url="/home")
    callback = google.approve(attacker, started["url"], "g-attacker")
    hearth.start(victim, "google")  # the victim even has a login cookie of their own

    response = victim.get(callback)

    assert_refused(response, f"{hearth.web}/home?error=invalid_state", victim, hearth)
    assert google.token_requests == []
    # The state was not burnt by the victim's browser: its real owner can still finish.
    assert "storyden-session=" in attacker.get(callback).headers["Set-Cookie"]


def test_callback_without_the_login_cookie_is_refused(hearth: Hearth, google: MockIssuer) -> None:
    browser = Browser()
    started = hearth.start(browser, "google")
    callback = google.approve(browser, started["url"], "g-nocookie")
    browser.site(hearth.url).cookies.clear()

    response = browser.get(callback)

    assert_refused(response, f"{hearth.web}/?error=invalid_state", browser, hearth)


def test_unknown_state_goes_to_the_login_page(hearth: Hearth) -> None:
    browser = Browser()
    hearth.start(browser, "google")

    response = browser.get(
        f"{hearth.url}/api/auth/oauth/google/callback", params={"code": "x", "state": "forged"}
    )

    assert_refused(response, f"{hearth.web}/login?error=invalid_state", browser, hearth)


def test_state_issued_for_one_provider_is_refused_at_another(
    hearth_factory: HearthFactory, google: MockIssuer, mock_issuer: Callable[..., MockIssuer]
) -> None:
    other = mock_issuer()
    hearth = hearth_factory(
        google_env(
            google,
            OIDC_PROVIDERS="other",
            OIDC_PROVIDER_OTHER_ISSUER=other.url,
            OIDC_PROVIDER_OTHER_CLIENT_ID="x",
        )
    )
    browser = Browser()
    started = hearth.start(browser, "google")
    callback = google.approve(browser, started["url"], "g-mixup")

    response = browser.get(callback.replace("/oauth/google/", "/oauth/other/"))

    assert_refused(response, f"{hearth.web}/login?error=invalid_state", browser, hearth)
    assert google.token_requests == [] and other.token_requests == []


def test_iss_parameter_of_another_issuer_is_refused(hearth: Hearth, google: MockIssuer) -> None:
    # RFC 9207 mix-up defence: the code is not even sent to the token endpoint.
    browser = Browser()
    started = hearth.start(browser, "google", return_url="/home")
    callback = google.approve(browser, started["url"], "g-iss")

    response = browser.get(callback + "&iss=https%3A%2F%2Fevil.example")

    assert_refused(response, f"{hearth.web}/home?error=invalid_issuer", browser, hearth)
    assert google.token_requests == []


def test_iss_parameter_of_the_right_issuer_is_accepted(hearth: Hearth, google: MockIssuer) -> None:
    browser = Browser()
    started = hearth.start(browser, "google", return_url="/home")
    callback = google.approve(browser, started["url"], "g-iss-ok")

    response = browser.get(callback, params={"iss": google.url})

    assert response.headers["Location"] == f"{hearth.web}/home"
    assert hearth.me(browser).status_code == 200


def _tampered(changes: dict[str, object]) -> Tamper:
    return lambda token, key: resign(token, key, **changes)


def _payload_swapped(token: str, key: RSAKey) -> str:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "g-admin"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


def _signed_by_another_key(token: str, key: RSAKey) -> str:
    stranger = RSAKey.generate_key(2048)
    decoded = jwt.decode(token, key)
    return jwt.encode(dict(decoded.header), dict(decoded.claims), stranger)


def _unsigned(token: str, key: RSAKey) -> str:
    header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    return f"{header}.{token.split('.')[1]}."


# Each forgery and the check that must catch it (the reason Hearth logs).
ID_TOKEN_ATTACKS: dict[str, tuple[Tamper, str]] = {
    "wrong_nonce": (_tampered({"nonce": "someone-elses-nonce"}), "nonce"),
    "missing_nonce": (_tampered({"nonce": None}), "nonce"),
    "another_issuer": (_tampered({"iss": "https://evil.example"}), "issued by someone else"),
    "another_audience": (_tampered({"aud": "someone-else"}), "another client"),
    "audience_shared_without_azp": (
        _tampered({"aud": ["hearth-client", "someone-else"]}),
        "another authorized party",
    ),
    "expired": (
        _tampered({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}),
        "ExpiredTokenError",
    ),
    "issued_in_the_future": (_tampered({"iat": int(time.time()) + 3600}), "InvalidClaimError"),
    "tampered_payload": (_payload_swapped, "BadSignatureError"),
    "signed_by_another_key": (_signed_by_another_key, "BadSignatureError"),
    "alg_none": (_unsigned, "did not verify"),
    "at_hash_of_another_token": (
        _tampered({"at_hash": "AAAAAAAAAAAAAAAAAAAAAA"}),
        "access token",
    ),
}


@pytest.mark.parametrize("attack", list(ID_TOKEN_ATTACKS))
def test_id_token_that_does_not_verify_is_refused(
    hearth: Hearth, google: MockIssuer, attack: str, caplog: pytest.LogCaptureFixture
) -> None:
    google.tamper, reason = ID_TOKEN_ATTACKS[attack]
    browser = Browser()

    response = sign_in_with_google(hearth, google, browser, "g-victim", return_url="/home")

    assert_refused(response, f"{hearth.web}/home?error=invalid_id_token", browser, hearth)
    problems = [
        getattr(r, "problem", "") for r in caplog.records if r.getMessage() == "ID token rejected"
    ]
    assert len(problems) == 1 and reason in problems[0], problems


def test_resigned_but_unchanged_id_token_is_accepted(hearth: Hearth, google: MockIssuer) -> None:
    # The control for the attacks above: re-signing alone changes nothing.
    google.tamper = _tampered({})
    browser = Browser()

    response = sign_in_with_google(hearth, google, browser, "g-control", return_url="/home")

    assert response.headers["Location"] == f"{hearth.web}/home"
    assert hearth.me(browser).status_code == 200


FOREIGN_RETURN_URLS = [
    "https://evil.example/",
    "//evil.example/path",
    "/\\evil.example",
    "javascript:alert(1)",
    "http://evil.example@127.0.0.1/",
    "https://127.0.0.1.evil.example/",
    "ftp://127.0.0.1/",
    "/ok\nSet-Cookie: x=y",
]


@pytest.mark.parametrize("return_url", FOREIGN_RETURN_URLS)
def test_return_url_to_a_foreign_origin_is_never_followed(hearth: Hearth, return_url: str) -> None:
    browser = Browser()

    hearth.start(browser, "google", return_url=return_url)

    with hearth.app.app_context():
        row = db.session.scalars(select(LoginState)).one()
        assert row.return_url == f"{hearth.web}/"


def test_foreign_return_url_sends_the_browser_home_after_sign_in(
    hearth: Hearth, google: MockIssuer
) -> None:
    browser = Browser()

    response = sign_in_with_google(
        hearth, google, browser, "g-home", return_url="https://evil.example/phish"
    )

    assert response.headers["Location"] == f"{hearth.web}/"
    assert hearth.me(browser).status_code == 200


def test_bearer_token_cannot_start_a_link(hearth: Hearth) -> None:
    response = Browser().get(
        f"{hearth.url}/api/auth/oauth/google/url",
        params={"type": "link"},
        headers={"Authorization": "Bearer not-a-token"},
    )

    assert response.status_code == 401
