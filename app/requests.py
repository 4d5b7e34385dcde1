"""Parse request bodies and queries into typed models, turning problems into field errors."""

from __future__ import annotations

import base64
from typing import Any, TypeVar
from urllib.parse import unquote

from flask import request
from pydantic import BaseModel, ValidationError

from app.errors import InvalidRequest, UnsupportedMediaType, ValidationFailed

M = TypeVar("M", bound=BaseModel)


def field_errors(error: ValidationError) -> dict[str, str]:
    """Map each failing field (dotted path) to its first message."""
    fields: dict[str, str] = {}
    for problem in error.errors(include_url=False):
        location = ".".join(str(part) for part in problem["loc"]) or "body"
        message = problem["msg"].removeprefix("Value error, ")
        fields.setdefault(location, message)
    return fields


def validate(model: type[M], data: Any) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise ValidationFailed(field_errors(error)) from None


def json_body(model: type[M]) -> M:
    """Read the JSON body as `model`: 415 if not JSON, 400 if malformed or invalid."""
    if request.mimetype != "application/json":
        raise UnsupportedMediaType()
    data = request.get_json(silent=True)
    if data is None:
        raise InvalidRequest("The body is not valid JSON.")
    if not isinstance(data, dict):
        raise InvalidRequest("The body must be a JSON object.")
    return validate(model, data)


def basic_client_id(authorization: str) -> str | None:
    """The client id of `Authorization: Basic …` (RFC 6749 §2.3.1: form-encoded, then base64),
    or None when the header is not Basic or does not decode."""
    if not authorization.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return unquote(decoded.split(":", 1)[0])
