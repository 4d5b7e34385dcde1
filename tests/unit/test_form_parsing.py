"""HearthRequest reads small urlencoded bodies itself, with Werkzeug's results and errors."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, Request
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.exceptions import ClientDisconnected, RequestEntityTooLarge
from werkzeug.test import EnvironBuilder

from app.requests import SMALL_FORM_BYTES, HearthRequest
from tests.conftest import make_app

FORM = "application/x-www-form-urlencoded"
TERMINATED = {"wsgi.input_terminated": True}  # what gunicorn sets


def _environ(body: bytes, content_type: str = FORM, **extra: Any) -> dict[str, Any]:
    environ = EnvironBuilder(
        method="POST", path="/", data=body, content_type=content_type
    ).get_environ()
    environ.update(extra)
    return environ


def _parsed(
    request_class: type[Request], environ: dict[str, Any], data_first: bool = False, **config: Any
) -> Any:
    """What the form, files and remaining body read as, or the exception the form raised."""
    app = Flask(__name__)
    app.request_class = request_class
    app.config.update(config)
    fresh = {**environ, "wsgi.input": io.BytesIO(environ["wsgi.input"].getvalue())}
    with app.request_context(fresh):
        from flask import request

        try:
            if data_first:
                request.get_data()
            form = list(request.form.items(multi=True))
        except Exception as error:
            return type(error)
        return form, list(request.files.items()), request.get_data(), request.stream.read()


def _same(environ: dict[str, Any], **config: Any) -> Any:
    ours = _parsed(HearthRequest, environ, **config)
    assert ours == _parsed(Request, environ, **config)
    return ours


@pytest.mark.parametrize(
    ("body", "items"),
    [
        (b"", []),
        (
            b"grant_type=refresh_token&refresh_token=abc",
            [("grant_type", "refresh_token"), ("refresh_token", "abc")],
        ),
        (b"a=1&a=2&b=", [("a", "1"), ("a", "2"), ("b", "")]),
        (b"a", [("a", "")]),
        (b"&&a=x+y&", [("a", "x y")]),
        (b"a=%C3%A9", [("a", "\u00e9")]),
        (b"a=%E9&b=%zz", [("a", "%E9"), ("b", "%zz")]),
        ("n=\u00e9".encode(), [("n", "\u00e9")]),
        (b"a=1;b=2", [("a", "1;b=2")]),
        (b"a=\xff", []),  # not UTF-8: an empty form, as Werkzeug's parser gives
    ],
)
def test_small_form_reads_as_werkzeug_reads_it(body: bytes, items: list[tuple[str, str]]) -> None:
    assert _same(_environ(body)) == (items, [], b"", b"")


@settings(derandomize=True, max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=100).map(str.encode))
def test_any_small_body_reads_as_werkzeug_reads_it(body: bytes) -> None:
    _same(_environ(body))


def test_a_charset_parameter_changes_nothing_as_with_werkzeug() -> None:
    environ = _environ("a=\u00e9".encode(), content_type=f"{FORM}; charset=ISO-8859-1")
    assert _same(environ) == ([("a", "\u00e9")], [], b"", b"")


def test_a_form_read_after_the_raw_body_reads_as_werkzeug_reads_it() -> None:
    environ = _environ(b"a=1&b=2")
    ours = _parsed(HearthRequest, environ, data_first=True)
    assert ours == _parsed(Request, environ, data_first=True)
    assert ours == ([("a", "1"), ("b", "2")], [], b"a=1&b=2", b"")


def test_a_body_past_max_content_length_is_413_as_with_werkzeug() -> None:
    assert _same(_environ(b"a=" + b"x" * 30), MAX_CONTENT_LENGTH=10) is RequestEntityTooLarge


def test_a_body_shorter_than_its_content_length_is_a_disconnect_as_with_werkzeug() -> None:
    environ = _environ(b"a=1", CONTENT_LENGTH="50")
    assert _same(environ) is ClientDisconnected


def test_a_short_body_the_server_terminates_reads_as_werkzeug_reads_it() -> None:
    """The server vouches for the body's end, so neither side waits for the missing bytes."""
    environ = _environ(b"a=1", CONTENT_LENGTH="50", **TERMINATED)
    assert _same(environ) == ([("a", "1")], [], b"", b"")


@pytest.fixture
def no_werkzeug_parser(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    def refuse(_request: Request) -> Any:
        raise AssertionError("Werkzeug's form parser was used")

    monkeypatch.setattr(Request, "make_form_data_parser", refuse)
    yield


@pytest.mark.parametrize("extra", [{}, TERMINATED], ids=["content-length", "server-terminated"])
def test_small_urlencoded_body_skips_werkzeugs_form_parser(
    no_werkzeug_parser: None, extra: dict[str, Any]
) -> None:
    assert _parsed(HearthRequest, _environ(b"a=1", **extra)) == ([("a", "1")], [], b"", b"")


@settings(derandomize=True, max_examples=100, deadline=None)
@given(st.binary(max_size=200))
def test_a_body_the_server_terminates_reads_as_werkzeug_reads_it(body: bytes) -> None:
    _same(_environ(body, **TERMINATED))


@pytest.mark.parametrize(
    ("environ", "config"),
    [
        (_environ(b"a=" + b"x" * SMALL_FORM_BYTES), {}),
        (_environ(b"a=1", **TERMINATED), {"MAX_CONTENT_LENGTH": 1000}),
        (_environ(b"a=1", HTTP_TRANSFER_ENCODING="chunked", **TERMINATED), {}),
        (_environ(b"a=1"), {"DEBUG": True}),
        (_environ(b"a=1", content_type="multipart/form-data; boundary=x"), {}),
    ],
    ids=["larger", "terminated-with-a-limit", "chunked", "debug", "multipart"],
)
def test_anything_else_goes_to_werkzeugs_parser(
    no_werkzeug_parser: None, environ: dict[str, Any], config: dict[str, Any]
) -> None:
    assert _parsed(HearthRequest, environ, **config) is AssertionError


def test_the_api_app_uses_hearth_request(tmp_path: Any) -> None:
    app = make_app(f"sqlite:///{tmp_path / 'hearth.db'}")
    assert app.request_class is HearthRequest
