"""Browser fixtures: Debian's Chromium through Playwright against the live API and frontend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.conftest import AuthActions, LiveServer, free_port
from tests.e2e.client_app import ClientApp
from tests.federation.conftest import github  # noqa: F401  (the fake GitHub, for upstream sign-in)
from tests.frontend.support import (
    PINBOARD_SCOPES,
    Forum,
    LiveApi,
    make_web,
    register_client,
    seed_forum,
)

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"


@pytest.fixture
def live_web(live_api: LiveServer, live_ports: dict[str, int]) -> Iterator[LiveServer]:
    """The frontend served over HTTP beside the live API, CSRF checks on."""
    server = LiveServer(make_web(live_api.url, live_ports["web"]), live_ports["web"]).start()
    yield server
    server.stop()


@pytest.fixture
def forum(auth: AuthActions, live_api: LiveServer) -> Forum:
    return seed_forum(auth, LiveApi(live_api.url))


@pytest.fixture
def pinboard(live_api: LiveServer) -> Iterator[ClientApp]:
    """The third-party app, served on its own port and registered by the operator."""
    port = free_port()
    client_app = ClientApp(issuer=live_api.url, url=f"http://127.0.0.1:{port}")
    client = register_client(live_api.app, client_app.redirect_uri, PINBOARD_SCOPES)
    client_app.client_id, client_app.client_secret = client.client_id, client.client_secret or ""
    server = LiveServer(client_app.flask_app(), port).start()
    yield client_app
    server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip(f"Debian's Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser profile (no cookies) for one test."""
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


@pytest.fixture
def screenshot(page: Page, request: pytest.FixtureRequest) -> Iterator[object]:
    """Save numbered screenshots of `page` into tests/artifacts/."""
    ARTIFACTS.mkdir(exist_ok=True)
    shots: list[str] = []

    def take(name: str, on: Page | None = None) -> None:
        """Screenshot `page` (or another tab, `on`) as the test's next numbered artifact."""
        shots.append(name)
        (on or page).screenshot(
            path=ARTIFACTS / f"{request.node.name}-{len(shots):02d}-{name}.png", full_page=True
        )

    yield take
