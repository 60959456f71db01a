"""``put_record_tiers``: a record version's ciphertexts and sealed keys in one transaction.

The rules must be exactly those of ``put_blob`` + ``put_tier_key`` per tier;
what changes is atomicity (a refused tier leaves nothing of the record) and
the number of commits.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
from sqlalchemy import func
from sqlmodel import select

from crypto.envelope import content_address, seal_key, x25519_public_key
from gateway.store import (
    BlobCorruptedError,
    BlobHashMismatchError,
    DepartmentStore,
    RecordErasedError,
    TierKeyConflictError,
    TierKeyEntry,
    erase_record,
    registration,
)
from gateway.store.models import SealedTierKey, StoredBlob

CUSTODIAN_PUBLIC = x25519_public_key(bytes(range(1, 33)))
TIERS = ("T0", "T1", "T2", "T3")


def _rows(record_id: str, version: int = 1) -> list[tuple[bytes, TierKeyEntry]]:
    rows = []
    for tier in TIERS:
        blob = os.urandom(80)
        sealed = seal_key(os.urandom(32), CUSTODIAN_PUBLIC)
        entry = TierKeyEntry(record_id, version, tier, sealed, content_address(blob), len(blob))
        rows.append((blob, entry))
    return rows


def _count(store: DepartmentStore, model: type) -> int:
    with store.session() as session:
        return int(session.exec(select(func.count()).select_from(model)).one())


def test_every_tier_is_stored_and_reads_back(store: DepartmentStore) -> None:
    rows = _rows("rp-1")
    stored = store.put_record_tiers(rows)
    assert [e.tier for e in stored] == list(TIERS)
    for blob, entry in rows:
        assert store.get_blob(entry.address) == blob
        assert store.get_tier_key(record_id="rp-1", version=1, tier=entry.tier) == entry
    assert (_count(store, StoredBlob), _count(store, SealedTierKey)) == (4, 4)


def test_repeating_the_same_record_is_a_no_op(store: DepartmentStore) -> None:
    rows = _rows("rp-2")
    store.put_record_tiers(rows)
    assert store.put_record_tiers(rows) == [entry for _, entry in rows]
    assert (_count(store, StoredBlob), _count(store, SealedTierKey)) == (4, 4)


def test_a_refused_tier_leaves_nothing_of_the_record(store: DepartmentStore) -> None:
    rows = _rows("rp-3")
    blob, entry = rows[2]
    rows[2] = (blob + b"!", entry)  # the ciphertext no longer hashes to its address
    with pytest.raises(BlobHashMismatchError):
        store.put_record_tiers(rows)
    assert (_count(store, StoredBlob), _count(store, SealedTierKey)) == (0, 0)


def test_another_key_for_a_stored_tier_is_a_conflict_and_writes_nothing(
    store: DepartmentStore,
) -> None:
    store.put_record_tiers(_rows("rp-4"))
    with pytest.raises(TierKeyConflictError):
        store.put_record_tiers(_rows("rp-4"))  # same record version, different keys
    assert (_count(store, StoredBlob), _count(store, SealedTierKey)) == (4, 4)


def test_an_erased_record_cannot_be_stored_again(store: DepartmentStore) -> None:
    store.put_record_tiers(_rows("rp-5"))
    with store.session() as session:
        erase_record(
            session=session, record_id="rp-5", erased_by="registrar", now=datetime.now(UTC)
        )
    with pytest.raises(RecordErasedError):
        store.put_record_tiers(_rows("rp-5", version=2))
    assert _count(store, SealedTierKey) == 0


def test_a_stored_blob_altered_on_disk_is_corruption_and_writes_nothing(
    store: DepartmentStore,
) -> None:
    rows = _rows("rp-6")
    blob, _ = rows[1]
    store.put_blob(blob)
    with store.session() as session:
        row = session.get(StoredBlob, content_address(blob))
        assert row is not None
        row.data = b"x" * len(blob)  # same address, other bytes
        session.add(row)
        session.commit()
    with pytest.raises(BlobCorruptedError):
        store.put_record_tiers(rows)
    assert (_count(store, StoredBlob), _count(store, SealedTierKey)) == (1, 0)


def test_rows_a_concurrent_writer_stored_first_end_the_same(
    store: DepartmentStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another writer commits the same record between this call's reads and its inserts:
    # the bulk insert collides, and the tiers are stored one by one, idempotently.
    rows = _rows("rp-7")
    store.put_record_tiers(rows[:2])
    seen_nothing = registration._KnownRows({}, {}, {}, {})
    monkeypatch.setattr(registration._KnownRows, "read", lambda connection, tiers: seen_nothing)
    assert store.put_record_tiers(rows) == [entry for _, entry in rows]
    assert (_count(store, StoredBlob), _count(store, SealedTierKey)) == (4, 4)
    for blob, entry in rows:
        assert store.get_blob(entry.address) == blob
