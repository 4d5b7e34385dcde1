"""forum_revision: a counter that triggers raise whenever the thread list would change

The thread list is the forum's most read page. API workers keep the pages they served and serve
one again while the forum's revision, read in the same request as the principal, still equals
the revision read with the page's rows (app.forum.pages). That is exact only if every change to
what a page shows raises the revision in the transaction that makes it, so triggers raise it
rather than the application: a thread, category or account added or removed, a thread's id,
slug, title, category, author, creation time or reply count changed (the reply triggers of 0005
update that), a category's id or slug, an account's id, handle or name, and on PostgreSQL a
TRUNCATE of any of the three tables. Cascades fire them too; a body edit or a new email does not.

On PostgreSQL they are deferred constraint triggers: the revision goes up once per transaction,
as it commits, so the row's lock is held only while the transaction commits, after every other
row it locked. Forum writes do not wait for each other's open transactions (an operator's idle
`psql` transaction included) and cannot deadlock over it. SQLite, which has one writer at a
time, raises it once per row changed. The revision never goes down and every value, the first
too, is at least the database's clock in microseconds.

SQLite drops a table's triggers with the table: a later migration that rebuilds `threads`,
`categories` or `accounts` through `batch_alter_table` must create these again.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A new value is at least the database clock in microseconds, the first one too: after a backup
# is restored, or this migration is undone and applied again, the next revision is still one no
# worker has seen, so no page kept before can match a different state of the forum.
POSTGRESQL_CLOCK = "(extract(epoch FROM clock_timestamp()) * 1000000)::bigint"
SQLITE_CLOCK = "CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)"
SQLITE_BUMP = (
    f"UPDATE forum_revision SET value = max(value + 1, {SQLITE_CLOCK}) WHERE id = 1"
)
# `id` is in every column list: the thread list shows it, sorts on it and pages by it, and joins
# on the others'.
THREAD_COLUMNS = "id, slug, title, category_id, author_id, created_at, reply_count"
# (trigger name, event, table) on both databases. Accounts count when added or removed too: with
# foreign keys off (the sqlite3 shell's default) that leaves threads whose author is gone, and
# SQLite's INSERT OR REPLACE fires only the insert trigger.
TRIGGERS = (
    ("threads_revision_insert", "INSERT", "threads"),
    ("threads_revision_delete", "DELETE", "threads"),
    ("threads_revision_update", f"UPDATE OF {THREAD_COLUMNS}", "threads"),
    ("categories_revision_insert", "INSERT", "categories"),
    ("categories_revision_delete", "DELETE", "categories"),
    ("categories_revision_update", "UPDATE OF id, slug", "categories"),
    ("accounts_revision_insert", "INSERT", "accounts"),
    ("accounts_revision_delete", "DELETE", "accounts"),
    ("accounts_revision_update", "UPDATE OF id, handle, name", "accounts"),
)
TABLES = ("threads", "categories", "accounts")
# PostgreSQL: the rows a transaction changes say so only when it commits (constraint triggers,
# deferred), and the first of them raises the revision; the rest see the transaction's flag.
# The revision row is locked for the commit alone, after every other row the transaction
# locks: forum writes never wait for one another's open transactions on it and cannot deadlock
# over it. A TRUNCATE fires no row trigger: statement triggers raise it at once.
POSTGRESQL_FUNCTIONS = (
    f"""
    CREATE FUNCTION hearth_forum_revision() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF current_setting('hearth.forum_revision_raised', true) IS DISTINCT FROM 'on' THEN
            UPDATE forum_revision SET value = greatest(value + 1, {POSTGRESQL_CLOCK})
            WHERE id = 1;
            PERFORM set_config('hearth.forum_revision_raised', 'on', true);
        END IF;
        RETURN NULL;
    END
    $$
    """,
    f"""
    CREATE FUNCTION hearth_forum_revision_now() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        UPDATE forum_revision SET value = greatest(value + 1, {POSTGRESQL_CLOCK}) WHERE id = 1;
        RETURN NULL;
    END
    $$
    """,
)


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "forum_revision",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_forum_revision_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forum_revision")),
    )
    clock = POSTGRESQL_CLOCK if postgresql else SQLITE_CLOCK
    op.execute(f"INSERT INTO forum_revision (id, value) VALUES (1, {clock})")
    if not postgresql:
        for name, event, table in TRIGGERS:
            op.execute(f"CREATE TRIGGER {name} AFTER {event} ON {table} BEGIN {SQLITE_BUMP}; END")
        return
    for function in POSTGRESQL_FUNCTIONS:
        op.execute(function)
    for name, event, table in TRIGGERS:
        op.execute(
            f"CREATE CONSTRAINT TRIGGER {name} AFTER {event} ON {table} "
            "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION hearth_forum_revision()"
        )
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_revision_truncate AFTER TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION hearth_forum_revision_now()"
        )


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for name, _event, table in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (f" ON {table}" if postgresql else ""))
    if postgresql:
        for table in TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_revision_truncate ON {table}")
        op.execute("DROP FUNCTION IF EXISTS hearth_forum_revision()")
        op.execute("DROP FUNCTION IF EXISTS hearth_forum_revision_now()")
    op.drop_table("forum_revision")
