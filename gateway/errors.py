"""HTTP errors: one root type, and RFC 9457 ``application/problem+json`` for every failure.

Every deliberate refusal in the gateway is a :class:`GatewayError` carrying
the HTTP status, a stable ``code`` and optional extension members (``tx_id``,
``validation_code``...). Lower layers raise their own
:class:`~crypto.errors.AccessLedgerError` subclasses; the service wraps them
at the boundary (``raise GatewayError(...) from exc``) so that no internal
exception text reaches a client. :func:`install_error_handlers` turns
framework errors (validation, unknown routes) into problems too, and the
catch-all answers ``500 internal_error`` after logging only the exception
*type* and the route: exception messages may echo request values (I1).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from crypto.errors import AccessLedgerError

PROBLEM_JSON: Final = "application/problem+json"
#: Problem type URIs are ``urn:accessledger:problem:<code>``: stable and never dereferenced.
TYPE_PREFIX: Final = "urn:accessledger:problem:"

logger = logging.getLogger("accessledger.gateway")


class GatewayError(AccessLedgerError):
    """A request the gateway refuses: HTTP status, stable code, problem extensions."""

    code = "gateway_error"
    status = 400

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
        **extensions: Any,
    ) -> None:
        super().__init__(message, code=code)
        if status is not None:
            self.status = status
        self.headers = dict(headers or {})
        self.extensions = {k: v for k, v in extensions.items() if v is not None}


class RequestInvalid(GatewayError):
    code = "request_invalid"
    status = 422


class NotFound(GatewayError):
    code = "not_found"
    status = 404


class Forbidden(GatewayError):
    code = "forbidden"
    status = 403


class Conflict(GatewayError):
    code = "conflict"
    status = 409


class Unavailable(GatewayError):
    code = "ledger_unavailable"
    status = 503


def problem_body(
    *,
    status: int,
    code: str,
    detail: str,
    instance: str,
    title: str | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The RFC 9457 problem object (``type``, ``title``, ``status``, ``detail``, ``instance``).

    Strings are made encodable as UTF-8 (a lone surrogate becomes ``?``): a
    message quoting a caller's member name must not turn a 4xx into a
    failure to render it.
    """
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + code,
        "title": title or code.replace("_", " ").capitalize(),
        "status": status,
        "detail": _encodable(detail),
        "instance": _encodable(instance),
        "code": code,
    }
    for key, value in (extensions or {}).items():
        body.setdefault(key, _encodable(value) if isinstance(value, str) else value)
    return body


def _encodable(text: str) -> str:
    """``text`` with anything UTF-8 cannot encode (lone surrogates) replaced by ``?``."""
    return text.encode("utf-8", "replace").decode("utf-8")


def problem_response(
    *,
    status: int,
    code: str,
    detail: str,
    instance: str,
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> JSONResponse:
    """A ``application/problem+json`` response."""
    return JSONResponse(
        problem_body(
            status=status, code=code, detail=detail, instance=instance, extensions=extensions
        ),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=dict(headers or {}),
    )


def _instance(request: Request) -> str:
    return request.url.path


def _count(request: Request, code: str) -> None:
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.problem(code)


async def _gateway_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GatewayError)
    _count(request, exc.code)
    return problem_response(
        status=exc.status,
        code=exc.code,
        detail=exc.message,
        instance=_instance(request),
        headers=exc.headers,
        extensions=exc.extensions,
    )


def _error_entries(errors: Sequence[Any]) -> list[dict[str, Any]]:
    entries = []
    for error in errors[:20]:
        loc = [_encodable(str(part)) for part in error.get("loc", ())]
        # Never echo the offending input value: it may be personal data.
        entries.append({"loc": loc, "msg": _encodable(str(error.get("msg", "invalid")))})
    return entries


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    entries = _error_entries(list(exc.errors()))
    first = entries[0] if entries else {"loc": [], "msg": "invalid request"}
    where = ".".join(first["loc"]) or "request"
    _count(request, RequestInvalid.code)
    return problem_response(
        status=422,
        code=RequestInvalid.code,
        detail=f"{where}: {first['msg']}",
        instance=_instance(request),
        extensions={"errors": entries},
    )


_HTTP_CODES: Final = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    if status == 400:
        # FastAPI's answer to a body it cannot decode (e.g. not UTF-8): malformed JSON,
        # which the API documents as 422 request_invalid like every other malformed body.
        status = 422
        exc = StarletteHTTPException(422, "the body is not JSON in UTF-8", exc.headers)
    code = _HTTP_CODES.get(status, "request_invalid" if status < 500 else "internal_error")
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "error"
    detail = exc.detail if isinstance(exc.detail, str) and status < 500 else phrase
    _count(request, code)
    return problem_response(
        status=status,
        code=code,
        detail=detail,
        instance=_instance(request),
        headers=dict(exc.headers or {}),
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Type and route only: the message or traceback locals may hold personal data.
    route = getattr(request.scope.get("route"), "path", "?")
    logger.error("internal error %s on %s %s", type(exc).__name__, request.method, route)
    _count(request, "internal_error")
    return problem_response(
        status=500,
        code="internal_error",
        detail="the gateway failed to handle this request; it has been logged",
        instance=_instance(request),
    )


def install_error_handlers(app: FastAPI) -> None:
    """Register the problem+json handlers on ``app``."""
    app.add_exception_handler(GatewayError, _gateway_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


__all__ = [
    "PROBLEM_JSON",
    "TYPE_PREFIX",
    "Conflict",
    "Forbidden",
    "GatewayError",
    "NotFound",
    "RequestInvalid",
    "Unavailable",
    "install_error_handlers",
    "problem_body",
    "problem_response",
]
