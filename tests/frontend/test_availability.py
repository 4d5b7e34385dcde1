"""Health checks and what visitors see when the API cannot be reached."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import PASSWORD, free_port
from tests.frontend.support import make_web

UNAVAILABLE = "<p>We could not reach the forum service. Please try again in a moment.</p>"


@pytest.fixture
def web_without_api() -> Flask:
    """A frontend whose API address has nothing listening."""
    return make_web(f"http://127.0.0.1:{free_port()}", free_port(), WTF_CSRF_ENABLED=False)


def test_alive_answers_without_the_api(web_without_api: Flask) -> None:
    response = web_without_api.test_client().get("/health/alive")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_ready_when_the_api_is_ready(visitor: FlaskClient) -> None:
    response = visitor.get("/health/ready")

    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}


def test_not_ready_when_the_api_is_down(web_without_api: Flask) -> None:
    response = web_without_api.test_client().get("/health/ready")

    assert response.status_code == 503
    assert response.get_json() == {"status": "unavailable", "error_description": "API unreachable"}


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("GET", "/", None),
        ("GET", "/t/welcome", None),
        ("GET", "/login", None),
        ("POST", "/login", {"handle": "alice", "password": PASSWORD}),
    ],
)
def test_api_down_shows_the_unavailable_page(
    web_without_api: Flask, method: str, path: str, data: dict[str, str] | None
) -> None:
    client = web_without_api.test_client()
    client.set_cookie("storyden-session", "a-session-token")

    response = client.open(path, method=method, data=data)

    assert response.status_code == 502
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "<title>Hearth is unavailable · Hearth</title>" in page
    assert UNAVAILABLE in page
    assert "Traceback" not in page
    assert response.headers["X-Frame-Options"] == "DENY"


def test_unknown_page_is_a_friendly_404(visitor: FlaskClient) -> None:
    response = visitor.get("/no-such-page")

    assert response.status_code == 404
    page = response.get_data(as_text=True)
    assert "<h1>Page not found</h1>" in page
    assert "<p>There is nothing at this address. It may have been moved or deleted.</p>" in page


def test_crash_shows_the_500_page_without_a_trace(web: Flask) -> None:
    def broken() -> str:
        raise RuntimeError("secret internals")

    web.add_url_rule("/broken", view_func=broken)

    response = web.test_client().get("/broken")

    assert response.status_code == 500
    page = response.get_data(as_text=True)
    assert "<h1>Something went wrong</h1>" in page
    assert "secret internals" not in page
    assert "Traceback" not in page
