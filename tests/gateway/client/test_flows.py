"""The transaction flow's own logic, driven by a scripted gateway (no network).

The end-to-end tests run every flow against the real gateway; these cover
what a healthy single-client run rarely shows: a commit that lost an MVCC
race is proposed again with a fresh signed document, other invalid commits
are not, and retries stop.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from fabric_protos.peer import proposal_response_pb2

from crypto.consortium import Consortium
from gateway.client import ClientError, CommitInvalid, Operations
from gateway.client.errors import problem_error
from gateway.client.flows import Flow
from gateway.client.http import Call
from network.engine.proposal import Proposal, create_proposal_response, create_transaction

SUBJECT = "ps1:" + "a" * 52
T = Any


def drive(flow: Flow[T], gateway: Callable[[Call], Any]) -> T:
    """Run ``flow`` with ``gateway`` answering each call (or raising its problem)."""
    try:
        call = next(flow)
        while True:
            try:
                answer = gateway(call)
            except ClientError as exc:
                call = flow.throw(exc)
            else:
                call = flow.send(answer)
    except StopIteration as stop:
        return stop.value


class ScriptedGateway:
    """Endorses with a real peer signature; fails the first ``failures`` commits with ``code``."""

    def __init__(self, consortium: Consortium, *, failures: int, code: str) -> None:
        self.peer = consortium.identity("peer0.education")
        self.failures = failures
        self.code = code
        self.proposals: list[Proposal] = []
        self.commits = 0

    def __call__(self, call: Call) -> Any:
        if call.path == "/v1/ledger":
            return {
                "channel": "accessledger",
                "chaincode": "accessledger",
                "height": 5,
                "tip_hash": "00" * 32,
                "policy": {"version": 1, "bundle_hash": "11" * 32},
                "grant_ttl_seconds": 900,
                "max_clock_skew_seconds": 300,
                "pending_ttl_seconds": 120,
            }
        assert call.body is not None
        if call.path.endswith("/commit"):
            self.commits += 1
            tx_id = self.proposals[-1].tx_id
            if self.commits <= self.failures:
                raise problem_error(
                    409, {"code": "commit_invalid", "tx_id": tx_id, "validation_code": self.code}
                )
            return {
                "tx_id": tx_id,
                "function": "RequestAccess",
                "block_number": 7,
                "validation_code": "VALID",
                "result": {},
                "access": {
                    "tx_id": tx_id,
                    "event_id": tx_id,
                    "block_number": 7,
                    "decided_at": "2026-01-01T00:00:00.000000Z",
                    "decision": "denied",
                    "policy": {"version": 1, "bundle_hash": "11" * 32},
                    "emergency": False,
                    "obligations": [],
                    "expires_at": "2026-01-01T00:15:00.000000Z",
                    "recipient": None,
                    "grants": [],
                    "denials": [],
                },
            }
        proposal = Proposal.from_signed(base64.b64decode(call.body["proposal"]))
        self.proposals.append(proposal)
        response = create_proposal_response(
            proposal,
            response=proposal_response_pb2.Response(status=200, payload=b"{}"),
            results=b"",
            events=b"",
            chaincode_name="accessledger",
            chaincode_version="1.0",
            endorser=self.peer.serialized(),
            signer=self.peer.signer,
        )
        payload = create_transaction(proposal, [response]).payload_bytes
        return {
            "tx_id": proposal.tx_id,
            "function": "RequestAccess",
            "transaction": base64.b64encode(payload).decode(),
            "transaction_sha256": hashlib.sha256(payload).hexdigest(),
            "endorsed_by": ["peer0.education"],
            "expires_at": "2026-01-01T00:02:00Z",
        }


def _operations(consortium: Consortium, demo_now: datetime) -> Operations:
    return Operations(
        consortium.identity("officer.education.sz1"), clock=lambda: demo_now, conflict_retries=2
    )


def _document(proposal: Proposal) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(proposal.args[1])["document"]
    return document


def test_a_lost_mvcc_race_is_proposed_again_with_a_fresh_document(
    consortium: Consortium, demo_now: datetime
) -> None:
    gateway = ScriptedGateway(consortium, failures=1, code="MVCC_READ_CONFLICT")
    result = drive(
        _operations(consortium, demo_now).request_access(SUBJECT, ["residence_permit"]), gateway
    )
    first, second = gateway.proposals
    assert first.tx_id != second.tx_id
    assert _document(first)["nonce"] != _document(second)["nonce"]
    assert result.tx_id == second.tx_id
    assert result.decision == "denied"


def test_retries_stop_after_the_configured_number(
    consortium: Consortium, demo_now: datetime
) -> None:
    gateway = ScriptedGateway(consortium, failures=10, code="PHANTOM_READ_CONFLICT")
    with pytest.raises(CommitInvalid) as error:
        drive(_operations(consortium, demo_now).request_access(SUBJECT, ["tax_record"]), gateway)
    assert len(gateway.proposals) == 3  # the first try and two retries
    assert error.value.validation_code == "PHANTOM_READ_CONFLICT"


def test_other_invalid_commits_are_not_retried(consortium: Consortium, demo_now: datetime) -> None:
    gateway = ScriptedGateway(consortium, failures=1, code="ENDORSEMENT_POLICY_FAILURE")
    with pytest.raises(CommitInvalid):
        drive(_operations(consortium, demo_now).request_access(SUBJECT, ["tax_record"]), gateway)
    assert len(gateway.proposals) == 1


def test_requests_that_cannot_be_right_fail_before_anything_is_sent(
    consortium: Consortium, demo_now: datetime
) -> None:
    operations = _operations(consortium, demo_now)

    def nothing(call: Call) -> Any:
        raise AssertionError(f"unexpected call {call}")

    with pytest.raises(ClientError) as emergency:
        drive(operations.request_access(SUBJECT, ["health_record"], emergency=True), nothing)
    assert emergency.value.code == "justification_required"
    with pytest.raises(ClientError) as nothing_named:
        drive(operations.request_access(SUBJECT), nothing)
    assert nothing_named.value.code == "request_invalid"
    with pytest.raises(ClientError) as not_a_pseudonym:
        drive(operations.request_access("ps1:NOT-A-PSEUDONYM", ["tax_record"]), nothing)
    assert not_a_pseudonym.value.code == "subject_invalid"
