"""Extensions: the only module-level state of the API."""

from __future__ import annotations

import select
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple, TypeVar

from flask import Flask, Response, current_app, g, request
from flask_login import LoginManager
from sqlalchemy import Connection, Engine, create_engine, event, exc, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, UOWTransaction, sessionmaker
from sqlalchemy.orm.session import JoinTransactionMode

from app.context import this_app, this_g, this_request

F = TypeVar("F", bound=Callable[..., Any])


class ReadOnlyViolation(RuntimeError):
    """A request marked @read_only tried to write: a bug in the view, never the client's fault."""


def read_only(view: F) -> F:
    """Mark a view that never writes: its GET and HEAD requests run on a read-only connection.

    The connection comes from an engine and pool of its own whose connections the database
    itself keeps from writing (PostgreSQL: autocommit with `default_transaction_read_only`,
    so a read costs only its SELECTs, not BEGIN and ROLLBACK around them; SQLite:
    `query_only`). Core reads use it directly (`db.connection`), without an ORM session's
    transaction bookkeeping; a session the view asks for runs on the same connection. An ORM
    flush is refused before anything is sent and any other write by the database itself; both
    surface as ReadOnlyViolation."""
    view._hearth_read_only = True  # type: ignore[attr-defined]
    return view


def autocommit(view: F) -> F:
    """Mark a view each of whose writes is a single statement or a `db.atomic()` block.

    On PostgreSQL its requests run on a writable autocommit connection from an engine and pool of
    their own: every statement commits itself, so a request pays for its statements and not for
    the BEGIN and COMMIT round trips around them (the refresh grant: five round trips to two).
    Elsewhere, and on SQLite, whose BEGIN and COMMIT are no round trips, the view runs in the
    request's transaction as usual; `db.commit()` ends it in both cases."""
    view._hearth_autocommit = True  # type: ignore[attr-defined]
    return view


class _Keeper:
    """The connections one long-lived thread keeps checked out between its requests.

    A gunicorn sync worker serves every request in its main thread, one at a time; going to
    the pool and back cost a PostgreSQL bearer read a sixth of the app's CPU (a Connection, the
    pool's lock, queue and events, the reset on return). That thread parks its connection here
    at teardown, one per engine, in the state the pool would have left it in (no transaction,
    the engine's own options), and the next request of that thread takes it back, checked the
    way a checkout would check it (`_ping_failure`). No other thread parks: a server that
    starts a thread per request would leave one connection behind with each thread."""

    __slots__ = ("parked", "thread")

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None
        self.parked: dict[Engine, tuple[Connection, float]] = {}

    def take(self, engine: Engine) -> Connection | None:
        """The connection parked for `engine`, if it is still good to use."""
        if not self.parked:
            return None
        kept = self.parked.pop(engine, None)
        if kept is None:
            return None
        connection, since = kept
        if engine.dialect.name == "sqlite":  # a file does not go away: no pings (make_engine)
            return connection
        if _ping_failure(engine, connection.connection.dbapi_connection, since) is None:
            return connection
        connection.invalidate()  # the pool opens a new DBAPI connection for its record
        connection.close()
        return None

    def park(self, connection: Connection) -> bool:
        """Keep `connection` for this thread's next request instead of checking it in.

        Declined (and left to the caller to close) in any other thread, for a second connection
        to the same engine, or for one that is invalid or carries options of its own (the
        isolation level `db.atomic` sets: the pool's checkin is what resets it)."""
        if (
            self.thread is not threading.current_thread()
            or connection.closed
            or connection.invalidated
            or connection._execution_options is not connection.engine._execution_options
            or connection.engine in self.parked
        ):
            return False
        # What Connection.close() and the pool's reset on return do: nothing when idle.
        if connection.in_transaction():
            connection.rollback()
        else:
            connection.connection.dbapi_connection.rollback()  # type: ignore[union-attr]
        self.parked[connection.engine] = (connection, time.monotonic())
        return True

    def close(self) -> None:
        """Return every parked connection to its pool."""
        while self.parked:
            connection, _since = self.parked.popitem()[1]
            connection.close()


class _Handles(NamedTuple):
    engine: Engine
    sessions: sessionmaker[Session]
    # The read-only engine of @read_only requests and its sessions; None for an in-memory
    # SQLite database, which only one engine can see.
    read: tuple[Engine, sessionmaker[Session]] | None
    # PostgreSQL only: the writable autocommit engine of @autocommit views and its sessions.
    autocommit: tuple[Engine, sessionmaker[Session]] | None
    engines: tuple[Engine, ...]
    keeper: _Keeper

    def for_request(self, context: Any) -> tuple[Engine, sessionmaker[Session]]:
        """The engine and sessions of the request whose `g` is `context`."""
        kind = context.get("_hearth_connection_kind")
        if kind == "read" and self.read is not None:
            return self.read
        if kind == "autocommit" and self.autocommit is not None:
            return self.autocommit
        return self.engine, self.sessions


class Database:
    """The app's engines, and per app context one connection with an optional ORM session on it.

    `db.connection` is the request's connection and `db.session` an ORM session bound to it:
    Core statements and ORM work are one transaction, committed by `db.commit()` (or the
    session's own commit) and rolled back at teardown if nobody committed. A request that
    needs no ORM never creates a session: its creation, transaction bookkeeping and close cost a
    refresh grant (select, update, insert, commit) about 45 µs against the connection's own.

    `app.extensions["hearth_db"]` holds the handles: the engine, its sessions, the read-only
    engine of @read_only requests and its sessions, on PostgreSQL the writable autocommit engine
    of @autocommit requests and its sessions, and every engine."""

    def init_app(self, app: Flask) -> None:
        url = app.config["DATABASE_URL"]
        engine = make_engine(url)
        read = None
        autocommitting = None
        engines: tuple[Engine, ...] = (engine,)
        if not _in_memory(engine):
            read_engine = make_engine(url, for_reads=True)
            read = (read_engine, _read_only_sessions(read_engine))
            engines = (engine, read_engine)
        if engine.dialect.name == "postgresql":
            autocommit_engine = make_engine(url, autocommit=True)
            autocommitting = (
                autocommit_engine,
                sessionmaker(autocommit_engine, expire_on_commit=False, join_transaction_mode=_OWN),
            )
            engines = (*engines, autocommit_engine)
        # control_fully: the session owns the connection's transaction, whether a Core
        # statement began it or the session did, so session.commit() commits both.
        sessions = sessionmaker(engine, expire_on_commit=False, join_transaction_mode=_OWN)
        app.extensions["hearth_db"] = _Handles(
            engine, sessions, read, autocommitting, engines, _Keeper()
        )
        app.teardown_appcontext(self._close)
        if read is not None or autocommitting is not None:
            app.before_request(_mark_connection_kind)

    @property
    def engine(self) -> Engine:
        engine: Engine = current_app.extensions["hearth_db"][0]
        return engine

    @staticmethod
    def engines(app: Flask) -> tuple[Engine, ...]:
        """Every engine the app opens connections with."""
        handles: _Handles = app.extensions["hearth_db"]
        return handles.engines

    @classmethod
    def dispose(cls, app: Flask) -> None:
        """Close every pooled connection, e.g. before the database is dropped."""
        handles: _Handles = app.extensions["hearth_db"]
        handles.keeper.close()
        for engine in handles.engines:
            engine.dispose()

    @staticmethod
    def keep_connections(app: Flask) -> None:
        """Let the calling thread keep its connections between its requests (_Keeper).

        For a server that serves every request of the app in the thread that built it, as a
        gunicorn sync worker does (`wsgi.api`); requests in any other thread use the pool."""
        handles: _Handles = app.extensions["hearth_db"]
        handles.keeper.thread = threading.current_thread()

    @property
    def connection(self) -> Connection:
        """The request's connection, checked out on first use and returned at teardown.

        In a @read_only request it comes from the read-only engine; elsewhere from the engine,
        and its transaction is the session's."""
        context = this_g()
        connection: Connection | None = context.get("_hearth_connection")
        if connection is None:
            handles: _Handles = this_app().extensions["hearth_db"]
            engine = handles.for_request(context)[0]
            connection = handles.keeper.take(engine) or engine.connect()
            context._hearth_connection = connection
        return connection

    @property
    def session(self) -> Session:
        """An ORM session on the request's connection, created on first use."""
        context = this_g()
        session: Session | None = context.get("_hearth_session")
        if session is None:
            handles: _Handles = this_app().extensions["hearth_db"]
            sessions = handles.for_request(context)[1]
            session = context._hearth_session = sessions(bind=self.connection)
        return session

    def commit(self) -> None:
        """Commit the request's transaction: the session's pending changes and every Core
        statement run on the connection."""
        context = this_g()
        session: Session | None = context.get("_hearth_session")
        if session is not None:
            session.commit()
            return
        connection: Connection | None = context.get("_hearth_connection")
        if connection is not None:
            connection.commit()

    @contextmanager
    def atomic(self) -> Iterator[None]:
        """Make the block's statements one transaction in an @autocommit request.

        What the request has done so far stands (it was committed statement by statement); the
        block runs in a transaction of the engine's default isolation level and is committed at
        its end, or rolled back if it raises. The connection goes back to autocommit when it
        returns to its pool. In any other request this does nothing: the block is part of the
        request's transaction, which the view commits."""
        context = this_g()
        handles: _Handles = this_app().extensions["hearth_db"]
        if handles.autocommit is None or context.get("_hearth_connection_kind") != "autocommit":
            yield
            return
        if context.get("_hearth_atomic", False):
            yield  # inside an atomic block already: the outer one commits
            return
        connection = self.connection
        self.commit()  # ends SQLAlchemy's record of the autocommitted statements; sends nothing
        connection.execution_options(isolation_level=connection.dialect.default_isolation_level)
        context._hearth_atomic = True
        try:
            yield
        except BaseException:
            self.rollback()
            raise
        finally:
            context._hearth_atomic = False
        self.commit()

    def rollback(self) -> None:
        """Roll back the request's transaction, ORM and Core alike."""
        context = this_g()
        session: Session | None = context.get("_hearth_session")
        if session is not None:
            session.rollback()
        connection: Connection | None = context.get("_hearth_connection")
        if connection is not None:
            connection.rollback()

    @staticmethod
    def _close(_exc: BaseException | None) -> None:
        """Roll back whatever nobody committed and return the connection to its pool (or to
        the thread's keeper)."""
        context = this_g()
        session: Session | None = context.pop("_hearth_session", None)
        if session is not None:
            session.close()
        connection: Connection | None = context.pop("_hearth_connection", None)
        if connection is None:
            return
        keeper: _Keeper = this_app().extensions["hearth_db"].keeper
        try:
            if keeper.park(connection):
                return
        except BaseException:
            connection.close()  # a failed rollback invalidated it: the pool replaces it
            raise
        connection.close()


_OWN: JoinTransactionMode = "control_fully"


def _in_memory(engine: Engine) -> bool:
    """An in-memory SQLite database exists once per connection: a second engine cannot see it."""
    url = engine.url
    return url.get_backend_name() == "sqlite" and (
        url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"
    )


def _mark_connection_kind() -> None:
    """Let a GET or HEAD to a @read_only view read on a read-only connection, and an @autocommit
    view run on an autocommit one.

    The mark goes on `g`, which belongs to the request's app context: an app context pushed
    within the request (the periodic cleanup) starts with a fresh `g` and writes as usual."""
    current = this_request()
    if current.endpoint is None:
        return
    view = this_app().view_functions.get(current.endpoint)
    if current.method in ("GET", "HEAD") and getattr(view, "_hearth_read_only", False):
        context = this_g()
        context._hearth_read_only = True
        context._hearth_connection_kind = "read"
    elif getattr(view, "_hearth_autocommit", False):
        this_g()._hearth_connection_kind = "autocommit"


def _read_only_sessions(engine: Engine) -> sessionmaker[Session]:
    """Sessions on the read-only engine that refuse to flush.

    The engine has a pool of its own whose connections stay read-only: switching a connection
    of the shared pool to autocommit at checkout and back at checkin (what
    `execution_options(isolation_level=...)` does) cost each PostgreSQL read 35 to 55 µs of
    psycopg calls. Core writes are refused by the database itself (`refused_write`): a
    `before_execute` listener that refused them here cost every read ~15 µs, because any
    engine-level event sends every statement through SQLAlchemy's event dispatch."""
    sessions = sessionmaker(engine, expire_on_commit=False, join_transaction_mode=_OWN)
    event.listen(sessions, "before_flush", _refuse_flush)
    return sessions


def refused_write(error: DBAPIError) -> ReadOnlyViolation | None:
    """The database's refusal of a write in a @read_only request, named as the bug it is.

    SQLite answers SQLITE_READONLY under `query_only`, PostgreSQL SQLSTATE 25006
    (read_only_sql_transaction); outside a @read_only request either means something else."""
    if not g.get("_hearth_read_only", False):
        return None
    original = error.orig
    if (
        getattr(original, "sqlstate", None) != "25006"
        and getattr(original, "sqlite_errorcode", None) != sqlite3.SQLITE_READONLY
    ):
        return None
    verb = error.statement.split(None, 1)[0].upper() if error.statement else "A write"
    violation = ReadOnlyViolation(f"{verb} refused: a @read_only request never writes.")
    violation.__cause__ = error
    return violation


def _refuse_flush(session: Session, _context: UOWTransaction, _objects: Any) -> None:
    changed = {type(obj).__name__ for obj in (*session.new, *session.dirty, *session.deleted)}
    raise ReadOnlyViolation(
        f"Flush of {', '.join(sorted(changed))} refused: a @read_only request never writes."
    )


def make_engine(url: str, *, for_reads: bool = False, autocommit: bool = False) -> Engine:
    """Create an engine; SQLite gets WAL, a busy timeout and enforced foreign keys.

    `for_reads` makes an engine for @read_only requests whose database refuses every write on
    its connections: SQLite's `query_only`; on PostgreSQL, autocommit connections whose
    transactions default to read-only. `autocommit` (PostgreSQL) makes the writable autocommit
    engine of @autocommit views."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 15})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=15000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            if for_reads:
                cursor.execute("PRAGMA query_only=ON")
            cursor.close()

        return engine
    parsed = make_url(url)
    options: dict[str, Any] = {}
    connect_args: dict[str, Any] = {}
    if parsed.get_driver_name() == "psycopg":
        from app.pg_cursor import LazyDescriptionCursor

        connect_args["cursor_factory"] = LazyDescriptionCursor
    if for_reads or autocommit:
        options["isolation_level"] = "AUTOCOMMIT"
    if for_reads:
        # Appended to any `options` the URL carries, which connect_args would otherwise replace.
        given = parsed.query.get("options", "")
        given = given if isinstance(given, str) else " ".join(given)
        read_only_option = "-c default_transaction_read_only=on"
        connect_args["options"] = f"{given} {read_only_option}".strip()
    engine = create_engine(url, pool_size=5, max_overflow=10, connect_args=connect_args, **options)
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
        failure = _ping_failure(engine, dbapi_conn, since, idle)
        if failure is not None:
            # The pool discards this connection and checks out (or opens) another.
            raise exc.DisconnectionError() from failure


def _ping_failure(
    engine: Engine, dbapi_conn: Any, since: float, idle: float | None = None
) -> Exception | None:
    """Why a connection idle since `since` cannot be used, or None if it can (_ping_after_idle)."""
    idle = IDLE_PING_SECONDS if idle is None else idle
    if time.monotonic() - since < idle and not _server_has_spoken(dbapi_conn):
        return None
    try:
        # The dialect's own ping (what pool_pre_ping runs): no transaction is left open.
        engine.dialect.do_ping(dbapi_conn)
    except Exception as error:
        return error
    return None


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
