"""Categories, threads, replies and profiles."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request
from flask.blueprints import BlueprintSetupState

from app.accounts.service import role_names
from app.auth import actor, check, signed_in
from app.context import this_app
from app.db import rfc3339
from app.errors import ValidationFailed
from app.extensions import db, read_only
from app.forum import service
from app.forum.pages import Pages
from app.forum.schemas import (
    CategoryList,
    CategoryOut,
    NewCategory,
    NewReply,
    NewThread,
    ProfileList,
    ProfileOut,
    ReplyOut,
    ThreadChanges,
    ThreadDetail,
    ThreadList,
    ThreadOut,
)
from app.models import Account
from app.openapi import operation
from app.permissions import Permission
from app.requests import json_body

bp = Blueprint("forum", __name__)


@bp.record_once
def _keep_pages(state: BlueprintSetupState) -> None:
    """Each app (each worker) keeps the thread-list pages it reads (app.forum.pages)."""
    state.app.extensions["hearth_thread_pages"] = Pages()


_CURSOR = ("cursor", "The next_cursor of the previous page", False)


def _limit() -> int:
    text = request.args.get("limit", str(service.PAGE_SIZE))
    # isascii: "²" is a digit to str.isdigit but not to int().
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 100:
        raise ValidationFailed({"limit": "must be a whole number from 1 to 100"})
    return int(text)


def _cursor() -> str | None:
    cursor = request.args.get("cursor") or None
    if cursor is not None and (len(cursor) != 26 or not (cursor.isascii() and cursor.isalnum())):
        raise ValidationFailed({"cursor": "not a cursor this API returned"})
    return cursor


def _created(body: dict[str, object]) -> Response:
    response = jsonify(body)
    response.status_code = 201
    return response


@bp.get("/api/categories")
@read_only
@operation(
    "List categories",
    tag="forum",
    permission=Permission.READ_PUBLISHED_THREADS,
    responses={200: CategoryList},
)
def list_categories() -> Response:
    items = service.list_categories(db.session, actor())
    return jsonify({"items": [service.category_json(c) for c in items], "next_cursor": None})


@bp.post("/api/categories")
@operation(
    "Create a category",
    tag="forum",
    body=NewCategory,
    permission=Permission.MANAGE_CATEGORIES,
    responses={
        201: CategoryOut,
        400: "Invalid fields",
        401: "Not signed in",
        403: "Forbidden",
        409: "Name taken",
    },
)
def create_category() -> Response:
    principal = signed_in()
    check(principal, Permission.MANAGE_CATEGORIES)
    form = json_body(NewCategory)
    category = service.create_category(db.session, principal, form)
    db.commit()
    return _created(service.category_json(category))


@bp.get("/api/threads")
@read_only
@operation(
    "List threads, newest first",
    tag="forum",
    permission=Permission.READ_PUBLISHED_THREADS,
    query=(
        ("category", "Only threads in this category (slug)", False),
        _CURSOR,
        ("limit", "Page size, 1 to 100 (default 50)", False),
    ),
    responses={200: ThreadList, 400: "Bad cursor"},
)
def list_threads() -> Response:
    items, next_cursor = service.list_threads(
        db.connection,
        actor(),
        category=request.args.get("category") or None,
        cursor=_cursor(),
        limit=_limit(),
        pages=this_app().extensions["hearth_thread_pages"],
    )
    return jsonify({"items": items, "next_cursor": next_cursor})


@bp.post("/api/threads")
@operation(
    "Start a thread",
    tag="forum",
    body=NewThread,
    permission=Permission.CREATE_POST,
    responses={201: ThreadOut, 400: "Invalid fields", 401: "Not signed in", 403: "Forbidden"},
)
def create_thread() -> Response:
    principal = signed_in()
    check(principal, Permission.CREATE_POST)
    form = json_body(NewThread)
    thread = service.create_thread(db.session, principal, form)
    db.commit()
    return _created(service.thread_json(thread))


@bp.get("/api/threads/<slug>")
@read_only
@operation(
    "Read a thread and its replies",
    tag="forum",
    permission=Permission.READ_PUBLISHED_THREADS,
    responses={200: ThreadDetail, 404: "No such thread"},
)
def get_thread(slug: str) -> Response:
    thread, replies = service.get_thread(db.session, actor(), slug)
    return jsonify(
        {**service.thread_json(thread), "replies": [service.reply_json(r) for r in replies]}
    )


@bp.patch("/api/threads/<slug>")
@operation(
    "Edit a thread (its author, or MANAGE_POSTS)",
    tag="forum",
    body=ThreadChanges,
    permission=Permission.CREATE_POST,
    responses={
        200: ThreadOut,
        400: "Invalid fields",
        401: "Not signed in",
        403: "Forbidden",
        404: "No such thread",
    },
)
def update_thread(slug: str) -> Response:
    principal = signed_in()
    form = json_body(ThreadChanges)
    thread = service.update_thread(db.session, principal, slug, form)
    db.commit()
    return jsonify(service.thread_json(thread))


@bp.delete("/api/threads/<slug>")
@operation(
    "Delete a thread (its author, or MANAGE_POSTS)",
    tag="forum",
    permission=Permission.CREATE_POST,
    responses={204: "Deleted", 401: "Not signed in", 403: "Forbidden", 404: "No such thread"},
)
def delete_thread(slug: str) -> Response:
    principal = signed_in()
    service.delete_thread(db.session, principal, slug)
    db.commit()
    return Response(status=204)


@bp.post("/api/threads/<slug>/replies")
@operation(
    "Reply to a thread",
    tag="forum",
    body=NewReply,
    permission=Permission.CREATE_POST,
    responses={
        201: ReplyOut,
        400: "Invalid fields",
        401: "Not signed in",
        403: "Forbidden",
        404: "No such thread",
    },
)
def create_reply(slug: str) -> Response:
    principal = signed_in()
    check(principal, Permission.CREATE_POST)
    form = json_body(NewReply)
    reply = service.create_reply(db.session, principal, slug, form)
    db.commit()
    return _created(service.reply_json(reply))


def _profile(account: Account) -> dict[str, object]:
    return {
        "id": account.id,
        "handle": account.handle,
        "name": account.name,
        "created_at": rfc3339(account.created_at),
        "roles": role_names(account),
    }


@bp.get("/api/profiles")
@read_only
@operation(
    "List member profiles",
    tag="profiles",
    permission=Permission.LIST_PROFILES,
    query=(_CURSOR,),
    responses={200: ProfileList, 400: "Bad cursor"},
)
def list_profiles() -> Response:
    accounts, next_cursor = service.list_profiles(db.session, actor(), _cursor())
    return jsonify({"items": [_profile(a) for a in accounts], "next_cursor": next_cursor})


@bp.get("/api/profiles/<handle>")
@read_only
@operation(
    "Read a member's profile",
    tag="profiles",
    permission=Permission.READ_PROFILE,
    responses={200: ProfileOut, 404: "No such profile"},
)
def get_profile(handle: str) -> Response:
    return jsonify(_profile(service.get_profile(db.session, actor(), handle)))
