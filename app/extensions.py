"""Extensions: the only module-level state of the API."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from flask import Flask, current_app, g
from flask_login import LoginManager
from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.orm import Session, sessionmaker


class Database:
    """One engine per app, one SQLAlchemy session per app context, closed at teardown."""

    def init_app(self, app: Flask) -> None:
        engine = make_engine(app.config["DATABASE_URL"])
        app.extensions["hearth_db"] = (engine, sessionmaker(engine, expire_on_commit=False))
        app.teardown_appcontext(self._close)

    @property
    def engine(self) -> Engine:
        engine: Engine = current_app.extensions["hearth_db"][0]
        return engine

    @property
    def session(self) -> Session:
        session: Session | None = g.get("_hearth_session")
        if session is None:
            session = current_app.extensions["hearth_db"][1]()
            g._hearth_session = session
        return session

    @staticmethod
    def _close(_exc: BaseException | None) -> None:
        session: Session | None = g.pop("_hearth_session", None)
        if session is not None:
            session.close()


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and enforced foreign keys."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 15})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=15000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    engine = create_engine(url, pool_size=5, max_overflow=10)
    _ping_after_idle(engine, IDLE_PING_SECONDS)
    return engine


# A pooled connection unused for this long is pinged before a request gets it.
IDLE_PING_SECONDS = 1.0


def _ping_after_idle(engine: Engine, idle: float) -> None:
    """Pessimistic disconnect handling without a round trip on every request.

    `pool_pre_ping` pings at every checkout: under load that is one extra round trip per
    request. A connection that was checked in less than `idle` seconds ago was working then;
    one that sat longer (a database restart takes longer than that) is pinged, and a dead one
    is replaced before the request sees it. Anything that still breaks mid-request invalidates
    the pool through SQLAlchemy's disconnect detection and answers 503 (app.errors)."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("checked_in_at")
        if since is None or time.monotonic() - since < idle:
            return
        try:
            # The dialect's own ping (what pool_pre_ping runs): no transaction is left open.
            engine.dialect.do_ping(dbapi_conn)
        except Exception as error:
            # The pool discards this connection and checks out (or opens) another.
            raise exc.DisconnectionError() from error


db = Database()
login_manager = LoginManager()
