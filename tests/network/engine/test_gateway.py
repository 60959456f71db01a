"""The fabric-gateway style client: the four steps, offline signing, one error type per phase."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from crypto.consortium import Consortium
from crypto.identity import Identity
from crypto.signing import verify
from network.engine.errors import (
    CommitError,
    CommitStatusError,
    EndorseError,
    EvaluateError,
    GatewayError,
    SubmitError,
)
from network.engine.gateway import Gateway
from network.engine.network import EmbeddedNetwork
from tests.network.engine.test_pipeline import CC, create_args, make_home, open_network


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return make_home(tmp_path)


@pytest.fixture
def officer(home: Path) -> Identity:
    return Consortium.load(home).identity("officer.health.cd1")


async def test_offline_signing_flow(home: Path, officer: Identity) -> None:
    public = officer.public_only()
    async with open_network(home) as network:
        gateway = Gateway(network, creator=public.serialized(), signer=None)
        proposal = gateway.new_proposal(CC, "CreateAsset", create_args("o1"))
        assert proposal.signature is None
        # The officer signs in their own client; the gateway never holds the key.
        signed = proposal.with_signature(officer.sign(proposal.proposal_bytes))
        endorsement = await gateway.endorse(signed)
        with pytest.raises(SubmitError, match="no signer"):
            gateway.sign_transaction(endorsement)
        unsigned = endorsement.transaction()
        with pytest.raises(SubmitError, match="not signed"):
            await gateway.submit_transaction(unsigned)
        transaction = unsigned.with_signature(officer.sign(unsigned.payload_bytes))
        verify(public.public_key, transaction.payload_bytes, transaction.signature or b"")
        commit = await gateway.submit_transaction(transaction)
        status = await commit.status()
        assert status.validation_code_name == "VALID"
        assert commit.tx_id == proposal.tx_id == status.tx_id
        # Anyone can ask for the status of a committed transaction afterwards.
        assert await gateway.commit_status(proposal.tx_id) == status
        value = await network.evaluate(officer, CC, "ReadAsset", ["o1"])
        assert json.loads(value)["Owner"] == "tom"


async def test_each_phase_raises_its_own_error_with_the_tx_id(
    home: Path, officer: Identity
) -> None:
    async with open_network(home) as network:
        gateway = network.gateway(officer)
        with pytest.raises(EndorseError) as endorse:
            await gateway.submit(CC, "ReadAsset", ["missing"])
        with pytest.raises(EvaluateError) as evaluate:
            await gateway.evaluate(CC, "ReadAsset", ["missing"])
        with pytest.raises(CommitError) as commit:
            await gateway.submit(CC, "CreateAsset", create_args("p"), endorsing_orgs=["Health"])
        with pytest.raises(CommitStatusError) as status:
            await gateway.commit_status("0" * 64, timeout=0.05)
    errors: list[GatewayError] = [endorse.value, evaluate.value, commit.value, status.value]
    assert [e.code for e in errors] == [
        "endorse_failed",
        "evaluate_failed",
        "commit_failed",
        "commit_status_failed",
    ]
    assert all(len(e.tx_id) == 64 for e in errors)
    assert endorse.value.status == evaluate.value.status == 500
    assert commit.value.validation_code == 10
    assert "ENDORSEMENT_POLICY_FAILURE" in commit.value.message


async def test_calls_after_close_fail_in_their_phase(home: Path, officer: Identity) -> None:
    network = open_network(home)
    gateway = network.gateway(officer)
    endorsement = await gateway.endorse(gateway.new_proposal(CC, "CreateAsset", create_args("c")))
    await network.aclose()
    with pytest.raises(EndorseError, match="closed") as endorse:
        await gateway.submit(CC, "CreateAsset", create_args("c2"))
    assert endorse.value.tx_id
    with pytest.raises(EvaluateError, match="closed"):
        await gateway.evaluate(CC, "ReadAsset", ["c"])
    with pytest.raises(SubmitError, match="closed") as submit:
        await gateway.submit_transaction(gateway.sign_transaction(endorsement))
    assert submit.value.tx_id == endorsement.tx_id
    with pytest.raises(CommitStatusError, match="closed"):
        await gateway.commit_status(endorsement.tx_id)


async def test_pending_commit_status_fails_when_the_network_stops(
    tmp_path: Path,
) -> None:
    home = make_home(tmp_path, batch_timeout_ms=60_000)
    network: EmbeddedNetwork = open_network(home)
    waiter = asyncio.create_task(network.commit_status("f" * 64, timeout=None))
    await asyncio.sleep(0.02)
    await network.aclose()
    with pytest.raises(CommitStatusError, match="closed") as caught:
        await waiter
    assert caught.value.tx_id == "f" * 64


async def test_a_failed_commit_stops_the_network_and_reports_the_phase(
    home: Path, officer: Identity, monkeypatch: pytest.MonkeyPatch
) -> None:
    from network.engine.statedb import LedgerError

    network = open_network(home)
    height = network.height

    def disk_full(*args: object, **kwargs: object) -> int:
        raise LedgerError("committing block failed: database or disk is full")

    monkeypatch.setattr(network.store, "commit_block", disk_full)
    with pytest.raises(CommitStatusError, match="disk is full") as caught:
        await network.submit(officer, CC, "CreateAsset", create_args("d"))
    assert caught.value.tx_id
    assert not network.running
    with pytest.raises(EndorseError, match="stopped after a failure"):
        await network.submit(officer, CC, "CreateAsset", create_args("d2"))
    await network.aclose()
    monkeypatch.undo()
    reopened = open_network(home)
    try:
        assert reopened.height == height
        assert reopened.transaction_status(caught.value.tx_id) is None
    finally:
        reopened.close()
