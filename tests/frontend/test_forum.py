"""The thread list and thread pages, and posting through the frontend's forms."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from tests.frontend.support import Forum, LiveApi, sign_in


def test_thread_list_shows_title_category_author_and_reply_count(
    visitor: FlaskClient, forum: Forum
) -> None:
    response = visitor.get("/")

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    slug = forum.thread["slug"]
    assert f'<a class="thread-title" href="/t/{slug}">Welcome to Hearth</a>' in page
    assert 'in <a href="/?category=general">General</a>' in page
    assert '· by <span class="author">keeper</span>' in page
    assert '· <span class="replies">1 reply</span>' in page
    assert '<a href="/?category=general">General</a>\n<p class="hint">Anything goes</p>' in page


def test_thread_list_filters_by_category(visitor: FlaskClient, forum: Forum, api: LiveApi) -> None:
    apps = api.created(forum.admin_token, "/api/categories", {"name": "Apps"})
    api.created(
        forum.admin_token,
        "/api/threads",
        {"title": "Which apps do you use?", "body": "Tell us.", "category": apps["slug"]},
    )

    response = visitor.get("/?category=apps")

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "<h1>Apps</h1>" in page
    assert ">Which apps do you use?</a>" in page
    assert ">Welcome to Hearth</a>" not in page
    assert '<a href="/?category=apps" aria-current="page">Apps</a>' in page


def test_thread_list_links_to_the_next_page(
    visitor: FlaskClient, forum: Forum, api: LiveApi
) -> None:
    for number in range(50):
        api.created(
            forum.admin_token,
            "/api/threads",
            {"title": f"Thread {number}", "body": "More.", "category": "general"},
        )

    first = visitor.get("/").get_data(as_text=True)
    link = re.search(r'<a rel="next" href="(/\?cursor=[A-Za-z0-9]{26})">Next page</a>', first)

    assert link is not None
    assert ">Thread 49</a>" in first
    assert ">Welcome to Hearth</a>" not in first
    second = visitor.get(link[1])
    assert second.status_code == 200
    page = second.get_data(as_text=True)
    assert ">Welcome to Hearth</a>" in page
    assert ">Thread 49</a>" not in page
    assert 'rel="next"' not in page
    assert '<a href="/">First page</a>' in page


def test_guests_are_invited_to_sign_in_instead_of_a_thread_form(
    visitor: FlaskClient, forum: Forum
) -> None:
    page = visitor.get("/?category=general").get_data(as_text=True)

    assert 'action="/"' not in page
    assert '<a href="/login?return_url=/?category%3Dgeneral">Sign in</a> to start a thread.' in page


def test_member_starts_a_thread_through_the_frontend(
    visitor: FlaskClient, forum: Forum, api: LiveApi
) -> None:
    sign_in(visitor, api.signup("alice"))
    form = visitor.get("/?category=general").get_data(as_text=True)
    assert '<option selected value="general">General</option>' in form

    response = visitor.post(
        "/",
        data={
            "title": "Hello from Alice",
            "body": "First post!\nSecond line.",
            "category": "general",
        },
    )

    assert response.status_code == 303
    location = response.headers["Location"]
    assert re.fullmatch(r"/t/hello-from-alice-[0-9a-f]{6}", location)
    page = visitor.get(location).get_data(as_text=True)
    assert "<h1>Hello from Alice</h1>" in page
    assert '<div class="body">First post!\nSecond line.</div>' in page
    assert 'by <span class="author">alice</span>' in page


def test_thread_form_with_missing_fields_shows_errors(
    visitor: FlaskClient, forum: Forum, api: LiveApi
) -> None:
    sign_in(visitor, api.signup("alice"))

    response = visitor.post("/", data={"title": "", "body": "", "category": "general"})

    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert '<p class="field-error" id="title-error">This field is required.</p>' in page
    assert '<p class="field-error" id="body-error">This field is required.</p>' in page


def test_thread_page_shows_the_thread_and_its_replies(visitor: FlaskClient, forum: Forum) -> None:
    response = visitor.get(f"/t/{forum.thread['slug']}")

    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "<title>Welcome to Hearth · Hearth</title>" in page
    assert "<h1>Welcome to Hearth</h1>" in page
    assert '<a href="/?category=general">General</a></p>' in page
    assert '<div class="body">Introduce yourself.</div>' in page
    assert '<h2 id="replies">1 reply</h2>' in page
    assert '<div class="body">Glad to be here.</div>' in page
    assert f'<a href="/login?return_url=/t/{forum.thread["slug"]}">Sign in</a> to reply.' in page
    assert "<textarea" not in page


def test_missing_thread_shows_the_not_found_page(visitor: FlaskClient, forum: Forum) -> None:
    response = visitor.get("/t/no-such-thread")

    assert response.status_code == 404
    assert response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "<title>Page not found · Hearth</title>" in page
    assert "<p>No thread has that slug.</p>" in page


def test_thread_slug_cannot_walk_to_another_api_route(visitor: FlaskClient, forum: Forum) -> None:
    response = visitor.get("/t/..")

    assert response.status_code == 404
    assert "<p>No thread has that slug.</p>" in response.get_data(as_text=True)


def test_member_replies_through_the_frontend(
    visitor: FlaskClient, forum: Forum, api: LiveApi
) -> None:
    slug = forum.thread["slug"]
    sign_in(visitor, api.signup("alice"))
    assert '<label for="body">Your reply</label>' in visitor.get(f"/t/{slug}").get_data(
        as_text=True
    )

    response = visitor.post(f"/t/{slug}", data={"body": "Hello, <b>everyone</b>!"})

    assert response.status_code == 303
    assert re.fullmatch(rf"/t/{slug}#reply-[0-9a-z]{{26}}", response.headers["Location"])
    page = visitor.get(f"/t/{slug}").get_data(as_text=True)
    assert '<h2 id="replies">2 replies</h2>' in page
    assert '<div class="body">Hello, &lt;b&gt;everyone&lt;/b&gt;!</div>' in page
    replies = api.request("GET", f"/api/threads/{slug}").json()["replies"]
    assert [(r["author"]["handle"], r["body"]) for r in replies] == [
        ("keeper", "Glad to be here."),
        ("alice", "Hello, <b>everyone</b>!"),
    ]


def test_guest_reply_is_sent_to_sign_in_and_back(visitor: FlaskClient, forum: Forum) -> None:
    slug = forum.thread["slug"]

    response = visitor.post(f"/t/{slug}", data={"body": "Me too"})

    assert response.status_code == 303
    assert response.headers["Location"] == f"/login?return_url=/t/{slug}"
