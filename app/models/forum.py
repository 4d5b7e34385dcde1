"""Forum content: categories, threads and replies."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, UTCDateTime, new_id, utcnow
from app.models.accounts import Account


class Category(Base):
    __tablename__ = "categories"

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Thread(Base):
    __tablename__ = "threads"
    __table_args__ = (Index("ix_threads_category_id_id", "category_id", "id"),)

    # Identifiers are time-ordered, so `id` doubles as the pagination cursor.
    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    category_id: Mapped[str] = mapped_column(ForeignKey("categories.id", ondelete="RESTRICT"))
    author_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # Kept by triggers on `replies` (migration 0005), never written by the application: a
    # thread in a session does not see replies added after it was loaded.
    reply_count: Mapped[int] = mapped_column(Integer, server_default="0")

    category: Mapped[Category] = relationship(lazy="joined")
    author: Mapped[Account] = relationship(lazy="joined")


class Reply(Base):
    __tablename__ = "replies"
    __table_args__ = (Index("ix_replies_thread_id_id", "thread_id", "id"),)

    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    thread_id: Mapped[str] = mapped_column(ForeignKey("threads.id", ondelete="CASCADE"))
    body: Mapped[str] = mapped_column(Text)
    author_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    author: Mapped[Account] = relationship(lazy="joined")


class ForumRevision(Base):
    """One row whose `value` goes up in every transaction that changes what the thread list
    shows: a thread, category or account added or removed, a thread's id, slug, title,
    category, author, creation time or reply count, a category's id or slug, an account's id,
    handle or name. It never goes down, and each value is at least the database clock in
    microseconds.

    Triggers raise it (migration 0009), never the application, so every writer counts: the API,
    the CLI, cascades and SQL run by hand. A thread list cached in a worker is served only while
    the revision read in the request equals the one read with the cached rows (app.forum.pages).
    SQLite drops a table's triggers with the table: a later migration that rebuilds `threads`,
    `categories` or `accounts` through `batch_alter_table` must create them again."""

    __tablename__ = "forum_revision"
    __table_args__ = (CheckConstraint("id = 1", name="one_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    value: Mapped[int] = mapped_column(BigInteger)
