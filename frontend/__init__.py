"""Hearth frontend: server-rendered pages that talk to the API over HTTP and never import it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response
from flask_wtf.csrf import CSRFProtect

import config as config_module

csrf = CSRFProtect()

# Thread and reply bodies may hold 100 000 characters; URL-encoded non-ASCII text is up to 9x that.
MAX_FORM_BYTES = 2 * 1024 * 1024


def create_frontend(overrides: dict[str, Any] | None = None) -> Flask:
    """Build the frontend: config → CSRF → API client → blueprints → errors → headers."""
    app = Flask(__name__)
    app.config.update({**config_module.load(signs_tokens=False), **(overrides or {})})
    app.config.update(
        # Flask's own cookie only carries the CSRF token; its name must never be the API's.
        SESSION_COOKIE_NAME="hearth-web-session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        # SESSION_COOKIE_DOMAIN is the storyden-session domain; this cookie stays host-only.
        SESSION_COOKIE_DOMAIN=None,
        # Pages send `Referrer-Policy: no-referrer`, so browsers post forms without a Referer;
        # the CSRF token and the SameSite cookie carry the protection instead.
        WTF_CSRF_SSL_STRICT=False,
        MAX_CONTENT_LENGTH=MAX_FORM_BYTES,
        MAX_FORM_MEMORY_SIZE=MAX_FORM_BYTES,
    )

    csrf.init_app(app)

    from frontend.api_client import ApiClient

    app.extensions["hearth_api"] = ApiClient(app.config["API_INTERNAL_ADDRESS"])

    from frontend import accounts, admin, errors, federation, forum, meta, oauth, settings
    from frontend.security import content_security_policy

    app.register_blueprint(meta.bp)
    app.register_blueprint(accounts.bp)
    app.register_blueprint(forum.bp)
    app.register_blueprint(oauth.bp)
    app.register_blueprint(federation.bp)
    app.register_blueprint(settings.bp)
    app.register_blueprint(admin.bp)
    errors.register(app)
    app.context_processor(accounts.template_context)
    app.add_template_filter(_when, "when")
    app.add_template_global(federation.start_url, "upstream_start_url")
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True

    @app.after_request
    def _headers(response: Response) -> Response:
        # A view that knows where its forms lead (sign-in, consent) sets its own policy first.
        response.headers.setdefault("Content-Security-Policy", content_security_policy())
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if response.mimetype == "text/html":
            # Pages show who is signed in and carry CSRF tokens: no shared cache may keep them.
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    return app


def _when(timestamp: str) -> str:
    """Show an RFC 3339 timestamp from the API as `22 Nov 2025, 20:57 UTC`."""
    moment = datetime.fromisoformat(timestamp).astimezone(UTC)
    return f"{moment.day} {moment:%b %Y, %H:%M} UTC"
