"""The single-query read paths keep every outcome of the former multi-query ones."""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest

from crypto.envelope import seal_key, x25519_public_key
from gateway.store import DepartmentStore
from gateway.store.crud import get_blob, get_tier_key
from gateway.store.errors import BlobNotFoundError, RecordErasedError, TierKeyNotFoundError
from gateway.store.models import ErasedBlob, Tombstone

NOW = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
CUSTODIAN_PUBLIC = x25519_public_key(bytes(range(1, 33)))


def _sealed() -> bytes:
    return seal_key(os.urandom(32), CUSTODIAN_PUBLIC)


def test_a_key_left_beside_a_tombstone_still_reads_as_erased(store: DepartmentStore) -> None:
    # A put racing an erasure could leave a key next to the tombstone: the
    # tombstone wins, as it did when it was looked up first.
    address = store.put_blob(os.urandom(64))
    store.put_tier_key(
        record_id="raced", version=1, tier="T1", sealed_key=_sealed(), address=address, size=64
    )
    with store.session() as session:
        session.add(
            Tombstone(
                record_id="raced",
                erased_at=NOW,
                erased_by="admin.education",
                tier_keys_destroyed=0,
                blobs_destroyed=0,
            )
        )
        session.commit()
        with pytest.raises(RecordErasedError) as caught:
            get_tier_key(session=session, record_id="raced", version=1, tier="T1")
    assert caught.value.erased_at == NOW


def test_missing_key_of_a_live_record_is_not_found(store: DepartmentStore) -> None:
    address = store.put_blob(os.urandom(64))
    sealed = _sealed()
    store.put_tier_key(
        record_id="live", version=1, tier="T0", sealed_key=sealed, address=address, size=64
    )
    with store.session() as session:
        entry = get_tier_key(session=session, record_id="live", version=1, tier="T0")
        assert (entry.record_id, entry.version, entry.tier) == ("live", 1, "T0")
        assert (entry.sealed_key, entry.address, entry.size) == (sealed, address, 64)
        with pytest.raises(TierKeyNotFoundError):
            get_tier_key(session=session, record_id="live", version=2, tier="T0")
        with pytest.raises(TierKeyNotFoundError):
            get_tier_key(session=session, record_id="live", version=1, tier="T1")


def test_erased_blob_without_tombstone_reports_no_time(store: DepartmentStore) -> None:
    address = "ab" * 32
    with store.session() as session:
        with pytest.raises(BlobNotFoundError):
            get_blob(session=session, address=address)
        session.add(ErasedBlob(address=address, record_id="orphan"))
        session.commit()
        with pytest.raises(RecordErasedError) as caught:
            get_blob(session=session, address=address)
    assert caught.value.record_id == "orphan"
    assert caught.value.erased_at is None
