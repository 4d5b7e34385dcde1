"""tokens: drop the indexes on client_id and account_id

Nothing looks tokens up by client or by account: a bearer read finds its row by `id`, a refresh
by `token_hash`, a revocation by grant (`ix_oauth_tokens_grant_id_created_at`) and the cleanup by
`expires_at`. The two indexes only served the foreign keys' cascades, and every issued token
paid for them: on SQLite two more WAL pages per refresh (about 12 -> 9 frames per rotation,
bench/README.md). The cascades still hold; deleting a client, an administrator's action, scans
the table once instead (about 0.3 s on SQLite and 0.13 s on PostgreSQL with 10^6 live tokens).
Accounts are never deleted by Hearth.

On PostgreSQL the indexes are dropped CONCURRENTLY (and rebuilt so on downgrade), outside the
migration's transaction, so the token endpoint keeps writing while they go.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = {"ix_oauth_tokens_client_id": "client_id", "ix_oauth_tokens_account_id": "account_id"}


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            for name in INDEXES:
                op.drop_index(name, "oauth_tokens", postgresql_concurrently=True, if_exists=True)
        return
    with op.batch_alter_table("oauth_tokens", schema=None) as batch_op:
        for name in INDEXES:
            batch_op.drop_index(name)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            for name, column in INDEXES.items():
                op.create_index(
                    name,
                    "oauth_tokens",
                    [column],
                    postgresql_concurrently=True,
                    if_not_exists=True,
                )
        return
    with op.batch_alter_table("oauth_tokens", schema=None) as batch_op:
        for name, column in INDEXES.items():
            batch_op.create_index(name, [column], unique=False)
