"""Upstream provider settings: each provider enabled by its own variables, each mistake named."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

import config
from config import ConfigError

WEB = "https://forum.example"


def settings(**environ: str) -> dict[str, object]:
    return config.federation_settings(environ, WEB)


def error_for(**environ: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        settings(**environ)
    return caught.value


def pem(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def test_defaults_enable_nothing(tmp_path: Path) -> None:
    loaded = config.load({"HEARTH_INSTANCE_DIR": str(tmp_path)})

    assert loaded["OAUTH_PROVIDERS"] == {}
    assert loaded["OAUTH_SPA_REDIRECT_URIS"] == ["http://localhost:3000/auth/oauth/callback"]
    assert loaded["OAUTH_PROVIDER_MERGE_VERIFIED_EMAIL"] is False


def test_load_reads_provider_variables(tmp_path: Path) -> None:
    loaded = config.load(
        {
            "HEARTH_INSTANCE_DIR": str(tmp_path),
            "OAUTH_PROVIDER_GITHUB_CLIENT_ID": "id",
            "OAUTH_PROVIDER_GITHUB_CLIENT_SECRET": "secret",
        }
    )

    assert loaded["OAUTH_PROVIDERS"] == {
        "github": config.UpstreamProvider(
            name="github",
            kind="github",
            display_name="GitHub",
            client_id="id",
            client_secret="secret",
            scopes=("read:user", "user:email"),
            authorize_url="https://github.com/login/oauth/authorize",
            token_url="https://github.com/login/oauth/access_token",
            api_url="https://api.github.com",
        )
    }


def test_builtin_issuers_and_microsoft_tenant() -> None:
    providers = settings(
        OAUTH_PROVIDER_GOOGLE_CLIENT_ID="g",
        OAUTH_PROVIDER_GOOGLE_CLIENT_SECRET="gs",
        OAUTH_PROVIDER_MICROSOFT_CLIENT_ID="m",
        OAUTH_PROVIDER_MICROSOFT_CLIENT_SECRET="ms",
        OAUTH_PROVIDER_MICROSOFT_TENANT="organizations",
    )["OAUTH_PROVIDERS"]

    assert isinstance(providers, dict)
    assert providers["google"].issuer == "https://accounts.google.com"
    assert providers["microsoft"].issuer == "https://login.microsoftonline.com/organizations/v2.0"
    assert providers["microsoft"].tenant == "organizations"


def test_apple_needs_its_four_variables_and_a_p256_key() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    apple = {
        "OAUTH_PROVIDER_APPLE_CLIENT_ID": "org.example",
        "OAUTH_PROVIDER_APPLE_TEAM_ID": "T",
        "OAUTH_PROVIDER_APPLE_KEY_ID": "K",
        "OAUTH_PROVIDER_APPLE_PRIVATE_KEY": pem(key),
    }

    providers = settings(**apple)["OAUTH_PROVIDERS"]
    assert isinstance(providers, dict)
    assert providers["apple"].issuer == "https://appleid.apple.com"

    without_key = {k: v for k, v in apple.items() if not k.endswith("KEY_ID")}
    assert error_for(**without_key).variable == "OAUTH_PROVIDER_APPLE_KEY_ID"
    for bad in ("not a key", pem(rsa.generate_private_key(65537, 2048))):
        error = error_for(**{**apple, "OAUTH_PROVIDER_APPLE_PRIVATE_KEY": bad})
        assert error.variable == "OAUTH_PROVIDER_APPLE_PRIVATE_KEY"


def test_generic_issuers_by_name() -> None:
    providers = settings(
        OIDC_PROVIDERS="Keycloak, other-hearth",
        OIDC_PROVIDER_KEYCLOAK_ISSUER="https://id.example/realms/main/.well-known/openid-configuration",
        OIDC_PROVIDER_KEYCLOAK_CLIENT_ID="kc",
        OIDC_PROVIDER_KEYCLOAK_CLIENT_SECRET="kcs",
        OIDC_PROVIDER_OTHER_HEARTH_ISSUER="http://127.0.0.1:8001",
        OIDC_PROVIDER_OTHER_HEARTH_CLIENT_ID="oh",
        OIDC_PROVIDER_OTHER_HEARTH_DISPLAY_NAME="The other Hearth",
    )["OAUTH_PROVIDERS"]

    assert isinstance(providers, dict)
    assert list(providers) == ["keycloak", "other-hearth"]
    assert providers["keycloak"].issuer == "https://id.example/realms/main"
    assert providers["keycloak"].display_name == "keycloak"
    assert providers["other-hearth"].client_secret is None
    assert providers["other-hearth"].display_name == "The other Hearth"


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"OAUTH_PROVIDER_GOOGLE_CLIENT_ID": "g"}, "OAUTH_PROVIDER_GOOGLE_CLIENT_SECRET"),
        ({"OAUTH_PROVIDER_GITHUB_CLIENT_SECRET": "s"}, "OAUTH_PROVIDER_GITHUB_CLIENT_ID"),
        (
            {
                "OAUTH_PROVIDER_GOOGLE_CLIENT_ID": "g",
                "OAUTH_PROVIDER_GOOGLE_CLIENT_SECRET": "s",
                "OAUTH_PROVIDER_GOOGLE_ISSUER": "http://accounts.example",
            },
            "OAUTH_PROVIDER_GOOGLE_ISSUER",
        ),
        (
            {
                "OAUTH_PROVIDER_GITHUB_CLIENT_ID": "g",
                "OAUTH_PROVIDER_GITHUB_CLIENT_SECRET": "s",
                "OAUTH_PROVIDER_GITHUB_TOKEN_URL": "http://10.0.0.5/token",
            },
            "OAUTH_PROVIDER_GITHUB_TOKEN_URL",
        ),
        (
            {
                "OAUTH_PROVIDER_GITHUB_CLIENT_ID": "g",
                "OAUTH_PROVIDER_GITHUB_CLIENT_SECRET": "s",
                "OAUTH_PROVIDER_GITHUB_API_URL": "https://user:pw@api.example",
            },
            "OAUTH_PROVIDER_GITHUB_API_URL",
        ),
        (
            {
                "OAUTH_PROVIDER_MICROSOFT_CLIENT_ID": "m",
                "OAUTH_PROVIDER_MICROSOFT_CLIENT_SECRET": "s",
                "OAUTH_PROVIDER_MICROSOFT_TENANT": "../evil",
            },
            "OAUTH_PROVIDER_MICROSOFT_TENANT",
        ),
        ({"OIDC_PROVIDERS": "bad name"}, "OIDC_PROVIDERS"),
        ({"OIDC_PROVIDERS": "github"}, "OIDC_PROVIDERS"),
        ({"OIDC_PROVIDERS": "corp"}, "OIDC_PROVIDER_CORP_ISSUER"),
        (
            {"OIDC_PROVIDERS": "corp", "OIDC_PROVIDER_CORP_ISSUER": "https://id.example"},
            "OIDC_PROVIDER_CORP_CLIENT_ID",
        ),
        (
            {
                "OIDC_PROVIDERS": "corp,corp",
                "OIDC_PROVIDER_CORP_ISSUER": "https://id.example",
                "OIDC_PROVIDER_CORP_CLIENT_ID": "c",
            },
            "OIDC_PROVIDERS",
        ),
        (
            {
                "OIDC_PROVIDERS": "corp",
                "OIDC_PROVIDER_CORP_ISSUER": "https://id.example?tenant=1",
                "OIDC_PROVIDER_CORP_CLIENT_ID": "c",
            },
            "OIDC_PROVIDER_CORP_ISSUER",
        ),
        ({"OAUTH_SPA_REDIRECT_URIS": "https://app.example/cb,app://cb"}, "OAUTH_SPA_REDIRECT_URIS"),
        (
            {"OAUTH_PROVIDER_MERGE_VERIFIED_EMAIL": "sometimes"},
            "OAUTH_PROVIDER_MERGE_VERIFIED_EMAIL",
        ),
    ],
)
def test_each_malformed_setting_is_named(environ: dict[str, str], variable: str) -> None:
    error = error_for(**environ)

    assert error.variable == variable
    assert str(error).startswith(f"configuration error: {variable}: ")


def test_spa_redirect_uris_are_a_comma_separated_list() -> None:
    loaded = settings(OAUTH_SPA_REDIRECT_URIS=" https://a.example/cb , http://127.0.0.1:5173/cb ")

    assert loaded["OAUTH_SPA_REDIRECT_URIS"] == ["https://a.example/cb", "http://127.0.0.1:5173/cb"]
