"""The scheme over real HTTP: httpx signs and sends, uvicorn receives, the verifier checks.

A minimal ASGI app (not the gateway) verifies each request from its ASGI
scope, so this exercises what a real client and server do to paths, queries
and headers on the wire (percent-encoding, header case, Host).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from crypto.consortium import Consortium
from gateway.auth import (
    AuthenticationError,
    HttpRequest,
    RequestVerifier,
    SqliteNonceCache,
    TrustStore,
    sign_request,
)

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def _verifying_app(verifier: RequestVerifier) -> Callable[..., Awaitable[None]]:
    async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            result = verifier.verify(HttpRequest.from_asgi(scope, body), now=datetime.now(UTC))
            status, payload = 200, {"identity": result.identity.name}
        except AuthenticationError as exc:
            status, payload = 401, {"code": exc.code}
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": json.dumps(payload).encode()})

    return app


@pytest.fixture
def server_url(consortium: Consortium, tmp_path: Path) -> Iterator[str]:
    """Base URL of a uvicorn server on 127.0.0.1 running the verifying app."""
    nonces = SqliteNonceCache(tmp_path / "nonces.sqlite")
    verifier = RequestVerifier(trust=TrustStore.from_consortium(consortium), nonces=nonces)
    config = uvicorn.Config(_verifying_app(verifier), host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)
    nonces.close()


@pytest.mark.parametrize(
    "target",
    ["/v1/access-requests", "/v1/records/r%2F1/versions?note=a%20b&x=%E4%B8%AD", "/"],
)
def test_signed_requests_verify_over_http_and_replays_do_not(
    server_url: str, consortium: Consortium, target: str
) -> None:
    officer = consortium.identity("officer.health.sz1")
    url = server_url + target
    body = b'{"purpose":"medical_settlement"}'
    headers = sign_request(
        "POST",
        url,
        {"Content-Type": "application/json"},
        body,
        identity=officer,
        now=datetime.now(UTC),
    )
    with httpx.Client() as client:
        first = client.post(url, content=body, headers=headers)
        assert (first.status_code, first.json()) == (200, {"identity": officer.name})
        replay = client.post(url, content=body, headers=headers)
        assert (replay.status_code, replay.json()) == (401, {"code": "nonce_reused"})
        tampered = client.post(url, content=body + b" ", headers=headers)
        assert tampered.json() == {"code": "digest_mismatch"}
        get_headers = sign_request("GET", url, {}, b"", identity=officer, now=datetime.now(UTC))
        assert client.get(url, headers=get_headers).json() == {"identity": officer.name}
        unsigned = client.get(url)
        assert (unsigned.status_code, unsigned.json()) == (401, {"code": "signature_missing"})
