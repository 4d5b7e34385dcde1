"""Request and response bodies of upstream sign-in."""

from __future__ import annotations

from pydantic import BaseModel, Field

from app.accounts.schemas import Strict


class ProviderOut(BaseModel):
    provider: str = Field(description="The `{provider}` path segment")
    name: str = Field(description="What a sign-in button shows")


class ProviderList(BaseModel):
    items: list[ProviderOut]


class AuthorizationUrlOut(BaseModel):
    url: str = Field(description="Send the browser here")
    provider: str
    state: str


class SpaAuthorizationUrlOut(BaseModel):
    url: str


class QueryProblem(BaseModel):
    loc: list[str]
    msg: str
    type: str


class SpaQueryErrors(BaseModel):
    detail: list[QueryProblem]


class SpaCallback(Strict):
    code: str = Field(min_length=1, max_length=4096)
    state: str = Field(min_length=1, max_length=512)
    # RFC 7636 §4.1: 43 to 128 unreserved characters.
    code_verifier: str = Field(pattern=r"^[A-Za-z0-9._~-]{43,128}$")
    iss: str | None = Field(default=None, max_length=2048, description="RFC 9207, when sent")


class IdentityOut(BaseModel):
    provider: str
    subject: str
    created_at: str


class IdentityList(BaseModel):
    items: list[IdentityOut]
