"""Envelope decoding, checked field by field against Fabric's own expected.json."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from fabric_protos.common import common_pb2
from fabric_protos.peer import transaction_pb2

from network.fabric import blocks
from network.fabric import transactions as tx
from network.fabric.errors import TransactionFormatError
from tests.fabric_fixtures import FABRIC_FIXTURES

FIXTURES = FABRIC_FIXTURES
EXPECTED = json.loads((FIXTURES / "expected.json").read_text())
BLOCKS = list(blocks.read_block_stream(FIXTURES / "ledger.bin"))
CASES = [
    (block, index, expected)
    for block, block_expected in zip(BLOCKS, EXPECTED["blocks"], strict=True)
    for index, expected in enumerate(block_expected["transactions"])
]
CASE_IDS = [f"block{b.header.number}-tx{i}" for b, i, _ in CASES]


def _cn(id_bytes: bytes) -> str:
    cert = x509.load_pem_x509_certificate(id_bytes)
    value = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    return value if isinstance(value, str) else value.decode()


def _who(serialized: bytes) -> dict[str, str]:
    msp_id, id_bytes = tx.decode_identity(serialized)
    return {"mspid": msp_id, "subject_cn": _cn(id_bytes)}


def _value(encoded: dict[str, str]) -> bytes:
    if "utf8" in encoded:
        return encoded["utf8"].encode()
    return bytes.fromhex(encoded["hex"])


def _timestamp(text: str) -> int:
    """RFC 3339 with up to nanoseconds -> nanoseconds since the epoch."""
    whole, _, fraction = text.rstrip("Z").partition(".")
    seconds = datetime.fromisoformat(whole).replace(tzinfo=UTC).timestamp()
    return int(seconds) * 1_000_000_000 + int((fraction or "0").ljust(9, "0"))


@pytest.mark.parametrize(("block", "index", "expected"), CASES, ids=CASE_IDS)
def test_headers_and_creator(block: Any, index: int, expected: dict[str, Any]) -> None:
    parsed = tx.parse_envelope(block.data.data[index])
    assert parsed.envelope == block.data.data[index]
    assert parsed.tx_id == expected["tx_id"]
    assert parsed.header_type_name == expected["type"]
    assert parsed.channel_id == expected["channel_id"] == "mychannel"
    assert parsed.timestamp_nanos == _timestamp(expected["timestamp"])
    assert parsed.timestamp is not None
    assert parsed.timestamp.isoformat().startswith(expected["timestamp"][:19])
    if expected["creator"] is None:
        assert parsed.creator == b""
    else:
        assert _who(parsed.creator) == expected["creator"]
        assert parsed.creator_msp_id == expected["creator"]["mspid"]
    env = common_pb2.Envelope.FromString(block.data.data[index])
    assert parsed.signed_data == tx.SignedData(parsed.creator, env.payload, env.signature)
    if parsed.tx_id:
        assert parsed.expected_tx_id == parsed.tx_id


@pytest.mark.parametrize(("block", "index", "expected"), CASES, ids=CASE_IDS)
def test_endorser_action(block: Any, index: int, expected: dict[str, Any]) -> None:
    parsed = tx.parse_envelope(block.data.data[index])
    if expected["type"] != "ENDORSER_TRANSACTION":
        assert parsed.action is None
        return
    (want,) = expected["actions"]
    action = parsed.action
    assert action is not None
    assert parsed.action_count == 1
    assert parsed.chaincode_name == action.chaincode_name == want["chaincode"]
    assert action.function == want["function"]
    assert list(action.args[1:]) == [_value(a) for a in want["args"]]
    assert action.args[0].decode() == want["function"]
    assert action.is_init == want["is_init"]
    assert action.response == tx.ChaincodeResponse(
        want["response"]["status"], want["response"]["message"], _value(want["response"]["payload"])
    )
    assert action.action_chaincode_name == want["chaincode_id_in_action"]["name"]
    assert action.chaincode_version == want["chaincode_id_in_action"]["version"]
    assert [_who(e.endorser) for e in action.endorsements] == want["endorsers"]
    signed = action.endorsement_signed_data()
    assert [s.data for s in signed] == [
        action.proposal_response_payload + e.endorser for e in action.endorsements
    ]
    if "event" in want:
        assert action.event is not None
        assert action.event.chaincode_id == want["event"]["chaincode_id"]
        assert action.event.event_name == want["event"]["event_name"]
        assert action.event.payload == _value(want["event"]["payload"])
        assert action.event.tx_id == parsed.tx_id
    else:
        assert action.event is None
    assert [ns.namespace for ns in action.rwsets] == [ns["namespace"] for ns in want["rwset"]]
    for got, ns in zip(action.rwsets, want["rwset"], strict=True):
        assert [(r.key, None if r.version is None else list(r.version)) for r in got.reads] == [
            (
                r["key"],
                None
                if r["version"] is None
                else [r["version"]["block_num"], r["version"]["tx_num"]],
            )
            for r in ns.get("reads", [])
        ]
        assert [(w.key, w.is_delete, w.value) for w in got.writes] == [
            (w["key"], w["is_delete"], _value(w["value"]) if "value" in w else b"")
            for w in ns.get("writes", [])
        ]
        assert [(c.collection, len(c.reads), len(c.writes)) for c in got.collections] == [
            (c["collection"], c["hashed_reads"], c["hashed_writes"])
            for c in ns.get("collection_hashed_rwset", [])
        ]
        assert got.range_queries == ()
        assert got.has_writes == bool(
            ns.get("writes")
            or any(c["hashed_writes"] for c in ns.get("collection_hashed_rwset", []))
        )


def test_proposal_hash_matches_every_endorsed_payload() -> None:
    for block, index, expected in CASES:
        parsed = tx.parse_envelope(block.data.data[index])
        if parsed.action is None:
            continue
        assert expected["type"] == "ENDORSER_TRANSACTION"
        action = parsed.action
        digest = tx.proposal_hash(
            parsed.channel_header, action.signature_header, action.chaincode_proposal_payload
        )
        assert digest == action.proposal_hash


@pytest.mark.parametrize("number", [0, 1, 2])
def test_config_transactions(number: int) -> None:
    expected = EXPECTED["blocks"][number]["transactions"][0]
    parsed = tx.parse_envelope(BLOCKS[number].data.data[0])
    assert parsed.config_envelope is not None
    config = parsed.config_envelope.config
    assert config.sequence == expected["config_sequence"]
    assert sorted(config.channel_group.groups) == expected["config_groups"]
    assert tx.channel_config(BLOCKS[number].data.data).sequence == number
    signers = {
        tuple(_who(sd.identity).values())
        for sd in tx.config_update_signed_data(parsed.config_envelope)
    }
    assert signers == {tuple(s.values()) for s in expected.get("last_update_signers", [])}


def test_hashed_namespace_naming() -> None:
    assert tx.hashed_namespace("_lifecycle", "_implicit_org_Org1MSP") == (
        "_lifecycle$$h_implicit_org_Org1MSP"
    )


def test_compute_tx_id_is_sha256_of_nonce_and_creator() -> None:
    parsed = tx.parse_envelope(BLOCKS[7].data.data[0])
    assert tx.compute_tx_id(parsed.nonce, parsed.creator) == parsed.tx_id
    assert len(parsed.nonce) == 24
    assert tx.compute_tx_id(parsed.nonce[:-1] + b"\x00", parsed.creator) != parsed.tx_id


# --- malformed input --------------------------------------------------------------


def _code(name: str) -> int:
    return int(transaction_pb2.TxValidationCode.Value(name))


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "NIL_ENVELOPE"),
        (b"\xff\xff\xff", "INVALID_OTHER_REASON"),
        (common_pb2.Envelope(payload=b"\xff\x00").SerializeToString(), "BAD_PAYLOAD"),
        (
            common_pb2.Envelope(
                payload=common_pb2.Payload(data=b"no header").SerializeToString()
            ).SerializeToString(),
            "BAD_COMMON_HEADER",
        ),
    ],
)
def test_malformed_envelopes_carry_fabric_codes(data: bytes, code: str) -> None:
    with pytest.raises(TransactionFormatError) as info:
        tx.parse_envelope(data)
    assert info.value.validation_code == _code(code)
    assert info.value.code == "transaction_malformed"


def test_bad_channel_header_is_a_common_header_error() -> None:
    payload = common_pb2.Payload(header=common_pb2.Header(channel_header=b"\xff\xff"))
    envelope = common_pb2.Envelope(payload=payload.SerializeToString())
    with pytest.raises(TransactionFormatError, match="channel header") as info:
        tx.parse_envelope(envelope.SerializeToString())
    assert info.value.validation_code == _code("BAD_COMMON_HEADER")


def test_unreadable_rwset_is_bad_rwset() -> None:
    with pytest.raises(TransactionFormatError) as info:
        tx.parse_rwset(b"\x12\x05\xff\xff")
    assert info.value.validation_code == _code("BAD_RWSET")


def test_channel_config_rejects_non_config_blocks() -> None:
    with pytest.raises(TransactionFormatError, match="not a config transaction"):
        tx.channel_config(BLOCKS[7].data.data)
    with pytest.raises(TransactionFormatError, match="exactly one"):
        tx.channel_config(BLOCKS[12].data.data)
