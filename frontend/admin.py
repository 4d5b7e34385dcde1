"""Administration of OAuth clients: list, register, edit, rotate the secret, delete."""

from __future__ import annotations

from flask import Blueprint, flash, make_response, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response
from wtforms import SelectChoice

from frontend.accounts import holds, viewer
from frontend.api_client import ApiError, Json, api
from frontend.errors import page
from frontend.forms import ActionForm, ClientSettingsForm, NewClientForm

bp = Blueprint("admin", __name__)


@bp.before_request
def _administrators_only() -> ResponseReturnValue | None:
    # The API refuses these calls anyway; this turns its 401 and 403 into a kinder page first.
    if viewer() is None:
        back = request.full_path.rstrip("?") if request.method == "GET" else request.path
        return redirect(url_for("accounts.login", return_url=back), code=303)
    if not holds("ADMINISTRATOR"):
        return page(403, "Only administrators can manage the apps registered with Hearth.")
    return None


@bp.get("/admin")
def index() -> ResponseReturnValue:
    return redirect(url_for("admin.clients"))


@bp.get("/admin/clients")
def clients() -> ResponseReturnValue:
    return render_template("admin_clients.html", clients=api().clients())


@bp.route("/admin/clients/new", methods=["GET", "POST"])
def new_client() -> ResponseReturnValue:
    form = NewClientForm()
    _offer_scopes(form)
    status = 400 if form.is_submitted() else 200
    if form.validate_on_submit():
        try:
            client = api().create_client(form.fields())
        except ApiError as error:
            _renumber(form)
            status = form.show(error)
        else:
            return _credentials(client, "Client registered")
    return render_template("admin_client_new.html", form=form), status


@bp.route("/admin/clients/<client_id>", methods=["GET", "POST"])
def client(client_id: str) -> ResponseReturnValue:
    current = api().client(client_id)
    form = ClientSettingsForm(
        data={
            "name": current["name"],
            "redirect_uris": "\n".join(current["redirect_uris"]),
            "scopes": current["scopes"],
            "grant_types": current["grants"],
            "scope_policy": current["scope_policy"],
            "skip_consent": current["skip_consent"],
        }
    )
    _offer_scopes(form)
    status = 400 if form.is_submitted() else 200
    if form.validate_on_submit():
        try:
            updated = api().update_client(client_id, form.changes())
        except ApiError as error:
            _renumber(form)
            status = form.show(error)
        else:
            flash(f"Saved the changes to {updated['name']}.")
            return redirect(url_for("admin.client", client_id=client_id), code=303)
    return render_template("admin_client.html", client=current, form=form), status


@bp.route("/admin/clients/<client_id>/secret", methods=["GET", "POST"])
def rotate_secret(client_id: str) -> ResponseReturnValue:
    form = ActionForm()
    if form.validate_on_submit():
        return _credentials(api().rotate_secret(client_id), "New client secret", rotated=True)
    return render_template(
        "admin_confirm.html", client=api().client(client_id), form=form, action="rotate"
    )


@bp.route("/admin/clients/<client_id>/delete", methods=["GET", "POST"])
def delete_client(client_id: str) -> ResponseReturnValue:
    current = api().client(client_id)
    form = ActionForm()
    if form.validate_on_submit():
        api().delete_client(client_id)
        flash(f"Deleted {current['name']}. Every grant and token it held has been revoked.")
        return redirect(url_for("admin.clients"), code=303)
    return render_template("admin_confirm.html", client=current, form=form, action="delete")


def _offer_scopes(form: ClientSettingsForm) -> None:
    scopes: list[str] = api().server_metadata()["scopes_supported"]
    form.scopes.choices = [SelectChoice(name) for name in scopes]


def _renumber(form: ClientSettingsForm) -> None:
    """Show the redirect URIs as sent, so the API's `redirect_uris.N` names line N + 1."""
    form.redirect_uris.data = "\n".join(form.redirect_uri_list())


def _credentials(client: Json, title: str, rotated: bool = False) -> Response:
    """The only page that ever shows a client secret: the API keeps just its hash."""
    response = make_response(
        render_template(
            "admin_client_secret.html",
            client=client,
            title=title,
            rotated=rotated,
            token_endpoint=api().server_metadata()["token_endpoint"],
        )
    )
    response.headers["Cache-Control"] = "no-store"
    return response
