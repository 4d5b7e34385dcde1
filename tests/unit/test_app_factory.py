"""The API's Flask subclass keeps Flask's behaviour for sync and async functions."""

from __future__ import annotations

import pytest

from tests.conftest import make_app


def test_ensure_sync_returns_plain_functions_and_still_refuses_coroutines() -> None:
    app = make_app("sqlite://")

    def plain() -> str:
        return "ok"

    async def coroutine() -> str:
        return "ok"

    assert app.ensure_sync(plain) is plain
    assert app.ensure_sync(plain) is plain  # answered from the cache the second time
    for _ in range(2):
        # Without Flask's async extra, Flask refuses async functions; so does the cache.
        with pytest.raises(RuntimeError, match="async"):
            app.ensure_sync(coroutine)
