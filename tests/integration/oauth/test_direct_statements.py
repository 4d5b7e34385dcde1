"""app.direct runs the hottest statements on the DBAPI cursor: it must answer, begin transactions
and fail exactly as `Connection.execute` does, on both databases."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import (
    Column,
    Connection,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    literal_column,
    select,
    text,
)
from sqlalchemy.engine import Row
from sqlalchemy.exc import DBAPIError, OperationalError, StatementError

from app import direct
from app.accounts.service import _session_statement
from app.auth import SESSION_COOKIE, sha256
from app.extensions import db
from app.models import Token
from app.oauth import server, tokens
from app.oauth.keys import provider_keys
from tests.integration.oauth.conftest import OAuthActions


@pytest.fixture
def issued(app: Flask, oauth: OAuthActions) -> dict[str, Any]:
    """A client's client_id, with an access and a refresh token issued to it."""
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    body = oauth.tokens(browser, client)
    with app.app_context():
        claims = tokens.decode_access_token(provider_keys(), body["access_token"])
    assert claims is not None
    cookie = browser.get_cookie(SESSION_COOKIE)
    assert cookie is not None
    return {"client_id": client.client_id, "jti": claims["jti"], "session": cookie.value, **body}


@pytest.fixture
def connection(app: Flask) -> Iterator[Connection]:
    """A connection of the app's main engine, outside any request."""
    with app.app_context(), db.engine.connect() as connection:
        yield connection


def _refresh_params(issued: dict[str, Any]) -> dict[str, str]:
    return {"client_id": issued["client_id"], "token_hash": sha256(issued["refresh_token"])}


def test_direct_first_returns_the_row_connection_execute_returns(
    issued: dict[str, Any], connection: Connection
) -> None:
    bearer = tokens._bearer_statement()
    params = {"jti": issued["jti"], "now": datetime.now(UTC)}
    fast = direct.first(connection, bearer, params)
    slow = connection.execute(bearer, params).first()
    assert slow is not None
    assert not isinstance(fast, Row)  # the direct path ran, not Connection.execute
    assert fast._asdict() == dict(slow._mapping)
    assert fast.client_id == issued["client_id"]

    # Client and refresh columns side by side, the timestamps aware (UTCDateTime's processor).
    refresh = server._client_and_refresh_statement()
    fast = direct.first(connection, refresh, _refresh_params(issued))
    slow = connection.execute(refresh, _refresh_params(issued)).first()
    assert slow is not None
    assert not isinstance(fast, Row)
    assert tuple(fast) == tuple(slow)
    assert fast.expires_at.tzinfo is not None
    assert fast.expires_at == slow.expires_at

    # The session cookie's principal, with the session's creation time as auth_time.
    session = _session_statement()
    params = {"token_hash": sha256(issued["session"]), "now": datetime.now(UTC)}
    fast = direct.first(connection, session, params)
    slow = connection.execute(session, params).first()
    assert slow is not None
    assert not isinstance(fast, Row)
    assert fast._asdict() == dict(slow._mapping)
    assert fast.session_created_at.tzinfo is not None


def test_direct_first_binds_timestamps_as_connection_execute_does(
    issued: dict[str, Any], connection: Connection
) -> None:
    """The bearer statement compares `now` with the token's expiry: the parameter must be
    bound through UTCDateTime's processor (UTC, and naive on SQLite), or SQLite compares the
    text of a local time with the stored UTC text."""
    expires_at = connection.scalar(select(Token.expires_at).where(Token.id == issued["jti"]))
    assert expires_at is not None
    ahead = timezone(timedelta(hours=5))
    bearer = tokens._bearer_statement()
    for now, alive in (
        ((expires_at - timedelta(microseconds=1)).astimezone(ahead), True),
        (expires_at.astimezone(ahead), False),
        (expires_at + timedelta(seconds=1), False),
    ):
        params = {"jti": issued["jti"], "now": now}
        assert (direct.first(connection, bearer, params) is not None) is alive
        assert (connection.execute(bearer, params).first() is not None) is alive


def test_direct_first_answers_none_for_no_row(connection: Connection) -> None:
    params = {"jti": "no-such-token", "now": datetime.now(UTC)}
    assert direct.first(connection, tokens._bearer_statement(), params) is None


def test_direct_statement_runs_in_the_connections_transaction(
    issued: dict[str, Any], connection: Connection
) -> None:
    """A direct statement begins the transaction as autobegin would; rollback undoes it and
    commit keeps it."""
    row = direct.first(connection, server._client_and_refresh_statement(), _refresh_params(issued))
    refresh_id = row.id_1  # the second `id` column: the token's, after the client's
    assert connection.in_transaction()
    connection.rollback()

    claim = tokens._CLAIMS["refresh"]
    params = {"claim_id": refresh_id, "now": datetime.now(UTC)}
    assert direct.rowcount(connection, claim, params) == 1
    assert connection.in_transaction()
    connection.rollback()
    rotated = select(Token.rotated_at).where(Token.id == refresh_id)
    assert connection.scalar(rotated) is None

    assert direct.rowcount(connection, claim, params) == 1
    connection.commit()
    assert connection.scalar(rotated) is not None
    # The claim is conditional: a second one changes nothing.
    assert direct.rowcount(connection, claim, params) == 0


def test_direct_statements_reach_connection_event_listeners(
    issued: dict[str, Any], connection: Connection
) -> None:
    """Statement budgets count with before_cursor_execute: while someone listens, every direct
    statement goes through Connection.execute and is seen."""
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])

    bearer = tokens._bearer_statement()
    params = {"jti": issued["jti"], "now": datetime.now(UTC)}
    rows = _copies(connection, issued, 1)
    event.listen(connection.engine, "before_cursor_execute", record)
    try:
        assert direct.first(connection, bearer, params) is not None
        claim = tokens._CLAIMS["refresh"]
        assert direct.rowcount(connection, claim, {"claim_id": "x", "now": params["now"]}) == 0
        direct.execute_many(connection, tokens._TOKENS_INSERT, rows)
    finally:
        event.remove(connection.engine, "before_cursor_execute", record)
    assert len(seen) == 3
    assert seen[0].startswith("SELECT accounts.id")
    assert seen[1].startswith("UPDATE oauth_tokens SET rotated_at")
    assert seen[2].startswith("INSERT INTO oauth_tokens")


def test_direct_statement_fails_with_the_error_connection_execute_raises(
    app: Flask, connection: Connection
) -> None:
    missing = select(Table("no_such_table", MetaData(), Column("id", String)))
    with pytest.raises(DBAPIError) as slow:
        connection.execute(missing).first()
    connection.rollback()
    with pytest.raises(DBAPIError) as fast:
        direct.first(connection, missing, {})
    assert type(fast.value) is type(slow.value)
    assert type(fast.value.orig) is type(slow.value.orig)
    assert fast.value.statement == slow.value.statement
    assert not fast.value.connection_invalidated
    assert not connection.invalidated
    connection.rollback()
    assert connection.scalar(text("SELECT 1")) == 1
    # The failed statement's cursor was closed with the error; the next one gets a new cursor.
    assert direct.first(connection, select(literal_column("1").label("one")), {}) == (1,)

    # A bind processor's refusal (UTCDateTime takes no naive datetime) is a StatementError.
    naive = {"jti": "x", "now": datetime.now(UTC).replace(tzinfo=None)}
    bearer = tokens._bearer_statement()
    with pytest.raises(StatementError, match="naive datetime") as refused:
        connection.execute(bearer, naive)
    with pytest.raises(StatementError, match="naive datetime") as refused_directly:
        direct.first(connection, bearer, naive)
    assert type(refused_directly.value) is type(refused.value)
    assert type(refused_directly.value.orig) is type(refused.value.orig)


def test_direct_statement_on_a_terminated_backend_invalidates_its_connection(
    database_url: str, issued: dict[str, Any], app: Flask
) -> None:
    """A backend that died mid-request (a restart, pg_terminate_backend) surfaces as the
    OperationalError app.errors answers 503 for, and the pool replaces the connection and the
    ones it handed out before (they may have lost their server too)."""
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL pass only: a SQLite connection has no server to lose")
    bearer = tokens._bearer_statement()
    params = {"jti": issued["jti"], "now": datetime.now(UTC)}
    with app.app_context(), db.engine.connect() as victim:
        killer = db.engine.connect()
        older = killer.scalar(text("SELECT pg_backend_pid()"))
        pid = victim.scalar(text("SELECT pg_backend_pid()"))
        victim.rollback()
        assert killer.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        killer.rollback()
        deadline = time.monotonic() + 10
        while killer.scalar(
            text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pid}
        ):
            killer.rollback()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with pytest.raises(OperationalError) as failed:
            direct.first(victim, bearer, params)
        assert failed.value.connection_invalidated
        assert victim.invalidated
        victim.rollback()
        # The invalidated connection reconnects on next use, with a cursor of its own.
        assert direct.first(victim, bearer, params) is not None
        kept = victim.connection.info[direct._CURSOR_KEY]
        assert kept.connection is victim.connection.dbapi_connection
        assert victim.scalar(text("SELECT pg_backend_pid()")) == kept.connection.info.backend_pid
        killer.close()
        with db.engine.connect() as fresh:
            assert fresh.scalar(text("SELECT pg_backend_pid()")) not in (older, pid)


def test_direct_statements_keep_one_cursor_per_postgresql_connection(
    database_url: str, issued: dict[str, Any], app: Flask
) -> None:
    """psycopg fetches whole results, so its cursor can serve every direct statement of its
    connection, across checkouts; an sqlite3 cursor would hold its statement open, so SQLite
    takes a new one each time."""
    bearer = tokens._bearer_statement()
    params = {"jti": issued["jti"], "now": datetime.now(UTC)}
    with app.app_context(), db.engine.connect() as connection:
        assert direct.first(connection, bearer, params) is not None
        kept = connection.connection.info.get(direct._CURSOR_KEY)
    if not database_url.startswith("postgresql"):
        assert kept is None
        return
    assert kept is not None
    # A pool of one, so the second checkout is sure to get the same DBAPI connection.
    engine = create_engine(database_url, pool_size=1, max_overflow=0)
    try:
        with engine.connect() as first:
            assert direct.first(first, bearer, params) is not None
            assert direct.rowcount(first, text("SELECT 1").columns(), {}) == 1
            dbapi_connection = first.connection.dbapi_connection
            kept = first.connection.info[direct._CURSOR_KEY]
            assert kept.connection is dbapi_connection
        with engine.connect() as again:
            assert again.connection.dbapi_connection is dbapi_connection
            assert direct.first(again, bearer, params) is not None
            direct.execute_many(again, text("SELECT 1"), [{}, {}])
            assert again.connection.info[direct._CURSOR_KEY] is kept
            assert not kept.closed
    finally:
        engine.dispose()


def _copies(connection: Connection, issued: dict[str, Any], count: int) -> list[dict[str, Any]]:
    """Rows for new tokens like the issued access token, stamped in a non-UTC timezone."""
    access = connection.execute(select(Token).where(Token.id == issued["jti"])).one()
    now = datetime.now(timezone(timedelta(hours=-3)))
    return [
        {
            **{name: getattr(access, name) for name in tokens._ROW_COLUMNS},
            "id": f"direct-{index}",
            "created_at": now,
            "expires_at": now + timedelta(minutes=index + 1),
        }
        for index in range(count)
    ]


def test_token_insert_names_every_column_because_direct_fills_in_no_defaults() -> None:
    assert set(tokens._ROW_COLUMNS) == set(Token.__table__.c.keys())


def test_direct_execute_many_writes_each_row_as_given(
    issued: dict[str, Any], connection: Connection
) -> None:
    rows = _copies(connection, issued, 2)
    direct.execute_many(connection, tokens._TOKENS_INSERT, rows)
    connection.commit()
    stored = connection.execute(
        select(Token.id, Token.created_at, Token.expires_at, Token.scope)
        .where(Token.id.like("direct-%"))
        .order_by(Token.id)
    ).all()
    assert [tuple(row) for row in stored] == [
        (row["id"], row["created_at"], row["expires_at"], row["scope"]) for row in rows
    ]
    assert all(row.expires_at.tzinfo is not None for row in stored)
