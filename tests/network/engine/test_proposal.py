"""Proposals and transactions: Fabric Gateway construction, tx ids, signatures, CreateSignedTx."""

from __future__ import annotations

import hashlib

import pytest
from fabric_protos.common import common_pb2
from fabric_protos.msp import identities_pb2
from fabric_protos.peer import (
    chaincode_pb2,
    proposal_pb2,
    proposal_response_pb2,
    transaction_pb2,
)

from crypto.errors import VerificationError
from crypto.signing import verify
from network.engine.proposal import (
    EndorsementMismatchError,
    Proposal,
    ProposalError,
    create_proposal_response,
    create_signed_transaction,
    create_transaction,
)
from network.fabric.transactions import parse_envelope
from tests.fabric_fixtures import FABRIC_FIXTURES
from tests.network.engine.samples.harness import CHANNEL, NOW, make_identity

FIXTURES = FABRIC_FIXTURES


def _proposal(**overrides: object) -> Proposal:
    user = make_identity()
    arguments: dict[str, object] = {
        "creator": user.serialized(),
        "channel_id": CHANNEL,
        "chaincode_name": "basic",
        "function": "CreateAsset",
        "args": ["asset1", b"\x00\xffbinary"],
        "transient": {"secret": b"not on the ledger"},
        "now": NOW,
    }
    arguments.update(overrides)
    return Proposal.build(**arguments)  # type: ignore[arg-type]


def test_proposal_is_built_as_fabric_gateway_builds_it() -> None:
    user = make_identity()
    nonce = bytes(range(24))
    proposal = _proposal(nonce=nonce)

    assert proposal.tx_id == hashlib.sha256(nonce + user.serialized()).hexdigest()
    message = proposal_pb2.Proposal.FromString(bytes(proposal))
    header = common_pb2.Header.FromString(message.header)
    channel_header = common_pb2.ChannelHeader.FromString(header.channel_header)
    assert channel_header.type == common_pb2.HeaderType.Value("ENDORSER_TRANSACTION")
    assert channel_header.channel_id == CHANNEL
    assert channel_header.tx_id == proposal.tx_id
    assert channel_header.epoch == 0
    assert channel_header.timestamp.seconds == int(NOW.timestamp())
    extension = proposal_pb2.ChaincodeHeaderExtension.FromString(channel_header.extension)
    assert extension.chaincode_id.name == "basic"
    signature_header = common_pb2.SignatureHeader.FromString(header.signature_header)
    assert signature_header.nonce == nonce
    creator = identities_pb2.SerializedIdentity.FromString(signature_header.creator)
    assert creator.mspid == "Org1MSP"
    assert creator.id_bytes == user.cert_pem()
    payload = proposal_pb2.ChaincodeProposalPayload.FromString(message.payload)
    assert dict(payload.TransientMap) == {"secret": b"not on the ledger"}
    spec = chaincode_pb2.ChaincodeInvocationSpec.FromString(payload.input)
    assert spec.chaincode_spec.chaincode_id.name == "basic"
    assert list(spec.chaincode_spec.input.args) == [b"CreateAsset", b"asset1", b"\x00\xffbinary"]
    assert proposal.digest() == hashlib.sha256(bytes(proposal)).digest()


def test_fresh_nonces_give_fresh_tx_ids() -> None:
    first, second = _proposal(), _proposal()
    assert first.tx_id != second.tx_id
    assert len(first.nonce) == 24
    assert first.tx_id == hashlib.sha256(first.nonce + first.creator).hexdigest()


def test_signature_verifies_with_the_creator_key() -> None:
    user = make_identity()
    proposal = _proposal().sign(user.signer)
    signed = proposal.signed_proposal()
    verify(user.public_key, signed.proposal_bytes, signed.signature)
    proposal.verify_signature()

    other = make_identity("user2")
    forged = proposal.with_signature(other.sign(bytes(proposal)))
    with pytest.raises(VerificationError):
        forged.verify_signature()
    with pytest.raises(ProposalError, match="not signed"):
        _proposal().signed_proposal()


def test_parsing_round_trip_and_decoded_views() -> None:
    user = make_identity()
    original = _proposal(is_init=True).sign(user.signer)
    parsed = Proposal.from_signed(original.signed_proposal().SerializeToString())
    assert parsed == original
    assert parsed.channel_id == CHANNEL
    assert parsed.chaincode_name == "basic"
    assert parsed.creator_identity == ("Org1MSP", user.cert_pem())
    assert parsed.args == [b"CreateAsset", b"asset1", b"\x00\xffbinary"]
    assert parsed.is_init
    assert parsed.transient == {"secret": b"not on the ledger"}


def test_parsing_rejects_a_tx_id_not_derived_from_nonce_and_creator() -> None:
    proposal = _proposal()
    message = proposal_pb2.Proposal.FromString(bytes(proposal))
    header = common_pb2.Header.FromString(message.header)
    channel_header = common_pb2.ChannelHeader.FromString(header.channel_header)
    channel_header.tx_id = "0" * 64
    header.channel_header = channel_header.SerializeToString()
    message.header = header.SerializeToString()
    with pytest.raises(ProposalError) as info:
        Proposal.from_bytes(message.SerializeToString())
    assert info.value.code == "bad_tx_id"
    with pytest.raises(ProposalError, match="cannot decode"):
        Proposal.from_bytes(b"\xff\xff not a proposal")


def test_proposal_hash_matches_real_fabric_transactions() -> None:
    """Rebuild each Fabric 2.5 endorser transaction's proposal and recompute its hash."""
    checked = 0
    for path in sorted((FIXTURES / "blocks").glob("*.block")):
        block = common_pb2.Block.FromString(path.read_bytes())
        for raw in block.data.data:
            payload = common_pb2.Payload.FromString(common_pb2.Envelope.FromString(raw).payload)
            channel_header = common_pb2.ChannelHeader.FromString(payload.header.channel_header)
            if channel_header.type != common_pb2.HeaderType.Value("ENDORSER_TRANSACTION"):
                continue
            tx = transaction_pb2.Transaction.FromString(payload.data)
            action = transaction_pb2.ChaincodeActionPayload.FromString(tx.actions[0].payload)
            message = proposal_pb2.Proposal(
                header=payload.header.SerializeToString(),
                payload=action.chaincode_proposal_payload,
            )
            proposal = Proposal.from_bytes(message.SerializeToString())
            response_payload = proposal_response_pb2.ProposalResponsePayload.FromString(
                action.action.proposal_response_payload
            )
            assert proposal.tx_id == channel_header.tx_id
            assert proposal.proposal_hash() == response_payload.proposal_hash
            checked += 1
    assert checked >= 20


def _endorse(proposal: Proposal, peer_name: str, msp_id: str, payload: bytes = b"ok") -> object:
    peer = make_identity(peer_name, msp_id, "peer")
    return create_proposal_response(
        proposal,
        response=proposal_response_pb2.Response(status=200, payload=payload),
        results=b"\x08\x00",
        events=b"",
        chaincode_name="basic",
        chaincode_version="1.0",
        endorser=peer.serialized(),
        signer=peer.signer,
    )


def test_signed_transaction_is_assembled_as_create_signed_tx() -> None:
    user = make_identity()
    proposal = _proposal().sign(user.signer)
    responses = [_endorse(proposal, "peer0", "Org1MSP"), _endorse(proposal, "peer0", "Org2MSP")]
    envelope = create_signed_transaction(
        proposal, responses, user.signer, creator=user.serialized()
    )

    verify(user.public_key, envelope.payload, envelope.signature)
    payload = common_pb2.Payload.FromString(envelope.payload)
    assert payload.header.SerializeToString() == proposal.message.header
    tx = transaction_pb2.Transaction.FromString(payload.data)
    assert len(tx.actions) == 1
    assert tx.actions[0].header == proposal.header.signature_header
    action = transaction_pb2.ChaincodeActionPayload.FromString(tx.actions[0].payload)
    stripped = proposal_pb2.ChaincodeProposalPayload.FromString(action.chaincode_proposal_payload)
    assert not stripped.TransientMap  # transient data never reaches the ledger
    assert b"not on the ledger" not in envelope.SerializeToString()
    assert len(action.action.endorsements) == 2
    for endorsement, response in zip(action.action.endorsements, responses, strict=True):
        assert endorsement == response.endorsement  # type: ignore[attr-defined]
        identity = identities_pb2.SerializedIdentity.FromString(endorsement.endorser)
        peer = make_identity("peer0", identity.mspid, "peer")
        verify(
            peer.public_key,
            action.action.proposal_response_payload + endorsement.endorser,
            endorsement.signature,
        )
    prp = proposal_response_pb2.ProposalResponsePayload.FromString(
        action.action.proposal_response_payload
    )
    assert prp.proposal_hash == proposal.proposal_hash()
    chaincode_action = proposal_pb2.ChaincodeAction.FromString(prp.extension)
    assert (chaincode_action.chaincode_id.name, chaincode_action.chaincode_id.version) == (
        "basic",
        "1.0",
    )

    parsed = parse_envelope(envelope.SerializeToString())
    assert parsed.tx_id == proposal.tx_id
    assert parsed.channel_id == CHANNEL


def test_unsigned_transaction_supports_offline_signing() -> None:
    user = make_identity()
    proposal = _proposal().sign(user.signer)
    transaction = create_transaction(proposal, [_endorse(proposal, "peer0", "Org1MSP")])
    assert transaction.tx_id == proposal.tx_id
    assert transaction.digest() == hashlib.sha256(bytes(transaction)).digest()
    with pytest.raises(ProposalError, match="not signed"):
        transaction.envelope()
    signed = transaction.with_signature(user.sign(bytes(transaction)))
    verify(user.public_key, signed.envelope().payload, signed.envelope().signature)


def test_transaction_refuses_mismatched_or_failed_endorsements() -> None:
    user = make_identity()
    proposal = _proposal().sign(user.signer)
    one = _endorse(proposal, "peer0", "Org1MSP", payload=b"one")
    two = _endorse(proposal, "peer0", "Org2MSP", payload=b"two")
    with pytest.raises(EndorsementMismatchError, match="does not match"):
        create_transaction(proposal, [one, two])
    with pytest.raises(EndorsementMismatchError, match="at least one"):
        create_transaction(proposal, [])
    failed = proposal_response_pb2.ProposalResponse(
        response=proposal_response_pb2.Response(status=500, message="boom")
    )
    with pytest.raises(EndorsementMismatchError, match="not successful"):
        create_transaction(proposal, [failed])
    with pytest.raises(ProposalError, match="signer must be the same"):
        create_transaction(proposal, [one], creator=make_identity("user2").serialized())
    with pytest.raises(EndorsementMismatchError, match="cannot be endorsed"):
        create_proposal_response(
            proposal,
            response=proposal_response_pb2.Response(status=500, message="boom"),
            results=b"",
            events=b"",
            chaincode_name="basic",
            chaincode_version="1.0",
            endorser=b"",
            signer=user.signer,
        )
