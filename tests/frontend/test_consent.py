"""The consent page: what it shows, approving, narrowing, denying, and requests it must refuse."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import PASSWORD, LiveServer
from tests.frontend.support import (
    PINBOARD_REDIRECT,
    SESSION_COOKIE,
    LiveApi,
    OAuthClient,
    jwt_claims,
    register_client,
    sign_in,
)

ASKED = "openid profile CREATE_POST VIEW_ACCOUNTS MANAGE_POSTS"
UNUSABLE = (
    "<p>This authorisation request has expired, has already been answered, or was started while "
    "another account was signed in. Go back to the app and start again.</p>"
)
UNUSABLE_TITLE = "<h1>This request can no longer be answered</h1>"


def consent_path(request_id: str) -> str:
    return f"/oauth/authorize/consent?request_id={request_id}"


def query(location: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(location).query)


def test_consent_page_shows_app_destination_scopes_identity_and_expiry(
    visitor: FlaskClient, api: LiveApi, pinboard: OAuthClient, live_api: LiveServer
) -> None:
    token = api.signup("alice")
    request_id = api.start_consent(token, pinboard, ASKED)
    sign_in(visitor, token)

    response = visitor.get(consent_path(request_id))

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "<title>Authorise Pinboard · Hearth</title>" in page
    assert (
        '<h1 id="consent-title">Allow <span class="app-name">Pinboard</span> to use your Hearth '
        "account?</h1>"
    ) in page
    assert '<p>Signed in as <strong class="handle">alice</strong>.</p>' in page
    # The whole destination, host emphasised.
    assert (
        '<p class="destination"><code>https://<strong>pinboard.example</strong>'
        "/oauth/callback?from=hearth</code></p>"
    ) in page
    # openid is always included; the other granted scopes can be unticked.
    assert (
        '<input type="checkbox" id="scope-openid" checked disabled '
        'aria-describedby="scope-openid-note">'
    ) in page
    assert '<input type="hidden" name="scopes" value="openid">' in page
    assert (
        '<p class="hint" id="scope-openid-note"><code>openid</code> · Always included: the app '
        "asked to sign you in</p>"
    ) in page
    for name, description in [
        ("profile", "See your handle and display name"),
        ("CREATE_POST", "Create threads and replies as you"),
    ]:
        assert (
            f'<input type="checkbox" id="scope-{name}" name="scopes" value="{name}" checked '
            f'aria-describedby="scope-{name}-note">'
        ) in page
        assert f'<label for="scope-{name}">{description}</label>' in page
    # Dropped scopes: shown with the reason, never with a checkbox.
    assert '<p class="scope-name">View account details of every member</p>' in page
    assert (
        '<p class="hint"><code>VIEW_ACCOUNTS</code> · Your account does not have this permission</p>'
    ) in page
    assert '<p class="scope-name">Edit and delete anyone&#39;s threads and replies</p>' in page
    assert (
        '<p class="hint"><code>MANAGE_POSTS</code> · This app is not allowed to ask for this</p>'
    ) in page
    assert 'id="scope-VIEW_ACCOUNTS"' not in page
    assert 'id="scope-MANAGE_POSTS"' not in page
    assert re.search(
        r'This request expires at <time datetime="[0-9T:-]+Z">\d\d:\d\d UTC</time>\s+'
        r"\(in (10|9) minutes\)\.",
        page,
    )
    assert '<button type="submit" name="decision" value="approve">Approve</button>' in page
    assert (
        '<button type="submit" class="secondary-button" name="decision" value="deny">Deny</button>'
    ) in page
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["Cache-Control"] == "no-store"
    # The form post ends at the app: the policy names its origin, and no other.
    assert response.headers["Content-Security-Policy"] == (
        "default-src 'self'; base-uri 'none'; frame-ancestors 'none'; "
        f"form-action 'self' {live_api.url} https://pinboard.example"
    )


def test_consent_without_a_session_goes_to_sign_in_and_back(
    visitor: FlaskClient, api: LiveApi, pinboard: OAuthClient, live_ports: dict[str, int]
) -> None:
    token = api.signup("alice")
    request_id = api.start_consent(token, pinboard, "openid profile")
    consent_url = f"http://127.0.0.1:{live_ports['web']}{consent_path(request_id)}"

    response = visitor.get(consent_path(request_id))

    assert response.status_code == 302
    location = response.headers["Location"]
    assert urlsplit(location).path == "/login"
    assert query(location) == {"return_url": [consent_url]}
    signed_in = visitor.post(
        location, data={"handle": "alice", "password": PASSWORD, "return_url": consent_url}
    )
    assert signed_in.status_code == 303
    assert signed_in.headers["Location"] == consent_url
    assert visitor.get(consent_path(request_id)).status_code == 200


def test_approve_sends_the_browser_to_the_app_with_a_code_for_the_ticked_scopes(
    visitor: FlaskClient, api: LiveApi, pinboard: OAuthClient, live_api: LiveServer
) -> None:
    token = api.signup("alice")
    request_id = api.start_consent(token, pinboard, "openid profile CREATE_POST offline_access")
    sign_in(visitor, token)

    # CREATE_POST left unticked; openid comes from the page's hidden input.
    response = visitor.post(
        "/oauth/authorize/consent",
        data={
            "request_id": request_id,
            "scopes": ["openid", "profile", "offline_access"],
            "decision": "approve",
        },
    )

    assert response.status_code == 303
    location = response.headers["Location"]
    assert location.startswith(f"{PINBOARD_REDIRECT}&code=")
    assert query(location)["state"] == ["xyz"]
    assert query(location)["iss"] == [live_api.url]
    tokens = api.redeem(pinboard, location)
    assert tokens.status_code == 200, tokens.text
    assert tokens.json()["scope"] == "openid profile offline_access"
    assert jwt_claims(tokens.json()["access_token"])["scope"] == "openid profile offline_access"


def test_deny_sends_access_denied_with_state_and_issuer(
    visitor: FlaskClient, api: LiveApi, pinboard: OAuthClient, live_api: LiveServer
) -> None:
    token = api.signup("alice")
    request_id = api.start_consent(token, pinboard, "openid profile")
    sign_in(visitor, token)

    response = visitor.post(
        "/oauth/authorize/consent",
        data={"request_id": request_id, "scopes": ["openid", "profile"], "decision": "deny"},
    )

    assert response.status_code == 303
    assert query(response.headers["Location"]) == {
        "from": ["hearth"],
        "error": ["access_denied"],
        "error_description": ["The user denied the request."],
        "state": ["xyz"],
        "iss": [live_api.url],
    }


def test_missing_request_id_shows_the_error_page(visitor: FlaskClient) -> None:
    response = visitor.get("/oauth/authorize/consent")

    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert UNUSABLE_TITLE in page
    assert "<p>This link is missing its request id. Go back to the app and start again.</p>" in page


@pytest.mark.parametrize("case", ["unknown", "foreign", "used"])
def test_unusable_request_id_shows_the_error_page(
    visitor: FlaskClient, api: LiveApi, pinboard: OAuthClient, case: str
) -> None:
    alice = api.signup("alice")
    bob = api.signup("bob")
    request_id = api.start_consent(alice, pinboard, "openid")
    if case == "unknown":
        request_id = "x" * 43
    if case == "used":
        sign_in(visitor, alice)
        answered = visitor.post(
            "/oauth/authorize/consent", data={"request_id": request_id, "decision": "deny"}
        )
        assert answered.status_code == 303
    else:
        sign_in(visitor, bob)

    shown = visitor.get(consent_path(request_id))
    posted = visitor.post(
        "/oauth/authorize/consent", data={"request_id": request_id, "decision": "approve"}
    )

    for response in (shown, posted):
        assert response.status_code == 400
        assert response.mimetype == "text/html"
        page = response.get_data(as_text=True)
        assert UNUSABLE_TITLE in page
        assert UNUSABLE in page
        assert "Traceback" not in page


def test_foreign_request_stays_usable_by_its_owner(
    visitor: FlaskClient, api: LiveApi, pinboard: OAuthClient
) -> None:
    alice = api.signup("alice")
    request_id = api.start_consent(alice, pinboard, "openid")
    sign_in(visitor, api.signup("mallory"))
    assert (
        visitor.post(
            "/oauth/authorize/consent", data={"request_id": request_id, "decision": "deny"}
        ).status_code
        == 400
    )

    sign_in(visitor, alice)

    assert visitor.get(consent_path(request_id)).status_code == 200


def test_a_scope_the_request_cannot_grant_is_refused(
    visitor: FlaskClient, api: LiveApi, pinboard: OAuthClient
) -> None:
    token = api.signup("alice")
    request_id = api.start_consent(token, pinboard, "openid VIEW_ACCOUNTS")
    sign_in(visitor, token)

    response = visitor.post(
        "/oauth/authorize/consent",
        data={
            "request_id": request_id,
            "scopes": ["openid", "VIEW_ACCOUNTS"],
            "decision": "approve",
        },
    )

    assert response.status_code == 400
    assert "<p>Not grantable in this request: VIEW_ACCOUNTS.</p>" in response.get_data(as_text=True)
    assert visitor.get(consent_path(request_id)).status_code == 200


def test_decision_other_than_approve_or_deny_is_refused(
    visitor: FlaskClient, api: LiveApi, pinboard: OAuthClient
) -> None:
    token = api.signup("alice")
    request_id = api.start_consent(token, pinboard, "openid")
    sign_in(visitor, token)

    response = visitor.post(
        "/oauth/authorize/consent", data={"request_id": request_id, "decision": "maybe"}
    )

    assert response.status_code == 400
    assert "<p>Choose Approve or Deny on the consent page.</p>" in response.get_data(as_text=True)
    assert visitor.get(consent_path(request_id)).status_code == 200


def test_decision_after_the_session_ended_signs_in_and_returns_to_the_request(
    visitor: FlaskClient, api: LiveApi, pinboard: OAuthClient, live_ports: dict[str, int]
) -> None:
    token = api.signup("alice")
    request_id = api.start_consent(token, pinboard, "openid")
    api.request("POST", "/api/auth/signout", token, {})
    sign_in(visitor, token)

    response = visitor.post(
        "/oauth/authorize/consent", data={"request_id": request_id, "decision": "approve"}
    )

    assert response.status_code == 302
    assert query(response.headers["Location"]) == {
        "return_url": [f"http://127.0.0.1:{live_ports['web']}{consent_path(request_id)}"]
    }


def test_switch_account_signs_out_and_comes_back_through_sign_in(
    visitor: FlaskClient, api: LiveApi, pinboard: OAuthClient, live_ports: dict[str, int]
) -> None:
    token = api.signup("alice")
    request_id = api.start_consent(token, pinboard, "openid")
    sign_in(visitor, token)
    page = visitor.get(consent_path(request_id)).get_data(as_text=True)
    match = re.search(r'<input type="hidden" name="return_url" value="([^"]+)">', page)
    assert match is not None
    return_url = match[1].replace("&amp;", "&")
    assert '<form method="post" action="/logout">' in page
    assert "Not you? Switch account</button>" in page

    response = visitor.post("/logout", data={"return_url": return_url})

    assert response.status_code == 303
    location = response.headers["Location"]
    assert urlsplit(location).path == "/login"
    # Back through sign-in to the original authorize request, which starts a fresh pending
    # request for whoever signs in (the old one belongs to alice).
    restart = query(location)["return_url"][0]
    assert restart.startswith(f"{api.url}/api/oauth/authorize?response_type=code&client_id=")
    assert api.whoami(token).status_code == 401
    assert visitor.get_cookie(SESSION_COOKIE) is None


def test_inheriting_client_offers_every_permission_the_account_holds(
    visitor: FlaskClient, api: LiveApi, live_api: LiveServer
) -> None:
    client = register_client(
        live_api.app,
        "https://helper.example/cb",
        "READ_PUBLISHED_THREADS CREATE_POST MANAGE_POSTS",
        "--scope-policy",
        "inherit",
        name="Helper",
    )
    token = api.signup("alice")
    request_id = api.start_consent(token, client, "")
    sign_in(visitor, token)

    page = visitor.get(consent_path(request_id)).get_data(as_text=True)

    assert "it is offered everything your account can do that it is allowed to ask for." in page
    assert 'value="READ_PUBLISHED_THREADS" checked' in page
    assert 'value="CREATE_POST" checked' in page
    assert "MANAGE_POSTS" not in page


def test_sign_in_page_for_an_authorization_request_allows_the_apps_origin_in_form_action(
    csrf_web: Flask, api: LiveApi, pinboard: OAuthClient, live_api: LiveServer
) -> None:
    authorize_url = api.authorize("", pinboard, "openid")  # no session: to sign-in
    return_url = query(authorize_url)["return_url"][0]

    response = csrf_web.test_client().get("/login", query_string={"return_url": return_url})

    # Signed in with a remembered grant, /authorize sends the browser straight to the app.
    assert response.headers["Content-Security-Policy"] == (
        "default-src 'self'; base-uri 'none'; frame-ancestors 'none'; "
        f"form-action 'self' {live_api.url} https://pinboard.example"
    )


def test_switch_account_restarts_the_same_request_for_the_other_account(
    visitor: FlaskClient, api: LiveApi, pinboard: OAuthClient
) -> None:
    token = api.signup("alice")
    request_id = api.start_consent(token, pinboard, ASKED)
    sign_in(visitor, token)

    page = visitor.get(consent_path(request_id)).get_data(as_text=True)
    match = re.search(r'name="return_url" value="([^"]+)"', page)
    assert match is not None
    login = urlsplit(match.group(1).replace("&amp;", "&"))
    assert login.path == "/login"
    restart = parse_qs(login.query)["return_url"][0]
    assert restart.startswith(f"{api.url}/api/oauth/authorize?")
    original = parse_qs(urlsplit(restart).query)
    assert original["client_id"] == [pinboard.client_id]
    assert original["scope"] == [ASKED]
    assert original["code_challenge_method"] == ["S256"]


def test_self_registered_app_carries_a_warning(
    visitor: FlaskClient, api: LiveApi, pinboard: OAuthClient
) -> None:
    token = api.signup("alice")
    request_id = api.start_consent(token, pinboard, ASKED)
    sign_in(visitor, token)
    page = visitor.get(consent_path(request_id)).get_data(as_text=True)
    assert "registered itself" not in page  # an administrator registered Pinboard
