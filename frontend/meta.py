"""Health checks for load balancers and orchestrators."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from frontend.api_client import api

bp = Blueprint("meta", __name__)


@bp.get("/health/alive")
def alive() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/health/ready")
def ready() -> Response:
    """Ready when the API (and through it the database) answers its own readiness check."""
    if api().ready():
        return jsonify({"status": "ok"})
    response = jsonify({"status": "unavailable", "error_description": "API unreachable"})
    response.status_code = 503
    return response
