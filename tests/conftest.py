"""Shared fixtures: a migrated database per test worker (SQLite or PostgreSQL), apps, clients.

Set HEARTH_TEST_POSTGRES_URL (an admin URL such as postgresql+psycopg://postgres@127.0.0.1:5433/postgres)
to run the suite against PostgreSQL; otherwise every worker gets its own SQLite file.
"""

from __future__ import annotations

import os
import socket
import tempfile
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

# Tests never read or write the developer's ./instance folder or environment.
_INSTANCE = tempfile.mkdtemp(prefix="hearth-test-instance-")
os.environ["HEARTH_INSTANCE_DIR"] = _INSTANCE
os.environ["HEARTH_ENV"] = "testing"
for _name in list(os.environ):
    if _name.startswith(("OAUTH_", "PUBLIC_", "API_INTERNAL", "SESSION_COOKIE", "RATELIMIT_")):
        del os.environ[_name]
os.environ.pop("DATABASE_URL", None)

from flask import Flask  # noqa: E402
from flask.testing import FlaskClient, FlaskCliRunner  # noqa: E402
from sqlalchemy import create_engine, delete, select, text  # noqa: E402

from app import create_app  # noqa: E402
from app.db import Base  # noqa: E402
from app.extensions import Database, make_engine  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from app.oauth.keys import _generate_pem  # noqa: E402

KEEP_TABLES = {"roles", "forum_revision"}
SIGNING_KEY = _generate_pem()


def p256_pem() -> str:
    """A fresh P-256 private key as PKCS#8 PEM (an ES256 OAUTH_SIGNING_KEY)."""
    return (
        ec.generate_private_key(ec.SECP256R1())
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )


PASSWORD = "correct-horse-battery"

TEST_CONFIG: dict[str, Any] = {
    "SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789",
    "PASSWORD_HASH_TIME_COST": 1,
    "PASSWORD_HASH_MEMORY_KIB": 8,
    "PASSWORD_HASH_PARALLELISM": 1,
    "RATELIMIT_ENABLED": False,
    "OAUTH_SIGNING_KEY": SIGNING_KEY,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def backend() -> str:
    return "postgresql" if os.environ.get("HEARTH_TEST_POSTGRES_URL") else "sqlite"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Iterator[str]:
    """A freshly migrated database for this test worker."""
    admin_url = os.environ.get("HEARTH_TEST_POSTGRES_URL")
    if not admin_url:
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'hearth.db'}"
        upgrade(url)
        yield url
        return
    name = f"hearth_test_{worker_id}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def _wipe_engine(database_url: str) -> Iterator[Any]:
    engine = make_engine(database_url)
    yield engine
    engine.dispose()


@pytest.fixture(autouse=True)
def _clean_database(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test starts from the migrated state: all rows but the seeded roles go afterwards."""
    engine = (
        request.getfixturevalue("_wipe_engine") if "database_url" in request.fixturenames else None
    )
    yield
    if engine is None:
        return
    with engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            if table.name not in KEEP_TABLES:
                conn.execute(delete(table))


def make_app(database_url: str, **overrides: Any) -> Flask:
    app = create_app({**TEST_CONFIG, "DATABASE_URL": database_url, **overrides})
    app.testing = True
    return app


def account_with_expired_session(app: Flask, handle: str) -> None:
    """Create an account (through the CLI) holding one session that has already expired."""
    from app.db import utcnow
    from app.extensions import db
    from app.models import Account, AuthSession

    created = app.test_cli_runner().invoke(
        args=["accounts", "create", handle, "--password", "sturdy-pass-99"]
    )
    assert created.exit_code == 0, created.output
    with app.app_context():
        db.session.add(
            AuthSession(
                token_hash="f" * 64,
                account_id=db.session.scalar(select(Account.id).where(Account.handle == handle)),
                expires_at=utcnow() - timedelta(seconds=1),
            )
        )
        db.session.commit()


@pytest.fixture
def app(database_url: str) -> Iterator[Flask]:
    app = make_app(database_url)
    yield app
    Database.dispose(app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


class AuthActions:
    """Create accounts and sign clients in through the real endpoints."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def signup(
        self, handle: str, password: str = PASSWORD, client: FlaskClient | None = None
    ) -> FlaskClient:
        client = client or self.app.test_client()
        response = client.post(
            "/api/auth/password/signup", json={"handle": handle, "password": password}
        )
        assert response.status_code == 200, response.get_json()
        return client

    def admin(self, handle: str = "root") -> FlaskClient:
        result = self.app.test_cli_runner().invoke(
            args=["accounts", "create", handle, "--password", PASSWORD, "--role", "admin"]
        )
        assert result.exit_code == 0, result.output
        return self.signin(handle)

    def signin(self, handle: str, password: str = PASSWORD) -> FlaskClient:
        client = self.app.test_client()
        response = client.post(
            "/api/auth/password/signin", json={"handle": handle, "password": password}
        )
        assert response.status_code == 200, response.get_json()
        return client


@pytest.fixture
def auth(app: Flask) -> AuthActions:
    return AuthActions(app)


class LiveServer:
    def __init__(self, app: Flask, port: int) -> None:
        from werkzeug.serving import make_server

        self.app = app
        self.url = f"http://127.0.0.1:{port}"
        self._server = make_server("127.0.0.1", port, app, threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> LiveServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)


@pytest.fixture
def live_ports() -> dict[str, int]:
    """Ports for a live API and frontend pair (known before either app is built)."""
    return {"api": free_port(), "web": free_port()}


@pytest.fixture
def live_api(database_url: str, live_ports: dict[str, int]) -> Iterator[LiveServer]:
    """The real API served over HTTP on 127.0.0.1 in a background thread."""
    api_url = f"http://127.0.0.1:{live_ports['api']}"
    web_url = f"http://127.0.0.1:{live_ports['web']}"
    app = make_app(
        database_url,
        PUBLIC_API_ADDRESS=api_url,
        PUBLIC_WEB_ADDRESS=web_url,
        OAUTH_AUTHORISATION_CODE_CONSENT_URL=f"{web_url}/oauth/authorize/consent",
        OAUTH_AUTHORISATION_LOGIN_URL=f"{web_url}/login",
    )
    server = LiveServer(app, live_ports["api"]).start()
    yield server
    server.stop()
    Database.dispose(app)
