"""Block hashing, metadata, orderer signatures and block streams, against Fabric 2.5 output."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from fabric_protos.common import common_pb2
from fabric_protos.msp import identities_pb2

from crypto.errors import VerificationError
from crypto.signing import signer_for, verify
from network.fabric import blocks
from network.fabric.errors import BlockFormatError, BlockIntegrityError
from tests.fabric_fixtures import FABRIC_FIXTURES

FIXTURES = FABRIC_FIXTURES
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())


def _fixture_blocks(folder: str = "blocks") -> list[Any]:
    return [
        blocks.parse_block((FIXTURES / folder / f"{n:06d}.block").read_bytes()) for n in range(25)
    ]


@pytest.fixture(scope="module")
def peer_blocks() -> list[Any]:
    return _fixture_blocks()


# --- DER ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "encoded"),
    [
        (0, "020100"),
        (1, "020101"),
        (127, "02017f"),
        (128, "02020080"),  # high bit set: a leading 00 keeps it positive
        (255, "020200ff"),
        (256, "02020100"),
        (2**63, "0209008000000000000000"),
        (2**64 - 1, "020900ffffffffffffffff"),
    ],
)
def test_der_integer_is_minimal_twos_complement(number: int, encoded: str) -> None:
    header = common_pb2.BlockHeader(number=number, previous_hash=b"", data_hash=b"")
    der = blocks.block_header_bytes(header)
    assert der == bytes.fromhex("30" + f"{len(encoded) // 2 + 4:02x}" + encoded + "04000400")


def test_der_uses_long_form_lengths_for_long_hashes() -> None:
    header = common_pb2.BlockHeader(number=5, previous_hash=b"\x01" * 200, data_hash=b"\x02" * 32)
    der = blocks.block_header_bytes(header)
    # SEQUENCE length 3 + 203 + 34 = 240 -> 81 f0; OCTET STRING of 200 -> 04 81 c8
    assert der[:3] == bytes.fromhex("3081f0")
    assert der[3:6] == bytes.fromhex("020105")
    assert der[6:9] == bytes.fromhex("0481c8")


# --- the Fabric fixtures ------------------------------------------------------------


def test_header_and_data_hashes_match_fabric(peer_blocks: list[Any]) -> None:
    for block, expected in zip(peer_blocks, EXPECTED["blocks"], strict=True):
        assert block.header.number == expected["number"]
        assert blocks.compute_data_hash(block.data).hex() == expected["data_hash"]
        assert block.header.data_hash.hex() == expected["data_hash"]
        assert blocks.block_header_hash(block.header).hex() == expected["header_hash"]
    tip = blocks.block_header_hash(peer_blocks[24].header).hex()
    assert tip == "0ea9928f3d168e1e3c6c4dffcc7310b45c632d36556bd7521bb6fe78288e4669"


def test_chain_verifies_and_links(peer_blocks: list[Any]) -> None:
    assert blocks.verify_chain(peer_blocks) == 25
    for previous, block in itertools.pairwise(peer_blocks):
        assert block.header.previous_hash == blocks.block_header_hash(previous.header)


def test_ledger_bin_is_varint_delimited_blocks() -> None:
    raw = (FIXTURES / "ledger.bin").read_bytes()
    assert hashlib.sha256(raw).hexdigest() == EXPECTED["ledger_bin"]["sha256"]
    frames = list(blocks.iter_delimited(io.BytesIO(raw)))
    assert len(frames) == 25
    for n, frame in enumerate(frames):
        assert frame == (FIXTURES / "blocks" / f"{n:06d}.block").read_bytes()
    parsed = list(blocks.read_block_stream(FIXTURES / "ledger.bin"))
    assert [b.header.number for b in parsed] == list(range(25))


def test_write_block_stream_reproduces_ledger_bin(tmp_path: Path) -> None:
    raw_blocks = [(FIXTURES / "blocks" / f"{n:06d}.block").read_bytes() for n in range(25)]
    out = tmp_path / "ledger.bin"
    assert blocks.write_block_stream(out, raw_blocks) == 25
    assert out.read_bytes() == (FIXTURES / "ledger.bin").read_bytes()
    # Re-serialising the parsed messages gives the same bytes too.
    buffer = io.BytesIO()
    blocks.write_block_stream(buffer, blocks.read_block_stream(FIXTURES / "ledger.bin"))
    assert buffer.getvalue() == out.read_bytes()


def test_metadata_helpers_read_what_fabric_wrote(peer_blocks: list[Any]) -> None:
    for block, expected in zip(peer_blocks, EXPECTED["blocks"], strict=True):
        assert blocks.last_config_index(block) == expected["last_config_index"]
        assert bytes(blocks.transactions_filter(block)).hex() == expected["transactions_filter_hex"]
        stored = block.metadata.metadata[blocks.COMMIT_HASH]
        assert stored.hex() == expected["commit_hash_hex"]
        commit = blocks.commit_hash(block)
        assert (commit or b"").hex() == expected["commit_hash_hex"][4:]
    assert blocks.transactions_filter(peer_blocks[13]) == [0, 11]
    assert blocks.transactions_filter(peer_blocks[14]) == [10]


def test_orderer_copies_share_header_and_data(peer_blocks: list[Any]) -> None:
    orderer_blocks = _fixture_blocks("orderer-blocks")
    for peer, orderer in zip(peer_blocks, orderer_blocks, strict=True):
        assert peer.header == orderer.header
        assert list(peer.data.data) == list(orderer.data.data)
        assert peer.metadata.metadata[blocks.SIGNATURES] == orderer.metadata.metadata[0]
        assert blocks.transactions_filter(orderer) == []
        assert blocks.commit_hash(orderer) is None


def test_orderer_signature_covers_value_header_and_block_header(peer_blocks: list[Any]) -> None:
    """Check the signed-bytes layout with the raw orderer key, independent of MSP code."""
    assert blocks.block_signatures(peer_blocks[0]) == []
    for block in peer_blocks[1:]:
        (signed,) = blocks.block_signatures(block)
        md = blocks.signatures_metadata(block)
        header = common_pb2.SignatureHeader()
        header.ParseFromString(md.signatures[0].signature_header)
        assert signed.data == (
            md.value + md.signatures[0].signature_header + blocks.block_header_bytes(block.header)
        )
        sid = identities_pb2.SerializedIdentity()
        sid.ParseFromString(signed.identity)
        assert sid.mspid == "OrdererMSP"
        key = x509.load_pem_x509_certificate(sid.id_bytes).public_key()
        assert isinstance(key, ec.EllipticCurvePublicKey)
        verify(key, signed.data, signed.signature)


# --- tampering ------------------------------------------------------------------------


def test_flipped_byte_in_envelope_breaks_data_hash(peer_blocks: list[Any]) -> None:
    block = common_pb2.Block()
    block.CopyFrom(peer_blocks[7])
    envelope = bytearray(block.data.data[0])
    envelope[len(envelope) // 2] ^= 0x01
    block.data.data[0] = bytes(envelope)
    with pytest.raises(BlockIntegrityError, match="block 7: data hash") as info:
        blocks.verify_data_hash(block)
    assert info.value.block_number == 7


def test_removed_block_breaks_the_chain(peer_blocks: list[Any]) -> None:
    with pytest.raises(BlockIntegrityError, match="block 11 follows block 9"):
        blocks.verify_chain(peer_blocks[:10] + peer_blocks[11:])


def test_inserted_block_with_recomputed_hashes_breaks_the_next_link(
    peer_blocks: list[Any],
) -> None:
    forged = blocks.new_block(
        5, blocks.block_header_hash(peer_blocks[4].header), [peer_blocks[5].data.data[0]]
    )
    forged.data.data[0] = peer_blocks[6].data.data[0]
    forged.header.data_hash = blocks.compute_data_hash(forged.data)
    chain = [*peer_blocks[:5], forged, *peer_blocks[6:]]
    with pytest.raises(BlockIntegrityError, match="block 6: previous_hash"):
        blocks.verify_chain(chain)


def test_truncated_stream_is_a_format_error() -> None:
    raw = (FIXTURES / "ledger.bin").read_bytes()
    with pytest.raises(BlockFormatError, match="truncated"):
        list(blocks.read_block_stream(io.BytesIO(raw[:-10])))
    with pytest.raises(BlockFormatError, match="length prefix"):
        list(blocks.iter_delimited(io.BytesIO(b"\xff\xff")))


# --- building and signing blocks (what the engine does) -------------------------------


def test_new_block_sign_and_verify_roundtrip() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    creator = identities_pb2.SerializedIdentity(
        mspid="OrdererMSP", id_bytes=b"pem"
    ).SerializeToString()
    block = blocks.new_block(3, b"\x11" * 32, [b"env-a", b"env-b"])
    assert block.header.data_hash == hashlib.sha256(b"env-aenv-b").digest()
    assert len(block.metadata.metadata) == 5
    blocks.sign_block(block, signer=signer_for(key), creator=creator, last_config=2)
    blocks.set_transactions_filter(block, [0, 11])

    decoded = blocks.parse_block(block.SerializeToString())
    assert blocks.last_config_index(decoded) == 2
    legacy = common_pb2.Metadata()
    legacy.ParseFromString(decoded.metadata.metadata[blocks.LAST_CONFIG])
    assert common_pb2.LastConfig.FromString(legacy.value).index == 2
    assert blocks.transactions_filter(decoded) == [0, 11]
    (signed,) = blocks.block_signatures(decoded)
    assert signed.identity == creator
    verify(key.public_key(), signed.data, signed.signature)
    with pytest.raises(ValueError, match="one validation code per transaction"):
        blocks.set_transactions_filter(decoded, [0])

    # A signature does not survive a change of the header it covers.
    decoded.header.number = 4
    (moved,) = blocks.block_signatures(decoded)
    with pytest.raises(VerificationError):
        verify(key.public_key(), moved.data, moved.signature)


def test_commit_hash_roundtrip() -> None:
    block = blocks.new_block(1, b"", [b"x"])
    blocks.set_commit_hash(block, b"\x07" * 32)
    assert blocks.commit_hash(block) == b"\x07" * 32
    assert block.metadata.metadata[blocks.COMMIT_HASH] == b"\x0a\x20" + b"\x07" * 32
