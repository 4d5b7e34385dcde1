"""Login states, upstream identities and the accounts they sign in to.

Functions take the DB session (and a provider where the network is involved); they flush, the
views commit. A login state is consumed and committed before any call to the provider, so a
slow provider never holds a database transaction open.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import permissions
from app.accounts.schemas import HANDLE_PATTERN
from app.auth import sha256
from app.db import utcnow
from app.errors import Conflict, NotFound
from app.federation.errors import LoginFailed
from app.federation.providers import Callback, Profile, Provider
from app.models import Account, FederatedIdentity, LoginState, Role
from app.observability import security_event

LOGIN_STATE_TTL = timedelta(minutes=10)
BROWSER_KINDS = ("authenticate", "link")
RETURN_URL_MAX = 2048
HANDLE_MAX = 30
# Anything that is not a URL character people type: whitespace, controls, backslashes.
_UNSAFE_URL = re.compile(r"[\x00-\x20\x7f\\]")


@dataclass(frozen=True)
class Started:
    url: str
    state: str


def s256(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL(SHA256(code_verifier))."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def derive_verifier(binding: str, state: str) -> str:
    """The PKCE verifier of one sign-in: only the browser's binding secret can rebuild it.

    Deriving it (rather than keeping one cookie per sign-in) lets a browser run sign-ins in
    several tabs at once with a single cookie, and the database never sees the verifier.
    """
    mac = hmac.new(binding.encode(), b"pkce:" + state.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def safe_return_url(value: str | None, api: str, web: str) -> str:
    """Where to send the browser afterwards: the API or web origin only, never elsewhere."""
    fallback = web + "/"
    if not value or len(value) > RETURN_URL_MAX or _UNSAFE_URL.search(value):
        return fallback
    if value.startswith("/"):
        # A path on the web app; "//host" would be another origin.
        return web + value if not value.startswith("//") else fallback
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or "@" in parts.netloc:
        return fallback
    origin = f"{parts.scheme}://{parts.netloc}".lower()
    for allowed in (api, web):
        known = urlsplit(allowed)
        if origin == f"{known.scheme}://{known.netloc}".lower():
            return value
    return fallback


def start(
    session: Session,
    provider: Provider,
    *,
    kind: str,
    binding: str,
    callback_url: str,
    return_url: str,
    account_id: str | None = None,
) -> Started:
    """Store a browser sign-in's state and return the provider's authorization URL."""
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    challenge = s256(derive_verifier(binding, state))
    url = provider.authorization_url(
        redirect_uri=callback_url, state=state, nonce=nonce, code_challenge=challenge
    )
    _store(
        session,
        provider,
        state,
        nonce,
        challenge,
        kind=kind,
        binding_hash=sha256(binding),
        account_id=account_id,
        return_url=return_url,
    )
    return Started(url, state)


def start_spa(session: Session, provider: Provider, *, redirect_uri: str, challenge: str) -> str:
    """Store a single-page app's sign-in; the app keeps the verifier, we keep its challenge."""
    state, nonce = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    url = provider.authorization_url(
        redirect_uri=redirect_uri, state=state, nonce=nonce, code_challenge=challenge
    )
    _store(session, provider, state, nonce, challenge, kind="spa", redirect_uri=redirect_uri)
    return url


def _store(
    session: Session,
    provider: Provider,
    state: str,
    nonce: str,
    challenge: str,
    *,
    kind: str,
    binding_hash: str | None = None,
    account_id: str | None = None,
    return_url: str | None = None,
    redirect_uri: str | None = None,
) -> None:
    now = utcnow()
    session.add(
        LoginState(
            state_hash=sha256(state),
            nonce_hash=sha256(nonce),
            verifier_hash=challenge,
            binding_hash=binding_hash,
            provider=provider.name,
            kind=kind,
            account_id=account_id,
            return_url=return_url,
            redirect_uri=redirect_uri,
            created_at=now,
            expires_at=now + LOGIN_STATE_TTL,
        )
    )
    session.flush()


def consume(
    session: Session, provider: str, state: str | None, *, binding: str | None, spa: bool = False
) -> LoginState:
    """Claim a login state exactly once: right provider, right browser (or app), unexpired."""
    row = session.scalar(select(LoginState).where(LoginState.state_hash == sha256(state or "")))
    if row is None or row.provider != provider or (row.kind == "spa") != spa:
        raise LoginFailed("invalid_state", "This sign-in is unknown. Please start again.")
    return_url = row.return_url
    if not spa and (
        not binding
        or row.binding_hash is None
        or not hmac.compare_digest(sha256(binding), row.binding_hash)
    ):
        # Started in another browser (login CSRF): leave the state for its real owner.
        security_event("federated_state_foreign_browser", provider=provider)
        raise LoginFailed(
            "invalid_state", "This sign-in was started in another browser.", return_url=return_url
        )
    now = utcnow()
    if row.used_at is not None:
        security_event("federated_state_replay", provider=provider)
        raise LoginFailed("invalid_state", "This sign-in was already used.", return_url=return_url)
    if row.expires_at <= now:
        raise LoginFailed(
            "expired_state",
            "This sign-in took too long. Please start again.",
            return_url=return_url,
        )
    claimed = session.execute(
        update(LoginState)
        .where(LoginState.id == row.id, LoginState.used_at.is_(None), LoginState.expires_at > now)
        .values(used_at=now)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise LoginFailed("invalid_state", "This sign-in was already used.", return_url=return_url)
    return row


def complete(
    session: Session,
    provider: Provider,
    row: LoginState,
    callback: Callback,
    *,
    merge_verified_email: bool,
    signed_in_account_id: str | None,
) -> Account:
    """Ask the provider who signed in, then sign in to, create or link the account."""
    profile = provider.complete(callback)
    if row.kind == "link":
        assert row.account_id is not None
        if signed_in_account_id != row.account_id:
            raise LoginFailed(
                "account_mismatch", "Sign in to the account you were linking, then try again."
            )
        return link(session, row.account_id, provider.name, profile)
    return sign_in(session, provider.name, profile, merge_verified_email=merge_verified_email)


def sign_in(
    session: Session, provider: str, profile: Profile, *, merge_verified_email: bool
) -> Account:
    """The account linked to this identity; else a verified-email match (if allowed); else new."""
    for _attempt in range(3):
        identity = _identity(session, provider, profile.subject)
        if identity is not None:
            identity.email, identity.email_verified = profile.email, profile.email_verified
            account = session.get(Account, identity.account_id)
            assert account is not None
            security_event("federated_sign_in", provider=provider, account_id=account.id)
            return account
        try:
            with session.begin_nested():
                account = _merge_candidate(session, profile) if merge_verified_email else None
                created = account is None
                if account is None:
                    account = _create_account(session, provider, profile)
                session.add(_new_identity(account.id, provider, profile))
                session.flush()
        except IntegrityError:
            # Lost a race: the same identity or the chosen handle was taken meanwhile.
            continue
        security_event(
            "federated_sign_in",
            provider=provider,
            account_id=account.id,
            new_account=created,
            merged_by_email=not created,
        )
        return account
    raise Conflict("This sign-in collided with another one. Please try again.")


def _merge_candidate(session: Session, profile: Profile) -> Account | None:
    """The one account whose own verified email is the provider's verified email.

    Both sides must vouch for the address: merging into an account whose address was never
    verified would hand the victim's sign-in to whoever registered it first.
    """
    if not profile.email or not profile.email_verified:
        return None
    matches = session.scalars(
        select(Account)
        .where(func.lower(Account.email) == profile.email.lower(), Account.email_verified)
        .limit(2)
    ).all()
    return matches[0] if len(matches) == 1 else None


def _create_account(session: Session, provider: str, profile: Profile) -> Account:
    handle = _free_handle(session, handle_base(profile, provider))
    email = None
    if profile.email and profile.email_verified:
        taken = session.scalar(
            select(Account.id).where(func.lower(Account.email) == profile.email.lower()).limit(1)
        )
        # A second account never claims an address another account already holds.
        email = profile.email if taken is None else None
    account = Account(
        handle=handle,
        name=(profile.name or handle)[:100],
        email=email,
        email_verified=email is not None,
        password_hash=None,
    )
    role = session.scalar(
        select(Role).where(Role.name == permissions.DEFAULT_ROLE_FOR_NEW_ACCOUNTS)
    )
    account.roles = [role] if role is not None else []
    session.add(account)
    session.flush()
    return account


def handle_base(profile: Profile, provider: str) -> str:
    """A handle from the profile (username, email local part, name) in Hearth's handle rules."""
    # Microsoft's preferred_username is an address; its local part makes the better handle.
    username = profile.username.split("@", 1)[0] if profile.username else None
    local_part = profile.email.split("@", 1)[0] if profile.email else None
    for raw in (username, local_part, profile.name):
        if not raw:
            continue
        ascii_text = unicodedata.normalize("NFKD", raw).encode("ascii", "ignore").decode()
        handle = re.sub(r"[^a-z0-9_-]+", "-", ascii_text.lower())
        handle = re.sub(r"-{2,}", "-", handle).lstrip("-_")[:HANDLE_MAX].rstrip("-_")
        if HANDLE_PATTERN.match(handle):
            return handle
    return f"{provider}-user"[:HANDLE_MAX]


def _free_handle(session: Session, base: str) -> str:
    """`base`, or `base-2`, `base-3`…, or a random suffix when many are taken."""
    candidates = [base] + [f"{base[: HANDLE_MAX - 1 - len(str(n))]}-{n}" for n in range(2, 10)]
    taken = set(session.scalars(select(Account.handle).where(Account.handle.in_(candidates))))
    for candidate in candidates:
        if candidate not in taken:
            return candidate
    for _attempt in range(10):
        suffix = str(secrets.randbelow(900_000) + 100_000)
        candidate = f"{base[: HANDLE_MAX - 1 - len(suffix)]}-{suffix}"
        if session.scalar(select(Account.id).where(Account.handle == candidate)) is None:
            return candidate
    raise Conflict("Could not find a free handle. Please try again.")


def link(session: Session, account_id: str, provider: str, profile: Profile) -> Account:
    """Attach the identity to the account; an identity never moves between accounts silently."""
    account = session.get(Account, account_id)
    if account is None:
        raise LoginFailed("account_mismatch", "The account you were linking no longer exists.")
    identity = _identity(session, provider, profile.subject)
    if identity is not None:
        if identity.account_id != account_id:
            raise LoginFailed(
                "identity_in_use", "That sign-in is already linked to another account."
            )
        return account
    existing = session.scalar(
        select(FederatedIdentity).where(
            FederatedIdentity.account_id == account_id, FederatedIdentity.provider == provider
        )
    )
    if existing is not None:
        raise LoginFailed(
            "provider_already_linked", "Unlink your other account at this provider first."
        )
    try:
        with session.begin_nested():
            session.add(_new_identity(account_id, provider, profile))
            session.flush()
    except IntegrityError:
        raise LoginFailed(
            "identity_in_use", "That sign-in is already linked to another account."
        ) from None
    security_event("identity_linked", provider=provider, account_id=account_id)
    return account


def _identity(session: Session, provider: str, subject: str) -> FederatedIdentity | None:
    return session.scalar(
        select(FederatedIdentity).where(
            FederatedIdentity.provider == provider, FederatedIdentity.subject == subject
        )
    )


def _new_identity(account_id: str, provider: str, profile: Profile) -> FederatedIdentity:
    return FederatedIdentity(
        account_id=account_id,
        provider=provider,
        subject=profile.subject,
        email=profile.email,
        email_verified=profile.email_verified,
    )


def identities(session: Session, account_id: str) -> list[FederatedIdentity]:
    return list(
        session.scalars(
            select(FederatedIdentity)
            .where(FederatedIdentity.account_id == account_id)
            .order_by(FederatedIdentity.created_at, FederatedIdentity.id)
        )
    )


def unlink(session: Session, account_id: str, provider: str) -> None:
    """Remove a linked identity unless it is the account's last way to sign in."""
    # Lock the account row so two unlinks cannot each leave the other as the last way in.
    account = session.scalar(select(Account).where(Account.id == account_id).with_for_update())
    if account is None:
        raise NotFound("No such account.")
    linked = identities(session, account_id)
    target = next((identity for identity in linked if identity.provider == provider), None)
    if target is None:
        raise NotFound("No identity from that provider is linked to your account.")
    if account.password_hash is None and len(linked) == 1:
        raise Conflict(
            "This is your only way to sign in. Set a password or link another provider first."
        )
    session.delete(target)
    session.flush()
    security_event("identity_unlinked", provider=provider, account_id=account_id)


def delete_expired_login_states(session: Session, batch: int) -> int:
    """Delete one batch of expired login states; return how many went."""
    ids = session.scalars(
        select(LoginState.id).where(LoginState.expires_at <= utcnow()).limit(batch)
    ).all()
    if ids:
        session.execute(delete(LoginState).where(LoginState.id.in_(ids)))
    return len(ids)
