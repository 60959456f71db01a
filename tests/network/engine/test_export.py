"""Exporting the ledger as a file of length-delimited Block messages (Fabric's framing)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from crypto.consortium import Consortium
from network.fabric.blocks import (
    encode_delimited,
    read_block_stream,
    verify_chain,
    write_block_stream,
)
from tests.fabric_fixtures import FABRIC_FIXTURES
from tests.network.engine.test_pipeline import CC, create_args, make_home, open_network


def test_block_framing_is_the_fixture_framing(tmp_path: Path) -> None:
    # Re-encoding Fabric's ledger.bin with the writer export uses gives the same bytes.
    source = FABRIC_FIXTURES / "ledger.bin"
    blocks = list(read_block_stream(source))
    assert len(blocks) == 25
    copy = tmp_path / "copy.bin"
    assert write_block_stream(copy, blocks) == 25
    assert copy.read_bytes() == source.read_bytes()


async def test_export_round_trip(tmp_path: Path) -> None:
    home = make_home(tmp_path, max_message_count=2)
    officer = Consortium.load(home).identity("officer.education.sz1")
    out = tmp_path / "out" / "ledger.bin"
    async with open_network(home) as network:
        await asyncio.gather(
            *(network.submit(officer, CC, "CreateAsset", create_args(f"x{i}")) for i in range(5))
        )
        stored = [network.store.get_block(n) for n in range(network.height)]
        assert network.export(out) == network.height == len(stored)

    assert out.read_bytes() == b"".join(encode_delimited(data) for data in stored if data)
    blocks = list(read_block_stream(out))
    assert [b.SerializeToString() for b in blocks] == stored
    assert verify_chain(blocks) == len(stored)
    assert not list(out.parent.glob("*.partial"))


async def test_export_while_committing_is_a_consistent_prefix(tmp_path: Path) -> None:
    home = make_home(tmp_path, max_message_count=1, batch_timeout_ms=5)
    officer = Consortium.load(home).identity("officer.education.sz1")
    async with open_network(home) as network:
        writers = asyncio.gather(
            *(network.submit(officer, CC, "CreateAsset", create_args(f"y{i}")) for i in range(20))
        )
        exports = []
        for i in range(5):
            await asyncio.sleep(0.01)
            path = tmp_path / f"e{i}.bin"
            exports.append((path, network.export(path)))
        await writers
    for path, count in exports:
        blocks = list(read_block_stream(path))
        assert len(blocks) == count
        assert verify_chain(blocks) == count
