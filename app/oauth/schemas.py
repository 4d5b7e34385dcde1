"""Bodies of the consent, admin client, authorized-app and registration APIs."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from app.accounts.schemas import Strict


class ConsentDecision(Strict):
    request_id: str = Field(min_length=1, max_length=200)
    decision: Literal["approve", "deny"]
    scopes: list[str] | None = Field(default=None, max_length=100)


class ScopeDetail(BaseModel):
    name: str
    description: str
    granted: bool
    reason: Literal["not_allowed_for_client", "account_lacks_permission"] | None


class ConsentDetails(BaseModel):
    request_id: str
    client_id: str
    client_name: str
    redirect_uri: str
    expires_at: str
    requested_scopes: list[str]
    granted_scopes: list[str]
    inherits_user_permissions: bool
    scopes: list[ScopeDetail]
    client_registered_itself: bool = Field(description="Registered through RFC 7591, not an admin")
    authorize_url: str = Field(
        description="The original authorization request, to continue it as another account"
    )


class ConsentResult(BaseModel):
    status: Literal["approved", "denied"]
    location: str


class AuthorizedApp(BaseModel):
    grant_id: str
    client_id: str
    client_name: str
    scopes: list[str]
    scope_descriptions: dict[str, str]
    created_at: str
    last_used_at: str | None


class AuthorizedAppList(BaseModel):
    items: list[AuthorizedApp]


class ClientOut(BaseModel):
    client_id: str
    name: str
    public: bool
    token_endpoint_auth_method: str
    redirect_uris: list[str]
    scopes: list[str]
    grants: list[str]
    scope_policy: str
    owner: str | None
    skip_consent: bool
    created_at: str
    secret_rotated_at: str | None
    client_secret: str | None = Field(default=None, description="Only when just created or rotated")


class ClientList(BaseModel):
    items: list[ClientOut]


class TokenForm(BaseModel):
    grant_type: Literal["authorization_code", "refresh_token", "client_credentials"]
    code: str | None = None
    redirect_uri: str | None = None
    code_verifier: str | None = None
    refresh_token: str | None = None
    scope: str | None = None
    resource: str | None = None
    client_id: str | None = None
    client_secret: str | None = None


class TokenResponse(BaseModel):
    access_token: str
    token_type: str
    expires_in: int
    scope: str
    refresh_token: str | None = None
    id_token: str | None = None


class TokenActionForm(BaseModel):
    token: str
    token_type_hint: Literal["access_token", "refresh_token"] | None = None
    client_id: str | None = None
    client_secret: str | None = None


class Introspection(BaseModel):
    active: bool
    scope: str | None = None
    client_id: str | None = None
    username: str | None = None
    token_type: str | None = None
    exp: int | None = None
    iat: int | None = None
    sub: str | None = None
    aud: str | None = None
    iss: str | None = None
    jti: str | None = None


class Registration(BaseModel):
    """RFC 7591 §2 client metadata that Hearth honours."""

    model_config = ConfigDict(extra="allow")

    redirect_uris: list[str] = Field(min_length=1, max_length=20)
    client_name: str | None = Field(default=None, max_length=100)
    token_endpoint_auth_method: Literal["none", "client_secret_basic", "client_secret_post"] = (
        "client_secret_basic"
    )
    grant_types: list[str] = Field(default_factory=lambda: ["authorization_code"], max_length=5)
    response_types: list[str] = Field(default_factory=lambda: ["code"], max_length=5)
    scope: str | None = Field(default=None, max_length=2000)


class RegistrationResponse(BaseModel):
    client_id: str
    client_secret: str | None = None
    client_id_issued_at: int
    client_secret_expires_at: int | None = None
    client_name: str
    redirect_uris: list[str]
    token_endpoint_auth_method: str
    grant_types: list[str]
    response_types: list[str]
    scope: str


class Metadata(BaseModel):
    model_config = ConfigDict(extra="allow")
    issuer: str
