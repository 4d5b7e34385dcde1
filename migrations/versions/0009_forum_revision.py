"""forum_revision: a counter that triggers raise whenever the thread list would change

The thread list is the forum's most read page. API workers keep the pages they served and serve
one again while the forum's revision, read in the same request as the principal, still equals
the revision read with the page's rows (app.forum.pages). That is exact only if every change to
what a page shows raises the revision in the transaction that makes it, so triggers raise it
rather than the application: inserting or deleting a thread, changing a thread's slug, title,
category, author, creation time or reply count (the reply triggers of 0005 update that), a
category added, removed or given another slug, an account's handle or name, and on PostgreSQL a
TRUNCATE of any of the three tables. Cascades fire them too.

On PostgreSQL a forum write holds the revision row's lock from its first change to its commit, so
forum writes commit one after another; each takes a thread's row before the revision's, and no
request changes two threads in separate statements, so they cannot deadlock.

PostgreSQL raises it once per statement (FOR EACH STATEMENT), SQLite once per row (it has no
statement triggers). It never goes down and is at least the database's clock in microseconds, so
a restored backup cannot hand out a revision that meant another state of the forum before.

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

# The new value is at least the database clock in microseconds: after a backup is restored, the
# next change still takes a revision no worker has seen, so no page kept before the restore can
# match a different state of the forum.
POSTGRESQL_BUMP = (
    "UPDATE forum_revision SET value = "
    "greatest(value + 1, (extract(epoch FROM clock_timestamp()) * 1000000)::bigint) WHERE id = 1"
)
SQLITE_BUMP = (
    "UPDATE forum_revision SET value = "
    "max(value + 1, CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)) WHERE id = 1"
)
THREAD_COLUMNS = "slug, title, category_id, author_id, created_at, reply_count"
# (trigger name, event, table) on both databases.
TRIGGERS = (
    ("threads_revision_insert", "INSERT", "threads"),
    ("threads_revision_delete", "DELETE", "threads"),
    ("threads_revision_update", f"UPDATE OF {THREAD_COLUMNS}", "threads"),
    ("categories_revision_insert", "INSERT", "categories"),
    ("categories_revision_delete", "DELETE", "categories"),
    ("categories_revision_update", "UPDATE OF slug", "categories"),
    ("accounts_revision_update", "UPDATE OF handle, name", "accounts"),
)
# PostgreSQL only: SQLite has no TRUNCATE.
TRUNCATE_TRIGGERS = tuple(
    (f"{table}_revision_truncate", "TRUNCATE", table)
    for table in ("threads", "categories", "accounts")
)
POSTGRESQL_FUNCTION = f"""
CREATE FUNCTION hearth_forum_revision() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {POSTGRESQL_BUMP};
    RETURN NULL;
END
$$
"""


def upgrade() -> None:
    op.create_table(
        "forum_revision",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_forum_revision_one_row")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_forum_revision")),
    )
    op.execute("INSERT INTO forum_revision (id, value) VALUES (1, 1)")
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        op.execute(POSTGRESQL_FUNCTION)
    for name, event, table in TRIGGERS + (TRUNCATE_TRIGGERS if postgresql else ()):
        if postgresql:
            op.execute(
                f"CREATE TRIGGER {name} AFTER {event} ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION hearth_forum_revision()"
            )
        else:
            op.execute(f"CREATE TRIGGER {name} AFTER {event} ON {table} BEGIN {SQLITE_BUMP}; END")


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    for name, _event, table in TRIGGERS + (TRUNCATE_TRIGGERS if postgresql else ()):
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (f" ON {table}" if postgresql else ""))
    if postgresql:
        op.execute("DROP FUNCTION IF EXISTS hearth_forum_revision()")
    op.drop_table("forum_revision")
