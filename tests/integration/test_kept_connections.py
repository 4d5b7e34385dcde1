"""A thread that keeps its connections (`Database.keep_connections`, what `wsgi.api` does for
gunicorn's sync worker) takes the same connection back request after request without going to
the pool, and gets it back in the state the pool would have given it."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from flask import Flask, Response, jsonify
from sqlalchemy import Engine, QueuePool, create_engine, event, func, insert, select, text

from app import extensions
from app.db import new_id
from app.extensions import Database, autocommit, db, read_only
from app.models import Category
from tests.conftest import make_app
from tests.integration.test_engine import _pings
from tests.unit.test_config import run_python


def _postgres(database_url: str) -> str:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL pass only: SQLite has no server to lose and no autocommit pool")
    return database_url


def _add_test_views(app: Flask) -> None:
    def _described() -> dict[str, Any]:
        dbapi_connection = db.connection.connection.dbapi_connection
        return {
            "dbapi": id(dbapi_connection),
            "autocommit": getattr(dbapi_connection, "autocommit", None),
            "categories": db.connection.scalar(select(func.count(Category.id))),
        }

    def write_without_commit() -> Response:
        # Core on the request's connection: no ORM session whose close would roll it back.
        db.connection.execute(
            insert(Category).values(
                id=new_id(), slug="uncommitted", name="Uncommitted", description=""
            )
        )
        return jsonify(_described())

    def describe() -> Response:
        return jsonify(_described())

    @read_only
    def describe_read() -> Response:
        return jsonify(_described())

    @autocommit
    def atomic_block() -> Response:
        with db.atomic():
            db.connection.execute(text("SELECT 1"))
        return jsonify(_described())

    @autocommit
    def describe_autocommit() -> Response:
        return jsonify(_described())

    def backend() -> Response:
        return jsonify({"pid": db.connection.execute(text("SELECT pg_backend_pid()")).scalar()})

    app.add_url_rule("/test/write", view_func=write_without_commit, methods=["POST"])
    app.add_url_rule("/test/describe", view_func=describe, methods=["POST"])
    app.add_url_rule("/test/describe-read", view_func=describe_read)
    app.add_url_rule("/test/atomic", view_func=atomic_block, methods=["POST"])
    app.add_url_rule("/test/describe-autocommit", view_func=describe_autocommit, methods=["POST"])
    app.add_url_rule("/test/backend", view_func=backend, methods=["POST"])


class Checkouts:
    """Pool checkouts per engine, counted by the pool's own event."""

    def __init__(self, engines: tuple[Engine, ...]) -> None:
        self.counts = dict.fromkeys(engines, 0)
        self.listeners = [(engine, self._listener(engine)) for engine in engines]
        for engine, listener in self.listeners:
            event.listen(engine, "checkout", listener)

    def _listener(self, engine: Engine) -> Any:
        def counted(*_args: Any) -> None:
            self.counts[engine] += 1

        return counted

    def total(self) -> int:
        return sum(self.counts.values())

    def remove(self) -> None:
        for engine, listener in self.listeners:
            event.remove(engine, "checkout", listener)


def _keeping_app(database_url: str) -> Flask:
    app = make_app(database_url)
    _add_test_views(app)
    Database.keep_connections(app)
    return app


@pytest.fixture
def keeping_app(database_url: str) -> Iterator[Flask]:
    app = _keeping_app(database_url)
    yield app
    Database.dispose(app)


def _parked(app: Flask) -> dict[Engine, Any]:
    parked: dict[Engine, Any] = app.extensions["hearth_db"].keeper.parked
    return parked


def _checked_out(app: Flask) -> int:
    return sum(cast(QueuePool, engine.pool).checkedout() for engine in Database.engines(app))


def test_the_keeping_thread_reuses_its_connection_without_a_pool_checkout(
    keeping_app: Flask,
) -> None:
    client = keeping_app.test_client()
    checkouts = Checkouts(Database.engines(keeping_app))
    try:
        seen = [client.post("/test/describe", json={}).get_json()["dbapi"] for _ in range(4)]
        reads = [client.get("/test/describe-read").get_json()["dbapi"] for _ in range(3)]
    finally:
        checkouts.remove()
    assert len(set(seen)) == 1
    assert len(set(reads)) == 1
    # One checkout for the writable engine and one for the read-only engine, then none.
    assert checkouts.total() == 2
    assert _checked_out(keeping_app) == 2
    assert len(_parked(keeping_app)) == 2


def test_a_kept_sqlite_connection_is_never_pinged(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite pass only")
    monkeypatch.setattr(extensions, "IDLE_PING_SECONDS", 0.0)
    app = _keeping_app(database_url)
    try:
        client = app.test_client()
        pings = _pings(Database.engines(app)[0], monkeypatch)
        seen = {client.post("/test/describe", json={}).get_json()["dbapi"] for _ in range(3)}
    finally:
        Database.dispose(app)
    assert len(seen) == 1
    assert pings == []


def test_without_keeping_every_request_checks_out_and_in(database_url: str) -> None:
    app = make_app(database_url)
    _add_test_views(app)
    checkouts = Checkouts(Database.engines(app))
    try:
        client = app.test_client()
        for _ in range(4):
            assert client.post("/test/describe", json={}).status_code == 200
    finally:
        checkouts.remove()
        assert _checked_out(app) == 0
        Database.dispose(app)
    assert checkouts.total() == 4
    assert _parked(app) == {}


def test_what_a_request_did_not_commit_is_rolled_back_before_the_next_request_reuses_it(
    keeping_app: Flask,
) -> None:
    client = keeping_app.test_client()
    wrote = client.post("/test/write", json={}).get_json()
    assert wrote["categories"] == 1  # its own flushed row, never committed
    after = client.post("/test/describe", json={}).get_json()
    assert after["dbapi"] == wrote["dbapi"]
    assert after["categories"] == 0
    # A second connection (what another worker uses) sees no row and waits for no lock.
    engine = create_engine(keeping_app.config["DATABASE_URL"])
    try:
        with engine.connect() as connection:
            assert connection.scalar(select(func.count(Category.id))) == 0
    finally:
        engine.dispose()


def test_a_parked_connection_holds_no_transaction(keeping_app: Flask) -> None:
    client = keeping_app.test_client()
    assert client.post("/test/write", json={}).status_code == 200
    assert client.get("/test/describe-read").status_code == 200
    assert len(_parked(keeping_app)) == 2
    for connection, _since in _parked(keeping_app).values():
        assert not connection.in_transaction()
        dbapi_connection = connection.connection.dbapi_connection
        if keeping_app.config["DATABASE_URL"].startswith("sqlite"):
            assert not dbapi_connection.in_transaction
        else:
            assert dbapi_connection.info.transaction_status.name == "IDLE"


def test_a_connection_that_ran_an_atomic_block_goes_back_to_the_pool_for_its_reset(
    database_url: str,
) -> None:
    app = _keeping_app(_postgres(database_url))
    try:
        client = app.test_client()
        handles = app.extensions["hearth_db"]
        autocommit_engine = handles.autocommit[0]
        inside = client.post("/test/atomic", json={}).get_json()
        assert inside["autocommit"] is False  # db.atomic's transaction, at the default level
        assert autocommit_engine not in _parked(app)
        assert cast(QueuePool, autocommit_engine.pool).checkedout() == 0
        after = client.post("/test/describe-autocommit", json={}).get_json()
        assert after["autocommit"] is True
        assert autocommit_engine in _parked(app)
        again = client.post("/test/describe-autocommit", json={}).get_json()
        assert again["dbapi"] == after["dbapi"]
        assert again["autocommit"] is True
    finally:
        Database.dispose(app)


def test_dispose_returns_the_parked_connections_to_their_pools(keeping_app: Flask) -> None:
    client = keeping_app.test_client()
    assert client.post("/test/describe", json={}).status_code == 200
    assert client.get("/test/describe-read").status_code == 200
    assert _checked_out(keeping_app) == 2
    Database.dispose(keeping_app)
    assert _parked(keeping_app) == {}
    assert _checked_out(keeping_app) == 0


def test_requests_in_another_thread_use_the_pool_and_park_nothing(keeping_app: Flask) -> None:
    statuses: list[int] = []

    def serve() -> None:
        client = keeping_app.test_client()
        statuses.extend(client.post("/test/describe", json={}).status_code for _ in range(2))

    thread = threading.Thread(target=serve)
    thread.start()
    thread.join(timeout=30)
    assert statuses == [200, 200]
    assert _parked(keeping_app) == {}
    assert _checked_out(keeping_app) == 0


def test_a_kept_connection_idle_longer_than_the_ping_interval_is_pinged_first(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(extensions, "IDLE_PING_SECONDS", 0.3)
    app = _keeping_app(_postgres(database_url))
    try:
        client = app.test_client()
        engine = Database.engines(app)[0]
        pings = _pings(engine, monkeypatch)
        first = client.post("/test/describe", json={}).get_json()["dbapi"]
        assert client.post("/test/describe", json={}).get_json()["dbapi"] == first
        assert pings == []
        time.sleep(0.4)
        assert client.post("/test/describe", json={}).get_json()["dbapi"] == first
        assert len(pings) == 1
        assert id(pings[0]) == first
    finally:
        Database.dispose(app)


def test_a_kept_connection_whose_backend_was_terminated_is_replaced_before_the_request(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Idle pings off: only the server's FATAL on the socket can tell the keeper.
    monkeypatch.setattr(extensions, "IDLE_PING_SECONDS", 3600.0)
    app = _keeping_app(_postgres(database_url))
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    try:
        client = app.test_client()
        pid = client.post("/test/backend", json={}).get_json()["pid"]
        with admin.connect() as connection:
            assert connection.execute(
                text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid}
            ).scalar()
        response = client.post("/test/backend", json={})
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["pid"] != pid
        assert client.post("/test/backend", json={}).get_json() == response.get_json()
    finally:
        admin.dispose()
        Database.dispose(app)


def test_wsgi_api_keeps_the_connections_of_the_thread_that_imports_it(tmp_path: Path) -> None:
    """gunicorn's sync worker imports `wsgi:api` in the thread that then serves every request."""
    environ = {
        "PATH": os.environ["PATH"],
        "HEARTH_ENV": "development",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'hearth.db'}",
        "HEARTH_INSTANCE_DIR": str(tmp_path / "instance"),
    }
    script = (
        "import threading, wsgi; "
        "keeper = wsgi.api.extensions['hearth_db'].keeper; "
        "print(keeper.thread is threading.current_thread())"
    )
    result = run_python(script, environ)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "True\n"
