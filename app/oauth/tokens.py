"""Issuing, storing, validating and revoking tokens; grants as members see them.

Access tokens are RFC 9068 JWTs whose `jti` is a row here, so Hearth's own API can reject a revoked
token at once. Refresh tokens are opaque, stored as SHA-256 and rotated on every use.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache, lru_cache
from types import MappingProxyType
from typing import Any, Literal, NoReturn, Protocol, cast

from joserfc import jwt
from joserfc.errors import JoseError
from sqlalchemy import (
    Connection,
    Table,
    bindparam,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    type_coerce,
    union_all,
    update,
)
from sqlalchemy import cast as cast_
from sqlalchemy.orm import Session

from app import direct
from app.accounts.service import principal_columns, principal_from
from app.auth import Principal, sha256
from app.db import UTCDateTime, new_id, rfc3339, utcnow
from app.errors import NotFound
from app.models import Account, AuthorizationCode, Grant, Token
from app.oauth.keys import ProviderKeys, SigningKey, compact_jwt
from app.oauth.scopes import describe
from app.observability import security_event


class GrantLike(Protocol):
    """What issuing tokens reads from a grant: an ORM Grant or a row-backed record."""

    @property
    def id(self) -> str: ...

    @property
    def created_at(self) -> datetime: ...

    @property
    def resource(self) -> str: ...


@dataclass(frozen=True)
class Claim:
    """The credential a token request exchanges, claimed by the write that stores the new tokens.

    Of two requests presenting the same code or refresh token, one stores its tokens; the other
    stores nothing and calls `lost`, which revokes what the first one got and raises the
    request's OAuth error (RFC 6749 §4.1.2, RFC 9700 §4.14.2)."""

    kind: Literal["code", "refresh"]
    id: str
    lost: Callable[[], NoReturn]


@dataclass(frozen=True)
class Issued:
    """The rows of tokens just minted, and the claim that must succeed before they are stored."""

    rows: list[dict[str, Any]]
    claim: Claim | None


@dataclass
class Subject:
    """Who a token is for, carried through Authlib as its `user`.

    `account` is loaded only where claims about the person are issued (the code grant's ID
    token); a refresh needs nothing but the id."""

    account_id: str
    grant: GrantLike | None
    account: Account | None = None
    auth_time: datetime | None = None
    code_id: str | None = None
    refresh_scope: str | None = None
    # The credential being exchanged (the code or the refresh token), claimed by `store`.
    claim: Claim | None = None

    def get_user_id(self) -> str:
        return self.account_id


# Hearth's own access tokens are well under 2 KB; anything longer is not one of them and is not
# worth parsing (nor a place in the verification cache).
MAX_ACCESS_TOKEN_LENGTH = 4096

_tokens = cast(Table, Token.__table__)
_codes = cast(Table, AuthorizationCode.__table__)
# Every column of a token row, in the order `issue` writes them.
_ROW_COLUMNS = (
    "id",
    "kind",
    "token_hash",
    "scope",
    "expires_at",
    "grant_id",
    "client_id",
    "account_id",
    "code_id",
    "audience",
    "created_at",
    "revoked_at",
    "rotated_at",
)
# Every column named, so that app.direct, which fills in no defaults, writes complete rows.
_TOKENS_INSERT = insert(_tokens).values(
    {name: bindparam(name, type_=_tokens.c[name].type) for name in _ROW_COLUMNS}
)

# Conditional UPDATEs: the request that changes the row has won the credential.
_CLAIMS = {
    "refresh": update(_tokens)
    .where(
        _tokens.c.id == bindparam("claim_id"),
        _tokens.c.rotated_at.is_(None),
        _tokens.c.revoked_at.is_(None),
    )
    .values(rotated_at=bindparam("now", type_=_tokens.c.rotated_at.type)),
    "code": update(_codes)
    .where(_codes.c.id == bindparam("claim_id"), _codes.c.used_at.is_(None))
    .values(used_at=bindparam("now", type_=_codes.c.used_at.type)),
}


@dataclass(frozen=True)
class Lifetimes:
    access: timedelta
    refresh: timedelta
    refresh_max_age: timedelta


def issue(
    key: SigningKey,
    issuer: str,
    client_id: str,
    subject: Subject,
    scope: str,
    audience: str,
    lifetimes: Lifetimes,
    with_refresh: bool,
) -> tuple[dict[str, Any], Issued]:
    """Mint an access token (and maybe a refresh token): the token response and the rows that
    `store` writes once the whole response exists."""
    now = utcnow()
    jti = new_id()
    expires = now + lifetimes.access
    claims = {
        "iss": issuer,
        "sub": subject.account_id,
        "aud": audience,
        "client_id": client_id,
        "scope": scope,
        "jti": jti,
        "iat": int(now.timestamp()),
        "exp": int(expires.timestamp()),
    }
    if subject.auth_time is not None:
        claims["auth_time"] = int(subject.auth_time.timestamp())
    access_token = compact_jwt(key, "at+jwt", claims)
    grant_id = subject.grant.id if subject.grant is not None else None
    common = {
        "grant_id": grant_id,
        "client_id": client_id,
        "account_id": subject.account_id,
        "code_id": subject.code_id,
        "audience": audience,
        "created_at": now,
        "revoked_at": None,
        "rotated_at": None,
    }
    rows = [
        {
            **common,
            "id": jti,
            "kind": "access",
            "token_hash": None,
            "scope": scope,
            "expires_at": expires,
        }
    ]
    response: dict[str, Any] = {
        "token_type": "Bearer",
        "access_token": access_token,
        "expires_in": int(lifetimes.access.total_seconds()),
        "scope": scope,
    }
    # Refresh tokens only with offline_access granted and the grant type allowed (SPEC §4.3).
    if (
        with_refresh
        and subject.grant is not None
        and "offline_access" in scope.split() + ((subject.refresh_scope or "").split())
    ):
        refresh = secrets.token_urlsafe(32)
        limit = subject.grant.created_at + lifetimes.refresh_max_age
        rows.append(
            {
                **common,
                "id": new_id(),
                "kind": "refresh",
                "token_hash": sha256(refresh),
                "scope": subject.refresh_scope or scope,
                "expires_at": min(now + lifetimes.refresh, limit),
            }
        )
        response["refresh_token"] = refresh
    return response, Issued(rows, subject.claim)


def store(connection: Connection, issued: Issued) -> bool:
    """Claim the exchanged credential and insert the new tokens' rows; False, with nothing
    written, when another request claimed the credential first. The caller commits.

    Core statements: the rows are never read back in this request, so the ORM's unit of work
    would be pure overhead on the hottest write path. On PostgreSQL the claim and the insert
    are one statement (a data-modifying CTE), atomic on its own: on an autocommit connection the
    rotation costs one round trip instead of BEGIN, UPDATE, INSERT and COMMIT."""
    claim = issued.claim
    if claim is None:
        direct.execute_many(connection, _TOKENS_INSERT, issued.rows)
        return True
    now = utcnow()
    if connection.dialect.name == "postgresql":
        params: dict[str, Any] = {"claim_id": claim.id, "now": now}
        for index, row in enumerate(issued.rows):
            for name in _ROW_COLUMNS:
                params[f"{name}_{index}"] = row[name]
        inserted = direct.rowcount(
            connection, _claimed_insert(claim.kind, len(issued.rows)), params
        )
        return inserted == len(issued.rows)
    claimed = direct.rowcount(connection, _CLAIMS[claim.kind], {"claim_id": claim.id, "now": now})
    if claimed != 1:
        return False
    direct.execute_many(connection, _TOKENS_INSERT, issued.rows)
    return True


@cache
def _claimed_insert(kind: str, count: int) -> Any:
    """PostgreSQL: `WITH claimed AS (UPDATE … RETURNING id) INSERT … SELECT … WHERE EXISTS
    (SELECT FROM claimed)`, for `count` rows whose parameters are suffixed _0, _1, …

    Of two concurrent statements claiming the same row, the second waits for the first to
    commit, finds the row claimed and inserts nothing (READ COMMITTED re-checks the WHERE)."""
    claimed = _CLAIMS[kind].returning(literal_column("1").label("won")).cte("claimed")
    won = exists(select(claimed.c.won))
    selects = [
        select(
            *(
                cast_(
                    bindparam(f"{name}_{index}", type_=_tokens.c[name].type), _tokens.c[name].type
                )
                for name in _ROW_COLUMNS
            )
        ).where(won)
        for index in range(count)
    ]
    rows = selects[0] if count == 1 else union_all(*selects)
    return (
        insert(_tokens)
        .from_select(list(_ROW_COLUMNS), rows)
        .add_cte(claimed)
        # SQLAlchemy keeps an INSERT's row count only when asked to.
        .execution_options(preserve_rowcount=True)
    )


def revoke_grant(session: Session, grant_id: str, reason: str) -> None:
    """Revoke a grant and every token issued under it."""
    now = utcnow()
    session.execute(
        update(Grant).where(Grant.id == grant_id, Grant.revoked_at.is_(None)).values(revoked_at=now)
    )
    session.execute(
        update(Token)
        .where(Token.grant_id == grant_id, Token.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    security_event("revocation", grant_id=grant_id, reason=reason)


@lru_cache(maxsize=4096)
def _verified_claims(keys: ProviderKeys, token: str) -> MappingProxyType[str, Any] | None:
    """Signature, type and `jti` checks of one token string under the provider's keys.

    The answer can never change, so a client that reuses its access token pays for parsing and
    verification once per worker; expiry and the stored row are still checked every time."""
    try:
        header = json.loads(base64.urlsafe_b64decode(_padded(token.split(".", 1)[0])))
        key = keys.access_token_verifier(header.get("kid")) if isinstance(header, dict) else None
        if key is None:
            return None
        decoded = jwt.decode(token, key.key, algorithms=[key.alg])
    except (JoseError, ValueError):
        return None
    if decoded.header.get("typ") != "at+jwt":
        return None
    if not isinstance(decoded.claims.get("jti"), str):
        return None
    return MappingProxyType(dict(decoded.claims))


def _padded(segment: str) -> bytes:
    return (segment + "=" * (-len(segment) % 4)).encode()


def decode_access_token(
    keys: ProviderKeys, token: str, verify_expiry: bool = True
) -> dict[str, Any] | None:
    """Verify an access token's signature and type; return its claims or None."""
    if token.count(".") != 2 or len(token) > MAX_ACCESS_TOKEN_LENGTH:
        return None
    verified = _verified_claims(keys, token)
    if verified is None:
        return None
    claims = dict(verified)
    if verify_expiry and not (isinstance(claims.get("exp"), int) and claims["exp"] > time.time()):
        return None
    return claims


def find_token(
    session: Session, keys: ProviderKeys, presented: str, hint: str | None
) -> Token | None:
    """Find the stored row of an access token (JWT) or refresh token (opaque)."""
    claims = decode_access_token(keys, presented, verify_expiry=False)
    if claims is not None:
        return session.get(Token, claims["jti"])
    if hint == "access_token" and presented.count(".") == 2:
        return None
    return session.scalar(select(Token).where(Token.token_hash == sha256(presented)))


def is_active(token: Token) -> bool:
    if token.revoked_at is not None or token.expires_at <= utcnow():
        return False
    if token.kind == "refresh" and token.rotated_at is not None:
        return False
    return token.grant is None or token.grant.revoked_at is None


@cache
def _bearer_statement() -> Any:
    return (
        select(*principal_columns(), Token.scope, Token.client_id)
        .join(Account, Account.id == Token.account_id)
        .outerjoin(Grant, Grant.id == Token.grant_id)
        .where(
            Token.id == bindparam("jti"),
            Token.kind == "access",
            Token.revoked_at.is_(None),
            Token.expires_at > bindparam("now", type_=Token.expires_at.type),
            or_(Token.grant_id.is_(None), Grant.revoked_at.is_(None)),
        )
    )


def principal_for_access_token(
    connection: Connection, keys: ProviderKeys, presented: str, issuer: str, resource: str
) -> Principal | None:
    """Resolve a bearer token for Hearth's API: signature, issuer, audience, then the live row.

    The row, its grant, the account and its roles come back in one Core statement that is built
    once per process: building, cache-keying and ORM-loading it per request cost more than
    running it."""
    claims = decode_access_token(keys, presented)
    if claims is None or claims.get("iss") != issuer:
        return None
    audience = claims.get("aud")
    if audience != resource and not (isinstance(audience, list) and resource in audience):
        return None
    row = direct.first(connection, _bearer_statement(), {"jti": claims["jti"], "now": utcnow()})
    if row is None:
        return None
    return principal_from(
        row, via="token", scopes=frozenset(row.scope.split()), client_id=row.client_id
    )


def authorized_apps(session: Session, account_id: str, max_age: timedelta) -> list[dict[str, Any]]:
    # "Last used" is the newest token issued under the grant: derived here, so the token
    # endpoint never pays for an extra UPDATE per request. One seek per grant on
    # (grant_id, created_at), so it stays flat however many rotations a grant has had.
    last_used = (
        select(func.max(Token.created_at))
        .where(Token.grant_id == Grant.id)
        .correlate(Grant)
        .scalar_subquery()
    )
    rows = session.execute(
        select(Grant, type_coerce(last_used, UTCDateTime))
        .where(
            Grant.account_id == account_id,
            Grant.revoked_at.is_(None),
            Grant.created_at > utcnow() - max_age,
        )
        .order_by(Grant.created_at.desc())
    )
    return [
        {
            "grant_id": grant.id,
            "client_id": grant.client_id,
            "client_name": grant.client.name,
            "scopes": grant.scope.split(),
            "scope_descriptions": {name: describe(name) for name in grant.scope.split()},
            "created_at": rfc3339(grant.created_at),
            "last_used_at": rfc3339(last),
        }
        for grant, last in rows
    ]


def revoke_authorized_app(session: Session, account_id: str, grant_id: str) -> None:
    grant = session.get(Grant, grant_id)
    # Another account's grant reads as missing.
    if grant is None or grant.account_id != account_id or grant.revoked_at is not None:
        raise NotFound("No authorised app has that grant id.")
    revoke_grant(session, grant.id, "revoked_by_account")
