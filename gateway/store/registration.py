"""A record version's ciphertexts and sealed tier keys, stored in one transaction.

Registration stores every tier of a new record version at once. The rules
are those of :func:`gateway.store.crud.put_blob` then
:func:`gateway.store.crud.put_tier_key` for each tier (an erased record or
blob is refused, an identical repeat is a no-op, a different key for the same
tier is a conflict, a stored blob whose bytes differ is corruption), but the
store is read with four queries for the whole batch and written with two
bulk inserts and one commit, where the per-tier functions would cost three
ORM lookups and a commit per tier.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from crypto.envelope import content_address
from gateway.store.crud import (
    TierKeyEntry,
    check_address,
    check_key_id,
    check_tier_key_input,
    put_blob,
    put_tier_key,
    same_bytes,
    same_entry_or_conflict,
    utc,
)
from gateway.store.errors import (
    BlobCorruptedError,
    BlobHashMismatchError,
    InvalidTierKeyError,
    RecordErasedError,
)
from gateway.store.locks import records_locked
from gateway.store.models import ErasedBlob, SealedTierKey, StoredBlob, Tombstone

__all__ = ["put_record_tiers"]


def put_record_tiers(
    *, session: Session, tiers: Sequence[tuple[bytes, TierKeyEntry]]
) -> list[TierKeyEntry]:
    """Store a record version's ciphertexts and sealed tier keys in one transaction.

    ``tiers`` pairs each ciphertext with the tier key entry that opens it (its
    ``address`` and ``size`` must be the ciphertext's). The rules are exactly
    those of :func:`put_blob` then :func:`put_tier_key` for each pair, but a
    registration costs one commit instead of two per tier, and a failure
    leaves none of its rows behind. If a concurrent writer stored some of the
    same rows first, the pairs are retried one by one (both functions are
    idempotent), so the outcome is the same as calling them in turn.
    """
    for data, entry in tiers:
        if not isinstance(data, bytes):
            raise TypeError("blob data must be bytes")
        actual = content_address(data)
        if check_address(entry.address) != actual:
            raise BlobHashMismatchError(expected=entry.address, actual=actual)
        if entry.size != len(data):
            raise InvalidTierKeyError(
                f"ciphertext {actual} is {len(data)} bytes, not the {entry.size}"
                " the tier key claims"
            )
        check_tier_key_input(
            entry.record_id, entry.version, entry.tier, entry.sealed_key, entry.size
        )
        check_key_id(entry.key_id)
    records = [entry.record_id for _, entry in tiers]
    with records_locked(session, records, blobs=[entry.address for _, entry in tiers]):
        connection = session.connection()
        known = _KnownRows.read(connection, tiers)
        results: list[TierKeyEntry] = []
        new_blobs: list[dict[str, Any]] = []
        new_keys: list[dict[str, Any]] = []
        for data, entry in tiers:
            if entry.address in known.erased_blobs:
                raise RecordErasedError(known.erased_blobs[entry.address])
            stone = known.tombstones.get(entry.record_id)
            if stone is not None:
                raise RecordErasedError(entry.record_id, erased_at=utc(stone))
            stored = known.blobs.get(entry.address)
            if stored is None:
                known.blobs[entry.address] = data
                new_blobs.append({"address": entry.address, "data": data, "size": len(data)})
            elif not same_bytes(stored, data):
                # Same address, different bytes: the stored copy was altered (SHA-256 holds).
                raise BlobCorruptedError([entry.address])
            slot = (entry.record_id, entry.version, entry.tier)
            existing = known.keys.get(slot)
            if existing is not None:
                results.append(same_entry_or_conflict(existing, entry))
                continue
            known.keys[slot] = entry
            new_keys.append(dataclasses.asdict(entry))
            results.append(entry)
        try:
            if new_blobs:
                connection.execute(insert(StoredBlob), new_blobs)
            if new_keys:
                connection.execute(insert(SealedTierKey), new_keys)
            session.commit()
            return results
        except IntegrityError:
            session.rollback()
    # Another writer stored some of these rows first (a blob another record shares, say):
    # store the tiers one by one, each under its own lock; both functions are idempotent.
    return [
        put_tier_key(
            session=session,
            record_id=entry.record_id,
            version=entry.version,
            tier=entry.tier,
            sealed_key=entry.sealed_key,
            address=put_blob(session=session, data=data, address=entry.address),
            size=entry.size,
            key_id=entry.key_id,
        )
        for data, entry in tiers
    ]


@dataclass
class _KnownRows:
    """What the store already holds for a batch of tiers: four queries, not three per tier."""

    erased_blobs: dict[str, str]  # address -> record id
    tombstones: dict[str, datetime]  # record id -> erased at
    blobs: dict[str, bytes]  # address -> data
    keys: dict[tuple[str, int, str], TierKeyEntry]

    @classmethod
    def read(
        cls, connection: Connection, tiers: Sequence[tuple[bytes, TierKeyEntry]]
    ) -> _KnownRows:
        addresses = sorted({entry.address for _, entry in tiers})
        record_ids = sorted({entry.record_id for _, entry in tiers})
        erased = connection.execute(
            select(ErasedBlob.address, ErasedBlob.record_id).where(
                col(ErasedBlob.address).in_(addresses)
            )
        )
        stones = connection.execute(
            select(Tombstone.record_id, Tombstone.erased_at).where(
                col(Tombstone.record_id).in_(record_ids)
            )
        )
        blobs = connection.execute(
            select(StoredBlob.address, StoredBlob.data).where(
                col(StoredBlob.address).in_(addresses)
            )
        )
        keys = connection.execute(
            select(SealedTierKey).where(col(SealedTierKey.record_id).in_(record_ids))
        )
        return cls(
            erased_blobs={str(a): str(r) for a, r in erased},
            tombstones={str(r): t for r, t in stones},
            blobs={str(a): bytes(d) for a, d in blobs},
            keys={
                (k.record_id, k.version, k.tier): TierKeyEntry(
                    k.record_id, k.version, k.tier, bytes(k.sealed_key), k.address, k.size, k.key_id
                )
                for k in keys
            },
        )
