"""Parse request bodies and queries into typed models, turning problems into field errors."""

from __future__ import annotations

import base64
import io
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote

from flask import Request, request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import ClientDisconnected

from app.context import this_app
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


# Bodies up to this size take HearthRequest's direct parse; larger ones take Werkzeug's parser.
SMALL_FORM_BYTES = 64 * 1024


class HearthRequest(Request):
    """Flask's request, reading a small urlencoded body (every OAuth endpoint's) directly.

    Werkzeug parses such a body with `parse_qsl` too, but first builds a form parser, a limited
    stream and a content-length parser around it, asking `current_app` through its proxy eleven
    times for the size limits: ~100 µs per token request on the benchmark machine against ~50
    µs here. The result is the same (`tests/unit/test_form_parsing.py` compares them): the
    same items, an empty form for a body that is not UTF-8, 413 past `MAX_CONTENT_LENGTH`, 400
    when a body the server does not terminate is shorter than its Content-Length, an exhausted
    stream afterwards. Anything
    else (a body without a Content-Length, a larger one, one the server terminates while a
    `MAX_CONTENT_LENGTH` is set, a stream already touched, debug mode's friendlier errors) goes to
    Werkzeug."""

    def _load_form_data(self) -> None:
        known = self.__dict__
        if (
            "form" in known
            or "stream" in known
            or self.mimetype != "application/x-www-form-urlencoded"
        ):
            super()._load_form_data()
            return
        length = self.content_length
        # gunicorn ends the body at its Content-Length itself, and says so.
        terminated = self.environ.get("wsgi.input_terminated", False)
        app = this_app()
        limit = self._max_content_length
        if limit is None:
            limit = app.config["MAX_CONTENT_LENGTH"]
        if (
            length is None
            or length > SMALL_FORM_BYTES
            or (limit is not None and (terminated or length > limit))
            or app.debug
        ):
            super()._load_form_data()
            return
        stream = self.environ["wsgi.input"]
        if terminated:
            body = stream.read()  # as Werkzeug reads a stream the server terminates
        else:
            body = stream.read(length) if length else b""
            if len(body) != length:
                raise ClientDisconnected()
        try:
            items = parse_qsl(body.decode(), keep_blank_values=True, errors="werkzeug.url_quote")
        except ValueError:  # not UTF-8: Werkzeug's parser is silent about it too
            items = []
        known["stream"] = io.BytesIO()
        known["form"] = self.parameter_storage_class(items)
        known["files"] = self.parameter_storage_class()
