"""Request and response bodies for accounts, sessions and roles."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

HANDLE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{2,29}$")
PASSWORD_MIN = 8
PASSWORD_MAX = 256

# The most common passwords in public breach corpora; a longer list would come from a file.
COMMON_PASSWORDS = frozenset(
    [
        "password",
        "password1",
        "password123",
        "passw0rd",
        "12345678",
        "123456789",
        "1234567890",
        "qwertyuiop",
        "qwerty123",
        "iloveyou",
        "sunshine",
        "princess",
        "football",
        "baseball",
        "welcome",
        "welcome1",
        "letmein",
        "letmein1",
        "admin123",
        "administrator",
        "trustno1",
        "dragon123",
        "monkey123",
        "abc12345",
        "11111111",
        "00000000",
        "88888888",
        "1q2w3e4r",
        "1qaz2wsx",
        "qazwsxedc",
        "zaq12wsx",
        "superman",
        "batman123",
        "starwars",
        "whatever",
        "changeme",
        "changeme123",
        "hearth123",
        "storyden",
    ]
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, str_strip_whitespace=False)


def normalise_handle(value: str) -> str:
    value = value.strip().lower()
    if not HANDLE_PATTERN.match(value):
        raise ValueError(
            "must be 3 to 30 characters: letters, digits, '-' or '_', starting with a letter or digit"
        )
    return value


class SignUp(Strict):
    # The pattern is published in the schema; the validator enforces it with a readable message.
    handle: str = Field(
        max_length=30,
        description="3 to 30 letters, digits, '-' or '_'; stored lowercase",
        json_schema_extra={"pattern": "^[A-Za-z0-9][A-Za-z0-9_-]{2,29}$"},
    )
    password: str = Field(max_length=PASSWORD_MAX, json_schema_extra={"minLength": PASSWORD_MIN})
    email: str | None = Field(default=None, max_length=254)

    _handle = field_validator("handle")(normalise_handle)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        value = value.strip()
        if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
            raise ValueError("must be an email address")
        return value

    @field_validator("password")
    @classmethod
    def _strong_password(cls, value: str, info: ValidationInfo) -> str:
        problem = password_problem(value, info.data.get("handle", ""))
        if problem:
            raise ValueError(problem)
        return value


def password_problem(password: str, handle: str) -> str | None:
    """Describe why a password is too weak (NIST SP 800-63B length and blocklist), or None."""
    if len(password) < PASSWORD_MIN:
        return f"must be at least {PASSWORD_MIN} characters"
    if password.lower() in COMMON_PASSWORDS or len(set(password)) < 4:
        return "is too common or too simple"
    if handle and handle in password.lower():
        return "must not contain your handle"
    return None


class SignIn(Strict):
    handle: str = Field(min_length=1, max_length=30)
    password: str = Field(min_length=1, max_length=PASSWORD_MAX)


class RoleList(Strict):
    roles: list[str] = Field(max_length=50, description="The complete list of role names")


class AccountOut(BaseModel):
    id: str
    handle: str
    name: str
    email: str | None
    roles: list[str]
    permissions: list[str]


class RolesOut(BaseModel):
    handle: str
    roles: list[str]
