"""The FastAPI application: ``create_app(settings)``.

The app opens the home's embedded network in its lifespan (the network binds
to the server's event loop), bootstraps an empty ledger, and closes
everything on shutdown, committing what is in flight.

:class:`GatewayMiddleware` runs before routing and body parsing on every
``/v1`` request, cheapest check first: body size (``413``), caller
authentication with RFC 9421 (``401``, see ``gateway.auth``), the
per-identity rate limit (``429``). Only then is the body handed on, so an
unauthenticated client learns nothing about validation. It also answers any
unexpected exception with ``500 internal_error`` (logging the type only) and
records request metrics by route template.

Every route is a :class:`gateway.routing.StrictRoute` (each router sets it;
``create_app`` checks): a body repeating a JSON member name, or a query
parameter the route does not declare or gives twice, is ``422
request_invalid`` before any endpoint code runs.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.auth import AuthenticationError, HttpRequest
from gateway.deps import CALLER_KEY
from gateway.errors import PROBLEM_JSON, install_error_handlers, problem_body
from gateway.examples import add_response_examples
from gateway.metrics import Metrics
from gateway.routes import (
    access_requests,
    audit,
    blobs,
    custodians,
    governance,
    health,
    me,
    records,
    transactions,
)
from gateway.routing import require_strict
from gateway.service.core import GatewayService
from gateway.settings import GatewaySettings

logger = logging.getLogger("accessledger.gateway")

Clock = Callable[[], datetime]
API_PREFIX = "/v1"
#: FastAPI's native OpenTelemetry, all of it off (``GatewaySettings.opentelemetry``).
_NO_TELEMETRY: TelemetryConfig = {
    "tracing": False,
    "metrics": False,
    "logs": False,
    "operation_spans": False,
}

_DESCRIPTION = """\
Audited, policy-checked access to records about migrants across departments.

Every `/v1` request is signed with the caller's Fabric identity (RFC 9421 HTTP
Message Signatures, see `docs/authentication.md`). Writes are Fabric
transactions signed by the caller: propose (the resource endpoint answers with
a prepared transaction), then `POST /v1/transactions/{tx_id}/commit` with the
signature over it. Every error is RFC 9457 `application/problem+json` with a
stable `code`. The full contract: `docs/api.md`.
"""


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def _send_problem(
    send: Send,
    *,
    status: int,
    code: str,
    detail: str,
    instance: str,
    headers: Mapping[str, str] | None = None,
) -> None:
    body = json.dumps(
        problem_body(status=status, code=code, detail=detail, instance=instance)
    ).encode("utf-8")
    raw_headers = [
        (b"content-type", PROBLEM_JSON.encode("ascii")),
        (b"content-length", str(len(body)).encode("ascii")),
    ]
    raw_headers += [
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _TooLarge("client disconnected")  # nothing to answer
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _TooLarge(f"{size}")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class GatewayMiddleware:
    """Size limit, authentication, rate limit, metrics and the last-resort 500 (module doc)."""

    def __init__(self, app: ASGIApp, *, service: Callable[[], GatewayService]) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500, "sent": False}

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
                status["sent"] = True
            await send(message)

        service: GatewayService | None = None
        try:
            service = self.service()
            path = str(scope.get("path", ""))
            if path == API_PREFIX or path.startswith(API_PREFIX + "/"):
                replay = await self._admit(scope, receive, tracking_send, service)
                if replay is None:
                    return
                receive = replay
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            logger.error("internal error %s on %s", type(exc).__name__, scope.get("path"))
            if not status["sent"]:
                if service is not None:
                    service.metrics.problem("internal_error")
                await _send_problem(
                    tracking_send,
                    status=500,
                    code="internal_error",
                    detail="the gateway failed to handle this request; it has been logged",
                    instance=str(scope.get("path", "")),
                )
        finally:
            if service is not None:
                route = scope.get("route")
                template = getattr(route, "path", None) or "unmatched"
                service.metrics.observe_request(
                    str(scope.get("method", "")),
                    template,
                    status["code"],
                    time.perf_counter() - started,
                )

    async def _admit(
        self, scope: Scope, receive: Receive, send: Send, service: GatewayService
    ) -> Receive | None:
        """Check size, signature and rate; a receive replaying the body, or None if refused."""
        instance = str(scope.get("path", ""))
        limit = service.settings.max_request_bytes

        async def refuse(status: int, code: str, detail: str, **headers: str) -> None:
            service.metrics.problem(code)
            await _send_problem(
                send, status=status, code=code, detail=detail, instance=instance, headers=headers
            )

        declared = dict(scope.get("headers", ())).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await refuse(413, "request_too_large", f"the body exceeds {limit} bytes")
            return None
        try:
            body = await _read_body(receive, limit)
        except _TooLarge:
            await refuse(413, "request_too_large", f"the body exceeds {limit} bytes")
            return None
        try:
            authenticated = service.verifier.verify(
                HttpRequest.from_asgi(scope, body),
                now=service.now(),
                revoked=service.revoked,
            )
            service.membership.check(authenticated.identity)
        except AuthenticationError as exc:
            await refuse(401, exc.code, exc.message)
            return None
        wait = service.limiter.acquire(authenticated.keyid, time.monotonic())
        if wait is not None:
            await refuse(
                429,
                "rate_limited",
                f"more than {service.limiter.per_minute} requests per minute from this identity",
                **{"Retry-After": str(wait)},
            )
            return None
        scope.setdefault("state", {})[CALLER_KEY] = authenticated
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay


def create_app(
    settings: GatewaySettings | None = None,
    *,
    clock: Clock | None = None,
    service: GatewayService | None = None,
) -> FastAPI:
    """The gateway app for ``settings`` (default: from ``ACCESSLEDGER_*``).

    The service starts in the app's lifespan on the server's event loop;
    ``service`` injects one already started (tests, benchmarks), which the
    app then does not close. ``clock`` replaces the wall clock everywhere the
    gateway reads time (signatures, proposals, grant expiry).
    """
    settings = settings or GatewaySettings()
    now = clock or _utc_now
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if service is not None:
            app.state.service = service
            app.state.metrics = service.metrics
            yield
            return
        started = await GatewayService.start(settings, clock=now, metrics=metrics)
        app.state.service = started
        app.state.metrics = started.metrics
        try:
            yield
        finally:
            await started.aclose()

    app = FastAPI(
        title="AccessLedger gateway",
        version="1.0",
        description=_DESCRIPTION,
        lifespan=lifespan,
        telemetry=None if settings.opentelemetry else _NO_TELEMETRY,
    )
    app.state.metrics = service.metrics if service is not None else metrics
    install_error_handlers(app)
    for module in (
        health,
        records,
        transactions,
        access_requests,
        blobs,
        me,
        audit,
        governance,
        custodians,
    ):
        require_strict(module.router)
        app.include_router(module.router)

    def current() -> GatewayService:
        found: Any = getattr(app.state, "service", None)
        if found is None:
            raise RuntimeError("the gateway service is not started")
        return found  # type: ignore[no-any-return]

    app.add_middleware(GatewayMiddleware, service=current)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _openapi_document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


_SIGNATURE_SCHEME = {
    "type": "apiKey",
    "in": "header",
    "name": "Signature",
    "description": (
        "RFC 9421 HTTP Message Signature (ecdsa-p256-sha256) by the caller's Fabric identity,"
        " with Signature-Input, Content-Digest and AccessLedger-Certificate headers;"
        " see docs/authentication.md."
    ),
}


def _openapi_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with problem media types and the signature scheme declared."""
    from fastapi.openapi.utils import get_openapi

    document = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes
    )
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            for status, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if (status == "default" or status[:1] in "45") and "application/json" in content:
                    content[PROBLEM_JSON] = content.pop("application/json")
            if path.startswith(API_PREFIX + "/"):
                operation["security"] = [{"httpMessageSignature": []}]
    components = document.setdefault("components", {})
    components.setdefault("securitySchemes", {})["httpMessageSignature"] = _SIGNATURE_SCHEME
    add_response_examples(components)
    return document
