"""`hearth cleanup` removes expired rows in bounded batches and leaves live ones."""

from __future__ import annotations

from datetime import timedelta
from itertools import chain, count

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select

from app.db import utcnow
from app.extensions import db
from app.models import Account, AuthSession, Grant, OAuthClient, PendingRequest, Token
from tests.conftest import AuthActions, account_with_expired_session


def _count(model: type) -> int:
    return db.session.scalar(select(func.count()).select_from(model)) or 0


def test_cleanup_deletes_expired_rows_in_batches(
    app: Flask, runner: FlaskCliRunner, auth: AuthActions
) -> None:
    auth.signup("alice")
    now = utcnow()
    with app.app_context():
        account = db.session.scalar(select(Account))
        assert account is not None
        client = OAuthClient(
            id="hc_test",
            name="Test",
            public=True,
            token_endpoint_auth_method="none",
            redirect_uris="https://app.example/cb",
            scopes="openid",
            grant_types="authorization_code",
        )
        grant = Grant(account_id=account.id, client=client, scope="openid", resource="x")
        db.session.add_all([client, grant])
        db.session.flush()
        for n in range(5):
            db.session.add(
                AuthSession(
                    token_hash=f"{n:064d}",
                    account_id=account.id,
                    expires_at=now - timedelta(seconds=1),
                )
            )
            db.session.add(
                PendingRequest(
                    request_hash=f"{n:064d}",
                    account_id=account.id,
                    client_id=client.id,
                    redirect_uri="https://app.example/cb",
                    code_challenge="x" * 43,
                    auth_time=now,
                    expires_at=now - timedelta(seconds=1),
                )
            )
            db.session.add(
                Token(
                    kind="access",
                    grant_id=grant.id,
                    client_id=client.id,
                    account_id=account.id,
                    audience="x",
                    expires_at=now - timedelta(seconds=1),
                )
            )
        live = Token(
            kind="access",
            grant_id=grant.id,
            client_id=client.id,
            account_id=account.id,
            audience="x",
            expires_at=now + timedelta(hours=1),
        )
        db.session.add(live)
        db.session.commit()

    result = runner.invoke(args=["cleanup", "--batch", "2"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "sessions=5 pending_requests=5 codes=0 tokens=5 login_states=0"

    with app.app_context():
        assert _count(PendingRequest) == 0
        assert db.session.scalars(select(Token.id)).all() == [live.id]
        assert _count(AuthSession) == 1  # alice's live session from sign-up


def test_api_runs_cleanup_periodically(database_url: str) -> None:
    from tests.conftest import make_app

    app = make_app(database_url, CLEANUP_INTERVAL=timedelta(seconds=0))
    account_with_expired_session(app, "bob-the-builder")
    response = app.test_client().get("/api/threads")
    assert response.status_code == 200
    response.close()  # the pass runs once the response is closed
    with app.app_context():
        assert (
            db.session.scalar(select(AuthSession.id).where(AuthSession.token_hash == "f" * 64))
            is None
        )


def _five_expired_sessions(auth: AuthActions) -> None:
    auth.signup("alice")
    account = db.session.scalar(select(Account))
    assert account is not None
    for n in range(5):
        db.session.add(
            AuthSession(
                token_hash=f"{n:064d}",
                account_id=account.id,
                expires_at=utcnow() - timedelta(seconds=1),
            )
        )
    db.session.commit()


@pytest.mark.parametrize(("rest", "pauses"), [(None, [0.75, 1.5]), (1.0, [0.25, 0.5]), (0.0, [])])
def test_cleanup_rests_after_each_full_batch_in_proportion_to_its_duration(
    app: Flask, auth: AuthActions, rest: float | None, pauses: list[float]
) -> None:
    """By default three times as long as the batch took: a quarter of a core at most."""
    from app.maintenance import cleanup

    with app.app_context():
        _five_expired_sessions(auth)
        # Each batch reads the clock when it starts and, when full, again when it is committed;
        # sessions come first (batches of 2, 2, then 1), then one empty batch of each other kind.
        ticks = chain([10.0, 10.25, 20.0, 20.5], count(30.0))
        slept: list[float] = []
        options = {} if rest is None else {"rest": rest}
        counts = cleanup(
            db.session, batch=2, sleep=slept.append, clock=lambda: next(ticks), **options
        )
        assert counts["sessions"] == 5
        assert slept == pauses
        assert _count(AuthSession) == 1


def test_cleanup_command_passes_its_default_batch_and_rest(
    runner: FlaskCliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    import app.maintenance

    calls: list[tuple[int, float]] = []

    def record(_session: object, batch: int, rest: float) -> dict[str, int]:
        calls.append((batch, rest))
        return {"tokens": 0}

    monkeypatch.setattr(app.maintenance, "cleanup", record)
    result = runner.invoke(args=["cleanup"])
    assert result.exit_code == 0, result.output
    assert result.output == "tokens=0\n"
    assert calls == [(1000, 3.0)]


def test_cleanup_command_rejects_a_negative_rest_or_empty_batch(runner: FlaskCliRunner) -> None:
    for args in (["--rest", "-1"], ["--batch", "0"]):
        result = runner.invoke(args=["cleanup", *args])
        assert result.exit_code == 2, result.output
        assert "Invalid value" in result.output
