"""RFC 7591 dynamic client registration: never grants privileged scopes."""

from __future__ import annotations

from typing import Any

from flask import Request
from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.errors import HearthError, ValidationFailed
from app.oauth import clients
from app.oauth import scopes as scope_rules
from app.oauth.schemas import Registration
from app.requests import field_errors


class InvalidClientMetadata(HearthError):
    error = "invalid_client_metadata"  # RFC 7591 §3.2.2


class InvalidRedirectUri(HearthError):
    error = "invalid_redirect_uri"


ALLOWED_GRANTS = {"authorization_code", "refresh_token"}


def register_client(session: Session, request: Request) -> tuple[dict[str, Any], int]:
    data = request.get_json(silent=True) if request.mimetype == "application/json" else None
    if not isinstance(data, dict):
        raise InvalidClientMetadata("Send the client metadata as a JSON object.")
    try:
        metadata = Registration.model_validate(data)
    except ValidationError as error:
        problems = field_errors(error)
        raise InvalidClientMetadata(
            "; ".join(f"{k}: {v}" for k, v in problems.items()), extra={"fields": problems}
        ) from None
    for uri in metadata.redirect_uris:
        problem = clients.redirect_uri_problem(uri)
        if problem:
            raise InvalidRedirectUri(f"{uri} {problem}.")
    grants = list(dict.fromkeys(metadata.grant_types))
    if not set(grants) <= ALLOWED_GRANTS or "authorization_code" not in grants:
        raise InvalidClientMetadata("grant_types may be authorization_code and refresh_token.")
    if metadata.response_types != ["code"]:
        raise InvalidClientMetadata('response_types must be ["code"].')
    requested = scope_rules.split(metadata.scope)
    unknown = sorted(set(requested) - scope_rules.KNOWN)
    if unknown:
        raise InvalidClientMetadata(f"Unknown scope: {' '.join(unknown)}.")
    # Privileged permissions are silently dropped; the response shows what was registered.
    kept = [name for name in requested if name not in scope_rules.PRIVILEGED]
    public = metadata.token_endpoint_auth_method == "none"
    try:
        client, secret = clients.create(
            session,
            clients.ClientFields(
                name=metadata.client_name or "Unnamed app",
                redirect_uris=metadata.redirect_uris,
                scopes=" ".join(kept),
                public=public,
                token_endpoint_auth_method=metadata.token_endpoint_auth_method,
                grant_types=grants,  # type: ignore[arg-type]
            ),
            dynamic=True,
        )
    except ValidationFailed as error:
        raise InvalidClientMetadata(error.description, extra=error.extra) from None
    body: dict[str, Any] = {
        "client_id": client.id,
        "client_id_issued_at": int(client.created_at.timestamp()),
        "client_name": client.name,
        "redirect_uris": client.redirect_uri_list,
        "token_endpoint_auth_method": client.token_endpoint_auth_method,
        "grant_types": client.grant_types.split(),
        "response_types": ["code"],
        "scope": client.scopes,
    }
    if secret is not None:
        body["client_secret"] = secret
        body["client_secret_expires_at"] = 0
    return body, 201
