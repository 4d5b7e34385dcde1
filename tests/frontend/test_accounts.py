"""Sign in, sign up and sign out through the frontend's pages against the live API."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from tests.conftest import PASSWORD, LiveServer
from tests.frontend.support import SESSION_COOKIE, Forum, LiveApi, sign_in

# What the API sets, relayed unchanged: 90-day lifetime, HttpOnly, SameSite=Lax, host-only.
RELAYED_SESSION = re.compile(
    r"storyden-session=(?P<token>[A-Za-z0-9_-]{43}); "
    r"Expires=\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT; Max-Age=7776000; HttpOnly; Path=/; "
    r"SameSite=Lax"
)
CLEARED_SESSION = (
    "storyden-session=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; HttpOnly; Path=/; "
    "SameSite=Lax"
)
GENERIC_FAILURE = "The handle or password is incorrect."


def session_cookies(response: TestResponse) -> list[str]:
    headers = response.headers.getlist("Set-Cookie")
    return [value for value in headers if value.startswith(f"{SESSION_COOKIE}=")]


def relayed_token(response: TestResponse) -> str:
    (cookie,) = session_cookies(response)
    match = RELAYED_SESSION.fullmatch(cookie)
    assert match is not None, cookie
    return match["token"]


def test_login_page_keeps_return_url_in_form_and_signup_link(visitor: FlaskClient) -> None:
    response = visitor.get("/login?return_url=/t/welcome")

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert '<input id="return_url" name="return_url" type="hidden" value="/t/welcome">' in page
    assert '<a href="/signup?return_url=/t/welcome">Create an account</a>' in page
    assert '<label for="handle">Handle</label>' in page
    assert '<label for="password">Password</label>' in page
    assert '<button type="submit" name="action" value="signin">Sign in</button>' in page


def test_login_relays_session_cookie_and_follows_relative_return_url(
    visitor: FlaskClient, api: LiveApi
) -> None:
    api.signup("alice")

    response = visitor.post(
        "/login", data={"handle": "alice", "password": PASSWORD, "return_url": "/t/welcome?x=1"}
    )

    assert response.status_code == 303
    assert response.headers["Location"] == "/t/welcome?x=1"
    token = relayed_token(response)
    assert api.whoami(token).json()["handle"] == "alice"
    page = visitor.get("/").get_data(as_text=True)
    assert 'Signed in as <strong class="handle">alice</strong>' in page


@pytest.mark.parametrize(
    "return_url",
    [
        "{api}/api/oauth/authorize?client_id=demo&state=xyz",
        "{web}/t/welcome",
    ],
    ids=["api-origin", "web-origin"],
)
def test_login_follows_absolute_return_url_on_api_or_web_origin(
    visitor: FlaskClient,
    api: LiveApi,
    live_ports: dict[str, int],
    return_url: str,
) -> None:
    api.signup("alice")
    target = return_url.format(api=api.url, web=f"http://127.0.0.1:{live_ports['web']}")

    response = visitor.post(
        "/login", data={"handle": "alice", "password": PASSWORD, "return_url": target}
    )

    assert response.status_code == 303
    assert response.headers["Location"] == target


@pytest.mark.parametrize(
    "return_url",
    [
        "https://evil.example/",
        "//evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        "http://127.0.0.1:{api_port}@evil.example/",
        "http://127.0.0.1:{api_port}.evil.example/",
        "javascript:alert(1)",
        "evil.example",
        "http://[evil.example/",
    ],
)
def test_login_refuses_foreign_return_url_and_goes_home(
    visitor: FlaskClient, api: LiveApi, live_api: LiveServer, return_url: str
) -> None:
    api.signup("alice")
    target = return_url.format(api_port=live_api.url.rsplit(":", 1)[1])

    response = visitor.post(
        "/login", data={"handle": "alice", "password": PASSWORD, "return_url": target}
    )

    assert response.status_code == 303
    assert response.headers["Location"] == "/"


def test_one_visitors_session_never_reaches_another(
    web: Flask, visitor: FlaskClient, api: LiveApi
) -> None:
    api.signup("alice")
    visitor.post("/login", data={"handle": "alice", "password": PASSWORD})

    stranger = web.test_client().get("/")

    assert stranger.status_code == 200
    page = stranger.get_data(as_text=True)
    assert "alice" not in page
    assert '<a href="/login?return_url=/">Sign in</a>' in page


@pytest.mark.parametrize("handle", ["alice", "nobody"], ids=["wrong-password", "unknown-handle"])
def test_login_failure_shows_the_generic_message_without_a_cookie(
    visitor: FlaskClient, api: LiveApi, handle: str
) -> None:
    api.signup("alice")

    response = visitor.post(
        "/login", data={"handle": handle, "password": "not-the-password", "return_url": "/t/x"}
    )

    assert response.status_code == 401
    assert session_cookies(response) == []
    page = response.get_data(as_text=True)
    assert f'<div class="alert" role="alert">\n<p>{GENERIC_FAILURE}</p>' in page
    assert f'value="{handle}"' in page
    assert "not-the-password" not in page
    assert 'name="return_url" type="hidden" value="/t/x"' in page


def test_login_with_empty_fields_shows_errors_next_to_them(visitor: FlaskClient) -> None:
    response = visitor.post("/login", data={"handle": "", "password": ""})

    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert '<p class="field-error" id="handle-error">This field is required.</p>' in page
    assert '<p class="field-error" id="password-error">This field is required.</p>' in page
    assert 'aria-describedby="handle-error"' in page


def test_signup_creates_account_signs_in_and_follows_return_url(
    visitor: FlaskClient, api: LiveApi
) -> None:
    response = visitor.post(
        "/signup",
        data={
            "handle": "newcomer",
            "password": PASSWORD,
            "email": "newcomer@example.org",
            "return_url": "/t/welcome",
        },
    )

    assert response.status_code == 303
    assert response.headers["Location"] == "/t/welcome"
    account = api.whoami(relayed_token(response)).json()
    assert (account["handle"], account["email"], account["roles"]) == (
        "newcomer",
        "newcomer@example.org",
        ["member"],
    )


def test_signup_refuses_foreign_return_url(visitor: FlaskClient) -> None:
    response = visitor.post(
        "/signup",
        data={"handle": "newcomer", "password": PASSWORD, "return_url": "//evil.example/"},
    )

    assert response.status_code == 303
    assert response.headers["Location"] == "/"


def test_signup_with_taken_handle_shows_the_conflict(visitor: FlaskClient, api: LiveApi) -> None:
    api.signup("alice")

    response = visitor.post("/signup", data={"handle": "alice", "password": PASSWORD})

    assert response.status_code == 409
    assert session_cookies(response) == []
    page = response.get_data(as_text=True)
    assert "<p>That handle is already taken.</p>" in page
    assert '<p class="field-error" id="handle-error">Handle is already taken</p>' in page


def test_signup_with_weak_password_shows_the_api_reason_next_to_the_field(
    visitor: FlaskClient,
) -> None:
    response = visitor.post("/signup", data={"handle": "newcomer", "password": "short"})

    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert (
        '<p class="field-error" id="password-error">Password must be at least 8 characters</p>'
        in page
    )


def test_signup_page_links_to_login_with_return_url(visitor: FlaskClient) -> None:
    response = visitor.get("/signup?return_url=/t/welcome")

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert '<a href="/login?return_url=/t/welcome">Sign in</a>' in page
    assert '<label for="email">Email</label>' in page


def test_logout_page_asks_for_confirmation(visitor: FlaskClient, api: LiveApi) -> None:
    sign_in(visitor, api.signup("alice"))

    response = visitor.get("/logout")

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "You are signed in as <strong>alice</strong>." in page
    assert '<form method="post" action="/logout">' in page
    assert '<button type="submit" name="action" value="signout">Sign out</button>' in page


def test_logout_ends_the_api_session_and_clears_the_cookie(
    visitor: FlaskClient, api: LiveApi
) -> None:
    token = api.signup("alice")
    sign_in(visitor, token)

    response = visitor.post("/logout")

    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    assert session_cookies(response) == [CLEARED_SESSION]
    assert api.whoami(token).status_code == 401
    assert visitor.get_cookie(SESSION_COOKIE) is None
    assert '<a href="/login?return_url=/">Sign in</a>' in visitor.get("/").get_data(as_text=True)


def test_stale_session_cookie_reads_as_signed_out(visitor: FlaskClient, api: LiveApi) -> None:
    token = api.signup("alice")
    api.request("POST", "/api/auth/signout", token, {})
    sign_in(visitor, token)

    response = visitor.get("/")

    assert response.status_code == 200
    assert '<a href="/login?return_url=/">Sign in</a>' in response.get_data(as_text=True)


def test_malformed_session_cookie_is_never_forwarded(visitor: FlaskClient) -> None:
    visitor.set_cookie(SESSION_COOKIE, 'not a "token";\n')

    response = visitor.get("/")

    assert response.status_code == 200
    assert '<a href="/login?return_url=/">Sign in</a>' in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("return_url", "location"),
    [("/t/welcome", "/t/welcome"), ("https://evil.example/", "/"), ("", "/")],
)
def test_logout_follows_only_a_same_site_return_url(
    visitor: FlaskClient, api: LiveApi, return_url: str, location: str
) -> None:
    token = api.signup("alice")
    sign_in(visitor, token)
    page = visitor.get(f"/logout?return_url={return_url}").get_data(as_text=True)
    assert f'<input id="return_url" name="return_url" type="hidden" value="{return_url}">' in page

    response = visitor.post("/logout", data={"return_url": return_url})

    assert response.status_code == 303
    assert response.headers["Location"] == location
    assert api.whoami(token).status_code == 401


def test_header_links_to_settings_and_for_admins_to_admin(
    visitor: FlaskClient, api: LiveApi, forum: Forum
) -> None:
    sign_in(visitor, api.signup("alice"))
    page = visitor.get("/").get_data(as_text=True)
    assert '<a href="/settings/apps">Settings</a>' in page
    assert 'href="/admin/clients"' not in page

    sign_in(visitor, forum.admin_token)
    page = visitor.get("/").get_data(as_text=True)
    assert '<a href="/settings/apps">Settings</a>' in page
    assert '<a href="/admin/clients">Admin</a>' in page
