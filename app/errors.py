"""Typed errors and the one place that renders them as `{"error", "error_description"}` JSON."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, current_app, jsonify
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from werkzeug.exceptions import HTTPException

from app.extensions import refused_write

log = logging.getLogger("hearth.errors")


class HearthError(Exception):
    """Base class: subclasses set the HTTP status and the error code."""

    status = 400
    error = "invalid_request"
    description = "The request is invalid."

    def __init__(
        self,
        description: str | None = None,
        *,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(description or self.description)
        self.description = description or self.description
        self.extra = extra or {}
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": self.error, "error_description": self.description, **self.extra}


class InvalidRequest(HearthError):
    pass


class ValidationFailed(HearthError):
    """Field-level problems with a request body; `fields` maps each field to its message."""

    description = "Some fields are invalid."

    def __init__(self, fields: dict[str, str], description: str | None = None) -> None:
        super().__init__(description, extra={"fields": fields})


class Unauthenticated(HearthError):
    status = 401
    error = "unauthenticated"
    description = "Sign in to continue."


class InvalidCredentials(HearthError):
    status = 401
    error = "invalid_credentials"
    description = "The handle or password is incorrect."


class Forbidden(HearthError):
    status = 403
    error = "forbidden"
    description = "You do not have permission to do that."


class CrossOriginRejected(HearthError):
    status = 403
    error = "cross_origin_request"
    description = "Requests from another site cannot change data here."


class NotFound(HearthError):
    status = 404
    error = "not_found"
    description = "Not found."


class Conflict(HearthError):
    status = 409
    error = "conflict"
    description = "That conflicts with existing data."


class UnsupportedMediaType(HearthError):
    status = 415
    error = "unsupported_media_type"
    description = "Send this request as application/json."


def render(error: HearthError) -> Response:
    response = jsonify(error.body())
    response.status_code = error.status
    for name, value in error.headers.items():
        response.headers[name] = value
    return response


def register(app: Flask) -> None:
    """Render typed errors, routing errors and crashes as JSON; never a stack trace."""

    @app.errorhandler(HearthError)
    def _typed(error: HearthError) -> Response:
        return render(error)

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Response:
        code = (error.name or "error").lower().replace(" ", "_").replace("'", "")
        response = jsonify({"error": code, "error_description": error.description})
        response.status_code = error.code or 500
        valid_methods = getattr(error, "valid_methods", None)
        if error.code == 405 and valid_methods:
            response.headers["Allow"] = ", ".join(valid_methods)
        return response

    @app.errorhandler(OperationalError)
    @app.errorhandler(InterfaceError)
    def _database_down(error: DBAPIError) -> Response:
        violation = refused_write(error)
        if violation is not None:
            return _crash(violation)
        # The pool replaces dead connections by itself (app.extensions) once the database is back;
        # nothing was committed.
        log.warning("database unavailable: %s", type(error.orig).__name__ if error.orig else error)
        response = jsonify(
            {
                "error": "temporarily_unavailable",
                "error_description": "The service is temporarily unavailable; try again shortly.",
            }
        )
        response.status_code = 503
        response.headers["Retry-After"] = "5"
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(Exception)
    def _crash(error: Exception) -> Response:
        if isinstance(error, DBAPIError):
            error = refused_write(error) or error
        if current_app.config.get("PROPAGATE_EXCEPTIONS"):
            raise error
        log.error("unhandled error", exc_info=error)
        response = jsonify({"error": "server_error", "error_description": "Something went wrong."})
        response.status_code = 500
        return response
