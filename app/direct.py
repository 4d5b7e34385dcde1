"""The hottest statements, run on the DBAPI cursor with what SQLAlchemy would have done to them.

`Connection.execute` spends 90 to 110 µs of CPU per statement on the way to the driver and back
(execution context, compiled-cache key, parameter and result objects) against 40 to 85 µs for the
driver's own work: as much as the bearer statement itself costs a bearer read, and more than the
two statements of a refresh grant cost on PostgreSQL. `first` and `rowcount` compile a Core
statement once per dialect, then per call only apply the statement's bind processors, run it on
the connection's own DBAPI connection and apply its result processors, so callers get the same
values as from `Connection.execute`.

What `Connection.execute` does around the statement is kept: the connection's transaction begins
as it would (`Connection.begin`, which is what autobegin calls), a DBAPI error surfaces as
SQLAlchemy's `DBAPIError` subclass, and a disconnect invalidates the connection so the pool
replaces it (`app.errors` answers 503). While anyone listens to the connection's events (the
statement-counting tests, `bench sql`), statements go through `Connection.execute` instead, so
every listener sees every statement."""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from typing import Any, NamedTuple

from sqlalchemy import Connection, exc
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


def _listened(connection: Connection) -> bool:
    # SQLAlchemy's own test before each of its event points.
    return bool(connection._has_events or connection.engine._has_events)


def _run(connection: Connection, sql: str, parameters: Any, how: str) -> Any:
    """Run `sql` on the connection's DBAPI cursor: `how` is "first" (the raw first row),
    "rowcount", or "many" (`parameters` is a list of parameter sets)."""
    if not connection.in_transaction():
        connection.begin()
    dbapi_connection = connection.connection.dbapi_connection
    assert dbapi_connection is not None
    cursor = dbapi_connection.cursor()
    result = None
    try:
        if how == "many":
            cursor.executemany(sql, parameters)
        else:
            cursor.execute(sql, parameters)
            result = cursor.fetchone() if how == "first" else cursor.rowcount
    except connection.dialect.loaded_dbapi.Error as error:
        _raise(connection, sql, parameters, cursor, error)
    cursor.close()
    return result


def _raise(connection: Connection, sql: str, parameters: Any, cursor: Any, error: Any) -> None:
    """What Connection.execute raises for a DBAPI error; a disconnect invalidates the connection."""
    dialect = connection.dialect
    disconnect = dialect.is_disconnect(error, connection.connection.dbapi_connection, cursor)
    with suppress(Exception):  # the cursor of a broken connection may refuse to close
        cursor.close()
    if disconnect:
        connection.invalidate(error)
    raise exc.DBAPIError.instance(
        sql,
        parameters,
        error,
        dialect.loaded_dbapi.Error,
        hide_parameters=connection.engine.hide_parameters,
        connection_invalidated=disconnect,
        dialect=dialect,
    ) from error


def first(connection: Connection, statement: Executable, params: Mapping[str, Any]) -> Any:
    """The statement's first row (a named tuple of its selected columns) or None, as
    `connection.execute(statement, params).first()` would return it."""
    if _listened(connection):
        return connection.execute(statement, params).first()
    compiled = _compile(statement, connection.dialect)
    raw = _run(connection, compiled.sql, _parameters(compiled, params), "first")
    if raw is None:
        return None
    if compiled.readers:
        raw = list(raw)
        for index, reader in compiled.readers:
            raw[index] = reader(raw[index])
    return compiled.row._make(raw)


def rowcount(connection: Connection, statement: Executable, params: Mapping[str, Any]) -> int:
    """How many rows the statement changed, as `connection.execute(...).rowcount` reports it."""
    if _listened(connection):
        count: int = connection.execute(statement, params).rowcount
        return count
    compiled = _compile(statement, connection.dialect)
    return int(_run(connection, compiled.sql, _parameters(compiled, params), "rowcount"))


def execute_many(
    connection: Connection, statement: Executable, rows: Sequence[Mapping[str, Any]]
) -> None:
    """Run the statement once per parameter set, as `connection.execute(statement, rows)` does.

    Nothing is added to what `rows` give: a column default SQLAlchemy would fill in is not."""
    if _listened(connection):
        connection.execute(statement, list(rows))
        return
    compiled = _compile(statement, connection.dialect)
    _run(connection, compiled.sql, [_parameters(compiled, row) for row in rows], "many")
