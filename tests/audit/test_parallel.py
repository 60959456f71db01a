"""Signature pre-verification in worker processes: same verdicts, never a false "verified"."""

from __future__ import annotations

from pathlib import Path

from fabric_protos.common import common_pb2

from audit.findings import FindingKind
from audit.pipeline import prevalidated
from audit.signatures import SignatureOracle, identity_digest, signature_key, verify_chunk
from network.fabric import blocks
from network.fabric.transactions import parse_envelope
from tests.audit.conftest import FIXTURE_LEDGER, replay
from tests.audit.forge import load_blocks, save_blocks


def _raw() -> list[bytes]:
    with FIXTURE_LEDGER.open("rb") as stream:
        return list(blocks.iter_delimited(stream))


def test_parallel_replay_gives_the_same_report() -> None:
    sequential = replay(FIXTURE_LEDGER, workers=0).report
    parallel = replay(FIXTURE_LEDGER, workers=2, chunk_bytes=8192).report
    assert parallel.ok
    assert sequential.ok
    assert parallel.stats.signatures == sequential.stats.signatures
    assert parallel.stats.signatures_verified_ahead > 0.9 * parallel.stats.signatures
    assert sequential.stats.signatures_verified_ahead == 0
    assert [t.to_dict() for t in parallel.invalid] == [t.to_dict() for t in sequential.invalid]
    assert parallel.tip_hash == sequential.tip_hash


def test_pipeline_keeps_block_order_and_bounds_read_ahead() -> None:
    raw = _raw()
    oracle = SignatureOracle()
    pulled: list[int] = []

    def source() -> object:
        for index, data in enumerate(raw):
            pulled.append(index)
            yield data

    out = []
    for data in prevalidated(source(), oracle, workers=1, chunk_bytes=4096, ahead=2):  # type: ignore[arg-type]
        out.append(data)
        # Read-ahead is bounded: the chunk being released plus two in flight (fixture
        # blocks are 1-30 KB, so a 4 KB chunk holds one or two blocks).
        assert len(pulled) - len(out) <= 2 * 3
    assert out == raw


def test_worker_keys_bind_the_signed_bytes() -> None:
    """A key vouches for one (signer, bytes, signature) triple, not for other bytes."""
    raw = _raw()
    keys = set(verify_chunk(raw[7:8]))
    tx = parse_envelope(bytes(blocks.parse_block(raw[7]).data.data[0]))
    who = identity_digest(tx.creator)
    assert signature_key(who, tx.payload, tx.signature) in keys
    assert signature_key(who, tx.payload + b"x", tx.signature) not in keys


def test_bad_signature_is_not_vouched_for_by_workers(fixture_copy: Path) -> None:
    """Corrupt a creator signature and re-hash the chain: workers cannot pass it on."""
    ledger = load_blocks(fixture_copy)
    envelope = common_pb2.Envelope.FromString(ledger[8].data.data[0])
    signature = bytearray(envelope.signature)
    signature[-3] ^= 0x01
    envelope.signature = bytes(signature)
    ledger[8].data.data[0] = envelope.SerializeToString()
    save_blocks(fixture_copy, ledger)
    report = replay(fixture_copy, workers=2, chunk_bytes=4096).report
    first = report.findings[0]
    assert (first.kind, first.block, first.tx_index) == (FindingKind.DATA_HASH, 8, 0)
    assert "BAD_CREATOR_SIGNATURE" in first.message
