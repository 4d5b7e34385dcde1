"""Hearth configuration: the only module that reads the environment.

Every setting comes from an environment variable (12-factor). A missing or malformed value raises
`ConfigError` naming the variable, which the entry points print as one line before exiting.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"configuration error: {variable}: {problem}")
        self.variable = variable


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def parse_duration(variable: str, text: str) -> timedelta:
    """Parse a Go-style duration such as `15m`, `720h` or `1h30m`."""
    text = text.strip()
    pos, seconds = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != pos:
            break
        seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if not text or pos != len(text):
        raise ConfigError(variable, f"expected a duration like 60s, 15m or 720h, got {text!r}")
    if seconds <= 0:
        raise ConfigError(variable, "must be longer than zero")
    return timedelta(seconds=seconds)


def is_loopback_host(host: str | None) -> bool:
    """Tell whether a URL host names this machine (localhost or a loopback IP)."""
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _address(variable: str, value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(variable, f"expected an absolute http(s) URL, got {value!r}")
    if parts.query or parts.fragment:
        raise ConfigError(variable, "must not carry a query or fragment")
    return value.rstrip("/")


class _Env:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self.environ.get(name)
        if value is None or value.strip() == "":
            return default
        return value.strip()

    def bool(self, name: str, default: bool) -> bool:
        value = self.environ.get(name)
        if value is None:
            return default
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ConfigError(name, f"expected true or false, got {value!r}")

    def duration(self, name: str, default: str) -> timedelta:
        return parse_duration(name, self.text(name, default) or default)


def _instance_file(instance: Path, name: str, make: Any) -> str:
    """Read a development secret from `instance/`, creating it once."""
    path = instance / name
    if path.exists():
        return path.read_text()
    instance.mkdir(parents=True, exist_ok=True)
    value = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return str(value)


def load(environ: Mapping[str, str] | None = None, *, signs_tokens: bool = True) -> dict[str, Any]:
    """Build the settings dictionary from the environment, validating every value.

    The frontend passes `signs_tokens=False`: it never signs a JWT, so production does not
    require it to hold the provider's private key.
    """
    env = _Env(os.environ if environ is None else environ)
    hearth_env = env.text("HEARTH_ENV", "development")
    if hearth_env not in ("development", "production", "testing"):
        raise ConfigError("HEARTH_ENV", f"expected development or production, got {hearth_env!r}")
    production = hearth_env == "production"
    instance = Path(env.text("HEARTH_INSTANCE_DIR", "instance") or "instance").resolve()

    database_url = env.text("DATABASE_URL", f"sqlite:///{instance / 'hearth.db'}")
    assert database_url is not None
    if not re.match(r"^(sqlite|postgresql)(\+\w+)?://", database_url):
        raise ConfigError("DATABASE_URL", "expected a sqlite:// or postgresql+psycopg:// URL")
    if database_url.startswith("postgresql://"):
        database_url = "postgresql+psycopg://" + database_url[len("postgresql://") :]

    api = _address(
        "PUBLIC_API_ADDRESS", env.text("PUBLIC_API_ADDRESS", "http://localhost:8000") or ""
    )
    web = _address(
        "PUBLIC_WEB_ADDRESS", env.text("PUBLIC_WEB_ADDRESS", "http://localhost:3000") or ""
    )
    internal = _address("API_INTERNAL_ADDRESS", env.text("API_INTERNAL_ADDRESS", api) or api)

    secret_key = env.text("SECRET_KEY")
    if secret_key is None:
        if production:
            raise ConfigError("SECRET_KEY", "required when HEARTH_ENV=production")
        secret_key = _instance_file(instance, "secret_key", lambda: secrets.token_hex(32))
    elif len(secret_key) < 32:
        raise ConfigError("SECRET_KEY", "must be at least 32 characters")

    signing_key = env.text("OAUTH_SIGNING_KEY")
    if signing_key is None and production and signs_tokens:
        raise ConfigError("OAUTH_SIGNING_KEY", "required when HEARTH_ENV=production")
    if signing_key is not None and "PRIVATE KEY-----" not in signing_key:
        raise ConfigError("OAUTH_SIGNING_KEY", "expected a PEM-encoded private key")

    access_token_alg = env.text("OAUTH_ACCESS_TOKEN_ALG", "ES256")
    if access_token_alg not in ("ES256", "RS256"):
        raise ConfigError(
            "OAUTH_ACCESS_TOKEN_ALG", f"expected ES256 or RS256, got {access_token_alg!r}"
        )
    if access_token_alg == "RS256" and signing_key is not None and not _is_rsa_pem(signing_key):
        raise ConfigError("OAUTH_ACCESS_TOKEN_ALG", "RS256 needs an RSA OAUTH_SIGNING_KEY")

    api_secure = urlsplit(api).scheme == "https"
    ratelimit_storage = env.text("RATELIMIT_STORAGE_URI", "memory://") or "memory://"
    if not re.match(r"^(memory|redis|rediss|redis\+sentinel|redis\+cluster)://", ratelimit_storage):
        raise ConfigError("RATELIMIT_STORAGE_URI", "expected memory:// or a redis:// URL")

    return {
        "HEARTH_ENV": hearth_env,
        "TESTING": hearth_env == "testing",
        "INSTANCE_DIR": str(instance),
        "DATABASE_URL": database_url,
        "SECRET_KEY": secret_key,
        "PUBLIC_API_ADDRESS": api,
        "PUBLIC_WEB_ADDRESS": web,
        "API_INTERNAL_ADDRESS": internal,
        "OAUTH_AUTHORISATION_CODE_CONSENT_URL": _url_with_query(
            "OAUTH_AUTHORISATION_CODE_CONSENT_URL",
            env.text("OAUTH_AUTHORISATION_CODE_CONSENT_URL", f"{web}/oauth/authorize/consent")
            or "",
        ),
        "OAUTH_AUTHORISATION_LOGIN_URL": _url_with_query(
            "OAUTH_AUTHORISATION_LOGIN_URL",
            env.text("OAUTH_AUTHORISATION_LOGIN_URL", f"{web}/login") or "",
        ),
        "OAUTH_ACCESS_TOKEN_TTL": env.duration("OAUTH_ACCESS_TOKEN_TTL", "15m"),
        "OAUTH_REFRESH_TOKEN_TTL": env.duration("OAUTH_REFRESH_TOKEN_TTL", "720h"),
        "OAUTH_REFRESH_TOKEN_MAX_AGE": env.duration("OAUTH_REFRESH_TOKEN_MAX_AGE", "2160h"),
        "OAUTH_PENDING_REQUEST_TTL": env.duration("OAUTH_PENDING_REQUEST_TTL", "10m"),
        "OAUTH_CODE_TTL": env.duration("OAUTH_CODE_TTL", "60s"),
        "OAUTH_SIGNING_KEY": signing_key,
        "OAUTH_ACCESS_TOKEN_ALG": access_token_alg,
        "OAUTH_DYNAMIC_REGISTRATION_ENABLED": env.bool("OAUTH_DYNAMIC_REGISTRATION_ENABLED", False),
        "SESSION_COOKIE_SECURE": env.bool("SESSION_COOKIE_SECURE", api_secure),
        "SESSION_COOKIE_DOMAIN": env.text("SESSION_COOKIE_DOMAIN"),
        "SESSION_TTL": timedelta(days=90),
        **federation_settings(env.environ, web),
        "RATELIMIT_ENABLED": env.bool("RATELIMIT_ENABLED", True),
        "RATELIMIT_STORAGE_URI": ratelimit_storage,
        "TRUSTED_PROXY_COUNT": _count("TRUSTED_PROXY_COUNT", env.text("TRUSTED_PROXY_COUNT", "0")),
        "LOG_LEVEL": (env.text("LOG_LEVEL", "INFO") or "INFO").upper(),
        # argon2id cost (RFC 9106 second recommended option); tests lower it.
        "PASSWORD_HASH_TIME_COST": 3,
        "PASSWORD_HASH_MEMORY_KIB": 65536,
        "PASSWORD_HASH_PARALLELISM": 4,
    }


def _is_rsa_pem(pem: str) -> bool:
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return True  # an unreadable key is reported when the API loads it (wsgi.api)
    return isinstance(key, rsa.RSAPrivateKey)


def _count(variable: str, value: str | None) -> int:
    if value is None or not value.isdigit() or int(value) > 10:
        raise ConfigError(variable, f"expected a whole number from 0 to 10, got {value!r}")
    return int(value)


def _url_with_query(variable: str, value: str) -> str:
    """Validate an absolute URL that may keep its own query string."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
        raise ConfigError(
            variable, f"expected an absolute http(s) URL without fragment, got {value!r}"
        )
    return value


# --- Upstream sign-in (SPEC §6) ------------------------------------------------------------------

GITHUB_AUTHORIZE_URL = "https://github.com/login/oauth/authorize"
GITHUB_TOKEN_URL = "https://github.com/login/oauth/access_token"
GITHUB_API_URL = "https://api.github.com"
GOOGLE_ISSUER = "https://accounts.google.com"
APPLE_ISSUER = "https://appleid.apple.com"
MICROSOFT_ISSUER = "https://login.microsoftonline.com/{tenant}/v2.0"
BUILT_IN_PROVIDERS = ("github", "google", "apple", "microsoft")
DISCOVERY_SUFFIX = "/.well-known/openid-configuration"
_PROVIDER_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.-]{0,99}$")


@dataclass(frozen=True)
class UpstreamProvider:
    """One upstream identity provider Hearth signs people in with."""

    name: str  # the `{provider}` path segment
    kind: str  # github, google, apple, microsoft or oidc
    display_name: str
    client_id: str
    scopes: tuple[str, ...]
    client_secret: str | None = None
    issuer: str | None = None  # OIDC: the discovery base, compared with the discovered issuer
    authorize_url: str | None = None  # GitHub only (no discovery)
    token_url: str | None = None
    api_url: str | None = None
    tenant: str | None = None  # Microsoft
    team_id: str | None = None  # Apple: the client secret is an ES256 JWT built from these
    key_id: str | None = None
    private_key: str | None = None


def upstream_url(variable: str, value: str) -> str:
    """Validate an upstream URL: https, or http only on a loopback host (local fakes)."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(variable, f"expected an absolute https URL, got {value!r}")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ConfigError(variable, "http is accepted only for loopback hosts; use https")
    if parts.fragment or parts.username is not None or parts.password is not None:
        raise ConfigError(variable, "must not carry a fragment or credentials")
    return value


def _issuer(variable: str, value: str) -> str:
    """An issuer, also accepted as its discovery URL."""
    value = upstream_url(variable, value.removesuffix(DISCOVERY_SUFFIX))
    if urlsplit(value).query:
        raise ConfigError(variable, "an issuer has no query string")
    return value


def _required_group(env: _Env, prefix: str, names: tuple[str, ...]) -> dict[str, str] | None:
    """All of `names` set (enabled), none set (disabled), or a ConfigError for the first missing."""
    values = {name: env.text(f"{prefix}{name}") for name in names}
    if all(value is None for value in values.values()):
        return None
    for name, value in values.items():
        if value is None:
            raise ConfigError(f"{prefix}{name}", "required when the provider is configured")
    return {name: value for name, value in values.items() if value is not None}


def _apple_private_key(variable: str, value: str) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    pem = value.replace("\\n", "\n")
    try:
        key = load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        raise ConfigError(variable, "expected the PEM private key (.p8) Apple issued") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise ConfigError(variable, "expected a P-256 (ES256) private key")
    return pem


def federation_settings(environ: Mapping[str, str], web: str) -> dict[str, Any]:
    """Upstream providers, the SPA redirect URIs and the email-merge switch."""
    env = _Env(environ)
    providers: dict[str, UpstreamProvider] = {}

    prefix = "OAUTH_PROVIDER_GITHUB_"
    if (found := _required_group(env, prefix, ("CLIENT_ID", "CLIENT_SECRET"))) is not None:
        providers["github"] = UpstreamProvider(
            name="github",
            kind="github",
            display_name="GitHub",
            client_id=found["CLIENT_ID"],
            client_secret=found["CLIENT_SECRET"],
            scopes=("read:user", "user:email"),
            authorize_url=upstream_url(
                f"{prefix}AUTHORIZE_URL",
                env.text(f"{prefix}AUTHORIZE_URL", GITHUB_AUTHORIZE_URL) or "",
            ),
            token_url=upstream_url(
                f"{prefix}TOKEN_URL", env.text(f"{prefix}TOKEN_URL", GITHUB_TOKEN_URL) or ""
            ),
            api_url=upstream_url(
                f"{prefix}API_URL", env.text(f"{prefix}API_URL", GITHUB_API_URL) or ""
            ).rstrip("/"),
        )

    prefix = "OAUTH_PROVIDER_GOOGLE_"
    if (found := _required_group(env, prefix, ("CLIENT_ID", "CLIENT_SECRET"))) is not None:
        providers["google"] = UpstreamProvider(
            name="google",
            kind="google",
            display_name="Google",
            client_id=found["CLIENT_ID"],
            client_secret=found["CLIENT_SECRET"],
            scopes=("openid", "email", "profile"),
            issuer=_issuer(f"{prefix}ISSUER", env.text(f"{prefix}ISSUER", GOOGLE_ISSUER) or ""),
        )

    prefix = "OAUTH_PROVIDER_APPLE_"
    if (
        found := _required_group(env, prefix, ("CLIENT_ID", "TEAM_ID", "KEY_ID", "PRIVATE_KEY"))
    ) is not None:
        providers["apple"] = UpstreamProvider(
            name="apple",
            kind="apple",
            display_name="Apple",
            client_id=found["CLIENT_ID"],
            scopes=("openid", "name", "email"),
            issuer=_issuer(f"{prefix}ISSUER", env.text(f"{prefix}ISSUER", APPLE_ISSUER) or ""),
            team_id=found["TEAM_ID"],
            key_id=found["KEY_ID"],
            private_key=_apple_private_key(f"{prefix}PRIVATE_KEY", found["PRIVATE_KEY"]),
        )

    prefix = "OAUTH_PROVIDER_MICROSOFT_"
    if (found := _required_group(env, prefix, ("CLIENT_ID", "CLIENT_SECRET"))) is not None:
        tenant = env.text(f"{prefix}TENANT", "common") or "common"
        if not _TENANT.match(tenant):
            raise ConfigError(f"{prefix}TENANT", "expected a tenant id, domain or common")
        providers["microsoft"] = UpstreamProvider(
            name="microsoft",
            kind="microsoft",
            display_name="Microsoft",
            client_id=found["CLIENT_ID"],
            client_secret=found["CLIENT_SECRET"],
            scopes=("openid", "email", "profile"),
            issuer=_issuer(
                f"{prefix}ISSUER",
                env.text(f"{prefix}ISSUER", MICROSOFT_ISSUER.format(tenant=tenant)) or "",
            ),
            tenant=tenant,
        )

    for raw in (env.text("OIDC_PROVIDERS", "") or "").split(","):
        name = raw.strip().lower()
        if not name:
            continue
        if not _PROVIDER_NAME.match(name):
            raise ConfigError(
                "OIDC_PROVIDERS", f"{raw.strip()!r}: names are lowercase letters, digits and '-'"
            )
        if name in BUILT_IN_PROVIDERS or name in providers:
            raise ConfigError("OIDC_PROVIDERS", f"{name!r} is already a provider name")
        prefix = f"OIDC_PROVIDER_{name.upper().replace('-', '_')}_"
        issuer, client_id = env.text(f"{prefix}ISSUER"), env.text(f"{prefix}CLIENT_ID")
        if issuer is None:
            raise ConfigError(f"{prefix}ISSUER", f"required because OIDC_PROVIDERS names {name}")
        if client_id is None:
            raise ConfigError(f"{prefix}CLIENT_ID", f"required because OIDC_PROVIDERS names {name}")
        providers[name] = UpstreamProvider(
            name=name,
            kind="oidc",
            display_name=env.text(f"{prefix}DISPLAY_NAME", name) or name,
            client_id=client_id,
            # Without a secret Hearth is a public client of that issuer (PKCE only).
            client_secret=env.text(f"{prefix}CLIENT_SECRET"),
            scopes=("openid", "profile", "email"),
            issuer=_issuer(f"{prefix}ISSUER", issuer),
        )

    spa_redirect_uris = []
    for uri in (env.text("OAUTH_SPA_REDIRECT_URIS", f"{web}/auth/oauth/callback") or "").split(","):
        uri = uri.strip()
        if not uri:
            continue
        parts = urlsplit(uri)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.fragment:
            raise ConfigError(
                "OAUTH_SPA_REDIRECT_URIS", f"expected absolute http(s) URLs, got {uri!r}"
            )
        spa_redirect_uris.append(uri)

    return {
        "OAUTH_PROVIDERS": providers,
        "OAUTH_SPA_REDIRECT_URIS": spa_redirect_uris,
        # Sign an upstream identity into an existing account only when both sides vouch for
        # the email address; off by default (pre-account-takeover).
        "OAUTH_PROVIDER_MERGE_VERIFIED_EMAIL": env.bool(
            "OAUTH_PROVIDER_MERGE_VERIFIED_EMAIL", False
        ),
    }
