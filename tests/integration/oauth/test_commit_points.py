"""The token endpoint commits once, after the whole response exists.

A token response that fails half-way (the ID token's signature, the response itself) must leave
nothing behind: committing the rotation before the response is built would consume the code or
the refresh token the client never received, and a client that retries with the refresh token it
still holds would then be treated as replaying it (SPEC: reuse revokes the grant)."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, select

from app.models import Token
from app.oauth.server import HearthAuthorizationServer, HearthOpenIDCode
from tests.integration.oauth.conftest import OAuthActions, bearer


class SigningFailed(RuntimeError):
    """Stands in for anything that breaks after the token rows were written."""


def _committed_tokens(database_url: str, account_id: str) -> list[tuple[str, bool]]:
    outside = create_engine(database_url)
    try:
        with outside.connect() as connection:
            rows = connection.execute(
                select(Token.kind, Token.rotated_at.is_not(None))
                .where(Token.account_id == account_id)
                .order_by(Token.created_at, Token.kind)
            )
            return [(kind, bool(rotated)) for kind, rotated in rows]
    finally:
        outside.dispose()


def fail_first_call(
    monkeypatch: pytest.MonkeyPatch, owner: type, name: str
) -> list[tuple[Any, ...]]:
    """Make `owner.name` raise SigningFailed on its first call and behave normally afterwards;
    return the arguments of every call."""
    real = getattr(owner, name)
    calls: list[tuple[Any, ...]] = []

    def fail_once(self: Any, *args: Any) -> Any:
        calls.append(args)
        if len(calls) == 1:
            raise SigningFailed(f"{name} failed")
        return real(self, *args)

    monkeypatch.setattr(owner, name, fail_once)
    return calls


@pytest.fixture
def unpropagated(app: Flask) -> Flask:
    """Let a failure answer 500 as in production instead of raising into the test."""
    app.config["PROPAGATE_EXCEPTIONS"] = False
    return app


def test_code_exchange_that_fails_while_signing_the_id_token_keeps_the_code(
    oauth: OAuthActions,
    unpropagated: Flask,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = oauth.make_client()
    authorized = oauth.approve(oauth.auth.signup("alice"), client)
    calls = fail_first_call(monkeypatch, HearthOpenIDCode, "generate_user_info")
    failed = oauth.redeem(client, authorized)
    assert failed.status_code == 500
    account_id = calls[0][0].account_id
    assert _committed_tokens(database_url, account_id) == []

    redeemed = oauth.redeem(client, authorized)
    assert redeemed.status_code == 200, redeemed.get_json()
    assert "id_token" in redeemed.get_json()
    assert _committed_tokens(database_url, account_id) == [("access", False), ("refresh", False)]


def test_refresh_that_fails_while_answering_leaves_the_refresh_token_usable(
    oauth: OAuthActions,
    unpropagated: Flask,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = oauth.make_client()
    tokens = oauth.tokens(oauth.auth.signup("alice"), client)
    account_id = (
        oauth.app.test_client()
        .get("/api/accounts/self", headers=bearer(tokens["access_token"]))
        .get_json()["id"]
    )
    fail_first_call(monkeypatch, HearthAuthorizationServer, "handle_response")
    failed = oauth.refresh(client, tokens["refresh_token"])
    assert failed.status_code == 500
    assert _committed_tokens(database_url, account_id) == [("access", False), ("refresh", False)]

    # The client still holds only the old refresh token; presenting it again is not a replay.
    refreshed = oauth.refresh(client, tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.get_json()
    assert sorted(_committed_tokens(database_url, account_id)) == sorted(
        [("access", False), ("refresh", True), ("access", False), ("refresh", False)]
    )
    still_valid = oauth.app.test_client().get(
        "/api/accounts/self", headers=bearer(refreshed.get_json()["access_token"])
    )
    assert still_valid.status_code == 200
