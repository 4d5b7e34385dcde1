"""Housekeeping: delete expired rows in bounded batches so no transaction grows large."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any, cast

from flask import Flask, Response
from sqlalchemy import CursorResult, delete, select
from sqlalchemy.orm import Session

from app.accounts.service import delete_expired_sessions
from app.db import utcnow
from app.extensions import db
from app.federation.service import delete_expired_login_states
from app.models import AuthorizationCode, PendingRequest, Token

log = logging.getLogger("hearth.maintenance")
Deleter = Callable[[Session, int], int]
PERIODIC_BATCH = 500
# `hearth cleanup` rests three times as long as each full batch took, so a backlog takes at
# most a quarter of one core's time. Measured under paced bearer reads (bench/README.md, hot
# spot 6): the reads' p99 rose 1.7-1.9x while a cleanup rested 1x, 1.2-1.6x at 2x, 1.1-1.4x at 3x.
DEFAULT_REST = 3.0


def _expired(model: Any) -> Deleter:
    """Delete up to `batch` rows whose expiry has passed, using the expires_at index.

    One statement per batch: the ids never travel to Python and back as a thousand bound
    parameters, which was most of the cleanup process's own CPU."""

    def deleter(session: Session, batch: int) -> int:
        due = select(model.id).where(model.expires_at <= utcnow()).limit(batch)
        result = session.execute(
            delete(model).where(model.id.in_(due.scalar_subquery())),
            execution_options={"synchronize_session": False},
        )
        return int(cast(CursorResult[Any], result).rowcount)

    return deleter


DELETERS: dict[str, Deleter] = {
    "sessions": delete_expired_sessions,
    "pending_requests": _expired(PendingRequest),
    "codes": _expired(AuthorizationCode),
    "tokens": _expired(Token),
    "login_states": delete_expired_login_states,
}


def cleanup(
    session: Session,
    batch: int = 1000,
    rest: float = DEFAULT_REST,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, int]:
    """Run every deleter until it finds nothing, committing after each batch.

    After each full batch the cleanup rests for `rest` times as long as the batch took: a
    backlog of millions of rows then takes at most about a quarter of one core (rest=3.0), and
    the API's requests never queue behind a cleanup that holds the CPU, the CPU caches or the
    write lock for long. `rest=0` runs flat out (maintenance windows)."""
    counts: dict[str, int] = {}
    for name, deleter in DELETERS.items():
        total = 0
        while True:
            began = clock()
            removed = deleter(session, batch)
            session.commit()
            total += removed
            if removed < batch:
                break
            if rest > 0:
                sleep((clock() - began) * rest)
        counts[name] = total
    return counts


def init_app(app: Flask) -> None:
    """Run one bounded cleanup pass now and then, after a response has been sent (SPEC §1)."""
    interval = app.config.get("CLEANUP_INTERVAL", timedelta(minutes=10))
    state = {"next": time.monotonic() + interval.total_seconds(), "running": False}
    lock = threading.Lock()

    def run() -> None:
        try:
            with app.app_context():
                for deleter in DELETERS.values():
                    deleter(db.session, PERIODIC_BATCH)
                    db.commit()
        except Exception:
            log.exception("periodic cleanup failed")
        finally:
            state["running"] = False

    @app.after_request
    def _maybe_cleanup(response: Response) -> Response:
        now = time.monotonic()
        if now < state["next"]:
            return response
        with lock:
            if state["running"] or now < state["next"]:
                return response
            state["running"], state["next"] = True, now + interval.total_seconds()
        response.call_on_close(run)
        return response
