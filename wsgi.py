"""WSGI entry points: `gunicorn wsgi:api` and `gunicorn wsgi:web`.

Each app is built only when its entry point is asked for, so the web process never needs the
API's database or signing key.
"""

from __future__ import annotations

import gc
import sys

from flask import Flask

import config


def _settled(app: Flask) -> Flask:
    """Move everything loaded so far (modules, mappers, the app) out of the cyclic collector's
    sight: it otherwise re-walks these long-lived objects on every full collection."""
    gc.collect()
    gc.freeze()
    return app


def __getattr__(name: str) -> Flask:
    try:
        if name == "api":
            from cryptography.exceptions import UnsupportedAlgorithm

            from app import create_app
            from app.extensions import Database
            from app.oauth.keys import provider_keys

            app = create_app()
            with app.app_context():
                try:
                    # Parse (and derive) the signing keys at start-up, not on a first request,
                    # and refuse to start with a key that cannot sign.
                    provider_keys()
                except (ValueError, TypeError, UnsupportedAlgorithm) as error:
                    print(f"OAUTH_SIGNING_KEY: {error}", file=sys.stderr)
                    raise SystemExit(2) from None
            # gunicorn's sync worker serves every request in the thread that imported the app.
            Database.keep_connections(app)
            return _settled(app)
        if name == "web":
            from frontend import create_frontend

            return _settled(create_frontend())
    except config.ConfigError as error:
        print(str(error), file=sys.stderr)
        raise SystemExit(2) from None
    raise AttributeError(name)
