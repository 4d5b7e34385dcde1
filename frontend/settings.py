"""The signed-in account's settings: the apps it has authorised, each with Revoke."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask.typing import ResponseReturnValue

from frontend.api_client import api
from frontend.errors import page
from frontend.forms import RevokeForm

bp = Blueprint("settings", __name__)


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
