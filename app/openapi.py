"""OpenAPI 3.1 built from the routes themselves: every API view declares its operation here.

`operation()` attaches the document fragment to the view function; `document()` walks the URL map,
so a route cannot exist without being described and the document cannot name a missing route.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from flask import Flask
from pydantic import BaseModel

from app.permissions import Permission

F = TypeVar("F", bound=Callable[..., Any])
DOCUMENTED_PREFIXES = ("/api/", "/.well-known/")


@dataclass(frozen=True)
class Operation:
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    form: type[BaseModel] | None = None
    responses: dict[int, type[BaseModel] | str] = field(default_factory=dict)
    permission: Permission | None = None
    auth: bool = False
    query: tuple[tuple[str, str, bool], ...] = ()


def operation(
    summary: str,
    *,
    tag: str,
    body: type[BaseModel] | None = None,
    form: type[BaseModel] | None = None,
    responses: dict[int, type[BaseModel] | str] | None = None,
    permission: Permission | None = None,
    auth: bool = False,
    query: tuple[tuple[str, str, bool], ...] = (),
) -> Callable[[F], F]:
    """Describe a view; `query` lists (name, description, required)."""

    def attach(view: F) -> F:
        view._openapi = Operation(  # type: ignore[attr-defined]
            summary, tag, body, form, responses or {}, permission, auth, query
        )
        return view

    return attach


_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {"type": "string"},
        "error_description": {"type": "string"},
        "fields": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
_STATUS_TEXT = {
    200: "OK",
    201: "Created",
    204: "No content",
    302: "Redirect",
    400: "Invalid request",
    401: "Not signed in or invalid token",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    415: "Not JSON",
}


WRITE_METHODS = {"post", "put", "patch", "delete"}


def _implied_responses(path: str, method: str, op: Operation, view: Any) -> dict[int, str]:
    """Answers every operation of a kind can give, so no route under-documents them."""
    implied: dict[int, str] = {}
    protocol = getattr(view, "_hearth_protocol_endpoint", False)
    if op.body is not None or op.form is not None:
        implied[400] = "Invalid request"
    if method in WRITE_METHODS and not protocol:
        implied[403] = "Cross-site request rejected, or forbidden"
        if method != "delete":
            implied[415] = "The body is not application/json"
    if op.auth or op.permission is not None:
        implied[401] = "Not signed in, or the bearer token is invalid"
        implied[403] = "Forbidden"
    if "{" in path:
        implied[404] = "Not found"
    if getattr(view, "_hearth_rate_limited", False):
        implied[429] = "Too many requests"
    return implied


def openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def documented_rules(app: Flask) -> list[tuple[str, str, str]]:
    """Every (path, method, endpoint) the API serves under the documented prefixes."""
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith(DOCUMENTED_PREFIXES):
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((openapi_path(rule.rule), method.lower(), rule.endpoint))
    return found


def document(app: Flask) -> dict[str, Any]:
    components: dict[str, Any] = {"Error": _ERROR}
    paths: dict[str, dict[str, Any]] = {}

    def schema_ref(model: type[BaseModel]) -> dict[str, str]:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        for name, definition in schema.pop("$defs", {}).items():
            components[name] = definition
        components[model.__name__] = schema
        return {"$ref": f"#/components/schemas/{model.__name__}"}

    for path, method, endpoint in documented_rules(app):
        view = app.view_functions[endpoint]
        op: Operation | None = getattr(view, "_openapi", None)
        if op is None:
            raise LookupError(f"{method.upper()} {path} has no OpenAPI operation")
        entry: dict[str, Any] = {
            "operationId": endpoint.replace(".", "_"),
            "summary": op.summary,
            "tags": [op.tag],
            "responses": {},
        }
        parameters = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in re.findall(r"{([^}]+)}", path)
        ]
        parameters += [
            {
                "name": name,
                "in": "query",
                "required": required,
                "description": text,
                "schema": {"type": "string"},
            }
            for name, text, required in op.query
        ]
        if parameters:
            entry["parameters"] = parameters
        if op.body is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": schema_ref(op.body)}},
            }
        if op.form is not None:
            entry["requestBody"] = {
                "required": True,
                "content": {"application/x-www-form-urlencoded": {"schema": schema_ref(op.form)}},
            }
        if op.permission is not None:
            entry["x-hearth-permission"] = op.permission.value
        if op.auth or op.permission is not None:
            entry["security"] = (
                [{"session": []}, {"bearer": []}, {}]
                if not op.auth
                else [
                    {"session": []},
                    {"bearer": []},
                ]
            )
        for status, text in _implied_responses(path, method, op, view).items():
            op.responses.setdefault(status, text)
        for status, response in sorted(op.responses.items()):
            if isinstance(response, str):
                if status >= 400:
                    entry["responses"][str(status)] = {
                        "description": response,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                        },
                    }
                else:
                    entry["responses"][str(status)] = {"description": response}
            else:
                entry["responses"][str(status)] = {
                    "description": _STATUS_TEXT.get(status, "Response"),
                    "content": {"application/json": {"schema": schema_ref(response)}},
                }
        paths.setdefault(path, {})[method] = entry

    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Hearth API",
            "version": "0.1.0",
            "description": "Forum and OAuth 2.1 / OpenID Connect provider with delegated consent.",
        },
        "servers": [{"url": app.config["PUBLIC_API_ADDRESS"]}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "storyden-session"},
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
            },
        },
    }
