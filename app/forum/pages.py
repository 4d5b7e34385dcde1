"""Thread-list pages kept by each API worker and served again while the forum is unchanged.

The thread list is the forum's most read page, and on PostgreSQL its statement cost as much as
the rest of the request together (bench/README.md). Each page a worker reads is kept with the
forum's revision read in the same statement (`forum_revision`, raised by triggers in every
transaction that changes what a page shows; migration 0009). A request is served the kept page
only when the revision it reads itself is the same: the principal's statement reads it on the
way (`revision_subquery`), so a cached page costs no round trip of its own, and a guest's request
reads it with one small statement. Nothing is served that a fresh query in the request's
snapshot would not return, whichever worker or host made the change and however it was made.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from functools import cache
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, ScalarSelect, select

from app.models import ForumRevision

# Threads kept per worker, over all its pages: about 1 KB of Python objects each, so a worker
# keeps at most ~5 MB however a client varies the category, cursor and page size.
CAPACITY = 5000

K = TypeVar("K")
V = TypeVar("V")


def revision_subquery() -> ScalarSelect[int]:
    """The forum's revision as a column of another statement.

    Uncorrelated, so both databases run it once per statement, in that statement's snapshot."""
    return select(ForumRevision.value).where(ForumRevision.id == 1).scalar_subquery()


@cache
def _revision_statement() -> Any:
    return select(ForumRevision.value).where(ForumRevision.id == 1)


def read_revision(connection: Connection) -> int | None:
    """The revision now, for a request whose principal statement did not read it (a guest's)."""
    value: int | None = connection.scalar(_revision_statement())
    return value


class Pages(Generic[K, V]):
    """A map from a page's key to (revision, page), least recently used out first, holding at
    most `capacity` in page sizes (what `put` is told each page weighs).

    Workers are processes; the lock covers a server that runs requests on threads."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self.capacity = capacity
        self.weight = 0
        self._pages: OrderedDict[K, tuple[int, V, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._pages)

    def kept_revision(self, key: K) -> int | None:
        """The revision the page under `key` was read at, or None when none is kept."""
        kept = self._pages.get(key)
        return None if kept is None else kept[0]

    def get(self, key: K, revision: int) -> V | None:
        """The page kept under `key` if it was read at `revision`."""
        with self._lock:
            kept = self._pages.get(key)
            if kept is None or kept[0] != revision:
                return None
            self._pages.move_to_end(key)
            return kept[1]

    def put(self, key: K, revision: int, page: V, weight: int = 1) -> None:
        if weight > self.capacity:
            return
        with self._lock:
            kept = self._pages.pop(key, None)
            if kept is not None:
                if kept[0] > revision:  # a newer read got here first
                    self._pages[key] = kept
                    return
                self.weight -= kept[2]
            self._pages[key] = (revision, page, weight)
            self.weight += weight
            while self.weight > self.capacity:
                _key, (_revision, _page, dropped) = self._pages.popitem(last=False)
                self.weight -= dropped
