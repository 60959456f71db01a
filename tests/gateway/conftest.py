"""Fixtures shared by the gateway tests."""

from __future__ import annotations

import os

import pytest

#: Environment variable naming the PostgreSQL server the store tests may use.
PG_URL_ENV = "ACCESSLEDGER_TEST_PG_URL"
PG_SKIP_REASON = (
    "PostgreSQL tests skipped: ACCESSLEDGER_TEST_PG_URL is not set "
    "(CI installs and starts PostgreSQL; see .ci/run)"
)


@pytest.fixture(scope="session")
def pg_url() -> str:
    """The test PostgreSQL URL; skips the requesting test, saying why, when it is not set."""
    url = os.environ.get(PG_URL_ENV, "").strip()
    if not url:
        pytest.skip(PG_SKIP_REASON)
    return url
