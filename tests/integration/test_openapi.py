"""The OpenAPI document and the routes are one source of truth."""

from __future__ import annotations

import pytest
from flask import Blueprint, Flask
from flask.testing import FlaskClient

from app import openapi


def test_document_lists_exactly_the_served_routes(app: Flask, client: FlaskClient) -> None:
    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    document = response.get_json()
    assert document["openapi"] == "3.1.0"
    served = {(path, method) for path, method, _ in openapi.documented_rules(app)}
    described = {
        (path, method) for path, operations in document["paths"].items() for method in operations
    }
    assert described == served
    assert ("/api/accounts/self", "get") in described
    assert ("/api/threads/{slug}/replies", "post") in described


def test_every_schema_reference_resolves(client: FlaskClient) -> None:
    document = client.get("/api/openapi.json").get_json()
    schemas = document["components"]["schemas"]
    text = str(document)
    import re

    for name in re.findall(r"#/components/schemas/([A-Za-z0-9_]+)", text):
        assert name in schemas


def test_undocumented_route_breaks_the_document(database_url: str) -> None:
    from tests.conftest import make_app

    app = make_app(database_url)
    extra = Blueprint("extra", __name__)

    @extra.get("/api/undocumented")
    def undocumented() -> str:
        return "x"

    app.register_blueprint(extra)
    with pytest.raises(LookupError, match="GET /api/undocumented has no OpenAPI operation"):
        openapi.document(app)
