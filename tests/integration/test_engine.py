"""Connection pooling: idle PostgreSQL connections are checked before use, busy ones are not."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import Engine, create_engine, text

from app import extensions


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
