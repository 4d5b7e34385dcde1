"""Hearth frontend application factory (placeholder replaced below)."""

from __future__ import annotations

from flask import Flask


def create_frontend() -> Flask:
    app = Flask(__name__)
    return app
