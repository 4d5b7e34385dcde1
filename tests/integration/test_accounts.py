"""Sign-up, sign-in, sessions and roles through the real API."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from app.auth import SESSION_COOKIE, sha256
from app.db import utcnow
from app.extensions import db
from app.models import Account, AuthSession
from tests.conftest import PASSWORD, AuthActions

SIGNUP = "/api/auth/password/signup"
SIGNIN = "/api/auth/password/signin"
SELF = "/api/accounts/self"
RESOURCE_METADATA = (
    'Bearer resource_metadata="http://localhost:8000/.well-known/oauth-protected-resource/api"'
)


def session_cookie(client: FlaskClient) -> str:
    cookie = client.get_cookie(SESSION_COOKIE)
    assert cookie is not None
    return cookie.value


def test_self_without_session_is_401_with_bearer_challenge(client: FlaskClient) -> None:
    response = client.get(SELF)
    assert response.status_code == 401
    assert response.get_json() == {
        "error": "unauthenticated",
        "error_description": "Sign in to continue.",
    }
    assert response.headers["WWW-Authenticate"] == RESOURCE_METADATA


def test_signup_sets_session_cookie_and_returns_member(client: FlaskClient) -> None:
    response = client.post(
        SIGNUP, json={"handle": "Alice", "password": PASSWORD, "email": "alice@example.org"}
    )
    assert response.status_code == 200
    body = response.get_json()
    assert body["handle"] == "alice"
    assert body["email"] == "alice@example.org"
    assert body["roles"] == ["member"]
    assert body["permissions"] == [
        "READ_PUBLISHED_THREADS",
        "CREATE_POST",
        "CREATE_REACTION",
        "LIST_PROFILES",
        "READ_PROFILE",
        "USE_OAUTH_CLIENTS",
        "USE_PERSONAL_ACCESS_KEYS",
    ]
    assert response.headers["Cache-Control"] == "no-store"
    set_cookie = response.headers["Set-Cookie"]
    token = set_cookie.split(";")[0].split("=", 1)[1]
    assert len(token) >= 43  # 256 random bits, base64url
    attributes = [part.strip() for part in set_cookie.split(";")[1:]]
    assert "HttpOnly" in attributes
    assert "Path=/" in attributes
    assert "SameSite=Lax" in attributes
    assert f"Max-Age={90 * 24 * 3600}" in attributes
    assert "Secure" not in attributes  # http PUBLIC_API_ADDRESS in tests

    me = client.get(SELF)
    assert me.status_code == 200
    assert me.get_json()["id"] == body["id"]


def test_session_cookie_is_stored_only_as_its_hash(app: Flask, client: FlaskClient) -> None:
    client.post(SIGNUP, json={"handle": "alice", "password": PASSWORD})
    token = session_cookie(client)
    with app.app_context():
        stored = db.session.scalars(select(AuthSession.token_hash)).all()
    assert stored == [sha256(token)]
    assert token not in stored


def test_secure_cookie_when_api_is_https(database_url: str) -> None:
    from tests.conftest import make_app

    app = make_app(database_url, SESSION_COOKIE_SECURE=True)
    response = app.test_client().post(SIGNUP, json={"handle": "alice", "password": PASSWORD})
    assert "Secure" in [p.strip() for p in response.headers["Set-Cookie"].split(";")]


def test_wrong_password_and_unknown_handle_give_the_same_401(
    client: FlaskClient, auth: AuthActions
) -> None:
    auth.signup("alice")
    wrong = client.post(SIGNIN, json={"handle": "alice", "password": "not-the-password"})
    unknown = client.post(SIGNIN, json={"handle": "nobody", "password": "not-the-password"})
    assert wrong.status_code == unknown.status_code == 401
    assert (
        wrong.get_json()
        == unknown.get_json()
        == {
            "error": "invalid_credentials",
            "error_description": "The handle or password is incorrect.",
        }
    )
    assert "Set-Cookie" not in wrong.headers
    assert "Set-Cookie" not in unknown.headers


def test_signin_is_case_insensitive_on_handle(client: FlaskClient, auth: AuthActions) -> None:
    auth.signup("alice")
    response = client.post(SIGNIN, json={"handle": "ALICE", "password": PASSWORD})
    assert response.status_code == 200
    assert response.get_json()["handle"] == "alice"


def test_duplicate_handle_is_409(client: FlaskClient, auth: AuthActions) -> None:
    auth.signup("alice")
    response = client.post(SIGNUP, json={"handle": "Alice", "password": PASSWORD})
    assert response.status_code == 409
    assert response.get_json() == {
        "error": "conflict",
        "error_description": "That handle is already taken.",
        "fields": {"handle": "is already taken"},
    }


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"handle": "alice", "password": ""}, {"password": "must be at least 8 characters"}),
        ({"handle": "alice", "password": "short"}, {"password": "must be at least 8 characters"}),
        (
            {"handle": "alice", "password": "password123"},
            {"password": "is too common or too simple"},
        ),
        (
            {"handle": "alice", "password": "aaaaaaaaaaaa"},
            {"password": "is too common or too simple"},
        ),
        (
            {"handle": "alice", "password": "alice-is-great"},
            {"password": "must not contain your handle"},
        ),
        (
            {"handle": "a" * 10_000, "password": PASSWORD},
            {"handle": "String should have at most 30 characters"},
        ),
        (
            {"handle": "", "password": PASSWORD},
            {
                "handle": "must be 3 to 30 characters: letters, digits, '-' or '_', starting with a letter or digit"
            },
        ),
        (
            {"handle": "bad handle!", "password": PASSWORD},
            {
                "handle": "must be 3 to 30 characters: letters, digits, '-' or '_', starting with a letter or digit"
            },
        ),
        ({"handle": 42, "password": PASSWORD}, {"handle": "Input should be a valid string"}),
        ({"handle": "alice", "password": ["x"]}, {"password": "Input should be a valid string"}),
        ({"handle": "alice"}, {"password": "Field required"}),
        (
            {"handle": "alice", "password": PASSWORD, "email": "nope"},
            {"email": "must be an email address"},
        ),
        (
            {"handle": "alice", "password": PASSWORD, "admin": True},
            {"admin": "Extra inputs are not permitted"},
        ),
    ],
)
def test_signup_rejects_bad_fields_with_400(
    app: Flask, client: FlaskClient, body: dict[str, object], fields: dict[str, str]
) -> None:
    response = client.post(SIGNUP, json=body)
    assert response.status_code == 400
    assert response.get_json() == {
        "error": "invalid_request",
        "error_description": "Some fields are invalid.",
        "fields": fields,
    }
    with app.app_context():
        assert db.session.scalar(select(Account.id)) is None


@pytest.mark.parametrize(
    ("data", "description"),
    [
        ("{not json", "The body is not valid JSON."),
        ("", "The body is not valid JSON."),
        ("[1, 2]", "The body must be a JSON object."),
        ('"handle"', "The body must be a JSON object."),
        # RFC 8259 has no NaN, no lone surrogates and only UTF-8.
        ('{"handle": NaN, "password": "x"}', "The body is not valid JSON."),
        ('{"handle": "\\ud800", "password": "x"}', "The body is not valid JSON."),
        (b'{"handle": "\xff", "password": "x"}', "The body is not valid JSON."),
    ],
)
def test_malformed_json_is_400(client: FlaskClient, data: str | bytes, description: str) -> None:
    for path in (SIGNUP, SIGNIN):
        response = client.post(path, data=data, content_type="application/json")
        assert response.status_code == 400
        assert response.get_json() == {"error": "invalid_request", "error_description": description}


def test_signin_rejects_non_json_with_415(client: FlaskClient) -> None:
    response = client.post(SIGNIN, data={"handle": "alice", "password": PASSWORD})
    assert response.status_code == 415
    assert response.get_json() == {
        "error": "unsupported_media_type",
        "error_description": "Send this request as application/json.",
    }


def test_signed_out_cookie_replayed_later_is_rejected(
    client: FlaskClient, auth: AuthActions
) -> None:
    auth.signup("alice", client=client)
    token = session_cookie(client)
    response = client.post("/api/auth/signout", json={})
    assert response.status_code == 204
    assert response.headers["Set-Cookie"].startswith(f"{SESSION_COOKIE}=;")
    assert client.get_cookie(SESSION_COOKIE) is None

    replay = client.application.test_client()
    replay.set_cookie(SESSION_COOKIE, token)
    response = replay.get(SELF)
    assert response.status_code == 401
    assert (
        replay.post("/api/threads", json={"title": "x", "body": "y", "category": "z"}).status_code
        == 401
    )


def test_expired_session_is_rejected(app: Flask, client: FlaskClient, auth: AuthActions) -> None:
    auth.signup("alice", client=client)
    with app.app_context():
        for row in db.session.scalars(select(AuthSession)):
            row.expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    assert client.get(SELF).status_code == 401


def test_unknown_cookie_is_treated_as_guest(client: FlaskClient) -> None:
    client.set_cookie(SESSION_COOKIE, "forged-value")
    assert client.get(SELF).status_code == 401
    assert client.get("/api/threads").status_code == 200


def test_role_removed_takes_effect_on_next_request(client: FlaskClient, auth: AuthActions) -> None:
    admin = auth.admin("root")
    auth.signup("alice")
    alice = auth.signin("alice")
    assert (
        admin.put("/api/accounts/alice/roles", json={"roles": ["member", "admin"]}).status_code
        == 200
    )
    assert alice.post("/api/categories", json={"name": "News"}).status_code == 201

    response = admin.put("/api/accounts/alice/roles", json={"roles": ["member"]})
    assert response.status_code == 200
    assert response.get_json() == {"handle": "alice", "roles": ["member"]}
    denied = alice.post("/api/categories", json={"name": "Other"})
    assert denied.status_code == 403
    assert denied.get_json() == {
        "error": "forbidden",
        "error_description": "Your account does not have the MANAGE_CATEGORIES permission.",
    }
    assert "ADMINISTRATOR" not in alice.get(SELF).get_json()["permissions"]


def test_member_cannot_change_roles(auth: AuthActions) -> None:
    auth.admin("root")
    alice = auth.signup("alice")
    response = alice.put("/api/accounts/alice/roles", json={"roles": ["member", "admin"]})
    assert response.status_code == 403
    assert response.get_json()["error"] == "forbidden"
    assert alice.get(SELF).get_json()["roles"] == ["member"]


def test_role_change_rejects_unknown_role_and_handle(auth: AuthActions) -> None:
    admin = auth.admin("root")
    auth.signup("alice")
    unknown_role = admin.put("/api/accounts/alice/roles", json={"roles": ["wizard"]})
    assert unknown_role.status_code == 400
    assert unknown_role.get_json()["fields"] == {"roles": "unknown role 'wizard'"}
    unknown_handle = admin.put("/api/accounts/nobody/roles", json={"roles": ["member"]})
    assert unknown_handle.status_code == 404


def test_last_administrator_cannot_lose_admin(auth: AuthActions) -> None:
    admin = auth.admin("root")
    response = admin.put("/api/accounts/root/roles", json={"roles": ["member"]})
    assert response.status_code == 409
    assert admin.get(SELF).get_json()["roles"] == ["admin", "member"]


def test_bearer_without_token_support_is_rejected(client: FlaskClient) -> None:
    response = client.get(SELF, headers={"Authorization": "Basic abc"})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('Bearer error="invalid_request"')


def test_api_never_sets_a_flask_session_cookie_and_varies_on_the_session_cookie(
    auth: AuthActions, client: FlaskClient
) -> None:
    alice = auth.signup("alice")
    by_cookie = alice.get("/api/accounts/self")
    assert by_cookie.status_code == 200
    assert by_cookie.headers.get_all("Set-Cookie") == []
    assert by_cookie.headers["Vary"] == "Cookie"
    anonymous = client.get("/api/threads")
    assert anonymous.status_code == 200
    assert anonymous.headers.get_all("Set-Cookie") == []
    assert "Vary" not in anonymous.headers
