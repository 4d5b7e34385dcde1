"""Frontend fixtures: the real frontend in front of the real API served on 127.0.0.1."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.conftest import AuthActions, LiveServer
from tests.federation.conftest import github  # noqa: F401  (the fake GitHub, for upstream sign-in)
from tests.frontend.support import (
    PINBOARD_REDIRECT,
    PINBOARD_SCOPES,
    Forum,
    LiveApi,
    OAuthClient,
    make_web,
    register_client,
    seed_forum,
)


@pytest.fixture
def web(live_api: LiveServer, live_ports: dict[str, int]) -> Flask:
    """The frontend with CSRF checks off, for tests about everything else."""
    return make_web(live_api.url, live_ports["web"], WTF_CSRF_ENABLED=False)


@pytest.fixture
def csrf_web(live_api: LiveServer, live_ports: dict[str, int]) -> Flask:
    """The frontend as deployed: every form post needs its CSRF token."""
    return make_web(live_api.url, live_ports["web"])


@pytest.fixture
def visitor(web: Flask) -> FlaskClient:
    """A visitor's browser, as Flask's test client, on the frontend."""
    return web.test_client()


@pytest.fixture
def api(live_api: LiveServer) -> LiveApi:
    return LiveApi(live_api.url)


@pytest.fixture
def forum(auth: AuthActions, api: LiveApi) -> Forum:
    return seed_forum(auth, api)


@pytest.fixture
def pinboard(live_api: LiveServer) -> OAuthClient:
    """A confidential third-party client registered by the operator."""
    return register_client(live_api.app, PINBOARD_REDIRECT, PINBOARD_SCOPES)
