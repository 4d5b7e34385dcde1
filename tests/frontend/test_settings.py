"""Settings: the apps an account has authorised, and revoking them."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import LiveServer
from tests.frontend.support import LiveApi, OAuthClient, register_client, sign_in


def test_settings_lists_authorised_apps_with_scopes_and_dates(
    visitor: FlaskClient, api: LiveApi, pinboard: OAuthClient
) -> None:
    token = api.signup("alice")
    api.authorized(token, pinboard, "openid profile CREATE_POST offline_access")
    sign_in(visitor, token)

    response = visitor.get("/settings/apps")

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "<title>Authorised apps · Hearth</title>" in page
    assert re.search(r'<h2 id="app-[0-9a-z]{26}">Pinboard</h2>', page)
    assert (
        '<ul class="scope-list">'
        "<li>Sign you in to the app with your community account <code>openid</code></li>"
        "<li>See your handle and display name <code>profile</code></li>"
        "<li>Create threads and replies as you <code>CREATE_POST</code></li>"
        "<li>Stay connected when you are not using the app <code>offline_access</code></li></ul>"
    ) in page
    assert re.search(r"<dt>Authorised</dt>\s*<dd><time datetime=\"[0-9T:-]+Z\">", page)
    # Redeeming the code was the grant's first use.
    assert re.search(r"<dt>Last used</dt>\s*<dd><time datetime=\"[0-9T:-]+Z\">", page)
    assert '<button type="submit" class="danger-button" name="action" value="revoke"' in page
    assert '<a href="/settings/apps" aria-current="page">Settings</a>' in page


def test_settings_without_apps_says_so(visitor: FlaskClient, api: LiveApi) -> None:
    sign_in(visitor, api.signup("alice"))

    page = visitor.get("/settings/apps").get_data(as_text=True)

    assert "You have not authorised any apps." in page


def test_settings_needs_a_session(visitor: FlaskClient, live_api: LiveServer) -> None:
    response = visitor.get("/settings/apps")

    assert response.status_code == 303
    assert response.headers["Location"] == "/login?return_url=/settings/apps"
    assert visitor.get("/settings").headers["Location"] == "/settings/apps"


def test_revoke_stops_the_apps_refresh_token_and_says_so(
    visitor: FlaskClient, api: LiveApi, pinboard: OAuthClient, live_api: LiveServer
) -> None:
    token = api.signup("alice")
    tokens = api.authorized(token, pinboard, "openid offline_access")
    other = register_client(live_api.app, "https://other.example/cb", "openid", name="Other")
    api.authorized(token, other, "openid")
    sign_in(visitor, token)
    (grant,) = [
        app
        for app in api.request("GET", "/api/accounts/self/authorized-apps", token).json()["items"]
        if app["client_name"] == "Pinboard"
    ]

    response = visitor.post("/settings/apps", data={"grant_id": grant["grant_id"]})

    assert response.status_code == 303
    assert response.headers["Location"] == "/settings/apps"
    page = visitor.get("/settings/apps").get_data(as_text=True)
    assert (
        '<div class="notice" role="status">\n<p>Pinboard can no longer use your account.</p>'
        in (page.replace("  ", ""))
    )
    assert ">Pinboard</h2>" not in page
    assert ">Other</h2>" in page
    refreshed = api.refresh(pinboard, tokens["refresh_token"])
    assert refreshed.status_code == 400
    assert refreshed.json()["error"] == "invalid_grant"


def test_revoking_another_accounts_grant_is_not_found(
    visitor: FlaskClient, api: LiveApi, pinboard: OAuthClient
) -> None:
    alice = api.signup("alice")
    tokens = api.authorized(alice, pinboard, "openid offline_access")
    (grant,) = api.request("GET", "/api/accounts/self/authorized-apps", alice).json()["items"]
    sign_in(visitor, api.signup("mallory"))

    response = visitor.post("/settings/apps", data={"grant_id": grant["grant_id"]})

    assert response.status_code == 404
    assert "<p>No authorised app has that grant id.</p>" in response.get_data(as_text=True)
    assert api.refresh(pinboard, tokens["refresh_token"]).status_code == 200


def test_revoke_without_csrf_token_is_rejected(
    csrf_web: Flask, api: LiveApi, pinboard: OAuthClient
) -> None:
    token = api.signup("alice")
    tokens = api.authorized(token, pinboard, "openid offline_access")
    (grant,) = api.request("GET", "/api/accounts/self/authorized-apps", token).json()["items"]
    client = sign_in(csrf_web.test_client(), token)

    response = client.post("/settings/apps", data={"grant_id": grant["grant_id"]})

    assert response.status_code == 400
    assert api.refresh(pinboard, tokens["refresh_token"]).status_code == 200
