"""Fabric fidelity: replay the real Fabric 2.5.16 ledger and reproduce what the peer recorded.

Reads ``ledger.bin`` and every ``blocks/*.block`` / ``orderer-blocks/*.block``
with the engine's own block code and checks the data hashes, the header
chain, the orderer's block signatures, every creator and endorsement
signature against the MSPs of the config block, every validation code
(including block 13's MVCC_READ_CONFLICT and block 14's
ENDORSEMENT_POLICY_FAILURE), the peer's commit hashes and the final state.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from fabric_protos.common import common_pb2
from fabric_protos.peer import transaction_pb2

from crypto.errors import VerificationError
from crypto.signing import P256_ORDER
from network.fabric import blocks
from network.fabric.errors import (
    BlockIntegrityError,
    BlockSignatureError,
    PolicyNotSatisfiedError,
)
from network.fabric.msp import MSPRegistry
from network.fabric.policy import LifecyclePolicies
from network.fabric.replay import LedgerReplay
from network.fabric.transactions import SignedData, config_update_signed_data, parse_envelope
from network.fabric.validator import (
    ChannelConfig,
    code_name,
    validate_block,
    verify_block_signatures,
)
from tests.fabric_fixtures import FABRIC_FIXTURES

FIXTURES = FABRIC_FIXTURES
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())


def _read(folder: str) -> list[Any]:
    return [
        blocks.parse_block((FIXTURES / folder / f"{n:06d}.block").read_bytes()) for n in range(25)
    ]


@pytest.fixture(scope="module")
def ledger() -> list[Any]:
    return list(blocks.read_block_stream(FIXTURES / "ledger.bin"))


@pytest.fixture(scope="module")
def replay(ledger: list[Any]) -> tuple[LedgerReplay, list[Any]]:
    replayer = LedgerReplay()
    return replayer, replayer.replay(ledger)


@pytest.fixture(scope="module")
def msps(ledger: list[Any]) -> MSPRegistry:
    return ChannelConfig.from_block(ledger[0]).msps


def test_ledger_bin_equals_the_block_files(ledger: list[Any]) -> None:
    assert [b.SerializeToString() for b in ledger] == [
        (FIXTURES / "blocks" / f"{n:06d}.block").read_bytes() for n in range(25)
    ]
    assert blocks.verify_chain(ledger) == 25


def test_every_validation_code_is_reproduced(replay: tuple[LedgerReplay, list[Any]]) -> None:
    _, results = replay
    for result, expected in zip(results, EXPECTED["blocks"], strict=True):
        assert result.mismatches == []
        names = [code_name(c) for c in result.validation.codes]
        assert names == [t["validation_code"] for t in expected["transactions"]]
        assert [r.tx_id for r in result.validation.results] == [
            t["tx_id"] for t in expected["transactions"]
        ]


def test_block_13_mvcc_conflict_and_block_14_endorsement_failure(
    replay: tuple[LedgerReplay, list[Any]],
) -> None:
    _, results = replay
    mvcc = results[13].validation.results[1]
    assert mvcc.tx_id == "522f2fb4e5dfedbb78c9b789f084d4e4c1101cdb04194a9d30073702ab81b770"
    assert mvcc.code == transaction_pb2.MVCC_READ_CONFLICT == 11
    assert "simple/'a'" in mvcc.reason
    assert mvcc.writes == ()  # its proposed writes (a=90, b=210) are not applied
    policy = results[14].validation.results[0]
    assert policy.tx_id == "1dc54242f0733949bd65c1196cbf124911b2572099ebf8cad16cbeb461cac617"
    assert policy.code == transaction_pb2.ENDORSEMENT_POLICY_FAILURE == 10
    assert "/Channel/Application/Endorsement" in policy.reason
    assert results[14].validation.writes() == []


def test_lifecycle_transactions_are_validated_by_their_own_policies(
    replay: tuple[LedgerReplay, list[Any]], ledger: list[Any]
) -> None:
    """Approvals write only to the approving org's implicit collection, so one org's
    peer suffices; commits write to ``_lifecycle`` and need MAJORITY. Dropping an
    endorsement from a commit must therefore fail, from an approval not matter."""
    replayer = LedgerReplay()
    for block in ledger[:5]:
        replayer.apply(block)
    channel = replayer.channel
    assert channel is not None
    commit = parse_envelope(ledger[5].data.data[0])
    assert commit.action is not None
    assert len(commit.action.endorsements) == 2
    policies = LifecyclePolicies(channel.policies, replayer.state.value)
    lifecycle = policies.namespace("_lifecycle")
    assert lifecycle is not None
    signed = commit.action.endorsement_signed_data()
    lifecycle.evaluate_signed_data(signed)
    with pytest.raises(PolicyNotSatisfiedError, match="LifecycleEndorsement"):
        lifecycle.evaluate_signed_data(signed[:1])
    org1 = policies.collection("_lifecycle", "_implicit_org_Org1MSP")
    assert org1 is not None
    approval = parse_envelope(ledger[3].data.data[0])
    assert approval.action is not None
    org1.evaluate_signed_data(approval.action.endorsement_signed_data())
    org2 = policies.collection("_lifecycle", "_implicit_org_Org2MSP")
    assert org2 is not None
    with pytest.raises(PolicyNotSatisfiedError):
        org2.evaluate_signed_data(approval.action.endorsement_signed_data())


def test_commit_hashes_match_the_peer(replay: tuple[LedgerReplay, list[Any]]) -> None:
    _, results = replay
    assert results[0].commit_hash_matches is None  # the genesis block has none
    assert [r.commit_hash_matches for r in results[1:]] == [True] * 24


def test_state_after_block_24(replay: tuple[LedgerReplay, list[Any]]) -> None:
    replayer, _ = replay
    simple = replayer.state.namespace("simple")
    assert simple == {"a": b"93", "\x00\U0010ffffinitialized": b"1.0"}
    assert replayer.state.version("simple", "a") == (15, 0)
    assert "b" not in simple
    assert replayer.state.namespace("pykv") == {"color": b"blue", "shape": b"round"}
    assert replayer.state.value("pykv", "size") is None
    definitions = replayer.state.namespace("_lifecycle")
    assert definitions["namespaces/fields/pykv/Sequence"] == b"\x08\x01"


@pytest.mark.parametrize("folder", ["blocks", "orderer-blocks"])
def test_orderer_signatures_satisfy_block_validation(folder: str) -> None:
    chain = _read(folder)
    channel = ChannelConfig.from_block(chain[0])
    assert blocks.verify_chain(chain) == 25
    for block in chain:
        signers = verify_block_signatures(block, channel)
        expected = EXPECTED["blocks"][block.header.number]["orderer_signers"]
        assert [(s.msp_id, s.common_name) for s in signers] == [
            (e["mspid"], e["subject_cn"]) for e in expected
        ]
        assert all(s.node_ou == "orderer" for s in signers)


def test_every_creator_and_endorsement_signature_verifies(
    ledger: list[Any], msps: MSPRegistry
) -> None:
    creators = updates = endorsements = 0
    for block in ledger:
        for raw in block.data.data:
            tx = parse_envelope(raw)
            if tx.creator:
                creator = msps.verify(tx.signed_data, now=tx.timestamp)
                assert creator.node_ou in {"admin", "client", "orderer"}
                creators += 1
            if tx.config_envelope is not None:
                for sd in config_update_signed_data(tx.config_envelope):
                    assert msps.verify(sd).node_ou == "admin"
                    updates += 1
            if tx.action is not None:
                for sd in tx.action.endorsement_signed_data():
                    assert msps.verify(sd, now=tx.timestamp).node_ou == "peer"
                    endorsements += 1
    transactions = [t for b in EXPECTED["blocks"] for t in b["transactions"]]
    assert creators == sum(1 for t in transactions if t["creator"]) == 27
    assert updates == 4  # blocks 1 and 2: the admin's ConfigSignature and envelope signature
    assert endorsements == sum(
        len(a["endorsers"]) for t in transactions for a in t.get("actions", [])
    )


def _high_s(signature: bytes) -> bytes:
    r, s = decode_dss_signature(signature)
    return encode_dss_signature(r, P256_ORDER - s)


def test_high_s_twin_of_a_real_fabric_signature_is_rejected(
    ledger: list[Any], msps: MSPRegistry
) -> None:
    tx = parse_envelope(ledger[7].data.data[0])
    assert tx.action is not None
    good = tx.action.endorsement_signed_data()[0]
    msps.verify(good)
    twin = SignedData(good.identity, good.data, _high_s(good.signature))
    with pytest.raises(VerificationError, match="low-S"):
        msps.verify(twin)
    # In an envelope the twin creator signature makes the transaction invalid.
    env = common_pb2.Envelope.FromString(ledger[7].data.data[0])
    env.signature = _high_s(env.signature)
    result = _validate_single(ledger, 7, env.SerializeToString())
    assert code_name(result.code) == "BAD_CREATOR_SIGNATURE"


def _validate_single(ledger: list[Any], number: int, envelope: bytes) -> Any:
    replayer = LedgerReplay()
    for block in ledger[:number]:
        replayer.apply(block)
    assert replayer.channel is not None
    block = blocks.new_block(number, b"", [envelope])
    result = validate_block(
        block,
        channel=replayer.channel,
        policies=LifecyclePolicies(replayer.channel.policies, replayer.state.value),
        committed_version=replayer.state.version,
        tx_id_exists=replayer.state.tx_exists,
    )
    return result.results[0]


def test_endorsement_swapped_into_a_fabric_transaction_is_caught(ledger: list[Any]) -> None:
    """Moving block 7's endorsements onto block 8's transaction breaks the creator
    signature (the endorsements are inside the signed payload)."""
    env = common_pb2.Envelope.FromString(ledger[8].data.data[0])
    payload = common_pb2.Payload.FromString(env.payload)
    tx = transaction_pb2.Transaction.FromString(payload.data)
    cap = transaction_pb2.ChaincodeActionPayload.FromString(tx.actions[0].payload)
    other = parse_envelope(ledger[7].data.data[0])
    assert other.action is not None
    del cap.action.endorsements[:]
    for e in other.action.endorsements:
        cap.action.endorsements.add(endorser=e.endorser, signature=e.signature)
    tx.actions[0].payload = cap.SerializeToString()
    payload.data = tx.SerializeToString()
    env.payload = payload.SerializeToString()
    assert code_name(_validate_single(ledger, 8, env.SerializeToString()).code) == (
        "BAD_CREATOR_SIGNATURE"
    )


def test_replay_names_the_tampered_block(ledger: list[Any]) -> None:
    flipped = [common_pb2.Block.FromString(b.SerializeToString()) for b in ledger]
    envelope = bytearray(flipped[9].data.data[0])
    envelope[100] ^= 0x40
    flipped[9].data.data[0] = bytes(envelope)
    with pytest.raises(BlockIntegrityError, match="block 9: data hash") as info:
        LedgerReplay().replay(flipped)
    assert info.value.block_number == 9

    with pytest.raises(BlockIntegrityError, match="block 17 follows block 15"):
        LedgerReplay().replay(ledger[:16] + ledger[17:])

    resigned = [common_pb2.Block.FromString(b.SerializeToString()) for b in ledger]
    md = blocks.signatures_metadata(resigned[20])
    md.signatures[0].signature = _high_s(md.signatures[0].signature)
    resigned[20].metadata.metadata[blocks.SIGNATURES] = md.SerializeToString()
    with pytest.raises(BlockSignatureError, match="block 20"):
        LedgerReplay().replay(resigned)


def test_altered_validation_code_is_reported(ledger: list[Any]) -> None:
    altered = [common_pb2.Block.FromString(b.SerializeToString()) for b in ledger]
    blocks.set_transactions_filter(altered[13], [0, 0])
    results = LedgerReplay().replay(altered)
    assert results[13].mismatches == [(1, 0, 11)]
    assert all(r.mismatches == [] for r in results if r.number != 13)
