"""WSGI entry points: `gunicorn wsgi:api` and `gunicorn wsgi:web`.

Each app is built only when its entry point is asked for, so the web process never needs the
API's database or signing key.
"""

from __future__ import annotations

import sys

from flask import Flask

import config


def __getattr__(name: str) -> Flask:
    try:
        if name == "api":
            from app import create_app

            return create_app()
        if name == "web":
            from frontend import create_frontend

            return create_frontend()
    except config.ConfigError as error:
        print(str(error), file=sys.stderr)
        raise SystemExit(2) from None
    raise AttributeError(name)
