"""The caller's half of a caller-signed transaction: proposals, signed documents, checks.

The gateway never holds a caller's key (``docs/api.md``, "why two calls"),
so the SDK builds and signs everything that goes on the ledger in the
caller's name:

* the chaincode **proposal** (creator = the caller's ``SerializedIdentity``,
  one RFC 8785 canonical-JSON argument), signed with the caller's key;
* the **signed documents** some functions take (access requests, consents,
  consent revocations: ``chaincode/signed.py``), signed the same way;
* the **prepared transaction** the gateway returns, which the caller signs
  only after :func:`check_prepared` has confirmed it is the transaction of
  *this* proposal -- same header (so same transaction id, creator and
  timestamp) and same chaincode call -- so a gateway cannot obtain the
  caller's signature over something the caller did not ask for.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from fabric_protos.common import common_pb2 as _common_pb2
from fabric_protos.peer import transaction_pb2 as _transaction_pb2
from google.protobuf.message import DecodeError

from chaincode.signed import ACCESS_REQUEST_FORMAT, CONSENT_FORMAT, CONSENT_REVOCATION_FORMAT
from crypto.identity import Identity
from gateway.client.errors import ProtocolError
from network.engine.proposal import Proposal
from policies.canonical import canonical_json

# The generated protobuf modules ship without type stubs; use them untyped.
common_pb2: Any = _common_pb2
transaction_pb2: Any = _transaction_pb2

#: Random bytes in a signed document's nonce (32 characters of base64url).
_NONCE_BYTES: Final = 24


def ledger_time(moment: datetime) -> str:
    """``YYYY-MM-DDTHH:MM:SS.ffffffZ``: the ledger's time format (UTC, fixed width)."""
    if moment.tzinfo is None:
        raise ValueError("moment must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def new_document_nonce() -> str:
    """A fresh nonce for a signed document (the contract refuses a signer's reused nonce)."""
    return secrets.token_urlsafe(_NONCE_BYTES)


def text_hash(text: str) -> str:
    """Lowercase hex SHA-256 of ``text`` (UTF-8): how the ledger refers to free text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def build_proposal(
    identity: Identity,
    *,
    channel: str,
    chaincode: str,
    function: str,
    argument: Mapping[str, Any],
    now: datetime,
) -> Proposal:
    """The signed proposal calling ``function(argument)`` with ``identity`` as creator."""
    return Proposal.build(
        creator=identity.serialized(),
        channel_id=channel,
        chaincode_name=chaincode,
        function=function,
        args=[canonical_json(dict(argument))],
        now=now,
    ).sign(identity.signer)


def encode_proposal(proposal: Proposal) -> str:
    """Base64 of the ``peer.SignedProposal``: the ``proposal`` member of endorse requests."""
    data: bytes = proposal.signed_proposal().SerializeToString()
    return b64(data)


def sign_document(identity: Identity, document: Mapping[str, Any]) -> dict[str, Any]:
    """``{"document", "signature"}``: the argument of functions taking a signed document.

    The signature is the identity's ECDSA P-256 (low-S, DER) over RFC 8785
    canonical JSON of ``document``; the contract checks it was made by the
    transaction's creator.
    """
    signature = identity.sign(canonical_json(dict(document)))
    return {"document": dict(document), "signature": b64(signature)}


def access_request_document(
    *,
    subject: str,
    tier: str,
    purpose: str,
    record_types: Sequence[str] | None,
    record_ids: Sequence[str] | None,
    case_ref: str | None,
    emergency: bool,
    justification_hash: str | None,
    now: datetime,
) -> dict[str, Any]:
    """An ``accessledger-access-request/1`` document (``docs/chaincode.md``, RequestAccess)."""
    document: dict[str, Any] = {
        "format": ACCESS_REQUEST_FORMAT,
        "subject": subject,
        "tier": tier,
        "purpose": purpose,
        "case_ref": case_ref,
        "emergency": emergency,
        "justification_hash": justification_hash,
        "nonce": new_document_nonce(),
        "timestamp": ledger_time(now),
    }
    if record_types is not None:
        document["record_types"] = list(record_types)
    if record_ids is not None:
        document["record_ids"] = list(record_ids)
    return document


def consent_document(
    *,
    subject: str,
    grantee_org: str,
    purpose: str,
    record_types: Sequence[str],
    max_tier: str,
    expires_at: datetime,
    now: datetime,
) -> dict[str, Any]:
    """An ``accessledger-consent/1`` document (``docs/chaincode.md``, GrantConsent)."""
    return {
        "format": CONSENT_FORMAT,
        "subject": subject,
        "grantee_org": grantee_org,
        "purpose": purpose,
        "record_types": list(record_types),
        "max_tier": max_tier,
        "expires_at": ledger_time(expires_at),
        "nonce": new_document_nonce(),
        "timestamp": ledger_time(now),
    }


def revocation_document(*, consent_id: str, now: datetime) -> dict[str, Any]:
    """An ``accessledger-consent-revocation/1`` document (RevokeConsent)."""
    return {
        "format": CONSENT_REVOCATION_FORMAT,
        "consent_id": consent_id,
        "nonce": new_document_nonce(),
        "timestamp": ledger_time(now),
    }


def check_prepared(proposal: Proposal, prepared: Mapping[str, Any]) -> bytes:
    """The payload bytes to sign, once they are shown to be this proposal's transaction.

    Checks the gateway's answer: the transaction id, the SHA-256 it states,
    that the ``common.Payload`` header is the proposal's own header (channel,
    transaction id, timestamp, creator, nonce) and that its single action
    carries the proposal's own chaincode call. Raises :class:`ProtocolError`.
    """
    tx_id = prepared.get("tx_id")
    if tx_id != proposal.tx_id:
        raise ProtocolError(
            f"the gateway prepared transaction {tx_id!r} for proposal {proposal.tx_id}",
            tx_id=proposal.tx_id,
        )
    try:
        payload_bytes = base64.b64decode(str(prepared["transaction"]), validate=True)
        payload = common_pb2.Payload.FromString(payload_bytes)
        transaction = transaction_pb2.Transaction.FromString(payload.data)
        actions = list(transaction.actions)
        action_payload = (
            transaction_pb2.ChaincodeActionPayload.FromString(actions[0].payload)
            if len(actions) == 1
            else None
        )
    except (KeyError, ValueError, DecodeError) as exc:
        raise ProtocolError(
            "the prepared transaction is not a decodable Fabric payload", tx_id=proposal.tx_id
        ) from exc
    if hashlib.sha256(payload_bytes).hexdigest() != prepared.get("transaction_sha256"):
        raise ProtocolError(
            "the prepared transaction does not match its stated SHA-256", tx_id=proposal.tx_id
        )
    header = proposal.header
    same_header = bytes(payload.header.channel_header) == bytes(header.channel_header) and bytes(
        payload.header.signature_header
    ) == bytes(header.signature_header)
    same_call = (
        action_payload is not None
        and bytes(actions[0].header) == bytes(header.signature_header)
        and bytes(action_payload.chaincode_proposal_payload) == proposal.payload_for_transaction()
    )
    if not (same_header and same_call):
        raise ProtocolError(
            "the prepared transaction is not the transaction of the proposal this client signed;"
            " refusing to sign it",
            tx_id=proposal.tx_id,
        )
    return payload_bytes
