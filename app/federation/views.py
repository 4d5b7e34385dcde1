"""Upstream sign-in endpoints (SPEC §6)."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("federation", __name__)
