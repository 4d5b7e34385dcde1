"""One connection per request: Core statements and the ORM session share its transaction."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import event, insert, select
from sqlalchemy.orm import Session

from app.db import new_id
from app.extensions import db
from app.models import Category
from tests.conftest import AuthActions
from tests.integration.oauth.conftest import OAuthActions


def _category(slug: str) -> dict[str, Any]:
    return {"id": new_id(), "slug": slug, "name": slug.title(), "description": ""}


def _slugs(app: Flask) -> list[str]:
    with app.app_context():
        return sorted(db.session.scalars(select(Category.slug)))


def test_core_and_orm_writes_commit_together(app: Flask) -> None:
    with app.app_context():
        db.connection.execute(insert(Category).values(**_category("core")))
        # The session joins the transaction the Core statement began, on the same connection.
        db.session.add(Category(**_category("orm")))
        assert db.session.connection() is db.connection
        db.session.commit()
    assert _slugs(app) == ["core", "orm"]


def test_core_writes_commit_without_a_session(app: Flask) -> None:
    with app.app_context():
        db.connection.execute(insert(Category).values(**_category("core")))
        db.commit()
    assert _slugs(app) == ["core"]


def test_uncommitted_work_is_rolled_back_at_teardown(app: Flask) -> None:
    with app.app_context():
        db.connection.execute(insert(Category).values(**_category("core")))
        db.session.add(Category(**_category("orm")))
        db.session.flush()
    assert _slugs(app) == []


def test_rollback_undoes_core_work_the_session_never_saw(app: Flask) -> None:
    with app.app_context():
        db.connection.execute(insert(Category).values(**_category("before")))
        db.rollback()
        db.connection.execute(insert(Category).values(**_category("after")))
        db.commit()
    assert _slugs(app) == ["after"]


def test_session_rollback_undoes_core_work_too(app: Flask) -> None:
    with app.app_context():
        db.session.add(Category(**_category("orm")))
        db.session.flush()
        db.connection.execute(insert(Category).values(**_category("core")))
        db.session.rollback()
        db.commit()
    assert _slugs(app) == []


@pytest.fixture
def sessions_opened() -> Iterator[list[Session]]:
    opened: list[Session] = []

    def record(session: Session, _transaction: Any) -> None:
        opened.append(session)

    event.listen(Session, "after_transaction_create", record)
    yield opened
    event.remove(Session, "after_transaction_create", record)


def test_refresh_grant_and_bearer_reads_open_no_orm_session(
    app: Flask, auth: AuthActions, sessions_opened: list[Session]
) -> None:
    """Their statements are Core: a session's bookkeeping would cost as much as a statement."""
    oauth = OAuthActions(app)
    client = oauth.make_client()
    issued = oauth.tokens(auth.signup("alice"), client)
    api = app.test_client()
    headers = {"Authorization": f"Bearer {issued['access_token']}"}
    sessions_opened.clear()

    refreshed = oauth.refresh(client, issued["refresh_token"])
    assert refreshed.status_code == 200
    assert api.get("/api/accounts/self", headers=headers).status_code == 200
    assert api.get("/api/threads", headers=headers).status_code == 200
    assert sessions_opened == []

    # The rotation was committed: the new refresh token works, the old one is spent.
    assert oauth.refresh(client, refreshed.get_json()["refresh_token"]).status_code == 200
    replayed = oauth.refresh(client, issued["refresh_token"])
    assert (replayed.status_code, replayed.get_json()["error"]) == (400, "invalid_grant")
