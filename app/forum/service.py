"""Forum operations. Each takes the DB session and the acting principal and checks one permission."""

from __future__ import annotations

import re
import secrets
import unicodedata
from functools import cache
from typing import Any

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from app.auth import Actor, Principal, check
from app.db import rfc3339, rfc3339_text
from app.errors import Conflict, NotFound, ValidationFailed
from app.forum.pages import Pages, read_revision, revision_subquery
from app.forum.schemas import NewCategory, NewReply, NewThread, ThreadChanges
from app.models import Account, Category, Reply, Thread
from app.permissions import Permission

PAGE_SIZE = 50


def slugify(text: str, limit: int = 60) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:limit].rstrip("-")


def author_json(account: Account) -> dict[str, str]:
    return {"id": account.id, "handle": account.handle, "name": account.name}


def category_json(category: Category) -> dict[str, Any]:
    return {
        "id": category.id,
        "slug": category.slug,
        "name": category.name,
        "description": category.description,
    }


def thread_json(thread: Thread) -> dict[str, Any]:
    return {
        "id": thread.id,
        "slug": thread.slug,
        "title": thread.title,
        "body": thread.body,
        "category": thread.category.slug,
        "author": author_json(thread.author),
        "created_at": rfc3339(thread.created_at),
        "updated_at": rfc3339(thread.updated_at),
    }


def reply_json(reply: Reply) -> dict[str, Any]:
    return {
        "id": reply.id,
        "body": reply.body,
        "author": author_json(reply.author),
        "created_at": rfc3339(reply.created_at),
    }


def list_categories(session: Session, actor: Actor) -> list[Category]:
    check(actor, Permission.READ_PUBLISHED_THREADS)
    return list(session.scalars(select(Category).order_by(Category.name)))


def create_category(session: Session, actor: Principal, form: NewCategory) -> Category:
    check(actor, Permission.MANAGE_CATEGORIES)
    slug = slugify(form.name)
    if not slug:
        raise ValidationFailed({"name": "must contain at least one letter or digit"})
    if session.scalar(
        select(Category.id).where((Category.slug == slug) | (Category.name == form.name))
    ):
        raise Conflict("A category with that name already exists.")
    category = Category(slug=slug, name=form.name, description=form.description)
    session.add(category)
    try:
        session.flush()
    except IntegrityError:
        session.rollback()
        raise Conflict("A category with that name already exists.") from None
    return category


def _category(session: Session, slug: str) -> Category:
    category = session.scalar(select(Category).where(Category.slug == slug))
    if category is None:
        raise ValidationFailed({"category": "no category has that slug"})
    return category


@cache
def _thread_list_statement(in_category: bool, after_cursor: bool) -> Any:
    """A read model for the list: only the columns it shows, built once per variant.

    Reply counts are the threads' stored `reply_count` (kept by triggers on `replies`): a
    correlated count per row was two thirds of PostgreSQL's CPU for a page."""
    query = (
        select(
            Thread.id,
            Thread.slug,
            Thread.title,
            rfc3339_text(Thread.created_at).label("created_at"),
            Category.slug.label("category"),
            Account.id.label("author_id"),
            Account.handle.label("author_handle"),
            Account.name.label("author_name"),
            Thread.reply_count,
            revision_subquery().label("forum_revision"),
        )
        .join(Category, Category.id == Thread.category_id)
        .join(Account, Account.id == Thread.author_id)
        .order_by(Thread.id.desc())
        .limit(bindparam("limit"))
    )
    if in_category:
        query = query.where(Category.slug == bindparam("category"))
    if after_cursor:
        query = query.where(Thread.id < bindparam("cursor"))
    return query


ThreadPage = tuple[list[dict[str, Any]], str | None]


def list_threads(
    connection: Connection,
    actor: Actor,
    *,
    category: str | None,
    cursor: str | None,
    limit: int = PAGE_SIZE,
    pages: Pages[tuple[str | None, str | None, int], ThreadPage] | None = None,
) -> ThreadPage:
    """Newest first; `cursor` is the last id of the previous page.

    With `pages` (a worker's kept pages), a page kept at the forum's current revision is served
    as it is: the revision comes with the principal, or for a guest from one small statement."""
    check(actor, Permission.READ_PUBLISHED_THREADS)
    key = (category, cursor, limit)
    if pages is not None and pages.kept_revision(key) is not None:
        revision = actor.forum_revision
        if revision is None:
            revision = read_revision(connection)
        kept = None if revision is None else pages.get(key, revision)
        if kept is not None:
            return kept
    rows = connection.execute(
        _thread_list_statement(category is not None, bool(cursor)),
        {"limit": limit + 1, "category": category, "cursor": cursor},
    ).all()
    items = [
        {
            "id": id_,
            "slug": slug,
            "title": title,
            "category": category_slug,
            "author": {"id": author_id, "handle": handle, "name": name},
            "created_at": created_at,
            "reply_count": reply_count,
        }
        for id_, slug, title, created_at, category_slug, author_id, handle, name, reply_count, _ in (
            rows[:limit]
        )
    ]
    page = items, (rows[limit - 1].id if len(rows) > limit else None)
    # An empty page is not kept: nothing would say which revision it was read at.
    if pages is not None and rows and rows[0].forum_revision is not None:
        pages.put(key, rows[0].forum_revision, page, weight=len(items) + 1)
    return page


def get_thread(session: Session, actor: Actor, slug: str) -> tuple[Thread, list[Reply]]:
    check(actor, Permission.READ_PUBLISHED_THREADS)
    thread = session.scalar(select(Thread).where(Thread.slug == slug))
    if thread is None:
        raise NotFound("No thread has that slug.")
    replies = list(
        session.scalars(select(Reply).where(Reply.thread_id == thread.id).order_by(Reply.id))
    )
    return thread, replies


def create_thread(session: Session, actor: Principal, form: NewThread) -> Thread:
    check(actor, Permission.CREATE_POST)
    category = _category(session, form.category)
    base = slugify(form.title) or "thread"
    thread = Thread(
        slug=f"{base}-{secrets.token_hex(3)}",
        title=form.title,
        body=form.body,
        category=category,
        author=actor.account,
    )
    session.add(thread)
    session.flush()
    return thread


def _editable(session: Session, actor: Principal, slug: str) -> Thread:
    """Authors edit their own threads; MANAGE_POSTS edits anyone's."""
    thread = session.scalar(select(Thread).where(Thread.slug == slug))
    if thread is None:
        raise NotFound("No thread has that slug.")
    if thread.author_id == actor.account_id:
        check(actor, Permission.CREATE_POST)
    else:
        check(actor, Permission.MANAGE_POSTS)
    return thread


def update_thread(session: Session, actor: Principal, slug: str, changes: ThreadChanges) -> Thread:
    thread = _editable(session, actor, slug)
    if changes.title is not None:
        thread.title = changes.title
    if changes.body is not None:
        thread.body = changes.body
    if changes.category is not None:
        thread.category = _category(session, changes.category)
    session.flush()
    return thread


def delete_thread(session: Session, actor: Principal, slug: str) -> None:
    thread = _editable(session, actor, slug)
    session.delete(thread)
    session.flush()


def create_reply(session: Session, actor: Principal, slug: str, form: NewReply) -> Reply:
    check(actor, Permission.CREATE_POST)
    thread_id = session.scalar(select(Thread.id).where(Thread.slug == slug))
    if thread_id is None:
        raise NotFound("No thread has that slug.")
    reply = Reply(thread_id=thread_id, body=form.body, author=actor.account)
    session.add(reply)
    session.flush()
    return reply


def get_profile(session: Session, actor: Actor, handle: str) -> Account:
    check(actor, Permission.READ_PROFILE)
    account = session.scalar(select(Account).where(Account.handle == handle.lower()))
    if account is None:
        raise NotFound("No profile has that handle.")
    return account


def list_profiles(
    session: Session, actor: Actor, cursor: str | None
) -> tuple[list[Account], str | None]:
    check(actor, Permission.LIST_PROFILES)
    # Every profile shows its roles: one IN query for the page, not one per account.
    query = (
        select(Account)
        .options(selectinload(Account.roles))
        .order_by(Account.id)
        .limit(PAGE_SIZE + 1)
    )
    if cursor:
        query = query.where(Account.id > cursor)
    rows = list(session.scalars(query))
    next_cursor = rows[PAGE_SIZE - 1].id if len(rows) > PAGE_SIZE else None
    return rows[:PAGE_SIZE], next_cursor
