"""Storage functions of a department's off-chain store.

Every function takes the SQLModel ``session`` and keyword-only arguments, does
one unit of work and commits it (the full-stack-fastapi-template ``crud``
style), so an endpoint composes them without managing transactions. Reads
return frozen dataclasses, never live ORM rows, so nothing a caller holds can
write back to the database by accident.

Rules the functions enforce, whichever database is underneath:

* a ciphertext is stored under its own SHA-256 and nothing else; a blob
  offered under another address is refused, and a stored blob is re-hashed
  on every read (an altered row is reported, never served);
* storing the same ciphertext twice is a no-op, so retries are safe;
* only *sealed* tier keys (the :mod:`crypto.envelope` sealed-key format) are
  accepted, each pointing at a ciphertext already in the store;
* a record's ciphertexts and sealed keys can be stored in one transaction
  (:func:`gateway.store.registration.put_record_tiers`, same rules);
* every read of an erased record, and any attempt to store its ciphertext
  again, fails with ``record_erased``; the writers that add a record's keys
  or ciphertexts, and its erasure, hold its locks (:mod:`gateway.store.locks`),
  so a version stored concurrently with an erasure is either erased with it
  or refused, never left behind. (A custodian-key rotation only replaces a
  key row that still holds what it read, so it needs no lock.) Erasure itself is
  :mod:`gateway.store.erasure`; recipients' copies of tier keys and custodian
  key rotation are :mod:`gateway.store.keycopies`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from crypto.envelope import FORMAT_VERSION, SEALED_KEY_SIZE, TIERS, content_address
from gateway.store.errors import (
    BlobCorruptedError,
    BlobHashMismatchError,
    BlobNotFoundError,
    InvalidAddressError,
    InvalidTierKeyError,
    RecordErasedError,
    StoreError,
    TierKeyConflictError,
    TierKeyNotFoundError,
)
from gateway.store.locks import records_locked
from gateway.store.models import (
    KEY_ID_LENGTH,
    MAX_RECORD_ID_LENGTH,
    ErasedBlob,
    SealedTierKey,
    StoredBlob,
    Tombstone,
)

_ADDRESS = re.compile(r"[0-9a-f]{64}")
_KEY_ID = re.compile(rf"[0-9a-f]{{{KEY_ID_LENGTH}}}")
# Blobs are re-hashed in pages of this many rows so a full check never holds
# the whole store in memory.
_VERIFY_PAGE = 64


@dataclass(frozen=True)
class TierKeyEntry:
    """A sealed tier key as stored: which record, version and tier it opens, and where."""

    record_id: str
    version: int
    tier: str
    sealed_key: bytes = field(repr=False)
    address: str
    size: int
    #: The custodian key the key is sealed to; ``None`` for rows written before key ids.
    key_id: str | None = None


def check_address(address: object) -> str:
    """Return ``address`` if it is a lowercase hex SHA-256; raise ``invalid_address``."""
    if not isinstance(address, str) or not _ADDRESS.fullmatch(address):
        raise InvalidAddressError(
            f"{address!r} is not a content address (64 lowercase hex characters of SHA-256)"
        )
    return address


def check_record_id(record_id: object) -> str:
    if not isinstance(record_id, str) or not record_id or len(record_id) > MAX_RECORD_ID_LENGTH:
        raise StoreError(
            f"record id must be a non-empty string of at most {MAX_RECORD_ID_LENGTH} characters",
            code="invalid_record_id",
        )
    return record_id


def utc(moment: datetime) -> datetime:
    # SQLite hands timezone-aware columns back naive; they were written in UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def tombstone_of(session: Session, record_id: str) -> Tombstone | None:
    return session.get(Tombstone, record_id, populate_existing=True)


def refuse_if_erased(session: Session, record_id: str) -> None:
    stone = tombstone_of(session, record_id)
    if stone is not None:
        raise RecordErasedError(record_id, erased_at=utc(stone.erased_at))


def same_bytes(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


# --------------------------------------------------------------------------- blobs


def put_blob(*, session: Session, data: bytes, address: str | None = None) -> str:
    """Store a ciphertext under its SHA-256 and return that address.

    ``address``, when given, is what the caller believes the address is (for
    example the hash a ledger record names); a blob that hashes to anything
    else is refused with ``blob_hash_mismatch``. Storing a blob that is
    already there is a no-op; storing the ciphertext of an erased record is
    refused with ``record_erased``.
    """
    if not isinstance(data, bytes):
        raise TypeError("blob data must be bytes")
    actual = content_address(data)
    if address is not None and check_address(address) != actual:
        raise BlobHashMismatchError(expected=address, actual=actual)
    with records_locked(session, (), blobs=[actual]):
        erased = session.get(ErasedBlob, actual, populate_existing=True)
        if erased is not None:
            raise RecordErasedError(erased.record_id)
        if _existing_blob_matches(session, actual, data):
            return actual
        session.add(StoredBlob(address=actual, data=data, size=len(data)))
        try:
            session.commit()
        except IntegrityError:
            # A concurrent writer stored the same address first: fine if it is our blob.
            session.rollback()
            if not _existing_blob_matches(session, actual, data):
                raise  # pragma: no cover - the row vanished again between commit and read
        return actual


def _existing_blob_matches(session: Session, address: str, data: bytes) -> bool:
    existing = session.get(StoredBlob, address, populate_existing=True)
    if existing is None:
        return False
    if not same_bytes(existing.data, data):
        # Same address, different bytes: the stored copy was altered (SHA-256 holds).
        raise BlobCorruptedError([address])
    return True


# The hot read paths, built once with bound parameters (building a select is
# a large share of a primary-key lookup's cost); plain columns, so no ORM
# object is built or kept in the session.
_BLOB_DATA = select(StoredBlob.data).where(col(StoredBlob.address) == bindparam("address"))
_ERASED_BLOB = (
    select(ErasedBlob.record_id, Tombstone.erased_at)
    .outerjoin(Tombstone, col(Tombstone.record_id) == col(ErasedBlob.record_id))
    .where(col(ErasedBlob.address) == bindparam("address"))
)
_TOMBSTONE_TIME = select(Tombstone.erased_at).where(
    col(Tombstone.record_id) == bindparam("record_id")
)
_TIER_KEY = (
    # SQLModel's typed overloads stop at four columns; the runtime select takes any number.
    select(  # type: ignore[call-overload]
        col(SealedTierKey.sealed_key),
        col(SealedTierKey.address),
        col(SealedTierKey.size),
        col(SealedTierKey.key_id),
        col(Tombstone.erased_at),
    )
    .outerjoin(Tombstone, col(Tombstone.record_id) == col(SealedTierKey.record_id))
    .where(
        col(SealedTierKey.record_id) == bindparam("record_id"),
        col(SealedTierKey.version) == bindparam("version"),
        col(SealedTierKey.tier) == bindparam("tier"),
    )
)


def _first_row(session: Session | Connection, statement: Any, params: dict[str, Any]) -> Any:
    """The first row of a column select, run as Core SQL (no ORM state), or ``None``.

    The hot read paths (a key release reads a tier key and its ciphertext per
    granted tier) take a bare :class:`~sqlalchemy.engine.Connection`, which
    costs about a third of a :class:`Session` per call; a session works too.
    """
    connection = session.connection() if isinstance(session, Session) else session
    return connection.execute(statement, params).first()


def get_blob(*, session: Session | Connection, address: str) -> bytes:
    """Return the ciphertext stored under ``address``, after re-hashing it.

    Raises ``blob_not_found``, ``record_erased`` (the blob was destroyed with
    its record) or ``blob_corrupted`` (the stored bytes no longer hash to
    ``address``).
    """
    check_address(address)
    # One query on the hit path.
    found = _first_row(session, _BLOB_DATA, {"address": address})
    if found is None:
        erased = _first_row(session, _ERASED_BLOB, {"address": address})
        if erased is not None:
            record_id, erased_at = erased
            raise RecordErasedError(
                record_id, erased_at=utc(erased_at) if erased_at is not None else None
            )
        raise BlobNotFoundError(address)
    data = bytes(found[0])
    if hashlib.sha256(data).hexdigest() != address:
        raise BlobCorruptedError([address])
    return data


def verify_blob(*, session: Session, address: str) -> None:
    """Re-hash the blob stored under ``address``; raise ``blob_corrupted`` if it was altered."""
    get_blob(session=session, address=address)


def verify_blobs(*, session: Session) -> int:
    """Re-hash every stored blob; return how many were checked.

    Raises :class:`~gateway.store.errors.BlobCorruptedError` naming *every*
    altered address (not just the first), so an operator sees the full damage.
    """
    corrupted: list[str] = []
    checked = 0
    after = ""
    while True:
        page = session.exec(
            select(StoredBlob.address, StoredBlob.data)
            .where(col(StoredBlob.address) > after)
            .order_by(col(StoredBlob.address))
            .limit(_VERIFY_PAGE)
        ).all()
        if not page:
            break
        for address, data in page:
            checked += 1
            if hashlib.sha256(bytes(data)).hexdigest() != address:
                corrupted.append(address)
        after = page[-1][0]
    if corrupted:
        raise BlobCorruptedError(corrupted)
    return checked


def list_addresses(*, session: Session, record_id: str | None = None) -> list[str]:
    """Sorted addresses of every stored blob, or of the blobs one record's tier keys point at."""
    if record_id is None:
        return list(
            session.exec(select(StoredBlob.address).order_by(col(StoredBlob.address))).all()
        )
    check_record_id(record_id)
    statement = (
        select(SealedTierKey.address)
        .where(SealedTierKey.record_id == record_id)
        .distinct()
        .order_by(col(SealedTierKey.address))
    )
    return list(session.exec(statement).all())


# ----------------------------------------------------------------------- tier keys


def check_tier_key_input(
    record_id: str, version: int, tier: str, sealed_key: bytes, size: int
) -> None:
    check_record_id(record_id)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidTierKeyError(f"version must be a positive integer, got {version!r}")
    if tier not in TIERS:
        raise InvalidTierKeyError(f"tier must be one of {', '.join(TIERS)}, got {tier!r}")
    if (
        not isinstance(sealed_key, bytes)
        or len(sealed_key) != SEALED_KEY_SIZE
        or sealed_key[0] != FORMAT_VERSION
    ):
        # Also what stops a raw (unsealed) 32-byte tier key from ever being stored.
        raise InvalidTierKeyError(
            f"sealed key must be a format-{FORMAT_VERSION} sealed tier key of "
            f"{SEALED_KEY_SIZE} bytes; the store never holds unsealed keys"
        )
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise InvalidTierKeyError(f"size must be a non-negative integer, got {size!r}")


def tier_key_entry(row: SealedTierKey) -> TierKeyEntry:
    return TierKeyEntry(
        record_id=row.record_id,
        version=row.version,
        tier=row.tier,
        sealed_key=bytes(row.sealed_key),
        address=row.address,
        size=row.size,
        key_id=row.key_id,
    )


def check_key_id(key_id: object) -> str | None:
    if key_id is not None and (not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id)):
        raise InvalidTierKeyError(
            f"key id must be {KEY_ID_LENGTH} lowercase hex characters, got {key_id!r}"
        )
    return key_id


def put_tier_key(
    *,
    session: Session,
    record_id: str,
    version: int,
    tier: str,
    sealed_key: bytes,
    address: str,
    size: int,
    key_id: str | None = None,
) -> TierKeyEntry:
    """Store a custodian-sealed tier key for one record version and tier.

    The ciphertext it opens must already be stored under ``address`` with
    exactly ``size`` bytes. ``key_id`` names the custodian key ``sealed_key``
    is sealed to (``None``: not recorded; the custodian then tries its keys).
    Repeating an identical put is a no-op; a different key or address for the
    same ``(record_id, version, tier)`` raises ``tier_key_conflict`` (versions
    are immutable: amend with a new version).
    """
    check_tier_key_input(record_id, version, tier, sealed_key, size)
    check_key_id(key_id)
    check_address(address)
    with records_locked(session, [record_id], blobs=[address]):
        refuse_if_erased(session, record_id)
        blob = session.get(StoredBlob, address, populate_existing=True)
        if blob is None:
            raise BlobNotFoundError(address)
        if blob.size != size:
            raise InvalidTierKeyError(
                f"ciphertext {address} is {blob.size} bytes, not the {size} the tier key claims"
            )
        wanted = TierKeyEntry(record_id, version, tier, sealed_key, address, size, key_id)
        existing = existing_tier_key(session, record_id, version, tier)
        if existing is not None:
            return same_entry_or_conflict(existing, wanted)
        session.add(
            SealedTierKey(
                record_id=record_id,
                version=version,
                tier=tier,
                sealed_key=sealed_key,
                address=address,
                size=size,
                key_id=key_id,
            )
        )
        try:
            session.commit()
        except IntegrityError:
            session.rollback()
            existing = existing_tier_key(session, record_id, version, tier)
            if existing is None:  # pragma: no cover - the row vanished again
                raise
            return same_entry_or_conflict(existing, wanted)
        return wanted


def existing_tier_key(
    session: Session, record_id: str, version: int, tier: str
) -> TierKeyEntry | None:
    row = session.get(SealedTierKey, (record_id, version, tier), populate_existing=True)
    return None if row is None else tier_key_entry(row)


def same_entry_or_conflict(existing: TierKeyEntry, wanted: TierKeyEntry) -> TierKeyEntry:
    if (
        existing.address == wanted.address
        and existing.size == wanted.size
        and same_bytes(existing.sealed_key, wanted.sealed_key)
    ):
        return existing
    raise TierKeyConflictError(
        f"record {wanted.record_id} version {wanted.version} tier {wanted.tier} already has "
        "a different sealed key or ciphertext; amend the record with a new version instead"
    )


def get_tier_key(
    *, session: Session | Connection, record_id: str, version: int, tier: str
) -> TierKeyEntry:
    """The sealed tier key of one record version and tier.

    Raises ``record_erased`` after erasure and ``tier_key_not_found`` when the
    store never held that key.
    """
    check_record_id(record_id)
    # Erasure deletes the keys and writes the tombstone in one transaction, so
    # a found key joined to no tombstone is live: one query on the hit path.
    found = _first_row(
        session, _TIER_KEY, {"record_id": record_id, "version": version, "tier": tier}
    )
    if found is None:
        stone = _first_row(session, _TOMBSTONE_TIME, {"record_id": record_id})
        if stone is not None:
            raise RecordErasedError(record_id, erased_at=utc(stone[0]))
        raise TierKeyNotFoundError(
            f"no sealed key for record {record_id} version {version} tier {tier}"
        )
    sealed_key, address, size, key_id, erased_at = found
    if erased_at is not None:
        raise RecordErasedError(record_id, erased_at=utc(erased_at))
    return TierKeyEntry(record_id, version, tier, bytes(sealed_key), address, size, key_id)


def list_tier_keys(
    *, session: Session, record_id: str, version: int | None = None
) -> list[TierKeyEntry]:
    """Sealed tier keys of a record (one version, or all), by version then tier."""
    check_record_id(record_id)
    refuse_if_erased(session, record_id)
    statement = select(SealedTierKey).where(SealedTierKey.record_id == record_id)
    if version is not None:
        statement = statement.where(SealedTierKey.version == version)
    rows = session.exec(
        statement.order_by(col(SealedTierKey.version), col(SealedTierKey.tier))
    ).all()
    return [tier_key_entry(row) for row in rows]
