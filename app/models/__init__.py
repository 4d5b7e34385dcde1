"""All models, imported together so Alembic and the metadata see every table."""

from app.models.accounts import Account, AccountRole, AuthSession, Role
from app.models.forum import Category, Reply, Thread
from app.models.oauth import AuthorizationCode, Grant, OAuthClient, PendingRequest, Token

__all__ = [
    "Account",
    "AccountRole",
    "AuthSession",
    "AuthorizationCode",
    "Category",
    "Grant",
    "OAuthClient",
    "PendingRequest",
    "Reply",
    "Role",
    "Thread",
    "Token",
]
