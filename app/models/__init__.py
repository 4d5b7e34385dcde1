"""All models, imported together so Alembic and the metadata see every table."""

from app.models.accounts import Account, AccountRole, AuthSession, Role
from app.models.federation import FederatedIdentity, LoginState
from app.models.forum import Category, ForumRevision, Reply, Thread
from app.models.oauth import AuthorizationCode, Grant, OAuthClient, PendingRequest, Token

__all__ = [
    "Account",
    "AccountRole",
    "AuthSession",
    "AuthorizationCode",
    "Category",
    "FederatedIdentity",
    "ForumRevision",
    "Grant",
    "LoginState",
    "OAuthClient",
    "PendingRequest",
    "Reply",
    "Role",
    "Thread",
    "Token",
]
