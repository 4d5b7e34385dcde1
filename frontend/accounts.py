"""Sign in, sign up and sign out through the API, and who the current visitor is."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, current_app, g, redirect, render_template, request, session
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from frontend.api_client import ApiError, ApiResponse, Json, api
from frontend.forms import LoginForm, LogoutForm, SignupForm

bp = Blueprint("accounts", __name__)


def viewer() -> Json | None:
    """The signed-in account (asked of the API once per request), or None."""
    if "viewer" not in g:
        g.viewer = api().current_account()
    account: Json | None = g.viewer
    return account


def template_context() -> dict[str, Any]:
    account = viewer()
    return {
        "viewer": account,
        "can_post": account is not None and "CREATE_POST" in account["permissions"],
        "return_here": _return_here(),
    }


def _return_here() -> str | None:
    """Where the header's sign-in links bring the visitor back to."""
    if request.method != "GET" or request.blueprint == bp.name:
        return None
    return request.full_path.rstrip("?")


def origin(address: str) -> str:
    """`scheme://host[:port]` of an absolute URL, lower-cased, as browsers compare origins."""
    parts = urlsplit(address)
    return f"{parts.scheme}://{parts.netloc}".lower()


def safe_return_url(value: str | None) -> str:
    """Follow only a path on this site or an absolute URL on the API or web origin; else `/`."""
    # Browsers read `\` as `/` and drop tabs and newlines, turning `/\evil` into `//evil`.
    if not value or any(ch == "\\" or ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in value):
        return "/"
    if value.startswith("/"):
        return "/" if value.startswith("//") else value
    config = current_app.config
    trusted = {origin(config["PUBLIC_API_ADDRESS"]), origin(config["PUBLIC_WEB_ADDRESS"])}
    try:
        return value if origin(value) in trusted else "/"
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return "/"


def _relay(result: ApiResponse, location: str) -> Response:
    """Pass the API's session cookie to the browser unchanged and go on to `location`."""
    if session:
        session.clear()  # a new identity gets a new CSRF token
    response = redirect(location, code=303)
    for cookie in result.session_cookies:
        response.headers.add("Set-Cookie", cookie)
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
    return render_template("login.html", form=form), status


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
    return render_template("signup.html", form=form), status


@bp.get("/logout")
def confirm_logout() -> ResponseReturnValue:
    return render_template("logout.html", form=LogoutForm())


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    # CSRFProtect has already checked the token: a cross-site form cannot sign anyone out.
    return _relay(api().signout(), "/")
