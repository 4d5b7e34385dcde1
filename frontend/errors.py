"""Friendly HTML error pages: never a stack trace, never a raw API error."""

from __future__ import annotations

import logging

from flask import Flask, Response, g, make_response, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from frontend.accounts import viewer
from frontend.api_client import ApiError, ApiUnavailable

log = logging.getLogger("hearth.frontend")

TITLES = {
    400: "That did not work",
    403: "Not allowed",
    404: "Page not found",
    405: "Not allowed here",
    413: "That is too long",
    429: "Slow down",
    500: "Something went wrong",
    502: "Hearth is unavailable",
}
MESSAGES = {
    404: "There is nothing at this address. It may have been moved or deleted.",
    500: "Something went wrong on our side. Please try again in a moment.",
    502: "We could not reach the forum service. Please try again in a moment.",
}


def page(status: int, message: str | None = None, title: str | None = None) -> Response:
    """Render the error page; the header shows the visitor when the API can still say who it is."""
    if "viewer" not in g:
        try:
            viewer()
        except (ApiError, ApiUnavailable):
            g.viewer = None
    title = title or TITLES.get(status, "That did not work")
    text = message or MESSAGES.get(status) or "Please go back and try again."
    return make_response(
        render_template("error.html", status=status, title=title, message=text), status
    )


def register(app: Flask) -> None:
    @app.errorhandler(ApiUnavailable)
    def _unavailable(error: ApiUnavailable) -> Response:
        log.warning("API unavailable: %s", error)
        g.viewer = None
        return page(502)

    @app.errorhandler(ApiError)
    def _api_error(error: ApiError) -> ResponseReturnValue:
        if error.status == 401:
            back = request.full_path.rstrip("?") if request.method == "GET" else request.path
            return redirect(url_for("accounts.login", return_url=back), code=303)
        if error.status >= 500:
            log.error("API error %s: %s", error.status, error.error)
            return page(502)
        return page(error.status, error.description)

    @app.errorhandler(CSRFError)
    def _csrf(_error: CSRFError) -> Response:
        return page(
            400,
            "This form has expired or did not come from this site. "
            "Go back, reload the page and try again.",
        )

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Response:
        status = error.code or 500
        return page(status, None if status in MESSAGES else error.description)

    @app.errorhandler(Exception)
    def _crash(_error: Exception) -> Response:
        log.exception("unhandled error")
        return page(500)
