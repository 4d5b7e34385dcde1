"""Attacks on the OAuth provider, one test per attack (SPEC §4)."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey
from sqlalchemy import select, update
from werkzeug.test import TestResponse

from app.auth import SESSION_COOKIE
from app.db import utcnow
from app.extensions import db
from app.models import AuthorizationCode, AuthSession, Grant, PendingRequest, Token
from app.oauth import keys
from tests.conftest import SIGNING_KEY
from tests.integration.oauth.conftest import (
    CONSENT,
    CONSENT_URL,
    DEFAULT_SCOPES,
    ISSUER,
    LOGIN_URL,
    REDIRECT_URI,
    RESOURCE,
    RESOURCE_METADATA_URL,
    REVOKE,
    SELF,
    STATE,
    OAuthActions,
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

UNKNOWN_REQUEST = {
    "error": "invalid_request",
    "error_description": "The authorization request is unknown, expired or already answered.",
}
UNREGISTERED = {
    "error": "invalid_request",
    "error_description": "The redirect_uri is not registered for this client.",
}


# --- Redirect URIs: never redirect to an unvalidated URI (SPEC §4.1 step 2) ---------------------


@pytest.mark.parametrize(
    "presented",
    [
        "https://evil.example/callback",
        "https://app.example/callback/",
        "https://app.example/callback?next=https://evil.example",
        "https://app.example/Callback",
        "https://APP.example/callback",
        "HTTPS://app.example/callback",
        "https://app.example:443/callback",
        "https://app.example/callback#fragment",
        "https://app.example.evil.example/callback",
        "https://app.example/callback/../callback",
    ],
)
def test_authorize_unregistered_redirect_uri_is_400_json_without_location(
    oauth: OAuthActions, presented: str
) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    response = oauth.authorize(browser, oauth.authorize_query(client, redirect_uri=presented))
    assert response.status_code == 400
    assert response.get_json() == UNREGISTERED
    assert "Location" not in response.headers


def test_authorize_missing_redirect_uri_is_400_json_without_location(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    query = oauth.authorize_query(client)
    del query["redirect_uri"]
    response = oauth.authorize(browser, query)
    assert response.status_code == 400
    assert response.get_json() == {
        "error": "invalid_request",
        "error_description": "The redirect_uri parameter is missing.",
    }
    assert "Location" not in response.headers


@pytest.mark.parametrize(
    ("registered", "presented"),
    [
        ("http://127.0.0.1:9999/cb", "http://127.0.0.1:51234/cb"),
        ("http://127.0.0.1/cb", "http://127.0.0.1:8080/cb"),
        ("http://[::1]:9999/cb", "http://[::1]:40000/cb"),
    ],
)
def test_loopback_ip_redirect_uri_accepts_any_port(
    oauth: OAuthActions, registered: str, presented: str
) -> None:
    client = oauth.make_client(redirect_uris=[registered])
    browser = oauth.auth.signup("alice")
    authorized = oauth.approve(browser, client, redirect_uri=presented)
    assert authorized.redirect_uri == presented
    response = oauth.redeem(client, authorized)
    assert response.status_code == 200, response.get_json()


@pytest.mark.parametrize(
    ("registered", "presented"),
    [
        ("http://localhost:9999/cb", "http://localhost:51234/cb"),
        ("https://127.0.0.1:9999/cb", "https://127.0.0.1:51234/cb"),
        ("https://app.example:8443/cb", "https://app.example:9443/cb"),
        ("http://127.0.0.1:9999/cb", "http://127.0.0.1:9999/other"),
        ("http://127.0.0.1:9999/cb", "http://127.0.0.2:9999/cb"),
        ("http://127.0.0.1:9999/cb", "http://[::1]:9999/cb"),
        ("http://127.0.0.1:9999/cb", "https://127.0.0.1:9999/cb"),
        ("http://127.0.0.1:9999/cb", "http://user@127.0.0.1:9999/cb"),
        ("http://127.0.0.1:9999/cb", "http://127.0.0.1:9999/cb?x=1"),
    ],
)
def test_any_port_leniency_is_only_for_http_loopback_ip_registrations(
    oauth: OAuthActions, registered: str, presented: str
) -> None:
    client = oauth.make_client(redirect_uris=[registered])
    browser = oauth.auth.signup("alice")
    response = oauth.authorize(browser, oauth.authorize_query(client, redirect_uri=presented))
    assert response.status_code == 400
    assert response.get_json() == UNREGISTERED
    assert "Location" not in response.headers


def test_token_rejects_redirect_uri_other_than_the_authorized_one(oauth: OAuthActions) -> None:
    client = oauth.make_client(redirect_uris=[REDIRECT_URI, "https://app.example/other"])
    browser = oauth.auth.signup("alice")
    authorized = oauth.approve(browser, client)
    response = oauth.redeem(client, authorized, redirect_uri="https://app.example/other")
    assert_token_error(response, 400, "invalid_grant")
    assert oauth.redeem(client, authorized).status_code == 200


def test_authorize_unknown_client_is_400_invalid_client_json(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    query = oauth.authorize_query(client, client_id="hc_made-up")
    response = oauth.authorize(browser, query)
    assert response.status_code == 400
    assert response.get_json() == {
        "error": "invalid_client",
        "error_description": "No client has that client_id.",
    }
    assert "Location" not in response.headers


# --- PKCE (SPEC §4.1 step 3, §4.3) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "description"),
    [
        ({"code_challenge": None}, "PKCE is required: send code_challenge."),
        ({"code_challenge": None, "code_challenge_method": None}, None),
        ({"code_challenge_method": "plain"}, "code_challenge_method must be S256."),
        ({"code_challenge_method": None}, "code_challenge_method must be S256."),
        ({"code_challenge": "too-short"}, "The code_challenge is malformed."),
        ({"code_challenge": "a" * 44}, "The code_challenge is malformed."),
        ({"code_challenge": "+" * 43}, "The code_challenge is malformed."),
        ({"code_challenge": "=" * 43}, "The code_challenge is malformed."),
    ],
)
def test_authorize_without_s256_pkce_redirects_invalid_request(
    oauth: OAuthActions, change: dict[str, str | None], description: str | None
) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    query = oauth.authorize_query(client)
    for name, value in change.items():
        if value is None:
            del query[name]
        else:
            query[name] = value
    response = oauth.authorize(browser, query)
    error = assert_redirect_error(response, REDIRECT_URI, "invalid_request")
    if description:
        assert error["error_description"] == description
    with oauth.app.app_context():
        assert db.session.scalar(select(PendingRequest.id)) is None


def test_token_wrong_verifier_is_invalid_grant_and_burns_nothing(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    authorized = oauth.approve(browser, client)
    other_verifier, _ = pkce_pair()
    response = oauth.redeem(client, authorized, code_verifier=other_verifier)
    assert_token_error(
        response, 400, "invalid_grant", "The code_verifier does not match the code_challenge."
    )
    # An invalid attempt is not a redemption: the legitimate client still gets its tokens.
    assert oauth.redeem(client, authorized).status_code == 200


def test_invalid_code_replay_revokes_nothing(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    thief = oauth.make_client(name="Thief")
    browser = oauth.auth.signup("alice")
    authorized = oauth.approve(browser, client)
    tokens = oauth.redeem(client, authorized).get_json()

    wrong_verifier = oauth.redeem(client, authorized, code_verifier=pkce_pair()[0])
    assert_token_error(wrong_verifier, 400, "invalid_grant")
    other_client = oauth.redeem(thief, authorized)
    assert_token_error(other_client, 400, "invalid_grant")

    assert_alive(oauth.app, tokens["access_token"])
    assert oauth.refresh(client, tokens["refresh_token"]).status_code == 200


@pytest.mark.parametrize(
    ("verifier", "description"),
    [
        ("", "The code_verifier is missing."),
        ("short", "The code_verifier must be 43 to 128 unreserved characters."),
        ("a" * 129, "The code_verifier must be 43 to 128 unreserved characters."),
        ("a" * 42 + "/", "The code_verifier must be 43 to 128 unreserved characters."),
    ],
)
def test_token_rejects_missing_or_malformed_verifier(
    oauth: OAuthActions, verifier: str, description: str
) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    authorized = oauth.approve(browser, client)
    response = oauth.redeem(client, authorized, code_verifier=verifier)
    assert_token_error(response, 400, "invalid_grant", description)


def test_token_rejects_verifier_for_a_code_without_challenge(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    authorized = oauth.approve(browser, client)
    with oauth.app.app_context():
        db.session.execute(update(AuthorizationCode).values(code_challenge=""))
        db.session.commit()
    response = oauth.redeem(client, authorized)
    assert_token_error(response, 400, "invalid_grant")


# --- Codes and refresh tokens (SPEC §4.3) --------------------------------------------------------


def test_code_replay_revokes_the_tokens_of_the_first_redemption(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    authorized = oauth.approve(browser, client)
    first = oauth.redeem(client, authorized)
    assert first.status_code == 200
    tokens = first.get_json()
    assert_alive(oauth.app, tokens["access_token"])

    replay = oauth.redeem(client, authorized)
    assert_token_error(
        replay, 400, "invalid_grant", "The code was already used; its tokens are revoked."
    )
    assert_dead(oauth.app, tokens["access_token"])
    assert_refresh_refused(oauth.refresh(client, tokens["refresh_token"]))
    assert browser.get("/api/accounts/self/authorized-apps").get_json() == {"items": []}


def test_code_replay_after_refresh_revokes_the_rotated_tokens_too(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    authorized = oauth.approve(browser, client)
    tokens = oauth.redeem(client, authorized).get_json()
    rotated = oauth.refresh(client, tokens["refresh_token"]).get_json()

    assert_token_error(oauth.redeem(client, authorized), 400, "invalid_grant")
    assert_dead(oauth.app, rotated["access_token"])
    assert_refresh_refused(oauth.refresh(client, rotated["refresh_token"]))


def test_code_replay_leaves_other_grants_of_the_same_account_alone(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    other = oauth.tokens(browser, client)
    authorized = oauth.approve(browser, client)
    oauth.redeem(client, authorized)
    assert_token_error(oauth.redeem(client, authorized), 400, "invalid_grant")
    assert_alive(oauth.app, other["access_token"])


def test_refresh_token_reuse_revokes_the_whole_grant(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    first = oauth.tokens(browser, client)
    second_response = oauth.refresh(client, first["refresh_token"])
    assert second_response.status_code == 200
    second = second_response.get_json()
    assert second["refresh_token"] != first["refresh_token"]
    assert_alive(oauth.app, second["access_token"])

    reuse = oauth.refresh(client, first["refresh_token"])
    assert_refresh_refused(reuse)
    assert_refresh_refused(oauth.refresh(client, second["refresh_token"]))
    assert_dead(oauth.app, first["access_token"])
    assert_dead(oauth.app, second["access_token"])


def test_refresh_token_of_another_client_is_invalid_grant_and_revokes_nothing(
    oauth: OAuthActions,
) -> None:
    client = oauth.make_client()
    thief = oauth.make_client(name="Thief")
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, client)
    assert_token_error(
        oauth.refresh(thief, tokens["refresh_token"]),
        400,
        "invalid_grant",
        "The refresh token was issued to another client.",
    )
    assert_alive(oauth.app, tokens["access_token"])
    assert oauth.refresh(client, tokens["refresh_token"]).status_code == 200


def test_expired_code_is_invalid_grant(
    make_oauth: Callable[..., OAuthActions],
) -> None:
    oauth = make_oauth(OAUTH_CODE_TTL=timedelta(seconds=5))
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    authorized = oauth.approve(browser, client)
    with oauth.app.app_context():
        code = db.session.scalars(select(AuthorizationCode)).one()
        assert code.expires_at - code.created_at == timedelta(seconds=5)
    expire_all(oauth.app, AuthorizationCode)
    assert_token_error(oauth.redeem(client, authorized), 400, "invalid_grant")


def test_code_cannot_be_redeemed_after_its_grant_is_revoked(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    authorized = oauth.approve(browser, client)
    grant_id = browser.get("/api/accounts/self/authorized-apps").get_json()["items"][0]["grant_id"]
    assert browser.delete(f"/api/accounts/self/authorized-apps/{grant_id}").status_code == 204
    assert_token_error(oauth.redeem(client, authorized), 400, "invalid_grant")


# --- Consent requests (SPEC §4.2) ----------------------------------------------------------------


def test_consent_another_accounts_request_id_is_indistinguishable_from_a_made_up_one(
    oauth: OAuthActions,
) -> None:
    client = oauth.make_client()
    alice = oauth.auth.signup("alice")
    mallory = oauth.auth.signup("mallory")
    request_id, _ = oauth.start(alice, client)

    for request_id_tried in (request_id, "made-up-request-id"):
        read = mallory.get(CONSENT, query_string={"request_id": request_id_tried})
        assert read.status_code == 400
        assert read.get_json() == UNKNOWN_REQUEST
        decide = mallory.post(CONSENT, json={"request_id": request_id_tried, "decision": "approve"})
        assert decide.status_code == 400
        assert decide.get_json() == UNKNOWN_REQUEST
        deny = mallory.post(CONSENT, json={"request_id": request_id_tried, "decision": "deny"})
        assert deny.status_code == 400
        assert deny.get_json() == UNKNOWN_REQUEST

    # Mallory's attempts did not consume Alice's request.
    assert alice.get(CONSENT, query_string={"request_id": request_id}).status_code == 200
    approved = alice.post(CONSENT, json={"request_id": request_id, "decision": "approve"})
    assert approved.status_code == 200


def test_consent_without_session_is_401(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    alice = oauth.auth.signup("alice")
    request_id, _ = oauth.start(alice, client)
    anonymous = oauth.app.test_client()
    assert anonymous.get(CONSENT, query_string={"request_id": request_id}).status_code == 401
    response = anonymous.post(CONSENT, json={"request_id": request_id, "decision": "approve"})
    assert response.status_code == 401
    assert response.get_json()["error"] == "unauthenticated"


def test_consent_expired_pending_request_is_400(make_oauth: Callable[..., OAuthActions]) -> None:
    oauth = make_oauth(OAUTH_PENDING_REQUEST_TTL=timedelta(seconds=30))
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    request_id, _ = oauth.start(browser, client)
    with oauth.app.app_context():
        pending = db.session.scalars(select(PendingRequest)).one()
        assert pending.expires_at - pending.created_at == timedelta(seconds=30)
    expire_all(oauth.app, PendingRequest)

    read = browser.get(CONSENT, query_string={"request_id": request_id})
    assert read.status_code == 400
    assert read.get_json() == UNKNOWN_REQUEST
    decide = browser.post(CONSENT, json={"request_id": request_id, "decision": "approve"})
    assert decide.status_code == 400
    assert decide.get_json() == UNKNOWN_REQUEST


@pytest.mark.parametrize("second", ["approve", "deny"])
def test_consent_request_id_cannot_be_used_twice(oauth: OAuthActions, second: str) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    request_id, _ = oauth.start(browser, client)
    first = browser.post(CONSENT, json={"request_id": request_id, "decision": "approve"})
    assert first.status_code == 200
    again = browser.post(CONSENT, json={"request_id": request_id, "decision": second})
    assert again.status_code == 400
    assert again.get_json() == UNKNOWN_REQUEST
    read = browser.get(CONSENT, query_string={"request_id": request_id})
    assert read.status_code == 400
    assert read.get_json() == UNKNOWN_REQUEST
    with oauth.app.app_context():
        assert len(db.session.scalars(select(AuthorizationCode)).all()) == 1


def test_consent_denied_request_cannot_then_be_approved(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    request_id, _ = oauth.start(browser, client)
    denied = browser.post(CONSENT, json={"request_id": request_id, "decision": "deny"})
    assert denied.status_code == 200
    assert denied.get_json()["status"] == "denied"
    location = denied.get_json()["location"]
    assert without_query(location) == REDIRECT_URI
    assert params(location) == {
        "error": "access_denied",
        "error_description": "The user denied the request.",
        "state": STATE,
        "iss": ISSUER,
    }
    again = browser.post(CONSENT, json={"request_id": request_id, "decision": "approve"})
    assert again.status_code == 400
    assert again.get_json() == UNKNOWN_REQUEST


# --- Scope escalation (SPEC §4.2) ----------------------------------------------------------------


def test_client_cannot_escalate_to_a_scope_it_is_not_allowed(oauth: OAuthActions) -> None:
    client = oauth.make_client(scopes="openid CREATE_POST")
    admin = oauth.auth.admin("root")  # holds MANAGE_POSTS: only the client limits it
    request_id, verifier = oauth.start(admin, client, scope="openid CREATE_POST MANAGE_POSTS")
    details = admin.get(CONSENT, query_string={"request_id": request_id}).get_json()
    assert details["requested_scopes"] == ["openid", "CREATE_POST", "MANAGE_POSTS"]
    assert details["granted_scopes"] == ["openid", "CREATE_POST"]
    assert details["scopes"][2] == {
        "name": "MANAGE_POSTS",
        "description": "Edit and delete anyone's threads and replies",
        "granted": False,
        "reason": "not_allowed_for_client",
    }
    approved = admin.post(CONSENT, json={"request_id": request_id, "decision": "approve"})
    code = params(approved.get_json()["location"])["code"]
    response = oauth.token(
        client,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
    )
    assert response.status_code == 200
    assert response.get_json()["scope"] == "openid CREATE_POST"
    assert assert_alive(oauth.app, response.get_json()["access_token"])["permissions"] == [
        "CREATE_POST"
    ]


def test_account_cannot_escalate_through_a_powerful_client(oauth: OAuthActions) -> None:
    client = oauth.make_client(scopes="CREATE_POST MANAGE_CATEGORIES")
    member = oauth.auth.signup("alice")
    request_id, verifier = oauth.start(member, client, scope="CREATE_POST MANAGE_CATEGORIES")
    details = member.get(CONSENT, query_string={"request_id": request_id}).get_json()
    assert details["granted_scopes"] == ["CREATE_POST"]
    assert details["scopes"] == [
        {
            "name": "CREATE_POST",
            "description": "Create threads and replies as you",
            "granted": True,
            "reason": None,
        },
        {
            "name": "MANAGE_CATEGORIES",
            "description": "Create and change forum categories",
            "granted": False,
            "reason": "account_lacks_permission",
        },
    ]
    approved = member.post(CONSENT, json={"request_id": request_id, "decision": "approve"})
    code = params(approved.get_json()["location"])["code"]
    tokens = oauth.token(
        client,
        {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
    ).get_json()
    assert tokens["scope"] == "CREATE_POST"
    denied = oauth.app.test_client().post(
        "/api/categories", json={"name": "Mine"}, headers=bearer(tokens["access_token"])
    )
    assert denied.status_code == 403


def test_consent_cannot_add_a_dropped_scope_back(oauth: OAuthActions) -> None:
    client = oauth.make_client(scopes="CREATE_POST MANAGE_CATEGORIES")
    member = oauth.auth.signup("alice")
    request_id, _ = oauth.start(member, client, scope="CREATE_POST MANAGE_CATEGORIES")
    for scopes in (["CREATE_POST", "MANAGE_CATEGORIES"], ["ADMINISTRATOR"], ["MANAGE_POSTS"]):
        response = member.post(
            CONSENT, json={"request_id": request_id, "decision": "approve", "scopes": scopes}
        )
        assert_error(response, 400, "invalid_scope")
    # The failed attempts left the request pending.
    approved = member.post(CONSENT, json={"request_id": request_id, "decision": "approve"})
    assert approved.status_code == 200


def test_consent_rejects_an_unknown_scope_name(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    member = oauth.auth.signup("alice")
    request_id, _ = oauth.start(member, client)
    response = member.post(
        CONSENT, json={"request_id": request_id, "decision": "approve", "scopes": ["NOPE"]}
    )
    assert_error(response, 400, "invalid_scope")


def test_authorize_unknown_scope_redirects_invalid_scope(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    response = oauth.authorize(browser, oauth.authorize_query(client, scope="openid SUPERUSER"))
    error = assert_redirect_error(response, REDIRECT_URI, "invalid_scope")
    assert error["error_description"] == "Unknown scope: SUPERUSER."


def test_dynamic_registration_cannot_obtain_privileged_scopes(
    make_oauth: Callable[..., OAuthActions],
) -> None:
    oauth = make_oauth(OAUTH_DYNAMIC_REGISTRATION_ENABLED=True)
    privileged = (
        "ADMINISTRATOR MANAGE_POSTS MANAGE_CATEGORIES MANAGE_ACCOUNTS MANAGE_SUSPENSIONS "
        "MANAGE_ROLES VIEW_ACCOUNTS USE_OAUTH_CLIENTS USE_PERSONAL_ACCESS_KEYS"
    )
    response = oauth.app.test_client().post(
        "/api/oauth/register",
        json={
            "client_name": "Self-made",
            "redirect_uris": [REDIRECT_URI],
            "scope": f"openid CREATE_POST {privileged}",
        },
    )
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["scope"] == "openid CREATE_POST"
    assert body["client_secret"].startswith("hsec_")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Access-Control-Allow-Origin"] == "*"

    admin = oauth.auth.admin("root")
    _, challenge = pkce_pair()
    authorize = oauth.authorize(
        admin,
        {
            "response_type": "code",
            "client_id": body["client_id"],
            "redirect_uri": REDIRECT_URI,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "scope": "CREATE_POST ADMINISTRATOR MANAGE_ROLES",
        },
    )
    request_id = params(authorize.headers["Location"])["request_id"]
    details = admin.get(CONSENT, query_string={"request_id": request_id}).get_json()
    assert details["granted_scopes"] == ["CREATE_POST"]
    assert [(s["name"], s["reason"]) for s in details["scopes"]] == [
        ("CREATE_POST", None),
        ("ADMINISTRATOR", "not_allowed_for_client"),
        ("MANAGE_ROLES", "not_allowed_for_client"),
    ]


def test_dynamic_registration_disabled_is_404(oauth: OAuthActions) -> None:
    response = oauth.app.test_client().post(
        "/api/oauth/register", json={"redirect_uris": [REDIRECT_URI], "scope": "ADMINISTRATOR"}
    )
    assert response.status_code == 404
    assert response.get_json() == {
        "error": "not_found",
        "error_description": "Dynamic client registration is disabled.",
    }


def test_dynamic_registration_rejects_unsafe_redirect_uri(
    make_oauth: Callable[..., OAuthActions],
) -> None:
    oauth = make_oauth(OAUTH_DYNAMIC_REGISTRATION_ENABLED=True)
    response = oauth.app.test_client().post(
        "/api/oauth/register", json={"redirect_uris": ["http://evil.example/cb"]}
    )
    assert_error(response, 400, "invalid_redirect_uri")


# --- Client authentication (SPEC §4.3) -----------------------------------------------------------


@pytest.mark.parametrize(
    ("registered", "used"),
    [
        ("client_secret_basic", "client_secret_post"),
        ("client_secret_post", "client_secret_basic"),
        ("client_secret_basic", "none"),
        ("client_secret_post", "none"),
        ("client_secret_basic", ""),
    ],
)
def test_token_enforces_the_registered_client_auth_method(
    oauth: OAuthActions, registered: str, used: str
) -> None:
    client = oauth.make_client(auth_method=registered)
    browser = oauth.auth.signup("alice")
    authorized = oauth.approve(browser, client)
    data = {
        "grant_type": "authorization_code",
        "code": authorized.code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": authorized.verifier,
    }
    response = oauth.token(client, data, auth=used)
    assert_token_error(response, 401, "invalid_client")
    # The code was not consumed by the failed authentication.
    assert oauth.token(client, data).status_code == 200


def test_public_client_sending_a_secret_is_invalid_client(oauth: OAuthActions) -> None:
    client = oauth.make_client(public=True)
    browser = oauth.auth.signup("alice")
    authorized = oauth.approve(browser, client)
    data = {
        "grant_type": "authorization_code",
        "code": authorized.code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": authorized.verifier,
        "client_id": client.client_id,
        "client_secret": "hsec_guessed",
    }
    response = oauth.token(client, data, auth="")
    assert_token_error(response, 401, "invalid_client")
    assert oauth.redeem(client, authorized).status_code == 200


def test_token_wrong_client_secret_is_invalid_client(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    authorized = oauth.approve(browser, client)
    response = oauth.token(
        client,
        {
            "grant_type": "authorization_code",
            "code": authorized.code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": authorized.verifier,
        },
        auth="",
        headers=basic(client.client_id, "hsec_wrong"),
    )
    assert_token_error(response, 401, "invalid_client")
    assert response.headers["WWW-Authenticate"].startswith('Basic error="invalid_client"')


def test_token_basic_and_body_credentials_together_is_invalid_request(
    oauth: OAuthActions,
) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    authorized = oauth.approve(browser, client)
    data = {
        "grant_type": "authorization_code",
        "code": authorized.code,
        "redirect_uri": REDIRECT_URI,
        "code_verifier": authorized.verifier,
        "client_id": client.client_id,
        "client_secret": client.client_secret or "",
    }
    response = oauth.token(client, data, auth="client_secret_basic")
    assert_token_error(
        response, 400, "invalid_request", "Use one client authentication method, not several."
    )


# --- Duplicated parameters (RFC 6749 §3.1, §3.2) -------------------------------------------------


@pytest.mark.parametrize(
    "name", ["scope", "state", "response_type", "code_challenge", "code_challenge_method", "nonce"]
)
def test_authorize_duplicated_parameter_redirects_invalid_request(
    oauth: OAuthActions, name: str
) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    query = list(oauth.authorize_query(client, nonce="n-1").items())
    query.append((name, dict(query)[name]))
    response = oauth.authorize(browser, query)
    error = assert_redirect_error(response, REDIRECT_URI, "invalid_request")
    assert error["error_description"] == f"The {name} parameter is repeated."


@pytest.mark.parametrize("name", ["client_id", "redirect_uri"])
def test_authorize_duplicated_client_id_or_redirect_uri_is_400_json(
    oauth: OAuthActions, name: str
) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    query = list(oauth.authorize_query(client).items())
    query.append((name, dict(query)[name]))
    response = oauth.authorize(browser, query)
    assert response.status_code == 400
    assert response.get_json() == {
        "error": "invalid_request",
        "error_description": f"The {name} parameter is repeated.",
    }
    assert "Location" not in response.headers


@pytest.mark.parametrize("name", ["grant_type", "code", "code_verifier", "redirect_uri"])
def test_token_duplicated_parameter_is_invalid_request(oauth: OAuthActions, name: str) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    authorized = oauth.approve(browser, client)
    data = [
        ("grant_type", "authorization_code"),
        ("code", authorized.code),
        ("redirect_uri", REDIRECT_URI),
        ("code_verifier", authorized.verifier),
    ]
    data.append((name, dict(data)[name]))
    response = oauth.token(client, data)
    assert_token_error(response, 400, "invalid_request", f"The {name} parameter is repeated.")
    assert oauth.redeem(client, authorized).status_code == 200


# --- Revocation takes effect at once (RFC 7009, SPEC §4.3) ---------------------------------------


def test_revoked_access_token_is_refused_at_once(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, client)
    assert_alive(oauth.app, tokens["access_token"])
    response = oauth.token(
        client, {"token": tokens["access_token"], "token_type_hint": "access_token"}, path=REVOKE
    )
    assert response.status_code == 200
    assert_dead(oauth.app, tokens["access_token"])
    # Revoking one access token leaves the grant: the refresh token still works.
    assert oauth.refresh(client, tokens["refresh_token"]).status_code == 200


def test_verified_access_token_is_still_refused_once_its_exp_passes(
    oauth: OAuthActions, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Workers remember which token strings verified; expiry must still be checked every time.
    client = oauth.make_client()
    tokens = oauth.tokens(oauth.auth.signup("alice"), client)
    assert_alive(oauth.app, tokens["access_token"])
    later = time.time() + 3600 + 1
    monkeypatch.setattr("app.oauth.tokens.time.time", lambda: later)
    assert_dead(oauth.app, tokens["access_token"])


def test_tampered_copy_of_a_verified_access_token_is_refused(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    tokens = oauth.tokens(oauth.auth.signup("alice"), client)
    assert_alive(oauth.app, tokens["access_token"])
    header, payload, signature = tokens["access_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["scope"] += " ADMINISTRATOR"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert_dead(oauth.app, f"{header}.{forged}.{signature}")
    assert_dead(oauth.app, "x" * 5000 + "." + payload + "." + signature)


def test_revoked_refresh_token_ends_the_whole_grant(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, client)
    response = oauth.token(client, {"token": tokens["refresh_token"]}, path=REVOKE)
    assert response.status_code == 200
    assert_dead(oauth.app, tokens["access_token"])
    assert_refresh_refused(oauth.refresh(client, tokens["refresh_token"]))
    assert browser.get("/api/accounts/self/authorized-apps").get_json() == {"items": []}


# --- Permissions are evaluated on every request (SPEC §3) ----------------------------------------


def test_role_removed_after_approval_takes_effect_on_the_same_token(oauth: OAuthActions) -> None:
    oauth.auth.admin("root")
    oauth.auth.signup("alice")
    oauth.cli("roles", "grant", "alice", "admin")
    alice = oauth.auth.signin("alice")
    client = oauth.make_client(scopes="MANAGE_CATEGORIES")
    tokens = oauth.tokens(alice, client, scope="MANAGE_CATEGORIES")
    assert tokens["scope"] == "MANAGE_CATEGORIES"
    api = oauth.app.test_client()
    created = api.post(
        "/api/categories", json={"name": "News"}, headers=bearer(tokens["access_token"])
    )
    assert created.status_code == 201

    oauth.cli("roles", "revoke", "alice", "admin")
    denied = api.post(
        "/api/categories", json={"name": "Other"}, headers=bearer(tokens["access_token"])
    )
    assert denied.status_code == 403
    assert denied.get_json()["error"] == "forbidden"
    assert denied.headers["WWW-Authenticate"] == (
        'Bearer error="insufficient_scope", scope="MANAGE_CATEGORIES", '
        f'resource_metadata="{RESOURCE_METADATA_URL}"'
    )


def test_role_removed_via_api_takes_effect_on_the_same_token(oauth: OAuthActions) -> None:
    root = oauth.auth.admin("root")
    oauth.auth.signup("alice")
    assert (
        root.put("/api/accounts/alice/roles", json={"roles": ["member", "admin"]}).status_code
        == 200
    )
    alice = oauth.auth.signin("alice")
    client = oauth.make_client(scopes="MANAGE_CATEGORIES")
    tokens = oauth.tokens(alice, client, scope="MANAGE_CATEGORIES")
    assert root.put("/api/accounts/alice/roles", json={"roles": ["member"]}).status_code == 200
    denied = oauth.app.test_client().post(
        "/api/categories", json={"name": "Other"}, headers=bearer(tokens["access_token"])
    )
    assert denied.status_code == 403
    assert (
        'error="insufficient_scope", scope="MANAGE_CATEGORIES"'
        in (denied.headers["WWW-Authenticate"])
    )


def test_scopes_are_recomputed_at_approval(oauth: OAuthActions) -> None:
    oauth.auth.admin("root")
    oauth.auth.signup("alice")
    oauth.cli("roles", "grant", "alice", "admin")
    alice = oauth.auth.signin("alice")
    client = oauth.make_client(scopes="CREATE_POST MANAGE_CATEGORIES")
    request_id, _ = oauth.start(alice, client, scope="CREATE_POST MANAGE_CATEGORIES")
    read = alice.get(CONSENT, query_string={"request_id": request_id}).get_json()
    assert read["granted_scopes"] == ["CREATE_POST", "MANAGE_CATEGORIES"]
    oauth.cli("roles", "revoke", "alice", "admin")
    approved = alice.post(CONSENT, json={"request_id": request_id, "decision": "approve"})
    assert approved.status_code == 200
    with oauth.app.app_context():
        assert db.session.scalars(select(AuthorizationCode.scope)).one() == "CREATE_POST"


# --- Sessions, bearer tokens and the browser endpoints (SPEC §4.1, §4.2) -------------------------


def test_access_token_cannot_answer_consent(oauth: OAuthActions) -> None:
    client = oauth.make_client(scopes=DEFAULT_SCOPES + " USE_OAUTH_CLIENTS")
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, client, scope=DEFAULT_SCOPES + " USE_OAUTH_CLIENTS")
    assert "USE_OAUTH_CLIENTS" in tokens["scope"].split()
    request_id, _ = oauth.start(browser, client)
    api = oauth.app.test_client()
    headers = bearer(tokens["access_token"])
    read = api.get(CONSENT, query_string={"request_id": request_id}, headers=headers)
    assert read.status_code == 401
    approve = api.post(
        CONSENT, json={"request_id": request_id, "decision": "approve"}, headers=headers
    )
    assert approve.status_code == 401
    # Not even alongside the account's own cookie: the bearer token wins and is refused.
    both = browser.post(
        CONSENT, json={"request_id": request_id, "decision": "approve"}, headers=headers
    )
    assert both.status_code == 401
    assert browser.get(CONSENT, query_string={"request_id": request_id}).status_code == 200


def test_access_token_cannot_start_authorization(oauth: OAuthActions) -> None:
    client = oauth.make_client(scopes=DEFAULT_SCOPES + " USE_OAUTH_CLIENTS")
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, client, scope=DEFAULT_SCOPES + " USE_OAUTH_CLIENTS")
    response = oauth.app.test_client().get(
        "/api/oauth/authorize",
        query_string=urlencode(oauth.authorize_query(client)),
        headers=bearer(tokens["access_token"]),
    )
    assert response.status_code == 302
    assert without_query(response.headers["Location"]) == LOGIN_URL


def test_authorize_without_session_redirects_to_login_with_return_url(
    oauth: OAuthActions,
) -> None:
    client = oauth.make_client()
    query = oauth.authorize_query(client, nonce="n-1")
    anonymous = oauth.app.test_client()
    response = anonymous.get(f"/api/oauth/authorize?{urlencode(query)}", base_url=ISSUER)
    assert response.status_code == 302
    location = response.headers["Location"]
    assert without_query(location) == LOGIN_URL
    assert list(params(location)) == ["return_url"]
    return_url = params(location)["return_url"]
    assert without_query(return_url) == f"{ISSUER}/api/oauth/authorize"
    assert params(return_url) == query
    assert response.headers["Cache-Control"] == "no-store"

    # After signing in, the same URL continues the flow.
    oauth.auth.signup("alice", client=anonymous)
    again = anonymous.get(return_url)
    assert again.status_code == 302
    assert without_query(again.headers["Location"]) == CONSENT_URL


def test_authorize_return_url_uses_the_public_api_address_behind_a_proxy(
    oauth: OAuthActions,
) -> None:
    client = oauth.make_client()
    query = oauth.authorize_query(client)
    response = oauth.app.test_client().get(
        f"/api/oauth/authorize?{urlencode(query)}", base_url="http://10.0.0.7:8000"
    )
    return_url = params(response.headers["Location"])["return_url"]
    assert without_query(return_url) == f"{ISSUER}/api/oauth/authorize"
    assert params(return_url) == query


def test_authorize_without_session_does_not_leak_client_validity(oauth: OAuthActions) -> None:
    """No session: the login redirect comes first, before any client check (SPEC §4.1 step 1)."""
    response = oauth.app.test_client().get(
        "/api/oauth/authorize", query_string={"client_id": "hc_unknown"}
    )
    assert response.status_code == 302
    assert without_query(response.headers["Location"]) == LOGIN_URL


def test_account_without_use_oauth_clients_is_denied(oauth: OAuthActions) -> None:
    oauth.auth.signup("alice")
    oauth.cli("roles", "revoke", "alice", "member")
    alice = oauth.auth.signin("alice")
    client = oauth.make_client()
    response = oauth.authorize(alice, oauth.authorize_query(client))
    error = assert_redirect_error(response, REDIRECT_URI, "access_denied")
    assert error["error_description"] == "Your account may not authorise applications."


# --- Resource indicators (RFC 8707) --------------------------------------------------------------


@pytest.mark.parametrize(
    "resource",
    ["https://evil.example/api", f"{ISSUER}/api/", f"{ISSUER}", f"{ISSUER}/api/threads"],
)
def test_authorize_unknown_resource_redirects_invalid_target(
    oauth: OAuthActions, resource: str
) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    response = oauth.authorize(browser, oauth.authorize_query(client, resource=resource))
    error = assert_redirect_error(response, REDIRECT_URI, "invalid_target")
    assert error["error_description"] == f"The only resource here is {RESOURCE}."


def test_token_unknown_resource_is_400_invalid_target(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    authorized = oauth.approve(browser, client, resource=RESOURCE)
    response = oauth.redeem(client, authorized, resource="https://evil.example/api")
    assert_token_error(response, 400, "invalid_target", f"The only resource here is {RESOURCE}.")
    tokens = oauth.redeem(client, authorized, resource=RESOURCE)
    assert tokens.status_code == 200
    refreshed = oauth.refresh(
        client, tokens.get_json()["refresh_token"], resource="https://evil.example/api"
    )
    assert_token_error(refreshed, 400, "invalid_target")


# --- Forged and foreign access tokens ------------------------------------------------------------


ACCESS_TOKEN_KEY = keys.load(SIGNING_KEY).access_token


def _claims(access_token: str) -> dict[str, object]:
    return dict(jwt.decode(access_token, ACCESS_TOKEN_KEY.key).claims)


def _sign(claims: dict[str, object], key: RSAKey | ECKey | None = None, typ: str = "at+jwt") -> str:
    key = key or ACCESS_TOKEN_KEY.key
    alg = "RS256" if isinstance(key, RSAKey) else "ES256"
    return jwt.encode({"alg": alg, "typ": typ, "kid": key.thumbprint()}, claims, key)


@pytest.mark.parametrize(
    "forge",
    [
        "tampered_signature",
        "tampered_claims",
        "other_key",
        "kid_of_the_access_key_with_rs256",
        "other_issuer",
        "other_audience",
        "id_token_type",
        "expired",
        "alg_none",
        "unknown_jti",
    ],
)
def test_api_rejects_forged_access_tokens(oauth: OAuthActions, forge: str) -> None:
    client = oauth.make_client(scopes=DEFAULT_SCOPES + " MANAGE_CATEGORIES")
    admin = oauth.auth.admin("root")
    genuine = oauth.tokens(admin, client)["access_token"]
    claims = _claims(genuine)
    header, payload, signature = genuine.split(".")
    if forge == "tampered_signature":
        middle = len(signature) // 2
        flipped = "A" if signature[middle] != "A" else "B"
        token = f"{header}.{payload}.{signature[:middle]}{flipped}{signature[middle + 1 :]}"
    elif forge == "tampered_claims":
        escalated = _sign({**claims, "scope": "MANAGE_CATEGORIES"}).split(".")[1]
        token = f"{header}.{escalated}.{signature}"
    elif forge == "other_key":
        token = _sign({**claims, "scope": "MANAGE_CATEGORIES"}, ECKey.generate_key("P-256"))
    elif forge == "kid_of_the_access_key_with_rs256":
        # Algorithm confusion: the ES256 key's kid on an RS256 signature (by a key we do not hold).
        other = RSAKey.generate_key(2048)
        token = jwt.encode(
            {"alg": "RS256", "typ": "at+jwt", "kid": ACCESS_TOKEN_KEY.kid}, claims, other
        )
    elif forge == "other_issuer":
        token = _sign({**claims, "iss": "https://evil.example"})
    elif forge == "other_audience":
        token = _sign({**claims, "aud": "https://evil.example/api"})
    elif forge == "id_token_type":
        token = _sign(claims, typ="JWT")
    elif forge == "expired":
        token = _sign({**claims, "exp": int(time.time()) - 10})
    elif forge == "alg_none":

        def part(value: dict[str, object]) -> str:
            return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

        token = f"{part({'alg': 'none', 'typ': 'at+jwt'})}.{part(claims)}."
    else:
        token = _sign({**claims, "jti": "01aaaaaaaaaaaaaaaaaaaaaaaa"})
    assert_dead(oauth.app, token)
    assert_alive(oauth.app, genuine)


def test_api_rejects_id_token_as_access_token(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, client, nonce="n-1")
    assert_dead(oauth.app, tokens["id_token"])


def test_api_rejects_token_issued_by_another_issuer(
    oauth: OAuthActions, make_oauth: Callable[..., OAuthActions]
) -> None:
    """Another deployment sharing the key and database is still another issuer."""
    other = make_oauth(PUBLIC_API_ADDRESS="https://other.example")
    client = other.make_client()
    browser = other.auth.signup("alice")
    tokens = other.tokens(browser, client)
    assert _claims(tokens["access_token"])["iss"] == "https://other.example"
    assert (
        other.app.test_client().get(SELF, headers=bearer(tokens["access_token"])).status_code == 200
    )
    assert_dead(oauth.app, tokens["access_token"])


def test_api_rejects_refresh_token_as_bearer(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, client)
    assert_dead(oauth.app, tokens["refresh_token"])


def test_another_client_cannot_revoke_someone_elses_tokens(oauth: OAuthActions) -> None:
    """RFC 7009 §2.1: another client's token is answered 200 and left alone."""
    client = oauth.make_client()
    thief = oauth.make_client(name="Thief")
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, client)
    response = oauth.token(thief, {"token": tokens["refresh_token"]}, path=REVOKE)
    assert response.status_code == 200
    assert_alive(oauth.app, tokens["access_token"])
    assert oauth.refresh(client, tokens["refresh_token"]).status_code == 200
    with oauth.app.app_context():
        assert db.session.scalar(select(Token.id).where(Token.revoked_at.is_not(None))) is None


# --- More redirect URI and code tricks -----------------------------------------------------------


@pytest.mark.parametrize(
    "presented",
    [
        # Browsers read "\" as "/": this is http://127.0.0.1:1234/.evil.example/cb to them.
        "http://127.0.0.1:1234\\.evil.example/cb",
        "http://127.0.0.1:notaport/cb",
    ],
)
def test_loopback_leniency_varies_only_a_numeric_port(oauth: OAuthActions, presented: str) -> None:
    client = oauth.make_client(redirect_uris=["http://127.0.0.1:9999/cb"])
    browser = oauth.auth.signup("alice")
    response = oauth.authorize(browser, oauth.authorize_query(client, redirect_uri=presented))
    assert response.status_code == 400
    assert response.get_json() == UNREGISTERED
    assert "Location" not in response.headers


def test_code_replay_after_the_code_expired_still_revokes_the_first_tokens(
    oauth: OAuthActions,
) -> None:
    """SPEC §4.3: a second valid redemption, racing or later, revokes what the first got."""
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    authorized = oauth.approve(browser, client)
    tokens = oauth.redeem(client, authorized).get_json()
    expire_all(oauth.app, AuthorizationCode)
    assert_token_error(oauth.redeem(client, authorized), 400, "invalid_grant")
    assert_dead(oauth.app, tokens["access_token"])


def test_dynamic_registration_cannot_make_itself_first_party(
    make_oauth: Callable[..., OAuthActions],
) -> None:
    oauth = make_oauth(OAUTH_DYNAMIC_REGISTRATION_ENABLED=True)
    api = oauth.app.test_client()
    response = api.post(
        "/api/oauth/register",
        json={
            "redirect_uris": [REDIRECT_URI],
            "scope": "openid CREATE_POST",
            "skip_consent": True,
            "scope_policy": "inherit",
            "owner": "root",
            "public": False,
        },
    )
    assert response.status_code == 201
    client_id = response.get_json()["client_id"]
    admin = oauth.auth.admin("root")
    stored = admin.get(f"/api/admin/oauth/clients/{client_id}").get_json()
    assert stored["skip_consent"] is False
    assert stored["scope_policy"] == "explicit"
    assert stored["owner"] is None
    machine = api.post(
        "/api/oauth/register",
        json={"redirect_uris": [REDIRECT_URI], "grant_types": ["client_credentials"]},
    )
    assert_error(machine, 400, "invalid_client_metadata")


def test_prompt_login_sends_an_old_session_back_to_sign_in(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    with oauth.app.app_context():
        db.session.execute(update(AuthSession).values(created_at=utcnow() - timedelta(minutes=5)))
        db.session.commit()
    query = oauth.authorize_query(client, prompt="login")
    stale = oauth.authorize(browser, query)
    assert stale.status_code == 302
    assert without_query(stale.headers["Location"]) == LOGIN_URL
    fresh = oauth.auth.signin("alice")
    again = oauth.authorize(fresh, query)
    assert without_query(again.headers["Location"]) == CONSENT_URL


# --- Races: of two simultaneous requests, one wins (STYLE habit 3) -------------------------------


def _race(*calls: Callable[[], TestResponse]) -> list[int]:
    """Run the calls at the same moment on separate threads; return their statuses in order."""
    barrier = threading.Barrier(len(calls))
    statuses: list[int] = [0] * len(calls)

    def run(index: int) -> None:
        barrier.wait()
        statuses[index] = calls[index]().status_code

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return statuses


def test_racing_code_redemptions_one_wins_and_its_tokens_are_revoked(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    authorized = oauth.approve(browser, client)
    statuses = _race(*[lambda: oauth.redeem(client, authorized)] * 2)
    assert sorted(statuses) == [200, 400]
    with oauth.app.app_context():
        issued = db.session.scalars(select(Token)).all()
        assert len(issued) == 2  # one access and one refresh token, from the winner only
        assert all(token.revoked_at is not None for token in issued)


def test_racing_refreshes_one_wins_and_the_grant_ends(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, client)
    statuses = _race(*[lambda: oauth.refresh(client, tokens["refresh_token"])] * 2)
    assert sorted(statuses) == [200, 400]
    with oauth.app.app_context():
        assert db.session.scalar(select(Token.id).where(Token.revoked_at.is_(None))) is None


def test_racing_consent_approvals_one_wins(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    request_id, _ = oauth.start(browser, client)
    cookie = browser.get_cookie(SESSION_COOKIE)
    assert cookie is not None
    tabs = []
    for _ in range(2):
        tab = oauth.app.test_client()
        tab.set_cookie(SESSION_COOKIE, cookie.value)
        tabs.append(tab)
    body = {"request_id": request_id, "decision": "approve"}
    statuses = _race(*[lambda tab=tab: tab.post(CONSENT, json=body) for tab in tabs])
    assert sorted(statuses) == [200, 400]
    with oauth.app.app_context():
        assert len(db.session.scalars(select(AuthorizationCode)).all()) == 1
        assert len(db.session.scalars(select(Grant)).all()) == 1


def test_access_token_in_the_query_string_is_ignored(oauth: OAuthActions) -> None:
    """RFC 9728 bearer_methods_supported is ["header"]: tokens in URLs leak into logs."""
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, client)
    response = oauth.app.test_client().get(
        SELF, query_string={"access_token": tokens["access_token"]}
    )
    assert response.status_code == 401
    assert (
        response.headers["WWW-Authenticate"]
        == f'Bearer resource_metadata="{RESOURCE_METADATA_URL}"'
    )


def test_cross_site_page_cannot_revoke_an_authorized_app(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, client)
    grant_id = browser.get("/api/accounts/self/authorized-apps").get_json()["items"][0]["grant_id"]
    response = browser.delete(
        f"/api/accounts/self/authorized-apps/{grant_id}", headers={"Origin": "https://evil.example"}
    )
    assert response.status_code == 403
    assert response.get_json()["error"] == "cross_origin_request"
    assert_alive(oauth.app, tokens["access_token"])
