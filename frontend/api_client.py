"""The Hearth API as the frontend sees it: the only module that knows API URLs.

Calls go server-to-server to `API_INTERNAL_ADDRESS`, carrying the browser's `storyden-session`
cookie and nothing else the browser sent (no Origin, no Referer), so the API judges the request
by its session alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from http.cookiejar import DefaultCookiePolicy
from typing import Any

import requests
from flask import current_app, request

SESSION_COOKIE = "storyden-session"
TIMEOUT_SECONDS = 5.0

Json = dict[str, Any]

# What `secrets.token_urlsafe` produces; anything else cannot be a session and must not reach a
# request header (a quoted cookie may decode to control characters).
_SESSION_VALUE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_SLUG = re.compile(r"^[A-Za-z0-9_-]{1,200}$")


class ApiError(Exception):
    """The API answered with a non-2xx JSON error: `{"error", "error_description", "fields"?}`."""

    def __init__(
        self, status: int, error: str, description: str, fields: dict[str, str] | None = None
    ) -> None:
        super().__init__(f"{status} {error}: {description}")
        self.status = status
        self.error = error
        self.description = description
        self.fields = fields or {}


class ApiUnavailable(Exception):
    """The API could not be reached or did not answer with JSON."""


@dataclass(frozen=True)
class ApiResponse:
    """A successful answer: its JSON body and any `storyden-session` cookies it set."""

    data: Json
    session_cookies: list[str] = field(default_factory=list)


class ApiClient:
    """One connection pool to the API, shared by every visitor, so it never keeps a cookie."""

    def __init__(self, base_url: str, timeout: float = TIMEOUT_SECONDS) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.http = requests.Session()
        # A cookie stored here would be sent on behalf of the next visitor: store none.
        self.http.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Json | None = None,
        params: dict[str, str | None] | None = None,
    ) -> ApiResponse:
        """Send one request with the browser's session cookie; raise on anything but 2xx JSON."""
        headers = {"Accept": "application/json"}
        token = request.cookies.get(SESSION_COOKIE)
        if token and _SESSION_VALUE.match(token):
            headers["Cookie"] = f"{SESSION_COOKIE}={token}"
        try:
            response = self.http.request(
                method,
                self.base_url + path,
                params={k: v for k, v in (params or {}).items() if v},
                json=json,
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as error:
            raise ApiUnavailable(f"{method} {path}: {error.__class__.__name__}") from error
        body = {} if response.status_code == 204 else _json_object(response)
        if body is None:
            raise ApiUnavailable(f"{method} {path}: {response.status_code} without a JSON body")
        if not response.ok:
            fields = body.get("fields")
            raise ApiError(
                response.status_code,
                str(body.get("error", "error")),
                str(body.get("error_description", "The request failed.")),
                {str(k): str(v) for k, v in fields.items()} if isinstance(fields, dict) else None,
            )
        cookies = [
            value
            for value in response.raw.headers.getlist("Set-Cookie")
            if value.startswith(f"{SESSION_COOKIE}=")
        ]
        return ApiResponse(body, cookies)

    def signin(self, handle: str, password: str) -> ApiResponse:
        return self.call(
            "POST", "/api/auth/password/signin", json={"handle": handle, "password": password}
        )

    def signup(self, handle: str, password: str, email: str | None) -> ApiResponse:
        body: Json = {"handle": handle, "password": password}
        if email:
            body["email"] = email
        return self.call("POST", "/api/auth/password/signup", json=body)

    def signout(self) -> ApiResponse:
        return self.call("POST", "/api/auth/signout", json={})

    def current_account(self) -> Json | None:
        """The signed-in account, or None when the browser has no valid session."""
        if not request.cookies.get(SESSION_COOKIE):
            return None
        try:
            return self.call("GET", "/api/accounts/self").data
        except ApiError as error:
            if error.status == 401:
                return None
            raise

    def categories(self) -> list[Json]:
        items: list[Json] = self.call("GET", "/api/categories").data["items"]
        return items

    def threads(self, category: str | None = None, cursor: str | None = None) -> Json:
        params = {"category": category, "cursor": cursor}
        return self.call("GET", "/api/threads", params=params).data

    def thread(self, slug: str) -> Json:
        return self.call("GET", f"/api/threads/{_segment(slug)}").data

    def create_thread(self, title: str, body: str, category: str) -> Json:
        thread = {"title": title, "body": body, "category": category}
        return self.call("POST", "/api/threads", json=thread).data

    def create_reply(self, slug: str, body: str) -> Json:
        return self.call("POST", f"/api/threads/{_segment(slug)}/replies", json={"body": body}).data

    def ready(self) -> bool:
        try:
            response = self.http.get(f"{self.base_url}/health/ready", timeout=self.timeout)
        except requests.RequestException:
            return False
        return response.status_code == 200


def _segment(slug: str) -> str:
    """Refuse a slug with dots, slashes or escapes, which could walk to another API route."""
    if not _SLUG.match(slug):
        raise ApiError(404, "not_found", "No thread has that slug.")
    return slug


def _json_object(response: requests.Response) -> Json | None:
    if response.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def api() -> ApiClient:
    """The API client of the running frontend."""
    client: ApiClient = current_app.extensions["hearth_api"]
    return client
