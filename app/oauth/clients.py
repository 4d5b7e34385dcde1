"""OAuth client registry: creation, validation of redirect URIs, secrets, rotation and deletion."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, Table, bindparam, select
from sqlalchemy.orm import Session

from app.auth import sha256
from app.db import rfc3339, utcnow
from app.errors import NotFound, ValidationFailed
from app.models import Account, OAuthClient
from app.models.oauth import ClientLists
from app.oauth import scopes as scope_rules
from config import is_loopback_host

SECRET_PREFIX = "hsec_"
CLIENT_ID_PREFIX = "hc_"
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")
AUTH_METHODS = ("none", "client_secret_basic", "client_secret_post")

AuthMethod = Literal["none", "client_secret_basic", "client_secret_post"]
GrantType = Literal["authorization_code", "refresh_token", "client_credentials"]


def _default_grants() -> list[GrantType]:
    return ["authorization_code", "refresh_token"]


class ClientFields(BaseModel):
    """What an administrator (or the CLI) may set on a client."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=100)
    redirect_uris: list[str] = Field(default_factory=list, max_length=20)
    scopes: str = Field(default="", max_length=2000, description="Space-separated scope names")
    public: bool = False
    token_endpoint_auth_method: AuthMethod | None = None
    grant_types: list[GrantType] = Field(default_factory=_default_grants, max_length=3)
    scope_policy: Literal["explicit", "inherit"] = "explicit"
    owner: str | None = Field(default=None, max_length=30, description="Owning account's handle")
    skip_consent: bool = False


class ClientChanges(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str | None = Field(default=None, min_length=1, max_length=100)
    redirect_uris: list[str] | None = Field(default=None, max_length=20)
    scopes: str | None = Field(default=None, max_length=2000)
    grant_types: list[GrantType] | None = Field(default=None, max_length=3)
    scope_policy: Literal["explicit", "inherit"] | None = None
    skip_consent: bool | None = None


def redirect_uri_problem(uri: str) -> str | None:
    """Why a redirect URI cannot be registered (RFC 9700 §4.1, OAuth 2.1 §2.3.1), or None."""
    if len(uri) > 2000:
        return "is too long"
    if "*" in uri:
        return "must not contain wildcards"
    parts = urlsplit(uri)
    if parts.fragment or "#" in uri:
        return "must not contain a fragment"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "must be an absolute https URL (or http on a loopback address)"
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        return "must use https unless the host is a loopback address"
    if parts.username or parts.password:
        return "must not contain credentials"
    return None


def check_redirect_uris(uris: list[str], field: str = "redirect_uris") -> list[str]:
    for index, uri in enumerate(uris):
        problem = redirect_uri_problem(uri)
        if problem:
            raise ValidationFailed({f"{field}.{index}": problem})
    return list(dict.fromkeys(uris))


@dataclass(frozen=True, slots=True)
class ClientRecord(ClientLists):
    """What the token-family endpoints read about a client, straight off one Core row: they run
    on every refresh and introspection, and never change the client."""

    id: str
    secret_hash: str | None
    token_endpoint_auth_method: str
    redirect_uris: str
    scopes: str
    grant_types: str
    owner_id: str | None


TABLE = cast(Table, OAuthClient.__table__)
RECORD_COLUMNS = [TABLE.c[name] for name in ClientRecord.__slots__]
_RECORD_STATEMENT = select(*RECORD_COLUMNS).where(TABLE.c.id == bindparam("client_id"))


def find_record(connection: Connection, client_id: str) -> ClientRecord | None:
    row = connection.execute(_RECORD_STATEMENT, {"client_id": client_id}).first()
    return ClientRecord(*row) if row is not None else None


def check_secret(client: OAuthClient | ClientRecord, presented: str) -> bool:
    if client.secret_hash is None:
        return False
    return hmac.compare_digest(client.secret_hash, sha256(presented))


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def _scopes(text: str) -> str:
    names = scope_rules.split(text)
    unknown = sorted(set(names) - scope_rules.KNOWN)
    if unknown:
        raise ValidationFailed({"scopes": f"unknown scope: {' '.join(unknown)}"})
    return " ".join(scope_rules.vocabulary_order(names))


def create(
    session: Session, fields: ClientFields, *, dynamic: bool = False
) -> tuple[OAuthClient, str | None]:
    """Register a client; returns it with its secret, which is shown once and never stored."""
    method = fields.token_endpoint_auth_method or (
        "none" if fields.public else "client_secret_basic"
    )
    if fields.public and method != "none":
        raise ValidationFailed({"token_endpoint_auth_method": "public clients use none"})
    if not fields.public and method == "none":
        raise ValidationFailed({"token_endpoint_auth_method": "confidential clients need a secret"})
    grants: list[str] = list(dict.fromkeys(fields.grant_types))
    if not grants:
        raise ValidationFailed({"grant_types": "at least one grant type is required"})
    owner = None
    if fields.owner is not None:
        owner = session.scalar(select(Account).where(Account.handle == fields.owner.lower()))
        if owner is None:
            raise ValidationFailed({"owner": "no account has that handle"})
    _check_combination(fields.public, grants, owner, fields.skip_consent)
    uris = check_redirect_uris(fields.redirect_uris)
    if "authorization_code" in grants and not uris:
        raise ValidationFailed({"redirect_uris": "at least one is required for authorization_code"})
    secret = None if fields.public else new_secret()
    client = OAuthClient(
        id=CLIENT_ID_PREFIX + secrets.token_urlsafe(16),
        name=fields.name,
        secret_hash=None if secret is None else sha256(secret),
        public=fields.public,
        token_endpoint_auth_method=method,
        redirect_uris="\n".join(uris),
        scopes=_scopes(fields.scopes),
        grant_types=" ".join(grants),
        scope_policy=fields.scope_policy,
        owner=owner,
        skip_consent=fields.skip_consent,
        dynamically_registered=dynamic,
    )
    session.add(client)
    session.flush()
    return client, secret


def _check_combination(
    public: bool, grants: list[str], owner: Account | None, skip_consent: bool
) -> None:
    if "client_credentials" in grants:
        if public:
            raise ValidationFailed({"grant_types": "public clients cannot use client_credentials"})
        if owner is None:
            raise ValidationFailed({"owner": "client_credentials needs an owning account"})
    if "refresh_token" in grants and "authorization_code" not in grants:
        raise ValidationFailed({"grant_types": "refresh_token comes with authorization_code"})
    if skip_consent and public:
        raise ValidationFailed({"skip_consent": "only confidential clients may skip consent"})


def get(session: Session, client_id: str) -> OAuthClient:
    client = session.get(OAuthClient, client_id)
    if client is None:
        raise NotFound("No client has that id.")
    return client


def update(session: Session, client_id: str, changes: ClientChanges) -> OAuthClient:
    client = get(session, client_id)
    if changes.name is not None:
        client.name = changes.name
    if changes.redirect_uris is not None:
        client.redirect_uris = "\n".join(check_redirect_uris(changes.redirect_uris))
    if changes.scopes is not None:
        client.scopes = _scopes(changes.scopes)
    if changes.grant_types is not None:
        client.grant_types = " ".join(dict.fromkeys(changes.grant_types))
    if changes.scope_policy is not None:
        client.scope_policy = changes.scope_policy
    if changes.skip_consent is not None:
        client.skip_consent = changes.skip_consent
    _check_combination(client.public, client.grant_types.split(), client.owner, client.skip_consent)
    if "authorization_code" in client.grant_type_set and not client.redirect_uri_list:
        raise ValidationFailed({"redirect_uris": "at least one is required for authorization_code"})
    session.flush()
    return client


def rotate_secret(session: Session, client_id: str) -> tuple[OAuthClient, str]:
    client = get(session, client_id)
    if client.public:
        raise ValidationFailed({"client_id": "public clients have no secret"})
    secret = new_secret()
    client.secret_hash = sha256(secret)
    client.secret_rotated_at = utcnow()
    session.flush()
    return client, secret


def delete(session: Session, client_id: str) -> None:
    """Delete a client; the database cascades to its grants, codes, tokens and pending requests."""
    client = get(session, client_id)
    session.delete(client)
    session.flush()


def client_json(client: OAuthClient, secret: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "client_id": client.id,
        "name": client.name,
        "public": client.public,
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "redirect_uris": client.redirect_uri_list,
        "scopes": client.scopes.split(),
        "grants": client.grant_types.split(),
        "scope_policy": client.scope_policy,
        "owner": client.owner.handle if client.owner else None,
        "skip_consent": client.skip_consent,
        "created_at": rfc3339(client.created_at),
        "secret_rotated_at": rfc3339(client.secret_rotated_at),
    }
    if secret is not None:
        body["client_secret"] = secret
    return body


def list_all(session: Session) -> list[OAuthClient]:
    return list(session.scalars(select(OAuthClient).order_by(OAuthClient.created_at)))
