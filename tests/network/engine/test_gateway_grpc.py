"""The Fabric Gateway gRPC client against the embedded engine served over real gRPC (127.0.0.1).

Real consortium homes, real signatures, real SQLite, a real ``grpc.aio``
server on a free loopback port: the client sends exactly the messages it
would send to a Fabric peer's gateway, and each refusal must come back as the
engine's typed per-phase error carrying the transaction id.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest

from crypto.consortium import Consortium, create_demo_consortium
from crypto.identity import Identity
from crypto.signing import verify
from network.connector import (
    GatewayClient,
    RemoteCommitStatusError,
    RemoteEndorseError,
    RemoteEvaluateError,
    RemoteSubmitError,
    connect,
)
from network.engine.errors import CommitStatusError, EndorseError, EvaluateError, SubmitError
from network.engine.gateway_server import GatewayServer, start_gateway_server
from network.engine.network import EmbeddedNetwork
from network.fabric.transactions import parse_envelope
from tests.network.engine.test_pipeline import CC, create_args, make_home, open_network


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return make_home(tmp_path)


@pytest.fixture
def members(home: Path) -> Consortium:
    return Consortium.load(home)


@pytest.fixture
def officer(members: Consortium) -> Identity:
    return members.identity("officer.health.cd1")


@pytest.fixture
def other_officer(members: Consortium) -> Identity:
    return members.identity("officer.hrss.sz1")


@pytest.fixture
def outsider(tmp_path: Path) -> Identity:
    """An identity with the same name and MSP ID, issued by another consortium's CA."""
    other_home = tmp_path / "elsewhere"
    create_demo_consortium(other_home, now=datetime.now(UTC))
    return Consortium.load(other_home).identity("officer.health.cd1")


@pytest.fixture
async def served(home: Path) -> AsyncIterator[tuple[EmbeddedNetwork, GatewayServer]]:
    network = open_network(home)
    server = await start_gateway_server(network, host="127.0.0.1", port=0)
    try:
        yield network, server
    finally:
        await server.stop(None)
        await network.aclose()


@pytest.fixture
async def channel(
    served: tuple[EmbeddedNetwork, GatewayServer],
) -> AsyncIterator[Any]:
    _, server = served
    grpc_channel = connect(server.target)
    try:
        yield grpc_channel
    finally:
        await grpc_channel.close()


def client_for(channel: Any, network: EmbeddedNetwork, identity: Identity) -> GatewayClient:
    return GatewayClient.for_identity(channel, network.channel_id, identity)


async def test_a_transaction_is_endorsed_submitted_and_committed_over_grpc(
    served: tuple[EmbeddedNetwork, GatewayServer], channel: Any, officer: Identity
) -> None:
    network, _ = served
    client = client_for(channel, network, officer)
    proposal = client.new_proposal(CC, "CreateAsset", create_args("g1", owner="ann"))
    prepared = await client.endorse(proposal)
    assert prepared.tx_id == proposal.tx_id
    assert prepared.transaction.signature is None
    transaction = client.sign_transaction(prepared)
    verify(officer.public_key, transaction.payload_bytes, transaction.signature or b"")
    commit = await client.submit_transaction(transaction)
    status = await commit.status(timeout=10)
    assert status.tx_id == proposal.tx_id
    assert status.validation_code_name == "VALID"
    # The block number reported over gRPC is the block that holds the envelope on the ledger.
    on_ledger = network.transaction_status(proposal.tx_id)
    assert on_ledger is not None
    assert on_ledger.block_number == status.block_number
    block = network.get_block(status.block_number)
    envelopes = [parse_envelope(bytes(raw)) for raw in block.data.data]
    mine = [tx for tx in envelopes if tx.tx_id == proposal.tx_id]
    assert len(mine) == 1
    assert mine[0].signature == transaction.signature
    assert mine[0].payload == transaction.payload_bytes
    # Evaluate reads the state the transaction wrote.
    value = json.loads(await client.evaluate(CC, "ReadAsset", ["g1"]))
    assert value["Owner"] == "ann"
    assert value == json.loads(await network.evaluate(officer, CC, "ReadAsset", ["g1"]))
    # Asking again for a committed transaction answers at once with the same status.
    assert await client.commit_status(proposal.tx_id, timeout=5) == status


async def test_submit_shortcut_returns_the_committed_result(
    served: tuple[EmbeddedNetwork, GatewayServer], channel: Any, officer: Identity
) -> None:
    network, _ = served
    client = client_for(channel, network, officer)
    result = await client.submit(CC, "CreateAsset", create_args("g2"), commit_timeout=10)
    assert result.validation_code_name == "VALID"
    status = network.transaction_status(result.tx_id)
    assert status is not None
    assert status.block_number == result.block_number
    assert json.loads(await client.evaluate(CC, "ReadAsset", ["g2"]))["ID"] == "g2"


async def test_a_proposal_by_a_non_member_is_refused_with_a_typed_endorse_error(
    served: tuple[EmbeddedNetwork, GatewayServer], channel: Any, outsider: Identity
) -> None:
    network, _ = served
    client = client_for(channel, network, outsider)
    proposal = client.new_proposal(CC, "CreateAsset", create_args("x1"))
    height = network.height
    with pytest.raises(EndorseError) as caught:
        await client.endorse(proposal)
    error = caught.value
    assert isinstance(error, RemoteEndorseError)
    assert error.tx_id == proposal.tx_id
    assert error.code == "endorse_failed"
    assert error.grpc_code == grpc.StatusCode.ABORTED
    assert "not a valid member" in error.message
    assert error.details
    assert "not a valid member" in error.details[0].message
    with pytest.raises(EvaluateError) as evaluated:
        await client.evaluate(CC, "ReadAsset", ["x1"])
    assert isinstance(evaluated.value, RemoteEvaluateError)
    assert len(evaluated.value.tx_id) == 64
    assert network.height == height


async def test_a_chaincode_error_keeps_its_status_in_each_phase(
    served: tuple[EmbeddedNetwork, GatewayServer], channel: Any, officer: Identity
) -> None:
    network, _ = served
    client = client_for(channel, network, officer)
    with pytest.raises(EndorseError) as endorse:
        await client.endorse(client.new_proposal(CC, "ReadAsset", ["missing"]))
    with pytest.raises(EvaluateError) as evaluate:
        await client.evaluate(CC, "ReadAsset", ["missing"])
    assert endorse.value.status == evaluate.value.status == 500
    assert isinstance(endorse.value, RemoteEndorseError)
    assert endorse.value.grpc_code == grpc.StatusCode.UNKNOWN


async def test_a_prepared_transaction_signed_by_another_key_is_refused_at_submit(
    served: tuple[EmbeddedNetwork, GatewayServer],
    channel: Any,
    officer: Identity,
    other_officer: Identity,
) -> None:
    network, _ = served
    client = client_for(channel, network, officer)
    prepared = await client.endorse(client.new_proposal(CC, "CreateAsset", create_args("t1")))
    # Another member signs the officer's transaction: the orderer's signature check refuses it.
    forged = prepared.transaction.sign(other_officer.signer)
    with pytest.raises(SubmitError) as caught:
        await client.submit_transaction(forged)
    error = caught.value
    assert isinstance(error, RemoteSubmitError)
    assert error.tx_id == prepared.tx_id
    assert error.grpc_code == grpc.StatusCode.ABORTED
    assert error.details
    assert network.transaction_status(prepared.tx_id) is None
    # An unsigned transaction never leaves the client.
    with pytest.raises(SubmitError, match="not signed") as unsigned:
        await client.submit_transaction(prepared.transaction)
    assert unsigned.value.tx_id == prepared.tx_id
    # The genuine signature is still accepted afterwards, so the refusal was the forgery's.
    commit = await client.submit_transaction(client.sign_transaction(prepared))
    assert (await commit.status(timeout=10)).valid


async def test_commit_status_of_an_unknown_transaction_times_out_as_commit_status_error(
    served: tuple[EmbeddedNetwork, GatewayServer], channel: Any, officer: Identity
) -> None:
    network, _ = served
    client = client_for(channel, network, officer)
    with pytest.raises(CommitStatusError) as caught:
        await client.commit_status("ab" * 32, timeout=0.5)
    assert isinstance(caught.value, RemoteCommitStatusError)
    assert caught.value.tx_id == "ab" * 32
    assert caught.value.grpc_code == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_commit_status_signed_by_another_identity_is_refused(
    served: tuple[EmbeddedNetwork, GatewayServer],
    channel: Any,
    officer: Identity,
    other_officer: Identity,
    outsider: Identity,
) -> None:
    network, _ = served
    client = client_for(channel, network, officer)
    result = await client.submit(CC, "CreateAsset", create_args("s1"), commit_timeout=10)
    # The request names the officer but is signed with another member's key.
    impostor = GatewayClient(
        channel,
        channel_id=network.channel_id,
        creator=officer.serialized(),
        signer=other_officer.signer,
    )
    with pytest.raises(CommitStatusError) as forged:
        await impostor.commit_status(result.tx_id, timeout=5)
    assert isinstance(forged.value, RemoteCommitStatusError)
    assert forged.value.grpc_code == grpc.StatusCode.PERMISSION_DENIED
    assert forged.value.tx_id == result.tx_id
    # A correctly signed request by a non-member is refused too.
    with pytest.raises(CommitStatusError) as stranger:
        await client_for(channel, network, outsider).commit_status(result.tx_id, timeout=5)
    assert isinstance(stranger.value, RemoteCommitStatusError)
    assert stranger.value.grpc_code == grpc.StatusCode.PERMISSION_DENIED
    # An offline signature by the named identity is accepted.
    offline = GatewayClient(
        channel, channel_id=network.channel_id, creator=officer.serialized(), signer=None
    )
    signature = officer.sign(offline.commit_status_request(result.tx_id))
    status = await offline.commit_status(result.tx_id, timeout=5, signature=signature)
    assert status.valid
    assert status.block_number == result.block_number


async def test_the_servicer_refuses_malformed_requests_with_invalid_argument(
    served: tuple[EmbeddedNetwork, GatewayServer], channel: Any, officer: Identity
) -> None:
    """What a non-conforming client could send: the servicer answers as Fabric's gateway does."""
    from fabric_protos.common import common_pb2
    from fabric_protos.gateway import gateway_pb2, gateway_pb2_grpc

    network, _ = served
    stub = gateway_pb2_grpc.GatewayStub(channel)
    client = client_for(channel, network, officer)
    prepared = await client.endorse(client.new_proposal(CC, "CreateAsset", create_args("m1")))
    unsigned = common_pb2.Envelope(payload=prepared.transaction.payload_bytes)
    calls = [
        stub.Submit(gateway_pb2.SubmitRequest(prepared_transaction=unsigned), timeout=5),
        stub.Endorse(gateway_pb2.EndorseRequest(), timeout=5),
        stub.CommitStatus(gateway_pb2.SignedCommitStatusRequest(request=b"\xff"), timeout=5),
    ]
    for call in calls:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await call
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert network.transaction_status(prepared.tx_id) is None
