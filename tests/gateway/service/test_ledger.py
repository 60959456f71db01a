"""``LedgerClient.query``: what a chaincode answer must be before a route sees it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

import pytest
from fabric_protos.peer import proposal_response_pb2

from crypto.consortium import Consortium
from gateway.errors import GatewayError
from gateway.service.ledger import LedgerClient
from network.engine.network import EmbeddedNetwork
from network.engine.proposal import Proposal
from network.engine.stub import SimulationResult

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


class _Endorser:
    """Answers every simulation with a fixed chaincode response (the peer is not under test)."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload

    async def simulate(self, proposal: Proposal) -> SimulationResult:
        response = proposal_response_pb2.Response(status=200, payload=self.payload)
        return SimulationResult(proposal.tx_id, "accessledger", response, None, None)


class _Network:
    channel_id = "accessledger"
    _closing = _closed = False
    _failure = None

    def __init__(self, payload: bytes) -> None:
        self.endorser = _Endorser(payload)


def _client(payload: bytes) -> LedgerClient:
    return LedgerClient(cast(EmbeddedNetwork, _Network(payload)))


async def _query(payload: bytes, demo_home: Any) -> dict[str, Any]:
    citizen = Consortium.load(demo_home).identity("citizen.c1")
    return await _client(payload).query(citizen, "ListAccessBySubject", {}, now=NOW)


async def test_an_object_is_the_answer(demo_home: Any) -> None:
    assert await _query(b'{"events":[],"truncated":false}', demo_home) == {
        "events": [],
        "truncated": False,
    }


@pytest.mark.parametrize(
    "payload",
    [b"[]", b'"text"', b'{"events":[{"a":1},', b"\xff\xfe", b'{"events":[{]}'],
    ids=["array", "string", "truncated", "not-utf8", "broken-object"],
)
async def test_anything_else_is_a_chaincode_failure_not_a_crash(
    payload: bytes, demo_home: Any
) -> None:
    with pytest.raises(GatewayError) as raised:
        await _query(payload, demo_home)
    assert (raised.value.code, raised.value.status) == ("chaincode_failed", 500)
