"""Erasure (crypto-shredding) in a department's off-chain store.

:func:`erase_record` destroys a record's sealed tier keys, its recipients'
copies and the ciphertexts only it uses, and leaves a tombstone (with the
destroyed ciphertexts' addresses), in one transaction; afterwards every read
of the record and any attempt to store its ciphertext again fails with
``record_erased``. On SQLite the write-ahead log is checkpointed so no page
of the destroyed payload stays in the files. The ledger's ``EraseRecord``
is what authorises an erasure (:mod:`gateway.service.erasure`); this module
only carries it out. Same conventions as :mod:`gateway.store.crud`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from gateway.store.crud import check_record_id, tombstone_of, utc
from gateway.store.errors import RecordNotFoundError, StoreError
from gateway.store.locks import lock_blobs, records_locked
from gateway.store.models import (
    MAX_ACTOR_LENGTH,
    ErasedBlob,
    RecipientTierKey,
    SealedTierKey,
    StoredBlob,
    Tombstone,
)


@dataclass(frozen=True)
class Erasure:
    """The tombstone of an erased record."""

    record_id: str
    erased_at: datetime
    erased_by: str
    tier_keys_destroyed: int
    blobs_destroyed: int


def get_erasure(*, session: Session, record_id: str) -> Erasure | None:
    """The tombstone of ``record_id``, or ``None`` if it was never erased."""
    check_record_id(record_id)
    stone = tombstone_of(session, record_id)
    return None if stone is None else _erasure(stone)


def _erasure(stone: Tombstone) -> Erasure:
    return Erasure(
        record_id=stone.record_id,
        erased_at=utc(stone.erased_at),
        erased_by=stone.erased_by,
        tier_keys_destroyed=stone.tier_keys_destroyed,
        blobs_destroyed=stone.blobs_destroyed,
    )


def erase_record(
    *,
    session: Session,
    record_id: str,
    erased_by: str,
    now: datetime,
    lock_timeout_ms: int | None = None,
) -> Erasure:
    """Crypto-shred a record: destroy every version's tier keys and ciphertexts.

    A ciphertext another (live) record also points at is kept for that record.
    Everything happens in one transaction and leaves a tombstone naming
    ``erased_by`` and ``now``. Erasing an erased record returns the existing
    tombstone (so a retried request is harmless); erasing a record the store
    never held raises ``record_not_found``. The ledger keeps the record's
    hashes and access history: accountability outlives the payload.
    ``lock_timeout_ms`` bounds the wait for a concurrent writer of the record
    (:func:`gateway.store.locks.records_locked`); then ``store_busy``.
    """
    check_record_id(record_id)
    if not isinstance(erased_by, str) or not erased_by or len(erased_by) > MAX_ACTOR_LENGTH:
        raise StoreError("erased_by must name who erased the record", code="invalid_actor")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    with records_locked(session, [record_id], timeout_ms=lock_timeout_ms):
        existing = tombstone_of(session, record_id)
        if existing is not None:
            return _erasure(existing)
        keys = session.exec(select(SealedTierKey).where(SealedTierKey.record_id == record_id)).all()
        if not keys:
            raise RecordNotFoundError(f"the store holds no tier keys for record {record_id}")
        addresses = sorted({key.address for key in keys})
        # Which of these ciphertexts another record shares must not change until this commits.
        lock_blobs(session, addresses)
        shared = set(
            session.exec(
                select(SealedTierKey.address).where(
                    col(SealedTierKey.address).in_(addresses), SealedTierKey.record_id != record_id
                )
            ).all()
        )
        doomed = [address for address in addresses if address not in shared]
        session.exec(delete(SealedTierKey).where(col(SealedTierKey.record_id) == record_id))
        session.exec(delete(RecipientTierKey).where(col(RecipientTierKey.record_id) == record_id))
        if doomed:
            session.exec(delete(StoredBlob).where(col(StoredBlob.address).in_(doomed)))
            for address in doomed:
                session.merge(ErasedBlob(address=address, record_id=record_id))
        stone = Tombstone(
            record_id=record_id,
            erased_at=now.astimezone(UTC),
            erased_by=erased_by,
            tier_keys_destroyed=len(keys),
            blobs_destroyed=len(doomed),
        )
        session.add(stone)
        try:
            session.commit()
        except IntegrityError:
            # A concurrent erasure of the same record won; report its tombstone.
            session.rollback()
            winner = tombstone_of(session, record_id)
            if winner is None:  # pragma: no cover - nothing to report
                raise
            return _erasure(winner)
    erasure = _erasure(stone)
    _flush_sqlite_wal(session)
    return erasure


def _flush_sqlite_wal(session: Session) -> None:
    """Push an erasure out of SQLite's write-ahead log.

    With ``secure_delete`` on, SQLite zeroes the deleted rows in the pages it
    writes, but the WAL still holds the frames written *before* the erasure,
    payload bytes included. A ``TRUNCATE`` checkpoint copies the zeroed pages
    into the database file and empties the log. It is best effort: a reader
    holding an old snapshot at that instant keeps the log alive until the next
    checkpoint (SQLite's automatic one, at the latest).
    """
    if session.get_bind().dialect.name != "sqlite":
        return
    session.connection().exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    session.commit()
