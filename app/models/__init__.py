"""All models, imported together so Alembic and the metadata see every table."""

from app.models.accounts import Account, AccountRole, AuthSession, Role
from app.models.forum import Category, Reply, Thread

__all__ = ["Account", "AccountRole", "AuthSession", "Category", "Reply", "Role", "Thread"]
