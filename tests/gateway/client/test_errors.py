"""Problems become typed errors that keep the gateway's code, status, transaction id."""

from __future__ import annotations

import pytest

from crypto.errors import AccessLedgerError
from gateway.client import (
    ClientError,
    CommitInvalid,
    CommitTimeout,
    Conflict,
    GatewayFailure,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    RateLimited,
    Unauthenticated,
)
from gateway.client.errors import problem_error


def _problem(status: int, code: str, **extra: object) -> dict[str, object]:
    return {
        "type": f"urn:accessledger:problem:{code}",
        "title": code,
        "status": status,
        "detail": f"detail of {code}",
        "instance": "/v1/x",
        "code": code,
        **extra,
    }


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (400, "proposal_invalid", InvalidRequest),
        (401, "nonce_reused", Unauthenticated),
        (403, "grant_required", PermissionDenied),
        (404, "access_event_not_found", NotFound),
        (409, "record_exists", Conflict),
        (409, "commit_invalid", CommitInvalid),
        (410, "record_erased", NotFound),
        (413, "request_too_large", InvalidRequest),
        (422, "record_invalid", InvalidRequest),
        (429, "rate_limited", RateLimited),
        (500, "internal_error", GatewayFailure),
        (503, "ledger_unavailable", GatewayFailure),
        (504, "commit_timeout", CommitTimeout),
    ],
)
def test_each_status_maps_to_its_error_type(
    status: int, code: str, kind: type[ClientError]
) -> None:
    error = problem_error(status, _problem(status, code, tx_id="ab" * 32))
    assert type(error) is kind
    assert isinstance(error, AccessLedgerError)  # the CLI prints it as one line
    assert error.code == code
    assert error.status == status
    assert error.message == f"detail of {code}"
    assert error.tx_id == "ab" * 32


def test_commit_invalid_exposes_the_validation_code() -> None:
    error = problem_error(
        409, _problem(409, "commit_invalid", validation_code="MVCC_READ_CONFLICT")
    )
    assert isinstance(error, CommitInvalid)
    assert error.validation_code == "MVCC_READ_CONFLICT"


def test_rate_limited_keeps_retry_after() -> None:
    error = problem_error(429, _problem(429, "rate_limited"), retry_after="7")
    assert isinstance(error, RateLimited)
    assert error.retry_after == 7


def test_a_problem_without_code_or_detail_still_says_something() -> None:
    error = problem_error(418, {})
    assert isinstance(error, InvalidRequest)
    assert error.code == "http_418"
    assert "418" in error.message
    assert error.tx_id is None
