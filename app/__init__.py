"""Hearth API application factory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, Response
from werkzeug.middleware.proxy_fix import ProxyFix

import config as config_module
from app.context import this_request
from app.requests import HearthRequest


class HearthFlask(Flask):
    """Flask, with `ensure_sync` answered once per function instead of once per call.

    Flask asks `inspect.iscoroutinefunction` of every hook and view on every request (a dozen
    times per request here); whether a registered function is a coroutine never changes. Its
    requests read small urlencoded bodies directly (`HearthRequest`)."""

    request_class = HearthRequest

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sync: dict[Callable[..., Any], bool] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        is_sync = self._sync.get(func)
        if is_sync is None:
            is_sync = self._sync[func] = super().ensure_sync(func) is func
        return func if is_sync else super().ensure_sync(func)


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    """Build the API: config → extensions → blueprints → errors → CLI."""
    app = HearthFlask(__name__, instance_relative_config=False)
    app.config.update(config_module.load())
    if overrides:
        app.config.update(overrides)
    from app import json_provider

    json_provider.init_app(app)
    if app.config.get("TRUSTED_PROXY_COUNT"):
        # Client addresses (rate limits, logs) come from X-Forwarded-For as appended by this many
        # proxies in front of the API (the frontend counts as one for sign-in). The scheme comes
        # from the nearest proxy's X-Forwarded-Proto: the frontend never sets one, so that is the
        # TLS proxy clients reach the OAuth endpoints through, and its https is what they require.
        count = app.config["TRUSTED_PROXY_COUNT"]
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=count, x_proto=1
        )

    from app import auth, errors, observability
    from app.extensions import db
    from app.ratelimit import limiter

    observability.init_app(app)
    db.init_app(app)
    limiter.init_app(app)
    auth.init_app(app)

    from app.oauth import keys, server

    keys.init_app(app)
    server.init_app(app)

    from app import meta
    from app.accounts.views import bp as accounts_bp
    from app.federation.views import bp as federation_bp
    from app.forum.views import bp as forum_bp
    from app.oauth.views import bp as oauth_bp
    from app.oauth.views import init_cors

    app.register_blueprint(meta.bp)
    app.register_blueprint(accounts_bp)
    app.register_blueprint(forum_bp)
    app.register_blueprint(oauth_bp)
    app.register_blueprint(federation_bp)
    init_cors(app)

    errors.register(app)

    from app import maintenance

    maintenance.init_app(app)

    @app.after_request
    def _headers(response: Response) -> Response:
        # "nosniff" is the header's only value, so setting it is what setdefault would do,
        # without the KeyError werkzeug raises (an HTTPException, built) when it is missing.
        response.headers["X-Content-Type-Options"] = "nosniff"
        current = this_request()
        # The raw header first: parsing the cookies of a request that sent none costs ~10 µs.
        if (
            auth.SESSION_COOKIE in current.environ.get("HTTP_COOKIE", "")
            and auth.SESSION_COOKIE in current.cookies
        ):
            # The answer may depend on who the cookie says is asking.
            response.vary.add("Cookie")
        return response

    from app.cli import register_commands

    register_commands(app)
    return app
