"""The token endpoint's one write: the new tokens, stored only if the credential is still unclaimed.

A code or refresh token is claimed by the same write that stores what it was exchanged for. On
PostgreSQL that write is one statement on an autocommit connection, so a refresh or a code
exchange is two round trips (read, then claim-and-insert) with no BEGIN or COMMIT. Another request
that claims the credential between this one's read and its write leaves this one nothing: no
tokens stored, and the grant ends as for any replay (RFC 6749 §4.1.2, RFC 9700 §4.14.2)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, Response, jsonify
from sqlalchemy import Engine, bindparam, create_engine, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from app.db import new_id, utcnow
from app.extensions import Database, autocommit, db
from app.models import AuthorizationCode, Category, Grant, Token
from app.oauth import server
from app.oauth import tokens as token_service
from tests.conftest import make_app
from tests.integration.oauth.conftest import OAuthActions, assert_error
from tests.integration.test_read_only_sessions import Wire


@pytest.fixture
def outside(database_url: str) -> Iterator[Engine]:
    """A connection of another process: what a concurrent request would have committed."""
    engine = create_engine(database_url)
    yield engine
    engine.dispose()


def claimed_by_another_request_first(monkeypatch: pytest.MonkeyPatch, outside: Engine) -> None:
    """Between this request's read and its write, another request wins the credential."""
    real_store = token_service.store

    def store_after_the_other(connection: Any, issued: token_service.Issued) -> bool:
        claim = issued.claim
        assert claim is not None
        with outside.begin() as other:
            if claim.kind == "refresh":
                other.execute(update(Token).where(Token.id == claim.id).values(rotated_at=utcnow()))
            else:
                other.execute(
                    update(AuthorizationCode)
                    .where(AuthorizationCode.id == claim.id)
                    .values(used_at=utcnow())
                )
        return real_store(connection, issued)

    monkeypatch.setattr(token_service, "store", store_after_the_other)


def stored(outside: Engine) -> list[tuple[str, bool]]:
    """Every token row: its kind and whether it is revoked."""
    with outside.connect() as connection:
        rows = connection.execute(
            select(Token.kind, Token.revoked_at.is_not(None)).order_by(Token.created_at, Token.kind)
        )
        return [(kind, bool(revoked)) for kind, revoked in rows]


def grants_revoked(outside: Engine) -> list[bool]:
    with outside.connect() as connection:
        return [bool(r) for r in connection.scalars(select(Grant.revoked_at.is_not(None)))]


def test_refresh_whose_token_another_request_rotated_first_stores_nothing_and_ends_the_grant(
    oauth: OAuthActions, outside: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = oauth.make_client()
    first = oauth.tokens(oauth.auth.signup("alice"), client)
    claimed_by_another_request_first(monkeypatch, outside)

    lost = oauth.refresh(client, first["refresh_token"])

    assert_error(lost, 400, "invalid_grant", "The refresh token was already used.")
    assert lost.headers["Cache-Control"] == "no-store"
    # Nothing new was stored, and what the grant had is revoked.
    assert stored(outside) == [("access", True), ("refresh", True)]
    assert grants_revoked(outside) == [True]


def test_code_that_another_request_redeemed_first_stores_nothing_and_ends_the_grant(
    oauth: OAuthActions, outside: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = oauth.make_client()
    authorized = oauth.approve(oauth.auth.signup("alice"), client)
    claimed_by_another_request_first(monkeypatch, outside)

    lost = oauth.redeem(client, authorized)

    assert_error(lost, 400, "invalid_grant", "The code was already used; its tokens are revoked.")
    assert stored(outside) == []
    assert grants_revoked(outside) == [True]


def test_refresh_that_wins_its_claim_stores_both_tokens_and_rotates_the_old_one(
    oauth: OAuthActions, outside: Engine
) -> None:
    client = oauth.make_client()
    first = oauth.tokens(oauth.auth.signup("alice"), client)
    refreshed = oauth.refresh(client, first["refresh_token"])
    assert refreshed.status_code == 200, refreshed.get_json()
    with outside.connect() as connection:
        rows = connection.execute(
            select(Token.kind, Token.rotated_at.is_not(None), Token.revoked_at).order_by(
                Token.created_at, Token.kind
            )
        ).all()
    assert [tuple(row) for row in rows] == [
        ("access", False, None),
        ("refresh", True, None),
        ("access", False, None),
        ("refresh", False, None),
    ]
    # The new refresh token works; the rotated one is a replay.
    again = oauth.refresh(client, refreshed.get_json()["refresh_token"])
    assert again.status_code == 200, again.get_json()


# --- PostgreSQL: round trips, and db.atomic() in an @autocommit request --------------------------


@pytest.fixture
def pg_oauth(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[OAuthActions]:
    from app import extensions

    monkeypatch.setattr(extensions, "IDLE_PING_SECONDS", 3600.0)
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL pass only: autocommit connections are PostgreSQL's")
    app = make_app(database_url)
    _add_autocommit_views(app)
    yield OAuthActions(app)
    Database.dispose(app)


@pytest.fixture
def wire(pg_oauth: OAuthActions) -> Iterator[Wire]:
    tracer = Wire(pg_oauth.app)
    yield tracer
    tracer.close()


def test_refresh_and_code_exchange_are_two_round_trips_without_begin_or_commit(
    pg_oauth: OAuthActions, wire: Wire
) -> None:
    oauth = pg_oauth
    client = oauth.make_client()
    authorized = oauth.approve(oauth.auth.signup("alice"), client)

    redeemed, traffic = wire.request(lambda: oauth.redeem(client, authorized))
    assert redeemed.status_code == 200, redeemed.get_json()
    # the client with the code, its grant and account; then the claim with both new tokens
    assert (traffic.commands, traffic.round_trips) == (["SELECT", "INSERT"], 2)

    refreshed, traffic = wire.request(
        lambda: oauth.refresh(client, redeemed.get_json()["refresh_token"])
    )
    assert refreshed.status_code == 200, refreshed.get_json()
    assert (traffic.commands, traffic.round_trips) == (["SELECT", "INSERT"], 2)

    # A replay: the read finds the token rotated; the revocation is one transaction.
    replayed, traffic = wire.request(
        lambda: oauth.refresh(client, redeemed.get_json()["refresh_token"])
    )
    assert replayed.status_code == 400
    assert traffic.commands == ["SELECT", "BEGIN", "UPDATE", "UPDATE", "COMMIT"]


def _add_autocommit_views(app: Flask) -> None:
    """An @autocommit view that writes one row on its own, then two in an atomic block."""

    def category(slug: str) -> Any:
        return insert(Category).values(id=new_id(), slug=slug, name=slug, description="")

    @autocommit
    def two_steps(fail: str) -> Response:
        db.connection.execute(category("alone"))
        with db.atomic():
            db.connection.execute(category("first"))
            db.connection.execute(category("alone" if fail == "fail" else "second"))
        db.commit()
        return jsonify({})

    app.add_url_rule("/test/two-steps/<fail>", view_func=two_steps, methods=["POST"])


def _slugs(outside: Engine) -> list[str]:
    with outside.connect() as connection:
        return list(connection.scalars(select(Category.slug).order_by(Category.slug)))


def test_atomic_block_in_an_autocommit_request_commits_or_rolls_back_as_one(
    pg_oauth: OAuthActions, wire: Wire, outside: Engine
) -> None:
    api = pg_oauth.app.test_client()
    pg_oauth.app.config["PROPAGATE_EXCEPTIONS"] = False

    done, traffic = wire.request(lambda: api.post("/test/two-steps/succeed", json={}))
    assert done.status_code == 200
    assert traffic.commands == ["INSERT", "BEGIN", "INSERT", "INSERT", "COMMIT"]
    assert _slugs(outside) == ["alone", "first", "second"]
    with outside.begin() as connection:
        connection.execute(Category.__table__.delete())

    # The block's second insert breaks the unique slug: the block goes, the statement before
    # it (committed on its own) stays.
    failed, traffic = wire.request(lambda: api.post("/test/two-steps/fail", json={}))
    assert failed.status_code == 500
    assert traffic.commands == ["INSERT", "BEGIN", "INSERT", "ERROR", "ROLLBACK"]
    assert _slugs(outside) == ["alone"]


def test_autocommit_mark_changes_nothing_on_sqlite(database_url: str, outside: Engine) -> None:
    if database_url.startswith("postgresql"):
        pytest.skip("SQLite pass only: the mark is PostgreSQL's")
    app = make_app(database_url)
    _add_autocommit_views(app)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    try:
        # One transaction, as any request: the failure takes the first insert with it.
        assert app.test_client().post("/test/two-steps/fail", json={}).status_code == 500
        assert _slugs(outside) == []
        assert app.test_client().post("/test/two-steps/succeed", json={}).status_code == 200
        assert _slugs(outside) == ["alone", "first", "second"]
    finally:
        Database.dispose(app)


def test_token_counts_stay_exact_after_many_rotations(oauth: OAuthActions, outside: Engine) -> None:
    client = oauth.make_client()
    current = oauth.tokens(oauth.auth.signup("alice"), client)
    for _ in range(5):
        response = oauth.refresh(client, current["refresh_token"])
        assert response.status_code == 200, response.get_json()
        current = response.get_json()
    with outside.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(Token)) == 12
        assert (
            connection.scalar(
                select(func.count()).where(Token.kind == "refresh", Token.rotated_at.is_(None))
            )
            == 1
        )


def test_refresh_token_hashes_stay_unique_and_access_tokens_stay_out_of_their_index(
    oauth: OAuthActions, outside: Engine
) -> None:
    """Migration 0008: the token_hash index holds refresh tokens only, and still refuses a
    second refresh token with the same hash."""
    client = oauth.make_client()
    oauth.tokens(oauth.auth.signup("alice"), client)
    oauth.tokens(oauth.auth.signup("bob"), client)
    with outside.connect() as connection:
        rows = connection.execute(select(Token).order_by(Token.kind)).mappings().all()
        assert [row["kind"] for row in rows] == ["access", "access", "refresh", "refresh"]
        access, _, refresh, _ = (dict(row) for row in rows)
    # Any number of access tokens without a hash; never two refresh tokens with one.
    with outside.begin() as connection:
        connection.execute(insert(Token), {**access, "id": new_id()})
    with pytest.raises(IntegrityError), outside.begin() as connection:
        connection.execute(insert(Token), {**refresh, "id": new_id()})
    assert [kind for kind, _ in stored(outside)].count("refresh") == 2


def test_every_lookup_by_hash_uses_the_partial_index(outside: Engine) -> None:
    """`token_hash = ?` implies NOT NULL: the planners must see that, or a refresh at 10^6
    tokens would scan the table. SQLite plans the endpoints' own statements the same way
    whatever the data; PostgreSQL's choice for the joins depends on table statistics, so there
    the question is only whether the index can serve the predicate."""
    by_hash = select(Token.id).where(Token.token_hash == bindparam("token_hash"))
    with outside.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SET enable_seqscan = off"))
            statements = {"by hash": by_hash}
        else:
            statements = {
                "refresh": server._refresh_statement(),
                "client and refresh": server._client_and_refresh_statement(),
                "by hash": by_hash,
            }
        for name, statement in statements.items():
            # Bound, as the endpoints send it (a literal would be easier to plan).
            compiled = statement.compile(connection)
            values = compiled.construct_params({"token_hash": "0" * 64, "client_id": "c"})
            if connection.dialect.name == "sqlite":
                sql, parameters = (
                    f"EXPLAIN QUERY PLAN {compiled}",
                    tuple(values[key] for key in compiled.positiontup or ()),
                )
            else:
                sql, parameters = f"EXPLAIN {compiled}", values  # type: ignore[assignment]
            plan = " ".join(str(row) for row in connection.exec_driver_sql(sql, parameters))
            assert "uq_oauth_tokens_token_hash" in plan, (name, plan)
