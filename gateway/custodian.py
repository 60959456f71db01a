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
the X25519 key registered on the ledger for the officer. A custodian holds a
key *ring* (:mod:`gateway.custodian_keys`): its current key and, while a key
rotation (:mod:`gateway.rotation`) is unfinished, the previous one; each
stored row names the key it is sealed to. Every release is
appended to ``HOME/custodians/<Org>/releases.jsonl`` (fsynced) *before* the
key leaves the custodian (:mod:`gateway.service.releases`; the format is in
``docs/api.md``); the same entries feed the blob grants that
``GET /v1/blobs/{sha256}`` consults. The re-sealing itself, one department
at a time, is :class:`gateway.keycustodian.KeyCustodian`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from chaincode.caller import certificate_fingerprint
from chaincode.codec import format_time
from chaincode.ledger import ENC_KEY, ERASURE
from crypto.identity import Identity
from gateway.access_events import (
    GrantedRecord,
    KeyReleaseRefused,
    VerifiedGrant,
    require_channel_member,
    verify_access_event,
)
from gateway.access_events import refuse as _refuse
from gateway.custodian_keys import CustodianKeyRing, load_key_ring, previous_key_path
from gateway.errors import Conflict, GatewayError
from gateway.keycustodian import KeyCustodian, ReleasedTier, record_version_key
from gateway.service.ledger import CommittedTransaction, composite_key
from gateway.service.releases import (
    RELEASE_FORMAT,
    GrantExpired,
    GrantIndex,
    GrantRequired,
    ReleaseLog,
    append_before_release,
    release_log_path,
)
from gateway.store import RecordErasedError, StoreError
from network.fabric.validator import ChannelConfig


class KeyNotRegistered(Conflict):
    code = "key_not_registered"


class LedgerReader(Protocol):
    """What a custodian reads from the ledger."""

    def committed(self, tx_id: str) -> CommittedTransaction | None: ...

    def state(self, key: str) -> bytes | None: ...

    def states(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values at ``keys`` from one consistent snapshot of committed state."""
        ...

    def states_at(self, keys: Sequence[str]) -> tuple[int, list[bytes | None]]:
        """:meth:`states` and the ledger height of that snapshot."""
        ...

    def channel_at(self, height: int) -> ChannelConfig:
        """The channel config (members and their CRLs) in force at ``height``."""
        ...


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
    released: ReleasedTier,
    grant: VerifiedGrant,
    recipient_public: bytes,
    now: datetime,
    *,
    ledger_height: int,
) -> dict[str, Any]:
    """The key-release log line of one release (no personal data).

    ``ledger_height`` is the height of the committed state the release was
    checked against: an auditor can tell a release made before an erasure
    (or a revocation) committed from one made after, which wall-clock times
    alone cannot.
    """
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
        "ledger_height": ledger_height,
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
        self._rings = {org: self._ring(org, key) for org, key in custodian_keys.items()}
        self._custodians: dict[str, KeyCustodian] = {}
        self._lock = threading.Lock()
        self._sealing_locks: dict[str, threading.Lock] = {}
        self.grants = GrantIndex()
        if now is not None:
            for org in self._rings:
                self.grants.load(
                    ReleaseLog(release_log_path(self.home, org)).entries(), now=_utc(now)
                )

    def _ring(self, org: str, current: bytes) -> CustodianKeyRing:
        # An interrupted rotation left the previous key beside the current one.
        path = previous_key_path(self.home, org)
        if path.exists():
            return load_key_ring(self.home, org)
        return CustodianKeyRing(current)

    def custodian(self, org: str) -> KeyCustodian:
        """The custodian of ``org`` (refuses an organisation without a custodian key)."""
        with self._lock:
            found = self._custodians.get(org)
            if found is None:
                ring = self._rings.get(org)
                if ring is None:
                    raise GatewayError(
                        f"{org} has no key custodian", code="custodian_failed", status=500
                    )
                found = KeyCustodian(
                    org,
                    ring,
                    self.stores.store(org),
                    ReleaseLog(release_log_path(self.home, org)),
                    home=self.home,
                )
                self._custodians[org] = found
            return found

    def add(self, org: str, current_key: bytes) -> None:
        """Give ``org`` (a department that joined the channel) its custodian."""
        ring = self._ring(org, current_key)
        with self._lock:
            self._rings.setdefault(org, ring)

    def has_custodian(self, org: str) -> bool:
        """Whether ``org`` is a department with a key custodian here."""
        return org in self._rings

    def keys(self, org: str) -> CustodianKeyRing:
        """``org``'s key ring (raises ``custodian_failed`` for an organisation without one)."""
        return self.custodian(org).keys

    def public_key(self, org: str) -> bytes:
        """``org``'s current custodian public key: what new tier keys must be sealed to."""
        return self.keys(org).current_public

    def key_id(self, org: str) -> str:
        """The key id of ``org``'s current custodian key."""
        return self.keys(org).current_id

    def sealing_key(self, org: str) -> tuple[bytes, str]:
        """``(public key, key id)`` of ``org``'s current custodian key, read together.

        What a writer of new tier keys should seal to and record
        (``put_tier_key(..., key_id=...)``): both come from one key ring, so
        a rotation switching keys in between cannot pair a key with another's id.
        """
        ring = self.keys(org)
        return ring.current_public, ring.current_id

    @contextmanager
    def sealing(self, org: str) -> Iterator[tuple[bytes, str]]:
        """Hold ``org``'s sealing lock; yields :meth:`sealing_key` for the writes inside.

        Writers of new tier keys seal and store them inside this block; a key
        rotation takes the same lock for its final check and the deletion of
        the previous key, so no row sealed to that key can land in between.
        """
        with self._lock:
            lock = self._sealing_locks.setdefault(org, threading.Lock())
        with lock:
            yield self.sealing_key(org)

    @property
    def public_keys(self) -> Mapping[str, bytes]:
        """A live, read-only view: department -> current custodian public key."""
        return _PublicKeys(self)

    def install_keys(self, org: str, ring: CustodianKeyRing) -> None:
        """Switch ``org``'s custodian to ``ring`` (a rotation's ``on_keys``)."""
        custodian = self.custodian(org)
        with self._lock:
            self._rings[org] = ring
            custodian.install(ring)

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
        # The officer's key, every granted record version and any erasure of those records,
        # from one snapshot: a record erased since the grant releases nothing (I2), even
        # before its store has been shredded.
        count = len(grant.granted)
        height, stored = self.ledger.states_at(
            [
                composite_key(ENC_KEY, grant.officer_msp_id, grant.officer_fingerprint),
                *(record_version_key(record) for record in grant.granted),
                *(composite_key(ERASURE, record.record_id) for record in grant.granted),
            ]
        )
        channel = self.ledger.channel_at(height)
        require_channel_member(
            channel, grant.officer_msp_id, grant.officer_certificate, now=now, tx_id=grant.tx_id
        )
        for record, erasure in zip(grant.granted, stored[1 + count :], strict=True):
            if erasure is not None:
                raise GatewayError(
                    f"record {record.record_id} was erased after this grant",
                    code="record_erased",
                    status=410,
                    tx_id=grant.tx_id,
                )
        stored = stored[: 1 + count]
        recipient = _registered_key(stored[0], tx_id=grant.tx_id)
        by_org: dict[str, list[ReleasedTier]] = {}
        for record, stored_record in zip(grant.granted, stored[1:], strict=True):
            custodian = self.custodian(record.owner_org)
            by_org.setdefault(record.owner_org, []).extend(
                custodian.reseal(grant, record, stored_record, recipient)
            )
        # Every department's lines are durable before any grant or key takes effect: if one
        # log cannot be written, nothing of the release is usable (a logged line that never
        # released is the safe way round for an auditor).
        for org, tiers in by_org.items():
            append_before_release(
                self.custodian(org).log,
                [release_entry(t, grant, recipient, now, ledger_height=height) for t in tiers],
                custodian=org,
                tx_id=grant.tx_id,
            )
        released: list[ReleasedTier] = []
        for org, tiers in by_org.items():
            for tier in tiers:
                self.grants.add(
                    tier.content_address,
                    org,
                    grant.officer_fingerprint,
                    grant.expires_at,
                    tier.record_id,
                )
            released.extend(tiers)
        return recipient, released

    def blob(self, address: str, caller: Identity, now: datetime) -> bytes:
        """The ciphertext at ``address`` if a live release to ``caller`` covers it."""
        grant = self.grants.grant_for(
            address, certificate_fingerprint(caller.certificate), _utc(now)
        )
        height, [erasure] = self.ledger.states_at([composite_key(ERASURE, grant.record_id)])
        require_channel_member(
            self.ledger.channel_at(height), caller.msp_id, caller.certificate, now=_utc(now)
        )
        if erasure is not None:
            raise GatewayError(
                f"record {grant.record_id} was erased after this grant",
                code="record_erased",
                status=410,
            )
        try:
            return self.stores.store(grant.org).get_blob(address)  # type: ignore[no-any-return]
        except RecordErasedError as exc:
            raise GatewayError(exc.message, code="record_erased", status=410) from exc
        except StoreError as exc:
            raise GatewayError(
                "the ciphertext is not in its department's store",
                code="blob_not_found",
                status=404,
            ) from exc


class _PublicKeys(Mapping[str, bytes]):
    """Department -> current custodian public key, read at each lookup (rotation-proof)."""

    def __init__(self, custodians: Custodians) -> None:
        self._custodians = custodians

    def __getitem__(self, org: str) -> bytes:
        if not self._custodians.has_custodian(org):
            raise KeyError(org)
        return self._custodians.public_key(org)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._custodians._rings))

    def __len__(self) -> int:
        return len(self._custodians._rings)


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
