"""The Hearth API as the frontend sees it: the only module that knows API URLs.

Calls go server-to-server to `API_INTERNAL_ADDRESS`, carrying the browser's `storyden-session`
cookie and address (as `X-Forwarded-For`) and nothing else the browser sent (no Origin, no
Referer), so the API judges the request by its session alone. The cookies the API sets for the
browser (the session, and the binding of an upstream sign-in) come back for the views to relay.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from http.cookiejar import DefaultCookiePolicy
from typing import Any
from urllib.parse import parse_qs

import requests
from flask import current_app, request

SESSION_COOKIE = "storyden-session"
# Binds an upstream sign-in to the browser that started it (SPEC §6); read by the API's callback.
LOGIN_COOKIE = "hearth-login"
RELAYED_COOKIES = (SESSION_COOKIE, LOGIN_COOKIE)
TIMEOUT_SECONDS = 5.0

Json = dict[str, Any]

# What `secrets.token_urlsafe` produces; anything else cannot be a session and must not reach a
# request header (a quoted cookie may decode to control characters).
_SESSION_VALUE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_SLUG = re.compile(r"^[A-Za-z0-9_-]{1,200}$")
# What config.py accepts as a provider name.
_PROVIDER = re.compile(r"^[a-z][a-z0-9-]{0,39}$")


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
    """A successful answer: its JSON body and the cookies it set that the browser must get."""

    data: Json
    cookies: list[str] = field(default_factory=list)


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
        if request.remote_addr:
            # Per-address rate limits need the browser's address; the API trusts this header only
            # when its operator says a proxy (here, this frontend) sets it.
            headers["X-Forwarded-For"] = request.remote_addr
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
            if value.split("=", 1)[0] in RELAYED_COOKIES
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
        return self.call("GET", f"/api/threads/{_segment(slug, NO_THREAD)}").data

    def create_thread(self, title: str, body: str, category: str) -> Json:
        thread = {"title": title, "body": body, "category": category}
        return self.call("POST", "/api/threads", json=thread).data

    def create_reply(self, slug: str, body: str) -> Json:
        path = f"/api/threads/{_segment(slug, NO_THREAD)}/replies"
        return self.call("POST", path, json={"body": body}).data

    def consent(self, request_id: str) -> Json:
        """What the consent page shows for a pending authorization request (SPEC §4.2)."""
        params: dict[str, str | None] = {"request_id": request_id}
        return self.call("GET", "/api/oauth/authorize/consent", params=params).data

    def decide(self, request_id: str, approve: bool, scopes: list[str] | None = None) -> Json:
        """Answer a pending request; the result's `location` is where the browser goes next."""
        body: Json = {"request_id": request_id, "decision": "approve" if approve else "deny"}
        if scopes is not None:
            body["scopes"] = scopes
        return self.call("POST", "/api/oauth/authorize/consent", json=body).data

    def authorization_destination(self, url: str) -> str | None:
        """The redirect URI an authorization request at `url` names, when `url` is one.

        The API validates it before redirecting there; the frontend only needs to know the origin
        a sign-in form may end up at.
        """
        endpoint = f"{current_app.config['PUBLIC_API_ADDRESS'].rstrip('/')}/api/oauth/authorize?"
        if not url.startswith(endpoint):
            return None
        values = parse_qs(url[len(endpoint) :]).get("redirect_uri", [])
        return values[0] if len(values) == 1 else None

    def authorized_apps(self) -> list[Json]:
        items: list[Json] = self.call("GET", "/api/accounts/self/authorized-apps").data["items"]
        return items

    def revoke_app(self, grant_id: str) -> None:
        self.call("DELETE", f"/api/accounts/self/authorized-apps/{_segment(grant_id, NO_GRANT)}")

    def providers(self) -> list[Json]:
        """The upstream providers people can sign in with: `[{provider, name}]`."""
        items: list[Json] = self.call("GET", "/api/auth/oauth/providers").data["items"]
        return items

    def start_upstream(self, provider: str, kind: str, return_url: str) -> ApiResponse:
        """Start signing in (`authenticate`) or linking (`link`) with an upstream provider.

        The answer's `url` is where the browser goes next; its `hearth-login` cookie must reach
        the browser too, or the API's callback refuses the sign-in as started elsewhere.
        """
        if not _PROVIDER.match(provider):
            raise ApiError(400, "INVALID_PROVIDER", NO_PROVIDER)
        params: dict[str, str | None] = {"type": kind, "return_url": return_url}
        return self.call("GET", f"/api/auth/oauth/{provider}/url", params=params)

    def identities(self) -> list[Json]:
        """The upstream identities linked to the signed-in account."""
        items: list[Json] = self.call("GET", "/api/accounts/self/identities").data["items"]
        return items

    def unlink_identity(self, provider: str) -> None:
        self.call("DELETE", f"/api/accounts/self/identities/{_segment(provider, NO_IDENTITY)}")

    def server_metadata(self) -> Json:
        """RFC 8414 metadata: the scope vocabulary and the token endpoint, among others."""
        return self.call("GET", "/.well-known/oauth-authorization-server").data

    def clients(self) -> list[Json]:
        items: list[Json] = self.call("GET", "/api/admin/oauth/clients").data["items"]
        return items

    def client(self, client_id: str) -> Json:
        return self.call("GET", f"/api/admin/oauth/clients/{_segment(client_id, NO_CLIENT)}").data

    def create_client(self, fields: Json) -> Json:
        """Register a client; a confidential client's answer carries its secret, once."""
        return self.call("POST", "/api/admin/oauth/clients", json=fields).data

    def update_client(self, client_id: str, changes: Json) -> Json:
        path = f"/api/admin/oauth/clients/{_segment(client_id, NO_CLIENT)}"
        return self.call("PATCH", path, json=changes).data

    def rotate_secret(self, client_id: str) -> Json:
        path = f"/api/admin/oauth/clients/{_segment(client_id, NO_CLIENT)}/secret"
        return self.call("POST", path, json={}).data

    def delete_client(self, client_id: str) -> None:
        self.call("DELETE", f"/api/admin/oauth/clients/{_segment(client_id, NO_CLIENT)}")

    def ready(self) -> bool:
        try:
            response = self.http.get(f"{self.base_url}/health/ready", timeout=self.timeout)
        except requests.RequestException:
            return False
        return response.status_code == 200


NO_THREAD = "No thread has that slug."
NO_GRANT = "No authorised app has that grant id."
NO_CLIENT = "No client has that id."
NO_PROVIDER = "That sign-in provider is unknown or not enabled."
NO_IDENTITY = "No identity from that provider is linked to your account."


def _segment(value: str, missing: str) -> str:
    """Refuse a path segment with dots, slashes or escapes, which could walk to another API route."""
    if not _SLUG.match(value):
        raise ApiError(404, "not_found", missing)
    return value


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
