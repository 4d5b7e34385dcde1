"""tokens: the token_hash uniqueness as a partial unique index over refresh tokens only

Access tokens carry no hash, yet as a plain UNIQUE constraint every one of them wrote a NULL
entry into its index: one more page per issued access token (SQLite: ~9.1 -> ~8.6 WAL frames
per refresh, bench/README.md), and an index twice the size it needs. `token_hash = ?` implies
NOT NULL, so both databases use the partial index for every lookup by hash, and two refresh
tokens still cannot share one.

On PostgreSQL the new index is built CONCURRENTLY under a temporary name, then the constraint
goes and the index takes its name. SQLite cannot drop a constraint in place: the table is
rebuilt (it has no triggers to lose).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = "uq_oauth_tokens_token_hash"
BUILDING = "uq_oauth_tokens_token_hash_partial"
REFRESH_ONLY = sa.text("token_hash IS NOT NULL")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.create_index(
                BUILDING,
                "oauth_tokens",
                ["token_hash"],
                unique=True,
                postgresql_where=REFRESH_ONLY,
                postgresql_concurrently=True,
                if_not_exists=True,
            )
        op.drop_constraint(NAME, "oauth_tokens", type_="unique")
        op.execute(f"ALTER INDEX {BUILDING} RENAME TO {NAME}")
        return
    with op.batch_alter_table("oauth_tokens", schema=None, recreate="always") as batch_op:
        batch_op.drop_constraint(NAME, type_="unique")
        batch_op.create_index(NAME, ["token_hash"], unique=True, sqlite_where=REFRESH_ONLY)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER INDEX {NAME} RENAME TO {BUILDING}")
        op.create_unique_constraint(NAME, "oauth_tokens", ["token_hash"])
        op.drop_index(BUILDING, "oauth_tokens")
        return
    with op.batch_alter_table("oauth_tokens", schema=None, recreate="always") as batch_op:
        batch_op.drop_index(NAME)
        batch_op.create_unique_constraint(NAME, ["token_hash"])
