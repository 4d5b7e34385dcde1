"""Migrations build exactly the schema the models describe, seed the default roles, and reverse.

Each test gets its own empty database on the suite's backend (SQLite, or PostgreSQL when
HEARTH_TEST_POSTGRES_URL is set) instead of the shared, already migrated per-worker one.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, inspect, select, text

import app.models  # noqa: F401  (registers every table on the metadata)
from app.db import Base
from app.extensions import make_engine
from app.migrate import alembic_config, upgrade
from app.models import Role
from app.permissions import DEFAULT_ROLES, from_stored


@pytest.fixture
def empty_database_url(tmp_path: Path) -> Iterator[str]:
    """A database with no tables at all, on the backend this test run uses."""
    admin_url = os.environ.get("HEARTH_TEST_POSTGRES_URL")
    if not admin_url:
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
        return
    name = f"hearth_migrations_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def engine(empty_database_url: str) -> Iterator[Engine]:
    engine = make_engine(empty_database_url)
    yield engine
    engine.dispose()


def schema_differences(engine: Engine) -> list[object]:
    """What `alembic revision --autogenerate` would put in a new migration (empty when in step)."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def test_migrations_at_head_match_the_models(empty_database_url: str, engine: Engine) -> None:
    upgrade(empty_database_url)

    assert current_revision(engine) == head_revision()
    differences = schema_differences(engine)
    assert differences == [], (
        "the models and migrations/ disagree; add a migration "
        "(alembic revision --autogenerate) that makes these differences go away:\n"
        + "\n".join(map(repr, differences))
    )


def test_upgrade_seeds_the_default_roles_with_their_permissions(
    empty_database_url: str, engine: Engine
) -> None:
    upgrade(empty_database_url)

    with engine.connect() as conn:
        rows = conn.execute(select(Role.name, Role.permissions)).all()
    assert {name: from_stored(permissions) for name, permissions in rows} == DEFAULT_ROLES
    # Every stored name is one this version knows: from_stored would silently skip a typo.
    for _name, permissions in rows:
        assert len(permissions.split()) == len(from_stored(permissions))


def test_downgrade_to_base_then_upgrade_again_rebuilds_the_schema(
    empty_database_url: str, engine: Engine
) -> None:
    config = alembic_config(empty_database_url)
    upgrade(empty_database_url)

    command.downgrade(config, "base")

    assert current_revision(engine) is None
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}

    upgrade(empty_database_url)

    assert current_revision(engine) == head_revision()
    assert schema_differences(engine) == []
    with engine.connect() as conn:
        names = set(conn.scalars(select(Role.name)))
    assert names == set(DEFAULT_ROLES)


def test_token_rows_carry_only_the_indexes_their_readers_use(
    empty_database_url: str, engine: Engine
) -> None:
    """Every issued token writes one page per index it enters: each one here has a reader
    (bearer reads by id, refresh by token_hash, revocation and "last used" by grant, cleanup by
    expires_at). Migrations 0006 and 0007 dropped the ones only cascades used (code_id,
    client_id, account_id), whose foreign keys still cascade; 0008 keeps access tokens, which
    have no hash, out of the token_hash index."""
    upgrade(empty_database_url)

    inspector = inspect(engine)
    indexes = {
        index["name"]: (tuple(index["column_names"]), bool(index["unique"]))
        for index in inspector.get_indexes("oauth_tokens")
    }
    assert indexes == {
        "ix_oauth_tokens_expires_at": (("expires_at",), False),
        "ix_oauth_tokens_grant_id_created_at": (("grant_id", "created_at"), False),
        "uq_oauth_tokens_token_hash": (("token_hash",), True),
    }
    assert inspector.get_unique_constraints("oauth_tokens") == []
    (by_hash,) = [
        index
        for index in inspector.get_indexes("oauth_tokens")
        if index["name"] == "uq_oauth_tokens_token_hash"
    ]
    (predicate,) = [
        value for key, value in by_hash["dialect_options"].items() if key.endswith("_where")
    ]
    assert str(predicate).strip("()").lower() == "token_hash is not null"
    cascades = {
        (key["referred_table"], tuple(key["constrained_columns"]), key["options"].get("ondelete"))
        for key in inspector.get_foreign_keys("oauth_tokens")
    }
    assert cascades == {
        ("oauth_grants", ("grant_id",), "CASCADE"),
        ("oauth_clients", ("client_id",), "CASCADE"),
        ("accounts", ("account_id",), "CASCADE"),
    }


def test_reply_count_migration_counts_the_replies_already_there(
    empty_database_url: str, engine: Engine
) -> None:
    upgrade(empty_database_url, "0004")
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO accounts (id, handle, name, email_verified, created_at, "
                "updated_at) VALUES ('a1', 'alice', 'Alice', false, CURRENT_TIMESTAMP, "
                "CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            text(
                "INSERT INTO categories (id, slug, name, description, created_at) "
                "VALUES ('c1', 'general', 'General', '', CURRENT_TIMESTAMP)"
            )
        )
        for thread in ("t1", "t2"):
            conn.execute(
                text(
                    "INSERT INTO threads (id, slug, title, body, category_id, author_id, "
                    "created_at, updated_at) VALUES (:id, :id, 'T', 'x', 'c1', 'a1', "
                    "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ),
                {"id": thread},
            )
        for n in range(3):
            conn.execute(
                text(
                    "INSERT INTO replies (id, thread_id, body, author_id, created_at) "
                    "VALUES (:id, 't1', 'r', 'a1', CURRENT_TIMESTAMP)"
                ),
                {"id": f"r{n}"},
            )

    upgrade(empty_database_url)

    def counts() -> dict[str, int]:
        with engine.connect() as conn:
            return dict(conn.execute(text("SELECT id, reply_count FROM threads")).all())

    assert counts() == {"t1": 3, "t2": 0}
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO replies (id, thread_id, body, author_id, created_at) "
                "VALUES ('r9', 't2', 'r', 'a1', CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(text("DELETE FROM replies WHERE id = 'r0'"))
    assert counts() == {"t1": 2, "t2": 1}

    command.downgrade(alembic_config(empty_database_url), "0004")
    with engine.begin() as conn:  # no trigger left behind to write to a missing column
        conn.execute(text("DELETE FROM replies"))
    assert "reply_count" not in {c["name"] for c in inspect(engine).get_columns("threads")}


def test_forum_revision_migration_starts_at_the_clock_and_leaves_no_trigger_behind(
    empty_database_url: str, engine: Engine
) -> None:
    upgrade(empty_database_url, "0008")
    account = (
        "INSERT INTO accounts (id, handle, name, email_verified, created_at, updated_at) "
        "VALUES (:id, :id, 'A', false, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
    )
    thread = (
        "INSERT INTO threads (id, slug, title, body, category_id, author_id, created_at, "
        "updated_at) VALUES (:id, :id, 'T', 'x', 'c1', 'a1', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
    )
    with engine.begin() as conn:
        conn.execute(text(account), {"id": "a1"})
        conn.execute(
            text(
                "INSERT INTO categories (id, slug, name, description, created_at) "
                "VALUES ('c1', 'general', 'General', '', CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(text(thread), {"id": "t1"})

    started = int(time.time()) - 1
    upgrade(empty_database_url)

    def value() -> int:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT value FROM forum_revision")).scalar_one())

    first = value()
    assert first >= started * 1_000_000  # the database clock, in microseconds, from the start
    with engine.begin() as conn:  # one transaction, several changes: it only goes up
        conn.execute(text(thread), {"id": "t2"})
        conn.execute(
            text(
                "INSERT INTO replies (id, thread_id, body, author_id, created_at) "
                "VALUES ('r1', 't1', 'r', 'a1', CURRENT_TIMESTAMP)"
            )
        )
    after_writes = value()
    assert after_writes > first

    # A restored backup holds an older revision: the next change still goes past every
    # revision handed out before, so no page kept earlier can match. (SQLite's clock counts
    # milliseconds: a restore takes longer than the one this sleep waits out.)
    time.sleep(0.002)
    with engine.begin() as conn:
        conn.execute(text("UPDATE forum_revision SET value = 2"))
        conn.execute(text("UPDATE threads SET title = 'Restored' WHERE id = 't2'"))
    assert value() > after_writes
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text("TRUNCATE threads CASCADE"))
        assert value() > after_writes + 1
    after_writes = value()
    with engine.begin() as conn:  # what no page shows changes nothing
        conn.execute(text("UPDATE threads SET body = 'edited' WHERE id = 't1'"))
        conn.execute(text("UPDATE accounts SET email = 'a@example.org' WHERE id = 'a1'"))
    assert value() == after_writes

    command.downgrade(alembic_config(empty_database_url), "0008")
    assert "forum_revision" not in inspect(engine).get_table_names()
    with engine.begin() as conn:  # no trigger left behind to write to the missing table
        conn.execute(text("UPDATE accounts SET name = 'B' WHERE id = 'a1'"))
        conn.execute(text("UPDATE categories SET slug = 'other'"))
        conn.execute(text("DELETE FROM threads"))
        if engine.dialect.name == "postgresql":
            functions = conn.execute(
                text("SELECT count(*) FROM pg_proc WHERE proname = 'hearth_forum_revision'")
            ).scalar_one()
            assert functions == 0
