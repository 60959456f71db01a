"""``audit replay --gateway``: blocks streamed over real HTTP from a local test server.

The server stands in for the gateway's ``GET /v1/audit/blocks?from=N``: it
writes the length-delimited stream in small, uneven chunks (so frames straddle
chunk boundaries), answers problem+json for errors, and can cut the stream.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from typer.testing import CliRunner

from audit.errors import AuditSourceError
from audit.findings import FindingKind
from audit.sources import GatewaySource
from cli.main import app
from network.fabric import blocks
from tests.audit.conftest import FIXTURE_LEDGER, replay


class _Gateway(BaseHTTPRequestHandler):
    stream = b""
    mode = "ok"
    seen: ClassVar[list[str]] = []
    signatures: ClassVar[list[str]] = []

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        url = urlparse(self.path)
        type(self).seen.append(self.path)
        type(self).signatures.append(self.headers.get("Signature", ""))
        if url.path != "/v1/audit/blocks":
            self.send_error(404)
            return
        if self.mode == "forbidden":
            body = json.dumps(
                {"type": "about:blank", "title": "Forbidden", "status": 403,
                 "code": "not_an_auditor", "detail": "only auditors may stream blocks"}
            ).encode()  # fmt: skip
            self.send_response(403)
            self.send_header("Content-Type", "application/problem+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        start = int(parse_qs(url.query)["from"][0])
        frames = [blocks.encode_delimited(raw) for raw in _raw_blocks()][start:]
        data = b"".join(frames)
        if self.mode == "cut":
            data = data[: len(data) - 50]
        if self.mode == "short":
            data = b"".join(frames[:-1])
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("X-AccessLedger-Height", "25")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for offset, size in _chunks(len(data)):
            piece = data[offset : offset + size]
            self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")


def _raw_blocks() -> list[bytes]:
    with FIXTURE_LEDGER.open("rb") as stream:
        return list(blocks.iter_delimited(stream))


def _chunks(total: int) -> Iterator[tuple[int, int]]:
    offset, sizes, i = 0, (1, 7, 333, 4096, 65536), 0
    while offset < total:
        size = sizes[i % len(sizes)]
        yield offset, min(size, total - offset)
        offset += size
        i += 1


@pytest.fixture
def gateway() -> Iterator[str]:
    _Gateway.mode = "ok"
    _Gateway.seen = []
    _Gateway.signatures = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_replay_over_http_verifies_the_fixture_ledger(gateway: str) -> None:
    report = replay(GatewaySource(gateway)).report
    assert report.ok
    assert report.stats.blocks == 25
    assert report.source == f"gateway {gateway}"
    assert _Gateway.seen == ["/v1/audit/blocks?from=0"]


def test_cli_replay_with_gateway(gateway: str) -> None:
    result = CliRunner().invoke(app, ["audit", "replay", "--gateway", gateway + "/"])
    assert result.exit_code == 0, result.output
    assert "VERIFIED" in result.output


def test_gateway_refusal_is_one_clear_line(gateway: str) -> None:
    _Gateway.mode = "forbidden"
    with pytest.raises(AuditSourceError, match=r"403 not_an_auditor: only auditors may stream"):
        replay(GatewaySource(gateway))
    result = CliRunner().invoke(app, ["audit", "replay", "--gateway", gateway])
    assert result.exit_code == 1
    assert "not_an_auditor" in result.output


def test_cut_stream_is_a_finding_at_the_last_block(gateway: str) -> None:
    _Gateway.mode = "cut"
    report = replay(GatewaySource(gateway)).report
    assert [(f.kind, f.block) for f in report.findings] == [(FindingKind.MALFORMED, 24)]
    assert "ends inside a block" in report.findings[0].message


def test_stream_shorter_than_the_announced_height_is_a_finding(gateway: str) -> None:
    """A gateway that withholds the newest block cannot pass it off as the tip."""
    _Gateway.mode = "short"
    report = replay(GatewaySource(gateway)).report
    assert [(f.kind, f.block) for f in report.findings] == [(FindingKind.MALFORMED, 24)]
    assert "announced height 25 but sent 24 blocks" in report.findings[0].message


def test_unreachable_gateway_is_a_clear_error() -> None:
    with pytest.raises(AuditSourceError, match=r"cannot stream blocks from http://127\.0\.0\.1:9"):
        replay(GatewaySource("http://127.0.0.1:9", timeout=2.0))


class _SignEveryRequest(httpx.Auth):
    """Stands in for the auditor's request signature (the gateway's RFC 9421 scheme)."""

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        request.headers["Signature"] = f"test=:{request.url.path}:"
        yield request


def test_requests_carry_the_auditors_authentication(gateway: str) -> None:
    assert replay(GatewaySource(gateway, auth=_SignEveryRequest())).report.ok
    assert _Gateway.signatures == ["test=:/v1/audit/blocks:"]
