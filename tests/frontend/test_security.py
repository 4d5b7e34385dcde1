"""CSRF tokens on every form, anti-framing and referrer headers, and the frontend's own cookie."""

from __future__ import annotations

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import PASSWORD, LiveServer, free_port
from tests.frontend.support import (
    SESSION_COOKIE,
    Forum,
    LiveApi,
    OAuthClient,
    make_web,
    sign_in,
)

CSRF_FIELD = re.compile(r'<input id="csrf_token" name="csrf_token" type="hidden" value="([^"]+)">')
CSRF_REFUSAL = (
    "This form has expired or did not come from this site. Go back, reload the page and try again."
)


def csrf_token(client: FlaskClient, path: str) -> str:
    match = CSRF_FIELD.search(client.get(path).get_data(as_text=True))
    assert match is not None
    return match[1]


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/login",
        "/signup",
        "/logout",
        "/t/no-such-thread",
        "/no-such-page",
        "/oauth/authorize/consent",
        "/settings/apps",
    ],
)
def test_every_page_forbids_framing_sniffing_and_referrers(
    visitor: FlaskClient, live_api: LiveServer, path: str
) -> None:
    response = visitor.get(path)

    assert response.mimetype == "text/html"
    assert response.headers["Content-Security-Policy"] == (
        "default-src 'self'; base-uri 'none'; frame-ancestors 'none'; "
        f"form-action 'self' {live_api.url}"
    )
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"


def test_frontend_session_cookie_is_its_own_and_never_the_api_cookie(csrf_web: Flask) -> None:
    response = csrf_web.test_client().get("/login")

    (cookie,) = response.headers.getlist("Set-Cookie")
    assert cookie.startswith("hearth-web-session=")
    assert cookie.endswith("; HttpOnly; Path=/; SameSite=Lax")
    assert "Domain=" not in cookie


def test_login_without_csrf_token_is_rejected(csrf_web: Flask, api: LiveApi) -> None:
    api.signup("alice")
    client = csrf_web.test_client()
    client.get("/login")

    response = client.post("/login", data={"handle": "alice", "password": PASSWORD})

    assert response.status_code == 400
    assert response.mimetype == "text/html"
    assert f"<p>{CSRF_REFUSAL}</p>" in response.get_data(as_text=True)
    assert not any(
        value.startswith(f"{SESSION_COOKIE}=") for value in response.headers.getlist("Set-Cookie")
    )


def test_login_with_csrf_token_signs_in(csrf_web: Flask, api: LiveApi) -> None:
    api.signup("alice")
    client = csrf_web.test_client()

    response = client.post(
        "/login",
        data={"handle": "alice", "password": PASSWORD, "csrf_token": csrf_token(client, "/login")},
    )

    assert response.status_code == 303
    assert response.headers["Location"] == "/"


def test_https_form_post_needs_no_referer_because_pages_send_none(
    csrf_web: Flask, api: LiveApi
) -> None:
    api.signup("alice")
    client = csrf_web.test_client()
    token = csrf_token(client, "https://localhost/login")

    response = client.post(
        "https://localhost/login",
        data={"handle": "alice", "password": PASSWORD, "csrf_token": token},
    )

    assert response.status_code == 303


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/signup", {"handle": "mallory", "password": PASSWORD}),
        ("/logout", {}),
        ("/", {"title": "Spam", "body": "Spam", "category": "general"}),
        ("/t/{slug}", {"body": "Spam"}),
    ],
    ids=["signup", "logout", "new-thread", "reply"],
)
def test_cross_site_form_posts_without_token_are_rejected(
    csrf_web: Flask, forum: Forum, api: LiveApi, path: str, data: dict[str, str]
) -> None:
    token = api.signup("alice")
    client = sign_in(csrf_web.test_client(), token)

    response = client.post(path.format(slug=forum.thread["slug"]), data=data)

    assert response.status_code == 400
    assert f"<p>{CSRF_REFUSAL}</p>" in response.get_data(as_text=True)
    assert api.whoami(token).status_code == 200
    thread = api.request("GET", f"/api/threads/{forum.thread['slug']}").json()
    assert len(thread["replies"]) == 1
    assert api.request("GET", "/api/threads").json()["items"][0]["title"] == "Welcome to Hearth"


def test_browser_origin_is_not_forwarded_to_the_api(visitor: FlaskClient, api: LiveApi) -> None:
    api.signup("alice")

    # The API refuses cookie writes from foreign origins; the frontend's own call has no Origin.
    response = visitor.post(
        "/login",
        data={"handle": "alice", "password": PASSWORD},
        headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    )

    assert response.status_code == 303


def test_consent_form_without_csrf_token_is_rejected_and_the_request_survives(
    csrf_web: Flask, api: LiveApi, pinboard: OAuthClient
) -> None:
    token = api.signup("alice")
    request_id = api.start_consent(token, pinboard, "openid profile")
    client = sign_in(csrf_web.test_client(), token)
    consent = f"/oauth/authorize/consent?request_id={request_id}"
    client.get(consent)

    response = client.post(
        "/oauth/authorize/consent", data={"request_id": request_id, "decision": "approve"}
    )

    assert response.status_code == 400
    assert f"<p>{CSRF_REFUSAL}</p>" in response.get_data(as_text=True)
    assert "Location" not in response.headers
    assert client.get(consent).status_code == 200


def test_consent_form_with_csrf_token_is_accepted(
    csrf_web: Flask, api: LiveApi, pinboard: OAuthClient
) -> None:
    token = api.signup("alice")
    request_id = api.start_consent(token, pinboard, "openid profile")
    client = sign_in(csrf_web.test_client(), token)

    response = client.post(
        "/oauth/authorize/consent",
        data={
            "request_id": request_id,
            "decision": "deny",
            "csrf_token": csrf_token(client, f"/oauth/authorize/consent?request_id={request_id}"),
        },
    )

    assert response.status_code == 303
    assert "error=access_denied" in response.headers["Location"]


class _Recorder(BaseHTTPRequestHandler):
    """Stands in for the API just long enough to show what the frontend sends it."""

    seen: ClassVar[list[dict[str, str]]] = []

    def do_GET(self) -> None:
        self.seen.append(dict(self.headers))
        body = b'{"error": "unauthenticated", "error_description": "Sign in to continue."}'
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_browser_address_is_forwarded_and_its_headers_are_not() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        web = make_web(f"http://127.0.0.1:{server.server_port}", free_port())
        browser = sign_in(web.test_client(), "a-session-token")
        browser.set_cookie("other", "1")
        browser.get(
            "/",
            environ_base={"REMOTE_ADDR": "203.0.113.9"},
            headers={"X-Forwarded-For": "198.51.100.1", "Origin": "https://evil.example"},
        )
    finally:
        server.shutdown()
        thread.join(timeout=5)

    whoami = _Recorder.seen[0]
    # The browser's own X-Forwarded-For is its word, not a fact: only the address it came from.
    assert whoami["X-Forwarded-For"] == "203.0.113.9"
    assert whoami["Cookie"] == f"{SESSION_COOKIE}=a-session-token"
    assert "Origin" not in whoami
