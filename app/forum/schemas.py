"""Request and response bodies for categories, threads, replies and profiles."""

from __future__ import annotations

from pydantic import BaseModel, Field

from app.accounts.schemas import Strict


class NewCategory(Strict):
    name: str = Field(min_length=1, max_length=80)
    description: str = Field(default="", max_length=2000)


class NewThread(Strict):
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=100_000)
    category: str = Field(min_length=1, max_length=80, description="The category's slug")


class ThreadChanges(Strict):
    title: str | None = Field(default=None, min_length=1, max_length=200)
    body: str | None = Field(default=None, min_length=1, max_length=100_000)
    category: str | None = Field(default=None, min_length=1, max_length=80)


class NewReply(Strict):
    body: str = Field(min_length=1, max_length=100_000)


class Author(BaseModel):
    id: str
    handle: str
    name: str


class CategoryOut(BaseModel):
    id: str
    slug: str
    name: str
    description: str


class CategoryList(BaseModel):
    items: list[CategoryOut]
    next_cursor: str | None


class ReplyOut(BaseModel):
    id: str
    body: str
    author: Author
    created_at: str


class ThreadOut(BaseModel):
    id: str
    slug: str
    title: str
    body: str
    category: str
    author: Author
    created_at: str
    updated_at: str


class ThreadSummary(BaseModel):
    id: str
    slug: str
    title: str
    category: str
    author: Author
    created_at: str
    reply_count: int


class ThreadList(BaseModel):
    items: list[ThreadSummary]
    next_cursor: str | None


class ThreadDetail(ThreadOut):
    replies: list[ReplyOut]


class ProfileOut(BaseModel):
    id: str
    handle: str
    name: str
    created_at: str
    roles: list[str]


class ProfileList(BaseModel):
    items: list[ProfileOut]
    next_cursor: str | None
