"""Typed errors of upstream sign-in; the callback turns `LoginFailed` into `?error=<code>`."""

from __future__ import annotations

from typing import Any

from app.errors import HearthError


class InvalidProvider(HearthError):
    error = "INVALID_PROVIDER"
    description = "That sign-in provider is unknown or not enabled."


class LoginFailed(HearthError):
    """A sign-in that cannot finish; `error` is the code the browser is sent back with."""

    def __init__(self, error: str, description: str, *, return_url: str | None = None) -> None:
        super().__init__(description)
        self.error = error
        # The sign-in's validated return URL, when the failure happened after it was known.
        self.return_url = return_url


class ProviderUnavailable(LoginFailed):
    """The provider did not answer, or answered with something that is not a protocol message."""

    status = 503

    def __init__(self, description: str = "The sign-in provider is unavailable.") -> None:
        super().__init__("provider_unavailable", description)


class QueryInvalid(HearthError):
    """Field errors in the style single-page apps built on FastAPI expect: `{"detail": [...]}`."""

    status = 422
    error = "validation_error"

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("Some query parameters are invalid.")
        self.problems = problems

    def body(self) -> dict[str, Any]:
        return {
            "detail": [
                {"loc": ["query", name], "msg": message, "type": "value_error"}
                for name, message in self.problems
            ]
        }
