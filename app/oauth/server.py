"""Authlib wiring: our models behind Authlib's client, code and token interfaces, and the grants.

Authlib runs the token, revocation and introspection protocols (RFC 6749, 7636, 7009, 7662, OIDC
Core); these adapters only read and stage rows. The view commits once per request.
"""

from __future__ import annotations

import time
from collections import namedtuple
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple, NoReturn

from authlib.common.security import is_secure_transport
from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.integrations.flask_oauth2.requests import FlaskOAuth2Payload, FlaskOAuth2Request
from authlib.oauth2 import OAuth2Error, OAuth2Request
from authlib.oauth2.rfc6749 import (
    AuthorizationCodeMixin,
    ClientMixin,
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    TokenMixin,
    UnauthorizedClientError,
    grants,
)
from authlib.oauth2.rfc7009 import RevocationEndpoint
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7636.challenge import CODE_VERIFIER_PATTERN, compare_s256_code_challenge
from authlib.oauth2.rfc7662 import IntrospectionEndpoint
from authlib.oidc.core import UserInfo
from authlib.oidc.core.grants import OpenIDCode
from flask import Flask, Request, Response, current_app, g
from sqlalchemy import bindparam, select, true
from sqlalchemy.orm import joinedload

from app import direct
from app.accounts.service import account_permissions
from app.auth import AccountInfo, sha256
from app.context import this_app, this_g, this_request
from app.db import utcnow
from app.errors import InvalidRequest
from app.extensions import db
from app.models import Account, AuthorizationCode, Grant, Token
from app.oauth import clients, tokens
from app.oauth import scopes as scope_rules
from app.oauth.authorize import redirect_uri_matches
from app.oauth.keys import access_token_key, id_token_key, provider_keys
from app.observability import security_event
from app.permissions import Permission

ALL_METHODS = ["client_secret_basic", "client_secret_post", "none"]
SECRET_METHODS = ["client_secret_basic", "client_secret_post"]


class Client(ClientMixin):
    def __init__(self, model: clients.ClientRecord) -> None:
        self.model = model

    def get_client_id(self) -> str:
        return self.model.id

    def get_default_redirect_uri(self) -> str | None:
        uris = self.model.redirect_uri_list
        return uris[0] if uris else None

    def get_allowed_scope(self, scope: str) -> str:
        allowed = self.model.scope_set
        return " ".join(name for name in scope_rules.split(scope) if name in allowed)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri_matches(self.model.redirect_uri_list, redirect_uri)

    def check_client_secret(self, client_secret: str) -> bool:
        return clients.check_secret(self.model, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        # The registered method is enforced at every endpoint (SPEC §4.3).
        return method == self.model.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in self.model.grant_type_set


class Code(AuthorizationCodeMixin):
    code_challenge_method = "S256"

    def __init__(self, model: AuthorizationCode) -> None:
        self.model = model
        self.code_challenge = model.code_challenge

    def get_redirect_uri(self) -> str:
        return self.model.redirect_uri

    def get_scope(self) -> str:
        return self.model.scope

    def get_nonce(self) -> str | None:
        return self.model.nonce

    def get_auth_time(self) -> int:
        return int(self.model.auth_time.timestamp())

    def get_acr(self) -> None:
        return None

    def get_amr(self) -> None:
        return None


class StoredToken(TokenMixin):
    """A stored token row, for revocation and introspection."""

    def __init__(self, model: Token) -> None:
        self.model = model

    def check_client(self, client: Client) -> bool:
        return self.model.client_id == client.get_client_id()

    def get_scope(self) -> str:
        return self.model.scope

    def get_expires_in(self) -> int:
        return int((self.model.expires_at - self.model.created_at).total_seconds())

    def is_expired(self) -> bool:
        return self.model.expires_at <= utcnow()

    def is_revoked(self) -> bool:
        return not tokens.is_active(self.model) and not self.is_expired()


def _lifetimes() -> tokens.Lifetimes:
    config = current_app.config
    return tokens.Lifetimes(
        config["OAUTH_ACCESS_TOKEN_TTL"],
        config["OAUTH_REFRESH_TOKEN_TTL"],
        config["OAUTH_REFRESH_TOKEN_MAX_AGE"],
    )


def api_resource() -> str:
    return f"{this_app().config['PUBLIC_API_ADDRESS']}/api"


class S256Only(CodeChallenge):
    """RFC 7636 §4.6 with SPEC §4.3's rule: every PKCE failure at the token endpoint is invalid_grant."""

    def validate_code_verifier(self, grant: grants.BaseGrant, result: Any) -> None:
        request: OAuth2Request = grant.request
        verifier = request.form.get("code_verifier")
        challenge = self.get_authorization_code_challenge(request.authorization_code)
        if not verifier:
            raise InvalidGrantError("The code_verifier is missing.")
        if not challenge:
            raise InvalidGrantError("This code was issued without a code_challenge.")
        if not CODE_VERIFIER_PATTERN.match(verifier):
            raise InvalidGrantError("The code_verifier must be 43 to 128 unreserved characters.")
        if not compare_s256_code_challenge(verifier, challenge):
            raise InvalidGrantError("The code_verifier does not match the code_challenge.")


# Statements on the token endpoint's path are built once per process: constructing and
# cache-keying a select with its loader options costs more than running it.


@cache
def _code_statement() -> Any:
    # One round trip: the grant and its account come along (session.get then hits the map).
    return (
        select(AuthorizationCode)
        .options(joinedload(AuthorizationCode.grant).joinedload(Grant.account))
        .where(AuthorizationCode.code_hash == bindparam("code_hash"))
    )


@cache
def _refresh_statement() -> Any:
    # The token and the grant columns a rotation reads, as one Core row (no ORM identities).
    return select(
        Token.id,
        Token.client_id,
        Token.scope,
        Token.expires_at,
        Token.revoked_at,
        Token.rotated_at,
        Grant.id.label("grant_id"),
        Grant.account_id,
        Grant.created_at.label("grant_created_at"),
        Grant.resource,
        Grant.revoked_at.label("grant_revoked_at"),
    ).where(
        Token.token_hash == bindparam("token_hash"),
        Token.kind == "refresh",
        Grant.id == Token.grant_id,
    )


@cache
def _client_and_refresh_statement() -> Any:
    """The authenticating client and the presented refresh token in one round trip.

    One row when the client exists; the token's columns are NULL when no refresh token has that
    hash. Whose token it is gets checked after client authentication, as before."""
    presented = _refresh_statement().subquery("presented")
    return (
        select(*clients.RECORD_COLUMNS, *presented.c)
        .select_from(clients.TABLE.outerjoin(presented, true()))
        .where(clients.TABLE.c.id == bindparam("client_id"))
    )


@cache
def _client_and_code_statement() -> Any:
    """The authenticating client and the presented code (with its grant and account) at once.

    The code entity is None when no code has that hash; whose code it is gets checked after
    client authentication, as before."""
    return (
        select(*clients.RECORD_COLUMNS, AuthorizationCode)
        .select_from(clients.TABLE)
        .outerjoin(AuthorizationCode, AuthorizationCode.code_hash == bindparam("code_hash"))
        .options(joinedload(AuthorizationCode.grant).joinedload(Grant.account))
        .where(clients.TABLE.c.id == bindparam("client_id"))
    )


# The form field that carries each grant's credential.
_PRESENTED_FIELD = {"refresh_token": "refresh_token", "authorization_code": "code"}


class _Presented(NamedTuple):
    """The credential a token request presented, read together with its client."""

    grant_type: str
    credential_hash: str
    found: Any  # a refresh row or an AuthorizationCode; None when nothing has that hash


def _query_client(client_id: str) -> clients.ClientRecord | None:
    """The client; on a code or refresh grant, the presented credential comes in the same query.

    Client authentication, and the grant's own checks, run afterwards exactly as if the two
    had been read separately: this only saves the token endpoint a round trip."""
    context = this_g()
    context._hearth_presented = None
    current = this_request()
    form = current.form
    grant_type = form.get("grant_type")
    field = _PRESENTED_FIELD.get(grant_type or "")
    presented = form.get(field) if field is not None else None
    if not presented or current.endpoint != "oauth.token":
        return clients.find_record(db.connection, client_id)
    credential_hash = sha256(presented)
    split = len(clients.RECORD_COLUMNS)
    found: Any
    if grant_type == "refresh_token":
        row = direct.first(
            db.connection,
            _client_and_refresh_statement(),
            {"client_id": client_id, "token_hash": credential_hash},
        )
        if row is None:
            return None
        found = _refresh_row_type()(*row[split:]) if row[split] is not None else None
    else:
        row = (
            db.session.execute(
                _client_and_code_statement(),
                {"client_id": client_id, "code_hash": credential_hash},
            )
            .unique()
            .first()
        )
        if row is None:
            return None
        found = row[split]
    context._hearth_presented = _Presented(grant_type or "", credential_hash, found)
    return clients.ClientRecord(*row[:split])


def _prefetched(grant_type: str, credential_hash: str) -> tuple[bool, Any]:
    """(True, what was found) when `_query_client` already read this very credential."""
    presented: _Presented | None = g.get("_hearth_presented")
    if (
        presented is not None
        and presented.grant_type == grant_type
        and presented.credential_hash == credential_hash
    ):
        return True, presented.found
    return False, None


@cache
def _refresh_row_type() -> Any:
    """The refresh statement's columns, by name, for rows read through the combined query."""
    return namedtuple("RefreshRow", _refresh_statement().selected_columns.keys())


@dataclass(frozen=True, slots=True)
class GrantRecord:
    """The grant behind a refresh token: what issuing the next tokens needs from it."""

    id: str
    account_id: str
    created_at: datetime
    resource: str


class RefreshCandidate(TokenMixin):
    """A presented refresh token, read as one Core row with its grant."""

    def __init__(self, row: Any) -> None:
        self.id: str = row.id
        self.client_id: str = row.client_id
        self.scope: str = row.scope
        self.grant = GrantRecord(row.grant_id, row.account_id, row.grant_created_at, row.resource)

    def check_client(self, client: Client) -> bool:
        return self.client_id == client.get_client_id()

    def get_scope(self) -> str:
        return self.scope


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ALL_METHODS

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        raise NotImplementedError("codes are issued by app.oauth.authorize after consent")

    def query_authorization_code(self, code: str, client: Client) -> Code | None:
        code_hash = sha256(code)
        read, model = _prefetched("authorization_code", code_hash)
        if not read:
            model = db.session.scalar(_code_statement(), {"code_hash": code_hash})
        if model is None or model.client_id != client.get_client_id():
            return None
        # An expired code that was already redeemed still reaches authenticate_user, so a late
        # valid replay revokes what the first redemption got (RFC 6749 §4.1.2).
        if model.expires_at <= utcnow() and model.used_at is None:
            return None
        return Code(model)

    def authenticate_user(self, authorization_code: Code) -> tokens.Subject:
        """The code's grant and account; the code itself is claimed when tokens are written."""
        code = authorization_code.model
        grant = code.grant
        if grant.revoked_at is not None:
            raise InvalidGrantError("The grant behind this code was revoked.")
        account = grant.account  # joined with the code

        def lost() -> NoReturn:
            # Of two redemptions, one stored its tokens; this one revokes what the first got.
            with db.atomic():
                # The grant and every token under it, the first redemption's among them.
                tokens.revoke_grant(db.session, code.grant_id, "code_replay")
            security_event("code_replay", client_id=code.client_id, grant_id=code.grant_id)
            raise InvalidGrantError("The code was already used; its tokens are revoked.")

        return tokens.Subject(
            account.id,
            grant,
            account=account,
            auth_time=code.auth_time,
            code_id=code.id,
            claim=tokens.Claim("code", code.id, lost),
        )

    def delete_authorization_code(self, authorization_code: Code) -> None:
        """Nothing to do: the code was marked used when it was claimed."""


class RefreshTokenGrant(grants.RefreshTokenGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ALL_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    def _validate_request_token(self, client: Client) -> RefreshCandidate:
        """As Authlib's, with an error_description saying why the token was refused."""
        refresh_token = self.request.form.get("refresh_token")
        if not refresh_token:
            raise InvalidRequestError("The refresh_token parameter is missing.")
        token = self.authenticate_refresh_token(refresh_token)
        if token is None:
            raise InvalidGrantError("The refresh token is invalid, expired or revoked.")
        if not token.check_client(client):
            raise InvalidGrantError("The refresh token was issued to another client.")
        return token

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshCandidate | None:
        token_hash = sha256(refresh_token)
        read, row = _prefetched("refresh_token", token_hash)
        if not read:
            row = db.connection.execute(_refresh_statement(), {"token_hash": token_hash}).first()
        if row is None:
            return None
        now = utcnow()
        if row.revoked_at is not None or row.expires_at <= now:
            return None
        if row.grant_revoked_at is not None:
            return None
        if row.rotated_at is not None:
            self._reuse(row.grant_id, row.client_id)
            return None
        if row.grant_created_at + current_app.config["OAUTH_REFRESH_TOKEN_MAX_AGE"] <= now:
            return None
        return RefreshCandidate(row)

    @staticmethod
    def _reuse(grant_id: str, client_id: str) -> None:
        # RFC 9700 §4.14.2: a rotated refresh token presented again means theft; end the grant.
        with db.atomic():
            tokens.revoke_grant(db.session, grant_id, "refresh_token_reuse")
        security_event("refresh_token_reuse", client_id=client_id, grant_id=grant_id)

    def authenticate_user(self, refresh_token: RefreshCandidate) -> tokens.Subject:
        """The grant's account; the token is rotated when the new tokens are stored."""
        grant = refresh_token.grant

        def lost() -> NoReturn:
            # Of two racing uses, the loser is treated as reuse.
            self._reuse(grant.id, refresh_token.client_id)
            raise InvalidGrantError("The refresh token was already used.")

        # The account's rows cascade with it, so a live grant means a live account.
        return tokens.Subject(
            grant.account_id,
            grant,
            refresh_scope=refresh_token.scope,
            claim=tokens.Claim("refresh", refresh_token.id, lost),
        )

    def revoke_old_credential(self, refresh_token: RefreshCandidate) -> None:
        """Nothing to do: the old token was marked rotated when it was claimed."""


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = SECRET_METHODS

    def validate_token_request(self) -> None:
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError("This client may not use client_credentials.")
        if client.model.owner_id is None:
            raise UnauthorizedClientError("client_credentials needs a client with an owner.")
        self.request.client = client

    def create_token_response(self) -> tuple[int, dict[str, Any], list[tuple[str, str]]]:
        """Act as the owning account, within the client's allowed scopes (SPEC §4)."""
        client: Client = self.request.client
        owner = db.session.get(Account, client.model.owner_id)
        if owner is None:
            raise UnauthorizedClientError("The client's owner no longer exists.")
        requested = scope_rules.split(self.request.payload.scope)
        unknown = set(requested) - scope_rules.KNOWN
        if unknown:
            raise InvalidScopeError(f"Unknown scope: {' '.join(sorted(unknown))}.")
        permission_scopes = [name for name in requested if name not in scope_rules.OIDC_SCOPES]
        if not requested:
            permission_scopes = [
                name for name in client.model.scopes.split() if name not in scope_rules.OIDC_SCOPES
            ]
        decision = scope_rules.decide(
            permission_scopes, client.model.scope_set, "explicit", account_permissions(owner)
        )
        if requested and len(decision.granted) != len(permission_scopes):
            raise InvalidScopeError("Some requested scopes are not available to this client.")
        subject = tokens.Subject(owner.id, None, account=owner)
        self.request.user = subject
        token = self.generate_token(
            user=subject, scope=" ".join(decision.granted), include_refresh_token=False
        )
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER


class HearthOpenIDCode(OpenIDCode):
    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        return False  # nonces are echoed, not tracked: codes are single use already

    def resolve_client_private_key(self, client: Client) -> Any:
        return id_token_key().key

    def get_client_algorithm(self, client: Client) -> str:
        return id_token_key().alg

    def get_encode_header(self, client: Client) -> dict[str, str]:
        key = id_token_key()
        return {"alg": key.alg, "kid": key.kid, "typ": "JWT"}

    def get_client_claims(self, client: Client) -> dict[str, Any]:
        now = int(time.time())
        ttl = int(current_app.config["OAUTH_ACCESS_TOKEN_TTL"].total_seconds())
        return {
            "iss": current_app.config["PUBLIC_API_ADDRESS"],
            "aud": [client.get_client_id()],
            "iat": now,
            "exp": now + ttl,
        }

    def generate_user_info(self, user: tokens.Subject, scope: str) -> UserInfo:
        assert user.account is not None  # the code grant loads it with the code
        return UserInfo(userinfo_claims(user.account, scope))


def userinfo_claims(account: Account | AccountInfo, scope: str) -> dict[str, Any]:
    """OIDC Core §5.4 claims by scope: profile → handle and name, email → address."""
    names = set(scope.split())
    claims: dict[str, Any] = {"sub": account.id}
    if "profile" in names:
        claims["preferred_username"] = account.handle
        claims["name"] = account.name
    if "email" in names and account.email:
        claims["email"] = account.email
        claims["email_verified"] = account.email_verified
    return claims


def check_token_params(request: OAuth2Request) -> None:
    """RFC 7009 §2.1 / RFC 7662 §2.1: `token` is required; an unknown hint is only a hint."""
    if not request.form.get("token"):
        raise InvalidRequestError("The token parameter is missing.")


class Revocation(RevocationEndpoint):
    CLIENT_AUTH_METHODS = ALL_METHODS

    def check_params(self, request: OAuth2Request, client: Client) -> None:
        check_token_params(request)

    def authenticate_token(self, request: OAuth2Request, client: Client) -> StoredToken | None:
        self.check_params(request, client)
        token = self.query_token(request.form["token"], request.form.get("token_type_hint"))
        # RFC 7009 §2.2: another client's token is answered like an unknown one, and left alone.
        if token is None or not token.check_client(client):
            return None
        return token

    def query_token(self, token_string: str, token_type_hint: str | None) -> StoredToken | None:
        model = tokens.find_token(db.session, provider_keys(), token_string, token_type_hint)
        return StoredToken(model) if model is not None else None

    def revoke_token(self, token: StoredToken, request: OAuth2Request) -> None:
        model = token.model
        if model.kind == "refresh" and model.grant_id is not None:
            tokens.revoke_grant(db.session, model.grant_id, "rfc7009_refresh_token")
        elif model.revoked_at is None:
            model.revoked_at = utcnow()
            security_event("revocation", client_id=model.client_id)


class Introspection(IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = SECRET_METHODS  # public clients cannot introspect (SPEC §4.3)

    def check_params(self, request: OAuth2Request, client: Client) -> None:
        check_token_params(request)

    def query_token(self, token_string: str, token_type_hint: str | None) -> StoredToken | None:
        model = tokens.find_token(db.session, provider_keys(), token_string, token_type_hint)
        return StoredToken(model) if model is not None else None

    def check_permission(self, token: StoredToken, client: Client, request: OAuth2Request) -> bool:
        return token.check_client(client)

    def introspect_token(self, token: StoredToken) -> dict[str, Any]:
        model = token.model
        if not tokens.is_active(model):
            return {"active": False}
        account = db.session.get(Account, model.account_id) if model.account_id else None
        body: dict[str, Any] = {
            "active": True,
            "scope": model.scope,
            "client_id": model.client_id,
            "token_type": "Bearer" if model.kind == "access" else "refresh_token",
            "exp": int(model.expires_at.timestamp()),
            "iat": int(model.created_at.timestamp()),
            "iss": current_app.config["PUBLIC_API_ADDRESS"],
            "aud": model.audience,
        }
        if account is not None:
            body["sub"] = account.id
            body["username"] = account.handle
        if model.kind == "access":
            body["jti"] = model.id
        return body


ERROR_TEXT = {
    "invalid_request": "The request is missing a parameter or is malformed.",
    "invalid_client": "Client authentication failed.",
    "invalid_grant": "The grant is invalid, expired or revoked.",
    "unauthorized_client": "This client may not use this grant type.",
    "unsupported_grant_type": "This grant type is not supported.",
    "invalid_scope": "The scope is invalid.",
}


class _OAuth2Request(FlaskOAuth2Request):
    """Authlib's Flask request, with its URI joined from the parts instead of Werkzeug's
    `request.url`, which re-quotes each of them (~10 µs of every token request). Authlib only
    checks the URI for a secure transport, which `create_oauth2_request` has done already."""

    def __init__(self, request: Request, uri: str) -> None:
        OAuth2Request.__init__(self, method=request.method, uri=uri, headers=request.headers)
        self._request = request
        self.payload = FlaskOAuth2Payload(request)


class HearthAuthorizationServer(AuthorizationServer):
    def create_oauth2_request(self, request: Any) -> FlaskOAuth2Request:
        """Authlib's request wrapper around the request object itself: Authlib's own keeps
        Flask's proxy and reads through it about eight times per token request (app.context)."""
        current = this_request()
        uri = f"{current.scheme}://{current.host}{current.path}"
        if current.query_string:
            uri = f"{uri}?{current.query_string.decode('latin-1')}"
        if not is_secure_transport(uri):
            # Authlib would raise InsecureTransportError outside its own error handling (a 500).
            raise InvalidRequest(
                "OAuth requires HTTPS: this request reached the server over plain HTTP. Behind "
                "a TLS proxy, set TRUSTED_PROXY_COUNT so its X-Forwarded-Proto is believed."
            )
        return _OAuth2Request(current, uri)

    def create_token_response(self, request: Any = None) -> Response:
        """Authlib's token response, then the endpoint's one write.

        The new tokens are stored, and the code or refresh token they were exchanged for is
        claimed, only once the whole response exists: a failure while building it (the ID
        token's signature, the response itself) leaves the credential usable, and the write
        holds SQLite's lock (PostgreSQL's row lock) for no longer than the statements."""
        response: Response = super().create_token_response(request)
        issued: tokens.Issued | None = this_g().pop("_hearth_issued", None)
        if issued is None or response.status_code != 200:
            return response
        if tokens.store(db.connection, issued):
            return response
        assert issued.claim is not None  # only a claim can be lost
        try:
            issued.claim.lost()
        except OAuth2Error as error:
            lost: Response = self.handle_error_response(None, error)
            return lost

    def query_client(self, client_id: str) -> Client | None:
        record = _query_client(client_id)
        return Client(record) if record is not None else None

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        """Nothing left to stage: `generate_token` wrote the rows; the view commits once."""

    def generate_token(
        self,
        grant_type: str,
        client: Client,
        user: tokens.Subject | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        assert user is not None
        audience = (
            user.grant.resource
            if user.grant is not None and user.grant.resource
            else api_resource()
        )
        response, issued = tokens.issue(
            access_token_key(),
            this_app().config["PUBLIC_API_ADDRESS"],
            client.model.id,
            user,
            scope or "",
            audience,
            _lifetimes(),
            include_refresh_token and client.check_grant_type("refresh_token"),
        )
        this_g()._hearth_issued = issued
        return response

    def handle_error_response(self, request: OAuth2Request, error: OAuth2Error) -> Response:
        # RFC 6749 §5.2: say what went wrong, even where Authlib leaves the description empty.
        if not error.description:
            described = getattr(error, "get_error_description", None)
            error.description = described() if described else ERROR_TEXT.get(error.error, "")
        response: Response = super().handle_error_response(request, error)
        return response

    def handle_response(self, status_code: int, payload: Any, headers: Any) -> Response:
        if isinstance(payload, dict):
            payload = current_app.json.dumps(payload)
        response = Response(payload, status=status_code, headers=headers)
        # RFC 6749 §5.1: token responses and their errors are never cached.
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
        return response


def init_app(app: Flask) -> None:
    server = HearthAuthorizationServer(app)
    server.register_grant(
        AuthorizationCodeGrant, [S256Only(required=True), HearthOpenIDCode(require_nonce=False)]
    )
    server.register_grant(RefreshTokenGrant)
    server.register_grant(ClientCredentialsGrant)
    server.register_endpoint(Revocation)
    server.register_endpoint(Introspection)
    app.extensions["hearth_oauth_server"] = server
    app.extensions["hearth_bearer_loader"] = bearer_loader


def authorization_server() -> HearthAuthorizationServer:
    server: HearthAuthorizationServer = current_app.extensions["hearth_oauth_server"]
    return server


def bearer_loader(presented: str) -> Any:
    issuer = this_app().config["PUBLIC_API_ADDRESS"]
    return tokens.principal_for_access_token(
        db.connection, provider_keys(), presented, issuer, api_resource()
    )


__all__ = ["Permission", "authorization_server", "bearer_loader", "init_app"]
