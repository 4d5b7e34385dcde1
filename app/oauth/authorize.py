"""The authorization endpoint and the delegated consent it hands over to (SPEC §4.1, §4.2)."""

from __future__ import annotations

import ipaddress
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from werkzeug.datastructures import MultiDict

from app.auth import Principal, sha256
from app.db import rfc3339, utcnow
from app.errors import HearthError, InvalidRequest
from app.models import AuthorizationCode, Grant, OAuthClient, PendingRequest
from app.oauth import scopes as scope_rules
from app.observability import security_event
from app.permissions import Permission

# RFC 7636 §4.2: S256 challenges are base64url(SHA-256) = 43 characters.
S256_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")
SINGLE_PARAMETERS = (
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "prompt",
)


class UnknownClient(HearthError):
    error = "invalid_client"
    description = "The client is unknown."


class AuthorizeError(Exception):
    """A problem reported to the client by redirecting to its validated redirect URI."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


class UnknownRequest(HearthError):
    description = "The authorization request is unknown, expired or already answered."


@dataclass
class Validated:
    client: OAuthClient
    redirect_uri: str
    state: str | None
    requested: list[str]
    nonce: str | None
    code_challenge: str
    resource: str
    prompt: set[str]


def with_params(uri: str, params: dict[str, str | None]) -> str:
    """Add query parameters to a URI, keeping the query it already has (RFC 6749 §3.1.2)."""
    parts = urlsplit(uri)
    extra = urlencode({k: v for k, v in params.items() if v is not None})
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def redirect_uri_matches(registered: list[str], presented: str) -> bool:
    """Exact match, except any port on a loopback IP literal for native apps (RFC 8252 §7.3)."""
    if presented in registered:
        return True
    asked = urlsplit(presented)
    if asked.scheme != "http" or not _is_loopback_ip(asked.hostname) or asked.username:
        return False
    try:
        port = asked.port
    except ValueError:
        return False
    # Only the port may vary, and it must be a plain number: nothing else hides in the netloc.
    host = f"[{asked.hostname}]" if ":" in (asked.hostname or "") else asked.hostname
    if asked.netloc != (f"{host}:{port}" if port is not None else host):
        return False
    for uri in registered:
        known = urlsplit(uri)
        if (
            known.scheme == "http"
            and known.hostname == asked.hostname
            and _is_loopback_ip(known.hostname)
            and (known.path, known.query, known.fragment)
            == (asked.path, asked.query, asked.fragment)
        ):
            return True
    return False


def _is_loopback_ip(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate_client(session: Session, args: MultiDict[str, str]) -> tuple[OAuthClient, str]:
    """Steps that must pass before Hearth may redirect anywhere (SPEC §4.1 step 2)."""
    for name in ("client_id", "redirect_uri"):
        if len(args.getlist(name)) > 1:
            raise InvalidRequest(f"The {name} parameter is repeated.")
    client_id = args.get("client_id")
    if not client_id:
        raise InvalidRequest("The client_id parameter is missing.")
    client = session.get(OAuthClient, client_id)
    if client is None:
        raise UnknownClient("No client has that client_id.")
    redirect_uri = args.get("redirect_uri")
    if not redirect_uri:
        raise InvalidRequest("The redirect_uri parameter is missing.")
    if not redirect_uri_matches(client.redirect_uri_list, redirect_uri):
        raise InvalidRequest("The redirect_uri is not registered for this client.")
    return client, redirect_uri


def validate_request(
    client: OAuthClient,
    redirect_uri: str,
    args: MultiDict[str, str],
    held: frozenset[Permission],
    api_resource: str,
) -> Validated:
    """Everything else, reported to the client by redirect (SPEC §4.1 step 3)."""
    for name in SINGLE_PARAMETERS:
        if len(args.getlist(name)) > 1:
            raise AuthorizeError("invalid_request", f"The {name} parameter is repeated.")
    response_type = args.get("response_type")
    if not response_type:
        raise AuthorizeError("invalid_request", "The response_type parameter is missing.")
    if response_type != "code":
        raise AuthorizeError("unsupported_response_type", "Only response_type=code is supported.")
    if "authorization_code" not in client.grant_type_set:
        raise AuthorizeError("unauthorized_client", "This client may not use the code flow.")
    # OAuth 2.1 §4.1.1 / RFC 9700 §2.1.1: PKCE with S256 for every client.
    challenge = args.get("code_challenge")
    method = args.get("code_challenge_method")
    if not challenge:
        raise AuthorizeError("invalid_request", "PKCE is required: send code_challenge.")
    if method != "S256":
        raise AuthorizeError("invalid_request", "code_challenge_method must be S256.")
    if not S256_CHALLENGE.match(challenge):
        raise AuthorizeError("invalid_request", "The code_challenge is malformed.")
    requested = scope_rules.split(args.get("scope"))
    unknown = sorted(set(requested) - scope_rules.KNOWN)
    if unknown:
        raise AuthorizeError("invalid_scope", f"Unknown scope: {' '.join(unknown)}.")
    # RFC 8707 §2: Hearth protects one resource, its API.
    resources = args.getlist("resource")
    if any(resource != api_resource for resource in resources):
        raise AuthorizeError("invalid_target", f"The only resource here is {api_resource}.")
    if Permission.USE_OAUTH_CLIENTS not in held and Permission.ADMINISTRATOR not in held:
        raise AuthorizeError("access_denied", "Your account may not authorise applications.")
    return Validated(
        client=client,
        redirect_uri=redirect_uri,
        state=args.get("state"),
        requested=requested,
        nonce=args.get("nonce"),
        code_challenge=challenge,
        resource=api_resource,
        prompt=set((args.get("prompt") or "").split()),
    )


def error_location(
    redirect_uri: str, error: str, description: str, state: str | None, issuer: str
) -> str:
    # RFC 9207: `iss` on every authorization response, errors included.
    return with_params(
        redirect_uri,
        {"error": error, "error_description": description, "state": state, "iss": issuer},
    )


def create_pending(
    session: Session, principal: Principal, request: Validated, auth_time: datetime, ttl: timedelta
) -> str:
    """Store the request for the consent page; return the request id (only its hash is kept)."""
    request_id = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        PendingRequest(
            request_hash=sha256(request_id),
            account_id=principal.account_id,
            client_id=request.client.id,
            redirect_uri=request.redirect_uri,
            scope=" ".join(request.requested),
            state=request.state,
            nonce=request.nonce,
            code_challenge=request.code_challenge,
            resource=request.resource,
            auth_time=auth_time,
            created_at=now,
            expires_at=now + ttl,
        )
    )
    return request_id


def remembered_grant(
    session: Session, principal: Principal, request: Validated, max_age: timedelta
) -> tuple[Grant, list[str]] | None:
    """A live grant that already covers this request, for first-party clients only."""
    client = request.client
    if not client.skip_consent or client.public or "consent" in request.prompt:
        return None
    decision = scope_rules.decide(
        request.requested, client.scope_set, client.scope_policy, principal.held
    )
    wanted = set(decision.granted)
    for grant in session.scalars(
        select(Grant).where(
            Grant.account_id == principal.account_id,
            Grant.client_id == client.id,
            Grant.revoked_at.is_(None),
            Grant.created_at > utcnow() - max_age,
        )
    ):
        if wanted <= set(grant.scope.split()) and grant.resource == request.resource:
            return grant, decision.granted
    return None


def _pending(session: Session, principal: Principal, request_id: str) -> PendingRequest:
    pending = session.scalar(
        select(PendingRequest).where(PendingRequest.request_hash == sha256(request_id))
    )
    # Another account's request is indistinguishable from a missing one.
    if (
        pending is None
        or pending.account_id != principal.account_id
        or pending.processed_at is not None
        or pending.expires_at <= utcnow()
    ):
        raise UnknownRequest()
    return pending


def _decision(pending: PendingRequest, principal: Principal) -> scope_rules.Decision:
    client = pending.client
    return scope_rules.decide(
        scope_rules.split(pending.scope),
        client.scope_set,
        client.scope_policy,
        principal.held,
    )


def restart_url(pending: PendingRequest, issuer: str) -> str:
    """The original authorization request, for continuing it as another account."""
    params = {
        "response_type": "code",
        "client_id": pending.client_id,
        "redirect_uri": pending.redirect_uri,
        "scope": pending.scope or None,
        "state": pending.state,
        "nonce": pending.nonce,
        "code_challenge": pending.code_challenge,
        "code_challenge_method": "S256",
        "resource": pending.resource,
    }
    return with_params(f"{issuer}/api/oauth/authorize", params)


def consent_details(
    session: Session, principal: Principal, request_id: str, issuer: str
) -> dict[str, Any]:
    pending = _pending(session, principal, request_id)
    decision = _decision(pending, principal)
    return {
        "request_id": request_id,
        "client_id": pending.client.id,
        "client_name": pending.client.name,
        "redirect_uri": pending.redirect_uri,
        "expires_at": rfc3339(pending.expires_at),
        "requested_scopes": decision.requested,
        "granted_scopes": decision.granted,
        "inherits_user_permissions": pending.client.scope_policy == "inherit",
        "scopes": decision.details,
        "client_registered_itself": pending.client.dynamically_registered,
        "authorize_url": restart_url(pending, issuer),
    }


def decide(
    session: Session,
    principal: Principal,
    request_id: str,
    approve: bool,
    narrowed: list[str] | None,
    issuer: str,
    code_ttl: timedelta,
) -> tuple[str, str]:
    """Record the account's decision; return (status, location for the browser)."""
    pending = _pending(session, principal, request_id)
    decision = _decision(pending, principal)
    scopes = decision.granted
    if approve and narrowed is not None:
        outside = [name for name in narrowed if name not in decision.granted]
        if outside:
            raise scope_rules.InvalidScope(f"Not grantable in this request: {' '.join(outside)}.")
        scopes = [name for name in decision.granted if name in narrowed]
    # Process once: the conditional update is the lock (two racing approvals, one wins).
    claimed = session.execute(
        update(PendingRequest)
        .where(
            PendingRequest.id == pending.id,
            PendingRequest.processed_at.is_(None),
            PendingRequest.expires_at > utcnow(),
        )
        .values(processed_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise UnknownRequest()
    security_event(
        "consent_decision",
        decision="approve" if approve else "deny",
        account_id=principal.account_id,
        client_id=pending.client_id,
    )
    if not approve:
        location = error_location(
            pending.redirect_uri,
            "access_denied",
            "The user denied the request.",
            pending.state,
            issuer,
        )
        return "denied", location
    grant = Grant(
        account_id=principal.account_id,
        client_id=pending.client_id,
        scope=" ".join(scopes),
        resource=pending.resource or "",
    )
    session.add(grant)
    code = issue_code(session, grant, pending, scopes, code_ttl)
    return "approved", with_params(
        pending.redirect_uri, {"code": code, "state": pending.state, "iss": issuer}
    )


def issue_code(
    session: Session,
    grant: Grant,
    request: PendingRequest | Validated,
    scopes: list[str],
    ttl: timedelta,
    auth_time: datetime | None = None,
) -> str:
    code = secrets.token_urlsafe(32)
    now = utcnow()
    session.flush()  # the grant's id
    session.add(
        AuthorizationCode(
            code_hash=sha256(code),
            grant_id=grant.id,
            client_id=grant.client_id,
            redirect_uri=request.redirect_uri,
            scope=" ".join(scopes),
            code_challenge=request.code_challenge,
            nonce=request.nonce,
            auth_time=auth_time or getattr(request, "auth_time", now),
            created_at=now,
            expires_at=now + ttl,
        )
    )
    return code
