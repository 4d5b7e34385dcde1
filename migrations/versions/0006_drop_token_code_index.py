"""tokens: drop the index on code_id

Every token row paid for it on insert (on SQLite one more WAL page per refresh: 12.9 → 12.0 frames
per rotation, bench/README.md), and only a code replay read it, to revoke the code's tokens just
before revoking their grant and every token under it, which includes them. The replay now
revokes the grant alone, whose tokens it finds through `ix_oauth_tokens_grant_id_created_at`.

On PostgreSQL the index is dropped CONCURRENTLY (and rebuilt so on downgrade), outside the
migration's transaction, so the token endpoint keeps writing while it goes.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_oauth_tokens_code_id"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.drop_index(INDEX, "oauth_tokens", postgresql_concurrently=True, if_exists=True)
        return
    with op.batch_alter_table("oauth_tokens", schema=None) as batch_op:
        batch_op.drop_index(INDEX)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.create_index(
                INDEX,
                "oauth_tokens",
                ["code_id"],
                postgresql_concurrently=True,
                if_not_exists=True,
            )
        return
    with op.batch_alter_table("oauth_tokens", schema=None) as batch_op:
        batch_op.create_index(INDEX, ["code_id"], unique=False)
