"""The per-request access line: written directly when Hearth's handler is its only destination,
through `logging` otherwise, and the same line either way."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest
from flask import Flask

from app.observability import JsonFormatter, access

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00$")
KEYS = ["ts", "level", "logger", "msg", "method", "path", "status", "duration_ms", "request_id"]


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def hearth_logger() -> Iterator[logging.Logger]:
    """The `hearth` logger as production sets it up (app.observability.init_app, which skips
    it under TESTING): a JSON handler of Hearth's own, here on a string buffer, and no
    propagation to pytest's capturing handlers on the root logger."""
    logger = logging.getLogger("hearth")
    saved = (logger.handlers[:], logger.propagate, logger.level, access.filters[:], access.level)
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(JsonFormatter())
    handler._hearth = True  # type: ignore[attr-defined]
    logger.handlers = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    yield logger
    logger.handlers, logger.propagate, _, access.filters, _ = saved
    logger.setLevel(saved[2])
    access.setLevel(saved[4])


def only_ours(logger: logging.Logger) -> None:
    """Drop the handlers pytest attaches to non-propagating loggers when each test phase
    starts (after this module's fixture ran), so Hearth's handler is the only one again."""
    logger.handlers[:] = [h for h in logger.handlers if getattr(h, "_hearth", False)]


def lines(logger: logging.Logger) -> list[dict[str, object]]:
    stream = logger.handlers[0].stream  # type: ignore[attr-defined]
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def check_line(line: dict[str, object], path: str, status: int, request_id: str) -> None:
    assert list(line) == KEYS
    assert TIMESTAMP.match(str(line["ts"]))
    assert line["level"] == "info"
    assert line["logger"] == "hearth.access"
    assert line["msg"] == "request"
    assert (line["method"], line["path"], line["status"]) == ("GET", path, status)
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["request_id"] == request_id


def test_access_line_skips_the_log_record_when_hearths_handler_is_its_only_destination(
    app: Flask, hearth_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_record(*_args: object, **_kwargs: object) -> logging.LogRecord:
        raise AssertionError("the access line went through a LogRecord")

    monkeypatch.setattr(access, "makeRecord", no_record)
    only_ours(hearth_logger)
    client = app.test_client()
    response = client.get("/api/threads?code=secret", headers={"X-Request-ID": "req-1"})
    assert response.status_code == 200
    missing = client.get("/api/nowhere", headers={"X-Request-ID": "req-2"})
    assert missing.status_code == 404
    written = lines(hearth_logger)
    assert len(written) == 2
    check_line(written[0], "/api/threads", 200, "req-1")
    check_line(written[1], "/api/nowhere", 404, "req-2")


def test_access_line_is_the_same_through_logging_when_another_handler_listens(
    app: Flask, hearth_logger: logging.Logger
) -> None:
    only_ours(hearth_logger)
    other = Collect()
    hearth_logger.addHandler(other)
    assert app.test_client().get("/api/threads", headers={"X-Request-ID": "req-3"}).status_code
    [direct] = lines(hearth_logger)
    check_line(direct, "/api/threads", 200, "req-3")
    [record] = [r for r in other.records if r.name == "hearth.access"]
    formatted = json.loads(JsonFormatter().format(record))
    assert {**formatted, "ts": direct["ts"]} == direct


@pytest.mark.parametrize("where", ["logger level", "handler level", "filter", "disabled"])
def test_access_line_honours_levels_and_filters(
    app: Flask, hearth_logger: logging.Logger, where: str
) -> None:
    only_ours(hearth_logger)
    handler = hearth_logger.handlers[0]
    if where == "logger level":
        hearth_logger.setLevel(logging.WARNING)
    elif where == "handler level":
        handler.setLevel(logging.WARNING)
    elif where == "filter":
        access.addFilter(lambda record: record.getMessage() != "request")
    else:
        logging.disable(logging.INFO)
    try:
        assert app.test_client().get("/api/threads").status_code == 200
    finally:
        logging.disable(logging.NOTSET)
    assert lines(hearth_logger) == []


def test_a_broken_log_stream_never_fails_the_request(
    app: Flask, hearth_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Broken(io.StringIO):
        def write(self, _text: str) -> int:
            raise OSError("disk full")

    only_ours(hearth_logger)
    hearth_logger.handlers[0].stream = Broken()  # type: ignore[attr-defined]
    monkeypatch.setattr(logging, "raiseExceptions", False)  # no "--- Logging error ---" noise
    response = app.test_client().get("/api/threads", headers={"X-Request-ID": "req-4"})
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "req-4"
