"""Signing in (or linking an account) with an upstream provider through the API (SPEC §6).

The buttons are links carrying a token rather than form posts. Chromium checks every redirect
that follows a form post against the posting page's `form-action`, and the provider's origin
(known only once the API has built the authorization URL, and free to bounce through its own
hosts) cannot be named on the page beforehand; a navigation from a link is not a form
submission. The token, tied to this browser's frontend session and kept apart from the forms'
CSRF token, stops another site from starting a sign-in or a link on the visitor's behalf.
"""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import generate_csrf, validate_csrf
from werkzeug.wrappers import Response
from wtforms import ValidationError

from frontend.api_client import ApiError, api
from frontend.errors import page
from frontend.security import origin, safe_return_url

bp = Blueprint("federation", __name__)

KINDS = ("authenticate", "link")
# The session key of the start links' token; a leaked link cannot submit any of the forms.
START_TOKEN = "oauth_start_token"

STALE_TITLE = "Start again"
STALE = (
    "This sign-in button has expired or did not come from this site. "
    "Go back, reload the page and try again."
)
UNKNOWN_TITLE = "Unknown sign-in provider"
UNKNOWN = "This forum does not offer signing in with that provider. Go back and choose another way."
UNAVAILABLE_TITLE = "The provider is unavailable"
UNAVAILABLE = (
    "We could not reach that sign-in provider. Try again in a moment, or sign in another way."
)


def start_url(provider: str, kind: str = "authenticate", return_url: str | None = None) -> str:
    """The link a "Sign in with …" or "Link …" button follows."""
    return url_for(
        "federation.start",
        provider=provider,
        type=kind if kind != "authenticate" else None,
        return_url=return_url or None,
        token=generate_csrf(token_key=START_TOKEN),
    )


def _on_web(path: str) -> str:
    """`path` on the web origin: the API only sends the browser back to its own or our origin."""
    return origin(current_app.config["PUBLIC_WEB_ADDRESS"]) + path


def _token_ok() -> bool:
    if not current_app.config.get("WTF_CSRF_ENABLED", True):
        return True
    try:
        validate_csrf(request.args.get("token"), token_key=START_TOKEN)
    except ValidationError:
        return False
    return True


@bp.get("/auth/oauth/<provider>/start")
def start(provider: str) -> ResponseReturnValue:
    kind = request.args.get("type", "authenticate")
    if kind not in KINDS or not _token_ok():
        return page(400, STALE, title=STALE_TITLE)
    if kind == "link":
        # Linking ends on the settings page, which reads the outcome (or ?error=) itself.
        back = _on_web(url_for("settings.sign_in", linked=provider))
    else:
        # A failed sign-in comes back to its return URL with ?error=: `finish` turns that into
        # the login page's message instead of leaving it on whichever page was asked for.
        back = _on_web(
            url_for("federation.finish", return_url=safe_return_url(request.args.get("return_url")))
        )
    try:
        started = api().start_upstream(provider, kind, back)
    except ApiError as error:
        if error.error == "INVALID_PROVIDER":
            return page(400, UNKNOWN, title=UNKNOWN_TITLE)
        if error.status == 401 and kind == "link":
            return redirect(url_for("accounts.login", return_url=url_for("settings.sign_in")), 303)
        if error.status == 503:
            return page(503, UNAVAILABLE, title=UNAVAILABLE_TITLE)
        raise
    response = redirect(started.data["url"], code=303)
    for cookie in started.cookies:
        response.headers.add("Set-Cookie", cookie)
    return response


@bp.get("/auth/oauth/finish")
def finish() -> Response:
    """Where the API sends the browser after an upstream sign-in, successful or not."""
    back = safe_return_url(request.args.get("return_url"))
    error = request.args.get("error")
    if error:
        return_url = None if back == "/" else back
        return redirect(url_for("accounts.login", return_url=return_url, error=error), code=303)
    if session:
        session.clear()  # a new identity gets a new CSRF token
    return redirect(back, code=303)
