"""Responses and request bodies go through orjson, with Flask's output where orjson differs."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from flask import Flask, jsonify

from tests.conftest import make_app


def _app() -> Flask:
    return make_app("sqlite://")


def test_body_is_compact_utf8_in_insertion_order_ending_with_a_newline() -> None:
    with _app().app_context():
        response = jsonify({"z": "Ærøskøbing ✓", "a": [1, 2.5, None, True]})
    assert response.mimetype == "application/json"
    assert response.get_data() == '{"z":"Ærøskøbing ✓","a":[1,2.5,null,true]}\n'.encode()


def test_values_orjson_would_write_differently_keep_flasks_format() -> None:
    with _app().app_context():
        when = jsonify({"at": datetime(2026, 11, 23, 4, 5, 6, tzinfo=UTC)})
        huge = jsonify({"n": 2**70})
        money = jsonify({"d": Decimal("1.10")})
    assert when.get_json() == {"at": "Mon, 23 Nov 2026 04:05:06 GMT"}
    assert huge.get_data() == b'{"n":1180591620717411303424}\n'
    assert money.get_json() == {"d": "1.10"}


def test_debug_mode_still_indents() -> None:
    app = _app()
    app.debug = True
    with app.app_context():
        assert jsonify({"a": 1}).get_data() == b'{\n  "a": 1\n}\n'
