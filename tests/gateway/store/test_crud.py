"""The store's storage functions, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import hashlib
import os
import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, update
from sqlmodel import select

from crypto.consortium import Consortium
from crypto.envelope import (
    AssociatedData,
    content_address,
    decrypt_tier,
    encrypt_payload,
    open_sealed_key,
    seal_key,
    x25519_public_key,
)
from crypto.errors import AccessLedgerError
from gateway.store import (
    BlobCorruptedError,
    BlobHashMismatchError,
    BlobNotFoundError,
    DepartmentStore,
    InvalidAddressError,
    InvalidTierKeyError,
    RecordErasedError,
    RecordNotFoundError,
    TierKeyConflictError,
    TierKeyNotFoundError,
    erase_record,
    get_blob,
    put_blob,
)
from gateway.store.models import ErasedBlob, SealedTierKey, StoredBlob, Tombstone

NOW = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
CUSTODIAN_PUBLIC = x25519_public_key(bytes(range(1, 33)))


def _sealed() -> bytes:
    return seal_key(os.urandom(32), CUSTODIAN_PUBLIC)


def _record(store: DepartmentStore, record_id: str, *, versions: int = 1, tiers: int = 2) -> None:
    """Store ``versions`` x ``tiers`` random ciphertexts and their sealed keys."""
    for version in range(1, versions + 1):
        for tier in ("T0", "T1", "T2", "T3")[:tiers]:
            blob = os.urandom(64)
            address = store.put_blob(blob)
            store.put_tier_key(
                record_id=record_id,
                version=version,
                tier=tier,
                sealed_key=_sealed(),
                address=address,
                size=len(blob),
            )


def _count(store: DepartmentStore, model: type) -> int:
    with store.session() as session:
        return int(session.exec(select(func.count()).select_from(model)).one())


# --------------------------------------------------------------------------- blobs


def test_put_returns_sha256_address_and_get_returns_the_bytes(store: DepartmentStore) -> None:
    blob = os.urandom(300)
    address = store.put_blob(blob)
    assert address == hashlib.sha256(blob).hexdigest()
    assert store.get_blob(address) == blob


def test_put_of_the_same_blob_is_idempotent(store: DepartmentStore) -> None:
    blob = os.urandom(100)
    first = store.put_blob(blob)
    assert store.put_blob(blob, address=first) == first
    assert store.list_addresses() == [first]
    assert _count(store, StoredBlob) == 1


def test_blob_under_the_wrong_address_is_refused(store: DepartmentStore) -> None:
    blob = os.urandom(100)
    claimed = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(BlobHashMismatchError) as caught:
        store.put_blob(blob, address=claimed)
    assert caught.value.code == "blob_hash_mismatch"
    assert caught.value.actual == content_address(blob)
    assert store.list_addresses() == []


@pytest.mark.parametrize(
    "address",
    ["", "abc", "A" * 64, "g" * 64, "0" * 63, "0" * 65, "../" + "0" * 61],
)
def test_malformed_addresses_are_refused(store: DepartmentStore, address: str) -> None:
    with pytest.raises(InvalidAddressError) as caught:
        store.get_blob(address)
    assert caught.value.code == "invalid_address"


def test_unknown_blob_is_not_found(store: DepartmentStore) -> None:
    address = hashlib.sha256(b"never stored").hexdigest()
    with pytest.raises(BlobNotFoundError) as caught:
        store.get_blob(address)
    assert caught.value.code == "blob_not_found"
    assert isinstance(caught.value, AccessLedgerError)


def test_a_blob_altered_in_the_database_is_detected(store: DepartmentStore) -> None:
    good = store.put_blob(os.urandom(80))
    original = os.urandom(80)
    bad = store.put_blob(original)
    tampered = bytearray(original)
    tampered[10] ^= 0x01
    with store.session() as session:
        session.exec(
            update(StoredBlob).where(StoredBlob.address == bad).values(data=bytes(tampered))
        )
        session.commit()

    with pytest.raises(BlobCorruptedError) as caught:
        store.get_blob(bad)
    assert caught.value.code == "blob_corrupted"
    with pytest.raises(BlobCorruptedError):
        store.verify_blob(bad)
    with pytest.raises(BlobCorruptedError) as scan:
        store.verify_blobs()
    assert scan.value.addresses == (bad,)
    # Re-offering the genuine bytes does not paper over the altered row.
    with pytest.raises(BlobCorruptedError):
        store.put_blob(original)
    store.verify_blob(good)


def test_verify_blobs_checks_every_blob_across_pages(store: DepartmentStore) -> None:
    for _ in range(70):  # more than one verification page
        store.put_blob(os.urandom(32))
    assert store.verify_blobs() == 70


def test_concurrent_puts_of_one_blob_all_succeed(store: DepartmentStore) -> None:
    blob = os.urandom(1000)
    results: list[str] = []
    errors: list[BaseException] = []

    def put() -> None:
        try:
            results.append(store.put_blob(blob))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=put) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert results == [content_address(blob)] * 8
    assert _count(store, StoredBlob) == 1


def test_functions_take_a_session_and_keyword_arguments(store: DepartmentStore) -> None:
    blob = os.urandom(50)
    with store.session() as session:
        address = put_blob(session=session, data=blob)
        assert get_blob(session=session, address=address) == blob
    with pytest.raises(TypeError):
        put_blob(store.session(), blob)  # type: ignore[misc]


# ----------------------------------------------------------------------- tier keys


def test_sealed_tier_keys_round_trip_with_real_envelopes(
    store: DepartmentStore, consortium: Consortium
) -> None:
    custodian = consortium.custodian_key("Education")
    groups = {"T0": b'{"school":"Futian No.3"}', "T1": b'{"name":"Li Ming","grade":3}'}
    encrypted = encrypt_payload(groups, record_id="rec-1", version=1, record_type="student_record")
    for tier, enc in encrypted.items():
        address = store.put_blob(enc.ciphertext, address=enc.address)
        store.put_tier_key(
            record_id="rec-1",
            version=1,
            tier=tier,
            sealed_key=seal_key(enc.key, x25519_public_key(custodian)),
            address=address,
            size=enc.size,
        )
    for tier, plaintext in groups.items():
        entry = store.get_tier_key(record_id="rec-1", version=1, tier=tier)
        assert entry.address == encrypted[tier].address
        tier_key = open_sealed_key(entry.sealed_key, custodian)
        ad = AssociatedData(record_id="rec-1", version=1, record_type="student_record", tier=tier)
        assert decrypt_tier(tier_key, store.get_blob(entry.address), ad) == plaintext


def test_put_tier_key_is_idempotent_and_refuses_conflicts(store: DepartmentStore) -> None:
    blob = os.urandom(64)
    address = store.put_blob(blob)
    sealed = _sealed()
    args = {"record_id": "r", "version": 1, "tier": "T1", "address": address, "size": 64}
    first = store.put_tier_key(sealed_key=sealed, **args)  # type: ignore[arg-type]
    assert store.put_tier_key(sealed_key=sealed, **args) == first  # type: ignore[arg-type]
    with pytest.raises(TierKeyConflictError) as caught:
        store.put_tier_key(sealed_key=_sealed(), **args)  # type: ignore[arg-type]
    assert caught.value.code == "tier_key_conflict"
    other = os.urandom(64)
    with pytest.raises(TierKeyConflictError):
        store.put_tier_key(
            record_id="r",
            version=1,
            tier="T1",
            sealed_key=sealed,
            address=store.put_blob(other),
            size=64,
        )
    assert store.get_tier_key(record_id="r", version=1, tier="T1").sealed_key == sealed
    assert _count(store, SealedTierKey) == 1


def test_tier_key_needs_its_ciphertext_in_the_store(store: DepartmentStore) -> None:
    with pytest.raises(BlobNotFoundError):
        store.put_tier_key(
            record_id="r",
            version=1,
            tier="T1",
            sealed_key=_sealed(),
            address=hashlib.sha256(b"absent").hexdigest(),
            size=6,
        )
    address = store.put_blob(b"x" * 40)
    with pytest.raises(InvalidTierKeyError, match="40 bytes"):
        store.put_tier_key(
            record_id="r", version=1, tier="T1", sealed_key=_sealed(), address=address, size=41
        )


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sealed_key", bytes(range(32))),  # a raw, unsealed tier key
        ("sealed_key", b"\x02" + bytes(80)),  # unknown sealed-key format
        ("tier", "T4"),
        ("version", 0),
        ("version", True),
    ],
)
def test_malformed_tier_keys_are_refused(store: DepartmentStore, field: str, value: object) -> None:
    address = store.put_blob(b"y" * 40)
    args: dict[str, object] = {
        "record_id": "r",
        "version": 1,
        "tier": "T1",
        "sealed_key": _sealed(),
        "address": address,
        "size": 40,
    }
    args[field] = value
    with pytest.raises(InvalidTierKeyError) as caught:
        store.put_tier_key(**args)  # type: ignore[arg-type]
    assert caught.value.code == "tier_key_invalid"
    assert _count(store, SealedTierKey) == 0


def test_missing_tier_key_is_not_found(store: DepartmentStore) -> None:
    with pytest.raises(TierKeyNotFoundError) as caught:
        store.get_tier_key(record_id="nope", version=1, tier="T1")
    assert caught.value.code == "tier_key_not_found"


def test_listing_keys_and_addresses(store: DepartmentStore) -> None:
    _record(store, "a", versions=2, tiers=2)
    _record(store, "b", versions=1, tiers=1)
    keys = store.list_tier_keys(record_id="a")
    assert [(k.version, k.tier) for k in keys] == [(1, "T0"), (1, "T1"), (2, "T0"), (2, "T1")]
    assert [k.tier for k in store.list_tier_keys(record_id="a", version=2)] == ["T0", "T1"]
    a_addresses = store.list_addresses(record_id="a")
    assert a_addresses == sorted(k.address for k in keys)
    everything = store.list_addresses()
    assert len(everything) == 5
    assert everything == sorted(everything)
    assert set(a_addresses) < set(everything)


# ------------------------------------------------------------------------- erasure


def test_erasure_destroys_keys_and_ciphertexts_and_leaves_a_tombstone(
    store: DepartmentStore,
) -> None:
    _record(store, "victim", versions=2, tiers=2)
    _record(store, "bystander", versions=1, tiers=2)
    addresses = store.list_addresses(record_id="victim")

    erasure = store.erase_record(record_id="victim", erased_by="admin.education", now=NOW)

    assert (erasure.record_id, erasure.erased_by, erasure.erased_at) == (
        "victim",
        "admin.education",
        NOW,
    )
    assert (erasure.tier_keys_destroyed, erasure.blobs_destroyed) == (4, 4)
    assert store.get_erasure(record_id="victim") == erasure
    assert store.get_erasure(record_id="bystander") is None
    with store.session() as session:
        left = session.exec(select(SealedTierKey).where(SealedTierKey.record_id == "victim")).all()
        assert left == []
        gone = session.exec(
            select(StoredBlob.address).where(StoredBlob.address.in_(addresses))  # type: ignore[attr-defined]
        ).all()
        assert gone == []
        assert _count(store, ErasedBlob) == 4
        assert _count(store, Tombstone) == 1
    # The bystander is untouched.
    assert len(store.list_tier_keys(record_id="bystander")) == 2
    assert store.verify_blobs() == 2


def test_reads_after_erasure_say_erased(store: DepartmentStore) -> None:
    _record(store, "victim", versions=1, tiers=2)
    entry = store.get_tier_key(record_id="victim", version=1, tier="T0")
    ciphertext = store.get_blob(entry.address)
    store.erase_record(record_id="victim", erased_by="admin.education", now=NOW)

    with pytest.raises(RecordErasedError) as caught:
        store.get_blob(entry.address)
    assert caught.value.code == "record_erased"
    assert caught.value.record_id == "victim"
    assert caught.value.erased_at == NOW
    assert "erased" in str(caught.value)
    with pytest.raises(RecordErasedError):
        store.get_tier_key(record_id="victim", version=1, tier="T0")
    with pytest.raises(RecordErasedError):
        store.list_tier_keys(record_id="victim")
    # An erased record cannot be brought back under the same id or ciphertext.
    with pytest.raises(RecordErasedError):
        store.put_blob(ciphertext)
    fresh = store.put_blob(os.urandom(64))
    with pytest.raises(RecordErasedError):
        store.put_tier_key(
            record_id="victim", version=2, tier="T0", sealed_key=_sealed(), address=fresh, size=64
        )


def test_erasing_twice_returns_the_first_tombstone(store: DepartmentStore) -> None:
    _record(store, "victim")
    first = store.erase_record(record_id="victim", erased_by="admin.education", now=NOW)
    again = store.erase_record(
        record_id="victim", erased_by="someone.else", now=NOW + timedelta(days=1)
    )
    assert again == first


def test_erasure_keeps_a_ciphertext_another_record_still_uses(store: DepartmentStore) -> None:
    blob = os.urandom(64)
    address = store.put_blob(blob)
    for record_id in ("a", "b"):
        store.put_tier_key(
            record_id=record_id,
            version=1,
            tier="T1",
            sealed_key=_sealed(),
            address=address,
            size=64,
        )
    erasure = store.erase_record(record_id="a", erased_by="admin.education", now=NOW)
    assert (erasure.tier_keys_destroyed, erasure.blobs_destroyed) == (1, 0)
    assert store.get_blob(address) == blob
    store.erase_record(record_id="b", erased_by="admin.education", now=NOW)
    with pytest.raises(RecordErasedError) as caught:
        store.get_blob(address)
    assert caught.value.record_id == "b"


def test_erasing_an_unknown_record_is_refused(store: DepartmentStore) -> None:
    with pytest.raises(RecordNotFoundError) as caught:
        store.erase_record(record_id="ghost", erased_by="admin.education", now=NOW)
    assert caught.value.code == "record_not_found"
    assert store.get_erasure(record_id="ghost") is None


def test_erasure_needs_an_aware_clock_and_an_actor(store: DepartmentStore) -> None:
    _record(store, "victim")
    with store.session() as session:
        with pytest.raises(ValueError, match="timezone"):
            erase_record(
                session=session, record_id="victim", erased_by="x", now=datetime(2025, 1, 1)
            )
        with pytest.raises(AccessLedgerError) as caught:
            erase_record(session=session, record_id="victim", erased_by="", now=NOW)
        assert caught.value.code == "invalid_actor"
    assert len(store.list_tier_keys(record_id="victim")) == 2
