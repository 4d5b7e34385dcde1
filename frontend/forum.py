"""The thread list and thread pages, with forms to start threads and reply."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from wtforms import SelectChoice

from frontend.api_client import ApiError, api
from frontend.forms import ReplyForm, ThreadForm

bp = Blueprint("forum", __name__)


@bp.route("/", methods=["GET", "POST"])
def index() -> ResponseReturnValue:
    category = request.args.get("category") or None
    categories = api().categories()
    form = ThreadForm(category=category)
    form.category.choices = [SelectChoice(c["slug"], c["name"]) for c in categories]
    status = 400 if form.is_submitted() else 200
    if form.validate_on_submit():
        try:
            thread = api().create_thread(
                form.title.data or "", form.body.data or "", form.category.data or ""
            )
        except ApiError as error:
            status = form.show(error)
        else:
            return redirect(url_for("forum.thread", slug=thread["slug"]), code=303)
    page = api().threads(category=category, cursor=request.args.get("cursor"))
    return render_template(
        "index.html",
        form=form,
        threads=page["items"],
        next_cursor=page["next_cursor"],
        categories=categories,
        category_names={c["slug"]: c["name"] for c in categories},
        current_category=category,
    ), status


@bp.route("/t/<slug>", methods=["GET", "POST"])
def thread(slug: str) -> ResponseReturnValue:
    form = ReplyForm()
    status = 400 if form.is_submitted() else 200
    if form.validate_on_submit():
        try:
            reply = api().create_reply(slug, form.body.data or "")
        except ApiError as error:
            status = form.show(error)
        else:
            anchor = f"reply-{reply['id']}"
            return redirect(url_for("forum.thread", slug=slug, _anchor=anchor), code=303)
    current = api().thread(slug)
    category_names = {c["slug"]: c["name"] for c in api().categories()}
    return render_template(
        "thread.html",
        thread=current,
        category_name=category_names.get(current["category"]),
        form=form,
    ), status
