"""Forum permissions and content through the real API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, event, func, select

from app.extensions import Database, db
from app.models import Account, Category, Reply, Thread
from tests.conftest import AuthActions


def make_category(admin: FlaskClient, name: str = "General") -> str:
    response = admin.post("/api/categories", json={"name": name, "description": "Talk"})
    assert response.status_code == 201
    slug: str = response.get_json()["slug"]
    return slug


def test_admin_creates_category_member_cannot(auth: AuthActions) -> None:
    admin = auth.admin()
    response = admin.post("/api/categories", json={"name": "General News", "description": "All"})
    assert response.status_code == 201
    body = response.get_json()
    assert body == {
        "id": body["id"],
        "slug": "general-news",
        "name": "General News",
        "description": "All",
    }
    member = auth.signup("alice")
    denied = member.post("/api/categories", json={"name": "Mine"})
    assert denied.status_code == 403
    assert admin.post("/api/categories", json={"name": "General News"}).status_code == 409


def test_guest_reads_threads_and_cannot_post(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    slug = make_category(auth.admin())
    alice = auth.signup("alice")
    created = alice.post(
        "/api/threads", json={"title": "Hello there", "body": "First!", "category": slug}
    )
    assert created.status_code == 201
    thread = created.get_json()
    assert thread["title"] == "Hello there"
    assert thread["slug"].startswith("hello-there-")
    assert thread["category"] == slug
    assert thread["author"]["handle"] == "alice"
    assert thread["created_at"].endswith("Z")

    listing = client.get("/api/threads")
    assert listing.status_code == 200
    assert [t["slug"] for t in listing.get_json()["items"]] == [thread["slug"]]
    assert listing.get_json()["next_cursor"] is None
    assert client.get(f"/api/threads/{thread['slug']}").status_code == 200

    denied = client.post("/api/threads", json={"title": "Spam", "body": "x", "category": slug})
    assert denied.status_code == 401
    assert denied.headers["WWW-Authenticate"].startswith("Bearer resource_metadata=")
    assert (
        client.post(f"/api/threads/{thread['slug']}/replies", json={"body": "x"}).status_code == 401
    )
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Thread)) == 1


def test_replies_are_listed_with_thread(auth: AuthActions, client: FlaskClient) -> None:
    slug = make_category(auth.admin())
    alice = auth.signup("alice")
    thread = alice.post(
        "/api/threads", json={"title": "Q", "body": "?", "category": slug}
    ).get_json()
    reply = alice.post(f"/api/threads/{thread['slug']}/replies", json={"body": "A reply"})
    assert reply.status_code == 201
    assert set(reply.get_json()) == {"id", "body", "author", "created_at"}
    detail = client.get(f"/api/threads/{thread['slug']}").get_json()
    assert [r["body"] for r in detail["replies"]] == ["A reply"]
    assert client.get("/api/threads").get_json()["items"][0]["reply_count"] == 1


def test_only_author_or_moderator_edits_and_deletes(auth: AuthActions) -> None:
    admin = auth.admin()
    slug = make_category(admin)
    alice = auth.signup("alice")
    bob = auth.signup("bob-the-builder")
    thread = alice.post(
        "/api/threads", json={"title": "Mine", "body": "x", "category": slug}
    ).get_json()
    path = f"/api/threads/{thread['slug']}"

    assert bob.patch(path, json={"title": "Stolen"}).status_code == 403
    assert bob.delete(path).status_code == 403
    edited = alice.patch(path, json={"title": "Still mine"})
    assert edited.status_code == 200
    assert edited.get_json()["title"] == "Still mine"
    assert admin.patch(path, json={"body": "moderated"}).get_json()["body"] == "moderated"
    assert alice.delete(path).status_code == 204
    assert alice.get(path).status_code == 404


def test_thread_list_paginates_with_cursor(auth: AuthActions, client: FlaskClient) -> None:
    slug = make_category(auth.admin())
    alice = auth.signup("alice")
    titles = [f"T{n}" for n in range(5)]
    for title in titles:
        alice.post("/api/threads", json={"title": title, "body": "x", "category": slug})
    seen: list[str] = []
    url = "/api/threads?limit=2"
    pages = 0
    while True:
        page = client.get(url).get_json()
        pages += 1
        seen += [t["title"] for t in page["items"]]
        if page["next_cursor"] is None:
            break
        url = f"/api/threads?limit=2&cursor={page['next_cursor']}"
    assert seen == list(reversed(titles))
    assert pages == 3
    for bad in ("cursor=bad", "limit=0", "limit=101", "limit=x"):
        response = client.get(f"/api/threads?{bad}")
        assert response.status_code == 400, bad


def test_thread_in_unknown_category_is_400(auth: AuthActions) -> None:
    alice = auth.signup("alice")
    response = alice.post("/api/threads", json={"title": "x", "body": "y", "category": "nope"})
    assert response.status_code == 400
    assert response.get_json()["fields"] == {"category": "no category has that slug"}


def test_cross_site_form_post_is_rejected_and_changes_nothing(
    app: Flask, auth: AuthActions
) -> None:
    admin = auth.admin()
    attempts = [
        {
            "data": "name=Evil",
            "content_type": "application/x-www-form-urlencoded",
            "headers": {"Origin": "https://evil.example"},
        },
        {
            "data": '{"name": "Evil"}',
            "content_type": "text/plain",
            "headers": {"Origin": "https://evil.example"},
        },
        {"data": "name=Evil", "content_type": "application/x-www-form-urlencoded", "headers": {}},
        {"data": '{"name": "Evil"}', "content_type": "text/plain", "headers": {}},
        {"json": {"name": "Evil"}, "headers": {"Origin": "https://evil.example"}},
        {"json": {"name": "Evil"}, "headers": {"Sec-Fetch-Site": "cross-site"}},
    ]
    for attempt in attempts:
        response = admin.post("/api/categories", **attempt)
        assert response.status_code in (403, 415), attempt
        if attempt["headers"]:
            assert response.status_code == 403
            assert response.get_json()["error"] == "cross_origin_request"
        else:
            assert response.status_code == 415
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Category)) == 0
    same_site = admin.post(
        "/api/categories", json={"name": "Fine"}, headers={"Origin": "http://localhost:3000"}
    )
    assert same_site.status_code == 201


def test_profiles_are_public(auth: AuthActions, client: FlaskClient) -> None:
    auth.signup("alice")
    profile = client.get("/api/profiles/ALICE")
    assert profile.status_code == 200
    assert profile.get_json()["handle"] == "alice"
    assert "email" not in profile.get_json()
    assert client.get("/api/profiles/nobody").status_code == 404
    assert [p["handle"] for p in client.get("/api/profiles").get_json()["items"]] == ["alice"]


def test_unknown_route_and_method_are_json(client: FlaskClient) -> None:
    missing = client.get("/api/nowhere")
    assert missing.status_code == 404
    assert missing.get_json()["error"] == "not_found"
    wrong = client.put("/api/threads", json={})
    assert wrong.status_code == 405
    assert wrong.get_json()["error"] == "method_not_allowed"
    assert wrong.headers["X-Content-Type-Options"] == "nosniff"


def test_thread_list_counts_replies_per_thread_and_filters_by_category_and_cursor(
    auth: AuthActions, client: FlaskClient
) -> None:
    admin = auth.admin()
    news = make_category(admin, "News")
    chat = make_category(admin, "Chat")
    alice = auth.signup("alice")
    made = []
    for n, category in enumerate([news, chat, news, news]):
        made.append(
            alice.post(
                "/api/threads", json={"title": f"T{n}", "body": "x", "category": category}
            ).get_json()
        )
    for thread, replies in zip(made, [2, 1, 0, 3], strict=True):
        for _ in range(replies):
            alice.post(f"/api/threads/{thread['slug']}/replies", json={"body": "r"})

    first = client.get(f"/api/threads?category={news}&limit=2").get_json()
    assert first["items"] == [
        {
            "id": made[3]["id"],
            "slug": made[3]["slug"],
            "title": "T3",
            "category": news,
            "author": made[3]["author"],
            "created_at": made[3]["created_at"],
            "reply_count": 3,
        },
        {
            "id": made[2]["id"],
            "slug": made[2]["slug"],
            "title": "T2",
            "category": news,
            "author": made[2]["author"],
            "created_at": made[2]["created_at"],
            "reply_count": 0,
        },
    ]
    assert first["next_cursor"] == made[2]["id"]
    rest = client.get(f"/api/threads?category={news}&limit=2&cursor={first['next_cursor']}")
    assert [(t["title"], t["reply_count"]) for t in rest.get_json()["items"]] == [("T0", 2)]
    assert rest.get_json()["next_cursor"] is None
    everything = client.get("/api/threads").get_json()["items"]
    assert [(t["title"], t["reply_count"]) for t in everything] == [
        ("T3", 3),
        ("T2", 0),
        ("T1", 1),
        ("T0", 2),
    ]
    assert client.get("/api/threads?category=no-such-category").get_json() == {
        "items": [],
        "next_cursor": None,
    }


def test_reply_counts_stay_right_when_replies_go_with_their_author_or_move(
    app: Flask, auth: AuthActions, client: FlaskClient
) -> None:
    """The stored count is kept by triggers on `replies`, so deletions the API never makes
    itself (an account removed by an operator takes its replies in other members' threads with
    it, through ON DELETE CASCADE) and a reply moved by hand keep every list right."""
    general = make_category(auth.admin())
    alice, bob = auth.signup("alice"), auth.signup("bob")
    first, second = (
        alice.post(
            "/api/threads", json={"title": title, "body": "x", "category": general}
        ).get_json()
        for title in ("First", "Second")
    )
    for author, thread in ((bob, first), (bob, first), (alice, first), (bob, second)):
        made = author.post(f"/api/threads/{thread['slug']}/replies", json={"body": "r"})
        assert made.status_code == 201

    def counts() -> list[tuple[str, int]]:
        items = client.get("/api/threads").get_json()["items"]
        return [(item["title"], item["reply_count"]) for item in items]

    assert counts() == [("Second", 1), ("First", 3)]
    with app.app_context():
        moved = db.session.scalars(
            select(Reply).where(Reply.thread_id == first["id"]).order_by(Reply.id)
        ).first()
        assert moved is not None  # bob's first reply
        moved.thread_id = second["id"]
        db.session.commit()
    assert counts() == [("Second", 2), ("First", 2)]
    with app.app_context():
        db.session.execute(delete(Account).where(Account.handle == "bob"))
        db.session.commit()
    assert counts() == [("Second", 0), ("First", 1)]


def test_thread_list_formats_timestamps_like_the_thread_itself(
    app: Flask, auth: AuthActions, client: FlaskClient
) -> None:
    """The list's created_at is formatted by the database: whole seconds, truncated, `Z`."""
    admin = auth.admin()
    category = make_category(admin)
    made = admin.post(
        "/api/threads", json={"title": "Late", "body": "x", "category": category}
    ).get_json()
    with app.app_context():
        thread = db.session.get(Thread, made["id"])
        assert thread is not None
        thread.created_at = datetime(2026, 1, 2, 3, 4, 5, 999999, tzinfo=UTC)
        db.session.commit()
    listed = client.get("/api/threads").get_json()["items"][0]
    shown = client.get(f"/api/threads/{made['slug']}").get_json()

    assert listed["created_at"] == "2026-01-02T03:04:05Z"
    assert shown["created_at"] == "2026-01-02T03:04:05Z"


def test_profile_list_reads_roles_for_the_whole_page_at_once(
    app: Flask, auth: AuthActions, client: FlaskClient
) -> None:
    """Two statements for the page and its roles, however many profiles it holds."""
    for n in range(6):
        auth.signup(f"member-{n}")
    engines = Database.engines(app)
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement.split(None, 1)[0].upper())

    for engine in engines:
        event.listen(engine, "before_cursor_execute", record)
    try:
        response = client.get("/api/profiles")
    finally:
        for engine in engines:
            event.remove(engine, "before_cursor_execute", record)

    assert response.status_code == 200
    items = response.get_json()["items"]
    assert len(items) == 6
    assert {tuple(item["roles"]) for item in items} == {("member",)}
    assert seen == ["SELECT", "SELECT"]
