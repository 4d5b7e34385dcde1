"""Extensions: the only module-level state of the API."""

from __future__ import annotations

import select
import sqlite3
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, Response, current_app, g, request
from flask_login import LoginManager
from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.orm import Session, UOWTransaction, sessionmaker

F = TypeVar("F", bound=Callable[..., Any])


class ReadOnlyViolation(RuntimeError):
    """A request marked @read_only tried to write: a bug in the view, never the client's fault."""


def read_only(view: F) -> F:
    """Mark a view that never writes: its GET and HEAD requests read outside a transaction.

    On PostgreSQL such a request's session runs on a connection from a pool of autocommit
    connections, so a read costs only its SELECTs, not BEGIN and ROLLBACK around them. The
    session refuses every write (ReadOnlyViolation): autocommit would make each statement its
    own transaction."""
    view._hearth_read_only = True  # type: ignore[attr-defined]
    return view


class Database:
    """One engine per app, one SQLAlchemy session per app context, closed at teardown.

    `app.extensions["hearth_db"]` is (engine, sessions, read-only sessions or None, every
    engine): on PostgreSQL the read-only sessions have an engine and a pool of their own."""

    def init_app(self, app: Flask) -> None:
        url = app.config["DATABASE_URL"]
        engine = make_engine(url)
        engines = [engine]
        reads = None
        # SQLite never sends BEGIN before a SELECT: read-only sessions are PostgreSQL's alone.
        if engine.dialect.name == "postgresql":
            read_engine = make_engine(url, autocommit=True)
            engines.append(read_engine)
            reads = _read_only_sessions(read_engine)
        sessions = sessionmaker(engine, expire_on_commit=False)
        app.extensions["hearth_db"] = (engine, sessions, reads, tuple(engines))
        app.teardown_appcontext(self._close)
        if reads is not None:
            app.before_request(_mark_read_only)

    @property
    def engine(self) -> Engine:
        engine: Engine = current_app.extensions["hearth_db"][0]
        return engine

    @staticmethod
    def engines(app: Flask) -> tuple[Engine, ...]:
        """Every engine the app opens connections with (two on PostgreSQL)."""
        engines: tuple[Engine, ...] = app.extensions["hearth_db"][3]
        return engines

    @classmethod
    def dispose(cls, app: Flask) -> None:
        """Close every pooled connection, e.g. before the database is dropped."""
        for engine in cls.engines(app):
            engine.dispose()

    @property
    def session(self) -> Session:
        session: Session | None = g.get("_hearth_session")
        if session is None:
            _engine, sessions, reads, _engines = current_app.extensions["hearth_db"]
            if reads is not None and g.get("_hearth_read_only", False):
                sessions = reads
            session = sessions()
            g._hearth_session = session
        return session

    @staticmethod
    def _close(_exc: BaseException | None) -> None:
        session: Session | None = g.pop("_hearth_session", None)
        if session is not None:
            session.close()


def _mark_read_only() -> None:
    """Let a GET or HEAD to a @read_only view read on an autocommit connection.

    The mark goes on `g`, which belongs to the request's app context: an app context pushed
    within the request (the periodic cleanup) starts with a fresh `g` and writes as usual."""
    if request.method not in ("GET", "HEAD") or request.endpoint is None:
        return
    view = current_app.view_functions.get(request.endpoint)
    if getattr(view, "_hearth_read_only", False):
        g._hearth_read_only = True


def _read_only_sessions(engine: Engine) -> sessionmaker[Session]:
    """Sessions on an autocommit engine that refuse to write.

    The engine has a pool of its own whose connections stay in autocommit: switching one
    connection of the shared pool to autocommit at checkout and back at checkin (what
    `execution_options(isolation_level=...)` does) cost each read 35 to 55 µs of psycopg calls."""
    event.listen(engine, "before_execute", _refuse_dml)
    sessions = sessionmaker(engine, expire_on_commit=False)
    event.listen(sessions, "before_flush", _refuse_flush)
    return sessions


def _refuse_dml(_conn: Any, statement: Any, *_args: Any) -> None:
    if getattr(statement, "is_dml", False):
        raise ReadOnlyViolation(
            f"{statement.__visit_name__.upper()} refused: a @read_only request never writes."
        )


def _refuse_flush(session: Session, _context: UOWTransaction, _objects: Any) -> None:
    changed = {type(obj).__name__ for obj in (*session.new, *session.dirty, *session.deleted)}
    raise ReadOnlyViolation(
        f"Flush of {', '.join(sorted(changed))} refused: a @read_only request never writes."
    )


def make_engine(url: str, *, autocommit: bool = False) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and enforced foreign keys.

    `autocommit` (PostgreSQL only) makes every connection of the engine's pool autocommit."""
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
    options: dict[str, Any] = {"isolation_level": "AUTOCOMMIT"} if autocommit else {}
    engine = create_engine(url, pool_size=5, max_overflow=10, **options)
    _ping_after_idle(engine, IDLE_PING_SECONDS)
    return engine


# A pooled connection unused for this long is pinged before a request gets it.
IDLE_PING_SECONDS = 1.0


def _ping_after_idle(engine: Engine, idle: float) -> None:
    """Pessimistic disconnect handling without a round trip on every request.

    `pool_pre_ping` pings at every checkout: under load that is one extra round trip per
    request. A connection that was checked in less than `idle` seconds ago was working then;
    it is pinged only if the server has written to it since (a restart or a terminated backend
    says FATAL and closes the socket). One that sat longer is pinged anyway (a server that
    vanished without a word), and a dead one is replaced before the request sees it. Anything
    that still breaks mid-request invalidates the pool through SQLAlchemy's disconnect detection
    and answers 503 (app.errors)."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_conn: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("checked_in_at")
        if since is None:
            return
        if time.monotonic() - since < idle and not _server_has_spoken(dbapi_conn):
            return
        try:
            # The dialect's own ping (what pool_pre_ping runs): no transaction is left open.
            engine.dialect.do_ping(dbapi_conn)
        except Exception as error:
            # The pool discards this connection and checks out (or opens) another.
            raise exc.DisconnectionError() from error


def _server_has_spoken(dbapi_conn: Any) -> bool:
    """Whether an idle connection's socket has something to read: no round trip, one poll.

    A server that restarts or terminates a backend sends FATAL and closes the socket, so the
    idle connection becomes readable at once; a restart can be quicker than IDLE_PING_SECONDS.
    Anything else unread (a notice) is harmless: the ping then succeeds and consumes it."""
    try:
        descriptor = dbapi_conn.fileno()
    except Exception:  # closed or broken: let the ping decide
        return True
    poller = select.poll()
    poller.register(descriptor, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))


class RequestLoginManager(LoginManager):
    """Flask-Login where the request loader is the only source of the user.

    The API keeps no Flask session and sets no remember-me cookie (app.auth). Flask-Login's own
    loader would still, on every request, hash the client's address and user agent for session
    protection and look in the empty session and for a remember cookie before asking the
    request loader; here only the request loader runs, and the remember-cookie hook is a no-op."""

    def _load_user(self) -> None:
        self._update_request_context_with_user(self._load_user_from_request(request))

    def _update_remember_cookie(self, response: Response) -> Response:
        return response


db = Database()
login_manager = RequestLoginManager()
