"""tokens: index (grant_id, created_at) instead of grant_id alone

"Last used" on the authorised-apps page is max(created_at) of one grant's tokens; with the
composite index that is one seek instead of a pass over every rotation the grant has seen.
Revoking a grant still finds its tokens by the index's prefix.

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


def upgrade() -> None:
    with op.batch_alter_table("oauth_tokens", schema=None) as batch_op:
        batch_op.create_index(
            "ix_oauth_tokens_grant_id_created_at", ["grant_id", "created_at"], unique=False
        )
        batch_op.drop_index("ix_oauth_tokens_grant_id")


def downgrade() -> None:
    with op.batch_alter_table("oauth_tokens", schema=None) as batch_op:
        batch_op.create_index("ix_oauth_tokens_grant_id", ["grant_id"], unique=False)
        batch_op.drop_index("ix_oauth_tokens_grant_id_created_at")
