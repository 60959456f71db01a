"""Proposals and signed documents as the contract expects them; prepared transactions checked."""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timedelta
from typing import Any

import pytest
from fabric_protos.peer import proposal_response_pb2

from chaincode.codec import parse_time
from chaincode.signed import ACCESS_REQUEST_FORMAT, CONSENT_FORMAT, parse_signed
from crypto.consortium import Consortium
from crypto.identity import Identity
from crypto.signing import verify
from gateway.client import ProtocolError
from gateway.client.proposals import (
    access_request_document,
    build_proposal,
    check_prepared,
    consent_document,
    encode_proposal,
    sign_document,
    text_hash,
)
from network.engine.proposal import (
    Proposal,
    Transaction,
    create_proposal_response,
    create_transaction,
)
from policies.canonical import canonical_json


@pytest.fixture
def officer(consortium: Consortium) -> Identity:
    return consortium.identity("officer.education.sz1")


def _proposal(officer: Identity, now: datetime, **argument: Any) -> Proposal:
    return build_proposal(
        officer,
        channel="accessledger",
        chaincode="accessledger",
        function="RequestAccess",
        argument=argument or {"a": 1},
        now=now,
    )


def _endorsed(proposal: Proposal, peer: Identity) -> Transaction:
    response = create_proposal_response(
        proposal,
        response=proposal_response_pb2.Response(status=200, payload=b"{}"),
        results=b"",
        events=b"",
        chaincode_name="accessledger",
        chaincode_version="1.0",
        endorser=peer.serialized(),
        signer=peer.signer,
    )
    return create_transaction(proposal, [response])


def _prepared(transaction: Transaction, tx_id: str | None = None) -> dict[str, str]:
    return {
        "tx_id": tx_id or transaction.tx_id,
        "transaction": base64.b64encode(transaction.payload_bytes).decode(),
        "transaction_sha256": hashlib.sha256(transaction.payload_bytes).hexdigest(),
    }


def test_proposal_is_signed_by_its_creator_with_one_canonical_json_argument(
    officer: Identity, demo_now: datetime
) -> None:
    proposal = _proposal(officer, demo_now, z=1, a={"b": [1, 2]})
    received = Proposal.from_signed(base64.b64decode(encode_proposal(proposal)))
    received.verify_signature()
    assert received.creator == officer.serialized()
    assert received.args == [b"RequestAccess", canonical_json({"z": 1, "a": {"b": [1, 2]}})]
    assert received.channel_id == "accessledger"


def test_prepared_transaction_of_this_proposal_is_accepted(
    officer: Identity, consortium: Consortium, demo_now: datetime
) -> None:
    proposal = _proposal(officer, demo_now)
    transaction = _endorsed(proposal, consortium.identity("peer0.education"))
    assert check_prepared(proposal, _prepared(transaction)) == transaction.payload_bytes


def test_a_substituted_transaction_is_refused_before_signing(
    officer: Identity, consortium: Consortium, demo_now: datetime
) -> None:
    peer = consortium.identity("peer0.education")
    mine = _proposal(officer, demo_now, subject="mine")
    other = _endorsed(_proposal(officer, demo_now, subject="someone else"), peer)
    # The other transaction, presented under my proposal's id.
    with pytest.raises(ProtocolError, match="not the transaction of the proposal"):
        check_prepared(mine, _prepared(other, tx_id=mine.tx_id))
    # Or honestly labelled, but not the one I proposed.
    with pytest.raises(ProtocolError, match="prepared transaction"):
        check_prepared(mine, _prepared(other))
    genuine = _prepared(_endorsed(mine, peer))
    with pytest.raises(ProtocolError, match="SHA-256"):
        check_prepared(mine, {**genuine, "transaction_sha256": "0" * 64})
    with pytest.raises(ProtocolError, match="decodable"):
        check_prepared(mine, {**genuine, "transaction": "***"})


def test_signed_access_request_is_accepted_by_the_contract_parser(
    officer: Identity, demo_now: datetime
) -> None:
    document = access_request_document(
        subject="ps1:" + "a" * 52,
        tier="T1",
        purpose="school_enrolment",
        record_types=["residence_permit"],
        record_ids=None,
        case_ref=None,
        emergency=False,
        justification_hash=None,
        now=demo_now,
    )
    argument = sign_document(officer, document)
    signed = parse_signed(argument, ACCESS_REQUEST_FORMAT)
    verify(officer.public_key, signed.signed_bytes, signed.signature)
    assert parse_time(document["timestamp"], what="timestamp") == demo_now
    assert "record_ids" not in document
    again = access_request_document(
        subject="ps1:" + "a" * 52,
        tier="T1",
        purpose="school_enrolment",
        record_types=None,
        record_ids=["r1"],
        case_ref="C-1",
        emergency=True,
        justification_hash=text_hash("why"),
        now=demo_now,
    )
    assert again["nonce"] != document["nonce"]
    assert again["justification_hash"] == hashlib.sha256(b"why").hexdigest()


def test_consent_document_has_the_contract_format(officer: Identity, demo_now: datetime) -> None:
    document = consent_document(
        subject="ps1:" + "b" * 52,
        grantee_org="PublicSecurity",
        purpose="points_hukou",
        record_types=["tax_record"],
        max_tier="T2",
        expires_at=demo_now + timedelta(days=30),
        now=demo_now,
    )
    assert document["format"] == CONSENT_FORMAT
    parse_signed(sign_document(officer, document), CONSENT_FORMAT)
    assert parse_time(document["expires_at"], what="x") == demo_now + timedelta(days=30)
