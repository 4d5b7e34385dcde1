"""The permission vocabulary, default roles and their descriptions: the one home for all three.

Names follow Storyden. ADMINISTRATOR implies every other permission.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from functools import lru_cache


class Permission(StrEnum):
    READ_PUBLISHED_THREADS = "READ_PUBLISHED_THREADS"
    CREATE_POST = "CREATE_POST"
    CREATE_REACTION = "CREATE_REACTION"
    MANAGE_POSTS = "MANAGE_POSTS"
    MANAGE_CATEGORIES = "MANAGE_CATEGORIES"
    LIST_PROFILES = "LIST_PROFILES"
    READ_PROFILE = "READ_PROFILE"
    VIEW_ACCOUNTS = "VIEW_ACCOUNTS"
    MANAGE_ACCOUNTS = "MANAGE_ACCOUNTS"
    MANAGE_SUSPENSIONS = "MANAGE_SUSPENSIONS"
    MANAGE_ROLES = "MANAGE_ROLES"
    USE_OAUTH_CLIENTS = "USE_OAUTH_CLIENTS"
    USE_PERSONAL_ACCESS_KEYS = "USE_PERSONAL_ACCESS_KEYS"
    ADMINISTRATOR = "ADMINISTRATOR"


DESCRIPTIONS: dict[Permission, str] = {
    Permission.READ_PUBLISHED_THREADS: "Read published threads and replies",
    Permission.CREATE_POST: "Create threads and replies as you",
    Permission.CREATE_REACTION: "React to posts as you",
    Permission.MANAGE_POSTS: "Edit and delete anyone's threads and replies",
    Permission.MANAGE_CATEGORIES: "Create and change forum categories",
    Permission.LIST_PROFILES: "List member profiles",
    Permission.READ_PROFILE: "Read member profiles",
    Permission.VIEW_ACCOUNTS: "View account details of every member",
    Permission.MANAGE_ACCOUNTS: "Change the accounts of other members",
    Permission.MANAGE_SUSPENSIONS: "Suspend and reinstate members",
    Permission.MANAGE_ROLES: "Grant and revoke roles",
    Permission.USE_OAUTH_CLIENTS: "Authorise third-party applications",
    Permission.USE_PERSONAL_ACCESS_KEYS: "Create personal access keys",
    Permission.ADMINISTRATOR: "Full administrative control of the community",
}

ALL: frozenset[Permission] = frozenset(Permission)

GUEST: frozenset[Permission] = frozenset(
    {Permission.READ_PUBLISHED_THREADS, Permission.LIST_PROFILES, Permission.READ_PROFILE}
)
MEMBER: frozenset[Permission] = GUEST | {
    Permission.CREATE_POST,
    Permission.CREATE_REACTION,
    Permission.USE_OAUTH_CLIENTS,
    Permission.USE_PERSONAL_ACCESS_KEYS,
}
ADMIN: frozenset[Permission] = frozenset({Permission.ADMINISTRATOR})

# Seeded by the first migration. Guest permissions are everyone's baseline and are not a stored role.
DEFAULT_ROLES: dict[str, frozenset[Permission]] = {"member": MEMBER, "admin": ADMIN}
DEFAULT_ROLE_FOR_NEW_ACCOUNTS = "member"


NAMES: frozenset[str] = frozenset(p.value for p in Permission)


@lru_cache(maxsize=256)
def from_stored(text: str) -> frozenset[Permission]:
    """Read a role's space-separated permission names, skipping any this version does not know.

    Cached: every request with a session or token reads its account's aggregate."""
    return frozenset(Permission(name) for name in text.split() if name in NAMES)


def parse(names: Iterable[str]) -> frozenset[Permission]:
    """Convert permission names to members, raising ValueError on an unknown name."""
    return frozenset(Permission(name) for name in names)


def expand(held: Iterable[Permission]) -> frozenset[Permission]:
    """Return what `held` allows: ADMINISTRATOR implies everything."""
    held = frozenset(held)
    return ALL if Permission.ADMINISTRATOR in held else held


@lru_cache(maxsize=1024)
def granted(held: frozenset[Permission], scopes: frozenset[str]) -> frozenset[Permission]:
    """What a token may do: its scopes ∩ the account's current permissions (SPEC §3).

    Cached: every bearer request asks, and accounts share a handful of role and scope sets."""
    allowed = expand(held)
    return expand(p for p in Permission if p.value in scopes and p in allowed)


def sorted_names(permissions: Iterable[Permission]) -> list[str]:
    """List permission names in vocabulary order, for stable output."""
    chosen = set(permissions)
    return [p.value for p in Permission if p in chosen]
