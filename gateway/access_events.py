"""Checks 1-4 of :mod:`gateway.custodian`: is a committed transaction the caller's live grant?

:func:`verify_access_event` reads a transaction **from the ledger** and
accepts it only if it is a VALID ``RequestAccess`` transaction whose
envelope verifies under its own creator, the creator is the caller, its
``AccessDecided`` event is byte-for-byte what it wrote to state, and the
grant has not expired. Split out of :mod:`gateway.custodian` (which
re-exports every name) to keep the custodian module about keys.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from fabric_protos.msp import identities_pb2

from chaincode import CHAINCODE_NAME
from chaincode.caller import certificate_fingerprint
from chaincode.codec import format_time, parse_time
from chaincode.ledger import ACCESS
from crypto.errors import AccessLedgerError, VerificationError
from crypto.identity import Identity
from crypto.signing import verify
from gateway.errors import Forbidden, GatewayError
from gateway.service.ledger import CommittedTransaction, composite_key
from gateway.service.releases import GrantExpired
from network.fabric.errors import FabricError
from network.fabric.transactions import ENDORSER_TRANSACTION
from network.fabric.validator import ChannelConfig

ACCESS_EVENT_NAME: Final = "AccessDecided"
ACCESS_FUNCTION: Final = "RequestAccess"


class KeyReleaseRefused(Forbidden):
    """The ledger does not back this key release (the detail says which check failed)."""

    code = "key_release_refused"


@dataclass(frozen=True)
class GrantedRecord:
    """One record of a committed grant: which version and which tiers it releases."""

    record_id: str
    record_type: str
    owner_org: str
    version: int
    tiers: tuple[str, ...]


@dataclass(frozen=True)
class VerifiedGrant:
    """An access event the custodians accepted, and until when it releases keys."""

    tx_id: str
    block_number: int
    decided_at: datetime
    expires_at: datetime
    officer_msp_id: str
    officer_fingerprint: str
    officer_certificate: x509.Certificate
    event: Mapping[str, Any]
    granted: tuple[GrantedRecord, ...]


def refuse(detail: str, tx_id: str) -> KeyReleaseRefused:
    return KeyReleaseRefused(f"key release refused: {detail}", tx_id=tx_id)


@functools.lru_cache(maxsize=1024)
def _certificate(pem: bytes) -> x509.Certificate:
    """A creator's certificate, parsed once: the same officers sign tx after tx."""
    return x509.load_pem_x509_certificate(pem)


def _creator_key(tx: CommittedTransaction) -> ec.EllipticCurvePublicKey:
    try:
        certificate = _certificate(tx.transaction.creator_id_bytes)
    except ValueError:
        raise refuse("the transaction creator is not a certificate", tx.tx_id) from None
    key = certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise refuse("the transaction creator has no ECDSA key", tx.tx_id)
    return key


def _written(tx: CommittedTransaction, key: str) -> bytes | None:
    action = tx.transaction.action
    rwset = action.rwset(CHAINCODE_NAME) if action is not None else None
    for write in rwset.writes if rwset is not None else ():
        if write.key == key and not write.is_delete:
            return bytes(write.value)
    return None


def _granted(entries: Any, tx_id: str) -> tuple[GrantedRecord, ...]:
    if not isinstance(entries, list):
        raise refuse("the access event has no grant list", tx_id)
    granted = []
    for entry in entries:
        try:
            tiers = tuple(str(t) for t in entry["tiers"])
            granted.append(
                GrantedRecord(
                    record_id=str(entry["record_id"]),
                    record_type=str(entry["record_type"]),
                    owner_org=str(entry["owner_org"]),
                    version=int(entry["version"]),
                    tiers=tiers,
                )
            )
        except (KeyError, TypeError, ValueError):
            raise refuse("the access event's grant list is malformed", tx_id) from None
    return tuple(granted)


def verify_access_event(
    tx: CommittedTransaction | None,
    *,
    tx_id: str,
    caller: Identity,
    now: datetime,
    ttl: timedelta,
    max_skew: timedelta,
) -> VerifiedGrant:
    """Checks 1-4 of the module docstring on a committed transaction read from the ledger."""
    if tx is None:
        raise GatewayError(
            f"no committed access event {tx_id} signed by the caller",
            code="access_event_not_found",
            status=404,
            tx_id=tx_id,
        )
    if not tx.valid:
        raise refuse(f"the transaction is {tx.validation_code_name}, not VALID", tx_id)
    parsed = tx.transaction
    if parsed.tx_id != tx_id or parsed.header_type != ENDORSER_TRANSACTION:
        raise refuse("the ledger entry is not this endorser transaction", tx_id)
    try:
        verify(_creator_key(tx), parsed.payload, parsed.signature)
    except VerificationError:
        raise refuse("the committed envelope does not verify under its creator", tx_id) from None
    creator = _certificate(parsed.creator_id_bytes)
    fingerprint = certificate_fingerprint(creator)
    if fingerprint != certificate_fingerprint(caller.certificate) or (
        parsed.creator_msp_id != caller.msp_id
    ):
        # Someone else's grant looks exactly like a missing one.
        raise GatewayError(
            f"no committed access event {tx_id} signed by the caller",
            code="access_event_not_found",
            status=404,
            tx_id=tx_id,
        )
    action = parsed.action
    if (
        action is None
        or action.chaincode_name != CHAINCODE_NAME
        or action.function != ACCESS_FUNCTION
    ):
        raise refuse("the transaction is not a RequestAccess call", tx_id)
    event = action.event
    if event is None or event.event_name != ACCESS_EVENT_NAME:
        raise refuse("the transaction emitted no access event", tx_id)
    payload = bytes(event.payload)
    if _written(tx, composite_key(ACCESS, tx_id)) != payload:
        raise refuse("the access event differs from the state the transaction wrote", tx_id)
    try:
        document = json.loads(payload)
        officer = document["officer"]
        decided_at = parse_time(document["decided_at"], what="decided_at")
        names = (document["event_id"], document["tx_id"])
        officer_ids = (officer["msp_id"], officer["cert_fingerprint"])
    except (ValueError, KeyError, TypeError, AccessLedgerError):
        raise refuse("the access event is malformed", tx_id) from None
    if names != (tx_id, tx_id) or officer_ids != (caller.msp_id, fingerprint):
        raise refuse("the access event names another transaction or officer", tx_id)
    if parsed.timestamp is not None and abs(parsed.timestamp - decided_at) > timedelta(seconds=1):
        raise refuse("the access event's time is not its transaction's time", tx_id)
    if decided_at > now + max_skew:
        raise refuse("the access event is dated in the future", tx_id)
    expires_at = decided_at + ttl
    if now >= expires_at:
        raise GrantExpired(
            f"the grant of {tx_id} expired at {format_time(expires_at)}", tx_id=tx_id
        )
    return VerifiedGrant(
        tx_id=tx_id,
        block_number=tx.block_number,
        decided_at=decided_at,
        expires_at=expires_at,
        officer_msp_id=caller.msp_id,
        officer_fingerprint=fingerprint,
        officer_certificate=creator,
        event=document,
        granted=_granted(document.get("granted"), tx_id),
    )


def require_channel_member(
    channel: ChannelConfig,
    msp_id: str,
    certificate: x509.Certificate,
    *,
    now: datetime,
    tx_id: str | None = None,
) -> None:
    """Refuse a release to a certificate the channel config at the release's snapshot refuses.

    The gateway's membership check refuses a revoked caller once its view of
    the channel has caught up with the config block; a custodian checks
    against the config of the very snapshot it releases from, so no key or
    blob leaves after a revocation it could see (I2), however the request
    reached it. Beyond the CRLs this is the MSP's own validation, as the
    endorsers and the validator apply it: the certificate must chain to a
    root the MSP still holds, carry a NodeOU it accepts and be valid at ``now``.
    """
    msp = channel.msps.msps.get(msp_id)
    if msp is not None and msp.revokes(certificate):
        fingerprint = certificate_fingerprint(certificate)
        raise GatewayError(
            f"certificate {fingerprint[:16]}... of {msp_id} has been revoked on the channel"
            f" (config sequence {channel.sequence}); nothing is released",
            code="certificate_revoked",
            status=401,
            tx_id=tx_id,
        )
    serialized = identities_pb2.SerializedIdentity(
        mspid=msp_id, id_bytes=certificate.public_bytes(Encoding.PEM)
    ).SerializeToString()
    try:
        channel.msps.deserialize(serialized, now=now)
    except FabricError as exc:
        fingerprint = certificate_fingerprint(certificate)
        raise GatewayError(
            f"certificate {fingerprint[:16]}... is not a valid {msp_id} identity on the channel"
            f" (config sequence {channel.sequence}): {exc.message}; nothing is released",
            code="certificate_invalid",
            status=401,
            tx_id=tx_id,
        ) from exc


__all__ = [
    "ACCESS_EVENT_NAME",
    "ACCESS_FUNCTION",
    "GrantedRecord",
    "KeyReleaseRefused",
    "VerifiedGrant",
    "refuse",
    "require_channel_member",
    "verify_access_event",
]
