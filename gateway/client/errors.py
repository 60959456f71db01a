"""The SDK's errors: one hierarchy, built from the gateway's RFC 9457 problems.

Every failure the SDK reports is a :class:`ClientError` (itself an
:class:`~crypto.errors.AccessLedgerError`, so the CLI prints it as one line).
A problem+json answer keeps the gateway's stable ``code``, the HTTP status,
the transaction id when there is one, and the whole problem object; the
subclass says what kind of failure it is, so callers can catch
``PermissionDenied`` or ``CommitInvalid`` without comparing strings::

    ClientError
    +-- GatewayUnreachable      the gateway could not be reached (no HTTP answer)
    +-- ProtocolError           an answer that is not what the API promises
    +-- PayloadError            a granted payload failed to verify or decrypt
    +-- ProblemError            the gateway answered with a problem (has .status)
        +-- InvalidRequest      400, 413, 415, 422: the request itself is wrong
        +-- Unauthenticated     401: the HTTP signature was refused
        +-- PermissionDenied    403: the contract, the policy or a custodian said no
        +-- NotFound            404, 410
        +-- Conflict            409
        |   +-- CommitInvalid   409 commit_invalid (ordered, validated as invalid)
        +-- RateLimited         429 (.retry_after seconds)
        +-- GatewayFailure      5xx
            +-- CommitTimeout   504 commit_timeout (outcome unknown; check the tx id)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from crypto.errors import AccessLedgerError


class ClientError(AccessLedgerError):
    """Root of every error the SDK raises."""

    code = "client_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        tx_id: str | None = None,
        problem: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, code=code)
        #: HTTP status of the problem answer (None when there was no answer).
        self.status = status
        #: Transaction id the failure concerns, when the gateway named one.
        self.tx_id = tx_id
        #: The problem object as received (empty when there was none).
        self.problem: dict[str, Any] = dict(problem or {})


class GatewayUnreachable(ClientError):
    """No HTTP answer: connection refused, DNS failure, timeout, broken connection."""

    code = "gateway_unreachable"


class ProtocolError(ClientError):
    """The gateway answered something the API contract does not allow."""

    code = "protocol_error"


class PayloadError(ClientError):
    """A granted ciphertext or key failed its checks (address, decryption, tier layout)."""

    code = "payload_invalid"


class ProblemError(ClientError):
    """The gateway refused the request with an RFC 9457 problem."""

    code = "problem"


class InvalidRequest(ProblemError):
    code = "request_invalid"


class Unauthenticated(ProblemError):
    code = "signature_invalid"


class PermissionDenied(ProblemError):
    code = "forbidden"


class NotFound(ProblemError):
    code = "not_found"


class Conflict(ProblemError):
    code = "conflict"


class CommitInvalid(Conflict):
    """The transaction is on the ledger with a validation code other than VALID."""

    code = "commit_invalid"

    @property
    def validation_code(self) -> str | None:
        value = self.problem.get("validation_code")
        return str(value) if value is not None else None


class RateLimited(ProblemError):
    code = "rate_limited"

    @property
    def retry_after(self) -> int | None:
        """Seconds the gateway asked to wait (its ``Retry-After``), when given."""
        value = self.problem.get("retry_after")
        return int(value) if isinstance(value, int) else None


class GatewayFailure(ProblemError):
    code = "internal_error"


class CommitTimeout(GatewayFailure):
    """Ordered but not seen committed in time: the outcome is unknown."""

    code = "commit_timeout"


_BY_STATUS: dict[int, type[ProblemError]] = {
    400: InvalidRequest,
    401: Unauthenticated,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    410: NotFound,
    413: InvalidRequest,
    415: InvalidRequest,
    422: InvalidRequest,
    429: RateLimited,
}
_BY_CODE: dict[str, type[ProblemError]] = {
    "commit_invalid": CommitInvalid,
    "commit_timeout": CommitTimeout,
}


def problem_error(
    status: int, problem: Mapping[str, Any], *, retry_after: str | None = None
) -> ProblemError:
    """The typed error for a problem answer (``problem`` is the parsed JSON object)."""
    code = problem.get("code")
    code = code if isinstance(code, str) and code else f"http_{status}"
    kind = _BY_CODE.get(code) or _BY_STATUS.get(status)
    if kind is None:
        kind = GatewayFailure if status >= 500 else InvalidRequest
    detail = problem.get("detail")
    message = detail if isinstance(detail, str) and detail else f"the gateway answered {status}"
    received = dict(problem)
    if retry_after is not None and retry_after.isdigit():
        received.setdefault("retry_after", int(retry_after))
    tx_id = problem.get("tx_id")
    return kind(
        message,
        code=code,
        status=status,
        tx_id=tx_id if isinstance(tx_id, str) else None,
        problem=received,
    )


__all__ = [
    "ClientError",
    "CommitInvalid",
    "CommitTimeout",
    "Conflict",
    "GatewayFailure",
    "GatewayUnreachable",
    "InvalidRequest",
    "NotFound",
    "PayloadError",
    "PermissionDenied",
    "ProblemError",
    "ProtocolError",
    "RateLimited",
    "Unauthenticated",
    "problem_error",
]
