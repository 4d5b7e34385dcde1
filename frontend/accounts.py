"""Sign in, sign up and sign out through the API, and who the current visitor is."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, g, make_response, redirect, render_template, request, session
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from frontend.api_client import ApiError, ApiResponse, ApiUnavailable, Json, api
from frontend.forms import LoginForm, LogoutForm, SignupForm
from frontend.security import content_security_policy, safe_return_url

log = logging.getLogger("hearth.frontend")
bp = Blueprint("accounts", __name__)

# Why an upstream sign-in sent the browser back (`?error=<code>` from the API's callback).
UPSTREAM_CANCELLED = "You cancelled signing in with the provider."
UPSTREAM_STALE = "That sign-in link has expired or was already used; try again."
UPSTREAM_FAILED = "We could not sign you in with that provider."
UPSTREAM_ERRORS = {
    "access_denied": UPSTREAM_CANCELLED,
    "invalid_state": UPSTREAM_STALE,
    "expired_state": UPSTREAM_STALE,
}


def viewer() -> Json | None:
    """The signed-in account (asked of the API once per request), or None."""
    if "viewer" not in g:
        g.viewer = api().current_account()
    account: Json | None = g.viewer
    return account


def holds(permission: str) -> bool:
    """Whether the signed-in account holds `permission` (the API still checks every call)."""
    account = viewer()
    return account is not None and permission in account["permissions"]


def template_context() -> dict[str, Any]:
    return {
        "viewer": viewer(),
        "can_post": holds("CREATE_POST"),
        "is_admin": holds("ADMINISTRATOR"),
        "return_here": _return_here(),
    }


def _return_here() -> str | None:
    """Where the header's sign-in links bring the visitor back to."""
    if request.method != "GET" or request.blueprint == bp.name:
        return None
    return request.full_path.rstrip("?")


def _relay(result: ApiResponse, location: str) -> Response:
    """Pass the API's session cookie to the browser unchanged and go on to `location`."""
    if session:
        session.clear()  # a new identity gets a new CSRF token
    response = redirect(location, code=303)
    for cookie in result.cookies:
        response.headers.add("Set-Cookie", cookie)
    return response


def _upstream_providers() -> list[Json]:
    """The enabled upstream providers; none when the API cannot say (the form still shows)."""
    try:
        return api().providers()
    except (ApiError, ApiUnavailable) as error:
        log.warning("could not list sign-in providers: %s", error)
        return []


def _form_page(template: str, form: LoginForm | SignupForm, status: int) -> Response:
    """A sign-in or sign-up page whose form may lead through /authorize straight to a client."""
    error = request.args.get("error") if request.method == "GET" else None
    response = make_response(
        render_template(
            template,
            form=form,
            providers=_upstream_providers(),
            upstream_error=UPSTREAM_ERRORS.get(error, UPSTREAM_FAILED) if error else None,
        ),
        status,
    )
    # An account with a remembered grant (or none to give) is redirected by the API to the client.
    destination = api().authorization_destination(safe_return_url(form.return_url.data))
    response.headers["Content-Security-Policy"] = content_security_policy(destination)
    return response


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    form = LoginForm(return_url=request.args.get("return_url", ""))
    status = 400 if form.is_submitted() else 200
    if form.validate_on_submit():
        try:
            result = api().signin(form.handle.data or "", form.password.data or "")
        except ApiError as error:
            status = form.show(error)
        else:
            return _relay(result, safe_return_url(form.return_url.data))
    return _form_page("login.html", form, status)


@bp.route("/signup", methods=["GET", "POST"])
def signup() -> ResponseReturnValue:
    form = SignupForm(return_url=request.args.get("return_url", ""))
    status = 400 if form.is_submitted() else 200
    if form.validate_on_submit():
        try:
            result = api().signup(
                form.handle.data or "", form.password.data or "", form.email.data or None
            )
        except ApiError as error:
            status = form.show(error)
        else:
            return _relay(result, safe_return_url(form.return_url.data))
    return _form_page("signup.html", form, status)


@bp.get("/logout")
def confirm_logout() -> ResponseReturnValue:
    form = LogoutForm(return_url=request.args.get("return_url", ""))
    return render_template("logout.html", form=form)


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    # CSRFProtect has already checked the token: a cross-site form cannot sign anyone out.
    form = LogoutForm()
    return _relay(api().signout(), safe_return_url(form.return_url.data))
