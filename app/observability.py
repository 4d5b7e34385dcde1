"""Structured logs: one JSON line per request and one per security event, never a secret.

Request lines carry method, path (never the query string, which can hold codes and state),
status, duration and the request id; `X-Request-ID` is taken from the request when it is a safe
token and generated otherwise, and always returned.
"""

from __future__ import annotations

import logging
import re
import secrets
import sys
import time
from datetime import UTC, datetime
from typing import Any

import orjson
from flask import Flask, Response, g, has_request_context

from app.context import this_g, this_request

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}

access = logging.getLogger("hearth.access")
security = logging.getLogger("hearth.security")


def _timestamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _timestamp(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if "request_id" not in line and has_request_context():
            line["request_id"] = g.get("request_id")
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


def _sole_handler() -> logging.StreamHandler[Any] | None:
    """Hearth's own handler when it is the only place an access line would go, else None.

    That is: no logger from `hearth.access` up to where propagation stops has a filter or
    another handler, and ours has no filter, formats with JsonFormatter and takes INFO."""
    found: logging.StreamHandler[Any] | None = None
    logger: logging.Logger | None = access
    while logger is not None:
        if logger.filters:
            return None
        for handler in logger.handlers:
            if (
                found is not None
                or not getattr(handler, "_hearth", False)
                or handler.filters
                or handler.level > logging.INFO
                or type(handler.formatter) is not JsonFormatter
                or not isinstance(handler, logging.StreamHandler)
            ):
                return None
            found = handler
        if not logger.propagate:
            break
        logger = logger.parent
    return found


def _log_request(fields: dict[str, Any]) -> None:
    """Write the request's access line.

    When Hearth's handler is its only destination (`_sole_handler`), the line is formatted
    and written here, byte for byte what JsonFormatter would write: a LogRecord, with its
    caller lookup, thread, process and dictionary walk, cost each request 12-14 µs
    against 5-6.5 µs, a measurable share of a bearer read under gunicorn. Anywhere else (a
    filter, another handler, pytest's capture) the line goes through `logging` as usual."""
    if not access.isEnabledFor(logging.INFO):
        return
    handler = _sole_handler()
    if handler is None:
        access.info("request", extra=fields)
        return
    line = {"ts": _timestamp(time.time()), "level": "info", "logger": access.name, "msg": "request"}
    line.update(fields)
    text = orjson.dumps(line, default=str).decode() + handler.terminator
    handler.acquire()
    try:
        handler.stream.write(text)
        handler.flush()
    except Exception:  # a closed or broken stream: let logging report it the usual way
        access.info("request", extra=fields)
    finally:
        handler.release()


def security_event(event: str, **fields: Any) -> None:
    """Record a security event (sign-in failure, consent decision, replay, revocation, …)."""
    security.info(event, extra={"event": event, **fields})


def init_app(app: Flask) -> None:
    logger = logging.getLogger("hearth")
    logger.setLevel(app.config.get("LOG_LEVEL", "INFO"))
    # Under test, records reach pytest through propagation; no second copy on stderr.
    if not app.config.get("TESTING") and not any(
        getattr(h, "_hearth", False) for h in logger.handlers
    ):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        handler._hearth = True  # type: ignore[attr-defined]
        logger.addHandler(handler)

    @app.before_request
    def _start() -> None:
        context = this_g()
        context.started = time.perf_counter()
        given = this_request().headers.get("X-Request-ID", "")
        context.request_id = given if REQUEST_ID.match(given) else secrets.token_hex(16)

    @app.after_request
    def _finish(response: Response) -> Response:
        context = this_g()
        request_id = context.get("request_id") or secrets.token_hex(16)
        response.headers["X-Request-ID"] = request_id
        started = context.get("started")
        current = this_request()
        _log_request(
            {
                "method": current.method,
                "path": current.path,
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2)
                if started
                else None,
                "request_id": request_id,
            }
        )
        return response
