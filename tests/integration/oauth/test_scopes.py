"""The scope rule: requested ∩ the client's allowed scopes ∩ the account's permissions (SPEC §4.2),
as a pure function and through the API (consent, tokens, refresh)."""

from __future__ import annotations

import pytest

from app import permissions
from app.oauth import scopes
from app.oauth.scopes import InvalidScope, decide
from app.permissions import Permission
from tests.integration.oauth.conftest import (
    CONSENT,
    DEFAULT_SCOPES,
    OAuthActions,
    assert_alive,
    assert_token_error,
)

MEMBER = permissions.MEMBER
ADMIN = frozenset({Permission.ADMINISTRATOR}) | permissions.GUEST
MEMBER_PERMISSIONS = [
    "READ_PUBLISHED_THREADS",
    "CREATE_POST",
    "CREATE_REACTION",
    "LIST_PROFILES",
    "READ_PROFILE",
    "USE_OAUTH_CLIENTS",
    "USE_PERSONAL_ACCESS_KEYS",
]
EVERY_PERMISSION_BUT_ADMINISTRATOR = [
    p.value for p in Permission if p is not Permission.ADMINISTRATOR
]


def reasons(decision: scopes.Decision) -> dict[str, str | None]:
    return {str(d["name"]): d["reason"] for d in decision.details}


# --- The rule itself -----------------------------------------------------------------------------


def test_administrator_on_the_client_does_not_filter_permissions() -> None:
    decision = decide(
        ["CREATE_POST", "MANAGE_POSTS"], frozenset({"ADMINISTRATOR"}), "explicit", MEMBER
    )
    assert decision.granted == ["CREATE_POST"]
    assert reasons(decision) == {
        "CREATE_POST": None,
        "MANAGE_POSTS": "account_lacks_permission",
    }


def test_administrator_on_the_account_does_not_filter_permissions() -> None:
    decision = decide(
        ["MANAGE_CATEGORIES", "MANAGE_POSTS"], frozenset({"MANAGE_CATEGORIES"}), "explicit", ADMIN
    )
    assert decision.granted == ["MANAGE_CATEGORIES"]
    assert reasons(decision)["MANAGE_POSTS"] == "not_allowed_for_client"


@pytest.mark.parametrize(
    ("requested", "allowed", "held", "granted", "reason"),
    [
        (["ADMINISTRATOR"], {"ADMINISTRATOR"}, ADMIN, ["ADMINISTRATOR"], None),
        (["ADMINISTRATOR"], {"ADMINISTRATOR"}, MEMBER, [], "account_lacks_permission"),
        (["ADMINISTRATOR"], {"CREATE_POST"}, ADMIN, [], "not_allowed_for_client"),
        (
            ["ADMINISTRATOR"],
            set(EVERY_PERMISSION_BUT_ADMINISTRATOR),
            ADMIN,
            [],
            "not_allowed_for_client",
        ),
        (["CREATE_POST"], {"ADMINISTRATOR"}, ADMIN, ["CREATE_POST"], None),
    ],
)
def test_administrator_is_granted_only_when_requested_allowed_and_held(
    requested: list[str],
    allowed: set[str],
    held: frozenset[Permission],
    granted: list[str],
    reason: str | None,
) -> None:
    decision = decide(requested, frozenset(allowed), "explicit", held)
    assert decision.granted == granted
    assert reasons(decision) == {requested[0]: reason}


def test_administrator_is_never_implied_by_other_requests() -> None:
    decision = decide(["CREATE_POST"], frozenset({"ADMINISTRATOR"}), "explicit", ADMIN)
    assert "ADMINISTRATOR" not in decision.granted


@pytest.mark.parametrize("name", ["openid", "profile", "email", "offline_access"])
def test_oidc_scopes_must_be_allowed_for_the_client_and_administrator_does_not_cover_them(
    name: str,
) -> None:
    decision = decide([name, "CREATE_POST"], frozenset({"ADMINISTRATOR"}), "explicit", ADMIN)
    assert decision.granted == ["CREATE_POST"]
    assert reasons(decision)[name] == "not_allowed_for_client"
    allowed = decide([name], frozenset({name}), "explicit", permissions.GUEST)
    assert allowed.granted == [name]


def test_empty_scope_grants_nothing_to_an_explicit_client() -> None:
    decision = decide([], frozenset({"openid", "ADMINISTRATOR", "CREATE_POST"}), "explicit", ADMIN)
    assert decision.granted == []
    assert decision.details == []


def test_empty_scope_for_an_inherit_client_is_every_held_and_allowed_permission() -> None:
    allowed = frozenset({"openid", "CREATE_POST", "MANAGE_POSTS", "READ_PROFILE"})
    decision = decide([], allowed, "inherit", MEMBER)
    assert decision.requested == []
    assert decision.granted == ["CREATE_POST", "READ_PROFILE"]


def test_empty_scope_for_an_inherit_client_never_includes_administrator() -> None:
    decision = decide([], frozenset({"ADMINISTRATOR", "openid"}), "inherit", ADMIN)
    assert decision.granted == EVERY_PERMISSION_BUT_ADMINISTRATOR
    member = decide([], frozenset({"ADMINISTRATOR"}), "inherit", MEMBER)
    assert member.granted == MEMBER_PERMISSIONS


def test_inherit_client_with_explicit_request_follows_the_rule() -> None:
    decision = decide(
        ["CREATE_POST", "MANAGE_POSTS"],
        frozenset({"CREATE_POST", "MANAGE_POSTS"}),
        "inherit",
        MEMBER,
    )
    assert decision.granted == ["CREATE_POST"]


def test_unknown_scope_is_invalid_scope() -> None:
    with pytest.raises(InvalidScope) as raised:
        decide(["CREATE_POST", "root"], frozenset({"CREATE_POST"}), "explicit", ADMIN)
    assert raised.value.body() == {
        "error": "invalid_scope",
        "error_description": "Unknown scope: root.",
    }


def test_scope_names_are_case_sensitive() -> None:
    with pytest.raises(InvalidScope):
        decide(["create_post"], frozenset({"CREATE_POST"}), "explicit", MEMBER)


def test_repeated_scope_names_count_once() -> None:
    assert scopes.split("openid  CREATE_POST openid") == ["openid", "CREATE_POST"]


# --- Through the API -----------------------------------------------------------------------------


def test_explicit_client_with_empty_scope_gets_an_empty_grant(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    request_id, _ = oauth.start(browser, client, scope=None)
    details = browser.get(CONSENT, query_string={"request_id": request_id}).get_json()
    assert details["requested_scopes"] == []
    assert details["granted_scopes"] == []
    assert details["scopes"] == []
    assert details["inherits_user_permissions"] is False


def test_inherit_client_with_empty_scope_shows_every_held_and_allowed_permission(
    oauth: OAuthActions,
) -> None:
    client = oauth.make_client(scopes="openid CREATE_POST MANAGE_POSTS", scope_policy="inherit")
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, client, scope=None)
    assert tokens["scope"] == "CREATE_POST"
    assert "refresh_token" not in tokens
    assert "id_token" not in tokens

    request_id, _ = oauth.start(browser, client, scope=None)
    details = browser.get(CONSENT, query_string={"request_id": request_id}).get_json()
    assert details["inherits_user_permissions"] is True
    assert details["requested_scopes"] == []
    assert details["granted_scopes"] == ["CREATE_POST"]
    assert details["scopes"] == [
        {
            "name": "CREATE_POST",
            "description": "Create threads and replies as you",
            "granted": True,
            "reason": None,
        }
    ]


def test_consent_may_narrow_the_grant(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    authorized = oauth.approve(browser, client, scopes=["openid", "CREATE_POST"])
    response = oauth.redeem(client, authorized)
    assert response.status_code == 200
    tokens = response.get_json()
    assert tokens["scope"] == "openid CREATE_POST"
    assert "refresh_token" not in tokens  # offline_access was unticked
    assert "id_token" in tokens
    assert assert_alive(oauth.app, tokens["access_token"])["permissions"] == ["CREATE_POST"]
    apps = browser.get("/api/accounts/self/authorized-apps").get_json()["items"]
    assert apps[0]["scopes"] == ["openid", "CREATE_POST"]


def test_consent_narrowed_to_nothing_grants_nothing(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    authorized = oauth.approve(browser, client, scopes=[])
    tokens = oauth.redeem(client, authorized).get_json()
    assert tokens["scope"] == ""
    assert "refresh_token" not in tokens
    assert assert_alive(oauth.app, tokens["access_token"])["permissions"] == []


def test_refresh_with_a_narrower_scope(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, client)
    narrow = oauth.refresh(client, tokens["refresh_token"], scope="offline_access CREATE_POST")
    assert narrow.status_code == 200, narrow.get_json()
    body = narrow.get_json()
    assert body["scope"] == "offline_access CREATE_POST"
    assert assert_alive(oauth.app, body["access_token"])["permissions"] == ["CREATE_POST"]
    # The refresh token keeps the grant's scope: the next refresh may widen back to it.
    wide = oauth.refresh(client, body["refresh_token"])
    assert wide.status_code == 200
    assert wide.get_json()["scope"] == DEFAULT_SCOPES


def test_refresh_with_a_narrower_scope_without_offline_access_still_rotates(
    oauth: OAuthActions,
) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, client)
    narrow = oauth.refresh(client, tokens["refresh_token"], scope="CREATE_POST")
    assert narrow.status_code == 200
    assert narrow.get_json()["scope"] == "CREATE_POST"
    assert oauth.refresh(client, narrow.get_json()["refresh_token"]).status_code == 200


@pytest.mark.parametrize(
    "scope", [f"{DEFAULT_SCOPES} CREATE_REACTION", "ADMINISTRATOR", "MANAGE_POSTS", "NOPE"]
)
def test_refresh_with_a_broader_scope_is_invalid_scope(oauth: OAuthActions, scope: str) -> None:
    client = oauth.make_client(scopes=DEFAULT_SCOPES + " CREATE_REACTION MANAGE_POSTS")
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, client)
    response = oauth.refresh(client, tokens["refresh_token"], scope=scope)
    assert_token_error(response, 400, "invalid_scope")
    # A refused widening is not a use: the refresh token still rotates normally.
    assert oauth.refresh(client, tokens["refresh_token"]).status_code == 200


def test_refresh_token_needs_offline_access(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, client, scope="openid CREATE_POST")
    assert tokens["scope"] == "openid CREATE_POST"
    assert "refresh_token" not in tokens


def test_refresh_token_needs_offline_access_allowed_for_the_client(oauth: OAuthActions) -> None:
    client = oauth.make_client(scopes="openid CREATE_POST")
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, client, scope="openid offline_access CREATE_POST")
    assert tokens["scope"] == "openid CREATE_POST"
    assert "refresh_token" not in tokens


def test_refresh_token_needs_the_refresh_token_grant(oauth: OAuthActions) -> None:
    client = oauth.make_client(grants=["authorization_code"])
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, client)
    assert "offline_access" in tokens["scope"].split()
    assert "refresh_token" not in tokens


def test_token_scope_is_the_granted_scope_not_the_requested_one(oauth: OAuthActions) -> None:
    client = oauth.make_client(scopes="openid CREATE_POST MANAGE_CATEGORIES")
    browser = oauth.auth.signup("alice")
    authorized = oauth.approve(browser, client, scope="openid CREATE_POST MANAGE_CATEGORIES")
    tokens = oauth.redeem(client, authorized).get_json()
    assert tokens["scope"] == "openid CREATE_POST"


def test_token_carries_scopes_intersected_with_current_permissions(oauth: OAuthActions) -> None:
    client = oauth.make_client(scopes=DEFAULT_SCOPES)
    browser = oauth.auth.signup("alice")
    tokens = oauth.tokens(browser, client)
    me = assert_alive(oauth.app, tokens["access_token"])
    assert me["permissions"] == ["READ_PUBLISHED_THREADS", "CREATE_POST"]
    oauth.cli("roles", "revoke", "alice", "member")
    me = assert_alive(oauth.app, tokens["access_token"])
    assert me["permissions"] == ["READ_PUBLISHED_THREADS"]
