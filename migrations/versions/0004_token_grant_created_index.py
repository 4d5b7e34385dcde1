"""tokens: index (grant_id, created_at) instead of grant_id alone

"Last used" on the authorised-apps page is max(created_at) of one grant's tokens; with the
composite index that is one seek instead of a pass over every rotation the grant has seen.
Revoking a grant still finds its tokens by the index's prefix.

On PostgreSQL the index is built CONCURRENTLY (outside the migration's transaction), so the
token endpoint keeps writing to oauth_tokens while a large table is indexed.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW = ("ix_oauth_tokens_grant_id_created_at", ["grant_id", "created_at"])
OLD = ("ix_oauth_tokens_grant_id", ["grant_id"])


def _swap(create: tuple[str, list[str]], drop: tuple[str, list[str]]) -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.create_index(
                create[0],
                "oauth_tokens",
                create[1],
                postgresql_concurrently=True,
                if_not_exists=True,
            )
            op.drop_index(drop[0], "oauth_tokens", postgresql_concurrently=True, if_exists=True)
        return
    with op.batch_alter_table("oauth_tokens", schema=None) as batch_op:
        batch_op.create_index(create[0], create[1], unique=False)
        batch_op.drop_index(drop[0])


def upgrade() -> None:
    _swap(NEW, OLD)


def downgrade() -> None:
    _swap(OLD, NEW)
