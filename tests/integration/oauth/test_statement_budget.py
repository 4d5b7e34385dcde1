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
    """Statements on every engine: PostgreSQL's read-only requests have one of their own."""
    engines = Database.engines(oauth.app)
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement.split(None, 1)[0].upper())

    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)


def test_bearer_read_is_one_statement(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    tokens = oauth.tokens(oauth.auth.signup("alice"), client)
    api = oauth.app.test_client()
    with statements(oauth) as seen:
        response = api.get(SELF, headers=bearer(tokens["access_token"]))
    assert response.status_code == 200
    assert response.get_json()["roles"] == ["member"]
    assert seen == ["SELECT"]


def test_session_read_is_one_statement(oauth: OAuthActions) -> None:
    browser = oauth.auth.signup("alice")
    with statements(oauth) as seen:
        response = browser.get(SELF)
    assert response.status_code == 200
    assert response.get_json()["roles"] == ["member"]
    assert seen == ["SELECT"]


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post", "none"])
def test_refresh_is_three_statements_and_never_reloads_the_grant(
    oauth: OAuthActions, auth_method: str
) -> None:
    client = oauth.make_client(auth_method=auth_method, public=auth_method == "none")
    tokens = oauth.tokens(oauth.auth.signup("alice"), client)
    with statements(oauth) as seen:
        response = oauth.refresh(client, tokens["refresh_token"])
    assert response.status_code == 200, response.get_json()
    # the client with the presented token and its grant, the rotation claim, both new tokens in
    # one executemany
    assert seen == ["SELECT", "UPDATE", "INSERT"]


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


def test_code_exchange_is_three_statements(oauth: OAuthActions) -> None:
    client = oauth.make_client()
    authorized = oauth.approve(oauth.auth.signup("alice"), client)
    with statements(oauth) as seen:
        redeemed = oauth.redeem(client, authorized)
    assert redeemed.status_code == 200, redeemed.get_json()
    # the client with the code, its grant and account; the claim; both tokens in one INSERT
    assert seen == ["SELECT", "UPDATE", "INSERT"]
