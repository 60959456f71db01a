"""Recipient copies of tier keys (``recipient_key``), on SQLite and PostgreSQL alike."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, inspect, text
from sqlmodel import select

from crypto.envelope import (
    generate_x25519_keypair,
    open_sealed_key,
    seal_key,
    x25519_public_key,
)
from gateway.store import (
    DepartmentStore,
    InvalidTierKeyError,
    RecipientKeyEntry,
    RecordErasedError,
    TierKeyConflictError,
    TierKeyNotFoundError,
)
from gateway.store.models import RecipientTierKey
from tests.gateway.store.conftest import StoreFactory

NOW = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
CUSTODIAN_PUBLIC = x25519_public_key(bytes(range(1, 33)))
FINGERPRINT = "ab" * 32


def _note(store: DepartmentStore, record_id: str) -> bytes:
    """Store one T3 ciphertext and its custodian-sealed key; return the tier key."""
    key = os.urandom(32)
    address = store.put_blob(os.urandom(80))
    store.put_tier_key(
        record_id=record_id,
        version=1,
        tier="T3",
        sealed_key=seal_key(key, CUSTODIAN_PUBLIC),
        address=address,
        size=80,
    )
    return key


def _copy(record_id: str, key: bytes, public: bytes, **changes: str) -> RecipientKeyEntry:
    fields = {"msp_id": "CivilAffairsMSP", "cert_fingerprint": FINGERPRINT, **changes}
    return RecipientKeyEntry(
        record_id=record_id,
        version=1,
        tier="T3",
        public_key=public,
        sealed_key=seal_key(key, public),
        **fields,
    )


def test_a_copy_opens_with_the_recipients_key_and_is_listed_per_msp(
    open_store: StoreFactory,
) -> None:
    store = open_store("Audit")
    key = _note(store, "review_note-1")
    private, public = generate_x25519_keypair()
    entry = _copy("review_note-1", key, public)
    assert store.put_recipient_key(entry) == entry
    assert store.put_recipient_key(entry) == entry  # a retried put is a no-op
    other_private, other_public = generate_x25519_keypair()
    store.put_recipient_key(_copy("review_note-1", key, other_public, msp_id="OtherMSP"))

    [mine] = store.list_recipient_keys(record_id="review_note-1", msp_id="CivilAffairsMSP")
    assert open_sealed_key(mine.sealed_key, private) == key
    assert mine.public_key == public
    assert len(store.list_recipient_keys(record_id="review_note-1")) == 2
    [theirs] = store.list_recipient_keys(record_id="review_note-1", msp_id="OtherMSP")
    assert open_sealed_key(theirs.sealed_key, other_private) == key
    # The custodian's own row is untouched and still the only tier key of the record.
    assert len(store.list_tier_keys(record_id="review_note-1")) == 1


def test_a_different_copy_for_the_same_recipient_is_a_conflict(open_store: StoreFactory) -> None:
    store = open_store("Audit")
    key = _note(store, "contest_reason-1")
    _, public = generate_x25519_keypair()
    store.put_recipient_key(_copy("contest_reason-1", key, public))
    with pytest.raises(TierKeyConflictError):
        store.put_recipient_key(_copy("contest_reason-1", key, public))  # sealed anew


def test_copies_need_a_stored_tier_key_and_a_sealed_key(open_store: StoreFactory) -> None:
    store = open_store("Audit")
    _, public = generate_x25519_keypair()
    with pytest.raises(TierKeyNotFoundError):
        store.put_recipient_key(_copy("nothing-here", os.urandom(32), public))
    key = _note(store, "justification-1")
    raw = RecipientKeyEntry("justification-1", 1, "T3", "CivilAffairsMSP", FINGERPRINT, public, key)
    with pytest.raises(InvalidTierKeyError, match="never holds unsealed keys"):
        store.put_recipient_key(raw)
    with pytest.raises(InvalidTierKeyError, match="fingerprint"):
        store.put_recipient_key(_copy("justification-1", key, public, cert_fingerprint="x"))
    assert store.list_recipient_keys(record_id="justification-1") == []


def test_erasure_destroys_the_copies_too(open_store: StoreFactory) -> None:
    store = open_store("Audit")
    key = _note(store, "justification-2")
    _, public = generate_x25519_keypair()
    store.put_recipient_key(_copy("justification-2", key, public))
    store.erase_record(record_id="justification-2", erased_by="auditor.audit.sz1", now=NOW)
    with pytest.raises(RecordErasedError):
        store.list_recipient_keys(record_id="justification-2")
    with store.session() as session:
        left = session.exec(select(func.count()).select_from(RecipientTierKey)).one()
    assert left == 0


def test_a_store_from_before_recipient_copies_gets_the_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'Audit.sqlite'}"
    first = DepartmentStore.open("Audit", url)
    key = _note(first, "review_note-old")
    with first.engine.begin() as connection:
        connection.execute(text("DROP TABLE recipient_key"))
    first.close()

    again = DepartmentStore.open("Audit", url)
    try:
        assert "recipient_key" in inspect(again.engine).get_table_names()
        _, public = generate_x25519_keypair()
        again.put_recipient_key(_copy("review_note-old", key, public))
        assert len(again.list_recipient_keys(record_id="review_note-old")) == 1
    finally:
        again.close()
