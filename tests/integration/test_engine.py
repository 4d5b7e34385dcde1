"""Connection pooling: idle PostgreSQL connections are checked before use, busy ones are not;
psycopg cursors describe their results only when somebody reads the description."""

from __future__ import annotations

import time

import psycopg
import pytest
from sqlalchemy import Engine, column, create_engine, select, text

from app import extensions, pg_cursor


def _postgres(database_url: str) -> str:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL pass only: SQLite connections do not go away")
    return database_url


def _pings(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    seen: list[object] = []
    real = engine.dialect.do_ping

    def counting(dbapi_connection: object) -> bool:
        seen.append(dbapi_connection)
        return real(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counting)
    return seen


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    return int(pid)


def _terminate(admin: Engine, pid: int) -> None:
    """Terminate a backend the way a restart does, and wait (up to 5 s) until it has gone."""
    with admin.connect() as connection:
        assert connection.execute(
            text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid}
        ).scalar()


def test_busy_connections_are_not_pinged_idle_ones_are(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(extensions, "IDLE_PING_SECONDS", 0.3)
    engine = extensions.make_engine(_postgres(database_url))
    pings = _pings(engine, monkeypatch)
    try:
        for _ in range(3):
            with engine.connect() as connection:
                assert connection.execute(text("SELECT 1")).scalar() == 1
        assert pings == []
        time.sleep(0.4)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT 1")).scalar() == 1
        assert len(pings) == 1
    finally:
        engine.dispose()


def test_idle_connection_killed_by_the_server_is_replaced_before_a_request_sees_it(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(extensions, "IDLE_PING_SECONDS", 0.3)
    url = _postgres(database_url)
    engine = extensions.make_engine(url)
    admin = create_engine(url)
    try:
        victim = _backend_pid(engine)
        _terminate(admin, victim)
        time.sleep(0.4)
        assert _backend_pid(engine) != victim
    finally:
        engine.dispose()
        admin.dispose()


def test_connection_terminated_moments_ago_is_replaced_without_waiting_for_the_idle_ping(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fast restart (pg_ctl restart -m fast on a small cluster) is quicker than the idle
    # ping; the first request after it must still not see the dead connection.
    monkeypatch.setattr(extensions, "IDLE_PING_SECONDS", 60.0)
    url = _postgres(database_url)
    engine = extensions.make_engine(url)
    admin = create_engine(url)
    pings = _pings(engine, monkeypatch)
    try:
        victim = _backend_pid(engine)
        _terminate(admin, victim)
        replacement = _backend_pid(engine)
        assert replacement != victim
        assert len(pings) == 1
        assert _backend_pid(engine) == replacement
        assert len(pings) == 1
    finally:
        engine.dispose()
        admin.dispose()


def _described(description: object) -> list[tuple[object, ...]]:
    assert description is not None
    return [tuple(each) for each in description]  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["default", "for_reads", "autocommit"])
def test_every_engine_describes_results_exactly_as_psycopg_does(
    database_url: str, kind: str
) -> None:
    url = _postgres(database_url)
    engine = extensions.make_engine(
        url, for_reads=kind == "for_reads", autocommit=kind == "autocommit"
    )
    query = "SELECT 1 AS one, 'x'::varchar(7) AS two, now() AS three, NULL::numeric(5, 2)"
    try:
        with engine.connect() as connection:
            dbapi_connection = connection.connection.dbapi_connection
            assert dbapi_connection is not None
            cursor = dbapi_connection.cursor()
            assert type(cursor) is pg_cursor.LazyDescriptionCursor
            plain = psycopg.Cursor(dbapi_connection)
            plain.execute(query)
            cursor.execute(query)
            first = cursor.description
            assert isinstance(first, pg_cursor.LazyDescription)
            assert len(first) == 4
            assert _described(first) == _described(plain.description)
            assert first[0].name == "one" and first[-1].name == "numeric"
            assert [each.name for each in first[1:3]] == ["two", "three"]
            # A description read before the next statement still describes its own result.
            taken = cursor.description
            cursor.execute("SELECT 2 AS other")
            assert [each.name for each in taken] == ["one", "two", "three", "numeric"]
            assert [each.name for each in cursor.description] == ["other"]
            cursor.execute("SET LOCAL statement_timeout = 0")
            assert cursor.description is None
            # SQLAlchemy's uncached path (text) reads every column's name and type.
            row = connection.execute(text("SELECT 1 AS a, 'b' AS b")).mappings().one()
            assert dict(row) == {"a": 1, "b": "b"}
    finally:
        engine.dispose()


def test_a_cached_statement_builds_no_column_description(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLAlchemy only checks a cached statement's description for None: building psycopg's
    Column objects for it was ~0.85 µs a column on every statement."""
    engine = extensions.make_engine(_postgres(database_url), for_reads=True)
    built: list[int] = []
    real = pg_cursor.Column

    def counting(result: object, index: int) -> object:
        built.append(index)
        return real(result, index)  # type: ignore[arg-type]

    monkeypatch.setattr(pg_cursor, "Column", counting)
    numbers = select(column("n"), column("m")).select_from(
        text("(SELECT 1 AS n, 2 AS m) AS numbers")
    )
    try:
        with engine.connect() as connection:
            built.clear()  # the dialect's own queries on the first connect
            assert connection.execute(numbers).one() == (1, 2)
            first_time = len(built)
            assert first_time == 2  # the first execution reads the names to build its metadata
            assert connection.execute(numbers).one() == (1, 2)
            assert connection.execute(numbers).mappings().one() == {"n": 1, "m": 2}
        assert len(built) == first_time
    finally:
        engine.dispose()
