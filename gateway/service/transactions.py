"""Caller-signed transactions: build and sign (client side), check and hold (gateway side).

The gateway never signs for a caller (``docs/api.md``, "why two calls"). A
client builds the chaincode proposal with its own identity as creator and
signs it (:func:`build_signed_proposal`); the gateway checks it
(:func:`check_proposal`), endorses it and keeps the endorsed, unsigned
transaction in :class:`PendingTransactions` until the same caller sends its
signature over the transaction payload (:func:`sign_transaction` on the
client side), which :func:`check_transaction_signature` verifies before
anything is ordered.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from cryptography import x509

from chaincode.caller import certificate_fingerprint
from chaincode.codec import dumps
from crypto.errors import AccessLedgerError, VerificationError
from crypto.identity import Identity
from crypto.signing import verify
from gateway.errors import Forbidden, GatewayError, NotFound
from network.engine.endorser import Endorsement
from network.engine.proposal import Proposal, Transaction
from network.fabric.transactions import decode_identity

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Distinct certificates whose fingerprint is kept (callers, about 1 KiB each).
_FINGERPRINT_CACHE_SIZE = 4096


# -- client side ------------------------------------------------------------------------


def build_signed_proposal(
    identity: Identity,
    *,
    channel: str,
    chaincode: str,
    function: str,
    argument: Mapping[str, Any],
    now: datetime,
) -> bytes:
    """A ``peer.SignedProposal`` calling ``function(argument)`` as ``identity`` (its bytes).

    ``argument`` is sent as RFC 8785 canonical JSON, the contract's calling
    convention. ``identity`` must hold its private key.
    """
    proposal = Proposal.build(
        creator=identity.serialized(),
        channel_id=channel,
        chaincode_name=chaincode,
        function=function,
        args=[dumps(dict(argument))],
        now=now,
    ).sign(identity.signer)
    data: bytes = proposal.signed_proposal().SerializeToString()
    return data


def sign_transaction(identity: Identity, transaction: bytes) -> bytes:
    """The creator's DER signature over a prepared transaction's payload bytes."""
    return identity.sign(transaction)


# -- gateway side ------------------------------------------------------------------------


def decode_base64(value: str, what: str) -> bytes:
    """Strict base64, or ``422 request_invalid`` naming the member."""
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise GatewayError(
            f"{what} is not valid base64", code="request_invalid", status=422
        ) from None


def _timestamp(proposal: Proposal) -> datetime:
    stamp = proposal.timestamp
    return _EPOCH + timedelta(seconds=int(stamp.seconds), microseconds=int(stamp.nanos) // 1000)


@lru_cache(maxsize=_FINGERPRINT_CACHE_SIZE)
def _fingerprint(pem: bytes) -> str | None:
    """The fingerprint of a PEM creator certificate, or None if it is not one.

    Cached by the exact bytes: a caller's proposals all carry the same
    certificate, and parsing it is a pure function of them.
    """
    try:
        return certificate_fingerprint(x509.load_pem_x509_certificate(pem))
    except ValueError:
        return None


@lru_cache(maxsize=_FINGERPRINT_CACHE_SIZE)
def _caller_fingerprint(certificate: x509.Certificate) -> str:
    """:func:`certificate_fingerprint`, cached (certificates compare and hash by their DER)."""
    return certificate_fingerprint(certificate)


def check_proposal(
    encoded: str,
    *,
    caller: Identity,
    channel: str,
    chaincode: str,
    functions: Collection[str],
    now: datetime,
    max_skew: timedelta,
) -> Proposal:
    """Decode a SignedProposal and check it belongs on this endpoint, from this caller, now.

    The endorser then checks the signature, the creator's MSP membership and
    the transaction id; here the gateway adds what only it knows: the
    function this endpoint takes, that the creator is the authenticated HTTP
    caller (same certificate), and that the proposal's timestamp -- which the
    chaincode uses as the transaction time, and custodians as the start of a
    grant -- is within the clock-skew window of the gateway's clock.
    """
    raw = decode_base64(encoded, "proposal")
    try:
        proposal = Proposal.from_signed(raw)
        function = proposal.args[0].decode("utf-8") if proposal.args else ""
        msp_id, id_bytes = decode_identity(proposal.creator)
    except (AccessLedgerError, UnicodeDecodeError) as exc:
        raise GatewayError(
            "proposal is not a decodable Fabric SignedProposal", code="proposal_invalid"
        ) from exc
    if proposal.signature is None:
        raise GatewayError("proposal is not signed", code="proposal_invalid", tx_id=proposal.tx_id)
    if proposal.channel_id != channel or proposal.chaincode_name != chaincode:
        raise GatewayError(
            f"proposal must call chaincode {chaincode!r} on channel {channel!r}",
            code="proposal_invalid",
            tx_id=proposal.tx_id,
        )
    if function not in functions:
        raise GatewayError(
            f"this endpoint takes {', '.join(sorted(functions))} proposals, not {function!r}",
            code="proposal_invalid",
            tx_id=proposal.tx_id,
        )
    if len(proposal.args) != 2:
        raise GatewayError(
            f"{function} takes exactly one JSON object argument",
            code="proposal_invalid",
            tx_id=proposal.tx_id,
        )
    if msp_id != caller.msp_id or _fingerprint(id_bytes) != _caller_fingerprint(caller.certificate):
        raise Forbidden(
            "the proposal's creator is not the identity that signed this HTTP request",
            code="proposal_creator_mismatch",
            tx_id=proposal.tx_id,
        )
    if abs(_timestamp(proposal) - now) > max_skew:
        raise GatewayError(
            f"the proposal timestamp is more than {int(max_skew.total_seconds())} s from the"
            " gateway's clock",
            code="proposal_time_skew",
            tx_id=proposal.tx_id,
        )
    return proposal


def proposal_argument(proposal: Proposal) -> dict[str, Any]:
    """The proposal's one JSON object argument (already checked to exist)."""
    try:
        value = json.loads(proposal.args[1])
    except ValueError:
        raise GatewayError(
            "the proposal argument is not JSON", code="proposal_invalid", tx_id=proposal.tx_id
        ) from None
    if not isinstance(value, dict):
        raise GatewayError(
            "the proposal argument must be a JSON object",
            code="proposal_invalid",
            tx_id=proposal.tx_id,
        )
    return value


def check_transaction_signature(pending: PendingTransaction, signature: bytes) -> Transaction:
    """The signed transaction, if ``signature`` verifies under the creator's key."""
    try:
        verify(pending.creator.public_key, pending.transaction.payload_bytes, signature)
    except VerificationError:
        raise GatewayError(
            "the signature does not verify over the prepared transaction with the creator's key",
            code="transaction_signature_invalid",
            tx_id=pending.tx_id,
        ) from None
    return pending.transaction.with_signature(signature)


# A hook run after a successful commit: (committed result) -> extra response members.
AfterCommit = Callable[[Any], Any]


@dataclass
class PendingTransaction:
    """An endorsed transaction waiting for its creator's signature."""

    tx_id: str
    function: str
    creator: Identity
    endorsement: Endorsement
    transaction: Transaction
    expires_at: datetime
    argument: dict[str, Any] = field(repr=False)

    @property
    def creator_fingerprint(self) -> str:
        return _caller_fingerprint(self.creator.certificate)


class PendingTransactions:
    """Prepared transactions by id, bound to their creator, forgotten after a TTL."""

    def __init__(self, *, ttl: timedelta, capacity: int) -> None:
        self.ttl = ttl
        self.capacity = capacity
        self._items: OrderedDict[str, PendingTransaction] = OrderedDict()
        self._lock = threading.Lock()

    def add(
        self,
        *,
        function: str,
        creator: Identity,
        endorsement: Endorsement,
        argument: dict[str, Any],
        now: datetime,
    ) -> PendingTransaction:
        pending = PendingTransaction(
            tx_id=endorsement.tx_id,
            function=function,
            creator=creator,
            endorsement=endorsement,
            transaction=endorsement.transaction(),
            expires_at=now + self.ttl,
            argument=argument,
        )
        with self._lock:
            self._expire(now)
            while len(self._items) >= self.capacity:
                self._items.popitem(last=False)
            self._items[pending.tx_id] = pending
        return pending

    def take(self, tx_id: str, caller: Identity, now: datetime) -> PendingTransaction:
        """Remove and return the caller's prepared transaction ``tx_id``, or 404."""
        with self._lock:
            self._expire(now)
            pending = self._items.get(tx_id)
            if pending is None or pending.creator_fingerprint != _caller_fingerprint(
                caller.certificate
            ):
                raise NotFound(
                    f"no prepared transaction {tx_id} of the caller (expired, committed or"
                    " never prepared); propose again",
                    code="transaction_not_found",
                    tx_id=tx_id,
                )
            del self._items[tx_id]
            return pending

    def restore(self, pending: PendingTransaction) -> None:
        """Put back a transaction whose signature was refused, so the caller can retry."""
        with self._lock:
            self._items[pending.tx_id] = pending

    def _expire(self, now: datetime) -> None:
        while self._items:
            tx_id, oldest = next(iter(self._items.items()))
            if oldest.expires_at > now:
                break
            del self._items[tx_id]

    def __len__(self) -> int:
        return len(self._items)
