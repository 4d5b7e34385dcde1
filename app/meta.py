"""The OpenAPI document and health checks."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify
from sqlalchemy import text

from app import openapi
from app.extensions import db, read_only

bp = Blueprint("meta", __name__)


@bp.get("/api/openapi.json")
@openapi.operation("This document (OpenAPI 3.1)", tag="meta", responses={200: "The document"})
def openapi_document() -> Response:
    document = current_app.extensions.get("hearth_openapi")
    if document is None:
        document = current_app.extensions["hearth_openapi"] = openapi.document(current_app)
    return jsonify(document)


@bp.get("/health/alive")
def alive() -> Response:
    return jsonify({"status": "ok"})


@bp.get("/health/ready")
@read_only
def ready() -> Response:
    try:
        db.connection.execute(text("SELECT 1"))
    except Exception:
        response = jsonify({"status": "unavailable", "error_description": "database unreachable"})
        response.status_code = 503
        return response
    return jsonify({"status": "ok"})
