"""One department's key custodian: open a stored tier key, re-seal it to an officer.

:class:`KeyCustodian` holds a department's key ring and its store. It does
the cryptographic half of a release -- check that the stored key opens the
ciphertext the ledger's record version names, open it with the key the row
says it is sealed to (re-reading the key files if a rotation elsewhere moved
on), seal it to the officer's registered X25519 key -- and nothing else.
Whether a release may happen at all (a committed, valid, permitting event;
a live grant; no erasure; no revocation) and its log line are decided by
:class:`gateway.custodian.Custodians` before and after.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from chaincode.ledger import RECORD_VERSION, sequence_key
from crypto.envelope import open_sealed_key, seal_key
from crypto.errors import DecryptionError
from gateway.access_events import GrantedRecord, VerifiedGrant
from gateway.access_events import refuse as _refuse
from gateway.custodian_keys import CustodianKeyRing, load_key_ring
from gateway.errors import GatewayError
from gateway.service.ledger import composite_key
from gateway.service.releases import ReleaseLog
from gateway.store import DepartmentStore, RecordErasedError, StoreError, TierKeyEntry

__all__ = ["KeyCustodian", "ReleasedTier", "record_version_key"]


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


class KeyCustodian:
    """One department's custodian: its key ring, its store and its release log.

    ``keys`` is the raw current private key or a :class:`CustodianKeyRing`;
    ``home``, when given, lets the custodian re-read its key files when a row
    names a key it does not hold (a rotation finished by another process).
    """

    def __init__(
        self,
        org: str,
        keys: bytes | CustodianKeyRing,
        store: DepartmentStore,
        log: ReleaseLog,
        *,
        home: Path | None = None,
    ) -> None:
        self.org = org
        self._ring = keys if isinstance(keys, CustodianKeyRing) else CustodianKeyRing(keys)
        self._home = home
        self.store = store
        self.log = log

    @property
    def keys(self) -> CustodianKeyRing:
        """The key ring in use (current key first; the previous one during a rotation)."""
        return self._ring

    def install(self, ring: CustodianKeyRing) -> None:
        """Use ``ring`` from now on (called by a rotation as the key files change)."""
        self._ring = ring

    def _private_keys(self, entry: TierKeyEntry) -> list[bytes]:
        ring = self._ring
        if entry.key_id is None:
            return list(ring.candidates())
        private = ring.private_for(entry.key_id)
        if private is None and self._home is not None:
            # Rotated elsewhere: the files are the truth.
            ring = load_key_ring(self._home, self.org)
            self._ring = ring
            private = ring.private_for(entry.key_id)
        return [private] if private is not None else []

    def open_tier_key(self, entry: TierKeyEntry) -> bytes:
        """The tier key of a stored row, opened with the key the row names.

        Raises :class:`DecryptionError` if no key of the ring opens it.
        """
        for private in self._private_keys(entry):
            try:
                return open_sealed_key(entry.sealed_key, private)
            except DecryptionError:
                continue
        raise DecryptionError()

    def open_stored(self, entry: TierKeyEntry) -> bytes:
        """:meth:`open_tier_key`, re-reading the row once if its key has gone meanwhile.

        A rotation may have re-sealed the row and retired the key it named
        between the read and this call. Raises :class:`DecryptionError` or a
        store error if the fresh row does not open either.
        """
        try:
            return self.open_tier_key(entry)
        except DecryptionError:
            fresh = self.store.get_tier_key(
                record_id=entry.record_id, version=entry.version, tier=entry.tier
            )
            return self.open_tier_key(fresh)

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
                sealed = seal_key(self.open_stored(entry), recipient_public)
            except (DecryptionError, StoreError) as exc:
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
