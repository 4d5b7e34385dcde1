"""Upstream identities linked to accounts, and the short-lived state of sign-ins in progress."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime, new_id, utcnow


class FederatedIdentity(Base):
    """An account at an upstream provider (`provider`, `subject`) that signs in to a Hearth account."""

    __tablename__ = "federated_identities"
    __table_args__ = (
        UniqueConstraint("provider", "subject"),
        # One identity per provider per account: unlinking names the provider alone.
        UniqueConstraint("account_id", "provider"),
    )

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(255))
    # What the provider last said about the address, kept for the merge rule and for support.
    email: Mapped[str | None] = mapped_column(String(254))
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LoginState(Base):
    """One sign-in started at an upstream provider: single use, ten minutes, bound to a browser.

    Only hashes are stored: SHA-256 of the state, the nonce and the browser binding secret, and
    the PKCE S256 challenge (itself the verifier's SHA-256, RFC 7636 §4.2).
    """

    __tablename__ = "login_states"
    __table_args__ = (Index("ix_login_states_expires_at", "expires_at"),)

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    state_hash: Mapped[str] = mapped_column(String(64), unique=True)
    nonce_hash: Mapped[str] = mapped_column(String(64))
    verifier_hash: Mapped[str] = mapped_column(String(64))
    # Null for the single-page-app variant, whose own PKCE verifier is the binding.
    binding_hash: Mapped[str | None] = mapped_column(String(64))
    provider: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(16))  # authenticate, link or spa
    account_id: Mapped[str | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    return_url: Mapped[str | None] = mapped_column(Text)
    redirect_uri: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
