"""A third-party app asks a Hearth member for access; consent, settings and admin in Chromium."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from playwright.sync_api import Browser, Page, expect

from tests.conftest import PASSWORD, AuthActions, LiveServer
from tests.e2e.client_app import ClientApp
from tests.frontend.support import LiveApi, jwt_claims

pytestmark = pytest.mark.browser

Screenshot = Callable[..., None]
ASKED = "openid profile email offline_access CREATE_POST VIEW_ACCOUNTS MANAGE_POSTS"
CSRF_REFUSAL = (
    "This form has expired or did not come from this site. Go back, reload the page and try again."
)
UNUSABLE = "This request can no longer be answered"


def sign_in(page: Page, handle: str, password: str = PASSWORD) -> None:
    """Fill in the sign-in page the browser is on and submit it."""
    page.get_by_label("Handle").fill(handle)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def start(page: Page, app: ClientApp, scope: str = ASKED) -> None:
    """Follow the app's "Sign in with Hearth" link."""
    page.goto(f"{app.url}/start?{urlencode({'scope': scope})}")


def signed_in_member(page: Page, live_web: LiveServer, live_api: LiveServer, handle: str) -> None:
    LiveApi(live_api.url).signup(handle)
    page.goto(f"{live_web.url}/login")
    sign_in(page, handle)
    expect(page.locator("header .handle")).to_have_text(handle)


def expect_consent(page: Page, live_web: LiveServer) -> None:
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Allow Pinboard to use your Hearth account?"
    )
    assert page.url.startswith(f"{live_web.url}/oauth/authorize/consent?request_id=")


def test_signed_out_member_signs_in_approves_and_the_app_redeems_the_code(
    page: Page,
    live_web: LiveServer,
    live_api: LiveServer,
    pinboard: ClientApp,
    screenshot: Screenshot,
) -> None:
    LiveApi(live_api.url).signup("alice")

    start(page, pinboard)

    # Not signed in: /authorize sends the browser to sign in, and back to itself afterwards.
    expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
    assert page.url.startswith(f"{live_web.url}/login?return_url=")
    (return_url,) = parse_qs(urlsplit(page.url).query)["return_url"]
    assert return_url.startswith(f"{live_api.url}/api/oauth/authorize?response_type=code&")
    screenshot("sign-in")
    sign_in(page, "alice")

    expect_consent(page, live_web)
    main = page.get_by_role("main")
    expect(main.locator(".identity")).to_contain_text("Signed in as alice.")
    expect(main.locator(".destination")).to_have_text(pinboard.redirect_uri)
    expect(main.locator(".destination strong")).to_have_text("127.0.0.1")
    expect(page.get_by_label("Sign you in to the app with your community account")).to_be_disabled()
    expect(page.get_by_label("Create threads and replies as you")).to_be_checked()
    expect(main.locator(".dropped")).to_contain_text("Your account does not have this permission")
    expect(main.locator(".dropped")).to_contain_text("This app is not allowed to ask for this")
    expect(main.locator(".expiry")).to_contain_text("(in 10 minutes)")
    screenshot("consent")

    page.get_by_role("button", name="Approve").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Connected to Hearth")
    screenshot("app-connected")
    (answer,) = pinboard.callbacks
    assert set(answer) == {"code", "state", "iss"}
    assert answer["iss"] == live_api.url
    (tokens,) = pinboard.tokens
    assert tokens["token_type"] == "Bearer"
    assert tokens["scope"] == "openid profile email offline_access CREATE_POST"
    assert {"access_token", "refresh_token", "id_token"} <= set(tokens)
    claims = jwt_claims(tokens["access_token"])
    assert (claims["iss"], claims["client_id"]) == (live_api.url, pinboard.client_id)
    me = requests.get(
        f"{live_api.url}/api/accounts/self",
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=10,
    )
    assert me.json()["handle"] == "alice"


def test_deny_sends_access_denied_with_state_and_issuer(
    page: Page,
    live_web: LiveServer,
    live_api: LiveServer,
    pinboard: ClientApp,
    screenshot: Screenshot,
) -> None:
    signed_in_member(page, live_web, live_api, "alice")
    start(page, pinboard)
    expect_consent(page, live_web)
    (state,) = pinboard.flows

    page.get_by_role("button", name="Deny").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Not connected")
    screenshot("app-denied")
    assert pinboard.callbacks == [
        {
            "error": "access_denied",
            "error_description": "The user denied the request.",
            "state": state,
            "iss": live_api.url,
        }
    ]
    assert pinboard.tokens == []


def test_unticked_scope_is_left_out_of_the_access_token(
    page: Page,
    live_web: LiveServer,
    live_api: LiveServer,
    pinboard: ClientApp,
    screenshot: Screenshot,
) -> None:
    signed_in_member(page, live_web, live_api, "alice")
    start(page, pinboard, "openid profile CREATE_POST")
    expect_consent(page, live_web)

    page.get_by_label("Create threads and replies as you").uncheck()
    screenshot("consent-unticked")
    page.get_by_role("button", name="Approve").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Connected to Hearth")
    (tokens,) = pinboard.tokens
    assert tokens["scope"] == "openid profile"
    assert jwt_claims(tokens["access_token"])["scope"] == "openid profile"
    # The API holds the app to it: posting needs CREATE_POST.
    posted = requests.post(
        f"{live_api.url}/api/threads",
        json={"title": "Spam", "body": "Spam", "category": "general"},
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=10,
    )
    assert posted.status_code == 403
    assert 'error="insufficient_scope"' in posted.headers["WWW-Authenticate"]


def test_missing_foreign_and_expired_requests_show_the_error_page(
    page: Page,
    browser: Browser,
    live_web: LiveServer,
    live_api: LiveServer,
    pinboard: ClientApp,
    screenshot: Screenshot,
) -> None:
    page.goto(f"{live_web.url}/oauth/authorize/consent")
    expect(page.get_by_role("heading", level=1)).to_have_text(UNUSABLE)
    expect(page.get_by_role("main")).to_contain_text("missing its request id")

    # Another account's request id reads as no request at all.
    signed_in_member(page, live_web, live_api, "alice")
    start(page, pinboard)
    expect_consent(page, live_web)
    consent_url = page.url
    other = browser.new_context()
    try:
        mallory = other.new_page()
        signed_in_member(mallory, live_web, live_api, "mallory")
        response = mallory.goto(consent_url)
        assert response is not None and response.status == 400
        expect(mallory.get_by_role("heading", level=1)).to_have_text(UNUSABLE)
        expect(mallory.get_by_role("button", name="Approve")).to_have_count(0)
        screenshot("foreign-request", mallory)
    finally:
        other.close()

    # The request expires while the page is open.
    live_api.app.config["OAUTH_PENDING_REQUEST_TTL"] = timedelta(seconds=2)
    start(page, pinboard)
    expect_consent(page, live_web)
    expect(page.locator(".expiry")).to_contain_text("(in less than a minute)")
    time.sleep(2.5)
    page.get_by_role("button", name="Approve").click()

    expect(page.get_by_role("heading", level=1)).to_have_text(UNUSABLE)
    expect(page.get_by_role("main")).to_contain_text("has expired, has already been answered")
    screenshot("expired-request")
    assert pinboard.callbacks == []
    page.reload()
    expect(page.get_by_role("heading", level=1)).to_have_text(UNUSABLE)


def test_revoking_the_app_in_settings_stops_its_refresh_token(
    page: Page,
    live_web: LiveServer,
    live_api: LiveServer,
    pinboard: ClientApp,
    screenshot: Screenshot,
) -> None:
    signed_in_member(page, live_web, live_api, "alice")
    start(page, pinboard, "openid profile offline_access CREATE_POST")
    expect_consent(page, live_web)
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Connected to Hearth")
    rotated = pinboard.refresh(pinboard.tokens[0]["refresh_token"])
    assert rotated.status_code == 200, rotated.text

    page.goto(live_web.url)
    page.get_by_role("link", name="Settings").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Authorised apps")
    app = page.locator(".app").filter(has=page.get_by_role("heading", name="Pinboard"))
    expect(app).to_contain_text("CREATE_POST")
    expect(app).to_contain_text("Last used")
    screenshot("settings-apps")
    app.get_by_role("button", name="Revoke").click()

    expect(page.get_by_role("status")).to_have_text("Pinboard can no longer use your account.")
    expect(page.get_by_role("main")).to_contain_text("You have not authorised any apps.")
    screenshot("settings-revoked")
    refused = pinboard.refresh(rotated.json()["refresh_token"])
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_grant"


def test_admin_registers_a_client_whose_secret_is_shown_once_and_works(
    page: Page,
    live_web: LiveServer,
    live_api: LiveServer,
    auth: AuthActions,
    pinboard: ClientApp,
    screenshot: Screenshot,
) -> None:
    auth.admin("root")
    page.goto(f"{live_web.url}/login")
    sign_in(page, "root")
    page.get_by_role("link", name="Admin").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("OAuth clients")
    expect(page.get_by_role("link", name="Pinboard")).to_be_visible()
    screenshot("admin-clients")

    page.get_by_role("link", name="Register a client").click()
    page.get_by_label("Name").fill("Night Owl")
    page.get_by_label("Redirect URIs").fill("https://owl.example/callback")
    for scope in ("openid", "profile", "READ_PUBLISHED_THREADS"):
        page.get_by_label(scope, exact=True).check()
    page.get_by_label("Client credentials").check()
    page.get_by_label("Owner", exact=True).fill("root")
    screenshot("admin-new-client")
    page.get_by_role("button", name="Register client").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("Client registered: Night Owl")
    expect(page.get_by_role("alert")).to_contain_text("Copy the client secret now.")
    client_id = page.get_by_label("Client ID").input_value()
    secret = page.get_by_label("Client secret").input_value()
    screenshot("admin-secret")
    assert _client_credentials(live_api, client_id, secret).status_code == 200
    assert _client_credentials(live_api, client_id, secret + "x").status_code == 401

    # Shown once: never on the client's page, and a reload does not resubmit the form silently.
    page.get_by_role("link", name="I have saved it — continue").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Night Owl")
    assert secret not in page.content()
    page.get_by_label("Redirect URIs").fill("https://owl.example/callback\nhttps://owl.example/v2")
    page.get_by_label("profile", exact=True).uncheck()
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("status")).to_have_text("Saved the changes to Night Owl.")
    expect(page.get_by_label("Redirect URIs")).to_have_value(
        "https://owl.example/callback\nhttps://owl.example/v2"
    )
    expect(page.get_by_label("profile", exact=True)).not_to_be_checked()
    screenshot("admin-client")

    page.get_by_role("link", name="Rotate the secret…").click()
    page.get_by_role("button", name="Rotate secret").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("New client secret: Night Owl")
    rotated = page.get_by_label("Client secret").input_value()
    assert _client_credentials(live_api, client_id, secret).status_code == 401
    assert _client_credentials(live_api, client_id, rotated).status_code == 200

    page.get_by_role("link", name="I have saved it — continue").click()
    page.get_by_role("link", name="Delete this client…").click()
    screenshot("admin-delete")
    page.get_by_role("button", name="Delete client").click()
    expect(page.get_by_role("status")).to_contain_text("Deleted Night Owl.")
    expect(page.get_by_role("link", name="Night Owl")).to_have_count(0)
    assert _client_credentials(live_api, client_id, rotated).status_code == 401


def test_consent_page_cannot_be_framed_and_refuses_a_post_without_csrf_token(
    page: Page,
    live_web: LiveServer,
    live_api: LiveServer,
    pinboard: ClientApp,
    screenshot: Screenshot,
) -> None:
    signed_in_member(page, live_web, live_api, "alice")
    start(page, pinboard)
    expect_consent(page, live_web)
    consent_url = page.url

    response = page.goto(consent_url)

    assert response is not None
    headers = response.headers
    assert headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["referrer-policy"] == "no-referrer"
    # Chromium refuses to show it inside another site's frame.
    page.goto(f"{pinboard.url}/frame?{urlencode({'src': consent_url})}")
    page.wait_for_load_state("load")  # the frame's navigation has finished, one way or the other
    (framed,) = page.main_frame.child_frames
    assert framed.url == "chrome-error://chromewebdata/"
    expect(page.frame_locator("iframe").get_by_role("button", name="Approve")).to_have_count(0)
    screenshot("framed")

    # A post that lost its CSRF token is refused and answers nothing.
    page.goto(consent_url)
    page.locator("form:has(button[value=approve]) input[name=csrf_token]").evaluate(
        "input => input.remove()"
    )
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("main")).to_contain_text(CSRF_REFUSAL)
    screenshot("csrf-refused")
    assert pinboard.callbacks == []

    page.goto(consent_url)
    page.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Connected to Hearth")


def test_sign_in_that_ends_at_the_app_is_not_blocked_by_form_action(
    page: Page,
    live_web: LiveServer,
    live_api: LiveServer,
    pinboard: ClientApp,
    screenshot: Screenshot,
) -> None:
    """/authorize may answer a fresh sign-in with a redirect straight to the app (here: a denial
    for an account without USE_OAUTH_CLIENTS); Chromium must let the sign-in form end there."""
    LiveApi(live_api.url).signup("guest")
    result = live_api.app.test_cli_runner().invoke(args=["roles", "revoke", "guest", "member"])
    assert result.exit_code == 0, result.output

    start(page, pinboard)
    sign_in(page, "guest")

    expect(page.get_by_role("heading", level=1)).to_have_text("Not connected")
    screenshot("app-refused")
    (answer,) = pinboard.callbacks
    assert answer["error"] == "access_denied"
    assert answer["error_description"] == "Your account may not authorise applications."


def _client_credentials(live_api: LiveServer, client_id: str, secret: str) -> requests.Response:
    return requests.post(
        f"{live_api.url}/api/oauth/token",
        data={"grant_type": "client_credentials", "scope": "READ_PUBLISHED_THREADS"},
        auth=(client_id, secret),
        timeout=10,
    )
