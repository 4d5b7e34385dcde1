"""OAuth clients, pending authorization requests, grants, codes and tokens.

Every secret Hearth generates (client secrets, request ids, codes, refresh tokens) is stored only
as its SHA-256; access tokens are JWTs looked up by `jti`.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, UTCDateTime, new_id, utcnow
from app.models.accounts import Account


def uri_lines(text: str) -> list[str]:
    """Redirect URIs are stored one per line."""
    return [uri for uri in text.split("\n") if uri]


def word_set(text: str) -> frozenset[str]:
    """Scopes and grant types are stored space-separated."""
    return frozenset(text.split())


class ClientLists:
    """The client's stored lists, parsed: shared by the ORM model and the token endpoint's row."""

    __slots__ = ()
    redirect_uris: str
    scopes: str
    grant_types: str

    @property
    def redirect_uri_list(self) -> list[str]:
        return uri_lines(self.redirect_uris)

    @property
    def scope_set(self) -> frozenset[str]:
        return word_set(self.scopes)

    @property
    def grant_type_set(self) -> frozenset[str]:
        return word_set(self.grant_types)


class OAuthClient(ClientLists, Base):
    __tablename__ = "oauth_clients"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the public client_id
    name: Mapped[str] = mapped_column(String(100))
    secret_hash: Mapped[str | None] = mapped_column(String(64))
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(32))
    # Newline-separated exact URIs, space-separated scope and grant names.
    redirect_uris: Mapped[str] = mapped_column(Text, default="")
    scopes: Mapped[str] = mapped_column(Text, default="")
    grant_types: Mapped[str] = mapped_column(Text, default="authorization_code refresh_token")
    scope_policy: Mapped[str] = mapped_column(String(16), default="explicit")
    owner_id: Mapped[str | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), index=True
    )
    skip_consent: Mapped[bool] = mapped_column(Boolean, default=False)
    dynamically_registered: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    secret_rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    owner: Mapped[Account | None] = relationship(lazy="select")


class PendingRequest(Base):
    """An authorization request waiting for the account's decision on the consent page."""

    __tablename__ = "oauth_pending_requests"
    __table_args__ = (Index("ix_oauth_pending_requests_expires_at", "expires_at"),)

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    request_hash: Mapped[str] = mapped_column(String(64), unique=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    client_id: Mapped[str] = mapped_column(ForeignKey("oauth_clients.id", ondelete="CASCADE"))
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str | None] = mapped_column(Text)
    nonce: Mapped[str | None] = mapped_column(Text)
    code_challenge: Mapped[str] = mapped_column(String(128))
    resource: Mapped[str | None] = mapped_column(Text)
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    client: Mapped[OAuthClient] = relationship(lazy="joined")


class Grant(Base):
    """One approval: an account let a client act with these scopes for this resource."""

    __tablename__ = "oauth_grants"
    __table_args__ = (Index("ix_oauth_grants_account_id_client_id", "account_id", "client_id"),)

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    client_id: Mapped[str] = mapped_column(
        ForeignKey("oauth_clients.id", ondelete="CASCADE"), index=True
    )
    scope: Mapped[str] = mapped_column(Text, default="")
    resource: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    client: Mapped[OAuthClient] = relationship(lazy="joined")
    account: Mapped[Account] = relationship(lazy="select")


class AuthorizationCode(Base):
    __tablename__ = "oauth_codes"
    __table_args__ = (Index("ix_oauth_codes_expires_at", "expires_at"),)

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    grant_id: Mapped[str] = mapped_column(
        ForeignKey("oauth_grants.id", ondelete="CASCADE"), index=True
    )
    client_id: Mapped[str] = mapped_column(ForeignKey("oauth_clients.id", ondelete="CASCADE"))
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text, default="")
    code_challenge: Mapped[str] = mapped_column(String(128))
    nonce: Mapped[str | None] = mapped_column(Text)
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    grant: Mapped[Grant] = relationship(lazy="joined")


class Token(Base):
    """An issued access token (by `jti`) or refresh token (by hash)."""

    __tablename__ = "oauth_tokens"
    __table_args__ = (
        Index("ix_oauth_tokens_expires_at", "expires_at"),
        # Revoking a grant finds its tokens by the prefix; "last used" is max(created_at) of
        # one grant, a single index seek however many rotations the grant has seen.
        Index("ix_oauth_tokens_grant_id_created_at", "grant_id", "created_at"),
        # Refresh tokens only (migration 0008): access tokens have no hash, and as a plain
        # UNIQUE constraint every one of them still wrote a NULL entry. `token_hash = ?` implies
        # NOT NULL, so both databases use this index for every lookup by hash.
        Index(
            "uq_oauth_tokens_token_hash",
            "token_hash",
            unique=True,
            sqlite_where=text("token_hash IS NOT NULL"),
            postgresql_where=text("token_hash IS NOT NULL"),
        ),
    )

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)  # jti
    kind: Mapped[str] = mapped_column(String(8))  # "access" or "refresh"
    token_hash: Mapped[str | None] = mapped_column(String(64))  # refresh tokens: SHA-256
    grant_id: Mapped[str | None] = mapped_column(ForeignKey("oauth_grants.id", ondelete="CASCADE"))
    # No index on either (migration 0007): nothing looks tokens up by client or account, and
    # each index cost every issued token one more page write (SQLite: ~12 -> ~9 WAL frames per
    # refresh). The cascades still hold; deleting a client (an administrator's action) scans
    # the table once instead: ~0.3 s on SQLite, ~0.13 s on PostgreSQL with 10^6 live tokens.
    client_id: Mapped[str] = mapped_column(ForeignKey("oauth_clients.id", ondelete="CASCADE"))
    account_id: Mapped[str | None] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    # Provenance only: a code replay revokes the whole grant (migration 0006 dropped its index).
    code_id: Mapped[str | None] = mapped_column(String(26))
    scope: Mapped[str] = mapped_column(Text, default="")
    audience: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Refresh tokens: set when exchanged; presenting it again is reuse (RFC 9700 §4.14.2).
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    grant: Mapped[Grant | None] = relationship(lazy="select")
