"""Migrations build exactly the schema the models describe, seed the default roles, and reverse.

Each test gets its own empty database on the suite's backend (SQLite, or PostgreSQL when
HEARTH_TEST_POSTGRES_URL is set) instead of the shared, already migrated per-worker one.
"""

from __future__ import annotations

import os
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
