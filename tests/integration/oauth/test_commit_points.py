"""The token endpoint commits as soon as the tokens exist, not after the work that follows.

Holding SQLite's write lock (or PostgreSQL's row locks) across the ID token's RS256 signature
and the response made concurrent exchanges queue behind each other. Each test looks at the
database from a second connection at the moment that later work runs: it sees only what was
committed."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import create_engine, select

from app.models import Token
from app.oauth.server import HearthAuthorizationServer, HearthOpenIDCode
from tests.integration.oauth.conftest import OAuthActions


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


def test_code_exchange_commits_before_signing_the_id_token(
    oauth: OAuthActions, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = oauth.make_client()
    authorized = oauth.approve(oauth.auth.signup("alice"), client)
    seen: list[list[tuple[str, bool]]] = []
    real = HearthOpenIDCode.generate_user_info

    def spy(self: HearthOpenIDCode, user: Any, scope: str) -> Any:
        seen.append(_committed_tokens(database_url, user.account_id))
        return real(self, user, scope)

    monkeypatch.setattr(HearthOpenIDCode, "generate_user_info", spy)
    redeemed = oauth.redeem(client, authorized)
    assert redeemed.status_code == 200, redeemed.get_json()
    assert "id_token" in redeemed.get_json()
    assert seen == [[("access", False), ("refresh", False)]]


def test_refresh_commits_the_rotation_before_building_the_response(
    oauth: OAuthActions, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = oauth.make_client()
    tokens = oauth.tokens(oauth.auth.signup("alice"), client)
    account_id = (
        oauth.app.test_client()
        .get("/api/accounts/self", headers={"Authorization": f"Bearer {tokens['access_token']}"})
        .get_json()["id"]
    )
    seen: list[list[tuple[str, bool]]] = []
    real = HearthAuthorizationServer.handle_response

    def spy(self: HearthAuthorizationServer, status: int, payload: Any, headers: Any) -> Any:
        seen.append(_committed_tokens(database_url, account_id))
        return real(self, status, payload, headers)

    monkeypatch.setattr(HearthAuthorizationServer, "handle_response", spy)
    refreshed = oauth.refresh(client, tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.get_json()
    # The first pair, its refresh token rotated; the new pair.
    assert len(seen) == 1
    assert sorted(seen[0]) == sorted(
        [("access", False), ("refresh", True), ("access", False), ("refresh", False)]
    )
