"""Signing in and linking accounts with an upstream provider through the frontend's pages.

The live API runs with the fake GitHub of tests/federation and "Forge", an OpenID Connect issuer
whose address answers nothing. The browser's part is walked by hand: the frontend's answer goes
to the fake GitHub, whose redirect goes to the API's callback with the cookies a browser would
send there, whose redirect comes back to the frontend.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

import config
from app.extensions import Database
from tests.conftest import LiveServer, free_port, make_app
from tests.federation.conftest import GitHubServer
from tests.federation.fake_github import CLIENT_ID as GITHUB_CLIENT_ID
from tests.federation.fake_github import GitHubUser
from tests.frontend.support import SESSION_COOKIE, LiveApi, make_web, sign_in

LOGIN_COOKIE = "hearth-login"
# What the API sets, relayed unchanged: ten minutes, HttpOnly, only for the API's sign-in paths.
RELAYED_LOGIN_COOKIE = re.compile(
    r"hearth-login=(?P<binding>[A-Za-z0-9_-]{43}); "
    r"Expires=\w{3}, \d{2} \w{3} \d{4} \d{2}:\d{2}:\d{2} GMT; Max-Age=600; HttpOnly; "
    r"Path=/api/auth/oauth; SameSite=Lax"
)
UPSTREAM_LINK = re.compile(
    r'<a class="button secondary-button upstream-button" href="(?P<href>[^"]+)">(?P<text>[^<]+)</a>'
)
STALE = (
    "This sign-in button has expired or did not come from this site. "
    "Go back, reload the page and try again."
)
LAST_WAY_IN = "This is your only way to sign in; set a password or link another provider first."
OCTOCAT = GitHubUser(id=4242, login="octocat", name="The Octocat")


@pytest.fixture
def upstream(github: GitHubServer) -> dict[str, str]:
    """GitHub (the fake) and Forge, a generic OpenID Connect issuer that is down."""
    return {
        **github.env(),
        "OIDC_PROVIDERS": "forge",
        "OIDC_PROVIDER_FORGE_ISSUER": f"http://127.0.0.1:{free_port()}",
        "OIDC_PROVIDER_FORGE_CLIENT_ID": "hearth",
        "OIDC_PROVIDER_FORGE_DISPLAY_NAME": "Forge & Co",
    }


@pytest.fixture
def live_api(
    database_url: str, live_ports: dict[str, int], upstream: dict[str, str]
) -> Iterator[LiveServer]:
    """The live API with the `upstream` providers enabled through config.py."""
    api_url = f"http://127.0.0.1:{live_ports['api']}"
    web_url = f"http://127.0.0.1:{live_ports['web']}"
    app = make_app(
        database_url,
        PUBLIC_API_ADDRESS=api_url,
        PUBLIC_WEB_ADDRESS=web_url,
        OAUTH_AUTHORISATION_CODE_CONSENT_URL=f"{web_url}/oauth/authorize/consent",
        OAUTH_AUTHORISATION_LOGIN_URL=f"{web_url}/login",
        **config.federation_settings(upstream, web_url),
    )
    server = LiveServer(app, live_ports["api"]).start()
    yield server
    server.stop()
    Database.dispose(app)


@pytest.fixture
def octocat(github: GitHubServer) -> GitHubUser:
    """A GitHub user who approves Hearth when asked."""
    github.fake.add(OCTOCAT)
    github.fake.next_login = OCTOCAT.login
    return OCTOCAT


def upstream_links(page: str) -> dict[str, str]:
    """The provider buttons on a page: their text and the address they lead to."""
    return {match["text"]: html.unescape(match["href"]) for match in UPSTREAM_LINK.finditer(page)}


def relayed_binding(response: TestResponse) -> str:
    (cookie,) = response.headers.getlist("Set-Cookie")
    match = RELAYED_LOGIN_COOKIE.fullmatch(cookie)
    assert match is not None, cookie
    return match["binding"]


def local(url: str) -> str:
    """A frontend URL as the test client asks for it (its cookies belong to its own host)."""
    return urlsplit(url)._replace(scheme="", netloc="").geturl()


def through_github(start: TestResponse, session: str | None = None) -> requests.Response:
    """Follow the start's redirect to GitHub, and GitHub's to the API's callback, as a browser.

    The browser got the `hearth-login` cookie from the frontend; web and API share a host here
    (as `localhost:3000` and `localhost:8000` do), so it sends it to the callback's path.
    """
    assert start.status_code == 303, start.get_data(as_text=True)
    approved = requests.get(start.headers["Location"], allow_redirects=False, timeout=10)
    assert approved.status_code == 302, approved.text
    cookies = {LOGIN_COOKIE: relayed_binding(start)}
    if session is not None:
        cookies[SESSION_COOKIE] = session
    return requests.get(
        approved.headers["Location"], cookies=cookies, allow_redirects=False, timeout=10
    )


def sign_in_with_github(visitor: FlaskClient, return_url: str = "/") -> requests.Response:
    """Press "Sign in with GitHub" on the login page; return the API callback's answer."""
    page = visitor.get("/login", query_string={"return_url": return_url}).get_data(as_text=True)
    return through_github(visitor.get(upstream_links(page)["Sign in with GitHub"]))


def test_login_and_signup_offer_each_enabled_provider(
    visitor: FlaskClient, live_api: LiveServer
) -> None:
    login = visitor.get("/login?return_url=/t/welcome")
    signup = visitor.get("/signup?return_url=/t/welcome")

    assert login.status_code == signup.status_code == 200
    page = login.get_data(as_text=True)
    assert '<p class="divider"><span>or</span></p>' in page
    links = upstream_links(page)
    assert list(links) == ["Sign in with GitHub", "Sign in with Forge &amp; Co"]
    github_start = urlsplit(links["Sign in with GitHub"])
    assert github_start.path == "/auth/oauth/github/start"
    assert parse_qs(github_start.query)["return_url"] == ["/t/welcome"]
    assert urlsplit(links["Sign in with Forge &amp; Co"]).path == "/auth/oauth/forge/start"
    assert list(upstream_links(signup.get_data(as_text=True))) == [
        "Sign up with GitHub",
        "Sign up with Forge &amp; Co",
    ]
    # Links, not form posts: the page's form-action still names only this site and the API.
    assert login.headers["Content-Security-Policy"] == (
        "default-src 'self'; base-uri 'none'; frame-ancestors 'none'; "
        f"form-action 'self' {live_api.url}"
    )


@pytest.mark.parametrize("upstream", [{}], ids=["none-enabled"])
def test_login_without_enabled_providers_has_no_provider_section(visitor: FlaskClient) -> None:
    for path in ("/login", "/signup"):
        page = visitor.get(path).get_data(as_text=True)

        assert "upstream" not in page
        assert '<p class="divider">' not in page


def test_start_relays_the_login_cookie_and_redirects_to_github(
    csrf_web: Flask, live_api: LiveServer, github: GitHubServer
) -> None:
    browser = csrf_web.test_client()
    page = browser.get("/login?return_url=/t/welcome").get_data(as_text=True)

    response = browser.get(upstream_links(page)["Sign in with GitHub"])

    assert response.status_code == 303
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == (
        f"{github.url}/login/oauth/authorize"
    )
    asked = {key: values[0] for key, values in parse_qs(location.query).items()}
    assert asked["client_id"] == GITHUB_CLIENT_ID
    assert asked["redirect_uri"] == f"{live_api.url}/api/auth/oauth/github/callback"
    assert asked["code_challenge_method"] == "S256"
    assert len(asked["state"]) >= 43
    # The browser binding is the only cookie: the frontend's own session is left as it was.
    relayed_binding(response)
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_sign_in_with_github_returns_signed_in_to_the_return_url(
    visitor: FlaskClient, api: LiveApi, octocat: GitHubUser
) -> None:
    callback = sign_in_with_github(visitor, "/t/welcome?x=1")

    assert callback.status_code == 302
    finish = callback.headers["Location"]
    assert urlsplit(finish).path == "/auth/oauth/finish"
    assert api.whoami(callback.cookies[SESSION_COOKIE]).json()["handle"] == "octocat"
    response = visitor.get(local(finish))
    assert response.status_code == 303
    assert response.headers["Location"] == "/t/welcome?x=1"


def test_start_without_its_token_is_refused(csrf_web: Flask, live_api: LiveServer) -> None:
    browser = csrf_web.test_client()
    browser.get("/login")  # the frontend session exists: only the token is missing or foreign
    foreign = upstream_links(csrf_web.test_client().get("/login").get_data(as_text=True))

    for path in ("/auth/oauth/github/start", foreign["Sign in with GitHub"]):
        response = browser.get(path)

        assert response.status_code == 400
        assert f"<p>{STALE}</p>" in response.get_data(as_text=True)
        assert response.headers.getlist("Set-Cookie") == []


def test_unknown_provider_shows_an_error_page(visitor: FlaskClient, live_api: LiveServer) -> None:
    for provider in ("gitlab", "GitHub", "git..hub"):
        response = visitor.get(f"/auth/oauth/{provider}/start")

        assert response.status_code == 400
        page = response.get_data(as_text=True)
        assert "<h1>Unknown sign-in provider</h1>" in page
        assert "This forum does not offer signing in with that provider." in page
        assert response.headers.getlist("Set-Cookie") == []


def test_unavailable_provider_shows_an_error_page(
    visitor: FlaskClient, live_api: LiveServer
) -> None:
    response = visitor.get("/auth/oauth/forge/start")

    assert response.status_code == 503
    page = response.get_data(as_text=True)
    assert "<h1>The provider is unavailable</h1>" in page
    assert "We could not reach that sign-in provider." in page


def test_start_while_the_api_is_down_shows_the_unavailable_page(
    live_ports: dict[str, int],
) -> None:
    web = make_web(f"http://127.0.0.1:{free_port()}", live_ports["web"], WTF_CSRF_ENABLED=False)

    response = web.test_client().get("/auth/oauth/github/start")

    assert response.status_code == 502
    assert "We could not reach the forum service." in response.get_data(as_text=True)


def test_cancelled_sign_in_returns_to_the_login_page_with_a_message(
    visitor: FlaskClient, github: GitHubServer
) -> None:
    github.fake.next_login = None  # the person clicks Cancel at GitHub

    callback = sign_in_with_github(visitor, "/t/welcome")

    assert callback.status_code == 302
    assert SESSION_COOKIE not in callback.cookies
    finish = visitor.get(local(callback.headers["Location"]))
    assert finish.status_code == 303
    assert finish.headers["Location"] == "/login?return_url=/t/welcome&error=access_denied"
    page = visitor.get(finish.headers["Location"]).get_data(as_text=True)
    assert '<div class="alert" role="alert"><p>You cancelled signing in with the provider.</p>' in (
        page
    )
    assert '<input id="return_url" name="return_url" type="hidden" value="/t/welcome">' in page


@pytest.mark.parametrize(
    ("error", "message"),
    [
        ("access_denied", "You cancelled signing in with the provider."),
        ("invalid_state", "That sign-in link has expired or was already used; try again."),
        ("expired_state", "That sign-in link has expired or was already used; try again."),
        ("provider_unavailable", "We could not sign you in with that provider."),
        ("provider_error", "We could not sign you in with that provider."),
        ("invalid_id_token", "We could not sign you in with that provider."),
        ("<script>", "We could not sign you in with that provider."),
    ],
)
def test_login_page_explains_a_failed_upstream_sign_in(
    visitor: FlaskClient, live_api: LiveServer, error: str, message: str
) -> None:
    response = visitor.get("/login", query_string={"error": error})

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert f'<div class="alert" role="alert"><p>{message}</p></div>' in page
    assert "<script>" not in page


def test_finish_follows_only_a_safe_return_url(visitor: FlaskClient, live_api: LiveServer) -> None:
    response = visitor.get("/auth/oauth/finish?return_url=https://evil.example/")

    assert response.status_code == 303
    assert response.headers["Location"] == "/"


def test_sign_in_settings_list_identities_and_offer_the_other_providers(
    visitor: FlaskClient, api: LiveApi, octocat: GitHubUser
) -> None:
    token = sign_in_with_github(visitor).cookies[SESSION_COOKIE]
    sign_in(visitor, token)

    response = visitor.get("/settings/sign-in")

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "<title>Sign-in methods · Hearth</title>" in page
    assert '<h2 id="identity-github">GitHub</h2>' in page
    assert "<dt>Account at GitHub</dt>\n<dd><code>4242</code></dd>" in page.replace("  ", "")
    assert re.search(r"<dt>Linked</dt>\s*<dd><time datetime=\"[0-9T:-]+Z\">", page)
    assert '<button type="submit" class="danger-button" name="action" value="unlink"' in page
    links = upstream_links(page)
    assert list(links) == ["Link Forge &amp; Co"]
    assert parse_qs(urlsplit(links["Link Forge &amp; Co"]).query)["type"] == ["link"]
    assert '<a href="/settings/sign-in" aria-current="page">Sign-in methods</a>' in page
    assert '<a href="/settings/apps" aria-current="page">Settings</a>' in page
    apps = visitor.get("/settings/apps").get_data(as_text=True)
    assert '<a href="/settings/sign-in">Sign-in methods</a>' in apps


def test_unlinking_the_only_way_to_sign_in_is_refused_with_a_reason(
    visitor: FlaskClient, api: LiveApi, octocat: GitHubUser
) -> None:
    token = sign_in_with_github(visitor).cookies[SESSION_COOKIE]
    sign_in(visitor, token)

    response = visitor.post("/settings/sign-in", data={"provider": "github"})

    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert f'<div class="alert" role="alert"><p>{LAST_WAY_IN}</p></div>' in page
    assert '<h2 id="identity-github">GitHub</h2>' in page
    identities = api.request("GET", "/api/accounts/self/identities", token).json()["items"]
    assert [identity["provider"] for identity in identities] == ["github"]


def test_link_github_to_a_password_account_then_unlink_it(
    visitor: FlaskClient, api: LiveApi, octocat: GitHubUser, live_ports: dict[str, int]
) -> None:
    token = api.signup("alice")
    sign_in(visitor, token)
    page = visitor.get("/settings/sign-in").get_data(as_text=True)
    assert "No other service is linked to your account yet" in page
    link = upstream_links(page)["Link GitHub"]
    assert parse_qs(urlsplit(link).query)["type"] == ["link"]

    callback = through_github(visitor.get(link), session=token)

    assert callback.status_code == 302
    back = f"http://127.0.0.1:{live_ports['web']}/settings/sign-in?linked=github"
    assert callback.headers["Location"] == back
    # Linked to the signed-in account, not a new one signed in instead.
    assert SESSION_COOKIE not in callback.cookies
    identities = api.request("GET", "/api/accounts/self/identities", token).json()["items"]
    assert [(i["provider"], i["subject"]) for i in identities] == [("github", "4242")]
    page = visitor.get(local(back)).get_data(as_text=True)
    assert "<p>GitHub is now linked: you can sign in with it.</p>" in page
    assert '<h2 id="identity-github">GitHub</h2>' in page

    response = visitor.post("/settings/sign-in", data={"provider": "github"})

    assert response.status_code == 303
    assert response.headers["Location"] == "/settings/sign-in"
    page = visitor.get("/settings/sign-in").get_data(as_text=True)
    assert "<p>GitHub is no longer linked to your account.</p>" in page
    assert 'id="identity-github"' not in page
    assert api.request("GET", "/api/accounts/self/identities", token).json()["items"] == []


def test_link_start_without_a_session_goes_to_sign_in(
    visitor: FlaskClient, live_api: LiveServer
) -> None:
    response = visitor.get("/auth/oauth/github/start?type=link")

    assert response.status_code == 303
    assert response.headers["Location"] == "/login?return_url=/settings/sign-in"
    assert response.headers.getlist("Set-Cookie") == []


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("error=access_denied", "You cancelled linking with the provider."),
        (
            "error=identity_in_use",
            "That account at the provider is already linked to another account here.",
        ),
        ("error=server_error", "We could not link that provider."),
    ],
)
def test_sign_in_settings_explain_a_failed_link(
    visitor: FlaskClient, api: LiveApi, query: str, message: str
) -> None:
    sign_in(visitor, api.signup("alice"))

    page = visitor.get(f"/settings/sign-in?linked=github&{query}").get_data(as_text=True)

    assert f'<div class="alert" role="alert"><p>{message}</p></div>' in page
    assert "is now linked" not in page


def test_sign_in_settings_announce_only_a_link_that_exists(
    visitor: FlaskClient, api: LiveApi
) -> None:
    sign_in(visitor, api.signup("alice"))

    page = visitor.get("/settings/sign-in?linked=github").get_data(as_text=True)

    assert "is now linked" not in page


def test_unlink_without_csrf_token_is_rejected(
    csrf_web: Flask, visitor: FlaskClient, api: LiveApi, octocat: GitHubUser
) -> None:
    token = sign_in_with_github(visitor).cookies[SESSION_COOKIE]
    browser = sign_in(csrf_web.test_client(), token)

    response = browser.post("/settings/sign-in", data={"provider": "github"})

    assert response.status_code == 400
    identities = api.request("GET", "/api/accounts/self/identities", token).json()["items"]
    assert len(identities) == 1


def test_sign_in_settings_need_a_session(visitor: FlaskClient, live_api: LiveServer) -> None:
    response = visitor.get("/settings/sign-in")

    assert response.status_code == 303
    assert response.headers["Location"] == "/login?return_url=/settings/sign-in"
