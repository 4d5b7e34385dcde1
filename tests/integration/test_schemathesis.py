"""Property-based checks of the whole API against its own OpenAPI document (schemathesis).

Bounded: a few examples per operation, no deadline. Every finding is fixed at its cause.
"""

from __future__ import annotations

import tempfile

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from app.migrate import upgrade
from tests.conftest import make_app

_URL = f"sqlite:///{tempfile.mkdtemp(prefix='hearth-fuzz-')}/fuzz.db"
upgrade(_URL)
APP = make_app(_URL, OAUTH_DYNAMIC_REGISTRATION_ENABLED=True)
schema = schemathesis.openapi.from_wsgi("/api/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_matches_its_openapi_document(case: schemathesis.Case) -> None:
    # Business rules beyond the schema (taken handles, weak passwords, unknown ids) legitimately
    # reject schema-valid data, so that one heuristic check is left out.
    case.call_and_validate(excluded_checks=[positive_data_acceptance])
