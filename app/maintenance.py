"""Housekeeping: delete expired rows in bounded batches so no transaction grows large."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from app.accounts.service import delete_expired_sessions

Deleter = Callable[[Session, int], int]
DELETERS: dict[str, Deleter] = {"sessions": delete_expired_sessions}


def cleanup(session: Session, batch: int = 1000) -> dict[str, int]:
    """Run every deleter until it finds nothing, committing after each batch."""
    counts: dict[str, int] = {}
    for name, deleter in DELETERS.items():
        total = 0
        while True:
            removed = deleter(session, batch)
            session.commit()
            total += removed
            if removed < batch:
                break
        counts[name] = total
    return counts
