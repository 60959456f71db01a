"""ChaincodeStub: Fabric simulation semantics, queries, composite keys, history, results."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fabric_chaincode_python.fabric_shim import iterators as shim_iterators
from fabric_chaincode_python.fabric_shim.interfaces import ChaincodeStubInterface
from fabric_protos.ledger.queryresult import kv_query_result_pb2
from fabric_protos.peer import proposal_response_pb2

from network.engine.proposal import Proposal
from network.engine.rangescan import QUERY_BATCH
from network.engine.statedb import StateDB, StateReader
from network.engine.stub import (
    ChaincodeStub,
    ChaincodeStubError,
    UnsupportedStubOperation,
)
from tests.network.engine.samples.harness import CHANNEL, NOW, commit, kv_rwset, make_identity

NS = "cc"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[StateDB]:
    with StateDB(tmp_path / "ledger.db") as store:
        yield store


def make_stub(
    state: StateReader,
    function: str = "f",
    args: tuple[str | bytes, ...] = (),
    *,
    sign: bool = False,
    transient: dict[str, bytes] | None = None,
) -> ChaincodeStub:
    user = make_identity()
    proposal = Proposal.build(
        creator=user.serialized(),
        channel_id=CHANNEL,
        chaincode_name=NS,
        function=function,
        args=args,
        transient=transient,
        now=NOW,
    )
    if sign:
        proposal = proposal.sign(user.signer)
    return ChaincodeStub(proposal, state)


async def keys_of(iterator: Any) -> list[str]:
    return [kv.key async for kv in iterator]


def result_rwset(stub: ChaincodeStub) -> Any:
    result = stub.simulation_result(proposal_response_pb2.Response(status=200))
    return kv_rwset(result, NS)


async def test_reads_return_committed_values_and_record_versions(db: StateDB) -> None:
    commit(db, [{NS: {"a": b"1"}}])
    commit(db, [{NS: {"x": b"0"}}, {NS: {"b": b"2"}}])
    stub = make_stub(db)
    assert await stub.get_state("a") == b"1"
    assert await stub.get_state("b") == b"2"
    assert await stub.get_state("missing") == b""  # the shim returns an empty payload
    kv = result_rwset(stub)
    reads = {r.key: r for r in kv.reads}
    assert [r.key for r in kv.reads] == ["a", "b", "missing"]
    assert (reads["a"].version.block_num, reads["a"].version.tx_num) == (0, 0)
    assert (reads["b"].version.block_num, reads["b"].version.tx_num) == (1, 1)
    assert not reads["missing"].HasField("version")  # absent key: read with no version


async def test_reads_see_committed_state_not_own_writes(db: StateDB) -> None:
    commit(db, [{NS: {"k": b"committed"}}])
    stub = make_stub(db)
    await stub.put_state("k", b"mine")
    await stub.put_state("new", "text")
    assert await stub.get_state("k") == b"committed"
    assert await stub.get_state("new") == b""
    assert await keys_of(await stub.get_state_by_range("", "")) == ["k"]


async def test_writes_last_one_wins_and_empty_value_deletes(db: StateDB) -> None:
    stub = make_stub(db)
    await stub.put_state("b", b"first")
    await stub.put_state("b", b"second")
    await stub.put_state("a", b"x")
    await stub.delete_state("a")
    await stub.put_state("c", b"")  # an empty value reaches the peer as nil: a delete
    await stub.put_state("\x00idx\x00k\x00", b"\x00")  # composite keys are written like any key
    kv = result_rwset(stub)
    writes = [(w.key, w.is_delete, w.value) for w in kv.writes]
    assert writes == [
        ("\x00idx\x00k\x00", False, b"\x00"),
        ("a", True, b""),
        ("b", False, b"second"),
        ("c", True, b""),
    ]
    assert not kv.reads


async def test_keys_must_be_non_empty_strings(db: StateDB) -> None:
    stub = make_stub(db)
    with pytest.raises(ChaincodeStubError, match="empty"):
        await stub.put_state("", b"v")
    with pytest.raises(ChaincodeStubError, match="bytes or str"):
        await stub.put_state("k", 5)  # type: ignore[arg-type]
    with pytest.raises(ChaincodeStubError, match="must be a string"):
        await stub.get_state(b"k")  # type: ignore[arg-type]
    with pytest.raises(ChaincodeStubError, match="UTF-8"):
        await stub.put_state("\ud800", b"v")
    with pytest.raises(ChaincodeStubError, match="event payload"):
        stub.set_event("e", 42)  # type: ignore[arg-type]


async def test_range_is_end_exclusive_open_ended_and_excludes_composite_keys(db: StateDB) -> None:
    keys = ["a", "b", "c", "d"]
    composite = "\x00owner~id\x00alice\x00a\x00"
    commit(db, [{NS: {**{k: k.encode() for k in keys}, composite: b"\x00"}}])
    stub = make_stub(db)
    assert await keys_of(await stub.get_state_by_range("b", "d")) == ["b", "c"]
    assert await keys_of(await stub.get_state_by_range("b", "")) == ["b", "c", "d"]
    assert await keys_of(await stub.get_state_by_range("", "c")) == ["a", "b"]
    assert await keys_of(await stub.get_state_by_range("", "")) == keys
    iterator = await stub.get_state_by_range("c", "")
    first = await iterator.__anext__()
    assert isinstance(first, kv_query_result_pb2.KV)
    assert (first.namespace, first.key, first.value) == (NS, "c", b"c")
    with pytest.raises(ChaincodeStubError, match="null character"):
        await stub.get_state_by_range(composite, "")


async def test_range_reads_are_recorded_for_phantom_detection(db: StateDB) -> None:
    commit(db, [{NS: {"a": b"1", "b": b"2", "c": b"3"}}])
    stub = make_stub(db)
    await keys_of(await stub.get_state_by_range("", "c"))
    kv = result_rwset(stub)
    assert not kv.reads  # range reads live in the range query info, not the read set
    (info,) = kv.range_queries_info
    assert (info.start_key, info.end_key, info.itr_exhausted) == ("\x01", "c", True)
    assert [(r.key, r.version.block_num) for r in info.raw_reads.kv_reads] == [("a", 0), ("b", 0)]


async def test_partly_consumed_long_range_records_only_what_was_fetched(db: StateDB) -> None:
    total = QUERY_BATCH * 2 + 30
    keys = [f"k{i:04d}" for i in range(total)]
    commit(db, [{NS: {k: b"v" for k in keys}}])

    stub = make_stub(db)
    iterator = await stub.get_state_by_range("", "")
    seen = [(await iterator.__anext__()).key for _ in range(QUERY_BATCH + 5)]
    await iterator.aclose()
    assert seen == keys[: QUERY_BATCH + 5]
    (info,) = result_rwset(stub).range_queries_info
    # Fetched two batches: the validator re-reads [start, last fetched key].
    assert not info.itr_exhausted
    assert info.end_key == keys[2 * QUERY_BATCH - 1]
    assert len(info.raw_reads.kv_reads) == 2 * QUERY_BATCH

    stub = make_stub(db)
    assert await keys_of(await stub.get_state_by_range("", "")) == keys
    (info,) = result_rwset(stub).range_queries_info
    assert info.itr_exhausted
    assert info.end_key == ""
    assert [r.key for r in info.raw_reads.kv_reads] == keys


async def test_pagination_with_bookmarks_walks_every_key_once(db: StateDB) -> None:
    keys = [f"asset{i:02d}" for i in range(25)]
    commit(db, [{NS: {k: k.encode() for k in keys}}])
    pages, bookmark = [], ""
    while True:
        stub = make_stub(db)
        iterator = await stub.get_state_by_range_with_pagination("", "", 10, bookmark)
        pages.append(await keys_of(iterator))
        assert iterator.metadata.fetched_records_count == len(pages[-1])
        bookmark = iterator.metadata.bookmark
        if not bookmark:
            break
        assert bookmark == keys[10 * len(pages)]
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [k for page in pages for k in page] == keys

    stub = make_stub(db)
    iterator = await stub.get_state_by_range_with_pagination("asset05", "asset08", 10)
    assert await keys_of(iterator) == ["asset05", "asset06", "asset07"]
    assert iterator.metadata.bookmark == ""
    (info,) = result_rwset(stub).range_queries_info
    assert (info.start_key, info.end_key, info.itr_exhausted) == ("asset05", "asset08", True)


async def test_paginated_queries_are_read_only(db: StateDB) -> None:
    commit(db, [{NS: {"a": b"1"}}])
    stub = make_stub(db)
    await stub.get_state_by_range_with_pagination("", "", 5)
    with pytest.raises(ChaincodeStubError, match="paginated query"):
        await stub.put_state("a", b"2")
    stub = make_stub(db)
    await stub.put_state("a", b"2")
    with pytest.raises(ChaincodeStubError, match="read-only"):
        await stub.get_state_by_range_with_pagination("", "", 5)
    with pytest.raises(ChaincodeStubError, match="page size"):
        await make_stub(db).get_state_by_range_with_pagination("", "", 0)


async def test_composite_keys_create_split_and_partial_queries(db: StateDB) -> None:
    stub = make_stub(db)
    key = stub.create_composite_key("owner~id", ["alice", "asset1"])
    assert key == "\x00owner~id\x00alice\x00asset1\x00"
    assert stub.split_composite_key(key) == ("owner~id", ["alice", "asset1"])
    assert stub.split_composite_key(stub.create_composite_key("t", [])) == ("t", [])
    assert stub.split_composite_key("simple") == (None, [])
    for bad in ([""], ["a\x00b"], ["\U0010ffff"]):
        with pytest.raises(ChaincodeStubError):
            stub.create_composite_key("owner~id", bad)
    with pytest.raises(ChaincodeStubError, match="array"):
        stub.create_composite_key("owner~id", "alice")

    index = {
        stub.create_composite_key("owner~id", [owner, asset]): b"\x00"
        for owner, asset in [("alice", "a1"), ("alice", "a2"), ("alicia", "a3"), ("bob", "b1")]
    }
    commit(db, [{NS: {**index, "a1": b"{}", "color~id": b"x"}}])
    stub = make_stub(db)
    by_alice = await keys_of(await stub.get_state_by_partial_composite_key("owner~id", ["alice"]))
    assert [stub.split_composite_key(k)[1] for k in by_alice] == [["alice", "a1"], ["alice", "a2"]]
    everyone = await keys_of(await stub.get_state_by_partial_composite_key("owner~id", []))
    assert len(everyone) == 4
    (first, _) = result_rwset(stub).range_queries_info
    assert first.start_key == "\x00owner~id\x00alice\x00"
    assert first.end_key == "\x00owner~id\x00alice\x00\U0010ffff"

    stub = make_stub(db)
    page = await stub.get_state_by_partial_composite_key_with_pagination("owner~id", [], 3)
    assert len(await keys_of(page)) == 3
    rest = await stub.get_state_by_partial_composite_key_with_pagination(
        "owner~id", [], 3, page.metadata.bookmark
    )
    assert [stub.split_composite_key(k)[1] for k in await keys_of(rest)] == [["bob", "b1"]]
    assert rest.metadata.bookmark == ""


async def test_history_for_key_is_newest_first_with_deletes(db: StateDB) -> None:
    commit(db, [{NS: {"k": b"v1"}}], tx_ids=["t1"])
    commit(db, [{NS: {"k": b"v2"}}], tx_ids=["t2"])
    commit(db, [{NS: {"k": None}}], tx_ids=["t3"])
    stub = make_stub(db)
    iterator = await stub.get_history_for_key("k")
    assert isinstance(iterator, shim_iterators.HistoryQueryIterator)
    mods = [m async for m in iterator]
    assert all(isinstance(m, kv_query_result_pb2.KeyModification) for m in mods)
    assert [(m.tx_id, m.is_delete, m.value) for m in mods] == [
        ("t3", True, b""),
        ("t2", False, b"v2"),
        ("t1", False, b"v1"),
    ]
    assert mods[0].timestamp.seconds == int(NOW.timestamp())
    assert result_rwset(stub) is None  # history reads are not re-validated, so not recorded


async def test_events_one_per_transaction(db: StateDB) -> None:
    stub = make_stub(db)
    stub.set_event("first", b"1")
    stub.set_event("second", "two")
    with pytest.raises(ChaincodeStubError):
        stub.set_event("", b"x")
    result = stub.simulation_result(proposal_response_pb2.Response(status=200))
    assert (result.event.event_name, result.event.payload) == ("second", b"two")
    assert (result.event.chaincode_id, result.event.tx_id) == (NS, stub.get_txid())
    assert result.event_bytes == result.event.SerializeToString()
    assert not result.rwset.ns_rwset  # nothing read or written: no namespace entry


async def test_transaction_context_accessors(db: StateDB) -> None:
    user = make_identity()
    stub = make_stub(db, "Transfer", ("a1", b"bob"), sign=True, transient={"k": b"v"})
    assert isinstance(stub, ChaincodeStubInterface)
    assert stub.get_function_and_parameters() == ("Transfer", ["a1", "bob"])
    assert stub.get_args() == [b"Transfer", b"a1", b"bob"]
    assert stub.get_string_args() == ["Transfer", "a1", "bob"]
    assert stub.get_channel_id() == CHANNEL
    assert stub.get_creator() == {"mspid": "Org1MSP", "idBytes": user.cert_pem()}
    assert stub.get_transient() == {"k": b"v"}
    assert stub.get_tx_timestamp().seconds == int(NOW.timestamp())
    signed = stub.get_signed_proposal()
    assert signed is not None
    assert Proposal.from_signed(signed).tx_id == stub.get_txid()
    assert make_stub(db).get_signed_proposal() is None


async def test_unsupported_features_raise_a_clear_error(db: StateDB) -> None:
    stub = make_stub(db)
    with pytest.raises(UnsupportedStubOperation, match="private data"):
        stub.get_private_data("collection", "k")
    with pytest.raises(NotImplementedError):
        stub.put_private_data("collection", "k", b"v")
    with pytest.raises(UnsupportedStubOperation, match="CouchDB"):
        await stub.get_query_result('{"selector": {}}')
    with pytest.raises(UnsupportedStubOperation):
        await stub.invoke_chaincode("other", ["f"])
    with pytest.raises(UnsupportedStubOperation):
        stub.set_state_validation_parameter("k", b"policy")


async def test_iterators_are_the_shims_types(db: StateDB) -> None:
    commit(db, [{NS: {"a": b"1"}}])
    stub = make_stub(db)
    assert isinstance(await stub.get_state_by_range("", ""), shim_iterators.StateQueryIterator)
    paged = await stub.get_state_by_range_with_pagination("", "", 1)
    assert isinstance(paged, shim_iterators.StateQueryIterator)


async def test_simulation_is_closed_after_results(db: StateDB) -> None:
    stub = make_stub(db)
    result_rwset(stub)
    with pytest.raises(ChaincodeStubError, match="finished"):
        await stub.get_state("a")
    with pytest.raises(ChaincodeStubError, match="finished"):
        await stub.put_state("a", b"1")


async def test_simulating_on_a_snapshot_ignores_concurrent_commits(db: StateDB) -> None:
    commit(db, [{NS: {"a": b"1", "b": b"1"}}])
    with db.snapshot() as view:
        stub = make_stub(view)
        assert await stub.get_state("a") == b"1"
        commit(db, [{NS: {"a": b"2", "b": b"2"}}])
        assert await stub.get_state("b") == b"1"  # same height as the first read
        kv = result_rwset(stub)
    assert {(r.key, r.version.block_num) for r in kv.reads} == {("a", 0), ("b", 0)}
