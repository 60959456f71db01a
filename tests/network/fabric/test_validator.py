"""The validator on a synthetic channel: every code Fabric records, with keys we hold."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from fabric_protos.common import common_pb2
from fabric_protos.ledger.rwset import rwset_pb2
from fabric_protos.ledger.rwset.kvrwset import kv_rwset_pb2
from fabric_protos.peer import proposal_response_pb2, transaction_pb2

from crypto.signing import P256_ORDER
from network.fabric import blocks
from network.fabric.errors import BlockIntegrityError, BlockSignatureError, ConfigError
from network.fabric.policy import EndorsementPolicies, Policy, parse_signature_policy
from network.fabric.replay import LedgerReplay, MemoryState
from network.fabric.transactions import hashed_namespace, parse_envelope
from network.fabric.validator import (
    ChannelConfig,
    StateWrite,
    validate_block,
    verify_block_signatures,
)
from tests.network.fabric.test_support import (
    CHANNEL,
    NOW,
    NS,
    Member,
    Network,
    Org,
    chaincode_event,
    endorser_envelope,
    genesis,
)


def code(name: str) -> int:
    return int(transaction_pb2.TxValidationCode.Value(name))


class Harness:
    """A channel, a committed state and a helper to validate one block of envelopes."""

    def __init__(self, net: Network | None = None) -> None:
        self.net = net or Network()
        self.channel = ChannelConfig.from_block(genesis(self.net.config))
        self.state = MemoryState()
        self.parameters: dict[tuple[str, str, str], bytes] = {}
        self.collection_policies: dict[tuple[str, str], Policy] = {}
        self.number = 1

    def policies(self) -> EndorsementPolicies:
        def namespace(name: str) -> Policy | None:
            if name == "basic":
                return self.channel.policies.get("/Channel/Application/Endorsement")
            return None

        return EndorsementPolicies(
            namespace, lambda ns, coll: self.collection_policies.get((ns, coll))
        )

    def validate(self, *envelopes: bytes, check_time: bool = True) -> Any:
        block = blocks.new_block(self.number, b"\x00" * 32, list(envelopes))
        result = validate_block(
            block,
            channel=self.channel,
            policies=self.policies(),
            committed_version=self.state.version,
            tx_id_exists=self.state.tx_exists,
            committed_range=self.state.range,
            validation_parameter=lambda ns, coll, key: self.parameters.get((ns, coll, key)),
            check_time=check_time,
        )
        self.state.apply(result.writes())
        self.state.tx_ids.update(r.tx_id for r in result.results if r.tx_id)
        self.number += 1
        return result

    def tx(self, *namespaces: NS, creator: Member | None = None, **kwargs: Any) -> bytes:
        net = self.net
        endorsers = kwargs.pop("endorsers", [net.peer1, net.peer2])
        return endorser_envelope(creator or net.client1, endorsers, namespaces, **kwargs)


@pytest.fixture
def h() -> Harness:
    return Harness()


def codes(result: Any) -> list[str]:
    return [r.code_name for r in result.results]


def test_valid_transaction_commits_its_writes(h: Harness) -> None:
    result = h.validate(h.tx(NS("basic", reads=[("a", None)], writes=[("a", b"1"), ("b", b"2")])))
    assert codes(result) == ["VALID"]
    assert result.writes() == [
        StateWrite("basic", "a", b"1", (1, 0)),
        StateWrite("basic", "b", b"2", (1, 0)),
    ]
    assert h.state.namespace("basic") == {"a": b"1", "b": b"2"}
    assert result.results[0].parsed.chaincode_name == "basic"


def test_forged_endorsement_from_a_non_member_key_fails_the_policy(h: Harness) -> None:
    impostor_org = Org("Org2MSP")  # same MSP ID, but a CA the channel does not trust
    impostor = impostor_org.member("peer0.org2", ["peer"])
    result = h.validate(h.tx(NS("basic", writes=[("a", b"1")]), endorsers=[h.net.peer1, impostor]))
    assert codes(result) == ["ENDORSEMENT_POLICY_FAILURE"]
    assert "MAJORITY" in result.results[0].reason
    assert result.writes() == []
    assert h.state.namespace("basic") == {}


def test_missing_or_duplicated_endorsement_fails_the_policy(h: Harness) -> None:
    only_one = h.tx(NS("basic", writes=[("a", b"1")]), endorsers=[h.net.peer1])
    twice = h.tx(NS("basic", writes=[("a", b"1")]), endorsers=[h.net.peer1, h.net.peer1])
    client = h.tx(NS("basic", writes=[("a", b"1")]), endorsers=[h.net.peer1, h.net.client2])
    assert codes(h.validate(only_one, twice, client)) == ["ENDORSEMENT_POLICY_FAILURE"] * 3


def test_endorsement_signature_over_other_bytes_is_ignored(h: Harness) -> None:
    bogus = proposal_response_pb2.Endorsement(
        endorser=h.net.peer2.serialized, signature=h.net.peer2.sign(b"something else")
    )
    tx = h.tx(
        NS("basic", writes=[("a", b"1")]), endorsers=[h.net.peer1], extra_endorsements=[bogus]
    )
    assert codes(h.validate(tx)) == ["ENDORSEMENT_POLICY_FAILURE"]


def _high_s(signature: bytes) -> bytes:
    r, s = decode_dss_signature(signature)
    return encode_dss_signature(r, P256_ORDER - s)


def test_high_s_signatures_are_rejected(h: Harness) -> None:
    # The creator's signature in high-S form is mathematically valid but Fabric rejects it.
    env = common_pb2.Envelope.FromString(h.tx(NS("basic", writes=[("a", b"1")])))
    env.signature = _high_s(env.signature)
    # An endorsement in high-S form is dropped, so the policy fails.
    good = h.tx(NS("basic", writes=[("b", b"1")]), endorsers=[h.net.peer1])
    prp = _prp_of(good)
    high = proposal_response_pb2.Endorsement(
        endorser=h.net.peer2.serialized,
        signature=_high_s(h.net.peer2.sign(prp + h.net.peer2.serialized)),
    )
    tx = h.tx(NS("basic", writes=[("b", b"1")]), endorsers=[h.net.peer1], extra_endorsements=[high])
    result = h.validate(env.SerializeToString(), tx)
    assert codes(result) == ["BAD_CREATOR_SIGNATURE", "ENDORSEMENT_POLICY_FAILURE"]
    assert "low-S" in result.results[0].reason


def _prp_of(envelope: bytes) -> bytes:
    action = parse_envelope(envelope).action
    assert action is not None
    return action.proposal_response_payload


def test_creator_checks(h: Harness) -> None:
    stranger = Org("Org3MSP").member("user", ["client"])
    tampered = common_pb2.Envelope.FromString(h.tx(NS("basic", writes=[("a", b"1")])))
    payload = bytearray(tampered.payload)
    payload[-1] ^= 1
    tampered.payload = bytes(payload)
    result = h.validate(
        h.tx(NS("basic", writes=[("a", b"1")]), creator=stranger),
        tampered.SerializeToString(),
    )
    assert codes(result) == ["BAD_CREATOR_SIGNATURE", "BAD_CREATOR_SIGNATURE"]
    assert "unknown MSP" in result.results[0].reason


def test_undecodable_creator_is_a_bad_creator_signature(h: Harness) -> None:
    env = common_pb2.Envelope.FromString(h.tx(NS("basic", writes=[("a", b"1")])))
    payload = common_pb2.Payload.FromString(env.payload)
    payload.header.signature_header = common_pb2.SignatureHeader(
        creator=b"\xff\xff", nonce=b"n"
    ).SerializeToString()
    env.payload = payload.SerializeToString()
    parsed = parse_envelope(env.SerializeToString())
    assert parsed.creator == b"\xff\xff"
    assert parsed.creator_msp_id == ""
    assert codes(h.validate(env.SerializeToString())) == ["BAD_CREATOR_SIGNATURE"]


def test_tx_id_must_be_hash_of_nonce_and_creator(h: Harness) -> None:
    result = h.validate(h.tx(NS("basic", writes=[("a", b"1")]), tx_id="ab" * 32))
    assert codes(result) == ["BAD_PROPOSAL_TXID"]


def test_duplicate_tx_ids_in_ledger_and_in_block(h: Harness) -> None:
    first = h.tx(NS("basic", writes=[("a", b"1")]))
    assert codes(h.validate(first)) == ["VALID"]
    second = h.tx(NS("basic", writes=[("b", b"1")]))
    assert codes(h.validate(first, second, second)) == [
        "DUPLICATE_TXID",
        "VALID",
        "DUPLICATE_TXID",
    ]


def test_mvcc_conflict_within_block_and_against_committed_state(h: Harness) -> None:
    h.validate(h.tx(NS("basic", writes=[("a", b"100")])))  # block 1 tx 0
    t0 = h.tx(NS("basic", reads=[("a", (1, 0))], writes=[("a", b"90")]))
    t1 = h.tx(NS("basic", reads=[("a", (1, 0))], writes=[("a", b"80")]), creator=h.net.client2)
    result = h.validate(t0, t1)
    assert codes(result) == ["VALID", "MVCC_READ_CONFLICT"]
    assert h.state.value("basic", "a") == b"90"
    assert h.state.version("basic", "a") == (2, 0)
    stale = h.tx(NS("basic", reads=[("a", (1, 0))], writes=[("a", b"70")]))
    absent = h.tx(NS("basic", reads=[("z", (1, 0))], writes=[("y", b"1")]))
    assert codes(h.validate(stale, absent)) == ["MVCC_READ_CONFLICT", "MVCC_READ_CONFLICT"]


def test_blind_writes_and_deletes(h: Harness) -> None:
    h.validate(h.tx(NS("basic", writes=[("a", b"1"), ("b", b"2")])))
    result = h.validate(h.tx(NS("basic", writes=[("b", None)])))
    assert codes(result) == ["VALID"]
    assert result.writes() == [StateWrite("basic", "b", None, (2, 0))]
    assert h.state.namespace("basic") == {"a": b"1"}


def _range(start: str, end: str, reads: list[tuple[str, tuple[int, int]]], exhausted: bool = True):
    info = kv_rwset_pb2.RangeQueryInfo(start_key=start, end_key=end, itr_exhausted=exhausted)
    info.raw_reads.kv_reads.extend(
        kv_rwset_pb2.KVRead(key=k, version=kv_rwset_pb2.Version(block_num=b, tx_num=t))
        for k, (b, t) in reads
    )
    return info


def test_phantom_reads(h: Harness) -> None:
    h.validate(h.tx(NS("basic", writes=[("k1", b"1"), ("k3", b"3"), ("z", b"9")])))
    seen = [("k1", (1, 0)), ("k3", (1, 0))]
    same = h.tx(NS("basic", ranges=[_range("k", "l", seen)], writes=[("x", b"1")]))
    assert codes(h.validate(same)) == ["VALID"]
    insert = h.tx(NS("basic", writes=[("k2", b"2")]))
    phantom = h.tx(NS("basic", ranges=[_range("k", "l", seen)], writes=[("x", b"2")]))
    assert codes(h.validate(insert, phantom)) == ["VALID", "PHANTOM_READ_CONFLICT"]
    # Not exhausted: end_key is the last key seen (k2) and is included; k3 is beyond it.
    partial = h.tx(NS("basic", ranges=[_range("k", "k2", [("k1", (1, 0)), ("k2", (3, 0))], False)]))
    assert codes(h.validate(partial)) == ["VALID"]
    h.validate(h.tx(NS("basic", writes=[("k2", None)])))
    gone = h.tx(NS("basic", ranges=[_range("k", "k2", [("k1", (1, 0)), ("k2", (3, 0))], False)]))
    assert codes(h.validate(gone)) == ["PHANTOM_READ_CONFLICT"]


def _query_reads_hash(reads: list[tuple[str, tuple[int, int]]]) -> bytes:
    message = kv_rwset_pb2.QueryReads(
        kv_reads=[
            kv_rwset_pb2.KVRead(key=k, version=kv_rwset_pb2.Version(block_num=b, tx_num=t))
            for k, (b, t) in reads
        ]
    )
    return hashlib.sha256(message.SerializeToString()).digest()


def _merkle_range(max_level: int, hashes: list[bytes]) -> Any:
    info = kv_rwset_pb2.RangeQueryInfo(start_key="k", end_key="l", itr_exhausted=True)
    info.reads_merkle_hashes.CopyFrom(
        kv_rwset_pb2.QueryReadsMerkleSummary(
            max_degree=2, max_level=max_level, max_level_hashes=hashes
        )
    )
    return info


def test_phantom_reads_with_merkle_summaries(h: Harness) -> None:
    keys = [f"k{i}" for i in range(7)]
    h.validate(h.tx(NS("basic", writes=[(k, b"v") for k in keys[:5]])))
    reads = [(k, (1, 0)) for k in keys[:5]]
    # Fabric with maxDegree 2: leaves hash groups of 3 reads; 5 reads -> level 1 [h(0..2), h(3,4)]
    five = _merkle_range(1, [_query_reads_hash(reads[:3]), _query_reads_hash(reads[3:])])
    assert codes(h.validate(h.tx(NS("basic", ranges=[five])))) == ["VALID"]
    h.validate(h.tx(NS("basic", writes=[(k, b"v") for k in keys[5:]])))  # block 3
    reads += [(k, (3, 0)) for k in keys[5:]]
    level1 = [
        _query_reads_hash(reads[0:3]),
        _query_reads_hash(reads[3:6]),
        _query_reads_hash(reads[6:]),
    ]
    seven = _merkle_range(2, [hashlib.sha256(b"".join(level1)).digest()])
    stale = _merkle_range(1, [_query_reads_hash(reads[:3]), _query_reads_hash(reads[3:5])])
    assert codes(
        h.validate(h.tx(NS("basic", ranges=[seven])), h.tx(NS("basic", ranges=[stale])))
    ) == [
        "VALID",
        "PHANTOM_READ_CONFLICT",
    ]


def test_undefined_chaincode_wrong_channel_and_bad_event(h: Harness) -> None:
    undefined = h.tx(NS("other", writes=[("a", b"1")]), chaincode="other")
    cc2cc = h.tx(NS("basic", writes=[("a", b"1")]), NS("other", writes=[("b", b"1")]))
    wrong_channel = h.tx(NS("basic", writes=[("a", b"1")]), channel="elsewhere")
    bad_event = h.tx(NS("basic"), event=chaincode_event("other", "e", b""))
    good_event = h.tx(NS("basic"), event=chaincode_event("basic", "e", b"p"))
    no_version = h.tx(NS("basic"), version="")
    result = h.validate(undefined, cc2cc, wrong_channel, bad_event, good_event, no_version)
    assert codes(result) == [
        "INVALID_CHAINCODE",
        "INVALID_CHAINCODE",
        "TARGET_CHAIN_NOT_FOUND",
        "INVALID_OTHER_REASON",
        "VALID",
        "INVALID_CHAINCODE",
    ]
    assert result.results[4].parsed.action.event.payload == b"p"


def test_read_only_transaction_still_needs_the_chaincode_policy(h: Harness) -> None:
    result = h.validate(
        h.tx(NS("basic", reads=[("a", None)]), endorsers=[h.net.peer1]),
        h.tx(NS("basic", reads=[("a", None)])),
    )
    assert codes(result) == ["ENDORSEMENT_POLICY_FAILURE", "VALID"]


def test_proposal_hash_mismatch_is_invalid_endorser_transaction(h: Harness) -> None:
    # A creator who edits the proposal after endorsement re-signs the envelope,
    # but the endorsed proposal hash no longer matches.
    env = common_pb2.Envelope.FromString(h.tx(NS("basic", writes=[("a", b"1")])))
    payload = common_pb2.Payload.FromString(env.payload)
    tx = transaction_pb2.Transaction.FromString(payload.data)
    cap = transaction_pb2.ChaincodeActionPayload.FromString(tx.actions[0].payload)
    cap.chaincode_proposal_payload += b"\x1a\x00"
    tx.actions[0].payload = cap.SerializeToString()
    payload.data = tx.SerializeToString()
    env.payload = payload.SerializeToString()
    env.signature = h.net.client1.sign(env.payload)
    assert codes(h.validate(env.SerializeToString())) == ["INVALID_ENDORSER_TRANSACTION"]


def _resign(envelope: bytes, creator: Member, edit: Any) -> bytes:
    env = common_pb2.Envelope.FromString(envelope)
    payload = common_pb2.Payload.FromString(env.payload)
    tx = transaction_pb2.Transaction.FromString(payload.data)
    edit(tx)
    payload.data = tx.SerializeToString()
    env.payload = payload.SerializeToString()
    env.signature = creator.sign(env.payload)
    return env.SerializeToString()


def test_malformed_bodies_get_fabric_codes_in_fabric_order(h: Harness) -> None:
    bad_rwset = h.tx(NS("basic"), results=b"\x12\x03\xff\xff\xff")
    unsigned_bad_rwset = common_pb2.Envelope.FromString(bad_rwset)
    unsigned_bad_rwset.signature = h.net.client2.sign(unsigned_bad_rwset.payload)
    two_actions = _resign(
        h.tx(NS("basic", writes=[("a", b"1")])),
        h.net.client1,
        lambda tx: tx.actions.append(tx.actions[0]),
    )
    no_creator = h.tx(
        NS("basic", writes=[("a", b"1")]),
        action_header=common_pb2.SignatureHeader(nonce=b"n").SerializeToString(),
    )
    garbage_cap = _resign(
        h.tx(NS("basic", writes=[("a", b"1")])),
        h.net.client1,
        lambda tx: setattr(tx.actions[0], "payload", b"\xff\xff"),
    )
    result = h.validate(
        bad_rwset, unsigned_bad_rwset.SerializeToString(), two_actions, no_creator, garbage_cap
    )
    assert codes(result) == [
        "BAD_RWSET",
        "BAD_CREATOR_SIGNATURE",  # the signature is checked before the body
        "INVALID_ENDORSER_TRANSACTION",
        "INVALID_ENDORSER_TRANSACTION",
        "INVALID_ENDORSER_TRANSACTION",
    ]
    assert result.results[0].parsed.action_error.validation_code == code("BAD_RWSET")


def test_certificate_validity_at_the_transaction_time(h: Harness) -> None:
    late = h.net.org1.member("late", ["client"], not_after=NOW + timedelta(hours=1))
    later = NOW + timedelta(days=2)
    tx = h.tx(NS("basic", writes=[("a", b"1")]), creator=late, when=later)
    assert codes(h.validate(tx)) == ["BAD_CREATOR_SIGNATURE"]
    assert "not valid at" in h.validate(tx).results[0].reason
    # Fabric's own MSP ignores expiry (FAB-3678); without the time check the tx is valid.
    again = h.tx(NS("basic", writes=[("a", b"1")]), creator=late, when=later)
    assert codes(h.validate(again, check_time=False)) == ["VALID"]


def test_state_based_endorsement_overrides_the_chaincode_policy(h: Harness) -> None:
    org2_only = parse_signature_policy("OR('Org2MSP.peer')").SerializeToString()
    h.parameters[("basic", "", "guarded")] = org2_only
    by_org1 = h.tx(NS("basic", writes=[("guarded", b"1")]), endorsers=[h.net.peer1])
    by_org2 = h.tx(NS("basic", writes=[("guarded", b"2")]), endorsers=[h.net.peer2])
    both = h.tx(NS("basic", writes=[("guarded", b"3"), ("free", b"1")]))
    assert codes(h.validate(by_org1, by_org2, both)) == [
        "ENDORSEMENT_POLICY_FAILURE",
        "VALID",
        "VALID",
    ]


def test_key_policy_changed_earlier_in_block_invalidates_later_writers(h: Harness) -> None:
    change = h.tx(
        NS("basic", metadata=[("k", {"VALIDATION_PARAMETER": b"\x00"})]),
    )
    writer = h.tx(NS("basic", writes=[("k", b"1")]))
    other = h.tx(NS("basic", writes=[("j", b"1")]))
    assert codes(h.validate(change, writer, other)) == [
        "VALID",
        "ENDORSEMENT_POLICY_FAILURE",
        "VALID",
    ]


def test_collection_writes_use_the_collection_policy_and_hashed_versions(h: Harness) -> None:
    h.collection_policies[("basic", "secret")] = h.channel.policies.get(
        "/Channel/Application/Org1MSP/Endorsement"
    )
    key_hash = hashlib.sha256(b"k").digest()
    hashed = kv_rwset_pb2.HashedRWSet(
        hashed_writes=[kv_rwset_pb2.KVWriteHash(key_hash=key_hash, value_hash=b"\x01" * 32)]
    )
    coll = rwset_pb2.CollectionHashedReadWriteSet(
        collection_name="secret", hashed_rwset=hashed.SerializeToString()
    )
    result = h.validate(
        h.tx(NS("basic", collections=[coll]), endorsers=[h.net.peer1]),
        h.tx(NS("basic", collections=[coll]), endorsers=[h.net.peer2]),
    )
    assert codes(result) == ["VALID", "ENDORSEMENT_POLICY_FAILURE"]
    space = hashed_namespace("basic", "secret")
    assert h.state.version(space, key_hash.hex()) == (1, 0)
    read = kv_rwset_pb2.HashedRWSet(
        hashed_reads=[
            kv_rwset_pb2.KVReadHash(key_hash=key_hash, version=kv_rwset_pb2.Version(block_num=9))
        ]
    )
    stale = rwset_pb2.CollectionHashedReadWriteSet(
        collection_name="secret", hashed_rwset=read.SerializeToString()
    )
    assert codes(h.validate(h.tx(NS("basic", collections=[stale])))) == ["MVCC_READ_CONFLICT"]


# --- whole blocks: orderer signatures and replay -----------------------------------------


def test_engine_style_blocks_replay_and_tampering_is_caught() -> None:
    net = Network()
    h = Harness(net)
    block0 = genesis(net.config)
    block1 = net.block(1, block0, [h.tx(NS("basic", writes=[("a", b"1")]))])
    block2 = net.block(
        2,
        block1,
        [
            h.tx(NS("basic", reads=[("a", (1, 0))], writes=[("a", b"2")])),
            h.tx(NS("basic", reads=[("a", (1, 0))], writes=[("a", b"3")])),
        ],
    )
    blocks.set_transactions_filter(block1, [0])
    blocks.set_transactions_filter(block2, [0, 11])

    def policies(channel: ChannelConfig, state: MemoryState) -> EndorsementPolicies:
        return EndorsementPolicies(
            lambda ns: (
                channel.policies.get("/Channel/Application/Endorsement") if ns == "basic" else None
            )
        )

    replay = LedgerReplay(policies=policies)
    results = replay.replay([block0, block1, block2])
    assert [r.mismatches for r in results] == [[], [], []]
    assert [len(r.orderer_signers) for r in results] == [0, 1, 1]
    assert replay.state.namespace("basic") == {"a": b"2"}
    assert replay.height == 3

    # A block signed by a peer instead of the orderer fails BlockValidation.
    forged = net.block(3, block2, [h.tx(NS("basic", writes=[("b", b"1")]))])
    blocks.sign_block(forged, signer=net.peer1.sign, creator=net.peer1.serialized, last_config=0)
    with pytest.raises(BlockSignatureError, match="block 3: orderer signatures"):
        replay.apply(forged)
    unsigned = blocks.new_block(3, blocks.block_header_hash(block2.header), [b"x"])
    with pytest.raises(BlockSignatureError, match="no orderer signature"):
        verify_block_signatures(unsigned, replay.channel)

    # A recorded code that differs from the recomputed one is reported.
    replay2 = LedgerReplay(policies=policies)
    blocks.set_transactions_filter(block2, [0, 0])
    assert replay2.replay([block0, block1, block2])[2].mismatches == [(1, 0, 11)]

    with pytest.raises(BlockIntegrityError, match="not a genesis block"):
        LedgerReplay(policies=policies).apply(block1)


def test_channel_config_from_block_rejects_other_blocks() -> None:
    net = Network()
    with pytest.raises(ConfigError, match="not a config block"):
        ChannelConfig.from_block(blocks.new_block(1, b"", [b"a", b"b"]))
    channel = ChannelConfig.from_block(genesis(net.config))
    assert channel.channel_id == CHANNEL
    assert channel.sequence == 0
    assert sorted(channel.msps.msps) == ["OrdererMSP", "Org1MSP", "Org2MSP"]
