"""FastAPI dependencies as ``Annotated`` aliases: the service, the authenticated caller.

The caller was authenticated by :class:`gateway.app.GatewayMiddleware` before
routing; routes only read the result. The dependencies are ``async`` although they do
no I/O: FastAPI runs a plain ``def`` dependency in its thread pool, a
needless hop on every request. ``PROBLEMS`` documents the problem
responses every authenticated route may give, for the OpenAPI document.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import Depends, Request

from crypto.identity import Identity
from gateway.auth import AuthenticatedRequest
from gateway.errors import GatewayError
from gateway.schemas import Problem
from gateway.service.core import GatewayService

#: ``scope["state"]`` key under which the middleware passes the authenticated request.
CALLER_KEY: Final = "accessledger_caller"


async def get_service(request: Request) -> GatewayService:
    service: GatewayService = request.app.state.service
    return service


async def get_authenticated(request: Request) -> AuthenticatedRequest:
    found = request.scope.get("state", {}).get(CALLER_KEY)
    if not isinstance(found, AuthenticatedRequest):
        # The middleware authenticates every /v1 route; reaching here is a wiring bug.
        raise GatewayError(
            "the request was not authenticated", code="signature_missing", status=401
        )
    return found


async def get_caller(request: Request) -> Identity:
    return (await get_authenticated(request)).identity


ServiceDep = Annotated[GatewayService, Depends(get_service)]
AuthenticatedDep = Annotated[AuthenticatedRequest, Depends(get_authenticated)]
CallerDep = Annotated[Identity, Depends(get_caller)]


def _problem(description: str) -> dict[str, Any]:
    return {"model": Problem, "description": description}


#: Problem responses shared by every authenticated route.
PROBLEMS: Final[dict[int | str, dict[str, Any]]] = {
    401: _problem("Authentication failed (signature_missing, timestamp_stale, nonce_reused, ...)"),
    413: _problem("Body larger than the configured limit (request_too_large)"),
    422: _problem(
        "Malformed JSON, unknown or repeated member, unknown or repeated query parameter,"
        " or invalid value (request_invalid)"
    ),
    429: _problem("Rate limit of this identity exceeded (rate_limited)"),
    500: _problem("Internal error (internal_error)"),
}

#: Additional problem responses of routes that endorse or commit transactions.
TRANSACTION_PROBLEMS: Final[dict[int | str, dict[str, Any]]] = {
    400: _problem("Proposal or signature invalid, or the contract refused it (chaincode code)"),
    403: _problem("Proposal creator is not the caller, or the contract forbids it"),
    404: _problem("No such prepared transaction or ledger object"),
    409: _problem("Conflict: committed as invalid (commit_invalid) or the contract's conflict"),
    410: _problem("The record was crypto-shredded (record_erased)"),
    503: _problem("The ledger is not available (ledger_unavailable)"),
    504: _problem("Ordered but not committed in time (commit_timeout)"),
}

#: Additional problem responses of routes that read the ledger (queries, committed state).
QUERY_PROBLEMS: Final[dict[int | str, dict[str, Any]]] = {
    400: _problem("The contract refused the query's arguments (chaincode code)"),
    403: _problem("The contract or the policy forbids it (forbidden, citizen_not_registered)"),
    404: _problem("No such ledger object (transaction_not_committed, the contract's not_found)"),
    503: _problem("The ledger is not available or not set up (ledger_unavailable, ...)"),
}
