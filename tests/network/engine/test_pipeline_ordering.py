"""The embedded orderer: block cutting by count, size and timeout; broadcast checks."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml

from crypto.consortium import Consortium
from network.engine.errors import SubmitError
from network.engine.network import EmbeddedNetwork
from network.engine.orderer import ChainHead, Orderer
from network.fabric.blocks import block_header_hash, last_config_index, verify_data_hash
from network.fabric.validator import verify_block_signatures
from network.topology import BatchSettings
from tests.network.engine.test_pipeline import (
    CC,
    block_codes,
    create_args,
    make_home,
    open_network,
)


def _orderer(network: EmbeddedNetwork, batch: BatchSettings, out: list[Any]) -> Orderer:
    identity = network.consortium.identity("orderer0.orderer")
    return Orderer(
        channel=network.channel,
        batch=batch,
        creator=identity.serialized(),
        signer=identity.signer,
        head=ChainHead(network.height, network.tip_hash, 0),
        deliver=out.append,
        clock=network.clock,
    )


@pytest.fixture
def network(tmp_path: Path) -> Any:
    net = open_network(make_home(tmp_path))
    yield net
    net.close()


async def test_cuts_at_max_message_count_then_on_timeout(network: EmbeddedNetwork) -> None:
    out: list[Any] = []
    orderer = _orderer(network, BatchSettings(3, 60, 100_000, 50_000), out)
    for i in range(7):
        orderer.order(f"envelope {i}".encode())

    assert [len(b.data.data) for b in out] == [3, 3]
    assert orderer.pending == 1
    await asyncio.sleep(0.2)
    assert [len(b.data.data) for b in out] == [3, 3, 1]
    assert [bytes(e) for b in out for e in b.data.data] == [
        f"envelope {i}".encode() for i in range(7)
    ]
    # Numbered from the chain head, hash-linked, data-hashed and signed by the orderer.
    assert [b.header.number for b in out] == [1, 2, 3]
    previous = network.tip_hash
    for block in out:
        assert block.header.previous_hash == previous
        verify_data_hash(block)
        assert len(verify_block_signatures(block, network.channel)) == 1
        assert last_config_index(block) == 0
        previous = block_header_hash(block.header)


async def test_timeout_runs_from_the_first_envelope_of_a_batch(network: EmbeddedNetwork) -> None:
    out: list[Any] = []
    orderer = _orderer(network, BatchSettings(10, 150, 100_000, 50_000), out)
    orderer.order(b"first")
    await asyncio.sleep(0.08)
    orderer.order(b"second")
    await asyncio.sleep(0.03)
    assert out == []
    await asyncio.sleep(0.2)
    assert [[bytes(e) for e in b.data.data] for b in out] == [[b"first", b"second"]]


async def test_preferred_max_bytes_splits_batches(network: EmbeddedNetwork) -> None:
    out: list[Any] = []
    orderer = _orderer(network, BatchSettings(10, 5000, 100_000, 100), out)
    orderer.order(b"a" * 60)
    orderer.order(b"b" * 60)  # 120 > 100: the first is cut alone
    orderer.order(b"c" * 150)  # larger than preferred: cuts "b", then travels alone
    orderer.order(b"d" * 10)
    assert [[len(e) for e in b.data.data] for b in out] == [[60], [60], [150]]
    orderer.close()
    assert [[len(e) for e in b.data.data] for b in out][-1] == [10]
    with pytest.raises(Exception, match="closed"):
        orderer.broadcast(b"late")


async def test_network_blocks_follow_the_batch_size(tmp_path: Path) -> None:
    home = make_home(tmp_path, max_message_count=3, batch_timeout_ms=300)
    members = Consortium.load(home)
    officer = members.identity("officer.tax.sz1")
    async with open_network(home) as network:
        results = await asyncio.gather(
            *(network.submit(officer, CC, "CreateAsset", create_args(f"n{i}")) for i in range(7))
        )
        sizes = [len(network.get_block(n).data.data) for n in range(1, network.height)]
    assert sizes == [3, 3, 1]
    assert sorted(r.block_number for r in results) == [1, 1, 1, 2, 2, 2, 3]


async def test_batch_settings_come_from_the_config_block(tmp_path: Path) -> None:
    home = make_home(tmp_path, max_message_count=3)
    open_network(home).close()
    path = home / "network.yaml"
    topology = yaml.safe_load(path.read_text())
    topology["orderer"]["batch"]["max_message_count"] = 50
    path.write_text(yaml.safe_dump(topology))
    network = open_network(home)
    try:
        assert network.batch.max_message_count == 3
        assert network.orderer.batch.max_message_count == 3
    finally:
        network.close()


async def test_envelope_over_absolute_max_bytes_is_refused(tmp_path: Path) -> None:
    home = make_home(tmp_path, absolute_max_bytes=2000, preferred_max_bytes=1000)
    officer = Consortium.load(home).identity("officer.health.sz1")
    async with open_network(home) as network:
        with pytest.raises(SubmitError, match="AbsoluteMaxBytes") as caught:
            await network.submit(officer, CC, "CreateAsset", create_args("big"))
        assert caught.value.tx_id
        assert network.height == 1
        for bad in (b"", b"\xff\xff not protobuf"):
            with pytest.raises(SubmitError):
                await network.broadcast(bad)


async def test_close_commits_what_was_already_accepted(tmp_path: Path) -> None:
    home = make_home(tmp_path, batch_timeout_ms=60_000)
    officer = Consortium.load(home).identity("officer.education.cd1")
    network = open_network(home)
    task = asyncio.create_task(network.submit(officer, CC, "CreateAsset", create_args("late")))
    while network.orderer.pending == 0:
        await asyncio.sleep(0.005)
    await network.aclose()
    result = await task
    assert result.validation_code_name == "VALID"
    reopened = open_network(home)
    try:
        assert reopened.height == result.block_number + 1
        assert block_codes(reopened.get_block(result.block_number)) == ["VALID"]
    finally:
        reopened.close()
    with pytest.raises(SubmitError, match="closed"):
        await network.broadcast(b"anything")
