"""RFC 8414 / OIDC discovery and RFC 9728 protected resource metadata."""

from __future__ import annotations

from typing import Any

from app.oauth import scopes as scope_rules


def authorization_server(issuer: str, registration: bool) -> dict[str, Any]:
    document: dict[str, Any] = {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/api/oauth/authorize",
        "token_endpoint": f"{issuer}/api/oauth/token",
        "revocation_endpoint": f"{issuer}/api/oauth/revoke",
        "introspection_endpoint": f"{issuer}/api/oauth/introspect",
        "userinfo_endpoint": f"{issuer}/api/oauth/userinfo",
        "jwks_uri": f"{issuer}/api/oauth/jwks",
        "scopes_supported": scope_rules.vocabulary_order(scope_rules.KNOWN),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "token_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "revocation_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
            "none",
        ],
        "introspection_endpoint_auth_methods_supported": [
            "client_secret_basic",
            "client_secret_post",
        ],
        "code_challenge_methods_supported": ["S256"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "claims_supported": [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "at_hash",
            "preferred_username",
            "name",
            "email",
            "email_verified",
        ],
        "prompt_values_supported": ["none", "login", "consent"],
        "authorization_response_iss_parameter_supported": True,
        "resource_indicators_supported": True,
        "protected_resources": [f"{issuer}/api"],
    }
    if registration:
        document["registration_endpoint"] = f"{issuer}/api/oauth/register"
    return document


def protected_resource(issuer: str) -> dict[str, Any]:
    return {
        "resource": f"{issuer}/api",
        "authorization_servers": [issuer],
        "scopes_supported": scope_rules.vocabulary_order(scope_rules.KNOWN),
        "bearer_methods_supported": ["header"],
        "resource_name": "Hearth API",
        "resource_documentation": f"{issuer}/api/openapi.json",
    }
