"""A guest signs in with GitHub (a local fake) in a real Chromium and manages sign-in methods."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from playwright.sync_api import Page, expect

import config
from app.extensions import Database
from tests.conftest import LiveServer, make_app
from tests.federation.conftest import GitHubServer
from tests.federation.fake_github import GitHubUser
from tests.frontend.support import Forum

pytestmark = pytest.mark.browser


@pytest.fixture
def live_api(
    database_url: str, live_ports: dict[str, int], github: GitHubServer
) -> Iterator[LiveServer]:
    """The live API with GitHub sign-in enabled through config.py, GitHub played by the fake."""
    api_url = f"http://127.0.0.1:{live_ports['api']}"
    web_url = f"http://127.0.0.1:{live_ports['web']}"
    app = make_app(
        database_url,
        PUBLIC_API_ADDRESS=api_url,
        PUBLIC_WEB_ADDRESS=web_url,
        OAUTH_AUTHORISATION_CODE_CONSENT_URL=f"{web_url}/oauth/authorize/consent",
        OAUTH_AUTHORISATION_LOGIN_URL=f"{web_url}/login",
        **config.federation_settings(github.env(), web_url),
    )
    server = LiveServer(app, live_ports["api"]).start()
    yield server
    server.stop()
    Database.dispose(app)


def test_guest_signs_in_with_github_and_sees_it_in_sign_in_settings(
    page: Page,
    live_web: LiveServer,
    live_api: LiveServer,
    github: GitHubServer,
    forum: Forum,
    screenshot: Callable[[str], None],
) -> None:
    github.fake.add(GitHubUser(id=4242, login="octocat", name="The Octocat"))
    github.fake.next_login = "octocat"  # GitHub approves at once, as for an app already allowed
    thread_url = f"{live_web.url}/t/{forum.thread['slug']}"

    # A guest reading a thread follows "Sign in", then "Sign in with GitHub".
    page.goto(thread_url)
    page.get_by_role("main").get_by_role("link", name="Sign in").click()
    expect(page).to_have_url(f"{live_web.url}/login?return_url=/t/{forum.thread['slug']}")
    expect(page.get_by_role("link", name="Sign in with GitHub")).to_be_visible()
    screenshot("login-with-providers")
    page.get_by_role("link", name="Sign in with GitHub").click()

    # Through GitHub and the API's callback, back on the thread and signed in.
    expect(page).to_have_url(thread_url)
    expect(page.locator("header .handle")).to_have_text("octocat")
    assert github.fake.authorize_params[0]["redirect_uri"] == (
        f"{live_api.url}/api/auth/oauth/github/callback"
    )
    cookies = {cookie["name"]: cookie for cookie in page.context.cookies()}
    binding = cookies["hearth-login"]
    assert (binding["httpOnly"], binding["sameSite"], binding["path"]) == (
        True,
        "Lax",
        "/api/auth/oauth",
    )
    assert cookies["storyden-session"]["httpOnly"] is True

    # Settings → Sign-in methods lists GitHub; it is the account's only way in.
    page.get_by_role("navigation", name="Account").get_by_role("link", name="Settings").click()
    page.get_by_role("navigation", name="Settings").get_by_role(
        "link", name="Sign-in methods"
    ).click()
    expect(page).to_have_url(f"{live_web.url}/settings/sign-in")
    expect(page.get_by_role("heading", name="GitHub")).to_be_visible()
    expect(page.locator(".facts dd code")).to_have_text("4242")
    screenshot("sign-in-settings")
    page.get_by_role("button", name="Unlink").click()
    expect(page.get_by_role("alert")).to_have_text(
        "This is your only way to sign in; set a password or link another provider first."
    )
    expect(page.get_by_role("heading", name="GitHub")).to_be_visible()
    screenshot("unlink-refused")
