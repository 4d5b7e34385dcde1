"""Upstream sign-in endpoints (SPEC §6): start, callback, the single-page-app variant, identities.

The browser callback always answers with a redirect — to the sign-in's validated `return_url`,
or to the login page — carrying `?error=<code>` when something went wrong; never a 500 and
never an unvalidated location.
"""

from __future__ import annotations

import logging
import re
import secrets
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, Response, current_app, jsonify, request

from app.accounts import service as accounts
from app.accounts.schemas import AccountOut
from app.accounts.views import set_session_cookie, stored_account_json
from app.auth import Principal, protocol_endpoint, session_principal, signed_in
from app.db import rfc3339
from app.errors import CrossOriginRejected, Forbidden, UnsupportedMediaType, ValidationFailed
from app.extensions import db
from app.federation import providers, service
from app.federation.errors import InvalidProvider, LoginFailed, QueryInvalid
from app.federation.schemas import (
    AuthorizationUrlOut,
    IdentityList,
    ProviderList,
    SpaAuthorizationUrlOut,
    SpaCallback,
    SpaQueryErrors,
)
from app.oauth.authorize import S256_CHALLENGE, with_params
from app.observability import security_event
from app.openapi import operation
from app.ratelimit import SIGNIN_PER_IP, limit
from app.requests import json_body

log = logging.getLogger("hearth.federation")
bp = Blueprint("federation", __name__)

# The browser binding: an HttpOnly cookie only the callback path ever receives.
LOGIN_COOKIE = "hearth-login"
LOGIN_COOKIE_PATH = "/api/auth/oauth"  # under PUBLIC_API_ADDRESS's own path, if it has one
_BINDING = re.compile(r"^[A-Za-z0-9_-]{43}$")
FORM_POST_FIELDS = ("code", "state", "iss", "user", "error")


def _provider(name: str | None) -> providers.Provider:
    provider = providers.registry(current_app).get(name or "")
    if provider is None:
        raise InvalidProvider()
    return provider


def _callback_url(provider: str) -> str:
    return f"{current_app.config['PUBLIC_API_ADDRESS']}/api/auth/oauth/{provider}/callback"


def _browser_principal() -> Principal:
    """Only a browser session may start a link or see sign-in methods, never a bearer token."""
    principal = signed_in()
    if principal.via != "session":
        raise Forbidden("Use a browser session to manage how you sign in.")
    return principal


def _redirect(location: str, status: int = 302) -> Response:
    response = Response(status=status, headers={"Location": location})
    response.headers["Cache-Control"] = "no-store"
    # The callback URL carries a code: keep it out of the next page's Referer.
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _provider_error(error: str) -> LoginFailed:
    """RFC 6749 §4.1.2.1 errors: only a cancellation is passed on by name."""
    if error in ("access_denied", "user_cancelled_authorize"):  # the latter is Apple's
        return LoginFailed("access_denied", "The sign-in was cancelled at the provider.")
    return LoginFailed("provider_error", "The provider could not sign you in.")


def _set_login_cookie(response: Response, binding: str) -> None:
    config = current_app.config
    response.set_cookie(
        LOGIN_COOKIE,
        binding,
        max_age=int(service.LOGIN_STATE_TTL.total_seconds()),
        path=urlsplit(config["PUBLIC_API_ADDRESS"]).path + LOGIN_COOKIE_PATH,
        domain=config["SESSION_COOKIE_DOMAIN"],
        secure=config["SESSION_COOKIE_SECURE"],
        httponly=True,
        samesite="Lax",
    )


@bp.get("/api/auth/oauth/providers")
@operation(
    "The upstream providers people can sign in with", tag="auth", responses={200: ProviderList}
)
def list_providers() -> Response:
    items = [
        {"provider": provider.name, "name": provider.display_name}
        for provider in providers.registry(current_app)
    ]
    return jsonify({"items": items})


@bp.get("/api/auth/oauth/<provider>/url")
@limit(SIGNIN_PER_IP)
@operation(
    "Start signing in (or linking) with an upstream provider",
    tag="auth",
    query=(
        ("type", "authenticate (default) or link (needs a session)", False),
        ("return_url", "Where to go afterwards: a page on the web or API origin", False),
    ),
    responses={
        200: AuthorizationUrlOut,
        400: "INVALID_PROVIDER, or an unknown type",
        401: "type=link without a session",
        403: "type=link with a bearer token",
        503: "The provider is unavailable",
    },
)
def authorization_url(provider: str) -> Response:
    upstream = _provider(provider)
    kind = request.args.get("type", "authenticate")
    if kind not in service.BROWSER_KINDS:
        raise ValidationFailed({"type": "must be authenticate or link"})
    principal = _browser_principal() if kind == "link" else None
    config = current_app.config
    binding = request.cookies.get(LOGIN_COOKIE, "")
    if not _BINDING.match(binding):
        binding = secrets.token_urlsafe(32)
    started = service.start(
        db.session,
        upstream,
        kind=kind,
        binding=binding,
        callback_url=_callback_url(upstream.name),
        return_url=service.safe_return_url(
            request.args.get("return_url"),
            config["PUBLIC_API_ADDRESS"],
            config["PUBLIC_WEB_ADDRESS"],
        ),
        account_id=principal.account_id if principal else None,
    )
    db.commit()
    response = jsonify({"url": started.url, "provider": upstream.name, "state": started.state})
    response.headers["Cache-Control"] = "no-store"
    _set_login_cookie(response, binding)
    return response


@bp.get("/api/auth/oauth/<provider>/callback")
@limit(SIGNIN_PER_IP)
@operation(
    "Where the provider sends the browser back; redirects to the sign-in's return_url",
    tag="auth",
    query=(
        ("code", "The authorization code", False),
        ("state", "The state from the authorization URL", False),
        ("iss", "RFC 9207 issuer identifier", False),
        ("error", "The provider's error code, e.g. access_denied", False),
    ),
    responses={302: "To return_url; with ?error=<code> when the sign-in failed"},
)
def callback(provider: str) -> Response:
    config = current_app.config
    return_url: str = config["OAUTH_AUTHORISATION_LOGIN_URL"]
    args = request.args
    try:
        upstream = providers.registry(current_app).get(provider)
        if upstream is None:
            raise LoginFailed("invalid_provider", "That sign-in provider is not enabled.")
        binding = request.cookies.get(LOGIN_COOKIE)
        state = args.get("state")
        if state is None and "error" in args:
            # Some providers drop the state from error responses: nothing to consume.
            raise _provider_error(args["error"])
        row = service.consume(db.session, provider, state, binding=binding)
        # Spent before the provider is asked anything: a failure below cannot be retried.
        db.commit()
        return_url = row.return_url or config["PUBLIC_WEB_ADDRESS"] + "/"
        if "error" in args:
            raise _provider_error(args["error"])
        code = args.get("code")
        if not code:
            raise LoginFailed("invalid_request", "The provider sent no authorization code.")
        assert binding is not None and state is not None
        principal = session_principal()
        account = service.complete(
            db.session,
            upstream,
            row,
            providers.Callback(
                code=code,
                redirect_uri=_callback_url(provider),
                code_verifier=service.derive_verifier(binding, state),
                nonce_hash=row.nonce_hash,
                issuer=args.get("iss"),
                extra={"user": args["user"]} if "user" in args else {},
            ),
            merge_verified_email=config["OAUTH_PROVIDER_MERGE_VERIFIED_EMAIL"],
            signed_in_account_id=principal.account_id if principal else None,
        )
        token = None
        if row.kind == "authenticate":
            token = accounts.start_session(db.session, account, config["SESSION_TTL"])
        db.commit()
    except LoginFailed as failure:
        db.rollback()
        security_event("federated_sign_in_failure", provider=provider[:40], reason=failure.error)
        return _redirect(with_params(failure.return_url or return_url, {"error": failure.error}))
    except Exception:
        # The browser is mid-redirect: a JSON 500 would strand it. Log, and send it back.
        db.rollback()
        log.exception("upstream sign-in failed", extra={"provider": provider[:40]})
        return _redirect(with_params(return_url, {"error": "server_error"}))
    response = _redirect(return_url)
    if token is not None:
        set_session_cookie(response, token)
    return response


@bp.post("/api/auth/oauth/<provider>/callback")
@protocol_endpoint
@limit(SIGNIN_PER_IP)
@operation(
    "Finish a single-page app's sign-in with its PKCE verifier (also Apple's form_post target)",
    tag="auth",
    body=SpaCallback,
    responses={
        200: AccountOut,
        303: "Apple's form_post, sent on to the GET callback",
        400: "INVALID_PROVIDER, an invalid or used state, or a wrong verifier",
        403: "Cross-site request rejected",
        415: "Neither JSON nor Apple's form_post",
        503: "The provider is unavailable",
    },
)
def callback_post(provider: str) -> Response:
    if request.mimetype == "application/x-www-form-urlencoded":
        return _form_post(provider)
    # This view is exempt from the app-wide write guard (Apple posts here cross-site), so the
    # JSON branch applies the same rule itself: no other site may drive it.
    config = current_app.config
    origin = request.headers.get("Origin")
    allowed = {config["PUBLIC_API_ADDRESS"], config["PUBLIC_WEB_ADDRESS"]}
    if (origin is not None and origin.rstrip("/") not in allowed) or request.headers.get(
        "Sec-Fetch-Site"
    ) == "cross-site":
        raise CrossOriginRejected()
    upstream = _provider(provider)
    body = json_body(SpaCallback)
    row = service.consume(db.session, upstream.name, body.state, binding=None, spa=True)
    db.commit()
    assert row.redirect_uri is not None
    # RFC 7636 §4.6, checked here too: some providers (and fakes) do not enforce PKCE.
    if service.s256(body.code_verifier) != row.verifier_hash:
        raise LoginFailed("invalid_grant", "The code_verifier does not match the code_challenge.")
    account = service.complete(
        db.session,
        upstream,
        row,
        providers.Callback(
            code=body.code,
            redirect_uri=row.redirect_uri,
            code_verifier=body.code_verifier,
            nonce_hash=row.nonce_hash,
            issuer=body.iss,
        ),
        merge_verified_email=config["OAUTH_PROVIDER_MERGE_VERIFIED_EMAIL"],
        signed_in_account_id=None,
    )
    token = accounts.start_session(db.session, account, config["SESSION_TTL"])
    db.commit()
    response = jsonify(stored_account_json(account))
    response.headers["Cache-Control"] = "no-store"
    set_session_cookie(response, token)
    return response


def _form_post(provider: str) -> Response:
    """Apple answers with a cross-site POST, which carries no SameSite=Lax cookie; a 303 turns it
    into a top-level GET of the same callback, which does, so the binding check still applies."""
    upstream = providers.registry(current_app).get(provider)
    if upstream is None or upstream.response_mode != "form_post":
        raise UnsupportedMediaType("Send this request as application/json.")
    fields = {name: request.form[name] for name in FORM_POST_FIELDS if name in request.form}
    return _redirect(f"{_callback_url(upstream.name)}?{urlencode(fields)}", status=303)


@bp.get("/api/oauth/auth-url")
@limit(SIGNIN_PER_IP)
@operation(
    "Single-page apps: an upstream authorization URL for the app's own PKCE challenge",
    tag="auth",
    query=(
        ("provider", "An enabled provider", True),
        ("redirect_uri", "One of OAUTH_SPA_REDIRECT_URIS", True),
        ("code_challenge", "base64url(SHA-256(code_verifier))", True),
        ("code_challenge_method", "S256", True),
    ),
    responses={
        200: SpaAuthorizationUrlOut,
        400: "INVALID_PROVIDER",
        422: SpaQueryErrors,
        503: "The provider is unavailable",
    },
)
def spa_authorization_url() -> Response:
    args = request.args
    upstream = _provider(args.get("provider"))
    problems = []
    redirect_uri = args.get("redirect_uri", "")
    if redirect_uri not in current_app.config["OAUTH_SPA_REDIRECT_URIS"]:
        problems.append(("redirect_uri", "must be one of the registered redirect URIs"))
    challenge = args.get("code_challenge", "")
    if not S256_CHALLENGE.match(challenge):
        problems.append(("code_challenge", "must be a base64url SHA-256 (43 characters)"))
    if args.get("code_challenge_method") != "S256":
        problems.append(("code_challenge_method", "must be S256"))
    if problems:
        raise QueryInvalid(problems)
    url = service.start_spa(db.session, upstream, redirect_uri=redirect_uri, challenge=challenge)
    db.commit()
    response = jsonify({"url": url})
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/api/accounts/self/identities")
@operation(
    "The upstream identities linked to the signed-in account",
    tag="accounts",
    auth=True,
    responses={200: IdentityList, 403: "Bearer tokens cannot read sign-in methods"},
)
def list_identities() -> Response:
    principal = _browser_principal()
    items = [
        {
            "provider": identity.provider,
            "subject": identity.subject,
            "created_at": rfc3339(identity.created_at),
        }
        for identity in service.identities(db.session, principal.account_id)
    ]
    response = jsonify({"items": items})
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.delete("/api/accounts/self/identities/<provider>")
@operation(
    "Unlink an upstream identity (refused for the last way to sign in)",
    tag="accounts",
    auth=True,
    responses={
        204: "Unlinked",
        404: "No identity from that provider is linked",
        409: "It is the account's last way to sign in",
    },
)
def unlink_identity(provider: str) -> Response:
    principal = _browser_principal()
    service.unlink(db.session, principal.account_id, provider)
    db.commit()
    return Response(status=204)
