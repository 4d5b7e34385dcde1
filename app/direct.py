"""The hottest statements, run on the DBAPI cursor with what SQLAlchemy would have done to them.

`Connection.execute` spends 90 to 110 µs of CPU per statement on the way to the driver and back
(execution context, compiled-cache key, parameter and result objects) against 40 to 85 µs for the
driver's own work: as much as the bearer statement itself costs a bearer read, and more than the
two statements of a refresh grant cost on PostgreSQL. `first`, `rowcount` and `execute_many`
compile a Core statement once per dialect, then per call only apply the statement's bind
processors, run it on the connection's own DBAPI connection and apply its result processors, so
callers get the same values as from `Connection.execute`.

What `Connection.execute` does around the statement is kept: the transaction begins as it would
(autobegin), and any error goes through the connection's own error handling, so a DBAPI error
surfaces as SQLAlchemy's `DBAPIError` subclass and a disconnect invalidates the connection and
the pool's older ones (`app.errors` answers 503). `Connection.execute` itself runs the statement
whenever someone listens to the connection's events or echoes them (the statement-counting tests,
`bench sql`), and when the transaction needs its checks. This reaches into a few private
attributes of SQLAlchemy's `Connection` (its own tests before each event point, its transaction,
its error handling); `tests/integration/oauth/test_direct_statements.py` holds them to the
behaviour of `Connection.execute` on both databases.

Only for statements built once per process (the cache keeps them): plain bind names, result
columns whose types need no DBAPI type code to read them (no `Numeric` on PostgreSQL), and a
`SELECT` for `first`."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import SQLCompiler

_Processor = Callable[[Any], Any]


class _Compiled(NamedTuple):
    sql: str
    # Parameter names in placeholder order for positional paramstyles (SQLite's qmark); None
    # where the driver takes a mapping (psycopg's pyformat).
    positions: tuple[str, ...] | None
    compiled: SQLCompiler
    binders: tuple[tuple[str, _Processor], ...]
    row: Any  # a namedtuple of the selected columns; None for a statement without rows
    readers: tuple[tuple[int, _Processor], ...]


# (statement, its compiled forms by dialect); keyed by id(statement), so the statement is kept.
_compiled: dict[int, tuple[Executable, dict[tuple[str, str, str], _Compiled]]] = {}


def _compile(statement: Executable, dialect: Dialect) -> _Compiled:
    key = (dialect.name, dialect.driver, dialect.paramstyle)
    entry = _compiled.get(id(statement))
    if entry is None:
        entry = _compiled[id(statement)] = (statement, {})
    found = entry[1].get(key)
    if found is not None:
        return found
    compiled = statement.compile(dialect=dialect)  # type: ignore[attr-defined]
    assert isinstance(compiled, SQLCompiler)
    if compiled.literal_execute_params or compiled.post_compile_params:
        raise ValueError("expanding parameters need Connection.execute")
    binders = []
    for bind, name in compiled.bind_names.items():
        binder = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if binder is not None:
            binders.append((name, binder))
    row: Any = None
    readers = []
    selected = getattr(statement, "selected_columns", None)
    if selected is not None:
        row = namedtuple("Row", list(selected.keys()), rename=True)  # type: ignore[misc,no-redef]
        for index, column in enumerate(selected):
            reader = column.type.dialect_impl(dialect).result_processor(dialect, None)
            if reader is not None:
                readers.append((index, reader))
    positions = tuple(compiled.positiontup or ()) if compiled.positional else None
    found = _Compiled(compiled.string, positions, compiled, tuple(binders), row, tuple(readers))
    entry[1][key] = found
    return found


def _parameters(compiled: _Compiled, params: Mapping[str, Any]) -> Any:
    values = compiled.compiled.construct_params(params)
    for name, binder in compiled.binders:
        values[name] = binder(values[name])
    if compiled.positions is None:
        return values
    return tuple(values[name] for name in compiled.positions)


def _through_sqlalchemy(connection: Connection) -> bool:
    """Whether `Connection.execute` must run the statement: someone listens to the connection's
    events or echoes its statements (SQLAlchemy's own tests before each of its event points), or
    its transaction is in a state whose checks `Connection.execute` makes (inactive, nested, or
    inside a `with connection.begin()` block)."""
    transaction = connection._transaction
    return bool(
        connection._has_events
        or connection.engine._has_events
        or connection.dialect._has_events
        or connection._echo
        or (transaction is not None and not transaction.is_active)
        or connection._nested_transaction is not None
        or connection._trans_context_manager
    )


def _run(connection: Connection, compiled: _Compiled, params: Any, how: str) -> Any:
    """Run the statement on the connection's DBAPI cursor: `how` is "first" (the raw first
    row), "rowcount", or "many" (`params` is a sequence of parameter sets).

    Any error goes through the connection's own handling, as in `Connection.execute`: a DBAPI
    error becomes SQLAlchemy's `DBAPIError` subclass, anything else a `StatementError`, and a
    disconnect invalidates the connection and the pool's older connections."""
    parameters: Any = None
    cursor = None
    kept = False
    try:
        # As in Connection._execute_context: an invalidated connection reconnects first.
        dbapi_connection = connection.connection.dbapi_connection
        assert dbapi_connection is not None
        if connection._transaction is None:
            connection._autobegin()
        if how == "many":
            parameters = [_parameters(compiled, row) for row in params]
        else:
            parameters = _parameters(compiled, params)
        kept = connection.dialect.driver in _KEEPS_CURSOR
        cursor = _kept_cursor(connection, dbapi_connection) if kept else dbapi_connection.cursor()
        result = None
        if how == "many":
            cursor.executemany(compiled.sql, parameters)
        else:
            cursor.execute(compiled.sql, parameters)
            result = cursor.fetchone() if how == "first" else cursor.rowcount
    except BaseException as error:
        if kept:
            # The error handling closes the cursor; the next statement takes a new one.
            connection.connection.info.pop(_CURSOR_KEY, None)
        connection._handle_dbapi_exception(error, compiled.sql, parameters, cursor, None)
    if not kept:
        cursor.close()
    return result


# Drivers whose cursors fetch the whole result into the client, so a cursor left open holds
# nothing on the server. psycopg's new cursor copies the connection's adapters and looks its
# loaders up again: ~28 µs of CPU per statement on the benchmark machine, a quarter of what
# the driver spends on the bearer statement. An open sqlite3 cursor, by contrast, keeps its
# statement (and in WAL mode its read snapshot) until it is reset, so SQLite gets a new one.
_KEEPS_CURSOR = frozenset({"psycopg"})
_CURSOR_KEY = "hearth.direct.cursor"


def _kept_cursor(connection: Connection, dbapi_connection: Any) -> Any:
    """The DBAPI connection's own cursor for direct statements, made on its first use.

    It lives in the pool's `info` for that DBAPI connection, which the pool clears when it
    replaces the connection; the identity check covers any other way of swapping it."""
    info = connection.connection.info
    cursor = info.get(_CURSOR_KEY)
    if cursor is None or cursor.connection is not dbapi_connection or cursor.closed:
        cursor = info[_CURSOR_KEY] = dbapi_connection.cursor()
    return cursor


def first(connection: Connection, statement: Executable, params: Mapping[str, Any]) -> Any:
    """The statement's first row (a named tuple of its selected columns) or None, as
    `connection.execute(statement, params).first()` would return it."""
    if _through_sqlalchemy(connection):
        return connection.execute(statement, params).first()
    compiled = _compile(statement, connection.dialect)
    raw = _run(connection, compiled, params, "first")
    if raw is None:
        return None
    if compiled.readers:
        raw = list(raw)
        for index, reader in compiled.readers:
            raw[index] = reader(raw[index])
    return compiled.row._make(raw)


def rowcount(connection: Connection, statement: Executable, params: Mapping[str, Any]) -> int:
    """How many rows the statement changed, as `connection.execute(...).rowcount` reports it."""
    if _through_sqlalchemy(connection):
        count: int = connection.execute(statement, params).rowcount
        return count
    compiled = _compile(statement, connection.dialect)
    return int(_run(connection, compiled, params, "rowcount"))


def execute_many(
    connection: Connection, statement: Executable, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Run the statement once per parameter set, as `connection.execute(statement, rows)` does.

    Nothing is added to what `rows` give: a column default SQLAlchemy would fill in is not."""
    if _through_sqlalchemy(connection):
        connection.execute(statement, list(rows))
        return
    compiled = _compile(statement, connection.dialect)
    _run(connection, compiled, rows, "many")
