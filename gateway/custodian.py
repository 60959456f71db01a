"""Key custodians: release a tier key only against a committed, valid, permitting access event (I2).

Each department's custodian holds that department's X25519 custodian key;
every tier key of the department's records is stored sealed to it. Given a
transaction id and the authenticated caller, :meth:`Custodians.verify`
reads the **ledger** -- never the HTTP request -- and accepts the grant only if

1. the transaction is committed with validation code ``VALID``;
2. its envelope verifies under the creator certificate in its own header
   (a block edited on disk after commit fails here), the creator is the
   caller (same certificate fingerprint), and it called ``RequestAccess`` on
   the AccessLedger chaincode;
3. its ``AccessDecided`` chaincode event is byte-for-byte the access event the
   same transaction wrote to state, names this transaction and this officer;
4. ``now`` is before the event's transaction time plus the grant TTL (and the
   transaction time is not in the future beyond the clock-skew window).

:meth:`Custodians.release` then re-seals, for each granted record, exactly
the tiers the event grants, after checking that the stored sealed key opens
the ciphertext the ledger record names for that version and tier, and only to
the X25519 key registered on the ledger for the officer. Every release is
appended to ``HOME/custodians/<Org>/releases.jsonl`` (fsynced) *before* the
key leaves the custodian (:mod:`gateway.service.releases`; the format is in
``docs/api.md``); the same entries feed the blob grants that
``GET /v1/blobs/{sha256}`` consults.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Protocol

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from chaincode import CHAINCODE_NAME
from chaincode.caller import certificate_fingerprint
from chaincode.codec import format_time, parse_time
from chaincode.ledger import ACCESS, ENC_KEY, RECORD_VERSION, sequence_key
from crypto.envelope import reseal_key
from crypto.errors import AccessLedgerError, DecryptionError, VerificationError
from crypto.identity import Identity
from crypto.signing import verify
from gateway.errors import Conflict, Forbidden, GatewayError
from gateway.service.ledger import CommittedTransaction, composite_key
from gateway.service.releases import (
    RELEASE_FORMAT,
    GrantExpired,
    GrantIndex,
    GrantRequired,
    ReleaseLog,
    release_log_path,
)
from gateway.store import DepartmentStore, RecordErasedError, StoreError
from network.fabric.transactions import ENDORSER_TRANSACTION

ACCESS_EVENT_NAME: Final = "AccessDecided"
ACCESS_FUNCTION: Final = "RequestAccess"


class KeyReleaseRefused(Forbidden):
    """The ledger does not back this key release (the detail says which check failed)."""

    code = "key_release_refused"


class KeyNotRegistered(Conflict):
    code = "key_not_registered"


class LedgerReader(Protocol):
    """What a custodian reads from the ledger."""

    def committed(self, tx_id: str) -> CommittedTransaction | None: ...

    def state(self, key: str) -> bytes | None: ...

    def states(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values at ``keys`` from one consistent snapshot of committed state."""
        ...


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
    event: Mapping[str, Any]
    granted: tuple[GrantedRecord, ...]


@dataclass(frozen=True)
class ReleasedTier:
    """A tier key re-sealed to the officer, and the ciphertext it opens."""

    org: str
    record_id: str
    version: int
    tier: str
    content_address: str
    size: int
    sealed_key: bytes


def _refuse(detail: str, tx_id: str) -> KeyReleaseRefused:
    return KeyReleaseRefused(f"key release refused: {detail}", tx_id=tx_id)


def _creator_key(tx: CommittedTransaction) -> ec.EllipticCurvePublicKey:
    try:
        certificate = x509.load_pem_x509_certificate(tx.transaction.creator_id_bytes)
    except ValueError:
        raise _refuse("the transaction creator is not a certificate", tx.tx_id) from None
    key = certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise _refuse("the transaction creator has no ECDSA key", tx.tx_id)
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
        raise _refuse("the access event has no grant list", tx_id)
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
            raise _refuse("the access event's grant list is malformed", tx_id) from None
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
        raise _refuse(f"the transaction is {tx.validation_code_name}, not VALID", tx_id)
    parsed = tx.transaction
    if parsed.tx_id != tx_id or parsed.header_type != ENDORSER_TRANSACTION:
        raise _refuse("the ledger entry is not this endorser transaction", tx_id)
    try:
        verify(_creator_key(tx), parsed.payload, parsed.signature)
    except VerificationError:
        raise _refuse("the committed envelope does not verify under its creator", tx_id) from None
    fingerprint = certificate_fingerprint(x509.load_pem_x509_certificate(parsed.creator_id_bytes))
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
        raise _refuse("the transaction is not a RequestAccess call", tx_id)
    event = action.event
    if event is None or event.event_name != ACCESS_EVENT_NAME:
        raise _refuse("the transaction emitted no access event", tx_id)
    payload = bytes(event.payload)
    if _written(tx, composite_key(ACCESS, tx_id)) != payload:
        raise _refuse("the access event differs from the state the transaction wrote", tx_id)
    try:
        document = json.loads(payload)
        officer = document["officer"]
        decided_at = parse_time(document["decided_at"], what="decided_at")
        names = (document["event_id"], document["tx_id"])
        officer_ids = (officer["msp_id"], officer["cert_fingerprint"])
    except (ValueError, KeyError, TypeError, AccessLedgerError):
        raise _refuse("the access event is malformed", tx_id) from None
    if names != (tx_id, tx_id) or officer_ids != (caller.msp_id, fingerprint):
        raise _refuse("the access event names another transaction or officer", tx_id)
    if parsed.timestamp is not None and abs(parsed.timestamp - decided_at) > timedelta(seconds=1):
        raise _refuse("the access event's time is not its transaction's time", tx_id)
    if decided_at > now + max_skew:
        raise _refuse("the access event is dated in the future", tx_id)
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
        event=document,
        granted=_granted(document.get("granted"), tx_id),
    )


class KeyCustodian:
    """One department's custodian: its key, its store and its release log."""

    def __init__(
        self, org: str, private_key: bytes, store: DepartmentStore, log: ReleaseLog
    ) -> None:
        self.org = org
        self._private_key = private_key
        self.store = store
        self.log = log

    def reseal(
        self,
        grant: VerifiedGrant,
        record: GrantedRecord,
        stored_record: bytes | None,
        recipient_public: bytes,
    ) -> list[ReleasedTier]:
        """The granted tiers of ``record`` re-sealed to ``recipient_public`` (not yet logged).

        ``stored_record`` is the committed state at the record version's key
        (:func:`record_version_key`), as the ledger holds it.
        """
        if stored_record is None:
            raise _refuse(
                f"record {record.record_id} v{record.version} is not on the ledger", grant.tx_id
            )
        on_ledger = json.loads(stored_record)
        if (
            on_ledger.get("owner_org") != self.org
            or on_ledger.get("record_type") != record.record_type
        ):
            raise _refuse(f"record {record.record_id} is not a {self.org} record", grant.tx_id)
        released = []
        for tier in record.tiers:
            address = on_ledger.get("tiers", {}).get(tier, {}).get("content_address")
            try:
                entry = self.store.get_tier_key(
                    record_id=record.record_id, version=record.version, tier=tier
                )
            except RecordErasedError as exc:
                raise GatewayError(
                    exc.message, code="record_erased", status=410, tx_id=grant.tx_id
                ) from exc
            except StoreError as exc:
                raise _refuse(
                    f"{self.org} holds no key for {record.record_id} v{record.version} {tier}",
                    grant.tx_id,
                ) from exc
            if entry.address != address:
                raise _refuse(
                    f"the stored key of {record.record_id} {tier} opens another ciphertext"
                    " than the ledger names",
                    grant.tx_id,
                )
            try:
                sealed = reseal_key(entry.sealed_key, self._private_key, recipient_public)
            except DecryptionError as exc:
                raise GatewayError(
                    f"the {self.org} custodian cannot open the stored key of {record.record_id}",
                    code="custodian_failed",
                    status=500,
                    tx_id=grant.tx_id,
                ) from exc
            released.append(
                ReleasedTier(
                    self.org,
                    record.record_id,
                    record.version,
                    tier,
                    entry.address,
                    entry.size,
                    sealed,
                )
            )
        return released


def record_version_key(record: GrantedRecord) -> str:
    """The state key of the ledger's copy of one record version."""
    return composite_key(RECORD_VERSION, record.record_id, sequence_key(record.version))


def registered_key(ledger: LedgerReader, msp_id: str, fingerprint: str, *, tx_id: str) -> bytes:
    """The officer's X25519 public key from the ledger's identity registry."""
    return _registered_key(ledger.state(composite_key(ENC_KEY, msp_id, fingerprint)), tx_id=tx_id)


def _registered_key(data: bytes | None, *, tx_id: str) -> bytes:
    if data is None:
        raise KeyNotRegistered(
            "the officer has no X25519 key on the ledger (RegisterEncryptionKey);"
            " register one, then fetch the grant again",
            tx_id=tx_id,
        )
    try:
        key = base64.b64decode(json.loads(data)["public_key"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise _refuse("the registered encryption key is malformed", tx_id) from None
    if len(key) != 32:
        raise _refuse("the registered encryption key is malformed", tx_id)
    return key


def release_entry(
    released: ReleasedTier, grant: VerifiedGrant, recipient_public: bytes, now: datetime
) -> dict[str, Any]:
    """The key-release log line of one release (no personal data)."""
    return {
        "format": RELEASE_FORMAT,
        "released_at": format_time(now),
        "org": released.org,
        "tx_id": grant.tx_id,
        "block_number": grant.block_number,
        "record_id": released.record_id,
        "version": released.version,
        "tier": released.tier,
        "content_address": released.content_address,
        "officer_msp_id": grant.officer_msp_id,
        "officer_fingerprint": grant.officer_fingerprint,
        "recipient_key_sha256": hashlib.sha256(recipient_public).hexdigest(),
        "expires_at": format_time(grant.expires_at),
    }


def _utc(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now.astimezone(UTC)


class Custodians:
    """Every department's custodian, the checks before any release, and the blob grants."""

    def __init__(
        self,
        *,
        home: Path,
        custodian_keys: Mapping[str, bytes],
        stores: Any,
        ledger: LedgerReader,
        grant_ttl: timedelta,
        max_skew: timedelta,
        now: datetime | None = None,
    ) -> None:
        """``custodian_keys`` maps each department to its X25519 custodian private key;
        ``stores`` is a :class:`gateway.store.StoreRegistry` (``store(org)``)."""
        self.home = Path(home)
        self.stores = stores
        self.ledger = ledger
        self.grant_ttl = grant_ttl
        self.max_skew = max_skew
        self._keys = dict(custodian_keys)
        self._custodians: dict[str, KeyCustodian] = {}
        self._lock = threading.Lock()
        self.grants = GrantIndex()
        if now is not None:
            for org in self._keys:
                self.grants.load(
                    ReleaseLog(release_log_path(self.home, org)).entries(), now=_utc(now)
                )

    def custodian(self, org: str) -> KeyCustodian:
        """The custodian of ``org`` (refuses an organisation without a custodian key)."""
        with self._lock:
            found = self._custodians.get(org)
            if found is None:
                key = self._keys.get(org)
                if key is None:
                    raise GatewayError(
                        f"{org} has no key custodian", code="custodian_failed", status=500
                    )
                found = KeyCustodian(
                    org, key, self.stores.store(org), ReleaseLog(release_log_path(self.home, org))
                )
                self._custodians[org] = found
            return found

    def verify(self, tx_id: str, caller: Identity, now: datetime) -> VerifiedGrant:
        """Read ``tx_id`` from the ledger and accept it as the caller's live grant, or raise."""
        return verify_access_event(
            self.ledger.committed(tx_id),
            tx_id=tx_id,
            caller=caller,
            now=_utc(now),
            ttl=self.grant_ttl,
            max_skew=self.max_skew,
        )

    def release(self, grant: VerifiedGrant, now: datetime) -> tuple[bytes, list[ReleasedTier]]:
        """Re-seal every granted tier to the officer's registered key; log before returning.

        Returns the recipient public key and the released tiers. All checks run
        before anything is logged or returned: one bad record refuses the lot.
        """
        now = _utc(now)
        # The officer's key and every granted record version, from one snapshot.
        stored = self.ledger.states(
            [
                composite_key(ENC_KEY, grant.officer_msp_id, grant.officer_fingerprint),
                *(record_version_key(record) for record in grant.granted),
            ]
        )
        recipient = _registered_key(stored[0], tx_id=grant.tx_id)
        by_org: dict[str, list[ReleasedTier]] = {}
        for record, stored_record in zip(grant.granted, stored[1:], strict=True):
            custodian = self.custodian(record.owner_org)
            by_org.setdefault(record.owner_org, []).extend(
                custodian.reseal(grant, record, stored_record, recipient)
            )
        released: list[ReleasedTier] = []
        for org, tiers in by_org.items():
            self.custodian(org).log.append([release_entry(t, grant, recipient, now) for t in tiers])
            for tier in tiers:
                self.grants.add(
                    tier.content_address, org, grant.officer_fingerprint, grant.expires_at
                )
            released.extend(tiers)
        return recipient, released

    def blob(self, address: str, caller: Identity, now: datetime) -> bytes:
        """The ciphertext at ``address`` if a live release to ``caller`` covers it."""
        org = self.grants.org_for(address, certificate_fingerprint(caller.certificate), _utc(now))
        try:
            return self.stores.store(org).get_blob(address)  # type: ignore[no-any-return]
        except RecordErasedError as exc:
            raise GatewayError(exc.message, code="record_erased", status=410) from exc
        except StoreError as exc:
            raise GatewayError(
                "the ciphertext is not in its department's store",
                code="blob_not_found",
                status=404,
            ) from exc


__all__ = [
    "RELEASE_FORMAT",
    "Custodians",
    "GrantExpired",
    "GrantIndex",
    "GrantRequired",
    "GrantedRecord",
    "KeyCustodian",
    "KeyNotRegistered",
    "KeyReleaseRefused",
    "ReleaseLog",
    "ReleasedTier",
    "VerifiedGrant",
    "record_version_key",
    "registered_key",
    "release_entry",
    "release_log_path",
    "verify_access_event",
]
