"""Upstream identity providers: GitHub's OAuth 2 and REST API, and OpenID Connect issuers.

Each provider builds its authorization URL and turns a callback's code into a verified `Profile`.
Discovery documents and key sets are cached per app; anything that goes wrong on the network
becomes `ProviderUnavailable`, anything the provider says that does not verify becomes
`LoginFailed` — never an unhandled exception.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import requests
from authlib.integrations.requests_client import OAuth2Session, OAuthError
from flask import Flask
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import ECKey, KeySet

import config as config_module
from app.auth import sha256
from app.federation.errors import LoginFailed, ProviderUnavailable
from app.oauth.authorize import with_params

log = logging.getLogger("hearth.federation")

# (connect, read): a provider that does not answer must not hold a worker for long.
HTTP_TIMEOUT_SECONDS = (5.0, 10.0)
METADATA_TTL_SECONDS = 3600.0
# An unknown `kid` refetches the key set (rotation), at most once a minute per provider.
JWKS_REFETCH_SECONDS = 60.0
CLOCK_LEEWAY_SECONDS = 60
APPLE_CLIENT_SECRET_SECONDS = 300
# Never HS* (the "secret" would be our client secret) and never "none".
ASYMMETRIC_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
)
GITHUB_API_VERSION = "2022-11-28"
MICROSOFT_TENANT_PLACEHOLDER = "{tenantid}"
MICROSOFT_CONSUMERS_TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
TENANT_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass(frozen=True)
class Profile:
    """Who the provider says signed in; `subject` is stable, everything else may change."""

    subject: str
    email: str | None = None
    email_verified: bool = False
    username: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class Callback:
    """A provider's answer, already matched to its login state."""

    code: str
    redirect_uri: str
    code_verifier: str
    nonce_hash: str
    issuer: str | None = None  # RFC 9207 `iss` authorization response parameter
    extra: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Metadata:
    """The parts of an OpenID Provider's discovery document Hearth relies on."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    algorithms: tuple[str, ...]
    token_auth_methods: tuple[str, ...]
    iss_parameter_supported: bool


class Cache:
    """Discovery documents and key sets, shared by the app's threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, Any]] = {}
        self._refetched: dict[str, float] = {}

    def get(self, key: str, load: Callable[[], Any], ttl: float = METADATA_TTL_SECONDS) -> Any:
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        value = load()
        with self._lock:
            self._entries[key] = (now + ttl, value)
        return value

    def may_refetch(self, key: str) -> bool:
        """Allow one forced reload of `key` per JWKS_REFETCH_SECONDS; forget the cached value."""
        now = time.monotonic()
        with self._lock:
            if now - self._refetched.get(key, float("-inf")) < JWKS_REFETCH_SECONDS:
                return False
            self._refetched[key] = now
            self._entries.pop(key, None)
            return True


def fetch_json(
    url: str, headers: Mapping[str, str] | None = None, *, missing_ok: bool = False
) -> Any:
    """GET a JSON document from a provider; 404/403 give None when `missing_ok`."""
    try:
        with requests.Session() as http:
            response = http.get(
                url,
                headers={"Accept": "application/json", **(headers or {})},
                timeout=HTTP_TIMEOUT_SECONDS,
                allow_redirects=False,
            )
    except requests.RequestException as error:
        log.warning("upstream request failed", extra={"url": url, "problem": type(error).__name__})
        raise ProviderUnavailable() from None
    if missing_ok and response.status_code in (403, 404):
        return None
    if response.status_code != 200:
        log.warning(
            "upstream answered", extra={"url": url, "upstream_status": response.status_code}
        )
        raise ProviderUnavailable(f"The sign-in provider answered HTTP {response.status_code}.")
    try:
        return response.json()
    except ValueError:
        raise ProviderUnavailable("The sign-in provider did not answer with JSON.") from None


def _endpoint(provider: str, name: str, value: object) -> str:
    """A URL from a discovery document, held to the same rule as configured ones."""
    if not isinstance(value, str):
        raise ProviderUnavailable(f"The {provider} discovery document has no {name}.")
    try:
        return config_module.upstream_url(name, value)
    except config_module.ConfigError as error:
        log.warning(
            "unsafe discovered endpoint", extra={"provider": provider, "problem": str(error)}
        )
        raise ProviderUnavailable(f"The {provider} discovery document is unsafe: {name}.") from None


def _strings(value: object) -> tuple[str, ...]:
    if isinstance(value, list):
        return tuple(item for item in value if isinstance(item, str))
    return ()


def _bool_claim(value: object) -> bool:
    # Apple sends "true"/"false" strings where the OIDC spec says boolean.
    return value is True or value == "true"


def _text_claim(claims: Mapping[str, Any], name: str, limit: int = 254) -> str | None:
    value = claims.get(name)
    if isinstance(value, str) and value.strip() and len(value) <= limit:
        return value.strip()
    return None


def _half_hash(value: str, algorithm: str) -> str:
    """OIDC Core §3.1.3.6 `at_hash`: left half of the hash that matches the JWS algorithm."""
    digest = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}[algorithm[-3:]]
    full = digest(value.encode("ascii")).digest()
    return base64.urlsafe_b64encode(full[: len(full) // 2]).rstrip(b"=").decode()


class Provider:
    """One configured upstream provider."""

    kind: ClassVar[str]
    response_mode: ClassVar[str | None] = None
    token_auth_method: ClassVar[str | None] = None  # None: chosen from discovery

    def __init__(self, settings: config_module.UpstreamProvider, cache: Cache) -> None:
        self.settings = settings
        self.cache = cache

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def display_name(self) -> str:
        return self.settings.display_name

    def authorization_url(
        self, *, redirect_uri: str, state: str, nonce: str, code_challenge: str
    ) -> str:
        raise NotImplementedError

    def complete(self, callback: Callback) -> Profile:
        raise NotImplementedError

    def client_secret(self) -> str | None:
        return self.settings.client_secret

    def _auth_method(self, supported: tuple[str, ...]) -> str:
        if self.token_auth_method is not None:
            return self.token_auth_method
        if self.client_secret() is None:
            return "none"
        # RFC 8414 §2: an absent list means client_secret_basic.
        if not supported or "client_secret_basic" in supported:
            return "client_secret_basic"
        return "client_secret_post"

    def exchange(
        self, token_endpoint: str, callback: Callback, supported: tuple[str, ...] = ()
    ) -> dict[str, Any]:
        """Redeem the code with its PKCE verifier (RFC 6749 §4.1.3, RFC 7636 §4.5)."""
        session = OAuth2Session(
            client_id=self.settings.client_id,
            client_secret=self.client_secret(),
            token_endpoint_auth_method=self._auth_method(supported),
            default_timeout=HTTP_TIMEOUT_SECONDS,
        )
        try:
            with session:
                token = session.fetch_token(
                    token_endpoint,
                    grant_type="authorization_code",
                    code=callback.code,
                    redirect_uri=callback.redirect_uri,
                    code_verifier=callback.code_verifier,
                    allow_redirects=False,
                )
        except OAuthError as error:
            log.warning(
                "code exchange refused",
                extra={"provider": self.name, "upstream_error": error.error},
            )
            raise LoginFailed(
                "provider_error", "The sign-in provider did not accept the sign-in."
            ) from None
        except requests.RequestException as error:
            log.warning(
                "code exchange failed",
                extra={"provider": self.name, "problem": type(error).__name__},
            )
            raise ProviderUnavailable() from None
        except ValueError:
            raise ProviderUnavailable("The sign-in provider did not answer with JSON.") from None
        access_token = token.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise LoginFailed("provider_error", "The sign-in provider returned no access token.")
        return dict(token)


class GitHub(Provider):
    """OAuth 2 without OpenID Connect: the profile comes from the REST API."""

    kind = "github"
    token_auth_method = "client_secret_post"

    def authorization_url(
        self, *, redirect_uri: str, state: str, nonce: str, code_challenge: str
    ) -> str:
        # GitHub has no ID token, so no nonce; PKCE and state still bind the code to us.
        assert self.settings.authorize_url is not None
        return with_params(
            self.settings.authorize_url,
            {
                "client_id": self.settings.client_id,
                "redirect_uri": redirect_uri,
                "scope": " ".join(self.settings.scopes),
                "state": state,
                "code_challenge": code_challenge,
                "code_challenge_method": "S256",
                "allow_signup": "true",
            },
        )

    def complete(self, callback: Callback) -> Profile:
        # GitHub has no issuer identifier (no RFC 9207); mix-up is prevented by the
        # per-provider callback URL and by each login state naming its provider.
        assert self.settings.token_url is not None and self.settings.api_url is not None
        token = self.exchange(self.settings.token_url, callback)
        headers = {
            "Authorization": f"Bearer {token['access_token']}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": GITHUB_API_VERSION,
        }
        user = fetch_json(f"{self.settings.api_url}/user", headers)
        if not isinstance(user, dict) or not isinstance(user.get("id"), int):
            raise LoginFailed("provider_error", "GitHub returned no user id.")
        # Only the primary address GitHub has verified counts; `/user`'s public email does not.
        emails = fetch_json(f"{self.settings.api_url}/user/emails", headers, missing_ok=True)
        email = None
        for entry in emails if isinstance(emails, list) else []:
            if isinstance(entry, dict) and entry.get("primary") is True:
                if entry.get("verified") is True and isinstance(entry.get("email"), str):
                    email = entry["email"]
                break
        return Profile(
            # The numeric id: logins can be renamed and then claimed by someone else.
            subject=str(user["id"]),
            email=email,
            email_verified=email is not None,
            username=_text_claim(user, "login", 100),
            name=_text_claim(user, "name", 100),
        )


class OpenIDConnect(Provider):
    """An OpenID Connect issuer found by discovery (Google and named generic issuers)."""

    kind = "oidc"
    use_userinfo: ClassVar[bool] = True

    @property
    def issuer(self) -> str:
        assert self.settings.issuer is not None
        return self.settings.issuer

    def discovered_issuer_ok(self, discovered: str) -> bool:
        # OIDC Discovery §4.3: the document's issuer is the one we asked (trailing "/" aside).
        return discovered.rstrip("/") == self.issuer.rstrip("/")

    def metadata(self) -> Metadata:
        return self.cache.get(f"metadata:{self.name}:{self.issuer}", self._load_metadata)

    def _load_metadata(self) -> Metadata:
        document = fetch_json(self.issuer.rstrip("/") + config_module.DISCOVERY_SUFFIX)
        if not isinstance(document, dict):
            raise ProviderUnavailable(f"The {self.name} discovery document is not an object.")
        discovered = document.get("issuer")
        if not isinstance(discovered, str) or not self.discovered_issuer_ok(discovered):
            log.warning(
                "discovery issuer mismatch",
                extra={"provider": self.name, "expected": self.issuer, "discovered": discovered},
            )
            raise ProviderUnavailable(f"The {self.name} discovery document names another issuer.")
        userinfo = document.get("userinfo_endpoint")
        offered = _strings(document.get("id_token_signing_alg_values_supported")) or ("RS256",)
        algorithms = tuple(alg for alg in offered if alg in ASYMMETRIC_ALGORITHMS)
        if not algorithms:
            raise ProviderUnavailable(
                f"{self.name} signs ID tokens with no algorithm Hearth trusts."
            )
        return Metadata(
            issuer=discovered,
            authorization_endpoint=_endpoint(
                self.name, "authorization_endpoint", document.get("authorization_endpoint")
            ),
            token_endpoint=_endpoint(self.name, "token_endpoint", document.get("token_endpoint")),
            jwks_uri=_endpoint(self.name, "jwks_uri", document.get("jwks_uri")),
            userinfo_endpoint=(
                _endpoint(self.name, "userinfo_endpoint", userinfo) if userinfo else None
            ),
            algorithms=algorithms,
            token_auth_methods=_strings(document.get("token_endpoint_auth_methods_supported")),
            iss_parameter_supported=document.get("authorization_response_iss_parameter_supported")
            is True,
        )

    def key_set(self, jwks_uri: str) -> KeySet:
        def load() -> KeySet:
            document = fetch_json(jwks_uri)
            try:
                return KeySet.import_key_set(document)
            except (JoseError, ValueError, TypeError, KeyError):
                raise ProviderUnavailable(f"The {self.name} key set is malformed.") from None

        return self.cache.get(f"jwks:{jwks_uri}", load)

    def authorization_url(
        self, *, redirect_uri: str, state: str, nonce: str, code_challenge: str
    ) -> str:
        return with_params(
            self.metadata().authorization_endpoint,
            {
                "response_type": "code",
                "client_id": self.settings.client_id,
                "redirect_uri": redirect_uri,
                "scope": " ".join(self.settings.scopes),
                "state": state,
                "nonce": nonce,
                "code_challenge": code_challenge,
                "code_challenge_method": "S256",
                "response_mode": self.response_mode,
            },
        )

    def issuer_matches(self, metadata: Metadata, value: str, claims: Mapping[str, Any]) -> bool:
        return hmac.compare_digest(value.encode(), metadata.issuer.encode())

    def check_issuer_parameter(self, metadata: Metadata, value: str | None) -> None:
        """RFC 9207 §2.4: reject a response from another issuer (mix-up attack)."""
        if value is None:
            if metadata.iss_parameter_supported:
                raise LoginFailed("invalid_issuer", "The sign-in response did not name its issuer.")
            return
        if not self.issuer_matches(metadata, value, {}):
            raise LoginFailed("invalid_issuer", "The sign-in response came from another issuer.")

    def complete(self, callback: Callback) -> Profile:
        metadata = self.metadata()
        self.check_issuer_parameter(metadata, callback.issuer)
        token = self.exchange(metadata.token_endpoint, callback, metadata.token_auth_methods)
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise LoginFailed("invalid_id_token", "The provider returned no ID token.")
        claims = self.verify_id_token(
            metadata, id_token, callback.nonce_hash, token["access_token"]
        )
        if self.use_userinfo and metadata.userinfo_endpoint:
            info = fetch_json(
                metadata.userinfo_endpoint, {"Authorization": f"Bearer {token['access_token']}"}
            )
            # OIDC Core §5.3.2: userinfo about anyone but the ID token's subject is ignored.
            if isinstance(info, dict) and info.get("sub") == claims["sub"]:
                claims = {**info, **claims}
        return self.profile(claims, callback)

    def verify_id_token(
        self, metadata: Metadata, value: str, nonce_hash: str, access_token: str
    ) -> dict[str, Any]:
        """OIDC Core §3.1.3.7: signature, iss, aud, azp, exp, iat, nonce (and at_hash if sent)."""
        try:
            try:
                decoded = jwt.decode(value, self.key_set(metadata.jwks_uri), metadata.algorithms)
            except InvalidKeyIdError:
                if not self.cache.may_refetch(f"jwks:{metadata.jwks_uri}"):
                    raise
                decoded = jwt.decode(value, self.key_set(metadata.jwks_uri), metadata.algorithms)
            claims = dict(decoded.claims)
            jwt.JWTClaimsRegistry(
                leeway=CLOCK_LEEWAY_SECONDS,
                sub={"essential": True},
                exp={"essential": True},
                iat={"essential": True},
            ).validate(claims)
        except (JoseError, ValueError, TypeError, KeyError) as error:
            raise self._invalid(f"did not verify ({type(error).__name__})") from None
        issuer = claims.get("iss")
        if not isinstance(issuer, str) or not self.issuer_matches(metadata, issuer, claims):
            raise self._invalid("was issued by someone else")
        audience = claims.get("aud")
        audiences = [audience] if isinstance(audience, str) else _strings(audience)
        if self.settings.client_id not in audiences:
            raise self._invalid("was issued to another client")
        if (len(audiences) > 1 or "azp" in claims) and claims.get("azp") != self.settings.client_id:
            raise self._invalid("was issued to another authorized party")
        nonce = claims.get("nonce")
        if not isinstance(nonce, str) or not hmac.compare_digest(sha256(nonce), nonce_hash):
            raise self._invalid("does not carry this sign-in's nonce")
        at_hash = claims.get("at_hash")
        algorithm = decoded.header.get("alg", "")
        if at_hash is not None and not hmac.compare_digest(
            str(at_hash), _half_hash(access_token, algorithm)
        ):
            raise self._invalid("does not match its access token")
        if not isinstance(claims["sub"], str) or not 0 < len(claims["sub"]) <= 255:
            raise self._invalid("has an unusable subject")
        return claims

    def _invalid(self, why: str) -> LoginFailed:
        log.warning("ID token rejected", extra={"provider": self.name, "problem": why})
        return LoginFailed("invalid_id_token", f"The ID token {why}.")

    def profile(self, claims: Mapping[str, Any], callback: Callback) -> Profile:
        return Profile(
            subject=claims["sub"],
            email=_text_claim(claims, "email"),
            email_verified=_bool_claim(claims.get("email_verified")),
            username=_text_claim(claims, "preferred_username", 100)
            or _text_claim(claims, "nickname", 100),
            name=_text_claim(claims, "name", 100),
        )


class Google(OpenIDConnect):
    kind = "google"

    def issuer_matches(self, metadata: Metadata, value: str, claims: Mapping[str, Any]) -> bool:
        # Google documents both spellings of its issuer in ID tokens.
        if metadata.issuer == config_module.GOOGLE_ISSUER and value == "accounts.google.com":
            return True
        return super().issuer_matches(metadata, value, claims)


class Microsoft(OpenIDConnect):
    """Microsoft identity platform v2.0, single- or multi-tenant."""

    kind = "microsoft"
    # Graph's userinfo adds nothing the ID token lacks.
    use_userinfo = False

    def discovered_issuer_ok(self, discovered: str) -> bool:
        # The common/organizations/consumers documents name `…/{tenantid}/v2.0`: the issuer is
        # per tenant and known only from each token's `tid`.
        tenant = f"/{self.settings.tenant}/"
        templated = self.issuer.replace(tenant, f"/{MICROSOFT_TENANT_PLACEHOLDER}/", 1)
        return super().discovered_issuer_ok(discovered) or (
            MICROSOFT_TENANT_PLACEHOLDER in discovered and discovered.rstrip("/") == templated
        )

    def issuer_matches(self, metadata: Metadata, value: str, claims: Mapping[str, Any]) -> bool:
        if MICROSOFT_TENANT_PLACEHOLDER not in metadata.issuer:
            return super().issuer_matches(metadata, value, claims)
        tenant = claims.get("tid") if claims else self._tenant_in(metadata, value)
        if not isinstance(tenant, str) or not TENANT_ID.match(tenant):
            return False
        if not self._tenant_allowed(tenant):
            return False
        expected = metadata.issuer.replace(MICROSOFT_TENANT_PLACEHOLDER, tenant)
        return hmac.compare_digest(value.encode(), expected.encode())

    def _tenant_in(self, metadata: Metadata, value: str) -> str | None:
        before, _, after = metadata.issuer.partition(MICROSOFT_TENANT_PLACEHOLDER)
        if value.startswith(before) and value.endswith(after):
            return value[len(before) : len(value) - len(after)]
        return None

    def _tenant_allowed(self, tenant: str) -> bool:
        configured = (self.settings.tenant or "common").lower()
        if configured == "consumers":
            return tenant == MICROSOFT_CONSUMERS_TENANT
        if configured == "organizations":
            return tenant != MICROSOFT_CONSUMERS_TENANT
        if configured == "common":
            return True
        return tenant == configured

    def profile(self, claims: Mapping[str, Any], callback: Callback) -> Profile:
        profile = super().profile(claims, callback)
        # Microsoft's `email` claim is whatever the tenant admin typed and is never verified
        # ("nOAuth"): it must not count as proof of ownership.
        return Profile(
            subject=profile.subject,
            email=profile.email,
            email_verified=False,
            username=profile.username,
            name=profile.name,
        )


class Apple(OpenIDConnect):
    """Sign in with Apple: form_post responses and an ES256-signed client secret."""

    kind = "apple"
    response_mode = "form_post"
    token_auth_method = "client_secret_post"
    use_userinfo = False

    def client_secret(self) -> str:
        """A short-lived ES256 JWT Apple accepts as the client secret (≤ 6 months by Apple's rule)."""
        settings = self.settings
        assert settings.private_key and settings.key_id and settings.team_id
        now = int(time.time())
        return jwt.encode(
            {"alg": "ES256", "kid": settings.key_id},
            {
                "iss": settings.team_id,
                "iat": now,
                "exp": now + APPLE_CLIENT_SECRET_SECONDS,
                "aud": self.issuer,
                "sub": settings.client_id,
            },
            ECKey.import_key(settings.private_key),
            algorithms=["ES256"],
        )

    def profile(self, claims: Mapping[str, Any], callback: Callback) -> Profile:
        profile = super().profile(claims, callback)
        # Apple sends the name once, outside the ID token, in the unsigned `user` form field:
        # good enough for a display name, never for an email address.
        name = None
        try:
            user = json.loads(callback.extra.get("user") or "{}")
            parts = user.get("name", {}) if isinstance(user, dict) else {}
            if isinstance(parts, dict):
                given, family = parts.get("firstName"), parts.get("lastName")
                words = [word for word in (given, family) if isinstance(word, str) and word]
                name = " ".join(words)[:100] or None
        except ValueError:
            pass
        return Profile(
            subject=profile.subject,
            email=profile.email,
            email_verified=profile.email_verified,
            username=None,
            name=name,
        )


KINDS: dict[str, type[Provider]] = {
    "github": GitHub,
    "google": Google,
    "apple": Apple,
    "microsoft": Microsoft,
    "oidc": OpenIDConnect,
}


class Registry:
    """The app's enabled providers, in configuration order."""

    def __init__(self, settings: Mapping[str, config_module.UpstreamProvider]) -> None:
        cache = Cache()
        self._providers = {name: KINDS[s.kind](s, cache) for name, s in settings.items()}

    def get(self, name: str) -> Provider | None:
        return self._providers.get(name)

    def __iter__(self) -> Iterator[Provider]:
        return iter(self._providers.values())


def registry(app: Flask) -> Registry:
    found: Registry | None = app.extensions.get("hearth_federation")
    if found is None:
        found = app.extensions["hearth_federation"] = Registry(app.config["OAUTH_PROVIDERS"])
    return found
