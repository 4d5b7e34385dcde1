"""Housekeeping: delete expired rows in bounded batches so no transaction grows large."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.accounts.service import delete_expired_sessions
from app.db import utcnow
from app.models import AuthorizationCode, PendingRequest, Token

Deleter = Callable[[Session, int], int]


def _expired(model: Any) -> Deleter:
    """Delete up to `batch` rows whose expiry has passed, using the expires_at index."""

    def deleter(session: Session, batch: int) -> int:
        ids = session.scalars(
            select(model.id).where(model.expires_at <= utcnow()).limit(batch)
        ).all()
        if ids:
            session.execute(delete(model).where(model.id.in_(ids)))
        return len(ids)

    return deleter


DELETERS: dict[str, Deleter] = {
    "sessions": delete_expired_sessions,
    "pending_requests": _expired(PendingRequest),
    "codes": _expired(AuthorizationCode),
    "tokens": _expired(Token),
}


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
