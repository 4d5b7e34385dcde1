"""Helpers shared by the frontend and browser tests: building the frontend, driving the live API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests
from flask import Flask
from flask.testing import FlaskClient

from frontend import create_frontend
from tests.conftest import PASSWORD, AuthActions

SESSION_COOKIE = "storyden-session"
WEB_SECRET_KEY = "frontend-test-secret-key-long-enough-0123456789"


def make_web(api_url: str, web_port: int, **overrides: Any) -> Flask:
    """The frontend configured as an operator would put it in front of the API at `api_url`."""
    web = create_frontend(
        {
            "API_INTERNAL_ADDRESS": api_url,
            "PUBLIC_API_ADDRESS": api_url,
            "PUBLIC_WEB_ADDRESS": f"http://127.0.0.1:{web_port}",
            "SECRET_KEY": WEB_SECRET_KEY,
            **overrides,
        }
    )
    web.testing = True
    return web


def sign_in(client: FlaskClient, token: str) -> FlaskClient:
    """Give a test client a session cookie, as if the API had set it."""
    client.set_cookie(SESSION_COOKIE, token)
    return client


class LiveApi:
    """Talk to the live API over HTTP the way a second browser would."""

    def __init__(self, url: str) -> None:
        self.url = url

    def request(
        self, method: str, path: str, token: str | None = None, json: Any = None
    ) -> requests.Response:
        cookies = {SESSION_COOKIE: token} if token else None
        return requests.request(method, self.url + path, json=json, cookies=cookies, timeout=10)

    def signup(self, handle: str, password: str = PASSWORD) -> str:
        """Create a member and return its session cookie value."""
        response = self.request(
            "POST", "/api/auth/password/signup", json={"handle": handle, "password": password}
        )
        assert response.status_code == 200, response.text
        return response.cookies[SESSION_COOKIE]

    def created(self, token: str, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.request("POST", path, token, body)
        assert response.status_code == 201, response.text
        data: dict[str, Any] = response.json()
        return data

    def whoami(self, token: str) -> requests.Response:
        return self.request("GET", "/api/accounts/self", token)


@dataclass
class Forum:
    admin_token: str
    category: dict[str, Any]
    thread: dict[str, Any]


def seed_forum(auth: AuthActions, api: LiveApi) -> Forum:
    """An administrator, a category and one thread with a reply, created through the API."""
    cookie = auth.admin("keeper").get_cookie(SESSION_COOKIE)
    assert cookie is not None
    token = cookie.value
    category = api.created(
        token, "/api/categories", {"name": "General", "description": "Anything goes"}
    )
    thread = api.created(
        token,
        "/api/threads",
        {"title": "Welcome to Hearth", "body": "Introduce yourself.", "category": category["slug"]},
    )
    api.created(token, f"/api/threads/{thread['slug']}/replies", {"body": "Glad to be here."})
    return Forum(token, category, thread)
