"""Thread-list pages a worker keeps: served again only while the forum's revision is unchanged.

Two apps on one database stand for two workers (or two hosts): one keeps pages, the other (or
SQL run by hand) changes the forum, and every list the first serves afterwards must equal what a
worker with nothing kept reads from the database."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
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


@contextmanager
def worker(database_url: str) -> Iterator[Flask]:
    """Another API worker on the same database, with pages of its own."""
    app = make_app(database_url)
    try:
        yield app
    finally:
        Database.dispose(app)


@pytest.fixture
def reader(database_url: str) -> Iterator[Flask]:
    """A second worker on the same database: it keeps the pages under test."""
    with worker(database_url) as app:
        yield app


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
    with worker(database_url) as app:
        return app.test_client().get(path).get_json()


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
    cookie = alice.get_cookie("storyden-session").value
    paths = ("/api/threads", f"/api/threads?category={general}", "/api/threads?limit=2")
    # One worker per way of asking, so each keeps its own pages and each is checked for going
    # stale: the token's statement, the cookie's, and a guest's revision read.
    others = ExitStack()
    workers = {
        "token": reader,
        "cookie": others.enter_context(worker(database_url)),
        "guest": others.enter_context(worker(database_url)),
    }
    clients = {name: worker.test_client() for name, worker in workers.items()}
    clients["cookie"].set_cookie("storyden-session", cookie)
    headers = {"token": bearer(token), "cookie": {}, "guest": {}}

    def kept_pages_match_the_database() -> None:
        for path in paths:
            expected = fresh_list(database_url, path)
            for name, client in clients.items():
                assert client.get(path, headers=headers[name]).get_json() == expected, (name, path)

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
    try:
        kept_pages_match_the_database()
        assert all(
            len(worker.extensions["hearth_thread_pages"]) == 3 for worker in workers.values()
        )
        for name, change in changes:
            before = revision(sql)
            response = change()
            assert getattr(response, "status_code", 200) < 300, name
            assert revision(sql) > before, name
            kept_pages_match_the_database()
    finally:
        others.close()


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
    auth.signin("alice")  # a new session row

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
        _run(sql, f"INSERT INTO forum_revision (id, value) VALUES (1, {time.time_ns() // 1000})")


def test_the_revision_table_holds_one_row(sql: Engine) -> None:
    with pytest.raises(Exception) as raised:
        _run(sql, "INSERT INTO forum_revision (id, value) VALUES (2, 1)")
    assert "ck_forum_revision_one_row" in str(raised.value) or "CHECK" in str(raised.value)


def test_an_empty_page_is_not_kept(reader: Flask) -> None:
    api = reader.test_client()
    assert api.get("/api/threads").get_json() == {"items": [], "next_cursor": None}
    assert len(reader.extensions["hearth_thread_pages"]) == 0


def test_kept_pages_are_bounded_by_weight_and_served_only_at_their_revision() -> None:
    pages: Pages[str, str] = Pages(capacity=10)
    pages.put("a", 5, "page a", weight=4)
    pages.put("b", 5, "page b", weight=4)
    assert pages.get("a", 5) == "page a"
    assert pages.get("a", 6) is None
    pages.put("c", 5, "page c", weight=4)  # over 10: "b" was used least recently
    assert (len(pages), pages.weight) == (2, 8)
    assert (pages.kept_revision("b"), pages.kept_revision("a")) == (None, 5)
    pages.put("a", 4, "older read", weight=1)  # a slower request read an older snapshot
    assert (pages.get("a", 5), pages.weight) == ("page a", 8)
    pages.put("a", 6, "newer read", weight=2)
    assert (pages.get("a", 5), pages.get("a", 6), pages.weight) == (None, "newer read", 6)
    pages.put("huge", 7, "never kept", weight=11)
    assert (pages.kept_revision("huge"), pages.weight) == (None, 6)


def test_a_client_varying_page_size_and_cursor_cannot_grow_a_worker_past_its_bound(
    reader: Flask, auth: AuthActions
) -> None:
    slug = make_category(auth.admin())
    alice = auth.signup("alice")
    for n in range(12):
        alice.post("/api/threads", json={"title": f"T{n}", "body": "x", "category": slug})
    reader.extensions["hearth_thread_pages"] = pages = Pages(capacity=40)
    api = reader.test_client()
    for limit in range(1, 13):
        assert api.get(f"/api/threads?limit={limit}").status_code == 200
    assert pages.weight <= 40
    assert len(pages) < 12


@pytest.mark.parametrize("limit", ["\u00b2", "\u0661", "0", "101", "-1", "1.5"])
def test_a_page_size_that_is_not_a_plain_whole_number_is_400(
    client: FlaskClient, limit: str
) -> None:
    response = client.get("/api/threads", query_string={"limit": limit})
    assert response.status_code == 400
    assert response.get_json()["fields"] == {"limit": "must be a whole number from 1 to 100"}


def test_a_cursor_that_is_not_ascii_is_400(client: FlaskClient) -> None:
    response = client.get("/api/threads", query_string={"cursor": "\u0661" * 26})
    assert response.status_code == 400
    assert response.get_json()["fields"] == {"cursor": "not a cursor this API returned"}


def test_each_app_keeps_its_own_pages(app: Flask, reader: Flask) -> None:
    assert app.extensions["hearth_thread_pages"] is not reader.extensions["hearth_thread_pages"]


FORUM = (
    "INSERT INTO accounts (id, handle, name, email_verified, created_at, updated_at) VALUES "
    "('a1', 'alice', 'Alice', false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP), "
    "('a2', 'bob', 'Bob', false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
    "INSERT INTO categories (id, slug, name, description, created_at) VALUES "
    "('c1', 'general', 'General', '', CURRENT_TIMESTAMP), "
    "('c2', 'news', 'News', '', CURRENT_TIMESTAMP)",
    "INSERT INTO threads (id, slug, title, body, category_id, author_id, created_at, updated_at) "
    "VALUES ('t1', 'one', 'One', 'x', 'c1', 'a1', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP), "
    "('t2', 'two', 'Two', 'x', 'c1', 'a1', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
)
# Every change to what a page shows, made by hand, as the triggers must see it.
RAISING = {
    "thread added": "INSERT INTO threads (id, slug, title, body, category_id, author_id, "
    "created_at, updated_at) VALUES ('t3', 's3', 'T', 'x', 'c1', 'a1', CURRENT_TIMESTAMP, "
    "CURRENT_TIMESTAMP)",
    "thread removed": "DELETE FROM threads WHERE id = 't2'",
    "thread id": "UPDATE threads SET id = 't0' WHERE id = 't2'",
    "thread slug": "UPDATE threads SET slug = 'uno' WHERE id = 't1'",
    "thread title": "UPDATE threads SET title = 'Uno' WHERE id = 't1'",
    "thread category": "UPDATE threads SET category_id = 'c2' WHERE id = 't1'",
    "thread author": "UPDATE threads SET author_id = 'a2' WHERE id = 't1'",
    "thread creation time": "UPDATE threads SET created_at = CURRENT_TIMESTAMP WHERE id = 't1'",
    "thread reply count": "UPDATE threads SET reply_count = 9 WHERE id = 't1'",
    "reply added": "INSERT INTO replies (id, thread_id, body, author_id, created_at) "
    "VALUES ('r1', 't1', 'r', 'a2', CURRENT_TIMESTAMP)",
    "category added": "INSERT INTO categories (id, slug, name, description, created_at) "
    "VALUES ('c3', 'more', 'More', '', CURRENT_TIMESTAMP)",
    "category removed": "DELETE FROM categories WHERE id = 'c2'",
    "category id": "UPDATE categories SET id = 'c0' WHERE id = 'c2'",
    "category slug": "UPDATE categories SET slug = 'talk' WHERE id = 'c1'",
    "account added": "INSERT INTO accounts (id, handle, name, email_verified, created_at, "
    "updated_at) VALUES ('a3', 'carol', 'Carol', false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
    "account removed": "DELETE FROM accounts WHERE id = 'a2'",
    "account id": "UPDATE accounts SET id = 'a0' WHERE id = 'a2'",
    "account handle": "UPDATE accounts SET handle = 'ally' WHERE id = 'a1'",
    "account name": "UPDATE accounts SET name = 'Ally' WHERE id = 'a1'",
}
KEEPING = {
    "thread body": "UPDATE threads SET body = 'edited', updated_at = CURRENT_TIMESTAMP",
    "category name and description": "UPDATE categories SET name = 'Misc', description = 'd' "
    "WHERE id = 'c2'",
    "account email": "UPDATE accounts SET email = 'a@example.org', email_verified = true",
}


def revisions_around(sql: Engine, change: str) -> tuple[int, int]:
    """The revision before and after one change by hand to a small forum."""
    for statement in FORUM:
        _run(sql, statement)
    before = revision(sql)
    _run(sql, change)
    return before, revision(sql)


@pytest.mark.parametrize("change", sorted(RAISING))
def test_each_change_a_page_shows_raises_the_revision(sql: Engine, change: str) -> None:
    before, after = revisions_around(sql, RAISING[change])
    assert after > before


@pytest.mark.parametrize("change", sorted(KEEPING))
def test_changes_no_page_shows_leave_the_revision(sql: Engine, change: str) -> None:
    before, after = revisions_around(sql, KEEPING[change])
    assert after == before


def test_an_open_forum_write_holds_back_no_other(sql: Engine) -> None:
    """PostgreSQL raises the revision as a transaction commits, not at its first change: an
    idle transaction (an operator's `psql`) leaves every other forum write free."""
    if sql.dialect.name != "postgresql":
        pytest.skip("PostgreSQL pass only: SQLite has one writer at a time anyway")
    for statement in FORUM:
        _run(sql, statement)
    before = revision(sql)
    with sql.connect() as idle:
        idle.execute(text("UPDATE threads SET title = 'Open' WHERE id = 't1'"))
        with sql.connect() as other:
            other.execute(text("SET lock_timeout = '2s'"))
            other.execute(text("UPDATE threads SET title = 'Done' WHERE id = 't2'"))
            other.commit()
        assert revision(sql) > before
        between = revision(sql)
        idle.commit()
    assert revision(sql) > between
