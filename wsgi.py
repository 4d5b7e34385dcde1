"""WSGI entry points: `gunicorn wsgi:api` and `gunicorn wsgi:web`."""

from __future__ import annotations

import sys

import config

try:
    from app import create_app
    from frontend import create_frontend

    api = create_app()
    web = create_frontend()
except config.ConfigError as error:
    print(str(error), file=sys.stderr)
    raise SystemExit(2) from None
