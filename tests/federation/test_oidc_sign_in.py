"""Signing in with an OpenID Connect provider (Google, played by oidc-provider-mock)."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from sqlalchemy import select, update

from app.extensions import db
from app.models import Account, FederatedIdentity, LoginState
from tests.conftest import PASSWORD
from tests.federation.conftest import (
    CLIENT_ID,
    Browser,
    Hearth,
    HearthFactory,
    MockIssuer,
    google_env,
    query,
    sign_in_with_google,
)


def test_providers_lists_the_enabled_providers_in_order(
    hearth_factory: HearthFactory, google: MockIssuer
) -> None:
    hearth = hearth_factory(
        google_env(
            google,
            OIDC_PROVIDERS="hearth-demo",
            OIDC_PROVIDER_HEARTH_DEMO_ISSUER=google.url,
            OIDC_PROVIDER_HEARTH_DEMO_CLIENT_ID="x",
            OIDC_PROVIDER_HEARTH_DEMO_DISPLAY_NAME="Hearth Demo",
        )
    )

    response = Browser().get(f"{hearth.url}/api/auth/oauth/providers")

    assert response.status_code == 200
    assert response.json() == {
        "items": [
            {"provider": "google", "name": "Google"},
            {"provider": "hearth-demo", "name": "Hearth Demo"},
        ]
    }


def test_unknown_or_disabled_provider_is_invalid_provider(hearth: Hearth) -> None:
    browser = Browser()
    for name in ("github", "nope"):
        response = browser.get(f"{hearth.url}/api/auth/oauth/{name}/url")
        assert response.status_code == 400
        assert response.json()["error"] == "INVALID_PROVIDER"
        assert browser.cookie(hearth.url, "hearth-login") is None


def test_url_stores_hashes_only_and_binds_the_browser(hearth: Hearth) -> None:
    browser = Browser()

    response = browser.get(
        f"{hearth.url}/api/auth/oauth/google/url", params={"return_url": "/t/welcome"}
    )

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    started = response.json()
    assert started["provider"] == "google"
    params = query(started["url"])
    assert params["state"] == started["state"]
    assert params["client_id"] == CLIENT_ID
    assert params["redirect_uri"] == f"{hearth.url}/api/auth/oauth/google/callback"
    assert params["code_challenge_method"] == "S256"
    assert params["scope"] == "openid email profile"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("hearth-login=")
    for attribute in ("HttpOnly", "Path=/api/auth/oauth", "SameSite=Lax", "Max-Age=600"):
        assert attribute in cookie
    binding = browser.cookie(hearth.url, "hearth-login")
    assert binding is not None
    with hearth.app.app_context():
        row = db.session.scalars(select(LoginState)).one()
        stored = [row.state_hash, row.nonce_hash, row.verifier_hash, row.binding_hash]
        assert started["state"] not in stored and params["nonce"] not in stored
        assert binding not in stored
        assert row.verifier_hash == params["code_challenge"]
        assert row.return_url == f"{hearth.web}/t/welcome"
        assert (row.expires_at - row.created_at).total_seconds() == 600


def test_first_sign_in_creates_an_account_without_a_password(
    hearth: Hearth, google: MockIssuer
) -> None:
    google.user(
        "g-alice",
        email="alice@example.org",
        email_verified=True,
        preferred_username="Alice.Smith",
        name="Alice Smith",
    )
    browser = Browser()

    response = sign_in_with_google(
        hearth, google, browser, "g-alice", return_url=f"{hearth.web}/welcome"
    )

    assert response.status_code == 302
    assert response.headers["Location"] == f"{hearth.web}/welcome"
    assert "storyden-session=" in response.headers["Set-Cookie"]
    assert response.headers["Referrer-Policy"] == "no-referrer"
    me = hearth.me(browser).json()
    assert me["handle"] == "alice-smith"
    assert me["name"] == "Alice Smith"
    assert me["email"] == "alice@example.org"
    assert me["roles"] == ["member"]
    identities = browser.get(f"{hearth.url}/api/accounts/self/identities").json()["items"]
    assert [(i["provider"], i["subject"]) for i in identities] == [("google", "g-alice")]
    with hearth.app.app_context():
        account = db.session.get(Account, me["id"])
        assert account is not None and account.password_hash is None
        assert account.email_verified is True


def test_second_sign_in_returns_to_the_same_account(hearth: Hearth, google: MockIssuer) -> None:
    google.user("g-bob", email="bob@example.org", email_verified=True, preferred_username="bob")
    first, second = Browser(), Browser()

    sign_in_with_google(hearth, google, first, "g-bob")
    sign_in_with_google(hearth, google, second, "g-bob")

    assert hearth.me(first).json()["id"] == hearth.me(second).json()["id"]
    with hearth.app.app_context():
        assert len(db.session.scalars(select(Account)).all()) == 1


def test_handle_collisions_get_a_suffix(hearth: Hearth, google: MockIssuer) -> None:
    _signup(hearth, Browser(), "carol")
    google.user("g-carol", preferred_username="carol")
    browser = Browser()

    sign_in_with_google(hearth, google, browser, "g-carol")

    assert hearth.me(browser).json()["handle"] == "carol-2"


def test_handle_falls_back_to_the_email_then_the_provider(
    hearth: Hearth, google: MockIssuer
) -> None:
    google.user("g-1", email="Zoë.Ng+forum@example.org", email_verified=False)
    google.user("g-2", name="李")
    first, second = Browser(), Browser()

    sign_in_with_google(hearth, google, first, "g-1")
    sign_in_with_google(hearth, google, second, "g-2")

    first_me = hearth.me(first).json()
    assert first_me["handle"] == "zoe-ng-forum"
    # An unverified address is not given to the account.
    assert first_me["email"] is None
    assert hearth.me(second).json()["handle"] == "google-user"


def test_unverified_email_never_merges_into_an_existing_account(
    hearth_factory: HearthFactory, google: MockIssuer
) -> None:
    hearth = hearth_factory(google_env(google, OAUTH_PROVIDER_MERGE_VERIFIED_EMAIL="true"))
    victim = _password_account(hearth, "victim", "victim@example.org", verified=True)
    google.user("g-attacker", email="victim@example.org", email_verified=False)
    browser = Browser()

    sign_in_with_google(hearth, google, browser, "g-attacker")

    me = hearth.me(browser).json()
    assert me["id"] != victim
    assert me["email"] is None


def test_verified_email_does_not_merge_unless_the_operator_enables_it(
    hearth: Hearth, google: MockIssuer
) -> None:
    existing = _password_account(hearth, "dora", "dora@example.org", verified=True)
    google.user("g-dora", email="dora@example.org", email_verified=True)
    browser = Browser()

    sign_in_with_google(hearth, google, browser, "g-dora")

    me = hearth.me(browser).json()
    assert me["id"] != existing
    # The address stays with the account that already had it.
    assert me["email"] is None


def test_verified_email_merges_when_enabled_and_both_sides_verified(
    hearth_factory: HearthFactory, google: MockIssuer
) -> None:
    hearth = hearth_factory(google_env(google, OAUTH_PROVIDER_MERGE_VERIFIED_EMAIL="true"))
    existing = _password_account(hearth, "erin", "Erin@example.org", verified=True)
    google.user("g-erin", email="erin@example.org", email_verified=True)
    browser = Browser()

    sign_in_with_google(hearth, google, browser, "g-erin")

    assert hearth.me(browser).json()["id"] == existing


def test_merge_refuses_an_account_whose_own_email_was_never_verified(
    hearth_factory: HearthFactory, google: MockIssuer
) -> None:
    # Someone registered the victim's address first (pre-account takeover): no merge.
    hearth = hearth_factory(google_env(google, OAUTH_PROVIDER_MERGE_VERIFIED_EMAIL="true"))
    squatter = _password_account(hearth, "squatter", "frank@example.org", verified=False)
    google.user("g-frank", email="frank@example.org", email_verified=True)
    browser = Browser()

    sign_in_with_google(hearth, google, browser, "g-frank")

    assert hearth.me(browser).json()["id"] != squatter


def test_link_attaches_the_identity_to_the_signed_in_account(
    hearth: Hearth, google: MockIssuer
) -> None:
    browser = Browser()
    account_id = _signup(hearth, browser, "gina")
    google.user("g-gina", preferred_username="someone-else")

    started = hearth.start(browser, "google", type="link", return_url="/settings")
    response = browser.get(google.approve(browser, started["url"], "g-gina"))

    assert response.status_code == 302
    assert response.headers["Location"] == f"{hearth.web}/settings"
    # Linking keeps the session it had.
    assert "storyden-session" not in response.headers.get("Set-Cookie", "")
    assert hearth.me(browser).json()["id"] == account_id
    other = Browser()
    sign_in_with_google(hearth, google, other, "g-gina")
    assert hearth.me(other).json()["id"] == account_id


def test_link_needs_a_session(hearth: Hearth) -> None:
    response = Browser().get(f"{hearth.url}/api/auth/oauth/google/url", params={"type": "link"})

    assert response.status_code == 401


def test_link_refuses_an_identity_linked_to_another_account(
    hearth: Hearth, google: MockIssuer
) -> None:
    google.user("g-henry")
    sign_in_with_google(hearth, google, Browser(), "g-henry")
    browser = Browser()
    _signup(hearth, browser, "ivan")

    started = hearth.start(browser, "google", type="link", return_url="/settings")
    response = browser.get(google.approve(browser, started["url"], "g-henry"))

    assert response.headers["Location"] == f"{hearth.web}/settings?error=identity_in_use"
    assert browser.get(f"{hearth.url}/api/accounts/self/identities").json() == {"items": []}


def test_link_fails_when_the_session_changed_during_the_dance(
    hearth: Hearth, google: MockIssuer
) -> None:
    browser = Browser()
    _signup(hearth, browser, "judy")
    started = hearth.start(browser, "google", type="link", return_url="/settings")
    browser.post(f"{hearth.url}/api/auth/signout", json={})

    response = browser.get(google.approve(browser, started["url"], "g-judy"))

    assert response.headers["Location"] == f"{hearth.web}/settings?error=account_mismatch"


def test_unlink_is_refused_for_the_last_way_to_sign_in(hearth: Hearth, google: MockIssuer) -> None:
    google.user("g-kim")
    browser = Browser()
    sign_in_with_google(hearth, google, browser, "g-kim")

    response = browser.delete(f"{hearth.url}/api/accounts/self/identities/google")

    assert response.status_code == 409
    assert response.json()["error"] == "conflict"
    assert len(browser.get(f"{hearth.url}/api/accounts/self/identities").json()["items"]) == 1


def test_unlink_works_when_a_password_remains(hearth: Hearth, google: MockIssuer) -> None:
    browser = Browser()
    _signup(hearth, browser, "leo")
    started = hearth.start(browser, "google", type="link")
    browser.get(google.approve(browser, started["url"], "g-leo"))

    response = browser.delete(f"{hearth.url}/api/accounts/self/identities/google")

    assert response.status_code == 204
    assert browser.get(f"{hearth.url}/api/accounts/self/identities").json() == {"items": []}
    missing = browser.delete(f"{hearth.url}/api/accounts/self/identities/google")
    assert missing.status_code == 404


def test_identities_need_a_browser_session(hearth: Hearth) -> None:
    response = Browser().get(f"{hearth.url}/api/accounts/self/identities")

    assert response.status_code == 401


def test_denied_at_the_provider_comes_back_with_access_denied(
    hearth: Hearth, google: MockIssuer
) -> None:
    browser = Browser()
    started = hearth.start(browser, "google", return_url=f"{hearth.web}/t/hello")

    # oidc-provider-mock drops the state from its denial, so Hearth cannot tell which sign-in
    # it was: it reports the cancellation on the login page.
    response = browser.get(google.deny(browser, started["url"]))

    assert response.status_code == 302
    assert response.headers["Location"] == f"{hearth.web}/login?error=access_denied"
    assert hearth.me(browser).status_code == 401


def test_return_url_may_be_on_the_api_origin(hearth: Hearth, google: MockIssuer) -> None:
    browser = Browser()
    return_url = f"{hearth.url}/api/oauth/authorize?client_id=x&state=y"

    response = sign_in_with_google(hearth, google, browser, "g-mo", return_url=return_url)

    assert response.headers["Location"] == return_url
    assert urlsplit(response.headers["Location"]).netloc == urlsplit(hearth.url).netloc


def test_link_refuses_a_second_identity_from_the_same_provider(
    hearth: Hearth, google: MockIssuer
) -> None:
    browser = Browser()
    _signup(hearth, browser, "olga")
    for sub in ("g-olga-1", "g-olga-2"):
        started = hearth.start(browser, "google", type="link", return_url="/settings")
        response = browser.get(google.approve(browser, started["url"], sub))

    assert response.headers["Location"] == f"{hearth.web}/settings?error=provider_already_linked"
    identities = browser.get(f"{hearth.url}/api/accounts/self/identities").json()["items"]
    assert [i["subject"] for i in identities] == ["g-olga-1"]


def test_unlink_is_allowed_while_another_identity_remains(
    hearth_factory: HearthFactory, google: MockIssuer, mock_issuer: Callable[..., MockIssuer]
) -> None:
    other = mock_issuer()
    hearth = hearth_factory(
        google_env(
            google,
            OIDC_PROVIDERS="other",
            OIDC_PROVIDER_OTHER_ISSUER=other.url,
            OIDC_PROVIDER_OTHER_CLIENT_ID="other-client",
            OIDC_PROVIDER_OTHER_CLIENT_SECRET="other-secret",
        )
    )
    browser = Browser()
    sign_in_with_google(hearth, google, browser, "g-pat")
    started = hearth.start(browser, "other", type="link")
    linked = browser.get(other.approve(browser, started["url"], "o-pat"))
    assert linked.headers["Location"] == f"{hearth.web}/", linked.headers["Location"]

    first = browser.delete(f"{hearth.url}/api/accounts/self/identities/google")
    last = browser.delete(f"{hearth.url}/api/accounts/self/identities/other")

    assert first.status_code == 204
    assert last.status_code == 409
    identities = browser.get(f"{hearth.url}/api/accounts/self/identities").json()["items"]
    assert [(i["provider"], i["subject"]) for i in identities] == [("other", "o-pat")]


def test_identity_rows_keep_what_the_provider_said(hearth: Hearth, google: MockIssuer) -> None:
    google.user("g-nia", email="nia@example.org", email_verified=False)
    sign_in_with_google(hearth, google, Browser(), "g-nia")

    with hearth.app.app_context():
        identity = db.session.scalars(select(FederatedIdentity)).one()
        assert (identity.provider, identity.subject) == ("google", "g-nia")
        assert (identity.email, identity.email_verified) == ("nia@example.org", False)


def _signup(hearth: Hearth, browser: Browser, handle: str) -> str:
    response = browser.post(
        f"{hearth.url}/api/auth/password/signup", json={"handle": handle, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    account_id: str = response.json()["id"]
    return account_id


def _password_account(hearth: Hearth, handle: str, email: str, *, verified: bool) -> str:
    browser = Browser()
    response = browser.post(
        f"{hearth.url}/api/auth/password/signup",
        json={"handle": handle, "password": PASSWORD, "email": email},
    )
    assert response.status_code == 200, response.text
    account_id: str = response.json()["id"]
    with hearth.app.app_context():
        db.session.execute(
            update(Account).where(Account.id == account_id).values(email_verified=verified)
        )
        db.session.commit()
    return account_id
