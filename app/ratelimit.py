"""Rate limits (SPEC §1): sign-in, the token-family endpoints and registration."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from flask import request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from app.requests import basic_client_id

# RATELIMIT_ENABLED and RATELIMIT_STORAGE_URI come from config.py under Flask-Limiter's own names.
F = TypeVar("F", bound=Callable[..., Any])
limiter = Limiter(key_func=get_remote_address, headers_enabled=True, default_limits=[])

SIGNIN_PER_HANDLE = "10/minute"
SIGNIN_PER_IP = "100/minute"
TOKEN_PER_CLIENT = "1200/minute"
REGISTRATION_PER_IP = "20/hour"


def limit(value: str, key_func: Callable[[], str] | None = None) -> Callable[[F], F]:
    """Apply a Flask-Limiter limit and mark the view so its OpenAPI entry lists 429."""

    def decorate(view: F) -> F:
        wrapped: Any = limiter.limit(value, key_func=key_func)(view)
        wrapped._hearth_rate_limited = True
        return cast(F, wrapped)

    return decorate


def signin_key() -> str:
    """(IP, handle): slows guessing one account's password without locking its owner out."""
    body = request.get_json(silent=True)
    handle = body.get("handle") if isinstance(body, dict) else None
    handle = handle.strip().lower()[:64] if isinstance(handle, str) else ""
    return f"{get_remote_address()}|{handle}"


def client_key() -> str:
    """The client id from Basic credentials or the form, else the address."""
    basic_id = basic_client_id(request.headers.get("Authorization", ""))
    if basic_id is not None:
        return "client:" + basic_id[:128]
    client_id = request.form.get("client_id")
    if client_id:
        return "client:" + client_id[:128]
    return "ip:" + get_remote_address()
