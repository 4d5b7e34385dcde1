"""OAuth endpoints: thin adapters between HTTP and app.oauth's services and Authlib."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from app.auth import Principal, check, protocol_endpoint, session_principal, signed_in
from app.context import this_request
from app.db import utcnow
from app.errors import Forbidden, HearthError, InvalidRequest, NotFound, Unauthenticated
from app.extensions import autocommit, db, read_only
from app.oauth import authorize as flow
from app.oauth import clients, metadata, tokens
from app.oauth import schemas as s
from app.oauth.keys import provider_keys
from app.oauth.server import api_resource, authorization_server, userinfo_claims
from app.observability import security_event
from app.openapi import operation
from app.permissions import Permission
from app.ratelimit import REGISTRATION_PER_IP, TOKEN_PER_CLIENT, client_key, limit
from app.requests import basic_client_id, json_body

bp = Blueprint("oauth", __name__)
F = TypeVar("F", bound=Callable[..., Any])

CORS_HEADERS = "Authorization, Content-Type"


def cors(view: F) -> F:
    """Allow browser apps on any origin: these endpoints never read the session cookie."""
    view._hearth_cors = True  # type: ignore[attr-defined]
    return protocol_endpoint(view)


def init_cors(app: Flask) -> None:
    @app.after_request
    def _cors(response: Response) -> Response:
        current = this_request()
        view = app.view_functions.get(current.endpoint or "")
        if getattr(view, "_hearth_cors", False):
            response.headers["Access-Control-Allow-Origin"] = "*"
            if current.method == "OPTIONS":
                response.headers["Access-Control-Allow-Methods"] = response.headers.get(
                    "Allow", "GET, POST"
                )
                response.headers["Access-Control-Allow-Headers"] = CORS_HEADERS
                response.headers["Access-Control-Max-Age"] = "600"
        return response


class OAuthRequestError(HearthError):
    """RFC 6749 §5.2 error raised before Authlib sees the request."""


class InvalidTarget(OAuthRequestError):
    error = "invalid_target"  # RFC 8707 §2


def _issuer() -> str:
    issuer: str = current_app.config["PUBLIC_API_ADDRESS"]
    return issuer


def _public_request_url() -> str:
    """This request's URL as the browser knows it: behind a proxy the host we see is internal."""
    query = request.query_string.decode("latin-1")
    return f"{_issuer()}{request.path}" + (f"?{query}" if query else "")


def _redirect(location: str) -> Response:
    response = Response(status=302, headers={"Location": location})
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/api/oauth/authorize")
@operation(
    "Start the authorization code flow (RFC 6749 §4.1, PKCE S256 required)",
    tag="oauth",
    query=(
        ("response_type", "code", True),
        ("client_id", "The client's id", True),
        ("redirect_uri", "One of the client's registered redirect URIs", True),
        ("code_challenge", "base64url(SHA-256(code_verifier))", True),
        ("code_challenge_method", "S256", True),
        ("scope", "Space-separated scopes", False),
        ("state", "Opaque value returned to the client", False),
        ("nonce", "OIDC nonce copied into the ID token", False),
        ("resource", "RFC 8707 resource indicator", False),
        ("prompt", "none, login or consent", False),
    ),
    responses={
        302: "To sign-in, the consent page, or the client",
        400: "Unknown client or redirect URI",
    },
)
def authorize() -> Response:
    config = current_app.config
    args = request.args
    principal = session_principal()
    prompt = set((args.get("prompt") or "").split())
    stale = (
        principal is not None
        and "login" in prompt
        and principal.auth_time is not None
        and (utcnow() - principal.auth_time).total_seconds() > 60
    )
    if principal is None or stale:
        if "none" in prompt:
            client, redirect_uri = flow.validate_client(db.session, args)
            return _redirect(
                flow.error_location(
                    redirect_uri,
                    "login_required",
                    "The user is not signed in.",
                    args.get("state"),
                    _issuer(),
                )
            )
        # SPEC §4.1 step 1: come back to this very request after signing in.
        return _redirect(
            flow.with_params(
                config["OAUTH_AUTHORISATION_LOGIN_URL"], {"return_url": _public_request_url()}
            )
        )
    client, redirect_uri = flow.validate_client(db.session, args)
    try:
        validated = flow.validate_request(
            client, redirect_uri, args, principal.permissions, api_resource()
        )
    except flow.AuthorizeError as error:
        return _redirect(
            flow.error_location(
                redirect_uri, error.error, error.description, args.get("state"), _issuer()
            )
        )
    remembered = flow.remembered_grant(
        db.session, principal, validated, config["OAUTH_REFRESH_TOKEN_MAX_AGE"]
    )
    if remembered is not None:
        grant, scopes = remembered
        code = flow.issue_code(
            db.session, grant, validated, scopes, config["OAUTH_CODE_TTL"], principal.auth_time
        )
        db.commit()
        return _redirect(
            flow.with_params(
                redirect_uri, {"code": code, "state": validated.state, "iss": _issuer()}
            )
        )
    if "none" in prompt:
        return _redirect(
            flow.error_location(
                redirect_uri,
                "consent_required",
                "The user must approve this app.",
                validated.state,
                _issuer(),
            )
        )
    request_id = flow.create_pending(
        db.session,
        principal,
        validated,
        principal.auth_time or utcnow(),
        config["OAUTH_PENDING_REQUEST_TTL"],
    )
    db.commit()
    return _redirect(
        flow.with_params(config["OAUTH_AUTHORISATION_CODE_CONSENT_URL"], {"request_id": request_id})
    )


def _consent_principal() -> Principal:
    principal = session_principal()
    if principal is None:
        raise Unauthenticated()
    return principal


@bp.get("/api/oauth/authorize/consent")
@read_only
@operation(
    "What the consent page shows for a pending request",
    tag="oauth",
    auth=True,
    query=(("request_id", "From the consent URL", True),),
    responses={
        200: s.ConsentDetails,
        400: "Unknown, expired or used request",
        401: "Not signed in",
    },
)
def consent_details() -> Response:
    principal = _consent_principal()
    request_id = request.args.get("request_id")
    if not request_id:
        raise InvalidRequest("The request_id parameter is missing.")
    details = flow.consent_details(db.session, principal, request_id, _issuer())
    response = jsonify(details)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/api/oauth/authorize/consent")
@operation(
    "Approve (optionally fewer scopes) or deny a pending request",
    tag="oauth",
    auth=True,
    body=s.ConsentDecision,
    responses={200: s.ConsentResult, 400: "Unknown request or scope", 401: "Not signed in"},
)
def consent_decide() -> Response:
    principal = _consent_principal()
    form = json_body(s.ConsentDecision)
    config = current_app.config
    status, location = flow.decide(
        db.session,
        principal,
        form.request_id,
        form.decision == "approve",
        form.scopes,
        _issuer(),
        config["OAUTH_CODE_TTL"],
    )
    db.commit()
    response = jsonify({"status": status, "location": location})
    response.headers["Cache-Control"] = "no-store"
    return response


def _precheck_protocol_request() -> None:
    """RFC 6749 §3.2 / §2.3.1: no repeated parameters and one client authentication method."""
    current = this_request()
    if current.mimetype != "application/x-www-form-urlencoded":
        raise OAuthRequestError("Send the request as application/x-www-form-urlencoded.")
    form = current.form
    for name in form:
        if len(form.getlist(name)) > 1:
            raise OAuthRequestError(f"The {name} parameter is repeated.")
    authorization = current.headers.get("Authorization", "")
    if authorization.lower().startswith("basic ") and (
        "client_secret" in form or "client_id" in form
    ):
        basic_id = basic_client_id(authorization)
        if "client_secret" in form or basic_id != form.get("client_id"):
            raise OAuthRequestError("Use one client authentication method, not several.")


@bp.errorhandler(OAuthRequestError)
def _oauth_error(error: HearthError) -> Response:
    """Protocol errors found before Authlib runs: RFC 6749 §5.2 JSON, never cached."""
    response = jsonify(error.body())
    response.status_code = error.status
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


@bp.post("/api/oauth/token")
@autocommit
@limit(TOKEN_PER_CLIENT, key_func=client_key)
@cors
@operation(
    "Token endpoint: authorization_code, refresh_token, client_credentials",
    tag="oauth",
    form=s.TokenForm,
    responses={200: s.TokenResponse, 400: "RFC 6749 §5.2 error", 401: "invalid_client"},
)
def token() -> Response:
    _precheck_protocol_request()
    form = this_request().form
    if not form.get("grant_type"):
        raise OAuthRequestError("The grant_type parameter is missing.")
    # `in` first: MultiDict.get builds a BadRequestKeyError for a missing key.
    if "resource" in form and form["resource"] != api_resource():
        raise InvalidTarget(f"The only resource here is {api_resource()}.")
    response: Response = authorization_server().create_token_response()
    db.commit()
    return response


@bp.post("/api/oauth/revoke")
@limit(TOKEN_PER_CLIENT, key_func=client_key)
@cors
@operation(
    "RFC 7009 token revocation",
    tag="oauth",
    form=s.TokenActionForm,
    responses={
        200: "Revoked, or the token was unknown",
        400: "RFC 6749 §5.2 error",
        401: "invalid_client",
    },
)
def revoke() -> Response:
    _precheck_protocol_request()
    response: Response = authorization_server().create_endpoint_response("revocation")
    db.commit()
    return response


@bp.post("/api/oauth/introspect")
@limit(TOKEN_PER_CLIENT, key_func=client_key)
@cors
@operation(
    "RFC 7662 token introspection (confidential clients, their own tokens)",
    tag="oauth",
    form=s.TokenActionForm,
    responses={200: s.Introspection, 400: "RFC 6749 §5.2 error", 401: "invalid_client"},
)
def introspect() -> Response:
    _precheck_protocol_request()
    response: Response = authorization_server().create_endpoint_response("introspection")
    response.headers["Cache-Control"] = "no-store"
    return response


def _userinfo() -> Response:
    principal = signed_in()
    if principal.via != "token":
        raise Unauthenticated(
            "Send an access token.", headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
        )
    if "openid" not in (principal.scopes or frozenset()):
        raise Forbidden(
            "The token does not carry the openid scope.",
            headers={"WWW-Authenticate": 'Bearer error="insufficient_scope", scope="openid"'},
        )
    response = jsonify(userinfo_claims(principal.info, " ".join(principal.scopes or ())))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/api/oauth/userinfo")
@read_only
@cors
@operation(
    "OIDC UserInfo (claims by scope)",
    tag="oidc",
    auth=True,
    responses={200: "Claims", 401: "No or invalid token", 403: "No openid scope"},
)
def userinfo_get() -> Response:
    return _userinfo()


@bp.post("/api/oauth/userinfo")
@cors
@operation(
    "OIDC UserInfo (claims by scope)",
    tag="oidc",
    auth=True,
    responses={200: "Claims", 401: "No or invalid token", 403: "No openid scope"},
)
def userinfo_post() -> Response:
    return _userinfo()


@bp.get("/api/oauth/jwks")
@cors
@operation("The provider's public signing keys (JWKS)", tag="oidc", responses={200: "JWK Set"})
def jwks() -> Response:
    response = jsonify({"keys": provider_keys().public_jwks()})
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


def _metadata() -> Response:
    config = current_app.config
    response = jsonify(
        metadata.authorization_server(_issuer(), config["OAUTH_DYNAMIC_REGISTRATION_ENABLED"])
    )
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.get("/.well-known/oauth-authorization-server")
@cors
@operation("RFC 8414 authorization server metadata", tag="discovery", responses={200: s.Metadata})
def oauth_metadata() -> Response:
    return _metadata()


@bp.get("/.well-known/openid-configuration")
@cors
@operation("OpenID Connect discovery", tag="discovery", responses={200: s.Metadata})
def openid_configuration() -> Response:
    return _metadata()


def _resource_metadata() -> Response:
    response = jsonify(metadata.protected_resource(_issuer()))
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


@bp.get("/.well-known/oauth-protected-resource/api")
@cors
@operation(
    "RFC 9728 protected resource metadata for the API", tag="discovery", responses={200: "Metadata"}
)
def resource_metadata() -> Response:
    return _resource_metadata()


@bp.get("/.well-known/oauth-protected-resource")
@cors
@operation("RFC 9728 protected resource metadata", tag="discovery", responses={200: "Metadata"})
def resource_metadata_root() -> Response:
    return _resource_metadata()


@bp.post("/api/oauth/register")
@limit(REGISTRATION_PER_IP)
@cors
@operation(
    "RFC 7591 dynamic client registration (when enabled)",
    tag="oauth",
    body=s.Registration,
    responses={
        201: s.RegistrationResponse,
        400: "invalid_client_metadata or invalid_redirect_uri",
        404: "Registration is disabled",
    },
)
def register() -> Response:
    if not current_app.config["OAUTH_DYNAMIC_REGISTRATION_ENABLED"]:
        raise NotFound("Dynamic client registration is disabled.")
    from app.oauth.registration import register_client

    body, status = register_client(db.session, request)
    db.commit()
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def _account_session() -> Principal:
    principal = session_principal()
    if principal is None:
        signed_in()  # 401 with the Bearer challenge when nobody is signed in
        raise Unauthenticated("Manage authorised apps from a signed-in browser session.")
    return principal


@bp.get("/api/accounts/self/authorized-apps")
@read_only
@operation(
    "Apps this account has authorised",
    tag="accounts",
    auth=True,
    responses={200: s.AuthorizedAppList, 401: "Not signed in"},
)
def authorized_apps() -> Response:
    principal = _account_session()
    items = tokens.authorized_apps(
        db.session, principal.account_id, current_app.config["OAUTH_REFRESH_TOKEN_MAX_AGE"]
    )
    response = jsonify({"items": items})
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.delete("/api/accounts/self/authorized-apps/<grant_id>")
@operation(
    "Revoke an authorised app: every token of that grant stops working",
    tag="accounts",
    auth=True,
    responses={204: "Revoked", 401: "Not signed in", 404: "No such grant"},
)
def revoke_authorized_app(grant_id: str) -> Response:
    principal = _account_session()
    tokens.revoke_authorized_app(db.session, principal.account_id, grant_id)
    db.commit()
    return Response(status=204)


def _admin() -> Principal:
    principal = signed_in()
    check(principal, Permission.ADMINISTRATOR)
    return principal


@bp.get("/api/admin/oauth/clients")
@read_only
@operation(
    "List OAuth clients",
    tag="admin",
    permission=Permission.ADMINISTRATOR,
    responses={200: s.ClientList, 401: "Not signed in", 403: "Not an administrator"},
)
def admin_list_clients() -> Response:
    _admin()
    return jsonify({"items": [clients.client_json(c) for c in clients.list_all(db.session)]})


@bp.post("/api/admin/oauth/clients")
@operation(
    "Create an OAuth client; the secret is shown once",
    tag="admin",
    permission=Permission.ADMINISTRATOR,
    body=clients.ClientFields,
    responses={
        201: s.ClientOut,
        400: "Invalid fields",
        401: "Not signed in",
        403: "Not an administrator",
    },
)
def admin_create_client() -> Response:
    _admin()
    fields = json_body(clients.ClientFields)
    client, secret = clients.create(db.session, fields)
    db.commit()
    security_event("client_created", client_id=client.id)
    response = jsonify(clients.client_json(client, secret))
    response.status_code = 201
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/api/admin/oauth/clients/<client_id>")
@read_only
@operation(
    "Read an OAuth client",
    tag="admin",
    permission=Permission.ADMINISTRATOR,
    responses={200: s.ClientOut, 404: "No such client"},
)
def admin_get_client(client_id: str) -> Response:
    _admin()
    return jsonify(clients.client_json(clients.get(db.session, client_id)))


@bp.patch("/api/admin/oauth/clients/<client_id>")
@operation(
    "Change an OAuth client's name, redirect URIs, scopes, grants or consent policy",
    tag="admin",
    permission=Permission.ADMINISTRATOR,
    body=clients.ClientChanges,
    responses={200: s.ClientOut, 400: "Invalid fields", 404: "No such client"},
)
def admin_update_client(client_id: str) -> Response:
    _admin()
    changes = json_body(clients.ClientChanges)
    client = clients.update(db.session, client_id, changes)
    db.commit()
    return jsonify(clients.client_json(client))


@bp.delete("/api/admin/oauth/clients/<client_id>")
@operation(
    "Delete an OAuth client with all its grants, codes and tokens",
    tag="admin",
    permission=Permission.ADMINISTRATOR,
    responses={204: "Deleted", 404: "No such client"},
)
def admin_delete_client(client_id: str) -> Response:
    _admin()
    clients.delete(db.session, client_id)
    db.commit()
    security_event("client_deleted", client_id=client_id)
    return Response(status=204)


@bp.post("/api/admin/oauth/clients/<client_id>/secret")
@operation(
    "Rotate a confidential client's secret; the new one is shown once",
    tag="admin",
    permission=Permission.ADMINISTRATOR,
    responses={200: s.ClientOut, 400: "Public client", 404: "No such client"},
)
def admin_rotate_secret(client_id: str) -> Response:
    _admin()
    client, secret = clients.rotate_secret(db.session, client_id)
    db.commit()
    security_event("client_rotated", client_id=client.id)
    response = jsonify(clients.client_json(client, secret))
    response.headers["Cache-Control"] = "no-store"
    return response
