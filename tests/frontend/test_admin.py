"""Administration of OAuth clients through the frontend: list, register, edit, rotate, delete."""

from __future__ import annotations

import re

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import AuthActions, LiveServer
from tests.frontend.support import (
    PINBOARD_REDIRECT,
    SESSION_COOKIE,
    LiveApi,
    OAuthClient,
    pkce_pair,
    sign_in,
)

SECRET_FIELD = re.compile(
    r'<input id="client_secret" class="secret" type="text" value="(hsec_[A-Za-z0-9_-]{43})" '
    r'readonly spellcheck="false" autocomplete="off">'
)
CLIENT_ID_FIELD = re.compile(r'<input id="client_id" type="text" value="(hc_[A-Za-z0-9_-]+)"')
NEW_CLIENT = {
    "name": "Night Owl",
    "redirect_uris": "https://owl.example/callback\r\n\r\nhttp://127.0.0.1/callback\r\n",
    "scopes": ["openid", "READ_PUBLISHED_THREADS"],
    "grant_types": ["authorization_code", "refresh_token", "client_credentials"],
    "scope_policy": "explicit",
    "client_type": "confidential",
    "token_endpoint_auth_method": "client_secret_post",
    "owner": "root",
}


@pytest.fixture
def admin(visitor: FlaskClient, auth: AuthActions) -> FlaskClient:
    """The visitor, signed in as an administrator."""
    cookie = auth.admin("root").get_cookie(SESSION_COOKIE)
    assert cookie is not None
    return sign_in(visitor, cookie.value)


def client_credentials(api: LiveApi, client_id: str, secret: str) -> int:
    """Status of a client_credentials token request authenticated with client_secret_post."""
    response = requests.post(
        f"{api.url}/api/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
            "scope": "READ_PUBLISHED_THREADS",
        },
        timeout=10,
    )
    return response.status_code


def create(admin: FlaskClient, **changes: object) -> tuple[str, str | None, str]:
    """Register a client through the form; return (client id, secret, the page)."""
    response = admin.post("/admin/clients/new", data={**NEW_CLIENT, **changes})
    assert response.status_code == 200, response.get_data(as_text=True)
    page = response.get_data(as_text=True)
    client_id = CLIENT_ID_FIELD.search(page)
    assert client_id is not None
    secret = SECRET_FIELD.search(page)
    return client_id[1], secret[1] if secret else None, page


def test_members_get_a_friendly_403(visitor: FlaskClient, api: LiveApi) -> None:
    sign_in(visitor, api.signup("alice"))

    for path in ["/admin/clients", "/admin/clients/new", "/admin/clients/hc_x/delete"]:
        response = visitor.get(path)
        assert response.status_code == 403
        page = response.get_data(as_text=True)
        assert "<h1>Not allowed</h1>" in page
        assert "<p>Only administrators can manage the apps registered with Hearth.</p>" in page
    assert visitor.post("/admin/clients/new", data=NEW_CLIENT).status_code == 403
    assert ">Admin</a>" not in visitor.get("/").get_data(as_text=True)


def test_guests_are_sent_to_sign_in(visitor: FlaskClient, live_api: LiveServer) -> None:
    response = visitor.get("/admin/clients")

    assert response.status_code == 303
    assert response.headers["Location"] == "/login?return_url=/admin/clients"


def test_admin_lists_clients(admin: FlaskClient, pinboard: OAuthClient) -> None:
    response = admin.get("/admin/clients")

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert f'<a href="/admin/clients/{pinboard.client_id}">Pinboard</a>' in page
    assert f"<td><code>{pinboard.client_id}</code></td>" in page
    assert f'<code class="uri">{PINBOARD_REDIRECT}</code>' in page
    assert "<li><code>VIEW_ACCOUNTS</code></li>" in page
    assert '<a href="/admin/clients" aria-current="page">Admin</a>' in page
    assert '<a class="button" href="/admin/clients/new">Register a client</a>' in page


def test_create_form_offers_every_scope_the_server_supports(admin: FlaskClient) -> None:
    page = admin.get("/admin/clients/new").get_data(as_text=True)

    scopes = re.findall(r'<input type="checkbox" id="scopes-\d+" name="scopes" value="(\w+)"', page)
    assert scopes[:5] == ["openid", "profile", "email", "offline_access", "READ_PUBLISHED_THREADS"]
    assert scopes[-1] == "ADMINISTRATOR"
    assert len(scopes) == 18
    assert '<label for="name">Name</label>' in page
    assert '<label for="redirect_uris">Redirect URIs</label>' in page
    assert (
        '<input checked id="client_type-0" name="client_type" type="radio" value="confidential">'
        in page
    )
    assert 'name="grant_types" value="authorization_code" checked>' in page
    assert 'name="grant_types" value="client_credentials">' in page
    assert (
        '<button type="submit" name="action" value="create-client">Register client</button>' in page
    )


def test_admin_creates_a_client_and_sees_the_secret_once(admin: FlaskClient, api: LiveApi) -> None:
    client_id, secret, page = create(admin)

    assert secret is not None
    assert "<strong>Copy the client secret now.</strong>" in page
    assert "<h1>Client registered: Night Owl</h1>" in page
    assert f"<dd><code>{api.url}/api/oauth/token</code></dd>" in page
    assert client_credentials(api, client_id, secret) == 200
    assert client_credentials(api, client_id, secret + "x") == 401
    listed = admin.get("/admin/clients").get_data(as_text=True)
    assert f"<td><code>{client_id}</code></td>" in listed
    assert secret not in listed
    assert secret not in admin.get(f"/admin/clients/{client_id}").get_data(as_text=True)


def test_secret_page_is_never_stored(admin: FlaskClient) -> None:
    response = admin.post("/admin/clients/new", data=NEW_CLIENT)

    assert response.headers["Cache-Control"] == "no-store"


def test_public_client_has_no_secret(admin: FlaskClient, api: LiveApi, auth: AuthActions) -> None:
    client_id, secret, page = create(
        admin, client_type="public", grant_types=["authorization_code"], owner=""
    )

    assert secret is None
    assert "it has no secret and proves itself with PKCE" in page
    client = auth.signin("root").get(f"/api/admin/oauth/clients/{client_id}").get_json()
    assert (client["public"], client["token_endpoint_auth_method"]) == (True, "none")


def test_invalid_fields_are_shown_next_to_them(admin: FlaskClient) -> None:
    response = admin.post(
        "/admin/clients/new",
        data={**NEW_CLIENT, "redirect_uris": "https://ok.example/cb\n\nhttp://evil.example/cb"},
    )

    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert "<p>Some fields are invalid.</p>" in page
    assert (
        '<p class="field-error" id="redirect_uris-error">Redirect URIs (line 2) must use https '
        "unless the host is a loopback address</p>"
    ) in page
    # The list as sent, so "line 2" is the second line the admin sees.
    assert ">\r\nhttps://ok.example/cb\nhttp://evil.example/cb</textarea>" in page


def test_client_credentials_without_owner_is_explained(admin: FlaskClient) -> None:
    response = admin.post("/admin/clients/new", data={**NEW_CLIENT, "owner": ""})

    assert response.status_code == 400
    assert (
        '<p class="field-error" id="owner-error">Owner client_credentials needs an owning account</p>'
        in response.get_data(as_text=True)
    )


def test_admin_edits_redirect_uris_and_scopes(
    admin: FlaskClient, pinboard: OAuthClient, auth: AuthActions
) -> None:
    page = admin.get(f"/admin/clients/{pinboard.client_id}").get_data(as_text=True)
    assert f">\r\n{PINBOARD_REDIRECT}</textarea>" in page
    assert 'name="scopes" value="VIEW_ACCOUNTS" checked>' in page

    response = admin.post(
        f"/admin/clients/{pinboard.client_id}",
        data={
            "name": "Pinboard 2",
            "redirect_uris": "https://pinboard.example/new\nhttps://pinboard.example/other",
            "scopes": ["openid", "CREATE_POST"],
            "grant_types": ["authorization_code"],
            "scope_policy": "explicit",
        },
    )

    assert response.status_code == 303
    assert response.headers["Location"] == f"/admin/clients/{pinboard.client_id}"
    assert "Saved the changes to Pinboard 2." in admin.get(response.headers["Location"]).get_data(
        as_text=True
    )
    client = auth.signin("root").get(f"/api/admin/oauth/clients/{pinboard.client_id}").get_json()
    assert client["name"] == "Pinboard 2"
    assert client["redirect_uris"] == [
        "https://pinboard.example/new",
        "https://pinboard.example/other",
    ]
    assert client["scopes"] == ["openid", "CREATE_POST"]
    assert client["grants"] == ["authorization_code"]
    assert client["skip_consent"] is False


def test_admin_rotates_the_secret_after_confirming(
    admin: FlaskClient, api: LiveApi, pinboard: OAuthClient
) -> None:
    confirm = admin.get(f"/admin/clients/{pinboard.client_id}/secret").get_data(as_text=True)
    assert "<h1>Rotate the secret of Pinboard?</h1>" in confirm
    assert "The current secret stops working immediately" in confirm

    response = admin.post(f"/admin/clients/{pinboard.client_id}/secret")

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    page = response.get_data(as_text=True)
    secret = SECRET_FIELD.search(page)
    assert secret is not None
    assert "The previous secret has stopped working: update the app with this one." in page
    verifier, _ = pkce_pair()
    form = {"grant_type": "authorization_code", "code": "x", "code_verifier": verifier}
    assert api.token(pinboard, **form).status_code == 401
    rotated = OAuthClient(pinboard.client_id, secret[1], pinboard.redirect_uri, "", "")
    assert api.token(rotated, **form).status_code == 400  # authenticated; the code is bad


def test_admin_deletes_a_client_after_confirming(
    admin: FlaskClient, api: LiveApi, pinboard: OAuthClient
) -> None:
    token = api.signup("alice")
    tokens = api.authorized(token, pinboard, "openid offline_access")
    confirm = admin.get(f"/admin/clients/{pinboard.client_id}/delete")
    assert "<h1>Delete Pinboard?</h1>" in confirm.get_data(as_text=True)
    assert api.refresh(pinboard, tokens["refresh_token"]).status_code == 200

    response = admin.post(f"/admin/clients/{pinboard.client_id}/delete")

    assert response.status_code == 303
    assert response.headers["Location"] == "/admin/clients"
    page = admin.get("/admin/clients").get_data(as_text=True)
    assert "Deleted Pinboard. Every grant and token it held has been revoked." in page
    assert pinboard.client_id not in page
    assert admin.get(f"/admin/clients/{pinboard.client_id}").status_code == 404
    assert api.refresh(pinboard, tokens["refresh_token"]).status_code == 401


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/admin/clients/new", NEW_CLIENT),
        ("/admin/clients/{id}", {"name": "Hijacked", "redirect_uris": "https://evil.example/"}),
        ("/admin/clients/{id}/secret", {}),
        ("/admin/clients/{id}/delete", {}),
    ],
    ids=["create", "edit", "rotate", "delete"],
)
def test_admin_forms_reject_a_missing_csrf_token(
    csrf_web: Flask,
    auth: AuthActions,
    api: LiveApi,
    pinboard: OAuthClient,
    path: str,
    data: dict[str, object],
) -> None:
    root = auth.admin("root")
    cookie = root.get_cookie(SESSION_COOKIE)
    assert cookie is not None
    client = sign_in(csrf_web.test_client(), cookie.value)

    response = client.post(path.format(id=pinboard.client_id), data=data)

    assert response.status_code == 400
    clients = root.get("/api/admin/oauth/clients").get_json()["items"]
    assert [(c["client_id"], c["name"]) for c in clients] == [(pinboard.client_id, "Pinboard")]
    assert clients[0]["secret_rotated_at"] is None
