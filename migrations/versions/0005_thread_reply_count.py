"""threads: a stored reply_count, kept by triggers on replies

The thread list showed each thread's replies as a correlated count per row: on PostgreSQL that
was two thirds of the server's CPU for a page of 30 threads (bench/README.md). The count is now a
column of `threads`, filled from the replies that exist and kept by row triggers on `replies`
(insert, delete, a reply moved to another thread). Triggers rather than application code, so
every path that removes replies keeps it right: deleting an account removes its replies in
other members' threads through ON DELETE CASCADE, which fires them on both databases.

SQLite drops a table's triggers with the table: a later migration that rebuilds `replies` through
`batch_alter_table` (copy and rename) must create these triggers again.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

POSTGRESQL_FUNCTION = """
CREATE FUNCTION hearth_replies_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE threads SET reply_count = reply_count - 1 WHERE id = OLD.thread_id;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        UPDATE threads SET reply_count = reply_count + 1 WHERE id = NEW.thread_id;
    END IF;
    RETURN NULL;
END
$$
"""
POSTGRESQL_TRIGGER = """
CREATE TRIGGER replies_count AFTER INSERT OR DELETE OR UPDATE OF thread_id ON replies
FOR EACH ROW EXECUTE FUNCTION hearth_replies_count()
"""
SQLITE_TRIGGERS = (
    """
    CREATE TRIGGER replies_count_insert AFTER INSERT ON replies BEGIN
        UPDATE threads SET reply_count = reply_count + 1 WHERE id = NEW.thread_id;
    END
    """,
    """
    CREATE TRIGGER replies_count_delete AFTER DELETE ON replies BEGIN
        UPDATE threads SET reply_count = reply_count - 1 WHERE id = OLD.thread_id;
    END
    """,
    """
    CREATE TRIGGER replies_count_move AFTER UPDATE OF thread_id ON replies
    WHEN OLD.thread_id IS NOT NEW.thread_id BEGIN
        UPDATE threads SET reply_count = reply_count - 1 WHERE id = OLD.thread_id;
        UPDATE threads SET reply_count = reply_count + 1 WHERE id = NEW.thread_id;
    END
    """,
)


def upgrade() -> None:
    with op.batch_alter_table("threads", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("reply_count", sa.Integer(), server_default="0", nullable=False)
        )
    # Triggers first, then the count. On PostgreSQL creating the trigger locks `replies`
    # against writes until this migration commits, so no reply is missed or counted twice.
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRESQL_FUNCTION)
        op.execute(POSTGRESQL_TRIGGER)
    else:
        for trigger in SQLITE_TRIGGERS:
            op.execute(trigger)
    op.execute(
        "UPDATE threads SET reply_count = "
        "(SELECT count(*) FROM replies WHERE replies.thread_id = threads.id)"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS replies_count ON replies")
        op.execute("DROP FUNCTION IF EXISTS hearth_replies_count()")
    else:
        for name in ("replies_count_insert", "replies_count_delete", "replies_count_move"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    with op.batch_alter_table("threads", schema=None) as batch_op:
        batch_op.drop_column("reply_count")
