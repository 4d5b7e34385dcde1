"""Views marked @read_only read outside a transaction on PostgreSQL and can never write."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask, Response, jsonify
from flask.testing import FlaskClient
from psycopg import pq
from sqlalchemy import create_engine, event, func, insert, select, text
from werkzeug.test import TestResponse

from app import extensions
from app.db import new_id, rfc3339
from app.extensions import Database, ReadOnlyViolation, db, read_only
from app.models import Account, AuthSession, Category
from tests.conftest import PASSWORD, AuthActions, account_with_expired_session, make_app
from tests.integration.oauth.conftest import OAuthActions, bearer

SELF = "/api/accounts/self"
SERVER_ERROR = {"error": "server_error", "error_description": "Something went wrong."}


def _postgres(database_url: str) -> str:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL pass only: SQLite sends no BEGIN before a SELECT")
    return database_url


def _add_test_views(app: Flask) -> None:
    """Views only these tests route to: reads and writes with and without the mark."""

    @read_only
    def orm_write() -> Response:
        db.session.add(Category(slug="orm", name="ORM", description=""))
        db.session.flush()
        return jsonify({})

    @read_only
    def core_write() -> Response:
        db.session.execute(
            insert(Category).values(id=new_id(), slug="core", name="Core", description="")
        )
        return jsonify({})

    @read_only
    def text_write() -> Response:
        db.connection.execute(
            text(
                "INSERT INTO categories (id, slug, name, description, created_at) "
                "VALUES (:id, 'text', 'Text', '', CURRENT_TIMESTAMP)"
            ),
            {"id": new_id()},
        )
        return jsonify({})

    def unmarked_read() -> Response:
        return jsonify({"categories": db.session.scalar(select(func.count(Category.id)))})

    app.add_url_rule("/test/orm-write", view_func=orm_write, methods=["GET", "POST"])
    app.add_url_rule("/test/core-write", view_func=core_write)
    app.add_url_rule("/test/text-write", view_func=text_write)
    app.add_url_rule("/test/unmarked-read", view_func=unmarked_read)


@pytest.fixture
def any_app(database_url: str) -> Iterator[Flask]:
    """The API on this pass's database with the test views."""
    app = make_app(database_url)
    _add_test_views(app)
    yield app
    Database.dispose(app)


@pytest.fixture
def pg_app(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    """The API on PostgreSQL with the test views; idle pings off so round trips are exact."""
    monkeypatch.setattr(extensions, "IDLE_PING_SECONDS", 3600.0)
    app = make_app(_postgres(database_url))
    _add_test_views(app)
    yield app
    Database.dispose(app)


@dataclass
class Traffic:
    """What one request made PostgreSQL do, as the server reported it."""

    commands: list[str] = field(default_factory=list)  # command tags, "ERROR" for an error
    round_trips: int = 0  # ReadyForQuery messages: one per exchange the client waited for
    backends: list[int] = field(default_factory=list)  # server pids of the connections used


class Wire:
    """libpq's protocol trace of every pooled connection, read back per request.

    psycopg sends BEGIN and ROLLBACK itself, outside SQLAlchemy's cursor events; the trace sees
    everything that reaches the server."""

    def __init__(self, app: Flask) -> None:
        self.engines = Database.engines(app)
        self.file = tempfile.NamedTemporaryFile("w", suffix=".trace")  # noqa: SIM115
        self.traced: list[Any] = []
        self.backends: list[int] = []
        for engine in self.engines:
            event.listen(engine, "checkout", self._checkout)

    def _checkout(self, dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        self.backends.append(dbapi_connection.info.backend_pid)
        if dbapi_connection in self.traced:
            return
        # psycopg's automatic server-side prepare spends one extra round trip on a statement's
        # fifth run; keep it out of the counts, which are about transactions.
        dbapi_connection.prepare_threshold = None
        dbapi_connection.pgconn.trace(self.file.fileno())
        dbapi_connection.pgconn.set_trace_flags(
            pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE
        )
        self.traced.append(dbapi_connection)

    def request(self, send: Callable[[], TestResponse]) -> tuple[TestResponse, Traffic]:
        # libpq writes the server's replies to the trace only when it next sends: stopping the
        # trace flushes them (the next checkout starts it again).
        self._untrace()
        start = os.path.getsize(self.file.name)
        self.backends = []
        response = send()
        self._untrace()
        with open(self.file.name) as trace:
            trace.seek(start)
            lines = trace.read().splitlines()
        traffic = Traffic(backends=self.backends)
        for line in lines:
            if line.startswith("B\t") and "\tCommandComplete\t" in line:
                match = re.search(r'CommandComplete\t "(\w+)', line)
                assert match is not None, line
                traffic.commands.append(match.group(1))
            elif line.startswith("B\t") and "\tErrorResponse\t" in line:
                traffic.commands.append("ERROR")
            elif line.startswith("B\t") and "\tReadyForQuery\t" in line:
                traffic.round_trips += 1
        return response, traffic

    def _untrace(self) -> None:
        for connection in self.traced:
            if not connection.closed:
                connection.pgconn.untrace()
        self.traced = []

    def close(self) -> None:
        for engine in self.engines:
            event.remove(engine, "checkout", self._checkout)
        self._untrace()
        self.file.close()


@pytest.fixture
def wire(pg_app: Flask) -> Iterator[Wire]:
    tracer = Wire(pg_app)
    yield tracer
    tracer.close()


def _bearer_token(app: Flask, browser: FlaskClient) -> str:
    oauth = OAuthActions(app)
    token: str = oauth.tokens(browser, oauth.make_client())["access_token"]
    return token


def test_marked_reads_send_only_their_selects(pg_app: Flask, wire: Wire) -> None:
    auth = AuthActions(pg_app)
    category = auth.admin().post("/api/categories", json={"name": "General"}).get_json()["slug"]
    browser = auth.signup("alice")
    browser.post("/api/threads", json={"title": "Hi", "body": "x", "category": category})
    token = _bearer_token(pg_app, browser)
    api = pg_app.test_client()

    me, traffic = wire.request(lambda: api.get(SELF, headers=bearer(token)))
    assert me.status_code == 200
    assert (traffic.commands, traffic.round_trips) == (["SELECT"], 1)

    # The session cookie's loader only reads too.
    me, traffic = wire.request(lambda: browser.get(SELF))
    assert me.status_code == 200
    assert (traffic.commands, traffic.round_trips) == (["SELECT"], 1)

    threads, traffic = wire.request(lambda: api.get("/api/threads", headers=bearer(token)))
    assert threads.status_code == 200
    # the token with its account and roles, then the page of threads
    assert (traffic.commands, traffic.round_trips) == (["SELECT", "SELECT"], 2)

    # A page this worker keeps: the token's statement also reads the forum's revision.
    head, traffic = wire.request(lambda: api.head("/api/threads", headers=bearer(token)))
    assert head.status_code == 200
    assert (traffic.commands, traffic.round_trips) == (["SELECT"], 1)

    # OIDC userinfo: one SELECT for the token's account, nothing else.
    claims, traffic = wire.request(lambda: api.get("/api/oauth/userinfo", headers=bearer(token)))
    assert claims.status_code == 200
    assert (traffic.commands, traffic.round_trips) == (["SELECT"], 1)

    # Unmarked views keep their transaction.
    unmarked, traffic = wire.request(lambda: api.get("/test/unmarked-read"))
    assert unmarked.get_json() == {"categories": 1}
    assert (traffic.commands, traffic.round_trips) == (["BEGIN", "SELECT", "ROLLBACK"], 3)


def test_write_after_a_marked_read_is_still_atomic(
    pg_app: Flask, wire: Wire, database_url: str
) -> None:
    token = _bearer_token(pg_app, AuthActions(pg_app).signup("alice"))
    admin = create_engine(database_url)
    try:
        with admin.begin() as connection:
            connection.execute(
                text(
                    "CREATE FUNCTION refuse_sessions() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'no new sessions'; END $$"
                )
            )
            connection.execute(
                text(
                    "CREATE TRIGGER refuse_sessions BEFORE INSERT ON sessions "
                    "FOR EACH ROW EXECUTE FUNCTION refuse_sessions()"
                )
            )
        me, read = wire.request(lambda: pg_app.test_client().get(SELF, headers=bearer(token)))
        assert me.status_code == 200
        assert read.commands == ["SELECT"]

        # Sign-up checks the handle, reads the role, inserts the account and its role, then
        # fails inserting the session.
        failed, write = wire.request(
            lambda: pg_app.test_client().post(
                "/api/auth/password/signup", json={"handle": "bob", "password": "sturdy-pass-99"}
            )
        )
        assert failed.status_code == 500
        assert failed.get_json() == SERVER_ERROR
        # The read used the autocommit pool; the write a transactional connection of its own.
        assert read.backends and write.backends
        assert set(write.backends).isdisjoint(read.backends)
        assert write.commands == [
            "BEGIN",
            "SELECT",
            "SELECT",
            "INSERT",
            "INSERT",
            "ERROR",
            "ROLLBACK",
        ]
        with admin.connect() as connection:
            assert connection.scalar(select(func.count()).where(Account.handle == "bob")) == 0
    finally:
        with admin.begin() as connection:
            connection.execute(text("DROP TRIGGER IF EXISTS refuse_sessions ON sessions"))
            connection.execute(text("DROP FUNCTION IF EXISTS refuse_sessions()"))
        admin.dispose()


def _crash(caplog: pytest.LogCaptureFixture) -> BaseException | None:
    """The exception behind the last `unhandled error` log record."""
    crashes = [r for r in caplog.records if r.getMessage() == "unhandled error"]
    assert crashes and crashes[-1].exc_info is not None
    return crashes[-1].exc_info[1]


def test_marked_view_that_writes_is_refused_and_nothing_is_written(
    any_app: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    """The ORM session refuses to flush; the database itself refuses Core and text() writes
    (SQLite's query_only, PostgreSQL's read-only transactions) and the error names the bug."""
    api = any_app.test_client()
    for path, message in (
        ("/test/orm-write", "Flush of Category refused: a @read_only request never writes."),
        ("/test/core-write", "INSERT refused: a @read_only request never writes."),
        ("/test/text-write", "INSERT refused: a @read_only request never writes."),
    ):
        refused = api.get(path)
        assert (refused.status_code, refused.get_json()) == (500, SERVER_ERROR), path
        error = _crash(caplog)
        assert isinstance(error, ReadOnlyViolation), path
        assert str(error) == message

    with any_app.app_context():
        assert db.session.scalar(select(func.count(Category.id))) == 0

    # The mark covers GET and HEAD only: a POST to the same view writes in a transaction.
    assert api.post("/test/orm-write", json={}).status_code == 200


def test_refused_writes_on_postgresql_never_open_a_transaction(
    pg_app: Flask, wire: Wire, caplog: pytest.LogCaptureFixture
) -> None:
    api = pg_app.test_client()
    flushed, traffic = wire.request(lambda: api.get("/test/orm-write"))
    assert flushed.status_code == 500
    assert (traffic.commands, traffic.round_trips) == ([], 0)

    # Autocommit with default_transaction_read_only: the server refuses the INSERT itself.
    inserted, traffic = wire.request(lambda: api.get("/test/core-write"))
    assert inserted.status_code == 500
    assert (traffic.commands, traffic.round_trips) == (["ERROR"], 1)
    assert isinstance(_crash(caplog), ReadOnlyViolation)

    written, traffic = wire.request(lambda: api.post("/test/orm-write", json={}))
    assert written.status_code == 200
    assert traffic.commands == ["BEGIN", "INSERT", "ROLLBACK"]  # the view flushes, never commits


def test_a_read_only_database_outside_marked_views_is_still_unavailable(
    database_url: str,
) -> None:
    """SQLITE_READONLY on the main engine (here a file opened read-only) is an outage, not a
    @read_only view's bug."""
    if not database_url.startswith("sqlite:///"):
        pytest.skip("SQLite pass only: opens the database file read-only")
    path = database_url.removeprefix("sqlite:///")
    app = make_app(f"sqlite:///file:{path}?mode=ro&uri=true")
    _add_test_views(app)
    try:
        written = app.test_client().post("/test/orm-write", json={})
    finally:
        Database.dispose(app)
    assert written.status_code == 503
    assert written.get_json()["error"] == "temporarily_unavailable"


def test_marked_views_answer_exactly_as_before(app: Flask, auth: AuthActions) -> None:
    oauth = OAuthActions(app)
    admin = auth.admin("root")
    signed_up = auth.signup("alice")
    alice_json = signed_up.post(
        "/api/auth/password/signin", json={"handle": "alice", "password": PASSWORD}
    ).get_json()
    token = oauth.tokens(signed_up, oauth.make_client())["access_token"]
    category = admin.post("/api/categories", json={"name": "General", "description": "Talk"})
    thread = signed_up.post(
        "/api/threads", json={"title": "Hello", "body": "First!", "category": "general"}
    ).get_json()
    reply = admin.post(f"/api/threads/{thread['slug']}/replies", json={"body": "Hi"}).get_json()
    with app.app_context():
        created = {
            handle: rfc3339(at)
            for handle, at in db.session.execute(select(Account.handle, Account.created_at))
        }
        root_id = db.session.scalar(select(Account.id).where(Account.handle == "root"))
    guest = app.test_client()

    assert signed_up.get(SELF).get_json() == alice_json
    by_token = app.test_client().get(SELF, headers=bearer(token))
    assert by_token.status_code == 200
    assert by_token.headers["Cache-Control"] == "no-store"
    assert by_token.get_json() == {
        "id": alice_json["id"],
        "handle": "alice",
        "name": "alice",
        "email": None,
        "roles": ["member"],
        "permissions": ["READ_PUBLISHED_THREADS", "CREATE_POST"],
    }
    listing = guest.get("/api/threads")
    assert listing.get_json() == {
        "items": [
            {
                "id": thread["id"],
                "slug": thread["slug"],
                "title": "Hello",
                "category": "general",
                "author": thread["author"],
                "created_at": thread["created_at"],
                "reply_count": 1,
            }
        ],
        "next_cursor": None,
    }
    head = guest.head("/api/threads")
    assert (head.status_code, head.data) == (200, b"")
    assert head.headers["Content-Length"] == listing.headers["Content-Length"]
    assert guest.get(f"/api/threads/{thread['slug']}").get_json() == {**thread, "replies": [reply]}
    assert guest.get("/api/categories").get_json() == {
        "items": [category.get_json()],
        "next_cursor": None,
    }
    root = {
        "id": root_id,
        "handle": "root",
        "name": "root",
        "created_at": created["root"],
        "roles": ["admin", "member"],
    }
    alice = {
        "id": alice_json["id"],
        "handle": "alice",
        "name": "alice",
        "created_at": created["alice"],
        "roles": ["member"],
    }
    assert guest.get("/api/profiles").get_json() == {
        "items": sorted([root, alice], key=lambda p: p["id"]),
        "next_cursor": None,
    }
    assert guest.get("/api/profiles/alice").get_json() == alice
    ready = guest.get("/health/ready")
    assert (ready.status_code, ready.get_json()) == (200, {"status": "ok"})


def test_cleanup_after_a_marked_read_still_writes_while_the_request_context_lives(
    database_url: str,
) -> None:
    app = make_app(database_url, CLEANUP_INTERVAL=timedelta(seconds=0))
    try:
        # No request before the one under test: the first response schedules the pass.
        account_with_expired_session(app, "alice")
        # The test client keeps the request context pushed inside `with`: the cleanup runs
        # in an app context of its own and must not inherit the read's session.
        with app.test_client() as client:
            response = client.get("/api/threads")
            assert response.status_code == 200
            response.close()
            with app.app_context():
                assert db.session.scalar(select(func.count(AuthSession.id))) == 0
    finally:
        Database.dispose(app)
