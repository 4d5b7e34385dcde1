"""The provider's endpoints: token responses, introspection, revocation, discovery, JWKS, ID tokens,
userinfo, CORS, client credentials, the admin client API, authorised apps, remembered consent,
configuration and cleanup (SPEC §1, §4)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import event, func, select, update

from app.auth import sha256
from app.db import rfc3339, utcnow
from app.extensions import Database, db
from app.models import (
    AuthorizationCode,
    AuthSession,
    Grant,
    OAuthClient,
    PendingRequest,
    Token,
)
from app.oauth.keys import _generate_pem
from tests.conftest import p256_pem
from tests.integration.oauth.conftest import (
    AUTHORIZE,
    CONSENT,
    CONSENT_URL,
    DEFAULT_SCOPES,
    INTROSPECT,
    INVALID_TOKEN_CHALLENGE,
    ISSUER,
    REDIRECT_URI,
    RESOURCE,
    RESOURCE_METADATA_URL,
    REVOKE,
    SELF,
    STATE,
    TOKEN,
    OAuthActions,
    Registered,
    assert_alive,
    assert_dead,
    assert_error,
    assert_redirect_error,
    assert_refresh_refused,
    assert_token_error,
    basic,
    bearer,
    expire_all,
    params,
    pkce_pair,
    without_query,
)

ADMIN_CLIENTS = "/api/admin/oauth/clients"
APPS = "/api/accounts/self/authorized-apps"


def unverified_claims(token: str) -> dict[str, object]:
    payload = token.split(".")[1]
    padded = payload + "=" * (-len(payload) % 4)
    claims: dict[str, object] = json.loads(base64.urlsafe_b64decode(padded))
    return claims


# --- Token responses and errors (RFC 6749 §5.1, §5.2) --------------------------------------------


def test_every_token_response_is_no_store(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    code = oauth.redeem(client, oauth.approve(browser, client))
    assert code.status_code == 200
    assert code.headers["Cache-Control"] == "no-store"
    assert code.headers["Pragma"] == "no-cache"
    refresh = oauth.refresh(client, code.get_json()["refresh_token"])
    assert refresh.status_code == 200
    assert refresh.headers["Cache-Control"] == "no-store"

    oauth.auth.signup("bob")
    machine = oauth.make_client(
        name="Machine", scopes="CREATE_POST", grants=["client_credentials"], owner="bob"
    )
    credentials = oauth.token(machine, {"grant_type": "client_credentials"})
    assert credentials.status_code == 200
    assert credentials.headers["Cache-Control"] == "no-store"


def test_authorization_code_token_response_shape(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    response = oauth.redeem(client, oauth.approve(browser, client))
    body = response.get_json()
    assert response.mimetype == "application/json"
    assert set(body) == {
        "token_type",
        "access_token",
        "expires_in",
        "scope",
        "refresh_token",
        "id_token",
    }
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert body["scope"] == DEFAULT_SCOPES
    assert len(body["refresh_token"]) >= 43


@pytest.mark.parametrize(
    ("path", "data", "error"),
    [
        pytest.param(
            TOKEN,
            {"grant_type": "password", "username": "alice", "password": "x"},
            "unsupported_grant_type",
            id="password-grant",
        ),
        pytest.param(
            TOKEN,
            {"grant_type": "implicit"},
            "unsupported_grant_type",
            id="implicit-grant",
        ),
        pytest.param(
            TOKEN,
            {"code": "abc"},
            "invalid_request",  # RFC 6749 §5.2: a missing required parameter
            id="missing-grant-type",
        ),
        pytest.param(
            TOKEN, {"grant_type": "authorization_code"}, "invalid_request", id="missing-code"
        ),
        pytest.param(
            TOKEN,
            {"grant_type": "authorization_code", "code": "made-up"},
            "invalid_grant",
            id="unknown-code",
        ),
        pytest.param(
            TOKEN, {"grant_type": "refresh_token"}, "invalid_request", id="missing-refresh-token"
        ),
        pytest.param(
            TOKEN,
            {"grant_type": "refresh_token", "refresh_token": "made-up"},
            "invalid_grant",
            id="unknown-refresh-token",
        ),
        pytest.param(
            REVOKE,
            {},
            "invalid_request",
            id="revoke-missing-token",
        ),
        pytest.param(
            INTROSPECT,
            {},
            "invalid_request",
            id="introspect-missing-token",
        ),
    ],
)
def test_protocol_errors_are_rfc6749_json_with_a_description_and_no_store(
    oauth: OAuthActions, path: str, data: dict[str, str], error: str
) -> None:
    client = oauth.make_client()
    response = oauth.token(client, data, path=path)
    assert_token_error(response, 400, error)


@pytest.mark.parametrize("path", [REVOKE, INTROSPECT])
def test_unknown_token_type_hint_is_not_an_authentication_failure(
    oauth: OAuthActions, path: str
) -> None:
    """RFC 7009 §2.1 / RFC 7662 §2.1: either search every type (200) or answer
    unsupported_token_type as a §5.2 error (400); never 401 for an authenticated client."""
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, client)
    response = oauth.token(
        client, {"token": tokens["access_token"], "token_type_hint": "id_token"}, path=path
    )
    if response.status_code == 400:
        assert_token_error(response, 400, "unsupported_token_type")
    else:
        assert response.status_code == 200, response.get_json()


def test_refused_refresh_token_error_has_a_description(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    response = oauth.refresh(client, "made-up")
    assert_token_error(
        response, 400, "invalid_grant", "The refresh token is invalid, expired or revoked."
    )


def test_token_endpoint_requires_a_form_body(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    response = oauth.app.test_client().post(
        TOKEN,
        json={"grant_type": "client_credentials"},
        headers=basic(client.client_id, client.client_secret or ""),
    )
    assert_token_error(
        response,
        400,
        "invalid_request",
        "Send the request as application/x-www-form-urlencoded.",
    )


def test_token_endpoint_refuses_get(oauth: OAuthActions) -> None:
    response = oauth.app.test_client().get(TOKEN, query_string={"grant_type": "refresh_token"})
    assert response.status_code == 405


def test_invalid_client_with_basic_is_401_with_www_authenticate(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    for headers in (
        basic(client.client_id, "hsec_wrong"),
        basic("hc_unknown", "hsec_wrong"),
    ):
        response = oauth.token(
            client,
            {"grant_type": "refresh_token", "refresh_token": "x"},
            auth="",
            headers=headers,
        )
        assert_token_error(response, 401, "invalid_client")
        assert response.headers["WWW-Authenticate"].startswith('Basic error="invalid_client"')


def test_unknown_client_with_body_credentials_is_invalid_client(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    response = oauth.token(
        client,
        {
            "grant_type": "refresh_token",
            "refresh_token": "x",
            "client_id": "hc_unknown",
            "client_secret": "hsec_x",
        },
        auth="",
    )
    body = response.get_json()
    assert response.status_code in (400, 401)
    assert body["error"] == "invalid_client"
    assert response.headers["Cache-Control"] == "no-store"


def test_client_secret_post_client_authenticates_in_the_body(oauth: OAuthActions) -> None:
    client = oauth.make_client(auth_method="client_secret_post")
    browser = oauth.auth.signup("alice")
    assert oauth.tokens(browser, client)["token_type"] == "Bearer"


def test_public_client_redeems_with_pkce_and_client_id_only(oauth: OAuthActions) -> None:
    client = oauth.make_client(public=True)
    assert client.client_secret is None
    assert client.token_endpoint_auth_method == "none"
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, client)
    refreshed = oauth.refresh(client, tokens["refresh_token"])
    assert refreshed.status_code == 200


def test_token_missing_redirect_uri_is_invalid_grant(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    authorized = oauth.approve(browser, client)
    response = oauth.redeem(client, authorized, redirect_uri="")
    assert_token_error(response, 400, "invalid_grant")


def test_refresh_token_past_its_lifetime_is_invalid_grant(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, client)
    with oauth.app.app_context():
        db.session.execute(
            update(Token)
            .where(Token.kind == "refresh")
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        db.session.commit()
    assert_refresh_refused(oauth.refresh(client, tokens["refresh_token"]))


def test_refresh_chain_ends_at_the_absolute_max_age(
    make_oauth: Callable[..., OAuthActions],
) -> None:
    oauth = make_oauth(OAUTH_REFRESH_TOKEN_MAX_AGE=timedelta(hours=1))
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, client)
    with oauth.app.app_context():
        refresh = db.session.scalars(select(Token).where(Token.kind == "refresh")).one()
        grant = db.session.get(Grant, refresh.grant_id)
        assert grant is not None
        assert refresh.expires_at == grant.created_at + timedelta(hours=1)
        db.session.execute(
            update(Grant).values(created_at=utcnow() - timedelta(hours=1, seconds=1))
        )
        db.session.commit()
    assert_refresh_refused(oauth.refresh(client, tokens["refresh_token"]))


def test_lifetimes_follow_configuration(make_oauth: Callable[..., OAuthActions]) -> None:
    oauth = make_oauth(
        OAUTH_ACCESS_TOKEN_TTL=timedelta(minutes=5), OAUTH_REFRESH_TOKEN_TTL=timedelta(hours=2)
    )
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, client)
    assert tokens["expires_in"] == 300
    claims = unverified_claims(tokens["access_token"])
    assert claims["exp"] == claims["iat"] + 300  # type: ignore[operator]
    with oauth.app.app_context():
        refresh = db.session.scalars(select(Token).where(Token.kind == "refresh")).one()
        assert refresh.expires_at - refresh.created_at == timedelta(hours=2)


# --- Access tokens (RFC 9068) --------------------------------------------------------------------


def test_access_token_is_an_rfc9068_jwt(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    me = browser.get(SELF).get_json()
    tokens = oauth.tokens(browser, client)
    jwks = oauth.app.test_client().get("/api/oauth/jwks").get_json()
    decoded = jwt.decode(tokens["access_token"], KeySet.import_key_set(jwks))
    assert decoded.header["typ"] == "at+jwt"
    # ES256 by default: the JWKS' second key, derived from the configured RSA key.
    assert decoded.header["alg"] == "ES256"
    assert decoded.header["kid"] == jwks["keys"][1]["kid"]
    claims = decoded.claims
    assert set(claims) >= {"iss", "sub", "aud", "client_id", "scope", "jti", "iat", "exp"}
    assert claims["iss"] == ISSUER
    assert claims["sub"] == me["id"]
    assert claims["aud"] == RESOURCE
    assert claims["client_id"] == client.client_id
    assert claims["scope"] == DEFAULT_SCOPES
    with oauth.app.app_context():
        row = db.session.get(Token, claims["jti"])
        assert row is not None and row.kind == "access"
        # Refresh tokens are stored only as their hash.
        stored = db.session.scalars(select(Token.token_hash).where(Token.kind == "refresh")).all()
        assert stored == [sha256(tokens["refresh_token"])]


def test_access_token_audience_is_the_requested_resource(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, client, resource=RESOURCE)
    assert unverified_claims(tokens["access_token"])["aud"] == RESOURCE
    assert_alive(oauth.app, tokens["access_token"])


def test_protected_route_without_credentials_points_at_resource_metadata(
    oauth: OAuthActions,
) -> None:
    response = oauth.app.test_client().get(SELF)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == (
        f'Bearer resource_metadata="{RESOURCE_METADATA_URL}"'
    )


# --- Introspection (RFC 7662) --------------------------------------------------------------------


def test_introspection_shows_a_confidential_clients_own_token(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    me = browser.get(SELF).get_json()
    tokens = oauth.tokens(browser, client)
    claims = unverified_claims(tokens["access_token"])
    response = oauth.token(client, {"token": tokens["access_token"]}, path=INTROSPECT)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.get_json() == {
        "active": True,
        "scope": DEFAULT_SCOPES,
        "client_id": client.client_id,
        "token_type": "Bearer",
        "exp": claims["exp"],
        "iat": claims["iat"],
        "iss": ISSUER,
        "aud": RESOURCE,
        "sub": me["id"],
        "username": "alice",
        "jti": claims["jti"],
    }
    refresh = oauth.token(
        client,
        {"token": tokens["refresh_token"], "token_type_hint": "refresh_token"},
        path=INTROSPECT,
    )
    body = refresh.get_json()
    assert body["active"] is True
    assert body["client_id"] == client.client_id
    assert body["username"] == "alice"


def test_introspection_of_another_clients_token_is_inactive(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    other = oauth.make_client(name="Other")
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, client)
    for token in (tokens["access_token"], tokens["refresh_token"]):
        response = oauth.token(other, {"token": token}, path=INTROSPECT)
        assert response.status_code == 200
        assert response.get_json() == {"active": False}


def test_public_client_cannot_introspect(oauth: OAuthActions) -> None:
    client = oauth.make_client(public=True)
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, client)
    response = oauth.token(client, {"token": tokens["access_token"]}, path=INTROSPECT)
    assert_error(response, 401, "invalid_client")


def test_introspection_needs_client_authentication(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, client)
    response = oauth.token(client, {"token": tokens["access_token"]}, auth="", path=INTROSPECT)
    assert_error(response, 401, "invalid_client")


@pytest.mark.parametrize("how", ["revoked", "expired", "rotated", "unknown", "grant_revoked"])
def test_introspection_of_dead_tokens_is_inactive(oauth: OAuthActions, how: str) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, client)
    token = tokens["access_token"]
    if how == "revoked":
        assert oauth.token(client, {"token": token}, path=REVOKE).status_code == 200
    elif how == "expired":
        expire_all(oauth.app, Token)
    elif how == "rotated":
        token = tokens["refresh_token"]
        assert oauth.refresh(client, token).status_code == 200
    elif how == "unknown":
        token = "made-up-token"
    else:
        grant_id = browser.get(APPS).get_json()["items"][0]["grant_id"]
        assert browser.delete(f"{APPS}/{grant_id}").status_code == 204
    response = oauth.token(client, {"token": token}, path=INTROSPECT)
    assert response.status_code == 200
    assert response.get_json() == {"active": False}


# --- Revocation (RFC 7009) -----------------------------------------------------------------------


def test_revocation_of_an_unknown_token_is_200(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    for hint in ("access_token", "refresh_token", None):
        data = {"token": "never-issued"} | ({"token_type_hint": hint} if hint else {})
        response = oauth.token(client, data, path=REVOKE)
        assert response.status_code == 200
        assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_revocation_of_another_clients_token_is_200_and_leaves_it_working(
    oauth: OAuthActions,
) -> None:
    client = oauth.make_client()
    other = oauth.make_client(name="Other")
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, client)
    response = oauth.token(other, {"token": tokens["access_token"]}, path=REVOKE)
    assert response.status_code == 200
    assert_alive(oauth.app, tokens["access_token"])


def test_revocation_needs_client_authentication(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, client)
    response = oauth.token(client, {"token": tokens["access_token"]}, auth="none", path=REVOKE)
    assert_error(response, 401, "invalid_client")
    assert_alive(oauth.app, tokens["access_token"])


def test_public_client_revokes_its_own_refresh_token(oauth: OAuthActions) -> None:
    client = oauth.make_client(public=True)
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, client)
    response = oauth.token(client, {"token": tokens["refresh_token"]}, path=REVOKE)
    assert response.status_code == 200
    assert_dead(oauth.app, tokens["access_token"])
    assert_refresh_refused(oauth.refresh(client, tokens["refresh_token"]))


# --- Discovery, JWKS, ID tokens, userinfo --------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"]
)
def test_authorization_server_metadata(oauth: OAuthActions, path: str) -> None:
    response = oauth.app.test_client().get(path)
    assert response.status_code == 200
    document = response.get_json()
    assert document["issuer"] == ISSUER
    assert document["authorization_endpoint"] == f"{ISSUER}/api/oauth/authorize"
    assert document["token_endpoint"] == f"{ISSUER}/api/oauth/token"
    assert document["revocation_endpoint"] == f"{ISSUER}/api/oauth/revoke"
    assert document["introspection_endpoint"] == f"{ISSUER}/api/oauth/introspect"
    assert document["userinfo_endpoint"] == f"{ISSUER}/api/oauth/userinfo"
    assert document["jwks_uri"] == f"{ISSUER}/api/oauth/jwks"
    assert document["authorization_response_iss_parameter_supported"] is True
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["response_types_supported"] == ["code"]
    assert set(document["grant_types_supported"]) == {
        "authorization_code",
        "refresh_token",
        "client_credentials",
    }
    assert set(document["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
        "none",
    }
    assert "none" not in document["introspection_endpoint_auth_methods_supported"]
    assert {"openid", "profile", "email", "offline_access", "ADMINISTRATOR"} <= set(
        document["scopes_supported"]
    )
    assert "registration_endpoint" not in document


def test_metadata_advertises_registration_only_when_enabled(
    make_oauth: Callable[..., OAuthActions],
) -> None:
    oauth = make_oauth(OAUTH_DYNAMIC_REGISTRATION_ENABLED=True)
    document = oauth.app.test_client().get("/.well-known/oauth-authorization-server").get_json()
    assert document["registration_endpoint"] == f"{ISSUER}/api/oauth/register"


def test_issuer_follows_public_api_address(make_oauth: Callable[..., OAuthActions]) -> None:
    oauth = make_oauth(PUBLIC_API_ADDRESS="https://forum.example")
    api = oauth.app.test_client()
    document = api.get("/.well-known/openid-configuration").get_json()
    assert document["issuer"] == "https://forum.example"
    assert document["token_endpoint"] == "https://forum.example/api/oauth/token"
    resource = api.get("/.well-known/oauth-protected-resource/api").get_json()
    assert resource["resource"] == "https://forum.example/api"
    assert resource["authorization_servers"] == ["https://forum.example"]


@pytest.mark.parametrize(
    "path", ["/.well-known/oauth-protected-resource/api", "/.well-known/oauth-protected-resource"]
)
def test_protected_resource_metadata(oauth: OAuthActions, path: str) -> None:
    response = oauth.app.test_client().get(path)
    assert response.status_code == 200
    document = response.get_json()
    assert document["resource"] == RESOURCE
    assert document["authorization_servers"] == [ISSUER]
    assert document["bearer_methods_supported"] == ["header"]


def test_jwks_publishes_the_id_token_and_access_token_public_keys(oauth: OAuthActions) -> None:
    response = oauth.app.test_client().get("/api/oauth/jwks")
    assert response.status_code == 200
    id_key, access_key = response.get_json()["keys"]
    assert id_key["kty"] == "RSA"
    assert id_key["alg"] == "RS256"
    assert access_key["kty"] == "EC"
    assert access_key["crv"] == "P-256"
    assert access_key["alg"] == "ES256"
    for key in (id_key, access_key):
        assert key["use"] == "sig"
        assert key["kid"]
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)
    assert id_key["kid"] != access_key["kid"]


def _jwks(oauth: OAuthActions) -> list[dict[str, Any]]:
    keys: list[dict[str, Any]] = oauth.app.test_client().get("/api/oauth/jwks").get_json()["keys"]
    return keys


def test_access_token_key_is_derived_from_the_configured_key_on_every_node(
    make_oauth: Callable[..., OAuthActions],
) -> None:
    """Two deployments (or workers) with one OAUTH_SIGNING_KEY publish the same ES256 key, so a
    token minted on one validates on the other; another RSA key derives another P-256 key."""
    first, second = make_oauth(), make_oauth()
    assert _jwks(first) == _jwks(second)
    client = first.make_client()
    tokens = first.tokens(first.auth.signup("alice"), client)
    assert_alive(second.app, tokens["access_token"])
    other = make_oauth(OAUTH_SIGNING_KEY=_generate_pem())
    assert _jwks(other)[1]["kid"] != _jwks(first)[1]["kid"]
    assert _jwks(other)[1]["x"] != _jwks(first)[1]["x"]


def test_access_tokens_signed_rs256_keep_working_after_switching_to_es256(
    make_oauth: Callable[..., OAuthActions],
) -> None:
    """An upgrade (or a switch of OAUTH_ACCESS_TOKEN_ALG) does not strand live access tokens:
    they stay valid, introspectable and revocable until they expire."""
    before = make_oauth(OAUTH_ACCESS_TOKEN_ALG="RS256")
    client = before.make_client()
    minted = before.tokens(before.auth.signup("alice"), client)["access_token"]
    after = make_oauth()
    assert jwt.decode(minted, KeySet.import_key_set({"keys": _jwks(after)})).header["alg"] == (
        "RS256"
    )

    assert_alive(after.app, minted)
    introspected = after.token(client, {"token": minted}, path=INTROSPECT)
    assert introspected.get_json()["active"] is True
    assert after.token(client, {"token": minted}, path=REVOKE).status_code == 200
    assert_dead(after.app, minted)
    assert after.token(client, {"token": minted}, path=INTROSPECT).get_json() == {"active": False}


def test_rs256_access_tokens_on_request(make_oauth: Callable[..., OAuthActions]) -> None:
    oauth = make_oauth(OAUTH_ACCESS_TOKEN_ALG="RS256")
    jwks = oauth.app.test_client().get("/api/oauth/jwks").get_json()
    assert [key["alg"] for key in jwks["keys"]] == ["RS256"]
    tokens = oauth.tokens(oauth.auth.signup("alice"), oauth.make_client())
    decoded = jwt.decode(tokens["access_token"], KeySet.import_key_set(jwks))
    assert decoded.header["alg"] == "RS256"
    assert decoded.header["kid"] == jwks["keys"][0]["kid"]
    assert_alive(oauth.app, tokens["access_token"])


def test_id_token_validates_with_the_jwks(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    me = browser.get(SELF).get_json()
    tokens = oauth.tokens(browser, client, nonce="nonce-123")
    jwks = oauth.app.test_client().get("/api/oauth/jwks").get_json()
    decoded = jwt.decode(tokens["id_token"], KeySet.import_key_set(jwks))
    claims = decoded.claims
    assert decoded.header["kid"] == jwks["keys"][0]["kid"]
    assert claims["iss"] == ISSUER
    assert claims["aud"] == [client.client_id]
    assert claims["sub"] == me["id"]
    assert claims["nonce"] == "nonce-123"
    assert isinstance(claims["auth_time"], int)
    assert claims["auth_time"] <= claims["iat"] < claims["exp"]
    digest = hashlib.sha256(tokens["access_token"].encode()).digest()
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()


def test_id_token_only_with_openid(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, client, scope="offline_access CREATE_POST")
    assert "id_token" not in tokens
    refreshed = oauth.refresh(client, tokens["refresh_token"]).get_json()
    assert "id_token" not in refreshed


@pytest.mark.parametrize(
    ("scope", "claims"),
    [
        ("openid", {"sub"}),
        ("openid profile", {"sub", "preferred_username", "name"}),
        ("openid email", {"sub", "email", "email_verified"}),
        ("openid profile email", {"sub", "preferred_username", "name", "email", "email_verified"}),
    ],
)
def test_userinfo_claims_follow_scope(oauth: OAuthActions, scope: str, claims: set[str]) -> None:
    client = oauth.make_client()
    browser = oauth.app.test_client()
    response = browser.post(
        "/api/auth/password/signup",
        json={"handle": "alice", "password": "correct-horse-battery", "email": "a@example.org"},
    )
    account_id = response.get_json()["id"]
    tokens = oauth.tokens(browser, client, scope=scope)
    expected = {
        "sub": account_id,
        "preferred_username": "alice",
        "name": "alice",
        "email": "a@example.org",
        "email_verified": False,
    }
    for method in ("get", "post"):
        response = getattr(oauth.app.test_client(), method)(
            "/api/oauth/userinfo", headers=bearer(tokens["access_token"])
        )
        assert response.status_code == 200
        assert response.get_json() == {k: v for k, v in expected.items() if k in claims}
        assert response.headers["Cache-Control"] == "no-store"


def test_userinfo_needs_the_openid_scope(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, client, scope="profile CREATE_POST")
    response = oauth.app.test_client().get(
        "/api/oauth/userinfo", headers=bearer(tokens["access_token"])
    )
    assert response.status_code == 403
    assert response.headers["WWW-Authenticate"].startswith(
        'Bearer error="insufficient_scope", scope="openid"'
    )


def test_userinfo_refuses_the_session_cookie_and_dead_tokens(oauth: OAuthActions) -> None:
    browser = oauth.auth.signup("alice")
    assert browser.get("/api/oauth/userinfo").status_code == 401
    anonymous = oauth.app.test_client().get("/api/oauth/userinfo")
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == (
        f'Bearer resource_metadata="{RESOURCE_METADATA_URL}"'
    )
    forged = oauth.app.test_client().get("/api/oauth/userinfo", headers=bearer("not-a-token"))
    assert forged.status_code == 401
    assert forged.headers["WWW-Authenticate"] == INVALID_TOKEN_CHALLENGE


# --- CORS ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", TOKEN),
        ("post", REVOKE),
        ("post", INTROSPECT),
        ("get", "/api/oauth/jwks"),
        ("get", "/api/oauth/userinfo"),
        ("get", "/.well-known/oauth-authorization-server"),
        ("get", "/.well-known/openid-configuration"),
        ("get", "/.well-known/oauth-protected-resource/api"),
        ("post", "/api/oauth/register"),
    ],
)
def test_protocol_endpoints_allow_any_origin(
    make_oauth: Callable[..., OAuthActions], method: str, path: str
) -> None:
    oauth = make_oauth(OAUTH_DYNAMIC_REGISTRATION_ENABLED=True)
    api = oauth.app.test_client()
    origin = {"Origin": "https://spa.example"}
    response = getattr(api, method)(path, headers=origin)
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    preflight = api.options(
        path,
        headers={
            **origin,
            "Access-Control-Request-Method": method.upper(),
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert preflight.status_code in (200, 204)
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert method.upper() in preflight.headers["Access-Control-Allow-Methods"]
    allowed = preflight.headers["Access-Control-Allow-Headers"].lower()
    assert "authorization" in allowed and "content-type" in allowed


def test_token_error_responses_allow_any_origin(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    response = oauth.token(
        client,
        {"grant_type": "refresh_token", "refresh_token": "x"},
        auth="",
        headers={"Origin": "https://spa.example", **basic(client.client_id, "wrong")},
    )
    assert response.status_code == 401
    assert response.headers["Access-Control-Allow-Origin"] == "*"


def test_browser_endpoints_send_no_cors_headers(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    origin = {"Origin": "https://spa.example"}
    authorize = browser.get(
        f"{AUTHORIZE}?{urlencode(oauth.authorize_query(client))}", headers=origin
    )
    assert authorize.status_code == 302
    request_id = params(authorize.headers["Location"])["request_id"]
    responses = [
        authorize,
        browser.get(CONSENT, query_string={"request_id": request_id}, headers=origin),
        browser.options(AUTHORIZE, headers={**origin, "Access-Control-Request-Method": "GET"}),
        browser.options(CONSENT, headers={**origin, "Access-Control-Request-Method": "POST"}),
        browser.get(APPS, headers=origin),
    ]
    for response in responses:
        assert "Access-Control-Allow-Origin" not in response.headers
        assert "Access-Control-Allow-Credentials" not in response.headers


def test_cross_site_page_cannot_answer_consent(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    request_id, _ = oauth.start(browser, client)
    body = {"request_id": request_id, "decision": "approve"}
    form = browser.post(CONSENT, data=body)
    assert form.status_code == 415
    evil = browser.post(CONSENT, json=body, headers={"Origin": "https://evil.example"})
    assert evil.status_code == 403
    assert evil.get_json()["error"] == "cross_origin_request"
    fetch = browser.post(CONSENT, json=body, headers={"Sec-Fetch-Site": "cross-site"})
    assert fetch.status_code == 403
    web = browser.post(CONSENT, json=body, headers={"Origin": "http://localhost:3000"})
    assert web.status_code == 200


# --- client_credentials --------------------------------------------------------------------------


def test_client_credentials_acts_as_the_owner_within_allowed_scopes(oauth: OAuthActions) -> None:
    bob = oauth.auth.signup("bob")
    bob_id = bob.get(SELF).get_json()["id"]
    client = oauth.make_client(
        name="Machine",
        scopes="openid READ_PUBLISHED_THREADS CREATE_POST MANAGE_POSTS",
        grants=["client_credentials"],
        owner="bob",
    )
    response = oauth.token(client, {"grant_type": "client_credentials"})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["scope"] == "READ_PUBLISHED_THREADS CREATE_POST"
    assert "refresh_token" not in body
    assert "id_token" not in body
    me = assert_alive(oauth.app, body["access_token"])
    assert me["id"] == bob_id
    assert me["permissions"] == ["READ_PUBLISHED_THREADS", "CREATE_POST"]
    claims = unverified_claims(body["access_token"])
    assert claims["sub"] == bob_id
    assert claims["client_id"] == client.client_id

    narrow = oauth.token(client, {"grant_type": "client_credentials", "scope": "CREATE_POST"})
    assert narrow.get_json()["scope"] == "CREATE_POST"
    beyond = oauth.token(client, {"grant_type": "client_credentials", "scope": "MANAGE_POSTS"})
    assert_token_error(beyond, 400, "invalid_scope")
    outside = oauth.token(
        client, {"grant_type": "client_credentials", "scope": "MANAGE_CATEGORIES"}
    )
    assert_token_error(outside, 400, "invalid_scope")


def test_client_credentials_without_an_owner_is_unauthorized_client(oauth: OAuthActions) -> None:
    oauth.auth.signup("bob")
    client = oauth.make_client(
        name="Machine", scopes="CREATE_POST", grants=["client_credentials"], owner="bob"
    )
    with oauth.app.app_context():
        db.session.execute(update(OAuthClient).values(owner_id=None))
        db.session.commit()
    response = oauth.token(client, {"grant_type": "client_credentials"})
    assert_token_error(response, 400, "unauthorized_client")


def test_client_credentials_needs_the_grant(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    response = oauth.token(client, {"grant_type": "client_credentials"})
    assert_token_error(response, 400, "unauthorized_client")


def test_client_credentials_refuses_public_clients(oauth: OAuthActions) -> None:
    client = oauth.make_client(public=True)
    response = oauth.token(client, {"grant_type": "client_credentials"})
    assert_token_error(response, 401, "invalid_client")


def test_public_client_with_client_credentials_cannot_be_created(oauth: OAuthActions) -> None:
    oauth.auth.signup("bob")
    result = oauth.app.test_cli_runner().invoke(
        args=[
            "clients",
            "create",
            "--name",
            "X",
            "--public",
            "--grant",
            "client_credentials",
            "--owner",
            "bob",
        ]
    )
    assert result.exit_code != 0
    assert "public clients cannot use client_credentials" in result.output


# --- Admin client API ----------------------------------------------------------------------------


def _create(admin: FlaskClient, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "Admin App",
        "redirect_uris": [REDIRECT_URI],
        "scopes": DEFAULT_SCOPES,
    }
    body.update(fields)
    response = admin.post(ADMIN_CLIENTS, json=body)
    assert response.status_code == 201, response.get_json()
    created: dict[str, Any] = response.get_json()
    return created


def _registered(body: dict[str, Any]) -> Registered:
    """The admin API's answer in the shape the CLI prints."""
    return Registered(
        client_id=body["client_id"],
        client_secret=body.get("client_secret"),
        token_endpoint_auth_method=body["token_endpoint_auth_method"],
        redirect_uris=body["redirect_uris"],
        scopes=body["scopes"],
        grants=body["grants"],
        scope_policy=body["scope_policy"],
    )


def test_admin_creates_a_client_and_sees_the_secret_once(oauth: OAuthActions) -> None:
    admin = oauth.auth.admin("root")
    response = admin.post(
        ADMIN_CLIENTS,
        json={"name": "Admin App", "redirect_uris": [REDIRECT_URI], "scopes": "openid CREATE_POST"},
    )
    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    secret = body["client_secret"]
    assert secret.startswith("hsec_")
    assert len(secret) >= len("hsec_") + 43  # ≥ 256 random bits
    assert body["client_id"].startswith("hc_")
    assert body["public"] is False
    assert body["token_endpoint_auth_method"] == "client_secret_basic"
    assert body["grants"] == ["authorization_code", "refresh_token"]
    assert body["scope_policy"] == "explicit"
    assert body["scopes"] == ["openid", "CREATE_POST"]

    read = admin.get(f"{ADMIN_CLIENTS}/{body['client_id']}").get_json()
    assert "client_secret" not in read
    listed = admin.get(ADMIN_CLIENTS).get_json()["items"]
    assert [item["client_id"] for item in listed] == [body["client_id"]]
    assert "client_secret" not in listed[0]
    with oauth.app.app_context():
        stored = db.session.get(OAuthClient, body["client_id"])
        assert stored is not None
        assert stored.secret_hash == sha256(secret)


def test_rotating_the_secret_invalidates_the_old_one(oauth: OAuthActions) -> None:
    admin = oauth.auth.admin("root")
    created = _registered(_create(admin))
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, created)
    rotated = admin.post(f"{ADMIN_CLIENTS}/{created.client_id}/secret", json={})
    assert rotated.status_code == 200
    assert rotated.headers["Cache-Control"] == "no-store"
    new_secret = rotated.get_json()["client_secret"]
    assert new_secret.startswith("hsec_")
    assert new_secret != created.client_secret
    assert rotated.get_json()["secret_rotated_at"] is not None

    old = oauth.refresh(created, tokens["refresh_token"])
    assert_token_error(old, 401, "invalid_client")
    renewed = Registered(**{**created.__dict__, "client_secret": new_secret})
    assert oauth.refresh(renewed, tokens["refresh_token"]).status_code == 200


def test_public_client_has_no_secret_to_rotate(oauth: OAuthActions) -> None:
    admin = oauth.auth.admin("root")
    created = _create(admin, public=True)
    assert "client_secret" not in created or created["client_secret"] is None
    response = admin.post(f"{ADMIN_CLIENTS}/{created['client_id']}/secret", json={})
    assert response.status_code == 400


def test_deleting_a_client_kills_its_tokens_and_codes(oauth: OAuthActions) -> None:
    admin = oauth.auth.admin("root")
    created = _registered(_create(admin))
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, created)
    authorized = oauth.approve(browser, created)
    request_id, _ = oauth.start(browser, created)

    assert admin.delete(f"{ADMIN_CLIENTS}/{created.client_id}").status_code == 204
    assert admin.get(f"{ADMIN_CLIENTS}/{created.client_id}").status_code == 404
    assert_dead(oauth.app, tokens["access_token"])
    assert_token_error(oauth.refresh(created, tokens["refresh_token"]), 401, "invalid_client")
    assert_token_error(oauth.redeem(created, authorized), 401, "invalid_client")
    consent = browser.get(CONSENT, query_string={"request_id": request_id})
    assert consent.status_code == 400
    assert browser.get(APPS).get_json() == {"items": []}
    with oauth.app.app_context():
        for model in (Grant, AuthorizationCode, Token, PendingRequest):
            assert db.session.scalar(select(func.count()).select_from(model)) == 0


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("http://app.example/cb", "must use https unless the host is a loopback address"),
        ("https://app.example/cb#section", "must not contain a fragment"),
        ("https://*.app.example/cb", "must not contain wildcards"),
        ("https://app.example/*", "must not contain wildcards"),
        ("/callback", "must be an absolute https URL (or http on a loopback address)"),
        ("app.example/cb", "must be an absolute https URL (or http on a loopback address)"),
        ("javascript:alert(1)", "must be an absolute https URL (or http on a loopback address)"),
        ("https://user:pw@app.example/cb", "must not contain credentials"),
    ],
)
def test_admin_client_redirect_uri_rules(oauth: OAuthActions, uri: str, problem: str) -> None:
    admin = oauth.auth.admin("root")
    response = admin.post(ADMIN_CLIENTS, json={"name": "Bad", "redirect_uris": [REDIRECT_URI, uri]})
    assert response.status_code == 400
    assert response.get_json() == {
        "error": "invalid_request",
        "error_description": "Some fields are invalid.",
        "fields": {"redirect_uris.1": problem},
    }
    created = _create(admin)
    patched = admin.patch(f"{ADMIN_CLIENTS}/{created['client_id']}", json={"redirect_uris": [uri]})
    assert patched.status_code == 400
    assert patched.get_json()["fields"] == {"redirect_uris.0": problem}


@pytest.mark.parametrize(
    "uri", ["http://127.0.0.1:8080/cb", "http://[::1]/cb", "http://localhost:3000/cb"]
)
def test_admin_client_accepts_http_on_loopback(oauth: OAuthActions, uri: str) -> None:
    admin = oauth.auth.admin("root")
    assert _create(admin, redirect_uris=[uri])["redirect_uris"] == [uri]


def test_admin_client_api_needs_administrator(oauth: OAuthActions) -> None:
    oauth.auth.admin("root")
    member = oauth.auth.signup("alice")
    created = oauth.make_client()
    calls = [
        member.get(ADMIN_CLIENTS),
        member.post(ADMIN_CLIENTS, json={"name": "X", "redirect_uris": [REDIRECT_URI]}),
        member.get(f"{ADMIN_CLIENTS}/{created.client_id}"),
        member.patch(f"{ADMIN_CLIENTS}/{created.client_id}", json={"name": "Y"}),
        member.delete(f"{ADMIN_CLIENTS}/{created.client_id}"),
        member.post(f"{ADMIN_CLIENTS}/{created.client_id}/secret", json={}),
    ]
    for response in calls:
        assert response.status_code == 403
        assert response.get_json()["error"] == "forbidden"
    anonymous = oauth.app.test_client().get(ADMIN_CLIENTS)
    assert anonymous.status_code == 401


def test_admin_token_without_administrator_scope_cannot_manage_clients(
    oauth: OAuthActions,
) -> None:
    admin = oauth.auth.admin("root")
    client = oauth.make_client()
    tokens = oauth.tokens(admin, client)
    response = oauth.app.test_client().get(ADMIN_CLIENTS, headers=bearer(tokens["access_token"]))
    assert response.status_code == 403


# --- Authorised apps -----------------------------------------------------------------------------


def test_authorized_apps_lists_grants(oauth: OAuthActions) -> None:
    client = oauth.make_client(name="Photo Printer")
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, client)
    response = browser.get(APPS)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    items = response.get_json()["items"]
    assert len(items) == 1
    item = items[0]
    assert set(item) == {
        "grant_id",
        "client_id",
        "client_name",
        "scopes",
        "scope_descriptions",
        "created_at",
        "last_used_at",
    }
    assert (
        item["scope_descriptions"]["openid"] == "Sign you in to the app with your community account"
    )
    assert item["client_id"] == client.client_id
    assert item["client_name"] == "Photo Printer"
    assert item["scopes"] == DEFAULT_SCOPES.split()
    assert item["created_at"].endswith("Z")
    assert item["last_used_at"].endswith("Z")
    assert tokens["access_token"]


def test_authorized_apps_last_used_is_the_newest_token_of_each_grant(oauth: OAuthActions) -> None:
    browser = oauth.auth.signup("alice")
    older, newer = oauth.make_client(name="Older"), oauth.make_client(name="Newer")
    first = oauth.tokens(browser, older)
    oauth.refresh(older, first["refresh_token"])
    oauth.tokens(browser, newer)
    with oauth.app.app_context():
        grants = {g.client_id: g.id for g in db.session.scalars(select(Grant))}
        # Spread the tokens' creation times: the newest of each grant must win.
        for n, token in enumerate(db.session.scalars(select(Token).order_by(Token.id))):
            token.created_at = datetime(2026, 3, 1, 12, n, tzinfo=UTC)
        db.session.commit()
        newest = {
            grant_id: max(
                t.created_at
                for t in db.session.scalars(select(Token).where(Token.grant_id == grant_id))
            )
            for grant_id in grants.values()
        }
    items = {item["client_name"]: item for item in browser.get(APPS).get_json()["items"]}
    assert items["Older"]["last_used_at"] == rfc3339(newest[grants[older.client_id]])
    assert items["Newer"]["last_used_at"] == rfc3339(newest[grants[newer.client_id]])
    assert items["Older"]["last_used_at"] == "2026-03-01T12:03:00Z"  # 2 from the code, 2 rotated


def test_authorized_apps_last_used_is_an_index_seek_per_grant(oauth: OAuthActions) -> None:
    """Not a pass over every rotation a grant has seen (they stay until cleanup)."""
    browser = oauth.auth.signup("alice")
    oauth.tokens(browser, oauth.make_client())
    engine = oauth.app.extensions["hearth_db"][0]
    if engine.dialect.name != "sqlite":
        pytest.skip("reads SQLite's query plan")
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        if "max(" in statement:
            seen.append((statement, parameters))

    engines = Database.engines(oauth.app)  # the listing is a read-only request's
    for each in engines:
        event.listen(each, "before_cursor_execute", record)
    try:
        assert browser.get(APPS).status_code == 200
    finally:
        for each in engines:
            event.remove(each, "before_cursor_execute", record)
    [(statement, parameters)] = seen
    with engine.connect() as connection:
        plan = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
    details = [row[3] for row in plan]
    assert any("ix_oauth_tokens_grant_id_created_at" in line for line in details), details
    assert not any(line.startswith("SCAN oauth_tokens") for line in details), details


def test_authorized_apps_delete_revokes_every_token_of_the_grant(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    first = oauth.tokens(browser, client)
    second = oauth.refresh(client, first["refresh_token"]).get_json()
    grant_id = browser.get(APPS).get_json()["items"][0]["grant_id"]
    response = browser.delete(f"{APPS}/{grant_id}")
    assert response.status_code == 204
    assert_dead(oauth.app, first["access_token"])
    assert_dead(oauth.app, second["access_token"])
    assert_refresh_refused(oauth.refresh(client, second["refresh_token"]))
    assert browser.get(APPS).get_json() == {"items": []}
    again = browser.delete(f"{APPS}/{grant_id}")
    assert again.status_code == 404


def test_authorized_apps_of_another_account_are_404(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    alice = oauth.auth.signup("alice")
    tokens = oauth.tokens(alice, client)
    grant_id = alice.get(APPS).get_json()["items"][0]["grant_id"]
    mallory = oauth.auth.signup("mallory")
    assert mallory.get(APPS).get_json() == {"items": []}
    response = mallory.delete(f"{APPS}/{grant_id}")
    assert response.status_code == 404
    assert response.get_json() == mallory.delete(f"{APPS}/made-up").get_json()
    assert_alive(oauth.app, tokens["access_token"])


def test_authorized_apps_need_a_session(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, client)
    assert oauth.app.test_client().get(APPS).status_code == 401
    with_token = oauth.app.test_client().get(APPS, headers=bearer(tokens["access_token"]))
    assert with_token.status_code == 401


# --- Remembered consent, prompt and the consent URL ----------------------------------------------


def test_skip_consent_client_with_a_covering_grant_gets_a_code_directly(
    oauth: OAuthActions,
) -> None:
    client = oauth.make_client(skip_consent=True)
    browser = oauth.auth.signup("alice")
    oauth.tokens(browser, client)  # the first time goes through consent
    verifier, challenge = pkce_pair()
    response = oauth.authorize(
        browser, oauth.authorize_query(client, challenge=challenge, scope="openid CREATE_POST")
    )
    assert response.status_code == 302
    location = response.headers["Location"]
    assert without_query(location) == REDIRECT_URI
    query = params(location)
    assert set(query) == {"code", "state", "iss"}
    assert query["state"] == STATE
    assert query["iss"] == ISSUER
    redeemed = oauth.token(
        client,
        {
            "grant_type": "authorization_code",
            "code": query["code"],
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
    )
    assert redeemed.status_code == 200
    assert redeemed.get_json()["scope"] == "openid CREATE_POST"


def test_skip_consent_needs_a_grant_covering_the_scopes(oauth: OAuthActions) -> None:
    client = oauth.make_client(skip_consent=True)
    browser = oauth.auth.signup("alice")
    first = oauth.authorize(browser, oauth.authorize_query(client))
    assert without_query(first.headers["Location"]) == CONSENT_URL
    oauth.tokens(browser, client, scope="openid CREATE_POST")
    wider = oauth.authorize(browser, oauth.authorize_query(client, scope="openid email"))
    assert without_query(wider.headers["Location"]) == CONSENT_URL
    forced = oauth.authorize(
        browser, oauth.authorize_query(client, scope="openid", prompt="consent")
    )
    assert without_query(forced.headers["Location"]) == CONSENT_URL


def test_skip_consent_ignores_revoked_grants(oauth: OAuthActions) -> None:
    client = oauth.make_client(skip_consent=True)
    browser = oauth.auth.signup("alice")
    oauth.tokens(browser, client)
    grant_id = browser.get(APPS).get_json()["items"][0]["grant_id"]
    assert browser.delete(f"{APPS}/{grant_id}").status_code == 204
    response = oauth.authorize(browser, oauth.authorize_query(client))
    assert without_query(response.headers["Location"]) == CONSENT_URL


def test_skip_consent_is_not_for_public_clients(oauth: OAuthActions) -> None:
    client = oauth.make_client(public=True)
    browser = oauth.auth.signup("alice")
    oauth.tokens(browser, client)
    with oauth.app.app_context():
        db.session.execute(update(OAuthClient).values(skip_consent=True))
        db.session.commit()
    response = oauth.authorize(browser, oauth.authorize_query(client))
    assert without_query(response.headers["Location"]) == CONSENT_URL


def test_ordinary_client_with_a_grant_still_asks_for_consent(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    oauth.tokens(browser, client)
    response = oauth.authorize(browser, oauth.authorize_query(client))
    assert without_query(response.headers["Location"]) == CONSENT_URL


def test_skip_consent_cannot_be_set_on_a_public_client(oauth: OAuthActions) -> None:
    admin = oauth.auth.admin("root")
    response = admin.post(
        ADMIN_CLIENTS,
        json={
            "name": "SPA",
            "redirect_uris": [REDIRECT_URI],
            "public": True,
            "skip_consent": True,
        },
    )
    assert response.status_code == 400
    assert response.get_json()["fields"] == {
        "skip_consent": "only confidential clients may skip consent"
    }


def test_prompt_none_without_session_is_login_required(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    response = oauth.authorize(
        oauth.app.test_client(), oauth.authorize_query(client, prompt="none")
    )
    error = assert_redirect_error(response, REDIRECT_URI, "login_required")
    assert error["error_description"] == "The user is not signed in."


def test_prompt_none_without_session_still_validates_the_redirect_uri(
    oauth: OAuthActions,
) -> None:
    client = oauth.make_client()
    response = oauth.authorize(
        oauth.app.test_client(),
        oauth.authorize_query(client, prompt="none", redirect_uri="https://evil.example/cb"),
    )
    assert response.status_code == 400
    assert "Location" not in response.headers


def test_prompt_none_without_a_grant_is_consent_required(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    response = oauth.authorize(browser, oauth.authorize_query(client, prompt="none"))
    assert_redirect_error(response, REDIRECT_URI, "consent_required")


def test_consent_url_keeps_its_own_query(make_oauth: Callable[..., OAuthActions]) -> None:
    oauth = make_oauth(
        OAUTH_AUTHORISATION_CODE_CONSENT_URL="https://web.example/consent?theme=dark&lang=en"
    )
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    response = oauth.authorize(browser, oauth.authorize_query(client))
    location = response.headers["Location"]
    assert location.startswith("https://web.example/consent?theme=dark&lang=en&request_id=")
    query = params(location)
    assert set(query) == {"theme", "lang", "request_id"}
    assert browser.get(CONSENT, query_string={"request_id": query["request_id"]}).status_code == 200


def test_redirect_uri_with_its_own_query_keeps_it(oauth: OAuthActions) -> None:
    registered = "https://app.example/callback?tenant=42"
    client = oauth.make_client(redirect_uris=[registered])
    browser = oauth.auth.signup("alice")
    authorized = oauth.approve(browser, client)
    assert authorized.redirect_uri == registered
    response = oauth.authorize(browser, oauth.authorize_query(client, scope="NOPE"))
    assert response.headers["Location"].startswith(f"{registered}&error=invalid_scope")
    assert oauth.redeem(client, authorized).status_code == 200


def test_consent_details_shape(oauth: OAuthActions) -> None:
    client = oauth.make_client(name="Photo Printer")
    browser = oauth.auth.signup("alice")
    request_id, _ = oauth.start(browser, client, scope="openid CREATE_POST")
    response = browser.get(CONSENT, query_string={"request_id": request_id})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body == {
        "request_id": request_id,
        "client_id": client.client_id,
        "client_name": "Photo Printer",
        "redirect_uri": REDIRECT_URI,
        "expires_at": body["expires_at"],
        "requested_scopes": ["openid", "CREATE_POST"],
        "granted_scopes": ["openid", "CREATE_POST"],
        "inherits_user_permissions": False,
        "scopes": [
            {
                "name": "openid",
                "description": "Sign you in to the app with your community account",
                "granted": True,
                "reason": None,
            },
            {
                "name": "CREATE_POST",
                "description": "Create threads and replies as you",
                "granted": True,
                "reason": None,
            },
        ],
        "client_registered_itself": False,
        "authorize_url": body["authorize_url"],
    }
    assert body["expires_at"].endswith("Z")
    restart = parse_qs(urlsplit(body["authorize_url"]).query)
    assert body["authorize_url"].startswith(f"{ISSUER}/api/oauth/authorize?")
    assert restart["client_id"] == [client.client_id]
    assert restart["redirect_uri"] == [REDIRECT_URI]
    assert restart["scope"] == ["openid CREATE_POST"]
    assert restart["code_challenge_method"] == ["S256"]
    with oauth.app.app_context():
        stored = db.session.scalars(select(PendingRequest.request_hash)).one()
        assert stored == sha256(request_id)


def test_unsupported_response_type_redirects(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    response = oauth.authorize(browser, oauth.authorize_query(client, response_type="token"))
    assert_redirect_error(response, REDIRECT_URI, "unsupported_response_type")


def test_client_without_the_code_grant_is_unauthorized_client(oauth: OAuthActions) -> None:
    oauth.auth.signup("bob")
    client = oauth.make_client(grants=["client_credentials"], owner="bob")
    browser = oauth.auth.signup("alice")
    response = oauth.authorize(browser, oauth.authorize_query(client))
    assert_redirect_error(response, REDIRECT_URI, "unauthorized_client")


def test_state_is_optional_and_omitted_when_absent(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    authorized = oauth.approve(browser, client, state=None)
    assert authorized.state is None
    response = oauth.authorize(browser, oauth.authorize_query(client, state=None, scope="NOPE"))
    assert_redirect_error(response, REDIRECT_URI, "invalid_scope", state=None)


# --- Housekeeping --------------------------------------------------------------------------------


def test_cleanup_removes_expired_oauth_rows_and_sessions(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    oauth.tokens(browser, client)
    oauth.approve(browser, client)
    oauth.start(browser, client)
    oauth.auth.signup("bob")
    live = oauth.auth.signup("carol")
    with oauth.app.app_context():
        past = utcnow() - timedelta(seconds=1)
        for model in (PendingRequest, AuthorizationCode, Token):
            db.session.execute(update(model).values(expires_at=past))
        db.session.execute(
            update(AuthSession)
            .where(AuthSession.account_id != live.get(SELF).get_json()["id"])
            .values(expires_at=past)
        )
        db.session.commit()
    output = oauth.cli("cleanup")
    counts = {name: int(count) for name, count in (p.split("=") for p in output.split())}

    def removed(kind: str) -> int:
        return sum(count for name, count in counts.items() if kind in name)

    assert counts["sessions"] == 2
    assert removed("pending") == 3
    assert removed("code") == 2
    assert removed("token") == 2
    with oauth.app.app_context():
        for model in (PendingRequest, AuthorizationCode, Token):
            assert db.session.scalar(select(func.count()).select_from(model)) == 0
        assert db.session.scalar(select(func.count()).select_from(AuthSession)) == 1
    assert live.get(SELF).status_code == 200


def test_cleanup_removes_expired_sessions(oauth: OAuthActions) -> None:
    oauth.auth.signup("alice")
    expire_all(oauth.app, AuthSession)
    output = oauth.cli("cleanup")
    assert "sessions=1" in output.split()
    with oauth.app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuthSession)) == 0


# --- Registered client rules hold at every endpoint ----------------------------------------------


@pytest.mark.parametrize("path", [REVOKE, INTROSPECT])
def test_registered_auth_method_is_enforced_at_revoke_and_introspect(
    oauth: OAuthActions, path: str
) -> None:
    client = oauth.make_client(auth_method="client_secret_basic")
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, client)
    response = oauth.token(
        client, {"token": tokens["access_token"]}, auth="client_secret_post", path=path
    )
    assert_error(response, 401, "invalid_client")
    assert_alive(oauth.app, tokens["access_token"])


def test_refresh_needs_the_refresh_token_grant_still_allowed(oauth: OAuthActions) -> None:
    admin = oauth.auth.admin("root")
    client = oauth.make_client()
    tokens = oauth.tokens(admin, client)
    patched = admin.patch(
        f"{ADMIN_CLIENTS}/{client.client_id}", json={"grant_types": ["authorization_code"]}
    )
    assert patched.status_code == 200
    assert_token_error(oauth.refresh(client, tokens["refresh_token"]), 400, "unauthorized_client")


def test_protocol_endpoints_never_allow_credentials_cross_origin(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    for path in (TOKEN, REVOKE, INTROSPECT):
        response = oauth.token(
            client,
            {"token": "x", "grant_type": "refresh_token", "refresh_token": "x"},
            headers={"Origin": "https://spa.example"},
            path=path,
        )
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert "Access-Control-Allow-Credentials" not in response.headers


def test_codes_and_request_ids_are_stored_only_as_hashes(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    authorized = oauth.approve(browser, client)
    with oauth.app.app_context():
        code = db.session.scalars(select(AuthorizationCode)).one()
        assert code.code_hash == sha256(authorized.code)
        assert authorized.code not in (code.code_hash, code.code_challenge)


def test_default_lifetimes(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    request_id, _ = oauth.start(browser, client)
    authorized = oauth.approve(browser, client)
    tokens = oauth.redeem(client, authorized).get_json()
    assert tokens["expires_in"] == 15 * 60
    with oauth.app.app_context():
        pending = db.session.scalars(
            select(PendingRequest).where(PendingRequest.request_hash == sha256(request_id))
        ).one()
        assert pending.expires_at - pending.created_at == timedelta(minutes=10)
        code = db.session.scalars(
            select(AuthorizationCode).where(AuthorizationCode.code_hash == sha256(authorized.code))
        ).one()
        assert code.expires_at - code.created_at == timedelta(seconds=60)
        refresh = db.session.scalars(select(Token).where(Token.kind == "refresh")).one()
        assert refresh.expires_at - refresh.created_at == timedelta(hours=720)


def test_administrator_scope_carries_every_permission_when_granted(oauth: OAuthActions) -> None:
    admin = oauth.auth.admin("root")
    client = oauth.make_client(scopes="ADMINISTRATOR")
    tokens = oauth.tokens(admin, client, scope="ADMINISTRATOR")
    assert tokens["scope"] == "ADMINISTRATOR"
    api = oauth.app.test_client()
    headers = bearer(tokens["access_token"])
    assert api.post("/api/categories", json={"name": "News"}, headers=headers).status_code == 201
    assert api.get(ADMIN_CLIENTS, headers=headers).status_code == 200

    member = oauth.auth.signup("alice")
    member_tokens = oauth.tokens(member, client, scope="ADMINISTRATOR")
    assert member_tokens["scope"] == ""
    denied = api.get(ADMIN_CLIENTS, headers=bearer(member_tokens["access_token"]))
    assert denied.status_code == 403


def test_login_url_keeps_its_own_query(make_oauth: Callable[..., OAuthActions]) -> None:
    oauth = make_oauth(OAUTH_AUTHORISATION_LOGIN_URL="https://web.example/login?via=oauth")
    client = oauth.make_client()
    response = oauth.authorize(oauth.app.test_client(), oauth.authorize_query(client))
    location = response.headers["Location"]
    assert location.startswith("https://web.example/login?via=oauth&return_url=")
    assert set(params(location)) == {"via", "return_url"}


def test_prompt_none_with_a_remembered_grant_gets_a_code(oauth: OAuthActions) -> None:
    client = oauth.make_client(skip_consent=True)
    browser = oauth.auth.signup("alice")
    oauth.tokens(browser, client)
    response = oauth.authorize(browser, oauth.authorize_query(client, prompt="none"))
    assert response.status_code == 302
    assert without_query(response.headers["Location"]) == REDIRECT_URI
    assert set(params(response.headers["Location"])) == {"code", "state", "iss"}


def test_client_scopes_reduced_before_approval_are_dropped(oauth: OAuthActions) -> None:
    admin = oauth.auth.admin("root")
    client = oauth.make_client(scopes="openid CREATE_POST MANAGE_POSTS")
    request_id, _ = oauth.start(admin, client, scope="openid CREATE_POST MANAGE_POSTS")
    patched = admin.patch(f"{ADMIN_CLIENTS}/{client.client_id}", json={"scopes": "openid"})
    assert patched.status_code == 200
    details = admin.get(CONSENT, query_string={"request_id": request_id}).get_json()
    assert details["granted_scopes"] == ["openid"]
    approved = admin.post(CONSENT, json={"request_id": request_id, "decision": "approve"})
    assert approved.status_code == 200
    with oauth.app.app_context():
        assert db.session.scalars(select(AuthorizationCode.scope)).one() == "openid"


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"scopes": "openid NOPE"}, {"scopes": "unknown scope: NOPE"}),
        (
            {"grant_types": ["client_credentials"]},
            {"owner": "client_credentials needs an owning account"},
        ),
        ({"owner": "nobody"}, {"owner": "no account has that handle"}),
        (
            {"redirect_uris": []},
            {"redirect_uris": "at least one is required for authorization_code"},
        ),
        (
            {"public": True, "token_endpoint_auth_method": "client_secret_basic"},
            {"token_endpoint_auth_method": "public clients use none"},
        ),
        (
            {"token_endpoint_auth_method": "none"},
            {"token_endpoint_auth_method": "confidential clients need a secret"},
        ),
    ],
)
def test_admin_client_field_rules(
    oauth: OAuthActions, fields: dict[str, Any], errors: dict[str, str]
) -> None:
    admin = oauth.auth.admin("root")
    body: dict[str, Any] = {"name": "X", "redirect_uris": [REDIRECT_URI], **fields}
    response = admin.post(ADMIN_CLIENTS, json=body)
    assert response.status_code == 400
    assert response.get_json()["fields"] == errors
    assert admin.get(ADMIN_CLIENTS).get_json() == {"items": []}


def test_es256_signing_key_signs_tokens(make_oauth: Callable[..., OAuthActions]) -> None:
    pem = p256_pem()
    oauth = make_oauth(OAUTH_SIGNING_KEY=pem)
    jwks = oauth.app.test_client().get("/api/oauth/jwks").get_json()
    assert len(jwks["keys"]) == 1
    assert jwks["keys"][0]["kty"] == "EC"
    assert jwks["keys"][0]["alg"] == "ES256"
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, client)
    keys = KeySet.import_key_set(jwks)
    assert jwt.decode(tokens["id_token"], keys).header["alg"] == "ES256"
    assert jwt.decode(tokens["access_token"], keys).header["alg"] == "ES256"
    assert_alive(oauth.app, tokens["access_token"])


def test_id_token_without_nonce_has_no_nonce_claim(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, client)
    assert "nonce" not in unverified_claims(tokens["id_token"])


def test_a_stray_flask_login_remember_cookie_does_not_hide_the_bearer_token_or_session(
    oauth: OAuthActions,
) -> None:
    """Another Flask app on the same site may set Flask-Login's `remember_token` cookie. Hearth
    never uses it; it must not stop the request loader from reading the token or the session."""
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, client)
    stranger = oauth.app.test_client()
    stranger.set_cookie("remember_token", "1|forged")
    by_token = stranger.get(SELF, headers=bearer(tokens["access_token"]))
    assert by_token.status_code == 200, by_token.get_json()
    assert by_token.json is not None and by_token.json["handle"] == "alice"
    browser.set_cookie("remember_token", "1|forged")
    by_cookie = browser.get(SELF)
    assert by_cookie.status_code == 200, by_cookie.get_json()
    assert by_cookie.headers.get_all("Set-Cookie") == []
