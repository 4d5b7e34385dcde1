"""The consent page the API's /authorize hands the browser to (SPEC §4.2, §5)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from urllib.parse import urlsplit

from flask import Blueprint, current_app, make_response, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from frontend.accounts import viewer
from frontend.api_client import ApiError, Json, api
from frontend.errors import page
from frontend.forms import ConsentForm
from frontend.security import content_security_policy, origin

bp = Blueprint("oauth", __name__)

UNUSABLE_TITLE = "This request can no longer be answered"
UNUSABLE = (
    "This authorisation request has expired, has already been answered, or was started while "
    "another account was signed in. Go back to the app and start again."
)
MISSING = "This link is missing its request id. Go back to the app and start again."
REASONS = {
    "not_allowed_for_client": "This app is not allowed to ask for this",
    "account_lacks_permission": "Your account does not have this permission",
}
# Signing in is what the app asked for: leaving it out would leave nothing to approve.
REQUIRED = frozenset({"openid"})


def _consent_url(request_id: str) -> str:
    """This page's absolute address on the web origin, to come back to after signing in."""
    path = url_for("oauth.consent", request_id=request_id)
    return origin(current_app.config["PUBLIC_WEB_ADDRESS"]) + path


def _sign_in_first(request_id: str) -> Response:
    return redirect(url_for("accounts.login", return_url=_consent_url(request_id)), code=302)


def _unusable() -> Response:
    return page(400, UNUSABLE, title=UNUSABLE_TITLE)


@bp.get("/oauth/authorize/consent")
def consent() -> ResponseReturnValue:
    request_id = request.args.get("request_id", "")
    if not request_id:
        return page(400, MISSING, title=UNUSABLE_TITLE)
    if viewer() is None:
        return _sign_in_first(request_id)
    try:
        details = api().consent(request_id)
    except ApiError as error:
        if error.status == 401:
            return _sign_in_first(request_id)
        if error.status == 400:
            return _unusable()
        raise
    response = make_response(
        render_template(
            "consent.html",
            details=details,
            form=ConsentForm(request_id=request_id),
            # Switching account signs out, then signs in again and restarts the same request
            # (a pending request belongs to the account that started it).
            switch_to=url_for("accounts.login", return_url=details["authorize_url"]),
            granted=[s for s in details["scopes"] if s["granted"]],
            dropped=[s for s in details["scopes"] if not s["granted"]],
            required=REQUIRED,
            reasons=REASONS,
            destination=_destination(details["redirect_uri"]),
            expiry=_expiry(details["expires_at"]),
        )
    )
    # Approving or denying redirects the form post to the app; Chromium checks that against
    # form-action, so the policy names the app's origin (and only for this request).
    response.headers["Content-Security-Policy"] = content_security_policy(details["redirect_uri"])
    return response


@bp.post("/oauth/authorize/consent")
def decide() -> ResponseReturnValue:
    form = ConsentForm()
    if not form.validate_on_submit():
        return page(400, "Choose Approve or Deny on the consent page.")
    request_id = form.request_id.data or ""
    approve = form.decision.data == "approve"
    try:
        result = api().decide(
            request_id, approve, list(form.scopes.data or []) if approve else None
        )
    except ApiError as error:
        if error.status == 401:
            return _sign_in_first(request_id)
        if error.status == 400 and error.error == "invalid_request":
            return _unusable()
        raise
    location: str = result["location"]
    return redirect(location, code=303)


def _destination(uri: str) -> Json:
    """The redirect URI split so the page can emphasise its host."""
    parts = urlsplit(uri)
    host, _, port = (
        parts.netloc.rpartition(":") if parts.port is not None else (parts.netloc, "", "")
    )
    rest = (f":{port}" if port else "") + parts.path + (f"?{parts.query}" if parts.query else "")
    return {"scheme": f"{parts.scheme}://", "host": host, "rest": rest, "uri": uri}


def _expiry(expires_at: str) -> Json:
    moment = datetime.fromisoformat(expires_at).astimezone(UTC)
    minutes = math.ceil((moment - datetime.now(UTC)).total_seconds() / 60)
    return {"datetime": expires_at, "clock": f"{moment:%H:%M} UTC", "minutes": max(minutes, 0)}
