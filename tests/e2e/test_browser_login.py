"""A person signs up, signs in, reads, replies and signs out in a real Chromium."""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import PASSWORD, LiveServer
from tests.frontend.support import Forum

pytestmark = pytest.mark.browser


def test_member_signs_up_replies_signs_out_and_signs_back_in_to_the_api(
    page: Page,
    live_web: LiveServer,
    live_api: LiveServer,
    forum: Forum,
    screenshot: Callable[[str], None],
) -> None:
    thread_url = f"{live_web.url}/t/{forum.thread['slug']}"

    # A guest reads the thread and follows "Sign in" on it, then "Create an account".
    page.goto(thread_url)
    expect(page.get_by_role("heading", level=1)).to_have_text("Welcome to Hearth")
    page.get_by_role("main").get_by_role("link", name="Sign in").click()
    expect(page).to_have_url(f"{live_web.url}/login?return_url=/t/{forum.thread['slug']}")
    page.get_by_role("link", name="Create an account").click()
    page.get_by_label("Handle").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    screenshot("signup")
    page.get_by_role("button", name="Sign up").click()

    # Back on the thread, signed in.
    expect(page).to_have_url(thread_url)
    expect(page.locator("header .handle")).to_have_text("alice")
    screenshot("signed-in")

    page.get_by_label("Your reply").fill("Hello from a real browser!")
    page.get_by_role("button", name="Post reply").click()
    expect(page.locator(".reply .body").last).to_have_text("Hello from a real browser!")
    expect(page.get_by_role("heading", name="2 replies")).to_be_visible()
    screenshot("replied")

    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["storyden-session"]
    assert (session["httpOnly"], session["sameSite"], session["path"]) == (True, "Lax", "/")

    page.get_by_role("link", name="Sign out").click()
    screenshot("confirm-sign-out")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(f"{live_web.url}/")
    expect(page.locator("header")).to_contain_text("Sign in")
    expect(page.get_by_role("link", name="Welcome to Hearth")).to_be_visible()
    screenshot("signed-out")
    assert "storyden-session" not in {c["name"] for c in page.context.cookies()}

    # Signing in with a return_url on the API origin lands there with the session (as after an
    # OAuth /authorize redirect); the CSP form-action must allow that redirect.
    api_page = f"{live_api.url}/api/accounts/self"
    page.goto(f"{live_web.url}/login?return_url={quote(api_page, safe='')}")
    page.get_by_label("Handle").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    screenshot("sign-in")
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(api_page)
    assert json.loads(page.locator("body").inner_text())["handle"] == "alice"


def test_wrong_password_shows_the_generic_message(
    page: Page, live_web: LiveServer, forum: Forum, screenshot: Callable[[str], None]
) -> None:
    page.goto(f"{live_web.url}/login")
    page.get_by_label("Handle").fill("keeper")
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("alert")).to_have_text("The handle or password is incorrect.")
    expect(page.get_by_label("Handle")).to_have_value("keeper")
    screenshot("wrong-password")
