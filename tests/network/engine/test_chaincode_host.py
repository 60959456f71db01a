"""ChaincodeHost: Fabric Python chaincodes (shim and contract API) run on the engine unchanged."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fabric_chaincode_python.fabric_shim.interfaces import Chaincode
from fabric_chaincode_python.fabric_shim.response import success

from network.engine.chaincode_host import ChaincodeHost, ChaincodeHostError
from network.engine.proposal import Proposal
from network.engine.statedb import StateDB
from network.engine.stub import SimulationResult
from tests.network.engine.samples.asset_transfer_contract import AssetTransferContract
from tests.network.engine.samples.asset_transfer_shim import AssetTransferChaincode
from tests.network.engine.samples.harness import (
    CHANNEL,
    NOW,
    commit_results,
    kv_rwset,
    make_identity,
)

NAME = "basic"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[StateDB]:
    with StateDB(tmp_path / "ledger.db") as store:
        yield store


@pytest.fixture(params=["shim", "contract"])
def host(request: pytest.FixtureRequest) -> ChaincodeHost:
    chaincode = AssetTransferChaincode() if request.param == "shim" else AssetTransferContract()
    return ChaincodeHost(chaincode, name=NAME)


class Client:
    """Calls the chaincode as a submitting client would, committing what it writes."""

    def __init__(self, host: ChaincodeHost, db: StateDB) -> None:
        self.host, self.db = host, db

    async def run(self, function: str, *args: str) -> SimulationResult:
        with self.db.snapshot() as view:
            return await self.host.invoke(
                function,
                args,
                state=view,
                creator=make_identity().serialized(),
                channel_id=CHANNEL,
                now=NOW,
            )

    async def submit(self, function: str, *args: str) -> SimulationResult:
        result = await self.run(function, *args)
        assert result.response.status == 200, result.response.message
        commit_results(self.db, result)
        return result

    async def query(self, function: str, *args: str) -> Any:
        result = await self.run(function, *args)
        assert result.response.status == 200, result.response.message
        return json.loads(result.response.payload) if result.response.payload else None


async def test_asset_transfer_end_to_end(host: ChaincodeHost, db: StateDB) -> None:
    client = Client(host, db)
    created = await client.submit("CreateAsset", "asset1", "blue", "5", "alice", "300")
    assert json.loads(created.response.payload)["Owner"] == "alice"
    assert created.event.event_name == "CreateAsset"
    kv = kv_rwset(created, NAME)
    assert [(r.key, r.HasField("version")) for r in kv.reads] == [("asset1", False)]
    assert [w.key for w in kv.writes] == ["\x00owner~id\x00alice\x00asset1\x00", "asset1"]

    await client.submit("CreateAsset", "asset2", "red", "7", "bob", "400")
    await client.submit("CreateAsset", "asset3", "green", "9", "alice", "500")

    asset = await client.query("ReadAsset", "asset1")
    assert asset == {
        "ID": "asset1",
        "Color": "blue",
        "Size": 5,
        "Owner": "alice",
        "AppraisedValue": 300,
    }

    duplicate = await client.run("CreateAsset", "asset1", "blue", "5", "alice", "300")
    assert duplicate.response.status == 500
    assert "already exists" in duplicate.response.message
    missing = await client.run("ReadAsset", "nope")
    assert missing.response.status == 500
    assert "does not exist" in missing.response.message

    await client.submit("UpdateAsset", "asset1", "blue", "6", "alice", "350")
    transfer = await client.submit("TransferAsset", "asset1", "carol")
    assert transfer.response.payload == b"alice"
    assert json.loads(transfer.event.payload) == {"From": "alice", "ID": "asset1", "To": "carol"}
    transfer_reads = kv_rwset(transfer, NAME).reads
    assert [(r.key, r.version.block_num) for r in transfer_reads] == [("asset1", 3)]

    everything = await client.query("GetAllAssets")
    assert [(a["ID"], a["Owner"]) for a in everything] == [
        ("asset1", "carol"),
        ("asset2", "bob"),
        ("asset3", "alice"),
    ]  # the owner index (composite keys) is not part of the simple range
    assert [a["ID"] for a in await client.query("GetAssetsByOwner", "alice")] == ["asset3"]
    assert [a["ID"] for a in await client.query("GetAssetsByOwner", "carol")] == ["asset1"]

    page = await client.query("GetAssetsPage", "", "", "2", "")
    assert [a["ID"] for a in page["records"]] == ["asset1", "asset2"]
    assert (page["fetchedRecordsCount"], page["bookmark"]) == (2, "asset3")
    page = await client.query("GetAssetsPage", "", "", "2", page["bookmark"])
    assert [a["ID"] for a in page["records"]] == ["asset3"]
    assert page["bookmark"] == ""

    await client.submit("DeleteAsset", "asset2")
    assert (await client.run("ReadAsset", "asset2")).response.status == 500
    assert await client.query("GetAssetsByOwner", "bob") == []

    history = await client.query("GetAssetHistory", "asset1")
    assert [(h["isDelete"], h["value"] and h["value"]["Owner"]) for h in history] == [
        (False, "carol"),
        (False, "alice"),
        (False, "alice"),
    ]
    assert [h["value"]["Size"] for h in history] == [6, 6, 5]
    assert history[-1]["txId"] == created.tx_id
    deleted = await client.query("GetAssetHistory", "asset2")
    assert [h["isDelete"] for h in deleted] == [True, False]


async def test_both_styles_write_identical_bytes(db: StateDB) -> None:
    shim = ChaincodeHost(AssetTransferChaincode(), name=NAME)
    contract = ChaincodeHost(AssetTransferContract(), name=NAME)
    results = []
    for host in (shim, contract):
        results.append(await Client(host, db).run("CreateAsset", "a", "blue", "1", "x", "2"))
    assert results[0].response.payload == results[1].response.payload
    assert results[0].rwset_bytes == results[1].rwset_bytes


class Misbehaving(Chaincode):
    """Low-level chaincode exercising the host's error paths; plain (sync) functions."""

    @staticmethod
    def init(stub: Any) -> Any:
        return success(b"initialised")

    @staticmethod
    def invoke(stub: Any) -> Any:
        function, _params = stub.get_function_and_parameters()
        if function == "raise":
            raise RuntimeError("something broke")
        if function == "nothing":
            return None
        if function == "sleep":
            return asyncio.sleep(5)
        return success(function.encode())


async def _run(host: ChaincodeHost, db: StateDB, function: str, *, is_init: bool = False) -> Any:
    result = await host.invoke(
        function,
        state=db,
        creator=make_identity().serialized(),
        channel_id=CHANNEL,
        now=NOW,
        is_init=is_init,
    )
    return result.response


async def test_host_turns_failures_into_error_responses(db: StateDB) -> None:
    host = ChaincodeHost(Misbehaving, name=NAME, timeout=0.05)
    assert (await _run(host, db, "echo")).payload == b"echo"
    assert (await _run(host, db, "echo", is_init=True)).payload == b"initialised"
    raised = await _run(host, db, "raise")
    assert (raised.status, raised.message) == (500, "chaincode Invoke() failed: something broke")
    nothing = await _run(host, db, "nothing")
    assert nothing.status == 500
    assert "has not called success or error" in nothing.message
    slow = await _run(host, db, "sleep")
    assert slow.status == 500
    assert "timeout" in slow.message


class TaskRecorder(Chaincode):
    """Records the asyncio task its ``invoke`` coroutine runs in."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task[Any] | None] = []

    async def init(self, stub: Any) -> Any:
        return success(b"")

    async def invoke(self, stub: Any) -> Any:
        self.tasks.append(asyncio.current_task())
        await asyncio.sleep(0)  # a real suspension, still under the timeout
        return success(b"ok")


async def test_simulation_runs_in_the_caller_s_task_under_the_timeout(db: StateDB) -> None:
    """No task per simulation: the chaincode coroutine is awaited in place, with a deadline."""
    recorder = TaskRecorder()
    host = ChaincodeHost(recorder, name=NAME, timeout=5.0)
    assert (await _run(host, db, "anything")).payload == b"ok"
    assert recorder.tasks == [asyncio.current_task()]
    untimed = ChaincodeHost(recorder, name=NAME, timeout=None)
    assert (await _run(untimed, db, "anything")).payload == b"ok"
    assert recorder.tasks[-1] is asyncio.current_task()


async def test_host_checks_the_proposal_and_the_chaincode(db: StateDB) -> None:
    host = ChaincodeHost(AssetTransferChaincode(), name=NAME)
    other = Proposal.build(
        creator=make_identity().serialized(),
        channel_id=CHANNEL,
        chaincode_name="other",
        function="ReadAsset",
        args=["a"],
        now=NOW,
    )
    with pytest.raises(ChaincodeHostError, match="not 'basic'"):
        await host.execute(other, db)
    with pytest.raises(ChaincodeHostError, match="neither"):
        ChaincodeHost(object(), name=NAME)


async def test_signed_proposal_reaches_the_chaincode(db: StateDB) -> None:
    user = make_identity()
    proposal = Proposal.build(
        creator=user.serialized(),
        channel_id=CHANNEL,
        chaincode_name=NAME,
        function="CreateAsset",
        args=["a9", "blue", "1", "x", "2"],
        now=NOW,
    ).sign(user.signer)
    result = await ChaincodeHost(AssetTransferContract(), name=NAME).execute(proposal, db)
    assert result.response.status == 200
    assert result.tx_id == proposal.tx_id
    assert result.event.tx_id == proposal.tx_id
