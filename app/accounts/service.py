"""Accounts, passwords, sessions and roles. Functions take the DB session and the acting principal."""

from __future__ import annotations

import contextlib
import secrets
from datetime import timedelta
from functools import cache, lru_cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Connection, ScalarSelect, bindparam, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import direct, permissions
from app.accounts.schemas import SignUp
from app.auth import AccountInfo, Principal, sha256
from app.db import utcnow
from app.errors import Conflict, Forbidden, InvalidCredentials, NotFound, ValidationFailed
from app.forum.pages import revision_subquery
from app.models import Account, AccountRole, AuthSession, Role
from app.observability import security_event
from app.permissions import Permission


@lru_cache(maxsize=4)
def password_hasher(time_cost: int, memory_kib: int, parallelism: int) -> PasswordHasher:
    """Return an argon2id hasher with the configured cost."""
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)


@lru_cache(maxsize=4)
def _dummy_hash(hasher: PasswordHasher) -> str:
    return hasher.hash(secrets.token_hex(16))


def account_permissions(account: Account) -> frozenset[Permission]:
    """Everything the account's roles grant, on top of the guest baseline."""
    held = set(permissions.GUEST)
    for role in account.roles:
        held.update(permissions.from_stored(role.permissions))
    return frozenset(held)


def role_names(account: Account) -> list[str]:
    return [role.name for role in account.roles]


@cache
def _role_aggregates() -> tuple[ScalarSelect[str], ScalarSelect[str]]:
    """Correlated subqueries for the account's role names and their stored permissions, each
    space-joined: a principal loads in the same statement as its account, without Role rows.
    Nothing is cached across requests, so a role change applies to the next request."""

    def joined(column: Any) -> ScalarSelect[str]:
        return (
            select(func.aggregate_strings(column, " "))
            .join(AccountRole, AccountRole.role_id == Role.id)
            .where(AccountRole.account_id == Account.id)
            .correlate(Account)
            .scalar_subquery()
        )

    return joined(Role.name), joined(Role.permissions)


def principal_columns() -> tuple[Any, ...]:
    """What a principal statement selects beside its session or token row: the account, its
    roles and their permissions, and the forum's revision in the same snapshot, with which a
    thread list a worker kept is served without a statement of its own (app.forum.pages)."""
    names, held = _role_aggregates()
    return (
        Account.id,
        Account.handle,
        Account.name,
        Account.email,
        Account.email_verified,
        names.label("role_names"),
        held.label("role_permissions"),
        revision_subquery().label("forum_revision"),
    )


def principal_from(row: Any, *, via: str, **details: Any) -> Principal:
    """The Principal a row carrying `principal_columns` describes."""
    return Principal(
        AccountInfo(row.id, row.handle, row.name, row.email, bool(row.email_verified)),
        permissions.GUEST | permissions.from_stored(row.role_permissions or ""),
        roles=sorted((row.role_names or "").split()),
        via=via,
        forum_revision=row.forum_revision,
        **details,
    )


def find_by_handle(session: Session, handle: str) -> Account | None:
    return session.scalar(select(Account).where(Account.handle == handle.strip().lower()))


def _role(session: Session, name: str) -> Role:
    role = session.scalar(select(Role).where(Role.name == name))
    if role is None:
        raise ValidationFailed({"roles": f"unknown role {name!r}"})
    return role


def sign_up(
    session: Session, hasher: PasswordHasher, form: SignUp, *, roles: tuple[str, ...] = ()
) -> Account:
    """Create a password account with the default role (plus `roles`)."""
    if find_by_handle(session, form.handle) is not None:
        raise Conflict(
            "That handle is already taken.", extra={"fields": {"handle": "is already taken"}}
        )
    account = Account(
        handle=form.handle,
        name=form.handle,
        email=form.email,
        password_hash=hasher.hash(form.password),
    )
    wanted = [permissions.DEFAULT_ROLE_FOR_NEW_ACCOUNTS, *roles]
    account.roles = [_role(session, name) for name in dict.fromkeys(wanted)]
    session.add(account)
    try:
        session.flush()
    except IntegrityError:
        # Lost a race with another sign-up of the same handle.
        session.rollback()
        raise Conflict(
            "That handle is already taken.", extra={"fields": {"handle": "is already taken"}}
        ) from None
    return account


def authenticate(session: Session, hasher: PasswordHasher, handle: str, password: str) -> Account:
    """Check a handle and password; unknown handles cost the same as wrong passwords."""
    account = find_by_handle(session, handle)
    if account is None or account.password_hash is None:
        with contextlib.suppress(VerificationError):
            hasher.verify(_dummy_hash(hasher), password)
        security_event("signin_failure", handle=handle[:30], reason="unknown_handle")
        raise InvalidCredentials()
    try:
        hasher.verify(account.password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        security_event("signin_failure", handle=account.handle, reason="wrong_password")
        raise InvalidCredentials() from None
    if hasher.check_needs_rehash(account.password_hash):
        account.password_hash = hasher.hash(password)
    return account


def start_session(session: Session, account: Account, ttl: timedelta) -> str:
    """Open a browser session and return the cookie value (only its hash is stored)."""
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        AuthSession(
            token_hash=sha256(token), account_id=account.id, created_at=now, expires_at=now + ttl
        )
    )
    return token


def end_session(session: Session, token: str) -> None:
    session.execute(
        update(AuthSession)
        .where(AuthSession.token_hash == sha256(token), AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )


@cache
def _session_statement() -> Any:
    return select(
        AuthSession.id.label("session_id"),
        AuthSession.created_at.label("session_created_at"),
        *principal_columns(),
    ).where(
        AuthSession.token_hash == bindparam("token_hash"),
        AuthSession.revoked_at.is_(None),
        AuthSession.expires_at > bindparam("now", type_=AuthSession.expires_at.type),
        Account.id == AuthSession.account_id,
    )


def principal_for_session(connection: Connection, token: str) -> Principal | None:
    """Resolve a session cookie to a principal, or None when unknown, expired or signed out.

    One Core statement, built once per process (every page of the frontend comes through here)."""
    row = direct.first(
        connection, _session_statement(), {"token_hash": sha256(token), "now": utcnow()}
    )
    if row is None:
        return None
    return principal_from(
        row, via="session", session_id=row.session_id, auth_time=row.session_created_at
    )


def set_roles(session: Session, actor: Principal, handle: str, names: list[str]) -> Account:
    """Replace an account's roles; only administrators may hand out what they do not hold."""
    account = find_by_handle(session, handle)
    if account is None:
        raise NotFound("No account has that handle.")
    wanted = [_role(session, name) for name in dict.fromkeys(names)]
    before = {role.name for role in account.roles}
    after = {role.name for role in wanted}
    changed = [role for role in [*account.roles, *wanted] if role.name in before ^ after]
    if Permission.ADMINISTRATOR not in actor.permissions:
        for role in changed:
            needed = permissions.expand(permissions.from_stored(role.permissions))
            if not needed <= actor.permissions:
                raise Forbidden(f"Only an administrator can grant or revoke the {role.name} role.")
    if "admin" in before - after and _admin_count(session) <= 1:
        raise Conflict("The last administrator cannot lose the admin role.")
    account.roles = wanted
    session.flush()
    return account


def grant_role(session: Session, handle: str, name: str) -> Account:
    """Give a role (CLI: operators act with full authority)."""
    account = find_by_handle(session, handle)
    if account is None:
        raise NotFound(f"No account has the handle {handle!r}.")
    role = _role(session, name)
    if role not in account.roles:
        account.roles.append(role)
    session.flush()
    return account


def revoke_role(session: Session, handle: str, name: str) -> Account:
    account = find_by_handle(session, handle)
    if account is None:
        raise NotFound(f"No account has the handle {handle!r}.")
    role = _role(session, name)
    if role.name == "admin" and role in account.roles and _admin_count(session) <= 1:
        raise Conflict("The last administrator cannot lose the admin role.")
    session.execute(
        delete(AccountRole).where(
            AccountRole.account_id == account.id, AccountRole.role_id == role.id
        )
    )
    session.expire(account, ["roles"])
    return account


def _admin_count(session: Session) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(AccountRole)
            .join(Role, Role.id == AccountRole.role_id)
            .where(Role.name == "admin")
        )
        or 0
    )


def delete_expired_sessions(session: Session, batch: int) -> int:
    """Delete one batch of expired or signed-out sessions; return how many went."""
    now = utcnow()
    ids = session.scalars(
        select(AuthSession.id)
        .where((AuthSession.expires_at <= now) | AuthSession.revoked_at.is_not(None))
        .limit(batch)
    ).all()
    if not ids:
        return 0
    session.execute(delete(AuthSession).where(AuthSession.id.in_(ids)))
    return len(ids)
