"""Scope vocabulary and the one rule that decides what a grant carries.

Granted = requested ∩ the client's allowed scopes ∩ the account's current permissions (SPEC §4.2).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from app import permissions
from app.errors import HearthError
from app.permissions import Permission

OIDC_SCOPES: dict[str, str] = {
    "openid": "Sign you in to the app with your community account",
    "profile": "See your handle and display name",
    "email": "See your email address",
    "offline_access": "Stay connected when you are not using the app",
}
KNOWN: frozenset[str] = frozenset(OIDC_SCOPES) | permissions.NAMES
# Never granted to a dynamically registered client (SPEC §4, RFC 7591 row).
PRIVILEGED: frozenset[str] = frozenset(
    {
        Permission.ADMINISTRATOR,
        Permission.MANAGE_POSTS,
        Permission.MANAGE_CATEGORIES,
        Permission.MANAGE_ACCOUNTS,
        Permission.MANAGE_SUSPENSIONS,
        Permission.MANAGE_ROLES,
        Permission.VIEW_ACCOUNTS,
        Permission.USE_OAUTH_CLIENTS,
        Permission.USE_PERSONAL_ACCESS_KEYS,
    }
)

NOT_ALLOWED_FOR_CLIENT = "not_allowed_for_client"
ACCOUNT_LACKS_PERMISSION = "account_lacks_permission"


class InvalidScope(HearthError):
    error = "invalid_scope"
    description = "The scope is unknown."


def describe(name: str) -> str:
    if name in OIDC_SCOPES:
        return OIDC_SCOPES[name]
    return permissions.DESCRIPTIONS[Permission(name)]


def split(scope: str | None) -> list[str]:
    """Split a scope string into names, keeping order and dropping repeats (RFC 6749 §3.3)."""
    return list(dict.fromkeys((scope or "").split()))


def check_known(names: Iterable[str]) -> None:
    unknown = sorted(set(names) - KNOWN)
    if unknown:
        raise InvalidScope(f"Unknown scope: {' '.join(unknown)}.")


def vocabulary_order(names: Iterable[str]) -> list[str]:
    chosen = set(names)
    ordered = [name for name in OIDC_SCOPES if name in chosen]
    return ordered + [p.value for p in Permission if p.value in chosen]


@dataclass(frozen=True)
class Decision:
    requested: list[str]
    granted: list[str]
    details: list[dict[str, Any]]


def _reason(name: str, allowed: frozenset[str], held: frozenset[Permission]) -> str | None:
    client_admin = Permission.ADMINISTRATOR.value in allowed
    if name in OIDC_SCOPES:
        # ADMINISTRATOR stands for permissions only, never for OIDC scopes.
        return None if name in allowed else NOT_ALLOWED_FOR_CLIENT
    if name == Permission.ADMINISTRATOR:
        if name not in allowed:
            return NOT_ALLOWED_FOR_CLIENT
        return None if Permission.ADMINISTRATOR in held else ACCOUNT_LACKS_PERMISSION
    if name not in allowed and not client_admin:
        return NOT_ALLOWED_FOR_CLIENT
    if Permission(name) not in permissions.expand(held):
        return ACCOUNT_LACKS_PERMISSION
    return None


def decide(
    requested: list[str], allowed: frozenset[str], policy: str, held: frozenset[Permission]
) -> Decision:
    """Apply the intersection rule; `held` is the account's current permissions (unexpanded)."""
    check_known(requested)
    names = requested
    if not requested and policy == "inherit":
        # Everything the account holds that the client allows; ADMINISTRATOR only when asked for.
        names = [
            p.value
            for p in Permission
            if p is not Permission.ADMINISTRATOR and _reason(p.value, allowed, held) is None
        ]
    details: list[dict[str, Any]] = []
    for name in names:
        reason = _reason(name, allowed, held)
        details.append(
            {
                "name": name,
                "description": describe(name),
                "granted": reason is None,
                "reason": reason,
            }
        )
    granted = [str(d["name"]) for d in details if d["granted"]]
    return Decision(requested=list(requested), granted=granted, details=details)
