"""Microsoft identity platform: per-tenant issuers behind the multi-tenant discovery document.

oidc-provider-mock plays Microsoft: an extra route serves `/{tenant}/v2.0` discovery documents
(`{tenantid}` in the issuer for common/organizations/consumers, as Microsoft does), and each ID
token is re-issued with `iss` naming the tenant in its `tid` claim.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, Response, jsonify, request
from joserfc.jwk import RSAKey

from tests.federation.conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    Browser,
    Hearth,
    HearthFactory,
    MockIssuer,
    resign,
)

CONTOSO = "72f988bf-86f1-41af-91ab-2d7cd011db47"
FABRIKAM = "3c4a1b6e-0d5e-4a51-9c2f-6a3b8d2e7f10"
CONSUMERS = "9188040d-6c67-4c5b-b112-36a304b66dad"
MULTI_TENANT = ("common", "organizations", "consumers")


def microsoft_discovery(app: Flask) -> None:
    @app.get("/<tenant>/v2.0/.well-known/openid-configuration")
    def discovery(tenant: str) -> Response:
        base = request.host_url.rstrip("/")
        issuer_tenant = "{tenantid}" if tenant in MULTI_TENANT else tenant
        return jsonify(
            {
                "issuer": f"{base}/{issuer_tenant}/v2.0",
                "authorization_endpoint": f"{base}/oauth2/authorize",
                "token_endpoint": f"{base}/oauth2/token",
                "jwks_uri": f"{base}/jwks",
                "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_post",
                    "client_secret_basic",
                ],
            }
        )


@pytest.fixture
def microsoft(mock_issuer: Callable[..., MockIssuer]) -> MockIssuer:
    issuer = mock_issuer(microsoft_discovery)

    def per_tenant_issuer(token: str, key: RSAKey) -> str:
        from joserfc import jwt

        tid = jwt.decode(token, key).claims["tid"]
        return resign(token, key, iss=f"{issuer.url}/{tid}/v2.0")

    issuer.tamper = per_tenant_issuer
    return issuer


def microsoft_hearth(factory: HearthFactory, microsoft: MockIssuer, tenant: str) -> Hearth:
    return factory(
        {
            "OAUTH_PROVIDER_MICROSOFT_CLIENT_ID": CLIENT_ID,
            "OAUTH_PROVIDER_MICROSOFT_CLIENT_SECRET": CLIENT_SECRET,
            "OAUTH_PROVIDER_MICROSOFT_TENANT": tenant,
            "OAUTH_PROVIDER_MICROSOFT_ISSUER": f"{microsoft.url}/{tenant}/v2.0",
        }
    )


def sign_in(hearth: Hearth, microsoft: MockIssuer, sub: str, **claims: Any) -> tuple[Browser, str]:
    """Sign in as `sub`; return the browser and where the callback sent it."""
    microsoft.user(sub, **claims)
    browser = Browser()
    started = hearth.start(browser, "microsoft", return_url="/home")
    response = browser.get(microsoft.approve(browser, started["url"], sub))
    return browser, response.headers["Location"]


def assert_refused(hearth: Hearth, browser: Browser, location: str) -> None:
    assert location == f"{hearth.web}/home?error=invalid_id_token"
    assert hearth.me(browser).status_code == 401


def test_common_tenant_accepts_each_tenants_own_issuer(
    hearth_factory: HearthFactory, microsoft: MockIssuer
) -> None:
    hearth = microsoft_hearth(hearth_factory, microsoft, "common")

    contoso, _ = sign_in(
        hearth, microsoft, "ms-1", tid=CONTOSO, preferred_username="amy@contoso.com"
    )
    personal, _ = sign_in(
        hearth, microsoft, "ms-2", tid=CONSUMERS, preferred_username="bob@live.com"
    )

    assert hearth.me(contoso).json()["handle"] == "amy"
    assert hearth.me(personal).json()["handle"] == "bob"


def test_microsoft_email_never_counts_as_verified(
    hearth_factory: HearthFactory, microsoft: MockIssuer
) -> None:
    hearth = microsoft_hearth(hearth_factory, microsoft, "common")

    browser, _ = sign_in(
        hearth, microsoft, "ms-3", tid=CONTOSO, email="ceo@example.org", email_verified=True
    )

    me = hearth.me(browser).json()
    assert me["handle"] == "ceo"
    assert me["email"] is None


def test_token_whose_issuer_names_another_tenant_than_its_tid_is_refused(
    hearth_factory: HearthFactory, microsoft: MockIssuer
) -> None:
    hearth = microsoft_hearth(hearth_factory, microsoft, "common")
    microsoft.tamper = lambda token, key: resign(token, key, iss=f"{microsoft.url}/{FABRIKAM}/v2.0")

    browser, location = sign_in(hearth, microsoft, "ms-4", tid=CONTOSO)

    assert_refused(hearth, browser, location)


def test_token_without_a_tenant_is_refused(
    hearth_factory: HearthFactory, microsoft: MockIssuer
) -> None:
    hearth = microsoft_hearth(hearth_factory, microsoft, "common")
    microsoft.tamper = lambda token, key: resign(
        token, key, iss=f"{microsoft.url}/{{tenantid}}/v2.0"
    )

    browser, location = sign_in(hearth, microsoft, "ms-5")

    assert_refused(hearth, browser, location)


@pytest.mark.parametrize(
    ("tenant", "tid", "allowed"),
    [
        ("organizations", CONTOSO, True),
        ("organizations", CONSUMERS, False),
        ("consumers", CONSUMERS, True),
        ("consumers", CONTOSO, False),
        (CONTOSO, CONTOSO, True),
        (CONTOSO, FABRIKAM, False),
    ],
)
def test_tenant_setting_limits_who_may_sign_in(
    hearth_factory: HearthFactory, microsoft: MockIssuer, tenant: str, tid: str, allowed: bool
) -> None:
    hearth = microsoft_hearth(hearth_factory, microsoft, tenant)

    browser, location = sign_in(hearth, microsoft, f"ms-{tid}", tid=tid)

    if allowed:
        assert hearth.me(browser).status_code == 200
    else:
        assert_refused(hearth, browser, location)
