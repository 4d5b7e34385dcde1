"""The signed-in account's settings: the apps it has authorised, and the ways it signs in."""

from __future__ import annotations

from flask import Blueprint, flash, make_response, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from frontend.api_client import ApiError, api
from frontend.errors import page
from frontend.forms import RevokeForm, UnlinkForm

bp = Blueprint("settings", __name__)

LAST_WAY_IN = "This is your only way to sign in; set a password or link another provider first."
# Why linking sent the browser back (`?error=<code>` from the API's callback).
LINK_FAILED = "We could not link that provider."
LINK_ERRORS = {
    "access_denied": "You cancelled linking with the provider.",
    "invalid_state": "That link request has expired or was already used; try again.",
    "expired_state": "That link request has expired or was already used; try again.",
    "identity_in_use": "That account at the provider is already linked to another account here.",
    "provider_already_linked": (
        "Another account at that provider is already linked; unlink it first."
    ),
    "account_mismatch": (
        "You were signed in to a different account when linking finished. "
        "Sign in to the account you were linking and try again."
    ),
}


@bp.get("/settings")
def index() -> ResponseReturnValue:
    return redirect(url_for("settings.apps"))


@bp.route("/settings/apps", methods=["GET", "POST"])
def apps() -> ResponseReturnValue:
    form = RevokeForm()
    if form.is_submitted():
        if not form.validate():
            return page(400, "Choose the app to revoke on the settings page.")
        grant_id = form.grant_id.data or ""
        names = {app["grant_id"]: app["client_name"] for app in api().authorized_apps()}
        api().revoke_app(grant_id)
        flash(f"{names.get(grant_id, 'The app')} can no longer use your account.")
        return redirect(url_for("settings.apps"), code=303)
    return render_template("settings_apps.html", apps=api().authorized_apps())


@bp.route("/settings/sign-in", methods=["GET", "POST"])
def sign_in() -> ResponseReturnValue:
    form = UnlinkForm()
    providers = api().providers()
    names = {provider["provider"]: provider["name"] for provider in providers}
    status, problem = 200, None
    if form.is_submitted():
        if not form.validate():
            return page(400, "Choose the sign-in method to unlink on the settings page.")
        provider = form.provider.data or ""
        try:
            api().unlink_identity(provider)
        except ApiError as error:
            if error.status != 409:
                raise
            status, problem = 409, LAST_WAY_IN
        else:
            flash(f"{names.get(provider, provider)} is no longer linked to your account.")
            return redirect(url_for("settings.sign_in"), code=303)
    identities = [
        {**identity, "name": names.get(identity["provider"], identity["provider"])}
        for identity in api().identities()
    ]
    linked = {identity["provider"] for identity in identities}
    if request.method == "GET":
        problem = _link_outcome(
            request.args.get("linked"), request.args.get("error"), linked, names
        )
    return make_response(
        render_template(
            "settings_sign_in.html",
            identities=identities,
            unlinked=[provider for provider in providers if provider["provider"] not in linked],
            problem=problem,
        ),
        status,
    )


def _link_outcome(
    provider: str | None, error: str | None, linked: set[str], names: dict[str, str]
) -> str | None:
    """How the link the API just sent the browser back from went: a notice, or the problem."""
    if error:
        return LINK_ERRORS.get(error, LINK_FAILED)
    # Only an identity that is really there is announced; the query alone proves nothing.
    if provider in linked:
        flash(f"{names.get(provider, provider)} is now linked: you can sign in with it.")
    return None
