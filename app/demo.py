"""Demo data for the README: two accounts, categories and threads. Running it twice is harmless."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.accounts import service as accounts
from app.accounts.schemas import SignUp
from app.accounts.views import hasher
from app.forum.service import slugify
from app.models import Account, Category, OAuthClient, Thread
from app.oauth import clients

DEMO_ACCOUNTS = (
    ("admin", "keeper-of-the-hearth", "admin"),
    ("alice", "warm-by-the-fire", "member"),
)
DEMO_FORUM = {
    "General": (
        "Anything about the community",
        [("Welcome to Hearth", "Introduce yourself here.", "admin")],
    ),
    "Apps": (
        "Third-party apps connected to this community",
        [("Which apps do you use?", "Tell us what you connected and why.", "alice")],
    ),
}

DEMO_CLIENT: dict[str, Any] = {
    "name": "Demo app",
    "redirect_uris": ["http://127.0.0.1:8765/callback"],
    "scopes": "openid profile email offline_access READ_PUBLISHED_THREADS CREATE_POST",
    "public": True,
}


def seed(session: Session) -> Iterator[str]:
    people: dict[str, Account] = {}
    for handle, password, role in DEMO_ACCOUNTS:
        account = accounts.find_by_handle(session, handle)
        if account is None:
            form = SignUp(handle=handle, password=password)
            account = accounts.sign_up(session, hasher(), form, roles=(role,))
        people[handle] = account
        yield f"account {handle} (password: {password}, role: {role})"
    for name, (description, threads) in DEMO_FORUM.items():
        category = session.scalar(select(Category).where(Category.name == name))
        if category is None:
            category = Category(slug=slugify(name), name=name, description=description)
            session.add(category)
            yield f"category {name}"
        for title, body, author in threads:
            if session.scalar(select(Thread.id).where(Thread.title == title)) is None:
                session.add(
                    Thread(
                        slug=slugify(title),
                        title=title,
                        body=body,
                        category=category,
                        author=people[author],
                    )
                )
                yield f"thread {title}"
    if (
        session.scalar(select(OAuthClient.id).where(OAuthClient.name == DEMO_CLIENT["name"]))
        is None
    ):
        client, _secret = clients.create(session, clients.ClientFields(**DEMO_CLIENT))
        yield f"public OAuth client {client.name}: client_id={client.id}"
    session.flush()
    yield f"sign in at {current_app.config['PUBLIC_WEB_ADDRESS']}/login"
