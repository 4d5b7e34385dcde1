"""Sign-up, sign-in, sign-out, the current account and role changes."""

from __future__ import annotations

from typing import Any

from argon2 import PasswordHasher
from flask import Blueprint, Response, current_app, jsonify, request

from app import permissions
from app.accounts import service
from app.accounts.schemas import AccountOut, RoleList, RolesOut, SignIn, SignUp
from app.auth import SESSION_COOKIE, AccountInfo, Principal, require, signed_in
from app.extensions import db, read_only
from app.models import Account
from app.openapi import operation
from app.permissions import Permission
from app.ratelimit import SIGNIN_PER_HANDLE, SIGNIN_PER_IP, limit, signin_key
from app.requests import json_body

bp = Blueprint("accounts", __name__)


def hasher() -> PasswordHasher:
    config = current_app.config
    return service.password_hasher(
        config["PASSWORD_HASH_TIME_COST"],
        config["PASSWORD_HASH_MEMORY_KIB"],
        config["PASSWORD_HASH_PARALLELISM"],
    )


def account_json(
    account: Account | AccountInfo,
    roles: list[str],
    held: frozenset[Permission],
) -> dict[str, Any]:
    return {
        "id": account.id,
        "handle": account.handle,
        "name": account.name,
        "email": account.email,
        "roles": roles,
        "permissions": permissions.sorted_names(permissions.expand(held)),
    }


def stored_account_json(account: Account) -> dict[str, Any]:
    """account_json for an ORM row (sign-up and sign-in responses)."""
    return account_json(account, service.role_names(account), service.account_permissions(account))


def set_session_cookie(response: Response, token: str) -> None:
    config = current_app.config
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(config["SESSION_TTL"].total_seconds()),
        path="/",
        domain=config["SESSION_COOKIE_DOMAIN"],
        secure=config["SESSION_COOKIE_SECURE"],
        httponly=True,
        samesite="Lax",
    )


def _signed_in_response(account: Account) -> Response:
    token = service.start_session(db.session, account, current_app.config["SESSION_TTL"])
    db.commit()
    response = jsonify(stored_account_json(account))
    response.headers["Cache-Control"] = "no-store"
    set_session_cookie(response, token)
    return response


@bp.post("/api/auth/password/signup")
@operation(
    "Create a password account and sign in",
    tag="auth",
    body=SignUp,
    responses={200: AccountOut, 400: "Invalid fields", 409: "Handle taken", 415: "Not JSON"},
)
def signup() -> Response:
    form = json_body(SignUp)
    account = service.sign_up(db.session, hasher(), form)
    return _signed_in_response(account)


@bp.post("/api/auth/password/signin")
@limit(SIGNIN_PER_HANDLE, key_func=signin_key)
@limit(SIGNIN_PER_IP)
@operation(
    "Sign in with a handle and password",
    tag="auth",
    body=SignIn,
    responses={200: AccountOut, 400: "Invalid fields", 401: "Wrong handle or password"},
)
def signin() -> Response:
    form = json_body(SignIn)
    account = service.authenticate(db.session, hasher(), form.handle, form.password)
    return _signed_in_response(account)


@bp.post("/api/auth/signout")
@operation(
    "End the current session and clear the cookie", tag="auth", responses={204: "Signed out"}
)
def signout() -> Response:
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        service.end_session(db.session, token)
        db.commit()
    response = Response(status=204)
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        domain=current_app.config["SESSION_COOKIE_DOMAIN"],
        secure=current_app.config["SESSION_COOKIE_SECURE"],
        httponly=True,
        samesite="Lax",
    )
    return response


@bp.get("/api/accounts/self")
@read_only
@operation(
    "The signed-in account, its roles and effective permissions",
    tag="accounts",
    auth=True,
    responses={200: AccountOut, 401: "Not signed in"},
)
def get_self() -> Response:
    principal: Principal = signed_in()
    response = jsonify(account_json(principal.info, principal.roles, principal.permissions))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.put("/api/accounts/<handle>/roles")
@operation(
    "Replace an account's roles",
    tag="accounts",
    body=RoleList,
    permission=Permission.MANAGE_ROLES,
    responses={
        200: RolesOut,
        400: "Unknown role",
        403: "Forbidden",
        404: "No such account",
        409: "Would remove the last administrator",
    },
)
def put_roles(handle: str) -> Response:
    require(Permission.MANAGE_ROLES)
    form = json_body(RoleList)
    account = service.set_roles(db.session, signed_in(), handle, form.roles)
    db.commit()
    return jsonify({"handle": account.handle, "roles": service.role_names(account)})
