"""Databases, configuration and seed data for a run, built in-process through the app's services.

Nothing here is timed except the bulk inserts (reported so a reader knows what a run cost). The
in-process app uses the very configuration the gunicorn servers get, so the tokens it mints verify
there.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, create_engine, event, func, insert, select, text
from sqlalchemy.engine import make_url

from bench.load import basic_auth, pkce_pair

REDIRECT_URI = "http://127.0.0.1:9/callback"  # never contacted: the flow stops at the code
SCOPE = "openid profile email offline_access READ_PUBLISHED_THREADS CREATE_POST"
SESSION_COOKIE = "storyden-session"
TOKEN_SCOPE = "offline_access READ_PUBLISHED_THREADS CREATE_POST"


def throwaway_rsa_pem() -> str:
    """A fresh RS256 signing key for this run only (HEARTH_ENV=production requires one)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@dataclass(frozen=True)
class Settings:
    """The production environment every server of the run shares (only DATABASE_URL differs)."""

    workdir: Path
    api_address: str
    web_address: str
    secret_key: str = field(default_factory=lambda: secrets.token_hex(32))
    signing_key: str = field(default_factory=throwaway_rsa_pem)

    def environ(self, database_url: str) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("OAUTH_", "PUBLIC_", "API_INTERNAL", "SESSION_COOKIE"))
            and not key.startswith(("RATELIMIT_", "HEARTH_", "DATABASE_URL", "SECRET_KEY"))
        }
        env.update(
            {
                "HEARTH_ENV": "production",
                "HEARTH_INSTANCE_DIR": str(self.workdir / "instance"),
                "DATABASE_URL": database_url,
                "SECRET_KEY": self.secret_key,
                "OAUTH_SIGNING_KEY": self.signing_key,
                "PUBLIC_API_ADDRESS": self.api_address,
                "PUBLIC_WEB_ADDRESS": self.web_address,
                "RATELIMIT_ENABLED": "false",
                "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
            }
        )
        return env


@dataclass
class Database:
    """A database created for this run and dropped at its end."""

    url: str
    label: str
    admin_url: str | None = None
    name: str | None = None

    def drop(self) -> None:
        if self.admin_url is None or self.name is None:
            return
        admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)'))
        admin.dispose()


def fresh_database(workdir: Path, postgres_url: str | None, label: str) -> Database:
    """A new SQLite file in the run's directory, or a new database on the PostgreSQL server."""
    from app.migrate import upgrade

    if postgres_url is None:
        url = f"sqlite:///{workdir / f'{label}.db'}"
        upgrade(url)
        return Database(url, label)
    admin_url = postgres_url.replace("postgresql://", "postgresql+psycopg://", 1)
    name = f"hearth_bench_{label}_{secrets.token_hex(4)}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    return Database(url, label, admin_url, name)


def postmaster_pid(database: Database) -> int | None:
    """The local PostgreSQL server's pid (the parent of our backend), to read its CPU time."""
    from bench.servers import parent

    if database.admin_url is None:
        return None
    engine = create_engine(database.url)
    with engine.connect() as conn:
        backend = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
        pid = parent(backend)
    engine.dispose()
    return pid


def server_versions(database: Database) -> dict[str, str]:
    import sqlite3

    versions = {"python": sys.version.split()[0], "sqlite": sqlite3.sqlite_version}
    if database.admin_url is not None:
        engine = create_engine(database.url)
        with engine.connect() as conn:
            versions["postgresql"] = str(conn.execute(text("SHOW server_version")).scalar())
        engine.dispose()
    return versions


@contextmanager
def in_process_app(settings: Settings, database_url: str) -> Iterator[Flask]:
    """The API with the servers' production settings, quiet, without periodic cleanup; this
    thread keeps its connections between requests, as a gunicorn worker's does."""
    os.environ.update(settings.environ(database_url))
    from app import create_app
    from app.extensions import Database

    app = create_app({"LOG_LEVEL": "WARNING", "CLEANUP_INTERVAL": timedelta(days=365)})
    Database.keep_connections(app)  # as `wsgi.api` does in each gunicorn worker
    try:
        yield app
    finally:
        Database.dispose(app)


def engine_of(app: Flask) -> Engine:
    engine: Engine = app.extensions["hearth_db"][0]
    return engine


@dataclass
class Seeded:
    client_id: str
    client_secret: str
    account_ids: list[str]
    sessions: list[str]  # storyden-session cookie values, one per account

    @property
    def authorization(self) -> str:
        return basic_auth(self.client_id, self.client_secret)


def seed(app: Flask, accounts: int, threads: int = 30, replies: int = 3) -> Seeded:
    """A confidential client, `accounts` members with a browser session each, forum content."""
    from app.accounts.schemas import SignUp
    from app.accounts.service import password_hasher, sign_up, start_session
    from app.extensions import db
    from app.models import Category, Reply, Thread
    from app.oauth import clients
    from app.requests import validate

    # Sessions are opened directly: the argon2id cost of a sign-in is not what is measured here.
    hasher = password_hasher(1, 8, 1)
    with app.app_context():
        fields = validate(
            clients.ClientFields,
            {
                "name": "Bench app",
                "redirect_uris": [REDIRECT_URI],
                "scopes": SCOPE,
                "grant_types": ["authorization_code", "refresh_token"],
            },
        )
        client, secret = clients.create(db.session, fields)
        assert secret is not None
        account_ids, sessions = [], []
        for n in range(accounts):
            form = validate(SignUp, {"handle": f"bench{n}", "password": secrets.token_hex(12)})
            account = sign_up(db.session, hasher, form)
            sessions.append(start_session(db.session, account, app.config["SESSION_TTL"]))
            account_ids.append(account.id)
        category = Category(slug="general", name="General", description="Bench threads")
        db.session.add(category)
        db.session.flush()
        for n in range(threads):
            thread = Thread(
                slug=f"thread-{n}",
                title=f"Thread number {n}",
                body="Lorem ipsum dolor sit amet. " * 8,
                category_id=category.id,
                author_id=account_ids[n % len(account_ids)],
            )
            db.session.add(thread)
            db.session.flush()
            for m in range(replies):
                db.session.add(
                    Reply(
                        thread_id=thread.id,
                        body=f"Reply {m}",
                        author_id=account_ids[m % len(account_ids)],
                    )
                )
        db.session.commit()
        return Seeded(client.id, secret, account_ids, sessions)


class StatementLog:
    """Count SQL statements and commits on an app's engines (SQLAlchemy core events).

    Every engine: on PostgreSQL the read-only requests have an engine of their own."""

    def __init__(self, app: Flask) -> None:
        from app.extensions import Database

        self.engines = Database.engines(app)
        self.statements: list[str] = []
        self.commits = 0

    def _statement(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        self.statements.append(" ".join(statement.split())[:160])

    def _commit(self, _conn: Any) -> None:
        self.commits += 1

    def __enter__(self) -> StatementLog:
        for engine in self.engines:
            event.listen(engine, "before_cursor_execute", self._statement)
            event.listen(engine, "commit", self._commit)
        return self

    def __exit__(self, *_exc: object) -> None:
        for engine in self.engines:
            event.remove(engine, "before_cursor_execute", self._statement)
            event.remove(engine, "commit", self._commit)


def browser(app: Flask, session: str) -> FlaskClient:
    client = app.test_client()
    client.set_cookie(SESSION_COOKIE, session)
    return client


def flow(
    app: Flask,
    seeded: Seeded,
    session: str,
    mark: Callable[[str], None] = lambda _step: None,
) -> dict[str, Any]:
    """The authorization-code flow of bench.load.FlowDriver, in-process; returns the tokens."""
    client = browser(app, session)
    verifier, challenge = pkce_pair()
    response = client.get(
        "/api/oauth/authorize",
        query_string={
            "response_type": "code",
            "client_id": seeded.client_id,
            "redirect_uri": REDIRECT_URI,
            "scope": SCOPE,
            "state": "s",
            "nonce": "n",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    mark("authorize")
    request_id = parse_qs(urlsplit(response.headers["Location"]).query)["request_id"][0]
    response = client.get("/api/oauth/authorize/consent", query_string={"request_id": request_id})
    assert response.status_code == 200, response.get_json()
    mark("consent_get")
    response = client.post(
        "/api/oauth/authorize/consent", json={"request_id": request_id, "decision": "approve"}
    )
    assert response.status_code == 200, response.get_json()
    mark("consent_post")
    code = parse_qs(urlsplit(response.get_json()["location"]).query)["code"][0]
    response = app.test_client().post(
        "/api/oauth/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
        headers={"Authorization": seeded.authorization},
    )
    assert response.status_code == 200, response.get_json()
    mark("token")
    tokens: dict[str, Any] = response.get_json()
    return tokens


def mint(app: Flask, seeded: Seeded, count: int) -> list[dict[str, Any]]:
    """Run `count` real flows, spread over the seeded accounts; return their token responses."""
    return [flow(app, seeded, seeded.sessions[n % len(seeded.sessions)]) for n in range(count)]


def self_readers(tokens: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Load states for paced `GET /api/accounts/self` reads, one per token response."""
    return [
        {
            "path": "/api/accounts/self",
            "headers": {"Authorization": f"Bearer {token['access_token']}"},
        }
        for token in tokens
    ]


def live_tokens(engine: Engine) -> int:
    from app.db import utcnow
    from app.models import Token

    with engine.connect() as conn:
        count = conn.execute(
            select(func.count())
            .select_from(Token)
            .where(Token.expires_at > utcnow(), Token.revoked_at.is_(None))
        ).scalar()
    return int(count or 0)


def bulk_tokens(
    engine: Engine,
    seeded: Seeded,
    audience: str,
    count: int,
    *,
    expired: bool,
    chunk: int = 10_000,
    progress: Callable[[str], None] = lambda _line: None,
) -> float:
    """Insert `count` token rows with SQLAlchemy Core executemany, in chunks; return seconds.

    Rows look like real ones: half access tokens (looked up by jti), half refresh tokens (unique
    SHA-256 hash), spread over grants of the seeded accounts. Expired rows ended an hour ago.
    """
    from app.db import new_id, utcnow
    from app.models import Grant, Token

    began = time.monotonic()
    now = utcnow()
    grant_count = max(1, min(1000, count // 1000))
    grants = []
    for n in range(grant_count):
        account_id = seeded.account_ids[n % len(seeded.account_ids)]
        grants.append((new_id(), account_id))
    with engine.begin() as conn:
        conn.execute(
            insert(Grant),
            [
                {
                    "id": grant_id,
                    "account_id": account_id,
                    "client_id": seeded.client_id,
                    "scope": TOKEN_SCOPE,
                    "resource": audience,
                    "created_at": now,
                }
                for grant_id, account_id in grants
            ],
        )
    created = now - timedelta(hours=2) if expired else now
    access_until = now - timedelta(hours=1) if expired else now + timedelta(hours=6)
    refresh_until = now - timedelta(hours=1) if expired else now + timedelta(days=30)
    done = 0
    while done < count:
        rows = []
        for n in range(done, min(count, done + chunk)):
            grant_id, account_id = grants[n % grant_count]
            refresh = n % 2 == 1
            rows.append(
                {
                    "id": new_id(),
                    "kind": "refresh" if refresh else "access",
                    "token_hash": secrets.token_hex(32) if refresh else None,
                    "grant_id": grant_id,
                    "client_id": seeded.client_id,
                    "account_id": account_id,
                    "code_id": None,
                    "scope": TOKEN_SCOPE,
                    "audience": audience,
                    "created_at": created,
                    "expires_at": refresh_until if refresh else access_until,
                }
            )
        with engine.begin() as conn:
            conn.execute(insert(Token), rows)
        done += len(rows)
        if done % (chunk * 20) == 0 or done == count:
            progress(f"  inserted {done}/{count} {'expired' if expired else 'live'} tokens")
    return time.monotonic() - began
