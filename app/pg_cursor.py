"""psycopg cursors whose `description` costs nothing until someone reads a column of it.

SQLAlchemy asks every cursor for its `description` after each statement, but for a compiled
statement whose result metadata it has cached (every statement Hearth runs more than once) it
only checks that the description is not None. psycopg builds the whole list of `Column` objects
on each access, about 0.85 µs a column: 7.6 µs for the nine columns of a bearer read, about a
tenth of SQLAlchemy's and psycopg's work per statement. Here `description` is a sequence of the
same columns that builds them on first use, from the result as it was when it was asked for."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any, overload

import psycopg
from psycopg._column import Column
from psycopg.pq.abc import PGresult


class _Result:
    """What `Column` reads from its cursor, frozen at the time `description` was read: the
    cursor may have run another statement by the time a column is looked at."""

    __slots__ = ("_encoding", "adapters", "pgresult")

    def __init__(self, cursor: psycopg.Cursor[Any], pgresult: PGresult) -> None:
        self.pgresult = pgresult
        self.adapters = cursor.adapters
        self._encoding = cursor._encoding


class LazyDescription(Sequence[Column]):
    __slots__ = ("_columns", "_count", "_result")

    def __init__(self, cursor: psycopg.Cursor[Any], pgresult: PGresult) -> None:
        self._result: _Result | None = _Result(cursor, pgresult)
        self._count = pgresult.nfields
        self._columns: list[Column] = []

    def _built(self) -> list[Column]:
        if self._result is not None:
            result, self._result = self._result, None
            self._columns = [Column(result, index) for index in range(self._count)]  # type: ignore[arg-type]
        return self._columns

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> Column: ...

    @overload
    def __getitem__(self, index: slice) -> list[Column]: ...

    def __getitem__(self, index: int | slice) -> Column | list[Column]:
        return self._built()[index]

    def __iter__(self) -> Iterator[Column]:
        return iter(self._built())

    def __repr__(self) -> str:
        return repr(self._built())


class LazyDescriptionCursor(psycopg.Cursor[Any]):
    """psycopg's cursor with a `description` built on demand (see the module's docstring)."""

    @property
    def description(self) -> list[Column] | None:
        result = self.pgresult
        if result is not None and result.nfields:
            return LazyDescription(self, result)  # type: ignore[return-value]
        return super().description
