"""Streams of committed blocks and chaincode events: stored history first, then live."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from crypto.consortium import Consortium
from network.engine.errors import CommitError
from network.engine.network import ChaincodeEventInfo, EmbeddedNetwork
from tests.network.engine.test_pipeline import CC, create_args, make_home, open_network


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return make_home(tmp_path)


async def _take(stream: Any, count: int) -> list[Any]:
    items = []
    async for item in stream:
        items.append(item)
        if len(items) == count:
            break
    return items


async def test_chaincode_events_replay_then_follow_live(home: Path) -> None:
    members = Consortium.load(home)
    officer = members.identity("officer.hrss.sz1")
    async with open_network(home) as network:
        created = await network.submit(officer, CC, "CreateAsset", create_args("e1"))
        with pytest.raises(CommitError):  # invalid: its event must not be delivered
            await network.submit(
                officer, CC, "CreateAsset", create_args("e2"), endorsing_orgs=["HRSS"]
            )
        follower = asyncio.create_task(_take(network.chaincode_events(0, CC), 2))
        await asyncio.sleep(0.05)
        assert not follower.done()
        transferred = await network.submit(officer, CC, "TransferAsset", ["e1", "ann"])
        events: list[ChaincodeEventInfo] = await asyncio.wait_for(follower, 5)

    assert [(e.event_name, e.tx_id, e.block_number) for e in events] == [
        ("CreateAsset", created.tx_id, created.block_number),
        ("TransferAsset", transferred.tx_id, transferred.block_number),
    ]
    assert all(e.chaincode_name == CC for e in events)
    assert json.loads(events[1].payload) == {"From": "tom", "ID": "e1", "To": "ann"}


async def test_events_from_a_later_height_and_of_another_chaincode(home: Path) -> None:
    officer = Consortium.load(home).identity("officer.hrss.sz1")
    async with open_network(home) as network:
        first = await network.submit(officer, CC, "CreateAsset", create_args("h1"))
        second = await network.submit(officer, CC, "CreateAsset", create_args("h2"))
        later = await _take(network.chaincode_events(first.block_number + 1, CC), 1)
        assert [e.tx_id for e in later] == [second.tx_id]
        other = asyncio.create_task(_take(network.chaincode_events(0, "othercc"), 1))
        await asyncio.sleep(0.05)
        assert not other.done()
    assert await asyncio.wait_for(other, 5) == []  # the stream ends when the network closes


async def test_block_stream_from_genesis_then_live_and_ends_on_close(home: Path) -> None:
    officer = Consortium.load(home).identity("officer.hrss.sz1")
    network: EmbeddedNetwork = open_network(home)
    numbers: list[int] = []

    async def follow() -> None:
        async for block in network.blocks(0):
            numbers.append(int(block.header.number))

    follower = asyncio.create_task(follow())
    await asyncio.sleep(0.05)
    assert numbers == [0]
    results = [
        await network.submit(officer, CC, "CreateAsset", create_args(f"b{i}")) for i in range(3)
    ]
    await asyncio.sleep(0.05)
    assert numbers == [0, *(r.block_number for r in results)]
    await network.aclose()
    await asyncio.wait_for(follower, 5)
    assert numbers == list(range(network.height))
