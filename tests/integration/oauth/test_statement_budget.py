"""Round trips per request on the hot paths: exact SQL statement counts, not timings.

A count that grows means a lazy load or a lost identity-map entry slipped in; that costs every
request a round trip (bench/README.md records what each statement is).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from app.extensions import Database
from tests.integration.oauth.conftest import (
    CONSENT,
    SELF,
    OAuthActions,
    bearer,
    params,
    pkce_pair,
)


@contextmanager
def statements(oauth: OAuthActions) -> Iterator[list[str]]:
    """Statements on every engine: PostgreSQL's read-only requests have one of their own.

    On PostgreSQL a statement sent on an autocommit connection is recorded with a `*`: it had no
    BEGIN sent before it and needs no COMMIT after it, so it is the request's only round trip."""
    engines = Database.engines(oauth.app)
    seen: list[str] = []

    def record(_conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        verb = statement.split(None, 1)[0].upper()
        if getattr(cursor.connection, "autocommit", False) is True:  # psycopg only
            verb += "*"
        seen.append(verb)

    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)


def on_postgresql(oauth: OAuthActions) -> bool:
    return bool(oauth.app.extensions["hearth_db"].engine.dialect.name == "postgresql")


def alone(oauth: OAuthActions, verb: str) -> str:
    """A read that is its request's only round trip: on PostgreSQL, an autocommit one."""
    return verb + "*" if on_postgresql(oauth) else verb


def exchange(oauth: OAuthActions) -> list[str]:
    """A code exchange or refresh: the client with the presented credential, then the claim and
    the new tokens. PostgreSQL runs the token endpoint on an autocommit connection and claims
    with the insert in one statement (a data-modifying CTE): two round trips in all, no BEGIN or
    COMMIT. SQLite's BEGIN and COMMIT are no round trips; the claim is an UPDATE of its own."""
    if on_postgresql(oauth):
        return ["SELECT*", "WITH*"]
    return ["SELECT", "UPDATE", "INSERT"]


def test_bearer_read_is_one_statement(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    tokens = oauth.tokens(oauth.auth.signup("alice"), client)
    api = oauth.app.test_client()
    with statements(oauth) as seen:
        response = api.get(SELF, headers=bearer(tokens["access_token"]))
    assert response.status_code == 200
    assert response.get_json()["roles"] == ["member"]
    assert seen == [alone(oauth, "SELECT")]


def test_session_read_is_one_statement(oauth: OAuthActions) -> None:
    browser = oauth.auth.signup("alice")
    with statements(oauth) as seen:
        response = browser.get(SELF)
    assert response.status_code == 200
    assert response.get_json()["roles"] == ["member"]
    assert seen == [alone(oauth, "SELECT")]


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post", "none"])
def test_refresh_is_two_round_trips_and_never_reloads_the_grant(
    oauth: OAuthActions, auth_method: str
) -> None:
    client = oauth.make_client(auth_method=auth_method, public=auth_method == "none")
    tokens = oauth.tokens(oauth.auth.signup("alice"), client)
    with statements(oauth) as seen:
        response = oauth.refresh(client, tokens["refresh_token"])
    assert response.status_code == 200, response.get_json()
    # the client with the presented token and its grant; the rotation claim and both new tokens
    assert seen == exchange(oauth)


def test_full_code_flow_is_within_the_statement_budget(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    browser = oauth.auth.signup("alice")
    verifier, challenge = pkce_pair()
    with statements(oauth) as seen:
        started = oauth.authorize(
            browser, oauth.authorize_query(client, challenge=challenge, nonce="n-1")
        )
        request_id = params(started.headers["Location"])["request_id"]
        assert browser.get(CONSENT, query_string={"request_id": request_id}).status_code == 200
        approved = browser.post(CONSENT, json={"request_id": request_id, "decision": "approve"})
        code = params(approved.get_json()["location"])["code"]
        redeemed = oauth.token(
            client,
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": client.redirect_uri,
                "code_verifier": verifier,
            },
        )
    assert redeemed.status_code == 200, redeemed.get_json()
    assert {"access_token", "refresh_token", "id_token"} <= set(redeemed.get_json())
    assert len(seen) <= 13, seen


def test_code_exchange_is_two_round_trips(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    authorized = oauth.approve(oauth.auth.signup("alice"), client)
    with statements(oauth) as seen:
        redeemed = oauth.redeem(client, authorized)
    assert redeemed.status_code == 200, redeemed.get_json()
    # the client with the code, its grant and account; the claim and both tokens
    assert seen == exchange(oauth)
