"""Thread-list pages a worker keeps: served again only while the forum's revision is unchanged.

Two apps on one database stand for two workers (or two hosts): one keeps pages, the other (or
SQL run by hand) changes the forum, and every list the first serves afterwards must equal what a
worker with nothing kept reads from the database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, create_engine, event, text

from app.extensions import Database
from app.forum.pages import Pages
from tests.conftest import AuthActions, make_app
from tests.integration.oauth.conftest import OAuthActions, bearer
from tests.integration.test_forum import make_category

PAGE_COLUMNS = "slug, title, category_id, author_id, created_at, reply_count"


class Statements:
    """The statements an app sends, by their first word."""

    def __init__(self, app: Flask) -> None:
        self.engines = Database.engines(app)
        self.seen: list[str] = []
        for engine in self.engines:
            event.listen(engine, "before_cursor_execute", self._record)

    def _record(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.seen.append(statement)

    def during(self, action: Callable[[], Any]) -> tuple[Any, list[str]]:
        self.seen = []
        result = action()
        return result, self.seen

    def close(self) -> None:
        for engine in self.engines:
            event.remove(engine, "before_cursor_execute", self._record)


@pytest.fixture
def reader(database_url: str) -> Iterator[Flask]:
    """A second worker on the same database: it keeps the pages under test."""
    app = make_app(database_url)
    yield app
    Database.dispose(app)


@pytest.fixture
def sql(database_url: str) -> Iterator[Engine]:
    """Writes made outside any app, as an operator would."""
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


def revision(engine: Engine) -> int:
    with engine.connect() as conn:
        value: int = conn.execute(text("SELECT value FROM forum_revision")).scalar_one()
        return value


def fresh_list(database_url: str, path: str = "/api/threads") -> Any:
    """What a worker that has kept nothing reads now."""
    app = make_app(database_url)
    try:
        return app.test_client().get(path).get_json()
    finally:
        Database.dispose(app)


def test_a_repeated_list_is_served_with_only_the_principals_statement(
    app: Flask, reader: Flask, auth: AuthActions
) -> None:
    slug = make_category(auth.admin())
    alice = auth.signup("alice")
    alice.post("/api/threads", json={"title": "First", "body": "x", "category": slug})
    token = OAuthActions(app).tokens(alice, OAuthActions(app).make_client())["access_token"]
    api = reader.test_client()
    statements = Statements(reader)
    try:
        first, sent = statements.during(lambda: api.get("/api/threads", headers=bearer(token)))
        assert first.status_code == 200
        assert len(sent) == 2  # the token's principal, then the page
        again, sent = statements.during(lambda: api.get("/api/threads", headers=bearer(token)))
        assert again.status_code == 200
        assert len(sent) == 1 and "oauth_tokens" in sent[0] and "forum_revision" in sent[0]
        assert again.get_data() == first.get_data()
        assert [item["title"] for item in again.get_json()["items"]] == ["First"]

        # The session cookie's principal reads the revision too.
        browser = reader.test_client()
        browser.set_cookie("storyden-session", alice.get_cookie("storyden-session").value)
        by_cookie, sent = statements.during(lambda: browser.get("/api/threads"))
        assert by_cookie.get_data() == first.get_data()
        assert len(sent) == 1 and "sessions" in sent[0]

        # A guest has no principal statement: one small read of the revision instead of the page.
        guest, sent = statements.during(lambda: api.get("/api/threads"))
        assert guest.get_data() == first.get_data()
        assert sent == [
            "SELECT forum_revision.value \nFROM forum_revision \nWHERE forum_revision.id = ?"
            if reader.config["DATABASE_URL"].startswith("sqlite")
            else "SELECT forum_revision.value \nFROM forum_revision \n"
            "WHERE forum_revision.id = %(id_1)s::INTEGER"
        ]
    finally:
        statements.close()


def test_every_change_a_page_shows_reaches_a_worker_that_kept_it(
    app: Flask, reader: Flask, auth: AuthActions, sql: Engine, database_url: str
) -> None:
    admin = auth.admin()
    general, news = make_category(admin, "General"), make_category(admin, "News")
    alice = auth.signup("alice")
    made = [
        alice.post(
            "/api/threads", json={"title": f"Thread {n}", "body": "x", "category": general}
        ).get_json()
        for n in range(3)
    ]
    token = OAuthActions(app).tokens(alice, OAuthActions(app).make_client())["access_token"]
    api = reader.test_client()
    paths = ("/api/threads", f"/api/threads?category={general}", "/api/threads?limit=2")

    def kept_pages_match_the_database() -> None:
        for path in paths:
            expected = fresh_list(database_url, path)
            assert api.get(path, headers=bearer(token)).get_json() == expected, path
            assert api.get(path).get_json() == expected, path

    changes: list[tuple[str, Callable[[], Any]]] = [
        (
            "a new thread",
            lambda: alice.post(
                "/api/threads", json={"title": "Newest", "body": "x", "category": general}
            ),
        ),
        (
            "a new title",
            lambda: alice.patch(f"/api/threads/{made[0]['slug']}", json={"title": "Renamed"}),
        ),
        (
            "another category",
            lambda: alice.patch(f"/api/threads/{made[1]['slug']}", json={"category": news}),
        ),
        (
            "a reply",
            lambda: alice.post(f"/api/threads/{made[2]['slug']}/replies", json={"body": "A reply"}),
        ),
        ("a deleted thread", lambda: alice.delete(f"/api/threads/{made[2]['slug']}")),
        (
            "an author's new name, by hand",
            lambda: _run(sql, "UPDATE accounts SET name = 'Alice A.' WHERE handle = 'alice'"),
        ),
        (
            "a category's new slug, by hand",
            lambda: _run(sql, f"UPDATE categories SET slug = 'renamed' WHERE slug = '{news}'"),
        ),
        (
            "a reply count, by hand",
            lambda: _run(sql, "UPDATE threads SET reply_count = 7 WHERE title = 'Renamed'"),
        ),
        (
            "a thread deleted by hand",
            lambda: _run(sql, "DELETE FROM threads WHERE title = 'Newest'"),
        ),
    ]
    kept_pages_match_the_database()
    for name, change in changes:
        before = revision(sql)
        response = change()
        assert getattr(response, "status_code", 200) < 300, name
        assert revision(sql) > before, name
        kept_pages_match_the_database()


def _run(engine: Engine, statement: str) -> None:
    with engine.begin() as conn:
        conn.execute(text(statement))


def test_changes_no_page_shows_keep_the_revision_and_the_kept_page(
    app: Flask, reader: Flask, auth: AuthActions, sql: Engine
) -> None:
    slug = make_category(auth.admin())
    alice = auth.signup("alice")
    thread = alice.post(
        "/api/threads", json={"title": "Stays", "body": "x", "category": slug}
    ).get_json()
    api = reader.test_client()
    first = api.get("/api/threads")
    before = revision(sql)

    assert alice.patch(f"/api/threads/{thread['slug']}", json={"body": "edited"}).status_code == 200
    _run(sql, "UPDATE accounts SET email = 'a@example.org' WHERE handle = 'alice'")
    auth.signup("bob")

    assert revision(sql) == before
    statements = Statements(reader)
    try:
        again, sent = statements.during(lambda: api.get("/api/threads"))
    finally:
        statements.close()
    assert again.get_data() == first.get_data()
    assert len(sent) == 1 and "forum_revision" in sent[0]


def test_without_a_revision_row_nothing_is_kept_and_lists_stay_right(
    reader: Flask, auth: AuthActions, sql: Engine, database_url: str
) -> None:
    slug = make_category(auth.admin())
    auth.signup("alice").post("/api/threads", json={"title": "One", "body": "x", "category": slug})
    _run(sql, "DELETE FROM forum_revision")
    try:
        api = reader.test_client()
        assert api.get("/api/threads").status_code == 200
        assert len(reader.extensions["hearth_thread_pages"]) == 0
        _run(sql, "UPDATE threads SET title = 'Changed'")
        assert api.get("/api/threads").get_json() == fresh_list(database_url)
        assert api.get("/api/threads").get_json()["items"][0]["title"] == "Changed"
    finally:
        _run(sql, "INSERT INTO forum_revision (id, value) VALUES (1, 1)")


def test_the_revision_table_holds_one_row(sql: Engine) -> None:
    with pytest.raises(Exception) as raised:
        _run(sql, "INSERT INTO forum_revision (id, value) VALUES (2, 1)")
    assert "ck_forum_revision_one_row" in str(raised.value) or "CHECK" in str(raised.value)


def test_an_empty_page_is_not_kept(reader: Flask) -> None:
    api = reader.test_client()
    assert api.get("/api/threads").get_json() == {"items": [], "next_cursor": None}
    assert len(reader.extensions["hearth_thread_pages"]) == 0


def test_kept_pages_are_bounded_and_a_page_is_served_only_at_its_revision() -> None:
    pages: Pages[str, str] = Pages(capacity=2)
    pages.put("a", 5, "page a")
    pages.put("b", 5, "page b")
    assert pages.get("a", 5) == "page a"
    assert pages.get("a", 6) is None
    pages.put("c", 5, "page c")  # "b" was used least recently
    assert (len(pages), pages.kept_revision("b"), pages.kept_revision("a")) == (2, None, 5)
    pages.put("a", 4, "older read")  # a slower request read an older snapshot
    assert pages.get("a", 5) == "page a"
    pages.put("a", 6, "newer read")
    assert (pages.get("a", 5), pages.get("a", 6)) == (None, "newer read")


def test_each_app_keeps_its_own_pages(app: Flask, reader: Flask) -> None:
    assert app.extensions["hearth_thread_pages"] is not reader.extensions["hearth_thread_pages"]
