"""Sign in with Apple: form_post callbacks and the ES256 client secret (oidc-provider-mock as Apple).

Apple answers with a cross-site POST, which carries no SameSite=Lax cookie. The tests play that
POST from a cookie-less client, as a browser would send it, and then follow Hearth's 303 with
the real browser, whose top-level GET does carry the login cookie.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.jwk import ECKey

from tests.federation.conftest import (
    Browser,
    Hearth,
    HearthFactory,
    MockIssuer,
    google_env,
    query,
)

APPLE_CLIENT_ID = "org.example.hearth"
TEAM_ID = "TEAM123456"
KEY_ID = "KEY7654321"
APPLE_ORIGIN = {"Origin": "https://appleid.apple.com", "Sec-Fetch-Site": "cross-site"}


@pytest.fixture
def apple_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def apple(mock_issuer: Callable[..., MockIssuer]) -> MockIssuer:
    return mock_issuer()


@pytest.fixture
def hearth(
    hearth_factory: HearthFactory, apple: MockIssuer, apple_key: ec.EllipticCurvePrivateKey
) -> Hearth:
    pem = apple_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return hearth_factory(
        {
            "OAUTH_PROVIDER_APPLE_CLIENT_ID": APPLE_CLIENT_ID,
            "OAUTH_PROVIDER_APPLE_TEAM_ID": TEAM_ID,
            "OAUTH_PROVIDER_APPLE_KEY_ID": KEY_ID,
            # Escaped newlines, as PEMs often arrive through environment variables.
            "OAUTH_PROVIDER_APPLE_PRIVATE_KEY": pem.replace("\n", "\\n"),
            "OAUTH_PROVIDER_APPLE_ISSUER": apple.url,
        }
    )


def apple_form_post(callback_url: str, **fields: str) -> requests.Response:
    """What the browser sends when Apple's page auto-submits: cross-site, so no Lax cookies."""
    return requests.post(
        callback_url.split("?")[0],
        data=fields,
        headers=APPLE_ORIGIN,
        allow_redirects=False,
        timeout=10,
    )


def test_apple_sign_in_through_form_post(
    hearth: Hearth, apple: MockIssuer, apple_key: ec.EllipticCurvePrivateKey
) -> None:
    apple.user(
        "001234.apple",
        email="x7k2@privaterelay.appleid.com",
        email_verified="true",
        is_private_email="true",
    )
    browser = Browser()
    started = hearth.start(browser, "apple", return_url="/home")
    asked = query(started["url"])
    assert asked["response_mode"] == "form_post"
    assert asked["scope"] == "openid name email"
    back = query(apple.approve(browser, started["url"], "001234.apple"))

    posted = apple_form_post(
        f"{hearth.url}/api/auth/oauth/apple/callback",
        code=back["code"],
        state=back["state"],
        user=json.dumps({"name": {"firstName": "Ada", "lastName": "Lovelace"}}),
    )

    assert posted.status_code == 303
    assert "Set-Cookie" not in posted.headers
    assert posted.headers["Referrer-Policy"] == "no-referrer"
    location = posted.headers["Location"]
    assert location.startswith(f"{hearth.url}/api/auth/oauth/apple/callback?")
    finished = browser.get(location)
    assert finished.status_code == 302
    assert finished.headers["Location"] == f"{hearth.web}/home"
    me = hearth.me(browser).json()
    assert (me["handle"], me["name"]) == ("x7k2", "Ada Lovelace")
    # Apple's "true" string counts as verified.
    assert me["email"] == "x7k2@privaterelay.appleid.com"

    token_request = apple.token_requests[0]
    assert token_request["client_id"] == APPLE_CLIENT_ID
    secret = jwt.decode(token_request["client_secret"], ECKey.import_key(apple_key.public_key()))
    assert secret.header == {"alg": "ES256", "kid": KEY_ID, "typ": "JWT"}
    claims = secret.claims
    assert (claims["iss"], claims["sub"], claims["aud"]) == (TEAM_ID, APPLE_CLIENT_ID, apple.url)
    assert 0 < claims["exp"] - claims["iat"] <= 180 * 24 * 3600


def test_apple_form_post_without_the_browser_cookie_is_refused(
    hearth: Hearth, apple: MockIssuer
) -> None:
    browser = Browser()
    started = hearth.start(browser, "apple", return_url="/home")
    back = query(apple.approve(browser, started["url"], "001234.apple"))
    posted = apple_form_post(
        f"{hearth.url}/api/auth/oauth/apple/callback", code=back["code"], state=back["state"]
    )

    # Someone else's browser following the same 303 (login CSRF) has no login cookie.
    response = Browser().get(posted.headers["Location"])

    assert response.headers["Location"] == f"{hearth.web}/home?error=invalid_state"


def test_apple_cancellation_comes_back_as_access_denied(hearth: Hearth, apple: MockIssuer) -> None:
    browser = Browser()
    started = hearth.start(browser, "apple", return_url="/home")

    posted = apple_form_post(
        f"{hearth.url}/api/auth/oauth/apple/callback",
        error="user_cancelled_authorize",
        state=started["state"],
    )
    response = browser.get(posted.headers["Location"])

    assert response.headers["Location"] == f"{hearth.web}/home?error=access_denied"


def test_form_post_is_only_for_providers_that_use_it(
    hearth_factory: HearthFactory, google: MockIssuer
) -> None:
    hearth = hearth_factory(google_env(google))

    response = apple_form_post(f"{hearth.url}/api/auth/oauth/google/callback", code="x", state="y")

    assert response.status_code == 415
