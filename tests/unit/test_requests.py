"""Reading the client id out of HTTP Basic credentials (RFC 6749 §2.3.1)."""

from __future__ import annotations

import base64

import pytest

from app.requests import basic_client_id


def _basic(raw: str) -> str:
    return "Basic " + base64.b64encode(raw.encode()).decode()


@pytest.mark.parametrize(
    ("header", "client_id"),
    [
        (_basic("my-app:secret"), "my-app"),
        (_basic("my%3Aapp:sec:ret"), "my:app"),  # the id is form-encoded before base64
        (_basic("only-id"), "only-id"),
        ("basic " + base64.b64encode(b"lower:case").decode(), "lower"),
        ("Basic not base64!", None),
        ("Basic " + base64.b64encode(b"\xff\xfe:x").decode(), None),
        ("Bearer abc", None),
        ("", None),
    ],
)
def test_basic_client_id(header: str, client_id: str | None) -> None:
    assert basic_client_id(header) == client_id
